"""`jobsctl batch FILE`: the file is a list of jobs or an object with title, mode and jobs; flags override it;
a file that is not a batch is refused before connecting, naming each bad place as jobs.<index>.<field>."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from jobsctl.batches import Batch, load, parse
from jobsctl.cli import main
from jobsctl.errors import CliError
from jobsctl.session import MAX_FRAME_BYTES

COUNTDOWN = {"kind": "demo.countdown", "params": {"steps": 2}}


def refusal(text: str) -> CliError:
    with pytest.raises(CliError) as caught:
        parse(text, "jobs.json")
    assert caught.value.code == "usage"
    return caught.value


def test_a_list_of_jobs_is_a_parallel_batch_without_a_title() -> None:
    assert parse(json.dumps([COUNTDOWN, COUNTDOWN])) == Batch(jobs=[COUNTDOWN, COUNTDOWN], title="", mode="parallel")


def test_an_object_gives_title_and_mode_and_flags_override_them() -> None:
    text = json.dumps({"title": "Nightly", "mode": "sequence", "jobs": [COUNTDOWN]})
    assert parse(text) == Batch(jobs=[COUNTDOWN], title="Nightly", mode="sequence")
    assert parse(text, title="Weekly", mode="parallel") == Batch(jobs=[COUNTDOWN], title="Weekly", mode="parallel")


def test_params_may_be_left_out_and_are_then_empty() -> None:
    assert parse('[{"kind": "demo.countdown"}]').jobs == [{"kind": "demo.countdown", "params": {}}]


def test_a_file_and_stdin_read_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps({"title": "Café", "jobs": [COUNTDOWN]}), encoding="utf-8")
    monkeypatch.setattr("sys.stdin", io.StringIO(path.read_text(encoding="utf-8")))
    assert load(str(path)) == load("-") == Batch(jobs=[COUNTDOWN], title="Café")


def test_text_that_is_not_json_is_refused_with_where_it_broke() -> None:
    error = refusal('[{"kind": "demo.countdown",]')
    assert "jobs.json is not JSON" in error.message and "line 1" in error.message


@pytest.mark.parametrize("text", ['"demo.countdown"', "42", '{"title": "no jobs"}', '{"jobs": {"kind": "x"}}'])
def test_anything_but_a_list_of_jobs_is_refused(text: str) -> None:
    error = refusal(text)
    assert error.details.get("jobs") or "list of jobs" in error.message


def test_each_bad_job_is_named_by_its_index_and_field() -> None:
    jobs = [COUNTDOWN, {"params": {}}, {"kind": "demo.countdown", "params": [1]}, "demo.countdown",
            {"kind": "demo.countdown", "prams": {}}]  # fmt: skip
    error = refusal(json.dumps({"mode": "both", "color": "red", "jobs": jobs}))
    assert set(error.details) == {"mode", "color", "jobs.1.kind", "jobs.2.params", "jobs.3", "jobs.4.prams"}
    assert "jobs.1.kind: Give the kind's name" in "\n".join(error.lines())


def test_an_empty_batch_is_refused() -> None:
    assert refusal("[]").details == {"jobs": "The batch holds no jobs."}


def test_a_job_too_large_for_any_frame_is_refused_before_sending() -> None:
    huge = {"kind": "email.send", "params": {"to": ["a@example.com"], "subject": "Hi", "body": "x" * MAX_FRAME_BYTES}}
    error = refusal(json.dumps([COUNTDOWN, huge]))
    assert error.message.startswith("jobs.1 is ") and "at most 65,536 bytes" in error.message


def test_the_command_refuses_a_bad_file_with_exit_2_before_connecting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "jobs.json"
    path.write_text('[{"kind": 5}]', encoding="utf-8")
    # No server answers at this URL: the file is judged before any connection.
    code = main(["batch", str(path), "--url", "http://127.0.0.1:9", "--token", "t"])
    assert code == 2
    assert "jobs.0.kind" in capsys.readouterr().err
    assert main(["batch", str(tmp_path / "missing.json"), "--token", "t"]) == 2
    assert "Cannot read the batch file" in capsys.readouterr().err
