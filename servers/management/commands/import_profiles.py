"""`manage.py import_profiles FILE`: a Z2JH `singleuser.profileList` as profiles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from django.core.management.base import BaseCommand, CommandError, CommandParser

from servers import profile_list, services


class Command(BaseCommand):
    help = (
        "Create or update profiles from a Zero to JupyterHub config.yaml "
        "(singleuser.profileList) or a bare KubeSpawner profile_list in YAML."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)

    def handle(self, *args: Any, file: Path, **options: Any) -> None:
        try:
            document = yaml.safe_load(file.read_text())
            records = profile_list.translate(document)
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise CommandError(f"{file} is not valid YAML: {exc}") from None
        except profile_list.ProfileListError as exc:
            raise CommandError(f"{file}: {exc}; nothing was imported") from None
        for line in services.import_profiles(records):
            self.stdout.write(line)
        for hint in profile_list.hub_settings_hints(document):
            self.stdout.write(f"not a profile setting: set {hint} in the hub's environment")
