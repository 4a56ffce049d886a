"""Coalescing concurrent calls: backend calls and wall time, with and without single-flight.

    python benchmarks/bench_coalescing.py                # 20,000 callers, 100 keys
    python benchmarks/bench_coalescing.py --quick        # 2,000 callers, 20 keys
    python benchmarks/bench_coalescing.py --json out.json

A simulated backend answers after 20 ms and serves at most 10 requests at a
time (a database pool).  N concurrent callers ask for K distinct keys:

* ``naive``: every caller calls the backend (N calls);
* ``SingleFlight``: callers of the same key share one call (K calls);
* ``TTLCache``: the same, then a second wave of N callers served from the cache.

The limit no client can beat is K calls, 10 at a time: ceil(K / 10) x 20 ms,
plus the "floor": what N callers cost when every answer is ready at once
(one task each, in ``asyncio.gather``).
Also measured: the cost per call of going through the recipes when there is
nothing to share (an instant coroutine awaited directly, in a task of its own
as ``SingleFlight`` runs every call, through ``SingleFlight.call``, as a
``TTLCache`` hit and through ``@coalesce``).
Real clock; the load average is printed and stored.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from recipes.coalescing import SingleFlight, TTLCache, coalesce

from _common import print_ratios, write_results

LATENCY = 0.02
CAPACITY = 10


class Backend:
    """20 ms per request, at most CAPACITY at a time; counts the requests."""

    def __init__(self) -> None:
        self.calls = 0
        self.pool = asyncio.Semaphore(CAPACITY)

    async def fetch(self, key: int) -> int:
        self.calls += 1
        async with self.pool:
            await asyncio.sleep(LATENCY)
        return key * 2


async def instant(key: int) -> int:
    return key * 2


async def wave(count: int, keys: int, ask: Callable[[int], Awaitable[int]]) -> float:
    started = time.perf_counter()
    results = await asyncio.wait_for(
        asyncio.gather(*(ask(n % keys) for n in range(count))), timeout=600
    )
    elapsed = time.perf_counter() - started
    if results != [(n % keys) * 2 for n in range(count)]:
        raise SystemExit("wrong results")
    return elapsed


async def measure_load(count: int, keys: int) -> Dict[str, float]:
    figures: Dict[str, float] = {}
    # What N callers cost with no backend at all: one task each, answered at once.
    figures["floor_seconds"] = await wave(count, keys, instant)

    backend = Backend()
    figures["naive_seconds"] = await wave(count, keys, backend.fetch)
    figures["naive_calls"] = backend.calls

    backend = Backend()
    flight = SingleFlight()
    figures["single_flight_seconds"] = await wave(
        count, keys, lambda k: flight.call(k, functools.partial(backend.fetch, k))
    )
    figures["single_flight_calls"] = backend.calls

    backend = Backend()
    cache = TTLCache(ttl=60, maxsize=keys)

    def cached(k: int) -> Awaitable[int]:
        return cache.get(k, functools.partial(backend.fetch, k))

    figures["cache_first_wave_seconds"] = await wave(count, keys, cached)
    figures["cache_second_wave_seconds"] = await wave(count, keys, cached)
    figures["cache_calls"] = backend.calls
    return figures


async def per_call_microseconds(calls: int) -> Dict[str, float]:
    flight = SingleFlight()
    cache = TTLCache(ttl=3600, maxsize=16)
    decorated = coalesce(ttl=3600, maxsize=16)(instant)
    ways: Dict[str, Callable[[int], Awaitable[int]]] = {
        "direct await": instant,
        "a task per call": lambda k: asyncio.ensure_future(instant(k)),
        "SingleFlight.call (nothing shared)": lambda k: flight.call(
            k, functools.partial(instant, k)
        ),
        "TTLCache.get (hit)": lambda k: cache.get(k, functools.partial(instant, k)),
        "@coalesce(ttl=...) (hit)": decorated,
    }
    figures: Dict[str, float] = {}
    for name, way in ways.items():
        best = math.inf
        for _ in range(3):
            started = time.perf_counter()
            for n in range(calls):
                await way(n % 16)
            best = min(best, time.perf_counter() - started)
        figures[name] = best / calls * 1e6
    return figures


def measure(count: int, keys: int, calls: int) -> Dict[str, Any]:
    print(
        f"{count:,} concurrent callers, {keys} keys; backend {LATENCY * 1000:g} ms,"
        f" {CAPACITY} at a time",
        flush=True,
    )
    load = asyncio.run(measure_load(count, keys))
    ideal = math.ceil(keys / CAPACITY) * LATENCY
    unit = f"seconds for {count:,} callers"
    rows: List[Dict[str, Any]] = [
        {"name": "floor: callers answered at once", "value": load["floor_seconds"], "unit": unit},
        {"name": "naive: backend calls", "value": load["naive_calls"], "unit": "calls"},
        {"name": "naive", "value": load["naive_seconds"], "unit": unit},
        {
            "name": "SingleFlight: backend calls",
            "value": load["single_flight_calls"],
            "unit": "calls",
        },
        {"name": "SingleFlight", "value": load["single_flight_seconds"], "unit": unit},
        {"name": "TTLCache, first wave", "value": load["cache_first_wave_seconds"], "unit": unit},
        {
            "name": "TTLCache, second wave (hits)",
            "value": load["cache_second_wave_seconds"],
            "unit": unit,
        },
        {
            "name": "TTLCache: backend calls, both waves",
            "value": load["cache_calls"],
            "unit": "calls",
        },
        {
            "name": f"ideal: ceil(K / {CAPACITY}) x {LATENCY * 1000:g} ms",
            "value": ideal,
            "unit": unit,
        },
    ]
    for row in rows:
        value = row["value"]
        shown = f"{value:10.3f} s" if row["unit"] == unit else f"{value:10,.0f}  "
        print(f"{row['name']:>40}: {shown}", flush=True)
    overhead = asyncio.run(per_call_microseconds(calls))
    for name, micro in overhead.items():
        rows.append({"name": f"per call: {name}", "value": micro, "unit": "microseconds"})
        print(f"{'per call: ' + name:>40}: {micro:10.2f} us", flush=True)
    direct = overhead["direct await"]
    return {
        "benchmark": "coalescing concurrent calls (single-flight, TTL cache)",
        "python": platform.python_version(),
        "callers": count,
        "keys": keys,
        "backend_latency_seconds": LATENCY,
        "backend_capacity": CAPACITY,
        "cpus": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "description": __doc__.split("\n\n")[0] if __doc__ else "",
        "results": rows,
        "ratios": {
            "naive_calls_over_single_flight_calls": load["naive_calls"]
            / load["single_flight_calls"],
            "naive_over_single_flight": load["naive_seconds"] / load["single_flight_seconds"],
            "single_flight_over_ideal": load["single_flight_seconds"] / ideal,
            "single_flight_over_ideal_plus_floor": load["single_flight_seconds"]
            / (ideal + load["floor_seconds"]),
            "cache_hits_over_single_flight": load["cache_second_wave_seconds"]
            / load["single_flight_seconds"],
            "single_flight_call_over_direct": overhead["SingleFlight.call (nothing shared)"]
            / direct,
            "single_flight_call_over_task_per_call": overhead["SingleFlight.call (nothing shared)"]
            / overhead["a task per call"],
            "cache_hit_over_direct": overhead["TTLCache.get (hit)"] / direct,
            "decorator_hit_over_direct": overhead["@coalesce(ttl=...) (hit)"] / direct,
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 callers, 20 keys")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()
    if args.quick:
        data = measure(2000, 20, 20_000)
    else:
        data = measure(20_000, 100, 100_000)
    print_ratios(data["ratios"], width=38)
    write_results(args.json, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
