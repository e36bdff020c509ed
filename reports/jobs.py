"""reports.jobs_csv, "Export my jobs": the owner's jobs in a date range as a CSV file.

Written only against the public API of job kinds (tasks.kinds), as a team's own
kind would be; docs/kinds.md walks through it.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime, time, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tasks.kinds import Context, Date, kind
from tasks.models import Job

Status = Literal["queued", "running", "succeeded", "failed", "cancelled"]
COLUMNS = ["id", "kind", "status", "attempt", "created_at", "started_at", "finished_at", "error_code", "error"]
FIELDS = ("id", "kind", "status", "attempt", "created_at", "started_at", "finished_at", "error")
LOG_EVERY = 10_000
# A spreadsheet runs a cell that starts with one of these as a formula: such text is quoted.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class ExportParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, title="Export my jobs")

    created_after: Date = Field(title="From", description="The first day (UTC) whose jobs are exported.")
    created_before: Date = Field(title="Until", description="The last day (UTC) whose jobs are exported.")
    kinds: list[str] = Field(default=[], max_length=20, title="Kinds", description="Only these kinds; empty: all.")
    statuses: list[Status] = Field(default=[], title="Statuses", description="Only jobs in these; empty: all.")

    @model_validator(mode="after")
    def _a_range(self) -> ExportParams:
        if self.created_before < self.created_after:
            raise ValueError("The last day comes before the first.")
        return self


@kind(
    "reports.jobs_csv",
    params=ExportParams,
    title="Export my jobs",
    description="Your jobs created in a range of days, as a CSV file to download.",
    submit_label="Export",
)
def export_jobs(ctx: Context[ExportParams]) -> dict[str, Any]:
    jobs = _jobs(ctx.owner_id, ctx.params)
    total = jobs.count()
    ctx.log(f"Exporting {total} jobs.")
    with ctx.artifact(_file_name(ctx.params), "text/csv", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        rows = 0
        for job in jobs.iterator(chunk_size=2000):
            writer.writerow(_row(job))
            rows += 1
            ctx.progress(rows, total, stage="rows", message=f"{rows} of {total} rows")
            if rows % LOG_EVERY == 0:
                ctx.log(f"{rows} rows written.")
    ctx.log(f"Done: {rows} rows.")
    return {"rows": rows}


def _jobs(owner_id: int, params: ExportParams) -> Any:
    start = datetime.combine(params.created_after, time.min, tzinfo=UTC)
    end = datetime.combine(params.created_before + timedelta(days=1), time.min, tzinfo=UTC)
    jobs = Job.objects.filter(owner_id=owner_id, created_at__gte=start, created_at__lt=end)
    if params.kinds:
        jobs = jobs.filter(kind__in=params.kinds)
    if params.statuses:
        jobs = jobs.filter(status__in=params.statuses)
    return jobs.order_by("created_at", "id").only(*FIELDS)


def _row(job: Job) -> list[object]:
    error = job.error or {}
    times = [moment.isoformat() if moment else "" for moment in (job.created_at, job.started_at, job.finished_at)]
    texts = [_text(error.get("code", "")), _text(error.get("message", ""))]
    return [job.pk, job.kind, job.status, job.attempt, *times, *texts]


def _text(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _file_name(params: ExportParams) -> str:
    return f"jobs-{params.created_after}-to-{params.created_before}.csv"
