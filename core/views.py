from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from tasks import kinds


@login_required
@ensure_csrf_cookie
def home(request: HttpRequest) -> HttpResponse:
    """The dashboard. Its script (static/js/dashboard.js) speaks the WebSocket protocol.

    The page renders the forms of the kinds known now; the script shows those the
    socket's hello offers. The CSRF cookie is for the upload request (XMLHttpRequest).
    """
    flower_url = settings.FLOWER_URL.rstrip("/") if request.user.is_staff else ""
    context = {"kinds": kinds.names(), "flower_url": flower_url}
    return render(request, "dashboard.html", context)
