"""`threadbot ingest https://…` as a user runs it: the real command crawls a real site on
loopback, indexes its pages cited by URL, and a second run costs conditional requests only."""

# ruff: noqa: F811 (the tests take `site`, the fixture imported from test_crawl, by name)
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli_runner import env_for, threadbot
from tests.core.knowledge.test_crawl import DocsSite, page, site  # noqa: F401 (site: a fixture)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return env_for(
        tmp_path, THREADBOT_DATA_DIR=str(tmp_path / "data"), EMBEDDINGS="local", CRAWL_RATE="50"
    )


async def search(env: dict[str, str], question: str) -> list[dict[str, object]]:
    out, err, code = await threadbot("search", "--json", question, env=env)
    assert code == 0, err
    return json.loads(out.splitlines()[0])["passages"]  # type: ignore[no-any-return]


async def test_a_site_is_indexed_cited_by_url_and_refreshed_with_conditional_requests(
    site: DocsSite, env: dict[str, str]
) -> None:
    site.pages["/guide/install.html"] = (
        "text/html",
        page("Install", "usage.html").replace(
            "About Install.", "Install the zorblax agent with pipx."
        ),
    )
    out, err, code = await threadbot("ingest", f"{site.url}/guide/", env=env)
    assert code == 0, err
    crawled, indexed = out.splitlines()[:2]
    assert crawled.startswith(f"Crawled {site.url}/guide/ in ") and "0 unchanged (304)" in crawled
    assert "skipped" in crawled and "robots.txt" in crawled
    assert indexed.startswith("Indexed ")
    found = await search(env, "how do I install the zorblax agent?")
    assert found and found[0]["source"] == f"{site.url}/guide/install.html"  # the page to open
    assert "zorblax" in str(found[0]["text"])

    # Again: every page asked for conditionally; nothing new to read or embed.
    site.requests.clear()
    out, err, code = await threadbot("ingest", f"{site.url}/guide/", env=env)
    assert code == 0, err
    assert ": 0 pages fetched, 4 unchanged (304)" in out.splitlines()[0]
    pages = [(p, h) for p, _, h in site.requests if p.endswith(".html") or p.endswith("/")]
    assert pages and all("If-None-Match" in h for p, h in pages if p != "/guide/old.html")
    assert "(0 new," in out

    # A page changed on the server is read again; one removed drops out of the index.
    site.pages["/guide/install.html"] = (
        "text/html",
        page("Install", "usage.html").replace(
            "About Install.", "Install the zorblax agent with uv."
        ),
    )
    del site.pages["/guide/moved.html"]
    out, err, code = await threadbot("ingest", f"{site.url}/guide/", env=env)
    assert code == 0, err
    assert "1 page fetched" in out and "1 gone" in out
    found = await search(env, "how do I install the zorblax agent?")
    assert "with uv" in str(found[0]["text"])
    out, err, code = await threadbot("index", "list", env=env)
    assert code == 0, err
    assert f"{site.url}/guide/install.html" in out and "moved.html" not in out
