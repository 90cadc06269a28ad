"""The one rule of which knowledge bases answer where: a private base only where it is mapped
by the place's own table, never through a wider one, never in an unmapped DM."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.policy.audience import Where, bases_for
from core.policy.config import NO_POLICIES, parse
from tests.core.policy.test_config import EXAMPLE
from tests.policy_files import written

HR_EVERYWHERE = """\
[defaults]
knowledge_bases = ["default", "hr"]
[knowledge_bases.hr]
private = true
[slack.T0TEAM]
knowledge_bases = ["hr", "eng"]
[slack.T0TEAM.channels.C0HR]
knowledge_bases = ["hr"]
[slack.T0TEAM.dm]
knowledge_bases = ["hr"]
"""


@pytest.mark.parametrize(
    ("where", "bases"),
    [
        (Where("slack", "T0TEAM", channel="C0HR"), ["hr"]),  # mapped by the channel: private ok
        (Where("slack", "T0TEAM", channel="C0GENERAL"), ["eng"]),  # the workspace's: hr left out
        (Where("slack", "T0OTHER", channel="C0X"), ["default"]),  # the defaults': hr left out
        (Where("slack", "T0TEAM", dm=True), ["hr"]),  # mapped for DMs
        (Where("discord", "9", channel="8", dm=False), ["default"]),
        (Where("discord", dm=True), ["default"]),  # no DM table: the defaults, hr left out
        (Where("console"), ["default"]),
    ],
)
def test_a_private_base_answers_only_where_its_own_table_maps_it(
    tmp_path: Path, where: Where, bases: list[str]
) -> None:
    assert bases_for(parse(written(tmp_path, HR_EVERYWHERE)), where, "default") == bases


def test_places_take_the_most_precise_mapping(tmp_path: Path) -> None:
    policies = parse(written(tmp_path, EXAMPLE))
    assert bases_for(policies, Where("discord", "111", "222", "333"), "default") == ["eng"]
    assert bases_for(policies, Where("discord", "111", "999", "333"), "default") == ["default"]
    assert bases_for(policies, Where("discord", dm=True), "default") == []  # DMs search nothing


def test_a_place_mapped_nowhere_searches_the_fallback_only() -> None:
    assert bases_for(NO_POLICIES, Where("slack", "T0", channel="C0"), "public") == ["public"]


MCP_PRIVATE = """\
[defaults]
knowledge_bases = ["default", "hr"]
[knowledge_bases.hr]
private = true
"""


def test_the_mcp_server_exposes_a_private_base_only_where_its_own_table_maps_it(
    tmp_path: Path,
) -> None:
    mcp = Where("mcp")
    assert bases_for(NO_POLICIES, mcp, "default") == ["default"]  # no file: the default base
    # No [mcp] table: the defaults speak for it, without the private base, as for a channel.
    assert bases_for(parse(written(tmp_path, MCP_PRIVATE)), mcp, "default") == ["default"]
    mapped = MCP_PRIVATE + '[mcp]\nknowledge_bases = ["hr"]\n'
    assert bases_for(parse(written(tmp_path, mapped)), mcp, "default") == ["hr"]
    # A chat place's table never speaks for the MCP server, nor [mcp] for a chat place.
    chat = mapped + '[slack.T0.channels.C0]\nknowledge_bases = ["eng"]\n'
    policies = parse(written(tmp_path, chat))
    assert bases_for(policies, mcp, "default") == ["hr"]
    assert bases_for(policies, Where("slack", "T0", channel="C1"), "default") == ["default"]
    assert bases_for(policies, Where("console"), "default") == ["default"]
