"""Reply modes and access lists per place from threadbot.toml, end to end in Discord through the
real discord.py client: a forum and an auto-reply channel set by the file; allow lists on one
channel silence others there and nowhere else; `[discord.dm]` opens or closes DMs over
DISCORD_ALLOW_DMS; an edit of the file while the bot runs changes a channel's mode; a wrong
value stops the start with its line named."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from core.store.sessions import discord_session
from tests.bots.discord.test_bot import StartBot, next_outcome, shown, start_bot
from tests.bots.discord.test_modes import give_the_guild_a_role, said
from tests.cli_runner import env_for, threadbot
from tests.fakes.fake_discord import FakeDiscord
from tests.fakes.fake_openai import FakeOpenAI
from tests.policy_files import until, written

__all__ = ["start_bot"]  # a fixture, used by name

SUPPORT_ROLE = 5555


async def test_the_file_makes_a_forum_and_an_auto_reply_channel(
    tmp_path: Path, start_bot: StartBot, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    fake = fake_discord
    plain, auto = fake.channel_ids
    config = written(
        tmp_path,
        f'[discord.{fake.guild_id}.channels.{fake.forum_id}]\nreply_mode = "forum"\n\n'
        f'[discord.{fake.guild_id}.channels.{auto}]\nreply_mode = "auto"\n',
    )
    client = await start_bot(threadbot_config=config)

    thread, _ = await fake.post_in_forum(title="Deploy fails", content="what does exit 3 mean?")
    session_id, reply = await next_outcome(client)
    post = int(thread["id"])
    assert session_id == discord_session(fake.guild_id, post)
    assert reply is not None and shown(fake, post) == [reply.text]

    await fake.send_message(fake.message_create("how do I deploy?", channel_id=plain))
    session_id, _ = await said(
        fake, client, fake.message_create("how do I deploy?", channel_id=auto)
    )
    assert session_id == discord_session(fake.guild_id, auto)
    assert shown(fake, auto) == ["You said: how do I deploy?"] and shown(fake, plain) == []
    assert len(fake_openai.requests) == 2  # the plain channel's message asked nothing


async def test_allow_lists_on_one_channel_silence_others_there_only(
    tmp_path: Path,
    start_bot: StartBot,
    fake_discord: FakeDiscord,
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = fake_discord
    listed, other = fake.channel_ids
    give_the_guild_a_role(fake, monkeypatch, SUPPORT_ROLE)
    config = written(
        tmp_path,
        f"[discord.{fake.guild_id}.channels.{listed}]\n"
        f'allowed_users = [4242]\nallowed_groups = ["{SUPPORT_ROLE}"]\n',
    )
    client = await start_bot(threadbot_config=config)
    stranger = fake.message_create("me too?", channel_id=listed, author_id=777, mention_bot=True)
    await fake.send_message(stranger)

    await said(fake, client, fake.message_create("me?", channel_id=listed, mention_bot=True))
    member = fake.message_create(
        "support?", channel_id=listed, author_id=888, roles=[SUPPORT_ROLE], mention_bot=True
    )
    await said(fake, client, member)
    elsewhere = fake.message_create("here?", channel_id=other, author_id=777, mention_bot=True)
    await said(fake, client, elsewhere)

    assert shown(fake, listed) == ["You said: me?", "You said: support?"]
    assert shown(fake, other) == ["You said: here?"]
    assert len(fake_openai.requests) == 3  # nothing, not even a refusal, for the stranger there


@pytest.mark.parametrize("allow_dms", [True, False])
async def test_the_dm_table_says_whether_dms_are_answered_over_the_setting(
    allow_dms: bool, tmp_path: Path, start_bot: StartBot, fake_discord: FakeDiscord
) -> None:
    fake = fake_discord
    answers = "false" if allow_dms else "true"  # the file says the opposite of the setting
    config = written(tmp_path, f"[discord.dm]\nanswers = {answers}\n")
    client = await start_bot(threadbot_config=config, discord_allow_dms=allow_dms)
    dm = fake.message_create("hello in private", channel_id=555, guild=False)
    if allow_dms:  # closed by the file
        await fake.dispatch("MESSAGE_CREATE", dm)
        await said(fake, client, fake.message_create("and here?", mention_bot=True))
        assert shown(fake, 555) == []
    else:  # opened by the file
        await said(fake, client, dm)
        assert shown(fake, 555) == ["You said: hello in private"]


async def test_an_edit_of_the_file_while_running_changes_a_channels_mode(
    tmp_path: Path,
    start_bot: StartBot,
    fake_discord: FakeDiscord,
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("core.policy.config.RELOAD_CHECK_S", 0.01)
    fake, channel = fake_discord, fake_discord.channel_ids[1]
    table = f"[discord.{fake.guild_id}.channels.{channel}]\n"
    config = written(tmp_path, table + 'reply_mode = "auto"\n')
    client = await start_bot(threadbot_config=config)
    await said(fake, client, fake.message_create("how do I deploy?", channel_id=channel))

    before = client.policy.snapshot()
    await asyncio.to_thread(config.write_text, table + 'reply_mode = "thread"\n')
    os.utime(config, (1, 1))  # a new modification time, whatever the clock's resolution
    await until(lambda: client.policy.snapshot() is not before)
    question = fake.message_create("Where are the logs kept?", channel_id=channel)
    session_id, _ = await said(fake, client, question)

    # Now each question gets a thread of its own, started from it.
    assert session_id == discord_session(fake.guild_id, int(question["id"]))
    assert [t["name"] for t in fake.threads_created] == ["Where are the logs kept?"]
    assert shown(fake, channel) == ["You said: how do I deploy?"]


async def test_a_wrong_value_stops_the_start_with_its_line(tmp_path: Path) -> None:
    config = written(tmp_path, "[discord.111.channels.222]\nallowed_users = 4242\n")
    env = env_for(
        tmp_path,
        THREADBOT_DATA_DIR=str(tmp_path / "data"),
        THREADBOT_CONFIG=str(config),
        DISCORD_TOKEN="fake-token",
    )
    _, err, code = await threadbot("discord", env=env)
    assert code == 2
    assert f"{config}, line 2: discord.111.channels.222.allowed_users must be a list of ids" in err
