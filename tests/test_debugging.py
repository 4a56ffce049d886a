"""Behaviour, fault and bad-input tests for recipes/debugging.py and the chapter's claims."""

from __future__ import annotations

import asyncio
import gc
import glob
import inspect
import io
import logging
import os
import queue
import re
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path
from typing import (
    Any,
    AsyncIterator,
    Awaitable,
    Callable,
    Dict,
    Iterator,
    List,
    NamedTuple,
    Set,
    Tuple,
)

import looptime
import pytest

from recipes import debugging
from recipes.debugging import dump_process_tasks, dump_tasks, make_exception_handler

Runner = Callable[[Callable[[], Awaitable[Any]]], Any]

LINE = re.compile(r"^(?P<name>'[^']*') (?P<state>[a-z ,]+): (?P<chain>.+)$")


def parse(dump: str) -> Dict[str, Dict[str, str]]:
    """Map each task name (quoted, as printed) to its state and await chain."""
    parsed = {}
    for line in dump.splitlines():
        match = LINE.match(line)
        assert match, f"unexpected line format: {line!r}"
        parsed[match["name"]] = {"state": match["state"], "chain": match["chain"]}
    return parsed


def line_of(function: Callable[..., Any], text: str) -> int:
    """The line number of the first source line of ``function`` that contains ``text``."""
    source, first = inspect.getsourcelines(function)
    for offset, line in enumerate(source):
        if text in line:
            return first + offset
    raise AssertionError(f"{text!r} not in {function.__name__}")


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: List[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def collected() -> Any:
    logger = logging.getLogger("tests.debugging")
    handler = Collect()
    logger.addHandler(handler)
    try:
        yield logger, handler.records
    finally:
        logger.removeHandler(handler)


def collect_garbage() -> None:
    """``gc.collect()``, recording rather than raising warnings about objects that earlier
    tests leaked (on 3.8, pytest-asyncio 0.24 leaves an unclosed loop behind), so they do not
    fail these tests."""
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        gc.collect()


# --- dump_tasks -----------------------------------------------------------------


async def sleeper() -> None:
    await asyncio.sleep(3600)


async def waits_for(task: asyncio.Task[None]) -> None:
    await task


async def nested_outer() -> None:
    await nested_inner()


async def nested_inner() -> None:
    await asyncio.sleep(3600)


def test_dump_tasks_lists_every_task_sorted_with_where_it_waits(run_virtual: Runner) -> None:
    async def main() -> str:
        event = asyncio.Event()
        tasks = [
            asyncio.create_task(sleeper(), name="b-sleeper"),
            asyncio.create_task(nested_outer(), name="A-nested"),
            asyncio.create_task(event.wait(), name="c-event"),
        ]
        tasks.append(asyncio.create_task(waits_for(tasks[0]), name="d-waits"))
        await asyncio.sleep(0)
        tasks.append(asyncio.create_task(sleeper(), name="e-new"))
        try:
            return dump_tasks()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    dump = run_virtual(main)
    lines = dump.splitlines()
    names = [line.split(" ", 1)[0] for line in lines]
    assert names == sorted(names, key=str.casefold)
    tasks = parse(dump)
    assert set(tasks) - {names[-1]} == {
        "'A-nested'",
        "'b-sleeper'",
        "'c-event'",
        "'d-waits'",
        "'e-new'",
    }
    assert names[-1].startswith("'Task-")  # the task that called dump_tasks()
    assert tasks[names[-1]]["state"] == "running"
    calling_line = line_of(main, "return dump_tasks()")
    assert f"main() at test_debugging.py:{calling_line}" in tasks[names[-1]]["chain"]

    here = "test_debugging.py"
    assert tasks["'b-sleeper'"]["state"] == "waiting"
    assert re.fullmatch(
        rf"sleeper\(\) at {here}:{line_of(sleeper, 'sleep(3600)')} "
        r"-> sleep\(\) at tasks\.py:\d+ -> Future",
        tasks["'b-sleeper'"]["chain"],
    )
    assert re.fullmatch(
        rf"nested_outer\(\) at {here}:{line_of(nested_outer, 'nested_inner()')} "
        rf"-> nested_inner\(\) at {here}:{line_of(nested_inner, 'sleep(3600)')} "
        r"-> sleep\(\) at tasks\.py:\d+ -> Future",
        tasks["'A-nested'"]["chain"],
    )
    assert re.fullmatch(r"Event\.wait\(\) at locks\.py:\d+ -> Future", tasks["'c-event'"]["chain"])
    assert re.fullmatch(
        rf"waits_for\(\) at {here}:{line_of(waits_for, 'await task')} -> Task 'b-sleeper'",
        tasks["'d-waits'"]["chain"],
    )
    assert tasks["'e-new'"]["state"] == "not started"
    assert re.fullmatch(rf"sleeper\(\) at {here}:\d+", tasks["'e-new'"]["chain"])


def test_dump_tasks_names_the_future_a_gather_waits_on(run_virtual: Runner) -> None:
    async def gather_two() -> None:
        await asyncio.gather(sleeper(), sleeper())

    async def main() -> str:
        gatherer = asyncio.create_task(gather_two(), name="gatherer")
        await asyncio.sleep(0)
        try:
            return dump_tasks()
        finally:
            gatherer.cancel()
            await asyncio.gather(gatherer, return_exceptions=True)

    tasks = parse(run_virtual(main))
    # gather() wraps each coroutine in a task of its own: main, gatherer and two children.
    assert len(tasks) == 4
    assert re.fullmatch(
        r".*gather_two\(\) at test_debugging\.py:\d+ -> _GatheringFuture",
        tasks["'gatherer'"]["chain"],
    )
    children = [name for name, task in tasks.items() if task["chain"].startswith("sleeper()")]
    assert len(children) == 2


@pytest.mark.skipif(sys.version_info < (3, 11), reason="Task.cancelling() is 3.11+")
def test_dump_tasks_marks_tasks_being_cancelled(run_virtual: Runner) -> None:
    async def slow_cleanup() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0.1)

    async def main() -> str:
        task = asyncio.create_task(slow_cleanup(), name="closing")
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.sleep(0)
        try:
            return dump_tasks()
        finally:
            await asyncio.gather(task, return_exceptions=True)

    assert parse(run_virtual(main))["'closing'"]["state"] == "waiting, cancelling"


def test_dump_tasks_of_a_loop_that_is_not_running() -> None:
    loop = asyncio.new_event_loop()
    try:
        assert dump_tasks(loop) == ""
        task = loop.create_task(sleeper(), name="queued")
        assert dump_tasks(loop).startswith("'queued' not started: sleeper() at ")
        loop.run_until_complete(asyncio.sleep(0))
        assert dump_tasks(loop).startswith("'queued' waiting: sleeper() at ")
        task.cancel()
        loop.run_until_complete(asyncio.gather(task, return_exceptions=True))
        assert dump_tasks(loop) == ""
    finally:
        loop.close()


def test_dump_tasks_with_an_async_generator_in_the_chain(run_virtual: Runner) -> None:
    async def ticks() -> AsyncIterator[int]:
        while True:
            await asyncio.sleep(3600)
            yield 1

    async def consume() -> None:
        async for _ in ticks():
            pass

    async def main() -> str:
        task = asyncio.create_task(consume(), name="consumer")
        await asyncio.sleep(0)
        try:
            return dump_tasks()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    chain = parse(run_virtual(main))["'consumer'"]["chain"]
    assert chain.startswith(
        "test_dump_tasks_with_an_async_generator_in_the_chain.<locals>.consume()"
    )
    assert chain.endswith(" -> Future")


def test_dump_tasks_needs_a_loop() -> None:
    with pytest.raises(RuntimeError, match="needs a running event loop"):
        dump_tasks()
    with pytest.raises(TypeError, match="loop must be an asyncio event loop"):
        dump_tasks("loop")  # type: ignore[arg-type]


def test_dump_tasks_under_load(run_virtual: Runner) -> None:
    async def main() -> str:
        tasks = [asyncio.create_task(sleeper(), name=f"worker-{n:04d}") for n in range(2000)]
        await asyncio.sleep(0)
        try:
            return dump_tasks()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    lines = run_virtual(main).splitlines()
    assert len(lines) == 2001
    assert lines[0].startswith("'Task-")  # main: "task-" sorts before "worker-"
    assert [line.split(" ")[0] for line in lines[1:]] == [f"'worker-{n:04d}'" for n in range(2000)]


# --- make_exception_handler -----------------------------------------------------


def test_handler_logs_a_task_exception_nobody_retrieved(
    run_virtual: Runner, collected: Any
) -> None:
    logger, records = collected

    async def fail() -> None:
        raise ValueError("lost")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(make_exception_handler(logger))
        task = asyncio.create_task(fail(), name="lost-task")
        await asyncio.sleep(0)
        del task
        collect_garbage()

    run_virtual(main)
    assert len(records) == 1
    record = records[0]
    assert record.levelno == logging.ERROR
    assert record.getMessage() == (
        "Task exception was never retrieved; task 'lost-task' running "
        "test_handler_logs_a_task_exception_nobody_retrieved.<locals>.fail()"
    )
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], ValueError)


def test_handler_logs_a_failing_callback(run_virtual: Runner, collected: Any) -> None:
    logger, records = collected

    def broken() -> None:
        raise KeyError("no such key")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(make_exception_handler(logger))
        loop.call_soon(broken)
        await asyncio.sleep(0)

    run_virtual(main)
    assert len(records) == 1
    assert records[0].getMessage().startswith("Exception in callback ")
    assert "handle=" not in records[0].getMessage()  # the message already names it
    assert records[0].exc_info is not None
    assert isinstance(records[0].exc_info[1], KeyError)


def test_handler_in_debug_mode_says_where_the_task_was_created(
    run_virtual: Runner, collected: Any
) -> None:
    logger, records = collected

    async def fail() -> None:
        raise ValueError("lost")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_debug(True)
        loop.set_exception_handler(make_exception_handler(logger))
        task = asyncio.create_task(fail(), name="lost-task")
        await asyncio.sleep(0)
        del task
        collect_garbage()
        loop.set_debug(False)

    run_virtual(main)
    created = line_of(main, "asyncio.create_task(fail()")
    assert records[0].getMessage().endswith(f"; created at test_debugging.py:{created}")


def test_handler_logs_a_pending_task_destroyed_without_a_traceback(collected: Any) -> None:
    logger, records = collected
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(make_exception_handler(logger))
    try:
        task = loop.create_task(sleeper(), name="abandoned")
        loop.run_until_complete(asyncio.sleep(0))  # let it start and suspend
    finally:
        loop.close()
    del task
    collect_garbage()
    assert len(records) == 1
    message = records[0].getMessage()
    assert message.startswith("Task was destroyed but it is pending!; task 'abandoned' running ")
    assert message.endswith("running sleeper()")
    assert records[0].exc_info is None


def test_handler_describes_other_context_keys(collected: Any) -> None:
    logger, records = collected
    loop = asyncio.new_event_loop()
    try:
        handler = make_exception_handler(logger)
        future = loop.create_future()
        handler(loop, {"message": "Fatal error on transport", "protocol": "P", "future": future})
        handler(loop, {})
    finally:
        loop.close()
    first, second = (record.getMessage() for record in records)
    assert first.startswith("Fatal error on transport; future <Future pending")
    assert first.endswith("; protocol='P'")
    assert second == "Unhandled exception in event loop"


def test_handler_survives_a_broken_repr(collected: Any) -> None:
    logger, records = collected

    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("repr failed")

    loop = asyncio.new_event_loop()
    try:
        make_exception_handler(logger)(
            loop, {"message": "Socket error", "socket": Broken(), "exception": OSError(9, "x")}
        )
    finally:
        loop.close()
    assert records[0].getMessage().startswith("Socket error (context not describable: ")
    assert records[0].exc_info is not None


def test_handler_defaults_to_the_asyncio_logger(caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.new_event_loop()
    try:
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            make_exception_handler()(loop, {"message": "something broke"})
    finally:
        loop.close()
    assert [(r.name, r.getMessage()) for r in caplog.records] == [("asyncio", "something broke")]


def test_handler_rejects_a_non_logger() -> None:
    with pytest.raises(TypeError, match=r"logger must be a logging\.Logger"):
        make_exception_handler("asyncio")  # type: ignore[arg-type]


# --- what the chapter says debug mode does ----------------------------------------


def test_debug_mode_logs_a_slow_step_on_a_real_clock(caplog: pytest.LogCaptureFixture) -> None:
    async def blocking() -> None:
        time.sleep(0.1)

    async def main() -> None:
        asyncio.get_running_loop().slow_callback_duration = 0.02
        await asyncio.create_task(blocking(), name="blocker")

    with caplog.at_level(logging.WARNING, logger="asyncio"):
        asyncio.run(main(), debug=True)
    messages = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert any(
        re.match(r"Executing <Task finished name='blocker' .*> took \d+\.\d{3} seconds$", m)
        for m in messages
    ), messages


def test_slow_steps_are_not_logged_without_debug_mode(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        asyncio.get_running_loop().slow_callback_duration = 0.02
        time.sleep(0.1)

    with caplog.at_level(logging.WARNING, logger="asyncio"):
        asyncio.run(main(), debug=False)
    assert [r for r in caplog.records if r.name == "asyncio"] == []


def test_a_virtual_clock_never_reports_slow_steps(caplog: pytest.LogCaptureFixture) -> None:
    loop = looptime.new_event_loop(start=0)
    loop.set_debug(True)
    loop.slow_callback_duration = 0.02

    async def blocking() -> None:
        time.sleep(0.1)

    try:
        with caplog.at_level(logging.WARNING, logger="asyncio"):
            loop.run_until_complete(blocking())
    finally:
        loop.close()
    assert [r for r in caplog.records if r.name == "asyncio"] == []


def test_debug_mode_says_where_an_unawaited_coroutine_was_created() -> None:
    async def save() -> None:
        pass

    async def handler() -> None:
        save()  # type: ignore[unused-coroutine]  # the bug under test

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(handler(), debug=True)
        gc.collect()
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1
    text = messages[0]
    assert text.startswith(
        "coroutine 'test_debug_mode_says_where_an_unawaited_coroutine_was_created."
        "<locals>.save' was never awaited\nCoroutine created at (most recent call last)\n"
    )
    assert f"line {line_of(handler, 'save()')}, in handler" in text


def test_without_debug_mode_the_unawaited_warning_has_no_origin() -> None:
    async def save() -> None:
        pass

    async def handler() -> None:
        save()  # type: ignore[unused-coroutine]  # the bug under test

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(handler(), debug=False)
        gc.collect()
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1
    assert "Coroutine created at" not in messages[0]


def test_debug_mode_rejects_loop_calls_from_another_thread(run_virtual: Runner) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_debug(True)
        try:
            with pytest.raises(RuntimeError, match="Non-thread-safe operation"):
                await loop.run_in_executor(None, loop.call_soon, print, "x")
        finally:
            loop.set_debug(False)

    run_virtual(main)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="LogRecord.taskName is 3.12+")
def test_log_records_carry_the_task_name_on_312(run_virtual: Runner, collected: Any) -> None:
    logger, records = collected

    async def work() -> None:
        logger.warning("inside")

    async def main() -> None:
        await asyncio.create_task(work(), name="worker-7")

    run_virtual(main)
    assert [getattr(r, "taskName", None) for r in records] == ["worker-7"]


# --- the chapter's fallback: dump_tasks on every version ----------------------------


async def fetch_page(url: str) -> None:
    await asyncio.sleep(3600)


async def crawl_pages(urls: List[str]) -> List[None]:
    pages = [asyncio.create_task(fetch_page(url), name=url) for url in urls]
    return await asyncio.gather(*pages)


def test_dump_tasks_shows_the_crawler_of_the_call_graph_section(run_virtual: Runner) -> None:
    async def main() -> str:
        crawler = asyncio.create_task(crawl_pages(["/a", "/b"]), name="crawler")
        await asyncio.sleep(1)
        try:
            return dump_tasks()
        finally:
            crawler.cancel()
            await asyncio.gather(crawler, return_exceptions=True)

    tasks = parse(run_virtual(main))
    fetching = line_of(fetch_page, "sleep(3600)")
    for page in ("'/a'", "'/b'"):
        assert tasks[page]["state"] == "waiting"
        assert re.fullmatch(
            rf"fetch_page\(\) at test_debugging\.py:{fetching} -> sleep\(\) at tasks\.py:\d+ "
            r"-> Future",
            tasks[page]["chain"],
        )
    gathering = line_of(crawl_pages, "await asyncio.gather")
    assert tasks["'crawler'"]["chain"] == (
        f"crawl_pages() at test_debugging.py:{gathering} -> _GatheringFuture"
    )


# --- call-graph introspection (3.14+) -----------------------------------------------

needs_call_graphs = pytest.mark.skipif(
    sys.version_info < (3, 14), reason="asyncio.capture_call_graph() needs Python >= 3.14"
)


def qualnames(graph: Any) -> List[str]:
    """The names of a FutureCallGraph's frames, innermost first."""
    return [entry.frame.f_code.co_qualname for entry in graph.call_stack]


async def run_group() -> None:
    async with asyncio.TaskGroup() as tg:  # type: ignore[attr-defined,unused-ignore]
        tg.create_task(nested_outer(), name="leaf")


async def start_group() -> Tuple[asyncio.Task[None], asyncio.Task[None]]:
    """Start 'owner' (a TaskGroup around 'leaf'); return both once they are waiting."""
    owner = asyncio.create_task(run_group(), name="owner")
    await asyncio.sleep(1)
    (leaf,) = [t for t in asyncio.all_tasks() if t.get_name() == "leaf"]
    return owner, leaf


async def stop_group(owner: asyncio.Task[None]) -> None:
    owner.cancel()  # the TaskGroup cancels the leaf
    await asyncio.gather(owner, return_exceptions=True)


@needs_call_graphs
def test_capture_call_graph_chains_a_task_in_a_task_group_to_its_owner(
    run_virtual: Runner,
) -> None:
    async def main() -> None:
        owner, leaf = await start_group()
        try:
            graph = asyncio.capture_call_graph(leaf)
            assert graph is not None
            assert graph.future is leaf
            assert qualnames(graph) == ["sleep", "nested_inner", "nested_outer"]
            (awaiting,) = graph.awaited_by
            assert awaiting.future is owner
            owner_chain = qualnames(awaiting)
            assert owner_chain[-1] == "run_group"
            assert "TaskGroup.__aexit__" in owner_chain
            assert awaiting.awaited_by == ()  # nobody awaits the owner: it was only created
        finally:
            await stop_group(owner)

    run_virtual(main)


@needs_call_graphs
def test_format_call_graph_nests_the_awaiting_task_with_file_and_line(
    run_virtual: Runner,
) -> None:
    async def main() -> str:
        owner, leaf = await start_group()
        try:
            text = asyncio.format_call_graph(leaf)
            printed = io.StringIO()
            asyncio.print_call_graph(leaf, file=printed)
            assert printed.getvalue() == text + "\n"
            return text
        finally:
            await stop_group(owner)

    lines = run_virtual(main).splitlines()
    here = inspect.getsourcefile(nested_inner)
    assert re.fullmatch(r"\* Task\(name='leaf', id=0x[0-9a-f]+\)", lines[0])
    assert lines[1] == "  + Call stack:"
    assert lines[2].endswith(", in async sleep()")
    assert lines[3] == (
        f"  |   File {here!r}, line {line_of(nested_inner, 'sleep(3600)')}, "
        "in async nested_inner()"
    )
    assert lines[4] == (
        f"  |   File {here!r}, line {line_of(nested_outer, 'nested_inner()')}, "
        "in async nested_outer()"
    )
    assert lines[5] == "  + Awaited by:"
    assert re.fullmatch(r"    \* Task\(name='owner', id=0x[0-9a-f]+\)", lines[6])
    assert lines[7] == "      + Call stack:"
    assert lines[-1] == (
        f"      |   File {here!r}, line {line_of(run_group, 'TaskGroup()')}, in async run_group()"
    )


@needs_call_graphs
def test_call_graph_limit_keeps_the_outermost_or_the_innermost_entries(
    run_virtual: Runner,
) -> None:
    async def main() -> None:
        owner, leaf = await start_group()
        try:
            full = asyncio.capture_call_graph(leaf)
            assert full is not None
            chain, owner_chain = qualnames(full), qualnames(full.awaited_by[0])
            for limit, expected, expected_owner in [
                (1, ["nested_outer"], ["run_group"]),
                (2, chain[-2:], owner_chain[-2:]),
                (-1, ["sleep"], owner_chain[:1]),
                (0, [], []),
                (None, chain, owner_chain),
            ]:
                graph = asyncio.capture_call_graph(leaf, limit=limit)
                assert graph is not None
                assert qualnames(graph) == expected, limit
                assert qualnames(graph.awaited_by[0]) == expected_owner, limit
                assert graph.awaited_by[0].future.get_name() == "owner"  # kept even at 0
        finally:
            await stop_group(owner)

    run_virtual(main)


def chain_here(depth: int) -> List[str]:
    graph = asyncio.capture_call_graph(depth=depth)
    assert graph is not None
    return qualnames(graph)


async def handle_request() -> Any:
    return chain_here(1), chain_here(2), asyncio.format_call_graph()


@needs_call_graphs
def test_call_graph_depth_skips_frames_of_the_current_task(run_virtual: Runner) -> None:
    async def main() -> Any:
        async with asyncio.TaskGroup() as tg:  # type: ignore[attr-defined,unused-ignore]
            handler = tg.create_task(handle_request(), name="handler")
        return handler.result()

    with_helper, without_helper, text = run_virtual(main)
    assert with_helper == ["chain_here", "handle_request"]
    assert without_helper == ["handle_request"]
    lines = text.splitlines()
    assert re.fullmatch(r"\* Task\(name='handler', id=0x[0-9a-f]+\)", lines[0])
    # format_call_graph() leaves out its own frame: the one entry is the caller's line.
    called = line_of(handle_request, "format_call_graph()")
    assert lines[1:4] == [
        "  + Call stack:",
        f"  |   File {__file__!r}, line {called}, in async handle_request()",
        "  + Awaited by:",
    ]
    assert lines[-1].endswith(".<locals>.main()")


@needs_call_graphs
def test_call_graph_without_a_current_task() -> None:
    captured: List[Any] = []
    loop = asyncio.new_event_loop()
    try:

        def callback() -> None:
            captured.append((asyncio.capture_call_graph(), asyncio.format_call_graph()))

        loop.call_soon(callback)
        loop.call_soon(loop.stop)
        loop.run_forever()
    finally:
        loop.close()
    assert captured == [(None, "")]
    with pytest.raises(RuntimeError, match="outside of a running event loop"):
        asyncio.capture_call_graph()
    with pytest.raises(RuntimeError, match="outside of a running event loop"):
        asyncio.format_call_graph()


async def await_directly(task: asyncio.Task[None]) -> None:
    await task


async def await_gather(task: asyncio.Task[None]) -> None:
    await asyncio.gather(task)


async def await_shield(task: asyncio.Task[None]) -> None:
    await asyncio.shield(task)


async def await_wait_for(task: asyncio.Task[None]) -> None:
    await asyncio.wait_for(task, 7200)


async def await_wait(task: asyncio.Task[None]) -> None:
    await asyncio.wait([task])


@needs_call_graphs
@pytest.mark.parametrize(
    "waiter", [await_directly, await_gather, await_shield, await_wait_for, await_wait]
)
def test_awaited_by_links_recorded_by_the_usual_ways_to_wait(
    run_virtual: Runner, waiter: Callable[[asyncio.Task[None]], Awaitable[None]]
) -> None:
    async def main() -> List[str]:
        task = asyncio.create_task(sleeper(), name="awaited")
        parent = asyncio.create_task(waiter(task), name="parent")  # type: ignore[arg-type]
        await asyncio.sleep(1)
        try:
            graph = asyncio.capture_call_graph(task)
            assert graph is not None
            assert [g.future.get_name() for g in graph.awaited_by] == ["parent"]
            return qualnames(graph.awaited_by[0])
        finally:
            parent.cancel()
            task.cancel()
            await asyncio.gather(parent, task, return_exceptions=True)

    assert run_virtual(main)[-1] == waiter.__name__


# --- python -m asyncio ps / pstree, and dump_process_tasks (3.14+) -----------------

needs_asyncio_tools = pytest.mark.skipif(
    sys.version_info < (3, 14), reason="python -m asyncio ps/pstree needs Python >= 3.14"
)
TOOL_TIMEOUT = 60.0
CHAPTER = debugging.__doc__ or ""


def chapter_program() -> str:
    """The walkthrough's program, as the chapter shows it (the literal block after 'watch.py')."""
    block = CHAPTER.split("Save this program as ``watch.py``::\n", 1)[1]
    lines = []
    for line in block.splitlines():
        if line and not line.startswith("    "):
            break
        lines.append(line)
    return textwrap.dedent("\n".join(lines)).strip() + "\n"


def chapter_console(command: str) -> List[str]:
    """The output lines the chapter shows under ``$ <command>`` (dedented)."""
    lines = CHAPTER.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == f"$ {command}")
    indent = len(lines[start]) - len(lines[start].lstrip())
    shown = []
    for line in lines[start + 1 :]:
        if not line.strip() or line.strip().startswith("$ ") or not line.startswith(" " * indent):
            break
        shown.append(line[indent:])
    return shown


def normalise(lines: List[str], program_dir: str = "/tmp/demo") -> List[str]:
    """Blank out what differs between runs: addresses, paths, standard-library line numbers.

    The chapter shows the program in /tmp/demo and the standard library as ``...``.
    """
    stdlib = os.path.dirname(os.path.dirname(asyncio.__file__))
    out = []
    for line in lines:
        line = line.replace(stdlib + os.sep, ".../").replace(program_dir, "<dir>")
        line = re.sub(r"(\.\.\./asyncio/\w+\.py):\d+", r"\1:N", line)
        out.append(re.sub(r"0x[0-9a-f]+", "0x?", line).rstrip())
    return out


def child_pids() -> Set[int]:
    """This process's children, from /proc (Linux); empty where /proc does not list them."""
    pids: Set[int] = set()
    for path in glob.glob(f"/proc/{os.getpid()}/task/*/children"):
        with open(path) as children:
            pids.update(int(pid) for pid in children.read().split())
    return pids


def run_tool(command: str, pid: int, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m asyncio <command> <pid>`` as a reader types it; skip without permission."""
    result = subprocess.run(
        [sys.executable, "-m", "asyncio", command, str(pid)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=dict(os.environ, PYTHONIOENCODING="utf-8"),
        cwd=cwd,
        timeout=TOOL_TIMEOUT,
    )
    if "insufficient permissions" in result.stdout + result.stderr:
        pytest.skip(f"this process may not inspect its sibling (ptrace): {result.stdout}")
    return result


class Program(NamedTuple):
    pid: int
    path: Path


@pytest.fixture
def watch_program(tmp_path: Path) -> Iterator[Program]:
    """Run the chapter's watch.py; yield once it has printed its PID. Always killed and reaped."""
    path = tmp_path / "watch.py"
    path.write_text(chapter_program(), encoding="utf-8")
    stderr_path = tmp_path / "stderr.txt"
    with open(stderr_path, "wb") as stderr, subprocess.Popen(
        [sys.executable, "-u", str(path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr,
        cwd=tmp_path,
    ) as process:
        lines: queue.Queue[bytes] = queue.Queue()
        output = process.stdout
        assert output is not None
        reader = threading.Thread(target=lambda: lines.put(output.readline()))
        reader.start()
        try:
            try:
                first = lines.get(timeout=TOOL_TIMEOUT)
            except queue.Empty:
                pytest.fail(f"watch.py printed nothing: {stderr_path.read_text()}")
            assert first == f"PID {process.pid}\n".encode(), stderr_path.read_text()
            yield Program(process.pid, path)
        finally:
            process.kill()
            process.wait(timeout=TOOL_TIMEOUT)
            reader.join(timeout=TOOL_TIMEOUT)
    assert process.returncode is not None


def wait_until_listed(program: Program, names: Set[str]) -> subprocess.CompletedProcess[str]:
    """Run ``ps`` until every task name is listed: the PID is printed before the tasks start."""
    deadline = time.monotonic() + TOOL_TIMEOUT
    while True:
        result = run_tool("ps", program.pid, program.path.parent)
        if result.returncode == 0 and all(name in result.stdout for name in names):
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"ps never listed {sorted(names)}: {result.stdout}{result.stderr}")
        time.sleep(0.05)


WATCH_TASKS = {"Task-1", "watcher", "archiver", "poll-feeds", "poll-mail", "poll-backups"}


def ps_rows(table: str) -> Dict[str, Dict[str, str]]:
    """Parse the ps table by its header's column positions; map task name to its columns."""
    header, rule, *rows = table.splitlines()
    assert set(rule) == {"-"}
    names = ["tid", "task id", "task name", "coroutine stack", "awaiter chain"]
    names += ["awaiter name", "awaiter id"]
    starts = [header.index(name) for name in names]
    parsed = {}
    for row in rows:
        cells = [row[a:b].strip() for a, b in zip(starts, [*starts[1:], None])]
        parsed[cells[2]] = dict(zip(names, cells))
    return parsed


def pstree_parents(tree: str) -> Dict[str, str]:
    """Map each task of a pstree drawing to the task it hangs under."""
    parents: Dict[str, str] = {}
    stack: List[Tuple[int, str]] = []  # (column of "(T)", task name)
    for line in tree.splitlines():
        column = line.find("(T) ")
        if column < 0:
            continue
        name = line[column + 4 :]
        while stack and stack[-1][0] >= column:
            stack.pop()
        if stack:
            parents[name] = stack[-1][1]
        stack.append((column, name))
    return parents


@needs_asyncio_tools
def test_ps_lists_each_task_with_its_stack_and_its_awaiter(watch_program: Program) -> None:
    result = wait_until_listed(watch_program, WATCH_TASKS)
    assert result.returncode == 0
    rows = ps_rows(result.stdout)
    assert set(rows) == WATCH_TASKS
    expected = {
        "Task-1": ("TaskGroup._aexit -> TaskGroup.__aexit__ -> main", ""),
        "watcher": ("TaskGroup._aexit -> TaskGroup.__aexit__ -> watch", "Task-1"),
        "archiver": ("TaskGroup._aexit -> TaskGroup.__aexit__ -> watch", "Task-1"),
        "poll-feeds": ("sleep -> poll", "watcher"),
        "poll-mail": ("sleep -> poll", "watcher"),
        "poll-backups": ("sleep -> poll", "archiver"),
    }
    for name, (stack, awaiter) in expected.items():
        assert (rows[name]["coroutine stack"], rows[name]["awaiter name"]) == (stack, awaiter)
        if awaiter:
            assert rows[name]["awaiter id"] == rows[awaiter]["task id"]
            assert rows[name]["awaiter chain"] == rows[awaiter]["coroutine stack"]
        else:
            assert rows[name]["awaiter id"] == "0x0"
    assert {row["tid"] for row in rows.values()} == {str(watch_program.pid)}  # main thread


@needs_asyncio_tools
def test_pstree_nests_each_task_under_the_task_that_awaits_it(watch_program: Program) -> None:
    wait_until_listed(watch_program, WATCH_TASKS)
    result = run_tool("pstree", watch_program.pid, watch_program.path.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert pstree_parents(result.stdout) == {
        "watcher": "Task-1",
        "archiver": "Task-1",
        "poll-feeds": "watcher",
        "poll-mail": "watcher",
        "poll-backups": "archiver",
    }
    source = watch_program.path.read_text().splitlines()
    sleeping = next(n for n, line in enumerate(source, 1) if "await asyncio.sleep(60)" in line)
    assert result.stdout.count(f"└──  poll {watch_program.path}:{sleeping}\n") == 3


@needs_asyncio_tools
def test_chapter_shows_what_ps_and_pstree_print(watch_program: Program) -> None:
    ps = wait_until_listed(watch_program, WATCH_TASKS).stdout.splitlines()
    tree = run_tool("pstree", watch_program.pid, watch_program.path.parent).stdout
    where = str(watch_program.path.parent)
    shown_pid = re.search(r"^   PID (\d+)$", CHAPTER, re.MULTILINE)
    assert shown_pid is not None
    pid = shown_pid[1]
    assert normalise(chapter_console(f"python3.14 -m asyncio pstree {pid}")) == normalise(
        tree.splitlines(), where
    )
    # The chapter cuts the table with ``cut -c 12-103`` and ``cut -c 33-52,105-170``.
    assert normalise(chapter_console(f"python3.14 -m asyncio ps {pid} | cut -c 12-103")) == (
        normalise([line[11:103] for line in ps], where)
    )
    assert normalise(
        chapter_console(f"python3.14 -m asyncio ps {pid} | cut -c 33-52,105-170")
    ) == normalise([line[32:52] + line[104:170] for line in ps], where)


@needs_asyncio_tools
def test_dump_process_tasks_returns_what_the_tools_print(watch_program: Program) -> None:
    wait_until_listed(watch_program, WATCH_TASKS)
    try:
        tree = asyncio.run(dump_process_tasks(watch_program.pid))
        table = asyncio.run(dump_process_tasks(watch_program.pid, tree=False))
    except RuntimeError as error:
        if "insufficient permissions" in str(error):
            pytest.skip(f"this process may not inspect its child (ptrace): {error}")
        raise
    printed = run_tool("pstree", watch_program.pid, watch_program.path.parent).stdout
    assert tree == printed.rstrip("\n")
    assert pstree_parents(tree)["poll-backups"] == "archiver"
    assert set(ps_rows(table)) == WATCH_TASKS


@needs_asyncio_tools
def test_dump_process_tasks_reports_a_failed_inspection() -> None:
    # A process that has exited and been reaped: there is nothing left to read.
    with subprocess.Popen([sys.executable, "-c", "pass"]) as process:
        process.wait(timeout=TOOL_TIMEOUT)
    with pytest.raises(RuntimeError, match=rf"python -m asyncio pstree {process.pid} failed "):
        asyncio.run(dump_process_tasks(process.pid))


@needs_asyncio_tools
def test_dump_process_tasks_kills_the_tool_on_timeout_and_cancellation(
    watch_program: Program,
) -> None:
    before = child_pids()

    async def cancel_soon() -> None:
        task = asyncio.create_task(dump_process_tasks(watch_program.pid))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with pytest.raises(TimeoutError, match=r"did not finish within 0\.001 s"):
        asyncio.run(dump_process_tasks(watch_program.pid, timeout=0.001))
    assert child_pids() == before
    asyncio.run(cancel_soon())
    assert child_pids() == before


@pytest.mark.skipif(sys.version_info >= (3, 14), reason="tests the error on Python < 3.14")
def test_dump_process_tasks_needs_python_314() -> None:
    with pytest.raises(RuntimeError, match=r"needs Python 3\.14 or newer; this is Python 3\.\d+"):
        asyncio.run(dump_process_tasks(os.getpid()))


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"pid": "123"}, TypeError, "pid must be an int"),
        ({"pid": True}, TypeError, "pid must be an int"),
        ({"pid": 0}, ValueError, "pid must be a positive process ID"),
        ({"pid": 1, "timeout": 0}, ValueError, "timeout must be a positive number"),
        ({"pid": 1, "timeout": float("nan")}, ValueError, "timeout must be a positive number"),
    ],
)
def test_dump_process_tasks_rejects_bad_arguments(
    arguments: Dict[str, Any], error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        asyncio.run(dump_process_tasks(**arguments))
