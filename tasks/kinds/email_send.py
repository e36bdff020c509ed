"""email.send: one message to each recipient, each sent exactly once (tasks.emails).

A job sends to at most PER_JOB (100) recipients. Past that, up to 100,000 in
`to` or in an uploaded file of addresses (`recipients_file`), the submit
becomes a parallel batch of jobs of 100 each (`split`): one bar for the user,
spread over every worker, and each child keeps the once-per-recipient
guarantee (an address is in one child only: repeats are refused in `to`, and
sent once from a file).
"""

from __future__ import annotations

import uuid
from functools import partial
from typing import Annotated, Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from tasks import emails
from tasks.kinds import Context, JobFailure, Split, Unknowns, UploadId, kind
from uploads.models import Upload

MAX_RECIPIENTS = 100_000
PER_JOB = 100
# A file of 100,000 long addresses, with room for separators and a header line.
MAX_FILE_BYTES = 40 * 1024 * 1024
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
    # Addresses in `to` or in a file, exactly one of them: said in the schema too, for clients.
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        title="Email",
        json_schema_extra={
            "anyOf": [
                {
                    "required": ["to"],
                    "properties": {"to": {"minItems": 1}},
                    "not": {"required": ["recipients_file"], "properties": {"recipients_file": {"type": "string"}}},
                },
                {
                    "required": ["recipients_file"],
                    "properties": {"recipients_file": {"type": "string"}, "to": {"maxItems": 0}},
                },
            ]
        },
    )

    to: list[Address] = Field(
        default_factory=list,
        max_length=MAX_RECIPIENTS,
        title="To",
        description=(
            "Separate addresses with commas or new lines. Each is sent its own copy. "
            f"Past {PER_JOB}, the email is sent as a batch of jobs of {PER_JOB} recipients."
        ),
    )
    subject: Annotated[str, AfterValidator(_one_line)] = Field(
        min_length=1, max_length=200, title="Subject", json_schema_extra={"pattern": ONE_LINE_PATTERN}
    )
    body: str = Field(max_length=100_000, title="Message")
    recipients_file: UploadId | None = Field(
        default=None,
        title="Recipients file",
        description=(
            f"Instead of To: a text or CSV file of up to {MAX_RECIPIENTS:,} addresses, one per line or "
            "separated by commas. An address repeated in it is sent one message."
        ),
    )

    @field_validator("to")
    @classmethod
    def _no_duplicates(cls, to: list[str]) -> list[str]:
        first_seen: dict[str, int] = {}
        for index, address in enumerate(to):
            first = first_seen.setdefault(address.casefold(), index)
            if first != index:
                raise _duplicate(index, first, address)
        return to

    @model_validator(mode="after")
    def _recipients(self) -> EmailParams:
        """Exactly one source of addresses; a file's are read, checked and put in `to`."""
        if self.recipients_file is None:
            if not self.to:
                raise _error("to", "no_recipients", "Give at least one address, or a recipients file.", self.to)
        elif self.to:
            raise _error("to", "two_sources", "Give the addresses here or in a recipients file, not both.", self.to)
        else:
            self.to = _addresses_in(self.recipients_file)
        return self


def _error(field: str, kind: str, text: str, value: Any) -> ValidationError:
    error = PydanticCustomError(kind, text)
    return ValidationError.from_exception_data("EmailParams", [InitErrorDetails(type=error, loc=(field,), input=value)])


def _addresses_in(upload_id: uuid.UUID) -> list[str]:
    """The file's addresses in order, each once (case ignored); an error names the first bad line."""
    upload = Upload.objects.get(pk=upload_id)
    if upload.size > MAX_FILE_BYTES:
        raise _error("recipients_file", "too_large", f"The file is over {MAX_FILE_BYTES // 2**20} MiB.", str(upload_id))
    with upload.file.open("rb") as stored:
        text = stored.read().decode("utf-8-sig", errors="replace")
    seen: set[str] = set()
    addresses: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        for address in filter(None, (part.strip().strip('"') for part in line.split(","))):
            if number == 1 and "@" not in address:
                continue  # a CSV header ("email")
            try:
                _address(address)
            except ValueError as exc:
                raise _error(
                    "recipients_file", "bad_address", f"Line {number}: {exc} ({address[:80]!r})", None
                ) from None
            if address.casefold() not in seen:
                seen.add(address.casefold())
                addresses.append(address)
    if not addresses:
        raise _error("recipients_file", "no_recipients", "The file holds no address.", str(upload_id))
    if len(addresses) > MAX_RECIPIENTS:
        raise _error("recipients_file", "too_many", f"The file holds over {MAX_RECIPIENTS:,} addresses.", None)
    return addresses


def split(params: EmailParams) -> Split:
    """Jobs of at most PER_JOB recipients each, with the same subject and body; the file is read by now."""
    common = {"subject": params.subject, "body": params.body}
    parts = [{"to": params.to[start : start + PER_JOB], **common} for start in range(0, len(params.to), PER_JOB)]
    title = f"Email {params.subject!r} to {len(params.to):,} recipients"
    return Split(title=title, parts=parts)


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
    description=f"One message to each of up to {MAX_RECIPIENTS:,} recipients, each sent once.",
    soft_time_limit=20 * 60,
    time_limit=20 * 60 + 90,
    public_params=public_params,
    submit_label="Send email",
    split=split,
    # A recipient whose send was cut off is never sent again unless its owner asks (tasks.emails, 4).
    unknowns=Unknowns(count=emails.count_unknown, release=emails.release_unknown),
)
def send(ctx: Context[EmailParams]) -> dict[str, Any]:
    params = ctx.params
    total = len(params.to)
    progress = partial(_report, ctx, total)
    progress([])
    letter = emails.Letter(to=params.to, subject=params.subject, body=params.body)
    try:
        outcomes = emails.deliver(ctx.job_id, ctx.attempt, letter, progress, partial(_throttled, ctx, total))
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


def _throttled(ctx: Context[EmailParams], total: int, outcomes: list[emails.Outcome], left: float) -> None:
    """The next message waits for the mail rate limit (EMAIL_RATE_PER_MINUTE): the owner sees why."""
    sent = sum(outcome.sent for outcome in outcomes)
    message = f"throttled by the mail rate limit: {sent} of {total} sent, the next in {left:.0f} s"
    ctx.progress(len(outcomes), total, stage="throttled", message=message)


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
