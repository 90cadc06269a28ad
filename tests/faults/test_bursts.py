"""Bursts past the connection pool, and past Slack's limit on new messages (429s on the first
posts): nothing dropped, each answered in order."""

from __future__ import annotations

from typing import Any

import pytest

from bots.slack.bot import build_slack_bot, make_client
from core.answer.pipeline import Pipeline
from core.turn.runner import TurnRunner
from core.turn.types import Turn
from tests.conftest import MakeSettings
from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.fake_slack import FakeSlack
from tests.fakes.recording_sink import RecordingSink
from tests.faults.conftest import SECRET, mention, tally

pytestmark = pytest.mark.timeout(120)


async def test_a_burst_of_500_questions_in_one_process_is_all_answered(
    make_settings: MakeSettings, fake_openai: FakeOpenAI, fault_report
) -> None:
    # Far fewer connections than questions: each waits for a free one instead of failing.
    settings = make_settings(redis_max_connections=8, redis_pool_timeout_s=60)
    async with (
        await Pipeline.create(settings) as pipeline,
        TurnRunner(pipeline, interval_s=0.05, grace_s=0) as runner,
    ):
        outcomes: list[Any] = []
        runner.add_listener(outcomes.append)
        sinks = [RecordingSink() for _ in range(500)]
        for n, sink in enumerate(sinks):
            turn = Turn("test", f"test:T:C:{n}", f"question {n}", event_key=f"test:burst:{n}")
            await runner.submit(turn, sink)
        await runner.drain()
    assert len(outcomes) == 500
    assert {o.status for o in outcomes} == {"answered"}, [o.error for o in outcomes if o.error]
    assert all(sink.messages == [f"You said: question {n}"] for n, sink in enumerate(sinks))
    answered = sum(o.status == "answered" for o in outcomes)
    fault_report(faults=0, asked=500, answered=answered, told=0, lost=500 - answered)


@pytest.mark.parametrize("status", ["shown", "refused"])
async def test_a_burst_in_one_channel_under_a_post_limit_is_all_answered_in_order(
    status: str, make_settings: MakeSettings, fake_openai: FakeOpenAI, fault_report
) -> None:
    """Without a thread status, each reply's placeholder is posted in the order the questions
    came, paced; with one, the status shows the wait, and each reply's first message takes its
    place in the channel's line when its text is ready (each is in a thread of its own)."""
    fake = await FakeSlack().start()
    fake.refuse_status = "not_allowed" if status == "refused" else None
    fake.limit_rate("chat.postMessage", calls=1, per_s=0.1)  # Slack: about 1 a second a channel
    try:
        settings = make_settings(
            slack_bot_token="xoxb-test",
            slack_signing_secret=SECRET,
            slack_api_url=fake.api_url,
            slack_edit_interval_ms=50,
            slack_post_interval_ms=100,
        )
        async with (
            await Pipeline.create(settings) as pipeline,
            build_slack_bot(settings, pipeline, client=make_client(settings)) as bot,
        ):
            from slack_bolt.adapter.socket_mode.async_internals import run_async_bolt_app
            from slack_sdk.socket_mode.request import SocketModeRequest

            stamps = [f"500.{n:06d}" for n in range(1, 31)]
            for n, ts in enumerate(stamps):
                body = mention(f"question {n}", ts=ts, channel="C0BURST", event_id=f"EvB{n}")
                request = SocketModeRequest(type="events_api", envelope_id=f"e{n}", payload=body)
                await run_async_bolt_app(bot.app, request)
            await bot.drain()
        threads = [[m.text for m in fake.thread("C0BURST", ts)] for ts in stamps]
        assert threads == [[f"You said: question {n}"] for n in range(30)]
        posted = fake.calls_to("chat.postMessage")
        first = [c.body["thread_ts"] for c in posted if c.status == 200 and not c.error]
        if status == "refused":
            assert first == stamps  # placeholders posted in the order the questions came
        else:
            assert sorted(first) == stamps  # one first message each
            assert len(fake.calls_to("assistant.threads.setStatus")) == len(stamps)
        limited = sum(c.status == 429 for c in posted)
        fault_report(faults=limited, **tally(fake, "C0BURST", dict.fromkeys(stamps, 1)))
    finally:
        await fake.close()
