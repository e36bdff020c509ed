"""Is an open socket's credential still good? Asked periodically by every socket."""

from __future__ import annotations

from importlib import import_module

from django.conf import settings
from django.contrib.auth import get_user
from django.http import HttpRequest

from accounts import tokens


def still_valid(user_id: int, session_key: str | None, token_id: int | None) -> bool:
    """True while the token is unrevoked, or the session still logs in this user; and the user is active."""
    if token_id is not None:
        return tokens.is_active(token_id)
    if not session_key:
        return False
    store = import_module(settings.SESSION_ENGINE).SessionStore
    request = HttpRequest()
    request.session = store(session_key)
    # get_user also refuses inactive users and sessions whose password hash is
    # stale (the password changed since), exactly as for an HTTP request.
    user = get_user(request)
    return bool(user.is_authenticated and user.pk == user_id)
