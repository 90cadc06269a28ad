"""What the answer flow reports while it runs (retrieval, the model's stream), for metrics."""

from __future__ import annotations

from typing import Protocol

from core.store.redis_client import CommandObserver


class AnswerProbe:
    """Told the timings of each answer as it goes; this base ignores them.

    Implementations (`core.ops.metrics.Metrics`) must return at once and never raise: they are
    called inside the answer's stream.
    """

    def retrieved(self, seconds: float, passages: int) -> None:
        """A search for the question took `seconds` and returned `passages` passages."""

    def streamed(self, seconds: float, *, first: bool) -> None:
        """The model gave a chunk `seconds` after the request started (`first`: its first)."""

    def answered(self, *, covered: bool) -> None:
        """An answer was saved; `covered`: a passage or a file matched its question."""

    def voted(self, vote: str, outcome: str) -> None:
        """Someone rated an answer `vote` (up, down); `outcome`: new, changed, same, reason
        (a 👎's reason given), unknown (no record), failed (not kept)."""

    def called_a_human(self, why: str) -> None:
        """A person was called into a thread: `why` is down (a 👎) or uncovered."""


class PipelineMetrics(CommandObserver, Protocol):
    """What a pipeline is measured by (`core.ops.metrics.Metrics`): the answers' timings, as an
    `AnswerProbe` is told them, and every Redis command its store sends."""

    def retrieved(self, seconds: float, passages: int) -> None: ...

    def streamed(self, seconds: float, *, first: bool) -> None: ...

    def answered(self, *, covered: bool) -> None: ...

    def voted(self, vote: str, outcome: str) -> None: ...

    def called_a_human(self, why: str) -> None: ...
