"""Console adapter: the terminal as a chat, and the cheapest end-to-end run of the whole bot."""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import TextIO

from core import MARKER, Pipeline, Settings, Turn, TurnRunner, sessions

PROMPT = "you> "
ANSWER_PREFIX = "bot> "
COMMANDS = "Commands: /reset forgets this conversation, /quit leaves (or end of input)."


class ConsoleSink:
    """A terminal cannot edit what it printed, so each edit prints only what was added."""

    max_len = 1_000_000  # a terminal has no message limit; never split
    placeholder = preparing = fallback = None

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._printed: str | None = None  # None until the answer starts

    async def notify(self, text: str) -> None:
        self._out.write(text + "\n")

    def begin(self) -> None:
        pass

    def end(self) -> None:
        pass

    async def post(self, text: str) -> int:
        self._out.write(ANSWER_PREFIX)
        self._printed = ""
        self._write(text)
        return 0

    async def edit(self, handle: int, text: str) -> None:
        self._write(text)

    def close_line(self) -> None:
        """After the turn: end the answer's line, if one was started."""
        if self._printed is not None:
            self._out.write("\n")

    def _write(self, text: str) -> None:
        text = text.removesuffix(MARKER)
        printed = self._printed or ""
        if text.startswith(printed):
            self._out.write(text[len(printed) :])
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


async def chat(
    settings: Settings,
    *,
    session_name: str = "default",
    stdin: TextIO = sys.stdin,
    stdout: TextIO = sys.stdout,
    stderr: TextIO = sys.stderr,
) -> None:
    """Answer one question per input line until end of input or /quit."""
    session_id = sessions.console_session(session_name)
    interactive = stdin.isatty()
    async with (
        await Pipeline.create(settings) as pipeline,
        TurnRunner(pipeline, interval_s=0, grace_s=0) as runner,
    ):
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
            turn = Turn("console", session_id, question, user=session_name)
            if question == "/reset":
                turn = Turn("console", session_id, user=session_name, action="reset")
            sink = ConsoleSink(stdout)
            await runner.run(turn, sink)
            sink.close_line()
            stdout.flush()
