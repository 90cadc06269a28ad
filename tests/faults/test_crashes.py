"""A bot killed mid-answer, Redis killed, frozen and restarted: nobody blocked, no reply stuck.

Each test drives a real `threadbot slack` process over HTTP against the local Slack and model,
with a real Valkey server (AOF on), and reports how long the conversation stayed blocked.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis

from core.reply.editor import MARKER
from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.fake_slack import FakeSlack
from tests.faults.conftest import LEASE_S, mention, streaming, tally, thread_reply
from tests.valkey_server import Valkey

# Bots and Valkey are SIGKILLed mid-answer, and every bot is SIGTERMed at the end.
pytestmark = [pytest.mark.timeout(90), pytest.mark.kills]

CHANNEL = "C0FAULTS"
SLOW = "word " * 150  # about 3 s at 0.02 s a chunk: long enough to be killed in


def texts(fake: FakeSlack, thread_ts: str) -> list[str]:
    return [m.text for m in fake.thread(CHANNEL, thread_ts)]


async def history_of(valkey: Valkey, session: str) -> list[bytes]:
    async with Redis.from_url(valkey.url) as redis:
        return list(await redis.lrange(f"message_store:{session}", 0, -1))


async def test_a_bot_killed_mid_answer_is_finished_in_place_and_blocks_nobody(
    start_bot, fake_slack: FakeSlack, fake_openai: FakeOpenAI, valkey: Valkey, fault_report
) -> None:
    fake_openai.script(SLOW, chunk_size=5, delay_s=0.02)
    fake_openai.script("The answer, again, in full.")
    bot = await start_bot()
    assert await bot.send(mention("first?", ts="100.000001", event_id="EvKILL1")) == 200
    await fake_slack.wait_for(lambda: streaming(fake_slack, CHANNEL, "100.000001"), within_s=20)
    bot.kill()  # SIGKILL mid-answer: the reply shows the marker, the lease is held
    assert streaming(fake_slack, CHANNEL, "100.000001")

    await start_bot()  # the restarted bot recovers the interrupted reply
    killed_at = time.monotonic()  # from the moment a bot runs again
    await fake_slack.wait_for(
        lambda: texts(fake_slack, "100.000001") == ["The answer, again, in full."], within_s=30
    )
    stuck_s = time.monotonic() - killed_at  # the marker left, from a bot's start
    # Answered again in place: the same message, no second one, the model asked once more.
    assert len(fake_slack.calls_to("chat.postMessage")) == 1
    assert len(fake_openai.requests) == 2
    session = "slack:{T0FAULTS:C0FAULTS}:100.000001"
    assert len(await history_of(valkey, session)) == 2  # one whole turn, not two
    fault_report(faults=1, blocked_s=stuck_s, **tally(fake_slack, CHANNEL, {"100.000001": 1}))


async def test_a_reply_finished_after_a_crash_still_has_the_questions_file(
    start_bot, fake_slack: FakeSlack, fake_openai: FakeOpenAI, fault_report
) -> None:
    """A question that is only a file: the process that finishes the reply downloads the file
    again (its description was kept with the event, never the token) and answers from it."""
    fake_openai.script(SLOW, chunk_size=5, delay_s=0.02)
    fake_openai.script("The log says the disk is full.")
    body = mention("", ts="150.000001", event_id="EvKILLFILE")
    body["event"]["files"] = [fake_slack.add_file("deploy.log", b"ERROR disk full")]
    bot = await start_bot()
    assert await bot.send(body) == 200
    await fake_slack.wait_for(lambda: streaming(fake_slack, CHANNEL, "150.000001"), within_s=20)
    bot.kill()
    await start_bot()
    await fake_slack.wait_for(
        lambda: (
            texts(fake_slack, "150.000001")[-1:]
            == ["The log says the disk is full.\n\n_Sources: deploy.log (attached)_"]
        ),
        within_s=30,
    )
    assert len(fake_slack.calls_to("chat.postMessage")) == 1  # finished in place
    assert len(fake_slack.downloads) == 2  # once by each process
    assert "[deploy.log]\nERROR disk full" in fake_openai.requests[1]["messages"][0]["content"]
    fault_report(faults=1, **tally(fake_slack, CHANNEL, {"150.000001": 1}))


async def test_slacks_redelivery_of_a_killed_event_is_answered_once(
    start_bot, fake_slack: FakeSlack, fake_openai: FakeOpenAI, fault_report
) -> None:
    fake_openai.script(SLOW, chunk_size=5, delay_s=0.02)
    fake_openai.script("Answered after the redelivery.")
    body = mention("again?", ts="200.000001", event_id="EvKILL2")
    bot = await start_bot()
    assert await bot.send(body) == 200
    await fake_slack.wait_for(lambda: streaming(fake_slack, CHANNEL, "200.000001"), within_s=20)
    bot.kill()
    bot = await start_bot()
    await asyncio.sleep(LEASE_S * 1.5)  # the dead holder's claim has expired by now
    assert await bot.send(body, retry=1) == 200  # Slack's own redelivery
    await fake_slack.wait_for(
        lambda: texts(fake_slack, "200.000001") == ["Answered after the redelivery."],
        within_s=30,
    )
    await asyncio.sleep(LEASE_S)  # a second answer (recovery and redelivery both) would show
    assert texts(fake_slack, "200.000001") == ["Answered after the redelivery."]
    assert len(fake_openai.requests) == 2
    assert await bot.send(body, retry=2) == 200  # once done, a redelivery is ignored
    await asyncio.sleep(0.5)
    assert len(fake_openai.requests) == 2
    fault_report(faults=1, **tally(fake_slack, CHANNEL, {"200.000001": 1}))


async def test_after_a_crash_the_next_question_is_answered_within_a_lease(
    start_bot, fake_slack: FakeSlack, fake_openai: FakeOpenAI, fault_report
) -> None:
    fake_openai.script(SLOW, chunk_size=5, delay_s=0.02)
    bot = await start_bot()
    assert await bot.send(mention("first?", ts="300.000001", event_id="EvKILL3")) == 200
    await fake_slack.wait_for(lambda: streaming(fake_slack, CHANNEL, "300.000001"), within_s=20)
    bot.kill()
    bot = await start_bot()
    asked_at = time.monotonic()
    follow_up = thread_reply("next?", ts="300.000500", thread_ts="300.000001", event_id="EvNEXT3")
    assert await bot.send(follow_up) == 200
    # ANSWER_TIMEOUT_S is 8 s: a lock that outlived the crash would end in "still answering".
    await fake_slack.wait_for(
        lambda: "You said: next?" in texts(fake_slack, "300.000001"), within_s=30
    )
    blocked_s = time.monotonic() - asked_at
    assert not any("still answering" in t for t in texts(fake_slack, "300.000001"))
    await fake_slack.wait_for(lambda: not streaming(fake_slack, CHANNEL, "300.000001"), within_s=30)
    row = tally(fake_slack, CHANNEL, {"300.000001": 2})  # the killed question, answered again
    fault_report(faults=1, blocked_s=blocked_s, **row)


@pytest.mark.parametrize("fault", ["kill", "freeze"])
async def test_redis_killed_or_frozen_mid_answer_then_back(
    fault: str,
    start_bot,
    fake_slack: FakeSlack,
    fake_openai: FakeOpenAI,
    valkey: Valkey,
    fault_report,
) -> None:
    fake_openai.script(SLOW, chunk_size=5, delay_s=0.02)
    bot = await start_bot()
    assert await bot.send(mention("first?", ts="400.000001", event_id=f"EvR{fault}")) == 200
    await fake_slack.wait_for(lambda: streaming(fake_slack, CHANNEL, "400.000001"), within_s=20)
    if fault == "kill":
        valkey.kill()
        await asyncio.sleep(LEASE_S * 2)
        valkey.start()  # same port, same append-only file: the lease's expiry survives
    else:
        valkey.freeze()
        await asyncio.sleep(LEASE_S * 2)
        valkey.thaw()
    # The answer in flight ends honestly (not saved, or finished), never stuck with the marker.
    await fake_slack.wait_for(lambda: not streaming(fake_slack, CHANNEL, "400.000001"), within_s=30)
    asked_at = time.monotonic()
    follow_up = thread_reply(
        "next?", ts="400.000500", thread_ts="400.000001", event_id=f"EvN{fault}"
    )
    assert await bot.send(follow_up) == 200
    await fake_slack.wait_for(
        lambda: "You said: next?" in texts(fake_slack, "400.000001"), within_s=30
    )
    blocked_s = time.monotonic() - asked_at
    assert not any(t.endswith(MARKER.strip()) for t in texts(fake_slack, "400.000001"))
    # The question in flight may end with the store's apology (told, not lost: ask again).
    fault_report(faults=1, blocked_s=blocked_s, **tally(fake_slack, CHANNEL, {"400.000001": 2}))
