"""A small page where a user creates and revokes their API tokens."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from accounts import tokens
from accounts.models import ApiToken


@login_required
@require_http_methods(["GET", "POST"])
def token_list(request: HttpRequest) -> HttpResponse:
    """GET lists the user's tokens; POST creates one and shows it once (this response only)."""
    assert isinstance(request.user, User)
    new_token = None
    if request.method == "POST":
        _, new_token = tokens.create(request.user, request.POST.get("name", ""))
    context = {"tokens": ApiToken.objects.filter(user=request.user), "new_token": new_token}
    return render(request, "accounts/tokens.html", context, status=201 if new_token else 200)


@login_required
@require_http_methods(["POST"])
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    # Someone else's token is a 404, like a missing one.
    token = get_object_or_404(ApiToken, pk=token_id, user=request.user)
    tokens.revoke(token)
    return redirect("tokens")
