"""A conversation's history: a turn saved whole (or undone when a reset came in meanwhile),
and resets of one conversation or of a channel's."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core.errors import HistoryUnavailable, store_errors
from core.store.base import SEEN_TTL_S, StoreBase, text
from core.store.history import RedisHistory, encode

if TYPE_CHECKING:
    from langchain_core.messages import BaseMessage
    from redis.asyncio.client import Pipeline as RedisPipeline

NOT_SAVED = (
    "I couldn't save this answer to the conversation, so I won't remember it next time. "
    "My conversation store may be down."
)
MAYBE_NOT_SAVED = (
    "I'm not sure this answer was saved to the conversation: my conversation store stopped "
    "responding while I saved it, so I may not remember it next time."
)

log = logging.getLogger(__name__)


class Conversations(StoreBase):
    async def resets(self, session_id: str) -> list[Any]:
        """The reset counters of a session as they are now; `save_turn` compares them."""
        keys = self._reset_keys(session_id)
        with store_errors(f"reading {keys[-1]}"):
            return list(await self.redis.mget(keys))

    async def save_turn(
        self,
        session_id: str,
        messages: Sequence[BaseMessage],
        resets_before: list[Any],
        *,
        user: str = "",
    ) -> None:
        """Save a whole turn in one transaction, unless a reset came in since `resets_before`.

        `user` (`platform:id`, the asker) gets the session in their index, so that everything
        they took part in can be forgotten on request.
        """
        history = self.history(session_id)
        ttl_s = self._settings.history_ttl_seconds
        if user:  # in another slot: indexed first, so a forget request never misses the turn
            with store_errors(f"indexing {session_id}", user_message=NOT_SAVED):
                async with self.redis.pipeline(transaction=True) as tx:
                    tx.sadd(self._user_key(user), session_id)
                    tx.expire(self._user_key(user), ttl_s)
                    await tx.execute()

        def bookkeeping(tx: RedisPipeline) -> None:
            # Index the session under its channel (a channel's /reset finds its threads
            # without a SCAN), and read the reset counters as the save sees them.
            for group in self._groups(session_id):
                tx.sadd(group, session_id)
                tx.expire(group, ttl_s)
            tx.execute_command("MGET", *self._reset_keys(session_id))

        try:
            with store_errors(f"saving {session_id}", user_message=NOT_SAVED):
                *_, resets_after = await history.aadd_turn(messages, also=bookkeeping)
        except HistoryUnavailable as exc:
            if not isinstance(exc.__cause__, RedisTimeoutError | RedisConnectionError):
                raise
            # Sent, then no answer: the save may have been applied. Read back to know.
            saved = await self._saved(history, messages)
            if saved is None:
                raise HistoryUnavailable(str(exc), user_message=MAYBE_NOT_SAVED) from exc
            if not saved:
                raise
            log.warning("saving %s timed out, but the turn was saved", session_id)
            return
        if resets_after != resets_before:
            # A reset came in while this answer streamed: what it forgot includes this turn,
            # so the save is undone rather than the reset.
            with store_errors(f"undoing the save of {session_id}"):
                await self.redis.delete(history.key)

    async def _saved(self, history: RedisHistory, messages: Sequence[BaseMessage]) -> bool | None:
        """Does the history end with `messages`? None when the store still does not answer."""
        expected = [encode(m) for m in reversed(messages)]  # LPUSH puts the last first
        for _ in range(3):
            try:
                newest = await self.redis.lrange(history.key, 0, len(expected) - 1)
            except RedisError:
                await asyncio.sleep(0.2)
                continue
            return [text(m) for m in newest] == expected
        return None

    async def _count_reset(self, session_prefix: str) -> None:
        """Tell answers still streaming in these conversations that they were forgotten."""
        key = self._reset_keys(session_prefix)[-1]
        async with self.redis.pipeline(transaction=True) as tx:
            tx.incr(key)
            tx.expire(key, SEEN_TTL_S)
            await tx.execute()

    async def reset(self, session_id: str) -> bool:
        """Forget one conversation; True when there was something to forget. An answer still
        streaming in it is forgotten too, when it completes."""
        with store_errors(f"reset {session_id}"):
            await self._count_reset(session_id)
            return bool(await self.redis.delete(self.history(session_id).key))

    async def reset_many(self, session_prefix: str) -> int:
        """Forget `session_prefix` and every session below it (a channel and its threads)."""
        group = f"{self._ns}sessions:{session_prefix}"
        with store_errors(f"reset {session_prefix}"):
            await self._count_reset(session_prefix)
            members = [text(m) for m in await self.redis.smembers(group)]
            keys = [self.history(s).key for s in [session_prefix, *members]]
            async with self.redis.pipeline(transaction=True) as tx:
                tx.delete(*keys)
                tx.delete(group)
                forgot, _ = await tx.execute()
            return int(forgot)

    async def ping(self) -> None:
        with store_errors("ping"):
            await self.redis.ping()

    async def has_history(self, session_id: str) -> bool:
        with store_errors(f"exists {session_id}"):
            return bool(await self.redis.exists(self.history(session_id).key))
