"""Over real Daphne sockets, as docs/protocol.md and SECURITY.md promise: a user deleted in the admin loses
every open socket at once, session and token alike (4403, through the channel layer: this Daphne's periodic
re-check is made too slow to be what closes them); a user whose password an admin changes loses the sockets
of their sessions at the next re-check (4403), and the old session cookie opens no socket again (4401),
while a token socket stays open (a token is judged by the token alone; revoking it is what ends it)."""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import re
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from gateway import protocol
from tests.factories import PASSWORD, UserFactory
from tests.integration.client import jobs_client, login
from tests.integration.faults.conftest import FaultStack
from tests.integration.faults.helpers import Daphne, own_daphne, socket_of

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.django_db(transaction=True)]

NEW_PASSWORD = "a-new-Passw0rd-nobody-guesses"


@pytest.fixture
def slow_recheck(fault_stack: FaultStack) -> Iterator[Daphne]:
    """A Daphne whose periodic re-check of credentials would come only after ten minutes."""
    with own_daphne(fault_stack.env, fault_stack.logs / "daphne-slow-recheck.log", AUTH_RECHECK_SECONDS="600") as d:
        yield d


@pytest.fixture
def fast_recheck(fault_stack: FaultStack) -> Iterator[Daphne]:
    """A Daphne that re-checks the credentials of its sockets twice a second."""
    with own_daphne(fault_stack.env, fault_stack.logs / "daphne-fast-recheck.log", AUTH_RECHECK_SECONDS="0.5") as d:
        yield d


@pytest.fixture
def admin(db: None) -> User:
    return UserFactory.create(is_staff=True, is_superuser=True)


def admin_post(base_url: str, admin: User, path: str, form: dict[str, str]) -> int:
    """Log `admin` in, open the admin's form at `path` and submit `form` with its CSRF token: the status."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"{base_url}/admin/login/", timeout=10).read().decode()
    opener.open(
        with_csrf(f"{base_url}/admin/login/?next=/admin/", page, {"username": admin.username, "password": PASSWORD})
    )
    page = opener.open(f"{base_url}{path}", timeout=10).read().decode()
    with opener.open(with_csrf(f"{base_url}{path}", page, form), timeout=10) as response:
        return int(response.status)


def with_csrf(url: str, page: str, form: dict[str, str]) -> urllib.request.Request:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert match, f"no CSRF token on {url}"
    data = urllib.parse.urlencode({**form, "csrfmiddlewaretoken": match.group(1)}).encode()
    return urllib.request.Request(url, data=data, headers={"Referer": url})


async def close_code(socket: ClientConnection) -> int | None:
    """Read until the server closes the socket: its close code."""
    try:
        async with asyncio.timeout(30):
            async for _ in socket:
                pass
    except ConnectionClosed:
        pass
    return socket.close_code


async def test_deleting_a_user_closes_their_session_and_token_sockets_at_once(
    slow_recheck: Daphne, admin: User
) -> None:
    user = await database_sync_to_async(UserFactory.create)()
    cookie = await asyncio.to_thread(login, slow_recheck.base_url, user.username, PASSWORD)
    async with (
        jobs_client(slow_recheck.ws_url, cookie, slow_recheck.base_url) as tab,
        socket_of(user, slow_recheck.ws_url) as (script, _),
    ):
        path = f"/admin/auth/user/{user.pk}/delete/"
        assert await asyncio.to_thread(admin_post, slow_recheck.base_url, admin, path, {"post": "yes"}) == 200
        assert not await database_sync_to_async(User.objects.filter(pk=user.pk).exists)()
        assert await close_code(tab.socket) == protocol.CLOSE_FORBIDDEN == 4403
        assert await close_code(script) == protocol.CLOSE_FORBIDDEN


async def test_changing_a_users_password_closes_their_session_sockets_but_not_their_token_sockets(
    fast_recheck: Daphne, admin: User, user: User
) -> None:
    base_url = fast_recheck.base_url
    cookie = await asyncio.to_thread(login, base_url, user.username, PASSWORD)
    async with (
        jobs_client(fast_recheck.ws_url, cookie, base_url) as tab,
        socket_of(user, fast_recheck.ws_url) as (
            script,
            _,
        ),
    ):
        form = {"usable_password": "true", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
        path = f"/admin/auth/user/{user.pk}/password/"
        assert await asyncio.to_thread(admin_post, base_url, admin, path, form) == 200
        await database_sync_to_async(user.refresh_from_db)()
        assert user.check_password(NEW_PASSWORD)
        assert await close_code(tab.socket) == protocol.CLOSE_FORBIDDEN == 4403
        # The token socket outlived the re-checks that closed the tab, and still answers.
        await script.send(json.dumps({"type": "job.list", "request_id": "after"}))
        reply = json.loads(await asyncio.wait_for(script.recv(), 10))
        assert reply["type"] == "job.list" and reply["request_id"] == "after", reply
    # The old session no longer logs anyone in: a socket on it is anonymous.
    headers = {"Cookie": cookie, "Origin": base_url}
    async with connect(fast_recheck.ws_url, additional_headers=headers, open_timeout=10) as stale:
        assert await close_code(stale) == protocol.CLOSE_UNAUTHENTICATED == 4401
