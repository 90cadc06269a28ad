"""The one entry point adapters call: answer a question for a session, reset, deduplicate events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

from langchain_core.messages import AIMessage, HumanMessage
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline as RedisPipeline
from redis.asyncio.lock import Lock
from redis.exceptions import LockError, RedisError

from core.chain import build_answerer, sources_footer
from core.errors import Busy, HistoryUnavailable, QuestionRejected
from core.history import RedisHistory

if TYPE_CHECKING:
    from core.chain import Answerer
    from core.redis_server import EmbeddedRedis
    from core.retrieval import Retriever
    from core.settings import Settings

log = logging.getLogger(__name__)

EMPTY_QUESTION = "Ask me a question about the team's documents, and I'll answer here."
NOT_SAVED = (
    "I couldn't save this answer to the conversation, so I won't remember it next time. "
    "My conversation store may be down."
)
_SEEN_TTL_S = 24 * 3600  # platforms retry an event for minutes, not days


class Pipeline:
    """Answers for session ids: one lock per session, history in Redis, retrieval, a chat model.

    Build it with `await Pipeline.create(settings)`; tests and benchmarks pass their own parts.
    """

    def __init__(
        self,
        settings: Settings,
        redis: Redis,
        retriever: Retriever,
        answerer: Answerer,
        *,
        embedded: EmbeddedRedis | None = None,
    ) -> None:
        self._settings = settings
        self._redis = redis
        self._retriever = retriever
        self._answerer = answerer
        self._embedded = embedded
        # In-process locks keep arrival order (asyncio.Lock is FIFO); the Redis lock extends
        # the exclusion to other processes sharing the store.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    @classmethod
    async def create(cls, settings: Settings) -> Pipeline:
        from core.embeddings import build_embeddings
        from core.redis_server import EmbeddedRedis
        from core.retrieval import Retriever

        embedded = None
        url = settings.redis_url
        if url is None:
            embedded = EmbeddedRedis(settings.data_dir)
            url = await asyncio.to_thread(embedded.start)
        embeddings, name = await asyncio.to_thread(build_embeddings, settings)
        retriever = Retriever(
            settings.index_dir,
            embeddings,
            name,
            k=settings.retrieval_k,
            min_score=settings.retrieval_min_score,
        )
        await asyncio.to_thread(retriever.refresh)
        redis = Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10)
        return cls(settings, redis, retriever, build_answerer(settings), embedded=embedded)

    @property
    def documents(self) -> int:
        """How many passages the knowledge base holds (0: nothing ingested)."""
        return self._retriever.size

    async def aclose(self) -> None:
        await self._redis.aclose()
        if self._embedded is not None:
            await asyncio.to_thread(self._embedded.stop)

    def _history(self, session_id: str) -> RedisHistory:
        s = self._settings
        return RedisHistory(
            self._redis,
            session_id,
            key_prefix=s.history_key_prefix,
            max_messages=s.history_max_messages,
            ttl_s=s.history_ttl_seconds,
        )

    @contextlib.asynccontextmanager
    async def _session_lock(self, session_id: str) -> AsyncIterator[Callable[[], Awaitable[None]]]:
        """Hold the conversation for one answer, waiting at most `answer_timeout_s` for it."""
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
            name = f"{s.redis_namespace}lock:{session_id}"
            lock = self._redis.lock(name, timeout=hold_s, blocking_timeout=wait_s)
            try:
                acquired = await lock.acquire()
            except RedisError as exc:
                raise HistoryUnavailable(f"locking {session_id}: {exc}") from exc
            if not acquired:
                raise Busy(f"lock on {session_id} not acquired in {wait_s}s")
            try:
                yield _renewer(lock, hold_s)
            finally:
                with contextlib.suppress(LockError, RedisError):
                    await lock.release()
        finally:
            local.release()

    async def answer(self, session_id: str, question: str) -> AsyncGenerator[str, None]:
        """Stream the answer to `question` in the conversation `session_id`.

        The human and AI messages are saved together once the answer is complete; an answer
        that fails or is cancelled midway (the model errs, the user deletes the message) saves
        nothing, so the history never holds half a turn.
        """
        # Lone surrogates (undecodable terminal input, JSON "\ud800") would break the tokenizer.
        question = question.encode("utf-8", "replace").decode("utf-8").strip()
        if not question:
            yield EMPTY_QUESTION
            return
        limit = self._settings.max_question_chars
        if len(question) > limit:
            raise QuestionRejected(
                f"{len(question)} chars",
                user_message=f"That message is too long for me ({len(question):,} characters; "
                f"the limit is {limit:,}). Please shorten it or ask about one part at a time.",
            )
        async with self._session_lock(session_id) as keep_lock:
            history = self._history(session_id)
            resets = self._reset_keys(session_id)
            messages = await history.aget_messages()
            resets_before = await self._read(resets)
            passages = await self._retriever.search(question)
            parts: list[str] = []
            stream = self._answerer.stream(messages, question, passages)
            async with contextlib.aclosing(stream):  # type: ignore[type-var]
                async for chunk in stream:
                    await keep_lock()
                    parts.append(chunk)
                    yield chunk
            turn = [HumanMessage(question), AIMessage("".join(parts))]

            def bookkeeping(tx: RedisPipeline) -> None:
                # Index the session under each of its prefixes (a channel's /reset finds its
                # threads without a SCAN), and read the reset counters as the save sees them.
                for group in self._groups(session_id):
                    tx.sadd(group, session_id)
                    tx.expire(group, self._settings.history_ttl_seconds)
                tx.mget(resets)

            try:
                *_, resets_after = await history.aadd_turn(turn, also=bookkeeping)
                if resets_after != resets_before:
                    # A reset came in while this answer streamed: what it forgot includes
                    # this turn, so the save is undone rather than the reset.
                    await self._redis.delete(history.key)
            except (HistoryUnavailable, RedisError) as exc:
                raise HistoryUnavailable(str(exc), user_message=NOT_SAVED) from exc
        if not self._answerer.cites_inline and passages:
            yield sources_footer(passages)

    def _reset_keys(self, session_id: str) -> list[str]:
        """The reset counters that concern a session: its own and each of its prefixes'
        (`slack:T:C` is reset by a channel's /reset, `slack:T:C:ts` by the thread's)."""
        parts = session_id.split(":")
        ns = self._settings.redis_namespace
        return [f"{ns}reset:{':'.join(parts[:n])}" for n in range(1, len(parts) + 1)]

    async def _read(self, keys: list[str]) -> list[bytes | str | None]:
        try:
            return list(await self._redis.mget(keys))
        except RedisError as exc:
            raise HistoryUnavailable(f"reading {keys[-1]}: {exc}") from exc

    async def _count_reset(self, session_prefix: str) -> None:
        """Tell answers still streaming in these conversations that they were forgotten."""
        key = self._reset_keys(session_prefix)[-1]
        async with self._redis.pipeline(transaction=True) as tx:
            tx.incr(key)
            tx.expire(key, _SEEN_TTL_S)
            await tx.execute()

    async def reset(self, session_id: str) -> bool:
        """Forget one conversation; True when there was something to forget. An answer still
        streaming in it is forgotten too, when it completes."""
        try:
            await self._count_reset(session_id)
            return bool(await self._redis.delete(self._history(session_id).key))
        except RedisError as exc:
            raise HistoryUnavailable(f"reset {session_id}: {exc}") from exc

    def _groups(self, session_id: str) -> list[str]:
        """The sets that list a session under each of its proper prefixes."""
        parts = session_id.split(":")
        ns = self._settings.redis_namespace
        return [f"{ns}sessions:{':'.join(parts[:n])}" for n in range(2, len(parts))]

    async def reset_many(self, session_prefix: str) -> int:
        """Forget `session_prefix` and every session below it (a channel and its threads)."""
        group = f"{self._settings.redis_namespace}sessions:{session_prefix}"
        try:
            await self._count_reset(session_prefix)
            members = [
                m.decode() if isinstance(m, bytes) else m for m in await self._redis.smembers(group)
            ]
            keys = [self._history(s).key for s in [session_prefix, *members]]
            async with self._redis.pipeline(transaction=True) as tx:
                tx.delete(*keys)
                tx.delete(group)
                forgot, _ = await tx.execute()
            return int(forgot)
        except RedisError as exc:
            raise HistoryUnavailable(f"reset {session_prefix}: {exc}") from exc

    async def has_history(self, session_id: str) -> bool:
        try:
            return bool(await self._redis.exists(self._history(session_id).key))
        except RedisError as exc:
            raise HistoryUnavailable(f"exists {session_id}: {exc}") from exc

    async def first_delivery(self, event_key: str) -> bool:
        """True for the first delivery of an event, across every process sharing the store."""
        try:
            key = f"{self._settings.redis_namespace}seen:{event_key}"
            seen = await self._redis.set(key, 1, nx=True, ex=_SEEN_TTL_S)
        except RedisError as exc:
            raise HistoryUnavailable(f"dedupe {event_key}: {exc}") from exc
        return bool(seen)


def _renewer(lock: Lock, hold_s: float) -> Callable[[], Awaitable[None]]:
    """A call to make as an answer streams: it renews the conversation's Redis lock once a third
    of its life has passed, so a very long answer keeps other processes out until it is saved."""
    loop = asyncio.get_running_loop()
    renewed_at = loop.time()

    async def renew() -> None:
        nonlocal renewed_at
        if loop.time() - renewed_at < hold_s / 3:
            return
        renewed_at = loop.time()
        try:
            await lock.reacquire()
        except (LockError, RedisError) as exc:
            raise HistoryUnavailable(f"renewing the lock {lock.name!r}: {exc}") from exc

    return renew
