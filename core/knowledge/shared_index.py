"""One index for every worker: `threadbot ingest` publishes its index to Redis in parts.

Keys (`{ns}` is `REDIS_NAMESPACE`; a version is the folder name the ingest wrote, `v-<ns>`):

| key | type | what |
|---|---|---|
| `{ns}index:live` | string | the version every worker serves; set last, once all its parts are in |
| `{ns}index:versions` | set | the versions with keys in Redis, so that old ones are deleted |
| `{ns}index:{version}:manifest` | string | JSON: each file's size, sha256 and parts; the index |
| `{ns}index:{version}:{file}:{i}` | string | part `i` of a file of the version folder, raw bytes |

Only single-key commands: on a Redis Cluster the parts of a file land in different hash slots,
which spreads the memory over the nodes. The files are the local index's own (numbers and
JSON, never a pickle); a worker checks each file's size and sha256 before it loads anything.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from core.errors import SharedIndexError
from core.knowledge.retrieval import Index, live_version

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from core.settings import Settings

log = logging.getLogger(__name__)

FORMAT = 1
_VERSION = re.compile(r"v-[0-9]{1,24}")
# A file of a version folder: `index.faiss`, `docstore.json`, `bm25/vocab.index.json`; nothing
# that could leave the folder, and no suffix that anything would unpickle.
_FILE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*(/[A-Za-z0-9_-][A-Za-z0-9_.-]*)?")
_SUFFIXES = (".faiss", ".json", ".npy")


@dataclass(frozen=True)
class SharedFile:
    name: str  # relative to the version folder, `/`-separated
    size: int
    sha256: str
    parts: int


@dataclass(frozen=True)
class Manifest:
    """What a published version holds, and how it was cut into parts."""

    version: str
    files: tuple[SharedFile, ...]
    part_bytes: int
    embeddings: str
    passages: int
    created: str  # when the index was built
    published: str

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def parts(self) -> int:
        return sum(f.parts for f in self.files)

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, **asdict(self)})

    @classmethod
    def from_json(cls, raw: bytes | str) -> Manifest:
        """The manifest in `raw`; `SharedIndexError` for anything a publisher would not write."""
        try:
            data = json.loads(raw)
            if data.pop("format") != FORMAT:
                raise ValueError("another format")
            files = tuple(SharedFile(**f) for f in data.pop("files"))
            found = cls(files=files, **data)
            found._check()
        except (ValueError, TypeError, KeyError, AttributeError, ZeroDivisionError) as exc:
            raise SharedIndexError(f"the manifest is malformed ({exc})") from exc
        return found

    def _check(self) -> None:
        _check_version(self.version)
        if not isinstance(self.part_bytes, int) or self.part_bytes < 1:
            raise ValueError("no part size")
        for f in self.files:
            safe = _FILE.fullmatch(f.name) and f.name.endswith(_SUFFIXES)
            if not safe or not isinstance(f.size, int) or not isinstance(f.sha256, str):
                raise ValueError(f"an unexpected file: {str(f.name)[:80]!r}")
            if f.parts != math.ceil(f.size / self.part_bytes):
                raise ValueError(f"{f.name} in {f.parts} parts")
        names = {f.name for f in self.files}
        if len(names) != len(self.files) or not {"index.faiss", "docstore.json"} <= names:
            raise ValueError("no index listed")


class _Keys:
    def __init__(self, namespace: str) -> None:
        self.live = f"{namespace}index:live"
        self.versions = f"{namespace}index:versions"
        self._ns = namespace

    def manifest(self, version: str) -> str:
        return f"{self._ns}index:{version}:manifest"

    def part(self, version: str, name: str, i: int) -> str:
        return f"{self._ns}index:{version}:{name}:{i}"


def _check_version(version: str) -> str:
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise SharedIndexError(f"{str(version)[:40]!r} is not an index version")
    return version


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


async def live(redis: Redis, settings: Settings) -> str | None:
    """The version Redis names live, or None when nothing was published."""
    value = await redis.get(_Keys(settings.index_namespace).live)
    return None if value is None else _check_version(_text(value))


async def manifest(redis: Redis, settings: Settings, version: str) -> Manifest:
    raw = await redis.get(_Keys(settings.index_namespace).manifest(version))
    if raw is None:
        raise SharedIndexError(f"no manifest for {version}")
    found = Manifest.from_json(raw)
    if found.version != version:
        raise SharedIndexError(f"the manifest of {version} describes {found.version}")
    return found


async def publish_live(redis: Redis, settings: Settings) -> Manifest | None:
    """Publish the local live index, unless Redis serves it already (then None)."""
    version = live_version(settings.index_dir)
    if version is None or version == await live(redis, settings):
        return None
    index = await asyncio.to_thread(Index.load, settings.index_dir, version)
    if index is None:
        return None
    return await publish(redis, settings, index, version)


async def publish_to_workers(settings: Settings) -> Manifest | None:
    """`threadbot ingest`'s last step: publish the local live index to `REDIS_URL` (None when
    Redis serves it already). Raises `SharedIndexError` for any failure, Redis's included."""
    from core.store.redis_client import connect

    redis = connect(settings)
    try:
        return await publish_live(redis, settings)
    except RedisError as exc:
        raise SharedIndexError(str(exc)) from exc
    finally:
        await redis.aclose()


async def publish(redis: Redis, settings: Settings, index: Index, version: str) -> Manifest:
    """Upload the folder `version` (which holds `index`) in parts, then name it live.

    The manifest goes first and the live pointer last, so a worker never sees a version whose
    parts are not all in. The version it replaces stays one round (a worker may be downloading
    it); older ones are deleted.
    """
    keys = _Keys(settings.index_namespace)
    folder = settings.index_dir / _check_version(version)
    part_bytes = settings.index_part_bytes
    files = await asyncio.to_thread(_describe, folder, part_bytes)
    published = datetime.now(UTC).isoformat(timespec="seconds")
    found = Manifest(
        version, files, part_bytes, index.embeddings_name, len(index.chunks), index.created,
        published,
    )  # fmt: skip
    await redis.sadd(keys.versions, version)
    await redis.set(keys.manifest(version), found.to_json())
    for f in files:
        for i in range(f.parts):
            data = await asyncio.to_thread(_read_part, folder / f.name, i, part_bytes)
            await redis.set(keys.part(version, f.name, i), data)
    previous = await live(redis, settings)
    await redis.set(keys.live, version)
    await _prune(redis, keys, version, previous)
    return found


def _describe(folder: Path, part_bytes: int) -> tuple[SharedFile, ...]:
    files = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        with path.open("rb") as handle:
            digest = hashlib.file_digest(handle, "sha256")
        size = path.stat().st_size
        name = path.relative_to(folder).as_posix()
        files.append(SharedFile(name, size, digest.hexdigest(), math.ceil(size / part_bytes)))
    return tuple(files)


def _read_part(path: Path, i: int, part_bytes: int) -> bytes:
    with path.open("rb") as handle:
        handle.seek(i * part_bytes)
        return handle.read(part_bytes)


def _stamp(version: str) -> int:
    return int(version.removeprefix("v-"))


async def _prune(redis: Redis, keys: _Keys, version: str, previous: str | None) -> None:
    """Delete the versions other than `version` and `previous`; one newer than `version` is
    being published by another ingest right now, and stays."""
    for member in await redis.smembers(keys.versions):
        old = _text(member)
        if (
            old in {version, previous}
            or not _VERSION.fullmatch(old)
            or _stamp(old) > _stamp(version)
        ):
            continue
        raw = await redis.get(keys.manifest(old))
        try:
            files = Manifest.from_json(raw).files if raw is not None else ()
        except SharedIndexError:
            files = ()
        async with redis.pipeline(transaction=False) as batch:  # one key a command
            for f in files:
                for i in range(f.parts):
                    batch.delete(keys.part(old, f.name, i))
            batch.delete(keys.manifest(old))
            await batch.execute()
        await redis.srem(keys.versions, old)


async def download(redis: Redis, settings: Settings, found: Manifest) -> Path:
    """Fetch every part of `found` into a new version folder under `index_dir`, checking each
    file's size and sha256; the folder appears whole or not at all. Disk work runs off the loop.
    """
    keys = _Keys(settings.index_namespace)
    root = settings.index_dir.resolve()
    target = root / found.version
    staging = root / f".download-{os.getpid()}-{time.time_ns()}"
    await asyncio.to_thread(staging.mkdir, parents=True)
    try:
        for f in found.files:
            out = await asyncio.to_thread(_Writer, staging / f.name)
            try:
                for i in range(f.parts):
                    data = await redis.get(keys.part(found.version, f.name, i))
                    if not isinstance(data, bytes):  # None: never written, or deleted
                        raise SharedIndexError(f"part {i} of {f.name} is missing")
                    if len(data) > found.part_bytes or out.size + len(data) > f.size:
                        raise SharedIndexError(f"part {i} of {f.name} is too long")
                    await asyncio.to_thread(out.write, data)
            finally:
                await asyncio.to_thread(out.close)
            if out.size != f.size or out.sha256 != f.sha256:
                raise SharedIndexError(f"{f.name} does not match its sha256")
        await asyncio.to_thread(_settle, staging, target)
    finally:
        await asyncio.to_thread(shutil.rmtree, staging, True)
    return target


class _Writer:
    """One file being downloaded: written and hashed as its parts arrive."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = path.open("xb")
        self._digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self._handle.write(data)
        self._digest.update(data)
        self.size += len(data)

    def close(self) -> None:
        self._handle.close()

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()


def _settle(staging: Path, target: Path) -> None:
    try:
        staging.rename(target)
    except OSError:
        # Another process sharing this data folder downloaded the same version first.
        if not target.is_dir():
            raise
