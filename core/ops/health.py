"""/healthz, /readyz and /metrics for orchestrators, load balancers and Prometheus.

Live means the event loop answers (the handler ran). Ready means this process can take work
now: it is not stopping, Redis answers a PING, the document index is loaded (or there is none
yet, on purpose), and the platform connection is up where there is one (Socket Mode, the Discord
gateway). The routes mount on Slack's HTTP port, or run on their own server (`METRICS_PORT`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from core.errors import HistoryUnavailable
from core.knowledge.retrieval import live_version
from core.ops.metrics import CONTENT_TYPE, Metrics

if TYPE_CHECKING:
    from core.settings import Settings
    from core.turn.runner import TurnRunner

log = logging.getLogger(__name__)

PATHS = ("/healthz", "/readyz", "/metrics")
PING_TIMEOUT_S = 2.0  # a store slower than this to answer a PING cannot serve a turn well

Connected = Callable[[], Awaitable[bool]]


class Health:
    """What the three endpoints answer for one bot (its runner, its pipeline, its metrics).

    `connected` tells whether the platform connection is up; set it once the connection
    exists (None: the bot needs none, as Slack's HTTP mode).
    """

    def __init__(
        self,
        runner: TurnRunner,
        settings: Settings,
        *,
        metrics: Metrics | None = None,
        connected: Connected | None = None,
    ) -> None:
        self.runner = runner
        self.settings = settings
        self.metrics = metrics if metrics is not None else Metrics()
        self.connected = connected

    @classmethod
    def watching(
        cls,
        runner: TurnRunner,
        settings: Settings,
        metrics: Metrics | None = None,
        *,
        connected: Connected | None = None,
    ) -> Health:
        """Health and metrics for a bot: every turn of `runner` is measured from now on."""
        health = cls(runner, settings, metrics=metrics, connected=connected)
        health.metrics.watch(runner, settings.index_dir)
        return health

    async def checks(self) -> dict[str, bool]:
        """Each readiness condition, by name; ready when all hold."""
        checks = {"serving": not self.runner.draining, "redis": await self._redis_answers()}
        checks["index"] = self._index_loaded()
        if self.connected is not None:
            checks["platform"] = await self._platform_connected(self.connected)
        return checks

    async def _redis_answers(self) -> bool:
        try:
            async with asyncio.timeout(PING_TIMEOUT_S):
                await self.runner.pipeline.ping()
                return True
        except (HistoryUnavailable, OSError, TimeoutError) as exc:
            log.debug("readiness: Redis does not answer: %r", exc)
            return False

    def _index_loaded(self) -> bool:
        """Loaded, or deliberately empty: nothing was ingested yet (`current` is absent)."""
        return self.runner.pipeline.documents > 0 or live_version(self.settings.index_dir) is None

    @staticmethod
    async def _platform_connected(connected: Connected) -> bool:
        try:
            return await connected()
        except Exception as exc:  # a check that fails means "not connected", never a 500
            log.debug("readiness: platform check failed: %r", exc)
            return False

    # -- HTTP ------------------------------------------------------------------------------

    def mount(self, app: web.Application) -> None:
        """Add the three routes to `app`, and refuse its other requests while draining (503:
        Slack then redelivers the event, to another worker behind the same address)."""
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        app.middlewares.append(self._refuse_while_draining)

    @web.middleware
    async def _refuse_while_draining(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if self.runner.draining and request.path not in PATHS:
            return web.Response(status=503, text="stopping", headers={"Retry-After": "1"})
        return await handler(request)

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        checks = await self.checks()
        ready = all(checks.values())
        body = json.dumps({"ready": ready, "checks": checks}) + "\n"
        return web.Response(
            status=200 if ready else 503, text=body, content_type="application/json"
        )

    async def _metrics(self, request: web.Request) -> web.Response:
        response = web.Response(body=self.metrics.exposition())
        response.headers["Content-Type"] = CONTENT_TYPE
        return response

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[int | None]:
        """The endpoints on `METRICS_HOST:METRICS_PORT` while the block runs; yields the bound
        port (None when no METRICS_PORT is set)."""
        port = self.settings.metrics_port
        if port is None:
            yield None
            return
        app = web.Application()
        self.mount(app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.settings.metrics_host, port).start()
            bound = int(runner.addresses[0][1])
            log.info("health and metrics on %s:%d", self.settings.metrics_host, bound)
            yield bound
        finally:
            await runner.cleanup()
