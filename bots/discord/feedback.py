"""👍/👎 under Discord answers: two buttons, the clicks and the 👎 modal coming back.

The buttons' custom ids carry the answer (`threadbot:vote:up:ANSWER`), so any process of the
bot takes a click, after a restart too; no view is kept in discord.py's memory per answer. A
click is answered within Discord's 3 s: the 👎 modal at once (the vote is kept while it shows),
a 👍 deferred then thanked. The core keeps the vote (`Feedback`); this module only translates.
"""

from __future__ import annotations

import contextlib
import logging
import re
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands

from core import Feedback

if TYPE_CHECKING:
    from bots.discord.sink import Editable

log = logging.getLogger(__name__)

VOTE = re.compile(r"^threadbot:vote:(up|down):([0-9a-f]{16})$")
REASON = re.compile(r"^threadbot:reason:([0-9a-f]{16})$")
REASON_TITLE = "What was wrong?"
REASON_LABEL = "What was missing or wrong? (optional)"
REASON_MAX_CHARS = 500


def vote_buttons(answer_id: str) -> discord.ui.View:
    """The two buttons, as a view discord.py sends but does not keep: it is stopped first, so
    a message edit does not store it (clicks come to `FeedbackCog.on_interaction`)."""
    view = discord.ui.View(timeout=None)
    for vote, emoji, label in (("up", "👍", "Helpful"), ("down", "👎", "Not helpful")):
        view.add_item(
            discord.ui.Button(
                style=discord.ButtonStyle.secondary,
                emoji=emoji,
                label=label,
                custom_id=f"threadbot:vote:{vote}:{answer_id}",
            )
        )
    view.stop()
    return view


async def show_buttons(handle: Editable, answer_id: str) -> None:
    """The buttons under a message whose text is final (only its components change)."""
    await handle.edit(view=vote_buttons(answer_id), allowed_mentions=discord.AllowedMentions.none())


def reason_modal(answer_id: str) -> discord.ui.Modal:
    modal = discord.ui.Modal(title=REASON_TITLE, custom_id=f"threadbot:reason:{answer_id}")
    modal.add_item(
        discord.ui.TextInput(
            label=REASON_LABEL,
            custom_id="reason",
            style=discord.TextStyle.paragraph,
            required=False,
            max_length=REASON_MAX_CHARS,
        )
    )
    modal.stop()  # not kept either: the submit comes to `on_interaction`
    return modal


async def call_a_human(channel: object, role: int | None, text: str) -> bool:
    """Post `text` in the answer's channel or thread, pinging the role (ESCALATE_DISCORD_ROLE)."""
    if role is None or not isinstance(channel, discord.abc.Messageable):
        return False
    await channel.send(
        f"<@&{role}> {text}",
        allowed_mentions=discord.AllowedMentions(roles=[discord.Object(role)]),
    )
    return True


class FeedbackCog(commands.Cog):
    """The clicks on the buttons and the 👎 modal's submits, for `Feedback`."""

    def __init__(self, feedback: Feedback, role: int | None) -> None:
        self._feedback = feedback
        self._role = role

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        data: dict[str, Any] = dict(interaction.data or {})
        custom_id = str(data.get("custom_id", ""))
        if interaction.type == discord.InteractionType.component:
            if (vote := VOTE.match(custom_id)) is not None:
                await self._on_vote(interaction, vote[1], vote[2])
        elif interaction.type == discord.InteractionType.modal_submit:
            if (reason := REASON.match(custom_id)) is not None:
                await self._on_reason(interaction, reason[1])

    async def _on_vote(self, interaction: discord.Interaction, vote: str, answer_id: str) -> None:
        voter = f"discord:{interaction.user.id}"
        try:  # answered first: Discord allows 3 s, the store may take longer
            if vote == "down":
                await interaction.response.send_modal(reason_modal(answer_id))
            else:
                await interaction.response.defer(ephemeral=True, thinking=True)
        except discord.HTTPException as exc:  # too late, or answered already: the vote stands
            log.info("could not answer a click on answer %s: %s", answer_id, exc)
        verdict = await self._feedback.vote(answer_id, voter, "down" if vote == "down" else "up")
        if vote == "up" and interaction.response.is_done():
            with contextlib.suppress(discord.HTTPException):
                await interaction.followup.send(verdict.said, ephemeral=True)
        if verdict.needs_a_human:
            await self._feedback.call("down", _Channel(interaction.channel, self._role))

    async def _on_reason(self, interaction: discord.Interaction, answer_id: str) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        voter = f"discord:{interaction.user.id}"
        verdict = await self._feedback.reason(answer_id, voter, _typed(interaction))
        await interaction.followup.send(verdict.said, ephemeral=True)


def _typed(interaction: discord.Interaction) -> str:
    """The reason typed in the modal (its text inputs, in action rows or labels)."""
    found: list[str] = []

    def walk(components: object) -> None:
        for component in components if isinstance(components, list) else []:
            if not isinstance(component, dict):
                continue
            if component.get("custom_id") == "reason" and component.get("value"):
                found.append(str(component["value"]))
            walk(component.get("components"))
            if isinstance(component.get("component"), dict):
                walk([component["component"]])

    data: dict[str, Any] = dict(interaction.data or {})
    walk(data.get("components"))
    return " ".join(found)


class _Channel:
    def __init__(self, channel: object, role: int | None) -> None:
        self._channel, self._role = channel, role

    async def call_a_human(self, text: str) -> bool:
        return await call_a_human(self._channel, self._role, text)
