"""Which files an ingest reads: symlinks never lead out, binaries, big files and a docs build's
generated copies are skipped."""

from __future__ import annotations

import os
from pathlib import Path

from core.knowledge.sources import (
    BINARY,
    GENERATED,
    IGNORED,
    OTHER_TYPE,
    OUTSIDE,
    TOO_LARGE,
    UNDECODABLE,
    find_files,
)
from tests.core.knowledge.built_sites import mkdocs_build, sphinx_build


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


def test_what_a_docs_build_generated_is_skipped_as_a_generated_copy(tmp_path: Path):
    sphinx_build(tmp_path / "repo" / "docs" / "_build" / "html")
    (tmp_path / "repo" / "README.md").write_text("# Harbor\n")
    files, skipped = found(tmp_path / "repo")
    assert sorted(files) == [
        "README.md", "docs/_build/html/api.html", "docs/_build/html/guide/config.html",
        "docs/_build/html/guide/install.html", "docs/_build/html/index.html",
    ]  # fmt: skip
    html = "docs/_build/html/"
    assert sorted(s.removeprefix(html) for s in skipped[GENERATED]) == [
        "_images/diagram.png", "_sources/api.rst.txt", "_sources/guide/config.rst.txt",
        "_sources/guide/install.rst.txt", "_sources/index.rst.txt", "_static/basic.css",
        "_static/documentation_options.js", "_static/searchtools.js", "genindex-H.html",
        "genindex.html", "objects.inv", "py-modindex.html", "search.html", "searchindex.js",
    ]  # fmt: skip
    assert OTHER_TYPE not in skipped
    files, skipped = found(sphinx_build(tmp_path / "dirhtml", dirhtml=True))
    assert sorted(files) == [
        "api/index.html", "guide/config/index.html", "guide/install/index.html", "index.html"
    ]  # fmt: skip
    assert {"genindex/index.html", "search/index.html"} <= set(skipped[GENERATED])
    files, skipped = found(mkdocs_build(tmp_path / "site"))
    assert "404.html" not in files and len(files) == 4
    assert sorted(skipped[GENERATED]) == [
        "404.html", "search/search_index.json", "sitemap.xml", "sitemap.xml.gz"
    ]  # fmt: skip


def test_a_folder_with_a_sources_folder_of_its_own_is_read(tmp_path: Path):
    (tmp_path / "_sources").mkdir()
    (tmp_path / "_sources" / "intro.rst.txt").write_text("Intro\n=====\n\nHello.\n")
    (tmp_path / "_static").mkdir()
    (tmp_path / "_static" / "notes.md").write_text("# Notes\n")
    (tmp_path / "search.html").write_text("<h1>How to search the wiki</h1>")
    files, skipped = found(tmp_path)
    assert sorted(files) == ["_sources/intro.rst.txt", "_static/notes.md", "search.html"]
    assert GENERATED not in skipped


def test_a_generated_file_named_on_its_own_is_read(tmp_path: Path):
    html = sphinx_build(tmp_path / "html")
    files, _ = found(html / "_sources" / "api.rst.txt")
    assert files == ["api.rst.txt"]
