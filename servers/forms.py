"""Forms of the server pages: the profile picker and the named-server box.

Field names follow KubeSpawner's profile form, so people moving over keep
their habits: `profile`, `profile-option-<slug>--<key>` and
`profile-option-<slug>--<key>--unlisted-choice`. Whether an option value is
acceptable is decided by servers.options (via request_start), not here."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from accounts.validators import validate_server_name
from servers.models import Profile

MAX_VALUE_LENGTH = 1024


@dataclass
class OptionField:
    """One option of one profile, ready for the template."""

    profile_slug: str
    key: str
    label: str
    choices: list[tuple[str, str]]
    selected: str
    unlisted: Mapping[str, Any] | None
    unlisted_value: str = ""

    @property
    def select_name(self) -> str:
        return self._name("")

    @property
    def unlisted_name(self) -> str:
        return self._name("--unlisted-choice")

    def _name(self, suffix: str) -> str:
        return f"profile-option-{self.profile_slug}--{self.key}{suffix}"


@dataclass
class ProfileChoice:
    profile: Profile
    checked: bool
    options: list[OptionField] = field(default_factory=list)


class SpawnForm:
    """The profile picker for the profiles a user may use."""

    def __init__(self, profiles: Iterable[Profile], data: Mapping[str, str] | None = None) -> None:
        self.profiles = list(profiles)
        self.data = data or {}
        self.errors: list[str] = []

    @property
    def selected_slug(self) -> str:
        if "profile" in self.data:
            return str(self.data["profile"])
        default = next((p for p in self.profiles if p.default), None)
        first = default or (self.profiles[0] if self.profiles else None)
        return first.slug if first else ""

    def choices(self) -> list[ProfileChoice]:
        selected = self.selected_slug
        return [ProfileChoice(p, p.slug == selected, self._option_fields(p)) for p in self.profiles]

    def _option_fields(self, profile: Profile) -> list[OptionField]:
        fields = []
        for key, option in (profile.options or {}).items():
            choices = option.get("choices", {})
            default = next((s for s, c in choices.items() if c.get("default")), "")
            spec = option.get("unlisted_choice") or {}
            item = OptionField(
                profile_slug=profile.slug,
                key=key,
                label=option.get("display_name", key),
                choices=[(s, c.get("display_name", s)) for s, c in choices.items()],
                selected=default,
                unlisted=spec if spec.get("enabled") else None,
            )
            item.selected = str(self.data.get(item.select_name, item.selected))
            item.unlisted_value = str(self.data.get(item.unlisted_name, ""))
            fields.append(item)
        return fields

    def user_options(self) -> dict[str, str] | None:
        """The user_options for request_start, or None (with self.errors) when
        the submission is malformed. Unknown profiles and bad choices are left
        to request_start, which refuses them with a clear message."""
        slug = str(self.data.get("profile", ""))
        if self.profiles and not slug:
            self.errors.append("Choose a profile.")
            return None
        options: dict[str, str] = {"profile": slug} if slug else {}
        prefix = f"profile-option-{slug}--"
        for name, value in self.data.items():
            if not name.startswith(prefix):
                continue
            if len(str(value)) > MAX_VALUE_LENGTH:
                self.errors.append(f"{name[len(prefix) :]}: value too long.")
                return None
            if value != "":
                options[name[len(prefix) :]] = str(value)
        return options


class NamedServerForm(forms.Form):
    name = forms.CharField(max_length=63, label="Server name")

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip().lower()
        try:
            validate_server_name(name)
        except ValidationError as exc:
            raise forms.ValidationError(exc.messages) from None
        return name
