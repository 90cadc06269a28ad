"""How many Discord REST calls one streamed answer costs, by route, against the local Discord.

Runs the real discord.py client and the real pipeline against the fake Discord and the fake
OpenAI server from tests/fakes (the real clock: the model streams for the given time).

    python -m bench.discord_calls [--chars 2000] [--seconds 20] [--interval-ms 1500]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import tempfile
from collections import Counter
from pathlib import Path

from bench._answer import CHUNK_CHARS, sample_answer
from bots.discord.bot import build_discord_bot
from bots.discord.endpoint import use_discord_api
from bots.discord.sink import SINK_MAX_LEN
from core import Outcome, Pipeline, Settings
from tests.fakes.fake_discord import FakeDiscord
from tests.fakes.fake_openai import FakeOpenAI


def _route(path: str) -> str:
    return re.sub(r"/(\d{5,}|itoken\d+)", "/{id}", path)


async def bench(chars: int, seconds: float, interval_ms: int) -> None:
    answer = sample_answer(chars)
    chunks = -(-len(answer) // CHUNK_CHARS)
    with tempfile.TemporaryDirectory() as tmp:
        async with FakeDiscord() as discord_fake:
            openai_fake = await FakeOpenAI().start()
            restore = await use_discord_api(discord_fake.api_url)
            settings = Settings(
                threadbot_data_dir=Path(tmp),
                openai_base_url=openai_fake.base_url,
                openai_api_key="bench",
                embeddings="local",
                discord_token="bench",
                discord_api_url=discord_fake.api_url,
                discord_edit_interval_ms=interval_ms,
                _env_file=None,  # type: ignore[call-arg]
            )
            try:
                async with await Pipeline.create(settings) as pipeline:
                    client = build_discord_bot(settings, pipeline)
                    done: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
                    client.runner.add_listener(done.set_result)
                    await client.login("bench")
                    connection = asyncio.create_task(client.connect(reconnect=False))
                    await discord_fake.wait_ready()
                    startup = len(discord_fake.requests)
                    openai_fake.script(answer, chunk_size=CHUNK_CHARS, delay_s=seconds / chunks)
                    question = discord_fake.message_create("Explain streaming", mention_bot=True)
                    loop = asyncio.get_running_loop()
                    started = loop.time()
                    await discord_fake.dispatch("MESSAGE_CREATE", question)
                    reply = (await asyncio.wait_for(done, seconds * 3)).reply
                    elapsed = loop.time() - started
                    await client.close()
            finally:
                await openai_fake.close()
                restore()
            await asyncio.gather(connection, return_exceptions=True)
    calls = Counter(f"{r.method} {_route(r.path)}" for r in discord_fake.requests[startup:])
    print(f"settings: DISCORD_EDIT_INTERVAL_MS={interval_ms}  sink max_len={SINK_MAX_LEN}")
    print(
        f"answer:   {len(answer)} chars in {chunks} chunks of {CHUNK_CHARS}, "
        f"streamed over {seconds:.0f} s (answered in {elapsed:.1f} s)"
    )
    print()
    print(f"{'REST route':<45} {'calls':>5}")
    for route, count in sorted(calls.items()):
        print(f"{route:<45} {count:>5}")
    print(f"{'total':<45} {sum(calls.values()):>5}")
    if reply is not None:
        print(f"\nmessages: {reply.posts}  edits: {reply.edits}  429s: {reply.rate_limited}")


def main() -> None:
    defaults = Settings.model_fields["discord_edit_interval_ms"].default
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chars", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--interval-ms", type=int, default=defaults)
    args = parser.parse_args()
    asyncio.run(bench(args.chars, args.seconds, args.interval_ms))


if __name__ == "__main__":
    main()
