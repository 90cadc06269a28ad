"""The life of one turn, the same on every platform: dedupe, answer or reset, show, apologise, log.

An adapter turns an event into a `Turn`, gives it with a `ReplySink` to the `TurnRunner`, and
does nothing else: the runner is each event's one error boundary.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast

from core.errors import HistoryUnavailable, NoAccess, ThreadbotError
from core.logs import bind_turn, unbind
from core.streaming import (
    AppendSink,
    Preparing,
    Reply,
    Sink,
    StreamingEditor,
    close_stream,
    with_warning,
)
from core.tasks import SessionTasks

if TYPE_CHECKING:
    from core.pipeline import Pipeline

log = logging.getLogger(__name__)

NO_ANSWER = "I have no answer to that. Please rephrase the question."
GONE = "I stopped answering because the answer message was deleted."

TurnAction = Literal["answer", "reset", "reset_all"]


@dataclass(frozen=True)
class Turn:
    """One thing a person asked of the bot, as every adapter and the console give it."""

    platform: str
    session_id: str
    question: str = ""
    user: str = ""
    place: str = ""  # where, as the asker would say it: "in this thread" ("" in the console)
    event_key: str | None = None  # the same for every delivery of the event, on every platform
    retried: bool = False  # the platform says it delivers this event again
    # "reset" forgets the conversation; "reset_all" it and every one below it (a channel).
    action: TurnAction = "answer"


class ReplySink(Protocol):
    """How a turn is shown on one platform: a `Sink` (or an `AppendSink`) and the asker.

    `placeholder` is posted at once (then replaced by the answer); `preparing` is shown until
    the first text (a typing indicator); `fallback` takes over when an append sink refuses to
    stream. `notify` tells the asker alone where the platform can (an ephemeral message): the
    result of a reset, or why a reply stopped.
    """

    @property
    def placeholder(self) -> str | None: ...

    @property
    def preparing(self) -> Preparing | None: ...

    @property
    def fallback(self) -> Sink[Any] | None: ...

    @property
    def max_len(self) -> int: ...

    async def post(self, text: str) -> Any: ...

    async def notify(self, text: str) -> None: ...


@dataclass
class Outcome:
    """How a turn ended, for listeners (metrics, tests) and the log."""

    turn: Turn
    received_at: float  # event-loop time the runner was given the turn
    status: Literal["answered", "failed", "gone", "cancelled", "reset", "duplicate", "ignored"] = (
        "ignored"
    )
    reply: Reply[Any] | None = None
    error: ThreadbotError | None = None
    shown: list[str] = field(default_factory=list)  # what the asker was told besides a reply


def reset_text(forgot: int, place: str, *, many: bool) -> str:
    """The one wording of a reset's result."""
    where = f" {place}" if place else ""
    if many:
        return f"Forgot {forgot} conversation{'' if forgot == 1 else 's'}{where}."
    return f"Forgot our conversation{where}." if forgot else f"Nothing to forget{where}."


class TurnRunner:
    """Runs every turn of one bot: one session's turns in arrival order, each to its end.

    `async with TurnRunner(...)` lets turns in flight finish for `grace_s` on the way out,
    then cancels the rest (which saves nothing).
    """

    def __init__(self, pipeline: Pipeline, *, interval_s: float, grace_s: float) -> None:
        self.pipeline = pipeline
        self._interval_s = interval_s
        self._grace_s = grace_s
        self._tasks = SessionTasks()
        self._listeners: list[Callable[[Outcome], None]] = []
        self._no_access_logged: set[str] = set()
        self.draining = False  # stopping: /readyz says not ready
        self.in_flight = 0  # turns running now
        self.waiting = 0  # submitted turns waiting for an earlier one of their session

    async def __aenter__(self) -> TurnRunner:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self.draining = True
        await self._tasks.aclose(grace_s=self._grace_s)

    async def drain(self) -> None:
        """Wait for every turn in flight, including ones submitted meanwhile."""
        await self._tasks.drain()

    def add_listener(self, listener: Callable[[Outcome], None]) -> None:
        """Call `listener` with the outcome of every turn, as it ends."""
        self._listeners.append(listener)

    def submit(
        self,
        turn: Turn,
        sink: ReplySink,
        *,
        only_if: Callable[[], Awaitable[bool]] | None = None,
    ) -> asyncio.Task[None]:
        """Run the turn in the background, after the turns submitted before it in its session.

        Call it before awaiting anything, so that arrival order is kept. `only_if` decides, in
        the turn's place in line, whether the bot takes part at all (nobody is told anything
        when it says no).
        """

        received_at = asyncio.get_running_loop().time()
        self.waiting += 1  # (a turn cancelled before it started stays counted: we are exiting)

        async def work() -> None:
            self.waiting -= 1
            await self.run(turn, sink, only_if=only_if, received_at=received_at)

        return self._tasks.submit(turn.session_id, work())

    async def run(
        self,
        turn: Turn,
        sink: ReplySink,
        *,
        only_if: Callable[[], Awaitable[bool]] | None = None,
        received_at: float | None = None,
    ) -> Outcome:
        """Run one turn now; never raises but for cancellation."""
        if received_at is None:
            received_at = asyncio.get_running_loop().time()
        outcome = Outcome(turn, received_at)
        editor: StreamingEditor[Any] | None = None
        self.in_flight += 1
        logged = bind_turn(turn)
        try:
            if only_if is not None and not await only_if():
                return outcome
            if not await self._first_delivery(turn):
                outcome.status = "duplicate"
                log.info("event %s delivered again; already taken", turn.event_key)
                return outcome
            if turn.action == "answer":
                editor = self._editor(sink)
                await self._answer(turn, editor, sink, outcome)
            else:
                await self._reset(turn, sink, outcome)
        except NoAccess as exc:
            outcome.status = "failed"
            if turn.session_id not in self._no_access_logged:
                self._no_access_logged.add(turn.session_id)
                log.warning(
                    "missing permission to post in %s; not answering there (%s)",
                    turn.session_id,
                    exc,
                )
        except ThreadbotError as exc:
            log.warning("%s in %s: %s", type(exc).__name__, turn.session_id, exc)
            await self._apologise(turn, sink, editor, exc, outcome)
        except Exception:
            log.exception("answering %s failed", turn.session_id)
            await self._apologise(turn, sink, editor, ThreadbotError(), outcome)
        except asyncio.CancelledError:
            outcome.status = "cancelled"
            raise
        finally:
            self.in_flight -= 1
            for listener in self._listeners:
                listener(outcome)
            unbind(logged)
        return outcome

    async def _first_delivery(self, turn: Turn) -> bool:
        if turn.event_key is None:
            return not turn.retried
        try:
            return await self.pipeline.first_delivery(turn.event_key)
        except HistoryUnavailable:
            if turn.retried:  # most likely answered already: don't apologise twice
                log.warning("store down; dropping redelivered event %s", turn.event_key)
                return False
            raise

    def _editor(self, sink: ReplySink) -> StreamingEditor[Any]:
        return StreamingEditor(
            cast("Sink[Any] | AppendSink[Any]", sink),
            interval_s=self._interval_s,
            placeholder=sink.placeholder,
            preparing=sink.preparing,
            fallback=sink.fallback,
        )

    async def _answer(
        self, turn: Turn, editor: StreamingEditor[Any], sink: ReplySink, outcome: Outcome
    ) -> None:
        # However showing ends (done, deleted, failed), the editor closes the answer: that
        # cancels the model and releases the conversation.
        answer = self.pipeline.answer(turn.session_id, turn.question)
        reply = await editor.run(_or_no_answer(answer))
        outcome.reply = reply
        if reply.gone:
            outcome.status = "gone"
            await self._tell(sink, GONE, outcome)
        elif reply.error is not None:
            outcome.status, outcome.error = "failed", reply.error
            log.warning("%s in %s: %s", type(reply.error).__name__, turn.session_id, reply.error)
        else:
            outcome.status = "answered"

    async def _reset(self, turn: Turn, sink: ReplySink, outcome: Outcome) -> None:
        many = turn.action == "reset_all"
        if many:
            forgot = await self.pipeline.reset_many(turn.session_id)
        else:
            forgot = int(await self.pipeline.reset(turn.session_id))
        outcome.status = "reset"
        await self._tell(sink, reset_text(forgot, turn.place, many=many), outcome)

    async def _tell(self, sink: ReplySink, text: str, outcome: Outcome) -> None:
        outcome.shown.append(text)
        await sink.notify(text)

    async def _apologise(
        self,
        turn: Turn,
        sink: ReplySink,
        editor: StreamingEditor[Any] | None,
        error: ThreadbotError,
        outcome: Outcome,
    ) -> None:
        """End the reply with the one warning line: in place when a message can be edited,
        privately when it can't, or as a new message when nothing was shown; never raises."""
        outcome.status, outcome.error = "failed", error
        reply = editor.reply if editor is not None else None
        outcome.reply = reply if reply is not None and reply.handles else None
        text = with_warning("", error.user_message)
        try:
            if editor is not None and outcome.reply is not None:
                shown = editor.sink
                if isinstance(shown, AppendSink):  # a native stream can't be rewritten
                    await self._tell(sink, text, outcome)
                else:
                    edited = with_warning(outcome.reply.texts[-1], error.user_message)
                    await shown.edit(outcome.reply.handles[-1], edited)
            elif turn.action == "answer":
                await sink.post(text)
            else:
                await self._tell(sink, text, outcome)
        except Exception as exc:  # the last word of a failed turn: log it, never raise
            log.warning("could not tell %s in %s it failed: %s", turn.user, turn.session_id, exc)


async def _or_no_answer(chunks: AsyncIterator[str]) -> AsyncIterator[str]:
    """The answer's chunks, or a line saying there is no answer when it had no text at all."""
    empty = True
    try:
        async for chunk in chunks:
            empty = empty and not chunk.strip()
            yield chunk
    finally:
        await close_stream(chunks)
    if empty:
        yield NO_ANSWER
