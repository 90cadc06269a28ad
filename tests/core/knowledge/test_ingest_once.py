"""One passage once: a built docs site is read without its generated copies, a text found in
several files is indexed from the page a reader opens, and a repeat comes back when that page
goes."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.knowledge.ingest import ingest, remove, text_key
from core.knowledge.retrieval import Index, Retriever
from core.knowledge.sources import GENERATED
from tests.conftest import MakeSettings
from tests.core.knowledge.built_sites import PAGES, SUPPORT, mkdocs_build, sphinx_build
from tests.core.knowledge.test_ingest import CountingEmbeddings, HashEmbeddings, cached_rows


@pytest.fixture(scope="module")
def embeddings() -> CountingEmbeddings:
    return CountingEmbeddings()


def texts_once(index: Index) -> bool:
    keys = [text_key(c.text) for c in index.chunks]
    return len(keys) == len(set(keys))


async def test_a_sphinx_build_is_indexed_from_its_pages_each_text_once(
    tmp_path: Path, make_settings: MakeSettings, embeddings: CountingEmbeddings
):
    html = sphinx_build(tmp_path / "html")
    settings = make_settings()
    report = ingest(settings, [html], embeddings, embeddings.name, progress=False)
    assert report.files == 4 and not report.failed
    assert len(report.skipped[GENERATED]) == 14  # 4 source copies, _static, indexes, search
    assert set(report.skipped) == {GENERATED}
    index = Index.load(settings.index_dir, with_repeats=True)
    assert index is not None
    assert {c.source for c in index.chunks} == {
        "index.html", "guide/install.html", "guide/config.html", "api.html"
    }  # fmt: skip
    # The Support paragraph of two pages: once, from the shorter path; the other kept aside.
    assert report.repeats == 1 and report.chunks == len(index.chunks) == 5
    assert [c.citation for c in index.chunks if c.text == SUPPORT] == [
        "guide/config.html › Configuration › Support"
    ]
    assert [(r.chunk.citation, r.at) for r in index.repeats] == [
        ("guide/install.html › Install › Support", 1)
    ]
    assert texts_once(index)

    # No question finds the same text twice, or a source copy.
    retriever = Retriever(settings.index_dir, embeddings, embeddings.name, k=4)
    questions = [
        "where do I get help?", "how much memory does Harbor need?", "which bucket holds images?",
        "when does a robot token expire?", "what is Harbor?",
    ]  # fmt: skip
    for question, passages in zip(questions, retriever.search_many(questions), strict=True):
        assert passages, question
        keys = [text_key(p.chunk.text) for p in passages]
        assert len(keys) == len(set(keys)), question
        assert all(p.chunk.source.endswith(".html") for p in passages)
    best = retriever.search_many(["how much memory does Harbor need?"])[0][0]
    assert best.chunk.citation == "guide/install.html › Install › Requirements"

    embeddings.embedded.clear()
    again = ingest(settings, [html], embeddings, embeddings.name, progress=False)
    assert not again.written and again.repeats == 1 and embeddings.embedded == []


def test_an_mkdocs_build_leaves_out_its_error_page_and_search_index(
    tmp_path: Path, make_settings: MakeSettings
):
    site = mkdocs_build(tmp_path / "site")
    settings, model = make_settings(), HashEmbeddings()
    report = ingest(settings, [site], model, model.name, progress=False)
    assert report.files == 4 and report.repeats == 1
    assert sorted(report.skipped[GENERATED]) == [
        "404.html", "search/search_index.json", "sitemap.xml", "sitemap.xml.gz"
    ]  # fmt: skip
    index = Index.load(settings.index_dir)
    assert index is not None and texts_once(index)
    assert "Page not found" not in " ".join(c.text for c in index.chunks)
    assert [c.source for c in index.chunks if c.text == SUPPORT] == ["guide/config/index.html"]


def test_a_page_and_its_source_copy_outside_a_build_are_one_passage_citing_the_page(
    tmp_path: Path, make_settings: MakeSettings
):
    """No build marks, so `_sources` is read; its copy of the page's text is still kept once,
    from the HTML page."""
    from tests.core.knowledge.built_sites import rst_source, sphinx_page

    docs = tmp_path / "docs"
    (docs / "_sources").mkdir(parents=True)
    title, sections = PAGES["api"]
    (docs / "api.html").write_text(sphinx_page(title, sections, 0))
    (docs / "_sources" / "api.rst.txt").write_text(rst_source(title, sections))
    settings, model = make_settings(), HashEmbeddings()
    report = ingest(settings, [docs], model, model.name, progress=False)
    assert report.files == 2 and report.chunks == 1 and report.repeats == 1
    (chunk,) = Index.load(settings.index_dir).chunks
    assert chunk.citation == "api.html › API › Tokens"


async def test_a_repeat_comes_back_when_the_file_kept_is_removed_and_goes_when_it_is_added(
    tmp_path: Path, make_settings: MakeSettings, embeddings: CountingEmbeddings
):
    docs = tmp_path / "docs"
    docs.mkdir()
    shared = "The office closes at six on Fridays."
    (docs / "hours.html").write_text(f"<h1>Hours</h1><p>{shared}</p>")
    (docs / "notes.md").write_text(
        f"# Notes\n\n## Hours\n\n{shared}\n\n## Kitchen\n\nThe kettle is in room 2.\n"
    )
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "faq.md").write_text(f"# FAQ\n\n{shared}\n")
    settings = make_settings()
    embeddings.embedded.clear()
    first = ingest(settings, [docs], embeddings, embeddings.name, progress=False)
    assert first.chunks == 2 and first.repeats == 1
    # The repeat's vector is made now (its headings differ), so removing needs no model.
    assert first.embedded == 3 and cached_rows(settings) == 3
    retriever = Retriever(settings.index_dir, embeddings, embeddings.name, k=4)

    def cited(question: str) -> list[str]:
        (found,) = retriever.search_many([question])
        return [p.chunk.citation for p in found if p.chunk.text == shared]

    assert cited("when does the office close on Friday?") == ["hours.html › Hours"]

    added = ingest(
        settings, [tmp_path / "more"], embeddings, embeddings.name, progress=False, add=True
    )
    assert added.chunks == 2 and added.repeats == 2  # faq.md's copy is a repeat too

    removed = remove(settings, [docs / "hours.html"])
    assert removed.removed == 1 and removed.chunks == 2 and removed.repeats == 1
    assert cited("when does the office close on Friday?") == ["faq.md › FAQ"]  # the shorter path

    removed = remove(settings, [tmp_path / "more"])
    assert removed.chunks == 2 and removed.repeats == 0
    assert cited("when does the office close on Friday?") == ["notes.md › Notes › Hours"]
    assert cached_rows(settings) == 2  # the cache follows the index and its repeats

    embeddings.embedded.clear()
    back = ingest(
        settings, [docs / "hours.html"], embeddings, embeddings.name, progress=False, add=True
    )
    assert back.chunks == 2 and back.repeats == 1 and len(embeddings.embedded) == 1
    assert cited("when does the office close on Friday?") == ["hours.html › Hours"]
    index = Index.load(settings.index_dir, with_repeats=True)
    assert [c.source for c in index.chunks] == ["notes.md", "hours.html"]
    assert [(r.path, r.at) for r in index.repeats] == [(str(docs / "notes.md"), 0)]
    assert texts_once(index)


def test_an_index_from_before_repeats_is_read_and_kept_once_on_the_next_ingest(
    tmp_path: Path, make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
):
    import core.knowledge.ingest as ingest_module
    from core.knowledge.retrieval import CURRENT, REPEATS_FILE

    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("a.md", "b.md"):
        (docs / name).write_text("# Hours\n\nThe office closes at six.\n")
    settings, model = make_settings(), HashEmbeddings()
    with monkeypatch.context() as old:  # as threadbot indexed before: every passage, no repeats
        old.setattr(
            ingest_module, "_once",
            lambda read: ([e for e, _ in read], [c for _, mine in read for c in mine], []),
        )  # fmt: skip
        ingest(settings, [docs], model, model.name, progress=False)
    (settings.index_dir / CURRENT / REPEATS_FILE).unlink()
    index = Index.load(settings.index_dir, with_repeats=True)
    assert index is not None and index.repeats == [] and len(index.chunks) == 2
    again = ingest(settings, [docs], model, model.name, progress=False)
    assert again.written and again.chunks == 1 and again.repeats == 1 and again.embedded == 0
