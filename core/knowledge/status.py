"""What an operator asks of the document index outside any turn (`threadbot doctor`,
`threadbot report`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.knowledge.retrieval import Index

if TYPE_CHECKING:
    from pathlib import Path

    from core.knowledge.retrieval import FileEntry


@dataclass(frozen=True)
class IndexSummary:
    """The live index in a few numbers, and the embedding model it was built with."""

    passages: int
    files: int
    embeddings_name: str
    created: str


def index_summary(root: Path) -> IndexSummary | None:
    """The live index under `root`, or None before the first ingest. Blocking (it reads the
    whole index); raises what `Index.load` raises for an index it cannot read."""
    index = Index.load(root)
    if index is None:
        return None
    return IndexSummary(len(index.chunks), len(index.files), index.embeddings_name, index.created)


def indexed_files(root: Path) -> list[FileEntry] | None:
    """The files of the live index under `root` (as `threadbot index list` shows them), or None
    before the first ingest. Blocking; raises what `Index.load` raises."""
    index = Index.load(root)
    return None if index is None else index.files
