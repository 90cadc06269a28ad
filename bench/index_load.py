"""How long a new worker takes to fetch the shared index from Redis and start answering from it.

Run as `python -m bench.index_load` (2,000 passages, seconds) or `--passages 100000` for the
real figure. A synthetic index (random unit vectors of the configured embedding dimension,
generated text of about 600 characters a passage) is built with the real Index class and
published with the real code to the embedded Valkey server (or REDIS_URL when set); then a
worker with an empty data folder downloads it, checks every file's sha256, and loads it.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bench._table import print_table
from core import (
    Chunk,
    EmbeddedRedis,
    Index,
    KeywordIndex,
    Retriever,
    Settings,
    build_embeddings,
    redis_client,
    shared_index,
)

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

WORDS_PER_PASSAGE = 90  # about 600 characters: the passage size of issue 9
SEED = 11


def vocabulary(size: int, rng: random.Random) -> list[str]:
    """Made-up words of two to four syllables, so BM25 indexes a realistic vocabulary."""
    syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
    return list({"".join(rng.choices(syllables, k=rng.randint(2, 4))) for _ in range(size)})


def synthetic_index(passages: int, dimension: int, embeddings_name: str) -> Index:
    import faiss

    rng = random.Random(SEED)
    words = vocabulary(20_000, rng)
    chunks = [
        Chunk(" ".join(rng.choices(words, k=WORDS_PER_PASSAGE)), f"doc-{i // 50}.md", f"part {i}")
        for i in range(passages)
    ]
    vectors = np.random.default_rng(SEED).standard_normal((passages, dimension), np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    flat = faiss.IndexFlatIP(dimension)
    flat.add(vectors)
    keywords = KeywordIndex.build([c.indexed_text for c in chunks])
    return Index(flat, keywords, chunks, embeddings_name, created="bench")


async def measure(
    settings: Settings, worker: Settings, index: Index, embeddings: Embeddings
) -> list[tuple[str, str]]:
    """Publish `index` as an ingest does, then time a worker fetching and loading it."""
    version = (await asyncio.to_thread(index.save, settings.index_dir)).name
    redis = redis_client.connect(settings)
    try:
        before = int((await redis.info("memory"))["used_memory"])
        start = time.perf_counter()
        published = await shared_index.publish(redis, settings, index, version)
        publish_s = time.perf_counter() - start
        used_mb = (int((await redis.info("memory"))["used_memory"]) - before) / 1e6

        retriever = Retriever(worker.index_dir, embeddings, index.embeddings_name, k=4)
        start = time.perf_counter()
        found = await shared_index.manifest(redis, worker, version)
        await shared_index.download(redis, worker, found)
        download_s = time.perf_counter() - start
        await asyncio.to_thread(retriever.switch, version)
        total_s = time.perf_counter() - start
    finally:
        await redis.aclose()
    assert retriever.size == len(index.chunks)
    return [
        ("passages", f"{published.passages:,}"),
        ("MB in Redis (files published)", f"{published.size / 1e6:.1f}"),
        ("MB in Redis (used_memory growth)", f"{used_mb:.1f}"),
        ("parts", f"{published.parts}"),
        ("publish s (ingest side)", f"{publish_s:.2f}"),
        ("download s (with sha256 checks)", f"{download_s:.2f}"),
        ("load s", f"{total_s - download_s:.2f}"),
        ("total s (new worker, empty data folder)", f"{total_s:.2f}"),
    ]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--passages", type=int, default=2000, help="passages in the index")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Settings(threadbot_data_dir=Path(tmp) / "ingest", _env_file=None)  # type: ignore[call-arg]
        embedded = None
        if base.redis_url is None:
            embedded = EmbeddedRedis(Path(tmp))
            url = await asyncio.to_thread(embedded.start)
            base = base.model_copy(update={"redis_url": url})
        worker = base.model_copy(update={"threadbot_data_dir": Path(tmp) / "worker"})
        try:
            embeddings, name = await asyncio.to_thread(build_embeddings, base)
            dimension = len(await asyncio.to_thread(embeddings.embed_query, "dimension"))
            start = time.perf_counter()
            index = await asyncio.to_thread(synthetic_index, args.passages, dimension, name)
            built_s = time.perf_counter() - start
            rows = await measure(base, worker, index, embeddings)
        finally:
            if embedded is not None:
                await asyncio.to_thread(embedded.stop)
    print(
        f"settings: INDEX_PART_MB={base.index_part_mb:g}  embeddings: {name} ({dimension} "
        f"dimensions)  Redis: {'embedded Valkey' if embedded else 'REDIS_URL'}  "
        f"synthetic index built in {built_s:.1f} s"
    )
    print_table(("measure", "value"), rows)


if __name__ == "__main__":
    asyncio.run(main())
