"""What an OpenID Connect login says about a person, decided from its claims
alone (pure): the hub username, whether the provider's rules let them in, the
groups to mirror and whether they are an admin (OAuthenticator's
username_claim, claim_groups_key, allowed_groups, admin_groups, hosted_domain)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError

from accounts.validators import normalize_username, validate_username


@dataclass(frozen=True)
class ProviderVerdict:
    username: str
    allowed: bool
    reason: str = ""
    groups: list[str] | None = None  # None: this provider does not manage groups
    admin: bool | None = None  # None: this provider does not manage admins
    extra: dict[str, Any] = field(default_factory=dict)


def merged_claims(extra_data: Mapping[str, Any]) -> dict[str, Any]:
    """allauth keeps {"userinfo": ..., "id_token": ...} (userinfo wins) for
    OpenID Connect, the API's user object for GitHub."""
    if "userinfo" not in extra_data and "id_token" not in extra_data:
        return dict(extra_data)
    return {**(extra_data.get("id_token") or {}), **(extra_data.get("userinfo") or {})}


def _username(claims: Mapping[str, Any], claim: str) -> str:
    value = str(claims.get(claim) or "")
    if claim == "email" and "@" in value:
        value = value.split("@", 1)[0]  # a hub name is a URL segment: no '@'
    return normalize_username(value)


def _groups(claims: Mapping[str, Any], claim: str) -> list[str]:
    value = claims.get(claim)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value]
    return []


def decide_provider(claims: Mapping[str, Any], config: Mapping[str, Any]) -> ProviderVerdict:
    username = _username(claims, str(config["username_claim"]))
    try:
        validate_username(username)
    except ValidationError:
        return ProviderVerdict(username, False, f"{config['username_claim']!r} is no hub name")
    groups_claim = str(config.get("groups_claim") or "")
    groups = _groups(claims, groups_claim) if groups_claim else None
    admin_groups = set(config.get("admin_groups") or [])
    admin = bool(admin_groups & set(groups)) if groups is not None and admin_groups else None
    verdict = {"username": username, "groups": groups, "admin": admin}
    domains = config.get("hosted_domains")
    if domains is not None and claims.get("hd") not in domains:
        return ProviderVerdict(**verdict, allowed=False, reason="not in an allowed domain")
    allowed_groups = config.get("allowed_groups")
    if allowed_groups is not None:
        if admin or set(allowed_groups) & set(groups or []):
            return ProviderVerdict(**verdict, allowed=True)
        return ProviderVerdict(**verdict, allowed=False, reason="not in an allowed group")
    if domains is not None or admin or config.get("allow_all"):
        return ProviderVerdict(**verdict, allowed=True)
    # no rule of the provider's lets them in: HUB_ALLOWED_USERS/GROUPS may still
    return ProviderVerdict(**verdict, allowed=False, reason="no allow rule", extra={"soft": True})
