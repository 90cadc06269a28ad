"""The fake Slack's emulations, each driven through the real slack_sdk AsyncWebClient (or, for
file downloads, a plain aiohttp client as the bot's would be)."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.fake_slack import BOT_ID, BOT_USER_ID, FakeSlack, OtherHost

C = "C0CHAN"
TOKEN = "xoxb-test"


@pytest.fixture
def client(fake_slack: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=TOKEN, base_url=fake_slack.api_url)


async def error_of(call: object) -> str:
    with pytest.raises(SlackApiError) as caught:
        await call  # type: ignore[misc]
    return str(caught.value.response["error"])


async def test_people_and_the_bot_in_one_thread(fake_slack: FakeSlack, client: AsyncWebClient):
    file = fake_slack.add_file("notes.txt", b"hello")
    parent = fake_slack.post_human(C, "question", files=[file])
    await client.chat_postMessage(channel=C, thread_ts=parent, text="answer")
    bob = fake_slack.post_human(C, "thanks", thread_ts=parent, user="U0BOB")

    got = (await client.conversations_replies(channel=C, ts=parent))["messages"]
    assert [m["text"] for m in got] == ["question", "answer", "thanks"]
    assert got[0]["user"] == "U0ALICE" and "bot_id" not in got[0] and got[0]["files"] == [file]
    assert got[0]["reply_count"] == 2 and got[0]["latest_reply"] == bob
    assert (got[1]["user"], got[1]["bot_id"]) == (BOT_USER_ID, BOT_ID)
    assert "bot_id" not in got[2] and got[2]["thread_ts"] == parent
    # A reply's ts reads the whole thread; `thread()` stays the bot's unless asked.
    assert (await client.conversations_replies(channel=C, ts=bob))["messages"] == got
    assert [m.text for m in fake_slack.thread(C, parent)] == ["answer"]
    assert len(fake_slack.thread(C, parent, humans=True)) == 2


async def test_replies_come_in_pages(fake_slack: FakeSlack, client: AsyncWebClient):
    parent = fake_slack.post_human(C, "p")
    for n in range(4):
        fake_slack.post_human(C, f"r{n}", thread_ts=parent)
    texts, cursor, pages = [], None, 0
    while True:
        page = await client.conversations_replies(channel=C, ts=parent, limit=2, cursor=cursor)
        texts += [m["text"] for m in page["messages"]]
        pages += 1
        cursor = page["response_metadata"]["next_cursor"]
        assert page["has_more"] is bool(cursor)
        if not cursor:
            break
    assert (texts, pages) == (["p", "r0", "r1", "r2", "r3"], 3)
    assert len((await client.conversations_replies(channel=C, ts=parent))["messages"]) == 5
    assert await error_of(client.conversations_replies(channel=C, ts="1.000001")) == (
        "thread_not_found"
    )
    bad = client.conversations_replies(channel=C, ts=parent, cursor="bm9wZQ==")
    assert await error_of(bad) == "invalid_cursor"
    fake_slack.rate_limit_next("conversations.replies", retry_after_s=0.1)
    with pytest.raises(SlackApiError) as caught:
        await client.conversations_replies(channel=C, ts=parent)
    assert caught.value.response.status_code == 429


async def test_assistant_status(fake_slack: FakeSlack, client: AsyncWebClient):
    key = (C, "1712345678.000100")
    await client.assistant_threads_setStatus(
        channel_id=C, thread_ts=key[1], status="is thinking…", loading_messages=["Reading…"]
    )
    assert fake_slack.statuses[key] == "is thinking…"
    await client.chat_postMessage(channel=C, thread_ts=key[1], text="done")  # clears it
    assert key not in fake_slack.statuses
    # A form body carries loading_messages as JSON text.
    form = {"channel_id": C, "thread_ts": key[1], "status": "x", "loading_messages": '["a"]'}
    await client.api_call("assistant.threads.setStatus", data=form)
    await client.assistant_threads_setStatus(channel_id=C, thread_ts=key[1], status="")
    assert key not in fake_slack.statuses
    assert fake_slack.status_history == [
        (*key, "is thinking…", ["Reading…"]),
        (*key, "x", ["a"]),
        (*key, "", None),
    ]
    too_many = client.assistant_threads_setStatus(
        channel_id=C, thread_ts=key[1], status="s", loading_messages=["m"] * 11
    )
    assert await error_of(too_many) == "invalid_arguments"
    missing = {"channel_id": C, "status": "s"}
    no_thread = client.api_call("assistant.threads.setStatus", json=missing)
    assert await error_of(no_thread) == "invalid_arguments"
    fake_slack.refuse_status = "missing_scope"
    refused = client.assistant_threads_setStatus(channel_id=C, thread_ts=key[1], status="s")
    assert await error_of(refused) == "missing_scope"
    await client.chat_startStream(channel=C, thread_ts="1712345679.000100", markdown_text="a")
    assert len(fake_slack.status_history) == 3


async def test_streams_slack_ends(fake_slack: FakeSlack, client: AsyncWebClient):
    task = {"type": "task_update", "id": "t1", "title": "Search", "status": "in_progress"}
    started = await client.chat_startStream(channel=C, thread_ts="1.000100", chunks=[task])
    ts = started["ts"]
    done = task | {"status": "complete", "output": "3 hits"}
    await client.chat_appendStream(
        channel=C, ts=ts, chunks=[{"type": "markdown_text", "text": "Hi"}, done]
    )
    msg = fake_slack.messages[(C, ts)]
    assert msg.text == "Hi" and msg.tasks == {"t1": done}
    assert await error_of(client.chat_update(channel=C, ts=ts, text="x")) == "cant_update_message"

    fake_slack.stream_limit_s = 0.05
    await asyncio.sleep(0.1)
    gone = client.chat_appendStream(channel=C, ts=ts, markdown_text=" more")
    assert await error_of(gone) == "message_not_in_streaming_state"
    stop = client.chat_stopStream(channel=C, ts=ts)
    assert await error_of(stop) == "message_not_in_streaming_state"
    assert (msg.text, msg.streaming) == ("Hi", False)
    await client.chat_update(channel=C, ts=ts, text="edited")  # an ended stream edits as usual
    assert msg.text == "edited"

    fake_slack.stream_limit_s = None
    other = (await client.chat_startStream(channel=C, thread_ts="1.000100"))["ts"]
    fake_slack.end_stream(C, other)
    gone = client.chat_stopStream(channel=C, ts=other)
    assert await error_of(gone) == "message_not_in_streaming_state"


async def test_files_need_the_bot_token(fake_slack: FakeSlack, other_host: OtherHost):
    file = fake_slack.add_file("a.csv", b"x,y\n1,2\n", mimetype="text/csv", filetype="csv")
    assert file["id"].startswith("F") and file["size"] == 8
    assert file["url_private_download"].startswith(f"http://127.0.0.1:{fake_slack.port}/")
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(file["url_private_download"], headers=bearer) as resp:
            assert (resp.status, await resp.read()) == (200, b"x,y\n1,2\n")
            assert resp.content_type == "text/csv"
        async with http.get(file["url_private"]) as resp:  # no token: the sign-in page
            assert resp.status == 200 and resp.content_type == "text/html"
            assert resp.history[0].status == 302 and "Sign in" in await resp.text()
        fake_slack.rejected_tokens.add("xoxb-revoked")
        revoked = {"Authorization": "Bearer xoxb-revoked"}
        async with http.get(file["url_private"], headers=revoked, allow_redirects=False) as resp:
            assert resp.status == 302
        path = file["url_private_download"].removeprefix(f"http://127.0.0.1:{fake_slack.port}")
        assert fake_slack.downloads[0] == (path, f"Bearer {TOKEN}")
        auths = [auth for _, auth in fake_slack.downloads]
        assert auths == [f"Bearer {TOKEN}", None, "Bearer xoxb-revoked"]

        fake_slack.redirect_file(file["id"], other_host.url("/cdn/a.csv"))
        async with http.get(file["url_private"], headers=bearer, allow_redirects=False) as resp:
            assert (resp.status, resp.headers["Location"]) == (302, other_host.url("cdn/a.csv"))
        async with http.get(other_host.url("cdn/a.csv")) as resp:
            assert await resp.read() == b"bytes from another host"
    assert other_host.requests == [("/cdn/a.csv", None)]


async def test_usergroup_members(fake_slack: FakeSlack, client: AsyncWebClient):
    fake_slack.usergroups["S0OPS"] = ["U0ALICE", "U0BOB"]
    assert (await client.usergroups_users_list(usergroup="S0OPS"))["users"] == [
        "U0ALICE",
        "U0BOB",
    ]
    assert await error_of(client.usergroups_users_list(usergroup="S0NONE")) == "no_such_subteam"
