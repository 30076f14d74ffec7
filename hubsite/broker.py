"""The embedded Celery broker: kombu's filesystem transport, publishing
atomically and keeping a message until it is acknowledged.

Publishing. kombu's filesystem transport creates a message file in the queue
folder and only then writes into it. A worker that lists the folder in
between takes the still-empty file, fails to decode it and stops with
"Unrecoverable error: JSONDecodeError" (celery/kombu#1551); `make run` then
loses its worker. It happened every time bench/spawn.py started 10 servers at
once. Here a message is written under a name the consumer ignores and renamed
into place, which is atomic on POSIX, so a reader sees either nothing or the
whole message.

Acknowledgement. kombu's transport deletes a message file the moment a
worker takes it, so `acks_late` does nothing: a worker killed 30 ms into a
spawn lost the task, and the server stayed pending until reconcile failed it
minutes later. Here taking a message renames it into `unacked/` under the
taker's identity (host, pid and process start time); the ack deletes it, a
reject or a warm shutdown puts it back. Every consumer, while polling, looks
(at most once a second) for claims whose taker is dead (same host, pid gone or
reused) or older than `visibility_timeout` (another host's worker, hung), and
renames them back into the queue: a task taken by a killed worker runs again
within about a second on the surviving or restarted worker, like Redis's
visibility timeout but without waiting an hour for it. Queues consumed with
`no_ack` (Celery's control messages) are still deleted on take.

Waiting. kombu's transport looks at the folder every `polling_interval`: at
50 ms that was ~14 ms of CPU a second in an idle worker, and half an interval
added to every spawn. Here an idle consumer sleeps on an inotify watch of the
folder (routing/router/inotify.py) and takes a message the moment it is
renamed in; it still looks at least every SCAN_EVERY, for abandoned claims.
Without inotify it polls as kombu does.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import uuid
from time import monotonic, sleep, time, time_ns
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

from hubsite.processes import identity, identity_alive
from routing.router.inotify import FolderWatch

log = logging.getLogger(__name__)

SCAN_EVERY = 1.0  # seconds between looks for claims of dead consumers

_last_stamp = 0
_stamp_lock = threading.Lock()


def _stamp() -> int:
    """A message's place in its queue: consumers take files in name order. Wall
    clock nanoseconds, so messages left over a restart or a reboot keep their
    order, and strictly increasing within a process, so two messages published
    in the same instant are still taken in the order they were put (names were
    milliseconds, unpadded: such pairs came out in random order, and at a
    power of ten of the clock a shorter stamp sorted first)."""
    global _last_stamp
    with _stamp_lock:
        _last_stamp = max(time_ns(), _last_stamp + 1)
        return _last_stamp


class Channel(filesystem.Channel):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._claims: dict[str, str] = {}  # delivery tag -> claimed file
        self._noack: set[str] = set()
        self._next_scan = 0.0

    @property
    def unacked_folder(self) -> str:
        folder = self.transport_options.get("unacked_folder") or os.path.join(
            self.data_folder_in, "..", "unacked"
        )
        os.makedirs(folder, exist_ok=True)
        return folder

    @property
    def visibility_timeout(self) -> float:
        return float(self.transport_options.get("visibility_timeout", 3600))

    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        """Put a message on QUEUE: write a hidden file, then rename it in."""
        name = f"{_stamp():020d}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        # consumers take only "<stamp>_<uuid>.<queue>.msg"; a leading dot is never that
        partial = os.path.join(self.data_folder_out, f".{name}.part")
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc

    def basic_consume(self, queue: str, no_ack: bool, *args: Any, **kwargs: Any) -> Any:
        if no_ack:
            self._noack.add(queue)
        return super().basic_consume(queue, no_ack, *args, **kwargs)

    def basic_get(self, queue: str, no_ack: bool = False, **kwargs: Any) -> Any:
        if no_ack:
            self._noack.add(queue)
        return super().basic_get(queue, no_ack, **kwargs)

    def _get(self, queue: str) -> Any:
        """Take the oldest message of QUEUE, claimed in unacked/ until acked."""
        if queue in self._noack:
            return super()._get(queue)
        self._redeliver_abandoned()
        wanted = f"{queue}.msg"
        unacked = self.unacked_folder
        owner = identity()
        for filename in sorted(os.listdir(self.data_folder_in)):
            if filename.partition(".")[2] != wanted:
                continue
            claimed = os.path.join(unacked, f"{owner}@{filename}")
            try:
                os.rename(os.path.join(self.data_folder_in, filename), claimed)
            except OSError:
                continue  # another consumer took it
            os.utime(claimed)  # the claim's age, for visibility_timeout
            try:
                with open(claimed, "rb") as f:
                    payload = loads(bytes_to_str(f.read()))
            except (OSError, ValueError) as exc:
                raise ChannelError(f"Cannot read file {claimed!r} from queue.") from exc
            tag = payload.get("properties", {}).get("delivery_tag")
            if tag is None:
                os.remove(claimed)  # nothing could ever ack it
            else:
                self._claims[tag] = claimed
            return payload
        raise filesystem.Empty()

    def _release(self, delivery_tag: str) -> None:
        claimed = self._claims.pop(delivery_tag, None)
        if claimed:
            with contextlib.suppress(FileNotFoundError):
                os.remove(claimed)

    def basic_ack(self, delivery_tag: str, multiple: bool = False) -> None:
        super().basic_ack(delivery_tag, multiple)
        self._release(delivery_tag)

    def basic_reject(self, delivery_tag: str, requeue: bool = False) -> None:
        super().basic_reject(delivery_tag, requeue=requeue)  # requeue: put back first
        self._release(delivery_tag)

    def _restore(self, message: Any) -> None:
        super()._restore(message)  # warm shutdown or recover: back on its queue
        self._release(message.delivery_tag)

    def _redeliver_abandoned(self) -> None:
        now = monotonic()
        if now < self._next_scan:
            return
        self._next_scan = now + SCAN_EVERY
        unacked = self.unacked_folder
        for name in os.listdir(unacked):
            host, pid, started, original = [*name.split("@", 3), "", "", ""][:4]
            if not original:
                continue
            alive = identity_alive(f"{host}@{pid}@{started}")
            path = os.path.join(unacked, name)
            if alive is None or alive:
                try:
                    age = time() - os.stat(path).st_mtime
                except FileNotFoundError:
                    continue
                if age < self.visibility_timeout:
                    continue
            with contextlib.suppress(OSError):  # another consumer got there first
                os.rename(path, os.path.join(self.data_folder_in, original))


class Transport(filesystem.Transport):
    Channel = Channel

    _watch: FolderWatch | None = None
    _watch_failed = False

    def drain_events(self, connection: Any, timeout: float | None = None) -> None:
        """Deliver one message; between empty looks, wait for a file to be
        renamed into the queue folder (or SCAN_EVERY) instead of sleeping
        `polling_interval`."""
        watch = self._folder_watch()
        if watch is None:
            return super().drain_events(connection, timeout=timeout)
        began = monotonic()
        while True:
            try:
                self.cycle.get(self._deliver, timeout=timeout)
                return None
            except filesystem.Empty:
                pass
            waited = monotonic() - began
            if timeout is not None and waited >= timeout:
                raise TimeoutError()
            wait = SCAN_EVERY if timeout is None else min(SCAN_EVERY, timeout - waited)
            if self._prefetch_full():
                # a message may be waiting already: no file event will say when a
                # slot frees up, so look again soon, as kombu does
                wait = min(wait, self.polling_interval or SCAN_EVERY)
                sleep(wait)
            else:
                watch.wait(wait)

    def _prefetch_full(self) -> bool:
        """Some consumer may take no more messages until it acks one."""
        return any(c._consumers and not c.qos.can_consume() for c in self.channels)

    def _folder_watch(self) -> FolderWatch | None:
        """The watch on the queue folder, made before the first look (so
        nothing that arrives after that look is missed); None without inotify."""
        if self._watch is None and not self._watch_failed:
            folder = self.client.transport_options.get("data_folder_in", "data_in")
            try:
                self._watch = FolderWatch(folder)
            except OSError as exc:
                self._watch_failed = True
                log.info("polling %s every %s s: %s", folder, self.polling_interval, exc)
        return self._watch

    def close_connection(self, connection: Any) -> None:
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        super().close_connection(connection)

    @property
    def default_connection_params(self) -> dict[str, Any]:
        """A folder has no host. kombu's default ("localhost") made it log "No
        hostname was supplied. Reverting to default 'localhost'" at every
        connection the hub and the workers opened to a `filesystem://` URL."""
        return {"port": self.default_port, "hostname": ""}
