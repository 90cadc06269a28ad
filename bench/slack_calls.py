"""How many Slack Web API calls one streamed answer costs, by method, against the local Slack.

Runs the real bolt app, slack_sdk client and pipeline against the fake Slack and the fake OpenAI
server from tests/fakes (the real clock: the model streams for the given time). The event goes
in through bolt's Socket Mode request path, as a mention at the top of a channel.

    python -m bench.slack_calls [--chars 2000] [--seconds 20] [--interval-ms 1000]
                                [--streaming edit|native|both]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

from slack_bolt.adapter.socket_mode.async_internals import run_async_bolt_app
from slack_sdk.socket_mode.request import SocketModeRequest

from bench._answer import CHUNK_CHARS, sample_answer
from bots.slack.bot import build_slack_bot
from bots.slack.sink import MAX_LEN
from core import Pipeline, Settings
from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.fake_slack import BOT_USER_ID, TEAM_ID, FakeSlack


def _mention() -> dict[str, object]:
    ts = f"{time.time():.6f}"
    return {
        "type": "event_callback",
        "team_id": TEAM_ID,
        "api_app_id": "A0BENCH",
        "event_id": "Ev" + uuid.uuid4().hex[:10].upper(),
        "event_time": int(time.time()),
        "event": {
            "type": "app_mention",
            "user": "U0BENCH",
            "text": f"<@{BOT_USER_ID}> explain streaming",
            "ts": ts,
            "channel": "C0BENCH",
            "event_ts": ts,
        },
    }


async def bench(chars: int, seconds: float, interval_ms: int, streaming: str) -> None:
    answer = sample_answer(chars)
    chunks = -(-len(answer) // CHUNK_CHARS)
    with tempfile.TemporaryDirectory() as tmp:
        slack = await FakeSlack().start()
        openai_fake = await FakeOpenAI().start()
        settings = Settings(
            threadbot_data_dir=Path(tmp),
            openai_base_url=openai_fake.base_url,
            openai_api_key="bench",
            embeddings="local",
            slack_bot_token="xoxb-bench",
            slack_app_token="xapp-bench",
            slack_api_url=slack.api_url,
            slack_edit_interval_ms=interval_ms,
            slack_streaming=streaming,
            _env_file=None,  # type: ignore[call-arg]
        )
        try:
            async with (
                await Pipeline.create(settings) as pipeline,
                build_slack_bot(settings, pipeline) as bot,
            ):
                openai_fake.script(answer, chunk_size=CHUNK_CHARS, delay_s=seconds / chunks)
                request = SocketModeRequest(
                    type="events_api", envelope_id=uuid.uuid4().hex, payload=_mention()
                )
                started = time.monotonic()
                await run_async_bolt_app(bot.app, request)
                await bot.drain()
                elapsed = time.monotonic() - started
        finally:
            await openai_fake.close()
            await slack.close()
    calls = Counter(c.method for c in slack.calls if c.method != "auth.test")
    print(
        f"settings: SLACK_STREAMING={streaming}  SLACK_EDIT_INTERVAL_MS={interval_ms}  "
        f"sink max_len={MAX_LEN}"
    )
    print(
        f"answer:   {len(answer)} chars in {chunks} chunks of {CHUNK_CHARS}, "
        f"streamed over {seconds:.0f} s (answered in {elapsed:.1f} s)"
    )
    print(f"\n{'Web API method':<25} {'calls':>5}")
    for method, count in sorted(calls.items()):
        print(f"{method:<25} {count:>5}")
    print(f"{'total':<25} {sum(calls.values()):>5}")
    print("(plus 1 auth.test per process, cached by bolt)\n")


def main() -> None:
    default_ms = Settings.model_fields["slack_edit_interval_ms"].default
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--chars", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--interval-ms", type=int, default=default_ms)
    parser.add_argument("--streaming", choices=["edit", "native", "both"], default="both")
    args = parser.parse_args()
    modes = ["edit", "native"] if args.streaming == "both" else [args.streaming]
    for mode in modes:
        asyncio.run(bench(args.chars, args.seconds, args.interval_ms, mode))


if __name__ == "__main__":
    main()
