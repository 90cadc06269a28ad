"""`threadbot report` as text: a table for the terminal, one CSV, or JSON (the HTML page is in
`core.feedback.report_html`)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Literal

from core.feedback.report import TABLE_ROWS, QuestionGroup, Report, period, shortened, summary, when
from core.knowledge.retrieval import printable

ReportFormat = Literal["table", "csv", "json", "html"]
REPORT_FORMATS: tuple[ReportFormat, ...] = ("table", "csv", "json", "html")
TABLE_TEXT = 90  # characters of a question in the table

# The CSV's columns, in order (docs/operating.md describes each). Every row has every column;
# `section` says which of the report's parts a row belongs to.
CSV_COLUMNS = (
    "section",  # totals, gap, top, negative, cited, never_cited
    "group",  # g1, g2, ...: one group of questions, the same in gap, top and negative rows
    "count",  # questions (totals, gap, top), 👎 votes (negative), answers citing it (cited)
    "uncovered",  # questions the documents did not cover
    "down",  # questions with a 👎 (gap, top), answers with a 👎 (cited), 👎 votes (totals)
    "up",  # questions with a 👍 (gap, top), 👍 votes (totals, negative)
    "question",  # a group's representative question, or the question answered
    "examples",  # other wordings of the group, " | " between them
    "answer",  # the answer, shortened (negative)
    "reason",  # the reasons given with the 👎, " | " between them
    "citation",  # passages used, `source › heading (score)`, " | " between them (negative)
    "base",  # knowledge base (cited, never_cited; totals: the --kb asked for)
    "source",  # a file of the knowledge base, as cited (cited, never_cited)
    "place",  # platform:workspace:channel (negative)
    "at",  # ISO 8601 UTC: when asked (negative); the period's start (totals)
    "id",  # the answer's id (negative)
)
_FORMULA = ("=", "+", "-", "@", "\t", "\r")  # a cell a spreadsheet would run as a formula


def render_report(report: Report, fmt: ReportFormat) -> str:
    """The report in `fmt`: the page for html, else text."""
    renderers: dict[str, Callable[[Report], str]] = {
        "table": table,
        "csv": to_csv,
        "json": to_json,
    }
    if fmt == "html":
        from core.feedback.report_html import to_html

        return to_html(report)
    return renderers[fmt](report)


def _columns(header: Sequence[str], rows: Sequence[Sequence[object]], right: set[int]) -> list[str]:
    """Rows under a header, each column as wide as its widest cell; the last one unpadded."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    out = []
    for row in [header, *rows]:
        cells = [
            str(c).rjust(w) if i in right else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
    return out


def _more(shown: int, total: int, what: str) -> list[str]:
    left = total - shown
    return [f"  … and {left} more {what} (--format csv lists all)"] if left > 0 else []


def _groups(groups: Sequence[QuestionGroup]) -> list[str]:
    if not groups:
        return ["  none"]
    rows, shown = [], groups[:TABLE_ROWS]
    for g in shown:
        rows.append(
            [g.group, g.count, g.uncovered, g.down, printable(shortened(g.question, TABLE_TEXT))]
        )
    lines = _columns(["group", "count", "uncovered", "down", "question"], rows, {1, 2, 3})
    indent = len(lines[0]) - len("question")
    out = [lines[0]]
    for line, g in zip(lines[1:], shown, strict=True):
        out.append(line)
        for example in g.examples:
            out.append(" " * indent + "~ " + printable(shortened(example, TABLE_TEXT)))
    return out + _more(len(shown), len(groups), "groups")


def table(report: Report) -> str:
    """The report for a terminal: every text from the records shown with `printable`."""
    out = [f"Report: {period(report)}", summary(report), ""]
    out += ["Coverage gaps (not covered by the documents, or answered and marked 👎)"]
    out += _groups(report.gaps)
    out += ["", "Top questions"]
    out += _groups(report.top)
    out += ["", "Answers with negative feedback"]
    for c in report.criticized[:TABLE_ROWS]:
        out.append(
            f"{when(c.at)}  {printable(c.place) or '-'}  {c.group}  👎 {c.down}  👍 {c.up}  "
            f"{printable(shortened(c.question, TABLE_TEXT))}"
        )
        out.append(f"  answer:   {printable(shortened(c.answer, TABLE_TEXT + 20))}")
        if c.reasons:
            out.append(f"  reasons:  {' | '.join(printable(r) for r in c.reasons)}")
        used = "; ".join(f"[{p.score:.3f}] {printable(p.citation)}" for p in c.passages)
        out.append(f"  passages: {used or 'none'}")
    out += ["  none"] if not report.criticized else []
    out += _more(min(TABLE_ROWS, len(report.criticized)), len(report.criticized), "answers")
    out += ["", "Sources cited most (answers citing each file)"]
    cited = [[s.base, s.count, s.down, printable(s.source)] for s in report.cited[:TABLE_ROWS]]
    out += _columns(["base", "answers", "down", "file"], cited, {1, 2}) if cited else ["  none"]
    out += _more(len(cited), len(report.cited), "files")
    out += ["", "Sources never cited (in the index, used by no answer of the period)"]
    never = [[s.base, printable(s.source)] for s in report.never_cited]
    out += _columns(["base", "file"], never, set()) if never else ["  none"]
    out += [f"Note: {printable(note)}." for note in report.notes]
    return "\n".join(out) + "\n"


def _cell(value: object) -> str:
    """A CSV cell; text a spreadsheet would evaluate (`=`, `+`, ...) is quoted with `'`."""
    cell = str(value)
    return "'" + cell if cell.startswith(_FORMULA) and not _number(cell) else cell


def _number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def csv_rows(report: Report) -> list[dict[str, object]]:
    """The rows of the CSV, as dicts over CSV_COLUMNS (missing ones empty)."""
    t = report.totals
    rows: list[dict[str, object]] = [
        {
            "section": "totals", "count": t.questions, "uncovered": t.questions - t.covered,
            "down": t.down, "up": t.up, "base": report.base or "", "at": _iso(report.since),
        }
    ]  # fmt: skip
    for section, groups in (("gap", report.gaps), ("top", report.top)):
        for g in groups:
            rows.append(
                {
                    "section": section, "group": g.group, "count": g.count,
                    "uncovered": g.uncovered, "down": g.down, "up": g.up,
                    "question": g.question, "examples": " | ".join(g.examples),
                }
            )  # fmt: skip
    for c in report.criticized:
        rows.append(
            {
                "section": "negative", "group": c.group, "count": c.down, "up": c.up,
                "question": c.question, "answer": c.answer, "reason": " | ".join(c.reasons),
                "citation": " | ".join(f"{p.citation} ({p.score:.3f})" for p in c.passages),
                "place": c.place, "at": _iso(c.at), "id": c.id,
            }
        )  # fmt: skip
    for section, uses in (("cited", report.cited), ("never_cited", report.never_cited)):
        for s in uses:
            rows.append(
                {"section": section, "count": s.count, "down": s.down, "base": s.base,
                 "source": s.source}
            )  # fmt: skip
    return rows


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")


def to_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, restval="", lineterminator="\n")
    writer.writeheader()
    for row in csv_rows(report):
        writer.writerow({key: _cell(value) for key, value in row.items()})
    return out.getvalue()


def to_json(report: Report) -> str:
    """The whole report as one JSON object: the dataclasses' fields, times as unix seconds."""
    return json.dumps(asdict(report), ensure_ascii=False, indent=2) + "\n"
