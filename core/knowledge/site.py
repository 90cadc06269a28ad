"""A website as a folder the ingest reads: each page the crawler fetched saved under the data
folder, with a manifest of how each is cited (its canonical URL) and what its server said of it
(ETag, Last-Modified) for the next crawl's conditional requests.

So a site is indexed as files are, with everything the ingest does for them (a page unchanged
since costs nothing, a text found twice is kept once, generated copies are skipped), and a page
the site no longer has (a 404 or 410) leaves the folder and then the index. A page that could
not be read this time (a timeout, a 5xx) keeps its last copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from core.knowledge.crawl import Crawler, CrawlReport, Page, Validators

if TYPE_CHECKING:
    from core.settings import Settings

MANIFEST = ".threadbot-site.json"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def mirror_dir(settings: Settings, url: str) -> Path:
    """Where the pages of the site at `url` are kept (one folder per start URL)."""
    parts = urlsplit(url)
    name = _UNSAFE.sub("_", f"{parts.netloc}{parts.path}").strip("_") or "site"
    digest = hashlib.sha256(url.encode()).hexdigest()[:8]
    return settings.data_dir / "sites" / f"{name[:80]}-{digest}"


def cited_as(root: Path) -> dict[str, str]:
    """For a mirrored site's folder: each page file (relative) -> the URL it is cited by."""
    manifest = root / MANIFEST
    if not manifest.is_file():
        return {}
    pages: dict[str, dict[str, Any]] = json.loads(manifest.read_text("utf-8")).get("pages", {})
    return {relative: page["canonical"] for relative, page in pages.items()}


async def mirror(settings: Settings, url: str) -> tuple[Path, CrawlReport]:
    """Crawl the site at `url` into its folder; returns the folder and what the crawl did."""
    folder = mirror_dir(settings, url)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / MANIFEST
    pages: dict[str, dict[str, Any]] = {}
    if manifest.is_file():
        pages = json.loads(manifest.read_text("utf-8")).get("pages", {})
    known = {
        page["url"]: Validators(page.get("etag"), page.get("last_modified"))
        for relative, page in pages.items()
        if (folder / relative).is_file()  # a copy lost from the folder is fetched whole
    }
    crawler = Crawler(settings, url, known=known)
    async for page in crawler.pages():
        relative = _file_for(page)
        if page.body is not None:
            _write(folder / relative, page.body)
            pages[relative] = {"url": page.url, "canonical": page.canonical} | asdict(
                page.validators
            )
    gone = set(crawler.report.gone)
    for relative, entry in list(pages.items()):
        if entry["url"] in gone:
            (folder / relative).unlink(missing_ok=True)
            del pages[relative]
    _write(manifest, json.dumps({"start": url, "pages": pages}, indent=1).encode())
    return folder, crawler.report


def _file_for(page: Page) -> str:
    """The page's file in the folder: its URL path, `index.html` for a folder's URL, the
    suffix its kind reads as, a query made part of the name."""
    parts = urlsplit(page.url)
    path = parts.path.lstrip("/")
    if not path or path.endswith("/"):
        path += "index.html"
    suffix = ".pdf" if page.kind == "pdf" else ".html"
    if parts.query:
        path += "-" + hashlib.sha256(parts.query.encode()).hexdigest()[:8]
    if not path.lower().endswith((suffix, ".htm") if page.kind == "html" else (suffix,)):
        path += suffix
    safe = [
        _UNSAFE.sub("_", piece) or "_" for piece in path.split("/") if piece not in ("", ".", "..")
    ]
    return f"{parts.netloc.replace(':', '_')}/{'/'.join(safe)}"


def _write(path: Path, data: bytes) -> None:
    """Written whole or not at all (a crash never leaves half a page)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)
