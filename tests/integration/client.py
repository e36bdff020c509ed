"""A real WebSocket client for integration tests: logs in over HTTP, then speaks the protocol."""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import re
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

Message = dict[str, Any]


def login(base_url: str, username: str, password: str) -> str:
    """Log in through Django's login form, as a browser does; the Cookie header to send."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"{base_url}/accounts/login/", timeout=10).read().decode()
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert match, "no CSRF token on the login page"
    form = {"username": username, "password": password, "csrfmiddlewaretoken": match.group(1)}
    request = urllib.request.Request(f"{base_url}/accounts/login/", data=urllib.parse.urlencode(form).encode())
    opener.open(request, timeout=10)
    cookies = {cookie.name: cookie.value for cookie in jar}
    assert "sessionid" in cookies, "login failed"
    return "; ".join(f"{name}={value}" for name, value in cookies.items())


class JobsClient:
    def __init__(self, socket: ClientConnection, hello: Message) -> None:
        self.socket = socket
        self.hello = hello
        self.held: list[Message] = []  # read while waiting for something else; received next

    async def send(self, message: Message) -> None:
        await self.socket.send(json.dumps(message))

    async def receive(self, timeout: float = 10) -> Message:
        if self.held:
            return self.held.pop(0)
        message: Message = json.loads(await asyncio.wait_for(self.socket.recv(), timeout))
        return message

    async def receive_until(self, done: Callable[[Message], bool], timeout: float = 30) -> list[Message]:
        """Every message up to and including the first for which `done` holds."""
        messages: list[Message] = []
        async with asyncio.timeout(timeout):
            while not messages or not done(messages[-1]):
                messages.append(await self.receive(timeout))
        return messages

    async def silent_for(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self.socket.recv(), seconds)
        except TimeoutError:
            return True
        return False

    async def submit(self, kind: str, params: Message, timeout: float = 10) -> Message:
        """Submit a job and return it as accepted; what arrives before the answer is held for `receive`."""
        request_id = uuid.uuid4().hex
        await self.send({"type": "job.submit", "request_id": request_id, "kind": kind, "params": params})
        before: list[Message] = []
        while True:
            answer = await self.receive(timeout)
            if answer.get("request_id") == request_id:
                break
            assert answer["type"] not in ("job.accepted", "error"), answer
            before.append(answer)
        self.held = before + self.held
        assert answer["type"] == "job.accepted", answer
        job: Message = answer["job"]
        return job


@asynccontextmanager
async def jobs_client(ws_url: str, cookie: str, origin: str) -> AsyncIterator[JobsClient]:
    async with connect(ws_url, additional_headers={"Cookie": cookie, "Origin": origin}, open_timeout=10) as socket:
        hello = json.loads(await asyncio.wait_for(socket.recv(), 10))
        assert hello["type"] == "hello", hello
        yield JobsClient(socket, hello)


def is_terminal_event(job_id: str) -> Callable[[Message], bool]:
    def done(message: Message) -> bool:
        return message["type"] in {"job.succeeded", "job.failed", "job.cancelled"} and message["job"]["id"] == job_id

    return done


def job_id_of(message: Message) -> str | None:
    if message["type"] == "job.progress":
        return str(message["job_id"])
    job = message.get("job")
    return str(job["id"]) if job else None


def seq_of(message: Message) -> int:
    return int(message["seq"] if message["type"] == "job.progress" else message["job"]["seq"])
