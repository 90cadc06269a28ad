"""Calls to one place spaced out in arrival order: a burst is answered, slower, not refused."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator


class Pacer:
    """At most one call per `interval_s` for each key (a channel), first come first served.

    Platforms limit how fast a bot may post in one channel (Slack: about one message a second);
    pacing keeps a burst under the limit instead of collecting 429s. Within one process only:
    across processes, the 429s that remain are waited out by the streaming editor.
    """

    def __init__(self, interval_s: float) -> None:
        self._interval_s = interval_s
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._next_at: dict[str, float] = {}

    @contextlib.asynccontextmanager
    async def slot(self, key: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())  # FIFO: arrival order
        async with lock:
            loop = asyncio.get_running_loop()
            wait_s = self._next_at.get(key, 0.0) - loop.time()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            try:
                yield
            finally:
                self._next_at[key] = loop.time() + self._interval_s
                if len(self._next_at) > 10_000:  # forget channels long quiet
                    now = loop.time()
                    self._next_at = {k: t for k, t in self._next_at.items() if t > now}
