"""The `threadbot` command as a user runs it, in a subprocess that sees only what the test gives.

Every test that starts the command goes through here. Its environment is `env_for(...)` alone
and its working folder is that environment's HOME, never the checkout: settings read `.env`
from the working folder, so a contributor's own `.env` and their shell's REDIS_URL or
OPENAI_API_KEY never reach a test.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from tests.conftest import ROOT, MakeSettings

if TYPE_CHECKING:
    import pexpect

    from tests.fakes.fake_openai import FakeOpenAI

BASE_KEYS = ("PATH", "HOME", "PYTHONPATH", "PYTHONUNBUFFERED")
TIMEOUT_S = 90.0


class Ran(NamedTuple):
    """What a finished command printed, and its exit status."""

    out: str
    err: str
    code: int


def env_for(home: Path, **values: str) -> dict[str, str]:
    """The command's whole environment: PATH, HOME (also where it runs), the checkout on
    PYTHONPATH and unbuffered output, then `values`. Nothing of the developer's own leaks in."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
    }
    env.update(values)
    return env


def store_env(home: Path, make_settings: MakeSettings, fake_openai: FakeOpenAI) -> dict[str, str]:
    """`env_for(home)` on the test's own data dir and keys in the shared test server, with the
    fake OpenAI and the local embeddings: what the test's `pipeline` reads and writes."""
    settings = make_settings()
    return env_for(
        home,
        THREADBOT_DATA_DIR=str(settings.threadbot_data_dir),
        REDIS_URL=str(settings.redis_url),
        HISTORY_KEY_PREFIX=settings.history_key_prefix,
        REDIS_NAMESPACE=settings.redis_namespace,
        OPENAI_BASE_URL=fake_openai.base_url,
        OPENAI_API_KEY="test-key",
        EMBEDDINGS="local",
    )


def command(*args: str) -> list[str]:
    """`threadbot ARGS...`, run by this interpreter from the checkout."""
    return [sys.executable, "-m", "bots.cli.main", *args]


def workdir(env: dict[str, str]) -> Path:
    """Where a command runs: its HOME, which must not be the checkout (its `.env` is read)."""
    home = Path(env["HOME"]).resolve()
    assert home != ROOT and ROOT not in home.parents, f"{home} is in the checkout"
    return home


def run(
    argv: list[str], *, env: dict[str, str], stdin: str = "", timeout_s: float = TIMEOUT_S
) -> Ran:
    """Run `argv` to its end (blocking), with `env` alone, in `workdir(env)`."""
    done = subprocess.run(
        argv,
        cwd=workdir(env),
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    return Ran(done.stdout, done.stderr, done.returncode)


async def arun(
    argv: list[str], *, env: dict[str, str], stdin: str = "", timeout_s: float = TIMEOUT_S
) -> Ran:
    """`run`, without blocking the event loop the test's local servers answer on."""
    process = await start(
        argv,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin.encode()), timeout=timeout_s)
    assert process.returncode is not None
    return Ran(out.decode(), err.decode(), process.returncode)


def threadbot_sync(*args: str, env: dict[str, str], stdin: str = "") -> Ran:
    """`threadbot ARGS...` to its end, blocking: for tests without a local server to serve."""
    return run(command(*args), env=env, stdin=stdin)


async def threadbot(*args: str, env: dict[str, str], stdin: str = "") -> Ran:
    """`threadbot ARGS...` to its end."""
    return await arun(command(*args), env=env, stdin=stdin)


async def start(
    argv: list[str], *, env: dict[str, str], **streams: Any
) -> asyncio.subprocess.Process:
    """Start `argv` (`command(...)`) and return at once: for a test that signals it or reads its
    output as it comes. `streams` are `asyncio.create_subprocess_exec`'s stdin, stdout, stderr."""
    return await asyncio.create_subprocess_exec(*argv, cwd=workdir(env), env=env, **streams)


def popen(argv: list[str], *, env: dict[str, str], **streams: Any) -> subprocess.Popen[Any]:
    """`start`, for code that waits on the process from a thread (`subprocess.Popen`)."""
    return subprocess.Popen(argv, cwd=workdir(env), env=env, **streams)


def spawn(argv: list[str], *, env: dict[str, str], **options: Any) -> pexpect.spawn:
    """`start` in a pseudo-terminal (pexpect), as a person at a terminal runs it."""
    import pexpect

    program, *args = argv
    return pexpect.spawn(program, args, cwd=str(workdir(env)), env=env, **options)
