"""Every frame the server sends a client, built here and nowhere else (shared/protocol.md, docs/protocol.md).

Functions named after a message return its finished JSON text; `*_payload`
functions return the objects that frames carry (Job, Notice, Notification).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.utils import timezone

from notifications.inbox import Page
from notifications.models import Notice, Notification
from schedules.models import Schedule
from tasks import kinds
from tasks.estimates import eta_seconds
from tasks.kinds import Kind
from tasks.logs import payload as log_line
from tasks.models import BATCH_KIND, Job, JobEvent, JobLogLine

PROTOCOL_VERSION = 1
PONG = '{"type":"pong"}'


def dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def timestamp(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- objects --------------------------------------------------------------------------------------


def job_payload(job: Job) -> dict[str, Any]:
    """The protocol's Job object."""
    return {
        "id": str(job.pk),
        "kind": job.kind,
        "status": job.status,
        "priority": job.priority,
        "params": kinds.public_params(job.kind, job.params),
        "attempt": job.attempt,
        "seq": job.seq,
        "progress": job.progress,
        "result": job.result,
        "error": job.error,
        "created_at": timestamp(job.created_at),
        "started_at": timestamp(job.started_at),
        "finished_at": timestamp(job.finished_at),
        # Extension (docs/protocol.md): the Celery task of the current attempt, for Flower.
        "task_id": job.celery_task_id or None,
        "artifacts": job.artifacts,
        "eta_seconds": eta_seconds(job.progress, job.started_at, timezone.now()) if job.status == "running" else None,
        "parent_id": str(job.parent_id) if job.parent_id else None,
        "batch": job.batch_counts.counts() if job.kind == BATCH_KIND else None,
        # Extension (docs/protocol.md): what job.retry's resend_unknown would redo (email recipients).
        "unknown_outcome": job.unknown_outcome,
    }


def event_payload(event: JobEvent) -> dict[str, Any]:
    """The protocol's Event object (1.1): one state change of a job."""
    return {"seq": event.seq, "event": event.event, "at": timestamp(event.at), "note": event.note}


def kind_payload(kind: Kind) -> dict[str, Any]:
    """The protocol's Kind object (1.1), with the dashboard's words for its submit button (extension)."""
    return {
        "name": kind.name,
        "title": kind.title,
        "description": kind.description,
        "params_schema": kind.schema,
        "queue": kind.queue,
        "submit_label": kind.submit_label,
    }


def schedule_payload(schedule: Schedule) -> dict[str, Any]:
    """The protocol's Schedule object (1.1); `last_error` and `last_job_status` are extensions."""
    last_job = schedule.last_job if schedule.last_job_id is not None else None
    return {
        "id": str(schedule.pk),
        "name": schedule.name,
        "kind": schedule.kind,
        "params": kinds.public_params(schedule.kind, schedule.params),
        "cron": schedule.cron or None,
        "run_at": timestamp(schedule.run_at),
        "timezone": schedule.timezone,
        "paused": schedule.paused,
        "next_run_at": timestamp(schedule.next_run_at),
        "last_run_at": timestamp(schedule.last_run_at),
        "last_job_id": str(schedule.last_job_id) if schedule.last_job_id is not None else None,
        "created_at": timestamp(schedule.created_at),
        "last_error": schedule.last_error or None,
        "last_job_status": last_job.status if last_job is not None else None,
    }


def notice_payload(notice: Notice) -> dict[str, Any]:
    """The Notice object of `hello.notices` and the `notice` event (extension)."""
    return {
        "id": notice.pk,
        "level": notice.level,
        "text": notice.text,
        "created_at": timestamp(notice.created_at),
        "expires_at": timestamp(notice.expires_at),
    }


def notification_payload(notification: Notification) -> dict[str, Any]:
    """The Notification object (extension). `job` names the finished job (select_related("job") when listing)."""
    job = None
    if notification.job is not None:
        job = {"id": str(notification.job.pk), "kind": notification.job.kind}
    return {
        "id": notification.pk,
        "kind": notification.kind,
        "level": notification.level,
        "text": notification.text,
        "job": job,
        "notice_id": notification.notice_id,
        "created_at": timestamp(notification.created_at),
        "read": notification.read_at is not None,
    }


# --- frames ---------------------------------------------------------------------------------------


def hello(user: User, jobs: list[dict[str, Any]], kind_names: list[str], extension: dict[str, Any]) -> str:
    identity = {"id": user.pk, "username": user.get_username()}
    hello = {"type": "hello", "protocol": PROTOCOL_VERSION, "user": identity, "jobs": jobs, "kinds": kind_names}
    return dumps({**hello, **extension})


def kind_list(request_id: str | None) -> str:
    return dumps({"type": "kind.list", "request_id": request_id, "kinds": [kind_payload(k) for k in kinds.all_kinds()]})


def accepted(request_id: str, job: dict[str, Any]) -> str:
    return dumps({"type": "job.accepted", "request_id": request_id, "job": job})


def job_event(event: str, job: Job) -> str:
    return dumps({"type": event, "job": job_payload(job)})


def progress_event(
    job_id: str,
    seq: int,
    progress: dict[str, Any],
    eta: float | None = None,
    parent_id: str | None = None,
    batch: dict[str, int] | None = None,
) -> str:
    # eta_seconds: an extension of the small form, the same estimate the Job object carries (1.1).
    # A batch's progress carries its counts (1.1); a child's names its batch, for followers to file it under.
    body = {"type": "job.progress", "job_id": job_id, "seq": seq, "progress": progress, "eta_seconds": eta}
    if batch is not None:
        body["batch"] = batch
    if parent_id is not None:
        body["parent_id"] = parent_id
    return dumps(body)


def job_list(request_id: str | None, jobs: list[Job], next_cursor: str | None, with_owner: bool = False) -> str:
    # owner: an extension in staff's listings of everyone's jobs (the owner's username).
    payloads = [
        {**job_payload(job), "owner": job.owner.get_username()} if with_owner else job_payload(job) for job in jobs
    ]
    return dumps({"type": "job.list", "request_id": request_id, "jobs": payloads, "next_cursor": next_cursor})


def job_detail(request_id: str | None, job: Job, events: list[JobEvent], logs: list[JobLogLine], dropped: int) -> str:
    return dumps(
        {
            "type": "job.detail",
            "request_id": request_id,
            "job": job_payload(job),
            "events": [event_payload(event) for event in events],
            "logs": [log_line(line) for line in logs],
            "logs_dropped": dropped,
        }
    )


def job_logs(request_id: str | None, job_id: str, lines: list[JobLogLine], dropped: int) -> str:
    # logs_dropped: an extension, as in job.detail.
    body = {"type": "job.logs", "request_id": request_id, "job_id": job_id, "lines": [log_line(line) for line in lines]}
    return dumps({**body, "logs_dropped": dropped})


def job_log(job_id: str, lines: list[dict[str, Any]]) -> str:
    return dumps({"type": "job.log", "job_id": job_id, "lines": lines})


def batch_part(request_id: str, received: int) -> str:
    """A part of a batch.submit was received (extension); send the next from `received`."""
    return dumps({"type": "batch.part", "request_id": request_id, "received": received})


def batch_follow(request_id: str | None, batch_id: str, following: bool) -> str:
    """The answer to batch.follow and batch.unfollow (extension)."""
    return dumps({"type": "batch.follow", "request_id": request_id, "job_id": batch_id, "following": following})


def schedule_list(request_id: str | None, schedules: list[Schedule]) -> str:
    return dumps(
        {"type": "schedule.list", "request_id": request_id, "schedules": [schedule_payload(s) for s in schedules]}
    )


def schedule_changed(schedule: Schedule, request_id: str | None, created: bool, deleted: bool) -> str:
    """schedule.created (a new one) or schedule.changed (paused, resumed, deleted, or run by the scheduler)."""
    if created:
        return dumps({"type": "schedule.created", "request_id": request_id, "schedule": schedule_payload(schedule)})
    body = {"type": "schedule.changed", "request_id": request_id, "schedule": schedule_payload(schedule)}
    return dumps({**body, "deleted": deleted})


def job_bulk(request_id: str | None, matched: int, changed: int, dry_run: bool) -> str:
    body = {"type": "job.bulk", "request_id": request_id, "matched": matched, "changed": changed}
    return dumps({**body, "dry_run": True} if dry_run else body)


def notice_event(notice: Notice) -> str:
    return dumps({"type": "notice", "notice": notice_payload(notice)})


def notification_created(notification: dict[str, Any], unread: int) -> str:
    return dumps({"type": "notification.created", "notification": notification, "unread": unread})


def notification_unread(unread: int, read: list[int], read_up_to: int | None) -> str:
    return dumps({"type": "notification.unread", "unread": unread, "read": read, "read_up_to": read_up_to})


def notification_list(page: Page, before: int | None) -> str:
    notifications = [notification_payload(row) for row in page.notifications]
    return dumps(
        {
            "type": "notification.list",
            "before": before,
            "notifications": notifications,
            "more": page.more,
            "unread": page.unread,
        }
    )


def ops_stats(snapshot: dict[str, Any], queues: list[dict[str, Any]], workers: list[str]) -> str:
    """The operations view's numbers (extension, staff only; docs/protocol.md)."""
    now = snapshot["at"]
    waiting = [
        {
            "queue": row["queue"],
            "waiting": row["waiting"],
            "oldest_age_seconds": round((now - row["oldest_since"]).total_seconds(), 1)
            if row["oldest_since"]
            else None,
        }
        for row in queues
    ]
    series = snapshot["per_minute"]
    per_minute = {**series, "minutes": [timestamp(minute) for minute in series["minutes"]]}
    body = {"type": "ops.stats", "at": timestamp(now), "kinds": snapshot["kinds"], "queues": waiting}
    return dumps({**body, "workers": workers, "per_minute": per_minute, "controls": snapshot["controls"]})


def ops_kind(request_id: str | None, kind: str, paused: bool) -> str:
    """The answer to ops.kind.pause and ops.kind.resume (extension, staff only)."""
    return dumps({"type": "ops.kind", "request_id": request_id, "kind": kind, "paused": paused})


def error(code: str, message: str, request_id: str | None = None, details: dict[str, Any] | None = None) -> str:
    body: dict[str, Any] = {"type": "error", "request_id": request_id, "code": code, "message": message}
    if details:
        body["details"] = details
    return dumps(body)
