"""Console adapter: the terminal as a chat, and the cheapest end-to-end run of the whole bot.

In a terminal: line editing and history (prompt_toolkit), answers rendered as Markdown (rich),
Ctrl-C stops the answer in progress and, at the prompt, leaves. Piped: one question a line,
plain text, so a transcript reads as a chat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TextIO

from core import (
    MARKER,
    Pipeline,
    Settings,
    TextFormatter,
    ThreadbotError,
    Turn,
    TurnRunner,
    sessions,
)

if TYPE_CHECKING:
    from rich.console import Console
    from rich.live import Live
    from rich.markdown import Markdown

PROMPT = "you> "
ANSWER_PREFIX = "bot> "
HELP = (
    "Commands: /reset forgets this conversation, /help shows this, /quit leaves "
    "(or Ctrl-D). Ctrl-C stops an answer; at the prompt it leaves. A pasted block of "
    "several lines is one question."
)
EMPTY_HINT = "(Type a question about the documents, or /help.)"
STOPPED = "(stopped: this answer was not saved)"
COMMANDS = ("/reset", "/help", "/quit", "/exit")


class ConsoleSink:
    """Plain text: a terminal cannot edit what it printed, so each edit prints what was added."""

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
        if self._printed is not None:  # end the answer's line
            self._out.write("\n")
            self._printed = None
        self._out.flush()

    async def post(self, text: str) -> int:
        self._out.write(ANSWER_PREFIX)
        self._printed = ""
        self._write(text)
        return 0

    async def edit(self, handle: int, text: str) -> None:
        self._write(text)

    def _write(self, text: str) -> None:
        text = text.removesuffix(MARKER)
        printed = self._printed or ""
        if text.startswith(printed):
            self._out.write(text[len(printed) :])
        else:  # the text changed behind what was printed: show it again whole
            self._out.write("\n" + text)
        self._out.flush()
        self._printed = text


class RichSink:
    """A terminal that renders: the answer is shown as Markdown, redrawn as it grows."""

    max_len = 1_000_000
    placeholder = preparing = fallback = None

    def __init__(self, console: Console) -> None:
        self._console = console
        self._live: Live | None = None

    async def notify(self, text: str) -> None:
        self._console.print(text, markup=False, highlight=False)

    def begin(self) -> None:
        pass

    def end(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    async def post(self, text: str) -> int:
        from rich.live import Live

        self._live = Live(self._render(text), console=self._console, auto_refresh=False)
        self._live.start()
        return 0

    async def edit(self, handle: int, text: str) -> None:
        if self._live is not None:
            self._live.update(self._render(text), refresh=True)

    @staticmethod
    def _render(text: str) -> Markdown:
        from rich.markdown import Markdown

        return Markdown(text.removesuffix(MARKER) or "…")


def command_reply(line: str) -> str | None:
    """What a `/word` line means; None when it is a question for the bot."""
    word = line.split()[0].lower() if line.startswith("/") else ""
    if not word or word in COMMANDS:
        return None
    return f"Unknown command {word}. {HELP}"


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


async def _stoppable(runner: TurnRunner, turn: Turn, sink: ConsoleSink | RichSink) -> bool:
    """Run a turn; Ctrl-C stops it (and nothing more). False when it was stopped."""
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(runner.run(turn, sink))
    loop.add_signal_handler(signal.SIGINT, task.cancel)
    try:
        await task
        return True
    except asyncio.CancelledError:
        if not task.cancelled():
            raise  # the chat itself is being stopped
        return False
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        sink.end()


@contextlib.contextmanager
def _logs_above_the_prompt(console: Console) -> Iterator[None]:
    """Log lines printed by rich above a live answer, never into the middle of it."""
    from rich.logging import RichHandler

    root = logging.getLogger()
    replaced = [h for h in root.handlers if isinstance(h, logging.StreamHandler)]
    handler = RichHandler(console=console, show_path=False, markup=False)
    if replaced:
        handler.setLevel(replaced[0].level)
        formatter = replaced[0].formatter
        if isinstance(formatter, TextFormatter):  # rich shows the time and level itself
            formatter = formatter.without_time_and_level()
        handler.setFormatter(formatter)
        for keep in replaced[0].filters:  # what configure_logging keeps out of the log
            handler.addFilter(keep)
    for old in replaced:
        root.removeHandler(old)
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        for old in replaced:
            root.addHandler(old)


async def chat(
    settings: Settings,
    *,
    session_name: str = "default",
    stdin: TextIO = sys.stdin,
    stdout: TextIO = sys.stdout,
    stderr: TextIO = sys.stderr,
) -> None:
    """Answer one question per input (a line, or a pasted block) until end of input or /quit."""
    session_id = sessions.console_session(session_name)
    interactive = stdin.isatty() and stdout.isatty()
    async with (
        await Pipeline.create(settings) as pipeline,
        TurnRunner(pipeline, interval_s=0.05 if interactive else 0, grace_s=0) as runner,
    ):
        try:
            earlier = len(await pipeline.messages(session_id))
            going_on = (
                f"conversation '{session_name}' continues ({earlier} earlier messages; "
                "/reset forgets them)"
                if earlier
                else f"new conversation '{session_name}'"
            )
        except ThreadbotError as exc:
            going_on = f"conversation '{session_name}' (not readable now: {exc.user_message})"
        mode = "generated answers" if settings.generates_answers else "retrieval-only answers"
        stderr.write(f"threadbot: {pipeline.documents} passages indexed, {mode}, {going_on}.\n")
        stderr.write(f"{HELP}\n")
        if interactive:
            await _interactive(runner, session_id, session_name, settings, stdout)
        else:
            await _piped(runner, session_id, session_name, stdin, stdout)


async def _piped(
    runner: TurnRunner, session_id: str, name: str, stdin: TextIO, stdout: TextIO
) -> None:
    lines = _read_lines(stdin, asyncio.get_running_loop())
    while line := await lines.get():
        question = line.strip()
        stdout.write(f"{PROMPT}{question}\n")  # the transcript reads as a chat
        sink = ConsoleSink(stdout)
        if not await _one(
            runner, session_id, name, question, sink, lambda t: stdout.write(t + "\n")
        ):
            break
        stdout.flush()


async def _interactive(
    runner: TurnRunner, session_id: str, name: str, settings: Settings, stdout: TextIO
) -> None:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory
    from rich.console import Console

    console = Console(file=stdout)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    prompt: PromptSession[str] = PromptSession(
        history=FileHistory(str(settings.data_dir / "console-history"))
    )
    with _logs_above_the_prompt(console):
        while True:
            try:
                question = (await prompt.prompt_async(PROMPT)).strip()
            except (KeyboardInterrupt, EOFError):  # Ctrl-C or Ctrl-D at the prompt: leave
                break
            say = lambda text: console.print(text, markup=False, highlight=False)  # noqa: E731
            if not await _one(runner, session_id, name, question, RichSink(console), say):
                break


async def _one(
    runner: TurnRunner,
    session_id: str,
    name: str,
    question: str,
    sink: ConsoleSink | RichSink,
    say: Callable[[str], object],
) -> bool:
    """Handle one input; False when the user asked to leave."""
    word = question.split()[0].lower() if question else ""
    if word in ("/quit", "/exit"):
        return False
    reply = HELP if word == "/help" else command_reply(question) if question else EMPTY_HINT
    if reply is not None:
        say(reply)
        return True
    if word == "/reset":
        turn = Turn("console", session_id, user=name, action="reset")
    else:
        turn = Turn("console", session_id, question, user=name)
    if not await _stoppable(runner, turn, sink):
        say(STOPPED)
    return True
