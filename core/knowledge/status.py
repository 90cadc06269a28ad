"""What an operator asks of the document index outside any turn (`threadbot doctor`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.knowledge.retrieval import Index

if TYPE_CHECKING:
    from pathlib import Path


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
