"""--user USERNAME: a short-lived API token for a local user, when run inside the project.

For an operator on the server itself: no token to create and paste. It needs
Django and the project's settings (DJANGO_SETTINGS_MODULE, DATABASE_URL ...),
so it is the one part of jobsctl that is not standalone; the imports live in
the function so that the client runs without Django everywhere else. The
token is revoked when the command ends, however it ends.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from jobsctl.errors import CliError

TOKEN_NAME = "jobsctl --user (temporary)"  # noqa: S105  (the name shown in token lists, not a secret)


@contextmanager
def temporary_token(username: str) -> Iterator[str]:
    try:
        import django

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings.local")
        django.setup()
        from django.contrib.auth.models import User

        from accounts import tokens
    except Exception as exc:
        raise CliError(f"--user works only inside the project, with its settings: {exc}", "usage") from None
    user = User.objects.filter(username=username, is_active=True).first()
    if user is None:
        raise CliError(f"No active user {username!r} in the project's database.", "usage")
    token, raw = tokens.create(user, TOKEN_NAME)
    try:
        yield raw
    finally:
        tokens.revoke(token)
