"""Broadcast notices: who may send one and to whom, decided in one place, and sending it.

The admin and `manage.py notice` both call `broadcast`, which checks before it
stores anything:

1. The sender may broadcast: an active staff member with the `add_notice`
   permission (superusers have it), or None, the server's operator running
   `manage.py notice` (shell access on the server already grants everything).
2. The audience is one the sender may see: everyone, or an auth group the
   sender belongs to. Superusers and the operator may address any group.
3. The text is 1..500 characters after trimming, the level is known, and an
   expiry, if any, is in the future.

It then stores the notice and one unread notification per active addressed
user (notifications.inbox), and, after the commit, announces it (notice_sent,
notifications.events): the gateway publishes it on the audience's channel group
(`everyone` or `authgroup.<id>`). That notification is
the record of who was addressed: a socket shows the notice only to a user who
has one (gateway.consumers), as its channel groups were joined at
connect and may include a group its user has left since.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta

from django.contrib.auth.models import Group, User
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from notifications import events, inbox
from notifications.models import NOTICE_MAX_CHARS, Level, Notice
from patches.prepared import Prepared

logger = logging.getLogger(__name__)

# How many unexpired notices `hello.notices` carries, newest first.
HELLO_NOTICES = 10
PERMISSION = "notifications.add_notice"
_DURATION = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class NoticeRefused(Exception):
    """A notice that may not be sent; `field` names the input at fault, for a form."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def may_broadcast(sender: User | None) -> bool:
    if sender is None:
        return True
    return sender.is_active and sender.is_staff and sender.has_perm(PERMISSION)


def addressable_groups(sender: User | None) -> QuerySet[Group]:
    """The auth groups `sender` may address: every one for a superuser or the operator, else their own."""
    if sender is None or (sender.is_superuser and may_broadcast(sender)):
        return Group.objects.order_by("name")
    if not may_broadcast(sender):
        return Group.objects.none()
    return sender.groups.order_by("name")


def check(sender: User | None, text: str, level: str, group: Group | None, expires_at: datetime | None) -> str:
    """Raise NoticeRefused unless `sender` may send this notice; the text to store (trimmed)."""
    if not may_broadcast(sender):
        raise NoticeRefused("Only staff with the permission to add notices may broadcast.")
    if group is not None and not addressable_groups(sender).filter(pk=group.pk).exists():
        raise NoticeRefused("You may only address groups you belong to.", "group")
    text = text.strip()
    if not text:
        raise NoticeRefused("The notice needs a text.", "text")
    if len(text) > NOTICE_MAX_CHARS:
        raise NoticeRefused(f"The text is {len(text)} characters; at most {NOTICE_MAX_CHARS} fit.", "text")
    if "\x00" in text:
        raise NoticeRefused("The text may not contain NUL characters.", "text")
    if level not in Level.values:
        raise NoticeRefused(f"The level must be one of {', '.join(Level.values)}.", "level")
    if expires_at is not None and expires_at <= timezone.now():
        raise NoticeRefused("The expiry must be in the future.", "expires_at")
    return text


def broadcast(
    sender: User | None,
    text: str,
    level: str = Level.INFO,
    group: Group | None = None,
    expires_at: datetime | None = None,
) -> Notice:
    """Check, store and send a notice (see the module's docstring); NoticeRefused if it may not go."""
    clean = check(sender, text, level, group, expires_at)
    with transaction.atomic():
        notice = Notice.objects.create(text=clean, level=level, group=group, sender=sender, expires_at=expires_at)
        made = inbox.notice_sent(notice, _audience(group).values_list("pk", flat=True).iterator())
        events.send_on_commit(events.notice_sent, notice=notice)
    logger.info("notice %s sent by %s to %s (%s users)", notice.pk, sender or "the operator", notice.audience, made)
    return notice


def active_for(user_id: int) -> list[Notice]:
    """The unexpired notices addressed to everyone or to an auth group the user is in, newest first."""
    return _ACTIVE.all(user_id=user_id, now=timezone.now())


# Part of every socket's connect: compiled once (patches.prepared), as the ORM's compile was most of
# its cost.
def _active(user_id: int, now: datetime) -> QuerySet[Notice]:
    audience = Q(group__isnull=True) | Q(group__in=Group.objects.filter(user=user_id))
    unexpired = Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    return Notice.objects.filter(audience, unexpired).order_by("-created_at", "-id")[:HELLO_NOTICES]


_ACTIVE = Prepared(_active, user_id=User._meta.pk, now=Notice._meta.get_field("expires_at"))


def parse_duration(value: str) -> timedelta:
    """`90s`, `15m`, `2h`, `1d`, `1w` or a sum such as `1h30m`; ValueError otherwise."""
    text = value.strip().lower()
    parts = _DURATION.findall(text)
    if not text or "".join(number + unit for number, unit in parts) != text:
        raise ValueError(f"{value!r} is not a duration such as 30m, 2h or 1d12h.")
    try:
        duration = sum((timedelta(**{_UNITS[unit]: int(number)}) for number, unit in parts), timedelta())
    except OverflowError:
        raise ValueError(f"{value!r} is too long a duration.") from None
    if duration <= timedelta():
        raise ValueError("The duration must be longer than zero.")
    return duration


def _audience(group: Group | None) -> QuerySet[User]:
    users = User.objects.filter(is_active=True)
    return users if group is None else users.filter(groups=group)
