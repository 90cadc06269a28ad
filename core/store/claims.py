"""Event claims: every delivery of an event is answered once, and a reply a crash left
unfinished is found and finished by whoever claims the event next."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from core.errors import store_errors
from core.store import scripts
from core.store.base import SEEN_TTL_S, StoreBase, text
from core.store.lease import Lease


@dataclass(frozen=True)
class Claim:
    """An event's claim: `new`, `resumed` from a dead holder (with its in-flight record), or
    not ours: `busy` (a live holder answers it) or `done`."""

    status: Literal["new", "resumed", "busy", "done"]
    record: dict[str, Any] | None = None


class Claims(StoreBase):
    async def claim(self, event_key: str, lease: Lease) -> Claim:
        """Claim an event for `lease`, unless a live holder has it or it was answered."""
        seen, record_key = self._event_keys(event_key)
        with store_errors(f"claiming {event_key}"):
            status = await self.redis.eval(
                scripts.CLAIM, 2, seen, record_key, lease.token, lease.lease_ms
            )
            status = text(status)
            record = None
            if status == "resumed":
                raw = await self.redis.get(record_key)
                record = json.loads(raw) if raw else None
        if status in ("new", "resumed"):
            lease.held(seen)
        return Claim(status, record)  # type: ignore[arg-type]

    async def record(self, event_key: str, record: dict[str, Any]) -> None:
        """Keep what a recovery needs to finish this event's reply (until `complete`)."""
        _, record_key = self._event_keys(event_key)
        with store_errors(f"recording {event_key}"):
            await self.redis.sadd(self._inflight, event_key)  # listed first: never missed
            await self.redis.set(record_key, json.dumps(record), ex=SEEN_TTL_S)

    async def complete(self, event_key: str, lease: Lease) -> None:
        """The event's reply is final: never answer it again, forget its in-flight record."""
        seen, record_key = self._event_keys(event_key)
        with store_errors(f"completing {event_key}"):
            if await self.redis.eval(
                scripts.COMPLETE, 2, seen, record_key, lease.token, SEEN_TTL_S
            ):
                await self.redis.srem(self._inflight, event_key)
        await lease.release(seen)  # it says done now: the release finds another value

    async def orphans(self) -> list[tuple[str, dict[str, Any]]]:
        """In-flight records whose holder's claim expired: replies a crash left unfinished."""
        with store_errors("reading in-flight records"):
            events = [text(e) for e in await self.redis.smembers(self._inflight)]
            found = []
            for event_key in events:
                seen, record_key = self._event_keys(event_key)
                async with self.redis.pipeline(transaction=False) as tx:
                    tx.exists(seen)
                    tx.get(record_key)
                    claimed, raw = await tx.execute()
                if raw is None:
                    await self.redis.srem(self._inflight, event_key)
                elif not claimed:
                    found.append((event_key, json.loads(raw)))
        return found

    def _event_keys(self, event_key: str) -> tuple[str, str]:
        """An event's claim and record, tagged with the event: one slot for both."""
        return f"{self._ns}seen:{{{event_key}}}", f"{self._ns}inflight:{{{event_key}}}"
