"""`jobsctl retry JOB --resend-unknown`: it warns that the recipients whose outcome is unknown may get the
message twice, asks before sending job.retry with `resend_unknown` (unless --yes), and sends nothing when
the answer is no. Without the option, job.retry goes as before, without the field. `show` says how many
recipients have an unknown outcome, and the option that resends them."""

from __future__ import annotations

import io
import uuid
from typing import Any

import pytest

from jobsctl import cli
from jobsctl.display import Display, print_job
from jobsctl.errors import CliError
from jobsctl.jobs import Interrupts
from jobsctl.session import Config, Message, Session

JOB_ID = str(uuid.uuid4())


def failed_email(unknown: int | None = 2) -> Message:
    return {"id": JOB_ID, "kind": "email.send", "status": "failed", "attempt": 1, "seq": 9, "unknown_outcome": unknown}


class Server(Session):
    """A Session whose other end answers job.get with `job`, job.retry with its job.queued, anything else with
    an error."""

    def __init__(self, job: Message) -> None:
        super().__init__(Config("http://127.0.0.1:1", "token"))
        self.hello = {"type": "hello", "jobs": [job]}
        self.job = job
        self.frames: list[Message] = []

    async def send(self, message: Message) -> None:
        self.frames.append(message)
        if message["type"] == "job.get":
            detail = {"type": "job.detail", "job": self.job, "events": [], "logs": [], "logs_dropped": 0}
            self.queue.put_nowait({**detail, "request_id": message["request_id"]})
        elif message["type"] == "job.retry":
            queued = {**self.job, "status": "queued", "attempt": 2, "seq": 10, "unknown_outcome": None}
            self.queue.put_nowait({"type": "job.queued", "job": queued})
        else:  # nothing else is expected of the command
            self.queue.put_nowait({"type": "error", "code": "unexpected", "request_id": message.get("request_id")})

    def retries(self) -> list[Message]:
        return [frame for frame in self.frames if frame["type"] == "job.retry"]


async def retry(server: Server, *options: str, answer: str = "") -> tuple[int, str]:
    """Run `jobsctl retry JOB [options]` against `server`, typing `answer` at any question; (exit code, stderr)."""
    args = cli.build_parser().parse_args(["retry", JOB_ID, *options])
    stderr = io.StringIO()
    display = Display(stderr)
    interrupts = Interrupts(server, display)
    asked: list[str] = []

    async def ask(question: str) -> bool:
        asked.append(question)
        display.prompt(question)
        return answer == "y"

    interrupts.ask = ask  # type: ignore[method-assign]
    code = await cli.COMMANDS["retry"](args, server, display, interrupts)
    return code, stderr.getvalue() + "".join(f"[asked: {question}]" for question in asked)


async def test_it_warns_and_asks_then_sends_the_flag_when_confirmed() -> None:
    server = Server(failed_email(unknown=2))
    code, said = await retry(server, "--resend-unknown", answer="y")
    assert code == 0
    assert "2 recipients whose outcome is unknown" in said and "may receive it twice" in said
    assert "[asked: Resend to them? [y/N] ]" in said
    assert server.retries() == [{"type": "job.retry", "job_id": JOB_ID, "resend_unknown": True}]


async def test_no_to_the_question_sends_no_retry() -> None:
    server = Server(failed_email(unknown=1))
    with pytest.raises(CliError) as caught:
        await retry(server, "--resend-unknown", answer="n")
    assert caught.value.code == "not_confirmed" and caught.value.exit_code == 2
    assert server.retries() == []


async def test_yes_skips_the_question_but_not_the_warning() -> None:
    server = Server(failed_email(unknown=1))
    code, said = await retry(server, "--resend-unknown", "--yes")
    assert code == 0
    assert "1 recipient whose outcome is unknown" in said and "may receive it twice" in said
    assert "asked" not in said
    assert server.retries() == [{"type": "job.retry", "job_id": JOB_ID, "resend_unknown": True}]


async def test_without_the_option_the_retry_carries_no_flag_and_asks_nothing() -> None:
    server = Server(failed_email(unknown=2))
    code, said = await retry(server)
    assert code == 0 and "asked" not in said and "twice" not in said
    assert server.retries() == [{"type": "job.retry", "job_id": JOB_ID}]


@pytest.mark.parametrize("unknown", [0, None], ids=["none unknown", "another kind"])
async def test_with_nothing_unknown_it_says_so_and_asks_nothing(unknown: Any) -> None:
    server = Server(failed_email(unknown=unknown))
    code, said = await retry(server, "--resend-unknown")
    assert code == 0 and "changes nothing" in said and "asked" not in said
    assert server.retries() == [{"type": "job.retry", "job_id": JOB_ID, "resend_unknown": True}]


async def test_it_is_refused_with_all_failed() -> None:
    server = Server(failed_email())
    args = cli.build_parser().parse_args(["retry", "--all-failed", "--resend-unknown"])
    with pytest.raises(CliError) as caught:
        await cli.COMMANDS["retry"](args, server, Display(io.StringIO()), Interrupts(server, Display(io.StringIO())))
    assert caught.value.code == "usage" and server.frames == []


def test_show_names_the_unknown_outcomes_and_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    print_job(failed_email(unknown=2))
    shown = capsys.readouterr().out
    assert "unknown:   2 recipients may or may not have been sent the message" in shown
    assert f"jobsctl retry {JOB_ID} --resend-unknown" in shown
    print_job(failed_email(unknown=0))
    assert "unknown" not in capsys.readouterr().out
