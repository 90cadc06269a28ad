"""Which files an ingest may read: inside the folder given, not ignored, not too large, text.

Whoever can ask the bot can read what was indexed, so a symlink that leads out of the folder
being ingested is never followed, and binary files never become passages.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pathspec

from core.errors import NothingToIndex

SUFFIXES = frozenset({".md", ".markdown", ".txt", ".rst", ".html", ".htm", ".pdf"})
IGNORE_FILE = ".threadbotignore"
_SNIFF_BYTES = 8192

# Reasons a file is skipped, as the ingest summary names them.
OUTSIDE = "symlink out of the folder"
IGNORED = "ignored"
TOO_LARGE = "too large"
BINARY = "binary"
UNDECODABLE = "not UTF-8 text"
OTHER_TYPE = "not a document type"


@dataclass(frozen=True)
class SourceFile:
    """A file to index: `path` is its resolved location, `source` the name it is cited by."""

    path: Path
    source: str
    root: Path


@dataclass
class Found:
    files: list[SourceFile] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=dict)  # reason -> sources

    def skip(self, reason: str, source: str) -> None:
        self.skipped.setdefault(reason, []).append(source)


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _ignore_spec(root: Path, patterns: list[str]) -> pathspec.GitIgnoreSpec:
    lines = list(patterns)
    ignore_file = root / IGNORE_FILE
    if ignore_file.is_file() and not ignore_file.is_symlink():
        lines += ignore_file.read_text(encoding="utf-8", errors="replace").splitlines()
    return pathspec.GitIgnoreSpec.from_lines(lines)


def _walk(folder: Path) -> Iterator[Path]:
    """Every entry under `folder`, hidden ones (.git, .venv) left out, symlinked folders unopened.

    A symlinked folder is yielded, not entered: its target is either inside the folder (and
    walked there anyway) or outside it (and must not be read).
    """
    for current, dirs, names in os.walk(folder):
        base = Path(current)
        for name in sorted(dirs):
            if (base / name).is_symlink() and not name.startswith("."):
                yield base / name
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if not name.startswith("."):
                yield base / name


def find_files(
    target: Path, *, root: Path | None = None, ignore: list[str], max_bytes: int
) -> Found:
    """The document files under `target` (a folder or one file), cited relative to `root`.

    `root` defaults to the folder `target` is (or, for a file, the folder it is in); ignore
    patterns are matched relative to it, gitignore-style, and its `.threadbotignore` is read.
    Nothing that resolves outside `target` is returned.
    """
    if not target.exists():
        raise NothingToIndex(f"no such file or folder: {target}")
    folder = target if target.is_dir() else target.parent
    boundary = folder.resolve()
    root = Path(os.path.abspath(root or folder))
    spec = _ignore_spec(root, ignore)
    found = Found()
    entries = _walk(target) if target.is_dir() else iter([target])
    for entry in entries:
        absolute = Path(os.path.abspath(entry))
        source = absolute.relative_to(root).as_posix()
        real = entry.resolve()
        if not _inside(real, boundary):
            found.skip(OUTSIDE, source)
            continue
        if real.is_dir():
            continue  # a link to a folder inside: walked under its own name
        if spec.match_file(source):
            found.skip(IGNORED, source)
        elif entry.suffix.lower() not in SUFFIXES:
            found.skip(OTHER_TYPE, source)
        elif real.stat().st_size > max_bytes:
            found.skip(TOO_LARGE, source)
        else:
            reason = sniff(real)
            if reason is None:
                found.files.append(SourceFile(real, source, root))
            else:
                found.skip(reason, source)
    return found


def sniff(path: Path) -> str | None:
    """Why `path` is not a readable document (binary, not UTF-8), or None when it is.

    Reads only the head of the file: a NUL byte or invalid UTF-8 there marks an executable or
    random bytes under a text name; a PDF must start like one. Text that turns out invalid
    later is caught while it is read.
    """
    with path.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    if path.suffix.lower() == ".pdf":
        return None if head.startswith(b"%PDF-") else BINARY
    if b"\0" in head:
        return BINARY
    try:
        # The head may end inside a multi-byte character: allow an incomplete last one.
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:
            return UNDECODABLE
    return None
