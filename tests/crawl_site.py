"""A small, deterministic web site for the crawler's examples and tests.

:func:`make_site_app` builds an :mod:`aiohttp.web` application whose pages
exercise everything a crawler meets in the wild: cycles, fragments, relative,
absolute and off-host links, error statuses, a page slower than any sensible
timeout, non-HTML content, tag soup, redirect chains and loops, a robots.txt
rule and a page larger than the size cap.  Every link between the site's own
pages is relative, so the site works both served on its own (``/`` is its
home page and ``/robots.txt`` its robots file) and mounted under a prefix of
another application (the demo app serves it under ``/site``, where the host's
``/robots.txt`` belongs to the demo app and answers 404)::

    python -m tests.crawl_site --port 8081

Site map (paths relative to the site's root):

``/``                    home page: links to every page below, plus
                         ``about.html#team`` (a fragment), ``./`` (itself),
                         an upper-case absolute link back to ``about.html``,
                         ``mailto:``/``javascript:`` links and off-host links
                         (``http://elsewhere.invalid/`` and the same host on
                         port 1) that must never be fetched
``/about.html``          links back home and to ``blog/``
``/blog/``               links to two posts, ``../`` and ``../about.html``
``/blog/first-post.html``  links to ``../archive/2019.html`` (three links deep)
``/blog/second-post.html`` links to ``first-post.html``
``/archive/2019.html``   only reachable three links from home
``/tag-soup.html``       malformed HTML whose unquoted link leads to ``notes.html``
``/notes.html``          only reachable through the tag soup
``/contact.html``        the end of the redirect chain
``/moved.html``          301 to ``moved-again.html``, which 302s to ``contact.html``
``/loop-a.html``         302 to ``loop-b.html``, which 302s back to ``loop-a.html``
``/away.html``           302 to ``http://elsewhere.invalid/``
``/missing.html``        404
``/broken.html``         500
``/slow.html``           an HTML page that answers after ``slow_delay`` seconds (2 s)
``/logo.png``            a PNG image (``image/png``)
``/data.json``           JSON (``application/json``)
``/huge.html``           6 MiB of HTML, streamed without a Content-Length
``/private/``            disallowed by robots.txt; links to ``secret.html``
``/robots.txt``          ``Disallow: <site root>private/`` for every user agent
``/chain/{n}.html``      n = 1..6, each links to the next: a path six links long
``/wide/``               links to ``wide/0.html`` ... ``wide/39.html``; each of
                         those answers after ``wide_delay`` seconds (0.05 s) and
                         links to the next one and back to ``/wide/``
``/links.html?to=URL``   a page linking to every ``to`` URL given; ``delay=S``
                         makes it answer after S seconds, ``pad=N`` adds N bytes
                         of text, up to 1 MB (for tests)
``/redirect.html?to=URL`` 302 to ``to`` (the Location header is ``to`` as given);
                         without ``to``, a 302 with no Location
``/~guest/``             a user directory (for the tests of ``~`` and ``%7E``)

Per-application counters (hits per path, the request targets exactly as they
arrived on the wire, requests in flight and their peak) live on the app under
:data:`SITE_STATS`, never in module globals.
"""

from __future__ import annotations

import asyncio
import html
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Awaitable, Callable, List, Optional

from aiohttp import web

from tests.http_server import serve_from_command_line

__all__ = ["ROBOTS_TXT", "SITE_STATS", "SiteStats", "main", "make_site_app"]

#: The robots.txt served at the site's root; ``{root}`` becomes the site's
#: own path prefix (``/`` when served on its own).
ROBOTS_TXT = "User-agent: *\nDisallow: {root}private/\n"

HUGE_SIZE = 6 * 1024 * 1024
WIDE_PAGES = 40
CHAIN_LENGTH = 6
# The smallest valid PNG: a 1x1 transparent pixel.
PNG_BYTES = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082"
)


@dataclass
class SiteStats:
    """What one served copy of the site has seen."""

    hits: Counter[str] = field(default_factory=Counter)  # requests per (decoded) path
    # Every request target (path and query) exactly as the client sent it, in order.
    targets: List[str] = field(default_factory=list)
    in_flight: int = 0
    peak_in_flight: int = 0


SITE_STATS = web.AppKey("site_stats", SiteStats)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count hits per path and track how many requests are in flight at once."""
    stats = request.app[SITE_STATS]
    stats.hits[request.path] += 1
    stats.targets.append(request.raw_path)
    stats.in_flight += 1
    stats.peak_in_flight = max(stats.peak_in_flight, stats.in_flight)
    try:
        return await handler(request)
    finally:
        stats.in_flight -= 1


def _page(title: str, *links: str, extra: str = "") -> web.Response:
    items = "\n".join(
        f'<li><a href="{html.escape(href)}">{html.escape(href)}</a></li>' for href in links
    )
    body = (
        f"<!doctype html>\n<html><head><title>{html.escape(title)}</title></head>\n"
        f"<body><h1>{html.escape(title)}</h1>\n<ul>\n{items}\n</ul>\n{extra}</body></html>\n"
    )
    return web.Response(text=body, content_type="text/html")


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def home(request: web.Request) -> web.Response:
    host = request.url.host or "127.0.0.1"
    # The home page is the site's root, so its own path is the prefix of every page.
    shouting = f"HTTP://{request.host}{request.path}about.html#contact"
    return _page(
        "Home",
        "about.html",
        "about.html#team",
        "./",
        shouting,
        "blog/",
        "tag-soup.html",
        "moved.html",
        "loop-a.html",
        "away.html",
        "missing.html",
        "broken.html",
        "slow.html",
        "logo.png",
        "data.json",
        "huge.html",
        "private/",
        "mailto:webmaster@example.invalid",
        "javascript:void(0)",
        "http://elsewhere.invalid/",
        "https://elsewhere.invalid/page.html",
        f"http://{host}:1/other-port.html",
    )


async def about(request: web.Request) -> web.Response:
    return _page("About", "./", "blog/", "#top")


async def blog(request: web.Request) -> web.Response:
    return _page("Blog", "first-post.html", "second-post.html", "../", "../about.html")


async def first_post(request: web.Request) -> web.Response:
    return _page("First post", "second-post.html", "../archive/2019.html")


async def second_post(request: web.Request) -> web.Response:
    return _page("Second post", "first-post.html", "./second-post.html#comments")


async def archive(request: web.Request) -> web.Response:
    return _page("Archive 2019", "../blog/")


async def tag_soup(request: web.Request) -> web.Response:
    body = (
        "<html><head><title>Tag soup</title>\n"
        "<body><p>An unclosed paragraph <b>bold <i>and italic</b> still?</i>\n"
        "<div><a href=notes.html>an unquoted href</a></span></div>\n"
        '<a>no href at all</a> <a href="">an empty href</a>\n'
        '<a href="   about.html   ">a padded href</a>\n'
        '<a href="http://[::1">a broken IPv6 address</a>\n'
        '<a href="http://127.0.0.1:99999/">a port out of range</a>\n'
        '<A HREF="blog/">upper-case tags</A>\n'
        "<table><tr><td>an unclosed cell\n"
    )
    return web.Response(text=body, content_type="text/html")


async def notes(request: web.Request) -> web.Response:
    return _page("Notes", "tag-soup.html")


async def contact(request: web.Request) -> web.Response:
    return _page("Contact", "./", "blog/second-post.html")


async def moved(request: web.Request) -> web.Response:
    raise web.HTTPMovedPermanently("moved-again.html")


async def moved_again(request: web.Request) -> web.Response:
    raise web.HTTPFound("contact.html")


async def loop_a(request: web.Request) -> web.Response:
    raise web.HTTPFound("loop-b.html")


async def loop_b(request: web.Request) -> web.Response:
    raise web.HTTPFound("loop-a.html")


async def away(request: web.Request) -> web.Response:
    raise web.HTTPFound("http://elsewhere.invalid/")


async def missing(request: web.Request) -> web.Response:
    return web.Response(status=404, text="<h1>Not here</h1>", content_type="text/html")


async def broken(request: web.Request) -> web.Response:
    return web.Response(status=500, text="<h1>Oops</h1>", content_type="text/html")


async def _sleep_unless_gone(request: web.Request, delay: float) -> None:
    # Sleep in short steps and stop once the client has gone, so that a client
    # that timed out does not keep the server (and its shutdown) waiting.
    steps = max(1, math.ceil(delay / 0.05))
    for _ in range(steps):
        if _client_gone(request):
            return
        await asyncio.sleep(delay / steps)


def make_slow(delay: float) -> Handler:
    async def slow(request: web.Request) -> web.Response:
        await _sleep_unless_gone(request, delay)
        return _page("Slow", "./")

    return slow


async def logo(request: web.Request) -> web.Response:
    return web.Response(body=PNG_BYTES, content_type="image/png")


async def data(request: web.Request) -> web.Response:
    return web.json_response({"links": ["about.html"]})


async def huge(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/html"})
    response.enable_chunked_encoding()  # no Content-Length: the client must count
    await response.prepare(request)
    chunk = b"<p>" + b"filler " * 9360 + b"</p>\n"  # 65,528 bytes
    sent = 0
    try:
        await response.write(b"<!doctype html><title>Huge</title>\n")
        while sent < HUGE_SIZE:
            await response.write(chunk)
            sent += len(chunk)
            await asyncio.sleep(0)
        await response.write(b'<a href="about.html">the end</a>\n')
        await response.write_eof()
    except ConnectionResetError:  # the client stopped reading: that is the point
        pass
    return response


async def private(request: web.Request) -> web.Response:
    return _page("Private", "secret.html")


async def secret(request: web.Request) -> web.Response:
    return _page("Secret", "./")


def make_robots(text: Optional[str], status: int) -> Handler:
    async def robots(request: web.Request) -> web.Response:
        if text is None:
            raise web.HTTPNotFound()
        if status != 200:
            return web.Response(status=status, text=f"robots.txt answers {status}")
        root = request.path[: -len("robots.txt")]  # "/" or, mounted, e.g. "/site/"
        return web.Response(text=text.format(root=root), content_type="text/plain")

    return robots


async def chain(request: web.Request) -> web.Response:
    n = int(request.match_info["n"])
    if not 1 <= n <= CHAIN_LENGTH:
        raise web.HTTPNotFound()
    links = [f"{n + 1}.html"] if n < CHAIN_LENGTH else []
    return _page(f"Chain {n}", *links)


async def wide_index(request: web.Request) -> web.Response:
    return _page("Wide", *(f"{n}.html" for n in range(WIDE_PAGES)))


def make_wide_page(delay: float) -> Handler:
    async def wide_page(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        if not 0 <= n < WIDE_PAGES:
            raise web.HTTPNotFound()
        await _sleep_unless_gone(request, delay)
        return _page(f"Wide {n}", f"{(n + 1) % WIDE_PAGES}.html", "./")

    return wide_page


async def links(request: web.Request) -> web.Response:
    delay = float(request.query.get("delay", "0"))
    if delay > 0:
        await _sleep_unless_gone(request, delay)
    padding = "x" * min(int(request.query.get("pad", "0")), 1_000_000)
    return _page("Links", *request.query.getall("to", []), extra=f"<p>{padding}</p>\n")


async def guest(request: web.Request) -> web.Response:
    return _page("Guest", "../about.html")


async def redirect(request: web.Request) -> web.Response:
    target = request.query.get("to")
    if target is None:
        return web.Response(status=302, text="a redirect that forgot where to")
    # Sent exactly as given: web.HTTPFound would tidy it up (dot segments and all).
    return web.Response(status=302, headers={"Location": target})


def make_site_app(
    *,
    slow_delay: float = 2.0,
    wide_delay: float = 0.05,
    robots_txt: Optional[str] = ROBOTS_TXT,
    robots_status: int = 200,
) -> web.Application:
    """Build a fresh copy of the test site, with its own counters.

    ``slow_delay`` is how long ``/slow.html`` takes to answer, ``wide_delay``
    how long each ``/wide/{n}.html`` page takes, and ``robots_txt`` the text
    of ``/robots.txt`` (``None`` makes it answer 404); another
    ``robots_status`` makes it answer that status instead.
    """
    app = web.Application(middlewares=[count_requests])
    app[SITE_STATS] = SiteStats()
    add = app.router.add_get
    add("/", home)
    add("/about.html", about)
    add("/blog/", blog)
    add("/blog/first-post.html", first_post)
    add("/blog/second-post.html", second_post)
    add("/archive/2019.html", archive)
    add("/tag-soup.html", tag_soup)
    add("/notes.html", notes)
    add("/contact.html", contact)
    add("/moved.html", moved)
    add("/moved-again.html", moved_again)
    add("/loop-a.html", loop_a)
    add("/loop-b.html", loop_b)
    add("/away.html", away)
    add("/missing.html", missing)
    add("/broken.html", broken)
    add("/slow.html", make_slow(slow_delay))
    add("/logo.png", logo)
    add("/data.json", data)
    add("/huge.html", huge)
    add("/private/", private)
    add("/private/secret.html", secret)
    add("/robots.txt", make_robots(robots_txt, robots_status))
    add(r"/chain/{n:\d+}.html", chain)
    add("/wide/", wide_index)
    add(r"/wide/{n:\d+}.html", make_wide_page(wide_delay))
    add("/links.html", links)
    add("/redirect.html", redirect)
    add("/~guest/", guest)
    return app


def main(argv: Optional[List[str]] = None) -> None:
    """Serve the site until interrupted: ``python -m tests.crawl_site``."""
    serve_from_command_line(make_site_app, port=8081, doc=__doc__, argv=argv)


if __name__ == "__main__":
    main()
