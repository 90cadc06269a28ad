"""The scripted answer the platform benchmarks stream, so their call counts compare."""

from __future__ import annotations

CHUNK_CHARS = 8  # about two tokens per chunk, as chat models stream


def sample_answer(chars: int) -> str:
    """`chars` characters of prose in paragraphs, ending on a full stop."""
    sentence = "Threadbot streams this answer by editing one message in place. "
    paragraphs, text = [], ""
    while len(text) < chars:
        paragraphs.append(sentence * 3)
        text = "\n\n".join(paragraphs)
    return text[: chars - 1].rstrip() + "."
