"""Resilience recipes: what they cost per call, and what they buy.

    python benchmarks/bench_resilience.py                # full run
    python benchmarks/bench_resilience.py --quick        # a smoke run
    python benchmarks/bench_resilience.py --json out.json

Real clock, one process, the recipes of ``recipes/resilience.py``:

1. overhead per call of :class:`CircuitBreaker`, :class:`Bulkhead`,
   :func:`within_deadline` and the whole stack (deadline, retry, breaker,
   bulkhead, per-call timeout) around a coroutine that returns at once,
   against a bare ``await`` and against what a reader would write instead
   (an :class:`asyncio.Semaphore`, :func:`asyncio.wait_for`);
2. hedging: a simulated replica that answers in 10 ms, but in 200 ms one
   time in twenty; p50/p99 latency without and with :func:`hedge` (delay
   30 ms), and how many calls the hedging added;
3. a dead dependency (each call times out after 50 ms) and 200 callers,
   arriving one every 2 ms, with 4 attempts each: calls made and total
   time, with and without the breaker.

The figures depend on the machine and its load; compare the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from recipes.errors import retry
from recipes.resilience import (
    Bulkhead,
    CircuitBreaker,
    CircuitOpenError,
    deadline,
    hedge,
    within_deadline,
)

from _common import print_ratios, write_results


async def noop() -> int:
    return 1


# --- 1. overhead per call -----------------------------------------------------


async def per_call(make: Callable[[], Awaitable[Any]], count: int) -> float:
    """Microseconds per call, the best of three rounds."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(count):
            await make()
        best = min(best, time.perf_counter() - started)
    return best / count * 1e6


async def overhead(count: int) -> Dict[str, float]:
    breaker = CircuitBreaker()
    bulkhead = Bulkhead(10)
    semaphore = asyncio.Semaphore(10)

    async def with_semaphore() -> int:
        async with semaphore:
            return await noop()

    async def attempt() -> int:
        return await within_deadline(noop(), timeout=1.0)

    async def stack() -> int:
        async with deadline(5):
            return await retry(lambda: breaker.call(bulkhead.call, attempt))

    async def in_deadline() -> int:
        async with deadline(5):
            return await within_deadline(noop(), timeout=1.0)

    async def plain_deadline() -> int:
        async with deadline(5):
            return await noop()

    return {
        "bare await": await per_call(noop, count),
        "CircuitBreaker.call": await per_call(lambda: breaker.call(noop), count),
        "asyncio.Semaphore": await per_call(with_semaphore, count),
        "Bulkhead.call": await per_call(lambda: bulkhead.call(noop), count),
        "asyncio.wait_for": await per_call(lambda: asyncio.wait_for(noop(), 1.0), count),
        "within_deadline(timeout=1)": await per_call(
            lambda: within_deadline(noop(), timeout=1.0), count
        ),
        "deadline() block": await per_call(plain_deadline, count),
        "deadline() + within_deadline": await per_call(in_deadline, count),
        "whole stack": await per_call(stack, count),
    }


# --- 2. hedging ---------------------------------------------------------------


def percentile(values: List[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def hedging(requests: int) -> Dict[str, float]:
    rng = random.Random(42)
    calls = 0

    async def replica() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.2 if rng.random() < 0.05 else 0.01)
        return "ok"

    async def timed(make: Callable[[], Awaitable[Any]]) -> float:
        started = time.perf_counter()
        await make()
        return time.perf_counter() - started

    async def run(make: Callable[[], Awaitable[Any]]) -> List[float]:
        latencies: List[float] = []
        for start in range(0, requests, 20):  # 20 requests at a time
            batch = range(start, min(requests, start + 20))
            latencies += await asyncio.gather(*(timed(make) for _ in batch))
        return latencies

    plain = await run(replica)
    plain_calls, calls = calls, 0
    hedged = await run(lambda: hedge(replica, delay=0.03))
    return {
        "p50 plain": percentile(plain, 0.5) * 1000,
        "p99 plain": percentile(plain, 0.99) * 1000,
        "p50 hedged": percentile(hedged, 0.5) * 1000,
        "p99 hedged": percentile(hedged, 0.99) * 1000,
        "calls per request plain": plain_calls / requests,
        "calls per request hedged": calls / requests,
    }


# --- 3. a dead dependency -------------------------------------------------------


async def dead_dependency(callers: int, with_breaker: bool) -> Dict[str, float]:
    calls = 0
    breaker = CircuitBreaker(failure_threshold=5, reset_timeout=60)
    bulkhead = Bulkhead(20, max_waiting=None)

    async def hangs() -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(3600)

    async def attempt() -> None:
        await within_deadline(hangs(), timeout=0.05)

    async def one() -> None:
        if with_breaker:
            await breaker.call(bulkhead.call, attempt)
        else:
            await bulkhead.call(attempt)

    async def caller(n: int) -> None:
        await asyncio.sleep(n * 0.002)  # callers arrive one every 2 ms
        try:
            async with deadline(10):
                await retry(one, attempts=4, base_delay=0.01)
        except (asyncio.TimeoutError, CircuitOpenError):
            pass

    started = time.perf_counter()
    await asyncio.gather(*(caller(n) for n in range(callers)))
    return {"calls": calls, "seconds": time.perf_counter() - started}


def measure(quick: bool) -> Dict[str, Any]:
    count = 2_000 if quick else 20_000
    requests = 200 if quick else 1_000
    callers = 50 if quick else 200
    costs = asyncio.run(overhead(count))
    print(f"overhead per call ({count:,} calls, best of 3):", flush=True)
    for name, value in costs.items():
        print(f"{name:>30}: {value:7.2f} us", flush=True)
    hedged = asyncio.run(hedging(requests))
    print(f"hedging ({requests:,} requests, 5% take 200 ms instead of 10 ms):", flush=True)
    for name, value in hedged.items():
        unit = "" if name.startswith("calls") else " ms"
        print(f"{name:>30}: {value:7.2f}{unit}", flush=True)
    without = asyncio.run(dead_dependency(callers, with_breaker=False))
    with_breaker = asyncio.run(dead_dependency(callers, with_breaker=True))
    print(f"dead dependency, {callers} callers (one every 2 ms) x 4 attempts:", flush=True)
    for label, figures in (("without breaker", without), ("with breaker", with_breaker)):
        print(
            f"{label:>30}: {figures['calls']:5.0f} calls, {figures['seconds']:6.3f} s",
            flush=True,
        )
    results = [
        {"name": name, "value": value, "unit": "µs per call"} for name, value in costs.items()
    ]
    results += [
        {
            "name": f"hedging: {name}",
            "value": value,
            "unit": "calls per request" if name.startswith("calls") else "ms",
        }
        for name, value in hedged.items()
    ]
    for label, figures in (("without breaker", without), ("with breaker", with_breaker)):
        results.append(
            {"name": f"dead dependency {label}: calls", "value": figures["calls"], "unit": "calls"}
        )
        results.append(
            {"name": f"dead dependency {label}: time", "value": figures["seconds"], "unit": "s"}
        )
    return {
        "benchmark": "resilience recipes: overhead and effect",
        "python": platform.python_version(),
        "description": __doc__.splitlines()[0],
        "calls_per_round": count,
        "hedged_requests": requests,
        "dead_dependency_callers": callers,
        "cpus": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "results": results,
        "ratios": {
            "breaker_over_bare_await": costs["CircuitBreaker.call"] / costs["bare await"],
            "bulkhead_over_semaphore": costs["Bulkhead.call"] / costs["asyncio.Semaphore"],
            "within_deadline_over_wait_for": (
                costs["within_deadline(timeout=1)"] / costs["asyncio.wait_for"]
            ),
            "whole_stack_over_bare_await": costs["whole stack"] / costs["bare await"],
            "hedging_p99_plain_over_hedged": hedged["p99 plain"] / hedged["p99 hedged"],
            "hedging_extra_calls": hedged["calls per request hedged"]
            / hedged["calls per request plain"],
            "dead_dependency_calls_without_over_with_breaker": (
                without["calls"] / with_breaker["calls"]
            ),
            "dead_dependency_time_without_over_with_breaker": (
                without["seconds"] / with_breaker["seconds"]
            ),
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller, faster run")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()
    data = measure(args.quick)
    print_ratios(data["ratios"], width=48)
    write_results(args.json, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
