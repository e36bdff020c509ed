"""Domain errors. Each carries the protocol error code a client receives."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """A request the service refuses; `code` is the protocol's error code."""

    code = "internal"

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class BadMessage(ServiceError):
    """A message whose fields the service cannot use (a cursor it did not give, a scope not allowed)."""

    code = "bad_message"


class UnknownKind(ServiceError):
    code = "unknown_kind"


class InvalidParams(ServiceError):
    code = "invalid_params"


class JobNotFound(ServiceError):
    code = "not_found"

    def __init__(self) -> None:
        # The same words whether the job is missing or someone else's.
        super().__init__("No such job.")


class JobConflict(ServiceError):
    code = "conflict"


class JobFailure(Exception):
    """Raised by a job kind for a failure the user can act on; stored as the job's error."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class JobCancelled(Exception):
    """Raised inside a running job when its owner has cancelled it."""


class RateLimited(ServiceError):
    code = "rate_limited"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message, details={"retry_after": retry_after})
