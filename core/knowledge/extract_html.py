"""HTML through BeautifulSoup: the main content only, headings and Sphinx's API entries as
locations, code kept as code (indented as written)."""

from __future__ import annotations

import re
from typing import Any

from core.knowledge.sections import FENCE_LINE, Section, code_block, section

_MAIN = ("main", "[role=main]", "article", "div.body", "div#content", "div.document", "body")
_DROP = (
    "script", "style", "noscript", "template", "nav", "header", "footer", "aside", "form",
    "button", "svg", "head", "title", "a.headerlink", "[aria-hidden=true]",
    "[class*=copy]", "[class*=clipboard]",
)  # fmt: skip
_ANCHOR_MARKS = frozenset({"#", "¶", "§", "🔗", "link"})
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_API_LEVEL = 7  # below every heading: an API entry sits inside the section that lists it
_BLOCKS = frozenset(
    {"p", "div", "section", "li", "dt", "dd", "tr", "table", "ul", "ol", "dl", "blockquote",
     "br", "hr", "figure", "figcaption", "details", "summary"}
)  # fmt: skip


def html_sections(text: str) -> list[Section]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text, "html.parser")
    main = next((found for css in _MAIN if (found := soup.select_one(css)) is not None), soup)
    for css in _DROP:
        for element in main.select(css):
            element.decompose()
    for anchor in main.find_all("a"):
        if anchor.get_text(strip=True) in _ANCHOR_MARKS:
            anchor.decompose()  # a heading's permalink ("#", "¶"), not words
    walker = _Walker()
    walker.walk(main)
    walker.close_section()
    return [Section(_strip_lines(s.text), s.headings) for s in walker.sections]


class _Walker:
    """The page's text in document order, a new section at each heading and API entry."""

    def __init__(self) -> None:
        self.sections: list[Section] = []
        self.stack: list[tuple[int, str]] = []  # (level, title) of the headings in force
        self.parts: list[str] = []  # the text of the section being read

    def close_section(self, parts: list[str] | None = None) -> None:
        self.sections.append(section([t for _, t in self.stack], self.parts))
        self.parts = parts if parts is not None else []

    def walk(self, node: Any) -> None:
        from bs4.element import Comment, NavigableString, Tag

        for child in node.children:
            if isinstance(child, Comment):
                continue
            if isinstance(child, NavigableString):
                self.parts.append(re.sub(r"\s+", " ", str(child)))
            elif not isinstance(child, Tag):
                continue
            elif child.name in _HEADINGS:
                self.close_section()
                level = int(child.name[1])
                title = " ".join(child.get_text().split())  # "<code>email</code>: Examples"
                self.stack = [item for item in self.stack if item[0] < level] + [(level, title)]
            elif child.name == "dl" and _api_entries(child):
                self.api(child)
            elif child.name == "pre":
                self.parts.append(f"\n\n{code_block(child.get_text())}\n\n")
            elif child.name in _BLOCKS:
                self.parts.append("\n")
                self.walk(child)
                self.parts.append("\n")
            else:
                self.walk(child)

    def api(self, entries: Any) -> None:
        """Each entry of a Sphinx API list (or glossary) is a location under the heading; its
        signatures (one `<dt>` each, several for an overloaded one) head its text."""
        around, previous = self.stack, ""
        # "The csv module defines the following functions:" says nothing alone: it leads into
        # the first entry instead of being a passage of its own.
        lead_in = "".join(self.parts).strip()
        lead_in = lead_in if lead_in.endswith(":") and "\n" not in lead_in else ""
        if lead_in:
            self.parts = []
        for child in entries.find_all(["dt", "dd"], recursive=False):
            signature = " ".join(child.get_text().split())
            if child.name == "dd":
                self.walk(child)
            elif previous == "dt":  # another signature of the same entry
                self.parts += [signature, "\n"]
            else:
                self.close_section([f"{lead_in}\n\n" if lead_in else "", signature, "\n"])
                self.stack = [*around, (_API_LEVEL, _entry_name(child))]
                lead_in = ""
            previous = child.name
        self.close_section()
        self.stack = around


def _api_entries(dl: Any) -> bool:
    """Sphinx marks an API entry's (or glossary term's) `<dt>` with its anchor id."""
    first = dl.find("dt", recursive=False)
    return first is not None and bool(first.get("id"))


def _entry_name(dt: Any) -> str:
    """`functools.lru_cache` for a signature (its id), the term itself for a glossary entry."""
    classes = dt.get("class") or []
    if dt.get("id") and ("sig" in classes or "sig-object" in classes):
        return str(dt["id"])
    return " ".join(dt.get_text(" ").split())


def _strip_lines(text: str) -> str:
    """Each line stripped of the page's layout whitespace, except inside code: a `<pre>`
    block's indentation is the code's meaning."""
    out, fenced = [], False
    for line in text.splitlines():
        if FENCE_LINE.match(line):
            fenced = not fenced
            out.append(line.strip())
        else:
            out.append(line.rstrip() if fenced else line.strip())
    return "\n".join(out)
