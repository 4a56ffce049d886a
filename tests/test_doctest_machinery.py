"""Tests of the async doctest plugin in the root conftest.py.

Each test writes a small module with a docstring into a scratch directory,
runs pytest on it in a subprocess with the project's conftest, and checks the
outcome.  These are the promises every recipe's examples rely on.
"""

from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT_CONFTEST = Path(__file__).resolve().parent.parent / "conftest.py"
PYTEST_ARGS = ("--doctest-modules", "-p", "no:looptime_plugin", "-p", "no:cacheprovider", "-rs")


@pytest.fixture
def doctest_run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    """Return ``run(source, *args, real_clock=False)`` -> RunResult for a module docstring."""
    pytester.makeconftest(ROOT_CONFTEST.read_text(encoding="utf-8"))
    pytester.makeini(
        "[pytest]\nfilterwarnings =\n    error\ndoctest_optionflags = ELLIPSIS\n"
        "asyncio_default_fixture_loop_scope = function\n"
    )

    def run(source: str, *args: str, real_clock: bool = False, name: str = "sample"):
        if real_clock:
            monkeypatch.setenv("COOKBOOK_REAL_CLOCK", "1")
        else:
            monkeypatch.delenv("COOKBOOK_REAL_CLOCK", raising=False)
        pytester.makepyfile(**{name: textwrap.dedent(source)})
        return pytester.runpytest_subprocess(*PYTEST_ARGS, *args, timeout=120)

    return run


def test_top_level_await_runs(doctest_run):
    result = doctest_run(
        '''
        """
        >>> import asyncio
        >>> await asyncio.sleep(0, "slept")
        'slept'
        """
        '''
    )
    result.assert_outcomes(passed=1)


def test_examples_see_only_what_they_import_not_the_module_globals(doctest_run):
    # A reader's REPL has none of the module's names: an example that leans on them fails.
    result = doctest_run(
        '''
        """
        >>> helper()
        'from the module'
        """

        def helper():
            """
            >>> from sample import helper
            >>> helper()
            'from the module'
            """
            return "from the module"
        '''
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*NameError: name 'helper' is not defined*"])


def test_wrong_expected_output_fails(doctest_run):
    result = doctest_run(
        '''
        """
        >>> import asyncio
        >>> await asyncio.sleep(0, "got this")
        'expected that'
        """
        '''
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["Expected:", "*'expected that'", "Got:", "*'got this'"])


def test_exception_in_awaited_example_is_reported(doctest_run):
    result = doctest_run(
        '''
        """
        >>> async def boom():
        ...     raise ValueError("nope")
        >>> await boom()
        42
        """
        '''
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*ValueError: nope*"])


def test_task_survives_across_examples(doctest_run):
    result = doctest_run(
        '''
        """
        >>> import asyncio
        >>> ticks = []
        >>> async def ticker():
        ...     while True:
        ...         ticks.append(len(ticks))
        ...         await asyncio.sleep(1)
        >>> task = asyncio.create_task(ticker(), name="ticker")
        >>> await asyncio.sleep(2.5)
        >>> task.done(), ticks
        (False, [0, 1, 2])
        >>> queue = asyncio.Queue()
        >>> await asyncio.sleep(1)
        >>> task.get_name(), task.done(), len(ticks)
        ('ticker', False, 4)
        """
        '''
    )
    result.assert_outcomes(passed=1)


def test_leftover_tasks_are_cancelled_and_awaited(doctest_run, tmp_path):
    marker = tmp_path / "cleanup-ran"
    result = doctest_run(
        f'''
        """
        >>> import asyncio, pathlib
        >>> async def forever():
        ...     try:
        ...         await asyncio.sleep(3600)
        ...     finally:
        ...         print("TEARDOWN-" + "NOISE")
        ...         pathlib.Path({str(marker)!r}).write_text("yes")
        >>> task = asyncio.create_task(forever())
        >>> await asyncio.sleep(0)
        >>> async def numbers():
        ...     try:
        ...         yield 1
        ...         yield 2
        ...     finally:
        ...         print("ASYNCGEN-" + "NOISE")
        >>> gen = numbers()
        >>> await gen.__anext__()
        1
        """
        ''',
        "-s",
    )
    result.assert_outcomes(passed=1)
    assert marker.read_text() == "yes"
    # What a task prints while torn down belongs to no example: not in the report.
    assert "TEARDOWN-NOISE" not in result.stdout.str()
    assert "ASYNCGEN-NOISE" not in result.stdout.str()


def test_examples_that_start_their_own_loop_run_outside(doctest_run):
    result = doctest_run(
        '''
        """
        >>> import asyncio
        >>> async def main():
        ...     return "ran"
        >>> asyncio.run(main())
        'ran'
        """
        '''
    )
    result.assert_outcomes(passed=1)


def test_one_hour_sleep_is_instant_on_the_virtual_clock(doctest_run):
    result = doctest_run(
        '''
        """
        >>> import asyncio, time
        >>> loop = asyncio.get_running_loop()
        >>> wall, start = time.monotonic(), loop.time()
        >>> await asyncio.sleep(3600)
        >>> round(loop.time() - start)
        3600
        >>> time.monotonic() - wall < 60
        True
        """
        '''
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*virtual clock*3600.0 s*"])


def test_real_clock_switch_uses_the_real_clock(doctest_run):
    source = '''
        """
        >>> import asyncio, time
        >>> wall = time.monotonic()
        >>> await asyncio.sleep(0.3)
        >>> time.monotonic() - wall >= 0.3
        True
        """
        '''
    started = time.monotonic()
    result = doctest_run(source, real_clock=True)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*real clock*"])
    assert time.monotonic() - started >= 0.3
    # The same docstring fails on the virtual clock, which proves the switch matters.
    doctest_run(source).assert_outcomes(failed=1)


def _gate(offset: int) -> str:
    """A version tuple relative to the running interpreter's minor version."""
    return f"(3, {sys.version_info.minor + offset})"


def test_gated_module_is_skipped_unimported_on_older_python(doctest_run):
    result = doctest_run(
        f'''
        """
        >>> 1 + 1
        3
        """
        __requires_python__ = {_gate(+1)}
        this line is not valid Python on any interpreter
        '''
    )
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines([f"SKIPPED*requires Python >= 3.{sys.version_info.minor + 1}*"])


def test_gated_module_runs_on_new_enough_python(doctest_run):
    result = doctest_run(
        f'''
        """
        >>> 1 + 1
        3
        """
        __requires_python__ = {_gate(0)}
        '''
    )
    # It ran: the wrong expectation is caught.
    result.assert_outcomes(failed=1)


def _flag(offset: int) -> str:
    minor = sys.version_info.minor + offset
    return f"PY3{minor}"


def test_gated_example_is_skipped_with_reason(doctest_run):
    result = doctest_run(
        f'''
        """
        >>> print("old and new")
        old and new
        >>> print("future")  # doctest: +{_flag(+1)}
        something else entirely
        """
        '''
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*version-gated doctest examples skipped*",
            f"*requires Python >= 3.{sys.version_info.minor + 1}",
        ]
    )


@pytest.mark.skipif(sys.version_info < (3, 9), reason="the oldest gate flag is PY39")
def test_gated_example_runs_on_new_enough_python(doctest_run):
    result = doctest_run(
        f'''
        """
        >>> print("now")  # doctest: +{_flag(0)}
        something else entirely
        """
        '''
    )
    result.assert_outcomes(failed=1)


def test_docstring_with_only_gated_examples_is_skipped(doctest_run):
    result = doctest_run(
        f'''
        """
        >>> print("future")  # doctest: +{_flag(+1)}
        future
        """
        '''
    )
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines([f"SKIPPED*requires Python >= 3.{sys.version_info.minor + 1}*"])


def test_unawaited_coroutine_fails_the_test(doctest_run):
    result = doctest_run(
        '''
        """
        >>> import asyncio, gc
        >>> async def work():
        ...     return 1
        >>> _ = work()
        >>> del _
        >>> _ = gc.collect()
        """
        '''
    )
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*was never awaited*"])


def test_unclosed_loop_fails_the_test(doctest_run):
    result = doctest_run(
        '''
        """
        >>> import asyncio, gc
        >>> loop = asyncio.new_event_loop()
        >>> del loop
        >>> _ = gc.collect()
        """
        '''
    )
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*ResourceWarning: unclosed*"])


def test_each_docstring_gets_a_fresh_loop(doctest_run):
    result = doctest_run(
        '''
        """
        >>> import asyncio
        >>> loop = asyncio.get_running_loop()
        >>> round(loop.time())
        0
        >>> await asyncio.sleep(100)
        """

        def second():
            """
            >>> import asyncio
            >>> round(asyncio.get_running_loop().time())
            0
            """
        '''
    )
    result.assert_outcomes(passed=2)


def test_sleep_between_microseconds_finishes_on_the_virtual_clock(doctest_run):
    # looptime < 0.9 (Python 3.8-3.10) hangs on such a deadline unless the plugin rounds it.
    result = doctest_run(
        '''
        """
        >>> import asyncio
        >>> loop = asyncio.get_running_loop()
        >>> await asyncio.wait_for(asyncio.sleep(1 / 3, "woke"), timeout=5)
        'woke'
        >>> round(loop.time(), 3)
        0.333
        """
        '''
    )
    result.assert_outcomes(passed=1)
