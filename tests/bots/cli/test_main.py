"""The `threadbot` command itself: what it says about its own version."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from tests.cli_runner import env_for, threadbot


async def test_version_comes_from_the_installed_package(tmp_path: Path) -> None:
    out, err, code = await threadbot("--version", env=env_for(tmp_path))
    assert (out, err, code) == (f"threadbot {importlib.metadata.version('threadbot')}\n", "", 0)
