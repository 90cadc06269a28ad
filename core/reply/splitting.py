"""Where a reply too long for one message is cut: at a paragraph, a line, a sentence or a word,
never inside a code fence (a fence too long for one message is closed and opened again)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_FENCE = re.compile(r"^ {0,3}(```+|~~~+)(.*)$", re.MULTILINE)
_SENTENCE_END = re.compile(r"[.!?][)\"'\]]*\s")


@dataclass(frozen=True)
class _Fence:
    """An open code fence at a cut: its opening line is repeated at the top of the next part."""

    opening: str
    marker: str


def _open_fence(text: str) -> _Fence | None:
    """The code fence still open at the end of `text`, if any."""
    opening: _Fence | None = None
    for match in _FENCE.finditer(text):
        ticks, info = match.group(1), match.group(2)
        if opening is None:
            opening = _Fence(opening=match.group(0).strip(), marker=ticks)
        elif ticks.startswith(opening.marker) and not info.strip():
            opening = None
    return opening


def _last_boundary(text: str, limit: int) -> int:
    """Best cut at or below `limit`: a paragraph, a line, a sentence, a word, else hard."""
    window = text[:limit]
    floor = limit // 3  # a cut that leaves a tiny part is worse than the next kind of boundary
    for sep in ("\n\n", "\n"):
        at = window.rfind(sep)
        if at > floor:
            return at
    sentences = [m.end() - 1 for m in _SENTENCE_END.finditer(window)]
    if sentences and sentences[-1] > floor:
        return sentences[-1]
    at = window.rfind(" ")
    return at if at > floor else limit


def cut(text: str, limit: int) -> tuple[str, str, int]:
    """Where to cut `text` (longer than `limit`) so that both parts render on their own: (head,
    fence line to reopen the tail with, index the tail starts at).

    The head ends on the best boundary; a cut that would fall inside a code fence moves before the
    fence, or, when the fence itself is too long for one message, closes it in the head and
    reopens it (same language) at the top of the tail.
    """
    cut = _last_boundary(text, limit)
    fence = _open_fence(text[:cut])
    if fence is not None:
        start = text.rfind(fence.opening, 0, cut)
        before = text[:start].rstrip()
        if before:
            return before, "", start
        # The fence starts the part: cut inside it, at a line if there is one.
        line = text.rfind("\n", 0, limit)
        cut = line if line > len(fence.opening) else limit
        rest = cut + 1 if text[cut : cut + 1] == "\n" else cut
        return f"{text[:cut].rstrip(chr(10))}\n{fence.marker}", f"{fence.opening}\n", rest
    rest = cut
    while rest < len(text) and text[rest].isspace():
        rest += 1
    return text[:cut].rstrip(), "", rest
