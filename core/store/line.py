"""The conversation's line: tickets in arrival order across processes, then its lock."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from core.errors import Busy, LeaseLost, ThreadbotError, store_errors
from core.store import scripts
from core.store.base import SEEN_TTL_S, StoreBase, text
from core.store.lease import Lease


@dataclass(frozen=True)
class Place:
    """A turn's place in its conversation's line, taken before its event is acknowledged: the
    `waiting` key its lease keeps alive, and the session's reset counters as they were when the
    question arrived (a reset from then on, on any worker, forgets this turn's answer)."""

    session_id: str
    waiting: str
    resets: list[Any]


class Line(StoreBase):
    """Order within a conversation: a turn takes a ticket when it arrives, and holds the
    conversation when every turn before it has."""

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
                    scripts.LINE_UP, 3 + len(counters), line, tickets, waiting, *counters,
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
                    scripts.NEXT, 3, line, lock, self._waiting_key(session_id, first),
                    lease.token, first, lease.lease_ms,
                )  # fmt: skip
            status = text(step[0])
            if status == "taken":
                lease.dequeued(waiting)
                lease.held(lock)
                break
            if status == "first":
                first = text(step[1])
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
