"""The key layout's one migration: session ids saved before they carried their channel as a
Redis Cluster hash tag move to the tagged ids, once per store."""

from __future__ import annotations

import logging

from redis.exceptions import ResponseError

from core.errors import store_errors
from core.store.base import StoreBase, glob_escape, text
from core.store.sessions import tagged

LAYOUT = "2"  # `{ns}layout`: the session ids carry their hash tag

log = logging.getLogger(__name__)


class Migration(StoreBase):
    async def migrate(self) -> int:
        """Move what was saved before session ids carried their channel as a hash tag to the
        tagged ids, once per store: histories, and the indexes of channels and users. Returns
        how many histories moved. (A cluster never held the old ids: they could not be used
        there.)"""
        prefix, marker = self._settings.history_key_prefix, f"{self._ns}layout"
        ttl_s = self._settings.history_ttl_seconds
        moved = 0
        with store_errors("moving to the tagged key layout"):
            if text(await self.redis.get(marker) or b"") == LAYOUT:
                return 0
            async for raw in self.redis.scan_iter(match=glob_escape(prefix) + "*", count=500):
                old = text(raw).removeprefix(prefix)
                new = tagged(old)
                if new == old:
                    continue
                try:
                    if not await self.redis.renamenx(prefix + old, prefix + new):
                        continue  # already there: the newer conversation wins
                except ResponseError:  # another worker moved it first
                    continue
                moved += 1
                for group in self._groups(new):
                    await self.redis.sadd(group, new)
                    await self.redis.expire(group, ttl_s)
            async for raw in self.redis.scan_iter(match=glob_escape(self._user_key("")) + "*"):
                key = text(raw)
                for member in [text(m) for m in await self.redis.smembers(key)]:
                    if tagged(member) != member:
                        await self.redis.sadd(key, tagged(member))
                        await self.redis.srem(key, member)
            await self.redis.set(marker, LAYOUT)
        if moved:
            log.info("moved %d conversations to session ids with a hash tag", moved)
        return moved
