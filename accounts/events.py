"""What the accounts app tells the layers above it: a credential stopped logging its user in.

`credential_ended(user_id, session_key, token_id)` is sent once the change commits:
a session logged out (`session_key`), a token revoked (`token_id`), or the user
deactivated or deleted (both None: every credential of the user). The gateway
subscribes and closes the sockets that rode in on it (4403).
"""

from __future__ import annotations

from django.db import transaction
from django.dispatch import Signal

credential_ended = Signal()


def credential_ended_on_commit(user_id: int, session_key: str | None = None, token_id: int | None = None) -> None:
    def send() -> None:
        credential_ended.send(sender=None, user_id=user_id, session_key=session_key, token_id=token_id)

    transaction.on_commit(send, robust=True)
