"""Behaviour, fault, bad-input and load tests for recipes/limiting.py."""

from __future__ import annotations

import asyncio
import functools
import gc
import inspect
import math
import random
import time
from typing import Any, Awaitable, Coroutine, List, Tuple

import pytest

from recipes.limiting import RateLimiter, bounded_gather, limit_concurrency

HANG = 3600.0  # generous timeout on the virtual clock: turns a hang into a failure


class Gauge:
    """Counts how many jobs are inside a block at once, and the peak."""

    def __init__(self) -> None:
        self.running = 0
        self.peak = 0

    def __enter__(self) -> Gauge:
        self.running += 1
        self.peak = max(self.peak, self.running)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.running -= 1


def _ms(rng: random.Random, most: float) -> float:
    # Whole milliseconds: the fake clock of looptime < 0.9 (Python 3.8-3.10)
    # never reaches a deadline that is not a whole number of microseconds.
    return round(rng.uniform(0.001, most), 3)


# --- limit_concurrency (the semaphore recipe) -------------------------------


@pytest.mark.parametrize("limit", [1, 7, 50])
def test_semaphore_recipe_peak_concurrency_equals_the_limit(run_virtual: Any, limit: int) -> None:
    gauge = Gauge()
    rng = random.Random(limit)

    @limit_concurrency(limit)
    async def job(n: int) -> int:
        with gauge:
            await asyncio.sleep(_ms(rng, 0.05))
        return n

    async def main() -> List[int]:
        return await asyncio.wait_for(asyncio.gather(*(job(n) for n in range(1000))), HANG)

    assert run_virtual(main) == list(range(1000))
    assert gauge.peak == limit
    assert gauge.running == 0


def test_semaphore_recipe_releases_on_errors_and_cancellation(run_virtual: Any) -> None:
    gauge = Gauge()

    @limit_concurrency(2)
    async def job(n: int) -> int:
        with gauge:
            await asyncio.sleep(0.1)
            if n % 3 == 0:
                raise ValueError(n)
        return n

    async def main() -> List[Any]:
        victims = [asyncio.create_task(job(n)) for n in (1, 2)]
        await asyncio.sleep(0.05)
        for victim in victims:
            victim.cancel()  # both hold permits right now
        outcomes = await asyncio.gather(*victims, return_exceptions=True)
        assert all(isinstance(o, asyncio.CancelledError) for o in outcomes)
        return await asyncio.wait_for(
            asyncio.gather(*(job(n) for n in range(12)), return_exceptions=True), HANG
        )

    results = run_virtual(main)
    assert [type(r).__name__ for r in results] == [
        "ValueError" if n % 3 == 0 else "int" for n in range(12)
    ]
    assert gauge.peak == 2 and gauge.running == 0


def test_semaphore_recipe_works_across_event_loops(run_virtual: Any) -> None:
    # Decorated outside any running loop, as at import time.
    gauge = Gauge()

    @limit_concurrency(3)
    async def job() -> None:
        with gauge:
            await asyncio.sleep(0.1)

    async def main() -> None:
        await asyncio.gather(*(job() for _ in range(10)))

    for _ in range(3):  # each run has its own loop; contention happens in every one
        run_virtual(main)
    assert gauge.peak == 3


def test_semaphore_recipe_serves_callers_in_arrival_order(run_virtual: Any) -> None:
    """Python 3.8's asyncio.Semaphore lets newcomers overtake a woken waiter."""
    order: List[str] = []
    later: List[asyncio.Future[None]] = []

    @limit_concurrency(1)
    async def call(name: str, then: str = "") -> None:
        order.append(name)
        await asyncio.sleep(0.1)
        for other in then:  # arrive while "B" is waiting, just as the permit frees
            later.append(asyncio.ensure_future(call(other)))

    async def main() -> None:
        first = asyncio.ensure_future(call("A", then="CDE"))
        await asyncio.sleep(0)
        await asyncio.gather(first, call("B"))
        await asyncio.wait_for(asyncio.gather(*later), HANG)

    run_virtual(main)
    assert order == ["A", "B", "C", "D", "E"]


def test_semaphore_recipe_a_caller_cannot_jump_the_queue_by_calling_again(
    run_virtual: Any,
) -> None:
    order: List[str] = []

    @limit_concurrency(1)
    async def call(name: str) -> None:
        order.append(name)
        await asyncio.sleep(0.1)

    async def twice() -> None:
        await call("A")
        await call("C")  # asks again in the step that released the permit

    async def main() -> None:
        first = asyncio.ensure_future(twice())
        await asyncio.sleep(0)
        await asyncio.gather(first, call("B"))

    run_virtual(main)
    assert order == ["A", "B", "C"]


def test_semaphore_recipe_cancelled_waiter_passes_the_permit_on(run_virtual: Any) -> None:
    gauge = Gauge()
    order: List[str] = []
    waiters: List[asyncio.Future[None]] = []

    @limit_concurrency(1)
    async def call(name: str) -> None:
        with gauge:
            order.append(name)
            await asyncio.sleep(0.1)
            if name == "A":
                # "B" is cancelled in the step after A's permit is handed to it,
                # before it can run.
                asyncio.get_running_loop().call_soon(waiters[0].cancel)

    async def main() -> None:
        holder = asyncio.ensure_future(call("A"))
        await asyncio.sleep(0)
        waiters.extend(asyncio.ensure_future(call(name)) for name in "BCD")
        await asyncio.sleep(0.01)
        waiters[1].cancel()  # "C" gives up while waiting: it loses its place
        await asyncio.wait([holder, *waiters], timeout=HANG)
        assert [w.cancelled() for w in waiters] == [True, True, False]

    run_virtual(main)
    assert order == ["A", "D"]
    assert gauge.peak == 1 and gauge.running == 0


def test_semaphore_recipe_keeps_the_function_metadata() -> None:
    async def documented(x: int) -> int:
        """Docstring survives."""
        return x

    limited = limit_concurrency(1)(documented)
    assert limited.__name__ == "documented"
    assert limited.__doc__ == "Docstring survives."
    assert inspect.iscoroutinefunction(limited)


@pytest.mark.parametrize("trigger", ["cancel", "job failure"])
def test_a_cancel_during_the_cleanup_wait_still_awaits_every_job(
    run_virtual: Any, trigger: str
) -> None:
    """A second cancel while bounded_gather waits for the jobs' cleanup."""

    async def main() -> Any:
        cleaned: List[int] = []

        async def job(n: int) -> int:
            try:
                await asyncio.sleep(1 if n == 0 and trigger == "job failure" else HANG)
                raise ValueError(n)
            finally:
                if n or trigger == "cancel":
                    await asyncio.sleep(1)  # a slow asynchronous cleanup
                    cleaned.append(n)

        task = asyncio.create_task(bounded_gather(*(job(n) for n in range(10)), limit=4))
        await asyncio.sleep(1)  # job 0 fails now, or:
        if trigger == "cancel":
            task.cancel()
        await asyncio.sleep(0.5)  # the jobs are in their cleanup
        task.cancel()
        cleaned_when_done: List[List[int]] = []
        task.add_done_callback(lambda _: cleaned_when_done.append(sorted(cleaned)))
        await asyncio.wait([task], timeout=HANG)
        await asyncio.sleep(2)  # let stray workers finish, so the assertion reports
        return task.cancelled(), cleaned_when_done

    expected = [0, 1, 2, 3] if trigger == "cancel" else [1, 2, 3]
    # The cancellation wins over the job's error: the caller is being cancelled.
    assert run_virtual(main) == (True, [expected])


@pytest.mark.parametrize(
    ("limit", "error", "message"),
    [
        (0, ValueError, "limit must be >= 1, got 0"),
        (-5, ValueError, "limit must be >= 1, got -5"),
        (2.0, TypeError, "limit must be an int"),
        ("3", TypeError, "limit must be an int"),
        (True, TypeError, "limit must be an int"),
    ],
)
def test_semaphore_recipe_bad_limit(limit: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        limit_concurrency(limit)


# --- bounded_gather ---------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 10, 64])
@pytest.mark.parametrize("kind", ["coroutines", "factories"])
def test_bounded_gather_peak_equals_limit_and_order_is_kept(
    run_virtual: Any, limit: int, kind: str
) -> None:
    gauge = Gauge()
    rng = random.Random(limit)
    durations = [_ms(rng, 0.05) for _ in range(1000)]

    async def job(n: int) -> int:
        with gauge:
            await asyncio.sleep(durations[n])
        return n * n

    async def main() -> List[int]:
        if kind == "coroutines":
            jobs: List[Any] = [job(n) for n in range(1000)]
        else:
            jobs = [functools.partial(job, n) for n in range(1000)]
        return await asyncio.wait_for(bounded_gather(*jobs, limit=limit), HANG)

    assert run_virtual(main) == [n * n for n in range(1000)]
    assert gauge.peak == limit
    assert gauge.running == 0


def test_bounded_gather_creates_factory_coroutines_lazily(run_virtual: Any) -> None:
    created = 0
    finished = 0
    most_alive = 0

    async def job(n: int) -> int:
        nonlocal finished
        await asyncio.sleep(0.01)
        finished += 1
        return n

    def factory(n: int) -> Coroutine[Any, Any, int]:
        nonlocal created, most_alive
        created += 1
        most_alive = max(most_alive, created - finished)
        return job(n)

    async def main() -> List[int]:
        jobs = [functools.partial(factory, n) for n in range(10_000)]
        return await asyncio.wait_for(bounded_gather(*jobs, limit=8), HANG)

    assert run_virtual(main) == list(range(10_000))
    assert most_alive == 8  # never more coroutines than workers


def test_bounded_gather_accepts_other_awaitables(run_virtual: Any) -> None:
    async def main() -> List[Any]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        loop.call_later(0.1, future.set_result, "future")

        async def coro() -> str:
            return "coroutine"

        return await bounded_gather(future, coro(), lambda: coro(), limit=2)

    assert run_virtual(main) == ["future", "coroutine", "coroutine"]


def test_bounded_gather_with_no_jobs(run_virtual: Any) -> None:
    async def main() -> List[Any]:
        return await bounded_gather(limit=3)

    assert run_virtual(main) == []


def test_bounded_gather_failure_cancels_in_flight_and_closes_the_rest(run_virtual: Any) -> None:
    cleaned: List[int] = []
    started: List[int] = []

    async def job(n: int) -> int:
        started.append(n)
        try:
            await asyncio.sleep(0.1 if n == 3 else 10)
            if n == 3:
                raise ConnectionError("job 3 failed")
            return n
        finally:
            cleaned.append(n)

    coroutines = [job(n) for n in range(20)]

    async def main() -> None:
        with pytest.raises(ConnectionError, match="job 3 failed"):
            await asyncio.wait_for(bounded_gather(*coroutines, limit=4), HANG)

    run_virtual(main)
    assert started == [0, 1, 2, 3]  # nothing after the failure was started
    assert sorted(cleaned) == [0, 1, 2, 3]  # the in-flight jobs ran their cleanup
    # every coroutine is finished: closed, not left to warn "never awaited"
    assert all(inspect.getcoroutinestate(c) == inspect.CORO_CLOSED for c in coroutines)


def test_bounded_gather_return_exceptions_keeps_going(run_virtual: Any) -> None:
    async def job(n: int) -> int:
        await asyncio.sleep(0.01 * (n % 4))
        if n % 5 == 0:
            raise ValueError(n)
        return n

    async def main() -> List[Any]:
        return await bounded_gather(*(job(n) for n in range(30)), limit=3, return_exceptions=True)

    results = run_virtual(main)
    for n, result in enumerate(results):
        if n % 5 == 0:
            assert isinstance(result, ValueError) and result.args == (n,)
        else:
            assert result == n


def test_bounded_gather_factory_errors_count_as_job_errors(run_virtual: Any) -> None:
    def broken_factory() -> Awaitable[int]:
        raise KeyError("no such job")

    async def ok() -> int:
        return 1

    async def main() -> List[Any]:
        return await bounded_gather(ok, broken_factory, lambda: 5, limit=2, return_exceptions=True)  # type: ignore[arg-type]

    first, second, third = run_virtual(main)
    assert first == 1
    assert isinstance(second, KeyError)
    assert isinstance(third, TypeError)  # 5 cannot be awaited


def test_cancelling_bounded_gather_cancels_jobs_and_leaves_no_tasks(run_virtual: Any) -> None:
    cleaned: List[int] = []

    async def job(n: int) -> int:
        try:
            await asyncio.sleep(HANG)
        finally:
            cleaned.append(n)
        return n

    coroutines = [job(n) for n in range(10)]

    async def main() -> None:
        task = asyncio.create_task(bounded_gather(*coroutines, limit=3))
        await asyncio.sleep(1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run_virtual(main)  # fails if a worker task is still running
    assert sorted(cleaned) == [0, 1, 2]
    assert all(inspect.getcoroutinestate(c) == inspect.CORO_CLOSED for c in coroutines)


@pytest.mark.parametrize("return_exceptions", [True, False])
@pytest.mark.parametrize("behaviour", ["raises in finally", "converts", "swallows"])
def test_a_job_that_turns_the_cancellation_into_an_error_starts_no_further_job(
    run_virtual: Any, behaviour: str, return_exceptions: bool
) -> None:
    """Every version: bounded_gather marks the workers it cancels."""
    started: List[int] = []

    async def job(n: int) -> int:
        started.append(n)
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            if behaviour == "converts":
                raise OSError(f"goodbye {n} failed") from None
            if behaviour == "swallows":
                return n
            raise
        finally:
            if behaviour == "raises in finally":
                raise OSError(f"goodbye {n} failed")
        return n

    async def main() -> Any:
        jobs = (job(n) for n in range(6))
        task = asyncio.create_task(
            bounded_gather(*jobs, limit=2, return_exceptions=return_exceptions)
        )
        await asyncio.sleep(1)
        task.cancel()
        await asyncio.wait([task], timeout=HANG)
        return task.cancelled()

    assert run_virtual(main) is True
    assert started == [0, 1]  # no job started after the cancellation


@pytest.mark.parametrize(
    ("limit", "error", "message"),
    [
        (0, ValueError, "limit must be >= 1, got 0"),
        (-1, ValueError, "limit must be >= 1, got -1"),
        (None, TypeError, "limit must be an int"),
        (1.5, TypeError, "limit must be an int"),
    ],
)
def test_bounded_gather_bad_limit_closes_the_coroutines(
    run_virtual: Any, limit: Any, error: type, message: str
) -> None:
    async def job() -> None:
        pass

    coroutines = [job(), job()]

    async def main() -> None:
        with pytest.raises(error, match=message):
            await bounded_gather(*coroutines, limit=limit)

    run_virtual(main)
    assert all(inspect.getcoroutinestate(c) == inspect.CORO_CLOSED for c in coroutines)
    gc.collect()  # a coroutine left unclosed would warn "never awaited" (an error here)


def test_bounded_gather_rejects_non_awaitables_before_starting(run_virtual: Any) -> None:
    started: List[str] = []

    async def job() -> None:
        started.append("job")

    first = job()

    async def main() -> None:
        with pytest.raises(TypeError, match="got 42"):
            await bounded_gather(first, 42, limit=2)  # type: ignore[call-overload]

    run_virtual(main)
    assert started == []
    assert inspect.getcoroutinestate(first) == inspect.CORO_CLOSED


# --- RateLimiter ------------------------------------------------------------


def _max_in_window(times: List[float], window: float) -> int:
    """Most timestamps in any closed window of *window* seconds (times sorted)."""
    best = 0
    left = 0
    for right, t in enumerate(times):
        while t - times[left] > window + 1e-9:
            left += 1
        best = max(best, right - left + 1)
    return best


def _assert_never_exceeds(times: List[float], rate: float, burst: int) -> None:
    """Sliding-window check over all acquisition timestamps.

    Every window is checked that starts and ends at an acquisition (the
    worst windows do): n acquisitions must not be packed into less than
    (n - burst) / rate seconds.
    """
    times = sorted(times)
    for i in range(len(times)):
        for j in range(i + burst, len(times)):
            count = j - i + 1
            assert times[j] - times[i] >= (count - burst) / rate - 1e-9, (
                f"{count} acquisitions within {times[j] - times[i]:.6f} s "
                f"(rate {rate}/s, burst {burst})"
            )


@pytest.mark.parametrize(
    ("rate", "per", "burst"), [(10, 1, 1), (10, 1, 5), (3, 1, 2), (90, 60, 4)]
)
def test_rate_limiter_never_exceeds_its_rate_over_any_window(
    run_virtual: Any, rate: float, per: float, burst: int
) -> None:
    async def main() -> List[float]:
        loop = asyncio.get_running_loop()
        limiter = RateLimiter(rate, per=per, burst=burst)
        rng = random.Random(burst)
        stamps: List[float] = []

        async def client(calls: int) -> None:
            for _ in range(calls):
                # irregular demand: sometimes above the rate, sometimes idle
                await asyncio.sleep(_ms(rng, 1.0))
                async with limiter:
                    stamps.append(loop.time())

        await asyncio.wait_for(asyncio.gather(*(client(100) for _ in range(5))), HANG * 24)
        return stamps

    stamps = run_virtual(main)
    assert len(stamps) == 500
    _assert_never_exceeds(stamps, rate / per, burst)


def test_rate_limiter_allows_a_burst_after_idle_then_spaces_requests(run_virtual: Any) -> None:
    async def main() -> List[float]:
        loop = asyncio.get_running_loop()
        limiter = RateLimiter(rate=4, burst=3)
        await asyncio.sleep(10)  # long idle: the bucket is full, and stays capped at 3
        start = loop.time()
        stamps: List[float] = []
        for _ in range(6):
            await limiter.acquire()
            stamps.append(loop.time() - start)
        return stamps

    stamps = run_virtual(main)
    assert _max_in_window(stamps, 0.0) == 3
    assert [round(t, 6) for t in stamps] == [0.0, 0.0, 0.0, 0.25, 0.5, 0.75]


def test_rate_limiter_sustains_its_rate_under_constant_demand(run_virtual: Any) -> None:
    async def main() -> List[float]:
        loop = asyncio.get_running_loop()
        limiter = RateLimiter(rate=20, burst=3)
        start = loop.time()
        stamps: List[float] = []

        async def client() -> None:
            for _ in range(50):
                await limiter.acquire()
                stamps.append(loop.time() - start)

        await asyncio.wait_for(asyncio.gather(*(client() for _ in range(20))), HANG)
        return stamps

    stamps = run_virtual(main)
    assert len(stamps) == 1000
    _assert_never_exceeds(stamps, 20, 3)
    # on the virtual clock the schedule is exact: burst at 0, then one per 1/20 s
    expected_last = (1000 - 3) / 20
    assert math.isclose(max(stamps), expected_last, abs_tol=1e-5)


def test_rate_limiter_serves_waiters_first_come_first_served(run_virtual: Any) -> None:
    async def main() -> Tuple[List[int], List[int]]:
        limiter = RateLimiter(rate=5)
        requested: List[int] = []
        granted: List[int] = []

        async def call(n: int) -> None:
            await asyncio.sleep(n * 0.001)  # arrive in a known order
            requested.append(n)
            async with limiter:
                granted.append(n)

        await asyncio.wait_for(asyncio.gather(*(call(n) for n in range(40))), HANG)
        return requested, granted

    requested, granted = run_virtual(main)
    assert granted == requested == list(range(40))


def test_cancelled_waiter_takes_no_token(run_virtual: Any) -> None:
    async def main() -> List[float]:
        loop = asyncio.get_running_loop()
        limiter = RateLimiter(rate=2)
        start = loop.time()
        await limiter.acquire()  # t=0, bucket now empty; next token at 0.5
        impatient = asyncio.create_task(limiter.acquire())
        patient = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0.2)
        impatient.cancel()
        with pytest.raises(asyncio.CancelledError):
            await impatient
        await patient
        first = loop.time() - start
        await limiter.acquire()
        return [first, loop.time() - start]

    first, second = run_virtual(main)
    assert math.isclose(first, 0.5, abs_tol=1e-5)  # got the token the cancelled task gave up
    assert math.isclose(second, 1.0, abs_tol=1e-5)


def test_acquire_with_timeout_gives_up_cleanly(run_virtual: Any) -> None:
    async def main() -> bool:
        limiter = RateLimiter(rate=1)
        await limiter.acquire()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(limiter.acquire(), 0.3)
        await asyncio.wait_for(limiter.acquire(), 1.0)  # the token due at t=1 is still there
        return True

    assert run_virtual(main)


def test_try_acquire_never_waits_and_never_overtakes(run_virtual: Any) -> None:
    async def main() -> List[bool]:
        limiter = RateLimiter(rate=10, burst=2)
        results = [limiter.try_acquire(), limiter.try_acquire(), limiter.try_acquire()]
        waiter = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0.05)
        results.append(limiter.try_acquire())  # the waiter is first in line
        await waiter  # granted at t=0.1
        await asyncio.sleep(0.25)  # t=0.35: two tokens again
        results += [limiter.try_acquire(), limiter.try_acquire(), limiter.try_acquire()]
        return results

    assert run_virtual(main) == [True, True, False, False, True, True, False]


def test_try_acquire_does_not_overtake_a_waiter_the_lock_has_just_woken() -> None:
    """A late loop: when A is admitted, B waits and tokens are due.  A's try_acquire() must
    not take one ahead of B, although the lock is already free at that moment."""

    async def main() -> List[str]:
        limiter = RateLimiter(100, burst=5)
        for _ in range(5):
            await limiter.acquire()  # the bucket is empty
        order: List[str] = []

        async def first() -> None:
            await limiter.acquire()
            order.append("A")
            if limiter.try_acquire():
                order.append("A again, ahead of B")

        async def second() -> None:
            await limiter.acquire()
            order.append("B")

        tasks = [asyncio.ensure_future(first())]
        await asyncio.sleep(0)
        tasks.append(asyncio.ensure_future(second()))
        await asyncio.sleep(0)
        time.sleep(0.05)  # the loop is late: five tokens are due when A wakes
        await asyncio.gather(*tasks)
        return order

    assert asyncio.run(main()) == ["A", "B"]


def test_an_uncontended_acquire_takes_the_fast_path_and_keeps_count(run_virtual: Any) -> None:
    async def main() -> Tuple[float, float]:
        loop = asyncio.get_running_loop()
        limiter = RateLimiter(rate=10, burst=3)
        start = loop.time()
        for _ in range(3):
            await limiter.acquire()  # free tokens: no wait
        free = loop.time() - start
        await asyncio.gather(*(limiter.acquire() for _ in range(4)))  # then one per 0.1 s
        return free, loop.time() - start

    free, total = run_virtual(main)
    assert free == 0
    assert total == pytest.approx(0.4)


def test_rate_limiter_works_in_a_new_event_loop(run_virtual: Any) -> None:
    limiter = RateLimiter(rate=10)  # created outside any loop, as at import time

    async def main() -> int:
        await asyncio.gather(*(limiter.acquire() for _ in range(5)))
        return 5

    assert run_virtual(main) == 5
    assert run_virtual(main) == 5  # no "bound to a different event loop"


def test_rate_limiter_properties() -> None:
    limiter = RateLimiter(120, per=60, burst=4)
    assert limiter.rate == 2.0
    assert limiter.burst == 4
    assert repr(limiter) == "<RateLimiter rate=2/s burst=4>"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"rate": 0}, ValueError, "rate must be a finite number > 0, got 0"),
        ({"rate": -1}, ValueError, "rate must be a finite number > 0, got -1"),
        ({"rate": float("nan")}, ValueError, "rate must be a finite number > 0"),
        ({"rate": float("inf")}, ValueError, "rate must be a finite number > 0"),
        ({"rate": "10"}, TypeError, "rate must be a number"),
        ({"rate": 5, "per": 0}, ValueError, "per must be a finite number > 0, got 0"),
        ({"rate": 5, "per": -60}, ValueError, "per must be a finite number > 0"),
        ({"rate": 5, "burst": 0}, ValueError, "burst must be >= 1, got 0"),
        ({"rate": 5, "burst": 2.5}, TypeError, "burst must be an int"),
    ],
)
def test_rate_limiter_bad_settings(kwargs: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        RateLimiter(**kwargs)
