"""`threadbot report --format html`: one self-contained page (inline CSS and SVG, no script, no
request for anything), with a bar chart per section. Every text from the records goes through
`_text`: questions and reasons are other people's words."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from html import escape

from core.feedback.report import TABLE_ROWS, QuestionGroup, Report, period, shortened, when
from core.knowledge.retrieval import printable

CHART_WIDTH = 1000
BAR_HEIGHT = 20
LABEL_WIDTH = 440  # of the chart, for the bars' labels
LABEL_CHARS = 66
ANSWER_CHARS = 160  # of an answer in the page (the JSON and CSV hold more)
# One colour per section's chart; words, not emoji, in the page: a browser without an emoji font
# would show boxes.
COLOURS = {"gaps": "#d9822b", "top": "#2b6cb0", "negative": "#c53030", "sources": "#2f855a"}

STYLE = """
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1a202c;
       background: #f7fafc; margin: 0; }
main { max-width: 1100px; margin: 0 auto; padding: 16px 32px 40px; }
h1 { font-size: 24px; margin: 4px 0 2px; }
h2 { font-size: 19px; margin: 26px 0 6px; padding-bottom: 3px; border-bottom: 2px solid #e2e8f0; }
h3 { font-size: 15px; margin: 14px 0 4px; }
p { margin: 4px 0; }
.period { color: #4a5568; }
.cards { display: flex; gap: 10px; flex-wrap: wrap; margin-top: 10px; }
.card { background: #fff; border: 1px solid #e2e8f0; border-radius: 8px; padding: 6px 14px;
        min-width: 110px; }
.card b { display: block; font-size: 22px; }
.card span { color: #4a5568; font-size: 12px; }
table { border-collapse: collapse; width: 100%; background: #fff; margin-top: 8px; }
th, td { border: 1px solid #e2e8f0; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #edf2f7; font-weight: 600; font-size: 13px; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.also { color: #718096; font-size: 12px; }
.reason { background: #fff5f5; border-left: 3px solid #c53030; padding: 1px 5px; margin: 1px 0; }
.muted { color: #718096; font-size: 13px; }
svg { display: block; background: #fff; border: 1px solid #e2e8f0; border-radius: 6px; }
svg text { font: 12px system-ui, sans-serif; fill: #2d3748; }
.note { color: #975a16; }
"""


def _text(text: str) -> str:
    """Text from the records, for the page: escaped, control characters shown as escapes."""
    return escape(printable(text))


def _chart(bars: Sequence[tuple[str, int]], colour: str, title: str) -> str:
    """A horizontal bar chart of `bars` (label, value), as inline SVG."""
    if not bars:
        return ""
    top = max(value for _, value in bars) or 1
    span = CHART_WIDTH - LABEL_WIDTH - 50
    height = BAR_HEIGHT * len(bars) + 12
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{CHART_WIDTH}" height="{height}" '
        f'viewBox="0 0 {CHART_WIDTH} {height}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for i, (label, value) in enumerate(bars):
        y = 6 + i * BAR_HEIGHT
        width = max(2.0, span * value / top) if value else 0.0
        parts.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{y + 14}" text-anchor="end">'
            f"{_text(shortened(label, LABEL_CHARS))}</text>"
            f'<rect x="{LABEL_WIDTH}" y="{y + 3}" width="{width:.1f}" height="{BAR_HEIGHT - 6}" '
            f'rx="3" fill="{colour}"><title>{_text(label)}: {value}</title></rect>'
            f'<text x="{LABEL_WIDTH + width + 6:.1f}" y="{y + 14}">{value}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _more(shown: int, total: int, what: str) -> list[str]:
    left = total - shown
    return [f'<p class="muted">… and {left} more {what} (--format csv lists all).</p>'] * (left > 0)


def _groups(groups: Sequence[QuestionGroup], colour: str, title: str) -> list[str]:
    if not groups:
        return ['<p class="muted">None in this period.</p>']
    shown = groups[:TABLE_ROWS]
    out = [_chart([(g.question, g.count) for g in shown], colour, title)]
    out.append(
        "<table><tr><th>group</th><th>questions</th><th>not covered</th><th>thumbs down</th>"
        "<th>question, and other wordings of it</th></tr>"
    )
    for g in shown:
        also = " · ".join(_text(e) for e in g.examples)
        out.append(
            f'<tr><td>{g.group}</td><td class="n">{g.count}</td><td class="n">{g.uncovered}</td>'
            f'<td class="n">{g.down}</td><td>{_text(g.question)}'
            f"{f'<br><span class=also>also: {also}</span>' if also else ''}</td></tr>"
        )
    out.append("</table>")
    return out + _more(len(shown), len(groups), "groups")


def _negative(report: Report) -> list[str]:
    if not report.criticized:
        return ['<p class="muted">No answer got a thumbs down in this period.</p>']
    per_day = Counter(when(c.at, minutes=False) for c in report.criticized)
    title = "Answers with a thumbs down, by day"
    out = [_chart(sorted(per_day.items()), COLOURS["negative"], title)]
    out.append(
        "<table><tr><th>when (UTC)</th><th>where</th><th>down / up</th><th>question</th>"
        "<th>answer</th><th>reasons given</th><th>passages used (score)</th></tr>"
    )
    none = '<span class="muted">none</span>'
    for c in report.criticized[:TABLE_ROWS]:
        reasons = "".join(f'<div class="reason">{_text(r)}</div>' for r in c.reasons)
        used = "<br>".join(f"{_text(p.citation)} ({p.score:.3f})" for p in c.passages)
        out.append(
            f'<tr><td class="n">{when(c.at)}</td><td>{_text(c.place)}</td>'
            f'<td class="n">{c.down} / {c.up}</td><td>{_text(c.question)}</td>'
            f"<td>{_text(shortened(c.answer, ANSWER_CHARS))}</td><td>{reasons or none}</td>"
            f"<td>{used or none}</td></tr>"
        )
    out.append("</table>")
    return out + _more(min(TABLE_ROWS, len(report.criticized)), len(report.criticized), "answers")


def _sources(report: Report) -> list[str]:
    out = ["<h3>Cited most</h3>"]
    if report.cited:
        shown = report.cited[:TABLE_ROWS]
        bars = [(f"{s.source} ({s.base})", s.count) for s in shown]
        out.append(_chart(bars, COLOURS["sources"], "Files cited: answers citing each"))
        out.append(
            "<table><tr><th>knowledge base</th><th>file</th><th>answers citing it</th>"
            "<th>of them with a thumbs down</th></tr>"
        )
        out += [
            f"<tr><td>{_text(s.base)}</td><td>{_text(s.source)}</td>"
            f'<td class="n">{s.count}</td><td class="n">{s.down}</td></tr>'
            for s in shown
        ]
        out.append("</table>")
        out += _more(len(shown), len(report.cited), "files")
    else:
        out.append('<p class="muted">No answer cited a file in this period.</p>')
    out.append("<h3>Never cited</h3>")
    if report.never_cited:
        out.append("<table><tr><th>knowledge base</th><th>file</th></tr>")
        out += [
            f"<tr><td>{_text(s.base)}</td><td>{_text(s.source)}</td></tr>"
            for s in report.never_cited
        ]
        out.append("</table>")
    else:
        out.append('<p class="muted">Every indexed file was cited.</p>')
    return out


def to_html(report: Report) -> str:
    t = report.totals
    cards = [
        (t.questions, "questions"),
        (f"{t.covered_pct}%", "covered by the documents"),
        (t.up, "thumbs up"),
        (t.down, "thumbs down"),
        (len(report.gaps), "groups of gaps"),
    ]
    body = [
        "<main>",
        "<h1>threadbot report</h1>",
        f'<p class="period">{_text(period(report))}</p>',
        '<div class="cards">',
        *(f'<div class="card"><b>{v}</b><span>{k}</span></div>' for v, k in cards),
        "</div>",
        *(f'<p class="note">Note: {_text(note)}.</p>' for note in report.notes),
        "<h2>Coverage gaps</h2>",
        '<p class="muted">Questions the documents did not cover, or whose answer got a thumbs '
        "down, grouped by meaning.</p>",
        *_groups(report.gaps, COLOURS["gaps"], "Coverage gaps: questions per group"),
        "<h2>Top questions</h2>",
        *_groups(report.top, COLOURS["top"], "Top questions: questions per group"),
        "<h2>Answers with negative feedback</h2>",
        *_negative(report),
        "<h2>Sources</h2>",
        *_sources(report),
        "</main>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # Nothing runs and nothing is fetched: the page can be mailed, archived, opened offline.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">"
        f"<title>threadbot report: {_text(period(report))}</title>"
        f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
