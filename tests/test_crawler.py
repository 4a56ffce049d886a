"""Behaviour, fault and load tests for recipes/crawler.py.

Every crawl runs against tests/crawl_site.py served on 127.0.0.1: on the
test's own loop (``run_virtual`` on the virtual clock, or pytest-asyncio on
the real one), or, for the command-line tests, on a real event loop in a
background thread, since the crawler then runs in another process.  The
site's own counters (hits per path, peak of requests in flight) show what the
crawler really asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import re
import socket
import subprocess
import sys
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple
from urllib.parse import urlencode, urlsplit

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver

from recipes import crawler
from recipes.crawler import CrawlEvent, CrawlResult, crawl, extract_links, normalize_url
from tests.conftest import served
from tests.crawl_site import CHAIN_LENGTH, SITE_STATS, WIDE_PAGES, SiteStats, make_site_app

ROOT = Path(__file__).resolve().parent.parent

# What a crawl of the standalone site finds with max_depth=2, timeout=0.5 and
# max_bytes=100_000 (paths relative to the site's root).
SITE_VISITED = [
    "/",
    "/about.html",
    "/blog/",
    "/blog/first-post.html",
    "/blog/second-post.html",
    "/contact.html",
    "/notes.html",
    "/tag-soup.html",
]
SITE_ERRORS = {
    "/away.html": "redirect off-site",
    "/broken.html": "HTTP 500",
    "/data.json": "not HTML",
    "/huge.html": "too large",
    "/logo.png": "not HTML",
    "/loop-a.html": "redirect loop",
    "/loop-b.html": "redirect loop",
    "/missing.html": "HTTP 404",
    "/private/": "blocked by robots.txt",
    "/slow.html": "timeout",
}
SITE_REDIRECTS = {
    "/moved-again.html": "/contact.html",
    "/moved.html": "/moved-again.html",
}
SITE_OPTIONS: Dict[str, Any] = {"timeout": 0.5, "max_bytes": 100_000}


def relative(urls: Iterable[str], base: str) -> List[str]:
    return sorted(url[len(base) :] if url.startswith(base) else url for url in urls)


def relative_map(mapping: Dict[str, str], base: str) -> Dict[str, str]:
    def cut(url: str) -> str:
        return url[len(base) :] if url.startswith(base) else url

    return {cut(key): cut(value) for key, value in mapping.items()}


def page_hits(stats: SiteStats) -> Dict[str, int]:
    return {path: n for path, n in stats.hits.items() if path != "/robots.txt"}


def links_url(base: str, *targets: str, delay: float = 0, pad: int = 0) -> str:
    query: List[Tuple[str, str]] = [("to", target) for target in targets]
    if delay:
        query.append(("delay", str(delay)))
    if pad:
        query.append(("pad", str(pad)))
    return f"{base}/links.html?{urlencode(query)}"


def crawl_site(
    run_virtual: Callable[..., Any],
    app: Optional[web.Application] = None,
    path: str = "/",
    **options: Any,
) -> Tuple[CrawlResult, SiteStats, str]:
    """Crawl ``path`` of a freshly served site on the test clock."""
    site_app = make_site_app() if app is None else app

    async def main() -> Tuple[CrawlResult, str]:
        async with served(site_app) as base:
            return await crawl(base + path, **options), base

    result, base = run_virtual(main)
    return result, site_app[SITE_STATS], base


# --- the whole site -------------------------------------------------------


@pytest.mark.asyncio
async def test_whole_site_on_the_real_clock() -> None:
    app = make_site_app()
    async with served(app) as base:
        result = await crawl(base + "/", **SITE_OPTIONS)
    assert result.start_url == base + "/"
    assert relative(result.visited, base) == SITE_VISITED
    assert relative_map(result.errors, base) == SITE_ERRORS
    assert relative_map(result.redirects, base) == SITE_REDIRECTS
    hits = app[SITE_STATS].hits
    assert hits["/robots.txt"] == 1
    assert max(hits.values()) == 1  # no page fetched twice
    # Unreachable (beyond max_depth) and disallowed pages were never requested.
    for path in ("/archive/2019.html", "/private/", "/private/secret.html"):
        assert hits[path] == 0


@pytest.mark.parametrize("concurrency", [1, 2, 10, 50])
def test_whole_site_gives_the_same_answer_at_any_concurrency(
    run_virtual: Callable[..., Any], concurrency: int
) -> None:
    result, stats, base = crawl_site(run_virtual, concurrency=concurrency, **SITE_OPTIONS)
    assert relative(result.visited, base) == SITE_VISITED
    assert relative_map(result.errors, base) == SITE_ERRORS
    assert relative_map(result.redirects, base) == SITE_REDIRECTS
    assert max(stats.hits.values()) == 1


def test_each_url_ends_up_in_exactly_one_place(run_virtual: Callable[..., Any]) -> None:
    events: List[CrawlEvent] = []
    result, stats, base = crawl_site(run_virtual, progress=events.append, **SITE_OPTIONS)
    urls = [event.url for event in events]
    assert len(urls) == len(set(urls))
    assert set(urls) == set(result.visited) | set(result.errors) | set(result.redirects)
    assert not set(result.visited) & set(result.errors)
    assert not set(result.errors) & set(result.redirects)
    assert [event.done for event in events] == list(range(1, len(events) + 1))
    assert all(event.done <= event.found <= 100 for event in events)
    # Every URL requested (the robots-blocked one was not) produced one event.
    requested = {base + path for path in page_hits(stats)}
    assert requested == set(urls) - {base + "/private/"}


# --- concurrency, page and depth limits -------------------------------------


@pytest.mark.parametrize("concurrency", [1, 3, 8])
def test_never_more_requests_in_flight_than_workers(
    run_virtual: Callable[..., Any], concurrency: int
) -> None:
    # 40 pages that each take 50 ms: the workers are all busy at once.
    result, stats, _ = crawl_site(run_virtual, path="/wide/", concurrency=concurrency)
    assert len(result.visited) == WIDE_PAGES + 1
    assert result.errors == {}
    assert stats.peak_in_flight == concurrency


@pytest.mark.parametrize("max_pages", [1, 5, 17, 41])
def test_max_pages_caps_the_requests(run_virtual: Callable[..., Any], max_pages: int) -> None:
    result, stats, _ = crawl_site(run_virtual, path="/wide/", max_pages=max_pages, concurrency=4)
    assert sum(page_hits(stats).values()) == max_pages
    assert len(result.visited) == max_pages


def test_max_pages_counts_failures_and_redirect_hops(run_virtual: Callable[..., Any]) -> None:
    events: List[CrawlEvent] = []
    result, stats, _ = crawl_site(
        run_virtual, max_pages=12, progress=events.append, **SITE_OPTIONS
    )
    assert len(events) == len(result.visited) + len(result.errors) + len(result.redirects)
    assert len(events) <= 12
    assert sum(page_hits(stats).values()) <= 12


@pytest.mark.parametrize("max_depth", range(CHAIN_LENGTH + 1))
def test_max_depth_is_respected(run_virtual: Callable[..., Any], max_depth: int) -> None:
    result, stats, base = crawl_site(run_virtual, path="/chain/1.html", max_depth=max_depth)
    reached = min(max_depth + 1, CHAIN_LENGTH)
    assert relative(result.visited, base) == [f"/chain/{n}.html" for n in range(1, reached + 1)]
    for n in range(reached + 1, CHAIN_LENGTH + 1):
        assert stats.hits[f"/chain/{n}.html"] == 0


def test_depth_counts_the_shortest_path_even_when_a_longer_one_is_found_first(
    run_virtual: Callable[..., Any],
) -> None:
    # start -> slow -> chain/1 (depth 2) -> chain/2 (depth 3)
    # start -> fast -> faster -> chain/1 (depth 3, but found first)
    app = make_site_app()

    async def main() -> Tuple[CrawlResult, str]:
        async with served(app) as base:
            slow = links_url(base, f"{base}/chain/1.html", delay=0.2)
            faster = links_url(base, f"{base}/chain/1.html")
            fast = links_url(base, faster)
            start = links_url(base, slow, fast)
            return await crawl(start, max_depth=3), base

    result, base = run_virtual(main)
    pages = relative((url for url in result.visited if "/chain/" in url), base)
    assert pages == ["/chain/1.html", "/chain/2.html"]
    assert len(result.visited) == 6 and result.errors == {}
    assert app[SITE_STATS].hits["/chain/3.html"] == 0


# --- staying on the site ---------------------------------------------------


def test_off_host_links_are_never_requested(run_virtual: Callable[..., Any]) -> None:
    requested: List[str] = []

    async def on_request_start(
        session: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestStartParams
    ) -> None:
        requested.append(str(params.url))

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request_start)

    async def main() -> Tuple[CrawlResult, str, bool]:
        async with served(make_site_app()) as base:
            async with aiohttp.ClientSession(trace_configs=[trace]) as session:
                result = await crawl(base + "/", session=session, **SITE_OPTIONS)
                return result, base, session.closed

    result, base, closed = run_virtual(main)
    assert not closed  # a session passed in is left open
    assert requested and all(url.startswith(base + "/") for url in requested)
    assert len(requested) == len(set(requested))
    assert relative(result.visited, base) == SITE_VISITED


@pytest.mark.parametrize("allow", ["hostname and port", "hostname alone", "not allowed"])
def test_allowed_hosts_opens_other_hosts(run_virtual: Callable[..., Any], allow: str) -> None:
    first, second = make_site_app(), make_site_app()

    async def main() -> Tuple[CrawlResult, str, str]:
        async with served(first) as base, served(second) as other:
            allowed = {
                "hostname and port": [other[len("http://") :]],
                "hostname alone": ["127.0.0.1"],
                "not allowed": None,
            }[allow]
            start = links_url(base, f"{other}/chain/1.html", f"{base}/chain/1.html")
            result = await crawl(start, max_depth=1, allowed_hosts=allowed)
            return result, base, other

    result, base, other = run_virtual(main)
    assert f"{base}/chain/1.html" in result.visited
    if allow == "not allowed":
        assert sum(second[SITE_STATS].hits.values()) == 0
        assert len(result.visited) == 2
    else:
        assert f"{other}/chain/1.html" in result.visited
        assert second[SITE_STATS].hits["/robots.txt"] == 1  # its own robots.txt, once


class LocalResolver(AbstractResolver):
    """A DNS of our own: maps (host, port) to a port on 127.0.0.1 and notes every lookup.

    It lets a test give a local server a name on the default port (``http://site.test/``)
    without binding port 80.  An unknown (host, port) fails as an unknown name would.
    """

    def __init__(self, table: Dict[Tuple[str, int], str]) -> None:
        self.table = {key: int(urlsplit(url).port or 0) for key, url in table.items()}
        self.lookups: List[Tuple[str, int]] = []

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> Any:
        self.lookups.append((host, port))
        if (host, port) not in self.table:
            raise OSError(f"no local server for {host}:{port}")
        address = {"hostname": host, "host": "127.0.0.1", "port": self.table[host, port]}
        return [{**address, "family": socket.AF_INET, "proto": 0, "flags": 0}]

    async def close(self) -> None:
        pass


def test_a_start_url_on_the_default_port_keeps_to_its_scheme_host_and_port(
    run_virtual: Callable[..., Any],
) -> None:
    # http://site.test/ is the site; http://site.test:8099/ another server of the same
    # host (an admin app, say); https://site.test/ its other scheme.  Scope is scheme +
    # host + port, so neither may be touched, and the same host spelled with its default
    # port is the same origin.
    site, admin = make_site_app(), make_site_app()

    async def main() -> Tuple[CrawlResult, List[Tuple[str, int]]]:
        async with served(site) as site_url, served(admin) as admin_url:
            resolver = LocalResolver({("site.test", 80): site_url, ("site.test", 8099): admin_url})
            links = [
                "http://site.test:8099/chain/1.html",
                "https://site.test/chain/1.html",
                "HTTP://SITE.TEST:80/chain/2.html",
                "http://site.test/chain/2.html",
            ]
            start = "http://site.test/links.html?" + urlencode([("to", to) for to in links])
            connector = aiohttp.TCPConnector(resolver=resolver)
            async with aiohttp.ClientSession(connector=connector) as session:
                result = await crawl(start, max_depth=1, session=session)
            return result, resolver.lookups

    result, lookups = run_virtual(main)
    assert sum(admin[SITE_STATS].hits.values()) == 0
    assert set(lookups) == {("site.test", 80)}
    assert result.errors == {}
    assert sorted(url.split("?")[0] for url in result.visited) == [
        "http://site.test/chain/2.html",
        "http://site.test/links.html",
    ]
    assert site[SITE_STATS].hits["/chain/2.html"] == 1


@pytest.mark.parametrize(
    "allowed, reached",
    [
        (None, []),
        (["site.test:8099"], ["http://site.test:8099/chain/1.html"]),
        (["site.test"], ["http://site.test:8099/chain/1.html"]),  # every port of that host
    ],
)
def test_allowed_hosts_on_the_default_port(
    run_virtual: Callable[..., Any], allowed: Optional[List[str]], reached: List[str]
) -> None:
    site, admin = make_site_app(), make_site_app()

    async def main() -> CrawlResult:
        async with served(site) as site_url, served(admin) as admin_url:
            resolver = LocalResolver({("site.test", 80): site_url, ("site.test", 8099): admin_url})
            start = "http://site.test/links.html?to=http://site.test:8099/chain/1.html"
            connector = aiohttp.TCPConnector(resolver=resolver)
            async with aiohttp.ClientSession(connector=connector) as session:
                return await crawl(start, max_depth=1, allowed_hosts=allowed, session=session)

    result = run_virtual(main)
    assert sorted(url for url in result.visited if "links.html" not in url) == reached
    assert admin[SITE_STATS].hits["/chain/1.html"] == len(reached)


# --- one spelling per page ----------------------------------------------------


def request_target(url: str) -> str:
    """What the request line must carry for a normalised URL: its path and query."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


@pytest.mark.parametrize(
    "link",
    [
        "{base}/public/../private/secret.html",  # absolute: urljoin leaves the dots
        "{base}/public/./../private/",
        "public/%2E%2E/private/secret.html",  # encoded dots, which HTTP clients decode
        "public/%2e%2e/private/",
        "/redirect.html?to={base}/public/../private/secret.html",  # in a Location header
        "/redirect.html?to=/public/%252E%252E/private/",  # the server decodes %25 once
        "{base}//private/secret.html",  # many servers merge the slashes: not risked
        "{base}/public/..%2Fprivate/secret.html",  # some decode %2F, then resolve ".."
    ],
)
def test_dot_segments_cannot_smuggle_a_url_past_robots_txt(
    run_virtual: Callable[..., Any], link: str
) -> None:
    app = make_site_app()  # robots.txt: Disallow: /private/

    async def main() -> Tuple[CrawlResult, str]:
        async with served(app) as base:
            return await crawl(links_url(base, link.format(base=base)), max_depth=2), base

    result, base = run_virtual(main)
    paths = [target.split("?")[0] for target in app[SITE_STATS].targets]
    assert [path for path in paths if "private" in path] == []  # never asked for
    assert "blocked by robots.txt" in result.errors.values()
    blocked = [url for url, reason in result.errors.items() if reason == "blocked by robots.txt"]
    assert len(blocked) == 1 and blocked[0].startswith(base + "/") and "private" in blocked[0]


def test_each_page_is_fetched_once_whatever_its_spelling(run_virtual: Callable[..., Any]) -> None:
    app = make_site_app()

    async def main() -> Tuple[CrawlResult, str]:
        async with served(app) as base:
            shouting = base.replace("http://", "HTTP://")
            start = links_url(
                base,
                "about.html",
                f"{base}/./about.html",
                f"{base}/blog/../about.html",
                f"{shouting}/about.html",
                "%61bout.html",  # %61 is "a"
                "blog/./x/../%2e%2E/about.html",
                "~guest/",
                "%7Eguest/",
                "%7eguest/",
                f"{base}/x/../%7Eguest/./",
            )
            return await crawl(start, max_depth=1), base

    result, base = run_virtual(main)
    hits = app[SITE_STATS].hits
    assert (hits["/about.html"], hits["/~guest/"]) == (1, 1)
    assert relative((url for url in result.visited if "links.html" not in url), base) == [
        "/about.html",
        "/~guest/",
    ]
    assert result.errors == {}


def test_every_request_is_sent_exactly_as_its_normal_form(run_virtual: Callable[..., Any]) -> None:
    # The seen-set, robots.txt and the request line must agree on every URL: the
    # crawler sends the very URL it checked, and the client does not rewrite it.
    app = make_site_app()
    events: List[CrawlEvent] = []

    async def main() -> str:
        async with served(app) as base:
            start = links_url(
                base,
                "ünï code.html",
                "caf%c3%a9.html",
                "a%zzb.html",
                f"{base}/a//b.html",  # (urljoin merges the slashes of a relative link)
                "q.html?x=a b&y=%7e&z=%2f",
                "%7eguest/",
                "blog/%2E%2E/about.html",
            )
            await crawl(start, max_depth=1, respect_robots=False, progress=events.append)
            return base

    base = run_virtual(main)
    sent = sorted(app[SITE_STATS].targets)
    assert sent == sorted(request_target(event.url) for event in events)
    assert len(sent) == len(set(sent)) == 8
    assert {request_target(event.url) for event in events} >= {
        "/%C3%BCn%C3%AF%20code.html",
        "/caf%C3%A9.html",
        "/a%25zzb.html",
        "/a//b.html",  # RFC 3986: not the same URL as /a/b.html, so not merged
        "/q.html?x=a%20b&y=~&z=%2F",
        "/~guest/",
        "/about.html",
    }
    assert all(event.url.startswith(base + "/") for event in events)


# --- robots.txt --------------------------------------------------------------


def test_robots_rules_can_be_ignored(run_virtual: Callable[..., Any]) -> None:
    result, stats, base = crawl_site(run_virtual, respect_robots=False, **SITE_OPTIONS)
    assert stats.hits["/robots.txt"] == 0
    assert {"/private/", "/private/secret.html"} <= set(relative(result.visited, base))


def test_missing_robots_txt_allows_everything(run_virtual: Callable[..., Any]) -> None:
    result, stats, base = crawl_site(run_virtual, make_site_app(robots_txt=None), **SITE_OPTIONS)
    assert stats.hits["/robots.txt"] == 1
    assert {"/private/", "/private/secret.html"} <= set(relative(result.visited, base))
    assert "blocked by robots.txt" not in result.errors.values()


@pytest.mark.parametrize("agent, blocked", [(None, True), ("other-bot/2.0", False)])
def test_robots_rules_name_the_user_agent(
    run_virtual: Callable[..., Any], agent: Optional[str], blocked: bool
) -> None:
    app = make_site_app(robots_txt="User-agent: asyncio-cookbook-crawler\nDisallow: /\n")
    options: Dict[str, Any] = {} if agent is None else {"user_agent": agent}
    result, stats, base = crawl_site(run_virtual, app, "/chain/1.html", max_depth=0, **options)
    if blocked:
        assert relative_map(result.errors, base) == {"/chain/1.html": "blocked by robots.txt"}
        assert page_hits(stats) == {}
    else:
        assert relative(result.visited, base) == ["/chain/1.html"]


def test_robots_txt_over_the_size_cap_is_read_up_to_the_cap(
    run_virtual: Callable[..., Any],
) -> None:
    robots = "User-agent: *\nDisallow: /chain/2.html\n" + "# padding\n" * 100
    app = make_site_app(robots_txt=robots)
    result, stats, base = crawl_site(run_virtual, app, "/chain/1.html", max_bytes=200)
    assert relative(result.visited, base) == ["/chain/1.html"]
    assert relative_map(result.errors, base) == {"/chain/2.html": "blocked by robots.txt"}
    assert stats.hits["/chain/2.html"] == 0


@pytest.mark.parametrize(
    "status, reason",
    [
        (401, "blocked by robots.txt"),
        (403, "blocked by robots.txt"),
        (503, "robots.txt unavailable (HTTP 503)"),
        (410, None),  # a 4xx but 401/403: no robots.txt, everything allowed
    ],
)
def test_robots_txt_errors(
    run_virtual: Callable[..., Any], status: int, reason: Optional[str]
) -> None:
    app = make_site_app(robots_status=status)
    result, stats, base = crawl_site(run_virtual, app, "/chain/1.html", max_depth=1)
    if reason is None:
        assert len(result.visited) == 2
    else:
        assert relative_map(result.errors, base) == {"/chain/1.html": reason}
        assert page_hits(stats) == {}


def test_robots_txt_unreachable_is_reported(run_virtual: Callable[..., Any]) -> None:
    async def main() -> CrawlResult:
        return await crawl(f"http://127.0.0.1:{free_port()}/", timeout=5)

    result = run_virtual(main)
    assert result.visited == frozenset()
    [reason] = result.errors.values()
    assert reason.startswith("robots.txt unavailable (connection error: ")


def test_unreachable_page_is_a_connection_error(run_virtual: Callable[..., Any]) -> None:
    async def main() -> CrawlResult:
        return await crawl(f"http://127.0.0.1:{free_port()}/", respect_robots=False, timeout=5)

    result = run_virtual(main)
    [reason] = result.errors.values()
    assert reason.startswith("connection error: Client")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- redirects ---------------------------------------------------------------


@pytest.mark.parametrize(
    "max_redirects, errors, redirects, visited",
    [
        (0, {"/moved.html": "too many redirects"}, {}, []),
        (
            1,
            {"/moved-again.html": "too many redirects"},
            {"/moved.html": "/moved-again.html"},
            [],
        ),
        (2, {}, SITE_REDIRECTS, ["/contact.html"]),
    ],
)
def test_max_redirects(
    run_virtual: Callable[..., Any],
    max_redirects: int,
    errors: Dict[str, str],
    redirects: Dict[str, str],
    visited: List[str],
) -> None:
    result, stats, base = crawl_site(
        run_virtual, path="/moved.html", max_depth=0, max_redirects=max_redirects
    )
    assert relative_map(result.errors, base) == errors
    assert relative_map(result.redirects, base) == redirects
    assert relative(result.visited, base) == visited
    assert stats.hits["/contact.html"] == len(visited)


def test_redirect_loop_is_fetched_once_per_hop(run_virtual: Callable[..., Any]) -> None:
    result, stats, base = crawl_site(run_virtual, path="/loop-a.html")
    assert relative_map(result.errors, base) == {
        "/loop-a.html": "redirect loop",
        "/loop-b.html": "redirect loop",
    }
    assert result.redirects == {} and result.visited == frozenset()
    assert page_hits(stats) == {"/loop-a.html": 1, "/loop-b.html": 1}


def test_redirect_target_also_linked_is_fetched_once(run_virtual: Callable[..., Any]) -> None:
    app = make_site_app()

    async def main() -> Tuple[CrawlResult, str]:
        async with served(app) as base:
            start = links_url(base, "contact.html", "moved.html", "contact.html#form")
            return await crawl(start, max_depth=1, concurrency=5), base

    result, base = run_virtual(main)
    assert app[SITE_STATS].hits["/contact.html"] == 1
    assert f"{base}/contact.html" in result.visited
    assert relative_map(result.redirects, base) == SITE_REDIRECTS


@pytest.mark.parametrize(
    "target, error",
    [
        ("private/", "blocked by robots.txt"),  # the target's error
        ("mailto:webmaster@example.invalid", "bad redirect"),
        ("https://elsewhere.invalid/", "redirect off-site"),
        (None, "bad redirect"),  # a 302 without Location
    ],
)
def test_redirects_obey_the_rules_for_links(
    run_virtual: Callable[..., Any], target: Optional[str], error: str
) -> None:
    path = "/redirect.html" if target is None else f"/redirect.html?{urlencode({'to': target})}"
    result, stats, base = crawl_site(run_virtual, path=path, max_depth=0)
    assert result.visited == frozenset()
    if target == "private/":
        assert relative_map(result.errors, base) == {"/private/": error}
        assert relative_map(result.redirects, base) == {path: "/private/"}
        assert stats.hits["/private/"] == 0
    else:
        assert relative_map(result.errors, base) == {path: error}


# --- bounding each request ---------------------------------------------------


def test_size_cap_is_exact(run_virtual: Callable[..., Any]) -> None:
    async def main() -> Tuple[int, Dict[int, CrawlResult]]:
        async with served(make_site_app()) as base:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{base}/chain/6.html") as response:
                    size = len(await response.read())
            results = {}
            for cap in (size - 1, size):
                results[cap] = await crawl(f"{base}/chain/6.html", max_bytes=cap)
            return size, results

    size, results = run_virtual(main)
    assert list(results[size - 1].errors.values()) == ["too large"]
    assert len(results[size].visited) == 1


def test_chunked_page_is_abandoned_at_the_cap(run_virtual: Callable[..., Any]) -> None:
    result, _, base = crawl_site(run_virtual, path="/huge.html", max_bytes=200_000)
    assert relative_map(result.errors, base) == {"/huge.html": "too large"}


def test_slow_page_times_out_and_the_others_finish(run_virtual: Callable[..., Any]) -> None:
    app = make_site_app(slow_delay=3)

    async def main() -> Tuple[CrawlResult, str]:
        async with served(app) as base:
            start = links_url(base, "slow.html", "chain/6.html", "about.html")
            return await crawl(start, max_depth=1, timeout=1), base

    result, base = run_virtual(main)
    assert relative_map(result.errors, base) == {"/slow.html": "timeout"}
    assert "/chain/6.html" in relative(result.visited, base)


# --- failures, parsing and progress -----------------------------------------


@pytest.mark.parametrize("threads", [0, 1])
def test_a_failing_parse_loses_only_its_page(
    run_virtual: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, threads: int
) -> None:
    real = crawler.extract_links

    def fragile(page: Any, base_url: str, *, encoding: Optional[str] = None) -> List[str]:
        if base_url.endswith("/about.html"):
            raise RuntimeError("parser exploded")
        return real(page, base_url, encoding=encoding)

    monkeypatch.setattr(crawler, "extract_links", fragile)
    # Without an executor each page is parsed on its own; with one, in batches.
    with ThreadPoolExecutor(threads) if threads else contextlib.nullcontext() as pool:
        result, _, base = crawl_site(run_virtual, executor=pool, **SITE_OPTIONS)
    assert result.errors[f"{base}/about.html"] == "unexpected error: RuntimeError: parser exploded"
    # blog/ is also linked from the home page, so the rest of the site is unaffected.
    assert relative(result.visited, base) == [p for p in SITE_VISITED if p != "/about.html"]


def record_parsing_threads(monkeypatch: pytest.MonkeyPatch) -> Dict[str, int]:
    """Make extract_links note, per page (its URL's path), the thread that parsed it."""
    real = crawler.extract_links
    threads: Dict[str, int] = {}

    def recording(page: Any, base_url: str, *, encoding: Optional[str] = None) -> List[str]:
        threads[urlsplit(base_url).path] = threading.get_ident()
        return real(page, base_url, encoding=encoding)

    monkeypatch.setattr(crawler, "extract_links", recording)
    return threads


def test_pages_are_parsed_off_the_event_loop_thread(
    run_virtual: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    threads = record_parsing_threads(monkeypatch)
    result, _, _ = crawl_site(run_virtual, **SITE_OPTIONS)
    assert len(threads) == len(result.visited)
    assert threading.get_ident() not in set(threads.values())  # the loop runs in this thread


@pytest.mark.parametrize("pool_threads", [0, 1])  # 0: the loop's default thread pool
def test_pages_are_handed_to_the_executor_in_batches(
    run_virtual: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, pool_threads: int
) -> None:
    threads = record_parsing_threads(monkeypatch)
    batches: List[int] = []
    real_batch = crawler._extract_links_of_pages

    def counting(pages: List[Any]) -> List[Any]:
        batches.append(len(pages))
        return real_batch(pages)

    monkeypatch.setattr(crawler, "_extract_links_of_pages", counting)
    # The 40 wide pages answer at the same moment: they queue up for the parser.
    with ThreadPoolExecutor(pool_threads) if pool_threads else contextlib.nullcontext() as pool:
        result, _, _ = crawl_site(run_virtual, path="/wide/", concurrency=40, executor=pool)
    assert len(result.visited) == WIDE_PAGES + 1 and result.errors == {}
    assert sum(batches) == WIDE_PAGES + 1
    assert max(batches) > 1 and max(batches) <= crawler._BATCH_PAGES
    assert threading.get_ident() not in set(threads.values())


def test_an_executor_that_refuses_work_fails_the_pages_not_the_crawl(
    run_virtual: Callable[..., Any],
) -> None:
    pool = ThreadPoolExecutor(1)
    pool.shutdown()  # submit() now raises RuntimeError
    result, _, base = crawl_site(run_virtual, path="/chain/1.html", executor=pool)
    assert result.visited == frozenset()
    [(url, reason)] = result.errors.items()
    assert url == f"{base}/chain/1.html"
    assert reason.startswith("unexpected error: RuntimeError: cannot schedule new futures")


def test_cancelling_the_crawl_waits_for_the_pages_being_parsed(
    run_virtual: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = crawler.extract_links
    running: List[int] = []
    finished: List[int] = []
    started = threading.Event()

    def slow(page: Any, base_url: str, *, encoding: Optional[str] = None) -> List[str]:
        running.append(1)
        started.set()
        threading.Event().wait(0.3)  # a big page: real CPU time, in the thread
        finished.append(1)
        return real(page, base_url, encoding=encoding)

    monkeypatch.setattr(crawler, "extract_links", slow)

    async def main() -> Tuple[int, int]:
        async with served(make_site_app()) as base:
            with ThreadPoolExecutor(1) as pool:
                task = asyncio.ensure_future(crawl(base + "/", executor=pool))
                while not started.is_set():
                    await asyncio.sleep(0.01)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                # crawl() has returned: no page of it may still be in the parser.
                return len(running), len(finished)

    running_count, finished_count = run_virtual(main)
    assert running_count >= 1
    assert finished_count == running_count


def test_pages_can_be_parsed_in_another_process(run_virtual: Callable[..., Any]) -> None:
    # "spawn": forking a process that runs threads is unsafe (and warns on 3.12+).
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        result, _, base = crawl_site(run_virtual, executor=pool, **SITE_OPTIONS)
    assert relative(result.visited, base) == SITE_VISITED
    assert relative_map(result.errors, base) == SITE_ERRORS


class Stop(Exception):
    pass


def test_an_exception_in_progress_stops_the_crawl(
    run_virtual: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions = track_sessions(monkeypatch)
    seen: List[str] = []

    def progress(event: CrawlEvent) -> None:
        seen.append(event.url)
        if len(seen) == 3:
            raise Stop(event.url)

    async def main() -> None:
        async with served(make_site_app()) as base:
            with pytest.raises(Stop):
                await crawl(base + "/", progress=progress, **SITE_OPTIONS)

    run_virtual(main)  # fails if any task was left running
    assert len(seen) == 3
    assert [session.closed for session in sessions] == [True]


# --- cancellation ------------------------------------------------------------


def track_sessions(monkeypatch: pytest.MonkeyPatch) -> List[aiohttp.ClientSession]:
    """Record every ClientSession created (by crawl()) while the test runs."""
    created: List[aiohttp.ClientSession] = []
    original = aiohttp.ClientSession

    def make(*args: Any, **kwargs: Any) -> aiohttp.ClientSession:
        session = original(*args, **kwargs)
        created.append(session)
        return session

    monkeypatch.setattr(aiohttp, "ClientSession", make)
    return created


@pytest.mark.parametrize("after", [0, 0.001, 0.01, 0.1, 0.6])
def test_cancelling_the_crawl_leaves_nothing_behind(
    run_virtual: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, after: float
) -> None:
    sessions = track_sessions(monkeypatch)

    async def main() -> List[asyncio.Task[Any]]:
        async with served(make_site_app()) as base:
            before = asyncio.all_tasks()
            task = asyncio.ensure_future(crawl(base + "/", timeout=5))
            await asyncio.sleep(after)
            assert not task.done()  # the slow page takes 2 s
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # The server's own connection tasks may still be winding down.
            return [
                t
                for t in asyncio.all_tasks() - before
                if not t.done() and "web_protocol" not in t.get_coro().cr_code.co_filename
            ]

    leftover = run_virtual(main)
    assert leftover == []
    assert len(sessions) == 1 and sessions[0].closed


def test_cancelling_keeps_a_session_passed_in_open(run_virtual: Callable[..., Any]) -> None:
    async def main() -> Tuple[bool, int]:
        async with served(make_site_app()) as base:
            async with aiohttp.ClientSession() as session:
                task = asyncio.ensure_future(crawl(base + "/", session=session))
                await asyncio.sleep(0.1)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                async with session.get(f"{base}/chain/1.html") as response:
                    return session.closed, response.status

    assert run_virtual(main) == (False, 200)


# --- bad input -----------------------------------------------------------------


@pytest.mark.parametrize(
    "start, options, error, message",
    [
        ("ftp://example.com/", {}, ValueError, "not an http:// or https:// URL"),
        ("example.com/page", {}, ValueError, "did you mean 'http://example.com/page'"),
        ("http:///nohost", {}, ValueError, "no host"),
        (b"http://example.com/", {}, TypeError, "start_url must be a str"),
        ("http://x/", {"max_depth": -1}, ValueError, "max_depth must be >= 0"),
        ("http://x/", {"max_pages": 0}, ValueError, "max_pages must be >= 1"),
        ("http://x/", {"concurrency": 0}, ValueError, "concurrency must be >= 1"),
        ("http://x/", {"concurrency": 2.5}, TypeError, "concurrency must be an int"),
        ("http://x/", {"max_depth": True}, TypeError, "max_depth must be an int"),
        ("http://x/", {"max_bytes": 0}, ValueError, "max_bytes must be >= 1"),
        ("http://x/", {"max_redirects": -1}, ValueError, "max_redirects must be >= 0"),
        ("http://x/", {"timeout": 0}, ValueError, "timeout must be a finite number > 0"),
        ("http://x/", {"timeout": float("nan")}, ValueError, "timeout must be a finite"),
        ("http://x/", {"timeout": float("inf")}, ValueError, "timeout must be a finite"),
        ("http://x/", {"timeout": "5"}, TypeError, "timeout must be a number"),
        ("http://x/", {"allowed_hosts": "example.com"}, TypeError, "not a single str"),
        ("http://x/", {"allowed_hosts": ["http://a/"]}, ValueError, "host names such as"),
        ("http://x/", {"allowed_hosts": ["a:99999"]}, ValueError, "host names such as"),
        ("http://x/", {"user_agent": " "}, ValueError, "user_agent must not be empty"),
        ("http://x/", {"user_agent": None}, TypeError, "user_agent must be a str"),
        ("http://x/", {"session": object()}, TypeError, "session must be"),
        ("http://x/", {"progress": 42}, TypeError, "progress must be a callable"),
        ("http://x/", {"executor": object()}, TypeError, "executor must be"),
    ],
)
def test_bad_arguments_are_refused_before_any_request(
    run_virtual: Callable[..., Any],
    start: Any,
    options: Dict[str, Any],
    error: type,
    message: str,
) -> None:
    app = make_site_app()

    async def main() -> None:
        async with served(app):
            with pytest.raises(error, match=re.escape(message)):
                await crawl(start, **options)

    run_virtual(main)
    assert sum(app[SITE_STATS].hits.values()) == 0


# --- the helpers ---------------------------------------------------------------


@pytest.mark.parametrize(
    "url, expected",
    [
        ("http://example.com", "http://example.com/"),
        ("HTTPS://EXAMPLE.com:443/A/b?Q=1#frag", "https://example.com/A/b?Q=1"),
        ("http://example.com:8080/", "http://example.com:8080/"),
        ("https://example.com:80/", "https://example.com:80/"),
        ("http://user:pw@example.com/x", "http://example.com/x"),
        ("http://[::1]:8080/a", "http://[::1]:8080/a"),
        ("  http://example.com/  ", "http://example.com/"),
        ("http://example.com/?", "http://example.com/"),
        ("http://h/public/../private/b.html", "http://h/private/b.html"),
        ("http://h/public/%2E%2e/private/", "http://h/private/"),
        ("http://h/a/./b.html", "http://h/a/b.html"),
        ("http://h/a/b/../../../c", "http://h/c"),
        ("http://h/a/..", "http://h/"),
        ("http://h/a/.?x", "http://h/a/?x"),
        ("http://h/.htaccess", "http://h/.htaccess"),
        ("http://h/a//b.html", "http://h/a//b.html"),
        ("http://h/%7euser/%7E", "http://h/~user/~"),
        ("http://h/%41%2f%2F%3a", "http://h/A%2F%2F%3A"),
        ("http://h/caf\u00e9 menu", "http://h/caf%C3%A9%20menu"),
        ("http://h/100%", "http://h/100%25"),
        ("http://h/p?q=a b&r=%7e&s=%2f", "http://h/p?q=a%20b&r=~&s=%2F"),
        ("HTTP://HOST:80/", "http://host/"),
        ("http://h:/x", "http://h/x"),
        ("http://B\u00fccher.example/", "http://xn--bcher-kva.example/"),
        ("http://[0:0::1]:80/", "http://[::1]/"),
    ],
)
def test_normalize_url(url: str, expected: str) -> None:
    assert normalize_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "mailto:a@b.c",
        "javascript:void(0)",
        "/relative",
        "http://[::1",
        "http://h:99999/",
        "",
        "http://ex ample.com/",
        "http://a%41b/",
        "http://[fe80::1%25eth0]/",
    ],
)
def test_normalize_url_refuses(url: str) -> None:
    with pytest.raises(ValueError):
        normalize_url(url)


def test_extract_links_handles_tag_soup_and_bytes() -> None:
    page = (
        "<html><head><title>soup</title><body><p>open <b>bold <i>x</b></i>"
        "<a href=one.html>1</a></span><a>none</a><a href=''>self</a>"
        "<A HREF='Two.html#x'>2</A><area href='/three'><a href='  one.html  '>dup</a>"
        "<a href='http://[::1'>bad</a><a href='ftp://x/'>ftp</a><table><tr><td>"
    ).encode("cp1252")
    assert extract_links(page, "http://h/dir/page.html", encoding="cp1252") == [
        "http://h/dir/one.html",
        "http://h/dir/page.html",
        "http://h/dir/Two.html",
        "http://h/three",
    ]


@pytest.mark.parametrize("element", ["title", "textarea"])
def test_an_unclosed_title_or_textarea_hides_the_links_on_every_python(element: str) -> None:
    # Browsers read their text up to the closing tag; so does lxml on every interpreter,
    # and html.parser only from 3.14 on (gh-118350), which is why the recipe uses lxml.
    page = f"<{element}>Oops</head><body><a href='/a'>A</a><p>more</p>"
    assert extract_links(page, "http://h/") == []
    assert extract_links(f"{page}</{element}><a href='/b'>B</a>", "http://h/") == ["http://h/b"]


def test_extract_links_uses_base_href() -> None:
    page = '<base href="http://other.example/root/"><a href="x">x</a><a href="/y">y</a>'
    assert extract_links(page, "http://h/") == [
        "http://other.example/root/x",
        "http://other.example/y",
    ]


# --- the command line --------------------------------------------------------


class ThreadedSite:
    """Serve the site on a real event loop in a background thread.

    The command-line tests run the crawler in another process, so the server
    cannot live on the test's loop (there is none) or on a virtual clock.
    """

    def __init__(self) -> None:
        self.app = make_site_app()
        self.url = ""
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="crawl-site", daemon=True)
        self._error: Optional[BaseException] = None

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            runner = web.AppRunner(self.app)
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
            self._ready.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
        except BaseException as exc:  # reported to the test in __enter__/__exit__
            self._error = exc
            self._ready.set()
        finally:
            loop.close()

    def __enter__(self) -> ThreadedSite:
        self._thread.start()
        if not self._ready.wait(30) or self._error is not None:
            raise RuntimeError(f"the site did not start: {self._error!r}")
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        if self._error is not None:
            raise self._error


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recipes.crawler", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_prints_progress_and_a_summary() -> None:
    with ThreadedSite() as site:
        done = run_cli(site.url + "/", "--timeout", "0.5", "--concurrency", "4")
    assert done.returncode == 0, done.stderr
    assert "8 pages visited, 10 errors, 2 redirects" in done.stdout
    assert "errors by reason:" in done.stdout
    assert f"  not HTML (2)\n    {site.url}/data.json\n    {site.url}/logo.png\n" in done.stdout
    progress = done.stderr.splitlines()
    assert len(progress) == 20  # one line per URL
    assert f"] 200 {site.url}/about.html" in done.stderr
    assert f"] 404 {site.url}/missing.html (HTTP 404)" in done.stderr
    assert f"] --- {site.url}/slow.html (timeout)" in done.stderr
    assert f"] 301 {site.url}/moved.html -> {site.url}/moved-again.html" in done.stderr
    assert max(site.app[SITE_STATS].hits.values()) == 1


@pytest.mark.parametrize("processes", [[], ["--processes", "0"], ["--processes", "2"]])
def test_cli_json_output(processes: List[str]) -> None:
    # By default the command line parses in a process pool when it has CPUs to spare.
    with ThreadedSite() as site:
        done = run_cli(site.url + "/", "--timeout", "0.5", "--json", "--quiet", *processes)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["start_url"] == site.url + "/"
    assert document["visited"] == [site.url + path for path in SITE_VISITED]
    assert relative_map(document["errors"], site.url) == SITE_ERRORS
    assert relative_map(document["redirects"], site.url) == SITE_REDIRECTS
    assert isinstance(document["elapsed_seconds"], float)
    assert "8 pages visited" in done.stderr  # the summary moves to stderr
    assert "[1/" not in done.stderr  # --quiet


def test_cli_limits() -> None:
    with ThreadedSite() as site:
        done = run_cli(
            f"{site.url}/chain/1.html", "--max-depth", "1", "--max-pages", "5", "--json", "-q"
        )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["visited"] == [
        f"{site.url}/chain/1.html",
        f"{site.url}/chain/2.html",
    ]


def test_cli_exit_status_when_nothing_was_visited() -> None:
    done = run_cli(f"http://127.0.0.1:{free_port()}/", "--json", "-q")
    assert done.returncode == 1
    assert json.loads(done.stdout)["visited"] == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["http://x/", "--max-depth", "-1"], "must be >= 0"),
        (["http://x/", "--concurrency", "0"], "must be >= 1"),
        (["http://x/", "--max-pages", "many"], "expected an integer"),
        (["http://x/", "--timeout", "0"], "must be a finite number > 0"),
        (["http://x/", "--timeout", "inf"], "must be a finite number > 0"),
        (["http://x/", "--processes", "-1"], "must be >= 0"),
        (["ftp://x/"], "not an http:// or https:// URL"),
        (["http://x/", "--allow-host", "http://y/"], "host names such as"),
        ([], "the following arguments are required: url"),
    ],
)
def test_cli_refuses_bad_arguments(
    args: List[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        crawler.main(args)
    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    assert message in err
    assert out == ""


def test_default_parse_processes_leaves_a_cpu_to_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    for cpus, processes in [(1, 0), (2, 1), (4, 3), (64, 4)]:
        monkeypatch.setattr(crawler, "_available_cpus", lambda cpus=cpus: cpus)
        assert crawler.default_parse_processes() == processes


def test_cli_bad_arguments_exit_with_status_2() -> None:
    done = run_cli("http://x/", "--max-depth", "-1")
    assert done.returncode == 2
    assert "argument --max-depth: must be >= 0, got -1" in done.stderr
    assert done.stdout == ""


# --- parsing only what can add a page ------------------------------------------


def test_pages_arriving_once_max_pages_urls_are_taken_are_not_parsed(
    run_virtual: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = crawler.extract_links
    parsed: List[str] = []

    def counting(page: Any, base_url: str, *, encoding: Optional[str] = None) -> List[str]:
        parsed.append(urlsplit(base_url).path)
        return real(page, base_url, encoding=encoding)

    monkeypatch.setattr(crawler, "extract_links", counting)
    # One worker: the home page's links fill the budget of 3, so only it is parsed.
    result, _, base = crawl_site(run_virtual, max_pages=3, concurrency=1)
    assert relative(result.visited, base) == ["/", "/about.html", "/blog/"]
    assert parsed == ["/"]
    # With room to spare, every page is parsed.
    parsed.clear()
    result, _, base = crawl_site(run_virtual, max_pages=1000, concurrency=1)
    assert sorted(parsed) == relative(result.visited, base)
