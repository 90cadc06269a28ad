"""`threadbot doctor` as a user runs it: the real command against the local emulations."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bots.cli.doctor import shown_url
from tests.cli_runner import env_for, threadbot
from tests.fakes.fake_discord import FakeDiscord
from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.fake_slack import FakeSlack

SECRETS = {
    "OPENAI_API_KEY": "sk-secret-openai",
    "SLACK_BOT_TOKEN": "xoxb-secret-slack",
    "SLACK_APP_TOKEN": "xapp-secret-app",
    "DISCORD_TOKEN": "secret-discord-token",
}


@pytest.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as fake:
        yield fake


def doctor_env(
    tmp_path: Path, fake_openai: FakeOpenAI, slack: FakeSlack, discord: FakeDiscord, **values: str
) -> dict[str, str]:
    defaults = {
        "THREADBOT_DATA_DIR": str(tmp_path / "data"),
        "OPENAI_BASE_URL": fake_openai.base_url,
        "CHAT_MODEL": "fake-model",
        "EMBEDDINGS": "local",
        "SLACK_API_URL": slack.api_url,
        "DISCORD_API_URL": discord.api_url,
    }
    return env_for(tmp_path, **{**defaults, **SECRETS, **values})


def verdicts(out: str) -> dict[str, str]:
    """Each check's verdict, by name, from lines `VERDICT  NAME  text`."""
    return {line.split()[1]: line.split()[0] for line in out.splitlines()}


async def test_all_ok_against_the_emulations(
    tmp_path: Path,
    redis_url: str,
    fake_openai: FakeOpenAI,
    fake_slack: FakeSlack,
    fake_discord: FakeDiscord,
) -> None:
    env = doctor_env(tmp_path, fake_openai, fake_slack, fake_discord, REDIS_URL=redis_url)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "reset.md").write_text("# Reset\n\nSay reset to forget a conversation.\n")
    _, err, code = await threadbot("ingest", str(docs), env=env)
    assert code == 0, err

    out, err, code = await threadbot("doctor", env=env)

    assert code == 0, out + err
    assert verdicts(out) == dict.fromkeys(
        ["settings", "redis", "index", "model", "slack", "discord"], "ok"
    ), out
    assert "1 passages from 1 files, embedded with local:all-MiniLM-L6-v2-int8 as configured" in out
    assert "serves fake-model" in out
    assert "bot @threadbot in Test; Socket Mode" in out
    assert "bot threadbot" in out  # Discord's /users/@me
    assert len(fake_slack.calls_to("auth.test")) == 1
    assert [r.path for r in fake_discord.requests] == ["/users/@me"]
    assert not any(secret in out + err for secret in SECRETS.values())


async def test_redis_down_and_refused_tokens_are_one_line_each(
    tmp_path: Path, fake_openai: FakeOpenAI, fake_slack: FakeSlack, fake_discord: FakeDiscord
) -> None:
    env = doctor_env(
        tmp_path,
        fake_openai,
        fake_slack,
        fake_discord,
        REDIS_URL="redis://:redis-password@127.0.0.1:1/0?password=redis-password",
        CHAT_MODEL="not-served",
    )
    fake_slack.rejected_tokens.add(SECRETS["SLACK_BOT_TOKEN"])
    fake_discord.fail("GET", "/users/@me", 401)

    out, err, code = await threadbot("doctor", env=env)

    assert code == 1
    assert err == ""  # no traceback, no log line
    assert verdicts(out) == {
        "settings": "ok",
        "redis": "fail",
        "index": "warn",  # nothing ingested yet
        "model": "warn",
        "slack": "fail",
        "discord": "fail",
    }, out
    lines = {line.split()[1]: line for line in out.splitlines()}
    assert "redis://127.0.0.1:1/0 does not answer PING" in lines["redis"]
    assert "Fix: start Redis there, or unset REDIS_URL" in lines["redis"]
    assert "Slack refused the bot token (invalid_auth)" in lines["slack"]
    assert "Fix: copy the Bot User OAuth Token" in lines["slack"]
    assert "Discord refused the token (HTTP 401)" in lines["discord"]
    assert "does not list CHAT_MODEL not-served" in lines["model"]
    assert not any(s in out for s in [*SECRETS.values(), "redis-password"])


async def test_invalid_settings_are_named_and_fail(tmp_path: Path) -> None:
    out, err, code = await threadbot("doctor", env=env_for(tmp_path, REDIS_URL="not-a-url"))
    assert (code, err) == (1, "")
    assert out.splitlines() == [
        "fail  settings  REDIS_URL: must start with redis://, rediss:// or unix:// (one server, "
        "e.g. redis://localhost:6379/0) or redis+cluster:// or rediss+cluster:// (a cluster). "
        "Fix: fix it in .env or the environment.",
        "The other checks need valid settings; fix these first.",
    ]
    # A bad Slack setting does not stop the other commands, but the doctor names it.
    env = env_for(tmp_path, THREADBOT_DATA_DIR=str(tmp_path / "data"), SLACK_STREAMING="fast")
    out, err, code = await threadbot("doctor", env=env)
    assert (code, err) == (1, "")
    assert out.startswith("fail  settings  SLACK_STREAMING: Input should be 'edit' or 'native'")
    assert verdicts(out)["redis"] == "ok"  # the embedded server, started for the check


def test_a_redis_url_is_shown_without_its_credentials() -> None:
    assert shown_url("redis://user:s3cret@cache:6380/2") == "redis://cache:6380/2"
    cluster = "rediss+cluster://:s3cret@node1:6379,node2:6379"
    assert shown_url(cluster) == "rediss+cluster://node1:6379,node2:6379"
