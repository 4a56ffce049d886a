"""Running many short child processes: one at a time vs under a concurrency limit.

    python benchmarks/bench_subprocesses.py                # 200 commands
    python benchmarks/bench_subprocesses.py --quick        # 40 commands
    python benchmarks/bench_subprocesses.py --json out.json

Every command is ``sys.executable -c pass``: the child does nothing, so the time
is the cost of starting, running and reaping a Python interpreter.  The runner is
``recipes.subprocesses.run_many``, with ``limit=1`` (sequential) and ``limit=8``.
The ideal for the limited run is the sequential time / 8, which a machine with
fewer than 8 cores cannot reach: an interpreter's start-up is CPU work, so the
speed-up is bounded by the cores (``os.cpu_count()`` is stored).  Real clock;
the load average is printed and stored.
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from recipes.subprocesses import run_many

from _common import print_ratios, write_results


async def timed_batch(count: int, limit: int) -> float:
    commands = [[sys.executable, "-c", "pass"] for _ in range(count)]
    started = time.perf_counter()
    results = await run_many(commands, limit=limit, timeout=60)
    elapsed = time.perf_counter() - started
    failed = [r for r in results if r.returncode != 0]
    if failed:
        raise SystemExit(f"{len(failed)} commands failed, e.g. {failed[0]!r}")
    return elapsed


def measure(count: int, limit: int, rounds: int) -> Dict[str, Any]:
    print(f"{count:,} x {Path(sys.executable).name} -c pass, {os.cpu_count()} CPUs", flush=True)
    asyncio.run(timed_batch(min(count, 16), limit))  # warm the file cache
    limited = min(asyncio.run(timed_batch(count, limit)) for _ in range(rounds))
    print(f"{f'limit={limit}':>16}: {limited:8.3f} s", flush=True)
    sequential = min(asyncio.run(timed_batch(count, 1)) for _ in range(rounds))
    print(f"{'sequential':>16}: {sequential:8.3f} s", flush=True)
    ideal = sequential / limit
    unit = f"seconds for {count:,} commands"
    return {
        "benchmark": "running short child processes with asyncio",
        "python": platform.python_version(),
        "description": (
            f"{count} x `python -c pass` through recipes.subprocesses.run_many, "
            f"limit={limit} vs one at a time; best of {rounds} rounds"
        ),
        "commands": count,
        "limit": limit,
        "rounds": rounds,
        "cpus": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "results": [
            {"name": "sequential (limit=1)", "value": sequential, "unit": unit},
            {"name": f"run_many, limit={limit}", "value": limited, "unit": unit},
            {"name": f"ideal: sequential / {limit}", "value": ideal, "unit": unit},
            {"name": "per command, sequential", "value": sequential / count * 1000, "unit": "ms"},
        ],
        "ratios": {
            "sequential_over_limited": sequential / limited,
            "limited_over_ideal": limited / ideal,
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="40 commands instead of 200")
    parser.add_argument("--limit", type=int, default=8, help="concurrency limit")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per setting (best kept)")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    data = measure(40 if args.quick else 200, args.limit, rounds)
    print_ratios(data["ratios"], width=26)
    write_results(args.json, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
