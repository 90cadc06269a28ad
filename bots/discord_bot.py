"""Discord adapter: answers in channels, threads and DMs, streaming each answer into one message."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncGenerator, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from bots.discord_endpoint import use_discord_api
from bots.discord_reply import (
    NO_MENTIONS,
    DiscordSink,
    DiscordSinkBase,
    Editable,
    InteractionSink,
    NoAccess,
    rate_limit_trace,
)
from core.errors import SinkError, ThreadbotError
from core.sessions import discord_session
from core.streaming import Reply, StreamingEditor
from core.tasks import SessionTasks

if TYPE_CHECKING:
    from core.pipeline import Pipeline
    from core.settings import Settings

log = logging.getLogger(__name__)

# discord.py raises RateLimited rather than sleeping on waits longer than this (30 s is its floor).
MAX_RATELIMIT_WAIT_S = 30.0
SHUTDOWN_GRACE_S = 10.0  # answers in flight may finish this long after the bot is stopped
INVITE_SCOPES = ("bot", "applications.commands")
INVITE_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    read_message_history=True,  # needed to reply to the question's message
)
REPLY_EVENT = "threadbot_reply"  # dispatched after each answer: (session_id, Reply | None)
NOT_ALLOWED = "I can't answer you here."
MESSAGE_CONTENT_HELP = (
    "Discord refused the MESSAGE_CONTENT intent. Turn it on at "
    "https://discord.com/developers/applications → your application → Bot → Privileged Gateway "
    "Intents → Message Content Intent, save, and run `threadbot discord` again."
)


@dataclass(frozen=True)
class Turn:
    """A message the bot answers: its conversation, the question, and the key to dedupe it."""

    session_id: str
    question: str
    user_id: int
    event_key: str


@dataclass(frozen=True)
class DiscordRules:
    """Where and to whom the bot answers, from the settings."""

    channels: frozenset[int] = frozenset()  # channel, thread-parent or category ids
    allow_dms: bool = False
    users: frozenset[int] = frozenset()
    roles: frozenset[int] = frozenset()

    @classmethod
    def from_settings(cls, settings: Settings) -> DiscordRules:
        return cls(
            channels=frozenset(settings.discord_channels),
            allow_dms=settings.discord_allow_dms,
            users=frozenset(settings.discord_allowed_users),
            roles=frozenset(settings.discord_allowed_roles),
        )

    def allows(self, user_id: int, role_ids: Collection[int]) -> bool:
        """Without allow lists everyone may ask; with them, a listed user or a listed role."""
        if not self.users and not self.roles:
            return True
        return user_id in self.users or not self.roles.isdisjoint(role_ids)

    def lists(self, channel: object) -> bool:
        """The channel, the thread's parent, or their category is listed: answer everything."""
        ids = {getattr(channel, name, None) for name in ("id", "parent_id", "category_id")}
        return not self.channels.isdisjoint(ids)


def _role_ids(user: discord.abc.User) -> list[int]:
    return [role.id for role in getattr(user, "roles", ())]


def turn_from_discord(message: discord.Message, *, bot_id: int, rules: DiscordRules) -> Turn | None:
    """The turn a message asks for, or None: bots (itself too), other channels, other users.

    In a guild the bot answers when mentioned, when replied to, and everything in listed
    channels; in a DM only when DMs are allowed. The mention is stripped from the question.
    """
    author = message.author
    if author.bot or author.id == bot_id or message.webhook_id is not None:
        return None
    if message.type not in (discord.MessageType.default, discord.MessageType.reply):
        return None
    if not rules.allows(author.id, _role_ids(author)):
        return None
    # Users often pick the bot's managed role from the autocomplete instead of the bot itself.
    self_role = message.guild.self_role if message.guild is not None else None
    role_id = self_role.id if self_role is not None else 0
    mentioned = bot_id in message.raw_mentions or role_id in message.raw_role_mentions
    question = re.sub(rf"<@!?{bot_id}>|<@&{role_id}>", " ", message.content).strip()
    if message.guild is None:
        addressed = rules.allow_dms
    else:
        resolved = message.reference.resolved if message.reference else None
        replied_to = isinstance(resolved, discord.Message) and resolved.author.id == bot_id
        addressed = mentioned or replied_to or rules.lists(message.channel)
    if not addressed or not (question or mentioned):
        return None
    guild_id = message.guild.id if message.guild is not None else None
    return Turn(
        session_id=discord_session(guild_id, message.channel.id),
        question=question,
        user_id=author.id,
        event_key=f"discord:message:{message.id}",
    )


async def _keep_typing(channel: discord.abc.Messageable) -> None:
    """Show "typing…" until cancelled; typing is cosmetic, so its errors are only logged."""
    try:
        async with channel.typing():
            await asyncio.get_running_loop().create_future()
    except discord.HTTPException as exc:
        log.debug("no typing indicator: %s", exc)


async def _typing_until_first_chunk(
    channel: discord.abc.Messageable | None, chunks: AsyncGenerator[str, None]
) -> AsyncGenerator[str, None]:
    """Pass `chunks` through, typing in `channel` while the model prepares its first text."""
    try:
        typing = asyncio.create_task(_keep_typing(channel)) if channel is not None else None
        try:
            first = await anext(chunks, None)
        finally:
            if typing is not None:
                typing.cancel()
                await asyncio.gather(typing, return_exceptions=True)
        if first is None:
            return
        yield first
        async for chunk in chunks:
            yield chunk
    finally:
        await chunks.aclose()  # cancels the model when the reply stops early (message deleted)


class _Responder:
    """What the bot does for each event; every handler is one error boundary."""

    def __init__(
        self, client: discord.Client, settings: Settings, pipeline: Pipeline, tasks: SessionTasks
    ) -> None:
        self._client = client
        self._pipeline = pipeline
        self._tasks = tasks
        self._rules = DiscordRules.from_settings(settings)
        self._interval_s = settings.discord_edit_interval_ms / 1000
        self._no_access_logged: set[str] = set()  # conversations we may not post in

    async def on_message(self, message: discord.Message) -> None:
        me = self._client.user
        turn = turn_from_discord(message, bot_id=me.id if me else 0, rules=self._rules)
        if turn is None:
            return
        # discord.py runs each event in its own task: queue the answer before anything is
        # awaited, so two messages in one conversation are answered in the order they came.
        sink = DiscordSink(message.channel, question=message)
        work = self._respond(sink, turn.session_id, turn.question, turn.event_key, message.channel)
        self._tasks.submit(turn.session_id, work)

    async def ask(self, interaction: discord.Interaction, question: str) -> None:
        session_id = self._session_for(interaction)
        try:
            if session_id is None:
                await interaction.response.send_message(NOT_ALLOWED, ephemeral=True)
            else:
                await interaction.response.defer(thinking=True)  # Discord allows 3 s to respond
        except discord.DiscordException:
            log.exception("could not respond to /ask in channel %s", interaction.channel_id)
            session_id = None
        if session_id is None:
            self._client.dispatch(REPLY_EVENT, session_id, None)
            return
        sink = InteractionSink(interaction)
        self._tasks.submit(session_id, self._respond(sink, session_id, question, None, None))

    async def reset(self, interaction: discord.Interaction) -> None:
        session_id = self._session_for(interaction)
        try:
            if session_id is None:
                text = NOT_ALLOWED
            elif await self._pipeline.reset(session_id):
                text = "Done: I forgot our conversation in this channel."
            else:
                text = "There was nothing to forget here."
        except ThreadbotError as exc:
            text = f"⚠️ {exc.user_message}"
        try:
            await interaction.response.send_message(text, ephemeral=True)
        except discord.HTTPException:
            log.exception("could not confirm /reset in channel %s", interaction.channel_id)

    def _session_for(self, interaction: discord.Interaction) -> str | None:
        """The conversation a slash command belongs to, or None when it may not be used there."""
        if not self._rules.allows(interaction.user.id, _role_ids(interaction.user)):
            return None
        if interaction.guild_id is None and not self._rules.allow_dms:
            return None
        return discord_session(interaction.guild_id, interaction.channel_id or 0)

    async def _respond(
        self,
        sink: DiscordSinkBase,
        session_id: str,
        question: str,
        event_key: str | None,
        channel: discord.abc.Messageable | None,
    ) -> None:
        """An event's answer, run in its session's turn: the event's one error boundary.

        `event_key` dedupes gateway replays; `channel` is where a message (not a slash command)
        asked, checked for permission and shown "typing…" in.
        """
        reply: Reply[Editable] | None = None
        try:
            if event_key is not None and not await self._pipeline.first_delivery(event_key):
                return  # a gateway replay after RESUME, or another process got it
            if channel is None or self._may_post(channel):
                reply = await self._answer(sink, session_id, question, channel)
        except ThreadbotError as exc:
            await self._apologise(sink, exc.user_message)
        except Exception:
            log.exception("failed to answer in %s", session_id)
            await self._apologise(sink, ThreadbotError.user_message)
        self._client.dispatch(REPLY_EVENT, session_id, reply)

    async def _answer(
        self,
        sink: DiscordSinkBase,
        session_id: str,
        question: str,
        typing_in: discord.abc.Messageable | None,
    ) -> Reply[Editable] | None:
        chunks = self._pipeline.answer(session_id, question)
        editor: StreamingEditor[Editable] = StreamingEditor(sink, interval_s=self._interval_s)
        try:
            reply = await editor.run(_typing_until_first_chunk(typing_in, chunks))
        except NoAccess:
            self._warn_no_access(session_id)
            return None
        if reply.gone:
            log.info("reply in %s deleted mid-stream; answer stopped", session_id)
        return reply

    def _may_post(self, channel: object) -> bool:
        """What the permission cache says; a stale cache is caught later as a 403 (NoAccess)."""
        guild = getattr(channel, "guild", None)
        if guild is None or guild.me is None:
            return True
        permissions = channel.permissions_for(guild.me)  # type: ignore[attr-defined]
        is_thread = isinstance(channel, discord.Thread)
        allowed = permissions.send_messages_in_threads if is_thread else permissions.send_messages
        if not allowed:
            self._warn_no_access(discord_session(guild.id, getattr(channel, "id", 0)))
        return allowed

    def _warn_no_access(self, session_id: str) -> None:
        if session_id not in self._no_access_logged:
            self._no_access_logged.add(session_id)
            log.warning("missing permission to post in %s; not answering there", session_id)

    async def _apologise(self, sink: DiscordSinkBase, text: str) -> None:
        try:
            await sink.post(f"⚠️ {text}")
        except (SinkError, discord.HTTPException) as exc:
            log.warning("could not show the error message either: %s", exc)


def build_discord_client(
    settings: Settings,
    pipeline: Pipeline,
    *,
    tasks: SessionTasks | None = None,
    **options: Any,
) -> discord.Client:
    """A discord.py client with threadbot's handlers and slash commands (not yet connected).

    Answers run in `tasks`; pass it to wait for them before closing the client and the pipeline.
    `DISCORD_SHARD_COUNT` / `DISCORD_SHARD_IDS` give an `AutoShardedClient`, so several
    processes can split the guilds while sharing one Redis. `options` go to the client.
    """
    intents = discord.Intents.none()
    intents.guilds = intents.guild_messages = intents.dm_messages = True
    intents.message_content = True  # privileged: enabled in the Developer Portal
    options = {
        "intents": intents,
        "allowed_mentions": NO_MENTIONS,
        "max_ratelimit_timeout": MAX_RATELIMIT_WAIT_S,
        "http_trace": rate_limit_trace(),
        **options,
    }
    client: discord.Client
    if settings.discord_shard_count is not None or settings.discord_shard_ids:
        if settings.discord_shard_ids:
            options["shard_ids"] = settings.discord_shard_ids
        client = discord.AutoShardedClient(shard_count=settings.discord_shard_count, **options)
    else:
        client = discord.Client(**options)
    responder = _Responder(
        client, settings, pipeline, tasks if tasks is not None else SessionTasks()
    )
    tree = app_commands.CommandTree(client)

    @tree.command(name="ask", description="Ask a question; the answer is posted here.")
    @app_commands.describe(question="What you want to know")
    async def ask(interaction: discord.Interaction, question: str) -> None:
        await responder.ask(interaction, question)

    @tree.command(name="reset", description="Forget the conversation of this channel or thread.")
    async def reset(interaction: discord.Interaction) -> None:
        await responder.reset(interaction)

    async def setup_hook() -> None:
        # Guild commands appear at once; global ones can take up to an hour to show everywhere.
        for guild_id in settings.discord_guilds:
            guild = discord.Object(guild_id)
            tree.copy_global_to(guild=guild)
            try:
                await tree.sync(guild=guild)
            except discord.HTTPException as exc:
                log.error("could not sync slash commands to guild %s: %s", guild_id, exc)
        if not settings.discord_guilds:
            try:
                await tree.sync()
            except discord.HTTPException as exc:
                log.error("could not sync global slash commands: %s", exc)

    async def on_ready() -> None:
        log.info("connected to Discord as %s in %d guild(s)", client.user, len(client.guilds))

    client.setup_hook = setup_hook  # type: ignore[method-assign]
    client.event(on_ready)
    client.event(responder.on_message)
    return client


def invite_url(application_id: int) -> str:
    """The URL that adds the bot to a server with exactly the scopes and permissions it uses."""
    return discord.utils.oauth_url(
        application_id, permissions=INVITE_PERMISSIONS, scopes=INVITE_SCOPES
    )


async def run(settings: Settings) -> int:
    """Run the bot until it is stopped; the exit code says why it could not start."""
    from core.pipeline import Pipeline

    if settings.discord_token is None:
        log.error(
            "DISCORD_TOKEN is not set. Create an application at "
            "https://discord.com/developers/applications, copy the bot token (Bot → Reset "
            "Token) into .env as DISCORD_TOKEN=..., then run `threadbot discord` again."
        )
        return 2
    restore = await use_discord_api(settings.discord_api_url)
    pipeline = await Pipeline.create(settings)
    tasks = SessionTasks()
    client = build_discord_client(settings, pipeline, tasks=tasks)
    try:
        await client.login(settings.discord_token.get_secret_value())
        log.info("invite the bot to a server: %s", invite_url(client.application_id or 0))
        await client.connect()
    except discord.LoginFailure:
        log.error("Discord rejected DISCORD_TOKEN; copy the bot token again from the portal.")
        return 2
    except discord.PrivilegedIntentsRequired:
        log.error(MESSAGE_CONTENT_HELP)
        return 3
    finally:
        # No more events are read once connect() has ended; answers in flight still need the
        # client to show their last edits.
        await tasks.aclose(grace_s=SHUTDOWN_GRACE_S)
        await client.close()
        await pipeline.aclose()
        restore()
    return 0


def main(settings: Settings | None = None) -> int:
    """`threadbot discord`: 0 when stopped, 2 without a valid token, 3 without MESSAGE_CONTENT."""
    from core.settings import Settings

    return asyncio.run(run(settings if settings is not None else Settings()))
