"""The Job: one unit of background work, owned by a user.

Rows change state only through tasks.services, which bumps `seq` on every
transition so clients can order events coming from several processes.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.utils import timezone


class JobStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Priority(models.TextChoices):
    """Protocol 1.1 priority: among jobs waiting in one queue, a higher one starts first (tasks.broker)."""

    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class Hold(models.TextChoices):
    """Why a queued job may not start yet (tasks.limits); blank: it may."""

    KIND_LIMIT = "kind_limit"
    USER_LIMIT = "user_limit"
    PAUSED = "paused"


UNFINISHED = (JobStatus.QUEUED, JobStatus.RUNNING)
FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


def empty_progress() -> dict[str, Any]:
    return {"current": 0, "total": None, "percent": None, "stage": "", "message": ""}


def build_progress(current: int, total: int | None, stage: str | None, message: str | None) -> dict[str, Any]:
    """A job's progress as the protocol shows it (a job's reports, tasks.progress; a batch's counts)."""
    percent = round(min(current / total, 1.0) * 100, 1) if total else None
    return {"current": current, "total": total, "percent": percent, "stage": stage or "", "message": message or ""}


TOP_LEVEL = models.Q(parent__isnull=True)
CHILDREN = models.Q(parent__isnull=False)


class Job(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="jobs")
    kind = models.CharField(max_length=64)
    # A child of a batch (protocol 1.1 Batches): its batch, deleted with it, and its 0-based place in it.
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children", db_index=False
    )
    position = models.PositiveIntegerField(null=True, blank=True, help_text="The child's place in its batch.")
    params = models.JSONField(default=dict)
    request_id = models.CharField(max_length=64, help_text="Client's idempotency key, unique per owner.")
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    priority = models.CharField(max_length=8, choices=Priority.choices, default=Priority.NORMAL)
    # Why a queued job waits with no task (tasks.limits): its kind's or its owner's limit, or a paused kind.
    hold = models.CharField(max_length=16, choices=Hold.choices, blank=True, default="")
    attempt = models.PositiveIntegerField(default=1)
    seq = models.PositiveBigIntegerField(default=1, help_text="Grows with every event of this job.")
    progress = models.JSONField(default=empty_progress)
    result = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    celery_task_id = models.CharField(max_length=64, blank=True, help_text="Task id of the current attempt.")
    # Brokers do not count redeliveries, so the job does: claims of this attempt
    # by a task, each after the previous holder died.
    deliveries = models.PositiveIntegerField(default=0)
    worker = models.CharField(max_length=255, blank=True, help_text="host:pid of the process running it.")
    # The job's artifacts as its Job object lists them ([{id, name, size, content_type}]), kept with the row
    # so that no event reads another table; Artifact rows are the files themselves.
    artifacts = models.JSONField(default=list, blank=True)
    log_count = models.PositiveIntegerField(default=0, help_text="Log lines ever written; the last one's n.")
    # Counted when the job finishes (tasks.transitions), for kinds whose run can leave some (tasks.kinds.Unknowns):
    # the parts, e.g. email recipients, whose outcome is unknown. Null for other kinds and unfinished jobs.
    unknown_outcome = models.PositiveIntegerField(
        null=True, blank=True, help_text="Parts (email recipients) whose outcome is unknown, as of the job's end."
    )
    # What a history search looks in, lowercased: the id, the request_id and the public params' text
    # (tasks.history). Indexed with trigrams on PostgreSQL.
    search_text = models.TextField(blank=True, default="")
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Last sign of life while running.")
    # A default rather than auto_now_add: a batch gives its children times of its own (tasks.batches).
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "request_id"], name="job_request_id_unique_per_owner"),
        ]
        # History pages go newest first by (created_at, id) from a cursor (tasks.history): one index per
        # filter a page is asked with, so a page is an index range scan however many jobs there are.
        # They hold top-level jobs only (parent NULL, what lists show without parent_id), so a batch of
        # 10,000 children costs a top-level page nothing; a batch's children have an index of their own,
        # and the reconciler's and the operations view's queries over every job the plain status index.
        indexes = [
            models.Index(fields=["owner", "-created_at", "-id"], name="job_owner_created", condition=TOP_LEVEL),
            models.Index(
                fields=["owner", "status", "-created_at", "-id"], name="job_owner_status_created", condition=TOP_LEVEL
            ),
            models.Index(
                fields=["owner", "kind", "-created_at", "-id"], name="job_owner_kind_created", condition=TOP_LEVEL
            ),
            models.Index(fields=["-created_at", "-id"], name="job_created", condition=TOP_LEVEL),
            models.Index(fields=["status", "-created_at", "-id"], name="job_status_created", condition=TOP_LEVEL),
            models.Index(fields=["parent", "-created_at", "-id"], name="job_children", condition=CHILDREN),
            models.Index(fields=["status"], name="job_status"),
            models.Index(fields=["finished_at"], name="job_finished_at"),
            # The jobs a freed slot may release, in the order they go (tasks.limits): few, so a small index.
            models.Index(fields=["kind", "hold", "created_at"], name="job_held", condition=~models.Q(hold="")),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED


class KindState(models.Model):
    """A kind's switches for operators (tasks.limits): a paused kind's queued jobs wait. Its row is also
    the lock that makes the claims of one kind with a concurrency limit take turns."""

    kind = models.CharField(max_length=64, primary_key=True)
    paused = models.BooleanField(default=False)
    changed_at = models.DateTimeField(auto_now=True)
    changed_by = models.CharField(max_length=150, blank=True, help_text="Who paused or resumed it last.")

    def __str__(self) -> str:
        return f"{self.kind} ({'paused' if self.paused else 'running'})"


class BatchMode(models.TextChoices):
    PARALLEL = "parallel"
    SEQUENCE = "sequence"


BATCH_KIND = "batch"
COUNTED = ("queued", "running", "succeeded", "failed", "cancelled")


class Batch(models.Model):
    """The aggregate of a batch job (kind "batch"): how many of its children are in each state.

    The counters move in each child's transition transaction, by one, with an
    UPDATE of this row (tasks.batches): O(1) per child, never a recount. The
    reconciler compares them with a recount and repairs them if they disagree.
    """

    job = models.OneToOneField(Job, primary_key=True, on_delete=models.CASCADE, related_name="batch_counts")
    mode = models.CharField(max_length=16, choices=BatchMode.choices)
    total = models.PositiveIntegerField()
    queued = models.IntegerField(default=0)
    running = models.IntegerField(default=0)
    succeeded = models.IntegerField(default=0)
    failed = models.IntegerField(default=0)
    cancelled = models.IntegerField(default=0)
    # Set by job.cancel of the batch: once its last child has finished, the batch is cancelled, not failed.
    cancel_requested = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"batch {self.job_id}: {self.counts()}"

    def counts(self) -> dict[str, int]:
        """The protocol's `batch` field."""
        return {"total": self.total, **{status: getattr(self, status) for status in COUNTED}}

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed + self.cancelled


class DeliveryStatus(models.TextChoices):
    # Claimed and handed to the mail server, outcome not yet recorded. A row
    # still "sending" after its run ended means the outcome is unknown.
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class EmailDelivery(models.Model):
    """One recipient of an email.send job: the durable record that makes each message go out at most once.

    Written by tasks.emails only; see its docstring for the protocol.
    """

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="email_deliveries")
    recipient = models.CharField(max_length=320)
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices)
    error = models.TextField(blank=True, help_text="The mail server's reply when it refused the message.")
    attempt = models.PositiveIntegerField(help_text="The job attempt that last tried this recipient.")
    message_id = models.CharField(max_length=255, help_text="The same on every attempt, so duplicates can be spotted.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["job", "created_at"]
        constraints = [
            models.UniqueConstraint(fields=["job", "recipient"], name="email_delivery_once_per_recipient"),
        ]

    def __str__(self) -> str:
        return f"{self.recipient} ({self.status})"


class JobEvent(models.Model):
    """One state change of a job (protocol 1.1 Event), written in the transition's transaction (tasks.services)."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveBigIntegerField()
    event = models.CharField(max_length=32, help_text="job.queued, job.started, job.succeeded …")
    at = models.DateTimeField()
    note = models.CharField(max_length=200, blank=True, help_text="Why, when it is not the plain course of events.")

    class Meta:
        ordering = ["job", "seq"]
        indexes = [models.Index(fields=["job", "seq"], name="job_event_job_seq")]

    def __str__(self) -> str:
        return f"{self.job_id} #{self.seq} {self.event}"


class LogLevel(models.TextChoices):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class JobLogLine(models.Model):
    """One line of a job's log (protocol 1.1 LogLine). Written by tasks.logs only, which keeps the last ones."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="log_lines")
    n = models.PositiveIntegerField(help_text="Grows by one per line of the job, from 1.")
    at = models.DateTimeField()
    level = models.CharField(max_length=8, choices=LogLevel.choices)
    text = models.TextField()
    size = models.PositiveIntegerField(help_text="The text's length in UTF-8 bytes, for the log's size limit.")

    class Meta:
        ordering = ["job", "n"]
        constraints = [models.UniqueConstraint(fields=["job", "n"], name="job_log_line_once")]

    def __str__(self) -> str:
        return f"{self.job_id} #{self.n} {self.level}: {self.text[:60]}"


def artifact_name(artifact: Artifact, filename: str) -> str:
    """The file's path in storage. Generated: the name a kind gives is for display only."""
    return f"artifacts/{artifact.created_at:%Y/%m}/{artifact.pk}"


class Artifact(models.Model):
    """A file a job produced (Context.artifact), downloaded by the job's owner at /api/artifacts/<id>/."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="artifact_files")
    name = models.CharField(max_length=255, help_text="The download's file name, sanitised.")
    content_type = models.CharField(max_length=255)
    size = models.PositiveBigIntegerField(help_text="Bytes.")
    file = models.FileField(upload_to=artifact_name, max_length=255)
    # A default rather than auto_now_add: artifact_name needs it before the row is saved.
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["job", "created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.size} bytes)"

    def payload(self) -> dict[str, Any]:
        """The protocol's Artifact object."""
        return {"id": str(self.pk), "name": self.name, "size": self.size, "content_type": self.content_type}


@receiver(post_delete, sender=Artifact)
def _delete_stored_file(sender: type[Artifact], instance: Artifact, **kwargs: Any) -> None:
    """Remove the file with its row (its job deleted by retention, or retried), once the delete has committed."""
    name, storage = instance.file.name, instance.file.storage
    if name:
        transaction.on_commit(lambda: storage.delete(name), robust=True)
