"""Who may ask, and where: empty lists allow everyone everywhere; a listed user or a member of a
listed group may ask in a listed channel (or below one); DMs as set."""

from __future__ import annotations

from dataclasses import replace

import pytest

from core.errors import NotAllowed
from core.turn.access import AccessRules
from tests.conftest import IsolatedSettings


def refusal(rules: AccessRules, user: str, groups=(), places=("C1",), is_dm=False) -> str | None:
    """Why `check` refuses, or None when it allows."""
    try:
        rules.check(user, groups, places, is_dm=is_dm)
    except NotAllowed as exc:
        assert exc.user_message == "Sorry, I'm not set up to answer you here."
        return str(exc)
    return None


def test_empty_lists_allow_everyone_everywhere():
    rules = AccessRules()
    assert refusal(rules, "U1") is refusal(rules, "U2", places=("C9", "T1"), is_dm=True) is None
    assert not rules.lists_groups


@pytest.mark.parametrize(
    ("user", "groups", "allowed"),
    [("U1", (), True), ("U2", ("G1",), True), ("U2", ("G2", "G1"), True), ("U3", ("G2",), False)],
)
def test_a_listed_user_or_a_member_of_a_listed_group_may_ask(user, groups, allowed):
    rules = AccessRules(users=frozenset({"U1"}), groups=frozenset({"G1"}))
    assert refusal(rules, user, groups) == (None if allowed else "not an allowed user")
    assert rules.lists_groups


def test_users_alone_need_no_groups():
    rules = AccessRules(users=frozenset({"U1"}))
    assert refusal(rules, "U1") is None
    assert refusal(rules, "U2", ("G1",)) == "not an allowed user"


@pytest.mark.parametrize(
    ("places", "allowed"),
    [(("C1",), True), (("T7", "C1"), True), (("T7", "C2", "CAT1"), True), (("C2",), False)],
    ids=["channel", "thread-in-channel", "in-a-category", "elsewhere"],
)
def test_only_listed_channels_and_what_sits_in_them(places, allowed):
    rules = AccessRules(channels=frozenset({"C1", "CAT1"}))
    assert refusal(rules, "U1", places=places) == (None if allowed else "not an allowed channel")


def test_direct_messages_as_set_whatever_the_channels():
    listed = AccessRules(channels=frozenset({"C1"}))
    assert refusal(listed, "U1", places=("D5",), is_dm=True) is None
    off = AccessRules(allow_dms=False)
    assert refusal(off, "U1", places=("D5",), is_dm=True) == "DMs are off"
    assert refusal(off, "U1", places=("C1",)) is None


def test_a_channel_is_checked_before_the_user():
    rules = AccessRules(users=frozenset({"U1"}), channels=frozenset({"C1"}))
    assert refusal(rules, "U2", places=("C2",)) == "not an allowed channel"


def test_the_rules_from_each_platforms_settings():
    slack = AccessRules.for_slack(
        IsolatedSettings(
            slack_allowed_users="U1, U2",
            slack_allowed_usergroups="S1",
            slack_channels="C1",
            slack_allow_dms=False,
        )
    )
    assert slack == AccessRules(
        frozenset({"U1", "U2"}), frozenset({"S1"}), frozenset({"C1"}), allow_dms=False
    )
    discord = AccessRules(frozenset({"11", "12"}), frozenset({"21"}), allow_dms=False)
    assert refusal(discord, "13", ("21",)) is None  # a role is a group
    assert AccessRules.for_slack(IsolatedSettings()) == AccessRules()


def test_a_places_own_answers_decides_over_the_channel_list_and_dms() -> None:
    listed = AccessRules(channels=frozenset({"C1"}), allow_dms=False)
    assert refusal(replace(listed, answers=True), "U1", places=("C2",)) is None
    assert refusal(replace(listed, answers=False), "U1") == "not an allowed channel"
    assert refusal(replace(listed, answers=True), "U1", is_dm=True) is None
