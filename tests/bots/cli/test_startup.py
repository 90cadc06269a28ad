"""Start-up as a newcomer meets it: bad settings are one line naming the variable, and a bad
setting of another platform does not stop the command at hand."""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

import pytest

from core.settings import Settings
from tests.cli_runner import command, env_for, run, spawn, threadbot_sync


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return env_for(tmp_path, THREADBOT_DATA_DIR=str(tmp_path / "data"))


def test_a_redis_url_that_is_not_one_is_named(env: dict[str, str]) -> None:
    done = threadbot_sync("chat", env={**env, "REDIS_URL": "not-a-url"})
    assert done.code == 2
    assert "REDIS_URL: must start with redis://" in done.err
    assert "Traceback" not in done.err and len(done.err.splitlines()) == 2


def test_another_platforms_bad_setting_does_not_stop_the_chat(env: dict[str, str]) -> None:
    fast = {**env, "SLACK_STREAMING": "fast"}
    done = threadbot_sync("chat", env=fast, stdin="/quit\n")
    assert done.code == 0, done.err
    assert "ignoring a setting `chat` does not use: SLACK_STREAMING" in done.err
    refused = threadbot_sync("slack", env=fast)
    assert refused.code == 2 and "SLACK_STREAMING" in refused.err


def test_a_chat_model_key_never_changes_how_documents_are_embedded() -> None:
    with_key = Settings(openai_api_key="sk-test", _env_file=None)  # type: ignore[call-arg]
    assert with_key.embeddings_kind == "local" and with_key.generates_answers
    chosen = Settings(embeddings="openai", _env_file=None)  # type: ignore[call-arg]
    assert chosen.embeddings_kind == "openai"


def test_version_and_help_load_none_of_the_core(tmp_path: Path) -> None:
    """`--version` answers at once: nothing of the bot is imported to print a number."""
    probe = (
        "import sys\nfrom bots.cli import main as cli\n"
        "try:\n    cli.main(['--version'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('core', 'langchain_core')))"
    )
    done = run([sys.executable, "-c", probe], env=env_for(tmp_path), timeout_s=60)
    version = importlib.metadata.version("threadbot")
    assert done.out.splitlines() == [f"threadbot {version}", "[]"], done.err


def test_search_on_a_terminal_says_what_it_waits_for(tmp_path: Path, env: dict[str, str]) -> None:
    import pexpect

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A\n\nSome text.\n")
    assert threadbot_sync("ingest", str(tmp_path / "docs"), env=env).code == 0
    child = spawn(command("search"), env=env, encoding="utf-8", timeout=60)
    child.expect("Type a question a line; Ctrl-D ends")
    child.sendline("some text")
    child.expect("a.md › A")
    child.sendeof()
    child.expect(pexpect.EOF)


def test_a_settings_error_names_the_variable_and_never_shows_a_secret(env: dict[str, str]) -> None:
    secret = "xoxb-9876-super-secret-token"
    # Without DISCORD_SHARD_COUNT the settings as a whole are invalid: pydantic would quote them.
    tokens = {"SLACK_BOT_TOKEN": secret, "DISCORD_TOKEN": secret, "DISCORD_SHARD_IDS": "0"}
    done = threadbot_sync("chat", env={**env, **tokens})
    assert done.code == 2
    assert "DISCORD_SHARD_COUNT" in done.err
    assert "9876" not in done.err + done.out and "errors.pydantic.dev" not in done.err
    slow = {"SLACK_BOT_TOKEN": secret, "SLACK_EDIT_INTERVAL_MS": "fast"}
    done = threadbot_sync("chat", env={**env, **slow})
    assert done.code == 0 and "SLACK_EDIT_INTERVAL_MS" in done.err  # not chat's


def test_a_symlink_loop_in_the_data_folder_is_one_clear_line(
    tmp_path: Path, env: dict[str, str]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "valkey").symlink_to("valkey")  # points at itself
    done = threadbot_sync("chat", env=env, stdin="hello\n")
    assert done.code == 2
    assert "Traceback" not in done.err
    assert f"cannot use {data / 'valkey'}" in done.err and "THREADBOT_DATA_DIR" in done.err
