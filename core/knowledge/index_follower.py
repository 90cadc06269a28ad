"""Every worker serves the index Redis names live: polled in the background, swapped in whole."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from core.errors import IndexUnusable, SharedIndexError
from core.knowledge import shared_index

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from core.knowledge.retrieval import Retriever
    from core.settings import Settings

log = logging.getLogger(__name__)


class IndexFollower:
    """Keeps `retriever` on the version published in Redis (see core/knowledge/shared_index.py).

    The local version folder is the cache: a version already on disk is only loaded. Searches
    go on with the index in hand while a new one downloads and loads; a failed download is
    logged once and tried again at the next poll, a version that cannot be loaded is not.
    """

    def __init__(self, redis: Redis, settings: Settings, retriever: Retriever) -> None:
        self._redis = redis
        self._settings = settings
        self._retriever = retriever
        self._task: asyncio.Task[None] | None = None
        self._unusable: str | None = None  # a version that downloaded but cannot be searched
        self._problem = ""  # the last failure logged, so a retry that fails alike stays quiet

    async def sync(self) -> bool:
        """Switch to the live version if it is not the one searched; True when it did.

        With nothing published, the local index stays. Never raises for Redis, disk or
        download failures: they leave the index in hand.
        """
        version: str | None = None
        try:
            version = await shared_index.live(self._redis, self._settings)
            if version is None or version in {self._retriever.version, self._unusable}:
                return False
            folder = self._settings.index_dir / version
            if not folder.is_dir():  # a version folder exists only once complete
                found = await shared_index.manifest(self._redis, self._settings, version)
                if found.embeddings != self._retriever.embeddings_name:
                    self._unusable = version
                    raise IndexUnusable(
                        f"it was built with {found.embeddings} but the configured embeddings "
                        f"are {self._retriever.embeddings_name}"
                    )
                await shared_index.download(self._redis, self._settings, found)
            try:
                await asyncio.to_thread(self._retriever.switch, version)
            except IndexUnusable:
                self._unusable = version
                raise
        except (SharedIndexError, IndexUnusable, RedisError, OSError) as exc:
            self._report(version, exc)
            return False
        self._problem = ""
        log.info("now answering from the shared index %s", version)
        return True

    def _report(self, version: str | None, exc: Exception) -> None:
        problem = f"{type(exc).__name__}: {exc}"
        if problem == self._problem:
            return
        self._problem = problem
        after = (
            "not tried again until another is published"
            if version is not None and version == self._unusable
            else f"trying again in {self._settings.index_poll_s:g} s"
        )
        log.warning(
            "cannot use the shared index %s (%s); still answering from %s, %s",
            version or "in Redis", exc, self._retriever.version or "no index", after,
        )  # fmt: skip

    def start(self) -> None:
        """Poll every `INDEX_POLL_S` seconds in the background until `aclose`."""
        self._task = asyncio.create_task(self._poll(), name="index-follower")

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._settings.index_poll_s)
            await self.sync()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


async def follow_once(settings: Settings, retriever: Retriever) -> None:
    """Put `retriever` on the index the bots serve (`threadbot search` on a worker's machine):
    the version published in Redis, fetched if it is not here."""
    from core.store.redis_client import connect

    redis = connect(settings)
    try:
        await IndexFollower(redis, settings, retriever).sync()
    finally:
        await redis.aclose()
