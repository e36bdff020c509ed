"""`manage.py tokens create|list|revoke`: personal API tokens for scripts."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts import tokens
from accounts.models import ApiToken


class Command(BaseCommand):
    help = "Create, list and revoke personal API tokens (Authorization: Bearer <token>)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create a token and print it (once).")
        create.add_argument("username")
        create.add_argument("--name", default="script", help="What the token is for.")
        listing = sub.add_parser("list", help="List a user's tokens.")
        listing.add_argument("username")
        revoke = sub.add_parser("revoke", help="Revoke a token by its prefix (as listed).")
        revoke.add_argument("prefix")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "create":
            token, raw = tokens.create(self._user(options["username"]), options["name"])
            self.stderr.write(f"Token {token.prefix}… created for {token.user}. It is shown once:")
            self.stdout.write(raw)
        elif action == "list":
            for token in ApiToken.objects.filter(user=self._user(options["username"])):
                state = f"revoked {token.revoked_at:%Y-%m-%d %H:%M}" if token.revoked_at else "active"
                used = f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "never"
                self.stdout.write(f"{token.prefix}  {state:<24} last used {used:<16}  {token.name}")
        else:
            matches = list(ApiToken.objects.filter(prefix=options["prefix"], revoked_at__isnull=True))
            if len(matches) != 1:
                raise CommandError(f"{len(matches)} active tokens have the prefix {options['prefix']!r}.")
            tokens.revoke(matches[0])
            self.stdout.write(f"Revoked {matches[0].prefix}… of {matches[0].user}.")

    def _user(self, username: str) -> User:
        try:
            return User.objects.get(username=username)
        except User.DoesNotExist:
            raise CommandError(f"No user {username!r}.") from None
