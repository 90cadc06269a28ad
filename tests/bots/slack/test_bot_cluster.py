"""The Slack flow on a real 3-node Redis Cluster: history, resets, dedupe, order, two workers.

The flow's own tests run again here with `REDIS_URL=redis+cluster://...`: each of them passes
only if every multi-key step of a turn stays within one hash slot (the cluster refuses a
transaction or script across slots) and MOVED redirections are followed.
"""

from __future__ import annotations

import pytest
from redis.asyncio.cluster import RedisCluster

from core import sessions
from tests.bots.slack.test_bot import (  # noqa: F401 (fixtures and tests, run here on the cluster)
    CHANNEL,
    MENTION_TS,
    BotFactory,
    http_url,
    make_bot,
    mention,
    test_follow_up_in_thread_uses_history,
    test_http_slash_reset_in_channel_forgets_every_thread,
    test_mention_reset_in_thread_forgets_that_thread,
    test_reset_shortcut_forgets_the_thread,
    test_retried_event_is_answered_once,
    test_slash_reset_in_dm_is_ephemeral_with_a_count,
    test_two_processes_sharing_redis_answer_once,
    test_two_questions_in_one_thread_answer_in_order,
    thread_reply,
    via_socket_mode,
)
from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.fake_slack import TEAM_ID, FakeSlack


@pytest.fixture
def redis_url(redis_cluster_url: str) -> str:
    """Every bot in this module talks to the cluster."""
    return redis_cluster_url


async def test_keys_of_a_conversation_share_one_slot_and_conversations_spread(
    make_bot: BotFactory,  # noqa: F811 (the fixture imported above)
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


async def test_two_workers_on_a_cluster_answer_a_thread_in_order(
    make_bot: BotFactory,  # noqa: F811 (the fixture imported above)
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
