"""The raw-client floor: CPU per streamed chunk with the bare `openai` client and with the bot's
LangChain chain (core/answer/answerers.py), in this process, against the same model server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import openai

from core import Settings, build_answerer

Stream = Callable[[str], AsyncIterator[str]]


def raw_stream(base_url: str, *, validated: bool = False) -> Stream:
    """The bare client; `validated`: reading chunks with pydantic's compiled validator, as the
    bot's client does (the SDK's default is its slower lenient construction)."""
    client = openai.AsyncOpenAI(
        base_url=base_url, api_key="bench", max_retries=0, _strict_response_validation=validated
    )

    async def stream(question: str) -> AsyncIterator[str]:
        chunks = await client.chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": question}], stream=True
        )
        async for chunk in chunks:
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content

    return stream


def chain_stream(base_url: str, data_dir: Path) -> Stream:
    settings = Settings(
        threadbot_data_dir=data_dir,
        openai_base_url=base_url,
        openai_api_key="bench",
        chat_max_retries=0,
        _env_file=None,  # type: ignore[call-arg]
    )
    answerer = build_answerer(settings)

    def stream(question: str) -> AsyncIterator[str]:
        return answerer.stream([], question, [])

    return stream


async def cpu_per_chunk_us(stream: Stream, streams: int, tag: str) -> float:
    """CPU microseconds per chunk of `streams` answers streamed at once."""

    async def one(n: int) -> int:
        return sum([1 async for _ in stream(f"floor {tag} #{n}")])

    started = time.process_time()
    chunks = sum(await asyncio.gather(*(one(n) for n in range(streams))))
    return (time.process_time() - started) / max(chunks, 1) * 1e6


async def floor(base_url: str, data_dir: Path, streams: int, rounds: int) -> dict[str, float]:
    """µs per chunk of the raw client (`raw`), the raw client validating (`validated`) and the
    bot's chain (`chain`): the best of `rounds` interleaved rounds of each."""
    ways = {
        "raw": raw_stream(base_url),
        "validated": raw_stream(base_url, validated=True),
        "chain": chain_stream(base_url, data_dir),
    }
    for name, stream in ways.items():
        await cpu_per_chunk_us(stream, 2, f"warm-{name}")  # imports, connections
    best = dict.fromkeys(ways, float("inf"))
    for n in range(rounds):
        for name, stream in ways.items():
            best[name] = min(best[name], await cpu_per_chunk_us(stream, streams, f"{name}{n}"))
    return best
