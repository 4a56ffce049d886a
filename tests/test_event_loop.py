"""Behaviour, fault and bad-input tests for recipes/event_loop.py."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import inspect
import re
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

from recipes.event_loop import LoopRunner, run_in_new_thread, run_with_loop_factory

PROJECT_ROOT = Path(__file__).resolve().parent.parent

Runner = Callable[[Callable[[], Awaitable[Any]]], Any]

# Every behaviour test of LoopRunner also runs against asyncio.Runner where it exists, so
# the two stay equivalent.
RUNNER_CLASSES = [
    pytest.param(LoopRunner, id="LoopRunner"),
    pytest.param(
        getattr(asyncio, "Runner", None),
        id="asyncio.Runner",
        marks=pytest.mark.skipif(
            sys.version_info < (3, 11), reason="asyncio.Runner needs Python >= 3.11"
        ),
    ),
]


async def current_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


# --- LoopRunner, and asyncio.Runner for comparison ----------------------------


@pytest.mark.parametrize("runner_class", RUNNER_CLASSES)
def test_several_runs_share_one_loop_and_its_state(runner_class: Any) -> None:
    async def start_job() -> asyncio.Future[str]:
        loop = asyncio.get_running_loop()
        job: asyncio.Future[str] = loop.create_future()
        loop.call_soon(job.set_result, "finished")
        return job

    async def finish(job: asyncio.Future[str]) -> str:
        return await job

    with runner_class() as runner:
        first = runner.run(current_loop())
        job = runner.run(start_job())
        assert runner.run(finish(job)) == "finished"
        assert runner.run(current_loop()) is first
        assert runner.get_loop() is first
        assert not first.is_closed()
    assert first.is_closed()


@pytest.mark.parametrize("runner_class", RUNNER_CLASSES)
def test_leftover_tasks_are_cancelled_and_their_finally_blocks_awaited(runner_class: Any) -> None:
    events: List[str] = []

    async def background() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0)  # cleanup that itself awaits
            events.append("cleanup finished")

    async def start() -> asyncio.Task[None]:
        task = asyncio.create_task(background())
        await asyncio.sleep(0)
        return task

    with runner_class() as runner:
        task = runner.run(start())
        events.append("last run returned")
        loop = runner.get_loop()
    assert events == ["last run returned", "cleanup finished"]
    assert task.cancelled()
    assert loop.is_closed()


@pytest.mark.parametrize("runner_class", RUNNER_CLASSES)
def test_a_failing_coroutine_propagates_and_the_runner_stays_usable(runner_class: Any) -> None:
    async def fail() -> None:
        await asyncio.sleep(0)
        raise ValueError("boom")

    with runner_class() as runner:
        with pytest.raises(ValueError, match="boom"):
            runner.run(fail())
        assert runner.run(asyncio.sleep(0, result="still works")) == "still works"
        loop = runner.get_loop()
    assert loop.is_closed()


@pytest.mark.parametrize("runner_class", RUNNER_CLASSES)
def test_the_runner_is_closed_even_when_the_with_block_raises(runner_class: Any) -> None:
    with pytest.raises(KeyError):
        with runner_class() as runner:
            loop = runner.get_loop()
            raise KeyError("from the block")
    assert loop.is_closed()


@pytest.mark.parametrize("runner_class", RUNNER_CLASSES)
def test_unfinished_async_generators_are_finalised_at_close(runner_class: Any) -> None:
    events: List[str] = []

    async def numbers() -> AsyncIterator[int]:
        try:
            for n in range(10):
                yield n
        finally:
            events.append("generator closed")

    async def take_one(gen: AsyncIterator[int]) -> int:
        return await gen.__anext__()

    with runner_class() as runner:
        gen = numbers()
        assert runner.run(take_one(gen)) == 0
        assert events == []
    assert events == ["generator closed"]


@pytest.mark.skipif(sys.version_info < (3, 9), reason="shutdown_default_executor is 3.9+")
@pytest.mark.parametrize("runner_class", RUNNER_CLASSES)
def test_close_waits_for_the_default_executor(runner_class: Any) -> None:
    done = threading.Event()

    def slow_job() -> None:
        time.sleep(0.05)
        done.set()

    async def start_job() -> None:
        asyncio.get_running_loop().run_in_executor(None, slow_job)  # not awaited on purpose

    with runner_class() as runner:
        runner.run(start_job())
    assert done.is_set()


@pytest.mark.parametrize("runner_class", RUNNER_CLASSES)
def test_run_after_close_is_refused(runner_class: Any) -> None:
    runner = runner_class()
    runner.get_loop()  # asyncio.Runner only becomes closed once it has made its loop
    runner.close()
    runner.close()  # idempotent
    with pytest.raises(RuntimeError, match="is closed"):
        runner.get_loop()
    coro = asyncio.sleep(0)
    try:
        with pytest.raises(RuntimeError, match="is closed"):
            runner.run(coro)
    finally:
        coro.close()


def test_loop_runner_takes_any_awaitable_and_rejects_the_rest() -> None:
    # asyncio.Runner's behaviour since 3.14, on every version.
    class Ready:
        def __await__(self) -> Any:
            yield from asyncio.sleep(0).__await__()
            return "custom awaitable"

    async def later() -> None:
        pass

    with LoopRunner() as runner:
        future = runner.get_loop().create_future()
        runner.get_loop().call_soon(future.set_result, "future")
        assert runner.run(future) == "future"
        assert runner.run(Ready()) == "custom awaitable"
        with pytest.raises(TypeError, match="an awaitable is required, got <function"):
            runner.run(later)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="an awaitable is required, got 42"):
            runner.run(42)  # type: ignore[arg-type]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.Runner is 3.11+")
def test_asyncio_runner_accepts_awaitables_since_314() -> None:
    async def later() -> None:
        pass

    with asyncio.Runner() as runner:
        future = runner.get_loop().create_future()
        runner.get_loop().call_soon(future.set_result, "future")
        if sys.version_info >= (3, 14):
            assert runner.run(future) == "future"
            with pytest.raises(TypeError, match="awaitable is required"):
                runner.run(later)
        else:
            with pytest.raises(ValueError, match="coroutine was expected"):
                runner.run(future)
            with pytest.raises(ValueError, match="coroutine was expected"):
                runner.run(later)


@pytest.mark.parametrize("runner_class", RUNNER_CLASSES)
def test_debug_flag_is_applied(runner_class: Any) -> None:
    async def debug_enabled() -> bool:
        return asyncio.get_running_loop().get_debug()

    with runner_class(debug=True) as runner:
        assert runner.run(debug_enabled()) is True
    with runner_class(debug=False) as runner:
        assert runner.run(debug_enabled()) is False


@pytest.mark.parametrize("runner_class", RUNNER_CLASSES)
def test_the_default_loop_is_current_while_open_and_unset_afterwards(runner_class: Any) -> None:
    with runner_class() as runner:
        loop = runner.get_loop()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no DeprecationWarning: a loop is set
            assert asyncio.get_event_loop() is loop
    with pytest.raises(RuntimeError, match="There is no current event loop"):
        asyncio.get_event_loop()


@pytest.mark.parametrize("runner_class", RUNNER_CLASSES)
def test_loop_factory_is_used_and_not_made_current(runner_class: Any) -> None:
    made: List[asyncio.AbstractEventLoop] = []

    def factory() -> asyncio.AbstractEventLoop:
        loop = asyncio.SelectorEventLoop()
        made.append(loop)
        return loop

    asyncio.set_event_loop(None)
    with runner_class(loop_factory=factory) as runner:
        assert runner.run(current_loop()) is made[0]
        with pytest.raises(RuntimeError, match="There is no current event loop"):
            asyncio.get_event_loop()
    assert made[0].is_closed()


@pytest.mark.parametrize("runner_class", RUNNER_CLASSES)
def test_an_exception_raised_while_cancelling_leftovers_reaches_the_handler(
    runner_class: Any,
) -> None:
    contexts: List[Dict[str, Any]] = []

    async def stubborn() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise ValueError("failed during cleanup") from None

    async def start() -> asyncio.Task[None]:
        asyncio.get_running_loop().set_exception_handler(lambda _l, c: contexts.append(c))
        task = asyncio.create_task(stubborn())
        await asyncio.sleep(0)
        return task

    with runner_class() as runner:
        task = runner.run(start())
    assert len(contexts) == 1
    assert contexts[0]["task"] is task
    assert isinstance(contexts[0]["exception"], ValueError)
    assert "shutdown" in contexts[0]["message"]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="create_task(context=) is 3.11+")
@pytest.mark.parametrize("runner_class", RUNNER_CLASSES)
def test_context_variables_carry_over_between_runs_on_311(runner_class: Any) -> None:
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

    async def set_id() -> None:
        request_id.set("abc")

    async def get_id() -> str:
        return request_id.get()

    with runner_class() as runner:
        runner.run(set_id())
        assert runner.run(get_id()) == "abc"
    assert request_id.get() == "-"  # the caller's context is untouched


@pytest.mark.skipif(sys.version_info >= (3, 11), reason="documents the 3.8-3.10 behaviour")
def test_context_variables_start_from_a_copy_on_each_run_before_311() -> None:
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
    request_id.set("outer")

    async def set_id() -> None:
        request_id.set("abc")

    async def get_id() -> str:
        return request_id.get()

    with LoopRunner() as runner:
        runner.run(set_id())
        assert runner.run(get_id()) == "outer"


# --- LoopRunner's own guarantees ------------------------------------------------


def test_loop_runner_closes_a_coroutine_it_refuses() -> None:
    runner = LoopRunner()
    runner.close()
    coro = asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="LoopRunner is closed"):
        runner.run(coro)
    assert coro.cr_frame is None  # closed: no "never awaited" warning later


def test_loop_runner_refuses_to_run_or_close_from_a_running_loop(run_virtual: Runner) -> None:
    runner = LoopRunner()

    async def main() -> None:
        runner.get_loop()  # creating the loop is harmless
        coro = asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="cannot be called from a running event loop"):
            runner.run(coro)
        assert coro.cr_frame is None
        with pytest.raises(RuntimeError, match="cannot be called from a running event loop"):
            runner.close()

    run_virtual(main)
    loop = runner.get_loop()  # still open after the refused close()
    runner.close()
    assert loop.is_closed()


def test_loop_runner_close_without_a_loop_just_marks_it_closed() -> None:
    runner = LoopRunner()
    runner.close()
    with pytest.raises(RuntimeError, match="LoopRunner is closed"):
        runner.get_loop()


def test_loop_runner_rejects_a_non_callable_loop_factory() -> None:
    with pytest.raises(TypeError, match="loop_factory must be callable"):
        LoopRunner(loop_factory="uvloop")  # type: ignore[arg-type]


def test_loop_runner_under_load_runs_many_calls_on_one_loop() -> None:
    async def work(n: int) -> int:
        await asyncio.sleep(0)
        return n * n

    with LoopRunner() as runner:
        loops = {id(runner.run(current_loop())) for _ in range(50)}
        results = [runner.run(work(n)) for n in range(500)]
    assert len(loops) == 1
    assert results == [n * n for n in range(500)]


# --- run_in_new_thread ----------------------------------------------------------


def test_run_in_new_thread_returns_the_result_from_another_thread() -> None:
    async def where() -> int:
        await asyncio.sleep(0)
        return threading.get_ident()

    assert run_in_new_thread(where()) != threading.get_ident()


def test_run_in_new_thread_works_from_inside_a_running_loop(run_virtual: Runner) -> None:
    async def add(a: int, b: int) -> int:
        await asyncio.sleep(0)
        return a + b

    async def notebook_cell() -> int:
        return run_in_new_thread(add(2, 3))

    assert run_virtual(notebook_cell) == 5


def test_run_in_new_thread_reraises_the_coroutine_exception() -> None:
    async def fail() -> None:
        raise LookupError("missing")

    with pytest.raises(LookupError, match="missing"):
        run_in_new_thread(fail())


def test_run_in_new_thread_timeout_cancels_and_lets_cleanup_run() -> None:
    events: List[str] = []

    async def slow() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            events.append("cleanup")

    with pytest.raises(asyncio.TimeoutError):
        run_in_new_thread(slow(), timeout=0.01)
    assert events == ["cleanup"]


def test_run_in_new_thread_closes_its_loop_and_leftover_tasks() -> None:
    loops: List[asyncio.AbstractEventLoop] = []
    leftovers: List[asyncio.Task[None]] = []

    async def main() -> None:
        loops.append(asyncio.get_running_loop())
        leftovers.append(asyncio.create_task(asyncio.sleep(3600)))
        await asyncio.sleep(0)

    run_in_new_thread(main())
    assert loops[0].is_closed()
    assert leftovers[0].cancelled()


def test_run_in_new_thread_passes_debug_and_context_variables() -> None:
    user: contextvars.ContextVar[str] = contextvars.ContextVar("user", default="nobody")
    user.set("alice")

    async def probe() -> Any:
        return asyncio.get_running_loop().get_debug(), user.get()

    assert run_in_new_thread(probe(), debug=True) == (True, "alice")
    assert run_in_new_thread(probe(), debug=False) == (False, "alice")


@pytest.mark.parametrize("bad", [0, -1.0, float("nan")])
def test_run_in_new_thread_rejects_bad_timeouts_and_closes_the_coroutine(bad: float) -> None:
    coro = asyncio.sleep(0)
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        run_in_new_thread(coro, timeout=bad)
    assert coro.cr_frame is None


@pytest.mark.parametrize("bad", [None, 42, asyncio.sleep])
def test_run_in_new_thread_rejects_non_coroutines(bad: Any) -> None:
    with pytest.raises(TypeError, match="expects a coroutine object"):
        run_in_new_thread(bad)


def _interrupt_join_of_worker(
    monkeypatch: pytest.MonkeyPatch,
    before: Optional[threading.Event] = None,
    announce: Optional[threading.Event] = None,
) -> None:
    """Make the caller's wait for the worker raise KeyboardInterrupt, like Ctrl-C would.

    It waits for ``before`` first, and sets ``announce`` just before raising.
    """
    original_join = threading.Thread.join

    def interrupted_join(self: threading.Thread, timeout: Optional[float] = None) -> None:
        if self.name == "run_in_new_thread":
            if before is not None:
                assert before.wait(5)
            if announce is not None:
                announce.set()
            raise KeyboardInterrupt
        original_join(self, timeout)

    monkeypatch.setattr(threading.Thread, "join", interrupted_join)


def _join_workers() -> None:
    for thread in threading.enumerate():
        if thread.name == "run_in_new_thread":
            thread.join(5)
            assert not thread.is_alive()


def test_an_interrupted_caller_cancels_the_running_coroutine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started = threading.Event()
    cleaned_up = threading.Event()

    async def long_job() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        finally:
            cleaned_up.set()

    _interrupt_join_of_worker(monkeypatch, before=started)
    with pytest.raises(KeyboardInterrupt):
        run_in_new_thread(long_job())
    monkeypatch.undo()
    assert cleaned_up.wait(5)
    _join_workers()


def test_an_interrupted_caller_stops_a_coroutine_that_has_not_started(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    completed = threading.Event()
    caller_gave_up = threading.Event()
    original_run = LoopRunner.run

    def run_once_the_caller_gave_up(self: LoopRunner, coro: Any) -> Any:
        assert caller_gave_up.wait(5)
        return original_run(self, coro)

    async def job() -> None:
        await asyncio.sleep(0.2)
        completed.set()

    monkeypatch.setattr(LoopRunner, "run", run_once_the_caller_gave_up)
    _interrupt_join_of_worker(monkeypatch, announce=caller_gave_up)
    interrupted = False
    try:
        run_in_new_thread(job())
    except KeyboardInterrupt:  # not bound to a name, so its traceback is freed here
        interrupted = True
    monkeypatch.undo()
    assert interrupted
    _join_workers()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    assert [str(w.message) for w in caught if "never awaited" in str(w.message)] == []
    assert not completed.is_set()


# --- get_running_loop / get_event_loop, as the chapter describes them ------------


def test_get_running_loop_outside_a_loop_raises(run_virtual: Runner) -> None:
    with pytest.raises(RuntimeError, match="no running event loop"):
        asyncio.get_running_loop()

    async def main() -> bool:
        loop = asyncio.get_running_loop()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            return asyncio.get_event_loop() is loop  # inside a coroutine: never warns

    assert run_virtual(main) is True


def test_get_event_loop_raises_in_a_thread_without_a_loop() -> None:
    errors: List[BaseException] = []

    def worker() -> None:
        try:
            asyncio.get_event_loop()
        except RuntimeError as exc:
            errors.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert len(errors) == 1
    assert "There is no current event loop" in str(errors[0])


def _run_script(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_get_event_loop_in_a_fresh_script_depends_on_the_version() -> None:
    done = _run_script("import asyncio; asyncio.get_event_loop().close(); print('created')")
    if sys.version_info < (3, 12):
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "created"
    elif sys.version_info < (3, 14):
        assert done.returncode == 1
        assert "DeprecationWarning: There is no current event loop" in done.stderr
    else:
        assert done.returncode == 1
        assert "RuntimeError: There is no current event loop" in done.stderr


def test_get_event_loop_after_asyncio_run_raises_on_every_version() -> None:
    script = "\n".join(
        [
            "import asyncio",
            "async def main(): pass",
            "asyncio.run(main())",
            "try:",
            "    asyncio.get_event_loop()",
            "except RuntimeError as exc:",
            "    print(exc)",
        ]
    )
    done = _run_script(script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "There is no current event loop in thread 'MainThread'."


def test_asyncio_run_refuses_to_nest() -> None:
    async def inner() -> None:
        pass

    async def outer() -> str:
        coro = inner()
        try:
            asyncio.run(coro)
        except RuntimeError as exc:
            return str(exc)
        finally:
            coro.close()
        return "no error"

    assert run_in_new_thread(outer()) == "asyncio.run() cannot be called from a running event loop"


# --- run_with_loop_factory ------------------------------------------------------------


class TracingLoop(asyncio.SelectorEventLoop):
    """A loop class of its own, so a test can tell the factory's loop from a default one."""


class CountingFactory:
    """A loop factory that remembers every loop it made."""

    def __init__(self) -> None:
        self.loops: List[asyncio.AbstractEventLoop] = []

    def __call__(self) -> asyncio.AbstractEventLoop:
        loop = TracingLoop()
        self.loops.append(loop)
        return loop


async def running_loop_type() -> type:
    return type(asyncio.get_running_loop())


def test_run_with_loop_factory_runs_on_the_factory_loop_and_closes_it() -> None:
    factory = CountingFactory()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert run_with_loop_factory(current_loop(), loop_factory=factory) is factory.loops[0]
        assert run_with_loop_factory(running_loop_type(), loop_factory=factory) is TracingLoop
    assert len(factory.loops) == 2  # one new loop per call
    assert all(loop.is_closed() for loop in factory.loops)


def test_run_with_loop_factory_accepts_a_loop_class() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert run_with_loop_factory(running_loop_type(), loop_factory=TracingLoop) is TracingLoop


@pytest.mark.parametrize("debug", [None, True, False])
@pytest.mark.parametrize("with_factory", [True, False], ids=["factory", "default-loop"])
def test_run_with_loop_factory_emits_no_warning_at_all(
    with_factory: bool, debug: Optional[bool]
) -> None:
    # "always" records even the warnings that asyncio would log instead of raising.
    async def main() -> str:
        await asyncio.sleep(0)
        return "done"

    factory = TracingLoop if with_factory else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert run_with_loop_factory(main(), loop_factory=factory, debug=debug) == "done"
        gc.collect()  # an unclosed loop would warn here
    assert [str(w.message) for w in caught] == []


def test_run_with_loop_factory_without_a_factory_uses_a_default_loop_and_unsets_it() -> None:
    async def main() -> bool:
        loop = asyncio.get_running_loop()
        return isinstance(loop, asyncio.BaseEventLoop) and not isinstance(loop, TracingLoop)

    assert run_with_loop_factory(main()) is True
    with pytest.raises(RuntimeError, match="There is no current event loop"):
        asyncio.get_event_loop()  # unset again afterwards, as asyncio.run does


def test_run_with_loop_factory_propagates_the_exception_and_closes_the_loop() -> None:
    factory = CountingFactory()

    async def fail() -> None:
        await asyncio.sleep(0)
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        run_with_loop_factory(fail(), loop_factory=factory)
    assert factory.loops[0].is_closed()


def test_run_with_loop_factory_cancels_leftover_tasks_and_awaits_their_cleanup() -> None:
    events: List[str] = []
    leftovers: List[asyncio.Task[None]] = []

    async def background() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0)  # cleanup that itself awaits
            events.append("cleanup finished")

    async def main() -> str:
        leftovers.append(asyncio.create_task(background()))
        await asyncio.sleep(0)
        return "main returned"

    assert run_with_loop_factory(main(), loop_factory=TracingLoop) == "main returned"
    assert events == ["cleanup finished"]
    assert leftovers[0].cancelled()


@pytest.mark.parametrize("with_factory", [True, False], ids=["factory", "default-loop"])
def test_run_with_loop_factory_applies_the_debug_flag(with_factory: bool) -> None:
    async def debug_enabled() -> bool:
        return asyncio.get_running_loop().get_debug()

    factory = TracingLoop if with_factory else None
    assert run_with_loop_factory(debug_enabled(), loop_factory=factory, debug=True) is True
    assert run_with_loop_factory(debug_enabled(), loop_factory=factory, debug=False) is False


@pytest.mark.parametrize(
    "make_bad",
    [lambda loop: "uvloop", lambda loop: 42, lambda loop: loop],
    ids=["str", "int", "a-loop-instead-of-its-class"],
)
def test_run_with_loop_factory_rejects_a_factory_that_cannot_be_called(
    make_bad: Callable[[asyncio.AbstractEventLoop], Any],
) -> None:
    loop = asyncio.SelectorEventLoop()
    try:
        coro = asyncio.sleep(0)
        with pytest.raises(TypeError, match="loop_factory must be a callable that returns a new"):
            run_with_loop_factory(coro, loop_factory=make_bad(loop))
        assert coro.cr_frame is None  # closed: no "never awaited" warning later
    finally:
        loop.close()


class PolicyLike:
    """What a policy class looks like to run_with_loop_factory: callable, but no loop."""

    def new_event_loop(self) -> asyncio.AbstractEventLoop:  # pragma: no cover - never called
        raise AssertionError("not called")


@pytest.mark.parametrize("factory", [PolicyLike, lambda: "not a loop"], ids=["policy", "str"])
def test_run_with_loop_factory_rejects_a_factory_that_returns_no_loop(factory: Any) -> None:
    coro = asyncio.sleep(0)
    with pytest.raises(TypeError, match="loop_factory must return a new event loop, but"):
        run_with_loop_factory(coro, loop_factory=factory)
    assert coro.cr_frame is None


def test_run_with_loop_factory_propagates_an_error_of_the_factory() -> None:
    def broken_factory() -> asyncio.AbstractEventLoop:
        raise OSError("too many open files")

    coro = asyncio.sleep(0)
    with pytest.raises(OSError, match="too many open files"):
        run_with_loop_factory(coro, loop_factory=broken_factory)
    assert coro.cr_frame is None


def test_run_with_loop_factory_names_the_mistake_of_passing_the_function() -> None:
    async def main() -> None:
        pass

    with pytest.raises(TypeError, match=r"needs a coroutine object, got <function .*main.*\(call"):
        run_with_loop_factory(main, loop_factory=TracingLoop)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [None, 42, "main()"])
def test_run_with_loop_factory_rejects_what_is_not_a_coroutine(bad: Any) -> None:
    with pytest.raises(TypeError, match=re.escape(f"needs a coroutine object, got {bad!r}") + "$"):
        run_with_loop_factory(bad, loop_factory=TracingLoop)


def test_run_with_loop_factory_refuses_to_run_inside_a_running_loop(run_virtual: Runner) -> None:
    factory = CountingFactory()

    async def main() -> None:
        coro = asyncio.sleep(0)
        refused = r"^run_with_loop_factory\(\) cannot be called from a running event loop$"
        with pytest.raises(RuntimeError, match=refused):
            run_with_loop_factory(coro, loop_factory=factory)
        assert coro.cr_frame is None

    run_virtual(main)
    assert factory.loops == []  # refused before any loop was made


@contextlib.contextmanager
def policy_that_makes_no_loops() -> Iterator[None]:
    """Install an event loop policy that fails whenever asyncio asks it for a loop."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the policy API, on 3.14+

        class NoLoops(asyncio.DefaultEventLoopPolicy):
            def new_event_loop(self) -> asyncio.AbstractEventLoop:
                raise AssertionError("the policy was asked for a new loop")

            def get_event_loop(self) -> asyncio.AbstractEventLoop:
                raise AssertionError("the policy was asked for the current loop")

        previous = asyncio.get_event_loop_policy()
        asyncio.set_event_loop_policy(NoLoops())
    try:
        yield
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            asyncio.set_event_loop_policy(previous)


def test_run_with_loop_factory_never_asks_the_policy_when_given_a_factory() -> None:
    async def main() -> type:
        assert asyncio.get_event_loop() is asyncio.get_running_loop()
        return await running_loop_type()

    with policy_that_makes_no_loops():
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert run_with_loop_factory(main(), loop_factory=TracingLoop) is TracingLoop
        # Without a factory the default loop does come from the policy.
        coro = main()
        with pytest.raises(AssertionError, match="the policy was asked for a new loop"):
            run_with_loop_factory(coro)
        assert coro.cr_frame is None


def test_run_with_loop_factory_in_a_fresh_interpreter_with_warnings_as_errors() -> None:
    script = "\n".join(
        [
            "import asyncio",
            "from recipes.event_loop import run_with_loop_factory",
            "class TracingLoop(asyncio.SelectorEventLoop): pass",
            "async def main():",
            "    return type(asyncio.get_running_loop()).__name__",
            "print(run_with_loop_factory(main(), loop_factory=TracingLoop))",
            "print(run_with_loop_factory(main(), debug=True) != 'TracingLoop')",
        ]
    )
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROJECT_ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["TracingLoop", "True"]
    assert done.stderr == ""


# --- the deprecated policy system, as the chapter describes it ----------------------------


@pytest.mark.skipif(
    sys.version_info < (3, 14), reason="the policy deprecation needs Python >= 3.14"
)
@pytest.mark.parametrize(
    "use",
    [
        pytest.param(lambda: asyncio.get_event_loop_policy(), id="get_event_loop_policy"),
        pytest.param(
            lambda: asyncio.set_event_loop_policy(asyncio.get_event_loop_policy()),
            id="set_event_loop_policy",
        ),
        pytest.param(lambda: asyncio.AbstractEventLoopPolicy, id="AbstractEventLoopPolicy"),
        pytest.param(lambda: asyncio.DefaultEventLoopPolicy, id="DefaultEventLoopPolicy"),
        pytest.param(lambda: asyncio.iscoroutinefunction(current_loop), id="iscoroutinefunction"),
    ],
)
def test_the_policy_api_and_iscoroutinefunction_warn_on_314(use: Callable[[], Any]) -> None:
    with pytest.warns(DeprecationWarning, match="slated for removal in Python 3.16"):
        use()


def test_the_replacements_do_not_warn_on_any_version() -> None:
    async def probe() -> bool:
        return asyncio.get_running_loop() is asyncio.get_event_loop()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert inspect.iscoroutinefunction(current_loop) is True
        assert inspect.iscoroutinefunction(print) is False
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            assert loop.run_until_complete(probe()) is True
        finally:
            asyncio.set_event_loop(None)
            loop.close()
    assert [str(w.message) for w in caught] == []


@pytest.mark.skipif(
    sys.version_info < (3, 14), reason="get_event_loop() raising needs Python >= 3.14"
)
def test_get_event_loop_without_a_loop_raises_instead_of_warning_on_314() -> None:
    script = "\n".join(
        [
            "import asyncio",
            "try:",
            "    asyncio.get_event_loop()",
            "except RuntimeError as exc:",
            "    print('RuntimeError:', exc)",
        ]
    )
    done = _run_script(script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "RuntimeError: There is no current event loop in thread 'MainThread'."
    )


def _pytest_asyncio_version() -> Tuple[int, ...]:
    from importlib.metadata import version

    return tuple(int(part) for part in version("pytest-asyncio").split(".")[:2])


@pytest.mark.skipif(
    _pytest_asyncio_version() < (1, 4),
    reason="the pytest_asyncio_loop_factories hook needs pytest-asyncio >= 1.4",
)
def test_pytest_asyncio_loop_factories_hook_replaces_the_policy_fixture(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(
        "[pytest]\nfilterwarnings =\n    error\nasyncio_mode = strict\n"
        "asyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makeconftest(
        """
        import asyncio

        class TracingLoop(asyncio.SelectorEventLoop):
            pass

        def pytest_asyncio_loop_factories(config, item):
            return {"tracing": TracingLoop}
        """
    )
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        @pytest.mark.asyncio
        async def test_runs_on_the_factory_loop():
            assert type(asyncio.get_running_loop()).__name__ == "TracingLoop"
        """
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:looptime_plugin", timeout=120
    )
    result.assert_outcomes(passed=1)
