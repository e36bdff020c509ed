"""demo.countdown: counts steps, for demos, tests and benchmarks."""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from tasks.kinds import Context, JobFailure, kind


class CountdownParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, title="Countdown")

    steps: int = Field(ge=1, le=100_000, title="Steps", examples=[20])
    interval_ms: int = Field(default=0, ge=0, le=10_000, title="Interval (ms)", examples=[250])
    fail_at: int | None = Field(
        default=None, ge=1, title="Fail at step", description="Fail on reaching this step (at most steps)."
    )
    log_progress: bool = Field(default=False, title="Log every 10%", description="Write a log line every 10%.")

    @field_validator("fail_at")
    @classmethod
    def _fail_at_within_steps(cls, fail_at: int | None, info: ValidationInfo) -> int | None:
        # A field validator (steps is checked first), so the error names fail_at.
        steps = info.data.get("steps")
        if fail_at is not None and steps is not None and fail_at > steps:
            raise ValueError("fail_at must not exceed steps")
        return fail_at


# 100,000 steps of 10 s is far beyond any demo: capped at half an hour.
@kind(
    "demo.countdown",
    params=CountdownParams,
    title="Countdown",
    description="Counts steps at an interval. For demos and tests.",
    soft_time_limit=30 * 60,
    submit_label="Start countdown",
)
def countdown(ctx: Context[CountdownParams]) -> dict[str, Any]:
    params = ctx.params
    interval = params.interval_ms / 1000
    tenth = max(1, params.steps // 10)
    for step in range(1, params.steps + 1):
        if interval:
            time.sleep(interval)
        if step == params.fail_at:
            raise JobFailure("demo_failure", f"Failed at step {step}, as requested by fail_at.")
        ctx.progress(step, params.steps, stage="counting", message=f"Step {step} of {params.steps}")
        if params.log_progress and (step % tenth == 0 or step == params.steps):
            ctx.log(f"Reached step {step} of {params.steps}.")
    return {"steps": params.steps}
