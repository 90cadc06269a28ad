"""Reply modes and access lists per place from threadbot.toml, end to end in Slack through the
real bolt app: a channel the file makes `auto` answers unmentioned questions; allow lists set on
one channel refuse others there, privately, and nowhere else; a DM table's `answers = false`
closes DMs; an edit of the file while the bot runs changes a channel's mode; a Discord-only
mode in a Slack table stops the start with its line named."""

# ruff: noqa: F811 (the tests take `make_bot`, the fixture imported from test_bot, by name)

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tests.bots.slack.test_asked import ALICE, BOB, answers, assert_refused_privately
from tests.bots.slack.test_bot import (  # noqa: F401 (make_bot: the fixture)
    CHANNEL,
    DM,
    MENTION_TS,
    BotFactory,
    answer_via_socket,
    make_bot,
    mention,
    payload,
)
from tests.bots.slack.test_showing import ASK, ASKED_TS, top_level
from tests.cli_runner import env_for, threadbot
from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.fake_slack import FakeSlack
from tests.policy_files import until, written

pytestmark = pytest.mark.timeout(60)

HR, DEV = "C0HR", "C0DEV"


async def test_a_channel_the_file_makes_auto_answers_unmentioned_questions(
    tmp_path: Path, make_bot: BotFactory, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    config = written(tmp_path, f'[slack.T0TEAM.channels.{ASK}]\nreply_mode = "auto"\n')
    bot = await make_bot(threadbot_config=config)
    await answer_via_socket(bot, top_level("how do I rotate the keys?"))
    await answer_via_socket(
        bot, top_level("and in general?", ts="1712345801.000100", channel=CHANNEL)
    )

    assert answers(fake_slack, ASKED_TS, ASK) == ["You said: how do I rotate the keys?"]
    assert len(fake_openai.requests) == 1  # the other channel is still `mention`


async def test_the_settings_mode_holds_where_the_file_sets_none(
    tmp_path: Path, make_bot: BotFactory, fake_slack: FakeSlack
) -> None:
    config = written(tmp_path, '[slack.T0TEAM.channels.C0OTHER]\nreply_mode = "mention"\n')
    bot = await make_bot(threadbot_config=config, slack_reply_modes=f"{ASK}:auto")
    await answer_via_socket(bot, top_level("how do I rotate the keys?"))
    assert answers(fake_slack, ASKED_TS, ASK) == ["You said: how do I rotate the keys?"]


async def test_allow_lists_on_one_channel_refuse_others_there_only(
    tmp_path: Path, make_bot: BotFactory, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    fake_slack.usergroups = {"S0DEVS": [BOB]}
    config = written(
        tmp_path,
        f'[slack.T0TEAM.channels.{HR}]\nallowed_users = ["{BOB}"]\n\n'
        f'[slack.T0TEAM.channels.{DEV}]\nallowed_groups = ["S0DEVS"]\n',
    )
    bot = await make_bot(threadbot_config=config)
    await answer_via_socket(bot, mention("may I?", channel=HR))
    assert_refused_privately(fake_slack, fake_openai, HR, ALICE, MENTION_TS)

    await answer_via_socket(bot, mention("and here?", channel=CHANNEL, ts="1712345690.000100"))
    await answer_via_socket(bot, mention("and me?", channel=HR, user=BOB, ts="1712345691.000100"))
    await answer_via_socket(bot, mention("devs?", channel=DEV, user=BOB, ts="1712345692.000100"))
    await answer_via_socket(bot, mention("me?", channel=DEV, ts="1712345693.000100"))
    assert answers(fake_slack, "1712345690.000100", CHANNEL) == ["You said: and here?"]
    assert answers(fake_slack, "1712345691.000100", HR) == ["You said: and me?"]
    assert answers(fake_slack, "1712345692.000100", DEV) == ["You said: devs?"]
    assert answers(fake_slack, "1712345693.000100", DEV) == []
    refusals = fake_slack.calls_to("chat.postEphemeral")
    assert [(r.body["channel"], r.body["user"]) for r in refusals] == [(HR, ALICE), (DEV, ALICE)]
    # The group's members are read for the channel that lists it, and only there.
    assert len(fake_slack.calls_to("usergroups.users.list")) == 1


async def test_a_dm_table_says_whether_dms_are_answered(
    tmp_path: Path, make_bot: BotFactory, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    closed = written(tmp_path, "[slack.T0TEAM.dm]\nanswers = false\n")
    bot = await make_bot(threadbot_config=closed)
    await answer_via_socket(bot, payload("message_im"))
    assert_refused_privately(fake_slack, fake_openai, DM, ALICE, None)
    await answer_via_socket(bot, mention("in a channel then?"))
    assert answers(fake_slack) == ["You said: in a channel then?"]

    # Over SLACK_ALLOW_DMS=false, the other way round.
    opened = tmp_path / "open"
    opened.mkdir()
    bot = await make_bot(
        threadbot_config=written(opened, "[slack.T0TEAM.dm]\nanswers = true\n"),
        slack_allow_dms=False,
    )
    await answer_via_socket(bot, payload("message_im", text="hello there?"))
    assert answers(fake_slack, None, DM) == ["You said: hello there?"]


async def test_an_edit_of_the_file_while_running_changes_a_channels_mode(
    tmp_path: Path,
    make_bot: BotFactory,
    fake_slack: FakeSlack,
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("core.policy.config.RELOAD_CHECK_S", 0.01)
    config = written(tmp_path, f'[slack.T0TEAM.channels.{ASK}]\nreply_mode = "mention"\n')
    bot = await make_bot(threadbot_config=config)
    async with bot:  # as `threadbot slack` serves it: the file is followed meanwhile
        before = bot.policy.snapshot()
        await answer_via_socket(bot, top_level("how do I rotate the keys?"))
        assert fake_openai.requests == []

        edited = f'[slack.T0TEAM.channels.{ASK}]\nreply_mode = "auto"\n'
        await asyncio.to_thread(config.write_text, edited)
        os.utime(config, (1, 1))  # a new modification time, whatever the clock's resolution
        await until(lambda: bot.policy.snapshot() is not before)
        await answer_via_socket(bot, top_level("and the old ones?", ts="1712345801.000100"))

    assert answers(fake_slack, "1712345801.000100", ASK) == ["You said: and the old ones?"]
    assert answers(fake_slack, ASKED_TS, ASK) == []


async def test_a_discord_mode_in_a_slack_table_stops_the_start_with_its_line(
    tmp_path: Path,
) -> None:
    config = written(tmp_path, f'[slack.T0TEAM.channels.{ASK}]\n\nreply_mode = "forum"\n')
    env = env_for(
        tmp_path,
        THREADBOT_DATA_DIR=str(tmp_path / "data"),
        THREADBOT_CONFIG=str(config),
        SLACK_BOT_TOKEN="xoxb-test",
        SLACK_SIGNING_SECRET="secret",
    )
    _, err, code = await threadbot("slack", env=env)
    assert code == 2
    assert (
        f"{config}, line 3: slack.T0TEAM.channels.{ASK}.reply_mode is 'forum', a mode Slack has "
        "not: one of auto, mention" in err
    )
