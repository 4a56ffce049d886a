"""Fixtures shared by the behaviour, fault and load tests."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
from typing import (
    TYPE_CHECKING,
    Any,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Dict,
    Iterator,
    List,
    TypeVar,
)

import pytest
import pytest_asyncio

from conftest import new_doctest_loop  # the root conftest's clock switch

if TYPE_CHECKING:
    from aiohttp import web

T = TypeVar("T")


async def value_after(value: Any, delay: float) -> Any:
    await asyncio.sleep(delay)
    return value


async def fail_after(exc: BaseException, delay: float) -> Any:
    await asyncio.sleep(delay)
    raise exc


@contextlib.contextmanager
def loop_errors() -> Iterator[List[Dict[str, Any]]]:
    """Collect what reaches the running loop's exception handler (after a gc pass).

    The task or future a context names is kept as its ``repr`` only: holding the object
    would bring a task that the garbage collector is destroying back to life, and on 3.14+
    such a task then stays listed in ``asyncio.all_tasks()``.
    """
    loop = asyncio.get_running_loop()
    contexts: List[Dict[str, Any]] = []

    def collect(_loop: asyncio.AbstractEventLoop, context: Dict[str, Any]) -> None:
        contexts.append({k: repr(v) if k in ("task", "future") else v for k, v in context.items()})

    loop.set_exception_handler(collect)
    try:
        yield contexts
        gc.collect()
    finally:
        loop.set_exception_handler(None)


@contextlib.asynccontextmanager
async def served(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 on the running loop; yield its base URL (no slash)."""
    from aiohttp import web

    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def run_on_test_clock(main: Callable[[], Awaitable[T]]) -> T:
    """Run ``main()`` on a fresh loop: virtual clock unless COOKBOOK_REAL_CLOCK is set.

    Leftover tasks are cancelled and awaited and the loop is closed, so a test
    that leaks a task fails loudly instead of warning at interpreter exit.
    """
    loop = new_doctest_loop()
    try:
        result = loop.run_until_complete(main())
        leftover = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in leftover:
            task.cancel()
        if leftover:
            loop.run_until_complete(asyncio.gather(*leftover, return_exceptions=True))
            raise AssertionError(f"test left {len(leftover)} task(s) running: {leftover!r}")
        loop.run_until_complete(loop.shutdown_asyncgens())
        return result
    finally:
        loop.close()


@pytest.fixture
def run_virtual() -> Callable[[Callable[[], Awaitable[Any]]], Any]:
    """``run_virtual(main)`` runs the coroutine function ``main`` on the virtual clock.

    ``await asyncio.sleep(3600)`` inside it takes no wall time; with
    ``COOKBOOK_REAL_CLOCK=1`` the same test runs on the real clock.
    """
    return run_on_test_clock


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    """DSN of the session's PostgreSQL (throwaway cluster, or COOKBOOK_POSTGRES_DSN)."""
    from conftest import session_postgres_dsn

    return session_postgres_dsn()


@pytest_asyncio.fixture
async def demo_server() -> AsyncIterator[str]:
    """Serve tests/http_server.py's demo app on 127.0.0.1; yield its base URL.

    Runs on the test's own loop (real clock): use it from ``@pytest.mark.asyncio`` tests.
    """
    from tests.http_server import make_demo_app

    async with served(make_demo_app()) as base_url:
        yield base_url


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    """Close the spare loop pytest-asyncio 0.x (the last release for 3.8) leaves behind.

    After each asyncio test it installs a fresh event loop that nobody closes;
    the next ``asyncio.run()`` replaces it and the garbage collector later
    reports "unclosed event loop" in an unrelated test.
    """
    yield
    if not pytest_asyncio.__version__.startswith("0."):
        return
    policy = asyncio.get_event_loop_policy()
    loop = getattr(getattr(policy, "_local", None), "_loop", None)
    if loop is not None and not loop.is_running() and not loop.is_closed():
        loop.close()
        policy.set_event_loop(None)


def asyncio_run_returns(main: Callable[[], Coroutine[Any, Any, None]]) -> bool:
    """Run ``asyncio.run(main())`` in a thread; False if it is still running after 30 s.

    A shutdown that hangs would otherwise hang the test run.  The clock is the
    real one; a run that works returns in milliseconds.
    """
    errors: List[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=target, name="asyncio.run", daemon=True)
    thread.start()
    thread.join(30)
    if errors:
        raise errors[0]
    return not thread.is_alive()
