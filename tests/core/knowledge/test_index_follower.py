"""A worker following the index published in Redis: `follow_once` (what `threadbot search` does
on a worker's machine) and `IndexFollower.sync` when there is nothing, or no Redis, to follow."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.knowledge.embeddings import LocalEmbeddings
from core.knowledge.index_follower import IndexFollower, follow_once
from core.knowledge.ingest import ingest
from core.knowledge.retrieval import Retriever, live_version
from core.knowledge.shared_index import publish_to_workers
from core.settings import Settings
from core.store.redis_client import connect
from tests.conftest import MakeSettings
from tests.valkey_server import free_port

DOCS = {
    "queues.md": "# Queues\n\nSet ZQ_BACKLOG_MAX to bound how many jobs wait.\n",
    "pets.md": "# Office pets\n\nDogs are welcome on Fridays if they are friendly.\n",
}


@pytest.fixture(scope="module")
def embeddings() -> LocalEmbeddings:
    return LocalEmbeddings()


@pytest.fixture
def first(make_settings: MakeSettings, tmp_path: Path) -> Settings:
    return make_settings(threadbot_data_dir=tmp_path / "first")


@pytest.fixture
def worker(make_settings: MakeSettings, tmp_path: Path) -> Settings:
    """The same Redis and namespace as `first`, an empty data folder."""
    return make_settings(threadbot_data_dir=tmp_path / "worker")


def retriever(settings: Settings, embeddings: LocalEmbeddings) -> Retriever:
    """A retriever that has looked at its disk, as one does at its first search."""
    found = Retriever(settings.index_dir, embeddings, embeddings.name, k=2, min_score=0.2)
    found.refresh()
    return found


def ingest_docs(settings: Settings, docs: dict[str, str], embeddings: LocalEmbeddings) -> None:
    folder = settings.data_dir.parent / f"docs-{settings.data_dir.name}"
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in docs.items():
        (folder / name).write_text(text)
    ingest(settings, [folder], embeddings, embeddings.name, progress=False, force=True)


async def sources(found: Retriever, question: str) -> list[str]:
    return [p.chunk.source for p in await found.search(question)]


async def test_follow_once_puts_an_empty_worker_on_the_published_index(
    first: Settings, worker: Settings, embeddings: LocalEmbeddings
):
    ingest_docs(first, DOCS, embeddings)
    published = await publish_to_workers(first)
    assert published is not None

    found = retriever(worker, embeddings)
    assert found.version is None  # nothing on the worker's disk
    await follow_once(worker, found)
    assert found.version == published.version
    assert live_version(worker.index_dir) == published.version
    assert await sources(found, "can I bring my dog?") == ["pets.md"]


async def test_follow_once_with_nothing_published_leaves_an_empty_worker_empty(
    worker: Settings, embeddings: LocalEmbeddings
):
    found = retriever(worker, embeddings)
    await follow_once(worker, found)
    assert found.version is None
    assert live_version(worker.index_dir) is None


async def test_sync_with_nothing_published_is_false_and_keeps_the_local_index(
    first: Settings, embeddings: LocalEmbeddings
):
    ingest_docs(first, {"queues.md": DOCS["queues.md"]}, embeddings)  # never published
    local = live_version(first.index_dir)
    assert local is not None
    found = retriever(first, embeddings)
    redis = connect(first)
    try:
        follower = IndexFollower(redis, first, found)
        assert not await follower.sync()
        assert not await follower.sync()  # and again: still nothing to switch to
    finally:
        await redis.aclose()
    assert found.version == local
    assert live_version(first.index_dir) == local
    assert await sources(found, "ZQ_BACKLOG_MAX") == ["queues.md"]


async def test_sync_on_the_version_already_searched_is_false(
    first: Settings, embeddings: LocalEmbeddings
):
    ingest_docs(first, DOCS, embeddings)
    published = await publish_to_workers(first)
    assert published is not None
    found = retriever(first, embeddings)
    assert found.version == published.version
    redis = connect(first)
    try:
        assert not await IndexFollower(redis, first, found).sync()
    finally:
        await redis.aclose()
    assert found.version == published.version


async def test_sync_without_redis_is_false_and_keeps_the_local_index(
    make_settings: MakeSettings, tmp_path: Path, embeddings: LocalEmbeddings
):
    settings = make_settings(
        threadbot_data_dir=tmp_path / "offline",
        redis_url=f"redis://127.0.0.1:{free_port()}",  # nothing listens there
        redis_timeout_s=1.0,
    )
    ingest_docs(settings, {"pets.md": DOCS["pets.md"]}, embeddings)
    local = live_version(settings.index_dir)
    found = retriever(settings, embeddings)
    redis = connect(settings)
    try:
        assert not await IndexFollower(redis, settings, found).sync()  # never raises
    finally:
        await redis.aclose()
    assert found.version == local is not None
    assert await sources(found, "can I bring my dog?") == ["pets.md"]
