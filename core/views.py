from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from tasks import kinds


@login_required
def home(request: HttpRequest) -> HttpResponse:
    context = {"kinds": kinds.names(), "flower_url": settings.FLOWER_URL if request.user.is_staff else ""}
    return render(request, "home.html", context)
