"""A local emulation of the Slack Web API (aiohttp on loopback) that records every call, with
Socket Mode beside it (`fake.socket_mode`, tests/fakes/fake_slack_socket.py).

It speaks the real wire format (form or JSON bodies, `{"ok": ...}` answers, HTTP 429 with
`Retry-After`), keeps the messages it was sent so tests can read a thread as a user would, and can
be told to fail: `fail_next("chat.update", "msg_too_long")`, `rate_limit_next(...)`, or a
per-method rate limit with `limit_rate(...)`.

Beyond the bot's own messages it emulates:
- people in threads: `post_human(...)` stores a message a person wrote (`user`, no `bot_id`);
- `conversations.replies` paged as Slack pages it (`limit`, `cursor`, `has_more`,
  `next_cursor`), `thread_not_found` for a thread it never saw;
- `assistant.threads.setStatus`: `statuses` (shown now), `status_history`, cleared by "" or by
  the bot's next message in the thread, `refuse_status` to fail every call;
- streams Slack ends: `stream_limit_s` and `end_stream(...)` (then appending answers
  `message_not_in_streaming_state`); `chat.update` on a live stream answers `cant_update_message`;
  `task_update` chunks are kept in `Message.tasks`;
- files: `add_file(...)` serves bytes at `url_private(_download)` to a bot token only (else a
  302 to an HTML login page, as Slack does), `downloads` records each attempt, `redirect_file`;
- `OtherHost`: a second loopback server that records the Authorization header it was sent;
- `usergroups.users.list` from `usergroups` (`no_such_subteam` for an unknown group).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from base64 import b64decode, b64encode
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

from aiohttp import web

from tests.fakes.fake_slack_socket import SocketMode

TEAM_ID = "T0TEAM"
BOT_USER_ID = "U0BOT"
BOT_ID = "B0BOT"
# Slack refuses `chat.update` text near 4,000 characters with msg_too_long.
MAX_TEXT_LEN = 4000
# The one method an app-level token (xapp-) may call; other methods refuse it, as Slack does.
APP_TOKEN_METHODS = frozenset({"apps.connections.open"})
HUMAN_USER_ID = "U0ALICE"
# conversations.replies answers at most this many messages a page (also its default `limit`).
MAX_REPLIES_PAGE = 1000
# assistant.threads.setStatus refuses more loading messages than this with invalid_arguments.
MAX_LOADING_MESSAGES = 10
# Tokens that may download a file from url_private: a bot's, or a user's.
FILE_TOKEN_PREFIXES = ("xoxb-", "xoxp-")


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
    """A message as the fake keeps it (what a user would see in the channel).

    `bot` tells the bot's own messages (wire: `bot_id`) from a person's (`post_human`);
    `tasks` is what a native stream shows per task id (its latest `task_update` chunk).
    """

    channel: str
    ts: str
    text: str
    thread_ts: str | None = None
    user: str = BOT_USER_ID
    blocks: list[Any] | None = None
    streaming: bool = False
    edits: int = 0
    bot: bool = True
    files: list[dict[str, Any]] | None = None
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    started_at: float | None = None  # time.monotonic() at chat.startStream


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
        self.statuses: dict[tuple[str, str], str] = {}  # (channel, thread_ts): status shown now
        self.status_history: list[tuple[str, str, str, list[str] | None]] = []
        self.refuse_status: str | None = None  # an error code for assistant.threads.setStatus
        self.stream_limit_s: float | None = None  # Slack ends a stream older than this
        self.usergroups: dict[str, list[str]] = {}  # "S…" id: its members' user ids
        self.files: dict[str, dict[str, Any]] = {}  # file id: the file object add_file made
        self.downloads: list[tuple[str, str | None]] = []  # (path, Authorization) per attempt
        self._file_bytes: dict[str, bytes] = {}
        self._file_redirects: dict[str, str] = {}
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
        app.router.add_get("/files-pri/{ref}/{name}", self._download)
        app.router.add_get("/files-pri/{ref}/download/{name}", self._download)
        app.router.add_get("/", _login_page)  # where Slack sends a download without a token
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

    @property
    def _web_base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

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

    # -- what people and Slack do ------------------------------------------------------------

    def post_human(
        self,
        channel: str,
        text: str,
        *,
        thread_ts: str | None = None,
        user: str = HUMAN_USER_ID,
        files: list[dict[str, Any]] | None = None,
        ts: str | None = None,
    ) -> str:
        """A person writes in the channel (or in `thread_ts`), so that `conversations.replies`
        shows the thread as Slack would. Returns its ts (`ts` picks one, e.g. an event's).
        Sends no event: the test delivers that itself."""
        msg = Message(channel, ts or self._next_ts(), text, thread_ts, user, bot=False, files=files)
        self.messages[(channel, msg.ts)] = msg
        return msg.ts

    def end_stream(self, channel: str, ts: str) -> None:
        """Slack ends a stream at once (as it does one left open too long): the message keeps
        the text it had and appending to or stopping it fails."""
        self.messages[(channel, ts)].streaming = False

    def add_file(
        self, name: str, content: bytes, *, mimetype: str = "text/plain", filetype: str = "text"
    ) -> dict[str, Any]:
        """A file uploaded to the workspace, as Slack describes it in a message's `files`: its
        `url_private(_download)` are served by this fake (call after `start()`)."""
        file_id = f"F0{len(self.files) + 1:08d}"
        path = f"{self._web_base}/files-pri/{TEAM_ID}-{file_id}"
        self.files[file_id] = {
            "id": file_id,
            "created": int(time.time()),
            "name": name,
            "title": name,
            "mimetype": mimetype,
            "filetype": filetype,
            "size": len(content),
            "mode": "hosted",
            "is_external": False,
            "url_private": f"{path}/{quote(name)}",
            "url_private_download": f"{path}/download/{quote(name)}",
            "permalink": f"{self._web_base}/files/{HUMAN_USER_ID}/{file_id}/{quote(name)}",
        }
        self._file_bytes[file_id] = content
        return self.files[file_id]

    def redirect_file(self, file_id: str, to_url: str) -> None:
        """Downloads of that file (with a good token) answer 302 to `to_url`, as when Slack
        hands the bytes to another host: the client must not carry the token there."""
        self._file_redirects[file_id] = to_url

    # -- reading what happened ---------------------------------------------------------------

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for call in self.calls:
            out[call.method] = out.get(call.method, 0) + 1
        return out

    def thread(self, channel: str, thread_ts: str | None, *, humans: bool = False) -> list[Message]:
        """Bot messages in a thread (or at the top of a channel when `thread_ts` is None), oldest
        first; `humans=True` adds people's. Streams past `stream_limit_s` show as ended."""
        found = [
            m
            for m in self.messages.values()
            if m.channel == channel and m.thread_ts == thread_ts and (humans or m.bot)
        ]
        for m in found:
            self._streaming(m)
        return sorted(found, key=_ts_key)

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
        self._clear_status(msg)
        return {"ok": True, "channel": msg.channel, "ts": msg.ts, "message": _wire(msg)}

    def _clear_status(self, msg: Message) -> None:
        """Slack clears a thread's assistant status when the app replies in that thread."""
        if msg.thread_ts:
            self.statuses.pop((msg.channel, msg.thread_ts), None)

    def _streaming(self, msg: Message) -> bool:
        """Is `msg` still a stream? Past `stream_limit_s` Slack has ended it: it keeps its text."""
        limit, started = self.stream_limit_s, msg.started_at
        if msg.streaming and limit is not None and started is not None:
            msg.streaming = time.monotonic() - started <= limit
        return msg.streaming

    def _chat_update(self, body: dict[str, Any]) -> dict[str, Any]:
        msg = self.messages.get((body["channel"], body["ts"]))
        if msg is None:
            return {"ok": False, "error": "message_not_found"}
        if self._streaming(msg):  # Slack edits a streamed message only once it has stopped
            return {"ok": False, "error": "cant_update_message"}
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
            text="",
            thread_ts=body["thread_ts"],
            streaming=True,
            started_at=time.monotonic(),
        )
        _apply_chunks(msg, body)
        self.messages[(msg.channel, msg.ts)] = msg
        self._clear_status(msg)
        return {"ok": True, "channel": msg.channel, "ts": msg.ts}

    def _chat_appendStream(self, body: dict[str, Any]) -> dict[str, Any]:
        msg = self.messages.get((body["channel"], body["ts"]))
        if msg is None:
            return {"ok": False, "error": "message_not_found"}
        if not self._streaming(msg):
            return {"ok": False, "error": "message_not_in_streaming_state"}
        _apply_chunks(msg, body)
        return {"ok": True, "channel": msg.channel, "ts": msg.ts}

    def _chat_stopStream(self, body: dict[str, Any]) -> dict[str, Any]:
        result = self._chat_appendStream(body)
        if result["ok"]:
            msg = self.messages[(body["channel"], body["ts"])]
            msg.streaming = False
            msg.blocks = body.get("blocks")
        return result

    def _conversations_replies(self, body: dict[str, Any]) -> dict[str, Any]:
        """The thread as one list, parent first then replies oldest first, cut into pages of
        `limit`; the cursor names the next page's first message. A reply's ts reads its
        thread. A thread whose parent the fake never saw shows its replies alone."""
        channel, ts = body["channel"], body["ts"]
        asked = self.messages.get((channel, ts))
        if asked is not None and asked.thread_ts:
            ts = asked.thread_ts
        parent = self.messages.get((channel, ts))
        replies = sorted(
            (
                m
                for m in self.messages.values()
                if m.channel == channel and m.thread_ts == ts and m.ts != ts
            ),
            key=_ts_key,
        )
        if parent is None and not replies:
            return {"ok": False, "error": "thread_not_found"}
        thread = [_wire(m) for m in [parent, *replies] if m is not None]
        if parent is not None and replies:  # what Slack adds to a parent that has replies
            thread[0] |= {
                "thread_ts": ts,
                "reply_count": len(replies),
                "reply_users": sorted({m.user for m in replies}),
                "latest_reply": replies[-1].ts,
            }
        try:
            limit = int(body.get("limit") or MAX_REPLIES_PAGE)
        except ValueError:
            return {"ok": False, "error": "invalid_arguments"}
        limit = min(max(limit, 1), MAX_REPLIES_PAGE)
        start = 0
        if body.get("cursor"):
            at = _cursor_ts(str(body["cursor"]))
            start = next((i for i, m in enumerate(thread) if m["ts"] == at), -1)
            if start < 0:
                return {"ok": False, "error": "invalid_cursor"}
        end = start + limit
        more = end < len(thread)
        return {
            "ok": True,
            "messages": thread[start:end],
            "has_more": more,
            "response_metadata": {"next_cursor": _cursor(thread[end]["ts"]) if more else ""},
        }

    def _assistant_threads_setStatus(self, body: dict[str, Any]) -> dict[str, Any]:
        """The "is thinking…" line under a thread: "" clears it, as does the bot's next
        message there (`_clear_status`)."""
        if self.refuse_status:
            return {"ok": False, "error": self.refuse_status}
        channel, thread_ts, status = (body.get(k) for k in ("channel_id", "thread_ts", "status"))
        loading = body.get("loading_messages")
        if isinstance(loading, str):  # the array as JSON text (a form body, or sent so)
            try:
                loading = json.loads(loading)
            except json.JSONDecodeError:
                return {"ok": False, "error": "invalid_arguments"}
        bad_loading = loading is not None and (
            not isinstance(loading, list) or len(loading) > MAX_LOADING_MESSAGES
        )
        if not channel or not thread_ts or status is None or bad_loading:
            return {"ok": False, "error": "invalid_arguments"}
        key = (str(channel), str(thread_ts))
        if status:
            self.statuses[key] = str(status)
        else:
            self.statuses.pop(key, None)
        self.status_history.append((*key, str(status), loading))
        return {"ok": True}

    def _usergroups_users_list(self, body: dict[str, Any]) -> dict[str, Any]:
        users = self.usergroups.get(str(body.get("usergroup", "")))
        if users is None:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": list(users)}

    async def _download(self, request: web.Request) -> web.Response:
        """url_private(_download): the bytes for a bot (or user) token; for anyone else a 302 to
        the workspace's HTML sign-in page, as Slack answers, never the file."""
        auth = request.headers.get("Authorization")
        self.downloads.append((request.raw_path, auth))
        async with self._changed:
            self._changed.notify_all()
        token = auth.removeprefix("Bearer ") if auth and auth.startswith("Bearer ") else ""
        if not token.startswith(FILE_TOKEN_PREFIXES) or token in self.rejected_tokens:
            login = f"{self._web_base}/?redir={quote(request.raw_path, safe='')}"
            return web.Response(status=302, headers={"Location": login})
        file_id = request.match_info["ref"].removeprefix(f"{TEAM_ID}-")
        if file_id not in self.files:
            return web.Response(
                status=404, text="<html>File not found</html>", content_type="text/html"
            )
        if file_id in self._file_redirects:
            return web.Response(status=302, headers={"Location": self._file_redirects[file_id]})
        file = self.files[file_id]
        headers = {"Content-Type": file["mimetype"]}
        if "/download/" in request.path:
            headers["Content-Disposition"] = f'attachment; filename="{file["name"]}"'
        return web.Response(body=self._file_bytes[file_id], headers=headers)

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


# Form fields slack_sdk sends as JSON text; the fake reads them as the JSON they stand for.
_JSON_FORM_FIELDS = ("blocks", "chunks", "attachments", "metadata", "loading_messages")


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
        if key in _JSON_FORM_FIELDS and text[:1] in "[{":
            body[key] = json.loads(text)
        else:
            body[key] = text
    return body


def _apply_chunks(msg: Message, body: dict[str, Any]) -> None:
    """`markdown_text` (the argument or chunks) adds to the text; a `task_update` chunk replaces
    what the stream shows for its task id (Slack draws one row per task)."""
    msg.text += str(body.get("markdown_text") or "")
    chunks = body.get("chunks") or []
    if isinstance(chunks, str):
        chunks = json.loads(chunks)
    for chunk in chunks:
        if not isinstance(chunk, dict):
            continue
        if chunk.get("type") == "markdown_text":
            msg.text += str(chunk.get("text", ""))
        elif chunk.get("type") == "task_update" and chunk.get("id"):
            msg.tasks[str(chunk["id"])] = chunk


def _ts_key(msg: Message) -> Decimal:
    try:
        return Decimal(msg.ts)  # exact: a float would blur the microseconds
    except InvalidOperation:
        return Decimal(0)


def _cursor(ts: str) -> str:
    """Slack's cursors are opaque base64; this one names the next page's first message."""
    return b64encode(f"next_ts:{ts}".encode()).decode()


def _cursor_ts(cursor: str) -> str | None:
    try:
        return b64decode(cursor, validate=True).decode().removeprefix("next_ts:")
    except ValueError:
        return None


async def _login_page(request: web.Request) -> web.Response:
    return web.Response(
        text="<!DOCTYPE html><html><head><title>Sign in | Slack</title></head>"
        "<body>Sign in to threadbot-test</body></html>",
        content_type="text/html",
    )


def _wire(msg: Message) -> dict[str, Any]:
    """A message as Slack returns it: a person's carries `user` and `team`, the bot's `bot_id`."""
    wire: dict[str, Any] = {"type": "message", "ts": msg.ts, "text": msg.text, "user": msg.user}
    wire |= {"bot_id": BOT_ID} if msg.bot else {"team": TEAM_ID}
    if msg.thread_ts:
        wire["thread_ts"] = msg.thread_ts
    if msg.blocks:
        wire["blocks"] = msg.blocks
    if msg.files:
        wire["files"] = msg.files
    return wire


class OtherHost:
    """Another web host (say a CDN a file redirects to): 200 with `body` for any GET, and each
    request's path and Authorization header in `requests`, so a test can prove no Slack token
    was sent there."""

    def __init__(self, body: bytes = b"bytes from another host") -> None:
        self.body = body
        self.requests: list[tuple[str, str | None]] = []  # (path as sent, Authorization)
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> OtherHost:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.raw_path, request.headers.get("Authorization")))
        return web.Response(body=self.body, content_type="application/octet-stream")
