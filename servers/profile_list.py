"""Pure: a Z2JH `singleuser.profileList` (KubeSpawner's `profile_list`) as
the fields of our Profile rows, for `manage.py import_profiles`.

Each entry's `kubespawner_override` becomes the profile's settings (the
common ones in their own columns, the rest in `spawner_overrides`, all under
KubeSpawner's names, which servers/spawners/manifests.py reads), each
`profile_options` choice's `kubespawner_override` becomes that choice's
`overrides`, and an `unlisted_choice`'s override keeps its "{value}".
Everything is checked before anything is written: a key we do not know is
an error naming the profile and the key, never silently dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from accounts.validators import USERNAME_RE
from servers.spawners.manifests import KNOWN_KEYS

# kubespawner_override keys with a column of their own on Profile
_COLUMNS = (
    "image",
    "cpu_limit",
    "cpu_guarantee",
    "mem_limit",
    "mem_guarantee",
    "extra_resource_limits",
    "environment",
)
_PROFILE_KEYS = {
    "display_name",
    "description",
    "slug",
    "default",
    "kubespawner_override",
    "profile_options",
    "allowed_groups",
}
_OPTION_KEYS = {"display_name", "choices", "unlisted_choice"}
_CHOICE_KEYS = {"display_name", "default", "kubespawner_override"}
_UNLISTED_KEYS = {
    "enabled",
    "display_name",
    "display_name_in_choices",
    "validation_regex",
    "validation_message",
    "kubespawner_override",
}


class ProfileListError(ValueError):
    """The file cannot be imported; the message says where and why."""


@dataclass(frozen=True)
class ProfileRecord:
    slug: str
    display_name: str
    description: str = ""
    default: bool = False
    order: int = 0
    columns: dict[str, Any] = field(default_factory=dict)
    spawner_overrides: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    allowed_groups: tuple[str, ...] = ()


def profile_entries(document: Any) -> list[Mapping[str, Any]]:
    """The profile list of a Z2JH config.yaml, or a bare list of profiles."""
    if isinstance(document, Mapping):
        singleuser = document.get("singleuser")
        if not isinstance(singleuser, Mapping) or "profileList" not in singleuser:
            raise ProfileListError("no singleuser.profileList in this file")
        document = singleuser["profileList"]
    if not isinstance(document, list) or not all(isinstance(p, Mapping) for p in document):
        raise ProfileListError("profileList must be a list of profiles (mappings)")
    return document


def slugify(text: str) -> str:
    """KubeSpawner's fallback slug from a display name."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:63] or "profile"


def translate(document: Any) -> list[ProfileRecord]:
    records = [_profile(entry, index) for index, entry in enumerate(profile_entries(document))]
    slugs = [r.slug for r in records]
    twice = sorted({s for s in slugs if slugs.count(s) > 1})
    if twice:
        raise ProfileListError(f"two profiles share the slug {', '.join(twice)}")
    if sum(r.default for r in records) > 1:
        raise ProfileListError("more than one profile has default: true")
    return records


def _profile(entry: Mapping[str, Any], index: int) -> ProfileRecord:
    name = str(entry.get("display_name") or "")
    where = f"profile {index + 1} ({name or 'no display_name'})"
    if not name:
        raise ProfileListError(f"{where}: display_name is required")
    _known(where, entry, _PROFILE_KEYS)
    override = _override(where, entry.get("kubespawner_override"))
    columns = {k: override.pop(k) for k in _COLUMNS if k in override}
    for key in ("mem_limit", "mem_guarantee", "image"):
        if key in columns:
            columns[key] = str(columns[key])
    options = {
        key: _option(f"{where}, option {key}", option)
        for key, option in (entry.get("profile_options") or {}).items()
    }
    groups = entry.get("allowed_groups") or []
    if not isinstance(groups, list) or not all(
        isinstance(g, str) and USERNAME_RE.fullmatch(g) for g in groups
    ):
        raise ProfileListError(
            f"{where}: allowed_groups must be a list of group names "
            "(lowercase letters, digits, '.', '_' or '-')"
        )
    return ProfileRecord(
        slug=str(entry.get("slug") or slugify(name)),
        display_name=name,
        description=str(entry.get("description") or ""),
        default=bool(entry.get("default", False)),
        order=index * 10,
        columns=columns,
        spawner_overrides=override,
        options=options,
        allowed_groups=tuple(groups),
    )


def _option(where: str, option: Any) -> dict[str, Any]:
    if not isinstance(option, Mapping):
        raise ProfileListError(f"{where}: must be a mapping")
    _known(where, option, _OPTION_KEYS)
    choices = option.get("choices") or {}
    if not isinstance(choices, Mapping):
        raise ProfileListError(f"{where}: choices must be a mapping of slug -> choice")
    out: dict[str, Any] = {"display_name": str(option.get("display_name") or "")}
    out["choices"] = {}
    for slug, choice in choices.items():
        here = f"{where}, choice {slug}"
        if not isinstance(choice, Mapping):
            raise ProfileListError(f"{here}: must be a mapping")
        _known(here, choice, _CHOICE_KEYS)
        out["choices"][str(slug)] = {
            "display_name": str(choice.get("display_name") or slug),
            "default": bool(choice.get("default", False)),
            "overrides": _override(here, choice.get("kubespawner_override")),
        }
    unlisted = option.get("unlisted_choice")
    if unlisted:
        here = f"{where}, unlisted_choice"
        _known(here, unlisted, _UNLISTED_KEYS)
        out["unlisted_choice"] = {
            "enabled": bool(unlisted.get("enabled", False)),
            "display_name": str(unlisted.get("display_name") or ""),
            "validation_regex": str(unlisted.get("validation_regex") or ""),
            "validation_message": str(unlisted.get("validation_message") or ""),
            "overrides": _override(here, unlisted.get("kubespawner_override")),
        }
    return out


def _override(where: str, override: Any) -> dict[str, Any]:
    if override is None:
        return {}
    if not isinstance(override, Mapping):
        raise ProfileListError(f"{where}: kubespawner_override must be a mapping")
    unknown = sorted(set(override) - KNOWN_KEYS)
    if unknown:
        raise ProfileListError(
            f"{where}: kubespawner_override has settings this hub does not know: "
            f"{', '.join(unknown)}"
        )
    return dict(override)


def _known(where: str, entry: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise ProfileListError(f"{where}: unknown key(s) {', '.join(unknown)}")


def hub_settings_hints(document: Any) -> list[str]:
    """singleuser settings outside profileList are the hub's base settings
    (environment variables), not profiles: say which to set."""
    if not isinstance(document, Mapping) or not isinstance(document.get("singleuser"), Mapping):
        return []
    singleuser = document["singleuser"]
    hints = []
    image = singleuser.get("image")
    if isinstance(image, Mapping) and image.get("name"):
        tag = f":{image['tag']}" if image.get("tag") else ""
        hints.append(f"HUB_K8S_IMAGE={image['name']}{tag}")
    storage = singleuser.get("storage")
    if isinstance(storage, Mapping) and storage.get("capacity"):
        hints.append(f"HUB_K8S_STORAGE_CAPACITY={storage['capacity']}")
    return hints
