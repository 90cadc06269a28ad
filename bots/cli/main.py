"""The `threadbot` command: ingest and search documents, or run the bot in a chat."""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bots.lifecycle import ExitCode

if TYPE_CHECKING:  # the core is imported once a command runs: `--version` and `--help` are quick
    from bots.mcp.http import Address
    from core import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="threadbot", description=__doc__)
    parser.add_argument(
        "-v", "--verbose", action="store_true",
        help="log at LOG_LEVEL (info by default); without it chat, ingest, search and index "
        "show warnings only, doctor, conversations and report only what they report",
    )  # fmt: skip
    parser.add_argument(
        "--version",
        action="version",
        version=f"threadbot {importlib.metadata.version('threadbot')}",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    ingest = commands.add_parser("ingest", help="index documents (md, txt, rst, html, pdf)")
    ingest.add_argument(
        "paths", nargs="+", type=_path_or_url, help="files, folders, or websites (https://…)"
    )
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
    index = commands.add_parser("index", help="inspect the document index")
    for command in (ingest, search, index):
        command.add_argument(
            "--kb", metavar="NAME", help="a named knowledge base (default: KNOWLEDGE_BASE, or the "
            "default one)",
        )  # fmt: skip
    search.add_argument("questions", nargs="*", help="questions (default: one per stdin line)")
    search.add_argument("--k", type=int, default=0, help="passages per question (RETRIEVAL_K)")
    search.add_argument("--json", action="store_true", help="JSON Lines, one per question")
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
    report = commands.add_parser(
        "report",
        help="what was asked, what the documents missed, answers marked 👎, files cited",
    )
    report.add_argument(
        "--since", type=_period_s, default="7d", metavar="PERIOD",
        help="how far back: 24h, 7d, 30d, 2w... (default 7d)",
    )  # fmt: skip
    report.add_argument(
        "--kb", metavar="NAME", help="only the questions that searched this knowledge base"
    )
    report.add_argument(
        "--format", choices=["table", "csv", "json", "html"], default="table",
        help="table (default), csv (one file, a `section` column), json, or html (one page)",
    )  # fmt: skip
    report.add_argument("--output", type=Path, metavar="FILE", help="write here (default stdout)")
    commands.add_parser("slack", help="run the Slack bot")
    commands.add_parser("discord", help="run the Discord bot")
    mcp = commands.add_parser(
        "mcp", help="serve the knowledge base to MCP clients (Claude Code, Cursor): stdio, or HTTP"
    )
    mcp.add_argument(
        "--http", type=_http_address, metavar="[HOST:]PORT",
        help="streamable HTTP at http://HOST:PORT/mcp instead of stdio (HOST: 127.0.0.1); "
        "every request needs MCP_TOKEN as a bearer token",
    )  # fmt: skip
    mcp.add_argument(
        "--public", action="store_true",
        help="allow a HOST that is not loopback (other machines can then reach it)",
    )  # fmt: skip
    return parser


def _http_address(value: str) -> Address:
    """`mcp --http`'s value (imported when given: uvicorn comes with it)."""
    from bots.mcp.http import address

    return address(value)


def _path_or_url(value: str) -> Path | str:
    """A site's URL as given (a Path would fold its `//`), else a path."""
    return value if value.startswith(("http://", "https://")) else Path(value)


def _period_s(value: str) -> float:
    """The type of `report --since`."""
    from core import period_s

    try:
        return period_s(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from core import ConfigInvalid, EmbeddedServerBusy, KnowledgeError

    loaded = _settings(args)
    if isinstance(loaded, int):
        return loaded
    settings, ignored = loaded
    _configure_logging(settings, args)
    # systemd, docker stop and a closed terminal send SIGTERM / SIGHUP: stop as on Ctrl-C, so
    # answers in flight finish and the embedded server shuts down with us.
    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, signal.default_int_handler)
    try:
        return _run(args, settings, ignored)
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except (ConfigInvalid, EmbeddedServerBusy, KnowledgeError) as exc:
        sys.stderr.write(f"threadbot: {exc}\n")
        return ExitCode.MISCONFIGURED
    except OSError as exc:
        if exc.filename is None:  # not a file of ours: a real failure, with its traceback
            raise
        # A data folder that is a symlink loop, read-only, or on a full disk.
        sys.stderr.write(
            f"threadbot: cannot use {exc.filename}: {exc.strerror}. "
            "Check THREADBOT_DATA_DIR (and the paths given).\n"
        )
        return ExitCode.MISCONFIGURED


def _settings(args: argparse.Namespace) -> tuple[Settings, list[str]] | int:
    """The settings for `args.command`, or the exit code after saying what is invalid."""
    from pydantic import ValidationError

    from core.settings import explain
    from core.settings import load as load_settings

    try:
        settings, ignored = load_settings(args.command)
    except ValidationError as exc:
        if args.command == "doctor":
            from bots.cli.doctor import invalid_settings

            return invalid_settings(explain(exc))
        problems = "".join(f"  {line}\n" for line in explain(exc))
        sys.stderr.write(f"threadbot: invalid settings (environment or .env):\n{problems}")
        return ExitCode.MISCONFIGURED
    for line in ignored if args.command != "doctor" else []:  # the doctor reports them
        sys.stderr.write(f"threadbot: ignoring a setting `{args.command}` does not use: {line}\n")
    return settings, ignored


def _configure_logging(settings: Settings, args: argparse.Namespace) -> None:
    from core import configure_logging

    # The console is for reading answers: only warnings unless asked for more.
    quiet = args.command in {"chat", "ingest", "search", "index"} and not args.verbose
    level = logging.WARNING if quiet else settings.log_level.upper()
    if args.command in {"doctor", "conversations", "report"} and not args.verbose:
        # They report every problem themselves: a log line would repeat one out of place.
        level = logging.CRITICAL if args.command == "doctor" else logging.ERROR
    configure_logging(settings, level=level)


def _run(args: argparse.Namespace, settings: Settings, ignored: list[str]) -> int:
    """The command itself; each imports only what it needs."""
    if args.command in {"ingest", "search", "index"}:
        from bots.cli import knowledge

        if args.kb is not None:
            try:
                settings = settings.for_base(args.kb)
            except ValueError as exc:
                sys.stderr.write(f"threadbot: --kb {args.kb!r}: {exc}\n")
                return ExitCode.MISCONFIGURED

        if args.command == "ingest":
            return knowledge.ingest_command(settings, args)
        if args.command == "search":
            return knowledge.search_command(settings, args)
        return knowledge.index_list_command(settings)
    if args.command == "doctor":
        from bots.cli.doctor import main as doctor_main

        return doctor_main(settings, ignored)
    if args.command == "conversations":
        from bots.cli.conversations import main as conversations_main

        session_id, user = getattr(args, "session_id", None), getattr(args, "user", None)
        return conversations_main(settings, args.action, session_id, user)
    if args.command == "report":
        from bots.cli.report import main as report_main

        return report_main(settings, args)
    if args.command == "chat":
        from bots.console import chat

        asyncio.run(chat(settings, session_name=args.session))
        return ExitCode.OK
    if args.command == "mcp":
        from bots.mcp.server import main as mcp_main

        return mcp_main(settings, at=args.http, public=args.public)
    if args.command == "slack":
        from bots.slack.bot import main as slack_main

        return slack_main(settings)
    from bots.discord.bot import main as discord_main

    return discord_main(settings)


if __name__ == "__main__":
    sys.exit(main())
