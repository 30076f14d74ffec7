"""The last good route table on disk, for a worker that starts while the hub is down.

Workers of one router write the table they synced to one file (atomically:
a temporary file renamed over it, so a reader sees a whole table or the
previous one), and a new worker that cannot reach the hub starts from it
instead of sending every user to the dead hub. The file is named after the
public port, so routers on other ports of one machine keep their own."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

FORMAT = 1


class Snapshot:
    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory
        self.path = directory / f"routes-{port}.json"

    def save(self, version: str, routes: dict[str, dict[str, Any]]) -> None:
        """Replace the file with this table (OSError when the directory is unusable)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"format": FORMAT, "version": version, "routes": routes})
        fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".routes-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as out:
                out.write(body)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, 0o600)  # targets are internal addresses
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def load(self) -> tuple[str, dict[str, dict[str, Any]]] | None:
        """(version, routes), or None when there is no usable snapshot."""
        try:
            body = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            return None
        routes, version = body.get("routes"), body.get("version")
        if not isinstance(routes, dict) or not isinstance(version, str):
            return None
        return version, routes
