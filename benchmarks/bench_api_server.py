"""The users API against a bare aiohttp handler: what the safety costs per request.

    python benchmarks/bench_api_server.py                  # 20,000 requests per round
    python benchmarks/bench_api_server.py --quick          # 4,000 requests, one round
    python benchmarks/bench_api_server.py --json out.json

Two servers, each in a process of its own (this script with ``--serve``):

* ``recipes.api_server.make_app`` with a ``MemoryStore`` holding 100 users
  (``--users``): routing, the error middleware, the store's lookup, JSON
  encoding;
* a bare aiohttp application whose only handler looks the user up in a dict
  of ready-made JSON objects and returns ``web.json_response``.

Both answer ``GET /users/{id}`` with the same JSON body, and both run with
the access log off.  The client is one ``aiohttp.ClientSession`` in this
process, with a connector limit of 100 (``--concurrency``) and as many
tasks, which share N requests (``--requests``) for random existing ids.  Each
round measures both servers one after the other (in alternating order),
after a warm-up; the figures are the median round of three (``--rounds``).  Every answer is
checked (status 200, the right user), so a fast failure cannot pass for
speed.

The client is Python too, and on a small machine it needs about as much CPU
as the server: the requests per second and the latencies measure the pair,
and their ratios understate the server-side difference.  On Linux the
script therefore also reads each server's CPU time (user + system, from
``/proc/<pid>/stat``) before and after every round: the server's CPU time
per request is the cost of the recipe itself, whatever the client does.
Real clock; the figures depend on the machine and its load (the load average
is printed and stored).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from recipes.api_server import MemoryStore, User, make_app  # noqa: E402

from _common import print_ratios, serve_until_stdin_closes, server_process, write_results  # noqa: E402


def sample_users(count: int) -> List[User]:
    return [User(str(n), f"User number {n}", 20 + n % 60) for n in range(count)]


# --- the servers (each run in its own process) ------------------------------------------


def bare_app(users: List[User]) -> web.Application:
    bodies: Dict[str, Dict[str, Any]] = {user.id: user.to_json() for user in users}

    async def get_user(request: web.Request) -> web.Response:
        body = bodies.get(request.match_info["id"])
        if body is None:
            raise web.HTTPNotFound()
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/users/{id}", get_user)
    return app


def serve(kind: str, user_count: int) -> None:
    users = sample_users(user_count)
    app = make_app(MemoryStore(users)) if kind == "ours" else bare_app(users)
    asyncio.run(serve_until_stdin_closes(app))


# --- the client ---------------------------------------------------------------------------


async def drive(
    url: str, requests: int, concurrency: int, user_count: int, seed: int
) -> Dict[str, float]:
    """Send ``requests`` GETs from ``concurrency`` tasks; return rate and latencies."""
    rng = random.Random(seed)
    ids = [str(rng.randrange(user_count)) for _ in range(requests)]
    expected = {user.id: user.to_json() for user in sample_users(user_count)}
    latencies: List[float] = []
    next_index = 0

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            nonlocal next_index
            while next_index < len(ids):
                user_id = ids[next_index]
                next_index += 1
                started = time.perf_counter()
                async with session.get(f"{url}/users/{user_id}") as resp:
                    body = await resp.read()
                    status = resp.status
                latencies.append(time.perf_counter() - started)
                if status != 200 or json.loads(body) != expected[user_id]:
                    raise RuntimeError(f"bad answer for {user_id}: {status} {body[:200]!r}")

        started = time.perf_counter()
        workers = [asyncio.ensure_future(worker()) for _ in range(concurrency)]
        try:
            await asyncio.gather(*workers)
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        seconds = time.perf_counter() - started

    latencies.sort()
    return {
        "requests_per_second": requests / seconds,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    }


def cpu_seconds(pid: int) -> Optional[float]:
    """User + system CPU time of a process so far (Linux only; ``None`` elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            # The fields after the command name, which is in parentheses.
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(requests: int, concurrency: int, user_count: int, rounds: int) -> Dict[str, Any]:
    kinds = ("bare", "ours")
    runs: Dict[str, List[Dict[str, float]]] = {kind: [] for kind in kinds}
    with contextlib.ExitStack() as stack:
        servers = {
            kind: stack.enter_context(
                server_process(__file__, "--serve", kind, "--users", str(user_count))
            )
            for kind in kinds
        }
        urls = {kind: server.url for kind, server in servers.items()}
        if hasattr(os, "getloadavg"):
            print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
        print(
            f"{requests:,} x GET /users/{{id}} per round, {concurrency} concurrent clients, "
            f"{user_count} users",
            flush=True,
        )
        for kind in kinds:  # warm-up: connections, caches, the first-call costs
            asyncio.run(drive(urls[kind], min(2000, requests), concurrency, user_count, 0))
        for round_number in range(1, rounds + 1):
            # Alternate which server goes first, so neither always follows the other.
            for kind in kinds if round_number % 2 else kinds[::-1]:
                cpu_before = cpu_seconds(servers[kind].pid)
                figures = asyncio.run(
                    drive(urls[kind], requests, concurrency, user_count, round_number)
                )
                cpu_after = cpu_seconds(servers[kind].pid)
                if cpu_before is not None and cpu_after is not None:
                    figures["server_cpu_us"] = 1e6 * (cpu_after - cpu_before) / requests
                runs[kind].append(figures)
                cpu = figures.get("server_cpu_us")
                print(
                    f"round {round_number} {kind:>4}: {figures['requests_per_second']:8,.0f} "
                    f"req/s  p50 {figures['p50_ms']:6.2f} ms  p99 {figures['p99_ms']:6.2f} ms"
                    + ("" if cpu is None else f"  server CPU {cpu:5.0f} us/request"),
                    flush=True,
                )

    def median_round(kind: str) -> Dict[str, float]:
        ordered = sorted(runs[kind], key=lambda r: r["requests_per_second"])
        return ordered[len(ordered) // 2]

    bare, ours = median_round("bare"), median_round("ours")
    results: List[Dict[str, Any]] = []
    for label, figures in (("bare aiohttp handler", bare), ("users API (recipe)", ours)):
        results += [
            {
                "name": label,
                "value": figures["requests_per_second"],
                "unit": "requests per second",
            },
            {"name": f"{label}, p50", "value": figures["p50_ms"], "unit": "latency (ms)"},
            {"name": f"{label}, p99", "value": figures["p99_ms"], "unit": "latency (ms)"},
        ]
        if "server_cpu_us" in figures:
            results.append(
                {
                    "name": label,
                    "value": figures["server_cpu_us"],
                    "unit": "server CPU per request (µs)",
                }
            )
    ratios = {
        "throughput_ours_vs_bare": ours["requests_per_second"] / bare["requests_per_second"],
        "p50_ours_vs_bare": ours["p50_ms"] / bare["p50_ms"],
        "p99_ours_vs_bare": ours["p99_ms"] / bare["p99_ms"],
    }
    if "server_cpu_us" in ours and "server_cpu_us" in bare:
        ratios["server_cpu_ours_vs_bare"] = ours["server_cpu_us"] / bare["server_cpu_us"]
    return {
        "benchmark": "JSON API server",
        "python": platform.python_version(),
        "requests_per_round": requests,
        "rounds": rounds,
        "concurrency": concurrency,
        "users": user_count,
        "servers": "separate processes (aiohttp.web, access log off)",
        "client": "one aiohttp.ClientSession in the benchmark process",
        "cpus": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "aiohttp": aiohttp.__version__,
        "median_round": {"bare": bare, "ours": ours},
        "all_rounds": runs,
        "results": results,
        "ratios": ratios,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4,000 requests, one round")
    parser.add_argument("--requests", type=int, help="requests per round (overrides --quick)")
    parser.add_argument("--rounds", type=int, help="rounds; the median one is reported")
    parser.add_argument("--concurrency", type=int, default=100, help="concurrent clients")
    parser.add_argument("--users", type=int, default=100, help="users in each server")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument("--serve", choices=("ours", "bare"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.users)
        return 0
    requests = args.requests or (4000 if args.quick else 20_000)
    rounds = args.rounds or (1 if args.quick else 3)
    if min(requests, rounds, args.concurrency, args.users) < 1:
        parser.error("--requests, --rounds, --concurrency and --users must be >= 1")

    data = measure(requests, args.concurrency, args.users, rounds)
    print_ratios(data["ratios"], width=26)
    write_results(args.json, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
