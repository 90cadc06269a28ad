"""How fast and how big a cold ingest is: passages per second, peak memory, what was skipped
and left out as repeats, and a re-ingest.

Run as `python -m bench.ingest_speed` (the sample docs), `python -m bench.ingest_speed --django`
(the Django documentation from its sdist, about 4 minutes on 2 cores) or `python -m
bench.ingest_speed --docs DIR` (any folder, such as a built docs site). The ingest runs in a
fresh `threadbot ingest` process, so its peak resident memory is measured alone.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._docsets import SAMPLE_DOCS, django_docs
from bench._table import print_table
from core import Retriever, Settings, build_embeddings

SAMPLE = 256
_COUNT = r"([\d,]+)"  # the summary writes 25,708


def count(pattern: str, summary: str) -> int:
    """A number the ingest's summary line says (0 when it does not say it)."""
    found = re.search(pattern.replace("N", _COUNT), summary)
    return int(found.group(1).replace(",", "")) if found else 0


def skipped(summary: str) -> list[tuple[str, int]]:
    """(reason, files) as the summary line counts them: "skipped 9 (7 generated copy, ...)"."""
    found = re.search(r"skipped [\d,]+ \(([^)]*)\)", summary)
    if found is None:
        return []
    pairs = (part.split(" ", 1) for part in found.group(1).split(", "))
    return [(reason, int(n.replace(",", ""))) for n, reason in pairs]


def run_ingest(docs: Path, data_dir: Path) -> tuple[float, float, str]:
    """Seconds, peak resident MB of the child, and its summary line."""
    env = {**os.environ, "THREADBOT_DATA_DIR": str(data_dir), "EMBEDDINGS": "local"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "bots.cli.main", "ingest", str(docs)],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    took = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the largest of any child so far: the first ingest runs first.
    return took, max(peak, before) / 1024, done.stdout.splitlines()[0]


def embedding_rate(settings: Settings) -> float:
    """Passages per second for passages of about 600 characters, the unit issue 9 uses."""
    embeddings, name = build_embeddings(settings)
    retriever = Retriever(settings.index_dir, embeddings, name, k=1)
    index = retriever.refresh()
    assert index is not None
    texts = [c.indexed_text for c in index.chunks if 550 <= len(c.indexed_text) <= 650] or [
        c.indexed_text for c in index.chunks
    ]
    texts = (texts * SAMPLE)[:SAMPLE]  # the sample docs hold fewer: repeat them
    embeddings.embed_documents(texts[:8])  # warm up
    start = time.perf_counter()
    embeddings.embed_documents(texts)
    return SAMPLE / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--django", action="store_true", help="the Django docs (downloaded)")
    parser.add_argument("--docs", type=Path, help="a folder to ingest instead of the sample docs")
    parser.add_argument(
        "--data", type=Path, help="an empty data folder to keep (bench.retrieval_eval reuses it)"
    )
    args = parser.parse_args()
    docs = args.docs or (django_docs() if args.django else SAMPLE_DOCS)
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or Path(tmp)
        settings = Settings(threadbot_data_dir=data, _env_file=None)  # type: ignore[call-arg]
        cold, peak, summary = run_ingest(docs, data)
        passages = count(r"holds N passage", summary)
        again, _, summary_again = run_ingest(docs, data)
        rate = embedding_rate(settings)
    print(
        f"settings: EMBEDDINGS=local  EMBEDDING_BATCH_SIZE={settings.embedding_batch_size}  "
        f"EMBEDDING_THREADS={settings.embedding_threads or os.cpu_count()}  "
        f"CHUNK_SIZE_CHARS={settings.chunk_size_chars}  docs: {docs}"
    )
    print(f"  {summary}")
    rows = [
        ("cold ingest (empty cache)", f"{cold:.1f} s"),
        ("files indexed", f"{count(r'Indexed N file', summary):,}"),
        *((f"files skipped: {reason}", f"{n:,}") for reason, n in skipped(summary)),
        ("passages", f"{passages:,}"),
        ("repeats left out (a text indexed once)", f"{count(r'N repeats? of an', summary):,}"),
        ("passages per second, whole ingest", f"{passages / cold:.1f}"),
        ("peak resident memory of the ingest", f"{peak:.0f} MB"),
        (f"embedding only, {SAMPLE} passages of 550-650 characters", f"{rate:.1f} per second"),
        (
            "unchanged re-ingest",
            f"{again:.1f} s ({'nothing' if 'nothing written' in summary_again else 'WROTE'})",
        ),
    ]
    print_table(("measure", "value"), rows)


if __name__ == "__main__":
    main()
