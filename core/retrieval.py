"""The document index: FAISS vectors plus a JSON docstore, searched off the event loop.

Never a pickle: loading an index reads numbers and JSON, so an index folder that someone else
wrote can't run code here (langchain-community's FAISS.save_local pickles its docstore).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import RetrievalFailed

if TYPE_CHECKING:
    import faiss
    from langchain_core.embeddings import Embeddings

log = logging.getLogger(__name__)

INDEX_FILE = "index.faiss"
DOCSTORE_FILE = "docstore.json"
CURRENT = "current"  # a symlink to the live version; replaced atomically by each ingest
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Chunk:
    """One indexed passage and where it came from."""

    text: str
    source: str  # the file, relative to the folder it was ingested from
    location: str = ""  # a heading path, or "page N"
    file_hash: str = ""

    @property
    def citation(self) -> str:
        return f"{self.source} › {self.location}" if self.location else self.source


@dataclass(frozen=True)
class Passage:
    chunk: Chunk
    score: float


def live_version(root: Path) -> str | None:
    """The folder name `current` points at, or None before the first ingest."""
    try:
        return os.readlink(root / CURRENT)
    except OSError:
        return None


class IndexMismatch(Exception):
    """The index was built with another embedding model; searching it would return noise."""


class Index:
    """Vectors (row i belongs to chunk i) and their chunks."""

    def __init__(self, vectors: faiss.Index, chunks: list[Chunk], embeddings_name: str) -> None:
        self.vectors = vectors
        self.chunks = chunks
        self.embeddings_name = embeddings_name

    @classmethod
    def build(cls, matrix: np.ndarray, chunks: list[Chunk], embeddings_name: str) -> Index:
        import faiss

        dim = matrix.shape[1] if matrix.size else 1
        vectors = faiss.IndexFlatIP(dim)
        if matrix.size:
            vectors.add(np.ascontiguousarray(matrix, dtype=np.float32))
        return cls(vectors, chunks, embeddings_name)

    @classmethod
    def load(cls, root: Path, version: str | None = None) -> Index | None:
        """The index `version` under `root` (default: the live one), or None when there is none.

        Both files are read from the folder the link named once, so an ingest switching
        `current` meanwhile cannot pair one version's vectors with another's passages.
        """
        import faiss

        version = version if version is not None else live_version(root)
        if version is None:
            return None
        folder = root / version
        if not (folder / DOCSTORE_FILE).is_file():
            return None
        store = json.loads((folder / DOCSTORE_FILE).read_text(encoding="utf-8"))
        if store.get("version") != FORMAT_VERSION:
            raise IndexMismatch(f"index format {store.get('version')} is not {FORMAT_VERSION}")
        chunks = [Chunk(**item) for item in store["chunks"]]
        vectors = faiss.read_index(str(folder / INDEX_FILE))
        if vectors.ntotal != len(chunks):
            raise IndexMismatch(f"{vectors.ntotal} vectors for {len(chunks)} chunks")
        return cls(vectors, chunks, store["embeddings"])

    def save(self, root: Path) -> Path:
        """Write a new version beside the live one, then switch `current` to it in one rename."""
        import faiss

        root = root.resolve()
        root.mkdir(parents=True, exist_ok=True)
        version = root / f"v-{time.time_ns()}"
        staging = root / f".staging-{os.getpid()}-{time.time_ns()}"
        staging.mkdir()
        faiss.write_index(self.vectors, str(staging / INDEX_FILE))
        store: dict[str, Any] = {
            "version": FORMAT_VERSION,
            "embeddings": self.embeddings_name,
            "chunks": [asdict(c) for c in self.chunks],
        }
        (staging / DOCSTORE_FILE).write_text(json.dumps(store, ensure_ascii=False), "utf-8")
        staging.rename(version)
        link = root / f".link-{os.getpid()}-{time.time_ns()}"
        link.symlink_to(version.name)
        previous = live_version(root)
        os.replace(link, root / CURRENT)
        # The version just replaced stays one more round: a bot may be reading it right now.
        for old in root.glob("v-*"):
            if old.name not in {version.name, previous}:
                shutil.rmtree(old, ignore_errors=True)
        return version

    def search(self, query: list[float], k: int) -> list[Passage]:
        if self.vectors.ntotal == 0:
            return []
        scores, ids = self.vectors.search(np.array([query], dtype=np.float32), k)
        return [
            Passage(self.chunks[i], float(s))
            for s, i in zip(scores[0], ids[0], strict=True)
            if i >= 0
        ]


class Retriever:
    """Finds the passages for a question in the live index under `root`.

    Each search first checks which version `current` points at (one readlink), so a running bot
    picks up a new `threadbot ingest` without a restart. Loading, embedding and searching run
    in a worker thread: none of it touches the event loop.
    """

    def __init__(
        self,
        root: Path,
        embeddings: Embeddings,
        embeddings_name: str,
        *,
        k: int,
        min_score: float = -1.0,
    ):
        self._root = root
        self._embeddings = embeddings
        self._embeddings_name = embeddings_name
        self._k = k
        self._min_score = min_score
        self._version: str | None = None
        self._index: Index | None = None
        self._loading = threading.Lock()  # searches run in several worker threads

    @property
    def size(self) -> int:
        """Passages in the index as last loaded (0: nothing ingested yet)."""
        return 0 if self._index is None else len(self._index.chunks)

    def refresh(self) -> Index | None:
        """Load the live index if `current` moved since the last look. Blocking."""
        with self._loading:
            version = live_version(self._root)
            if version != self._version:
                self._index = self._load(version)
                self._version = version
            return self._index

    def _load(self, version: str | None) -> Index | None:
        try:
            index = Index.load(self._root, version) if version is not None else None
        except (IndexMismatch, OSError, ValueError, KeyError, RuntimeError) as exc:
            log.error("cannot load the index in %s (%s); run `threadbot ingest`", self._root, exc)
            index = None
        if index is not None and index.embeddings_name != self._embeddings_name:
            log.error(
                "the index was built with %s but the configured embeddings are %s; "
                "run `threadbot ingest` again. Answering without documents until then.",
                index.embeddings_name,
                self._embeddings_name,
            )
            index = None
        if index is None:
            log.warning("no usable document index: answering without documents")
        else:
            log.info("loaded %d passages from %s (%s)", len(index.chunks), self._root, version)
        return index

    def _search(self, question: str) -> list[Passage]:
        index = self.refresh()
        if index is None or not index.chunks:
            return []
        found = index.search(self._embeddings.embed_query(question), self._k)
        # Below the cutoff a passage is noise ("hello" matches nothing): better none than that.
        return [p for p in found if p.score >= self._min_score]

    async def search(self, question: str) -> list[Passage]:
        try:
            return await asyncio.to_thread(self._search, question)
        except Exception as exc:  # the embedding client's errors (network, key, 429) end here
            log.warning("document search failed: %r", exc)
            raise RetrievalFailed(repr(exc)) from exc
