"""Close a user's sockets as soon as their credentials stop being valid."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.http import HttpRequest

from notifications import publish


@receiver(user_logged_out)
def close_sockets_of_the_session(sender: Any, request: HttpRequest, user: User | None, **kwargs: Any) -> None:
    # Sent before the session is flushed, so its key is still there.
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if user is not None and session_key:
        publish.auth_event_on_commit(user.pk, "auth.session_ended", session_key=session_key)


@receiver(post_save, sender=User)
def close_sockets_of_a_deactivated_user(sender: Any, instance: User, **kwargs: Any) -> None:
    if not instance.is_active:
        publish.auth_event_on_commit(instance.pk, "auth.revoked")


@receiver(post_delete, sender=User)
def close_sockets_of_a_deleted_user(sender: Any, instance: User, **kwargs: Any) -> None:
    publish.auth_event_on_commit(instance.pk, "auth.revoked")
