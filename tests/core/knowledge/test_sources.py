"""Which files an ingest reads: symlinks never lead out, binaries and big files are skipped."""

from __future__ import annotations

import os
from pathlib import Path

from core.knowledge.sources import (
    BINARY,
    IGNORED,
    OTHER_TYPE,
    OUTSIDE,
    TOO_LARGE,
    UNDECODABLE,
    find_files,
)


def found(target: Path, **kwargs) -> tuple[list[str], dict[str, list[str]]]:
    options = {"ignore": [], "max_bytes": 1 << 20, **kwargs}
    result = find_files(target, **options)
    return [f.source for f in result.files], result.skipped


def test_a_symlink_out_of_the_folder_is_never_followed(tmp_path: Path):
    secret = tmp_path / "outside"
    secret.mkdir()
    (secret / "passwd.txt").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (secret / "keys.md").write_text("# Keys\n\nsecret\n")
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "guide.md").write_text("# Guide\n\nHello.\n")
    (docs / "passwd.txt").symlink_to(secret / "passwd.txt")
    (docs / "etc").symlink_to(secret, target_is_directory=True)
    (docs / "sub" / "up.md").symlink_to("../guide.md")  # stays inside: fine
    (docs / "sub" / "loop").symlink_to("..", target_is_directory=True)  # inside: not re-walked

    files, skipped = found(docs)
    assert files == ["guide.md", "sub/up.md"]
    assert sorted(skipped[OUTSIDE]) == ["etc", "passwd.txt"]
    # Naming the link itself does not make it safe: it still leads out of its folder.
    files, skipped = found(docs / "passwd.txt")
    assert files == [] and skipped[OUTSIDE] == ["passwd.txt"]
    result = find_files(docs, ignore=[], max_bytes=1 << 20)
    assert all(f.path.resolve().is_relative_to(docs.resolve()) for f in result.files)


def test_binary_and_undecodable_files_are_skipped(tmp_path: Path):
    (tmp_path / "random.txt").write_bytes(os.urandom(4096))
    (tmp_path / "program.md").write_bytes(b"\x7fELF\x02\x01\x01\x00" + os.urandom(2000))
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 cr\xe8me br\xfbl\xe9e\n".encode("latin-1") * 3)
    (tmp_path / "fake.pdf").write_bytes(b"MZ\x90\x00 not a pdf")
    (tmp_path / "ok.txt").write_text("Plain text, caf\u00e9 included.\n")
    (tmp_path / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n")

    files, skipped = found(tmp_path)
    assert files == ["ok.txt"]
    assert {"fake.pdf", "program.md"} <= set(skipped[BINARY])
    # Random bytes hold a NUL in 4 kB almost surely; if not, they are not UTF-8 either.
    assert sorted(skipped.get(BINARY, []) + skipped.get(UNDECODABLE, [])) == [
        "fake.pdf", "latin1.txt", "program.md", "random.txt"
    ]  # fmt: skip
    assert skipped[OTHER_TYPE] == ["photo.png"]


def test_files_over_the_size_limit_are_skipped(tmp_path: Path):
    (tmp_path / "small.md").write_text("small\n")
    (tmp_path / "big.md").write_text("x" * 5000)
    files, skipped = found(tmp_path, max_bytes=4096)
    assert files == ["small.md"] and skipped[TOO_LARGE] == ["big.md"]


def test_ignore_file_and_setting_patterns(tmp_path: Path):
    (tmp_path / "drafts").mkdir()
    (tmp_path / "api" / "internal").mkdir(parents=True)
    for name in ("guide.md", "drafts/plan.md", "api/index.md", "api/internal/x.md", "notes.txt"):
        (tmp_path / name).write_text("text\n")
    (tmp_path / ".hidden.md").write_text("never indexed")
    (tmp_path / ".threadbotignore").write_text("# comment\ndrafts/\n/api/internal/\n")

    files, skipped = found(tmp_path, ignore=["*.txt"])
    assert sorted(files) == ["api/index.md", "guide.md"]
    assert sorted(skipped[IGNORED]) == ["api/internal/x.md", "drafts/plan.md", "notes.txt"]
    # Patterns are relative to the root the files are cited from, also when walking below it.
    files, skipped = found(tmp_path / "api", root=tmp_path, ignore=[])
    assert files == ["api/index.md"] and skipped[IGNORED] == ["api/internal/x.md"]
