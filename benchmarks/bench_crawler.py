"""Crawling a local site: a pool of workers vs one request at a time.

    python benchmarks/bench_crawler.py                 # 1,000 pages
    python benchmarks/bench_crawler.py --quick         # 200 pages
    python benchmarks/bench_crawler.py --json out.json

A local site of N pages (``--pages``; 1,000 by default) answers every page
after 20 ms (``--delay``), like a fast real server.  Each page is about 7 KB
of HTML with links to ten child pages (a tree, so every page is reachable
within three links) and to five pages elsewhere on the site.  The site runs
in a separate process (this script with ``--serve``), so the server neither
runs on the crawler's event loop nor competes with it for the GIL.  The
crawler is ``recipes.crawler.crawl`` with ``max_pages=N``, run twice:

* ``concurrency=50`` (``--concurrency``), the recipe as intended;
* ``concurrency=1``, a sequential crawl.

Both are compared with what they cannot beat.  Waiting is the floor for a
sequential crawl: N x 20 ms, plus the parsing.  For the pool it is N x 20 ms
/ 50, unless parsing costs more: BeautifulSoup holds the GIL, so however
many threads parse, the pages are parsed one at a time.  The parse time is
measured here by parsing the same N pages in a loop with
``recipes.crawler.extract_links`` (best of three runs, after a warm-up; the
pool's crawl is also the best of two runs).  The floors use the CPU time of
that loop, which other processes on a busy machine cannot inflate; its wall
time is reported too.  Real clock; the figures depend on the machine and on
its load (the load average is printed and stored).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import bs4  # noqa: E402
from aiohttp import web  # noqa: E402

from recipes.crawler import crawl, extract_links  # noqa: E402

from _common import print_ratios, serve_until_stdin_closes, server_process, write_results  # noqa: E402

WORDS = (
    "asyncio event loop task future coroutine queue worker timeout crawler page link "
    "session request response header body parse thread pool limit robots redirect"
).split()


def page_html(n: int, pages: int) -> str:
    """Page ``n`` of a site of ``pages`` pages: deterministic, about 9 KB."""
    children = [c for c in range(10 * n + 1, 10 * n + 11) if c < pages]
    elsewhere = [(n * 37 + k * 101) % pages for k in range(1, 6)]
    links = "\n".join(f'<li><a href="{site_url_of(c)}">page {c}</a></li>' for c in children)
    more = "\n".join(
        f'<li><a href="{site_url_of(c)}#top">see also {c}</a></li>' for c in elsewhere
    )
    text = "\n".join(
        "<p>" + " ".join(WORDS[(n + i * 7 + j) % len(WORDS)] for j in range(24)) + "</p>"
        for i in range(40)
    )
    return (
        f"<!doctype html>\n<html><head><title>Page {n}</title></head><body>\n"
        f'<nav><a href="/">home</a> <a href="https://elsewhere.invalid/">out</a></nav>\n'
        f"<h1>Page {n}</h1>\n<ul>\n{links}\n</ul>\n{text}\n<ul>\n{more}\n</ul>\n"
        "</body></html>\n"
    )


def site_url_of(n: int) -> str:
    return "/" if n == 0 else f"/p/{n}.html"


# --- the server (run in its own process) --------------------------------------


def serve(pages: int, delay: float) -> None:
    bodies = {site_url_of(n): page_html(n, pages) for n in range(pages)}

    async def page(request: web.Request) -> web.Response:
        body = bodies.get(request.path)
        if body is None:
            raise web.HTTPNotFound()
        await asyncio.sleep(delay)
        return web.Response(text=body, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get(r"/p/{n:\d+}.html", page)
    asyncio.run(serve_until_stdin_closes(app))


# --- the measurements ---------------------------------------------------------


def parse_seconds(pages: int, repeats: int = 3) -> Tuple[float, float]:
    """Wall and CPU seconds to parse every page once, one after the other.

    One after the other is what the GIL allows anyway.  The best of
    ``repeats`` runs, after a warm-up: this is a floor, so the machine's best
    effort is the figure that counts.  CPU time shows how much of the wall
    time other processes took.
    """
    documents = [
        (page_html(n, pages).encode(), f"http://127.0.0.1{site_url_of(n)}") for n in range(pages)
    ]
    for body, url in documents[:20]:
        extract_links(body, url, encoding="utf-8")
    best_wall = best_cpu = float("inf")
    for _ in range(repeats):
        started, cpu_started = time.perf_counter(), time.process_time()
        for body, url in documents:
            extract_links(body, url, encoding="utf-8")
        best_wall = min(best_wall, time.perf_counter() - started)
        best_cpu = min(best_cpu, time.process_time() - cpu_started)
    return best_wall, best_cpu


async def timed_crawl(base: str, pages: int, concurrency: int) -> float:
    started = time.perf_counter()
    result = await crawl(
        base + "/",
        max_depth=10,
        max_pages=pages,
        concurrency=concurrency,
        timeout=30,
    )
    seconds = time.perf_counter() - started
    if len(result.visited) != pages or result.errors:
        raise RuntimeError(
            f"concurrency={concurrency}: visited {len(result.visited)} of {pages} pages, "
            f"errors: {dict(list(result.errors.items())[:5])}"
        )
    return seconds


def measure(pages: int, delay: float, concurrency: int) -> Dict[str, Any]:
    serve_args = ("--serve", "--pages", str(pages), "--delay", str(delay))
    with server_process(__file__, *serve_args) as server:
        base = server.url
        print(f"{pages:,} pages at {base}, each answered after {delay * 1000:g} ms", flush=True)
        if hasattr(os, "getloadavg"):
            load = os.getloadavg()[0]
            print(f"load average {load:.1f} on {os.cpu_count()} CPUs", flush=True)
        parsing, parsing_cpu = parse_seconds(pages)
        print(f"{'parsing alone':>24}: {parsing:8.3f} s ({parsing_cpu:.3f} s CPU)", flush=True)
        # The best of two runs for the pool, which is quick; one sequential run.
        pooled = min(asyncio.run(timed_crawl(base, pages, concurrency)) for _ in range(2))
        print(f"{f'concurrency={concurrency}':>24}: {pooled:8.3f} s", flush=True)
        sequential = asyncio.run(timed_crawl(base, pages, 1))
        print(f"{'concurrency=1':>24}: {sequential:8.3f} s", flush=True)

    waiting = pages * delay
    # CPU time, not wall time: on a busy machine other processes inflate the
    # wall time of the parse loop, which would make the floor too generous.
    pooled_limit = max(waiting / concurrency, parsing_cpu)
    sequential_limit = waiting + parsing_cpu
    unit = f"seconds for {pages:,} pages"
    results: List[Dict[str, Any]] = [
        {"name": f"crawl, concurrency={concurrency}", "value": pooled, "unit": unit},
        {"name": f"limit, concurrency={concurrency}", "value": pooled_limit, "unit": unit},
        {"name": "crawl, concurrency=1", "value": sequential, "unit": unit},
        {"name": "limit, concurrency=1", "value": sequential_limit, "unit": unit},
        {"name": "parsing alone", "value": parsing, "unit": unit},
        {"name": "parsing alone, CPU time", "value": parsing_cpu, "unit": unit},
        {
            "name": f"crawl, concurrency={concurrency}",
            "value": pages / pooled,
            "unit": "pages per second",
        },
        {"name": "crawl, concurrency=1", "value": pages / sequential, "unit": "pages per second"},
    ]
    ratios = {
        "speedup_pool_vs_sequential": sequential / pooled,
        "pool_vs_its_limit": pooled / pooled_limit,
        "sequential_vs_its_limit": sequential / sequential_limit,
    }
    return {
        "benchmark": "web crawler",
        "python": platform.python_version(),
        "pages": pages,
        "delay_seconds": delay,
        "concurrency": concurrency,
        "server": "separate process (aiohttp.web)",
        "cpus": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "aiohttp": aiohttp.__version__,
        "beautifulsoup4": bs4.__version__,
        "results": results,
        "ratios": ratios,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 pages instead of 1,000")
    parser.add_argument("--pages", type=int, help="pages on the site (overrides --quick)")
    parser.add_argument("--delay", type=float, default=0.02, help="server delay per page (s)")
    parser.add_argument("--concurrency", type=int, default=50, help="workers of the pool")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    pages = args.pages or (200 if args.quick else 1000)
    if pages < 1 or args.delay < 0 or args.concurrency < 1:
        parser.error("--pages and --concurrency must be >= 1, --delay >= 0")
    if args.serve:
        serve(pages, args.delay)
        return 0

    data = measure(pages, args.delay, args.concurrency)
    print_ratios(data["ratios"], width=28)
    write_results(args.json, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
