"""The embedding cache: vectors by passage hash and model, committed at once, kept in step."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from core.knowledge.embed_cache import CACHE_FILE, EmbeddingCache, passage_hash
from core.knowledge.embeddings import LocalEmbeddings

MODEL = LocalEmbeddings.name
TEXTS = ["Queues\n\nSet ZQ_BACKLOG_MAX to bound the queue.", "Lunch\n\nSoup from noon.", "Pets"]


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    return LocalEmbeddings().embed_array(TEXTS)


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[EmbeddingCache]:
    opened = EmbeddingCache(tmp_path / "data", MODEL)
    try:
        yield opened
    finally:
        opened.close()


def hashes(texts: list[str]) -> list[bytes]:
    return [passage_hash(t) for t in texts]


def test_passage_hash_is_a_short_stable_key_of_the_text() -> None:
    assert passage_hash("a passage") == passage_hash("a passage")
    assert len(passage_hash("a passage")) == 16
    assert passage_hash("a passage") != passage_hash("a passage ")
    assert passage_hash("é") != passage_hash("e")


def test_the_cache_file_is_made_in_the_data_folder(tmp_path: Path) -> None:
    EmbeddingCache(tmp_path / "new" / "folder", MODEL).close()
    assert (tmp_path / "new" / "folder" / CACHE_FILE).is_file()


def test_vectors_come_back_as_stored_in_the_order_asked(
    cache: EmbeddingCache, vectors: np.ndarray
) -> None:
    keys = hashes(TEXTS)
    cache.put(keys, vectors)
    got = cache.get([keys[2], keys[0], keys[2]])
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, vectors[[2, 0, 2]].astype(np.float32))


def test_a_missing_vector_is_a_key_error(cache: EmbeddingCache, vectors: np.ndarray) -> None:
    keys = hashes(TEXTS)
    cache.put(keys[:1], vectors[:1])
    with pytest.raises(KeyError):
        cache.get(keys)


def test_missing_names_each_absent_hash_once(cache: EmbeddingCache, vectors: np.ndarray) -> None:
    keys = hashes(TEXTS)
    assert cache.missing(keys + keys) == set(keys)
    cache.put(keys[:2], vectors[:2])
    assert cache.missing(keys) == {keys[2]}
    assert cache.missing([]) == set()


def test_each_model_has_its_own_vectors(
    tmp_path: Path, cache: EmbeddingCache, vectors: np.ndarray
) -> None:
    keys = hashes(TEXTS)
    cache.put(keys, vectors)
    other = EmbeddingCache(tmp_path / "data", "openai:text-embedding-3-small")
    try:
        assert other.missing(keys) == set(keys)
        with pytest.raises(KeyError):
            other.get(keys[:1])
    finally:
        other.close()


def test_put_replaces_a_vector(cache: EmbeddingCache, vectors: np.ndarray) -> None:
    key = hashes(TEXTS[:1])
    cache.put(key, vectors[:1])
    cache.put(key, vectors[1:2])
    np.testing.assert_array_equal(cache.get(key), vectors[1:2])


def test_a_put_is_committed_at_once(
    tmp_path: Path, cache: EmbeddingCache, vectors: np.ndarray
) -> None:
    """Another connection sees it while this one is still open: a kill now loses nothing."""
    keys = hashes(TEXTS)
    cache.put(keys, vectors)
    with sqlite3.connect(tmp_path / "data" / CACHE_FILE) as reader:
        (rows,) = reader.execute("SELECT COUNT(*) FROM vectors").fetchone()
    assert rows == len(TEXTS)
    reopened = EmbeddingCache(tmp_path / "data", MODEL)
    try:
        np.testing.assert_array_equal(reopened.get(keys), vectors)
    finally:
        reopened.close()


def test_many_hashes_at_once(cache: EmbeddingCache) -> None:
    """More hashes than SQLite binds in one statement."""
    keys = [passage_hash(f"passage {n}") for n in range(1234)]
    rows = np.arange(1234 * 4, dtype=np.float32).reshape(1234, 4)
    assert cache.missing(keys) == set(keys)
    cache.put(keys, rows)
    assert cache.missing(keys) == set()
    np.testing.assert_array_equal(cache.get(keys[::-1]), rows[::-1])


def test_keep_only_forgets_every_other_vector_and_every_other_model(
    tmp_path: Path, cache: EmbeddingCache, vectors: np.ndarray
) -> None:
    keys = hashes(TEXTS)
    cache.put(keys, vectors)
    other = EmbeddingCache(tmp_path / "data", "another-model")
    try:
        other.put(keys[:1], vectors[:1])
        assert cache.keep_only([keys[0]]) == 3  # two of ours, the other model's one
        assert cache.missing(keys) == set(keys[1:])
        assert other.missing(keys[:1]) == set(keys[:1])
        assert cache.keep_only([keys[0]]) == 0  # nothing more to forget
        assert cache.keep_only([]) == 1
        assert cache.missing(keys) == set(keys)
    finally:
        other.close()


def test_put_needs_one_vector_per_hash(cache: EmbeddingCache, vectors: np.ndarray) -> None:
    with pytest.raises(ValueError):
        cache.put(hashes(TEXTS), vectors[:2])
    assert cache.missing(hashes(TEXTS)) == set(hashes(TEXTS))  # nothing half-written
