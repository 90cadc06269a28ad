"""The platform seam: what an adapter gives the core (a `Turn`, a `ReplySink`) and gets back.

Written to fit on one screen, as Starlette's `types.py` does: an adapter implements these and
needs nothing else of the core's insides.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from core.answer.asked import Step
from core.errors import ThreadbotError
from core.feedback.records import Answered
from core.reply.editor import Reply
from core.reply.sinks import AppendSink, Preparing, Sink

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
    # Where it was asked, as the configuration file names places (which bases answer there).
    workspace: str = ""  # a Slack team, a Discord guild
    category: str = ""
    channel: str = ""  # a thread's parent channel
    dm: bool = False


class _ShownTo(Protocol):
    """What a turn's sink has besides the text: the asker, and how the wait looks.

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

    async def notify(self, text: str) -> None: ...

    def begin(self) -> None:
        """The turn starts now, before anything is awaited: a sink that paces new messages in
        a channel takes the reply's place in line here, so a burst keeps its order."""

    def end(self) -> None:
        """The turn is over, however it ended: free what `begin` reserved."""


class ReplySink(Sink[Any], _ShownTo, Protocol):
    """How a turn is shown on one platform by posting and editing (Slack's `chat.update`,
    Discord's message edits, the console)."""


class StreamReplySink(AppendSink[Any], _ShownTo, Protocol):
    """How a turn is shown where the platform streams it natively (Slack's `chat.*Stream`)."""


AnyReplySink = ReplySink | StreamReplySink


@runtime_checkable
class ShowsSteps(Protocol):
    """A sink that shows an answer's steps before its first text (Slack's `task_update`
    chunks); a step that cannot be shown is dropped, never the answer."""

    async def step(self, step: Step) -> None: ...


@runtime_checkable
class TakesFeedback(Protocol):
    """A sink that puts 👍/👎 under an answer once it is final and recorded (Slack's feedback
    buttons, Discord's buttons); the clicks carry `answered.id` back to `Feedback.vote`.

    `rating` is told before the answer streams, so a platform whose last call can carry the
    buttons (Slack's chat.stopStream) puts them there once `answered.saved`; `ask_feedback`
    comes after the final text, with the reply's last message and what it shows, for the
    others (an edit), and does nothing where the last call carried them.
    """

    def rating(self, answered: Answered) -> None: ...

    async def ask_feedback(self, handle: Any, text: str) -> None: ...


@runtime_checkable
class Resumable(Protocol):
    """A sink whose reply another process can finish after a crash: `where` rebuilds the sink
    (the adapter's `sink_for`), `ref` and `resume` turn its message handles into text and back."""

    @property
    def where(self) -> dict[str, Any]: ...

    def ref(self, handle: Any) -> str: ...

    def resume(self, ref: str) -> Any: ...


SinkFor = Callable[[dict[str, Any]], Awaitable[AnyReplySink | None]]


@dataclass
class Outcome:
    """How a turn ended, for listeners (metrics, tests) and the log."""

    turn: Turn
    received_at: float  # event-loop time the runner was given the turn
    status: Literal[
        "answered", "failed", "gone", "cancelled", "reset", "duplicate", "ignored", "refused"
    ] = "ignored"
    reply: Reply[Any] | None = None
    error: ThreadbotError | None = None
    shown: list[str] = field(default_factory=list)  # what the asker was told besides a reply
    answer_id: str = ""  # an answered turn's record, when it was kept (`core.feedback`)
