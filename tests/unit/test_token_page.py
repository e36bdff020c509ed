"""Users create and revoke their own API tokens on a small page of the dashboard."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client

from accounts import tokens
from accounts.models import ApiToken

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(user: User) -> Client:
    client = Client(enforce_csrf_checks=False)
    client.force_login(user)
    return client


def test_it_needs_a_login() -> None:
    response = Client().get("/account/tokens/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_a_new_token_is_shown_once_and_works(browser: Client, user: User) -> None:
    created = browser.post("/account/tokens/", {"name": "backup script"})
    assert created.status_code == 201
    raw = re.search(r'id="new-token">(jobs_[^<]+)<', created.content.decode())
    assert raw is not None
    token = tokens.authenticate(raw.group(1))
    assert token is not None and token.user == user and token.name == "backup script"
    listing = browser.get("/account/tokens/").content.decode()
    assert "backup script" in listing and raw.group(1) not in listing and token.prefix in listing


def test_revoking_a_token_stops_it(browser: Client, user: User) -> None:
    token, raw = tokens.create(user, "old")
    response = browser.post(f"/account/tokens/{token.pk}/revoke/")
    assert response.status_code == 302
    assert tokens.authenticate(raw) is None
    assert "revoked" in browser.get("/account/tokens/").content.decode()


def test_someone_elses_token_cannot_be_revoked_or_seen(browser: Client, other_user: User) -> None:
    theirs, raw = tokens.create(other_user, "theirs")
    assert browser.post(f"/account/tokens/{theirs.pk}/revoke/").status_code == 404
    assert tokens.authenticate(raw) is not None
    assert "theirs" not in browser.get("/account/tokens/").content.decode()
    assert ApiToken.objects.get(pk=theirs.pk).revoked_at is None


def test_the_page_needs_the_csrf_token(user: User) -> None:
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert strict.post("/account/tokens/", {"name": "x"}).status_code == 403
    assert not ApiToken.objects.exists()
