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


# StoppableTaskGroup.stop() has two implementations: a task raising a private exception
# (3.8-3.14) and TaskGroup.cancel() (3.15+).  Its tests run on each one this Python has,
# so on 3.15 they show that both give the same results.
STOP_PATHS = ["signal task"] + (["TaskGroup.cancel"] if sys.version_info >= (3, 15) else [])


@pytest.fixture(params=STOP_PATHS)
def stop_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(task_groups, "_NATIVE_CANCEL", request.param == "TaskGroup.cancel")
    return str(request.param)


def seconds(expected: float) -> Any:
    """Compare loop times: exact on the virtual clock, within 50 ms on the real one."""
    return pytest.approx(expected, abs=0.05)


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


def test_stop_from_the_body_cancels_tasks_and_skips_the_rest(
    run_virtual: Any, stop_path: str
) -> None:
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


def test_stop_from_a_child_task(run_virtual: Any, stop_path: str) -> None:
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


def test_stop_twice_and_after_exit_do_nothing(run_virtual: Any, stop_path: str) -> None:
    async def main() -> None:
        async with StoppableTaskGroup() as group:
            group.create_task(asyncio.sleep(3600))
            group.stop()
            group.stop()
        group.stop()

    run_virtual(main)


def test_stop_before_entering_raises(run_virtual: Any, stop_path: str) -> None:
    async def main() -> None:
        with pytest.raises(RuntimeError, match="before the group was entered"):
            StoppableTaskGroup().stop()

    run_virtual(main)


def test_a_group_that_is_not_stopped_behaves_like_a_taskgroup(
    run_virtual: Any, stop_path: str
) -> None:
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


def test_other_errors_still_escape_without_the_stop_signal(
    run_virtual: Any, stop_path: str
) -> None:
    async def main() -> Any:
        with pytest.raises(BaseExceptionGroup) as info:
            async with StoppableTaskGroup() as group:
                group.create_task(_fail(OSError("disk full"), 0.1))
                await asyncio.sleep(0.1)
                group.stop()  # in the same step as the failure
        return info.value

    group = run_virtual(main)
    assert [repr(e) for e in flatten_exceptions(group)] == ["OSError('disk full')"]


def test_stop_after_a_failure_is_a_no_op(run_virtual: Any, stop_path: str) -> None:
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


def test_an_error_in_the_body_is_not_swallowed_by_stop(run_virtual: Any, stop_path: str) -> None:
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
def test_an_outside_cancel_is_not_swallowed(run_virtual: Any, stop_path: str) -> None:
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
def test_an_outside_cancel_during_stop_is_passed_on(run_virtual: Any, stop_path: str) -> None:
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
        await asyncio.sleep(0)  # stop() has been called and has not taken effect yet
        task.cancel()
        await asyncio.wait([task])
        return task.cancelled(), log

    if stop_path == "TaskGroup.cancel":  # 3.15: out of the async with statement itself
        assert run_virtual(main) == (True, ["cancelled"])
    else:  # 3.13+: the block exits quietly, the next await raises
        assert run_virtual(main) == (True, ["exited quietly", "cancelled"])


def test_stop_takes_the_path_of_this_python() -> None:
    assert task_groups._NATIVE_CANCEL is (sys.version_info >= (3, 15))
    assert hasattr(TaskGroup, "cancel") is task_groups._NATIVE_CANCEL


def test_stop_starts_a_signal_task_only_without_taskgroup_cancel(
    run_virtual: Any, stop_path: str
) -> None:
    async def main() -> Any:
        async with StoppableTaskGroup() as group:
            child = group.create_task(asyncio.sleep(3600))
            before = asyncio.all_tasks()
            group.stop()
            started = asyncio.all_tasks() - before
        return len(started), child.cancelled()

    expected_signal_tasks = 0 if stop_path == "TaskGroup.cancel" else 1
    assert run_virtual(main) == (expected_signal_tasks, True)


def test_a_task_that_stops_the_group_keeps_its_result(run_virtual: Any, stop_path: str) -> None:
    async def main() -> Any:
        log: List[str] = []

        async def finder(group: StoppableTaskGroup) -> str:
            await asyncio.sleep(0.2)
            group.stop()
            return "found it"

        async with StoppableTaskGroup() as group:
            found = group.create_task(finder(group))
            group.create_task(_record_cancel(log, "other"))
        return found.result(), log

    assert run_virtual(main) == ("found it", ["other cancelled"])


def test_stop_lets_the_tasks_due_in_the_same_step_finish(run_virtual: Any, stop_path: str) -> None:
    # Both sleeps end at 0.1; the body's timer fires first, so the worker is already due.
    async def main() -> Any:
        async with StoppableTaskGroup() as group:
            due = group.create_task(_value("due", 0.1))
            late = group.create_task(_value("late", 0.2))
            await asyncio.sleep(0.1)
            assert not due.done()
            group.stop()
        return due.result(), late.cancelled()

    assert run_virtual(main) == ("due", True)


def test_stop_from_outside_the_group(run_virtual: Any, stop_path: str) -> None:
    async def main() -> Any:
        log: List[str] = []
        loop = asyncio.get_running_loop()
        start = loop.time()
        group = StoppableTaskGroup()

        async def watchdog() -> None:
            await asyncio.sleep(0.5)
            group.stop()

        watcher = asyncio.create_task(watchdog())
        async with group:
            group.create_task(_record_cancel(log, "a"))
            await asyncio.sleep(3600)
        await watcher
        by_task = loop.time() - start

        async with StoppableTaskGroup() as group:
            loop.call_later(0.5, group.stop)
            group.create_task(_record_cancel(log, "b"))
        return log, by_task, loop.time() - start - by_task

    log, by_task, by_timer = run_virtual(main)
    assert log == ["a cancelled", "b cancelled"]
    assert (by_task, by_timer) == (seconds(0.5), seconds(0.5))


def test_stop_with_nothing_running_does_not_cancel_the_caller(
    run_virtual: Any, stop_path: str
) -> None:
    async def main() -> Any:
        async with StoppableTaskGroup() as group:
            group.stop()  # no task, no await: the block ends before stop() acts
        for _ in range(3):
            await asyncio.sleep(0)  # would raise if the stop reached this task late
        current = asyncio.current_task()
        assert current is not None
        # 3.11 and 3.12 leave the count of the group's own cancel request behind
        # whenever a group is stopped (or fails) while it waits for its tasks.
        return current.cancelling() if sys.version_info >= (3, 13) else 0

    assert run_virtual(main) == 0


def test_a_task_created_right_after_stop_is_cancelled_at_its_first_await(
    run_virtual: Any, stop_path: str
) -> None:
    async def main() -> Any:
        log: List[str] = []
        async with StoppableTaskGroup() as group:
            group.stop()
            late = group.create_task(_record_cancel(log, "late"))
        return late.cancelled(), log

    assert run_virtual(main) == (True, ["late cancelled"])


def test_stop_while_the_block_waits_for_its_tasks(run_virtual: Any, stop_path: str) -> None:
    async def main() -> Any:
        log: List[str] = []
        start = asyncio.get_running_loop().time()

        async def stop_later(group: StoppableTaskGroup) -> None:
            await asyncio.sleep(0.3)
            group.stop()

        async with StoppableTaskGroup() as group:
            group.create_task(_record_cancel(log, "a"))
            group.create_task(stop_later(group))
        log.append("after")
        await asyncio.sleep(0)
        return log, asyncio.get_running_loop().time() - start

    log, elapsed = run_virtual(main)
    assert log == ["a cancelled", "after"]
    assert elapsed == seconds(0.3)


# --- TaskGroup.cancel() (3.15), as the chapter describes it ----------------------

needs_taskgroup_cancel = pytest.mark.skipif(
    sys.version_info < (3, 15), reason="TaskGroup.cancel() needs Python >= 3.15"
)


@needs_taskgroup_cancel
def test_tg_cancel_from_the_body_exits_quietly_at_the_next_await(run_virtual: Any) -> None:
    async def main() -> Any:
        log: List[str] = []
        coro = _value("too late", 0)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(_record_cancel(log, "a"))
            await asyncio.sleep(0.1)
            tg.cancel()
            log.append("body runs on")
            with pytest.raises(RuntimeError, match="shutting down"):
                tg.create_task(coro)
            await asyncio.sleep(10)
            log.append("body continued")  # pragma: no cover - must not run
        log.append("after")
        await asyncio.sleep(0)  # no cancellation left over for this task
        current = asyncio.current_task()
        assert current is not None
        return log, current.cancelling(), inspect.getcoroutinestate(coro)

    assert run_virtual(main) == (
        ["body runs on", "a cancelled", "after"],
        0,
        inspect.CORO_CLOSED,
    )


@needs_taskgroup_cancel
def test_tg_cancel_from_a_task_cancels_that_task_too(run_virtual: Any) -> None:
    async def main() -> Any:
        found: List[str] = []

        async def search(tg: Any, name: str, seconds: float) -> str:
            await asyncio.sleep(seconds)
            found.append(name)
            tg.cancel()
            return name  # lost: this task is cancelled as well

        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(search(tg, n, s)) for n, s in [("a", 0.3), ("b", 0.1)]]
        return found, [t.cancelled() for t in tasks]

    assert run_virtual(main) == (["b"], [True, True])


@needs_taskgroup_cancel
def test_tg_cancel_from_a_watchdog_or_a_timer(run_virtual: Any) -> None:
    async def main() -> Any:
        log: List[str] = []
        loop = asyncio.get_running_loop()
        start = loop.time()
        tg = asyncio.TaskGroup()

        async def watchdog() -> None:
            await asyncio.sleep(0.5)
            tg.cancel()

        watcher = asyncio.create_task(watchdog())
        async with tg:
            tg.create_task(_record_cancel(log, "a"))
            await asyncio.sleep(3600)
        await watcher
        async with asyncio.TaskGroup() as tg:
            loop.call_later(0.5, tg.cancel)
            tg.create_task(_record_cancel(log, "b"))
        return log, loop.time() - start

    log, elapsed = run_virtual(main)
    assert log == ["a cancelled", "b cancelled"]
    assert elapsed == seconds(1.0)


@needs_taskgroup_cancel
def test_tg_cancel_is_idempotent_and_does_nothing_after_exit(run_virtual: Any) -> None:
    async def main() -> Any:
        async with asyncio.TaskGroup() as tg:
            a = tg.create_task(_value("a", 0.1))
        tg.cancel()
        tg.cancel()
        await asyncio.sleep(0.1)  # would raise if the group cancelled this task
        async with asyncio.TaskGroup() as tg:
            b = tg.create_task(asyncio.sleep(3600))
            tg.cancel()
            tg.cancel()
        await asyncio.sleep(0.1)
        current = asyncio.current_task()
        assert current is not None
        return a.result(), b.cancelled(), current.cancelling()

    assert run_virtual(main) == ("a", True, 0)


@needs_taskgroup_cancel
def test_tg_cancel_before_entering_cancels_the_group_on_entry(run_virtual: Any) -> None:
    async def main() -> Any:
        log: List[str] = []
        start = asyncio.get_running_loop().time()
        tg = asyncio.TaskGroup()
        tg.cancel()
        async with tg:
            log.append("body starts")
            await asyncio.sleep(3600)
            log.append("body continued")  # pragma: no cover - must not run
        with pytest.raises(BaseExceptionGroup) as info:
            tg = asyncio.TaskGroup()
            tg.cancel()
            async with tg:
                tg.create_task(asyncio.sleep(1))
        elapsed = asyncio.get_running_loop().time() - start
        return log, [repr(e) for e in info.value.exceptions], elapsed

    log, errors, elapsed = run_virtual(main)
    assert log == ["body starts"]
    assert (
        len(errors) == 1 and errors[0].startswith("RuntimeError(") and "shutting down" in errors[0]
    )
    assert elapsed == seconds(0)


@needs_taskgroup_cancel
def test_tg_cancel_acts_at_once_on_tasks_due_in_the_same_step(run_virtual: Any) -> None:
    # Unlike StoppableTaskGroup.stop(): the task's sleep is over, yet it never raises.
    async def main() -> Any:
        async with asyncio.TaskGroup() as tg:
            crasher = tg.create_task(_fail(RuntimeError("disk full"), 0.1))
            await asyncio.sleep(0.1)
            assert not crasher.done()
            tg.cancel()
        return crasher.cancelled()

    assert run_virtual(main) is True


@needs_taskgroup_cancel
def test_tg_cancel_after_a_failure_still_raises_the_errors(run_virtual: Any) -> None:
    async def main() -> Any:
        async def cancel_on_the_way_out(tg: Any) -> None:
            try:
                await asyncio.sleep(3600)
            finally:
                tg.cancel()

        with pytest.raises(BaseExceptionGroup) as info:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(cancel_on_the_way_out(tg))
                tg.create_task(_fail(KeyError("k"), 0.1))
        return info.value

    group = run_virtual(main)
    assert isinstance(group, ExceptionGroup)
    assert [repr(e) for e in group.exceptions] == ["KeyError('k')"]


@needs_taskgroup_cancel
def test_tg_cancel_reports_errors_raised_while_cancelling(run_virtual: Any) -> None:
    async def main() -> Any:
        async def bad_cleanup() -> None:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                raise ValueError("cleanup failed") from None

        with pytest.raises(BaseExceptionGroup) as info:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(bad_cleanup())
                await asyncio.sleep(0.1)
                tg.cancel()
        return info.value

    group = run_virtual(main)
    assert isinstance(group, ExceptionGroup)
    assert [repr(e) for e in group.exceptions] == ["ValueError('cleanup failed')"]


@needs_taskgroup_cancel
def test_tg_cancel_keeps_the_results_of_finished_tasks(run_virtual: Any) -> None:
    async def main() -> Any:
        async with asyncio.TaskGroup() as tg:
            a = tg.create_task(_value("a", 0.1))
            b = tg.create_task(_value("b", 0.3))
            await asyncio.sleep(0.2)
            tg.cancel()
        return a.result(), b.cancelled()

    assert run_virtual(main) == ("a", True)


@needs_taskgroup_cancel
@pytest.mark.parametrize("when", ["while the body waits", "while the group stops"])
def test_tg_cancel_an_outside_cancel_comes_out_of_the_block(run_virtual: Any, when: str) -> None:
    async def main() -> Any:
        log: List[str] = []

        async def body() -> None:
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(_record_cancel(log, "child"))
                    await asyncio.sleep(0.1)
                    if when == "while the group stops":
                        tg.cancel()  # the block then waits for the child
                    else:
                        await asyncio.sleep(3600)
                log.append("exited the block")  # pragma: no cover - must not happen
            except asyncio.CancelledError:
                log.append("CancelledError from the block")
                raise

        task = asyncio.create_task(body())
        await asyncio.sleep(0.1)
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.wait([task])
        return task.cancelled(), log

    assert run_virtual(main) == (True, ["child cancelled", "CancelledError from the block"])


@needs_taskgroup_cancel
def test_tg_cancel_then_a_timeout_around_the_block_still_fires(run_virtual: Any) -> None:
    async def main() -> Any:
        log: List[str] = []
        start = asyncio.get_running_loop().time()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1):
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(_record_cancel(log, "x"))
                    await asyncio.sleep(0.1)
                    tg.cancel()
                log.append("after the group")
                await asyncio.sleep(5)
        return log, asyncio.get_running_loop().time() - start

    log, elapsed = run_virtual(main)
    assert log == ["x cancelled", "after the group"]
    assert elapsed == seconds(1)


@needs_taskgroup_cancel
def test_tg_cancel_a_timeout_expiring_while_the_group_stops_still_fires(
    run_virtual: Any,
) -> None:
    async def main() -> Any:
        log: List[str] = []
        start = asyncio.get_running_loop().time()

        async def slow_cleanup() -> None:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                await asyncio.sleep(1)  # the timeout expires meanwhile
                log.append("cleanup done")
                raise

        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(slow_cleanup())
                    await asyncio.sleep(0.1)
                    tg.cancel()
                log.append("after the group")  # pragma: no cover - must not run
        return log, asyncio.get_running_loop().time() - start

    log, elapsed = run_virtual(main)
    assert log == ["cleanup done"]
    assert elapsed == seconds(1.1)


@needs_taskgroup_cancel
def test_tg_cancel_of_an_inner_group_leaves_the_outer_one_alone(run_virtual: Any) -> None:
    async def main() -> Any:
        log: List[str] = []
        async with asyncio.TaskGroup() as outer:
            outer_task = outer.create_task(_value("outer", 0.5))
            async with asyncio.TaskGroup() as inner:
                inner.create_task(_record_cancel(log, "inner"))
                await asyncio.sleep(0.1)
                inner.cancel()
            log.append("after inner")
        return log, outer_task.result()

    assert run_virtual(main) == (["inner cancelled", "after inner"], "outer")


# --- TaskGroup in an async generator closed at a yield ---------------------------


def _generator_closed_inside_a_group(run_virtual: Any, fail_child: bool) -> Any:
    async def main() -> Any:
        log: List[str] = []

        async def child() -> None:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                log.append("child cancelled")
                if fail_child:
                    raise OSError("child cleanup failed") from None
                raise

        async def numbers() -> Any:
            async with TaskGroup() as tg:
                tg.create_task(child())
                await asyncio.sleep(0.1)
                yield 1
                yield 2  # pragma: no cover - closed before

        gen = numbers()
        first = await gen.__anext__()
        try:
            await gen.aclose()
        except BaseException as exc:  # the outcome is what is tested
            return first, log, exc
        return first, log, None

    return run_virtual(main)


@pytest.mark.skipif(
    sys.version_info >= (3, 15), reason="3.15 lets GeneratorExit through a TaskGroup"
)
def test_closing_a_generator_inside_a_group_raises_a_group_before_315(run_virtual: Any) -> None:
    first, log, raised = _generator_closed_inside_a_group(run_virtual, fail_child=False)
    assert (first, log) == (1, ["child cancelled"])
    assert isinstance(raised, BaseExceptionGroup)
    assert [type(e) for e in raised.exceptions] == [GeneratorExit]


@pytest.mark.skipif(
    sys.version_info < (3, 15), reason="GeneratorExit passes through a TaskGroup on 3.15+"
)
def test_closing_a_generator_inside_a_group_is_clean_on_315(run_virtual: Any) -> None:
    assert _generator_closed_inside_a_group(run_virtual, fail_child=False) == (
        1,
        ["child cancelled"],
        None,
    )


def test_closing_a_generator_inside_a_group_still_reports_a_task_error(
    run_virtual: Any,
) -> None:
    first, log, raised = _generator_closed_inside_a_group(run_virtual, fail_child=True)
    assert (first, log) == (1, ["child cancelled"])
    assert isinstance(raised, BaseExceptionGroup)
    assert sorted(type(e).__name__ for e in raised.exceptions) == ["GeneratorExit", "OSError"]


# --- race --------------------------------------------------------------------


def test_race_returns_the_first_success_and_cancels_the_rest(
    run_virtual: Any, stop_path: str
) -> None:
    async def main() -> Any:
        log: List[str] = []
        winner = await race(
            _record_cancel(log, "slow", 0.5),
            _record_cancel(log, "fast", 0.1),
            _record_cancel(log, "mid", 0.3),
        )
        return winner, sorted(log)

    assert run_virtual(main) == ("fast", ["fast finished", "mid cancelled", "slow cancelled"])


def test_race_tie_in_one_step_goes_to_the_earlier_argument(
    run_virtual: Any, stop_path: str
) -> None:
    # Both answers arrive at 0.1, the later argument's first: it is woken first.
    async def main() -> Any:
        loop = asyncio.get_running_loop()
        first: asyncio.Future[str] = loop.create_future()
        second: asyncio.Future[str] = loop.create_future()
        loop.call_later(0.1, second.set_result, "second")
        loop.call_later(0.1, first.set_result, "first")
        return await race(first, second)

    assert run_virtual(main) == "first"


def test_race_ignores_failures_while_someone_can_still_win(
    run_virtual: Any, stop_path: str
) -> None:
    async def main() -> Any:
        return await race(_fail(OSError("a"), 0.1), _fail(OSError("b"), 0.2), _value("c", 0.3))

    assert run_virtual(main) == "c"


def test_race_all_failing_raises_every_error_in_argument_order(
    run_virtual: Any, stop_path: str
) -> None:
    async def main() -> Any:
        with pytest.raises(ExceptionGroup) as info:
            await race(_fail(OSError("late"), 0.3), _fail(KeyError("early"), 0.1))
        return info.value

    group = run_virtual(main)
    assert [repr(e) for e in group.exceptions] == ["OSError('late')", "KeyError('early')"]
    assert "all 2 awaitables failed" in str(group)


def _cancelled_by_its_owner(seconds: float) -> asyncio.Future[Any]:
    """A future that someone else cancels after ``seconds``: a contender that ends cancelled."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    loop.call_later(seconds, future.cancel)
    return future


async def _cancels_itself(seconds: float) -> None:
    await asyncio.sleep(seconds)
    raise asyncio.CancelledError  # e.g. it awaited a task that its owner cancelled


def test_race_where_every_contender_ends_cancelled_raises_a_group_of_them(
    run_virtual: Any, stop_path: str
) -> None:
    # Before the fix: ValueError('second argument (exceptions) must be a non-empty sequence').
    async def main() -> Any:
        task = asyncio.create_task(race(_cancelled_by_its_owner(0.1), _cancels_itself(0.2)))
        await asyncio.wait([task])
        assert not task.cancelled()  # the caller was not cancelled: it gets an error
        return task.exception()

    group = run_virtual(main)
    assert isinstance(group, BaseExceptionGroup)
    assert not isinstance(group, ExceptionGroup)  # it holds CancelledErrors
    assert str(group) == (
        "race(): none of 2 awaitables succeeded: 0 failed, 2 cancelled (2 sub-exceptions)"
    )
    assert [type(e) for e in group.exceptions] == [asyncio.CancelledError] * 2


def test_race_with_a_failure_and_a_cancellation_counts_and_reports_both(
    run_virtual: Any, stop_path: str
) -> None:
    # Before the fix: "race(): all 2 awaitables failed (1 sub-exception)", the cancellation
    # missing from the group.
    async def main() -> Any:
        with pytest.raises(BaseExceptionGroup) as info:
            await race(_cancelled_by_its_owner(0.2), _fail(OSError("down"), 0.1))
        return info.value

    group = run_virtual(main)
    assert str(group) == (
        "race(): none of 2 awaitables succeeded: 1 failed, 1 cancelled (2 sub-exceptions)"
    )
    assert [type(e) for e in group.exceptions] == [asyncio.CancelledError, OSError]
    matched, rest = group.split(OSError)
    assert matched is not None and isinstance(matched, ExceptionGroup)
    assert rest is not None and [type(e) for e in rest.exceptions] == [asyncio.CancelledError]


def test_race_a_cancelled_contender_does_not_end_the_race(
    run_virtual: Any, stop_path: str
) -> None:
    async def main() -> Any:
        loop = asyncio.get_running_loop()
        start = loop.time()
        winner = await race(_cancelled_by_its_owner(0.1), _cancels_itself(0.1), _value("c", 0.3))
        return winner, loop.time() - start

    assert run_virtual(main) == ("c", seconds(0.3))


def test_race_cancelled_from_outside_cancels_every_contender(
    run_virtual: Any, stop_path: str
) -> None:
    async def main() -> Any:
        log: List[str] = []
        task = asyncio.create_task(race(_record_cancel(log, "a"), _record_cancel(log, "b")))
        await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.wait([task])
        return task.cancelled(), sorted(log)

    assert run_virtual(main) == (True, ["a cancelled", "b cancelled"])


def test_race_does_not_swallow_base_exceptions(run_virtual: Any, stop_path: str) -> None:
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


def test_race_under_load(run_virtual: Any, stop_path: str) -> None:
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
