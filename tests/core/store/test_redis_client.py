"""The one Redis client: one server or a Redis Cluster by its seed nodes, bursts that wait."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio.cluster import RedisCluster

from core.store.redis_client import connect, seed_nodes
from tests.conftest import IsolatedSettings, MakeSettings


def test_a_cluster_url_names_its_seed_nodes() -> None:
    assert seed_nodes("redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7001,cache") == [
        ("10.0.0.1", 7000),
        ("10.0.0.2", 7001),
        ("cache", 6379),
    ]
    assert seed_nodes("rediss+cluster://user:pw@[::1]:7000") == [("::1", 7000)]


def test_settings_accept_cluster_urls_and_refuse_a_hash_tag_in_prefixes() -> None:
    url = "redis+cluster://a:1,b:2"
    assert IsolatedSettings(redis_url=url).redis_url == url
    with pytest.raises(ValueError, match=r"or redis\+cluster://"):
        IsolatedSettings(redis_url="cluster://a:1")
    with pytest.raises(ValueError, match="Redis Cluster slot"):
        IsolatedSettings(redis_namespace="{bot}:")


@pytest.mark.cluster
async def test_a_burst_on_the_cluster_waits_for_a_connection(
    redis_cluster_url: str, make_settings: MakeSettings
) -> None:
    """redis-py's cluster client alone raises MaxConnectionsError past its cap; ours waits."""
    client = connect(make_settings(redis_url=redis_cluster_url, redis_max_connections=4))
    assert isinstance(client, RedisCluster)
    run = uuid.uuid4().hex
    try:

        async def saved(n: int) -> list[object]:
            async with client.pipeline(transaction=True) as tx:
                tx.incr(f"{run}:{{c{n % 20}}}:count")
                tx.expire(f"{run}:{{c{n % 20}}}:count", 60)
                return list(await tx.execute())

        results = await asyncio.gather(
            *(saved(n) for n in range(300)), *(client.get(f"{run}:{n}") for n in range(300))
        )
        counts = [await client.get(f"{run}:{{c{n}}}:count") for n in range(20)]
        assert sum(int(c) for c in counts) == 300
        assert len(results) == 600
    finally:
        await client.aclose()
