"""The endpoints on METRICS_PORT (Socket Mode, Discord), route labels, text log lines."""

from __future__ import annotations

import io
import logging

import aiohttp

from core.answer.pipeline import Pipeline
from core.ops.health import Health
from core.ops.logs import REDACTED, TextFormatter, bind_turn, unbind
from core.ops.metrics import Metrics, route_of
from core.turn.runner import TurnRunner
from core.turn.types import Turn
from tests.conftest import MakeSettings


async def test_metrics_port_serves_readiness_with_the_platform_connection(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings(metrics_port=0)  # any free port
    connected = False

    async def platform_up() -> bool:
        return connected

    metrics = Metrics()  # built first: the pipeline's Redis client reports to it
    async with (
        await Pipeline.create(settings, metrics=metrics) as pipeline,
        TurnRunner(pipeline, interval_s=0, grace_s=0) as runner,
    ):
        health = Health.watching(runner, settings, metrics, connected=platform_up)
        async with health.serving() as port, aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{port}"

            async def get(path: str) -> tuple[int, str]:
                async with http.get(base + path) as response:
                    return response.status, await response.text()

            assert await get("/healthz") == (200, "ok\n")
            status, body = await get("/readyz")
            assert status == 503 and '"platform": false' in body
            connected = True
            status, body = await get("/readyz")
            assert status == 200 and '"platform": true' in body
            status, body = await get("/metrics")
            assert status == 200
            assert "threadbot_answers_in_flight 0.0" in body
            # The readiness probe's PINGs went through the measured client.
            assert 'threadbot_redis_command_seconds_count{command="PING"} 2.0' in body


def test_route_labels_never_carry_ids_or_tokens() -> None:
    assert route_of("POST", "/api/chat.postMessage") == "chat.postMessage"
    assert (
        route_of("PATCH", "/api/v10/channels/1234/messages/5678")
        == "PATCH /channels/{id}/messages/{id}"
    )
    token = "aW50ZXJhY3Rpb246MTIzNDU2Nzg5"
    assert (
        route_of("PATCH", f"/api/v10/webhooks/42/{token}/messages/@original")
        == "PATCH /webhooks/{id}/{id}/messages/@original"
    )


def test_text_lines_name_the_session_and_never_a_secret() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TextFormatter(["xoxb-very-secret"]))
    logger = logging.getLogger("tests.ops.text")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        token = bind_turn(Turn("slack", "slack:T1:C1:1.0", "q", event_key="slack:Ev1"))
        logger.warning("calling with xoxb-very-secret")
        unbind(token)
        logger.warning("outside a turn")
    finally:
        logger.removeHandler(handler)
    inside, outside = stream.getvalue().splitlines()
    assert inside.endswith(f"calling with {REDACTED} [slack:T1:C1:1.0]")
    assert outside.endswith("tests.ops.text: outside a turn")


def test_harmless_library_noise_never_reaches_the_log() -> None:
    from core.ops.logs import configure_logging
    from core.settings import Settings

    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        configure_logging(Settings(_env_file=None), level=logging.INFO, stream=stream)  # type: ignore[call-arg]
        logging.getLogger("discord.client").warning(
            "PyNaCl is not installed, voice will NOT be supported"
        )
        logging.getLogger("discord.client").warning(
            "davey is not installed, voice will NOT be supported"
        )
        logging.getLogger("bots.slack.bot").warning(
            "As you gave `client` as well, `token` will be unused."
        )
        logging.getLogger("faiss.loader").info("Loading faiss with AVX512 support.")
        logging.getLogger("bots.slack.bot").warning("a real warning")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    assert stream.getvalue().splitlines()[-1].endswith("a real warning")
    assert len(stream.getvalue().splitlines()) == 1
