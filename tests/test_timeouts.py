"""Behaviour, fault and bad-input tests for recipes/timeouts.py."""

from __future__ import annotations

import asyncio
import contextvars
import math
import sys
from typing import Any, Dict, List, Tuple

import pytest

from recipes.timeouts import (
    Budget,
    PortableTimeout,
    portable_timeout,
    portable_timeout_at,
    shield_until_done,
)

needs_311 = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="Task.cancelling() and asyncio.timeout need Python >= 3.11"
)


def cancelling(task: Any) -> int:
    """The task's pending cancel requests (3.11+)."""
    count: int = task.cancelling()
    return count


def only_current_task_left() -> bool:
    return asyncio.all_tasks() == {asyncio.current_task()}


async def cleanup_logger(log: List[str], name: str, delay: float = 10) -> str:
    try:
        await asyncio.sleep(delay)
        log.append(f"{name} finished")
        return name
    finally:
        log.append(f"{name} cleanup")


# --- the stdlib behaviour the chapter describes -------------------------------


def test_wait_for_waits_for_the_inner_cleanup(run_virtual: Any) -> None:
    async def main() -> Tuple[List[str], float]:
        log: List[str] = []
        loop = asyncio.get_running_loop()

        async def slow_cleanup() -> None:
            try:
                await asyncio.sleep(10)
            finally:
                await asyncio.sleep(0.5)
                log.append("inner cleanup done")

        start = loop.time()
        try:
            await asyncio.wait_for(slow_cleanup(), timeout=0.2)
        except asyncio.TimeoutError:
            log.append("timeout raised")
        return log, round(loop.time() - start, 1)

    assert run_virtual(main) == (["inner cleanup done", "timeout raised"], 0.7)


def test_wait_for_in_time_and_without_timeout(run_virtual: Any) -> None:
    async def main() -> Tuple[Any, Any]:
        first = await asyncio.wait_for(asyncio.sleep(0.1, result="a"), timeout=1)
        second = await asyncio.wait_for(asyncio.sleep(0.5, result="b"), timeout=None)
        return first, second

    assert run_virtual(main) == ("a", "b")


def _context_seen_after_wait_for(run_virtual: Any) -> str:
    variable: contextvars.ContextVar[str] = contextvars.ContextVar("probe", default="unset")

    async def sets_it() -> None:
        variable.set("set inside")

    async def main() -> str:
        await asyncio.wait_for(sets_it(), timeout=1)
        return variable.get()

    result: str = run_virtual(main)
    return result


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="since 3.12 it runs in the caller's task")
def test_wait_for_runs_a_coroutine_in_a_new_task_before_312(run_virtual: Any) -> None:
    assert _context_seen_after_wait_for(run_virtual) == "unset"


@pytest.mark.skipif(sys.version_info < (3, 12), reason="before 3.12 it runs in a new task")
def test_wait_for_runs_a_coroutine_in_the_callers_task_since_312(run_virtual: Any) -> None:
    assert _context_seen_after_wait_for(run_virtual) == "set inside"


@pytest.mark.skipif(sys.version_info >= (3, 11), reason="the classes are one since 3.11")
def test_builtin_timeout_error_misses_wait_for_before_311(run_virtual: Any) -> None:
    assert not issubclass(asyncio.TimeoutError, TimeoutError)

    async def main() -> None:
        try:
            await asyncio.wait_for(asyncio.sleep(1), timeout=0.1)
        except TimeoutError:  # the seed chapter's mistake
            pytest.fail("builtin TimeoutError caught a wait_for timeout")

    with pytest.raises(asyncio.TimeoutError):
        run_virtual(main)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="distinct classes before Python 3.11")
def test_timeout_error_classes_are_one_since_311() -> None:
    assert asyncio.TimeoutError is TimeoutError


def _wait_for_race(run_virtual: Any) -> str:
    """Cancel the caller in the very step in which the awaited future completes."""

    async def main() -> str:
        loop = asyncio.get_running_loop()
        inner: asyncio.Future[str] = loop.create_future()

        async def caller() -> str:
            result: str = await asyncio.wait_for(inner, timeout=10)
            return result

        task = asyncio.ensure_future(caller())
        await asyncio.sleep(0)
        inner.set_result("result")
        task.cancel()
        try:
            return f"returned {await task}"
        except asyncio.CancelledError:
            return "cancelled"

    result: str = run_virtual(main)
    return result


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="fixed in 3.12")
def test_wait_for_loses_a_cancellation_before_312(run_virtual: Any) -> None:
    assert _wait_for_race(run_virtual) == "returned result"


@pytest.mark.skipif(sys.version_info < (3, 12), reason="wait_for was rebuilt in 3.12")
def test_wait_for_keeps_the_cancellation_since_312(run_virtual: Any) -> None:
    assert _wait_for_race(run_virtual) == "cancelled"


def test_portable_timeout_keeps_the_cancellation_in_the_same_race(run_virtual: Any) -> None:
    async def main() -> str:
        loop = asyncio.get_running_loop()
        inner: asyncio.Future[str] = loop.create_future()

        async def caller() -> str:
            async with portable_timeout(10):
                result: str = await inner
                return result

        task = asyncio.ensure_future(caller())
        await asyncio.sleep(0)
        inner.set_result("result")
        task.cancel()
        try:
            return f"returned {await task}"
        except asyncio.CancelledError:
            return "cancelled"

    assert run_virtual(main) == "cancelled"


@pytest.mark.parametrize("timeout", ["wait_for", "portable_timeout"])
def test_stop_waiting_for_a_shielded_job_and_a_cancellation_as_it_finishes(
    run_virtual: Any, timeout: str
) -> None:
    # The chapter's "stop waiting, but let the work finish": on 3.8-3.11 only the
    # timeout scope passes on a cancellation that arrives as the job finishes.
    async def main() -> str:
        loop = asyncio.get_running_loop()
        job: asyncio.Future[str] = loop.create_future()

        async def caller() -> str:
            if timeout == "wait_for":
                return await asyncio.wait_for(asyncio.shield(job), timeout=10)
            async with portable_timeout(10):
                return await asyncio.shield(job)

        task = asyncio.ensure_future(caller())
        await asyncio.sleep(0)
        job.set_result("report ready")
        task.cancel()
        try:
            return f"returned {await task}"
        except asyncio.CancelledError:
            return "cancelled"

    lost = timeout == "wait_for" and sys.version_info < (3, 12)
    assert run_virtual(main) == ("returned report ready" if lost else "cancelled")


def test_shield_keeps_the_inner_task_running(run_virtual: Any) -> None:
    async def main() -> Tuple[bool, bool, str]:
        inner = asyncio.ensure_future(asyncio.sleep(0.3, result="written"))
        outer = asyncio.ensure_future(asyncio.shield(inner))
        await asyncio.sleep(0.1)
        outer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await outer
        running_after_cancel = not inner.done()
        result: str = await inner
        return running_after_cancel, inner.cancelled(), result

    assert run_virtual(main) == (True, False, "written")


def test_shield_does_not_protect_against_cancelling_the_inner_task(run_virtual: Any) -> None:
    async def main() -> bool:
        inner = asyncio.ensure_future(asyncio.sleep(1))
        shielded = asyncio.shield(inner)
        await asyncio.sleep(0.1)
        inner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await shielded
        return inner.cancelled()

    assert run_virtual(main) is True


# --- PortableTimeout: single scopes ---------------------------------------------


def test_timeout_fires(run_virtual: Any) -> None:
    async def main() -> Tuple[bool, bool, List[str], float]:
        loop = asyncio.get_running_loop()
        log: List[str] = []
        start = loop.time()
        with pytest.raises(asyncio.TimeoutError) as info:
            async with portable_timeout(0.3) as scope:
                await cleanup_logger(log, "work")
                log.append("after the await")  # never reached
        assert isinstance(info.value.__cause__, asyncio.CancelledError)
        return scope.expired(), only_current_task_left(), log, round(loop.time() - start, 1)

    assert run_virtual(main) == (True, True, ["work cleanup"], 0.3)


def test_timeout_not_reached_leaves_no_timer_behind(run_virtual: Any) -> None:
    async def main() -> Tuple[bool, str]:
        async with portable_timeout(0.5) as scope:
            await asyncio.sleep(0.2)
        # Well past the old deadline: no stray cancellation may hit us.
        await asyncio.sleep(1)
        return scope.expired(), repr(scope)

    expired, text = run_virtual(main)
    assert expired is False
    assert text.startswith("<PortableTimeout [finished]")


def test_timeout_none_never_fires(run_virtual: Any) -> None:
    async def main() -> Tuple[Any, bool]:
        async with portable_timeout(None) as scope:
            await asyncio.sleep(1)
        return scope.when(), scope.expired()

    assert run_virtual(main) == (None, False)


@pytest.mark.parametrize("delay", [0, -5])
def test_timeout_zero_or_negative_expires_at_first_await(run_virtual: Any, delay: float) -> None:
    async def main() -> List[str]:
        log: List[str] = []
        with pytest.raises(asyncio.TimeoutError):
            async with portable_timeout(delay):
                log.append("code before the first await runs")
                await asyncio.sleep(1)
                log.append("never")
        return log

    assert run_virtual(main) == ["code before the first await runs"]


def test_timeout_at_uses_loop_time(run_virtual: Any) -> None:
    async def main() -> Tuple[bool, float]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 0.4
        async with portable_timeout_at(deadline) as scope:
            await asyncio.sleep(0.1)
        with pytest.raises(asyncio.TimeoutError):
            async with portable_timeout_at(deadline):
                await asyncio.sleep(1)
        return scope.when() == deadline, round(loop.time() - deadline, 1)

    assert run_virtual(main) == (True, 0.0)


def test_reschedule_extends_shortens_and_disables(run_virtual: Any) -> None:
    async def main() -> List[str]:
        loop = asyncio.get_running_loop()
        log: List[str] = []
        async with portable_timeout(0.2) as scope:
            scope.reschedule(loop.time() + 1)
            await asyncio.sleep(0.5)
            log.append("extended")
        async with portable_timeout(0.2) as scope:
            scope.reschedule(None)
            await asyncio.sleep(0.5)
            log.append("disabled")
        start = loop.time()
        try:
            async with portable_timeout(10) as scope:
                scope.reschedule(loop.time() + 0.1)
                await asyncio.sleep(5)
        except asyncio.TimeoutError:
            log.append(f"shortened: {round(loop.time() - start, 1)}")
        try:
            async with portable_timeout(10) as scope:
                scope.reschedule(loop.time() - 1)  # in the past
                await asyncio.sleep(5)
        except asyncio.TimeoutError:
            log.append("past deadline expired at once")
        return log

    assert run_virtual(main) == [
        "extended",
        "disabled",
        "shortened: 0.1",
        "past deadline expired at once",
    ]


def test_reschedule_and_reentry_in_the_wrong_state(run_virtual: Any) -> None:
    async def main() -> List[str]:
        errors: List[str] = []
        scope = portable_timeout(1)
        with pytest.raises(RuntimeError, match="created") as info:
            scope.reschedule(5)
        errors.append(str(info.value))
        async with scope:
            pass
        with pytest.raises(RuntimeError, match="finished"):
            scope.reschedule(5)
        with pytest.raises(RuntimeError, match="entered only once"):
            async with scope:
                pass
        expired = portable_timeout(0.1)
        with pytest.raises(asyncio.TimeoutError):
            async with expired:
                await asyncio.sleep(1)
        with pytest.raises(RuntimeError, match="expired"):
            expired.reschedule(5)
        return errors

    assert run_virtual(main) == ["cannot reschedule a timeout that is created"]


def test_enter_outside_a_task_is_an_error(run_virtual: Any) -> None:
    async def main() -> str:
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[str] = loop.create_future()
        scope = portable_timeout(1)

        def from_a_plain_callback() -> None:
            entering = scope.__aenter__()
            try:
                entering.send(None)
            except RuntimeError as exc:
                outcome.set_result(str(exc))
            finally:
                entering.close()

        loop.call_soon(from_a_plain_callback)
        return await outcome

    assert run_virtual(main) == "a timeout scope must be used inside a task"


def test_outside_cancellation_is_not_turned_into_timeout(run_virtual: Any) -> None:
    async def main() -> Tuple[str, bool]:
        scope = portable_timeout(10)

        async def worker() -> None:
            async with scope:
                await asyncio.sleep(5)

        task = asyncio.ensure_future(worker())
        await asyncio.sleep(0.1)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return "cancelled", scope.expired()
        except asyncio.TimeoutError:
            return "timeout", scope.expired()
        return "finished", scope.expired()

    assert run_virtual(main) == ("cancelled", False)


def test_task_continues_normally_after_a_handled_timeout(run_virtual: Any) -> None:
    async def main() -> Tuple[str, int]:
        try:
            async with portable_timeout(0.1):
                await asyncio.sleep(1)
        except asyncio.TimeoutError:
            pass
        await asyncio.sleep(0.5)  # no leftover cancellation
        task = asyncio.current_task()
        return "ok", cancelling(task) if sys.version_info >= (3, 11) else 0

    assert run_virtual(main) == ("ok", 0)


def test_other_exceptions_pass_through_an_expired_scope(run_virtual: Any) -> None:
    async def main() -> Tuple[str, bool, int]:
        scope = portable_timeout(0.1)
        try:
            async with scope:
                try:
                    await asyncio.sleep(1)
                except asyncio.CancelledError:
                    raise ValueError("converted by the block") from None
        except ValueError as exc:
            task = asyncio.current_task()
            count = cancelling(task) if sys.version_info >= (3, 11) else 0
            return str(exc), scope.expired(), count
        return "nothing raised", scope.expired(), 0

    assert run_virtual(main) == ("converted by the block", True, 0)


def test_swallowed_cancellation_exits_late_but_normally(run_virtual: Any) -> None:
    async def main() -> Tuple[bool, float]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        async with portable_timeout(0.1) as scope:
            try:
                await asyncio.sleep(1)
            except asyncio.CancelledError:
                await asyncio.sleep(0.4)  # the anti-pattern the chapter warns about
        return scope.expired(), round(loop.time() - start, 1)

    assert run_virtual(main) == (True, 0.5)


@pytest.mark.parametrize(
    ("factory", "value", "error", "message"),
    [
        (portable_timeout, "1", TypeError, "delay must be a number"),
        (portable_timeout, True, TypeError, "delay must be a number"),
        (portable_timeout, math.nan, ValueError, "delay must not be NaN"),
        (portable_timeout_at, math.nan, ValueError, "when must not be NaN"),
        (portable_timeout_at, [1], TypeError, "when must be a number"),
    ],
)
def test_bad_deadlines_are_rejected(
    run_virtual: Any, factory: Any, value: Any, error: type, message: str
) -> None:
    async def main() -> None:
        factory(value)

    with pytest.raises(error, match=message):
        run_virtual(main)


def test_reschedule_rejects_bad_values(run_virtual: Any) -> None:
    async def main() -> None:
        async with portable_timeout(1) as scope:
            scope.reschedule("soon")  # type: ignore[arg-type]

    with pytest.raises(TypeError, match="when must be a number"):
        run_virtual(main)


# --- PortableTimeout: nesting ---------------------------------------------------


def test_outer_deadline_first_is_not_caught_by_inner_handler(run_virtual: Any) -> None:
    async def main() -> List[str]:
        log: List[str] = []
        try:
            async with portable_timeout(0.2) as outer:
                try:
                    async with portable_timeout(5) as inner:
                        await asyncio.sleep(1)
                except asyncio.TimeoutError:
                    log.append("inner handler")
                log.append("after inner")
        except asyncio.TimeoutError:
            log.append("outer timeout")
        log.append(f"outer expired={outer.expired()} inner expired={inner.expired()}")
        return log

    assert run_virtual(main) == ["outer timeout", "outer expired=True inner expired=False"]


def test_inner_deadline_first_is_handled_inside(run_virtual: Any) -> None:
    async def main() -> List[str]:
        log: List[str] = []
        async with portable_timeout(5) as outer:
            try:
                async with portable_timeout(0.2):
                    await asyncio.sleep(1)
            except asyncio.TimeoutError:
                log.append("inner timeout")
            await asyncio.sleep(0.5)
            log.append("outer block finished")
        log.append(f"outer expired={outer.expired()}")
        return log

    assert run_virtual(main) == ["inner timeout", "outer block finished", "outer expired=False"]


@pytest.mark.parametrize("depth", [2, 3])
def test_simultaneous_deadlines_belong_to_the_outermost_scope(
    run_virtual: Any, depth: int
) -> None:
    """Every scope expires in the same loop step; only the outermost may claim it."""

    async def main() -> List[str]:
        log: List[str] = []
        deadline = asyncio.get_running_loop().time() + 0.2

        async def nest(level: int) -> None:
            if level == depth:
                await asyncio.sleep(1)
                return
            try:
                async with portable_timeout_at(deadline):
                    await nest(level + 1)
            except asyncio.TimeoutError:
                log.append(f"TimeoutError at level {level}")
                if level > 0:
                    log.append("inner handler swallowed the outer deadline")

        await nest(0)
        await asyncio.sleep(0.1)  # the task is not left cancelled
        return log

    assert run_virtual(main) == ["TimeoutError at level 0"]


def test_scopes_in_a_child_task_are_independent(run_virtual: Any) -> None:
    async def main() -> List[str]:
        log: List[str] = []

        async def child() -> None:
            try:
                async with portable_timeout(0.1):
                    await asyncio.sleep(1)
            except asyncio.TimeoutError:
                log.append("child timed out")

        async with portable_timeout(5) as outer:
            await asyncio.ensure_future(child())  # inherits the context variable
            await asyncio.sleep(0.2)
        log.append(f"parent expired={outer.expired()}")
        return log

    assert run_virtual(main) == ["child timed out", "parent expired=False"]


@needs_311
def test_nests_with_asyncio_timeout_both_ways(run_virtual: Any) -> None:
    async def main() -> List[str]:
        log: List[str] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 0.2
        try:
            async with asyncio.timeout_at(deadline):  # type: ignore[attr-defined,unused-ignore]
                try:
                    async with portable_timeout_at(deadline):
                        await asyncio.sleep(1)
                except asyncio.TimeoutError:
                    log.append("inner portable claimed it")
        except TimeoutError:
            log.append("outer asyncio.timeout")
        deadline = loop.time() + 0.2
        try:
            async with portable_timeout_at(deadline):
                try:
                    async with asyncio.timeout_at(deadline):  # type: ignore[attr-defined,unused-ignore]
                        await asyncio.sleep(1)
                except TimeoutError:
                    log.append("inner asyncio.timeout claimed it")
        except asyncio.TimeoutError:
            log.append("outer portable")
        log.append(f"cancelling={cancelling(asyncio.current_task())}")
        return log

    assert run_virtual(main) == ["outer asyncio.timeout", "outer portable", "cancelling=0"]


@needs_311
def test_outside_cancel_in_the_expiry_step_stays_a_cancellation(run_virtual: Any) -> None:
    async def main() -> str:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 0.2

        async def worker() -> None:
            async with portable_timeout_at(deadline):
                await asyncio.sleep(1)

        task = asyncio.ensure_future(worker())
        loop.call_at(deadline, task.cancel)  # same step as the expiry
        try:
            await task
        except asyncio.CancelledError:
            return "cancelled"
        except asyncio.TimeoutError:
            return "timeout"
        return "finished"

    assert run_virtual(main) == "cancelled"


@pytest.mark.skipif(sys.version_info >= (3, 11), reason="3.11+ counts cancel requests")
def test_outside_cancel_in_the_expiry_step_is_the_documented_race_before_311(
    run_virtual: Any,
) -> None:
    async def main() -> str:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 0.2

        async def worker() -> None:
            async with portable_timeout_at(deadline):
                await asyncio.sleep(1)

        task = asyncio.ensure_future(worker())
        loop.call_at(deadline, task.cancel)
        try:
            await task
        except asyncio.TimeoutError:
            return "timeout"
        except asyncio.CancelledError:
            return "cancelled"
        return "finished"

    assert run_virtual(main) == "timeout"


# --- Budget ---------------------------------------------------------------------


def test_budget_is_shared_across_steps(run_virtual: Any) -> None:
    async def main() -> List[str]:
        log: List[str] = []
        budget = Budget(0.8)
        for step in range(3):
            try:
                await budget.run(asyncio.sleep(0.3))
                log.append(f"step {step} done, {round(budget.remaining(), 1)} s left")
            except asyncio.TimeoutError:
                log.append(f"step {step} timed out, expired={budget.expired()}")
        return log

    assert run_virtual(main) == [
        "step 0 done, 0.5 s left",
        "step 1 done, 0.2 s left",
        "step 2 timed out, expired=True",
    ]


def test_budget_cap_limits_one_step_but_never_extends(run_virtual: Any) -> None:
    async def main() -> List[float]:
        loop = asyncio.get_running_loop()
        budget = Budget(1.0)
        elapsed: List[float] = []
        for cap in (0.2, 5.0):
            start = loop.time()
            with pytest.raises(asyncio.TimeoutError):
                await budget.run(asyncio.sleep(10), cap=cap)
            elapsed.append(round(loop.time() - start, 1))
        return elapsed

    assert run_virtual(main) == [0.2, 0.8]


def test_budget_step_scope_covers_several_awaits(run_virtual: Any) -> None:
    async def main() -> List[str]:
        log: List[str] = []
        budget = Budget(1.0)
        async with budget.step():
            await asyncio.sleep(0.3)
            await asyncio.sleep(0.3)
            log.append("two awaits fit")
        try:
            async with budget.step(cap=5):
                await asyncio.sleep(0.3)
                await asyncio.sleep(0.3)
        except asyncio.TimeoutError:
            log.append("second step ran out")
        return log

    assert run_virtual(main) == ["two awaits fit", "second step ran out"]


def test_budget_used_up_does_not_start_the_step(run_virtual: Any) -> None:
    async def main() -> Tuple[str, bool, bool]:
        started: List[str] = []
        budget = Budget(0.1)
        await asyncio.sleep(0.2)
        coro = cleanup_logger(started, "late")
        try:
            await budget.run(coro)
        except asyncio.TimeoutError as exc:
            message = str(exc)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with pytest.raises(asyncio.TimeoutError):
            await budget.run(future)
        return message, coro.cr_frame is None and started == [], future.cancelled()

    assert run_virtual(main) == ("the 0.1 s budget is used up", True, True)


def test_budget_zero_is_allowed_and_expired(run_virtual: Any) -> None:
    async def main() -> Tuple[bool, float]:
        budget = Budget(0)
        return budget.expired(), budget.remaining()

    assert run_virtual(main) == (True, 0.0)


def test_budget_run_caller_cancelled_is_a_cancellation(run_virtual: Any) -> None:
    async def main() -> str:
        budget = Budget(5)
        task = asyncio.ensure_future(budget.run(asyncio.sleep(10)))
        await asyncio.sleep(0.1)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return "cancelled"
        except asyncio.TimeoutError:
            return "timeout"
        return "finished"

    assert run_virtual(main) == "cancelled"


@pytest.mark.parametrize(
    ("seconds", "error"),
    [(-1, ValueError), (math.nan, ValueError), (math.inf, ValueError), ("1", TypeError)],
)
def test_budget_rejects_bad_seconds(run_virtual: Any, seconds: Any, error: type) -> None:
    async def main() -> None:
        Budget(seconds)

    with pytest.raises(error, match="seconds"):
        run_virtual(main)


def test_budget_rejects_bad_cap_and_non_awaitables(run_virtual: Any) -> None:
    async def main() -> bool:
        budget = Budget(1)
        coro = asyncio.sleep(0.1)
        with pytest.raises(ValueError, match="cap must be >= 0"):
            await budget.run(coro, cap=-1)
        with pytest.raises(TypeError, match="needs an awaitable"):
            await budget.run(42)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="cap must be >= 0"):
            budget.step(cap=-0.5)
        return coro.cr_frame is None

    assert run_virtual(main) is True


def test_budget_needs_a_running_loop() -> None:
    with pytest.raises(RuntimeError, match="no running event loop"):
        Budget(1)


# --- shield_until_done ----------------------------------------------------------


def test_shield_until_done_plain_result_and_error(run_virtual: Any) -> None:
    async def fails() -> None:
        await asyncio.sleep(0.1)
        raise OSError("write failed")

    async def main() -> Tuple[Any, str]:
        result = await shield_until_done(asyncio.sleep(0.1, result="ok"))
        try:
            await shield_until_done(fails())
        except OSError as exc:
            return result, str(exc)
        return result, "no error"

    assert run_virtual(main) == ("ok", "write failed")


def test_shield_until_done_finishes_the_work_before_the_caller_stops(run_virtual: Any) -> None:
    async def main() -> List[str]:
        log: List[str] = []

        async def caller() -> None:
            try:
                await shield_until_done(cleanup_logger(log, "write", delay=0.5))
            finally:
                log.append("caller unwinding")

        task = asyncio.ensure_future(caller())
        await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.sleep(0.1)
        task.cancel()  # impatient second cancel: absorbed
        with pytest.raises(asyncio.CancelledError):
            await task
        assert only_current_task_left()
        return log

    assert run_virtual(main) == ["write finished", "write cleanup", "caller unwinding"]


def test_shield_until_done_grace_expires(run_virtual: Any) -> None:
    async def main() -> Tuple[List[str], float]:
        log: List[str] = []
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(
            shield_until_done(cleanup_logger(log, "hung write", delay=100), grace=0.5)
        )
        await asyncio.sleep(0.1)
        start = loop.time()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert only_current_task_left()
        return log, round(loop.time() - start, 1)

    assert run_virtual(main) == (["hung write cleanup"], 0.5)


def test_shield_until_done_grace_zero_cancels_at_once(run_virtual: Any) -> None:
    async def main() -> List[str]:
        log: List[str] = []
        task = asyncio.ensure_future(
            shield_until_done(cleanup_logger(log, "write", delay=1), grace=0)
        )
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return log

    assert run_virtual(main) == ["write cleanup"]


def test_shield_until_done_reports_late_failures(run_virtual: Any) -> None:
    async def fails_later() -> None:
        await asyncio.sleep(0.3)
        raise OSError("disk full")

    async def main() -> List[Dict[str, Any]]:
        reports: List[Dict[str, Any]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _, ctx: reports.append(ctx))
        task = asyncio.ensure_future(shield_until_done(fails_later()))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return reports

    reports = run_virtual(main)
    assert len(reports) == 1
    assert isinstance(reports[0]["exception"], OSError)
    assert "after its caller was cancelled" in reports[0]["message"]


def test_shield_until_done_work_cancelled_directly(run_virtual: Any) -> None:
    async def main() -> str:
        work = asyncio.ensure_future(asyncio.sleep(1))
        caller = asyncio.ensure_future(shield_until_done(work))
        await asyncio.sleep(0.1)
        work.cancel()
        try:
            await caller
        except asyncio.CancelledError:
            return "caller saw the cancellation"
        return "finished"

    assert run_virtual(main) == "caller saw the cancellation"


def test_shield_until_done_rejects_bad_input(run_virtual: Any) -> None:
    async def main() -> bool:
        coro = asyncio.sleep(0.1)
        with pytest.raises(ValueError, match="grace must be >= 0"):
            await shield_until_done(coro, grace=-1)
        with pytest.raises(TypeError, match="needs an awaitable"):
            await shield_until_done("write")  # type: ignore[arg-type]
        return coro.cr_frame is None

    assert run_virtual(main) is True


def test_portable_timeout_is_a_reusable_type() -> None:
    scope = PortableTimeout(None)
    assert scope.when() is None
    assert not scope.expired()
    assert repr(scope) == "<PortableTimeout [created]>"
