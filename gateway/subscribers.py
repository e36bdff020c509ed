"""Domain events of the apps below, told to the open sockets they concern (connected in GatewayConfig.ready).

Each receiver runs after the change's transaction committed (the apps send
their events on commit), builds what the sockets need and hands it to the one
publisher (transport.publisher), which sends it to the channel-layer group of
the user (or of a notice's audience) from its own loop:

* a job changed or progressed: a finished frame, sent as it is, to its owner's sockets (a
  child of a batch: to the sockets that follow its batch); a batch's progress goes as a
  message each socket coalesces (JobsConsumer.batch_progress);
* a job wrote log lines: a finished frame to the sockets that follow its log, and
  when the job finishes, word to those sockets to stop following;
* a notification was made or read: a message each socket completes with the
  unread count it reads when the message arrives, after every earlier commit,
  so the last count a tab shows is the true one whatever order processes
  publish in;
* a notice was sent: the notice frame, which each socket shows only if its user
  was addressed (JobsConsumer.notice_broadcast);
* a schedule was made, changed or run: its frame to the owner's sockets, but the one
  that asked for the change (it had the same frame as its answer);
* a credential ended: each socket of the user closes if it rode in on it.
"""

from __future__ import annotations

from typing import Any

from accounts import events as account_events
from gateway import frames
from notifications import events as notification_events
from notifications.models import Notice, Notification
from schedules import events as schedule_events
from schedules.models import Schedule
from tasks import events as task_events
from tasks.models import Job
from transport.groups import batch_group, job_log_group, notice_group, user_group
from transport.publisher import publisher


def connect() -> None:
    task_events.job_changed.connect(job_changed, dispatch_uid="gateway.job_changed")
    task_events.job_progressed.connect(job_progressed, dispatch_uid="gateway.job_progressed")
    task_events.job_logged.connect(job_logged, dispatch_uid="gateway.job_logged")
    notification_events.notification_created.connect(notification_created, dispatch_uid="gateway.notification")
    notification_events.notifications_read.connect(notifications_read, dispatch_uid="gateway.notifications_read")
    notification_events.notice_sent.connect(notice_sent, dispatch_uid="gateway.notice_sent")
    account_events.credential_ended.connect(credential_ended, dispatch_uid="gateway.credential_ended")
    schedule_events.schedule_changed.connect(schedule_changed, dispatch_uid="gateway.schedule_changed")


def job_changed(sender: Any, event: str, job: Job, **fields: Any) -> None:
    # A child of a batch is news only to the sockets that follow its batch; its batch's counts reach the owner.
    audience = user_group(job.owner_id) if job.parent_id is None else batch_group(str(job.parent_id))
    publisher.send(audience, frames.job_event(event, job))
    if job.is_finished:
        # After its last log lines (they commit before the final state): followers stop following.
        publisher.send_message(job_log_group(str(job.pk)), {"type": "job.logs.end", "job_id": str(job.pk)})


def job_progressed(
    sender: Any,
    owner_id: int,
    job_id: str,
    seq: int,
    progress: dict[str, Any],
    eta_seconds: float | None,
    parent_id: str | None = None,
    batch: dict[str, int] | None = None,
    **fields: Any,
) -> None:
    text = frames.progress_event(job_id, seq, progress, eta_seconds, parent_id, batch)
    if batch is not None:
        # A batch's progress comes from every process that moves its children: each socket coalesces it.
        publisher.send_message(user_group(owner_id), {"type": "batch.progress", "job_id": job_id, "text": text})
        return
    publisher.send(user_group(owner_id) if parent_id is None else batch_group(parent_id), text)


def job_logged(sender: Any, job_id: str, lines: list[dict[str, Any]], **fields: Any) -> None:
    """New log lines go to the sockets that follow the job's log, as one frame."""
    publisher.send(job_log_group(job_id), frames.job_log(job_id, lines))


def notification_created(sender: Any, notification: Notification, **fields: Any) -> None:
    message = {"type": "notification.created", "notification": frames.notification_payload(notification)}
    publisher.send_message(user_group(notification.user_id), message)


def notifications_read(sender: Any, user_id: int, read: list[int], read_up_to: int | None, **fields: Any) -> None:
    message = {"type": "notification.unread", "read": read, "read_up_to": read_up_to}
    publisher.send_message(user_group(user_id), message)


def notice_sent(sender: Any, notice: Notice, **fields: Any) -> None:
    message = {"type": "notice.broadcast", "notice_id": notice.pk, "text": frames.notice_event(notice)}
    publisher.send_message(notice_group(notice.group_id), message)


def schedule_changed(
    sender: Any,
    schedule: Schedule,
    request_id: str | None,
    origin: str | None,
    created: bool,
    deleted: bool,
    **fields: Any,
) -> None:
    """To every socket of the owner but the one that asked (it had its answer)."""
    text = frames.schedule_changed(schedule, request_id, created, deleted)
    publisher.send_message(user_group(schedule.owner_id), {"type": "schedule.frame", "text": text, "origin": origin})


def credential_ended(sender: Any, user_id: int, session_key: str | None, token_id: int | None, **fields: Any) -> None:
    message = {"type": "auth.ended", "session_key": session_key, "token_id": token_id}
    publisher.send_message(user_group(user_id), message)
