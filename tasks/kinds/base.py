"""What a job kind is: a params schema, a run function and its time limits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel


class Reporter(Protocol):
    """How a running job reports progress. Cheap to call often: it coalesces.

    Raises JobCancelled once the job has been cancelled, so a kind stops at its
    next report without checking anything itself.
    """

    def report(
        self, current: int, total: int | None = None, *, stage: str | None = None, message: str | None = None
    ) -> None: ...


@dataclass(frozen=True)
class RunContext:
    """What a kind's run function gets: the job's identity, its checked params, and a reporter."""

    job_id: str
    owner_id: int
    attempt: int
    params: Any  # an instance of the kind's params model
    reporter: Reporter


RunFunction = Callable[[RunContext], dict[str, Any]]


@dataclass(frozen=True)
class Kind:
    name: str
    # Validated with context={"owner_id": ...}, so a validator can check that
    # what the params refer to (an upload) belongs to the submitter.
    params: type[BaseModel]
    run: RunFunction
    # The Celery task that runs this kind (tasks/tasks.py); Flower shows this name.
    task_name: str
    soft_time_limit: int
    time_limit: int
    # What clients are shown of the stored params, when that differs: every job
    # event carries the params, so a kind redacts secrets and shortens large values.
    public_params: Callable[[dict[str, Any]], dict[str, Any]] | None = None
