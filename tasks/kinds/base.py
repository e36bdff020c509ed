"""What a job kind is: a params schema, a run function and its time limits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel


class Reporter(Protocol):
    """How a running job reports progress. Cheap to call often: it coalesces."""

    def report(
        self, current: int, total: int | None = None, *, stage: str | None = None, message: str | None = None
    ) -> None: ...


RunFunction = Callable[[Any, Reporter], dict[str, Any]]


@dataclass(frozen=True)
class Kind:
    name: str
    params: type[BaseModel]
    run: RunFunction
    # The Celery task that runs this kind (tasks/tasks.py); Flower shows this name.
    task_name: str
    soft_time_limit: int
    time_limit: int
