from __future__ import annotations

from django.urls import path

from uploads import views

app_name = "uploads"
urlpatterns = [
    path("", views.create, name="create"),
]
