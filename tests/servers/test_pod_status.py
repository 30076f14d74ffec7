"""What a pod's status means for the server, in words its user reads."""

from __future__ import annotations

import pytest

from servers.spawners.pod_status import event_message, failure, is_running, waiting_reason


def pod(phase="Pending", state=None, last=None, ip="", **status):
    containers = []
    if state is not None:
        containers = [{"name": "notebook", "state": state, "lastState": last or {}}]
    return {
        "metadata": {"name": "jupyter-alice"},
        "status": {"phase": phase, "podIP": ip, "containerStatuses": containers, **status},
    }


UNSCHEDULABLE = pod(
    conditions=[
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
        }
    ]
)


@pytest.mark.parametrize(
    ("the_pod", "running", "reason"),
    [
        (pod(), False, None),
        (UNSCHEDULABLE, False, None),
        (pod("Pending", {"waiting": {"reason": "ContainerCreating"}}), False, None),
        (pod("Running", {"running": {}}, ip="127.1.0.5"), True, None),
        (pod("Running", {"running": {}}), False, None),
        (
            pod("Pending", {"waiting": {"reason": "ErrImagePull", "message": "not found"}}),
            False,
            "ErrImagePull: the image could not be pulled (not found)",
        ),
        (
            pod("Pending", {"waiting": {"reason": "ImagePullBackOff"}}),
            False,
            "ImagePullBackOff: the image could not be pulled",
        ),
        (
            pod(
                "Running",
                {"waiting": {"reason": "CrashLoopBackOff"}},
                {"terminated": {"reason": "Error", "exitCode": 1}},
            ),
            False,
            "Error (exit code 1); the server was restarting in a loop (CrashLoopBackOff)",
        ),
        (
            pod("Running", {"terminated": {"reason": "OOMKilled", "exitCode": 137}}),
            False,
            "OOMKilled: the server ran out of memory (exit code 137)",
        ),
        (
            pod(
                "Failed",
                reason="Evicted",
                message="The node was low on resource: memory.",
            ),
            False,
            "Evicted: The node was low on resource: memory.",
        ),
        (pod("Succeeded"), False, "the pod succeeded: the server exited"),
        (
            {
                **pod("Running", {"running": {}}, ip="127.1.0.5"),
                "metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"},
            },
            False,
            "the server's pod is being deleted",
        ),
    ],
)
def test_pod_status_reads_as(the_pod, running, reason):
    assert is_running(the_pod) is running
    assert failure(the_pod) == reason


def test_container_restarted_after_oom_reads_as_oom_even_while_running_again():
    restarted = pod(
        "Running",
        {"running": {}},
        {"terminated": {"reason": "OOMKilled", "exitCode": 137}},
        ip="127.1.0.5",
    )
    restarted["status"]["containerStatuses"][0]["restartCount"] = 1
    assert failure(restarted) == (
        "OOMKilled: the server ran out of memory (exit code 137); the server was restarted"
    )
    assert failure(restarted, allowed_restarts=1) is None


def test_unschedulable_pod_waits_with_the_schedulers_message():
    assert waiting_reason(UNSCHEDULABLE, []) == (
        "Unschedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    )


def test_waiting_reason_falls_back_to_the_last_warning():
    events = [
        {"type": "Normal", "reason": "Scheduled", "message": "assigned"},
        {"type": "Warning", "reason": "FailedMount", "message": "no such volume"},
    ]
    assert waiting_reason(pod(), events) == "[Warning] FailedMount: no such volume"
    assert waiting_reason(None, []) == ""


def test_event_reads_like_kubespawners_progress_line():
    event = {"type": "Normal", "reason": "Pulling", "message": 'Pulling image "lab:1"'}
    assert event_message(event) == '[Normal] Pulling: Pulling image "lab:1"'
