"""The MCP server's tools: `search` (the passages, with their citations) and, with a chat model,
`ask` (a written answer and its sources), both where threadbot.toml's `[mcp]` table says."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import mcp_types as types
from mcp.shared.exceptions import MCPError

from core import (
    Answered,
    NotAllowed,
    Passage,
    Pipeline,
    Settings,
    ThreadbotError,
    Where,
    sessions,
)

log = logging.getLogger(__name__)

WHERE = Where("mcp")  # a place of its own: `[mcp]` maps its bases, prompt and model
MAX_K = 20  # passages one `search` returns at most
APOLOGY = "Something went wrong on threadbot's side; the server's log says what."
_CLIENT_NAME = re.compile(r"[^A-Za-z0-9._-]+")

_QUESTION = {"type": "string", "minLength": 1, "description": "The question, in plain words."}
_SOURCE_FIELDS = {
    "citation": {"type": "string", "description": "file › heading (or page): where it is"},
    "score": {"type": "number", "description": "how close to the question (higher: closer)"},
    "base": {"type": "string", "description": "the knowledge base it was found in"},
}
_SOURCE = {"type": "object", "properties": _SOURCE_FIELDS, "required": list(_SOURCE_FIELDS)}
_PASSAGE = {
    "type": "object",
    "properties": {**_SOURCE_FIELDS, "text": {"type": "string"}},
    "required": [*_SOURCE_FIELDS, "text"],
}
SEARCH_OUTPUT = {
    "type": "object",
    "properties": {
        "passages": {"type": "array", "items": _PASSAGE},
        "bases": {"type": "array", "items": {"type": "string"}, "description": "bases searched"},
    },
    "required": ["passages", "bases"],
}
ASK_OUTPUT = {
    "type": "object",
    "properties": {
        "answer": {"type": "string"},
        "sources": {"type": "array", "items": _SOURCE},
        "covered": {"type": "boolean", "description": "false: no passage matched the question"},
    },
    "required": ["answer", "sources", "covered"],
}
SEARCH_DESCRIPTION = (
    "Search the team's documents: the passages closest to the question, best first, each with "
    "its citation (file › heading), score, knowledge base and text. Quote the citation when "
    "you use a passage."
)
ASK_DESCRIPTION = (
    "A written answer to the question from the team's documents, with the sources it was "
    "given. Every call is a conversation of its own: nothing of an earlier call is remembered, "
    "so ask a question that stands alone."
)


class Refused(Exception):
    """A call this server does not take as it is: the caller is told why (`is_error`)."""


class Tools:
    """What an MCP client sees and calls, decided again at every request: the bases offered
    are the ones the configuration file lets the MCP server expose now."""

    def __init__(self, settings: Settings, pipeline: Pipeline) -> None:
        self._settings = settings
        self._pipeline = pipeline

    @property
    def answers(self) -> bool:
        """`ask` is offered: a chat model is configured (else answers are retrieval only,
        which is what `search` gives)."""
        return self._settings.generates_answers

    async def listed(self) -> list[types.Tool]:
        bases = await self._pipeline.bases_at(WHERE)
        search_input: dict[str, Any] = {
            "type": "object",
            "properties": {
                "question": _QUESTION,
                "k": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_K,
                    "default": self._settings.retrieval_k,
                    "description": f"How many passages at most (1 to {MAX_K}).",
                },
            },
            "required": ["question"],
            "additionalProperties": False,
        }
        if bases:  # an enum needs a value: with none offered, there is nothing to pick
            search_input["properties"]["knowledge_base"] = {
                "type": "string",
                "enum": bases,
                "description": "Search this knowledge base alone (default: all of them).",
            }
        read_only = types.ToolAnnotations(read_only_hint=True, open_world_hint=False)
        tools = [
            types.Tool(
                name="search",
                title="Search the team's documents",
                description=SEARCH_DESCRIPTION,
                input_schema=search_input,
                output_schema=SEARCH_OUTPUT,
                annotations=read_only,
            )
        ]
        if self.answers:
            ask_input = {
                "type": "object",
                "properties": {"question": _QUESTION},
                "required": ["question"],
                "additionalProperties": False,
            }
            tools.append(
                types.Tool(
                    name="ask",
                    title="Ask the team's documents",
                    description=ASK_DESCRIPTION,
                    input_schema=ask_input,
                    output_schema=ASK_OUTPUT,
                    annotations=read_only,
                )
            )
        return tools

    async def call(
        self, name: str, arguments: Mapping[str, Any], client: str
    ) -> types.CallToolResult:
        """One tool call, its one error boundary: a refusal or a threadbot error is the
        result's error text; anything else is logged and answered with a short apology."""
        if name not in ("search", "ask") or (name == "ask" and not self.answers):
            offered = "search, ask" if self.answers else "search"
            raise MCPError(types.INVALID_PARAMS, f"no tool {name!r} here (tools: {offered})")
        try:
            if name == "search":
                found = await self.search(arguments)
            else:
                found = await self.ask(arguments, client)
        except Refused as exc:
            return _error(str(exc))
        except NotAllowed as exc:  # a base the server may not expose: the caller's to fix
            log.info("mcp %s refused: %s", name, exc)
            return _error(exc.user_message)
        except ThreadbotError as exc:
            log.warning("mcp %s failed: %s", name, exc)
            return _error(exc.user_message)
        except Exception:
            log.exception("mcp %s failed", name)
            return _error(APOLOGY)
        text = json.dumps(found, ensure_ascii=False)
        return types.CallToolResult(
            content=[types.TextContent(text=text)], structured_content=found
        )

    async def search(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """The passages, as `threadbot search` finds them where `[mcp]` says."""
        _only(arguments, "question", "k", "knowledge_base")
        question = self._question(arguments)
        k = arguments.get("k", self._settings.retrieval_k)
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
            raise Refused(f"k must be a whole number from 1 to {MAX_K}")
        base = arguments.get("knowledge_base")
        if base is not None and not isinstance(base, str):
            raise Refused("knowledge_base must be the name of a knowledge base")
        passages, bases = await self._pipeline.search(question, WHERE, base=base, k=k)
        found = [{**_source(p), "text": p.chunk.text} for p in passages]
        return {"passages": found, "bases": bases}

    async def ask(self, arguments: Mapping[str, Any], client: str) -> dict[str, Any]:
        """A one-shot answer: the pipeline's whole answer flow (the bases, instructions and
        model of `[mcp]`), in a session of the call's own.

        The history an `ask` has is none. The MCP client (Claude Code, Cursor) keeps the
        conversation and its model writes each question to stand alone; the server cannot tell
        its callers apart (over HTTP they all hold the one token, and a client's name is
        whatever it says), so a history kept by caller would leak one person's questions into
        another's answers. So every call gets a fresh session id, `mcp:{<uuid>}`; the turn is
        saved there like any other (expiring with HISTORY_TTL_SECONDS) and recorded for
        `threadbot report`, asked by `mcp:<client name>`.
        """
        _only(arguments, "question")
        question = self._question(arguments)
        call = uuid.uuid4().hex
        answered = Answered(call[:16])
        stream = self._pipeline.answer(
            sessions.mcp_session(call), question, user=f"mcp:{client}", where=WHERE,
            answered=answered,
        )  # fmt: skip
        async with contextlib.aclosing(stream):  # cancelled (the client went): nothing saved
            async for _ in stream:  # the text as a chat shows it; `answered` holds it bare
                pass
        return {
            "answer": answered.text,
            "sources": [_source(p) for p in _once(answered.passages)],
            "covered": bool(answered.passages),
        }

    def _question(self, arguments: Mapping[str, Any]) -> str:
        question = arguments.get("question")
        if not isinstance(question, str) or not question.strip():
            raise Refused("question must be a text with a question in it")
        limit = self._settings.max_question_chars
        if len(question) > limit:
            raise Refused(f"question is {len(question):,} characters; the limit is {limit:,}")
        return question


def client_name(info: types.Implementation | None) -> str:
    """The name a client gives itself (`claude-code`, `cursor`), safe in an id; said by the
    client, so it names a program, never proves a person."""
    name = _CLIENT_NAME.sub("-", info.name if info is not None else "").strip("-")[:40]
    return name or "client"


def _only(arguments: Mapping[str, Any], *names: str) -> None:
    unknown = sorted(set(arguments) - set(names))
    if unknown:
        raise Refused(f"unknown argument {', '.join(unknown)} (this tool takes {', '.join(names)})")


def _source(passage: Passage) -> dict[str, Any]:
    return {
        "citation": passage.chunk.citation,
        "score": round(passage.score, 4),
        "base": passage.base,
    }


def _once(passages: Sequence[Passage]) -> list[Passage]:
    """Each citation once, at its best score (passages come best first)."""
    seen: dict[str, Passage] = {}
    for passage in passages:
        seen.setdefault(passage.chunk.citation, passage)
    return list(seen.values())


def _error(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=text)], is_error=True)
