"""A documentation website, read as a careful visitor would: what robots.txt allows, under the
URL given only, a few requests at a time, each page asked for again only if it changed.

`Crawler(settings, start_url).pages()` yields each page under the prefix: fetched (its bytes, to
be read as the HTML or PDF extractor reads a file) or unchanged (a 304 to a conditional request,
from the `known` validators of the last crawl). It starts from the site's sitemaps (robots.txt's
`Sitemap:` lines, else `/sitemap.xml`) and the pages of the last crawl, and follows links from
every page it reads; a redirect is followed only when it stays under the prefix. What it passes
over is counted by reason; a page gone since (404) is counted as failed, and not yielded.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal
from urllib.parse import urldefrag, urljoin, urlsplit, urlunsplit
from urllib.robotparser import RobotFileParser

import aiohttp

from core.errors import KnowledgeError

if TYPE_CHECKING:
    from core.settings import Settings

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 30.0
SITEMAP_DEPTH = 3  # a sitemap index of sitemap indexes of sitemaps, at most
_HTML = ("text/html", "application/xhtml+xml")
_PDF = "application/pdf"
# Copies a documentation generator publishes beside each page (Sphinx's "Show Source" link,
# its search pages): the page itself is read, its copy never.
_GENERATED = ("/_sources/", "/_static/", "/_images/", "/_modules/", "/search/")
_GENERATED_NAMES = ("searchindex.js", "search.html", "genindex.html", "py-modindex.html")

Skip = Literal[
    "robots.txt", "outside the prefix", "not HTML or PDF", "too large", "generated copy",
    "page limit",
]  # fmt: skip


@dataclass(frozen=True)
class Validators:
    """What a server said of a page last time, for a conditional request."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class Page:
    url: str  # where it was read (after redirects), without a fragment
    canonical: str  # how it is cited: its <link rel="canonical"> under the prefix, else `url`
    kind: Literal["html", "pdf"]
    body: bytes | None  # None: unchanged since `known` (a 304)
    validators: Validators = Validators()


@dataclass
class CrawlReport:
    fetched: int = 0
    unchanged: int = 0  # 304s
    failed: Counter[str] = field(default_factory=Counter)  # by HTTP status or error
    skipped: Counter[str] = field(default_factory=Counter)  # by reason
    gone: list[str] = field(default_factory=list)  # 404 or 410: removed from the site
    seconds: float = 0.0


class CrawlRefused(KnowledgeError):
    """The site cannot be crawled at all (robots.txt unreadable, the start URL disallowed)."""


class Crawler:
    def __init__(
        self,
        settings: Settings,
        start_url: str,
        *,
        known: Mapping[str, Validators] | None = None,
    ) -> None:
        parts = urlsplit(start_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise CrawlRefused(f"{start_url} is not an http(s) URL")
        self._agent = settings.crawl_user_agent
        self._max_pages = settings.crawl_max_pages
        self._max_bytes = settings.ingest_max_file_bytes
        self._workers = settings.crawl_concurrency
        self._interval_s = 1 / settings.crawl_rate
        self._origin = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
        self._start = _normal(start_url)
        path = urlsplit(self._start).path or "/"
        # `/guide/` and `/guide` are the guide; `/guide/index.html` is its folder's.
        last = path.rsplit("/", 1)[-1]
        self._prefix = (
            path
            if path.endswith("/")
            else (path.rsplit("/", 1)[0] + "/" if "." in last else path + "/")
        )
        self._known = dict(known or {})
        self._robots = RobotFileParser()
        self._next_at = 0.0  # when the next request may go (the rate, and Crawl-delay)
        self._pacing = asyncio.Lock()
        self.report = CrawlReport()

    def within(self, url: str) -> bool:
        """Under the prefix given, on the same host (and scheme)."""
        parts = urlsplit(url)
        origin = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
        path = parts.path or "/"
        return origin == self._origin and (path + "/").startswith(self._prefix)

    async def pages(self) -> AsyncIterator[Page]:
        started = time.monotonic()
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
        headers = {"User-Agent": self._agent}
        async with aiohttp.ClientSession(timeout=timeout, headers=headers) as http:
            sitemaps = await self._read_robots(http)
            if not self._robots.can_fetch(self._agent, self._start):
                raise CrawlRefused(f"robots.txt of {self._origin} disallows {self._start}")
            delay = self._robots.crawl_delay(self._agent)
            if delay is not None:
                self._interval_s = max(self._interval_s, float(delay))
            # The pages of the last crawl too: an unchanged page (a 304) shows no links.
            seeds = [self._start, *await self._sitemap_urls(http, sitemaps), *self._known]
            async for page in self._walk(http, seeds):
                yield page
        self.report.seconds = time.monotonic() - started

    async def _walk(self, http: aiohttp.ClientSession, seeds: list[str]) -> AsyncIterator[Page]:
        """Breadth first from `seeds`, `crawl_concurrency` requests at a time."""
        seen: set[str] = set()
        queue: asyncio.Queue[str] = asyncio.Queue()
        for url in seeds:
            self._enqueue(url, seen, queue)
        found: asyncio.Queue[Page | None] = asyncio.Queue()
        taken = 0

        async def worker() -> None:
            nonlocal taken
            while True:
                url = await queue.get()
                try:
                    if taken >= self._max_pages:
                        self.report.skipped["page limit"] += 1
                        continue
                    taken += 1
                    page, links = await self._fetch(http, url)
                    for link in links:
                        self._enqueue(link, seen, queue)
                    if page is not None:
                        await found.put(page)
                finally:
                    queue.task_done()

        workers = [asyncio.create_task(worker()) for _ in range(self._workers)]

        async def closing() -> None:
            await queue.join()
            await found.put(None)

        closer = asyncio.create_task(closing())
        try:
            while (page := await found.get()) is not None:
                yield page
        finally:
            for task in (*workers, closer):
                task.cancel()
            await asyncio.gather(*workers, closer, return_exceptions=True)

    def _enqueue(self, url: str, seen: set[str], queue: asyncio.Queue[str]) -> None:
        url = _normal(url)
        if url in seen:
            return
        seen.add(url)
        reason = self._passed_over(url)
        if reason is not None:
            self.report.skipped[reason] += 1
            return
        queue.put_nowait(url)

    def _passed_over(self, url: str) -> Skip | None:
        if not self.within(url):
            return "outside the prefix"
        path = urlsplit(url).path
        if any(part in path for part in _GENERATED) or path.endswith(_GENERATED_NAMES):
            return "generated copy"
        if path.endswith(".rst.txt") or path.endswith(".md.txt"):
            return "generated copy"
        if not self._robots.can_fetch(self._agent, url):
            return "robots.txt"
        return None

    async def _paced(self) -> None:
        """Wait for this request's turn: at most one per interval, across the workers."""
        async with self._pacing:
            now = time.monotonic()
            wait = self._next_at - now
            self._next_at = max(now, self._next_at) + self._interval_s
        if wait > 0:
            await asyncio.sleep(wait)

    async def _get(
        self, http: aiohttp.ClientSession, url: str, headers: Mapping[str, str] | None = None
    ) -> tuple[int, Mapping[str, str], bytes]:
        await self._paced()
        async with http.get(url, headers=headers, allow_redirects=False) as response:
            size = response.content_length or 0
            if size > self._max_bytes:
                return -1, response.headers, b""
            body = await response.content.read(self._max_bytes + 1)
            if len(body) > self._max_bytes:
                return -1, response.headers, b""
            return response.status, response.headers, body

    async def _fetch(self, http: aiohttp.ClientSession, url: str) -> tuple[Page | None, list[str]]:
        """One page: (the page or None, the links to follow from it)."""
        known = self._known.get(url, Validators())
        conditional = {}
        if known.etag:
            conditional["If-None-Match"] = known.etag
        if known.last_modified:
            conditional["If-Modified-Since"] = known.last_modified
        try:
            status, headers, body = await self._get(http, url, conditional)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("could not read %s: %r", url, exc)
            self.report.failed[type(exc).__name__] += 1
            return None, []
        if status in (301, 302, 303, 307, 308):
            # Followed like a link: only under the prefix, once (a loop ends at `seen`).
            target = headers.get("Location")
            return None, [urljoin(url, target)] if target else []
        if status == -1:
            self.report.skipped["too large"] += 1
            return None, []
        kind = _kind(headers.get("Content-Type", ""))
        if status == 304:
            self.report.unchanged += 1
            # Unchanged: it keeps the passages (and the citation) it has.
            return Page(url, url, kind or "html", None, known), []
        if status != 200:
            self.report.failed[str(status)] += 1
            if status in (404, 410):
                self.report.gone.append(url)
            return None, []
        if kind is None:
            self.report.skipped["not HTML or PDF"] += 1
            return None, []
        self.report.fetched += 1
        validators = Validators(headers.get("ETag"), headers.get("Last-Modified"))
        if kind == "pdf":
            return Page(url, url, "pdf", body, validators), []
        canonical, links = _links(url, body)
        cited = canonical if canonical is not None and self.within(canonical) else url
        return Page(url, cited, "html", body, validators), links

    async def _read_robots(self, http: aiohttp.ClientSession) -> list[str]:
        """Read robots.txt (none, or a 4xx: everything is allowed); its sitemaps."""
        url = f"{self._origin}/robots.txt"
        try:
            status, _, body = await self._get(http, url)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise CrawlRefused(f"could not read {url}: {exc!r}") from exc
        if status >= 500 or status == -1:
            # The site may be down: crawling now could ignore rules it cannot show.
            raise CrawlRefused(f"{url} answered {status}: not crawling until it can be read")
        lines = body.decode("utf-8", "replace").splitlines() if status == 200 else []
        self._robots.parse(lines)
        return list(self._robots.site_maps() or [f"{self._origin}/sitemap.xml"])

    async def _sitemap_urls(self, http: aiohttp.ClientSession, sitemaps: list[str]) -> list[str]:
        """The page URLs the sitemaps list (sitemap indexes followed, gzip read)."""
        urls: list[str] = []
        todo = [(url, 0) for url in sitemaps]
        while todo:
            url, depth = todo.pop(0)
            try:
                status, _, body = await self._get(http, url)
            except (aiohttp.ClientError, TimeoutError):
                continue
            if status != 200:
                continue
            if body[:2] == b"\x1f\x8b":
                try:
                    body = gzip.decompress(body)[: self._max_bytes]
                except (OSError, EOFError):
                    continue
            try:
                root = ET.fromstring(body)
            except ET.ParseError:
                log.info("%s is not a sitemap", url)
                continue
            locs = [e.text.strip() for e in root.iter() if e.tag.endswith("loc") and e.text]
            if root.tag.endswith("sitemapindex"):
                if depth < SITEMAP_DEPTH:
                    todo += [(loc, depth + 1) for loc in locs]
            else:
                urls += locs
        return urls


def _normal(url: str) -> str:
    """The URL without its fragment, with a path."""
    url, _ = urldefrag(url)
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.lower(), parts.path or "/", parts.query, ""))


def _kind(content_type: str) -> Literal["html", "pdf"] | None:
    mime = content_type.split(";")[0].strip().lower()
    if mime in _HTML:
        return "html"
    return "pdf" if mime == _PDF else None


def _links(url: str, body: bytes) -> tuple[str | None, list[str]]:
    """The page's canonical URL and the links it has (absolute)."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(body, "html.parser")
    canonical = None
    for link in soup.find_all("link", href=True):
        if "canonical" in (link.get("rel") or []):
            canonical = _normal(urljoin(url, str(link["href"])))
    base = soup.find("base", href=True)
    here = urljoin(url, str(base["href"])) if base is not None else url
    links = [
        urljoin(here, str(a["href"]))
        for a in soup.find_all("a", href=True)
        if not str(a["href"]).startswith(("mailto:", "javascript:", "tel:"))
    ]
    return canonical, links
