"""The life of one turn, the same on every platform: dedupe, answer or reset, show, apologise, log.

An adapter turns an event into a `Turn`, gives it with a `ReplySink` to the `TurnRunner`, and
does nothing else: the runner is each event's one error boundary.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from core.answer.asked import NOTHING_ASKED, Asked, AskedFor
from core.errors import HistoryUnavailable, LeaseLost, NoAccess, NotAllowed, ThreadbotError
from core.feedback.records import Answered, answer_id
from core.feedback.votes import CallsAHuman
from core.ops.logs import bind_turn, unbind
from core.policy.audience import Where
from core.reply.editor import Reply, StreamingEditor, close_stream, with_warning
from core.reply.sinks import AppendSink
from core.store.lease import Lease
from core.store.store import Claim, Place
from core.turn.showing import editor_for, steps_for
from core.turn.tasks import SessionTasks
from core.turn.types import AnyReplySink, Outcome, SinkFor, TakesFeedback, Turn

if TYPE_CHECKING:
    from core.answer.pipeline import Pipeline

log = logging.getLogger(__name__)

NO_ANSWER = "I have no answer to that. Please rephrase the question."
GONE = "I stopped answering because the answer message was deleted."
# How long `submit` waits for a turn's ticket: an ack must not wait long on a slow store (the
# order across processes is then best effort for that turn).
LINE_UP_WAIT_S = 1.0


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

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        interval_s: float,
        grace_s: float,
        post_deadline_s: float = float("inf"),
    ) -> None:
        self.pipeline = pipeline
        self._interval_s = interval_s
        self._grace_s = grace_s
        self._post_deadline_s = post_deadline_s
        self._tasks = SessionTasks()
        self._listeners: list[Callable[[Outcome], None]] = []
        self._no_access_logged: set[str] = set()
        self._recovery: asyncio.Task[None] | None = None
        # Events submitted here and not finished: never "recovered" by this process, even when
        # a starved event loop let their claim expire (their turn stops on its own).
        self._mine: set[str] = set()
        self._closing_leases: set[asyncio.Task[None]] = set()
        self._closing = asyncio.Event()
        self.draining = False  # stopping: /readyz says not ready
        self.in_flight = 0  # turns running now
        self.waiting = 0  # submitted turns waiting for an earlier one of their session

    async def __aenter__(self) -> TurnRunner:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self.draining = True
        self._closing.set()
        if self._recovery is not None:
            # Also stops a recovery whose cancellation a client library swallowed mid-call.
            self._recovery.cancel()
            await asyncio.gather(self._recovery, return_exceptions=True)
        await self._tasks.aclose(grace_s=self._grace_s)
        await asyncio.gather(*self._closing_leases, return_exceptions=True)

    def start_recovery(self, sink_for: SinkFor, asked_for: AskedFor | None = None) -> None:
        """From now until `aclose`, finish the replies crashed processes left unfinished: at
        once, then every half lease (a crashed holder's claim expires within one lease).
        `asked_for` rebuilds what came with each question (its files, its thread)."""
        interval_s = self.pipeline.store.lease_s / 2
        self._recovery = asyncio.create_task(self.recover_every(sink_for, interval_s, asked_for))

    async def drain(self) -> None:
        """Wait for every turn in flight, including ones submitted meanwhile."""
        await self._tasks.drain()

    def add_listener(self, listener: Callable[[Outcome], None]) -> None:
        """Call `listener` with the outcome of every turn, as it ends."""
        self._listeners.append(listener)

    async def submit(
        self,
        turn: Turn,
        sink: AnyReplySink,
        *,
        only_if: Callable[[], Awaitable[bool]] | None = None,
        asked: Asked | None = None,
    ) -> asyncio.Task[None]:
        """Run the turn in the background, after the turns that reached any bot sharing the
        store before it in its session; return once it has its place in line.

        Call it before awaiting anything, and acknowledge the event after it: the order events
        are acknowledged in is the order they are answered, across processes. `only_if`
        decides, in the turn's place in line, whether the bot takes part at all (nobody is told
        anything when it says no; when it raises `NotAllowed`, the asker alone is told).
        `asked`: the thread and files that came with the question.
        """
        received_at = asyncio.get_running_loop().time()
        lease = self.pipeline.store.lease()
        self.waiting += 1  # (a turn cancelled before it started stays counted: we are exiting)
        lined = asyncio.create_task(self._line_up(turn, lease))  # tickets go in submit order
        started = False

        async def work() -> None:
            nonlocal started
            started = True
            self.waiting -= 1
            (placed,) = await asyncio.gather(lined, return_exceptions=True)
            place = placed if isinstance(placed, Place | ThreadbotError) else None
            await self.run(
                turn, sink, only_if=only_if, received_at=received_at, lease=lease, place=place,
                asked=asked,
            )  # fmt: skip

        def never_started(task: asyncio.Task[None]) -> None:
            # Cancelled in line at shutdown: give the place up, or other workers' turns in
            # this conversation would wait out its lease.
            if not started:
                lined.cancel()
                closing = asyncio.create_task(lease.aclose())
                self._closing_leases.add(closing)
                closing.add_done_callback(self._closing_leases.discard)

        task = self._tasks.submit(turn.session_id, work())
        task.add_done_callback(never_started)
        if turn.event_key is not None:
            self._mine.add(turn.event_key)
            task.add_done_callback(partial(_forget, self._mine, turn.event_key))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(lined), LINE_UP_WAIT_S)
        return task

    async def _line_up(self, turn: Turn, lease: Lease) -> Place | ThreadbotError | None:
        if turn.action != "answer":  # a reset takes no conversation: it wins whenever it comes
            return None
        try:
            return await self.pipeline.store.line_up(turn.session_id, lease)
        except ThreadbotError as exc:  # the turn fails with it, in its place: its asker is told
            return exc

    async def run(
        self,
        turn: Turn,
        sink: AnyReplySink,
        *,
        only_if: Callable[[], Awaitable[bool]] | None = None,
        received_at: float | None = None,
        lease: Lease | None = None,
        place: Place | ThreadbotError | None = None,
        asked: Asked | None = None,
    ) -> Outcome:
        """Run one turn now; never raises but for cancellation.

        A turn with an event key is claimed first (a lease: a crash frees it) and marked done
        once its reply is final, so every delivery of the event, in any process, is answered
        once, and a reply a crash interrupted is finished by whoever claims the event next.
        """
        if received_at is None:
            received_at = asyncio.get_running_loop().time()
        outcome = Outcome(turn, received_at)
        editor: StreamingEditor[Any] | None = None
        lease = lease if lease is not None else self.pipeline.store.lease()
        final = True  # the reply ends here, whatever happened; not when the lease was lost
        sink.begin()
        self.in_flight += 1
        logged = bind_turn(turn)
        try:
            if only_if is not None and not await only_if():
                return outcome
            claim = await self._claim(turn, lease)
            if claim is not None and claim.status in ("busy", "done"):
                outcome.status = "duplicate"
                log.info("event %s delivered again; %s", turn.event_key, claim.status)
                return outcome
            if turn.action == "answer":
                editor = await editor_for(
                    turn, sink, lease, claim, self.pipeline.store, asked=asked or NOTHING_ASKED,
                    interval_s=self._interval_s, post_deadline_s=self._post_deadline_s,
                )  # fmt: skip
                await self._answer(turn, editor, sink, outcome, lease, place, asked)
            else:
                await self._reset(turn, sink, outcome)
        except LeaseLost as exc:
            final, outcome.status, outcome.error = False, "failed", exc
            log.warning("%s: stopped, another process took the turn over", turn.session_id)
        except NoAccess as exc:
            outcome.status = "failed"
            self._note_no_access(turn, exc)
        except NotAllowed as exc:
            outcome.status, outcome.error = "refused", exc
            log.info("%s may not ask in %s: %s", turn.user, turn.session_id, exc)
            await self._tell_safely(turn, sink, exc.user_message, outcome)
        except ThreadbotError as exc:
            log.warning("%s in %s: %s", type(exc).__name__, turn.session_id, exc)
            await self._apologise(turn, sink, editor, exc, outcome)
        except Exception:
            log.exception("answering %s failed", turn.session_id)
            await self._apologise(turn, sink, editor, ThreadbotError(), outcome)
        except asyncio.CancelledError:
            final, outcome.status = False, "cancelled"
            raise
        finally:
            # Cancelled (a shutdown past its grace): the claim expires and the reply is finished
            # by the next process to recover it.
            sink.end()
            self.in_flight -= 1
            await self._release(turn, outcome, lease, final=final)
            unbind(logged)
        return outcome

    async def _release(self, turn: Turn, outcome: Outcome, lease: Lease, *, final: bool) -> None:
        """The turn is over: its event marked done when its reply is final, its lease given
        up, its outcome told to the listeners."""
        if final and outcome.status != "duplicate" and turn.event_key is not None:
            await self._complete(turn.event_key, lease)
        await lease.aclose()
        for listener in self._listeners:
            listener(outcome)

    def _note_no_access(self, turn: Turn, exc: NoAccess) -> None:
        """Nothing can be shown where the bot may not post: said once per conversation."""
        if turn.session_id not in self._no_access_logged:
            self._no_access_logged.add(turn.session_id)
            log.warning(
                "missing permission to post in %s; not answering there (%s)", turn.session_id, exc
            )

    async def recover(self, sink_for: SinkFor, asked_for: AskedFor | None = None) -> int:
        """Finish the replies that crashed processes left in progress: each one this bot's
        `sink_for` can rebuild is answered again in place, with what came with its question
        when `asked_for` can rebuild that. Returns how many were taken."""
        taken = 0
        for event_key, record in await self.pipeline.store.orphans():
            if event_key in self._mine:  # submitted here already: running, or waiting its turn
                continue
            sink = await sink_for(record["where"])
            if sink is not None:
                turn = Turn(**record["turn"])
                log.info("finishing the reply to %s that a crash interrupted", turn.event_key)
                asked = None
                if asked_for is not None and record.get("asked"):
                    try:
                        asked = await asked_for(record["asked"])
                    except Exception as exc:  # answered without them, rather than not at all
                        log.warning("%s: its files and thread are gone: %r", event_key, exc)
                await self.submit(turn, sink, asked=asked)
                taken += 1
        return taken

    async def recover_every(
        self, sink_for: SinkFor, interval_s: float, asked_for: AskedFor | None = None
    ) -> None:
        """Recover now and then every `interval_s`, until the runner closes."""
        while not self._closing.is_set():
            try:
                await self.recover(sink_for, asked_for)
            except ThreadbotError as exc:
                log.warning("could not look for interrupted replies: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), interval_s)

    async def _claim(self, turn: Turn, lease: Lease) -> Claim | None:
        if turn.event_key is None:
            return Claim("done") if turn.retried else None
        try:
            return await self.pipeline.store.claim(turn.event_key, lease)
        except HistoryUnavailable:
            if turn.retried:  # most likely answered already: don't apologise twice
                log.warning("store down; dropping redelivered event %s", turn.event_key)
                return Claim("done")
            raise

    async def _complete(self, event_key: str, lease: Lease) -> None:
        try:
            await self.pipeline.store.complete(event_key, lease)
        except ThreadbotError as exc:  # the claim expires; a recovery may answer it again
            log.warning("could not mark %s answered: %s", event_key, exc)

    async def _answer(
        self,
        turn: Turn,
        editor: StreamingEditor[Any],
        sink: AnyReplySink,
        outcome: Outcome,
        lease: Lease,
        place: Place | ThreadbotError | None,
        asked: Asked | None,
    ) -> None:
        # However showing ends (done, deleted, failed), the editor closes the answer: that
        # cancels the model and releases the conversation.
        asker = f"{turn.platform}:{turn.user}" if turn.user else ""
        where = Where(turn.platform, turn.workspace, turn.category, turn.channel, turn.dm)
        answered = Answered(answer_id(turn.event_key))
        rated = self.pipeline.feedback.enabled and isinstance(sink, TakesFeedback)
        if rated:
            sink.rating(answered)  # type: ignore[union-attr]
        answer = self.pipeline.answer(
            turn.session_id, turn.question, lease=lease, place=place, user=asker,
            asked=asked or NOTHING_ASKED, on_step=steps_for(sink, lease), where=where,
            answered=answered,
        )  # fmt: skip
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
            if answered.saved:
                outcome.answer_id = answered.id
                await self._after_answer(editor, sink, reply, answered, rated=rated)

    async def _after_answer(
        self,
        editor: StreamingEditor[Any],
        sink: AnyReplySink,
        reply: Reply[Any],
        answered: Answered,
        *,
        rated: bool,
    ) -> None:
        """A final, recorded answer: 👍/👎 under its last message, and a person called into the
        thread when the documents did not cover it (as the operator asked). Neither costs the
        answer anything when it fails."""
        shown = editor.sink  # the fallback, when a native stream handed the reply over
        if rated and isinstance(shown, TakesFeedback) and reply.handles:
            try:
                await shown.ask_feedback(reply.handles[-1], reply.texts[-1])
            except Exception as exc:
                log.warning("could not put the feedback buttons under %s: %r", answered.id, exc)
        if not answered.covered and isinstance(sink, CallsAHuman):
            await self.pipeline.feedback.call("uncovered", sink)

    async def _reset(self, turn: Turn, sink: AnyReplySink, outcome: Outcome) -> None:
        many = turn.action == "reset_all"
        if many:
            forgot = await self.pipeline.reset_many(turn.session_id)
        else:
            forgot = int(await self.pipeline.reset(turn.session_id))
        outcome.status = "reset"
        await self._tell(sink, reset_text(forgot, turn.place, many=many), outcome)

    async def _tell(self, sink: AnyReplySink, text: str, outcome: Outcome) -> None:
        outcome.shown.append(text)
        await sink.notify(text)

    async def _apologise(
        self,
        turn: Turn,
        sink: AnyReplySink,
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

    async def _tell_safely(
        self, turn: Turn, sink: AnyReplySink, text: str, outcome: Outcome
    ) -> None:
        try:
            await self._tell(sink, text, outcome)
        except Exception as exc:  # a refusal nobody can be shown: logged
            log.warning("could not tell %s in %s: %s", turn.user, turn.session_id, exc)


def _forget(events: set[str], event_key: str, _: object) -> None:
    events.discard(event_key)


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
