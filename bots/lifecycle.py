"""How a chat bot refuses to start: one log line naming each missing setting, exit code 2."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

EXIT_MISCONFIGURED = 2


def cannot_start(command: str, missing: list[str]) -> int:
    """Say what `threadbot {command}` still needs, as the user sets it, and give the exit code."""
    log.error(
        "threadbot %s cannot start: %s. Set it in .env (see docs/%s.md).",
        command,
        "; ".join(missing),
        command,
    )
    return EXIT_MISCONFIGURED
