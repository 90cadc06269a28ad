"""Which folders are a docs build's output, and which of their files the build generated."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from core.knowledge.builds import DOCUSAURUS, MKDOCS, SPHINX, build_at
from tests.core.knowledge.built_sites import mkdocs_build, sphinx_build


def test_a_sphinx_build_is_known_by_two_of_its_marks(tmp_path: Path):
    assert build_at(sphinx_build(tmp_path / "html")) is SPHINX
    sources = tmp_path / "project"
    sources.mkdir()
    (sources / "objects.inv").write_bytes(b"# Sphinx inventory version 2\n")  # for intersphinx
    (sources / "_sources").mkdir()
    assert build_at(sources) is None  # one mark alone: a source folder keeping an inventory
    (sources / "searchindex.js").write_text("Search.setIndex({})")
    assert build_at(sources) is SPHINX


def test_mkdocs_and_docusaurus_builds(tmp_path: Path):
    assert build_at(mkdocs_build(tmp_path / "site")) is MKDOCS
    plain = tmp_path / "plain"
    (plain / "search").mkdir(parents=True)
    (plain / "sitemap.xml").write_text("<urlset/>")  # a sitemap alone is not MkDocs
    assert build_at(plain) is None
    (plain / "index.html").write_text('<meta name="generator" content="mkdocs-1.6.1">')
    assert build_at(plain) is MKDOCS
    docusaurus = tmp_path / "build"
    docusaurus.mkdir()
    (docusaurus / "index.html").write_text(
        '<html><head><meta name="generator" content="Docusaurus v3.5.2"></head></html>'
    )
    assert build_at(docusaurus) is DOCUSAURUS


def test_what_sphinx_generated(tmp_path: Path):
    def generated(name: str) -> bool:
        return SPHINX.generated(PurePosixPath(name))

    assert all(
        generated(name)
        for name in (
            "_sources/library/os.rst.txt", "_static/basic.css", "_images/a.png",
            "_modules/harbor/client.html", "searchindex.js", "genindex.html",
            "genindex-A.html", "genindex-all.html", "search.html", "py-modindex.html",
            "search/index.html", "genindex/index.html",
        )
    )  # fmt: skip
    assert not any(
        generated(name)
        for name in ("index.html", "library/os.html", "guide/genindex-notes.html", "_sources")
    )
