"""The registry of job kinds: name -> params schema, run function, time limits, and its Celery task.

A kind is declared once, where it is defined: a module named `jobs` in any
installed app calls `register(Kind(...))` (the tasks app's own are in
tasks/jobs.py). TasksConfig.ready imports every such module (`autodiscover`),
then makes one Celery task per registered kind (tasks.tasks). Everything else
reads this registry.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import autodiscover_modules
from pydantic import BaseModel, ValidationError

from tasks.errors import InvalidParams, UnknownKind
from tasks.kinds.base import Kind
from tasks.validation import field_errors

# Whatever else a worker must do after a task's hard limit before the broker may hand it out again.
VISIBILITY_MARGIN_SECONDS = 60

_KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    """Add a kind to the registry; ImproperlyConfigured if its name is taken or its limits do not fit."""
    if kind.name in _KINDS and _KINDS[kind.name] is not kind:
        raise ImproperlyConfigured(f"Two job kinds are named {kind.name!r}.")
    _check_limits(kind)
    _KINDS[kind.name] = kind
    return kind


def _check_limits(kind: Kind) -> None:
    """A task still running when the broker's visibility timeout ends would be handed to a second worker."""
    visibility_timeout = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    if not kind.soft_time_limit < kind.time_limit:
        raise ImproperlyConfigured(f"Job kind {kind.name!r}: soft_time_limit must be below time_limit.")
    if kind.time_limit + VISIBILITY_MARGIN_SECONDS >= visibility_timeout:
        raise ImproperlyConfigured(
            f"Job kind {kind.name!r}: time_limit {kind.time_limit} s must end more than "
            f"{VISIBILITY_MARGIN_SECONDS} s before BROKER_VISIBILITY_TIMEOUT ({visibility_timeout} s)."
        )


def autodiscover() -> None:
    """Import the `jobs` module of every installed app, which registers its kinds."""
    autodiscover_modules("jobs")


def all_kinds() -> list[Kind]:
    return [_KINDS[name] for name in names()]


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
