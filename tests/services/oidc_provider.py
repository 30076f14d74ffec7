"""A real OpenID Connect provider for the sign-in tests: panva's
`oidc-provider` from npm (installed into tests/services/oidc/node_modules by
`make test` and .ci/run), run by tests/services/oidc/provider.js on a free
127.0.0.1 port. Its development login form takes an account name and any
password; the account's claims (groups included) come from ACCOUNTS."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import requests

from tests.services.slapd import free_port

HERE = Path(__file__).resolve().parent / "oidc"
CLIENT_ID = "hub-test-client"
CLIENT_SECRET = "hub-test-secret-0123456789abcdef"
ACCOUNTS = {
    "alice": {
        "name": "Alice Liddell",
        "email": "alice@example.org",
        "email_verified": True,
        "groups": ["researchers", "hub-admins"],
    },
    "bob": {
        "name": "Bob Builder",
        "email": "bob@example.org",
        "email_verified": True,
        "groups": ["researchers"],
    },
    "carol": {"name": "Carol Danvers", "email": "carol@example.org", "groups": ["visitors"]},
    # Google-style accounts: `hd` is the Workspace domain, absent for gmail.com
    "dora@example.edu": {"email": "dora@example.edu", "email_verified": True, "hd": "example.edu"},
    "eve@gmail.com": {"email": "eve@gmail.com", "email_verified": True},
    # claims alice's e-mail address, unverified: must never become alice
    "mallory": {
        "name": "Mallory",
        "email": "alice@example.org",
        "email_verified": False,
        "groups": ["researchers"],
    },
}


def missing_tools() -> list[str]:
    missing = [] if shutil.which("node") else ["node (Debian package nodejs)"]
    if not (HERE / "node_modules" / "oidc-provider").is_dir():
        missing.append("npm package oidc-provider in tests/services/oidc (make test-deps)")
    return missing


@dataclass
class OIDCProvider:
    issuer: str
    proc: subprocess.Popen

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def start_provider(directory: Path, redirect_uris: list[str]) -> OIDCProvider:
    missing = missing_tools()
    if missing:
        raise AssertionError("the OpenID Connect tests need: " + ", ".join(missing))
    port = free_port()
    client = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uris": redirect_uris,
    }
    config = directory / "provider.json"
    config.write_text(json.dumps({"port": port, "clients": [client], "accounts": ACCOUNTS}))
    command = ["node", str(HERE / "provider.js"), str(config)]
    proc = subprocess.Popen(
        command, cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("listening "):
            break
    else:
        proc.wait(10)
        raise AssertionError("oidc-provider did not start:\n" + "".join(seen))
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    return OIDCProvider(issuer=f"http://127.0.0.1:{port}", proc=proc)


def _form(html: str, base: str) -> tuple[str, dict[str, str]]:
    action = re.search(r'<form[^>]*action="([^"]+)"', html).group(1)
    fields = dict(
        re.findall(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"', html)
    )
    return urljoin(base, action), fields


def sign_in_at_provider(authorize_url: str, account: str) -> str:
    """What a browser does at the provider: log in as ACCOUNT, consent; returns
    the redirect back to the hub (its callback URL with code and state)."""
    session = requests.Session()
    response = session.get(authorize_url, allow_redirects=True, timeout=30)
    action, fields = _form(response.text, response.url)
    response = session.post(
        action,
        data={**fields, "login": account, "password": "any"},
        allow_redirects=False,
        timeout=30,
    )
    while True:
        location = response.headers.get("Location", "")
        if (
            response.status_code in (302, 303)
            and "/interaction/" not in location
            and ("code=" in location or "error=" in location)
        ):
            return location
        if response.status_code in (302, 303):
            response = session.get(
                urljoin(response.url, location), allow_redirects=False, timeout=30
            )
            continue
        action, fields = _form(response.text, response.url)  # the consent page
        response = session.post(action, data=fields, allow_redirects=False, timeout=30)
