"""HTTP middleware of the service."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponseBase
from django.utils.decorators import sync_and_async_middleware

# Scripts and styles come only from our own static files, so an injected
# <script> or inline handler cannot run even if some text escaped escaping.
# connect-src 'self' covers the page's own WebSocket too: CSP Level 3 lets
# 'self' match ws: / wss: on the page's host and port, so a script that got in
# still cannot open a socket (or fetch) to another host. frame-ancestors stops
# the pages being framed.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)

SyncGetResponse = Callable[[HttpRequest], HttpResponseBase]
AsyncGetResponse = Callable[[HttpRequest], Awaitable[HttpResponseBase]]


def _with_policy(response: HttpResponseBase) -> HttpResponseBase:
    # A view that sets its own policy (a stricter or a looser one) keeps it.
    if "Content-Security-Policy" not in response:
        response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response


@sync_and_async_middleware
def content_security_policy(
    get_response: SyncGetResponse | AsyncGetResponse,
) -> Callable[[HttpRequest], HttpResponseBase | Awaitable[HttpResponseBase]]:
    """Add CONTENT_SECURITY_POLICY to every response that does not set one.

    Both forms, so that under ASGI (Daphne) Django never has to switch threads for it.
    """
    if iscoroutinefunction(get_response):
        async_get_response: AsyncGetResponse = get_response

        async def async_middleware(request: HttpRequest) -> HttpResponseBase:
            return _with_policy(await async_get_response(request))

        return async_middleware

    sync_get_response: SyncGetResponse = get_response  # type: ignore[assignment]

    def middleware(request: HttpRequest) -> HttpResponseBase:
        return _with_policy(sync_get_response(request))

    return middleware
