"""A chat that records: every message as the platform would show it, every call, every notice."""

from __future__ import annotations

import asyncio

from core.errors import MessageTooLong


class RecordingSink:
    """A reply sink for the editor and the turn runner alike.

    `messages` holds each message as shown now (edits replace it), `calls` every post and edit
    in order, `notices` what the asker alone was told. A text over `max_len` fails the test; one
    over `refuse_over` is refused as too long, as a platform with a smaller limit would.
    """

    preparing = fallback = None

    def __init__(self, *, max_len: int = 2000, placeholder: str | None = None) -> None:
        self.max_len = max_len
        self.placeholder = placeholder
        self.messages: list[str] = []
        self.calls: list[tuple[str, int, str]] = []
        self.notices: list[str] = []
        self.failures: list[Exception] = []  # raised by the next posts and edits, in order
        self.fail_edits: list[Exception] = []  # raised by the next edits, in order
        self.refuse_over: int | None = None
        self.posted = asyncio.Event()

    async def post(self, text: str) -> int:
        self._maybe_fail()
        self._check(text)
        self.messages.append(text)
        self.calls.append(("post", len(self.messages) - 1, text))
        self.posted.set()
        return len(self.messages) - 1

    async def edit(self, handle: int, text: str) -> None:
        self._maybe_fail()
        if self.fail_edits:
            raise self.fail_edits.pop(0)
        self._check(text)
        self.messages[handle] = text
        self.calls.append(("edit", handle, text))

    async def notify(self, text: str) -> None:
        self.notices.append(text)

    def begin(self) -> None:
        pass

    def end(self) -> None:
        pass

    def _maybe_fail(self) -> None:
        if self.failures:
            raise self.failures.pop(0)

    def _check(self, text: str) -> None:
        assert len(text) <= self.max_len, f"{len(text)} > {self.max_len}"
        if self.refuse_over is not None and len(text) > self.refuse_over:
            raise MessageTooLong(f"{len(text)}")
