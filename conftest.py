"""Async doctests for the cookbook: top-level ``await``, a virtual clock, version gates.

The recipes' docstrings are written the way a reader types into
``python -m asyncio``.  Plain ``doctest`` cannot run them, so this plugin
changes three things for every doctest that ``pytest --doctest-modules``
collects:

* Every example is compiled with ``PyCF_ALLOW_TOP_LEVEL_AWAIT``.  An example
  that awaits becomes a coroutine, which runs as a task on the docstring's
  event loop.  Plain examples also run inside that loop (as the asyncio REPL
  does), so ``asyncio.create_task(...)`` and ``asyncio.Queue()`` work at the
  top level.  Plain examples that start their own loop (``asyncio.run``,
  ``asyncio.Runner``, ``run_until_complete``...) run outside it.
* Each docstring's examples run in a namespace of their own that holds only what
  they import or define (and ``base_url``/``dsn``, below): not the module's globals,
  which a reader's REPL does not have either.
* One event loop per docstring: names and running tasks carry from one example
  to the next.  Afterwards leftover tasks are cancelled and awaited, async
  generators are shut down, the default executor is joined and the loop closed.
* The loop runs on a virtual clock (``looptime``), so ``await
  asyncio.sleep(3600)`` costs no wall time.  ``COOKBOOK_REAL_CLOCK=1`` switches
  to the real clock.

Local servers for the I/O chapters (never the internet, never mocks):

* A docstring that mentions ``base_url`` gets the demo aiohttp application of
  ``tests/http_server.py`` served on 127.0.0.1 (random port) *on the
  docstring's own loop*, and ``base_url`` in its namespace.
* A docstring that mentions ``dsn`` gets the DSN of the session's throwaway
  PostgreSQL (``tests/pg_cluster.py``; ``COOKBOOK_POSTGRES_DSN`` names an
  existing server instead) and runs on the real clock, because the server is
  another process and a virtual clock would jump past its answers.

Version gates:

* A module that needs a newer Python says so in a line of its own,
  ``__requires_python__ = (3, 11)``.  It is read as text, so on an older
  interpreter the module is skipped without being imported (it may use syntax
  such as ``except*`` that older parsers reject).
* A single example is gated with a doctest option, ``# doctest: +PY311``
  (``PY39`` ... ``PY315``).  Sphinx strips ``# doctest:`` comments, so the
  gates never reach the HTML.  A docstring whose every example is gated is
  reported as skipped with the reason; gated examples inside a docstring that
  otherwise runs are listed in the terminal summary.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import contextvars
import doctest
import inspect
import io
import logging
import math
import os
import re
import sys
import time
import types
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
from _pytest.doctest import DoctestItem

REAL_CLOCK_ENV = "COOKBOOK_REAL_CLOCK"
GATE_RE = re.compile(r"^__requires_python__\s*=\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)", re.MULTILINE)
# Option flags that gate one example: PY39 means "needs Python >= 3.9".  They run up to the
# newest Python in the matrix (3.15) and always one past the running interpreter, so an example
# (or a test of this machinery) can be gated to a version that is newer than the one running.
NEWEST_PYTHON_IN_MATRIX = (3, 15)
VERSION_FLAGS: Dict[int, Tuple[int, int]] = {
    doctest.register_optionflag(f"PY3{minor}"): (3, minor)
    for minor in range(9, max(NEWEST_PYTHON_IN_MATRIX[1], sys.version_info.minor) + 2)
}
# Names that mark a plain example as one that drives its own event loop.
OWN_LOOP_NAMES = frozenset(
    {
        "run",
        "Runner",
        "run_until_complete",
        "run_forever",
        "new_event_loop",
        "get_event_loop",
        "run_with_loop_factory",
    }
)

_postgres: Any = None


def session_postgres_dsn() -> str:
    """The DSN of the PostgreSQL shared by this test session, started on first use."""
    global _postgres
    if _postgres is None:
        from tests.pg_cluster import ThrowawayPostgres

        _postgres = ThrowawayPostgres()
        _postgres.start()
    return str(_postgres.dsn)


def pytest_sessionfinish(session: pytest.Session) -> None:
    global _postgres
    if _postgres is not None:
        _postgres.stop()
        _postgres = None


_stats = {"docstrings": 0, "loop_seconds": 0.0, "wall_seconds": 0.0}
_gated_examples: List[str] = []


def real_clock() -> bool:
    return os.environ.get(REAL_CLOCK_ENV, "").lower() not in ("", "0", "false", "no")


def new_doctest_loop() -> asyncio.AbstractEventLoop:
    if real_clock():
        return asyncio.new_event_loop()
    import looptime

    loop = looptime.new_event_loop(start=0)
    if _looptime_version() < (0, 9):
        _round_timers_to_microseconds(loop)
    return loop


def _looptime_version() -> Tuple[int, ...]:
    from importlib.metadata import version

    return tuple(int(part) for part in re.findall(r"\d+", version("looptime"))[:2])


def _round_timers_to_microseconds(loop: asyncio.AbstractEventLoop) -> None:
    """Work around looptime < 0.9 (all pip offers Python 3.8-3.10).

    Its clock moves in whole microseconds and never reaches a timer set between
    two of them: ``await asyncio.sleep(1 / 3)`` hangs for ever.  Rounding every
    deadline up to the next microsecond keeps readers' sleeps working as written.
    """
    call_at = loop.call_at

    def call_at_whole_microsecond(when: float, callback: Any, *args: Any, **kwargs: Any) -> Any:
        return call_at(math.ceil(round(when * 1e6, 3)) / 1e6, callback, *args, **kwargs)

    loop.call_at = call_at_whole_microsecond  # type: ignore[method-assign]


def required_python(source: str) -> Optional[Tuple[int, int]]:
    match = GATE_RE.search(source)
    return (int(match.group(1)), int(match.group(2))) if match else None


# --- whole-module gates ----------------------------------------------------


class GatedModule(pytest.File):
    """Stands in for a module too new for this interpreter; never imports it."""

    required: Tuple[int, int] = (0, 0)

    def collect(self) -> Iterator[Any]:
        major, minor = self.required
        pytest.skip(f"requires Python >= {major}.{minor}")
        yield  # pragma: no cover - makes this a generator, as collect() must be


@pytest.hookimpl(hookwrapper=True)
def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> Iterator[None]:
    outcome = yield
    if file_path.suffix != ".py":
        return
    collected = outcome.get_result()
    if not collected:
        return
    try:
        required = required_python(file_path.read_text(encoding="utf-8"))
    except OSError:
        return
    if required is None or sys.version_info >= required:
        return
    gated = GatedModule.from_parent(parent, path=file_path)
    gated.required = required
    outcome.force_result([gated])


# --- running one docstring -------------------------------------------------


def _names(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _names(const)


class DocstringLoop:
    """The event loop, context and exec() replacement for one docstring."""

    def __init__(self, *, real: bool = False) -> None:
        self.real = real or real_clock()
        self.loop = asyncio.new_event_loop() if real else new_doctest_loop()
        self.context = contextvars.copy_context()
        self.cleanups: List[Any] = []

    def serve_demo_app(self) -> str:
        """Serve tests/http_server.py's demo app on this loop; return its base URL."""
        from aiohttp import web

        from tests.crawl_site import make_site_app
        from tests.http_server import make_demo_app

        app = make_demo_app()
        app.add_subapp("/site", make_site_app())
        runner = web.AppRunner(app)
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.cleanups.append(runner.cleanup)
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    def run(self, coro: Any) -> Any:
        if sys.version_info >= (3, 11):
            task = self.loop.create_task(coro, context=self.context)
        else:
            task = self.context.run(self.loop.create_task, coro)
        return self.loop.run_until_complete(task)

    def exec(self, code: Any, globs: Dict[str, Any], *args: Any) -> None:
        if not isinstance(code, types.CodeType):
            exec(code, globs, *args)
        elif code.co_flags & inspect.CO_COROUTINE:
            self.run(eval(code, globs, *args))
        elif OWN_LOOP_NAMES.intersection(_names(code)):
            exec(code, globs, *args)
        else:

            async def run_plain() -> None:
                exec(code, globs, *args)

            self.run(run_plain())

    def close(self) -> None:
        loop = self.loop
        try:
            # What tasks and async generators print while torn down belongs to no
            # example (e.g. one whose gated example was skipped): keep it out of the report.
            with contextlib.redirect_stdout(io.StringIO()):
                self._tear_down()
        finally:
            if not self.real:
                _stats["loop_seconds"] += loop.time()
            loop.close()

    def _tear_down(self) -> None:
        loop = self.loop
        for cleanup in reversed(self.cleanups):
            loop.run_until_complete(cleanup())
        leftover = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in leftover:
            task.cancel()
        if leftover:
            outcomes = loop.run_until_complete(asyncio.gather(*leftover, return_exceptions=True))
            broken = [
                repr(outcome)
                for outcome in outcomes
                if isinstance(outcome, BaseException)
                and not isinstance(outcome, asyncio.CancelledError)
            ]
            if broken:
                raise AssertionError(
                    "a task left running by the examples failed while being cancelled: "
                    + ", ".join(broken)
                )
        loop.run_until_complete(loop.shutdown_asyncgens())
        if sys.version_info >= (3, 9):
            loop.run_until_complete(loop.shutdown_default_executor())


def _required_by(example: doctest.Example) -> Optional[Tuple[int, int]]:
    """The newest Python this example's gate flags ask for, if it is newer than ours."""
    needed = [v for flag, v in VERSION_FLAGS.items() if example.options.get(flag)]
    newest = max(needed, default=None)
    return newest if newest is not None and sys.version_info < newest else None


def gate_examples(test: doctest.DocTest) -> Optional[str]:
    """Mark the examples too new for this Python as skipped.

    Returns the reason to skip the whole docstring when every example is gated, else None
    (the gated examples are listed in the terminal summary).
    """
    reasons = {}
    for example in test.examples:
        required = _required_by(example)
        if required is not None:
            example.options[doctest.SKIP] = True
            reasons[id(example)] = f"requires Python >= {required[0]}.{required[1]}"
    if not reasons:
        return None
    if all(example.options.get(doctest.SKIP) for example in test.examples):
        return max(reasons.values(), key=lambda r: tuple(map(int, r.split()[-1].split("."))))
    for example in test.examples:
        if id(example) in reasons:
            line = example.lineno + (test.lineno or 0) + 1
            _gated_examples.append(f"{test.filename}:{line} ({test.name}): {reasons[id(example)]}")
    return None


LoggerState = Tuple[int, bool, List[logging.Handler], List[Any], bool]


def _logger_states() -> Dict[str, LoggerState]:
    every = dict(logging.Logger.manager.loggerDict, **{"": logging.getLogger()})
    return {
        name: (lg.level, lg.propagate, list(lg.handlers), list(lg.filters), lg.disabled)
        for name, lg in every.items()
        if isinstance(lg, logging.Logger)
    }


def _restore_loggers(before: Dict[str, LoggerState]) -> None:
    """Undo what a docstring did to loggers: the next one starts as a fresh REPL would.

    (A logger left with ``propagate = False`` would also get pytest's capture handlers
    attached in every later test.)
    """
    for name, (level, propagate, handlers, filters, disabled) in _logger_states().items():
        logger = logging.getLogger(name or None)
        if name in before:
            level, propagate, handlers, filters, disabled = before[name]
        else:
            level, propagate, handlers, filters, disabled = logging.NOTSET, True, [], [], False
        logger.setLevel(level)
        logger.propagate = propagate
        logger.handlers[:] = handlers
        logger.filters[:] = filters
        logger.disabled = disabled


@contextlib.contextmanager
def async_doctest(test: doctest.DocTest, runner: doctest.DocTestRunner) -> Iterator[None]:
    """Within this block, ``runner.run(test)`` runs the examples the way the book does.

    Top-level ``await`` on the docstring's own (virtual-clock) loop, a namespace that
    holds only what the examples import or define, and the local servers the docstring
    asks for (``base_url``, ``dsn``).  Afterwards the loop is torn down and closed.
    """
    # A reader's REPL has none of the module's globals: each docstring's examples run in
    # a namespace that holds only what they import or define themselves.
    test.globs.clear()
    test.globs["__name__"] = "__main__"
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    original_run = runner.run
    source = test.docstring or ""
    wants_postgres = re.search(r"\bdsn\b", source) is not None
    docstring_loop = DocstringLoop(real=wants_postgres)
    if wants_postgres:
        test.globs["dsn"] = session_postgres_dsn()
    if re.search(r"\bbase_url\b", source):
        test.globs["base_url"] = docstring_loop.serve_demo_app()
    started = time.perf_counter()

    def run_with_await(
        test: doctest.DocTest,
        compileflags: Optional[int] = None,
        out: Any = None,
        clear_globs: bool = True,
    ) -> Any:
        # Leftover tasks still need the docstring's names while they clean up,
        # so the namespace is cleared only after the loop is closed (below).
        return original_run(test, compileflags=flags, out=out, clear_globs=False)

    runner.run = run_with_await  # type: ignore[method-assign]
    # doctest executes each example through the name ``exec`` in its own module.
    doctest.exec = docstring_loop.exec  # type: ignore[attr-defined]
    loggers = _logger_states()
    try:
        yield
    finally:
        del doctest.exec  # type: ignore[attr-defined]
        runner.run = original_run  # type: ignore[method-assign]
        docstring_loop.close()
        _restore_loggers(loggers)
        test.globs.clear()
        _stats["docstrings"] += 1
        _stats["wall_seconds"] += time.perf_counter() - started


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    if not isinstance(item, DoctestItem) or item.dtest is None:
        yield
        return
    reason = gate_examples(item.dtest)
    if reason is not None:
        pytest.skip(reason)
    with async_doctest(item.dtest, item.runner):
        yield


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _stats["docstrings"]:
        clock = "real" if real_clock() else "virtual"
        terminalreporter.write_line(
            f"async doctests: {_stats['docstrings']} docstrings on the {clock} clock; "
            f"virtual loop time covered: {_stats['loop_seconds']:.1f} s; "
            f"wall time: {_stats['wall_seconds']:.2f} s"
        )
    if _gated_examples:
        terminalreporter.section("version-gated doctest examples skipped")
        for line in _gated_examples:
            terminalreporter.write_line(line)
