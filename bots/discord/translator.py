"""Discord messages in, turns out: who may ask where, and the pure translation."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

import discord

from core import Settings, Turn, sessions


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


def role_ids(user: discord.abc.User) -> list[int]:
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
    if not rules.allows(author.id, role_ids(author)):
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
        platform="discord",
        session_id=sessions.discord_session(guild_id, message.channel.id),
        question=question,
        user=str(author.id),
        place=place_words(message.channel),
        event_key=f"discord:message:{message.id}",
    )


def place_words(channel: object) -> str:
    if isinstance(channel, discord.Thread):
        return "in this thread"
    return "in this DM" if isinstance(channel, discord.DMChannel) else "in this channel"
