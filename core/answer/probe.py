"""What the answer flow reports while it runs (retrieval, the model's stream), for metrics."""

from __future__ import annotations


class AnswerProbe:
    """Told the timings of each answer as it goes; this base ignores them.

    Implementations (`core.ops.metrics.Metrics`) must return at once and never raise: they are
    called inside the answer's stream.
    """

    def retrieved(self, seconds: float, passages: int) -> None:
        """A search for the question took `seconds` and returned `passages` passages."""

    def streamed(self, seconds: float, *, first: bool) -> None:
        """The model gave a chunk `seconds` after the request started (`first`: its first)."""
