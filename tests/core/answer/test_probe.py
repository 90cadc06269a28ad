"""The answer flow's probe: the base is told every timing and ignores it, cheaply."""

from __future__ import annotations

import pytest

from core.answer.probe import AnswerProbe


def test_the_base_ignores_every_timing() -> None:
    probe = AnswerProbe()
    assert probe.retrieved(0.25, 4) is None
    assert probe.retrieved(0.0, 0) is None
    assert probe.streamed(0.5, first=True) is None
    assert probe.streamed(1.5, first=False) is None
    assert probe.answered(covered=False) is None
    assert vars(probe) == {}  # it keeps nothing


def test_first_is_named_at_every_call() -> None:
    with pytest.raises(TypeError):
        AnswerProbe().streamed(0.5, True)  # type: ignore[misc]
