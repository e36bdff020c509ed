"""A real SMTP server for tests (aiosmtpd on 127.0.0.1): records every message, refuses whom it is told to.

A test module imports `smtp_fixture` to get the `smtp` fixture: a fresh server
for the test, with Django's SMTP backend pointed at it. The integration tests
start one server per session with `serving()`.
"""

from __future__ import annotations

import asyncio
import email.policy
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email import message_from_bytes
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from pytest_django.fixtures import Settings

from core.stack import free_port

USER_UNKNOWN = "550 5.1.1 Recipient address rejected: User unknown"


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    # The client's (host, port): one value per SMTP connection.
    peer: Any

    @property
    def body(self) -> str:
        """The text as sent, with SMTP's CRLF line ends turned back into newlines."""
        content = self.message.get_content()
        assert isinstance(content, str)
        return content.replace("\r\n", "\n")


class RecordingHandler:
    """aiosmtpd hooks: refuse configured recipients at RCPT, record every accepted message."""

    def __init__(self) -> None:
        self.refusals: dict[str, str] = {}
        # Seconds to wait after a message's data before answering 250: a slow
        # server, so a test can kill a worker while it waits for the answer.
        self.accept_delay = 0.0
        self.received: list[Received] = []
        self.refused: list[str] = []
        self._lock = threading.Lock()

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        refusal = self.refusals.get(address.lower())
        if refusal is not None:
            with self._lock:
                self.refused.append(address)
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        message = message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self.received.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), message, session.peer))
        if self.accept_delay:
            await asyncio.sleep(self.accept_delay)
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    host: str
    port: int
    handler: RecordingHandler

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    @property
    def received(self) -> list[Received]:
        with self.handler._lock:
            return list(self.handler.received)

    @property
    def refused(self) -> list[str]:
        """Every RCPT this server refused, in order."""
        with self.handler._lock:
            return list(self.handler.refused)

    def to(self, address: str) -> list[Received]:
        """The messages whose envelope went to this address."""
        return [message for message in self.received if address in message.rcpt_tos]

    def refuse(self, address: str, reply: str = USER_UNKNOWN) -> None:
        self.handler.refusals[address.lower()] = reply

    def accept(self, address: str) -> None:
        self.handler.refusals.pop(address.lower(), None)


@contextmanager
def serving(login: tuple[str, str] | None = None) -> Iterator[SmtpServer]:
    """A running server; with `login`, it offers AUTH (without TLS) and accepts only that user and password."""
    handler = RecordingHandler()
    host, port = "127.0.0.1", free_port()
    auth: dict[str, Any] = {} if login is None else {"authenticator": _only(*login), "auth_require_tls": False}
    controller = Controller(handler, hostname=host, port=port, **auth)
    controller.start()  # returns once the server answers
    try:
        yield SmtpServer(host, port, handler)
    finally:
        controller.stop()


def _only(user: str, password: str) -> Callable[..., AuthResult]:
    def authenticate(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
        return AuthResult(success=data == LoginPassword(user.encode(), password.encode()), handled=False)

    return authenticate


def use_smtp(settings: Settings, host: str, port: int) -> None:
    """Point Django's email at a plain SMTP server (no TLS, no login)."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = host
    settings.EMAIL_PORT = port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""


@pytest.fixture(name="smtp")
def smtp_fixture(settings: Settings) -> Iterator[SmtpServer]:
    """A fresh SMTP server for this test, with Django's email pointed at it."""
    with serving() as server:
        use_smtp(settings, server.host, server.port)
        yield server
