"""`threadbot doctor`: each part the bot needs, checked, with one line of verdict and a fix."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp

from bots.lifecycle import ExitCode
from core import (
    EmbeddedServerBusy,
    Pipeline,
    Settings,
    ThreadbotError,
    build_embeddings,
    index_summary,
)

log = logging.getLogger(__name__)

TIMEOUT_S = 5.0  # each network check: a service slower than this is as good as down
OPENAI_API = "https://api.openai.com/v1"
DISCORD_API = "https://discord.com/api/v10"

Verdict = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Check:
    """One verdict. `text` and `fix` never hold a secret: tokens are never quoted, and URLs
    are shown without their password or query."""

    name: str
    verdict: Verdict
    text: str
    fix: str = ""

    @property
    def line(self) -> str:
        end = f". Fix: {self.fix}" if self.fix and self.verdict != "ok" else "."
        return f"{self.verdict:<4}  {self.name:<8}  {self.text.rstrip('.')}{end}\n"


def shown_url(url: str) -> str:
    """`url` as it may be printed: scheme, hosts (a cluster names several), ports and path."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(a URL that cannot be parsed)"
    hosts = parts.netloc.rpartition("@")[2]  # never the user or the password
    return f"{parts.scheme}://{hosts}{parts.path}" if parts.scheme else "(a URL with no scheme)"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {TIMEOUT_S:g} s"
    return str(exc).strip().rstrip(".") or type(exc).__name__


async def _get_json(url: str, headers: dict[str, str]) -> tuple[int, Any]:
    """GET `url`: the status and the JSON body (None when it is not JSON)."""
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    async with (
        aiohttp.ClientSession(timeout=timeout) as http,
        http.get(url, headers=headers) as response,
    ):
        try:
            body = await response.json(content_type=None)
        except ValueError:
            body = None
        return response.status, body


async def check_redis(settings: Settings) -> Check:
    if settings.redis_url is not None:
        where = shown_url(settings.redis_url)
        fix = "start Redis there, or unset REDIS_URL to use the embedded server."
    else:
        where = f"the embedded server ({settings.data_dir / 'valkey'})"
        fix = "set REDIS_URL to a Redis server you run."
    try:
        async with (
            await Pipeline.create(settings, join_running=True) as pipeline,
            asyncio.timeout(TIMEOUT_S),
        ):
            await pipeline.ping()
    except EmbeddedServerBusy:
        return Check(
            "redis", "warn", f"{where} is held by a running threadbot; not checked from here.",
            "stop that process to check, or give every process REDIS_URL.",
        )  # fmt: skip
    except (ThreadbotError, OSError, TimeoutError, ValueError) as exc:
        return Check("redis", "fail", f"{where} does not answer PING ({_reason(exc)}).", fix)
    return Check("redis", "ok", f"{where} answers PING.")


async def check_index(settings: Settings) -> Check:
    fix = "run `threadbot ingest YOUR_DOCS`."
    _, configured = await asyncio.to_thread(build_embeddings, settings)
    try:
        summary = await asyncio.to_thread(index_summary, settings.index_dir)
    except Exception as exc:  # whatever keeps the bot from reading it: the remedy is the same
        return Check(
            "index", "fail", f"cannot read the index in {settings.index_dir} ({exc}).", fix
        )
    if summary is None:
        return Check(
            "index",
            "warn",
            f"no index in {settings.index_dir} yet: answers have no documents.",
            fix,
        )
    if summary.embeddings_name != configured:
        return Check(
            "index", "fail",
            f"{summary.passages} passages embedded with {summary.embeddings_name}, but the "
            f"embeddings are now {configured}: the bot answers without documents.",
            f"{fix[:-1]} again, or set EMBEDDINGS back.",
        )  # fmt: skip
    return Check(
        "index", "ok",
        f"{summary.passages} passages from {summary.files} files, embedded with {configured} "
        f"as configured (built {summary.created}).",
    )  # fmt: skip


async def check_model(settings: Settings) -> Check:
    if not settings.generates_answers:
        return Check(
            "model", "ok", "none configured: retrieval-only answers (passages and their sources)."
        )
    base = (settings.openai_base_url or OPENAI_API).rstrip("/")
    where = shown_url(base)
    key = settings.openai_api_key
    headers = {"Authorization": f"Bearer {key.get_secret_value()}"} if key is not None else {}
    try:
        status, body = await _get_json(f"{base}/models", headers)
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        return Check(
            "model", "fail", f"cannot reach {where} ({_reason(exc)}).",
            "check OPENAI_BASE_URL and the network, or unset the model settings.",
        )  # fmt: skip
    if status in (401, 403):
        return Check(
            "model", "fail", f"{where} refused the key (HTTP {status}).", "check OPENAI_API_KEY."
        )
    if status != 200:
        return Check(
            "model", "fail", f"{where}/models answered HTTP {status}.", "check OPENAI_BASE_URL."
        )
    data = body.get("data") if isinstance(body, dict) else None
    served = [m.get("id") for m in data if isinstance(m, dict)] if isinstance(data, list) else []
    if settings.chat_model not in served:
        return Check(
            "model", "warn",
            f"{where} answers, but does not list CHAT_MODEL {settings.chat_model} "
            f"({len(served)} models listed).",
            "set CHAT_MODEL to a model it serves.",
        )  # fmt: skip
    return Check("model", "ok", f"{where} answers and serves {settings.chat_model}.")


async def check_slack(settings: Settings) -> Check:
    if settings.slack_bot_token is None:
        return Check("slack", "ok", "not configured (SLACK_BOT_TOKEN is not set).")
    from slack_sdk.errors import SlackApiError, SlackClientError

    from bots.slack.setup import make_client, missing_settings

    client = make_client(settings)
    client.timeout = int(TIMEOUT_S)
    where = shown_url(settings.slack_api_url)
    try:
        auth = await client.auth_test()
    except SlackApiError as exc:
        return Check(
            "slack", "fail", f"Slack refused the bot token ({exc.response.get('error')}).",
            "copy the Bot User OAuth Token (xoxb-…) from the app's OAuth & Permissions page "
            "into SLACK_BOT_TOKEN.",
        )  # fmt: skip
    except (SlackClientError, aiohttp.ClientError, OSError, TimeoutError) as exc:
        return Check(
            "slack", "fail", f"cannot reach {where} ({_reason(exc)}).",
            "check the network (and SLACK_API_URL).",
        )  # fmt: skip
    problems = missing_settings(settings)
    if problems:
        return Check("slack", "fail", "; ".join(problems) + ".", "see docs/slack.md.")
    mode = (
        "Socket Mode (SLACK_APP_TOKEN is set)"
        if settings.slack_app_token is not None
        else f"HTTP mode on port {settings.slack_port} (no SLACK_APP_TOKEN)"
    )
    return Check("slack", "ok", f"bot @{auth.get('user')} in {auth.get('team')}; {mode}.")


async def check_discord(settings: Settings) -> Check:
    token = settings.discord_token
    if token is None:
        return Check("discord", "ok", "not configured (DISCORD_TOKEN is not set).")
    base = (settings.discord_api_url or DISCORD_API).rstrip("/")
    headers = {"Authorization": f"Bot {token.get_secret_value()}"}
    try:
        status, body = await _get_json(f"{base}/users/@me", headers)
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        return Check(
            "discord", "fail", f"cannot reach {shown_url(base)} ({_reason(exc)}).",
            "check the network (and DISCORD_API_URL).",
        )  # fmt: skip
    if status == 401:
        return Check(
            "discord", "fail", "Discord refused the token (HTTP 401).",
            "in the developer portal, Bot → Reset Token, and set DISCORD_TOKEN to it.",
        )  # fmt: skip
    if status != 200 or not isinstance(body, dict):
        return Check("discord", "fail", f"{shown_url(base)}/users/@me answered HTTP {status}.")
    return Check("discord", "ok", f"bot {body.get('username')} (id {body.get('id')}).")


CHECKS: dict[str, Callable[[Settings], Awaitable[Check]]] = {
    "redis": check_redis,
    "index": check_index,
    "model": check_model,
    "slack": check_slack,
    "discord": check_discord,
}


async def _guarded(name: str, check: Callable[[Settings], Awaitable[Check]], s: Settings) -> Check:
    """A check's one error boundary: whatever it did not expect is a verdict, not a traceback."""
    try:
        return await check(s)
    except Exception as exc:
        log.error("the %s check failed", name, exc_info=True)  # shown with -v
        return Check(
            name, "fail", f"{type(exc).__name__}: {_reason(exc)}", "run `threadbot -v doctor`."
        )


def _settings_checks(problems: list[str]) -> list[Check]:
    if not problems:
        return [Check("settings", "ok", "loaded from the environment and .env.")]
    return [
        Check("settings", "fail", problem, "fix it in .env or the environment.")
        for problem in problems
    ]


async def diagnose(settings: Settings, problems: list[str]) -> bool:
    """Run every check, printing each verdict as it comes; True when none failed. `problems`
    are bad settings of one platform (the other commands run with its defaults meanwhile)."""
    results = _settings_checks(problems)
    sys.stdout.write("".join(r.line for r in results))
    for name, check in CHECKS.items():
        results.append(await _guarded(name, check, settings))
        sys.stdout.write(results[-1].line)
        sys.stdout.flush()
    return all(r.verdict != "fail" for r in results)


def main(settings: Settings, problems: list[str]) -> int:
    """`threadbot doctor`: 0 when nothing failed, 1 otherwise."""
    return ExitCode.OK if asyncio.run(diagnose(settings, problems)) else ExitCode.FAILED


def invalid_settings(problems: list[str]) -> int:
    """The settings do not load at all: say why, one line each (the other checks need them)."""
    sys.stdout.write("".join(r.line for r in _settings_checks(problems)))
    sys.stdout.write("The other checks need valid settings; fix these first.\n")
    return ExitCode.FAILED
