"""Fetching many local URLs: one at a time vs under a concurrency limit.

    python benchmarks/bench_http.py                # 1,000 URLs
    python benchmarks/bench_http.py --quick        # 200 URLs
    python benchmarks/bench_http.py --json out.json

A local aiohttp server, in a separate process (this script with ``--serve``),
answers every URL after 20 ms.  The client is ``recipes.http_client``: one
session from ``make_session``, and ``fetch_all`` with ``limit=1`` (sequential)
and ``limit=50``.  Both are compared with the ideal time, N x 20 ms / limit,
which no client can beat.  Real clock; the load average is printed and stored.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Dict

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from recipes.http_client import fetch_all, make_session

from _common import print_ratios, serve_until_stdin_closes, server_process, write_results


def serve(delay: float) -> None:
    async def item(request: web.Request) -> web.Response:
        await asyncio.sleep(delay)
        return web.json_response({"item": int(request.match_info["n"])})

    app = web.Application()
    app.router.add_get(r"/items/{n:\d+}", item)
    asyncio.run(serve_until_stdin_closes(app))


async def timed_fetch(base: str, count: int, limit: int) -> float:
    urls = [f"{base}/items/{n}" for n in range(count)]
    timeout = aiohttp.ClientTimeout(total=60, connect=5)
    async with make_session(timeout=timeout, limit=limit) as session:
        started = time.perf_counter()
        results = await fetch_all(session, urls, limit=limit)
        elapsed = time.perf_counter() - started
    failed = [r for r in results if not r.ok]
    if failed:
        raise SystemExit(f"{len(failed)} fetches failed, e.g. {failed[0]!r}")
    return elapsed


def measure(count: int, delay: float, limit: int) -> Dict[str, Any]:
    with server_process(__file__, "--serve", "--delay", str(delay)) as server:
        base = server.url
        print(f"{count:,} URLs at {base}, each answered after {delay * 1000:g} ms", flush=True)
        concurrent = min(asyncio.run(timed_fetch(base, count, limit)) for _ in range(2))
        print(f"{f'limit={limit}':>16}: {concurrent:8.3f} s", flush=True)
        sequential = asyncio.run(timed_fetch(base, count, 1))
        print(f"{'sequential':>16}: {sequential:8.3f} s", flush=True)
    ideal = count * delay / limit
    unit = f"seconds for {count:,} URLs"
    return {
        "benchmark": "fetching local URLs with aiohttp",
        "python": platform.python_version(),
        "urls": count,
        "delay_seconds": delay,
        "limit": limit,
        "cpus": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "aiohttp": aiohttp.__version__,
        "results": [
            {"name": "sequential (limit=1)", "value": sequential, "unit": unit},
            {"name": f"fetch_all, limit={limit}", "value": concurrent, "unit": unit},
            {"name": f"ideal: N x {delay * 1000:g} ms / {limit}", "value": ideal, "unit": unit},
        ],
        "ratios": {
            "sequential_over_limited": sequential / concurrent,
            "limited_over_ideal": concurrent / ideal,
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 URLs instead of 1,000")
    parser.add_argument("--delay", type=float, default=0.02, help="server delay per URL (s)")
    parser.add_argument("--limit", type=int, default=50, help="concurrency limit")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.delay)
        return 0
    data = measure(200 if args.quick else 1000, args.delay, args.limit)
    print_ratios(data["ratios"], width=26)
    write_results(args.json, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
