"""k8s/: every overlay renders, every object is valid for Kubernetes 1.37, and
the deployment has the shape the platform relies on.

No cluster runs here (see tests/k8s_schema.py), so these are the checks an API
server's validation and a careful review would make, on the rendered output."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from urllib.parse import urlsplit

import pytest
import yaml

from tests import k8s_schema
from tests.deploy import cert_manager, kustomize
from tests.deploy.conftest import ALL_VARIANTS, OVERLAYS, PRODUCTION_VARIANTS
from tests.deploy.objects import (
    container,
    containers,
    egress_allows_ip,
    env,
    find,
    of_kind,
    pod_template,
    pod_templates,
    selects,
)

# what servers/spawners/ calls (k8s-spawner branch, c76b251): it reads, creates
# and deletes pods and list+watches them; creates and deletes PVCs; list+watches
# events. test_spawner_code_calls_only_what_the_hub_role_grants checks the code.
SPAWNER_RULES = {
    "pods": {"get", "list", "watch", "create", "delete"},
    "persistentvolumeclaims": {"create", "delete"},
    "events": {"list", "watch"},
}
# pause containers do nothing that a probe could check
UNPROBED = {"pause"}


def test_rendering_uses_the_pinned_kubectl_wheel():
    assert kustomize.kubectl_version() == kustomize.KUBECTL_VERSION
    assert kustomize.kubectl().parent == kustomize.Path(sys.executable).parent


@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_every_object_is_valid_for_kubernetes_1_37(render_variant, variant):
    problems = []
    for obj in render_variant(variant):
        if obj["apiVersion"].startswith("cert-manager.io/"):
            problems += cert_manager.validate(obj)
        else:
            problems += k8s_schema.validate(obj)
    assert problems == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kubernetes_validate_cli_accepts_the_overlay(render_variant, overlay, tmp_path):
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(yaml.safe_dump_all(render_variant(overlay)))
    cli = kustomize.Path(sys.executable).parent / "kubernetes-validate"
    result = subprocess.run(
        [cli, "--strict", "-k", k8s_schema.KUBERNETES_VERSION, "--quiet", rendered],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout
    # only the CRDs it has no schema for (checked by tests/deploy/cert_manager.py)
    unchecked = [line for line in result.stdout.splitlines() if "cert-manager.io" not in line]
    assert unchecked == []


def test_the_schema_helper_names_every_problem():
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "imagee": "x"}], "nodeSelectr": {}},
    }
    assert k8s_schema.validate(pod) == [
        "pod/p: spec: Additional properties are not allowed ('nodeSelectr' was unexpected)",
        "pod/p: spec.containers.0: Additional properties are not allowed ('imagee' was unexpected)",
    ]
    assert k8s_schema.validate({**pod, "apiVersion": "v2"}) == [
        "pod/p: no Kubernetes 1.37.0 schema for v2 Pod"
    ]


def test_the_schema_helper_accepts_client_models():
    from kubernetes.client import V1Container, V1ObjectMeta, V1Pod, V1PodSpec

    pod = V1Pod(
        api_version="v1",
        kind="Pod",
        metadata=V1ObjectMeta(name="p"),
        spec=V1PodSpec(containers=[V1Container(name="c", image="i")]),
    )
    assert k8s_schema.validate(pod) == []


def test_the_cert_manager_schema_rejects_a_misspelt_field(render_variant):
    certificate = find(render_variant("production"), "Certificate", "hub-tls")
    broken = {**certificate, "spec": {**certificate["spec"], "dnsName": ["x"]}}
    assert cert_manager.validate(certificate) == []
    assert len(cert_manager.validate(broken)) == 1


# --- replicas ---------------------------------------------------------------------


@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_beat_runs_exactly_once_and_is_recreated_not_rolled(render_variant, variant):
    beat = find(render_variant(variant), "Deployment", "beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}


@pytest.mark.parametrize("variant", ALL_VARIANTS)
@pytest.mark.parametrize("name", ["hub", "router", "worker"])
def test_stateless_components_run_two_replicas_with_a_disruption_budget(
    render_variant, variant, name
):
    objs = render_variant(variant)
    deployment = find(objs, "Deployment", name)
    assert deployment["spec"]["replicas"] == 2
    budget = find(objs, "PodDisruptionBudget", name)
    assert budget["spec"]["minAvailable"] == 1
    assert selects(budget["spec"]["selector"], pod_template(deployment)["metadata"]["labels"])


# --- RBAC -------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_hub_role_grants_exactly_the_verbs_the_spawner_uses(render_variant, variant):
    objs = render_variant(variant)
    role = find(objs, "Role", "hub")
    assert all(r["apiGroups"] == [""] and "resourceNames" not in r for r in role["rules"])
    assert granted_rules(role) == SPAWNER_RULES
    binding = find(objs, "RoleBinding", "hub")
    assert binding["roleRef"]["name"] == "hub"
    namespace = find(objs, "ServiceAccount", "hub")["metadata"]["namespace"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "hub", "namespace": namespace}
    ]


def granted_rules(role: dict) -> dict[str, set[str]]:
    granted: dict[str, set[str]] = {}
    for rule in role["rules"]:
        for resource in rule["resources"]:
            granted.setdefault(resource, set()).update(rule["verbs"])
    return granted


_CALL = re.compile(r"\b(create|read|list|delete|patch|replace)_namespaced_([a-z_]+?)\b\(?")
_VERBS = {
    "create": {"create"},
    "read": {"get"},
    "list": {"list", "watch"},  # every list feeds a watch (servers/spawners/reflector.py)
    "delete": {"delete"},
    "patch": {"patch"},
    "replace": {"update"},
}
_RESOURCES = {
    "pod": "pods",
    "persistent_volume_claim": "persistentvolumeclaims",
    "event": "events",
    "service": "services",
    "secret": "secrets",
    "config_map": "configmaps",
}


def api_calls(source: str) -> dict[str, set[str]]:
    """resource -> verbs for the CoreV1Api methods SOURCE names
    (`api.read_namespaced_pod(` -> pods: get)."""
    needed: dict[str, set[str]] = {}
    for action, kind in _CALL.findall(source):
        resource = _RESOURCES.get(kind, kind)
        needed.setdefault(resource, set()).update(_VERBS[action])
    return needed


@pytest.mark.parametrize(
    ("source", "needed"),
    [
        ("self.cluster.api.read_namespaced_pod(name, ns)", {"pods": {"get"}}),
        ("Reflector(self.api.list_namespaced_event, ...)", {"events": {"list", "watch"}}),
        (
            "api.create_namespaced_persistent_volume_claim(ns, claim)",
            {"persistentvolumeclaims": {"create"}},
        ),
        ("api.patch_namespaced_pod(name, ns, body)", {"pods": {"patch"}}),
        ("api.delete_namespaced_secret(name, ns)", {"secrets": {"delete"}}),
    ],
)
def test_api_calls_map_client_methods_to_rbac_verbs(source, needed):
    assert api_calls(source) == needed


def test_spawner_code_calls_only_what_the_hub_role_grants(render_variant):
    """Fails when the spawner starts calling something (patch, a new kind) that
    the Role does not allow, which in a cluster would be a 403 at spawn time."""
    source = "".join(p.read_text() for p in (kustomize.ROOT / "servers" / "spawners").glob("*.py"))
    granted = granted_rules(find(render_variant("production"), "Role", "hub"))
    for resource, verbs in api_calls(source).items():
        assert verbs <= granted.get(resource, set()), resource


@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_only_the_spawning_pods_get_a_kubernetes_token(render_variant, variant):
    with_token = {
        name
        for name, template in pod_templates(render_variant(variant))
        if template["spec"].get("automountServiceAccountToken", True)
    }
    expected = {"Deployment/hub", "Deployment/worker", "Deployment/user-scheduler"}
    if variant != "dev":  # TLS: the weekly rolling restart of the routers
        expected.add("CronJob/router-tls-reload")
    assert with_token == expected


# --- network policies ------------------------------------------------------------


@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_user_pods_cannot_reach_cloud_metadata_or_cluster_internals(render_variant, variant):
    policy = find(render_variant(variant), "NetworkPolicy", "user-pods")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert not egress_allows_ip(policy, "169.254.169.254", 80)
    for internal in ("10.0.0.12", "172.20.1.5", "192.168.3.4", "100.64.0.10"):
        assert not egress_allows_ip(policy, internal, 5432), internal
        assert not egress_allows_ip(policy, internal, 6379), internal
    assert egress_allows_ip(policy, "151.101.0.223", 443)  # e.g. pip install from PyPI


@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_user_pods_accept_traffic_only_from_router_hub_and_workers(render_variant, variant):
    objs = render_variant(variant)
    policy = find(objs, "NetworkPolicy", "user-pods")
    (rule,) = policy["spec"]["ingress"]
    sources = {
        name
        for name, template in pod_templates(objs)
        if any(selects(p["podSelector"], template["metadata"]["labels"]) for p in rule["from"])
    }
    assert sources == {"Deployment/router", "Deployment/hub", "Deployment/worker"}
    assert all(set(peer) == {"podSelector"} for peer in rule["from"])


@pytest.mark.parametrize("variant", ["production", "production-external-database"])
@pytest.mark.parametrize("name", ["postgres", "redis"])
def test_datastores_accept_only_hub_worker_and_beat(render_variant, variant, name):
    objs = render_variant(variant)
    if variant.endswith("external-database") and name == "postgres":
        assert not [o for o in objs if o["metadata"]["name"] == "postgres"]
        return
    policy = find(objs, "NetworkPolicy", name)
    assert policy["spec"]["egress"] == []
    (rule,) = policy["spec"]["ingress"]
    (peer,) = rule["from"]
    sources = {
        n for n, t in pod_templates(objs) if selects(peer["podSelector"], t["metadata"]["labels"])
    }
    assert sources == {"Deployment/hub", "Deployment/worker", "Deployment/beat"}


@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_every_selector_selects_a_pod(render_variant, variant):
    objs = render_variant(variant)
    labels = [t["metadata"]["labels"] for _, t in pod_templates(objs)]
    user_pod = {"component": "singleuser-server"}  # what the spawner labels its pods
    for obj in objs:
        selector = _selector(obj)
        if selector is None:
            continue
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] == "NetworkPolicy" and obj["metadata"]["name"] == "user-pods":
            assert selects(selector, user_pod)
            continue
        assert any(selects(selector, pod) for pod in labels), name


def _selector(obj: dict) -> dict | None:
    if obj["kind"] == "Service":
        return {"matchLabels": obj["spec"]["selector"]}
    if obj["kind"] == "NetworkPolicy":
        return obj["spec"]["podSelector"]
    if obj["kind"] in ("PodDisruptionBudget", "Deployment", "StatefulSet", "DaemonSet"):
        return obj["spec"]["selector"]
    return None


# --- containers -------------------------------------------------------------------


@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_every_pod_runs_non_root_under_runtime_default_seccomp(render_variant, variant):
    for name, template in pod_templates(render_variant(variant)):
        context = template["spec"]["securityContext"]
        assert context["runAsNonRoot"] is True, name
        assert context["runAsUser"] > 0, name
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name


@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_every_pod_can_read_the_secrets_it_mounts(render_variant, variant):
    """A non-root process reads a 0440 Secret file only through the pod's fsGroup
    (the kubelet makes it the files' group)."""
    for name, template in pod_templates(render_variant(variant)):
        spec = template["spec"]
        for volume in spec.get("volumes", []):
            mode = volume.get("secret", {}).get("defaultMode", 0o644)
            if "secret" in volume and not mode & 0o004:
                assert mode & 0o040, (name, volume["name"])
                assert spec["securityContext"].get("fsGroup"), (name, volume["name"])


@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_every_container_is_locked_down_and_sized(render_variant, variant):
    for name, template in pod_templates(render_variant(variant)):
        for c in containers(template):
            where = f"{name} {c['name']}"
            context = c["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["capabilities"] == {"drop": ["ALL"]}, where
            assert set(c["resources"]["requests"]) == {"cpu", "memory"}, where
            assert set(c["resources"]["limits"]) == {"cpu", "memory"}, where


@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_every_long_running_container_has_a_liveness_probe(render_variant, variant):
    for name, template in pod_templates(render_variant(variant)):
        if name.startswith("CronJob/"):
            continue  # a job's container finishes; there is nothing to keep alive
        for c in containers(template, init=False):
            if c["name"] in UNPROBED:
                continue
            assert "livenessProbe" in c, f"{name} {c['name']}"


@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_every_service_backend_has_a_readiness_probe_on_a_declared_port(render_variant, variant):
    objs = render_variant(variant)
    for service in of_kind(objs, "Service"):
        for name, template in pod_templates(objs):
            if not selects(
                {"matchLabels": service["spec"]["selector"]}, template["metadata"]["labels"]
            ):
                continue
            for c in containers(template, init=False):
                probe = c["readinessProbe"]
                port = (probe.get("httpGet") or {}).get("port")
                if port is not None:
                    assert port in {p["name"] for p in c["ports"]}, f"{name} {c['name']}"


@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_probes_ask_the_real_health_endpoints(render_variant, variant):
    objs = render_variant(variant)
    hub = container(find(objs, "Deployment", "hub"), "hub")
    for probe in ("readinessProbe", "livenessProbe"):
        assert hub[probe]["httpGet"]["path"] == "/hub/api/"
        assert hub[probe]["httpGet"]["httpHeaders"] == [{"name": "Host", "value": "hub"}]
    config = find(objs, "ConfigMap", "hub-config")["data"]
    assert urlsplit(config["HUB_CONNECT_URL"]).hostname == "hub"
    router = container(find(objs, "Deployment", "router"), "router")
    assert router["readinessProbe"]["httpGet"] == {"path": "/health", "port": "metrics"}
    assert env(router)["HUB_ROUTER_METRICS_LISTEN"] == "0.0.0.0:9090"
    assert {"name": "metrics", "containerPort": 9090} in router["ports"]


@pytest.mark.parametrize("variant", PRODUCTION_VARIANTS)
def test_production_images_are_pinned(render_variant, variant):
    for name, template in pod_templates(render_variant(variant)):
        for c in containers(template):
            image = c["image"]
            repository, _, tag = image.rpartition(":")
            assert repository and "/" not in tag, f"{name}: {image} has no tag"
            assert tag != "latest", f"{name}: {image}"


@pytest.mark.parametrize("variant", PRODUCTION_VARIANTS)
def test_the_spawner_starts_the_image_the_pre_puller_pulls(render_variant, variant):
    objs = render_variant(variant)
    config = find(objs, "ConfigMap", "hub-config")["data"]
    puller = container(find(objs, "DaemonSet", "image-puller"), "pull-user-image")
    assert puller["image"] == config["HUB_K8S_IMAGE"]
    assert config["HUB_K8S_IMAGE"].endswith(":0.1.0")


# --- public entry and TLS ----------------------------------------------------------


@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_proxy_public_is_a_load_balancer_in_front_of_the_router(render_variant, variant):
    objs = render_variant(variant)
    service = find(objs, "Service", "proxy-public")
    assert service["spec"]["type"] == "LoadBalancer"
    router = pod_template(find(objs, "Deployment", "router"))
    assert selects({"matchLabels": service["spec"]["selector"]}, router["metadata"]["labels"])
    ports = {p["port"]: p["targetPort"] for p in service["spec"]["ports"]}
    assert ports[80] == "http"
    if variant != "dev":
        assert ports[443] == "https"


@pytest.mark.parametrize("variant", ["production", "production-other-domain"])
def test_letsencrypt_issues_the_certificate_the_router_serves(render_variant, variant):
    objs = render_variant(variant)
    certificate = find(objs, "Certificate", "hub-tls")["spec"]
    issuer = find(objs, "ClusterIssuer", certificate["issuerRef"]["name"])
    assert certificate["issuerRef"]["kind"] == "ClusterIssuer"
    assert issuer["spec"]["acme"]["server"] == "https://acme-v02.api.letsencrypt.org/directory"
    public_url = find(objs, "ConfigMap", "hub-config")["data"]["HUB_PUBLIC_URL"]
    assert certificate["dnsNames"] == [urlsplit(public_url).hostname]
    assert _router_tls_secret(objs) == certificate["secretName"]


def test_a_given_tls_secret_is_served_without_cert_manager(render_variant):
    objs = render_variant("production-tls-secret")
    assert not [o for o in objs if o["apiVersion"].startswith("cert-manager.io/")]
    assert _router_tls_secret(objs) == "hub-tls"


def test_dev_serves_plain_http_only(render_variant):
    objs = render_variant("dev")
    router = container(find(objs, "Deployment", "router"), "router")
    assert "HUB_ROUTER_TLS_CERT" not in env(router)
    assert not of_kind(objs, "Certificate")


def _router_tls_secret(objs: list[dict]) -> str:
    router = find(objs, "Deployment", "router")
    variables = env(container(router, "router"))
    (mount,) = [
        m
        for m in container(router, "router")["volumeMounts"]
        if variables["HUB_ROUTER_TLS_CERT"].startswith(m["mountPath"] + "/")
    ]
    volumes = {v["name"]: v for v in pod_template(router)["spec"]["volumes"]}
    return volumes[mount["name"]]["secret"]["secretName"]


@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_router_options_pass_the_routers_own_parser(render_variant, variant, tmp_path, monkeypatch):
    from routing.router.__main__ import parse_args
    from tests.routing.test_router_edges import write_cert

    router = container(find(render_variant(variant), "Deployment", "router"), "router")
    assert router["command"][:3] == ["python", "-m", "routing.router"]
    (tmp_path / "router-token").write_text("token\n")
    cert, key = write_cert(tmp_path)
    files = {"router-token": str(tmp_path / "router-token"), "tls.crt": cert, "tls.key": key}
    for name, value in env(router).items():
        if isinstance(value, str):
            value = files.get(value.rsplit("/", 1)[-1], value)
            monkeypatch.setenv(name, value)
    config = parse_args(router["command"][3:])
    assert config.workers == int(router["resources"]["limits"]["cpu"])
    assert config.edges.metrics_port == 9090
    assert {p["containerPort"] for p in router["ports"]} >= {config.port, 9090}
    if variant != "dev":
        assert (config.port, config.edges.tls, config.edges.redirect_port) == (443, True, 8000)


# --- database -----------------------------------------------------------------------


def test_external_database_drops_postgres_and_lets_the_hub_out_to_it(render_variant):
    objs = render_variant("production-external-database")
    assert not [o for o in objs if o["metadata"]["name"] == "postgres"]
    for name in ("hub", "worker", "beat"):
        policy = find(objs, "NetworkPolicy", name)
        assert egress_allows_ip(policy, "203.0.113.7", 5432), name


@pytest.mark.parametrize("variant", ["dev", "production"])
def test_in_cluster_postgres_keeps_its_data_on_a_volume(render_variant, variant):
    postgres = find(render_variant(variant), "StatefulSet", "postgres")
    (claim,) = postgres["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in container(postgres, "postgres")["volumeMounts"]}
    pgdata = env(container(postgres, "postgres"))["PGDATA"]
    assert pgdata.startswith(mounts[claim["metadata"]["name"]] + "/")


# --- user scheduler and placeholders -----------------------------------------------


@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_user_scheduler_packs_nodes_with_most_allocated(render_variant, variant):
    objs = render_variant(variant)
    config = yaml.safe_load(find(objs, "ConfigMap", "user-scheduler")["data"]["config.yaml"])
    assert config["apiVersion"] == "kubescheduler.config.k8s.io/v1"
    assert config["kind"] == "KubeSchedulerConfiguration"
    (profile,) = config["profiles"]
    assert profile["schedulerName"] == "user-scheduler"
    fit = {p["name"]: p["args"] for p in profile["pluginConfig"]}["NodeResourcesFit"]
    assert fit["scoringStrategy"]["type"] == "MostAllocated"
    namespace = find(objs, "ServiceAccount", "user-scheduler")["metadata"]["namespace"]
    assert config["leaderElection"]["resourceNamespace"] == namespace
    lease = find(objs, "Role", "user-scheduler-lease")
    assert config["leaderElection"]["resourceName"] in lease["rules"][1]["resourceNames"]


@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_user_scheduler_reads_the_mounted_config(render_variant, variant):
    objs = render_variant(variant)
    scheduler = find(objs, "Deployment", "user-scheduler")
    kube_scheduler = container(scheduler, "kube-scheduler")
    (flag,) = [a for a in kube_scheduler["command"] if a.startswith("--config=")]
    (mount,) = [m for m in kube_scheduler["volumeMounts"] if m["name"] == "config"]
    assert flag == f"--config={mount['mountPath']}/config.yaml"
    volumes = {v["name"]: v for v in pod_template(scheduler)["spec"]["volumes"]}
    assert volumes["config"]["configMap"]["name"] == "user-scheduler"
    bound = {b["roleRef"]["name"] for b in of_kind(objs, "ClusterRoleBinding")}
    assert bound >= {"system:kube-scheduler", "system:volume-scheduler"}


@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_placeholders_use_the_user_scheduler_and_yield_to_users(render_variant, variant):
    objs = render_variant(variant)
    placeholder = pod_template(find(objs, "StatefulSet", "user-placeholder"))["spec"]
    priority = {p["metadata"]["name"]: p["value"] for p in of_kind(objs, "PriorityClass")}
    config = find(objs, "ConfigMap", "hub-config")["data"]
    user_pod = json.loads(config["HUB_K8S_SPAWNER_DEFAULTS"])  # KubeSpawner's keys
    assert placeholder["schedulerName"] == user_pod["scheduler_name"] == "user-scheduler"
    user_pods = priority[user_pod["priority_class_name"]]
    assert priority[placeholder["priorityClassName"]] < user_pods < priority["hub-core"]
    assert min(priority.values()) == priority[placeholder["priorityClassName"]]


def test_production_keeps_one_warm_user_slot(render_variant):
    placeholders = find(render_variant("production"), "StatefulSet", "user-placeholder")
    assert placeholders["spec"]["replicas"] == 1


# --- configuration -----------------------------------------------------------------


@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_secrets_reach_the_hub_as_files_only(render_variant, variant):
    objs = render_variant(variant)
    config = find(objs, "ConfigMap", "hub-config")["data"]
    assert not {"HUB_SECRET_KEY", "HUB_ROUTER_TOKEN", "HUB_DATABASE_URL"} & set(config)
    for name in ("hub", "worker", "beat"):
        workload = find(objs, "Deployment", name)
        variables = env(container(workload, name))
        c = container(workload, name)
        mounts = [m["mountPath"] for m in c["volumeMounts"]]
        for secret in ("HUB_SECRET_KEY_FILE", "HUB_DATABASE_URL_FILE"):
            assert any(variables[secret].startswith(m + "/") for m in mounts), (name, secret)


def test_the_configmap_sets_only_variables_the_code_reads(render_variant):
    code = (kustomize.ROOT / "hubsite" / "settings.py").read_text()
    code += "".join(p.read_text() for p in (kustomize.ROOT / "routing" / "router").glob("*.py"))
    config = find(render_variant("production"), "ConfigMap", "hub-config")["data"]
    unread = [key for key in config if f'"{key}"' not in code]
    assert unread == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_namespace_refuses_privileged_pods(render_variant, overlay):
    objs = render_variant(overlay)
    (namespace,) = of_kind(objs, "Namespace")
    assert {o["metadata"].get("namespace") for o in objs if o["kind"] == "Deployment"} == {
        namespace["metadata"]["name"]
    }
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"


def test_assert_valid_raises_with_every_problem():
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"x": 1}}
    with pytest.raises(AssertionError, match=r"pod/p: spec: Additional properties"):
        k8s_schema.assert_valid(pod)
    k8s_schema.assert_valid({**pod, "spec": {"containers": [{"name": "c", "image": "i"}]}})
