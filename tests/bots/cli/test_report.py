"""`threadbot report` as an operator runs it, over a week of questions kept and voted on through
the real `Records` in a real Redis, with two real knowledge bases on disk."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import shutil
import signal
import struct
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from core.answer.pipeline import Pipeline
from core.feedback.formats import CSV_COLUMNS
from core.feedback.records import AnswerRecord, Records, Used
from core.knowledge.embeddings import LocalEmbeddings
from core.knowledge.ingest import ingest
from core.knowledge.retrieval import Index
from tests.cli_runner import env_for, store_env, threadbot
from tests.conftest import MakeSettings
from tests.core.feedback.test_grouping import PARAPHRASES
from tests.fakes.fake_openai import FakeOpenAI

DAY_S = 86400.0
# Each question of the seeded week, by what it asks; a question's place in its list and its
# label pick its time, channel, asker, base, coverage and the file its passages come from. Four
# are asked in the very words the grouping's threshold was chosen on (test_grouping.py).
ASKED = {
    "rotate": PARAPHRASES["rotate"],
    "reset": [
        "How do I reset a conversation?", "how to reset the chat", "reset conversation",
        "clear the conversation history", "How do I reset a conversation?",
        "How can I reset my conversation with the bot?",
    ],
    "lunch": PARAPHRASES["lunch"],
    "vpn": PARAPHRASES["vpn"],
    "deploy": [
        "How do I deploy to production?", "what's the deploy process",
        "steps to deploy the service", "how do I deploy a new version?",
    ],
    "password": PARAPHRASES["password"],
    "oncall": ["Who is on call this week?"],
    "wifi": ["What is the wifi password for guests?"],
    "python": ["Which Python version do we support?"],
    "expense": ["How do I file an expense report?"],
    "parking": ["Where can I park at the office?"],
    "pdf": ["Does the bot read PDF files?"],
    "dress": ["What's the dress code?"],
    "retention": ["How long are conversations kept?"],
}  # fmt: skip
UNCOVERED = {"lunch", "oncall", "wifi", "parking", "dress"}
HR = {"password", "wifi", "expense", "dress"}  # asked in #hr, which searches the hr base
FILE_OF = {
    "rotate": "api-keys.md", "reset": "conversations.md", "retention": "conversations.md",
    "vpn": "vpn.md", "deploy": "deploy.md", "python": "getting-started.md",
    "pdf": "getting-started.md", "password": "passwords.md", "expense": "expenses.md",
}  # fmt: skip
DEFAULT_DOCS = {
    "api-keys.md": "# API keys\n\n## Rotating a key\n\nRun `keys rotate`, then revoke the old.\n",
    "conversations.md": "# Conversations\n\n## Resetting\n\nSay /reset. History is kept 30 days.\n",
    "vpn.md": "# VPN\n\n## Connecting\n\nInstall the client and sign in with SSO.\n",
    "deploy.md": "# Deploying\n\n## Production\n\nMerge to main; the pipeline deploys it.\n",
    "getting-started.md": "# Getting started\n\nPython 3.11 or newer. PDFs are read too.\n",
    "style-guide.md": "# Style guide\n\nWrite short sentences.\n",
    "release-notes.md": "# Release notes\n\n## 1.2\n\nFaster search.\n",
}
HR_DOCS = {
    "passwords.md": "# Passwords\n\n## Resetting yours\n\nUse the self-service portal.\n",
    "expenses.md": "# Expenses\n\nFile them in the finance tool within 30 days.\n",
    "holidays.md": "# Holidays\n\nThe calendar for the year.\n",
}
ANSWERS = {
    "rotate": "Run `keys rotate` in the admin console, then put the new key in your services' "
    "settings; the old key keeps working for 24 hours. [api-keys.md › API keys › Rotating a key]",
    "reset": "Say /reset in the thread (or @threadbot reset): the bot forgets the conversation.",
    "vpn": "Install the VPN client from the software portal and sign in with SSO.",
    "deploy": "Merge to main: the pipeline deploys to production once the checks pass.",
    "password": "Use the self-service portal's Forgot password link.",
}
INJECTED = '<script>alert("x")</script> wrong & \x1b[31mred'  # a reason: someone else's words


@dataclass
class Seeded:
    now: float
    labels: dict[str, str]  # question (as asked) -> what it asks
    records: list[AnswerRecord]  # the week's, not the older ones
    ups: int
    downs: int


def write_docs(folder: Path, docs: dict[str, str]) -> Path:
    folder.mkdir(parents=True)
    for name, body in docs.items():
        (folder / name).write_text(body)
    return folder


def index_bases(make_settings: MakeSettings, tmp_path: Path) -> dict[str, dict[str, str]]:
    """Both bases ingested for real; each file's first citation, as answers cite it."""
    embeddings = LocalEmbeddings()
    settings = make_settings()
    cited: dict[str, dict[str, str]] = {}
    for base, docs in (("default", DEFAULT_DOCS), ("hr", HR_DOCS)):
        for_base = settings.for_base(base)
        folder = write_docs(tmp_path / f"docs-{base}", docs)
        ingest(for_base, [folder], embeddings, embeddings.name, progress=False)
        index = Index.load(for_base.index_dir)
        assert index is not None
        cited[base] = {}
        for chunk in index.chunks:
            cited[base].setdefault(chunk.source, chunk.citation)
    return cited


async def seed(records: Records, citations: dict[str, dict[str, str]]) -> Seeded:
    """40 questions over the last 7 days (and 3 older), kept and voted on as the bots do."""
    now = time.time()
    labels, week = {}, []
    n = 0
    for label, questions in ASKED.items():
        for i, question in enumerate(questions):
            base = "hr" if label in HR else "default"
            passages = ()
            if label not in UNCOVERED:
                source = FILE_OF[label]
                passages = (Used(citations[base][source], round(0.71 - 0.03 * i, 2), base),)
            channel = "C-hr" if base == "hr" else ("C-eng" if n % 3 else "C-general")
            record = AnswerRecord(
                id=f"a{n:02d}", at=now - (n * 4.1 + 0.5) * 3600,  # 40 questions over 7 days
                question=question, answer=ANSWERS.get(label, "The documents don't cover this."),
                covered=label not in UNCOVERED, passages=passages, bases=(base,),
                platform="slack", workspace="T1", channel=channel,
                session=f"slack:{{T1:{channel}}}:{n}.0", asker=f"slack:U{n % 7}",
            )  # fmt: skip
            await records.keep(record)
            labels[question] = label
            week.append(record)
            n += 1
    assert n == 40 and week[-1].at > now - 7 * DAY_S
    older = [("How do I rotate an API key?", "rotate", 8), ("Where is the old wiki?", "wiki", 12),
             ("What is the holiday calendar?", "holidays", 20)]  # fmt: skip
    for k, (question, label, days) in enumerate(older):
        base = "hr" if label == "holidays" else "default"
        passages = (Used(citations["hr"]["holidays.md"], 0.6, "hr"),) if base == "hr" else ()
        await records.keep(
            AnswerRecord(f"old{k}", now - days * DAY_S, question, "An old answer.",
                         label != "wiki", passages, (base,), "slack", "T1", "C-general",
                         asker="slack:U9")
        )  # fmt: skip
    ids = {label: [r.id for r in week if labels[r.question] == label] for label in ASKED}
    rotate, lunch, vpn = ids["rotate"], ids["lunch"], ids["vpn"]
    for voter, answer in [("slack:U1", rotate[0]), ("slack:U5", rotate[3]),
                          ("discord:D1", rotate[5]), ("slack:U6", ids["reset"][0]),
                          ("slack:U3", ids["reset"][2]), ("slack:U2", ids["deploy"][1]),
                          ("slack:U4", ids["password"][0])]:  # fmt: skip
        await records.vote(answer, voter, "up")
    # One person changes their mind and says why; two others disagree with another answer.
    await records.vote(rotate[1], "slack:U2", "up")
    await records.vote(rotate[1], "slack:U2", "down")
    await records.give_reason(rotate[1], "slack:U2", "It skipped revoking the old key")
    await records.vote(rotate[6], "slack:U3", "down")
    await records.give_reason(rotate[6], "slack:U4", "The command in the answer does not exist")
    await records.give_reason(lunch[0], "slack:U5", INJECTED)
    await records.vote(vpn[2], "discord:D1", "down")
    await records.give_reason(vpn[2], "slack:U6", "Out of date: we moved to WireGuard")
    return Seeded(now, labels, week, ups=7, downs=6)


@pytest.fixture
async def seeded(
    tmp_path: Path, make_settings: MakeSettings, fake_openai: FakeOpenAI, pipeline: Pipeline
) -> tuple[Seeded, dict[str, str]]:
    found = await seed(pipeline.records, index_bases(make_settings, tmp_path))
    return found, store_env(tmp_path, make_settings, fake_openai)


def labels_of(group: dict[str, object], labels: dict[str, str]) -> set[str]:
    texts = [group["question"], *group["examples"]]  # type: ignore[misc]
    return {labels[str(t)] for t in texts}


async def test_the_groups_counts_and_sections_are_what_the_week_implies(
    seeded: tuple[Seeded, dict[str, str]],
) -> None:
    week, env = seeded
    out, err, code = await threadbot("report", "--format", "json", env=env)
    assert code == 0, err
    report = json.loads(out)
    assert report["totals"] == {
        "questions": 40, "covered": 30, "covered_pct": 75, "up": week.ups, "down": week.downs
    }  # fmt: skip
    # Top questions: every paraphrase in its group, every other question in its own.
    asked = Counter(week.labels[r.question] for r in week.records)
    top = {frozenset(labels_of(g, week.labels)): g for g in report["top"]}
    assert all(len(labels) == 1 for labels in top)
    assert {next(iter(k)): g["count"] for k, g in top.items()} == asked
    assert [g["count"] for g in report["top"]] == sorted(asked.values(), reverse=True)
    by_label = {next(iter(k)): g for k, g in top.items()}
    assert len(by_label["rotate"]["examples"]) == 3
    assert (by_label["lunch"]["uncovered"], by_label["lunch"]["down"]) == (6, 1)
    assert (by_label["rotate"]["down"], by_label["rotate"]["up"]) == (2, 3)
    # Coverage gaps: the uncovered and the 👎, in the same groups (and group ids) as above.
    gaps = {next(iter(labels_of(g, week.labels))): g for g in report["gaps"]}
    assert {label: g["count"] for label, g in gaps.items()} == {
        "lunch": 6, "rotate": 2, "vpn": 1, "oncall": 1, "wifi": 1, "parking": 1, "dress": 1
    }  # fmt: skip
    assert report["gaps"][0]["group"] == by_label["lunch"]["group"]
    assert gaps["rotate"]["group"] == by_label["rotate"]["group"]
    # Answers with a 👎: newest first, with the reasons and the passages they were given.
    criticized = report["criticized"]
    assert [c["down"] for c in criticized] == [1, 2, 1, 2]
    reasons = [r for c in criticized for r in c["reasons"]]
    assert "Out of date: we moved to WireGuard" in reasons
    assert "It skipped revoking the old key" in reasons
    assert reasons.count("The command in the answer does not exist") == 1
    vpn = next(c for c in criticized if "WireGuard" in str(c["reasons"]))
    assert vpn["passages"] == [{"citation": "vpn.md › VPN › Connecting", "score": 0.65,
                                "base": "default"}]  # fmt: skip
    assert vpn["place"] == "slack:T1:C-eng" and len(vpn["answer"]) <= 280
    # Sources: by answers citing each file; the indexed files nobody's answer used.
    cited = {(s["base"], s["source"]): s["count"] for s in report["cited"]}
    assert cited == {
        ("default", "api-keys.md"): 8, ("default", "conversations.md"): 7,
        ("default", "vpn.md"): 5, ("default", "deploy.md"): 4,
        ("default", "getting-started.md"): 2, ("hr", "passwords.md"): 3,
        ("hr", "expenses.md"): 1,
    }  # fmt: skip
    assert [(s["base"], s["source"]) for s in report["never_cited"]] == [
        ("default", "release-notes.md"), ("default", "style-guide.md"), ("hr", "holidays.md")
    ]  # fmt: skip

    # A longer period takes the older questions in; a shorter one leaves out the earlier days.
    out, err, code = await threadbot("report", "--since", "30d", "--format", "json", env=env)
    assert code == 0, err
    month = json.loads(out)
    assert month["totals"]["questions"] == 43
    assert [s["source"] for s in month["never_cited"]] == ["release-notes.md", "style-guide.md"]
    out, err, code = await threadbot("report", "--since", "48h", "--format", "json", env=env)
    two_days = sum(r.at >= week.now - 2 * DAY_S for r in week.records)
    assert json.loads(out)["totals"]["questions"] == two_days < 40

    # --kb: only the questions that searched the base, and only its files.
    out, err, code = await threadbot("report", "--kb", "hr", "--format", "json", env=env)
    assert code == 0, err
    hr = json.loads(out)
    assert hr["base"] == "hr" and hr["bases"] == ["hr"]
    assert hr["totals"]["questions"] == sum(asked[label] for label in HR)
    assert {next(iter(labels_of(g, week.labels))) for g in hr["top"]} == HR
    assert {s["source"] for s in hr["cited"]} == {"passwords.md", "expenses.md"}
    assert [s["source"] for s in hr["never_cited"]] == ["holidays.md"]


async def test_table_and_csv(seeded: tuple[Seeded, dict[str, str]], tmp_path: Path) -> None:
    week, env = seeded
    out, err, code = await threadbot("report", env=env)
    assert code == 0, err
    assert "\x1b" not in out and "\\x1b[31mred" in out  # a reason cannot recolour a terminal
    lines = out.splitlines()
    assert lines[0].startswith("Report: ") and lines[0].endswith("(7 days), every knowledge base")
    assert lines[1] == f"40 questions, 75% covered, {week.ups} 👍, {week.downs} 👎"
    for title in ("Coverage gaps", "Top questions", "Answers with negative feedback",
                  "Sources cited most", "Sources never cited"):  # fmt: skip
        assert any(line.startswith(title) for line in lines), title
    gaps = lines[lines.index(next(x for x in lines if x.startswith("Coverage gaps"))) + 1 :]
    assert gaps[0].split() == ["group", "count", "uncovered", "down", "question"]
    assert gaps[1].split()[1:4] == ["6", "6", "1"]  # the lunch menus, first
    print(out)  # the closing note shows it

    path = tmp_path / "report.csv"
    out, err, code = await threadbot("report", "--format", "csv", "--output", str(path), env=env)
    assert (out, code) == (f"Wrote the report (csv) to {path}.\n", 0), err
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    with path.open(encoding="utf-8", newline="") as raw:
        header = next(csv.reader(raw))
    assert header == [
        "section", "group", "count", "uncovered", "down", "up", "question", "examples",
        "answer", "reason", "citation", "base", "source", "place", "at", "id",
    ]  # fmt: skip
    assert list(CSV_COLUMNS) == header
    sections = Counter(row["section"] for row in rows)
    assert sections == {"totals": 1, "gap": 7, "top": 14, "negative": 4, "cited": 7,
                        "never_cited": 3}  # fmt: skip
    totals = rows[0]
    assert (totals["count"], totals["uncovered"], totals["up"], totals["down"]) == (
        "40", "10", str(week.ups), str(week.downs)
    )  # fmt: skip
    top = [row for row in rows if row["section"] == "top"]
    assert [int(row["count"]) for row in top] == [8, 6, 6, 5, 4, 3, 1, 1, 1, 1, 1, 1, 1, 1]
    for row in top:  # each group's wordings ask one thing
        texts = [row["question"], *(row["examples"].split(" | ") if row["examples"] else [])]
        assert len({week.labels[t] for t in texts}) == 1, texts
    negative = [row for row in rows if row["section"] == "negative"]
    assert all(row["citation"].endswith(")") or not row["citation"] for row in negative)
    assert any("api-keys.md › API keys › Rotating a key (0." in r["citation"] for r in negative)
    assert any(INJECTED in row["reason"] for row in negative)  # kept as said, in CSV
    never = {row["source"] for row in rows if row["section"] == "never_cited"}
    assert never == {"release-notes.md", "style-guide.md", "holidays.md"}


def png_pixels(data: bytes) -> np.ndarray:
    """The pixels of an 8-bit RGB or RGBA PNG (what Chromium writes), height × width × channels:
    its chunks read, IDAT inflated with zlib and each row unfiltered (PNG spec, section 9)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, header, compressed = 8, b"", []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        header = body if kind == b"IHDR" else header
        compressed += [body] if kind == b"IDAT" else []
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert (depth, colour in (2, 6), interlace) == (8, True, 0), (depth, colour, interlace)
    step = 4 if colour == 6 else 3
    raw = np.frombuffer(zlib.decompress(b"".join(compressed)), np.uint8)
    rows = raw.reshape(height, width * step + 1)
    out = np.zeros((height, width * step), np.uint8)
    previous = np.zeros(width * step, np.int32)
    for y in range(height):
        kind, line = int(rows[y, 0]), rows[y, 1:].astype(np.int32)
        if kind == 1:  # Sub: a running sum along each channel
            line = np.cumsum(line.reshape(width, step), axis=0).reshape(-1)
        elif kind == 2:  # Up
            line = line + previous
        elif kind in (3, 4):  # Average, Paeth: byte by byte (Chromium uses them on few rows)
            for x in range(width * step):
                left = int(line[x - step]) if x >= step else 0
                up, corner = int(previous[x]), int(previous[x - step]) if x >= step else 0
                if kind == 3:
                    guess = (left + up) // 2
                else:
                    p = left + up - corner
                    pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                    guess = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[x] = (line[x] + guess) & 0xFF
        line &= 0xFF
        out[y], previous = line, line
    return out.reshape(height, width, step)


CHROMIUM = shutil.which("chromium")  # Debian's package; `make test` installs it when it can


async def chromium(*args: str, home: Path) -> tuple[int, str, str]:
    """Run headless Chromium to its end, without holding the event loop; its output goes to
    files, not pipes (a helper process it leaves behind would keep a pipe open), and whatever
    it left is ended with its process group. Returns the exit code, stdout and stderr."""
    assert CHROMIUM is not None
    out, err = home / "stdout.txt", home / "stderr.txt"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={home}",
            *args, stdout=stdout, stderr=stderr, start_new_session=True,
            env={"PATH": "/usr/bin:/bin", "HOME": str(home)},
        )  # fmt: skip
        try:
            code = await asyncio.wait_for(process.wait(), 90)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
    return code, out.read_text(errors="replace"), err.read_text(errors="replace")


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (`make test` installs it as root or with sudo -n)",
)
async def test_the_html_page_renders_in_headless_chromium(
    seeded: tuple[Seeded, dict[str, str]], tmp_path: Path
) -> None:
    _, env = seeded
    page = tmp_path / "report.html"
    _, err, code = await threadbot("report", "--format", "html", "--output", str(page), env=env)
    assert code == 0, err
    html = page.read_text(encoding="utf-8")
    # Self-contained: no script, nothing fetched; other people's words escaped.
    assert "<script" not in html and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    for fetches in ("<link", " src=", "url(", "@import", "https://"):
        assert fetches not in html, fetches
    assert html.count("<svg") == 4  # a chart each: gaps, top questions, 👎 by day, sources

    home = tmp_path / "chromium"
    home.mkdir()
    code, dom, err = await chromium("--dump-dom", page.as_uri(), home=home)
    assert code == 0, err
    for title in ("Coverage gaps", "Top questions", "Answers with negative feedback", "Sources"):
        assert f"<h2>{title}</h2>" in dom, title
    assert "What's on the lunch menu today?" in dom or "What&#x27;s" in dom

    shot = tmp_path / "threadbot-report.png"
    code, _, err = await chromium(
        f"--screenshot={shot}", "--window-size=1200,3000", page.as_uri(), home=home
    )
    assert code == 0, err
    assert shot.stat().st_size > 10_000
    pixels = png_pixels(shot.read_bytes())[:, :, :3]
    assert pixels.shape == (3000, 1200, 3)
    colours = Counter(map(bytes, pixels.reshape(-1, 3)))
    (background, most), total = colours.most_common(1)[0], pixels.shape[0] * pixels.shape[1]
    assert len(colours) > 50, "a blank page"  # text, four colours of bars, table borders
    assert most < 0.95 * total, f"{background.hex()} covers {most / total:.0%} of the page"
    for bar in ("d9822b", "2b6cb0", "c53030", "2f855a"):  # each section's chart is drawn
        assert colours[bytes.fromhex(bar)] > 200, bar
    if keep := os.environ.get("THREADBOT_REPORT_PNG"):  # where the closing note shows it from
        shutil.copy(shot, keep)
    print(f"screenshot: {shot}")


async def test_store_down_is_one_line(tmp_path: Path) -> None:
    env = env_for(
        tmp_path, THREADBOT_DATA_DIR=str(tmp_path / "data"), REDIS_URL="redis://127.0.0.1:1/0"
    )
    out, err, code = await threadbot("report", env=env)
    assert (out, code) == ("", 2)
    assert err.startswith("threadbot: the conversation store does not answer (reading the answer")
    assert len(err.splitlines()) == 1


async def test_a_period_it_cannot_read_is_refused(tmp_path: Path) -> None:
    _, err, code = await threadbot("report", "--since", "a week", env=env_for(tmp_path))
    assert code == 2 and "'a week' is not a period: a number and m, h, d or w" in err
