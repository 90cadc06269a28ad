"""`threadbot report`: what was asked over a period, what the documents missed, the answers
marked 👎 and the files cited, as a table, CSV, JSON or one HTML page."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from bots.lifecycle import ExitCode
from core import (
    DEFAULT_BASE,
    HistoryUnavailable,
    Pipeline,
    ReportFormat,
    RetrievalFailed,
    Settings,
    gather_report,
    render_report,
)


async def build(
    settings: Settings, *, since_s: float, base: str | None, fmt: ReportFormat
) -> str | int:
    """The report over the last `since_s` seconds, rendered; or the exit code after saying why
    not: 2 when the store does not answer, 4 when the embedding model does not."""
    async with await Pipeline.create(settings, join_running=True) as pipeline:
        try:
            report = await gather_report(
                pipeline.records,
                pipeline.embeddings,
                settings,
                since=time.time() - since_s,
                base=base,
            )
        except HistoryUnavailable as exc:
            sys.stderr.write(f"threadbot: the conversation store does not answer ({exc})\n")
            return ExitCode.MISCONFIGURED
        except RetrievalFailed as exc:
            sys.stderr.write(f"threadbot: cannot group the questions: {exc}\n")
            return ExitCode.UNREACHABLE
    return render_report(report, fmt)


def main(settings: Settings, args: argparse.Namespace) -> int:
    base = None
    if args.kb is not None:
        try:  # the name as records keep it: `default` for the default base
            base = settings.for_base(args.kb).knowledge_base or DEFAULT_BASE
        except ValueError as exc:
            sys.stderr.write(f"threadbot: --kb {args.kb!r}: {exc}\n")
            return ExitCode.MISCONFIGURED
    built = asyncio.run(build(settings, since_s=args.since, base=base, fmt=args.format))
    if isinstance(built, int):
        return built
    output: Path | None = args.output
    if output is None:
        sys.stdout.write(built)
    else:
        output.write_text(built, encoding="utf-8")
        sys.stdout.write(f"Wrote the report ({args.format}) to {output}.\n")
    return ExitCode.OK
