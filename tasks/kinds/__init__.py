"""Job kinds: the public API to write one (`kind`, `Context`, `UploadId`, `JobFailure`), and their registry.

A kind is declared once, where it is defined, in a module named `jobs` of any
installed app:

    @kind("reports.jobs_csv", params=ExportParams, title="Export my jobs")
    def export(ctx: Context[ExportParams]) -> dict[str, Any]: ...

TasksConfig.ready imports every such module (`autodiscover`, like the admin's),
then makes one Celery task per registered kind, named after it (tasks.tasks).
Everything else reads this registry. docs/kinds.md is the guide.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import autodiscover_modules
from pydantic import BaseModel, ValidationError

from tasks.errors import InvalidParams, JobFailure, UnknownKind
from tasks.kinds.base import NAME, QUEUE, RESERVED, Context, Kind, RunFunction, Split, Unknowns
from tasks.kinds.fields import Date, UploadId
from tasks.validation import field_errors

__all__ = ["Context", "Date", "JobFailure", "Kind", "Split", "Unknowns", "UploadId", "kind", "register"]

# Whatever else a worker must do after a task's hard limit before the broker may hand it out again.
VISIBILITY_MARGIN_SECONDS = 60

_KINDS: dict[str, Kind] = {}


def kind(
    name: str,
    *,
    params: type[BaseModel],
    title: str = "",
    description: str = "",
    queue: str = "default",
    soft_time_limit: int = 10 * 60,
    time_limit: int = 0,
    public_params: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    submit_label: str = "",
    split: Callable[[Any], Split] | None = None,
    unknowns: Unknowns | None = None,
) -> Callable[[RunFunction], RunFunction]:
    """Declare a job kind around its run function, which gets a Context and returns its result (a dict or None).

    `time_limit` (the hard one) defaults to a minute after `soft_time_limit`, when
    the run gets SoftTimeLimitExceeded and the job fails with `timeout`.
    """

    def declare(run: RunFunction) -> RunFunction:
        register(
            Kind(
                name=name,
                params=params,
                run=run,
                title=title,
                description=description,
                queue=queue,
                soft_time_limit=soft_time_limit,
                time_limit=time_limit,
                public_params=public_params,
                submit_label=submit_label,
                split=split,
                unknowns=unknowns,
            )
        )
        return run

    return declare


def register(kind: Kind) -> Kind:
    """Add a kind to the registry; ImproperlyConfigured if its name, queue or limits do not fit."""
    if kind.name in _KINDS and _KINDS[kind.name] is not kind:
        raise ImproperlyConfigured(f"Two job kinds are named {kind.name!r}.")
    if not NAME.fullmatch(kind.name) or len(kind.name) > 64 or kind.name in RESERVED:
        raise ImproperlyConfigured(f"Job kind name {kind.name!r}: use lowercase dotted words, like 'reports.export'.")
    if not QUEUE.fullmatch(kind.queue):
        raise ImproperlyConfigured(f"Job kind {kind.name!r}: queue {kind.queue!r} is not a queue name.")
    _check_limits(kind)
    _KINDS[kind.name] = kind
    return kind


def _check_limits(kind: Kind) -> None:
    """A task still unacknowledged when the broker's timeout ends (Redis' visibility timeout, RabbitMQ's
    consumer_timeout) would be handed to a second worker."""
    timeout = settings.BROKER_ACK_TIMEOUT_SECONDS
    if settings.BROKER_IS_RABBITMQ:
        variable = "RABBITMQ_CONSUMER_TIMEOUT"
        advice = ": raise consumer_timeout in rabbitmq.conf, then this variable with it (docs/operations.md)"
    else:
        variable, advice = "BROKER_VISIBILITY_TIMEOUT", ""
    if not kind.soft_time_limit < kind.time_limit:
        raise ImproperlyConfigured(f"Job kind {kind.name!r}: soft_time_limit must be below time_limit.")
    if kind.time_limit + VISIBILITY_MARGIN_SECONDS >= timeout:
        raise ImproperlyConfigured(
            f"Job kind {kind.name!r}: time_limit {kind.time_limit} s must end more than "
            f"{VISIBILITY_MARGIN_SECONDS} s before {variable} ({timeout} s){advice}."
        )


def autodiscover() -> None:
    """Import the `jobs` module of every installed app, which registers its kinds."""
    autodiscover_modules("jobs")


def all_kinds() -> list[Kind]:
    return [_KINDS[name] for name in names()]


def queues() -> list[str]:
    """Every queue a kind names: what a worker that serves every kind consumes."""
    return sorted({kind.queue for kind in _KINDS.values()})


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


def leaves_unknowns(name: str) -> bool:
    """Whether a run of the kind can leave parts whose outcome is unknown (email.send can)."""
    kind = _KINDS.get(name)
    return kind is not None and kind.unknowns is not None


def count_unknown(name: str, job_id: uuid.UUID) -> int | None:
    """How many parts of the job have an unknown outcome; None for a kind that never leaves any (a batch)."""
    kind = _KINDS.get(name)
    if kind is None or kind.unknowns is None:
        return None
    return kind.unknowns.count(job_id)


def release_unknown(name: str, job_id: uuid.UUID) -> int:
    """Let the job's next attempt redo its parts whose outcome is unknown; how many (0 for other kinds)."""
    kind = _KINDS.get(name)
    if kind is None or kind.unknowns is None:
        return 0
    return kind.unknowns.release(job_id)


def validate(name: str, params: dict[str, Any], owner_id: int) -> dict[str, Any]:
    """The kind's params, checked and normalised; InvalidParams names each bad field."""
    parsed = parse(get(name), params, owner_id)
    return parsed.model_dump(mode="json", exclude_none=True)


def validate_split(name: str, params: dict[str, Any], owner_id: int) -> Split:
    """The kind's params, checked, as the parts its `split` makes of them (one part for most kinds)."""
    kind = get(name)
    parsed = parse(kind, params, owner_id)
    if kind.split is not None:
        return kind.split(parsed)
    return Split(title=kind.title, parts=[parsed.model_dump(mode="json", exclude_none=True)])


def parse(kind: Kind, params: dict[str, Any], owner_id: int) -> BaseModel:
    try:
        return kind.params.model_validate(_json_integers(params), context={"owner_id": owner_id})
    except ValidationError as exc:
        raise InvalidParams("The parameters are not valid for this kind.", details=field_errors(exc)) from None


def _json_integers(value: Any) -> Any:
    """5.0 is the integer 5, as JSON Schema says of numbers with no fraction (the parser made it a float)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _json_integers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_integers(item) for item in value]
    return value
