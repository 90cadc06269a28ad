"""`threadbot ingest`, `index list` and `search`: the knowledge base from the command line."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bots.lifecycle import ExitCode

if TYPE_CHECKING:  # the core is imported once a command runs: `--version` and `--help` are quick
    from core import Settings
    from core.knowledge.ingest import IngestReport
    from core.knowledge.retrieval import Passage

_SEARCH_BATCH = 256  # questions embedded together by `threadbot search`


def ingest_command(settings: Settings, args: argparse.Namespace) -> int:
    """Index locally; with a REDIS_URL, publish the result, where every worker picks it up."""
    code = _index_locally(settings, args)
    if code != 0 or settings.redis_url is None:
        return code
    return _publish(settings)


def _index_locally(settings: Settings, args: argparse.Namespace) -> int:
    from core.errors import IndexMismatch, IngestRefused
    from core.knowledge.embeddings import build_embeddings
    from core.knowledge.ingest import ingest, remove
    from core.knowledge.retrieval import Index
    from core.knowledge.sources import find_files

    try:
        paths = _folders(settings, args.paths, crawl=not args.remove)
        if args.remove:
            return _summary(settings, remove(settings, paths, force=args.force), "")
        embeddings, name = build_embeddings(settings)
        try:
            existing = Index.load(settings.index_dir) if args.if_empty else None
        except IndexMismatch:
            existing = None  # an index from an older threadbot: rebuilt below
        if existing is not None:
            wanted = {
                f.source for p in paths for f in find_files(
                    p, ignore=settings.ingest_ignore, max_bytes=settings.ingest_max_file_bytes
                ).files
            }  # fmt: skip
            same_files = {f.source for f in existing.files} == wanted
            # Rebuild only an index of these very files made with another model (the sample docs
            # after a key was added): someone's own documents are never replaced by the samples.
            if existing.embeddings_name == name or not same_files:
                sys.stdout.write(
                    f"Index already holds {len(existing.chunks)} passages in "
                    f"{settings.index_dir}; leaving it as it is.\n"
                )
                if existing.embeddings_name != name:
                    sys.stdout.write(
                        f"It was built with {existing.embeddings_name}, but the embeddings now "
                        f"are {name}: run `threadbot ingest YOUR_DOCS` so the bot can search "
                        "them.\n"
                    )
                return ExitCode.OK
        report = ingest(settings, paths, embeddings, name, add=args.add, force=args.force)
    except IngestRefused as exc:
        sys.stderr.write(f"threadbot: {exc}\n")
        return ExitCode.MISCONFIGURED
    return _summary(settings, report, name)


def _folders(settings: Settings, given: list[Path | str], *, crawl: bool) -> list[Path]:
    """The folders and files to index: a website is crawled into its folder first (`crawl`),
    and its crawl summarised in one line."""
    from core.knowledge.site import mirror, mirror_dir

    paths: list[Path] = []
    for item in given:
        if isinstance(item, Path):
            paths.append(item)
        elif not crawl:
            paths.append(mirror_dir(settings, item))
        else:
            folder, crawled = asyncio.run(mirror(settings, item))
            skipped = ", ".join(f"{n} {why}" for why, n in sorted(crawled.skipped.items()))
            failed = ", ".join(f"{n} {why}" for why, n in sorted(crawled.failed.items()))
            sys.stdout.write(
                f"Crawled {item} in {crawled.seconds:.1f} s: {_plural(crawled.fetched, 'page')} "
                f"fetched, {crawled.unchanged:,} unchanged (304), {len(crawled.gone):,} gone; "
                f"skipped {sum(crawled.skipped.values())}{f' ({skipped})' if skipped else ''}; "
                f"failed {sum(crawled.failed.values())}{f' ({failed})' if failed else ''}.\n"
            )
            paths.append(folder)
    return paths


def _publish(settings: Settings) -> int:
    from core.errors import SharedIndexError
    from core.knowledge.shared_index import publish_to_workers

    try:
        published = asyncio.run(publish_to_workers(settings))
    except SharedIndexError as exc:
        sys.stderr.write(
            f"threadbot: the index is saved in {settings.index_dir} but was not published to "
            f"Redis ({exc}); workers keep the index they have. Run the command again to "
            "publish it.\n"
        )
        return ExitCode.UNREACHABLE
    if published is None:
        sys.stdout.write("Redis already serves this index to every worker.\n")
    else:
        sys.stdout.write(
            f"Published {published.version} to Redis ({published.size / 1e6:.1f} MB in "
            f"{published.parts} parts): workers switch to it within {settings.index_poll_s:g} s.\n"
        )
    return ExitCode.OK


_NAMED_PER_REASON = 3  # skipped files named in the summary; the rest are counted


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _summary(settings: Settings, report: IngestReport, name: str) -> int:
    """One line of counts that add up (files; passages new and already embedded; repeats left
    out), then the files skipped, by reason, the first few named, and every file that failed."""
    from core.knowledge.retrieval import printable

    skipped = sum(len(s) for s in report.skipped.values())
    reasons = ", ".join(f"{len(s)} {reason}" for reason, s in sorted(report.skipped.items()))
    if report.removed:
        sys.stdout.write(f"Removed {_plural(report.removed, 'file')}; ")
    else:
        sys.stdout.write(f"Indexed {_plural(report.files, 'file')}; ")
    new = report.chunks - report.reused
    repeats = f"; {_plural(report.repeats, 'repeat')} of an indexed text left out"
    sys.stdout.write(
        f"skipped {skipped}{f' ({reasons})' if reasons else ''}; failed {len(report.failed)}. "
        f"The index holds {_plural(report.chunks, 'passage')} ({new:,} new, "
        f"{report.reused:,} already embedded"
        f"{repeats if report.repeats else ''})"
        f"{f' with {name}' if name else ''} in {settings.index_dir}"
        f"{'' if report.written else ', unchanged: nothing written'}.\n"
    )
    for reason, sources in sorted(report.skipped.items()):
        named = ", ".join(printable(s) for s in sources[:_NAMED_PER_REASON])
        more = len(sources) - _NAMED_PER_REASON
        sys.stdout.write(
            f"  skipped ({reason}): {named}{f' and {more} more' if more > 0 else ''}\n"
        )
    for source, error in report.failed.items():
        sys.stdout.write(f"  failed: {printable(source)}: {printable(str(error))}\n")
    return ExitCode.OK


def search_command(settings: Settings, args: argparse.Namespace) -> int:
    """Print the passages the bot would use for each question, in input order."""
    from core.knowledge.embeddings import build_embeddings
    from core.knowledge.retrieval import Retriever

    embeddings, name = build_embeddings(settings)
    retriever = Retriever(
        settings.index_dir, embeddings, name, k=args.k or settings.retrieval_k,
        min_score=settings.retrieval_min_score, mode=settings.retrieval_mode,
    )  # fmt: skip
    if settings.redis_url is not None:
        from core.knowledge.index_follower import follow_once

        asyncio.run(follow_once(settings, retriever))
    if retriever.refresh() is None:
        sys.stderr.write(f"threadbot: no usable index in {settings.index_dir}\n")
        return ExitCode.MISCONFIGURED
    typed = not args.questions and sys.stdin.isatty()
    if typed:  # else it would wait without a word
        sys.stderr.write("Type a question a line; Ctrl-D ends. (Or: threadbot search QUESTION)\n")
    lines = iter(args.questions) if args.questions else (line.rstrip("\n") for line in sys.stdin)
    # Typed questions are answered one by one, as they come; piped ones in batches.
    while batch := list(itertools.islice(lines, 1 if typed else _SEARCH_BATCH)):
        for question, passages in zip(batch, retriever.search_many(batch), strict=True):
            sys.stdout.write(_format(question, passages, as_json=args.json))
        sys.stdout.flush()
    return ExitCode.OK


def _format(question: str, passages: list[Passage], *, as_json: bool) -> str:
    if as_json:
        found = [
            {"source": p.chunk.source, "location": p.chunk.location, "text": p.chunk.text,
             "score": round(p.score, 4)}
            for p in passages
        ]  # fmt: skip
        return json.dumps({"question": question, "passages": found}, ensure_ascii=False) + "\n"
    out = [f"? {question}"]
    for p in passages:
        out.append(f"  [{p.score:.3f}] {p.chunk.citation}")
        out += [f"      {line}" for line in p.chunk.text.splitlines()]
    return "\n".join([*out, ""]) + "\n"


def index_list_command(settings: Settings) -> int:
    from core.errors import IndexMismatch
    from core.knowledge.retrieval import Index, printable

    try:
        index = Index.load(settings.index_dir)
    except IndexMismatch as exc:
        sys.stderr.write(f"threadbot: {exc}; run `threadbot ingest` again\n")
        return ExitCode.MISCONFIGURED
    if index is None:
        sys.stdout.write(f"No index in {settings.index_dir} yet: run `threadbot ingest`.\n")
        return ExitCode.OK
    sys.stdout.write(
        f"{len(index.files)} files, {len(index.chunks)} passages, {index.embeddings_name}, "
        f"built {index.created}, in {settings.index_dir}\n"
    )
    for entry in index.files:
        sys.stdout.write(
            f"{entry.passages:6d}  {printable(entry.source)}  ({printable(str(entry.path))})\n"
        )
    return ExitCode.OK
