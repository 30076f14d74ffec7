"""The router's edges as real processes: TLS termination with a redirect port
and HSTS, per-user subdomains, connect/idle timeouts, /health and /metrics."""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import json
import socket
import ssl
import subprocess
import sys

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.sync.client import connect

from tests.live import wait_for
from tests.routing.conftest import ROOT, launch_router
from tests.routing.fakes import TOKEN, HubState, Running, make_backend, make_hub


def raw(port: int, path: str, host: str, method: str = "GET") -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    conn.request(method, path, headers={"Host": host})
    response = conn.getresponse()
    response.body = response.read()  # type: ignore[attr-defined]
    conn.close()
    return response


def who(response: http.client.HTTPResponse) -> str:
    try:
        return json.loads(response.body)["who"]  # type: ignore[attr-defined]
    except (ValueError, KeyError):
        return str(response.status)


def announced(router, what: str) -> int:
    """Port from a 'router <what> on http://HOST:PORT' line of the router's log."""
    for line in router.lines:
        if line.startswith(f"router {what} "):
            return int(line.split()[-1].rsplit(":", 1)[1])
    raise AssertionError(f"no 'router {what}' line in {router.lines}")


@pytest.fixture(scope="module")
def world():
    """A fake hub with alice and bob, their backends, and a cleanup list."""
    state = HubState()
    servers = [Running(make_hub(state))]
    for prefix, name in [("/user/alice/", "alice"), ("/user/bob/", "bob")]:
        servers.append(Running(make_backend(name)))
        state.set_route(prefix, servers[-1].url)
    routers = []

    def start(*extra: str, workers: int = 1):
        routers.append(launch_router(servers[0].url, TOKEN, workers=workers, extra=list(extra)))
        return routers[-1]

    yield state, start
    for router in routers:
        router.stop()
    for server in servers:
        server.stop()


# --- TLS ------------------------------------------------------------------------------


def write_cert(directory, name: str = "router") -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


@pytest.fixture(scope="module")
def tls_router(world, tmp_path_factory):
    cert, key = write_cert(tmp_path_factory.mktemp("tls"))
    _, start = world
    router = start("--tls-cert", cert, "--tls-key", key, "--redirect-port", "0")
    return router, cert


def test_tls_is_terminated_and_backends_see_https_with_hsts(tls_router):
    router, cert = tls_router
    assert router.url.startswith("https://")
    response = requests.get(router.url + "/user/alice/lab?x=1", verify=cert, timeout=15)
    seen = response.json()
    assert (seen["who"], seen["path"], seen["xfproto"]) == ("alice", "/user/alice/lab?x=1", "https")
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert requests.get(router.url + "/hub/home", verify=cert, timeout=15).json()["who"] == "hub"


def test_over_tls_a_path_trick_after_an_ordinary_request_is_refused_by_mitmproxy(tls_router):
    """The relay hands a TLS connection mid-way to mitmproxy (set_protocol on the
    SSL transport): the refusal must come back on the same encrypted stream."""
    router, cert = tls_router
    context = ssl.create_default_context(cafile=cert)
    plain = socket.create_connection(("127.0.0.1", router.port), timeout=15)
    with context.wrap_socket(plain, server_hostname="localhost") as sock:
        sock.sendall(
            b"GET /user/alice/fine HTTP/1.1\r\nHost: localhost\r\n\r\n"
            b"GET /user/alice/../bob/ HTTP/1.1\r\nHost: localhost\r\n\r\n"
        )
        got = b""
        while b"dot segment" not in got:
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
    assert got.startswith(b"HTTP/1.1 200 OK") and b'"who": "alice"' in got
    assert b"HTTP/1.1 400" in got and b"dot segment" in got


def test_plain_http_on_the_tls_port_gets_no_answer(tls_router):
    router, _ = tls_router
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{router.port}/user/alice/", timeout=15)


def test_redirect_port_sends_plain_http_to_the_same_url_over_https(tls_router):
    router, _ = tls_router
    port = announced(router, "redirecting")
    response = raw(port, "/user/alice/lab?x=1", "hub.example.org")
    assert response.status == 301
    location = f"https://hub.example.org:{router.port}/user/alice/lab?x=1"
    assert response.getheader("Location") == location
    posted = raw(port, "/hub/api/users", "hub.example.org:80", method="POST")
    assert posted.status == 308
    assert posted.getheader("Location") == f"https://hub.example.org:{router.port}/hub/api/users"


@pytest.mark.parametrize("host", ["", "evil.org\\@x", "a b"])
def test_redirect_port_refuses_a_missing_or_odd_host(tls_router, host):
    port = announced(tls_router[0], "redirecting")
    assert raw(port, "/", host).status == 400


def refused_at_start(*args: str) -> str:
    """Run the router with ARGS; it must exit with argparse's 2. Returns stderr."""
    result = subprocess.run(
        [sys.executable, "-m", "routing.router", *args],
        cwd=ROOT,
        env={"HUB_ROUTER_TOKEN": "x", "PATH": "/usr/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    return result.stderr


def test_a_key_that_does_not_match_the_certificate_fails_at_start(tmp_path):
    cert, _ = write_cert(tmp_path, "one")
    _, other_key = write_cert(tmp_path, "two")
    stderr = refused_at_start("--tls-cert", cert, "--tls-key", other_key)
    assert "cannot load --tls-cert/--tls-key" in stderr


# --- subdomains -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def subdomains(world):
    _, start = world
    return start("--subdomain-host", "hub.example.org")


def test_users_host_reaches_the_users_server_with_host_kept(subdomains):
    response = raw(subdomains.port, "/user/alice/lab", "alice.hub.example.org")
    seen = json.loads(response.body)
    assert (seen["who"], seen["host"], seen["path"]) == (
        "alice",
        "alice.hub.example.org",
        "/user/alice/lab",
    )
    assert who(raw(subdomains.port, "/user/alice/", "ALICE.Hub.Example.Org:8443")) == "alice"


@pytest.mark.parametrize("path", ["/user/bob/lab", "//user//bob/", "/user/Alice/"])
def test_another_users_path_on_a_users_host_is_refused(subdomains, path):
    response = raw(subdomains.port, path, "alice.hub.example.org")
    assert response.status == 404
    assert who(response) == "404"


@pytest.mark.parametrize("host", ["hub.example.org:8000", "127.0.0.1", "x.alice.hub.example.org"])
def test_user_paths_are_never_served_from_another_origin(subdomains, host):
    response = raw(subdomains.port, "/user/alice/lab?x=1", host)
    assert response.status == 302
    port = ":8000" if host.endswith(":8000") else ""
    expected = f"http://alice.hub.example.org{port}/user/alice/lab?x=1"
    assert response.getheader("Location") == expected


def test_redirects_use_the_public_scheme_when_tls_ends_before_the_router(world):
    _, start = world
    router = start("--subdomain-host", "hub.example.org", "--public-scheme", "https")
    response = raw(router.port, "/user/alice/lab", "hub.example.org")
    assert response.getheader("Location") == "https://alice.hub.example.org/user/alice/lab"


def test_hub_stays_on_the_bare_host_and_is_the_default_elsewhere(subdomains):
    seen = json.loads(raw(subdomains.port, "/hub/home", "hub.example.org").body)
    assert (seen["who"], seen["path"]) == ("hub", "/hub/home")
    assert who(raw(subdomains.port, "/", "alice.hub.example.org")) == "hub"


def test_names_that_cannot_be_a_host_get_the_hubs_page(subdomains):
    seen = json.loads(raw(subdomains.port, "/user/Bob_2/lab", "hub.example.org").body)
    assert (seen["who"], seen["path"]) == ("hub", "/hub/user/Bob_2/lab")


def test_invalid_subdomain_host_is_refused_at_start():
    stderr = refused_at_start("--subdomain-host", "hub_.example.org")
    assert "--subdomain-host must be a DNS name" in stderr


# --- timeouts -------------------------------------------------------------------------


@pytest.fixture
def unanswered_port():
    """A port whose SYNs are dropped (accept queue full): connects hang."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(listener.getsockname())
        fillers.append(filler)
    yield listener.getsockname()[1]
    for sock in [*fillers, listener]:
        sock.close()


def test_backend_that_never_accepts_gets_502_after_the_connect_timeout(world, unanswered_port):
    state, start = world
    state.set_route("/user/stuck/", f"http://127.0.0.1:{unanswered_port}")
    router = start("--connect-timeout", "0.5", "--idle-timeout", "1")
    response = raw(router.port, "/user/stuck/lab", "hub.example.org")
    assert response.status == 502
    assert b"timed out" in response.body  # type: ignore[attr-defined]

    idle = socket.create_connection(("127.0.0.1", router.port), timeout=15)
    assert idle.recv(1) == b""  # closed by the router, long before our 15 s
    idle.close()


# --- health and metrics ---------------------------------------------------------------


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in metrics:\n{text}")


def test_health_and_metrics_sum_across_workers(world, echo_backend):
    state, start = world
    state.set_route("/user/echo/", echo_backend.url)
    state.set_route("/user/gone/", "http://127.0.0.1:9")  # nothing listens on discard
    router = start("--metrics-listen", "127.0.0.1:0", workers=2)
    base = f"http://127.0.0.1:{announced(router, 'metrics')}"
    for _ in range(10):
        assert who(raw(router.port, "/user/alice/", "h")) == "alice"
    assert raw(router.port, "/user/gone/", "h").status == 502
    wait_for(
        lambda: requests.get(base + "/health", timeout=5).json()["workers_alive"] == 2,
        timeout=10,
        what="both workers' heartbeats",
    )
    health = requests.get(base + "/health", timeout=5).json()
    assert health["stale"] is False and health["routes"] >= 4
    assert health["table_age_seconds"] is not None

    def counted() -> str | None:
        text = requests.get(base + "/metrics", timeout=5).text
        done = metric(text, 'router_requests_total{code="2xx"}') >= 10
        return text if done and metric(text, "router_errors_total") >= 1 else None

    text = wait_for(counted, timeout=10, what="requests counted")
    count = metric(text, "router_request_duration_seconds_count")
    assert metric(text, 'router_request_duration_seconds_bucket{le="+Inf"}') == count
    assert count >= 10
    assert 'router_routes{worker="0"}' in text and 'router_routes{worker="1"}' in text

    def websockets() -> float:
        return metric(requests.get(base + "/metrics", timeout=5).text, "router_websockets_active")

    with connect(f"ws://127.0.0.1:{router.port}/user/echo/ws") as ws:
        ws.send("hi")
        assert ws.recv(timeout=10) == "hi"
        wait_for(lambda: websockets() == 1, timeout=10, what="one active WebSocket")
    wait_for(lambda: websockets() == 0, timeout=10, what="no active WebSocket")

    state.down = True
    try:
        wait_for(
            lambda: requests.get(base + "/health", timeout=5).json()["stale"],
            timeout=15,
            what="the stale flag while the hub is down",
        )
        assert requests.get(base + "/health", timeout=5).status_code == 200
        assert who(raw(router.port, "/user/alice/", "h")) == "alice"  # still serving
    finally:
        state.down = False
    assert requests.get(base + "/other", timeout=5).status_code == 404
