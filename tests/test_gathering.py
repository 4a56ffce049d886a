"""Behaviour, fault and bad-input tests for recipes/gathering.py."""

from __future__ import annotations

import asyncio
import gc
import sys
from typing import Any, Dict, Iterator, List, Optional

import pytest

from recipes.gathering import gather_or_cancel, map_concurrently, split_results


async def value_after(value: Any, delay: float, log: Optional[List[str]] = None) -> Any:
    await asyncio.sleep(delay)
    if log is not None:
        log.append(f"{value} done")
    return value


async def fail_after(exc: BaseException, delay: float) -> None:
    await asyncio.sleep(delay)
    raise exc


async def sleeper_with_cleanup(name: str, log: List[str], delay: float = 10) -> str:
    try:
        await asyncio.sleep(delay)
        return name
    finally:
        log.append(f"{name} cleanup")


def only_current_task_left() -> bool:
    return asyncio.all_tasks() == {asyncio.current_task()}


# --- the stdlib behaviour the chapter describes -------------------------------


def test_cancelled_error_is_not_an_exception() -> None:
    assert not issubclass(asyncio.CancelledError, Exception)
    assert issubclass(asyncio.CancelledError, BaseException)


def test_gather_returns_in_argument_order(run_virtual: Any) -> None:
    async def main() -> Any:
        log: List[str] = []
        results = await asyncio.gather(
            value_after("slow", 0.3, log),
            value_after("fast", 0.1, log),
            value_after("mid", 0.2, log),
        )
        return results, log

    assert run_virtual(main) == (
        ["slow", "fast", "mid"],
        ["fast done", "mid done", "slow done"],
    )


def test_plain_gather_leaves_the_others_running(run_virtual: Any) -> None:
    async def main() -> bool:
        slow = asyncio.ensure_future(value_after("slow", 1))
        with pytest.raises(ValueError):
            await asyncio.gather(fail_after(ValueError("x"), 0.1), slow)
        still_running = not slow.done()
        assert await slow == "slow"
        return still_running

    assert run_virtual(main) is True


def test_cancelling_gather_cancels_children(run_virtual: Any) -> None:
    async def main() -> List[str]:
        log: List[str] = []
        group = asyncio.gather(sleeper_with_cleanup("x", log), sleeper_with_cleanup("y", log))
        await asyncio.sleep(0.1)
        group.cancel()
        with pytest.raises(asyncio.CancelledError):
            await group
        assert only_current_task_left()
        return log

    assert run_virtual(main) == ["x cleanup", "y cleanup"]


def test_gather_return_exceptions_reports_cancelled_child(run_virtual: Any) -> None:
    async def main() -> List[Any]:
        doomed = asyncio.ensure_future(value_after("doomed", 1))
        doomed.cancel()
        return await asyncio.gather(value_after("ok", 0.1), doomed, return_exceptions=True)

    results = run_virtual(main)
    assert results[0] == "ok"
    assert isinstance(results[1], asyncio.CancelledError)
    assert [r for r in results if isinstance(r, Exception)] == []  # the trap


def test_as_completed_timeout_does_not_cancel(run_virtual: Any) -> None:
    async def main() -> bool:
        stuck = asyncio.ensure_future(value_after("stuck", 10))
        with pytest.raises(asyncio.TimeoutError):
            for next_done in asyncio.as_completed([stuck], timeout=0.1):
                await next_done
        running = not stuck.done()
        stuck.cancel()
        await asyncio.gather(stuck, return_exceptions=True)
        return running

    assert run_virtual(main) is True


# --- split_results -----------------------------------------------------------


def test_split_results_keeps_order() -> None:
    error_a, error_b = ValueError("a"), KeyError("b")
    assert split_results([1, error_a, 2, error_b, 3]) == ([1, 2, 3], [error_a, error_b])


def test_split_results_counts_cancellation_and_base_exceptions_as_errors() -> None:
    cancelled, interrupt = asyncio.CancelledError(), KeyboardInterrupt()
    values, errors = split_results(["v", cancelled, interrupt])
    assert values == ["v"]
    assert errors == [cancelled, interrupt]


def test_split_results_keeps_falsy_values_and_accepts_generators() -> None:
    assert split_results(x for x in [0, None, "", []]) == ([0, None, "", []], [])
    assert split_results([]) == ([], [])


# --- gather_or_cancel ----------------------------------------------------------


def test_gather_or_cancel_returns_in_argument_order(run_virtual: Any) -> None:
    async def main() -> Any:
        log: List[str] = []
        results = await gather_or_cancel(
            value_after("c", 0.3, log), value_after("a", 0.1, log), value_after("b", 0.2, log)
        )
        return results, log

    assert run_virtual(main) == (["c", "a", "b"], ["a done", "b done", "c done"])


def test_gather_or_cancel_of_nothing_is_empty(run_virtual: Any) -> None:
    async def main() -> List[Any]:
        return await gather_or_cancel()

    assert run_virtual(main) == []


def test_gather_or_cancel_accepts_tasks_and_futures(run_virtual: Any) -> None:
    async def main() -> List[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str] = loop.create_future()
        loop.call_later(0.2, future.set_result, "future")
        task = asyncio.ensure_future(value_after("task", 0.1))
        return await gather_or_cancel(future, task, value_after("coro", 0.3))

    assert run_virtual(main) == ["future", "task", "coro"]


def test_gather_or_cancel_cancels_and_awaits_the_rest_on_failure(run_virtual: Any) -> None:
    error = ValueError("boom")

    async def main() -> List[str]:
        log: List[str] = []
        try:
            await gather_or_cancel(
                sleeper_with_cleanup("a", log),
                fail_after(error, 0.1),
                sleeper_with_cleanup("b", log),
            )
        except ValueError as exc:
            assert exc is error
            log.append("caller saw the error")
            assert only_current_task_left()
        return log

    assert run_virtual(main) == ["a cleanup", "b cleanup", "caller saw the error"]


def test_gather_or_cancel_waits_for_slow_cleanup(run_virtual: Any) -> None:
    async def slow_cleanup(log: List[str]) -> None:
        try:
            await asyncio.sleep(10)
        finally:
            await asyncio.sleep(0.5)  # e.g. closing a connection politely
            log.append("cleanup finished")

    async def main() -> List[str]:
        log: List[str] = []
        with pytest.raises(ValueError):
            await gather_or_cancel(slow_cleanup(log), fail_after(ValueError(), 0.1))
        log.append("caller resumed")
        return log

    assert run_virtual(main) == ["cleanup finished", "caller resumed"]


def test_gather_or_cancel_first_failure_in_argument_order_wins(run_virtual: Any) -> None:
    async def main() -> str:
        try:
            await gather_or_cancel(fail_after(KeyError("first"), 0.1), fail_after(OSError(), 0.1))
        except KeyError as exc:
            return str(exc)
        return "no error"

    assert run_virtual(main) == "'first'"


def test_gather_or_cancel_failure_before_any_await(run_virtual: Any) -> None:
    async def immediate() -> None:
        raise RuntimeError("at once")

    async def main() -> List[str]:
        log: List[str] = []
        with pytest.raises(RuntimeError, match="at once"):
            await gather_or_cancel(sleeper_with_cleanup("a", log), immediate())
        return log

    assert run_virtual(main) == ["a cleanup"]


def test_gather_or_cancel_caller_cancelled_leaves_nothing_running(run_virtual: Any) -> None:
    async def main() -> List[str]:
        log: List[str] = []
        outer = asyncio.ensure_future(
            gather_or_cancel(sleeper_with_cleanup("a", log), sleeper_with_cleanup("b", log))
        )
        await asyncio.sleep(0.1)
        outer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await outer
        assert only_current_task_left()
        return log

    assert sorted(run_virtual(main)) == ["a cleanup", "b cleanup"]


def test_gather_or_cancel_caller_cancelled_again_during_cleanup(run_virtual: Any) -> None:
    async def stubborn(log: List[str]) -> None:
        try:
            await asyncio.sleep(10)
        finally:
            await asyncio.sleep(1)
            log.append("stubborn finished cleanup")

    async def main() -> List[str]:
        log: List[str] = []
        outer = asyncio.ensure_future(gather_or_cancel(stubborn(log)))
        await asyncio.sleep(0.1)
        outer.cancel()
        await asyncio.sleep(0.1)
        outer.cancel()  # impatient: cancels again while the child is cleaning up
        with pytest.raises(asyncio.CancelledError):
            await outer
        log.append("outer done")
        assert only_current_task_left()
        return log

    assert run_virtual(main) == ["stubborn finished cleanup", "outer done"]


def test_gather_or_cancel_child_cancelled_from_outside(run_virtual: Any) -> None:
    async def main() -> List[str]:
        log: List[str] = []
        victim = asyncio.ensure_future(value_after("victim", 10))
        asyncio.get_running_loop().call_later(0.1, victim.cancel)
        with pytest.raises(asyncio.CancelledError):
            await gather_or_cancel(victim, sleeper_with_cleanup("other", log))
        return log

    assert run_virtual(main) == ["other cleanup"]


def test_gather_or_cancel_child_that_ignores_cancellation_is_awaited(run_virtual: Any) -> None:
    async def ignores_cancel() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(0.2)
        return "finished anyway"

    async def main() -> bool:
        task = asyncio.ensure_future(ignores_cancel())
        with pytest.raises(ValueError):
            await gather_or_cancel(task, fail_after(ValueError(), 0.1))
        return task.done() and task.result() == "finished anyway"

    assert run_virtual(main) is True


def test_gather_or_cancel_does_not_log_unretrieved_exceptions(run_virtual: Any) -> None:
    async def fails_while_cancelled() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            raise RuntimeError("cleanup failed")

    async def main() -> List[Dict[str, Any]]:
        reports: List[Dict[str, Any]] = []
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, context: reports.append(context))
        with pytest.raises(ValueError):
            await gather_or_cancel(fails_while_cancelled(), fail_after(ValueError(), 0.1))
        gc.collect()
        return reports

    assert run_virtual(main) == []


def test_gather_or_cancel_rejects_non_awaitables_before_starting(run_virtual: Any) -> None:
    async def main() -> str:
        started: List[str] = []
        coro = value_after("never", 0.1, started)
        try:
            await gather_or_cancel(coro, 42)  # type: ignore[arg-type]
        except TypeError as exc:
            assert coro.cr_frame is None  # closed, so no "never awaited" warning
            assert started == []
            return str(exc)
        return "accepted"

    message = run_virtual(main)
    assert "gather_or_cancel()" in message
    assert "'int'" in message
    assert "argument 1" in message


def test_gather_or_cancel_hints_at_forgotten_call(run_virtual: Any) -> None:
    async def main() -> None:
        await gather_or_cancel(value_after)  # type: ignore[arg-type]

    with pytest.raises(TypeError, match="forget to call it"):
        run_virtual(main)


def test_gather_or_cancel_many_awaitables(run_virtual: Any) -> None:
    async def main() -> List[int]:
        return await gather_or_cancel(*(value_after(i, (i * 7) % 13 / 10) for i in range(1000)))

    assert run_virtual(main) == list(range(1000))


# --- map_concurrently ----------------------------------------------------------


class Gauge:
    """Counts calls in flight."""

    def __init__(self) -> None:
        self.running = 0
        self.peak = 0
        self.started: List[Any] = []

    async def call(self, item: Any, delay: float = 0.1) -> Any:
        self.started.append(item)
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await asyncio.sleep(delay)
            return item
        finally:
            self.running -= 1


def test_map_concurrently_preserves_input_order(run_virtual: Any) -> None:
    async def main() -> List[int]:
        return await map_concurrently(lambda n: value_after(n, (10 - n) / 10), range(10), limit=4)

    assert run_virtual(main) == list(range(10))


@pytest.mark.parametrize("limit", [1, 3, 7])
def test_map_concurrently_respects_and_reaches_limit(run_virtual: Any, limit: int) -> None:
    gauge = Gauge()

    async def main() -> List[int]:
        return await map_concurrently(gauge.call, range(20), limit=limit)

    assert run_virtual(main) == list(range(20))
    assert gauge.peak == limit
    assert gauge.running == 0


def test_map_concurrently_limit_larger_than_items(run_virtual: Any) -> None:
    gauge = Gauge()

    async def main() -> List[str]:
        return await map_concurrently(gauge.call, ["a", "b"], limit=100)

    assert run_virtual(main) == ["a", "b"]
    assert gauge.peak == 2


def test_map_concurrently_empty(run_virtual: Any) -> None:
    async def main() -> Any:
        return await map_concurrently(Gauge().call, []), await map_concurrently(
            Gauge().call, iter([])
        )

    assert run_virtual(main) == ([], [])


def test_map_concurrently_consumes_items_lazily(run_virtual: Any) -> None:
    gauge = Gauge()
    produced: List[int] = []

    def items() -> Iterator[int]:
        for i in range(1000):
            produced.append(i)
            yield i

    async def main() -> None:
        async def call(i: int) -> int:
            if i == 5:
                raise ValueError("item 5")
            result: int = await gauge.call(i)
            return result

        await map_concurrently(call, items(), limit=3)

    with pytest.raises(ValueError, match="item 5"):
        run_virtual(main)
    # The failure stopped the feed: far fewer than 1000 items were taken.
    assert len(produced) < 10
    assert gauge.running == 0


def test_map_concurrently_cancels_in_flight_calls_on_failure(run_virtual: Any) -> None:
    async def main() -> List[str]:
        log: List[str] = []

        async def call(name: str) -> str:
            if name == "bad":
                await asyncio.sleep(0.1)
                raise OSError("bad item")
            return await sleeper_with_cleanup(name, log)

        with pytest.raises(OSError, match="bad item"):
            await map_concurrently(call, ["a", "bad", "b", "c"], limit=3)
        assert only_current_task_left()
        return log

    # "c" never started: the limit was 3 and the failure came first.
    assert run_virtual(main) == ["a cleanup", "b cleanup"]


def test_map_concurrently_error_from_items_iterator(run_virtual: Any) -> None:
    def items() -> Iterator[int]:
        yield 1
        raise LookupError("feed broke")

    async def main() -> None:
        await map_concurrently(lambda i: value_after(i, 0.1), items(), limit=2)

    with pytest.raises(LookupError, match="feed broke"):
        run_virtual(main)


def test_map_concurrently_caller_cancelled(run_virtual: Any) -> None:
    async def main() -> List[str]:
        log: List[str] = []
        outer = asyncio.ensure_future(
            map_concurrently(lambda name: sleeper_with_cleanup(name, log), ["a", "b", "c"])
        )
        await asyncio.sleep(0.1)
        outer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await outer
        assert only_current_task_left()
        return sorted(log)

    assert run_virtual(main) == ["a cleanup", "b cleanup", "c cleanup"]


def test_map_concurrently_func_not_returning_awaitable(run_virtual: Any) -> None:
    async def main() -> None:
        await map_concurrently(lambda n: n * 2, [1, 2])  # type: ignore[arg-type,return-value]

    with pytest.raises(TypeError, match="await"):
        run_virtual(main)


@pytest.mark.parametrize(
    ("limit", "error"),
    [(0, ValueError), (-3, ValueError), (1.5, TypeError), (True, TypeError), ("2", TypeError)],
)
def test_map_concurrently_rejects_bad_limit(run_virtual: Any, limit: Any, error: type) -> None:
    gauge = Gauge()

    async def main() -> None:
        await map_concurrently(gauge.call, [1, 2], limit=limit)

    with pytest.raises(error, match="limit must be a positive integer"):
        run_virtual(main)
    assert gauge.started == []


def test_map_concurrently_rejects_non_callable_and_non_iterable(run_virtual: Any) -> None:
    async def bad_func() -> None:
        await map_concurrently("not callable", [1])  # type: ignore[arg-type]

    async def bad_items() -> None:
        await map_concurrently(Gauge().call, 42)  # type: ignore[arg-type]

    with pytest.raises(TypeError, match="func must be a coroutine function"):
        run_virtual(bad_func)
    with pytest.raises(TypeError, match="not iterable"):
        run_virtual(bad_items)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.TaskGroup requires Python >= 3.11")
def test_taskgroup_gives_the_same_guarantee(run_virtual: Any) -> None:
    async def main() -> List[str]:
        log: List[str] = []
        try:
            async with asyncio.TaskGroup() as group:  # type: ignore[attr-defined,unused-ignore]
                group.create_task(sleeper_with_cleanup("a", log))
                group.create_task(fail_after(ValueError("x"), 0.1))
        except BaseException as exc:  # ExceptionGroup, a 3.11 builtin
            log.append(type(exc).__name__)
        return log

    assert run_virtual(main) == ["a cleanup", "ExceptionGroup"]
