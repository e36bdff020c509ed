"""Each user's notifications: created when a job of theirs finishes or a notice addresses them,
listed and marked read over the socket.

`job_finished` receives tasks' job_finished event inside a job's terminal
transition (connected in NotificationsConfig.ready), so the notification
exists exactly when the job's final state does. Every change is announced
after the commit (notifications.events), for the gateway to tell the sockets.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from notifications import events
from notifications.models import NOTICE_MAX_CHARS, Level, Notice, Notification, NotificationKind
from patches.prepared import Prepared, Writes
from tasks.errors import ServiceError
from tasks.models import BATCH_KIND, Job, JobStatus

FANOUT_BATCH = 1000


class NotificationNotFound(ServiceError):
    code = "not_found"

    def __init__(self) -> None:
        # The same words whether the notification is missing or someone else's.
        super().__init__("No such notification.")


def job_finished(job: Job) -> Notification:
    """Store the owner's notification of a job's terminal state; called inside the transition's transaction."""
    failed = job.status == JobStatus.FAILED
    notification = Notification(
        user_id=job.owner_id,
        kind=NotificationKind.JOB_FAILED if failed else NotificationKind.JOB_SUCCEEDED,
        level=Level.WARNING if failed else Level.INFO,
        text=_job_text(job, failed),
        job=job,
    )
    _NOTIFICATIONS.create(notification)
    events.send_on_commit(events.notification_created, notification=notification)
    return notification


# Written inside every job's final transition, while SQLite's one write lock is held: its SQL built once
# (patches.prepared.Writes; no receiver listens to a Notification's save signals, which it does not send).
_NOTIFICATIONS = Writes(Notification)


def notice_sent(notice: Notice, user_ids: Iterable[int]) -> int:
    """One unread notification per addressed user, offline ones included; how many were made."""
    made = 0
    batch: list[Notification] = []
    for user_id in user_ids:
        batch.append(
            Notification(
                user_id=user_id, kind=NotificationKind.NOTICE, level=notice.level, text=notice.text, notice=notice
            )
        )
        if len(batch) == FANOUT_BATCH:
            made += len(Notification.objects.bulk_create(batch))
            batch = []
    return made + len(Notification.objects.bulk_create(batch))


def unread_count(user_id: int) -> int:
    return _UNREAD.first(user_id=user_id) or 0


# Part of every hello and of every notification a socket is told of: compiled once (patches.prepared).
# `count()` is no queryset, so the count is the one row of a GROUP BY user_id (none: no unread).
_UNREAD = Prepared(
    lambda user_id: (
        Notification.objects.filter(user_id=user_id, read_at__isnull=True)
        .order_by()
        .values("user_id")
        .annotate(unread=Count("id"))
        .values_list("unread", flat=True)
    ),
    user_id=User._meta.pk,
)


@dataclass(frozen=True)
class Page:
    notifications: list[Notification]
    more: bool  # older ones exist
    unread: int


def page(user: User, before: int | None, limit: int) -> Page:
    """A page of the user's notifications, newest first, older than `before` when given."""
    rows = Notification.objects.filter(user=user).select_related("job").order_by("-id")
    if before is not None:
        rows = rows.filter(id__lt=before)
    found = list(rows[: limit + 1])
    return Page(found[:limit], more=len(found) > limit, unread=unread_count(user.pk))


def mark_read(user: User, notification_id: int) -> None:
    """Mark one of the user's notifications read; every tab of the user hears the new count."""
    with transaction.atomic():
        if not Notification.objects.filter(pk=notification_id, user=user).exists():
            raise NotificationNotFound()
        Notification.objects.filter(pk=notification_id, read_at__isnull=True).update(read_at=timezone.now())
        # Also when it was read already: the asking tab gets its answer, and the count is right.
        events.send_on_commit(events.notifications_read, user_id=user.pk, read=[notification_id], read_up_to=None)


def mark_all_read(user: User) -> None:
    """Mark every notification the user has now read; one made meanwhile (a higher id) stays unread."""
    with transaction.atomic():
        newest = Notification.objects.filter(user=user).order_by("-id").values_list("id", flat=True).first()
        if newest is not None:
            unread = Notification.objects.filter(user=user, read_at__isnull=True, id__lte=newest)
            unread.update(read_at=timezone.now())
        events.send_on_commit(events.notifications_read, user_id=user.pk, read=[], read_up_to=newest)


def of_notice(user_id: int, notice_id: int) -> Notification | None:
    """The user's notification of a notice; None if the notice did not address the user when it was sent
    (not in its group then: left it, or joined later; or inactive), who must then not be shown it."""
    return Notification.objects.filter(user_id=user_id, notice_id=notice_id).first()


def _job_text(job: Job, failed: bool) -> str:
    title = job.params.get("title") if job.kind == BATCH_KIND else None
    name = f"Batch {title!r}" if title else f"{job.kind} job"
    if not failed:
        return f"{name} succeeded."
    message = (job.error or {}).get("message") or "no reason given"
    return f"{name} failed: {message}"[:NOTICE_MAX_CHARS]
