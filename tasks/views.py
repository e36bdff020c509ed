"""GET /api/artifacts/<id>/: a job's result file, to the job's owner only (session or bearer token)."""

from __future__ import annotations

import uuid

from django.http import FileResponse, HttpRequest, HttpResponseBase, JsonResponse
from django.views.decorators.http import require_GET

from tasks.models import Artifact


@require_GET
def artifact_download(request: HttpRequest, artifact_id: uuid.UUID) -> HttpResponseBase:
    # Anyone but the owner, logged in or not, gets the answer an id that does not exist gets.
    artifact = None
    if request.user.is_authenticated:
        artifact = Artifact.objects.filter(pk=artifact_id, job__owner=request.user).first()
    if artifact is None:
        return JsonResponse({"error": {"code": "not_found", "message": "No such artifact."}}, status=404)
    try:
        stream = artifact.file.open("rb")
    except FileNotFoundError:
        return JsonResponse({"error": {"code": "not_found", "message": "The file is no longer stored."}}, status=404)
    return FileResponse(stream, as_attachment=True, filename=artifact.name, content_type=artifact.content_type)
