"""threadbot.toml in a test: the file written where a test's settings point, and the wait for
the next look a watcher takes at it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path


def written(folder: Path, text: str) -> Path:
    """`text` as `folder`'s threadbot.toml."""
    path = folder / "threadbot.toml"
    path.write_text(text)
    return path


async def until(condition: Callable[[], bool], within_s: float = 5) -> None:
    """Poll what nothing signals: a watcher's next look at the file."""
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)
