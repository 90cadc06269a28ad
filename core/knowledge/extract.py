"""Text out of documents, cut where their headings (or pages) are, so each passage knows its place.

reStructuredText goes through docutils (also `.txt` that is reST, as Sphinx projects write), HTML
through BeautifulSoup keeping the main content only, PDF through pypdf page by page; Markdown
and plain text are read line by line, so a file of any size is never held whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from core.knowledge.sections import FENCE_LINE, Section, section

_BLOCK_CHARS = 65_536  # text handed on at once from a long stretch without headings
_TREE_MAX_BYTES = 8 * 1024 * 1024  # larger reST is read as plain text: a doctree costs ~30x
_ATX = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_RST_HINT = re.compile(
    r"^(\.\. [\w:.+-]+::|([=\-~^\"'`#*+])\2{3,}[ \t]*$)|:[\w:.+-]+:`[^`]+`", re.MULTILINE
)


# --- Markdown and plain text: streamed line by line ------------------------------------------


def _plain(lines: Iterable[str]) -> Iterator[Section]:
    parts: list[str] = []
    size = 0
    for line in lines:
        parts.append(line)
        size += len(line)
        if size > _BLOCK_CHARS and not line.strip():
            yield section([], parts)
            parts, size = [], 0
    yield section([], parts)


def _markdown(lines: Iterable[str]) -> Iterator[Section]:
    stack: list[tuple[int, str]] = []
    parts: list[str] = []
    size = 0
    fenced = False
    for line in lines:
        if FENCE_LINE.match(line):
            fenced = not fenced
        match = None if fenced else _ATX.match(line.rstrip("\n"))
        if match is not None:
            yield section([title for _, title in stack], parts)
            level = len(match.group(1))
            stack = [item for item in stack if item[0] < level] + [(level, match.group(2))]
            parts, size = [], 0
            continue
        parts.append(line)
        size += len(line)
        if size > _BLOCK_CHARS and not fenced and not line.strip():
            yield section([title for _, title in stack], parts)
            parts, size = [], 0
    yield section([title for _, title in stack], parts)


# --- PDF --------------------------------------------------------------------------------------


def _pdf(path: Path) -> Iterator[Section]:
    from pypdf import PdfReader

    for number, page in enumerate(PdfReader(path).pages, start=1):
        yield section([], [page.extract_text() or ""], page=number)


# --- Dispatch ---------------------------------------------------------------------------------


def _lines(path: Path) -> Iterator[str]:
    # Strict decoding: text that turns out not to be UTF-8 halfway raises UnicodeDecodeError.
    with path.open(encoding="utf-8-sig") as handle:
        yield from handle


def _is_rst(path: Path) -> bool:
    with path.open(encoding="utf-8-sig", errors="replace") as handle:
        head = handle.read(_BLOCK_CHARS)
    return path.stat().st_size <= _TREE_MAX_BYTES and _RST_HINT.search(head) is not None


def read_sections(path: Path) -> Iterator[Section]:
    """The sections of the document at `path` that hold text, in order.

    A heading is never a section by itself: it is carried in the `headings` of the text under
    it. Raises UnicodeDecodeError for text that is not UTF-8.
    """
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        sections: Iterable[Section] = _pdf(path)
    elif suffix in {".md", ".markdown"}:
        sections = _markdown(_lines(path))
    elif suffix in {".html", ".htm"}:
        from core.knowledge.extract_html import html_sections

        sections = html_sections(path.read_text(encoding="utf-8-sig"))
    elif suffix == ".rst" or (suffix == ".txt" and _is_rst(path)):
        if path.stat().st_size <= _TREE_MAX_BYTES:
            from core.knowledge.extract_rst import rst_sections

            sections = rst_sections(path.read_text(encoding="utf-8-sig"))
        else:
            sections = _plain(_lines(path))
    else:
        sections = _plain(_lines(path))
    return (section for section in sections if section.text)
