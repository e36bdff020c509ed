"""A notice sent with `manage.py notice` reaches the addressed users' sockets on every Daphne process,
through the channel layer's groups, and nobody else's; a socket opened later finds it in hello."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import Group, User

from core import stack
from tests.factories import PASSWORD
from tests.integration.client import JobsClient, Message, jobs_client, login
from tests.integration.conftest import LiveStack

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

MANAGE = Path(__file__).resolve().parents[2] / "manage.py"


@pytest.fixture
def second_daphne(live_stack: LiveStack) -> Iterator[str]:
    """Another Daphne process on the live stack's database and Redis: its base URL."""
    port = stack.free_port()
    with open(live_stack.logs / "daphne-2.log", "wb") as log:
        process = subprocess.Popen(
            stack.daphne_command("127.0.0.1", port), env=live_stack.env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        stack.wait_until(lambda: stack.port_open("127.0.0.1", port), "second Daphne", timeout=60, process=process)
        yield f"http://127.0.0.1:{port}"
    finally:
        stack.stop([process])


async def send_notice(live_stack: LiveStack, *arguments: str) -> str:
    """Run `manage.py notice …` as the operator does, against the live stack; its output."""
    command = stack.python_command(str(MANAGE), "notice", *arguments)
    done = await asyncio.to_thread(
        subprocess.run, command, env=live_stack.env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def ws_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://") + "/ws/jobs/"


async def next_notice(client: JobsClient) -> tuple[Message, Message]:
    """The next notice this socket hears, and the notification of it that follows."""
    notice = await client.receive()
    created = await client.receive()
    assert notice["type"] == "notice" and created["type"] == "notification.created", (notice, created)
    return notice["notice"], created


@database_sync_to_async
def put_in_group(user: User, name: str) -> Group:
    group = Group.objects.create(name=name)
    user.groups.add(group)
    return group


async def test_a_notice_reaches_the_group_on_both_daphnes_and_only_the_group(
    live_stack: LiveStack, second_daphne: str, user: User, other_user: User
) -> None:
    await put_in_group(user, "ops")
    servers = [live_stack.base_url, second_daphne]
    member_cookie = await asyncio.to_thread(login, servers[0], user.username, PASSWORD)
    outsider_cookie = await asyncio.to_thread(login, servers[1], other_user.username, PASSWORD)
    async with (
        jobs_client(ws_url(servers[0]), member_cookie, servers[0]) as member1,
        jobs_client(ws_url(servers[1]), member_cookie, servers[1]) as member2,
        jobs_client(ws_url(servers[0]), outsider_cookie, servers[0]) as outsider1,
        jobs_client(ws_url(servers[1]), outsider_cookie, servers[1]) as outsider2,
    ):
        out = await send_notice(live_stack, "Deploy freeze until 14:00", "--group", "ops", "--level", "warning")
        assert "sent to ops" in out
        for member in (member1, member2):
            notice, created = await next_notice(member)
            assert notice["text"] == "Deploy freeze until 14:00"
            assert notice["level"] == "warning" and notice["expires_at"] is None
            assert created["unread"] == 1 and created["notification"]["notice_id"] == notice["id"]

        # The outsiders heard nothing of it: the first thing they hear is the next notice, to everyone.
        await send_notice(live_stack, "Hello everyone", "--expires-in", "1h")
        for socket, unread in ((outsider1, 1), (outsider2, 1), (member1, 2), (member2, 2)):
            notice, created = await next_notice(socket)
            assert notice["text"] == "Hello everyone" and notice["expires_at"] is not None
            assert created["unread"] == unread

    # A socket opened now finds both notices in its hello, newest first.
    async with jobs_client(ws_url(servers[1]), member_cookie, servers[1]) as later:
        hello: dict[str, Any] = later.hello
        assert [notice["text"] for notice in hello["notices"]] == ["Hello everyone", "Deploy freeze until 14:00"]
        assert hello["unread"] == 2
