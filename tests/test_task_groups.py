"""Behaviour, fault and bad-input tests for recipes/task_groups.py (Python 3.8+)."""

from __future__ import annotations

import asyncio
import inspect
import sys
from typing import Any, List

import pytest

from recipes import task_groups
from recipes.task_groups import StoppableTaskGroup, flatten_exceptions, race, run_all

if sys.version_info >= (3, 11):
    from asyncio import TaskGroup
else:
    from exceptiongroup import BaseExceptionGroup, ExceptionGroup
    from taskgroup import TaskGroup


async def _value(value: Any, seconds: float) -> Any:
    await asyncio.sleep(seconds)
    return value


async def _fail(error: BaseException, seconds: float) -> None:
    await asyncio.sleep(seconds)
    raise error


async def _record_cancel(log: List[str], name: str, seconds: float = 3600) -> str:
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        log.append(f"{name} cancelled")
        raise
    log.append(f"{name} finished")
    return name


def test_the_module_binds_the_right_taskgroup() -> None:
    if sys.version_info >= (3, 11):
        assert task_groups.TaskGroup is asyncio.TaskGroup
    else:
        import taskgroup

        assert task_groups.TaskGroup is taskgroup.TaskGroup


# --- run_all -----------------------------------------------------------------


def test_run_all_returns_results_in_argument_order(run_virtual: Any) -> None:
    async def main() -> Any:
        return await run_all(_value("slow", 0.3), _value("fast", 0.1), _value("mid", 0.2))

    assert run_virtual(main) == ["slow", "fast", "mid"]


def test_run_all_with_nothing_returns_an_empty_list(run_virtual: Any) -> None:
    async def main() -> Any:
        return await run_all()

    assert run_virtual(main) == []


def test_run_all_accepts_tasks_and_futures(run_virtual: Any) -> None:
    async def main() -> Any:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        loop.call_later(0.1, future.set_result, "future")
        task = asyncio.create_task(_value("task", 0.2))
        return await run_all(task, future, _value("coro", 0))

    assert run_virtual(main) == ["task", "future", "coro"]


def test_run_all_failure_cancels_the_siblings(run_virtual: Any) -> None:
    async def main() -> Any:
        log: List[str] = []
        with pytest.raises(BaseExceptionGroup) as info:
            await run_all(
                _record_cancel(log, "a"),
                _fail(ConnectionError("down"), 0.1),
                _record_cancel(log, "b"),
            )
        return log, info.value

    log, group = run_virtual(main)
    assert sorted(log) == ["a cancelled", "b cancelled"]
    assert isinstance(group, ExceptionGroup)
    assert [repr(e) for e in group.exceptions] == ["ConnectionError('down')"]


def test_run_all_reports_simultaneous_failures_together(run_virtual: Any) -> None:
    async def main() -> Any:
        with pytest.raises(BaseExceptionGroup) as info:
            await run_all(_fail(KeyError("a"), 0), _fail(OSError("b"), 0), _value("c", 5))
        return info.value

    group = run_virtual(main)
    assert sorted(repr(e) for e in group.exceptions) == ["KeyError('a')", "OSError('b')"]


def test_run_all_cancelled_from_outside_cancels_children(run_virtual: Any) -> None:
    # Also the 3.8 case that works with the taskgroup backport: the cancellation
    # reaches the block while it waits for its tasks at the end.
    async def main() -> Any:
        log: List[str] = []
        runner = asyncio.create_task(run_all(_record_cancel(log, "a"), _record_cancel(log, "b")))
        await asyncio.sleep(0.1)
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
        return sorted(log)

    assert run_virtual(main) == ["a cancelled", "b cancelled"]


@pytest.mark.parametrize("bad", [None, 42, "coro", lambda: None])
def test_run_all_rejects_non_awaitables_and_closes_the_coroutines(
    run_virtual: Any, bad: Any
) -> None:
    async def main() -> Any:
        coro = _value(1, 0)
        with pytest.raises(TypeError, match="awaitables"):
            await run_all(coro, bad)
        return inspect.getcoroutinestate(coro)

    assert run_virtual(main) == inspect.CORO_CLOSED


def test_run_all_under_load(run_virtual: Any) -> None:
    async def main() -> Any:
        return await run_all(*(_value(n, (n % 7) / 10) for n in range(3000)))

    assert run_virtual(main) == list(range(3000))


# --- StoppableTaskGroup ------------------------------------------------------


def test_stop_from_the_body_cancels_tasks_and_skips_the_rest(run_virtual: Any) -> None:
    async def main() -> Any:
        log: List[str] = []
        async with StoppableTaskGroup() as group:
            group.create_task(_record_cancel(log, "a"))
            group.create_task(_record_cancel(log, "quick", 0.05))
            await asyncio.sleep(0.1)
            group.stop()
            await asyncio.sleep(10)
            log.append("body continued")  # pragma: no cover - must not run
        log.append("after")
        return log

    assert run_virtual(main) == ["quick finished", "a cancelled", "after"]


def test_stop_from_a_child_task(run_virtual: Any) -> None:
    async def main() -> Any:
        log: List[str] = []

        async def finder(group: StoppableTaskGroup) -> None:
            await asyncio.sleep(0.2)
            log.append("found it")
            group.stop()

        async with StoppableTaskGroup() as group:
            for name in "abc":
                group.create_task(_record_cancel(log, name))
            group.create_task(finder(group))
        return sorted(log)

    assert run_virtual(main) == ["a cancelled", "b cancelled", "c cancelled", "found it"]


def test_stop_twice_and_after_exit_do_nothing(run_virtual: Any) -> None:
    async def main() -> None:
        async with StoppableTaskGroup() as group:
            group.create_task(asyncio.sleep(3600))
            group.stop()
            group.stop()
        group.stop()

    run_virtual(main)


def test_stop_before_entering_raises(run_virtual: Any) -> None:
    async def main() -> None:
        with pytest.raises(RuntimeError, match="before the group was entered"):
            StoppableTaskGroup().stop()

    run_virtual(main)


def test_a_group_that_is_not_stopped_behaves_like_a_taskgroup(run_virtual: Any) -> None:
    async def main() -> Any:
        async with StoppableTaskGroup() as group:
            a = group.create_task(_value("a", 0.1), name="a")
        with pytest.raises(BaseExceptionGroup) as info:
            async with StoppableTaskGroup() as group:
                group.create_task(_fail(ValueError("x"), 0.1))
        return a.result(), a.get_name(), info.value

    result, name, group = run_virtual(main)
    assert (result, name) == ("a", "a")
    assert [repr(e) for e in group.exceptions] == ["ValueError('x')"]


def test_other_errors_still_escape_without_the_stop_signal(run_virtual: Any) -> None:
    async def main() -> Any:
        with pytest.raises(BaseExceptionGroup) as info:
            async with StoppableTaskGroup() as group:
                group.create_task(_fail(OSError("disk full"), 0.1))
                await asyncio.sleep(0.1)
                group.stop()  # in the same step as the failure
        return info.value

    group = run_virtual(main)
    assert [repr(e) for e in flatten_exceptions(group)] == ["OSError('disk full')"]


def test_stop_after_a_failure_is_a_no_op(run_virtual: Any) -> None:
    async def main() -> Any:
        stopped: List[str] = []

        async def stop_late(group: StoppableTaskGroup) -> None:
            try:
                await asyncio.sleep(3600)
            finally:
                group.stop()  # the group is already shutting down
                stopped.append("called stop()")

        with pytest.raises(BaseExceptionGroup) as info:
            async with StoppableTaskGroup() as group:
                group.create_task(stop_late(group))
                group.create_task(_fail(KeyError("k"), 0.1))
        return stopped, info.value

    stopped, group = run_virtual(main)
    assert stopped == ["called stop()"]
    assert [repr(e) for e in group.exceptions] == ["KeyError('k')"]


def test_an_error_in_the_body_is_not_swallowed_by_stop(run_virtual: Any) -> None:
    async def main() -> Any:
        with pytest.raises(BaseExceptionGroup) as info:
            async with StoppableTaskGroup() as group:
                group.create_task(asyncio.sleep(3600))
                group.stop()
                raise LookupError("in the body")
        return info.value

    group = run_virtual(main)
    assert [repr(e) for e in flatten_exceptions(group)] == ["LookupError('in the body')"]


@pytest.mark.skipif(
    sys.version_info < (3, 9),
    reason="taskgroup 0.2.2 hangs on 3.8 when the body is cancelled from outside at an await",
)
def test_an_outside_cancel_is_not_swallowed(run_virtual: Any) -> None:
    async def main() -> Any:
        log: List[str] = []

        async def body() -> None:
            async with StoppableTaskGroup() as group:
                group.create_task(_record_cancel(log, "child"))
                await asyncio.sleep(3600)

        task = asyncio.create_task(body())
        await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.wait([task])
        return task.cancelled(), log

    assert run_virtual(main) == (True, ["child cancelled"])


@pytest.mark.skipif(
    sys.version_info < (3, 13), reason="TaskGroup keeps a simultaneous outside cancel on 3.13+"
)
def test_an_outside_cancel_during_stop_is_passed_on(run_virtual: Any) -> None:
    async def main() -> Any:
        log: List[str] = []

        async def body() -> None:
            try:
                async with StoppableTaskGroup() as group:
                    group.create_task(asyncio.sleep(3600))
                    await asyncio.sleep(0.1)
                    group.stop()
                log.append("exited quietly")
                await asyncio.sleep(1)
                log.append("kept running")  # pragma: no cover - must not happen
            except asyncio.CancelledError:
                log.append("cancelled")
                raise

        task = asyncio.create_task(body())
        await asyncio.sleep(0.1)
        await asyncio.sleep(0)  # stop() has been called; its signal task is pending
        task.cancel()
        await asyncio.wait([task])
        return task.cancelled(), log

    assert run_virtual(main) == (True, ["exited quietly", "cancelled"])


# --- race --------------------------------------------------------------------


def test_race_returns_the_first_success_and_cancels_the_rest(run_virtual: Any) -> None:
    async def main() -> Any:
        log: List[str] = []
        winner = await race(
            _record_cancel(log, "slow", 0.5),
            _record_cancel(log, "fast", 0.1),
            _record_cancel(log, "mid", 0.3),
        )
        return winner, sorted(log)

    assert run_virtual(main) == ("fast", ["fast finished", "mid cancelled", "slow cancelled"])


def test_race_ignores_failures_while_someone_can_still_win(run_virtual: Any) -> None:
    async def main() -> Any:
        return await race(_fail(OSError("a"), 0.1), _fail(OSError("b"), 0.2), _value("c", 0.3))

    assert run_virtual(main) == "c"


def test_race_all_failing_raises_every_error_in_argument_order(run_virtual: Any) -> None:
    async def main() -> Any:
        with pytest.raises(ExceptionGroup) as info:
            await race(_fail(OSError("late"), 0.3), _fail(KeyError("early"), 0.1))
        return info.value

    group = run_virtual(main)
    assert [repr(e) for e in group.exceptions] == ["OSError('late')", "KeyError('early')"]
    assert "all 2 awaitables failed" in str(group)


def test_race_cancelled_from_outside_cancels_every_contender(run_virtual: Any) -> None:
    async def main() -> Any:
        log: List[str] = []
        task = asyncio.create_task(race(_record_cancel(log, "a"), _record_cancel(log, "b")))
        await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.wait([task])
        return task.cancelled(), sorted(log)

    assert run_virtual(main) == (True, ["a cancelled", "b cancelled"])


def test_race_does_not_swallow_base_exceptions(run_virtual: Any) -> None:
    class Fatal(BaseException):
        pass

    async def main() -> None:
        with pytest.raises((Fatal, BaseExceptionGroup)) as info:
            await race(_fail(Fatal(), 0.1), _value("late", 1))
        assert [type(e) for e in flatten_exceptions(info.value)] == [Fatal]

    run_virtual(main)


def test_race_with_nothing_raises_value_error(run_virtual: Any) -> None:
    async def main() -> None:
        with pytest.raises(ValueError, match="at least one"):
            await race()

    run_virtual(main)


def test_race_rejects_non_awaitables_and_closes_the_coroutines(run_virtual: Any) -> None:
    async def main() -> Any:
        coro = _value(1, 0)
        with pytest.raises(TypeError, match="awaitables, got int"):
            await race(coro, 5)
        return inspect.getcoroutinestate(coro)

    assert run_virtual(main) == inspect.CORO_CLOSED


def test_race_under_load(run_virtual: Any) -> None:
    async def main() -> Any:
        log: List[str] = []
        contenders = [_record_cancel(log, str(n), 1 + n / 1000) for n in range(1, 500)]
        winner = await race(_value("winner", 0.5), *contenders)
        return winner, len(log), all(entry.endswith("cancelled") for entry in log)

    assert run_virtual(main) == ("winner", 499, True)


# --- flatten_exceptions ------------------------------------------------------


def test_flatten_exceptions_walks_nested_groups_depth_first() -> None:
    leaves = [KeyError("a"), ValueError("b"), OSError("c"), KeyboardInterrupt()]
    group = BaseExceptionGroup(
        "outer",
        [
            leaves[0],
            ExceptionGroup("inner", [leaves[1], ExceptionGroup("deeper", [leaves[2]])]),
            BaseExceptionGroup("base", [leaves[3]]),
        ],
    )
    assert flatten_exceptions(group) == leaves
    assert all(a is b for a, b in zip(flatten_exceptions(group), leaves))


def test_flatten_exceptions_of_a_plain_exception() -> None:
    error = KeyError("solo")
    assert flatten_exceptions(error) == [error]


def test_flatten_exceptions_rejects_non_exceptions() -> None:
    with pytest.raises(TypeError, match="takes an exception"):
        flatten_exceptions("not an exception")  # type: ignore[arg-type]


def test_flatten_exceptions_of_a_real_taskgroup_failure(run_virtual: Any) -> None:
    async def inner() -> None:
        async with TaskGroup() as tg:
            tg.create_task(_fail(KeyError("deep"), 0.1))

    async def main() -> Any:
        with pytest.raises(BaseExceptionGroup) as info:
            async with TaskGroup() as tg:
                tg.create_task(inner())
                tg.create_task(_fail(OSError("shallow"), 0.1))
        return info.value

    group = run_virtual(main)
    assert sorted(repr(e) for e in flatten_exceptions(group)) == [
        "KeyError('deep')",
        "OSError('shallow')",
    ]
