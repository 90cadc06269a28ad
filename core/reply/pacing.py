"""New messages in one place spaced out, in the order their questions came."""

from __future__ import annotations

import asyncio
from types import TracebackType


class Pacer:
    """At most one new message per `interval_s` in each place (a channel), in arrival order.

    Platforms limit how fast a bot may post in one channel (Slack: about one message a second);
    pacing keeps a burst under the limit instead of collecting 429s, and keeps its order: a reply
    takes its `ticket` when its question arrives, before anything is awaited. Within one process:
    across processes, the 429s that remain are waited out by the streaming editor.
    """

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._tails: dict[str, asyncio.Future[None]] = {}
        self._next_at: dict[str, float] = {}

    def ticket(self, key: str) -> Ticket:
        """A place in `key`'s line, taken now."""
        mine = asyncio.get_running_loop().create_future()
        before = self._tails.get(key)
        self._tails[key] = mine
        return Ticket(self, key, before, mine)

    def _posted(self, key: str, mine: asyncio.Future[None]) -> None:
        self._next_at[key] = asyncio.get_running_loop().time() + self.interval_s
        if self._tails.get(key) is mine:  # nobody waits behind: forget the place
            del self._tails[key]
            self._next_at = {k: t for k, t in self._next_at.items() if k in self._tails or k == key}


class Ticket:
    """One reply's turn to post in a place: `async with ticket:` around the post; `release()`
    when the reply will not post after all, so those behind it go on."""

    def __init__(
        self,
        pacer: Pacer,
        key: str,
        before: asyncio.Future[None] | None,
        mine: asyncio.Future[None],
    ) -> None:
        self._pacer = pacer
        self._key = key
        self._before = before
        self._mine = mine

    async def __aenter__(self) -> None:
        if self._before is not None:
            await asyncio.shield(self._before)
        loop = asyncio.get_running_loop()
        wait_s = self._pacer._next_at.get(self._key, 0.0) - loop.time()
        if wait_s > 0:
            await asyncio.sleep(wait_s)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._pacer._posted(self._key, self._mine)
        self.release()

    def release(self) -> None:
        """Let those behind go once those before have gone (idempotent)."""

        def free(_: object = None) -> None:
            if not self._mine.done():
                self._mine.set_result(None)

        if self._before is None or self._before.done():
            free()
        else:
            self._before.add_done_callback(free)
