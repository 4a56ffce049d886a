"""What a test suite of async code pays for: real waiting, a loop per test, leak checks.

    python benchmarks/bench_testing.py                # full run
    python benchmarks/bench_testing.py --quick        # fewer tests
    python benchmarks/bench_testing.py --json out.json

Three measurements, each against the alternative a reader would pick:

* A suite of "retry with backoff" tests (3 attempts, 20 + 40 ms of delays) on the
  real clock and on looptime's virtual clock (``looptime.new_event_loop``, as the
  chapter's ``test_virtual_time.py`` does), against the ideal of the real clock,
  the sum of the delays.
* Tiny tests run each on a fresh loop (``asyncio.run``, pytest-asyncio's default
  function loop scope) and all on one shared loop (``loop_scope="module"``).
* The same tiny tests wrapped in ``recipes.testing``'s checks:
  ``no_leaked_tasks`` alone, and with ``no_unawaited_coroutines``, whose
  garbage collection per test is the expensive part (and without it,
  ``collect=False``).

Real clock for the wall times; the load average is printed and stored.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict

import looptime

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from recipes.testing import no_leaked_tasks, no_unawaited_coroutines

from _common import print_ratios, write_results

DELAYS = (0.02, 0.04)


async def retry_test() -> None:
    """One test: an operation that fails twice, retried after 20 and 40 ms."""
    failures = [ConnectionError("refused")] * len(DELAYS)

    async def operation() -> str:
        await asyncio.sleep(0)
        if failures:
            raise failures.pop()
        return "connected"

    for delay in DELAYS:
        try:
            await operation()
            break
        except ConnectionError:
            await asyncio.sleep(delay)
    assert await operation() == "connected"


async def tiny_test() -> None:
    """One test: a task started, awaited, a result checked."""
    task = asyncio.ensure_future(asyncio.sleep(0, result=42))
    assert await task == 42


def run_suite(count: int, make_loop: Callable[[], asyncio.AbstractEventLoop]) -> float:
    started = time.perf_counter()
    for _ in range(count):
        loop = make_loop()
        try:
            loop.run_until_complete(retry_test())
        finally:
            loop.close()
    return time.perf_counter() - started


def fresh_loops(count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        asyncio.run(tiny_test())
    return time.perf_counter() - started


def shared_loop(count: int, wrap: Callable[[], Awaitable[None]] = tiny_test) -> float:
    async def suite() -> float:
        started = time.perf_counter()
        for _ in range(count):
            await wrap()
        return time.perf_counter() - started

    return asyncio.run(suite())


async def with_task_check() -> None:
    async with no_leaked_tasks():
        await tiny_test()


async def with_both_checks() -> None:
    with no_unawaited_coroutines():
        async with no_leaked_tasks():
            await tiny_test()


async def with_both_checks_no_gc() -> None:
    with no_unawaited_coroutines(collect=False):
        async with no_leaked_tasks():
            await tiny_test()


def measure(retries: int, tiny: int) -> Dict[str, Any]:
    print(f"{retries} retry tests ({sum(DELAYS) * 1000:g} ms of delays each)", flush=True)
    real = run_suite(retries, asyncio.new_event_loop)
    virtual = run_suite(retries, lambda: looptime.new_event_loop(start=0))
    ideal = retries * sum(DELAYS)
    print(f"{'real clock':>27}: {real:8.3f} s", flush=True)
    print(f"{'virtual clock':>27}: {virtual:8.3f} s", flush=True)
    print(f"{tiny:,} tiny tests", flush=True)
    fresh = fresh_loops(tiny)
    shared = shared_loop(tiny)
    task_check = shared_loop(tiny, with_task_check)
    both = shared_loop(tiny, with_both_checks)
    both_no_gc = shared_loop(tiny, with_both_checks_no_gc)
    for name, value in [
        ("fresh loop per test", fresh),
        ("one shared loop", shared),
        ("+ no_leaked_tasks", task_check),
        ("+ no_unawaited_coroutines", both),
        ("  the same, collect=False", both_no_gc),
    ]:
        print(f"{name:>27}: {value:8.3f} s", flush=True)
    suite_unit = f"seconds for {retries} retry tests"
    tiny_unit = f"seconds for {tiny:,} tiny tests"
    return {
        "benchmark": "testing asyncio code: clocks, loops per test, leak checks",
        "python": platform.python_version(),
        "description": (
            "retry tests on the real and the virtual (looptime) clock; tiny tests on a "
            "fresh loop each vs one shared loop, bare and inside recipes.testing's checks"
        ),
        "cpus": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "results": [
            {"name": "retry suite, real clock", "value": real, "unit": suite_unit},
            {"name": "retry suite, virtual clock", "value": virtual, "unit": suite_unit},
            {"name": "retry suite, ideal (sum of delays)", "value": ideal, "unit": suite_unit},
            {"name": "tiny tests, fresh loop each", "value": fresh, "unit": tiny_unit},
            {"name": "tiny tests, one shared loop", "value": shared, "unit": tiny_unit},
            {"name": "tiny tests + no_leaked_tasks", "value": task_check, "unit": tiny_unit},
            {"name": "tiny tests + both checks", "value": both, "unit": tiny_unit},
            {
                "name": "tiny tests + both checks, collect=False",
                "value": both_no_gc,
                "unit": tiny_unit,
            },
            {
                "name": "both checks, per test",
                "value": (both - shared) / tiny * 1e6,
                "unit": "microseconds",
            },
        ],
        "ratios": {
            "real_over_virtual": real / virtual,
            "real_over_ideal": real / ideal,
            "fresh_loop_over_shared": fresh / shared,
            "task_check_over_bare": task_check / shared,
            "both_checks_over_bare": both / shared,
            "both_checks_no_gc_over_bare": both_no_gc / shared,
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer tests")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()
    data = measure(20, 500) if args.quick else measure(100, 5000)
    print_ratios(data["ratios"], width=27)
    write_results(args.json, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
