"""Fault injection for tests: make a pod fail the way a real cluster would make it fail.

Two ways in, both documented in README.md: the pod annotation `simulator.hub/fault: NAME`, and
rules POSTed to /simulator/faults that match pods by image glob, labels and namespace. The
fault is decided once per pod, when the scheduler first sees it."""

from __future__ import annotations

import fnmatch
import itertools
import threading
from typing import Any

from .errors import ApiError

ANNOTATION = "simulator.hub/fault"
FAULTS = (
    "Unschedulable",
    "ErrImagePull",
    "ImagePullBackOff",
    "OOMKilled",
    "Evicted",
    "CrashLoopBackOff",
)


def _invalid(message: str) -> ApiError:
    return ApiError(422, "Invalid", message)


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._decided: dict[str, str | None] = {}

    def add(self, spec: Any) -> dict[str, Any]:
        if not isinstance(spec, dict):
            raise _invalid("a fault rule must be a JSON object")
        unknown = set(spec) - {"fault", "image", "labels", "namespace", "times"}
        if unknown:
            raise _invalid(f"unknown fault rule fields: {sorted(unknown)}")
        if spec.get("fault") not in FAULTS:
            raise _invalid(f"fault must be one of {', '.join(FAULTS)}; got {spec.get('fault')!r}")
        labels = spec.get("labels") or {}
        if not isinstance(labels, dict):
            raise _invalid("labels must be an object of label -> value")
        times = spec.get("times")
        if times is not None and (not isinstance(times, int) or times < 1):
            raise _invalid("times must be a positive integer")
        with self._lock:
            rule = {
                "id": next(self._ids),
                "fault": spec["fault"],
                "image": spec.get("image"),
                "labels": labels,
                "namespace": spec.get("namespace"),
                "times": times,
            }
            self._rules.append(rule)
            return dict(rule)

    def rules(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(rule) for rule in self._rules]

    def remove(self, rule_id: int | None = None) -> None:
        with self._lock:
            self._rules = [r for r in self._rules if rule_id is not None and r["id"] != rule_id]

    def fault_for(self, pod: dict[str, Any]) -> str | None:
        """The pod's fault (annotation first, then the first matching rule), decided once."""
        uid = pod["metadata"]["uid"]
        with self._lock:
            if uid not in self._decided:
                self._decided[uid] = self._decide(pod)
            return self._decided[uid]

    def _decide(self, pod: dict[str, Any]) -> str | None:
        annotated = (pod["metadata"].get("annotations") or {}).get(ANNOTATION)
        if annotated:
            return annotated
        labels = pod["metadata"].get("labels") or {}
        images = [c.get("image", "") for c in pod["spec"].get("containers", [])]
        for rule in self._rules:
            if rule["namespace"] and rule["namespace"] != pod["metadata"]["namespace"]:
                continue
            if any(labels.get(k) != v for k, v in rule["labels"].items()):
                continue
            if rule["image"] and not any(fnmatch.fnmatchcase(i, rule["image"]) for i in images):
                continue
            if rule["times"] is not None:
                rule["times"] -= 1
                if rule["times"] == 0:
                    self._rules.remove(rule)
            return rule["fault"]
        return None
