"""Files attached to a question, read as text for that one answer: which, how much, and why not.

The knowledge base's own extractors read them (Markdown by its headings, PDF page by page), so
a file attached reads as the same file ingested would. A file is refused by its name and type
before anything is downloaded, and by its size both before (what the platform says) and while
reading (what arrives); each refusal is one line the answer shows, so nobody wonders whether
the bot saw their log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath

from core.answer.asked import Attachment
from core.errors import FileRefused
from core.knowledge.extract import sections_in
from core.knowledge.retrieval import printable
from core.knowledge.sections import Section

log = logging.getLogger(__name__)

# Text people paste or attach: prose, logs, data, configuration and code.
TEXT_SUFFIXES = frozenset(
    ".txt .text .md .markdown .rst .log .out .csv .tsv .json .jsonl .ndjson .yaml .yml .toml .ini "
    ".cfg .conf .xml .html .htm .diff .patch .sql .py .pyi .js .mjs .ts .tsx .jsx .go .rs .java "
    ".kt .scala .c .h .cc .cpp .hpp .cs .rb .php .pl .lua .r .swift .sh .bash .zsh .ps1 .tf .proto "
    ".gradle .dockerfile .graphql .vue .svelte .css .scss".split()
)
TEXT_MIMETYPES = frozenset(
    {
        "application/json",
        "application/x-ndjson",
        "application/xml",
        "application/x-yaml",
        "application/yaml",
        "application/toml",
        "application/javascript",
        "application/x-sh",
        "application/sql",
    }
)
PDF_MIMETYPE = "application/pdf"
READ_TIMEOUT_S = 60.0  # every file of a question, downloaded and read together


@dataclass(frozen=True)
class FileText:
    """An attached file's text as the model is given it; `cut` when the file goes on."""

    name: str
    text: str
    cut: bool
    sections: Sequence[Section] = ()


@dataclass(frozen=True)
class FileLimits:
    max_files: int
    max_bytes: int
    max_chars: int


@dataclass
class ReadFiles:
    """The files read, and one line for each that was not."""

    texts: list[FileText]
    refused: list[str]


def _kind(file: Attachment) -> str | None:
    """ "pdf", "text", or None for a type that is not read, judged by name and type alone."""
    suffix = PurePath(file.name).suffix.lower()
    mimetype = (file.mimetype or "").split(";")[0].strip().lower()
    if suffix == ".pdf" or mimetype == PDF_MIMETYPE:
        return "pdf"
    if suffix in TEXT_SUFFIXES or mimetype.startswith("text/") or mimetype in TEXT_MIMETYPES:
        return "text"
    return None


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def _extract(name: str, kind: str, data: bytes, max_chars: int) -> FileText:
    """Blocking (PDF parsing): run in a worker thread. Raises FileRefused."""
    if kind == "text" and b"\x00" in data:
        raise FileRefused("not a text file")
    # A snippet or a file without a known suffix is read as plain text.
    as_name = name if kind == "pdf" or PurePath(name).suffix.lower() in TEXT_SUFFIXES else "x.txt"
    if kind == "pdf" and PurePath(as_name).suffix.lower() != ".pdf":
        as_name = "x.pdf"
    try:
        sections = sections_in(as_name, data)
    except UnicodeDecodeError as exc:
        raise FileRefused("not UTF-8 text") from exc
    except Exception as exc:  # a damaged PDF: pypdf raises many kinds
        log.info("could not read the attached %s: %r", name, exc)
        raise FileRefused("could not be read") from exc
    text = "\n\n".join(
        f"({part.location})\n{part.text}" if part.location else part.text for part in sections
    )
    if not text.strip():
        raise FileRefused("no text in it")
    return FileText(name, text[:max_chars], len(text) > max_chars, sections)


async def read_files(files: Sequence[Attachment], limits: FileLimits) -> ReadFiles:
    """Read what may be read of `files`, all at once and within `READ_TIMEOUT_S` together
    (the conversation waits meanwhile); in their order; never raises."""
    reads = [_read_one(number, file, limits) for number, file in enumerate(files)]
    tasks = [asyncio.ensure_future(read) for read in reads]
    _, late = await asyncio.wait(tasks, timeout=READ_TIMEOUT_S) if tasks else (set(), set())
    for task in late:
        task.cancel()
    found = ReadFiles([], [])
    for file, task in zip(files, tasks, strict=True):
        if task in late:
            found.refused.append(f"{_name(file)}: not downloaded within {READ_TIMEOUT_S:.0f}s")
            continue
        result = task.result()
        if isinstance(result, FileText):
            found.texts.append(result)
        else:
            found.refused.append(result)
    return found


def _name(file: Attachment) -> str:
    return printable(file.name) or "(unnamed file)"


async def _read_one(number: int, file: Attachment, limits: FileLimits) -> FileText | str:
    """The file's text, or the line saying why it is not read."""
    name = _name(file)
    if number >= limits.max_files:
        if not limits.max_files:
            return f"{name}: files are not read here (FILES_MAX=0)"
        return f"{name}: not read (only the first {limits.max_files} files of a question are)"
    kind = _kind(file)
    if kind is None:
        return f"{name}: not a text file"
    limit = _megabytes(limits.max_bytes)
    if file.size is not None and file.size > limits.max_bytes:
        return f"{name}: too large ({_megabytes(file.size)}; limit {limit})"
    try:
        data = await file.read(limits.max_bytes)
        if len(data) > limits.max_bytes:  # the platform's size was wrong, or missing
            return f"{name}: too large (over the limit, {limit})"
        return await asyncio.to_thread(_extract, name, kind, data, limits.max_chars)
    except FileRefused as exc:
        return f"{name}: {exc}"
    except Exception as exc:  # an adapter's client failing otherwise: this file only
        log.warning("could not download the attached %s: %r", name, exc)
        return f"{name}: could not be downloaded"
