"""Behaviour, fault and bad-input tests for recipes/errors.py (retry and retrying)."""

from __future__ import annotations

import asyncio
import functools
import inspect
import math
import random
import sys
from typing import Any, Awaitable, Callable, List, Tuple

import pytest

from conftest import real_clock
from recipes.errors import RetryError, retry, retrying

HANG = 3600.0  # generous timeout on the virtual clock: turns a hang into a failure


def assert_slept(actual: Any, expected: Any) -> None:
    """Loop-time spans are exact on the virtual clock.

    On the real clock (COOKBOOK_REAL_CLOCK=1) a busy machine can stretch any sleep, so
    only the lower bound is checked there: no speed assertions.
    """
    actual_list = actual if isinstance(actual, list) else [actual]
    expected_list = expected if isinstance(expected, list) else [expected]
    assert len(actual_list) == len(expected_list)
    if real_clock():
        assert all(a >= e - 1e-3 for a, e in zip(actual_list, expected_list)), actual
    else:
        assert actual_list == pytest.approx(expected_list, abs=1e-6)


class Flaky:
    """A factory whose attempts fail with the given errors, then return ``result``.

    It records every call's loop time and every coroutine object it handed out.
    """

    def __init__(self, errors: List[BaseException], result: Any = "ok", seconds: float = 0):
        self.errors = list(errors)
        self.result = result
        self.seconds = seconds
        self.times: List[float] = []
        self.coroutines: List[Any] = []

    def __call__(self) -> Awaitable[Any]:
        coro = self._attempt(len(self.times))
        self.coroutines.append(coro)
        return coro

    async def _attempt(self, index: int) -> Any:
        self.times.append(asyncio.get_running_loop().time())
        await asyncio.sleep(self.seconds)
        if index < len(self.errors):
            raise self.errors[index]
        return self.result

    def gaps(self) -> List[float]:
        """Time between the starts of consecutive attempts (minus the attempt itself)."""
        return [b - a - self.seconds for a, b in zip(self.times, self.times[1:])]


def _full_jitter(seed: int, base: float, cap: float, count: int) -> List[float]:
    rng = random.Random(seed)
    return [round(rng.uniform(0, min(cap, base * 2**n)), 6) for n in range(count)]


# --- the factory is called afresh ---------------------------------------------


def test_every_attempt_gets_a_new_coroutine(run_virtual: Any) -> None:
    flaky = Flaky([ConnectionResetError(), ConnectionResetError()], result=42)

    async def main() -> Any:
        return await retry(flaky, attempts=3, base_delay=0.01)

    assert run_virtual(main) == 42
    assert len(flaky.coroutines) == 3
    assert len({id(c) for c in flaky.coroutines}) == 3  # all kept alive, so ids are unique
    assert all(inspect.getcoroutinestate(c) == inspect.CORO_CLOSED for c in flaky.coroutines)


def test_success_at_the_first_attempt_calls_once_and_never_sleeps(run_virtual: Any) -> None:
    flaky = Flaky([], result="first")

    async def main() -> Any:
        loop = asyncio.get_running_loop()
        start = loop.time()
        result = await retry(flaky, attempts=5, base_delay=10)
        return result, loop.time() - start

    result, elapsed = run_virtual(main)
    assert result == "first"
    assert len(flaky.times) == 1
    assert_slept(elapsed, 0)


def test_functools_partial_and_lambda_factories(run_virtual: Any) -> None:
    async def add(a: int, b: int) -> int:
        await asyncio.sleep(0)
        return a + b

    async def main() -> Any:
        return (
            await retry(functools.partial(add, 1, 2)),
            await retry(lambda: add(3, 4)),
        )

    assert run_virtual(main) == (3, 7)


def test_a_factory_that_raises_synchronously_is_retried(run_virtual: Any) -> None:
    calls: List[int] = []

    async def ok() -> str:
        return "connected"

    def connect() -> Awaitable[str]:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionRefusedError("not yet")
        return ok()

    async def main() -> Any:
        return await retry(connect, attempts=3, base_delay=0.01)

    assert run_virtual(main) == "connected"
    assert len(calls) == 3


# --- backoff ------------------------------------------------------------------


def test_backoff_without_jitter_doubles_up_to_max_delay(run_virtual: Any) -> None:
    flaky = Flaky([OSError()] * 5, result="done", seconds=0.05)
    delays: List[float] = []

    async def main() -> Any:
        return await retry(
            flaky,
            attempts=6,
            base_delay=0.1,
            max_delay=0.5,
            jitter=False,
            on_retry=lambda attempt, error, delay: delays.append(delay),
        )

    assert run_virtual(main) == "done"
    expected = [0.1, 0.2, 0.4, 0.5, 0.5]
    assert delays == pytest.approx(expected)
    assert_slept(flaky.gaps(), expected)


@pytest.mark.parametrize("seed", [0, 3, 2024])
def test_full_jitter_is_reproducible_with_a_seeded_rng(run_virtual: Any, seed: int) -> None:
    flaky = Flaky([TimeoutError()] * 4, result="done")
    delays: List[float] = []

    async def main() -> Any:
        return await retry(
            flaky,
            attempts=5,
            base_delay=0.2,
            max_delay=1.0,
            rng=random.Random(seed),
            on_retry=lambda attempt, error, delay: delays.append(delay),
        )

    assert run_virtual(main) == "done"
    expected = _full_jitter(seed, 0.2, 1.0, 4)
    assert delays == expected
    assert_slept(flaky.gaps(), expected)
    caps = [0.2, 0.4, 0.8, 1.0]
    assert all(0 <= d <= cap for d, cap in zip(delays, caps))


def test_on_retry_gets_attempt_number_error_and_delay(run_virtual: Any) -> None:
    errors = [ConnectionResetError("one"), ConnectionAbortedError("two")]
    flaky = Flaky(list(errors), result="done")
    calls: List[Tuple[int, BaseException, float]] = []

    async def main() -> Any:
        return await retry(
            flaky,
            base_delay=0.1,
            jitter=False,
            on_retry=lambda attempt, error, delay: calls.append((attempt, error, delay)),
        )

    assert run_virtual(main) == "done"
    assert [(a, e, d) for a, e, d in calls] == [(1, errors[0], 0.1), (2, errors[1], 0.2)]


def test_zero_base_delay_retries_without_sleeping(run_virtual: Any) -> None:
    flaky = Flaky([OSError()] * 3, result="done")

    async def main() -> Any:
        return await retry(flaky, attempts=4, base_delay=0, max_delay=0)

    assert run_virtual(main) == "done"
    assert_slept(flaky.gaps(), [0, 0, 0])


def test_many_attempts_do_not_overflow_the_exponent(run_virtual: Any) -> None:
    flaky = Flaky([OSError()] * 99, result="finally")

    async def main() -> Any:
        return await retry(flaky, attempts=100, base_delay=1e-4, max_delay=1e-3, jitter=False)

    assert run_virtual(main) == "finally"
    assert len(flaky.times) == 100


# --- giving up ------------------------------------------------------------------


def test_gives_up_after_the_configured_attempts_with_the_last_error(run_virtual: Any) -> None:
    errors = [ConnectionResetError("1"), ConnectionResetError("2"), ConnectionResetError("3")]
    flaky = Flaky(list(errors), seconds=0.01)

    async def main() -> Any:
        loop = asyncio.get_running_loop()
        with pytest.raises(ConnectionResetError) as info:
            await retry(flaky, attempts=3, base_delay=0.1, jitter=False)
        return info.value, loop.time()

    raised, finished_at = run_virtual(main)
    assert raised is errors[-1]  # the very object from the last attempt
    assert len(flaky.times) == 3
    # no backoff sleep after the last attempt
    assert_slept(finished_at - flaky.times[-1], 0.01)


def test_collect_errors_raises_retry_error_with_every_attempt(run_virtual: Any) -> None:
    errors = [OSError("a"), asyncio.TimeoutError(), OSError("c")]
    flaky = Flaky(list(errors))

    async def main() -> Any:
        with pytest.raises(RetryError) as info:
            await retry(flaky, attempts=3, base_delay=0.01, collect_errors=True)
        return info.value

    raised = run_virtual(main)
    assert raised.errors == errors
    assert raised.__cause__ is errors[-1]
    assert "3 attempts" in str(raised)


def test_a_single_attempt_means_no_retry(run_virtual: Any) -> None:
    flaky = Flaky([OSError("once")])

    async def main() -> None:
        with pytest.raises(OSError, match="once"):
            await retry(flaky, attempts=1)

    run_virtual(main)
    assert len(flaky.times) == 1


# --- what is (not) retried ----------------------------------------------------------


@pytest.mark.parametrize("error", [ValueError("bad"), KeyError("k"), RuntimeError("bug")])
def test_errors_outside_retry_on_are_raised_at_once(run_virtual: Any, error: Exception) -> None:
    flaky = Flaky([error, error, error])

    async def main() -> Any:
        with pytest.raises(type(error)) as info:
            await retry(flaky, attempts=3, base_delay=1)
        return info.value

    assert run_virtual(main) is error
    assert len(flaky.times) == 1


def test_retry_on_accepts_one_class_or_a_tuple(run_virtual: Any) -> None:
    async def main() -> Any:
        single = Flaky([KeyError()], result="single")
        pair = Flaky([KeyError(), ValueError()], result="pair")
        return (
            await retry(single, retry_on=KeyError, base_delay=0),
            await retry(pair, retry_on=(KeyError, ValueError), base_delay=0),
        )

    assert run_virtual(main) == ("single", "pair")


def test_custom_retry_on_replaces_the_default(run_virtual: Any) -> None:
    flaky = Flaky([OSError("not listed")])

    async def main() -> None:
        with pytest.raises(OSError):
            await retry(flaky, retry_on=KeyError, attempts=3)

    run_virtual(main)
    assert len(flaky.times) == 1


def test_cancelled_error_from_the_operation_is_never_retried(run_virtual: Any) -> None:
    flaky = Flaky([asyncio.CancelledError()] * 3)

    async def main() -> None:
        with pytest.raises(asyncio.CancelledError):
            await retry(flaky, attempts=3)

    run_virtual(main)
    assert len(flaky.times) == 1


def test_cancelling_during_an_attempt_propagates_at_once(run_virtual: Any) -> None:
    flaky = Flaky([], seconds=10)

    async def main() -> Any:
        task = asyncio.create_task(retry(flaky, attempts=5, timeout=60))
        await asyncio.sleep(1)
        task.cancel()
        await asyncio.wait([task])
        return task.cancelled(), [inspect.getcoroutinestate(c) for c in flaky.coroutines]

    cancelled, states = run_virtual(main)
    assert cancelled
    assert states == [inspect.CORO_CLOSED]  # one attempt, and it was stopped


def test_cancelling_during_the_backoff_sleep_propagates_at_once(run_virtual: Any) -> None:
    flaky = Flaky([OSError()] * 5)

    async def main() -> Any:
        task = asyncio.create_task(retry(flaky, attempts=5, base_delay=10, jitter=False))
        await asyncio.sleep(1)  # the first attempt failed; retry is sleeping 10 s
        task.cancel()
        await asyncio.wait([task])
        return task.cancelled()

    assert run_virtual(main) is True
    assert len(flaky.times) == 1


# --- per-attempt timeout -----------------------------------------------------------


def test_timeout_cancels_a_hanging_attempt_and_retries(run_virtual: Any) -> None:
    log: List[str] = []
    durations = iter([100, 100, 0.1])

    async def sometimes_hangs() -> str:
        try:
            await asyncio.sleep(next(durations))
        except asyncio.CancelledError:
            log.append("attempt cancelled")
            raise
        return "answered"

    async def main() -> Any:
        return await retry(sometimes_hangs, attempts=3, timeout=0.5, base_delay=0.1)

    assert run_virtual(main) == "answered"
    assert log == ["attempt cancelled", "attempt cancelled"]


def test_every_attempt_timing_out_raises_timeout_error(run_virtual: Any) -> None:
    flaky = Flaky([], seconds=100)

    async def main() -> Any:
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(asyncio.TimeoutError):
            await retry(flaky, attempts=2, timeout=0.3, base_delay=0.2, jitter=False)
        return loop.time() - start

    elapsed = run_virtual(main)
    assert_slept(elapsed, 0.3 + 0.2 + 0.3)
    assert len(flaky.times) == 2


@pytest.mark.parametrize("outcome", ["fails", "succeeds"])
def test_a_cancel_landing_as_a_timed_attempt_ends_is_never_lost(
    run_virtual: Any, outcome: str
) -> None:
    """CPython gh-86296: before 3.12, wait_for() dropped a cancel that arrived as
    the awaited attempt finished, and retry() then slept and tried again."""
    attempts: List[str] = []
    caller: List[asyncio.Task[Any]] = []

    async def attempt() -> str:
        attempts.append("attempt")
        await asyncio.sleep(1)
        if len(attempts) == 1:
            # The caller is cancelled in the very step in which the attempt ends,
            # as when a shutdown lands just as the reply arrives.
            caller[0].cancel()
            if outcome == "fails":
                raise ConnectionResetError("reset")
        return "answer"

    async def main() -> Any:
        task = asyncio.create_task(retry(attempt, attempts=3, timeout=60, base_delay=0.1))
        caller.append(task)
        done, _ = await asyncio.wait([task], timeout=HANG)
        assert task in done
        return "cancelled" if task.cancelled() else f"returned {task.result()!r}"

    assert run_virtual(main) == "cancelled"
    assert attempts == ["attempt"]


def test_a_cancel_landing_as_the_attempt_times_out_is_not_retried(run_virtual: Any) -> None:
    """The timeout and the cancel expire in the same loop step: the cancel wins."""
    flaky = Flaky([], seconds=HANG)

    async def main() -> Any:
        task = asyncio.create_task(retry(flaky, attempts=3, timeout=1, base_delay=0.1))
        await asyncio.sleep(1)  # the same deadline as the attempt's timeout
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=HANG)
        assert task in done
        return task.cancelled()

    assert run_virtual(main) is True
    assert len(flaky.times) == 1


def test_the_timeout_of_an_attempt_is_not_taken_for_a_cancel(run_virtual: Any) -> None:
    """An attempt that swallows its timeout's cancellation returns its value."""

    async def stubborn() -> str:
        try:
            await asyncio.sleep(HANG)
        except asyncio.CancelledError:
            pass
        return "late"

    async def main() -> Any:
        return await retry(stubborn, attempts=2, timeout=1)

    assert run_virtual(main) == "late"


# What an attempt may make of the CancelledError that stops its caller: a cleanup
# that raises a retryable error in ``finally``, an ``except CancelledError`` that
# raises a non-retryable one, or one that swallows it and returns.
TURNS = ["raises in finally", "converts", "swallows"]


@pytest.mark.parametrize("timeout", [None, 60.0])
@pytest.mark.parametrize("behaviour", TURNS)
def test_an_attempt_that_turns_the_cancellation_into_an_error_is_not_retried(
    run_virtual: Any, behaviour: str, timeout: Any
) -> None:
    """The caller was cancelled: retry() raises CancelledError, never retries or returns."""
    if timeout is None and sys.version_info < (3, 11):
        pytest.skip(
            "Task.cancelling() is 3.11+: on 3.8-3.10 retry() without a timeout cannot tell "
            "(see its reference)"
        )
    attempts: List[str] = []

    async def attempt() -> str:
        attempts.append("attempt")
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            if behaviour == "converts":
                raise ValueError("goodbye failed") from None
            if behaviour == "swallows":
                return "late"
            raise
        finally:
            if behaviour == "raises in finally":
                raise ConnectionResetError("goodbye failed")
        return "answer"

    async def main() -> Any:
        task = asyncio.create_task(retry(attempt, attempts=3, timeout=timeout, base_delay=0.1))
        await asyncio.sleep(1)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=HANG)
        assert task in done
        if task.cancelled():
            return "cancelled"
        error = task.exception()
        return f"failed: {error!r}" if error else f"returned {task.result()!r}"

    assert run_virtual(main) == "cancelled"
    assert attempts == ["attempt"]


def test_a_timeout_inside_the_attempt_is_retried_not_taken_for_a_cancel(
    run_virtual: Any,
) -> None:
    """A timeout that cancels its own task (asyncio.timeout, async-timeout, which
    aiohttp uses on 3.8-3.10) raises a TimeoutError whose __context__ is a
    CancelledError; it is an ordinary, retryable failure."""
    if sys.version_info >= (3, 11):
        timeout: Any = asyncio.timeout
    else:
        timeout = pytest.importorskip(
            "async_timeout", reason="async-timeout (an aiohttp dependency) is not installed"
        ).timeout
    durations = iter([HANG, 0.1])
    errors: List[BaseException] = []

    async def request() -> str:
        async with timeout(1):
            await asyncio.sleep(next(durations))
        return "answered"

    async def main() -> Any:
        return await retry(
            request, attempts=2, base_delay=0.1, on_retry=lambda n, exc, d: errors.append(exc)
        )

    assert run_virtual(main) == "answered"
    [error] = errors
    assert isinstance(error, asyncio.TimeoutError)
    assert isinstance(error.__context__, asyncio.CancelledError)


# --- bad input ------------------------------------------------------------------


def test_a_coroutine_object_instead_of_a_factory_is_a_clear_type_error(
    run_virtual: Any,
) -> None:
    flaky = Flaky([])

    async def main() -> Any:
        coro = flaky()
        with pytest.raises(TypeError, match="factory") as info:
            await retry(coro)  # type: ignore[arg-type]
        return coro, str(info.value)

    coro, message = run_virtual(main)
    assert "awaited only once" in message
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED  # no "never awaited"
    assert flaky.times == []  # nothing ran


def test_a_future_instead_of_a_factory_is_a_type_error(run_virtual: Any) -> None:
    async def main() -> None:
        future = asyncio.get_running_loop().create_future()
        with pytest.raises(TypeError, match="factory"):
            await retry(future)  # type: ignore[arg-type]

    run_virtual(main)


@pytest.mark.parametrize("bad", [None, 42, "fetch"])
def test_a_non_callable_factory_is_a_type_error(run_virtual: Any, bad: Any) -> None:
    async def main() -> None:
        with pytest.raises(TypeError, match="callable"):
            await retry(bad)

    run_virtual(main)


def test_a_factory_returning_a_non_awaitable_is_a_type_error_not_retried(
    run_virtual: Any,
) -> None:
    calls: List[int] = []

    def not_async() -> int:
        calls.append(1)
        return 5

    async def main() -> None:
        with pytest.raises(TypeError, match="returned int"):
            await retry(not_async, retry_on=Exception, attempts=3)  # type: ignore[arg-type]

    run_virtual(main)
    assert calls == [1]


_BAD_OPTIONS: List[Tuple[dict, type, str]] = [  # type: ignore[type-arg]
    ({"attempts": 0}, ValueError, "attempts must be >= 1"),
    ({"attempts": -3}, ValueError, "attempts must be >= 1"),
    ({"attempts": 2.5}, TypeError, "attempts must be an int"),
    ({"attempts": "3"}, TypeError, "attempts must be an int"),
    ({"attempts": True}, TypeError, "attempts must be an int"),
    ({"base_delay": -0.1}, ValueError, "base_delay must be >= 0"),
    ({"base_delay": math.nan}, ValueError, "base_delay must be >= 0"),
    ({"base_delay": "1"}, TypeError, "base_delay must be a number"),
    ({"max_delay": -1}, ValueError, "max_delay must be >= 0"),
    ({"base_delay": 2, "max_delay": 1}, ValueError, "max_delay"),
    ({"timeout": 0}, ValueError, "timeout must be > 0"),
    ({"timeout": -1}, ValueError, "timeout must be > 0"),
    ({"retry_on": BaseException}, TypeError, "never retried"),
    ({"retry_on": asyncio.CancelledError}, TypeError, "never retried"),
    ({"retry_on": (OSError, KeyboardInterrupt)}, TypeError, "never retried"),
    ({"retry_on": "OSError"}, TypeError, "Exception subclasses"),
    ({"retry_on": OSError()}, TypeError, "Exception subclasses"),
    ({"on_retry": "print"}, TypeError, "on_retry must be callable"),
]


@pytest.mark.parametrize(("options", "error", "message"), _BAD_OPTIONS)
def test_bad_options_fail_before_the_first_attempt(
    run_virtual: Any, options: Any, error: type, message: str
) -> None:
    flaky = Flaky([])

    async def main() -> None:
        with pytest.raises(error, match=message):  # type: ignore[call-overload]
            await retry(flaky, **options)

    run_virtual(main)
    assert flaky.times == []


@pytest.mark.parametrize(("options", "error", "message"), _BAD_OPTIONS)
def test_bad_options_fail_when_the_decorator_is_applied(
    options: Any, error: type, message: str
) -> None:
    with pytest.raises(error, match=message):  # type: ignore[call-overload]
        retrying(**options)


# --- the decorator -------------------------------------------------------------------


def test_retrying_retries_each_call_with_the_same_arguments(run_virtual: Any) -> None:
    seen: List[Tuple[str, int]] = []

    @retrying(attempts=3, base_delay=0.01)
    async def send(message: str, *, priority: int = 0) -> str:
        """Send a message."""
        seen.append((message, priority))
        if len(seen) % 2:
            raise ConnectionResetError("odd attempts fail")
        return f"sent {message}"

    async def main() -> Any:
        return await send("a", priority=1), await send("b")

    assert run_virtual(main) == ("sent a", "sent b")
    assert seen == [("a", 1), ("a", 1), ("b", 0), ("b", 0)]
    assert send.__name__ == "send"
    assert send.__doc__ == "Send a message."
    assert inspect.iscoroutinefunction(send)


def test_retrying_gives_up_like_retry(run_virtual: Any) -> None:
    calls: List[int] = []

    @retrying(attempts=2, base_delay=0.01, collect_errors=True)
    async def always_down() -> None:
        calls.append(1)
        raise ConnectionRefusedError("down")

    async def main() -> Any:
        with pytest.raises(RetryError) as info:
            await always_down()
        return info.value

    assert len(run_virtual(main).errors) == 2
    assert len(calls) == 2


def test_retrying_rejects_a_non_callable() -> None:
    with pytest.raises(TypeError, match="decorates a callable"):
        retrying()(42)  # type: ignore[type-var]


def test_many_concurrent_retries(run_virtual: Any) -> None:
    """Load: 500 independent retry loops with jitter share one event loop."""
    rng = random.Random(1)
    factories: List[Callable[[], Awaitable[Any]]] = [
        Flaky([OSError()] * (n % 4), result=n, seconds=0.01) for n in range(500)
    ]

    async def main() -> Any:
        return await asyncio.gather(
            *(retry(f, attempts=4, base_delay=0.05, rng=rng) for f in factories)
        )

    assert run_virtual(main) == list(range(500))
