"""Image -> local environment: what "pulling an image" means on one machine.

An image name (with or without tag) or a glob maps to a virtualenv-like directory whose
bin/ is put first on the container's PATH. `*` is the default for every image."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path


def normalize(image: str) -> str:
    """docker.io/library/python:latest style reference, as containerd names images."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" not in last and not digest:
        name += ":latest"
    first = name.split("/", 1)[0]
    if "/" not in name:
        name = f"docker.io/library/{name}"
    elif "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name}"
    return name + (f"@{digest}" if digest else "")


@dataclass(frozen=True)
class ImageMap:
    rules: tuple[tuple[str, Path], ...]  # (pattern, environment dir), first match wins

    @classmethod
    def parse(cls, specs: list[str], default: Path | None) -> ImageMap:
        rules = []
        for spec in specs:
            pattern, sep, venv = spec.partition("=")
            if not sep or not pattern or not venv:
                raise ValueError(f"--image-env {spec!r}: expected IMAGE=DIR (IMAGE may be a glob)")
            rules.append((pattern, Path(venv).resolve()))
        if default is not None:
            rules.append(("*", default.resolve()))
        return cls(tuple(rules))

    def resolve(self, image: str) -> Path | None:
        untagged = image.split("@")[0]
        last = untagged.rsplit("/", 1)[-1]
        if ":" in last:
            untagged = untagged[: -(len(last) - last.index(":"))]
        for pattern, venv in self.rules:
            if any(fnmatch.fnmatchcase(n, pattern) for n in (image, untagged)):
                return venv
        return None
