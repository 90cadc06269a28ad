"""Who may ask the bot, and where: one rule for every platform, checked before any model call.

Slack's users, user groups and channels and Discord's users and roles are the same lists: an
adapter translates its ids (a Discord role is a group) and asks `check`, which raises
`NotAllowed`; the runner tells the asker alone. The rules of one place, where threadbot.toml
says more than the settings, come from `core.policy.answering.access_for`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from core.errors import NotAllowed
from core.settings import Settings


@dataclass(frozen=True)
class AccessRules:
    """Empty lists allow everyone, everywhere; with lists, a listed user or a member of a
    listed group may ask, in a listed channel (or a thread or category below one).

    `answers`, when set, is the say of the one place these rules were made for (the
    configuration file's `answers` there): it decides instead of `channels` and `allow_dms`.
    """

    users: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    channels: frozenset[str] = frozenset()
    allow_dms: bool = True
    answers: bool | None = None

    @classmethod
    def for_slack(cls, settings: Settings) -> AccessRules:
        return cls(
            users=frozenset(settings.slack_allowed_users),
            groups=frozenset(settings.slack_allowed_usergroups),
            channels=frozenset(settings.slack_channels),
            allow_dms=settings.slack_allow_dms,
        )

    @property
    def lists_groups(self) -> bool:
        """Whether `check` needs the asker's groups (which may cost the adapter a lookup)."""
        return bool(self.groups)

    def may_ask(self, user: str, groups: Collection[str] = ()) -> bool:
        if not self.users and not self.groups:
            return True
        return user in self.users or not self.groups.isdisjoint(groups)

    def answers_in(self, places: Collection[str], *, is_dm: bool) -> bool:
        """`places`: the channel and what it sits in (a thread's parent, a category)."""
        if self.answers is not None:
            return self.answers
        if is_dm:
            return self.allow_dms
        return not self.channels or not self.channels.isdisjoint(places)

    def check(
        self, user: str, groups: Collection[str], places: Collection[str], *, is_dm: bool
    ) -> None:
        """Raises `NotAllowed` unless `user` may ask in this place."""
        if not self.answers_in(places, is_dm=is_dm):
            raise NotAllowed("not an allowed channel" if not is_dm else "DMs are off")
        if not self.may_ask(user, groups):
            raise NotAllowed("not an allowed user")
