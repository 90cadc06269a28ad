"""The fake Discord's forum, threads, history, attachments, reply chains, components and
interaction responses, each read through a real discord.py client connected to it as
tests/bots/discord/test_bot.py connects the bot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import discord
import pytest
from discord.http import Route

from tests.fakes.fake_discord import DEADLINE_S, FakeDiscord, close_client

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


# Components and interactions


class Reason(discord.ui.Modal, title="What went wrong?"):
    """The old layout (a text input in an action row) and the new one (in a Label)."""

    reason = discord.ui.TextInput(
        label="Tell us", style=discord.TextStyle.paragraph, custom_id="reason", max_length=500
    )
    details = discord.ui.Label(
        text="Anything else?",
        description="optional",
        component=discord.ui.TextInput(custom_id="details", required=False),
    )

    def __init__(self, submitted: list[tuple[str, str]]) -> None:
        super().__init__(custom_id="why")
        self.submitted = submitted

    async def on_submit(self, interaction: discord.Interaction) -> None:
        details = self.details.component
        assert isinstance(details, discord.ui.TextInput)
        self.submitted.append((self.reason.value, details.value))
        await interaction.response.send_message("Thanks, noted.", ephemeral=True)


class Feedback(discord.ui.View):
    """👍 edits the answer in place (UPDATE_MESSAGE); 👎 asks why in a modal."""

    def __init__(self) -> None:
        super().__init__(timeout=60)
        self.clicks: list[tuple[str, int]] = []
        self.submitted: list[tuple[str, str]] = []
        self.add_item(discord.ui.Button(label="Sources", url="https://example.com/docs"))

    @discord.ui.button(emoji="👍", custom_id="fb:up", style=discord.ButtonStyle.secondary)
    async def up(self, interaction: discord.Interaction, button: discord.ui.Button[Any]) -> None:
        self.clicks.append(("up", interaction.user.id))
        await interaction.response.edit_message(content="an answer (rated 👍)", view=None)

    @discord.ui.button(emoji="👎", custom_id="fb:down", style=discord.ButtonStyle.secondary)
    async def down(self, interaction: discord.Interaction, button: discord.ui.Button[Any]) -> None:
        self.clicks.append(("down", interaction.user.id))
        await interaction.response.send_modal(Reason(self.submitted))


async def test_feedback_buttons_answer_a_click_with_an_edit_or_a_modal(
    fake: FakeDiscord, client: Client
) -> None:
    channel = client.get_channel(fake.channel_id)
    assert isinstance(channel, discord.TextChannel)
    view = Feedback()
    sent = await channel.send("an answer", view=view)
    [row] = fake.messages[sent.id]["components"]
    assert [(b["type"], b.get("custom_id"), b.get("url")) for b in row["components"]] == [
        (2, "fb:up", None),
        (2, "fb:down", None),
        (2, None, "https://example.com/docs"),
    ]
    assert [row["id"], *(b["id"] for b in row["components"])] == [1, 2, 3, 4]  # ids Discord adds
    fetched = await channel.fetch_message(sent.id)
    [parsed] = fetched.components
    assert isinstance(parsed, discord.ActionRow)
    assert [getattr(b, "custom_id", None) for b in parsed.children] == ["fb:up", "fb:down", None]
    with pytest.raises(LookupError):  # a link sends no interaction
        fake.component_interaction(sent.id, "Sources")

    down = fake.component_interaction(sent.id, "fb:down", user_id=77)
    assert (down["type"], down["data"]) == (3, {"custom_id": "fb:down", "component_type": 2})
    assert down["message"]["id"] == str(sent.id) and down["channel_id"] == str(fake.channel_id)
    await fake.dispatch("INTERACTION_CREATE", down)
    async with asyncio.timeout(TIMEOUT_S):
        await fake.wait_until(lambda: fake.modals)
    [shown] = fake.modals
    assert (shown.custom_id, shown.title, shown.user_id, shown.message_id) == (
        "why",
        "What went wrong?",
        77,
        sent.id,
    )
    assert [c["type"] for c in shown.components] == [1, 18]
    [callback] = fake.callbacks
    assert (callback.type, callback.interaction_type, callback.status) == (9, 3, 200)
    assert callback.after_s is not None and 0 <= callback.after_s < DEADLINE_S
    assert view.clicks == [("down", 77)]

    with pytest.raises(KeyError):
        fake.modal_submit("why", {"reason": "x", "color": "blue"}, user_id=77)
    with pytest.raises(ValueError):  # required, and Discord's client will not send it empty
        fake.modal_submit("why", {"details": "only this"}, user_id=77)
    with pytest.raises(ValueError):
        fake.modal_submit("why", {"reason": "x" * 501}, user_id=77)
    with pytest.raises(LookupError):  # shown to 77, not to 78
        fake.modal_submit("why", {"reason": "x"}, user_id=78)
    submit = fake.modal_submit("why", {"reason": "the link is dead"}, user_id=77)
    assert submit["type"] == 5 and submit["message"]["id"] == str(sent.id)
    assert submit["data"]["components"][1] == {
        "type": 18,
        "id": shown.components[1]["id"],
        "component": {
            "type": 4,
            "id": shown.components[1]["component"]["id"],
            "custom_id": "details",
            "value": "",
        },
    }
    await fake.dispatch("INTERACTION_CREATE", submit)
    async with asyncio.timeout(TIMEOUT_S):
        await fake.wait_until(lambda: len(fake.callbacks) == 2)
    assert view.submitted == [("the link is dead", "")]
    thanks = fake.callbacks[1]
    assert (thanks.type, thanks.interaction_type, thanks.body["data"]["flags"]) == (4, 5, 64)
    [reply] = [m for m in fake.messages.values() if m["content"] == "Thanks, noted."]
    assert reply["flags"] & 64 and reply["webhook_id"] == str(fake.app_id)

    await fake.dispatch("INTERACTION_CREATE", fake.component_interaction(sent.id, "fb:up"))
    async with asyncio.timeout(TIMEOUT_S):
        await fake.wait_until(lambda: len(fake.callbacks) == 3)
    assert (fake.callbacks[2].type, fake.callbacks[2].status) == (7, 200)
    edited = fake.messages[sent.id]
    assert (edited["content"], edited["components"]) == ("an answer (rated 👍)", [])
    assert fake.contents[sent.id] == ["an answer", "an answer (rated 👍)"]
    assert view.clicks == [("down", 77), ("up", 4242)]


async def respond(client: Client, payload: dict[str, Any], body: dict[str, Any]) -> Any:
    """A raw response to an interaction, as a client without discord.py's own checks sends it."""
    route = Route(
        "POST",
        "/interactions/{interaction_id}/{interaction_token}/callback",
        interaction_id=payload["id"],
        interaction_token=payload["token"],
    )
    return await client.http.request(route, json=body, params={"with_response": "true"})


async def test_an_interaction_is_answered_once_within_the_deadline(
    fake: FakeDiscord, client: Client
) -> None:
    channel = client.get_channel(fake.channel_id)
    assert isinstance(channel, discord.TextChannel)
    button = {"type": 2, "style": 1, "label": "OK", "custom_id": "ok"}
    sent = await client.http.request(
        Route("POST", "/channels/{channel_id}/messages", channel_id=channel.id),
        json={"content": "pick", "components": [{"type": 1, "components": [button]}]},
    )
    message_id = int(sent["id"])

    click = fake.component_interaction(message_id, "ok")
    await fake.dispatch("INTERACTION_CREATE", click)
    deferred = await respond(client, click, {"type": 6})
    assert deferred["resource"] == {"type": 6} and deferred["interaction"]["type"] == 3
    with pytest.raises(discord.HTTPException) as twice:
        await respond(client, click, {"type": 4, "data": {"content": "again"}})
    assert (twice.value.status, twice.value.code) == (400, 40060)
    assert [(c.type, c.status, c.code) for c in fake.callbacks] == [(6, 200, None), (4, 400, 40060)]
    assert fake.messages[message_id]["content"] == "pick"  # 6 changed nothing yet
    # After a deferred update, @original is the clicked message.
    await client.http.request(
        Route(
            "PATCH",
            "/webhooks/{application_id}/{token}/messages/@original",
            application_id=fake.app_id,
            token=click["token"],
        ),
        json={"content": "picked", "components": []},
    )
    assert (fake.messages[message_id]["content"], fake.messages[message_id]["components"]) == (
        "picked",
        [],
    )

    command = fake.interaction_create("ask")  # a command has no message to update
    await fake.dispatch("INTERACTION_CREATE", command)
    with pytest.raises(discord.HTTPException) as no_message:
        await respond(client, command, {"type": 7, "data": {"content": "x"}})
    assert no_message.value.code == 50035 and "type" in no_message.value.text
    thinking = await respond(client, command, {"type": 5})
    assert thinking["interaction"]["response_message_loading"] is True

    with pytest.raises(discord.NotFound) as unknown:
        await respond(client, {"id": "1", "token": "never-made"}, {"type": 5})
    assert unknown.value.code == 10062

    fake.interaction_deadline_s = 0.05
    late = fake.interaction_create("ask")
    await fake.dispatch("INTERACTION_CREATE", late)
    await asyncio.sleep(0.1)
    with pytest.raises(discord.NotFound) as too_late:
        await respond(client, late, {"type": 5})
    assert too_late.value.code == 10062 and fake.callbacks[-1].after_s > 0.05


@pytest.mark.parametrize(
    ("components", "path", "code"),
    [
        (
            [
                {
                    "type": 1,
                    "components": [{"type": 2, "style": 1, "custom_id": "c", "label": "l" * 81}],
                }
            ],
            "components.0.components.0.label",
            "BASE_TYPE_MAX_LENGTH",
        ),
        (
            [{"type": 1, "components": [{"type": 2, "style": 1, "label": "no id"}]}],
            "components.0.components.0.custom_id",
            "BASE_TYPE_REQUIRED",
        ),
        (
            [{"type": 1, "components": [{"type": 2, "style": 1, "custom_id": "c" * 101}]}],
            "components.0.components.0.custom_id",
            "BASE_TYPE_BAD_LENGTH",
        ),
        (
            [{"type": 1, "components": [{"type": 2, "style": 9, "custom_id": "c"}]}],
            "components.0.components.0.style",
            "BASE_TYPE_CHOICES",
        ),
        (
            [{"type": 1, "components": [{"type": 2, "style": 5, "label": "docs"}]}],
            "components.0.components.0.url",
            "BASE_TYPE_REQUIRED",
        ),
        (
            [
                {
                    "type": 1,
                    "components": [{"type": 2, "style": 5, "url": "https://x", "custom_id": "c"}],
                }
            ],
            "components.0.components.0.custom_id",
            "COMPONENT_INVALID_FIELD",
        ),
        (
            [{"type": 1, "components": [{"type": 2, "style": 1, "custom_id": "c", "emoji": {}}]}],
            "components.0.components.0.emoji",
            "COMPONENT_INVALID_EMOJI",
        ),
        (
            [{"type": 1, "components": [{"type": 2, "style": 1, "custom_id": "c"}] * 2}],
            "components.0.components.1.custom_id",
            "COMPONENT_CUSTOM_ID_DUPLICATED",
        ),
        (
            [
                {
                    "type": 1,
                    "components": [{"type": 2, "style": 1, "custom_id": f"c{i}"} for i in range(6)],
                }
            ],
            "components.0.components",
            "BASE_TYPE_BAD_LENGTH",
        ),
        ([{"type": 1, "components": []}], "components.0.components", "BASE_TYPE_BAD_LENGTH"),
        (
            [
                {"type": 1, "components": [{"type": 2, "style": 1, "custom_id": f"r{i}"}]}
                for i in range(6)
            ],
            "components",
            "BASE_TYPE_MAX_LENGTH",
        ),
        (
            [{"type": 2, "style": 1, "custom_id": "loose"}],
            "components.0.type",
            "UNION_TYPE_CHOICES",
        ),
    ],
)
async def test_components_discord_refuses(
    fake: FakeDiscord, client: Client, components: list[Any], path: str, code: str
) -> None:
    route = Route("POST", "/channels/{channel_id}/messages", channel_id=fake.channel_id)
    with pytest.raises(discord.HTTPException) as refused:
        await client.http.request(route, json={"content": "x", "components": components})
    assert (refused.value.status, refused.value.code) == (400, 50035)
    assert f"In {path}: " in refused.value.text  # discord.py flattens Discord's nested errors
    assert not fake.messages

    sent = await client.http.request(route, json={"content": "kept"})
    edit = Route(
        "PATCH",
        "/channels/{channel_id}/messages/{message_id}",
        channel_id=fake.channel_id,
        message_id=sent["id"],
    )
    with pytest.raises(discord.HTTPException) as on_edit:
        await client.http.request(edit, json={"components": components})
    assert on_edit.value.code == 50035
    assert fake.messages[int(sent["id"])]["components"] == []


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"title": "t" * 46}, "data.title"),
        ({"custom_id": "c" * 101}, "data.custom_id"),
        ({"components": []}, "data.components"),
        (
            {
                "components": [
                    {
                        "type": 18,
                        "label": "l",
                        "component": {"type": 4, "custom_id": f"i{i}", "style": 1},
                    }
                    for i in range(6)
                ]
            },
            "data.components",
        ),
        (
            {
                "components": [
                    {
                        "type": 18,
                        "label": "l" * 46,
                        "component": {"type": 4, "custom_id": "i", "style": 1},
                    }
                ]
            },
            "data.components.0.label",
        ),
        (
            {
                "components": [
                    {"type": 1, "components": [{"type": 4, "custom_id": "i", "style": 1}]}
                ]
            },
            "data.components.0.components.0.label",
        ),
        (
            {
                "components": [
                    {
                        "type": 18,
                        "label": "l",
                        "component": {"type": 4, "custom_id": "i", "style": 3},
                    }
                ]
            },
            "data.components.0.component.style",
        ),
        (
            {
                "components": [
                    {
                        "type": 18,
                        "label": "l",
                        "component": {"type": 4, "custom_id": "i", "style": 1, "max_length": 4001},
                    }
                ]
            },
            "data.components.0.component.max_length",
        ),
        (
            {"components": [{"type": 18, "label": "l", "component": {"type": 4, "style": 1}}]},
            "data.components.0.component.custom_id",
        ),
        (
            {
                "components": [
                    {"type": 1, "components": [{"type": 2, "style": 1, "custom_id": "b"}]}
                ]
            },
            "data.components.0.components.0.type",
        ),
    ],
)
async def test_modals_discord_refuses(
    fake: FakeDiscord, client: Client, change: dict[str, Any], path: str
) -> None:
    modal = {
        "custom_id": "why",
        "title": "Why?",
        "components": [
            {"type": 18, "label": "Tell us", "component": {"type": 4, "custom_id": "r", "style": 2}}
        ],
    }
    command = fake.interaction_create("ask")
    await fake.dispatch("INTERACTION_CREATE", command)
    with pytest.raises(discord.HTTPException) as refused:
        await respond(client, command, {"type": 9, "data": modal | change})
    assert (refused.value.status, refused.value.code) == (400, 50035)
    assert f"In {path}: " in refused.value.text
    assert not fake.modals
    await respond(client, command, {"type": 9, "data": modal})  # a refused modal answered nothing
    assert [m.custom_id for m in fake.modals] == ["why"]
