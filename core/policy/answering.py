"""Whether, how and for whom the bot answers at a place: its reply mode and its access rules,
from threadbot.toml's `reply_mode`, `allowed_users`, `allowed_groups` and `answers`.

Each comes from the most precise table that sets it: the channel's (a thread counts as its
channel), then the category's, then the workspace's or guild's, then `[defaults]`. The settings
are the widest layer, below `[defaults]`: where no table of the file sets a key for a place,
the settings decide there exactly as they do without a file (SLACK_REPLY_MODES,
SLACK_ALLOWED_USERS, SLACK_CHANNELS, ... and their Discord twins).

- `reply_mode`: how a channel's messages are taken (`core.turn.modes`). DMs have none.
- `allowed_users`, `allowed_groups` (Slack user groups, Discord roles): who may ask, read as
  one list. The most precise table that sets either says both, and the one it leaves out is
  empty there rather than inherited: a channel's `allowed_groups` lets in its members and
  nobody a wider table or the settings listed. Both empty (`allowed_users = []`): everyone.
- `answers`: whether the bot answers at the place at all. For channels it stands where
  SLACK_CHANNELS would (`answers = false` at a workspace, `true` on its one help channel). DMs
  take it only from a DM table (`[slack.T.dm]`, `[discord.dm]`), where it replaces
  SLACK_ALLOW_DMS or DISCORD_ALLOW_DMS: an `answers` of a workspace, or of `[defaults]`,
  speaks for channels, as SLACK_CHANNELS does, and never opens or closes DMs.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from core.policy.audience import Where, deciding, most_precise
from core.policy.config import Policies
from core.settings import ReplyMode

if TYPE_CHECKING:
    from core.turn.access import AccessRules  # (core.turn reads policies, not the other way)


def reply_mode_for(policies: Policies, where: Where, fallback: ReplyMode) -> ReplyMode:
    """The reply mode at `where`: its most precise table's, else `fallback` (what the settings
    say for the place)."""
    if where.dm:
        return fallback
    mode, _ = most_precise(policies, where, "reply_mode")
    return mode if mode is not None else fallback


def access_for(policies: Policies, where: Where, fallback: AccessRules) -> AccessRules:
    """Who may ask at `where`, and whether the bot answers there: `fallback` (the settings'
    rules) with what the file's tables say for the place."""
    rules = fallback
    lists, _ = deciding(policies, where, "allowed_users", "allowed_groups")
    if lists is not None:
        rules = replace(
            rules,
            users=frozenset(lists.allowed_users or ()),
            groups=frozenset(lists.allowed_groups or ()),
        )
    answers, own = most_precise(policies, where, "answers")
    if answers is not None and (own or not where.dm):
        rules = replace(rules, answers=answers)
    return rules
