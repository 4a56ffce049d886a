"""Behaviour, fault and bad-input tests for recipes/cancellation.py."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import os
import signal
import sys
from typing import Any, Callable, Dict, Iterator, List

import pytest

from recipes.cancellation import cancel_and_wait, shielded_cleanup, stop_on_signals

unix_only = pytest.mark.skipif(
    sys.platform == "win32", reason="loop.add_signal_handler() exists only on Unix"
)


async def _sleep_forever(log: List[str], name: str, cleanup_seconds: float = 0) -> None:
    try:
        await asyncio.sleep(3600)
    finally:
        if cleanup_seconds:
            await asyncio.sleep(cleanup_seconds)
        log.append(name)


# --- cancel_and_wait ---------------------------------------------------------


def test_cancel_and_wait_runs_every_cleanup_in_argument_order(run_virtual: Any) -> None:
    async def main() -> Any:
        log: List[str] = []
        tasks = [asyncio.create_task(_sleep_forever(log, f"t{n}")) for n in range(5)]
        await asyncio.sleep(0.1)
        errors = await cancel_and_wait(*tasks)
        return log, errors, [t.cancelled() for t in tasks]

    log, errors, cancelled = run_virtual(main)
    assert log == ["t0", "t1", "t2", "t3", "t4"]
    assert errors == []
    assert cancelled == [True] * 5


def test_cancel_and_wait_waits_for_cleanups_that_await(run_virtual: Any) -> None:
    async def main() -> Any:
        log: List[str] = []
        tasks = [asyncio.create_task(_sleep_forever(log, f"t{n}", 0.5)) for n in range(3)]
        await asyncio.sleep(0)
        await cancel_and_wait(*tasks)
        return log, all(t.done() for t in tasks)

    log, all_done = run_virtual(main)
    assert sorted(log) == ["t0", "t1", "t2"]
    assert all_done


def test_cancel_and_wait_survives_being_cancelled_itself(run_virtual: Any) -> None:
    async def main() -> Any:
        log: List[str] = []
        workers = [asyncio.create_task(_sleep_forever(log, f"w{n}", 1.0)) for n in range(2)]
        await asyncio.sleep(0)
        seen_at_exit: List[bool] = []

        async def stopper() -> None:
            try:
                await cancel_and_wait(*workers)
            except asyncio.CancelledError:
                seen_at_exit.extend(w.done() for w in workers)
                raise

        stop = asyncio.create_task(stopper())
        await asyncio.sleep(0.1)
        stop.cancel()
        await asyncio.sleep(0.1)
        stop.cancel()  # a second, impatient cancel changes nothing
        with pytest.raises(asyncio.CancelledError):
            await stop
        return log, seen_at_exit, stop.cancelled()

    log, seen_at_exit, cancelled = run_virtual(main)
    assert sorted(log) == ["w0", "w1"]  # both cleanups completed
    assert seen_at_exit == [True, True]  # ...before the CancelledError was re-raised
    assert cancelled  # and the cancellation was not swallowed


def test_cancel_and_wait_reports_and_retrieves_errors(run_virtual: Any) -> None:
    async def bad_cleanup(message: str) -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            raise ConnectionResetError(message)

    async def already_failed() -> None:
        raise KeyError("early")

    async def fine() -> str:
        return "ok"

    async def main() -> Any:
        reports: List[Dict[str, Any]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: reports.append(ctx))
        early = asyncio.create_task(already_failed())
        ok = asyncio.create_task(fine())
        bad = [asyncio.create_task(bad_cleanup(f"b{n}")) for n in range(2)]
        await asyncio.sleep(0.1)
        errors = await cancel_and_wait(early, bad[0], ok, bad[1])
        del early, ok, bad
        gc.collect()
        return errors, reports

    errors, reports = run_virtual(main)
    assert [repr(e) for e in errors] == [
        "KeyError('early')",
        "ConnectionResetError('b0')",
        "ConnectionResetError('b1')",
    ]
    assert reports == []  # no "Task exception was never retrieved"


def test_cancel_and_wait_leaves_finished_tasks_alone_and_accepts_duplicates(
    run_virtual: Any,
) -> None:
    async def main() -> Any:
        log: List[str] = []
        done = asyncio.create_task(asyncio.sleep(0, result="value"))
        await asyncio.sleep(0.1)
        running = asyncio.create_task(_sleep_forever(log, "r"))
        await asyncio.sleep(0)
        errors = await cancel_and_wait(done, running, running, done)
        return errors, done.result(), running.cancelled(), log

    errors, result, cancelled, log = run_virtual(main)
    assert errors == []
    assert result == "value"
    assert cancelled
    assert log == ["r"]


def test_cancel_and_wait_with_no_tasks_returns_at_once(run_virtual: Any) -> None:
    async def main() -> Any:
        return await cancel_and_wait()

    assert run_virtual(main) == []


def test_cancel_and_wait_timeout_gives_up_on_a_task_that_ignores_cancel(
    run_virtual: Any,
) -> None:
    async def stubborn() -> str:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:  # the bug this timeout protects against
            pass
        await asyncio.sleep(5)
        return "finished anyway"

    async def main() -> Any:
        task = asyncio.create_task(stubborn())
        await asyncio.sleep(0)
        with pytest.raises(asyncio.TimeoutError, match="1 task"):
            await cancel_and_wait(task, timeout=0.5)
        still_running = not task.done()
        result = await task  # clean up for the leak check
        return still_running, result

    assert run_virtual(main) == (True, "finished anyway")


def test_cancel_and_wait_timeout_while_cancelled_raises_the_cancellation(
    run_virtual: Any,
) -> None:
    async def stubborn() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:  # the bug this timeout protects against
            pass
        await asyncio.sleep(5)

    async def main() -> Any:
        task = asyncio.create_task(stubborn())
        await asyncio.sleep(0)
        stopper = asyncio.create_task(cancel_and_wait(task, timeout=0.5))
        await asyncio.sleep(0.1)
        stopper.cancel()
        await asyncio.wait([stopper])
        outcome = stopper.cancelled(), task.done()
        await task  # clean up for the leak check
        return outcome

    assert run_virtual(main) == (True, False)


@pytest.mark.skipif(sys.version_info < (3, 9), reason="Task.cancel(msg) needs Python >= 3.9")
def test_cancel_and_wait_passes_the_message(run_virtual: Any) -> None:
    async def main() -> Any:
        seen: List[Any] = []

        async def job() -> None:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError as exc:
                seen.append(exc.args)
                raise

        task = asyncio.create_task(job())
        await asyncio.sleep(0)
        await cancel_and_wait(task, msg="shutting down")
        return seen

    assert run_virtual(main) == [("shutting down",)]


def test_cancel_and_wait_rejects_a_coroutine_before_cancelling_anything(
    run_virtual: Any,
) -> None:
    async def main() -> Any:
        log: List[str] = []
        good = asyncio.create_task(_sleep_forever(log, "good"))
        await asyncio.sleep(0)
        coro = asyncio.sleep(1)
        with pytest.raises(TypeError, match=r"coroutine object.*create_task"):
            await cancel_and_wait(good, coro)  # type: ignore[arg-type]
        state = inspect.getcoroutinestate(coro)
        was_cancelled = good.cancelled() or good.done()
        await cancel_and_wait(good)
        return state, was_cancelled

    state, was_cancelled = run_virtual(main)
    assert state == inspect.CORO_CLOSED  # closed: no "never awaited" warning
    assert not was_cancelled


@pytest.mark.parametrize("bad", [None, 42, "task", object()])
def test_cancel_and_wait_rejects_non_tasks(run_virtual: Any, bad: Any) -> None:
    async def main() -> None:
        with pytest.raises(TypeError, match="takes tasks"):
            await cancel_and_wait(bad)

    run_virtual(main)


def test_cancel_and_wait_refuses_to_wait_for_its_own_task(run_virtual: Any) -> None:
    async def main() -> None:
        me = asyncio.current_task()
        assert me is not None
        with pytest.raises(ValueError, match="calls it"):
            await cancel_and_wait(me)

    run_virtual(main)


def test_cancel_and_wait_rejects_negative_timeout(run_virtual: Any) -> None:
    async def main() -> None:
        task = asyncio.create_task(asyncio.sleep(1))
        with pytest.raises(ValueError, match="timeout"):
            await cancel_and_wait(task, timeout=-1)
        assert not task.cancelled()
        await task

    run_virtual(main)


def test_cancel_and_wait_under_load(run_virtual: Any) -> None:
    async def main() -> Any:
        log: List[str] = []
        tasks = [asyncio.create_task(_sleep_forever(log, str(n), 0.01)) for n in range(2000)]
        await asyncio.sleep(0)
        errors = await cancel_and_wait(*tasks)
        return len(log), errors, sum(t.cancelled() for t in tasks)

    assert run_virtual(main) == (2000, [], 2000)


# --- shielded_cleanup --------------------------------------------------------


def test_shielded_cleanup_returns_the_result(run_virtual: Any) -> None:
    async def cleanup() -> int:
        await asyncio.sleep(0.2)
        return 7

    async def main() -> int:
        return await shielded_cleanup(cleanup(), timeout=1)

    assert run_virtual(main) == 7


def test_shielded_cleanup_finishes_despite_repeated_cancels(run_virtual: Any) -> None:
    async def main() -> Any:
        log: List[str] = []

        async def close() -> None:
            await asyncio.sleep(1)
            log.append("closed")

        async def handler() -> None:
            try:
                await asyncio.sleep(3600)
            finally:
                await shielded_cleanup(close(), timeout=5)
                log.append("after cleanup")  # not reached: the cancellation goes on

        task = asyncio.create_task(handler())
        await asyncio.sleep(0.1)
        for _ in range(3):
            task.cancel()
            await asyncio.sleep(0.2)
        assert log == []
        await asyncio.wait([task])
        return log, task.cancelled()

    assert run_virtual(main) == (["closed"], True)


def test_shielded_cleanup_times_out_and_cancels_the_cleanup(run_virtual: Any) -> None:
    async def main() -> Any:
        log: List[str] = []

        async def hung() -> None:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                log.append("cleanup cancelled")
                raise

        with pytest.raises(asyncio.TimeoutError, match=r"within 0\.5 s"):
            await shielded_cleanup(hung(), timeout=0.5)
        return log

    assert run_virtual(main) == ["cleanup cancelled"]


def test_shielded_cleanup_timeout_while_cancelled_raises_cancelled(run_virtual: Any) -> None:
    async def main() -> Any:
        async def hung() -> None:
            await asyncio.sleep(3600)

        async def caller() -> None:
            await shielded_cleanup(hung(), timeout=0.5)

        task = asyncio.create_task(caller())
        await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.wait([task])
        return task.cancelled()

    assert run_virtual(main) is True


def test_shielded_cleanup_error_propagates(run_virtual: Any) -> None:
    async def broken() -> None:
        await asyncio.sleep(0.1)
        raise OSError("disk gone")

    async def main() -> None:
        with pytest.raises(OSError, match="disk gone"):
            await shielded_cleanup(broken(), timeout=1)

    run_virtual(main)


def test_shielded_cleanup_error_while_cancelled_keeps_the_cancellation(
    run_virtual: Any,
) -> None:
    async def broken() -> None:
        await asyncio.sleep(0.5)
        raise OSError("disk gone")

    async def main() -> Any:
        caught: List[BaseException] = []

        async def caller() -> None:
            try:
                await shielded_cleanup(broken(), timeout=1)
            except BaseException as exc:
                caught.append(exc)
                raise

        task = asyncio.create_task(caller())
        await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.wait([task])
        return task.cancelled(), caught

    cancelled, caught = run_virtual(main)
    assert cancelled
    assert isinstance(caught[0], asyncio.CancelledError)
    assert isinstance(caught[0].__cause__, OSError)


def test_shielded_cleanup_rejects_a_function_instead_of_an_awaitable(run_virtual: Any) -> None:
    async def close() -> None:
        pass

    async def main() -> None:
        with pytest.raises(TypeError, match=r"not conn\.close"):
            await shielded_cleanup(close, timeout=1)  # type: ignore[arg-type]

    run_virtual(main)


@pytest.mark.parametrize("timeout", [0, -1])
def test_shielded_cleanup_rejects_bad_timeout_and_closes_the_coroutine(
    run_virtual: Any, timeout: float
) -> None:
    async def main() -> Any:
        coro = asyncio.sleep(1)
        with pytest.raises(ValueError, match="timeout"):
            await shielded_cleanup(coro, timeout=timeout)
        return inspect.getcoroutinestate(coro)

    assert run_virtual(main) == inspect.CORO_CLOSED


# --- shielded_cleanup: the cancellation that started the cleanup wins ----------


async def _hung(log: List[str], unwind: float = 0) -> None:
    """A goodbye that never gets an answer; when cancelled it takes *unwind* s to unwind."""
    try:
        await asyncio.sleep(3600)
    finally:
        if unwind:
            await asyncio.sleep(unwind)
        log.append("cleanup unwound")


async def _broken(log: List[str]) -> None:
    await asyncio.sleep(0.2)
    log.append("cleanup failed")
    raise OSError("peer vanished during goodbye")


def test_shielded_cleanup_timeout_after_one_cancel_does_not_feed_a_reconnect_loop(
    run_virtual: Any,
) -> None:
    """One cancel(), a goodbye that outlives its timeout: the task must end cancelled.

    Before the fix the TimeoutError replaced the CancelledError, ``except Exception``
    caught it, and the service reconnected instead of shutting down.
    """

    async def main() -> Any:
        log: List[str] = []
        connections = 0

        async def service() -> None:
            nonlocal connections
            while True:
                connections += 1
                try:
                    try:
                        await asyncio.sleep(3600)  # serve the connection
                    finally:
                        await shielded_cleanup(_hung(log), timeout=0.5)
                except Exception:
                    continue  # reconnect

        task = asyncio.create_task(service())
        await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.wait([task], timeout=10)
        outcome = (task.done(), task.done() and task.cancelled(), connections, list(log))
        if not task.done():  # clean up after the bug, so the test reports it plainly
            task.cancel()
            await asyncio.sleep(0.1)
            task.cancel()
            await asyncio.wait([task])
        return outcome

    assert run_virtual(main) == (True, True, 1, ["cleanup unwound"])


@pytest.mark.parametrize("failure", ["timeout", "error"])
def test_shielded_cleanup_failure_after_a_cancel_reraises_the_original_cancellation(
    run_virtual: Any, caplog: Any, failure: str
) -> None:
    async def main() -> Any:
        log: List[str] = []
        seen: Dict[str, Any] = {}

        async def handler() -> None:
            try:
                try:
                    await asyncio.sleep(3600)
                except asyncio.CancelledError as exc:
                    seen["original"] = exc
                    raise
                finally:
                    cleanup = _hung(log) if failure == "timeout" else _broken(log)
                    await shielded_cleanup(cleanup, timeout=0.5)
            except BaseException as exc:
                seen["raised"] = exc
                if sys.version_info >= (3, 11):
                    task = asyncio.current_task()
                    assert task is not None
                    seen["cancelling"] = task.cancelling()
                raise

        task = asyncio.create_task(handler())
        await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.wait([task])
        return task.cancelled(), seen, log

    with caplog.at_level("ERROR", logger="recipes.cancellation"):
        cancelled, seen, log = run_virtual(main)
    assert cancelled
    assert seen["raised"] is seen["original"]  # the same CancelledError goes on
    cause = seen["raised"].__cause__
    if failure == "timeout":
        assert isinstance(cause, asyncio.TimeoutError)
        assert log == ["cleanup unwound"]  # the timed-out cleanup was cancelled and awaited
    else:
        assert isinstance(cause, OSError)
        assert log == ["cleanup failed"]
    if sys.version_info >= (3, 11):
        assert seen["cancelling"] == 1  # one cancel(), one request: nothing added or taken
    # The failure is not lost: it is logged, with its traceback.
    [record] = caplog.records
    assert record.exc_info is not None and record.exc_info[1] is cause


def test_shielded_cleanup_second_cancel_during_a_cleanup_that_times_out(
    run_virtual: Any, caplog: Any
) -> None:
    """A second and a third cancel() neither cut the cleanup short nor leave it running."""

    async def main() -> Any:
        log: List[str] = []
        seen: Dict[str, Any] = {}
        loop = asyncio.get_running_loop()

        async def handler() -> None:
            try:
                try:
                    await asyncio.sleep(3600)
                finally:
                    await shielded_cleanup(_hung(log, unwind=0.3), timeout=1)
            except asyncio.CancelledError as exc:
                seen["at"] = round(loop.time() - start, 1)
                seen["cause"] = exc.__cause__
                seen["left"] = asyncio.all_tasks() - {task, main_task}
                if sys.version_info >= (3, 11):
                    seen["cancelling"] = task.cancelling()
                raise

        main_task = asyncio.current_task()
        task = asyncio.create_task(handler())
        await asyncio.sleep(0.1)
        start = loop.time()
        task.cancel()  # starts the cleanup
        await asyncio.sleep(0.5)
        task.cancel()  # during the cleanup's wait
        await asyncio.sleep(0.6)
        task.cancel()  # while the timed-out cleanup unwinds
        await asyncio.wait([task])
        return task.cancelled(), seen, log

    with caplog.at_level("ERROR", logger="recipes.cancellation"):
        cancelled, seen, log = run_virtual(main)
    assert cancelled
    assert log == ["cleanup unwound"]  # cancelled at the timeout, and awaited
    assert seen["at"] == 1.3  # timeout (1 s) + unwinding (0.3 s): not cut short
    assert isinstance(seen["cause"], asyncio.TimeoutError)
    assert seen["left"] == set()  # the cleanup's task is gone: nothing leaked
    if sys.version_info >= (3, 11):
        assert seen["cancelling"] == 3
    assert len(caplog.records) == 1  # not silent


def test_shielded_cleanup_second_cancel_lets_a_quick_cleanup_finish_then_stops(
    run_virtual: Any, caplog: Any
) -> None:
    async def main() -> Any:
        log: List[str] = []

        async def close() -> None:
            await asyncio.sleep(0.5)
            log.append("closed")

        async def handler() -> None:
            try:
                await asyncio.sleep(3600)
            finally:
                await shielded_cleanup(close(), timeout=5)
                log.append("rest of finally")  # skipped: the second cancel goes on

        task = asyncio.create_task(handler())
        await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.wait([task])
        return task.cancelled(), log

    with caplog.at_level("ERROR", logger="recipes.cancellation"):
        assert run_virtual(main) == (True, ["closed"])
    assert caplog.records == []  # nothing failed, nothing to log


def test_shielded_cleanup_without_a_cancellation_raises_over_the_current_error(
    run_virtual: Any, caplog: Any
) -> None:
    """No cancellation: the caller sees TimeoutError, the error in flight as its context."""

    async def main() -> Any:
        log: List[str] = []
        with pytest.raises(asyncio.TimeoutError) as caught:
            try:
                raise ValueError("bad row")
            finally:
                await shielded_cleanup(_hung(log), timeout=0.5)
        return caught.value.__context__, log

    with caplog.at_level("ERROR", logger="recipes.cancellation"):
        context, log = run_virtual(main)
    assert isinstance(context, ValueError)
    assert log == ["cleanup unwound"]
    assert caplog.records == []  # raised to the caller, so not logged


def test_shielded_cleanup_cancel_in_a_handler_inside_the_finally(run_virtual: Any) -> None:
    """Called from an ``except`` for another error inside the cancelled finally.

    On 3.11+ ``cancelling()`` still says the task is being cancelled, so the
    cancellation wins.  On 3.8-3.10 only the error being handled can tell, and that is
    the OSError: the TimeoutError goes on (the chapter names this limit).
    """

    async def main() -> Any:
        log: List[str] = []

        async def handler() -> None:
            try:
                await asyncio.sleep(3600)
            finally:
                try:
                    raise OSError("flush failed")
                except OSError:
                    await shielded_cleanup(_hung(log), timeout=0.5)

        task = asyncio.create_task(handler())
        await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.wait([task])
        return task.cancelled(), None if task.cancelled() else type(task.exception())

    expected = (True, None) if sys.version_info >= (3, 11) else (False, asyncio.TimeoutError)
    assert run_virtual(main) == expected


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout needs Python >= 3.11")
def test_shielded_cleanup_timeout_inside_asyncio_timeout_keeps_the_count(
    run_virtual: Any,
) -> None:
    """The outer deadline cancels, the cleanup times out: asyncio.timeout still sees its own
    cancellation, turns it into TimeoutError, and the count is back to zero."""

    async def main() -> Any:
        log: List[str] = []
        task = asyncio.current_task()
        assert task is not None
        with pytest.raises(TimeoutError) as caught:
            async with asyncio.timeout(1):
                try:
                    await asyncio.sleep(3600)
                finally:
                    await shielded_cleanup(_hung(log), timeout=0.5)
        return type(caught.value.__cause__), task.cancelling(), log

    cause, cancelling, log = run_virtual(main)
    assert cause is asyncio.CancelledError  # asyncio.timeout's own conversion
    assert cancelling == 0
    assert log == ["cleanup unwound"]


# --- stop_on_signals ---------------------------------------------------------


@unix_only
def test_stop_on_signals_sets_the_event_on_a_real_signal(run_virtual: Any) -> None:
    async def main() -> Any:
        with stop_on_signals(signal.SIGUSR1, signal.SIGUSR2) as stop:
            before = stop.is_set()
            asyncio.get_running_loop().call_later(0.2, signal.raise_signal, signal.SIGUSR2)
            await asyncio.wait_for(stop.wait(), timeout=5)
        return before, stop.is_set()

    assert run_virtual(main) == (False, True)


@unix_only
def test_stop_on_signals_restores_previous_handlers(run_virtual: Any) -> None:
    received: List[int] = []

    def previous(signum: int, frame: Any) -> None:
        received.append(signum)

    old = signal.signal(signal.SIGUSR1, previous)
    try:

        async def main() -> Any:
            inside = {}
            with stop_on_signals(signal.SIGUSR1):
                inside["usr1"] = signal.getsignal(signal.SIGUSR1)
            return inside

        inside = run_virtual(main)
        assert inside["usr1"] is not previous
        assert signal.getsignal(signal.SIGUSR1) is previous
        signal.raise_signal(signal.SIGUSR1)  # the old handler works again
        assert received == [signal.SIGUSR1]
    finally:
        signal.signal(signal.SIGUSR1, old)


@unix_only
def test_stop_on_signals_defaults_to_sigint_and_sigterm(run_virtual: Any) -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    async def main() -> Any:
        with stop_on_signals():
            return {s: signal.getsignal(s) for s in before}

    inside = run_virtual(main)
    assert all(inside[s] is not before[s] for s in before)
    assert {s: signal.getsignal(s) for s in before} == before


@unix_only
def test_stop_on_signals_uncatchable_signal_undoes_the_others(run_virtual: Any) -> None:
    before = signal.getsignal(signal.SIGUSR1)

    async def main() -> None:
        with pytest.raises(RuntimeError, match="cannot be caught"):
            with stop_on_signals(signal.SIGUSR1, signal.SIGKILL):
                pass  # pragma: no cover - never entered

    run_virtual(main)
    assert signal.getsignal(signal.SIGUSR1) is before


@contextlib.contextmanager
def python_handler(signum: int) -> Iterator[List[int]]:
    """Install a plain ``signal.signal`` handler that records what it receives."""
    received: List[int] = []

    def record(sig: int, frame: Any) -> None:
        received.append(sig)

    old = signal.signal(signum, record)
    try:
        yield received
    finally:
        signal.signal(signum, old)


async def _until(condition: Callable[[], bool], seconds: float = 5) -> bool:
    """Let the loop run (and read its signal wake-up fd) until *condition* holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition() and loop.time() < deadline:
        await asyncio.sleep(0.01)
    return condition()


@unix_only
def test_stop_on_signals_restores_a_loop_handler_added_before(run_virtual: Any) -> None:
    """aiohttp's run_app, uvicorn... add their SIGTERM callback with loop.add_signal_handler."""

    async def main() -> Any:
        loop = asyncio.get_running_loop()
        outer: List[str] = []
        loop.add_signal_handler(signal.SIGUSR1, outer.append, "outer callback")
        try:
            with stop_on_signals(signal.SIGUSR1) as stop:
                os.kill(os.getpid(), signal.SIGUSR1)
                inside = await _until(stop.is_set)
            inner_only = list(outer)  # the innermost handler gets the signal
            os.kill(os.getpid(), signal.SIGUSR1)
            after = await _until(lambda: bool(outer))
            return inside, inner_only, after, outer
        finally:
            loop.remove_signal_handler(signal.SIGUSR1)

    with python_handler(signal.SIGUSR1):
        assert run_virtual(main) == (True, [], True, ["outer callback"])


@unix_only
def test_stop_on_signals_nested_blocks_and_a_python_handler(run_virtual: Any) -> None:
    async def main() -> Any:
        with stop_on_signals(signal.SIGUSR1) as outer:
            with stop_on_signals(signal.SIGUSR1) as inner:
                os.kill(os.getpid(), signal.SIGUSR1)
                assert await _until(inner.is_set)
                assert not outer.is_set()
            os.kill(os.getpid(), signal.SIGUSR1)  # the inner block has exited
            outer_got_it = await _until(outer.is_set)
        return outer_got_it

    with python_handler(signal.SIGUSR1) as received:
        before = signal.getsignal(signal.SIGUSR1)
        assert run_virtual(main) is True
        assert signal.getsignal(signal.SIGUSR1) is before
        assert received == []  # asyncio's handlers took every signal so far
        os.kill(os.getpid(), signal.SIGUSR1)  # both blocks have exited
        assert received == [signal.SIGUSR1]


@unix_only
def test_stop_on_signals_python_handler_receives_a_real_signal_after_exit(
    run_virtual: Any,
) -> None:
    async def main() -> None:
        with stop_on_signals(signal.SIGUSR1) as stop:
            os.kill(os.getpid(), signal.SIGUSR1)
            assert await _until(stop.is_set)

    with python_handler(signal.SIGUSR1) as received:
        run_virtual(main)
        assert received == []
        os.kill(os.getpid(), signal.SIGUSR1)
        assert received == [signal.SIGUSR1]


@unix_only
def test_stop_on_signals_the_same_signal_twice(run_virtual: Any) -> None:
    async def main() -> Any:
        with stop_on_signals(signal.SIGUSR1, signal.SIGUSR1) as stop:
            os.kill(os.getpid(), signal.SIGUSR1)
            inside = await _until(stop.is_set)
        return inside

    with python_handler(signal.SIGUSR1) as received:
        assert run_virtual(main) is True
        os.kill(os.getpid(), signal.SIGUSR1)
        assert received == [signal.SIGUSR1]


@unix_only
def test_stop_on_signals_puts_back_what_was_there_on_entry(run_virtual: Any) -> None:
    """A handler that the block itself adds for the same signal is replaced on exit."""

    async def main() -> Any:
        loop = asyncio.get_running_loop()
        added_inside: List[str] = []
        with stop_on_signals(signal.SIGUSR1):
            loop.add_signal_handler(signal.SIGUSR1, added_inside.append, "inside")
        os.kill(os.getpid(), signal.SIGUSR1)
        await asyncio.sleep(0.1)
        return added_inside

    with python_handler(signal.SIGUSR1) as received:
        assert run_virtual(main) == []
        assert received == [signal.SIGUSR1]


@unix_only
@pytest.mark.skipif(
    sys.version_info < (3, 11), reason="asyncio.run installs a SIGINT handler on Python >= 3.11"
)
def test_stop_on_signals_gives_asyncio_run_its_sigint_handler_back() -> None:
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("asyncio.run installs its SIGINT handler only over the default one")

    async def main() -> Any:
        runner_handler = signal.getsignal(signal.SIGINT)
        with stop_on_signals():
            inside = signal.getsignal(signal.SIGINT)
        return runner_handler, inside, signal.getsignal(signal.SIGINT)

    runner_handler, inside, after = asyncio.run(main())
    assert runner_handler is not signal.default_int_handler  # asyncio.run's own
    assert inside is not runner_handler
    assert after == runner_handler  # a fresh bound method each time: compare, not `is`


@unix_only
def test_graceful_shutdown_on_sigterm(run_virtual: Any) -> None:
    """The chapter's service: a signal, then cancel_and_wait on the workers."""

    async def main() -> Any:
        log: List[str] = []
        workers = [asyncio.create_task(_sleep_forever(log, f"w{n}", 0.1)) for n in range(3)]
        try:
            with stop_on_signals(signal.SIGUSR1) as stop:
                asyncio.get_running_loop().call_later(0.3, signal.raise_signal, signal.SIGUSR1)
                await stop.wait()
            log.append("signal")
        finally:
            errors = await cancel_and_wait(*workers, timeout=5)
        return log, errors

    log, errors = run_virtual(main)
    assert log[0] == "signal"
    assert sorted(log[1:]) == ["w0", "w1", "w2"]
    assert errors == []
