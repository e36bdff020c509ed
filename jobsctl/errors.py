"""Exit codes, and the errors that end a command with one."""

from __future__ import annotations

from typing import Any

EXIT_SUCCEEDED = 0
EXIT_FAILED = 1
# Usage, connection and authentication errors, and requests the server refused
# (invalid_params, not_found, conflict, rate_limited ...).
EXIT_ERROR = 2
EXIT_CANCELLED = 3
EXIT_INTERRUPTED = 130  # Ctrl-C, the job left running: the shell's convention for SIGINT


class CliError(Exception):
    """Ends the command with `exit_code`; printed as `code: message` and the details, one per line."""

    def __init__(
        self, message: str, code: str | None = None, details: dict[str, Any] | None = None, exit_code: int = EXIT_ERROR
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details or {}
        self.exit_code = exit_code

    def lines(self) -> list[str]:
        head = f"{self.code}: {self.message}" if self.code else self.message
        return [head, *(f"  {field}: {problem}" for field, problem in self.details.items())]


class AuthError(CliError):
    """The server refused the credentials: reconnecting cannot help."""


class Interrupted(CliError):
    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=EXIT_INTERRUPTED)


def server_error(message: dict[str, Any]) -> CliError:
    """A protocol `error` message as a CliError."""
    details = message.get("details") if isinstance(message.get("details"), dict) else None
    return CliError(str(message.get("message", "")), str(message.get("code", "error")), details)
