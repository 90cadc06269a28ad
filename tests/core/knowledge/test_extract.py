"""Text out of each format: headings as locations (never passages), code kept as code."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.knowledge.extract import read_sections, sections_in
from tests.conftest import SAMPLE_DOCS
from tests.core.knowledge.test_ingest import tiny_pdf


def sections(path: Path, text: str | bytes) -> list[tuple[str, str]]:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return [(s.location, s.text) for s in read_sections(path)]


def test_markdown_headings_are_locations_never_passages(tmp_path: Path):
    text = (
        "# Guide\n\nIntro text.\n\n## Install\n\nRun make run.\n\n"
        "```sh\n# not a heading\nmake run\n```\n\n## Empty\n\n## Use\n\nAsk away.\n"
    )
    got = sections(tmp_path / "guide.md", text)
    assert got == [
        ("Guide", "Intro text."),
        ("Guide › Install", "Run make run.\n\n```sh\n# not a heading\nmake run\n```"),
        ("Guide › Use", "Ask away."),
    ]


def test_rst_through_docutils_with_sphinx_markup(tmp_path: Path):
    text = """\
Settings
========

.. setting:: DEBUG

DEBUG
-----

Default: ``False``. See :setting:`ALLOWED_HOSTS` and :doc:`the checklist </howto/deploy>`.

.. versionadded:: 5.0

    It also turns on :class:`~django.views.debug.ExceptionReporter`.

.. code-block:: python

    DEBUG = True

.. code-block:: python

    DEBUG = False

.. include:: /etc/passwd

.. toctree::

   intro
"""
    got = sections(tmp_path / "settings.txt", text)  # reST in .txt, as Sphinx projects write
    assert [location for location, _ in got] == ["Settings › DEBUG"]
    body = got[0][1]
    assert body == (
        "Default: False. See ALLOWED_HOSTS and the checklist.\n\n5.0\n\n"
        "It also turns on django.views.debug.ExceptionReporter.\n\n"
        "```\nDEBUG = True\n```\n\n```\nDEBUG = False\n```"
    )
    prose = body.split("```")[0]
    for markup in (":setting:", ":doc:", "``", ".. ", "root:", "intro"):
        assert markup not in prose and markup not in body.replace("```", "")


def test_plain_txt_stays_plain(tmp_path: Path):
    got = sections(tmp_path / "notes.txt", "Coffee machine: floor three.\n\nKey: ask Ann.\n")
    assert got == [("", "Coffee machine: floor three.\n\nKey: ask Ann.")]


def test_html_main_content_without_navigation_anchors_or_copy_buttons(tmp_path: Path):
    html = """<!doctype html><html><head><title>Buffer | Node.js docs</title>
<style>p{color:red}</style><script>var x = 1;</script></head><body>
<nav><a href="/">Home</a> <a href="/api">API index</a></nav>
<header>Node.js v22 documentation</header>
<main>
<h1>Buffer<a class="headerlink" href="#buffer">¶</a></h1>
<p>Buffers hold <code>bytes</code>.</p>
<h2><span><a class="mark" href="#alloc" id="alloc">#</a></span> Buffer.alloc(size)</h2>
<p>Allocates a new buffer of <em>size</em> bytes.</p>
<div class="highlight"><button class="copy-button">Copy</button><pre>const a = Buffer.alloc(10);
console.log(a);</pre></div>
<pre>const b = Buffer.alloc(5, 1);</pre>
</main>
<footer>© OpenJS Foundation</footer></body></html>"""
    got = sections(tmp_path / "buffer.html", html)
    assert got == [
        ("Buffer", "Buffers hold bytes."),
        (
            "Buffer › Buffer.alloc(size)",
            "Allocates a new buffer of size bytes.\n\n"
            "```\nconst a = Buffer.alloc(10);\nconsole.log(a);\n```\n\n"
            "```\nconst b = Buffer.alloc(5, 1);\n```",
        ),
    ]


def test_pdf_pages_are_locations(tmp_path: Path):
    got = sections(tmp_path / "manual.pdf", tiny_pdf(["Cover page", "The printer code is 4711"]))
    assert got == [("page 1", "Cover page"), ("page 2", "The printer code is 4711")]


def test_a_long_text_is_read_in_blocks(tmp_path: Path):
    paragraph = "word " * 199 + "end.\n\n"
    got = sections(tmp_path / "long.txt", paragraph * 200)  # 200 kB, no heading
    assert len(got) > 2 and all(len(text) < 70_000 for _, text in got)
    assert sum(text.count("end.") for _, text in got) == 200


# A page as Sphinx writes it (the Python docs' csv page, cut down): highlighted code, API entries.
SPHINX_PAGE = (Path(__file__).parent / "data" / "sphinx_csv.html").read_text(encoding="utf-8")


def test_html_code_keeps_its_indentation_and_api_entries_are_locations(tmp_path: Path):
    pairs = sections(tmp_path / "csv.html", SPHINX_PAGE)
    got = dict(pairs)
    top = "csv — CSV File Reading and Writing"
    assert got[f"{top} › Examples"] == (
        "The simplest example of reading a CSV file:\n\n```\nimport csv\n"
        "with open('some.csv', newline='') as f:\n    reader = csv.reader(f)\n"
        "    for row in reader:\n        print(row)\n```"
    )
    # The lead-in of the list ("…the following functions:") is read with its first entry.
    assert got[f"{top} › Module Contents › csv.writer"] == (
        "The csv module defines the following functions:\n\n"
        "csv.writer(csvfile, dialect='excel')\n\n"
        "Return a writer object that converts the user's data into delimited strings.\n\n"
        "```\nimport csv\nwith open('eggs.csv', 'w') as f:\n    writer = csv.writer(f)\n"
        "    writer.writerow(['Spam'])\n```"
    )
    # The section's own text after the list keeps the section's location.
    assert [text for location, text in pairs if location == f"{top} › Module Contents"] == [
        "Text after the entry belongs to the section again."
    ]
    assert got[f"{top} › Glossary › dialect"] == "dialect\n\nA set of formatting rules."


def test_rst_api_entries_are_locations_and_role_dots_go(tmp_path: Path):
    text = """\
:mod:`functools` --- Higher-order functions
===========================================

Intro.

.. decorator:: lru_cache(user_function)
               lru_cache(maxsize=128, typed=False)

   Decorator to wrap a function with a memoizing callable.

.. class:: partialmethod(func, /, *args)

   Returns a new descriptor.

   .. method:: __get__(obj)

      Binds it.

:class:`.datetime` Objects
--------------------------

A :class:`.datetime` object is a single object.
"""
    got = dict(sections(tmp_path / "functools.rst", text))
    top = "functools --- Higher-order functions"
    assert got[f"{top} › lru_cache"] == (
        "lru_cache(user_function) / lru_cache(maxsize=128, typed=False)\n\n"
        "Decorator to wrap a function with a memoizing callable."
    )
    assert got[f"{top} › partialmethod › __get__"] == "__get__(obj)\n\nBinds it."
    assert got[f"{top} › datetime Objects"] == "A datetime object is a single object."


@pytest.mark.parametrize(
    ("name", "data"),
    [
        *((p.name, p.read_bytes()) for p in sorted(SAMPLE_DOCS.iterdir())),  # md, rst, html
        ("csv.html", SPHINX_PAGE.encode()),
        ("manual.pdf", tiny_pdf(["Cover page", "The printer code is 4711"])),
        ("notes.txt", b"Title\n=====\n\n.. note:: reST in a .txt\n\nBody.\n"),
        ("plain.txt", "\ufeffplain words, a BOM first\n\nand more".encode()),
        ("long.txt", ("word " * 199 + "end.\n\n").encode() * 200),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_a_document_in_memory_reads_as_the_same_file_on_disk(tmp_path: Path, name: str, data):
    (tmp_path / name).write_bytes(data)
    assert sections_in(name, data) == list(read_sections(tmp_path / name))


def test_text_in_memory_that_is_not_utf8_is_refused_as_on_disk(tmp_path: Path):
    (tmp_path / "latin.md").write_bytes("café".encode("latin-1"))
    with pytest.raises(UnicodeDecodeError):
        sections_in("latin.md", "café".encode("latin-1"))
    with pytest.raises(UnicodeDecodeError):
        list(read_sections(tmp_path / "latin.md"))
