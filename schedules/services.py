"""Making, listing, pausing, resuming and deleting schedules, for their owner (the gateway and jobsctl call these).

Every change is told to the owner's sockets after it commits (schedules.events).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from schedules import calendar, events
from schedules.errors import ScheduleNotFound
from schedules.models import Schedule
from tasks import kinds
from tasks.errors import InvalidParams, JobConflict


@dataclass(frozen=True)
class Request:
    """What a schedule.create asks for, as the client sent it (checked by `create`)."""

    request_id: str
    kind: str
    params: dict[str, Any]
    name: str = ""
    cron: str | None = None
    run_at: str | None = None
    timezone: str = "UTC"


def create(owner: User, request: Request, origin: str | None = None) -> tuple[Schedule, bool]:
    """Check and record a schedule. The same request_id again returns the same schedule, created=False."""
    existing = Schedule.objects.filter(owner=owner, request_id=request.request_id).first()
    if existing is not None:
        return existing, False
    cron, run_at = _when(request)
    params = _params(owner, request.kind, request.params)
    now = timezone.now()
    try:
        with transaction.atomic():
            _check_quota(owner)
            schedule = Schedule.objects.create(
                owner=owner,
                request_id=request.request_id,
                name=request.name,
                kind=request.kind,
                params=params,
                cron=cron,
                run_at=run_at,
                timezone=request.timezone,
                next_run_at=run_at or calendar.next_due(cron, request.timezone, now),
                created_at=now,
            )
            tell(schedule, request.request_id, origin, created=True)
    except IntegrityError:
        # Two sockets of one user raced with the same request_id: the first one won.
        return Schedule.objects.get(owner=owner, request_id=request.request_id), False
    return schedule, True


def owned(owner: User) -> list[Schedule]:
    return list(Schedule.objects.filter(owner=owner).select_related("last_job"))


def pause(owner: User, schedule_id: str, request_id: str | None = None, origin: str | None = None) -> Schedule:
    """Stop a schedule's due times until it is resumed (those that pass meanwhile never run)."""
    with transaction.atomic():
        schedule = _locked(owner, schedule_id)
        schedule.paused = True
        schedule.next_run_at = None
        schedule.save(update_fields=["paused", "next_run_at", "updated_at"])
        tell(schedule, request_id, origin)
    return schedule


def resume(owner: User, schedule_id: str, request_id: str | None = None, origin: str | None = None) -> Schedule:
    """Run a paused schedule again from its next due time after now (a one-off that has not run: at its time)."""
    with transaction.atomic():
        schedule = _locked(owner, schedule_id)
        schedule.paused = False
        schedule.next_run_at = following(schedule, timezone.now()) if schedule.cron else _one_off_due(schedule)
        schedule.save(update_fields=["paused", "next_run_at", "updated_at"])
        tell(schedule, request_id, origin)
    return schedule


def delete(owner: User, schedule_id: str, request_id: str | None = None, origin: str | None = None) -> Schedule:
    """Delete a schedule; the jobs it made stay. The deleted schedule, as it was."""
    with transaction.atomic():
        schedule = _locked(owner, schedule_id)
        kept_id = schedule.pk
        schedule.delete()
        schedule.pk = kept_id  # the answer names what was deleted
        tell(schedule, request_id, origin, deleted=True)
    return schedule


def following(schedule: Schedule, after: datetime) -> datetime | None:
    """The due time after `after` of a recurring schedule; None for a one-off (it runs once)."""
    if not schedule.cron:
        return None
    return calendar.next_due(schedule.cron, schedule.timezone, after)


def _one_off_due(schedule: Schedule) -> datetime | None:
    return schedule.run_at if schedule.last_run_at is None else None


def _when(request: Request) -> tuple[str, datetime | None]:
    """The cron expression (blank for a one-off) and the one-off time; InvalidParams names a bad field."""
    if (request.cron is None) == (request.run_at is None):
        raise InvalidParams("Give exactly one of cron and run_at.", {"cron": "Give exactly one of cron and run_at."})
    try:
        calendar.zone(request.timezone)
    except calendar.CalendarError as exc:
        raise InvalidParams("The timezone is not valid.", {"timezone": str(exc)}) from None
    if request.cron is not None:
        cron = " ".join(request.cron.split())
        try:
            calendar.check(cron)
        except calendar.CalendarError as exc:
            raise InvalidParams("The cron expression is not valid.", {"cron": str(exc)}) from None
        return cron, None
    assert request.run_at is not None
    return "", _moment(request.run_at, request.timezone)


def _moment(text: str, zone_name: str) -> datetime:
    """An ISO-8601 time; one without an offset is read in the schedule's timezone."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        detail = "Give an ISO-8601 time, like 2027-01-15T02:00:00Z."
        raise InvalidParams("The time is not valid.", {"run_at": detail}) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=calendar.zone(zone_name))
    return moment.astimezone(UTC)


def _params(owner: User, kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """The params checked as a submit checks them; their fields named `params.<field>`."""
    try:
        return kinds.validate(kind, params, owner.pk)
    except InvalidParams as exc:
        details = {f"params.{field}": text for field, text in (exc.details or {}).items()}
        raise InvalidParams(exc.message, details) from None


def _check_quota(owner: User) -> None:
    User.objects.select_for_update().filter(pk=owner.pk).first()  # one create at a time per owner
    if Schedule.objects.filter(owner=owner).count() >= settings.JOBS_SCHEDULES_PER_USER:
        most = settings.JOBS_SCHEDULES_PER_USER
        raise JobConflict(f"You have {most} schedules, the most allowed: delete one first.")


def _locked(owner: User, schedule_id: str) -> Schedule:
    try:
        key = uuid.UUID(schedule_id)
    except ValueError:
        raise ScheduleNotFound() from None
    schedule = Schedule.objects.select_for_update().filter(pk=key, owner=owner).first()
    if schedule is None:
        raise ScheduleNotFound()
    return schedule


def tell(
    schedule: Schedule,
    request_id: str | None = None,
    origin: str | None = None,
    created: bool = False,
    deleted: bool = False,
) -> None:
    """Tell the owner's sockets, once the change commits (at once outside a transaction)."""
    fields = {"request_id": request_id, "origin": origin, "created": created, "deleted": deleted}
    transaction.on_commit(lambda: events.schedule_changed.send(sender=None, schedule=schedule, **fields), robust=True)
