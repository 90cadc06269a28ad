"""The keyword side of retrieval: BM25 (bm25s) over the same passages, saved as .npy and JSON.

Dense MiniLM search misses exact names (settings, error codes, function names) that BM25 finds;
the retriever fuses both rankings.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import bm25s

log = logging.getLogger(__name__)


def _bm25s() -> Any:
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)  # it sets DEBUG on import
    return bm25s


def _tokenize(texts: list[str]) -> Any:
    import Stemmer

    bm25s = _bm25s()

    return bm25s.tokenize(
        texts, stopwords="en", stemmer=Stemmer.Stemmer("english"), show_progress=False
    )


class KeywordIndex:
    """BM25 scores of passages; passage i is row i of the dense index."""

    def __init__(self, model: bm25s.BM25 | None, size: int) -> None:
        self._model = model  # None: no passage has a single word to index
        self.size = size

    @classmethod
    def build(cls, texts: list[str]) -> KeywordIndex:
        bm25s = _bm25s()
        tokens = _tokenize(texts)
        if not tokens.vocab:
            return cls(None, len(texts))
        model = bm25s.BM25()
        model.index(tokens, show_progress=False)
        return cls(model, len(texts))

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        if self._model is not None:
            self._model.save(str(folder), allow_pickle=False)

    @classmethod
    def load(cls, folder: Path, size: int) -> KeywordIndex:
        """Read what `save` wrote. Never unpickles: numpy arrays are loaded with pickling off."""
        bm25s = _bm25s()

        if not (folder / "params.index.json").is_file():
            return cls(None, size)
        return cls(bm25s.BM25.load(str(folder), allow_pickle=False), size)

    def search(self, queries: list[str], k: int) -> list[list[tuple[int, float]]]:
        """Per query, up to `k` (passage, score) pairs, best first; only passages sharing a word."""
        if self._model is None or self.size == 0 or not queries:
            return [[] for _ in queries]
        tokens = _tokenize(queries)
        words = {token_id: word for word, token_id in tokens.vocab.items()}
        known = self._model.vocab_dict
        asked = [[known[words[i]] for i in ids if words[i] in known] for ids in tokens.ids]
        results: list[list[tuple[int, float]]] = [[] for _ in queries]
        rows = [row for row, ids in enumerate(asked) if ids]  # no known word: nothing matches
        if not rows:
            return results
        ids, scores = self._model.retrieve(
            [asked[row] for row in rows], k=min(k, self.size), show_progress=False, n_threads=0
        )
        for row, row_ids, row_scores in zip(rows, ids, scores, strict=True):
            results[row] = [
                (int(i), float(s)) for i, s in zip(row_ids, row_scores, strict=True) if s > 0
            ]
        return results
