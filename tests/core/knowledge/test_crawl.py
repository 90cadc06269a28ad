"""The crawler against a real HTTP documentation site on loopback: robots.txt, a sitemap,
redirects, a slow page, a 404, a generated source copy, conditional requests."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from core.knowledge.crawl import Crawler, CrawlRefused, Page, Validators
from tests.conftest import MakeSettings

pytestmark = pytest.mark.timeout(60)


def page(title: str, *links: str, canonical: str = "") -> str:
    anchors = "".join(f'<a href="{link}">{link}</a> ' for link in links)
    head = f'<link rel="canonical" href="{canonical}">' if canonical else ""
    return (
        f"<html><head><title>{title}</title>{head}</head><body><main><h1>{title}</h1>"
        f"<p>About {title}.</p>{anchors}</main></body></html>"
    )


@dataclass
class DocsSite:
    """A small docs site: what it serves, and every request it got (path, time, headers)."""

    pages: dict[str, tuple[str, str]] = field(default_factory=dict)  # path -> (type, body)
    robots: str | None = "User-agent: *\nDisallow: /guide/private/\n"
    robots_status: int = 200
    slow: dict[str, float] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[str, float, dict[str, str]]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.requests.append((path, time.monotonic(), dict(request.headers)))
        if path in self.slow:
            await asyncio.sleep(self.slow[path])
        if path == "/robots.txt":
            if self.robots is None:
                return web.Response(status=404)
            return web.Response(text=self.robots, status=self.robots_status)
        if path in self.redirects:
            raise web.HTTPFound(self.redirects[path])
        if path not in self.pages:
            return web.Response(status=404, text="not here")
        kind, body = self.pages[path]
        etag = f'"{hash(body) & 0xFFFFFF:x}"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(text=body, content_type=kind, headers={"ETag": etag})

    def paths(self) -> list[str]:
        return [p for p, _, _ in self.requests]


@pytest.fixture
async def site() -> AsyncIterator[DocsSite]:
    served = DocsSite()
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", served.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    served.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    html = "text/html"
    served.pages = {
        "/guide/": (
            html,
            page(
                "Guide",
                "install.html",
                "usage.html",
                "private/secret.html",
                "/blog/post.html",
                "old.html",
                "missing.html",
                "_sources/install.rst.txt",
            ),
        ),
        "/guide/install.html": (html, page("Install", "usage.html#flags", "slow.html")),
        "/guide/usage.html": (html, page("Usage", "/guide/", canonical="/guide/usage.html")),
        "/guide/slow.html": (html, page("Slow")),
        "/guide/private/secret.html": (html, page("Secret")),
        "/guide/_sources/install.rst.txt": ("text/plain", "Install\n=======\n"),
        "/guide/manual.pdf": ("application/pdf", "%PDF-1.4 not really"),
        "/guide/data.json": ("application/json", "{}"),
        "/guide/moved.html": (html, page("Moved")),
        "/blog/post.html": (html, page("Blog")),
    }
    served.redirects = {"/guide/old.html": "/guide/moved.html", "/guide/away.html": "/blog/"}
    served.slow = {"/guide/slow.html": 0.5}
    yield served
    await runner.cleanup()


async def crawled(crawler: Crawler) -> list[Page]:
    return [p async for p in crawler.pages()]


async def test_the_crawl_obeys_robots_stays_under_the_prefix_and_skips_copies(
    site: DocsSite, make_settings: MakeSettings
) -> None:
    site.pages["/sitemap.xml"] = (
        "application/xml",
        '<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        f"<url><loc>{site.url}/guide/manual.pdf</loc></url>"
        f"<url><loc>{site.url}/guide/data.json</loc></url>"
        f"<url><loc>{site.url}/guide/away.html</loc></url>"
        f"<url><loc>{site.url}/blog/post.html</loc></url></urlset>",
    )
    crawler = Crawler(make_settings(crawl_rate=50), f"{site.url}/guide/")
    pages = {p.url.removeprefix(site.url): p for p in await crawled(crawler)}

    assert sorted(pages) == [
        "/guide/", "/guide/install.html", "/guide/manual.pdf", "/guide/moved.html",
        "/guide/slow.html", "/guide/usage.html",
    ]  # fmt: skip
    assert pages["/guide/manual.pdf"].kind == "pdf" and pages["/guide/"].kind == "html"
    assert b"About Install." in (pages["/guide/install.html"].body or b"")
    asked = site.paths()
    assert "/guide/private/secret.html" not in asked  # robots.txt
    assert "/blog/post.html" not in asked and "/blog/" not in asked  # outside, redirect too
    assert "/guide/_sources/install.rst.txt" not in asked  # the page's generated copy
    assert asked.count("/guide/usage.html") == 1  # a link with a fragment is the same page
    report = crawler.report
    assert report.fetched == 6 and report.failed == {"404": 1}
    assert report.skipped["robots.txt"] == 1 and report.skipped["generated copy"] == 1
    assert report.skipped["not HTML or PDF"] == 1
    assert report.skipped["outside the prefix"] >= 2
    assert all(h.get("User-Agent") == "threadbot" for _, _, h in site.requests)


async def test_requests_keep_to_the_rate_and_the_crawl_delay(
    site: DocsSite, make_settings: MakeSettings
) -> None:
    crawler = Crawler(make_settings(crawl_rate=10, crawl_concurrency=4), f"{site.url}/guide/")
    await crawled(crawler)
    times = [t for _, t, _ in site.requests]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(times) >= 8 and min(gaps) >= 0.09  # 10 a second, at most, with 4 workers

    site.requests.clear()
    site.robots = "User-agent: *\nCrawl-delay: 1\nDisallow: /guide/private/\n"
    slow_site = Crawler(make_settings(crawl_rate=50, crawl_max_pages=3), f"{site.url}/guide/")
    await crawled(slow_site)
    # robots.txt itself is read before its Crawl-delay is known; every request after it waits.
    times = [t for path, t, _ in site.requests if path != "/robots.txt"]
    assert len(times) >= 3 and min(b - a for a, b in itertools.pairwise(times)) >= 0.95


async def test_a_second_crawl_asks_conditionally_and_costs_304s(
    site: DocsSite, make_settings: MakeSettings
) -> None:
    first = await crawled(Crawler(make_settings(crawl_rate=50), f"{site.url}/guide/"))
    known = {p.url: p.validators for p in first}
    assert all(v.etag for v in known.values())
    site.pages["/guide/usage.html"] = ("text/html", page("Usage, changed"))
    del site.pages["/guide/moved.html"]  # removed from the site
    again = Crawler(make_settings(crawl_rate=50), f"{site.url}/guide/", known=known)
    second = {p.url.removeprefix(site.url): p for p in await crawled(again)}
    changed = [u for u, p in second.items() if p.body is not None]
    assert changed == ["/guide/usage.html"]  # only the page that changed is read again
    assert "/guide/moved.html" not in second  # gone: not yielded, so it drops out
    assert again.report.unchanged == len(second) - 1 and again.report.fetched == 1
    conditional = [h for p, _, h in site.requests[-len(second) :] if "If-None-Match" in h]
    assert conditional


async def test_the_canonical_url_is_cited_when_it_is_under_the_prefix(
    site: DocsSite, make_settings: MakeSettings
) -> None:
    site.pages["/guide/install.html"] = (
        "text/html",
        page("Install", canonical="/guide/install/"),  # a trailing-slash canonical
    )
    site.pages["/guide/elsewhere.html"] = ("text/html", page("E", canonical="https://x.org/"))
    site.pages["/guide/"] = ("text/html", page("Guide", "install.html", "elsewhere.html"))
    pages = await crawled(Crawler(make_settings(crawl_rate=50), f"{site.url}/guide/"))
    cited = {p.url.removeprefix(site.url): p.canonical.removeprefix(site.url) for p in pages}
    assert cited["/guide/install.html"] == "/guide/install/"
    assert cited["/guide/elsewhere.html"] == "/guide/elsewhere.html"  # not another site's


async def test_a_page_limit_and_a_robots_txt_that_cannot_be_read(
    site: DocsSite, make_settings: MakeSettings
) -> None:
    limited = Crawler(make_settings(crawl_rate=50, crawl_max_pages=2), f"{site.url}/guide/")
    assert len(await crawled(limited)) <= 2 and limited.report.skipped["page limit"] >= 1

    site.pages.pop("/sitemap.xml", None)
    site.robots = None  # a 404: everything is allowed
    assert await crawled(Crawler(make_settings(crawl_rate=50), f"{site.url}/guide/usage.html"))

    site.robots, site.robots_status = "", 503  # the site may be down: no rules to obey
    with pytest.raises(CrawlRefused, match="answered 503"):
        await crawled(Crawler(make_settings(), f"{site.url}/guide/"))
    site.robots, site.robots_status = "User-agent: *\nDisallow: /\n", 200
    with pytest.raises(CrawlRefused, match="disallows"):
        await crawled(Crawler(make_settings(), f"{site.url}/guide/"))
    with pytest.raises(CrawlRefused, match="not an http"):
        Crawler(make_settings(), "ftp://example.com/")
    assert Validators() == Validators(None, None)


def test_the_prefix_is_the_folder_of_the_url_given(make_settings: MakeSettings) -> None:
    settings = make_settings()
    for given in ("https://d.org/guide/", "https://d.org/guide", "https://d.org/guide/index.html"):
        crawler = Crawler(settings, given)
        assert crawler.within("https://d.org/guide/a/b.html"), given
        assert crawler.within("https://d.org/guide/"), given
        assert not crawler.within("https://d.org/guides.html"), given
        assert not crawler.within("https://d.org/blog/"), given
        assert not crawler.within("http://d.org/guide/"), given  # another scheme
