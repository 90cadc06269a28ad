"""Vectors by passage hash in SQLite, committed as they are computed: an ingest that is killed
keeps what it embedded, and the next one embeds only what is missing."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable
from pathlib import Path

import numpy as np

CACHE_FILE = "embeddings.sqlite3"
_LOOKUP = 500  # hashes per SELECT, under SQLite's limit of bound parameters


def passage_hash(text: str) -> bytes:
    """The key of the text that is embedded (heading path and passage, as the model sees it)."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


class EmbeddingCache:
    """The vectors of one embedding model, in `data_dir/embeddings.sqlite3`."""

    def __init__(self, data_dir: Path, model: str) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(data_dir / CACHE_FILE)
        self._model = model
        # WAL: a committed batch survives the process being killed at any point.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS vectors ("
            " model TEXT NOT NULL, hash BLOB NOT NULL, vector BLOB NOT NULL,"
            " PRIMARY KEY (model, hash)) WITHOUT ROWID"
        )

    def close(self) -> None:
        self._db.close()

    def missing(self, hashes: Iterable[bytes]) -> set[bytes]:
        wanted = list(dict.fromkeys(hashes))
        present: set[bytes] = set()
        for start in range(0, len(wanted), _LOOKUP):
            part = wanted[start : start + _LOOKUP]
            marks = ",".join("?" * len(part))
            present.update(
                row[0]
                for row in self._db.execute(
                    f"SELECT hash FROM vectors WHERE model = ? AND hash IN ({marks})",
                    [self._model, *part],
                )
            )
        return set(wanted) - present

    def get(self, hashes: list[bytes]) -> np.ndarray:
        """The vectors of `hashes`, one row each, in order. KeyError when one is missing."""
        found: dict[bytes, bytes] = {}
        unique = list(dict.fromkeys(hashes))
        for start in range(0, len(unique), _LOOKUP):
            part = unique[start : start + _LOOKUP]
            marks = ",".join("?" * len(part))
            found.update(
                self._db.execute(
                    f"SELECT hash, vector FROM vectors WHERE model = ? AND hash IN ({marks})",
                    [self._model, *part],
                ).fetchall()
            )
        return np.vstack([np.frombuffer(found[h], dtype=np.float32) for h in hashes])

    def put(self, hashes: list[bytes], vectors: np.ndarray) -> None:
        """Store and commit at once, so the work survives an interruption right after."""
        rows = np.asarray(vectors, dtype=np.float32)
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)",
                [(self._model, h, row.tobytes()) for h, row in zip(hashes, rows, strict=True)],
            )

    def keep_only(self, hashes: Iterable[bytes]) -> int:
        """Forget every vector but these (the live index's), so the cache tracks the index."""
        with self._db:
            self._db.execute("CREATE TEMP TABLE IF NOT EXISTS keep (hash BLOB PRIMARY KEY)")
            self._db.execute("DELETE FROM keep")
            self._db.executemany("INSERT OR IGNORE INTO keep VALUES (?)", ((h,) for h in hashes))
            removed = self._db.execute(
                "DELETE FROM vectors WHERE model != ? OR hash NOT IN (SELECT hash FROM keep)",
                [self._model],
            ).rowcount
        return int(removed)
