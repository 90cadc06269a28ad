"""threadbot's Redis: the key layout and every command threadbot sends, errors mapped once.

Keys (`{ns}` is `REDIS_NAMESPACE`, `{hp}` is `HISTORY_KEY_PREFIX`; a session id carries its
channel as a Redis Cluster hash tag, `slack:{T:C}:ts`, see `core/store/sessions.py`):

| key | type | slot | what |
|---|---|---|---|
| `{hp}{session}` | list | channel | the history, as `RedisChatMessageHistory` writes it |
| `{ns}lock:{session}` | string | channel | the conversation's lease: its holder's token |
| `{ns}line:{session}` | sorted set | channel | the turns waiting for the conversation, by ticket |
| `{ns}tickets:{session}` | counter | channel | the last ticket given in this conversation |
| `{ns}waiting:{session}:{token}` | string | channel | a waiter's lease: it lives, keep its place |
| `{ns}reset:{prefix}` | counter | channel | bumped by each reset of a session or of its channel |
| `{ns}sessions:{prefix}` | set | channel | the sessions below a channel, for a channel-wide reset |
| `{ns}user:{platform}:{user}` | set | its own | the sessions a user asked in, for `forget --user` |
| `{ns}seen:{{event}}` | string | event | an event's claim (its holder's token), then `done` |
| `{ns}inflight:{{event}}` | string | event | JSON: the turn and its messages, until it is final |
| `{ns}inflight` | set | its own | the events with an in-flight record, for recovery |
| `{ns}index:…` | | spread | the shared index, in parts: see `core/knowledge/shared_index.py` |

Every multi-key step is within one slot: a turn's save (history, the channel's session set, the
reset counters it compares), a reset and its counter, a channel-wide reset, taking the
conversation in ticket order, and an event's claim and completion. What spans slots is written
so that a crash between its steps leaves only a harmless extra: a user's index entry is added
before the save, an event is listed in `{ns}inflight` before its record is written and unlisted
after it is gone.

A lease is renewed by its holder's heartbeat every third of `LEASE_S`: a live holder keeps it as
long as it needs, a crashed one loses it within one lease (a Redis restart keeps the expiry).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core.errors import Busy, HistoryUnavailable, LeaseLost, ThreadbotError, store_errors
from core.store.history import RedisHistory, encode
from core.store.lease import Lease
from core.store.sessions import levels, tagged

if TYPE_CHECKING:
    from langchain_core.messages import BaseMessage
    from redis.asyncio import Redis
    from redis.asyncio.client import Pipeline as RedisPipeline

    from core.settings import Settings

NOT_SAVED = (
    "I couldn't save this answer to the conversation, so I won't remember it next time. "
    "My conversation store may be down."
)
MAYBE_NOT_SAVED = (
    "I'm not sure this answer was saved to the conversation: my conversation store stopped "
    "responding while I saved it, so I may not remember it next time."
)
SEEN_TTL_S = 24 * 3600  # platforms retry an event for minutes, not days
DONE = "done"
LAYOUT = "2"  # `{ns}layout`: the session ids carry their hash tag (see `migrate`)

log = logging.getLogger(__name__)

# Claim an event: new, resumed (a dead holder left an in-flight record), busy, or done.
_CLAIM = """
local seen = redis.call('GET', KEYS[1])
if seen == ARGV[1] then  -- ours already: this call was sent again after a lost reply
  if redis.call('EXISTS', KEYS[2]) == 1 then return 'resumed' end
  return 'new'
end
if seen then
  if string.sub(seen, 1, 6) == 'lease:' then return 'busy' end
  return 'done'
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if redis.call('EXISTS', KEYS[2]) == 1 then return 'resumed' end
return 'new'
"""
# Mark a claimed event done and drop its in-flight record, if the claim is still ours.
_COMPLETE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], 'done', 'EX', ARGV[2])
redis.call('DEL', KEYS[2])
return 1
"""
# Take a ticket: a place at the end of the conversation's line, kept while the waiter lives.
# Returns the reset counters (KEYS[4...]) as they were when the question arrived.
_LINE_UP = """
local ticket = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[1], ticket, ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[2])
local resets = {}
for i = 4, #KEYS do resets[i - 3] = redis.call('GET', KEYS[i]) end
return resets
"""
# The next step for a waiter (ARGV[1]): KEYS are the line, the conversation's lock, and the
# `waiting` key of ARGV[2], the waiter the caller believes is first. `taken`: the conversation
# is ours. `wait`: first is alive (or is us, and the lock is held). `skipped`: first was dead
# and left the line. `first`: the caller was wrong about who is first (its name follows).
# `gone`: we are no longer in line (we stalled past our lease and were skipped).
_NEXT = """
if redis.call('GET', KEYS[2]) == ARGV[1] then  -- taken: this call was sent again
  redis.call('ZREM', KEYS[1], ARGV[1])
  return {'taken'}
end
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return {'gone'} end
local first = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
if first ~= ARGV[2] then return {'first', first} end
if first == ARGV[1] then
  if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[3]) then
    redis.call('ZREM', KEYS[1], ARGV[1])
    redis.call('DEL', KEYS[3])
    return {'taken'}
  end
  return {'wait'}
end
if redis.call('EXISTS', KEYS[3]) == 1 then return {'wait'} end
redis.call('ZREM', KEYS[1], first)
return {'skipped'}
"""


@dataclass(frozen=True)
class Place:
    """A turn's place in its conversation's line, taken before its event is acknowledged: the
    `waiting` key its lease keeps alive, and the session's reset counters as they were when the
    question arrived (a reset from then on, on any worker, forgets this turn's answer)."""

    session_id: str
    waiting: str
    resets: list[Any]


@dataclass(frozen=True)
class Claim:
    """An event's claim: `new`, `resumed` from a dead holder (with its in-flight record), or
    not ours: `busy` (a live holder answers it) or `done`."""

    status: Literal["new", "resumed", "busy", "done"]
    record: dict[str, Any] | None = None


class Store:
    """Conversations in Redis: histories, the per-conversation lock, resets and event dedupe."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self._settings = settings
        self._ns = settings.redis_namespace
        self._inflight = f"{self._ns}inflight"
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

    async def line_up(self, session_id: str, lease: Lease) -> Place:
        """Take the conversation's next ticket for `lease`: the turn will have the conversation
        after every turn that lined up before it, in any process. A waiter that dies loses its
        place within one lease."""
        line, tickets, waiting = self._line_keys(session_id, lease)
        counters = self._reset_keys(session_id)
        arrival = self._arrivals.setdefault(session_id, asyncio.Lock())
        async with arrival:
            with store_errors(f"lining up for {session_id}"):
                resets = await self.redis.eval(
                    _LINE_UP, 3 + len(counters), line, tickets, waiting, *counters,
                    lease.token, lease.lease_ms, SEEN_TTL_S,
                )  # fmt: skip
        lease.queued(waiting, line)
        # A reset from now on, even one another worker runs while this turn waits, forgets it.
        return Place(session_id, waiting, [r or None for r in resets])

    @contextlib.asynccontextmanager
    async def conversation(
        self, session_id: str, lease: Lease, place: Place | ThreadbotError | None = None
    ) -> AsyncIterator[Place]:
        """Hold the conversation for one answer, in ticket order, waiting at most
        `answer_timeout_s` for it (a crashed holder or waiter frees it within `lease_s`).

        `place` is the one the turn took when it arrived (`line_up`), or the error taking it
        failed with: lining up only now would put this turn behind later ones of its own
        process, which wait for it, so it fails as the store did and its asker is told. With
        none, the turn lines up here."""
        if isinstance(place, ThreadbotError):
            raise place
        if place is None:
            place = await self.line_up(session_id, lease)
        line, _, waiting = self._line_keys(session_id, lease)
        lock = f"{self._ns}lock:{session_id}"
        wait_s = self._settings.answer_timeout_s
        loop = asyncio.get_running_loop()
        deadline, pause, first = loop.time() + wait_s, 0.01, lease.token
        while True:
            lease.check()
            with store_errors(f"waiting for {session_id}"):
                step = await self.redis.eval(
                    _NEXT, 3, line, lock, self._waiting_key(session_id, first),
                    lease.token, first, lease.lease_ms,
                )  # fmt: skip
            status = _text(step[0])
            if status == "taken":
                lease.dequeued(waiting)
                lease.held(lock)
                break
            if status == "first":
                first = _text(step[1])
                continue
            if status == "gone":  # stalled past our lease: skipped, as a dead waiter is
                raise LeaseLost(f"lost its place in line for {session_id} while it stalled")
            if status == "wait":
                if loop.time() > deadline:
                    raise Busy(f"{session_id} busy for {wait_s}s")
                released = self._released.setdefault(session_id, asyncio.Event())
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        await released.wait()
                pause = min(pause * 2, 0.25)
        try:
            yield place
        finally:
            await lease.release(lock)
            if (wake := self._released.pop(session_id, None)) is not None:
                wake.set()

    def _line_keys(self, session_id: str, lease: Lease) -> tuple[str, str, str]:
        return (
            f"{self._ns}line:{session_id}",
            f"{self._ns}tickets:{session_id}",
            self._waiting_key(session_id, lease.token),
        )

    def _waiting_key(self, session_id: str, token: str) -> str:
        return f"{self._ns}waiting:{session_id}:{token}"

    async def claim(self, event_key: str, lease: Lease) -> Claim:
        """Claim an event for `lease`, unless a live holder has it or it was answered."""
        seen, record_key = self._event_keys(event_key)
        with store_errors(f"claiming {event_key}"):
            status = await self.redis.eval(_CLAIM, 2, seen, record_key, lease.token, lease.lease_ms)
            status = _text(status)
            record = None
            if status == "resumed":
                raw = await self.redis.get(record_key)
                record = json.loads(raw) if raw else None
        if status in ("new", "resumed"):
            lease.held(seen)
        return Claim(status, record)  # type: ignore[arg-type]

    async def record(self, event_key: str, record: dict[str, Any]) -> None:
        """Keep what a recovery needs to finish this event's reply (until `complete`)."""
        _, record_key = self._event_keys(event_key)
        with store_errors(f"recording {event_key}"):
            await self.redis.sadd(self._inflight, event_key)  # listed first: never missed
            await self.redis.set(record_key, json.dumps(record), ex=SEEN_TTL_S)

    async def complete(self, event_key: str, lease: Lease) -> None:
        """The event's reply is final: never answer it again, forget its in-flight record."""
        seen, record_key = self._event_keys(event_key)
        with store_errors(f"completing {event_key}"):
            if await self.redis.eval(_COMPLETE, 2, seen, record_key, lease.token, SEEN_TTL_S):
                await self.redis.srem(self._inflight, event_key)
        await lease.release(seen)  # it says done now: the release finds another value

    async def orphans(self) -> list[tuple[str, dict[str, Any]]]:
        """In-flight records whose holder's claim expired: replies a crash left unfinished."""
        with store_errors("reading in-flight records"):
            events = [_text(e) for e in await self.redis.smembers(self._inflight)]
            found = []
            for event_key in events:
                seen, record_key = self._event_keys(event_key)
                async with self.redis.pipeline(transaction=False) as tx:
                    tx.exists(seen)
                    tx.get(record_key)
                    claimed, raw = await tx.execute()
                if raw is None:
                    await self.redis.srem(self._inflight, event_key)
                elif not claimed:
                    found.append((event_key, json.loads(raw)))
        return found

    def _event_keys(self, event_key: str) -> tuple[str, str]:
        """An event's claim and record, tagged with the event: one slot for both."""
        return f"{self._ns}seen:{{{event_key}}}", f"{self._ns}inflight:{{{event_key}}}"

    def _reset_keys(self, session_id: str) -> list[str]:
        """The reset counters that concern a session: its own and its channel's
        (`slack:{T:C}` is reset by a channel's /reset, `slack:{T:C}:ts` by the thread's)."""
        return [f"{self._ns}reset:{level}" for level in levels(session_id)]

    def _groups(self, session_id: str) -> list[str]:
        """The sets that list a session under each of its proper prefixes (its channel)."""
        return [f"{self._ns}sessions:{level}" for level in levels(session_id)[:-1]]

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
            return [_text(m) for m in newest] == expected
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
            members = [_text(m) for m in await self.redis.smembers(group)]
            keys = [self.history(s).key for s in [session_prefix, *members]]
            async with self.redis.pipeline(transaction=True) as tx:
                tx.delete(*keys)
                tx.delete(group)
                forgot, _ = await tx.execute()
            return int(forgot)

    async def migrate(self) -> int:
        """Move what was saved before session ids carried their channel as a hash tag to the
        tagged ids, once per store: histories, and the indexes of channels and users. Returns
        how many histories moved. (A cluster never held the old ids: they could not be used
        there.)"""
        prefix, marker = self._settings.history_key_prefix, f"{self._ns}layout"
        ttl_s = self._settings.history_ttl_seconds
        moved = 0
        with store_errors("moving to the tagged key layout"):
            if _text(await self.redis.get(marker) or b"") == LAYOUT:
                return 0
            async for raw in self.redis.scan_iter(match=_glob_escape(prefix) + "*", count=500):
                old = _text(raw).removeprefix(prefix)
                new = tagged(old)
                if new == old:
                    continue
                try:
                    if not await self.redis.renamenx(prefix + old, prefix + new):
                        continue  # already there: the newer conversation wins
                except ResponseError:  # another worker moved it first
                    continue
                moved += 1
                for group in self._groups(new):
                    await self.redis.sadd(group, new)
                    await self.redis.expire(group, ttl_s)
            async for raw in self.redis.scan_iter(match=_glob_escape(self._user_key("")) + "*"):
                key = _text(raw)
                for member in [_text(m) for m in await self.redis.smembers(key)]:
                    if tagged(member) != member:
                        await self.redis.sadd(key, tagged(member))
                        await self.redis.srem(key, member)
            await self.redis.set(marker, LAYOUT)
        if moved:
            log.info("moved %d conversations to session ids with a hash tag", moved)
        return moved

    async def ping(self) -> None:
        with store_errors("ping"):
            await self.redis.ping()

    async def has_history(self, session_id: str) -> bool:
        with store_errors(f"exists {session_id}"):
            return bool(await self.redis.exists(self.history(session_id).key))

    # Operator tools (`threadbot conversations`): read what is stored, forget on request.

    def _user_key(self, user: str) -> str:
        return f"{self._ns}user:{user}"

    async def conversations(self) -> list[Conversation]:
        """Every stored history: a SCAN over `HISTORY_KEY_PREFIX*`, for an operator, never in a
        turn (it walks the whole keyspace)."""
        prefix = self._settings.history_key_prefix
        with store_errors("listing conversations"):
            keys = [
                _text(k)
                async for k in self.redis.scan_iter(match=_glob_escape(prefix) + "*", count=500)
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
        pattern = self._user_key("*:" + _glob_escape(user))
        return [_text(k) async for k in self.redis.scan_iter(match=pattern, count=500)]

    async def sessions_of(self, user: str) -> list[str]:
        """The sessions `user` asked in, as far back as the history's TTL."""
        sessions: set[str] = set()
        with store_errors(f"reading the sessions of {user}"):
            for key in await self._user_keys(user):
                members = await self.redis.smembers(key)
                sessions |= {_text(m) for m in members}
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


@dataclass(frozen=True)
class Conversation:
    """A stored history as `threadbot conversations list` shows it."""

    session_id: str
    messages: int
    ttl_s: int  # seconds until Redis expires it; -1: never


def _glob_escape(text: str) -> str:
    """`text` matched literally by a SCAN pattern."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
