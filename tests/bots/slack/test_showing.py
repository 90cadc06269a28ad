"""How the Slack bot shows an answer, end to end: the real bolt app and slack_sdk client against
the local Slack (tests/fakes/fake_slack.py), a real Redis and the fake OpenAI server.

It proves that, in native mode, an answer's steps are Slack `task_update` rows (the first step
starts the stream, the search ends naming the sources found) with the answer appended after;
that a native stream Slack ends mid-answer (or the bot stops, as it nears Slack's lifetime) is
finished by editing that message and continued in new ones, every word shown exactly once, no
marker left and one turn saved; that an auto-reply channel answers its questions in a thread
under each, and nothing else (small talk, emoji, bots, other channels); and that a burst of
events is authorised with one `auth.test` call.
"""

# ruff: noqa: F811 (the tests take `make_bot`, the fixture imported from test_bot, by name)

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from bots.slack.bot import SlackBot
from bots.slack.mrkdwn import markdown_to_mrkdwn
from bots.slack.sink import MAX_LEN, PLACEHOLDER, SlackStreamSink
from core import ingest, sessions
from core.knowledge.embeddings import LocalEmbeddings
from core.reply.editor import MARKER
from tests.bots.slack.test_bot import (  # noqa: F401 (make_bot: the fixture)
    CHANNEL,
    MENTION_TS,
    BotFactory,
    answer_via_socket,
    make_bot,
    mention,
    payload,
    thread_reply,
    via_socket_mode,
)
from tests.conftest import SAMPLE_DOCS, MakeSettings
from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.fake_slack import BOT_USER_ID, TEAM_ID, FakeSlack

pytestmark = pytest.mark.timeout(30)

ASK = "C0ASK"  # the auto-reply channel
ASKED_TS = "1712345800.000100"
ENDED = "message_not_in_streaming_state"


def top_level(text: str, ts: str = ASKED_TS, channel: str = ASK, **event: Any) -> dict[str, Any]:
    """A person's top-level channel message (no mention, no thread), as Slack sends it."""
    body = payload("message_thread_reply", text=text, ts=ts, event_ts=ts, channel=channel, **event)
    for key in ("thread_ts", "parent_user_id"):
        body["event"].pop(key, None)
    return body


def words(text: str) -> list[str]:
    return text.split()


def long_answer(paragraphs: int) -> str:
    return "\n\n".join(
        f"Step {i}: " + "rotate the signing key then " * 8 for i in range(paragraphs)
    )


async def one_turn_saved(bot: SlackBot, thread_ts: str, answer: str) -> None:
    history = await bot.pipeline.messages(sessions.slack_session(TEAM_ID, CHANNEL, thread_ts))
    assert len(history) == 2
    assert words(str(history[1].content)) == words(answer)


def no_marker_left(fake: FakeSlack, thread_ts: str = MENTION_TS) -> None:
    texts = [m.text for m in fake.thread(CHANNEL, thread_ts)]
    assert texts and not any(t.rstrip().endswith(MARKER.strip()) for t in texts), texts


@pytest.fixture
async def docs(make_settings: MakeSettings) -> None:
    """The sample documents indexed where the bots' pipelines look (the test's data folder)."""
    embeddings = LocalEmbeddings()
    await asyncio.to_thread(
        ingest, make_settings(), [SAMPLE_DOCS], embeddings, embeddings.name, progress=False
    )


# -- native streams: steps as task rows ------------------------------------------------------


async def test_native_steps_start_the_stream_then_the_answer_is_appended(
    docs: None, make_bot: BotFactory, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    """A mention inside a thread: "thread" (the first step) starts the stream, "search" ends
    naming the sources it found, then the answer and its sources line follow in that message."""
    fake_slack.post_human(CHANNEL, "our bot forgets nothing", ts=MENTION_TS)
    answer = "Mention the bot with the word reset, and it forgets the thread."
    fake_openai.script(answer, chunk_size=8, delay_s=0.01)
    bot = await make_bot(slack_streaming="native")
    asked = mention("How do I reset a conversation?", ts="1712345690.000200", thread_ts=MENTION_TS)
    await answer_via_socket(bot, asked)

    (start,) = fake_slack.calls_to("chat.startStream")
    assert "markdown_text" not in start.body
    assert start.body["chunks"] == [
        {
            "type": "task_update",
            "id": "thread",
            "title": "Reading the thread",
            "status": "in_progress",
        }
    ]
    (status,) = fake_slack.calls_to("assistant.threads.setStatus")
    assert status.at < start.at and fake_slack.statuses == {}
    (shown,) = fake_slack.thread(CHANNEL, MENTION_TS)
    assert set(shown.tasks) == {"thread", "search"}
    assert shown.tasks["thread"]["status"] == "complete"
    assert shown.tasks["thread"]["output"] == "1 earlier message(s)"
    search = shown.tasks["search"]
    assert search["status"] == "complete" and "conversations.md" in search["output"]
    assert shown.text == f"{answer}\n\n_Sources: {search['output']}_"
    # Every task row went out before the first text, each in its own call.
    appends = fake_slack.calls_to("chat.appendStream")
    kinds = ["chunks" if "chunks" in a.body else "text" for a in appends]
    assert kinds[:3] == ["chunks"] * 3 and set(kinds[3:]) <= {"text"}
    assert [c.get("status") for a in appends[:3] for c in a.body["chunks"]] == [
        "complete", "in_progress", "complete"
    ]  # fmt: skip
    counts = fake_slack.counts()
    assert counts.get("chat.stopStream") == 1
    assert "chat.postMessage" not in counts and "chat.update" not in counts
    assert not any(c.error for c in fake_slack.calls)


async def test_native_stream_refused_at_its_first_step_is_shown_by_editing(
    make_bot: BotFactory, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    """Slack refuses the stream the first step asks for: the steps are dropped, the answer
    is posted and edited instead (the stream is never asked for again), all of it."""
    fake_slack.refuse_streaming = "not_allowed_token_type"
    answer = long_answer(30)  # ~7,000 characters: over two messages
    fake_openai.script(answer, chunk_size=200, delay_s=0.005)
    bot = await make_bot(slack_streaming="native")
    await answer_via_socket(bot, mention())
    (start,) = fake_slack.calls_to("chat.startStream")
    assert start.body["chunks"][0]["id"] == "search"  # the index is empty: one step
    assert "chat.appendStream" not in fake_slack.counts()
    assert fake_slack.calls_to("chat.postMessage")[0].body["text"] == PLACEHOLDER
    parts = [m.text for m in fake_slack.thread(CHANNEL, MENTION_TS)]
    assert len(parts) >= 2 and all(len(p) <= MAX_LEN for p in parts)
    assert words(" ".join(parts)) == words(markdown_to_mrkdwn(answer))
    no_marker_left(fake_slack)
    await one_turn_saved(bot, MENTION_TS, answer)


# -- native streams Slack ends (or the bot stops) mid-answer ---------------------------------


async def answer_ended_mid_way(bot: SlackBot, fake: FakeSlack, end: Callable[[], None]) -> None:
    """Ask, and once the stream shows text (the model is still writing), `end` it: from then
    on the stream is past its lifetime. (Ending it before the first text is another case.)"""
    await via_socket_mode(bot, mention())
    await fake.wait_for(lambda: any(m.text for m in fake.thread(CHANNEL, MENTION_TS)))
    end()
    await bot.drain()


@pytest.mark.parametrize("paragraphs", [6, 30], ids=["short", "over-3500-chars"])
async def test_a_stream_slack_ends_is_finished_by_editing_it(
    paragraphs: int, make_bot: BotFactory, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    answer = long_answer(paragraphs)  # ~1,400 or ~7,000 characters, over about a second
    fake_openai.script(answer, chunk_size=len(answer) // 120, delay_s=0.008)
    bot = await make_bot(slack_streaming="native")
    await answer_ended_mid_way(bot, fake_slack, lambda: setattr(fake_slack, "stream_limit_s", 0.3))

    assert len(fake_slack.calls_to("chat.startStream")) == 1
    appends = fake_slack.calls_to("chat.appendStream")
    stream_ts = appends[0].body["ts"]
    assert any(a.error == ENDED for a in appends)
    updates = fake_slack.calls_to("chat.update")
    assert updates and updates[0].body["ts"] == stream_ts and updates[-1].error is None
    shown = fake_slack.thread(CHANNEL, MENTION_TS)
    assert shown[0].ts == stream_ts and shown[0].edits >= 1
    if paragraphs > 6:  # continued in new messages, each within Slack's limit
        assert len(shown) >= 2 and all(len(m.text) <= MAX_LEN for m in shown)
    else:
        assert len(shown) == 1
    assert words(" ".join(m.text for m in shown)) == words(answer)  # nothing lost or repeated
    no_marker_left(fake_slack)
    assert fake_slack.calls_to("chat.postEphemeral") == []
    await one_turn_saved(bot, MENTION_TS, answer)


async def test_the_bot_stops_a_stream_near_its_lifetime_and_finishes_by_editing(
    make_bot: BotFactory, fake_slack: FakeSlack, fake_openai: FakeOpenAI, monkeypatch: Any
) -> None:
    answer = long_answer(6)
    fake_openai.script(answer, chunk_size=12, delay_s=0.008)
    bot = await make_bot(slack_streaming="native")
    await answer_ended_mid_way(
        bot, fake_slack, lambda: monkeypatch.setattr(SlackStreamSink, "lifetime_s", 0.2)
    )

    (stop,) = fake_slack.calls_to("chat.stopStream")
    (shown,) = fake_slack.thread(CHANNEL, MENTION_TS)
    assert stop.body["ts"] == shown.ts and stop.error is None
    assert not any(c.error for c in fake_slack.calls)  # stopped before Slack had to end it
    updates = fake_slack.calls_to("chat.update")
    assert updates and all(u.at > stop.at and u.body["ts"] == shown.ts for u in updates)
    assert words(shown.text) == words(answer)
    no_marker_left(fake_slack)
    await one_turn_saved(bot, MENTION_TS, answer)


@pytest.mark.parametrize("ender", ["slack", "bot"])
async def test_a_stream_that_ends_before_the_first_text_still_shows_the_answer(
    ender: str,
    make_bot: BotFactory,
    fake_slack: FakeSlack,
    fake_openai: FakeOpenAI,
    monkeypatch: Any,
) -> None:
    """The search step started the stream; the model is slow to its first word, and by then
    the stream is over: the answer is edited into the message the step started."""
    if ender == "slack":
        fake_slack.stream_limit_s = 0.2
    else:
        monkeypatch.setattr(SlackStreamSink, "lifetime_s", 0.2)
    answer = "A slow model's answer, after the stream's end."
    fake_openai.script(answer, chunk_size=len(answer) // 2 + 1, delay_s=0.5)
    bot = await make_bot(slack_streaming="native")
    await answer_via_socket(bot, mention())
    (shown,) = fake_slack.thread(CHANNEL, MENTION_TS)
    assert shown.tasks["search"]["status"] == "complete"
    assert shown.text == answer
    assert fake_slack.calls_to("chat.postEphemeral") == []
    await one_turn_saved(bot, MENTION_TS, answer)


async def test_a_native_answer_longer_than_a_stream_keeps_every_part(
    make_bot: BotFactory, fake_slack: FakeSlack, fake_openai: FakeOpenAI, monkeypatch: Any
) -> None:
    """The step-started stream is the reply's first message only: the next part is a stream
    of its own, and the first part stays as it was."""
    monkeypatch.setattr(SlackStreamSink, "max_len", 1500)
    answer = long_answer(12)
    fake_openai.script(answer, chunk_size=40)
    bot = await make_bot(slack_streaming="native")
    await answer_via_socket(bot, mention())
    shown = fake_slack.thread(CHANNEL, MENTION_TS)
    assert len(shown) >= 2 and len(fake_slack.calls_to("chat.startStream")) == len(shown)
    assert words(" ".join(m.text for m in shown)) == words(answer)
    assert not any(m.streaming for m in shown)


async def test_a_stream_that_gets_no_text_is_not_left_open(
    make_bot: BotFactory, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    """The model fails before its first word: the step's stream carries the apology, and is
    stopped rather than left "in progress"."""
    fake_openai.script("never shown", fail_after_chunks=0)
    bot = await make_bot(slack_streaming="native")
    await answer_via_socket(bot, mention())
    await fake_slack.wait_for(lambda: bool(fake_slack.calls_to("chat.stopStream")))
    (shown,) = fake_slack.thread(CHANNEL, MENTION_TS)
    assert not shown.streaming and "⚠️" in shown.text


# -- auto-reply channels ---------------------------------------------------------------------


async def test_an_auto_channel_answers_a_question_in_a_thread_under_it(
    make_bot: BotFactory, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    bot = await make_bot(slack_reply_modes=f"{ASK}:auto")
    await answer_via_socket(bot, top_level("how do I rotate the keys?"))
    (post,) = fake_slack.calls_to("chat.postMessage")
    assert (post.body["channel"], post.body["thread_ts"]) == (ASK, ASKED_TS)
    assert [m.text for m in fake_slack.thread(ASK, ASKED_TS)] == [
        "You said: how do I rotate the keys?"
    ]
    assert fake_slack.thread(ASK, None) == []  # nothing at the top of the channel
    (status,) = fake_slack.calls_to("assistant.threads.setStatus")
    assert status.body["thread_ts"] == ASKED_TS

    # A reply in that thread is followed, as in any thread the bot answered in.
    follow_up = thread_reply("and the old ones?", ts="1712345810.000100", thread_ts=ASKED_TS)
    follow_up["event"]["channel"] = ASK
    await answer_via_socket(bot, follow_up)
    assert [m.text for m in fake_slack.thread(ASK, ASKED_TS)][1:] == ["You said: and the old ones?"]
    session = sessions.slack_session(TEAM_ID, ASK, ASKED_TS)
    assert len(await bot.pipeline.messages(session)) == 4
    # Files make a message worth answering, even without a word of a question.
    file = fake_slack.add_file("notes.txt", b"key rotation: every 90 days\n")
    await answer_via_socket(
        bot, top_level("", ts="1712345820.000100", files=[file], subtype="file_share")
    )
    assert len(fake_slack.thread(ASK, "1712345820.000100")) == 1
    assert len(fake_openai.requests) == 3


def _other_bot(**event: Any) -> dict[str, Any]:
    body = payload("message_bot", channel=ASK, ts=ASKED_TS, text="Deploy finished?", **event)
    body["event"].pop("thread_ts")
    return body


def _bot_message() -> dict[str, Any]:
    body = _other_bot(subtype="bot_message")
    body["event"].pop("user")  # a bot_message carries its bot_id, and no user
    return body


@pytest.mark.parametrize(
    "make_event",
    [
        lambda: top_level("thanks!"),
        lambda: top_level("hi all 👋"),
        lambda: top_level(":tada: 🎉 🙏"),
        lambda: _other_bot(),
        _bot_message,
        lambda: top_level("how do I rotate the keys?", channel=CHANNEL),
    ],
    ids=["thanks", "greeting", "emoji-only", "another-bot", "bot_message", "not-auto-channel"],
)
async def test_an_auto_channel_leaves_what_is_not_a_question(
    make_event: Any, make_bot: BotFactory, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    bot = await make_bot(slack_reply_modes=f"{ASK}:auto")
    await answer_via_socket(bot, make_event())
    assert [c.method for c in fake_slack.calls if c.method != "auth.test"] == []
    assert fake_openai.requests == []


async def test_a_mention_in_an_auto_channel_is_answered_once(
    make_bot: BotFactory, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    """Slack sends a top-level mention twice (app_mention, and the channel's message): one
    answer, in one thread."""
    bot = await make_bot(slack_reply_modes=f"{ASK}:auto")
    text = f"<@{BOT_USER_ID}> how do I rotate the keys?"
    await via_socket_mode(bot, mention("how do I rotate the keys?", channel=ASK, ts=ASKED_TS))
    await via_socket_mode(bot, top_level(text))
    await bot.drain()
    assert len(fake_openai.requests) == 1
    assert [m.text for m in fake_slack.thread(ASK, ASKED_TS)] == [
        "You said: how do I rotate the keys?"
    ]


# -- auth.test under a burst -----------------------------------------------------------------


async def test_a_burst_of_200_events_asks_auth_test_once(
    make_bot: BotFactory, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    bot = await make_bot(slack_post_interval_ms=0)
    assert fake_slack.calls_to("auth.test") == []
    threads = [f"1712340000.{n:06d}" for n in range(200)]
    await asyncio.gather(
        *(via_socket_mode(bot, mention(f"q{n}", ts=ts)) for n, ts in enumerate(threads))
    )
    await bot.drain()  # within the module's 30 s timeout (about 5 s here)
    assert len(fake_slack.calls_to("auth.test")) == 1
    shown = {ts: [m.text for m in fake_slack.thread(CHANNEL, ts)] for ts in threads}
    assert shown == {ts: [f"You said: q{n}"] for n, ts in enumerate(threads)}
    assert len(fake_openai.requests) == 200
