"""Text out of documents, cut where their headings (or pages) are, so each passage knows its place.

reStructuredText goes through docutils (also `.txt` that is reST, as Sphinx projects write), HTML
through BeautifulSoup keeping the main content only, PDF through pypdf page by page; Markdown
and plain text are read line by line, so a file of any size is never held whole.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SEPARATOR = " › "
_BLOCK_CHARS = 65_536  # text handed on at once from a long stretch without headings
_TREE_MAX_BYTES = 8 * 1024 * 1024  # larger reST is read as plain text: a doctree costs ~30x
_ATX = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_BLANK_RUN = re.compile(r"\n\s*\n(\s*\n)+")
# A code fence line (its info string too): one rule for the extractors and the splitter.
FENCE_LINE = re.compile(r"^[ \t]*(```|~~~).*$", re.MULTILINE)
_RST_HINT = re.compile(
    r"^(\.\. [\w:.+-]+::|([=\-~^\"'`#*+])\2{3,}[ \t]*$)|:[\w:.+-]+:`[^`]+`", re.MULTILINE
)


@dataclass(frozen=True)
class Section:
    """A stretch of a document under one heading path (`headings`), or on one PDF page."""

    text: str
    headings: str = ""
    page: int | None = None

    @property
    def location(self) -> str:
        return f"page {self.page}" if self.page is not None else self.headings


def _section(headings: list[str], parts: Iterable[str], page: int | None = None) -> Section:
    text = _BLANK_RUN.sub("\n\n", "".join(parts)).strip()
    return Section(text, SEPARATOR.join(headings), page)


def _code(text: str) -> str:
    return f"```\n{text.strip(chr(10))}\n```"


# --- Markdown and plain text: streamed line by line ------------------------------------------


def _plain(lines: Iterable[str]) -> Iterator[Section]:
    parts: list[str] = []
    size = 0
    for line in lines:
        parts.append(line)
        size += len(line)
        if size > _BLOCK_CHARS and not line.strip():
            yield _section([], parts)
            parts, size = [], 0
    yield _section([], parts)


def _markdown(lines: Iterable[str]) -> Iterator[Section]:
    stack: list[tuple[int, str]] = []
    parts: list[str] = []
    size = 0
    fenced = False
    for line in lines:
        if FENCE_LINE.match(line):
            fenced = not fenced
        match = None if fenced else _ATX.match(line.rstrip("\n"))
        if match is not None:
            yield _section([title for _, title in stack], parts)
            level = len(match.group(1))
            stack = [item for item in stack if item[0] < level] + [(level, match.group(2))]
            parts, size = [], 0
            continue
        parts.append(line)
        size += len(line)
        if size > _BLOCK_CHARS and not fenced and not line.strip():
            yield _section([title for _, title in stack], parts)
            parts, size = [], 0
    yield _section([title for _, title in stack], parts)


# --- reStructuredText through docutils --------------------------------------------------------

_ROLE = re.compile(r":([A-Za-z][\w+.:-]*?):`")
_DIRECTIVE = re.compile(r"^\s*\.\.\s+([A-Za-z][\w+.:-]*)::", re.MULTILINE)
_CODE_DIRECTIVES = frozenset(
    {"code-block", "sourcecode", "code", "console", "doctest", "testcode", "testoutput"}
)
# Navigation, file inclusion and markup that carries no text a question could match.
_SKIP_DIRECTIVES = frozenset(
    {"toctree", "index", "highlight", "literalinclude", "include", "raw", "contents",
     "sectnum", "image", "figure", "meta", "currentmodule", "module", "default-role",
     "tabularcolumns", "autosummary", "automodule", "autoclass", "autofunction"}
)  # fmt: skip
# Sphinx's API descriptions (also as `py:function`, `c:function`…): each is a location.
_API_DIRECTIVES = frozenset(
    {"function", "class", "method", "classmethod", "staticmethod", "decorator",
     "decoratormethod", "attribute", "data", "exception", "property", "envvar", "macro",
     "type", "member"}
)  # fmt: skip
# docutils' own directives that already give the right text.
_DOCUTILS_DIRECTIVES = frozenset(
    {"note", "warning", "tip", "important", "caution", "danger", "attention", "hint", "error",
     "admonition", "topic", "sidebar", "rubric", "epigraph", "highlights", "pull-quote",
     "compound", "container", "table", "list-table", "csv-table", "parsed-literal",
     "line-block", "math"}
)  # fmt: skip


def _register_markup(text: str) -> None:
    """Teach docutils the Sphinx roles and directives `text` uses, so they become text.

    Sphinx projects use their own (`:setting:`, `.. versionadded::`); docutils alone would
    leave them as error messages with their markup. The registry is docutils' own, per process.
    """
    from docutils import nodes, utils
    from docutils.parsers.rst import Directive, directives, roles

    class AnyOptions(dict[str, Any]):
        def __missing__(self, key: str) -> Any:
            return directives.unchanged

    def role(
        name: str, rawtext: str, text: str, lineno: int, inliner: Any, options: Any = None,
        content: Any = None,
    ) -> tuple[list[Any], list[Any]]:  # fmt: skip
        # :doc:`Title <path>` reads as "Title"; :meth:`~a.b.c` as "a.b.c"; :class:`.datetime`
        # (Sphinx: look in the current module first) as "datetime".
        match = re.match(r"^(.*?)\s*<[^<>]*>$", text, re.DOTALL)
        label = match.group(1) if match and match.group(1) else text
        label = label.lstrip("~!").removeprefix(".")
        return [nodes.literal(rawtext, utils.unescape(label))], []

    class Code(Directive):  # type: ignore[misc]
        optional_arguments = 1
        final_argument_whitespace = True
        has_content = True
        option_spec = AnyOptions()

        def run(self) -> list[Any]:
            code = "\n".join(self.content)
            return [nodes.literal_block(code, code)] if code.strip() else []

    class Skip(Code):
        def run(self) -> list[Any]:
            return []

    class Entry(Code):
        """`.. function:: lru_cache(user_function)`: a location of its own, named `lru_cache`,
        holding its description (and the methods of a class)."""

        def run(self) -> list[Any]:
            signature = self.arguments[0] if self.arguments else ""
            name = re.split(r"[\s(\[]", signature.strip().lstrip("@"), maxsplit=1)[0]
            section = nodes.section()
            section += nodes.title(text=name or signature)
            section += nodes.paragraph(text=" / ".join(signature.split("\n")))
            if self.content:
                self.state.nested_parse(self.content, self.content_offset, section)
            return [section]

    class Generic(Code):
        def run(self) -> list[Any]:
            out: list[Any] = []
            # Without content (`.. setting:: DEBUG` before its heading) it only marks a target.
            if self.arguments and self.content:
                out.append(nodes.paragraph(text=self.arguments[0]))
            if self.content:
                box = nodes.container()
                self.state.nested_parse(self.content, self.content_offset, box)
                out.append(box)
            return out

    for name in set(_ROLE.findall(text)):
        roles.register_local_role(name, role)
    for name in set(_DIRECTIVE.findall(text)) - _DOCUTILS_DIRECTIVES:
        kind = (
            Code if name in _CODE_DIRECTIVES else Skip if name in _SKIP_DIRECTIVES
            else Entry if name.rpartition(":")[2] in _API_DIRECTIVES else Generic
        )  # fmt: skip
        directives.register_directive(name, kind)


def _rst(text: str) -> list[Section]:
    from docutils import nodes
    from docutils.core import publish_doctree

    _register_markup(text)
    doctree = publish_doctree(
        text,
        settings_overrides={
            "report_level": 5,
            "halt_level": 5,
            "warning_stream": io.StringIO(),
            # `.. include:: /etc/passwd` and raw HTML must not reach the index.
            "file_insertion_enabled": False,
            "raw_enabled": False,
            "doctitle_xform": False,  # keep the top section, so it heads every location
        },
    )
    skip = (
        nodes.system_message, nodes.comment, nodes.target, nodes.substitution_definition,
        nodes.image, nodes.raw, nodes.title,
    )  # fmt: skip
    code = (nodes.literal_block, nodes.doctest_block)

    def render(node: Any) -> list[str]:
        if isinstance(node, skip):
            return []
        if isinstance(node, code):
            return [_code(node.astext())]
        if isinstance(node, nodes.Text):
            return [" ".join(node.astext().split())]
        if isinstance(node, nodes.TextElement) and next(node.findall(code), None) is None:
            return [" ".join(node.astext().split())]
        if isinstance(node, nodes.list_item):
            blocks = [b for child in node.children for b in render(child)]
            return [f"- {blocks[0]}", *blocks[1:]] if blocks else []
        if isinstance(node, nodes.row):
            return [" | ".join(" ".join(cell.astext().split()) for cell in node.children)]
        return [b for child in node.children for b in render(child)]

    sections: list[Section] = []

    def walk(node: Any, headings: list[str]) -> None:
        # A section's own body always comes before its subsections in reST.
        own = [child for child in node.children if not isinstance(child, nodes.section)]
        sections.append(_section(headings, "\n\n".join(b for c in own for b in render(c) if b)))
        for child in node.children:
            if isinstance(child, nodes.section):
                title = child.next_node(nodes.title)
                walk(child, [*headings, " ".join(title.astext().split()) if title else ""])

    walk(doctree, [])
    return sections


# --- HTML through BeautifulSoup ----------------------------------------------------------------

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


def _html(text: str) -> list[Section]:
    from bs4 import BeautifulSoup
    from bs4.element import Comment, NavigableString, Tag

    soup = BeautifulSoup(text, "html.parser")
    main = next((found for css in _MAIN if (found := soup.select_one(css)) is not None), soup)
    for css in _DROP:
        for element in main.select(css):
            element.decompose()
    for anchor in main.find_all("a"):
        if anchor.get_text(strip=True) in _ANCHOR_MARKS:
            anchor.decompose()  # a heading's permalink ("#", "¶"), not words

    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    parts: list[str] = []

    def walk(node: Tag) -> None:
        nonlocal stack, parts
        for child in node.children:
            if isinstance(child, Comment):
                continue
            if isinstance(child, NavigableString):
                parts.append(re.sub(r"\s+", " ", str(child)))
            elif not isinstance(child, Tag):
                continue
            elif child.name in _HEADINGS:
                sections.append(_section([t for _, t in stack], parts))
                level = int(child.name[1])
                title = " ".join(child.get_text().split())  # "<code>email</code>: Examples"
                stack = [item for item in stack if item[0] < level] + [(level, title)]
                parts = []
            elif child.name == "dl" and _api_entries(child):
                api(child)
            elif child.name == "pre":
                parts.append(f"\n\n{_code(child.get_text())}\n\n")
            elif child.name in _BLOCKS:
                parts.append("\n")
                walk(child)
                parts.append("\n")
            else:
                walk(child)

    def api(entries: Tag) -> None:
        """Each entry of a Sphinx API list (or glossary) is a location under the heading; its
        signatures (one `<dt>` each, several for an overloaded one) head its text."""
        nonlocal stack, parts
        around, previous = stack, ""
        # "The csv module defines the following functions:" says nothing alone: it leads into
        # the first entry instead of being a passage of its own.
        lead_in = "".join(parts).strip()
        lead_in = lead_in if lead_in.endswith(":") and "\n" not in lead_in else ""
        if lead_in:
            parts = []
        for child in entries.find_all(["dt", "dd"], recursive=False):
            if child.name == "dd":
                walk(child)
            elif previous == "dt":  # another signature of the same entry
                parts += [" ".join(child.get_text().split()), "\n"]
            else:
                sections.append(_section([t for _, t in stack], parts))
                stack = [*around, (_API_LEVEL, _entry_name(child))]
                parts = [f"{lead_in}\n\n" if lead_in else "", " ".join(child.get_text().split())]
                parts.append("\n")
                lead_in = ""
            previous = child.name
        sections.append(_section([t for _, t in stack], parts))
        stack, parts = around, []

    walk(main)
    sections.append(_section([t for _, t in stack], parts))
    return [Section(_strip_lines(s.text), s.headings) for s in sections]


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


# --- PDF --------------------------------------------------------------------------------------


def _pdf(path: Path) -> Iterator[Section]:
    from pypdf import PdfReader

    for number, page in enumerate(PdfReader(path).pages, start=1):
        yield _section([], [page.extract_text() or ""], page=number)


# --- Dispatch ---------------------------------------------------------------------------------


def _lines(path: Path) -> Iterator[str]:
    # Strict decoding: text that turns out not to be UTF-8 halfway raises UnicodeDecodeError.
    with path.open(encoding="utf-8-sig") as handle:
        yield from handle


def _is_rst(path: Path) -> bool:
    with path.open(encoding="utf-8-sig", errors="replace") as handle:
        head = handle.read(_BLOCK_CHARS)
    return path.stat().st_size <= _TREE_MAX_BYTES and _RST_HINT.search(head) is not None


def read_sections(path: Path) -> Iterator[Section]:
    """The sections of the document at `path` that hold text, in order.

    A heading is never a section by itself: it is carried in the `headings` of the text under
    it. Raises UnicodeDecodeError for text that is not UTF-8.
    """
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        sections: Iterable[Section] = _pdf(path)
    elif suffix in {".md", ".markdown"}:
        sections = _markdown(_lines(path))
    elif suffix in {".html", ".htm"}:
        sections = _html(path.read_text(encoding="utf-8-sig"))
    elif suffix == ".rst" or (suffix == ".txt" and _is_rst(path)):
        if path.stat().st_size <= _TREE_MAX_BYTES:
            sections = _rst(path.read_text(encoding="utf-8-sig"))
        else:
            sections = _plain(_lines(path))
    else:
        sections = _plain(_lines(path))
    return (section for section in sections if section.text)
