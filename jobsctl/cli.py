"""The command line: argparse, configuration, and one coroutine per subcommand."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import re
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jobsctl import batches, jobs, schedules, schema, upload
from jobsctl import display as show
from jobsctl.display import Display
from jobsctl.download import download
from jobsctl.errors import EXIT_INTERRUPTED, EXIT_SUCCEEDED, CliError
from jobsctl.jobs import Interrupts, Tracker
from jobsctl.local import temporary_token
from jobsctl.session import Config, Session

DEFAULT_URL = "http://127.0.0.1:8000"
STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
PRIORITIES = ("high", "normal", "low")
OPERATIONS = ("checksum", "csv.summary", "text.stats")
JOB_ID_HELP = "a job id, or enough of its first characters to tell it from your other recent jobs"
EPILOG = """\
exit codes: 0 succeeded, 1 failed, 2 usage, connection or authentication error
or a request the server refused (the error code is printed), 3 cancelled,
130 interrupted without cancelling.

environment: JOBS_URL (default http://127.0.0.1:8000), JOBS_TOKEN."""

Command = Callable[[argparse.Namespace, Session, Display, Interrupts], Awaitable[int]]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "download" and not Path(args.out).is_dir():
            raise CliError(f"--out {args.out}: no such directory.", "usage")
        if args.command == "batch":  # read and checked before connecting (and stdin before any prompt)
            args.batch = batches.load(args.batch_file, args.title, args.mode)
        base = base_url(getattr(args, "url", None) or os.environ.get("JOBS_URL") or DEFAULT_URL)
        with credentials(args) as token:
            config = Config(base, token)
            args.uploads = {field: _upload(config, Path(path)) for field, path in _files(args)}
            return asyncio.run(run(args, config))
    except CliError as exc:
        lines = exc.lines()
        print("jobsctl: error: " + "\n".join(lines), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("jobsctl: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def build_parser() -> argparse.ArgumentParser:
    # The common options are accepted before or after the subcommand; SUPPRESS
    # keeps a subcommand's unset copy from overwriting a value given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=argparse.SUPPRESS, help=f"the service (env JOBS_URL; default {DEFAULT_URL})")
    common.add_argument("--token", default=argparse.SUPPRESS, help="an API token (env JOBS_TOKEN)")
    common.add_argument(
        "--user", default=argparse.SUPPRESS, help="inside the project: use a temporary token of this local user"
    )
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")
    parser = argparse.ArgumentParser(
        prog="jobsctl",
        description="Submit and follow jobs of the job service.",
        parents=[common],
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _submit_parsers(sub, common)
    listing = sub.add_parser("list", parents=[common], help="your jobs, newest first (the history: job.list)")
    listing.add_argument("--status", action="append", default=[], choices=STATUSES, help="only these; repeat for more")
    listing.add_argument("--kind", action="append", default=[], help="only this kind; repeat for more")
    listing.add_argument("--search", help="in the job id, request id and params (case ignored)")
    listing.add_argument("--since", metavar="WHEN", help="created since: 2026-12-01, 2026-12-01T10:00Z, or 2h, 3d ago")
    listing.add_argument("--limit", type=int, default=50, help="how many to print (default 50; pages are fetched)")
    listing.add_argument("--batch", "--parent", metavar="ID", help="the jobs of this batch, in their order")
    logs = sub.add_parser("logs", parents=[common], help="a job's log lines; -f follows them while it runs")
    logs.add_argument("job_id", help=JOB_ID_HELP)
    logs.add_argument("-f", "--follow", action="store_true", help="print new lines until the job finishes")
    sub.add_parser("kinds", parents=[common], help="the job kinds the server offers, with their params")
    for name, text in (("show", "one job"), ("cancel", "cancel a queued or running job")):
        sub.add_parser(name, parents=[common], help=text).add_argument("job_id", help=JOB_ID_HELP)
    retry = sub.add_parser("retry", parents=[common], help="run a failed or cancelled job again (or all failed ones)")
    retry.add_argument("job_id", nargs="?", help=JOB_ID_HELP)
    retry.add_argument("--follow", action="store_true", help="follow the new attempt until it finishes")
    retry.add_argument("--all-failed", action="store_true", help="retry every failed job of yours (job.bulk)")
    retry.add_argument("--kind", action="append", default=[], help="with --all-failed: only this kind")
    retry.add_argument(
        "--resend-unknown",
        action="store_true",
        help="also send again to the email recipients whose outcome is unknown (they may get it twice); asks first",
    )
    retry.add_argument("-y", "--yes", action="store_true", help="with --resend-unknown: do not ask")
    _schedule_parsers(sub, common)
    fetch = sub.add_parser("download", parents=[common], help="save a finished job's files (its artifacts)")
    fetch.add_argument("job_id", help=JOB_ID_HELP)
    fetch.add_argument("--out", default=".", metavar="DIR", help="the directory to save them in (default: here)")
    return parser


def _submit_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    submit = sub.add_parser("submit", parents=[common], help="submit a job of any kind and follow it")
    submit.add_argument("kind", help="e.g. demo.countdown, email.send, file.process")
    submit.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE", help="a param, typed by the kind's schema"
    )
    submit.add_argument(
        "--file", action="append", default=[], metavar="FIELD=PATH", help="upload a file for a field that takes one"
    )
    submit.add_argument("--params-json", metavar="JSON", help="all params as one JSON object (--param overrides)")
    submit.add_argument("--request-id", help="idempotency key (default: random); the same one returns the same job")
    email = sub.add_parser("email", parents=[common], help="send an email to a list of recipients (email.send)")
    email.add_argument("--to", action="append", required=True, help="a recipient; repeat for more")
    email.add_argument("--subject", required=True)
    body = email.add_mutually_exclusive_group(required=True)
    body.add_argument("--body")
    body.add_argument("--body-file", help="a UTF-8 text file, or - for stdin")
    process = sub.add_parser("process", parents=[common], help="upload a file, then process it (file.process)")
    process.add_argument("file")
    process.add_argument("--operation", choices=OPERATIONS, default="checksum")
    for parser in (submit, email, process):
        parser.add_argument("--no-follow", action="store_true", help="print the job id and return at once")
    batch = _batch_parser(sub, common)
    for parser in (submit, email, process, batch):
        parser.add_argument(
            "--priority", choices=PRIORITIES, default="normal", help="high ones start first among waiting jobs"
        )


def _batch_parser(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    batch: argparse.ArgumentParser = sub.add_parser(
        "batch", parents=[common], help="submit many jobs as one batch, and follow it"
    )
    batch.add_argument("batch_file", metavar="FILE", help="JSON: a list of jobs, or {title, mode, jobs}; - is stdin")
    batch.add_argument("--title", help="the batch's title (overrides the file's)")
    batch.add_argument("--mode", choices=batches.MODES, help="parallel (default) or sequence (overrides the file's)")
    batch.add_argument("--detach", action="store_true", help="print the batch id and return at once")
    return batch


def _schedule_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    schedule = sub.add_parser("schedule", parents=[common], help="jobs at a time or on a calendar: add, list, pause")
    actions = schedule.add_subparsers(dest="schedule_command", required=True, metavar="ACTION")
    add = actions.add_parser("add", parents=[common], help="submit a job of KIND at --at or on --cron")
    add.add_argument("kind", help="e.g. demo.countdown, email.send")
    when = add.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", metavar="EXPR", help="five fields: minute hour day month weekday, e.g. '0 8 * * 1'")
    when.add_argument("--at", metavar="TIME", help="once, at an ISO-8601 time (without an offset: in --tz)")
    add.add_argument("--tz", default="UTC", metavar="ZONE", help="the IANA timezone of --cron and --at (default UTC)")
    add.add_argument("--name", default="", help="what the schedule is for")
    add.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="a param (as for submit)")
    add.add_argument("--file", action="append", default=[], metavar="FIELD=PATH", help="upload a file for a field")
    add.add_argument("--params-json", metavar="JSON", help="all params as one JSON object (--param overrides)")
    add.add_argument("--request-id", help="idempotency key (default: random); the same one returns the same schedule")
    actions.add_parser("list", parents=[common], help="your schedules, with their next run and last job")
    for action, text in (("pause", "stop its runs until resumed"), ("resume", "run it again"), ("rm", "delete it")):
        actions.add_parser(action, parents=[common], help=text).add_argument("schedule_id", metavar="ID")


def base_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CliError(f"The service URL must be http:// or https://host[:port], not {text!r}.", "usage")
    return text.rstrip("/")


@contextlib.contextmanager
def credentials(args: argparse.Namespace) -> Iterator[str]:
    token = getattr(args, "token", None) or os.environ.get("JOBS_TOKEN")
    if getattr(args, "user", None):
        with temporary_token(args.user) as temporary:
            yield temporary
    elif token:
        yield token
    else:
        raise CliError("No API token: pass --token, set JOBS_TOKEN, or (inside the project) --user NAME.", "usage")


async def run(args: argparse.Namespace, config: Config) -> int:
    display = Display()
    session = Session(config, notify=display.note)
    interrupts = Interrupts(session, display)
    uninstall = _on_sigint(interrupts.fire)
    try:
        await session.start()
        return await COMMANDS[args.command](args, session, display, interrupts)
    finally:
        uninstall()
        display.close()
        await session.close()


def _on_sigint(callback: Callable[[], None]) -> Callable[[], None]:
    """Ctrl-C becomes a message to the command; where the loop cannot do that (Windows) it stays KeyboardInterrupt."""
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGINT, callback)
    except (NotImplementedError, RuntimeError):
        return lambda: None

    def uninstall() -> None:
        loop.remove_signal_handler(signal.SIGINT)

    return uninstall


async def _submit(args: argparse.Namespace, session: Session, display: Display, interrupts: Interrupts) -> int:
    described = (await jobs.kind_list(session)).get(args.kind)
    if described is None:
        raise CliError(f"The server offers no job kind {args.kind!r}; `jobsctl kinds` lists them.", "unknown_kind")
    params_schema = described.get("params_schema")
    params = schema.params(params_schema, args.param, args.params_json)
    takes_files = schema.upload_fields(params_schema)
    for field, uploaded in args.uploads.items():
        if field not in takes_files:
            raise CliError(f"--file {field}=…: {args.kind} takes no file in {field!r}.", "usage")
        params[field] = uploaded["id"]
    return await _submit_and_follow(args, session, display, interrupts, args.kind, params)


async def _kinds(args: argparse.Namespace, session: Session, display: Display, interrupts: Interrupts) -> int:
    described = await jobs.kind_list(session)
    if _as_json(args):
        show.print_json(list(described.values()))
    else:
        show.print_kinds(list(described.values()))
    return EXIT_SUCCEEDED


async def _email(args: argparse.Namespace, session: Session, display: Display, interrupts: Interrupts) -> int:
    params = {"to": args.to, "subject": args.subject, "body": _body(args)}
    return await _submit_and_follow(args, session, display, interrupts, "email.send", params)


async def _process(args: argparse.Namespace, session: Session, display: Display, interrupts: Interrupts) -> int:
    params = {"upload_id": args.uploads["upload_id"]["id"], "operation": args.operation}
    return await _submit_and_follow(args, session, display, interrupts, "file.process", params)


async def _submit_and_follow(
    args: argparse.Namespace,
    session: Session,
    display: Display,
    interrupts: Interrupts,
    kind: str,
    params: dict[str, Any],
) -> int:
    request_id = getattr(args, "request_id", None) or uuid.uuid4().hex
    tracker = await jobs.submit(session, kind, params, request_id, args.priority)
    if args.no_follow:
        display.note(f"job {tracker.id} accepted ({kind})")
        _print_job_or_id(args, tracker.job)
        return EXIT_SUCCEEDED
    return await _follow(args, session, display, interrupts, tracker)


async def _follow(
    args: argparse.Namespace, session: Session, display: Display, interrupts: Interrupts, tracker: Tracker
) -> int:
    code = await jobs.follow(session, tracker, display, interrupts)
    show.print_outcome(display, tracker.job, _as_json(args))
    return code


async def _batch(args: argparse.Namespace, session: Session, display: Display, interrupts: Interrupts) -> int:
    batch: batches.Batch = dataclasses.replace(args.batch, priority=args.priority)
    tracker, parts = await batches.submit(session, batch, uuid.uuid4().hex)
    sent = f", sent in {parts} parts" if parts > 1 else ""
    display.note(f"batch {tracker.id} accepted ({len(batch.jobs)} jobs, {batch.mode}{sent})")
    if args.detach:
        _print_job_or_id(args, tracker.job)
        return EXIT_SUCCEEDED
    return await _follow(args, session, display, interrupts, tracker)


async def _list(args: argparse.Namespace, session: Session, display: Display, interrupts: Interrupts) -> int:
    wanted: dict[str, Any] = {}
    if args.batch:
        wanted["parent_id"] = await jobs.resolve(session, args.batch)
    for key in ("status", "kind"):
        if getattr(args, key):
            wanted[key] = getattr(args, key)
    if args.search:
        wanted["search"] = args.search
    if args.since:
        wanted["created_after"] = since(args.since)
    listed = await jobs.listing(session, wanted, max(1, args.limit))
    if _as_json(args):
        show.print_json(listed)
    else:
        show.print_jobs(listed)
    return EXIT_SUCCEEDED


async def _logs(args: argparse.Namespace, session: Session, display: Display, interrupts: Interrupts) -> int:
    job_id = await jobs.resolve(session, args.job_id)
    detail = await jobs.request(session, {"type": "job.get", "job_id": job_id})
    if detail["logs_dropped"]:
        display.note(f"{detail['logs_dropped']} older lines are no longer kept")
    printed = show.print_log_lines(detail["logs"], 0)
    if args.follow and detail["job"]["status"] in ("queued", "running"):
        await jobs.follow_logs(session, job_id, printed)
    return EXIT_SUCCEEDED


async def _show(args: argparse.Namespace, session: Session, display: Display, interrupts: Interrupts) -> int:
    job = await jobs.get(session, await jobs.resolve(session, args.job_id))
    if _as_json(args):
        show.print_json(job)
    else:
        show.print_job(job)
    return EXIT_SUCCEEDED


async def _cancel(args: argparse.Namespace, session: Session, display: Display, interrupts: Interrupts) -> int:
    job = await jobs.cancel(session, await jobs.resolve(session, args.job_id))
    display.note(f"{show.noun(job)} {job['id']} cancelled")
    _print_job_or_id(args, job)
    return EXIT_SUCCEEDED


async def _retry(args: argparse.Namespace, session: Session, display: Display, interrupts: Interrupts) -> int:
    if args.all_failed:
        if args.resend_unknown:
            raise CliError("--resend-unknown retries one JOB at a time, not --all-failed.", "usage")
        wanted: dict[str, Any] = {"status": ["failed"], **({"kind": args.kind} if args.kind else {})}
        done = await jobs.request(session, {"type": "job.bulk", "action": "retry", "filter": wanted})
        display.note(f"{done['changed']} failed jobs queued again")
        print(done["changed"])
        return EXIT_SUCCEEDED
    if not args.job_id:
        raise CliError("retry needs a JOB, or --all-failed.", "usage")
    job_id = await jobs.resolve(session, args.job_id)
    if args.resend_unknown:
        await _confirm_resend_unknown(args, session, display, interrupts, job_id)
    tracker = await jobs.retry(session, job_id, args.resend_unknown)
    display.note(f"job {tracker.id} queued again (attempt {tracker.job['attempt']})")
    if args.follow:
        return await _follow(args, session, display, interrupts, tracker)
    _print_job_or_id(args, tracker.job)
    return EXIT_SUCCEEDED


async def _confirm_resend_unknown(
    args: argparse.Namespace, session: Session, display: Display, interrupts: Interrupts, job_id: str
) -> None:
    """Say what --resend-unknown risks (a recipient may get the message twice); unless --yes, ask first."""
    job = await jobs.get(session, job_id)
    unknown = job.get("unknown_outcome")
    if job.get("status") not in ("failed", "cancelled"):
        return  # nothing to confirm: the server refuses the retry (conflict)
    if job.get("kind") == "batch":
        whom = "the recipients whose outcome is unknown, in each of its email jobs,"
    elif not unknown:
        display.note(f"job {job_id} has no recipient whose outcome is unknown: --resend-unknown changes nothing")
        return
    else:
        whom = f"{unknown} recipient{'s' if unknown != 1 else ''} whose outcome is unknown"
    display.note(
        f"warning: {show.noun(job)} {job_id} will send again to {whom}: the mail server may have taken "
        "their message already, so they may receive it twice."
    )
    if not args.yes and not await interrupts.ask("Resend to them? [y/N] "):
        raise CliError("Not retried: the resend was not confirmed (--yes confirms it).", "not_confirmed")


async def _download(args: argparse.Namespace, session: Session, display: Display, interrupts: Interrupts) -> int:
    job = await jobs.get(session, await jobs.resolve(session, args.job_id))
    directory = Path(args.out)  # checked before the session started (main)
    artifacts = job.get("artifacts") or []
    if not artifacts:
        display.note(f"job {job['id']} has no files ({job['status']})")
    for artifact in artifacts:
        saved = await asyncio.to_thread(download, session.config.url, session.config.token, artifact, directory)
        print(saved)
    return EXIT_SUCCEEDED


async def _schedule(args: argparse.Namespace, session: Session, display: Display, interrupts: Interrupts) -> int:
    action = args.schedule_command
    if action == "list":
        found = await schedules.listed(session)
        show.print_json(found) if _as_json(args) else schedules.print_schedules(found)
        return EXIT_SUCCEEDED
    if action == "add":
        schedule = await schedules.add(session, await _schedule_fields(args, session))
        display.note(f"schedule {schedule['id']} made: {schedules.when(schedule)}, next run {schedule['next_run_at']}")
    else:
        schedule = await schedules.change(session, action, args.schedule_id)
        display.note(f"schedule {schedule['id']} {'deleted' if action == 'rm' else schedules.state(schedule)}")
    show.print_json(schedule) if _as_json(args) else print(schedule["id"])
    return EXIT_SUCCEEDED


async def _schedule_fields(args: argparse.Namespace, session: Session) -> dict[str, Any]:
    """The schedule.create of `schedule add`: its params typed by the kind's schema, as `submit` does."""
    described = (await jobs.kind_list(session)).get(args.kind)
    if described is None:
        raise CliError(f"The server offers no job kind {args.kind!r}; `jobsctl kinds` lists them.", "unknown_kind")
    params = schema.params(described.get("params_schema"), args.param, args.params_json)
    params.update({field: uploaded["id"] for field, uploaded in args.uploads.items()})
    fields = {"request_id": args.request_id or uuid.uuid4().hex, "kind": args.kind, "params": params}
    fields.update({"name": args.name, "timezone": args.tz})
    fields.update({"cron": args.cron} if args.cron else {"run_at": args.at})
    return fields


COMMANDS: dict[str, Command] = {
    "schedule": _schedule,
    "submit": _submit,
    "batch": _batch,
    "kinds": _kinds,
    "download": _download,
    "logs": _logs,
    "email": _email,
    "process": _process,
    "list": _list,
    "show": _show,
    "cancel": _cancel,
    "retry": _retry,
}


def since(text: str) -> str:
    """--since: an ISO-8601 day or time as given, or a duration ago (30m, 2h, 3d) as an ISO time."""
    match = re.fullmatch(r"(\d+)([mhd])", text.strip())
    if match:
        unit = {"m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
        return (datetime.now(UTC) - timedelta(**{unit: int(match.group(1))})).isoformat()
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CliError(f"--since {text!r}: give 2026-12-01, 2026-12-01T10:00Z, or 30m, 2h, 3d.", "usage") from None
    return text


def _files(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The files to upload before the job is submitted: FIELD and PATH of each --file (and of `process FILE`)."""
    if args.command == "process":
        return [("upload_id", args.file)]
    pairs = []
    for pair in getattr(args, "file", None) or []:
        field, sep, path = pair.partition("=")
        if not sep or not field or not path:
            raise CliError(f"--file {pair!r} is not FIELD=PATH.", "usage")
        pairs.append((field, path))
    return pairs


def _upload(config: Config, path: Path) -> dict[str, Any]:
    uploaded = upload.upload(config.url, config.token, path)
    Display().note(f"uploaded {uploaded['name']} ({uploaded['size']} bytes) as {uploaded['id']}")
    return uploaded


def _body(args: argparse.Namespace) -> str:
    if args.body is not None:
        return str(args.body)
    if args.body_file == "-":
        return sys.stdin.read()
    try:
        return Path(args.body_file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"Cannot read --body-file: {exc}", "usage") from None


def _as_json(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "json", False))


def _print_job_or_id(args: argparse.Namespace, job: dict[str, Any]) -> None:
    if _as_json(args):
        show.print_json(job)
    else:
        print(job["id"])
