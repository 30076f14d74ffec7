"""`manage.py ensure_admin [--username admin] [--reset]`: create the hub admin
if missing and print its login once. Only the password hash is stored; the
password is shown this one time (or again after --reset, with a new one)."""

from __future__ import annotations

import secrets
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from accounts import services
from accounts.models import User
from accounts.validators import USERNAME_RE


class Command(BaseCommand):
    help = "Create the hub admin if missing (printing its password once); --reset sets a new one."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument(
            "--reset", action="store_true", help="Set and print a new password for the admin."
        )

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        username = options["username"]
        user = User.objects.filter(username=username).first()
        if user is not None and not options["reset"]:
            self.stdout.write(f"admin already exists: {username}")
            return
        if user is None:
            # the reserved-name rule keeps sign-ups from taking "admin"; the
            # operator may, so only the shape of the name is checked here
            if not USERNAME_RE.fullmatch(username):
                raise CommandError(f"invalid username: {username!r}")
            user = User(username=username, is_superuser=True, is_staff=True)
        elif not user.is_superuser:
            services.set_admin(user, True)
        password = secrets.token_urlsafe(12)
        user.set_password(password)
        user.is_active = True
        user.is_approved = True
        user.save()
        self.stdout.write(f"admin login: username={username} password={password}")
