"""`manage.py import_profiles`: Z2JH's documented profileList becomes
profiles whose pods carry the same settings KubeSpawner would give them."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from servers import services
from servers.models import Profile
from servers.options import OptionsError
from servers.spawners.manifests import build_pod, resolve
from tests.k8s_schema import assert_valid

EXAMPLE = Path(__file__).parent / "data" / "z2jh_profile_list.yaml"
# singleuser.image of the example: the hub's HUB_K8S_IMAGE (the command says so)
BASE = {"image": "jupyter/minimal-notebook:2343e33dec46"}

pytestmark = pytest.mark.django_db


def run(path: Path) -> str:
    out = StringIO()
    call_command("import_profiles", str(path), stdout=out)
    return out.getvalue()


def pod_of(user, slug: str, **options: str) -> dict:
    server = services.get_or_create_server(user, "")
    server.profile = Profile.objects.get(slug=slug)
    server.user_options = {"profile": slug, **options}
    settings = resolve(services.build_spec(server, "tok"), BASE, namespace="jhub", instance="hub")
    pod = build_pod(settings)
    assert_valid(pod)
    return pod


def notebook(pod: dict) -> dict:
    return pod["spec"]["containers"][0]


def env(pod: dict) -> dict:
    return {e["name"]: e.get("value") for e in notebook(pod)["env"]}


def test_example_imports_every_profile_and_names_the_hub_setting():
    output = run(EXAMPLE)
    assert list(Profile.objects.values_list("slug", "default")) == [
        ("minimal-environment", True),
        ("datascience-environment", False),
        ("spark-environment", False),
        ("learning-data-science", False),
        ("gpu-server", False),
        ("demo-1", False),
        ("demo-2", False),
    ]
    assert "created profile demo-1" in output
    assert "set HUB_K8S_IMAGE=jupyter/minimal-notebook:2343e33dec46" in output


@pytest.mark.parametrize(
    ("slug", "image"),
    [
        ("minimal-environment", "jupyter/minimal-notebook:2343e33dec46"),
        ("datascience-environment", "jupyter/datascience-notebook:2343e33dec46"),
        ("spark-environment", "jupyter/all-spark-notebook:2343e33dec46"),
        ("learning-data-science", "jupyter/datascience-notebook:2343e33dec46"),
    ],
)
def test_each_profile_runs_its_image(alice, slug, image):
    run(EXAMPLE)
    pod = pod_of(alice, slug)
    assert notebook(pod)["image"] == image
    assert env(pod)["JUPYTER_IMAGE_SPEC"] == image


def test_lifecycle_hook_reaches_the_container(alice):
    run(EXAMPLE)
    hook = notebook(pod_of(alice, "learning-data-science"))["lifecycle"]
    assert hook == {
        "postStart": {
            "exec": {
                "command": [
                    "sh",
                    "-c",
                    "gitpuller https://github.com/data-8/materials-fa17 master materials-fa;\n",
                ]
            }
        }
    }


def test_gpu_limits_and_guarantees_reach_the_container(alice):
    run(EXAMPLE)
    assert notebook(pod_of(alice, "gpu-server"))["resources"] == {"limits": {"nvidia.com/gpu": "1"}}
    assert notebook(pod_of(alice, "demo-2"))["resources"] == {"requests": {"nvidia.com/gpu": "1"}}


@pytest.mark.parametrize(
    ("options", "image"),
    [
        ({}, "jupyter/minimal-notebook:latest"),
        ({"image": "base"}, "jupyter/base-notebook:latest"),
        ({"image--unlisted-choice": "jupyter/scipy-notebook:2025"}, "jupyter/scipy-notebook:2025"),
    ],
)
def test_profile_options_pick_the_image(alice, options, image):
    run(EXAMPLE)
    pod = pod_of(alice, "demo-1", **options)
    assert notebook(pod)["image"] == image
    assert env(pod)["JUPYTERHUB_DEFAULT_URL"] == "/lab"


def test_unlisted_image_outside_the_regex_is_refused_with_its_message(alice):
    run(EXAMPLE)
    with pytest.raises(OptionsError, match=r"Must be an image matching"):
        pod_of(alice, "demo-1", **{"image--unlisted-choice": "evil/miner:1"})


def test_importing_again_updates_instead_of_duplicating():
    run(EXAMPLE)
    output = run(EXAMPLE)
    assert Profile.objects.count() == 7
    assert "updated profile gpu-server" in output


def test_allowed_groups_limit_who_may_pick_the_profile(tmp_path, alice, carol):
    path = tmp_path / "groups.yaml"
    path.write_text(
        "- display_name: GPU\n  allowed_groups: [team]\n"
        "  kubespawner_override: {extra_resource_limits: {nvidia.com/gpu: '1'}}\n"
    )
    run(path)
    assert [p.slug for p in services.allowed_profiles(alice)] == ["gpu"]
    assert list(services.allowed_profiles(carol)) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("singleuser: {}\n", "no singleuser.profileList"),
        ("- description: nameless\n", "display_name is required"),
        (
            "- display_name: A\n  kubespawner_override: {imgae: x}\n",
            "kubespawner_override has settings this hub does not know: imgae",
        ),
        ("- display_name: A\n  colour: red\n", r"unknown key\(s\) colour"),
        ("- display_name: A\n- display_name: A\n", "two profiles share the slug a"),
        ("- display_name: A\n  allowed_groups: [Bad Group]\n", "allowed_groups must be"),
        ("- {display_name: A, default: true}\n- {display_name: B, default: true}\n", "default"),
        ("[unclosed\n", "not valid YAML"),
    ],
)
def test_bad_file_is_a_clear_error_and_imports_nothing(tmp_path, text, message):
    path = tmp_path / "profiles.yaml"
    path.write_text(
        "- display_name: Fine\n" + text if text.startswith("- display_name: A\n  ") else text
    )
    with pytest.raises(CommandError, match=message):
        run(path)
    assert Profile.objects.count() == 0


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match="cannot read"):
        run(tmp_path / "nope.yaml")
