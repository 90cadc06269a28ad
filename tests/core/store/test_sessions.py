"""Session ids: tenant-namespaced, hash-tagged by channel, their reset levels and old forms."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from core.store.sessions import console_session, discord_session, levels, slack_session, tagged


def test_slack_thread_and_whole_dm() -> None:
    assert slack_session("T1", "C1", "1700000000.000100") == "slack:{T1:C1}:1700000000.000100"
    assert slack_session("T1", "D1") == "slack:{T1:D1}"
    assert slack_session("T1", "D1", None) == slack_session("T1", "D1", "") == "slack:{T1:D1}"


def test_slack_teams_never_share_a_session() -> None:
    assert slack_session("T1", "C1", "1.0") != slack_session("T2", "C1", "1.0")


def test_discord_channel_and_dm() -> None:
    assert discord_session(10, 20) == "discord:{10:20}"
    assert discord_session("10", "20") == discord_session(10, 20)
    assert discord_session(None, 20) == "discord:{dm:20}"


def test_console_names_cannot_break_out_of_the_tag() -> None:
    assert console_session("alice") == "console:{alice}"
    sid = console_session("a}b{c")
    assert sid == "console:{a)b(c}"
    assert sid.count("{") == sid.count("}") == 1


@pytest.mark.parametrize(
    ("session_id", "expected"),
    [
        ("slack:{T:C}:1.2", ["slack:{T:C}", "slack:{T:C}:1.2"]),
        ("slack:{T:D}", ["slack:{T:D}"]),
        ("discord:{1:2}", ["discord:{1:2}"]),
        ("discord:{dm:5}", ["discord:{dm:5}"]),
        ("console:{me}", ["console:{me}"]),
        # A `:` inside the tag does not start a level of its own.
        ("console:{a:b}", ["console:{a:b}"]),
    ],
)
def test_levels_start_at_the_tag_and_end_at_the_session(
    session_id: str, expected: list[str]
) -> None:
    assert levels(session_id) == expected


def test_levels_of_an_id_without_a_tag_never_reach_the_bare_platform() -> None:
    assert levels("slack:T:C:ts") == ["slack:T", "slack:T:C", "slack:T:C:ts"]
    assert levels("x:y") == ["x:y"]
    assert levels("plain") == ["plain"]


@pytest.mark.parametrize(
    "session_id",
    [slack_session("T", "C", "1.2"), discord_session(3, 4), console_session("me:too")],
)
def test_every_level_is_a_prefix_in_the_sessions_slot(session_id: str) -> None:
    """A reset of any level is one single-slot transaction with the session's own keys."""
    slot = key_slot(session_id.encode())
    for level in levels(session_id):
        assert session_id.startswith(level)
        assert key_slot(f"ns:{level}:history".encode()) == slot


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("slack:T:C:1.2", "slack:{T:C}:1.2"),
        ("slack:T:D", "slack:{T:D}"),
        ("discord:1:2", "discord:{1:2}"),
        ("discord:dm:5", "discord:{dm:5}"),
        ("console:me", "console:{me}"),
    ],
)
def test_tagged_converts_the_old_form(old: str, new: str) -> None:
    assert tagged(old) == new


@pytest.mark.parametrize(
    "session_id",
    [
        "slack:{T:C}:1.2",
        "discord:{dm:5}",
        "console:{me}",
        "slack:T",  # too short to be a slack id
        "slack:T:C:1.2:extra",
        "discord:1:2:3",
        "console:",
        "teams:a:b",
        "",
    ],
)
def test_tagged_keeps_tagged_and_unknown_ids(session_id: str) -> None:
    assert tagged(session_id) == session_id


def test_tagged_is_idempotent() -> None:
    for old in ("slack:T:C:1.2", "discord:dm:5", "console:me"):
        assert tagged(tagged(old)) == tagged(old)
