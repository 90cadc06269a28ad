"""`threadbot ingest`: documents in, a searchable index out; only what changed is embedded.

Files are read one at a time and passages embedded shortest first, each batch committed to the
embedding cache as soon as it is computed: memory stays bounded, a killed ingest resumes where
it stopped, and an unchanged re-ingest embeds and writes nothing.

Each text is indexed once: a passage whose text (spacing aside) another file also has is kept
from the page a reader would open (HTML over its source copy, then the cleaner, shorter path),
and the others are kept aside as repeats, so they come back when that file is removed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import numpy as np
from langchain_text_splitters import RecursiveCharacterTextSplitter

from core.errors import IndexMismatch, IngestRefused, KnowledgeError, NothingToIndex
from core.knowledge.embed_cache import EmbeddingCache, passage_hash
from core.knowledge.extract import read_sections
from core.knowledge.keywords import KeywordIndex
from core.knowledge.retrieval import Chunk, FileEntry, Index, Repeat
from core.knowledge.sections import FENCE_LINE
from core.knowledge.sources import SUFFIXES, UNDECODABLE, SourceFile, find_files

if TYPE_CHECKING:
    import faiss
    from langchain_core.embeddings import Embeddings

    from core.settings import Settings

log = logging.getLogger(__name__)

_SPLIT_VERSION = 4  # bump when extraction or splitting changes what chunks a file gives
_MAX_CONTEXT_CHARS = 200  # of the heading path put before a passage's text
_FAISS_BLOCK = 4096  # vectors moved from the cache to the index at once
# A new index under half the size of a live one this large is refused without --force:
# a wrong path must not throw away hours of embedding. A smaller index rebuilds in seconds.
_SHRINK_GUARD_MIN = 100

TokenCounter = Callable[[list[str]], list[int]]
Read = list[tuple[FileEntry, list[Chunk]]]  # each file with all its passages, in order
_PAGES = frozenset({".html", ".htm"})


@dataclass
class IngestReport:
    files: int = 0  # files read in this run and indexed
    chunks: int = 0  # passages in the index afterwards
    embedded: int = 0  # distinct passage texts embedded in this run
    reused: int = 0  # passages whose vectors were already in the cache (the rest are new)
    removed: int = 0  # files taken out of the index
    repeats: int = 0  # passages left out: their text is in the index from another passage
    written: bool = True  # False: the index already held exactly this
    skipped: dict[str, list[str]] = field(default_factory=dict)  # reason -> sources
    failed: dict[str, str] = field(default_factory=dict)  # source -> error


@dataclass(frozen=True)
class _Window:
    """The embedding model's input limit, so no passage is embedded only in part."""

    count: TokenCounter
    max_tokens: int


def _recipe(settings: Settings, embeddings_name: str) -> str:
    # How a file is cut: chunks are reused only when all of this is unchanged.
    return (
        f"{_SPLIT_VERSION}:{settings.chunk_size_chars}:{settings.chunk_overlap_chars}:"
        f"{embeddings_name}"
    )


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _fit(chunks: list[Chunk], window: _Window, overlap: int) -> list[Chunk]:
    """Cut again every chunk whose text, headings included, exceeds the model's window."""
    out: list[Chunk] = []
    counts = window.count([c.indexed_text for c in chunks]) if chunks else []
    for chunk, tokens in zip(chunks, counts, strict=True):
        if tokens <= window.max_tokens or len(chunk.text) < 100:
            out.append(chunk)
            continue
        size = max(100, int(len(chunk.text) * window.max_tokens / tokens * 0.85))
        splitter = RecursiveCharacterTextSplitter(
            chunk_size=size, chunk_overlap=min(overlap, size // 5)
        )
        pieces = _split(splitter, chunk.text)
        if len(pieces) < 2:
            out.append(chunk)
            continue
        smaller = [
            Chunk(p, chunk.source, chunk.location, chunk.file_hash, chunk.context) for p in pieces
        ]
        out += _fit(smaller, window, overlap)
    return out


def _read(
    file: SourceFile, digest: str, splitter: RecursiveCharacterTextSplitter,
    window: _Window | None, overlap: int,
) -> list[Chunk]:  # fmt: skip
    chunks = []
    for section in read_sections(file.path):
        context = section.headings[-_MAX_CONTEXT_CHARS:]
        for piece in _split(splitter, section.text):
            chunks.append(Chunk(piece, file.source, section.location, digest, context))
    return _fit(chunks, window, overlap) if window is not None else chunks


def _split(splitter: RecursiveCharacterTextSplitter, text: str) -> list[str]:
    """`text` in passages, a code block cut between two of them closed at the end of the first
    and opened again (same fence, same language) at the start of the next: a passage shown
    alone never runs its code into the next one, nor reads a `# comment` as a heading."""
    fences = [(m.start(), m.group(0).strip()) for m in FENCE_LINE.finditer(text)]
    out: list[str] = []
    start = 0
    for piece in (p.strip() for p in splitter.split_text(text)):
        if not piece:
            continue
        at = text.find(piece, start)
        start = at + 1 if at >= 0 else start
        before = [fence for position, fence in fences if position < at]
        if at >= 0 and len(before) % 2:  # it starts inside a code block, indented as there
            indent = text[text.rfind("\n", 0, at) + 1 : at]
            piece = f"{before[-1]}\n{indent if indent.isspace() else ''}{piece}"
        markers = FENCE_LINE.findall(piece)  # ``` or ~~~, one a fence
        if len(markers) % 2:  # it ends inside a code block: closed with the marker it opened
            piece = f"{piece}\n{markers[-1]}"
        out.append(piece)
    return out


def _window(embeddings: Embeddings) -> _Window | None:
    from core.knowledge.embeddings import MAX_TOKENS, LocalEmbeddings

    if isinstance(embeddings, LocalEmbeddings):
        return _Window(embeddings.count_tokens, MAX_TOKENS)
    return None  # hosted models read 8k tokens: far more than a chunk


def _load_previous(settings: Settings) -> Index | None:
    try:
        return Index.load(settings.index_dir, with_repeats=True)
    except IndexMismatch as exc:
        log.warning("ignoring the previous index (%s); everything is read again", exc)
        return None


def _under(path: str, target: Path) -> bool:
    return path == str(target) or path.startswith(str(target).rstrip(os.sep) + os.sep)


def ingest(
    settings: Settings,
    paths: list[Path],
    embeddings: Embeddings,
    embeddings_name: str,
    *,
    progress: bool = True,
    add: bool = False,
    force: bool = False,
) -> IngestReport:
    """Index exactly `paths` (or, with `add`, these paths besides what is indexed) and go live.

    A file whose path and content hash match the live index keeps its chunks without being read
    again; a passage whose vector is in the cache is not embedded again.
    """
    previous = _load_previous(settings)
    recipe = _recipe(settings, embeddings_name)
    report = IngestReport()
    targets = [Path(os.path.abspath(p)) for p in paths]
    roots = [Path(e.root) for e in previous.files] if add and previous is not None else []
    found = _find(settings, targets, roots, report)
    if not found and not force:
        # Replacing a live index with an empty one is never what a typo in a path meant.
        raise NothingToIndex(f"no {', '.join(sorted(SUFFIXES))} files under the given paths")
    read = _read_all(
        settings, found, _reusable(previous, recipe), _window(embeddings), report, progress
    )
    report.files = len(read)
    if add and previous is not None:  # what is indexed elsewhere stays as it is
        fresh = {f.listed for f in found}
        kept = [
            (e, mine) for e, mine in _file_chunks(previous)
            if e.path not in fresh and not any(_under(e.path, t) for t in targets)
        ]  # fmt: skip
        read = kept + read
    return _commit(
        settings, previous, read, embeddings_name, recipe, report,
        embeddings=embeddings, progress=progress, force=force,
    )  # fmt: skip


def _find(
    settings: Settings, targets: list[Path], roots: list[Path], report: IngestReport
) -> list[SourceFile]:
    """The files to read under `targets`; what is skipped is noted in `report`."""
    found: list[SourceFile] = []
    for target in targets:
        # Added under a folder already indexed: cited as its siblings are.
        root = next((r for r in roots if _under(str(target), r)), None)
        result = find_files(
            target, root=root, ignore=settings.ingest_ignore,
            max_bytes=settings.ingest_max_file_bytes,
        )  # fmt: skip
        found += result.files
        for reason, sources in result.skipped.items():
            report.skipped.setdefault(reason, []).extend(sources)
    return found


def _read_all(
    settings: Settings, found: list[SourceFile], reusable: dict[tuple[str, str], list[Chunk]],
    window: _Window | None, report: IngestReport, progress: bool,
) -> Read:  # fmt: skip
    """Each file's passages: the live index's for a file unchanged since, else read and cut.
    A file that cannot be read is noted in `report` and the rest go on."""
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=settings.chunk_size_chars, chunk_overlap=settings.chunk_overlap_chars
    )
    read: Read = []
    for file in _reading(found, progress):
        path = file.listed
        try:
            digest = _file_hash(file.path)
            if (path, digest) in reusable:
                mine = reusable[(path, digest)]
            else:
                mine = _read(file, digest, splitter, window, settings.chunk_overlap_chars)
        except UnicodeDecodeError:
            log.warning("skipping %s: not UTF-8 text", file.path)
            report.skipped.setdefault(UNDECODABLE, []).append(file.source)
            continue
        except Exception as exc:  # one broken file must not stop the rest
            log.warning("skipping %s: %s", file.path, exc)
            report.failed[file.source] = str(exc) or type(exc).__name__
            continue
        read.append((FileEntry(file.source, path, str(file.root), digest, len(mine)), mine))
    return read


def _reading(files: list[SourceFile], shown: bool) -> Iterator[SourceFile]:
    """A bar from the first file on: reading a large docs folder takes minutes before the first
    passage is embedded, and a silent minute looks like a hang."""
    from tqdm import tqdm

    with tqdm(files, desc="reading files", unit="file", disable=not shown or not files) as bar:
        yield from bar


def remove(settings: Settings, paths: list[Path], *, force: bool = False) -> IngestReport:
    """Take the files at or under `paths` (or cited as `paths`) out of the live index."""
    previous = _load_previous(settings)
    if previous is None:
        raise NothingToIndex(f"no index in {settings.index_dir} to remove files from")
    targets = [Path(os.path.abspath(p)) for p in paths]
    names = {p.as_posix() for p in paths}

    def gone(entry: FileEntry) -> bool:
        return entry.source in names or any(_under(entry.path, t) for t in targets)

    report = IngestReport(removed=sum(gone(e) for e in previous.files))
    if not report.removed:
        raise NothingToIndex(f"nothing indexed at {', '.join(map(str, paths))}")
    # A repeat of a passage removed here comes back from its own file. Its vector is in the
    # embedding cache: repeats are embedded too, so that no model is needed now.
    read = [(e, mine) for e, mine in _file_chunks(previous) if not gone(e)]
    return _commit(
        settings, previous, read, previous.embeddings_name, previous.recipe, report,
        embeddings=None, progress=False, force=force, shrinking=True,
    )  # fmt: skip


def _file_chunks(index: Index) -> Read:
    """Each file with all its passages in file order, its repeats back in their places.

    An index lists a file's chunks together, in file order; `passages` counts them.
    """
    repeats: dict[str, list[Repeat]] = {}
    for repeat in index.repeats:
        repeats.setdefault(repeat.path, []).append(repeat)
    out: Read = []
    start = 0
    for entry in index.files:
        mine = index.chunks[start : start + entry.passages]
        start += entry.passages
        for repeat in sorted(repeats.get(entry.path, []), key=lambda r: r.at):
            mine.insert(repeat.at, repeat.chunk)
        out.append((replace(entry, passages=len(mine)), mine))
    return out


def _reusable(previous: Index | None, recipe: str) -> dict[tuple[str, str], list[Chunk]]:
    if previous is None or previous.recipe != recipe:
        return {}
    return {(entry.path, entry.hash): mine for entry, mine in _file_chunks(previous)}


def text_key(text: str) -> bytes:
    """What makes two passages the same text: their words, spacing and Unicode forms aside."""
    words = " ".join(unicodedata.normalize("NFKC", text).split())
    return hashlib.blake2b(words.encode("utf-8"), digest_size=16).digest()


def _preference(source: str) -> tuple[bool, int, int, int, str]:
    """Which file's copy of a text is kept (least first): the page a reader opens (HTML) over its
    source copy, then a path outside `_` and `.` folders (`_sources`, `_build`), with one suffix
    (not `.rst.txt`), fewer folders, shorter."""
    path = PurePosixPath(source)
    hidden = sum(part.startswith(("_", ".")) for part in path.parts[:-1])
    return (path.suffix.lower() not in _PAGES, hidden, len(path.suffixes), len(path.parts), source)


def _once(read: Read) -> tuple[list[FileEntry], list[Chunk], list[Repeat]]:
    """The files with the passages the index holds, each text once, and the repeats left out.

    A text is kept where it first appears in the preferred file (`_preference`); files and
    their passages stay in the order given.
    """
    order = sorted(range(len(read)), key=lambda i: _preference(read[i][0].source))
    keeper: dict[bytes, tuple[int, int]] = {}
    for i in order:
        for at, chunk in enumerate(read[i][1]):
            keeper.setdefault(text_key(chunk.text), (i, at))
    entries: list[FileEntry] = []
    chunks: list[Chunk] = []
    repeats: list[Repeat] = []
    for i, (entry, mine) in enumerate(read):
        kept = 0
        for at, chunk in enumerate(mine):
            if keeper[text_key(chunk.text)] == (i, at):
                chunks.append(chunk)
                kept += 1
            else:
                repeats.append(Repeat(chunk, entry.path, at))
        entries.append(replace(entry, passages=kept))
    return entries, chunks, repeats


def _commit(
    settings: Settings, previous: Index | None, read: Read, embeddings_name: str, recipe: str,
    report: IngestReport, *, embeddings: Embeddings | None, progress: bool, force: bool,
    shrinking: bool = False,
) -> IngestReport:  # fmt: skip
    entries, chunks, repeats = _once(read)
    del read
    report.chunks, report.repeats = len(chunks), len(repeats)
    live = len(previous.chunks) if previous is not None else 0
    if not force and live and (not chunks or (
        not shrinking and live >= _SHRINK_GUARD_MIN and len(chunks) < live / 2
    )):  # fmt: skip
        raise IngestRefused(
            f"the new index would hold {len(chunks)} passages where the live one holds {live}; "
            "nothing was replaced (use --force to replace it anyway)"
        )
    if (
        previous is not None
        and previous.embeddings_name == embeddings_name
        and previous.recipe == recipe
        and previous.files == entries
        and previous.chunks == chunks
        and previous.repeats == repeats
    ):
        report.reused, report.written = len(chunks), False
        return report
    cache = EmbeddingCache(settings.data_dir, embeddings_name)
    try:
        hashes = [passage_hash(c.indexed_text) for c in chunks]
        # A repeat's vector is kept too (it is embedded when its headings differ from the kept
        # passage's): when the file kept goes, it comes back without a model at hand.
        aside = [passage_hash(r.chunk.indexed_text) for r in repeats]
        missing = cache.missing(hashes + aside)
        if previous is not None and missing and previous.embeddings_name == embeddings_name:
            missing = _seed(cache, previous, missing)
        todo = {
            h: c.indexed_text
            for h, c in zip(hashes + aside, chunks + [r.chunk for r in repeats], strict=True)
            if h in missing
        }
        if todo and embeddings is None:
            raise KnowledgeError(f"{len(todo)} vectors are missing from the embedding cache")
        if embeddings is not None:
            _embed(cache, embeddings, todo, settings.embedding_batch_size, progress)
        report.embedded = len(todo)
        report.reused = len(chunks) - sum(h in missing for h in hashes)
        index = Index(
            _vectors(cache, hashes),
            KeywordIndex.build([c.indexed_text for c in chunks]),
            chunks,
            embeddings_name,
            entries,
            recipe,
            datetime.now(UTC).isoformat(timespec="seconds"),
            repeats,
        )
        index.save(settings.index_dir)
        cache.keep_only(hashes + aside)
    finally:
        cache.close()
    return report


def _seed(cache: EmbeddingCache, previous: Index, missing: set[bytes]) -> set[bytes]:
    """Vectors the live index holds but the cache lost (deleted): copied, not embedded again."""
    rows = {passage_hash(c.indexed_text): i for i, c in enumerate(previous.chunks)}
    found = [h for h in missing if h in rows]
    if found:
        cache.put(found, previous.vectors.reconstruct_batch([rows[h] for h in found]))
    return missing - set(found)


def _embed(
    cache: EmbeddingCache, embeddings: Embeddings, todo: dict[bytes, str], batch: int,
    progress: bool,
) -> None:  # fmt: skip
    """Embed shortest first, committing each batch: the progress bar counts characters, which
    cost time in proportion, so its ETA holds while the passages grow longer."""
    from tqdm import tqdm

    order = sorted(todo, key=lambda h: len(todo[h]))
    total = sum(len(t) for t in todo.values())
    with tqdm(
        total=total, desc=f"embedding {len(order)} passages", unit="char", unit_scale=True,
        disable=not progress or not order,
    ) as bar:  # fmt: skip
        for start in range(0, len(order), batch):
            keys = order[start : start + batch]
            texts = [todo[h] for h in keys]
            cache.put(keys, np.asarray(embeddings.embed_documents(texts), dtype=np.float32))
            bar.update(sum(len(t) for t in texts))


def _vectors(cache: EmbeddingCache, hashes: list[bytes]) -> faiss.Index:
    import faiss

    vectors: faiss.Index | None = None
    for start in range(0, len(hashes), _FAISS_BLOCK):
        block = cache.get(hashes[start : start + _FAISS_BLOCK])
        if vectors is None:
            vectors = faiss.IndexFlatIP(block.shape[1])
        vectors.add(block)
    return vectors if vectors is not None else faiss.IndexFlatIP(1)
