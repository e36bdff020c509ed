"""`jobsctl schedule add|list|pause|resume|rm`: the schedules of protocol 1.1, from the command line."""

from __future__ import annotations

from typing import Any

from jobsctl.errors import CliError
from jobsctl.jobs import request
from jobsctl.session import Session

Schedule = dict[str, Any]
ACTIONS = {"pause": "schedule.pause", "resume": "schedule.resume", "rm": "schedule.delete"}


async def add(session: Session, fields: dict[str, Any]) -> Schedule:
    """schedule.create until schedule.created; the request_id (in `fields`) makes a resend safe."""
    reply = await request(session, {"type": "schedule.create", **fields})
    schedule: Schedule = reply["schedule"]
    return schedule


async def listed(session: Session) -> list[Schedule]:
    reply = await request(session, {"type": "schedule.list"})
    schedules: list[Schedule] = reply["schedules"]
    return schedules


async def change(session: Session, action: str, schedule_id: str) -> Schedule:
    reply = await request(session, {"type": ACTIONS[action], "schedule_id": await resolve(session, schedule_id)})
    schedule: Schedule = reply["schedule"]
    return schedule


async def resolve(session: Session, text: str) -> str:
    """A full schedule id, or the one of the user's schedules whose id starts with `text`."""
    prefix = text.lower()
    matches = [schedule["id"] for schedule in await listed(session) if str(schedule["id"]).startswith(prefix)]
    if len(matches) == 1:
        return str(matches[0])
    if matches:
        many = f"{len(matches)} of your schedules have an id starting with {text!r}; give more of it."
        raise CliError(many, "ambiguous")
    raise CliError(f"None of your schedules has an id starting with {text!r}.", "not_found")


def when(schedule: Schedule) -> str:
    if schedule.get("cron"):
        return f"{schedule['cron']} ({schedule['timezone']})"
    return f"at {_time(schedule.get('run_at'))}"


def state(schedule: Schedule) -> str:
    if schedule.get("paused"):
        return "paused"
    return "active" if schedule.get("next_run_at") else "done"


def print_schedules(schedules: list[Schedule]) -> None:
    print(f"{'ID':<36}  {'STATE':<6}  {'KIND':<16}  {'WHEN':<32}  {'NEXT RUN':<20}  LAST JOB")
    for schedule in schedules:
        last = schedule.get("last_job_id") or "-"
        if schedule.get("last_job_status"):
            last += f" ({schedule['last_job_status']})"
        if schedule.get("last_error"):
            last += f" no job: {schedule['last_error']}"
        row = f"{schedule['id']:<36}  {state(schedule):<6}  {schedule['kind']:<16}  {when(schedule):<32}"
        print(f"{row}  {_time(schedule.get('next_run_at')):<20}  {last}")


def _time(value: str | None) -> str:
    return value.replace("T", " ").split(".")[0].removesuffix("Z") + "Z" if value else "-"
