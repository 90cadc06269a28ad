"""Console adapter: the terminal as a chat, and the cheapest end-to-end run of the whole bot."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from typing import TextIO

from core import MARKER, Pipeline, Settings, StreamingEditor, ThreadbotError
from core.sessions import console_session

log = logging.getLogger(__name__)

PROMPT = "you> "
ANSWER_PREFIX = "bot> "
COMMANDS = "Commands: /reset forgets this conversation, /quit leaves (or end of input)."


class ConsoleSink:
    """A terminal cannot edit what it printed, so each edit prints only what was added."""

    max_len = 1_000_000  # a terminal has no message limit; never split

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._printed = ""

    async def post(self, text: str) -> int:
        self._write(text)
        return 0

    async def edit(self, handle: int, text: str) -> None:
        self._write(text)

    def _write(self, text: str) -> None:
        text = text.removesuffix(MARKER)
        if text.startswith(self._printed):
            self._out.write(text[len(self._printed) :])
        else:  # the text changed behind what was printed: show it again whole
            self._out.write("\n" + text)
        self._out.flush()
        self._printed = text


def _read_lines(stream: TextIO, loop: asyncio.AbstractEventLoop) -> asyncio.Queue[str]:
    """Lines from `stream`, read in a daemon thread ('' at the end) so Ctrl-C never waits on it.

    A thread rather than `loop.add_reader`: input redirected from a file can't be polled.
    """
    queue: asyncio.Queue[str] = asyncio.Queue()

    def pump() -> None:
        for line in iter(stream.readline, ""):
            loop.call_soon_threadsafe(queue.put_nowait, line)
        loop.call_soon_threadsafe(queue.put_nowait, "")

    threading.Thread(target=pump, name="console-input", daemon=True).start()
    return queue


async def _reset(pipeline: Pipeline, session_id: str) -> str:
    forgot = await pipeline.reset(session_id)
    return "(forgot this conversation)" if forgot else "(nothing to forget yet)"


async def _answer(pipeline: Pipeline, session_id: str, question: str, out: TextIO) -> None:
    out.write(ANSWER_PREFIX)
    editor = StreamingEditor(ConsoleSink(out), interval_s=0)
    await editor.run(pipeline.answer(session_id, question))
    out.write("\n")


async def chat(
    settings: Settings,
    *,
    session_name: str = "default",
    stdin: TextIO = sys.stdin,
    stdout: TextIO = sys.stdout,
    stderr: TextIO = sys.stderr,
) -> None:
    """Answer one question per input line until end of input or /quit."""
    session_id = console_session(session_name)
    interactive = stdin.isatty()
    pipeline = await Pipeline.create(settings)
    try:
        mode = "generated answers" if settings.generates_answers else "retrieval-only answers"
        stderr.write(
            f"threadbot: {pipeline.documents} passages indexed, {mode}, "
            f"conversation '{session_name}'.\n{COMMANDS}\n"
        )
        lines = _read_lines(stdin, asyncio.get_running_loop())
        while True:
            if interactive:
                stdout.write(PROMPT)
                stdout.flush()
            line = await lines.get()
            if not line:
                break
            question = line.strip()
            if question in {"/quit", "/exit"}:
                break
            if not question:
                continue
            if not interactive:  # piped: show the question, so the transcript reads as a chat
                stdout.write(f"{PROMPT}{question}\n")
            try:
                if question == "/reset":
                    stdout.write(await _reset(pipeline, session_id) + "\n")
                else:
                    await _answer(pipeline, session_id, question, stdout)
            except ThreadbotError as exc:
                stdout.write(f"⚠️ {exc.user_message}\n")
            except Exception:  # the one error boundary per question: report, keep going
                log.exception("answering %r failed", question[:80])
                stdout.write("⚠️ Something went wrong on my side. Please try again.\n")
            stdout.flush()
    finally:
        await pipeline.aclose()
