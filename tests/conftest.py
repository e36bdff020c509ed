from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User

from notifications.publish import publisher
from tests.factories import UserFactory


@pytest.fixture
def user(db: None) -> User:
    return UserFactory.create()


@pytest.fixture
def other_user(db: None) -> User:
    return UserFactory.create()


class Published(list[tuple[str, dict[str, Any]]]):
    """Frames the publisher was asked to send: (group, decoded message)."""

    def types(self) -> list[str]:
        return [message["type"] for _, message in self]

    def seqs(self) -> list[int]:
        return [message["seq"] if "seq" in message else message["job"]["seq"] for _, message in self]


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> Published:
    """Capture what would be published, decoding each frame so a payload that is not JSON fails here."""
    captured = Published()

    def capture(group: str, text: str) -> None:
        captured.append((group, json.loads(text)))

    monkeypatch.setattr(publisher, "send", capture)
    return captured
