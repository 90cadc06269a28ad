"""reStructuredText through docutils, Sphinx's roles and directives turned into their text.

Imported only when a reST file is read: docutils is not loaded otherwise.
"""

from __future__ import annotations

import io
import re
from typing import Any

from docutils import nodes, utils
from docutils.core import publish_doctree
from docutils.parsers.rst import Directive, directives, roles

from core.knowledge.sections import Section, code_block, section

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


class _AnyOptions(dict[str, Any]):
    def __missing__(self, key: str) -> Any:
        return directives.unchanged


def _role(
    name: str, rawtext: str, text: str, lineno: int, inliner: Any, options: Any = None,
    content: Any = None,
) -> tuple[list[Any], list[Any]]:  # fmt: skip
    # :doc:`Title <path>` reads as "Title"; :meth:`~a.b.c` as "a.b.c"; :class:`.datetime`
    # (Sphinx: look in the current module first) as "datetime".
    match = re.match(r"^(.*?)\s*<[^<>]*>$", text, re.DOTALL)
    label = match.group(1) if match and match.group(1) else text
    label = label.lstrip("~!").removeprefix(".")
    return [nodes.literal(rawtext, utils.unescape(label))], []


class _Code(Directive):  # type: ignore[misc]
    optional_arguments = 1
    final_argument_whitespace = True
    has_content = True
    option_spec = _AnyOptions()

    def run(self) -> list[Any]:
        code = "\n".join(self.content)
        return [nodes.literal_block(code, code)] if code.strip() else []


class _Skip(_Code):
    def run(self) -> list[Any]:
        return []


class _Entry(_Code):
    """`.. function:: lru_cache(user_function)`: a location of its own, named `lru_cache`,
    holding its description (and the methods of a class)."""

    def run(self) -> list[Any]:
        signature = self.arguments[0] if self.arguments else ""
        name = re.split(r"[\s(\[]", signature.strip().lstrip("@"), maxsplit=1)[0]
        entry = nodes.section()
        entry += nodes.title(text=name or signature)
        entry += nodes.paragraph(text=" / ".join(signature.split("\n")))
        if self.content:
            self.state.nested_parse(self.content, self.content_offset, entry)
        return [entry]


class _Generic(_Code):
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


def _register_markup(text: str) -> None:
    """Teach docutils the Sphinx roles and directives `text` uses, so they become text.

    Sphinx projects use their own (`:setting:`, `.. versionadded::`); docutils alone would
    leave them as error messages with their markup. The registry is docutils' own, per process.
    """
    for name in set(_ROLE.findall(text)):
        roles.register_local_role(name, _role)
    for name in set(_DIRECTIVE.findall(text)) - _DOCUTILS_DIRECTIVES:
        kind = (
            _Code if name in _CODE_DIRECTIVES else _Skip if name in _SKIP_DIRECTIVES
            else _Entry if name.rpartition(":")[2] in _API_DIRECTIVES else _Generic
        )  # fmt: skip
        directives.register_directive(name, kind)


def rst_sections(text: str) -> list[Section]:
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
            return [code_block(node.astext())]
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
        sections.append(section(headings, "\n\n".join(b for c in own for b in render(c) if b)))
        for child in node.children:
            if isinstance(child, nodes.section):
                title = child.next_node(nodes.title)
                walk(child, [*headings, " ".join(title.astext().split()) if title else ""])

    walk(doctree, [])
    return sections
