"""The lease: keys taken with a token, renewed by a heartbeat, lost to a stall or a takeover."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

import pytest
from redis.asyncio import Redis

from core.errors import LeaseLost
from core.store.lease import OWNER, Lease

LEASE_S = 0.5  # the heartbeat renews every third of it
DEADLINE_S = 5.0


def key(name: str) -> str:
    return f"test-lease:{uuid.uuid4().hex}:{name}"


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Redis]:
    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        yield redis
    finally:
        await redis.aclose()


async def until(condition: Callable[[], bool | Awaitable[bool]], what: str) -> None:
    """Poll `condition` (sync or async) until true, failing after DEADLINE_S."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def until_renewed(client: Redis, k: str, what: str) -> None:
    """Wait until the TTL of `k` goes up: only a renewal raises it (it only falls otherwise)."""
    last = await client.pttl(k)

    async def renewed() -> bool:
        nonlocal last
        ttl = await client.pttl(k)
        went_up, last = ttl > last, ttl
        return went_up

    await until(renewed, what)


class FreezableProxy:
    """A TCP relay to the real Redis that can stop passing bytes, as a frozen network does."""

    def __init__(self, target_url: str) -> None:
        parts = urlsplit(target_url)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self.url = ""

    async def start(self) -> FreezableProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"redis://127.0.0.1:{port}"
        return self

    def freeze(self) -> None:
        self._flowing.clear()

    async def close(self) -> None:
        for pipe in self._pipes:
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            pipe = asyncio.create_task(self._pipe(source, sink))
            self._pipes.add(pipe)
            pipe.add_done_callback(self._pipes.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                await self._flowing.wait()
                sink.write(data)
                await sink.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            sink.close()


async def test_take_sets_the_token_with_the_lease_as_ttl(client: Redis) -> None:
    lease = Lease(client, LEASE_S)
    k = key("claim")
    try:
        assert await lease.take(k)
        assert await client.get(k) == lease.token
        assert lease.token.startswith(f"lease:{OWNER}:")
        assert 0 < await client.pttl(k) <= lease.lease_ms
        lease.check()  # just taken: surely ours
    finally:
        await lease.aclose()


async def test_a_key_someone_holds_is_not_taken(client: Redis) -> None:
    k = key("claim")
    await client.set(k, "someone-else", px=10_000)
    lease = Lease(client, LEASE_S)
    try:
        assert not await lease.take(k)
        assert await client.get(k) == "someone-else"
    finally:
        await lease.aclose()
        await client.delete(k)


async def test_two_leases_get_different_tokens(client: Redis) -> None:
    first, second = Lease(client, LEASE_S), Lease(client, LEASE_S)
    assert first.token != second.token


async def test_the_heartbeat_keeps_the_key_past_its_first_lease(client: Redis) -> None:
    lease = Lease(client, LEASE_S)
    k = key("lock")
    try:
        taken_at = time.monotonic()
        assert await lease.take(k)
        await until_renewed(client, k, "a renewal to push the TTL back up")
        # Without renewals Redis would have expired the key by now; with them it is still ours.
        await until(lambda: time.monotonic() > taken_at + 1.5 * LEASE_S, "the first lease to pass")
        assert await client.get(k) == lease.token
        lease.check()
        assert not lease.lost
    finally:
        await lease.aclose()


async def test_a_key_taken_over_by_another_makes_the_lease_lost(client: Redis) -> None:
    lease = Lease(client, LEASE_S)
    k = key("lock")
    try:
        assert await lease.take(k)
        await client.set(k, "lease:other-process", px=10_000)  # it expired and was taken
        await until(lambda: lease.lost, "the heartbeat to find the key gone")
        with pytest.raises(LeaseLost):
            lease.check()
        assert await client.get(k) == "lease:other-process"  # never touched again
    finally:
        await lease.aclose()
        await client.delete(k)


async def test_a_key_deleted_behind_its_back_makes_the_lease_lost(client: Redis) -> None:
    lease = Lease(client, LEASE_S)
    k = key("claim")
    try:
        assert await lease.take(k)
        await client.delete(k)
        await until(lambda: lease.lost, "the heartbeat to find the key gone")
        with pytest.raises(LeaseLost):
            lease.check()
    finally:
        await lease.aclose()


async def test_check_fails_once_no_renewal_succeeded_for_a_whole_lease(redis_url: str) -> None:
    """Redis frozen: every renewal hangs, so after one lease the keys may be someone else's,
    and check() says so on its own, without the heartbeat having noticed anything."""
    proxy = await FreezableProxy(redis_url).start()
    redis = Redis.from_url(proxy.url, decode_responses=True)
    lease = Lease(redis, LEASE_S)
    try:
        started = time.monotonic()
        assert await lease.take(key("lock"))
        proxy.freeze()
        lease.check()  # still within the lease

        def expired() -> bool:
            try:
                lease.check()
            except LeaseLost:
                return True
            return False

        await until(expired, "check() to give up on the keys")
        assert time.monotonic() - started >= LEASE_S
        assert lease.lost
        with pytest.raises(LeaseLost):
            lease.check()  # and it stays lost
    finally:
        await lease.aclose()
        with contextlib.suppress(Exception):
            await redis.aclose()
        await proxy.close()


async def test_release_deletes_only_our_own_key(client: Redis) -> None:
    lease = Lease(client, LEASE_S)
    mine, theirs = key("mine"), key("theirs")
    try:
        assert await lease.take(mine)
        await lease.release(mine)
        assert await client.exists(mine) == 0  # the next holder need not wait out the lease
        assert await lease.take(theirs)
        await client.set(theirs, "lease:other-process", px=10_000)
        await lease.release(theirs)
        assert await client.get(theirs) == "lease:other-process"
    finally:
        await lease.aclose()
        await client.delete(theirs)


async def test_a_lease_holding_nothing_cannot_expire(redis_url: str) -> None:
    """Every key released: there is nothing to lose, even with renewals impossible."""
    proxy = await FreezableProxy(redis_url).start()
    redis = Redis.from_url(proxy.url, decode_responses=True)
    lease = Lease(redis, LEASE_S)
    k = key("lock")
    try:
        taken_at = time.monotonic()
        assert await lease.take(k)
        await lease.release(k)
        proxy.freeze()
        await until(lambda: time.monotonic() > taken_at + 1.5 * LEASE_S, "the first lease to pass")
        lease.check()
        assert not lease.lost
    finally:
        await lease.aclose()
        with contextlib.suppress(Exception):
            await redis.aclose()
        await proxy.close()


async def test_aclose_stops_renewing(client: Redis) -> None:
    lease = Lease(client, LEASE_S)
    k = key("lock")
    assert await lease.take(k)
    await lease.aclose()

    async def expired() -> bool:
        return await client.exists(k) == 0

    await until(expired, "the key to expire unrenewed")


async def test_aclose_gives_up_a_place_in_line_never_used(client: Redis) -> None:
    lease = Lease(client, LEASE_S)
    line, waiting = key("line"), key("waiting")
    await client.zadd(line, {lease.token: 1, "lease:behind": 2})
    await client.set(waiting, lease.token, px=lease.lease_ms)
    lease.queued(waiting, line)
    try:
        # The place is renewed with the rest while the lease waits in line.
        await until_renewed(client, waiting, "the place in line to be renewed")
    finally:
        await lease.aclose()
    assert await client.zrange(line, 0, -1) == ["lease:behind"]
    assert await client.exists(waiting) == 0
    assert lease.lines == {}
    await client.delete(line)


async def test_a_place_used_up_is_not_lost_nor_given_up(client: Redis) -> None:
    lease = Lease(client, LEASE_S)
    line, waiting, lock = key("line"), key("waiting"), key("lock")
    await client.zadd(line, {lease.token: 1})
    await client.set(waiting, lease.token, px=lease.lease_ms)
    lease.queued(waiting, line)
    try:
        # A script took the lock for the lease and deleted its place.
        await client.set(lock, lease.token, px=lease.lease_ms)
        await client.delete(waiting)
        await client.zrem(line, lease.token)
        lease.held(lock)
        lease.dequeued(waiting)
        await until_renewed(client, lock, "the lock to be renewed")
        lease.check()
        assert lease.lines == {}
    finally:
        await lease.aclose()
        await client.delete(lock, line)
