"""The operator's queries (`threadbot conversations`): what is stored, and forgetting a
person's conversations on request. SCANs the keyspace: never in a turn."""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import store_errors
from core.store.base import glob_escape, text
from core.store.conversations import Conversations


@dataclass(frozen=True)
class Conversation:
    """A stored history as `threadbot conversations list` shows it."""

    session_id: str
    messages: int
    ttl_s: int  # seconds until Redis expires it; -1: never


class Queries(Conversations):
    async def conversations(self) -> list[Conversation]:
        """Every stored history: a SCAN over `HISTORY_KEY_PREFIX*`, for an operator, never in a
        turn (it walks the whole keyspace)."""
        prefix = self._settings.history_key_prefix
        with store_errors("listing conversations"):
            keys = [
                text(k)
                async for k in self.redis.scan_iter(match=glob_escape(prefix) + "*", count=500)
            ]
            async with self.redis.pipeline(transaction=False) as tx:
                for key in keys:
                    tx.llen(key)
                    tx.ttl(key)
                # Another program's key under the same prefix is not a list: skipped, not fatal.
                results = await tx.execute(raise_on_error=False)
        found = [
            Conversation(key.removeprefix(prefix), int(count), int(ttl))
            for key, count, ttl in zip(keys, results[::2], results[1::2], strict=True)
            if isinstance(count, int) and isinstance(ttl, int)
        ]
        return sorted(found, key=lambda c: c.session_id)

    async def _user_keys(self, user: str) -> list[str]:
        """The index of `user` (`platform:id`), or of a bare id on every platform."""
        if ":" in user:
            return [self._user_key(user)]
        pattern = self._user_key("*:" + glob_escape(user))
        return [text(k) async for k in self.redis.scan_iter(match=pattern, count=500)]

    async def sessions_of(self, user: str) -> list[str]:
        """The sessions `user` asked in, as far back as the history's TTL."""
        sessions: set[str] = set()
        with store_errors(f"reading the sessions of {user}"):
            for key in await self._user_keys(user):
                members = await self.redis.smembers(key)
                sessions |= {text(m) for m in members}
        return sorted(sessions)

    async def forget_user(self, user: str) -> list[str]:
        """Forget every conversation `user` took part in (each through `reset`, so an answer
        still streaming is forgotten too), then their index; returns the sessions forgotten."""
        forgotten = [s for s in await self.sessions_of(user) if await self.reset(s)]
        with store_errors(f"forgetting {user}"):
            keys = await self._user_keys(user)
            if keys:
                await self.redis.delete(*keys)
        return forgotten
