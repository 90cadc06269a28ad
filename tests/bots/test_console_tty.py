"""The console in a real pseudo-terminal (pexpect), as a person types into it."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pexpect
import pytest
from redis.asyncio import Redis

from tests.bots.test_console import model_env
from tests.cli_runner import command, env_for, spawn, threadbot
from tests.conftest import MakeSettings
from tests.fakes.fake_openai import FakeOpenAI

pytestmark = pytest.mark.timeout(120)
PASTE_START, PASTE_END = "\x1b[200~", "\x1b[201~"  # a terminal's bracketed paste


async def spawn_chat(env: dict[str, str]) -> Any:
    child = spawn(
        command("chat", "--session", "tty"),
        env=env | {"TERM": "xterm-256color", "PROMPT_TOOLKIT_NO_CPR": "1"},
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 120),
    )
    await expect(child, "you>")
    return child


async def expect(child: Any, pattern: str) -> None:
    """Wait for `pattern` without blocking the loop the fake model server runs on."""
    await asyncio.to_thread(child.expect, pattern)


async def test_ctrl_c_stops_the_answer_a_paste_is_one_question_and_ctrl_c_leaves(
    tmp_path: Path, redis_url: str, fake_openai: FakeOpenAI, make_settings: MakeSettings
) -> None:
    prefix = make_settings().history_key_prefix
    env = model_env(tmp_path, redis_url, fake_openai, prefix)
    fake_openai.script("**Slowly** " * 300, chunk_size=4, delay_s=0.02)  # ~15 s if not stopped
    child = await spawn_chat(env)
    child.send("tell me everything\r")
    await expect(child, "Slowly")  # rendered Markdown: the ** are gone
    child.sendintr()  # Ctrl-C during the answer: stops it, the chat goes on
    await expect(child, r"stopped: this answer was not saved")
    await expect(child, "you>")
    await fake_openai.wait_for_cancel()
    assert fake_openai.cancelled == 1

    child.send(f"{PASTE_START}first line of a paste\nsecond line{PASTE_END}\r")
    await expect(child, "You said: first line of a paste")
    await expect(child, "you>")
    assert len(fake_openai.requests) == 2  # one question, not two
    assert fake_openai.requests[1]["messages"][-1]["content"].endswith(
        "first line of a paste\nsecond line"
    )

    child.send("/rest\r")
    await expect(child, "Unknown command /rest")
    child.send("/HELP\r")
    await expect(child, "/reset forgets this conversation")
    child.send("\r")
    await expect(child, "Type a question")
    assert len(fake_openai.requests) == 2  # none of those reached the model

    child.sendintr()  # Ctrl-C at the prompt: leave
    await asyncio.to_thread(child.expect, pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before

    async with Redis.from_url(redis_url) as redis:  # the stopped answer saved nothing
        assert await redis.llen(f"{prefix}console:{{tty}}") == 2

    child = await spawn_chat(env)  # the next start says the conversation goes on
    assert "continues (2 earlier messages" in child.before
    child.send("/quit\r")
    await asyncio.to_thread(child.expect, pexpect.EOF)


async def test_ctrl_c_leaves_the_embedded_store_running_and_other_commands_join_it(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    """What a newcomer runs: no REDIS_URL, so the chat starts the embedded server itself. The
    terminal's Ctrl-C reaches its whole process group; the store must not be part of it."""
    env = env_for(
        tmp_path,
        THREADBOT_DATA_DIR=str(tmp_path / "data"),
        OPENAI_BASE_URL=fake_openai.base_url,
        OPENAI_API_KEY="test-key",
        EMBEDDINGS="local",
    )
    fake_openai.script("**Slowly** " * 300, chunk_size=4, delay_s=0.02)
    child = await spawn_chat(env)
    child.send("tell me everything\r")
    await expect(child, "Slowly")
    child.sendintr()
    await expect(child, r"stopped: this answer was not saved")
    await expect(child, "you>")

    fake_openai.script("The store is still there.")
    child.send("are you still there?\r")
    await expect(child, "The store is still there.")
    await expect(child, "you>")
    assert "can't reach my conversation store" not in child.before

    # While the chat runs, a second command uses its server instead of being refused; the id
    # is accepted as listed (with its braces) and as a person types it.
    out, err, code = await threadbot("conversations", "list", env=env)
    assert code == 0, err
    assert "console:{tty}" in out
    for typed in ("console:{tty}", "console:tty"):
        out, err, code = await threadbot("conversations", "show", typed, env=env)
        assert code == 0, err
        assert "user> are you still there?" in out
        assert "bot> The store is still there." in out

    child.send("/quit\r")
    await asyncio.to_thread(child.expect, pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    # The owner stopped its server on the way out; the next command starts its own.
    out, err, code = await threadbot("conversations", "list", env=env)
    assert code == 0, err
    assert "console:{tty}" in out


async def test_a_passage_cut_inside_a_code_block_renders_as_code(tmp_path: Path) -> None:
    """Retrieval only, as a newcomer runs it: passages from the middle of a long code block are
    shown as code, and the next passage's title is not swallowed by a stray fence."""
    docs = tmp_path / "docs"
    docs.mkdir()
    body = "\n".join(
        f"    # Of course, there are lots of email messages: number {n} of them" for n in range(40)
    )
    (docs / "email.md").write_text(
        f"# Email examples\n\nSending mail.\n\n```python\ndef send():\n{body}\n```\n"
    )
    env = env_for(
        tmp_path,
        THREADBOT_DATA_DIR=str(tmp_path / "data"),
        EMBEDDINGS="local",
        CHUNK_SIZE_CHARS="300",
        CHUNK_OVERLAP_CHARS="40",
    )
    _, err, code = await threadbot("ingest", str(docs), env=env)
    assert code == 0, err
    child = await spawn_chat(env)
    child.send("lots of email messages\r")
    await expect(child, "No language model is configured")  # the answer's last line
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", child.before)  # the screen's text
    assert "[4] email.md" in shown
    comments = [line for line in shown.splitlines() if "Of course, there are" in line]
    assert len(comments) >= 8
    # Every line of the code is shown as code: none became a heading that lost its "#".
    assert all("# Of course" in line for line in comments), comments
    assert "```" not in shown and "**" not in shown  # no markup shown as it is
    child.send("/quit\r")
    await asyncio.to_thread(child.expect, pexpect.EOF)
