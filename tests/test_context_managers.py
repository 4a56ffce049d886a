"""Behaviour, fault, cancellation and bad-input tests for recipes/context_managers.py."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import sys
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, AsyncIterator, Dict, List, Optional, Tuple

import pytest

from recipes.context_managers import (
    Timer,
    anullcontext,
    async_closing,
    open_all,
    shielded_cleanup,
)


@asynccontextmanager
async def resource(
    name: str,
    log: List[str],
    *,
    fail_enter: Optional[BaseException] = None,
    fail_exit: Optional[BaseException] = None,
    enter_delay: float = 0.1,
    exit_delay: float = 0.1,
) -> AsyncIterator[str]:
    """A resource that takes time to acquire and to release, and can fail at either."""
    log.append(f"enter {name}")
    await asyncio.sleep(enter_delay)
    if fail_enter is not None:
        raise fail_enter
    try:
        yield name
    finally:
        await asyncio.sleep(exit_delay)
        log.append(f"exit {name}")
        if fail_exit is not None:
            raise fail_exit


def only_current_task_left() -> bool:
    return asyncio.all_tasks() == {asyncio.current_task()}


# --- the protocol and the stdlib behaviour the chapter describes ------------------


class Recorder:
    """Records what __aexit__ receives; suppresses the exception types it is given."""

    def __init__(self, suppress: Tuple[type, ...] = ()) -> None:
        self.suppress = suppress
        self.exit_args: Any = None

    async def __aenter__(self) -> Recorder:
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        self.exit_args = (exc_type, exc, tb)
        return exc_type is not None and issubclass(exc_type, self.suppress)


def test_aexit_arguments(run_virtual: Any) -> None:
    async def main() -> Tuple[Any, Any, BaseException]:
        clean = Recorder()
        async with clean:
            pass
        failing = Recorder()
        error = KeyError("k")
        with pytest.raises(KeyError):
            async with failing:
                raise error
        return clean.exit_args, failing.exit_args, error

    clean_args, failing_args, error = run_virtual(main)
    assert clean_args == (None, None, None)
    assert failing_args[0] is KeyError
    assert failing_args[1] is error
    assert failing_args[2] is error.__traceback__ or failing_args[2] is not None


def test_returning_true_suppresses_only_matching_types(run_virtual: Any) -> None:
    async def main() -> str:
        async with Recorder(suppress=(KeyError,)):
            raise KeyError("suppressed")
        with pytest.raises(ValueError):
            async with Recorder(suppress=(KeyError,)):
                raise ValueError("not suppressed")
        return "continued"

    assert run_virtual(main) == "continued"


def test_exception_based_suppression_leaves_cancellation_alone(run_virtual: Any) -> None:
    async def main() -> bool:
        async def worker() -> None:
            async with Recorder(suppress=(Exception,)):
                await asyncio.sleep(3600)

        task = asyncio.ensure_future(worker())
        await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.wait({task})
        return task.cancelled()

    assert run_virtual(main) is True


def test_suppressing_everything_defeats_cancel(run_virtual: Any) -> None:
    # The bug the chapter warns about: the task survives cancel() and wait_for's timeout.
    async def main() -> Tuple[bool, str]:
        async def worker() -> str:
            async with Recorder(suppress=(BaseException,)):
                await asyncio.sleep(3600)
            await asyncio.sleep(0.5)
            return "finished anyway"

        task = asyncio.ensure_future(worker())
        await asyncio.sleep(0.1)
        task.cancel()
        result = await task
        return task.cancelled(), result

    assert run_virtual(main) == (False, "finished anyway")


def test_asynccontextmanager_rollback_on_error_and_cancel(run_virtual: Any) -> None:
    async def main() -> List[str]:
        log: List[str] = []

        @asynccontextmanager
        async def transaction() -> AsyncIterator[None]:
            log.append("begin")
            try:
                yield
            except BaseException as exc:
                log.append(f"rollback after {type(exc).__name__}")
                raise
            else:
                log.append("commit")

        async with transaction():
            pass
        with pytest.raises(ValueError):
            async with transaction():
                raise ValueError

        async def worker() -> None:
            async with transaction():
                await asyncio.sleep(3600)

        task = asyncio.ensure_future(worker())
        await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.wait({task})
        assert task.cancelled()
        return log

    assert run_virtual(main) == [
        "begin",
        "commit",
        "begin",
        "rollback after ValueError",
        "begin",
        "rollback after CancelledError",
    ]


def test_asynccontextmanager_misuse_errors(run_virtual: Any) -> None:
    async def main() -> None:
        @asynccontextmanager
        async def no_yield() -> AsyncIterator[None]:
            if False:  # pragma: no cover
                yield

        @asynccontextmanager
        async def two_yields() -> AsyncIterator[None]:
            yield
            yield

        with pytest.raises(RuntimeError, match="didn't yield"):
            async with no_yield():
                pass
        cm = two_yields()
        with pytest.raises(RuntimeError, match="didn't stop"):
            async with cm:
                pass
        await cm.gen.aclose()  # 3.8-3.10 leave the generator suspended

    run_virtual(main)


# --- context managers as decorators of coroutine and async generator functions ----


@asynccontextmanager
async def logged_transaction(log: List[str]) -> AsyncIterator[None]:
    log.append("begin")
    try:
        yield
    except BaseException as exc:
        log.append(f"rollback on {type(exc).__name__}")
        raise
    else:
        log.append("commit")


@contextlib.contextmanager
def logged_span(log: List[str]) -> Any:
    log.append("enter")
    try:
        yield
    finally:
        log.append("exit")


needs_315 = pytest.mark.skipif(
    sys.version_info < (3, 15), reason="context decorators follow the wrapped kind on 3.15+"
)
before_315 = pytest.mark.skipif(
    sys.version_info >= (3, 15), reason="behaviour of 3.14 and older; 3.15 changed it"
)
needs_async_decorator = pytest.mark.skipif(
    sys.version_info < (3, 10), reason="AsyncContextDecorator needs Python >= 3.10"
)


def _decorated_rows(log: List[str]) -> Any:
    @logged_transaction(log)
    async def rows() -> AsyncIterator[int]:
        for n in range(3):
            await asyncio.sleep(0.1)
            log.append(f"row {n}")
            yield n

    return rows


@needs_315
def test_async_decorator_keeps_an_async_generator_inside_the_context(run_virtual: Any) -> None:
    async def main() -> Any:
        log: List[str] = []
        rows = _decorated_rows(log)
        assert inspect.isasyncgenfunction(rows)
        got = [row async for row in rows()]
        return got, log

    assert run_virtual(main) == ([0, 1, 2], ["begin", "row 0", "row 1", "row 2", "commit"])


@needs_315
def test_async_decorator_on_a_generator_that_stops_early_exits_at_aclose(
    run_virtual: Any,
) -> None:
    async def main() -> Any:
        log: List[str] = []
        stream = _decorated_rows(log)()
        async for _ in stream:
            break
        log.append("loop left")
        await stream.aclose()
        return log

    assert run_virtual(main) == ["begin", "row 0", "loop left", "rollback on GeneratorExit"]


@needs_315
def test_async_decorator_does_not_forward_asend_and_athrow(run_virtual: Any) -> None:
    async def main() -> Any:
        log: List[str] = []

        @logged_transaction(log)
        async def echo() -> AsyncIterator[Any]:
            try:
                sent = yield "first"
                log.append(f"inner got {sent!r}")
                yield "second"
            except ValueError:  # pragma: no cover - must not be reached
                log.append("inner saw the ValueError")
                yield "handled"
            finally:
                log.append("inner closed")

        gen = echo()
        assert await gen.asend(None) == "first"
        assert await gen.asend("hello") == "second"
        with pytest.raises(ValueError):
            await gen.athrow(ValueError("boom"))
        return log

    assert run_virtual(main) == [
        "begin",
        "inner got None",
        "inner closed",
        "rollback on ValueError",
    ]


@needs_async_decorator
@before_315
def test_async_decorator_turns_an_async_generator_into_a_coroutine_before_315(
    run_virtual: Any,
) -> None:
    async def main() -> Any:
        log: List[str] = []
        call = _decorated_rows(log)()
        assert inspect.iscoroutine(call)
        with pytest.raises(TypeError, match="__aiter__"):
            async for _ in call:  # type: ignore[attr-defined]
                pass  # pragma: no cover - never iterates
        call.close()  # no "never awaited" warning
        return log

    assert run_virtual(main) == []


@needs_async_decorator
def test_async_decorator_on_a_coroutine_function_is_the_same_everywhere(
    run_virtual: Any,
) -> None:
    async def main() -> Any:
        log: List[str] = []

        @logged_transaction(log)
        async def job() -> str:
            await asyncio.sleep(0.1)
            log.append("working")
            return "done"

        return await job(), log

    assert run_virtual(main) == ("done", ["begin", "working", "commit"])


@needs_315
def test_sync_decorator_wraps_the_await_of_a_coroutine_function(run_virtual: Any) -> None:
    async def main() -> Any:
        log: List[str] = []

        @logged_span(log)
        async def work() -> str:
            await asyncio.sleep(0.1)
            log.append("working")
            return "done"

        return await work(), log

    assert run_virtual(main) == ("done", ["enter", "working", "exit"])


@before_315
def test_sync_decorator_exits_before_a_coroutine_function_runs_before_315(
    run_virtual: Any,
) -> None:
    async def main() -> Any:
        log: List[str] = []

        @logged_span(log)
        async def work() -> str:
            await asyncio.sleep(0.1)
            log.append("working")
            return "done"

        coro = work()
        log.append("coroutine created")
        return await coro, log

    assert run_virtual(main) == ("done", ["enter", "exit", "coroutine created", "working"])


def _sync_decorated_async_generator(run_virtual: Any) -> Any:
    async def main() -> Any:
        log: List[str] = []

        @logged_span(log)
        async def ticks() -> AsyncIterator[int]:
            for n in range(2):
                await asyncio.sleep(0.1)
                log.append(f"tick {n}")
                yield n

        gen = ticks()
        log.append("generator created")
        return [n async for n in gen], log

    return run_virtual(main)


@needs_315
def test_sync_decorator_keeps_an_async_generator_inside_the_context(run_virtual: Any) -> None:
    assert _sync_decorated_async_generator(run_virtual) == (
        [0, 1],
        ["generator created", "enter", "tick 0", "tick 1", "exit"],
    )


@before_315
def test_sync_decorator_exits_when_the_async_generator_is_created_before_315(
    run_virtual: Any,
) -> None:
    assert _sync_decorated_async_generator(run_virtual) == (
        [0, 1],
        ["enter", "exit", "generator created", "tick 0", "tick 1"],
    )


def _rows_inside(log: List[str]) -> Any:
    async def rows() -> AsyncIterator[int]:
        async with logged_transaction(log):
            for n in range(3):
                await asyncio.sleep(0.1)
                log.append(f"row {n}")
                yield n

    return rows


def test_entering_inside_the_generator_works_on_every_version(run_virtual: Any) -> None:
    async def main() -> Any:
        log: List[str] = []
        got = [row async for row in _rows_inside(log)()]
        return got, log

    assert run_virtual(main) == ([0, 1, 2], ["begin", "row 0", "row 1", "row 2", "commit"])


def test_entering_inside_the_generator_an_early_stop_rolls_back_at_aclose(
    run_virtual: Any,
) -> None:
    async def main() -> Any:
        log: List[str] = []
        stream = _rows_inside(log)()
        try:
            async for _ in stream:
                raise KeyError("consumer failed")
        except KeyError:
            log.append("consumer failed")
        await stream.aclose()
        return log

    assert run_virtual(main) == ["begin", "row 0", "consumer failed", "rollback on GeneratorExit"]


def test_entering_inside_the_generator_rolls_back_when_cancelled(run_virtual: Any) -> None:
    async def main() -> Any:
        log: List[str] = []

        async def consume() -> None:
            async for _ in _rows_inside(log)():
                pass

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.15)
        task.cancel()
        await asyncio.wait([task])
        return task.cancelled(), log

    assert run_virtual(main) == (True, ["begin", "row 0", "rollback on CancelledError"])


# --- Timer --------------------------------------------------------------------


def test_timer_measures_loop_time(run_virtual: Any) -> None:
    async def main() -> Tuple[float, float, float]:
        timer = Timer("t")
        async with timer:
            await asyncio.sleep(0.2)
            during = timer.elapsed
            await asyncio.sleep(0.3)
        after = timer.elapsed
        await asyncio.sleep(1)  # a finished timer no longer moves
        return round(during, 1), round(after, 1), round(timer.elapsed, 1)

    assert run_virtual(main) == (0.2, 0.5, 0.5)


def test_timer_reports_on_success_error_and_cancel(run_virtual: Any) -> None:
    async def main() -> List[Tuple[str, float]]:
        reports: List[Tuple[str, float]] = []

        def report(label: str, seconds: float) -> None:
            reports.append((label, round(seconds, 1)))

        async with Timer("ok", report=report):
            await asyncio.sleep(0.1)
        with pytest.raises(ZeroDivisionError):
            async with Timer("error", report=report):
                await asyncio.sleep(0.2)
                1 / 0  # noqa: B018

        async def worker() -> None:
            async with Timer("cancelled", report=report):
                await asyncio.sleep(3600)

        task = asyncio.ensure_future(worker())
        await asyncio.sleep(0.3)
        task.cancel()
        await asyncio.wait({task})
        assert task.cancelled()
        return reports

    assert run_virtual(main) == [("ok", 0.1), ("error", 0.2), ("cancelled", 0.3)]


def test_timer_reuse_and_misuse(run_virtual: Any) -> None:
    async def main() -> List[float]:
        timer = Timer()
        with pytest.raises(RuntimeError, match="has not been entered"):
            timer.elapsed  # noqa: B018
        runs = []
        for delay in (0.1, 0.4):
            async with timer:
                await asyncio.sleep(delay)
            runs.append(round(timer.elapsed, 1))
        with pytest.raises(RuntimeError, match="already running"):
            async with timer:
                async with timer:
                    pass
        return runs

    assert run_virtual(main) == [0.1, 0.4]


def test_timer_bad_report() -> None:
    with pytest.raises(TypeError, match="report must be callable"):
        Timer(report="print")  # type: ignore[arg-type]


# --- open_all -----------------------------------------------------------------


def test_open_all_enters_in_order_and_exits_in_reverse(run_virtual: Any) -> None:
    async def main() -> Tuple[List[str], List[str]]:
        log: List[str] = []
        names = [f"r{i}" for i in range(4)]
        async with open_all(*(partial(resource, n, log) for n in names)) as entered:
            log.append("body")
            got = list(entered)
        return got, log

    got, log = run_virtual(main)
    assert got == ["r0", "r1", "r2", "r3"]
    assert log == [
        "enter r0",
        "enter r1",
        "enter r2",
        "enter r3",
        "body",
        "exit r3",
        "exit r2",
        "exit r1",
        "exit r0",
    ]


def test_open_all_with_no_factories(run_virtual: Any) -> None:
    async def main() -> List[Any]:
        async with open_all() as entered:
            return entered

    assert run_virtual(main) == []


def test_open_all_rolls_back_when_third_of_five_fails(run_virtual: Any) -> None:
    async def main() -> List[str]:
        log: List[str] = []
        factories = [partial(resource, f"r{i}", log) for i in range(5)]
        factories[2] = partial(resource, "r2", log, fail_enter=ConnectionError("r2 down"))
        with pytest.raises(ConnectionError, match="r2 down"):
            async with open_all(*factories):
                log.append("body")  # pragma: no cover - must not run
        assert only_current_task_left()
        return log

    assert run_virtual(main) == ["enter r0", "enter r1", "enter r2", "exit r1", "exit r0"]


def test_open_all_factories_are_called_lazily(run_virtual: Any) -> None:
    async def main() -> List[str]:
        calls: List[str] = []
        log: List[str] = []

        def factory(name: str, fail: bool = False) -> Any:
            calls.append(name)
            if fail:
                raise LookupError(f"no config for {name}")
            return resource(name, log)

        with pytest.raises(LookupError):
            async with open_all(
                partial(factory, "a"), partial(factory, "b", True), partial(factory, "c")
            ):
                pass  # pragma: no cover
        return calls + log

    assert run_virtual(main) == ["a", "b", "enter a", "exit a"]


def test_open_all_exits_everything_when_the_body_fails(run_virtual: Any) -> None:
    async def main() -> List[str]:
        log: List[str] = []
        with pytest.raises(KeyError):
            async with open_all(partial(resource, "a", log), partial(resource, "b", log)):
                raise KeyError("body")
        return log

    assert run_virtual(main) == ["enter a", "enter b", "exit b", "exit a"]


def test_open_all_cancelled_during_acquisition(run_virtual: Any) -> None:
    async def main() -> Tuple[List[str], bool]:
        log: List[str] = []

        async def worker() -> None:
            async with open_all(
                partial(resource, "a", log),
                partial(resource, "b", log),
                partial(resource, "slow", log, enter_delay=3600),
                partial(resource, "never", log),
            ):
                pass  # pragma: no cover

        task = asyncio.ensure_future(worker())
        await asyncio.sleep(1)
        task.cancel()
        await asyncio.wait({task})
        assert only_current_task_left()
        return log, task.cancelled()

    assert run_virtual(main) == (["enter a", "enter b", "enter slow", "exit b", "exit a"], True)


def test_open_all_cancelled_during_body(run_virtual: Any) -> None:
    async def main() -> Tuple[List[str], bool]:
        log: List[str] = []

        async def worker() -> None:
            async with open_all(partial(resource, "a", log), partial(resource, "b", log)):
                await asyncio.sleep(3600)

        task = asyncio.ensure_future(worker())
        await asyncio.sleep(1)
        task.cancel()
        await asyncio.wait({task})
        return log, task.cancelled()

    assert run_virtual(main) == (["enter a", "enter b", "exit b", "exit a"], True)


def test_open_all_exit_failure_still_exits_the_rest(run_virtual: Any) -> None:
    async def main() -> List[str]:
        log: List[str] = []
        with pytest.raises(OSError, match="b exit failed"):
            async with open_all(
                partial(resource, "a", log),
                partial(resource, "b", log, fail_exit=OSError("b exit failed")),
                partial(resource, "c", log),
            ):
                pass
        return log

    assert run_virtual(main) == ["enter a", "enter b", "enter c", "exit c", "exit b", "exit a"]


def test_open_all_many_resources(run_virtual: Any) -> None:
    async def main() -> Tuple[int, List[str]]:
        log: List[str] = []
        factories = [
            partial(resource, str(i), log, enter_delay=0, exit_delay=0) for i in range(300)
        ]
        async with open_all(*factories) as entered:
            count = len(entered)
        return count, log[300:]

    count, exits = run_virtual(main)
    assert count == 300
    assert exits == [f"exit {i}" for i in reversed(range(300))]


def test_open_all_rejects_non_factories(run_virtual: Any) -> None:
    async def main() -> None:
        log: List[str] = []
        cm = resource("x", log)
        with pytest.raises(TypeError, match="takes factories"):
            open_all(cm)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="takes factories"):
            open_all(42)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="takes factories"):
            open_all(Timer())  # type: ignore[arg-type]
        assert log == []

    run_virtual(main)


def test_open_all_accepts_classes_as_factories(run_virtual: Any) -> None:
    async def main() -> Tuple[type, type]:
        async with open_all(Timer, anullcontext) as (timer, nothing):
            return type(timer), type(nothing)

    assert run_virtual(main) == (Timer, type(None))


def test_open_all_factory_returning_a_non_context_manager(run_virtual: Any) -> None:
    async def main() -> List[str]:
        log: List[str] = []
        with pytest.raises((TypeError, AttributeError)):
            async with open_all(partial(resource, "a", log), lambda: 42):
                pass  # pragma: no cover
        return log

    assert run_virtual(main) == ["enter a", "exit a"]


# --- shielded_cleanup ----------------------------------------------------------


async def slow_cleanup(log: List[str], delay: float = 0.5, result: Any = "done") -> Any:
    try:
        await asyncio.sleep(delay)
        log.append("cleanup finished")
        return result
    finally:
        log.append("cleanup exited")


def test_shielded_cleanup_returns_the_result(run_virtual: Any) -> None:
    async def main() -> Tuple[Any, List[str]]:
        log: List[str] = []
        return await shielded_cleanup(slow_cleanup(log, result=7), timeout=1), log

    assert run_virtual(main) == (7, ["cleanup finished", "cleanup exited"])


@pytest.mark.parametrize("cancels", [1, 2, 5])
def test_shielded_cleanup_survives_repeated_cancellation(run_virtual: Any, cancels: int) -> None:
    async def main() -> Tuple[List[str], bool, float]:
        loop = asyncio.get_running_loop()
        log: List[str] = []

        async def worker() -> None:
            try:
                await asyncio.sleep(3600)
            finally:
                await shielded_cleanup(slow_cleanup(log, delay=1), timeout=5)
                log.append("after cleanup")  # a second cancellation skips this

        task = asyncio.ensure_future(worker())
        await asyncio.sleep(0.1)
        start = loop.time()
        for _ in range(cancels):
            task.cancel()
            await asyncio.sleep(0.1)
        await asyncio.wait({task})
        return log, task.cancelled(), round(loop.time() - start, 1)

    expected = ["cleanup finished", "cleanup exited"] + (["after cleanup"] if cancels == 1 else [])
    assert run_virtual(main) == (expected, True, 1.0)


def test_plain_await_in_finally_is_interrupted_by_a_second_cancel(run_virtual: Any) -> None:
    # The problem shielded_cleanup solves.
    async def main() -> List[str]:
        log: List[str] = []

        async def worker() -> None:
            try:
                await asyncio.sleep(3600)
            finally:
                await slow_cleanup(log)

        task = asyncio.ensure_future(worker())
        await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.wait({task})
        return log

    assert run_virtual(main) == ["cleanup exited"]


def test_shielded_cleanup_timeout_cancels_the_cleanup(run_virtual: Any) -> None:
    async def main() -> List[str]:
        log: List[str] = []
        with pytest.raises(asyncio.TimeoutError, match=r"within 0\.5 seconds"):
            await shielded_cleanup(slow_cleanup(log, delay=3600), timeout=0.5)
        assert only_current_task_left()
        return log

    assert run_virtual(main) == ["cleanup exited"]


def test_shielded_cleanup_timeout_while_cancelled_raises_cancelled(run_virtual: Any) -> None:
    async def main() -> Tuple[List[str], bool]:
        log: List[str] = []

        async def worker() -> None:
            try:
                await asyncio.sleep(3600)
            finally:
                await shielded_cleanup(slow_cleanup(log, delay=3600), timeout=1)

        task = asyncio.ensure_future(worker())
        await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.wait({task})
        assert only_current_task_left()
        return log, task.cancelled()

    assert run_virtual(main) == (["cleanup exited"], True)


def test_shielded_cleanup_error_propagates(run_virtual: Any) -> None:
    async def broken() -> None:
        await asyncio.sleep(0.1)
        raise OSError("flush failed")

    async def main() -> None:
        await shielded_cleanup(broken(), timeout=1)

    with pytest.raises(OSError, match="flush failed"):
        run_virtual(main)


def test_shielded_cleanup_error_while_cancelled_is_the_cause(run_virtual: Any) -> None:
    async def broken() -> None:
        await asyncio.sleep(0.5)
        raise OSError("flush failed")

    async def main() -> Tuple[Any, bool]:
        causes: List[Any] = []

        async def worker() -> None:
            try:
                await shielded_cleanup(broken(), timeout=1)
            except asyncio.CancelledError as exc:
                causes.append(exc.__cause__)
                raise

        task = asyncio.ensure_future(worker())
        await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.wait({task})
        return causes, task.cancelled()

    (cause,), cancelled = run_virtual(main)
    assert isinstance(cause, OSError)
    assert cancelled


def test_shielded_cleanup_accepts_tasks_and_futures(run_virtual: Any) -> None:
    async def main() -> Tuple[Any, Any]:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        loop.call_later(0.1, fut.set_result, "future")
        task = asyncio.ensure_future(asyncio.sleep(0.1, "task"))
        return await shielded_cleanup(fut, timeout=1), await shielded_cleanup(task, timeout=1)

    assert run_virtual(main) == ("future", "task")


@pytest.mark.parametrize(
    ("timeout", "exc"),
    [(0, ValueError), (-1, ValueError), (None, TypeError), ("1", TypeError), (True, TypeError)],
)
def test_shielded_cleanup_bad_timeout_closes_the_coroutine(
    run_virtual: Any, timeout: Any, exc: type
) -> None:
    async def main() -> List[str]:
        log: List[str] = []
        coro = slow_cleanup(log)
        with pytest.raises(exc):
            await shielded_cleanup(coro, timeout=timeout)
        assert coro.cr_frame is None  # closed: no "never awaited" warning
        return log

    assert run_virtual(main) == []


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout needs Python >= 3.11")
def test_shielded_cleanup_inside_asyncio_timeout(run_virtual: Any) -> None:
    # The outer timeout expires during the cleanup: the cleanup still finishes, and the
    # timeout context still turns the delayed cancellation into TimeoutError.
    async def main() -> Tuple[List[str], float]:
        loop = asyncio.get_running_loop()
        log: List[str] = []
        start = loop.time()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await shielded_cleanup(slow_cleanup(log, delay=1), timeout=5)
        return log, round(loop.time() - start, 1)

    assert run_virtual(main) == (["cleanup finished", "cleanup exited"], 1.0)


# --- shielded_cleanup: the cancellation that started the cleanup wins ----------


async def broken_cleanup(log: List[str], delay: float = 0.2) -> None:
    await asyncio.sleep(delay)
    log.append("cleanup failed")
    raise OSError("flush failed")


class ClosesInAexit:
    """A class-based context manager whose ``__aexit__`` awaits through shielded_cleanup."""

    def __init__(self, cleanup: Any) -> None:
        self.cleanup = cleanup

    async def __aenter__(self) -> ClosesInAexit:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await shielded_cleanup(self.cleanup, timeout=0.5)


@pytest.mark.parametrize("where", ["finally", "__aexit__"])
@pytest.mark.parametrize("failure", ["timeout", "error"])
def test_shielded_cleanup_failure_after_one_cancel_keeps_the_task_cancelled(
    run_virtual: Any, caplog: Any, failure: str, where: str
) -> None:
    """One cancel(); the cleanup it starts times out or fails: the task still ends cancelled,
    with the very CancelledError that started the cleanup, the failure as its __cause__."""

    async def main() -> Any:
        log: List[str] = []
        seen: Dict[str, Any] = {}

        async def worker() -> None:
            cleanup = (
                slow_cleanup(log, delay=3600) if failure == "timeout" else broken_cleanup(log)
            )
            try:
                if where == "finally":
                    try:
                        try:
                            await asyncio.sleep(3600)
                        except asyncio.CancelledError as exc:
                            seen["original"] = exc
                            raise
                    finally:
                        await shielded_cleanup(cleanup, timeout=0.5)
                else:
                    async with ClosesInAexit(cleanup):
                        try:
                            await asyncio.sleep(3600)
                        except asyncio.CancelledError as exc:
                            seen["original"] = exc
                            raise
            except BaseException as exc:
                seen["raised"] = exc
                if sys.version_info >= (3, 11):
                    seen["cancelling"] = task.cancelling()
                raise

        task = asyncio.ensure_future(worker())
        await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.wait({task})
        assert only_current_task_left()
        return task.cancelled(), seen, log

    with caplog.at_level("ERROR", logger="recipes.context_managers"):
        cancelled, seen, log = run_virtual(main)
    assert cancelled
    assert seen["raised"] is seen["original"]
    cause = seen["raised"].__cause__
    if failure == "timeout":
        assert isinstance(cause, asyncio.TimeoutError)
        assert log == ["cleanup exited"]
    else:
        assert isinstance(cause, OSError)
        assert log == ["cleanup failed"]
    if sys.version_info >= (3, 11):
        assert seen["cancelling"] == 1
    [record] = caplog.records
    assert record.exc_info is not None and record.exc_info[1] is cause


def test_shielded_cleanup_second_cancel_during_a_cleanup_that_times_out(
    run_virtual: Any, caplog: Any
) -> None:
    async def main() -> Any:
        loop = asyncio.get_running_loop()
        log: List[str] = []
        seen: Dict[str, Any] = {}

        async def hung() -> None:
            try:
                await asyncio.sleep(3600)
            finally:
                await asyncio.sleep(0.3)  # unwinding takes a while
                log.append("cleanup unwound")

        async def worker() -> None:
            try:
                try:
                    await asyncio.sleep(3600)
                finally:
                    await shielded_cleanup(hung(), timeout=1)
            except asyncio.CancelledError as exc:
                seen["at"] = round(loop.time() - start, 1)
                seen["cause"] = exc.__cause__
                if sys.version_info >= (3, 11):
                    seen["cancelling"] = task.cancelling()
                raise

        task = asyncio.ensure_future(worker())
        await asyncio.sleep(0.1)
        start = loop.time()
        task.cancel()
        await asyncio.sleep(0.5)
        task.cancel()  # during the wait
        await asyncio.sleep(0.6)
        task.cancel()  # while the timed-out cleanup unwinds
        await asyncio.wait({task})
        assert only_current_task_left()  # the cleanup was not left running
        return task.cancelled(), seen, log

    with caplog.at_level("ERROR", logger="recipes.context_managers"):
        cancelled, seen, log = run_virtual(main)
    assert cancelled
    assert log == ["cleanup unwound"]
    assert seen["at"] == 1.3
    assert isinstance(seen["cause"], asyncio.TimeoutError)
    if sys.version_info >= (3, 11):
        assert seen["cancelling"] == 3
    assert len(caplog.records) == 1


def test_shielded_cleanup_without_a_cancellation_replaces_the_error_in_flight(
    run_virtual: Any, caplog: Any
) -> None:
    async def main() -> Any:
        log: List[str] = []
        with pytest.raises(asyncio.TimeoutError) as caught:
            try:
                raise KeyError("missing")
            finally:
                await shielded_cleanup(slow_cleanup(log, delay=3600), timeout=0.5)
        return caught.value.__context__, log

    with caplog.at_level("ERROR", logger="recipes.context_managers"):
        context, log = run_virtual(main)
    assert isinstance(context, KeyError)
    assert log == ["cleanup exited"]
    assert caplog.records == []


# --- async_closing ------------------------------------------------------------


class Client:
    def __init__(self, log: List[str], close_delay: float = 0.2) -> None:
        self.log = log
        self.close_delay = close_delay

    async def close(self) -> None:
        self.log.append("closing")
        await asyncio.sleep(self.close_delay)
        self.log.append("closed")


def test_async_closing_closes_once_on_success_and_error(run_virtual: Any) -> None:
    async def main() -> List[str]:
        log: List[str] = []
        async with async_closing(Client(log)) as client:
            assert isinstance(client, Client)
        with pytest.raises(KeyError):
            async with async_closing(Client(log)):
                raise KeyError
        return log

    assert run_virtual(main) == ["closing", "closed", "closing", "closed"]


def test_async_closing_finishes_close_despite_double_cancel(run_virtual: Any) -> None:
    async def main() -> Tuple[List[str], bool]:
        log: List[str] = []

        async def worker() -> None:
            async with async_closing(Client(log, close_delay=1)):
                await asyncio.sleep(3600)

        task = asyncio.ensure_future(worker())
        await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.wait({task})
        return log, task.cancelled()

    assert run_virtual(main) == (["closing", "closed"], True)


def test_async_closing_gives_up_on_a_hung_close(run_virtual: Any) -> None:
    async def main() -> Tuple[List[str], float]:
        loop = asyncio.get_running_loop()
        log: List[str] = []
        start = loop.time()
        with pytest.raises(asyncio.TimeoutError):
            async with async_closing(Client(log, close_delay=3600), timeout=2):
                pass
        return log, round(loop.time() - start, 1)

    assert run_virtual(main) == (["closing"], 2.0)


def test_async_closing_hung_close_after_one_cancel_does_not_feed_a_reconnect_loop(
    run_virtual: Any,
) -> None:
    """The issue's shape: cancelled once, the close hangs, ``except Exception`` reconnects."""

    async def main() -> Any:
        log: List[str] = []
        connections = 0

        async def service() -> None:
            nonlocal connections
            while True:
                connections += 1
                try:
                    async with async_closing(Client(log, close_delay=3600), timeout=2):
                        await asyncio.sleep(3600)
                except Exception:
                    continue  # reconnect

        task = asyncio.ensure_future(service())
        await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.wait({task}, timeout=10)
        outcome = (task.done(), task.done() and task.cancelled(), connections, list(log))
        while not task.done():  # clean up after the bug, so the test reports it plainly
            task.cancel()
            await asyncio.wait({task}, timeout=0.1)
        return outcome

    assert run_virtual(main) == (True, True, 1, ["closing"])


def test_async_closing_without_a_cancellation_a_hung_close_replaces_the_error(
    run_virtual: Any,
) -> None:
    async def main() -> Any:
        log: List[str] = []
        with pytest.raises(asyncio.TimeoutError) as caught:
            async with async_closing(Client(log, close_delay=3600), timeout=2):
                raise KeyError("missing")
        return caught.value.__context__, log

    context, log = run_virtual(main)
    assert isinstance(context, KeyError)
    assert log == ["closing"]


def test_async_closing_second_cancel_during_a_hung_close_leaves_nothing_running(
    run_virtual: Any, caplog: Any
) -> None:
    async def main() -> Any:
        loop = asyncio.get_running_loop()
        log: List[str] = []

        class SlowToGiveUp(Client):
            async def close(self) -> None:
                try:
                    await super().close()
                finally:
                    await asyncio.sleep(0.3)  # unwinding the half-done goodbye
                    self.log.append("close unwound")

        async def worker() -> None:
            async with async_closing(SlowToGiveUp(log, close_delay=3600), timeout=2):
                await asyncio.sleep(3600)

        task = asyncio.ensure_future(worker())
        await asyncio.sleep(0.1)
        start = loop.time()
        task.cancel()
        await asyncio.sleep(1)
        task.cancel()  # a second, impatient cancel during the close
        await asyncio.wait({task})
        assert only_current_task_left()
        return task.cancelled(), log, round(loop.time() - start, 1)

    with caplog.at_level("ERROR", logger="recipes.context_managers"):
        assert run_virtual(main) == (True, ["closing", "close unwound"], 2.3)
    assert len(caplog.records) == 1  # the abandoned close is reported, not silent


def test_async_closing_bad_arguments() -> None:
    with pytest.raises(TypeError, match="close"):
        async_closing(object())  # type: ignore[type-var]
    with pytest.raises(TypeError, match="close"):
        async_closing(type("NotCallable", (), {"close": 5})())  # type: ignore[type-var]
    with pytest.raises(ValueError):
        async_closing(Client([]), timeout=0)


# --- anullcontext -------------------------------------------------------------


def test_anullcontext_values_and_no_suppression(run_virtual: Any) -> None:
    async def main() -> Tuple[Any, Any]:
        async with anullcontext() as nothing:
            pass
        sentinel = object()
        async with anullcontext(sentinel) as value:
            pass
        with pytest.raises(ValueError):
            async with anullcontext():
                raise ValueError
        return nothing, value is sentinel

    assert run_virtual(main) == (None, True)


@pytest.mark.skipif(sys.version_info < (3, 10), reason="async nullcontext needs Python >= 3.10")
def test_anullcontext_matches_contextlib_nullcontext(run_virtual: Any) -> None:
    async def main() -> Tuple[Any, Any]:
        async with contextlib.nullcontext(5) as stdlib, anullcontext(5) as ours:
            return stdlib, ours

    assert run_virtual(main) == (5, 5)
