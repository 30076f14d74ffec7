"""The weekly rolling restart of the routers (k8s/components/tls-secret/cronjob.yaml)
sends what `kubectl rollout restart deployment/router` sends.

No Kubernetes API server can run here, so the request goes to a stand-in: a
loopback HTTP server that only records one PATCH and answers it with a
Deployment. That is enough to check the script's request (method, path,
content type, body), which is all the script does."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from tests.deploy.objects import container, env, find


class RecordingApi(BaseHTTPRequestHandler):
    """Stand-in for the Kubernetes API: records requests, answers PATCH with a Deployment."""

    seen: list[dict] = []
    status = 200

    def do_PATCH(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append(
            {
                "path": self.path,
                "type": self.headers["Content-Type"],
                "auth": self.headers["Authorization"],
                "body": json.loads(body),
            }
        )
        reply = json.dumps({"apiVersion": "apps/v1", "kind": "Deployment"}).encode()
        if self.status != 200:
            reply = json.dumps({"kind": "Status", "code": self.status, "reason": "Forbidden"})
            reply = reply.encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api():
    RecordingApi.seen = []
    RecordingApi.status = 200
    server = ThreadingHTTPServer(("127.0.0.1", 0), RecordingApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def kubeconfig(tmp_path, port: int):
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                "users": [{"name": "u", "user": {"token": "sa-token"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return path


def run_restart_job(render_variant, api, tmp_path) -> subprocess.CompletedProcess[str]:
    job = find(render_variant("production"), "CronJob", "router-tls-reload")
    script = container(job, "restart-routers")
    assert script["command"][:2] == ["python", "-c"]
    assert env(script)["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    config = kubeconfig(tmp_path, api.server_port)
    return subprocess.run(
        [sys.executable, "-c", script["command"][2]],
        env={**os.environ, "KUBECONFIG": str(config), "POD_NAMESPACE": "hub"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_restart_job_patches_the_routers_pod_template(api, tmp_path, render_variant):
    result = run_restart_job(render_variant, api, tmp_path)
    assert result.returncode == 0, result.stderr
    (request,) = RecordingApi.seen
    assert request["path"] == "/apis/apps/v1/namespaces/hub/deployments/router"
    assert request["type"] == "application/strategic-merge-patch+json"
    assert request["auth"] == "Bearer sa-token"
    annotations = request["body"]["spec"]["template"]["metadata"]["annotations"]
    restarted = datetime.datetime.fromisoformat(annotations["kubectl.kubernetes.io/restartedAt"])
    assert restarted.tzinfo is not None


def test_restart_job_fails_when_the_api_refuses(api, tmp_path, render_variant):
    RecordingApi.status = 403
    result = run_restart_job(render_variant, api, tmp_path)
    assert result.returncode != 0  # the Job retries and shows as failed
    assert "403" in result.stderr


def test_restart_job_may_patch_only_the_router_deployment(render_variant):
    objs = render_variant("production")
    job = find(objs, "CronJob", "router-tls-reload")
    account = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["serviceAccountName"]
    (binding,) = [
        b for b in objs if b["kind"] == "RoleBinding" and b["subjects"][0]["name"] == account
    ]
    role = find(objs, "Role", binding["roleRef"]["name"])
    assert role["rules"] == [
        {
            "apiGroups": ["apps"],
            "resources": ["deployments"],
            "resourceNames": ["router"],
            "verbs": ["patch"],
        }
    ]
