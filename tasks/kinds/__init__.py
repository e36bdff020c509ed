"""The registry of job kinds: name -> params schema, run function and Celery task.

A new kind is a module in this package exposing KIND, listed in _KINDS below,
and a thin Celery task in tasks/tasks.py named KIND.task_name.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from pydantic import BaseModel, ValidationError

from core.validation import field_errors
from tasks.errors import InvalidParams, UnknownKind
from tasks.kinds import countdown, crash, email_send, file_process
from tasks.kinds.base import Kind

_TEST_KINDS = (crash.KIND,) if settings.JOBS_TEST_KINDS else ()
_KINDS: dict[str, Kind] = {
    kind.name: kind for kind in (countdown.KIND, email_send.KIND, file_process.KIND, *_TEST_KINDS)
}


def names() -> list[str]:
    return sorted(_KINDS)


def get(name: str) -> Kind:
    try:
        return _KINDS[name]
    except KeyError:
        raise UnknownKind(f"No job kind named {name!r}.") from None


def public_params(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """The params as clients see them (redacted or shortened by the kind, if it says so)."""
    kind = _KINDS.get(name)
    if kind is None or kind.public_params is None:
        return params
    return kind.public_params(params)


def validate(name: str, params: dict[str, Any], owner_id: int) -> dict[str, Any]:
    """The kind's params, checked and normalised; InvalidParams names each bad field."""
    parsed = parse(get(name), params, owner_id)
    return parsed.model_dump(mode="json", exclude_none=True)


def parse(kind: Kind, params: dict[str, Any], owner_id: int) -> BaseModel:
    try:
        return kind.params.model_validate(params, context={"owner_id": owner_id})
    except ValidationError as exc:
        raise InvalidParams("The parameters are not valid for this kind.", details=field_errors(exc)) from None
