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
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

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
    def load(cls, root: Path) -> Index | None:
        """The live index under `root`, or None when nothing was ingested yet."""
        import faiss

        folder = root / CURRENT
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
        previous = (root / CURRENT).resolve() if (root / CURRENT).is_symlink() else None
        os.replace(link, root / CURRENT)
        if previous is not None and previous != version and previous.parent == root:
            shutil.rmtree(previous, ignore_errors=True)
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

    def __init__(self, root: Path, embeddings: Embeddings, embeddings_name: str, *, k: int):
        self._root = root
        self._embeddings = embeddings
        self._embeddings_name = embeddings_name
        self._k = k
        self._version: str | None = None
        self._index: Index | None = None

    @property
    def size(self) -> int:
        """Passages in the index as last loaded (0: nothing ingested yet)."""
        return 0 if self._index is None else len(self._index.chunks)

    def refresh(self) -> Index | None:
        """Load the live index if `current` moved since the last look. Blocking."""
        try:
            version = os.readlink(self._root / CURRENT)
        except OSError:
            version = None
        if version == self._version:
            return self._index
        self._version = version
        try:
            index = Index.load(self._root) if version is not None else None
        except (IndexMismatch, OSError, ValueError, KeyError, RuntimeError) as exc:
            log.error("cannot load the index in %s (%s); run `threadbot ingest`", self._root, exc)
            self._version = None  # look again next time (an ingest may have been mid-swap)
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
        self._index = index
        return index

    def _search(self, question: str) -> list[Passage]:
        index = self.refresh()
        if index is None or not index.chunks:
            return []
        return index.search(self._embeddings.embed_query(question), self._k)

    async def search(self, question: str) -> list[Passage]:
        return await asyncio.to_thread(self._search, question)
