"""Behaviour, fault and bad-input tests for recipes/coroutines.py."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import threading
import time
from typing import Any, Awaitable, Callable, Dict, List, Tuple

import pytest

from recipes.coroutines import (
    Heartbeat,
    Lazy,
    PendingReplies,
    measure,
    run_concurrently,
    run_in_thread,
    run_sequentially,
)
from tests.conftest import fail_after, loop_errors, value_after

Runner = Callable[[Callable[[], Awaitable[Any]]], Any]


# --- run_sequentially / run_concurrently / measure ---------------------------


def test_sequential_waits_add_up_and_concurrent_waits_overlap(run_virtual: Runner) -> None:
    async def main() -> Tuple[Any, ...]:
        factories = [functools.partial(value_after, name, 1.0) for name in "abc"]
        seq_results, seq_elapsed = await run_sequentially(*factories)
        con_results, con_elapsed = await run_concurrently(*factories)
        return seq_results, seq_elapsed, con_results, con_elapsed

    seq_results, seq_elapsed, con_results, con_elapsed = run_virtual(main)
    assert seq_results == con_results == ["a", "b", "c"]
    assert seq_elapsed == pytest.approx(3.0, abs=0.25)
    assert con_elapsed == pytest.approx(1.0, abs=0.25)


def test_run_sequentially_calls_each_factory_after_the_previous_one_finished(
    run_virtual: Runner,
) -> None:
    async def main() -> List[Tuple[str, float]]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        calls: List[Tuple[str, float]] = []

        def factory(name: str) -> Callable[[], Awaitable[str]]:
            def make() -> Awaitable[str]:
                calls.append((name, round(loop.time() - start, 1)))
                return value_after(name, 0.5)

            return make

        await run_sequentially(factory("a"), factory("b"), factory("c"))
        return calls

    assert run_virtual(main) == [("a", 0.0), ("b", 0.5), ("c", 1.0)]


def test_run_sequentially_stops_at_the_first_error(run_virtual: Runner) -> None:
    called: List[str] = []

    def later() -> Awaitable[None]:
        called.append("later")
        return asyncio.sleep(0)

    async def main() -> None:
        with pytest.raises(KeyError, match="missing"):
            await run_sequentially(functools.partial(fail_after, KeyError("missing"), 0.1), later)

    run_virtual(main)
    assert called == []


@pytest.mark.parametrize("runner", [run_sequentially, run_concurrently])
def test_no_factories_gives_no_results(run_virtual: Runner, runner: Any) -> None:
    async def main() -> Any:
        return await runner()

    results, elapsed = run_virtual(main)
    assert results == []
    assert elapsed == pytest.approx(0.0, abs=0.25)


@pytest.mark.parametrize("runner", [run_sequentially, run_concurrently])
def test_coroutine_objects_are_rejected_and_closed(run_virtual: Runner, runner: Any) -> None:
    async def main() -> List[str]:
        first, second = value_after(1, 0), value_after(2, 0)
        with pytest.raises(
            TypeError, match=r"argument 0 is <coroutine object.*functools\.partial"
        ):
            await runner(first, second)
        return [inspect.getcoroutinestate(first), inspect.getcoroutinestate(second)]

    assert run_virtual(main) == [inspect.CORO_CLOSED, inspect.CORO_CLOSED]


@pytest.mark.parametrize("runner", [run_sequentially, run_concurrently])
@pytest.mark.parametrize("bad", [None, 42, "value_after"])
def test_non_callables_are_rejected(run_virtual: Runner, runner: Any, bad: Any) -> None:
    async def main() -> None:
        with pytest.raises(TypeError, match="expects callables that return awaitables"):
            await runner(functools.partial(asyncio.sleep, 0), bad)

    run_virtual(main)


def test_run_concurrently_closes_created_coroutines_when_a_factory_returns_junk(
    run_virtual: Runner,
) -> None:
    created: List[Any] = []

    def good() -> Awaitable[int]:
        coro = value_after(1, 0.1)
        created.append(coro)
        return coro

    async def main() -> None:
        with pytest.raises(TypeError, match="returned 42, which is not awaitable"):
            await run_concurrently(good, good, lambda: 42)

    run_virtual(main)
    assert [inspect.getcoroutinestate(c) for c in created] == [inspect.CORO_CLOSED] * 2


def test_run_sequentially_rejects_a_factory_that_returns_junk(run_virtual: Runner) -> None:
    async def main() -> None:
        with pytest.raises(TypeError, match="returned 'oops', which is not awaitable"):
            await run_sequentially(lambda: "oops")

    run_virtual(main)


def test_run_concurrently_failure_cancels_and_awaits_the_others(run_virtual: Runner) -> None:
    events: List[str] = []

    async def slow_with_cleanup() -> str:
        try:
            await asyncio.sleep(10)
        finally:
            await asyncio.sleep(0.5)  # cleanup that takes time
            events.append("cleaned up")
        return "never"

    async def main() -> None:
        with pytest.raises(ValueError, match="boom"):
            await run_concurrently(
                slow_with_cleanup, functools.partial(fail_after, ValueError("boom"), 0.1)
            )
        events.append("error seen")

    run_virtual(main)
    assert events == ["cleaned up", "error seen"]


def test_run_concurrently_raises_the_first_failure_and_retrieves_the_rest(
    run_virtual: Runner,
) -> None:
    async def main() -> List[Dict[str, Any]]:
        with loop_errors() as errors:
            with pytest.raises(KeyError):
                await run_concurrently(
                    functools.partial(fail_after, KeyError("first"), 0.1),
                    functools.partial(fail_after, ValueError("second"), 0.1),
                )
        return errors

    assert run_virtual(main) == []


def test_run_concurrently_timeout_cancels_everything(run_virtual: Runner) -> None:
    cancelled: List[int] = []

    async def sleeper(n: int) -> int:
        try:
            await asyncio.sleep(n)
        except asyncio.CancelledError:
            cancelled.append(n)
            raise
        return n

    async def main() -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(asyncio.TimeoutError, match="2 of 3 awaitables still running"):
            await run_concurrently(*(functools.partial(sleeper, n) for n in (1, 5, 10)), timeout=2)
        return loop.time() - start

    assert run_virtual(main) == pytest.approx(2.0, abs=0.25)
    assert sorted(cancelled) == [5, 10]


def test_cancelling_run_concurrently_waits_for_the_children(run_virtual: Runner) -> None:
    events: List[str] = []

    async def child(n: int) -> None:
        try:
            await asyncio.sleep(10)
        finally:
            await asyncio.sleep(0.2 * n)
            events.append(f"child {n} done")

    async def main() -> None:
        runner = asyncio.ensure_future(
            run_concurrently(*(functools.partial(child, n) for n in (1, 2, 3)))
        )
        await asyncio.sleep(0.1)
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
        events.append("runner cancelled")

    run_virtual(main)  # fails by itself if a child were left running
    assert events == ["child 1 done", "child 2 done", "child 3 done", "runner cancelled"]


@pytest.mark.parametrize(
    "timeout, error",
    [(-1, ValueError), (float("nan"), ValueError), ("5", TypeError), (True, TypeError)],
)
def test_run_concurrently_rejects_bad_timeouts_before_starting(
    run_virtual: Runner, timeout: Any, error: type
) -> None:
    called: List[int] = []

    def factory() -> Awaitable[None]:
        called.append(1)
        return asyncio.sleep(0)

    async def main() -> None:
        with pytest.raises(error, match="timeout"):
            await run_concurrently(factory, timeout=timeout)

    run_virtual(main)
    assert called == []


def test_run_concurrently_accepts_futures_and_tasks(run_virtual: Runner) -> None:
    async def main() -> List[Any]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        loop.call_later(0.2, future.set_result, "from a timer")
        results, _ = await run_concurrently(
            lambda: future, lambda: asyncio.ensure_future(value_after("task", 0.1))
        )
        return results

    assert run_virtual(main) == ["from a timer", "task"]


def test_run_concurrently_under_load_keeps_argument_order(run_virtual: Runner) -> None:
    async def main() -> Tuple[List[int], float]:
        factories = [functools.partial(value_after, n, (n % 10) / 10) for n in range(1000)]
        return await run_concurrently(*factories)

    results, elapsed = run_virtual(main)
    assert results == list(range(1000))
    assert elapsed == pytest.approx(0.9, abs=0.25)


def test_measure_reports_result_and_loop_time(run_virtual: Runner) -> None:
    async def main() -> Tuple[Any, float]:
        return await measure(value_after("x", 0.5))

    result, elapsed = run_virtual(main)
    assert result == "x"
    assert elapsed == pytest.approx(0.5, abs=0.25)


def test_measure_rejects_non_awaitables(run_virtual: Runner) -> None:
    async def main() -> None:
        with pytest.raises(TypeError, match="expects an awaitable, got <function"):
            await measure(value_after)  # type: ignore[arg-type]

    run_virtual(main)


# --- Heartbeat ---------------------------------------------------------------


def test_heartbeat_ticks_while_the_loop_is_free_and_not_while_blocked(
    run_virtual: Runner,
) -> None:
    async def main() -> Tuple[int, int]:
        async with Heartbeat(interval=0.1) as beat:
            await asyncio.sleep(1.05)
            before = beat.ticks
            time.sleep(0.02)  # blocks the loop
            blocked = beat.ticks - before
        return before, blocked

    assert run_virtual(main) == (10, 0)


def test_heartbeat_stops_when_the_block_raises(run_virtual: Runner) -> None:
    async def main() -> Tuple[int, int]:
        before = len(asyncio.all_tasks())
        with pytest.raises(ZeroDivisionError):
            async with Heartbeat(interval=0.1):
                await asyncio.sleep(0.15)
                1 / 0  # noqa: B018
        return before, len(asyncio.all_tasks())

    before, after = run_virtual(main)
    assert before == after


def test_heartbeat_cannot_be_started_twice(run_virtual: Runner) -> None:
    async def main() -> None:
        beat = Heartbeat(0.1)
        async with beat:
            with pytest.raises(RuntimeError, match="already been started"):
                async with beat:
                    pass  # pragma: no cover

    run_virtual(main)


@pytest.mark.parametrize(
    "interval, error",
    [
        (0, ValueError),
        (-0.5, ValueError),
        (float("nan"), ValueError),
        (float("inf"), ValueError),
        ("0.1", TypeError),
        (None, TypeError),
    ],
)
def test_heartbeat_rejects_bad_intervals(interval: Any, error: type) -> None:
    with pytest.raises(error, match="interval"):
        Heartbeat(interval)


@pytest.mark.asyncio
async def test_heartbeat_measures_lag_and_skips_missed_beats_on_the_real_clock() -> None:
    async with Heartbeat(interval=0.1) as beat:
        time.sleep(0.35)  # three beats are overdue when this returns
        await asyncio.sleep(0.01)
        after_block = beat.ticks
    assert beat.max_lag >= 0.2  # the first overdue beat ran >= 0.25 s late
    assert after_block <= 2  # without skipping, the three overdue beats would burst


# --- futures and PendingReplies ----------------------------------------------


def test_future_set_from_another_task_and_from_a_thread(run_virtual: Runner) -> None:
    async def main() -> List[Any]:
        loop = asyncio.get_running_loop()
        by_task, by_thread, failed = (loop.create_future() for _ in range(3))

        async def setter() -> None:
            await asyncio.sleep(0.1)
            by_task.set_result("task")
            failed.set_exception(OSError("disk"))

        def in_thread() -> None:
            loop.call_soon_threadsafe(by_thread.set_result, "thread")

        setter_task = asyncio.ensure_future(setter())
        thread = threading.Thread(target=in_thread)
        thread.start()
        results = [await by_task, await by_thread]
        thread.join()
        with pytest.raises(OSError, match="disk"):
            await failed
        await setter_task
        assert asyncio.isfuture(by_task) and inspect.isawaitable(by_task)
        with pytest.raises(asyncio.InvalidStateError):
            by_task.set_result("again")
        return results

    assert run_virtual(main) == ["task", "thread"]


def test_pending_replies_match_out_of_order_replies(run_virtual: Runner) -> None:
    async def main() -> List[str]:
        replies: PendingReplies[int, str] = PendingReplies()
        queue: asyncio.Queue[Tuple[int, str]] = asyncio.Queue()

        async def reader() -> None:  # delivers the replies in reverse order
            batch = [await queue.get() for _ in range(1000)]
            for key, value in reversed(batch):
                await asyncio.sleep(0)
                assert replies.resolve(key, value)

        async def request(key: int) -> str:
            future = replies.expect(key)  # register before "sending"
            await queue.put((key, f"reply {key}"))
            return await asyncio.wait_for(future, timeout=5)

        reader_task = asyncio.ensure_future(reader())
        answers = await asyncio.gather(*(request(k) for k in range(1000)))
        await reader_task
        assert len(replies) == 0
        return answers

    assert run_virtual(main) == [f"reply {k}" for k in range(1000)]


def test_pending_replies_late_and_unknown_replies_are_dropped(run_virtual: Runner) -> None:
    async def main() -> None:
        replies: PendingReplies[str, int] = PendingReplies()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(replies.expect("a"), timeout=0.1)
        assert "a" not in replies
        assert replies.resolve("a", 1) is False
        assert replies.fail("a", ValueError()) is False
        assert replies.resolve("never asked", 1) is False
        # the key can be used again
        again = replies.expect("a")
        assert replies.resolve("a", 2) is True
        assert await again == 2

    run_virtual(main)


def test_pending_replies_resolving_a_cancelled_future_does_not_raise(
    run_virtual: Runner,
) -> None:
    async def main() -> None:
        replies: PendingReplies[str, int] = PendingReplies()
        future = replies.expect("k")
        future.cancel()  # the done callback that forgets it has not run yet
        assert replies.resolve("k", 1) is False
        assert len(replies) == 0 and "k" not in replies

    run_virtual(main)


def test_pending_replies_fail_and_fail_all(run_virtual: Runner) -> None:
    async def main() -> None:
        replies: PendingReplies[int, str] = PendingReplies()
        one, two, three = replies.expect(1), replies.expect(2), replies.expect(3)
        assert replies.fail(1, KeyError("no such method")) is True
        assert len(replies) == 2
        assert replies.fail_all(ConnectionResetError("gone")) == 2
        with pytest.raises(KeyError):
            await one
        for future in (two, three):
            with pytest.raises(ConnectionResetError, match="gone"):
                await future
        assert replies.fail_all(ConnectionResetError("gone")) == 0

    run_virtual(main)


def test_pending_replies_bad_input(run_virtual: Runner) -> None:
    async def main() -> None:
        replies: PendingReplies[Any, int] = PendingReplies()
        future = replies.expect("dup")
        with pytest.raises(ValueError, match="'dup' is already expected"):
            replies.expect("dup")
        with pytest.raises(TypeError, match="exception instance"):
            replies.fail("dup", "not an exception")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="exception instance"):
            replies.fail_all(ValueError)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="unhashable"):
            replies.expect(["a", "list"])
        future.cancel()

    run_virtual(main)


def test_pending_replies_expect_needs_a_running_loop() -> None:
    replies: PendingReplies[int, int] = PendingReplies()
    with pytest.raises(RuntimeError, match="no running event loop"):
        replies.expect(1)
    assert len(replies) == 0


# --- Lazy ----------------------------------------------------------------------


def test_lazy_runs_the_factory_once_for_many_waiters(run_virtual: Runner) -> None:
    calls: List[int] = []

    async def load() -> Dict[str, int]:
        calls.append(1)
        await asyncio.sleep(0.5)
        return {"answer": 42}

    async def main() -> Tuple[bool, List[Any], Any, bool]:
        lazy = Lazy(load)
        before = lazy.done
        values = await asyncio.gather(*(asyncio.ensure_future(_await(lazy)) for _ in range(100)))
        return before, values, await lazy, lazy.done

    before, values, later, done_after = run_virtual(main)
    assert calls == [1]
    assert before is False and done_after is True
    assert all(v is later for v in values)


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def test_lazy_does_not_cache_failures(run_virtual: Runner) -> None:
    attempts: List[int] = []

    async def flaky() -> str:
        attempts.append(1)
        await asyncio.sleep(0.1)
        if len(attempts) == 1:
            raise ConnectionError("first try fails")
        return "ok"

    async def main() -> Tuple[List[Any], str]:
        lazy = Lazy(flaky)
        first = await asyncio.gather(_await(lazy), _await(lazy), return_exceptions=True)
        assert not lazy.done
        return first, await lazy

    first, second = run_virtual(main)
    assert [type(r) for r in first] == [ConnectionError, ConnectionError]
    assert second == "ok"
    assert len(attempts) == 2


def test_lazy_cancelled_waiter_does_not_cancel_the_shared_run(run_virtual: Runner) -> None:
    async def main() -> Tuple[str, str]:
        lazy = Lazy(functools.partial(value_after, "value", 1.0))
        impatient = asyncio.ensure_future(asyncio.wait_for(_await(lazy), timeout=0.2))
        patient = asyncio.ensure_future(_await(lazy))
        with pytest.raises(asyncio.TimeoutError):
            await impatient
        return await patient, await lazy

    assert run_virtual(main) == ("value", "value")


def test_lazy_failure_without_waiters_is_not_reported_as_never_retrieved(
    run_virtual: Runner,
) -> None:
    async def main() -> List[Dict[str, Any]]:
        with loop_errors() as errors:
            lazy = Lazy(functools.partial(fail_after, ValueError("nobody waits"), 0.2))
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(_await(lazy), timeout=0.1)
            await asyncio.sleep(0.3)  # the shared run fails with nobody waiting
            del lazy
        return errors

    assert run_virtual(main) == []


def test_lazy_aclose_cancels_the_run_and_allows_a_fresh_one(run_virtual: Runner) -> None:
    calls: List[int] = []

    async def load() -> int:
        calls.append(1)
        await asyncio.sleep(1)
        return len(calls)

    async def main() -> int:
        lazy = Lazy(load)
        waiter = asyncio.ensure_future(_await(lazy))
        await asyncio.sleep(0.1)
        await lazy.aclose()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await lazy.aclose()  # closing an idle Lazy is harmless
        return await lazy

    assert run_virtual(main) == 2


def test_lazy_rejects_coroutine_objects_and_non_callables() -> None:
    coro = value_after(1, 0)
    with pytest.raises(TypeError, match=r"pass value_after, not value_after\(\)"):
        Lazy(coro)  # type: ignore[arg-type]
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED
    with pytest.raises(TypeError, match="got 42"):
        Lazy(42)  # type: ignore[arg-type]


def test_lazy_factory_returning_junk_raises_and_can_be_retried(run_virtual: Runner) -> None:
    results: List[Any] = [7, functools.partial(value_after, "fixed", 0)]

    def factory() -> Any:
        item = results.pop(0)
        return item() if callable(item) else item

    async def main() -> str:
        lazy = Lazy(factory)
        with pytest.raises(TypeError, match="returned 7, which is not awaitable"):
            await lazy
        return await lazy  # type: ignore[no-any-return]

    assert run_virtual(main) == "fixed"


# --- run_in_thread -----------------------------------------------------------


def test_run_in_thread_runs_in_another_thread_with_args_kwargs_and_context(
    run_virtual: Runner,
) -> None:
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")

    def work(a: int, *, b: int) -> Tuple[int, int, str]:
        return a + b, threading.get_ident(), request_id.get()

    async def main() -> Tuple[int, bool, str]:
        request_id.set("r-1")
        total, ident, seen = await run_in_thread(work, 1, b=2)
        return total, ident != threading.get_ident(), seen

    assert run_virtual(main) == (3, True, "r-1")


def test_run_in_thread_propagates_exceptions(run_virtual: Runner) -> None:
    def broken() -> None:
        raise OSError("disk full")

    async def main() -> None:
        with pytest.raises(OSError, match="disk full"):
            await run_in_thread(broken)

    run_virtual(main)


def test_run_in_thread_leaves_the_loop_free(run_virtual: Runner) -> None:
    async def main() -> int:
        async with Heartbeat(interval=0.05) as beat:
            await run_in_thread(time.sleep, 0.3)
        return beat.ticks

    assert run_virtual(main) > 0


def test_run_in_thread_rejects_a_call_result(run_virtual: Runner) -> None:
    async def main() -> None:
        with pytest.raises(TypeError, match="expects a callable, got 3"):
            await run_in_thread(len("abc"))  # type: ignore[arg-type]

    run_virtual(main)
