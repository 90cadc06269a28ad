"""The fake Discord's forum, threads, history, attachments and reply chains, each read through a
real discord.py client connected to it as tests/bots/discord/test_bot.py connects the bot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import discord
import pytest

from tests.fakes.fake_discord import FakeDiscord, close_client

TIMEOUT_S = 30.0
SEEN = ("message", "thread_create", "raw_message_edit")


class Client(discord.Client):
    """A plain client that queues the events the tests look at, in the order they arrived."""

    def __init__(self) -> None:
        intents = discord.Intents.default()
        intents.message_content = True
        super().__init__(intents=intents, guild_ready_timeout=0.05)
        self.events: asyncio.Queue[tuple[str, tuple[Any, ...]]] = asyncio.Queue()

    def dispatch(self, event: str, /, *args: Any, **kwargs: Any) -> None:
        super().dispatch(event, *args, **kwargs)
        if event in SEEN:
            self.events.put_nowait((event, args))

    async def next(self) -> tuple[str, Any]:
        async with asyncio.timeout(TIMEOUT_S):
            event, args = await self.events.get()
        return event, args[0]


@pytest.fixture
def fake(fake_discord: FakeDiscord) -> FakeDiscord:
    return fake_discord


@pytest.fixture
async def client(fake: FakeDiscord) -> AsyncIterator[Client]:
    client = Client()
    await client.login("fake-token")
    task = asyncio.create_task(client.connect(reconnect=False))
    async with asyncio.timeout(TIMEOUT_S):
        await fake.wait_ready()
        await client.wait_until_ready()
    yield client
    await close_client(client, task)


async def test_a_forum_post_is_a_thread_then_its_starter_message_with_an_attachment(
    fake: FakeDiscord, client: Client
) -> None:
    forum = client.get_channel(fake.forum_id)
    assert isinstance(forum, discord.ForumChannel) and forum.category_id == fake.category_id
    await fake.post_in_forum(
        "Deploy fails", "see log", attachments=[("run log.txt", b"boom", "text/plain")]
    )

    event, thread = await client.next()
    assert event == "thread_create" and isinstance(thread, discord.Thread)
    assert (thread.parent, thread.owner_id, thread.message_count) == (forum, 4242, 0)
    event, message = await client.next()
    # The starter fires on_message, in the thread (known by then), with the thread's id.
    assert event == "message" and message.id == thread.id and message.channel is thread
    assert thread.starter_message is message and forum.last_message_id == thread.id

    [attachment] = message.attachments
    assert (attachment.filename, attachment.size, attachment.content_type) == (
        "run_log.txt",
        4,
        "text/plain",
    )
    assert await attachment.read() == b"boom"
    assert await attachment.read(use_cached=True) == b"boom"  # proxy_url
    assert [auth for _, auth in fake.downloads] == [None, None]  # the CDN needs no token
    assert fake.downloads[0][0] == f"/attachments/{thread.id}/{attachment.id}/run_log.txt"

    assert (await thread.fetch_message(thread.id)).content == "see log"
    fetched = await client.fetch_channel(thread.id)
    assert isinstance(fetched, discord.Thread) and fetched.parent_id == fake.forum_id


async def test_a_thread_started_from_a_message_once(fake: FakeDiscord, client: Client) -> None:
    await fake.send_message(fake.message_create("start here"))
    _, message = await client.next()
    thread = await message.create_thread(name="topic", auto_archive_duration=60)
    assert (thread.id, thread.parent_id, thread.owner_id) == (
        message.id,
        fake.channel_id,
        fake.bot_id,
    )
    assert thread.me is not None and thread.auto_archive_duration == 60
    assert fake.threads_created == [fake.threads[thread.id]]
    assert [(await client.next())[0] for _ in range(2)] == ["thread_create", "raw_message_edit"]
    assert message.thread is not None and message.thread.id == thread.id  # the cached message

    with pytest.raises(discord.HTTPException) as again:
        await message.create_thread(name="again")
    assert (again.value.status, again.value.code) == (400, 160004)

    sent = await thread.send("in the thread")
    assert [m["content"] for m in fake.channel_messages(thread.id)] == ["in the thread"]
    fetched = await client.fetch_channel(thread.id)
    assert isinstance(fetched, discord.Thread)
    assert (fetched.message_count, fetched.last_message_id) == (1, sent.id)


async def test_history_pages_newest_first_and_can_be_rate_limited(
    fake: FakeDiscord, client: Client
) -> None:
    channel = client.get_channel(fake.channel_id)
    assert isinstance(channel, discord.TextChannel)
    for text in ("one", "two", "three"):
        await fake.send_message(fake.message_create(text))
    await channel.send("four")  # the bot's own are history too
    ids = sorted(fake.known)

    async def texts(**kwargs: Any) -> list[str]:
        return [m.content async for m in channel.history(**kwargs)]

    assert await texts(limit=10) == ["four", "three", "two", "one"]
    assert await texts(limit=2) == ["four", "three"]
    assert await texts(limit=10, before=discord.Object(ids[2])) == ["two", "one"]
    assert await texts(limit=2, after=discord.Object(ids[0])) == ["two", "three"]
    assert await texts(limit=10, oldest_first=True) == ["one", "two", "three", "four"]
    assert await texts(limit=3, around=discord.Object(ids[1])) == ["three", "two", "one"]
    with pytest.raises(discord.HTTPException) as too_many:
        await client.http.logs_from(fake.channel_id, 101)
    assert too_many.value.code == 50035

    fake.fail("GET", r"^/channels/\d+/messages$", 429, retry_after_s=0.05)
    assert await texts(limit=1) == ["four"]  # discord.py waited and retried
    assert len(fake.calls("GET", r"^/channels/\d+/messages$")) == 9

    assert (await channel.fetch_message(ids[0])).content == "one"
    with pytest.raises(discord.NotFound) as unknown:
        await channel.fetch_message(12345)
    assert unknown.value.code == 10008


async def test_a_chain_of_replies_can_be_walked_to_its_root(
    fake: FakeDiscord, client: Client
) -> None:
    first = fake.message_create("first")
    second = fake.message_create("second", reply_to=dict(first))
    await fake.send_message(fake.message_create("third", reply_to=dict(second)))
    _, third = await client.next()
    answer = await third.reply("an answer")
    await fake.send_message(fake.message_create("fourth", reply_to=fake.messages[answer.id]))
    _, message = await client.next()

    chain = [message.content]
    while message.reference is not None and message.reference.message_id is not None:
        message = await message.channel.fetch_message(message.reference.message_id)
        chain.append(message.content)
    assert chain == ["fourth", "an answer", "third", "second", "first"]
