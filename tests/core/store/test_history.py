"""The history store: compatible with LangChain's RedisChatMessageHistory both ways (across a
restart of the server too), and cheap."""

from __future__ import annotations

import uuid

import pytest
import redis
from langchain_community.chat_message_histories import RedisChatMessageHistory
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from redis.asyncio import Redis

from core.store.history import RedisHistory
from tests.valkey_server import Valkey


def session() -> str:
    return f"compat-{uuid.uuid4().hex}"


async def test_langchain_reads_what_we_write(redis_url: str):
    client = Redis.from_url(redis_url)
    sid = session()
    ours = RedisHistory(client, sid, max_messages=10, ttl_s=60)
    await ours.aadd_messages([HumanMessage("hi"), AIMessageChunk(content="hello there")])
    await ours.aadd_messages([HumanMessage("again"), AIMessage("yes")])
    theirs = RedisChatMessageHistory(sid, url=redis_url)
    assert theirs.messages == [
        HumanMessage("hi"),
        AIMessage("hello there"),
        HumanMessage("again"),
        AIMessage("yes"),
    ]
    assert type(theirs.messages[1]) is AIMessage  # a chunk type is never stored
    await client.aclose()


async def test_we_read_what_langchain_writes(redis_url: str):
    sid = session()
    theirs = RedisChatMessageHistory(sid, url=redis_url)
    theirs.add_message(HumanMessage("from an existing app"))
    theirs.add_message(AIMessage("answered there"))
    client = Redis.from_url(redis_url)
    ours = RedisHistory(client, sid)
    assert await ours.aget_messages() == [
        HumanMessage("from an existing app"),
        AIMessage("answered there"),
    ]
    await ours.aclear()
    assert theirs.messages == []
    await client.aclose()


async def test_a_turn_is_one_read_and_one_transaction(redis_url: str):
    """Count the commands the server receives (INFO commandstats), not our own calls."""
    probe = redis.Redis.from_url(redis_url)
    client = Redis.from_url(redis_url)
    history = RedisHistory(client, session(), max_messages=6, ttl_s=60)
    await client.ping()  # open the pooled connection before counting

    def stats() -> dict[str, int]:
        info = probe.info("commandstats")
        return {k.removeprefix("cmdstat_"): v["calls"] for k, v in info.items()}

    before = stats()
    await history.aget_messages()
    await history.aadd_messages([HumanMessage("q"), AIMessage("a")])
    after = stats()
    probe.close()
    await client.aclose()
    delta = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    delta.pop("info", None)
    assert delta == {"lrange": 1, "multi": 1, "lpush": 1, "ltrim": 1, "expire": 1, "exec": 1}


async def test_trim_keeps_the_newest_and_ttl_slides(redis_url: str):
    client = Redis.from_url(redis_url)
    history = RedisHistory(client, session(), max_messages=4, ttl_s=50)
    for n in range(4):
        await history.aadd_messages([HumanMessage(f"q{n}"), AIMessage(f"a{n}")])
    assert [m.content for m in await history.aget_messages()] == ["q2", "a2", "q3", "a3"]
    await client.expire(history.key, 5)
    await history.aadd_messages([HumanMessage("q4"), AIMessage("a4")])
    assert 5 < await client.ttl(history.key) <= 50
    await client.aclose()


@pytest.mark.kills
async def test_history_written_by_langchain_survives_a_valkey_restart(valkey: Valkey) -> None:
    """The append-only file keeps every saved turn across a kill of the server: what LangChain
    wrote, threadbot reads after the restart, and what threadbot wrote, LangChain reads."""
    theirs_sid, ours_sid = session(), session()
    theirs = RedisChatMessageHistory(theirs_sid, url=valkey.url)
    theirs.add_messages([HumanMessage("asked in an existing app"), AIMessage("answered there")])
    theirs.redis_client.close()
    async with Redis.from_url(valkey.url) as client:
        ours = RedisHistory(client, ours_sid)
        await ours.aadd_messages([HumanMessage("asked here"), AIMessage("answered here")])

    valkey.kill()  # SIGKILL: nothing is flushed on the way out
    valkey.start()  # the same port and data folder: the append-only file is replayed

    async with Redis.from_url(valkey.url) as client:
        assert await RedisHistory(client, theirs_sid).aget_messages() == [
            HumanMessage("asked in an existing app"),
            AIMessage("answered there"),
        ]
    theirs = RedisChatMessageHistory(ours_sid, url=valkey.url)
    assert theirs.messages == [HumanMessage("asked here"), AIMessage("answered here")]
    theirs.redis_client.close()
