"""Validate Kubernetes objects against the 1.37 OpenAPI schemas
(kubernetes-validate --strict: unknown fields are errors, as the API server's
strict field validation makes them)."""

from __future__ import annotations

from typing import Any

import kubernetes_validate

KUBERNETES_VERSION = "1.37"


def assert_valid(obj: dict[str, Any]) -> None:
    """Raise AssertionError naming the object and the schema's complaint."""
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        name = obj.get("metadata", {}).get("name", "?")
        raise AssertionError(f"{obj.get('kind')} {name} is invalid: {exc.message}") from None
