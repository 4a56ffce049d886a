"""``async with`` pairs an acquisition with its release – a connection and its close, a
transaction and its commit or rollback, a lock and its release – and runs the release
even when the block fails or the task is cancelled.  This chapter shows how to write
async context managers as a class and with ``contextlib.asynccontextmanager``, what
the exit method receives and why it must never swallow cancellation, how
``contextlib.AsyncExitStack`` enters a variable number of them with a clean rollback,
and how to make cleanup that itself awaits survive a second cancellation.

Writing an async context manager class
--------------------------------------

.. index::
   single: async context manager
   single: __aenter__
   single: __aexit__
   single: async with

``async with cm as value:`` awaits ``cm.__aenter__()`` and binds its result to
``value``.  When the block ends, it awaits ``cm.__aexit__(exc_type, exc, tb)``: three
``None`` after a normal exit, otherwise the exception's class, the exception and its
traceback.  If ``__aexit__`` returns a true value, the exception is *suppressed* and
execution continues after the block; anything else (``None`` included) lets it
propagate.  Both methods are coroutines, so acquiring and releasing may await.

>>> import asyncio
>>> class Announce:
...     async def __aenter__(self):
...         print("enter")
...         return "the resource"
...     async def __aexit__(self, exc_type, exc, tb):
...         print("exit:", exc_type.__name__ if exc_type else None, exc)
>>> async with Announce() as value:
...     print("body has", value)
enter
body has the resource
exit: None None
>>> try:
...     async with Announce():
...         raise KeyError("missing")
... except KeyError:
...     print("the KeyError propagated")
enter
exit: KeyError 'missing'
the KeyError propagated

:class:`Timer` is a small but complete class-based context manager: it measures a
block on the event loop's clock.

Suppressing exceptions, but never cancellation
----------------------------------------------

.. index::
   pair: CancelledError; swallowed by __aexit__
   single: suppressing exceptions

Returning ``True`` from ``__aexit__`` is how ``contextlib.suppress`` works.  Decide
by the exception type, and never let the test match :exc:`asyncio.CancelledError`:
a task is cancelled by raising that exception at its current ``await``, so a context
manager that suppresses it turns ``task.cancel()`` into a no-op.

>>> class SwallowEverything:
...     async def __aenter__(self):
...         return self
...     async def __aexit__(self, exc_type, exc, tb):
...         return True  # the bug: suppresses CancelledError too
>>> async def worker():
...     async with SwallowEverything():
...         await asyncio.sleep(3600)
...     return "still running"
>>> task = asyncio.create_task(worker())
>>> await asyncio.sleep(0.1)
>>> task.cancel()
True
>>> await task
'still running'

.. important::

   A swallowed cancellation breaks everything built on cancelling:
   :func:`asyncio.wait_for` and ``asyncio.timeout()`` cannot stop the block,
   ``asyncio.TaskGroup`` cannot stop a failing group's other tasks, and shutdown waits
   for a task that ignores ``cancel()``.  Since Python 3.8,
   :exc:`asyncio.CancelledError` derives from ``BaseException``, so a test such as
   ``issubclass(exc_type, Exception)`` already leaves it alone; a bare
   ``return True`` does not.  :doc:`/recipes/cancellation` shows the same mistake in
   ``except`` blocks, and how a cancellation travels.

Writing one with asynccontextmanager
------------------------------------

.. index::
   single: asynccontextmanager
   pair: transaction; commit or rollback
   single: error messages; generator didn't yield
   single: error messages; generator didn't stop

``contextlib.asynccontextmanager`` turns an async generator with exactly one
``yield`` into a context manager: the code before the ``yield`` is ``__aenter__``,
the yielded value is bound by ``as``, the code after is ``__aexit__``.  An exception
in the block is *thrown into the generator at the* ``yield``, so the cleanup must sit
in ``finally`` (or it is skipped on every error), and ``except ... raise`` lets you
react to failures – here a rollback, which also runs on cancellation because
``BaseException`` is caught and re-raised:

>>> from contextlib import asynccontextmanager
>>> @asynccontextmanager
... async def transaction(name):
...     await asyncio.sleep(0.1)  # BEGIN
...     print(f"begin {name}")
...     try:
...         yield name
...     except BaseException:
...         print(f"rollback {name}")
...         raise
...     else:
...         print(f"commit {name}")
>>> async with transaction("t1"):
...     pass
begin t1
commit t1
>>> try:
...     async with transaction("t2"):
...         raise ValueError("bad row")
... except ValueError as exc:
...     print("caught:", exc)
begin t2
rollback t2
caught: bad row

.. important::

   A generator that never yields fails in ``__aenter__`` with
   ``RuntimeError: generator didn't yield``; one that yields a second time fails in
   ``__aexit__`` with ``RuntimeError: generator didn't stop``.  Catching the thrown
   exception without re-raising it suppresses it, exactly like returning ``True``
   from ``__aexit__`` – so ``except Exception: log()`` without ``raise`` silently
   hides errors from the caller.

Entering a variable number of context managers
----------------------------------------------

.. index::
   single: AsyncExitStack
   pair: AsyncExitStack; pop_all
   single: all or nothing (acquiring resources)

``async with a(), b(), c():`` needs the count when you write the code.
``contextlib.AsyncExitStack`` enters any number, one at a time, and exits the ones
already entered – in reverse order – if a later one fails.  :func:`open_all` wraps
that pattern.  To acquire everything or nothing *and then hand the resources to
someone else*, ``pop_all()`` moves the exit callbacks to a new stack:

>>> from contextlib import AsyncExitStack
>>> @asynccontextmanager
... async def resource(name):
...     print(f"acquire {name}")
...     try:
...         yield name
...     finally:
...         print(f"release {name}")
>>> async def acquire_all(names):
...     async with AsyncExitStack() as stack:
...         acquired = []
...         for name in names:
...             cm = resource(name)
...             acquired.append(await stack.enter_async_context(cm))
...         return acquired, stack.pop_all()  # success: the caller owns them
>>> acquired, stack = await acquire_all(["x", "y"])
acquire x
acquire y
>>> await stack.aclose()
release y
release x

Cleaning up while being cancelled
---------------------------------

.. index::
   single: shielded_cleanup
   pair: cleanup; second cancellation
   pair: shield; cleanup

When a task is cancelled, :exc:`asyncio.CancelledError` is raised at its current
``await``; ``finally`` blocks and ``__aexit__`` then run and *may* await, because that
cancellation has been delivered.  A *second* cancellation – an outer timeout expiring,
a task group or a shutdown cancelling again – interrupts the cleanup half-way.
``asyncio.shield(cleanup())`` keeps the cleanup running, but the shielded ``await``
still raises at once, so the task finishes while the cleanup is still in progress.
:func:`shielded_cleanup` finishes the cleanup first (within a time limit) and
re-raises the cancellation afterwards; :func:`async_closing` uses it.  A cleanup that
outlives its limit is cancelled and awaited, and the task still ends *cancelled*: the
failure is logged and chained as ``__cause__``, never raised in place of the
cancellation.

>>> from recipes.context_managers import shielded_cleanup
>>> async def close_connection():
...     await asyncio.sleep(0.5)
...     print("connection closed")
>>> async def handler(cleanup):
...     try:
...         await asyncio.sleep(3600)
...     finally:
...         await cleanup(close_connection())
>>> async def cancel_twice(task):
...     await asyncio.sleep(0.1)
...     task.cancel()  # starts the cleanup
...     await asyncio.sleep(0.1)
...     task.cancel()  # arrives during the cleanup
...     await asyncio.wait({task})
>>> async def plain(aw):
...     await aw
>>> async def shielded(aw):
...     await shielded_cleanup(aw, timeout=5)
>>> await cancel_twice(asyncio.create_task(handler(plain)))  # never closed
>>> await cancel_twice(asyncio.create_task(handler(shielded)))
connection closed

The same helper is :func:`recipes.cancellation.shielded_cleanup`, shown in
:ref:`recipes/cancellation:Cleanup that must await` from the side of the task being
cancelled; each chapter carries its own copy so that its module stays one file you
can drop into a project.  Take it from the module you already use: this one always
wants a time limit, the cancellation chapter's also accepts ``timeout=None`` for a
cleanup that must finish however long it takes.

.. important::

   An exception raised in a ``finally`` block or ``__aexit__`` *replaces* the one
   that was on its way up.  A cleanup that raises ``TimeoutError`` or
   ``ConnectionError`` while a task is being cancelled turns the cancellation into
   an ordinary error: the task ends failed, not cancelled, and an ``except
   Exception:`` retry loop further up catches it and carries on as if nothing had
   asked it to stop.  Cleanup helpers must let the cancellation win, as
   :func:`shielded_cleanup` does.

Optional context managers and decorators
----------------------------------------

.. index::
   single: nullcontext
   single: anullcontext
   single: AsyncContextDecorator
   pair: context manager; as a decorator

Sometimes a block needs a lock or a transaction only in some configurations.
``contextlib.nullcontext(value)`` stands in for the missing one.

.. versionchanged:: 3.10
   ``contextlib.nullcontext`` also supports ``async with``.  :class:`anullcontext`
   is the copyable version for 3.8 and 3.9.

>>> import contextlib
>>> async with contextlib.nullcontext("value") as v:  # doctest: +PY310
...     print(v)
value
>>> from recipes.context_managers import anullcontext
>>> async def append(items, lock=None):
...     async with lock if lock is not None else anullcontext():
...         items.append(len(items))
>>> items = []
>>> await append(items)
>>> await append(items, asyncio.Lock())
>>> items
[0, 1]

A context manager that should wrap a whole coroutine function can be used as a
decorator when it derives from ``contextlib.AsyncContextDecorator``; those made by
``asynccontextmanager`` already do, and build a fresh one per call.

.. versionadded:: 3.10
   ``contextlib.AsyncContextDecorator``.

>>> @transaction("job")  # doctest: +PY310
... async def job():
...     print("working")
>>> await job()  # doctest: +PY310
begin job
working
commit job

On 3.8 and 3.9 the decorator is a few lines:

>>> import functools
>>> def within(make_cm):
...     def decorate(func):
...         @functools.wraps(func)
...         async def wrapper(*args, **kwargs):
...             async with make_cm():
...                 return await func(*args, **kwargs)
...         return wrapper
...     return decorate
>>> @within(lambda: transaction("job"))
... async def job():
...     print("working")
>>> await job()
begin job
working
commit job

Decorating a generator, and a context manager that is not async
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~

.. index::
   pair: async generator; decorated with a context manager
   single: ContextDecorator
   single: error messages; 'async for' requires an object with __aiter__ method, got coroutine
   single: warnings; coroutine ... was never awaited

Decorating an *async generator* function – rows streamed inside one transaction,
say – is where Python versions part ways.  On 3.15 the decorator sees what it wraps:
it returns an async generator function, and the context manager stays open until the
iteration ends:

>>> @transaction("export")  # doctest: +PY315
... async def rows():
...     for n in range(2):
...         await asyncio.sleep(0.1)  # fetch a row
...         yield n
>>> async for row in rows():  # doctest: +PY315
...     print("row", row)
begin export
row 0
row 1
commit export

Before 3.15 the wrapper is a coroutine function whatever it wraps: ``rows()`` returns
a coroutine, and ``async for`` fails with ``TypeError: 'async for' requires an object
with __aiter__ method, got coroutine`` (and a "coroutine ... was never awaited"
warning follows).  A *synchronous* context manager used as a decorator – one made by
``contextlib.contextmanager``, or any ``contextlib.ContextDecorator`` – fails
silently instead: before 3.15 it is entered and exited around the call that only
*creates* the coroutine or the generator, before any of its code runs.

>>> @contextlib.contextmanager
... def span(name):
...     print("enter", name)
...     try:
...         yield
...     finally:
...         print("exit", name)
>>> @span("sync")
... async def work():
...     await asyncio.sleep(0.1)
...     print("working")
>>> await work()  # doctest: +PY315
enter sync
working
exit sync

On 3.8–3.14 the same ``await work()`` prints ``enter sync``, ``exit sync``, and only
then ``working``.

.. versionchanged:: 3.15
   ``contextlib.ContextDecorator`` and ``contextlib.AsyncContextDecorator`` – and so
   the context managers made by ``contextmanager`` and ``asynccontextmanager`` – wrap
   a coroutine function in a coroutine function and an async generator function in
   an async generator function, and keep the context manager open across its awaits
   or its iteration.  The wrapper re-yields the values: what ``asend()`` sends and
   what ``athrow()`` throws do not reach the wrapped generator.

The way that works on every version, and says plainly what happens, is to enter the
context manager inside the function:

>>> async def rows():
...     async with transaction("export"):
...         for n in range(2):
...             await asyncio.sleep(0.1)  # fetch a row
...             yield n
>>> async for row in rows():
...     print("row", row)
begin export
row 0
row 1
commit export

.. important::

   A consumer that stops early (``break``, an exception in its loop) leaves the
   generator suspended *inside* the context manager until the generator is closed –
   by ``await gen.aclose()``, by ``contextlib.aclosing()`` (3.10+), or at some later
   point by the garbage collector or the loop's shutdown.  The exit then sees
   :exc:`GeneratorExit`: for ``transaction()``, a rollback.  The 3.15 decorator
   behaves the same.  Close such generators yourself
   (:ref:`recipes/async_iteration:Closing async generators` explains why, and has an
   ``aclosing`` for 3.8 and 3.9):

   >>> stream = rows()
   >>> async for row in stream:
   ...     break
   begin export
   >>> await stream.aclose()
   rollback export

Putting it together
-------------------

Open several resources, time the work, and release everything even on failure:

>>> from functools import partial
>>> from recipes.context_managers import Timer, open_all
>>> def report(label, seconds):
...     print(label, round(seconds, 1))
>>> db, cache = partial(resource, "db"), partial(resource, "cache")
>>> async with Timer("batch", report=report):
...     async with open_all(db, cache) as (db_name, cache_name):
...         await asyncio.sleep(0.2)
acquire db
acquire cache
release cache
release db
batch 0.2

See also
--------

* :doc:`/recipes/cancellation` – how a cancellation reaches ``__aexit__``, and its
  copy of :func:`shielded_cleanup`.
* :doc:`/recipes/async_iteration` – closing async generators, and ``aclosing`` for
  Python 3.8 and 3.9.
* :doc:`/recipes/synchronization` – locks and semaphores, which are async context
  managers too; :doc:`/recipes/timeouts` for ``async with asyncio.timeout()``.
* Python: :ref:`python:async-context-managers` (``__aenter__``/``__aexit__``),
  :ref:`the async with statement <python:async with>`,
  :func:`contextlib.asynccontextmanager`, :class:`contextlib.AsyncExitStack`,
  :class:`contextlib.AsyncContextDecorator` and :func:`contextlib.nullcontext`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
from contextlib import AsyncExitStack, asynccontextmanager
from types import TracebackType
from typing import (
    Any,
    AsyncContextManager,
    AsyncIterator,
    Awaitable,
    Callable,
    Generic,
    List,
    Optional,
    Protocol,
    Sequence,
    Type,
    TypeVar,
    overload,
)

__all__ = [
    "Timer",
    "anullcontext",
    "async_closing",
    "open_all",
    "shielded_cleanup",
]

T = TypeVar("T")
_logger = logging.getLogger(__name__)


class Timer:
    """Measure how long an ``async with`` block takes, on the running loop's clock.

    >>> import asyncio
    >>> from recipes.context_managers import Timer
    >>> async with Timer("download") as timer:
    ...     await asyncio.sleep(0.3)
    >>> round(timer.elapsed, 1)
    0.3

    ``report(label, seconds)`` is called on exit – also when the block raises or is
    cancelled, and the exception still propagates:

    >>> def report(label, seconds):
    ...     print(label, round(seconds, 1))
    >>> try:
    ...     async with Timer("parse", report=report):
    ...         await asyncio.sleep(0.2)
    ...         raise ValueError("bad input")
    ... except ValueError:
    ...     print("the error propagated")
    parse 0.2
    the error propagated

    While the block runs, ``elapsed`` is the time so far; a timer can be entered again
    after it exits, but not while it is running:

    >>> timer = Timer()
    >>> try:
    ...     async with timer:
    ...         async with timer:
    ...             pass
    ... except RuntimeError as exc:
    ...     print(exc)
    Timer('block') is already running

    The loop's clock is monotonic and is what ``asyncio.sleep`` and timeouts use, so
    the figures agree with them (on a test loop with a virtual clock too).
    """

    def __init__(
        self, label: str = "block", *, report: Optional[Callable[[str, float], object]] = None
    ) -> None:
        if report is not None and not callable(report):
            raise TypeError(f"report must be callable, not {type(report).__name__}")
        self.label = label
        self._report = report
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._start: Optional[float] = None
        self._end: Optional[float] = None

    def __repr__(self) -> str:
        return f"Timer({self.label!r})"

    @property
    def elapsed(self) -> float:
        """Seconds from entering the block to leaving it (or to now, while it runs)."""
        if self._loop is None or self._start is None:
            raise RuntimeError(f"{self!r} has not been entered yet")
        end = self._end if self._end is not None else self._loop.time()
        return end - self._start

    async def __aenter__(self) -> Timer:
        if self._start is not None and self._end is None:
            raise RuntimeError(f"{self!r} is already running")
        self._loop = asyncio.get_running_loop()
        self._end = None
        self._start = self._loop.time()
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        assert self._loop is not None
        self._end = self._loop.time()
        if self._report is not None:
            self._report(self.label, self.elapsed)


def open_all(*factories: Callable[[], AsyncContextManager[Any]]) -> AsyncContextManager[List[Any]]:
    """Enter the context managers made by ``factories`` in order; exit them in reverse.

    Each factory is a zero-argument callable that returns an async context manager
    (``functools.partial`` or a ``lambda``); the block receives the list of entered
    values:

    >>> import asyncio
    >>> from contextlib import asynccontextmanager
    >>> from functools import partial
    >>> from recipes.context_managers import open_all
    >>> @asynccontextmanager
    ... async def pool(name, fail=False):
    ...     await asyncio.sleep(0.1)  # connecting
    ...     if fail:
    ...         raise ConnectionError(f"{name} is down")
    ...     print(f"open {name}")
    ...     try:
    ...         yield name
    ...     finally:
    ...         print(f"close {name}")
    >>> async with open_all(partial(pool, "a"), partial(pool, "b")) as (a, b):
    ...     print("using", a, b)
    open a
    open b
    using a b
    close b
    close a

    If one acquisition fails, the ones already entered are exited (newest first) and
    the error propagates; later factories are never called:

    >>> broken = partial(pool, "b", fail=True)
    >>> try:
    ...     async with open_all(partial(pool, "a"), broken, partial(pool, "c")):
    ...         print("not reached")
    ... except ConnectionError as exc:
    ...     print("failed:", exc)
    open a
    close a
    failed: b is down

    Passing context managers instead of factories is caught at once (a factory delays
    creating each one until the previous ones are entered, so a failed acquisition
    never leaves unentered objects behind):

    >>> open_all(pool("a"))
    Traceback (most recent call last):
      ...
    TypeError: open_all() takes factories (callables returning async context ...

    Put timeouts inside the factories: each ``__aenter__`` runs in the caller's task,
    which is what context managers such as ``asyncio.timeout()`` require.
    """
    for factory in factories:
        if not callable(factory) or hasattr(type(factory), "__aenter__"):
            raise TypeError(
                "open_all() takes factories (callables returning async context managers), "
                f"got {factory!r}"
            )
    return _open_all(factories)


@asynccontextmanager
async def _open_all(
    factories: Sequence[Callable[[], AsyncContextManager[Any]]],
) -> AsyncIterator[List[Any]]:
    async with AsyncExitStack() as stack:
        entered = [await stack.enter_async_context(factory()) for factory in factories]
        yield entered


def _check_timeout(timeout: float) -> None:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number, not {type(timeout).__name__}")
    if not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")


async def shielded_cleanup(cleanup: Awaitable[T], *, timeout: float) -> T:
    """Await ``cleanup`` to the end even if this task is cancelled meanwhile.

    Use it for the awaits in ``finally`` blocks and ``__aexit__`` methods.  Without
    cancellation it is simply ``await cleanup`` with a time limit:

    >>> import asyncio
    >>> from recipes.context_managers import shielded_cleanup
    >>> async def flush():
    ...     await asyncio.sleep(0.2)
    ...     print("flushed")
    ...     return 3
    >>> await shielded_cleanup(flush(), timeout=1)
    flushed
    3

    A ``cancel()`` that arrives while the cleanup runs does not interrupt it: the
    cleanup still finishes and *then* :exc:`asyncio.CancelledError` is raised (the
    cleanup's result is dropped, the rest of the ``finally`` block skipped), so the
    cancellation is delayed, never lost:

    >>> async def worker():
    ...     try:
    ...         await asyncio.sleep(3600)
    ...     finally:
    ...         await shielded_cleanup(flush(), timeout=1)
    >>> task = asyncio.create_task(worker())
    >>> await asyncio.sleep(0.1)
    >>> task.cancel()
    True
    >>> await asyncio.sleep(0.1)
    >>> task.cancel()
    True
    >>> _ = await asyncio.wait({task})
    flushed
    >>> task.cancelled()
    True

    A cleanup that takes longer than ``timeout`` seconds is cancelled and awaited –
    never left running, however many ``cancel()`` calls arrive meanwhile: a hung
    close must not hang the shutdown, nor outlive it.  Without a cancellation the
    caller then gets ``asyncio.TimeoutError`` (or the cleanup's own error, if it
    fails); raised in a ``finally`` block, it replaces the exception that was on its
    way up, which becomes its ``__context__``:

    >>> try:
    ...     await shielded_cleanup(asyncio.sleep(9), timeout=0.5)
    ... except asyncio.TimeoutError as exc:
    ...     print(exc)
    cleanup did not finish within 0.5 seconds

    When the task is being cancelled, the cancellation wins: a cleanup that times out
    or fails does not turn a cancelled task into a failed one (which an ``except
    Exception:`` retry loop would catch and carry on).  The
    :exc:`asyncio.CancelledError` that started the cleanup is re-raised with the
    cleanup's error as its ``__cause__``, and the error is logged with its traceback
    to the ``recipes.context_managers`` logger, since nobody awaiting the cancelled
    task can see it:

    >>> async def worker():
    ...     try:
    ...         await asyncio.sleep(3600)
    ...     finally:
    ...         await shielded_cleanup(asyncio.sleep(9), timeout=0.5)
    >>> task = asyncio.create_task(worker())
    >>> await asyncio.sleep(0.1)
    >>> task.cancel()
    True
    >>> _ = await asyncio.wait({task})
    >>> task.cancelled()
    True

    The task counts as being cancelled when a :exc:`asyncio.CancelledError` is being
    handled where ``shielded_cleanup`` is called (the ``finally`` block or
    ``__aexit__`` it triggered), when a ``cancel()`` arrives during the wait, or, on
    3.11+, while ``asyncio.current_task().cancelling()`` is not zero.  (So on 3.8–3.10
    a call from an ``except`` block for another error inside such a ``finally``
    raises ``TimeoutError``.)  It never calls ``uncancel()``: the 3.11+ count of
    cancellation requests is left as the cancellers made it.
    """
    try:
        _check_timeout(timeout)
    except BaseException:
        if inspect.iscoroutine(cleanup):
            cleanup.close()  # no "coroutine ... was never awaited" on top of the error
        raise
    # The CancelledError that the calling finally/__aexit__ is handling, if any;
    # read before the first await.
    handling = sys.exc_info()[1]
    original = handling if isinstance(handling, asyncio.CancelledError) else None
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(cleanup)
    deadline = loop.time() + timeout
    interrupted: Optional[asyncio.CancelledError] = None
    timed_out = False
    while not task.done():
        remaining: Optional[float] = None  # after a timeout: wait for the cleanup to unwind
        if not timed_out:
            remaining = deadline - loop.time()
            if remaining <= 0:
                timed_out = True
                task.cancel()
                remaining = None
        try:
            await asyncio.wait({task}, timeout=remaining)
        except asyncio.CancelledError as exc:
            interrupted = interrupted or exc
    error: Optional[BaseException] = None
    if timed_out and task.cancelled():
        error = asyncio.TimeoutError(f"cleanup did not finish within {timeout} seconds")
    elif task.cancelled() or task.exception() is not None:
        try:
            task.result()  # retrieve it, so asyncio does not report it again
        except BaseException as exc:
            error = exc
    cancellation = original or interrupted
    if cancellation is None and _cancelling():
        cancellation = asyncio.CancelledError()
    if cancellation is None:
        if error is not None:
            raise error
        return task.result()
    if error is not None:
        _logger.error(
            "cleanup failed while its task was being cancelled; the cancellation goes on",
            exc_info=error,
        )
        raise cancellation from error
    if interrupted is not None:
        raise cancellation
    return task.result()  # the caller's block goes on unwinding its cancellation


def _cancelling() -> bool:
    """Whether the current task has cancellation requests pending (3.11+; else False)."""
    if sys.version_info < (3, 11):
        return False
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class _AsyncClosable(Protocol):
    def close(self) -> Awaitable[object]: ...


R = TypeVar("R", bound=_AsyncClosable)


def async_closing(thing: R, *, timeout: float = 10.0) -> AsyncContextManager[R]:
    """Await ``thing.close()`` when the block exits, even if the task is being cancelled.

    For objects whose ``close()`` is a coroutine (database connections, HTTP
    sessions, stream wrappers) that do not support ``async with`` themselves.
    (``contextlib.aclosing`` is the same idea for ``aclose()``.)

    >>> import asyncio
    >>> from recipes.context_managers import async_closing
    >>> class Client:
    ...     async def close(self):
    ...         await asyncio.sleep(0.1)
    ...         print("client closed")
    >>> async with async_closing(Client()) as client:
    ...     print("using", type(client).__name__)
    using Client
    client closed

    The close runs through :func:`shielded_cleanup`, with its guarantees: a
    cancellation during the close waits for it, and a close that hangs is cancelled
    (and awaited) after ``timeout`` seconds.  If the task is being cancelled, the
    cancellation goes on (the close's ``TimeoutError`` is logged and chained as its
    ``__cause__``), so a retry loop's ``except Exception`` cannot mistake a shutdown
    for a failed connection.  Otherwise the caller gets ``asyncio.TimeoutError``,
    which replaces an error the block raised (that error is its ``__context__``):

    >>> class HungClient:
    ...     async def close(self):
    ...         await asyncio.sleep(3600)  # the peer never answers
    >>> try:
    ...     async with async_closing(HungClient(), timeout=1):
    ...         raise KeyError("bad row")
    ... except asyncio.TimeoutError as exc:
    ...     print(repr(exc.__context__))
    KeyError('bad row')

    An object without ``close`` is rejected before the block starts:

    >>> async_closing(object())
    Traceback (most recent call last):
      ...
    TypeError: async_closing() needs an object with a close() method, got 'object'
    """
    if not callable(getattr(thing, "close", None)):
        raise TypeError(
            f"async_closing() needs an object with a close() method, got {type(thing).__name__!r}"
        )
    _check_timeout(timeout)
    return _async_closing(thing, timeout)


@asynccontextmanager
async def _async_closing(thing: R, timeout: float) -> AsyncIterator[R]:
    try:
        yield thing
    finally:
        await shielded_cleanup(_close(thing), timeout=timeout)


async def _close(thing: _AsyncClosable) -> None:
    await thing.close()


class anullcontext(Generic[T]):
    """An async context manager that does nothing and returns ``enter_result``.

    ``contextlib.nullcontext`` supports ``async with`` from Python 3.10 on; this is
    the version for 3.8 and 3.9.  It stands in for an optional context manager:

    >>> import asyncio
    >>> from recipes.context_managers import anullcontext
    >>> async def save(record, lock=None):
    ...     async with lock if lock is not None else anullcontext():
    ...         return f"saved {record}"
    >>> await save("a"), await save("b", lock=asyncio.Lock())
    ('saved a', 'saved b')

    Or it passes a value through unchanged where a resource is usually opened:

    >>> async with anullcontext("already open") as conn:
    ...     print(conn)
    already open
    """

    @overload
    def __init__(self: anullcontext[None], enter_result: None = None) -> None: ...
    @overload
    def __init__(self: anullcontext[T], enter_result: T) -> None: ...
    def __init__(self, enter_result: Any = None) -> None:
        self.enter_result = enter_result

    async def __aenter__(self) -> T:
        return self.enter_result  # type: ignore[no-any-return]

    async def __aexit__(self, *exc_info: object) -> None:
        return None
