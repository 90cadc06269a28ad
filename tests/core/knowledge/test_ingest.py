"""Ingest and retrieval: formats, citations, no re-embedding, atomic swap, no pickle ever."""

from __future__ import annotations

import asyncio
import os
import pickle
from pathlib import Path

import pytest
from langchain_core.embeddings import Embeddings

from core.answer.pipeline import Pipeline
from core.errors import NothingToIndex
from core.knowledge.embeddings import LocalEmbeddings, build_embeddings
from core.knowledge.ingest import IngestRefused, ingest, remove
from core.knowledge.retrieval import CURRENT, Index, Retriever
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
    versions = sorted(settings.index_dir.iterdir())
    again = ingest(settings, [tmp_path / "docs"], embeddings, embeddings.name, progress=False)
    assert embeddings.embedded == []
    assert again.reused == first.chunks and again.embedded == 0
    assert not again.written and sorted(settings.index_dir.iterdir()) == versions
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
    with pytest.raises(NothingToIndex, match=r"no .* files"):
        ingest(settings, [tmp_path / "empty"], embeddings, embeddings.name, progress=False)
    index = Index.load(settings.index_dir)
    assert index is not None and index.chunks


def test_new_chunk_settings_embed_only_the_passages_that_changed(
    tmp_path: Path, make_settings: MakeSettings, embeddings
):
    write_docs(tmp_path / "docs")
    llamas = " ".join(f"Llama number {i} eats hay." for i in range(40))
    (tmp_path / "docs" / "long.md").write_text(f"# Long\n\n{llamas}\n")
    first = ingest(
        make_settings(), [tmp_path / "docs"], embeddings, embeddings.name, progress=False
    )
    embeddings.embedded.clear()
    again = ingest(
        make_settings(chunk_size_chars=300), [tmp_path / "docs"], embeddings, embeddings.name,
        progress=False,
    )  # fmt: skip
    # Only the long file is cut differently: its new passages are embedded, the rest reused.
    assert again.chunks > first.chunks and again.embedded == len(embeddings.embedded) > 0
    assert all("Llama number" in text for text in embeddings.embedded)
    assert again.reused == again.chunks - again.embedded


def make_corpus(folder: Path, files: int, sections: int, seed: int = 7) -> None:
    """Files of distinct made-up prose: `sections` passages of about 500 characters each."""
    import random

    words = (
        "alpha beacon cobalt delta ember falcon glacier harbor island juniper kettle lantern "
        "meadow nebula orchard pepper quartz river saddle timber umbra velvet willow xenon "
        "yonder zephyr anchor bramble cinder dune"
    ).split()
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for f in range(files):
        parts = [f"# Topic {f}\n"]
        for s in range(sections):
            body = " ".join(rng.choice(words) for _ in range(75))
            parts.append(f"## Part {s}\n\n{body}.\n")
        (folder / f"topic-{f:03d}.md").write_text("\n".join(parts))


def cached_rows(settings) -> int:
    import sqlite3

    path = settings.data_dir / "embeddings.sqlite3"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as db:
        try:
            return db.execute("SELECT count(*) FROM vectors").fetchone()[0]
        except sqlite3.OperationalError:  # the table is not created yet
            return 0


@pytest.mark.kills
async def test_a_killed_ingest_resumes_where_it_stopped(
    tmp_path: Path, make_settings: MakeSettings, embeddings
):
    import signal

    from tests.cli_runner import command, env_for, start

    make_corpus(tmp_path / "docs", files=12, sections=12)
    settings = make_settings()
    env = env_for(tmp_path, THREADBOT_DATA_DIR=str(settings.data_dir), EMBEDDINGS="local")
    process = await start(
        command("ingest", str(tmp_path / "docs")), env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        async with asyncio.timeout(60):
            while cached_rows(settings) == 0:  # the first batch is committed: kill it now
                assert process.returncode is None, "the ingest ended before it could be killed"
                await asyncio.sleep(0.02)
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()
    assert process.returncode == -signal.SIGKILL
    done_before = cached_rows(settings)
    assert Index.load(settings.index_dir) is None  # the killed ingest never went live

    embeddings.embedded.clear()
    report = ingest(settings, [tmp_path / "docs"], embeddings, embeddings.name, progress=False)
    assert 0 < done_before < report.chunks
    assert report.reused == done_before and report.embedded == report.chunks - done_before
    assert len(embeddings.embedded) == report.embedded
    assert cached_rows(settings) == report.chunks


async def test_add_and_remove_without_a_full_rebuild(
    tmp_path: Path, make_settings: MakeSettings, embeddings
):
    write_docs(tmp_path / "docs")
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "boats.md").write_text("# Boats\n\nThe rowing boat is kept in shed B.\n")
    settings = make_settings()
    first = ingest(settings, [tmp_path / "docs"], embeddings, embeddings.name, progress=False)
    retriever = Retriever(settings.index_dir, embeddings, embeddings.name, k=1)

    embeddings.embedded.clear()
    added = ingest(
        settings, [tmp_path / "more"], embeddings, embeddings.name, progress=False, add=True
    )
    assert added.files == 1 and added.chunks == first.chunks + 1
    assert embeddings.embedded == ["Boats\n\nThe rowing boat is kept in shed B."]
    best = (await retriever.search("where is the rowing boat kept?"))[0]
    assert best.chunk.citation == "boats.md › Boats"

    # A file added inside a folder already indexed is cited as its neighbours are.
    (tmp_path / "docs" / "sub").mkdir()
    (tmp_path / "docs" / "sub" / "bikes.md").write_text("# Bikes\n\nBikes park in the yard.\n")
    ingest(
        settings, [tmp_path / "docs" / "sub" / "bikes.md"], embeddings, embeddings.name,
        progress=False, add=True,
    )  # fmt: skip
    index = Index.load(settings.index_dir)
    assert {f.source for f in index.files} == {
        "guide.md", "notes.txt", "ops.rst", "faq.html", "manual.pdf", "boats.md", "sub/bikes.md"
    }  # fmt: skip

    removed = remove(settings, [tmp_path / "more"])
    assert removed.removed == 1 and removed.embedded == 0
    removed = remove(settings, [Path("sub/bikes.md")])  # by the name it is cited as
    assert removed.removed == 1 and removed.chunks == first.chunks
    assert all(p.chunk.source != "boats.md" for p in await retriever.search("rowing boat"))
    assert cached_rows(settings) == first.chunks  # the cache follows the index
    with pytest.raises(NothingToIndex, match="nothing indexed"):
        remove(settings, [tmp_path / "more"])


class HashEmbeddings(Embeddings):
    """Fast stand-in vectors for tests about bookkeeping, where meaning does not matter."""

    name = "test:hash"

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        import hashlib

        import numpy as np

        out = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
            vector = np.random.default_rng(seed).normal(size=8)
            out.append((vector / np.linalg.norm(vector)).tolist())
        return out

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


def test_far_fewer_passages_never_replace_the_index_without_force(
    tmp_path: Path, make_settings: MakeSettings
):
    make_corpus(tmp_path / "big", files=10, sections=12)
    (tmp_path / "small").mkdir()
    (tmp_path / "small" / "one.md").write_text("# One\n\nA single passage.\n")
    settings, model = make_settings(), HashEmbeddings()
    big = ingest(settings, [tmp_path / "big"], model, model.name, progress=False)
    assert big.chunks >= 100
    with pytest.raises(IngestRefused, match=r"1 passages where the live one holds \d+"):
        ingest(settings, [tmp_path / "small"], model, model.name, progress=False)
    assert len(Index.load(settings.index_dir).chunks) == big.chunks
    forced = ingest(settings, [tmp_path / "small"], model, model.name, progress=False, force=True)
    assert forced.chunks == 1 and len(Index.load(settings.index_dir).chunks) == 1


def test_every_passage_fits_the_model_window(
    tmp_path: Path, make_settings: MakeSettings, embeddings
):
    from core.knowledge.embeddings import MAX_TOKENS

    (tmp_path / "docs").mkdir()
    # Hex digests cost about one word piece per two characters: 1000 characters would be 500.
    digests = "\n".join(f"sha256:{os.urandom(24).hex()}" for _ in range(60))
    (tmp_path / "docs" / "hashes.md").write_text(f"# Release digests\n\n{digests}\n")
    settings = make_settings()
    ingest(settings, [tmp_path / "docs"], embeddings, embeddings.name, progress=False)
    chunks = Index.load(settings.index_dir).chunks
    counts = embeddings.count_tokens([c.indexed_text for c in chunks])
    assert max(counts) <= MAX_TOKENS
    assert "".join(c.text for c in chunks).count("sha256:") >= 60  # nothing dropped


async def test_an_html_page_with_code_is_searched_with_its_indentation(
    tmp_path: Path, make_settings: MakeSettings, embeddings
):
    from tests.core.knowledge.test_extract import SPHINX_PAGE

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "csv.html").write_text(SPHINX_PAGE)
    settings = make_settings()
    ingest(settings, [tmp_path / "docs"], embeddings, embeddings.name, progress=False)
    retriever = Retriever(settings.index_dir, embeddings, embeddings.name, k=2)
    best = (await retriever.search("the simplest example of reading a CSV file"))[0]
    assert best.chunk.citation == "csv.html › csv — CSV File Reading and Writing › Examples"
    assert "    reader = csv.reader(f)\n    for row in reader:\n        print(row)" in (
        best.chunk.text
    )
    best = (await retriever.search("a writer object that converts data to strings"))[0]
    assert best.chunk.location.endswith("Module Contents › csv.writer")


def test_a_code_block_cut_between_passages_is_closed_and_reopened(
    tmp_path: Path, make_settings: MakeSettings, embeddings
):
    (tmp_path / "docs").mkdir()
    body = "\n".join(
        f"    # Of course, message {n} is one of lots of email messages" for n in range(60)
    )
    (tmp_path / "docs" / "email.md").write_text(
        f"# Email examples\n\nBefore the code.\n\n```python\ndef show():\n{body}\n```\n\nAfter.\n"
    )
    settings = make_settings(chunk_size_chars=300, chunk_overlap_chars=40)
    ingest(settings, [tmp_path / "docs"], embeddings, embeddings.name, progress=False)
    texts = [c.text for c in Index.load(settings.index_dir).chunks]
    inside = [t for t in texts if "message 30 " in t]
    assert inside and all(t.startswith("```python\n    # Of course") for t in inside)
    assert all(t.endswith("\n```") for t in inside)
    assert all(t.count("```") % 2 == 0 for t in texts)  # each passage stands alone
    assert texts[0] == "Before the code." and texts[-1] == "After."
