"""Django's auth signals that end a credential, turned into the accounts app's own event (accounts.events)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.http import HttpRequest

from accounts import events


@receiver(user_logged_out)
def session_ended(sender: Any, request: HttpRequest, user: User | None, **kwargs: Any) -> None:
    # Sent before the session is flushed, so its key is still there.
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if user is not None and session_key:
        events.credential_ended_on_commit(user.pk, session_key=session_key)


@receiver(post_save, sender=User)
def user_deactivated(sender: Any, instance: User, **kwargs: Any) -> None:
    if not instance.is_active:
        events.credential_ended_on_commit(instance.pk)


@receiver(post_delete, sender=User)
def user_deleted(sender: Any, instance: User, **kwargs: Any) -> None:
    events.credential_ended_on_commit(instance.pk)
