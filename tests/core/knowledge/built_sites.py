"""Small documentation builds written as Sphinx and MkDocs lay them out: pages, the copies and
search files the generator puts beside them, and the marks it always leaves."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

# Page -> (title, {section: paragraph}). "Support" is the same text on two pages, as an
# `.. include::` makes it.
SUPPORT = "Ask in the #help channel; the platform team answers within a day."
PAGES = {
    "index": ("Harbor", {"Overview": "Harbor stores container images for every team."}),
    "guide/install": ("Install", {
        "Requirements": "Harbor needs 4 GB of memory and a Postgres database.",
        "Support": SUPPORT,
    }),
    "guide/config": ("Configuration", {
        "Storage": "Images are kept in the bucket named by HARBOR_BUCKET.",
        "Support": SUPPORT,
    }),
    "api": ("API", {"Tokens": "A robot account's token expires after 30 days."}),
}  # fmt: skip


def sphinx_page(title: str, sections: dict[str, str], depth: int) -> str:
    up = "../" * depth
    body = "".join(
        f'<section id="s{n}"><h2>{name}<a class="headerlink" href="#s{n}">¶</a></h2>'
        f"<p>{text}</p></section>"
        for n, (name, text) in enumerate(sections.items())
    )
    return (
        f"<!DOCTYPE html><html><head><title>{title}</title>"
        f'<script src="{up}_static/documentation_options.js"></script></head><body>'
        f'<div class="related" role="navigation"><a href="{up}genindex.html">index</a></div>'
        f'<div class="document"><div class="body" role="main"><section id="top">'
        f'<h1>{title}<a class="headerlink" href="#top">¶</a></h1>{body}</section></div></div>'
        f'<div class="footer"><a href="{up}_sources/x.rst.txt">Show Source</a></div>'
        "</body></html>"
    )


def rst_source(title: str, sections: dict[str, str]) -> str:
    parts = [f"{title}\n{'=' * len(title)}\n"]
    parts += [f"{name}\n{'-' * len(name)}\n\n{text}\n" for name, text in sections.items()]
    return "\n".join(parts)


def sphinx_build(root: Path, *, dirhtml: bool = False) -> Path:
    """`root` as `sphinx-build -b html` (or `dirhtml`) leaves it; returns `root`."""
    (root / "_static").mkdir(parents=True, exist_ok=True)
    (root / ".buildinfo").write_text("# Sphinx build info version 1\nconfig: 0\ntags: 0\n")
    inventory = zlib.compress(b"harbor std:label -1 index.html Harbor\n")
    (root / "objects.inv").write_bytes(
        b"# Sphinx inventory version 2\n# Project: Harbor\n# Version: 1\n"
        b"# The remainder of this file is compressed using zlib.\n" + inventory
    )
    (root / "searchindex.js").write_text('Search.setIndex({"docnames": ["index"]})')
    (root / "_static" / "documentation_options.js").write_text("const DOCUMENTATION_OPTIONS={}")
    (root / "_static" / "basic.css").write_text("div.body { margin: 0 }")
    (root / "_static" / "searchtools.js").write_text("var Search = {};")
    (root / "_images").mkdir(exist_ok=True)
    (root / "_images" / "diagram.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    for name, (title, sections) in PAGES.items():
        page = root / (f"{name}/index.html" if dirhtml and name != "index" else f"{name}.html")
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(sphinx_page(title, sections, len(page.relative_to(root).parts) - 1))
        copy = root / "_sources" / f"{name}.rst.txt"
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text(rst_source(title, sections))
    generated = {
        "genindex": "<h1>Index</h1><p>API, Harbor, Install, Configuration</p>",
        "search": "<h1>Search</h1><p>Please activate JavaScript to enable the search.</p>",
        "py-modindex": "<h1>Python Module Index</h1><p>harbor — the Harbor client</p>",
    }
    for name, body in generated.items():
        page = root / (f"{name}/index.html" if dirhtml else f"{name}.html")
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(f'<html><body><div class="body">{body}</div></body></html>')
    if not dirhtml:
        (root / "genindex-H.html").write_text('<div class="body"><h1>Index – H</h1></div>')
    return root


def mkdocs_build(root: Path) -> Path:
    """`root` as `mkdocs build` leaves it (its default theme and search plugin)."""
    head = '<head><meta name="generator" content="mkdocs-1.6.1, mkdocs-theme"></head>'
    for name, (title, sections) in PAGES.items():
        page = root / ("index.html" if name == "index" else f"{name}/index.html")
        page.parent.mkdir(parents=True, exist_ok=True)
        body = "".join(f"<h2>{n}</h2><p>{t}</p>" for n, t in sections.items())
        page.write_text(
            f'<html>{head}<body><nav>Home Guide</nav><div role="main"><h1>{title}</h1>{body}'
            "</div><footer>Built with MkDocs</footer></body></html>"
        )
    (root / "404.html").write_text(
        f'<html>{head}<body><div role="main"><h1>404</h1><p>Page not found</p></div></body></html>'
    )
    sitemap = '<?xml version="1.0"?><urlset><url><loc>None</loc></url></urlset>'
    (root / "sitemap.xml").write_text(sitemap)
    (root / "sitemap.xml.gz").write_bytes(gzip.compress(sitemap.encode()))
    (root / "search").mkdir()
    (root / "search" / "search_index.json").write_text('{"docs": [{"text": "Harbor"}]}')
    (root / "search" / "lunr.js").write_text("var lunr = {};")
    (root / "css").mkdir()
    (root / "css" / "theme.css").write_text("body { margin: 0 }")
    return root
