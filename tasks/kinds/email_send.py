"""email.send: one message to each of up to 100 recipients, each sent exactly once (tasks.emails)."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from tasks import emails
from tasks.errors import JobFailure
from tasks.kinds import register
from tasks.kinds.base import Kind, Reporter, RunContext

NAME = "email.send"
MAX_RECIPIENTS = 100
# What every job event shows of the body: enough to recognise the message.
PUBLIC_BODY_CHARS = 200
# Every separator str.splitlines() knows: any of them in a header could be
# read as the start of a new header by some mail software.
_LINE_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")


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


class EmailParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    to: list[Annotated[str, AfterValidator(_address)]] = Field(min_length=1, max_length=MAX_RECIPIENTS)
    subject: Annotated[str, AfterValidator(_one_line)] = Field(min_length=1, max_length=200)
    body: str = Field(max_length=100_000)

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


def run(context: RunContext) -> dict[str, Any]:
    params: EmailParams = context.params
    total = len(params.to)
    progress = partial(_report, context.reporter, total)
    progress([])
    letter = emails.Letter(to=params.to, subject=params.subject, body=params.body)
    try:
        outcomes = emails.deliver(context.job_id, context.attempt, letter, progress)
    except emails.MailServerUnavailable as exc:
        sent = emails.count_sent(context.job_id)
        raise JobFailure(
            "smtp_unavailable",
            f"The mail server is unavailable: {exc.reason}. {sent} of {total} recipients have been sent "
            "the message; retry the job later to send it to the rest.",
        ) from exc
    return _result(outcomes)


def _report(reporter: Reporter, total: int, outcomes: list[emails.Outcome]) -> None:
    sent = sum(outcome.sent for outcome in outcomes)
    failed = len(outcomes) - sent
    message = f"{sent} of {total} sent" + (f", {failed} failed" if failed else "")
    reporter.report(len(outcomes), total, stage="sending", message=message)


def _result(outcomes: list[emails.Outcome]) -> dict[str, Any]:
    failed = [{"to": outcome.to, "error": outcome.error} for outcome in outcomes if not outcome.sent]
    if len(failed) == len(outcomes):
        first = failed[0]
        raise JobFailure(
            "all_recipients_failed",
            f"Nothing was sent: all {len(failed)} recipients failed. The first, {first['to']}: {first['error']}",
        )
    return {"sent": len(outcomes) - len(failed), "failed": failed}


KIND = register(
    Kind(
        name=NAME,
        params=EmailParams,
        run=run,
        task_name="jobs.email.send",
        # Sized for 100 recipients on a slow server: about 12 s each. A dead
        # server fails fast instead (EMAIL_TIMEOUT, 30 s per operation). The hard
        # limit leaves time for the operation in flight to time out and for the
        # outcome to be recorded, and stays well below the broker's visibility
        # timeout, so Redis never hands a running job to a second worker.
        soft_time_limit=20 * 60,
        time_limit=20 * 60 + 90,
        public_params=public_params,
    )
)
