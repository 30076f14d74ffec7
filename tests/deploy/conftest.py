"""Rendered k8s/ variants, each rendered once per test session."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy import kustomize

OVERLAYS = ["dev", "production"]
ALL_VARIANTS = OVERLAYS + list(kustomize.VARIANTS)
PRODUCTION_VARIANTS = [v for v in ALL_VARIANTS if v.startswith("production")]


@pytest.fixture(scope="session")
def render_variant(tmp_path_factory: pytest.TempPathFactory):
    cache: dict[str, list[dict[str, Any]]] = {}

    def render(name: str) -> list[dict[str, Any]]:
        if name not in cache:
            if name in OVERLAYS:
                cache[name] = kustomize.render(kustomize.OVERLAYS / name)
            else:
                directory = kustomize.write_variant(name, tmp_path_factory.mktemp(name))
                cache[name] = kustomize.render(directory, unrestricted=True)
        return cache[name]

    return render
