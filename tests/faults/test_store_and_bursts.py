"""Redis frozen across a save, bursts past the connection pool, 429s on the first posts,
malformed requests: each said honestly, nothing dropped."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from bots.slack.bot import build_slack_bot, make_client
from core.answer.pipeline import Pipeline
from core.errors import HistoryUnavailable
from core.store.store import MAYBE_NOT_SAVED
from core.turn.runner import TurnRunner
from core.turn.types import Turn
from tests.conftest import MakeSettings
from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.fake_slack import FakeSlack
from tests.fakes.recording_sink import RecordingSink
from tests.faults.conftest import SECRET, Valkey, mention, tally

pytestmark = pytest.mark.timeout(120)


async def answer_then_freeze(pipeline: Pipeline, valkey: Valkey, session: str) -> list[str]:
    """Read the whole answer, and freeze Redis just before the answer is saved."""
    chunks: list[str] = []
    stream = pipeline.answer(session, "q")
    async for chunk in stream:
        chunks.append(chunk)
        if "".join(chunks) == "You said: q":  # the model's last chunk: the save comes next
            valkey.freeze()
    return chunks


@pytest.mark.parametrize("thaw_after_s", [None, 0.7])
async def test_redis_frozen_across_the_save_is_told_honestly(
    thaw_after_s: float | None, make_settings: MakeSettings, valkey: Valkey
) -> None:
    settings = make_settings(redis_url=valkey.url, redis_timeout_s=0.5, lease_s=5)
    session = f"console:frozen{thaw_after_s}"
    async with await Pipeline.create(settings) as pipeline:
        thaw = None
        if thaw_after_s is not None:  # Redis comes back while the save is read back
            thaw = asyncio.get_running_loop().call_later(thaw_after_s + 0.05, valkey.thaw)
        try:
            await answer_then_freeze(pipeline, valkey, session)
            told = None
        except HistoryUnavailable as exc:
            told = exc.user_message
        finally:
            valkey.thaw()
            if thaw is not None:
                thaw.cancel()
        saved = await pipeline.store.history(session).aget_messages()
    if thaw_after_s is None:
        # The save was sent and applied when Redis woke; the user was told it may not be.
        assert told == MAYBE_NOT_SAVED
    else:
        assert told is None  # read back: it was saved, so nothing to apologise for
    assert [m.content for m in saved] == ["q", "You said: q"]


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


async def test_a_burst_in_one_channel_under_a_post_limit_is_all_answered_in_order(
    make_settings: MakeSettings, fake_openai: FakeOpenAI, fault_report
) -> None:
    fake = await FakeSlack().start()
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
        placeholders = [c.body["thread_ts"] for c in posted if c.status == 200 and not c.error]
        assert placeholders == stamps  # posted in the order the questions came
        limited = sum(c.status == 429 for c in posted)
        fault_report(faults=limited, **tally(fake, "C0BURST", dict.fromkeys(stamps, 1)))
    finally:
        await fake.close()


async def test_malformed_slack_requests_get_400(make_settings: MakeSettings) -> None:
    from aiohttp import web

    settings = make_settings(slack_bot_token="xoxb-test", slack_signing_secret=SECRET)
    async with await Pipeline.create(settings) as pipeline:
        bot = build_slack_bot(settings, pipeline)
        runner = web.AppRunner(bot.http_app())
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"

        def signed(body: str, ts: str) -> dict[str, str]:
            digest = hmac.new(SECRET.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256)
            return {
                "X-Slack-Request-Timestamp": ts,
                "X-Slack-Signature": f"v0={digest.hexdigest()}",
            }

        now = str(int(time.time()))
        cases = [
            ("{}", signed("{}", "soon") | {"Content-Type": "application/json"}),
            ("{not json", signed("{not json", now) | {"Content-Type": "application/json"}),
            (
                "payload=%7Bnope",
                signed("payload=%7Bnope", now)
                | {"Content-Type": "application/x-www-form-urlencoded"},
            ),
        ]
        try:
            async with aiohttp.ClientSession() as http:
                for body, headers in cases:
                    async with http.post(url, data=body, headers=headers) as response:
                        assert response.status == 400, (body, await response.text())
        finally:
            await runner.cleanup()


async def test_history_written_by_langchain_survives_a_valkey_restart(valkey: Valkey) -> None:
    """The append-only file keeps every saved turn across a kill: nothing saved is lost."""
    async with Redis.from_url(valkey.url) as redis:
        await redis.lpush("message_store:console:aof", json.dumps({"type": "human"}))
    valkey.kill()
    valkey.start()
    async with Redis.from_url(valkey.url) as redis:
        assert await redis.llen("message_store:console:aof") == 1
