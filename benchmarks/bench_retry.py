"""Retrying: the cookbook's recipes against tenacity, the library a reader would pick.

    python benchmarks/bench_retry.py                # full run
    python benchmarks/bench_retry.py --quick        # a smoke run
    python benchmarks/bench_retry.py --json out.json

Real clock, one process (plus a local aiohttp server for part 6):

1. overhead per call on the success path: a bare ``await f()``, then
   :func:`recipes.errors.retry` and :func:`recipes.errors.retrying` against
   tenacity's ``AsyncRetrying(...)(f)`` and ``@tenacity.retry`` on an
   ``async def``, all with the same policy (3 attempts, jittered exponential
   backoff, retry ``OSError`` and ``asyncio.TimeoutError``, raise the last
   error); interleaved, the median of several rounds;
2. the same with exactly one failed attempt and a zero delay, so that the
   figure is the machinery and not the sleep;
3. cancellation: during a 10 s backoff (how long until the caller sees
   ``CancelledError``, and whether another attempt ran), and during an
   attempt whose cleanup raises a retryable error (does another attempt run,
   does the caller see ``CancelledError``?);
4. a fresh coroutine per attempt, and what each API does when given a
   coroutine object instead of a function;
5. jitter: the delays drawn and actually slept over 200 sequences of two
   retries (20 ms then 40 ms nominal), as ratios to the nominal delay;
6. what each retries by default, and what is raised when the attempts run out;
7. :func:`recipes.http_client.with_retries` against tenacity wrapping the
   same aiohttp request, against a local server that answers 503 twice per
   key, then 200.

The figures depend on the machine and its load; compare the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import aiohttp
import tenacity
from aiohttp import web
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_attempt,
    wait_fixed,
    wait_random_exponential,
)

from recipes.errors import DEFAULT_RETRY_ON, retry, retrying
from recipes.http_client import fetch_json, make_session, with_retries

from _common import print_ratios, serve_until_stdin_closes, server_process, write_results

TENACITY_VERSION = importlib.metadata.version("tenacity")


def tenacity_policy(**overrides: Any) -> Dict[str, Any]:
    """The recipe's default policy, spelt in tenacity's terms."""
    policy: Dict[str, Any] = {
        "stop": stop_after_attempt(3),
        "wait": wait_random_exponential(multiplier=0.1, max=10),
        "retry": retry_if_exception_type(DEFAULT_RETRY_ON),
        "reraise": True,
    }
    policy.update(overrides)
    return policy


# --- 1 and 2. overhead per call -------------------------------------------------


async def noop() -> int:
    return 1


def fails_every_other_call() -> Callable[[], Awaitable[int]]:
    """A coroutine function whose odd calls raise ConnectionResetError."""
    calls = 0

    async def flaky() -> int:
        nonlocal calls
        calls += 1
        if calls % 2:
            raise ConnectionResetError("try again")
        return 1

    return flaky


def success_variants() -> Dict[str, Callable[[], Awaitable[Any]]]:
    retrying_noop = retrying()(noop)
    shared_rng = random.Random()
    retryer = AsyncRetrying(**tenacity_policy())
    tenacity_noop = tenacity.retry(**tenacity_policy())(noop)
    return {
        "bare await": noop,
        "recipe retry()": lambda: retry(noop),
        "recipe @retrying": retrying_noop,
        "recipe retry(rng=shared Random)": lambda: retry(noop, rng=shared_rng),
        "tenacity AsyncRetrying()(f)": lambda: retryer(noop),
        "tenacity @retry": tenacity_noop,
    }


def one_retry_variants() -> Dict[str, Callable[[], Awaitable[Any]]]:
    zero = {"base_delay": 0.0}
    zero_wait = {"wait": wait_random_exponential(multiplier=0, max=10)}
    bare_f = fails_every_other_call()

    async def by_hand() -> int:
        try:
            return await bare_f()
        except DEFAULT_RETRY_ON:
            await asyncio.sleep(0)  # what both libraries do for a zero delay
            return await bare_f()

    recipe_f = fails_every_other_call()
    retrying_f = retrying(**zero)(fails_every_other_call())
    retryer = AsyncRetrying(**tenacity_policy(**zero_wait))
    retryer_f = fails_every_other_call()
    tenacity_f = tenacity.retry(**tenacity_policy(**zero_wait))(fails_every_other_call())
    return {
        "bare await": by_hand,
        "recipe retry()": lambda: retry(recipe_f, **zero),
        "recipe @retrying": retrying_f,
        "tenacity AsyncRetrying()(f)": lambda: retryer(retryer_f),
        "tenacity @retry": tenacity_f,
    }


async def interleaved(
    variants: Dict[str, Callable[[], Awaitable[Any]]], count: int, rounds: int
) -> Dict[str, float]:
    """Microseconds per call of each variant: the median of *rounds* rounds.

    Each round runs every variant for *count* calls, in an order that rotates
    from round to round, so that load on the machine falls on all of them.
    """
    names = list(variants)
    samples: Dict[str, List[float]] = {name: [] for name in names}
    for name in names:  # warm up
        for _ in range(100):
            await variants[name]()
    for turn in range(rounds):
        order = names[turn % len(names) :] + names[: turn % len(names)]
        for name in order:
            make = variants[name]
            started = time.perf_counter()
            for _ in range(count):
                await make()
            samples[name].append((time.perf_counter() - started) / count * 1e6)
    return {name: statistics.median(values) for name, values in samples.items()}


# --- 3. cancellation ------------------------------------------------------------


async def cancel_during_backoff(
    call: Callable[[Callable[[], Awaitable[Any]]], Awaitable[Any]],
) -> Tuple[float, int, bool]:
    """Cancel a call 50 ms into a 10 s backoff: (ms until the caller sees it, attempts, ok)."""
    attempts = 0

    async def fails() -> None:
        nonlocal attempts
        attempts += 1
        raise ConnectionResetError("down")

    task = asyncio.ensure_future(call(fails))
    await asyncio.sleep(0.05)
    started = time.perf_counter()
    task.cancel()
    try:
        await task
        cancelled = False
    except asyncio.CancelledError:
        cancelled = True
    except Exception:
        cancelled = False
    latency = (time.perf_counter() - started) * 1000
    await asyncio.sleep(0.02)  # would another attempt run?
    return latency, attempts, cancelled


async def cancel_during_attempt_with_failing_cleanup(
    call: Callable[[Callable[[], Awaitable[Any]]], Awaitable[Any]],
    error: Callable[[], Exception] = lambda: ConnectionResetError("closing failed"),
) -> Tuple[int, bool]:
    """Cancel an attempt whose ``finally`` raises a retryable error (made by *error*).

    Returns (attempts made, whether the caller saw CancelledError).  The second
    attempt, if any, returns at once.
    """
    attempts = 0

    async def hangs_then_answers() -> str:
        nonlocal attempts
        attempts += 1
        if attempts > 1:
            return "answered after the caller was cancelled"
        try:
            await asyncio.sleep(10)
        finally:
            raise error()
        return "unreachable"  # pragma: no cover

    task = asyncio.ensure_future(call(hangs_then_answers))
    await asyncio.sleep(0.05)
    task.cancel()
    try:
        await task
        saw_cancel = False
    except asyncio.CancelledError:
        saw_cancel = True
    except Exception:
        saw_cancel = False
    return attempts, saw_cancel


async def cancellation(repeats: int) -> Dict[str, float]:
    def recipe(f: Callable[[], Awaitable[Any]]) -> Awaitable[Any]:
        return retry(f, attempts=3, base_delay=10.0, max_delay=10.0, jitter=False)

    def tenacity_call(f: Callable[[], Awaitable[Any]]) -> Awaitable[Any]:
        return AsyncRetrying(**tenacity_policy(wait=wait_fixed(10)))(f)

    def recipe_zero(f: Callable[[], Awaitable[Any]]) -> Awaitable[Any]:
        return retry(f, attempts=3, base_delay=0.0)

    def tenacity_zero(f: Callable[[], Awaitable[Any]]) -> Awaitable[Any]:
        return AsyncRetrying(**tenacity_policy(wait=wait_fixed(0)))(f)

    figures: Dict[str, float] = {}
    for label, call in (("recipe", recipe), ("tenacity", tenacity_call)):
        runs = [await cancel_during_backoff(call) for _ in range(repeats)]
        figures[f"{label} cancel latency"] = statistics.median(r[0] for r in runs)
        figures[f"{label} attempts after cancel"] = max(r[1] for r in runs) - 1
        figures[f"{label} cancelled"] = float(all(r[2] for r in runs))

    def recipe_timeout(f: Callable[[], Awaitable[Any]]) -> Awaitable[Any]:
        return retry(f, attempts=3, base_delay=0.0, timeout=60.0)

    def recipe_http(f: Callable[[], Awaitable[Any]]) -> Awaitable[Any]:
        return with_retries(f, attempts=3, base_delay=0.0)

    for label, call, error in (
        ("recipe", recipe_zero, ConnectionResetError),
        ("recipe with timeout=", recipe_timeout, ConnectionResetError),
        ("with_retries", recipe_http, aiohttp.ServerDisconnectedError),
        ("tenacity", tenacity_zero, ConnectionResetError),
    ):
        attempts, saw_cancel = await cancel_during_attempt_with_failing_cleanup(call, error)
        figures[f"{label} cleanup error: attempts after cancel"] = attempts - 1
        figures[f"{label} cleanup error: cancelled"] = float(saw_cancel)
    return figures


# --- 4. a fresh coroutine per attempt ---------------------------------------------


async def outcome(aw: Awaitable[Any]) -> str:
    """The name of what awaiting *aw* raised, or "returned"."""
    try:
        await aw
    except BaseException as exc:  # KeyboardInterrupt is one of the cases
        return type(exc).__name__
    return "returned"


async def fresh_coroutines() -> Tuple[Dict[str, float], Dict[str, str]]:
    counts: Dict[str, float] = {}
    outcomes: Dict[str, str] = {}
    calls = 0

    async def down() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionResetError("down")

    zero_wait = {"wait": wait_fixed(0)}
    as_factory: Dict[str, Callable[[], Awaitable[Any]]] = {
        "recipe retry(f)": lambda: retry(down, base_delay=0.0),
        "recipe @retrying": retrying(base_delay=0.0)(down),
        "tenacity AsyncRetrying()(f)": lambda: AsyncRetrying(**tenacity_policy(**zero_wait))(down),
        "tenacity @retry": tenacity.retry(**tenacity_policy(**zero_wait))(down),
    }
    for name, make in as_factory.items():
        calls = 0
        outcomes[f"{name}, 3 attempts"] = await outcome(make())
        counts[f"{name}: calls for 3 attempts"] = calls

    # The classic mistake: one coroutine object, handed over instead of a function.
    calls = 0
    outcomes["recipe retry(coroutine object)"] = await outcome(
        retry(down(), base_delay=0.0)  # type: ignore[arg-type]
    )
    counts["recipe retry(coroutine object): bodies run"] = calls
    calls = 0
    coro = down()
    outcomes["tenacity AsyncRetrying(stop=3 attempts)(coroutine object)"] = await outcome(
        AsyncRetrying(stop=stop_after_attempt(3))(coro)  # type: ignore[arg-type]
    )
    coro.close()
    counts["tenacity AsyncRetrying(stop=3 attempts)(coroutine object): bodies run"] = calls

    # tenacity's other documented form, a loop of attempts, awaiting one object
    # (tenacity's default retry: any Exception).
    calls = 0
    coro = down()
    attempts_made = 0

    async def loop_over_attempts() -> None:
        nonlocal attempts_made
        async for attempt in AsyncRetrying(stop=stop_after_attempt(3)):
            with attempt:
                attempts_made += 1
                await coro

    outcomes["tenacity async for + one coroutine object"] = await outcome(loop_over_attempts())
    counts["tenacity async for + one coroutine object: bodies run"] = calls
    counts["tenacity async for + one coroutine object: attempts"] = attempts_made
    return counts, outcomes


# --- 5. jitter --------------------------------------------------------------------


async def jitter(sequences: int, base: float) -> Dict[str, Dict[str, float]]:
    """Delays drawn and slept over *sequences* calls that fail twice, then succeed.

    Both APIs run at once, ten sequences of each at a time, so that the event
    loop's lateness falls on both.
    Returns, per API, the min/mean/max of drawn/nominal and slept/nominal.
    """
    drawn: Dict[str, List[float]] = {"recipe": [], "tenacity": []}
    slept: Dict[str, List[float]] = {"recipe": [], "tenacity": []}

    def two_failures(label: str) -> Callable[[], Awaitable[str]]:
        calls = 0
        failed_at = 0.0

        async def flaky() -> str:
            nonlocal calls, failed_at
            now = time.perf_counter()
            if calls:
                nominal = base * 2 ** (calls - 1)
                slept[label].append((now - failed_at) / nominal)
            calls += 1
            if calls <= 2:
                failed_at = time.perf_counter()
                raise ConnectionResetError("try again")
            return "ok"

        return flaky

    def on_retry(attempt: int, error: Exception, delay: float) -> None:
        drawn["recipe"].append(delay / (base * 2 ** (attempt - 1)))

    def before_sleep(state: tenacity.RetryCallState) -> None:
        assert state.next_action is not None
        nominal = base * 2 ** (state.attempt_number - 1)
        drawn["tenacity"].append(state.next_action.sleep / nominal)

    retryer = AsyncRetrying(
        **tenacity_policy(
            wait=wait_random_exponential(multiplier=base, max=10), before_sleep=before_sleep
        )
    )
    for start in range(0, sequences, 10):  # 10 of each at a time: the loop keeps up
        calls: List[Awaitable[Any]] = []
        for _ in range(start, min(sequences, start + 10)):
            calls.append(retry(two_failures("recipe"), base_delay=base, on_retry=on_retry))
            calls.append(retryer(two_failures("tenacity")))
        await asyncio.gather(*calls)

    def spread(values: List[float]) -> Dict[str, float]:
        return {"min": min(values), "mean": statistics.mean(values), "max": max(values)}

    return {
        f"{label} {kind}": spread(values[label])
        for kind, values in (("drawn", drawn), ("slept", slept))
        for label in ("recipe", "tenacity")
    }


# --- 6. defaults --------------------------------------------------------------------


async def defaults() -> Tuple[Dict[str, float], Dict[str, str]]:
    """Calls made with each API's defaults, for a function that fails 5 times, then returns."""
    counts: Dict[str, float] = {}
    outcomes: Dict[str, str] = {}
    kinds: List[Callable[[], BaseException]] = [
        lambda: ConnectionResetError("reset"),
        lambda: asyncio.TimeoutError(),
        lambda: ValueError("bad input"),
        lambda: RuntimeError("bug"),
        lambda: asyncio.CancelledError(),
        lambda: KeyboardInterrupt(),
    ]
    for kind in kinds:
        name = type(kind()).__name__
        for label in ("recipe", "tenacity"):
            calls = 0

            async def fails_five_times(kind: Callable[[], BaseException] = kind) -> str:
                nonlocal calls
                calls += 1
                if calls <= 5:
                    raise kind()
                return "ok"

            if label == "recipe":
                aw = retry(fails_five_times)
            else:
                aw = tenacity.retry(fails_five_times)()
            outcomes[f"{label} default, {name}"] = await outcome(aw)
            counts[f"{label} default, {name}: calls"] = calls

    # When the attempts run out, with the policy otherwise left alone.
    async def down() -> None:
        raise ConnectionResetError("down")

    outcomes["recipe, attempts run out"] = await outcome(retry(down, base_delay=0.0))
    outcomes["tenacity stop_after_attempt(3), attempts run out"] = await outcome(
        AsyncRetrying(stop=stop_after_attempt(3))(down)
    )
    return counts, outcomes


# --- 7. HTTP: with_retries against tenacity around aiohttp --------------------------


def serve() -> None:
    """``--serve``: answer /flaky?key=K with 503 twice per key, then 200; /ok with 200."""
    seen: Dict[str, int] = {}

    async def flaky(request: web.Request) -> web.Response:
        key = request.query["key"]
        seen[key] = seen.get(key, 0) + 1
        if seen[key] <= 2:
            return web.json_response({"error": "busy"}, status=503)
        return web.json_response({"key": key, "attempts": seen[key]})

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/flaky", flaky)
    app.router.add_get("/ok", ok)
    asyncio.run(serve_until_stdin_closes(app))


def http_is_transient(error: BaseException) -> bool:
    """What with_retries retries, as a tenacity predicate."""
    if isinstance(error, aiohttp.ClientResponseError):
        return error.status in (500, 502, 503, 504)
    return isinstance(
        error, (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, asyncio.TimeoutError)
    )


async def http(base_url: str, count: int, rounds: int) -> Dict[str, float]:
    """Milliseconds per call: a plain request, with_retries and tenacity; /ok and /flaky."""
    retryer = AsyncRetrying(
        stop=stop_after_attempt(4),
        wait=wait_random_exponential(multiplier=0, max=10),
        retry=retry_if_exception(http_is_transient),
        reraise=True,
    )
    keys = iter(range(10**9))
    async with make_session() as session:

        def flaky_url() -> str:
            return f"{base_url}/flaky?key={next(keys)}"

        async def recipe_flaky() -> Any:
            url = flaky_url()
            return await with_retries(lambda: fetch_json(session, url), base_delay=0.0)

        async def tenacity_flaky() -> Any:
            return await retryer(fetch_json, session, flaky_url())

        ok_url = f"{base_url}/ok"
        variants: Dict[str, Callable[[], Awaitable[Any]]] = {
            "plain request, 200": lambda: fetch_json(session, ok_url),
            "with_retries, 200": lambda: with_retries(lambda: fetch_json(session, ok_url)),
            "tenacity, 200": lambda: retryer(fetch_json, session, ok_url),
            "with_retries, 503 503 200": recipe_flaky,
            "tenacity, 503 503 200": tenacity_flaky,
        }
        assert (await recipe_flaky())["attempts"] == 3
        assert (await tenacity_flaky())["attempts"] == 3
        per_call = await interleaved(variants, count, rounds)
    return {name: value / 1000 for name, value in per_call.items()}  # µs -> ms


# --- the run ----------------------------------------------------------------------


def overhead_ratio(costs: Dict[str, float], recipe: str, peer: str) -> float:
    """The recipe's overhead over the bare await, as a fraction of the peer's."""
    return (costs[recipe] - costs["bare await"]) / (costs[peer] - costs["bare await"])


def measure(quick: bool) -> Dict[str, Any]:
    count = 500 if quick else 3_000
    rounds = 3 if quick else 9
    repeats = 3 if quick else 7
    sequences = 50 if quick else 200
    http_count = 20 if quick else 100
    http_rounds = 3 if quick else 5
    print(f"tenacity {TENACITY_VERSION}, Python {platform.python_version()}", flush=True)

    success = asyncio.run(interleaved(success_variants(), count, rounds))
    print(f"success path, us per call ({count:,} calls, median of {rounds}):", flush=True)
    for name, value in success.items():
        print(f"{name:>40}: {value:8.2f}", flush=True)
    one_retry = asyncio.run(interleaved(one_retry_variants(), count, rounds))
    print("one failed attempt, zero delay, us per call:", flush=True)
    for name, value in one_retry.items():
        print(f"{name:>40}: {value:8.2f}", flush=True)

    cancel = asyncio.run(cancellation(repeats))
    print(f"cancellation (median of {repeats} for the latency):", flush=True)
    for name, value in cancel.items():
        print(f"{name:>40}: {value:8.3f}", flush=True)

    fresh, fresh_outcomes = asyncio.run(fresh_coroutines())
    print("a fresh coroutine per attempt:", flush=True)
    for name, value in fresh.items():
        print(f"{name:>60}: {value:3.0f}", flush=True)
    for name, text in fresh_outcomes.items():
        print(f"{name:>60}: {text}", flush=True)

    spread = asyncio.run(jitter(sequences, 0.02))
    print(f"jitter, {sequences} sequences of 2 retries (20 ms, 40 ms nominal):", flush=True)
    for name, figures in spread.items():
        print(
            f"{name:>40}: min {figures['min']:.3f}  mean {figures['mean']:.3f}"
            f"  max {figures['max']:.3f} x nominal",
            flush=True,
        )

    default_counts, default_outcomes = asyncio.run(defaults())
    print("defaults, a function that fails 5 times then returns:", flush=True)
    for name, value in default_counts.items():
        label = name.replace(": calls", "")
        print(f"{name:>50}: {value:3.0f}  ({default_outcomes[label]})", flush=True)
    for name, text in default_outcomes.items():
        if "run out" in name:
            print(f"{name:>50}: raises {text}", flush=True)

    with server_process(__file__, "--serve") as server:
        http_costs = asyncio.run(http(server.url, http_count, http_rounds))
    print(f"HTTP, ms per call ({http_count} calls, median of {http_rounds}):", flush=True)
    for name, value in http_costs.items():
        print(f"{name:>40}: {value:8.3f}", flush=True)

    results = [
        {"name": f"success: {n}", "value": v, "unit": "µs per call"} for n, v in success.items()
    ]
    results += [
        {"name": f"one retry: {n}", "value": v, "unit": "µs per call"}
        for n, v in one_retry.items()
    ]
    for name, value in cancel.items():
        unit = "ms" if name.endswith("latency") else "count"
        results.append({"name": f"cancellation: {name}", "value": value, "unit": unit})
    results += [{"name": n, "value": v, "unit": "count"} for n, v in fresh.items()]
    results += [{"name": n, "value": v, "unit": "count"} for n, v in default_counts.items()]
    for name, figures in spread.items():
        for stat, value in figures.items():
            results.append(
                {"name": f"jitter {name} {stat}", "value": value, "unit": "x nominal delay"}
            )
    results += [
        {"name": f"http: {n}", "value": v, "unit": "ms per call"} for n, v in http_costs.items()
    ]

    ratios = {
        "recipe_over_tenacity_success_overhead": overhead_ratio(
            success, "recipe retry()", "tenacity AsyncRetrying()(f)"
        ),
        "recipe_decorator_over_tenacity_decorator_success_overhead": overhead_ratio(
            success, "recipe @retrying", "tenacity @retry"
        ),
        "recipe_over_tenacity_one_retry_overhead": overhead_ratio(
            one_retry, "recipe retry()", "tenacity AsyncRetrying()(f)"
        ),
        "recipe_decorator_over_tenacity_decorator_one_retry_overhead": overhead_ratio(
            one_retry, "recipe @retrying", "tenacity @retry"
        ),
        "recipe_cancel_latency_ms": cancel["recipe cancel latency"],
        "tenacity_cancel_latency_ms": cancel["tenacity cancel latency"],
        "recipe_attempts_after_cancel_in_backoff": cancel["recipe attempts after cancel"],
        "tenacity_attempts_after_cancel_in_backoff": cancel["tenacity attempts after cancel"],
        "recipe_attempts_after_cancel_with_failing_cleanup": cancel[
            "recipe cleanup error: attempts after cancel"
        ],
        "recipe_with_timeout_attempts_after_cancel_with_failing_cleanup": cancel[
            "recipe with timeout= cleanup error: attempts after cancel"
        ],
        "with_retries_attempts_after_cancel_with_failing_cleanup": cancel[
            "with_retries cleanup error: attempts after cancel"
        ],
        "tenacity_attempts_after_cancel_with_failing_cleanup": cancel[
            "tenacity cleanup error: attempts after cancel"
        ],
        "recipe_jitter_slept_min_over_nominal": spread["recipe slept"]["min"],
        "recipe_jitter_slept_max_over_nominal": spread["recipe slept"]["max"],
        "recipe_jitter_slept_mean_over_nominal": spread["recipe slept"]["mean"],
        "tenacity_jitter_slept_min_over_nominal": spread["tenacity slept"]["min"],
        "tenacity_jitter_slept_max_over_nominal": spread["tenacity slept"]["max"],
        "tenacity_jitter_slept_mean_over_nominal": spread["tenacity slept"]["mean"],
        "with_retries_over_tenacity_http_success": (
            http_costs["with_retries, 200"] / http_costs["tenacity, 200"]
        ),
        "with_retries_over_tenacity_http_two_503s": (
            http_costs["with_retries, 503 503 200"] / http_costs["tenacity, 503 503 200"]
        ),
    }
    return {
        "benchmark": "retry recipes against tenacity",
        "python": platform.python_version(),
        "description": __doc__.splitlines()[0],
        "tenacity_version": TENACITY_VERSION,
        "calls_per_round": count,
        "rounds": rounds,
        "jitter_sequences": sequences,
        "cpus": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "results": results,
        "behaviour": {**fresh_outcomes, **default_outcomes},
        "ratios": ratios,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller, faster run")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return 0
    data = measure(args.quick)
    ratios = data["ratios"]
    print_ratios({k: v for k, v in ratios.items() if "_over_" in k}, width=60, digits=3)
    print_ratios(
        {k: v for k, v in ratios.items() if "_over_" not in k}, width=60, digits=3, suffix=""
    )
    write_results(args.json, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
