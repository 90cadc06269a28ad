"""The load benchmark's local Slack and model server, each run in a process of its own.

    python -m bench._fakes slack
    python -m bench._fakes model --chars 1600 --chunk-chars 8 --seconds 10

So that the benchmark measures the bot: under load the emulations need CPU too, and in the bot's
process they would take it from the bot. Each prints one JSON line once it listens (its URL and
a control URL), serves what it recorded at the control URL (`?prefix=` narrows it to one round's
channels or questions), and stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
from typing import Any

from aiohttp import web

from bench._answer import sample_answer
from bots.slack.sink import PLACEHOLDER
from tests.fakes.fake_openai import FakeOpenAI, Scripted
from tests.fakes.fake_slack import FakeSlack

_TEXT_CALLS = ("chat.postMessage", "chat.update")


def slack_summary(fake: FakeSlack, prefix: str) -> dict[str, Any]:
    """Per channel starting with `prefix`: when its first text (not the placeholder) and its
    last text arrived, what its messages say now, and what was said privately (ephemeral)."""
    channels: dict[str, dict[str, Any]] = {}
    for call in fake.calls:
        channel = str(call.body.get("channel", ""))
        if not channel.startswith(prefix):
            continue
        seen = channels.setdefault(
            channel, {"first_text_at": None, "final_at": None, "ephemeral": [], "texts": []}
        )
        text = str(call.body.get("text") or "")
        if call.method == "chat.postEphemeral":
            seen["ephemeral"].append(text)
        elif call.method in _TEXT_CALLS and call.error is None:
            if seen["first_text_at"] is None and text.strip() not in ("", PLACEHOLDER):
                seen["first_text_at"] = call.at
            seen["final_at"] = call.at
    for message in fake.messages.values():
        if message.channel in channels:
            channels[message.channel]["texts"].append(message.text)
    return channels


def model_summary(fake: FakeOpenAI, prefix: str) -> dict[str, Any]:
    """Per question starting with `prefix`: when its first answer's first and last text went
    out, and how many times it was answered (more than once: answered again after a failure)."""
    found: dict[str, Any] = {}
    for s in fake.streams:
        if s.question.startswith(prefix):
            first = {"first_at": s.first_at, "last_at": s.last_at, "chunks": s.chunks, "times": 0}
            found.setdefault(s.question, first)["times"] += 1
    return found


async def _serve(kind: str, args: argparse.Namespace) -> None:
    # A stream its client cut off (a failed answer) is counted by the fake, not worth a traceback.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    if kind == "slack":
        slack = await FakeSlack().start()
        url, summary, close = slack.api_url, lambda p: slack_summary(slack, p), slack.close
    else:
        answer = sample_answer(args.chars)
        pieces = -(-len(answer) // args.chunk_chars)
        default = Scripted(answer, chunk_size=args.chunk_chars, delay_s=args.seconds / pieces)
        model = await FakeOpenAI(default=default).start()
        url, summary, close = model.base_url, lambda p: model_summary(model, p), model.close

    async def recorded(request: web.Request) -> web.Response:
        return web.json_response(summary(request.query.get("prefix", "")))

    control = web.Application()
    control.router.add_get("/recorded", recorded)
    runner = web.AppRunner(control, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    print(json.dumps({"url": url, "control": f"http://127.0.0.1:{port}/recorded"}), flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("kind", choices=["slack", "model"])
    parser.add_argument("--chars", type=int, default=1600)
    parser.add_argument("--chunk-chars", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    asyncio.run(_serve(args.kind, args))


if __name__ == "__main__":
    main()
