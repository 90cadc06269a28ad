"""Two real `threadbot slack` workers on one Redis (one server, or the 3-node cluster): each event
answered once, one thread's questions answered in the order they arrived whichever worker got
them, and a worker killed mid-answer blocking its conversation for no more than a lease.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest
from redis.asyncio import Redis

from core import sessions
from core.store.redis_client import connect
from tests.conftest import ON_CLUSTER, IsolatedSettings
from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.fake_slack import FakeSlack
from tests.faults.conftest import LEASE_S, mention, streaming, tally, thread_reply
from tests.valkey_server import Valkey, free_port

# Every test SIGTERMs its workers at the end; the last one SIGKILLs one mid-answer.
pytestmark = [pytest.mark.timeout(120), pytest.mark.kills]

CHANNEL = "C0FAULTS"
TEAM = "T0FAULTS"


def texts(fake: FakeSlack, thread_ts: str) -> list[str]:
    return [m.text for m in fake.thread(CHANNEL, thread_ts)]


@pytest.fixture(params=["one server", ON_CLUSTER])
def store(request: pytest.FixtureRequest, valkey: Valkey) -> dict[str, str]:
    """The workers' Redis: the fault suite's Valkey, or the 3-node cluster (its own names)."""
    if request.param == "one server":
        return {"REDIS_URL": valkey.url}
    tag = uuid.uuid4().hex[:8]
    return {
        "REDIS_URL": request.getfixturevalue("redis_cluster_url"),
        "REDIS_NAMESPACE": f"w{tag}:threadbot:",
        "HISTORY_KEY_PREFIX": f"w{tag}:message_store:",
    }


async def history(store: dict[str, str], session: str) -> list[str]:
    """The stored history, oldest first, read through the bot's own client."""
    settings = IsolatedSettings(redis_url=store["REDIS_URL"])
    redis: Redis = connect(settings, store["REDIS_URL"])
    prefix = store.get("HISTORY_KEY_PREFIX", "message_store:")
    try:
        raw = await redis.lrange(f"{prefix}{session}", 0, -1)
    finally:
        await redis.aclose()
    return [json.loads(m)["data"]["content"] for m in reversed(raw)]


async def two_workers(start_bot: Any, store: dict[str, str]) -> list[Any]:
    return [await start_bot(**store), await start_bot(port=free_port(), **store)]


# On one server, tests/faults/test_crashes.py and test_shared_port_and_socket_mode.py cover it.
@pytest.mark.parametrize("store", [ON_CLUSTER], indirect=True)
async def test_the_same_event_sent_to_two_workers_is_answered_once(
    start_bot, store: dict[str, str], fake_slack: FakeSlack, fake_openai: FakeOpenAI, fault_report
) -> None:
    fake_openai.script("Answered once. " * 20, chunk_size=8, delay_s=0.02)
    first, second = await two_workers(start_bot, store)
    body = mention("once?", ts="300.000001", event_id="EvTWICE")
    # Slack retries an event it thinks went unanswered; here both deliveries race.
    assert await asyncio.gather(first.send(body), second.send(body, retry=1)) == [200, 200]
    await fake_slack.wait_for(
        lambda: texts(fake_slack, "300.000001") == [("Answered once. " * 20).strip()], within_s=30
    )
    await asyncio.sleep(LEASE_S * 1.5)  # room for a second answer to show, if there were one
    assert len(fake_openai.requests) == 1
    assert len(fake_slack.calls_to("chat.postMessage")) == 1
    fault_report(faults=0, **tally(fake_slack, CHANNEL, {"300.000001": 1}))


async def test_twenty_questions_over_two_workers_are_answered_in_arrival_order(
    start_bot, store: dict[str, str], fake_slack: FakeSlack, fake_openai: FakeOpenAI, fault_report
) -> None:
    workers = await two_workers(start_bot, store)
    for n in range(20):  # long enough that later questions arrive while earlier ones stream
        fake_openai.script(f"answer {n}: " + "word " * 12, chunk_size=4, delay_s=0.01)
    top = "400.000000"
    assert await workers[0].send(mention("q0", ts=top, event_id="EvORDER0")) == 200
    # A thread reply is for the bot once the bot is in the thread: as in Slack, the replies
    # come once the first answer shows (a worker that saw nothing of it ignores them).
    await fake_slack.wait_for(lambda: bool(texts(fake_slack, top)), within_s=30)
    for n in range(1, 20):
        body = thread_reply(f"q{n}", ts=f"400.{n:06d}", thread_ts=top, event_id=f"EvORDER{n}")
        assert await workers[n % 2].send(body) == 200  # acknowledged: it reached the bot

    def finished() -> bool:
        shown = texts(fake_slack, top)
        final = [t for t in shown if t.startswith("answer") and not t.endswith("▌")]
        return len(final) == 20

    await fake_slack.wait_for(finished, within_s=60)
    asked = [r["messages"][-1]["content"] for r in fake_openai.requests]
    assert asked == [f"q{n}" for n in range(20)]
    assert [t.split(":")[0] for t in texts(fake_slack, top)] == [f"answer {n}" for n in range(20)]
    stored = await history(store, sessions.slack_session(TEAM, CHANNEL, top))
    assert stored[::2] == [f"q{n}" for n in range(20)]  # 20 pairs, in that order
    assert [a.split(":")[0] for a in stored[1::2]] == [f"answer {n}" for n in range(20)]
    fault_report(faults=0, **tally(fake_slack, CHANNEL, {top: 20}))


# On one server, tests/faults/test_crashes.py and test_shared_port_and_socket_mode.py cover it.
@pytest.mark.parametrize("store", [ON_CLUSTER], indirect=True)
async def test_a_worker_killed_mid_answer_blocks_the_other_for_a_lease_at_most(
    start_bot, store: dict[str, str], fake_slack: FakeSlack, fake_openai: FakeOpenAI, fault_report
) -> None:
    fake_openai.script("word " * 150, chunk_size=5, delay_s=0.02)  # about 3 s: killed in it
    first, second = await two_workers(start_bot, store)
    top = "500.000001"
    assert await first.send(mention("first?", ts=top, event_id="EvDEAD1")) == 200
    await fake_slack.wait_for(lambda: streaming(fake_slack, CHANNEL, top), within_s=20)
    first.kill()
    asked_at = time.monotonic()
    reply = thread_reply("second?", ts="500.000002", thread_ts=top, event_id="EvDEAD2")
    assert await second.send(reply) == 200
    await fake_slack.wait_for(lambda: "You said: second?" in texts(fake_slack, top), within_s=30)
    blocked_s = time.monotonic() - asked_at
    # The dead worker's reply is finished in place by the live one (its recovery).
    await fake_slack.wait_for(
        lambda: sorted(texts(fake_slack, top)) == ["You said: first?", "You said: second?"],
        within_s=30,
    )
    assert len(fake_slack.calls_to("chat.postMessage")) == 2
    fault_report(faults=1, blocked_s=blocked_s, **tally(fake_slack, CHANNEL, {top: 2}))
