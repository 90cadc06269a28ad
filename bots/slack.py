"""Slack adapter: answers mentions, thread replies and DMs, streaming each answer into a thread."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.app.async_server import AsyncSlackAppServer
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackClientError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack_mrkdwn import escape
from bots.slack_reply import (
    NativeTarget,
    SlackSink,
    stream_natively,
    translated,
)
from core.errors import RateLimited, ThreadbotError
from core.sessions import slack_session
from core.streaming import StreamingEditor, close_stream
from core.tasks import SessionTasks

if TYPE_CHECKING:
    from core.pipeline import Pipeline
    from core.settings import Settings

log = logging.getLogger(__name__)

PLACEHOLDER = "…"
EVENTS_PATH = "/slack/events"
RESET_SHORTCUT = "reset_conversation"
RESET_WORDS = frozenset({"reset", "reset conversation", "forget", "forget this"})
# Subtypes that are still a person writing; edits, deletions, joins and bots are not.
HUMAN_SUBTYPES = frozenset({None, "thread_broadcast", "file_share"})
SLACK_TIMEOUT_S = 2.0  # work done before an ack must fit Slack's 3 s window
SHUTDOWN_GRACE_S = 10.0
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")


@dataclass(frozen=True)
class SlackTurn:
    """One message the bot should act on, with where its conversation and its reply live."""

    team: str
    channel: str
    user: str
    text: str
    ts: str
    thread_ts: str | None  # where the reply goes; None for the top level of a DM
    session_id: str
    is_dm: bool
    mentioned: bool

    @property
    def is_reset(self) -> bool:
        return self.text.lower().strip(" .!") in RESET_WORDS

    @property
    def needs_thread_check(self) -> bool:
        """An unaddressed thread reply: answered only where the bot already takes part."""
        return not self.mentioned and not self.is_dm


def turn_from_slack(body: dict[str, Any], bot_user_id: str) -> SlackTurn | None:
    """Translate an Events API envelope into a turn, or None for what the bot must ignore.

    Ignored: bots (itself included), edits, deletions and other non-human subtypes, top-level
    channel messages without a mention, and channel `message` events that mention the bot (the
    `app_mention` event for the same message is the one answered).
    """
    event = body.get("event") or {}
    kind = event.get("type")
    user = event.get("user")
    if kind not in ("app_mention", "message") or not user or user == bot_user_id:
        return None
    if (
        event.get("bot_id")
        or event.get("bot_profile")
        or event.get("subtype") not in HUMAN_SUBTYPES
    ):
        return None
    team = str(body.get("team_id") or event.get("team") or "")
    channel = str(event.get("channel") or "")
    ts = str(event.get("ts") or "")
    raw = str(event.get("text") or "")
    mentioned = bool(bot_user_id) and any(m == bot_user_id for m in _MENTION.findall(raw))
    text = _MENTION.sub(lambda m: "" if m.group(1) == bot_user_id else m.group(0), raw).strip()
    if not team or not channel or not ts or not text:
        return None
    thread_ts = event.get("thread_ts")
    is_dm = event.get("channel_type") == "im" or (kind == "message" and channel.startswith("D"))
    if kind == "app_mention":
        reply_ts = thread_ts or ts  # a mention at the top opens a thread under itself
    elif is_dm:
        reply_ts = thread_ts  # a top-level DM is one conversation, answered at the top
    elif thread_ts and thread_ts != ts and not mentioned:
        reply_ts = thread_ts
    else:
        return None
    return SlackTurn(
        team=team,
        channel=channel,
        user=str(user),
        text=text,
        ts=ts,
        thread_ts=reply_ts,
        session_id=slack_session(team, channel, reply_ts),
        is_dm=is_dm,
        mentioned=mentioned,
    )


class SlackBot:
    """The bolt app and the answers it has in flight (so shutdown and tests can wait for them)."""

    def __init__(self, settings: Settings, pipeline: Pipeline, client: AsyncWebClient) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.client = client
        secret = settings.slack_signing_secret
        self.app = AsyncApp(
            client=client,
            signing_secret=secret.get_secret_value() if secret is not None else "",
            # Listeners only decide and spawn, so running them before the response is sent
            # keeps the ack fast and makes the spawned answer the only thing that outlives it.
            process_before_response=True,
            logger=log,
        )
        self._tasks = SessionTasks()
        self.app.event("app_mention")(self._on_event)
        self.app.event("message")(self._on_event)
        self.app.command("/reset")(self._on_reset_command)
        self.app.shortcut(RESET_SHORTCUT)(self._on_reset_shortcut)

    def http_app(self) -> web.Application:
        """HTTP mode: bolt's aiohttp server app, with signature checks, at /slack/events."""
        if self.settings.slack_signing_secret is None:
            # Without it every request would pass a check made with an empty key.
            raise ValueError("HTTP mode needs SLACK_SIGNING_SECRET")
        return AsyncSlackAppServer(
            port=self.settings.slack_port, path=EVENTS_PATH, app=self.app
        ).web_app

    async def aclose(self, *, grace_s: float) -> None:
        """Let answers in flight finish for `grace_s`, then stop the rest (saving nothing)."""
        await self._tasks.aclose(grace_s=grace_s)

    async def drain(self) -> None:
        """Wait for every answer in flight (tests, and a clean shutdown)."""
        await self._tasks.drain()

    # -- events ------------------------------------------------------------------------------

    async def _on_event(
        self, body: dict[str, Any], context: AsyncBoltContext, request: AsyncBoltRequest
    ) -> None:
        turn = turn_from_slack(body, context.bot_user_id or "")
        if turn is None:
            return
        retried = bool(request.headers.get("x-slack-retry-num"))
        me = frozenset(i for i in (context.bot_user_id, context.bot_id) if i)
        event_id = str(body.get("event_id", ""))
        self._tasks.submit(turn.session_id, self._handle_turn(turn, event_id, retried, me))

    async def _handle_turn(
        self, turn: SlackTurn, event_id: str, retried: bool, me: frozenset[str]
    ) -> None:
        """The one error boundary for an event: log it, tell the user briefly, never crash."""
        # Decided before the boundary: nobody is apologised to before the bot chose to answer.
        if turn.needs_thread_check and not await self._bot_in_thread(turn, me):
            return
        shown: list[str] = []  # the ts of the messages this answer has shown so far
        try:
            if not await self._first_delivery(event_id, retried):
                log.info("event %s delivered again; already answered", event_id)
                return
            if turn.is_reset and (turn.mentioned or turn.is_dm):
                await self._reset_session(turn.team, turn.channel, turn.user, turn.thread_ts)
            else:
                await self._answer(turn, shown)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("answering %s failed", turn.session_id)
            await self._apologize(turn, shown)

    async def _apologize(self, turn: SlackTurn, shown: list[str]) -> None:
        """Replace the placeholder (or say it privately) with a short apology; never raises."""
        text = f"⚠️ {ThreadbotError.user_message}"
        if shown:
            try:
                await self.client.chat_update(channel=turn.channel, ts=shown[0], text=text)
                return
            except Exception:
                log.warning("could not edit the reply in %s", turn.channel, exc_info=True)
        await self._ephemeral(turn.channel, turn.user, turn.thread_ts, text)

    async def _first_delivery(self, event_id: str, retried: bool) -> bool:
        if not event_id:
            return not retried
        try:
            return await self.pipeline.first_delivery("slack:" + event_id)
        except ThreadbotError:
            # The store is down: a retry was most likely answered already; a first delivery is
            # answered and will show the store's error itself.
            return not retried

    async def _bot_in_thread(self, turn: SlackTurn, me: frozenset[str]) -> bool:
        """Has the bot a conversation here (history, or a reply of its own in the thread)?

        Never raises: when neither can be read, the bot stays quiet rather than tell someone in
        a thread it may have no part in that something went wrong.
        """
        try:
            if await self.pipeline.has_history(turn.session_id):
                return True
        except ThreadbotError:
            pass  # the store is down: the thread itself says whether the bot is in it
        try:
            response = await self.client.conversations_replies(
                channel=turn.channel, ts=turn.thread_ts or turn.ts, limit=200
            )
        except (SlackClientError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("not answering in %s: cannot read the thread (%s)", turn.session_id, exc)
            return False
        messages = response.get("messages") or []
        return any(m.get("user") in me or m.get("bot_id") in me for m in messages)

    async def _answer(self, turn: SlackTurn, shown: list[str]) -> None:
        answer = self.pipeline.answer(turn.session_id, turn.text)
        try:
            await self._stream_reply(turn, shown, answer)
        finally:
            # However showing ended (done, deleted, failed), close the answer: that cancels the
            # model and releases the session's lock, which a suspended generator would keep.
            await close_stream(answer)

    async def _stream_reply(
        self, turn: SlackTurn, shown: list[str], chunks: AsyncIterator[str]
    ) -> None:
        interval_s = self.settings.slack_edit_interval_ms / 1000
        if self.settings.slack_streaming == "native" and turn.thread_ts:
            target = NativeTarget(turn.channel, turn.thread_ts, turn.team, turn.user)
            rest = await stream_natively(self.client, target, chunks, interval_s=interval_s)
            if rest is None:
                return
            chunks = rest  # Slack refused native streaming: continue by editing
        placeholder = await self._post_placeholder(turn)
        shown.append(placeholder)
        sink = SlackSink(self.client, turn.channel, turn.thread_ts, placeholder_ts=placeholder)
        editor = StreamingEditor(sink, interval_s=interval_s)
        reply = await editor.run(chunks)
        if reply.gone:
            await self._ephemeral(
                turn.channel,
                turn.user,
                turn.thread_ts,
                "I stopped answering because the answer message was deleted.",
            )
        elif reply.posts == 0:
            await sink.edit(placeholder, "I have no answer to that. Please rephrase the question.")

    async def _post_placeholder(self, turn: SlackTurn) -> str:
        """Post "…" at once, so the user sees the bot is on it; waits out a rate limit or two."""
        for _ in range(3):
            try:
                response = await translated(
                    self.client.chat_postMessage(
                        channel=turn.channel, thread_ts=turn.thread_ts, text=PLACEHOLDER
                    )
                )
                return str(response["ts"])
            except RateLimited as exc:
                await asyncio.sleep(exc.retry_after_s)
        raise RuntimeError("Slack kept rate limiting the placeholder")

    # -- reset -------------------------------------------------------------------------------

    async def _reset_session(
        self, team: str, channel: str, user: str, thread_ts: str | None
    ) -> None:
        session_id = slack_session(team, channel, thread_ts)
        try:
            forgot = await self.pipeline.reset(session_id)
        except ThreadbotError as exc:
            text = exc.user_message
        else:
            where = "this thread" if thread_ts else "this DM"
            text = (
                f"Forgot our conversation in {where}."
                if forgot
                else f"Nothing to forget in {where}."
            )
        await self._ephemeral(channel, user, thread_ts, text)

    async def _on_reset_command(self, ack: Any, command: dict[str, Any]) -> None:
        """/reset: slash commands carry no thread, so it forgets the whole DM or channel."""
        is_dm = command.get("channel_name") == "directmessage" or str(
            command.get("channel_id", "")
        ).startswith("D")
        prefix = slack_session(str(command["team_id"]), str(command["channel_id"]))
        try:
            count = await asyncio.wait_for(self.pipeline.reset_many(prefix), SLACK_TIMEOUT_S)
        except ThreadbotError as exc:
            await ack(text=exc.user_message)
            return
        except TimeoutError:
            await ack(text="My conversation store is slow right now; please try /reset again.")
            return
        where = "this DM" if is_dm else "this channel"
        plural = "" if count == 1 else "s"
        await ack(text=f"Forgot {count} conversation{plural} in {where}.")

    async def _on_reset_shortcut(self, ack: Any, shortcut: dict[str, Any]) -> None:
        """The "Reset conversation" message shortcut: forgets the thread of that message."""
        await ack()
        message = shortcut.get("message") or {}
        channel = str((shortcut.get("channel") or {}).get("id", ""))
        team = str((shortcut.get("team") or {}).get("id", ""))
        user = str((shortcut.get("user") or {}).get("id", ""))
        thread_ts = message.get("thread_ts") or (
            None if channel.startswith("D") else message.get("ts")
        )
        session_id = slack_session(team, channel, thread_ts)
        self._tasks.submit(session_id, self._reset_boundary(team, channel, user, thread_ts))

    async def _reset_boundary(
        self, team: str, channel: str, user: str, thread_ts: str | None
    ) -> None:
        try:
            await self._reset_session(team, channel, user, thread_ts)
        except Exception:
            log.exception("reset in %s failed", channel)

    async def _ephemeral(self, channel: str, user: str, thread_ts: str | None, text: str) -> None:
        try:
            await self.client.chat_postEphemeral(
                channel=channel, user=user, thread_ts=thread_ts, text=escape(text)
            )
        except Exception:  # the last word of a failed event: log it, never raise from here
            log.exception("could not tell %s in %s: %s", user, channel, text)


def make_client(settings: Settings) -> AsyncWebClient:
    """The Web API client, pointed at SLACK_API_URL, without slack_sdk's rate-limit retries.

    slack_sdk can sleep through a 429 itself; the streaming editor must see the 429 instead, so
    it can coalesce edits rather than queue them.
    """
    token = settings.slack_bot_token
    client = AsyncWebClient(
        token=token.get_secret_value() if token is not None else None,
        base_url=settings.slack_api_url,
    )
    client.retry_handlers = [
        h for h in client.retry_handlers if not isinstance(h, AsyncRateLimitErrorRetryHandler)
    ]
    return client


def build_slack_app(
    settings: Settings, pipeline: Pipeline, *, client: AsyncWebClient | None = None
) -> SlackBot:
    """The bot with its handlers registered; `bot.app` is the bolt `AsyncApp`."""
    return SlackBot(settings, pipeline, client if client is not None else make_client(settings))


def missing_settings(settings: Settings) -> list[str]:
    """What `threadbot slack` still needs, named as the user sets it in .env."""
    missing = []
    if settings.slack_bot_token is None:
        missing.append("SLACK_BOT_TOKEN (xoxb-…)")
    elif not settings.slack_bot_token.get_secret_value().startswith("xoxb-"):
        missing.append("SLACK_BOT_TOKEN must be the bot token (xoxb-…)")
    app_token = settings.slack_app_token
    if app_token is not None and not app_token.get_secret_value().startswith("xapp-"):
        missing.append("SLACK_APP_TOKEN must be an app-level token (xapp-…)")
    if app_token is None and settings.slack_signing_secret is None:
        missing.append("SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP mode)")
    return missing


async def serve(settings: Settings) -> None:
    """Run until cancelled: Socket Mode with an app token, else HTTP on SLACK_PORT."""
    from core.pipeline import Pipeline

    pipeline = await Pipeline.create(settings)
    bot = build_slack_app(settings, pipeline)
    runner: web.AppRunner | None = None
    try:
        if settings.slack_app_token is not None:
            from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

            log.info("Slack bot starting in Socket Mode")
            handler = AsyncSocketModeHandler(bot.app, settings.slack_app_token.get_secret_value())
            try:
                await handler.start_async()
            finally:
                await handler.close_async()
        else:
            runner = web.AppRunner(bot.http_app(), access_log=None)
            await runner.setup()
            await web.TCPSite(runner, port=settings.slack_port).start()
            log.info("Slack bot listening on :%d%s", settings.slack_port, EVENTS_PATH)
            await asyncio.Event().wait()
    finally:
        if runner is not None:
            await runner.cleanup()
        await bot.aclose(grace_s=SHUTDOWN_GRACE_S)
        await pipeline.aclose()


def main(settings: Settings | None = None) -> int:
    """`threadbot slack`; the exit code is 2, with a clear log line, when a token is missing."""
    from core.settings import Settings

    settings = settings if settings is not None else Settings()
    missing = missing_settings(settings)
    if missing:
        log.error(
            "threadbot slack cannot start: %s. Set it in .env (see docs/slack.md).",
            "; ".join(missing),
        )
        return 2
    asyncio.run(serve(settings))
    return 0
