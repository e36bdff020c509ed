"""What a job kind is (Kind), and what its run function gets (Context): the public API of job kinds.

A kind is declared once, in a `jobs` module of any installed app, with the
`kind` decorator (tasks.kinds) around its run function; docs/kinds.md shows one.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import cached_property
from typing import IO, Any, Generic, Literal, Protocol, TypeVar

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from pydantic import BaseModel

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
# Lowercase dotted names, as Celery task names and the protocol's `kind` (at most 64 characters).
NAME = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
QUEUE = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
# Names the service keeps for itself (a batch is a Job of kind "batch").
RESERVED = frozenset({"batch"})

LogLevel = Literal["info", "warning", "error"]
Params = TypeVar("Params", bound=BaseModel)


class ProgressSink(Protocol):
    def report(
        self, current: int, total: int | None = None, *, stage: str | None = None, message: str | None = None
    ) -> None: ...


class LogSink(Protocol):
    def write(self, level: LogLevel, text: str) -> None: ...


class ArtifactSink(Protocol):
    def open(self, name: str, content_type: str, encoding: str | None = None) -> AbstractContextManager[IO[Any]]: ...


class Context(Generic[Params]):
    """What a kind's run function gets: the job's identity, its checked params, and ways to report.

    `progress` and `log` are cheap to call often (they are coalesced), and
    `progress` raises JobCancelled once the job has been cancelled, so a kind
    stops at its next report without checking anything itself.
    """

    def __init__(
        self,
        job_id: str,
        owner_id: int,
        attempt: int,
        params: Params,
        progress: ProgressSink,
        logs: LogSink,
        artifacts: ArtifactSink,
    ) -> None:
        self.job_id = job_id
        self.owner_id = owner_id
        self.attempt = attempt
        self.params = params
        self._progress = progress
        self._logs = logs
        self._artifacts = artifacts

    @cached_property
    def owner(self) -> AbstractBaseUser:
        """The user who submitted the job (read on first use)."""
        return get_user_model().objects.get(pk=self.owner_id)

    def progress(
        self, current: int, total: int | None = None, *, stage: str | None = None, message: str | None = None
    ) -> None:
        """Report how far the job is; at most one report per JOBS_PROGRESS_INTERVAL is stored and sent."""
        self._progress.report(current, total, stage=stage, message=message)

    def log(self, text: str, level: LogLevel = "info") -> None:
        """Add a line to the job's log (protocol 1.1 LogLine); written in batches, kept for the last 1,000."""
        self._logs.write(level, text)

    def artifact(
        self, name: str, content_type: str = "application/octet-stream", encoding: str | None = None
    ) -> AbstractContextManager[IO[Any]]:
        """A file to write a result into, streamed to storage: `with ctx.artifact("report.csv", "text/csv") as f:`.

        Binary, or text in `encoding` (written as given: `csv.writer(f)` works). It becomes one of
        the job's artifacts (a download link for its owner) when the block ends without an error.
        """
        return self._artifacts.open(name, content_type, encoding)


RunFunction = Callable[[Context[Any]], dict[str, Any] | None]


@dataclass(frozen=True)
class Split:
    """What a kind's `split` makes of params too large for one job: the title of their batch, and each
    child's params (JSON values, as a job stores them). A single part is submitted as a plain job."""

    title: str
    parts: list[dict[str, Any]]


@dataclass(frozen=True)
class Unknowns:
    """For a kind whose run can be cut off in the middle of a part whose outcome then stays unknown (an
    email handed to the server, its answer never read): such a part is never redone by itself, only by a
    retry whose owner asks for it (job.retry `resend_unknown`), accepting that it may happen twice."""

    # How many parts of the job have an unknown outcome (called when no run of the job is working).
    count: Callable[[uuid.UUID], int]
    # Let the next attempt redo them, in the retry's transaction; how many.
    release: Callable[[uuid.UUID], int]


@dataclass(frozen=True)
class Kind:
    name: str
    # Validated with context={"owner_id": ...}, so a validator can check that
    # what the params refer to (an upload) belongs to the submitter.
    params: type[BaseModel]
    run: RunFunction
    title: str = ""
    description: str = ""
    # The Celery queue its tasks go to: workers started with `-Q` serve some queues only.
    queue: str = "default"
    soft_time_limit: int = 10 * 60
    time_limit: int = 0  # 0: a minute after the soft limit
    # What clients are shown of the stored params, when that differs: every job
    # event carries the params, so a kind redacts secrets and shortens large values.
    public_params: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    # The words on the dashboard's button that submits it (default: "Start <title>").
    submit_label: str = ""
    # Params too large for one job, made into the params of several (at submit): more than one
    # and the submit becomes a parallel batch of them, titled as `split` says (tasks.services).
    split: Callable[[Any], Split] | None = None
    # Parts whose outcome a cut-off run leaves unknown, if the kind has any (the Job's `unknown_outcome`).
    unknowns: Unknowns | None = None
    schema: dict[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.title:
            object.__setattr__(self, "title", self.name)
        if not self.time_limit:
            object.__setattr__(self, "time_limit", self.soft_time_limit + 60)
        if not self.submit_label:
            object.__setattr__(self, "submit_label", f"Start {self.title.lower()}")
        object.__setattr__(self, "schema", _schema(self.params))

    @property
    def task_name(self) -> str:
        """The name of its Celery task, as Flower shows it: the kind's own."""
        return self.name


def _schema(params: type[BaseModel]) -> dict[str, Any]:
    """The params' JSON Schema (draft 2020-12), as the server validates them."""
    return {"$schema": JSON_SCHEMA_DIALECT, **params.model_json_schema(mode="validation")}
