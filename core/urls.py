from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from core import health, metrics_endpoint, views

urlpatterns = [
    path("", views.home, name="home"),
    path("jobs/<uuid:job_id>/", views.job_page, name="job"),
    path("ops/", views.ops_page, name="ops"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("account/", include("accounts.urls")),
    path("admin/", admin.site.urls),
    path("api/uploads/", include("uploads.urls")),
    path("api/artifacts/", include("tasks.urls")),
    path("healthz", health.healthz, name="healthz"),
    path("metrics", metrics_endpoint.metrics_view, name="metrics"),
]

# Unhandled errors: an error id in the answer (JSON under /api/) and in the log line.
handler500 = views.server_error
