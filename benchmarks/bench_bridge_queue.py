"""BridgeQueue against janus: a queue shared by threads and coroutines, side by side.

    python benchmarks/bench_bridge_queue.py                # full run
    python benchmarks/bench_bridge_queue.py --quick        # a smoke run
    python benchmarks/bench_bridge_queue.py --json out.json

``recipes.sync_bridge.BridgeQueue`` (section "Passing items between threads
and coroutines" of the sync_bridge chapter) against ``janus.Queue``, the
library a reader would install instead.  Real clock, one process; the two
queues take turns in every round (the order flips each round) and each
figure is the median of the rounds:

1. throughput, items per second, with the same bound for both (100, and
   unbounded): a thread puts N items and a coroutine awaits them (thread to
   loop); a coroutine puts and a thread takes them (loop to thread); both at
   once, on two queues (a thread feeding the loop while the loop feeds
   another thread);
2. wake-up latency on an idle queue, in microseconds (p50 and p99 of each
   round): from a thread's ``put()`` to the coroutine's ``get`` returning,
   and from a coroutine's ``put`` to a thread's ``get()`` returning;
3. behaviour: a thread blocked in ``get()`` and a coroutine awaiting
   ``get`` while the queue is closed (janus ``close()``, and ``shutdown()``
   where janus has it) or sent an end marker (the recipe has no ``close()``);
   how long until each is released and how (value or exception); what a
   consumer still gets of the items left in the queue; and a thread blocked in
   ``get()`` when the event loop ends.  Every blocking wait has a timeout
   (``--hang`` seconds), so a waiter that is never released shows up as
   released "after the timeout" instead of hanging the benchmark.

janus 1.0 (the last release for Python 3.8) and 2.0 differ: 2.0 has
``shutdown()``/``aclose()`` and wakes blocked waiters on close; both are
handled, and the version is stored in the JSON (with janus 1.0, which is
much slower, the throughput runs use a fifth of the items, the same for
both queues).  Ratios are recipe / janus,
the median over the rounds of each back-to-back pair: above 1 the recipe
moves more items per second; for latencies, below 1 the recipe wakes its
waiter sooner.  Compare ratios, not absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import functools
import importlib.metadata
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple

import janus

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from recipes.sync_bridge import BridgeQueue

from _common import print_ratios, write_results

JANUS_VERSION = importlib.metadata.version("janus")
WAIT = 60.0  # bound on every wait in the throughput and latency runs
BOUNDS = (100, 0)  # maxsize: 100, then unbounded


def load_average() -> Optional[float]:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def percentile(values: List[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run(main: Awaitable[Any]) -> Any:
    """``asyncio.run(main)``; on 3.8, also wait for the default executor first, as 3.9+ does.

    janus 1.0 hands notifications to ``run_in_executor`` without keeping all of
    them; without this wait, those finishing after the loop closed print
    "Event loop is closed" tracebacks.
    """
    if sys.version_info >= (3, 9):
        return asyncio.run(main)  # type: ignore[arg-type]
    loop = asyncio.new_event_loop()
    executor = concurrent.futures.ThreadPoolExecutor()
    loop.set_default_executor(executor)
    try:
        return loop.run_until_complete(main)
    finally:
        joined: asyncio.Future[None] = loop.create_future()

        def join() -> None:
            executor.shutdown(wait=True)
            loop.call_soon_threadsafe(joined.set_result, None)

        joiner = threading.Thread(target=join)
        joiner.start()
        loop.run_until_complete(joined)
        joiner.join()
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def in_thread(func: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
    """Run ``func(*args)`` in a new thread; a future of the running loop gets its outcome."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(result: Any, error: Optional[BaseException]) -> None:
        if future.done():
            return
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)

    def target() -> None:
        try:
            result = func(*args)
        except BaseException as error:
            loop.call_soon_threadsafe(settle, None, error)
        else:
            loop.call_soon_threadsafe(settle, result, None)

    threading.Thread(target=target, daemon=True).start()
    return future


# --- the two queues behind one interface ---------------------------------------


class Recipe:
    label = "BridgeQueue"

    def make(self, maxsize: int) -> Any:
        return BridgeQueue(maxsize)

    def putter(self, q: Any, timeout: float = WAIT) -> Callable[[Any], None]:
        return functools.partial(q.put, timeout=timeout)

    def getter(self, q: Any, timeout: float = WAIT) -> Callable[[], Any]:
        return functools.partial(q.get, timeout=timeout)

    def aputter(self, q: Any) -> Callable[[Any], Awaitable[None]]:
        return q.aput  # type: ignore[no-any-return]

    def agetter(self, q: Any) -> Callable[[], Awaitable[Any]]:
        return q.aget  # type: ignore[no-any-return]

    def put_nowait(self, q: Any, item: Any) -> None:
        q.put_nowait(item)

    async def finish(self, q: Any) -> None:
        pass


class Janus:
    label = "janus"

    def make(self, maxsize: int) -> Any:
        return janus.Queue(maxsize)  # janus 1.0 needs a running loop here; 2.0 does not

    def putter(self, q: Any, timeout: float = WAIT) -> Callable[[Any], None]:
        return functools.partial(q.sync_q.put, timeout=timeout)

    def getter(self, q: Any, timeout: float = WAIT) -> Callable[[], Any]:
        return functools.partial(q.sync_q.get, timeout=timeout)

    def aputter(self, q: Any) -> Callable[[Any], Awaitable[None]]:
        return q.async_q.put  # type: ignore[no-any-return]

    def agetter(self, q: Any) -> Callable[[], Awaitable[Any]]:
        return q.async_q.get  # type: ignore[no-any-return]

    def put_nowait(self, q: Any, item: Any) -> None:
        q.async_q.put_nowait(item)

    async def finish(self, q: Any) -> None:
        if hasattr(q, "aclose"):  # janus >= 1.2
            await q.aclose()
        else:
            q.close()
            await q.wait_closed()


IMPLEMENTATIONS = (Recipe(), Janus())


# --- 1. throughput ----------------------------------------------------------------


async def thread_to_loop(impl: Any, maxsize: int, items: int) -> float:
    q = impl.make(maxsize)
    put, aget = impl.putter(q), impl.agetter(q)

    def produce() -> None:
        for n in range(items):
            put(n)
        put(None)

    started = time.perf_counter()
    producing = in_thread(produce)
    received = 0
    while await aget() is not None:
        received += 1
    await producing
    elapsed = time.perf_counter() - started
    await impl.finish(q)
    assert received == items, (impl.label, received)
    return items / elapsed


async def loop_to_thread(impl: Any, maxsize: int, items: int) -> float:
    q = impl.make(maxsize)
    get, aput = impl.getter(q), impl.aputter(q)

    def consume() -> int:
        received = 0
        while get() is not None:
            received += 1
        return received

    started = time.perf_counter()
    consuming = in_thread(consume)
    for n in range(items):
        await aput(n)
    await aput(None)
    received = await consuming
    elapsed = time.perf_counter() - started
    await impl.finish(q)
    assert received == items, (impl.label, received)
    return items / elapsed


async def both_ways(impl: Any, maxsize: int, items: int) -> float:
    """A thread feeds the loop on one queue while the loop feeds another thread on a second."""
    up, down = impl.make(maxsize), impl.make(maxsize)
    put_up, aget_up = impl.putter(up), impl.agetter(up)
    aput_down, get_down = impl.aputter(down), impl.getter(down)

    def produce() -> None:
        for n in range(items):
            put_up(n)
        put_up(None)

    def consume() -> int:
        received = 0
        while get_down() is not None:
            received += 1
        return received

    async def drain() -> int:
        received = 0
        while await aget_up() is not None:
            received += 1
        return received

    async def feed() -> None:
        for n in range(items):
            await aput_down(n)
        await aput_down(None)

    started = time.perf_counter()
    producing, consuming = in_thread(produce), in_thread(consume)
    drained, _, consumed, _ = await asyncio.gather(drain(), feed(), consuming, producing)
    elapsed = time.perf_counter() - started
    await impl.finish(up)
    await impl.finish(down)
    assert drained == consumed == items, (impl.label, drained, consumed)
    return 2 * items / elapsed


# --- 2. wake-up latency on an idle queue ------------------------------------------


async def latency_thread_to_loop(impl: Any, samples: int, gap: float) -> List[float]:
    q = impl.make(0)
    put, aget = impl.putter(q), impl.agetter(q)
    taken = threading.Event()

    def produce() -> None:
        for _ in range(samples):
            time.sleep(gap)  # the coroutine is back in get and the queue is empty
            taken.clear()
            put(time.perf_counter())
            if not taken.wait(WAIT):
                raise RuntimeError("the coroutine never took the item")
        put(None)

    producing = in_thread(produce)
    latencies: List[float] = []
    while True:
        sent = await aget()
        if sent is None:
            break
        latencies.append(time.perf_counter() - sent)
        taken.set()
    await producing
    await impl.finish(q)
    return latencies


async def latency_loop_to_thread(impl: Any, samples: int, gap: float) -> List[float]:
    q = impl.make(0)
    get, aput = impl.getter(q), impl.aputter(q)
    loop = asyncio.get_running_loop()
    taken = asyncio.Event()
    latencies: List[float] = []

    def consume() -> None:
        while True:
            sent = get()
            if sent is None:
                return
            latencies.append(time.perf_counter() - sent)
            loop.call_soon_threadsafe(taken.set)

    consuming = in_thread(consume)
    for _ in range(samples):
        await asyncio.sleep(gap)  # the thread is back in get() and the queue is empty
        taken.clear()
        await aput(time.perf_counter())
        await asyncio.wait_for(taken.wait(), WAIT)
    await aput(None)
    await consuming
    await impl.finish(q)
    return latencies


# --- 3. behaviour: closing, end markers, items left, the loop ending ------------------


def outcome_of(call: Callable[[], Any]) -> Tuple[float, str]:
    """Run a blocking call; return when it ended (perf_counter) and what it gave."""
    try:
        value = call()
    except BaseException as error:
        return time.perf_counter(), type(error).__name__
    return time.perf_counter(), f"returned {value!r}"


def releasers(impl: Any) -> Dict[str, Callable[[Any], None]]:
    """How each queue lets its blocked consumers go: janus closes, the recipe sends a marker."""
    if isinstance(impl, Recipe):
        return {"end marker": lambda q: q.put_nowait(None)}
    ways: Dict[str, Callable[[Any], None]] = {"close()": lambda q: q.close()}
    if hasattr(janus.Queue, "shutdown"):  # janus >= 2.0
        ways["shutdown()"] = lambda q: q.shutdown()
    return ways


async def blocked_thread_released(
    impl: Any, release: Callable[[Any], None], hang: float
) -> Dict[str, Any]:
    """A thread waits in get() on an empty queue; the loop releases it."""
    q = impl.make(0)
    waiting = in_thread(outcome_of, impl.getter(q, timeout=hang))
    await asyncio.sleep(0.05)  # the thread is blocked in get() by now
    released = time.perf_counter()
    release(q)
    ended, outcome = await waiting
    await impl.finish(q)
    return {
        "released_ms": (ended - released) * 1000,
        "outcome": outcome,
        "timed_out": outcome == "Empty",
    }


async def blocked_coroutine_released(
    impl: Any, release: Callable[[Any], None], hang: float
) -> Dict[str, Any]:
    """A coroutine awaits get on an empty queue; another thread releases it."""
    q = impl.make(0)
    aget = impl.agetter(q)

    async def wait() -> Tuple[float, str]:
        try:
            value = await asyncio.wait_for(aget(), hang)
        except BaseException as error:
            return time.perf_counter(), type(error).__name__
        return time.perf_counter(), f"returned {value!r}"

    waiting = asyncio.ensure_future(wait())
    await asyncio.sleep(0.05)  # the coroutine is waiting in get by now

    def from_a_thread() -> float:
        released = time.perf_counter()
        release(q)
        return released

    released = await in_thread(from_a_thread)
    ended, outcome = await waiting
    await impl.finish(q)
    return {
        "released_ms": max(0.0, ended - released) * 1000,
        "outcome": outcome,
        "timed_out": outcome in ("TimeoutError", "CancelledError"),
    }


async def items_left(impl: Any, release: Callable[[Any], None], side: str) -> Dict[str, Any]:
    """10 items wait in the queue when it is released; what does a consumer still get?"""
    left = 10
    q = impl.make(0)
    for n in range(left):
        impl.put_nowait(q, n)
    release(q)

    def drain_in_thread() -> Tuple[int, str]:
        get = impl.getter(q, timeout=0.2)
        got = 0
        while True:
            try:
                value = get()
            except BaseException as error:
                return got, type(error).__name__
            if value is None:
                return got, "end marker"
            got += 1

    async def drain_in_coroutine() -> Tuple[int, str]:
        aget = impl.agetter(q)
        got = 0
        while True:
            try:
                value = await asyncio.wait_for(aget(), 0.2)
            except BaseException as error:
                return got, type(error).__name__
            if value is None:
                return got, "end marker"
            got += 1

    if side == "thread":
        got, ending = await in_thread(drain_in_thread)
    else:
        got, ending = await drain_in_coroutine()
    await impl.finish(q)
    return {"delivered": got, "left": left, "then": ending}


def loop_ends_under_blocked_thread(impl: Any, hang: float) -> Dict[str, Any]:
    """A thread waits in get(); the coroutine that owns the queue returns and the loop closes.

    Returns how long the thread waited in all, from the start of its get().
    """
    box: Dict[str, Any] = {}
    ready = threading.Event()

    async def main() -> None:
        q = impl.make(0)
        get = impl.getter(q, timeout=hang)

        def wait() -> None:
            ready.set()
            box["started"] = time.perf_counter()
            box["ended"], box["outcome"] = outcome_of(get)

        box["thread"] = threading.Thread(target=wait, daemon=True)
        box["thread"].start()
        ready.wait(5)
        await asyncio.sleep(0.05)  # the thread is blocked in get() by now

    run(main())
    box["thread"].join(hang + 5)
    if "ended" not in box:
        return {"waited_ms": float("nan"), "outcome": "still blocked"}
    return {"waited_ms": (box["ended"] - box["started"]) * 1000, "outcome": box["outcome"]}


# --- the run ----------------------------------------------------------------------


def interleaved(
    rounds: int, measure: Callable[[Any], Any], order_offset: int = 0
) -> Dict[str, List[Any]]:
    """Each round measures both queues; who goes first alternates."""
    figures: Dict[str, List[Any]] = {impl.label: [] for impl in IMPLEMENTATIONS}
    for n in range(rounds):
        order = IMPLEMENTATIONS if (n + order_offset) % 2 == 0 else IMPLEMENTATIONS[::-1]
        for impl in order:
            figures[impl.label].append(measure(impl))
    return figures


def paired_ratio(figures: Dict[str, List[float]]) -> float:
    """Median over the rounds of recipe / janus, each pair measured back to back."""
    pairs = zip(figures["BridgeQueue"], figures["janus"])
    return statistics.median(recipe / peer for recipe, peer in pairs)


def measure_all(quick: bool, hang: float) -> Dict[str, Any]:
    items = 2_000 if quick else 20_000
    if not hasattr(janus.Queue, "aclose"):
        # janus < 1.2 schedules a task or an executor job per item (its changelog:
        # 1.2.0 "Remove sync notifiers for a major speedup"): fewer items keep the
        # run short; both queues still get the same number.
        items //= 5
    rounds = 2 if quick else 7
    samples = 100 if quick else 300
    latency_rounds = 2 if quick else 5
    gap = 0.0002
    load_before = load_average()
    started = time.perf_counter()
    print(
        f"BridgeQueue vs janus {JANUS_VERSION} - Python {platform.python_version()} - "
        f"{os.cpu_count()} CPUs, load {load_before}",
        flush=True,
    )

    results: List[Dict[str, Any]] = []
    ratios: Dict[str, float] = {}
    medians: Dict[str, Dict[str, float]] = {}

    throughput = {
        "thread_to_loop": ("thread -> loop", thread_to_loop),
        "loop_to_thread": ("loop -> thread", loop_to_thread),
        "both_ways": ("both ways at once", both_ways),
    }
    print(f"\nthroughput, items per second ({items:,} items, median of {rounds} rounds):")
    for key, (title, function) in throughput.items():
        for bound in BOUNDS:
            figures = interleaved(
                rounds,
                lambda impl: run(function(impl, bound, items)),  # noqa: B023
            )
            suffix = f"maxsize={bound}" if bound else "unbounded"
            per_impl = {label: statistics.median(values) for label, values in figures.items()}
            medians[f"{key} {suffix}"] = per_impl
            for label, value in per_impl.items():
                results.append(
                    {"name": f"{label}: {title}, {suffix}", "value": value, "unit": "per second"}
                )
            ratio = paired_ratio(figures)
            ratios[f"recipe_over_janus_{key}_throughput{'' if bound else '_unbounded'}"] = ratio
            print(
                f"{title + ', ' + suffix:>34}: BridgeQueue {per_impl['BridgeQueue']:10,.0f}"
                f"   janus {per_impl['janus']:10,.0f}   ratio {ratio:5.2f}",
                flush=True,
            )

    print(f"({time.perf_counter() - started:.1f} s so far)", flush=True)
    print(f"\nwake-up latency on an idle queue, µs ({samples} items, median of the rounds):")
    latency = {
        "thread_to_loop": ("thread put -> coroutine get", latency_thread_to_loop),
        "loop_to_thread": ("coroutine put -> thread get", latency_loop_to_thread),
    }
    for key, (title, function) in latency.items():

        def one(impl: Any) -> Tuple[float, float]:
            values = run(function(impl, samples, gap))  # noqa: B023
            return percentile(values, 0.5) * 1e6, percentile(values, 0.99) * 1e6

        pairs = interleaved(latency_rounds, one)
        p50 = {label: [pair[0] for pair in values] for label, values in pairs.items()}
        p99 = {label: [pair[1] for pair in values] for label, values in pairs.items()}
        for label in p50:
            for name, figures in (("p50", p50), ("p99", p99)):
                results.append(
                    {
                        "name": f"{label}: {title}, {name}",
                        "value": statistics.median(figures[label]),
                        "unit": "µs",
                    }
                )
        for name, figures in (("p50", p50), ("p99", p99)):
            recipe = statistics.median(figures["BridgeQueue"])
            peer = statistics.median(figures["janus"])
            ratio = paired_ratio(figures)
            ratios[f"recipe_over_janus_{key}_latency_{name}"] = ratio
            print(
                f"{title + ' ' + name:>34}: BridgeQueue {recipe:8.1f}   janus {peer:8.1f}"
                f"   ratio {ratio:5.2f}",
                flush=True,
            )

    print(f"({time.perf_counter() - started:.1f} s so far)", flush=True)
    print(f"\nbehaviour (every wait bounded by {hang:g} s):")
    behaviour: Dict[str, Dict[str, Any]] = {}

    def note(scenario: str, impl: Any, way: str, facts: Dict[str, Any]) -> None:
        label = f"{impl.label} {way}"
        behaviour.setdefault(scenario, {})[label] = facts
        shown = ", ".join(
            f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in facts.items()
        )
        print(f"{scenario + ' / ' + label:>60}: {shown}", flush=True)

    for impl in IMPLEMENTATIONS:
        for way, release in releasers(impl).items():
            facts = run(blocked_thread_released(impl, release, hang))
            note("thread blocked in get()", impl, way, facts)
            results.append(
                {
                    "name": f"{impl.label} {way}: thread blocked in get() released after"
                    + (" (never: timed out)" if facts["timed_out"] else ""),
                    "value": facts["released_ms"],
                    "unit": "ms",
                }
            )
            facts = run(blocked_coroutine_released(impl, release, hang))
            note("coroutine awaiting get", impl, way, facts)
            results.append(
                {
                    "name": f"{impl.label} {way}: coroutine awaiting get released after"
                    + (" (never: timed out)" if facts["timed_out"] else ""),
                    "value": facts["released_ms"],
                    "unit": "ms",
                }
            )
            for side in ("thread", "coroutine"):
                facts = run(items_left(impl, release, side))
                note(f"10 items left, {side} drains", impl, way, facts)
                results.append(
                    {
                        "name": f"{impl.label} {way}: of 10 items left, a {side} still gets",
                        "value": facts["delivered"],
                        "unit": "count",
                    }
                )
        facts = loop_ends_under_blocked_thread(impl, hang)
        note("loop ends, thread blocked in get()", impl, "(no release)", facts)
        results.append(
            {
                "name": f"{impl.label}: thread in get() when the loop ends, waits in all",
                "value": facts["waited_ms"],
                "unit": "ms",
            }
        )

    print(f"({time.perf_counter() - started:.1f} s in all)", flush=True)
    return {
        "benchmark": "BridgeQueue vs janus",
        "python": platform.python_version(),
        "description": __doc__.splitlines()[0],
        "peer": "janus",
        "peer_version": JANUS_VERSION,
        "recipe": "recipes.sync_bridge.BridgeQueue",
        "chapter_section": "Passing items between threads and coroutines",
        "quick": quick,
        "items": items,
        "rounds": rounds,
        "latency_samples": samples,
        "latency_rounds": latency_rounds,
        "hang_timeout_s": hang,
        "cpus": os.cpu_count(),
        "load_average_1min": load_before,
        "load_average_1min_end": load_average(),
        "results": results,
        "ratios": ratios,
        "medians": medians,
        "behaviour": behaviour,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller, faster run")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument(
        "--hang", type=float, default=None, help="timeout on the behaviour waits (seconds)"
    )
    args = parser.parse_args()
    hang = args.hang if args.hang is not None else (0.5 if args.quick else 1.0)
    data = measure_all(args.quick, hang)
    print()
    print_ratios(data["ratios"], width=52)
    write_results(args.json, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
