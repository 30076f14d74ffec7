"""Kubernetes names: DNS labels, stable, and never shared by two servers."""

from __future__ import annotations

import itertools
import re

import pytest

from servers import naming

DNS_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


@pytest.mark.parametrize(
    ("username", "server", "pod"),
    [
        ("alice", "", "jupyter-alice"),
        ("alice", "gpu", "jupyter-alice--gpu"),
        ("bob-2", "", "jupyter-bob-2"),
        ("john.doe", "", "jupyter-john-doe---" + "{h:john.doe}"),
        ("john_doe", "", "jupyter-john-doe---" + "{h:john_doe}"),
        ("a--b", "", "jupyter-a-b---" + "{h:a--b}"),
        ("alice", "my.lab", "jupyter-alice--my-lab---" + "{h:my.lab}"),
        ("x" * 26, "", "jupyter-" + "x" * 26),
        ("x" * 27, "", "jupyter-" + "x" * 15 + "---" + "{h:" + "x" * 27 + "}"),
        ("_", "", "jupyter-x---" + "{h:_}"),
    ],
)
def test_pod_name_keeps_plain_names_and_escapes_the_rest(username, server, pod):
    expected = re.sub(r"\{h:([^}]*)\}", lambda m: _hash(m.group(1)), pod)
    assert naming.pod_name(username, server) == expected


def _hash(raw: str) -> str:
    import hashlib

    return hashlib.sha256(raw.encode()).hexdigest()[:8]


@pytest.mark.parametrize(
    ("username", "pvc"),
    [("alice", "claim-alice"), ("john.doe", "claim-john-doe---" + _hash("john.doe"))],
)
def test_pvc_name_is_one_claim_per_user(username, pvc):
    assert naming.pvc_name(username) == pvc


USERS = ["a", "a-b", "a.b", "a_b", "a--b", "a---b", "a-b-c", "a.b.c", "ab", "a" * 63, "a" * 62]
SERVERS = ["", "b", "b-c", "b.c", "b--c", "c", "a-b", "x" * 63]


def test_no_two_users_or_servers_share_a_pod_name():
    names = {(u, s): naming.pod_name(u, s) for u, s in itertools.product(USERS, SERVERS)}
    assert len(set(names.values())) == len(names)


def test_no_two_users_share_a_claim():
    assert len({naming.pvc_name(u) for u in USERS}) == len(USERS)


@pytest.mark.parametrize(("username", "server"), list(itertools.product(USERS, SERVERS)))
def test_every_name_is_a_dns_label(username, server):
    assert DNS_LABEL.fullmatch(naming.pod_name(username, server))
    assert DNS_LABEL.fullmatch(naming.pvc_name(username))
    for value in naming.server_labels(username, server, instance="hub").values():
        assert value == "" or DNS_LABEL.fullmatch(value)


def test_names_are_stable_across_calls():
    assert naming.pod_name("john.doe", "lab.1") == naming.pod_name("john.doe", "lab.1")


def test_labels_select_the_instance_and_carry_slugs():
    labels = naming.server_labels("john.doe", "", instance="hub")
    assert labels[naming.LABEL_INSTANCE] == "hub"
    assert labels[naming.LABEL_USER] == naming.user_slug("john.doe")
    assert labels[naming.LABEL_SERVER] == ""
    selector = naming.instance_selector("hub")
    assert all(f"{k}={labels[k]}" in selector for k in (naming.LABEL_APP_COMPONENT,))
