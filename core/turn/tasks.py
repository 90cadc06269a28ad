"""Work for a conversation run in the background, in arrival order, with a graceful shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


class SessionTasks:
    """Runs each event's work as a task, one session's work strictly in the order submitted.

    Adapters acknowledge an event at once and answer after (Slack wants an ack within 3 s,
    Discord's gateway loop must not block). `submit` takes the session's place in line before
    anything is awaited, so two messages arriving back to back are answered in that order
    even when their first awaits (dedupe, history) resume in another order.
    """

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._tails: dict[str, asyncio.Task[None]] = {}

    def submit(self, session_id: str, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        previous = self._tails.get(session_id)
        task = asyncio.create_task(self._after(previous, work))
        self._tails[session_id] = task
        self._tasks.add(task)

        def done(finished: asyncio.Task[None]) -> None:
            self._tasks.discard(finished)
            if self._tails.get(session_id) is finished:
                del self._tails[session_id]

        task.add_done_callback(done)
        return task

    @staticmethod
    async def _after(previous: asyncio.Task[None] | None, work: Coroutine[Any, Any, None]) -> None:
        try:
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)
        except asyncio.CancelledError:
            work.close()  # shut down before its turn came: never started
            raise
        await work

    async def drain(self) -> None:
        """Wait for every task, including ones submitted meanwhile."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self, *, grace_s: float) -> None:
        """Let work in flight finish for `grace_s`, then cancel the rest (which saves nothing)."""
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace_s)
            for task in pending:
                task.cancel()
        await self.drain()
