"""What a person sees: status lines and a progress bar on stderr, results on stdout.

stdout carries only the answer (a result, a list, a job; JSON with --json), so
`jobsctl ... > out.json` captures just that. Everything about the journey goes
to stderr: a tqdm bar on a terminal, or a line per status change (and a
progress line every few seconds) when stderr is a file or a pipe.
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
from typing import Any, TextIO

# tqdm ships no type hints (types-tqdm is not installed); the bar is all we use of it.
from tqdm import tqdm  # type: ignore[import-untyped]

Job = dict[str, Any]
PLAIN_PROGRESS_EVERY = 5.0  # seconds between progress lines when there is no terminal
# {postfix}: the server's estimate of the time left (eta_seconds), as the dashboard shows it.
BAR_SHAPE = "{desc}{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"
COUNT_SHAPE = "{desc}{n_fmt} [{elapsed}]"  # the total is unknown


class Display:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() and _has_width(self.stream)
        self._bar: Any = None
        self._status: str | None = None
        self._last_line = 0.0

    def note(self, text: str) -> None:
        """A line on stderr, kept clear of the bar."""
        if self._bar is not None:
            self._bar.clear()
        print(text, file=self.stream, flush=True)
        if self._bar is not None:
            self._bar.refresh()

    def prompt(self, question: str) -> None:
        if self._bar is not None:
            self._bar.clear()
        print(question, end="", file=self.stream, flush=True)

    def update(self, job: Job) -> None:
        if job["status"] != self._status:
            self._status = job["status"]
            if job["status"] in ("queued", "running"):
                self.note(f"{noun(job)} {job['id']} {job['status']}")
        if job["status"] != "running":
            return
        if job.get("batch") is not None:
            self._batch_progress(job, job["batch"])
        else:
            self._progress(job.get("progress") or {}, job.get("eta_seconds"))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _progress(self, progress: dict[str, Any], eta: float | None = None) -> None:
        current, total = progress.get("current") or 0, progress.get("total")
        label = progress.get("message") or progress.get("stage") or ""
        left = f"{eta_text(eta)} left" if isinstance(eta, int | float) else ""
        if self.tty:
            self._draw(total, current, label, left)
        else:
            about = f" ({left})" if left else ""
            self._line(f"  {current}/{total if total is not None else '?'} {label}{about}".rstrip())

    def _batch_progress(self, job: Job, counts: dict[str, int]) -> None:
        """A batch: its children finished of the total, and how many are in each state."""
        if self.tty:
            title = str((job.get("params") or {}).get("title") or "")
            self._draw(counts.get("total"), finished(counts), title, counts_text(counts))
        else:
            self._line(f"  {finished(counts)}/{counts.get('total')} finished: {counts_text(counts)}")

    def _line(self, text: str) -> None:
        """Without a terminal: a progress line every PLAIN_PROGRESS_EVERY seconds at most."""
        now = time.monotonic()
        if now - self._last_line >= PLAIN_PROGRESS_EVERY:
            self._last_line = now
            self.note(text)

    def _draw(self, total: int | None, current: int, label: str, postfix: str) -> None:
        if self._bar is None:
            self._bar = self._new_bar(total, current)
        self._bar.total = total
        self._bar.n = current
        self._bar.set_description(label[:40], refresh=False)  # "label: " before the bar
        self._bar.set_postfix_str(postfix, refresh=False)
        self._bar.refresh()

    def _new_bar(self, total: int | None, current: int) -> Any:
        # The job sets the position itself, so a rate would mean nothing; big counts (bytes) read better scaled.
        shape = BAR_SHAPE if total else COUNT_SHAPE
        scale = max(total or 0, current) >= 100_000
        return tqdm(total=total, file=self.stream, dynamic_ncols=True, leave=False, bar_format=shape, unit_scale=scale)


def eta_text(seconds: float) -> str:
    """12s, 3m05s, 1h02m."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def _has_width(stream: TextIO) -> bool:
    """A terminal of zero columns (a pty nobody sized) would show no bar at all: plain lines instead."""
    try:
        return os.get_terminal_size(stream.fileno()).columns > 0
    except (OSError, ValueError, io.UnsupportedOperation):
        return True  # not a real file (tests): trust isatty()


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False), flush=True)


def print_outcome(display: Display, job: Job, as_json: bool) -> None:
    """The final word on a followed job: the result on stdout, the status on stderr."""
    display.close()
    if as_json:
        print_json(job)
    if job.get("batch") is not None:
        _batch_outcome(display, job, as_json)
    elif job["status"] == "succeeded":
        display.note(f"job {job['id']} succeeded")
        if not as_json:
            print_json(job["result"])
    elif job["status"] == "failed":
        error = job.get("error") or {}
        display.note(f"job {job['id']} failed: {error.get('code')}: {error.get('message')}")
        if job.get("unknown_outcome"):
            display.note(unknown_outcome_text(job))
    else:
        display.note(f"job {job['id']} {job['status']}")


def _batch_outcome(display: Display, job: Job, as_json: bool) -> None:
    """A batch's answer is its counts: on stdout (unless --json printed the batch), and in words on stderr."""
    counts = job["batch"]
    code = (job.get("error") or {}).get("code")
    how = f"{job['status']} ({code})" if code else job["status"]
    display.note(f"batch {job['id']} {how}: {finished(counts)}/{counts.get('total')} finished: {counts_text(counts)}")
    if not as_json:
        print_json(counts)


COUNTED = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED = ("succeeded", "failed", "cancelled")


def noun(job: Job) -> str:
    return "batch" if job.get("batch") is not None else "job"


def finished(counts: dict[str, int]) -> int:
    return sum(int(counts.get(status) or 0) for status in FINISHED)


def counts_text(counts: dict[str, int]) -> str:
    """2 queued, 3 running, 5 succeeded, 0 failed, 0 cancelled."""
    return ", ".join(f"{counts.get(status, 0)} {status}" for status in COUNTED)


def print_jobs(jobs: list[Job]) -> None:
    print(f"{'ID':<36}  {'KIND':<16}  {'STATUS':<9}  {'PROGRESS':>8}  CREATED")
    for job in jobs:
        print(f"{job['id']:<36}  {job['kind']:<16}  {job['status']:<9}  {_percent(job):>8}  {_time(job['created_at'])}")


def print_job(job: Job) -> None:
    for key in ("id", "kind", "status", "priority", "attempt", "seq"):
        print(f"{key + ':':<10} {job.get(key)}")
    for key in ("created_at", "started_at", "finished_at"):
        print(f"{key.removesuffix('_at') + ':':<10} {_time(job.get(key))}")
    print(f"{'progress:':<10} {_percent(job)} {_progress_text(job)}".rstrip())
    if job.get("batch") is not None:
        counts = job["batch"]
        mode = (job.get("params") or {}).get("mode", "")
        print(f"{'batch:':<10} {counts.get('total')} jobs, {mode}: {counts_text(counts)}")
    if job.get("parent_id"):
        print(f"{'batch:':<10} a job of batch {job['parent_id']}")
    for key in ("params", "result", "error"):
        if job.get(key) is not None:
            print(f"{key + ':':<10} {json.dumps(job[key], ensure_ascii=False)}")
    if job.get("unknown_outcome"):
        print(f"{'unknown:':<10} {unknown_outcome_text(job)}")


def unknown_outcome_text(job: Job) -> str:
    """The recipients of a job whose outcome is unknown, and how to send to them again (docs/protocol.md)."""
    n = int(job["unknown_outcome"])
    whom = "1 recipient" if n == 1 else f"{n} recipients"
    return (
        f"{whom} may or may not have been sent the message (outcome unknown); "
        f"`jobsctl retry {job['id']} --resend-unknown` sends it again, so they may receive it twice"
    )


def print_log_lines(lines: list[dict[str, Any]], printed: int) -> int:
    """Print the lines numbered past `printed` (a line seen twice prints once); the last n printed."""
    for line in sorted(lines, key=lambda line: int(line["n"])):
        if int(line["n"]) > printed:
            print(f"{_time(line['at'])}  {line['level']:<7}  {line['text']}", flush=True)
            printed = int(line["n"])
    return printed


def print_kinds(kinds: list[dict[str, Any]]) -> None:
    """Each kind, then its params: name, type, required or the default, and what it is."""
    for kind in kinds:
        print(f"{kind['name']}  {kind.get('title', '')}".rstrip())
        if kind.get("description"):
            print(f"  {kind['description']}")
        schema = kind.get("params_schema") or {}
        required = set(schema.get("required", []))
        for name, prop in (schema.get("properties") or {}).items():
            print(f"  --param {name}=…  {_type(prop)}{_need(name, prop, required)}{_about(prop)}")


def _type(prop: dict[str, Any]) -> str:
    if prop.get("format") == "upload-id":
        return "a file (--file)"
    choices = [option["const"] for option in prop.get("oneOf", []) if "const" in option] or prop.get("enum")
    if choices:
        return " | ".join(str(choice) for choice in choices)
    if "anyOf" in prop:
        return " or ".join(str(option.get("type")) for option in prop["anyOf"])
    if prop.get("type") == "array":
        return f"list of {(prop.get('items') or {}).get('type', 'values')} (comma-separated)"
    return str(prop.get("type", "JSON"))


def _need(name: str, prop: dict[str, Any], required: set[str]) -> str:
    if name in required:
        return ", required"
    return f", default {json.dumps(prop['default'])}" if "default" in prop else ", optional"


def _about(prop: dict[str, Any]) -> str:
    text = prop.get("description") or prop.get("title")
    return f": {text}" if text else ""


def _percent(job: Job) -> str:
    percent = (job.get("progress") or {}).get("percent")
    if job["status"] == "succeeded":
        return "100%"
    return f"{percent:.0f}%" if isinstance(percent, int | float) else "-"


def _progress_text(job: Job) -> str:
    progress = job.get("progress") or {}
    total = progress.get("total")
    counted = f"{progress.get('current', 0)}/{total}" if total is not None else str(progress.get("current", 0))
    return f"({counted}) {progress.get('message') or progress.get('stage') or ''}".rstrip()


def _time(value: str | None) -> str:
    # "2026-11-25T10:00:00.123Z" reads better as "2026-11-25 10:00:00Z".
    return value.replace("T", " ").split(".")[0].removesuffix("Z") + "Z" if value else "-"
