"""Personal API tokens: shown once, stored hashed, revocable, with a last-used time."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from accounts import tokens
from accounts.models import ApiToken

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_token_is_stored_only_as_its_hash(user: User) -> None:
    token, raw = tokens.create(user, "export script")
    assert raw.startswith("jobs_") and len(raw) > 40
    stored = ApiToken.objects.get(pk=token.pk)
    assert raw not in {stored.digest, stored.prefix, stored.name}
    assert stored.digest == tokens.digest(raw)
    assert raw.startswith(stored.prefix)


def test_it_authenticates_and_records_the_last_use(user: User) -> None:
    token, raw = tokens.create(user, "x")
    assert token.last_used_at is None
    found = tokens.authenticate(raw)
    assert found is not None and found.user == user
    token.refresh_from_db()
    assert token.last_used_at is not None


@pytest.mark.parametrize("raw", ["", "jobs_", "jobs_wrong", "not-a-token", "jobs_" + "x" * 500])
def test_wrong_tokens_authenticate_nobody(user: User, raw: str) -> None:
    tokens.create(user, "x")
    assert tokens.authenticate(raw) is None


def test_a_revoked_token_or_an_inactive_user_authenticates_nobody(user: User, other_user: User) -> None:
    revoked, raw_revoked = tokens.create(user, "x")
    tokens.revoke(revoked)
    assert tokens.authenticate(raw_revoked) is None
    _, raw_inactive = tokens.create(other_user, "y")
    other_user.is_active = False
    other_user.save()
    assert tokens.authenticate(raw_inactive) is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Basic abc", None), ("Bearer", None), (None, None)],
)
def test_bearer_headers_are_parsed_strictly(header: str | None, expected: str | None) -> None:
    assert tokens.bearer(header) == expected


def test_the_management_command_creates_lists_and_revokes(user: User) -> None:
    out = io.StringIO()
    call_command("tokens", "create", user.username, "--name", "nightly", stdout=out, stderr=io.StringIO())
    raw = out.getvalue().strip()
    assert tokens.authenticate(raw) is not None
    listing = io.StringIO()
    call_command("tokens", "list", user.username, stdout=listing)
    assert "nightly" in listing.getvalue() and "active" in listing.getvalue() and raw not in listing.getvalue()
    call_command("tokens", "revoke", raw[:12], stdout=io.StringIO())
    assert tokens.authenticate(raw) is None


def test_the_admin_shows_a_new_token_once(user: User) -> None:
    admin = User.objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(admin)
    response = client.post("/admin/accounts/apitoken/add/", {"user": user.pk, "name": "from admin"}, follow=True)
    assert response.status_code == 200
    token = ApiToken.objects.get(name="from admin")
    shown = [str(message) for message in response.context["messages"]]
    raw = next(word for message in shown for word in message.split() if word.startswith("jobs_"))
    assert tokens.digest(raw) == token.digest
    page = client.get(f"/admin/accounts/apitoken/{token.pk}/change/")
    assert raw not in page.content.decode()
