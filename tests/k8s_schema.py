"""Validate Kubernetes objects against the Kubernetes 1.37 OpenAPI schemas.

No API server can run on these machines, so this is how the tests check that a
manifest would be accepted: the strict JSON schemas that kubernetes-validate
ships (the same as `kubernetes-validate --strict -k 1.37.0`), which reject
unknown fields, wrong types and missing required fields. Unlike
`kubernetes_validate.validate`, which raises on the first problem, this returns
every problem, so one failing test names them all.

    from tests.k8s_schema import assert_valid, validate
    assert validate(build_pod(spec)) == []   # or: assert_valid(build_pod(spec))

Objects may be plain dicts (YAML) or the `kubernetes` client's V1* models.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from importlib import resources
from typing import Any

import jsonschema
import referencing
import referencing.jsonschema

KUBERNETES_VERSION = "1.37.0"
_SCHEMA_DIR = f"v{KUBERNETES_VERSION}-local-strict"


def validate(obj: Any) -> list[str]:
    """Every schema violation of OBJ as 'kind/name: path: message' (empty: valid).

    A kind without a 1.37 schema (a typo'd kind or apiVersion, or a CRD such as
    cert-manager's) is reported as an error too: it cannot be checked here."""
    data = _as_dict(obj)
    kind, api_version = data.get("kind"), data.get("apiVersion")
    label = f"{str(kind).lower()}/{(data.get('metadata') or {}).get('name', '?')}"
    if not isinstance(kind, str) or not isinstance(api_version, str):
        return [f"{label}: kind and apiVersion must be strings"]
    validator = _validator(kind.lower(), _schema_group(api_version))
    if validator is None:
        return [f"{label}: no Kubernetes {KUBERNETES_VERSION} schema for {api_version} {kind}"]
    errors = sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    return [
        f"{label}: {'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors
    ]


def assert_valid(obj: Any) -> None:
    """Raise AssertionError naming the object and every problem of its schema."""
    problems = validate(obj)
    if problems:
        raise AssertionError("invalid for Kubernetes 1.37:\n" + "\n".join(problems))


def _as_dict(obj: Any) -> dict[str, Any]:
    if isinstance(obj, Mapping):
        return dict(obj)
    from kubernetes.client import ApiClient

    # the wire form (camelCase keys, no None values), as the client would send it
    return ApiClient().sanitize_for_serialization(obj)


def _schema_group(api_version: str) -> str:
    """'rbac.authorization.k8s.io/v1' -> 'rbac-v1', 'v1' -> 'v1' (the file naming
    of kubernetes-validate's schema directory)."""
    return re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)


@functools.cache
def _validator(kind: str, group: str) -> jsonschema.protocols.Validator | None:
    root = resources.files("kubernetes_validate") / "kubernetes-json-schema" / _SCHEMA_DIR
    path = root / f"{kind}-{group}.json"
    if not path.is_file():
        return None
    schema = json.loads(path.read_text())
    definitions = json.loads((root / "_definitions.json").read_text())
    # both files carry an $id (https://kubernetes.io/api/...): register them by it
    registry = referencing.Registry().with_resources(
        (document["$id"], referencing.jsonschema.DRAFT202012.create_resource(document))
        for document in (schema, definitions)
    )
    return jsonschema.Draft202012Validator(schema, registry=registry)
