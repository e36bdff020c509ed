"""Runs one attempt of a job inside a Celery task: claim, run the kind, record the outcome."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections

from tasks import batches, kinds, liveness, services
from tasks.artifacts import ArtifactWriter
from tasks.errors import InvalidParams, JobCancelled, JobFailure
from tasks.kinds.base import Context, Kind
from tasks.logs import LogBuffer
from tasks.progress import ProgressReporter

logger = logging.getLogger(__name__)
_pause = time.sleep  # between attempts to write an outcome (tests wait for no one)


def run_job(job_id: str, task_id: str) -> None:
    """Run the job if this task may claim it; return quietly if not (late, duplicate or cancelled)."""
    job = services.start(job_id, task_id)
    if job is None:
        logger.info("job %s: task %s has nothing to run", job_id, task_id)
        return
    kind = kinds.get(job.kind)
    try:
        # A step of a sequence gets the earlier steps' results it names ({{ steps.N.result.PATH }}) now.
        params = kinds.parse(kind, batches.substitute(job), job.owner_id)
    except InvalidParams as exc:
        # What the params refer to changed since they were accepted (an upload was deleted, say),
        # or a step names a result that its earlier step did not give.
        problems = "; ".join(f"{field}: {text}" for field, text in (exc.details or {}).items())
        services.fail(job_id, "invalid_params", f"The job's parameters are not valid ({problems}).")
        return
    interval = settings.JOBS_PROGRESS_INTERVAL
    reporter, logs = ProgressReporter(job_id, interval, after_frame=True), LogBuffer(job_id, interval)
    context = Context(job_id, job.owner_id, job.attempt, params, reporter, logs, ArtifactWriter(job_id))
    heartbeat = liveness.Heartbeat(job_id, job.worker)
    heartbeat.start()
    try:
        _run(kind, context, reporter, logs)
    finally:
        heartbeat.stop()


def _run(kind: Kind, context: Context[Any], reporter: ProgressReporter, logs: LogBuffer) -> None:
    """Run the kind and record how it ended, after its last log lines."""
    job_id = context.job_id

    def closed() -> dict[str, Any] | None:
        logs.close()
        return reporter.close()

    try:
        result = kind.run(context)
    except JobCancelled:
        _record(job_id, closed)
        logger.info("job %s: stopped, it was cancelled", job_id)
    except JobFailure as exc:
        code, message = exc.code, exc.message
        _record(job_id, lambda: services.fail(job_id, code, message, closed()))
    except SoftTimeLimitExceeded:
        _record(job_id, lambda: services.fail(job_id, "timeout", "The job ran past its time limit.", closed()))
    except Exception:
        logger.exception("job %s: unexpected error", job_id)
        internal = "The job failed because of an internal error."
        _record(job_id, lambda: services.fail(job_id, "internal", internal, closed()))
        raise  # so Celery and Flower show the task as failed, with the traceback
    else:
        _record(job_id, lambda: services.succeed(job_id, result, closed()))


def _record(job_id: str, write: Callable[[], object]) -> None:
    """Write a run's outcome, again while the database is unreachable, for up to JOBS_OUTCOME_RETRY_SECONDS.

    A run whose outcome is not written leaves its job running, held by this process, which lives on: the
    reconciler takes back only jobs whose process is gone (tasks.liveness), so the job would wait forever
    (found by the chaos soak: PostgreSQL restarted under a running job). Meanwhile the job's heartbeat goes
    on, as the job is still this process's.
    """
    deadline = time.monotonic() + settings.JOBS_OUTCOME_RETRY_SECONDS
    for attempt in itertools.count():
        try:
            write()
            return
        except (OperationalError, InterfaceError):
            if time.monotonic() >= deadline:
                raise
            logger.warning("job %s: the database is unreachable; writing its outcome again", job_id, exc_info=True)
            close_old_connections()  # the broken connection, so the next attempt opens another
            _pause(min(0.5 * 2**attempt, 5.0))
