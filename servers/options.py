"""Pure: which profiles a user may pick, and what their chosen options mean.

KubeSpawner `profile_list` semantics: each option has choices (one is the
default) and may allow a free-text `unlisted_choice` checked by a regex; the
chosen choice's `overrides` are merged over the profile's spawner settings."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any


def merge(base: Mapping[str, Any], *layers: Mapping[str, Any]) -> dict[str, Any]:
    """KubeSpawner's override rule: later layers win; nested dictionaries
    merge key by key (a None value removes the key), everything else replaces."""
    out = dict(base)
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
                out[key] = {k: v for k, v in merge(out[key], value).items() if v is not None}
            else:
                out[key] = value
    return out


class OptionsError(ValueError):
    """The submitted options do not fit the profile; the message is for the user."""


def choose(options: Mapping[str, Any], submitted: Mapping[str, Any]) -> dict[str, Any]:
    """Validate SUBMITTED against a profile's OPTIONS; returns the merged overrides.

    SUBMITTED maps option key -> choice slug, or `{"unlisted": "<text>"}` /
    the key `<key>--unlisted-choice` for a free-text value."""
    overrides: dict[str, Any] = {}
    unknown = set(submitted) - set(options) - {f"{k}--unlisted-choice" for k in options}
    if unknown:
        raise OptionsError(f"unknown option: {', '.join(sorted(unknown))}")
    for key, option in options.items():
        choices: Mapping[str, Any] = option.get("choices", {})
        free = submitted.get(f"{key}--unlisted-choice")
        picked = submitted.get(key)
        if isinstance(picked, Mapping):
            free, picked = picked.get("unlisted"), None
        if free not in (None, ""):
            overrides.update(_unlisted(key, option, str(free)))
            continue
        if picked in (None, ""):
            picked = next((s for s, c in choices.items() if c.get("default")), None)
            picked = picked if picked is not None else next(iter(choices), None)
        if picked is None:
            continue
        if picked not in choices:
            raise OptionsError(f"{key}: {picked!r} is not one of {', '.join(choices)}")
        overrides.update(choices[picked].get("overrides", {}))
    return overrides


def _unlisted(key: str, option: Mapping[str, Any], value: str) -> dict[str, Any]:
    spec = option.get("unlisted_choice") or {}
    if not spec.get("enabled"):
        raise OptionsError(f"{key}: free-text values are not allowed")
    regex = spec.get("validation_regex")
    if regex and not re.fullmatch(regex, value):
        raise OptionsError(spec.get("validation_message") or f"{key}: {value!r} is not allowed")
    if "overrides" in spec:
        # KubeSpawner's unlisted_choice.kubespawner_override: "{value}" is the text
        return _substitute(spec["overrides"], value)
    return {spec.get("override_key", key): value}


def _substitute(template: Any, value: str) -> Any:
    if isinstance(template, str):
        return template.replace("{value}", value)
    if isinstance(template, Mapping):
        return {k: _substitute(v, value) for k, v in template.items()}
    if isinstance(template, list):
        return [_substitute(v, value) for v in template]
    return template
