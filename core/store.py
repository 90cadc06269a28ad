"""threadbot's Redis: the key layout and every command threadbot sends, errors mapped once.

Keys (`{ns}` is `REDIS_NAMESPACE`, `{hp}` is `HISTORY_KEY_PREFIX`):

| key | type | what |
|---|---|---|
| `{hp}{session}` | list | the history, as LangChain's `RedisChatMessageHistory` writes it |
| `{ns}lock:{session}` | string | the conversation's cross-process lock, held while it answers |
| `{ns}reset:{prefix}` | counter | bumped by each reset of a session or of a prefix (a channel) |
| `{ns}sessions:{prefix}` | set | the sessions below a prefix, for a channel-wide reset |
| `{ns}seen:{event}` | string | an event already taken by a process (dedupe) |
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from redis.asyncio.lock import Lock
from redis.exceptions import LockError, RedisError

from core.errors import Busy, store_errors
from core.history import RedisHistory

if TYPE_CHECKING:
    from langchain_core.messages import BaseMessage
    from redis.asyncio import Redis
    from redis.asyncio.client import Pipeline as RedisPipeline

    from core.settings import Settings

NOT_SAVED = (
    "I couldn't save this answer to the conversation, so I won't remember it next time. "
    "My conversation store may be down."
)
SEEN_TTL_S = 24 * 3600  # platforms retry an event for minutes, not days

Renew = Callable[[], Awaitable[None]]


class Store:
    """Conversations in Redis: histories, the per-conversation lock, resets and event dedupe."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self._settings = settings
        self._ns = settings.redis_namespace
        # In-process locks keep arrival order (asyncio.Lock is FIFO); the Redis lock extends
        # the exclusion to other processes sharing the store.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

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

    def is_answering(self, session_id: str) -> bool:
        """Is an answer of this process holding the conversation right now?"""
        lock = self._locks.get(session_id)
        return lock is not None and lock.locked()

    @contextlib.asynccontextmanager
    async def conversation(self, session_id: str) -> AsyncIterator[Renew]:
        """Hold the conversation for one answer, waiting at most `answer_timeout_s` for it.

        Yields a call to make as the answer streams, which renews the Redis lock once a third of
        its life has passed, so a long answer keeps other processes out until it is saved.
        """
        s = self._settings
        wait_s = s.answer_timeout_s
        # The Redis lock must outlive the slowest answer (every retry of a model request), or
        # another process could step in mid-answer and interleave the history.
        hold_s = s.answer_timeout_s + s.chat_timeout_s * (s.chat_max_retries + 1)
        local = self._locks.setdefault(session_id, asyncio.Lock())
        try:
            async with asyncio.timeout(wait_s):
                await local.acquire()
        except TimeoutError as exc:
            raise Busy(f"{session_id} busy for {wait_s}s") from exc
        try:
            name = f"{self._ns}lock:{session_id}"
            lock = self.redis.lock(name, timeout=hold_s, blocking_timeout=wait_s)
            with store_errors(f"locking {session_id}"):
                acquired = await lock.acquire()
            if not acquired:
                raise Busy(f"lock on {session_id} not acquired in {wait_s}s")
            try:
                yield _renewer(lock, hold_s)
            finally:
                with contextlib.suppress(LockError, RedisError):
                    await lock.release()
        finally:
            local.release()

    def _reset_keys(self, session_id: str) -> list[str]:
        """The reset counters that concern a session: its own and each of its prefixes'
        (`slack:T:C` is reset by a channel's /reset, `slack:T:C:ts` by the thread's)."""
        parts = session_id.split(":")
        return [f"{self._ns}reset:{':'.join(parts[:n])}" for n in range(1, len(parts) + 1)]

    def _groups(self, session_id: str) -> list[str]:
        """The sets that list a session under each of its proper prefixes."""
        parts = session_id.split(":")
        return [f"{self._ns}sessions:{':'.join(parts[:n])}" for n in range(2, len(parts))]

    async def resets(self, session_id: str) -> list[Any]:
        """The reset counters of a session as they are now; `save_turn` compares them."""
        keys = self._reset_keys(session_id)
        with store_errors(f"reading {keys[-1]}"):
            return list(await self.redis.mget(keys))

    async def save_turn(
        self, session_id: str, messages: Sequence[BaseMessage], resets_before: list[Any]
    ) -> None:
        """Save a whole turn in one transaction, unless a reset came in since `resets_before`."""
        history = self.history(session_id)
        ttl_s = self._settings.history_ttl_seconds

        def bookkeeping(tx: RedisPipeline) -> None:
            # Index the session under each of its prefixes (a channel's /reset finds its
            # threads without a SCAN), and read the reset counters as the save sees them.
            for group in self._groups(session_id):
                tx.sadd(group, session_id)
                tx.expire(group, ttl_s)
            tx.mget(self._reset_keys(session_id))

        with store_errors(f"saving {session_id}", user_message=NOT_SAVED):
            *_, resets_after = await history.aadd_turn(messages, also=bookkeeping)
            if resets_after != resets_before:
                # A reset came in while this answer streamed: what it forgot includes this
                # turn, so the save is undone rather than the reset.
                await self.redis.delete(history.key)

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
            members = [
                m.decode() if isinstance(m, bytes) else m for m in await self.redis.smembers(group)
            ]
            keys = [self.history(s).key for s in [session_prefix, *members]]
            async with self.redis.pipeline(transaction=True) as tx:
                tx.delete(*keys)
                tx.delete(group)
                forgot, _ = await tx.execute()
            return int(forgot)

    async def has_history(self, session_id: str) -> bool:
        with store_errors(f"exists {session_id}"):
            return bool(await self.redis.exists(self.history(session_id).key))

    async def first_delivery(self, event_key: str) -> bool:
        """True for the first delivery of an event, across every process sharing the store."""
        with store_errors(f"dedupe {event_key}"):
            seen = await self.redis.set(f"{self._ns}seen:{event_key}", 1, nx=True, ex=SEEN_TTL_S)
        return bool(seen)


def _renewer(lock: Lock, hold_s: float) -> Renew:
    loop = asyncio.get_running_loop()
    renewed_at = loop.time()

    async def renew() -> None:
        nonlocal renewed_at
        if loop.time() - renewed_at < hold_s / 3:
            return
        renewed_at = loop.time()
        with store_errors(f"renewing the lock {lock.name!r}"):  # LockError is a RedisError
            await lock.reacquire()

    return renew
