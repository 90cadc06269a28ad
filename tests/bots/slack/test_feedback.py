"""👍/👎 in Slack end to end: the real bolt app and slack_sdk client against the local Slack, the
votes in a real Redis. Clicks arrive as Slack sends them: a signed `block_actions` form on the
HTTP Request URL, or an `interactive` envelope over Socket Mode."""

# ruff: noqa: F811 (the tests take `make_bot` and `http_url`, fixtures from test_bot, by name)
from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest
from slack_bolt.adapter.socket_mode.async_internals import run_async_bolt_app
from slack_sdk.socket_mode.request import SocketModeRequest

from bots.slack.bot import SlackBot
from bots.slack.feedback import ACTION_ID, REASON_VIEW
from core.feedback.votes import NEEDS_A_HUMAN, THANKS
from tests.bots.slack.test_bot import (  # noqa: F401 (make_bot, http_url: the fixtures)
    CHANNEL,
    MENTION_TS,
    BotFactory,
    answer_via_socket,
    http_url,
    make_bot,
    mention,
    signed_headers,
)
from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.fake_slack import FakeSlack

pytestmark = pytest.mark.timeout(30)


def answer_message(fake: FakeSlack) -> Any:
    (reply,) = fake.thread(CHANNEL, MENTION_TS)
    return reply


def feedback_element(message: Any) -> dict[str, Any]:
    (block,) = [b for b in message.blocks if b["type"] == "context_actions"]
    (element,) = block["elements"]
    return element  # type: ignore[no-any-return]


async def click(url: str, payload: dict[str, Any]) -> float:
    """POST a click as Slack does; returns how long the ack took."""
    body = FakeSlack.interactive_form(payload)
    headers = signed_headers(body, content_type="application/x-www-form-urlencoded")
    async with aiohttp.ClientSession() as http:
        started = time.monotonic()
        async with http.post(url, data=body, headers=headers) as response:
            assert response.status == 200, await response.text()
        return time.monotonic() - started


async def votes_of(bot: SlackBot, answer_id: str, count: int) -> list[tuple[str, str, str]]:
    """The answer's votes once there are `count` (the clicks' work runs after their ack)."""
    deadline = time.monotonic() + 10
    while True:
        record = await bot.pipeline.records.get(answer_id)
        assert record is not None
        if len(record.votes) == count or time.monotonic() > deadline:
            return [(v.voter, v.vote, v.reason) for v in record.votes]
        await asyncio.sleep(0.05)


async def test_a_final_answer_carries_feedback_buttons_and_clicks_are_kept_once_per_person(
    make_bot: BotFactory, fake_slack: FakeSlack, fake_openai: FakeOpenAI, http_url: Any
) -> None:
    fake_openai.script("Rotate it with `threadbot keys rotate`.", chunk_size=8)
    bot = await make_bot()
    url = await http_url(bot)
    await answer_via_socket(bot, mention("how do I rotate a key?"))
    reply = answer_message(fake_slack)
    # The answer is in the blocks (Slack shows only them), the buttons under it.
    assert reply.blocks[0]["type"] == "section"
    assert "threadbot keys rotate" in reply.blocks[0]["text"]["text"]
    element = feedback_element(reply)
    assert element["type"] == "feedback_buttons" and element["action_id"] == ACTION_ID
    vote, _, answer_id = element["positive_button"]["value"].partition(":")
    assert vote == "up" and await bot.pipeline.records.get(answer_id) is not None

    up = fake_slack.block_actions(CHANNEL, reply.ts, "U0ALICE", ACTION_ID, feedback="positive")
    assert await click(url, up) < 3  # acknowledged within Slack's 3 s
    assert await votes_of(bot, answer_id, 1) == [("slack:U0ALICE", "up", "")]
    await fake_slack.wait_for(lambda: bool(fake_slack.calls_to("chat.postEphemeral")))
    thanks = fake_slack.calls_to("chat.postEphemeral")[-1].body
    assert thanks["user"] == "U0ALICE" and thanks["text"] == THANKS["up"]

    # The same person changes their mind: still one vote, the last; the 👎 opens the form.
    down = fake_slack.block_actions(CHANNEL, reply.ts, "U0ALICE", ACTION_ID, feedback="negative")
    await click(url, down)
    await fake_slack.wait_for(lambda: bool(fake_slack.views))
    assert await votes_of(bot, answer_id, 1) == [("slack:U0ALICE", "down", "")]
    (view,) = fake_slack.views
    assert view["callback_id"] == REASON_VIEW
    # Someone else: a second vote.
    other = fake_slack.block_actions(CHANNEL, reply.ts, "U0BOB", ACTION_ID, feedback="positive")
    await click(url, other)
    assert sorted(await votes_of(bot, answer_id, 2)) == [
        ("slack:U0ALICE", "down", ""),
        ("slack:U0BOB", "up", ""),
    ]

    # The reason, submitted over Socket Mode this time.
    submitted = fake_slack.view_submission(view["id"], "U0ALICE", {"reason": "It cites v1."})
    request = SocketModeRequest(type="interactive", envelope_id="e1", payload=submitted)
    assert (await run_async_bolt_app(bot.app, request)).status == 200
    deadline = time.monotonic() + 10
    while ("slack:U0ALICE", "down", "It cites v1.") not in await votes_of(bot, answer_id, 2):
        assert time.monotonic() < deadline, "the reason was not kept"
        await asyncio.sleep(0.05)


async def test_where_slack_refuses_feedback_buttons_plain_buttons_stand_in(
    make_bot: BotFactory, fake_slack: FakeSlack, fake_openai: FakeOpenAI, http_url: Any
) -> None:
    fake_slack.refuse_block_type("feedback_buttons")
    fake_openai.script("An answer.", chunk_size=4)
    bot = await make_bot()
    url = await http_url(bot)
    await answer_via_socket(bot, mention())
    reply = answer_message(fake_slack)
    (actions,) = [b for b in reply.blocks if b["type"] == "actions"]
    ids = [e["action_id"] for e in actions["elements"]]
    assert ids == [f"{ACTION_ID}:up", f"{ACTION_ID}:down"]
    answer_id = actions["elements"][0]["value"].partition(":")[2]
    await click(url, fake_slack.block_actions(CHANNEL, reply.ts, "U0ALICE", f"{ACTION_ID}:up"))
    assert await votes_of(bot, answer_id, 1) == [("slack:U0ALICE", "up", "")]


async def test_a_native_stream_ends_with_the_buttons(
    make_bot: BotFactory, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    answer = "Native **streaming** answer. " * 5
    fake_openai.script(answer, chunk_size=10, delay_s=0.005)
    bot = await make_bot(slack_streaming="native")
    await answer_via_socket(bot, mention())
    (stop,) = fake_slack.calls_to("chat.stopStream")
    blocks = stop.body["blocks"]
    blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
    assert [b["type"] for b in blocks] == ["context_actions"]
    assert "chat.update" not in fake_slack.counts()  # the stream's last call carried them
    reply = answer_message(fake_slack)
    assert reply.text == answer and feedback_element(reply)["type"] == "feedback_buttons"


async def test_a_thumbs_down_calls_the_user_group_in_the_thread_once(
    make_bot: BotFactory, fake_slack: FakeSlack, fake_openai: FakeOpenAI, http_url: Any
) -> None:
    fake_openai.script("A doubtful answer.", chunk_size=4)
    bot = await make_bot(escalate_slack_usergroup="S0HELPERS")
    url = await http_url(bot)
    await answer_via_socket(bot, mention())
    reply = answer_message(fake_slack)
    for user in ("U0ALICE", "U0BOB"):
        click_ = fake_slack.block_actions(CHANNEL, reply.ts, user, ACTION_ID, feedback="negative")
        await click(url, click_)
    answer_id = feedback_element(reply)["negative_button"]["value"].partition(":")[2]
    await votes_of(bot, answer_id, 2)
    await fake_slack.wait_for(lambda: len(fake_slack.thread(CHANNEL, MENTION_TS)) == 2)
    calls = [m.text for m in fake_slack.thread(CHANNEL, MENTION_TS)][1:]
    assert calls == [f"<!subteam^S0HELPERS> {NEEDS_A_HUMAN['down']}"]  # the first 👎 only


async def test_without_feedback_no_buttons(
    make_bot: BotFactory, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script("An answer.", chunk_size=4)
    bot = await make_bot(feedback=False)
    await answer_via_socket(bot, mention())
    assert not (answer_message(fake_slack).blocks or [])


async def test_a_rate_limit_on_the_buttons_edit_is_waited_out(
    make_bot: BotFactory, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script("A short answer.", chunk_size=40)
    fake_slack.limit_rate("chat.update", calls=1, per_s=0.5)  # the edit after the final: a 429
    bot = await make_bot()
    await answer_via_socket(bot, mention())
    with_blocks = [c for c in fake_slack.calls_to("chat.update") if "blocks" in c.body]
    assert [c.status for c in with_blocks][-2:] == [429, 200]
    assert feedback_element(answer_message(fake_slack))["type"] == "feedback_buttons"
