"""Hybrid retrieval: BM25 and dense rankings fused by reciprocal rank, saved without pickles."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from core.knowledge.embeddings import LocalEmbeddings
from core.knowledge.ingest import ingest
from core.knowledge.retrieval import CURRENT, KEYWORDS_FOLDER, RRF_K, Retriever
from tests.conftest import MakeSettings
from tests.core.knowledge.test_ingest import exploit

DOCS = {
    "queues.md": (
        "# Queues\n\n## Limits\n\nSet ZQ_BACKLOG_MAX to bound how many jobs wait; "
        "past it new jobs are refused.\n"
    ),
    "sleep.md": "# Night mode\n\nAfter midnight the bot stops sending notifications until 7 am.\n",
    "pets.md": "# Office pets\n\nDogs are welcome on Fridays if they are friendly.\n",
    "lunch.md": "# Lunch\n\nThe canteen serves soup and bread from noon.\n",
}


@pytest.fixture(scope="module")
def embeddings() -> LocalEmbeddings:
    return LocalEmbeddings()


@pytest.fixture
def indexed(tmp_path: Path, make_settings: MakeSettings, embeddings: LocalEmbeddings):
    (tmp_path / "docs").mkdir()
    for name, text in DOCS.items():
        (tmp_path / "docs" / name).write_text(text)
    settings = make_settings()
    ingest(settings, [tmp_path / "docs"], embeddings, embeddings.name, progress=False)
    return settings


def retriever(settings, embeddings, mode: str, k: int = 4, min_score: float = 0.2) -> Retriever:
    return Retriever(
        settings.index_dir, embeddings, embeddings.name, k=k, min_score=min_score, mode=mode
    )


QUESTIONS = [
    "ZQ_BACKLOG_MAX",  # an exact name: BM25's strength
    "can I bring my puppy to work?",  # no shared word: only the dense ranking finds it
    "when are notifications quiet?",
    "what is for lunch",
]


def test_hybrid_is_the_reciprocal_rank_fusion_of_both_rankings(indexed, embeddings):
    dense = retriever(indexed, embeddings, "dense", min_score=-1).search_many(QUESTIONS)
    bm25 = retriever(indexed, embeddings, "bm25").search_many(QUESTIONS)
    hybrid = retriever(indexed, embeddings, "hybrid", min_score=-1).search_many(QUESTIONS)
    for d, b, h in zip(dense, bm25, hybrid, strict=True):
        fused: dict[str, float] = {}
        for ranking in (d, b):
            for rank, passage in enumerate(ranking, start=1):
                fused[passage.chunk.source] = fused.get(passage.chunk.source, 0) + 1 / (
                    RRF_K + rank
                )
        expected = sorted(fused, key=lambda s: -fused[s])
        assert [p.chunk.source for p in h] == expected
        assert [p.score for p in h] == pytest.approx([fused[s] * (RRF_K + 1) / 2 for s in expected])
    assert bm25[1] == []  # "puppy" is in no passage
    assert [h[0].chunk.source for h in hybrid] == ["queues.md", "pets.md", "sleep.md", "lunch.md"]
    assert hybrid[0][0].score == pytest.approx(1.0)  # first in both rankings


async def test_hybrid_keeps_the_cosine_cut_off(indexed, embeddings):
    hybrid = retriever(indexed, embeddings, "hybrid")
    assert await hybrid.search("what's the weather like on Mars?") == []
    found = await hybrid.search("can I bring my puppy to work?")
    assert found[0].chunk.citation == "pets.md › Office pets"
    # The passage's headings were embedded and indexed with it, not shown as its text.
    assert found[0].chunk.text == "Dogs are welcome on Fridays if they are friendly."


def test_many_questions_at_once_in_order(indexed, embeddings):
    questions = QUESTIONS * 50
    results = retriever(indexed, embeddings, "hybrid", k=1).search_many(questions)
    assert [r[0].chunk.source for r in results[:4]] * 50 == [r[0].chunk.source for r in results]


def test_bm25_is_saved_without_pickles_and_a_pickle_is_never_loaded(
    indexed, embeddings, tmp_path: Path
):
    folder = indexed.index_dir / CURRENT / KEYWORDS_FOLDER
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        "data.csc.index.npy", "indices.csc.index.npy", "indptr.csc.index.npy",
        "params.index.json", "vocab.index.json",
    ]  # fmt: skip
    for name in names:
        if name.endswith(".npy"):
            np.load(folder / name, allow_pickle=False)  # plain numbers
    marker = tmp_path / "pwned"
    # np.load unpickles a file that is not .npy when allowed to: this one would run a command.
    (folder / "data.csc.index.npy").write_bytes(exploit(marker))
    found = retriever(indexed, embeddings, "hybrid").search_many(["ZQ_BACKLOG_MAX"])
    assert found == [[]] and not marker.exists()
    assert not any(
        name.endswith((".pkl", ".pickle")) for name in os.listdir(indexed.index_dir / CURRENT)
    )


@pytest.mark.parametrize("docstore", ["[]", "missing fields"])
async def test_a_malformed_docstore_is_answered_without_documents(
    docstore: str, indexed, embeddings, caplog: pytest.LogCaptureFixture
):
    import json

    live = indexed.index_dir / CURRENT
    path = live / "docstore.json"
    if docstore == "[]":
        path.write_text("[]")
    else:
        store = json.loads(path.read_text())
        store["chunks"] = [{"text": "only a text"} for _ in store["chunks"]]
        path.write_text(json.dumps(store))
    found = retriever(indexed, embeddings, "hybrid")
    found.refresh()  # the bot starts: no traceback, no documents, and the log says why
    assert found.size == 0
    assert await found.search("ZQ_BACKLOG_MAX") == []
    assert "cannot load the index" in caplog.text and "run `threadbot ingest`" in caplog.text


def test_citations_are_safe_to_print_and_tell_same_named_files_apart(
    tmp_path: Path, make_settings: MakeSettings, embeddings
):
    docs = tmp_path / "docs"
    for folder in ("api", "guide"):
        (docs / folder).mkdir(parents=True)
        (docs / folder / "README.md").write_text(f"# {folder}\n\nAbout the {folder} part.\n")
    (docs / "evil\x1b[31mred\n_Sources: fake.md.md").write_text(
        "# Evil\n\nA file name with tricks.\n"
    )
    settings = make_settings()
    ingest(settings, [docs], embeddings, embeddings.name, progress=False)
    index = retriever(settings, embeddings, "dense").refresh()
    assert index is not None
    citations = {c.citation for c in index.chunks}
    assert {"api/README.md › api", "guide/README.md › guide"} <= citations
    evil = next(c for c in citations if c.startswith("evil"))
    assert "\x1b" not in evil and "\n" not in evil and "\\x1b[31m" in evil
