"""A token handshake reads the token, its user and the user's auth group ids in one statement
(accounts.tokens.authenticate_with_groups), and refuses what `authenticate` refuses."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts import tokens
from accounts.models import ApiToken

pytestmark = pytest.mark.django_db


def _used_just_now(token: ApiToken) -> None:
    """So that the check writes no last_used_at and only its read is counted."""
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())


def test_the_token_and_every_group_of_its_user_in_one_statement(user: User) -> None:
    ops, dev = Group.objects.create(name="ops"), Group.objects.create(name="dev")
    Group.objects.create(name="not theirs")
    user.groups.add(ops, dev)
    token, raw = tokens.create(user, "script")
    _used_just_now(token)

    with CaptureQueriesContext(connection) as queries:
        found = tokens.authenticate_with_groups(raw)

    assert found is not None
    assert (found[0].pk, found[0].user.pk) == (token.pk, user.pk)
    assert sorted(found[1]) == sorted([ops.pk, dev.pk])
    assert len(queries) == 1


def test_a_user_in_no_group_is_found_with_no_group_ids(user: User) -> None:
    token, raw = tokens.create(user, "script")

    found = tokens.authenticate_with_groups(raw)

    assert found is not None and found[0].pk == token.pk and found[1] == []
    token.refresh_from_db()
    assert token.last_used_at is not None  # noted, as authenticate notes it


def test_what_authenticate_refuses_is_refused(user: User) -> None:
    user.groups.add(Group.objects.create(name="ops"))
    revoked, revoked_raw = tokens.create(user, "revoked")
    tokens.revoke(revoked)
    inactive_user = User.objects.create_user("inactive", is_active=False)
    _, inactive_raw = tokens.create(inactive_user, "script")

    for raw in (revoked_raw, inactive_raw, "jobs_not-a-token", "no prefix at all"):
        assert tokens.authenticate(raw) is None
        assert tokens.authenticate_with_groups(raw) is None
