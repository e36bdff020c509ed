from __future__ import annotations

from pydantic import ValidationError


def field_errors(exc: ValidationError) -> dict[str, str]:
    """One message per field, keyed by its dotted path ('params' for the whole object)."""
    details: dict[str, str] = {}
    for error in exc.errors(include_url=False, include_input=False):
        field = ".".join(str(part) for part in error["loc"]) or "params"
        details.setdefault(field, error["msg"].removeprefix("Value error, "))
    return details
