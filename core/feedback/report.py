"""`threadbot report`: what was asked over a period, what the documents missed, which answers
people marked wrong, and which files were cited, built from the answer records.

Questions are grouped once, over the whole period, by meaning (`core.feedback.grouping`, the
bot's own embeddings); each section shows the groups its questions fall in, so a group keeps its
id (`g1` is the most asked) in every section and format.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

from core.errors import KnowledgeError, RetrievalFailed
from core.feedback.grouping import group, medoid, normalized
from core.knowledge.retrieval import printable
from core.knowledge.status import indexed_files
from core.settings import DEFAULT_BASE

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

    from core.feedback.records import AnswerRecord, Records, Used
    from core.settings import Settings

log = logging.getLogger(__name__)

EXAMPLES = 3  # questions shown under a group's representative
ANSWER_CHARS = 280  # of an answer shown beside its 👎
TABLE_ROWS = 20  # groups or files per section in the table and the page; CSV and JSON hold all
CITATION_SEPARATOR = " › "  # between a file and its heading in a citation (`Chunk.citation`)


@dataclass(frozen=True)
class QuestionGroup:
    """Questions asked in other words: `count` of them, represented by `question` (the one most
    like the others), with up to `EXAMPLES` other wordings, the most asked first."""

    group: str  # g1, g2, ...: the same group in every section
    count: int
    question: str
    examples: tuple[str, ...] = ()
    uncovered: int = 0  # questions the documents did not cover
    down: int = 0  # questions whose answer got at least one 👎
    up: int = 0  # questions whose answer got at least one 👍


@dataclass(frozen=True)
class Criticized:
    """An answer with at least one 👎: what was asked and answered, why (when said), the
    passages it was given, where and when."""

    id: str
    at: float
    question: str
    answer: str  # cut to ANSWER_CHARS
    down: int
    up: int
    reasons: tuple[str, ...]
    passages: tuple[Used, ...]
    place: str  # platform:workspace:channel, as far as known
    group: str


@dataclass(frozen=True)
class SourceUse:
    """A file of a knowledge base and how many answers of the period cited it (0: never)."""

    base: str
    source: str
    count: int
    down: int = 0  # of those answers, the ones with a 👎


@dataclass(frozen=True)
class Totals:
    questions: int = 0
    covered: int = 0
    covered_pct: int = 0  # rounded; 0 without questions
    up: int = 0  # 👍 votes
    down: int = 0  # 👎 votes


@dataclass(frozen=True)
class Report:
    since: float  # unix time
    until: float
    base: str | None  # `--kb`: only questions that searched this base
    bases: tuple[str, ...]  # whose files are listed under sources
    totals: Totals
    gaps: tuple[QuestionGroup, ...] = ()
    top: tuple[QuestionGroup, ...] = ()
    criticized: tuple[Criticized, ...] = ()
    cited: tuple[SourceUse, ...] = ()
    never_cited: tuple[SourceUse, ...] = ()
    notes: tuple[str, ...] = field(default=())  # e.g. a base whose index could not be read


def one_line(text: str) -> str:
    """`text` on one line, its runs of spaces and newlines made one space."""
    return " ".join(text.split())


def shortened(text: str, limit: int) -> str:
    text = one_line(text)
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut[limit // 2 :] else cut) + "…"


def place_of(record: AnswerRecord) -> str:
    return ":".join(part for part in (record.platform, record.workspace, record.channel) if part)


def when(at: float, *, minutes: bool = True) -> str:
    shape = "%Y-%m-%d %H:%M" if minutes else "%Y-%m-%d"
    return datetime.fromtimestamp(at, UTC).strftime(shape)


def period(report: Report) -> str:
    days = (report.until - report.since) / 86400
    span = f"{days:g} days" if days >= 1 else f"{days * 24:g} hours"
    scope = f"knowledge base {report.base}" if report.base else "every knowledge base"
    return f"{when(report.since)} to {when(report.until)} UTC ({span}), {scope}"


def summary(report: Report) -> str:
    t = report.totals
    noun = "question" if t.questions == 1 else "questions"
    return f"{t.questions} {noun}, {t.covered_pct}% covered, {t.up} 👍, {t.down} 👎"


def is_gap(record: AnswerRecord) -> bool:
    """A question the documents did not cover, or whose answer someone marked 👎."""
    return not record.covered or record.downs > 0


async def gather_report(
    records: Records,
    embeddings: Embeddings,
    settings: Settings,
    *,
    since: float,
    base: str | None = None,
    until: float | None = None,
) -> Report:
    """The report over the records from `since` (unix time) on, only those that searched
    `base` when given; files listed for `base`, else for every base the period searched and the
    default one. Raises `HistoryUnavailable` when the store does not answer, `RetrievalFailed`
    when the embedding model does not."""
    found = [r for r in await records.since(since) if base is None or base in r.bases]
    default = settings.knowledge_base or DEFAULT_BASE
    bases = (base,) if base is not None else tuple(sorted({default, *_bases(found)}))
    indexed: dict[str, list[str] | None] = {}
    notes = []
    for name in bases:
        try:
            files = await asyncio.to_thread(indexed_files, settings.for_base(name).index_dir)
        except (KnowledgeError, ValueError) as exc:
            notes.append(f"the index of the knowledge base {name!r} cannot be read ({exc})")
            files = None
        else:
            if files is None:
                notes.append(f"the knowledge base {name!r} has no index yet")
        indexed[name] = None if files is None else [f.source for f in files]
    report = await build_report(
        found, embeddings, since=since, until=time.time() if until is None else until,
        base=base, indexed=indexed,
    )  # fmt: skip
    return replace(report, notes=tuple(notes))


def _bases(records: Iterable[AnswerRecord]) -> set[str]:
    return {b for r in records for b in r.bases}


async def build_report(
    records: Sequence[AnswerRecord],
    embeddings: Embeddings,
    *,
    since: float,
    until: float,
    base: str | None = None,
    indexed: Mapping[str, Sequence[str] | None] | None = None,
) -> Report:
    """The report over `records` (already those of the period and base); `indexed` holds the
    files of each base reported (None: no index), for the files never cited."""
    indexed = dict(indexed or {})
    groups, vectors, rows = await _grouped(records, embeddings)
    gaps = [(r, row) for r, row in zip(records, rows, strict=True) if is_gap(r)]
    every = list(zip(records, rows, strict=True))
    criticized = tuple(
        _criticized(r, groups.of[row])
        for r, row in sorted(every, key=lambda pair: -pair[0].at)
        if r.downs > 0
    )
    cited, never = _sources(records, base, indexed)
    covered = sum(r.covered for r in records)
    totals = Totals(
        len(records), covered, round(100 * covered / len(records)) if records else 0,
        sum(r.ups for r in records), sum(r.downs for r in records),
    )  # fmt: skip
    return Report(
        since, until, base, tuple(indexed), totals, _view(gaps, groups, vectors),
        _view(every, groups, vectors), criticized, cited, never,
    )  # fmt: skip


def _criticized(record: AnswerRecord, gid: str) -> Criticized:
    reasons = tuple(
        one_line(v.reason) for v in record.votes if v.vote == "down" and v.reason.strip()
    )
    return Criticized(
        id=record.id,
        at=record.at,
        question=one_line(record.question),
        answer=shortened(record.answer, ANSWER_CHARS),
        down=record.downs,
        up=record.ups,
        reasons=reasons,
        passages=record.passages,
        place=place_of(record),
        group=gid,
    )


@dataclass
class _Groups:
    of: dict[int, str]  # row (a distinct question) -> group id
    texts: list[str]  # row -> the question as first written


async def _grouped(
    records: Sequence[AnswerRecord], embeddings: Embeddings
) -> tuple[_Groups, np.ndarray, list[int]]:
    """Each distinct question (case and spacing aside) embedded once, all of them grouped; the
    row of each record."""
    row_of: dict[str, int] = {}
    texts: list[str] = []
    rows = []
    for record in records:
        key = normalized(record.question)
        if key not in row_of:
            row_of[key] = len(texts)
            texts.append(one_line(record.question))
        rows.append(row_of[key])
    if not texts:
        return _Groups({}, []), np.zeros((0, 0), dtype=np.float32), rows
    # Blocking (the local model runs on the CPU; a remote one is a request): off the loop.
    try:
        found = await asyncio.to_thread(embeddings.embed_documents, texts)
    except Exception as exc:  # the embedding client's errors (network, key, 429) end here
        raise RetrievalFailed(f"embedding the questions failed: {exc!r}") from exc
    vectors = np.asarray(found, np.float32)
    weights = Counter(rows)
    grouped = group(vectors, [weights[i] for i in range(len(texts))])
    of = {row: f"g{n}" for n, g in enumerate(grouped, 1) for row in g.rows}
    log.info("%d questions (%d distinct) in %d groups", len(rows), len(texts), len(grouped))
    return _Groups(of, texts), vectors, rows


def _view(
    members: Sequence[tuple[AnswerRecord, int]], groups: _Groups, vectors: np.ndarray
) -> tuple[QuestionGroup, ...]:
    """The groups `members` (records, with their rows) fall in, the largest first."""
    by_group: dict[str, list[tuple[AnswerRecord, int]]] = defaultdict(list)
    for record, row in members:
        by_group[groups.of[row]].append((record, row))
    out = []
    for gid, held in by_group.items():
        weights = Counter(row for _, row in held)
        rows = sorted(weights, key=lambda r: (-weights[r], r))
        middle = medoid(vectors, rows, [weights[r] for r in rows])
        out.append(
            QuestionGroup(
                group=gid,
                count=len(held),
                question=groups.texts[middle],
                examples=tuple(groups.texts[r] for r in rows if r != middle)[:EXAMPLES],
                uncovered=sum(not r.covered for r, _ in held),
                down=sum(r.downs > 0 for r, _ in held),
                up=sum(r.ups > 0 for r, _ in held),
            )
        )
    return tuple(sorted(out, key=lambda g: (-g.count, int(g.group[1:]))))


def source_of(citation: str, known: Sequence[str]) -> str:
    """The file a citation (`source › heading`) points at: one of `known` (the base's files,
    as cited) when one matches, else what comes before the first separator."""
    for source in sorted(known, key=len, reverse=True):  # `a/b.md` before `a/b`
        if citation == source or citation.startswith(source + CITATION_SEPARATOR):
            return source
    return citation.split(CITATION_SEPARATOR, 1)[0]


def _sources(
    records: Sequence[AnswerRecord],
    base: str | None,
    indexed: Mapping[str, Sequence[str] | None],
) -> tuple[tuple[SourceUse, ...], tuple[SourceUse, ...]]:
    """The files cited, by how many answers cited them, and each indexed file none cited."""
    known = {name: [printable(s) for s in files or ()] for name, files in indexed.items()}
    answers: Counter[tuple[str, str]] = Counter()
    downs: Counter[tuple[str, str]] = Counter()
    for record in records:
        files = set()
        for passage in record.passages:
            # Records from a single base may leave the passage's base empty.
            where = passage.base or (record.bases[0] if len(record.bases) == 1 else "")
            if base is not None and where != base:
                continue
            files.add((where, source_of(passage.citation, known.get(where, ()))))
        answers.update(files)
        downs.update(files if record.downs > 0 else ())
    cited = tuple(
        SourceUse(b, s, n, downs[(b, s)])
        for (b, s), n in sorted(answers.items(), key=lambda item: (-item[1], item[0]))
    )
    never = tuple(
        SourceUse(name, source, 0)
        for name, files in known.items()
        for source in sorted(set(files))
        if (name, source) not in answers
    )
    return cited, never
