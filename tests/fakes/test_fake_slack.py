"""The fake Slack's emulations, each driven through the real slack_sdk AsyncWebClient (or, for
file downloads, a plain aiohttp client as the bot's would be; for interactions, a real bolt app)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import aiohttp
import pytest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.socket_mode.async_internals import run_async_bolt_app
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.fake_slack import BOT_ID, BOT_USER_ID, HUMAN_USER_ID, FakeSlack, OtherHost

C = "C0CHAN"
TOKEN = "xoxb-test"
SECRET = "fake-signing-secret"
THUMBS_UP = {"type": "plain_text", "text": "👍"}
THUMBS_DOWN = {"type": "plain_text", "text": "👎"}
FEEDBACK = {
    "type": "context_actions",
    "elements": [
        {
            "type": "feedback_buttons",
            "action_id": "feedback",
            "positive_button": {
                "text": THUMBS_UP,
                "value": "good",
                "accessibility_label": "This answer helped",
            },
            "negative_button": {"text": THUMBS_DOWN, "value": "bad"},
        }
    ],
}
MODAL = {
    "type": "modal",
    "callback_id": "why_bad",
    "private_metadata": "1712345678.000100",
    "title": {"type": "plain_text", "text": "What went wrong?"},
    "submit": {"type": "plain_text", "text": "Send"},
    "close": {"type": "plain_text", "text": "Cancel"},
    "blocks": [
        {
            "type": "input",
            "block_id": "why",
            "label": {"type": "plain_text", "text": "Tell us"},
            "element": {"type": "plain_text_input", "action_id": "reason", "max_length": 500},
        }
    ],
}


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


async def answer_of(call: object) -> dict[str, Any]:
    """The whole error answer (error, response_metadata) of a call Slack refuses."""
    with pytest.raises(SlackApiError) as caught:
        await call  # type: ignore[misc]
    return dict(caught.value.response.data)  # type: ignore[arg-type]


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def button(text: str = "Yes", **extra: Any) -> dict[str, Any]:
    return {"type": "button", "text": {"type": "plain_text", "text": text}} | extra


async def test_feedback_buttons_are_kept_clicked_and_open_a_modal(
    fake_slack: FakeSlack, client: AsyncWebClient
):
    parent = fake_slack.post_human(C, "question")
    blocks = [{"type": "markdown", "text": "**An answer**"}, FEEDBACK]
    posted = await client.chat_postMessage(
        channel=C, thread_ts=parent, text="An answer", blocks=blocks
    )
    shown = posted["message"]["blocks"]
    # Slack gives each block a block_id (not a markdown block, whose block_id it drops).
    assert "block_id" not in shown[0] and shown[1]["block_id"]
    assert shown[1]["elements"] == FEEDBACK["elements"]
    got = (await client.conversations_replies(channel=C, ts=parent))["messages"]
    assert got[1]["blocks"] == shown and fake_slack.messages[(C, posted["ts"])].blocks == shown

    clicked = fake_slack.block_actions(
        C, posted["ts"], HUMAN_USER_ID, "feedback", feedback="negative"
    )
    assert clicked["type"] == "block_actions" and clicked["user"]["id"] == HUMAN_USER_ID
    assert clicked["container"] == {
        "type": "message",
        "message_ts": posted["ts"],
        "channel_id": C,
        "is_ephemeral": False,
        "thread_ts": parent,
    }
    [action] = clicked["actions"]
    assert float(action.pop("action_ts")) == pytest.approx(time.time(), abs=60)
    assert action == {
        "type": "feedback_buttons",
        "action_id": "feedback",
        "block_id": shown[1]["block_id"],
        "text": THUMBS_DOWN,
        "value": "bad",
    }
    assert clicked["message"]["blocks"] == shown and clicked["channel"]["id"] == C
    up = fake_slack.block_actions(C, posted["ts"], "U0BOB", "feedback")["actions"][0]
    assert (up["value"], up["text"]) == ("good", THUMBS_UP)
    with pytest.raises(LookupError):  # nobody can click what the message does not show
        fake_slack.block_actions(C, posted["ts"], HUMAN_USER_ID, "no_such_button")

    opened = (await client.views_open(trigger_id=clicked["trigger_id"], view=MODAL))["view"]
    assert opened["id"].startswith("V") and fake_slack.views == [opened]
    assert (opened["callback_id"], opened["blocks"][0]["block_id"]) == ("why_bad", "why")
    again = client.views_open(trigger_id=clicked["trigger_id"], view=MODAL)
    assert await error_of(again) == "exchanged_trigger_id"
    made_up = client.views_open(trigger_id="12345.98765.abcd2358fdea", view=MODAL)
    assert await error_of(made_up) == "invalid_trigger_id"
    fake_slack.trigger_ttl_s = 0.05
    late = fake_slack.issue_trigger()
    await asyncio.sleep(0.1)
    assert await error_of(client.views_open(trigger_id=late, view=MODAL)) == "expired_trigger_id"
    assert len(fake_slack.views) == 1

    submitted = fake_slack.view_submission(opened["id"], values={"reason": "wrong link"})
    assert submitted["type"] == "view_submission"
    assert submitted["user"]["id"] == HUMAN_USER_ID  # whom the modal was opened for
    assert submitted["view"]["state"]["values"] == {
        "why": {"reason": {"type": "plain_text_input", "value": "wrong link"}}
    }
    assert (submitted["view"]["id"], submitted["view"]["private_metadata"]) == (
        opened["id"],
        "1712345678.000100",
    )
    with pytest.raises(ValueError):  # a required input left empty: Slack's client refuses
        fake_slack.view_submission(opened["id"], values={})
    with pytest.raises(ValueError):
        fake_slack.view_submission(opened["id"], values={"reason": "x" * 501})
    with pytest.raises(KeyError):
        fake_slack.view_submission(opened["id"], values={"reason": "a", "nope": "b"})


async def test_a_refused_block_type_and_the_fallback(fake_slack: FakeSlack, client: AsyncWebClient):
    fake_slack.refuse_block_type("context_actions")
    refused = await answer_of(
        client.chat_postMessage(channel=C, text="answer", blocks=[section("answer"), FEEDBACK])
    )
    assert refused["error"] == "invalid_blocks"
    assert refused["response_metadata"]["messages"] == [
        "[ERROR] failed to match all allowed schemas [json-pointer:/blocks/1]"
    ]
    assert not fake_slack.messages
    fallback = [section("answer"), {"type": "actions", "elements": [button("👍"), button("👎")]}]
    posted = await client.chat_postMessage(channel=C, text="answer", blocks=fallback)
    kept = fake_slack.messages[(C, posted["ts"])]
    assert [b["type"] for b in kept.blocks or []] == ["section", "actions"]
    assert all(e["action_id"] for e in (kept.blocks or [])[1]["elements"])  # Slack adds them

    upgrade = client.chat_update(channel=C, ts=posted["ts"], text="answer", blocks=[FEEDBACK])
    assert await error_of(upgrade) == "invalid_blocks"
    assert kept.blocks and kept.blocks[1]["type"] == "actions" and kept.edits == 0
    await client.chat_update(channel=C, ts=posted["ts"], text="edited")  # no blocks: kept
    assert (kept.text, len(kept.blocks or [])) == ("edited", 2)
    fake_slack.allow_block_type("context_actions")
    await client.chat_update(channel=C, ts=posted["ts"], text="answer", blocks=[FEEDBACK])
    assert [b["type"] for b in kept.blocks or []] == ["context_actions"]
    await client.chat_update(channel=C, ts=posted["ts"], text="plain", blocks=[])
    assert (
        not kept.blocks
        and "blocks"
        not in (await client.conversations_replies(channel=C, ts=posted["ts"]))["messages"][0]
    )


@pytest.mark.parametrize(
    ("blocks", "error", "where"),
    [
        ([section("s")] * 51, "invalid_blocks", "/blocks"),
        ([section("x" * 3001)], "invalid_blocks", "/blocks/0/text/text"),
        ([{"type": "section"}], "invalid_blocks", "/blocks/0"),
        ([{"type": "markdown", "text": "x" * 12_001}], "invalid_blocks", "/blocks/0/text"),
        ([{"type": "markdown", "text": "x" * 6001}] * 2, "msg_blocks_too_long", None),
        (
            [{"type": "actions", "elements": [button("x" * 76)]}],
            "invalid_blocks",
            "/blocks/0/elements/0/text/text",
        ),
        (
            [{"type": "actions", "elements": [button(action_id="a" * 256)]}],
            "invalid_blocks",
            "/blocks/0/elements/0/action_id",
        ),
        (
            [{"type": "actions", "elements": [button(value="v" * 2001)]}],
            "invalid_blocks",
            "/blocks/0/elements/0/value",
        ),
        (
            [{"type": "actions", "elements": [button(style="warning")]}],
            "invalid_blocks",
            "/blocks/0/elements/0/style",
        ),
        (
            [{"type": "actions", "elements": [button()] * 26}],
            "invalid_blocks",
            "/blocks/0/elements",
        ),
        (
            [{"type": "actions", "elements": FEEDBACK["elements"]}],
            "invalid_blocks",
            "/blocks/0/elements/0",
        ),
        (
            [
                {
                    "type": "context_actions",
                    "elements": [
                        FEEDBACK["elements"][0]
                        | {"negative_button": {"text": THUMBS_DOWN, "value": "v" * 2001}}
                    ],
                }
            ],
            "invalid_blocks",
            "/blocks/0/elements/0/negative_button/value",
        ),
        (
            [
                {
                    "type": "context_actions",
                    "elements": [
                        {k: v for k, v in FEEDBACK["elements"][0].items() if k != "negative_button"}
                    ],
                }
            ],
            "invalid_blocks",
            "/blocks/0/elements/0",
        ),
        (
            [
                {
                    "type": "context_actions",
                    "elements": [
                        FEEDBACK["elements"][0]
                        | {
                            "positive_button": {
                                "text": {"type": "mrkdwn", "text": "x"},
                                "value": "good",
                            }
                        }
                    ],
                }
            ],
            "invalid_blocks",
            "/blocks/0/elements/0/positive_button/text",
        ),
        (
            [{"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 11}],
            "invalid_blocks",
            "/blocks/0/elements",
        ),
        (
            [
                {
                    "type": "input",
                    "label": {"type": "plain_text", "text": "l"},
                    "element": {"type": "plain_text_input"},
                }
            ],
            "invalid_blocks",
            "/blocks/0",
        ),
        ([{"type": "carousel_of_wonders"}], "invalid_blocks", "/blocks/0"),
        (
            [section("a") | {"block_id": "same"}, section("b") | {"block_id": "same"}],
            "invalid_blocks",
            "/blocks/1/block_id",
        ),
    ],
)
async def test_blocks_slack_refuses(
    fake_slack: FakeSlack, client: AsyncWebClient, blocks: list[Any], error: str, where: str | None
):
    answer = await answer_of(client.chat_postMessage(channel=C, text="t", blocks=blocks))
    assert answer["error"] == error
    if where is not None:
        assert any(
            m.endswith(f"[json-pointer:{where}]") for m in answer["response_metadata"]["messages"]
        )
    assert not fake_slack.messages


async def test_blocks_at_their_limits_and_as_form_text(
    fake_slack: FakeSlack, client: AsyncWebClient
):
    at_limits = [
        section("x" * 3000),
        {"type": "markdown", "text": "m" * 6000},
        {"type": "markdown", "text": "m" * 6000},
        {
            "type": "actions",
            "elements": [button("b" * 75, action_id="a" * 255, value="v" * 2000, style="danger")],
        },
        {"type": "context_actions", "elements": [FEEDBACK["elements"][0]] * 5},
        {"type": "divider"},
        *[section("s")] * 44,
    ]
    assert len(at_limits) == 50
    posted = await client.chat_postMessage(channel=C, text="t", blocks=at_limits)
    assert len(fake_slack.messages[(C, posted["ts"])].blocks or []) == 50
    form = {"channel": C, "text": "t", "blocks": json.dumps([section("from a form")])}
    by_form = await client.api_call("chat.postMessage", data=form)
    assert by_form["message"]["blocks"][0]["text"]["text"] == "from a form"
    broken = client.api_call("chat.postMessage", data=form | {"blocks": "[{not json"})
    assert await error_of(broken) == "invalid_blocks_format"
    not_a_list = client.api_call("chat.postMessage", json={"channel": C, "blocks": {"type": "x"}})
    assert await error_of(not_a_list) == "invalid_blocks_format"

    stream = (await client.chat_startStream(channel=C, thread_ts="1.000100"))["ts"]
    bad_stop = client.chat_stopStream(channel=C, ts=stream, blocks=[section("x" * 3001)])
    assert await error_of(bad_stop) == "invalid_blocks"
    assert fake_slack.messages[(C, stream)].streaming  # still open: the stop was refused
    await client.chat_stopStream(channel=C, ts=stream, blocks=[FEEDBACK])
    stopped = fake_slack.messages[(C, stream)]
    assert (
        not stopped.streaming and stopped.blocks and stopped.blocks[0]["type"] == "context_actions"
    )


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"title": {"type": "plain_text", "text": "t" * 25}}, "/view/title/text"),
        ({"title": {"type": "mrkdwn", "text": "t"}}, "/view/title"),
        ({"submit": {"type": "plain_text", "text": "s" * 25}}, "/view/submit/text"),
        ({"close": {"type": "plain_text", "text": "c" * 25}}, "/view/close/text"),
        ({"submit": None}, "/view"),
        ({"callback_id": "c" * 256}, "/view/callback_id"),
        ({"private_metadata": "p" * 3001}, "/view/private_metadata"),
        ({"type": "home"}, "/view/type"),
        (
            {"blocks": [MODAL["blocks"][0] | {"element": {"type": "plain_text"}}]},
            "/view/blocks/0/element",
        ),
        (
            {
                "blocks": [
                    MODAL["blocks"][0] | {"label": {"type": "plain_text", "text": "l" * 2001}}
                ]
            },
            "/view/blocks/0/label/text",
        ),
        ({"blocks": [section("s")] * 101}, "/view/blocks"),
        ({"blocks": [FEEDBACK]}, "/view/blocks/0"),
    ],
)
async def test_modals_slack_refuses(
    fake_slack: FakeSlack, client: AsyncWebClient, change: dict[str, Any], where: str
):
    view = {k: v for k, v in (MODAL | change).items() if v is not None}
    trigger = fake_slack.issue_trigger()
    answer = await answer_of(client.views_open(trigger_id=trigger, view=view))
    assert answer["error"] == "invalid_arguments"
    assert any(
        m.endswith(f"[json-pointer:{where}]") for m in answer["response_metadata"]["messages"]
    )
    assert not fake_slack.views
    await client.views_open(trigger_id=trigger, view=MODAL)  # a refused view used no trigger
    assert len(fake_slack.views) == 1


def signed(body: str) -> dict[str, str]:
    """The headers Slack signs a request to the app's Request URL with."""
    ts = str(int(time.time()))
    signature = SignatureVerifier(SECRET).generate_signature(timestamp=ts, body=body)
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature,
    }


async def test_interactions_reach_a_bolt_app_each_way_slack_sends_them(
    fake_slack: FakeSlack, client: AsyncWebClient
):
    """A 👎 opens a modal, its submission is read: over HTTP (a signed form `payload=`), through
    bolt's Socket Mode request path (as tests/bots/slack/test_bot.py's via_socket_mode), and over
    the fake's own Socket Mode, to a real AsyncSocketModeHandler."""
    app = AsyncApp(client=client, signing_secret=SECRET, process_before_response=True)
    seen: list[str] = []

    @app.action("feedback")
    async def on_feedback(ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any):
        await ack()
        seen.append(action["value"])
        await client.views_open(trigger_id=body["trigger_id"], view=MODAL)
        await respond(text="Thanks for the feedback", replace_original=False)

    @app.view("why_bad")
    async def on_reason(ack: Any, view: dict[str, Any]):
        await ack()
        seen.append(view["state"]["values"]["why"]["reason"]["value"])

    ts = (await client.chat_postMessage(channel=C, text="answer", blocks=[FEEDBACK]))["ts"]

    form = fake_slack.interactive_form(fake_slack.block_actions(C, ts, HUMAN_USER_ID, "feedback"))
    over_http = await app.async_dispatch(AsyncBoltRequest(body=form, headers=signed(form)))
    assert over_http.status == 200 and seen == ["good"] and len(fake_slack.views) == 1
    assert fake_slack.responses[0][1]["text"] == "Thanks for the feedback"

    submission = fake_slack.view_submission(fake_slack.views[0]["id"], values={"reason": "stale"})
    request = SocketModeRequest(
        type="interactive", envelope_id=uuid.uuid4().hex, payload=submission
    )
    assert (await run_async_bolt_app(app, request)).status == 200
    assert seen == ["good", "stale"]

    handler = AsyncSocketModeHandler(app, "xapp-1-test")
    await handler.connect_async()
    try:
        await fake_slack.wait_for(lambda: bool(fake_slack.socket_mode.open))
        clicked = fake_slack.block_actions(C, ts, "U0BOB", "feedback", feedback="negative")
        envelope = await fake_slack.send_interactive(clicked)
        sent = fake_slack.socket_mode.envelopes[envelope]
        await fake_slack.wait_for(lambda: sent.acked_on is not None and len(fake_slack.views) == 2)
    finally:
        await handler.close_async()
    assert seen == ["good", "stale", "bad"]
    assert fake_slack.calls_to("views.open")[-1].body["trigger_id"] == clicked["trigger_id"]
