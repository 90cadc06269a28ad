"""The Discord adapter end to end: the real discord.py client against a local Discord.

Each test starts the fake Discord (REST + gateway) and the fake OpenAI server on loopback, points
discord.py at the fake through `use_discord_api`, logs the real client in and feeds it gateway
events; assertions read what the fake recorded. History, order, reset and shards split over two
processes run again on a real 3-node Redis Cluster (`on_server_and_cluster`, ids `[cluster]`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import discord
import pytest
from discord.user import ClientUser

from bots.discord.bot import DiscordBot, build_discord_bot, serve
from bots.discord.setup import INVITE_PERMISSIONS, invite_url
from bots.discord.sink import SINK_MAX_LEN
from bots.discord.translator import DiscordRules, turn_from_discord
from core.answer.pipeline import Pipeline
from core.errors import HistoryUnavailable
from core.reply.editor import MARKER, Reply
from core.store.sessions import discord_session
from core.turn.access import AccessRules
from core.turn.types import Outcome
from tests.conftest import ROOT, IsolatedSettings, on_server_and_cluster
from tests.fakes.fake_discord import FakeDiscord, close_client
from tests.fakes.fake_openai import FakeOpenAI

TIMEOUT_S = 30.0  # only bounds a failure; passing tests take well under a second each
INTERVAL_MS = 50  # small, so streaming tests produce several edits in well under a second
EDIT = r"^/channels/\d+/messages/\d+$"
SEND = r"^/channels/\d+/messages$"

StartBot = Callable[..., Awaitable[DiscordBot]]


@pytest.fixture
async def start_bot(
    fake_discord: FakeDiscord, pipeline: Pipeline, make_settings: Any
) -> AsyncIterator[StartBot]:
    """Log a real client in against the fake and connect it; closed after the test."""
    running: list[tuple[DiscordBot, asyncio.Task[None]]] = []
    own: list[Pipeline] = []

    async def start(*, pipeline_: Pipeline | None = None, **overrides: Any) -> DiscordBot:
        settings = make_settings(
            discord_token="fake-token",
            discord_api_url=fake_discord.api_url,
            discord_edit_interval_ms=INTERVAL_MS,
            shutdown_grace_s=TIMEOUT_S,
            **overrides,
        )
        if pipeline_ is None and "threadbot_config" in overrides:
            # The bot and its pipeline read the one configuration file, as in `main`.
            pipeline_ = await Pipeline.create(settings)
            own.append(pipeline_)
        pipeline_ = pipeline_ if pipeline_ is not None else pipeline
        client = build_discord_bot(settings, pipeline_, guild_ready_timeout=0.05)
        outcomes: asyncio.Queue[Outcome] = asyncio.Queue()
        client.runner.add_listener(outcomes.put_nowait)
        OUTCOMES[client] = outcomes
        await client.login("fake-token")
        task = asyncio.create_task(client.connect(reconnect=False))
        running.append((client, task))
        async with asyncio.timeout(TIMEOUT_S):
            await fake_discord.wait_ready()
            await client.wait_until_ready()
        return client

    yield start
    for client, task in running:
        await client.runner.aclose()  # answers a failed test left running
        await close_client(client, task)
    for made in own:
        await made.aclose()


OUTCOMES: dict[DiscordBot, asyncio.Queue[Outcome]] = {}


async def next_outcome(client: DiscordBot) -> tuple[str, Reply[Any] | None]:
    """Wait until the bot has finished its next turn: the conversation and the reply shown."""
    async with asyncio.timeout(TIMEOUT_S):
        outcome = await OUTCOMES[client].get()
    return outcome.turn.session_id, outcome.reply


async def exchange(
    fake: FakeDiscord, client: DiscordBot, event: str, data: Any
) -> tuple[str, Reply[Any] | None]:
    """Send one gateway event and wait until the bot has finished answering it."""
    await fake.dispatch(event, data)
    return await next_outcome(client)


def shown(fake: FakeDiscord, channel_id: int) -> list[str]:
    return [m["content"] for m in fake.channel_messages(channel_id)]


# Pure parts


def test_invite_url_asks_for_exactly_the_scopes_and_permissions_used() -> None:
    url = invite_url(1234)
    assert "client_id=1234" in url
    assert "scope=bot+applications.commands" in url
    assert f"permissions={INVITE_PERMISSIONS.value}" in url
    assert {name for name, on in INVITE_PERMISSIONS if on} == {
        "read_messages",
        "send_messages",
        "send_messages_in_threads",
        "create_public_threads",
        "read_message_history",
    }
    # The link docs/discord.md gives for inviting the bot before it runs is this very one.
    documented = (ROOT / "docs" / "discord.md").read_text()
    assert invite_url(1234).replace("1234", "APPLICATION_ID") in documented


def test_rules_allow_lists_and_listed_channels() -> None:
    open_rules = DiscordRules()
    assert open_rules.allows(1, [])
    rules = DiscordRules(channels=frozenset({10}), users=frozenset({1}), roles=frozenset({7}))
    assert rules.allows(1, []) and rules.allows(2, [7]) and not rules.allows(2, [8])

    class Thread:
        id, parent_id, category_id = 30, 10, None

    class Channel:
        id, category_id = 20, 99

    assert rules.mode_of(Thread()) == "auto" and rules.mode_of(Channel()) == "mention"
    assert DiscordRules(channels=frozenset({99})).mode_of(Channel()) == "auto"
    # The core's one access rule, from the settings: a role is a group.
    from_settings = DiscordRules.from_settings(
        IsolatedSettings(discord_allowed_users="11,12", discord_allowed_roles="21")
    )
    assert from_settings.access == AccessRules(
        frozenset({"11", "12"}), frozenset({"21"}), allow_dms=False
    )


def parse(fake: FakeDiscord, payload: Any) -> discord.Message:
    """A discord.Message built from a MESSAGE_CREATE payload the way the client's state does."""
    state = discord.Client(intents=discord.Intents.none())._connection
    state.user = ClientUser(state=state, data=fake._bot_user())
    state._add_guild_from_data(fake._guild_payload())
    channel, _ = state._get_guild_channel(payload)
    return discord.Message(state=state, channel=channel, data=payload)  # type: ignore[arg-type]


def test_turn_from_discord_strips_the_mention_and_names_the_session() -> None:
    fake = FakeDiscord()
    payload = fake.message_create("  how do I deploy? ", mention_bot=True)
    payload["content"] = payload["content"].replace("<@", "<@!") + f" thanks <@{fake.bot_id}>"

    turn = turn_from_discord(parse(fake, payload), bot_id=fake.bot_id, rules=DiscordRules())

    assert turn is not None and turn.question == "how do I deploy?  thanks"
    assert turn.session_id == f"discord:{{{fake.guild_id}:{fake.channel_id}}}"
    assert turn.event_key == f"discord:message:{payload['id']}"
    by_role = fake.message_create(f"<@&{fake.bot_role_id}> hello")  # the bot's managed role
    role_turn = turn_from_discord(parse(fake, by_role), bot_id=fake.bot_id, rules=DiscordRules())
    assert role_turn is not None and role_turn.question == "hello"


def test_turn_from_discord_ignores_bots_webhooks_system_messages_and_unlisted_chatter() -> None:
    fake = FakeDiscord()
    rules = DiscordRules()
    bot = fake.message_create("hi", mention_bot=True, bot=True)
    webhook = fake.message_create("hi", mention_bot=True) | {"webhook_id": "99"}
    joined = fake.message_create("", mention_bot=True) | {"type": 7}
    chatter = fake.message_create("just talking")
    for payload in (bot, webhook, joined, chatter):
        assert turn_from_discord(parse(fake, payload), bot_id=fake.bot_id, rules=rules) is None


def test_turn_from_discord_answers_replies_listed_threads_dms_and_allowed_roles() -> None:
    fake = FakeDiscord()
    bot_says = fake._new_message(str(fake.channel_id), {"content": "an answer"})
    reply = fake.message_create("and then?", reply_to=dict(bot_says))
    in_thread = fake.message_create("how do I deploy?", channel_id=fake.thread_id)
    dm = fake.message_create("private", channel_id=555, guild=False)
    by_category = DiscordRules(channels=frozenset({fake.category_id}))

    def turn(payload: Any, rules: DiscordRules) -> Any:
        return turn_from_discord(parse(fake, payload), bot_id=fake.bot_id, rules=rules)

    assert turn(reply, DiscordRules()).question == "and then?"
    assert turn(in_thread, by_category).session_id.endswith(f":{fake.thread_id}}}")
    assert turn(dm, DiscordRules()) is None
    assert turn(dm, DiscordRules(allow_dms=True)).session_id == "discord:{dm:555}"
    role_only = DiscordRules(roles=frozenset({fake.bot_role_id}))
    member = fake.message_create("hi", mention_bot=True, roles=[fake.bot_role_id])
    assert turn(member, role_only) is not None
    assert turn(fake.message_create("hi", mention_bot=True), role_only) is None


# Through the real client


async def test_mention_posts_one_message_then_edits_it_in_place(
    start_bot: StartBot, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    answer = "Install it with `pip install threadbot`, then run `threadbot ingest docs/`. " * 4
    fake_openai.script(answer, chunk_size=6, delay_s=0.01)
    client = await start_bot()
    question = fake_discord.message_create("how do I install it?", mention_bot=True)

    session_id, reply = await exchange(fake_discord, client, "MESSAGE_CREATE", question)

    assert session_id == discord_session(fake_discord.guild_id, fake_discord.channel_id)
    assert reply is not None and reply.posts == 1 and reply.edits >= 2
    sends = fake_discord.calls("POST", SEND)
    assert len(sends) == 1
    assert str(sends[0].json["message_reference"]["message_id"]) == question["id"]
    message_id = next(iter(fake_discord.messages))
    edits = fake_discord.calls("PATCH", EDIT)
    assert {e.path for e in edits} == {f"/channels/{fake_discord.channel_id}/messages/{message_id}"}
    contents = fake_discord.contents[message_id]
    assert contents[-1] == answer.strip()
    growing = [c.removesuffix(MARKER) for c in contents[:-1]]
    assert all(answer.startswith(c) for c in growing)
    assert [len(c) for c in growing] == sorted(len(c) for c in growing)
    assert all(c.endswith(MARKER) for c in contents[:-1])
    # Nobody is pinged by anything the bot writes, and it typed while the model prepared.
    assert all(r.json["allowed_mentions"]["parse"] == [] for r in [*sends, *edits])
    assert fake_discord.calls("POST", r"/typing$")
    assert "how do I install it?" in fake_openai.requests[0]["messages"][-1]["content"]


@on_server_and_cluster
async def test_a_reply_to_the_bot_follows_up_with_the_history(
    start_bot: StartBot, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    client = await start_bot()
    first = fake_discord.message_create("my name is Ada", mention_bot=True)
    await exchange(fake_discord, client, "MESSAGE_CREATE", first)
    bot_message = next(iter(fake_discord.messages.values()))

    follow_up = fake_discord.message_create("what is my name?", reply_to=bot_message)
    _, reply = await exchange(fake_discord, client, "MESSAGE_CREATE", follow_up)

    assert reply is not None and reply.text == "You said: what is my name?"
    history = [m["content"] for m in fake_openai.requests[-1]["messages"]]
    assert "my name is Ada" in history and "You said: my name is Ada" in history


@on_server_and_cluster
async def test_two_messages_in_one_channel_are_answered_in_arrival_order(
    start_bot: StartBot,
    fake_discord: FakeDiscord,
    fake_openai: FakeOpenAI,
    pipeline: Pipeline,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_openai.script("The first answer, slowly.", chunk_size=3, delay_s=0.02)
    fake_openai.script("The second answer.")
    first = fake_discord.message_create("first?", mention_bot=True)
    second = fake_discord.message_create("second?", mention_bot=True)
    # The first message's claim (a Redis round trip) returns after the second's, as it can on
    # a busy event loop. Answered in the order claims return, the second would go first; in
    # arrival order the second is not claimed until the first is answered (then this waits
    # out its short timeout, which changes nothing).
    second_claimed = asyncio.Event()
    real_claim = pipeline.store.claim

    async def claim(event_key: str, lease: Any) -> Any:
        if event_key.endswith(second["id"]):
            claimed = await real_claim(event_key, lease)
            second_claimed.set()
            return claimed
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.5):
                await second_claimed.wait()
        return await real_claim(event_key, lease)

    monkeypatch.setattr(pipeline.store, "claim", claim)
    client = await start_bot()
    await fake_discord.dispatch("MESSAGE_CREATE", first)
    await fake_discord.dispatch("MESSAGE_CREATE", second)
    session_id, first_reply = await next_outcome(client)
    _, second_reply = await next_outcome(client)

    assert [r.text if r else None for r in (first_reply, second_reply)] == [
        "The first answer, slowly.",
        "The second answer.",
    ]
    stored = await pipeline.store.history(session_id).aget_messages()
    assert [m.content for m in stored] == [
        "first?",
        "The first answer, slowly.",
        "second?",
        "The second answer.",
    ]
    sends = fake_discord.calls("POST", SEND)
    assert [str(s.json["message_reference"]["message_id"]) for s in sends] == [
        first["id"],
        second["id"],
    ]
    assert shown(fake_discord, fake_discord.channel_id) == [
        "The first answer, slowly.",
        "The second answer.",
    ]


async def test_ignores_plain_messages_elsewhere_and_bots(
    start_bot: StartBot, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    client = await start_bot()
    await fake_discord.dispatch("MESSAGE_CREATE", fake_discord.message_create("just chatting"))
    bot_says = fake_discord.message_create("hi", mention_bot=True, bot=True, author_id=777)
    await fake_discord.dispatch("MESSAGE_CREATE", bot_says)
    # Events are handled in order; once this mention is answered the others were judged.
    mention = fake_discord.message_create("ping", mention_bot=True)
    _, reply = await exchange(fake_discord, client, "MESSAGE_CREATE", mention)

    assert reply is not None and reply.text == "You said: ping"
    assert len(fake_openai.requests) == 1
    assert shown(fake_discord, fake_discord.channel_id) == ["You said: ping"]


@pytest.mark.parametrize("listed", ["channel", "category"])
async def test_a_listed_channel_answers_every_message(
    listed: str, start_bot: StartBot, fake_discord: FakeDiscord
) -> None:
    channel_id = fake_discord.channel_ids[1]
    listed_id = channel_id if listed == "channel" else fake_discord.category_id
    client = await start_bot(discord_channels=[listed_id])
    message = fake_discord.message_create("no mention here", channel_id=channel_id)

    session_id, reply = await exchange(fake_discord, client, "MESSAGE_CREATE", message)

    assert session_id == discord_session(fake_discord.guild_id, channel_id)
    assert reply is not None and reply.posts == 1
    assert shown(fake_discord, channel_id) == ["You said: no mention here"]


async def test_a_thread_of_a_listed_channel_is_its_own_conversation(
    start_bot: StartBot, fake_discord: FakeDiscord, pipeline: Pipeline
) -> None:
    client = await start_bot(discord_channels=[fake_discord.channel_id])
    message = fake_discord.message_create("in the thread", channel_id=fake_discord.thread_id)

    session_id, reply = await exchange(fake_discord, client, "MESSAGE_CREATE", message)

    assert session_id == discord_session(fake_discord.guild_id, fake_discord.thread_id)
    assert reply is not None and shown(fake_discord, fake_discord.thread_id) == [reply.text]
    channel_session = discord_session(fake_discord.guild_id, fake_discord.channel_id)
    assert await pipeline.has_history(session_id)
    assert not await pipeline.has_history(channel_session)


async def test_a_long_answer_is_split_with_code_blocks_intact(
    start_bot: StartBot, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    prose = "This paragraph explains one more step of the setup in plain words. " * 6
    code = "```python\n" + "".join(f"print('line {i}')\n" for i in range(60)) + "```"
    answer = "\n\n".join([prose, prose, code, prose, prose, code, prose])
    fake_openai.script(answer, chunk_size=200)
    client = await start_bot()

    _, reply = await exchange(
        fake_discord, client, "MESSAGE_CREATE", fake_discord.message_create("?", mention_bot=True)
    )

    parts = shown(fake_discord, fake_discord.channel_id)
    assert reply is not None and len(parts) >= 3 and reply.posts == len(parts)
    assert all(len(p) <= SINK_MAX_LEN for p in parts)
    assert all(p.count("```") % 2 == 0 for p in parts)  # every part renders on its own
    joined = "\n".join(parts)
    assert all(f"print('line {i}')" in joined for i in range(60))
    assert not any(p.endswith(MARKER) for p in parts)


@on_server_and_cluster
async def test_reset_command_forgets_the_channel_conversation(
    start_bot: StartBot, fake_discord: FakeDiscord, pipeline: Pipeline
) -> None:
    client = await start_bot(discord_guilds=[fake_discord.guild_id])
    assert {c["name"] for c in fake_discord.commands[str(fake_discord.guild_id)]} == {
        "ask",
        "reset",
    }
    session_id = discord_session(fake_discord.guild_id, fake_discord.channel_id)
    mention = fake_discord.message_create("remember me", mention_bot=True)
    await exchange(fake_discord, client, "MESSAGE_CREATE", mention)
    assert await pipeline.has_history(session_id)

    await fake_discord.dispatch("INTERACTION_CREATE", fake_discord.interaction_create("reset"))
    async with asyncio.timeout(TIMEOUT_S):
        await fake_discord.wait_until(lambda: fake_discord.calls("POST", r"/callback$"))

    callback = fake_discord.calls("POST", r"/callback$")[0].json
    assert callback["type"] == 4 and callback["data"]["flags"] == 64  # ephemeral message
    assert callback["data"]["content"] == "Forgot our conversation in this channel."
    assert not await pipeline.has_history(session_id)


async def test_ask_command_defers_then_streams_into_the_response(
    start_bot: StartBot, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    answer = "Slash commands answer in the channel, like a mention would. " * 5
    fake_openai.script(answer, chunk_size=10, delay_s=0.01)
    client = await start_bot()
    assert "global" in fake_discord.commands  # no DISCORD_GUILDS: synced globally
    interaction = fake_discord.interaction_create("ask", {"question": "how?"})

    session_id, reply = await exchange(fake_discord, client, "INTERACTION_CREATE", interaction)

    assert session_id == discord_session(fake_discord.guild_id, fake_discord.channel_id)
    paths = [(r.method, r.path) for r in fake_discord.requests]
    callback = fake_discord.calls("POST", r"/callback$")
    assert len(callback) == 1 and callback[0].json["type"] == 5  # deferred, "thinking"
    original = f"/webhooks/{fake_discord.app_id}/{interaction['token']}/messages/@original"
    edits = [i for i, p in enumerate(paths) if p == ("PATCH", original)]
    assert len(edits) >= 2 and paths.index(("POST", callback[0].path)) < edits[0]
    assert reply is not None and reply.text == answer.strip()
    *texts, buttons = fake_discord.calls("PATCH", original)
    assert texts[-1].json["content"] == answer.strip()
    # Then 👍/👎 under the final text, which is not sent again.
    assert "content" not in buttons.json and buttons.json["components"]
    assert fake_openai.requests[0]["messages"][-1]["content"].endswith("how?")


async def test_a_rate_limited_edit_is_waited_out_and_later_edits_coalesce(
    start_bot: StartBot, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    answer = "".join(f"Word{i} " for i in range(150))
    fake_openai.script(answer, chunk_size=8, delay_s=0.01)  # ~1.2 s of streaming
    fake_discord.fail("PATCH", EDIT, 429, retry_after_s=0.3)
    client = await start_bot()

    _, reply = await exchange(
        fake_discord, client, "MESSAGE_CREATE", fake_discord.message_create("?", mention_bot=True)
    )

    assert reply is not None and reply.rate_limited == 1
    edits = fake_discord.calls("PATCH", EDIT)
    limited, after = edits[0].json["content"], edits[1].json["content"]
    # discord.py did not resend the stale text after sleeping: the editor's next edit carries
    # everything that arrived during the wait, in one request.
    assert after != limited and len(after) > len(limited)
    assert len(edits) < len(answer) // 8
    assert shown(fake_discord, fake_discord.channel_id) == [answer.strip()]


async def test_a_global_rate_limit_is_left_to_discord_py(
    start_bot: StartBot, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    answer = "".join(f"Word{i} " for i in range(60))
    fake_openai.script(answer, chunk_size=8, delay_s=0.01)
    fake_discord.fail("PATCH", EDIT, 429, retry_after_s=0.3, scope="global")
    client = await start_bot()

    _, reply = await exchange(
        fake_discord, client, "MESSAGE_CREATE", fake_discord.message_create("?", mention_bot=True)
    )

    # discord.py saw the 429 itself (so it could hold every request behind its global gate),
    # waited and resent that edit; the editor never saw a rate limit.
    assert reply is not None and reply.rate_limited == 0
    edits = fake_discord.calls("PATCH", EDIT)
    assert edits[1].json["content"] == edits[0].json["content"]
    assert shown(fake_discord, fake_discord.channel_id) == [answer.strip()]


async def test_a_deleted_message_stops_the_stream_and_saves_nothing(
    start_bot: StartBot, fake_discord: FakeDiscord, fake_openai: FakeOpenAI, pipeline: Pipeline
) -> None:
    # Long enough that it cannot end before the deletion is seen, even on a loaded machine
    # (~20 s if not stopped); the test takes as long as the cancellation, not the script.
    fake_openai.script("word " * 2000, chunk_size=5, delay_s=0.01)
    client = await start_bot()
    mention = fake_discord.message_create("?", mention_bot=True)
    await fake_discord.dispatch("MESSAGE_CREATE", mention)
    async with asyncio.timeout(TIMEOUT_S):
        await fake_discord.wait_until(lambda: fake_discord.messages)
    fake_discord.delete_message(next(iter(fake_discord.messages)))

    session_id, reply = await next_outcome(client)

    assert reply is not None and reply.gone
    assert len(fake_discord.calls("POST", SEND)) == 1  # nothing posted after the deletion
    assert not await pipeline.has_history(session_id)
    await fake_openai.wait_for_cancel()
    assert fake_openai.cancelled == 1  # the model request was stopped too


async def test_no_permission_in_a_channel_is_logged_once_and_answers_nothing(
    start_bot: StartBot, fake_discord: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    client = await start_bot()
    fake_discord.forbid(fake_discord.channel_id)
    with caplog.at_level(logging.WARNING, logger="bots.discord.bot"):
        for text in ("first", "second"):
            message = fake_discord.message_create(text, mention_bot=True)
            _, reply = await exchange(fake_discord, client, "MESSAGE_CREATE", message)
            assert reply is None

    assert [r for r in caplog.records if "missing permission" in r.message] != []
    assert len([r for r in caplog.records if "missing permission" in r.message]) == 1
    assert not fake_discord.messages
    assert len(fake_discord.calls("POST", SEND)) == 2


async def test_a_model_failure_ends_the_reply_with_a_short_message(
    start_bot: StartBot, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script("Half an answer that never ends " * 3, chunk_size=10, fail_after_chunks=3)
    client = await start_bot()

    _, reply = await exchange(
        fake_discord, client, "MESSAGE_CREATE", fake_discord.message_create("?", mention_bot=True)
    )

    assert reply is not None and reply.error is not None
    [final] = shown(fake_discord, fake_discord.channel_id)
    assert final.startswith("Half an answer") and "⚠️" in final


async def test_an_unreachable_conversation_store_gets_a_short_message(
    start_bot: StartBot, fake_discord: FakeDiscord, make_settings: Any
) -> None:
    async with await Pipeline.create(make_settings(redis_url="redis://127.0.0.1:1/0")) as down:
        client = await start_bot(pipeline_=down)
        message = fake_discord.message_create("are you there?", mention_bot=True)
        _, reply = await exchange(fake_discord, client, "MESSAGE_CREATE", message)

    assert reply is None
    [shown_text] = shown(fake_discord, fake_discord.channel_id)
    assert shown_text == f"⚠️ {HistoryUnavailable.user_message}"


@pytest.mark.parametrize("allow_dms", [True, False])
async def test_dms_are_answered_only_when_allowed(
    allow_dms: bool, start_bot: StartBot, fake_discord: FakeDiscord
) -> None:
    client = await start_bot(discord_allow_dms=allow_dms)
    dm = fake_discord.message_create("hello in private", channel_id=555, guild=False)
    if allow_dms:
        session_id, reply = await exchange(fake_discord, client, "MESSAGE_CREATE", dm)
        assert session_id == discord_session(None, 555) == "discord:{dm:555}"
        assert reply is not None and shown(fake_discord, 555) == ["You said: hello in private"]
    else:
        await fake_discord.dispatch("MESSAGE_CREATE", dm)
        mention = fake_discord.message_create("and here?", mention_bot=True)
        _, reply = await exchange(fake_discord, client, "MESSAGE_CREATE", mention)
        assert reply is not None and shown(fake_discord, 555) == []


@on_server_and_cluster
async def test_two_processes_split_the_guilds_by_shard(
    start_bot: StartBot, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    clients = [await start_bot(discord_shard_count=2, discord_shard_ids=[n]) for n in (0, 1)]
    async with asyncio.timeout(TIMEOUT_S):
        await fake_discord.wait_until(lambda: len(fake_discord.identifies) == 2)

    assert all(isinstance(c, discord.AutoShardedClient) for c in clients)
    assert sorted(i["shard"] for i in fake_discord.identifies) == [[0, 2], [1, 2]]
    owner = clients[(fake_discord.guild_id >> 22) % 2]  # Discord's shard formula
    mention = fake_discord.message_create("sharded?", mention_bot=True)
    _, reply = await exchange(fake_discord, owner, "MESSAGE_CREATE", mention)
    assert reply is not None and reply.text == "You said: sharded?"
    assert len(fake_openai.requests) == 1


async def test_stopping_the_bot_lets_an_answer_in_flight_finish(
    fake_discord: FakeDiscord, fake_openai: FakeOpenAI, make_settings: Any, pipeline: Pipeline
) -> None:
    answer = "An answer still streaming when the bot is stopped. " * 20
    fake_openai.script(answer, chunk_size=10, delay_s=0.01)  # ~1 s
    settings = make_settings(
        discord_token="fake-token",
        discord_api_url=fake_discord.api_url,
        discord_edit_interval_ms=INTERVAL_MS,
    )
    bot = asyncio.create_task(serve(settings))
    async with asyncio.timeout(TIMEOUT_S):
        await fake_discord.wait_ready()
        mention = fake_discord.message_create("?", mention_bot=True)
        await fake_discord.dispatch("MESSAGE_CREATE", mention)
        await fake_discord.wait_until(lambda: fake_discord.messages)

    bot.cancel()  # what Ctrl-C does to `asyncio.run`
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(TIMEOUT_S):
            await bot

    assert shown(fake_discord, fake_discord.channel_id) == [answer.strip()]
    session_id = discord_session(fake_discord.guild_id, fake_discord.channel_id)
    assert await pipeline.has_history(session_id)


async def test_refuses_to_start_without_a_token_or_the_message_content_intent(
    fake_discord: FakeDiscord, make_settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bots.discord.bot")
    assert await serve(make_settings(discord_token=None)) == 2
    assert "DISCORD_TOKEN is not set" in caplog.text

    fake_discord.message_content_enabled = False
    settings = make_settings(discord_token="fake-token", discord_api_url=fake_discord.api_url)
    async with asyncio.timeout(TIMEOUT_S):
        assert await serve(settings) == 3
    assert "Message Content Intent" in caplog.text
    assert "scope=bot+applications.commands" in caplog.text  # the invite URL was shown


async def test_no_network_is_one_line_and_exit_4(
    make_settings: Any, caplog: pytest.LogCaptureFixture, unused_tcp_port: int
) -> None:
    for api_url in (f"http://127.0.0.1:{unused_tcp_port}/api/v10", None):
        caplog.clear()
        settings = make_settings(discord_token="fake-token", discord_api_url=api_url)
        if api_url is None:  # the real Discord: made unreachable by a proxy nothing listens on
            import discord.http

            real = discord.http.Route.BASE
            discord.http.Route.BASE = f"http://127.0.0.1:{unused_tcp_port}/api/v10"
        try:
            assert await asyncio.wait_for(serve(settings), TIMEOUT_S) == 4
        finally:
            if api_url is None:
                discord.http.Route.BASE = real
        [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert "cannot reach Discord" in record.getMessage() and record.exc_info is None
