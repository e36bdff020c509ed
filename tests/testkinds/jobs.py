"""Job kinds that exist only for tests, written only against the public API (tasks.kinds), as a team would.

Installed only by the test settings (JOBS_TEST_KINDS).
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tasks.kinds import Context, JobFailure, kind


class CrashParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


@kind("test.crash", params=CrashParams, title="Crash", soft_time_limit=60)
def crash(ctx: Context[CrashParams]) -> dict[str, Any]:
    # What a segfaulting extension or the OOM killer does to a worker process.
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable: the process was killed")


class TableParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    rows: int = Field(ge=1, le=100_000, title="Rows")
    interval_ms: int = Field(default=0, ge=0, le=1_000, title="Pause per row (ms)")


@kind("test.table", params=TableParams, title="Table", description="Writes a CSV of squares.", queue="extra")
def table(ctx: Context[TableParams]) -> dict[str, Any]:
    """Progress per row, a log line per 10 rows, and the table as an artifact."""
    rows = ctx.params.rows
    with ctx.artifact("squares.csv", "text/csv") as out:
        out.write(b"n,square\n")
        for n in range(1, rows + 1):
            time.sleep(ctx.params.interval_ms / 1000)
            out.write(f"{n},{n * n}\n".encode())
            ctx.progress(n, rows, stage="writing", message=f"Row {n} of {rows}")
            if n % 10 == 0:
                ctx.log(f"{n} rows written.")
    return {"rows": rows, "owner": ctx.owner.get_username()}


class FlakyParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    fail_first: bool = Field(default=True, title="Fail the first attempt")


@kind("test.flaky", params=FlakyParams, title="Flaky", soft_time_limit=60)
def flaky(ctx: Context[FlakyParams]) -> dict[str, Any]:
    """Fails its first attempt when asked to, succeeds on a retry: what a retry is for."""
    if ctx.params.fail_first and ctx.attempt == 1:
        raise JobFailure("flaky", "Failed on the first attempt, as asked.")
    return {"attempt": ctx.attempt}
