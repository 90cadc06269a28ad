"""What `threadbot discord` needs before it starts, and the link that invites it to a server."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord

if TYPE_CHECKING:
    from core import Settings

INVITE_SCOPES = ("bot", "applications.commands")
INVITE_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    create_public_threads=True,  # a `thread` channel answers each question in its own thread
    read_message_history=True,  # to reply to the question, and to read the thread before it
)


def invite_url(application_id: int) -> str:
    """The URL that adds the bot to a server with exactly the scopes and permissions it uses."""
    return discord.utils.oauth_url(
        application_id, permissions=INVITE_PERMISSIONS, scopes=INVITE_SCOPES
    )


def missing_settings(settings: Settings) -> list[str]:
    """What `threadbot discord` still needs, named as the user sets it in .env."""
    if settings.discord_token is not None:
        return []
    return [
        "DISCORD_TOKEN is not set (create an application at "
        "https://discord.com/developers/applications and copy its bot token: Bot → Reset Token)"
    ]
