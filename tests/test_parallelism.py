"""Behaviour, fault, bad-input and load tests for recipes/parallelism.py.

Worker processes are real (``spawn``), so these tests run on the real clock;
waits are bounded by timeouts, never asserted on.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from pathlib import Path
from typing import Any, Iterator, List, Set

import pytest

from recipes.parallelism import (
    EventLoopThread,
    ProcessRunner,
    chunked,
    count_primes,
    gil_enabled,
    map_in_chunks,
    process_pool,
)
from tests.parallelism_helpers import crash_on, fail_on, mark_then_sleep, worker_pid

HANG = 60.0  # a bound on every wait: turns a hang into a failure


def sieve_count(start: int, stop: int) -> int:
    """An independent oracle: the sieve of Eratosthenes."""
    if stop <= 2:
        return 0
    is_prime = bytearray([1]) * stop
    is_prime[0:2] = b"\x00\x00"
    for n in range(2, int(stop**0.5) + 1):
        if is_prime[n]:
            is_prime[n * n :: n] = bytearray(len(range(n * n, stop, n)))
    return sum(is_prime[max(start, 0) :])


def alive(pid: int) -> bool:
    """True if ``pid`` runs (a zombie, dead but not reaped, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture(autouse=True)
def no_leaked_children() -> Iterator[None]:
    before = set(multiprocessing.active_children())
    yield
    leaked = [p for p in multiprocessing.active_children() if p not in before]
    for process in leaked:
        process.kill()
        process.join(5)
    assert not leaked, f"test left processes running: {leaked}"


# --- count_primes -------------------------------------------------------------


@pytest.mark.parametrize(
    "start, stop", [(0, 0), (0, 2), (0, 3), (0, 1000), (500, 2000), (-10, 30), (97, 98)]
)
def test_count_primes_agrees_with_a_sieve(start: int, stop: int) -> None:
    assert count_primes(start, stop) == sieve_count(start, stop)
    if start == 0:
        assert count_primes(stop) == sieve_count(0, stop)


@pytest.mark.parametrize("bad", [1.5, "10", None, True])
def test_count_primes_rejects_non_integers(bad: Any) -> None:
    with pytest.raises(TypeError, match="must be an int"):
        count_primes(0, bad) if bad is not None else count_primes(bad)


# --- process_pool and chunking --------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"workers": 0}, "workers must be at least 1"),
        ({"workers": -2}, "workers must be at least 1"),
        ({"start_method": "threads"}, "start_method must be one of"),
    ],
)
def test_process_pool_rejects_bad_arguments(kwargs: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        process_pool(**kwargs)


@pytest.mark.asyncio
@pytest.mark.parametrize("start_method", ["spawn", "forkserver"])
async def test_process_pool_results_equal_a_sequential_computation(start_method: str) -> None:
    if start_method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"{start_method} is not available here")
    loop = asyncio.get_running_loop()
    spans = [(n * 1000, (n + 1) * 1000) for n in range(8)]
    with process_pool(2, start_method=start_method) as pool:
        calls = [loop.run_in_executor(pool, count_primes, a, b) for a, b in spans]
        results = await asyncio.wait_for(asyncio.gather(*calls), HANG)
        pids = set(
            await asyncio.wait_for(
                asyncio.gather(*(loop.run_in_executor(pool, worker_pid) for _ in range(4))), HANG
            )
        )
    assert results == [count_primes(a, b) for a, b in spans]
    assert os.getpid() not in pids  # the work really ran elsewhere
    assert not any(alive(pid) for pid in pids)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 10, 11])
def test_chunked_preserves_every_item_in_order(size: int) -> None:
    items = list(range(10))
    chunks = list(chunked(iter(items), size))
    assert [item for chunk in chunks for item in chunk] == items
    assert all(len(chunk) == size for chunk in chunks[:-1])
    assert 1 <= len(chunks[-1]) <= size


@pytest.mark.parametrize("size", [0, -1])
def test_chunked_rejects_a_size_below_one(size: int) -> None:
    with pytest.raises(ValueError, match="size must be at least 1"):
        list(chunked([1], size))


@pytest.mark.asyncio
@pytest.mark.parametrize("chunksize", [None, 1, 3, 50, 1000])
async def test_map_in_chunks_preserves_order_in_processes(chunksize: Any) -> None:
    # Uneven work (large limits last, then small) so chunks finish out of order.
    limits = [4000 - 37 * n for n in range(100)]
    with process_pool(2) as pool:
        results = await asyncio.wait_for(
            map_in_chunks(pool, count_primes, limits, chunksize=chunksize), HANG
        )
    assert results == [count_primes(limit) for limit in limits]


@pytest.mark.asyncio
async def test_map_in_chunks_of_nothing_is_empty() -> None:
    with ThreadPoolExecutor(1) as threads:
        assert await map_in_chunks(threads, abs, [], chunksize=3) == []
        assert await map_in_chunks(threads, abs, []) == []


@pytest.mark.asyncio
async def test_map_in_chunks_raises_the_error_and_cancels_the_chunks_not_started(
    tmp_path: Path,
) -> None:
    with process_pool(1) as pool:
        with pytest.raises(ValueError, match="bad value 0"):
            await asyncio.wait_for(
                map_in_chunks(pool, partial(fail_on, bad=0), [0] + [1] * 40, chunksize=1),
                HANG,
            )
    # At most the workers' share of the chunks ran: the rest were cancelled.
    # (The fixture checks that no process is left.)


# --- ProcessRunner: results, crashes, cancellation --------------------------------


@pytest.mark.asyncio
async def test_runner_results_equal_a_sequential_computation() -> None:
    limits = list(range(0, 3000, 97))
    async with ProcessRunner(workers=2) as runner:
        one_by_one = await asyncio.wait_for(
            asyncio.gather(*(runner.run(count_primes, n) for n in limits)), HANG
        )
        mapped = await asyncio.wait_for(runner.map(count_primes, limits, chunksize=4), HANG)
    expected = [count_primes(n) for n in limits]
    assert one_by_one == expected
    assert mapped == expected
    assert runner.restarts == 0


@pytest.mark.asyncio
async def test_runner_recovers_from_a_worker_that_exits_abruptly() -> None:
    async with ProcessRunner(workers=2) as runner:
        with pytest.raises(BrokenProcessPool):
            await asyncio.wait_for(runner.run(crash_on, 1, 1), HANG)
        assert runner.restarts == 1
        # The recreated pool serves, and again after a second crash.
        assert await asyncio.wait_for(runner.run(count_primes, 100), HANG) == 25
        with pytest.raises(BrokenProcessPool):
            await asyncio.wait_for(runner.run(os._exit, 1), HANG)
        results = await asyncio.wait_for(
            asyncio.gather(*(runner.run(crash_on, n, -1) for n in range(10))), HANG
        )
        assert results == [2 * n for n in range(10)]
        assert runner.restarts == 2


@pytest.mark.asyncio
async def test_runner_recovers_from_a_worker_killed_by_sigkill() -> None:
    async with ProcessRunner(workers=1) as runner:
        pid = await asyncio.wait_for(runner.run(worker_pid), HANG)
        busy = asyncio.ensure_future(runner.run(count_primes, 10**7))  # takes seconds
        await asyncio.sleep(0.2)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(BrokenProcessPool):
            await asyncio.wait_for(busy, HANG)
        assert await asyncio.wait_for(runner.run(count_primes, 1000), HANG) == 168
        new_pid = await asyncio.wait_for(runner.run(worker_pid), HANG)
        assert new_pid != pid
        assert runner.restarts == 1
    assert not alive(new_pid)


@pytest.mark.asyncio
async def test_a_crash_fails_every_call_in_flight_and_one_restart_serves_them_all() -> None:
    async with ProcessRunner(workers=2) as runner:
        calls = [runner.run(crash_on, n, 5) for n in range(12)]
        outcomes = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), HANG)
        broken = [o for o in outcomes if isinstance(o, BrokenProcessPool)]
        assert broken, outcomes
        assert all(o == 2 * n or isinstance(o, BrokenProcessPool) for n, o in enumerate(outcomes))
        assert runner.restarts == 1  # many callers saw the same broken pool: one replacement
        assert await asyncio.wait_for(runner.run(crash_on, 4, 5), HANG) == 8


@pytest.mark.asyncio
async def test_runner_map_fails_like_a_loop_would_and_keeps_working() -> None:
    async with ProcessRunner(workers=2) as runner:
        with pytest.raises(ValueError, match="bad value 3"):
            await asyncio.wait_for(
                runner.map(partial(fail_on, bad=3), range(8), chunksize=2), HANG
            )
        assert await asyncio.wait_for(runner.map(count_primes, [10, 20]), HANG) == [4, 8]


@pytest.mark.asyncio
async def test_cancelling_an_await_does_not_stop_a_running_call(tmp_path: Path) -> None:
    async with ProcessRunner(workers=1) as runner:
        task = asyncio.ensure_future(runner.run(mark_then_sleep, str(tmp_path), "a", 0.5))
        await wait_for_file(tmp_path / "a")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not (tmp_path / "a.done").exists()
    # aclose() waited for the worker: the abandoned call ran to its end.
    assert (tmp_path / "a.done").exists()


@pytest.mark.parametrize("cancel_pending", [True, False])
@pytest.mark.asyncio
async def test_aclose_cancels_calls_not_started_and_leaves_no_process(
    tmp_path: Path, cancel_pending: bool
) -> None:
    runner = ProcessRunner(workers=1)
    pids: Set[int] = set()
    pids.add(await asyncio.wait_for(runner.run(worker_pid), HANG))
    calls = [
        asyncio.ensure_future(runner.run(mark_then_sleep, str(tmp_path), f"c{n}", 0.1))
        for n in range(10)
    ]
    await wait_for_file(tmp_path / "c0")
    await asyncio.wait_for(runner.aclose(cancel_pending=cancel_pending), HANG)
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    started = sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".done"))
    finished = sorted(p.name[:-5] for p in tmp_path.iterdir() if p.name.endswith(".done"))
    assert started == finished  # whatever started also finished: nothing was killed
    if cancel_pending:
        # One running, at most one queued ahead: the other calls never started.
        assert len(started) <= 3, started
        assert sum(isinstance(o, asyncio.CancelledError) for o in outcomes) >= 7
    else:
        assert len(started) == 10
        pids.update(o for o in outcomes if isinstance(o, int))
    assert not any(alive(pid) for pid in pids)
    with pytest.raises(RuntimeError, match="ProcessRunner is closed"):
        await runner.run(worker_pid)
    await runner.aclose()  # twice is fine


@pytest.mark.asyncio
async def test_cancelling_aclose_still_shuts_the_pool_down(tmp_path: Path) -> None:
    runner = ProcessRunner(workers=1)
    pid = await asyncio.wait_for(runner.run(worker_pid), HANG)
    call = asyncio.ensure_future(runner.run(mark_then_sleep, str(tmp_path), "x", 0.3))
    await wait_for_file(tmp_path / "x")
    closing = asyncio.ensure_future(runner.aclose())
    await asyncio.sleep(0.05)
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    call.cancel()
    # The shutdown goes on in its thread; the worker ends soon after its call.
    for _ in range(int(HANG / 0.05)):
        if not alive(pid):
            break
        await asyncio.sleep(0.05)
    assert not alive(pid)
    await asyncio.gather(call, return_exceptions=True)


# --- EventLoopThread -------------------------------------------------------------


def loop_threads() -> List[str]:
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("test-loop-"))


def test_event_loop_threads_start_stop_and_leak_no_thread() -> None:
    before = set(threading.enumerate())
    for _round in range(3):
        workers = [EventLoopThread(name=f"test-loop-{n}").start() for n in range(4)]
        assert loop_threads() == [f"test-loop-{n}" for n in range(4)]
        loops = [w.loop for w in workers]
        assert len({id(loop) for loop in loops}) == 4

        async def whoami() -> str:
            await asyncio.sleep(0.01)
            return threading.current_thread().name

        assert [w.run(whoami(), timeout=HANG) for w in workers] == loop_threads()
        for worker in workers:
            worker.stop()
        assert all(loop.is_closed() for loop in loops)
        assert not any(w.running for w in workers)
        assert loop_threads() == []
    assert set(threading.enumerate()) <= before


def test_stop_cancels_leftover_tasks_and_runs_their_cleanup() -> None:
    cleaned: List[str] = []

    async def forever(name: str) -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0)  # asynchronous cleanup still has a loop
            cleaned.append(name)

    with EventLoopThread(name="test-loop-cleanup") as worker:
        futures = [worker.submit(forever(f"t{n}")) for n in range(5)]
        worker.run(asyncio.sleep(0.01), timeout=HANG)
    assert sorted(cleaned) == [f"t{n}" for n in range(5)]
    assert all(f.cancelled() for f in futures)
    assert loop_threads() == []


def test_many_threads_submit_to_one_loop_concurrently() -> None:
    counter = {"n": 0}

    async def bump() -> int:
        value = counter["n"]
        await asyncio.sleep(0)
        counter["n"] = value + 1  # safe: only the loop thread touches it, one task at a time
        return 1

    with EventLoopThread(name="test-loop-shared") as worker:
        with ThreadPoolExecutor(8) as callers:
            results = list(callers.map(lambda _: worker.run(bump(), timeout=HANG), range(200)))
    assert sum(results) == 200
    assert loop_threads() == []


def test_run_from_the_loop_thread_is_refused_instead_of_deadlocking() -> None:
    with EventLoopThread(name="test-loop-self") as worker:

        async def inner() -> int:
            return 1

        async def outer() -> str:
            try:
                worker.run(inner(), timeout=HANG)
            except RuntimeError as error:
                return str(error)
            return "no error"

        assert "would deadlock" in worker.run(outer(), timeout=HANG)


def test_run_timeout_cancels_the_coroutine() -> None:
    import concurrent.futures

    with EventLoopThread(name="test-loop-timeout") as worker:
        with pytest.raises(concurrent.futures.TimeoutError):
            worker.run(asyncio.sleep(3600), timeout=0.1)
        assert worker.run(asyncio.sleep(0, "still serving"), timeout=HANG) == "still serving"
    assert loop_threads() == []


def test_event_loop_thread_misuse() -> None:
    worker = EventLoopThread(name="test-loop-misuse")
    with pytest.raises(RuntimeError, match="not running"):
        _ = worker.loop
    coro = asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="not running"):
        worker.submit(coro)  # closed by submit(): no "never awaited" warning
    worker.start()
    with pytest.raises(RuntimeError, match="only be started once"):
        worker.start()
    with pytest.raises(TypeError):
        worker.submit(lambda: None)  # type: ignore[arg-type]
    worker.stop()
    worker.stop()  # idempotent
    assert loop_threads() == []


def test_gil_enabled_matches_the_interpreter() -> None:
    expected = sys._is_gil_enabled() if hasattr(sys, "_is_gil_enabled") else True
    assert gil_enabled() is expected


# --- helpers ------------------------------------------------------------------


async def wait_for_file(path: Path) -> None:
    for _ in range(int(HANG / 0.01)):
        if path.exists():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{path} never appeared")
