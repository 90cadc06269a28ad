"""Ingest and retrieval: formats, citations, no re-embedding, atomic swap, no pickle ever."""

from __future__ import annotations

import asyncio
import os
import pickle
from pathlib import Path

import pytest

from core.embeddings import LocalEmbeddings, build_embeddings
from core.ingest import ingest, read_sections
from core.pipeline import Pipeline
from core.retrieval import CURRENT, Index, Retriever
from tests.conftest import SAMPLE_DOCS, MakeSettings
from tests.fakes.fake_openai import FakeOpenAI


def tiny_pdf(pages: list[str]) -> bytes:
    """A valid PDF with one line of Helvetica text per page, built by hand (no writer library)."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", ""]
    kids = []
    for text in pages:
        page_id, content_id = len(objects) + 1, len(objects) + 2
        kids.append(f"{page_id} 0 R")
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET"
        objects.append(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 << /Type /Font /Subtype /Type1 "
            f"/BaseFont /Helvetica >> >> >> /Contents {content_id} 0 R >>"
        )
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(pages)} >>"
    out = b"%PDF-1.4\n"
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return out


def exploit(marker: Path) -> bytes:
    """A pickle that creates `marker` when it is loaded: proof that something unpickled it."""

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    return pickle.dumps(Exploit())


class CountingEmbeddings(LocalEmbeddings):
    def __init__(self) -> None:
        super().__init__()
        self.embedded: list[str] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.embedded.extend(texts)
        return super().embed_documents(texts)


@pytest.fixture(scope="module")
def embeddings() -> CountingEmbeddings:
    return CountingEmbeddings()


def write_docs(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "guide.md").write_text(
        "# Guide\n\nIntro text.\n\n## Install\n\nRun make run to install the bot.\n\n"
        "```sh\n# not a heading\nmake run\n```\n"
    )
    (folder / "notes.txt").write_text("Plain notes about the coffee machine on floor three.")
    (folder / "ops.rst").write_text(
        "Operations\n==========\n\nOverview.\n\nBackups\n-------\n\nBackups run nightly at two.\n"
    )
    (folder / "faq.html").write_text(
        "<html><head><style>p{color:red}</style><script>var x=1;</script></head><body>"
        "<h1>FAQ</h1><h2>Parking</h2><p>Parking is in the garage behind the office.</p>"
        "</body></html>"
    )
    (folder / "manual.pdf").write_bytes(tiny_pdf(["Cover page", "The printer code is 4711"]))
    (folder / ".hidden.md").write_text("# secret\nnever indexed")


def test_sections_name_their_heading_or_page(tmp_path: Path):
    write_docs(tmp_path)
    md = read_sections(tmp_path / "guide.md", (tmp_path / "guide.md").read_bytes())
    assert [loc for loc, _ in md] == ["Guide", "Guide › Install"]
    assert "# not a heading" in md[1][1]  # a comment in a code block is not a heading
    rst = read_sections(tmp_path / "ops.rst", (tmp_path / "ops.rst").read_bytes())
    assert rst[-1] == ("Operations › Backups", "Backups\n\nBackups run nightly at two.")
    html = read_sections(tmp_path / "faq.html", (tmp_path / "faq.html").read_bytes())
    assert html[-1][0] == "FAQ › Parking"
    assert "var x" not in str(html) and "color" not in str(html)
    pdf = read_sections(tmp_path / "manual.pdf", (tmp_path / "manual.pdf").read_bytes())
    assert pdf == [("page 1", "Cover page"), ("page 2", "The printer code is 4711")]


async def test_ingest_search_and_cite(tmp_path: Path, make_settings: MakeSettings, embeddings):
    write_docs(tmp_path / "docs")
    settings = make_settings()
    report = ingest(settings, [tmp_path / "docs"], embeddings, embeddings.name, progress=False)
    assert report.files == 5 and report.reused == 0 and report.embedded == report.chunks
    index = Index.load(settings.index_dir)
    assert index is not None and index.embeddings_name == embeddings.name
    retriever = Retriever(settings.index_dir, embeddings, embeddings.name, k=2)
    cases = {
        "where do I park my car?": "faq.html › FAQ › Parking",
        "what is the printer code": "manual.pdf › page 2",
        "when do backups run": "ops.rst › Operations › Backups",
        "how to install": "guide.md › Guide › Install",
    }
    for question, citation in cases.items():
        best = (await retriever.search(question))[0]
        assert best.chunk.citation == citation, question


async def test_unchanged_files_are_not_embedded_again(
    tmp_path: Path, make_settings: MakeSettings, embeddings
):
    write_docs(tmp_path / "docs")
    settings = make_settings()
    first = ingest(settings, [tmp_path / "docs"], embeddings, embeddings.name, progress=False)
    embeddings.embedded.clear()
    again = ingest(settings, [tmp_path / "docs"], embeddings, embeddings.name, progress=False)
    assert embeddings.embedded == []
    assert again.reused == first.chunks and again.embedded == 0
    (tmp_path / "docs" / "notes.txt").write_text("The coffee machine moved to floor four.")
    third = ingest(settings, [tmp_path / "docs"], embeddings, embeddings.name, progress=False)
    assert embeddings.embedded == ["The coffee machine moved to floor four."]
    assert third.embedded == 1
    index = Index.load(settings.index_dir)
    assert index is not None
    assert "floor four" in " ".join(c.text for c in index.chunks)
    assert "floor three" not in " ".join(c.text for c in index.chunks)
    # The swap is a symlink replaced in one rename; the version it replaced stays one round
    # (a running bot may be reading it), older ones are removed.
    assert (settings.index_dir / CURRENT).is_symlink()
    versions = sorted(p.name for p in settings.index_dir.iterdir() if p.name.startswith("v-"))
    assert len(versions) == 2
    assert os.readlink(settings.index_dir / CURRENT) == versions[-1]


async def test_a_pickle_beside_the_index_is_never_loaded(
    tmp_path: Path, make_settings: MakeSettings, embeddings
):
    settings = make_settings()
    ingest(settings, [SAMPLE_DOCS], embeddings, embeddings.name, progress=False)
    marker = tmp_path / "pwned"

    live = settings.index_dir / CURRENT
    # Where langchain-community's FAISS.save_local keeps its pickled docstore.
    for name in ("index.pkl", "docstore.pkl", "index.pickle"):
        (live / name).write_bytes(exploit(marker))
    pipeline = await Pipeline.create(settings)
    try:
        assert pipeline.documents > 0
        answer = "".join([c async for c in pipeline.answer("console:p", "how do I reset?")])
        assert "Sources:" in answer
    finally:
        await pipeline.aclose()
    assert not marker.exists()


async def test_openai_compatible_embeddings(
    tmp_path: Path, make_settings: MakeSettings, fake_openai: FakeOpenAI
):
    write_docs(tmp_path / "docs")
    settings = make_settings(embeddings="openai", embedding_model="fake-embed")
    model, name = build_embeddings(settings)
    assert name == "openai:fake-embed"
    # The server shares this event loop, so the (sync) ingest runs in a thread, as the CLI's would.
    report = await asyncio.to_thread(
        ingest, settings, [tmp_path / "docs"], model, name, progress=False
    )
    assert sum(len(r["input"]) for r in fake_openai.embedding_requests) == report.chunks
    retriever = Retriever(settings.index_dir, model, name, k=1)
    best = await retriever.search("printer code 4711")
    assert best[0].chunk.source == "manual.pdf"


async def test_a_running_bot_picks_up_a_new_ingest(
    tmp_path: Path, make_settings: MakeSettings, embeddings
):
    settings = make_settings()
    retriever = Retriever(settings.index_dir, embeddings, embeddings.name, k=1)
    assert await retriever.search("printer code") == []  # nothing ingested yet
    write_docs(tmp_path / "docs")
    ingest(settings, [tmp_path / "docs"], embeddings, embeddings.name, progress=False)
    best = await retriever.search("what is the printer code")
    assert best[0].chunk.citation == "manual.pdf › page 2"
    assert retriever.size == len(Index.load(settings.index_dir).chunks)


async def test_an_index_from_another_model_is_not_searched(
    tmp_path: Path, make_settings: MakeSettings, embeddings
):
    write_docs(tmp_path / "docs")
    settings = make_settings()
    ingest(settings, [tmp_path / "docs"], embeddings, "openai:some-other-model", progress=False)
    retriever = Retriever(settings.index_dir, embeddings, embeddings.name, k=1)
    assert await retriever.search("what is the printer code") == []
    assert retriever.size == 0


async def test_a_pickle_in_place_of_the_docstore_is_refused_not_run(
    tmp_path: Path, make_settings: MakeSettings, embeddings
):
    settings = make_settings()
    ingest(settings, [SAMPLE_DOCS], embeddings, embeddings.name, progress=False)
    marker = tmp_path / "pwned"

    (settings.index_dir / CURRENT / "docstore.json").write_bytes(exploit(marker))
    retriever = Retriever(settings.index_dir, embeddings, embeddings.name, k=1)
    assert await retriever.search("how do I reset?") == []
    assert not marker.exists()


def test_an_empty_folder_never_replaces_the_index(
    tmp_path: Path, make_settings: MakeSettings, embeddings
):
    settings = make_settings()
    ingest(settings, [SAMPLE_DOCS], embeddings, embeddings.name, progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no .* files"):
        ingest(settings, [tmp_path / "empty"], embeddings, embeddings.name, progress=False)
    index = Index.load(settings.index_dir)
    assert index is not None and index.chunks


def test_new_chunk_settings_embed_again(tmp_path: Path, make_settings: MakeSettings, embeddings):
    write_docs(tmp_path / "docs")
    ingest(make_settings(), [tmp_path / "docs"], embeddings, embeddings.name, progress=False)
    again = ingest(
        make_settings(chunk_size_chars=300), [tmp_path / "docs"], embeddings, embeddings.name,
        progress=False,
    )  # fmt: skip
    assert again.reused == 0 and again.embedded == again.chunks
