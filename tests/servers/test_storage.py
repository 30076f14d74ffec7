"""A user's storage keeps its name across a rename (KubeSpawner's
remember_pvc_name), for the local home directory and the Kubernetes claim."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from accounts import services as accounts
from servers import services
from servers.services.storage import storage_name
from servers.spawners.manifests import build_pvc, resolve
from tests.factories import ServerFactory, UserFactory

pytestmark = pytest.mark.django_db
BASE = {"image": "quay.io/jupyter/base-notebook:2025-01-01"}


def spec_of(user):
    server = user.servers.first() or ServerFactory(user=user)
    server.refresh_from_db()
    return services.build_spec(server, "token")


def test_storage_is_named_after_the_username_at_the_first_start():
    alice = UserFactory(username="alice")
    assert alice.storage_name == ""
    spec = spec_of(alice)
    alice.refresh_from_db()
    assert alice.storage_name == spec.storage_name == "alice"
    assert spec.home == Path(settings.HUB_HOMES_DIR) / "alice"


def test_a_renamed_user_keeps_their_home_and_claim():
    alice = UserFactory(username="alice")
    spec_of(alice)
    accounts.rename_user(alice, "alice-smith")
    spec = spec_of(alice)
    assert spec.username == "alice-smith"
    assert spec.home == Path(settings.HUB_HOMES_DIR) / "alice"
    pod = resolve(spec, BASE, namespace="jhub", instance="hub")
    assert build_pvc(pod)["metadata"]["name"] == "claim-alice"


def test_a_new_user_taking_a_renamed_users_old_name_gets_storage_of_their_own():
    first = UserFactory(username="alice")
    spec_of(first)
    accounts.rename_user(first, "alice-old")
    second = UserFactory(username="alice")
    spec = spec_of(second)
    assert spec.home == Path(settings.HUB_HOMES_DIR) / "alice-2"
    pod = resolve(spec, BASE, namespace="jhub", instance="hub")
    assert build_pvc(pod)["metadata"]["name"] == "claim-alice-2"


def test_the_storage_name_is_assigned_once():
    alice = UserFactory(username="alice")
    assert storage_name(alice) == "alice"
    alice.username = "renamed"
    alice.save()
    assert storage_name(alice) == "alice"
