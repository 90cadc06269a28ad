"""Several `threadbot slack` workers on one Redis: in HTTP mode sharing one port
(SLACK_REUSE_PORT), in Socket Mode each with its own connection to the local Slack. Every event
is answered once, whichever worker gets it, however often Slack delivers it, and a worker that
stalls or dies leaves nothing unanswered.

Each worker runs with its own tokens (`xoxb-worker-N`, `xapp-worker-N`), so the fake Slack's
records say which worker acked an envelope and which one posted an answer.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

import pytest

from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.fake_slack import FakeSlack
from tests.fakes.fake_slack_socket import Connection
from tests.faults.conftest import BotProcess, mention, streaming, tally

# A worker is SIGKILLed, and every worker is SIGTERMed at the end.
pytestmark = [pytest.mark.timeout(90), pytest.mark.kills]

CHANNEL = "C0FAULTS"
SLOW = "word " * 150  # about 3 s at 0.02 s a chunk: long enough to be killed in
ACK_TIMEOUT_S = 1.0  # Slack's is 3 s
# For the tests that kill nobody: dozens of answers at once on two shared cores can stall a
# worker's event loop past the faults' 1 s lease; its turn is then taken over by the other
# worker and answered twice (in the same message: the stalled one checks its lease before
# each edit). These tests count answers, so they give the workers room.
CALM_LEASE_S = "5"


def texts(fake: FakeSlack, thread_ts: str) -> list[str]:
    return [m.text for m in fake.thread(CHANNEL, thread_ts)]


def answered(fake: FakeSlack, thread_ts: str, text: str) -> bool:
    return texts(fake, thread_ts) == [text]


def poster(fake: FakeSlack, thread_ts: str) -> str:
    """The token of the worker that posted the answer in a thread."""
    posts = [c for c in fake.calls_to("chat.postMessage") if c.body.get("thread_ts") == thread_ts]
    assert len(posts) == 1, posts
    return posts[0].token


async def until(condition: Callable[[], bool], within_s: float = 20) -> None:
    """Poll what the fakes cannot signal (a worker's log)."""
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def logged(bot: BotProcess, text: str) -> Callable[[], bool]:
    return lambda: text in bot.log_path.read_text()


def acked_by(fake: FakeSlack, envelope_id: str) -> Connection:
    number = fake.socket_mode.envelopes[envelope_id].acked_on
    assert number is not None
    return fake.socket_mode.connections[number]


def worker_env(number: int, **more: str) -> dict[str, str]:
    return {"SLACK_BOT_TOKEN": f"xoxb-worker-{number}", **more}


# -- HTTP mode: two processes on one port --------------------------------------------------------


async def test_http_workers_sharing_one_port_answer_every_event_once(
    start_bot, fake_slack: FakeSlack, fake_openai: FakeOpenAI, fault_report
) -> None:
    workers = await asyncio.gather(
        *(
            start_bot(**worker_env(n, SLACK_REUSE_PORT="true", LEASE_S=CALM_LEASE_S))
            for n in range(2)
        )
    )
    threads = [f"{600 + i}.000001" for i in range(40)]
    # One new connection per event (BotProcess.send): the kernel picks a listener for each.
    statuses = await asyncio.gather(
        *(
            workers[0].send(mention(f"q{i}?", ts=ts, event_id=f"EvPORT{i}"))
            for i, ts in enumerate(threads)
        )
    )
    assert statuses == [200] * len(threads)
    await fake_slack.wait_for(
        lambda: all(answered(fake_slack, ts, f"You said: q{i}?") for i, ts in enumerate(threads)),
        within_s=30,
    )
    assert len(fake_openai.requests) == len(threads)
    spread = Counter(poster(fake_slack, ts) for ts in threads)
    print(f"answers per worker over one shared port: {dict(spread)}")
    # 40 connections hashed over two listeners: one worker taking all is a 1 in 2**39 chance.
    assert set(spread) == {"xoxb-worker-0", "xoxb-worker-1"}
    fault_report(faults=0, **tally(fake_slack, CHANNEL, dict.fromkeys(threads, 1)))


# -- Socket Mode: two processes, one connection each ---------------------------------------------


async def socket_workers(
    start_bot, fake: FakeSlack, **env: str
) -> list[tuple[BotProcess, Connection]]:
    """Two Socket Mode workers, each with the connection the fake Slack knows it by."""
    fake.socket_mode.ack_timeout_s = ACK_TIMEOUT_S
    tokens = [f"xapp-worker-{n}" for n in range(2)]
    bots = await asyncio.gather(
        *(
            start_bot(**worker_env(n, SLACK_APP_TOKEN=token, **env))
            for n, token in enumerate(tokens)
        )
    )
    await fake.wait_for(lambda: len(fake.socket_mode.open) == 2)
    return [(bot, fake.socket_mode.of(token)) for bot, token in zip(bots, tokens, strict=True)]


async def test_socket_mode_workers_share_the_events_and_every_delivery_is_answered_once(
    start_bot, fake_slack: FakeSlack, fake_openai: FakeOpenAI, fault_report
) -> None:
    # One pair of workers for several scenarios: starting one takes seconds.
    workers = await socket_workers(start_bot, fake_slack, LEASE_S=CALM_LEASE_S)
    (first, first_link), (second, second_link) = workers
    socket_mode = fake_slack.socket_mode
    threads = [f"{700 + i}.000001" for i in range(10)]
    envelopes = [
        await socket_mode.send_event(mention(f"q{i}?", ts=ts, event_id=f"EvSOCK{i}"))
        for i, ts in enumerate(threads)
    ]
    await fake_slack.wait_for(
        lambda: all(answered(fake_slack, ts, f"You said: q{i}?") for i, ts in enumerate(threads)),
        within_s=30,
    )
    await fake_slack.wait_for(
        lambda: all(socket_mode.envelopes[e].acked_on is not None for e in envelopes)
    )
    # Spread over both connections; each event answered by the worker whose connection took it.
    assert len(first_link.acked) == len(second_link.acked) == 5
    for envelope_id, ts in zip(envelopes, threads, strict=True):
        link = acked_by(fake_slack, envelope_id)
        assert poster(fake_slack, ts) == link.token.replace("xapp-", "xoxb-")

    # Slack sends an answered event again, on the other worker's connection (a lost ack).
    again = envelopes[0]
    took = acked_by(fake_slack, again)
    other, other_bot = (first_link, first) if took is second_link else (second_link, second)
    await socket_mode.redeliver(again, to=other.number)
    await until(logged(other_bot, "event slack:EvSOCK0 delivered again; done"))
    assert again in other.acked  # acked, so Slack stops retrying
    assert texts(fake_slack, threads[0]) == ["You said: q0?"]

    # A stalled worker never acks: Slack retries on the other connection (retry_attempt 1).
    first.freeze()
    stalled = mention("anyone?", ts="800.000001", event_id="EvSTALL")
    envelope_id = await socket_mode.send_event(stalled, to=first_link.number)
    await fake_slack.wait_for(
        lambda: answered(fake_slack, "800.000001", "You said: anyone?"), within_s=20
    )
    assert socket_mode.envelopes[envelope_id].attempts == [first_link.number, second_link.number]
    assert poster(fake_slack, "800.000001") == "xoxb-worker-1"
    # It wakes and reads the first delivery, late: acked, never answered twice.
    first.thaw()
    await until(logged(first, "event slack:EvSTALL delivered again; done"))
    assert envelope_id in first_link.acked
    assert texts(fake_slack, "800.000001") == ["You said: anyone?"]

    # Slack asks a worker to reconnect: it opens a new connection, and answers on it.
    await socket_mode.disconnect(second_link.number)
    await fake_slack.wait_for(lambda: second_link.closed and len(socket_mode.open) == 2)
    renewed = socket_mode.of("xapp-worker-1")
    after = mention("still there?", ts="801.000001", event_id="EvREFRESH")
    await socket_mode.send_event(after, to=renewed.number)
    await fake_slack.wait_for(
        lambda: answered(fake_slack, "801.000001", "You said: still there?"), within_s=20
    )
    assert poster(fake_slack, "801.000001") == "xoxb-worker-1"
    assert len(fake_openai.requests) == len(threads) + 2  # each question asked of the model once
    asked = dict.fromkeys([*threads, "800.000001", "801.000001"], 1)
    fault_report(faults=3, **tally(fake_slack, CHANNEL, asked))


async def test_a_worker_killed_mid_answer_leaves_its_events_to_the_other(
    start_bot, fake_slack: FakeSlack, fake_openai: FakeOpenAI, fault_report
) -> None:
    fake_openai.script(SLOW, chunk_size=5, delay_s=0.02)
    (doomed, doomed_link), (live, _) = await socket_workers(start_bot, fake_slack)
    first = mention("first?", ts="900.000001", event_id="EvDIE1")
    await fake_slack.socket_mode.send_event(first, to=doomed_link.number)
    await fake_slack.wait_for(
        lambda: streaming(fake_slack, CHANNEL, "900.000001"),
        within_s=20,
    )
    # Mid-answer, the worker stalls with a second event in its socket, unacked; then it dies.
    doomed.freeze()
    second = mention("second?", ts="900.000002", event_id="EvDIE2")
    await fake_slack.socket_mode.send_event(second, to=doomed_link.number)
    doomed.kill()
    killed_at = time.monotonic()

    # The other worker: redelivered the unacked event, it answers it; the interrupted reply's
    # claim expires within a lease, and it finishes that reply in place.
    await fake_slack.wait_for(
        lambda: (
            answered(fake_slack, "900.000002", "You said: second?")
            and answered(fake_slack, "900.000001", "You said: first?")
        ),
        within_s=30,
    )
    blocked_s = time.monotonic() - killed_at
    assert poster(fake_slack, "900.000001") == "xoxb-worker-0"  # the killed worker's message...
    (message,) = fake_slack.thread(CHANNEL, "900.000001")
    edits = [c for c in fake_slack.calls_to("chat.update") if c.body["ts"] == message.ts]
    assert edits[-1].token == "xoxb-worker-1"  # ...finished in place by the live one
    assert poster(fake_slack, "900.000002") == "xoxb-worker-1"
    assert live.process is not None and live.process.poll() is None
    assert len(fake_openai.requests) == 3  # the killed answer, its re-answer, the second
    fault_report(
        faults=1,
        blocked_s=blocked_s,
        **tally(fake_slack, CHANNEL, {"900.000001": 1, "900.000002": 1}),
    )
