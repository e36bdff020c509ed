"""demo.countdown: counts steps, for demos, tests and benchmarks."""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from tasks.errors import JobFailure
from tasks.kinds import register
from tasks.kinds.base import Kind, RunContext

NAME = "demo.countdown"


class CountdownParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    steps: int = Field(ge=1, le=100_000)
    interval_ms: int = Field(default=0, ge=0, le=10_000)
    fail_at: int | None = Field(default=None, ge=1)

    @field_validator("fail_at")
    @classmethod
    def _fail_at_within_steps(cls, fail_at: int | None, info: ValidationInfo) -> int | None:
        # A field validator (steps is checked first), so the error names fail_at.
        steps = info.data.get("steps")
        if fail_at is not None and steps is not None and fail_at > steps:
            raise ValueError("fail_at must not exceed steps")
        return fail_at


def run(context: RunContext) -> dict[str, Any]:
    params: CountdownParams = context.params
    reporter = context.reporter
    interval = params.interval_ms / 1000
    for step in range(1, params.steps + 1):
        if interval:
            time.sleep(interval)
        if step == params.fail_at:
            raise JobFailure("demo_failure", f"Failed at step {step}, as requested by fail_at.")
        reporter.report(step, params.steps, stage="counting", message=f"Step {step} of {params.steps}")
    return {"steps": params.steps}


KIND = register(
    Kind(
        name=NAME,
        params=CountdownParams,
        run=run,
        task_name="jobs.demo.countdown",
        # 100,000 steps of 10 s is far beyond any demo: cap it at half an hour, below
        # the broker's visibility timeout like every kind (see test_celery_configuration).
        soft_time_limit=30 * 60,
        time_limit=31 * 60,
    )
)
