"""`threadbot ingest`: documents in, a searchable index out; unchanged files are not re-embedded."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from langchain_text_splitters import RecursiveCharacterTextSplitter

from core.retrieval import Chunk, Index, IndexMismatch

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

    from core.settings import Settings

log = logging.getLogger(__name__)

_SPLIT_VERSION = 2  # bump when read_sections or the splitting changes what chunks a file gives
SUFFIXES = {".md", ".markdown", ".txt", ".rst", ".html", ".htm", ".pdf"}
_ATX = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_RST_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+_.:])\1{2,}\s*$")

_BLANK_RUN = re.compile(r"\n\s*\n(\s*\n)+")
Section = tuple[str, str]  # (location, text)


@dataclass(frozen=True)
class IngestReport:
    files: int
    chunks: int
    embedded: int
    reused: int
    skipped: list[str]


def _heading_path(stack: list[tuple[int, str]]) -> str:
    return " › ".join(title for _, title in stack)


def _markdown_sections(text: str) -> Iterator[Section]:
    stack: list[tuple[int, str]] = []
    lines: list[str] = []
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        match = None if fenced else _ATX.match(line)
        if match is None:
            lines.append(line)
            continue
        yield _heading_path(stack), "\n".join(lines)
        level = len(match.group(1))
        stack = [item for item in stack if item[0] < level] + [(level, match.group(2))]
        lines = [line]
    yield _heading_path(stack), "\n".join(lines)


def _rst_sections(text: str) -> Iterator[Section]:
    levels: list[str] = []  # underline characters in the order the document introduces them
    stack: list[tuple[int, str]] = []
    lines: list[str] = []
    for line in text.splitlines():
        title = lines[-1].strip() if lines else ""
        if _RST_UNDERLINE.match(line) and title and len(line.strip()) >= len(title):
            lines.pop()
            if lines and _RST_UNDERLINE.match(lines[-1]):
                lines.pop()  # an overline
            yield _heading_path(stack), "\n".join(lines)
            if line[0] not in levels:
                levels.append(line[0])
            level = levels.index(line[0])
            stack = [item for item in stack if item[0] < level] + [(level, title)]
            lines = [title]
            continue
        lines.append(line)
    yield _heading_path(stack), "\n".join(lines)


class _HTMLSections(HTMLParser):
    _SKIP = frozenset({"script", "style", "noscript", "template"})
    _BLOCK = frozenset(
        {"p", "div", "li", "br", "tr", "pre", "section", "article", "table", "ul", "ol"}
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[Section] = []
        self._stack: list[tuple[int, str]] = []
        self._parts: list[str] = []
        self._skipping = 0
        self._heading: int | None = None
        self._title: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif re.fullmatch(r"h[1-6]", tag):
            self._flush()
            self._heading, self._title = int(tag[1]), []
        elif tag in self._BLOCK:
            self._parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skipping = max(self._skipping - 1, 0)
        elif self._heading is not None and tag == f"h{self._heading}":
            title = " ".join("".join(self._title).split())
            self._stack = [i for i in self._stack if i[0] < self._heading] + [
                (self._heading, title)
            ]
            self._parts.append(title + "\n")
            self._heading = None
        elif tag in self._BLOCK:
            self._parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._skipping:
            return
        (self._title if self._heading is not None else self._parts).append(data)

    def _flush(self) -> None:
        self.sections.append((_heading_path(self._stack), "".join(self._parts)))
        self._parts = []

    def close(self) -> None:
        super().close()
        self._flush()


def _html_sections(text: str) -> Iterator[Section]:
    parser = _HTMLSections()
    parser.feed(text)
    parser.close()
    yield from parser.sections


def _pdf_sections(path: Path) -> Iterator[Section]:
    from pypdf import PdfReader

    for number, page in enumerate(PdfReader(path).pages, start=1):
        yield f"page {number}", page.extract_text() or ""


def read_sections(path: Path, data: bytes) -> list[Section]:
    """The file's text, cut where its headings (or pages) are, so a passage can name its place.

    A section that holds nothing but its own heading is dropped: it would only match noise.
    """
    sections = []
    for location, text in _raw_sections(path, data):
        text = _BLANK_RUN.sub("\n\n", text).strip()
        heading = location.rsplit(" › ", 1)[-1]
        only_heading = bool(heading) and heading in text and len(text.splitlines()) == 1
        if text and not only_heading:
            sections.append((location, text))
    return sections


def _raw_sections(path: Path, data: bytes) -> list[Section]:
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        return list(_pdf_sections(path))
    text = data.decode("utf-8", errors="replace")
    if suffix in {".md", ".markdown"}:
        return list(_markdown_sections(text))
    if suffix == ".rst":
        return list(_rst_sections(text))
    if suffix in {".html", ".htm"}:
        return list(_html_sections(text))
    return [("", text)]


def find_files(paths: list[Path]) -> list[tuple[Path, str]]:
    """Every supported file under `paths`, with the name it is cited by (relative to its root)."""
    found: list[tuple[Path, str]] = []
    for root in paths:
        if root.is_file():
            found.append((root, root.name))
            continue
        if not root.is_dir():
            raise FileNotFoundError(f"no such file or folder: {root}")
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.suffix.lower() in SUFFIXES:
                if not any(part.startswith(".") for part in path.relative_to(root).parts):
                    found.append((path, path.relative_to(root).as_posix()))
    return found


def ingest(
    settings: Settings,
    paths: list[Path],
    embeddings: Embeddings,
    embeddings_name: str,
    *,
    progress: bool = True,
) -> IngestReport:
    """Build the index for exactly `paths` and make it live atomically.

    A file whose content hash and name match the live index keeps its chunks and vectors, so
    re-ingesting an unchanged folder embeds nothing.
    """
    from tqdm import tqdm

    root = settings.index_dir
    try:
        previous = Index.load(root)
    except IndexMismatch as exc:
        log.warning("ignoring the previous index (%s); everything is embedded again", exc)
        previous = None
    reusable = _reusable(previous, embeddings_name)
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=settings.chunk_size_chars, chunk_overlap=settings.chunk_overlap_chars
    )
    chunks: list[Chunk] = []
    rows: list[np.ndarray | None] = []  # a vector per chunk; None until embedded
    skipped: list[str] = []
    reused = 0
    # How a file is cut is part of its hash: new chunk settings or splitting rules re-embed.
    recipe = f"{_SPLIT_VERSION}:{settings.chunk_size_chars}:{settings.chunk_overlap_chars}:"
    recipe_bytes = recipe.encode()
    files = find_files(paths)
    if not files:
        # Replacing a live index with an empty one is never what a typo in a path meant.
        raise FileNotFoundError(f"no {', '.join(sorted(SUFFIXES))} files under the given paths")
    for path, source in files:
        try:
            data = path.read_bytes()
        except OSError as exc:  # one unreadable file must not stop the rest
            log.warning("skipping %s: %s", path, exc)
            skipped.append(source)
            continue
        digest = hashlib.sha256(recipe_bytes + data).hexdigest()
        if (source, digest) in reusable and previous is not None:
            for row in reusable[(source, digest)]:
                chunks.append(previous.chunks[row])
                rows.append(previous.vectors.reconstruct(row))
                reused += 1
            continue
        try:
            sections = read_sections(path, data)
        except Exception as exc:  # one unreadable file must not stop the rest
            log.warning("skipping %s: %s", path, exc)
            skipped.append(source)
            continue
        for location, text in sections:
            for piece in splitter.split_text(text):
                if piece.strip():
                    chunks.append(Chunk(piece.strip(), source, location, digest))
                    rows.append(None)
    todo = [i for i, row in enumerate(rows) if row is None]
    batch = settings.embedding_batch_size
    with tqdm(total=len(todo), desc="embedding", unit="chunk", disable=not progress) as bar:
        for start in range(0, len(todo), batch):
            ids = todo[start : start + batch]
            vectors = embeddings.embed_documents([chunks[i].text for i in ids])
            for i, vector in zip(ids, vectors, strict=True):
                rows[i] = np.asarray(vector, dtype=np.float32)
            bar.update(len(ids))
    vectors_by_row = [row for row in rows if row is not None]
    matrix = np.vstack(vectors_by_row) if vectors_by_row else np.zeros((0, 1), dtype=np.float32)
    Index.build(matrix, chunks, embeddings_name).save(root)
    return IngestReport(len(files), len(chunks), len(todo), reused, skipped)


def _reusable(previous: Index | None, embeddings_name: str) -> dict[tuple[str, str], list[int]]:
    if previous is None or previous.embeddings_name != embeddings_name:
        return {}
    rows: dict[tuple[str, str], list[int]] = {}
    for row, chunk in enumerate(previous.chunks):
        rows.setdefault((chunk.source, chunk.file_hash), []).append(row)
    return rows
