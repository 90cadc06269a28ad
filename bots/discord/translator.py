"""Discord messages in, turns out: who may ask where, in which mode, and the pure translation."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import discord

from core import (
    NO_POLICIES,
    AccessRules,
    Policies,
    ReplyMode,
    ReplyModes,
    Settings,
    Turn,
    Where,
    access_for,
    reply_mode_for,
    sessions,
    worth_answering,
)

THREAD_NAME_CHARS = 90  # Discord allows 100


@dataclass(frozen=True)
class DiscordRules:
    """Where and to whom the bot answers, from the settings, and from the configuration file
    where it says more (`policies`: `under` gives the rules with the file as last read).

    `channels` (DISCORD_CHANNELS) are auto-reply channels, the same as `auto` in `modes`
    (DISCORD_REPLY_MODES), which also names forum channels and channels where each question
    gets a thread of its own.
    """

    channels: frozenset[int] = frozenset()  # channel, thread-parent or category ids
    allow_dms: bool = False
    users: frozenset[int] = frozenset()
    roles: frozenset[int] = frozenset()
    modes: Mapping[str, ReplyMode] = field(default_factory=dict)
    policies: Policies = NO_POLICIES  # threadbot.toml: its tables win where they set a key

    @classmethod
    def from_settings(cls, settings: Settings) -> DiscordRules:
        return cls(
            channels=frozenset(settings.discord_channels),
            allow_dms=settings.discord_allow_dms,
            users=frozenset(settings.discord_allowed_users),
            roles=frozenset(settings.discord_allowed_roles),
            modes=dict(settings.discord_reply_modes),
        )

    @cached_property
    def access(self) -> AccessRules:
        """The core's one rule of who may ask: a Discord role is a group."""
        return AccessRules(
            users=frozenset(map(str, self.users)),
            groups=frozenset(map(str, self.roles)),
            allow_dms=self.allow_dms,
        )

    @cached_property
    def _modes(self) -> ReplyModes:
        return ReplyModes({**{str(c): "auto" for c in self.channels}, **self.modes})

    def under(self, policies: Policies) -> DiscordRules:
        """These rules with the configuration file's tables over them."""
        return replace(self, policies=policies)

    def access_at(self, channel: object) -> AccessRules:
        """Who may ask in `channel` (a thread, a DM), and whether the bot answers there."""
        return access_for(self.policies, Where("discord", **where_of(channel)), self.access)

    def allows(self, user_id: int, role_ids: Collection[int]) -> bool:
        """Without allow lists everyone may ask; with them, a listed user or a listed role
        (the settings'; `access_at` gives a place's)."""
        return self.access.may_ask(str(user_id), [str(r) for r in role_ids])

    def mode_of(self, channel: object) -> ReplyMode:
        """The mode the file gives the channel (its own table's, its category's, the guild's,
        the defaults'), else the settings' mode of the channel, of the thread's parent, or of
        their category."""
        fallback = self._modes.of(
            *(getattr(channel, a, None) for a in ("id", "parent_id", "category_id"))
        )
        return reply_mode_for(self.policies, Where("discord", **where_of(channel)), fallback)


def role_ids(user: discord.abc.User) -> list[int]:
    return [role.id for role in getattr(user, "roles", ())]


def starts_thread(message: discord.Message, rules: DiscordRules) -> bool:
    """A message in a `thread` channel (not in a thread yet): answered in a thread of its own."""
    channel = message.channel
    return (
        message.guild is not None
        and not isinstance(channel, discord.Thread)
        and rules.mode_of(channel) == "thread"
    )


def thread_name(question: str) -> str:
    """A new thread's name: the question's first line, cut at a word."""
    line = next((ln.strip() for ln in question.splitlines() if ln.strip()), "") or "Question"
    if len(line) <= THREAD_NAME_CHARS:
        return line
    return line[:THREAD_NAME_CHARS].rsplit(" ", 1)[0] + "…"


def turn_from_discord(message: discord.Message, *, bot_id: int, rules: DiscordRules) -> Turn | None:
    """The turn a message asks for, or None: bots (itself too), other channels, other users.

    In a guild the bot answers when mentioned, when replied to, and, in a channel with a reply
    mode, unasked (an auto-reply channel's messages, a forum's posts and the messages in their
    threads, a thread channel's questions) when the message is worth answering; in a DM only
    when DMs are allowed. The mention is stripped from the question; a forum post's title
    leads it. The rules' configuration file, where it sets them, gives the place's mode, allow
    lists and whether the bot answers there at all (`answers = false`: ignored, as other
    people's chatter is).
    """
    author = message.author
    if author.bot or author.id == bot_id or message.webhook_id is not None:
        return None
    if message.type not in (discord.MessageType.default, discord.MessageType.reply):
        return None
    channel = message.channel
    access = rules.access_at(channel)
    if not access.may_ask(str(author.id), [str(r) for r in role_ids(author)]):
        return None
    # Users often pick the bot's managed role from the autocomplete instead of the bot itself.
    self_role = message.guild.self_role if message.guild is not None else None
    role_id = self_role.id if self_role is not None else 0
    mentioned = bot_id in message.raw_mentions or role_id in message.raw_role_mentions
    question = re.sub(rf"<@!?{bot_id}>|<@&{role_id}>", " ", message.content).strip()
    if message.guild is None:
        addressed = access.answers_in((), is_dm=True)
    elif not access.answers_in((), is_dm=False):
        return None  # a place the configuration file switched off
    else:
        resolved = message.reference.resolved if message.reference else None
        replied_to = isinstance(resolved, discord.Message) and resolved.author.id == bot_id
        mode = rules.mode_of(channel)
        in_thread = isinstance(channel, discord.Thread)
        unasked = mode == "auto" or mode == "thread" or (mode == "forum" and in_thread)
        if (
            isinstance(channel, discord.Thread)
            and message.id == channel.id
            and isinstance(channel.parent, discord.ForumChannel)
        ):
            question = f"{channel.name}\n\n{question}".strip()  # a forum post: its title first
        addressed = mentioned or replied_to or unasked
        if unasked and not (mentioned or replied_to):
            addressed = bool(message.attachments) or worth_answering(question)
    if not addressed or not (question or mentioned or message.attachments):
        return None
    guild_id = message.guild.id if message.guild is not None else None
    own_thread = starts_thread(message, rules)
    conversation = message.id if own_thread else channel.id  # a new thread's id is the message's
    return Turn(
        platform="discord",
        session_id=sessions.discord_session(guild_id, conversation),
        question=question,
        user=str(author.id),
        place="in this thread" if own_thread else place_words(channel),
        event_key=f"discord:message:{message.id}",
        **where_of(channel),
    )


def where_of(channel: object) -> dict[str, Any]:
    """The place as the configuration file names it: guild, category, channel (a thread's
    parent), or a DM."""
    guild = getattr(channel, "guild", None)
    if guild is None:
        return {"dm": True}
    thread = isinstance(channel, discord.Thread)
    named = getattr(channel, "parent_id" if thread else "id", None)
    category = getattr(channel.parent if thread else channel, "category_id", None)  # type: ignore[attr-defined]
    return {
        "workspace": str(guild.id),
        "category": str(category or ""),
        "channel": str(named or ""),
    }


def place_words(channel: object) -> str:
    if isinstance(channel, discord.Thread):
        return "in this thread"
    return "in this DM" if isinstance(channel, discord.DMChannel) else "in this channel"
