"""The CLI runner keeps its promise: a command sees the environment the test gives and nothing
else, and runs away from the checkout, whatever the developer's shell or `.env` holds."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_runner import BASE_KEYS, arun, env_for, popen, run, spawn, threadbot_sync, workdir
from tests.conftest import ROOT

# What a child process was started with: its whole environment (as exec gave it, before Python
# coerces the C locale into LC_CTYPE) and its working folder.
PROBE = (
    "import json, os\n"
    "raw = open('/proc/self/environ', 'rb').read().decode().split('\\0')\n"
    "print(json.dumps([dict(v.split('=', 1) for v in raw if v), os.getcwd()]))"
)
LEAKS = {
    "OPENAI_API_KEY": "sk-leak",
    "REDIS_URL": "redis://leak.invalid:6379/0",
    "SLACK_BOT_TOKEN": "xoxb-leak",
    "XDG_DATA_HOME": "/nonexistent/leak",
}


@pytest.fixture
def leaky_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's shell exports keys and URLs of their own."""
    for key, value in LEAKS.items():
        monkeypatch.setenv(key, value)


async def test_every_way_of_starting_a_command_gives_it_only_the_test_environment(
    tmp_path: Path, leaky_shell: None
) -> None:
    env = env_for(tmp_path, THREADBOT_DATA_DIR=str(tmp_path / "data"))
    assert set(env) == {*BASE_KEYS, "THREADBOT_DATA_DIR"}
    argv = [sys.executable, "-c", PROBE]
    child = popen(argv, env=env, stdout=subprocess.PIPE, text=True)
    from_popen = await asyncio.to_thread(child.communicate)
    terminal = spawn(argv, env=env, encoding="utf-8", timeout=30)
    await asyncio.to_thread(terminal.expect, r"\]\r?\n")
    terminal.close()
    seen = [
        run(argv, env=env).out,
        (await arun(argv, env=env)).out,
        from_popen[0],
        terminal.before + terminal.after,
    ]
    for shown in seen:
        child_env, cwd = json.loads(shown)
        assert child_env == env  # not one key more: nothing of the shell above
        assert Path(cwd) == workdir(env) != ROOT  # so no `.env` of the checkout is read


def test_a_command_started_in_the_checkout_is_refused() -> None:
    with pytest.raises(AssertionError, match="is in the checkout"):
        run([sys.executable, "-c", "pass"], env=env_for(ROOT))
    with pytest.raises(AssertionError, match="is in the checkout"):
        run([sys.executable, "-c", "pass"], env=env_for(ROOT / "tests"))


def test_the_doctor_sees_no_model_and_no_redis_of_the_developers_shell(
    tmp_path: Path, leaky_shell: None
) -> None:
    done = threadbot_sync("doctor", env=env_for(tmp_path, THREADBOT_DATA_DIR=str(tmp_path / "d")))
    assert done.code == 0, done.out + done.err
    lines = {line.split()[1]: line for line in done.out.splitlines()}
    assert lines["model"].split()[0] == "ok" and "none configured" in lines["model"]
    assert "the embedded server" in lines["redis"]
    assert "not configured" in lines["slack"]
    assert not any(value in done.out + done.err for value in LEAKS.values())
