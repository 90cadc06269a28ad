"""What a documentation build generated beside its pages: Sphinx's source copies and indexes,
MkDocs' and Docusaurus' search and error pages. Only a folder that is certainly a build's output
is judged, by the marks its generator always leaves there.

A folder is a Sphinx HTML build when it holds two of `.buildinfo`, `objects.inv`,
`searchindex.js` and `_static/documentation_options.js` (one alone can be a coincidence: projects
keep a downloaded `objects.inv` beside their sources for intersphinx). It is an MkDocs build when
it holds `sitemap.xml` (or `.gz`) and either `search/search_index.json` or an `index.html` whose
generator is MkDocs; a Docusaurus build when its `index.html` names Docusaurus as its generator.
A folder that merely has a `_sources` or `search` folder of real documents is none of these, and
is read as it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath

_HEAD_BYTES = 4096  # of index.html: its <meta name="generator"> is in the head
_GENERATOR = re.compile(rb"""<meta\s+name=["']?generator["']?\s+content=["']?([\w.-]+)""", re.I)
_SPHINX_MARKS = (".buildinfo", "objects.inv", "searchindex.js", "_static/documentation_options.js")


@dataclass(frozen=True)
class Build:
    """A build's output folder: `folders` are wholly generated, `files` name generated files
    (relative to the folder), `patterns` (globs) generated files at its top."""

    tool: str
    folders: frozenset[str]
    files: frozenset[str]
    patterns: tuple[str, ...] = ()

    def generated(self, relative: PurePosixPath) -> bool:
        if relative.parts[0] in self.folders and len(relative.parts) > 1:
            return True
        if relative.as_posix() in self.files:
            return True
        return len(relative.parts) == 1 and any(
            fnmatchcase(relative.name, p) for p in self.patterns
        )


_SPHINX_FILES = frozenset({
    "searchindex.js", "objects.inv", "search.html", "genindex.html", "py-modindex.html",
    "search/index.html", "genindex/index.html", "py-modindex/index.html",  # dirhtml's
})  # fmt: skip
SPHINX = Build(
    "Sphinx",
    # Copies of every page's source (`_sources/*.rst.txt`, the "Show Source" link), theme files,
    # images, and highlighted module source (viewcode's `_modules`).
    folders=frozenset({"_sources", "_static", "_images", "_modules"}),
    files=_SPHINX_FILES,
    patterns=("genindex-*.html", "*-modindex.html"),  # the index split by letter; domain indexes
)
MKDOCS = Build(
    "MkDocs",
    folders=frozenset(),
    files=frozenset({"sitemap.xml", "sitemap.xml.gz", "404.html", "search/search_index.json"}),
)
DOCUSAURUS = Build(
    "Docusaurus",
    folders=frozenset(),
    files=frozenset({"sitemap.xml", "404.html", "search/index.html"}),
)


def build_at(folder: Path) -> Build | None:
    """The build whose output `folder` is, by its marks, or None for a folder of documents."""
    if sum((folder / mark).is_file() for mark in _SPHINX_MARKS) >= 2:
        return SPHINX
    generator = _generator(folder / "index.html")
    if generator.startswith("docusaurus"):
        return DOCUSAURUS
    sitemap = (folder / "sitemap.xml").is_file() or (folder / "sitemap.xml.gz").is_file()
    if sitemap and (
        (folder / "search" / "search_index.json").is_file() or generator.startswith("mkdocs")
    ):
        return MKDOCS
    return None


def _generator(page: Path) -> str:
    """The generator an HTML page names in its head, lower case ("" when none)."""
    if not page.is_file() or page.is_symlink():
        return ""
    with page.open("rb") as handle:
        match = _GENERATOR.search(handle.read(_HEAD_BYTES))
    return match.group(1).decode("ascii", "replace").lower() if match else ""


class Builds:
    """The builds under one folder being walked, each folder looked at once."""

    def __init__(self, top: Path) -> None:
        self._top = top
        self._seen: dict[Path, Build | None] = {}

    def generated(self, path: Path) -> Build | None:
        """The build that generated `path` (a file under the top folder), if one did."""
        folder = path.parent
        while True:
            if folder not in self._seen:
                self._seen[folder] = build_at(folder)
            build = self._seen[folder]
            if build is not None and build.generated(PurePosixPath(path.relative_to(folder))):
                return build
            if folder == self._top or folder == folder.parent:
                return None
            folder = folder.parent
