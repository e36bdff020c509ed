"""A real SMTP server for tests (aiosmtpd on 127.0.0.1): records every message, refuses whom it is told to.

A test module imports `smtp_fixture` to get the `smtp` fixture: a fresh server
for the test, with Django's SMTP backend pointed at it. The integration tests
start one server per session with `serving()`. `serving(tls=...)` serves
STARTTLS with a certificate from `self_signed()` and then insists on it.
"""

from __future__ import annotations

import asyncio
import datetime
import email.policy
import ipaddress
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pytest_django.fixtures import Settings

from core.stack import free_port
from envconfig import env

USER_UNKNOWN = "550 5.1.1 Recipient address rejected: User unknown"


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    # The client's (host, port): one value per SMTP connection.
    peer: Any
    # Whether the connection had switched to TLS (STARTTLS) before the message.
    tls: bool = False
    # The user name the client logged in with (AUTH), if it did.
    login: str | None = None
    # When the message's data arrived (time.monotonic()): the mail rate limit's test measures windows.
    at: float = field(default_factory=time.monotonic)

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
        auth = session.auth_data
        login = auth.login.decode() if isinstance(auth, LoginPassword) else None
        received = Received(
            str(envelope.mail_from), list(envelope.rcpt_tos), message, session.peer, session.ssl is not None, login
        )
        with self._lock:
            self.received.append(received)
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


@dataclass(frozen=True)
class Certificate:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key: PEM files."""

    certfile: Path
    keyfile: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certfile, self.keyfile)
        return context


# What a self-signed certificate may do: sign (the TLS handshake) and, being its own CA, certify itself.
_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    key_cert_sign=True,
    crl_sign=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    encipher_only=False,
    decipher_only=False,
)


def self_signed(directory: Path) -> Certificate:
    """Make a certificate that a client trusts only if told to, valid for a day, in `directory`.

    It is its own CA (like `openssl req -x509`), with the extensions a strict
    verifier asks of one (VERIFY_X509_STRICT, on by default from Python 3.13).
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "jobs test SMTP server")])
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_KEY_USAGE, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = Certificate(directory / "smtp-cert.pem", directory / "smtp-key.pem")
    pem.certfile.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    pem.keyfile.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return pem


@contextmanager
def serving(login: tuple[str, str] | None = None, tls: Certificate | None = None) -> Iterator[SmtpServer]:
    """A running server; with `login`, it offers AUTH and accepts only that user and password.

    With `tls`, it offers STARTTLS with that certificate and refuses AUTH and
    MAIL until the client has switched to TLS; without, AUTH works in the clear.
    """
    handler = RecordingHandler()
    host, port = "127.0.0.1", free_port()
    options: dict[str, Any] = {}
    if login is not None:
        options.update(authenticator=_only(*login), auth_require_tls=tls is not None)
    if tls is not None:
        options.update(tls_context=tls.server_context(), require_starttls=True)
    controller = Controller(handler, hostname=host, port=port, **options)
    controller.start()  # returns once the server answers
    try:
        yield SmtpServer(host, port, handler)
    finally:
        controller.stop()


def _only(user: str, password: str) -> Callable[..., AuthResult]:
    def authenticate(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
        success = data == LoginPassword(user.encode(), password.encode())
        # auth_data ends up in session.auth_data, where handle_DATA reads who logged in.
        return AuthResult(success=success, handled=False, auth_data=data if success else None)

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


def use_email_url(settings: Settings, monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """Point Django's email where EMAIL_URL points, read as the settings read it (envconfig.env.get_email)."""
    use_smtp(settings, "localhost", 25)
    monkeypatch.setenv("EMAIL_URL", url)
    for name, value in env.get_email("EMAIL_URL", "").items():
        setattr(settings, name, value)


@pytest.fixture(name="smtp")
def smtp_fixture(settings: Settings) -> Iterator[SmtpServer]:
    """A fresh SMTP server for this test, with Django's email pointed at it."""
    with serving() as server:
        use_smtp(settings, server.host, server.port)
        yield server
