"""GET /metrics: the Prometheus exposition of every process of the deployment (telemetry.metrics)."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from telemetry.metrics import exposition


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """GET /metrics for Prometheus: `Authorization: Bearer <METRICS_TOKEN>`, or a staff session (a person looking).

    Personal API tokens do not open it: they are for /ws/jobs/ and /api/ only (SECURITY.md).
    """
    if not _scraper_allowed(request):
        if request.user.is_authenticated:
            return JsonResponse({"error": {"code": "forbidden", "message": "Metrics are for staff."}}, status=403)
        response = JsonResponse(
            {"error": {"code": "not_authenticated", "message": "Send Authorization: Bearer <METRICS_TOKEN>."}},
            status=401,
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    body, content_type = exposition()
    return HttpResponse(body, content_type=content_type)


def _scraper_allowed(request: HttpRequest) -> bool:
    expected: str = settings.METRICS_TOKEN
    scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
    if expected and scheme.lower() == "bearer":
        # Constant time: the comparison must not tell how much of a guess was right.
        return hmac.compare_digest(sent.strip().encode(), expected.encode())
    return bool(request.user.is_active and request.user.is_staff)
