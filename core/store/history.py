"""Conversation history in Redis, in the exact format of LangChain's RedisChatMessageHistory."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import AIMessage, BaseMessage, message_to_dict, messages_from_dict
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline as RedisPipeline

from core.errors import store_errors


def encode(message: BaseMessage) -> str:
    """A message as stored. An `AIMessage`, never an `AIMessageChunk`: other readers expect
    the plain type."""
    if isinstance(message, AIMessage) and message.type != "ai":
        message = AIMessage(
            content=message.content, id=message.id, additional_kwargs=message.additional_kwargs
        )
    return json.dumps(message_to_dict(message))


class RedisHistory(BaseChatMessageHistory):
    """The history of one session, async only.

    Key `{prefix}{session_id}` holds a list of `message_to_dict` JSON, newest first (LPUSH), as
    langchain-community's `RedisChatMessageHistory` writes it, so either can read the other's.
    Reading costs one LRANGE; a turn's write is one MULTI/EXEC (push, trim, refresh the TTL).
    The sync accessors of the base class would block the event loop, so they are refused.
    """

    def __init__(
        self,
        client: Redis,
        session_id: str,
        *,
        key_prefix: str = "message_store:",
        max_messages: int | None = None,
        ttl_s: int | None = None,
    ) -> None:
        self._client = client
        self.key = key_prefix + session_id
        self._max_messages = max_messages
        self._ttl_s = ttl_s

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        raise TypeError("RedisHistory is async: use `await history.aget_messages()`")

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        raise TypeError("RedisHistory is async: use `await history.aadd_messages(...)`")

    def clear(self) -> None:
        raise TypeError("RedisHistory is async: use `await history.aclear()`")

    async def aget_messages(self) -> list[BaseMessage]:
        with store_errors(f"reading {self.key}"):
            items = await self._client.lrange(self.key, 0, -1)
        return messages_from_dict([json.loads(item) for item in reversed(items)])

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        await self.aadd_turn(messages)

    async def aadd_turn(
        self,
        messages: Sequence[BaseMessage],
        *,
        also: Callable[[RedisPipeline], None] | None = None,
    ) -> list[Any]:
        """Push `messages` in one MULTI/EXEC. `also` may queue more commands in the same
        transaction (bookkeeping, a read of what changed meanwhile); their results come back."""
        if not messages:
            return []
        payload = [encode(m) for m in messages]
        with store_errors(f"writing {self.key}"):
            async with self._client.pipeline(transaction=True) as tx:
                tx.lpush(self.key, *payload)
                own = 1
                if self._max_messages is not None:
                    tx.ltrim(self.key, 0, self._max_messages - 1)
                    own += 1
                if self._ttl_s is not None:
                    tx.expire(self.key, self._ttl_s)
                    own += 1
                if also is not None:
                    also(tx)
                results = await tx.execute()
        return list(results[own:])

    async def aclear(self) -> None:
        with store_errors(f"clearing {self.key}"):
            await self._client.delete(self.key)
