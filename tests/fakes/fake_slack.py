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
- `usergroups.users.list` from `usergroups` (`no_such_subteam` for an unknown group);
- Block Kit: `blocks` on chat.postMessage / chat.update / chat.stopStream (a list, or JSON text as
  a form sends it) checked as Slack checks them (`invalid_blocks` with the faults in
  `response_metadata.messages`, `invalid_blocks_format` for what is no array), stored on the
  message with the `block_id` / `action_id` Slack adds where the app gave none, and shown by
  conversations.replies; `refuse_block_type(...)` makes a type fail as in a workspace or client
  that does not take it; chat.update without `blocks` keeps the message's blocks, as Slack does;
- interactivity: `block_actions(...)` and `view_submission(...)` build the payloads Slack sends,
  with trigger ids that `views.open` takes once within `trigger_ttl_s` (3 s), and
  `interactive_form` / `interactive_envelope` / `send_interactive` deliver them the two ways Slack
  does (an HTTP form field `payload=`, a Socket Mode envelope of type "interactive"); modals opened
  are kept in `views`, posts to a payload's `response_url` in `responses`.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import math
import secrets
import time
from base64 import b64decode, b64encode
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from tests.fakes.fake_slack_socket import APP_ID, Envelope, SocketMode

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
TEAM_DOMAIN = "threadbot-test"
TEAM_ID_NUMBER = 4242424242  # the middle part of the trigger ids this workspace hands out
VERIFICATION_TOKEN = "fake-verification-token"  # the legacy `token` in interaction payloads
# Tokens that may download a file from url_private: a bot's, or a user's.
FILE_TOKEN_PREFIXES = ("xoxb-", "xoxp-")
# How long a trigger_id from an interaction can open a modal (Slack: 3 seconds).
TRIGGER_TTL_S = 3.0


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
class _Trigger:
    """A trigger_id Slack handed out with an interaction: who it is for, when, whether used."""

    user: str
    at: float  # time.monotonic()
    used: bool = False


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
        self.refused_block_types: set[str] = set()  # see refuse_block_type
        self.trigger_ttl_s = TRIGGER_TTL_S
        self.views: list[dict[str, Any]] = []  # each modal views.open opened, as Slack answered it
        self.responses: list[tuple[str, dict[str, Any]]] = []  # (response_url path, body) posted
        self._triggers: dict[str, _Trigger] = {}
        self._view_users: dict[str, str] = {}  # view id: the user it was opened for
        self._numbers = itertools.count(1)
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
        app.router.add_post("/actions/{team}/{number}/{secret}", self._respond)
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

    def refuse_block_type(self, block_type: str) -> None:
        """Answer `invalid_blocks` to any message holding a block (or element) of this type, as a
        workspace or client that does not support it does; `allow_block_type` undoes it."""
        self.refused_block_types.add(block_type)

    def allow_block_type(self, block_type: str) -> None:
        self.refused_block_types.discard(block_type)

    # -- interactivity: what Slack sends when a person clicks or submits ----------------------

    def issue_trigger(self, user: str = HUMAN_USER_ID) -> str:
        """A new trigger_id for `user`, as Slack puts in an interaction payload: views.open takes
        it once, within `trigger_ttl_s`."""
        trigger = f"{next(self._numbers)}.{TEAM_ID_NUMBER}.{secrets.token_hex(16)}"
        self._triggers[trigger] = _Trigger(user=user, at=time.monotonic())
        return trigger

    def block_actions(
        self,
        channel: str,
        message_ts: str,
        user: str,
        action_id: str,
        *,
        feedback: str = "positive",
    ) -> dict[str, Any]:
        """The `block_actions` payload Slack sends when `user` clicks the element `action_id` of
        a stored message: a button, an icon button, or (`feedback` "positive" / "negative") one of
        a feedback_buttons pair. Raises LookupError when the message shows no such element (no
        person could click it)."""
        msg = self.messages.get((channel, message_ts))
        if msg is None:
            raise LookupError(f"no message {message_ts} in {channel}")
        if feedback not in ("positive", "negative"):
            raise ValueError("feedback is 'positive' or 'negative'")
        block, element = _clickable(msg.blocks or [], action_id)
        now = f"{time.time():.6f}"
        action: dict[str, Any] = {
            "type": element["type"],
            "action_id": element["action_id"],
            "block_id": block["block_id"],
        }
        if element["type"] == "feedback_buttons":
            button = element[f"{feedback}_button"]
            action |= {"text": button["text"], "value": button["value"]}
        else:
            action |= {"text": element["text"]}
            if "value" in element:
                action["value"] = element["value"]
            if element.get("style"):
                action["style"] = element["style"]
        action["action_ts"] = now
        container: dict[str, Any] = {
            "type": "message",
            "message_ts": msg.ts,
            "channel_id": channel,
            "is_ephemeral": False,
        }
        if msg.thread_ts and msg.thread_ts != msg.ts:
            container["thread_ts"] = msg.thread_ts
        number = next(self._numbers)
        return {
            "type": "block_actions",
            "user": _user_ref(user),
            "api_app_id": APP_ID,
            "token": VERIFICATION_TOKEN,
            "container": container,
            "trigger_id": self.issue_trigger(user),
            "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": channel, "name": f"channel-{channel.lower()}"},
            "message": _wire(msg),
            "state": {"values": {}},
            "response_url": f"{self._web_base}/actions/{TEAM_ID}/{number}/{secrets.token_hex(12)}",
            "actions": [action],
        }

    def view_submission(
        self, view_id: str, user: str | None = None, values: dict[str, str | None] | None = None
    ) -> dict[str, Any]:
        """The `view_submission` payload Slack sends when the modal `view_id` (one views.open
        opened) is submitted: `values` maps an input's action_id (or its block_id) to what was
        typed; inputs left out are sent empty (null). Raises KeyError for a key no input has, and
        ValueError for what Slack's client would not let through (a required input left empty, a
        value outside its min/max_length)."""
        view = next((v for v in self.views if v["id"] == view_id), None)
        if view is None:
            raise KeyError(f"no modal {view_id} was opened")
        user = user or self._view_users[view_id]
        given = dict(values or {})
        state: dict[str, dict[str, Any]] = {}
        for block in view["blocks"]:
            element = block.get("element") if block.get("type") == "input" else None
            if not isinstance(element, dict) or element.get("type") != "plain_text_input":
                continue
            key = element["action_id"] if element["action_id"] in given else block["block_id"]
            value = given.pop(key, None)
            _check_typed(value, block, element)
            state[block["block_id"]] = {
                element["action_id"]: {"type": "plain_text_input", "value": value or None}
            }
        if given:
            raise KeyError(f"the modal has no input {sorted(given)}")
        submitted = copy.deepcopy(view) | {"state": {"values": state}}
        return {
            "type": "view_submission",
            "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
            "user": _user_ref(user),
            "api_app_id": APP_ID,
            "token": VERIFICATION_TOKEN,
            "trigger_id": self.issue_trigger(user),
            "view": submitted,
            "response_urls": [],
            "enterprise": None,
            "is_enterprise_install": False,
        }

    @staticmethod
    def interactive_form(payload: dict[str, Any]) -> str:
        """The body Slack POSTs to an app's Request URL for an interaction (Content-Type
        application/x-www-form-urlencoded): one form field, `payload`, the JSON."""
        return urlencode({"payload": json.dumps(payload)})

    @staticmethod
    def interactive_envelope(payload: dict[str, Any]) -> dict[str, Any]:
        """The Socket Mode envelope Slack wraps an interaction in (acked like any other)."""
        return {
            "envelope_id": secrets.token_hex(16),
            "type": "interactive",
            "accepts_response_payload": True,
            "payload": payload,
        }

    async def send_interactive(self, payload: dict[str, Any], *, to: int | None = None) -> str:
        """Send an interaction over Socket Mode (connection `to`, else the first open one); the
        ack lands in `socket_mode.envelopes[id].acked_on`. Slack does not redeliver these: a person
        whose click went unacked in 3 s sees an error instead. Returns the envelope id."""
        message = self.interactive_envelope(payload)
        connection = self.socket_mode.connections[to] if to is not None else None
        connection = connection or next(iter(self.socket_mode.open), None)
        if connection is None or connection.closed:
            raise RuntimeError("no Socket Mode connection is open")
        envelope = Envelope(message["envelope_id"], payload, attempts=[connection.number])
        self.socket_mode.envelopes[envelope.envelope_id] = envelope
        connection.sent.append(envelope.envelope_id)
        await connection.ws.send_str(json.dumps(message))
        return envelope.envelope_id

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

    def _blocks(self, body: dict[str, Any]) -> tuple[list[dict[str, Any]] | None, dict[str, Any]]:
        """The message's `blocks` as Slack would store them (None when the call has none), or
        the error Slack answers (a non-empty dict) when they break Block Kit's rules."""
        raw = body.get("blocks")
        if raw is None:
            return None, {}
        if isinstance(raw, str):  # JSON text, as a form (or a caller) sends it
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError:
                return None, {"ok": False, "error": "invalid_blocks_format"}
        if not isinstance(raw, list) or not all(isinstance(b, dict) for b in raw):
            return None, {"ok": False, "error": "invalid_blocks_format"}
        problems = _Problems()
        _check_blocks(raw, "message", problems, self.refused_block_types)
        if problems.messages:
            return None, problems.answer("invalid_blocks")
        markdown = sum(len(b["text"]) for b in raw if b.get("type") == "markdown")
        if markdown > MARKDOWN_TOTAL_MAX:  # the cumulative limit of a payload's markdown blocks
            return None, {"ok": False, "error": "msg_blocks_too_long"}
        return _with_ids(raw), {}

    def _chat_postMessage(self, body: dict[str, Any]) -> dict[str, Any]:
        text = str(body.get("text") or "")
        if error := self._text_error(text):
            return error
        blocks, error = self._blocks(body)
        if error:
            return error
        msg = Message(
            channel=body["channel"],
            ts=self._next_ts(),
            text=text,
            thread_ts=body.get("thread_ts") or None,
            blocks=blocks,
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
        blocks, error = self._blocks(body)
        if error:
            return error
        msg.text = text
        if blocks is not None:  # Slack keeps a message's blocks when the update sends none
            msg.blocks = blocks
        msg.edits += 1
        return {
            "ok": True,
            "channel": msg.channel,
            "ts": msg.ts,
            "text": text,
            "message": _wire(msg),
        }

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
        blocks, error = self._blocks(body)
        if error:
            return error
        result = self._chat_appendStream(body)
        if result["ok"]:
            msg = self.messages[(body["channel"], body["ts"])]
            msg.streaming = False
            if blocks is not None:
                msg.blocks = blocks
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

    def _views_open(self, body: dict[str, Any]) -> dict[str, Any]:
        """Open a modal for the person whose interaction issued `trigger_id`: once, within
        `trigger_ttl_s`. The view is checked as Slack checks it (`invalid_arguments` with the
        faults in `response_metadata.messages`)."""
        trigger_id = str(body.get("trigger_id") or "")
        if not trigger_id:
            return {"ok": False, "error": "invalid_arguments"}
        trigger = self._triggers.get(trigger_id)
        if trigger is None:
            return {"ok": False, "error": "invalid_trigger_id"}
        if trigger.used:
            return {"ok": False, "error": "exchanged_trigger_id"}
        if time.monotonic() - trigger.at > self.trigger_ttl_s:
            return {"ok": False, "error": "expired_trigger_id"}
        view = body.get("view")
        if isinstance(view, str):
            try:
                view = json.loads(view)
            except json.JSONDecodeError:
                return {"ok": False, "error": "invalid_arguments"}
        if not isinstance(view, dict):
            return {"ok": False, "error": "invalid_arguments"}
        problems = _Problems()
        _check_modal(view, problems)
        if problems.messages:
            return problems.answer("invalid_arguments")
        trigger.used = True
        view_id = f"V0{next(self._numbers):09d}"
        opened = {
            "id": view_id,
            "team_id": TEAM_ID,
            "type": "modal",
            "title": view["title"],
            "blocks": _with_ids(view.get("blocks") or []),
            "close": view.get("close"),
            "submit": view.get("submit"),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "external_id": view.get("external_id", ""),
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "previous_view_id": None,
            "root_view_id": view_id,
            "app_id": APP_ID,
            "app_installed_team_id": TEAM_ID,
            "bot_id": BOT_ID,
        }
        self.views.append(opened)
        self._view_users[view_id] = trigger.user
        return {"ok": True, "view": opened}

    async def _respond(self, request: web.Request) -> web.Response:
        """A post to a payload's response_url: recorded in `responses`."""
        body = await _parse_body(request)
        self.responses.append((request.path, body))
        async with self._changed:
            self._changed.notify_all()
        return web.json_response({"ok": True})

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
_JSON_FORM_FIELDS = ("blocks", "chunks", "attachments", "metadata", "loading_messages", "view")


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
        body[key] = text
        if key in _JSON_FORM_FIELDS and text[:1] in "[{":
            try:
                body[key] = json.loads(text)
            except json.JSONDecodeError:
                pass  # left as text: the method answers as Slack does to malformed JSON
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


# -- Block Kit, as Slack checks it ------------------------------------------------------------
# Limits from Slack's reference pages (docs.slack.dev/reference/block-kit/...).

MAX_BLOCKS = 50  # in a message
MAX_VIEW_BLOCKS = 100  # in a modal
SECTION_TEXT_MAX = 3000
SECTION_FIELD_MAX = 2000
SECTION_FIELDS_MAX = 10
MARKDOWN_TEXT_MAX = 12_000  # one markdown block ...
MARKDOWN_TOTAL_MAX = 12_000  # ... and all of a payload's together (Slack: msg_blocks_too_long)
HEADER_TEXT_MAX = 150
CONTEXT_ELEMENTS_MAX = 10
ACTIONS_ELEMENTS_MAX = 25
CONTEXT_ACTIONS_ELEMENTS_MAX = 5
BUTTON_TEXT_MAX = 75
ACCESSIBILITY_LABEL_MAX = 75
ACTION_ID_MAX = 255
BLOCK_ID_MAX = 255
VALUE_MAX = 2000
URL_MAX = 3000
TEXT_MAX = 3000  # any other text object
VIEW_TITLE_MAX = 24  # a modal's title, submit and close
CALLBACK_ID_MAX = 255
PRIVATE_METADATA_MAX = 3000
INPUT_LABEL_MAX = 2000
PLACEHOLDER_MAX = 150
TEXT_INPUT_LENGTH_MAX = 3000  # a plain_text_input's min_length / max_length

_TEXT_TYPES = ("plain_text", "mrkdwn")
_BUTTON_STYLES = ("primary", "danger")
# Types Slack accepts that the fake stores without checking what they hold.
_UNCHECKED_BLOCKS = frozenset({"image", "rich_text", "video", "file"})
_OTHER_ACTION_ELEMENTS = frozenset(
    {
        "static_select",
        "external_select",
        "users_select",
        "conversations_select",
        "channels_select",
        "multi_static_select",
        "multi_external_select",
        "multi_users_select",
        "multi_conversations_select",
        "multi_channels_select",
        "overflow",
        "datepicker",
        "timepicker",
        "datetimepicker",
        "checkboxes",
        "radio_buttons",
        "workflow_button",
    }
)
_OTHER_INPUT_ELEMENTS = _OTHER_ACTION_ELEMENTS - {"overflow", "workflow_button"} | {
    "email_text_input",
    "number_input",
    "url_text_input",
    "rich_text_input",
    "file_input",
}
_BLOCKS_ON = {  # which blocks each surface takes
    "message": {
        "section",
        "markdown",
        "context",
        "actions",
        "context_actions",
        "divider",
        "header",
    },
    "modal": {"input", "section", "context", "actions", "divider", "header"},
}


class _Problems:
    """The faults found, one line each as Slack lists them in `response_metadata.messages`:
    `[ERROR] what [json-pointer:/where]`."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def answer(self, error: str) -> dict[str, Any]:
        faults = [m.removeprefix("[ERROR] ") for m in self.messages]
        return {
            "ok": False,
            "error": error,
            "errors": faults,
            "response_metadata": {"messages": list(self.messages)},
        }

    def add(self, what: str, pointer: str) -> None:
        self.messages.append(f"[ERROR] {what} [json-pointer:{pointer}]")

    def schema(self, pointer: str) -> None:
        self.add("failed to match all allowed schemas", pointer)

    def string(
        self, parent: dict[str, Any], key: str, at: str, max_len: int, *, required: bool = False
    ) -> None:
        value = parent.get(key)
        if value is None:
            if required:
                self.add(f"missing required field: {key}", at)
        elif not isinstance(value, str):
            self.add("must be a string", f"{at}/{key}")
        elif len(value) > max_len:
            self.add(f"must be less than {max_len + 1} characters", f"{at}/{key}")
        elif required and not value:
            self.add("must be more than 0 characters", f"{at}/{key}")

    def text(
        self,
        parent: dict[str, Any],
        key: str,
        at: str,
        max_len: int,
        *,
        plain: bool = False,
        required: bool = True,
    ) -> None:
        """A text object: `plain_text` (or, unless `plain`, `mrkdwn`) with 1..max_len chars."""
        obj = parent.get(key)
        if obj is None:
            if required:
                self.add(f"missing required field: {key}", at)
            return
        if not isinstance(obj, dict) or obj.get("type") not in (
            ("plain_text",) if plain else _TEXT_TYPES
        ):
            self.schema(f"{at}/{key}")
            return
        self.string(obj, "text", f"{at}/{key}", max_len, required=True)

    def items(
        self, parent: dict[str, Any], key: str, at: str, max_items: int
    ) -> list[tuple[str, dict[str, Any]]]:
        """The objects of a required array of 1..max_items, each with its pointer."""
        value = parent.get(key)
        if value is None:
            self.add(f"missing required field: {key}", at)
            return []
        if not isinstance(value, list):
            self.schema(f"{at}/{key}")
            return []
        if not value:
            self.add("must provide at least 1 item", f"{at}/{key}")
        if len(value) > max_items:
            self.add(f"no more than {max_items} items allowed", f"{at}/{key}")
        out = []
        for i, item in enumerate(value):
            if isinstance(item, dict):
                out.append((f"{at}/{key}/{i}", item))
            else:
                self.schema(f"{at}/{key}/{i}")
        return out


def _check_blocks(
    blocks: list[dict[str, Any]], surface: str, p: _Problems, refused: set[str] | None = None
) -> None:
    """Every fault of a message's (surface "message") or a modal's ("modal") blocks."""
    limit = MAX_BLOCKS if surface == "message" else MAX_VIEW_BLOCKS
    base = "/blocks" if surface == "message" else "/view/blocks"
    if len(blocks) > limit:
        p.add(f"no more than {limit} items allowed", base)
    seen: set[str] = set()
    for i, block in enumerate(blocks):
        at = f"{base}/{i}"
        kind = block.get("type")
        if kind in (refused or ()) or (
            kind not in _BLOCKS_ON[surface] and kind not in _UNCHECKED_BLOCKS
        ):
            p.schema(at)
            continue
        p.string(block, "block_id", at, BLOCK_ID_MAX)
        block_id = block.get("block_id")
        if isinstance(block_id, str):
            if block_id in seen:
                p.add("duplicate block_id", f"{at}/block_id")
            seen.add(block_id)
        check = _BLOCK_CHECKS.get(str(kind))
        if check is not None:
            check(block, at, p, refused or set())


def _check_section(block: dict[str, Any], at: str, p: _Problems, refused: set[str]) -> None:
    if block.get("text") is None and block.get("fields") is None:
        p.add("must define either `text` or `fields`", at)
    p.text(block, "text", at, SECTION_TEXT_MAX, required=False)
    fields = block.get("fields")
    if fields is not None:
        if not isinstance(fields, list) or len(fields) > SECTION_FIELDS_MAX:
            p.add(f"no more than {SECTION_FIELDS_MAX} items allowed", f"{at}/fields")
        else:
            for i in range(len(fields)):
                p.text({"f": fields[i]}, "f", f"{at}/fields/{i}", SECTION_FIELD_MAX)
    accessory = block.get("accessory")
    if accessory is not None:
        kind = accessory.get("type") if isinstance(accessory, dict) else None
        if kind in refused:
            p.schema(f"{at}/accessory")
        elif kind == "button":
            _check_button(accessory, f"{at}/accessory", p)
        elif kind not in _OTHER_ACTION_ELEMENTS and kind != "image":
            p.schema(f"{at}/accessory")


def _check_markdown(block: dict[str, Any], at: str, p: _Problems, refused: set[str]) -> None:
    p.string(block, "text", at, MARKDOWN_TEXT_MAX, required=True)


def _check_header(block: dict[str, Any], at: str, p: _Problems, refused: set[str]) -> None:
    p.text(block, "text", at, HEADER_TEXT_MAX, plain=True)


def _check_divider(block: dict[str, Any], at: str, p: _Problems, refused: set[str]) -> None:
    return None


def _check_context(block: dict[str, Any], at: str, p: _Problems, refused: set[str]) -> None:
    for where, element in p.items(block, "elements", at, CONTEXT_ELEMENTS_MAX):
        if element.get("type") in refused:
            p.schema(where)
        elif element.get("type") == "image":
            p.string(element, "alt_text", where, 2000, required=True)
            if element.get("image_url") is None and element.get("slack_file") is None:
                p.add("must define either `image_url` or `slack_file`", where)
        elif element.get("type") in _TEXT_TYPES:
            p.string(element, "text", where, TEXT_MAX, required=True)
        else:
            p.schema(where)


def _check_actions(block: dict[str, Any], at: str, p: _Problems, refused: set[str]) -> None:
    for where, element in p.items(block, "elements", at, ACTIONS_ELEMENTS_MAX):
        kind = element.get("type")
        if kind in refused:
            p.schema(where)
        elif kind == "button":
            _check_button(element, where, p)
        elif kind in _OTHER_ACTION_ELEMENTS:
            p.string(element, "action_id", where, ACTION_ID_MAX)
        else:
            p.schema(where)


def _check_context_actions(block: dict[str, Any], at: str, p: _Problems, refused: set[str]) -> None:
    for where, element in p.items(block, "elements", at, CONTEXT_ACTIONS_ELEMENTS_MAX):
        kind = element.get("type")
        if kind in refused:
            p.schema(where)
        elif kind == "feedback_buttons":
            p.string(element, "action_id", where, ACTION_ID_MAX)
            for side in ("positive_button", "negative_button"):
                button = element.get(side)
                if not isinstance(button, dict):
                    p.add(f"missing required field: {side}", where)
                    continue
                p.text(button, "text", f"{where}/{side}", BUTTON_TEXT_MAX, plain=True)
                p.string(button, "value", f"{where}/{side}", VALUE_MAX, required=True)
                p.string(button, "accessibility_label", f"{where}/{side}", ACCESSIBILITY_LABEL_MAX)
        elif kind == "icon_button":
            p.string(element, "icon", where, 255, required=True)
            p.text(element, "text", where, BUTTON_TEXT_MAX, plain=True)
            p.string(element, "action_id", where, ACTION_ID_MAX)
            p.string(element, "value", where, VALUE_MAX)
            p.string(element, "accessibility_label", where, ACCESSIBILITY_LABEL_MAX)
            users = element.get("visible_to_user_ids")
            if users is not None and not (
                isinstance(users, list) and all(isinstance(u, str) for u in users)
            ):
                p.schema(f"{where}/visible_to_user_ids")
        else:
            p.schema(where)


def _check_button(button: dict[str, Any], at: str, p: _Problems) -> None:
    p.text(button, "text", at, BUTTON_TEXT_MAX, plain=True)
    p.string(button, "action_id", at, ACTION_ID_MAX)
    p.string(button, "value", at, VALUE_MAX)
    p.string(button, "url", at, URL_MAX)
    p.string(button, "accessibility_label", at, ACCESSIBILITY_LABEL_MAX)
    if button.get("style") is not None and button.get("style") not in _BUTTON_STYLES:
        p.schema(f"{at}/style")


def _check_input(block: dict[str, Any], at: str, p: _Problems, refused: set[str]) -> None:
    p.text(block, "label", at, INPUT_LABEL_MAX, plain=True)
    p.text(block, "hint", at, INPUT_LABEL_MAX, plain=True, required=False)
    element = block.get("element")
    if not isinstance(element, dict):
        p.add("missing required field: element", at)
        return
    where = f"{at}/element"
    kind = element.get("type")
    if kind == "plain_text_input":
        p.string(element, "action_id", where, ACTION_ID_MAX)
        p.text(element, "placeholder", where, PLACEHOLDER_MAX, plain=True, required=False)
        p.string(element, "initial_value", where, TEXT_INPUT_LENGTH_MAX)
        for key, low in (("min_length", 0), ("max_length", 1)):
            value = element.get(key)
            if value is not None and (
                not isinstance(value, int) or not low <= value <= TEXT_INPUT_LENGTH_MAX
            ):
                p.add(f"must be between {low} and {TEXT_INPUT_LENGTH_MAX}", f"{where}/{key}")
    elif kind in _OTHER_INPUT_ELEMENTS:
        p.string(element, "action_id", where, ACTION_ID_MAX)
    else:
        p.schema(where)


_BLOCK_CHECKS: dict[str, Callable[[dict[str, Any], str, _Problems, set[str]], None]] = {
    "section": _check_section,
    "markdown": _check_markdown,
    "header": _check_header,
    "divider": _check_divider,
    "context": _check_context,
    "actions": _check_actions,
    "context_actions": _check_context_actions,
    "input": _check_input,
}


def _check_modal(view: dict[str, Any], p: _Problems) -> None:
    """A modal view object (views.open): its fields and blocks, pointers from `/view`."""
    if view.get("type") != "modal":
        p.schema("/view/type")
    p.text(view, "title", "/view", VIEW_TITLE_MAX, plain=True)
    p.text(view, "submit", "/view", VIEW_TITLE_MAX, plain=True, required=False)
    p.text(view, "close", "/view", VIEW_TITLE_MAX, plain=True, required=False)
    p.string(view, "callback_id", "/view", CALLBACK_ID_MAX)
    p.string(view, "private_metadata", "/view", PRIVATE_METADATA_MAX)
    p.string(view, "external_id", "/view", CALLBACK_ID_MAX)
    blocks = view.get("blocks")
    if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
        p.add("missing required field: blocks", "/view")
        return
    _check_blocks(blocks, "modal", p)
    if view.get("submit") is None and any(b.get("type") == "input" for b in blocks):
        p.add("submit is required when an input block is within the blocks array", "/view")


def _random_id() -> str:
    """An id like the ones Slack makes up for a block or element that came without one."""
    return secrets.token_urlsafe(4)[:5]


def _with_ids(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A copy of valid blocks with what Slack adds: a `block_id` on each (not on a markdown
    block, whose block_id Slack drops), an `action_id` on each interactive element."""
    out = copy.deepcopy(blocks)
    for block in out:
        if block.get("type") == "markdown":
            block.pop("block_id", None)
            continue
        block.setdefault("block_id", _random_id())
        elements = list(block.get("elements") or []) if block.get("type") != "context" else []
        for extra in ("accessory", "element"):
            if isinstance(block.get(extra), dict):
                elements.append(block[extra])
        for element in elements:
            if element.get("type") not in ("image", *_TEXT_TYPES):
                element.setdefault("action_id", _random_id())
    return out


def _clickable(
    blocks: list[dict[str, Any]], action_id: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The block and interactive element a person can click by that action_id."""
    for block in blocks:
        elements = list(block.get("elements") or [])
        if isinstance(block.get("accessory"), dict):
            elements.append(block["accessory"])
        for element in elements:
            clickable = element.get("type") in ("button", "icon_button", "feedback_buttons")
            if clickable and element.get("action_id") == action_id:
                return block, element
    raise LookupError(f"the message shows no button with action_id {action_id!r}")


def _user_ref(user: str) -> dict[str, str]:
    """A person as an interaction payload names them."""
    name = f"user-{user.lower()}"
    return {"id": user, "username": name, "name": name, "team_id": TEAM_ID}


def _check_typed(value: str | None, block: dict[str, Any], element: dict[str, Any]) -> None:
    """Refuse what Slack's client would not submit for a plain_text_input."""
    typed = value or ""
    if not typed and not block.get("optional", False):
        raise ValueError(f"input {block['block_id']} is required")
    if typed and len(typed) < int(element.get("min_length") or 0):
        raise ValueError(f"input {block['block_id']} is shorter than its min_length")
    if len(typed) > int(element.get("max_length") or TEXT_INPUT_LENGTH_MAX):
        raise ValueError(f"input {block['block_id']} is longer than its max_length")


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
