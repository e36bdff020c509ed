"""With nothing at REDIS_URL and no redis-server installed, the run command says what to install."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import stack


def test_no_redis_server_on_the_path_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no redis-server anywhere
    url = f"redis://127.0.0.1:{stack.free_port()}/0"
    with pytest.raises(stack.StackError) as raised:
        stack.start_redis(url, tmp_path / "redis")
    message = str(raised.value)
    assert "redis-server is not installed" in message
    assert "apt-get install redis-server" in message and "brew install redis" in message
    assert "REDIS_URL" in message  # the other way out: point it at a running Redis
    assert not (tmp_path / "redis").exists()  # nothing was started or prepared


def test_a_redis_on_another_host_is_not_started_here(tmp_path: Path) -> None:
    with pytest.raises(stack.StackError, match=r"redis://redis\.internal:6379/0 does not answer, and it is not local"):
        stack.start_redis("redis://redis.internal:6379/0", tmp_path)
