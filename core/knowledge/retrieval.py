"""The document index: FAISS vectors, BM25 and a JSON docstore, searched off the event loop.

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
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from core.errors import IndexMismatch, IndexUnusable, RetrievalFailed
from core.knowledge.keywords import KeywordIndex

if TYPE_CHECKING:
    import faiss
    from langchain_core.embeddings import Embeddings

log = logging.getLogger(__name__)

INDEX_FILE = "index.faiss"
DOCSTORE_FILE = "docstore.json"
REPEATS_FILE = "repeats.json"  # read by ingests only: a bot never searches repeats
KEYWORDS_FOLDER = "bm25"
CURRENT = "current"  # a symlink to the live version; replaced atomically by each ingest
FORMAT_VERSION = 2
Mode = Literal["hybrid", "dense", "bm25"]
# Reciprocal rank fusion: a passage scores 1/(RRF_K + rank) in each ranking that has it. 60 is
# the constant of Cormack et al. (2009); it keeps one list's top hit from drowning the other.
RRF_K = 60
_DEPTH = 30  # candidates taken from each ranking before they are fused


def printable(text: str) -> str:
    """`text` safe to show in a terminal or a chat: control characters (an escape sequence that
    recolours a terminal, a newline that fakes a line of its own) become visible escapes."""
    return "".join(
        ch if ch == " " or not unicodedata.category(ch).startswith(("C", "Z")) else ascii(ch)[1:-1]
        for ch in text
    )


@dataclass(frozen=True)
class Chunk:
    """One indexed passage and where it came from."""

    text: str
    source: str  # the file, relative to the folder it was ingested from
    location: str = ""  # a heading path, or "page N"
    file_hash: str = ""
    context: str = ""  # the heading path, put before the text that is embedded and indexed

    @property
    def citation(self) -> str:
        """Where the passage comes from, as shown to people (file names may hold anything)."""
        where = f"{self.source} › {self.location}" if self.location else self.source
        return printable(where)

    @property
    def indexed_text(self) -> str:
        """What the models see: the headings give a short passage its subject."""
        return f"{self.context}\n\n{self.text}" if self.context else self.text


@dataclass(frozen=True)
class Repeat:
    """A passage left out of the index because its text is there from another file (or earlier
    in its own), kept so that it comes back when that file goes: `at` is its place among the
    passages of the file at `path`."""

    chunk: Chunk
    path: str
    at: int


@dataclass(frozen=True)
class Passage:
    chunk: Chunk
    score: float
    base: str = ""  # the knowledge base it was found in (set by whoever searched several)


@dataclass(frozen=True)
class FileEntry:
    """An indexed file: where it was read (`path`), how it is cited, and its content hash."""

    source: str
    path: str
    root: str
    hash: str
    passages: int


def live_version(root: Path) -> str | None:
    """The folder name `current` points at, or None before the first ingest."""
    try:
        return os.readlink(root / CURRENT)
    except OSError:
        return None


def go_live(root: Path, version: str) -> None:
    """Point `current` at the folder `version` in one rename, and delete all but it and the
    version it replaced (that one stays one more round: a bot may be reading it right now)."""
    link = root / f".link-{os.getpid()}-{time.time_ns()}"
    link.symlink_to(version)
    previous = live_version(root)
    os.replace(link, root / CURRENT)
    for old in root.glob("v-*"):
        if old.name not in {version, previous}:
            shutil.rmtree(old, ignore_errors=True)


@dataclass
class Index:
    """Vectors and BM25 rows (row i belongs to chunk i), the chunks, and the files they came from.

    `recipe` names how files were cut into chunks: chunks are reused only under the same one.
    A file's `passages` counts its chunks here; its `repeats` are in `repeats`.
    """

    vectors: faiss.Index
    keywords: KeywordIndex
    chunks: list[Chunk]
    embeddings_name: str
    files: list[FileEntry] = field(default_factory=list)
    recipe: str = ""
    created: str = ""
    repeats: list[Repeat] = field(default_factory=list)

    @classmethod
    def load(
        cls, root: Path, version: str | None = None, *, with_repeats: bool = False
    ) -> Index | None:
        """The index `version` under `root` (default: the live one), or None when there is none;
        its `repeats` only `with_repeats` (an ingest needs them, a search never does).

        All files are read from the folder the link named once, so an ingest switching
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
        if not isinstance(store, dict):
            raise ValueError(f"{DOCSTORE_FILE} holds a {type(store).__name__}, not an index")
        if store.get("version") != FORMAT_VERSION:
            raise IndexMismatch(f"index format {store.get('version')} is not {FORMAT_VERSION}")
        try:
            chunks = [Chunk(**item) for item in store["chunks"]]
            files = [FileEntry(**item) for item in store["files"]]
            repeats = _load_repeats(folder / REPEATS_FILE) if with_repeats else []
        except (TypeError, KeyError) as exc:  # a passage or file with missing or unknown fields
            raise ValueError(f"{DOCSTORE_FILE} is malformed: {exc}") from exc
        vectors = faiss.read_index(str(folder / INDEX_FILE))
        if vectors.ntotal != len(chunks):
            raise IndexMismatch(f"{vectors.ntotal} vectors for {len(chunks)} chunks")
        return cls(
            vectors,
            KeywordIndex.load(folder / KEYWORDS_FOLDER, len(chunks)),
            chunks,
            store["embeddings"],
            files,
            store["recipe"],
            store["created"],
            repeats,
        )

    def save(self, root: Path) -> Path:
        """Write a new version beside the live one, then switch `current` to it in one rename."""
        import faiss

        root = root.resolve()
        root.mkdir(parents=True, exist_ok=True)
        version = root / f"v-{time.time_ns()}"
        staging = root / f".staging-{os.getpid()}-{time.time_ns()}"
        staging.mkdir()
        faiss.write_index(self.vectors, str(staging / INDEX_FILE))
        self.keywords.save(staging / KEYWORDS_FOLDER)
        store: dict[str, Any] = {
            "version": FORMAT_VERSION,
            "embeddings": self.embeddings_name,
            "recipe": self.recipe,
            "created": self.created,
            "files": [asdict(f) for f in self.files],
            "chunks": [asdict(c) for c in self.chunks],
        }
        with (staging / DOCSTORE_FILE).open("w", encoding="utf-8") as out:
            json.dump(store, out, ensure_ascii=False)
        repeats = [{"chunk": asdict(r.chunk), "path": r.path, "at": r.at} for r in self.repeats]
        with (staging / REPEATS_FILE).open("w", encoding="utf-8") as out:
            json.dump(repeats, out, ensure_ascii=False)
        staging.rename(version)
        go_live(root, version.name)
        return version

    def search(
        self, vectors: np.ndarray | None, questions: list[str], *, k: int, mode: Mode,
        min_score: float,
    ) -> list[list[Passage]]:  # fmt: skip
        """The best `k` passages for each question (row i of `vectors` embeds question i).

        dense: cosine similarity, at least `min_score`. bm25: BM25 score, passages that share a
        word with the question. hybrid: both rankings fused by reciprocal rank; a passage must
        still reach `min_score` in cosine, so a question about nothing in the documents finds
        nothing, and its score is the fused one scaled so 1.0 means first in both rankings.
        """
        if not self.chunks:
            return [[] for _ in questions]
        depth = max(k, _DEPTH) if mode == "hybrid" else k
        dense: list[list[tuple[int, float]]] = [[] for _ in questions]
        if mode != "bm25" and vectors is not None:
            scores, ids = self.vectors.search(np.ascontiguousarray(vectors, np.float32), depth)
            dense = [
                [(int(i), float(s)) for s, i in zip(row_s, row_i, strict=True) if i >= 0]
                for row_s, row_i in zip(scores, ids, strict=True)
            ]
        if mode == "dense":
            return [[Passage(self.chunks[i], s) for i, s in d if s >= min_score] for d in dense]
        keyword = self.keywords.search(questions, depth)
        if mode == "bm25":
            return [[Passage(self.chunks[i], s) for i, s in hits] for hits in keyword]
        assert vectors is not None
        return [
            self._fuse(d, kw, vectors[row], k, min_score)
            for row, (d, kw) in enumerate(zip(dense, keyword, strict=True))
        ]

    def _fuse(
        self, dense: list[tuple[int, float]], keyword: list[tuple[int, float]],
        query: np.ndarray, k: int, min_score: float,
    ) -> list[Passage]:  # fmt: skip
        cosine = dict(dense)
        for i, _ in keyword:
            if i not in cosine:
                cosine[i] = float(np.dot(self.vectors.reconstruct(i), query))
        fused: dict[int, float] = {}
        for ranking in (dense, keyword):
            for rank, (i, _) in enumerate(ranking, start=1):
                fused[i] = fused.get(i, 0.0) + 1.0 / (RRF_K + rank)
        best = sorted((i for i in fused if cosine[i] >= min_score), key=lambda i: -fused[i])
        scale = (RRF_K + 1) / 2  # first in both rankings: 1.0
        return [Passage(self.chunks[i], fused[i] * scale) for i in best[:k]]


def _load_repeats(path: Path) -> list[Repeat]:
    """What `save` wrote beside the docstore; nothing from an index made before repeats were
    left out."""
    if not path.is_file():
        return []
    items = json.loads(path.read_text(encoding="utf-8"))
    return [Repeat(Chunk(**item["chunk"]), item["path"], item["at"]) for item in items]


class Retriever:
    """Finds the passages for a question in the live index under `root`.

    Each search first checks which version `current` points at (one readlink), so a running bot
    picks up a new `threadbot ingest` without a restart; while one thread loads it, the others
    go on searching the index in hand. `switch` loads a version before it goes live, so no
    search waits for it. Loading, embedding and searching run in a worker thread: none of it
    touches the event loop.
    """

    def __init__(
        self,
        root: Path,
        embeddings: Embeddings,
        embeddings_name: str,
        *,
        k: int,
        min_score: float = -1.0,
        mode: Mode = "hybrid",
    ):
        self._root = root
        self._embeddings = embeddings
        self._embeddings_name = embeddings_name
        self._k = k
        self._min_score = min_score
        self._mode: Mode = mode
        self._version: str | None = None
        self._index: Index | None = None
        self._loading = threading.Lock()  # searches run in several worker threads

    @property
    def embeddings(self) -> Embeddings:
        """The model questions are embedded with (the report groups questions with it too)."""
        return self._embeddings

    @property
    def size(self) -> int:
        """Passages in the index as last loaded (0: nothing ingested yet)."""
        return 0 if self._index is None else len(self._index.chunks)

    @property
    def version(self) -> str | None:
        """The version folder searched now (None: no index loaded)."""
        return self._version

    @property
    def embeddings_name(self) -> str:
        return self._embeddings_name

    def refresh(self) -> Index | None:
        """Load the live index if `current` moved since the last look. Blocking.

        Only a retriever with no index yet waits for another thread's load; one with an index
        searches it meanwhile.
        """
        if live_version(self._root) == self._version:
            return self._index
        if not self._loading.acquire(blocking=self._index is None):
            return self._index
        try:
            version = live_version(self._root)
            if version != self._version:
                self._index = self._load(version)  # the index first: see `switch`
                self._version = version
            return self._index
        finally:
            self._loading.release()

    def switch(self, version: str) -> None:
        """Load the folder `version` under `root`, then make it live, here and in `current`.

        Blocking. Searches go on with the index in hand until the new one is loaded. Raises
        `IndexUnusable`, leaving everything as it was, when the folder cannot be searched here.
        """
        index = self._open(version)
        with self._loading:  # a search seeing `current` move meanwhile keeps the index in hand
            go_live(self._root, version)
            self._index = index
            self._version = version
        log.info("loaded %d passages from %s (%s)", len(index.chunks), self._root, version)

    def _open(self, version: str) -> Index:
        try:
            index = Index.load(self._root, version)
        except (IndexMismatch, OSError, ValueError, KeyError, RuntimeError) as exc:
            raise IndexUnusable(f"cannot load the index in {self._root} ({exc})") from exc
        if index is None:
            raise IndexUnusable(f"cannot load the index in {self._root} (no {version})")
        if index.embeddings_name != self._embeddings_name:
            raise IndexUnusable(
                f"the index was built with {index.embeddings_name} but the configured "
                f"embeddings are {self._embeddings_name}"
            )
        return index

    def _load(self, version: str | None) -> Index | None:
        try:
            index = self._open(version) if version is not None else None
        except IndexUnusable as exc:
            log.error("%s; run `threadbot ingest` again", exc)
            index = None
        if index is None:
            log.warning("no usable document index: answering without documents")
        else:
            log.info("loaded %d passages from %s (%s)", len(index.chunks), self._root, version)
        return index

    def search_many(self, questions: list[str], k: int | None = None) -> list[list[Passage]]:
        """The passages for each question, as `search` finds them; blocking, for many at once.

        The questions are embedded in batches: the search command answers thousands this way.
        """
        index = self.refresh()
        if index is None or not index.chunks or not questions:
            return [[] for _ in questions]
        vectors = None
        if self._mode != "bm25":
            vectors = np.asarray(self._embeddings.embed_documents(questions), dtype=np.float32)
        return index.search(
            vectors, questions, k=k or self._k, mode=self._mode, min_score=self._min_score
        )

    async def search(self, question: str, k: int | None = None) -> list[Passage]:
        """The best `k` passages for `question` (`RETRIEVAL_K` unless given)."""
        try:
            (found,) = await asyncio.to_thread(self.search_many, [question], k)
            return found
        except Exception as exc:  # the embedding client's errors (network, key, 429) end here
            log.warning("document search failed: %r", exc)
            raise RetrievalFailed(repr(exc)) from exc
