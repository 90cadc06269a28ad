"""A `threadbot slack` process on an empty data folder answers from an index another machine
published to Redis, and follows the next publish without a restart."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from core.knowledge.embeddings import LocalEmbeddings
from core.knowledge.ingest import ingest
from core.knowledge.retrieval import live_version
from core.knowledge.shared_index import Manifest, publish_live
from core.settings import Settings
from core.store.redis_client import connect
from tests.conftest import IsolatedSettings
from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.fake_slack import FakeSlack
from tests.faults.conftest import BotProcess, mention
from tests.valkey_server import Valkey

# Every bot is SIGTERMed at the end.
pytestmark = [pytest.mark.timeout(90), pytest.mark.kills]

CHANNEL = "C0FAULTS"
DOCS = {"pets.md": "# Office pets\n\nDogs are welcome on Fridays if they are friendly.\n"}
LUNCH = {"lunch.md": "# Lunch\n\nThe canteen serves soup from noon.\n"}


@pytest.fixture(scope="module")
def embeddings() -> LocalEmbeddings:
    return LocalEmbeddings()


def index_docs(
    settings: Settings, docs: dict[str, str], folder: Path, model: LocalEmbeddings
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in docs.items():
        (folder / name).write_text(text)
    ingest(settings, [folder], model, model.name, progress=False, add=True)


async def publish(
    settings: Settings, docs: dict[str, str], folder: Path, model: LocalEmbeddings
) -> Manifest:
    """`threadbot ingest` on the first machine: index `docs`, then publish to Redis."""
    await asyncio.to_thread(index_docs, settings, docs, folder, model)
    redis = connect(settings)
    try:
        published = await publish_live(redis, settings)
    finally:
        await redis.aclose()
    assert published is not None
    return published


async def logged(bot: BotProcess, text: str, within_s: float = 20) -> None:
    """Wait until the bot's log holds `text` (it runs in another process)."""
    deadline = time.monotonic() + within_s
    while text not in bot.log_path.read_text():
        assert time.monotonic() < deadline, bot.log_path.read_text()
        await asyncio.sleep(0.1)


def answer(fake: FakeSlack, thread_ts: str) -> str:
    shown = [m.text for m in fake.thread(CHANNEL, thread_ts)]
    return shown[-1] if shown else ""


async def test_a_bot_answers_from_another_machines_index_and_follows_its_next_publish(
    start_bot,
    fake_slack: FakeSlack,
    fake_openai: FakeOpenAI,
    valkey: Valkey,
    tmp_path: Path,
    embeddings: LocalEmbeddings,
) -> None:
    first = IsolatedSettings(
        threadbot_data_dir=tmp_path / "first", redis_url=valkey.url, embeddings="local"
    )
    one = await publish(first, DOCS, tmp_path / "docs", embeddings)
    fake_openai.script("Yes, on Fridays.")
    fake_openai.script("From noon.")
    bot = await start_bot(INDEX_POLL_S="0.2")  # its data folder is empty
    assert await bot.send(mention("can I bring my dog?", ts="300.000001", event_id="EvIDX1")) == 200
    await fake_slack.wait_for(
        lambda: "_Sources: pets.md › Office pets_" in answer(fake_slack, "300.000001")
    )
    assert "Dogs are welcome on Fridays" in str(fake_openai.requests[-1]["messages"])

    two = await publish(
        first, LUNCH, tmp_path / "docs", embeddings
    )  # the second ingest, while it runs
    await logged(bot, f"now answering from the shared index {two.version}")
    assert (
        await bot.send(mention("when is soup served?", ts="300.000002", event_id="EvIDX2")) == 200
    )
    await fake_slack.wait_for(lambda: "lunch.md › Lunch" in answer(fake_slack, "300.000002"))
    index_dir = tmp_path / "data" / "index"
    assert live_version(index_dir) == two.version
    assert sorted(p.name for p in index_dir.iterdir()) == ["current", one.version, two.version]
