"""Each process re-checks all its sockets' credentials together: one database call, one Redis round trip."""

from __future__ import annotations

import time
from typing import cast

import pytest
import redis
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.utils import timezone
from pytest_django.fixtures import Settings

from accounts import credentials, tokens
from accounts.models import ApiToken
from core.asgi import application
from gateway import recheck, throttle
from tests.unit.sockets import closed_with

pytestmark = pytest.mark.django_db(transaction=True)


async def token_socket(raw: str) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(
        application, "/ws/jobs/", headers=[(b"authorization", f"Bearer {raw}".encode())]
    )
    connected, _ = await communicator.connect()
    assert connected
    assert (await communicator.receive_json_from())["type"] == "hello"
    return communicator


def revoke_quietly(token: ApiToken) -> None:
    """Revoked as another process or a database console would: no event reaches the sockets."""
    ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())


async def test_a_token_revoked_without_an_event_closes_only_its_sockets(user: User, settings: Settings) -> None:
    settings.AUTH_RECHECK_SECONDS = 0.5
    _, kept_raw = await database_sync_to_async(tokens.create)(user, "kept")
    gone_token, gone_raw = await database_sync_to_async(tokens.create)(user, "gone")
    kept = [await token_socket(kept_raw) for _ in range(2)]
    gone = [await token_socket(gone_raw) for _ in range(2)]
    await database_sync_to_async(revoke_quietly)(gone_token)
    assert [await closed_with(socket, timeout=5) for socket in gone] == [4403, 4403]
    for socket in kept:
        assert await socket.receive_nothing(0.8)  # a re-check or more went by, and they stayed
        await socket.disconnect()


async def test_sockets_sharing_a_credential_cost_one_check_between_them(
    user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[credentials.Credential]] = []

    def counted(batch: list[credentials.Credential]) -> set[credentials.Credential]:
        calls.append(list(batch))
        return credentials.invalid_among(batch)

    monkeypatch.setattr(recheck, "invalid_among", counted)
    _, raw = await database_sync_to_async(tokens.create)(user, "script")
    sockets = [await token_socket(raw) for _ in range(5)]
    await recheck.check_all()
    assert len(calls) == 1 and len(calls[0]) == 1 and calls[0][0].user_id == user.pk
    for socket in sockets:
        await socket.disconnect()


async def test_the_recheck_keeps_open_sockets_counted(user: User, settings: Settings) -> None:
    _, raw = await database_sync_to_async(tokens.create)(user, "script")
    sockets = [await token_socket(raw) for _ in range(3)]
    client = redis.Redis.from_url(settings.THROTTLE_REDIS_URL)
    key = f"{throttle.KEY_PREFIX}:connections:{user.pk}"
    try:
        client.expire(key, 5)  # as if the sockets had opened long ago
        before = time.time()
        await recheck.check_all()
        members = cast(list[tuple[bytes, float]], client.zrange(key, 0, -1, withscores=True))
        scores = [score for _, score in members]
        assert len(scores) == 3 and min(scores) >= before
        assert client.ttl(key) > 5
    finally:
        client.close()
        for socket in sockets:
            await socket.disconnect()
