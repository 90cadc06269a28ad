"""How a chat bot refuses to start (a log line naming each missing setting, exit code 2), and
how it stops (SIGTERM or Ctrl-C: answers in flight finish, exit code 0)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)

EXIT_MISCONFIGURED = 2  # a setting is missing or a token was rejected
EXIT_UNREACHABLE = 4  # the platform could not be reached (network, URL)


def cannot_start(command: str, missing: list[str]) -> int:
    """Say what `threadbot {command}` still needs, as the user sets it, and give the exit code."""
    log.error(
        "threadbot %s cannot start: %s. Set it in .env (see docs/%s.md).",
        command,
        "; ".join(missing),
        command,
    )
    return EXIT_MISCONFIGURED


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
        return 0
    finally:
        for number in stop:
            loop.remove_signal_handler(number)
