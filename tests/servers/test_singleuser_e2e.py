"""The real `jupyterhub-singleuser` behind the real router, spawned by a real
Celery worker, authenticating people through the hub's OAuth provider."""

from __future__ import annotations

import asyncio
import json
import uuid
from urllib.parse import urlsplit

import pytest
import requests
import websockets
from django.conf import settings
from django.test import Client

from servers.models import Server
from tests.live import stop_and_wait, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def browser_for(user, router_url: str) -> requests.Session:
    """A requests session holding USER's hub login cookie, as a browser would."""
    client = Client()
    client.force_login(user)
    session = requests.Session()
    host = urlsplit(router_url).hostname
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    session.cookies.set(settings.SESSION_COOKIE_NAME, cookie, domain=host, path="/hub/")
    return session


def test_owner_browser_reaches_own_server_through_oauth(alice, start_server, router):
    start_server(alice)
    browser = browser_for(alice, router.url)
    page = browser.get(f"{router.url}/user/alice/lab")
    assert page.status_code == 200
    hops = [urlsplit(r.url).path for r in page.history]
    assert "/hub/api/oauth2/authorize" in hops
    assert "/user/alice/oauth_callback" in hops
    status = browser.get(f"{router.url}/user/alice/api/status")
    assert status.status_code == 200
    assert "started" in status.json()


def test_other_user_gets_403_from_the_server(alice, bob, start_server, router):
    start_server(alice)
    response = browser_for(bob, router.url).get(f"{router.url}/user/alice/lab")
    assert response.status_code == 403


def test_anonymous_browser_is_sent_to_log_in(alice, start_server, router):
    start_server(alice)
    response = requests.get(f"{router.url}/user/alice/lab", allow_redirects=True)
    assert urlsplit(response.url).path == "/hub/login"


async def _execute(ws_url: str, token: str, code: str) -> str:
    async with websockets.connect(
        ws_url, additional_headers={"Authorization": f"token {token}"}, max_size=None
    ) as ws:
        msg_id = uuid.uuid4().hex
        await ws.send(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "msg_type": "execute_request",
                        "username": "t",
                        "session": uuid.uuid4().hex,
                        "version": "5.3",
                        "date": "",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "content": {
                        "code": code,
                        "silent": False,
                        "store_history": False,
                        "user_expressions": {},
                        "allow_stdin": False,
                    },
                    "channel": "shell",
                    "buffers": [],
                }
            )
        )
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), timeout=60))
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if message["msg_type"] == "execute_result":
                return message["content"]["data"]["text/plain"]
            if message["msg_type"] == "error":
                raise AssertionError(message["content"])


def test_kernel_through_router_executes_over_websocket(alice, token_for, start_server, router):
    start_server(alice)
    token = token_for(alice)
    headers = {"Authorization": f"token {token}"}
    kernel = requests.post(f"{router.url}/user/alice/api/kernels", headers=headers, json={})
    assert kernel.status_code == 201, kernel.text
    ws_url = router.url.replace("http", "ws", 1) + (
        f"/user/alice/api/kernels/{kernel.json()['id']}/channels?session_id={uuid.uuid4().hex}"
    )
    assert asyncio.run(_execute(ws_url, token, "1+1")) == "2"


def test_stop_removes_the_route_and_requests_reach_the_hub(alice, token_for, start_server, router):
    server = start_server(alice)
    headers = {"Authorization": f"token {token_for(alice)}"}
    assert requests.get(f"{router.url}/user/alice/api/status", headers=headers).status_code == 200
    stop_and_wait(server)

    def answered_by_hub() -> bool:
        response = requests.get(
            f"{router.url}/user/alice/api/status", headers=headers, allow_redirects=False
        )
        return "X-JupyterHub-Version" in response.headers and response.status_code != 200

    wait_for(answered_by_hub, timeout=5, what="the route to be removed")
    # the hub's answer to a token on a stopped server's API, as JupyterHub 6.1.1 gives it
    follow = requests.get(f"{router.url}/user/alice/api/status", headers=headers)
    assert follow.status_code == 424
    assert follow.json()["message"].startswith(
        "JupyterHub server no longer running at /user/alice/api/status. Restart the server at "
    )
    assert follow.json()["message"].endswith("/hub/spawn/alice")


def test_file_written_before_stop_is_there_after_next_start(alice, token_for, start_server, router):
    server = start_server(alice)
    headers = {"Authorization": f"token {token_for(alice)}"}
    saved = requests.put(
        f"{router.url}/user/alice/api/contents/notes.txt",
        headers=headers,
        json={"type": "file", "format": "text", "content": "kept across restarts"},
    )
    assert saved.status_code in (200, 201), saved.text
    stop_and_wait(server)
    start_server(alice)
    reread = requests.get(f"{router.url}/user/alice/api/contents/notes.txt", headers=headers)
    assert reread.status_code == 200
    assert reread.json()["content"] == "kept across restarts"
    assert Server.objects.get(pk=server.pk).state == Server.State.RUNNING
