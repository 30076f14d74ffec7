"""The Dockerfiles, read against the code they package.

There is no Docker on these machines, so the images cannot be built in the
tests. What can be checked is everything the build and k8s/ rely on: the
files copied exist, the packages the commands need are installed, the users
match the manifests' security contexts, and the build's collectstatic step
and a read-only start leave nothing written in the data directory."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.kustomize import ROOT
from tests.deploy.objects import container, find, pod_template

HUB_IMAGE = ROOT / "Dockerfile"
USER_IMAGE = ROOT / "images" / "user" / "Dockerfile"


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    pairs = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            pairs.append((word.upper(), rest.strip()))
    return pairs


def arguments(dockerfile: Path, instruction: str) -> list[str]:
    return [rest for word, rest in instructions(dockerfile) if word == instruction]


def image_env(dockerfile: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for rest in arguments(dockerfile, "ENV"):
        for pair in shlex.split(rest):
            name, _, value = pair.partition("=")
            env[name] = value
    return env


@pytest.mark.parametrize("dockerfile", [HUB_IMAGE, USER_IMAGE], ids=["hub", "user"])
def test_every_copied_path_exists_and_is_not_docker_ignored(dockerfile):
    ignored = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for rest in arguments(dockerfile, "COPY"):
        *sources, _target = rest.split()
        for source in sources:
            assert (ROOT / source).exists(), source
            assert source.rstrip("/") not in ignored, source


def test_hub_image_copies_every_app_package():
    copied = {rest.split()[0] for rest in arguments(HUB_IMAGE, "COPY")}
    # the Kubernetes API simulator is a development tool (`make run-k8s`, tests), not the hub
    not_shipped = ("tests", "bench", "k8s_simulator")
    packages = {
        p.parent.name for p in ROOT.glob("*/__init__.py") if p.parent.name not in not_shipped
    }
    assert packages <= copied
    assert {"manage.py", "templates", "static", "requirements.txt"} <= copied


def test_hub_image_installs_what_its_commands_run_and_no_test_tools():
    requirements = (ROOT / "requirements.txt").read_text()
    runtime, marker, tooling = requirements.partition("# tests and tooling")
    assert marker, "the Dockerfile cuts requirements.txt at '# tests and tooling'"
    names = lambda text: {  # noqa: E731
        re.split(r"[\[=<>]", line)[0].lower()
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert {"django", "gunicorn", "celery", "mitmproxy", "kubernetes", "psycopg"} <= names(runtime)
    assert "pytest" in names(tooling)


def test_manifest_commands_name_modules_and_commands_that_exist(render_variant):
    from django.core.management import get_commands

    objs = render_variant("production")
    hub = container(find(objs, "Deployment", "hub"), "hub")
    assert hub["command"][:2] == ["gunicorn", "hubsite.wsgi"]
    assert (ROOT / "hubsite" / "wsgi.py").is_file()
    migrate = container(find(objs, "Deployment", "hub"), "migrate")["command"][-1]
    commands = re.findall(r"python manage\.py (\w+)", migrate)
    assert commands == ["migrate", "ensure_admin"]
    assert set(commands) <= set(get_commands())
    for name in ("worker", "beat"):
        command = container(find(objs, "Deployment", name), name)["command"]
        assert command[:3] == ["celery", "--app=hubsite", name]
    assert (ROOT / "hubsite" / "celery.py").is_file()
    assert (ROOT / "routing" / "router" / "__main__.py").is_file()


def test_hub_image_user_is_the_manifests_uid(render_variant):
    (user,) = arguments(HUB_IMAGE, "USER")
    uid, gid = (int(part) for part in user.split(":"))
    objs = render_variant("production")
    for name in ("hub", "router", "worker", "beat"):
        context = pod_template(find(objs, "Deployment", name))["spec"]["securityContext"]
        assert (context["runAsUser"], context["runAsGroup"]) == (uid, gid), name


def test_hub_image_data_dir_is_the_configmaps(render_variant):
    config = find(render_variant("production"), "ConfigMap", "hub-config")["data"]
    assert image_env(HUB_IMAGE)["HUB_DATA_DIR"] == config["HUB_DATA_DIR"]


def test_user_image_runs_singleuser_as_jovyan():
    assert arguments(USER_IMAGE, "USER") == ["1000:100"]
    assert arguments(USER_IMAGE, "CMD") == ['["jupyterhub-singleuser"]']
    assert image_env(USER_IMAGE)["HOME"] == "/home/jovyan"
    (useradd,) = [r for r in arguments(USER_IMAGE, "RUN") if "useradd" in r]
    assert "--uid 1000 --gid 100" in useradd and "jovyan" in useradd
    # jupyterhub-singleuser comes from the jupyterhub package
    assert re.search(r"^jupyterhub==", (ROOT / "requirements-user.txt").read_text(), re.M)
    assert any("requirements-user.txt" in rest for rest in arguments(USER_IMAGE, "COPY"))


def collectstatic_env() -> dict[str, str]:
    """The VAR=value words before `python manage.py collectstatic` in the Dockerfile."""
    (run,) = [r for r in arguments(HUB_IMAGE, "RUN") if "collectstatic" in r]
    words = shlex.split(run.split("python manage.py collectstatic")[0])
    return dict(word.split("=", 1) for word in words)


def test_build_and_read_only_start_write_nothing_but_static_files(tmp_path, render_variant):
    data = tmp_path / "data"
    base = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    build = {**base, **collectstatic_env(), "HUB_DATA_DIR": str(data)}
    manage = [sys.executable, "manage.py"]
    run = lambda args, env: subprocess.run(  # noqa: E731
        manage + args, cwd=ROOT, env=env, capture_output=True, text=True
    )
    result = run(["collectstatic", "--noinput", "--verbosity=0"], build)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in data.iterdir()) == ["static"]
    built = sorted(data.rglob("*"))
    assert (data / "static" / "admin").is_dir()

    result = run(["check"], {**base, **runtime_env(render_variant("dev"), data, tmp_path)})
    assert result.returncode == 0, result.stderr
    assert sorted(data.rglob("*")) == built


def runtime_env(objs: list[dict], data: Path, tmp_path: Path) -> dict[str, str]:
    """The hub container's environment from k8s/overlays/dev, with the mounted
    Secret files written under TMP_PATH."""
    config = find(objs, "ConfigMap", "hub-config")["data"]
    env = dict(config)
    secrets = {s["metadata"]["name"]: s for s in objs if s["kind"] == "Secret"}
    hub = container(find(objs, "Deployment", "hub"), "hub")
    for variable in hub["env"]:
        if variable["name"].endswith("_FILE"):
            secret_file = tmp_path / variable["value"].lstrip("/")
            secret_file.parent.mkdir(parents=True, exist_ok=True)
            secret_file.write_text(_secret_value(secrets, secret_file.name))
            env[variable["name"]] = str(secret_file)
        elif variable.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == (
            "metadata.namespace"
        ):
            env[variable["name"]] = "hub-dev"
    # a pod is told where its API server is (loopback here: nothing connects; the client
    # reads the service account only when the spawner first talks to the cluster)
    return {**env, "HUB_DATA_DIR": str(data), "KUBERNETES_SERVICE_HOST": "127.0.0.1"}


def _secret_value(secrets: dict[str, dict], key: str) -> str:
    import base64

    for secret in secrets.values():
        if key in secret.get("data", {}):
            return base64.b64decode(secret["data"][key]).decode()
    raise AssertionError(f"no Secret in the dev overlay has the key {key}")
