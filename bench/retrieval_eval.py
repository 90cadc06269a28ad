"""How often retrieval finds the passage that answers a question: dense, BM25 and hybrid.

Run as `python -m bench.retrieval_eval` (the sample docs) or with `--django` (adds the Django
documentation from its sdist; the first run embeds it, about 5 minutes on 2 cores, later runs
reuse the embedding cache in the temp folder). The labelled questions are in
bench/retrieval_questions.json. Prints recall@1, recall@4 and MRR@10 per document set and mode.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from bench._docsets import SAMPLE_DOCS, django_docs
from core import Passage, Retriever, Settings, build_embeddings, ingest

QUESTIONS = Path(__file__).with_name("retrieval_questions.json")
MODES = ("dense", "bm25", "hybrid")
DEPTH = 10  # MRR counts a first relevant passage down to this rank


def answers(passage: Passage, label: dict[str, str]) -> bool:
    chunk = passage.chunk
    return (
        chunk.source == label["source"]
        and ("heading" not in label or label["heading"] in chunk.location.split(" › "))
        and ("text" not in label or label["text"] in chunk.text)
    )


def evaluate(retriever: Retriever, labels: list[dict[str, str]]) -> tuple[float, float, float]:
    found = retriever.search_many([label["question"] for label in labels], k=DEPTH)
    ranks = [
        next((rank for rank, p in enumerate(passages, 1) if answers(p, label)), None)
        for passages, label in zip(found, labels, strict=True)
    ]
    n = len(labels)
    return (
        sum(r == 1 for r in ranks) / n,
        sum(r is not None and r <= 4 for r in ranks) / n,
        sum(1 / r for r in ranks if r is not None) / n,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--django", action="store_true", help="also the Django docs")
    parser.add_argument(
        "--many", type=int, default=0, help="also time a hybrid search of this many questions"
    )
    args = parser.parse_args()
    labelled = json.loads(QUESTIONS.read_text(encoding="utf-8"))
    sets = {"examples/docs": SAMPLE_DOCS}
    if args.django:
        sets["django"] = django_docs()
    rows: list[tuple[str, str, int, float, float, float]] = []
    timing = ""
    for name, docs in sets.items():
        # One data folder per set: its embedding cache makes every run after the first quick.
        data = Path(tempfile.gettempdir()) / "threadbot-bench" / f"data-{name.replace('/', '-')}"
        settings = Settings(threadbot_data_dir=data, embeddings="local", _env_file=None)  # type: ignore[call-arg]
        embeddings, model = build_embeddings(settings)
        ingest(settings, [docs], embeddings, model, progress=True, force=True)
        labels = labelled[name]
        for mode in MODES:
            retriever = Retriever(
                settings.index_dir, embeddings, model, k=settings.retrieval_k,
                min_score=settings.retrieval_min_score, mode=mode,  # type: ignore[arg-type]
            )  # fmt: skip
            index = retriever.refresh()
            assert index is not None
            for label in labels:  # a label no passage can match is a typo, not a miss
                if not any(answers(Passage(c, 0), label) for c in index.chunks):
                    raise SystemExit(f"no passage in {name} matches the label {label}")
            rows.append((name, mode, len(labels), *evaluate(retriever, labels)))
            if args.many and mode == "hybrid" and name == list(sets)[-1]:
                questions = [labels[i % len(labels)]["question"] for i in range(args.many)]
                start = time.perf_counter()
                retriever.search_many(questions)
                took = time.perf_counter() - start
                timing = f"hybrid search of {args.many} questions on {name}: {took:.1f} s"
    print(
        f"settings: EMBEDDINGS=local  RETRIEVAL_K={settings.retrieval_k}  "
        f"RETRIEVAL_MIN_SCORE={settings.retrieval_min_score}  "
        f"CHUNK_SIZE_CHARS={settings.chunk_size_chars}  MRR@{DEPTH}"
    )
    print("documents     | mode   | questions | recall@1 | recall@4 | MRR")
    print("--------------|--------|-----------|----------|----------|------")
    for name, mode, n, r1, r4, mrr in rows:
        print(f"{name:<13} | {mode:<6} | {n:>9} | {r1:>8.2f} | {r4:>8.2f} | {mrr:.3f}")
    if timing:
        print(timing)


if __name__ == "__main__":
    main()
