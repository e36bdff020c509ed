"""How long a running job has left, from its progress so far."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def eta_seconds(progress: dict[str, Any], started_at: datetime | None, now: datetime) -> float | None:
    """Time left at the rate so far (protocol 1.1 eta_seconds): None until a part is done and the total known."""
    current, total = progress.get("current") or 0, progress.get("total")
    if started_at is None or not total or current <= 0 or current >= total:
        return None
    elapsed = (now - started_at).total_seconds()
    if elapsed <= 0:
        return None
    return round(float(elapsed * (total - current) / current), 1)
