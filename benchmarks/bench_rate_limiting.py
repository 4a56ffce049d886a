"""RateLimiter against aiolimiter: accuracy under bursts, cost per acquire, cancellation.

    python benchmarks/bench_rate_limiting.py                # full run
    python benchmarks/bench_rate_limiting.py --quick        # a smoke run
    python benchmarks/bench_rate_limiting.py --json out.json

Real clock, one process: :class:`recipes.limiting.RateLimiter` (a token bucket)
against :class:`aiolimiter.AsyncLimiter` (a leaky bucket), the library a
reader would install instead.  Both are set to the same nominal rate (100 per
period) and the same burst, so both make the same promise: in any window of
``t`` seconds at most ``burst + rate * t`` acquisitions.  For the recipe that
is its docstring; for aiolimiter it follows from its algorithm (the level may
rise to ``max_rate`` and drains at ``max_rate / time_period``), while its
documentation says ``AsyncLimiter(100)`` is entered "at most 100 times /
minute".  ``AsyncLimiter(burst, burst / rate)`` is aiolimiter's spelling of
a given rate and burst.

1. accuracy: the same bursty load (bursts of concurrent acquirers, quiet
   gaps) for each limiter in turn, twice: burst 100 (``AsyncLimiter(100, 1)``:
   max_rate per time_period, as aiolimiter's documentation spells a rate) and
   burst 1 (its "no bursts" spelling, ``AsyncLimiter(1, 0.01)``).  Per
   limiter: the most admissions in any sliding window of one period and of
   0.1 period over what the limiter promises, admissions over
   ``rate * duration`` (and over what a perfect token bucket admits under the
   same load), and how many callers were admitted out of arrival order
   (callers to move to restore the order) and the most later callers
   admitted ahead of one caller;
2. order under a steady overload: 500 per second, burst 10, a new caller
   every millisecond for one second;
3. cost per acquire: uncontended (a huge rate, a token is always free), in
   CPU microseconds of this process, median of interleaved rounds, with
   :class:`asyncio.Semaphore` as a reference point; and contended (200 tasks
   acquiring in a loop against 5,000 per second, burst 10), in CPU
   microseconds per admission, with the share of the rate reached;
4. cancellation: with the bucket empty, as many waiters as one period's
   tokens queue up and are cancelled; then a crowd of fresh acquirers comes,
   and the admissions within one period are compared with the tokens made
   meanwhile.  A second test cancels half of the acquirers of an overload
   (twice the rate) by timeouts at random moments, and compares the
   admissions over two periods with the tokens.

``--quick`` uses a period of 0.25 s instead of 1 s (so 400 per second),
half a second of steady overload and fewer rounds: a smoke run, noisier.
The figures depend on the machine and its load; compare the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import importlib.metadata
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from aiolimiter import AsyncLimiter

from recipes.limiting import RateLimiter

from _common import print_ratios, write_results

AIOLIMITER_VERSION = importlib.metadata.version("aiolimiter")

PER_PERIOD = 100  # the nominal rate: acquisitions per period
LIBRARIES = ("recipe", "aiolimiter")

# The load, in periods and in fractions of one period's tokens: (arrival, size).
BURSTS = [
    (0.00, 1.5),  # a full bucket meets a burst larger than itself
    (0.30, 0.6),
    (0.45, 0.1),
    (0.50, 0.1),
    (1.20, 0.05),  # a trickle while the queue drains
    (2.40, 2.5),  # after a quiet gap that refills the bucket: the worst window
    (2.60, 0.3),
    (3.20, 0.4),
    (3.50, 0.2),
]
LOAD_PERIODS = 4.0  # admissions are counted until then; waiters left are cancelled

Limiter = Any  # RateLimiter or AsyncLimiter: both have acquire() and async with


def make(library: str, per_second: float, burst: int) -> Limiter:
    """A limiter of ``per_second`` with room for ``burst`` back to back."""
    if library == "recipe":
        return RateLimiter(per_second, burst=burst)
    return AsyncLimiter(burst, burst / per_second)


def promise(per_second: float, burst: int, window: float) -> float:
    """Most acquisitions either limiter allows in a window of ``window`` seconds."""
    return burst + per_second * window


# --- 1. accuracy under bursts ------------------------------------------------------------


async def bursty_load(limiter: Limiter, period: float) -> Tuple[List[float], List[int], float]:
    """Run BURSTS against ``limiter``: admission times and arrival numbers, in admission order."""
    loop = asyncio.get_running_loop()
    times: List[float] = []
    arrivals: List[int] = []
    counter = iter(range(1_000_000))

    async def acquirer() -> None:
        number = next(counter)  # the order in which acquire() is called
        await limiter.acquire()
        times.append(loop.time())
        arrivals.append(number)

    start = loop.time()
    tasks: List[asyncio.Task[None]] = []
    for at, size in BURSTS:
        await asyncio.sleep(max(0.0, start + at * period - loop.time()))
        tasks += [asyncio.ensure_future(acquirer()) for _ in range(round(size * PER_PERIOD))]
    await asyncio.sleep(max(0.0, start + LOAD_PERIODS * period - loop.time()))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    end = start + LOAD_PERIODS * period
    admitted = bisect.bisect_right(times, end)
    return [t - start for t in times[:admitted]], arrivals[:admitted], LOAD_PERIODS * period


def ideal_admissions(per_second: float, burst: int, period: float, duration: float) -> int:
    """What a perfect first-come-first-served token bucket admits of BURSTS by ``duration``."""
    interval = 1 / per_second
    slack = (burst - 1) * interval
    full_at = -float("inf")
    admitted = 0
    for at, size in BURSTS:
        for _ in range(round(size * PER_PERIOD)):
            now = at * period
            when = max(now, max(full_at, now) - slack)
            if when > duration:
                return admitted
            full_at = max(full_at, when) + interval
            admitted += 1
    return admitted


def most_in_window(times: List[float], window: float) -> int:
    """Most admissions in any closed window [t, t + window]."""
    ordered = sorted(times)
    return max(
        (bisect.bisect_right(ordered, t + window) - i for i, t in enumerate(ordered)), default=0
    )


def out_of_order(arrivals: List[int]) -> Tuple[int, int]:
    """Callers admitted out of arrival order, and the most later callers that passed one.

    The first figure is how many callers would have to be moved to restore
    arrival order (admissions minus the longest run admitted in order), so
    one newcomer that jumps the queue counts once, and so does one waiter
    sent to the back of it.
    """
    tails: List[int] = []  # tails[k]: smallest last number of an in-order run of k + 1
    seen: List[int] = []
    most_passed = 0
    for number in arrivals:
        position = bisect.bisect_left(tails, number)
        if position == len(tails):
            tails.append(number)
        else:
            tails[position] = number
        most_passed = max(most_passed, len(seen) - bisect.bisect_right(seen, number))
        bisect.insort(seen, number)
    return len(arrivals) - len(tails), most_passed


async def accuracy(period: float, burst: int, order: Tuple[str, ...]) -> Dict[str, Any]:
    per_second = PER_PERIOD / period
    ideal = ideal_admissions(per_second, burst, period, LOAD_PERIODS * period)
    figures: Dict[str, Any] = {}
    for library in order:
        times, arrivals, duration = await bursty_load(make(library, per_second, burst), period)
        figures[library] = {
            "window_1_period": most_in_window(times, period) / promise(per_second, burst, period),
            "window_0.1_period": most_in_window(times, period / 10)
            / promise(per_second, burst, period / 10),
            "most_in_1_period": most_in_window(times, period),
            "most_in_0.1_period": most_in_window(times, period / 10),
            "admitted": len(times),
            "admitted_over_rate_x_duration": len(times) / (per_second * duration),
            "admitted_over_ideal": len(times) / ideal,
            "out_of_order": out_of_order(arrivals)[0],
            "most_passed": out_of_order(arrivals)[1],
        }
        await asyncio.sleep(0.05)
    figures["ideal_admitted"] = ideal
    return figures


async def steady_overload(library: str, seconds: float) -> Dict[str, int]:
    """500 per second, burst 10; a new caller every millisecond (twice the rate).

    A newcomer that finds capacity free while others wait shows here: the
    recipe queues it behind them, aiolimiter lets it in.
    """
    loop = asyncio.get_running_loop()
    limiter = make(library, 500, 10)
    arrivals: List[int] = []
    counter = iter(range(1_000_000))

    async def acquirer() -> None:
        number = next(counter)
        await limiter.acquire()
        arrivals.append(number)

    tasks = []
    end = loop.time() + seconds
    while loop.time() < end:
        tasks.append(asyncio.ensure_future(acquirer()))
        await asyncio.sleep(0.001)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    moved, passed = out_of_order(arrivals)
    return {"admitted": len(arrivals), "out_of_order": moved, "most_passed": passed}


async def ordering(seconds: float) -> Dict[str, Dict[str, int]]:
    return {library: await steady_overload(library, seconds) for library in LIBRARIES}


# --- 2. cost per acquire ---------------------------------------------------------------


async def uncontended(limiter: Any, count: int) -> float:
    """CPU microseconds per ``async with limiter`` when a token is always free.

    CPU time of this process, not wall time: the other jobs on the machine
    take turns with it, and that time is not the limiter's.
    """
    started = time.process_time()
    for _ in range(count):
        async with limiter:
            pass
    return (time.process_time() - started) / count * 1e6


async def overhead(count: int, rounds: int) -> Dict[str, float]:
    makers: Dict[str, Callable[[], Any]] = {
        # A rate no loop can reach, and a bucket that never empties.
        "recipe": lambda: make("recipe", 1e9, 1_000_000),
        "aiolimiter": lambda: make("aiolimiter", 1e9, 1_000_000),
        "asyncio.Semaphore": lambda: asyncio.Semaphore(10),  # a reference point
    }
    samples: Dict[str, List[float]] = {name: [] for name in makers}
    for round_ in range(rounds):
        names = list(makers) if round_ % 2 == 0 else list(reversed(makers))
        for name in names:
            samples[name].append(await uncontended(makers[name](), count))
    return {name: statistics.median(values) for name, values in samples.items()}


async def contended(
    library: str, per_second: float, burst: int, tasks: int, seconds: float
) -> Tuple[float, float]:
    """CPU microseconds per admission and admissions per second, ``tasks`` acquiring in a loop."""
    limiter = make(library, per_second, burst)
    admitted = 0

    async def loop_forever() -> None:
        nonlocal admitted
        while True:
            async with limiter:
                admitted += 1

    workers = [asyncio.ensure_future(loop_forever()) for _ in range(tasks)]
    await asyncio.sleep(0.05)  # every worker is queued
    admitted = 0
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    count = admitted
    for worker in workers:
        worker.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    return cpu / max(count, 1) * 1e6, count / wall


async def contention(rounds: int, seconds: float) -> Dict[str, Dict[str, float]]:
    cpu: Dict[str, List[float]] = {name: [] for name in LIBRARIES}
    reached: Dict[str, List[float]] = {name: [] for name in LIBRARIES}
    for round_ in range(rounds):
        for library in LIBRARIES if round_ % 2 == 0 else LIBRARIES[::-1]:
            cost, rate = await contended(library, 5_000, 10, 200, seconds)
            cpu[library].append(cost)
            reached[library].append(rate)
    return {
        library: {
            "cpu_us_per_admission": statistics.median(cpu[library]),
            "rate_reached": statistics.median(reached[library]) / 5_000,
        }
        for library in LIBRARIES
    }


# --- 3. cancellation ---------------------------------------------------------------------


async def cancel_queued(library: str, period: float) -> Dict[str, float]:
    """Cancel one period's worth of queued waiters; count admissions in the next period."""
    loop = asyncio.get_running_loop()
    per_second = PER_PERIOD / period
    burst = 10
    limiter = make(library, per_second, burst)
    for _ in range(burst):  # empty the bucket
        await limiter.acquire()
    emptied = loop.time()
    admitted: List[float] = []

    async def acquirer() -> None:
        await limiter.acquire()
        admitted.append(loop.time())

    doomed = [asyncio.ensure_future(acquirer()) for _ in range(PER_PERIOD)]
    for _ in range(3):
        await asyncio.sleep(0)  # every one of them is waiting now
    for task in doomed:
        task.cancel()
    await asyncio.gather(*doomed, return_exceptions=True)
    doomed_admitted = len(admitted)
    cancelled = loop.time()
    fresh = [asyncio.ensure_future(acquirer()) for _ in range(3 * PER_PERIOD)]
    end = cancelled + period
    await asyncio.sleep(period)
    for task in fresh:
        task.cancel()
    await asyncio.gather(*fresh, return_exceptions=True)
    within = bisect.bisect_right(sorted(admitted), end)
    # Tokens made from the moment the bucket was empty until the end of the period.
    tokens = (end - emptied) * per_second
    return {
        "doomed_admitted": doomed_admitted,
        "admitted": within,
        "tokens": tokens,
        "admitted_over_tokens": within / tokens,
    }


async def cancel_by_timeouts(library: str, period: float, seed: int) -> Dict[str, float]:
    """Overload for two periods; half the acquirers give up after a random timeout."""
    loop = asyncio.get_running_loop()
    rng = random.Random(seed)
    per_second = PER_PERIOD / period
    burst = 10
    limiter = make(library, per_second, burst)
    for _ in range(burst):  # empty the bucket
        await limiter.acquire()
    start = loop.time()
    end = start + 2 * period
    admitted: List[float] = []
    timed_out = 0

    async def acquirer(timeout: Optional[float]) -> None:
        nonlocal timed_out
        try:
            await asyncio.wait_for(limiter.acquire(), timeout)
        except asyncio.TimeoutError:
            timed_out += 1
        else:
            admitted.append(loop.time())

    tasks = []
    for step in range(20):  # a wave every tenth of a period: twice the rate in total
        tasks += [
            asyncio.ensure_future(acquirer(None if n % 2 else rng.uniform(0, period / 2)))
            for n in range(PER_PERIOD // 5)
        ]
        await asyncio.sleep(max(0.0, start + (step + 1) * period / 10 - loop.time()))
    await asyncio.sleep(max(0.0, end - loop.time()))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    within = bisect.bisect_right(sorted(admitted), end)
    tokens = (end - start) * per_second
    return {
        "timed_out": timed_out,
        "admitted": within,
        "tokens": tokens,
        "admitted_over_tokens": within / tokens,
    }


async def cancellation(period: float) -> Dict[str, Dict[str, Dict[str, float]]]:
    figures: Dict[str, Dict[str, Dict[str, float]]] = {name: {} for name in LIBRARIES}
    for library in LIBRARIES:
        figures[library]["queued"] = await cancel_queued(library, period)
    for library in LIBRARIES[::-1]:
        figures[library]["timeouts"] = await cancel_by_timeouts(library, period, 7)
    return figures


# --- the run -----------------------------------------------------------------------------


async def run(quick: bool) -> Dict[str, Any]:
    period = 0.25 if quick else 1.0
    count, rounds = (2_000, 5) if quick else (10_000, 11)
    bursty = await accuracy(period, 100, LIBRARIES)
    smooth = await accuracy(period, 1, LIBRARIES[::-1])
    steady = await ordering(0.5 if quick else 1.0)
    costs = await overhead(count, rounds)
    contention_figures = await contention(2 if quick else 4, 0.2 if quick else 0.5)
    cancel = await cancellation(period)
    return {
        "period": period,
        "count": count,
        "rounds": rounds,
        "burst_100": bursty,
        "burst_1": smooth,
        "steady": steady,
        "overhead": costs,
        "contention": contention_figures,
        "cancellation": cancel,
    }


def measure(quick: bool) -> Dict[str, Any]:
    print(f"aiolimiter {AIOLIMITER_VERSION}, Python {platform.python_version()}", flush=True)
    figures = asyncio.run(run(quick))
    period = figures["period"]
    results: List[Dict[str, Any]] = []

    def row(name: str, value: float, unit: str) -> None:
        results.append({"name": name, "value": value, "unit": unit})

    for key, label in (("burst_100", "burst 100"), ("burst_1", "burst 1")):
        acc = figures[key]
        print(
            f"accuracy, {PER_PERIOD} per {period:g} s, {label} "
            f"(a perfect token bucket admits {acc['ideal_admitted']}):",
            flush=True,
        )
        for library in LIBRARIES:
            got = acc[library]
            print(
                f"{library:>12}: most in 1 period {got['most_in_1_period']:4d} "
                f"({got['window_1_period']:.3f} of the promise), in 0.1 period "
                f"{got['most_in_0.1_period']:4d} ({got['window_0.1_period']:.3f}); "
                f"admitted {got['admitted']} ({got['admitted_over_rate_x_duration']:.3f} of "
                f"rate x duration, {got['admitted_over_ideal']:.3f} of ideal); "
                f"out of arrival order {got['out_of_order']} "
                f"(one was passed by {got['most_passed']} later callers)",
                flush=True,
            )
            row(f"{label}, {library}: most in 1 period / promise", got["window_1_period"], "ratio")
            row(
                f"{label}, {library}: most in 0.1 period / promise",
                got["window_0.1_period"],
                "ratio",
            )
            row(
                f"{label}, {library}: admitted / (rate x duration)",
                got["admitted_over_rate_x_duration"],
                "ratio",
            )
            row(f"{label}, {library}: admitted / ideal", got["admitted_over_ideal"], "ratio")
            row(f"{label}, {library}: admitted out of arrival order", got["out_of_order"], "count")
            row(
                f"{label}, {library}: most later callers admitted before one caller",
                got["most_passed"],
                "count",
            )
    costs = figures["overhead"]
    print(
        f"uncontended acquire ({figures['count']:,} per round, median of {figures['rounds']}):",
        flush=True,
    )
    for name, value in costs.items():
        print(f"{name:>18}: {value:6.2f} us", flush=True)
        row(f"uncontended acquire: {name}", value, "CPU µs per call")
    steady = figures["steady"]
    print("steady overload (500 per second, burst 10, a caller every ms):", flush=True)
    for library in LIBRARIES:
        got = steady[library]
        print(
            f"{library:>12}: admitted {got['admitted']}, out of arrival order "
            f"{got['out_of_order']} (one was passed by {got['most_passed']} later callers)",
            flush=True,
        )
        row(
            f"steady overload, {library}: admitted out of arrival order",
            got["out_of_order"],
            "count",
        )
        row(
            f"steady overload, {library}: most later callers admitted before one caller",
            got["most_passed"],
            "count",
        )
    busy = figures["contention"]
    print("contended (200 tasks, 5,000 per second, burst 10):", flush=True)
    for library in LIBRARIES:
        got = busy[library]
        print(
            f"{library:>12}: {got['cpu_us_per_admission']:6.1f} CPU us per admission, "
            f"{got['rate_reached']:.3f} of the rate reached",
            flush=True,
        )
        row(f"contended: {library}", got["cpu_us_per_admission"], "CPU µs per admission")
        row(f"contended: {library}, rate reached / nominal", got["rate_reached"], "ratio")
    cancel = figures["cancellation"]
    print("cancellation (100 per period, burst 10):", flush=True)
    for library in LIBRARIES:
        queued, timeouts = cancel[library]["queued"], cancel[library]["timeouts"]
        print(
            f"{library:>12}: {PER_PERIOD} queued waiters cancelled ({queued['doomed_admitted']} "
            f"got through first), then {queued['admitted']} admitted for "
            f"{queued['tokens']:.1f} tokens; with timeouts: {timeouts['timed_out']} timed out, "
            f"{timeouts['admitted']} admitted for {timeouts['tokens']:.1f} tokens",
            flush=True,
        )
        row(
            f"after cancelling queued waiters, {library}: admitted / tokens",
            queued["admitted_over_tokens"],
            "ratio",
        )
        row(
            f"overload with timeouts, {library}: admitted / tokens",
            timeouts["admitted_over_tokens"],
            "ratio",
        )

    bursty, smooth = figures["burst_100"], figures["burst_1"]
    loads = (bursty, smooth, steady)

    def out_of_order_fraction(library: str) -> float:
        moved = sum(load[library]["out_of_order"] for load in loads)
        return moved / sum(load[library]["admitted"] for load in loads)

    def most_passed(library: str) -> int:
        return max(load[library]["most_passed"] for load in loads)

    ratios = {
        "recipe_over_aiolimiter_overhead": costs["recipe"] / costs["aiolimiter"],
        "recipe_over_semaphore_overhead": costs["recipe"] / costs["asyncio.Semaphore"],
        "recipe_over_aiolimiter_contended_cpu": busy["recipe"]["cpu_us_per_admission"]
        / busy["aiolimiter"]["cpu_us_per_admission"],
        "recipe_contended_rate_reached": busy["recipe"]["rate_reached"],
        "aiolimiter_contended_rate_reached": busy["aiolimiter"]["rate_reached"],
        "recipe_max_window_over_promise": bursty["recipe"]["window_1_period"],
        "aiolimiter_max_window_over_promise": bursty["aiolimiter"]["window_1_period"],
        # aiolimiter's documentation: AsyncLimiter(100) "at most 100 times / minute".
        "aiolimiter_max_window_over_documented_max_rate": bursty["aiolimiter"]["most_in_1_period"]
        / PER_PERIOD,
        "recipe_short_window_over_promise": bursty["recipe"]["window_0.1_period"],
        "aiolimiter_short_window_over_promise": bursty["aiolimiter"]["window_0.1_period"],
        "recipe_no_burst_max_window_over_promise": smooth["recipe"]["window_1_period"],
        "aiolimiter_no_burst_max_window_over_promise": smooth["aiolimiter"]["window_1_period"],
        "recipe_no_burst_short_window_over_promise": smooth["recipe"]["window_0.1_period"],
        "aiolimiter_no_burst_short_window_over_promise": smooth["aiolimiter"]["window_0.1_period"],
        "recipe_admitted_over_rate_x_duration": bursty["recipe"]["admitted_over_rate_x_duration"],
        "aiolimiter_admitted_over_rate_x_duration": bursty["aiolimiter"][
            "admitted_over_rate_x_duration"
        ],
        "recipe_admitted_over_ideal": bursty["recipe"]["admitted_over_ideal"],
        "aiolimiter_admitted_over_ideal": bursty["aiolimiter"]["admitted_over_ideal"],
        "recipe_no_burst_admitted_over_ideal": smooth["recipe"]["admitted_over_ideal"],
        "aiolimiter_no_burst_admitted_over_ideal": smooth["aiolimiter"]["admitted_over_ideal"],
        # Callers admitted out of arrival order, as a fraction of the admissions (all loads).
        "recipe_out_of_order_fraction": out_of_order_fraction("recipe"),
        "aiolimiter_out_of_order_fraction": out_of_order_fraction("aiolimiter"),
        "recipe_most_later_callers_admitted_first": most_passed("recipe"),
        "aiolimiter_most_later_callers_admitted_first": most_passed("aiolimiter"),
        "recipe_after_cancel_admitted_over_tokens": cancel["recipe"]["queued"][
            "admitted_over_tokens"
        ],
        "aiolimiter_after_cancel_admitted_over_tokens": cancel["aiolimiter"]["queued"][
            "admitted_over_tokens"
        ],
        "recipe_with_timeouts_admitted_over_tokens": cancel["recipe"]["timeouts"][
            "admitted_over_tokens"
        ],
        "aiolimiter_with_timeouts_admitted_over_tokens": cancel["aiolimiter"]["timeouts"][
            "admitted_over_tokens"
        ],
    }
    return {
        "benchmark": "rate limiting: RateLimiter vs aiolimiter",
        "python": platform.python_version(),
        "description": __doc__.splitlines()[0]
        + f" Same nominal rate ({PER_PERIOD} per period of {period:g} s) and burst for both;"
        " promise for both: at most burst + rate * t acquisitions in any window of t seconds"
        " (the recipe's docstring; for aiolimiter, what its leaky bucket allows: the level"
        " rises to max_rate and drains at max_rate / time_period, while its documentation"
        " says AsyncLimiter(100) is entered at most 100 times a minute)."
        " Costs per acquire are CPU time of this process.",
        "peer": "aiolimiter",
        "peer_version": AIOLIMITER_VERSION,
        "nominal_rate_per_period": PER_PERIOD,
        "period_seconds": period,
        "load": [{"at_periods": at, "acquirers": round(size * PER_PERIOD)} for at, size in BURSTS],
        "load_periods": LOAD_PERIODS,
        "calls_per_round": figures["count"],
        "rounds": figures["rounds"],
        "cpus": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "results": results,
        "ratios": ratios,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller, faster run")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()
    data = measure(args.quick)
    print_ratios(data["ratios"], width=48, digits=3)
    write_results(args.json, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
