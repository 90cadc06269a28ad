"""Knowledge kept fresh on a schedule, by whichever worker gets there first: each source is
refreshed once per period across every process sharing the store, never by two at once.

A worker holds the source's lease (`{ns}refresh:{source}`, renewed while it works, lost on a
crash) and, under it, reads when the source was last refreshed (`{ns}refreshed:{source}`, a
unix time): a worker that finds it done within the period leaves it. So two workers started
together refresh it once, and a worker that crashed mid-refresh is replaced within a lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.errors import ThreadbotError
from core.store.base import text
from core.store.lease import Lease

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from core.settings import Settings

log = logging.getLogger(__name__)

CHECK_S = 60.0  # how often a worker looks for a source that is due


@dataclass(frozen=True)
class Scheduled:
    """A source refreshed every `every_s`: a folder or a site, into a knowledge base."""

    source: str
    base: str
    every_s: float

    @property
    def key(self) -> str:
        return f"{self.base}:{self.source}"


Refresh = Callable[[Scheduled], Awaitable[str]]  # does it, returns its one-line summary


class Refresher:
    """Runs `refresh` for each scheduled source when it is due, under its lease."""

    def __init__(
        self,
        redis: Redis,
        settings: Settings,
        scheduled: Sequence[Scheduled],
        refresh: Refresh,
        *,
        check_s: float = CHECK_S,
    ) -> None:
        self._redis = redis
        self._ns = settings.redis_namespace
        self._lease_s = settings.lease_s
        self._scheduled = list(scheduled)
        self._refresh = refresh
        self._check_s = check_s

    async def run(self) -> None:
        """Until cancelled: every `check_s`, refresh what is due (a failure is logged, and the
        source is tried again at the next check)."""
        while True:
            for item in self._scheduled:
                try:
                    await self.refresh_if_due(item)
                except ThreadbotError as exc:
                    log.warning("refreshing %s failed: %s", item.source, exc)
            await asyncio.sleep(self._check_s)

    async def refresh_if_due(self, item: Scheduled) -> bool:
        """Refresh `item` if it is due and no other worker is at it; True when this one did."""
        lease = Lease(self._redis, self._lease_s)
        try:
            if not await lease.take(f"{self._ns}refresh:{item.key}"):
                return False  # another worker is refreshing it now
            done = f"{self._ns}refreshed:{item.key}"
            last = await self._redis.get(done)
            if last is not None and time.time() - float(text(last)) < item.every_s:
                return False  # refreshed within the period, by any worker
            started = time.monotonic()
            summary = await self._refresh(item)
            lease.check()  # still ours: nobody else took it over while this one stalled
            await self._redis.set(done, str(time.time()), ex=int(item.every_s * 2) + 60)
            log.info(
                "refreshed %s into %s in %.1fs: %s",
                item.source, item.base, time.monotonic() - started, summary,
            )  # fmt: skip
            return True
        finally:
            with contextlib.suppress(Exception):
                await lease.release(f"{self._ns}refresh:{item.key}")
            await lease.aclose()
