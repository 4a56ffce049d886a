"""Behaviour, fault, load and bad-input tests for recipes/tasks.py."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import inspect
import logging
import sys
from typing import Any, Awaitable, Callable, Dict, List, Tuple

import pytest

from recipes.tasks import BackgroundTasks, create_eager_task
from tests.conftest import loop_errors

Runner = Callable[[Callable[[], Awaitable[Any]]], Any]


def others() -> List[asyncio.Task[Any]]:
    """Unfinished tasks of the running loop other than the current one."""
    current = asyncio.current_task()
    return [t for t in asyncio.all_tasks() if t is not current and not t.done()]


async def fail_after(exc: BaseException, delay: float) -> None:
    await asyncio.sleep(delay)
    raise exc


async def slow_cleanup(events: List[str], label: str, cleanup: float) -> None:
    try:
        await asyncio.sleep(3600)
    finally:
        await asyncio.sleep(cleanup)  # e.g. flushing a buffer, closing a connection
        events.append(f"{label} cleaned up")


# --- BackgroundTasks: the happy path under load --------------------------------


def test_a_thousand_tasks_finish_and_leave_nothing_behind(run_virtual: Runner) -> None:
    done: List[int] = []

    async def job(n: int) -> None:
        await asyncio.sleep((n % 7) / 10)
        done.append(n)

    async def main() -> Tuple[int, int, List[Any]]:
        async with BackgroundTasks() as background:
            for n in range(1000):
                background.spawn(job(n))
            running = len(background)
            assert await background.join(timeout=5) is True
        return running, len(background), others()

    assert run_virtual(main) == (1000, 0, [])
    assert sorted(done) == list(range(1000))


def test_closing_a_thousand_running_tasks_cancels_and_awaits_all(run_virtual: Runner) -> None:
    async def main() -> Tuple[int, List[Any], List[BaseException]]:
        background = BackgroundTasks()
        tasks = [background.spawn(asyncio.sleep(3600)) for _ in range(1000)]
        await asyncio.sleep(0.1)
        await background.close()
        cancelled = sum(task.cancelled() for task in tasks)
        return cancelled, others(), background.errors

    assert run_virtual(main) == (1000, [], [])


def test_tasks_without_other_references_survive_garbage_collection(
    run_virtual: Runner,
) -> None:
    async def wait_for_reply(reply: asyncio.Future[str]) -> str:
        return await reply

    async def main() -> Tuple[List[str], List[str]]:
        loop = asyncio.get_running_loop()
        with loop_errors() as unprotected:
            # The pitfall: no reference is kept, so the collector destroys the task.
            loop.create_task(wait_for_reply(loop.create_future()))  # noqa: RUF006
            await asyncio.sleep(0.1)
            gc.collect()
        with loop_errors() as protected:
            background = BackgroundTasks()
            for _ in range(10):
                background.spawn(wait_for_reply(loop.create_future()))
            await asyncio.sleep(0.1)
            gc.collect()
            still_running = len(background)
            await background.close()
        assert still_running == 10
        return [c["message"] for c in unprotected], [c["message"] for c in protected]

    unprotected, protected = run_virtual(main)
    assert unprotected == ["Task was destroyed but it is pending!"]
    assert protected == []


# --- BackgroundTasks: errors -------------------------------------------------------


def test_a_failing_task_is_retrieved_and_reported_once(run_virtual: Runner) -> None:
    reported: List[Tuple[str, BaseException]] = []

    async def main() -> Tuple[List[Dict[str, Any]], List[BaseException], int]:
        with loop_errors() as errors:
            background = BackgroundTasks(
                on_error=lambda task, exc: reported.append((task.get_name(), exc))
            )
            background.spawn(fail_after(ValueError("bad row"), 0.1), name="import")
            for _ in range(20):
                background.spawn(asyncio.sleep(0.2))
            await background.join()
            await background.close()
        return errors, background.errors, len(background)

    errors, collected, running = run_virtual(main)
    assert errors == []  # no "Task exception was never retrieved"
    assert [(name, str(exc)) for name, exc in reported] == [("import", "bad row")]
    assert collected == [reported[0][1]]
    assert running == 0


def test_without_on_error_failures_are_logged_with_traceback(
    run_virtual: Runner, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        async with BackgroundTasks(name="mailer") as background:
            background.spawn(fail_after(ConnectionError("smtp down"), 0), name="welcome")
            await background.join()

    with caplog.at_level(logging.ERROR, logger="recipes.tasks"):
        run_virtual(main)
    [record] = caplog.records
    assert record.name == "recipes.tasks"
    assert "'welcome'" in record.getMessage() and "'mailer'" in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], ConnectionError)


def test_a_broken_on_error_handler_is_logged_and_does_not_stop_others(
    run_virtual: Runner, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_handler(task: asyncio.Task[Any], exc: BaseException) -> None:
        raise RuntimeError("handler bug")

    async def main() -> Tuple[int, int]:
        async with BackgroundTasks(on_error=broken_handler) as background:
            for _ in range(3):
                background.spawn(fail_after(ValueError("x"), 0))
            ok = background.spawn(asyncio.sleep(0.1, result="ok"))
            await background.join()
            assert ok.result() == "ok"
        return len(background.errors), len(background)

    with caplog.at_level(logging.ERROR, logger="recipes.tasks"):
        assert run_virtual(main) == (3, 0)
    assert [r.getMessage() for r in caplog.records] == [
        "on_error handler of 'background' failed"
    ] * 3


def test_errors_keep_only_the_latest_max_errors(run_virtual: Runner) -> None:
    async def main() -> List[str]:
        async with BackgroundTasks(on_error=lambda task, exc: None, max_errors=2) as background:
            for n in range(5):
                background.spawn(fail_after(ValueError(str(n)), n / 10))
            await background.join()
        return [str(exc) for exc in background.errors]

    assert run_virtual(main) == ["3", "4"]


def test_cancelled_tasks_are_not_errors(run_virtual: Runner) -> None:
    async def main() -> List[BaseException]:
        calls: List[Any] = []
        async with BackgroundTasks(on_error=lambda task, exc: calls.append(exc)) as background:
            task = background.spawn(asyncio.sleep(10))
            await asyncio.sleep(0.1)
            task.cancel()
            await background.join()
        assert calls == []
        return background.errors

    assert run_virtual(main) == []


# --- BackgroundTasks: shutdown -------------------------------------------------------


def test_a_task_whose_cleanup_raises_as_close_cancels_it_is_reported_as_failed(
    run_virtual: Runner,
) -> None:
    """close() cancels once and waits: nothing loops, the error is not lost."""

    async def goodbye_fails() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            raise ConnectionResetError("goodbye failed")

    async def main() -> Any:
        reported: List[Tuple[str, BaseException]] = []
        background = BackgroundTasks(on_error=lambda t, exc: reported.append((t.get_name(), exc)))
        task = background.spawn(goodbye_fails(), name="session")
        await asyncio.sleep(0.1)
        await asyncio.wait_for(background.close(), 3600)
        error = task.exception()
        return task.cancelled(), repr(error), reported == [("session", error)], len(background)

    assert run_virtual(main) == (False, "ConnectionResetError('goodbye failed')", True, 0)


def test_close_waits_for_tasks_blocked_in_finally_blocks(run_virtual: Runner) -> None:
    events: List[str] = []

    async def main() -> float:
        loop = asyncio.get_running_loop()
        background = BackgroundTasks()
        for n in (1, 2, 3):
            background.spawn(slow_cleanup(events, f"task {n}", n * 0.5))
        await asyncio.sleep(0.1)
        start = loop.time()
        await background.close()
        events.append("closed")
        return loop.time() - start

    assert run_virtual(main) == pytest.approx(1.5, abs=0.25)
    assert events == ["task 1 cleaned up", "task 2 cleaned up", "task 3 cleaned up", "closed"]


def test_cancelling_close_still_leaves_nothing_pending(run_virtual: Runner) -> None:
    events: List[str] = []

    async def main() -> None:
        background = BackgroundTasks()
        for n in (1, 2):
            background.spawn(slow_cleanup(events, f"task {n}", n * 0.5))
        await asyncio.sleep(0.1)
        closer = asyncio.ensure_future(background.close())
        await asyncio.sleep(0.1)
        closer.cancel()  # e.g. the shutdown itself hit a timeout
        await asyncio.sleep(0.1)
        closer.cancel()  # a second cancellation must not cut the cleanups short either
        with pytest.raises(asyncio.CancelledError):
            await closer
        events.append(f"close cancelled, running={len(background)}, others={len(others())}")

    run_virtual(main)  # also fails if anything is left running
    assert events == [
        "task 1 cleaned up",
        "task 2 cleaned up",
        "close cancelled, running=0, others=0",
    ]


def test_close_via_wait_for_timeout_still_finishes_the_cleanup(run_virtual: Runner) -> None:
    events: List[str] = []

    async def main() -> None:
        background = BackgroundTasks()
        background.spawn(slow_cleanup(events, "task", 1.0))
        await asyncio.sleep(0.1)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(background.close(), timeout=0.2)
        events.append(f"running={len(background)}")

    run_virtual(main)
    assert events == ["task cleaned up", "running=0"]


def test_close_with_grace_lets_quick_tasks_finish(run_virtual: Runner) -> None:
    async def main() -> Tuple[List[str], float]:
        loop = asyncio.get_running_loop()
        background = BackgroundTasks()
        quick = background.spawn(asyncio.sleep(0.5, result="quick"))
        slow = background.spawn(asyncio.sleep(10, result="slow"))
        start = loop.time()
        await background.close(grace=1.0)
        outcome = [quick.result(), "cancelled" if slow.cancelled() else "finished"]
        return outcome, loop.time() - start

    outcome, elapsed = run_virtual(main)
    assert outcome == ["quick", "cancelled"]
    assert elapsed == pytest.approx(1.0, abs=0.25)


def test_close_cancelled_during_grace_still_cleans_up(run_virtual: Runner) -> None:
    events: List[str] = []

    async def main() -> None:
        background = BackgroundTasks()
        background.spawn(slow_cleanup(events, "task", 0.5))
        closer = asyncio.ensure_future(background.close(grace=10))
        await asyncio.sleep(0.1)
        closer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await closer
        events.append(f"running={len(background)}")

    run_virtual(main)
    assert events == ["task cleaned up", "running=0"]


def test_async_with_cancels_on_error_and_close_is_idempotent(run_virtual: Runner) -> None:
    async def main() -> Tuple[bool, bool]:
        with pytest.raises(ZeroDivisionError):
            async with BackgroundTasks() as background:
                task = background.spawn(asyncio.sleep(10))
                1 / 0  # noqa: B018
        await background.close()
        await background.close(grace=1)
        return task.cancelled(), background.closed

    assert run_virtual(main) == (True, True)


def test_close_reports_a_task_that_finished_but_was_not_called_back_yet(
    run_virtual: Runner,
) -> None:
    async def main() -> Tuple[List[str], int]:
        loop = asyncio.get_running_loop()
        gate = loop.create_future()
        background = BackgroundTasks(on_error=lambda task, exc: None)

        async def failing() -> None:
            gate.set_result(None)  # wakes main() first...
            raise ValueError("late callback")  # ...then schedules the done callback

        background.spawn(failing())
        await gate
        await background.close()  # runs before the task's done callback
        return [str(exc) for exc in background.errors], len(background)

    assert run_virtual(main) == (["late callback"], 0)


def test_close_and_join_from_inside_one_of_the_tasks(run_virtual: Runner) -> None:
    async def main() -> Tuple[bool, bool, bool]:
        background = BackgroundTasks()
        sibling = background.spawn(asyncio.sleep(10))

        async def supervisor() -> bool:
            finished = await background.join(timeout=0.5)  # waits for the others only
            await background.close()  # must not wait for itself
            return finished

        boss = background.spawn(supervisor())
        return await boss, sibling.cancelled(), background.closed

    assert run_virtual(main) == (False, True, True)


def test_join_waits_for_tasks_spawned_by_tasks(run_virtual: Runner) -> None:
    finished: List[str] = []

    async def main() -> bool:
        background = BackgroundTasks()

        async def child() -> None:
            await asyncio.sleep(0.5)
            finished.append("child")

        async def parent() -> None:
            await asyncio.sleep(0.1)
            background.spawn(child())
            finished.append("parent")

        background.spawn(parent())
        result = await background.join()
        await background.close()
        return result

    assert run_virtual(main) is True
    assert finished == ["parent", "child"]


def test_spawn_after_close_is_refused_and_the_coroutine_closed(run_virtual: Runner) -> None:
    async def main() -> str:
        background = BackgroundTasks(name="jobs")
        await background.close()
        coro = asyncio.sleep(1)
        with pytest.raises(RuntimeError, match="'jobs' is closed"):
            background.spawn(coro)
        assert repr(background) == "<BackgroundTasks 'jobs' closed running=0 errors=0>"
        return inspect.getcoroutinestate(coro)

    assert run_virtual(main) == inspect.CORO_CLOSED


# --- BackgroundTasks: names, contexts, eager tasks ------------------------------------


def test_spawn_names_and_contexts(run_virtual: Runner) -> None:
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

    async def read() -> str:
        return request_id.get()

    async def main() -> Tuple[str, str, str, str]:
        context = contextvars.copy_context()
        context.run(request_id.set, "r-1")
        async with BackgroundTasks() as background:
            named = background.spawn(read(), name="reader", context=context)
            plain = background.spawn(read())
            return named.get_name(), await named, await plain, request_id.get()

    assert run_virtual(main) == ("reader", "r-1", "-", "-")


@pytest.mark.skipif(
    sys.version_info < (3, 11), reason="create_task(context=) needs Python >= 3.11"
)
def test_spawn_runs_in_the_given_context_object_on_311(run_virtual: Runner) -> None:
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

    async def write() -> None:
        request_id.set("written by the task")

    async def main() -> str:
        context = contextvars.copy_context()
        async with BackgroundTasks() as background:
            await background.spawn(write(), context=context)
        return context[request_id]

    assert run_virtual(main) == "written by the task"


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager_task_factory needs Python >= 3.12")
def test_eager_tasks_that_finish_at_once_are_tracked_and_reported(run_virtual: Runner) -> None:
    async def instant(value: int) -> int:
        if value < 0:
            raise ValueError("negative")
        return value

    async def main() -> Tuple[List[bool], List[str], int]:
        loop = asyncio.get_running_loop()
        loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined]
        try:
            async with BackgroundTasks(on_error=lambda task, exc: None) as background:
                tasks = [background.spawn(instant(v)) for v in (1, -1)]
                done_at_once = [task.done() for task in tasks]
                await background.join()
        finally:
            loop.set_task_factory(None)
        return done_at_once, [str(e) for e in background.errors], len(background)

    assert run_virtual(main) == ([True, True], ["negative"], 0)


# --- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"max_errors": -1}, ValueError, "max_errors"),
        ({"max_errors": 1.5}, ValueError, "max_errors"),
        ({"on_error": "print"}, TypeError, "on_error"),
    ],
)
def test_constructor_rejects_bad_arguments(
    kwargs: Dict[str, Any], error: type, match: str
) -> None:
    with pytest.raises(error, match=match):
        BackgroundTasks(**kwargs)


@pytest.mark.parametrize(
    "bad, match",
    [
        (asyncio.sleep, "did you forget the parentheses"),
        (None, "got None"),
    ],
)
def test_spawn_rejects_non_coroutines(run_virtual: Runner, bad: Any, match: str) -> None:
    async def main() -> None:
        async with BackgroundTasks() as background:
            with pytest.raises(TypeError, match=match):
                background.spawn(bad)

    run_virtual(main)


def test_spawn_rejects_a_future(run_virtual: Runner) -> None:
    async def main() -> None:
        async with BackgroundTasks() as background:
            future = asyncio.get_running_loop().create_future()
            with pytest.raises(TypeError, match="expects a coroutine object"):
                background.spawn(future)  # type: ignore[arg-type]

    run_virtual(main)


def test_spawn_without_a_running_loop_closes_the_coroutine() -> None:
    background = BackgroundTasks()
    coro = asyncio.sleep(1)
    with pytest.raises(RuntimeError, match="no running event loop"):
        background.spawn(coro)
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED
    assert len(background) == 0


@pytest.mark.parametrize(
    "value, error", [(-1, ValueError), (float("nan"), ValueError), ("1", TypeError)]
)
def test_bad_timeouts_are_rejected_before_anything_is_cancelled(
    run_virtual: Runner, value: Any, error: type
) -> None:
    async def main() -> Tuple[bool, bool]:
        background = BackgroundTasks()
        task = background.spawn(asyncio.sleep(0.1))
        with pytest.raises(error, match="grace"):
            await background.close(grace=value)
        with pytest.raises(error, match="timeout"):
            await background.join(timeout=value)
        closed = background.closed
        await background.close()
        return closed, task.cancelled()

    assert run_virtual(main) == (False, True)


# --- eager tasks: what runs when ----------------------------------------------------------

EAGER_TASKS = sys.version_info >= (3, 12)  # create_eager_task() falls back to a lazy task before
needs_312 = pytest.mark.skipif(
    not EAGER_TASKS, reason="eager tasks (Task(eager_start=)) need Python >= 3.12"
)
needs_314 = pytest.mark.skipif(
    sys.version_info < (3, 14), reason="create_task(eager_start=) needs Python >= 3.14"
)
LAZY_ORDER = ["caller: next line", "task: step 1", "task: step 2"]
EAGER_ORDER = ["task: step 1", "caller: next line", "task: step 2"]


async def two_steps(key: str, log: List[str]) -> str:
    log.append(f"{key}: step 1")
    await asyncio.sleep(0)
    log.append(f"{key}: step 2")
    return key


async def order_of(start: Callable[[Any], asyncio.Task[Any]]) -> List[str]:
    """The events of a task started by ``start`` and of the caller's next line, in order."""
    log: List[str] = []
    task = start(two_steps("task", log))
    log.append("caller: next line")
    assert await task == "task"
    return log


def test_a_lazy_task_runs_nothing_before_the_caller_waits(run_virtual: Runner) -> None:
    async def main() -> List[List[str]]:
        loop = asyncio.get_running_loop()
        return [await order_of(asyncio.create_task), await order_of(loop.create_task)]

    assert run_virtual(main) == [LAZY_ORDER, LAZY_ORDER]


@needs_314
@pytest.mark.parametrize("via", ["asyncio.create_task", "loop.create_task"])
def test_eager_start_runs_the_first_step_before_create_task_returns(
    run_virtual: Runner, via: str
) -> None:
    async def main() -> Tuple[List[str], List[str]]:
        loop = asyncio.get_running_loop()
        create = asyncio.create_task if via == "asyncio.create_task" else loop.create_task
        eager = await order_of(lambda coro: create(coro, eager_start=True))
        lazy = await order_of(lambda coro: create(coro, eager_start=False))
        return eager, lazy

    assert run_virtual(main) == (EAGER_ORDER, LAZY_ORDER)


@needs_312
def test_the_task_constructor_takes_eager_start_since_312(run_virtual: Runner) -> None:
    async def main() -> List[str]:
        loop = asyncio.get_running_loop()
        return await order_of(
            lambda coro: asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg]
        )

    assert run_virtual(main) == EAGER_ORDER


@needs_312
def test_the_eager_task_factory_makes_every_task_eager(run_virtual: Runner) -> None:
    async def main() -> List[str]:
        loop = asyncio.get_running_loop()
        loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined]
        try:
            return await order_of(asyncio.create_task)
        finally:
            loop.set_task_factory(None)

    assert run_virtual(main) == EAGER_ORDER


@needs_314
def test_eager_start_false_exempts_one_task_from_the_eager_factory(run_virtual: Runner) -> None:
    async def main() -> Tuple[List[str], List[str]]:
        loop = asyncio.get_running_loop()
        loop.set_task_factory(asyncio.eager_task_factory)
        try:
            exempt = await order_of(lambda coro: asyncio.create_task(coro, eager_start=False))
            default = await order_of(asyncio.create_task)
        finally:
            loop.set_task_factory(None)
        return exempt, default

    assert run_virtual(main) == (LAZY_ORDER, EAGER_ORDER)


@needs_314
def test_an_eager_task_overtakes_lazy_tasks_started_before_it(run_virtual: Runner) -> None:
    async def main() -> List[str]:
        log: List[str] = []
        first = asyncio.create_task(two_steps("lazy", log))
        second = asyncio.create_task(two_steps("eager", log), eager_start=True)
        log.append("caller: next line")
        await asyncio.gather(first, second)
        return log

    assert run_virtual(main) == [
        "eager: step 1",
        "caller: next line",
        "lazy: step 1",
        "eager: step 2",
        "lazy: step 2",
    ]


# --- create_eager_task() on every version ---------------------------------------------------


def test_create_eager_task_is_eager_where_python_can_and_lazy_before_312(
    run_virtual: Runner,
) -> None:
    assert run_virtual(lambda: order_of(create_eager_task)) == (
        EAGER_ORDER if EAGER_TASKS else LAZY_ORDER
    )


def test_create_eager_task_names_the_task_and_returns_its_result(run_virtual: Runner) -> None:
    async def main() -> Tuple[str, str, str]:
        named = create_eager_task(asyncio.sleep(0.1, result="slept"), name="napper")
        anonymous = create_eager_task(asyncio.sleep(0, result="quick"))
        return named.get_name(), await named, await anonymous

    assert run_virtual(main) == ("napper", "slept", "quick")


def test_create_eager_task_runs_in_the_given_context_and_never_in_the_callers(
    run_virtual: Runner,
) -> None:
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

    async def read_then_write(value: str) -> str:
        seen = request_id.get()
        request_id.set(value)  # in the eager step: must not leak into the caller
        await asyncio.sleep(0)
        return seen

    async def main() -> Tuple[str, str, str]:
        context = contextvars.copy_context()
        context.run(request_id.set, "r-1")
        given = await create_eager_task(read_then_write("from given"), context=context)
        copied = await create_eager_task(read_then_write("from copy"))
        return given, copied, request_id.get()

    assert run_virtual(main) == ("r-1", "-", "-")


@needs_312
def test_the_eager_step_runs_as_the_new_task(run_virtual: Runner) -> None:
    async def whoami() -> Any:
        return asyncio.current_task()

    async def main() -> Tuple[bool, bool]:
        caller = asyncio.current_task()
        task = create_eager_task(whoami())
        return task.result() is task, asyncio.current_task() is caller

    assert run_virtual(main) == (True, True)


@needs_312
def test_a_task_that_finishes_eagerly_is_done_at_once_and_never_scheduled(
    run_virtual: Runner,
) -> None:
    async def cached(key: str) -> str:
        return key.upper()

    async def main() -> Tuple[bool, str, bool, List[str]]:
        calls: List[str] = []
        task = create_eager_task(cached("a"), name="hit")
        listed = task in asyncio.all_tasks()
        task.add_done_callback(lambda t: calls.append(t.get_name()))
        before = list(calls)  # callbacks of a done task still go through the loop
        await asyncio.sleep(0)
        assert before == []
        return task.done(), task.result(), listed, calls

    assert run_virtual(main) == (True, "A", False, ["hit"])


@pytest.mark.skipif(
    sys.version_info < (3, 13),
    reason="get_coro() of an eagerly finished task crashes early 3.12 releases (gh-122332)",
)
def test_get_coro_of_a_task_that_finished_eagerly_is_none(run_virtual: Runner) -> None:
    async def cached() -> str:
        return "hit"

    async def main() -> Tuple[Any, Any]:
        finished = create_eager_task(cached())
        waiting = create_eager_task(asyncio.sleep(0.1))
        coros = finished.get_coro(), waiting.get_coro()
        await waiting
        return coros

    finished, waiting = run_virtual(main)
    assert finished is None
    assert inspect.iscoroutine(waiting)


@needs_312
def test_an_exception_in_the_eager_step_stays_in_the_task(run_virtual: Runner) -> None:
    async def broken() -> None:
        raise LookupError("no such key")

    async def main() -> Tuple[bool, str, List[Dict[str, Any]]]:
        with loop_errors() as errors:
            task = create_eager_task(broken())  # does not raise
            done = task.done()
            message = str(task.exception())  # readable before anything awaited
            with pytest.raises(LookupError, match="no such key"):
                await task
            del task
        return done, message, errors

    # errors == []: read, so no "Task exception was never retrieved"
    assert run_virtual(main) == (True, "no such key", [])


@needs_312
def test_an_unread_eager_failure_is_reported_as_never_retrieved(run_virtual: Runner) -> None:
    async def broken() -> None:
        raise LookupError("lost")

    async def main() -> List[str]:
        with loop_errors() as errors:
            create_eager_task(broken())
        return [context["message"] for context in errors]

    assert run_virtual(main) == ["Task exception was never retrieved"]


@needs_312
def test_system_exit_in_the_eager_step_escapes_from_create_eager_task(
    run_virtual: Runner,
) -> None:
    async def quit_now() -> None:
        raise SystemExit(3)

    async def main() -> Tuple[Any, bool]:
        caller = asyncio.current_task()
        with loop_errors():  # the task object is lost with the exception
            with pytest.raises(SystemExit) as info:
                create_eager_task(quit_now())
        return info.value.code, asyncio.current_task() is caller

    assert run_virtual(main) == (3, True)


@needs_312
def test_awaiting_tasks_that_finish_eagerly_never_yields_to_the_loop(
    run_virtual: Runner,
) -> None:
    async def cached(n: int) -> int:
        return n

    async def main() -> Tuple[int, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        background = asyncio.create_task(ticker())
        await asyncio.sleep(0)  # the ticker has started
        start = ticks
        for n in range(100):
            await create_eager_task(cached(n))  # each one is done already
        starved = ticks - start
        for n in range(100):
            await asyncio.create_task(cached(n))  # each lazy one gives the loop a turn
        served = ticks - start - starved
        background.cancel()
        await asyncio.gather(background, return_exceptions=True)
        return starved, served

    starved, served = run_virtual(main)
    assert starved == 0
    assert served >= 100


@needs_312
def test_state_set_up_after_starting_an_eager_task_is_missing_in_its_first_step(
    run_virtual: Runner,
) -> None:
    class Counter:
        def __init__(self, start: Callable[[Any], asyncio.Task[None]]) -> None:
            self.task = start(self.count())
            self.ticks = 0  # the pitfall: set up after the task has started

        async def count(self) -> None:
            self.ticks += 1

    async def main() -> Tuple[int, str]:
        lazy = Counter(asyncio.create_task)
        await lazy.task
        eager = Counter(create_eager_task)
        error = eager.task.exception()
        return lazy.ticks, repr(error)

    ticks, error = run_virtual(main)
    assert ticks == 1
    assert error == "AttributeError(\"'Counter' object has no attribute 'ticks'\")"


@needs_312
def test_a_temporary_eager_factory_also_makes_nested_tasks_eager_but_the_helper_does_not(
    run_virtual: Runner,
) -> None:
    async def parent(log: List[str]) -> None:
        child = asyncio.create_task(two_steps("child", log))  # before parent's first wait
        log.append("parent: child started")
        await child

    def swap_factory(coro: Any) -> asyncio.Task[Any]:
        loop = asyncio.get_running_loop()
        loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined]
        try:
            return asyncio.create_task(coro)
        finally:
            loop.set_task_factory(None)

    async def main() -> Tuple[List[str], List[str]]:
        swapped: List[str] = []
        await swap_factory(parent(swapped))
        helper: List[str] = []
        await create_eager_task(parent(helper))
        return swapped, helper

    swapped, helper = run_virtual(main)
    assert swapped[:2] == ["child: step 1", "parent: child started"]  # the child went eager too
    assert helper[:2] == ["parent: child started", "child: step 1"]  # the child stayed lazy


def test_create_eager_task_lets_an_installed_task_factory_make_the_task(
    run_virtual: Runner,
) -> None:
    made: List[Dict[str, Any]] = []

    def recording_factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
        made.append(dict(kwargs))
        return asyncio.Task(coro, loop=loop, **kwargs)

    async def main() -> List[str]:
        loop = asyncio.get_running_loop()
        loop.set_task_factory(recording_factory)
        try:
            return await order_of(lambda coro: create_eager_task(coro, name="made"))
        finally:
            loop.set_task_factory(None)

    order = run_virtual(main)
    assert len(made) == 1
    if sys.version_info >= (3, 14):  # the factory gets eager_start=True and passes it on
        assert made[0]["eager_start"] is True and made[0]["name"] == "made"
        assert order == EAGER_ORDER
    else:  # the factory decides; this one makes ordinary tasks
        assert "eager_start" not in made[0]
        assert order == LAZY_ORDER


@needs_314
def test_a_factory_that_does_not_pass_on_keywords_fails_and_the_coroutine_is_closed(
    run_virtual: Runner,
) -> None:
    def old_style_factory(
        loop: asyncio.AbstractEventLoop, coro: Any, *, name: Any = None, context: Any = None
    ) -> Any:
        return asyncio.Task(coro, loop=loop, name=name, context=context)

    async def main() -> str:
        loop = asyncio.get_running_loop()
        loop.set_task_factory(old_style_factory)
        coro = asyncio.sleep(1)
        try:
            with pytest.raises(TypeError, match="eager_start"):
                create_eager_task(coro)
        finally:
            loop.set_task_factory(None)
        return inspect.getcoroutinestate(coro)

    assert run_virtual(main) == inspect.CORO_CLOSED


# --- eager tasks in a TaskGroup (3.14+) ------------------------------------------------------


@needs_314
def test_task_group_create_task_takes_eager_start(run_virtual: Runner) -> None:
    async def cached(key: str) -> str:
        return key.upper()

    async def main() -> Tuple[List[str], bool, str]:
        log: List[str] = []
        async with asyncio.TaskGroup() as group:
            for key in ("a", "b"):
                group.create_task(two_steps(key, log), eager_start=True)
            hit = group.create_task(cached("c"), eager_start=True)
            hit_done = hit.done()
            log.append("caller: next line")
        return log, hit_done, hit.result()

    assert run_virtual(main) == (
        ["a: step 1", "b: step 1", "caller: next line", "a: step 2", "b: step 2"],
        True,
        "C",
    )


@needs_314
def test_an_eager_failure_in_a_task_group_cancels_the_others_when_the_loop_runs(
    run_virtual: Runner,
) -> None:
    async def broken() -> None:
        raise ValueError("eager failure")

    async def main() -> List[str]:
        log: List[str] = []

        async def sibling() -> None:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                log.append("sibling cancelled")
                raise

        with pytest.raises(ExceptionGroup) as info:  # noqa: F821 - a builtin since 3.11
            async with asyncio.TaskGroup() as group:
                group.create_task(sibling())
                failed = group.create_task(broken(), eager_start=True)
                log.append(f"body goes on: failed={failed.done()}")
                await asyncio.sleep(0)
                log.append("never reached")
        log.append(f"group raised {info.value.exceptions!r}")
        return log

    assert run_virtual(main) == [
        "body goes on: failed=True",
        "sibling cancelled",
        "group raised (ValueError('eager failure'),)",
    ]


# --- create_eager_task(): bad input ---------------------------------------------------------


@pytest.mark.parametrize(
    "bad, match",
    [
        (two_steps, "expects a coroutine object, got <function two_steps .*forget the paren"),
        (None, "expects a coroutine object, got None$"),
        ("work", "expects a coroutine object, got 'work'$"),
    ],
    ids=["function", "None", "str"],
)
def test_create_eager_task_rejects_non_coroutines(
    run_virtual: Runner, bad: Any, match: str
) -> None:
    async def main() -> List[Any]:
        with pytest.raises(TypeError, match=match):
            create_eager_task(bad)
        return others()

    assert run_virtual(main) == []


def test_create_eager_task_rejects_a_future_and_a_task(run_virtual: Runner) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        task = loop.create_task(asyncio.sleep(0))
        for awaitable in (future, task):
            with pytest.raises(TypeError, match="expects a coroutine object, got <"):
                create_eager_task(awaitable)  # type: ignore[arg-type]
        await task

    run_virtual(main)


def test_create_eager_task_with_a_bad_context_closes_the_coroutine_and_keeps_the_loop_sane(
    run_virtual: Runner,
) -> None:
    async def main() -> Tuple[str, bool, str]:
        caller = asyncio.current_task()
        coro = two_steps("never", [])
        expected = r"context must be a contextvars\.Context or None, not 'not a context'"
        with pytest.raises(TypeError, match=expected):
            create_eager_task(coro, context="not a context")  # type: ignore[arg-type]
        await asyncio.sleep(0)  # the loop still switches tasks
        follow_up = await create_eager_task(asyncio.sleep(0, result="still works"))
        return inspect.getcoroutinestate(coro), asyncio.current_task() is caller, follow_up

    assert run_virtual(main) == (inspect.CORO_CLOSED, True, "still works")


def test_create_eager_task_without_a_running_loop_closes_the_coroutine() -> None:
    coro = asyncio.sleep(1)
    with pytest.raises(RuntimeError, match="no running event loop"):
        create_eager_task(coro)
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED
