"""The knowledge bases one process searches: a retriever over each base's index, followed from
Redis when the index is shared, opened when a base is first asked for (one the configuration
file names after start-up too)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from core.knowledge.index_follower import IndexFollower
from core.knowledge.retrieval import Passage, Retriever

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings
    from redis.asyncio import Redis

    from core.settings import Settings

log = logging.getLogger(__name__)


class Library:
    """Searches several knowledge bases as one: each base's best passages, merged by score."""

    def __init__(
        self,
        settings: Settings,
        embeddings: Embeddings,
        embeddings_name: str,
        *,
        redis: Redis | None = None,
        opened: dict[str, Retriever] | None = None,
    ) -> None:
        self._settings = settings
        self._embeddings = embeddings
        self._name = embeddings_name
        self._redis = redis  # a shared server: each base follows its published index
        self._retrievers: dict[str, Retriever] = dict(opened or {})
        self._followers: list[IndexFollower] = []
        self._opening = asyncio.Lock()

    async def retriever(self, base: str) -> Retriever:
        if base in self._retrievers:
            return self._retrievers[base]
        async with self._opening:
            if base not in self._retrievers:
                self._retrievers[base] = await self._open(base)
        return self._retrievers[base]

    async def _open(self, base: str) -> Retriever:
        settings = self._settings.for_base(base)
        found = Retriever(
            settings.index_dir,
            self._embeddings,
            self._name,
            k=settings.retrieval_k,
            min_score=settings.retrieval_min_score,
            mode=settings.retrieval_mode,
        )
        if self._redis is not None:
            follower = IndexFollower(self._redis, settings, found)
            await follower.sync()
            follower.start()
            self._followers.append(follower)
        await asyncio.to_thread(found.refresh)
        log.info("searching the knowledge base %r (%d passages)", base, found.size)
        return found

    async def search(self, query: str, bases: Sequence[str], k: int | None = None) -> list[Passage]:
        """The best `k` (`RETRIEVAL_K` unless given) passages of `bases` together (none for no
        base)."""
        retrievers = [await self.retriever(base) for base in bases]
        searched = await asyncio.gather(*(r.search(query, k) for r in retrievers))
        found = [[replace(p, base=b) for p in ps] for b, ps in zip(bases, searched, strict=True)]
        if len(found) == 1:
            return found[0]
        merged = sorted((p for passages in found for p in passages), key=lambda p: -p.score)
        return merged[: k or self._settings.retrieval_k]

    async def aclose(self) -> None:
        for follower in self._followers:
            await follower.aclose()
