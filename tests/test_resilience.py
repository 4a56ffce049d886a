"""Behaviour, fault, bad-input and load tests for recipes/resilience.py.

Everything runs on the event loop's clock: ``run_virtual`` gives each test a
fresh loop on the virtual clock (``COOKBOOK_REAL_CLOCK=1``: the real one) and
fails the test if it leaves a task running.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import math
import random
import sys
import warnings
from typing import Any, Awaitable, Dict, List, Optional, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import real_clock
from recipes.errors import retry
from recipes.resilience import (
    Bulkhead,
    BulkheadFullError,
    CircuitBreaker,
    CircuitOpenError,
    Deadline,
    DeadlineExceeded,
    current_deadline,
    deadline,
    hedge,
    remaining,
    within_deadline,
)
from tests.conftest import loop_errors, run_on_test_clock

HANG = 3600.0  # generous timeout on the virtual clock: turns a hang into a failure


def now() -> float:
    return asyncio.get_running_loop().time()


def assert_time(actual: float, expected: float) -> None:
    """Exact on the virtual clock; on the real clock only the lower bound (no speed checks)."""
    if real_clock():
        assert actual >= expected - 1e-3, (actual, expected)
    else:
        assert actual == pytest.approx(expected, abs=1e-6)


class Dependency:
    """A fake remote service: records every call; fails or answers after ``seconds``."""

    def __init__(self, seconds: float = 0.1, error: Optional[Exception] = None) -> None:
        self.seconds = seconds
        self.error = error
        self.calls = 0
        self.running = 0
        self.peak = 0
        self.cleanups = 0

    async def __call__(self, value: Any = "ok") -> Any:
        self.calls += 1
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await asyncio.sleep(self.seconds)
            if self.error is not None:
                raise self.error
            return value
        finally:
            self.running -= 1
            self.cleanups += 1


async def outcome(aw: Awaitable[Any]) -> Any:
    """The result, or the exception instance, of ``aw`` (never raises an Exception)."""
    try:
        return await aw
    except Exception as exc:
        return exc


def fail(breaker: CircuitBreaker, times: int = 1) -> Awaitable[None]:
    async def go() -> None:
        for _ in range(times):
            result = await outcome(breaker.call(Dependency(0.01, ConnectionResetError("x"))))
            assert isinstance(result, (ConnectionResetError, CircuitOpenError))

    return go()


# --- circuit breaker: transitions ---------------------------------------------


def test_breaker_opens_after_threshold_consecutive_failures(run_virtual: Any) -> None:
    async def main() -> None:
        breaker = CircuitBreaker(failure_threshold=3, reset_timeout=10)
        broken = Dependency(0.1, OSError("down"))
        for expected in (1, 2):
            assert isinstance(await outcome(breaker.call(broken)), OSError)
            assert (breaker.state, breaker.failures) == ("closed", expected)
        assert isinstance(await outcome(breaker.call(broken)), OSError)
        assert breaker.state == "open"
        assert broken.calls == 3
        refused = await outcome(breaker.call(broken))
        assert isinstance(refused, CircuitOpenError)
        assert broken.calls == 3  # not called while open
        assert refused.name == "circuit"
        assert_time(10 - refused.retry_after, 0)

    run_virtual(main)


def test_a_success_resets_the_consecutive_failure_count(run_virtual: Any) -> None:
    async def main() -> None:
        breaker = CircuitBreaker(failure_threshold=3)
        ok = Dependency(0.01)
        for _ in range(5):  # 2 failures, 1 success, repeated: never 3 in a row
            await fail(breaker, 2)
            assert await breaker.call(ok) == "ok"
            assert breaker.failures == 0
        assert breaker.state == "closed"

    run_virtual(main)


def test_open_turns_half_open_exactly_after_reset_timeout(run_virtual: Any) -> None:
    async def main() -> None:
        breaker = CircuitBreaker(failure_threshold=1, reset_timeout=5)
        await fail(breaker)
        opened = now()
        await asyncio.sleep(4.5)
        error = await outcome(breaker.call(Dependency()))
        assert isinstance(error, CircuitOpenError)
        assert "retry in 0.5 s" in str(error) or real_clock()
        assert error.retry_after is not None and 0 < error.retry_after <= 0.5
        await asyncio.sleep(opened + 5 - now())
        assert breaker.state == "half-open"
        assert breaker.retry_after() == 0.0

    run_virtual(main)


def test_half_open_trial_success_closes(run_virtual: Any) -> None:
    async def main() -> None:
        breaker = CircuitBreaker(failure_threshold=1, reset_timeout=1)
        await fail(breaker)
        await asyncio.sleep(1)
        assert breaker.state == "half-open"
        assert await breaker.call(Dependency(0.5), "fresh") == "fresh"
        assert (breaker.state, breaker.failures) == ("closed", 0)

    run_virtual(main)


def test_half_open_trial_failure_reopens_for_a_full_reset_timeout(run_virtual: Any) -> None:
    async def main() -> None:
        breaker = CircuitBreaker(failure_threshold=1, reset_timeout=2)
        await fail(breaker)
        await asyncio.sleep(2)
        trial = Dependency(0.5, ConnectionRefusedError("still down"))
        assert isinstance(await outcome(breaker.call(trial)), ConnectionRefusedError)
        reopened = now()
        assert breaker.state == "open"
        refused = await outcome(breaker.call(Dependency()))
        assert isinstance(refused, CircuitOpenError)
        assert_time(refused.retry_after, 2.0 - (now() - reopened))
        await asyncio.sleep(2)
        assert breaker.state == "half-open"

    run_virtual(main)


@pytest.mark.parametrize("trials", [1, 3])
def test_half_open_admits_only_the_configured_concurrent_trials(
    run_virtual: Any, trials: int
) -> None:
    async def main() -> None:
        breaker = CircuitBreaker(failure_threshold=1, reset_timeout=1, half_open_max_calls=trials)
        await fail(breaker)
        await asyncio.sleep(1)
        service = Dependency(0.5)
        results = await asyncio.gather(*(outcome(breaker.call(service)) for _ in range(10)))
        refused = [r for r in results if isinstance(r, CircuitOpenError)]
        assert service.calls == service.peak == trials
        assert len(refused) == 10 - trials
        assert all(r.retry_after is None for r in refused)
        assert "half-open" in str(refused[0])
        assert breaker.state == "closed"  # every trial succeeded

    run_virtual(main)


def test_half_open_with_several_trials_one_failure_reopens(run_virtual: Any) -> None:
    async def main() -> None:
        breaker = CircuitBreaker(failure_threshold=1, reset_timeout=1, half_open_max_calls=3)
        await fail(breaker)
        await asyncio.sleep(1)
        good = Dependency(0.2)
        bad = Dependency(0.1, OSError("flaky"))
        results = await asyncio.gather(
            outcome(breaker.call(good)), outcome(breaker.call(bad)), outcome(breaker.call(good))
        )
        assert results[0] == results[2] == "ok"
        assert isinstance(results[1], OSError)
        # The failure at 0.1 s reopened the circuit; the later successes were stale.
        assert breaker.state == "open"

    run_virtual(main)


def test_half_open_sequential_trials_close_after_enough_successes(run_virtual: Any) -> None:
    async def main() -> None:
        breaker = CircuitBreaker(failure_threshold=1, reset_timeout=1, half_open_max_calls=2)
        await fail(breaker)
        await asyncio.sleep(1)
        await breaker.call(Dependency(0.1))
        assert breaker.state == "half-open"
        await breaker.call(Dependency(0.1))
        assert breaker.state == "closed"

    run_virtual(main)


# --- circuit breaker: what counts -----------------------------------------------


def test_cancellation_never_counts_as_a_failure(run_virtual: Any) -> None:
    async def main() -> None:
        breaker = CircuitBreaker(failure_threshold=1)
        hanging = Dependency(HANG)
        tasks = [asyncio.create_task(breaker.call(hanging)) for _ in range(5)]
        await asyncio.sleep(0.1)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert (breaker.state, breaker.failures) == ("closed", 0)
        # A timeout around the call cancels it too: still not the dependency's failure.
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(breaker.call(hanging), 0.1)
        assert (breaker.state, breaker.failures) == ("closed", 0)

    run_virtual(main)


def test_a_cancelled_trial_gives_its_place_to_the_next_caller(run_virtual: Any) -> None:
    async def main() -> None:
        breaker = CircuitBreaker(failure_threshold=1, reset_timeout=1)
        await fail(breaker)
        await asyncio.sleep(1)
        trial = asyncio.create_task(breaker.call(Dependency(HANG)))
        await asyncio.sleep(0.1)
        assert isinstance(await outcome(breaker.call(Dependency())), CircuitOpenError)
        trial.cancel()
        await asyncio.gather(trial, return_exceptions=True)
        assert breaker.state == "half-open"
        assert await breaker.call(Dependency(0.1), "next") == "next"
        assert breaker.state == "closed"

    run_virtual(main)


def test_a_timeout_inside_the_call_counts(run_virtual: Any) -> None:
    async def main() -> None:
        breaker = CircuitBreaker(failure_threshold=2)

        async def call_with_timeout() -> Any:
            return await within_deadline(Dependency(HANG)(), timeout=0.5)

        for _ in range(2):
            assert isinstance(await outcome(breaker.call(call_with_timeout)), asyncio.TimeoutError)
        assert breaker.state == "open"

    run_virtual(main)


def test_exceptions_outside_failure_on_count_as_neither(run_virtual: Any) -> None:
    async def main() -> None:
        breaker = CircuitBreaker(failure_threshold=2, failure_on=(OSError, asyncio.TimeoutError))
        await fail(breaker)
        assert breaker.failures == 1
        for _ in range(3):
            assert isinstance(
                await outcome(breaker.call(Dependency(0.01, ValueError("bad input")))), ValueError
            )
        assert breaker.failures == 1  # not a failure, and not a success either
        await fail(breaker)
        assert breaker.state == "open"

    run_virtual(main)


def test_stragglers_of_a_burst_neither_count_twice_nor_close_the_circuit(
    run_virtual: Any,
) -> None:
    async def main() -> None:
        breaker = CircuitBreaker(failure_threshold=3, reset_timeout=60)
        failing = Dependency(0.1, OSError("down"))
        slow_success = Dependency(0.5)
        calls = [breaker.call(failing) for _ in range(10)] + [breaker.call(slow_success)]
        await asyncio.gather(*(outcome(c) for c in calls))
        assert failing.calls == 10
        assert breaker.state == "open"  # the success at 0.5 s came from a closed-era call

    run_virtual(main)


def test_a_new_event_loop_starts_closed() -> None:
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=HANG)

    async def open_it() -> str:
        await fail(breaker)
        return breaker.state

    async def check() -> str:
        return breaker.state

    assert run_on_test_clock(open_it) == "open"
    assert run_on_test_clock(check) == "closed"


def test_breaker_many_concurrent_calls_keep_consistent_counts(run_virtual: Any) -> None:
    async def main() -> None:
        rng = random.Random(7)
        breaker = CircuitBreaker(failure_threshold=50, reset_timeout=1, half_open_max_calls=5)

        async def mixed() -> Any:
            seconds = round(rng.uniform(0.001, 0.05), 3)
            error = OSError("x") if rng.random() < 0.5 else None
            return await outcome(breaker.call(Dependency(seconds, error)))

        for _ in range(20):
            await asyncio.gather(*(mixed() for _ in range(200)))
            assert breaker._trials >= 0 and breaker._successes <= 5
            await asyncio.sleep(0.3)

    run_virtual(main)


# --- circuit breaker: bad input -------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"failure_threshold": 0}, ValueError),
        ({"failure_threshold": 1.5}, TypeError),
        ({"failure_threshold": True}, TypeError),
        ({"reset_timeout": 0}, ValueError),
        ({"reset_timeout": math.inf}, ValueError),
        ({"reset_timeout": math.nan}, ValueError),
        ({"reset_timeout": "30"}, TypeError),
        ({"half_open_max_calls": 0}, ValueError),
        ({"failure_on": asyncio.CancelledError}, TypeError),
        ({"failure_on": (OSError, BaseException)}, TypeError),
        ({"failure_on": (OSError, KeyboardInterrupt)}, TypeError),
        ({"failure_on": "OSError"}, TypeError),
    ],
)
def test_breaker_bad_settings(kwargs: Dict[str, Any], error: type) -> None:
    with pytest.raises(error):
        CircuitBreaker(**kwargs)


def test_breaker_call_refuses_a_coroutine_and_closes_it(run_virtual: Any) -> None:
    async def main() -> None:
        breaker = CircuitBreaker()
        coro = Dependency()()
        with pytest.raises(TypeError, match="not a coroutine object"):
            await breaker.call(coro)  # type: ignore[arg-type]
        assert coro.cr_frame is None  # closed: no "never awaited" warning
        with pytest.raises(TypeError, match="takes a callable"):
            await breaker.call(42)  # type: ignore[arg-type]
        assert breaker.failures == 0

    run_virtual(main)


# --- circuit breaker: a property test against a model ---------------------------

Op = Tuple[str, float]
OPS = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["ok", "fail", "other"]), st.just(0.0)),
        st.tuples(st.just("wait"), st.sampled_from([0.5, 1.0, 2.0, 3.0])),
        st.tuples(st.just("burst"), st.integers(1, 4).map(float)),
    ),
    max_size=40,
)


class Model:
    """The breaker's specification, for sequential calls (plus bursts of trials)."""

    def __init__(self, threshold: int, reset: float, trials: int) -> None:
        self.threshold, self.reset, self.trials = threshold, reset, trials
        self.state, self.failures, self.opened, self.successes = "closed", 0, 0.0, 0

    def tick(self, t: float) -> None:
        if self.state == "open" and t >= self.opened + self.reset:
            self.state, self.successes = "half-open", 0

    def call(self, t: float, kind: str) -> str:
        """What the call returns: 'called' or 'refused'; updates the state."""
        self.tick(t)
        if self.state == "open":
            return "refused"
        if kind == "fail":
            if self.state == "half-open":
                self.state, self.opened = "open", t
            else:
                self.failures += 1
                if self.failures >= self.threshold:
                    self.state, self.opened, self.failures = "open", t, 0
        elif kind == "ok":
            if self.state == "half-open":
                self.successes += 1
                if self.successes >= self.trials:
                    self.state, self.failures = "closed", 0
            else:
                self.failures = 0
        return "called"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=OPS,
    threshold=st.integers(1, 4),
    trials=st.integers(1, 3),
)
def test_breaker_matches_its_model(ops: List[Op], threshold: int, trials: int) -> None:
    if real_clock():
        pytest.skip("the model compares exact loop times: virtual clock only")
    reset = 2.0

    async def main() -> None:
        breaker = CircuitBreaker(
            failure_threshold=threshold,
            reset_timeout=reset,
            half_open_max_calls=trials,
            failure_on=OSError,
        )
        model = Model(threshold, reset, trials)
        errors = {"ok": None, "fail": OSError("down"), "other": ValueError("bad")}
        for kind, arg in ops:
            if kind == "wait":
                await asyncio.sleep(arg)
            elif kind == "burst":
                # Concurrent calls in half-open: at most `trials` may pass.
                dependency = Dependency(0.1)
                model.tick(now())
                before = model.state
                await asyncio.gather(*(outcome(breaker.call(dependency)) for _ in range(int(arg))))
                if before == "half-open":
                    admitted = min(int(arg), trials - model.successes)
                    assert dependency.calls == admitted
                    for _ in range(admitted):
                        model.call(now(), "ok")
                elif before == "open":
                    assert dependency.calls == 0
                else:
                    assert dependency.calls == int(arg)
                    for _ in range(int(arg)):
                        model.call(now(), "ok")
            else:
                dependency = Dependency(0.0, errors[kind])
                expected = model.call(now(), kind)
                result = await outcome(breaker.call(dependency))
                assert (dependency.calls == 1) == (expected == "called"), (kind, result)
            model.tick(now())
            assert breaker.state == model.state
            if model.state == "closed":
                assert breaker.failures == model.failures

    run_on_test_clock(main)


# --- deadlines ----------------------------------------------------------------


def test_deadline_propagates_through_three_levels(run_virtual: Any) -> None:
    seen: List[Tuple[str, float]] = []

    async def level3() -> str:
        seen.append(("level3", remaining()))
        return await within_deadline(Dependency(0.2)("data"), timeout=5)

    async def level2() -> str:
        seen.append(("level2", remaining()))
        await asyncio.sleep(0.5)
        async with deadline(10) as inner:  # cannot extend the outer 2 s
            seen.append(("level2-inner", inner.remaining()))
            return await level3()

    async def level1() -> str:
        async with deadline(2) as outer:
            seen.append(("level1", remaining()))
            assert current_deadline() is outer
            await asyncio.sleep(0.3)
            result = await level2()
            assert current_deadline() is outer
        assert current_deadline() is None
        return result

    async def main() -> None:
        assert await level1() == "data"
        assert remaining() == math.inf

    run_virtual(main)
    names = [name for name, _ in seen]
    assert names == ["level1", "level2", "level2-inner", "level3"]
    if not real_clock():
        assert [left for _, left in seen] == pytest.approx([2.0, 1.7, 1.2, 1.2])


def test_a_nested_deadline_shortens(run_virtual: Any) -> None:
    async def main() -> None:
        async with deadline(10):
            start = now()
            with pytest.raises(DeadlineExceeded, match="deadline of 1 s exceeded"):
                async with deadline(1):
                    await asyncio.sleep(HANG)
            assert_time(now() - start, 1.0)
            assert 8.9 <= remaining() <= 9.0  # the outer one is back in force

    run_virtual(main)


def test_expiry_three_levels_down_cancels_everything_and_runs_cleanup(run_virtual: Any) -> None:
    events: List[str] = []

    async def level3() -> None:
        try:
            await asyncio.sleep(HANG)
        finally:
            events.append("level3 cleanup")

    async def level2() -> None:
        try:
            await level3()
        finally:
            events.append("level2 cleanup")

    async def level1() -> None:
        async with deadline(1.5):
            await level2()

    async def main() -> float:
        start = now()
        with pytest.raises(DeadlineExceeded) as info:
            await level1()
        assert isinstance(info.value, asyncio.TimeoutError)
        assert str(info.value) == "deadline of 1.5 s exceeded"
        return now() - start

    elapsed = run_virtual(main)
    assert events == ["level3 cleanup", "level2 cleanup"]
    assert_time(elapsed, 1.5)


def test_within_deadline_does_not_start_a_call_after_expiry(run_virtual: Any) -> None:
    service = Dependency(0.1)

    async def late() -> Any:
        await asyncio.sleep(2)
        return await within_deadline(service(), timeout=10)

    async def main() -> Any:
        async with deadline(1):
            task = asyncio.create_task(late())  # inherits the deadline
        return await outcome(task)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = run_virtual(main)
        gc.collect()
    assert isinstance(result, DeadlineExceeded)
    assert str(result) == "deadline exceeded before the call started"
    assert service.calls == 0


def test_within_deadline_in_a_task_that_inherited_the_deadline(run_virtual: Any) -> None:
    service = Dependency(HANG)

    async def main() -> Any:
        async with deadline(1):
            task = asyncio.create_task(within_deadline(service(), timeout=60))
        return await outcome(task)  # the block's own cancel does not reach the task

    result = run_virtual(main)
    assert isinstance(result, DeadlineExceeded)
    assert str(result) == "deadline exceeded during the call"
    assert service.cleanups == 1


def test_within_deadline_own_timeout_is_a_plain_timeout(run_virtual: Any) -> None:
    service = Dependency(HANG)

    async def main() -> Any:
        async with deadline(10):
            return await outcome(within_deadline(service(), timeout=0.5))

    result = run_virtual(main)
    assert isinstance(result, asyncio.TimeoutError)
    assert not isinstance(result, DeadlineExceeded)
    assert service.cleanups == 1


def test_within_deadline_without_deadline_or_timeout_just_awaits(run_virtual: Any) -> None:
    async def main() -> Any:
        return await within_deadline(Dependency(5)("slow but fine"))

    assert run_virtual(main) == "slow but fine"


def test_a_timeout_error_from_the_body_passes_through_unchanged(run_virtual: Any) -> None:
    async def main() -> None:
        mine = asyncio.TimeoutError("the body's own")
        with pytest.raises(asyncio.TimeoutError) as info:
            async with deadline(5):
                await asyncio.sleep(0.1)
                raise mine
        assert info.value is mine

    run_virtual(main)


def test_cancelling_the_block_from_outside_is_not_a_deadline(run_virtual: Any) -> None:
    async def guarded() -> None:
        async with deadline(5):
            await asyncio.sleep(HANG)

    async def main() -> None:
        task = asyncio.create_task(guarded())
        await asyncio.sleep(1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert current_deadline() is None

    run_virtual(main)


def test_deadline_zero_expires_at_the_first_await(run_virtual: Any) -> None:
    async def main() -> None:
        with pytest.raises(DeadlineExceeded):
            async with deadline(0):
                assert remaining() == 0
                await asyncio.sleep(1)

    run_virtual(main)


def test_deadline_object(run_virtual: Any) -> None:
    async def main() -> None:
        limit = Deadline(now() + 2)
        assert not limit.expired
        await asyncio.sleep(2)
        assert limit.expired and limit.remaining() == 0.0
        assert "Deadline when=" in repr(limit)

    run_virtual(main)


@pytest.mark.parametrize("seconds", [-1, math.nan, math.inf, "1", None, True])
def test_deadline_bad_input(seconds: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        deadline(seconds)


def test_within_deadline_bad_input_closes_the_coroutine(run_virtual: Any) -> None:
    async def main() -> None:
        coro = Dependency()()
        with pytest.raises(ValueError, match="timeout must be"):
            await within_deadline(coro, timeout=0)
        assert coro.cr_frame is None
        with pytest.raises(TypeError, match="takes an awaitable"):
            await within_deadline(42)  # type: ignore[arg-type]

    run_virtual(main)


def test_a_deadline_block_cannot_be_entered_twice(run_virtual: Any) -> None:
    async def main() -> None:
        scope = deadline(1)
        async with scope:
            pass
        with pytest.raises(RuntimeError, match="entered twice"):
            async with scope:
                pass

    run_virtual(main)


# --- hedging --------------------------------------------------------------------


class Replicas:
    """Attempt n takes ``latencies[n]`` seconds and then answers or raises ``outcomes[n]``."""

    def __init__(self, latencies: List[float], outcomes: Optional[List[Any]] = None) -> None:
        self.latencies = latencies
        self.outcomes = outcomes or [f"replica {n}" for n in range(len(latencies))]
        self.started: List[float] = []
        self.cancelled: List[int] = []
        self.finished: List[int] = []

    def __call__(self) -> Awaitable[Any]:
        return self._attempt(len(self.started))

    async def _attempt(self, n: int) -> Any:
        self.started.append(now())
        try:
            await asyncio.sleep(self.latencies[n])
        except asyncio.CancelledError:
            self.cancelled.append(n)
            await asyncio.sleep(0.01)  # a cleanup that must await
            self.finished.append(n)
            raise
        self.finished.append(n)
        result = self.outcomes[n]
        if isinstance(result, BaseException):
            raise result
        return result


def test_hedge_first_fast_makes_one_call(run_virtual: Any) -> None:
    replicas = Replicas([0.1, 0.1])

    async def main() -> Any:
        return await hedge(replicas, delay=0.5)

    assert run_virtual(main) == "replica 0"
    assert len(replicas.started) == 1


def test_hedge_first_slow_second_wins_and_loser_is_awaited(run_virtual: Any) -> None:
    replicas = Replicas([5.0, 0.2])

    async def main() -> Any:
        start = now()
        result = await hedge(replicas, delay=0.5)
        # The loser's cleanup ran before hedge() returned: nothing is left behind.
        assert replicas.cancelled == [0] and replicas.finished == [1, 0]
        assert len(asyncio.all_tasks()) == 1
        return result, [t - start for t in replicas.started]

    result, started = run_virtual(main)
    assert result == "replica 1"
    assert_time(started[1], 0.5)


def test_hedge_first_fails_before_delay_starts_the_next_at_once(run_virtual: Any) -> None:
    replicas = Replicas([0.1, 0.1], [ConnectionResetError("r0"), "replica 1"])

    async def main() -> Any:
        start = now()
        result = await hedge(replicas, delay=3)
        return result, [t - start for t in replicas.started]

    result, started = run_virtual(main)
    assert result == "replica 1"
    assert_time(started[1], 0.1)  # not 3


def test_hedge_both_fail_raises_the_last_error_and_leaves_nothing(run_virtual: Any) -> None:
    replicas = Replicas([2.0, 0.5], [OSError("r0"), OSError("r1")])

    async def main() -> Any:
        with loop_errors() as errors:
            result = await outcome(hedge(replicas, delay=1))
        assert errors == []
        return result

    result = run_virtual(main)
    assert isinstance(result, OSError) and str(result) == "r0"  # r1 failed at 1.5, r0 at 2.0
    assert replicas.finished == [1, 0]


def test_hedge_an_error_while_the_other_still_runs_waits_for_it(run_virtual: Any) -> None:
    replicas = Replicas([1.0, 0.2], ["replica 0", OSError("r1")])

    async def main() -> Any:
        return await hedge(replicas, delay=0.5)

    assert run_virtual(main) == "replica 0"


def test_hedge_cancelled_caller_cancels_and_awaits_every_attempt(run_virtual: Any) -> None:
    replicas = Replicas([HANG, HANG])

    async def main() -> None:
        task = asyncio.create_task(hedge(replicas, delay=0.5))
        await asyncio.sleep(1)
        assert len(replicas.started) == 2
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert sorted(replicas.cancelled) == [0, 1]
        assert sorted(replicas.finished) == [0, 1]  # cleanups done before it returned
        assert len(asyncio.all_tasks()) == 1

    run_virtual(main)


def test_hedge_cancelled_twice_during_cleanup_still_awaits_attempts(run_virtual: Any) -> None:
    replicas = Replicas([HANG, HANG])

    async def main() -> None:
        task = asyncio.create_task(hedge(replicas, delay=0.5))
        await asyncio.sleep(1)
        task.cancel()
        await asyncio.sleep(0.001)  # in the middle of the attempts' cleanup
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert sorted(replicas.finished) == [0, 1]

    run_virtual(main)


def test_hedge_loser_whose_cleanup_raises_is_retrieved(run_virtual: Any) -> None:
    async def bad_cleanup() -> str:
        try:
            await asyncio.sleep(HANG)
        finally:
            raise RuntimeError("cleanup failed")

    delays = iter([bad_cleanup, lambda: Dependency(0.1)("fast")])

    async def main() -> Any:
        with loop_errors() as errors:
            result = await hedge(lambda: next(delays)(), delay=0.5)
            gc.collect()
        assert errors == []
        return result

    assert run_virtual(main) == "fast"


def test_hedge_three_attempts_are_spaced_by_the_delay(run_virtual: Any) -> None:
    replicas = Replicas([HANG, HANG, 0.1])

    async def main() -> Any:
        start = now()
        result = await hedge(replicas, delay=0.4, attempts=3)
        return result, [t - start for t in replicas.started]

    result, started = run_virtual(main)
    assert result == "replica 2"
    for actual, expected in zip(started, [0.0, 0.4, 0.8]):
        assert_time(actual, expected)


def test_hedge_sees_the_callers_deadline(run_virtual: Any) -> None:
    async def attempt() -> float:
        return remaining()

    async def main() -> float:
        async with deadline(3):
            return await hedge(attempt, delay=1)

    assert 2.9 <= run_virtual(main) <= 3.0


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"delay": -1}, ValueError),
        ({"delay": "1"}, TypeError),
        ({"delay": 1, "attempts": 0}, ValueError),
    ],
)
def test_hedge_bad_input(run_virtual: Any, kwargs: Dict[str, Any], error: type) -> None:
    async def main() -> None:
        with pytest.raises(error):
            await hedge(Replicas([0.1]), **kwargs)

    run_virtual(main)


def test_hedge_refuses_a_coroutine(run_virtual: Any) -> None:
    async def main() -> None:
        coro = Dependency()()
        with pytest.raises(TypeError, match="hedge"):
            await hedge(coro, delay=1)  # type: ignore[arg-type]
        assert coro.cr_frame is None

    run_virtual(main)


# --- bulkheads ------------------------------------------------------------------


def test_bulkhead_isolation_slow_a_saturated_b_still_served(run_virtual: Any) -> None:
    async def main() -> None:
        a = Bulkhead(3, max_waiting=2, name="a")
        b = Bulkhead(3, max_waiting=None, name="b")
        slow_a = Dependency(HANG)
        fast_b = Dependency(0.1)
        stuck = [asyncio.create_task(outcome(a.call(slow_a))) for _ in range(5)]
        await asyncio.sleep(0.1)
        assert (a.running, a.waiting) == (3, 2)
        refused = await outcome(a.call(slow_a))
        assert isinstance(refused, BulkheadFullError)
        assert str(refused) == "bulkhead 'a' is full: 3 calls running, 2 waiting"
        start = now()
        results = await asyncio.wait_for(
            asyncio.gather(*(b.call(fast_b, n) for n in range(9))), HANG
        )
        assert results == list(range(9))
        assert_time(now() - start, 0.3)  # 9 calls, 3 at a time, none waiting behind A
        assert fast_b.peak == 3 and slow_a.calls == 3
        for task in stuck:
            task.cancel()
        await asyncio.gather(*stuck, return_exceptions=True)
        assert (a.running, a.waiting) == (0, 0)

    run_virtual(main)


def test_one_shared_limit_is_what_bulkheads_prevent(run_virtual: Any) -> None:
    """The same load through ONE shared limit: B's calls wait behind A's hanging ones."""

    async def main() -> None:
        shared = Bulkhead(3, max_waiting=None)
        slow_a = Dependency(HANG)
        stuck = [asyncio.create_task(shared.call(slow_a)) for _ in range(3)]
        await asyncio.sleep(0.1)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(shared.call(Dependency(0.1)), 10)
        for task in stuck:
            task.cancel()
        await asyncio.gather(*stuck, return_exceptions=True)

    run_virtual(main)


def test_bulkhead_waiters_are_served_in_order_and_never_exceed_the_limit(
    run_virtual: Any,
) -> None:
    async def main() -> None:
        pool = Bulkhead(4, max_waiting=None)
        order: List[int] = []
        rng = random.Random(3)
        service = Dependency(0)

        async def job(n: int) -> None:
            async with pool:
                order.append(n)
                service.seconds = round(rng.uniform(0.001, 0.02), 3)
                await service()

        await asyncio.wait_for(asyncio.gather(*(job(n) for n in range(500))), HANG)
        assert order == list(range(500))
        assert service.peak == 4
        assert (pool.running, pool.waiting) == (0, 0)

    run_virtual(main)


def test_bulkhead_wait_timeout_refuses_and_keeps_the_count(run_virtual: Any) -> None:
    async def main() -> None:
        pool = Bulkhead(1, max_waiting=3, wait_timeout=0.5, name="db")
        service = Dependency(2)
        results = await asyncio.gather(*(outcome(pool.call(service)) for _ in range(3)))
        assert results[0] == "ok"
        assert [str(r) for r in results[1:]] == [
            "bulkhead 'db' is full: no slot free after 0.5 s"
        ] * 2
        assert service.calls == 1
        assert (pool.running, pool.waiting) == (0, 0)
        assert await asyncio.wait_for(pool.call(Dependency(0.1), "again"), HANG) == "again"

    run_virtual(main)


def test_bulkhead_cancelled_waiter_leaves_the_queue(run_virtual: Any) -> None:
    async def main() -> None:
        pool = Bulkhead(1, max_waiting=1)
        holder = asyncio.create_task(pool.call(Dependency(1)))
        await asyncio.sleep(0.1)
        waiter = asyncio.create_task(pool.call(Dependency(0.1)))
        await asyncio.sleep(0.1)
        assert pool.waiting == 1
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        assert pool.waiting == 0
        # The queue has room again, and the slot comes back after the holder.
        assert await asyncio.wait_for(pool.call(Dependency(0.1), "mine"), HANG) == "mine"
        await holder
        assert (pool.running, pool.waiting) == (0, 0)

    run_virtual(main)


def test_bulkhead_slot_handed_over_at_cancellation_is_passed_on(run_virtual: Any) -> None:
    async def main() -> None:
        pool = Bulkhead(1, max_waiting=None)
        await pool.acquire()
        first = asyncio.create_task(pool.call(Dependency(0.1), "first"))
        second = asyncio.create_task(pool.call(Dependency(0.1), "second"))
        await asyncio.sleep(0.01)
        pool.release()  # hands the slot to `first`...
        first.cancel()  # ...which is cancelled before it runs
        assert await asyncio.wait_for(second, HANG) == "second"
        assert first.cancelled()
        assert (pool.running, pool.waiting) == (0, 0)

    run_virtual(main)


def test_bulkhead_released_too_often(run_virtual: Any) -> None:
    async def main() -> None:
        pool = Bulkhead(2, name="x")
        with pytest.raises(RuntimeError, match="released more often than acquired"):
            pool.release()
        assert "<Bulkhead 'x' 0/2 running, 0 waiting>" == repr(pool)

    run_virtual(main)


@pytest.mark.parametrize(
    "args, kwargs",
    [
        ((0,), {}),
        (("2",), {}),
        ((2,), {"max_waiting": -1}),
        ((2,), {"wait_timeout": 0}),
        ((2,), {"wait_timeout": math.nan}),
    ],
)
def test_bulkhead_bad_settings(args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> None:
    with pytest.raises((TypeError, ValueError)):
        Bulkhead(*args, **kwargs)


# --- combining them with retries -------------------------------------------------


def run_stack(
    *,
    callers: int,
    attempts: int,
    threshold: int,
    limit: int,
    max_waiting: int,
    reset_timeout: float,
    budget: float,
    retry_on: Any = (OSError, asyncio.TimeoutError),
    with_breaker: bool = True,
) -> Tuple[int, List[Any]]:
    """deadline -> retry -> breaker -> bulkhead -> a dead dependency; returns (calls, outcomes)."""
    backend = Dependency(0.1, ConnectionRefusedError("backend down"))

    async def main() -> List[Any]:
        breaker = CircuitBreaker(
            failure_threshold=threshold,
            reset_timeout=reset_timeout,
            failure_on=(OSError, asyncio.TimeoutError),
        )
        bulkhead = Bulkhead(limit, max_waiting=max_waiting, wait_timeout=1.0)

        async def attempt() -> Any:
            return await within_deadline(backend(), timeout=0.5)

        async def one_call() -> Any:
            if with_breaker:
                return await breaker.call(bulkhead.call, attempt)
            return await bulkhead.call(attempt)

        async def caller(n: int) -> Any:
            async with deadline(budget):
                return await retry(
                    one_call,
                    attempts=attempts,
                    base_delay=0.2,
                    retry_on=retry_on,
                    rng=random.Random(n),
                )

        return await asyncio.gather(*(outcome(caller(n)) for n in range(callers)))

    outcomes = run_on_test_clock(main)
    return backend.calls, outcomes


def test_the_stack_bounds_calls_to_a_failing_dependency() -> None:
    calls, outcomes = run_stack(
        callers=50,
        attempts=5,
        threshold=3,
        limit=4,
        max_waiting=4,
        reset_timeout=10,
        budget=5,
    )
    assert all(isinstance(o, (CircuitOpenError, BulkheadFullError)) for o in outcomes)
    assert calls <= 3 + 4 + 4 - 1  # failure_threshold + limit + max_waiting - 1
    assert calls < 50 * 5


def test_without_the_breaker_the_same_stack_hammers_the_dependency() -> None:
    """The control experiment: the bound above is the breaker's doing."""
    calls, _ = run_stack(
        callers=50,
        attempts=5,
        threshold=3,
        limit=4,
        max_waiting=4,
        reset_timeout=10,
        budget=5,
        with_breaker=False,
    )
    assert calls > 3 + 4 + 4 - 1


def test_even_retrying_circuit_open_errors_stays_bounded_by_trials() -> None:
    """A retry that (wrongly) retries CircuitOpenError only adds trial calls."""
    budget, reset = 20.0, 2.0
    calls, outcomes = run_stack(
        callers=30,
        attempts=50,
        threshold=3,
        limit=4,
        max_waiting=2,
        reset_timeout=reset,
        budget=budget,
        retry_on=(OSError, asyncio.TimeoutError, CircuitOpenError),
    )
    # Each half-open period lets one trial through, which fails and reopens.
    periods = math.ceil(budget / reset) + 1
    assert calls <= 3 + 4 + 2 - 1 + periods
    assert any(isinstance(o, (DeadlineExceeded, CircuitOpenError)) for o in outcomes)


def test_deadline_cuts_short_the_retry_backoff(run_virtual: Any) -> None:
    backend = Dependency(0.1, ConnectionResetError("reset"))

    async def main() -> float:
        start = now()
        with pytest.raises(DeadlineExceeded):
            async with deadline(1.0):
                await retry(backend, attempts=10, base_delay=5, jitter=False)
        return now() - start

    assert_time(run_virtual(main), 1.0)
    assert backend.calls == 1


def test_a_task_started_in_a_fresh_context_has_no_deadline(run_virtual: Any) -> None:
    """The escape hatch the chapter mentions for work that outlives the request."""

    async def left() -> float:
        return remaining()

    async def main() -> Tuple[float, float]:
        async with deadline(1):
            inherited = asyncio.ensure_future(left())
            fresh = contextvars.Context().run(asyncio.ensure_future, left())
            return await inherited, await fresh

    inherited, fresh = run_virtual(main)
    assert inherited <= 1 and fresh == math.inf


if sys.version_info >= (3, 11):

    def test_create_task_with_a_fresh_context_has_no_deadline(run_virtual: Any) -> None:
        async def left() -> float:
            return remaining()

        async def main() -> float:
            async with deadline(1):
                return await asyncio.create_task(left(), context=contextvars.Context())

        assert run_virtual(main) == math.inf


def test_a_call_from_before_the_circuit_opened_cannot_decide_half_open(
    run_virtual: Any,
) -> None:
    async def main() -> None:
        breaker = CircuitBreaker(failure_threshold=1, reset_timeout=1)
        old_success = asyncio.create_task(breaker.call(Dependency(2.0), "old"))
        old_failure = asyncio.create_task(outcome(breaker.call(Dependency(2.5, OSError("old")))))
        await fail(breaker)  # opens at 0.01
        await asyncio.sleep(1.5)
        assert breaker.state == "half-open"
        trial = asyncio.create_task(breaker.call(Dependency(HANG)))
        await asyncio.sleep(0)
        assert await old_success == "old"
        assert breaker.state == "half-open"  # the closed-era success did not close it
        assert isinstance(await old_failure, OSError)
        assert breaker.state == "half-open"  # nor did the closed-era failure reopen it
        trial.cancel()
        await asyncio.gather(trial, return_exceptions=True)

    run_virtual(main)
