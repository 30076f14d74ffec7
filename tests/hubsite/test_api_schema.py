"""Schemathesis against the REST API: JupyterHub's own OpenAPI description
(a copy of /work/shared/reference/jupyterhub-rest-api.yml beside this file)
and the one drf-spectacular generates from our views, with an admin's token
and a plain user's: no answer is a 5xx, and every error is JSON.

Bounded: MAX_EXAMPLES generated requests per operation, through Django's test
client inside the test's transaction (nothing is left behind)."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlencode

import pytest
import schemathesis
from django.test import Client
from hypothesis import HealthCheck, Phase, given, settings

pytestmark = pytest.mark.django_db
MAX_EXAMPLES = 4
JUPYTERHUB_SCHEMA = Path(__file__).with_name("jupyterhub-rest-api.yml")
# not JSON APIs (browser redirects and form posts), or one that stops the hub
SKIPPED = ("/oauth2/", "/shutdown", "/authorizations/cookie")


def our_schema() -> dict:
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator(title="hub", version="6.1.1").get_schema(request=None, public=True)


def call(client: Client, prefix: str, case, token: str):
    query = urlencode(case.query or {}, doseq=True)
    body = b"" if case.body is None or not isinstance(case.body, dict | list) else case.body
    headers = {k: str(v) for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    return client.generic(
        case.method,
        f"{prefix}{case.formatted_path}" + (f"?{query}" if query else ""),
        data=json.dumps(body) if body != b"" else b"",
        content_type="application/json",
        headers={**headers, "Authorization": f"token {token}"},
    )


def failures_of(schema, prefix: str, token: str) -> list[str]:
    """Each request that got a 5xx or a non-JSON error; raises if too few were sent."""
    client, found, sent = Client(raise_request_exception=False), [], []
    for result in schema.get_all_operations():
        operation = result.ok()
        if any(part in operation.path for part in SKIPPED):
            continue

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def check(case) -> None:
            response = call(client, prefix, case, token)
            sent.append(response.status_code)
            where = f"{case.method} {case.formatted_path} -> {response.status_code}"
            if response.status_code >= 500:
                found.append(where)
            elif response.status_code >= 400:
                try:
                    json.loads(response.content)
                except ValueError:
                    found.append(f"{where}: not JSON")

        check()
    assert len(sent) >= 20, f"only {len(sent)} requests generated"
    return found


@pytest.mark.parametrize("who", ["admin", "alice"])
def test_jupyterhub_schema_gives_no_server_error_and_json_errors(who, request, token_for):
    token = token_for(request.getfixturevalue(who))
    schema = schemathesis.openapi.from_path(JUPYTERHUB_SCHEMA)
    assert failures_of(schema, "/hub/api", token) == []


@pytest.mark.parametrize("who", ["admin", "alice"])
def test_our_schema_gives_no_server_error_and_json_errors(who, request, token_for):
    token = token_for(request.getfixturevalue(who))
    schema = schemathesis.openapi.from_dict(our_schema())
    assert failures_of(schema, "", token) == []
