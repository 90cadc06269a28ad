"""What the bot reads from Discord besides the question: the thread or reply chain before it,
and the files attached to it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import discord

from core import Asked, Earlier, FileRefused, Said


def asked(message: discord.Message, bot_id: int, *, own_thread: bool = False) -> Asked:
    """What came with `message`: the thread or reply chain it is in (none in a thread of its
    own, or a plain channel, whose conversation is the channel), and its attachments;
    described by ids so that another process can fetch them again after a crash."""

    async def before(at_most: int) -> Earlier:
        return await earlier(message, bot_id, at_most)

    in_thread = isinstance(message.channel, discord.Thread) or message.reference is not None
    context = in_thread and not own_thread
    return Asked(
        thread=before if context else None,
        files=[DiscordFile(a) for a in message.attachments],
        where=(
            {"channel_id": message.channel.id, "message_id": message.id}
            if context or message.attachments
            else None
        ),
    )


async def refetched(client: discord.Client, where: Mapping[str, Any]) -> Asked:
    """`asked` again for the message `where` names (after a crash)."""
    channel = client.get_channel(int(where["channel_id"]))
    if not isinstance(channel, discord.abc.Messageable):
        return Asked()  # another shard's, or gone
    message = await channel.fetch_message(int(where["message_id"]))
    return asked(message, client.user.id if client.user else 0)


async def earlier(message: discord.Message, bot_id: int, at_most: int) -> Earlier:
    """The messages before `message` that it answers: the thread's (its first message among
    them), or else the chain of replies it ends; oldest first. Raises discord.py's errors."""
    channel = message.channel
    if isinstance(channel, discord.Thread):
        room = max(at_most - 1, 1)  # one place kept for the thread's first message
        before = [m async for m in channel.history(limit=room + 1, before=message)]
        more = len(before) > room
        found = list(reversed(before[:room]))
        starter = await _starter(channel)
        if starter is not None and starter.id != message.id and starter not in found:
            found.insert(0, starter)
        return Earlier([_said(m, bot_id) for m in found], more)
    chain: list[discord.Message] = []
    reference = message.reference
    while reference is not None and reference.message_id is not None and len(chain) < at_most:
        resolved = reference.resolved
        if not isinstance(resolved, discord.Message):
            if reference.channel_id != channel.id:
                break  # forwarded from another channel: not this conversation's
            try:
                resolved = await channel.fetch_message(reference.message_id)
            except (discord.NotFound, discord.Forbidden):
                break  # deleted, or not ours to read: the chain so far
        chain.append(resolved)
        reference = resolved.reference
    return Earlier([_said(m, bot_id) for m in reversed(chain)], reference is not None)


async def _starter(thread: discord.Thread) -> discord.Message | None:
    """The message a thread began with: a forum post's own first message (same id as the
    thread), or the channel message the thread was started from."""
    if thread.starter_message is not None:
        return thread.starter_message
    try:
        if isinstance(thread.parent, discord.ForumChannel):
            return await thread.fetch_message(thread.id)
        if thread.parent is not None:
            return await thread.parent.fetch_message(thread.id)
    except (discord.NotFound, discord.Forbidden):
        pass  # a thread started without a message, its message deleted, or not ours to read
    return None


def _said(message: discord.Message, bot_id: int) -> Said:
    by_bot = message.author.id == bot_id
    author = "threadbot" if by_bot else message.author.display_name
    return Said(author, message.clean_content.strip(), by_bot)


class DiscordFile:
    """A message attachment, read on demand (an `Attachment` for the core)."""

    def __init__(self, attachment: discord.Attachment) -> None:
        self._attachment = attachment

    @property
    def name(self) -> str:
        return self._attachment.filename

    @property
    def size(self) -> int | None:
        return self._attachment.size

    @property
    def mimetype(self) -> str:
        return self._attachment.content_type or ""

    async def read(self, limit: int) -> bytes:
        """Discord's size is exact: the core refuses a larger file before reading it."""
        try:
            return await self._attachment.read()
        except discord.HTTPException as exc:
            raise FileRefused("could not be downloaded") from exc
