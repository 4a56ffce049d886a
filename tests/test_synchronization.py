"""Behaviour, fault, cancellation, load and bad-input tests for recipes/synchronization.py."""

from __future__ import annotations

import asyncio
import random
import sys
from collections import Counter
from typing import Any, Dict, List, Tuple

import pytest

from recipes.synchronization import (
    BoundedBuffer,
    BufferClosed,
    KeyedLock,
    SimpleBarrier,
    wait_event,
)

# Random delays are whole milliseconds: looptime 0.2 (the version on Python 3.8)
# spins for ever when a timer falls between two of its microsecond ticks.


def only_current_task_left() -> bool:
    return asyncio.all_tasks() == {asyncio.current_task()}


# --- Lock and the lost update ---------------------------------------------------


async def deposit_many(tasks: int, lock: Any) -> int:
    account = {"balance": 0}

    async def deposit() -> None:
        async with lock:
            balance = account["balance"]
            await asyncio.sleep(0)
            account["balance"] = balance + 1

    await asyncio.gather(*(deposit() for _ in range(tasks)))
    return account["balance"]


class NoLock:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc_info: object) -> None:
        return None


def test_lost_update_without_a_lock(run_virtual: Any) -> None:
    async def main() -> int:
        return await deposit_many(1000, NoLock())

    assert run_virtual(main) == 1  # every task read 0 before any wrote


def test_lock_prevents_lost_updates_with_1000_tasks(run_virtual: Any) -> None:
    async def main() -> int:
        return await deposit_many(1000, asyncio.Lock())

    assert run_virtual(main) == 1000


def test_lock_is_released_on_error_and_cancel(run_virtual: Any) -> None:
    async def main() -> Tuple[bool, bool]:
        lock = asyncio.Lock()
        with pytest.raises(ValueError):
            async with lock:
                raise ValueError
        after_error = lock.locked()

        async def holder() -> None:
            async with lock:
                await asyncio.sleep(3600)

        task = asyncio.ensure_future(holder())
        await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.wait({task})
        return after_error, lock.locked()

    assert run_virtual(main) == (False, False)


def test_lock_is_not_reentrant(run_virtual: Any) -> None:
    async def main() -> bool:
        lock = asyncio.Lock()

        async def reenter() -> None:
            async with lock:
                async with lock:
                    pass  # pragma: no cover - never reached

        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(reenter(), 10)
        return lock.locked()

    assert run_virtual(main) is False


# --- KeyedLock ------------------------------------------------------------------


def test_keyed_lock_serialises_each_key_but_not_different_keys(run_virtual: Any) -> None:
    async def main() -> Tuple[Dict[str, int], int, int, float]:
        loop = asyncio.get_running_loop()
        locks: KeyedLock[str] = KeyedLock()
        active: Counter[str] = Counter()
        peak_per_key: Dict[str, int] = {}
        overall = {"active": 0, "peak": 0}

        async def job(key: str) -> None:
            async with locks(key):
                active[key] += 1
                overall["active"] += 1
                overall["peak"] = max(overall["peak"], overall["active"])
                peak_per_key[key] = max(peak_per_key.get(key, 0), active[key])
                await asyncio.sleep(0.1)
                active[key] -= 1
                overall["active"] -= 1

        start = loop.time()
        keys = [f"k{i % 5}" for i in range(50)]  # 10 jobs for each of 5 keys
        await asyncio.gather(*(job(k) for k in keys))
        return peak_per_key, overall["peak"], len(locks), round(loop.time() - start, 1)

    peak_per_key, peak, remaining, elapsed = run_virtual(main)
    assert peak_per_key == {f"k{i}": 1 for i in range(5)}
    assert peak == 5
    assert remaining == 0
    assert elapsed == 1.0  # 10 jobs per key, one after another; keys in parallel


def test_keyed_lock_prevents_duplicate_work(run_virtual: Any) -> None:
    async def main() -> Tuple[List[str], int]:
        locks: KeyedLock[str] = KeyedLock()
        cache: Dict[str, str] = {}
        downloads: List[str] = []

        async def fetch(url: str) -> str:
            async with locks(url):
                if url not in cache:
                    await asyncio.sleep(0.1)
                    downloads.append(url)
                    cache[url] = url.upper()
                return cache[url]

        urls = [random.choice("abc") for _ in range(200)]
        results = await asyncio.gather(*(fetch(u) for u in urls))
        assert results == [u.upper() for u in urls]
        return sorted(downloads), len(locks)

    downloads, remaining = run_virtual(main)
    assert len(downloads) == len(set(downloads))
    assert remaining == 0


def test_keyed_lock_bookkeeping_survives_errors_and_cancellation(run_virtual: Any) -> None:
    async def main() -> Tuple[int, bool, List[str]]:
        locks: KeyedLock[int] = KeyedLock()
        order: List[str] = []

        async def holder() -> None:
            async with locks(1):
                order.append("holder")
                await asyncio.sleep(0.5)

        async def cancelled_waiter() -> None:
            async with locks(1):
                order.append("cancelled waiter ran")  # pragma: no cover

        async def failing_waiter() -> None:
            async with locks(1):
                order.append("failing")
                raise KeyError

        async def last() -> None:
            async with locks(1):
                order.append("last")

        tasks = [
            asyncio.ensure_future(c()) for c in (holder, cancelled_waiter, failing_waiter, last)
        ]
        await asyncio.sleep(0.1)
        assert locks.locked(1) and len(locks) == 1
        tasks[1].cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(results[1], asyncio.CancelledError)
        assert isinstance(results[2], KeyError)
        return len(locks), locks.locked(1), order

    assert run_virtual(main) == (0, False, ["holder", "failing", "last"])


def test_keyed_lock_rejects_unhashable_keys_at_once() -> None:
    locks: KeyedLock[Any] = KeyedLock()
    with pytest.raises(TypeError, match="unhashable"):
        locks(["a", "list"])
    assert len(locks) == 0 and not locks.locked("never used")


# --- Event and wait_event ---------------------------------------------------------


def test_event_wakes_all_waiters_and_stays_set(run_virtual: Any) -> None:
    async def main() -> Tuple[List[str], bool]:
        event = asyncio.Event()
        woke: List[str] = []

        async def waiter(name: str) -> None:
            await event.wait()
            woke.append(name)

        tasks = [asyncio.ensure_future(waiter(str(i))) for i in range(20)]
        await asyncio.sleep(0.1)
        assert woke == []
        event.set()
        event.set()  # idempotent
        await asyncio.gather(*tasks)
        return woke, await event.wait()

    woke, late = run_virtual(main)
    assert woke == [str(i) for i in range(20)]
    assert late is True


def test_wait_event_outcomes(run_virtual: Any) -> None:
    async def main() -> List[Any]:
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        results: List[Any] = []
        start = loop.time()
        results.append(await wait_event(event, timeout=0.3))
        results.append(round(loop.time() - start, 1))
        results.append(await wait_event(event, timeout=0))
        loop.call_later(0.2, event.set)
        results.append(await wait_event(event, timeout=10))
        results.append(round(loop.time() - start, 1))
        results.append(await wait_event(event, timeout=0))  # already set
        event.clear()
        loop.call_later(0.5, event.set)
        results.append(await wait_event(event, timeout=None))
        results.append(round(loop.time() - start, 1))
        return results

    assert run_virtual(main) == [False, 0.3, False, True, 0.5, True, True, 1.0]


def test_wait_event_propagates_cancellation(run_virtual: Any) -> None:
    async def main() -> bool:
        task = asyncio.ensure_future(wait_event(asyncio.Event(), timeout=60))
        await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.wait({task})
        assert only_current_task_left()
        return task.cancelled()

    assert run_virtual(main) is True


@pytest.mark.parametrize("order", ["set, then cancel", "cancel, then set"])
def test_wait_event_never_loses_a_cancellation_that_comes_with_the_event(
    run_virtual: Any, order: str
) -> None:
    # asyncio.wait_for on 3.8-3.11 returned the result here and dropped the cancellation
    # (CPython gh-86296): the cancelled caller carried on as if the event had simply come.
    async def main() -> Tuple[bool, List[str]]:
        event = asyncio.Event()
        log: List[str] = []

        async def worker() -> None:
            if await wait_event(event, timeout=60):
                log.append("carried on")
                await asyncio.sleep(1)
                log.append("finished")

        task = asyncio.ensure_future(worker())
        await asyncio.sleep(0.1)
        if order == "set, then cancel":
            event.set()
            assert task.cancel()
        else:
            assert task.cancel()
            event.set()
        await asyncio.wait({task})
        assert only_current_task_left()
        return task.cancelled(), log

    assert run_virtual(main) == (True, [])


def test_wait_event_a_cancellation_at_the_moment_of_the_timeout_wins(run_virtual: Any) -> None:
    async def main() -> bool:
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(wait_event(asyncio.Event(), timeout=0.5))
        await asyncio.sleep(0)  # it starts its timer: due at loop.time() + 0.5
        loop.call_at(loop.time() + 0.5, task.cancel)  # due in the same loop step
        await asyncio.wait({task})
        assert only_current_task_left()
        return task.cancelled()

    assert run_virtual(main) is True


@pytest.mark.parametrize("timeout", [-1, float("nan"), True])
def test_wait_event_bad_timeout(run_virtual: Any, timeout: Any) -> None:
    async def main() -> None:
        await wait_event(asyncio.Event(), timeout=timeout)

    with pytest.raises(ValueError, match="timeout"):
        run_virtual(main)


# --- Condition and BoundedBuffer --------------------------------------------------


class WatchedBuffer(BoundedBuffer[int]):
    """Records the largest size the buffer ever reached."""

    peak = 0

    async def put(self, item: int) -> None:
        await super().put(item)
        self.peak = max(self.peak, len(self))


@pytest.mark.parametrize(
    ("capacity", "producers", "consumers"), [(1, 1, 1), (3, 5, 2), (10, 20, 20), (4, 1, 8)]
)
def test_bounded_buffer_never_exceeds_capacity_and_delivers_everything_once(
    run_virtual: Any, capacity: int, producers: int, consumers: int
) -> None:
    async def main() -> Tuple[int, List[int], Dict[int, List[int]]]:
        rng = random.Random(capacity * 100 + producers)
        buffer = WatchedBuffer(capacity)
        received: List[int] = []
        per_producer: Dict[int, List[int]] = {}

        async def produce(p: int) -> None:
            for i in range(50):
                await buffer.put(p * 1000 + i)
                await asyncio.sleep(rng.randint(0, 10) / 1000)

        async def consume() -> None:
            async for item in buffer:
                received.append(item)
                per_producer.setdefault(item // 1000, []).append(item % 1000)
                await asyncio.sleep(rng.randint(0, 10) / 1000)

        consumer_tasks = [asyncio.ensure_future(consume()) for _ in range(consumers)]
        await asyncio.gather(*(produce(p) for p in range(producers)))
        await buffer.close()
        await asyncio.gather(*consumer_tasks)
        assert len(buffer) == 0
        return buffer.peak, sorted(received), per_producer

    peak, received, per_producer = run_virtual(main)
    assert 1 <= peak <= capacity
    assert received == sorted(p * 1000 + i for p in range(producers) for i in range(50))
    if consumers == 1:  # one consumer sees each producer's items in order
        assert all(items == list(range(50)) for items in per_producer.values())


def test_bounded_buffer_blocks_producer_when_full(run_virtual: Any) -> None:
    async def main() -> Tuple[bool, int, str, bool]:
        buffer: BoundedBuffer[str] = BoundedBuffer(2)
        await buffer.put("a")
        await buffer.put("b")
        third = asyncio.ensure_future(buffer.put("c"))
        await asyncio.sleep(1)
        blocked = not third.done()
        first = await buffer.get()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return blocked, len(buffer), first, third.done()

    assert run_virtual(main) == (True, 2, "a", True)


def test_bounded_buffer_close_wakes_blocked_getters_and_putters(run_virtual: Any) -> None:
    async def main() -> Tuple[List[Any], List[Any]]:
        empty: BoundedBuffer[int] = BoundedBuffer(1)
        getters = [asyncio.ensure_future(empty.get()) for _ in range(3)]
        full: BoundedBuffer[int] = BoundedBuffer(1)
        await full.put(0)
        putters = [asyncio.ensure_future(full.put(i)) for i in range(1, 4)]
        await asyncio.sleep(0.1)
        await empty.close()
        await full.close()
        got = await asyncio.gather(*getters, return_exceptions=True)
        put = await asyncio.gather(*putters, return_exceptions=True)
        assert full.closed and await full.get() == 0  # drained after close
        return [type(r).__name__ for r in got], [type(r).__name__ for r in put]

    assert run_virtual(main) == (["BufferClosed"] * 3, ["BufferClosed"] * 3)


def test_bounded_buffer_get_after_close_and_drain(run_virtual: Any) -> None:
    async def main() -> List[int]:
        buffer: BoundedBuffer[int] = BoundedBuffer(5)
        for i in range(3):
            await buffer.put(i)
        await buffer.close()
        await buffer.close()  # closing twice is harmless
        items = [await buffer.get() for _ in range(3)]
        with pytest.raises(BufferClosed, match="closed, empty"):
            await buffer.get()
        with pytest.raises(BufferClosed, match="put"):
            await buffer.put(9)
        return items

    assert run_virtual(main) == [0, 1, 2]


def test_bounded_buffer_cancelled_get_loses_no_item(run_virtual: Any) -> None:
    # Fails on 3.8-3.12 if put() used notify(1): the woken getter is cancelled.
    async def main() -> Tuple[List[int], bool]:
        buffer: BoundedBuffer[int] = BoundedBuffer(1)
        doomed = asyncio.ensure_future(buffer.get())
        survivor = asyncio.ensure_future(buffer.get())
        await asyncio.sleep(0.1)
        await buffer.put(42)  # wakes both getters...
        doomed.cancel()  # ...and one of them is cancelled before it runs
        await asyncio.wait({doomed})
        got = await asyncio.wait_for(survivor, 1)
        return [got], doomed.cancelled()

    assert run_virtual(main) == ([42], True)


def test_bounded_buffer_cancelled_put_adds_nothing(run_virtual: Any) -> None:
    async def main() -> List[int]:
        buffer: BoundedBuffer[int] = BoundedBuffer(1)
        await buffer.put(1)
        blocked = asyncio.ensure_future(buffer.put(2))
        await asyncio.sleep(0.1)
        blocked.cancel()
        await asyncio.wait({blocked})
        await buffer.close()
        return [item async for item in buffer]

    assert run_virtual(main) == [1]


@pytest.mark.parametrize(
    ("capacity", "exc"),
    [(0, ValueError), (-1, ValueError), (1.5, TypeError), ("2", TypeError), (True, TypeError)],
)
def test_bounded_buffer_bad_capacity(run_virtual: Any, capacity: Any, exc: type) -> None:
    async def main() -> None:
        BoundedBuffer(capacity)

    with pytest.raises(exc):
        run_virtual(main)


# --- Semaphore and BoundedSemaphore ------------------------------------------------


async def peak_concurrency(sem: Any, jobs: int) -> int:
    state = {"active": 0, "peak": 0}

    async def job() -> None:
        async with sem:
            state["active"] += 1
            state["peak"] = max(state["peak"], state["active"])
            await asyncio.sleep(0.1)
            state["active"] -= 1

    await asyncio.gather(*(job() for _ in range(jobs)))
    return state["peak"]


def test_extra_release_silently_raises_a_semaphores_limit(run_virtual: Any) -> None:
    async def main() -> Tuple[int, int]:
        sem = asyncio.Semaphore(3)
        before = await peak_concurrency(sem, 10)
        sem.release()
        return before, await peak_concurrency(sem, 10)

    assert run_virtual(main) == (3, 4)


def test_bounded_semaphore_catches_the_extra_release(run_virtual: Any) -> None:
    async def main() -> int:
        sem = asyncio.BoundedSemaphore(3)
        peak = await peak_concurrency(sem, 10)
        with pytest.raises(ValueError, match="released too many times"):
            sem.release()
        assert await peak_concurrency(sem, 10) == 3
        return peak

    assert run_virtual(main) == 3


# --- SimpleBarrier -----------------------------------------------------------------


@pytest.mark.parametrize("parties", [1, 2, 5, 17])
def test_simple_barrier_rounds(run_virtual: Any, parties: int) -> None:
    rounds = 4

    async def main() -> Tuple[List[Tuple[str, int, int]], List[List[int]]]:
        rng = random.Random(parties)
        barrier = SimpleBarrier(parties)
        events: List[Tuple[str, int, int]] = []
        indices: List[List[int]] = [[] for _ in range(rounds)]

        async def party(p: int) -> None:
            for r in range(rounds):
                await asyncio.sleep(rng.randint(0, 100) / 1000)
                events.append(("arrive", r, p))
                indices[r].append(await barrier.wait())
                events.append(("leave", r, p))

        await asyncio.gather(*(party(p) for p in range(parties)))
        assert barrier.n_waiting == 0
        return events, indices

    events, indices = run_virtual(main)
    for r in range(rounds):
        # every arrival of round r happens before any departure from round r
        last_arrival = max(i for i, e in enumerate(events) if e[:2] == ("arrive", r))
        first_leave = min(i for i, e in enumerate(events) if e[:2] == ("leave", r))
        assert last_arrival < first_leave
        assert sorted(indices[r]) == list(range(parties))


def test_simple_barrier_last_arrival_gets_the_top_index(run_virtual: Any) -> None:
    async def main() -> List[Tuple[str, int]]:
        barrier = SimpleBarrier(3)

        async def arrive(name: str, delay: float) -> Tuple[str, int]:
            await asyncio.sleep(delay)
            return name, await barrier.wait()

        return await asyncio.gather(arrive("c", 0.3), arrive("a", 0.1), arrive("b", 0.2))

    assert run_virtual(main) == [("c", 2), ("a", 0), ("b", 1)]


def test_simple_barrier_cancelled_waiter_leaves_the_round(run_virtual: Any) -> None:
    async def main() -> Tuple[int, int, List[int]]:
        barrier = SimpleBarrier(3)
        first = asyncio.ensure_future(barrier.wait())
        leaving = asyncio.ensure_future(barrier.wait())
        await asyncio.sleep(0.1)
        assert barrier.n_waiting == 2
        leaving.cancel()
        await asyncio.wait({leaving})
        after_cancel = barrier.n_waiting
        late = [asyncio.ensure_future(barrier.wait()) for _ in range(2)]
        indices = await asyncio.gather(first, *late)
        return after_cancel, barrier.n_waiting, sorted(indices)

    assert run_virtual(main) == (1, 0, [0, 1, 2])


def test_simple_barrier_timeout_with_wait_for(run_virtual: Any) -> None:
    async def main() -> int:
        barrier = SimpleBarrier(2)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(barrier.wait(), 0.5)
        assert only_current_task_left()
        return barrier.n_waiting

    assert run_virtual(main) == 0


def test_simple_barrier_does_not_release_early(run_virtual: Any) -> None:
    async def main() -> Tuple[int, bool]:
        barrier = SimpleBarrier(3)
        waiters = [asyncio.ensure_future(barrier.wait()) for _ in range(2)]
        await asyncio.sleep(1)
        still_waiting = not any(w.done() for w in waiters)
        for w in waiters:
            w.cancel()
        await asyncio.wait(waiters)
        return barrier.n_waiting, still_waiting

    assert run_virtual(main) == (0, True)


@pytest.mark.parametrize(
    ("parties", "exc"),
    [(0, ValueError), (-2, ValueError), (2.0, TypeError), (None, TypeError), (True, TypeError)],
)
def test_simple_barrier_bad_parties(run_virtual: Any, parties: Any, exc: type) -> None:
    async def main() -> None:
        SimpleBarrier(parties)

    with pytest.raises(exc):
        run_virtual(main)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.Barrier needs Python >= 3.11")
def test_simple_barrier_matches_asyncio_barrier(run_virtual: Any) -> None:
    async def run(barrier: Any) -> List[Tuple[int, float]]:
        loop = asyncio.get_running_loop()
        start = loop.time()

        async def arrive(delay: float) -> Tuple[int, float]:
            await asyncio.sleep(delay)
            index = await barrier.wait()
            return index, round(loop.time() - start, 1)

        return await asyncio.gather(*(arrive(d) for d in (0.3, 0.1, 0.2, 0.4)))

    async def main() -> Tuple[Any, Any]:
        return await run(asyncio.Barrier(4)), await run(SimpleBarrier(4))

    stdlib, ours = run_virtual(main)
    assert stdlib == ours == [(2, 0.4), (0, 0.4), (1, 0.4), (3, 0.4)]


# --- primitives created outside the running loop ----------------------------------


def contended(lock: asyncio.Lock) -> Any:
    async def main() -> str:
        async def hold() -> None:
            async with lock:
                await asyncio.sleep(0)

        await asyncio.gather(hold(), hold())  # the second must wait: a Future is made
        return "ok"

    return main


@pytest.mark.skipif(sys.version_info >= (3, 10), reason="the 3.8/3.9 form of the pitfall")
def test_lock_created_before_the_loop_fails_on_38_39() -> None:
    import_time_loop = asyncio.new_event_loop()
    asyncio.set_event_loop(import_time_loop)  # what get_event_loop() returns at import
    try:
        lock = asyncio.Lock()  # "module level"
        with pytest.raises(RuntimeError, match="attached to a different loop"):
            asyncio.run(contended(lock)())
    finally:
        asyncio.set_event_loop(None)
        import_time_loop.close()


@pytest.mark.skipif(sys.version_info < (3, 10), reason="the 3.10+ form of the pitfall")
def test_lock_reused_from_a_second_loop_fails_on_310_plus() -> None:
    lock = asyncio.Lock()  # "module level": not bound to any loop yet
    assert asyncio.run(contended(lock)()) == "ok"  # binds to the first loop
    with pytest.raises(RuntimeError, match="is bound to a different event loop"):
        asyncio.run(contended(lock)())


def test_lock_created_inside_each_loop_works_everywhere() -> None:
    async def main() -> str:
        return await contended(asyncio.Lock())()

    assert [asyncio.run(main()) for _ in range(3)] == ["ok", "ok", "ok"]
