"""The domain events of lower apps that the notification centre acts on (connected in NotificationsConfig.ready)."""

from __future__ import annotations

from typing import Any

from notifications import inbox
from tasks import events as task_events
from tasks.models import Job


def connect() -> None:
    task_events.job_finished.connect(_job_finished, dispatch_uid="notifications.job_finished")


def _job_finished(sender: Any, job: Job, **fields: Any) -> None:
    # Sent inside the terminal transition's transaction: the notification commits with the job's final state.
    # A child of a batch tells nobody: its batch does, once, when the last child finished.
    if job.parent_id is None:
        inbox.job_finished(job)
