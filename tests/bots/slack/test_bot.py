"""The Slack adapter end to end: the real bolt app and slack_sdk client against a local Slack.

Events go in through bolt's two real entry points: signed HTTP requests on a loopback socket,
and Socket Mode's request path. The fake Slack records every Web API call; the fake OpenAI
streams scripted answers; history and dedupe live in a real Redis-compatible server.

The flow's tests marked `on_server_and_cluster` run again on a real 3-node Redis Cluster
(`[cluster]`): each passes there only if every multi-key step of a turn stays within one hash
slot (the cluster refuses a transaction or script across slots) and MOVED redirections are
followed.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import itertools
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web
from redis.asyncio.cluster import RedisCluster
from slack_bolt.adapter.socket_mode.async_internals import run_async_bolt_app
from slack_bolt.response import BoltResponse
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.socket_mode.request import SocketModeRequest

from bots.slack.bot import (
    SlackBot,
    build_slack_bot,
    main,
    make_client,
    serve,
    turn_from_slack,
)
from bots.slack.mrkdwn import markdown_to_mrkdwn
from bots.slack.sink import MAX_LEN, PLACEHOLDER
from core import sessions
from core.answer.pipeline import Pipeline
from core.errors import ThreadbotError
from core.settings import Settings
from tests.conftest import ROOT, MakeSettings, on_cluster, on_server_and_cluster
from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.fake_slack import BOT_USER_ID, TEAM_ID, FakeSlack

PAYLOADS = ROOT / "tests" / "payloads"
SECRET = "test-signing-secret"
CHANNEL = "C0GENERAL"
DM = "D0ALICE"
MENTION_TS = "1712345678.000100"

pytestmark = pytest.mark.timeout(30)


def payload(name: str, **event: Any) -> dict[str, Any]:
    """A recorded payload with a fresh event_id (and event fields overridden)."""
    body = json.loads((PAYLOADS / f"slack_{name}.json").read_text())
    body = copy.deepcopy(body)
    if "event" in body:
        body["event_id"] = "Ev" + uuid.uuid4().hex[:10].upper()
        body["event"].update(event)
    return body


def mention(text: str = "how do I install threadbot?", **event: Any) -> dict[str, Any]:
    return payload("app_mention", text=f"<@{BOT_USER_ID}> {text}", **event)


def thread_reply(text: str, ts: str, thread_ts: str = MENTION_TS) -> dict[str, Any]:
    return payload("message_thread_reply", text=text, ts=ts, thread_ts=thread_ts)


BotFactory = Callable[..., Awaitable[SlackBot]]


@pytest.fixture
async def make_bot(make_settings: Any, fake_slack: FakeSlack) -> AsyncIterator[BotFactory]:
    """Bots (each with its own Pipeline) over the same Redis and the same fake Slack."""
    made: list[SlackBot] = []
    configured: dict[tuple[tuple[str, Any], ...], Settings] = {}
    # One aiohttp session under the client, as `serve` gives it (bolt copies what a listener
    # gets; a session cannot be copied, so this catches a listener that makes it try).
    http = aiohttp.ClientSession()

    async def make(**overrides: Any) -> SlackBot:
        # The same overrides give the same settings (same key prefix): a second process.
        key = tuple(sorted(overrides.items()))
        if key not in configured:
            values: dict[str, Any] = {
                "slack_bot_token": "xoxb-test",
                "slack_signing_secret": SECRET,
                "slack_api_url": fake_slack.api_url,
                "slack_edit_interval_ms": 50,
            }
            configured[key] = make_settings(**{**values, **overrides})
        settings = configured[key]
        pipeline = await Pipeline.create(settings)
        bot = build_slack_bot(settings, pipeline, client=make_client(settings, session=http))
        made.append(bot)
        return bot

    try:
        yield make
    finally:
        for bot in made:
            await bot.drain()
            await bot.pipeline.aclose()
        await http.close()


async def via_socket_mode(
    bot: SlackBot, body: dict[str, Any], *, retry: int | None = None
) -> BoltResponse:
    """Bolt's Socket Mode request path, as AsyncSocketModeHandler.handle runs it."""
    kind = {"event_callback": "events_api", "message_action": "interactive"}.get(
        body.get("type", ""), "slash_commands"
    )
    request = SocketModeRequest(
        type=kind,
        envelope_id=uuid.uuid4().hex,
        payload=body,
        retry_attempt=retry,
        retry_reason="timeout" if retry else None,
    )
    response = await run_async_bolt_app(bot.app, request)
    assert response.status == 200, response.body
    return response


async def answer_via_socket(bot: SlackBot, body: dict[str, Any], **kw: Any) -> BoltResponse:
    response = await via_socket_mode(bot, body, **kw)
    await bot.drain()
    return response


def signed_headers(body: str, *, secret: str = SECRET, content_type: str) -> dict[str, str]:
    ts = str(int(time.time()))
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": content_type,
    }


@pytest.fixture
async def http_url() -> AsyncIterator[Callable[[SlackBot], Awaitable[str]]]:
    """Serve a bot's HTTP mode (bolt's aiohttp server app) on a loopback port."""
    runners: list[web.AppRunner] = []

    async def serve(bot: SlackBot) -> str:
        runner = web.AppRunner(bot.http_app())
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}/slack/events"

    try:
        yield serve
    finally:
        for runner in runners:
            await runner.cleanup()


def final_texts(fake: FakeSlack, channel: str, thread_ts: str | None) -> list[str]:
    return [m.text for m in fake.thread(channel, thread_ts)]


# -- the pure translator ---------------------------------------------------------------------


def test_turn_from_recorded_payloads() -> None:
    parsed = turn_from_slack(payload("app_mention"), BOT_USER_ID)
    assert parsed is not None
    top, where = parsed
    assert top.question == "how do I install threadbot?"
    assert where.thread_ts == MENTION_TS
    assert top.session_id == f"slack:{{{TEAM_ID}:{CHANNEL}}}:{MENTION_TS}"
    assert top.event_key is not None and top.event_key.startswith("slack:Ev")
    assert not where.needs_thread_check

    parsed = turn_from_slack(payload("message_thread_reply"), BOT_USER_ID)
    assert parsed is not None
    reply, where = parsed
    assert reply.session_id == top.session_id
    assert where.needs_thread_check

    parsed = turn_from_slack(payload("message_im"), BOT_USER_ID, retried=True)
    assert parsed is not None
    dm, where = parsed
    assert (dm.session_id, where.thread_ts, where.is_dm) == (
        f"slack:{{{TEAM_ID}:{DM}}}",
        None,
        True,
    )
    assert dm.retried and dm.place == "in this DM"
    parsed = turn_from_slack(payload("message_im", thread_ts="1712345600.000001"), BOT_USER_ID)
    assert parsed is not None
    assert parsed[0].session_id == f"slack:{{{TEAM_ID}:{DM}}}:1712345600.000001"

    assert turn_from_slack(payload("message_bot"), BOT_USER_ID) is None
    assert turn_from_slack(payload("message_changed"), BOT_USER_ID) is None
    assert turn_from_slack(payload("message_im", user=BOT_USER_ID), BOT_USER_ID) is None
    assert turn_from_slack(payload("message_im", subtype="message_deleted"), BOT_USER_ID) is None
    # A top-level channel message without a mention, and a bare mention: nothing to answer.
    top_level = payload("message_thread_reply", thread_ts=None)
    assert turn_from_slack(top_level, BOT_USER_ID) is None
    assert turn_from_slack(mention(""), BOT_USER_ID) is None
    # The `message` twin of an app_mention in a thread is left to the app_mention event.
    twin = payload("message_thread_reply", text=f"<@{BOT_USER_ID}> and Windows?")
    assert turn_from_slack(twin, BOT_USER_ID) is None

    parsed = turn_from_slack(mention("Reset", thread_ts=MENTION_TS, ts="1712345699.0"), BOT_USER_ID)
    assert parsed is not None
    reset, where = parsed
    assert reset.action == "reset" and where.mentioned and reset.place == "in this thread"


def test_client_leaves_rate_limits_to_the_editor() -> None:
    settings = Settings(
        slack_bot_token="xoxb-x", slack_api_url="http://127.0.0.1:1/api/", _env_file=None
    )
    client = make_client(settings)
    assert client.base_url == "http://127.0.0.1:1/api/"
    assert not any(isinstance(h, AsyncRateLimitErrorRetryHandler) for h in client.retry_handlers)


def test_main_refuses_to_start_without_tokens(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(
        slack_bot_token=None, slack_app_token=None, slack_signing_secret=None, _env_file=None
    )
    with caplog.at_level(logging.ERROR):
        assert main(settings) == 2
    assert "SLACK_BOT_TOKEN" in caplog.text and "SLACK_APP_TOKEN" in caplog.text
    caplog.clear()
    wrong = Settings(slack_bot_token="xoxp-user", slack_app_token="xapp-1", _env_file=None)
    with caplog.at_level(logging.ERROR):
        assert main(wrong) == 2
    assert "xoxb-" in caplog.text


@pytest.mark.parametrize("fault", ["rejected", "unreachable"])
async def test_serve_stops_with_one_line_when_slack_refuses_or_cannot_be_reached(
    fault: str, make_settings: Any, fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    fake_slack.rejected_tokens = {"xoxb-revoked"}
    api_url = fake_slack.api_url if fault == "rejected" else "http://127.0.0.1:1/api/"
    settings = make_settings(
        slack_bot_token="xoxb-revoked", slack_signing_secret=SECRET, slack_api_url=api_url
    )
    with caplog.at_level(logging.ERROR):
        code = await asyncio.wait_for(serve(settings), 60)
    assert code == (2 if fault == "rejected" else 4)
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.exc_info is None  # one line, no traceback
    if fault == "rejected":
        assert "Slack rejected SLACK_BOT_TOKEN (invalid_auth)" in record.getMessage()
    else:
        assert "cannot reach Slack at http://127.0.0.1:1/api/" in record.getMessage()
    assert "revoked" not in caplog.text  # the token itself is never shown


# -- HTTP mode through a real socket ---------------------------------------------------------


async def test_http_mention_streams_one_post_then_updates(
    make_bot: BotFactory, fake_slack: FakeSlack, fake_openai: FakeOpenAI, http_url: Any
) -> None:
    answer = (
        "Install it with **pip**:\n\n```sh\npip install threadbot\n```\n\nThen run `threadbot`."
    )
    fake_openai.script(answer, chunk_size=6, delay_s=0.02)
    bot = await make_bot()
    url = await http_url(bot)
    body = json.dumps(mention())
    async with aiohttp.ClientSession() as http:
        started = time.monotonic()
        async with http.post(
            url, data=body, headers=signed_headers(body, content_type="application/json")
        ) as response:
            assert response.status == 200
        acked = time.monotonic()
        assert acked - started < 3  # well within Slack's 3 s
    await bot.drain()

    posts = fake_slack.calls_to("chat.postMessage")
    updates = fake_slack.calls_to("chat.update")
    assert acked < updates[-1].at  # acknowledged before the answer was done
    # "threadbot is thinking…" until the first text, which is the one message posted
    (status,) = fake_slack.calls_to("assistant.threads.setStatus")
    assert status.body["thread_ts"] == MENTION_TS and status.body["status"] == "is thinking…"
    assert len(posts) == 1 and status.at < posts[0].at
    assert posts[0].body["text"].endswith("▌") and posts[0].body["thread_ts"] == MENTION_TS
    assert fake_slack.statuses == {}  # cleared by the post, as Slack does
    reply_ts = fake_slack.thread(CHANNEL, MENTION_TS)[0].ts
    assert len(updates) >= 1 and {u.body["ts"] for u in updates} == {reply_ts}
    assert not updates[-1].body["text"].endswith("▌")
    assert final_texts(fake_slack, CHANNEL, MENTION_TS) == [markdown_to_mrkdwn(answer)]


async def test_without_a_thread_status_the_placeholder_shows_the_wait(
    make_bot: BotFactory, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    """Where Slack refuses the status (a scope, a plan), "…" is posted at once instead; the
    bot stops asking for a status after the first refusal."""
    fake_slack.refuse_status = "missing_scope"
    fake_openai.script("Answered under a placeholder.", chunk_size=5, delay_s=0.02)
    bot = await make_bot()
    await answer_via_socket(bot, mention())
    fake_openai.script("Again.")
    await answer_via_socket(bot, mention(ts="1712345679.000100"))
    assert len(fake_slack.calls_to("assistant.threads.setStatus")) == 1
    posts = fake_slack.calls_to("chat.postMessage")
    assert [p.body["text"] for p in posts] == [PLACEHOLDER, PLACEHOLDER]
    assert final_texts(fake_slack, CHANNEL, MENTION_TS) == ["Answered under a placeholder."]


async def test_the_status_names_the_steps_this_answer_takes(
    make_bot: BotFactory, fake_slack: FakeSlack
) -> None:
    bot = await make_bot()
    await answer_via_socket(bot, mention())  # at the top: no thread to read, no file
    parent = fake_slack.post_human(CHANNEL, "an earlier message")
    await answer_via_socket(bot, mention(ts="1712345679.000100", thread_ts=parent))
    loading = [entry[3] for entry in fake_slack.status_history]
    assert loading == [
        ["Searching the docs…", "Writing the answer…"],
        ["Reading the thread…", "Searching the docs…", "Writing the answer…"],
    ]


async def test_a_slow_model_keeps_the_thread_status_up(
    make_bot: BotFactory, fake_slack: FakeSlack, fake_openai: FakeOpenAI, monkeypatch: Any
) -> None:
    """Slack drops a status after two minutes without a message: it is set again meanwhile."""
    monkeypatch.setattr("bots.slack.sink.STATUS_RENEW_S", 0.2)
    fake_openai.script("Finally.", chunk_size=100, delay_s=0.7)
    bot = await make_bot()
    await answer_via_socket(bot, mention())
    assert len(fake_slack.calls_to("assistant.threads.setStatus")) >= 3
    assert final_texts(fake_slack, CHANNEL, MENTION_TS) == ["Finally."]


async def test_http_retry_of_an_answered_event_is_ignored(
    make_bot: BotFactory, fake_slack: FakeSlack, fake_openai: FakeOpenAI, http_url: Any
) -> None:
    bot = await make_bot()
    url = await http_url(bot)
    body = json.dumps(mention())
    async with aiohttp.ClientSession() as http:
        for retry in (None, "1", "2"):
            headers = signed_headers(body, content_type="application/json")
            if retry:
                headers.update({"X-Slack-Retry-Num": retry, "X-Slack-Retry-Reason": "timeout"})
            async with http.post(url, data=body, headers=headers) as response:
                assert response.status == 200
    await bot.drain()
    assert len(fake_slack.calls_to("chat.postMessage")) == 1
    assert len(fake_openai.requests) == 1


async def test_http_bad_signature_is_refused(
    make_bot: BotFactory, fake_slack: FakeSlack, http_url: Any
) -> None:
    bot = await make_bot()
    url = await http_url(bot)
    body = json.dumps(mention())
    headers = signed_headers(body, secret="wrong-secret", content_type="application/json")
    async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers) as r:
        assert r.status == 401
    await bot.drain()
    assert fake_slack.calls_to("chat.postMessage") == []


@on_server_and_cluster
async def test_http_slash_reset_in_channel_forgets_every_thread(
    make_bot: BotFactory, fake_slack: FakeSlack, http_url: Any
) -> None:
    bot = await make_bot()
    await answer_via_socket(bot, mention())
    await answer_via_socket(bot, mention("second", ts="1712345800.000100"))
    await answer_via_socket(bot, payload("message_im"))
    url = await http_url(bot)
    form = urlencode(payload("command_reset"))
    headers = signed_headers(form, content_type="application/x-www-form-urlencoded")
    async with aiohttp.ClientSession() as http, http.post(url, data=form, headers=headers) as r:
        assert r.status == 200
        reply = await r.text()  # a plain-text ack body: Slack shows it to the user only
    assert reply == "Forgot 2 conversations in this channel."
    assert not await bot.pipeline.has_history(f"slack:{{{TEAM_ID}:{CHANNEL}}}:{MENTION_TS}")
    assert await bot.pipeline.has_history(f"slack:{{{TEAM_ID}:{DM}}}")  # other conversations stay


async def test_malformed_slack_requests_get_400(make_settings: MakeSettings) -> None:
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


async def test_serve_runs_http_mode_on_slack_port(
    make_settings: Any, fake_slack: FakeSlack, unused_tcp_port: int
) -> None:
    """What `threadbot slack` runs without an app token: bolt on SLACK_PORT at /slack/events."""
    settings = make_settings(
        slack_bot_token="xoxb-test",
        slack_signing_secret=SECRET,
        slack_api_url=fake_slack.api_url,
        slack_port=unused_tcp_port,
        slack_edit_interval_ms=50,
    )
    server = asyncio.create_task(serve(settings))
    body = json.dumps(mention())
    url = f"http://127.0.0.1:{unused_tcp_port}/slack/events"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(200):  # until the server listens (Pipeline.create loads a model)
                try:
                    headers = signed_headers(body, content_type="application/json")
                    async with http.post(url, data=body, headers=headers) as response:
                        assert response.status == 200
                        break
                except aiohttp.ClientConnectorError:
                    assert not server.done()
                    await asyncio.sleep(0.05)
        await fake_slack.wait_for(lambda: bool(fake_slack.thread(CHANNEL, MENTION_TS)))
    finally:
        server.cancel()
        await asyncio.gather(server, return_exceptions=True)  # waits for the answer in flight
    assert final_texts(fake_slack, CHANNEL, MENTION_TS) == ["You said: how do I install threadbot?"]


# -- Socket Mode's request path --------------------------------------------------------------


@on_server_and_cluster
async def test_follow_up_in_thread_uses_history(
    make_bot: BotFactory, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    bot = await make_bot()
    await answer_via_socket(bot, mention("what is a widget?"))
    await answer_via_socket(bot, thread_reply("and a gadget?", ts="1712345690.000300"))

    assert len(fake_openai.requests) == 2
    sent = [m["content"] for m in fake_openai.requests[1]["messages"]]
    assert "what is a widget?" in sent and "You said: what is a widget?" in sent
    assert final_texts(fake_slack, CHANNEL, MENTION_TS) == [
        "You said: what is a widget?",
        "You said: and a gadget?",
    ]


async def test_thread_without_the_bot_is_ignored(
    make_bot: BotFactory, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    bot = await make_bot()
    await answer_via_socket(
        bot, thread_reply("unrelated chat", ts="1712349999.000100", thread_ts="1712349000.000100")
    )
    assert fake_slack.calls_to("conversations.replies")  # it looked, then kept quiet
    assert fake_slack.calls_to("chat.postMessage") == []
    assert fake_openai.requests == []


@pytest.mark.parametrize("failure", ["not_in_channel", "ratelimited"])
async def test_thread_that_cannot_be_read_is_ignored_quietly(
    failure: str,
    make_bot: BotFactory,
    fake_slack: FakeSlack,
    fake_openai: FakeOpenAI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    if failure == "ratelimited":
        fake_slack.rate_limit_next("conversations.replies", retry_after_s=0.1)
    else:
        fake_slack.fail_next("conversations.replies", failure)
    bot = await make_bot()
    with caplog.at_level(logging.WARNING, logger="bots.slack.bot"):
        await answer_via_socket(
            bot, thread_reply("unrelated", ts="1712349999.000100", thread_ts="1712349000.000100")
        )
    assert [c.error for c in fake_slack.calls_to("conversations.replies")] == [failure]
    # Not decided to answer, so nobody is told that something went wrong.
    assert fake_slack.calls_to("chat.postEphemeral") == []
    assert fake_slack.calls_to("chat.postMessage") == []
    assert fake_openai.requests == []
    assert "cannot read the thread" in caplog.text


@on_server_and_cluster
async def test_two_questions_in_one_thread_answer_in_order(
    make_bot: BotFactory, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    bot = await make_bot()
    await answer_via_socket(bot, mention("first"))
    fake_openai.script("second answer, slowly", chunk_size=4, delay_s=0.01)
    await via_socket_mode(bot, thread_reply("second", ts="1712345690.000300"))
    await via_socket_mode(bot, thread_reply("third", ts="1712345691.000300"))
    await bot.drain()
    assert final_texts(fake_slack, CHANNEL, MENTION_TS) == [
        "You said: first",
        "second answer, slowly",
        "You said: third",
    ]
    third = [m["content"] for m in fake_openai.requests[2]["messages"]]
    assert "second answer, slowly" in third


async def test_dm_is_answered_at_the_top_of_the_dm(
    make_bot: BotFactory, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    # Socket Mode as `threadbot slack` runs it: an app token and no signing secret.
    bot = await make_bot(slack_signing_secret=None, slack_app_token="xapp-test")
    with pytest.raises(ValueError, match="SLACK_SIGNING_SECRET"):
        bot.http_app()
    await answer_via_socket(bot, payload("message_im"))
    await answer_via_socket(
        bot, payload("message_im", text="and for annual plans?", ts="1712345701.0")
    )
    assert final_texts(fake_slack, DM, None) == [
        "You said: what is the refund policy?",
        "You said: and for annual plans?",
    ]
    assert all("thread_ts" not in c.body for c in fake_slack.calls_to("chat.postMessage"))
    sent = [m["content"] for m in fake_openai.requests[1]["messages"]]
    assert "what is the refund policy?" in sent


async def test_bot_messages_and_edits_are_ignored(
    make_bot: BotFactory, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    bot = await make_bot()
    for name in ("message_bot", "message_changed"):
        await answer_via_socket(bot, payload(name))
    await answer_via_socket(bot, payload("message_im", user=BOT_USER_ID))
    assert [c.method for c in fake_slack.calls if c.method != "auth.test"] == []
    assert fake_openai.requests == []


@on_server_and_cluster
async def test_retried_event_is_answered_once(
    make_bot: BotFactory, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    bot = await make_bot()
    body = mention()
    await answer_via_socket(bot, body)
    await answer_via_socket(bot, body, retry=1)
    await answer_via_socket(bot, body)  # same event_id without the header: still once
    assert len(fake_slack.calls_to("chat.postMessage")) == 1
    assert len(fake_openai.requests) == 1


@on_server_and_cluster
async def test_two_processes_sharing_redis_answer_once(
    make_bot: BotFactory, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    first, second = await make_bot(), await make_bot()
    assert first.pipeline is not second.pipeline
    body = mention()
    await via_socket_mode(first, body)
    await via_socket_mode(second, body)
    await first.drain()
    await second.drain()
    assert len(fake_slack.calls_to("chat.postMessage")) == 1
    assert len(fake_openai.requests) == 1


@on_server_and_cluster
async def test_slash_reset_in_dm_is_ephemeral_with_a_count(
    make_bot: BotFactory, fake_slack: FakeSlack
) -> None:
    bot = await make_bot()
    await answer_via_socket(bot, payload("message_im"))
    command = payload("command_reset", channel_id=DM, channel_name="directmessage")
    command.update(channel_id=DM, channel_name="directmessage")
    response = await via_socket_mode(bot, command)
    assert response.body == "Forgot 1 conversation in this DM."
    assert not await bot.pipeline.has_history(f"slack:{{{TEAM_ID}:{DM}}}")
    again = await via_socket_mode(bot, command)
    assert again.body == "Forgot 0 conversations in this DM."


@on_server_and_cluster
async def test_mention_reset_in_thread_forgets_that_thread(
    make_bot: BotFactory, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    bot = await make_bot()
    await answer_via_socket(bot, mention())
    session = f"slack:{{{TEAM_ID}:{CHANNEL}}}:{MENTION_TS}"
    assert await bot.pipeline.has_history(session)
    await answer_via_socket(bot, mention("reset", ts="1712345699.000100", thread_ts=MENTION_TS))
    assert not await bot.pipeline.has_history(session)
    ephemeral = fake_slack.calls_to("chat.postEphemeral")
    assert [e.body["text"] for e in ephemeral] == ["Forgot our conversation in this thread."]
    assert ephemeral[0].body["thread_ts"] == MENTION_TS and ephemeral[0].body["user"] == "U0ALICE"
    assert len(fake_openai.requests) == 1  # "reset" never reached the model


@on_server_and_cluster
async def test_reset_shortcut_forgets_the_thread(
    make_bot: BotFactory, fake_slack: FakeSlack
) -> None:
    bot = await make_bot()
    await answer_via_socket(bot, mention())
    await answer_via_socket(bot, payload("shortcut_reset"))
    assert not await bot.pipeline.has_history(f"slack:{{{TEAM_ID}:{CHANNEL}}}:{MENTION_TS}")
    texts = [e.body["text"] for e in fake_slack.calls_to("chat.postEphemeral")]
    assert texts == ["Forgot our conversation in this thread."]


# -- errors ----------------------------------------------------------------------------------


async def test_rate_limited_update_waits_and_coalesces(
    make_bot: BotFactory, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    answer = " ".join(f"word{i}" for i in range(60))
    chunk_count = -(-len(answer) // 5)
    fake_openai.script(answer, chunk_size=5, delay_s=0.005)
    fake_slack.rate_limit_next("chat.update", retry_after_s=0.2)
    bot = await make_bot()
    await answer_via_socket(bot, mention())
    # The text's updates (the last update adds the feedback buttons under the final text).
    updates = [u for u in fake_slack.calls_to("chat.update") if "blocks" not in u.body]
    limited = [u for u in updates if u.status == 429]
    assert len(limited) == 1
    after = [u for u in updates if u.at > limited[0].at]
    assert after and after[0].at - limited[0].at >= 0.18  # waited out Retry-After
    # Coalesced: the first update after the wait carries everything that arrived meanwhile
    # (never the refused text again), and updates stay far fewer than chunks.
    shown = [u.body["text"].removesuffix("▌").rstrip() for u in updates]
    in_progress = shown[updates.index(limited[0]) : -1]
    assert all(len(a) < len(b) for a, b in itertools.pairwise(in_progress))
    assert len(updates) < chunk_count // 2
    assert len(fake_slack.calls_to("chat.postMessage")) == 1
    assert final_texts(fake_slack, CHANNEL, MENTION_TS) == [answer]


async def test_per_method_rate_limit_never_loses_text(
    make_bot: BotFactory, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    answer = " ".join(f"token{i}" for i in range(120))
    fake_openai.script(answer, chunk_size=4, delay_s=0.002)
    fake_slack.limit_rate("chat.update", calls=2, per_s=0.3)
    bot = await make_bot(slack_edit_interval_ms=10)
    await answer_via_socket(bot, mention())
    assert final_texts(fake_slack, CHANNEL, MENTION_TS) == [answer]
    assert any(u.status == 429 for u in fake_slack.calls_to("chat.update"))


async def test_msg_too_long_continues_in_a_new_message(
    make_bot: BotFactory, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    paragraphs = [f"Paragraph {i}. " + "lorem ipsum dolor " * 12 for i in range(10)]
    answer = "\n\n".join(paragraphs)  # ~2,400 characters
    fake_slack.max_text_len = 1000  # Slack refuses earlier than the sink's declared max_len
    fake_openai.script(answer, chunk_size=200)
    bot = await make_bot()
    await answer_via_socket(bot, mention())
    assert any(c.error == "msg_too_long" for c in fake_slack.calls)
    parts = final_texts(fake_slack, CHANNEL, MENTION_TS)
    assert len(parts) >= 3 and all(len(p) <= 1000 for p in parts)
    assert " ".join(" ".join(parts).split()) == " ".join(answer.split())


async def test_long_answer_is_split_below_max_len(
    make_bot: BotFactory, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    answer = "\n\n".join(f"Section {i}: " + "x" * 90 + "." for i in range(80))  # ~8,000 chars
    fake_openai.script(answer, chunk_size=500)
    bot = await make_bot()
    await answer_via_socket(bot, mention())
    parts = final_texts(fake_slack, CHANNEL, MENTION_TS)
    assert len(parts) >= 3 and all(len(p) <= MAX_LEN for p in parts)
    assert not any(c.error for c in fake_slack.calls)
    assert " ".join(" ".join(parts).split()) == " ".join(answer.split())


async def test_placeholder_deleted_mid_stream_stops_the_answer(
    make_bot: BotFactory, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    # Long enough that it cannot end before the deletion is seen, even on a loaded machine;
    # the test takes as long as the cancellation, not the script.
    fake_openai.script("slow " * 2000, chunk_size=5, delay_s=0.01)
    bot = await make_bot()
    await via_socket_mode(bot, mention())
    await fake_slack.wait_for(lambda: len(fake_slack.calls_to("chat.update")) >= 1)
    fake_slack.delete(CHANNEL, fake_slack.calls_to("chat.update")[0].body["ts"])
    await bot.drain()
    assert any(c.error == "message_not_found" for c in fake_slack.calls_to("chat.update"))
    texts = [e.body["text"] for e in fake_slack.calls_to("chat.postEphemeral")]
    assert texts == ["I stopped answering because the answer message was deleted."]
    assert not await bot.pipeline.has_history(f"slack:{{{TEAM_ID}:{CHANNEL}}}:{MENTION_TS}")


async def test_model_failure_ends_with_a_short_message(
    make_bot: BotFactory, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script("The first part of the answer", chunk_size=5, fail_after_chunks=3)
    bot = await make_bot()
    await answer_via_socket(bot, mention())
    (text,) = final_texts(fake_slack, CHANNEL, MENTION_TS)
    assert text.startswith("The first part")
    assert "⚠️" in text and "▌" not in text


async def test_unexpected_slack_error_ends_with_an_apology(
    make_bot: BotFactory, fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    fake_slack.fail_next("chat.update", "invalid_blocks")  # not one the editor handles
    bot = await make_bot()
    await answer_via_socket(bot, mention())
    (text,) = final_texts(fake_slack, CHANNEL, MENTION_TS)
    assert text.endswith(f"⚠️ {ThreadbotError.user_message}")  # after what was shown
    assert "answering slack:" in caplog.text  # logged with its traceback


async def test_redis_down_says_so_in_the_thread(
    make_bot: BotFactory, fake_slack: FakeSlack, unused_tcp_port: int
) -> None:
    bot = await make_bot(redis_url=f"redis://127.0.0.1:{unused_tcp_port}/0")
    await answer_via_socket(bot, mention())
    (text,) = final_texts(fake_slack, CHANNEL, MENTION_TS)
    assert "conversation store" in text


# -- native streaming ------------------------------------------------------------------------


async def test_native_streaming_uses_the_stream_methods(
    make_bot: BotFactory, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    answer = "Native **streaming** answer. " * 10
    fake_openai.script(answer, chunk_size=10, delay_s=0.005)
    bot = await make_bot(slack_streaming="native")
    await answer_via_socket(bot, mention())
    counts = fake_slack.counts()
    assert counts.get("chat.startStream") == 1 and counts.get("chat.stopStream") == 1
    assert "chat.update" not in counts and "chat.postMessage" not in counts
    start = fake_slack.calls_to("chat.startStream")[0].body
    assert (start["recipient_team_id"], start["recipient_user_id"]) == (TEAM_ID, "U0ALICE")
    assert final_texts(fake_slack, CHANNEL, MENTION_TS) == [answer]


async def test_native_streaming_waits_out_a_rate_limit(
    make_bot: BotFactory, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    answer = " ".join(f"piece{i}" for i in range(80))
    fake_openai.script(answer, chunk_size=6, delay_s=0.003)
    fake_slack.rate_limit_next("chat.appendStream", retry_after_s=0.1)
    bot = await make_bot(slack_streaming="native", slack_edit_interval_ms=20)
    await answer_via_socket(bot, mention())
    assert any(c.status == 429 for c in fake_slack.calls_to("chat.appendStream"))
    assert final_texts(fake_slack, CHANNEL, MENTION_TS) == [answer]


async def test_native_streaming_failure_closes_the_answer_before_apologizing(
    make_bot: BotFactory, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script("word " * 2000, chunk_size=5, delay_s=0.01)  # ~20 s if not stopped
    bot = await make_bot(slack_streaming="native", slack_edit_interval_ms=20)
    await via_socket_mode(bot, mention())
    # Refused once the stream shows text, as an error the editor does not handle.
    await fake_slack.wait_for(lambda: any(m.text for m in fake_slack.thread(CHANNEL, MENTION_TS)))
    fake_slack.fail_next("chat.appendStream", "invalid_blocks")
    await bot.drain()
    texts = [e.body["text"] for e in fake_slack.calls_to("chat.postEphemeral")]
    assert texts == [f"⚠️ {ThreadbotError.user_message}"]
    # The answer was closed with the event, not whenever the garbage collector gets to it:
    # the conversation is free for the next question at once.
    session = f"slack:{{{TEAM_ID}:{CHANNEL}}}:{MENTION_TS}"
    assert not await bot.pipeline.store.redis.exists(
        f"{bot.settings.redis_namespace}lock:{session}"
    )
    await fake_openai.wait_for_cancel()
    assert fake_openai.cancelled == 1


async def test_native_streaming_refused_falls_back_to_editing(
    make_bot: BotFactory, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    fake_slack.refuse_streaming = "not_allowed_token_type"
    answer = "Edited instead of streamed, all of it."
    fake_openai.script(answer, chunk_size=5)
    bot = await make_bot(slack_streaming="native")
    await answer_via_socket(bot, mention())
    assert len(fake_slack.calls_to("chat.startStream")) == 1
    assert fake_slack.calls_to("chat.postMessage")[0].body["text"] == PLACEHOLDER
    assert final_texts(fake_slack, CHANNEL, MENTION_TS) == [answer]


# -- on the 3-node cluster alone: how the keys of a turn lie there ------------------------------


@on_cluster
async def test_keys_of_a_conversation_share_one_slot_and_conversations_spread(
    make_bot: BotFactory,
    fake_slack: FakeSlack,
    fake_openai: FakeOpenAI,
) -> None:
    first, second = await make_bot(), await make_bot()  # two workers on the cluster
    channels = [f"C{n:03d}" for n in range(12)]
    for n, channel in enumerate(channels):
        worker = (first, second)[n % 2]
        await via_socket_mode(worker, mention(f"question {n}", channel=channel))
    await first.drain()
    await second.drain()
    assert len(fake_openai.requests) == len(channels)

    cluster = first.pipeline.store.redis
    assert isinstance(cluster, RedisCluster)
    ns = first.settings.redis_namespace
    keys = [k.decode() async for k in cluster.scan_iter(match="test-*")]
    ours = [k for k in keys if k.startswith((ns, first.settings.history_key_prefix))]
    by_channel: dict[str, set[int]] = {}
    for key in ours:
        for channel in channels:
            if f":{channel}}}" in key:
                by_channel.setdefault(channel, set()).add(cluster.keyslot(key))
    # Every channel's history, lock, line, counters and session sets: one slot each...
    assert set(by_channel) == set(channels)
    assert all(len(slots) == 1 for slots in by_channel.values()), by_channel
    # ...and the conversations are spread over the cluster's nodes.
    nodes = {cluster.get_node_from_key(k).name for k in ours if "message_store" in k}
    assert len(nodes) >= 2, nodes


@on_cluster
async def test_two_workers_on_a_cluster_answer_a_thread_in_order(
    make_bot: BotFactory,
    fake_slack: FakeSlack,
    fake_openai: FakeOpenAI,
) -> None:
    first, second = await make_bot(), await make_bot()
    await via_socket_mode(first, mention("q0"))
    # A thread reply is for the bot once the bot is in the thread: as in Slack, the replies
    # come once the first answer shows (a worker that saw nothing of it ignores them).
    await first.drain()
    for n in range(1, 8):
        worker = (first, second)[n % 2]
        await via_socket_mode(worker, thread_reply(f"q{n}", ts=f"1712345700.{n:06d}"))
    await first.drain()
    await second.drain()
    asked = [r["messages"][-1]["content"] for r in fake_openai.requests]
    assert asked == [f"q{n}" for n in range(8)]
    session = sessions.slack_session(TEAM_ID, CHANNEL, MENTION_TS)
    history = await first.pipeline.store.history(session).aget_messages()
    assert [m.content for m in history[::2]] == [f"q{n}" for n in range(8)]
