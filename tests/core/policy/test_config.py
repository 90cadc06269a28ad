"""threadbot.toml: read and checked, with errors naming the file, the line and the key, and
read again when it changes (a broken edit keeps the last good configuration)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from core.errors import ConfigInvalid
from core.policy import config
from core.policy.config import NO_POLICIES, Layer, PolicyFile, parse
from tests.policy_files import until, written

EXAMPLE = """\
[defaults]
knowledge_bases = ["default"]

[knowledge_bases.hr]
private = true

[slack.T0TEAM]
knowledge_bases = ["default", "eng"]

[slack.T0TEAM.channels.C0HR]
knowledge_bases = ["hr"]

[slack.T0TEAM.dm]
knowledge_bases = ["default"]

[discord.111.categories.222]
knowledge_bases = ["eng"]

[discord.dm]
knowledge_bases = []
"""


def assert_refused(tmp_path: Path, text: str, message: str) -> None:
    """The file `text` is refused: the error starts with the file's path and says `message`."""
    path = written(tmp_path, text)
    with pytest.raises(ConfigInvalid) as caught:
        parse(path)
    assert str(caught.value).startswith(str(path)) and message in str(caught.value)


def test_the_example_is_read_as_layers_by_place(tmp_path: Path) -> None:
    policies = parse(written(tmp_path, EXAMPLE))
    assert policies.defaults == Layer(("default",))
    assert policies.private == {"hr"}
    assert policies.layers[("slack", "T0TEAM")] == Layer(("default", "eng"))
    assert policies.layers[("slack", "T0TEAM", "channels", "C0HR")] == Layer(("hr",))
    assert policies.layers[("slack", "T0TEAM", "dm")] == Layer(("default",))
    assert policies.layers[("discord", "111", "categories", "222")] == Layer(("eng",))
    assert policies.layers[("discord", "dm")] == Layer(())
    assert policies.bases == {"default", "eng", "hr"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[defaults]\nknowledge_bases = ["default"]\n\n[slack.T0]\nknowledgebases = ["x"]\n',
            "line 5: slack.T0.knowledgebases is not a setting threadbot reads",
        ),
        (
            '[slack.T0.channels.C1]\n# the HR channel\nknowledge_bases = "hr"\n',
            "line 3: slack.T0.channels.C1.knowledge_bases must be a list",
        ),
        (
            '[defaults]\nknowledge_bases = ["Not A Name"]\n',
            "line 2: defaults.knowledge_bases 'Not A Name' is not a knowledge base's name",
        ),
        (
            "[knowledge_bases.hr]\nprivate = 1\n",
            "line 2: knowledge_bases.hr.private must be true or false",
        ),
        ("[teams.x]\nknowledge_bases = []\n", "line 1: teams is not a table threadbot reads"),
        ("[defaults\nknowledge_bases = []\n", "(at line 1, column 10)"),
    ],
)
def test_an_error_names_the_file_the_line_and_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    assert_refused(tmp_path, text, message)


def test_a_missing_file_is_said_plainly(tmp_path: Path) -> None:
    with pytest.raises(ConfigInvalid, match="no such file"):
        PolicyFile(tmp_path / "absent.toml")


async def test_an_edit_is_read_again_and_a_broken_one_keeps_the_last_good(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(config, "RELOAD_CHECK_S", 0.0)
    path = written(tmp_path, '[defaults]\nknowledge_bases = ["default"]\n')
    policy = PolicyFile(path)
    assert (await policy.current()).defaults == Layer(("default",))

    path.write_text('[defaults]\nknowledge_bases = ["eng"]\n')
    os.utime(path, (1, 1))  # a new modification time, whatever the clock's resolution
    assert (await policy.current()).defaults == Layer(("eng",))

    path.write_text("[defaults]\nknowledge_bases = 3\n")
    os.utime(path, (2, 2))
    assert (await policy.current()).defaults == Layer(("eng",))  # the last good one
    assert "keeping the configuration read before" in caplog.text
    assert "line 2: defaults.knowledge_bases must be a list" in caplog.text


def test_a_place_takes_a_prompt_and_a_chat_model(tmp_path: Path) -> None:
    policies = parse(
        written(tmp_path, '[defaults]\nprompt = "  Be brief.  "\nchat_model = "small"\n')
    )
    assert policies.defaults == Layer(None, "Be brief.", "small")
    with pytest.raises(ConfigInvalid, match=r"line 2: defaults\.prompt must be a text"):
        parse(written(tmp_path, "[defaults]\nprompt = 3\n"))
    with pytest.raises(ConfigInvalid, match="is longer than 4,000 characters"):
        parse(written(tmp_path, f'[defaults]\nprompt = "{"x" * 4001}"\n'))


SURFACE = """\
[defaults]
reply_mode = "mention"

[slack.T0TEAM]
answers = false
allowed_users = ["U0ALICE"]

[slack.T0TEAM.channels.C0HELP]
reply_mode = "auto"
answers = true
allowed_groups = ["S0DEVS"]

[slack.T0TEAM.dm]
answers = false

[discord.111.channels.333]
reply_mode = "forum"
allowed_users = [4242, "4343"]
"""


def test_a_place_takes_a_reply_mode_allow_lists_and_whether_it_answers(tmp_path: Path) -> None:
    policies = parse(written(tmp_path, SURFACE))
    assert policies.defaults == Layer(reply_mode="mention")
    assert policies.layers[("slack", "T0TEAM")] == Layer(allowed_users=("U0ALICE",), answers=False)
    assert policies.layers[("slack", "T0TEAM", "channels", "C0HELP")] == Layer(
        reply_mode="auto", allowed_groups=("S0DEVS",), answers=True
    )
    assert policies.layers[("slack", "T0TEAM", "dm")] == Layer(answers=False)
    # Discord's ids may be written as numbers.
    assert policies.layers[("discord", "111", "channels", "333")] == Layer(
        reply_mode="forum", allowed_users=("4242", "4343")
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[slack.T0]\nanswers = true\n\n[slack.T0.channels.C1]\nreply_mode = "forum"\n',
            "line 5: slack.T0.channels.C1.reply_mode is 'forum', a mode Slack has not: "
            "one of auto, mention",
        ),
        (
            '[defaults]\nreply_mode = "thread"\n',
            "line 2: defaults.reply_mode is 'thread', a mode Slack has not ([defaults] speak "
            "for Slack too)",
        ),
        (
            '[discord.1]\nreply_mode = "always"\n',
            "line 2: discord.1.reply_mode must be one of auto, forum, mention, thread",
        ),
        (
            '[discord.dm]\nreply_mode = "auto"\n',
            "line 2: discord.dm.reply_mode is not a setting of DMs",
        ),
        (
            '[slack.T0.channels.C1]\nallowed_users = "U1"\n',
            "line 2: slack.T0.channels.C1.allowed_users must be a list of ids",
        ),
        (
            "[slack.T0.dm]\nallowed_groups = [true]\n",
            "line 2: slack.T0.dm.allowed_groups must be a list of ids",
        ),
        ('[slack.T0.dm]\nanswers = "no"\n', "line 2: slack.T0.dm.answers must be true or false"),
    ],
)
def test_a_wrong_mode_list_or_answers_names_the_line_and_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    assert_refused(tmp_path, text, message)


async def test_the_snapshot_is_the_last_good_configuration_and_watch_follows_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(config, "RELOAD_CHECK_S", 0.01)
    path = written(tmp_path, '[defaults]\nreply_mode = "mention"\n')
    policy = PolicyFile(path)
    first = policy.snapshot()
    assert first.defaults == Layer(reply_mode="mention")

    path.write_text('[defaults]\nreply_mode = "auto"\n')
    os.utime(path, (1, 1))
    assert policy.snapshot() is first  # read without looking at the file

    watching = asyncio.create_task(policy.watch())
    try:
        await until(lambda: policy.snapshot() is not first)
        assert policy.snapshot().defaults == Layer(reply_mode="auto")
        path.write_text('[defaults]\nreply_mode = "forum"\n')  # broken: kept the last good
        os.utime(path, (2, 2))
        assert (await policy.current()).defaults == Layer(reply_mode="auto")
    finally:
        watching.cancel()
    assert PolicyFile(None).snapshot() is NO_POLICIES
    await PolicyFile(None).watch()  # nothing to follow: returns at once


def test_the_mcp_table_is_the_mcp_servers_own(tmp_path: Path) -> None:
    text = (
        '[knowledge_bases.hr]\nprivate = true\n\n[mcp]\nknowledge_bases = ["default", "hr"]\n'
        'prompt = "Answer for engineers."\nchat_model = "small"\n'
    )
    policies = parse(written(tmp_path, text))
    assert policies.layers[("mcp",)] == Layer(("default", "hr"), "Answer for engineers.", "small")
    assert policies.bases == {"default", "hr"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[mcp]\nknowledge_bases = ["default"]\nreply_mode = "auto"\n',
            "line 3: mcp.reply_mode is not a setting of the MCP server (chat_model, "
            "knowledge_bases, prompt)",
        ),
        ("[mcp]\nallowed_users = []\n", "line 2: mcp.allowed_users is not a setting of the MCP"),
        ('[mcp]\nknowledge_bases = "hr"\n', "line 2: mcp.knowledge_bases must be a list"),
        ('[mcp]\nknowledge_bases = ["HR!"]\n', "line 2: mcp.knowledge_bases 'HR!' is not a"),
        ("[mcp]\nprompt = 3\n", "line 2: mcp.prompt must be a text"),
        ("[mcp.channels.x]\nprompt = 'x'\n", "line 1: mcp.channels is not a setting of the MCP"),
        ("mcp = 3\n", "mcp must be a table"),
    ],
)
def test_a_wrong_mcp_table_names_the_line_and_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    assert_refused(tmp_path, text, message)
