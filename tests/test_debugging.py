"""Behaviour, fault and bad-input tests for recipes/debugging.py and the chapter's claims."""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
import re
import sys
import time
import warnings
from typing import Any, AsyncIterator, Awaitable, Callable, Dict, List

import looptime
import pytest

from recipes.debugging import dump_tasks, make_exception_handler

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
