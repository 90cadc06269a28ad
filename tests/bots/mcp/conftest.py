"""The MCP server's tests share two knowledge bases on disk: the team's handbook (the default
base) and a private `hr` base, and threadbot.toml with or without an `[mcp]` table mapping it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from core import ingest
from core.knowledge.embeddings import LocalEmbeddings
from tests.conftest import MakeSettings
from tests.policy_files import written

SECRET = "The salary review budget is 4.2 million"
HANDBOOK = (
    "# Conversations\n\n## Forgetting a conversation\n\n"
    "Type /reset to forget the conversation; in a Slack thread, write @threadbot reset.\n\n"
    "## Reviews\n\nPerformance reviews happen every spring, with your manager.\n"
)
SALARIES = f"# Salary review\n\n{SECRET}; the salary review is in March.\n"
PRIVATE_HR = """\
[knowledge_bases.hr]
private = true

[defaults]
knowledge_bases = ["default", "hr"]   # hr is private: not through the defaults' mapping
"""
MCP_MAPS_HR = (
    PRIVATE_HR
    + '\n[mcp]\nknowledge_bases = ["default", "hr"]\nprompt = "Answer for the MCP clients."\n'
    + 'chat_model = "mcp-model"\n'
)


@pytest.fixture
async def bases(make_settings: MakeSettings, tmp_path: Path) -> Path:
    """The default base (the handbook) and the private `hr` base, ingested into the test's data
    dir; the folder to write threadbot.toml in."""
    settings = make_settings()
    embeddings = LocalEmbeddings()
    for base, name, text in ((None, "handbook.md", HANDBOOK), ("hr", "salaries.md", SALARIES)):
        folder = tmp_path / f"docs-{base or 'default'}"
        folder.mkdir()
        (folder / name).write_text(text)
        await asyncio.to_thread(
            ingest, settings.for_base(base), [folder], embeddings, embeddings.name, progress=False
        )
    config = tmp_path / "config"
    config.mkdir()
    return config


def policy(folder: Path, *, mcp: bool) -> Path:
    """threadbot.toml with the private `hr` base, which `[mcp]` maps (`mcp`) or not."""
    return written(folder, MCP_MAPS_HR if mcp else PRIVATE_HR)
