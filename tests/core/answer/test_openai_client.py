"""The chat model's client: the SDK's own, reading each streamed chunk with pydantic's validator
first, and the SDK's lenient reading for a chunk that does not fit the schema."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from aiohttp import web
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from core.answer.openai_client import ChunkValidatingClient
from tests.fakes.fake_openai import FakeOpenAI

MESSAGES: list[Any] = [{"role": "user", "content": "hello there"}]


def client(base_url: str) -> ChunkValidatingClient:
    return ChunkValidatingClient(base_url=base_url, api_key="test-key", max_retries=0)


async def collect(found: ChunkValidatingClient) -> list[ChatCompletionChunk]:
    stream = await found.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    return [chunk async for chunk in stream]


def text_of(chunks: list[ChatCompletionChunk]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def chunk(content: str | None, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "loose-model",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}],
    }
    body.update(changes)
    return body


@pytest.fixture
async def loose_server() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A loosely compatible server streaming whatever chunks the test puts in the list."""
    chunks: list[dict[str, Any]] = []

    async def chat(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for body in chunks:
            await response.write(f"data: {json.dumps(body)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/v1", chunks
    finally:
        await runner.cleanup()


def test_it_is_the_sdk_client():
    assert issubclass(ChunkValidatingClient, openai.AsyncOpenAI)


async def test_streams_every_chunk_of_the_answer_as_typed_chunks(fake_openai: FakeOpenAI):
    fake_openai.script("The quick brown fox jumps over the lazy dog.", chunk_size=5)
    found = client(fake_openai.base_url)
    try:
        chunks = await collect(found)
    finally:
        await found.close()
    assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
    assert text_of(chunks) == "The quick brown fox jumps over the lazy dog."
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert {c.id for c in chunks} == {"chatcmpl-1"}
    assert fake_openai.requests[-1]["stream"] is True


async def test_a_chunk_that_fits_the_schema_is_validated(loose_server):
    base_url, chunks = loose_server
    chunks.append(chunk("fits", created="1700000000"))  # a number as text: validation coerces
    found = client(base_url)
    try:
        (got,) = await collect(found)
    finally:
        await found.close()
    assert got.created == 1700000000
    assert got.choices[0].delta.content == "fits"


async def test_a_chunk_off_the_schema_is_read_leniently_not_refused(loose_server):
    base_url, chunks = loose_server
    chunks.append(chunk("first"))
    chunks.append(chunk("loose", created="yesterday", object="something.else"))
    chunks.append(chunk("last", choices=[{"index": "zero", "delta": {"content": "last"}}]))
    found = client(base_url)
    try:
        got = await collect(found)
    finally:
        await found.close()
    assert [type(c) for c in got] == [ChatCompletionChunk] * 3
    assert text_of(got) == "firstloose" + "last"
    assert got[1].created == "yesterday"  # kept as sent: the SDK's lenient reading


async def test_a_response_that_is_not_a_chunk_is_left_to_the_sdk(fake_openai: FakeOpenAI):
    fake_openai.script("Not streamed.")
    found = client(fake_openai.base_url)
    try:
        completion = await found.chat.completions.create(model="m", messages=MESSAGES)
    finally:
        await found.close()
    assert isinstance(completion, ChatCompletion)
    assert completion.choices[0].message.content == "Not streamed."
