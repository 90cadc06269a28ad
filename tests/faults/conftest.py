"""Faults injected for real: a bot to SIGKILL, and a Valkey to kill, freeze and restart (`valkey`).

Leases and timeouts are short here (settings), so each fault plays out in seconds.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from core.reply.editor import MARKER
from tests.cli_runner import command, env_for, popen
from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.fake_slack import BOT_USER_ID, FakeSlack
from tests.valkey_server import Valkey, free_port

SECRET = "faults-signing-secret"
LEASE_S = 1.0


# What `threadbot slack` logs once it takes events: HTTP mode listens, Socket Mode is connected.
READY_LINES = ("Slack bot listening on", "Bolt app is running!")


class BotProcess:
    """`threadbot slack` (HTTP mode, or Socket Mode with SLACK_APP_TOKEN), a real process with its
    own settings."""

    def __init__(self, env: dict[str, str], port: int, log_path: Path) -> None:
        self.env = env
        self.port = port
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slack/events"

    async def start(self) -> BotProcess:
        log = self.log_path.open("ab")
        self.process = popen(command("slack"), env=self.env, stdout=log, stderr=subprocess.STDOUT)
        # Its own log line, not a connection to the port: workers may share one.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log_path.read_text()
            if any(line in self.log_path.read_text() for line in READY_LINES):
                return self
            await asyncio.sleep(0.1)
        raise TimeoutError(self.log_path.read_text())

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def freeze(self) -> None:
        """SIGSTOP: its connections stay open, and it answers nothing (a stalled process)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.thaw()  # a frozen process would not act on SIGTERM
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    async def send(self, body: dict[str, Any], *, retry: int | None = None) -> int:
        raw = json.dumps(body)
        ts = str(int(time.time()))
        digest = hmac.new(SECRET.encode(), f"v0:{ts}:{raw}".encode(), hashlib.sha256)
        headers = {
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": f"v0={digest.hexdigest()}",
            "Content-Type": "application/json",
        }
        if retry:
            headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "timeout"}
        async with (
            aiohttp.ClientSession() as http,
            http.post(self.url, data=raw, headers=headers) as r,
        ):
            return r.status


@pytest.fixture
def bot_env(
    tmp_path: Path, valkey: Valkey, fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> dict[str, str]:
    return env_for(
        tmp_path,
        THREADBOT_DATA_DIR=str(tmp_path / "data"),
        REDIS_URL=valkey.url,
        OPENAI_BASE_URL=fake_openai.base_url,
        OPENAI_API_KEY="test-key",
        EMBEDDINGS="local",
        CHAT_MAX_RETRIES="0",
        SLACK_BOT_TOKEN="xoxb-faults",
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=fake_slack.api_url,
        SLACK_EDIT_INTERVAL_MS="100",
        SLACK_POST_INTERVAL_MS="0",
        LEASE_S=str(LEASE_S),
        ANSWER_TIMEOUT_S="8",
        REDIS_TIMEOUT_S="0.5",
        SHUTDOWN_GRACE_S="2",
        LOG_LEVEL="INFO",
    )


@pytest.fixture
async def start_bot(bot_env: dict[str, str], tmp_path: Path) -> AsyncIterator[Any]:
    """Start bot processes on one port in turn (a restart takes the same port), or on a port
    of their own (`port=`: another worker, beside the first)."""
    default_port = free_port()
    started: list[BotProcess] = []

    async def start(*, port: int | None = None, **overrides: str) -> BotProcess:
        port = port or default_port
        env = {**bot_env, "SLACK_PORT": str(port), **overrides}
        bot = BotProcess(env, port, tmp_path / f"bot-{len(started)}.log")
        started.append(bot)
        return await bot.start()

    yield start
    # All at once, and off the event loop: the fake Slack in this loop must still answer a
    # Socket Mode worker's close handshake.
    await asyncio.gather(*(asyncio.to_thread(bot.stop) for bot in started))
    for bot in started:
        # Shown by pytest when the test failed: what each bot process logged.
        print(f"--- {bot.log_path.name}\n{bot.log_path.read_text()[-6000:]}")


def mention(text: str, *, ts: str, channel: str = "C0FAULTS", event_id: str) -> dict[str, Any]:
    """An app_mention envelope as Slack sends it."""
    return {
        "token": "x",
        "team_id": "T0FAULTS",
        "api_app_id": "A0FAULTS",
        "type": "event_callback",
        "event_id": event_id,
        "event_time": int(time.time()),
        "event": {
            "type": "app_mention",
            "user": "U0ALICE",
            "text": f"<@{BOT_USER_ID}> {text}",
            "ts": ts,
            "channel": channel,
            "event_ts": ts,
        },
    }


def thread_reply(text: str, *, ts: str, thread_ts: str, event_id: str) -> dict[str, Any]:
    body = mention(text, ts=ts, event_id=event_id)
    body["event"] |= {
        "type": "message",
        "text": text,
        "thread_ts": thread_ts,
        "channel_type": "channel",
    }
    return body


REPORT = pytest.StashKey[list[dict[str, Any]]]()
COLUMNS = ("faults", "asked", "answered", "told", "lost", "duplicated", "marker_left", "blocked_s")


def streaming(fake: FakeSlack, channel: str, thread_ts: str) -> bool:
    """A reply in the thread shows the in-progress marker and was edited since it was posted.

    The edit matters: a reply's first message is recorded in Redis just after it is posted, so
    a bot killed between the two leaves a reply another process cannot find (it posts anew).
    After an edit, a kill leaves a reply that recovery finishes in place.
    """
    return any(
        m.text.endswith(MARKER.strip()) and m.edits > 0 for m in fake.thread(channel, thread_ts)
    )


@pytest.fixture
def fault_report(request: pytest.FixtureRequest) -> Callable[..., None]:
    """Record what a fault scenario did, for the table printed at the end of the run."""
    rows = request.config.stash.setdefault(REPORT, [])

    def add(**row: Any) -> None:
        rows.append({"scenario": request.node.name.removeprefix("test_"), **row})

    return add


def tally(fake: FakeSlack, channel: str, asked: dict[str, int]) -> dict[str, int]:
    """Count, thread by thread, the answers a user sees: `asked` maps a thread to its questions."""
    answered = told = duplicated = lost = marker = 0
    for thread_ts, questions in asked.items():
        shown = [m.text for m in fake.thread(channel, thread_ts)]
        marker += sum(t.endswith("▌") for t in shown)
        warned = sum("⚠️" in t for t in shown)  # told honestly that it failed: ask again
        finals = len(shown) - warned - sum(t.endswith("▌") for t in shown)
        answered += min(finals, questions)
        told += min(warned, questions - min(finals, questions))
        duplicated += max(finals - questions, 0)
        lost += max(questions - finals - warned, 0)
    return {
        "asked": sum(asked.values()),
        "answered": answered,
        "told": told,
        "lost": lost,
        "duplicated": duplicated,
        "marker_left": marker,
    }


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    rows = config.stash.get(REPORT, [])
    if not rows:
        return
    write = terminalreporter.write_line
    write("")
    write("fault scenarios (tests/faults): what users saw")
    write(f"{'scenario':<58}" + "".join(f"{c:>12}" for c in COLUMNS))
    for row in rows:
        cells = "".join(f"{_cell(row.get(c, '')):>12}" for c in COLUMNS)
        write(f"{row['scenario'][:58]:<58}{cells}")
    write("blocked_s: from asking a live bot to the answer (a restart's own start-up excluded)")
    totals = {c: sum(r.get(c, 0) for r in rows) for c in COLUMNS if c != "blocked_s"}
    longest = max((r.get("blocked_s", 0.0) for r in rows), default=0.0)
    cells = "".join(f"{_cell(totals.get(c, longest)):>12}" for c in COLUMNS)
    write(f"{'total (blocked_s: the longest)':<58}{cells}")


def _cell(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, float) else str(value)
