"""A local Discord for tests: the REST API and the gateway websocket, on 127.0.0.1, in aiohttp.

It speaks the wire format discord.py expects (typed payload dicts, the rate-limit headers and
bodies Discord sends), records every REST request, and can be told to answer 429, 404 (Unknown
Message) or 403 (Missing Permissions), so the real client's own handling is exercised.

- A forum channel (`forum_id`, type 15): `forum_post` builds a post's THREAD_CREATE and its starter
  MESSAGE_CREATE (same id as the thread), `post_in_forum` sends both in Discord's order.
- Threads (`threads`, id -> payload; `GET /channels/{id}` answers for them and every channel):
  `POST .../messages/{id}/threads` starts one (201, THREAD_CREATE and MESSAGE_UPDATE dispatched,
  160004 on a second try), recorded in `threads_created`.
- History: `known` holds every message (the bot's and those `remember`ed, e.g. by `send_message`);
  `GET /channels/{id}/messages` pages it as Discord does (limit, before/after/around, newest first)
  and `GET .../messages/{id}` reads one (10008 if unknown); `fail(...)` applies to both.
- Attachments (`message_create(attachments=...)`): signed CDN-style URLs on the fake's own host,
  served without authorization; each download is recorded in `downloads`.
- Reply chains: a reply's referenced message is known too, and the bot's replies carry
  `message_reference`, so `fetch_message` walks a chain to its root.
- Components: the bot's messages (REST create and edit, interaction responses, follow-ups) keep
  `components` (action rows of buttons, checked as Discord checks them: 400 code 50035 with the
  offending path in `errors`), numbered with the `id`s Discord adds. `component_interaction`
  builds the INTERACTION_CREATE of a click on a button, `modal_submit` that of a submitted modal
  (its layout mirrors the modal shown: action rows, or Labels, type 18).
- Interaction responses: `callbacks` records every POST to `/interactions/{id}/{token}/callback`
  (type, body, how long after the dispatch, the status answered); types 4, 5, 6, 7 (edits the
  clicked message) and 9 (a modal, checked, kept in `modals`); a second response to one
  interaction is refused with 40060, one to an interaction the fake never made with 10062, as is
  one later than `interaction_deadline_s` when set (Discord's deadline is 3 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aiohttp import WSMsgType, web

if TYPE_CHECKING:  # discord.py's own payload types, as its tests use them
    from discord.types.gateway import GuildCreateEvent, MessageCreateEvent, ReadyEvent
    from discord.types.interactions import (
        ChatInputApplicationCommandInteraction,
        MessageComponentInteraction,
        ModalSubmitInteraction,
    )
    from discord.types.message import Message as MessagePayload
    from discord.types.user import User as UserPayload

API_PREFIX = "/api/v10"
# Gateway opcodes (https://discord.com/developers/docs/topics/opcodes-and-status-codes).
DISPATCH, HEARTBEAT, IDENTIFY, RESUME, HELLO, HEARTBEAT_ACK = 0, 1, 2, 6, 10, 11
MESSAGE_CONTENT_INTENT = 1 << 15
PRIVILEGED_INTENTS = (1 << 1) | (1 << 8) | MESSAGE_CONTENT_INTENT
ALL_PERMISSIONS = str((1 << 50) - 1)
MAX_CONTENT_CHARS = 2_000
# Components: discord.com/developers/docs/components/reference and
# .../interactions/receiving-and-responding.
MAX_ROWS = 5  # action rows in a message
MAX_ROW_BUTTONS = 5
MAX_BUTTON_LABEL = 80
MAX_CUSTOM_ID = 100
MAX_LINK_URL = 512
BUTTON_STYLES = (1, 2, 3, 4, 5, 6)  # primary, secondary, success, danger, link, premium
LINK, PREMIUM = 5, 6
SELECT_TYPES = (3, 5, 6, 7, 8)  # a select fills its action row alone
MAX_MODAL_TITLE = 45
MAX_MODAL_COMPONENTS = 5
MAX_INPUT_LABEL = 45
MAX_LABEL_DESCRIPTION = 100
MAX_INPUT_LENGTH = 4_000  # a text input's min_length / max_length / value
MAX_PLACEHOLDER = 100
EPHEMERAL = 1 << 6
DEADLINE_S = 3.0  # Discord's window for the first response to an interaction
# Interaction callback types the fake answers.
CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE, MODAL = 4, 5, 6, 7, 9
HAS_THREAD = 1 << 5  # message flag: a thread was started from it
ARCHIVE_DURATIONS = (60, 1440, 4320, 10080)  # minutes, the only ones Discord accepts

_snowflakes = itertools.count(1_300_000_000_000_000_000)


def snowflake() -> int:
    return next(_snowflakes)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def user_payload(user_id: int, name: str, *, bot: bool = False) -> UserPayload:
    return {
        "id": str(user_id),
        "username": name,
        "discriminator": "0",
        "global_name": name,
        "avatar": None,
        "bot": bot,
    }


def _referenced(message: dict[str, Any]) -> dict[str, Any]:
    """A message as embedded in a reply: REST form, one level only (Discord does not nest)."""
    return {
        k: v for k, v in message.items() if k not in ("referenced_message", "member", "guild_id")
    }


def _rest_view(message: dict[str, Any]) -> dict[str, Any]:
    """A message as REST returns it: `guild_id` and `member` are extra fields of gateway events."""
    return {k: v for k, v in message.items() if k not in ("member", "guild_id")}


def _json(data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # Exactly "application/json" (no charset), as Discord sends it: discord.py decodes JSON only
    # when the content type matches that string.
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    return web.Response(body=json.dumps(data).encode(), status=status, headers=all_headers)


@dataclass
class Recorded:
    """One REST request as the fake received it."""

    method: str
    path: str  # below /api/v10, e.g. /channels/1/messages
    json: Any
    query: dict[str, str]


@dataclass
class InteractionCallback:
    """One response to an interaction as the fake received and answered it."""

    token: str
    type: int | None  # the callback type: 4, 5, 6, 7, 9
    body: Any
    interaction_type: int | None  # 2 command, 3 component, 5 modal submit; None if unknown
    after_s: float | None  # since the INTERACTION_CREATE was dispatched (None: never dispatched)
    status: int = 200  # what the fake answered: 400 (40060, 50035), 404 (10062)
    code: int | None = None  # Discord's error code when refused


@dataclass
class Modal:
    """A modal an interaction response (type 9) showed, as validated, with the `id`s Discord adds
    to its components; `message_id` is the clicked message when it answered a button."""

    token: str
    user_id: int
    custom_id: str
    title: str
    components: list[dict[str, Any]]
    channel_id: int
    message_id: int | None = None


@dataclass
class _Interaction:
    """An interaction the fake made (`interaction_create`, `component_interaction`,
    `modal_submit`): what a response to its token may do, and when it was dispatched."""

    id: str
    type: int
    channel_id: int
    user_id: int
    message_id: int | None = None  # the message a button is on (or a modal was opened from)
    dispatched_at: float | None = None
    answered: int | None = None  # the callback type it was answered with


@dataclass
class _Failure:
    method: str
    pattern: re.Pattern[str]
    status: int
    retry_after_s: float
    times: int
    scope: str


@dataclass
class FakeDiscord:
    """Discord on loopback. Start with `async with FakeDiscord() as discord:`.

    `api_url` goes into DISCORD_API_URL; `dispatch(...)` sends a gateway event to every
    connected client; `requests` holds every REST call; `messages` every message the bot made
    (id -> payload, content as currently shown) and `contents` each message's successive texts;
    `known` every message REST can read back (the bot's and those `remember`ed).
    """

    guild_id: int = field(default_factory=snowflake)
    channel_ids: tuple[int, ...] = ()
    app_id: int = field(default_factory=snowflake)
    bot_id: int = field(default_factory=snowflake)
    bot_role_id: int = field(default_factory=snowflake)
    message_content_enabled: bool = True  # the privileged intent, as toggled in the portal
    requests: list[Recorded] = field(default_factory=list)
    messages: dict[int, dict[str, Any]] = field(default_factory=dict)
    contents: dict[int, list[str]] = field(default_factory=dict)
    commands: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    identifies: list[dict[str, Any]] = field(default_factory=list)
    known: dict[int, dict[str, Any]] = field(default_factory=dict)
    threads: dict[int, dict[str, Any]] = field(default_factory=dict)
    threads_created: list[dict[str, Any]] = field(default_factory=list)
    downloads: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Authorization)
    callbacks: list[InteractionCallback] = field(default_factory=list)
    modals: list[Modal] = field(default_factory=list)
    interaction_deadline_s: float | None = None  # e.g. DEADLINE_S: later first responses get 10062

    def __post_init__(self) -> None:
        if not self.channel_ids:
            self.channel_ids = (snowflake(), snowflake())
        self.category_id = snowflake()
        self.forum_id = snowflake()
        self.thread_id = snowflake()  # an active public thread in the first channel
        self._new_thread(self.thread_id, self.channel_id, 4242, "a thread").update(
            message_count=1, total_message_sent=1
        )
        self._files: dict[int, tuple[str, str, bytes, str, str]] = {}  # id -> channel, name, ...
        self._failures: list[_Failure] = []
        self._gone: set[int] = set()
        self._forbidden: set[int] = set()
        self._originals: dict[str, int] = {}  # interaction token -> @original message id
        self._interactions: dict[str, _Interaction] = {}  # token -> what the fake made
        self._sockets: list[tuple[web.WebSocketResponse, list[int] | None]] = []
        self._seq = itertools.count(1)
        self._ready = asyncio.Event()
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # lifecycle

    async def __aenter__(self) -> FakeDiscord:
        app = web.Application()
        app.router.add_get("/gateway-ws", self._gateway)
        for cdn in ("", "/media"):  # cdn.discordapp.com and media.discordapp.net (proxy_url)
            app.router.add_get(cdn + r"/attachments/{channel}/{id:\d+}/{filename}", self._download)
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for ws, _ in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway-ws"

    @property
    def channel_id(self) -> int:
        return self.channel_ids[0]

    # test controls

    def fail(
        self,
        method: str,
        path_regex: str,
        status: int,
        *,
        retry_after_s: float = 0.0,
        times: int = 1,
        scope: str = "user",
    ) -> None:
        """Answer the next `times` matching requests with `status`.

        A 429 carries `retry_after_s`; its `scope` is "user" (this route's bucket) or "global"
        (every request of the bot, as Discord says with X-RateLimit-Global and `"global": true`).
        """
        self._failures.append(
            _Failure(method, re.compile(path_regex), status, retry_after_s, times, scope)
        )

    def delete_message(self, message_id: int) -> None:
        """As if a user deleted it: further edits get 404 Unknown Message (10008)."""
        self._gone.add(message_id)
        self.messages.pop(message_id, None)
        self.known.pop(message_id, None)

    def remember(self, payload: Any) -> None:
        """Store a message the tests made, as Discord has before it sends the event, so REST can
        read it back; the message it replies to too, unless already known (e.g. the bot's)."""
        referenced = payload.get("referenced_message")
        if isinstance(referenced, dict) and int(referenced["id"]) not in self.known:
            self.remember(referenced)
        message_id = int(payload["id"])
        if message_id not in self.known:
            self._count(payload)
        self.known[message_id] = payload

    def forbid(self, channel_id: int) -> None:
        """The bot lacks Send Messages there (the cache does not know): 403, code 50013."""
        self._forbidden.add(channel_id)

    async def wait_ready(self) -> None:
        """Until a client has identified and received READY and GUILD_CREATE."""
        await self._ready.wait()

    async def wait_until(self, predicate: Callable[[], object]) -> None:
        """Until `predicate()` holds; checked after every request and IDENTIFY (no polling)."""
        async with self._changed:
            await self._changed.wait_for(predicate)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def calls(self, method: str | None = None, path_regex: str = "") -> list[Recorded]:
        pattern = re.compile(path_regex)
        return [
            r
            for r in self.requests
            if (method is None or r.method == method) and pattern.search(r.path)
        ]

    def channel_messages(self, channel_id: int) -> list[dict[str, Any]]:
        """The bot's messages still shown in a channel, oldest first."""
        return [m for m in self.messages.values() if m["channel_id"] == str(channel_id)]

    # gateway events the tests send

    async def dispatch(self, event: str, data: Any) -> None:
        """Send an event to the shard that owns the guild (to the only socket when unsharded).
        An INTERACTION_CREATE's dispatch starts its response deadline (`callbacks[...].after_s`)."""
        if event == "INTERACTION_CREATE" and data.get("token") in self._interactions:
            self._interactions[data["token"]].dispatched_at = time.monotonic()
        for ws, shard in list(self._sockets):
            if shard is None or (self.guild_id >> 22) % shard[1] == shard[0]:
                await self._send(ws, event, data)

    async def _send(self, ws: web.WebSocketResponse, event: str, data: Any) -> None:
        payload = {"op": DISPATCH, "t": event, "s": next(self._seq), "d": data}
        await ws.send_str(json.dumps(payload))

    async def send_message(self, payload: Any) -> None:
        """A user posts `payload` (from `message_create`): stored, then MESSAGE_CREATE sent."""
        self.remember(payload)
        await self.dispatch("MESSAGE_CREATE", payload)

    async def post_in_forum(
        self, *args: Any, **kwargs: Any
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """A user posts in the forum (`forum_post`'s arguments): THREAD_CREATE, then the starter."""
        thread, starter = self.forum_post(*args, **kwargs)
        await self.dispatch("THREAD_CREATE", thread)
        await self.send_message(starter)
        return thread, starter

    def forum_post(
        self,
        title: str,
        content: str,
        *,
        author_id: int = 4242,
        attachments: Iterable[tuple[str, bytes, str]] = (),
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """A new forum post's THREAD_CREATE and starter MESSAGE_CREATE; the thread is known now.

        The post is a public thread owned by its author (its one member); the starter message is
        in the thread and has the thread's id, and is not counted in `message_count`.
        """
        thread_id = snowflake()
        thread = self._new_thread(thread_id, self.forum_id, author_id, title)
        thread.update(applied_tags=[], last_message_id=str(thread_id))
        starter: dict[str, Any] = dict(
            self.message_create(
                content, channel_id=thread_id, author_id=author_id, attachments=attachments
            )
        )
        starter.update(id=str(thread_id), position=0)
        return thread | {"newly_created": True}, starter

    def message_create(
        self,
        content: str,
        *,
        channel_id: int | None = None,
        author_id: int | None = None,
        bot: bool = False,
        roles: Iterable[int] = (),
        mention_bot: bool = False,
        reply_to: dict[str, Any] | None = None,
        guild: bool = True,
        attachments: Iterable[tuple[str, bytes, str]] = (),
    ) -> MessageCreateEvent:
        """A MESSAGE_CREATE as Discord sends it (`mention_bot` puts `<@bot>` in front).

        `attachments` are (filename, data, content type), served by the fake once it runs; a
        message replied to must exist, so `reply_to` becomes known (see `remember`).
        """
        author_id = author_id if author_id is not None else 4242
        author = user_payload(author_id, f"user{author_id}", bot=bot)
        mentions: list[Any] = []
        if mention_bot:
            content = f"<@{self.bot_id}> {content}"
            mentions.append(user_payload(self.bot_id, "threadbot", bot=True))
        channel = str(channel_id if channel_id is not None else self.channel_id)
        data: dict[str, Any] = {
            "id": str(snowflake()),
            "channel_id": channel,
            "author": author,
            "content": content,
            "timestamp": _now(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": mentions,
            "mention_roles": [],
            "attachments": [self._attachment(channel, *a) for a in attachments],
            "embeds": [],
            "pinned": False,
            "type": 0,
            "flags": 0,
        }
        if guild:
            data["guild_id"] = str(self.guild_id)
            data["member"] = {
                "roles": [str(r) for r in roles],
                "joined_at": _now(),
                "deaf": False,
                "mute": False,
                "flags": 0,
            }
        if reply_to is not None:
            data["type"] = 19
            data["message_reference"] = {
                "message_id": reply_to["id"],
                "channel_id": reply_to["channel_id"],
                "guild_id": str(self.guild_id),
            }
            data["referenced_message"] = _referenced(reply_to)
            if int(reply_to["id"]) not in self.known:
                self.remember(reply_to)
        return data  # type: ignore[return-value]

    def interaction_create(
        self,
        name: str,
        options: dict[str, str] | None = None,
        *,
        channel_id: int | None = None,
        user_id: int = 4242,
    ) -> ChatInputApplicationCommandInteraction:
        """An INTERACTION_CREATE for a slash command used in a guild text channel."""
        channel = channel_id if channel_id is not None else self.channel_id
        # A guild command's data names its guild; a global command's does not.
        scope = str(self.guild_id) if str(self.guild_id) in self.commands else "global"
        command_id = next(
            (c["id"] for c in self.commands.get(scope, []) if c["name"] == name),
            str(snowflake()),
        )
        data = self._interaction(2, channel, user_id)
        data["data"] = {
            "id": command_id,
            "name": name,
            "type": 1,
            **({"guild_id": scope} if scope != "global" else {}),
            "options": [
                {"name": key, "type": 3, "value": value} for key, value in (options or {}).items()
            ],
        }
        return data  # type: ignore[return-value]

    def component_interaction(
        self, message_id: int, custom_id: str, *, user_id: int = 4242
    ) -> MessageComponentInteraction:
        """The INTERACTION_CREATE (type 3, MESSAGE_COMPONENT) Discord sends when `user_id` clicks
        the button `custom_id` on the bot's message `message_id`: the message as it is now, its
        channel, guild and the member. LookupError if no such button can be clicked there (a
        link button sends no interaction, a disabled one cannot be pressed)."""
        message = self.messages.get(message_id)
        if message is None or message_id in self._gone:
            raise LookupError(f"the bot has no message {message_id}")
        buttons = [
            c
            for row in message.get("components") or []
            for c in row.get("components") or []
            if c.get("type") == 2
        ]
        button = next((b for b in buttons if b.get("custom_id") == custom_id), None)
        if button is None or button.get("disabled"):
            raise LookupError(f"message {message_id} has no enabled button {custom_id!r}")
        data = self._interaction(3, int(message["channel_id"]), user_id, message_id=message_id)
        data["message"] = _rest_view(message)
        data["data"] = {"custom_id": custom_id, "component_type": 2}
        self._originals[data["token"]] = message_id  # @original is the clicked message
        return data  # type: ignore[return-value]

    def modal_submit(
        self, custom_id: str, values: dict[str, str], *, user_id: int = 4242
    ) -> ModalSubmitInteraction:
        """The INTERACTION_CREATE (type 5, MODAL_SUBMIT) Discord sends when `user_id` submits the
        modal `custom_id` last shown to them: `values` maps a text input's custom_id to what was
        typed (inputs left out are sent empty). Its components mirror the modal's layout, action
        rows (type 1) or Labels (type 18), as discord.py reads them. LookupError if no such modal
        was shown, KeyError for an input it lacks, ValueError for what Discord's client would not
        let through (a required input empty, a value outside min/max_length)."""
        modal = next(
            (m for m in reversed(self.modals) if (m.custom_id, m.user_id) == (custom_id, user_id)),
            None,
        )
        if modal is None:
            raise LookupError(f"no modal {custom_id!r} was shown to user {user_id}")
        given = dict(values)
        components = [_submitted(c, given) for c in modal.components]
        if given:
            raise KeyError(f"modal {custom_id!r} has no text input {sorted(given)}")
        data = self._interaction(5, modal.channel_id, user_id, message_id=modal.message_id)
        if modal.message_id is not None and modal.message_id in self.messages:
            data["message"] = _rest_view(self.messages[modal.message_id])
            self._originals[data["token"]] = modal.message_id
        data["data"] = {"custom_id": custom_id, "components": components}
        return data  # type: ignore[return-value]

    def _interaction(
        self, kind: int, channel_id: int, user_id: int, *, message_id: int | None = None
    ) -> dict[str, Any]:
        """What every INTERACTION_CREATE in a guild text channel carries; the fake remembers its
        token, to answer the responses to it."""
        data: dict[str, Any] = {
            "id": str(snowflake()),
            "application_id": str(self.app_id),
            "type": kind,
            "token": f"itoken{snowflake()}",
            "version": 1,
            "guild_id": str(self.guild_id),
            "channel_id": str(channel_id),
            "channel": self._channel(channel_id) or self._channel_payload(channel_id),
            "member": {
                "user": user_payload(user_id, f"user{user_id}"),
                "roles": [],
                "joined_at": _now(),
                "deaf": False,
                "mute": False,
                "flags": 0,
                "permissions": ALL_PERMISSIONS,
            },
            "app_permissions": ALL_PERMISSIONS,
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(self.guild_id)},
            "context": 0,
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        data["channel"] = data["channel"] | {"guild_id": str(self.guild_id)}
        self._interactions[data["token"]] = _Interaction(
            data["id"], kind, channel_id, user_id, message_id=message_id
        )
        return data

    # payloads of the fake's own world

    def _bot_user(self) -> UserPayload:
        return user_payload(self.bot_id, "threadbot", bot=True)

    def _channel_payload(self, channel_id: int) -> dict[str, Any]:
        index = self.channel_ids.index(channel_id) if channel_id in self.channel_ids else 0
        return {
            "id": str(channel_id),
            "type": 0,
            "name": f"channel-{index}",
            "position": index,
            "parent_id": str(self.category_id),
            "permission_overwrites": [],
            "nsfw": False,
            "topic": None,
            "last_message_id": None,
            "rate_limit_per_user": 0,
        }

    def _category_payload(self) -> dict[str, Any]:
        return {
            "id": str(self.category_id),
            "type": 4,
            "name": "Text Channels",
            "position": 0,
            "permission_overwrites": [],
            "nsfw": False,
            "parent_id": None,
        }

    def _forum_payload(self) -> dict[str, Any]:
        posts = [t for t, data in self.threads.items() if data["parent_id"] == str(self.forum_id)]
        return {
            "id": str(self.forum_id),
            "type": 15,
            "name": "forum",
            "position": len(self.channel_ids),
            "parent_id": str(self.category_id),
            "permission_overwrites": [],
            "nsfw": False,
            "topic": None,
            "last_message_id": str(max(posts)) if posts else None,  # the newest post's id
            "rate_limit_per_user": 0,
            "default_thread_rate_limit_per_user": 0,
            "default_auto_archive_duration": 1440,
            "available_tags": [],
            "default_reaction_emoji": None,
            "default_sort_order": None,
            "default_forum_layout": 0,
            "template": "",
            "flags": 0,
        }

    def _thread_payload(self) -> dict[str, Any]:
        return self.threads[self.thread_id]

    def _new_thread(
        self, thread_id: int, parent_id: int | str, owner_id: int, name: str, **extra: Any
    ) -> dict[str, Any]:
        """A public thread just created (counts exclude the starter message), now known."""
        now = _now()
        metadata = {"auto_archive_duration": extra.pop("auto_archive_duration", 1440)}
        self.threads[thread_id] = thread = {
            "id": str(thread_id),
            "guild_id": str(self.guild_id),
            "parent_id": str(parent_id),
            "owner_id": str(owner_id),
            "name": name,
            "type": 11,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "message_count": 0,
            "member_count": 1,
            "total_message_sent": 0,
            "flags": 0,
            "thread_metadata": metadata
            | {
                "archived": False,
                "archive_timestamp": now,
                "locked": False,
                "create_timestamp": now,
            },
            **extra,
        }
        return thread

    def _channel(self, channel_id: int) -> dict[str, Any] | None:
        """A guild channel or thread as `GET /channels/{id}` returns it (with `guild_id`)."""
        if channel_id in self.threads:
            return self.threads[channel_id]
        guild = {"guild_id": str(self.guild_id)}
        if channel_id in self.channel_ids:
            return self._channel_payload(channel_id) | guild
        others = {self.category_id: self._category_payload, self.forum_id: self._forum_payload}
        return others[channel_id]() | guild if channel_id in others else None

    def _knows_channel(self, channel_id: int) -> bool:
        """A guild channel, or one a message was seen in (a DM)."""
        return self._channel(channel_id) is not None or any(
            m["channel_id"] == str(channel_id) for m in self.known.values()
        )

    def _count(self, message: Any) -> None:
        """A new message in a thread bumps its counts (a forum post's starter does not)."""
        thread = self.threads.get(int(message["channel_id"]))
        if thread is not None and message["id"] != thread["id"]:
            thread["message_count"] += 1
            thread["total_message_sent"] += 1
            thread["last_message_id"] = message["id"]

    def _attachment(
        self, channel_id: str, filename: str, data: bytes, content_type: str
    ) -> dict[str, Any]:
        """As Discord sends it: CDN URLs signed (ex/is/hm) so that they expire; no auth needed."""
        attachment_id = snowflake()
        filename = filename.replace(" ", "_")  # Discord stores names with spaces replaced
        path = f"/attachments/{channel_id}/{attachment_id}/{quote(filename)}"
        issued = int(time.time())
        signature = hashlib.sha256(f"{path}{issued}".encode()).hexdigest()
        self._files[attachment_id] = (channel_id, filename, data, content_type, signature)
        query = f"?ex={issued + 86_400:x}&is={issued:x}&hm={signature}&"
        host = f"http://127.0.0.1:{self.port}"
        return {
            "id": str(attachment_id),
            "filename": filename,
            "size": len(data),
            "url": f"{host}{path}{query}",
            "proxy_url": f"{host}/media{path}{query}",
            "content_type": content_type,
        }

    def _ready_payload(self, shard: list[int] | None) -> ReadyEvent:
        data: dict[str, Any] = {
            "v": 10,
            "user": self._bot_user(),
            "guilds": [{"id": str(self.guild_id), "unavailable": True}],
            "session_id": f"session{snowflake()}",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(self.app_id), "flags": 0},
        }
        if shard is not None:
            data["shard"] = shard
        return data  # type: ignore[return-value]

    def _guild_payload(self) -> GuildCreateEvent:
        everyone = {
            "id": str(self.guild_id),
            "name": "@everyone",
            "permissions": ALL_PERMISSIONS,
            "position": 0,
            "color": 0,
            "hoist": False,
            "managed": False,
            "mentionable": False,
            "flags": 0,
        }
        bot_role = everyone | {
            "id": str(self.bot_role_id),
            "name": "threadbot",
            "managed": True,
            "tags": {"bot_id": str(self.bot_id)},
        }
        data: dict[str, Any] = {
            "id": str(self.guild_id),
            "name": "Fake guild",
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "owner_id": "1",
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": [everyone, bot_role],
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "application_id": None,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "vanity_url_code": None,
            "description": None,
            "banner": None,
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "public_updates_channel_id": None,
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
            "joined_at": _now(),
            "large": False,
            "unavailable": False,
            "member_count": 2,
            "voice_states": [],
            "members": [
                {
                    "user": self._bot_user(),
                    "roles": [str(self.bot_role_id)],
                    "joined_at": _now(),
                    "deaf": False,
                    "mute": False,
                    "flags": 0,
                }
            ],
            "channels": [
                self._category_payload(),
                *(self._channel_payload(c) for c in self.channel_ids),
                self._forum_payload(),
            ],
            "threads": list(self.threads.values()),
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }
        return data  # type: ignore[return-value]

    def _new_message(
        self, channel_id: str, body: dict[str, Any], *, webhook_id: str | None = None
    ) -> MessagePayload:
        message_id = snowflake()
        data: dict[str, Any] = {
            "id": str(message_id),
            "channel_id": channel_id,
            "author": self._bot_user(),
            "content": body.get("content") or "",
            "timestamp": _now(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "pinned": False,
            "type": 19 if body.get("message_reference") else 0,
            "flags": int(body.get("flags") or 0),
            "components": _numbered(body.get("components") or []),
        }
        if reference := body.get("message_reference"):  # a reply, as Discord returns it
            data["message_reference"] = {"type": reference.get("type", 0)} | {
                k: str(reference[k])
                for k in ("message_id", "channel_id", "guild_id")
                if k in reference
            }
            if (replied := self.known.get(int(reference.get("message_id") or 0))) is not None:
                data["referenced_message"] = _referenced(replied)
        if webhook_id is not None:
            data["webhook_id"] = webhook_id
            data["application_id"] = str(self.app_id)
        self._count(data)
        self.known[message_id] = data
        self.messages[message_id] = data
        self.contents[message_id] = [data["content"]]
        return data  # type: ignore[return-value]

    def _edit_message(self, message_id: int, body: dict[str, Any]) -> MessagePayload | None:
        data = self.messages.get(message_id)
        if data is None or message_id in self._gone:
            return None
        if "content" in body:
            data["content"] = body["content"] or ""
            self.contents[message_id].append(data["content"])
        if "components" in body:  # [] (or null) takes them all away
            data["components"] = _numbered(body["components"] or [])
        data["edited_timestamp"] = _now()
        return data  # type: ignore[return-value]

    # REST

    @staticmethod
    def _error(status: int, code: int, message: str) -> web.Response:
        return _json({"message": message, "code": code}, status=status)

    @staticmethod
    def _invalid(name: str, code: str, message: str) -> web.Response:
        errors = {name: {"_errors": [{"code": code, "message": message}]}}
        return _json({"message": "Invalid Form Body", "code": 50035, "errors": errors}, status=400)

    @staticmethod
    def _invalid_at(fault: _Fault) -> web.Response:
        """50035 for a fault deep in the body: `errors` nests one object per step of its path
        (`{"components": {"0": {"components": {"5": {"_errors": [...]}}}}}`), as Discord does."""
        path, code, message = fault
        errors: dict[str, Any] = {"_errors": [{"code": code, "message": message}]}
        for step in reversed(path):
            errors = {str(step): errors}
        return _json({"message": "Invalid Form Body", "code": 50035, "errors": errors}, status=400)

    @staticmethod
    def _rate_limited(retry_after_s: float, scope: str) -> web.Response:
        # What Discord sends with a 429: a JSON body and rate-limit headers; `Via` tells
        # discord.py the 429 came from the API rather than from Cloudflare.
        headers = {"Retry-After": str(max(1, round(retry_after_s))), "Via": "1.1 google"}
        if scope == "global":  # not tied to a route's bucket, so no bucket headers
            headers |= {"X-RateLimit-Global": "true", "X-RateLimit-Scope": "global"}
        else:
            headers |= {
                "X-RateLimit-Limit": "5",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": f"{time.time() + retry_after_s:.3f}",
                "X-RateLimit-Reset-After": f"{retry_after_s:.3f}",
                "X-RateLimit-Bucket": "fakebucket",
                "X-RateLimit-Scope": scope,
            }
        body = {
            "message": "You are being rate limited.",
            "retry_after": retry_after_s,
            "global": scope == "global",
        }
        return _json(body, status=429, headers=headers)

    def _injected(self, method: str, path: str) -> web.Response | None:
        for failure in self._failures:
            if failure.method == method and failure.times > 0 and failure.pattern.search(path):
                failure.times -= 1
                if failure.status == 429:
                    return self._rate_limited(failure.retry_after_s, failure.scope)
                if failure.status == 404:
                    return self._error(404, 10008, "Unknown Message")
                if failure.status == 403:
                    return self._error(403, 50013, "Missing Permissions")
                return self._error(failure.status, 0, "Injected failure")
        return None

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        body: Any = None
        if request.can_read_body:
            raw = await request.read()
            body = json.loads(raw) if raw else None
        self.requests.append(Recorded(request.method, path, body, dict(request.query)))
        response = self._injected(request.method, path) or await self._route(
            request.method, path, body or {}, request.query
        )
        await self._notify()
        if response is None:
            return self._error(404, 0, f"fake Discord has no route {request.method} {path}")
        return response

    async def _route(
        self, method: str, path: str, body: Any, query: Any
    ) -> web.StreamResponse | None:
        parts = path.strip("/").split("/")
        content = body.get("content") if isinstance(body, dict) else None
        if isinstance(content, str) and len(content) > MAX_CONTENT_CHARS:
            return self._invalid(
                "content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length."
            )
        ok = _json
        if (method, path) == ("GET", "/users/@me"):
            return ok(self._bot_user())
        if (method, path) == ("GET", "/oauth2/applications/@me"):
            return ok(self._application())
        if (method, path) == ("GET", "/gateway"):
            return ok({"url": self.gateway_url})
        if (method, path) == ("GET", "/gateway/bot"):
            limit = {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
            return ok({"url": self.gateway_url, "shards": 1, "session_start_limit": limit})
        if method == "PUT" and parts[0] == "applications" and parts[-1] == "commands":
            scope = parts[3] if len(parts) == 5 else "global"
            self.commands[scope] = [
                cmd | {"id": str(snowflake()), "application_id": str(self.app_id), "version": "1"}
                for cmd in (body or [])
            ]
            return ok(self.commands[scope])
        if parts[0] == "channels":
            return await self._channels(method, parts, body, query)
        if parts[0] == "interactions" and method == "POST" and len(parts) == 4:
            return self._interaction_callback(parts[2], body, query)
        if parts[0] == "webhooks":
            return self._webhooks(method, parts, body)
        return None

    def _application(self) -> dict[str, Any]:
        return {
            "id": str(self.app_id),
            "name": "threadbot",
            "description": "",
            "icon": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "owner": user_payload(1, "owner"),
            "verify_key": "0" * 64,
            "flags": 1 << 19 if self.message_content_enabled else 0,
            "interactions_endpoint_url": None,
        }

    async def _channels(
        self, method: str, parts: list[str], body: dict[str, Any], query: Any
    ) -> web.StreamResponse | None:
        channel_id = parts[1]
        if method == "GET" and not self._knows_channel(int(channel_id)):
            return self._error(404, 10003, "Unknown Channel")
        if len(parts) == 2 and method == "GET":
            found = self._channel(int(channel_id))
            return _json(found) if found else self._error(404, 10003, "Unknown Channel")
        if len(parts) == 3 and parts[2] == "messages" and method == "GET":
            return self._history(channel_id, query)
        if parts[2:3] == ["messages"] and parts[4:] == ["threads"] and method == "POST":
            return await self._start_thread(channel_id, int(parts[3]), body)
        if len(parts) == 3 and parts[2] == "typing" and method == "POST":
            return web.Response(status=204)
        if len(parts) == 3 and parts[2] == "messages" and method == "POST":
            if int(channel_id) in self._forbidden:
                return self._error(403, 50013, "Missing Permissions")
            if fault := _components_fault(body):
                return self._invalid_at(fault)
            return _json(self._new_message(channel_id, body))
        if len(parts) == 4 and parts[2] == "messages":
            message_id = int(parts[3])
            if method == "GET":
                found = self.known.get(message_id)
                if found is None or found["channel_id"] != channel_id:
                    return self._error(404, 10008, "Unknown Message")
                return _json(_rest_view(found))
            if method == "PATCH":
                if fault := _components_fault(body):
                    return self._invalid_at(fault)
                edited = self._edit_message(message_id, body)
                if edited is None:
                    return self._error(404, 10008, "Unknown Message")
                return _json(edited)
            if method == "DELETE":
                self.delete_message(message_id)
                return web.Response(status=204)
        return None

    def _history(self, channel_id: str, query: Any) -> web.Response:
        """`limit` (1-100, 50) messages before (default: the newest), after or around an id; the
        newest first whichever is asked, as Discord answers (discord.py relies on it to page)."""
        values: dict[str, int] = {}
        for name in ("limit", "around", "before", "after"):
            if name in query:
                try:
                    values[name] = int(query[name])
                except ValueError:
                    return self._invalid(
                        name, "NUMBER_TYPE_COERCE", f'Value "{query[name]}" is not int.'
                    )
        limit = values.get("limit", 50)
        if not 1 <= limit <= 100:
            side = ("MIN", "greater", 1) if limit < 1 else ("MAX", "less", 100)
            message = f"int value should be {side[1]} than or equal to {side[2]}."
            return self._invalid("limit", f"NUMBER_TYPE_{side[0]}", message)
        ids = sorted(i for i, m in self.known.items() if m["channel_id"] == channel_id)
        if "around" in values:  # the message itself and the ones on either side of it
            newer = [i for i in ids if i > values["around"]][: limit // 2]
            chosen = [i for i in ids if i <= values["around"]][-(limit - limit // 2) :] + newer
        elif "before" in values or "after" not in values:
            chosen = [i for i in ids if i < values.get("before", 1 << 64)][-limit:]
        else:  # the ones right after it, still newest first
            chosen = [i for i in ids if i > values["after"]][:limit]
        return _json([_rest_view(self.known[i]) for i in reversed(chosen)])

    async def _start_thread(
        self, channel_id: str, message_id: int, body: dict[str, Any]
    ) -> web.Response:
        """A public thread from a message: id = the message's, owned by the bot (its member)."""
        if int(channel_id) in self.threads:
            return self._error(400, 50024, "Cannot execute action on this channel type")
        message = self.known.get(message_id)
        if message is None or message["channel_id"] != channel_id:
            return self._error(404, 10008, "Unknown Message")
        if message_id in self.threads:
            return self._error(400, 160004, "A thread has already been created for this message")
        name = body.get("name") or ""
        if not 1 <= len(name) <= 100:
            return self._invalid(
                "name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."
            )
        duration = body.get("auto_archive_duration") or 1440
        if duration not in ARCHIVE_DURATIONS:
            return self._invalid(
                "auto_archive_duration",
                "BASE_TYPE_CHOICES",
                f"Value must be one of {{{', '.join(map(str, ARCHIVE_DURATIONS))}}}.",
            )
        member = {
            "id": str(message_id),
            "user_id": str(self.bot_id),
            "join_timestamp": _now(),
            "flags": 1,
        }
        thread = self._new_thread(
            message_id,
            channel_id,
            self.bot_id,
            name,
            auto_archive_duration=duration,
            rate_limit_per_user=body.get("rate_limit_per_user") or 0,
            member=member,
        )
        self.threads_created.append(thread)
        # Discord fires THREAD_CREATE (to the creator too) and MESSAGE_UPDATE for the message.
        message["thread"] = thread
        message["flags"] = int(message.get("flags") or 0) | HAS_THREAD
        await self.dispatch("THREAD_CREATE", thread | {"newly_created": True})
        await self.dispatch("MESSAGE_UPDATE", message | {"guild_id": str(self.guild_id)})
        return _json(thread, status=201)

    async def _download(self, request: web.Request) -> web.Response:
        """The CDN: a file for a signed URL (no Authorization needed), else 404 as Discord's."""
        self.downloads.append((request.path, request.headers.get("Authorization")))
        await self._notify()
        found = self._files.get(int(request.match_info["id"]))
        if found is None or (found[0], found[1], found[4]) != (
            request.match_info["channel"],
            request.match_info["filename"],
            request.query.get("hm"),
        ):
            return web.Response(status=404, text="This content is no longer available.")
        return web.Response(body=found[2], headers={"Content-Type": found[3]})

    def _interaction_callback(self, token: str, body: Any, query: Any) -> web.Response:
        """The first (and only) response to an interaction, recorded in `callbacks`."""
        found = self._interactions.get(token)
        now = time.monotonic()
        after_s = None
        if found is not None and found.dispatched_at is not None:
            after_s = now - found.dispatched_at
        body = body if isinstance(body, dict) else {}
        kind = body.get("type")
        record = InteractionCallback(
            token, kind, body, found.type if found else None, after_s=after_s
        )
        self.callbacks.append(record)
        response = self._respond_to(token, found, body, after_s, query)
        record.status = response.status
        if response.status >= 400:
            record.code = json.loads(response.body)["code"]  # type: ignore[arg-type]
        return response

    def _respond_to(
        self,
        token: str,
        found: _Interaction | None,
        body: dict[str, Any],
        after_s: float | None,
        query: Any,
    ) -> web.Response:
        deadline = self.interaction_deadline_s
        late = deadline is not None and after_s is not None and after_s > deadline
        if found is None or late:  # what Discord answers past the deadline too
            return self._error(404, 10062, "Unknown interaction")
        if found.answered is not None:
            return self._error(400, 40060, "Interaction has already been acknowledged.")
        kind, data = body.get("type"), body.get("data") or {}
        kinds = (CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE, MODAL)
        if kind not in kinds:
            return self._invalid(
                "type", "BASE_TYPE_CHOICES", "Value must be one of {1, 4, 5, 6, 7, 8, 9, 10, 12}."
            )
        # 6 and 7 answer a click (or a modal opened by one); a modal cannot answer a modal.
        # (Discord refuses these with 400; this code and message are the fake's wording.)
        if (kind in (DEFERRED_UPDATE, UPDATE_MESSAGE) and found.message_id is None) or (
            kind == MODAL and found.type == 5
        ):
            return self._invalid(
                "type",
                "INTERACTION_RESPONSE_TYPE_INVALID",
                "Interaction response type is not valid for this interaction",
            )
        if kind in (CHANNEL_MESSAGE, UPDATE_MESSAGE):
            content = data.get("content")
            if isinstance(content, str) and len(content) > MAX_CONTENT_CHARS:
                return self._invalid_at(
                    (
                        ["data", "content"],
                        "BASE_TYPE_MAX_LENGTH",
                        "Must be 2000 or fewer in length.",
                    )
                )
            if fault := _components_fault(data, "data"):
                return self._invalid_at(fault)
        if kind == MODAL:
            if fault := _modal_fault(data):
                return self._invalid_at(fault)
        found.answered = kind
        interaction: dict[str, Any] = {"id": found.id, "type": found.type}
        resource: dict[str, Any] = {"type": kind}
        if kind in (CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE):
            # 4: a message now; 5: deferred ("is thinking…"), shown until @original is edited.
            message = self._new_message(str(found.channel_id), data, webhook_id=str(self.app_id))
            self._originals[token] = int(message["id"])
            resource["message"] = message
            interaction |= {
                "response_message_id": message["id"],
                "response_message_loading": kind == DEFERRED_CHANNEL_MESSAGE,
                "response_message_ephemeral": bool(int(data.get("flags") or 0) & EPHEMERAL),
            }
        elif kind == UPDATE_MESSAGE:  # the clicked message, edited in place
            edited = self._edit_message(int(found.message_id or 0), data)
            if edited is None:
                return self._error(404, 10008, "Unknown Message")
            resource["message"] = edited
            interaction |= {"response_message_id": edited["id"], "response_message_loading": False}
        elif kind == MODAL:
            self.modals.append(
                Modal(
                    token,
                    found.user_id,
                    str(data["custom_id"]),
                    str(data["title"]),
                    _numbered(data["components"]),
                    found.channel_id,
                    found.message_id,
                )
            )
        # discord.py asks `?with_response=true` and reads what the response made; else 204.
        if str(query.get("with_response", "")).lower() in ("1", "true"):
            return _json({"interaction": interaction, "resource": resource})
        return web.Response(status=204)

    def _webhooks(
        self, method: str, parts: list[str], body: dict[str, Any]
    ) -> web.StreamResponse | None:
        token = parts[2] if len(parts) > 2 else ""
        if len(parts) == 3 and method == "POST":  # a follow-up (`?wait=true` returns it)
            if fault := _components_fault(body):
                return self._invalid_at(fault)
            found = self._interactions.get(token)
            channel = str(found.channel_id) if found else str(self.channel_id)
            return _json(self._new_message(channel, body, webhook_id=parts[1]))
        if len(parts) == 5 and parts[3] == "messages":
            raw_id = parts[4]
            message_id = self._originals.get(token, 0) if raw_id == "@original" else int(raw_id)
            if method == "PATCH":
                if fault := _components_fault(body):
                    return self._invalid_at(fault)
                edited = self._edit_message(message_id, body)
                if edited is None:
                    return self._error(404, 10008, "Unknown Message")
                return _json(edited)
            if method == "GET":
                found = self.messages.get(message_id)
                return _json(found) if found else self._error(404, 10008, "Unknown")
            if method == "DELETE":
                self.delete_message(message_id)
                return web.Response(status=204)
        return None

    # gateway

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({"op": HELLO, "d": {"heartbeat_interval": 41_250}})
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    break
                payload = json.loads(msg.data)
                op = payload.get("op")
                if op == HEARTBEAT:
                    await ws.send_json({"op": HEARTBEAT_ACK})
                elif op in (IDENTIFY, RESUME):
                    if not await self._identify(ws, payload.get("d") or {}):
                        break
        finally:
            self._sockets = [(s, shard) for s, shard in self._sockets if s is not ws]
        return ws

    async def _identify(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> bool:
        self.identifies.append(data)
        disallowed = PRIVILEGED_INTENTS
        if self.message_content_enabled:
            disallowed &= ~MESSAGE_CONTENT_INTENT
        if int(data.get("intents", 0)) & disallowed:
            # Discord closes with 4014 "Disallowed intent(s)" when a privileged intent is off.
            await ws.close(code=4014, message=b"Disallowed intent(s).")
            return False
        shard = data.get("shard")
        self._sockets.append((ws, shard))
        await self._send(ws, "READY", self._ready_payload(shard))
        if shard is None or (self.guild_id >> 22) % shard[1] == shard[0]:
            await self._send(ws, "GUILD_CREATE", self._guild_payload())
        self._ready.set()
        await self._notify()
        return True


# Components, as Discord checks them. A fault is (path in the body, error code, message); the
# codes and messages are Discord's where its docs or its answers show them.
_Fault = tuple[list[str | int], str, str]


def _length_fault(path: list[str | int], value: Any, low: int, high: int) -> _Fault | None:
    if not isinstance(value, str):
        return path, "BASE_TYPE_STRING", "Could not interpret value as string."
    if not low <= len(value) <= high:
        if low <= 0:
            return path, "BASE_TYPE_MAX_LENGTH", f"Must be {high} or fewer in length."
        return path, "BASE_TYPE_BAD_LENGTH", f"Must be between {low} and {high} in length."
    return None


def _components_fault(body: Any, *prefix: str | int) -> _Fault | None:
    """The first fault of a message body's `components` (legacy layout: up to 5 action rows,
    each of up to 5 buttons or one select), or None."""
    rows = body.get("components") if isinstance(body, dict) else None
    if rows is None:
        return None
    at: list[str | int] = [*prefix, "components"]
    if not isinstance(rows, list):
        return at, "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType"
    if len(rows) > MAX_ROWS:
        return at, "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_ROWS} or fewer in length."
    custom_ids: set[str] = set()
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or row.get("type") != 1:
            return (
                [*at, i, "type"],
                "UNION_TYPE_CHOICES",
                'Value of field "type" must be one of (1,).',
            )
        children = row.get("components")
        if not isinstance(children, list) or not 1 <= len(children) <= MAX_ROW_BUTTONS:
            return (
                [*at, i, "components"],
                "BASE_TYPE_BAD_LENGTH",
                "Must be between 1 and 5 in length.",
            )
        for j, child in enumerate(children):
            where: list[str | int] = [*at, i, "components", j]
            kind = child.get("type") if isinstance(child, dict) else None
            if kind in SELECT_TYPES and len(children) == 1:
                fault = _length_fault(
                    [*where, "custom_id"], child.get("custom_id"), 1, MAX_CUSTOM_ID
                )
            elif kind in SELECT_TYPES:
                return (
                    where,
                    "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                    "The specified component exceeds the maximum width",
                )
            elif kind == 2:
                fault = _button_fault(child, where)
            else:
                return (
                    [*where, "type"],
                    "UNION_TYPE_CHOICES",
                    'Value of field "type" must be one of (2, 3, 5, 6, 7, 8).',
                )
            if fault:
                return fault
            custom_id = child.get("custom_id")
            if custom_id is not None:
                if custom_id in custom_ids:
                    return (
                        [*where, "custom_id"],
                        "COMPONENT_CUSTOM_ID_DUPLICATED",
                        "Component custom id cannot be duplicated",
                    )
                custom_ids.add(custom_id)
    return None


def _button_fault(button: dict[str, Any], at: list[str | int]) -> _Fault | None:
    style = button.get("style")
    if style not in BUTTON_STYLES:
        return [*at, "style"], "BASE_TYPE_CHOICES", "Value must be one of {1, 2, 3, 4, 5, 6}."
    if button.get("label") is not None:
        if fault := _length_fault([*at, "label"], button["label"], 0, MAX_BUTTON_LABEL):
            return fault
    emoji = button.get("emoji")
    if emoji is not None and not (
        isinstance(emoji, dict) and (emoji.get("id") or emoji.get("name"))
    ):
        return [*at, "emoji"], "COMPONENT_INVALID_EMOJI", "Invalid emoji"
    if style == LINK:
        if button.get("url") is None:
            return [*at, "url"], "BASE_TYPE_REQUIRED", "This field is required"
        # A link sends no interaction, so has no id (Discord refuses it; the code and
        # message here are the fake's wording).
        if button.get("custom_id") is not None:
            return (
                [*at, "custom_id"],
                "COMPONENT_INVALID_FIELD",
                "A link button cannot have a custom id",
            )
        return _length_fault([*at, "url"], button["url"], 1, MAX_LINK_URL)
    if style == PREMIUM:
        if button.get("sku_id") is None:
            return [*at, "sku_id"], "BASE_TYPE_REQUIRED", "This field is required"
        return None
    if button.get("custom_id") is None:
        return [*at, "custom_id"], "BASE_TYPE_REQUIRED", "A custom id is required"
    return _length_fault([*at, "custom_id"], button["custom_id"], 1, MAX_CUSTOM_ID)


def _modal_fault(data: Any) -> _Fault | None:
    """The first fault of a MODAL response's `data`: custom_id, title, and 1-5 components, each
    an action row holding one text input (the older layout) or a Label (type 18) holding one, or
    a Text Display (type 10)."""
    if not isinstance(data, dict):
        return ["data"], "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType"
    for key, high in (("custom_id", MAX_CUSTOM_ID), ("title", MAX_MODAL_TITLE)):
        if data.get(key) is None:
            return ["data", key], "BASE_TYPE_REQUIRED", "This field is required"
        if fault := _length_fault(["data", key], data[key], 1, high):
            return fault
    parts = data.get("components")
    at: list[str | int] = ["data", "components"]
    if not isinstance(parts, list) or not 1 <= len(parts) <= MAX_MODAL_COMPONENTS:
        return at, "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length."
    custom_ids: set[str] = set()
    for i, part in enumerate(parts):
        kind = part.get("type") if isinstance(part, dict) else None
        where: list[str | int] = [*at, i]
        if kind == 1:
            inputs = part.get("components")
            if not isinstance(inputs, list) or len(inputs) != 1:
                return (
                    [*where, "components"],
                    "BASE_TYPE_BAD_LENGTH",
                    "Must be between 1 and 1 in length.",
                )
            text_input, input_at, labelled = inputs[0], [*where, "components", 0], False
        elif kind == 18:
            if fault := _length_fault([*where, "label"], part.get("label"), 1, MAX_INPUT_LABEL):
                return fault
            if part.get("description") is not None:
                description = part["description"]
                if fault := _length_fault(
                    [*where, "description"], description, 0, MAX_LABEL_DESCRIPTION
                ):
                    return fault
            text_input, input_at, labelled = part.get("component"), [*where, "component"], True
        elif kind == 10:
            if fault := _length_fault(
                [*where, "content"], part.get("content"), 1, MAX_INPUT_LENGTH
            ):
                return fault
            continue
        else:
            return (
                [*where, "type"],
                "UNION_TYPE_CHOICES",
                'Value of field "type" must be one of (1, 10, 18).',
            )
        if fault := _text_input_fault(text_input, input_at, labelled=labelled):
            return fault
        if text_input["custom_id"] in custom_ids:
            return (
                [*input_at, "custom_id"],
                "COMPONENT_CUSTOM_ID_DUPLICATED",
                "Component custom id cannot be duplicated",
            )
        custom_ids.add(text_input["custom_id"])
    return None


def _text_input_fault(text_input: Any, at: list[str | int], *, labelled: bool) -> _Fault | None:
    """A text input (type 4): its label is required in an action row; in a Label it has none."""
    if not isinstance(text_input, dict) or text_input.get("type") != 4:
        return [*at, "type"], "UNION_TYPE_CHOICES", 'Value of field "type" must be one of (4,).'
    if fault := _length_fault([*at, "custom_id"], text_input.get("custom_id"), 1, MAX_CUSTOM_ID):
        return fault
    if text_input.get("style") not in (1, 2):
        return [*at, "style"], "BASE_TYPE_CHOICES", "Value must be one of {1, 2}."
    if not labelled or text_input.get("label") is not None:
        if fault := _length_fault([*at, "label"], text_input.get("label"), 1, MAX_INPUT_LABEL):
            return fault
    for key, low in (("min_length", 0), ("max_length", 1)):
        value = text_input.get(key)
        if value is None:
            continue
        if not isinstance(value, int) or value > MAX_INPUT_LENGTH:
            return (
                [*at, key],
                "NUMBER_TYPE_MAX",
                f"int value should be less than or equal to {MAX_INPUT_LENGTH}.",
            )
        if value < low:
            return (
                [*at, key],
                "NUMBER_TYPE_MIN",
                f"int value should be greater than or equal to {low}.",
            )
    for key, high in (("value", MAX_INPUT_LENGTH), ("placeholder", MAX_PLACEHOLDER)):
        if text_input.get(key) is not None:
            if fault := _length_fault([*at, key], text_input[key], 0, high):
                return fault
    return None


def _numbered(components: list[Any]) -> list[Any]:
    """A copy with the `id` Discord gives each component that has none: numbered in order,
    skipping the ids already taken."""
    out = json.loads(json.dumps(components))
    taken: set[int] = set()

    def walk(items: list[Any]) -> Iterable[dict[str, Any]]:
        for item in items:
            if isinstance(item, dict):
                yield item
                yield from walk(item.get("components") or [])
                if isinstance(item.get("component"), dict):
                    yield from walk([item["component"]])

    for item in walk(out):
        if isinstance(item.get("id"), int) and item["id"] > 0:
            taken.add(item["id"])
    numbers = (n for n in itertools.count(1) if n not in taken)
    for item in walk(out):
        if not (isinstance(item.get("id"), int) and item["id"] > 0):
            item["id"] = next(numbers)
    return out


def _submitted(part: dict[str, Any], given: dict[str, str]) -> dict[str, Any]:
    """One component of a modal as its submission carries it: the text input's custom_id and the
    typed value, in the same wrapping (action row or Label) as the modal shown. Takes the value
    out of `given`."""
    if part["type"] == 10:
        return {"type": 10, "id": part["id"], "content": part.get("content", "")}
    text_input = part["components"][0] if part["type"] == 1 else part["component"]
    value = given.pop(text_input["custom_id"], "")
    if not value and text_input.get("required", True):
        raise ValueError(f"text input {text_input['custom_id']!r} is required")
    low, high = text_input.get("min_length") or 0, text_input.get("max_length") or MAX_INPUT_LENGTH
    if value and not low <= len(value) <= high:
        raise ValueError(f"text input {text_input['custom_id']!r} takes {low}-{high} characters")
    submitted = {
        "type": 4,
        "id": text_input["id"],
        "custom_id": text_input["custom_id"],
        "value": value,
    }
    if part["type"] == 1:
        return {"type": 1, "id": part["id"], "components": [submitted]}
    return {"type": 18, "id": part["id"], "component": submitted}


async def close_client(client: Any, connecting: asyncio.Task[Any]) -> None:
    """Close a discord.py client connected to the fake, and raise what its connection task
    met (a payload the client could not parse); then let the event tasks discord.py scheduled
    while closing run, before the test's loop goes away."""
    await client.close()
    [ended] = await asyncio.gather(connecting, return_exceptions=True)
    if isinstance(ended, Exception):
        raise ended
    events = [t for t in asyncio.all_tasks() if t.get_name().startswith("discord.py:")]
    await asyncio.gather(*events, return_exceptions=True)
