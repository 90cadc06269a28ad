"""`turn_from_slack` on hand-built envelopes: the cases the recorded payloads of test_bot.py
leave out (mention forms, other people's mentions, subtypes, reset words, fallbacks)."""

from __future__ import annotations

from typing import Any

import pytest

from bots.slack.translator import RESET_WORDS, place_words, turn_from_slack
from core.store.sessions import slack_session

BOT = "U0BOT1234"
TEAM = "T0TEAM"
CHANNEL = "C0CHAN"
DM = "D0DIRECT"
TS = "1712345678.000100"
THREAD = "1712345600.000001"


def envelope(event_id: str | None = "Ev0TEST", team_id: str | None = TEAM, **event: Any):
    body: dict[str, Any] = {
        "type": "event_callback",
        "event": {"type": "app_mention", "user": "U0ALICE", "channel": CHANNEL, "ts": TS, **event},
    }
    if team_id is not None:
        body["team_id"] = team_id
    if event_id is not None:
        body["event_id"] = event_id
    return body


def translated(body: dict[str, Any]):
    parsed = turn_from_slack(body, BOT)
    assert parsed is not None
    return parsed


@pytest.mark.parametrize("text", [f"<@{BOT}> how?", f"<@{BOT}|threadbot> how?", f"how <@{BOT}>?"])
def test_every_form_of_the_bot_mention_is_stripped(text: str):
    turn, place = translated(envelope(text=text))
    assert turn.question in ("how?", "how ?")
    assert BOT not in turn.question
    assert place.mentioned


def test_other_people_mentioned_stay_in_the_question():
    turn, _ = translated(envelope(text=f"<@{BOT}> ask <@U0BOB99> about it"))
    assert turn.question == "ask <@U0BOB99> about it"


def test_a_mention_at_the_top_opens_a_thread_under_itself():
    turn, place = translated(envelope(text=f"<@{BOT}> hi"))
    assert place.thread_ts == TS
    assert turn.session_id == slack_session(TEAM, CHANNEL, TS)
    assert turn.place == "in this thread"
    assert turn.platform == "slack" and turn.user == "U0ALICE"
    assert turn.event_key == "slack:Ev0TEST" and not turn.retried


def test_a_mention_in_a_thread_continues_the_thread():
    turn, place = translated(envelope(text=f"<@{BOT}> hi", thread_ts=THREAD))
    assert place.thread_ts == THREAD
    assert turn.session_id == slack_session(TEAM, CHANNEL, THREAD)


def test_without_an_event_id_there_is_no_event_key():
    turn, _ = translated(envelope(event_id=None, text=f"<@{BOT}> hi"))
    assert turn.event_key is None


def test_the_team_falls_back_to_the_event():
    turn, place = translated(envelope(team_id=None, team="T0OTHER", text=f"<@{BOT}> hi"))
    assert place.team == "T0OTHER"
    assert turn.session_id == slack_session("T0OTHER", CHANNEL, TS)
    assert turn_from_slack(envelope(team_id=None, text=f"<@{BOT}> hi"), BOT) is None


@pytest.mark.parametrize("subtype", ["thread_broadcast", "file_share"])
def test_human_subtypes_are_answered(subtype: str):
    turn, _ = translated(envelope(text=f"<@{BOT}> see this", subtype=subtype))
    assert turn.question == "see this"


@pytest.mark.parametrize(
    "event",
    [
        {"subtype": "channel_join"},
        {"bot_profile": {"id": "B0X"}},
        {"bot_id": "B0X"},
        {"user": None},
        {"channel": ""},
        {"ts": None},
        {"type": "reaction_added"},
    ],
)
def test_what_is_not_a_person_asking_is_ignored(event: dict[str, Any]):
    assert turn_from_slack(envelope(text=f"<@{BOT}> hello", **event), BOT) is None


def test_an_envelope_without_an_event_is_ignored():
    assert turn_from_slack({"type": "url_verification"}, BOT) is None


def test_a_dm_is_known_by_its_channel_even_without_a_channel_type():
    turn, place = translated(envelope(type="message", channel=DM, text="hello"))
    assert place.is_dm and place.thread_ts is None
    assert not place.needs_thread_check
    assert turn.session_id == slack_session(TEAM, DM)
    assert turn.place == "in this DM"


def test_an_unaddressed_thread_reply_needs_the_thread_check():
    turn, place = translated(envelope(type="message", text="and then?", thread_ts=THREAD))
    assert place.needs_thread_check and not place.mentioned
    assert turn.session_id == slack_session(TEAM, CHANNEL, THREAD)


def test_a_thread_parent_message_is_not_a_reply():
    assert turn_from_slack(envelope(type="message", text="hi", thread_ts=TS), BOT) is None


@pytest.mark.parametrize("words", sorted(RESET_WORDS))
def test_reset_words_to_the_bot_reset(words: str):
    turn, _ = translated(envelope(text=f"<@{BOT}> {words.upper()}!"))
    assert turn.action == "reset"
    turn, _ = translated(envelope(type="message", channel=DM, text=f"{words}."))
    assert turn.action == "reset"


def test_reset_in_a_thread_without_the_mention_is_a_question():
    turn, _ = translated(envelope(type="message", text="reset", thread_ts=THREAD))
    assert turn.action == "answer"
    turn, _ = translated(envelope(text=f"<@{BOT}> reset my password"))
    assert turn.action == "answer"


def test_retried_is_passed_through():
    parsed = turn_from_slack(envelope(text=f"<@{BOT}> hi"), BOT, retried=True)
    assert parsed is not None and parsed[0].retried


def test_place_words():
    assert place_words(THREAD, False) == "in this thread"
    assert place_words(THREAD, True) == "in this thread"
    assert place_words(None, True) == "in this DM"
    assert place_words(None, False) == "in this channel"
