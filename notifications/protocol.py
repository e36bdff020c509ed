"""The WebSocket protocol (shared/protocol.md, version 1): message schemas and serialisation.

Incoming frames are parsed here into typed messages before anything else
happens; a frame that does not fit raises ProtocolError with the error code
the client receives.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import datetime
from itertools import accumulate
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from core.validation import field_errors
from notifications.models import Notice, Notification
from tasks import kinds
from tasks.models import Job

PROTOCOL_VERSION = 1
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


class _Message(BaseModel):
    # Strict: a number is not a string; unknown fields are ignored so newer
    # clients can add optional fields.
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    # Optional on every message (protocol 1.1): its reply and any error about it echo it.
    request_id: RequestId | None = None


class Submit(_Message):
    type: Literal["job.submit"]
    request_id: RequestId
    kind: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    params: dict[str, Any]


class Cancel(_Message):
    type: Literal["job.cancel"]
    job_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]


class Retry(_Message):
    type: Literal["job.retry"]
    job_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]


class Ping(_Message):
    type: Literal["ping"]


# Extensions (docs/protocol.md): the notification center of issue #9.
NOTIFICATION_PAGE = 20
NOTIFICATION_PAGE_MAX = 100
NotificationId = Annotated[int, Field(gt=0, le=2**63 - 1)]


class NotificationList(_Message):
    type: Literal["notification.list"]
    before: NotificationId | None = None  # the id of the oldest one the client holds: the next page
    limit: Annotated[int, Field(ge=1, le=NOTIFICATION_PAGE_MAX)] = NOTIFICATION_PAGE


class NotificationRead(_Message):
    type: Literal["notification.read"]
    id: NotificationId


class NotificationReadAll(_Message):
    type: Literal["notification.read_all"]


ClientMessage = Submit | Cancel | Retry | Ping | NotificationList | NotificationRead | NotificationReadAll
MESSAGES: dict[str, type[ClientMessage]] = {
    "job.submit": Submit,
    "job.cancel": Cancel,
    "job.retry": Retry,
    "ping": Ping,
    "notification.list": NotificationList,
    "notification.read": NotificationRead,
    "notification.read_all": NotificationReadAll,
}


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
    model = MESSAGES.get(kind)
    if model is None:
        raise ProtocolError("unknown_type", f"Unknown message type {kind[:64]!r}.")
    try:
        return model.model_validate(data)
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


def timestamp(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def job_payload(job: Job) -> dict[str, Any]:
    """The protocol's Job object."""
    return {
        "id": str(job.pk),
        "kind": job.kind,
        "status": job.status,
        "params": kinds.public_params(job.kind, job.params),
        "attempt": job.attempt,
        "seq": job.seq,
        "progress": job.progress,
        "result": job.result,
        "error": job.error,
        "created_at": timestamp(job.created_at),
        "started_at": timestamp(job.started_at),
        "finished_at": timestamp(job.finished_at),
        # Extension (docs/protocol.md): the Celery task of the current attempt, for Flower.
        "task_id": job.celery_task_id or None,
    }


def dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def job_event(event: str, job: Job) -> str:
    return dumps({"type": event, "job": job_payload(job)})


def progress_event(job_id: str, seq: int, progress: dict[str, Any]) -> str:
    return dumps({"type": "job.progress", "job_id": job_id, "seq": seq, "progress": progress})


def notice_payload(notice: Notice) -> dict[str, Any]:
    """The Notice object of `hello.notices` and the `notice` event (extension)."""
    return {
        "id": notice.pk,
        "level": notice.level,
        "text": notice.text,
        "created_at": timestamp(notice.created_at),
        "expires_at": timestamp(notice.expires_at),
    }


def notice_event(notice: Notice) -> str:
    return dumps({"type": "notice", "notice": notice_payload(notice)})


def notification_payload(notification: Notification) -> dict[str, Any]:
    """The Notification object (extension). `job` names the finished job (select_related("job") when listing)."""
    job = None
    if notification.job is not None:
        job = {"id": str(notification.job.pk), "kind": notification.job.kind}
    return {
        "id": notification.pk,
        "kind": notification.kind,
        "level": notification.level,
        "text": notification.text,
        "job": job,
        "notice_id": notification.notice_id,
        "created_at": timestamp(notification.created_at),
        "read": notification.read_at is not None,
    }


def error(code: str, message: str, request_id: str | None = None, details: dict[str, Any] | None = None) -> str:
    body: dict[str, Any] = {"type": "error", "request_id": request_id, "code": code, "message": message}
    if details:
        body["details"] = details
    return dumps(body)
