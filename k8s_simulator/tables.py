"""meta.k8s.io/v1 Table responses, which kubectl asks for (`Accept: ...;as=Table`), so
`kubectl get` prints the usual columns."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

Obj = dict[str, Any]


def _age(obj: Obj) -> str:
    created = obj["metadata"].get("creationTimestamp")
    if not created:
        return "<unknown>"
    seconds = int(
        (datetime.now(UTC) - datetime.fromisoformat(created.replace("Z", "+00:00"))).total_seconds()
    )
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * 2:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def _pod_status(pod: Obj) -> str:
    if pod["metadata"].get("deletionTimestamp"):
        return "Terminating"
    status = pod.get("status", {})
    for container in status.get("containerStatuses") or []:
        state = container.get("state", {})
        if "waiting" in state and state["waiting"].get("reason"):
            return state["waiting"]["reason"]
        if "terminated" in state and status.get("phase") == "Running":
            return state["terminated"].get("reason", "Error")
    return status.get("reason") or status.get("phase", "Pending")


def _pod_row(pod: Obj) -> list[Any]:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    ready = sum(1 for s in statuses if s.get("ready"))
    return [
        pod["metadata"]["name"],
        f"{ready}/{len(pod['spec'].get('containers', []))}",
        _pod_status(pod),
        sum(s.get("restartCount", 0) for s in statuses),
        _age(pod),
        pod.get("status", {}).get("podIP", "<none>"),
        pod["spec"].get("nodeName", "<none>"),
    ]


COLUMNS: dict[str, list[tuple[str, int]]] = {
    "pods": [
        ("Name", 0),
        ("Ready", 0),
        ("Status", 0),
        ("Restarts", 0),
        ("Age", 0),
        ("IP", 1),
        ("Node", 1),
    ],
    "nodes": [("Name", 0), ("Status", 0), ("Age", 0), ("Internal-IP", 1)],
    "persistentvolumeclaims": [
        ("Name", 0),
        ("Status", 0),
        ("Volume", 0),
        ("Capacity", 0),
        ("Age", 0),
    ],
    "events": [("Last Seen", 0), ("Type", 0), ("Reason", 0), ("Object", 0), ("Message", 0)],
}
ROWS = {
    "pods": _pod_row,
    "nodes": lambda n: [
        n["metadata"]["name"],
        "Ready",
        _age(n),
        n["status"]["addresses"][0]["address"],
    ],
    "persistentvolumeclaims": lambda c: [
        c["metadata"]["name"],
        c.get("status", {}).get("phase", ""),
        c["spec"].get("volumeName", ""),
        c.get("status", {}).get("capacity", {}).get("storage", ""),
        _age(c),
    ],
    "events": lambda e: [
        _age(e),
        e.get("type", ""),
        e.get("reason", ""),
        f"{e['involvedObject'].get('kind', '').lower()}/{e['involvedObject'].get('name', '')}",
        e.get("message", ""),
    ],
}


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def build_table(plural: str, items: list[Obj], resource_version: str) -> Obj:
    columns = COLUMNS.get(plural, [("Name", 0), ("Age", 0)])
    row = ROWS.get(plural, lambda o: [o["metadata"]["name"], _age(o)])
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": [
            {
                "name": name,
                "type": "string",
                "format": "name" if name == "Name" else "",
                "description": "",
                "priority": priority,
            }
            for name, priority in columns
        ],
        "rows": [
            {
                "cells": row(obj),
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": obj["metadata"],
                },
            }
            for obj in items
        ],
    }
