"""`manage.py create_token USER [--scopes ...] [--note ...] [--expires-in S]`:
print a new API token for USER and nothing else (so scripts can capture it)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts import services
from accounts.models import User


class Command(BaseCommand):
    help = "Create an API token for a user and print it (only the token)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument(
            "--scopes",
            nargs="+",
            default=["inherit"],
            help="Scopes of the token (default: inherit, i.e. all of the user's).",
        )
        parser.add_argument("--note", default="created with manage.py create_token")
        parser.add_argument(
            "--expires-in", type=float, default=None, help="Lifetime in seconds (default: none)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"no such user: {options['username']}")
        expires_in = options["expires_in"]
        if expires_in is not None and expires_in <= 0:
            raise CommandError("--expires-in must be a positive number of seconds")
        try:
            _, raw = services.issue_token(
                user, scopes=options["scopes"], note=options["note"], expires_in=expires_in
            )
        except services.TokenScopeError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(raw)
