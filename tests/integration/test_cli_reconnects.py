"""jobsctl survives a dropped connection while following: it reconnects, resyncs from hello, and finishes.

A TCP proxy between the client and Daphne stands in for the network: the test
cuts every connection through it mid-job, as a load balancer restart would.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from core import stack
from tests.integration.cli_process import Cli
from tests.integration.conftest import LiveStack
from tests.integration.test_cli_runs_jobs import RUNNING

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


class Proxy:
    """Forwards 127.0.0.1:<port> to the target; cut() drops every open connection, new ones are still accepted."""

    def __init__(self, target_port: int) -> None:
        self.port = stack.free_port()
        self.target_port = target_port
        self.loop = asyncio.new_event_loop()
        self.writers: set[asyncio.StreamWriter] = set()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> Proxy:
        self.thread.start()
        assert self.ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def cut(self) -> None:
        def abort() -> None:
            for writer in list(self.writers):
                writer.transport.abort()

        self.loop.call_soon_threadsafe(abort)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._connection, "127.0.0.1", self.port))
        self.ready.set()
        self.loop.run_forever()
        server.close()

    async def _connection(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.writers |= {client_writer, server_writer}
        try:
            await asyncio.gather(_pipe(client_reader, server_writer), _pipe(server_reader, client_writer))
        finally:
            self.writers -= {client_writer, server_writer}
            for writer in (client_writer, server_writer):
                writer.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.transport.abort()


@pytest.fixture
def proxy(live_stack: LiveStack) -> Iterator[Proxy]:
    port = urlsplit(live_stack.base_url).port
    assert port is not None
    with Proxy(port) as running:
        yield running


def test_a_dropped_connection_is_resumed_and_the_job_still_ends_well(cli: Cli, proxy: Proxy) -> None:
    env = cli.env(JOBS_URL=f"http://127.0.0.1:{proxy.port}")
    follower = cli.start("submit", "demo.countdown", "--param", "steps=30", "--param", "interval_ms=100", env=env)
    follower.wait_for(RUNNING)
    proxy.cut()
    follower.wait_for("connection lost")
    follower.wait_for("reconnected")
    code, out, err = follower.finish()
    assert code == 0, err
    assert json.loads(out) == {"steps": 30}
