"""Crawling a local site: where the pages are parsed, and how close to the network floor.

    python benchmarks/bench_crawler.py                 # 1,000 pages, 3 runs each
    python benchmarks/bench_crawler.py --quick         # 200 pages
    python benchmarks/bench_crawler.py --json out.json

A local site of N pages (``--pages``; 1,000 by default) answers every page
after 20 ms (``--delay``), like a fast real server.  Each page is about 9 KB
of HTML with links to ten child pages (a tree, so every page is reachable
within three links) and to five pages elsewhere on the site.  The site runs
in a separate process (this script with ``--serve``), so the server neither
runs on the crawler's event loop nor competes with it for the GIL; it does
share the machine's CPUs with the crawler.  The crawler is
``recipes.crawler.crawl`` with ``max_pages=N``: once it has taken on N URLs
(after parsing about a tenth of the site) it fetches the rest without parsing
them.  The two main configurations run again with ``max_pages=2N``, a budget
that never fills, so that every page is parsed.  It runs these ways:

* ``concurrency=50`` (``--concurrency``) with a process pool from
  ``recipes.crawler.parse_pool(default_parse_processes())``, as the command
  line runs it: one process per CPU but one (skipped on a single CPU).  The
  pool is started before the clock starts, as a program that crawls more
  than once keeps its pool; its start-up time is reported on its own;
* ``concurrency=50`` without an executor: pages parsed in the crawler's
  own process, in the loop's default thread pool, in batches;
* ``concurrency=50`` parsing each page in the loop's default thread pool, one
  hand-over per page, as the first version of the recipe did (its parser
  swapped in for this run);
* ``concurrency=1``, a sequential crawl, parsing in its own process;
* ``concurrency=50`` with the links of every page known in advance (a
  dictionary look-up in place of ``extract_links``): what the crawl costs
  without any parsing, its ramp-up (the start page first, then the pages it
  links to...) and its requests, a floor that a real crawler cannot reach.

Each is run ``--repeats`` times (3 by default), one after the other in turn
so that a change of load on the machine hits them alike, and the median is
reported, with every run stored.

Each is compared with what it cannot beat.  The network floor of the pool
is N x 20 ms / 50.  Parsing in the crawler's process adds the parse time:
BeautifulSoup holds the GIL, so the pages are parsed one at a time, and the
floor is the larger of the two.  For a sequential crawl it is N x 20 ms plus
the parsing.  The parse time is measured by parsing the same N pages in a
loop with ``recipes.crawler.extract_links`` (best of three runs, after a
warm-up), in CPU time, which other processes on a busy machine cannot
inflate; its wall time is reported too.  Real clock; the figures depend on
the machine and on its load (the load average before and after is stored).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import platform
import statistics
import sys
import time
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import bs4  # noqa: E402
from aiohttp import web  # noqa: E402

import recipes.crawler  # noqa: E402
from recipes.crawler import (  # noqa: E402
    crawl,
    default_parse_processes,
    extract_links,
    parse_pool,
)

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


async def timed_crawl(
    base: str,
    pages: int,
    concurrency: int,
    executor: Optional[Executor] = None,
    *,
    budget: Optional[int] = None,
) -> float:
    started = time.perf_counter()
    result = await crawl(
        base + "/",
        max_depth=10,
        max_pages=pages if budget is None else budget,
        concurrency=concurrency,
        timeout=30,
        executor=executor,
    )
    seconds = time.perf_counter() - started
    if len(result.visited) != pages or result.errors:
        raise RuntimeError(
            f"concurrency={concurrency}: visited {len(result.visited)} of {pages} pages, "
            f"errors: {dict(list(result.errors.items())[:5])}"
        )
    return seconds


@contextlib.contextmanager
def links_known_in_advance(pages: int) -> Iterator[None]:
    """Replace the crawler's parser with a look-up of each page's links (found beforehand)."""
    here = "http://127.0.0.1/"
    known = {
        site_url_of(n): extract_links(page_html(n, pages), here + site_url_of(n)[1:])
        for n in range(pages)
    }

    def look_up(page: object, base_url: str, *, encoding: Optional[str] = None) -> List[str]:
        root = base_url.index("/", len("http://"))  # the site's links, on the site's port
        origin, path = base_url[:root], base_url[root:]
        return [
            origin + link[len(here) - 1 :] if link.startswith(here) else link
            for link in known[path]
        ]

    real = recipes.crawler.extract_links
    recipes.crawler.extract_links = look_up
    try:
        yield
    finally:
        recipes.crawler.extract_links = real


@contextlib.contextmanager
def each_page_in_a_thread() -> Iterator[None]:
    """Parse as the recipe's first version did: every page in the default thread pool."""

    async def links(self: object, body: bytes, url: str, encoding: Optional[str]) -> List[str]:
        parse = functools.partial(recipes.crawler.extract_links, body, url, encoding=encoding)
        return await asyncio.get_running_loop().run_in_executor(None, parse)

    real = recipes.crawler._Parser.links
    recipes.crawler._Parser.links = links  # type: ignore[method-assign]
    try:
        yield
    finally:
        recipes.crawler._Parser.links = real  # type: ignore[method-assign]


def cpu_seconds_of(pid: int) -> Optional[float]:
    """User + system CPU time of process ``pid`` so far (Linux), or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> Optional[float]:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def measure(pages: int, delay: float, concurrency: int, repeats: int) -> Dict[str, Any]:
    processes = default_parse_processes()
    serve_args = ("--serve", "--pages", str(pages), "--delay", str(delay))
    load_before = load_average()
    with server_process(__file__, *serve_args) as server:
        base = server.url
        print(f"{pages:,} pages at {base}, each answered after {delay * 1000:g} ms", flush=True)
        print(f"load average {load_before} on {os.cpu_count()} CPUs", flush=True)
        parsing, parsing_cpu = parse_seconds(pages)
        print(f"{'parsing alone':>34}: {parsing:8.3f} s ({parsing_cpu:.3f} s CPU)", flush=True)

        pool = parse_pool(processes) if processes else None
        try:
            startup = 0.0
            if pool is not None:
                started = time.perf_counter()
                pool.submit(extract_links, "<a href='/'>", "http://127.0.0.1/").result()
                startup = time.perf_counter() - started
                print(f"{f'pool of {processes} started':>34}: {startup:8.3f} s", flush=True)
            runs: Dict[str, Callable[[], float]] = {}
            if pool is not None:
                runs["pool"] = lambda: asyncio.run(timed_crawl(base, pages, concurrency, pool))
                # max_pages above the site's size: the budget never fills, every page is parsed.
                runs["pool_parse_all"] = lambda: asyncio.run(
                    timed_crawl(base, pages, concurrency, pool, budget=2 * pages)
                )
            runs["in_process"] = lambda: asyncio.run(timed_crawl(base, pages, concurrency))
            runs["in_process_parse_all"] = lambda: asyncio.run(
                timed_crawl(base, pages, concurrency, budget=2 * pages)
            )
            runs["sequential"] = lambda: asyncio.run(timed_crawl(base, pages, 1))

            def no_parsing() -> float:
                with links_known_in_advance(pages):
                    return asyncio.run(timed_crawl(base, pages, concurrency))

            runs["no_parsing"] = no_parsing

            def threads() -> float:
                with each_page_in_a_thread():
                    return asyncio.run(timed_crawl(base, pages, concurrency))

            runs["threads"] = threads
            for name in ("pool", "in_process", "no_parsing", "threads"):  # a warm-up, untimed
                if name in runs:
                    runs[name]()
            times: Dict[str, List[float]] = {name: [] for name in runs}
            server_cpu: Dict[str, List[float]] = {name: [] for name in runs}
            for _ in range(repeats):  # in turn, so that the load hits them alike
                for name, run in runs.items():
                    cpu_before = cpu_seconds_of(server.pid)
                    times[name].append(run())
                    cpu_after = cpu_seconds_of(server.pid)
                    if cpu_before is not None and cpu_after is not None:
                        server_cpu[name].append(cpu_after - cpu_before)
                    print(f"{name:>34}: {times[name][-1]:8.3f} s", flush=True)
        finally:
            if pool is not None:
                pool.shutdown()
    load_after = load_average()

    median = {name: statistics.median(values) for name, values in times.items()}
    waiting = pages * delay
    network_floor = waiting / concurrency
    # CPU time, not wall time: on a busy machine other processes inflate the
    # wall time of the parse loop, which would make the floors too generous.
    in_process_floor = max(network_floor, parsing_cpu)
    sequential_floor = waiting + parsing_cpu
    unit = f"seconds for {pages:,} pages"
    pool_name = f"crawl, concurrency={concurrency}, parsed in {processes} other process"
    pool_name += "es" if processes != 1 else ""
    own_name = f"crawl, concurrency={concurrency}, parsed in a thread, in batches"
    results: List[Dict[str, Any]] = []
    every = ", max_pages above the site's size (every page parsed)"
    if "pool" in median:
        results.append({"name": pool_name, "value": median["pool"], "unit": unit})
        results.append(
            {"name": pool_name + every, "value": median["pool_parse_all"], "unit": unit}
        )
    results += [
        {"name": own_name, "value": median["in_process"], "unit": unit},
        {"name": own_name + every, "value": median["in_process_parse_all"], "unit": unit},
        {
            "name": f"network floor, concurrency={concurrency}",
            "value": network_floor,
            "unit": unit,
        },
        {
            "name": f"floor when parsing in the crawler's process, concurrency={concurrency}",
            "value": in_process_floor,
            "unit": unit,
        },
        {
            "name": f"crawl, concurrency={concurrency}, each page parsed in a thread (before)",
            "value": median["threads"],
            "unit": unit,
        },
        {
            "name": f"crawl, concurrency={concurrency}, links known in advance (no parsing)",
            "value": median["no_parsing"],
            "unit": unit,
        },
        {"name": "crawl, concurrency=1", "value": median["sequential"], "unit": unit},
        {"name": "floor, concurrency=1", "value": sequential_floor, "unit": unit},
        {"name": "parsing alone", "value": parsing, "unit": unit},
        {"name": "parsing alone, CPU time", "value": parsing_cpu, "unit": unit},
    ]
    if "pool" in median:
        results.append(
            {
                "name": f"starting the pool of {processes} (not in the crawl)",
                "value": startup,
                "unit": "seconds",
            }
        )
        results.append(
            {"name": pool_name, "value": pages / median["pool"], "unit": "pages per second"}
        )
    results += [
        {"name": own_name, "value": pages / median["in_process"], "unit": "pages per second"},
        {
            "name": "crawl, concurrency=1",
            "value": pages / median["sequential"],
            "unit": "pages per second",
        },
    ]
    ratios: Dict[str, float] = {}
    if "pool" in median:
        ratios["pool_vs_network_floor"] = median["pool"] / network_floor
        ratios["pool_every_page_parsed_vs_network_floor"] = (
            median["pool_parse_all"] / network_floor
        )
        ratios["speedup_pool_vs_sequential"] = median["sequential"] / median["pool"]
    ratios["in_process_vs_network_floor"] = median["in_process"] / network_floor
    ratios["in_process_every_page_parsed_vs_network_floor"] = (
        median["in_process_parse_all"] / network_floor
    )
    ratios["in_process_vs_its_floor"] = median["in_process"] / in_process_floor
    ratios["speedup_in_process_vs_sequential"] = median["sequential"] / median["in_process"]
    ratios["sequential_vs_its_floor"] = median["sequential"] / sequential_floor
    ratios["no_parsing_vs_network_floor"] = median["no_parsing"] / network_floor
    ratios["threads_vs_network_floor"] = median["threads"] / network_floor

    loads = f"load average {load_before} before, {load_after} after"
    description = (
        f"{pages:,} pages, each answered after {delay * 1000:g} ms by a local server in "
        f"another process, crawled by {concurrency} workers: the network floor is "
        f"{network_floor:.2f} s.  "
    )
    description += (
        f"With max_pages={pages:,}, the crawl has taken on every URL once about a tenth of "
        "the site is parsed, and the pages that arrive after that are fetched but not "
        "parsed (their links could add nothing).  "
    )
    if "pool" in median:
        description += (
            f"Parsed in {processes} other process{'es' if processes != 1 else ''}, the crawl "
            f"took {median['pool']:.2f} s ({ratios['pool_vs_network_floor']:.1f}x the floor, "
            f"{ratios['speedup_pool_vs_sequential']:.0f}x faster than one request at a time); "
            "with a budget above the site's size, so that every page is parsed, "
            f"{median['pool_parse_all']:.2f} s "
            f"({ratios['pool_every_page_parsed_vs_network_floor']:.1f}x).  Parsed"
        )
    else:
        description += "On a single CPU there is no process pool.  Parsed"
    description += (
        f" in a thread of the crawler's own process, in batches, {median['in_process']:.2f} s "
        f"({ratios['in_process_vs_network_floor']:.1f}x), and "
        f"{median['in_process_parse_all']:.2f} s "
        f"({ratios['in_process_every_page_parsed_vs_network_floor']:.1f}x) with every page "
        "parsed: BeautifulSoup took "
        f"{parsing_cpu:.2f} s of CPU for the {pages:,} pages, and with the GIL they are "
        "parsed one at a time.  Each page handed to a thread on its own, as the recipe's "
        f"first version did, {median['threads']:.2f} s "
        f"({ratios['threads_vs_network_floor']:.1f}x; from {min(times['threads']):.2f} to "
        f"{max(times['threads']):.2f} s): every hand-over is a thread switch and a turn of "
        "the GIL.  "
        "With no parsing at all (the links known in advance), "
        f"{median['no_parsing']:.2f} s ({ratios['no_parsing_vs_network_floor']:.1f}x): the "
        "rest is the ramp-up and the CPU time of the requests.  Median of "
        f"{repeats} runs each, on {os.cpu_count()} CPUs shared by the crawler, the server"
    )
    if server_cpu.get("in_process"):
        server_seconds = statistics.median(server_cpu["in_process"])
        description += f" (about {server_seconds:.2f} CPU-seconds per crawl)"
    description += f" and other work ({loads})."
    return {
        "benchmark": "web crawler",
        "description": description,
        "python": platform.python_version(),
        "pages": pages,
        "delay_seconds": delay,
        "concurrency": concurrency,
        "parse_processes": processes,
        "server": "separate process (aiohttp.web)",
        "cpus": os.cpu_count(),
        "load_average_1min": load_before,
        "load_average_1min_after": load_after,
        "repeats": repeats,
        "all_runs_seconds": times,
        "server_cpu_seconds": server_cpu,
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
    parser.add_argument("--repeats", type=int, default=3, help="runs of each crawl (median)")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    pages = args.pages or (200 if args.quick else 1000)
    if pages < 1 or args.delay < 0 or args.concurrency < 1 or args.repeats < 1:
        parser.error("--pages, --concurrency and --repeats must be >= 1, --delay >= 0")
    if args.serve:
        serve(pages, args.delay)
        return 0

    data = measure(pages, args.delay, args.concurrency, args.repeats)
    print_ratios(data["ratios"], width=34)
    write_results(args.json, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
