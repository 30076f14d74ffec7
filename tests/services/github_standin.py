"""A STAND-IN for GitHub's OAuth and REST endpoints (github.com cannot be
reached from the tests): the authorize page, the token exchange, /user,
/user/emails, /user/orgs and /user/teams, as GitHub Enterprise lays them out
(`<url>/login/oauth/...`, `<url>/api/v3/...`). Who "approves" at the
authorize page is set by the test (`sign_in_as`)."""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

PEOPLE = {
    # login -> (id, orgs, teams as (org, slug))
    "octocat": (1, ["jupyter-org"], [("jupyter-org", "admins")]),
    "hubot": (2, ["jupyter-org"], [("jupyter-org", "students")]),
    "stranger": (3, ["other-org"], []),
}


@dataclass
class GitHubStandIn:
    url: str
    server: ThreadingHTTPServer
    login: str = "octocat"
    codes: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def sign_in_as(self, login: str) -> None:
        self.login = login

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_github() -> GitHubStandIn:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    standin = GitHubStandIn(url=f"http://127.0.0.1:{server.server_address[1]}", server=server)
    server.standin = standin
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return standin


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    @property
    def standin(self) -> GitHubStandIn:
        return self.server.standin

    def _json(self, body: object, status: int = 200) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _person(self) -> str | None:
        token = self.headers.get("Authorization", "").removeprefix("token ").strip()
        return self.standin.tokens.get(token)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if parts.path == "/login/oauth/authorize":
            code = secrets.token_hex(8)
            self.standin.codes[code] = self.standin.login
            back = {"code": code, "state": query.get("state", "")}
            self.send_response(302)
            self.send_header("Location", f"{query['redirect_uri']}?{urlencode(back)}")
            self.end_headers()
            return
        login = self._person()
        if login is None:
            self._json({"message": "Bad credentials"}, 401)
            return
        uid, orgs, teams = PEOPLE[login]
        routes = {
            "/api/v3/user": {"id": uid, "login": login, "name": login.title(), "email": None},
            "/api/v3/user/emails": [
                {"email": f"{login}@users.example", "primary": True, "verified": True}
            ],
            "/api/v3/user/orgs": [{"login": org} for org in orgs],
            "/api/v3/user/teams": [
                {"slug": slug, "organization": {"login": org}} for org, slug in teams
            ],
        }
        if parts.path not in routes:
            self._json({"message": "Not Found"}, 404)
            return
        self._json(routes[parts.path])

    def do_POST(self) -> None:
        if urlsplit(self.path).path != "/login/oauth/access_token":
            self._json({"message": "Not Found"}, 404)
            return
        length = int(self.headers.get("Content-Length", "0"))
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        login = self.standin.codes.pop(form.get("code", ""), None)
        if login is None:
            self._json({"error": "bad_verification_code"})
            return
        token = "gho_" + secrets.token_hex(12)
        self.standin.tokens[token] = login
        self._json({"access_token": token, "token_type": "bearer", "scope": "read:org"})
