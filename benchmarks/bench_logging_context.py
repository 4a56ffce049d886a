"""Logging from many tasks: handlers called on the loop vs through queue_logging.

    python benchmarks/bench_logging_context.py                # 1,000 requests x 20 lines
    python benchmarks/bench_logging_context.py --quick        # 200 requests x 10 lines
    python benchmarks/bench_logging_context.py --json out.json

Every request is a task that enters ``request_scope`` and logs its lines,
yielding to the loop between two lines; every record gets its request id from
``ContextFilter`` (``recipes.logging_context``).  Measured, each in a fresh
``asyncio.run``: how long the loop takes to run all requests, how much of that
the loop thread spends inside ``log.info()`` calls (total and the longest
call), and for the queued set-ups how long the listener needs after the loop
has finished to write what is left.  Two sinks: a ``FileHandler`` on a local
temporary file, and a "slow sink" that waits 20 ms on every 200th record, as a
busy log collector or a full pipe makes a handler wait.  The baseline (the limit) is the same
workload with the logger switched off.  Real clock; the load average is stored.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from recipes.logging_context import ContextFilter, Tracer, queue_logging, request_scope

from _common import print_ratios, write_results

FORMAT_WITH_ID = "%(asctime)s %(levelname)s [%(request_id)s] %(message)s"
FORMAT_PLAIN = "%(asctime)s %(levelname)s %(message)s"


class SlowSink(logging.Handler):
    """Formats every record; stalls ``stall`` seconds on every ``every``-th one."""

    def __init__(self, every: int = 200, stall: float = 0.02) -> None:
        super().__init__()
        self.every = every
        self.stall = stall
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.format(record)
        self.count += 1
        if self.count % self.every == 0:
            time.sleep(self.stall)


async def run_requests(log: logging.Logger, requests: int, lines: int) -> Dict[str, float]:
    in_calls = {"total": 0.0, "max": 0.0}
    clock = time.perf_counter

    async def handle(number: int) -> None:
        with request_scope(f"r-{number}"):
            for line in range(lines):
                started = clock()
                log.info("request %d line %d", number, line)
                spent = clock() - started
                in_calls["total"] += spent
                if spent > in_calls["max"]:
                    in_calls["max"] = spent
                await asyncio.sleep(0)

    started = clock()
    await asyncio.gather(*(handle(n) for n in range(requests)))
    return {"loop": clock() - started, "in_calls": in_calls["total"], "max_call": in_calls["max"]}


def fresh_logger(name: str) -> logging.Logger:
    log = logging.getLogger(f"bench.logging_context.{name}")
    log.propagate = False
    log.setLevel(logging.INFO)
    for handler in list(log.handlers):
        log.removeHandler(handler)
    return log


def measure_direct(
    name: str, handler: logging.Handler, requests: int, lines: int, *, with_filter: bool = True
) -> Dict[str, float]:
    log = fresh_logger(name)
    if with_filter:
        handler.addFilter(ContextFilter())
    log.addHandler(handler)
    try:
        return asyncio.run(run_requests(log, requests, lines))
    finally:
        log.removeHandler(handler)
        handler.close()


def measure_queued(
    name: str, handler: logging.Handler, requests: int, lines: int
) -> Dict[str, float]:
    log = fresh_logger(name)
    with queue_logging(log, handler, filters=[ContextFilter()]):
        figures = asyncio.run(run_requests(log, requests, lines))
        stopping = time.perf_counter()
    figures["drain"] = time.perf_counter() - stopping
    handler.close()
    return figures


def measure_disabled(requests: int, lines: int) -> Dict[str, float]:
    log = fresh_logger("disabled")
    log.setLevel(logging.CRITICAL)
    return asyncio.run(run_requests(log, requests, lines))


def span_cost(count: int) -> float:
    """Seconds per span opened and closed (plain ``with``, no loop running)."""
    tracer = Tracer(max_spans=1000)
    started = time.perf_counter()
    for _ in range(count):
        with tracer.span("work"):
            pass
    return (time.perf_counter() - started) / count


def measure_all(requests: int, lines: int, runs: int) -> Dict[str, Any]:
    records = requests * lines
    with tempfile.TemporaryDirectory() as folder:

        def file_handler(fmt: str) -> logging.Handler:
            handler = logging.FileHandler(os.path.join(folder, "app.log"), mode="w")
            handler.setFormatter(logging.Formatter(fmt))
            return handler

        def slow_sink() -> logging.Handler:
            handler = SlowSink()
            handler.setFormatter(logging.Formatter(FORMAT_WITH_ID))
            return handler

        cases: Dict[str, Callable[[], Dict[str, float]]] = {
            "logger switched off": lambda: measure_disabled(requests, lines),
            "file, on the loop, no ContextFilter": lambda: measure_direct(
                "plain", file_handler(FORMAT_PLAIN), requests, lines, with_filter=False
            ),
            "file, on the loop": lambda: measure_direct(
                "file", file_handler(FORMAT_WITH_ID), requests, lines
            ),
            "file, queue_logging": lambda: measure_queued(
                "file-queued", file_handler(FORMAT_WITH_ID), requests, lines
            ),
            "slow sink, on the loop": lambda: measure_direct("slow", slow_sink(), requests, lines),
            "slow sink, queue_logging": lambda: measure_queued(
                "slow-queued", slow_sink(), requests, lines
            ),
        }
        print(f"{requests:,} requests x {lines} lines = {records:,} records", flush=True)
        # Round-robin, so that a burst of load from elsewhere hits every case alike.
        all_runs: Dict[str, List[Dict[str, float]]] = {name: [] for name in cases}
        for _ in range(runs):
            for name, case in cases.items():
                all_runs[name].append(case())
        figures = {name: min(found, key=lambda f: f["loop"]) for name, found in all_runs.items()}
        for name, f in figures.items():
            drain = f" (+{f['drain']:.3f} s draining)" if "drain" in f else ""
            print(
                f"{name:>36}: loop {f['loop']:7.3f} s, in log calls {f['in_calls']:7.3f} s,"
                f" longest call {f['max_call'] * 1000:6.2f} ms{drain}",
                flush=True,
            )
    per_span = span_cost(20_000 if records < 20_000 else 100_000)
    print(f"{'Tracer span':>36}: {per_span * 1e6:.2f} µs per span", flush=True)

    unit = f"seconds for {records:,} records"
    results: List[Dict[str, Any]] = []
    for name, f in figures.items():
        results.append({"name": f"{name}: loop time", "value": f["loop"], "unit": unit})
        if name != "logger switched off":
            results.append(
                {"name": f"{name}: time in log calls", "value": f["in_calls"], "unit": unit}
            )
            results.append(
                {"name": f"{name}: longest log call", "value": f["max_call"], "unit": "seconds"}
            )
        if "drain" in f:
            results.append(
                {"name": f"{name}: draining after the loop", "value": f["drain"], "unit": unit}
            )
    results.append({"name": "Tracer: one span", "value": per_span, "unit": "seconds"})

    off = figures["logger switched off"]["loop"]
    ratios = {
        "file_direct_over_queued_loop_time": figures["file, on the loop"]["loop"]
        / figures["file, queue_logging"]["loop"],
        "file_queued_over_logging_off_loop_time": figures["file, queue_logging"]["loop"] / off,
        "file_direct_over_logging_off_loop_time": figures["file, on the loop"]["loop"] / off,
        "context_filter_cost_file_direct": figures["file, on the loop"]["loop"]
        / figures["file, on the loop, no ContextFilter"]["loop"],
        "slow_sink_direct_over_queued_loop_time": figures["slow sink, on the loop"]["loop"]
        / figures["slow sink, queue_logging"]["loop"],
        "slow_sink_direct_over_queued_longest_call": figures["slow sink, on the loop"]["max_call"]
        / figures["slow sink, queue_logging"]["max_call"],
    }
    return {
        "benchmark": "logging from many asyncio tasks: on the loop vs queue_logging",
        "python": platform.python_version(),
        "description": (
            f"{requests} request tasks x {lines} log lines, request ids from ContextFilter; "
            "FileHandler on a temporary file and a sink that waits 20 ms every 200 records; "
            "best of {runs} round-robin runs by loop time".format(runs=runs)
        ),
        "requests": requests,
        "lines_per_request": lines,
        "cpus": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "results": results,
        "ratios": ratios,
    }


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="200 requests x 10 lines, one run each"
    )
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args(argv)
    if args.quick:
        data = measure_all(200, 10, runs=1)
    else:
        data = measure_all(1000, 20, runs=5)
    print_ratios(data["ratios"], width=42)
    write_results(args.json, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
