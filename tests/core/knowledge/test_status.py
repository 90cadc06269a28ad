"""The index in a few numbers for `threadbot doctor`: none before an ingest, errors as they are."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from core.knowledge.embeddings import LocalEmbeddings
from core.knowledge.ingest import ingest
from core.knowledge.retrieval import CURRENT, DOCSTORE_FILE, Index
from core.knowledge.status import IndexSummary, index_summary
from tests.conftest import IsolatedSettings

DOCS = {
    "queues.md": "# Queues\n\n## Limits\n\nSet ZQ_BACKLOG_MAX to bound the queue.\n",
    "lunch.md": "# Lunch\n\nThe canteen serves soup from noon.\n\n# Dinner\n\nNone.\n",
}


@pytest.fixture(scope="module")
def embeddings() -> LocalEmbeddings:
    return LocalEmbeddings()


@pytest.fixture
def index_root(tmp_path: Path, embeddings: LocalEmbeddings) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text)
    settings = IsolatedSettings(threadbot_data_dir=tmp_path / "data")
    report = ingest(settings, [docs], embeddings, embeddings.name, progress=False)
    assert report.files == 2
    return settings.index_dir


def test_no_index_before_the_first_ingest(tmp_path: Path) -> None:
    assert index_summary(tmp_path / "index") is None
    (tmp_path / "index").mkdir()
    assert index_summary(tmp_path / "index") is None


def test_the_live_index_in_numbers(index_root: Path, embeddings: LocalEmbeddings) -> None:
    summary = index_summary(index_root)
    assert isinstance(summary, IndexSummary)
    assert summary.files == 2
    assert summary.passages >= 3  # one per section at least: Limits, Lunch, Dinner
    assert summary.embeddings_name == embeddings.name
    assert datetime.fromisoformat(summary.created)


def test_an_unreadable_index_raises_what_loading_it_raises(index_root: Path) -> None:
    (index_root / CURRENT / DOCSTORE_FILE).write_text("[]")
    with pytest.raises(Exception) as loading:  # whatever Index.load raises
        Index.load(index_root)
    with pytest.raises(type(loading.value)):
        index_summary(index_root)
