"""Attached files read as text: refused by type and size before any download, by what arrives
after, and read by the knowledge base's own extractors (Markdown headings, PDF pages)."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import pytest
from pypdf import PdfWriter

from core.answer.attachments import FileLimits, read_files
from core.errors import FileRefused
from tests.core.knowledge.test_ingest import tiny_pdf

MB = 1024 * 1024
LIMITS = FileLimits(max_files=5, max_bytes=5 * MB, max_chars=20_000)


@dataclass
class File:
    """An attachment as a platform gives it: metadata now, bytes when read (`reads` counts)."""

    name: str
    data: bytes = b"some text"
    mimetype: str = ""
    size: int | None = -1  # -1: the data's true size
    refuse: str | Exception | None = None  # read() raises FileRefused with this reason (or it)
    reads: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.size == -1:
            self.size = len(self.data)

    async def read(self, limit: int) -> bytes:
        self.reads.append(limit)
        if isinstance(self.refuse, Exception):
            raise self.refuse
        if self.refuse is not None:
            raise FileRefused(self.refuse)
        return self.data[: limit + 1]


def blank_pdf() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=612, height=792)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


async def test_types_that_are_not_text_are_refused_before_anything_is_read():
    files = [
        File("deploy.bin", b"\x7fELF", "application/octet-stream"),
        File("photo.png", b"\x89PNG", "image/png"),
        File("notes", b"plain words", "text/plain; charset=utf-8"),  # a snippet: no suffix
        File("scan", tiny_pdf(["Scanned words"]), "application/pdf"),  # a PDF by its type
    ]
    found = await read_files(files, LIMITS)
    assert found.refused == ["deploy.bin: not a text file", "photo.png: not a text file"]
    assert files[0].reads == files[1].reads == []
    assert [(f.name, f.text) for f in found.texts] == [
        ("notes", "plain words"),
        ("scan", "(page 1)\nScanned words"),
    ]


async def test_size_is_refused_from_the_metadata_and_again_from_what_arrives():
    told = File("big.log", size=10 * MB)
    lying = File("small.log", b"x" * (5 * MB + 100), size=10)  # says 10 bytes
    unknown = File("unknown.log", b"x" * (5 * MB + 1), size=None)
    found = await read_files([told, lying, unknown], LIMITS)
    assert found.refused == [
        "big.log: too large (10.0 MB; limit 5.0 MB)",
        "small.log: too large (over the limit, 5.0 MB)",
        "unknown.log: too large (over the limit, 5.0 MB)",
    ]
    assert told.reads == [] and lying.reads == unknown.reads == [5 * MB]
    assert found.texts == []


@pytest.mark.parametrize(
    ("file", "reason"),
    [
        (File("x.txt", b"head\x00\x01tail"), "not a text file"),
        (File("latin.txt", "café".encode("latin-1")), "not UTF-8 text"),
        (File("broken.pdf", b"%PDF-1.4 not really"), "could not be read"),
        (File("blank.pdf", blank_pdf()), "no text in it"),
        (File("empty.md", b"\n\n  \n"), "no text in it"),
        (File("x.log", refuse="could not be downloaded"), "could not be downloaded"),
    ],
    ids=["nul", "latin-1", "damaged-pdf", "blank-pdf", "blank-text", "refused-read"],
)
async def test_a_file_that_cannot_be_read_is_one_line_naming_it(file: File, reason: str):
    found = await read_files([file], LIMITS)
    assert found.texts == [] and found.refused == [f"{file.name}: {reason}"]


async def test_only_the_first_files_are_read():
    files = [File(f"f{n}.txt", f"text {n}".encode()) for n in range(7)]
    found = await read_files(files, FileLimits(max_files=5, max_bytes=MB, max_chars=100))
    assert [f.text for f in found.texts] == [f"text {n}" for n in range(5)]
    assert found.refused == [
        f"f{n}.txt: not read (only the first 5 files of a question are)" for n in (5, 6)
    ]
    assert files[5].reads == files[6].reads == []


async def test_text_is_cut_at_max_chars_and_says_so():
    limits = FileLimits(max_files=5, max_bytes=MB, max_chars=100)
    found = await read_files([File("long.txt", b"a" * 250), File("exact.txt", b"b" * 100)], limits)
    long, exact = found.texts
    assert (long.text, long.cut) == ("a" * 100, True)
    assert (exact.text, exact.cut) == ("b" * 100, False)


async def test_markdown_keeps_its_headings_and_a_pdf_its_pages():
    markdown = b"# Deploy\n\nRun make deploy.\n\n## Rollback\n\nRun make undo.\n"
    pdf = tiny_pdf(["Cover page", "The printer code is 4711"])
    found = await read_files([File("notes.md", markdown), File("manual.pdf", pdf)], LIMITS)
    notes, manual = found.texts
    assert notes.text == "(Deploy)\nRun make deploy.\n\n(Deploy › Rollback)\nRun make undo."
    assert manual.text == "(page 1)\nCover page\n\n(page 2)\nThe printer code is 4711"
    assert [s.location for s in manual.sections] == ["page 1", "page 2"]
    assert found.refused == []


async def test_a_read_that_breaks_otherwise_still_costs_only_that_file():
    files = [File("a.log", refuse=ConnectionResetError("reset by peer")), File("b.txt")]
    found = await read_files(files, LIMITS)
    assert [f.name for f in found.texts] == ["b.txt"]
    assert len(found.refused) == 1 and found.refused[0].startswith("a.log: ")
