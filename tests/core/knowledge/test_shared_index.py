"""One index for every worker: published to a real Redis in parts, followed by workers whose
data folders start empty, with the real embeddings and retriever. The tests marked
`on_server_and_cluster` run again on a real 3-node Redis Cluster (`[cluster]`): the parts spread
over its nodes, and a worker with an empty data folder follows it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from core.answer.pipeline import Pipeline
from core.knowledge.embeddings import LocalEmbeddings
from core.knowledge.index_follower import IndexFollower
from core.knowledge.ingest import ingest
from core.knowledge.retrieval import CURRENT, Retriever, live_version
from core.knowledge.shared_index import Manifest, publish_live
from core.settings import Settings
from core.store.redis_client import connect
from tests.conftest import MakeSettings, on_server_and_cluster
from tests.core.knowledge.test_ingest import exploit

DOCS = {
    "queues.md": "# Queues\n\nSet ZQ_BACKLOG_MAX to bound how many jobs wait.\n",
    "pets.md": "# Office pets\n\nDogs are welcome on Fridays if they are friendly.\n",
}
PART_MB = 0.0005  # about 500 bytes: the files of a small index come in several parts


@pytest.fixture(scope="module")
def embeddings() -> LocalEmbeddings:
    return LocalEmbeddings()


@pytest.fixture
def first(make_settings: MakeSettings, tmp_path: Path) -> Settings:
    """The machine that runs `threadbot ingest`."""
    return make_settings(threadbot_data_dir=tmp_path / "first", index_part_mb=PART_MB)


@pytest.fixture
def worker(make_settings: MakeSettings, tmp_path: Path) -> Settings:
    """Another machine: the same Redis and namespace, an empty data folder."""
    return make_settings(threadbot_data_dir=tmp_path / "worker", index_poll_s=0.1)


@pytest.fixture
async def redis(first: Settings) -> AsyncIterator[Redis]:
    client = connect(first)
    yield client
    await client.aclose()


def retriever(settings: Settings, embeddings: LocalEmbeddings) -> Retriever:
    return Retriever(settings.index_dir, embeddings, embeddings.name, k=2, min_score=0.2)


async def ingest_and_publish(
    settings: Settings, docs: dict[str, str], embeddings: LocalEmbeddings, redis: Redis
) -> Manifest:
    folder = settings.data_dir.parent / f"docs-{len(docs)}"
    folder.mkdir(exist_ok=True)
    for name, text in docs.items():
        (folder / name).write_text(text)
    ingest(settings, [folder], embeddings, embeddings.name, progress=False, force=True)
    published = await publish_live(redis, settings)
    assert published is not None
    return published


async def sources(found: Retriever, question: str) -> list[str]:
    return [p.chunk.source for p in await found.search(question)]


async def index_keys(redis: Redis, settings: Settings, version: str) -> list[bytes]:
    return [k async for k in redis.scan_iter(f"{settings.redis_namespace}index:{version}:*")]


@on_server_and_cluster
async def test_a_worker_with_an_empty_data_folder_answers_from_the_published_index(
    first, worker, embeddings, redis
):
    published = await ingest_and_publish(first, DOCS, embeddings, redis)
    version = published.version
    assert version == live_version(first.index_dir)
    assert await redis.get(f"{first.redis_namespace}index:live") == version.encode()
    assert published.passages == 2 and published.embeddings == embeddings.name
    assert published.parts > len(published.files)  # the larger files came in several parts
    for f in published.files:
        for i in range(f.parts):
            part = await redis.get(f"{first.redis_namespace}index:{version}:{f.name}:{i}")
            assert part is not None and len(part) <= first.index_part_bytes
    assert await publish_live(redis, first) is None  # already served: nothing sent again

    found = retriever(worker, embeddings)
    assert await IndexFollower(redis, worker, found).sync()
    assert await sources(found, "can I bring my dog?") == ["pets.md"]
    assert live_version(worker.index_dir) == version
    for f in published.files:  # the same files, byte for byte
        mine = (worker.index_dir / CURRENT / f.name).read_bytes()
        assert mine == (first.index_dir / version / f.name).read_bytes()
    assert sorted(p.name for p in worker.index_dir.iterdir()) == [CURRENT, version]

    # A restart on the same live version loads the local copy: the parts are not needed.
    for key in await index_keys(redis, first, version):
        if not key.endswith(b":manifest"):
            await redis.delete(key)
    again = retriever(worker, embeddings)
    assert await IndexFollower(redis, worker, again).sync()
    assert await sources(again, "ZQ_BACKLOG_MAX") == ["queues.md"]


async def test_with_nothing_published_the_local_index_is_used(first, embeddings, redis):
    folder = first.data_dir / "docs"
    folder.mkdir(parents=True)
    (folder / "pets.md").write_text(DOCS["pets.md"])
    ingest(first, [folder], embeddings, embeddings.name, progress=False)  # no publish
    found = retriever(first, embeddings)
    assert not await IndexFollower(redis, first, found).sync()
    assert await sources(found, "can I bring my dog?") == ["pets.md"]


@on_server_and_cluster
async def test_a_new_publish_is_followed_and_the_one_before_kept_one_round(
    first, worker, embeddings, redis
):
    one = await ingest_and_publish(first, DOCS, embeddings, redis)
    found = retriever(worker, embeddings)
    follower = IndexFollower(redis, worker, found)
    assert await follower.sync()
    lunch = {**DOCS, "lunch.md": "# Lunch\n\nThe canteen serves soup from noon.\n"}
    two = await ingest_and_publish(first, lunch, embeddings, redis)
    assert await sources(found, "when is the soup served?") == []  # not polled yet
    assert await follower.sync()
    assert found.version == two.version
    assert await sources(found, "when is the soup served?") == ["lunch.md"]
    assert await index_keys(redis, first, one.version)  # kept: a worker may be downloading it

    three = await ingest_and_publish(first, DOCS, embeddings, redis)
    assert await index_keys(redis, first, one.version) == []
    assert await index_keys(redis, first, two.version)
    members = await redis.smembers(f"{first.redis_namespace}index:versions")
    assert members == {two.version.encode(), three.version.encode()}


async def replace_file(
    redis: Redis, settings: Settings, version: str, name: str, data: bytes, **change: Any
) -> str:
    """Publish a copy of `version` where file `name` holds `data`, as an attacker could; live."""
    ns = settings.redis_namespace
    manifest = json.loads(await redis.get(f"{ns}index:{version}:manifest"))
    planted = f"v-{int(version[2:]) + 1}"
    part = manifest["part_bytes"]
    for f in manifest["files"]:
        blob = (
            data if f["name"] == name else (settings.index_dir / version / f["name"]).read_bytes()
        )
        if f["name"] == name:
            f |= {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            f["parts"] = math.ceil(len(data) / part)
        for i in range(f["parts"]):
            await redis.set(f"{ns}index:{planted}:{f['name']}:{i}", blob[i * part : (i + 1) * part])
    manifest |= {"version": planted, **change}
    await redis.set(f"{ns}index:{planted}:manifest", json.dumps(manifest))
    await redis.set(f"{ns}index:live", planted)
    return planted


@pytest.mark.parametrize("fault", ["missing", "corrupted", "redis down"])
async def test_a_failed_download_keeps_the_old_index_and_is_tried_again(
    fault, first, worker, embeddings, redis, caplog, make_settings, tmp_path
):
    one = await ingest_and_publish(first, DOCS, embeddings, redis)
    found = retriever(worker, embeddings)
    assert await IndexFollower(redis, worker, found).sync()
    lunch = {**DOCS, "lunch.md": "# Lunch\n\nThe canteen serves soup from noon.\n"}
    two = await ingest_and_publish(first, lunch, embeddings, redis)
    key = f"{first.redis_namespace}index:{two.version}:docstore.json:1"
    good = await redis.get(key)
    client = redis
    if fault == "missing":
        await redis.delete(key)
    elif fault == "corrupted":
        await redis.set(key, bytes([good[0] ^ 1]) + good[1:])  # the same length
    else:  # nothing listens there
        with socket_bound() as port:
            client = connect(make_settings(redis_url=f"redis://127.0.0.1:{port}/0"))
    follower = IndexFollower(client, worker, found)
    for _ in range(2):  # the next poll fails alike: still one line
        assert not await follower.sync()
    assert found.version == one.version
    assert await sources(found, "can I bring my dog?") == ["pets.md"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("cannot use the shared index") and one.version in warnings[0]
    assert sorted(p.name for p in worker.index_dir.iterdir()) == [CURRENT, one.version]

    await redis.set(key, good)  # the part is back (or Redis is): the next poll switches
    if client is not redis:
        await client.aclose()
        follower = IndexFollower(redis, worker, found)
    assert await follower.sync()
    assert await sources(found, "when is the soup served?") == ["lunch.md"]


class socket_bound:
    """A port bound but never listening: connecting to it is refused at once."""

    def __enter__(self) -> int:
        import socket

        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        return int(self._socket.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self._socket.close()


@on_server_and_cluster
async def test_a_planted_pickle_is_never_loaded(first, worker, embeddings, redis, tmp_path, caplog):
    one = await ingest_and_publish(first, DOCS, embeddings, redis)
    found = retriever(worker, embeddings)
    follower = IndexFollower(redis, worker, found)
    assert await follower.sync()
    marker = tmp_path / "pwned"
    # A pickle where numbers belong, with a matching sha256: it downloads, and is refused.
    planted = await replace_file(
        redis, first, one.version, "bm25/data.csc.index.npy", exploit(marker)
    )
    assert not await follower.sync()
    assert not marker.exists() and found.version == one.version
    assert await sources(found, "ZQ_BACKLOG_MAX") == ["queues.md"]
    assert "cannot use the shared index" in caplog.text and planted in caplog.text
    assert not await follower.sync()  # that version is not downloaded or loaded again
    # A file no index has, a path out of the folder, a bogus live pointer: refused unread.
    for name in ("index.pkl", "../escape.json"):
        manifest = json.loads(
            await redis.get(f"{first.redis_namespace}index:{one.version}:manifest")
        )
        manifest["files"].append({"name": name, "size": 1, "sha256": "0" * 64, "parts": 1})
        manifest["version"] = bad = f"v-{int(one.version[2:]) + 7}"
        await redis.set(f"{first.redis_namespace}index:{bad}:manifest", json.dumps(manifest))
        await redis.set(f"{first.redis_namespace}index:live", bad)
        assert not await follower.sync()
        assert "unexpected file" in caplog.text
    await redis.set(f"{first.redis_namespace}index:live", "../../etc")
    assert not await follower.sync()
    assert "is not an index version" in caplog.text
    assert not marker.exists() and found.version == one.version
    assert sorted(p.name for p in worker.index_dir.iterdir()) == sorted(
        [CURRENT, one.version, planted]
    )  # the planted version was written (hashes match) but never went live
    assert live_version(worker.index_dir) == one.version


async def test_an_index_of_other_embeddings_is_not_downloaded(
    first, worker, embeddings, redis, caplog
):
    one = await ingest_and_publish(first, DOCS, embeddings, redis)
    other = await replace_file(
        redis, first, one.version, "missing.json", b"", embeddings="openai:x"
    )
    found = retriever(worker, embeddings)
    assert not await IndexFollower(redis, worker, found).sync()
    assert found.version is None and not worker.index_dir.exists()
    assert f"cannot use the shared index {other}" in caplog.text
    assert "built with openai:x" in caplog.text


class Switched(logging.Handler):
    """Set when the follower logs that it switched: a background switch, awaited without polling."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("now answering from the shared index"):
            self.event.set()


@on_server_and_cluster
async def test_a_running_pipeline_switches_in_the_background(
    first, worker, embeddings, redis, caplog
):
    await ingest_and_publish(first, DOCS, embeddings, redis)
    async with await Pipeline.create(worker) as pipeline:
        assert pipeline.documents == 2  # fetched at start into the empty folder
        caplog.set_level(logging.INFO, "core.knowledge.index_follower")
        switched = Switched()
        logging.getLogger("core.knowledge.index_follower").addHandler(switched)
        try:
            lunch = {**DOCS, "lunch.md": "# Lunch\n\nThe canteen serves soup from noon.\n"}
            await ingest_and_publish(first, lunch, embeddings, redis)
            await asyncio.wait_for(switched.event.wait(), 10)  # INDEX_POLL_S=0.1
        finally:
            logging.getLogger("core.knowledge.index_follower").removeHandler(switched)
        assert pipeline.documents == 3


async def test_each_knowledge_base_is_published_and_followed_on_its_own(
    first, worker, embeddings, redis
):
    """A named base has its own folder and its own keys: a worker serving it follows it, and
    one serving the default base never sees its passages."""
    salaries = {"salaries.md": "# Salaries\n\nThe salary review happens in March.\n"}
    private = await ingest_and_publish(first.for_base("private"), salaries, embeddings, redis)
    public = await ingest_and_publish(first, DOCS, embeddings, redis)
    assert first.for_base("private").index_dir == first.data_dir / "kbs" / "private"
    live = f"{first.redis_namespace}kb:private:index:live"
    assert await redis.get(live) == private.version.encode()
    assert await redis.get(f"{first.redis_namespace}index:live") == public.version.encode()

    serving_private = retriever(worker.for_base("private"), embeddings)
    assert await IndexFollower(redis, worker.for_base("private"), serving_private).sync()
    assert await sources(serving_private, "when is the salary review?") == ["salaries.md"]
    serving_default = retriever(worker, embeddings)
    assert await IndexFollower(redis, worker, serving_default).sync()
    assert "salaries.md" not in await sources(serving_default, "when is the salary review?")
    assert await sources(serving_default, "can I bring my dog?") == ["pets.md"]
