"""test.crash: kills the process that runs it, every time. Installed only by the test settings (JOBS_TEST_KINDS)."""

from __future__ import annotations

import os
import signal
from typing import Any

from pydantic import BaseModel, ConfigDict

from tasks.kinds import register
from tasks.kinds.base import Kind, RunContext


class CrashParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def run(context: RunContext) -> dict[str, Any]:
    # What a segfaulting extension or the OOM killer does to a worker process.
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable: the process was killed")


KIND = register(
    Kind(
        name="test.crash",
        params=CrashParams,
        run=run,
        task_name="jobs.test.crash",
        soft_time_limit=60,
        time_limit=90,
    )
)
