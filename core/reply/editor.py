"""The streaming editor: shows an answer stream in a chat by posting once and editing in place.

Written once for every platform, and the only code that makes a reply's platform calls. A
platform gives a small `Sink` (post, edit, max_len), or an `AppendSink` where the platform
streams natively; the editor owns the timing (placeholder, throttle, coalescing, retry-after)
and the splitting (paragraph, line, sentence boundaries, never inside a code fence).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from core.errors import (
    LeaseLost,
    MessageGone,
    MessageTooLong,
    RateLimited,
    SinkError,
    StreamEnded,
    StreamRefused,
    ThreadbotError,
)
from core.reply.sinks import AppendSink, Preparing, Sink
from core.reply.splitting import cut

log = logging.getLogger(__name__)

H = TypeVar("H")

MARKER = " ▌"
# Room kept below `max_len` for the in-progress marker and a closing code fence.
_RESERVE = len(MARKER) + len("\n```")
_MIN_LIMIT = 32  # below this a "too long" refusal is not about length
# How long the placeholder waits to see whether `preparing` shows (then it is not posted).
PREPARING_WAIT_S = 2.0


async def close_stream(chunks: AsyncIterator[str]) -> None:
    """Close an answer stream that can be closed (a generator): that cancels its model request
    and releases its conversation. Closing twice does nothing."""
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()


@dataclass
class Reply(Generic[H]):
    """One streamed reply in progress: its messages, what they show, and what it cost."""

    handles: list[H] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    posts: int = 0
    edits: int = 0
    rate_limited: int = 0
    gone: bool = False
    error: ThreadbotError | None = None
    # Event-loop times (seconds): the first text shown, the stream's end, the final text shown.
    first_text_at: float | None = None
    stream_ended_at: float | None = None
    final_at: float | None = None

    @property
    def text(self) -> str:
        """Everything shown, the parts joined as a reader sees them."""
        return "\n".join(self.texts)


class StreamingEditor(Generic[H]):
    """Shows one answer stream through a `Sink` (or an `AppendSink`).

    Shows `preparing` until the first text (a typing indicator, a status line), and posts
    `placeholder` at once when there is no `preparing`, or when it could not be shown; then
    shows the text at most once per `interval_s`; while waiting out a rate limit the stream keeps
    being read, so the next call carries everything new (calls coalesce, they never queue). The
    final edit goes out at once when the stream ends and drops the in-progress marker. Text over
    `sink.max_len` continues in a new message. A `ThreadbotError` from the stream ends the reply
    with its user message after what was already shown. An `AppendSink` that refuses to stream
    hands the reply to `fallback`, which is edited instead; one whose stream the platform ended
    (`StreamEnded`) is finished by editing its last message through `fallback`.

    `resume` gives the messages of a reply that a crash interrupted: they are reused, in order,
    before anything new is posted (the first at once, as the placeholder). `on_post` hears of
    each message the reply takes. Rate limits are waited out for at most `post_deadline_s`.
    `check` runs before each call that shows something: it raises (`LeaseLost`) when this
    process may no longer touch the reply (another one took the turn over while it stalled).
    """

    def __init__(
        self,
        sink: Sink[H] | AppendSink[H],
        *,
        interval_s: float,
        placeholder: str | None = None,
        preparing: Preparing | None = None,
        fallback: Sink[H] | None = None,
        resume: Sequence[H] = (),
        on_post: Callable[[H], Awaitable[None]] | None = None,
        post_deadline_s: float = float("inf"),
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        check: Callable[[], None] = lambda: None,
    ) -> None:
        self._sink: Sink[H] | AppendSink[H] = sink
        self._interval_s = interval_s
        self._placeholder = placeholder
        self._preparing = preparing
        self._fallback = fallback
        self._resume = list(resume)  # messages of an interrupted reply, reused before posting
        self._on_post = on_post
        self._post_deadline_s = post_deadline_s
        self._sleep = sleep
        self._check = check
        self._limit = max(sink.max_len - _RESERVE, _MIN_LIMIT)
        self.reply: Reply[H] = Reply()
        self._buffer = ""  # everything the stream has given
        self._start = 0  # where in the buffer the current message begins
        self._prefix = ""  # a reopened code fence shown before it
        self._shown: str | None = None  # what the current message shows now
        self._finished = False  # an appended message was ended
        self._last_send = float("-inf")
        self._started = 0.0
        self._changed = asyncio.Event()
        self._has_text = asyncio.Event()
        self._prepared: asyncio.Future[bool] | None = None  # did `preparing` come up?
        self._stopping = False

    @property
    def sink(self) -> Sink[H] | AppendSink[H]:
        """The sink showing the reply now (the fallback, once an append sink refused)."""
        return self._sink

    @property
    def _appends(self) -> bool:
        return isinstance(self._sink, AppendSink)

    async def run(self, chunks: AsyncIterator[str]) -> Reply[H]:
        self._started = _now()
        self._prepared = asyncio.get_running_loop().create_future()
        reader = asyncio.create_task(self._read(chunks))
        preparing = asyncio.create_task(self._prepare()) if self._preparing else None
        try:
            if self._resume or (
                self._placeholder is not None and not await self._shows_preparing()
            ):
                if not self._appends:
                    await self._post_placeholder()
            while not reader.done():
                await self._wait_for_text(reader)
                if reader.done():
                    break
                delay = self._last_send + self._interval_s - _now()
                if delay > 0:
                    # Wake early at the end of the stream: the final edit goes out at once.
                    await asyncio.wait({reader}, timeout=delay)
                    if reader.done():
                        break
                await self._flush(final=False)
            reader.result()
            await self._flush(final=True)
            self.reply.final_at = _now()
        except MessageGone:
            log.info("reply message deleted mid-stream; stopping the answer")
            self.reply.gone = True
        finally:
            self._stopping = True
            for task in (reader, preparing):
                if task is not None and not task.done():
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
            await close_stream(chunks)
        return self.reply

    async def _prepare(self) -> None:
        """Show that an answer is coming (a typing indicator) until its first text."""
        assert self._preparing is not None and self._prepared is not None
        try:
            async with self._preparing():
                _settle(self._prepared, True)
                await self._has_text.wait()
        except Exception as exc:  # cosmetic: never let it end the reply
            log.debug("no preparing indicator: %s", exc)
        finally:
            _settle(self._prepared, False)

    async def _shows_preparing(self) -> bool:
        """Whether the placeholder is not needed: `preparing` came up soon enough, or the first
        text came before it did (and is shown at once)."""
        if self._preparing is None or self._prepared is None:
            return False
        text: asyncio.Future[Any] = asyncio.ensure_future(self._has_text.wait())
        waited: set[asyncio.Future[Any]] = {self._prepared, text}
        try:
            await asyncio.wait(
                waited, timeout=PREPARING_WAIT_S, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            text.cancel()
        if self._has_text.is_set():
            return True
        return self._prepared.done() and self._prepared.result()

    async def _read(self, chunks: AsyncIterator[str]) -> None:
        try:
            async for chunk in chunks:
                if self._stopping:
                    # Stopped (the message was deleted, the turn cancelled) but the stream went
                    # on: a client library swallowed the cancellation. Leaving the loop closes
                    # the answer, which then saves nothing.
                    break
                if chunk:
                    self._buffer += chunk
                    self._has_text.set()
                    self._changed.set()
        except LeaseLost:
            raise  # another process finishes this reply: show nothing more
        except ThreadbotError as exc:
            self._fail(exc)
        except Exception as exc:  # the one boundary for a broken stream: show it, don't crash
            log.exception("answer stream failed")
            self._fail(ThreadbotError(repr(exc)))
        finally:
            self.reply.stream_ended_at = _now()

    def _fail(self, exc: ThreadbotError) -> None:
        self.reply.error = exc
        self._buffer = with_warning(self._buffer, exc.user_message)

    async def _wait_for_text(self, reader: asyncio.Task[None]) -> None:
        waiter = asyncio.create_task(self._changed.wait())
        try:
            await asyncio.wait({reader, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        self._changed.clear()

    async def _waited_out(self, exc: RateLimited) -> None:
        if _now() + exc.retry_after_s > self._started + self._post_deadline_s:
            raise SinkError(f"still rate limited after {self._post_deadline_s:.0f}s") from exc
        self.reply.rate_limited += 1
        log.info("rate limited; retrying in %.2fs with the newest text", exc.retry_after_s)
        await self._sleep(exc.retry_after_s)
        self._changed.clear()  # what arrived meanwhile goes out with the next try

    async def _post_placeholder(self) -> None:
        """Post the placeholder, the reply's first message, which the first text replaces."""
        placeholder = self._placeholder or "…"
        self._check()
        while True:
            try:
                await self._new_message(placeholder, "")
                return
            except RateLimited as exc:
                await self._waited_out(exc)

    async def _new_message(self, display: str, text: str) -> None:
        """Start the reply's next message: reuse an interrupted reply's, else post one."""
        if self._resume and not isinstance(self._sink, AppendSink):
            handle = self._resume[0]
            await self._sink.edit(handle, display)
            self._resume.pop(0)
        else:
            handle = await self._sink.post(display)
        self.reply.handles.append(handle)
        self.reply.texts.append(text)
        self.reply.posts += 1
        self._shown = display
        if self._on_post is not None:
            await self._on_post(handle)

    async def _flush(self, *, final: bool) -> None:
        while True:
            try:
                await self._flush_once(final=final)
                return
            except RateLimited as exc:
                await self._waited_out(exc)
            except StreamEnded:
                self._edit_instead()
            except MessageTooLong as exc:
                if self._limit <= _MIN_LIMIT:
                    raise SinkError("the platform refuses even a short message") from exc
                current = len(self._current())
                self._limit = max(min(self._limit, current) * 3 // 4, _MIN_LIMIT)
                log.info("platform refused the text as too long; splitting at %d", self._limit)

    def _edit_instead(self) -> None:
        """The platform ended the native stream: what was appended stays shown, and the reply
        goes on by editing that message (then new ones) through the fallback sink."""
        if self._fallback is None or not self.reply.handles:
            raise SinkError("the platform ended the stream, and nothing can edit it")
        log.info("the platform ended the native stream; finishing the reply by editing")
        self._sink = self._fallback
        self._limit = max(self._fallback.max_len - _RESERVE, _MIN_LIMIT)
        self._finished = False

    def _current(self) -> str:
        return self._prefix + self._buffer[self._start :]

    async def _flush_once(self, *, final: bool) -> None:
        text = self._current()
        while len(text) > self._limit:
            head, reopen, rest = cut(text, self._limit)
            await self._show(head, final=True)
            # The next message starts where the cut left the buffer, behind any reopened fence.
            self._start += rest - len(self._prefix)
            self._prefix = reopen
            self._shown = None
            self._finished = False
            text = self._current()
        if text.strip():
            await self._show(text, final=final)

    async def _show(self, text: str, *, final: bool) -> None:
        self._check()
        if isinstance(self._sink, AppendSink):  # text as given: what is appended stays
            try:
                await self._append(self._sink, text, final=final)
            except StreamRefused:
                if self._fallback is None:
                    raise
                log.info("the platform refused to stream this reply; editing instead")
                self._sink = self._fallback
                self._limit = max(self._fallback.max_len - _RESERVE, _MIN_LIMIT)
                if self._placeholder is not None:
                    await self._post_placeholder()
                await self._show(text, final=final)
            return
        text = text.rstrip()
        display = text if final else text + MARKER
        if display == self._shown:
            return
        handle_index = len(self.reply.texts) - 1
        if self._shown is None:
            await self._new_message(display, text)
        else:
            await self._sink.edit(self.reply.handles[handle_index], display)
            self.reply.texts[handle_index] = text
            self.reply.edits += 1
        self._shown = display
        self._sent()

    async def _append(self, sink: AppendSink[H], text: str, *, final: bool) -> None:
        """Add what is new since the last call; a refused call added nothing, so the next one
        carries it (coalesced)."""
        if self._finished:
            return
        if self._shown is None:
            await self._new_message(text, text)
            added = ""
        else:
            added = text[len(self._shown) :]
            if not added and not final:
                return
        if final:
            await sink.finish(self.reply.handles[-1], added)
            self._finished = True
        elif added:
            await sink.append(self.reply.handles[-1], added)
            self.reply.edits += 1
        self._shown = text
        self.reply.texts[-1] = text
        self._sent()

    def _sent(self) -> None:
        self._last_send = _now()
        if self.reply.first_text_at is None:
            self.reply.first_text_at = self._last_send


def _settle(future: asyncio.Future[bool], value: bool) -> None:
    if not future.done():
        future.set_result(value)


def with_warning(shown: str, message: str) -> str:
    """A reply that ends in a failure: what was shown, then the one warning line."""
    shown = shown.rstrip()
    return f"{shown}{chr(10) * 2 if shown else ''}⚠️ {message}"


def _now() -> float:
    return asyncio.get_running_loop().time()
