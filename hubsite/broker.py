"""The embedded Celery broker: kombu's filesystem transport, publishing atomically.

kombu's filesystem transport creates a message file in the queue folder and
only then writes into it. A worker that lists the folder in between takes the
still-empty file, fails to decode it and stops with "Unrecoverable error:
JSONDecodeError" (celery/kombu#1551); `make run` then loses its worker. It
happened every time bench/spawn.py started 10 servers at once. Here a message
is written under a name the consumer ignores and renamed into place, which is
atomic on POSIX, so a reader sees either nothing or the whole message.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        """Put a message on QUEUE: write a hidden file, then rename it in."""
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        # consumers take only "<stamp>_<uuid>.<queue>.msg"; a leading dot is never that
        partial = os.path.join(self.data_folder_out, f".{name}.part")
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel

    @property
    def default_connection_params(self) -> dict[str, Any]:
        """A folder has no host. kombu's default ("localhost") made it log "No
        hostname was supplied. Reverting to default 'localhost'" at every
        connection the hub and the workers opened to a `filesystem://` URL."""
        return {"port": self.default_port, "hostname": ""}
