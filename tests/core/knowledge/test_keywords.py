"""BM25 over the passages: exact names found, stemmed words matched, saved without pickles."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from core.knowledge.keywords import KeywordIndex

PASSAGES = [
    "Set ZQ_BACKLOG_MAX to bound how many jobs wait in the queue.",
    "The canteen serves soup and bread from noon.",
    "Dogs are running around the office on Fridays.",
    "Soup, soup and more soup: the canteen's winter menu.",
]


@pytest.fixture(scope="module")
def index() -> KeywordIndex:
    return KeywordIndex.build(PASSAGES)


def passages(results: list[tuple[int, float]]) -> list[int]:
    return [passage for passage, _ in results]


def test_an_exact_name_finds_its_passage(index: KeywordIndex) -> None:
    (found,) = index.search(["ZQ_BACKLOG_MAX"], k=4)
    assert passages(found) == [0]


def test_words_match_by_their_stem(index: KeywordIndex) -> None:
    (found,) = index.search(["a dog runs"], k=4)
    assert passages(found) == [2]


def test_results_are_best_first_with_positive_scores(index: KeywordIndex) -> None:
    (found,) = index.search(["soup canteen"], k=4)
    assert passages(found) == [3, 1]
    scores = [score for _, score in found]
    assert scores == sorted(scores, reverse=True)
    assert all(score > 0 for score in scores)


def test_at_most_k_results(index: KeywordIndex) -> None:
    (found,) = index.search(["soup canteen"], k=1)
    assert passages(found) == [3]


def test_one_result_list_per_query_in_order(index: KeywordIndex) -> None:
    results = index.search(["bread", "nothing matches this", "the", "ZQ_BACKLOG_MAX"], k=4)
    assert len(results) == 4
    assert passages(results[0]) == [1]
    assert results[1] == []  # no word the passages have
    assert results[2] == []  # only a stopword
    assert passages(results[3]) == [0]
    assert index.search([], k=4) == []


def test_passages_without_a_word_to_index_give_nothing() -> None:
    empty = KeywordIndex.build(["the and of", "it is"])
    assert empty.size == 2
    assert empty.search(["the", "anything"], k=2) == [[], []]
    assert KeywordIndex.build([]).search(["soup"], k=3) == [[]]


def test_saved_and_loaded_it_ranks_the_same(index: KeywordIndex, tmp_path: Path) -> None:
    index.save(tmp_path / "bm25")
    loaded = KeywordIndex.load(tmp_path / "bm25", len(PASSAGES))
    queries = ["soup canteen", "ZQ_BACKLOG_MAX", "running dogs", "nothing"]
    assert loaded.search(queries, k=4) == index.search(queries, k=4)
    assert not [p for p in (tmp_path / "bm25").iterdir() if p.suffix in (".pkl", ".pickle")]


def test_an_empty_index_saves_and_loads_as_empty(tmp_path: Path) -> None:
    KeywordIndex.build(["the"]).save(tmp_path / "bm25")
    assert (tmp_path / "bm25").is_dir()
    loaded = KeywordIndex.load(tmp_path / "bm25", 1)
    assert loaded.size == 1 and loaded.search(["the"], k=1) == [[]]


def test_a_missing_folder_loads_as_empty(tmp_path: Path) -> None:
    loaded = KeywordIndex.load(tmp_path / "nowhere", 3)
    assert loaded.size == 3
    assert loaded.search(["soup"], k=3) == [[]]


class _Touch:
    """Unpickled, it creates `marker`: proof that something unpickled it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (self.marker,))


def test_load_never_unpickles(index: KeywordIndex, tmp_path: Path) -> None:
    folder = tmp_path / "bm25"
    index.save(folder)
    marker = tmp_path / "unpickled"
    for npy in folder.glob("*.npy"):
        npy.write_bytes(pickle.dumps(_Touch(marker)))
    with pytest.raises(ValueError):
        KeywordIndex.load(folder, len(PASSAGES))
    assert not marker.exists()
