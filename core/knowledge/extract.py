"""Text out of documents, cut where their headings (or pages) are, so each passage knows its place.

reStructuredText goes through docutils (also `.txt` that is reST, as Sphinx projects write), HTML
through BeautifulSoup keeping the main content only, PDF through pypdf page by page; Markdown
and plain text are read line by line, so a file of any size is never held whole.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path, PurePath
from typing import BinaryIO

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


def _pdf(source: Path | BinaryIO) -> Iterator[Section]:
    from pypdf import PdfReader

    for number, page in enumerate(PdfReader(source).pages, start=1):
        yield section([], [page.extract_text() or ""], page=number)


# --- Dispatch ---------------------------------------------------------------------------------


def _lines(path: Path) -> Iterator[str]:
    # Strict decoding: text that turns out not to be UTF-8 halfway raises UnicodeDecodeError.
    with path.open(encoding="utf-8-sig") as handle:
        yield from handle


def _is_rst(path: Path) -> bool:
    with path.open(encoding="utf-8-sig", errors="replace") as handle:
        head = handle.read(_BLOCK_CHARS)
    return _reads_as_rst(path.suffix.lower(), head, path.stat().st_size)


def _reads_as_rst(suffix: str, head: str, size: int) -> bool:
    """reST through docutils: `.rst`, or `.txt` that looks like reST; not too large for a tree."""
    hinted = suffix == ".rst" or (suffix == ".txt" and _RST_HINT.search(head) is not None)
    return hinted and size <= _TREE_MAX_BYTES


def _text_sections(
    suffix: str, lines: Callable[[], Iterable[str]], whole: Callable[[], str], rst: bool
) -> Iterable[Section]:
    """The one choice of extractor for text, whether it is read from a file or from memory."""
    if suffix in {".md", ".markdown"}:
        return _markdown(lines())
    if suffix in {".html", ".htm"}:
        from core.knowledge.extract_html import html_sections

        return html_sections(whole())
    if rst:
        from core.knowledge.extract_rst import rst_sections

        return rst_sections(whole())
    return _plain(lines())


def read_sections(path: Path) -> Iterator[Section]:
    """The sections of the document at `path` that hold text, in order.

    A heading is never a section by itself: it is carried in the `headings` of the text under
    it. Raises UnicodeDecodeError for text that is not UTF-8.
    """
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        sections: Iterable[Section] = _pdf(path)
    else:
        rst = suffix in {".rst", ".txt"} and _is_rst(path)
        sections = _text_sections(
            suffix, lambda: _lines(path), lambda: path.read_text(encoding="utf-8-sig"), rst
        )
    return (section for section in sections if section.text)


def sections_in(name: str, data: bytes) -> list[Section]:
    """The sections of a document held in memory (a file attached to a question), read by the
    same extractors as a file `name` on disk. Raises UnicodeDecodeError for text not UTF-8."""
    suffix = PurePath(name).suffix.lower()
    if suffix == ".pdf":
        sections: Iterable[Section] = _pdf(io.BytesIO(data))
    else:
        text = data.decode("utf-8-sig")
        rst = _reads_as_rst(suffix, text[:_BLOCK_CHARS], len(data))
        sections = _text_sections(suffix, lambda: io.StringIO(text), lambda: text, rst)
    return [section for section in sections if section.text]
