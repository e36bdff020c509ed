from __future__ import annotations

import logging
import uuid

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.html import format_html
from django.views.decorators.csrf import ensure_csrf_cookie

import patches.django
from gateway import frames
from tasks import kinds
from tasks.models import JobStatus

logger = logging.getLogger(__name__)


@login_required
@ensure_csrf_cookie
def home(request: HttpRequest) -> HttpResponse:
    """The dashboard. Its script (static/js/dashboard.js) speaks the WebSocket protocol.

    The page carries the kinds known now (as kind.list describes them), so the
    script builds their forms at once; kind.list after each hello updates them.
    The CSRF cookie is for the upload request (XMLHttpRequest).
    """
    context = {"kinds": _kinds(), "flower_url": _flower_url(request), "statuses": JobStatus.values}
    return render(request, "dashboard.html", context)


@login_required
def job_page(request: HttpRequest, job_id: uuid.UUID) -> HttpResponse:
    """One job's page (static/js/detail.js reads it over the socket: job.get, job.logs.follow).

    The socket refuses another user's job as it refuses a missing one; staff may look at any.
    """
    context = {"job_id": str(job_id), "kinds": _kinds(), "flower_url": _flower_url(request)}
    return render(request, "job.html", context)


@login_required
def ops_page(request: HttpRequest) -> HttpResponse:
    """The operations view, for staff: live numbers (ops.subscribe) and everyone's jobs (static/js/ops.js)."""
    if not request.user.is_staff:
        # Django's handler403 renders templates/403.html, a page with the site's icon and header.
        raise PermissionDenied("The operations view is for staff.")
    context = {
        "kinds": _kinds(),
        "flower_url": _flower_url(request),
        "statuses": JobStatus.values,
        "owner_filter": True,
    }
    return render(request, "ops.html", context)


def _kinds() -> list[dict[str, object]]:
    return [frames.kind_payload(kind) for kind in kinds.all_kinds()]


def _flower_url(request: HttpRequest) -> str:
    return settings.FLOWER_URL.rstrip("/") if request.user.is_staff else ""


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: an error id the client can quote, logged once with the traceback under the same id.

    API paths answer JSON like every other API error; pages answer a short page
    with the id. It renders no template and touches no database: either may be
    what failed.
    """
    error_id = uuid.uuid4().hex[:12]
    fields = {"event": "http.error", "error_id": error_id, "method": request.method, "path": request.path}
    logger.exception("error %s answering %s %s", error_id, request.method, request.path, extra=fields)
    response: HttpResponse
    if request.path.startswith("/api/"):
        message = f"The server failed to handle this request (error {error_id})."
        body = {"error": {"code": "internal", "message": message, "error_id": error_id}}
        response = JsonResponse(body, status=500)
    else:
        page = format_html(
            "<!doctype html><title>Server error</title><h1>Server error (500)</h1>"
            "<p>Something went wrong on our side. If you report it, quote error <code>{}</code>.</p>",
            error_id,
        )
        response = HttpResponse(page, status=500)
    # Django would log this 500 again, without the id; this line already has the traceback.
    patches.django.mark_logged(response)
    return response
