"""Discord on a real 3-node Redis Cluster: history, order, reset, and shards split over two
processes, with the flow's own tests run again against `REDIS_URL=redis+cluster://...`."""

from __future__ import annotations

import pytest

from tests.bots.discord.test_bot import (  # noqa: F401 (fixtures and tests, run here on the cluster)
    fake_discord,
    start_bot,
    test_a_reply_to_the_bot_follows_up_with_the_history,
    test_reset_command_forgets_the_channel_conversation,
    test_two_messages_in_one_channel_are_answered_in_arrival_order,
    test_two_processes_split_the_guilds_by_shard,
)


@pytest.fixture
def redis_url(redis_cluster_url: str) -> str:
    """Every bot in this module talks to the cluster."""
    return redis_cluster_url
