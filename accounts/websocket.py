"""How a WebSocket handshake is authenticated: a bearer token, or a session cookie from an allowed Origin."""

from __future__ import annotations

from typing import Any

from channels.auth import AuthMiddlewareStack
from channels.security.websocket import AllowedHostsOriginValidator
from django.contrib.auth.models import AnonymousUser

from accounts import tokens
from accounts.models import ApiToken
from patches.channels import database_to_async

ASGIApp = Any  # Channels' ASGI applications are untyped


def _authorization(scope: dict[str, Any]) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            return bytes(value).decode("latin-1")
    return None


class BearerTokenAuthMiddleware:
    """Sets scope["user"] from the handshake's bearer token; a wrong or revoked one leaves it anonymous.

    The user's auth group ids are read in the same statement as the token (scope["auth_group_ids"]), so
    the socket joins its notice groups without another (a session socket reads them when it opens).
    """

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        raw = tokens.bearer(_authorization(scope))
        token, group_ids = await database_to_async(_authenticate)(raw) if raw else (None, None)
        scope = {
            **scope,
            "user": token.user if token is not None else AnonymousUser(),
            "auth_token_id": token.pk if token is not None else None,
            "auth_group_ids": group_ids,
        }
        return await self.inner(scope, receive, send)


def _authenticate(raw: str) -> tuple[ApiToken | None, list[int] | None]:
    found = tokens.authenticate_with_groups(raw)
    return found if found is not None else (None, None)


def websocket_auth(inner: ASGIApp) -> ASGIApp:
    """Route each handshake to token or session authentication.

    A browser cannot add headers to a WebSocket handshake, so a handshake with
    an Authorization header comes from a script, and its token is an explicit
    credential: it needs no Origin. Every other handshake is a browser riding
    on its session cookie, an ambient credential, so its Origin must be one of
    ALLOWED_HOSTS (403 before the upgrade otherwise): that is what stops
    cross-site WebSocket hijacking.
    """
    token_app = BearerTokenAuthMiddleware(inner)
    session_app = AllowedHostsOriginValidator(AuthMiddlewareStack(inner))

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if _authorization(scope) is not None:
            return await token_app(scope, receive, send)
        return await session_app(scope, receive, send)

    return app
