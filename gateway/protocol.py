"""The WebSocket protocol (shared/protocol.md): client messages, their schemas, and parsing.

Incoming frames are parsed here into typed messages before anything else
happens; a frame that does not fit raises ProtocolError with the error code
the client receives. MESSAGE_TYPES is the one table of client message types:
parsing reads its schema, the consumer's dispatch its handler. A new message
type is a model declared with @message_type and its handler on the consumer.
(Outbound frames are built in gateway.frames.)
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import accumulate
from typing import Annotated, Any, Literal, TypeVar, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, ValidationError

from tasks.validation import field_errors

MAX_FRAME_BYTES = 64 * 1024

CLOSE_NORMAL = 1000
CLOSE_POLICY = 4008
CLOSE_TOO_LARGE = 4009
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
# An extension (docs/protocol.md): events for this socket may have been lost;
# reconnect to get a fresh hello. Clients that do not know it reconnect anyway.
CLOSE_RESYNC = 4012


class ProtocolError(Exception):
    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


RequestId = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class ClientMessage(BaseModel):
    # Strict: a number is not a string; unknown fields are ignored so newer
    # clients can add optional fields.
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    type: str
    # Optional on every message (protocol 1.1): its reply and any error about it echo it.
    request_id: RequestId | None = None


@dataclass(frozen=True)
class MessageType:
    schema: type[ClientMessage]
    handler: str  # the name of the consumer's method that answers it


MESSAGE_TYPES: dict[str, MessageType] = {}
Schema = TypeVar("Schema", bound=ClientMessage)


def message_type(schema: type[Schema]) -> type[Schema]:
    """Declare a client message type: its name is the schema's `type` literal; its handler `on_<name>`."""
    (name,) = get_args(schema.model_fields["type"].annotation)
    MESSAGE_TYPES[name] = MessageType(schema, "on_" + name.replace(".", "_"))
    return schema


PriorityName = Literal["high", "normal", "low"]


@message_type
class Submit(ClientMessage):
    type: Literal["job.submit"]
    request_id: RequestId
    kind: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    params: dict[str, Any]
    priority: PriorityName = "normal"


@message_type
class Cancel(ClientMessage):
    type: Literal["job.cancel"]
    job_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]


@message_type
class Retry(ClientMessage):
    type: Literal["job.retry"]
    job_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    # Extension (docs/protocol.md): also redo what a cut-off run left of unknown outcome (an email's
    # interrupted recipients), which may then happen twice. A boolean only (strict): "true" is bad_message.
    resend_unknown: bool = False


@message_type
class Ping(ClientMessage):
    type: Literal["ping"]


# Version 1.1 (shared/protocol.md).


@message_type
class KindList(ClientMessage):
    type: Literal["kind.list"]


JobId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Status = Literal["queued", "running", "succeeded", "failed", "cancelled"]
KindName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Username = Annotated[str, StringConstraints(min_length=1, max_length=150)]


def _moment(value: object) -> object:
    """An ISO-8601 time ("2026-12-06T10:00:00Z"), or a day ("2026-12-06", its midnight UTC); naive times are UTC."""
    if not isinstance(value, str):
        return value
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("Give an ISO-8601 time, like 2026-12-06T10:00:00Z or 2026-12-06.") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


Moment = Annotated[datetime, BeforeValidator(_moment)]


class JobFilter(BaseModel):
    """Protocol 1.1 Filter; `owner` (usernames) is an extension for staff listing everyone's jobs."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    status: Annotated[list[Status], Field(max_length=5)] | None = None
    kind: Annotated[list[KindName], Field(max_length=50)] | None = None
    search: Annotated[str, StringConstraints(max_length=200)] | None = None
    created_after: Moment | None = None
    created_before: Moment | None = None
    parent_id: JobId | None = None
    owner: Annotated[list[Username], Field(max_length=50)] | None = None


# "all": every user's jobs (staff only; an extension for the operations view). Default: the caller's.
Scope = Literal["own", "all"]


@message_type
class JobList(ClientMessage):
    type: Literal["job.list"]
    filter: JobFilter = JobFilter()
    limit: Annotated[int, Field(ge=1, le=100)] = 50
    cursor: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    scope: Scope = "own"


@message_type
class JobGet(ClientMessage):
    type: Literal["job.get"]
    job_id: JobId


@message_type
class JobLogsFollow(ClientMessage):
    type: Literal["job.logs.follow"]
    job_id: JobId


@message_type
class JobLogsUnfollow(ClientMessage):
    type: Literal["job.logs.unfollow"]
    job_id: JobId


@message_type
class JobBulk(ClientMessage):
    type: Literal["job.bulk"]
    action: Literal["cancel", "retry"]
    filter: JobFilter
    scope: Scope = "own"
    # Extension: count what would change, change nothing (the dashboard's confirmation says how many).
    dry_run: bool = False


class BatchChild(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    kind: KindName
    params: dict[str, Any]


MAX_BATCH = 10_000


@message_type
class BatchSubmit(ClientMessage):
    """Protocol 1.1 batch.submit. `offset` and `continues` are an extension (docs/protocol.md): a batch
    too large for one 64 KiB frame is sent in parts, each continuing from the jobs received so far."""

    type: Literal["batch.submit"]
    request_id: RequestId
    title: Annotated[str, StringConstraints(max_length=200)] = ""
    mode: Literal["parallel", "sequence"]
    jobs: list[BatchChild]
    offset: Annotated[int, Field(ge=0, le=MAX_BATCH)] = 0
    continues: bool = False
    priority: PriorityName = "normal"  # read from the last part, as title and mode are


@message_type
class BatchFollow(ClientMessage):
    type: Literal["batch.follow"]
    job_id: JobId


@message_type
class BatchUnfollow(ClientMessage):
    type: Literal["batch.unfollow"]
    job_id: JobId


@message_type
class ScheduleCreate(ClientMessage):
    """Protocol 1.1 schedule.create. `cron`, `run_at` and `timezone` are checked by the service, which names
    a bad one in invalid_params (a string here, so that a bad time is invalid_params, not bad_message)."""

    type: Literal["schedule.create"]
    request_id: RequestId
    name: Annotated[str, StringConstraints(max_length=200)] = ""
    kind: KindName
    params: dict[str, Any]
    cron: Annotated[str, StringConstraints(min_length=1, max_length=120)] | None = None
    run_at: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    timezone: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "UTC"


@message_type
class ScheduleList(ClientMessage):
    type: Literal["schedule.list"]


ScheduleId = Annotated[str, StringConstraints(min_length=1, max_length=64)]


@message_type
class SchedulePause(ClientMessage):
    type: Literal["schedule.pause"]
    schedule_id: ScheduleId


@message_type
class ScheduleResume(ClientMessage):
    type: Literal["schedule.resume"]
    schedule_id: ScheduleId


@message_type
class ScheduleDelete(ClientMessage):
    type: Literal["schedule.delete"]
    schedule_id: ScheduleId


# Extensions (docs/protocol.md): the operations view, for staff.


@message_type
class OpsSubscribe(ClientMessage):
    type: Literal["ops.subscribe"]


@message_type
class OpsUnsubscribe(ClientMessage):
    type: Literal["ops.unsubscribe"]


@message_type
class OpsKindPause(ClientMessage):
    type: Literal["ops.kind.pause"]
    kind: KindName


@message_type
class OpsKindResume(ClientMessage):
    type: Literal["ops.kind.resume"]
    kind: KindName


# Extensions (docs/protocol.md): the notification centre.
NOTIFICATION_PAGE = 20
NOTIFICATION_PAGE_MAX = 100
NotificationId = Annotated[int, Field(gt=0, le=2**63 - 1)]


@message_type
class NotificationList(ClientMessage):
    type: Literal["notification.list"]
    before: NotificationId | None = None  # the id of the oldest one the client holds: the next page
    limit: Annotated[int, Field(ge=1, le=NOTIFICATION_PAGE_MAX)] = NOTIFICATION_PAGE


@message_type
class NotificationRead(ClientMessage):
    type: Literal["notification.read"]
    id: NotificationId


@message_type
class NotificationReadAll(ClientMessage):
    type: Literal["notification.read_all"]


# Arrays and objects, the frame's own object included. The deepest message a
# client needs is 3 (job.submit > params > the `to` list of email.send).
MAX_NESTING = 32
NESTED_TOO_DEEPLY = f"The message is nested too deeply: at most {MAX_NESTING} levels of arrays and objects."
# A JSON string (escapes included), or an unterminated one up to the end of the
# frame: one linear pass, and no quote is ever scanned from twice.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def parse(text: str) -> ClientMessage:
    """Parse one client frame, or raise ProtocolError with bad_json / bad_message / unknown_type."""
    if _nesting(text) > MAX_NESTING:
        raise ProtocolError("bad_message", NESTED_TOO_DEEPLY)
    try:
        data, numbers_refused = _loads(text)
    except ValueError:
        raise ProtocolError("bad_json", "The frame is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ProtocolError("bad_json", "The frame must be a JSON object.")
    if numbers_refused:
        raise ProtocolError("bad_message", NUMBER_REFUSED)
    kind = data.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("bad_message", "The message needs a string field 'type'.")
    declared = MESSAGE_TYPES.get(kind)
    if declared is None:
        raise ProtocolError("unknown_type", f"Unknown message type {kind[:64]!r}.")
    try:
        return declared.schema.model_validate(data)
    except ValidationError as exc:
        raise ProtocolError("bad_message", f"The {kind} message is malformed.", field_errors(exc)) from None


def _nesting(text: str) -> int:
    """How deep the frame's arrays and objects nest, from its brackets outside strings, before any parsing.

    Regular expressions drop the strings, then everything but brackets; the
    running depth is summed in C (accumulate, max): a few ms for the worst
    64 KiB frame. A frame that is not JSON gets a number too: past the bound it
    is refused as too deep, whatever else is wrong with it; within it, parsing
    tells bad_json apart. So json.loads never meets more than MAX_NESTING levels.
    """
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    return max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0)


def request_id_of(text: str) -> str | None:
    """The request_id of a frame that failed validation, if one can be read, to echo in the error."""
    if _nesting(text) > MAX_NESTING:
        return None  # never parse what parse() refused for its depth
    try:
        data, _ = _loads(text)
    except (ValueError, RecursionError):
        return None
    value = data.get("request_id") if isinstance(data, dict) else None
    return value if isinstance(value, str) and 0 < len(value) <= 64 else None


# No client needs a number longer than this, and nothing in the service can use
# NaN or infinity (without a check, 1e999 silently becomes inf).
MAX_NUMBER_DIGITS = 100
NUMBER_REFUSED = f"Numbers must be finite and have at most {MAX_NUMBER_DIGITS} digits."


def _loads(text: str) -> tuple[Any, bool]:
    """The JSON value of `text`, and whether a number in it was refused (replaced by null).

    json.loads hands each number's literal to these hooks before converting it,
    so a long one is refused by its length and never converted (int() of a long
    digit string costs time quadratic in its length). Parsing goes on to the
    end, so a frame that is not JSON at all is still told apart (bad_json).
    """
    refused = False

    def number(literal: str, convert: Callable[[str], float]) -> float | None:
        nonlocal refused
        if not _too_long(literal):
            value = convert(literal)
            if not isinstance(value, float) or math.isfinite(value):
                return value
        refused = True
        return None

    def constant(literal: str) -> None:  # NaN, Infinity, -Infinity
        nonlocal refused
        refused = True

    data = json.loads(
        text,
        parse_int=lambda literal: number(literal, int),
        parse_float=lambda literal: number(literal, float),
        parse_constant=constant,
    )
    return data, refused


def _too_long(literal: str) -> bool:
    # A literal no longer than the limit cannot hold more digits: most never get counted.
    return len(literal) > MAX_NUMBER_DIGITS and sum(char.isdigit() for char in literal) > MAX_NUMBER_DIGITS


def check_handlers(consumer: type) -> None:
    """Refuse, at import, a consumer that lacks the handler of a declared message type."""
    missing = [
        declared.handler
        for declared in MESSAGE_TYPES.values()
        if not callable(getattr(consumer, declared.handler, None))
    ]
    if missing:
        raise TypeError(f"{consumer.__name__} has no handler for: {', '.join(missing)}")
