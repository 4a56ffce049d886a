"""Behaviour, fault, cancellation and bad-input tests for recipes/async_iteration.py."""

from __future__ import annotations

import asyncio
import builtins
import sys
from typing import Any, AsyncIterator, Dict, List, Optional, Tuple

import pytest

from recipes.async_iteration import (
    Paginator,
    aclosing,
    amerge,
    batched,
    compat_aiter,
    compat_anext,
    ticker,
    timeout_per_item,
)


async def numbers(
    count: int, log: Optional[List[str]] = None, name: str = "n"
) -> AsyncIterator[int]:
    """Yield 0..count-1 with no delay; record start and cleanup in ``log``."""
    if log is not None:
        log.append(f"{name} started")
    try:
        for i in range(count):
            yield i
    finally:
        if log is not None:
            log.append(f"{name} closed")


async def paced(
    name: str, delays: List[float], log: Optional[List[str]] = None, cleanup_delay: float = 0
) -> AsyncIterator[str]:
    """Yield ``name0``, ``name1``... each after its delay; slow async cleanup optional."""
    try:
        for i, delay in enumerate(delays):
            await asyncio.sleep(delay)
            yield f"{name}{i}"
    finally:
        if cleanup_delay:
            await asyncio.sleep(cleanup_delay)
        if log is not None:
            log.append(f"{name} closed")


async def forever(name: str, log: List[str], delay: float = 0.1) -> AsyncIterator[str]:
    try:
        while True:
            await asyncio.sleep(delay)
            yield name
    finally:
        log.append(f"{name} closed")


async def failing(after: int, exc: BaseException, delay: float = 0.1) -> AsyncIterator[int]:
    for i in range(after):
        await asyncio.sleep(delay)
        yield i
    await asyncio.sleep(delay)
    raise exc


class CountingIterator:
    """A class-based async iterator without ``aclose``."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.i = 0

    def __aiter__(self) -> CountingIterator:
        return self

    async def __anext__(self) -> int:
        if self.i >= self.count:
            raise StopAsyncIteration
        self.i += 1
        await asyncio.sleep(0)
        return self.i - 1


def only_current_task_left() -> bool:
    return asyncio.all_tasks() == {asyncio.current_task()}


# --- the stdlib behaviour the chapter describes -------------------------------


def test_abandoned_generator_is_not_closed_until_aclose(run_virtual: Any) -> None:
    async def main() -> List[str]:
        log: List[str] = []
        gen = numbers(3, log)
        async for _ in gen:
            break
        await asyncio.sleep(0.1)
        log.append("after loop")
        await gen.aclose()
        return log

    assert run_virtual(main) == ["n started", "after loop", "n closed"]


def test_stop_iteration_in_anext_becomes_runtime_error(run_virtual: Any) -> None:
    class Wrong:
        def __aiter__(self) -> Wrong:
            return self

        async def __anext__(self) -> int:
            raise StopIteration

    async def main() -> None:
        async for _ in Wrong():
            pass

    with pytest.raises(RuntimeError):
        run_virtual(main)


@pytest.mark.skipif(
    sys.version_info < (3, 10), reason="aiter()/anext() builtins need Python >= 3.10"
)
def test_compat_functions_match_builtins(run_virtual: Any) -> None:
    async def main() -> Tuple[Any, Any]:
        builtin_it = builtins.aiter(numbers(2))
        compat_it = compat_aiter(numbers(2))
        builtin = [
            await builtins.anext(builtin_it),
            await builtins.anext(builtin_it),
            await builtins.anext(builtin_it, "end"),
        ]
        compat = [
            await compat_anext(compat_it),
            await compat_anext(compat_it),
            await compat_anext(compat_it, "end"),
        ]
        return builtin, compat

    builtin, compat = run_virtual(main)
    assert builtin == compat == [0, 1, "end"]


# --- Paginator ------------------------------------------------------------------


def make_api(pages: Dict[Any, Tuple[List[int], Any]], calls: List[Any]) -> Any:
    async def fetch(cursor: Any) -> Tuple[List[int], Any]:
        calls.append(cursor)
        await asyncio.sleep(0.1)
        return pages[cursor]

    return fetch


def test_paginator_walks_all_pages_lazily(run_virtual: Any) -> None:
    async def main() -> Any:
        calls: List[Any] = []
        pages = Paginator(make_api({None: ([1, 2], 1), 1: ([3], None)}, calls))
        first = await compat_anext(pages)
        after_first = (pages.pages_fetched, list(calls))
        rest = [item async for item in pages]
        again = [item async for item in pages]  # exhausted stays exhausted
        return first, after_first, rest, again, pages.pages_fetched, calls

    assert run_virtual(main) == (1, (1, [None]), [2, 3], [], 2, [None, 1])


def test_paginator_skips_empty_pages_and_handles_empty_api(run_virtual: Any) -> None:
    async def main() -> Any:
        calls: List[Any] = []
        skipping = Paginator(make_api({None: ([], "a"), "a": ([], "b"), "b": ([7], None)}, calls))
        empty = Paginator(make_api({None: ([], None)}, []))
        return [x async for x in skipping], [x async for x in empty], empty.pages_fetched

    assert run_virtual(main) == ([7], [], 1)


def test_paginator_timeout_then_retry_same_page(run_virtual: Any) -> None:
    async def main() -> Any:
        calls: List[Any] = []

        async def flaky(cursor: Any) -> Tuple[List[int], Any]:
            calls.append(cursor)
            if len(calls) == 2:  # the second request hangs once
                await asyncio.sleep(3600)
            return {None: ([1], "x"), "x": ([2], None)}[cursor]

        pages = Paginator(flaky, timeout=1)
        got = [await compat_anext(pages)]
        with pytest.raises(asyncio.TimeoutError):
            await compat_anext(pages)
        got += [x async for x in pages]
        return got, calls

    assert run_virtual(main) == ([1, 2], [None, "x", "x"])


def test_paginator_never_loses_a_cancellation_that_comes_with_a_page(run_virtual: Any) -> None:
    # asyncio.wait_for on 3.8-3.11 returned the page here and dropped the cancellation
    # (CPython gh-86296): the cancelled consumer went on reading pages.
    async def main() -> Any:
        calls: List[Any] = []
        consumed: List[int] = []
        pages = {None: ([1, 2], "x"), "x": ([3, 4], "y"), "y": ([5], None)}

        async def fetch(cursor: Any) -> Tuple[List[int], Any]:
            calls.append(cursor)
            await asyncio.sleep(0.1)
            if calls == [None, "x"]:  # the consumer is cancelled as this page arrives
                assert consumer.cancel()
            return pages[cursor]

        paginator = Paginator(fetch, timeout=5)

        async def consume() -> None:
            async for item in paginator:
                consumed.append(item)
                await asyncio.sleep(0.01)

        consumer = asyncio.ensure_future(consume())
        await asyncio.wait({consumer})
        cancelled = consumer.cancelled()
        # Iterating again carries on where the cancellation stopped it, no page skipped.
        rest = [item async for item in paginator]
        return cancelled, consumed + rest, calls

    cancelled, items, calls = run_virtual(main)
    assert cancelled
    assert items == [1, 2, 3, 4, 5]
    assert calls[:2] == [None, "x"] and calls[-1] == "y"


def test_paginator_cancelled_mid_fetch_waits_for_the_fetch_to_clean_up(
    run_virtual: Any,
) -> None:
    async def main() -> Any:
        log: List[str] = []

        async def slow(cursor: Any) -> Tuple[List[int], Any]:
            try:
                await asyncio.sleep(3600)
            finally:
                await asyncio.sleep(0.1)  # a cleanup that takes a while
                log.append("fetch cleaned up")
            return [1], None

        async def consume() -> None:
            async for _ in Paginator(slow, timeout=10):
                log.append("item")

        consumer = asyncio.ensure_future(consume())
        await asyncio.sleep(1)
        consumer.cancel()
        await asyncio.wait({consumer})
        log.append("consumer done")
        return consumer.cancelled(), log, asyncio.all_tasks() == {asyncio.current_task()}

    assert run_virtual(main) == (True, ["fetch cleaned up", "consumer done"], True)


def test_paginator_fetch_error_propagates(run_virtual: Any) -> None:
    async def broken(cursor: Any) -> Tuple[List[int], Any]:
        raise ConnectionError("down")

    async def main() -> None:
        [x async for x in Paginator(broken)]

    with pytest.raises(ConnectionError, match="down"):
        run_virtual(main)


@pytest.mark.parametrize(
    ("kwargs", "exc"),
    [({"fetch_page": 5}, TypeError), ({"timeout": 0}, ValueError), ({"timeout": -1}, ValueError)],
)
def test_paginator_bad_arguments(kwargs: Dict[str, Any], exc: type) -> None:
    async def fetch(cursor: Any) -> Tuple[List[int], Any]:
        return [], None

    arguments: Dict[str, Any] = {"fetch_page": fetch, **kwargs}
    fetch_page = arguments.pop("fetch_page")
    with pytest.raises(exc):
        Paginator(fetch_page, **arguments)


# --- ticker ---------------------------------------------------------------------


def tick_times(interval: float, count: int, work: Any = 0.0) -> Any:
    async def main() -> List[Tuple[int, float]]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        seen = []
        async for tick in ticker(interval, count=count):
            seen.append((tick, round(loop.time() - start, 1)))
            await asyncio.sleep(work(tick) if callable(work) else work)
        return seen

    return main


def test_ticker_is_drift_free(run_virtual: Any) -> None:
    assert run_virtual(tick_times(0.5, 4, work=0.3)) == [(0, 0.0), (1, 0.5), (2, 1.0), (3, 1.5)]


def test_ticker_skips_missed_ticks(run_virtual: Any) -> None:
    slow_first = tick_times(0.5, 5, work=lambda tick: 1.1 if tick == 0 else 0)
    assert run_virtual(slow_first) == [(0, 0.0), (2, 1.1), (3, 1.5), (4, 2.0)]


def test_ticker_late_by_less_than_an_interval_skips_nothing(run_virtual: Any) -> None:
    slightly_late = tick_times(0.5, 3, work=lambda tick: 0.7 if tick == 0 else 0)
    assert run_virtual(slightly_late) == [(0, 0.0), (1, 0.7), (2, 1.0)]


def test_ticker_count_zero_and_endless(run_virtual: Any) -> None:
    async def main() -> Tuple[List[int], List[int]]:
        none = [t async for t in ticker(1, count=0)]
        endless = []
        async with aclosing(ticker(0.05)) as ticks:
            async for tick in ticks:
                endless.append(tick)
                if tick == 9:
                    break
        return none, endless

    none, endless = run_virtual(main)
    assert none == []
    assert endless == list(range(10))


@pytest.mark.parametrize(
    ("interval", "count", "exc"),
    [
        (0, None, ValueError),
        (-1, None, ValueError),
        (float("nan"), None, ValueError),
        ("1", None, TypeError),
        (True, None, TypeError),
        (1, -1, ValueError),
        (1, 1.5, TypeError),
        (1, True, TypeError),
    ],
)
def test_ticker_bad_arguments(interval: Any, count: Any, exc: type) -> None:
    with pytest.raises(exc):
        ticker(interval, count=count)


# --- aclosing -----------------------------------------------------------------


def test_aclosing_closes_on_break_error_and_cancel(run_virtual: Any) -> None:
    async def main() -> List[str]:
        log: List[str] = []
        async with aclosing(numbers(5, log, "break")) as gen:
            async for _ in gen:
                break
        log.append("after break")
        with pytest.raises(KeyError):
            async with aclosing(numbers(5, log, "error")) as gen:
                async for _ in gen:
                    raise KeyError

        async def consumer() -> None:
            async with aclosing(forever("cancel", log)) as gen:
                async for _ in gen:
                    pass

        task = asyncio.ensure_future(consumer())
        await asyncio.sleep(0.35)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with aclosing(numbers(0)) as gen:  # never started: nothing to do
            pass
        return log

    assert run_virtual(main) == [
        "break started",
        "break closed",
        "after break",
        "error started",
        "error closed",
        "cancel closed",
    ]


def test_aclosing_returns_the_object_and_does_not_suppress(run_virtual: Any) -> None:
    class Closable:
        closed = 0

        async def aclose(self) -> None:
            self.closed += 1

    async def main() -> int:
        thing = Closable()
        with pytest.raises(ValueError):
            async with aclosing(thing) as entered:
                assert entered is thing
                raise ValueError
        return thing.closed

    assert run_virtual(main) == 1


# --- compat_aiter / compat_anext --------------------------------------------------


def test_compat_aiter_and_anext_on_class_iterator(run_virtual: Any) -> None:
    async def main() -> List[Any]:
        it = compat_aiter(CountingIterator(2))
        return [await compat_anext(it), await compat_anext(it), await compat_anext(it, None)]

    assert run_virtual(main) == [0, 1, None]


def test_compat_anext_without_default_raises_stop(run_virtual: Any) -> None:
    async def main() -> None:
        await compat_anext(compat_aiter(numbers(0)))

    with pytest.raises(StopAsyncIteration):
        run_virtual(main)


def test_compat_anext_default_can_be_none_or_falsy(run_virtual: Any) -> None:
    async def main() -> List[Any]:
        it = numbers(0)
        return [
            await compat_anext(it, None),
            await compat_anext(it, 0),
            await compat_anext(it, ""),
        ]

    assert run_virtual(main) == [None, 0, ""]


def test_compat_type_errors() -> None:
    class BadAiter:
        def __aiter__(self) -> int:
            return 5

    with pytest.raises(TypeError, match="not an async iterable"):
        compat_aiter([1, 2])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not an async iterator"):
        compat_aiter(BadAiter())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not an async iterator"):
        compat_anext(iter([1]))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not an async iterator"):
        compat_anext(numbers)  # type: ignore[arg-type]  # the function, not a generator


# --- batched ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "n", "expected"),
    [
        (0, 3, []),
        (5, 1, [[0], [1], [2], [3], [4]]),
        (6, 2, [[0, 1], [2, 3], [4, 5]]),
        (5, 2, [[0, 1], [2, 3], [4]]),
        (3, 10, [[0, 1, 2]]),
    ],
)
def test_batched_shapes(run_virtual: Any, count: int, n: int, expected: List[List[int]]) -> None:
    async def main() -> List[List[int]]:
        return [batch async for batch in batched(numbers(count), n)]

    assert run_virtual(main) == expected


def test_batched_yields_fresh_lists(run_virtual: Any) -> None:
    async def main() -> List[List[int]]:
        batches = [batch async for batch in batched(numbers(4), 2)]
        batches[0].append(99)
        return batches

    assert run_virtual(main) == [[0, 1, 99], [2, 3]]


@pytest.mark.parametrize(
    ("n", "exc"),
    [
        (0, ValueError),
        (-3, ValueError),
        (1.5, TypeError),
        ("2", TypeError),
        (True, TypeError),
        (None, TypeError),
    ],
)
def test_batched_bad_n_fails_before_touching_the_source(
    run_virtual: Any, n: Any, exc: type
) -> None:
    async def main() -> List[str]:
        log: List[str] = []
        source = numbers(3, log)
        with pytest.raises(exc):
            batched(source, n)
        await source.aclose()
        return log

    assert run_virtual(main) == []  # the source never started


def test_batched_rejects_non_async_iterables() -> None:
    with pytest.raises(TypeError, match="not an async iterable"):
        batched([1, 2, 3], 2)  # type: ignore[arg-type]


def test_batched_closes_source_when_closed_early(run_virtual: Any) -> None:
    async def main() -> List[str]:
        log: List[str] = []
        async with aclosing(batched(numbers(10, log), 3)) as batches:
            async for batch in batches:
                log.append(f"got {batch}")
                break
        log.append("after")
        return log

    assert run_virtual(main) == ["n started", "got [0, 1, 2]", "n closed", "after"]


def test_batched_source_error_propagates_and_partial_batch_is_lost(run_virtual: Any) -> None:
    async def main() -> List[List[int]]:
        got: List[List[int]] = []
        with pytest.raises(ZeroDivisionError):
            async for batch in batched(failing(3, ZeroDivisionError()), 2):
                got.append(batch)
        return got

    assert run_virtual(main) == [[0, 1]]


def test_batched_with_class_iterator(run_virtual: Any) -> None:
    async def main() -> List[List[int]]:
        return [batch async for batch in batched(CountingIterator(3), 2)]

    assert run_virtual(main) == [[0, 1], [2]]


# --- amerge -------------------------------------------------------------------


def test_amerge_yields_in_arrival_order(run_virtual: Any) -> None:
    async def main() -> List[str]:
        async with aclosing(
            amerge(paced("a", [0.3, 0.3]), paced("b", [0.1, 0.3, 0.3]), paced("c", [0.5]))
        ) as merged:
            return [item async for item in merged]

    # a: 0.3 0.6 | b: 0.1 0.4 0.7 | c: 0.5
    assert run_virtual(main) == ["b0", "a0", "b1", "c0", "a1", "b2"]


def test_amerge_items_ready_together_come_in_argument_order(run_virtual: Any) -> None:
    async def instant(name: str, n: int) -> AsyncIterator[str]:
        for i in range(n):
            yield f"{name}{i}"

    async def main() -> List[str]:
        return [item async for item in amerge(instant("a", 2), instant("b", 3), instant("c", 1))]

    assert run_virtual(main) == ["a0", "b0", "c0", "a1", "b1", "b2"]


def test_amerge_empty_cases(run_virtual: Any) -> None:
    async def main() -> Tuple[List[int], List[int], List[int]]:
        nothing = [x async for x in amerge()]
        empties = [x async for x in amerge(numbers(0), numbers(0))]
        one = [x async for x in amerge(numbers(3))]
        return nothing, empties, one

    assert run_virtual(main) == ([], [], [0, 1, 2])


def test_amerge_all_items_from_many_sources(run_virtual: Any) -> None:
    async def main() -> List[int]:
        sources = [numbers(20) for _ in range(30)]
        got = [x async for x in amerge(*sources, CountingIterator(5))]
        assert only_current_task_left()
        return sorted(got)

    assert run_virtual(main) == sorted(list(range(20)) * 30 + list(range(5)))


def test_amerge_does_not_run_ahead_of_the_consumer(run_virtual: Any) -> None:
    async def main() -> List[Tuple[int, int]]:
        produced: List[int] = []

        async def source() -> AsyncIterator[int]:
            for i in range(5):
                produced.append(i)
                yield i

        seen = []
        async for item in amerge(source()):
            await asyncio.sleep(0.1)  # a slow consumer
            seen.append((item, len(produced)))
        return seen

    assert run_virtual(main) == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]


def test_amerge_closes_all_sources_when_consumer_stops_early(run_virtual: Any) -> None:
    async def main() -> List[str]:
        log: List[str] = []
        async with aclosing(
            amerge(forever("x", log), forever("y", log, 0.25), numbers(100, log, "z"))
        ) as merged:
            async for _ in merged:
                break
        log.append("after")
        assert only_current_task_left()
        return log

    log = run_virtual(main)
    assert log[-1] == "after"
    assert sorted(log[:-1]) == ["x closed", "y closed", "z closed", "z started"]


def test_amerge_closes_all_sources_when_consumer_is_cancelled(run_virtual: Any) -> None:
    async def main() -> Tuple[List[str], List[str], bool]:
        log: List[str] = []
        got: List[str] = []

        async def consumer() -> None:
            async with aclosing(amerge(forever("x", log, 0.3), paced("y", [0.1, 10], log))) as m:
                async for item in m:
                    got.append(item)

        task = asyncio.ensure_future(consumer())
        await asyncio.sleep(0.5)
        task.cancel()
        await asyncio.wait({task})
        assert only_current_task_left()
        return sorted(log), got, task.cancelled()

    assert run_virtual(main) == (["x closed", "y closed"], ["y0", "x"], True)


def test_amerge_cancelled_without_aclosing_still_cleans_up(run_virtual: Any) -> None:
    # Cancellation is thrown into amerge at its await, so its finally runs even
    # when the consumer does not wrap it in aclosing().
    async def main() -> Tuple[List[str], bool]:
        log: List[str] = []

        async def consumer() -> None:
            async for _ in amerge(forever("x", log), forever("y", log)):
                pass

        task = asyncio.ensure_future(consumer())
        await asyncio.sleep(0.25)
        task.cancel()
        await asyncio.wait({task})
        assert only_current_task_left()
        return sorted(log), task.cancelled()

    assert run_virtual(main) == (["x closed", "y closed"], True)


def test_amerge_finishes_slow_cleanup_even_if_cancelled_twice(run_virtual: Any) -> None:
    async def main() -> Tuple[List[str], bool]:
        log: List[str] = []

        async def consumer() -> None:
            merged = amerge(
                paced("a", [10], log, cleanup_delay=1), paced("b", [10], log, cleanup_delay=1)
            )
            async for _ in merged:
                pass

        task = asyncio.ensure_future(consumer())
        await asyncio.sleep(0.1)
        task.cancel()  # amerge starts cancelling its sources...
        await asyncio.sleep(0.3)
        task.cancel()  # ...and is cancelled again while they clean up
        await asyncio.wait({task})
        assert only_current_task_left()
        return sorted(log), task.cancelled()

    assert run_virtual(main) == (["a closed", "b closed"], True)


def record_tasks() -> List[Any]:
    """Record every task created on the running loop from now on."""
    created: List[Any] = []

    def factory(loop: Any, coro: Any, **kwargs: Any) -> Any:
        task = asyncio.Task(coro, loop=loop, **kwargs)
        created.append(task)
        return task

    asyncio.get_running_loop().set_task_factory(factory)
    return created


def unretrieved_exceptions(tasks: List[Any]) -> List[Any]:
    """Tasks that would log "Task exception was never retrieved" when collected."""
    return [t for t in tasks if t.done() and not t.cancelled() and t._log_traceback]


def test_amerge_source_error_cancels_and_closes_the_others(run_virtual: Any) -> None:
    async def main() -> Tuple[List[str], List[str], List[Any]]:
        created = record_tasks()
        log: List[str] = []
        got: List[str] = []
        with pytest.raises(ConnectionResetError):
            async for item in amerge(
                forever("x", log, 0.25), failing(2, ConnectionResetError(), 0.2)
            ):
                got.append(str(item))
        assert only_current_task_left()
        return sorted(log), got, unretrieved_exceptions(created)

    assert run_virtual(main) == (["x closed"], ["0", "x", "1", "x"], [])


def test_amerge_two_failing_sources(run_virtual: Any) -> None:
    # The first failure propagates; the second is marked retrieved, so it is never logged.
    async def main() -> Tuple[int, List[Any]]:
        created = record_tasks()
        with pytest.raises(KeyError):
            async for _ in amerge(failing(0, KeyError(), 0.1), failing(0, ValueError(), 0.1)):
                pass
        assert only_current_task_left()
        return len(created), unretrieved_exceptions(created)

    assert run_virtual(main) == (2, [])


async def bad_cleanup(log: List[str]) -> AsyncIterator[str]:
    try:
        while True:
            await asyncio.sleep(0.1)
            yield "bad"
    finally:
        log.append("bad cleanup")
        raise OSError("cleanup failed")


def test_amerge_reports_a_source_cleanup_error_after_closing_the_rest(run_virtual: Any) -> None:
    async def main() -> Tuple[List[str], List[Any]]:
        created = record_tasks()
        log: List[str] = []
        with pytest.raises(OSError, match="cleanup failed"):
            async with aclosing(
                amerge(numbers(5, log, "z"), bad_cleanup(log), forever("x", log))
            ) as merged:
                async for _ in merged:
                    break
        assert only_current_task_left()
        return sorted(log), unretrieved_exceptions(created)

    assert run_virtual(main) == (["bad cleanup", "x closed", "z closed", "z started"], [])


def test_amerge_rejects_non_iterables_before_starting_anything(run_virtual: Any) -> None:
    async def main() -> List[str]:
        log: List[str] = []
        first = numbers(3, log)
        with pytest.raises(TypeError, match="not an async iterable"):
            amerge(first, [1, 2])  # type: ignore[arg-type]
        await first.aclose()
        return log

    assert run_virtual(main) == []


def test_amerge_same_iterator_twice_is_rejected_by_the_generator(run_virtual: Any) -> None:
    # Passing one generator twice makes two tasks call __anext__ at once; the
    # generator itself refuses ("asynchronous generator is already running").
    async def main() -> None:
        gen = paced("a", [0.1, 0.1])
        async for _ in amerge(gen, gen):
            pass

    with pytest.raises(RuntimeError, match="already running"):
        run_virtual(main)


# --- timeout_per_item ---------------------------------------------------------


def test_timeout_per_item_passes_items_through(run_virtual: Any) -> None:
    async def main() -> List[str]:
        return [x async for x in timeout_per_item(paced("a", [0.4, 0.4, 0.4]), 0.5)]

    assert run_virtual(main) == ["a0", "a1", "a2"]


def test_timeout_per_item_does_not_count_consumer_time(run_virtual: Any) -> None:
    async def main() -> List[int]:
        got = []
        async for x in timeout_per_item(numbers(3), 0.2):
            await asyncio.sleep(0.3)
            got.append(x)
        return got

    assert run_virtual(main) == [0, 1, 2]


def test_timeout_per_item_raises_and_closes_source(run_virtual: Any) -> None:
    async def main() -> Tuple[List[str], List[str], float]:
        loop = asyncio.get_running_loop()
        log: List[str] = []
        got: List[str] = []
        start = loop.time()
        with pytest.raises(asyncio.TimeoutError, match=r"no item within 0\.5 seconds"):
            async for x in timeout_per_item(paced("a", [0.1, 0.2, 30], log), 0.5):
                got.append(x)
        assert only_current_task_left()
        return log, got, round(loop.time() - start, 1)

    assert run_virtual(main) == (["a closed"], ["a0", "a1"], 0.8)


def test_timeout_per_item_consumer_cancelled(run_virtual: Any) -> None:
    async def main() -> Tuple[List[str], bool]:
        log: List[str] = []

        async def consumer() -> None:
            async for _ in timeout_per_item(forever("x", log, 0.2), 1):
                pass

        task = asyncio.ensure_future(consumer())
        await asyncio.sleep(0.5)
        task.cancel()
        await asyncio.wait({task})
        assert only_current_task_left()
        return log, task.cancelled()

    assert run_virtual(main) == (["x closed"], True)


def test_timeout_per_item_closed_early(run_virtual: Any) -> None:
    async def main() -> List[str]:
        log: List[str] = []
        async with aclosing(timeout_per_item(forever("x", log), 1)) as items:
            async for _ in items:
                break
        log.append("after")
        return log

    assert run_virtual(main) == ["x closed", "after"]


def test_timeout_per_item_source_error_propagates(run_virtual: Any) -> None:
    async def main() -> List[int]:
        got = []
        with pytest.raises(OSError):
            async for x in timeout_per_item(failing(2, OSError("gone")), 1):
                got.append(x)
        return got

    assert run_virtual(main) == [0, 1]


def test_timeout_per_item_source_cleanup_error_is_not_lost(run_virtual: Any) -> None:
    async def main() -> Tuple[List[str], List[Any]]:
        created = record_tasks()
        log: List[str] = []
        with pytest.raises(OSError, match="cleanup failed"):
            async for _ in timeout_per_item(bad_cleanup(log), 0.05):
                pass
        assert only_current_task_left()
        return log, unretrieved_exceptions(created)

    assert run_virtual(main) == (["bad cleanup"], [])


@pytest.mark.parametrize(
    ("timeout", "exc"),
    [(0, ValueError), (-1, ValueError), (None, TypeError), ("1", TypeError), (True, TypeError)],
)
def test_timeout_per_item_bad_timeout(timeout: Any, exc: type) -> None:
    with pytest.raises(exc):
        timeout_per_item(numbers(1), timeout)
