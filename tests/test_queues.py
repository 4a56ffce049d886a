"""Behaviour, fault, bad-input and load tests for recipes/queues.py."""

from __future__ import annotations

import asyncio
import logging
import random
import sys
from collections import Counter
from typing import Any, AsyncIterator, Awaitable, Callable, Iterator, List, Tuple

import pytest

from recipes.queues import (
    STOP,
    ClosableQueue,
    QueueClosed,
    StablePriorityQueue,
    StageFailure,
    consume,
    run_pipeline,
)
from tests.conftest import asyncio_run_returns

# Generous timeouts on the virtual clock: they cost no wall time, and they turn
# a hang into a failure instead of a stuck test run.
HANG = 3600.0


# --- consume() and sentinels ------------------------------------------------


@pytest.mark.parametrize("consumers", [1, 3, 10])
def test_consume_with_one_sentinel_per_consumer_handles_each_item_once(
    run_virtual: Any, consumers: int
) -> None:
    async def main() -> Counter[int]:
        rng = random.Random(consumers)
        handled: Counter[int] = Counter()

        async def handle(item: int) -> None:
            await asyncio.sleep(round(rng.random() / 10, 3))  # ms grid: see _jittery
            handled[item] += 1

        queue: asyncio.Queue[Any] = asyncio.Queue()
        tasks = [asyncio.create_task(consume(queue, handle)) for _ in range(consumers)]
        for item in range(200):
            await queue.put(item)
        for _ in tasks:
            await queue.put(STOP)
        await asyncio.wait_for(queue.join(), HANG)
        await asyncio.wait_for(asyncio.gather(*tasks), HANG)
        return handled

    handled = run_virtual(main)
    assert handled == Counter(range(200))


def test_consume_calls_task_done_for_the_sentinel(run_virtual: Any) -> None:
    async def main() -> bool:
        queue: asyncio.Queue[Any] = asyncio.Queue()

        async def handle(item: object) -> None:
            pass

        queue.put_nowait(STOP)
        await consume(queue, handle)
        # join() returns at once only if task_done() was called for the sentinel.
        await asyncio.wait_for(queue.join(), 1)
        with pytest.raises(ValueError, match="task_done"):
            queue.task_done()  # nothing left to mark: the count is exactly zero
        return True

    assert run_virtual(main)


def test_consume_survives_failing_items_and_reports_each(run_virtual: Any) -> None:
    async def main() -> Any:
        handled: List[int] = []
        failed: List[Any] = []

        async def handle(item: int) -> None:
            await asyncio.sleep(0.01)
            if item % 5 == 0:
                raise RuntimeError(f"item {item}")
            handled.append(item)

        queue: asyncio.Queue[Any] = asyncio.Queue()
        tasks = [
            asyncio.create_task(
                consume(queue, handle, on_error=lambda item, exc: failed.append((item, exc)))
            )
            for _ in range(4)
        ]
        for item in range(50):
            queue.put_nowait(item)
        for _ in tasks:
            queue.put_nowait(STOP)
        await asyncio.wait_for(queue.join(), HANG)
        await asyncio.wait_for(asyncio.gather(*tasks), HANG)
        return handled, failed

    handled, failed = run_virtual(main)
    assert sorted(handled) == [n for n in range(50) if n % 5]
    assert sorted(item for item, _ in failed) == list(range(0, 50, 5))
    assert all(
        isinstance(exc, RuntimeError) and str(exc) == f"item {item}" for item, exc in failed
    )


def test_consume_logs_failures_without_on_error(
    run_virtual: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        async def handle(item: str) -> None:
            raise KeyError(item)

        queue: asyncio.Queue[Any] = asyncio.Queue()
        for item in ("a", STOP):
            queue.put_nowait(item)
        await consume(queue, handle)

    with caplog.at_level(logging.ERROR, logger="recipes.queues"):
        run_virtual(main)
    [record] = caplog.records
    assert "'a'" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is KeyError


def test_cancelled_consumer_still_marks_its_item_done(run_virtual: Any) -> None:
    async def main() -> bool:
        started = asyncio.Event()
        cleaned_up = []

        async def handle(item: int) -> None:
            started.set()
            try:
                await asyncio.sleep(HANG)
            finally:
                cleaned_up.append(item)

        queue: asyncio.Queue[Any] = asyncio.Queue()
        queue.put_nowait(7)
        task = asyncio.create_task(consume(queue, handle))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(queue.join(), 1)  # task_done() ran despite the cancellation
        return cleaned_up == [7]

    assert run_virtual(main)


def test_consume_does_not_catch_cancellation_raised_by_the_handler(run_virtual: Any) -> None:
    async def main() -> None:
        async def handle(item: int) -> None:
            raise asyncio.CancelledError

        queue: asyncio.Queue[Any] = asyncio.Queue()
        queue.put_nowait(1)
        with pytest.raises(asyncio.CancelledError):
            await consume(queue, handle, on_error=lambda item, exc: None)
        await asyncio.wait_for(queue.join(), 1)

    run_virtual(main)


@pytest.mark.skipif(sys.version_info < (3, 13), reason="Queue.shutdown() requires Python >= 3.13")
def test_consume_stops_on_queue_shutdown(run_virtual: Any) -> None:
    async def main() -> List[int]:
        handled: List[int] = []

        async def handle(item: int) -> None:
            await asyncio.sleep(0.1)
            handled.append(item)

        queue: asyncio.Queue[Any] = asyncio.Queue()
        tasks = [asyncio.create_task(consume(queue, handle)) for _ in range(5)]
        for item in range(20):
            await queue.put(item)
        queue.shutdown()
        await asyncio.wait_for(asyncio.gather(*tasks), HANG)
        await asyncio.wait_for(queue.join(), HANG)
        return handled

    assert sorted(run_virtual(main)) == list(range(20))


# --- StablePriorityQueue ----------------------------------------------------


def test_priority_queue_never_compares_payloads_and_keeps_ties_fifo(run_virtual: Any) -> None:
    async def main() -> List[Any]:
        queue: StablePriorityQueue[dict[str, int]] = StablePriorityQueue()
        rng = random.Random(3)
        entries = [(rng.randrange(5), {"n": n}) for n in range(500)]
        for priority, payload in entries:
            await queue.put(payload, priority=priority)
        out = [queue.get_nowait() for _ in range(len(entries))]
        expected = [payload for _, payload in sorted(entries, key=lambda e: e[0])]  # stable sort
        return [out, expected]

    out, expected = run_virtual(main)
    assert out == expected


def test_priority_queue_bound_and_join(run_virtual: Any) -> None:
    async def main() -> List[str]:
        queue: StablePriorityQueue[str] = StablePriorityQueue(maxsize=2)
        queue.put_nowait("low", priority=9)
        queue.put_nowait("high", priority=1)
        assert queue.full() and queue.qsize() == 2
        with pytest.raises(asyncio.QueueFull):
            queue.put_nowait("more")
        blocked = asyncio.create_task(queue.put("urgent", priority=0))
        await asyncio.sleep(0.1)
        assert not blocked.done()  # backpressure: waits for room
        got = [await queue.get()]
        await asyncio.wait_for(blocked, 1)
        got += [await queue.get(), await queue.get()]
        assert queue.empty()
        with pytest.raises(asyncio.QueueEmpty):
            queue.get_nowait()
        for _ in got:
            queue.task_done()
        await asyncio.wait_for(queue.join(), 1)
        return got

    assert run_virtual(main) == ["high", "urgent", "low"]


@pytest.mark.parametrize("kind", ["ClosableQueue", "StablePriorityQueue"])
def test_blocked_producers_are_served_in_arrival_order(run_virtual: Any, kind: str) -> None:
    """A put() that arrives as a slot frees must not overtake the producers waiting.

    asyncio.Queue.put() lets it (on every version), and so does the
    asyncio.Semaphore of Python 3.8.
    """

    async def main() -> List[str]:
        queue: Any = StablePriorityQueue(1) if kind == "StablePriorityQueue" else ClosableQueue(1)
        await queue.put("a")
        waiting = asyncio.create_task(queue.put("b"))  # arrives first: the queue is full
        await asyncio.sleep(0.1)

        async def take_then_put() -> Any:
            taken = await queue.get()  # frees the slot that "b" is waiting for...
            await queue.put("c")  # ...and asks for one in the same loop step
            return taken

        recycler = asyncio.create_task(take_then_put())
        await asyncio.sleep(0.1)
        out = [await asyncio.wait_for(queue.get(), HANG) for _ in range(2)]
        await asyncio.wait_for(asyncio.gather(waiting, recycler), HANG)
        return [recycler.result(), *out]

    assert run_virtual(main) == ["a", "b", "c"]


def test_stable_priority_queue_put_nowait_does_not_take_a_promised_slot(
    run_virtual: Any,
) -> None:
    async def main() -> List[Any]:
        queue: StablePriorityQueue[str] = StablePriorityQueue(maxsize=1)
        queue.put_nowait("a")
        waiting = asyncio.create_task(queue.put("b"))
        await asyncio.sleep(0.1)
        seen: List[Any] = [queue.get_nowait()]  # the freed slot goes to "b", waiting
        try:
            queue.put_nowait("c")
        except asyncio.QueueFull:
            seen.append("QueueFull")
        seen.append(queue.full())
        await asyncio.wait([waiting], timeout=1)
        while not queue.empty():
            seen.append(queue.get_nowait())
        seen.append(queue.full())
        if not waiting.done():  # the old behaviour: leave nothing behind
            waiting.cancel()
            await asyncio.wait([waiting])
        return seen

    assert run_virtual(main) == ["a", "QueueFull", True, "b", False]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("kind", ["ClosableQueue", "StablePriorityQueue"])
def test_bounded_queues_under_load_with_cancelled_producers(
    run_virtual: Any, kind: str, seed: int
) -> None:
    """Items enter in the order put() was called, minus the cancelled ones; the bound holds."""

    async def main() -> Tuple[List[int], List[int], int]:
        rng = random.Random(seed)
        queue: Any = StablePriorityQueue(3) if kind == "StablePriorityQueue" else ClosableQueue(3)
        called: List[int] = []
        producers: List[asyncio.Task[None]] = []

        async def produce(n: int) -> None:
            await asyncio.sleep(round(rng.random() / 10, 3))
            called.append(n)
            await queue.put(n)

        for n in range(300):
            producers.append(asyncio.create_task(produce(n)))
        victims = rng.sample(producers, 60)
        received: List[int] = []
        worst = 0
        while len(received) + sum(t.cancelled() for t in producers) < len(producers):
            if victims and rng.random() < 0.3:
                victims.pop().cancel()
            worst = max(worst, queue.qsize())
            try:
                received.append(await asyncio.wait_for(queue.get(), 0.01))
            except asyncio.TimeoutError:
                pass
            await asyncio.sleep(round(rng.random() / 100, 3))
        await asyncio.wait(producers)
        delivered = [n for n in called if not producers[n].cancelled()]
        return received, delivered, worst

    received, delivered, worst = run_virtual(main)
    assert received == delivered
    assert worst <= 3


def test_cancelled_producers_pass_their_slot_on(run_virtual: Any) -> None:
    """A producer cancelled just as a slot is handed to it does not lose the slot."""

    async def main() -> List[str]:
        queue: ClosableQueue[str] = ClosableQueue(maxsize=1)
        await queue.put("a")
        first = asyncio.create_task(queue.put("b"))
        second = asyncio.create_task(queue.put("c"))
        await asyncio.sleep(0.1)
        assert await queue.get() == "a"  # hands the slot to "b"...
        first.cancel()  # ...which is cancelled before it can use it
        with pytest.raises(asyncio.CancelledError):
            await first
        await asyncio.wait_for(second, HANG)  # the slot went on to "c"
        return [await queue.get()]

    assert run_virtual(main) == ["c"]


# --- ClosableQueue ----------------------------------------------------------


def test_closable_queue_drains_then_raises(run_virtual: Any) -> None:
    async def main() -> None:
        queue: ClosableQueue[int] = ClosableQueue()
        for item in range(3):
            await queue.put(item)
        queue.close()
        assert queue.closed and queue.qsize() == 3
        with pytest.raises(QueueClosed, match="put"):
            await queue.put(99)
        assert [await queue.get() for _ in range(3)] == [0, 1, 2]
        assert queue.empty()
        for _ in range(3):  # every later get() raises too
            with pytest.raises(QueueClosed, match="get"):
                await queue.get()
        for _ in range(3):
            queue.task_done()
        await asyncio.wait_for(queue.join(), 1)
        queue.close()  # idempotent
        assert queue.qsize() == 0

    run_virtual(main)


def test_closing_wakes_every_blocked_consumer(run_virtual: Any) -> None:
    async def main() -> None:
        queue: ClosableQueue[int] = ClosableQueue()
        getters = [asyncio.create_task(queue.get()) for _ in range(10)]
        await asyncio.sleep(0.1)
        assert not any(task.done() for task in getters)
        queue.close()
        outcomes = await asyncio.wait_for(asyncio.gather(*getters, return_exceptions=True), HANG)
        assert all(isinstance(outcome, QueueClosed) for outcome in outcomes)
        await asyncio.wait_for(queue.join(), 1)

    run_virtual(main)


def test_closing_wakes_every_blocked_producer(run_virtual: Any) -> None:
    async def main() -> None:
        queue: ClosableQueue[int] = ClosableQueue(maxsize=2)
        await queue.put(1)
        await queue.put(2)
        putters = [asyncio.create_task(queue.put(n)) for n in range(3, 13)]
        await asyncio.sleep(0.1)
        assert not any(task.done() for task in putters)  # full: they wait
        queue.close()
        outcomes = await asyncio.wait_for(asyncio.gather(*putters, return_exceptions=True), HANG)
        assert all(isinstance(outcome, QueueClosed) for outcome in outcomes)
        assert [await queue.get(), await queue.get()] == [1, 2]
        with pytest.raises(QueueClosed):
            await queue.get()

    run_virtual(main)


def test_closable_queue_bound_gives_backpressure_and_cancelled_put_frees_nothing(
    run_virtual: Any,
) -> None:
    async def main() -> None:
        queue: ClosableQueue[str] = ClosableQueue(maxsize=1)
        assert queue.maxsize == 1
        await queue.put("a")
        cancelled = asyncio.create_task(queue.put("lost"))
        waiting = asyncio.create_task(queue.put("b"))
        await asyncio.sleep(0.1)
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        assert not waiting.done()
        assert await queue.get() == "a"
        await asyncio.wait_for(waiting, 1)
        assert queue.qsize() == 1  # the bound still holds after the cancellation
        third = asyncio.create_task(queue.put("c"))
        await asyncio.sleep(0.1)
        assert not third.done()
        assert await queue.get() == "b"
        await asyncio.wait_for(third, 1)
        assert await queue.get() == "c"

    run_virtual(main)


def test_immediate_close_discards_and_releases_join(run_virtual: Any) -> None:
    async def main() -> None:
        queue: ClosableQueue[int] = ClosableQueue(maxsize=5)
        for item in range(5):
            await queue.put(item)
        taken = await queue.get()  # one item in progress
        queue.close()
        queue.close(immediate=True)  # after a normal close, still drops what is queued
        assert queue.qsize() == 0
        with pytest.raises(QueueClosed):
            await queue.get()
        joiner = asyncio.create_task(queue.join())
        await asyncio.sleep(0.1)
        assert not joiner.done()  # the item in progress still counts
        assert taken == 0
        queue.task_done()
        await asyncio.wait_for(joiner, 1)

    run_virtual(main)


def test_consumers_on_a_closable_queue_stop_without_sentinels(run_virtual: Any) -> None:
    async def main() -> Counter[int]:
        handled: Counter[int] = Counter()

        async def handle(item: int) -> None:
            await asyncio.sleep(0.01 * (item % 3))
            handled[item] += 1

        queue: ClosableQueue[int] = ClosableQueue(maxsize=4)
        tasks = [asyncio.create_task(consume(queue, handle)) for _ in range(6)]
        for item in range(100):
            await queue.put(item)
        queue.close()
        await asyncio.wait_for(asyncio.gather(*tasks), HANG)
        await asyncio.wait_for(queue.join(), HANG)
        return handled

    assert run_virtual(main) == Counter(range(100))


def test_closable_queue_rejects_negative_maxsize(run_virtual: Any) -> None:
    async def main() -> None:
        with pytest.raises(ValueError, match="maxsize must be >= 0"):
            ClosableQueue(maxsize=-1)

    run_virtual(main)


# --- run_pipeline -----------------------------------------------------------


def _jittery(rng: random.Random, fail_on: frozenset[int] = frozenset(), tag: str = "") -> Any:
    async def stage(item: Any) -> Any:
        # Whole milliseconds: the fake clock of looptime < 0.9 (Python 3.8-3.10)
        # never reaches a deadline that is not a whole number of microseconds.
        await asyncio.sleep(round(rng.random() / 20, 3))
        number = item if isinstance(item, int) else item[0]
        if number in fail_on:
            raise ValueError(f"{tag} rejects {number}")
        return (number, *(item[1:] if isinstance(item, tuple) else ()), tag)

    stage.__name__ = tag
    return stage


@pytest.mark.parametrize("workers", [1, 2, 7, (3, 1, 5)])
def test_pipeline_delivers_every_item_exactly_once(run_virtual: Any, workers: Any) -> None:
    async def main() -> Any:
        rng = random.Random(42)
        stages = [_jittery(rng, tag=tag) for tag in ("a", "b", "c")]
        return await asyncio.wait_for(
            run_pipeline(range(300), *stages, workers=workers, maxsize=4), HANG
        )

    result = run_virtual(main)
    assert result.failures == []
    assert result.results == [(n, "a", "b", "c") for n in range(300)]


def test_pipeline_reports_failing_items_and_keeps_the_rest_flowing(run_virtual: Any) -> None:
    fail_a = frozenset(range(0, 300, 7))
    fail_c = frozenset(range(3, 300, 11)) - fail_a

    async def main() -> Any:
        rng = random.Random(7)
        stages = [
            _jittery(rng, fail_a, "a"),
            _jittery(rng, tag="b"),
            _jittery(rng, fail_c, "c"),
        ]
        return await asyncio.wait_for(
            run_pipeline(range(300), *stages, workers=5, maxsize=3), HANG
        )

    result = run_virtual(main)
    delivered = [item[0] for item in result.results]
    failed = [failure.index for failure in result.failures]
    # exactly once: every index appears in one list or the other, never twice
    assert sorted(delivered + failed) == list(range(300))
    assert set(failed) == fail_a | fail_c
    assert [f.stage for f in result.failures] == ["a" if i in fail_a else "c" for i in failed]
    for failure in result.failures:
        assert isinstance(failure, StageFailure)
        assert isinstance(failure.error, ValueError)
        # the item recorded is the failing stage's input
        expected_item = failure.index if failure.stage == "a" else (failure.index, "a", "b")
        assert failure.item == expected_item
    assert delivered == sorted(delivered)


def test_pipeline_where_every_item_fails_still_returns(run_virtual: Any) -> None:
    async def main() -> Any:
        async def broken(item: int) -> int:
            raise OSError("disk full")

        return await asyncio.wait_for(run_pipeline(range(50), broken, workers=3), HANG)

    result = run_virtual(main)
    assert result.results == []
    assert [f.index for f in result.failures] == list(range(50))


def test_pipeline_timeout_turns_a_hanging_call_into_a_failure(run_virtual: Any) -> None:
    async def main() -> Any:
        async def sometimes_hangs(item: int) -> int:
            if item % 4 == 1:
                await asyncio.sleep(HANG)
            return item

        return await asyncio.wait_for(
            run_pipeline(range(20), sometimes_hangs, workers=2, timeout=1.0), HANG / 2
        )

    result = run_virtual(main)
    assert [f.index for f in result.failures] == [n for n in range(20) if n % 4 == 1]
    assert all(isinstance(f.error, asyncio.TimeoutError) for f in result.failures)
    assert result.results == [n for n in range(20) if n % 4 != 1]


def test_pipeline_stage_raising_cancelled_error_fails_instead_of_hanging(
    run_virtual: Any,
) -> None:
    async def main() -> None:
        async def rogue(item: int) -> int:
            if item == 3:
                raise asyncio.CancelledError  # ends the worker, not just the item
            await asyncio.sleep(0.01)
            return item

        with pytest.raises(RuntimeError, match="stopped unexpectedly"):
            await asyncio.wait_for(run_pipeline(range(10), rogue, workers=1), HANG)

    run_virtual(main)


def test_pipeline_propagates_source_errors_and_leaves_no_tasks(run_virtual: Any) -> None:
    def source() -> Iterator[int]:
        yield 1
        yield 2
        raise LookupError("source broke")

    async def main() -> None:
        async def stage(item: int) -> int:
            await asyncio.sleep(0.1)
            return item

        with pytest.raises(LookupError, match="source broke"):
            await asyncio.wait_for(run_pipeline(source(), stage, stage), HANG)

    run_virtual(main)  # the fixture fails the test if a worker was left running


def test_pipeline_accepts_async_iterables(run_virtual: Any) -> None:
    async def source() -> AsyncIterator[int]:
        for n in range(30):
            await asyncio.sleep(0.01)
            yield n

    async def main() -> Any:
        async def double(item: int) -> int:
            return 2 * item

        return await asyncio.wait_for(run_pipeline(source(), double, workers=4), HANG)

    assert run_virtual(main).results == [2 * n for n in range(30)]


def test_pipeline_with_empty_source(run_virtual: Any) -> None:
    async def main() -> Any:
        async def stage(item: int) -> int:
            return item

        return await asyncio.wait_for(run_pipeline([], stage, stage), HANG)

    result = run_virtual(main)
    assert result.results == [] and result.failures == []


def test_pipeline_workers_per_stage_reach_but_never_exceed_their_count(run_virtual: Any) -> None:
    async def main() -> List[int]:
        running = [0, 0]
        peak = [0, 0]

        def make(number: int, seconds: float) -> Any:
            async def stage(item: int) -> int:
                running[number] += 1
                peak[number] = max(peak[number], running[number])
                await asyncio.sleep(seconds)
                running[number] -= 1
                return item

            return stage

        await asyncio.wait_for(
            run_pipeline(range(200), make(0, 0.01), make(1, 0.1), workers=[3, 6], maxsize=50), HANG
        )
        return peak

    assert run_virtual(main) == [3, 6]


def test_pipeline_applies_backpressure_to_the_source(run_virtual: Any) -> None:
    async def main() -> int:
        read = 0
        done = 0
        worst = 0

        def source() -> Iterator[int]:
            nonlocal read, worst
            for n in range(200):
                read += 1
                worst = max(worst, read - done)
                yield n

        async def slow(item: int) -> int:
            nonlocal done
            await asyncio.sleep(1)
            done += 1
            return item

        await asyncio.wait_for(run_pipeline(source(), slow, workers=2, maxsize=3), HANG)
        return worst

    # at most: queue (3) + items held by the workers (2) + the one the feeder is putting
    assert run_virtual(main) <= 3 + 2 + 1


def test_cancelling_the_pipeline_cancels_and_awaits_every_worker(run_virtual: Any) -> None:
    async def main() -> List[int]:
        cleaned: List[int] = []
        started = asyncio.Event()

        async def stage(item: int) -> int:
            started.set()
            try:
                await asyncio.sleep(HANG)
            finally:
                cleaned.append(item)
            return item

        task = asyncio.create_task(run_pipeline(range(100), stage, workers=4))
        await started.wait()
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return cleaned

    # four workers were each inside one item; each ran its cleanup before the
    # cancellation reached us, and the fixture checks that no task is left
    assert sorted(run_virtual(main)) == [0, 1, 2, 3]


def test_a_cancel_landing_as_a_timed_stage_call_ends_does_not_hang(run_virtual: Any) -> None:
    """CPython gh-86296: before 3.12, wait_for() dropped a cancel that arrived as the
    stage call finished; the worker went back to get() and the pipeline hung."""

    async def main() -> str:
        pipeline: List[asyncio.Task[Any]] = []

        async def stage(item: int) -> int:
            await asyncio.sleep(1)
            if item == 0:
                pipeline[0].cancel()  # lands in the step in which this call ends
            return item

        task = asyncio.create_task(run_pipeline(range(10), stage, workers=2, timeout=60))
        pipeline.append(task)
        done, _ = await asyncio.wait([task], timeout=HANG)
        if not done:  # hung: end every task so that only the assertion below reports it
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for other in others:
                other.cancel()
            await asyncio.wait(others)
            return "hung"
        return "cancelled" if task.cancelled() else "finished"

    assert run_virtual(main) == "cancelled"


def test_a_second_cancel_while_the_pipeline_winds_down_still_awaits_every_worker(
    run_virtual: Any,
) -> None:
    async def main() -> Any:
        cleaned: List[int] = []

        async def stage(item: int) -> int:
            try:
                await asyncio.sleep(HANG)
            finally:
                await asyncio.sleep(1)  # a slow asynchronous cleanup
                cleaned.append(item)
            return item

        task = asyncio.create_task(run_pipeline(range(100), stage, workers=4))
        await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.sleep(0.5)  # the workers are in their cleanup
        task.cancel()  # a second cancel, e.g. an impatient shutdown
        cleaned_when_done: List[List[int]] = []
        task.add_done_callback(lambda _: cleaned_when_done.append(sorted(cleaned)))
        await asyncio.wait([task], timeout=HANG)
        await asyncio.sleep(2)  # let stray workers finish, so the assertion reports
        return task.cancelled(), cleaned_when_done

    assert run_virtual(main) == (True, [[0, 1, 2, 3]])


def test_asyncio_run_cancels_and_awaits_a_leftover_worker(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What the chapter says about workers left running when main() returns."""
    log: List[str] = []
    workers: List[asyncio.Task[None]] = []

    async def handle(item: str) -> None:
        try:
            await asyncio.sleep(HANG)
        finally:
            await asyncio.sleep(0)  # an asynchronous cleanup step
            log.append(f"{item}: cleaned up")

    async def failing_worker(queue: asyncio.Queue[str]) -> None:
        try:
            await queue.get()
        finally:
            await asyncio.sleep(0)
            log.append("failing worker: cleaned up")
            raise OSError("cleanup failed")

    async def main() -> None:
        queue: asyncio.Queue[str] = asyncio.Queue()
        queue.put_nowait("job")
        workers.append(asyncio.create_task(consume(queue, handle)))  # never cancelled
        while queue.qsize():
            await asyncio.sleep(0)
        workers.append(asyncio.create_task(failing_worker(queue)))
        await asyncio.sleep(0)
        log.append("main returned")

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        asyncio.run(main())  # a real asyncio.run, on the real clock: returns at once
    assert log[0] == "main returned"  # the cleanups (in no set order) came after it
    assert sorted(log[1:]) == ["failing worker: cleaned up", "job: cleaned up"]
    assert workers[0].cancelled()
    # The failed cleanup is only logged, by asyncio.run() itself.
    [record] = caplog.records
    assert "unhandled exception during asyncio.run() shutdown" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is OSError


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"workers": 0}, ValueError, "workers must be >= 1, got 0"),
        ({"workers": -3}, ValueError, "workers must be >= 1, got -3"),
        ({"workers": 2.5}, TypeError, "workers must be an int"),
        ({"workers": True}, TypeError, "workers must be an int"),
        ({"workers": [1, 2, 3]}, ValueError, "3 worker counts for 2 stages"),
        ({"workers": [1, 0]}, ValueError, "workers must be >= 1, got 0 for stage 'stage'"),
        ({"maxsize": 0}, ValueError, "maxsize must be >= 1"),
        ({"timeout": 0}, ValueError, "timeout must be > 0"),
        ({"timeout": -1.0}, ValueError, "timeout must be > 0"),
    ],
)
def test_pipeline_bad_arguments_fail_before_reading_the_source(
    run_virtual: Any, kwargs: Any, error: type, message: str
) -> None:
    read: List[int] = []

    def source() -> Iterator[int]:
        for n in range(5):
            read.append(n)
            yield n

    async def main() -> None:
        async def stage(item: int) -> int:
            return item

        with pytest.raises(error, match=message):
            await run_pipeline(source(), stage, stage, **kwargs)

    run_virtual(main)
    assert read == []


def test_pipeline_bad_stages_and_sources(run_virtual: Any) -> None:
    async def main() -> None:
        async def stage(item: int) -> int:
            return item

        with pytest.raises(TypeError, match="at least one stage"):
            await run_pipeline([1])
        with pytest.raises(TypeError, match="async callable"):
            await run_pipeline([1], stage, "not a function")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="iterable"):
            await run_pipeline(42, stage)  # type: ignore[arg-type]

    run_virtual(main)


# --- a cancellation that user code turns into an error -------------------------------

# What a handler or stage may make of the CancelledError that stops its worker:
# a cleanup that raises in ``finally``, an ``except CancelledError`` that raises
# something else, or one that swallows it and returns.
TURNS = ["raises in finally", "converts", "swallows"]
NO_CANCELLING = "Task.cancelling() is 3.11+: on 3.8-3.10 consume() cannot tell (see the chapter)"


def _turning(
    behaviour: str, started: asyncio.Event, cleaned: List[Any]
) -> Callable[[Any], Awaitable[Any]]:
    async def handle(item: Any) -> Any:
        started.set()
        try:
            await asyncio.sleep(HANG)
        except asyncio.CancelledError:
            cleaned.append(item)
            if behaviour == "converts":
                raise OSError(f"goodbye failed for {item!r}") from None
            if behaviour == "swallows":
                return item
            raise
        finally:
            if behaviour == "raises in finally":
                raise OSError(f"goodbye failed for {item!r}")
        return item

    return handle


async def _outcome(task: asyncio.Task[Any]) -> str:
    """How *task* ended within HANG seconds; "hung" (after ending every task) if it did not."""
    done, _ = await asyncio.wait([task], timeout=HANG)
    if not done:
        # End every task, so that only the caller's assertion reports the hang.
        while True:
            current = asyncio.current_task()
            others = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
            if not others:
                return "hung"
            for other in others:
                other.cancel()
            await asyncio.wait(others, timeout=1)
    if task.cancelled():
        return "cancelled"
    error = task.exception()
    return f"failed: {error!r}" if error else f"returned {task.result()!r}"


@pytest.mark.skipif(sys.version_info < (3, 11), reason=NO_CANCELLING)
@pytest.mark.parametrize("behaviour", TURNS)
def test_a_cancelled_consumer_ends_cancelled_whatever_the_handler_makes_of_it(
    run_virtual: Any, behaviour: str
) -> None:
    """The handler's error is reported, but the consumer takes no further item."""

    async def main() -> Any:
        started = asyncio.Event()
        cleaned: List[Any] = []
        failed: List[Tuple[Any, str]] = []
        queue: asyncio.Queue[Any] = asyncio.Queue()
        for item in ("first", "second"):
            queue.put_nowait(item)
        task = asyncio.create_task(
            consume(
                queue,
                _turning(behaviour, started, cleaned),
                on_error=lambda item, exc: failed.append((item, type(exc).__name__)),
            )
        )
        await started.wait()
        task.cancel()
        return await _outcome(task), cleaned, failed, queue.qsize()

    outcome, cleaned, failed, left = run_virtual(main)
    assert (outcome, cleaned, left) == ("cancelled", ["first"], 1)
    assert failed == ([] if behaviour == "swallows" else [("first", "OSError")])


@pytest.mark.parametrize("timeout", [None, 60.0])
@pytest.mark.parametrize("behaviour", TURNS)
def test_a_cancelled_pipeline_ends_whatever_a_stage_makes_of_the_cancellation(
    run_virtual: Any, caplog: pytest.LogCaptureFixture, behaviour: str, timeout: Any
) -> None:
    """The pipeline's own shutdown: every version, with or without a timeout."""

    async def main() -> Any:
        started = asyncio.Event()
        cleaned: List[Any] = []
        stage = _turning(behaviour, started, cleaned)
        task = asyncio.create_task(run_pipeline(range(10), stage, workers=2, timeout=timeout))
        await started.wait()
        await asyncio.sleep(0.1)  # both workers are inside an item
        task.cancel()
        return await _outcome(task), sorted(cleaned)

    with caplog.at_level(logging.ERROR, logger="recipes.queues"):
        assert run_virtual(main) == ("cancelled", [0, 1])
    # Nothing is lost silently: each stage error is logged with its item.
    logged = [(r.exc_info[0] if r.exc_info else None) for r in caplog.records]
    assert logged == ([] if behaviour == "swallows" else [OSError, OSError])


@pytest.mark.skipif(sys.version_info < (3, 11), reason=NO_CANCELLING)
def test_asyncio_run_ends_a_leftover_consumer_whose_handler_cleanup_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    workers: List[asyncio.Task[None]] = []
    failed: List[Any] = []

    async def handle(item: str) -> None:
        try:
            await asyncio.sleep(HANG)
        finally:
            raise ConnectionResetError(f"{item}: goodbye failed")

    async def main() -> None:
        queue: asyncio.Queue[str] = asyncio.Queue()
        for item in ("job", "next job"):
            queue.put_nowait(item)
        on_error = lambda item, exc: failed.append(item)  # noqa: E731
        workers.append(asyncio.create_task(consume(queue, handle, on_error=on_error)))
        while queue.qsize() > 1:
            await asyncio.sleep(0)
        # main() returns with the consumer inside "job": asyncio.run() cancels it

    assert asyncio_run_returns(main), "asyncio.run() hung in its shutdown"
    assert workers[0].cancelled()
    assert failed == ["job"]


@pytest.mark.parametrize("timeout", [None, 60.0])
def test_asyncio_run_ends_a_leftover_pipeline_whose_stage_cleanup_raises(
    caplog: pytest.LogCaptureFixture, timeout: Any
) -> None:
    """Every version: on 3.8-3.10 through run_pipeline's own shutdown."""
    pipelines: List[asyncio.Task[Any]] = []
    cleaned: List[int] = []

    async def stage(item: int) -> int:
        try:
            await asyncio.sleep(HANG)
        finally:
            cleaned.append(item)
            raise ConnectionResetError(f"{item}: goodbye failed")

    async def main() -> None:
        pipeline = run_pipeline(range(10), stage, workers=2, timeout=timeout)
        pipelines.append(asyncio.create_task(pipeline))
        while len(asyncio.all_tasks()) < 5:  # main, the pipeline, its feeder, 2 workers
            await asyncio.sleep(0)
        await asyncio.sleep(0.01)  # both workers are inside an item
        # main() returns with the pipeline running: asyncio.run() cancels every task

    with caplog.at_level(logging.ERROR, logger="recipes.queues"):
        assert asyncio_run_returns(main), "asyncio.run() hung in its shutdown"
    assert pipelines[0].cancelled()
    assert len(cleaned) <= 4  # each worker started at most one more item
    assert cleaned[:2] in ([0, 1], [1, 0])


def test_a_timeout_inside_the_handler_is_an_ordinary_failure(run_virtual: Any) -> None:
    """A timeout that cancels its own task (asyncio.timeout, async-timeout, which
    aiohttp uses on 3.8-3.10) is not a cancellation of the consumer, although
    its TimeoutError carries a CancelledError as __context__."""
    if sys.version_info >= (3, 11):
        timeout: Any = asyncio.timeout
    else:
        timeout = pytest.importorskip(
            "async_timeout", reason="async-timeout (an aiohttp dependency) is not installed"
        ).timeout

    async def main() -> Any:
        handled: List[str] = []
        failed: List[Tuple[str, Any]] = []

        async def handle(item: str) -> None:
            async with timeout(1):
                await asyncio.sleep(HANG if item == "slow" else 0.1)
            handled.append(item)

        queue: asyncio.Queue[Any] = asyncio.Queue()
        for item in ("slow", "fast", STOP):
            queue.put_nowait(item)
        record = lambda item, exc: failed.append((item, exc))  # noqa: E731
        await asyncio.wait_for(consume(queue, handle, on_error=record), HANG)
        return handled, failed

    handled, failed = run_virtual(main)
    assert handled == ["fast"]
    [(item, error)] = failed
    assert item == "slow" and isinstance(error, asyncio.TimeoutError)
    assert isinstance(error.__context__, asyncio.CancelledError)
