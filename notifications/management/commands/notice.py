"""`manage.py notice "text" [--level warning] [--group NAME] [--expires-in 2h] [--sender USERNAME]`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from notifications import notices
from notifications.models import Level


class Command(BaseCommand):
    help = (
        "Broadcast a notice to every user, or to the members of one auth group: it reaches their open "
        "dashboards at once and the next hello of everyone else while it has not expired."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("text", help="What to say (at most 500 characters).")
        parser.add_argument("--level", choices=Level.values, default=Level.INFO)
        parser.add_argument("--group", metavar="NAME", help="Only the members of this auth group (default: everyone).")
        parser.add_argument("--expires-in", metavar="DURATION", help="e.g. 30m, 2h, 1d12h (default: never).")
        parser.add_argument(
            "--sender",
            metavar="USERNAME",
            help="Send as this staff user, with their rights (default: the operator, who may address any group).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        sender = _user(options["sender"]) if options["sender"] else None
        group = _group(options["group"]) if options["group"] else None
        expires_at = _expiry(options["expires_in"]) if options["expires_in"] else None
        try:
            notice = notices.broadcast(sender, options["text"], options["level"], group, expires_at)
        except notices.NoticeRefused as exc:
            raise CommandError(exc.message) from None
        # Open sockets are told by the publisher's thread, which sends what it holds before the process exits.
        expiry = f", until {notice.expires_at:%Y-%m-%d %H:%M} UTC" if notice.expires_at else ""
        self.stdout.write(f"Notice {notice.pk} ({notice.level}) sent to {notice.audience}{expiry}.")


def _user(username: str) -> User:
    try:
        return User.objects.get(username=username)
    except User.DoesNotExist:
        raise CommandError(f"No user {username!r}.") from None


def _group(name: str) -> Group:
    try:
        return Group.objects.get(name=name)
    except Group.DoesNotExist:
        raise CommandError(f"No group {name!r}.") from None


def _expiry(value: str) -> datetime:
    try:
        return timezone.now() + notices.parse_duration(value)
    except (ValueError, OverflowError) as exc:
        raise CommandError(f"--expires-in: {exc}") from None
