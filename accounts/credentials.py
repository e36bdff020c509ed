"""Is an open socket's credential still good? Asked for every open socket, in batches (gateway.recheck)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from importlib import import_module

from django.conf import settings
from django.contrib.auth import get_user
from django.http import HttpRequest

from accounts.models import ApiToken


@dataclass(frozen=True)
class Credential:
    """What a socket rode in on: a token, or else a session of `user_id`."""

    user_id: int
    session_key: str | None
    token_id: int | None


def invalid_among(credentials: Iterable[Credential]) -> set[Credential]:
    """Those of `credentials` that no longer log their user in.

    A token stays good while it is unrevoked and its user active: one query for
    all of them. A session stays good while it still logs in the same user.
    """
    credentials = set(credentials)
    token_ids = {c.token_id for c in credentials if c.token_id is not None}
    active_tokens = set(
        ApiToken.objects.filter(pk__in=token_ids, revoked_at__isnull=True, user__is_active=True).values_list(
            "pk", flat=True
        )
    )
    return {
        c
        for c in credentials
        if not (c.token_id in active_tokens if c.token_id is not None else _session_valid(c.user_id, c.session_key))
    }


def _session_valid(user_id: int, session_key: str | None) -> bool:
    if not session_key:
        return False
    store = import_module(settings.SESSION_ENGINE).SessionStore
    request = HttpRequest()
    request.session = store(session_key)
    # get_user also refuses inactive users and sessions whose password hash is
    # stale (the password changed since), exactly as for an HTTP request.
    user = get_user(request)
    return bool(user.is_authenticated and user.pk == user_id)
