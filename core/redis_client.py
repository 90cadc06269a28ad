"""The one place a Redis client is built: the pool, its limits and the retry-once policy."""

from __future__ import annotations

from typing import TYPE_CHECKING

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

if TYPE_CHECKING:
    from core.settings import Settings


def connect(settings: Settings, url: str | None = None) -> Redis:
    """A client for `url` (default `REDIS_URL`); it connects on first use, so this never blocks.

    A burst of questions waits for a free connection rather than failing past the cap. A
    pooled connection that a restarted server closed fails on first use: that is retried once
    on a new connection (a timeout never is: the command may have been applied). Replies are
    bytes (no decoding): the shared index travels as binary parts.
    """
    url = url if url is not None else settings.redis_url
    if url is None:
        raise ValueError("no Redis URL: set REDIS_URL, or start the embedded server")
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_pool_timeout_s,
        socket_connect_timeout=min(5.0, settings.redis_timeout_s),
        socket_timeout=settings.redis_timeout_s,
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    )
    return Redis.from_pool(pool)
