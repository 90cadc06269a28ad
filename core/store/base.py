"""What every part of the store shares: the client, the settings, and the keys they name."""

from __future__ import annotations

import asyncio
import weakref
from typing import TYPE_CHECKING, Any

from core.store.history import RedisHistory
from core.store.lease import Lease
from core.store.sessions import levels

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from core.settings import Settings

SEEN_TTL_S = 24 * 3600  # platforms retry an event for minutes, not days


class StoreBase:
    """The client and the key layout (core/store/store.py has the table); each part of the
    `Store` (its line, claims, saves, migration, queries) builds on it."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self._settings = settings
        self._ns = settings.redis_namespace
        self._inflight = f"{self._ns}inflight"  # the events with an in-flight record
        # Tickets are taken in the order `line_up` is called (asyncio.Lock is FIFO), even when
        # two calls' commands go out on two connections; a local release wakes local waiters
        # at once (other processes' waiters poll).
        self._arrivals: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._released: weakref.WeakValueDictionary[str, asyncio.Event] = (
            weakref.WeakValueDictionary()
        )

    async def aclose(self) -> None:
        await self.redis.aclose()

    def history(self, session_id: str) -> RedisHistory:
        s = self._settings
        return RedisHistory(
            self.redis,
            session_id,
            key_prefix=s.history_key_prefix,
            max_messages=s.history_max_messages,
            ttl_s=s.history_ttl_seconds,
        )

    @property
    def lease_s(self) -> float:
        return self._settings.lease_s

    def lease(self) -> Lease:
        return Lease(self.redis, self._settings.lease_s)

    def _reset_keys(self, session_id: str) -> list[str]:
        """The reset counters that concern a session: its own and its channel's
        (`slack:{T:C}` is reset by a channel's /reset, `slack:{T:C}:ts` by the thread's)."""
        return [f"{self._ns}reset:{level}" for level in levels(session_id)]

    def _groups(self, session_id: str) -> list[str]:
        """The sets that list a session under each of its proper prefixes (its channel)."""
        return [f"{self._ns}sessions:{level}" for level in levels(session_id)[:-1]]

    def _user_key(self, user: str) -> str:
        return f"{self._ns}user:{user}"


def glob_escape(text: str) -> str:
    """`text` matched literally by a SCAN pattern."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
