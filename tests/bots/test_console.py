"""The console adapter as a user runs it: the real `threadbot` command in a subprocess."""

from __future__ import annotations

import asyncio
import datetime
import io
import logging
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from redis.asyncio import Redis

from core.store.history import RedisHistory
from tests.cli_runner import command, env_for, start, threadbot
from tests.conftest import SAMPLE_DOCS, MakeSettings
from tests.fakes.fake_openai import FakeOpenAI


def model_env(
    tmp_path: Path, redis_url: str, fake_openai: FakeOpenAI, prefix: str
) -> dict[str, str]:
    """A console with a chat model (the local server), on the test Redis, under a test prefix."""
    return env_for(
        tmp_path,
        THREADBOT_DATA_DIR=str(tmp_path / "data"),
        REDIS_URL=redis_url,
        HISTORY_KEY_PREFIX=prefix,
        OPENAI_BASE_URL=fake_openai.base_url,
        OPENAI_API_KEY="test-key",
        EMBEDDINGS="local",
    )


async def test_two_questions_and_reset_with_a_model(
    tmp_path: Path, redis_url: str, fake_openai: FakeOpenAI, make_settings: MakeSettings
):
    prefix = make_settings().history_key_prefix
    env = model_env(tmp_path, redis_url, fake_openai, prefix)
    _, err, code = await threadbot("ingest", str(SAMPLE_DOCS), env=env)
    assert code == 0, err
    fake_openai.script("Use /reset to forget.", chunk_size=3, delay_s=0.005)
    out, err, code = await threadbot(
        "chat",
        "--session",
        "t1",
        env=env,
        stdin="How do I forget a conversation?\nAnd in Slack?\n",
    )
    assert code == 0, err
    lines = [line for line in out.splitlines() if line.startswith("bot> ")]
    assert lines[0] == "bot> Use /reset to forget."
    assert lines[1] == "bot> You said: And in Slack?"
    assert "_Sources: conversations.md" in out
    # The second request carried the first turn: the console remembers.
    assert [m["content"] for m in fake_openai.requests[1]["messages"][1:]] == [
        "How do I forget a conversation?",
        "Use /reset to forget.",
        "And in Slack?",
    ]
    client = Redis.from_url(redis_url)
    history = RedisHistory(client, "console:{t1}", key_prefix=prefix)
    assert await history.aget_messages() == [
        HumanMessage("How do I forget a conversation?"),
        AIMessage("Use /reset to forget."),
        HumanMessage("And in Slack?"),
        AIMessage("You said: And in Slack?"),
    ]
    # A restart remembers; /reset forgets.
    out, err, code = await threadbot(
        "chat", "--session", "t1", env=env, stdin="one more\n/reset\n/reset\n"
    )
    assert code == 0, err
    assert [m["content"] for m in fake_openai.requests[2]["messages"][1:]][-1] == "one more"
    assert len(fake_openai.requests[2]["messages"]) == 1 + 5  # system + 2 turns + question
    assert "Forgot our conversation." in out
    assert "Nothing to forget." in out
    assert await history.aget_messages() == []
    await client.aclose()


async def test_first_run_defaults_embedded_server_and_retrieval_only(tmp_path: Path):
    """No account at all: the embedded server, offline embeddings, passages with sources."""
    env = env_for(tmp_path, THREADBOT_DATA_DIR=str(tmp_path / "data"))
    _, err, code = await threadbot("ingest", "--if-empty", str(SAMPLE_DOCS), env=env)
    assert code == 0, err
    out, err, code = await threadbot("ingest", "--if-empty", str(SAMPLE_DOCS), env=env)
    assert "leaving it as it is" in out
    out, err, code = await threadbot(
        "chat", env=env,
        stdin="How do I reset a conversation?\nHow do I ingest documents?\nweather today\n",
    )  # fmt: skip
    assert code == 0, err
    assert "retrieval-only answers" in err
    assert "conversations.md › Conversations and memory › Forgetting a conversation" in out
    # What the answers are is said once in a conversation, not after each of them.
    assert out.count("No language model is configured") == 1
    assert "I found nothing about that in the documents." in out
    assert "closest passages" not in out.split("I found nothing")[1]
    # The embedded server kept the turn on disk: a restart still has it, /reset forgets it.
    out, err, code = await threadbot("chat", env=env, stdin="/reset\n")
    assert "Forgot our conversation." in out, err
    assert (tmp_path / "data" / "valkey" / "appendonlydir").is_dir()


async def test_redis_down_keeps_the_console_running(tmp_path: Path, fake_openai: FakeOpenAI):
    env = env_for(
        tmp_path,
        THREADBOT_DATA_DIR=str(tmp_path / "data"),
        REDIS_URL="redis://127.0.0.1:1/0",
        OPENAI_BASE_URL=fake_openai.base_url,
    )
    out, err, code = await threadbot("chat", env=env, stdin="first\n/reset\n")
    assert code == 0, err
    assert out.count("I can't reach my conversation store") == 2


async def test_if_empty_reindexes_an_index_from_another_model(
    tmp_path: Path, fake_openai: FakeOpenAI
):
    """After an offline first run, choosing EMBEDDINGS=openai: the sample docs are indexed
    again rather than left in an index the bot would refuse to search."""
    data = {"THREADBOT_DATA_DIR": str(tmp_path / "data")}
    _, err, code = await threadbot(
        "ingest", "--if-empty", str(SAMPLE_DOCS), env=env_for(tmp_path, **data)
    )
    assert code == 0, err
    keyed = env_for(
        tmp_path,
        **data,
        OPENAI_API_KEY="test-key",
        OPENAI_BASE_URL=fake_openai.base_url,
        EMBEDDINGS="openai",  # a key alone no longer changes how documents are embedded
    )
    out, err, code = await threadbot("ingest", "--if-empty", str(SAMPLE_DOCS), env=keyed)
    assert code == 0, err
    assert "with openai:text-embedding-3-small" in out
    assert fake_openai.embedding_requests


async def test_if_empty_never_replaces_someone_elses_documents(
    tmp_path: Path, fake_openai: FakeOpenAI
):
    own = tmp_path / "own"
    own.mkdir()
    (own / "payroll.md").write_text("# Payroll\n\nSalaries are paid on the 25th.\n")
    data = {"THREADBOT_DATA_DIR": str(tmp_path / "data")}
    _, err, code = await threadbot("ingest", str(own), env=env_for(tmp_path, **data))
    assert code == 0, err
    keyed = env_for(
        tmp_path,
        **data,
        OPENAI_API_KEY="test-key",
        OPENAI_BASE_URL=fake_openai.base_url,
        EMBEDDINGS="openai",  # a key alone no longer changes how documents are embedded
    )
    out, err, code = await threadbot("ingest", "--if-empty", str(SAMPLE_DOCS), env=keyed)
    assert code == 0, err
    assert "leaving it as it is" in out and "run `threadbot ingest YOUR_DOCS`" in out
    assert fake_openai.embedding_requests == []


@pytest.mark.kills
async def test_sigterm_stops_the_embedded_server_too(tmp_path: Path):
    env = env_for(tmp_path, THREADBOT_DATA_DIR=str(tmp_path / "data"))
    process = await start(
        command("chat"), env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    banner = await asyncio.wait_for(process.stderr.readline(), timeout=60)
    assert b"threadbot:" in banner
    lock = (tmp_path / "data" / "valkey" / "threadbot.lock").read_text().split()
    server_pid = int(lock[1])
    assert alive(server_pid)
    process.terminate()
    await asyncio.wait_for(process.wait(), timeout=30)
    for _ in range(100):  # the server process is reaped right after our exit
        if not alive(server_pid):
            break
        await asyncio.sleep(0.05)
    assert not alive(server_pid)


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def test_log_lines_above_the_prompt_show_the_time_and_level_once(make_settings: MakeSettings):
    from rich.console import Console

    from bots.console import _logs_above_the_prompt
    from core.ops.logs import configure_logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    console = Console(record=True, width=120, file=io.StringIO())
    try:
        configure_logging(make_settings(), level=logging.WARNING)
        with _logs_above_the_prompt(console):
            logging.getLogger("core.turn.runner").warning("the model is slow")
    finally:  # pytest's own handlers back
        root.handlers[:] = handlers
        root.setLevel(level)
    shown = console.export_text()
    assert "core.turn.runner: the model is slow" in shown
    assert shown.count("WARNING") == 1
    assert str(datetime.date.today().year) not in shown  # rich's own time is enough
