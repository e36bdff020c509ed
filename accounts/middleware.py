"""Token authentication for the HTTP API (/api/...), beside Django's session authentication."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse

import patches.django
from accounts import tokens

API_PREFIX = "/api/"


class BearerTokenMiddleware:
    """`Authorization: Bearer <token>` on /api/ requests authenticates as the token's user.

    A request that carries a token is judged by the token alone: a wrong or
    revoked one is anonymous, with no fall back to the session cookie. CSRF
    checks are off for it, because a token is not sent by the browser on its own.
    Only /api/ accepts tokens, so a leaked token never opens the admin.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        raw = tokens.bearer(request.headers.get("Authorization"))
        if raw is not None and request.path.startswith(API_PREFIX):
            token = tokens.authenticate(raw)
            request.user = token.user if token is not None else AnonymousUser()
            patches.django.waive_csrf(request)
        return self.get_response(request)
