"""The `threadbot` command: ingest documents, or run the bot in the console, Slack or Discord."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from pydantic import ValidationError

from core import Settings
from core.logs import configure_logging
from core.redis_server import EmbeddedServerBusy
from core.settings import explain


def _ingest(settings: Settings, paths: list[Path], if_empty: bool) -> int:
    from core.embeddings import build_embeddings
    from core.ingest import find_files, ingest
    from core.retrieval import Index

    embeddings, name = build_embeddings(settings)
    existing = Index.load(settings.index_dir) if if_empty else None
    if existing is not None:
        same_files = {c.source for c in existing.chunks} == {s for _, s in find_files(paths)}
        # Rebuild only an index of these very files made with another model (the sample docs
        # after a key was added): someone's own documents are never replaced by the samples.
        if existing.embeddings_name == name or not same_files:
            sys.stdout.write(
                f"Index already holds {len(existing.chunks)} passages in {settings.index_dir}; "
                "leaving it as it is.\n"
            )
            if existing.embeddings_name != name:
                sys.stdout.write(
                    f"It was built with {existing.embeddings_name}, but the embeddings now are "
                    f"{name}: run `threadbot ingest YOUR_DOCS` so the bot can search them.\n"
                )
            return 0
    report = ingest(settings, paths, embeddings, name)
    sys.stdout.write(
        f"Indexed {report.files} files as {report.chunks} passages "
        f"({report.embedded} embedded, {report.reused} unchanged) with {name} "
        f"into {settings.index_dir}.\n"
    )
    for source in report.skipped:
        sys.stdout.write(f"Skipped unreadable file: {source}\n")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="threadbot", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at LOG_LEVEL")
    commands = parser.add_subparsers(dest="command", required=True)
    ingest = commands.add_parser("ingest", help="index documents (md, txt, rst, html, pdf)")
    ingest.add_argument("paths", nargs="+", type=Path, help="files or folders")
    ingest.add_argument(
        "--if-empty", action="store_true", help="only when no index exists yet (first start)"
    )
    chat = commands.add_parser("chat", help="chat in the terminal (one question per line)")
    chat.add_argument("--session", default="default", help="conversation name to use")
    commands.add_parser("slack", help="run the Slack bot")
    commands.add_parser("discord", help="run the Discord bot")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        problems = "".join(f"  {line}\n" for line in explain(exc))
        sys.stderr.write(f"threadbot: invalid settings (environment or .env):\n{problems}")
        return 2
    # The console is for reading answers: only warnings unless asked for more.
    quiet = args.command in {"chat", "ingest"} and not args.verbose
    configure_logging(settings, level=logging.WARNING if quiet else settings.log_level.upper())
    # systemd, docker stop and a closed terminal send SIGTERM / SIGHUP: stop as on Ctrl-C, so
    # answers in flight finish and the embedded server shuts down with us.
    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, signal.default_int_handler)
    try:
        if args.command == "ingest":
            return _ingest(settings, args.paths, args.if_empty)
        if args.command == "chat":
            from bots.console import chat

            asyncio.run(chat(settings, session_name=args.session))
            return 0
        if args.command == "slack":
            from bots.slack import main as slack_main

            return slack_main(settings)
        from bots.discord_bot import main as discord_main

        return discord_main(settings)
    except KeyboardInterrupt:
        return 130
    except EmbeddedServerBusy as exc:
        sys.stderr.write(f"threadbot: {exc}\n")
        return 2
    except FileNotFoundError as exc:
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
