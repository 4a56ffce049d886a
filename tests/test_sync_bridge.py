"""Behaviour, fault, bad-input and load tests for recipes/sync_bridge.py.

Everything here crosses real threads, so the tests run on the real clock
(plain functions, or ``asyncio.run`` in the test's thread) and bound every
wait with a timeout: a bridge that hangs fails the test instead of the run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import gc
import os
import queue
import signal
import sys
import threading
import time
from typing import Any, Awaitable, Callable, Iterator, List, Optional, Set, Tuple, TypeVar

import pytest

from recipes.sync_bridge import BlockingPool, BridgeQueue, Portal, PortalClosed, SyncFacade

T = TypeVar("T")
WAIT = 10.0  # seconds: far above what any step needs, low enough to fail a hang quickly


def run(main: Callable[[], Awaitable[T]]) -> T:
    """Run ``main()`` on a fresh real-clock loop (the test's thread has none)."""
    return asyncio.run(asyncio.wait_for(main(), WAIT * 3))  # type: ignore[arg-type]


def other_threads() -> Set[threading.Thread]:
    return {t for t in threading.enumerate() if t is not threading.main_thread()}


@pytest.fixture
def no_leaked_threads() -> Iterator[None]:
    """Fail the test if it leaves a thread behind (portal, executor or helper)."""
    before = other_threads()
    yield
    deadline = time.monotonic() + WAIT
    while other_threads() - before and time.monotonic() < deadline:
        time.sleep(0.01)
    leaked = other_threads() - before
    assert not leaked, f"threads left running: {sorted(t.name for t in leaked)}"


@pytest.fixture
def portal(no_leaked_threads: None) -> Iterator[Portal]:
    started = Portal(name="test-portal").start()
    try:
        yield started
    finally:
        started.stop(timeout=WAIT)  # a portal that cannot stop fails the test, not the run
    assert not started.running


async def echo(value: T, delay: float = 0.0) -> T:
    await asyncio.sleep(delay)
    return value


# --- calls and concurrency ---------------------------------------------------


def test_call_runs_the_coroutine_on_the_portal_thread(portal: Portal) -> None:
    async def where() -> Tuple[str, asyncio.AbstractEventLoop]:
        return threading.current_thread().name, asyncio.get_running_loop()

    name, loop = portal.call(where, timeout=WAIT)
    assert name == "test-portal"
    assert loop is portal.loop
    assert portal.call(echo, "x", timeout=WAIT) == "x"


def test_fifty_threads_twenty_calls_each_all_answered_and_concurrent(portal: Portal) -> None:
    in_flight = [0]
    peak = [0]

    async def work(thread: int, call: int) -> Tuple[int, int]:
        in_flight[0] += 1  # only the portal's thread touches these
        peak[0] = max(peak[0], in_flight[0])
        try:
            await asyncio.sleep(0.002)
        finally:
            in_flight[0] -= 1
        return thread, call

    def caller(thread: int) -> List[Tuple[int, int]]:
        return [portal.call(work, thread, call, timeout=WAIT) for call in range(20)]

    with concurrent.futures.ThreadPoolExecutor(50) as threads:
        results = list(threads.map(caller, range(50), timeout=WAIT * 3))
    assert results == [[(thread, call) for call in range(20)] for thread in range(50)]
    assert peak[0] > 1, "calls from different threads should overlap on the portal"
    assert in_flight[0] == 0


def test_submit_runs_calls_concurrently(portal: Portal) -> None:
    release = threading.Event()

    async def wait_for_release(n: int) -> int:
        while not release.is_set():
            await asyncio.sleep(0.001)
        return n

    futures = [portal.submit(wait_for_release, n) for n in range(100)]
    assert not any(future.done() for future in futures)
    release.set()
    assert [future.result(WAIT) for future in futures] == list(range(100))


def test_acall_from_another_event_loop(portal: Portal) -> None:
    async def main() -> List[int]:
        return list(await asyncio.gather(*(portal.acall(echo, n, 0.01) for n in range(20))))

    assert run(main) == list(range(20))


# --- exceptions ----------------------------------------------------------------


class CustomError(Exception):
    pass


@pytest.mark.parametrize("error", [CustomError("boom"), KeyError("k"), asyncio.TimeoutError()])
def test_exceptions_propagate_with_their_type(portal: Portal, error: Exception) -> None:
    async def fail() -> None:
        await asyncio.sleep(0)
        raise error

    with pytest.raises(type(error)) as caught:
        portal.call(fail, timeout=WAIT)
    assert caught.value is error
    with pytest.raises(type(error)):
        portal.submit(fail).result(WAIT)

    async def from_a_loop() -> None:
        await portal.acall(fail)

    with pytest.raises(type(error)):
        run(from_a_loop)


def test_a_timeout_error_of_the_coroutine_is_not_taken_for_the_deadline(portal: Portal) -> None:
    async def own_timeout() -> None:
        raise TimeoutError("the coroutine's own")

    with pytest.raises(TimeoutError, match="the coroutine's own"):
        portal.call(own_timeout, timeout=WAIT)


def test_base_exception_in_a_task_stops_the_portal_and_frees_every_caller(
    no_leaked_threads: None,
) -> None:
    portal = Portal().start()
    try:
        waiting = portal.submit(echo, "never", 3600)

        async def exit_now() -> None:
            raise SystemExit(3)

        blocked: List[BaseException] = []

        def blocked_caller() -> None:
            try:
                portal.call(echo, "never", 3600, timeout=WAIT)
            except BaseException as exc:
                blocked.append(exc)

        caller = threading.Thread(target=blocked_caller, daemon=True)
        caller.start()
        with pytest.raises(SystemExit):
            portal.call(exit_now, timeout=WAIT)
        with pytest.raises(concurrent.futures.CancelledError):  # a bare future
            waiting.result(WAIT)
        caller.join(WAIT)
        assert len(blocked) == 1 and isinstance(blocked[0], PortalClosed), blocked
        deadline = time.monotonic() + WAIT
        while portal.running and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not portal.running
        with pytest.raises(PortalClosed):
            portal.submit(echo, 1)
    finally:
        portal.stop(timeout=WAIT)


# --- cancellation and timeouts ---------------------------------------------------


def _tracked(started: threading.Event, outcome: List[str]) -> Callable[[], Awaitable[None]]:
    async def job() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise
        finally:
            outcome.append("cleaned up")

    return job


def test_call_timeout_cancels_the_coroutine(portal: Portal) -> None:
    started, outcome = threading.Event(), []  # type: Tuple[threading.Event, List[str]]
    job = _tracked(started, outcome)
    with pytest.raises(TimeoutError, match=r"job\(\) did not finish within 0.2 s"):
        portal.call(job, timeout=0.2)
    assert started.is_set()
    deadline = time.monotonic() + WAIT
    while len(outcome) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert outcome == ["cancelled", "cleaned up"]


def test_cancelling_the_concurrent_future_cancels_the_task(portal: Portal) -> None:
    started, outcome = threading.Event(), []  # type: Tuple[threading.Event, List[str]]
    future = portal.submit(_tracked(started, outcome))
    assert started.wait(WAIT)
    assert future.cancel()
    with pytest.raises(concurrent.futures.CancelledError):
        future.result(WAIT)
    deadline = time.monotonic() + WAIT
    while len(outcome) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert outcome == ["cancelled", "cleaned up"]


def test_cancelling_acall_cancels_the_task_on_the_portal(portal: Portal) -> None:
    started, outcome = threading.Event(), []  # type: Tuple[threading.Event, List[str]]

    async def main() -> None:
        task = asyncio.ensure_future(portal.acall(_tracked(started, outcome)))
        while not started.is_set():
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main)
    deadline = time.monotonic() + WAIT
    while len(outcome) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert outcome == ["cancelled", "cleaned up"]


def test_a_task_cancelled_on_the_portal_side_gives_the_caller_cancelled_error(
    portal: Portal,
) -> None:
    async def cancels_itself() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(1)

    with pytest.raises(concurrent.futures.CancelledError):
        portal.call(cancels_itself, timeout=WAIT)
    assert portal.running


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs POSIX signals")
def test_ctrl_c_while_blocked_in_call_cancels_the_coroutine(portal: Portal) -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")
    started, outcome = threading.Event(), []  # type: Tuple[threading.Event, List[str]]
    main = threading.main_thread().ident
    assert main is not None

    def interrupt() -> None:
        if started.wait(WAIT):
            signal.pthread_kill(main, signal.SIGINT)

    interrupter = threading.Thread(target=interrupt)
    interrupter.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            portal.call(_tracked(started, outcome), timeout=WAIT)
    finally:
        interrupter.join(WAIT)
    deadline = time.monotonic() + WAIT
    while len(outcome) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert outcome == ["cancelled", "cleaned up"]


# --- refusing to deadlock ----------------------------------------------------------


def test_call_from_the_portals_own_loop_raises_instead_of_deadlocking(portal: Portal) -> None:
    async def reenter() -> None:
        portal.call(echo, 1, timeout=WAIT)

    future = portal.submit(reenter)
    # A broken portal would wait for itself until the timeout: the test fails, not hangs.
    with pytest.raises(RuntimeError, match="own event loop would wait for itself"):
        future.result(WAIT)
    assert portal.call(echo, "still serving", timeout=WAIT) == "still serving"


def test_call_from_another_running_loop_raises(portal: Portal) -> None:
    async def main() -> None:
        portal.call(echo, 1)

    with pytest.raises(RuntimeError, match="this thread runs an event loop"):
        run(main)


def test_acall_on_the_portals_own_loop_raises(portal: Portal) -> None:
    async def reenter() -> None:
        await portal.acall(echo, 1)

    with pytest.raises(RuntimeError, match="own event loop"):
        portal.call(reenter, timeout=WAIT)


def test_stop_from_the_portal_thread_raises(portal: Portal) -> None:
    async def stop_myself() -> None:
        portal.stop()

    with pytest.raises(RuntimeError, match="own thread"):
        portal.call(stop_myself, timeout=WAIT)
    assert portal.running


# --- start and stop -------------------------------------------------------------------


def test_stop_with_calls_in_flight_frees_every_caller(no_leaked_threads: None) -> None:
    portal = Portal().start()
    started = threading.Semaphore(0)
    cleaned: List[int] = []

    async def long_call(n: int) -> None:
        started.release()
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0.01)  # an asynchronous cleanup step
            cleaned.append(n)

    errors: List[BaseException] = []

    def caller(n: int) -> None:
        try:
            portal.call(long_call, n, timeout=WAIT * 2)
        except BaseException as exc:
            errors.append(exc)

    callers = [threading.Thread(target=caller, args=(n,), daemon=True) for n in range(20)]
    for thread in callers:
        thread.start()
    for _ in callers:
        assert started.acquire(timeout=WAIT)
    loop = portal.loop
    portal.stop(timeout=WAIT)
    deadline = time.monotonic() + WAIT
    for thread in callers:
        thread.join(max(0.0, deadline - time.monotonic()))
        assert not thread.is_alive(), "a caller is still blocked after stop()"
    assert sorted(cleaned) == list(range(20)), "stop() must wait for the cleanup"
    assert len(errors) == 20 and all(isinstance(e, PortalClosed) for e in errors), errors
    assert loop.is_closed()


def test_stop_frees_acall_waiters_with_portal_closed(no_leaked_threads: None) -> None:
    portal = Portal().start()
    started = threading.Event()

    async def forever() -> None:
        started.set()
        await asyncio.sleep(3600)

    async def main() -> BaseException:
        waiter = asyncio.ensure_future(portal.acall(forever))
        while not started.is_set():
            await asyncio.sleep(0.005)
        stopping = asyncio.get_running_loop().run_in_executor(None, portal.stop)
        try:
            await waiter
        except BaseException as exc:
            await stopping
            return exc
        raise AssertionError("acall() returned after stop()")

    assert isinstance(run(main), PortalClosed)


def test_no_thread_or_loop_is_leaked(no_leaked_threads: None) -> None:
    before = other_threads()
    loops: List[asyncio.AbstractEventLoop] = []

    async def uses_everything() -> int:
        loop = asyncio.get_running_loop()
        loops.append(loop)
        background.add(asyncio.ensure_future(asyncio.sleep(3600)))  # left running
        return sum(
            await asyncio.gather(*(loop.run_in_executor(None, len, "ab") for _ in range(8)))
        )

    background: Set[asyncio.Future[None]] = set()
    for _ in range(5):
        with Portal() as portal:
            assert portal.call(uses_everything, timeout=WAIT) == 16
    assert all(loop.is_closed() for loop in loops) and len(loops) == 5
    assert all(task.cancelled() for task in background)
    assert other_threads() == before


def test_stop_is_idempotent_and_a_portal_starts_once(no_leaked_threads: None) -> None:
    portal = Portal()
    portal.stop()  # never started: nothing to do
    with pytest.raises(RuntimeError, match="started once"):
        portal.start()
    portal = Portal().start()
    portal.stop()
    portal.stop()
    with pytest.raises(RuntimeError, match="started once"):
        portal.start()
    with pytest.raises(PortalClosed, match="has been stopped"):
        portal.call(echo, 1)
    with pytest.raises(PortalClosed):
        _ = portal.loop


def test_call_before_start_says_so() -> None:
    with pytest.raises(PortalClosed, match="not running; start"):
        Portal().call(echo, 1)


def test_a_failing_loop_factory_is_raised_by_start(no_leaked_threads: None) -> None:
    def broken() -> asyncio.AbstractEventLoop:
        raise OSError("no loop for you")

    portal = Portal(loop_factory=broken)
    with pytest.raises(OSError, match="no loop for you"):
        portal.start()
    assert not portal.running


def test_stop_timeout_when_a_task_ignores_cancellation(no_leaked_threads: None) -> None:
    portal = Portal().start()
    release = threading.Event()
    started = threading.Event()

    async def stubborn() -> None:
        started.set()
        while not release.is_set():
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                pass  # the bug under test: it swallows its cancellation

    future = portal.submit(stubborn)
    assert started.wait(WAIT)
    with pytest.raises(TimeoutError, match="ignoring cancellation"):
        portal.stop(timeout=0.2)
    release.set()
    portal.stop(timeout=WAIT)  # now it ends
    assert future.done()


# --- bad input ------------------------------------------------------------------------


def test_a_coroutine_instead_of_a_function_is_rejected_without_a_warning(portal: Portal) -> None:
    coro = echo(1)
    with pytest.raises(TypeError, match="not a coroutine: pass call"):
        portal.call(coro)  # type: ignore[arg-type]
    del coro
    gc.collect()  # an unclosed coroutine would warn "never awaited" here (an error)
    with pytest.raises(TypeError, match="coroutine function"):
        portal.submit(42)  # type: ignore[arg-type]


def test_a_function_that_returns_no_awaitable_raises_type_error(portal: Portal) -> None:
    with pytest.raises(TypeError):
        portal.call(len, "abc", timeout=WAIT)  # type: ignore[arg-type]


# --- context variables ------------------------------------------------------------------

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


def test_context_is_copied_from_the_calling_thread_and_not_back(portal: Portal) -> None:
    async def read_and_change() -> str:
        seen = request_id.get()
        request_id.set("portal")
        return seen

    def caller(value: str) -> Tuple[str, str]:
        request_id.set(value)
        return portal.call(read_and_change, timeout=WAIT), request_id.get()

    with concurrent.futures.ThreadPoolExecutor(4) as threads:
        results = list(
            threads.map(
                lambda v: contextvars.copy_context().run(caller, v), [f"r{n}" for n in range(40)]
            )
        )
    assert results == [(f"r{n}", f"r{n}") for n in range(40)]
    # A thread that set nothing sees the default: nothing leaked into the portal's context.
    result: List[str] = []
    thread = threading.Thread(
        target=lambda: result.append(portal.call(read_and_change, timeout=WAIT)), daemon=True
    )
    thread.start()
    thread.join(WAIT)
    assert result == ["-"]


# --- the synchronous facade -------------------------------------------------------------


class Client:
    """A small async client that records where it runs."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.events: List[str] = []
        self.loop: Optional[asyncio.AbstractEventLoop] = None

    async def __aenter__(self) -> Client:
        self.loop = asyncio.get_running_loop()
        self.events.append("enter")
        return self

    async def __aexit__(self, *exc_info: Any) -> bool:
        assert asyncio.get_running_loop() is self.loop
        self.events.append(f"exit {exc_info[0].__name__ if exc_info[0] else None}")
        return exc_info[0] is KeyError  # suppresses KeyError, as a test

    async def get(self, key: str, *, suffix: str = "") -> str:
        assert asyncio.get_running_loop() is self.loop, "called off the client's loop"
        await asyncio.sleep(0.001)
        return key + suffix

    async def hang(self) -> None:
        await asyncio.sleep(3600)

    def describe(self) -> str:
        return f"client {self.name}"


def test_facade_lives_on_the_portal_and_serves_many_threads(portal: Portal) -> None:
    with portal.facade(Client, "db", timeout=WAIT) as client:
        assert client.target.loop is portal.loop
        assert client.name == "db" and client.describe() == "client db"
        with concurrent.futures.ThreadPoolExecutor(16) as threads:
            keys = [f"k{n}" for n in range(200)]
            got = list(threads.map(lambda k: client.get(k, suffix="!"), keys, timeout=WAIT))
        assert got == [f"{k}!" for k in keys]
        events = client.target.events
    assert events == ["enter", "exit None"]


def test_facade_passes_the_exception_to_aexit_and_honours_its_answer(portal: Portal) -> None:
    with pytest.raises(ValueError):
        with portal.facade(Client, "a", timeout=WAIT) as client:
            raise ValueError("from the with block")
    assert client.target.events[-1] == "exit ValueError"
    with portal.facade(Client, "b", timeout=WAIT) as client:
        raise KeyError("suppressed by __aexit__")
    assert client.target.events[-1] == "exit KeyError"


def test_facade_timeout_cancels_the_call(portal: Portal) -> None:
    with portal.facade(Client, "slow", timeout=0.1) as client:
        with pytest.raises(TimeoutError, match="hang"):
            client.hang()
        assert client.get("still fine") == "still fine"


def test_facade_needs_an_async_context_manager(portal: Portal) -> None:
    with pytest.raises(TypeError, match="needs an async context manager"):
        with portal.facade(dict):  # type: ignore[arg-type]
            pass
    with pytest.raises(TypeError, match="factory"):
        portal.facade(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        SyncFacade(portal, Client("x"), timeout=0)


def test_facade_raises_on_a_running_loop(portal: Portal) -> None:
    client = SyncFacade(portal, Client("x"))

    async def main() -> None:
        client.get("k")

    with pytest.raises(RuntimeError, match="this thread runs an event loop"):
        run(main)


# --- BridgeQueue --------------------------------------------------------------------------


def test_queue_threads_to_coroutines_under_load(no_leaked_threads: None) -> None:
    producers, per_producer = 8, 500

    async def main() -> List[int]:
        loop = asyncio.get_running_loop()
        items: BridgeQueue[Optional[int]] = BridgeQueue(maxsize=8)

        def produce(first: int) -> None:
            for n in range(first, first + per_producer):
                items.put(n, timeout=WAIT)

        async def consume(got: List[int]) -> None:
            while True:
                item = await items.aget()
                if item is None:
                    return
                got.append(item)

        got: List[int] = []
        consumers = [asyncio.ensure_future(consume(got)) for _ in range(3)]
        with concurrent.futures.ThreadPoolExecutor(producers) as threads:
            await asyncio.gather(
                *(
                    loop.run_in_executor(threads, produce, p * per_producer)
                    for p in range(producers)
                )
            )
        for _ in consumers:
            await items.aput(None)
        await asyncio.gather(*consumers)
        assert items.empty()
        return got

    got = run(main)
    assert sorted(got) == list(range(producers * per_producer))


def test_queue_wake_ups_are_never_lost(no_leaked_threads: None) -> None:
    """A thread skips the wake-up when no coroutine waits; a coroutine that starts to wait
    just then must still see the change.  Every wait is bounded, so a lost wake-up fails
    the test instead of hanging it."""
    rounds = 5000

    async def main() -> List[int]:
        loop = asyncio.get_running_loop()
        to_thread: BridgeQueue[int] = BridgeQueue(maxsize=1)  # aput() waits for get()
        to_loop: BridgeQueue[int] = BridgeQueue()  # aget() waits for put()

        def echo() -> None:
            for _ in range(rounds):
                to_loop.put(to_thread.get(timeout=WAIT))

        async def send() -> None:
            for n in range(rounds):
                await asyncio.wait_for(to_thread.aput(n), WAIT)

        async def receive() -> List[int]:
            return [await asyncio.wait_for(to_loop.aget(), WAIT) for _ in range(rounds)]

        with concurrent.futures.ThreadPoolExecutor(1) as threads:
            worker = loop.run_in_executor(threads, echo)
            _, got, _ = await asyncio.gather(send(), receive(), worker)
        return got

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often: the race becomes likely
    try:
        assert run(main) == list(range(rounds))
    finally:
        sys.setswitchinterval(interval)


def test_queue_coroutines_to_threads_with_backpressure(no_leaked_threads: None) -> None:
    async def main() -> Tuple[List[int], int]:
        loop = asyncio.get_running_loop()
        jobs: BridgeQueue[Optional[int]] = BridgeQueue(maxsize=4)
        highest = [0]

        def work() -> List[int]:
            done: List[int] = []
            while True:
                highest[0] = max(highest[0], jobs.qsize())
                item = jobs.get(timeout=WAIT)
                if item is None:
                    return done
                time.sleep(0.0005)
                done.append(item)

        with concurrent.futures.ThreadPoolExecutor(4) as threads:
            workers = [loop.run_in_executor(threads, work) for _ in range(4)]
            for n in range(1000):
                await jobs.aput(n)
            for _ in workers:
                await jobs.aput(None)
            results = await asyncio.gather(*workers)
        return sorted(n for done in results for n in done), highest[0]

    handled, highest = run(main)
    assert handled == list(range(1000))
    assert highest <= 4


def test_queue_aget_keeps_the_loop_running_and_a_cancelled_getter_loses_nothing() -> None:
    async def main() -> List[Any]:
        loop = asyncio.get_running_loop()
        items: BridgeQueue[str] = BridgeQueue()
        ticks = 0
        getter = asyncio.ensure_future(items.aget())

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        beat = asyncio.ensure_future(ticker())
        await asyncio.sleep(0.05)
        assert ticks > 5, "aget() must not block the loop"
        getter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await getter
        await loop.run_in_executor(None, items.put, "kept")
        second = await asyncio.wait_for(items.aget(), WAIT)
        beat.cancel()
        await asyncio.gather(beat, return_exceptions=True)
        return [second, items.qsize()]

    assert run(main) == ["kept", 0]


def test_queue_full_and_empty_with_timeouts() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        items: BridgeQueue[int] = BridgeQueue(maxsize=1)
        items.put_nowait(1)
        assert items.full()
        with pytest.raises(queue.Full):
            await loop.run_in_executor(None, lambda: items.put(2, timeout=0.05))
        assert items.get_nowait() == 1
        with pytest.raises(queue.Empty):
            await loop.run_in_executor(None, lambda: items.get(timeout=0.05))
        with pytest.raises(queue.Empty):
            items.get_nowait()

    run(main)


def test_queue_aput_waits_for_a_thread_to_make_room() -> None:
    async def main() -> List[str]:
        loop = asyncio.get_running_loop()
        items: BridgeQueue[str] = BridgeQueue(maxsize=1)
        await items.aput("first")
        putting = asyncio.ensure_future(items.aput("second"))
        await asyncio.sleep(0.02)
        assert not putting.done()
        got = [await loop.run_in_executor(None, lambda: items.get(timeout=WAIT))]
        await asyncio.wait_for(putting, WAIT)
        got.append(await loop.run_in_executor(None, lambda: items.get(timeout=WAIT)))
        return got

    assert run(main) == ["first", "second"]


def test_queue_refuses_blocking_on_the_loop_and_awaiting_off_it(portal: Portal) -> None:
    async def main() -> None:
        items: BridgeQueue[int] = BridgeQueue()
        with pytest.raises(RuntimeError, match=r"get\(\) blocks"):
            items.get(timeout=1)
        with pytest.raises(RuntimeError, match=r"put\(\) blocks"):
            items.put(1, timeout=1)
        foreign: BridgeQueue[int] = BridgeQueue(loop=portal.loop)
        with pytest.raises(RuntimeError, match="must run on the loop"):
            await foreign.aget()

    run(main)


def test_queue_bad_input() -> None:
    with pytest.raises(RuntimeError, match="binds to an event loop"):
        BridgeQueue()

    async def main() -> None:
        for bad in (-1, 1.5, True):
            with pytest.raises(ValueError, match="maxsize"):
                BridgeQueue(bad)  # type: ignore[arg-type]

    run(main)


def test_queue_with_a_portal_loop_serves_sync_code(portal: Portal) -> None:
    items: BridgeQueue[int] = BridgeQueue(loop=portal.loop)

    async def drain(count: int) -> int:
        return sum([await items.aget() for _ in range(count)])

    future = portal.submit(drain, 100)
    for n in range(100):
        items.put(n, timeout=WAIT)
    assert future.result(WAIT) == 4950


# --- BlockingPool ----------------------------------------------------------------------------


def test_pool_never_runs_more_than_max_workers_even_when_awaits_are_cancelled(
    no_leaked_threads: None,
) -> None:
    lock = threading.Lock()
    running = [0]
    peak = [0]

    def blocking(delay: float) -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            time.sleep(delay)
        finally:
            with lock:
                running[0] -= 1

    async def main() -> int:
        timeouts = 0
        async with BlockingPool(3, name="limited") as pool:

            async def one(n: int) -> None:
                nonlocal timeouts
                try:
                    await asyncio.wait_for(pool.run(blocking, 0.02), 0.005 if n % 2 else WAIT)
                except asyncio.TimeoutError:
                    timeouts += 1

            await asyncio.gather(*(one(n) for n in range(60)))
        return timeouts

    timeouts = run(main)
    assert timeouts > 0, "some awaits should have been cancelled by their timeout"
    assert peak[0] == 3
    assert running[0] == 0


def test_pool_copies_context_and_propagates_exceptions(no_leaked_threads: None) -> None:
    async def main() -> List[str]:
        async with BlockingPool(2) as pool:
            request_id.set("req-7")
            seen = await pool.run(request_id.get)
            with pytest.raises(KeyError):
                await pool.run({}.__getitem__, "missing")
            assert await pool.run(sorted, [3, 1, 2], reverse=True) == [3, 2, 1]
            # The pool thread's own context is untouched: a set() inside stays inside.
            await pool.run(request_id.set, "inside")
            return [seen, request_id.get(), await pool.run(request_id.get)]

    assert run(main) == ["req-7", "req-7", "req-7"]


def test_pool_aclose_drops_queued_calls_and_joins_its_threads(no_leaked_threads: None) -> None:
    started: List[int] = []
    release = threading.Event()

    def blocking(n: int) -> int:
        started.append(n)
        release.wait(WAIT)
        return n

    async def main() -> None:
        pool = BlockingPool(2, name="closing")
        calls = [asyncio.ensure_future(pool.run(blocking, n)) for n in range(10)]
        while len(started) < 2:
            await asyncio.sleep(0.005)
        closing = asyncio.ensure_future(pool.aclose())
        await asyncio.sleep(0.05)
        assert not closing.done(), "aclose() must wait for the running calls"
        release.set()
        await asyncio.wait_for(closing, WAIT)
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
        assert outcomes[:2] == [0, 1]
        assert all(isinstance(o, asyncio.CancelledError) for o in outcomes[2:]), outcomes
        with pytest.raises(RuntimeError, match="after aclose"):
            await pool.run(len, "x")

    run(main)
    assert sorted(started) == [0, 1]


def test_pool_bad_input() -> None:
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="max_workers"):
            BlockingPool(bad)  # type: ignore[arg-type]

    async def main() -> None:
        async with BlockingPool(1) as pool:
            with pytest.raises(TypeError, match="needs a callable"):
                await pool.run(time.sleep(0))  # type: ignore[arg-type, func-returns-value]

    run(main)


def test_portal_and_pool_work_together(portal: Portal) -> None:
    async def main() -> List[int]:
        async with BlockingPool(4) as pool:
            return list(await asyncio.gather(*(pool.run(os.getpid) for _ in range(8))))

    assert portal.call(main, timeout=WAIT) == [os.getpid()] * 8
