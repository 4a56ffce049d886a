"""Benchmark: queue pipeline, bounded gather, and the memory cost of tasks vs threads.

Not part of the test run.  Uses the real clock and the recipes from this
repository::

    python benchmarks/bench_concurrency.py [--json PATH] [--quick]

It measures, in one run:

1. throughput of ``recipes.queues.run_pipeline`` (one pass-through stage)
   against a bare producer/consumer pair on one :class:`asyncio.Queue`, same
   item count and queue bound;
2. ``recipes.limiting.bounded_gather`` against plain :func:`asyncio.gather`
   for 10,000 trivial coroutines (median of several repetitions);
3. resident memory of 10,000 concurrent sleeping asyncio tasks against
   10,000 sleeping threads, each measured in a fresh subprocess (RSS delta
   from ``/proc/self/statm``; tracemalloc as a second view for the tasks).

``--quick`` shrinks every size by ten for a smoke run.  The figures depend on
the machine and its load; compare ratios, not absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable, Dict, List

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from recipes.limiting import bounded_gather  # noqa: E402
from recipes.queues import run_pipeline  # noqa: E402

QUEUE_BOUND = 100
GATHER_LIMIT = 100


# --- helpers ---------------------------------------------------------------


def _statm() -> Dict[str, int]:
    """Virtual size and resident set of this process, in bytes (Linux only)."""
    with open("/proc/self/statm") as statm:
        size, resident = (int(field) for field in statm.read().split()[:2])
    page = os.sysconf("SC_PAGE_SIZE")
    return {"vm": size * page, "rss": resident * page}


def _median_time(run: Callable[[], float], repeats: int) -> float:
    return statistics.median(run() for _ in range(repeats))


def _timed(coro_factory: Callable[[], Any]) -> float:
    """Seconds spent in the coroutine, measured inside a fresh event loop."""

    async def measure() -> float:
        started = time.perf_counter()
        await coro_factory()
        return time.perf_counter() - started

    return asyncio.run(measure())


# --- 1. pipeline vs bare queue ---------------------------------------------


async def _bare_queue(items: int) -> None:
    queue: asyncio.Queue[int] = asyncio.Queue(QUEUE_BOUND)

    async def consumer() -> None:
        while True:
            await queue.get()
            queue.task_done()

    task = asyncio.create_task(consumer())
    for item in range(items):
        await queue.put(item)
    await queue.join()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _passthrough(item: int) -> int:
    return item


async def _pipeline(items: int, workers: int) -> None:
    result = await run_pipeline(range(items), _passthrough, workers=workers, maxsize=QUEUE_BOUND)
    assert len(result.results) == items and not result.failures


# --- 2. bounded_gather vs gather -------------------------------------------


async def _trivial(n: int) -> int:
    return n


async def _plain_gather(jobs: int) -> None:
    results = await asyncio.gather(*(_trivial(n) for n in range(jobs)))
    assert len(results) == jobs


async def _bounded(jobs: int) -> None:
    results = await bounded_gather(*(_trivial(n) for n in range(jobs)), limit=GATHER_LIMIT)
    assert len(results) == jobs


# --- 3. memory of tasks vs threads (children) --------------------------------


def _child_tasks(count: int, use_tracemalloc: bool) -> Dict[str, Any]:
    async def main() -> Dict[str, Any]:
        stop = asyncio.Event()

        async def sleeper() -> None:
            await stop.wait()

        gc.collect()
        if use_tracemalloc:
            tracemalloc.start()
        before = _statm()
        tasks = [asyncio.create_task(sleeper()) for _ in range(count)]
        await asyncio.sleep(0)  # every task runs up to its first await
        await asyncio.sleep(0)
        after = _statm()
        traced = tracemalloc.get_traced_memory()[0] if use_tracemalloc else None
        stop.set()
        await asyncio.gather(*tasks)
        return {
            "rss_delta": after["rss"] - before["rss"],
            "vm_delta": after["vm"] - before["vm"],
            "traced": traced,
        }

    return asyncio.run(main())


def _child_threads(count: int) -> Dict[str, Any]:
    stop = threading.Event()
    ready = threading.Semaphore(0)

    def sleeper() -> None:
        ready.release()
        stop.wait()

    gc.collect()
    before = _statm()
    threads = [threading.Thread(target=sleeper, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    for _ in range(count):
        ready.acquire()  # every thread is running and about to block
    time.sleep(0.2)
    after = _statm()
    stop.set()
    for thread in threads:
        thread.join()
    soft_stack, _ = resource.getrlimit(resource.RLIMIT_STACK)
    return {
        "rss_delta": after["rss"] - before["rss"],
        "vm_delta": after["vm"] - before["vm"],
        "stack_size_setting": threading.stack_size(),
        "stack_rlimit": soft_stack,
    }


def _in_subprocess(kind: str, count: int) -> Dict[str, Any]:
    output = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(count)],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    ).stdout
    result: Dict[str, Any] = json.loads(output)
    return result


# --- main ------------------------------------------------------------------


def run(quick: bool) -> Dict[str, Any]:
    scale = 10 if quick else 1
    items = 100_000 // scale
    jobs = 10_000 // scale
    sleepers = 10_000 // scale
    repeats_throughput = 5 if not quick else 2
    repeats_gather = 7 if not quick else 3

    results: List[Dict[str, Any]] = []

    def record(name: str, value: float, unit: str) -> float:
        results.append({"name": name, "value": value, "unit": unit})
        return value

    # 1. throughput
    bare = _median_time(lambda: _timed(lambda: _bare_queue(items)), repeats_throughput)
    pipe1 = _median_time(lambda: _timed(lambda: _pipeline(items, 1)), repeats_throughput)
    pipe4 = _median_time(lambda: _timed(lambda: _pipeline(items, 4)), repeats_throughput)
    bare_rate = record(f"bare Queue put/get, {items:,} items", items / bare, "items/s")
    pipe1_rate = record(
        f"run_pipeline, 1 stage x 1 worker, {items:,} items", items / pipe1, "items/s"
    )
    pipe4_rate = record(
        f"run_pipeline, 1 stage x 4 workers, {items:,} items", items / pipe4, "items/s"
    )

    # 2. gather
    plain = _median_time(lambda: _timed(lambda: _plain_gather(jobs)), repeats_gather)
    bounded = _median_time(lambda: _timed(lambda: _bounded(jobs)), repeats_gather)
    record(f"asyncio.gather, {jobs:,} trivial coroutines (median)", plain * 1000, "ms")
    record(
        f"bounded_gather limit={GATHER_LIMIT}, {jobs:,} trivial coroutines (median)",
        bounded * 1000,
        "ms",
    )

    # 3. memory, each in a fresh interpreter
    tasks = _in_subprocess("tasks", sleepers)
    traced = _in_subprocess("tasks-tracemalloc", sleepers)
    threads = _in_subprocess("threads", sleepers)
    task_kib = record(
        f"RSS per sleeping task ({sleepers:,} tasks)", tasks["rss_delta"] / sleepers / 1024, "KiB"
    )
    record(
        f"tracemalloc per sleeping task ({sleepers:,} tasks)",
        traced["traced"] / sleepers / 1024,
        "KiB",
    )
    thread_kib = record(
        f"RSS per sleeping thread ({sleepers:,} threads)",
        threads["rss_delta"] / sleepers / 1024,
        "KiB",
    )
    record(
        "virtual memory per sleeping thread (stack reservation)",
        threads["vm_delta"] / sleepers / 1024,
        "KiB virtual",
    )
    stack = threads["stack_size_setting"] or threads["stack_rlimit"]
    record(
        "thread stack size (threading.stack_size() or RLIMIT_STACK)",
        stack / 1024 if stack > 0 else float("nan"),
        "KiB virtual",
    )

    return {
        "benchmark": "concurrency",
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        "quick": quick,
        "results": results,
        "ratios": {
            "pipeline_1_worker_over_bare_queue_throughput": pipe1_rate / bare_rate,
            "pipeline_4_workers_over_bare_queue_throughput": pipe4_rate / bare_rate,
            "bounded_gather_over_gather_time": bounded / plain,
            "thread_over_task_rss": thread_kib / task_kib if task_kib > 0 else float("nan"),
        },
    }


def print_table(report: Dict[str, Any]) -> None:
    print(f"concurrency benchmark - Python {report['python']} - {report['platform']}")
    if report["quick"]:
        print("(--quick: sizes divided by ten)")
    width = max(len(row["name"]) for row in report["results"])
    print()
    for row in report["results"]:
        print(f"  {row['name']:<{width}}  {row['value']:>14,.2f}  {row['unit']}")
    print()
    for name, ratio in report["ratios"].items():
        print(f"  {name:<{width}}  {ratio:>14.2f}  x")


def main(argv: List[str] | None = None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--quick", action="store_true", help="ten times smaller sizes")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "COUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        kind, count = args.child[0], int(args.child[1])
        if kind == "threads":
            child = _child_threads(count)
        else:
            child = _child_tasks(count, use_tracemalloc=kind == "tasks-tracemalloc")
        print(json.dumps(child))
        return child

    report = run(args.quick)
    print_table(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {args.json}")
    return report


if __name__ == "__main__":
    main()
