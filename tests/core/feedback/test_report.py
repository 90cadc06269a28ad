"""The report built from answer records: sections, sources, and each format's safety with text
other people wrote (`tests/bots/cli/test_report.py` runs it over a seeded week in Redis)."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import pytest

from core.answer.pipeline import Pipeline
from core.errors import RetrievalFailed
from core.feedback.formats import CSV_COLUMNS, REPORT_FORMATS, render_report, table, to_csv
from core.feedback.records import AnswerRecord, Used, Vote
from core.feedback.report import (
    Criticized,
    QuestionGroup,
    Report,
    SourceUse,
    Totals,
    build_report,
    gather_report,
    one_line,
    shortened,
    source_of,
)
from core.feedback.report_html import to_html
from core.knowledge.embeddings import LocalEmbeddings
from core.knowledge.ingest import ingest
from tests.conftest import MakeSettings

NOW = 1_800_000_000.0


def asked(
    id: str, question: str, *, covered: bool = True, votes: tuple[Vote, ...] = (), **kw: object
) -> AnswerRecord:
    fields: dict[str, object] = {
        "answer": "An answer.", "passages": (), "bases": ("default",), "platform": "slack",
        "workspace": "T1", "channel": "C1",
    }  # fmt: skip
    fields.update(kw)
    return AnswerRecord(id, NOW - 60, question, covered=covered, votes=votes, **fields)  # type: ignore[arg-type]


def down(voter: str, reason: str = "") -> Vote:
    return Vote(voter, "down", NOW, reason)


@pytest.fixture(scope="module")
def embeddings() -> LocalEmbeddings:
    return LocalEmbeddings()


async def test_nothing_asked_is_an_empty_report_in_every_format(
    embeddings: LocalEmbeddings,
) -> None:
    report = await build_report([], embeddings, since=NOW - 3600, until=NOW)
    assert report.totals == Totals() and report.top == report.gaps == ()
    for fmt in REPORT_FORMATS:
        assert render_report(report, fmt)
    assert "0 questions, 0% covered" in table(report)
    assert json.loads(render_report(report, "json"))["totals"]["questions"] == 0


async def test_sections_from_records(embeddings: LocalEmbeddings) -> None:
    keys = Used("keys.md › API keys › Rotating", 0.72, "default")
    up = Vote("slack:U1", "up", NOW)
    records = [
        asked("a", "How do I rotate an API key?", passages=(keys,)),
        asked("b", "how do i  ROTATE an api key?", passages=(keys,), votes=(up,)),
        asked("c", "What's for lunch?", covered=False, votes=(down("slack:U2", "no\nmenu"),)),
        asked("d", "Where is the lunch menu?", covered=False),
        asked(
            "e",
            "How do I rotate my API token?",
            passages=(keys, keys),
            votes=(down("slack:U3"), down("slack:U4", "wrong"), Vote("slack:U5", "up", NOW)),
        ),
    ]
    report = await build_report(
        records, embeddings, since=NOW - 3600, until=NOW,
        indexed={"default": ["keys.md", "lunch.md"]},
    )  # fmt: skip
    assert report.totals == Totals(questions=5, covered=3, covered_pct=60, up=2, down=3)
    rotate, lunch = report.top
    assert (rotate.group, rotate.count, rotate.up, rotate.down) == ("g1", 3, 2, 1)
    # The same text in another case and spacing is one wording, shown once.
    assert {rotate.question, *rotate.examples} == {
        "How do I rotate an API key?", "How do I rotate my API token?"
    }  # fmt: skip
    assert (lunch.count, lunch.uncovered, lunch.down) == (2, 2, 1)
    assert [(g.group, g.count) for g in report.gaps] == [("g2", 2), ("g1", 1)]
    assert report.gaps[1].question == "How do I rotate my API token?"
    newest = [c.id for c in report.criticized]
    assert newest == ["c", "e"]  # at the same time: as kept
    assert report.criticized[0].reasons == ("no menu",)  # on one line
    assert report.criticized[1].reasons == ("wrong",) and report.criticized[1].down == 2
    # Two passages of one file count the answer once.
    assert [(s.source, s.count, s.down) for s in report.cited] == [("keys.md", 3, 1)]
    assert [s.source for s in report.never_cited] == ["lunch.md"]


def test_a_citation_names_its_file() -> None:
    known = ["a/b.md", "a/b", "notes › draft.md"]
    assert source_of("a/b.md › Intro › Setup", known) == "a/b.md"
    assert source_of("a/b › Intro", known) == "a/b"
    assert source_of("notes › draft.md › Top", known) == "notes › draft.md"  # a › in a name
    assert source_of("gone.md › Old", known) == "gone.md"  # no longer indexed
    assert source_of("page.pdf", []) == "page.pdf"


def test_texts_are_shortened_on_a_word() -> None:
    assert one_line(" a\n\n b\tc ") == "a b c"
    assert shortened("short", 10) == "short"
    assert shortened("one two three four five", 12) == "one two…"
    assert len(shortened("x" * 50, 10)) == 10


def hostile_report() -> Report:
    """A report whose every text is something a browser, a terminal or a spreadsheet would run."""
    words = '<img src=x onerror="alert(1)"> & \x1b[2J'
    formula = '=HYPERLINK("x")'
    group = QuestionGroup("g1", 1, words, ("@SUM(A1)",), uncovered=1, down=1)
    criticized = Criticized(
        "h", NOW, words, words, 1, 0, (formula,), (Used(f"{words} › h", 0.5, "default"),),
        "slack:T1:C1", "g1",
    )  # fmt: skip
    return Report(
        NOW - 3600, NOW, None, ("default",), Totals(1, 0, 0, 0, 1), (group,), (group,),
        (criticized,), (SourceUse("default", words, 1, 1),), (SourceUse("default", "-rm.md", 0),),
    )  # fmt: skip


def test_the_page_escapes_every_text_from_the_records() -> None:
    page = to_html(hostile_report())
    assert "<img" not in page and 'onerror="' not in page and "\x1b" not in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt; &amp; \\x1b[2J" in page
    assert "<script" not in page


def test_the_table_shows_control_characters_escaped() -> None:
    out = table(hostile_report())
    assert "\x1b" not in out and "\\x1b[2J" in out


def test_csv_cells_a_spreadsheet_would_run_are_quoted() -> None:
    rows = list(csv.DictReader(io.StringIO(to_csv(hostile_report()))))
    assert list(rows[0]) == list(CSV_COLUMNS)
    negative = next(r for r in rows if r["section"] == "negative")
    assert negative["reason"] == '\'=HYPERLINK("x")'
    top = next(r for r in rows if r["section"] == "top")
    assert top["examples"] == "'@SUM(A1)"
    assert next(r for r in rows if r["section"] == "never_cited")["source"] == "'-rm.md"
    assert rows[0]["down"] == "1"  # numbers stay numbers


async def test_gather_reads_the_period_the_base_and_the_indexed_files(
    make_settings: MakeSettings, pipeline: Pipeline, embeddings: LocalEmbeddings, tmp_path: Path
) -> None:
    settings = make_settings()
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "keys.md").write_text("# Keys\n\nRotate them yearly.\n")
    (docs / "unused.md").write_text("# Unused\n\nNobody asks.\n")
    ingest(settings, [docs], embeddings, embeddings.name, progress=False)
    now, day = time.time(), 86400
    keys = Used("keys.md › Keys", 0.7, "default")
    for record in [
        AnswerRecord("new", now - 5, "How do I rotate keys?", "a", True, (keys,), ("default",)),
        AnswerRecord("hr", now - 10, "Holidays?", "none", False, (), ("hr",)),
        AnswerRecord("old", now - 3 * day, "Old?", "", True, (), ("default",)),
    ]:
        await pipeline.records.keep(record)

    every = await gather_report(pipeline.records, embeddings, settings, since=now - day)
    assert every.totals.questions == 2 and every.bases == ("default", "hr")
    assert [(s.source, s.count) for s in every.cited] == [("keys.md", 1)]
    assert [s.source for s in every.never_cited] == ["unused.md"]
    assert every.notes == ("the knowledge base 'hr' has no index yet",)
    hr = await gather_report(pipeline.records, embeddings, settings, since=now - day, base="hr")
    assert (hr.totals.questions, hr.bases, hr.cited, hr.never_cited) == (1, ("hr",), (), ())
    week = await gather_report(pipeline.records, embeddings, settings, since=now - 7 * day)
    assert week.totals.questions == 3


class BrokenEmbeddings(LocalEmbeddings):
    def __init__(self) -> None:  # no model: every call fails, as a remote one does offline
        pass

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        raise ConnectionError("embeddings.example.com: connection refused")


async def test_an_embedding_model_that_fails_is_a_retrieval_error() -> None:
    with pytest.raises(RetrievalFailed, match="embedding the questions failed: ConnectionError"):
        await build_report([asked("a", "Hi?")], BrokenEmbeddings(), since=NOW - 60, until=NOW)
