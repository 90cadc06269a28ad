"""A lease: Redis keys held while a process works, kept alive by a heartbeat, lost on a crash."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from core.errors import LeaseLost, store_errors

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

OWNER = f"{socket.gethostname()}:{os.getpid()}"  # in each token, for whoever reads Redis

# Renew a key if the holder still holds it (one key per call: a lease's keys are in several
# Redis Cluster slots).
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Lease:
    """One turn's hold on Redis keys (its event's claim, its place in its conversation's line,
    then its conversation's lock).

    Each key holds the lease's token for `lease_s`; a heartbeat renews them every third of that
    from the first key taken until `aclose`, also while the model has not said anything yet.
    When a renewal finds a key gone or someone else's, the lease is `lost`: the turn stopped
    being its holder's (it stalled past the lease) and must not save or show anything more.
    """

    def __init__(self, redis: Redis, lease_s: float) -> None:
        self.token = f"lease:{OWNER}:{uuid.uuid4().hex}"
        self._redis = redis
        self.lease_ms = max(int(lease_s * 1000), 1)
        self._keys: list[str] = []
        self.lines: dict[str, str] = {}  # `waiting` key -> the line it keeps a place in
        # Until when the keys are surely still ours: the last renewal's start plus the lease.
        self._valid_until: float | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self.lost = False

    def check(self) -> None:
        """Raise `LeaseLost` when the keys may have expired: a renewal found them gone, or none
        succeeded for a whole lease (the process stalled, or Redis was unreachable). Checked
        before each step that shows or saves, so a process that wakes from a stall touches
        nothing another process may have taken over, even before its heartbeat runs again."""
        if not self.lost and self._valid_until is not None:
            self.lost = time.monotonic() > self._valid_until
        if self.lost:
            raise LeaseLost("the lease expired while this process stalled")

    async def take(self, key: str) -> bool:
        """Take `key` if nobody holds it."""
        started = time.monotonic()
        with store_errors(f"taking {key}"):
            taken = await self._redis.set(key, self.token, nx=True, px=self.lease_ms)
        if taken:
            self.held(key, since=started)
        return bool(taken)

    def held(self, key: str, *, since: float | None = None) -> None:
        """`key` was set to this lease's token (by a script, sent at `since`): keep it alive
        from now on."""
        if key in self._keys:
            return
        if not self._keys:
            self._valid_until = (since or time.monotonic()) + self.lease_ms / 1000
        self._keys.append(key)
        if self._heartbeat is None:
            self._heartbeat = asyncio.create_task(self._beat())

    def queued(self, waiting: str, line: str) -> None:
        """This lease has a place in `line`, alive as long as `waiting` (renewed with the rest)."""
        self.lines[waiting] = line
        self.held(waiting)

    def dequeued(self, waiting: str) -> None:
        """The place was used up (a script took it and deleted `waiting`)."""
        self.lines.pop(waiting, None)
        self._drop(waiting)

    def _drop(self, key: str) -> None:
        if key in self._keys:
            self._keys.remove(key)
        if not self._keys:  # nothing held: nothing to lose
            self._valid_until = None

    async def release(self, key: str) -> None:
        """Give `key` up at once (the next holder need not wait out the lease)."""
        self._drop(key)
        with contextlib.suppress(RedisError):
            await self._redis.eval(_RELEASE, 1, key, self.token)

    async def aclose(self) -> None:
        """Stop renewing; a place in line never used (a duplicate, a turn that failed first)
        is given up so the turns behind it need not wait out the lease."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
        for waiting, line in list(self.lines.items()):
            with contextlib.suppress(RedisError):
                await self._redis.zrem(line, self.token)
            await self.release(waiting)
            del self.lines[waiting]

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.lease_ms / 3000)
            keys = list(self._keys)
            if not keys:
                continue
            started = time.monotonic()
            try:
                # One command per key (their slots differ): never a pipeline, which a cluster
                # client would send again after a timeout, closing every connection first.
                renewed = await asyncio.gather(
                    *(self._redis.eval(_RENEW, 1, key, self.token, self.lease_ms) for key in keys)
                )
            except RedisError as exc:  # down or frozen: the keys may outlive this, or not
                log.warning("could not renew a lease (%s); retrying", exc)
                continue
            # A key let go meanwhile (a lock released) is not lost, nor is a place in line: a
            # script deletes it when the place is used, and a place lost shows as `gone`.
            lost = [
                k
                for k, n in zip(keys, renewed, strict=True)
                if not n and k in self._keys and k not in self.lines
            ]
            if lost:
                log.warning("lease lost on %s: this process stalled past it", lost)
                self.lost = True
                return
            if self._keys:
                self._valid_until = started + self.lease_ms / 1000
