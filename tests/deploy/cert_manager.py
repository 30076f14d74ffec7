"""Strict JSON schemas for the two cert-manager kinds that k8s/ uses.

cert-manager's kinds are CRDs, so kubernetes-validate has no schema for them.
These are written from cert-manager's cert-manager.io/v1 API reference and
cover the fields of Certificate and ClusterIssuer that matter here; they
reject unknown fields wherever we write any (a typo such as `dnsName` or
`privateKeySecretRefs` fails), and leave the other DNS providers' blocks open.
"""

from __future__ import annotations

from typing import Any

import jsonschema

_DURATION = {"type": "string", "pattern": r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"}
_SECRET_KEY_REF = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string"}, "key": {"type": "string"}},
    "additionalProperties": False,
}
_METADATA = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}
_STRINGS = {"type": "array", "items": {"type": "string"}}


def _kind(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "cert-manager.io/v1"},
            "kind": {"const": kind},
            "metadata": _METADATA,
            "spec": spec,
        },
        "additionalProperties": False,
    }


CERTIFICATE = _kind(
    "Certificate",
    {
        "type": "object",
        "required": ["secretName", "issuerRef"],
        "properties": {
            "secretName": {"type": "string"},
            "issuerRef": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string"},
                    "kind": {"enum": ["Issuer", "ClusterIssuer"]},
                    "group": {"type": "string"},
                },
                "additionalProperties": False,
            },
            "dnsNames": {**_STRINGS, "minItems": 1},
            "commonName": {"type": "string", "maxLength": 64},
            "ipAddresses": _STRINGS,
            "duration": _DURATION,
            "renewBefore": _DURATION,
            "usages": _STRINGS,
            "isCA": {"type": "boolean"},
            "revisionHistoryLimit": {"type": "integer", "minimum": 1},
            "secretTemplate": {"type": "object"},
            "privateKey": {
                "type": "object",
                "properties": {
                    "algorithm": {"enum": ["RSA", "ECDSA", "Ed25519"]},
                    "size": {"type": "integer"},
                    "encoding": {"enum": ["PKCS1", "PKCS8"]},
                    "rotationPolicy": {"enum": ["Never", "Always"]},
                },
                "additionalProperties": False,
            },
        },
        "additionalProperties": False,
    },
)

_DNS01 = {
    "type": "object",
    "properties": {
        "cloudflare": {
            "type": "object",
            "properties": {
                "email": {"type": "string"},
                "apiTokenSecretRef": _SECRET_KEY_REF,
                "apiKeySecretRef": _SECRET_KEY_REF,
            },
            "additionalProperties": False,
        },
        "cnameStrategy": {"enum": ["None", "Follow"]},
        **{
            provider: {"type": "object"}
            for provider in (
                "acmeDNS",
                "akamai",
                "azureDNS",
                "cloudDNS",
                "digitalocean",
                "rfc2136",
                "route53",
                "webhook",
            )
        },
    },
    "minProperties": 1,
    "additionalProperties": False,
}

CLUSTER_ISSUER = _kind(
    "ClusterIssuer",
    {
        "type": "object",
        "properties": {
            "acme": {
                "type": "object",
                "required": ["server", "privateKeySecretRef"],
                "properties": {
                    "server": {"type": "string", "pattern": "^https://"},
                    "email": {"type": "string", "pattern": "^[^@ ]+@[^@ ]+$"},
                    "privateKeySecretRef": _SECRET_KEY_REF,
                    "preferredChain": {"type": "string"},
                    "profile": {"type": "string"},
                    "skipTLSVerify": {"type": "boolean"},
                    "solvers": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "properties": {
                                "selector": {"type": "object"},
                                "dns01": _DNS01,
                                "http01": {"type": "object"},
                            },
                            "additionalProperties": False,
                        },
                    },
                },
                "additionalProperties": False,
            },
            "ca": {"type": "object"},
            "selfSigned": {"type": "object"},
            "vault": {"type": "object"},
            "venafi": {"type": "object"},
        },
        "minProperties": 1,
        "maxProperties": 1,
        "additionalProperties": False,
    },
)

SCHEMAS = {"Certificate": CERTIFICATE, "ClusterIssuer": CLUSTER_ISSUER}


def validate(obj: dict[str, Any]) -> list[str]:
    """Problems of a cert-manager object, like tests.k8s_schema.validate."""
    label = f"{obj['kind'].lower()}/{obj['metadata']['name']}"
    validator = jsonschema.Draft202012Validator(SCHEMAS[obj["kind"]])
    return [
        f"{label}: {'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in validator.iter_errors(obj)
    ]
