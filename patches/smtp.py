"""Driving smtplib below `sendmail`, through Django's SMTP email backend, so a message can stop before its final dot.

tasks.emails claims a recipient between the message text and the lone "."
that makes the server deliver (see its docstring). smtplib's `sendmail` sends
both at once, so this module does what `sendmail` does, step by step, on the
`smtplib.SMTP` that Django's SMTP backend keeps in its `connection` attribute,
and formats the message as that backend does (SafeMIME's `as_bytes(linesep=)`).
"""

from __future__ import annotations

import re
import smtplib

from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.message import sanitize_address


def smtp_of(backend: BaseEmailBackend) -> smtplib.SMTP | None:
    """The open SMTP connection of Django's SMTP backend; None for other backends (files, memory, console)."""
    smtp = getattr(backend, "connection", None)
    return smtp if isinstance(smtp, smtplib.SMTP) else None


def send_all_but_the_final_dot(smtp: smtplib.SMTP, message: EmailMessage, address: str) -> None:
    """MAIL, RCPT, DATA and the message text (as smtplib.SMTP.sendmail would), stopping before the dot."""
    encoding = message.encoding or settings.DEFAULT_CHARSET
    sender = sanitize_address(message.from_email, encoding)
    recipient = sanitize_address(address, encoding)
    smtp.ehlo_or_helo_if_needed()
    code, reply = smtp.mail(sender)
    if code != 250:
        smtp.rset()
        raise smtplib.SMTPSenderRefused(code, reply, sender)
    code, reply = smtp.rcpt(recipient)
    if code not in (250, 251):
        smtp.rset()
        raise smtplib.SMTPRecipientsRefused({recipient: (code, reply)})
    code, reply = smtp.docmd("data")
    if code != 354:
        smtp.rset()
        raise smtplib.SMTPDataError(code, reply)
    # Django's SafeMIME classes take linesep, as its own SMTP backend uses them.
    data = message.message().as_bytes(linesep="\r\n")  # type: ignore[call-arg]
    data = re.sub(rb"(?m)^\.", b"..", data)  # dot-stuffing (RFC 5321 4.5.2)
    smtp.send(data if data.endswith(b"\r\n") else data + b"\r\n")


def send_final_dot(smtp: smtplib.SMTP) -> None:
    """End the message; the server delivers it now. SMTPDataError if it refuses, OSError if the answer is lost."""
    smtp.send(b".\r\n")
    code, reply = smtp.getreply()
    if code != 250:
        raise smtplib.SMTPDataError(code, reply)


def drop_mid_message(smtp: smtplib.SMTP, backend: BaseEmailBackend) -> None:
    """Close the socket without a word (the server discards the unfinished message), then reconnect the backend.

    Not backend.close(): its QUIT would be read as message text, and it would
    wait out the SMTP timeout for an answer that never comes.
    """
    smtp.close()
    backend.connection = None  # type: ignore[attr-defined]
    backend.open()
