"""What `threadbot slack` needs before it serves: its settings, its client, tokens Slack takes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bots.lifecycle import ExitCode
from core import Settings

log = logging.getLogger(__name__)


class SlackClient(AsyncWebClient):
    """slack_sdk's client, asking `auth.test` once per process.

    bolt authorises every request with `auth.test` until it has an answer cached, so a burst
    at start-up sent one call per event; Slack rate-limits the method, and the bot's identity
    does not change while it runs. Concurrent callers share the one call in flight; a failed
    call is not kept, so the next caller asks again.
    """

    _identity: asyncio.Task[AsyncSlackResponse] | None = None

    async def auth_test(self, **kwargs: Any) -> AsyncSlackResponse:
        if kwargs:  # another token's identity: not the bot's
            return await super().auth_test(**kwargs)
        known = self._identity
        if known is None or (known.done() and (known.cancelled() or known.exception())):
            known = self._identity = asyncio.ensure_future(super().auth_test())
        return await asyncio.shield(known)


def make_client(
    settings: Settings, *, session: aiohttp.ClientSession | None = None
) -> AsyncWebClient:
    """The Web API client, pointed at SLACK_API_URL, without slack_sdk's rate-limit retries.

    slack_sdk can sleep through a 429 itself; the streaming editor must see the 429 instead, so
    it can coalesce edits rather than queue them. `session` (one kept open, with a metrics
    trace) replaces slack_sdk's session per request.
    """
    token = settings.slack_bot_token
    client = SlackClient(
        token=token.get_secret_value() if token is not None else None,
        base_url=settings.slack_api_url,
        session=session,
    )
    client.retry_handlers = [
        h for h in client.retry_handlers if not isinstance(h, AsyncRateLimitErrorRetryHandler)
    ]
    return client


def missing_settings(settings: Settings) -> list[str]:
    """What `threadbot slack` still needs, named as the user sets it in .env."""
    missing = []
    if settings.slack_bot_token is None:
        missing.append("SLACK_BOT_TOKEN (xoxb-…)")
    elif not settings.slack_bot_token.get_secret_value().startswith("xoxb-"):
        missing.append("SLACK_BOT_TOKEN must be the bot token (xoxb-…)")
    app_token = settings.slack_app_token
    if app_token is not None and not app_token.get_secret_value().startswith("xapp-"):
        missing.append("SLACK_APP_TOKEN must be an app-level token (xapp-…)")
    if app_token is None and settings.slack_signing_secret is None:
        missing.append("SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP mode)")
    return missing


async def rejected(client: AsyncWebClient, settings: Settings) -> int | None:
    """Ask Slack once whether it takes the tokens: one clear line and an exit code if not,
    rather than a client retrying with a traceback every few seconds."""
    app_token = settings.slack_app_token
    checks: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("SLACK_BOT_TOKEN", client.auth_test)
    ]
    if app_token is not None:
        open_socket = partial(client.apps_connections_open, app_token=app_token.get_secret_value())
        checks.append(("SLACK_APP_TOKEN", open_socket))
    for name, check in checks:
        try:
            await check()
        except SlackApiError as exc:
            log.error(
                "Slack rejected %s (%s): copy it again from the app's settings (docs/slack.md).",
                name,
                exc.response.get("error"),
            )
            return ExitCode.MISCONFIGURED
        except (SlackClientError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.error(
                "cannot reach Slack at %s (%s): check the network, or SLACK_API_URL.",
                settings.slack_api_url,
                exc or type(exc).__name__,
            )
            return ExitCode.UNREACHABLE
    return None
