"""MCP adapter: `threadbot mcp` serves the team's knowledge base to Claude Code, Cursor or any MCP
client, over stdio (the client starts it) or streamable HTTP (loopback and a bearer token)."""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
from typing import TYPE_CHECKING, Any

import mcp_types as types
from mcp.server import Server

from bots.lifecycle import ExitCode, cannot_start, until_stopped
from bots.mcp.tools import Tools, client_name
from core import Pipeline, Settings

if TYPE_CHECKING:
    from mcp.server.context import ServerRequestContext

    from bots.mcp.http import Address

log = logging.getLogger(__name__)

NAME = "threadbot"
INSTRUCTIONS = (
    "The team's own documents. `search` gives the passages closest to a question, each with "
    "its citation; `ask`, when offered, a written answer with its sources. Each call stands "
    "alone: nothing of an earlier call is remembered."
)


def build_mcp_server(settings: Settings, pipeline: Pipeline) -> Server[Any]:
    """The MCP server, its tools listed and called by `Tools` at each request (the file's
    `[mcp]` table is read again when it changes, as for every place)."""
    tools = Tools(settings, pipeline)

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=await tools.listed())

    async def call_tool(
        ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        client = ctx.session.client_params
        name = client_name(client.client_info if client is not None else None)
        return await tools.call(params.name, params.arguments or {}, name)

    return Server(
        NAME,
        version=importlib.metadata.version("threadbot"),
        title="threadbot: the team's documents",
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


async def serve_stdio(settings: Settings) -> int:
    """Answer the client on stdin and stdout until it closes them (stdout is the protocol's
    alone: every log line goes to stderr)."""
    from mcp.server.stdio import stdio_server

    async with await Pipeline.create(settings) as pipeline:
        server = build_mcp_server(settings, pipeline)
        log.info("MCP server on stdio: %d passages indexed", pipeline.documents)
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())
    return ExitCode.OK


async def serve_http(settings: Settings, where: Address) -> int:
    """Serve streamable HTTP at `where` until stopped; every request needs the bearer token."""
    from bots.mcp import http

    assert settings.mcp_token is not None  # `main` refused to start without it
    try:
        listening = http.bind(where)
    except OSError as exc:
        log.error("threadbot mcp cannot listen on %s:%d: %s", where.host, where.port, exc.strerror)
        return ExitCode.MISCONFIGURED
    with listening:  # closed on the way out, served or not
        async with await Pipeline.create(settings) as pipeline:
            server = build_mcp_server(settings, pipeline)
            # The SDK checks Host and Origin against loopback names when it listens there (a
            # web page in the user's browser cannot reach it by DNS rebinding).
            app = server.streamable_http_app(streamable_http_path=http.PATH, host=where.host)
            guarded = http.BearerToken(app, settings.mcp_token.get_secret_value())
            log.info(
                "MCP server on %s (bearer token required): %d passages indexed",
                http.bound(listening).url,
                pipeline.documents,
            )
            await http.serve(guarded, listening, grace_s=settings.shutdown_grace_s)
    return ExitCode.OK


def main(settings: Settings, *, at: Address | None = None, public: bool = False) -> int:
    """`threadbot mcp` on stdio, or on streamable HTTP `at` an address: 0 when stopped (the
    client closed stdin, or SIGTERM), 2 when it may not start as asked."""
    if at is None:
        return asyncio.run(until_stopped(serve_stdio(settings)))
    from bots.mcp import http

    token = settings.mcp_token.get_secret_value() if settings.mcp_token is not None else None
    problem = http.token_problem(token)
    if problem is not None:
        return cannot_start("mcp", [problem])
    problem = http.address_problem(at, public=public)
    if problem is not None:
        log.error("threadbot mcp cannot start: %s.", problem)
        return ExitCode.MISCONFIGURED
    return asyncio.run(until_stopped(serve_http(settings, at)))
