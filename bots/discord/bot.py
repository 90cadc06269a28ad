"""Discord adapter: answers in channels, threads and DMs, streaming each answer into one message."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

from bots.discord import reading
from bots.discord.endpoint import use_discord_api
from bots.discord.feedback import FeedbackCog
from bots.discord.setup import invite_url, missing_settings
from bots.discord.sink import (
    NO_MENTIONS,
    DiscordSink,
    InteractionSink,
    NewThreadSink,
    rate_limit_trace,
)
from bots.discord.translator import (
    DiscordRules,
    place_words,
    role_ids,
    starts_thread,
    thread_name,
    turn_from_discord,
    where_of,
)
from bots.lifecycle import ExitCode, cannot_start, until_stopped
from core import (
    Asked,
    Health,
    Metrics,
    NoAccess,
    Pipeline,
    PolicyFile,
    Settings,
    Turn,
    TurnRunner,
    sessions,
)

log = logging.getLogger(__name__)

# discord.py raises RateLimited rather than sleeping on waits longer than this (30 s is its floor).
MAX_RATELIMIT_WAIT_S = 30.0
NOT_ALLOWED = "I can't answer you here."
MESSAGE_CONTENT_HELP = (
    "Discord refused the MESSAGE_CONTENT intent. Turn it on at "
    "https://discord.com/developers/applications → your application → Bot → Privileged Gateway "
    "Intents → Message Content Intent, save, and run `threadbot discord` again."
)


class ThreadbotCog(commands.Cog):
    """Messages and slash commands become turns for the core's runner; nothing else here."""

    def __init__(
        self,
        bot: commands.Bot,
        runner: TurnRunner,
        rules: DiscordRules,
        policy: PolicyFile | None = None,
        role: int | None = None,
    ) -> None:
        self.bot = bot
        self.runner = runner
        self.rules = rules  # the settings'
        self.policy = policy if policy is not None else PolicyFile(None)
        self.role = role  # who "needs a human" pings (ESCALATE_DISCORD_ROLE)

    def _rules(self) -> DiscordRules:
        """The settings' rules under the configuration file as last read: decided at once,
        before anything is awaited."""
        return self.rules.under(self.policy.snapshot())

    @commands.Cog.listener()
    async def on_ready(self) -> None:
        log.info("connected to Discord as %s in %d guild(s)", self.bot.user, len(self.bot.guilds))

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        me = self.bot.user
        rules = self._rules()
        turn = turn_from_discord(message, bot_id=me.id if me else 0, rules=rules)
        if turn is None:
            return

        own_thread = starts_thread(message, rules)

        async def may_post() -> bool:
            _check_may_post(message.channel, starting_thread=own_thread)
            return True

        asked = reading.asked(message, me.id if me else 0, own_thread=own_thread)
        sink: DiscordSink | NewThreadSink = (
            NewThreadSink(message, thread_name(turn.question))
            if own_thread
            else DiscordSink(message.channel, question=message)
        )
        sink.role = self.role
        # discord.py runs each event in its own task: submitted before anything is awaited, so
        # two messages in one conversation are answered in the order they came.
        await self.runner.submit(turn, sink, only_if=may_post, asked=asked)

    @app_commands.command(name="ask", description="Ask a question; the answer is posted here.")
    @app_commands.describe(question="What you want to know")
    async def ask(self, interaction: discord.Interaction, question: str) -> None:
        turn = self._turn_for(interaction, question=question)
        if turn is None:
            await interaction.response.send_message(NOT_ALLOWED, ephemeral=True)
            return
        await interaction.response.defer(thinking=True)  # Discord allows 3 s to respond
        sink = InteractionSink(interaction)
        sink.role = self.role
        await self.runner.submit(turn, sink)

    @app_commands.command(name="reset", description="Forget the conversation of this channel.")
    async def reset(self, interaction: discord.Interaction) -> None:
        turn = self._turn_for(interaction, action="reset")
        if turn is None:
            await interaction.response.send_message(NOT_ALLOWED, ephemeral=True)
            return
        await self.runner.run(turn, InteractionSink(interaction))

    def _turn_for(self, interaction: discord.Interaction, **fields: Any) -> Turn | None:
        """A slash command's turn, or None when it may not be used there."""
        # The same rule as messages: the core's AccessRules, for this place.
        access = self._rules().access_at(interaction.channel)
        roles = [str(r) for r in role_ids(interaction.user)]
        if not access.may_ask(str(interaction.user.id), roles):
            return None
        if not access.answers_in((), is_dm=interaction.guild_id is None):
            return None
        return Turn(
            platform="discord",
            session_id=sessions.discord_session(interaction.guild_id, interaction.channel_id or 0),
            user=str(interaction.user.id),
            place=place_words(interaction.channel),
            **where_of(interaction.channel),
            **fields,
        )


def _check_may_post(channel: object, *, starting_thread: bool = False) -> None:
    """What the permission cache says; a stale cache is caught later as a 403 (NoAccess)."""
    guild = getattr(channel, "guild", None)
    if guild is None or guild.me is None:
        return
    permissions = channel.permissions_for(guild.me)  # type: ignore[attr-defined]
    if starting_thread:
        if not (permissions.create_public_threads and permissions.send_messages_in_threads):
            raise NoAccess("no Create Public Threads permission")
        return
    is_thread = isinstance(channel, discord.Thread)
    if not (permissions.send_messages_in_threads if is_thread else permissions.send_messages):
        raise NoAccess("no Send Messages permission")


class DiscordBot(commands.Bot):
    """The discord.py bot: the cog, and the slash commands synced when it logs in."""

    def __init__(self, settings: Settings, runner: TurnRunner, **options: Any) -> None:
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
        # Slash commands only: an empty prefix list never matches a message.
        super().__init__(command_prefix=[], help_command=None, **options)
        self.settings = settings
        self.runner = runner
        # The pipeline's reading of the file (bases and models come from it too), followed
        # from login to close.
        self.policy = runner.pipeline.policy
        self._watching: asyncio.Task[None] | None = None

    async def sink_for(self, where: dict[str, Any]) -> DiscordSink | None:
        """The sink of a reply a crashed process left unfinished (None: not this bot's)."""
        if where.get("platform") != "discord":
            return None
        channel_id = int(where["channel_id"])
        channel = self.get_channel(channel_id)
        if channel is None:
            return None  # another shard's guild, or a channel gone: not this bot's to finish
        question_id = where.get("question_id")
        question = channel.get_partial_message(int(question_id)) if question_id else None  # type: ignore[union-attr]
        sink = DiscordSink(channel, question=question)  # type: ignore[arg-type]
        sink.role = self.settings.escalate_discord_role
        return sink

    async def asked_for(self, where: Mapping[str, Any]) -> Asked:
        """What came with an interrupted question: its message fetched again."""
        return await reading.refetched(self, where)

    async def setup_hook(self) -> None:
        self._watching = asyncio.create_task(self.policy.watch())
        rules = DiscordRules.from_settings(self.settings)
        role = self.settings.escalate_discord_role
        await self.add_cog(ThreadbotCog(self, self.runner, rules, self.policy, role))
        await self.add_cog(FeedbackCog(self.runner.pipeline.feedback, role))
        # Guild commands appear at once; global ones can take up to an hour to show everywhere.
        guilds = [discord.Object(guild_id) for guild_id in self.settings.discord_guilds]
        for guild in guilds:
            self.tree.copy_global_to(guild=guild)
        targets: list[discord.Object | None] = [*guilds] or [None]
        for target in targets:
            try:
                await self.tree.sync(guild=target)
            except discord.HTTPException as exc:
                log.error("could not sync slash commands (%s): %s", target or "global", exc)

    async def close(self) -> None:
        """Stop following the configuration file, then close discord.py's client."""
        if self._watching is not None:
            self._watching.cancel()
            await asyncio.gather(self._watching, return_exceptions=True)
        await super().close()


class ShardedDiscordBot(DiscordBot, commands.AutoShardedBot):
    """`DISCORD_SHARD_COUNT` / `DISCORD_SHARD_IDS`: processes split the guilds, sharing Redis."""


def build_discord_bot(settings: Settings, pipeline: Pipeline, **options: Any) -> DiscordBot:
    """The bot, not yet connected; `options` go to discord.py's client."""
    runner = TurnRunner(
        pipeline,
        interval_s=settings.discord_edit_interval_ms / 1000,
        grace_s=settings.shutdown_grace_s,
        post_deadline_s=settings.answer_timeout_s,
    )
    if settings.discord_shard_count is None and not settings.discord_shard_ids:
        return DiscordBot(settings, runner, **options)
    if settings.discord_shard_ids:
        options["shard_ids"] = settings.discord_shard_ids
    return ShardedDiscordBot(settings, runner, shard_count=settings.discord_shard_count, **options)


async def serve(settings: Settings) -> int:
    """Run the bot until it is stopped; the exit code says why it could not start."""
    missing = missing_settings(settings)
    if missing or settings.discord_token is None:
        return cannot_start("discord", missing)
    where = settings.discord_api_url or "discord.com"
    try:
        restore = await use_discord_api(settings.discord_api_url)
    except (aiohttp.ClientError, OSError) as exc:
        return _unreachable(where, exc)
    try:
        metrics = Metrics()
        async with await Pipeline.create(settings, metrics=metrics) as pipeline:
            bot = build_discord_bot(settings, pipeline)
            health = Health.watching(bot.runner, settings, metrics, connected=_gateway_up(bot))
            if bot.http.http_trace is not None:  # before login, which builds the HTTP session
                health.metrics.count_requests(bot.http.http_trace, "discord")
            async with health.serving():
                try:
                    await bot.login(settings.discord_token.get_secret_value())
                    log.info("invite the bot to a server: %s", invite_url(bot.application_id or 0))
                    bot.runner.start_recovery(bot.sink_for, bot.asked_for)
                    await bot.connect()
                except discord.LoginFailure:
                    log.error(
                        "Discord rejected DISCORD_TOKEN; copy the bot token again from the portal."
                    )
                    return ExitCode.MISCONFIGURED
                except discord.PrivilegedIntentsRequired:
                    log.error(MESSAGE_CONTENT_HELP)
                    return ExitCode.INTENT_REFUSED
                except (aiohttp.ClientError, OSError) as exc:  # no network before logging in
                    return _unreachable(where, exc)
                finally:
                    # No more events are read once connect() has ended; answers in flight still
                    # need the client to show their last edits (/readyz says 503 meanwhile).
                    await bot.runner.aclose()
                    await bot.close()
    finally:
        restore()
    return ExitCode.OK


def _unreachable(where: str, exc: BaseException) -> int:
    log.error("cannot reach Discord at %s (%s): check the network, or DISCORD_API_URL.", where, exc)
    return ExitCode.UNREACHABLE


def _gateway_up(bot: DiscordBot) -> Callable[[], Awaitable[bool]]:
    async def up() -> bool:
        return bot.is_ready() and not bot.is_closed()

    return up


def main(settings: Settings) -> int:
    """`threadbot discord`: 0 when stopped, 2 without a valid token, 3 without MESSAGE_CONTENT."""
    return asyncio.run(until_stopped(serve(settings)))
