"""What a platform gives with a question besides its words, and the steps shown while answering.

The thread a question was asked in and the files attached to it are other people's words: the
prompt quotes them as context, never as instructions (`prompt`). An adapter gives them as
callables and small objects, so nothing is read unless the pipeline needs it (a thread the bot
already has a history for is never read again).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol


@dataclass(frozen=True)
class Said:
    """One earlier message of a thread, attributed: `author` as the platform names them."""

    author: str
    text: str
    by_bot: bool = False  # the bot's own earlier reply (a thread it answered before a reset)


@dataclass(frozen=True)
class Earlier:
    """The messages before the question, oldest first; `more` when older ones were not read."""

    messages: Sequence[Said] = ()
    more: bool = False


ThreadReader = Callable[[int], Awaitable[Earlier]]
"""Reads at most n messages before the question (the thread's first one among them when the
platform has one), oldest first; raises whatever its client raises (the pipeline answers
without them)."""


class Attachment(Protocol):
    """A file attached to the question, not yet downloaded."""

    @property
    def name(self) -> str: ...

    @property
    def size(self) -> int | None:
        """What the platform says (checked again while reading)."""

    @property
    def mimetype(self) -> str: ...

    async def read(self, limit: int) -> bytes:
        """At most `limit + 1` bytes (more than `limit` means too large); raises `FileRefused`
        with the reason when the file cannot be fetched."""


@dataclass(frozen=True)
class Asked:
    """What came with a question: the thread to read once, and the files attached.

    `where` describes them in JSON (ids and URLs, never a token), kept with the event while it
    is answered: after a crash, the adapter rebuilds them from it (`AskedFor`), so the reply
    finished by another process still has the question's files and thread.
    """

    thread: ThreadReader | None = None
    files: Sequence[Attachment] = field(default_factory=tuple)
    where: Mapping[str, Any] | None = None


AskedFor = Callable[[Mapping[str, Any]], Awaitable[Asked]]


NOTHING_ASKED = Asked()

StepStatus = Literal["in_progress", "complete", "error"]


@dataclass(frozen=True)
class Step:
    """A visible step of an answer in progress ("Searching the docs"), for platforms that show
    them (Slack's `task_update` chunks); `output` says what the step found."""

    id: str
    title: str
    status: StepStatus = "in_progress"
    output: str = ""


OnStep = Callable[[Step], Awaitable[None]]
