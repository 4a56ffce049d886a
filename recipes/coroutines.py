"""An ``async def`` function does not do its work when you call it: it hands you
a coroutine object, and the work happens only when something awaits that
object.  While a coroutine waits for I/O it gives the event loop back, so other
coroutines can run in the gap; a coroutine that calls blocking code keeps the
loop to itself and everything else stops.  This chapter makes both facts
visible by measuring them on the loop's clock, then walks through the three
kinds of awaitables (coroutines, tasks and futures), writing an awaitable of
your own, and moving blocking calls off the loop.  Its helpers are small
enough to copy: :func:`measure`, :func:`run_sequentially`,
:func:`run_concurrently`, :class:`Heartbeat`, :class:`PendingReplies`,
:class:`Lazy` and :func:`run_in_thread`.

Sequential and concurrent waits, measured
-----------------------------------------

.. index::
   single: concurrency; sequential and concurrent waits
   single: factories of awaitables

Three requests that each wait 0.3 s for a reply take 0.9 s when you await them
one after the other, because each ``await`` holds the caller until its reply
arrives.  Started together, the three waits overlap and the whole batch takes
as long as the slowest one.  :func:`run_sequentially` and
:func:`run_concurrently` take *factories* (functions that return a fresh
awaitable) and report the results together with the loop time spent:

>>> import asyncio, functools
>>> from recipes.coroutines import (
...     Heartbeat, run_concurrently, run_in_thread, run_sequentially
... )
>>> async def fetch(name: str, delay: float) -> str:
...     await asyncio.sleep(delay)  # stands in for a network round trip
...     return name
>>> requests = [functools.partial(fetch, name, 0.3) for name in "abc"]
>>> results, elapsed = await run_sequentially(*requests)
>>> results, round(elapsed, 1)
(['a', 'b', 'c'], 0.9)
>>> results, elapsed = await run_concurrently(*requests)
>>> results, round(elapsed, 1)
(['a', 'b', 'c'], 0.3)

Concurrency pays off only while the coroutines *wait*.  Work that keeps the
CPU busy does not overlap on one thread, however you schedule it.  The
:doc:`/recipes/gathering` chapter shows the everyday tools for running many
coroutines at once, and :doc:`/recipes/tasks` how to start one in the
background.

Seeing that a blocking call stalls the loop
-------------------------------------------

.. index::
   single: blocking call; stalls the event loop
   single: event loop lag
   single: warnings; Executing <Task ...> took ... seconds

``await asyncio.sleep(...)`` suspends the coroutine and lets the loop run
other things; ``time.sleep(...)``, a ``requests.get(...)``, a database driver
without async support or a long computation do not suspend anything.  The loop
runs one piece of code at a time, so while a blocking call runs no other task
makes progress: no timers fire, no sockets are read, no heartbeats are sent.

A :class:`Heartbeat` is a background task that ticks every *interval*
seconds.  Its tick count shows whether the loop was free:

>>> import time
>>> async with Heartbeat(interval=0.1) as beat:
...     await asyncio.sleep(0.35)  # non-blocking: the heartbeat keeps ticking
...     before = beat.ticks
...     time.sleep(0.05)  # blocking: nothing else can run meanwhile
...     blocked = beat.ticks - before
>>> before, blocked
(3, 0)

.. important::

   A blocking call inside a coroutine raises no error; the program just gets
   slow and timeouts elsewhere fire late.  Debug mode
   (``asyncio.run(main(), debug=True)``, ``python -X dev`` or
   ``PYTHONASYNCIODEBUG=1``) logs every step that holds the loop for longer than
   ``loop.slow_callback_duration`` (0.1 s), for example
   ``Executing <Task pending name='Task-1' ...> took 0.350 seconds``.
   :ref:`recipes/debugging:Finding callbacks that block the loop` shows
   how to read that report.

Defining and awaiting coroutines
--------------------------------

.. index::
   single: coroutine function
   single: coroutine object
   single: error messages; cannot reuse already awaited coroutine
   single: warnings; coroutine ... was never awaited
   single: await; forgotten

``async def`` defines a *coroutine function*.  Calling it runs none of its
body: it returns a *coroutine object*, and the body runs when the object is
awaited (or wrapped in a task).  A coroutine object can be awaited only once.

>>> import inspect
>>> async def greet(name: str) -> str:
...     print("greet is running")
...     return f"hello, {name}"
>>> inspect.iscoroutinefunction(greet)
True
>>> coro = greet("world")  # nothing is printed: the body has not started
>>> asyncio.iscoroutine(coro)
True
>>> await coro
greet is running
'hello, world'
>>> await coro
Traceback (most recent call last):
...
RuntimeError: cannot reuse already awaited coroutine

That last error is why the helpers in this chapter take factories such as
``functools.partial(fetch, "a", 0.3)`` rather than ``fetch("a", 0.3)``: a retry
or a second run needs a fresh coroutine object each time.

Forgetting ``await`` is the most common mistake.  The call then returns a
coroutine object that nobody runs, and when Python throws it away it warns.
Here the warning is captured so that you can read it:

>>> import warnings
>>> async def send_greeting() -> None:
...     greet("nobody")  # BUG: the await is missing, greet() never runs
>>> with warnings.catch_warnings(record=True) as caught:
...     warnings.simplefilter("always")
...     await send_greeting()
>>> [(w.category.__name__, str(w.message)) for w in caught]
[('RuntimeWarning', "coroutine 'greet' was never awaited")]

If you create a coroutine object and then decide not to run it, close it; a
closed coroutine never runs and never warns:

>>> unused = greet("nobody")
>>> unused.close()

.. important::

   ``RuntimeWarning: coroutine 'greet' was never awaited`` means a call to an
   ``async def`` function is missing its ``await`` (or its
   :func:`asyncio.create_task`).  The warning appears when the coroutine object
   is garbage collected, which can be far from the faulty line.  Run with
   ``python -X dev`` to find it: that turns on asyncio's debug mode, and the
   warning then also shows where the coroutine was created, as
   :ref:`recipes/debugging:Finding a coroutine that was never awaited`
   shows.

The three kinds of awaitables
-----------------------------

.. index::
   single: awaitable
   single: future; set_result and set_exception
   single: error messages; invalid state
   single: InvalidStateError

``await`` accepts any *awaitable*.  In asyncio you meet three kinds: coroutine
objects; :class:`asyncio.Task`, which wraps a coroutine and schedules it to run
on its own; and :class:`asyncio.Future`, a low-level placeholder for a result
that something else will set.  A task is a future too, so
:func:`asyncio.isfuture` is true for both:

>>> async def double(x: int) -> int:
...     await asyncio.sleep(0.1)
...     return 2 * x
>>> loop = asyncio.get_running_loop()
>>> coro = double(1)
>>> task = asyncio.create_task(double(2))
>>> future = loop.create_future()
>>> [inspect.isawaitable(obj) for obj in (coro, task, future)]
[True, True, True]
>>> [asyncio.isfuture(obj) for obj in (coro, task, future)]
[False, True, True]
>>> await coro, await task
(2, 4)

Tasks get a chapter of their own, :doc:`/recipes/tasks`.

A future does nothing by itself: another task (or a callback, or a thread via
``loop.call_soon_threadsafe``) must give it a result with
:meth:`asyncio.Future.set_result` or an error with
:meth:`asyncio.Future.set_exception`.  Whoever awaits it is suspended until
then.  Create futures with ``loop.create_future()`` rather than
``asyncio.Future()``, so that an event loop can supply a faster implementation:

>>> async def deliver(fut: asyncio.Future, value: int) -> None:
...     await asyncio.sleep(0.1)
...     fut.set_result(value)
>>> waiter = asyncio.create_task(deliver(future, 42))
>>> await future
42
>>> failing = loop.create_future()
>>> failing.set_exception(ConnectionResetError("peer went away"))
>>> await failing
Traceback (most recent call last):
...
ConnectionResetError: peer went away

A future is set once.  Setting it again, or setting a future that was
cancelled (for example by a timeout around the ``await``), raises
:exc:`asyncio.InvalidStateError`, so code that resolves futures should check
:meth:`asyncio.Future.done` first, as :class:`PendingReplies` does:

>>> future.set_result(43)  # doctest: +IGNORE_EXCEPTION_DETAIL
Traceback (most recent call last):
...
asyncio.InvalidStateError: invalid state

Writing your own awaitable
--------------------------

.. index::
   single: __await__
   single: awaitable; writing your own

Any object whose class defines ``__await__`` can be awaited.  The method must
return an iterator; the easy way to get one is to write the logic as a
coroutine and return that coroutine's ``__await__()``:

>>> class Delayed:
...     def __init__(self, value: str, delay: float) -> None:
...         self.value, self.delay = value, delay
...
...     def __await__(self):
...         return asyncio.sleep(self.delay, result=self.value).__await__()
>>> await Delayed("ready", 0.1)
'ready'

:class:`Lazy` uses the same trick for something more useful: a value that is
computed on first ``await`` and shared by every later one.

Running blocking code off the loop
----------------------------------

.. index::
   single: blocking call; running in a thread
   single: to_thread
   single: run_in_executor
   single: ProcessPoolExecutor
   single: GIL; CPU-bound code

When you cannot avoid a blocking call (a library without async support, a
slow file system, a CPU-heavy function), run it in a worker thread and await
the result.  ``loop.run_in_executor(None, func, *args)`` works on every
version and uses the loop's default thread pool; :func:`asyncio.to_thread` is
the friendlier spelling and also passes keyword arguments and context
variables on:

>>> def blocking_io(n: int) -> int:
...     time.sleep(0.05)  # a blocking call: a file read, requests.get(), ...
...     return 2 * n
>>> await loop.run_in_executor(None, blocking_io, 21)
42
>>> await asyncio.to_thread(blocking_io, 21)  # doctest: +PY39
42

.. versionadded:: 3.9
   :func:`asyncio.to_thread`.  On Python 3.8, :func:`run_in_thread` gives the
   same behaviour on top of ``loop.run_in_executor``.

The files chapter carries its own copy of this helper,
:func:`recipes.files.run_in_thread`, so that each module works on its own:
they behave alike (this one also names the mistake when it is handed the
result of a call instead of a function), so use the one of the module you
copy.

While the thread sleeps, the loop stays free and the heartbeat keeps ticking:

>>> async with Heartbeat(interval=0.1) as beat:
...     await run_in_thread(time.sleep, 0.35)
>>> beat.ticks > 0
True

.. important::

   A thread cannot be cancelled.  ``asyncio.wait_for(asyncio.to_thread(f), 5)``
   stops *waiting* after five seconds, but ``f`` runs on to the end in its
   thread, and the default executor has a limited number of threads.  Give
   the blocking call its own timeout (most network libraries take one).
   Threads also do not make CPU-bound Python code faster, because of the GIL:
   for that, pass a ``concurrent.futures.ProcessPoolExecutor`` (created once,
   shut down at exit) to ``loop.run_in_executor``.  Giving up on a slow call
   without stopping it is the subject of :doc:`/recipes/timeouts`.

Putting it together
-------------------

Outside the REPL, a program starts one event loop with :func:`asyncio.run`
and does everything else from the coroutine it runs (the
:doc:`/recipes/event_loop` chapter explains what :func:`asyncio.run` does on
the way in and out).  Here a wait on the loop and a blocking call in a
thread overlap:

.. script:: overlap.py

   import asyncio
   import functools
   import time

   from recipes.coroutines import run_concurrently, run_in_thread


   async def fetch(name: str, delay: float) -> str:
       await asyncio.sleep(delay)  # stands in for a network round trip
       return name


   def blocking_io(n: int) -> int:
       time.sleep(0.05)  # a blocking call: a file read, requests.get(), ...
       return 2 * n


   async def main() -> None:
       results, elapsed = await run_concurrently(
           functools.partial(fetch, "x", 0.1),
           functools.partial(run_in_thread, blocking_io, 5),
       )
       print(results, "in", round(elapsed, 1), "s")


   asyncio.run(main())

.. script-output::

   ['x', 10] in 0.1 s

A library does this
-------------------

.. index::
   single: async-lru
   pair: caching; libraries

For :class:`Lazy`, aio-libs' `async-lru
<https://github.com/aio-libs/async-lru>`__ has the ``@alru_cache``
decorator.  On an ``async def`` with no arguments it behaves the same way:
concurrent callers share one run, a failure is not kept, and a cancelled
caller does not cancel the shared run.  With arguments it keeps one result
per set of arguments, with ``maxsize``, ``ttl`` and ``cache_invalidate()``.
Choose it to cache results per argument or for a limited time; for one
shared set-up value, :class:`Lazy` is a small class and no dependency.

See also
--------

* :doc:`/recipes/tasks`: starting coroutines in the background, and keeping
  track of them.
* :doc:`/recipes/gathering`: running many coroutines at once and collecting
  their results.
* :doc:`/recipes/event_loop`: what runs the coroutines, and how a program
  starts and stops it.
* :doc:`/recipes/debugging`: finding blocking calls and coroutines that were
  never awaited.
* :doc:`/recipes/files`: file I/O without blocking the loop.
* Python documentation: :ref:`python:coroutine` and
  :ref:`python:asyncio-awaitables` in :doc:`python:library/asyncio-task`,
  :doc:`python:library/asyncio-future`, :ref:`python:asyncio-handle-blocking`
  and :doc:`python:howto/a-conceptual-overview-of-asyncio`.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import math
import sys
from types import TracebackType
from typing import (
    TYPE_CHECKING,
    Any,
    Awaitable,
    Callable,
    Dict,
    Generator,
    Generic,
    Hashable,
    List,
    Optional,
    Sequence,
    Tuple,
    Type,
    TypeVar,
    cast,
)

if TYPE_CHECKING:  # only the type checker needs it; annotations stay strings
    from typing import ParamSpec

    P = ParamSpec("P")

__all__ = [  # reading order, which autodoc follows
    "measure",
    "run_sequentially",
    "run_concurrently",
    "Heartbeat",
    "PendingReplies",
    "Lazy",
    "run_in_thread",
]

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


# --- private helpers ---------------------------------------------------------


def _close_if_coroutine(obj: object) -> None:
    """Close an unused coroutine object so it does not warn "never awaited"."""
    if inspect.iscoroutine(obj):
        obj.close()


def _check_factories(caller: str, factories: Sequence[object]) -> None:
    """Raise TypeError unless every item is a callable; close stray coroutines first."""
    for position, factory in enumerate(factories):
        if callable(factory):
            continue
        for item in factories:
            _close_if_coroutine(item)
        hint = (
            " (a coroutine object: pass the function and its arguments instead,"
            " e.g. functools.partial(fetch, url), not fetch(url))"
            if inspect.iscoroutine(factory)
            else ""
        )
        raise TypeError(
            f"{caller}() expects callables that return awaitables; "
            f"argument {position} is {factory!r}{hint}"
        )


def _check_timeout(name: str, value: Optional[float]) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds or None, not {value!r}")
    if math.isnan(value) or value < 0:
        raise ValueError(f"{name} must be >= 0 seconds, got {value!r}")


def _call_factory(caller: str, factory: Callable[[], Awaitable[T]]) -> Awaitable[T]:
    awaitable = factory()
    if not inspect.isawaitable(awaitable):
        raise TypeError(
            f"{caller}(): factory {factory!r} returned {awaitable!r}, which is not awaitable"
        )
    return awaitable


async def _cancel_and_wait_all(tasks: Sequence[asyncio.Future[Any]]) -> None:
    """Cancel every unfinished task and wait for all of them, even if we are cancelled."""
    pending = [task for task in tasks if not task.done()]
    for task in pending:
        task.cancel()
    interrupted: Optional[BaseException] = None
    while pending:
        try:
            await asyncio.wait(pending)
        except asyncio.CancelledError as exc:  # keep waiting; re-raised below
            interrupted = exc
        pending = [task for task in pending if not task.done()]
    for task in tasks:  # mark every failure as retrieved: the caller got the first one
        if not task.cancelled():
            task.exception()
    if interrupted is not None:
        raise interrupted


# --- measuring ---------------------------------------------------------------


async def measure(awaitable: Awaitable[T]) -> Tuple[T, float]:
    """Await *awaitable* and return its result with the loop time it took, in seconds.

    >>> import asyncio
    >>> from recipes.coroutines import measure
    >>> result, elapsed = await measure(asyncio.sleep(0.2, result="done"))
    >>> result, round(elapsed, 1)
    ('done', 0.2)

    The clock is the event loop's (``loop.time()``), which is what timeouts and
    ``asyncio.sleep`` use.  It counts waiting; on a fake clock in tests (such as
    ``looptime``) it does not count time spent in blocking calls, because the
    fake clock only moves while the loop is idle.

    Anything that is not awaitable is rejected before any work starts:

    >>> await measure(42)
    Traceback (most recent call last):
    ...
    TypeError: measure() expects an awaitable, got 42
    """
    if not inspect.isawaitable(awaitable):
        raise TypeError(f"measure() expects an awaitable, got {awaitable!r}")
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await awaitable
    return result, loop.time() - started


async def run_sequentially(*factories: Callable[[], Awaitable[T]]) -> Tuple[List[T], float]:
    """Await each factory's awaitable in turn; return the results and the loop time taken.

    >>> import asyncio, functools
    >>> from recipes.coroutines import run_sequentially
    >>> def nap(n: int):
    ...     return functools.partial(asyncio.sleep, 0.1, result=n)
    >>> waits = [nap(n) for n in range(3)]
    >>> results, elapsed = await run_sequentially(*waits)
    >>> results, round(elapsed, 1)
    ([0, 1, 2], 0.3)

    Each factory is called only when the previous awaitable has finished, so a
    later step may depend on the effects of an earlier one.  The first error
    stops the run and propagates; later factories are never called.

    Pass factories, not coroutine objects.  A coroutine object by mistake is
    closed (so it does not warn) and reported, with a hint at the fix
    (``functools.partial(fetch, url), not fetch(url)``) at the end of the
    message:

    >>> async def step() -> None:
    ...     await asyncio.sleep(0)
    >>> await run_sequentially(step, step())
    Traceback (most recent call last):
    ...
    TypeError: run_sequentially() expects callables that return awaitables; ...
    """
    _check_factories("run_sequentially", factories)
    loop = asyncio.get_running_loop()
    started = loop.time()
    results: List[T] = []
    for factory in factories:
        results.append(await _call_factory("run_sequentially", factory))
    return results, loop.time() - started


async def run_concurrently(
    *factories: Callable[[], Awaitable[T]], timeout: Optional[float] = None
) -> Tuple[List[T], float]:
    """Run every factory's awaitable at the same time; return the results and the loop time.

    >>> import asyncio, functools
    >>> from recipes.coroutines import run_concurrently
    >>> def nap(n: int):
    ...     return functools.partial(asyncio.sleep, 0.1 * n, result=n)
    >>> waits = [nap(n) for n in (3, 1, 2)]
    >>> results, elapsed = await run_concurrently(*waits)
    >>> results, round(elapsed, 1)
    ([3, 1, 2], 0.3)

    Results come back in argument order, whatever order the awaitables finish
    in.  Unlike a bare :func:`asyncio.gather`, a failure does not leave the
    others running: the first error cancels the rest, waits until they have
    finished, and then propagates.  If several fail at once, the first in
    argument order wins:

    >>> async def broken() -> int:
    ...     await asyncio.sleep(0.1)
    ...     raise ValueError("bad reply")
    >>> await run_concurrently(nap(50), broken)
    Traceback (most recent call last):
    ...
    ValueError: bad reply

    *timeout* bounds the whole batch; when it expires the unfinished awaitables
    are cancelled (and awaited) and :exc:`asyncio.TimeoutError` is raised:

    >>> try:
    ...     await run_concurrently(nap(50), timeout=0.2)
    ... except asyncio.TimeoutError as exc:
    ...     print("timed out:", exc)
    timed out: 1 of 1 awaitables still running after 0.2 s

    The awaitables belong to this call: if it is cancelled, it cancels them and
    waits for them before the cancellation propagates, so nothing is left
    running.  Give it fresh coroutines rather than tasks that other code also
    awaits.
    """
    _check_factories("run_concurrently", factories)
    _check_timeout("timeout", timeout)
    loop = asyncio.get_running_loop()
    started = loop.time()
    if not factories:
        return [], 0.0
    awaitables: List[Awaitable[T]] = []
    try:
        for factory in factories:
            awaitables.append(_call_factory("run_concurrently", factory))
    except BaseException:
        for awaitable in awaitables:
            _close_if_coroutine(awaitable)
        raise
    tasks = [asyncio.ensure_future(awaitable) for awaitable in awaitables]
    try:
        done, pending = await asyncio.wait(
            tasks, timeout=timeout, return_when=asyncio.FIRST_EXCEPTION
        )
        for task in tasks:
            if task in done and not task.cancelled():
                error = task.exception()
                if error is not None:
                    raise error
        if pending:
            raise asyncio.TimeoutError(
                f"{len(pending)} of {len(tasks)} awaitables still running after {timeout} s"
            )
        return [task.result() for task in tasks], loop.time() - started
    finally:
        await _cancel_and_wait_all(tasks)


# --- watching the loop -------------------------------------------------------


class Heartbeat:
    """A background task that ticks every *interval* seconds while the block runs.

    >>> import asyncio
    >>> from recipes.coroutines import Heartbeat
    >>> async with Heartbeat(interval=0.1) as beat:
    ...     await asyncio.sleep(0.25)
    >>> beat.ticks
    2

    Use it in tests to check that code leaves the loop free: if the tick count
    does not grow while the code runs, the code blocked the loop.  The ticks
    follow a fixed schedule (``start + n * interval``), so they do not drift;
    ticks that are missed because the loop was blocked are not made up later.

    :attr:`max_lag` is the largest delay, in loop seconds, between a tick's
    scheduled time and the moment it ran: in production this is the classic
    "event loop lag" metric.  On a fake clock that only moves while the loop
    is idle, a blocking call adds no lag, so there rely on :attr:`ticks`.

    A heartbeat runs once; the interval must be positive:

    >>> Heartbeat(interval=0)
    Traceback (most recent call last):
    ...
    ValueError: interval must be > 0 seconds, got 0
    """

    def __init__(self, interval: float = 0.1) -> None:
        if isinstance(interval, bool) or not isinstance(interval, (int, float)):
            raise TypeError(f"interval must be a number of seconds, not {interval!r}")
        if not 0 < interval < math.inf:
            raise ValueError(f"interval must be > 0 seconds, got {interval!r}")
        self.interval = interval
        self._ticks = 0
        self._max_lag = 0.0
        self._task: Optional[asyncio.Task[None]] = None

    @property
    def ticks(self) -> int:
        """How many ticks have run so far."""
        return self._ticks

    @property
    def max_lag(self) -> float:
        """The longest delay of a tick behind its schedule, in loop seconds."""
        return self._max_lag

    async def _beat(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + self.interval
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            now = loop.time()
            self._ticks += 1
            self._max_lag = max(self._max_lag, now - due)
            due += self.interval
            if due <= now:  # missed beats are skipped, not ticked in a burst
                due += (math.floor((now - due) / self.interval) + 1) * self.interval

    async def __aenter__(self) -> Heartbeat:
        if self._task is not None:
            raise RuntimeError("this Heartbeat has already been started; create a new one")
        self._task = asyncio.ensure_future(self._beat())
        await asyncio.sleep(0)  # let the heartbeat read its start time now
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        if self._task is not None:
            await _cancel_and_wait_all([self._task])


# --- futures -----------------------------------------------------------------


class PendingReplies(Generic[K, V]):
    """Futures keyed by request id: callers await replies, a reader task delivers them.

    This is the core of any protocol that sends many requests over one
    connection and gets the replies back in any order (RPC, JSON-RPC over a
    websocket, Redis pipelines).  The caller registers the key *before* it
    sends the request, then awaits the future; the task that reads the
    connection resolves it:

    >>> import asyncio
    >>> from recipes.coroutines import PendingReplies
    >>> replies: PendingReplies[int, str] = PendingReplies()
    >>> first, second = replies.expect(1), replies.expect(2)
    >>> async def read_connection() -> None:  # stands in for a socket reader
    ...     await asyncio.sleep(0.1)
    ...     replies.resolve(2, "two")  # replies arrive in any order
    ...     replies.resolve(1, "one")
    >>> reader = asyncio.create_task(read_connection())
    >>> await first, await second
    ('one', 'two')

    Wrap the ``await`` in a timeout.  A future that times out is cancelled and
    forgotten, and a reply that arrives too late is dropped instead of raising
    :exc:`asyncio.InvalidStateError`; :meth:`resolve` tells you which happened:

    >>> try:
    ...     await asyncio.wait_for(replies.expect(3), timeout=0.1)
    ... except asyncio.TimeoutError:
    ...     print("no reply in time")
    no reply in time
    >>> replies.resolve(3, "late"), len(replies)
    (False, 0)

    When the connection dies, fail every waiter at once with :meth:`fail_all`
    so that none of them waits forever:

    >>> third = replies.expect(4)
    >>> replies.fail_all(ConnectionResetError("connection lost"))
    1
    >>> await third
    Traceback (most recent call last):
    ...
    ConnectionResetError: connection lost

    Futures belong to the loop that created them; use one ``PendingReplies``
    per connection, from that connection's loop.
    """

    def __init__(self) -> None:
        self._futures: Dict[K, asyncio.Future[V]] = {}

    def __len__(self) -> int:
        """The number of replies still awaited."""
        return sum(1 for future in self._futures.values() if not future.done())

    def __contains__(self, key: object) -> bool:
        future = self._futures.get(cast(K, key))
        return future is not None and not future.done()

    def expect(self, key: K) -> asyncio.Future[V]:
        """Register *key* and return the future its reply will resolve.

        Each key may be awaited by one request at a time; reuse it only after
        its future is done:

        >>> from recipes.coroutines import PendingReplies
        >>> replies: PendingReplies[str, int] = PendingReplies()
        >>> pending = replies.expect("a")
        >>> replies.expect("a")
        Traceback (most recent call last):
        ...
        ValueError: a reply for 'a' is already expected
        >>> pending.cancel()
        True
        """
        if key in self:
            raise ValueError(f"a reply for {key!r} is already expected")
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._futures[key] = future
        future.add_done_callback(functools.partial(self._forget, key))
        return future

    def _forget(self, key: K, future: asyncio.Future[V]) -> None:
        if self._futures.get(key) is future:
            del self._futures[key]

    def _pending(self, key: K) -> Optional[asyncio.Future[V]]:
        future = self._futures.get(key)
        return None if future is None or future.done() else future

    def resolve(self, key: K, value: V) -> bool:
        """Deliver *value* to whoever awaits *key*; return False if nobody does any more."""
        future = self._pending(key)
        if future is None:
            return False
        future.set_result(value)
        return True

    def fail(self, key: K, exc: BaseException) -> bool:
        """Raise *exc* in whoever awaits *key*; return False if nobody does any more."""
        if not isinstance(exc, BaseException):
            raise TypeError(f"fail() expects an exception instance, got {exc!r}")
        future = self._pending(key)
        if future is None:
            return False
        future.set_exception(exc)
        return True

    def fail_all(self, exc: BaseException) -> int:
        """Raise *exc* in every waiter (the connection is gone); return how many there were."""
        if not isinstance(exc, BaseException):
            raise TypeError(f"fail_all() expects an exception instance, got {exc!r}")
        failed = 0
        for future in list(self._futures.values()):
            if not future.done():
                future.set_exception(exc)
                failed += 1
        return failed


# --- custom awaitables -------------------------------------------------------


class Lazy(Generic[T]):
    """An awaitable that runs *factory* on the first ``await`` and shares the result.

    Good for expensive set-up that many tasks may need at the same moment, such
    as a connection pool or a token: only the first ``await`` starts the work,
    and everyone who awaits meanwhile waits for that same run.

    >>> import asyncio
    >>> from recipes.coroutines import Lazy
    >>> calls = []
    >>> async def load_config() -> dict:
    ...     calls.append("load")
    ...     await asyncio.sleep(0.1)
    ...     return {"debug": False}
    >>> config = Lazy(load_config)
    >>> async def handle(request: int) -> tuple:
    ...     settings = await config
    ...     return request, settings["debug"]
    >>> await asyncio.gather(handle(1), handle(2), handle(3))
    [(1, False), (2, False), (3, False)]
    >>> calls, await config
    (['load'], {'debug': False})

    A failure is not cached: every waiter of the failed run gets the error,
    and the next ``await`` tries again.  A waiter that is cancelled (say by a
    timeout) does not cancel the shared run; :meth:`aclose` does, and also
    raises :exc:`asyncio.CancelledError` in the tasks still waiting.

    The first ``await`` ties the object to the running event loop.  Pass a
    factory, not a coroutine object, which could run only once:

    >>> Lazy(load_config())
    Traceback (most recent call last):
    ...
    TypeError: Lazy() expects a function ...; pass load_config, not load_config()
    """

    def __init__(self, factory: Callable[[], Awaitable[T]]) -> None:
        if inspect.iscoroutine(factory):
            name = factory.__qualname__
            factory.close()
            raise TypeError(
                "Lazy() expects a function that returns an awaitable, got a coroutine "
                f"object; pass {name}, not {name}()"
            )
        if not callable(factory):
            raise TypeError(
                f"Lazy() expects a function that returns an awaitable, got {factory!r}"
            )
        self._factory = factory
        self._task: Optional[asyncio.Future[T]] = None

    def __await__(self) -> Generator[Any, None, T]:
        return self._get().__await__()

    @property
    def done(self) -> bool:
        """True once a value has been computed and cached."""
        task = self._task
        return (
            task is not None and task.done() and not task.cancelled() and task.exception() is None
        )

    async def _get(self) -> T:
        if self._task is None:
            task = asyncio.ensure_future(_call_factory("Lazy", self._factory))
            task.add_done_callback(self._forget_failure)
            self._task = task
        return await asyncio.shield(self._task)

    def _forget_failure(self, task: asyncio.Future[T]) -> None:
        # Reading exception() also marks it retrieved, so an error nobody
        # awaited any more does not end up as "Task exception was never retrieved".
        if (task.cancelled() or task.exception() is not None) and self._task is task:
            self._task = None

    async def aclose(self) -> None:
        """Cancel a run in progress and wait for it; the next ``await`` starts afresh."""
        task, self._task = self._task, None
        if task is not None:
            await _cancel_and_wait_all([task])


# --- blocking code -----------------------------------------------------------


async def run_in_thread(func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run the blocking ``func(*args, **kwargs)`` in a worker thread and await its result.

    >>> import time
    >>> from recipes.coroutines import run_in_thread
    >>> await run_in_thread(time.sleep, 0.05)
    >>> await run_in_thread(sorted, [3, 1, 2], reverse=True)
    [3, 2, 1]

    This is :func:`asyncio.to_thread` on Python 3.9 and later; on 3.8 it does
    the same on top of ``loop.run_in_executor``, including keyword arguments
    and a copy of the caller's context variables.  The function runs in the
    loop's default executor, a thread pool of limited size.

    Cancelling the ``await`` does not stop the thread: it runs ``func`` to the
    end and its result is thrown away.  Pass the function itself, not the
    result of calling it (which would run the blocking code on the loop):

    >>> await run_in_thread(time.sleep(0.01))
    Traceback (most recent call last):
    ...
    TypeError: run_in_thread() expects a callable, got None; pass the function ...

    The files chapter has the same helper, :func:`recipes.files.run_in_thread`
    (see :ref:`recipes/coroutines:Running blocking code off the loop`).
    """
    if not callable(func):
        raise TypeError(
            f"run_in_thread() expects a callable, got {func!r}; pass the function and "
            "its arguments separately: run_in_thread(func, arg)"
        )
    if sys.version_info >= (3, 9):
        return await asyncio.to_thread(func, *args, **kwargs)
    loop = asyncio.get_running_loop()  # pragma: no cover - Python 3.8 only
    context = contextvars.copy_context()
    call = functools.partial(context.run, func, *args, **kwargs)
    return await loop.run_in_executor(None, call)
