"""CPU-bound work from asyncio: in the loop, in threads, in processes, with a heartbeat.

    python benchmarks/bench_parallelism.py                # 16 ranges, 20,000 tiny items
    python benchmarks/bench_parallelism.py --quick        # 6 ranges, 4,000 tiny items
    python benchmarks/bench_parallelism.py --json out.json

The batch counts the primes in N ranges of 30,000 numbers above 1,000,000 with
``recipes.parallelism.count_primes`` (pure Python, about 0.1-0.2 s a range),
run three ways: in the event loop itself (one range at a time, yielding to the
loop between ranges), in a ``ThreadPoolExecutor`` of 2 threads, and in a
``ProcessPoolExecutor`` of 2 processes (``spawn``; started before the clock
runs).  Meanwhile a heartbeat task asks to wake every 10 ms and records how
late it woke: the loop's responsiveness.  A second part sends many tiny items
(``count_primes(200)``) to the process pool one call per item, and with
``map_in_chunks``.  A third mixes the batch with 40 blocking calls of 20 ms
(``time.sleep``, a stand-in for blocking I/O): all in a pool of 10 threads,
all in the process pool, and both (CPU in processes, blocking calls in the
threads).  Real clock; each figure is the best of 5 runs (1 with --quick),
the one least disturbed by other work on the machine; the CPU count and the
load average are stored with the results.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from recipes.parallelism import count_primes, map_in_chunks, process_pool

from _common import print_ratios, write_results

WORKERS = 2
HEARTBEAT = 0.010
RANGE_WIDTH = 30_000
FIRST = 1_000_000
BLOCKING = 0.020
BLOCKING_CALLS = 40
IO_THREADS = 10


class Heartbeat:
    """A task that sleeps HEARTBEAT seconds at a time and records how late it wakes."""

    def __init__(self) -> None:
        self.max_delay = 0.0
        self.beats = 0
        self._task: Optional[asyncio.Task[None]] = None

    async def _beat(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + HEARTBEAT
            await asyncio.sleep(HEARTBEAT)
            self.max_delay = max(self.max_delay, loop.time() - due)
            self.beats += 1

    async def __aenter__(self) -> Heartbeat:
        self._task = asyncio.ensure_future(self._beat())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self._task is not None
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass


def spans(count: int) -> List[Tuple[int, int]]:
    return [(FIRST + n * RANGE_WIDTH, FIRST + (n + 1) * RANGE_WIDTH) for n in range(count)]


async def in_loop(ranges: List[Tuple[int, int]]) -> List[int]:
    counts = []
    for start, stop in ranges:
        counts.append(count_primes(start, stop))  # blocks the loop for the whole call
        await asyncio.sleep(0)  # let the heartbeat run between calls
    return counts


def in_executor(executor: Executor) -> Callable[[List[Tuple[int, int]]], Awaitable[List[int]]]:
    async def run(ranges: List[Tuple[int, int]]) -> List[int]:
        loop = asyncio.get_running_loop()
        calls = [loop.run_in_executor(executor, count_primes, a, b) for a, b in ranges]
        return list(await asyncio.gather(*calls))

    return run


async def timed(
    way: Callable[[List[Tuple[int, int]]], Awaitable[List[int]]], ranges: List[Tuple[int, int]]
) -> Tuple[float, float, List[int]]:
    async with Heartbeat() as beat:
        started = time.perf_counter()
        counts = await way(ranges)
        elapsed = time.perf_counter() - started
    return elapsed, beat.max_delay, counts


async def mixed(
    ranges: List[Tuple[int, int]], cpu: Executor, io: Executor, blocking_calls: int
) -> List[int]:
    """The CPU batch plus ``blocking_calls`` blocking waits (I/O stand-ins) of BLOCKING s."""
    loop = asyncio.get_running_loop()
    waits = [loop.run_in_executor(io, time.sleep, BLOCKING) for _ in range(blocking_calls)]
    calls = [loop.run_in_executor(cpu, count_primes, a, b) for a, b in ranges]
    counts = await asyncio.gather(*calls)
    await asyncio.gather(*waits)
    return list(counts)


async def one_call_per_item(executor: Executor, items: List[int]) -> List[int]:
    loop = asyncio.get_running_loop()
    return list(
        await asyncio.gather(*(loop.run_in_executor(executor, count_primes, n) for n in items))
    )


async def measure(ranges_count: int, tiny_count: int, repeats: int) -> Dict[str, Any]:
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    ranges = spans(ranges_count)
    expected = [count_primes(a, b) for a, b in ranges[:1]]  # warm up; checked below
    figures: Dict[str, List[Tuple[float, float]]] = {"loop": [], "threads": [], "processes": []}
    started = time.perf_counter()
    with process_pool(WORKERS) as processes, ThreadPoolExecutor(WORKERS) as threads:
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(processes, count_primes, 10) for _ in "ab"))
        pool_start = time.perf_counter() - started
        ways = {
            "loop": in_loop,
            "threads": in_executor(threads),
            "processes": in_executor(processes),
        }
        reference: Optional[List[int]] = None
        for _ in range(repeats):
            for name, way in ways.items():
                elapsed, delay, counts = await timed(way, ranges)
                if reference is None:
                    reference = counts
                    assert counts[:1] == expected
                if counts != reference:
                    raise SystemExit(f"{name}: wrong counts")
                figures[name].append((elapsed, delay))
                print(
                    f"{name:>10}: {elapsed:7.3f} s, heartbeat up to {delay * 1000:7.1f} ms late",
                    flush=True,
                )
        io_threads = ThreadPoolExecutor(IO_THREADS)
        mixes = {
            "all in threads": (io_threads, io_threads),
            "all in processes": (processes, processes),
            "both": (processes, io_threads),
        }
        mixed_times: Dict[str, List[float]] = {name: [] for name in mixes}
        with io_threads:
            for _ in range(repeats):
                for name, (cpu, io) in mixes.items():
                    t0 = time.perf_counter()
                    counts = await mixed(ranges, cpu, io, BLOCKING_CALLS)
                    mixed_times[name].append(time.perf_counter() - t0)
                    if counts != reference:
                        raise SystemExit(f"mixed, {name}: wrong counts")
                    print(f"mixed, {name:>16}: {mixed_times[name][-1]:7.3f} s", flush=True)
        items = [200] * tiny_count
        per_item: List[float] = []
        chunked: List[float] = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            one = await one_call_per_item(processes, items)
            per_item.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            many = await map_in_chunks(processes, count_primes, items)
            chunked.append(time.perf_counter() - t0)
            if one != many or one[0] != 46:
                raise SystemExit("tiny items: wrong counts")
            print(
                f"{tiny_count:,} tiny items: one call each {per_item[-1]:.3f} s, "
                f"map_in_chunks {chunked[-1]:.3f} s",
                flush=True,
            )

    def best(name: str, index: int) -> float:
        return min(f[index] for f in figures[name])

    t_loop, t_threads, t_procs = best("loop", 0), best("threads", 0), best("processes", 0)
    lag = {name: best(name, 1) * 1000 for name in figures}
    seconds = f"seconds for {ranges_count} ranges"
    ms = "ms, max heartbeat delay (10 ms period)"
    t_item, t_chunk = min(per_item), min(chunked)
    mix = {name: min(times) for name, times in mixed_times.items()}
    mixed_unit = (
        f"seconds for {ranges_count} ranges + {BLOCKING_CALLS} blocking calls "
        f"of {BLOCKING * 1000:g} ms"
    )
    return {
        "benchmark": "CPU-bound batch from asyncio: loop vs threads vs processes",
        "python": platform.python_version(),
        "description": (
            f"count_primes over {ranges_count} ranges of {RANGE_WIDTH:,} numbers above "
            f"{FIRST:,}, in the event loop, in {WORKERS} threads and in {WORKERS} processes "
            f"(spawn), with a {HEARTBEAT * 1000:g} ms heartbeat; then {tiny_count:,} tiny "
            "items to the process pool one call each vs map_in_chunks; and the batch mixed "
            f"with {BLOCKING_CALLS} blocking calls of {BLOCKING * 1000:g} ms "
            "in threads, processes, or both"
        ),
        "ranges": ranges_count,
        "tiny_items": tiny_count,
        "repeats": repeats,
        "cpus": os.cpu_count(),
        "load_average_1min_before": load_before,
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "results": [
            {"name": "in the event loop", "value": t_loop, "unit": seconds},
            {"name": f"ThreadPoolExecutor({WORKERS})", "value": t_threads, "unit": seconds},
            {"name": f"ProcessPoolExecutor({WORKERS})", "value": t_procs, "unit": seconds},
            {"name": "heartbeat, in the event loop", "value": lag["loop"], "unit": ms},
            {"name": "heartbeat, thread pool", "value": lag["threads"], "unit": ms},
            {"name": "heartbeat, process pool", "value": lag["processes"], "unit": ms},
            {
                "name": "process pool start (2 workers, spawn)",
                "value": pool_start,
                "unit": "seconds",
            },
            {
                "name": f"mixed: all in {IO_THREADS} threads",
                "value": mix["all in threads"],
                "unit": mixed_unit,
            },
            {
                "name": f"mixed: all in {WORKERS} processes",
                "value": mix["all in processes"],
                "unit": mixed_unit,
            },
            {
                "name": "mixed: CPU in processes, blocking calls in threads",
                "value": mix["both"],
                "unit": mixed_unit,
            },
            {
                "name": "tiny items, one call each",
                "value": t_item,
                "unit": f"seconds for {tiny_count:,} items",
            },
            {
                "name": "tiny items, map_in_chunks",
                "value": t_chunk,
                "unit": f"seconds for {tiny_count:,} items",
            },
        ],
        "ratios": {
            "threads_speedup_vs_loop": t_loop / t_threads,
            "processes_speedup_vs_loop": t_loop / t_procs,
            "processes_speedup_vs_threads": t_threads / t_procs,
            "processes_over_ideal": t_procs / (t_loop / WORKERS),
            "heartbeat_delay_loop_over_processes": lag["loop"] / max(lag["processes"], 0.001),
            "mixed_both_speedup_vs_all_threads": mix["all in threads"] / mix["both"],
            "mixed_both_speedup_vs_all_processes": mix["all in processes"] / mix["both"],
            "chunked_speedup_vs_one_call_per_item": t_item / t_chunk,
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6 ranges and 4,000 tiny items")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()
    if args.quick:
        data = asyncio.run(measure(6, 4_000, 1))
    else:
        data = asyncio.run(measure(16, 20_000, 5))
    print_ratios(data["ratios"], width=38)
    write_results(args.json, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
