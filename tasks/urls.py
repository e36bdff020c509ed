from __future__ import annotations

from django.urls import path

from tasks import views

urlpatterns = [
    path("<uuid:artifact_id>/", views.artifact_download, name="artifact-download"),
]
