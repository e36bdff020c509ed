"""Private attributes of Django's requests and responses that the project sets or reads.

Each is an undocumented flag Django itself uses; they sit here, under the
Django version of patches.WRITTEN_FOR, rather than in the views that need them.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponseBase


def waive_csrf(request: HttpRequest) -> None:
    """Skip CsrfViewMiddleware's check for this request (its `_dont_enforce_csrf_checks`, as Django's test client)."""
    request._dont_enforce_csrf_checks = True  # type: ignore[attr-defined]


def mark_logged(response: HttpResponseBase) -> None:
    """Tell Django's request logging that this error response was logged already (`_has_been_logged`)."""
    response._has_been_logged = True  # type: ignore[attr-defined]


def body_was_parsed(request: HttpRequest) -> bool:
    """Whether request.POST / request.FILES were read, without reading them (`_files` is set by the parse)."""
    return hasattr(request, "_files")
