"""Behaviour, fault, bad-input and load tests for recipes/logging_context.py."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import random
import sys
import threading
import warnings
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from logging.handlers import QueueHandler
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

from recipes.logging_context import (
    ContextFilter,
    Span,
    TaskNameFilter,
    Tracer,
    create_task_in_context,
    log_when_failed,
    queue_logging,
    request_id,
    request_scope,
    run_in_executor_with_context,
)
from tests.conftest import loop_errors

# Generous timeouts on the virtual clock: they cost no wall time, and they turn
# a hang into a failure instead of a stuck test run.
HANG = 3600.0


class Collect(logging.Handler):
    """Keeps every record it handles (thread-safe: Handler.handle takes a lock)."""

    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.records: List[logging.LogRecord] = []
        self.threads: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.threads.add(threading.current_thread().name)


_counter = iter(range(1_000_000))


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    """A fresh logger of its own, INFO and up, not propagating; handlers removed after."""
    log = logging.getLogger(f"tests.logging_context.{next(_counter)}")
    log.setLevel(logging.INFO)
    log.propagate = False
    before = list(log.handlers)  # pytest's own capture handlers, on some versions
    yield log
    for handler in list(log.handlers):
        if handler not in before:
            log.removeHandler(handler)


def no_queue_handler(log: logging.Logger) -> bool:
    return not any(isinstance(h, QueueHandler) for h in log.handlers)


def tagged(log: logging.Logger, *filters: logging.Filter) -> Collect:
    handler = Collect()
    for record_filter in filters or (ContextFilter(),):
        handler.addFilter(record_filter)
    log.addHandler(handler)
    return handler


def listener_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith("Thread-"))


# --- request ids and ContextFilter ---------------------------------------------


def test_a_thousand_concurrent_requests_keep_their_ids_apart(
    run_virtual: Any, logger: logging.Logger
) -> None:
    handler = tagged(logger)

    async def handle(number: int, rng: random.Random) -> None:
        with request_scope(f"r-{number}"):
            for step in range(3):
                logger.info("request %d step %d", number, step)
                await asyncio.sleep(round(rng.random(), 3))

    async def main() -> None:
        rng = random.Random(13)
        await asyncio.wait_for(asyncio.gather(*(handle(n, rng) for n in range(1000))), HANG)

    run_virtual(main)
    assert len(handler.records) == 3000
    for record in handler.records:
        assert record.request_id == f"r-{record.args[0]}"  # type: ignore[attr-defined,index]
    assert Counter(r.request_id for r in handler.records) == {  # type: ignore[attr-defined]
        f"r-{n}": 3 for n in range(1000)
    }


def test_ids_do_not_leak_into_tasks_started_outside_a_request(
    run_virtual: Any, logger: logging.Logger
) -> None:
    handler = tagged(logger)

    async def monitor(stop: asyncio.Event) -> None:
        while not stop.is_set():
            logger.info("monitor")
            await asyncio.sleep(0.05)

    async def handle(number: int) -> None:
        with request_scope(f"r-{number}"):
            await asyncio.sleep(0.01 * (number % 7))
            logger.info("handled")

    async def main() -> None:
        stop = asyncio.Event()
        outside = asyncio.create_task(monitor(stop))  # started before any request
        late: List[asyncio.Task[None]] = []
        loop = asyncio.get_running_loop()
        # A callback scheduled outside any request starts a task while requests run.
        loop.call_later(0.02, lambda: late.append(asyncio.ensure_future(monitor(stop))))
        await asyncio.gather(*(handle(n) for n in range(200)))
        logger.info("after")
        stop.set()
        await asyncio.wait_for(asyncio.gather(outside, *late), HANG)
        assert late, "the late monitor never started"

    run_virtual(main)
    by_message: Dict[str, set[str]] = defaultdict(set)
    for record in handler.records:
        by_message[record.getMessage()].add(record.request_id)  # type: ignore[attr-defined]
    assert by_message["monitor"] == {"-"}
    assert by_message["after"] == {"-"}
    assert by_message["handled"] == {f"r-{n}" for n in range(200)}


def test_request_scope_restores_the_previous_id_even_on_errors() -> None:
    with request_scope("outer"):
        with pytest.raises(KeyError):
            with request_scope("inner"):
                assert request_id.get() == "inner"
                raise KeyError("boom")
        assert request_id.get() == "outer"
    assert request_id.get() == "-"


def test_request_scope_makes_up_distinct_ids() -> None:
    ids = set()
    for _ in range(1000):
        with request_scope() as rid:
            ids.add(rid)
    assert len(ids) == 1000


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (42, TypeError),
        ("", ValueError),
        ("x" * 129, ValueError),
        ("has space", ValueError),
        ("line\nbreak", ValueError),
        ("bell\x07", ValueError),
    ],
)
def test_request_scope_refuses_bad_ids(value: Any, error: type) -> None:
    with pytest.raises(error):
        with request_scope(value):
            pass  # pragma: no cover
    assert request_id.get() == "-"


def test_context_filter_fills_custom_fields_and_keeps_existing_ones() -> None:
    tenant: contextvars.ContextVar[str] = contextvars.ContextVar("tenant")
    with_default: contextvars.ContextVar[int] = contextvars.ContextVar("n", default=7)
    tags = ContextFilter({"tenant": tenant, "n": with_default}, default="?")
    record = logging.makeLogRecord({"msg": "x"})
    assert tags.filter(record) is True
    assert (record.tenant, record.n) == ("?", 7)  # type: ignore[attr-defined]
    token = tenant.set("acme")
    try:
        record = logging.makeLogRecord({"msg": "x", "n": 1})
        tags.filter(record)
        assert (record.tenant, record.n) == ("acme", 1)  # type: ignore[attr-defined]
    finally:
        tenant.reset(token)


@pytest.mark.parametrize(
    ("fields", "error", "match"),
    [
        ({"msg": request_id}, ValueError, "LogRecord attribute"),
        ({"taskName": request_id}, ValueError, "LogRecord attribute"),
        ({"not an identifier": request_id}, ValueError, "identifiers"),
        ({"rid": "request_id"}, TypeError, "must be a ContextVar"),
    ],
)
def test_context_filter_refuses_bad_fields(fields: Any, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        ContextFilter(fields)


def test_extra_overrides_the_context(logger: logging.Logger) -> None:
    handler = tagged(logger)
    with request_scope("r-1"):
        logger.info("replay", extra={"request_id": "r-0"})
    assert handler.records[0].request_id == "r-0"  # type: ignore[attr-defined]


# --- what tasks, callbacks, executors and threads see ---------------------------


def test_callbacks_see_the_context_of_when_they_were_scheduled(run_virtual: Any) -> None:
    async def main() -> Dict[str, str]:
        seen: Dict[str, str] = {}
        loop = asyncio.get_running_loop()

        def note(where: str) -> None:
            seen[where] = request_id.get()

        future = loop.create_future()
        with request_scope("r-1"):
            loop.call_soon(note, "call_soon")
            loop.call_later(0.1, note, "call_later")
            future.add_done_callback(lambda _: note("done"))
        with request_scope("r-2"):
            future.set_result(None)  # completion happens in another request
        future2 = loop.create_future()
        future2.add_done_callback(lambda _: note("done outside"))
        with request_scope("r-3"):
            future2.set_result(None)
        await asyncio.sleep(0.2)
        return seen

    assert run_virtual(main) == {
        "call_soon": "r-1",
        "call_later": "r-1",
        "done": "r-1",
        "done outside": "-",
    }


def test_run_in_executor_with_context_propagates_ids_to_threads(
    run_virtual: Any, logger: logging.Logger
) -> None:
    handler = tagged(logger)

    def blocking(number: int) -> str:
        logger.info("in thread %d", number)
        return request_id.get()

    async def handle(number: int, pool: ThreadPoolExecutor) -> str:
        with request_scope(f"r-{number}"):
            return await run_in_executor_with_context(pool, blocking, number)

    async def main() -> List[str]:
        with ThreadPoolExecutor(max_workers=4) as pool:
            return await asyncio.wait_for(
                asyncio.gather(*(handle(n, pool) for n in range(300))), HANG
            )

    assert run_virtual(main) == [f"r-{n}" for n in range(300)]
    assert "MainThread" not in handler.threads  # the records came from the workers
    for record in handler.records:
        assert record.request_id == f"r-{record.args[0]}"  # type: ignore[attr-defined,index]


def test_plain_run_in_executor_leaks_between_jobs_but_the_copy_does_not(
    run_virtual: Any,
) -> None:
    def set_id(value: str) -> None:
        request_id.set(value)

    async def main() -> Tuple[str, str, str]:
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(max_workers=1) as pool:
            await run_in_executor_with_context(pool, set_id, "r-copied")
            after_copy = await loop.run_in_executor(pool, request_id.get)
            await loop.run_in_executor(pool, set_id, "r-stale")
            after_plain = await loop.run_in_executor(pool, request_id.get)
            copied = await run_in_executor_with_context(pool, request_id.get)
        return after_copy, after_plain, copied

    assert run_virtual(main) == ("-", "r-stale", "-")


def test_run_in_executor_with_context_passes_keywords_and_exceptions(run_virtual: Any) -> None:
    def fail(*, code: int) -> None:
        raise OSError(code, "nope")

    async def main() -> None:
        with pytest.raises(OSError) as caught:
            await run_in_executor_with_context(None, fail, code=5)
        assert caught.value.errno == 5

    run_virtual(main)


def test_run_in_executor_with_context_refuses_a_process_pool(run_virtual: Any) -> None:
    async def main() -> None:
        pool = ProcessPoolExecutor(max_workers=1)
        try:
            with pytest.raises(TypeError, match="cannot cross to a process"):
                await run_in_executor_with_context(pool, print, "x")
        finally:
            pool.shutdown()

    run_virtual(main)


@pytest.mark.skipif(sys.version_info < (3, 9), reason="asyncio.to_thread needs Python >= 3.9")
def test_to_thread_copies_the_context(run_virtual: Any) -> None:
    async def main() -> List[str]:
        async def handle(number: int) -> str:
            with request_scope(f"r-{number}"):
                return await asyncio.to_thread(request_id.get)

        return await asyncio.gather(*(handle(n) for n in range(50)))

    assert run_virtual(main) == [f"r-{n}" for n in range(50)]


# --- create_task_in_context and log_when_failed -----------------------------------


def test_create_task_in_context_reads_the_given_context(run_virtual: Any) -> None:
    async def main() -> Tuple[str, str, Optional[str], str]:
        ctx = contextvars.Context()
        ctx.run(request_id.set, "r-ctx")

        async def child() -> None:
            request_id.set("r-changed")

        async def read() -> str:
            return request_id.get()

        seen = await create_task_in_context(read(), ctx, name="reader")
        task = create_task_in_context(child(), ctx)
        await task
        return seen, request_id.get(), ctx.get(request_id), task.get_name()

    seen, caller, after, name = run_virtual(main)
    assert (seen, caller) == ("r-ctx", "-")
    # 3.11+: the task ran in ctx itself; before, in a copy of it.
    assert after == ("r-changed" if sys.version_info >= (3, 11) else "r-ctx")
    assert name.startswith("Task-")


def test_create_task_in_context_refuses_other_objects_without_a_warning(
    run_virtual: Any,
) -> None:
    async def never() -> None:
        pass  # pragma: no cover

    async def main() -> None:
        with pytest.raises(TypeError, match=r"contextvars\.Context"):
            create_task_in_context(never(), {"request_id": "x"})  # type: ignore[arg-type]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_virtual(main)
        gc.collect()
    assert not [w for w in caught if "never awaited" in str(w.message)]


def test_log_when_failed_logs_with_the_context_it_is_given(
    run_virtual: Any, logger: logging.Logger
) -> None:
    handler = tagged(logger)

    async def boom(n: int) -> None:
        await asyncio.sleep(0.01 * n)
        raise LookupError(f"order {n}")

    async def main() -> None:
        with loop_errors() as errors:
            tasks = []
            for n in range(20):
                ctx = contextvars.copy_context()
                ctx.run(request_id.set, f"r-{n}")
                task = create_task_in_context(boom(n), ctx, name=f"lookup-{n}")
                log_when_failed(task, logger, context=ctx)
                tasks.append(task)
            await asyncio.wait(tasks)
            del tasks, task
            await asyncio.sleep(0)
        assert errors == []  # every exception was retrieved

    run_virtual(main)
    assert len(handler.records) == 20
    for record in handler.records:
        n = int(record.request_id.split("-")[1])  # type: ignore[attr-defined]
        assert record.getMessage() == f"task lookup-{n} failed"
        assert record.exc_info is not None and str(record.exc_info[1]) == f"order {n}"


@pytest.mark.skipif(sys.version_info < (3, 12), reason="Task.get_context needs Python >= 3.12")
def test_log_when_failed_finds_the_tasks_own_context_on_312(
    run_virtual: Any, logger: logging.Logger
) -> None:
    handler = tagged(logger)

    async def boom() -> None:
        raise RuntimeError("x")

    async def main() -> None:
        with request_scope("r-inside"):
            task = asyncio.create_task(boom())
        log_when_failed(task, logger)  # outside the request
        await asyncio.wait([task])

    run_virtual(main)
    assert [r.request_id for r in handler.records] == ["r-inside"]  # type: ignore[attr-defined]


def test_log_when_failed_ignores_success_and_cancellation(
    run_virtual: Any, logger: logging.Logger
) -> None:
    handler = tagged(logger)

    async def main() -> None:
        ok = asyncio.create_task(asyncio.sleep(0.1))
        cancelled = asyncio.create_task(asyncio.sleep(HANG))
        log_when_failed(ok, logger)
        log_when_failed(cancelled, logger)
        cancelled.cancel()
        await asyncio.wait([ok, cancelled])
        await asyncio.sleep(0)

    run_virtual(main)
    assert handler.records == []


def test_log_when_failed_refuses_a_coroutine(logger: logging.Logger) -> None:
    with pytest.raises(TypeError, match=r"asyncio\.Task"):
        log_when_failed("not a task", logger)  # type: ignore[arg-type]


# --- task names ---------------------------------------------------------------------


@pytest.mark.parametrize("log_asyncio_tasks", [True, False])
def test_task_name_filter_names_tasks_and_leaves_threads_none(
    run_virtual: Any,
    logger: logging.Logger,
    monkeypatch: pytest.MonkeyPatch,
    log_asyncio_tasks: bool,
) -> None:
    # With the switch off, 3.12+ leaves taskName None and the filter must fill it in.
    monkeypatch.setattr(logging, "logAsyncioTasks", log_asyncio_tasks, raising=False)
    handler = tagged(logger, TaskNameFilter())

    async def work(n: int) -> None:
        await asyncio.sleep(0.01 * (n % 3))
        logger.info("work %d", n)

    async def main() -> None:
        await asyncio.gather(*(asyncio.create_task(work(n), name=f"w-{n}") for n in range(30)))
        await run_in_executor_with_context(None, logger.info, "thread")

    run_virtual(main)
    names = {r.getMessage(): r.taskName for r in handler.records}  # type: ignore[attr-defined]
    assert names.pop("thread") is None
    assert names == {f"work {n}": f"w-{n}" for n in range(30)}


def test_task_name_filter_keeps_a_name_already_set() -> None:
    record = logging.makeLogRecord({"msg": "x", "taskName": "given"})
    TaskNameFilter().filter(record)
    assert record.taskName == "given"  # type: ignore[attr-defined]


# --- the tracer -----------------------------------------------------------------------


def _request_tree(tracer: Tracer) -> Dict[str, List[str]]:
    by_id = {s.span_id: s for s in tracer.spans}
    tree: Dict[str, List[str]] = defaultdict(list)
    for span in tracer.spans:
        if span.parent_id is not None:
            tree[by_id[span.parent_id].name].append(span.name)
    return tree


async def _traced_requests(tracer: Tracer, count: int, use_task_group: bool) -> None:
    async def fetch(request: int, part: str, seconds: float) -> None:
        async with tracer.span(f"{request}/{part}"):
            await asyncio.sleep(seconds)
            with tracer.span(f"{request}/{part}/parse"):
                pass

    async def handle(request: int) -> None:
        async with tracer.span(f"{request}"):
            parts = [("a", 0.3), ("b", 0.1), ("c", 0.2)]
            if use_task_group:
                async with asyncio.TaskGroup() as group:  # type: ignore[attr-defined]
                    for part, seconds in parts:
                        group.create_task(fetch(request, part, seconds))
            else:
                await asyncio.gather(*(fetch(request, p, s) for p, s in parts))

    await asyncio.gather(*(handle(n) for n in range(count)))


@pytest.mark.parametrize(
    "use_task_group",
    [
        False,
        pytest.param(
            True,
            marks=pytest.mark.skipif(
                sys.version_info < (3, 11), reason="TaskGroup needs Python >= 3.11"
            ),
        ),
    ],
    ids=["gather", "TaskGroup"],
)
def test_tracer_nests_spans_across_concurrent_tasks(
    run_virtual: Any, use_task_group: bool
) -> None:
    tracer = Tracer()
    run_virtual(lambda: _traced_requests(tracer, 100, use_task_group))
    assert len(tracer.spans) == 100 * 7
    tree = _request_tree(tracer)
    for n in range(100):
        assert sorted(tree[f"{n}"]) == [f"{n}/a", f"{n}/b", f"{n}/c"]
        for part in "abc":
            assert tree[f"{n}/{part}"] == [f"{n}/{part}/parse"]
    roots = [s for s in tracer.spans if s.parent_id is None]
    assert sorted(s.name for s in roots) == sorted(f"{n}" for n in range(100))
    durations = {s.name: s.duration for s in tracer.spans}
    # The loop's clock: three overlapping fetches take as long as the longest.
    assert durations["0"] == pytest.approx(0.3, abs=0.05)
    assert durations["0/b"] == pytest.approx(0.1, abs=0.05)


def test_tracer_records_errors_and_cancellation(run_virtual: Any) -> None:
    tracer = Tracer()

    async def main() -> None:
        with pytest.raises(ValueError):
            async with tracer.span("fails"):
                raise ValueError("x")

        async def forever() -> None:
            async with tracer.span("cancelled"):
                await asyncio.sleep(HANG)

        task = asyncio.create_task(forever())
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run_virtual(main)
    assert [(s.name, s.error) for s in tracer.spans] == [
        ("fails", "ValueError"),
        ("cancelled", "CancelledError"),
    ]
    assert "cancelled 0.1" in tracer.render(digits=1)
    assert "[CancelledError]" in tracer.render()


def test_two_tracers_nest_without_mixing_parents() -> None:
    ticks = iter(range(1000))
    a = Tracer(clock=lambda: next(ticks))
    b = Tracer(clock=lambda: next(ticks))
    with a.span("a1") as a1:
        with b.span("b1") as b1:
            with a.span("a2"):
                assert b.current_span_id() == b1
                with b.span("b2"):
                    pass
    assert [(s.name, s.parent_id) for s in a.spans] == [("a2", a1), ("a1", None)]
    assert [(s.name, s.parent_id) for s in b.spans] == [("b2", b1), ("b1", None)]
    assert a.current_span_id() is None


def test_a_failing_on_finish_does_not_break_the_traced_code(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(span: Span) -> None:
        raise RuntimeError("exporter down")

    tracer = Tracer(on_finish=broken, clock=lambda: 0.0)
    with caplog.at_level(logging.ERROR, logger="recipes.logging_context"):
        with tracer.span("work"):
            pass
    assert [s.name for s in tracer.spans] == ["work"]
    assert "on_finish failed" in caplog.text


def test_tracer_keeps_at_most_max_spans_and_renders_orphans_as_roots() -> None:
    tracer = Tracer(max_spans=3, clock=lambda: 0.0)
    with tracer.span("root"):
        for n in range(5):
            with tracer.span(f"child {n}"):
                pass
    assert [s.name for s in tracer.spans] == ["child 3", "child 4", "root"]
    assert tracer.render(digits=0).splitlines() == ["root 0 s", "  child 3 0 s", "  child 4 0 s"]
    tracer = Tracer(max_spans=2, clock=lambda: 0.0)
    with tracer.span("lost parent"):
        with tracer.span("a"):
            pass
        with tracer.span("b"):
            pass
    tracer.clear()
    assert tracer.spans == [] and tracer.render() == ""


def test_ending_a_span_in_another_context_fails_loudly(run_virtual: Any) -> None:
    tracer = Tracer()

    async def main() -> None:
        scope = tracer.span("crosses tasks")
        scope.__enter__()

        async def close_it() -> None:
            scope.__exit__(None, None, None)

        with pytest.raises(ValueError, match="different Context"):
            await asyncio.create_task(close_it())

    run_virtual(main)


@pytest.mark.parametrize("max_spans", [0, -1])
def test_tracer_refuses_bad_arguments(max_spans: int) -> None:
    with pytest.raises(ValueError, match="max_spans"):
        Tracer(max_spans=max_spans)
    with pytest.raises(ValueError, match="non-empty name"):
        Tracer().span("")
    with pytest.raises(TypeError, match="parentheses"):
        Tracer().traced(lambda: None)  # type: ignore[arg-type]


def test_traced_keeps_the_function_name_and_result() -> None:
    tracer = Tracer(clock=lambda: 0.0)

    @tracer.traced()
    def add(a: int, b: int) -> int:
        return a + b

    assert add(2, 3) == 5 and add.__name__ == "add"
    assert [s.name for s in tracer.spans] == [add.__qualname__]


# --- queue_logging ------------------------------------------------------------------


def test_queue_logging_stops_and_flushes_every_record(
    run_virtual: Any, logger: logging.Logger
) -> None:
    class Slow(Collect):
        def emit(self, record: logging.LogRecord) -> None:
            if len(self.records) % 1000 == 0:
                threading.Event().wait(0.01)  # a slow disk, now and then
            super().emit(record)

    slow = Slow()
    before = listener_threads()

    async def handle(number: int) -> None:
        with request_scope(f"r-{number}"):
            for step in range(10):
                logger.info("%d:%d", number, step)
                await asyncio.sleep(0)

    async def main() -> None:
        with queue_logging(logger, slow, filters=[ContextFilter(), TaskNameFilter()]):
            await asyncio.gather(
                *(asyncio.create_task(handle(n), name=f"h-{n}") for n in range(1000))
            )
            # Records from plain threads go through the same queue.
            threads = [
                threading.Thread(target=logger.info, args=("thread %d", n)) for n in range(10)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(10)

    run_virtual(main)
    assert no_queue_handler(logger)
    assert listener_threads() == before
    from_tasks = [r for r in slow.records if not r.getMessage().startswith("thread")]
    assert len(from_tasks) == 10_000
    assert len(slow.records) == 10_010
    steps: Dict[str, List[int]] = defaultdict(list)
    for record in from_tasks:
        number, step = record.getMessage().split(":")
        assert record.request_id == f"r-{number}"  # type: ignore[attr-defined]
        assert record.taskName == f"h-{number}"  # type: ignore[attr-defined]
        steps[number].append(int(step))
    assert all(order == list(range(10)) for order in steps.values())  # FIFO per task


def test_queue_logging_flushes_when_the_block_raises(logger: logging.Logger) -> None:
    sink = Collect()
    with pytest.raises(RuntimeError):
        with queue_logging(logger, sink):
            for n in range(500):
                logger.info("n=%d", n)
            raise RuntimeError("crash")
    assert [r.getMessage() for r in sink.records] == [f"n={n}" for n in range(500)]
    assert no_queue_handler(logger)


def test_queue_logging_does_not_block_the_loop_on_a_stuck_handler(
    run_virtual: Any, logger: logging.Logger
) -> None:
    release = threading.Event()

    on_the_loop: List[str] = []

    class Stuck(Collect):
        def emit(self, record: logging.LogRecord) -> None:
            if threading.current_thread() is threading.main_thread():
                on_the_loop.append(record.getMessage())  # would block the loop: fail fast
                return
            release.wait(30)
            super().emit(record)

    stuck = Stuck()

    async def main() -> int:
        ticks = 0
        for n in range(100):
            logger.info("record %d", n)  # returns although the handler is stuck
            await asyncio.sleep(0.01)
            ticks += 1
        assert stuck.records == []  # nothing got through yet: the handler is still stuck
        return ticks

    with queue_logging(logger, stuck):
        try:
            assert run_virtual(main) == 100
        finally:
            release.set()
    assert on_the_loop == []
    assert len(stuck.records) == 100


def test_context_filters_behind_the_listener_see_no_request(
    run_virtual: Any, logger: logging.Logger
) -> None:
    behind = Collect()
    behind.addFilter(ContextFilter())

    async def main() -> None:
        with request_scope("r-1"):
            logger.info("x")

    with queue_logging(logger, behind):
        run_virtual(main)
    assert [r.request_id for r in behind.records] == ["-"]  # type: ignore[attr-defined]


def test_queue_logging_respects_handler_levels_and_merges_arguments(
    logger: logging.Logger,
) -> None:
    errors_only = Collect(logging.ERROR)
    everything = Collect()
    items = ["a"]
    with queue_logging(logger.name, errors_only, everything):
        logger.info("items %s", items)
        items.append("b")  # too late: the message was merged when logged
        logger.error("bad")
    assert [r.getMessage() for r in errors_only.records] == ["bad"]
    assert [r.getMessage() for r in everything.records] == ["items ['a']", "bad"]


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((), ValueError, "at least one handler"),
        (("not a handler",), TypeError, r"logging\.Handler"),
    ],
)
def test_queue_logging_refuses_bad_arguments(
    logger: logging.Logger, args: Tuple[Any, ...], error: type, match: str
) -> None:
    before = listener_threads()
    with pytest.raises(error, match=match):
        with queue_logging(logger, *args):
            pass  # pragma: no cover
    with pytest.raises(TypeError, match=r"logging\.Logger"):
        with queue_logging(42, Collect()):  # type: ignore[arg-type]
            pass  # pragma: no cover
    assert no_queue_handler(logger) and listener_threads() == before
