"""The schedules app's refusals, with the protocol's error codes (tasks.errors holds the shared base)."""

from __future__ import annotations

from tasks.errors import ServiceError


class ScheduleNotFound(ServiceError):
    code = "not_found"

    def __init__(self) -> None:
        # The same words whether the schedule is missing or someone else's.
        super().__init__("No such schedule.")
