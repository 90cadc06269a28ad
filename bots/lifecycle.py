"""What every command shares: its exit codes, how a chat bot refuses to start (a log line naming
each missing setting), and how it stops (SIGTERM or Ctrl-C: answers in flight finish)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Coroutine
from enum import IntEnum
from typing import Any

log = logging.getLogger(__name__)


class ExitCode(IntEnum):
    """How every `threadbot` command ends; docs/operating.md lists them for operators."""

    OK = 0
    FAILED = 1  # the doctor found a failure, or the conversation asked for does not exist
    # a setting is missing or invalid, a token was rejected, or what the command needs is not
    # usable as given (no documents, no index, the conversation store not answering)
    MISCONFIGURED = 2
    INTENT_REFUSED = 3  # Discord refused the Message Content intent
    UNREACHABLE = 4  # the platform or Redis could not be reached (network, URL)
    INTERRUPTED = 130  # Ctrl-C, as a shell reports a SIGINT


def cannot_start(command: str, missing: list[str]) -> int:
    """Say what `threadbot {command}` still needs, as the user sets it, and give the exit code."""
    log.error(
        "threadbot %s cannot start: %s. Set it in .env (see docs/%s.md).",
        command,
        "; ".join(missing),
        command,
    )
    return ExitCode.MISCONFIGURED


async def until_stopped(bot: Coroutine[Any, Any, int]) -> int:
    """Run a bot's `serve` until SIGTERM or SIGINT, then stop it gracefully: the signal cancels
    `serve` alone (never the answers in flight), whose own cleanup stops taking work, lets
    answers finish within SHUTDOWN_GRACE_S, and closes; then 0. A second signal cuts the wait.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(bot)
    stop = (signal.SIGTERM, signal.SIGINT)
    for number in stop:
        loop.add_signal_handler(number, task.cancel)
    try:
        return await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # cancelled from outside, not by a signal
        log.info("stopped")
        return ExitCode.OK
    finally:
        for number in stop:
            loop.remove_signal_handler(number)
