"""Knowledge per channel, end to end in Slack: two channels mapped to different bases, one of
them private, asked the same question through the real bolt app; the private text reaches the
model and the reply only in the channel mapped to it, never in the other channel nor in a DM.
A configuration file that is wrong stops the start with its line named."""

# ruff: noqa: F811 (the tests take `make_bot`, the fixture imported from test_bot, by name)

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from core import ingest
from core.knowledge.embeddings import LocalEmbeddings
from tests.bots.slack.test_bot import (  # noqa: F401 (make_bot: the fixture)
    BotFactory,
    answer_via_socket,
    make_bot,
    mention,
    payload,
)
from tests.cli_runner import env_for, threadbot
from tests.conftest import MakeSettings
from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.fake_slack import FakeSlack
from tests.policy_files import written

pytestmark = pytest.mark.timeout(60)

SECRET = "The salary review budget is 4.2 million"
CONFIG = """\
[knowledge_bases.hr]
private = true

[slack.T0TEAM]
knowledge_bases = ["default", "hr"]   # hr is private: not through the workspace's mapping

[slack.T0TEAM.channels.C0HR]
knowledge_bases = ["hr"]
"""


@pytest.fixture
async def bases(make_settings: MakeSettings, tmp_path: Path) -> Path:
    """The default base (the team's handbook) and the private `hr` base, on disk."""
    settings = make_settings()
    embeddings = LocalEmbeddings()
    for base, name, text in (
        (None, "handbook.md", "# Reviews\n\nPerformance reviews happen every spring."),
        ("hr", "salaries.md", f"# Salary review\n\n{SECRET}; the salary review is in March."),
    ):
        folder = tmp_path / f"docs-{base or 'default'}"
        folder.mkdir()
        (folder / name).write_text(text)
        await asyncio.to_thread(
            ingest, settings.for_base(base), [folder], embeddings, embeddings.name, progress=False
        )
    return written(tmp_path, CONFIG)


async def test_a_private_base_answers_only_in_the_channel_mapped_to_it(
    bases: Path, make_bot: BotFactory, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    bot = await make_bot(threadbot_config=str(bases))
    question = "when is the salary review?"
    await answer_via_socket(bot, mention(question, channel="C0HR", ts="1712345678.000100"))
    await answer_via_socket(bot, mention(question, channel="C0GENERAL", ts="1712345679.000100"))
    await answer_via_socket(bot, payload("message_im", text=question))

    hr, general, dm = (str(r["messages"]) for r in fake_openai.requests)
    assert SECRET in hr  # mapped there by the channel's own table
    assert SECRET not in general and SECRET not in dm
    assert "handbook.md" in general  # the default base answers there
    shown = {m.channel: m.text for m in fake_slack.messages.values()}
    assert "salaries.md" in shown["C0HR"]
    assert "salaries.md" not in shown["C0GENERAL"] and "salaries.md" not in shown["D0ALICE"]


async def test_an_edit_of_the_file_applies_to_the_next_question(
    bases: Path, make_bot: BotFactory, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("core.policy.config.RELOAD_CHECK_S", 0.0)
    bot = await make_bot(threadbot_config=str(bases))
    question = "when is the salary review?"
    await answer_via_socket(bot, mention(question, channel="C0GENERAL", ts="1712345680.000100"))
    edited = CONFIG + '\n[slack.T0TEAM.channels.C0GENERAL]\nknowledge_bases = ["hr"]\n'
    await asyncio.to_thread(bases.write_text, edited)
    os.utime(bases, (1, 1))  # a new modification time, whatever the clock's resolution
    await answer_via_socket(bot, mention(question, channel="C0GENERAL", ts="1712345681.000100"))
    before, after = (str(r["messages"]) for r in fake_openai.requests)
    assert SECRET not in before and SECRET in after


async def test_a_wrong_configuration_stops_the_start_with_its_line(tmp_path: Path) -> None:
    config = written(tmp_path, '[slack.T0TEAM.channels.C0HR]\nknowledge_bases = "hr"\n')
    env = env_for(tmp_path, THREADBOT_DATA_DIR=str(tmp_path / "data"), THREADBOT_CONFIG=str(config))
    _, err, code = await threadbot("chat", env=env, stdin="hello\n")
    assert code == 2
    assert f"{config}, line 2: slack.T0TEAM.channels.C0HR.knowledge_bases must be a list" in err


async def test_a_place_can_have_its_own_instructions_and_chat_model(
    bases: Path, make_bot: BotFactory, fake_openai: FakeOpenAI
) -> None:
    extra = (
        '\n[slack.T0TEAM.channels.C0SUPPORT]\nprompt = "Answer in French."\n'
        'chat_model = "support-model"\n'
    )
    await asyncio.to_thread(bases.write_text, CONFIG + extra)
    bot = await make_bot(threadbot_config=str(bases), chat_model="main-model")
    await answer_via_socket(bot, mention("hello?", channel="C0SUPPORT", ts="1712345690.000100"))
    await answer_via_socket(bot, mention("hello?", channel="C0GENERAL", ts="1712345691.000100"))
    support, general = fake_openai.requests
    assert (support["model"], general["model"]) == ("support-model", "main-model")
    system = support["messages"][0]["content"]
    # The team's instructions come with the rules, before anything quoted.
    assert "from the team:\nAnswer in French." in system
    assert system.index("Answer in French.") < system.index("\n<documents>\n")
    assert "Answer in French." not in general["messages"][0]["content"]
