"""threadbot.toml: read and checked, with errors naming the file, the line and the key, and
read again when it changes (a broken edit keeps the last good configuration)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.errors import ConfigInvalid
from core.policy import config
from core.policy.config import Layer, PolicyFile, parse

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


def written(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "threadbot.toml"
    path.write_text(text)
    return path


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
    path = written(tmp_path, text)
    with pytest.raises(ConfigInvalid) as caught:
        parse(path)
    assert str(caught.value).startswith(str(path)) and message in str(caught.value)


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
