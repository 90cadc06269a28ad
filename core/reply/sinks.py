"""The sink protocols a platform implements for the streaming editor: `Sink` (post, then edit
in place) and `AppendSink` (the platform streams natively, text only ever added)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeVar, runtime_checkable

H = TypeVar("H")


class Sink(Protocol[H]):
    """Where one reply is shown.

    Implementations must: return from `post` a handle that `edit` accepts; accept unchanged text
    in `edit`; translate their client's errors into `RateLimited` (with the retry-after the
    platform gave), `MessageGone` (the message was deleted) and `MessageTooLong`; and never sleep
    on a rate limit themselves, so the editor can coalesce edits instead of queueing them.
    """

    @property
    def max_len(self) -> int: ...

    async def post(self, text: str) -> H: ...

    async def edit(self, handle: H, text: str) -> None: ...


@runtime_checkable
class AppendSink(Protocol[H]):
    """Where one reply is streamed natively by the platform: text is only ever added.

    `post` starts a message with its first text (or raises `StreamRefused` when the platform
    will not stream there); `append` adds text; `finish` adds the last text (maybe "") and ends
    the message. Errors are translated as for `Sink`; a refused call added nothing.
    """

    @property
    def max_len(self) -> int: ...

    async def post(self, text: str) -> H: ...

    async def append(self, handle: H, text: str) -> None: ...

    async def finish(self, handle: H, text: str) -> None: ...


Preparing = Callable[[], AbstractAsyncContextManager[Any]]
