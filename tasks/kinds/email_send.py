"""email.send: one message to each of up to 100 recipients, each sent exactly once (tasks.emails)."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from tasks import emails
from tasks.kinds import Context, JobFailure, kind

MAX_RECIPIENTS = 100
# What every job event shows of the body: enough to recognise the message.
PUBLIC_BODY_CHARS = 200
# Every separator str.splitlines() knows: any of them in a header could be
# read as the start of a new header by some mail software.
_LINE_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")


# The same rule for JSON Schema clients: no line break up to the end of the text.
# (?![\s\S]) and not $, which Python's re lets match before a final newline.
ONE_LINE_PATTERN = "^[^" + "".join(sorted(_LINE_BREAKS)) + "]*(?![\\s\\S])"


def _one_line(value: str) -> str:
    if any(char in _LINE_BREAKS for char in value):
        raise ValueError("Line breaks are not allowed.")
    return value


def _address(value: str) -> str:
    _one_line(value)
    try:
        validate_email(value)
    except DjangoValidationError:
        raise ValueError("Enter a valid email address.") from None
    return value


Address = Annotated[str, AfterValidator(_address), Field(title="Address", json_schema_extra={"format": "email"})]


class EmailParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, title="Email")

    to: list[Address] = Field(
        min_length=1,
        max_length=MAX_RECIPIENTS,
        title="To",
        description="Separate addresses with commas or new lines. Each is sent its own copy.",
    )
    subject: Annotated[str, AfterValidator(_one_line)] = Field(
        min_length=1, max_length=200, title="Subject", json_schema_extra={"pattern": ONE_LINE_PATTERN}
    )
    body: str = Field(max_length=100_000, title="Message")

    @field_validator("to")
    @classmethod
    def _no_duplicates(cls, to: list[str]) -> list[str]:
        first_seen: dict[str, int] = {}
        for index, address in enumerate(to):
            first = first_seen.setdefault(address.casefold(), index)
            if first != index:
                raise _duplicate(index, first, address)
        return to


def _duplicate(index: int, first: int, address: str) -> ValidationError:
    # A ValidationError raised inside a validator is nested under the field,
    # so the error's place is the duplicate itself ("to.<index>"), not the list.
    error = PydanticCustomError("duplicate_address", "Repeats to.{first} (case is ignored).", {"first": first})
    return ValidationError.from_exception_data("to", [InitErrorDetails(type=error, loc=(index,), input=address)])


def public_params(params: dict[str, Any]) -> dict[str, Any]:
    """Every job event carries the params: show the body's start and its length, not all of it."""
    body = params.get("body", "")
    return {**params, "body": body[:PUBLIC_BODY_CHARS], "body_length": len(body)}


# Sized for 100 recipients on a slow server: about 12 s each. A dead server fails
# fast instead (EMAIL_TIMEOUT, 30 s per operation). The hard limit leaves time for
# the operation in flight to time out and for the outcome to be recorded.
@kind(
    "email.send",
    params=EmailParams,
    title="Email",
    description=f"One message to up to {MAX_RECIPIENTS} recipients, each sent once.",
    soft_time_limit=20 * 60,
    time_limit=20 * 60 + 90,
    public_params=public_params,
    submit_label="Send email",
)
def send(ctx: Context[EmailParams]) -> dict[str, Any]:
    params = ctx.params
    total = len(params.to)
    progress = partial(_report, ctx, total)
    progress([])
    letter = emails.Letter(to=params.to, subject=params.subject, body=params.body)
    try:
        outcomes = emails.deliver(ctx.job_id, ctx.attempt, letter, progress)
    except emails.MailServerUnavailable as exc:
        sent = emails.count_sent(ctx.job_id)
        raise JobFailure(
            "smtp_unavailable",
            f"The mail server is unavailable: {exc.reason}. {sent} of {total} recipients have been sent "
            "the message; retry the job later to send it to the rest.",
        ) from exc
    return _result(outcomes)


def _report(ctx: Context[EmailParams], total: int, outcomes: list[emails.Outcome]) -> None:
    if outcomes:
        _log(ctx, outcomes[-1])
    sent = sum(outcome.sent for outcome in outcomes)
    failed = len(outcomes) - sent
    message = f"{sent} of {total} sent" + (f", {failed} failed" if failed else "")
    ctx.progress(len(outcomes), total, stage="sending", message=message)


def _log(ctx: Context[EmailParams], outcome: emails.Outcome) -> None:
    """A log line for each recipient refused, and each one an earlier run already served."""
    if not outcome.sent:
        ctx.log(f"{outcome.to}: {outcome.error}", level="warning")
    elif outcome.earlier:
        ctx.log(f"{outcome.to}: sent by an earlier run of this job; skipped.")


def _result(outcomes: list[emails.Outcome]) -> dict[str, Any]:
    failed = [{"to": outcome.to, "error": outcome.error} for outcome in outcomes if not outcome.sent]
    if len(failed) == len(outcomes):
        first = failed[0]
        raise JobFailure(
            "all_recipients_failed",
            f"Nothing was sent: all {len(failed)} recipients failed. The first, {first['to']}: {first['error']}",
        )
    return {"sent": len(outcomes) - len(failed), "failed": failed}
