"""Behaviour, fault and bad-input tests for recipes/waiting.py."""

from __future__ import annotations

import asyncio
import gc
import sys
import warnings
from typing import Any, Dict, List, Tuple

import pytest

from recipes.waiting import (
    AllFailedError,
    cancel_and_wait,
    first_completed,
    first_success,
    wait_with_progress,
)
from tests.conftest import fail_after, value_after


async def logged(name: str, delay: float, log: List[str], result: Any = None) -> Any:
    try:
        await asyncio.sleep(delay)
        log.append(f"{name} finished")
        return name if result is None else result
    except asyncio.CancelledError:
        log.append(f"{name} cancelled")
        raise


def only_current_task_left() -> bool:
    return asyncio.all_tasks() == {asyncio.current_task()}


# --- the stdlib behaviour the chapter describes -------------------------------


def test_wait_neither_raises_nor_cancels(run_virtual: Any) -> None:
    async def main() -> Tuple[int, int, bool]:
        bad = asyncio.ensure_future(fail_after(ValueError(), 0.1))
        slow = asyncio.ensure_future(value_after("slow", 10))
        done, pending = await asyncio.wait([bad, slow], timeout=0.5)
        still_running = not slow.done()
        assert isinstance(bad.exception(), ValueError)
        await cancel_and_wait(pending)
        return len(done), len(pending), still_running

    assert run_virtual(main) == (1, 1, True)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="TypeError requires Python >= 3.11")
def test_wait_rejects_coroutines_on_311(run_virtual: Any) -> None:
    async def main() -> str:
        coro = value_after(1, 0.1)
        try:
            await asyncio.wait([coro])
        except TypeError as exc:
            return str(exc)
        finally:
            coro.close()
        return "accepted"

    assert run_virtual(main) == "Passing coroutines is forbidden, use tasks explicitly."


@pytest.mark.skipif(
    not ((3, 9) <= sys.version_info < (3, 11)), reason="the warning exists on 3.9 and 3.10 only"
)
def test_wait_warns_about_coroutines_on_39_and_310(run_virtual: Any) -> None:
    async def main() -> None:
        with pytest.warns(DeprecationWarning, match="coroutine objects to asyncio.wait"):
            await asyncio.wait([value_after(1, 0.1)])

    run_virtual(main)


@pytest.mark.skipif(sys.version_info >= (3, 9), reason="3.8 wraps coroutines silently")
def test_wait_on_38_returns_new_tasks_not_the_coroutine(run_virtual: Any) -> None:
    async def main() -> bool:
        coro = value_after(1, 0.1)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            done, _ = await asyncio.wait([coro])
        return coro in done  # type: ignore[comparison-overlap]

    assert run_virtual(main) is False


# --- cancel_and_wait -----------------------------------------------------------


def test_cancel_and_wait_returns_after_cleanup_has_run(run_virtual: Any) -> None:
    async def slow_cleanup(log: List[str]) -> None:
        try:
            await asyncio.sleep(10)
        finally:
            await asyncio.sleep(1)
            log.append("cleanup done")

    async def main() -> List[str]:
        log: List[str] = []
        task = asyncio.ensure_future(slow_cleanup(log))
        await asyncio.sleep(0.1)
        assert await cancel_and_wait([task]) == []
        log.append("returned")
        assert task.cancelled()
        return log

    assert run_virtual(main) == ["cleanup done", "returned"]


def test_cancel_and_wait_reports_errors_in_given_order(run_virtual: Any) -> None:
    async def cleanup_fails(message: str) -> None:
        try:
            await asyncio.sleep(10)
        finally:
            raise OSError(message)

    async def main() -> List[BaseException]:
        already_failed = asyncio.ensure_future(fail_after(KeyError("early"), 0))
        finished_ok = asyncio.ensure_future(value_after("ok", 0))
        plain = asyncio.ensure_future(value_after("plain", 10))
        broken = asyncio.ensure_future(cleanup_fails("late"))
        await asyncio.sleep(0.1)
        errors = await cancel_and_wait([broken, plain, finished_ok, already_failed])
        assert finished_ok.result() == "ok"  # finished tasks are left alone
        assert plain.cancelled()
        return errors

    errors = run_virtual(main)
    assert [type(e) for e in errors] == [OSError, KeyError]
    assert [str(e) for e in errors] == ["late", "'early'"]


def test_cancel_and_wait_empty_duplicates_and_plain_futures(run_virtual: Any) -> None:
    async def main() -> Tuple[List[BaseException], List[BaseException], bool]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        task = asyncio.ensure_future(value_after(1, 10))
        empty = await cancel_and_wait([])
        errors = await cancel_and_wait(iter([task, task, future]))
        return empty, errors, task.cancelled() and future.cancelled()

    assert run_virtual(main) == ([], [], True)


def test_cancel_and_wait_rejects_coroutines(run_virtual: Any) -> None:
    async def main() -> str:
        coro = value_after(1, 0.1)
        try:
            await cancel_and_wait([coro])  # type: ignore[list-item]
        except TypeError as exc:
            return str(exc)
        finally:
            coro.close()
        return "accepted"

    assert "asyncio.create_task()" in run_virtual(main)


def test_cancel_and_wait_survives_caller_cancellation(run_virtual: Any) -> None:
    async def slow_cleanup(log: List[str]) -> None:
        try:
            await asyncio.sleep(10)
        finally:
            await asyncio.sleep(1)
            log.append("cleanup done")

    async def main() -> List[str]:
        log: List[str] = []
        task = asyncio.ensure_future(slow_cleanup(log))
        await asyncio.sleep(0.1)
        cleaner = asyncio.ensure_future(cancel_and_wait([task]))
        await asyncio.sleep(0.1)
        cleaner.cancel()  # interrupt the cleaner while the task is cleaning up
        with pytest.raises(asyncio.CancelledError):
            await cleaner
        log.append(f"task done: {task.done()}")
        return log

    assert run_virtual(main) == ["cleanup done", "task done: True"]


def test_cancel_and_wait_waits_for_task_that_ignores_cancellation(run_virtual: Any) -> None:
    async def stubborn() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(0.5)
        return "ignored the cancel"

    async def main() -> str:
        task = asyncio.ensure_future(stubborn())
        await asyncio.sleep(0.1)
        assert await cancel_and_wait([task]) == []
        result: str = task.result()
        return result

    assert run_virtual(main) == "ignored the cancel"


# --- first_completed -----------------------------------------------------------


def test_first_completed_cancels_losers_before_returning(run_virtual: Any) -> None:
    async def main() -> List[str]:
        log: List[str] = []
        result = await first_completed(
            logged("a", 0.3, log), logged("b", 0.1, log), logged("c", 0.2, log)
        )
        log.append(f"caller got {result}")
        assert only_current_task_left()
        return log

    assert run_virtual(main) == ["b finished", "a cancelled", "c cancelled", "caller got b"]


def test_first_completed_reraises_a_failed_winner(run_virtual: Any) -> None:
    error = ConnectionError("refused")

    async def main() -> List[str]:
        log: List[str] = []
        try:
            await first_completed(logged("slow", 1, log), fail_after(error, 0.1))
        except ConnectionError as exc:
            assert exc is error
            log.append("caller saw the error")
        return log

    assert run_virtual(main) == ["slow cancelled", "caller saw the error"]


def test_first_completed_tie_goes_to_the_earliest_argument(run_virtual: Any) -> None:
    async def main() -> str:
        result: str = await first_completed(value_after("first", 0.1), value_after("second", 0.1))
        return result

    assert run_virtual(main) == "first"


def test_first_completed_with_a_task_that_is_already_done(run_virtual: Any) -> None:
    async def main() -> Any:
        ready = asyncio.ensure_future(value_after("ready", 0))
        await asyncio.sleep(0.1)
        return await first_completed(value_after("later", 1), ready)

    assert run_virtual(main) == "ready"


def test_first_completed_timeout_cancels_everything(run_virtual: Any) -> None:
    async def main() -> Tuple[str, List[str]]:
        log: List[str] = []
        try:
            await first_completed(logged("a", 5, log), logged("b", 6, log), timeout=0.5)
        except asyncio.TimeoutError as exc:
            assert only_current_task_left()
            return str(exc), log
        return "no timeout", log

    assert run_virtual(main) == ("nothing finished within 0.5 s", ["a cancelled", "b cancelled"])


def test_first_completed_timeout_not_reached(run_virtual: Any) -> None:
    async def main() -> Any:
        return await first_completed(value_after("in time", 0.4), timeout=0.5)

    assert run_virtual(main) == "in time"


def test_first_completed_caller_cancelled(run_virtual: Any) -> None:
    async def main() -> List[str]:
        log: List[str] = []
        race = asyncio.ensure_future(first_completed(logged("a", 5, log), logged("b", 6, log)))
        await asyncio.sleep(0.1)
        race.cancel()
        with pytest.raises(asyncio.CancelledError):
            await race
        assert only_current_task_left()
        return log

    assert run_virtual(main) == ["a cancelled", "b cancelled"]


def test_first_completed_does_not_log_losers_errors(run_virtual: Any) -> None:
    async def main() -> List[Dict[str, Any]]:
        reports: List[Dict[str, Any]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _, ctx: reports.append(ctx))
        # Both finish in the same step; the loser's error is discarded, not logged.
        await first_completed(value_after("win", 0.1), fail_after(OSError(), 0.1))
        gc.collect()
        return reports

    assert run_virtual(main) == []


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"timeout": -1}, ValueError, "timeout must be >= 0"),
        ({"timeout": float("nan")}, ValueError, "timeout must be >= 0"),
        ({"timeout": "5"}, TypeError, "timeout must be a number"),
    ],
)
@pytest.mark.parametrize("race", [first_completed, first_success])
def test_races_reject_bad_timeout_without_starting(
    run_virtual: Any, race: Any, kwargs: Dict[str, Any], error: type, message: str
) -> None:
    async def main() -> None:
        log: List[str] = []
        coro = logged("never", 0.1, log)
        try:
            await race(coro, **kwargs)
        finally:
            assert coro.cr_frame is None  # closed: no "never awaited" warning
            assert log == []

    with pytest.raises(error, match=message):
        run_virtual(main)


@pytest.mark.parametrize("race", [first_completed, first_success])
def test_races_reject_empty_and_non_awaitables(run_virtual: Any, race: Any) -> None:
    async def empty() -> None:
        await race()

    async def not_awaitable() -> None:
        await race(value_after("x", 0.1), value_after)

    with pytest.raises(ValueError, match="needs at least one awaitable"):
        run_virtual(empty)
    with pytest.raises(TypeError, match=r"argument 1.*forget to call it"):
        run_virtual(not_awaitable)


# --- first_success -------------------------------------------------------------


def test_first_success_skips_failures(run_virtual: Any) -> None:
    async def main() -> Tuple[Any, List[str]]:
        log: List[str] = []
        result = await first_success(
            fail_after(OSError("a"), 0.1),
            logged("b", 0.2, log),
            fail_after(OSError("c"), 0.15),
            logged("d", 0.3, log),
        )
        assert only_current_task_left()
        return result, log

    assert run_virtual(main) == ("b", ["b finished", "d cancelled"])


def test_first_success_all_failed(run_virtual: Any) -> None:
    errors = [OSError("a"), KeyError("b"), ValueError("c")]

    async def main() -> AllFailedError:
        try:
            await first_success(
                fail_after(errors[0], 0.3), fail_after(errors[1], 0.1), fail_after(errors[2], 0.2)
            )
        except AllFailedError as exc:
            return exc
        raise AssertionError("no AllFailedError")

    exc = run_virtual(main)
    assert str(exc) == "all 3 awaitables failed"
    assert exc.exceptions == tuple(errors)  # argument order, not completion order
    assert isinstance(exc, Exception)


def test_first_success_success_and_failure_in_the_same_step(run_virtual: Any) -> None:
    async def main() -> Any:
        return await first_success(fail_after(OSError(), 0.1), value_after("ok", 0.1))

    assert run_virtual(main) == "ok"


def test_first_success_timeout_is_one_overall_deadline(run_virtual: Any) -> None:
    async def main() -> str:
        try:
            # Each failure starts a new round; a per-round timeout of 0.5 s
            # would reach the success at 0.6 s.
            await first_success(
                fail_after(OSError(), 0.2),
                fail_after(OSError(), 0.4),
                value_after("too late", 0.6),
                timeout=0.5,
            )
        except asyncio.TimeoutError as exc:
            assert only_current_task_left()
            return str(exc)
        return "no timeout"

    assert run_virtual(main) == "nothing succeeded within 0.5 s (2 failed)"


def test_first_success_candidate_cancelled_from_outside_counts_as_failed(
    run_virtual: Any,
) -> None:
    async def main() -> Tuple[type, ...]:
        victim = asyncio.ensure_future(value_after("victim", 10))
        asyncio.get_running_loop().call_later(0.1, victim.cancel)
        try:
            await first_success(victim, fail_after(OSError(), 0.2))
        except AllFailedError as exc:
            return tuple(type(e) for e in exc.exceptions)
        return ()

    assert run_virtual(main) == (asyncio.CancelledError, OSError)


def test_first_success_caller_cancelled(run_virtual: Any) -> None:
    async def main() -> List[str]:
        log: List[str] = []
        race = asyncio.ensure_future(first_success(logged("a", 5, log), logged("b", 6, log)))
        await asyncio.sleep(0.1)
        race.cancel()
        with pytest.raises(asyncio.CancelledError):
            await race
        assert only_current_task_left()
        return log

    assert run_virtual(main) == ["a cancelled", "b cancelled"]


# --- wait_with_progress --------------------------------------------------------


def test_wait_with_progress_reports_each_task(run_virtual: Any) -> None:
    async def main() -> Tuple[List[Tuple[int, int]], int, int]:
        calls: List[Tuple[int, int]] = []
        tasks = [asyncio.ensure_future(value_after(d, d)) for d in (0.3, 0.1, 0.2)]
        done, pending = await wait_with_progress(tasks, lambda n, t: calls.append((n, t)))
        return calls, len(done), len(pending)

    assert run_virtual(main) == ([(1, 3), (2, 3), (3, 3)], 3, 0)


def test_wait_with_progress_same_step_finishers_counted_separately(run_virtual: Any) -> None:
    async def main() -> List[int]:
        calls: List[int] = []
        tasks = [asyncio.ensure_future(value_after(i, 0.1)) for i in range(4)]
        await wait_with_progress(tasks, lambda n, _t: calls.append(n))
        return calls

    assert run_virtual(main) == [1, 2, 3, 4]


def test_wait_with_progress_timeout_is_one_overall_deadline(run_virtual: Any) -> None:
    async def main() -> Tuple[int, int, int]:
        calls: List[int] = []
        tasks = [asyncio.ensure_future(value_after(d, d)) for d in (0.2, 0.4, 0.6, 0.8)]
        done, pending = await wait_with_progress(tasks, lambda n, _t: calls.append(n), timeout=0.5)
        assert all(not task.done() for task in pending)
        assert await cancel_and_wait(pending) == []
        return len(calls), len(done), len(pending)

    # A per-round timeout of 0.5 s would have let all four finish.
    assert run_virtual(main) == (2, 2, 2)


def test_wait_with_progress_counts_failed_cancelled_and_already_done(run_virtual: Any) -> None:
    async def main() -> Tuple[List[int], int]:
        calls: List[int] = []
        finished = asyncio.ensure_future(value_after("early", 0))
        await asyncio.sleep(0.1)
        failed = asyncio.ensure_future(fail_after(OSError(), 0.1))
        cancelled = asyncio.ensure_future(value_after("x", 10))
        asyncio.get_running_loop().call_later(0.2, cancelled.cancel)
        done, _ = await wait_with_progress(
            [finished, failed, cancelled, failed], lambda n, _t: calls.append(n)
        )
        assert isinstance(failed.exception(), OSError)
        return calls, len(done)

    assert run_virtual(main) == ([1, 2, 3], 3)


def test_wait_with_progress_timeout_zero_reports_what_is_already_done(run_virtual: Any) -> None:
    async def main() -> Tuple[List[int], int, int]:
        calls: List[int] = []
        ready = asyncio.ensure_future(value_after("ready", 0))
        await asyncio.sleep(0.1)
        later = asyncio.ensure_future(value_after("later", 1))
        done, pending = await wait_with_progress(
            [ready, later], lambda n, _t: calls.append(n), timeout=0
        )
        await cancel_and_wait(pending)
        return calls, len(done), len(pending)

    assert run_virtual(main) == ([1], 1, 1)


def test_wait_with_progress_empty(run_virtual: Any) -> None:
    async def main() -> Any:
        calls: List[int] = []
        result = await wait_with_progress([], lambda n, _t: calls.append(n))
        return result, calls

    assert run_virtual(main) == ((set(), set()), [])


def test_wait_with_progress_callback_error_propagates_and_unhooks(run_virtual: Any) -> None:
    async def main() -> List[int]:
        calls: List[int] = []

        def on_progress(n: int, _total: int) -> None:
            calls.append(n)
            if n == 1:
                raise RuntimeError("progress bar broke")

        tasks = [asyncio.ensure_future(value_after(d, d)) for d in (0.1, 0.2)]
        with pytest.raises(RuntimeError, match="progress bar broke"):
            await wait_with_progress(tasks, on_progress)
        await asyncio.sleep(0.5)  # the second task finishes: no more calls
        assert all(task.done() for task in tasks)
        return calls

    assert run_virtual(main) == [1]


def test_wait_with_progress_caller_cancelled_leaves_tasks_to_the_caller(
    run_virtual: Any,
) -> None:
    async def main() -> Tuple[bool, List[int]]:
        calls: List[int] = []
        tasks = [asyncio.ensure_future(value_after(d, d)) for d in (0.3, 0.4)]
        waiter = asyncio.ensure_future(wait_with_progress(tasks, lambda n, _t: calls.append(n)))
        await asyncio.sleep(0.1)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        still_running = not any(task.done() for task in tasks)
        await asyncio.sleep(0.5)  # tasks finish; the callback was unhooked
        return still_running, calls

    assert run_virtual(main) == (True, [])


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        ((lambda n, t: None,), {"timeout": -0.1}, ValueError, "timeout must be >= 0"),
        (("not callable",), {}, TypeError, "on_progress must be callable"),
    ],
)
def test_wait_with_progress_rejects_bad_input(
    run_virtual: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any], error: type, message: str
) -> None:
    async def main() -> None:
        task = asyncio.ensure_future(value_after(1, 0.1))
        try:
            await wait_with_progress([task], *args, **kwargs)
        finally:
            await cancel_and_wait([task])

    with pytest.raises(error, match=message):
        run_virtual(main)


def test_wait_with_progress_rejects_coroutines(run_virtual: Any) -> None:
    async def main() -> None:
        coro = value_after(1, 0.1)
        try:
            await wait_with_progress([coro], lambda n, t: None)  # type: ignore[list-item]
        finally:
            coro.close()

    with pytest.raises(TypeError, match=r"wrap coroutines with asyncio\.create_task"):
        run_virtual(main)


def test_wait_with_progress_many_tasks_finishing_one_at_a_time(run_virtual: Any) -> None:
    async def main() -> Tuple[int, int]:
        calls: List[int] = []
        tasks = [asyncio.ensure_future(value_after(i, i / 1000)) for i in range(1000)]
        done, _ = await wait_with_progress(tasks, lambda n, _t: calls.append(n))
        assert calls == list(range(1, 1001))
        return len(done), len(calls)

    assert run_virtual(main) == (1000, 1000)
