"""What the notification centre tells the layers above it: domain events, as Django signals.

Each is sent once the transaction that made the change commits; the gateway
subscribes (in its AppConfig.ready) and tells the user's open sockets.

* `notification_created(notification)`: a user has a new notification;
* `notifications_read(user_id, read, read_up_to)`: some were marked read (`read`
  the ids, or every one up to `read_up_to`);
* `notice_sent(notice)`: a notice went out to its audience.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.dispatch import Signal

notification_created = Signal()
notifications_read = Signal()
notice_sent = Signal()


def send_on_commit(signal: Signal, **fields: Any) -> None:
    transaction.on_commit(lambda: signal.send(sender=None, **fields), robust=True)
