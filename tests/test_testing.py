"""Behaviour, fault, bad-input and load tests for recipes/testing.py.

The chapter's example test files (``.. code-block:: python`` with a file name as
caption) are taken from the module docstring as the page shows them and run as
real pytest sessions in a temporary directory (``pytester``), with the chapter's
own ``pytest.ini``.  Their outcomes are what the chapter says they are, on the
pytest, pytest-asyncio and looptime that pip installs for this interpreter.
"""

from __future__ import annotations

import ast
import asyncio
import gc
import re
import sys
import textwrap
import warnings
from importlib.metadata import version
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

import recipes.testing
from recipes.testing import (
    AwaitRecorder,
    assert_cancels,
    no_leaked_tasks,
    no_unawaited_coroutines,
)

ROOT = Path(__file__).resolve().parent.parent
CAPTIONED_BLOCK = re.compile(
    r"^(?P<indent>[ ]*)\.\. code-block:: \w+\n(?P=indent)[ ]+:caption: (?P<name>\S+)\n\n"
    r"(?P<body>(?:(?P=indent)[ ]+.*\n|\n)+)",
    re.MULTILINE,
)
HANG = 3600.0


def _major_minor(distribution: str) -> Tuple[int, int]:
    major, minor = re.findall(r"\d+", version(distribution))[:2]
    return int(major), int(minor)


def chapter_files() -> Dict[str, str]:
    """caption -> text of every captioned code block in the chapter, as the page shows it."""
    source = Path(recipes.testing.__file__).read_text(encoding="utf-8")
    docstring = ast.get_docstring(ast.parse(source)) or ""
    files = {}
    for match in CAPTIONED_BLOCK.finditer(docstring + "\n"):
        files[match.group("name")] = textwrap.dedent(match.group("body")).strip("\n") + "\n"
    return files


FILES = chapter_files()


def test_the_chapter_shows_its_example_files() -> None:
    assert set(FILES) == {
        "pytest.ini",
        "test_greeter.py",
        "test_shared_loop.py",
        "test_virtual_time.py",
        "conftest.py",
        "test_leaks.py",
    }
    assert "async def test_forgot_the_marker" in FILES["test_greeter.py"]


@pytest.fixture
def session(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Any:
    """run(*files) writes the chapter's files and pytest.ini, runs pytest in a subprocess."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # recipes.testing, for the conftest example
    (pytester.path / "pytest.ini").write_text(FILES["pytest.ini"], encoding="utf-8")

    def run(*names: str, extra: Dict[str, str] = {}) -> pytest.RunResult:  # noqa: B006
        for name in names:
            (pytester.path / name).write_text(FILES[name], encoding="utf-8")
        for name, text in extra.items():
            (pytester.path / name).write_text(text, encoding="utf-8")
        return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rA", timeout=120)

    return run


# --- the example test files, run as pytest sessions -------------------------------------


def test_greeter_passes_three_and_fails_the_test_without_marker(session: Any) -> None:
    result = session("test_greeter.py")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["FAILED test_greeter.py::test_forgot_the_marker*"])
    result.stdout.fnmatch_lines(["*async def functions are not natively supported*"])


def test_the_marker_is_needed_even_in_a_file_that_imports_pytest_asyncio(session: Any) -> None:
    # The failing test is not an artefact of the other tests in the file.
    only = FILES["test_greeter.py"].split("@pytest.mark.asyncio")[0]
    only += "\n\nasync def test_alone():\n    assert await greet('x')\n"
    result = session(extra={"test_alone.py": only})
    result.assert_outcomes(failed=1)


def test_shared_loop_runs_the_module_on_one_loop(session: Any) -> None:
    result = session("test_shared_loop.py")
    result.assert_outcomes(passed=3)


def test_shared_loop_needs_matching_loop_scopes(session: Any) -> None:
    """Without loop_scope on the tests, the last test sees three loops, and fails."""
    text = (
        FILES["test_shared_loop.py"]
        .replace(
            'pytestmark = pytest.mark.asyncio(loop_scope="module")',
            "pytestmark = pytest.mark.asyncio",
        )
        .replace("reader.readline(), 5)", "reader.readline(), 0.5)")
    )  # a server on another loop
    assert text.count("0.5)") == 1
    result = session(extra={"test_shared_loop.py": text})
    result.stdout.fnmatch_lines(["FAILED test_shared_loop.py::test_one_loop_for_the_module*"])


PYTEST_ASYNCIO = _major_minor("pytest-asyncio")
LOOPTIME_MARKER_IGNORED = _major_minor("looptime") < (0, 7) and PYTEST_ASYNCIO >= (1, 0)


def test_virtual_time_file_outcomes_match_the_chapter(session: Any) -> None:
    result = session("test_virtual_time.py")
    if LOOPTIME_MARKER_IGNORED:
        # Python 3.9: looptime 0.3 with pytest-asyncio 1.2, as the chapter warns.
        result.assert_outcomes(passed=1, failed=1)
        result.stdout.fnmatch_lines(["FAILED test_virtual_time.py::test_backoff_schedule*"])
    else:
        result.assert_outcomes(passed=2)


def test_the_chapter_names_the_versions_this_interpreter_gets() -> None:
    doc = recipes.testing.__doc__ or ""
    table = doc.split("=============  ========  ==============  ========")[2]
    rows = {}
    for line in table.strip().splitlines():
        *python, pytest_v, asyncio_v, looptime_v = line.split()
        rows[" ".join(python)] = (pytest_v, asyncio_v, looptime_v)
    minor = sys.version_info[1]
    key = "3.11 to 3.15" if minor >= 11 else f"3.{minor}"
    assert rows[key] == (version("pytest"), version("pytest-asyncio"), version("looptime"))
    assert LOOPTIME_MARKER_IGNORED == (minor == 9)


def test_the_event_loop_fixture_is_gone_in_pytest_asyncio_1(session: Any) -> None:
    text = "def test_old_style(event_loop):\n    assert event_loop is not None\n"
    result = session(extra={"test_old.py": text})
    if PYTEST_ASYNCIO >= (1, 0):
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines(["*fixture 'event_loop' not found*"])
    else:
        # 0.24 still provides it (and, requested like this, does not warn).
        result.assert_outcomes(passed=1)


PYTEST = _major_minor("pytest")


def test_an_async_fixture_needs_the_pytest_asyncio_decorator(session: Any) -> None:
    text = (
        "import pytest\n\n\n@pytest.fixture\nasync def answer():\n    return 42\n\n\n"
        "@pytest.mark.asyncio\nasync def test_answer(answer):\n    assert answer == 42\n"
    )
    result = session(extra={"test_fixture.py": text})
    if PYTEST >= (8, 4):
        result.assert_outcomes(errors=1)  # 9: an error; 8.4: a warning, made an error
        result.stdout.fnmatch_lines(["*requested an async fixture 'answer'*"])
    else:
        result.assert_outcomes(failed=1)  # 8.3: the test got the coroutine object
        result.stdout.fnmatch_lines(["*assert <coroutine object answer at *> == 42"])


def _ini_without_fixture_scope() -> str:
    ini = FILES["pytest.ini"].replace("asyncio_default_fixture_loop_scope = function\n", "")
    assert ini != FILES["pytest.ini"]
    return ini


def test_an_unset_fixture_loop_scope_stops_pytest_9(session: Any) -> None:
    result = session("test_greeter.py", extra={"pytest.ini": _ini_without_fixture_scope()})
    if PYTEST >= (9, 0):
        assert result.ret == pytest.ExitCode.INTERNAL_ERROR
        result.stderr.fnmatch_lines(['*"asyncio_default_fixture_loop_scope" is unset*'])
    else:
        result.assert_outcomes(passed=3, failed=1)  # pytest 8: the run carries on


def test_an_option_of_pytest_asyncio_1_stops_a_run_on_0_24(session: Any) -> None:
    ini = FILES["pytest.ini"].replace("[pytest]\n", "[pytest]\nasyncio_debug = true\n")
    result = session("test_greeter.py", extra={"pytest.ini": ini})
    if PYTEST_ASYNCIO >= (1, 0):
        result.assert_outcomes(passed=3, failed=1)
    else:
        assert result.ret == pytest.ExitCode.INTERNAL_ERROR
        result.stdout.fnmatch_lines(["*Unknown config option: asyncio_debug*"])


def test_leak_fixture_turns_leaks_into_errors_of_the_right_tests(session: Any) -> None:
    result = session("conftest.py", "test_leaks.py")
    result.assert_outcomes(passed=3, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_leaves_its_task_running*",
            "E * AssertionError: 1 task(s) left running: ticker (tick())",
            "*ERROR at teardown of test_forgets_an_await*",
            "E * AssertionError: 1 coroutine(s) never awaited: tick",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "ERROR test_leaks.py::test_leaves_its_task_running - AssertionError: 1 task*",
            "ERROR test_leaks.py::test_forgets_an_await - AssertionError: 1 coroutine*",
        ]
    )


def test_leak_fixture_passes_a_suite_without_leaks(session: Any) -> None:
    clean = FILES["test_leaks.py"].split("async def test_leaves_its_task_running")[0]
    result = session("conftest.py", extra={"test_leaks.py": clean})
    result.assert_outcomes(passed=1)


# --- no_leaked_tasks --------------------------------------------------------------------


async def forever() -> None:
    while True:
        await asyncio.sleep(1)


def test_no_leaked_tasks_passes_when_every_task_finished(run_virtual: Any) -> None:
    async def main() -> None:
        async with no_leaked_tasks():
            done = asyncio.create_task(asyncio.sleep(0.1))
            await done

    run_virtual(main)


def test_no_leaked_tasks_reports_cancels_and_reaps_each_leftover(run_virtual: Any) -> None:
    async def main() -> List[asyncio.Task[None]]:
        tasks = []
        with pytest.raises(AssertionError, match=r"^2 task\(s\) left running: a \(forever"):
            async with no_leaked_tasks():
                tasks = [asyncio.create_task(forever(), name=n) for n in "ba"]
        return tasks

    tasks = run_virtual(main)  # run_virtual itself fails if any task is still running
    assert [t.cancelled() for t in tasks] == [True, True]


def test_no_leaked_tasks_ignores_tasks_started_before_the_block(run_virtual: Any) -> None:
    async def main() -> None:
        older = asyncio.create_task(forever())
        async with no_leaked_tasks():
            await asyncio.sleep(0.5)
        assert not older.done()
        older.cancel()
        await asyncio.gather(older, return_exceptions=True)

    run_virtual(main)


def test_no_leaked_tasks_grace_lets_finishing_tasks_finish(run_virtual: Any) -> None:
    async def main() -> None:
        async with no_leaked_tasks(grace=0.4):
            task = asyncio.create_task(asyncio.sleep(0.2))
        assert task.done() and not task.cancelled()
        with pytest.raises(AssertionError, match="1 task"):
            async with no_leaked_tasks(grace=0.1):
                task = asyncio.create_task(asyncio.sleep(0.2))
        assert task.cancelled()

    run_virtual(main)


def test_no_leaked_tasks_lets_the_blocks_error_win_and_still_cancels(run_virtual: Any) -> None:
    async def main() -> asyncio.Task[None]:
        with pytest.raises(KeyError):
            async with no_leaked_tasks():
                task = asyncio.create_task(forever())
                raise KeyError("boom")
        return task

    assert run_virtual(main).cancelled()


def stubborn_worker() -> Tuple[Any, Dict[str, bool]]:
    """A coroutine function that ignores cancellation until ``state["give_up"]`` is set."""
    state = {"give_up": False}

    async def stubborn() -> None:
        while True:
            try:
                await asyncio.sleep(1)
            except asyncio.CancelledError:
                if state["give_up"]:
                    raise

    return stubborn, state


async def finish(task: asyncio.Task[Any], state: Dict[str, bool]) -> None:
    state["give_up"] = True
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def test_no_leaked_tasks_reports_a_task_that_ignores_cancel(run_virtual: Any) -> None:
    stubborn, state = stubborn_worker()

    async def main() -> None:
        with pytest.raises(AssertionError, match=r"1 task\(s\) left running: x \(.*stubborn"):
            async with no_leaked_tasks(reap=0.5):
                task = asyncio.create_task(stubborn(), name="x")
                await asyncio.sleep(0)  # started: inside its try block
        assert not task.done()  # the check said so instead of hanging
        await finish(task, state)

    run_virtual(main)


@pytest.mark.parametrize("kwargs", [{"grace": -1}, {"reap": 0}])
def test_no_leaked_tasks_rejects_bad_arguments(run_virtual: Any, kwargs: Any) -> None:
    async def main() -> None:
        with pytest.raises(ValueError, match="grace >= 0 and reap > 0"):
            async with no_leaked_tasks(**kwargs):
                pass

    run_virtual(main)


def test_no_leaked_tasks_under_load(run_virtual: Any) -> None:
    async def main() -> List[asyncio.Task[None]]:
        with pytest.raises(AssertionError, match=r"^1000 task\(s\) left running"):
            async with no_leaked_tasks():
                tasks = [asyncio.create_task(forever()) for _ in range(1000)]
                finished = [asyncio.create_task(asyncio.sleep(0)) for _ in range(1000)]
                await asyncio.gather(*finished)
        return tasks

    assert all(t.cancelled() for t in run_virtual(main))


# --- no_unawaited_coroutines ------------------------------------------------------------


async def job() -> None:
    await asyncio.sleep(0)


def test_no_unawaited_coroutines_names_each_dropped_coroutine() -> None:
    with pytest.raises(AssertionError, match=r"^2 coroutine\(s\) never awaited: .*job, .*job$"):
        with no_unawaited_coroutines():
            job()
            job()


def test_no_unawaited_coroutines_catches_one_in_a_reference_cycle() -> None:
    with pytest.raises(AssertionError, match=r"never awaited: .*job"):
        with no_unawaited_coroutines():
            holder: List[Any] = [job()]
            holder.append(holder)  # only the gc pass at the end frees it
            del holder


def test_no_unawaited_coroutines_without_collect_misses_only_cycles() -> None:
    with pytest.raises(AssertionError, match=r"^1 coroutine\(s\) never awaited: .*job$"):
        with no_unawaited_coroutines(collect=False):
            job()  # destroyed at once: caught
            holder: List[Any] = [job()]
            holder.append(holder)  # freed only by a later collection: not caught here
            del holder
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        gc.collect()  # the cycle's coroutine warns now; keep it out of other tests


def test_no_unawaited_coroutines_passes_awaited_and_closed_coroutines(run_virtual: Any) -> None:
    async def main() -> List[str]:
        with no_unawaited_coroutines() as found:
            await job()
            job().close()  # closing is a decision too: no warning
        return found

    assert run_virtual(main) == []


def test_no_unawaited_coroutines_re_emits_other_warnings() -> None:
    with pytest.warns(UserWarning, match="unrelated"):
        with no_unawaited_coroutines():
            with warnings.catch_warnings():
                warnings.simplefilter("always")
                warnings.warn("unrelated", UserWarning, stacklevel=1)


def test_no_unawaited_coroutines_lets_the_blocks_error_win() -> None:
    with pytest.raises(KeyError):
        with no_unawaited_coroutines():
            job()
            raise KeyError("boom")


# --- assert_cancels ---------------------------------------------------------------------


def test_assert_cancels_passes_a_coroutine_that_cleans_up_and_ends_cancelled(
    run_virtual: Any,
) -> None:
    async def main() -> List[str]:
        log = []
        ready = asyncio.Event()

        async def worker() -> None:
            try:
                ready.set()
                await asyncio.sleep(HANG)
            finally:
                await asyncio.sleep(0.5)
                log.append("cleaned")

        await assert_cancels(worker(), after=ready, within=1)
        return log

    assert run_virtual(main) == ["cleaned"]


def test_assert_cancels_waits_for_the_event_not_for_time(run_virtual: Any) -> None:
    async def main() -> float:
        ready = asyncio.Event()
        loop = asyncio.get_running_loop()

        async def late() -> None:
            await asyncio.sleep(0.5)  # reaches the interesting point late
            ready.set()
            await asyncio.sleep(HANG)

        start = loop.time()
        await assert_cancels(late(), after=ready)
        return loop.time() - start

    assert run_virtual(main) >= 0.5


@pytest.mark.parametrize(
    "body, message",
    [
        ("return 'done'", r"finished before it was cancelled"),
        ("raise ValueError('early')", r"finished before it was cancelled"),
        (
            "try:\n    await asyncio.sleep(3600)\nexcept asyncio.CancelledError:\n    return 'no'",
            r"swallowed the cancellation and returned 'no'",
        ),
        (
            "try:\n    await asyncio.sleep(3600)\nfinally:\n    raise OSError('cleanup')",
            r"raised OSError\('cleanup'\) instead of CancelledError",
        ),
        (
            "try:\n    await asyncio.sleep(3600)\nfinally:\n    await asyncio.sleep(60)",
            r"still running 1 s after cancel\(\)$",
        ),
    ],
    ids=["finished", "failed-early", "swallowed", "raised", "slow-cleanup"],
)
def test_assert_cancels_fails_each_misbehaviour(run_virtual: Any, body: str, message: str) -> None:
    namespace: Dict[str, Any] = {"asyncio": asyncio}
    exec("async def bad():\n" + textwrap.indent(body, "    "), namespace)

    async def main() -> None:
        with pytest.raises(AssertionError, match=message):
            await assert_cancels(namespace["bad"](), after=0.1)

    run_virtual(main)  # and nothing is left running


def test_assert_cancels_reports_a_coroutine_that_never_stops(run_virtual: Any) -> None:
    stubborn, state = stubborn_worker()

    async def main() -> None:
        before = asyncio.all_tasks()
        with pytest.raises(AssertionError, match="it is still running"):
            await assert_cancels(stubborn(), within=0.5)
        (task,) = asyncio.all_tasks() - before
        await finish(task, state)

    run_virtual(main)


def test_assert_cancels_cancels_the_task_when_the_caller_is_cancelled(run_virtual: Any) -> None:
    async def main() -> bool:
        started = asyncio.Event()
        inner_cancelled = asyncio.Event()

        async def victim() -> None:
            started.set()
            try:
                await asyncio.sleep(HANG)
            except asyncio.CancelledError:
                inner_cancelled.set()
                raise

        checker = asyncio.create_task(assert_cancels(victim(), after=HANG))
        await asyncio.wait_for(started.wait(), 1)
        checker.cancel()
        with pytest.raises(asyncio.CancelledError):
            await checker
        await asyncio.wait_for(inner_cancelled.wait(), 1)
        return True

    assert run_virtual(main)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"within": 0}, "within must be > 0"), ({"after": -1}, "after must be >= 0")],
)
def test_assert_cancels_rejects_bad_arguments(run_virtual: Any, kwargs: Any, message: str) -> None:
    async def main() -> None:
        coro = job()
        with pytest.raises(ValueError, match=message):
            await assert_cancels(coro, **kwargs)
        coro.close()

    run_virtual(main)


# --- AwaitRecorder ----------------------------------------------------------------------


def test_await_recorder_shows_overlap_and_sequence(run_virtual: Any) -> None:
    async def main() -> Tuple[List[str], List[str]]:
        recorder = AwaitRecorder()
        a = recorder.mock("a", delay=0.2)
        b = recorder.mock("b", delay=0.3)
        await asyncio.gather(a(), b())
        overlapped = list(recorder.events)
        recorder.events.clear()
        await a()
        await b()
        return overlapped, recorder.events

    overlapped, sequential = run_virtual(main)
    assert overlapped == ["a() awaited", "b() awaited", "a() returned", "b() returned"]
    assert sequential == ["a() awaited", "a() returned", "b() awaited", "b() returned"]


def test_await_recorder_mocks_are_real_async_mocks(run_virtual: Any) -> None:
    async def main() -> Any:
        recorder = AwaitRecorder()
        get = recorder.mock("get", result={"x": 1})
        value = await get("k", default=None)
        get.assert_awaited_once_with("k", default=None)
        return value, recorder.events

    value, events = run_virtual(main)
    assert value == {"x": 1}
    assert events == ["get('k', default=None) awaited", "get('k', default=None) returned"]


def test_await_recorder_under_load(run_virtual: Any) -> None:
    async def main() -> AwaitRecorder:
        recorder = AwaitRecorder()
        work = recorder.mock("work", delay=0.2)
        await asyncio.gather(*(work(n) for n in range(500)))
        assert work.await_count == 500
        return recorder

    events = run_virtual(main).events
    assert len(events) == 1000
    assert all(e.endswith("awaited") for e in events[:500])  # all 500 ran at once


def test_await_recorder_rejects_a_negative_delay() -> None:
    with pytest.raises(ValueError, match="delay must be >= 0"):
        AwaitRecorder().mock("x", delay=-1)


def test_await_recorder_logs_what_a_timeout_interrupted_and_errors(run_virtual: Any) -> None:
    async def main() -> List[str]:
        recorder = AwaitRecorder()
        slow = recorder.mock("slow", delay=HANG)
        failing = recorder.mock("failing", error=KeyError("k"))
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(slow(1), timeout=0.2)
        with pytest.raises(KeyError):
            await failing()
        return recorder.events

    assert run_virtual(main) == [
        "slow(1) awaited",
        "slow(1) cancelled",
        "failing() awaited",
        "failing() raised KeyError",
    ]
