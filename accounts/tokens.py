"""Creating, checking and revoking API tokens. The token itself is shown once and never stored."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts import events
from accounts.models import ApiToken
from patches.prepared import Prepared

TOKEN_PREFIX = "jobs_"  # noqa: S105  (a marker that makes leaked tokens easy to scan for, not a secret)
# last_used_at is a hint for people, not an audit log: write it at most this often.
LAST_USED_PRECISION = timedelta(minutes=1)


def digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def create(user: User, name: str) -> tuple[ApiToken, str]:
    """A new token for `user`: the row, and the token text to show once."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name.strip()[:100] or "token", prefix=raw[:12], digest=digest(raw))
    return token, raw


def authenticate(raw: str) -> ApiToken | None:
    """The active token of an active user matching `raw`, or None."""
    if not _well_formed(raw):
        return None
    return _in_use(_ACTIVE_TOKEN.first(hashed=digest(raw)))


def authenticate_with_groups(raw: str) -> tuple[ApiToken, list[int]] | None:
    """`authenticate`, and the ids of the user's auth groups, read in the same statement: a socket's
    handshake needs both, and each statement it saves is worth about a quarter of a millisecond of
    Daphne's CPU (docs/benchmarks.md, where a connect's CPU goes)."""
    if not _well_formed(raw):
        return None
    rows = _ACTIVE_TOKEN_AND_GROUPS.all(hashed=digest(raw))  # one row per group, or one with no group
    token = _in_use(rows[0] if rows else None)
    if token is None:
        return None
    return token, [row.group_id for row in rows if row.group_id is not None]


def _well_formed(raw: str) -> bool:
    return raw.startswith(TOKEN_PREFIX) and len(raw) <= 200


def _in_use(token: ApiToken | None) -> ApiToken | None:
    """The token, if its user is active, with its last use noted (at most every LAST_USED_PRECISION)."""
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_PRECISION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


# Read by every token handshake: compiled once (patches.prepared), as the ORM's compile was most of its cost.
# The digest is unique: at most one token, with its user; the join gives one row per auth group of the user.
_ACTIVE_TOKEN = Prepared(
    lambda hashed: ApiToken.objects.select_related("user").filter(digest=hashed, revoked_at__isnull=True)[:1],
    hashed=ApiToken._meta.get_field("digest"),
)
_ACTIVE_TOKEN_AND_GROUPS = Prepared(
    lambda hashed: (
        ApiToken.objects.select_related("user")
        .filter(digest=hashed, revoked_at__isnull=True)
        .annotate(group_id=F("user__groups__id"))
        .order_by()
    ),
    hashed=ApiToken._meta.get_field("digest"),
)


def is_active(token_id: int) -> bool:
    return ApiToken.objects.filter(pk=token_id, revoked_at__isnull=True, user__is_active=True).exists()


def revoke(token: ApiToken) -> None:
    """Revoke a token; sockets opened with it close at once (4403)."""
    with transaction.atomic():
        updated = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        if updated:
            events.credential_ended_on_commit(token.user_id, token_id=token.pk)
    token.refresh_from_db(fields=["revoked_at"])


def bearer(value: str | None) -> str | None:
    """The token in an `Authorization: Bearer <token>` header value, if that is what it is."""
    if not value:
        return None
    scheme, _, credentials = value.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()
