"""A private vhost on the machine's RabbitMQ for a test: its own queues, deleted at the end.

The server is shared with everyone on the machine (bin/ensure-rabbitmq starts it if it is down), so a
test never restarts it or touches a vhost that is not its own. The `rabbitmq_vhost` fixture in
tests/conftest.py wraps `private_vhost`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from kombu import Connection

from core import stack

# Where the tests find RabbitMQ (bin/ensure-rabbitmq reads the same variable); no vhost: each test adds its own.
SERVER_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672")


class RabbitMQUnavailable(RuntimeError):
    """RabbitMQ does not answer, or rabbitmqctl cannot make a vhost; the message says what to do."""


def rabbitmqctl(*args: str) -> None:
    binary = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    result = subprocess.run([binary, "-q", *args], capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise RabbitMQUnavailable(f"rabbitmqctl {' '.join(args)} failed: {result.stderr.strip() or result.stdout}")


@contextmanager
def private_vhost() -> Iterator[str]:
    """A new vhost that guest may use fully: its broker URL. Deleted, with its queues, on the way out."""
    parts = urlsplit(SERVER_URL)
    if not stack.port_open(parts.hostname or "127.0.0.1", parts.port or 5672):
        raise RabbitMQUnavailable(f"Nothing listens at {SERVER_URL}: run bin/ensure-rabbitmq (bin/test does).")
    vhost = f"jobs-test-{uuid.uuid4().hex[:12]}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, parts.username or "guest", ".*", ".*", ".*")
        yield f"{SERVER_URL.rstrip('/')}/{vhost}"
    finally:
        rabbitmqctl("delete_vhost", vhost)


def purge(url: str, queue: str) -> int:
    """Drop every ready message of `queue` (what a lost message looks like): how many there were."""
    with Connection(url) as connection:
        channel = connection.channel()
        try:
            purged: int = channel.queue_purge(queue)  # type: ignore[attr-defined]
        finally:
            channel.close()  # type: ignore[attr-defined]
    return purged
