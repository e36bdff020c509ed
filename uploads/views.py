"""POST /api/uploads/: receive one file, streamed to disk, and answer its id.

Authentication is whatever put a user on the request: the session (which also
needs Django's CSRF check) or, for scripts, a bearer token (accounts'
BearerTokenMiddleware sets the user and waives CSRF, as a token is no ambient
credential). Errors are JSON {"error": {"code", "message"}}, never a redirect
or an HTML page.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.views.decorators.csrf import csrf_exempt, csrf_protect

import patches.django
from uploads import services
from uploads.handlers import FIELD, LimitedUploadHandler, UploadTooLarge


def error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


# Exempt from the CSRF middleware, which would read the body with Django's
# default handlers before this view could install its own; the same check
# runs below, after the handler is in place.
@csrf_exempt
def create(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        response = error(405, "method_not_allowed", "Send the file with POST.")
        response["Allow"] = "POST"
        return response
    if not request.user.is_authenticated:
        return error(401, "not_authenticated", "Log in, or send an API token, to upload files.")
    if not request.META.get("CONTENT_LENGTH"):
        return error(411, "length_required", "Send the request with a Content-Length header.")
    limit = settings.UPLOAD_MAX_BYTES
    request.upload_handlers = [LimitedUploadHandler(request, limit)]
    try:
        if not _passes_csrf_check(request):  # this parses the body, through the handler
            return error(403, "csrf_failed", "CSRF check failed: send the csrftoken cookie's value in X-CSRFToken.")
        return _store(request)
    except UploadTooLarge:
        return error(413, "too_large", f"The file is larger than the limit of {limit:,} bytes.")
    except MultiPartParserError:
        return error(400, "bad_request", "The body is not valid multipart/form-data.")
    finally:
        _close_received(request)


def _passes_csrf_check(request: HttpRequest) -> bool:
    """Django's own CSRF check, run here rather than in the middleware (see create)."""
    passed = HttpResponse()
    return csrf_protect(lambda _: passed)(request) is passed


def _store(request: HttpRequest) -> HttpResponse:
    received = request.FILES.get(FIELD)
    if received is None:
        return error(400, "empty_file", f'Send one file in the multipart field "{FIELD}".')
    if not received.size:
        return error(400, "empty_file", "The file is empty.")
    assert request.user.is_authenticated  # checked by create()
    upload = services.store(request.user, received)
    return JsonResponse({"id": str(upload.pk), "name": upload.name, "size": upload.size}, status=201)


def _close_received(request: HttpRequest) -> None:
    """Close (so delete) temporary files of a request that did not store them; stored ones were moved."""
    if patches.django.body_was_parsed(request):
        for _, received in request.FILES.lists():
            for file in received:
                file.close()
