"""Prometheus metrics: every metric object of the service, the helpers that move them, and the exposition.

Daphne and each Celery worker process count for themselves. With
PROMETHEUS_MULTIPROC_DIR set (runstack, the integration fixtures and
docker-compose set it), prometheus_client writes each process's values to
memory-mapped files in that directory and /metrics adds them all up, so one
scrape of any Daphne process sees the whole service. Without it (unit tests,
a lone shell) the values stay in this process's memory.

The directory must be shared by every web and worker process of one
deployment, and be empty when the deployment starts: stale files of an
earlier run would be summed in too.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import socket
from datetime import datetime
from pathlib import Path
from typing import Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

import patches.prometheus

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Each process writes files named after its process identifier, by default its
# pid. Containers each count pids from 1, so web and worker containers sharing
# the directory would write into each other's files: the host name (a
# container's id) goes into the identifier too. No "_": file names are split on it.
_HOST = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())


def process_identifier() -> str:
    return f"{_HOST}-{os.getpid()}"


if os.environ.get(MULTIPROC_ENV):
    # Before any metric is made: a metric without labels opens its file at once.
    os.makedirs(os.environ[MULTIPROC_ENV], exist_ok=True)
    patches.prometheus.name_files_by(process_identifier)

# Jobs run from milliseconds (a countdown) to the 30-minute time limit.
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, float("inf"))
# A group_send to a local Redis takes about a millisecond; PUBLISH_TIMEOUT (2 s) is the ceiling.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, float("inf"))

JOBS_SUBMITTED = Counter("jobs_submitted", "Jobs created by job.submit (not repeats of a request_id).", ["kind"])
JOBS_FINISHED = Counter("jobs_finished", "Jobs that reached a final state.", ["kind", "status"])
JOB_DURATION = Histogram(
    "jobs_duration_seconds", "From start to final state, for jobs that started.", ["kind"], buckets=DURATION_BUCKETS
)
# livesum: a process that exited (and said so, see below) no longer counts.
WEBSOCKET_CONNECTIONS = Gauge(
    "jobs_websocket_connections", "Open authenticated WebSocket connections.", multiprocess_mode="livesum"
)
EVENTS_PUBLISHED = Counter("jobs_events_published", "Messages the publisher handed to the channel layer.")
EVENTS_DROPPED = Counter("jobs_events_dropped", "Messages the publisher gave up on (Redis slow or down, queue full).")
PUBLISH_LATENCY = Histogram(
    "jobs_publish_latency_seconds", "Time one group_send to the channel layer took.", buckets=LATENCY_BUCKETS
)
RATE_LIMITED = Counter("jobs_rate_limited", "rate_limited answers sent to clients.")
HANDSHAKES_DEFERRED = Counter(
    "jobs_websocket_handshakes_deferred", "Handshakes closed with 4013 (try again later): too many at once."
)
ACCEPT_PAUSES = Counter(
    "jobs_websocket_accept_pauses",
    "Times a Daphne process stopped accepting connections: as many handshakes waited as were in flight.",
)


class FinishedJob(Protocol):
    """What job_changed reads of a Job (structural, so this module imports no models)."""

    kind: str
    status: str
    started_at: datetime | None
    finished_at: datetime | None


def job_submitted(kind: str) -> None:
    JOBS_SUBMITTED.labels(kind=kind).inc()


def job_changed(job: FinishedJob) -> None:
    """Count a job that has just reached a final state; other transitions are ignored."""
    if job.finished_at is None:
        return
    JOBS_FINISHED.labels(kind=job.kind, status=job.status).inc()
    if job.started_at is not None:
        JOB_DURATION.labels(kind=job.kind).observe(max(0.0, (job.finished_at - job.started_at).total_seconds()))


def event_published(seconds: float) -> None:
    EVENTS_PUBLISHED.inc()
    PUBLISH_LATENCY.observe(seconds)


def event_dropped() -> None:
    EVENTS_DROPPED.inc()


def connection_opened() -> None:
    WEBSOCKET_CONNECTIONS.inc()


def connection_closed() -> None:
    WEBSOCKET_CONNECTIONS.dec()


def rate_limited() -> None:
    RATE_LIMITED.inc()


def handshake_deferred() -> None:
    HANDSHAKES_DEFERRED.inc()


def accepting_paused() -> None:
    ACCEPT_PAUSES.inc()


def exposition() -> tuple[bytes, str]:
    """The text a scrape gets, and its content type: every process's values when multiprocess."""
    if not os.environ.get(MULTIPROC_ENV):
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST


def fresh_multiproc_dir(path: Path) -> Path:
    """Empty `path` (values of an earlier run must not be summed in) and return it, for a new stack's processes."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def _mark_dead() -> None:
    # Drops this process's live gauge files (open connections), so a stopped
    # Daphne stops counting. Counters stay: what was counted happened.
    multiprocess.mark_process_dead(process_identifier())  # type: ignore[no-untyped-call]


if os.environ.get(MULTIPROC_ENV):
    atexit.register(_mark_dead)
