"""Points discord.py at another Discord (a local emulation, a proxy): the one place that does.

discord.py keeps its REST base (`discord.http.Route.BASE`, also used by webhooks and interaction
responses) and its first gateway URL (`DiscordWebSocket.DEFAULT_GATEWAY`) in class attributes, so
the switch is process-wide. It is made only when `DISCORD_API_URL` is set, before the client logs
in; the gateway URL is read from `GET {DISCORD_API_URL}/gateway` as a real client would.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import aiohttp
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

log = logging.getLogger(__name__)


async def use_discord_api(api_url: str | None) -> Callable[[], None]:
    """Send discord.py's REST and gateway traffic to `api_url` (e.g. `http://127.0.0.1:5/api/v10`).

    Returns a function that restores the previous endpoints (tests start several fakes in one
    process). With `api_url=None` nothing changes: the real Discord is used.
    """
    if not api_url:
        return lambda: None
    base = api_url.rstrip("/")
    async with aiohttp.ClientSession() as session, session.get(f"{base}/gateway") as response:
        response.raise_for_status()
        gateway = yarl.URL((await response.json())["url"])
    previous = (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY)
    Route.BASE = base
    DiscordWebSocket.DEFAULT_GATEWAY = gateway
    log.info("using the Discord API at %s (gateway %s)", base, gateway)

    def restore() -> None:
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = previous

    return restore
