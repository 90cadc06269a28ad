"""The MCP server's tools through the SDK's own client, in process, on a real pipeline (Redis,
the local embeddings, the local OpenAI): what is listed, what a call returns, what is refused,
and the audience rule of `[mcp]`."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from bots.mcp.server import build_mcp_server
from bots.mcp.tools import MAX_K
from core import Pipeline
from tests.bots.mcp.conftest import MCP_MAPS_HR, SECRET, policy
from tests.conftest import MakeSettings
from tests.fakes.fake_openai import FakeOpenAI

pytestmark = pytest.mark.timeout(60)

Connect = Callable[..., AbstractAsyncContextManager[tuple[Client, Pipeline]]]


@pytest.fixture
def connect(make_settings: MakeSettings) -> Connect:
    """A client connected to the MCP server of a pipeline built from `make_settings(**values)`."""

    @asynccontextmanager
    async def connected(**values: Any) -> AsyncIterator[tuple[Client, Pipeline]]:
        settings = make_settings(**values)
        async with (
            await Pipeline.create(settings) as pipeline,
            Client(build_mcp_server(settings, pipeline)) as client,
        ):
            yield client, pipeline

    return connected


def knowledge_bases(tool: Any) -> list[str] | None:
    """The bases a tool's `knowledge_base` parameter offers (None: no such parameter)."""
    offered = tool.input_schema["properties"].get("knowledge_base")
    return None if offered is None else offered["enum"]


async def test_search_gives_passages_with_citation_score_base_and_text(
    bases: Path, connect: Connect
) -> None:
    async with connect() as (client, _):
        result = await client.call_tool("search", {"question": "How do I forget a conversation?"})
        assert not result.is_error
        passages = result.structured_content["passages"]
        best = passages[0]
        assert best["citation"] == "handbook.md › Conversations › Forgetting a conversation"
        assert best["base"] == "default" and "Type /reset" in best["text"]
        assert best["score"] > 0 and [p["score"] for p in passages] == sorted(
            (p["score"] for p in passages), reverse=True
        )
        assert result.structured_content["bases"] == ["default"]
        # The same as text, for a client that reads no structured content.
        assert '"citation": "handbook.md › Conversations › Forgetting' in result.content[0].text
        one = await client.call_tool("search", {"question": "reviews", "k": 1})
        assert len(one.structured_content["passages"]) == 1


async def test_without_a_configuration_file_the_default_base_is_the_only_one(
    bases: Path, connect: Connect
) -> None:
    async with connect() as (client, _):
        (search, _ask) = (await client.list_tools()).tools
        assert knowledge_bases(search) == ["default"]
        refused = await client.call_tool("search", {"question": "salary", "knowledge_base": "hr"})
        assert refused.is_error
        assert refused.content[0].text == (
            "The knowledge base 'hr' is not available here (available: default)."
        )


async def test_a_private_base_is_neither_listed_nor_searched_unless_mcp_maps_it(
    bases: Path, connect: Connect
) -> None:
    question = {"question": "when is the salary review?"}
    async with connect(threadbot_config=str(policy(bases, mcp=False))) as (client, _):
        (search, _ask) = (await client.list_tools()).tools
        assert knowledge_bases(search) == ["default"]  # the defaults map hr: not for a place
        found = await client.call_tool("search", question)
        assert SECRET not in str(found.structured_content)
        refused = await client.call_tool("search", {**question, "knowledge_base": "hr"})
        assert refused.is_error and "'hr' is not available here" in refused.content[0].text

    async with connect(threadbot_config=str(policy(bases, mcp=True))) as (client, _):
        (search, _ask) = (await client.list_tools()).tools
        assert knowledge_bases(search) == ["default", "hr"]
        found = await client.call_tool("search", {**question, "knowledge_base": "hr"})
        (passage,) = found.structured_content["passages"]
        assert passage["base"] == "hr" and SECRET in passage["text"]
        assert found.structured_content["bases"] == ["hr"]


async def test_an_edit_of_the_file_changes_the_next_tools_list(
    bases: Path, connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("core.policy.config.RELOAD_CHECK_S", 0.0)
    path = policy(bases, mcp=False)
    async with connect(threadbot_config=str(path)) as (client, _):
        assert knowledge_bases((await client.list_tools()).tools[0]) == ["default"]
        await asyncio.to_thread(path.write_text, MCP_MAPS_HR)
        os.utime(path, (1, 1))  # a new modification time, whatever the clock's resolution
        assert knowledge_bases((await client.list_tools()).tools[0]) == ["default", "hr"]


async def test_ask_answers_from_the_mcp_table_in_a_session_of_its_own(
    bases: Path, connect: Connect, fake_openai: FakeOpenAI
) -> None:
    config = str(policy(bases, mcp=True))
    async with connect(threadbot_config=config, chat_model="main-model") as (client, pipeline):
        assert [t.name for t in (await client.list_tools()).tools] == ["search", "ask"]
        fake_openai.script("The salary review is in March.")
        result = await client.call_tool("ask", {"question": "When is the salary review?"})
        assert not result.is_error
        assert result.structured_content["answer"] == "The salary review is in March."
        assert result.structured_content["covered"] is True
        sources = result.structured_content["sources"]
        assert ("salaries.md › Salary review", "hr") in [
            (s["citation"], s["base"]) for s in sources
        ]
        assert all(isinstance(s["score"], float) for s in sources)
        system = fake_openai.requests[0]["messages"][0]["content"]
        assert SECRET in system  # `[mcp]` maps hr: its passage reached the model
        assert "Answer for the MCP clients." in system  # and `[mcp]`'s instructions
        assert fake_openai.requests[0]["model"] == "mcp-model"  # and its model

        await client.call_tool("ask", {"question": "And the reviews?"})
        second = fake_openai.requests[1]["messages"]
        # Nothing of the first call: the system message, then this question alone.
        assert [m["role"] for m in second] == ["system", "user"]
        assert second[1]["content"] == "And the reviews?"
        asked = [c for c in await pipeline.conversations() if c.session_id.startswith("mcp:{")]
        assert len(asked) == 2  # one conversation per call
        # Asked by the client's name (the SDK's client calls itself "mcp"): forgotten by it.
        forgotten = await pipeline.forget_user("mcp:mcp")
        assert sorted(forgotten) == sorted(c.session_id for c in asked)


async def test_ask_is_offered_only_with_a_chat_model(bases: Path, connect: Connect) -> None:
    async with connect(openai_base_url=None, openai_api_key=None) as (client, _):
        assert [t.name for t in (await client.list_tools()).tools] == ["search"]
        with pytest.raises(MCPError, match="no tool 'ask' here"):
            await client.call_tool("ask", {"question": "When is the salary review?"})


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"question": "reviews", "k": 0}, f"k must be a whole number from 1 to {MAX_K}"),
        ({"question": "reviews", "k": MAX_K + 1}, "k must be a whole number"),
        ({"question": "reviews", "k": "3"}, "k must be a whole number"),
        ({"question": "   "}, "question must be a text with a question in it"),
        ({}, "question must be a text"),
        ({"question": "reviews", "kb": "hr"}, "unknown argument kb (this tool takes question, k"),
        ({"question": "reviews", "knowledge_base": 3}, "knowledge_base must be the name"),
        ({"question": "x" * 4001}, "question is 4,001 characters; the limit is 4,000"),
    ],
)
async def test_a_call_that_cannot_be_taken_says_why(
    connect: Connect, arguments: dict[str, Any], error: str
) -> None:
    async with connect() as (client, _):
        result = await client.call_tool("search", arguments)
        assert result.is_error and error in result.content[0].text
