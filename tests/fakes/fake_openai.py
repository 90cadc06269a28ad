"""A local OpenAI-compatible server for tests and benchmarks: real HTTP, real SSE streaming.

The real `ChatOpenAI` client talks to it over loopback. Each chat request is answered by the next
scripted reply, else by the `default` reply when one is given (benchmarks: every question gets
the same long answer), else by "You said: <last user message>" so a test can see what the model
was sent. It records every request body, and when each stream's first and last text went out.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Scripted:
    text: str
    chunk_size: int = 8
    delay_s: float = 0.0
    fail_after_chunks: int | None = None
    # "error_event", "disconnect", or "truncate": the stream ends cleanly with no finish_reason
    # and no [DONE], as a proxy or a crashed server can end it
    fail_mode: str = "error_event"
    status: int | None = None
    retry_after_s: float = 0.0
    encoded: list[list[bytes]] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Streamed:
    """One streamed answer: the question it answered, and when (`time.monotonic()`, the same
    clock in every process of the machine) its first and last text were written."""

    question: str
    first_at: float
    last_at: float
    chunks: int


def _chunk(completion_id: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": "fake-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(body)}\n\n".encode()


def _encoded(completion_id: str, reply: Scripted) -> list[bytes]:
    """The text chunks of a reply as sent: encoded once per reply (a benchmark sends one long
    reply thousands of times), only the completion id set per request."""
    if reply.encoded is None:
        text, size = reply.text, reply.chunk_size
        marker = "@@completion-id@@"
        reply.encoded = [
            _chunk(marker, {"content": text[i : i + size]}).split(marker.encode())
            for i in range(0, len(text), size)
        ]
    head = completion_id.encode()
    return [before + head + after for before, after in reply.encoded]


def fake_vector(text: str, dim: int = 64) -> list[float]:
    """A deterministic bag-of-words embedding: texts sharing words point the same way."""
    vector = [0.0] * dim
    for word in text.lower().split():
        digest = hashlib.sha256(word.strip(".,:;!?()`*#").encode()).digest()
        vector[digest[0] % dim] += 1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


class FakeOpenAI:
    def __init__(self, *, default: Scripted | None = None) -> None:
        self.default = default
        self.requests: list[dict[str, Any]] = []
        self.streams: list[Streamed] = []
        self.embedding_requests: list[dict[str, Any]] = []
        self.cancelled = 0  # streams whose client went away before the end
        self._cancel_seen = asyncio.Event()
        self._scripts: deque[Scripted] = deque()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    def script(self, text: str, **options: Any) -> None:
        """Queue the next chat reply (see `Scripted` for the options)."""
        self._scripts.append(Scripted(text, **options))

    async def wait_for_cancel(self, timeout_s: float = 5.0) -> None:
        """Return once a stream was cut off by its client, or after `timeout_s` (the caller
        asserts on `cancelled`): the server notices a closed connection on its next write."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._cancel_seen.wait(), timeout_s)

    async def start(self, port: int = 0) -> FakeOpenAI:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/v1/models", self._models)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        bound = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{bound}/v1"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "fake-model"}]})

    async def _embeddings(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.embedding_requests.append(body)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [
            {"object": "embedding", "index": i, "embedding": fake_vector(str(text))}
            for i, text in enumerate(inputs)
        ]
        return web.json_response({"object": "list", "data": data, "model": body["model"]})

    def _next(self, body: dict[str, Any]) -> Scripted:
        if self._scripts:
            return self._scripts.popleft()
        if self.default is not None:
            return self.default
        users = [m for m in body["messages"] if m["role"] == "user"]
        return Scripted(f"You said: {users[-1]['content'] if users else ''}")

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        reply = self._next(body)
        if reply.status is not None:
            error = {"error": {"message": f"fake error {reply.status}", "type": "fake"}}
            headers = {"retry-after": str(reply.retry_after_s)}
            return web.json_response(error, status=reply.status, headers=headers)
        completion_id = f"chatcmpl-{len(self.requests)}"
        if not body.get("stream"):
            message = {"role": "assistant", "content": reply.text}
            return web.json_response(
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": "fake-model",
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        users = [m for m in body["messages"] if m["role"] == "user"]
        question = str(users[-1]["content"]) if users else ""
        first_at = 0.0
        try:
            await response.write(_chunk(completion_id, {"role": "assistant", "content": ""}))
            started = time.monotonic()
            for n, data in enumerate(_encoded(completion_id, reply)):
                if reply.fail_after_chunks is not None and n >= reply.fail_after_chunks:
                    if reply.fail_mode == "disconnect":
                        assert request.transport is not None
                        request.transport.close()
                        return response
                    if reply.fail_mode == "truncate":
                        await response.write_eof()
                        return response
                    error = {"error": {"message": "fake failure mid-stream", "type": "server"}}
                    await response.write(f"data: {json.dumps(error)}\n\n".encode())
                    return response
                if reply.delay_s:
                    # On a schedule, not a sleep per chunk: a busy server catches up as a real
                    # one sends what it buffered, and an answer takes its time, not more.
                    await asyncio.sleep(started + (n + 1) * reply.delay_s - time.monotonic())
                await response.write(data)
                first_at = first_at or time.monotonic()
            if first_at:
                self.streams.append(Streamed(question, first_at, time.monotonic(), n + 1))
            await response.write(_chunk(completion_id, {}, finish="stop"))
            await response.write(b"data: [DONE]\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            self.cancelled += 1
            self._cancel_seen.set()
            raise
        return response
