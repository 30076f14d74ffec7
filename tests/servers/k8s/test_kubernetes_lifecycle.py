"""Servers as pods, end to end: the real hub, Celery worker, router and
jupyterhub-singleuser, with HUB_SPAWNER=kubernetes against the Kubernetes API
simulator (or HUB_TEST_KUBECONFIG's cluster)."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests
from django.test import Client
from django.utils import timezone
from kubernetes.client.exceptions import ApiException

from routing.api.routes import lookup
from scheduler.tasks import reconcile_servers
from servers import naming, services
from servers.models import Server
from servers.spawners import get_spawner
from tests.factories import ProfileFactory
from tests.live import stop_and_wait, wait_for
from tests.servers.test_singleuser_e2e import _execute

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
State = Server.State


def pod_or_none(kube, name: str):
    try:
        return kube.core.read_namespaced_pod(name, kube.namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def claim_exists(kube, username: str) -> bool:
    try:
        kube.core.read_namespaced_persistent_volume_claim(naming.pvc_name(username), kube.namespace)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def what_the_hub_knew(server: Server, response: requests.Response, path: str) -> str:
    """For a request through the router that did not reach the server: its
    answer, the server's row and events, and the route the hub's lookup gives
    now (a 424 from the hub means the router had no route for it)."""
    server.refresh_from_db()
    events = list(server.events.order_by("id").values_list("kind", "message"))
    return (
        f"{response.status_code} {response.text[:300]}; server {server.state} at {server.url!r}, "
        f"events {events[-6:]}; the hub's lookup of {path} now: {lookup(path)}"
    )


def wait_state(server: Server, *states: str, timeout: float = 90) -> Server:
    wait_for(
        lambda: Server.objects.get(pk=server.pk).state in states,
        timeout=timeout,
        what=f"{server} to reach {'/'.join(states)}",
    )
    server.refresh_from_db()
    return server


def test_server_is_a_pod_reached_through_the_router(kube, alice, token_for, start_server, router):
    server = start_server(alice)
    pod = kube.core.read_namespaced_pod("jupyter-alice", kube.namespace)
    assert server.spawner_state["uid"] == pod.metadata.uid
    assert server.url == f"http://{pod.status.pod_ip}:8888"
    assert pod.metadata.labels[naming.LABEL_USER] == "alice"
    headers = {"Authorization": f"token {token_for(alice)}"}
    response = requests.get(f"{router.url}/user/alice/api/status", headers=headers)
    assert response.status_code == 200
    messages = list(server.events.values_list("message", flat=True))
    # the pod's events are progress lines (those that came before it ran: the
    # events and the pods are two watches, so the last ones may come after)
    assert any(m.startswith("[Normal] Scheduled: Successfully assigned") for m in messages)
    assert claim_exists(kube, "alice")


def test_kernel_through_the_router_runs_1_plus_1(kube, alice, token_for, start_server, router):
    start_server(alice)
    token = token_for(alice)
    kernel = requests.post(
        f"{router.url}/user/alice/api/kernels",
        headers={"Authorization": f"token {token}"},
        json={},
    )
    assert kernel.status_code == 201, kernel.text
    ws_url = router.url.replace("http", "ws", 1) + (
        f"/user/alice/api/kernels/{kernel.json()['id']}/channels?session_id={uuid.uuid4().hex}"
    )
    assert asyncio.run(_execute(ws_url, token, "1+1")) == "2"


def test_stop_keeps_the_claim_and_the_next_start_finds_the_file(
    kube, alice, token_for, start_server, router
):
    server = start_server(alice)
    headers = {"Authorization": f"token {token_for(alice)}"}
    path = "/user/alice/api/contents/notes.txt"
    saved = requests.put(
        f"{router.url}{path}",
        headers=headers,
        json={"type": "file", "format": "text", "content": "kept in the claim"},
    )
    assert saved.status_code in (200, 201), what_the_hub_knew(server, saved, path)
    stop_and_wait(server)
    assert pod_or_none(kube, "jupyter-alice") is None
    assert claim_exists(kube, "alice")
    start_server(alice)
    reread = requests.get(f"{router.url}/user/alice/api/contents/notes.txt", headers=headers)
    assert reread.status_code == 200
    assert reread.json()["content"] == "kept in the claim"


def test_a_new_worker_process_adopts_the_running_pod(kube, alice, token_for, start_server, router):
    server = start_server(alice)
    uid = server.spawner_state["uid"]
    # a restarted hub or worker keeps nothing in memory but the watches: drop them
    from servers.spawners.kubernetes import close_clusters

    close_clusters()
    assert reconcile_servers() == 0
    server.refresh_from_db()
    assert server.state == State.RUNNING
    assert kube.core.read_namespaced_pod("jupyter-alice", kube.namespace).metadata.uid == uid
    headers = {"Authorization": f"token {token_for(alice)}"}
    assert requests.get(f"{router.url}/user/alice/api/status", headers=headers).status_code == 200
    close_clusters()
    stop_and_wait(server)
    assert pod_or_none(kube, "jupyter-alice") is None


def _dead_workers_pod(server: Server) -> str:
    """What a worker killed mid-spawn leaves: a pod created with credentials
    that the next attempt replaces, and no state in the database."""
    raw = services.issue_credentials(server)
    started = get_spawner().start(services.build_spec(server, raw), lambda pct, msg: None)
    return started.state["uid"]


def test_redelivered_spawn_replaces_the_dead_workers_pod(kube, alice, live_hub):
    server = services.get_or_create_server(alice, "")
    Server.objects.filter(pk=server.pk).update(state=State.STARTING, requested_at=timezone.now())
    old_uid = _dead_workers_pod(server)
    services.start_on_spawner(server.pk)  # the task, delivered again
    server.refresh_from_db()
    assert server.state == State.RUNNING, server.failure
    pods = kube.core.list_namespaced_pod(kube.namespace).items
    assert [p.metadata.name for p in pods] == ["jupyter-alice"]
    assert pods[0].metadata.uid != old_uid
    services.stop_now(server, by="test")
    assert pod_or_none(kube, "jupyter-alice") is None


def test_spawn_lost_with_its_worker_leaves_no_orphan_pod(kube, alice, live_hub, settings):
    server = services.get_or_create_server(alice, "")
    Server.objects.filter(pk=server.pk).update(state=State.STARTING, requested_at=timezone.now())
    _dead_workers_pod(server)
    long_ago = timezone.now() - timedelta(seconds=settings.HUB_START_TIMEOUT + 60)
    Server.objects.filter(pk=server.pk).update(requested_at=long_ago)
    assert reconcile_servers() >= 2  # the stale start failed, its pod deleted
    server.refresh_from_db()
    assert server.state == State.FAILED
    kube.wait_for_pod_gone("jupyter-alice")


def test_pod_nobody_owns_is_deleted_by_reconcile(kube, alice, bob, start_server):
    start_server(alice)
    stray = services.get_or_create_server(bob, "")
    Server.objects.filter(pk=stray.pk).update(state=State.STARTING, requested_at=timezone.now())
    _dead_workers_pod(stray)
    Server.objects.filter(pk=stray.pk).update(state=State.STOPPED)
    assert reconcile_servers() == 1
    kube.wait_for_pod_gone("jupyter-bob")
    assert pod_or_none(kube, "jupyter-alice") is not None


def test_server_whose_pod_vanished_is_marked_failed(kube, alice, start_server):
    server = start_server(alice)
    kube.core.delete_namespaced_pod("jupyter-alice", kube.namespace, grace_period_seconds=0)
    kube.wait_for_pod_gone("jupyter-alice")
    # reconcile reads the process's shared watch, which hears of the deletion a
    # moment after the API answers 404 (the test failed ~1 run in 8 without this)
    wait_for(
        lambda: get_spawner().poll(server.spawner_state) is not None,
        timeout=10,
        what="the watch to see the pod go",
    )
    assert reconcile_servers() == 1
    server.refresh_from_db()
    assert server.state == State.FAILED
    assert "jupyter-alice is gone" in server.failure


# --- failures the user must understand ----------------------------------------


def reason_seen_by(user, server: Server) -> tuple[str, str]:
    """The failure as the progress API and the home page show it."""
    client = Client()
    client.force_login(user)
    progress = client.get(f"/hub/api/users/{user.username}/server/progress")
    stream = b"".join(progress.streaming_content).decode()
    page = client.get("/hub/home").content.decode()
    return stream, page


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("ErrImagePull", ("ErrImagePull: the image could not be pulled",)),
        # the kubelet reports ErrImagePull, then ImagePullBackOff at once (the
        # back-off begins): the start fails on whichever the watch shows first,
        # and either way with the registry's answer
        ("ImagePullBackOff", ("the image could not be pulled (", "rpc error: code = NotFound")),
        # the container exits (Error, code 1), then the kubelet backs off before
        # restarting it: the start fails on whichever the watch shows first, the
        # exit alone or the exit and the loop, and either way with the exit code
        ("CrashLoopBackOff", ("Error (exit code 1)",)),
        ("OOMKilled", ("OOMKilled: the server ran out of memory",)),
        ("Evicted", ("Evicted: The node was low on resource: memory.",)),
    ],
)
def test_failed_pod_fails_the_start_with_the_kubelets_reason(
    kube, alice, live_hub, celery_live_worker, fault, reason
):
    kube.add_fault(fault, labels={naming.LABEL_USER: "alice"})
    server = services.get_or_create_server(alice, "")
    services.request_start(server, by="alice", user_options={})
    wait_state(server, State.FAILED, State.RUNNING)
    assert server.state == State.FAILED
    assert all(part in server.failure for part in reason), server.failure
    kube.wait_for_pod_gone("jupyter-alice")
    assert claim_exists(kube, "alice")
    stream, page = reason_seen_by(alice, server)
    assert all(part in stream for part in reason), stream
    assert all(part in page for part in reason), page


def test_unschedulable_pod_fails_at_the_timeout_with_the_schedulers_message(
    kube, alice, live_hub, celery_live_worker, settings
):
    settings.HUB_START_TIMEOUT = 3  # nothing would ever place it: no node has a GPU
    ProfileFactory(slug="gpu", default=True, extra_resource_limits={"nvidia.com/gpu": "1"})
    server = services.get_or_create_server(alice, "")
    services.request_start(server, by="alice", user_options={"profile": "gpu"})
    wait_state(server, State.FAILED, State.RUNNING)
    assert server.state == State.FAILED
    assert "0/3 nodes are available: 3 Insufficient nvidia.com/gpu" in server.failure
    kube.wait_for_pod_gone("jupyter-alice")
    stream, page = reason_seen_by(alice, server)
    assert "Insufficient nvidia.com/gpu" in stream
    assert "Insufficient nvidia.com/gpu" in page


def test_running_server_killed_for_memory_is_failed_with_the_reason(kube, alice, start_server):
    server = start_server(alice)
    kube.kill_pod("jupyter-alice", reason="OOMKilled", container="notebook")
    wait_for(
        lambda: get_spawner().poll(server.spawner_state) is not None,
        timeout=30,
        what="the spawner to see the OOM kill",
    )
    assert reconcile_servers() >= 1
    server.refresh_from_db()
    assert server.state == State.FAILED
    assert "OOMKilled" in server.failure
    kube.wait_for_pod_gone("jupyter-alice")


# --- users and their storage ----------------------------------------------------


@pytest.mark.parametrize(("policy", "kept"), [("keep", True), ("delete", False)])
def test_deleting_a_user_deletes_the_claim_only_when_the_policy_says_so(
    kube, alice, admin, api_client_for, start_server, settings, policy, kept
):
    settings.HUB_K8S_PVC_ON_USER_DELETE = policy
    start_server(alice)
    response = api_client_for(admin).delete("/hub/api/users/alice")
    assert response.status_code == 204
    assert pod_or_none(kube, "jupyter-alice") is None
    if kept:
        assert claim_exists(kube, "alice")
    else:
        wait_for(lambda: not claim_exists(kube, "alice"), timeout=30, what="the claim to go")


def test_a_renamed_user_finds_their_files_and_the_deleted_one_takes_their_claim(
    kube, alice, admin, api_client_for, token_for, start_server, router, settings
):
    """KubeSpawner's remember_pvc_name: the claim keeps the name it was made
    under, for the next start and for the deletion policy."""
    settings.HUB_K8S_PVC_ON_USER_DELETE = "delete"
    server = start_server(alice)
    path = "/user/alice/api/contents/notes.txt"
    saved = requests.put(
        f"{router.url}{path}",
        headers={"Authorization": f"token {token_for(alice)}"},
        json={"type": "file", "format": "text", "content": "before the rename"},
    )
    assert saved.status_code in (200, 201), what_the_hub_knew(server, saved, path)
    stop_and_wait(server)
    admin_api = api_client_for(admin)
    renamed = admin_api.patch("/hub/api/users/alice", {"name": "alice-smith"}, format="json")
    assert renamed.status_code == 200, renamed.content
    alice.refresh_from_db()
    start_server(alice)
    reread = requests.get(
        f"{router.url}/user/alice-smith/api/contents/notes.txt",
        headers={"Authorization": f"token {token_for(alice)}"},
    )
    assert reread.status_code == 200, reread.text
    assert reread.json()["content"] == "before the rename"
    assert not claim_exists(kube, "alice-smith")
    assert admin_api.delete("/hub/api/users/alice-smith").status_code == 204
    wait_for(lambda: not claim_exists(kube, "alice"), timeout=30, what="the claim to go")


@pytest.mark.browser
def test_signup_to_jupyterlab_in_the_browser(
    kube, live_hub, celery_live_worker, router, start_server, admin
):
    from tests.browser.test_signup_to_jupyterlab import journey

    ProfileFactory(slug="standard", display_name="Standard environment", default=True)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(journey, router.url).result()
    # the journey ends by stopping the server from the home page: the pod is
    # gone, its claim stays for the next start
    server = Server.objects.get(user__username="newbie", name="")
    assert server.state == State.STOPPED
    kinds = list(server.events.order_by("id").values_list("kind", flat=True))
    assert "ready" in kinds and kinds[-2:] == ["stop_requested", "stopped"]
    assert pod_or_none(kube, naming.pod_name("newbie", "")) is None
    assert claim_exists(kube, "newbie")
