"""How long a newcomer waits: ingest the sample docs, start the bot, get the first answers.

Run as `python -m bench.first_answer` from the repository. It uses the real parts in one process
(embedded Valkey, ONNX embeddings, FAISS, the real ChatOpenAI client against the local
OpenAI-compatible server from tests/fakes) and prints a table.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from bench._table import print_table
from core import Pipeline, Settings, build_embeddings, ingest
from tests.fakes.fake_openai import FakeOpenAI

ROOT = Path(__file__).resolve().parent.parent

QUESTIONS = ["How do I reset a conversation?", "Where is history kept?", "Which files can I index?"]


async def timed_answer(pipeline: Pipeline, session: str, question: str) -> tuple[float, float]:
    """Seconds to the first chunk and to the end of the answer."""
    start = time.perf_counter()
    first = None
    async for _ in pipeline.answer(session, question):
        first = first or time.perf_counter() - start
    return first or 0.0, time.perf_counter() - start


async def main() -> None:
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        base = {"threadbot_data_dir": Path(tmp), "_env_file": None}
        settings = Settings(**base)
        start = time.perf_counter()
        embeddings, name = build_embeddings(settings)
        rows.append(("load local embedding model", f"{time.perf_counter() - start:.2f} s"))
        start = time.perf_counter()
        report = ingest(settings, [ROOT / "examples" / "docs"], embeddings, name, progress=False)
        took = time.perf_counter() - start
        rows.append((f"ingest sample docs ({report.chunks} passages)", f"{took:.2f} s"))
        start = time.perf_counter()
        ingest(settings, [ROOT / "examples" / "docs"], embeddings, name, progress=False)
        rows.append(("re-ingest, nothing changed", f"{time.perf_counter() - start:.2f} s"))

        start = time.perf_counter()
        async with await Pipeline.create(settings) as pipeline:
            rows.append(
                ("start: embedded Valkey + model + index", f"{time.perf_counter() - start:.2f} s")
            )
            timings = [await timed_answer(pipeline, "console:bench", q) for q in QUESTIONS]
        rows.append(("retrieval-only answer, first", f"{timings[0][1] * 1000:.0f} ms"))
        rest = statistics.median(t[1] for t in timings[1:])
        rows.append(("retrieval-only answer, median after", f"{rest * 1000:.0f} ms"))

        fake = await FakeOpenAI().start()
        try:
            model_settings = Settings(
                **base, openai_base_url=fake.base_url, openai_api_key="bench", embeddings="local"
            )
            async with await Pipeline.create(model_settings) as pipeline:
                timings = [await timed_answer(pipeline, "console:bench2", q) for q in QUESTIONS]
        finally:
            await fake.close()
        rows.append(("model answer (local server), first chunk", f"{timings[0][0] * 1000:.0f} ms"))
        overhead = statistics.median(t[0] for t in timings[1:])
        rows.append(("model answer, median first chunk after", f"{overhead * 1000:.0f} ms"))

    print(
        f"settings: REDIS_URL unset (embedded Valkey)  EMBEDDINGS={settings.embeddings_kind}  "
        f"RETRIEVAL_K={settings.retrieval_k}  CHUNK_SIZE_CHARS={settings.chunk_size_chars}  "
        "docs: examples/docs"
    )
    print_table(("step", "time"), rows)


if __name__ == "__main__":
    asyncio.run(main())
