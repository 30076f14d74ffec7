"""Pure: what a user server's pod says about the server, in words for its user.

Input is the pod as the API sends it (JSON, camelCase) and the pod's events.
A pod is *running* once its notebook container runs and it has an IP; it has
*failed* for good when the kubelet gave up on it (evicted, OOM-killed,
crash-looping, an image that cannot be pulled, a container that cannot be
created) or it is being deleted; an unschedulable pod is only *waiting*
(a node may still come: the cluster autoscaler), and the scheduler's message
becomes the failure when the start times out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from servers.spawners.manifests import CONTAINER

# waiting reasons after which the kubelet will not succeed without a change
_HOPELESS = {
    "ErrImagePull": "the image could not be pulled",
    "ImagePullBackOff": "the image could not be pulled",
    "InvalidImageName": "the image name is invalid",
    "ErrImageNeverPull": "the image is not on the node and may not be pulled",
    "CreateContainerConfigError": "the container's configuration is invalid",
    "CreateContainerError": "the container could not be created",
    "RunContainerError": "the container could not be started",
}


def _notebook(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    return next((c for c in statuses if c.get("name") == CONTAINER), {})


def pod_ip(pod: Mapping[str, Any]) -> str:
    return pod.get("status", {}).get("podIP") or ""


def is_running(pod: Mapping[str, Any]) -> bool:
    """The notebook container runs and the pod can be reached."""
    status = pod.get("status", {})
    return (
        status.get("phase") == "Running"
        and "running" in (_notebook(pod).get("state") or {})
        and bool(pod_ip(pod))
        and not pod.get("metadata", {}).get("deletionTimestamp")
    )


def _terminated(info: Mapping[str, Any]) -> str:
    reason = info.get("reason") or "Error"
    code = info.get("exitCode")
    text = "OOMKilled: the server ran out of memory" if reason == "OOMKilled" else reason
    if code is not None:
        text += f" (exit code {code})"
    message = (info.get("message") or "").strip()
    return f"{text}: {message}" if message else text


def restarts(pod: Mapping[str, Any]) -> int:
    return int(_notebook(pod).get("restartCount") or 0)


def failure(pod: Mapping[str, Any], *, allowed_restarts: int = 0) -> str | None:
    """Why the server in POD has stopped for good, or None while it runs or
    may still start. A notebook container restarted more than ALLOWED_RESTARTS
    times counts as stopped even when it runs again: the server lost its
    kernels, and its user should learn why (the last exit's reason)."""
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return "the server's pod is being deleted"
    status = pod.get("status", {})
    phase = status.get("phase")
    state = _notebook(pod).get("state") or {}
    last = _notebook(pod).get("lastState") or {}
    if phase == "Failed" and status.get("reason") == "Evicted":
        return f"Evicted: {status.get('message') or 'the node ran short of resources'}"
    if "terminated" in state:
        return _terminated(state["terminated"])
    waiting = state.get("waiting") or {}
    reason = waiting.get("reason", "")
    if (reason == "CrashLoopBackOff" or restarts(pod) > allowed_restarts) and "terminated" in last:
        looping = "restarting in a loop (CrashLoopBackOff)" if reason else "restarted"
        return f"{_terminated(last['terminated'])}; the server was {looping}"
    if reason == "CrashLoopBackOff":
        return "CrashLoopBackOff: the server keeps crashing"
    if reason in _HOPELESS:
        message = (waiting.get("message") or "").strip()
        return f"{reason}: {_HOPELESS[reason]}" + (f" ({message})" if message else "")
    if phase in ("Failed", "Succeeded"):
        detail = status.get("message") or status.get("reason") or "the server exited"
        return f"the pod {phase.lower()}: {detail}"
    return None


def waiting_reason(pod: Mapping[str, Any] | None, events: Iterable[Mapping[str, Any]]) -> str:
    """What a pod that is still not running waits for, for the timeout message:
    the scheduler's verdict if it cannot be placed, else the last warning."""
    if pod is not None:
        for condition in pod.get("status", {}).get("conditions") or []:
            if (
                condition.get("type") == "PodScheduled"
                and condition.get("status") == "False"
                and condition.get("message")
            ):
                return f"{condition.get('reason') or 'Unschedulable'}: {condition['message']}"
    warnings = [e for e in events if e.get("type") == "Warning"]
    if warnings:
        return event_message(warnings[-1])
    return ""


def event_message(event: Mapping[str, Any]) -> str:
    """One Kubernetes event as a progress line (KubeSpawner's `[type] message`)."""
    text = (event.get("message") or "").strip()
    return f"[{event.get('type') or 'Normal'}] {event.get('reason') or ''}: {text}".strip()
