"""Start-up as a newcomer meets it: bad settings are one line naming the variable, and a bad
setting of another platform does not stop the command at hand."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

from core.settings import Settings
from tests.conftest import ROOT


def threadbot(
    tmp_path: Path, *args: str, stdin: str = "", **env: str
) -> subprocess.CompletedProcess:
    base = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),
        "THREADBOT_DATA_DIR": str(tmp_path / "data"),
    }
    return subprocess.run(
        [sys.executable, "-m", "bots.cli.main", *args],
        cwd=tmp_path,
        env=base | env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_a_redis_url_that_is_not_one_is_named(tmp_path: Path) -> None:
    done = threadbot(tmp_path, "chat", REDIS_URL="not-a-url")
    assert done.returncode == 2
    assert "REDIS_URL: must start with redis://" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 2


def test_another_platforms_bad_setting_does_not_stop_the_chat(tmp_path: Path) -> None:
    done = threadbot(tmp_path, "chat", stdin="/quit\n", SLACK_STREAMING="fast")
    assert done.returncode == 0, done.stderr
    assert "ignoring a setting `chat` does not use: SLACK_STREAMING" in done.stderr
    refused = threadbot(tmp_path, "slack", SLACK_STREAMING="fast")
    assert refused.returncode == 2 and "SLACK_STREAMING" in refused.stderr


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
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    version = importlib.metadata.version("threadbot")
    assert done.stdout.splitlines() == [f"threadbot {version}", "[]"], done.stderr


def test_search_on_a_terminal_says_what_it_waits_for(tmp_path: Path) -> None:
    import pexpect

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A\n\nSome text.\n")
    assert threadbot(tmp_path, "ingest", str(tmp_path / "docs")).returncode == 0
    child = pexpect.spawn(
        sys.executable, ["-m", "bots.cli.main", "search"], cwd=str(tmp_path), encoding="utf-8",
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), "HOME": str(tmp_path),
             "THREADBOT_DATA_DIR": str(tmp_path / "data")},
        timeout=60,
    )  # fmt: skip
    child.expect("Type a question a line; Ctrl-D ends")
    child.sendline("some text")
    child.expect("a.md › A")
    child.sendeof()
    child.expect(pexpect.EOF)
