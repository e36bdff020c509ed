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

import itertools
import logging
import re
import threading
import time
from collections.abc import Collection
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
        transaction.on_commit(forget_unexpired)
        events.send_on_commit(events.notice_sent, notice=notice)
    logger.info("notice %s sent by %s to %s (%s users)", notice.pk, sender or "the operator", notice.audience, made)
    return notice


def active_for(user_id: int, group_ids: Collection[int]) -> list[Notice]:
    """The unexpired notices addressed to everyone or to one of `group_ids` (the auth groups the user's
    socket joined), newest first, at most HELLO_NOTICES: from this process's copy of every unexpired
    notice (`_Unexpired`), or from the database when there are too many to keep."""
    now = timezone.now()
    every = _unexpired.read(now)
    if every is None:
        return _ACTIVE.all(user_id=user_id, now=now)
    groups = set(group_ids)
    addressed = (
        notice
        for notice in every
        if (notice.group_id is None or notice.group_id in groups)
        and (notice.expires_at is None or notice.expires_at > now)
    )
    return list(itertools.islice(addressed, HELLO_NOTICES))


def forget_unexpired() -> None:
    """A notice was sent (here or in another process): the next hello reads them all again."""
    _unexpired.forget()


class _Unexpired:
    """Every unexpired notice, newest first, kept per process for at most CACHE_SECONDS.

    Every socket's hello carries its user's notices: one statement of every connect, a sixth of them,
    for rows that change only when a notice is sent (a sent notice is never changed or deleted, see
    notifications.admin; one that expires is left out when read). So each process keeps them all, and
    forgets them when one is sent: on commit in the process that sent it (`broadcast`), and in each
    Daphne process when the broadcast reaches one of its sockets (gateway.consumers). A process with no
    socket in a group-addressed notice's audience hears nothing of it, and may answer a hello without it
    for CACHE_SECONDS at most; the user's notification of it, and the unread count, are read fresh.
    More than CACHE_LIMIT unexpired notices are not kept: each hello then asks the database for its own.
    """

    CACHE_SECONDS = 2.0
    CACHE_LIMIT = 200

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generation = 0  # moved by forget(): a read that began before it is not kept
        self._kept: tuple[float, list[Notice] | None] | None = None  # (read at, notices or None: too many)

    def read(self, now: datetime) -> list[Notice] | None:
        with self._lock:
            kept, generation = self._kept, self._generation
        if kept is not None and time.monotonic() - kept[0] < self.CACHE_SECONDS:
            return kept[1]
        read_at = time.monotonic()
        every = _UNEXPIRED.all(now=now)
        notices = every if len(every) <= self.CACHE_LIMIT else None
        with self._lock:
            if self._generation == generation:
                self._kept = (read_at, notices)
        return notices

    def forget(self) -> None:
        with self._lock:
            self._generation += 1
            self._kept = None


_unexpired = _Unexpired()


# Part of every socket's connect: compiled once (patches.prepared), as the ORM's compile was most of
# its cost.
def _active(user_id: int, now: datetime) -> QuerySet[Notice]:
    audience = Q(group__isnull=True) | Q(group__in=Group.objects.filter(user=user_id))
    unexpired = Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    return Notice.objects.filter(audience, unexpired).order_by("-created_at", "-id")[:HELLO_NOTICES]


_ACTIVE = Prepared(_active, user_id=User._meta.pk, now=Notice._meta.get_field("expires_at"))
_UNEXPIRED = Prepared(
    lambda now: Notice.objects.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now)).order_by(
        "-created_at", "-id"
    )[: _Unexpired.CACHE_LIMIT + 1],
    now=Notice._meta.get_field("expires_at"),
)


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
