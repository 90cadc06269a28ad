"""`threadbot mcp` as an MCP client runs it: the real command in a subprocess, driven by the
`mcp` SDK's own client over stdio and over streamable HTTP, on the test's Redis, index and
local OpenAI; over HTTP, what a request without the right bearer token gets (401, nothing
else), and when the command refuses to start."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from tests.bots.mcp.conftest import SECRET, policy
from tests.cli_runner import command, env_for, start, store_env, threadbot, workdir
from tests.conftest import MakeSettings
from tests.fakes.fake_openai import FakeOpenAI

pytestmark = pytest.mark.timeout(90)

TOKEN = "test-mcp-token-0123456789abcdef"
LISTENING = re.compile(r"MCP server on (http://\S+/mcp)")


@pytest.fixture
def env(
    bases: Path, tmp_path: Path, make_settings: MakeSettings, fake_openai: FakeOpenAI
) -> dict[str, str]:
    """The command's environment: the test's data dir, Redis keys and local OpenAI, and
    threadbot.toml whose `[mcp]` table maps the private `hr` base."""
    home = tmp_path / "home"
    home.mkdir()
    values = store_env(home, make_settings, fake_openai)
    return {**values, "THREADBOT_CONFIG": str(policy(bases, mcp=True))}


def stdio(env: dict[str, str]) -> StdioServerParameters:
    """How a client starts `threadbot mcp` (an MCP client's config names the same command)."""
    program, *args = command("mcp")
    return StdioServerParameters(command=program, args=args, env=env, cwd=workdir(env))


async def test_over_stdio_a_client_lists_searches_and_asks(
    env: dict[str, str], fake_openai: FakeOpenAI
) -> None:
    fake_openai.script("In March.")
    async with Client(stdio(env), mode="legacy") as client:  # the handshake most clients speak
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert list(tools) == ["search", "ask"]
        offered = tools["search"].input_schema["properties"]["knowledge_base"]["enum"]
        assert offered == ["default", "hr"]
        found = await client.call_tool("search", {"question": "How do I forget a conversation?"})
        best = found.structured_content["passages"][0]
        assert best["citation"] == "handbook.md › Conversations › Forgetting a conversation"
        assert best["base"] == "default" and "Type /reset" in best["text"]
        hr = await client.call_tool("search", {"question": "salary", "knowledge_base": "hr"})
        assert SECRET in hr.structured_content["passages"][0]["text"]
        answered = await client.call_tool("ask", {"question": "When is the salary review?"})
        assert answered.structured_content["answer"] == "In March."
        assert "salaries.md › Salary review" in str(answered.structured_content["sources"])
    assert fake_openai.requests[0]["messages"][-1]["content"] == "When is the salary review?"


async def test_over_stdio_without_a_chat_model_only_search_is_offered(
    env: dict[str, str],
) -> None:
    plain = {k: v for k, v in env.items() if not k.startswith("OPENAI_")}
    async with Client(stdio(plain)) as client:
        assert [t.name for t in (await client.list_tools()).tools] == ["search"]
        found = await client.call_tool("search", {"question": "performance reviews", "k": 1})
        (passage,) = found.structured_content["passages"]
        assert passage["citation"] == "handbook.md › Conversations › Reviews"


class HttpServer:
    """`threadbot mcp --http 0` in a subprocess: its URL (from its log line), its log read as
    it comes (a full pipe would stall it), and its stop."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.log: list[str] = []
        self.url = ""
        self._reading: asyncio.Task[None] | None = None

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls, env: dict[str, str], *args: str) -> AsyncIterator[HttpServer]:
        process = await start(
            command("mcp", "--http", "0", *args), env=env, stderr=asyncio.subprocess.PIPE
        )
        server = cls(process)
        try:
            await asyncio.wait_for(server._until_listening(), timeout=60)
            server._reading = asyncio.create_task(server._read())
            yield server
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()

    async def _line(self) -> str:
        assert self.process.stderr is not None
        line = (await self.process.stderr.readline()).decode()
        self.log.append(line)
        return line

    async def _until_listening(self) -> None:
        while not (found := LISTENING.search(line := await self._line())):
            assert line, f"the server ended: {''.join(self.log)}"
        self.url = found[1]

    async def _read(self) -> None:
        while await self._line():
            pass

    async def stop(self) -> int:
        """SIGTERM, as systemd or docker stop send it; the exit code."""
        self.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.process.wait(), timeout=30)
        if self._reading is not None:
            await self._reading
        return code


def authorized(token: str = TOKEN) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_over_http_the_token_opens_the_tools_and_nothing_else_does(
    env: dict[str, str], fake_openai: FakeOpenAI, mode: str
) -> None:
    logged = {**env, "MCP_TOKEN": TOKEN, "LOG_LEVEL": "DEBUG"}
    async with HttpServer.running(logged) as server:
        assert server.url.startswith("http://127.0.0.1:")  # loopback unless told otherwise
        initialize = {
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "curl", "version": "1"}},
        }  # fmt: skip
        listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
        headers = {"Accept": "application/json, text/event-stream"}
        async with aiohttp.ClientSession() as http:
            for sent in (
                {},
                {"Authorization": "Bearer wrong-token-0123456789abcdef"},
                {"Authorization": f"Bearer {TOKEN}x"},
                {"Authorization": f"Basic {TOKEN}"},
                {"Authorization": TOKEN},
            ):
                for body in (initialize, listing):
                    async with http.post(server.url, json=body, headers={**headers, **sent}) as r:
                        assert r.status == 401, sent
                        assert await r.json() == {"error": "unauthorized"}
                        assert "mcp-session-id" not in r.headers
                        assert r.headers["www-authenticate"].startswith("Bearer")
            async with http.get(server.url.removesuffix("/mcp") + "/anything") as r:
                assert r.status == 401  # every path, not the endpoint alone
            # With the token, a request a web page made by DNS rebinding is still refused.
            token = {**headers, "Authorization": f"Bearer {TOKEN}"}
            for odd, status in ({"Host": "evil.example"}, 421), ({"Origin": "http://x.y"}, 403):
                async with http.post(server.url, json=initialize, headers={**token, **odd}) as r:
                    assert r.status == status

        fake_openai.script("In March.")
        async with (
            authorized() as with_token,
            Client(streamable_http_client(server.url, http_client=with_token), mode=mode) as mcp,
        ):
            assert [t.name for t in (await mcp.list_tools()).tools] == ["search", "ask"]
            found = await mcp.call_tool("search", {"question": "How do I forget a conversation?"})
            citations = [p["citation"] for p in found.structured_content["passages"]]
            assert citations[0] == "handbook.md › Conversations › Forgetting a conversation"
            answered = await mcp.call_tool("ask", {"question": "When is the salary review?"})
            assert answered.structured_content["answer"] == "In March."
        assert await server.stop() == 0
    log = "".join(server.log)
    assert 'POST /mcp HTTP/1.1" 401' in log  # the refusals are logged,
    assert TOKEN not in log  # the token never (LOG_LEVEL=DEBUG logs every request)


async def test_over_http_the_sdk_client_with_a_wrong_token_gets_nothing(
    env: dict[str, str],
) -> None:
    async with HttpServer.running({**env, "MCP_TOKEN": TOKEN}) as server:
        async with authorized("not-the-token-at-all-0123456789") as wrong:
            with pytest.raises(Exception):  # noqa: B017 (the SDK's error for an HTTP 401)
                async with Client(streamable_http_client(server.url, http_client=wrong)) as mcp:
                    await mcp.list_tools()
        assert await server.stop() == 0
    answered = [line for line in server.log if "uvicorn.access" in line]
    assert answered and all('HTTP/1.1" 401' in line for line in answered)


async def test_http_without_a_token_refuses_to_start_in_one_line(tmp_path: Path) -> None:
    env = env_for(tmp_path, THREADBOT_DATA_DIR=str(tmp_path / "data"))
    out, err, code = await threadbot("mcp", "--http", "8765", env=env)
    assert code == 2 and out == ""
    (line,) = err.splitlines()
    assert "threadbot mcp cannot start: MCP_TOKEN is not set" in line
    _, err, code = await threadbot("mcp", "--http", "8765", env={**env, "MCP_TOKEN": "short"})
    assert code == 2 and "MCP_TOKEN is shorter than 16 characters" in err


async def test_a_host_that_is_not_loopback_needs_public(tmp_path: Path) -> None:
    env = env_for(tmp_path, THREADBOT_DATA_DIR=str(tmp_path / "data"), MCP_TOKEN=TOKEN)
    _, err, code = await threadbot("mcp", "--http", "0.0.0.0:8765", env=env)
    assert code == 2
    (line,) = err.splitlines()
    assert "--http 0.0.0.0:8765 is not a loopback address" in line and "add --public" in line


async def test_public_listens_on_every_interface(env: dict[str, str]) -> None:
    public = {**env, "MCP_TOKEN": TOKEN}
    process = await start(
        command("mcp", "--http", "0.0.0.0:0", "--public"), env=public,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    server = HttpServer(process)
    try:
        await asyncio.wait_for(server._until_listening(), timeout=60)
        assert server.url.startswith("http://0.0.0.0:")
        port = server.url.rsplit(":", 1)[1].removesuffix("/mcp")
        async with aiohttp.ClientSession() as http:
            async with http.post(f"http://127.0.0.1:{port}/mcp", json={}) as r:
                assert r.status == 401
        server._reading = asyncio.create_task(server._read())
        assert await server.stop() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def transcript(messages: list[dict[str, Any]]) -> str:
    return "\n".join(json.dumps(m, ensure_ascii=False) for m in messages)


async def test_the_protocol_on_stdout_is_json_rpc_alone(env: dict[str, str]) -> None:
    """What a client reads on stdout is its answers, one JSON message a line: every log line
    (the embedded server's, the model's) goes to stderr."""
    lines = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize",
         "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                    "clientInfo": {"name": "by-hand", "version": "1"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
         "params": {"name": "search", "arguments": {"question": "reviews", "k": 1}}},
    ]  # fmt: skip
    process = await start(
        [sys.executable, *command("mcp")[1:]], env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write((transcript(lines) + "\n").encode())
    await process.stdin.drain()
    replies = []
    while len(replies) < 2:
        replies.append(json.loads(await asyncio.wait_for(process.stdout.readline(), 60)))
    process.stdin.close()
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0 and out == b""  # the client closed stdin: the server ends
    assert replies[0]["result"]["serverInfo"]["name"] == "threadbot"
    passage = replies[1]["result"]["structuredContent"]["passages"][0]
    assert passage["citation"] == "handbook.md › Conversations › Reviews"
    assert b"MCP server on stdio" in err
