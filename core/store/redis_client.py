"""The one Redis client threadbot uses: one server (`redis://`, `rediss://`, `unix://`) or a
Redis Cluster named by seed nodes (`redis+cluster://host:port[,host:port...]`, or
`rediss+cluster://` for TLS).

Both wait for a free connection under a burst rather than fail past the cap, and both retry a
command once on a new connection when a restarted server closed the pooled one. A single
command or a transaction that timed out is never sent again (it may have been applied); redis-py
does resend a cluster's non-transactional pipeline, so threadbot sends only reads and
idempotent writes that way. The scripts a turn runs (claim, taking the conversation) answer a
replay as they answered the first call.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote, urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

if TYPE_CHECKING:
    from core.settings import Settings

CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")
DEFAULT_PORT = 6379


def is_cluster(url: str) -> bool:
    return url.startswith(CLUSTER_SCHEMES)


class CommandObserver(Protocol):
    """Told of every command a client sends (the metrics): runs `call`, which sends `command`
    (a command's name, or MULTI / PIPELINE for a batch), and returns what it returns."""

    async def timed(self, command: str, call: Callable[[], Awaitable[Any]]) -> Any: ...


def connect(
    settings: Settings, url: str | None = None, *, observer: CommandObserver | None = None
) -> Redis:
    """A client for `url` (default `REDIS_URL`) with the pool settings of `settings`; it
    connects on first use, so this never blocks. Replies are bytes (no decoding): the shared
    index travels as binary parts. With `observer`, every command and batch goes through it."""
    url = url if url is not None else settings.redis_url
    if url is None:
        raise ValueError("no Redis URL: set REDIS_URL, or start the embedded server")
    connect_timeout = min(5.0, settings.redis_timeout_s)
    if is_cluster(url):
        return _cluster(url, settings, connect_timeout, observer)
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_pool_timeout_s,
        socket_connect_timeout=connect_timeout,
        socket_timeout=settings.redis_timeout_s,
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    )
    if observer is None:
        return Redis.from_pool(pool)
    client: _ObservedRedis = _ObservedRedis.from_pool(pool)  # type: ignore[assignment]
    client.observer = observer
    return client


class _Unobserved:
    async def timed(self, command: str, call: Callable[[], Awaitable[Any]]) -> Any:
        return await call()


def _batch(transaction: Any) -> str:
    # (what `Redis.pipeline` defaults to; threadbot always says, for the cluster's sake)
    return "MULTI" if transaction is None or transaction else "PIPELINE"


class _ObservedRedis(Redis):
    """One server, each command and batch told to the observer: the client's two entry points."""

    observer: CommandObserver = _Unobserved()

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        send = super().execute_command
        name = str(args[0]).upper() if args else "?"
        return await self.observer.timed(name, lambda: send(*args, **options))  # type: ignore[no-untyped-call]

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        return _ObservedPipeline(
            self.observer, self.connection_pool, self.response_callbacks, transaction, shard_hint
        )


class _ObservedPipeline(Pipeline):
    def __init__(self, observer: CommandObserver, *args: Any) -> None:
        super().__init__(*args)
        self._observer = observer

    async def execute(self, raise_on_error: bool = True) -> Any:
        run = super().execute
        return await self._observer.timed(_batch(self.is_transaction), lambda: run(raise_on_error))


def seed_nodes(url: str) -> list[tuple[str, int]]:
    """The `host:port` pairs of a cluster URL (its netloc after any `user:password@`)."""
    hosts = urlsplit(url).netloc.rpartition("@")[2]
    nodes = []
    for item in hosts.split(","):
        host, colon, port = item.strip().rpartition(":")
        if not colon:
            host, port = port, ""
        host = host.strip("[]") or "localhost"
        nodes.append((host, int(port) if port else DEFAULT_PORT))
    return nodes


def _cluster(
    url: str, settings: Settings, connect_timeout: float, observer: CommandObserver | None
) -> Redis:
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    username, _, password = userinfo.partition(":") if ":" in userinfo else ("", "", userinfo)
    client = _BoundedCluster(
        observer=observer or _Unobserved(),
        permits=settings.redis_max_connections,
        permit_wait_s=settings.redis_pool_timeout_s,
        startup_nodes=[ClusterNode(host, port) for host, port in seed_nodes(url)],
        username=unquote(username) or None,
        password=unquote(password) or None,
        ssl=url.startswith("rediss+"),
        max_connections=settings.redis_max_connections,
        socket_connect_timeout=connect_timeout,
        socket_timeout=settings.redis_timeout_s,
        # MOVED/ASK and a failed-over node are followed by the cluster client itself.
        retry=_NoTimeoutRetry(
            ExponentialBackoff(cap=1.0, base=0.05), 3, supported_errors=(RedisConnectionError,)
        ),
    )
    # The commands threadbot sends are those of `Redis`; the cluster client routes them.
    return client  # type: ignore[return-value]


_holding: contextvars.ContextVar[bool] = contextvars.ContextVar("holding", default=False)


class _NoTimeoutRetry(Retry):
    """Never retries a timeout, whatever the cluster client adds: a transaction that timed out
    may have been applied, and a turn must not be saved twice (the store reads it back)."""

    def update_supported_errors(self, specified_errors: Iterable[type[Exception]]) -> None:
        kept = [e for e in specified_errors if not issubclass(e, RedisTimeoutError)]
        super().update_supported_errors(kept)


class _BoundedCluster(RedisCluster):
    """redis-py's cluster client raises `MaxConnectionsError` the moment a node's connections
    are all busy; a burst of questions must wait for one instead, as the single-server pool
    does. Each command or pipeline holds one of `max_connections` permits, so no node is ever
    asked for more connections than it has. A single command that timed out is not sent
    again."""

    ERRORS_ALLOW_RETRY = tuple(  # type: ignore[assignment]
        e for e in RedisCluster.ERRORS_ALLOW_RETRY if not issubclass(e, RedisTimeoutError)
    )

    def __init__(
        self, *, observer: CommandObserver, permits: int, permit_wait_s: float, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.observer = observer
        self.permits = asyncio.Semaphore(permits)
        self.permit_wait_s = permit_wait_s

    @contextlib.asynccontextmanager
    async def permit(self) -> AsyncIterator[None]:
        if _holding.get():  # a pipeline's fallback to single commands: already counted
            yield
            return
        try:
            async with asyncio.timeout(self.permit_wait_s):
                await self.permits.acquire()
        except TimeoutError as exc:
            raise RedisConnectionError("no free Redis Cluster connection") from exc
        token = _holding.set(True)
        try:
            yield
        finally:
            _holding.reset(token)
            self.permits.release()

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        send = super().execute_command
        name = str(args[0]).upper() if args else "?"
        async with self.permit():
            return await self.observer.timed(name, lambda: send(*args, **kwargs))

    def pipeline(
        self, transaction: Any | None = None, shard_hint: Any | None = None
    ) -> ClusterPipeline:
        pipe = _BoundedPipeline(self, transaction)  # type: ignore[abstract]
        pipe.batch = _batch(transaction)
        return pipe


class _BoundedPipeline(ClusterPipeline):
    batch = "PIPELINE"

    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> Any:
        client: _BoundedCluster = self.cluster_client  # type: ignore[assignment]
        run = super().execute
        async with client.permit():
            return await client.observer.timed(
                self.batch, lambda: run(raise_on_error, allow_redirections)
            )
