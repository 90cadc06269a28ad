"""A place's reply mode and access rules: the most precise table that sets a key, over the
settings; the allow lists read as one list; DMs answered as their own tables say."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.policy import config
from core.policy.answering import access_for, reply_mode_for
from core.policy.audience import Where
from core.policy.config import NO_POLICIES, Policies, parse
from core.turn.access import AccessRules
from tests.conftest import ROOT
from tests.policy_files import written

CONFIG = """\
[defaults]
allowed_groups = ["S0STAFF"]

[slack.T0TEAM]
reply_mode = "auto"
answers = false                 # nowhere in the workspace...

[slack.T0TEAM.channels.C0HELP]
answers = true                  # ...but its help channel
allowed_users = ["U0ALICE"]     # and only Alice there

[slack.T0TEAM.channels.C0OPEN]
answers = true
reply_mode = "mention"
allowed_users = []              # everyone

[slack.T0TEAM.dm]
answers = true

[discord.111]
reply_mode = "thread"

[discord.111.categories.222]
reply_mode = "forum"

[discord.111.channels.333]
reply_mode = "mention"

[discord.dm]
answers = false
"""
SETTINGS = AccessRules(
    users=frozenset({"U0BOB"}), channels=frozenset({"C0SETTINGS"}), allow_dms=False
)


@pytest.fixture
def policies(tmp_path: Path) -> Policies:
    return parse(written(tmp_path, CONFIG))


@pytest.mark.parametrize(
    ("where", "mode"),
    [
        (Where("slack", "T0TEAM", channel="C0HELP"), "auto"),  # the workspace's
        (Where("slack", "T0TEAM", channel="C0OPEN"), "mention"),  # the channel's own
        (Where("slack", "T0OTHER", channel="C0X"), "thread"),  # no table: the settings'
        (Where("discord", "111", channel="999"), "thread"),  # the guild's
        (Where("discord", "111", "222", "999"), "forum"),  # the category's
        (Where("discord", "111", "222", "333"), "mention"),  # the channel's, over its category
        (Where("slack", "T0TEAM", dm=True), "thread"),  # DMs have no mode: the fallback
    ],
)
def test_the_reply_mode_is_the_most_precise_tables_else_the_settings(
    policies: Policies, where: Where, mode: str
) -> None:
    assert reply_mode_for(policies, where, "thread") == mode


def test_without_a_file_the_settings_decide_everywhere() -> None:
    for where in (Where("slack", "T0", channel="C0"), Where("discord", dm=True)):
        assert reply_mode_for(NO_POLICIES, where, "auto") == "auto"
        assert access_for(NO_POLICIES, where, SETTINGS) is SETTINGS


def test_a_table_that_sets_either_list_says_who_may_ask_there(policies: Policies) -> None:
    help_desk = access_for(policies, Where("slack", "T0TEAM", channel="C0HELP"), SETTINGS)
    # Alice alone: not the defaults' group (the channel left allowed_groups out), nor Bob.
    assert (help_desk.users, help_desk.groups) == ({"U0ALICE"}, frozenset())
    assert help_desk.may_ask("U0ALICE") and not help_desk.may_ask("U0BOB", ["S0STAFF"])

    elsewhere = access_for(policies, Where("slack", "T0TEAM", channel="C0RANDOM"), SETTINGS)
    assert (elsewhere.users, elsewhere.groups) == (frozenset(), {"S0STAFF"})  # the defaults'
    assert elsewhere.may_ask("U0CAROL", ["S0STAFF"]) and not elsewhere.may_ask("U0BOB")

    everyone = access_for(policies, Where("slack", "T0TEAM", channel="C0OPEN"), SETTINGS)
    assert everyone.may_ask("U0ANYONE")


def test_answers_stands_where_the_channel_list_would(policies: Policies) -> None:
    def answers(where: Where) -> bool:
        places = [p for p in (where.channel, where.category) if p]
        return access_for(policies, where, SETTINGS).answers_in(places, is_dm=where.dm)

    assert answers(Where("slack", "T0TEAM", channel="C0HELP"))  # its own table: true
    assert not answers(Where("slack", "T0TEAM", channel="C0SETTINGS"))  # the workspace: false
    assert answers(Where("slack", "T0OTHER", channel="C0SETTINGS"))  # no table: SLACK_CHANNELS
    assert not answers(Where("slack", "T0OTHER", channel="C0X"))


def test_dms_take_answers_from_a_dm_table_only(policies: Policies, tmp_path: Path) -> None:
    def answers(policies: Policies, where: Where, fallback: AccessRules = SETTINGS) -> bool:
        places = [where.channel] if where.channel else []
        return access_for(policies, where, fallback).answers_in(places, is_dm=where.dm)

    assert answers(policies, Where("slack", "T0TEAM", dm=True))  # its DM table, over the setting
    assert not answers(policies, Where("discord", dm=True), AccessRules())  # [discord.dm]
    # A [defaults] or workspace `answers` speaks for channels only: it neither opens the DMs
    # the settings keep closed nor closes those they open.
    lenient = parse(written(tmp_path, "[defaults]\nanswers = true\n"))
    assert answers(lenient, Where("slack", "T0OTHER", channel="C0X"))
    assert not answers(lenient, Where("slack", "T0OTHER", dm=True))
    strict = parse(written(tmp_path, "[slack.T0]\nanswers = false\n"))
    assert not answers(strict, Where("slack", "T0", channel="C0SETTINGS"))
    assert answers(strict, Where("slack", "T0", dm=True), AccessRules())


def documented_example() -> str:
    """The full example of docs/configuration.md."""
    text = (ROOT / "docs" / "configuration.md").read_text()
    section = text[text.index("## Knowledge per place: `threadbot.toml`") :]
    return section[section.index("```toml\n") + 8 : section.index("\n```\n")]


def test_the_documented_examples_read_as_the_docs_say(tmp_path: Path) -> None:
    policies = parse(written(tmp_path, documented_example()))
    team, guild = ("slack", "T0123TEAM"), ("discord", "111222333")

    def at(*place: str, **where: Any) -> Where:
        return Where(*place, **where)

    hr = access_for(policies, at(*team, channel="C0456HR"), AccessRules())
    assert (hr.users, hr.groups) == ({"U0ALICE", "U0BOB"}, frozenset())  # not the staff group
    assert access_for(policies, at(*team, channel="C0X"), AccessRules()).groups == {"S0STAFF"}
    ask = at(*team, channel="C0789ASK")
    assert reply_mode_for(policies, ask, "mention") == "auto"
    assert access_for(policies, ask, AccessRules()).may_ask("U0ANYONE")
    assert access_for(policies, at(*team, channel="C0RANDOM"), AccessRules()).answers is False
    no_dms = AccessRules(allow_dms=False)
    assert access_for(policies, at(*team, dm=True), no_dms).answers_in((), is_dm=True)
    assert reply_mode_for(policies, at(*guild, "444555666", "1"), "mention") == "thread"
    assert reply_mode_for(policies, at(*guild, "444555666", "777888999"), "auto") == "forum"
    assert access_for(policies, at("discord", dm=True), no_dms).answers_in((), is_dm=True)

    # The module's own example reads too.
    docstring = str(config.__doc__)
    example = "\n".join(
        line.removeprefix("    ") for line in docstring.splitlines() if line.startswith("    ")
    )
    parse(written(tmp_path, example))
