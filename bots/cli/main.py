"""The `threadbot` command: ingest and search documents, or run the bot in a chat."""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import itertools
import json
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the core is imported once a command runs: `--version` and `--help` are quick
    from core import Settings
    from core.knowledge.ingest import IngestReport
    from core.knowledge.retrieval import Passage, Retriever
    from core.knowledge.shared_index import Manifest

_SEARCH_BATCH = 256  # questions embedded together by `threadbot search`


def _ingest(settings: Settings, args: argparse.Namespace) -> int:
    """Index locally; with a REDIS_URL, publish the result, where every worker picks it up."""
    code = _index_locally(settings, args)
    if code != 0 or settings.redis_url is None:
        return code
    return _publish(settings)


def _index_locally(settings: Settings, args: argparse.Namespace) -> int:
    from core.knowledge.embeddings import build_embeddings
    from core.knowledge.ingest import IngestRefused, ingest, remove
    from core.knowledge.retrieval import Index, IndexMismatch
    from core.knowledge.sources import find_files

    paths: list[Path] = args.paths
    try:
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
                return 0
        report = ingest(settings, paths, embeddings, name, add=args.add, force=args.force)
    except IngestRefused as exc:
        sys.stderr.write(f"threadbot: {exc}\n")
        return 2
    return _summary(settings, report, name)


def _publish(settings: Settings) -> int:
    from redis.exceptions import RedisError

    from core.knowledge.shared_index import SharedIndexError, publish_live
    from core.store.redis_client import connect

    async def publish() -> Manifest | None:
        redis = connect(settings)
        try:
            return await publish_live(redis, settings)
        finally:
            await redis.aclose()

    try:
        published = asyncio.run(publish())
    except (RedisError, SharedIndexError) as exc:
        sys.stderr.write(
            f"threadbot: the index is saved in {settings.index_dir} but was not published to "
            f"Redis ({exc}); workers keep the index they have. Run the command again to "
            "publish it.\n"
        )
        return 4
    if published is None:
        sys.stdout.write("Redis already serves this index to every worker.\n")
    else:
        sys.stdout.write(
            f"Published {published.version} to Redis ({published.size / 1e6:.1f} MB in "
            f"{published.parts} parts): workers switch to it within {settings.index_poll_s:g} s.\n"
        )
    return 0


_NAMED_PER_REASON = 3  # skipped files named in the summary; the rest are counted


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _summary(settings: Settings, report: IngestReport, name: str) -> int:
    """One line of counts that add up (files; passages new and already embedded), then the files
    skipped, by reason, the first few named, and every file that failed."""
    from core.knowledge.retrieval import printable

    skipped = sum(len(s) for s in report.skipped.values())
    reasons = ", ".join(f"{len(s)} {reason}" for reason, s in sorted(report.skipped.items()))
    if report.removed:
        sys.stdout.write(f"Removed {_plural(report.removed, 'file')}; ")
    else:
        sys.stdout.write(f"Indexed {_plural(report.files, 'file')}; ")
    new = report.chunks - report.reused
    repeats = new - report.embedded
    sys.stdout.write(
        f"skipped {skipped}{f' ({reasons})' if reasons else ''}; failed {len(report.failed)}. "
        f"The index holds {_plural(report.chunks, 'passage')} ({new:,} new, "
        f"{report.reused:,} already embedded"
        f"{f'; {repeats:,} of the new repeat a text embedded once' if repeats > 0 else ''})"
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
    return 0


def _search(settings: Settings, args: argparse.Namespace) -> int:
    """Print the passages the bot would use for each question, in input order."""
    from core.knowledge.embeddings import build_embeddings
    from core.knowledge.retrieval import Retriever

    embeddings, name = build_embeddings(settings)
    retriever = Retriever(
        settings.index_dir, embeddings, name, k=args.k or settings.retrieval_k,
        min_score=settings.retrieval_min_score, mode=settings.retrieval_mode,
    )  # fmt: skip
    if settings.redis_url is not None:
        asyncio.run(_follow_once(settings, retriever))
    if retriever.refresh() is None:
        sys.stderr.write(f"threadbot: no usable index in {settings.index_dir}\n")
        return 2
    typed = not args.questions and sys.stdin.isatty()
    if typed:  # else it would wait without a word
        sys.stderr.write("Type a question a line; Ctrl-D ends. (Or: threadbot search QUESTION)\n")
    lines = iter(args.questions) if args.questions else (line.rstrip("\n") for line in sys.stdin)
    # Typed questions are answered one by one, as they come; piped ones in batches.
    while batch := list(itertools.islice(lines, 1 if typed else _SEARCH_BATCH)):
        for question, passages in zip(batch, retriever.search_many(batch), strict=True):
            sys.stdout.write(_format(question, passages, as_json=args.json))
        sys.stdout.flush()
    return 0


async def _follow_once(settings: Settings, retriever: Retriever) -> None:
    """Search what the bots serve: the index published in Redis, fetched if it is not here."""
    from core.knowledge.index_follower import IndexFollower
    from core.store.redis_client import connect

    redis = connect(settings)
    try:
        await IndexFollower(redis, settings, retriever).sync()
    finally:
        await redis.aclose()


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


def _index_list(settings: Settings) -> int:
    from core.knowledge.retrieval import Index, IndexMismatch, printable

    try:
        index = Index.load(settings.index_dir)
    except IndexMismatch as exc:
        sys.stderr.write(f"threadbot: {exc}; run `threadbot ingest` again\n")
        return 2
    if index is None:
        sys.stdout.write(f"No index in {settings.index_dir} yet: run `threadbot ingest`.\n")
        return 0
    sys.stdout.write(
        f"{len(index.files)} files, {len(index.chunks)} passages, {index.embeddings_name}, "
        f"built {index.created}, in {settings.index_dir}\n"
    )
    for entry in index.files:
        sys.stdout.write(
            f"{entry.passages:6d}  {printable(entry.source)}  ({printable(str(entry.path))})\n"
        )
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="threadbot", description=__doc__)
    parser.add_argument(
        "-v", "--verbose", action="store_true",
        help="log at LOG_LEVEL (info by default); without it chat, ingest, search and index "
        "show warnings only, doctor and conversations only what they report",
    )  # fmt: skip
    parser.add_argument(
        "--version",
        action="version",
        version=f"threadbot {importlib.metadata.version('threadbot')}",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    ingest = commands.add_parser("ingest", help="index documents (md, txt, rst, html, pdf)")
    ingest.add_argument("paths", nargs="+", type=Path, help="files or folders")
    how = ingest.add_mutually_exclusive_group()
    how.add_argument(
        "--if-empty", action="store_true", help="only when no index exists yet (first start)"
    )
    how.add_argument("--add", action="store_true", help="add (or refresh) these paths only")
    how.add_argument("--remove", action="store_true", help="take these paths out of the index")
    ingest.add_argument(
        "--force", action="store_true", help="replace the index even with far fewer passages"
    )
    search = commands.add_parser(
        "search", help="print the passages found for each question (arguments or stdin lines)"
    )
    search.add_argument("questions", nargs="*", help="questions (default: one per stdin line)")
    search.add_argument("--k", type=int, default=0, help="passages per question (RETRIEVAL_K)")
    search.add_argument("--json", action="store_true", help="JSON Lines, one per question")
    index = commands.add_parser("index", help="inspect the document index")
    index.add_argument("action", choices=["list"], help="list: files, passages, model, when")
    chat = commands.add_parser(
        "chat", help="chat in the terminal (a line, or a pasted block of lines, is one question)"
    )
    chat.add_argument("--session", default="default", help="conversation name to use")
    commands.add_parser(
        "doctor", help="check Redis, the index, the model and the Slack and Discord tokens"
    )
    conversations = commands.add_parser(
        "conversations", help="list, show, export or forget stored conversations"
    )
    actions = conversations.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="session ids, messages and time to expiry")
    for action, what in (("show", "print a conversation"), ("export", "print it as JSON")):
        actions.add_parser(action, help=what).add_argument("session_id", metavar="ID")
    forget = actions.add_parser("forget", help="forget a conversation, or all of a user's")
    whom = forget.add_mutually_exclusive_group(required=True)
    whom.add_argument("session_id", metavar="ID", nargs="?", help="a session id, as listed")
    whom.add_argument("--user", help="every conversation USER (e.g. slack:U0123) took part in")
    commands.add_parser("slack", help="run the Slack bot")
    commands.add_parser("discord", help="run the Discord bot")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from pydantic import ValidationError

    from core.ops.logs import configure_logging
    from core.settings import explain
    from core.settings import load as load_settings
    from core.store.redis_server import EmbeddedServerBusy

    try:
        settings, ignored = load_settings(args.command)
    except ValidationError as exc:
        if args.command == "doctor":
            from bots.cli.doctor import invalid_settings

            return invalid_settings(explain(exc))
        problems = "".join(f"  {line}\n" for line in explain(exc))
        sys.stderr.write(f"threadbot: invalid settings (environment or .env):\n{problems}")
        return 2
    for line in ignored if args.command != "doctor" else []:  # the doctor reports them
        sys.stderr.write(f"threadbot: ignoring a setting `{args.command}` does not use: {line}\n")
    # The console is for reading answers: only warnings unless asked for more.
    quiet = args.command in {"chat", "ingest", "search", "index"} and not args.verbose
    level = logging.WARNING if quiet else settings.log_level.upper()
    if args.command in {"doctor", "conversations"} and not args.verbose:
        # They report every problem themselves: a log line would repeat one out of place.
        level = logging.CRITICAL if args.command == "doctor" else logging.ERROR
    configure_logging(settings, level=level)
    # systemd, docker stop and a closed terminal send SIGTERM / SIGHUP: stop as on Ctrl-C, so
    # answers in flight finish and the embedded server shuts down with us.
    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, signal.default_int_handler)
    try:
        if args.command == "ingest":
            return _ingest(settings, args)
        if args.command == "search":
            return _search(settings, args)
        if args.command == "index":
            return _index_list(settings)
        if args.command == "doctor":
            from bots.cli.doctor import main as doctor_main

            return doctor_main(settings, ignored)
        if args.command == "conversations":
            from bots.cli.conversations import main as conversations_main

            return conversations_main(
                settings,
                args.action,
                getattr(args, "session_id", None),
                getattr(args, "user", None),
            )
        if args.command == "chat":
            from bots.console import chat

            asyncio.run(chat(settings, session_name=args.session))
            return 0
        if args.command == "slack":
            from bots.slack.bot import main as slack_main

            return slack_main(settings)
        from bots.discord.bot import main as discord_main

        return discord_main(settings)
    except KeyboardInterrupt:
        return 130
    except (EmbeddedServerBusy, FileNotFoundError) as exc:
        sys.stderr.write(f"threadbot: {exc}\n")
        return 2
    except OSError as exc:
        if exc.filename is None:  # not a file of ours: a real failure, with its traceback
            raise
        # A data folder that is a symlink loop, read-only, or on a full disk.
        sys.stderr.write(
            f"threadbot: cannot use {exc.filename}: {exc.strerror}. "
            "Check THREADBOT_DATA_DIR (and the paths given).\n"
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
