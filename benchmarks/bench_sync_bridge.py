"""Crossing between threads and an event loop: what each bridge costs per call and per item.

    python benchmarks/bench_sync_bridge.py                # 20,000 calls, 200,000 items
    python benchmarks/bench_sync_bridge.py --quick        # a tenth of that
    python benchmarks/bench_sync_bridge.py --json out.json

Calls from synchronous code (``recipes.sync_bridge.Portal``), each running a
coroutine that returns at once, so only the crossing is measured:

* ``asyncio.run()`` per call: what a script without a portal does;
* ``Portal.call()`` from one thread, one call at a time;
* bare ``asyncio.run_coroutine_threadsafe(...).result()`` on a loop in a thread:
  the mechanism without the portal's checks and cleanup (the limit);
* ``Portal.call()`` from 16 threads at once.

Items from a thread to a coroutine (``BridgeQueue``, bounded to 1,000):

* ``BridgeQueue.put()`` in a thread, ``await aget()`` on the loop;
* ``loop.call_soon_threadsafe(queue.put_nowait, item)`` into an unbounded
  ``asyncio.Queue``: no bound and no way back, the limit;
* a ``queue.Queue`` read with ``await loop.run_in_executor(None, q.get)``
  per item: the alternative a reader would try first.

Real clock; the load average is printed and stored.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import queue
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from recipes.sync_bridge import BridgeQueue, Portal

from _common import print_ratios, write_results

THREADS = 16


async def answer(n: int) -> int:
    return n


def best_of(repeats: int, measure: Callable[[], float]) -> float:
    return min(measure() for _ in range(repeats))


# --- calls -----------------------------------------------------------------


def asyncio_run_per_call(calls: int) -> float:
    started = time.perf_counter()
    for n in range(calls):
        asyncio.run(answer(n))
    return time.perf_counter() - started


def portal_calls(calls: int) -> float:
    with Portal() as portal:
        portal.call(answer, 0)  # warm up
        started = time.perf_counter()
        for n in range(calls):
            portal.call(answer, n, timeout=60)
        return time.perf_counter() - started


def bare_threadsafe_calls(calls: int) -> float:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever)
    thread.start()
    try:
        started = time.perf_counter()
        for n in range(calls):
            asyncio.run_coroutine_threadsafe(answer(n), loop).result(60)
        return time.perf_counter() - started
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


def portal_calls_from_threads(calls: int) -> float:
    per_thread = calls // THREADS

    def caller(portal: Portal) -> None:
        for n in range(per_thread):
            portal.call(answer, n, timeout=60)

    with Portal() as portal, ThreadPoolExecutor(THREADS) as threads:
        portal.call(answer, 0)
        started = time.perf_counter()
        for future in [threads.submit(caller, portal) for _ in range(THREADS)]:
            future.result(timeout=600)
        return time.perf_counter() - started


# --- items -----------------------------------------------------------------


def bridge_queue_items(items: int) -> float:
    async def main() -> float:
        loop = asyncio.get_running_loop()
        channel: BridgeQueue[Optional[int]] = BridgeQueue(maxsize=1000)

        def produce() -> None:
            for n in range(items):
                channel.put(n, timeout=60)
            channel.put(None, timeout=60)

        started = time.perf_counter()
        producing = loop.run_in_executor(None, produce)
        while await channel.aget() is not None:
            pass
        await producing
        return time.perf_counter() - started

    return asyncio.run(main())


def call_soon_threadsafe_items(items: int) -> float:
    async def main() -> float:
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue[Optional[int]] = asyncio.Queue()

        def produce() -> None:
            for n in range(items):
                loop.call_soon_threadsafe(inbox.put_nowait, n)
            loop.call_soon_threadsafe(inbox.put_nowait, None)

        started = time.perf_counter()
        producing = loop.run_in_executor(None, produce)
        while await inbox.get() is not None:
            pass
        await producing
        return time.perf_counter() - started

    return asyncio.run(main())


def executor_get_items(items: int) -> float:
    async def main() -> float:
        loop = asyncio.get_running_loop()
        channel: queue.Queue[Optional[int]] = queue.Queue(maxsize=1000)

        def produce() -> None:
            for n in range(items):
                channel.put(n, timeout=60)
            channel.put(None, timeout=60)

        started = time.perf_counter()
        producing = loop.run_in_executor(None, produce)
        while await loop.run_in_executor(None, channel.get) is not None:
            pass
        await producing
        return time.perf_counter() - started

    return asyncio.run(main())


def measure(calls: int, items: int, repeats: int) -> Dict[str, Any]:
    seconds: Dict[str, float] = {}
    plan: List[Any] = [
        ("asyncio.run() per call", asyncio_run_per_call, calls // 10, "call"),
        ("Portal.call(), 1 thread", portal_calls, calls, "call"),
        ("bare run_coroutine_threadsafe", bare_threadsafe_calls, calls, "call"),
        (f"Portal.call(), {THREADS} threads", portal_calls_from_threads, calls, "call"),
        ("BridgeQueue put/aget", bridge_queue_items, items, "item"),
        ("call_soon_threadsafe + asyncio.Queue", call_soon_threadsafe_items, items, "item"),
        ("queue.Queue + run_in_executor(get)", executor_get_items, items // 10, "item"),
    ]
    results = []
    per_unit: Dict[str, float] = {}
    for name, function, count, unit in plan:
        elapsed = best_of(repeats, lambda: function(count))  # noqa: B023 - called at once
        per_unit[name] = elapsed / count * 1e6
        seconds[name] = elapsed
        print(f"{name:>38}: {per_unit[name]:9.2f} µs per {unit} ({count:,})", flush=True)
        results.append({"name": name, "value": per_unit[name], "unit": f"µs per {unit}"})
    ratios = {
        "asyncio_run_per_call_over_portal_call": per_unit["asyncio.run() per call"]
        / per_unit["Portal.call(), 1 thread"],
        "portal_call_over_bare_run_coroutine_threadsafe": per_unit["Portal.call(), 1 thread"]
        / per_unit["bare run_coroutine_threadsafe"],
        f"portal_1_thread_over_{THREADS}_threads": per_unit["Portal.call(), 1 thread"]
        / per_unit[f"Portal.call(), {THREADS} threads"],
        "executor_get_over_bridge_queue": per_unit["queue.Queue + run_in_executor(get)"]
        / per_unit["BridgeQueue put/aget"],
        "bridge_queue_over_call_soon_threadsafe": per_unit["BridgeQueue put/aget"]
        / per_unit["call_soon_threadsafe + asyncio.Queue"],
    }
    return {
        "benchmark": "crossing between threads and an event loop",
        "python": platform.python_version(),
        "description": (
            "Microseconds per call from synchronous code into a loop in a thread, and per "
            "item from a thread to a coroutine; coroutines return at once, so only the "
            "crossing is measured. Best of several runs."
        ),
        "calls": calls,
        "items": items,
        "repeats": repeats,
        "cpus": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "results": results,
        "ratios": ratios,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the calls and items")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()
    if args.quick:
        data = measure(calls=2_000, items=20_000, repeats=1)
    else:
        data = measure(calls=20_000, items=200_000, repeats=3)
    print_ratios(data["ratios"], width=48)
    write_results(args.json, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
