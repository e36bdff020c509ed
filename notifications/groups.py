"""Channel-layer group names. One group per user: a socket joins only its owner's."""

from __future__ import annotations


def user_group(user_id: int) -> str:
    return f"user.{user_id}"
