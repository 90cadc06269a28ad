"""A document's text in sections, each under its heading path: what every extractor returns."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

SEPARATOR = " › "
_BLANK_RUN = re.compile(r"\n\s*\n(\s*\n)+")
# A code fence line (its info string too): one rule for the extractors and the splitter.
FENCE_LINE = re.compile(r"^[ \t]*(```|~~~).*$", re.MULTILINE)


@dataclass(frozen=True)
class Section:
    """A stretch of a document under one heading path (`headings`), or on one PDF page."""

    text: str
    headings: str = ""
    page: int | None = None

    @property
    def location(self) -> str:
        return f"page {self.page}" if self.page is not None else self.headings


def section(headings: list[str], parts: Iterable[str], page: int | None = None) -> Section:
    text = _BLANK_RUN.sub("\n\n", "".join(parts)).strip()
    return Section(text, SEPARATOR.join(headings), page)


def code_block(text: str) -> str:
    return f"```\n{text.strip(chr(10))}\n```"
