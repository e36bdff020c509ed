"""Email delivery for email.send: one message per recipient, each sent at most once.

Exactly once, as far as SMTP allows it:

1. Every (job, recipient) has one EmailDelivery row. Over SMTP, a run sends
   MAIL, RCPT, DATA and the message text, then claims the recipient by
   writing the row as "sending" in its own committed transaction (an INSERT,
   which the unique constraint lets only one run win, or an UPDATE of a row
   refused in an earlier attempt), and only then sends the final dot that
   makes the server deliver. A crash before the claim leaves no row and no
   delivered message, so the next run sends it.
2. Right after the server accepts the message the row becomes "sent"; when
   the server refuses it with an SMTP error reply (the message did not go
   out), the row becomes "failed" with that reply.
3. A run skips a "sent" recipient, claims again a recipient "failed" in an
   earlier attempt (a retry tries the refused ones again), and reports a
   "failed" row of its own attempt as it stands (a redelivered task does not
   retry what its attempt already tried).
4. A run that finds a "sending" row cannot know whether the message left:
   a worker died, or the connection broke, between the claim and the
   server's answer to the dot. The service promises never to send twice, so
   that recipient is reported failed with an "unknown outcome" error and
   never sent again by itself. This is the crash window: one round trip, for
   at most one recipient per interrupted run. Only the job's owner may choose
   otherwise, accepting that the recipient may get the message twice: a retry
   with `resend_unknown` (release_unknown) makes those rows "failed" in the
   retry's own transaction, so the new attempt claims them again as in 3.
5. Every message carries a Message-ID fixed by (job, recipient index), the
   same on every attempt, so a receiving server can spot a duplicate.

A connection that cannot be opened, or breaks, raises MailServerUnavailable:
the recipients not yet tried keep no row, so a retry sends to them.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parseaddr

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.utils import DNS_NAME
from django.db import IntegrityError, transaction
from django.utils import timezone

import patches.smtp
from tasks import mailrate
from tasks.models import DeliveryStatus, EmailDelivery

logger = logging.getLogger(__name__)

UNKNOWN_OUTCOME = (
    "Outcome unknown: sending was interrupted before the server's answer was recorded, "
    "so it is not sent again (a message is never sent twice)."
)
# A released recipient that the retried attempt did not reach (the server went away first) keeps this.
RELEASED = "Outcome unknown: its owner asked for it to be sent again, and it has not been yet."
# An SMTP reply is the server's text; keep what a user is shown short.
_MAX_ERROR_CHARS = 300
# The server is closing the connection: no later message can go through it.
_SERVICE_CLOSING = 421


@dataclass(frozen=True)
class Letter:
    """What every recipient receives; each gets a copy addressed to them alone."""

    to: Sequence[str]
    subject: str
    body: str


@dataclass(frozen=True)
class Outcome:
    to: str
    sent: bool
    error: str = ""
    earlier: bool = False  # decided by an earlier run of the job, not by this one


class MailServerUnavailable(Exception):
    """The mail server could not be reached, or the connection broke; `reason` is safe to show a user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def deliver(
    job_id: str,
    attempt: int,
    letter: Letter,
    progress: Callable[[list[Outcome]], None],
    throttled: Callable[[list[Outcome], float], None] | None = None,
) -> list[Outcome]:
    """Send the letter to every recipient not yet served; one outcome per recipient, in order.

    `progress` is called with the outcomes so far after each recipient; `throttled`, about once a
    second, while the mail rate limit (tasks.mailrate) holds the next message back.
    Raises MailServerUnavailable (and whatever `progress` or `throttled` raises, e.g. JobCancelled).
    """
    rows = {row.recipient: row for row in EmailDelivery.objects.filter(job_id=job_id)}
    if not any(_is_pending(rows.get(address), attempt) for address in letter.to):
        # A redelivered task whose recipients were all served: no server needed.
        outcomes = [_outcome_of(rows[address], earlier=True) for address in letter.to]
        progress(outcomes)
        return outcomes
    outcomes = []
    with _open_connection(job_id) as connection:
        for index, address in enumerate(letter.to):
            row = rows.get(address)
            if row is not None and not _is_pending(row, attempt):
                outcomes.append(_outcome_of(row, earlier=True))
            else:
                mailrate.wait_for_turn(lambda left: throttled(outcomes, left) if throttled else None)
                outcomes.append(_send_once(connection, job_id, attempt, index, address, letter))
            progress(outcomes)
    return outcomes


def count_sent(job_id: str) -> int:
    return EmailDelivery.objects.filter(job_id=job_id, status=DeliveryStatus.SENT).count()


def count_unknown(job_id: uuid.UUID) -> int:
    """How many recipients' outcome is unknown: rows left "sending". Call it once no run of the job is sending."""
    return EmailDelivery.objects.filter(job_id=job_id, status=DeliveryStatus.SENDING).count()


def release_unknown(job_id: uuid.UUID) -> int:
    """Let the next attempt send again to the recipients whose outcome is unknown (a retry with
    `resend_unknown`, asked for by the owner); how many. In the caller's transaction: the retry's."""
    released = EmailDelivery.objects.filter(job_id=job_id, status=DeliveryStatus.SENDING).update(
        status=DeliveryStatus.FAILED, error=RELEASED, updated_at=timezone.now()
    )
    if released:
        logger.warning("job %s: %d recipients whose outcome is unknown will be sent again", job_id, released)
    return released


def message_id(job_id: str, index: int) -> str:
    """The Message-ID of the job's message to its index-th recipient, the same on every attempt.

    Its domain is the sender's, not the worker's host name, so it does not
    change when a redelivered task runs on another worker.
    """
    domain = parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2]
    if not domain or not domain.isascii():
        domain = str(DNS_NAME)
    return f"<{job_id}.{index}@{domain}>"


def _is_pending(row: EmailDelivery | None, attempt: int) -> bool:
    """Whether this attempt should try the recipient: never tried, or refused by an earlier attempt."""
    return row is None or (row.status == DeliveryStatus.FAILED and row.attempt < attempt)


def _outcome_of(row: EmailDelivery, earlier: bool = False) -> Outcome:
    if row.status == DeliveryStatus.SENT:
        return Outcome(row.recipient, sent=True, earlier=earlier)
    if row.status == DeliveryStatus.FAILED:
        return Outcome(row.recipient, sent=False, error=row.error, earlier=earlier)
    return Outcome(row.recipient, sent=False, error=UNKNOWN_OUTCOME, earlier=earlier)


@contextmanager
def _open_connection(job_id: str) -> Iterator[BaseEmailBackend]:
    """One connection for the whole job (EMAIL_URL picks the backend), closed whatever happens."""
    connection = get_connection(fail_silently=False)
    try:
        connection.open()
    except OSError as exc:
        logger.warning("job %s: cannot open a connection to the mail server", job_id, exc_info=True)
        raise MailServerUnavailable(_describe_connection_error(exc)) from exc
    try:
        yield connection
    finally:
        _close_quietly(connection, job_id)


def _close_quietly(connection: BaseEmailBackend, job_id: str) -> None:
    # Every outcome is recorded by now: a failing QUIT must not fail the job.
    try:
        connection.close()
    except OSError:
        logger.warning("job %s: closing the mail server connection failed", job_id, exc_info=True)


def _send_once(
    connection: BaseEmailBackend, job_id: str, attempt: int, index: int, address: str, letter: Letter
) -> Outcome:
    msgid = message_id(job_id, index)
    message = EmailMessage(
        letter.subject,
        letter.body,
        settings.DEFAULT_FROM_EMAIL,
        [address],
        headers={"Message-ID": msgid},
        connection=connection,
    )
    smtp = patches.smtp.smtp_of(connection)
    if smtp is not None:
        return _send_over_smtp(smtp, connection, job_id, attempt, address, msgid, message)
    # Other backends (files, console, memory) deliver in this process: claim, then send.
    if not _claim(job_id, attempt, address, msgid):
        return _outcome_of(EmailDelivery.objects.get(job_id=job_id, recipient=address))
    connection.send_messages([message])
    mark_sent(job_id, address)
    return Outcome(address, sent=True)


def _send_over_smtp(
    smtp: smtplib.SMTP,
    connection: BaseEmailBackend,
    job_id: str,
    attempt: int,
    address: str,
    msgid: str,
    message: EmailMessage,
) -> Outcome:
    """Send over SMTP, claiming the recipient only just before the message's final dot.

    A server delivers a message only once it has read the line with the lone
    dot; a connection that drops before it makes the server discard the message.
    So everything up to that line happens before the claim (a crash there
    leaves no row, and the redelivered task simply sends again), and the crash
    window that can lose or hide a message shrinks to the dot and its reply.
    """
    try:
        patches.smtp.send_all_but_the_final_dot(smtp, message, address)
    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPResponseException) as exc:
        # Refused before any data was accepted: nothing went out.
        if not _claim(job_id, attempt, address, msgid):
            return _outcome_of(EmailDelivery.objects.get(job_id=job_id, recipient=address))
        return _refused(job_id, address, exc)
    except OSError as exc:
        raise MailServerUnavailable(_describe_connection_error(exc)) from exc
    if not _claim(job_id, attempt, address, msgid):
        # Another run of this job (its task delivered twice at once) took the
        # recipient first: drop the connection mid-message, so the server discards this copy.
        patches.smtp.drop_mid_message(smtp, connection)
        return _outcome_of(EmailDelivery.objects.get(job_id=job_id, recipient=address))
    try:
        patches.smtp.send_final_dot(smtp)
    except smtplib.SMTPResponseException as exc:
        return _refused(job_id, address, exc)
    except OSError as exc:
        # Whether the server took it is unknown: the row stays "sending" and
        # the recipient is never retried.
        logger.warning("job %s: connection lost waiting for the server's answer", job_id, exc_info=True)
        raise MailServerUnavailable(_describe_connection_error(exc)) from exc
    mark_sent(job_id, address)
    return Outcome(address, sent=True)


def _refused(job_id: str, address: str, exc: smtplib.SMTPRecipientsRefused | smtplib.SMTPResponseException) -> Outcome:
    """The server answered with an error, so the message did not go out: record it as failed."""
    code, reply = _reply_of(exc)
    _record(job_id, address, DeliveryStatus.FAILED, reply)
    if code == _SERVICE_CLOSING:
        raise MailServerUnavailable(f"it answered {reply}") from exc
    return Outcome(address, sent=False, error=reply)


def _claim(job_id: str, attempt: int, address: str, msgid: str) -> bool:
    """Take the recipient for this attempt in a committed transaction; False if another run holds it."""
    with transaction.atomic(durable=True):
        retried = EmailDelivery.objects.filter(
            job_id=job_id, recipient=address, status=DeliveryStatus.FAILED, attempt__lt=attempt
        ).update(status=DeliveryStatus.SENDING, attempt=attempt, error="", updated_at=timezone.now())
    if retried:
        return True
    try:
        with transaction.atomic(durable=True):
            EmailDelivery.objects.create(
                job_id=job_id, recipient=address, status=DeliveryStatus.SENDING, attempt=attempt, message_id=msgid
            )
    except IntegrityError:
        return False
    return True


def mark_sent(job_id: str, address: str) -> None:
    """Record that the server accepted the message; the sooner it commits, the smaller the crash window."""
    _record(job_id, address, DeliveryStatus.SENT)


def _record(job_id: str, address: str, status: DeliveryStatus, error: str = "") -> None:
    with transaction.atomic(durable=True):
        EmailDelivery.objects.filter(job_id=job_id, recipient=address).update(
            status=status, error=error, updated_at=timezone.now()
        )


def _reply_of(exc: smtplib.SMTPRecipientsRefused | smtplib.SMTPResponseException) -> tuple[int, str]:
    """The server's reply code and its text as a user may read it."""
    raw: bytes | str
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, raw = next(iter(exc.recipients.values()))
    else:
        code, raw = exc.smtp_code, exc.smtp_error
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    # Multi-line replies come joined by newlines; one line reads better.
    return code, f"{code} {' '.join(text.split())}"[:_MAX_ERROR_CHARS]


def _describe_connection_error(exc: OSError) -> str:
    """Why the connection failed, in words for a user: the server's reply, never a traceback."""
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return f"it refused our login ({_reply_of(exc)[1]})"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"it answered {_reply_of(exc)[1]}"
    if isinstance(exc, TimeoutError):
        return "it did not answer in time"
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        # smtplib reports a reply that never came (EMAIL_TIMEOUT) as a disconnection, raised from the timeout.
        return "it did not answer in time" if isinstance(exc.__context__, TimeoutError) else "it closed the connection"
    if isinstance(exc, ssl.SSLError):
        return "the TLS handshake with it failed"
    if isinstance(exc, smtplib.SMTPException):
        # smtplib's own words, e.g. "STARTTLS extension not supported by server."
        return f"the SMTP conversation failed ({exc})"
    return f"it could not be reached ({exc.strerror})" if exc.strerror else "it could not be reached"
