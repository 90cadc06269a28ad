"""👍/👎 on Discord end to end: the real discord.py client against the local Discord REST API
and gateway, the votes in a real Redis. Clicks and the reason form arrive as INTERACTION_CREATE
events, answered within Discord's 3 s (the fake refuses a later first response)."""

# ruff: noqa: F811 (the tests take `start_bot`, the fixture imported from test_bot, by name)
from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from bots.discord.bot import DiscordBot
from core.answer.pipeline import Pipeline
from core.feedback.votes import NEEDS_A_HUMAN, REASON_THANKS, THANKS
from tests.bots.discord.test_bot import (  # noqa: F401 (start_bot: the fixture)
    StartBot,
    exchange,
    start_bot,
)
from tests.conftest import MakeSettings
from tests.fakes.fake_discord import DEADLINE_S, FakeDiscord
from tests.fakes.fake_openai import FakeOpenAI

pytestmark = pytest.mark.timeout(30)


def buttons_of(message: dict[str, Any]) -> list[str]:
    return [b["custom_id"] for row in message.get("components") or [] for b in row["components"]]


async def until(predicate: Any, *, shown: Any = None) -> None:
    deadline = time.monotonic() + 10
    while not await predicate():
        assert time.monotonic() < deadline, f"not within 10 s: {shown() if shown else ''}"
        await asyncio.sleep(0.05)


async def answered(fake: FakeDiscord, client: DiscordBot) -> tuple[dict[str, Any], str]:
    question = fake.message_create("how do I rotate a key?", mention_bot=True)
    _, reply = await exchange(fake, client, "MESSAGE_CREATE", question)
    assert reply is not None
    (message,) = [m for m in fake.channel_messages(fake.channel_id) if m["author"].get("bot")]
    up, down = buttons_of(message)
    answer_id = up.rsplit(":", 1)[1]
    assert (up, down) == (f"threadbot:vote:up:{answer_id}", f"threadbot:vote:down:{answer_id}")
    return message, answer_id


async def test_buttons_under_the_answer_and_one_vote_per_person(
    start_bot: StartBot, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    fake_discord.interaction_deadline_s = DEADLINE_S  # a first response later than 3 s: 10062
    fake_openai.script("Rotate it with `threadbot keys rotate`.", chunk_size=8)
    client = await start_bot()
    message, answer_id = await answered(fake_discord, client)
    records = client.runner.pipeline.records

    async def votes() -> list[tuple[str, str, str]]:
        record = await records.get(answer_id)
        assert record is not None
        return [(v.voter, v.vote, v.reason) for v in record.votes]

    up = fake_discord.component_interaction(int(message["id"]), buttons_of(message)[0])
    await fake_discord.dispatch("INTERACTION_CREATE", up)
    await until(lambda: _true(len(fake_discord.callbacks) >= 1))
    await until(lambda: _eq(votes(), [("discord:4242", "up", "")]))
    first = fake_discord.callbacks[0]
    assert first.status == 200 and first.type == 5 and first.after_s < DEADLINE_S
    await until(lambda: _true(any(THANKS["up"] in m["content"] for m in _all(fake_discord))))

    # The same person clicks 👎: one vote, the last, and the reason form shows at once.
    down = fake_discord.component_interaction(int(message["id"]), buttons_of(message)[1])
    await fake_discord.dispatch("INTERACTION_CREATE", down)
    await until(lambda: _eq(votes(), [("discord:4242", "down", "")]))
    (modal,) = fake_discord.modals
    assert modal.custom_id == f"threadbot:reason:{answer_id}"
    assert fake_discord.callbacks[-1].type == 9 and fake_discord.callbacks[-1].status == 200

    # Another person: a second vote.
    other = fake_discord.component_interaction(
        int(message["id"]), buttons_of(message)[0], user_id=777
    )
    await fake_discord.dispatch("INTERACTION_CREATE", other)
    await until(lambda: _count_is(records, answer_id, 2))
    assert sorted(await votes()) == [("discord:4242", "down", ""), ("discord:777", "up", "")]

    # The reason, typed in the form.
    submit = fake_discord.modal_submit(modal.custom_id, {"reason": "It cites the old CLI."})
    await fake_discord.dispatch("INTERACTION_CREATE", submit)
    await until(lambda: _contains(votes(), ("discord:4242", "down", "It cites the old CLI.")))
    await until(lambda: _true(any(REASON_THANKS in m["content"] for m in _all(fake_discord))))
    assert all(c.status == 200 for c in fake_discord.callbacks)  # each answered once, in time


async def test_a_thumbs_down_pings_the_role_once(
    start_bot: StartBot, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script("A doubtful answer.", chunk_size=4)
    client = await start_bot(escalate_discord_role=5150)
    message, answer_id = await answered(fake_discord, client)
    for user in (4242, 777):
        down = fake_discord.component_interaction(
            int(message["id"]), buttons_of(message)[1], user_id=user
        )
        await fake_discord.dispatch("INTERACTION_CREATE", down)

    def pings() -> list[str]:
        return [
            m["content"]
            for m in fake_discord.channel_messages(fake_discord.channel_id)
            if m["content"].startswith("<@&5150>")
        ]

    await until(
        lambda: _count_is(client.runner.pipeline.records, answer_id, 2),
        shown=lambda: (fake_discord.callbacks, fake_discord.calls("POST")),
    )
    await until(lambda: _true(len(pings()) >= 1))
    await asyncio.sleep(0.2)  # a second ping would have come by now
    assert pings() == [f"<@&5150> {NEEDS_A_HUMAN['down']}"]
    sent = fake_discord.calls("POST", rf"/channels/{fake_discord.channel_id}/messages$")
    assert sent[-1].json["allowed_mentions"]["roles"] == [5150]  # that role, and nobody else


async def test_without_feedback_no_buttons(
    start_bot: StartBot,
    fake_discord: FakeDiscord,
    fake_openai: FakeOpenAI,
    make_settings: MakeSettings,
) -> None:
    fake_openai.script("An answer.", chunk_size=4)
    async with await Pipeline.create(make_settings(feedback=False)) as pipeline:
        client = await start_bot(pipeline_=pipeline, feedback=False)
        question = fake_discord.message_create("anything?", mention_bot=True)
        await exchange(fake_discord, client, "MESSAGE_CREATE", question)
        await client.runner.aclose()
    (message,) = [
        m for m in fake_discord.channel_messages(fake_discord.channel_id) if m["author"].get("bot")
    ]
    assert buttons_of(message) == []


async def _count_is(records: Any, answer_id: str, count: int) -> bool:
    record = await records.get(answer_id)
    return record is not None and len(record.votes) == count


async def _true(value: bool) -> bool:
    return value


async def _eq(got: Any, expected: Any) -> bool:
    return bool(await got == expected)


async def _contains(got: Any, item: Any) -> bool:
    return item in await got


def _all(fake: FakeDiscord) -> list[dict[str, Any]]:
    return list(fake.messages.values())
