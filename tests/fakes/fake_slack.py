"""A local emulation of the Slack Web API (aiohttp on loopback) that records every call, with
Socket Mode beside it (`fake.socket_mode`, tests/fakes/fake_slack_socket.py).

It speaks the real wire format (form or JSON bodies, `{"ok": ...}` answers, HTTP 429 with
`Retry-After`), keeps the messages it was sent so tests can read a thread as a user would, and can
be told to fail: `fail_next("chat.update", "msg_too_long")`, `rate_limit_next(...)`, or a
per-method rate limit with `limit_rate(...)`.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.fake_slack_socket import SocketMode

TEAM_ID = "T0TEAM"
BOT_USER_ID = "U0BOT"
BOT_ID = "B0BOT"
# Slack refuses `chat.update` text near 4,000 characters with msg_too_long.
MAX_TEXT_LEN = 4000
# The one method an app-level token (xapp-) may call; other methods refuse it, as Slack does.
APP_TOKEN_METHODS = frozenset({"apps.connections.open"})


@dataclass
class Call:
    """One Web API call as received: the method, its parsed body, when it arrived, and the token
    it was made with (which process made it, when each has its own)."""

    method: str
    body: dict[str, Any]
    at: float
    token: str = ""
    status: int = 200
    error: str | None = None


@dataclass
class Message:
    """A message as the fake keeps it (what a user would see in the channel)."""

    channel: str
    ts: str
    text: str
    thread_ts: str | None = None
    user: str = BOT_USER_ID
    blocks: list[Any] | None = None
    streaming: bool = False
    edits: int = 0


@dataclass
class _Limit:
    calls: int
    per_s: float
    seen: list[float] = field(default_factory=list)


class FakeSlack:
    """Start with `await fake.start()`; point slack_sdk at `fake.api_url`."""

    def __init__(self, *, max_text_len: int = MAX_TEXT_LEN) -> None:
        self.calls: list[Call] = []
        self.messages: dict[tuple[str, str], Message] = {}
        self.max_text_len = max_text_len
        self.refuse_streaming: str | None = None  # an error code for chat.startStream
        self.rejected_tokens: set[str] = set()  # answered `invalid_auth`, as Slack does
        self._failures: dict[str, list[tuple[str, float | None]]] = {}
        self._limits: dict[str, _Limit] = {}
        self._ts = 1_700_000_000_000_000
        self._changed = asyncio.Condition()
        self.socket_mode = SocketMode(self._changed)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> FakeSlack:
        app = web.Application()
        app.router.add_post("/api/{method}", self._handle)
        app.router.add_get("/api/{method}", self._handle)  # slack_sdk GETs a few read methods
        app.router.add_get("/link/", self.socket_mode.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def close(self) -> None:
        await self.socket_mode.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    @property
    def _ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    # -- programming failures ----------------------------------------------------------------

    def fail_next(self, method: str, error: str, *, times: int = 1) -> None:
        """Answer the next `times` calls of `method` with `{"ok": false, "error": error}`."""
        self._failures.setdefault(method, []).extend([(error, None)] * times)

    def rate_limit_next(self, method: str, *, retry_after_s: float = 1, times: int = 1) -> None:
        """Answer the next `times` calls of `method` with HTTP 429 and `Retry-After`."""
        self._failures.setdefault(method, []).extend([("ratelimited", retry_after_s)] * times)

    def limit_rate(self, method: str, *, calls: int, per_s: float) -> None:
        """Enforce at most `calls` calls of `method` in any `per_s` window (429 beyond)."""
        self._limits[method] = _Limit(calls=calls, per_s=per_s)

    def delete(self, channel: str, ts: str) -> None:
        """A user deletes a message: later `chat.update` calls on it get message_not_found."""
        self.messages.pop((channel, ts), None)

    # -- reading what happened ---------------------------------------------------------------

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for call in self.calls:
            out[call.method] = out.get(call.method, 0) + 1
        return out

    def thread(self, channel: str, thread_ts: str | None) -> list[Message]:
        """Bot messages in a thread (or at the top of a channel when `thread_ts` is None)."""
        found = [m for m in self.messages.values() if m.channel == channel]
        return sorted((m for m in found if m.thread_ts == thread_ts), key=lambda m: m.ts)

    async def wait_for(self, predicate: Callable[[], bool], within_s: float = 10.0) -> None:
        """Wait until `predicate()` holds; re-checked after every call the fake receives."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), within_s)

    # -- the API -----------------------------------------------------------------------------

    def _next_ts(self) -> str:
        self._ts += 100
        return f"{self._ts // 1_000_000}.{self._ts % 1_000_000:06d}"

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        body = await _parse_body(request)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        call = Call(method=method, body=body, at=time.monotonic(), token=token)
        self.calls.append(call)
        try:
            if token in self.rejected_tokens:
                status, payload, headers = 200, {"ok": False, "error": "invalid_auth"}, {}
            else:
                status, payload, headers = self._answer(method, body, call.at, token)
        finally:
            async with self._changed:
                self._changed.notify_all()
        call.status = status
        call.error = None if payload.get("ok") else payload.get("error")
        return web.json_response(payload, status=status, headers=headers)

    def _answer(
        self, method: str, body: dict[str, Any], now: float, token: str
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        limit = self._limits.get(method)
        if limit is not None:
            limit.seen = [t for t in limit.seen if now - t < limit.per_s]
            if len(limit.seen) >= limit.calls:
                wait = limit.per_s - (now - limit.seen[0])
                return _ratelimited(wait)
            limit.seen.append(now)
        queued = self._failures.get(method)
        if queued:
            error, retry_after = queued.pop(0)
            if retry_after is not None:
                return _ratelimited(retry_after)
            return 200, {"ok": False, "error": error}, {}
        if token.startswith("xapp-") != (method in APP_TOKEN_METHODS):
            return 200, {"ok": False, "error": "not_allowed_token_type"}, {}
        if method == "apps.connections.open":  # the URL is the app token's (tests tell apps apart)
            return 200, {"ok": True, "url": self.socket_mode.url(self._ws_base, token)}, {}
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        return 200, handler(body), {}

    def _auth_test(self, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://threadbot-test.slack.com/",
            "team": "Test",
            "user": "threadbot",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _text_error(self, text: str) -> dict[str, Any] | None:
        return {"ok": False, "error": "msg_too_long"} if len(text) > self.max_text_len else None

    def _chat_postMessage(self, body: dict[str, Any]) -> dict[str, Any]:
        text = str(body.get("text") or "")
        if error := self._text_error(text):
            return error
        msg = Message(
            channel=body["channel"],
            ts=self._next_ts(),
            text=text,
            thread_ts=body.get("thread_ts") or None,
            blocks=body.get("blocks"),
        )
        self.messages[(msg.channel, msg.ts)] = msg
        return {"ok": True, "channel": msg.channel, "ts": msg.ts, "message": _wire(msg)}

    def _chat_update(self, body: dict[str, Any]) -> dict[str, Any]:
        msg = self.messages.get((body["channel"], body["ts"]))
        if msg is None:
            return {"ok": False, "error": "message_not_found"}
        text = str(body.get("text") or "")
        if error := self._text_error(text):
            return error
        msg.text, msg.blocks = text, body.get("blocks")
        msg.edits += 1
        return {"ok": True, "channel": msg.channel, "ts": msg.ts, "text": text}

    def _chat_delete(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.messages.pop((body["channel"], body["ts"]), None) is None:
            return {"ok": False, "error": "message_not_found"}
        return {"ok": True, "channel": body["channel"], "ts": body["ts"]}

    def _chat_postEphemeral(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "message_ts": self._next_ts()}

    def _chat_startStream(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.refuse_streaming:
            return {"ok": False, "error": self.refuse_streaming}
        if not body.get("thread_ts"):
            return {"ok": False, "error": "invalid_arguments"}
        msg = Message(
            channel=body["channel"],
            ts=self._next_ts(),
            text=_chunks_text(body),
            thread_ts=body["thread_ts"],
            streaming=True,
        )
        self.messages[(msg.channel, msg.ts)] = msg
        return {"ok": True, "channel": msg.channel, "ts": msg.ts}

    def _chat_appendStream(self, body: dict[str, Any]) -> dict[str, Any]:
        msg = self.messages.get((body["channel"], body["ts"]))
        if msg is None:
            return {"ok": False, "error": "message_not_found"}
        if not msg.streaming:
            return {"ok": False, "error": "message_not_in_streaming_state"}
        msg.text += _chunks_text(body)
        return {"ok": True, "channel": msg.channel, "ts": msg.ts}

    def _chat_stopStream(self, body: dict[str, Any]) -> dict[str, Any]:
        result = self._chat_appendStream(body)
        if result["ok"]:
            msg = self.messages[(body["channel"], body["ts"])]
            msg.streaming = False
            msg.blocks = body.get("blocks")
        return result

    def _conversations_replies(self, body: dict[str, Any]) -> dict[str, Any]:
        channel, ts = body["channel"], body["ts"]
        found = [
            m
            for m in self.messages.values()
            if m.channel == channel and (m.ts == ts or m.thread_ts == ts)
        ]
        found.sort(key=lambda m: m.ts)
        return {"ok": True, "messages": [_wire(m) for m in found], "has_more": False}

    def _reactions_add(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True}


def _ratelimited(retry_after_s: float) -> tuple[int, dict[str, Any], dict[str, str]]:
    # Real Slack sends whole seconds; fractions keep the tests fast (slack_sdk passes it through).
    value = (
        str(int(retry_after_s))
        if retry_after_s == math.floor(retry_after_s)
        else str(round(retry_after_s, 3))
    )
    return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": value}


async def _parse_body(request: web.Request) -> dict[str, Any]:
    if request.method == "GET":
        return dict(request.query)
    if request.content_type == "application/json":
        data = await request.json()
        return dict(data) if isinstance(data, dict) else {}
    form = await request.post()
    body: dict[str, Any] = {}
    for key, value in form.items():
        text = str(value)
        if key in ("blocks", "chunks", "attachments", "metadata") and text[:1] in "[{":
            body[key] = json.loads(text)
        else:
            body[key] = text
    return body


def _chunks_text(body: dict[str, Any]) -> str:
    text = str(body.get("markdown_text") or "")
    chunks = body.get("chunks") or []
    if isinstance(chunks, str):
        chunks = json.loads(chunks)
    for chunk in chunks:
        if isinstance(chunk, dict) and chunk.get("type") == "markdown_text":
            text += str(chunk.get("text", ""))
    return text


def _wire(msg: Message) -> dict[str, Any]:
    wire: dict[str, Any] = {
        "type": "message",
        "ts": msg.ts,
        "text": msg.text,
        "user": msg.user,
        "bot_id": BOT_ID,
    }
    if msg.thread_ts:
        wire["thread_ts"] = msg.thread_ts
    return wire
