from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from core import views

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("account/", include("accounts.urls")),
    path("admin/", admin.site.urls),
    path("api/uploads/", include("uploads.urls")),
]
