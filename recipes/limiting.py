"""Starting ten thousand requests with one :func:`asyncio.gather` is easy, and it
is exactly what a server, a database pool or your own file-descriptor limit
will punish.  Two different limits usually apply: *concurrency* (how many
operations are in flight at the same moment) and *rate* (how many may start
per unit of time).  This chapter bounds the first with
:class:`asyncio.Semaphore`, :func:`limit_concurrency` and
:func:`bounded_gather`, and the second with a token-bucket
:class:`RateLimiter`.

Limiting concurrency with a semaphore
-------------------------------------

.. index::
   single: concurrency limit
   pair: Semaphore; concurrency limit
   single: limit_concurrency

You have nine downloads and the server allows three connections per client.
A semaphore holds three permits; ``async with sem:`` takes one for the
duration of the block and waits while none is free.  Every coroutine is
started, but only three get past the ``async with`` at any moment:

>>> import asyncio
>>> loop = asyncio.get_running_loop()
>>> async def timed(awaitable):
...     start = loop.time()
...     result = await awaitable
...     return result, round(loop.time() - start, 1)
>>> sem = asyncio.Semaphore(3)
>>> async def download(n):
...     async with sem:
...         await asyncio.sleep(0.1)
...         return n * 10
>>> await timed(asyncio.gather(*(download(n) for n in range(9))))
([0, 10, 20, 30, 40, 50, 60, 70, 80], 0.3)

``timed()`` returns the result and the seconds it took: nine jobs of 0.1 s,
three at a time, 0.3 s.  The permit is given back when the
block is left for any reason, including an exception or cancellation.

The semaphore as a primitive – what a permit is, and why
:class:`asyncio.BoundedSemaphore` catches a ``release()`` too many – is in
:ref:`recipes/synchronization:Limiting concurrency with a Semaphore`: read that
section when you acquire and release by hand, and this chapter when you want a
limit on real work, where :func:`limit_concurrency`, :func:`bounded_gather` or
:class:`RateLimiter` is usually the shorter answer.

.. index::
   pair: Semaphore; bound to an event loop
   single: error messages; is bound to a different event loop
   single: error messages; got Future <Future pending> attached to a different loop

.. important::

   Do not create the semaphore at import time, next to the function that
   uses it.  On Python 3.8 and 3.9 an asyncio semaphore (like a lock, event or
   queue) binds to the event loop that is current *when it is created*, and
   ``asyncio.run()`` then runs your code in a different, new loop.  The
   first time a task has to wait for a permit it fails with
   ``RuntimeError: Task <Task pending ...> got Future <Future pending> attached
   to a different loop``.  Since 3.10 the semaphore binds to the first loop
   that waits on it, so the same module-level semaphore works for one
   ``asyncio.run()`` but fails in the next one (typical in test suites) with
   ``RuntimeError: <asyncio.locks.Semaphore object at ...> is bound to a
   different event loop``.  Create it inside the running loop, or use
   :func:`limit_concurrency`, which keeps one semaphore per event loop.

Two ``asyncio.run()`` calls in one program show the difference (a whole
program, so a script to run rather than an example to paste):

.. script:: two_runs.py
   :requires-python: 3.10

   import asyncio

   from recipes.limiting import limit_concurrency

   sem = asyncio.Semaphore(1)  # the mistake: created at import time


   async def with_semaphore(n):
       async with sem:
           await asyncio.sleep(0.01)
           return n


   @limit_concurrency(1)  # fine at import time: one semaphore per loop
   async def with_decorator(n):
       await asyncio.sleep(0.01)
       return n


   async def main(job):
       return await asyncio.gather(job(1), job(2))


   for run in (1, 2):
       print("run", run, "decorator:", asyncio.run(main(with_decorator)))
   for run in (1, 2):
       try:
           print("run", run, "semaphore:", asyncio.run(main(with_semaphore)))
       except RuntimeError as exc:
           print("run", run, "semaphore: RuntimeError:", exc)

.. script-output::

   run 1 decorator: [1, 2]
   run 2 decorator: [1, 2]
   run 1 semaphore: [1, 2]
   run 2 semaphore: RuntimeError: <asyncio.locks.Semaphore object at ...>
   is bound to a different event loop

On 3.8 and 3.9 the semaphore's first run already fails, with the "attached to a
different loop" error above.

.. index::
   single: FIFO semaphore
   single: CPython issue 45997

.. important::

   On Python 3.8, :class:`asyncio.Semaphore` does not serve waiting tasks
   in arrival order: a task that asks for a permit just as one is released
   takes it ahead of the task that was woken for it, which then queues up
   again behind every newcomer (CPython issue 45997, fixed in 3.11 and in
   the 2022 bugfix releases of 3.9 and 3.10).  :func:`limit_concurrency`
   uses a small first-in-first-out semaphore of its own, so waiting calls
   go in arrival order on every version.

:func:`limit_concurrency` puts the limit on the function itself, so every
caller shares it:

>>> from recipes.limiting import limit_concurrency
>>> @limit_concurrency(2)
... async def fetch(n):
...     await asyncio.sleep(0.1)
...     return n
>>> await timed(asyncio.gather(*(fetch(n) for n in range(6))))
([0, 1, 2, 3, 4, 5], 0.3)

Running many coroutines, a few at a time
----------------------------------------

.. index::
   single: bounded_gather
   pair: gather; with a concurrency limit
   single: worker pool; fixed size

The semaphore pattern creates *all* the coroutines and tasks up front: each
of ten thousand tasks exists from the start and most of them sit waiting for
a permit.  :func:`bounded_gather` instead starts a fixed pool of ``limit``
worker tasks that take the next job when they finish one.  Results come back
in argument order, as with :func:`asyncio.gather`:

>>> from recipes.limiting import bounded_gather
>>> async def square(n):
...     await asyncio.sleep(0.1)
...     return n * n
>>> await bounded_gather(*(square(n) for n in range(6)), limit=3)
[0, 1, 4, 9, 16, 25]

Pass *factories* (zero-argument callables that return an awaitable, such as
``functools.partial(square, n)``) and no coroutine exists before a worker is
ready for it, so memory stays proportional to ``limit``, not to the number of
jobs.  Which to choose:

* **Semaphore per task** (``gather`` of coroutines that each do
  ``async with sem:``): simplest to write; every job is its own task, so you
  can cancel or inspect one; costs one task per job for the whole run (about
  a kilobyte or two each).
* **Fixed pool** (:func:`bounded_gather`): exactly ``limit`` tasks; with
  factories nothing is created early; a failure cancels the jobs in flight
  and never starts the rest.  Individual jobs have no task of their own.

Both keep the number of jobs in flight at or below the limit; the test suite
checks that each reaches exactly the limit and never more.

To apply *one* coroutine function to many items, stopping at the first
failure, :func:`recipes.gathering.map_concurrently`
(:ref:`recipes/gathering:Applying one coroutine function to many items`) says
it more directly and reads the items lazily; use :func:`bounded_gather` for a
list of different jobs, for factories you build yourself, or when you want
every outcome back with ``return_exceptions=True``.  For HTTP requests,
:func:`recipes.http_client.fetch_all` does the same with one result per URL,
and the crawler of :doc:`/recipes/crawler` keeps its own pool of workers fed
from a queue (:doc:`/recipes/queues` shows that shape for work that arrives
over time).

Limiting the rate of requests
-----------------------------

.. index::
   single: rate limiting
   single: token bucket
   single: RateLimiter
   pair: HTTP 429; rate limit

An API that allows five requests per second does not care how many of them
are concurrent; it counts how many *start* in a period.  A token bucket
models this: it holds up to ``burst`` tokens, gains ``rate`` tokens per
second, and every request takes one token or waits for it.
:class:`RateLimiter` implements it against the event loop's clock, serves
waiters in arrival order, and never lets more than ``burst + rate * t``
requests start in any window of ``t`` seconds:

>>> from recipes.limiting import RateLimiter
>>> async def call_many(limiter, count):
...     start = loop.time()
...     for n in range(count):
...         async with limiter:
...             print(n, "started after", round(loop.time() - start, 1), "s")
>>> await call_many(RateLimiter(rate=5, burst=2), 6)
0 started after 0.0 s
1 started after 0.0 s
2 started after 0.2 s
3 started after 0.4 s
4 started after 0.6 s
5 started after 0.8 s

The first two went through at once (the burst); after that, one every
1/5 second.  A rate limit does not bound concurrency, and a semaphore does
not bound the rate; when an API states both, use both, taking the permit
before the token so a task never holds a token while it queues for a permit:

>>> api_rate = RateLimiter(rate=10)
>>> @limit_concurrency(2)
... async def call_api(n):
...     async with api_rate:
...         await asyncio.sleep(0.3)
...         return n
>>> await asyncio.gather(*(call_api(n) for n in range(4)))
[0, 1, 2, 3]

A server that answers "429 Too Many Requests" all the same wants you to slow
down: :func:`recipes.http_client.with_retries` (:doc:`/recipes/http_client`)
retries it once you add it to ``retry_statuses``
(``RETRY_STATUSES | {429}``), and waits as long as the server's
``Retry-After`` header asks.

Putting it together
-------------------

A complete program: a thousand jobs, ten at a time, created lazily.

.. script:: thousand_jobs.py

   import asyncio
   import functools

   from recipes.limiting import bounded_gather


   async def job(n):
       await asyncio.sleep(0)  # some I/O
       return n % 7


   async def main():
       jobs = [functools.partial(job, n) for n in range(1000)]
       results = await bounded_gather(*jobs, limit=10)
       print(len(results), "results, sum", sum(results))


   asyncio.run(main())

.. script-output::

   1000 results, sum 2997

A library does this
-------------------

.. index::
   single: aiolimiter
   pair: aiolimiter; comparison
   single: aiometer
   pair: aiometer; comparison

* `aiolimiter <https://aiolimiter.readthedocs.io/>`__ has one class,
  ``AsyncLimiter(max_rate, time_period)``, used like :class:`RateLimiter`
  (``async with limiter:``).  It lets ``max_rate`` through at once and then
  ``max_rate / time_period`` a second, so ``AsyncLimiter(2, 0.4)`` admits the
  same starts as ``RateLimiter(rate=5, burst=2)``.  It adds weighted requests
  (``await limiter.acquire(amount)``) and ``has_capacity()``, which only
  looks; :meth:`RateLimiter.try_acquire` looks and takes in one step.  Its
  waiters are not served strictly in arrival order: a small request may pass
  a large one, and a newcomer that finds capacity goes ahead of those
  waiting (under steady overload a few percent of its admissions came out
  of order in :ref:`the benchmark <performance:RateLimiter against
  aiolimiter>`; the recipe's none).  Used in a second event loop it warns
  (``RuntimeWarning``) and keeps its level, where the recipe starts afresh.
  Its current release needs Python 3.10+.  Choose it
  for weighted requests or to leave the code to a maintainer; copy the
  recipe for older Pythons or to add no dependency.  Neither bounds
  concurrency.
* `aiometer <https://github.com/florimondmanca/aiometer>`__ runs a batch of
  jobs with ``max_at_once`` and ``max_per_second``: ``run_all()`` takes
  zero-argument callables and returns the results in order, like
  :func:`bounded_gather` with factories, while ``amap()`` and
  ``run_on_each()`` apply one function to a sequence of arguments.  A task
  is created for a job only when both limits let it start.  It runs on anyio,
  so on asyncio and Trio.  Its rate has no burst (one start every
  ``1 / max_per_second`` seconds) and lasts for one call, so two calls cannot
  share it as they share a :class:`RateLimiter`.  Choose it for one-off
  batches under both limits; the recipes when the limit must span many call
  sites or sit on the function (:func:`limit_concurrency`).

See also
--------

* :doc:`/recipes/synchronization` – the semaphore and the other primitives.
* :doc:`/recipes/gathering` – :func:`~recipes.gathering.map_concurrently` and
  the other ways of running coroutines together.
* :doc:`/recipes/queues` – worker pools fed by a queue, with backpressure.
* :doc:`/recipes/http_client` – a concurrency limit on HTTP requests, and
  retries.
* Python: :class:`asyncio.Semaphore` and :class:`asyncio.BoundedSemaphore` in
  :doc:`python:library/asyncio-sync`; :func:`asyncio.gather` in
  :doc:`python:library/asyncio-task`.
* aiohttp: the connection limits of :class:`aiohttp.TCPConnector`
  (``limit``, ``limit_per_host``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import inspect
import math
import sys
import weakref
from typing import (
    TYPE_CHECKING,
    Any,
    Awaitable,
    Callable,
    Coroutine,
    Deque,
    List,
    Literal,
    Optional,
    TypeVar,
    Union,
    overload,
)

if TYPE_CHECKING or sys.version_info >= (3, 10):
    from typing import ParamSpec

    P = ParamSpec("P")

__all__ = ["RateLimiter", "bounded_gather", "limit_concurrency"]

T = TypeVar("T")
R = TypeVar("R")


def _check_limit(limit: object) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(f"limit must be an int, got {limit!r}")
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    return limit


class _FifoSemaphore:
    """A semaphore that serves its waiters strictly in arrival order.

    release() hands the permit straight to the longest waiter instead of
    making it free for whoever asks first: asyncio.Semaphore on 3.8 lets a
    newcomer take it before the woken waiter runs, and that waiter then queues
    up again at the end.  Its futures are created in the running loop.
    """

    def __init__(self, value: int) -> None:
        self._free = value
        self._waiters: Deque[asyncio.Future[None]] = collections.deque()

    async def acquire(self) -> None:
        if self._free > 0 and not any(not w.done() for w in self._waiters):
            self._free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed to us just as we were cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():  # skip waiters cancelled in the meantime
                waiter.set_result(None)
                return
        self._free += 1


def limit_concurrency(
    limit: int,
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Coroutine[Any, Any, R]]]:
    """Decorate an async function so that at most *limit* calls run at the same time.

    Calls beyond the limit wait, in arrival order, for a running call to
    finish:

    >>> import asyncio
    >>> from recipes.limiting import limit_concurrency
    >>> loop = asyncio.get_running_loop()
    >>> @limit_concurrency(3)
    ... async def query(n):
    ...     await asyncio.sleep(0.2)
    ...     return -n
    >>> async def query_all():
    ...     start = loop.time()
    ...     results = await asyncio.gather(*(query(n) for n in range(7)))
    ...     return results, round(loop.time() - start, 1)
    >>> await query_all()
    ([0, -1, -2, -3, -4, -5, -6], 0.6)

    The limit is shared by every caller of the decorated function.  It is
    enforced with one first-in-first-out semaphore per event loop (a freed
    permit goes straight to the call that has waited longest; a call that
    is cancelled while it waits gives up its place), created on first use
    inside that loop, so decorating at import time is safe on every Python
    version and the function keeps working across several ``asyncio.run()``
    calls (each loop gets its own permits; the chapter's script
    ``two_runs.py``, in
    :ref:`recipes/limiting:Limiting concurrency with a semaphore`, shows it
    next to a module-level semaphore that fails).

    A limit below 1 is refused when decorating:

    >>> limit_concurrency(0)
    Traceback (most recent call last):
    ...
    ValueError: limit must be >= 1, got 0
    """
    _check_limit(limit)

    def decorate(func: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
        semaphores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _FifoSemaphore]
        semaphores = weakref.WeakKeyDictionary()

        @functools.wraps(func)
        async def limited(*args: P.args, **kwargs: P.kwargs) -> R:
            loop = asyncio.get_running_loop()
            semaphore = semaphores.get(loop)
            if semaphore is None:
                # One per loop: its futures belong to the loop they are awaited in.
                semaphore = semaphores[loop] = _FifoSemaphore(limit)
            await semaphore.acquire()
            try:
                return await func(*args, **kwargs)
            finally:
                semaphore.release()

        return limited

    return decorate


def _cancel_requests() -> int:
    """Cancellation requests pending for the current task (3.11+; always 0 before)."""
    if sys.version_info < (3, 11):
        return 0
    task = asyncio.current_task()
    return 0 if task is None else task.cancelling()


def _discard(jobs: Any) -> None:
    """Close coroutines and cancel futures that will never be awaited."""
    for job in jobs:
        if inspect.iscoroutine(job):
            job.close()  # no "coroutine ... was never awaited" warning
        elif isinstance(job, asyncio.Future):
            job.cancel()


async def _until_done(tasks: List[asyncio.Task[None]]) -> bool:
    """Wait until every task has ended, whatever cancels us; True if something did."""
    cancelled = False
    pending = [task for task in tasks if not task.done()]
    while pending:
        try:
            await asyncio.wait(pending)
        except asyncio.CancelledError:
            cancelled = True  # already winding down: finish the wait, then re-raise
        pending = [task for task in pending if not task.done()]
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved: no "Task exception was never retrieved"
    return cancelled


@overload
async def bounded_gather(
    *aws_or_factories: Union[Awaitable[T], Callable[[], Awaitable[T]]],
    limit: int,
    return_exceptions: Literal[False] = False,
) -> List[T]: ...


@overload
async def bounded_gather(
    *aws_or_factories: Union[Awaitable[T], Callable[[], Awaitable[T]]],
    limit: int,
    return_exceptions: bool,
) -> List[Union[T, Exception]]: ...


async def bounded_gather(
    *aws_or_factories: Union[Awaitable[Any], Callable[[], Awaitable[Any]]],
    limit: int,
    return_exceptions: bool = False,
) -> List[Any]:
    """Await every argument with at most *limit* in progress; return results in order.

    Like :func:`asyncio.gather`, but only *limit* of the awaitables run at a
    time:

    >>> import asyncio
    >>> from recipes.limiting import bounded_gather
    >>> async def double(n):
    ...     await asyncio.sleep(0.1)
    ...     return 2 * n
    >>> await bounded_gather(double(1), double(2), double(3), limit=2)
    [2, 4, 6]

    Each argument is either an awaitable (usually a coroutine) or a
    zero-argument callable that returns one.  Callables are called only when
    a worker is free, so a million jobs never mean a million coroutines in
    memory at once.  ``limit`` worker tasks (fewer if there are fewer jobs)
    take the next job as soon as they finish one.

    >>> import functools
    >>> jobs = [functools.partial(double, n) for n in range(100)]
    >>> results = await bounded_gather(*jobs, limit=10)
    >>> results[:5], len(results)
    ([0, 2, 4, 6, 8], 100)

    If a job raises and *return_exceptions* is false, the jobs in progress are
    cancelled and awaited, the jobs not yet started are discarded (coroutines
    are closed, so there is no ``never awaited`` warning), and the exception
    propagates.  With ``return_exceptions=True`` the exception takes the
    job's place in the results and the other jobs carry on:

    >>> async def check(n):
    ...     if n == 2:
    ...         raise ValueError(f"bad job {n}")
    ...     return n
    >>> await bounded_gather(*(check(n) for n in range(4)), limit=2)
    Traceback (most recent call last):
    ...
    ValueError: bad job 2
    >>> checks = [check(n) for n in range(4)]
    >>> await bounded_gather(*checks, limit=2, return_exceptions=True)
    [0, 1, ValueError('bad job 2'), 3]

    Cancelling ``bounded_gather`` cancels the jobs in progress, waits until
    they have finished their cleanup and discards the rest.  That wait is
    not cut short by a further cancellation, which instead makes
    ``bounded_gather`` raise :exc:`asyncio.CancelledError` once it is over
    (also when the wait began because a job failed).  A job that turns its
    cancellation into an error (a cleanup that raises) or swallows it does
    not keep its worker going, even with ``return_exceptions=True``: the
    workers are marked before they are cancelled, so on every Python version
    no job starts after the cancellation.  (A cancellation that reaches a
    worker from elsewhere, such as ``asyncio.run()`` cancelling every task
    at exit, is recognised at once on 3.11+; on 3.8–3.10 once
    ``bounded_gather``, cancelled in the same sweep, has marked the worker,
    which may start one more job first.)  Do not pass tasks: a
    task is already running, so no limit can apply to it.  Invalid arguments
    raise before any job starts:

    >>> await bounded_gather(double(1), 42, limit=2)
    Traceback (most recent call last):
    ...
    TypeError: bounded_gather() takes awaitables or callables returning one, got 42
    """
    jobs = list(aws_or_factories)
    try:
        _check_limit(limit)
        for job in jobs:
            if not (inspect.isawaitable(job) or callable(job)):
                raise TypeError(
                    f"bounded_gather() takes awaitables or callables returning one, got {job!r}"
                )
    except BaseException:
        _discard(jobs)
        raise

    results: List[Any] = [None] * len(jobs)
    todo = iter(enumerate(jobs))  # shared by all workers: each job is taken once
    stopping = False  # set just before the workers are cancelled

    async def worker() -> None:
        for index, job in todo:
            before = _cancel_requests()
            try:
                awaitable = job if inspect.isawaitable(job) else job()
                result = await awaitable
            except Exception as exc:
                if stopping or _cancel_requests() > before:
                    # The job turned our cancellation into an error (its cleanup
                    # raised): the worker must stop, not record it and go on.
                    raise asyncio.CancelledError from exc
                if not return_exceptions:
                    raise
                results[index] = exc
            else:
                if stopping or _cancel_requests() > before:
                    raise asyncio.CancelledError  # the job swallowed our cancellation
                results[index] = result

    workers = [asyncio.create_task(worker()) for _ in range(min(limit, len(jobs)))]
    try:
        # Not gather(): cancelling gather() again would cancel the jobs again,
        # in the middle of the cleanup that the first cancellation started.
        pending = set(workers)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in workers:
                if task in done:
                    task.result()  # a job's error (or a job's own cancellation) ends the run
    except BaseException as exc:
        # A job failed, or we were cancelled: stop the jobs in progress and
        # wait until their cleanup has run before letting the exception out.
        stopping = True
        for task in workers:
            task.cancel()
        if await _until_done(workers) and not isinstance(exc, asyncio.CancelledError):
            raise asyncio.CancelledError from exc  # cancelled meanwhile: that wins
        raise
    finally:
        _discard(job for _, job in todo)
    return results


class _WaitQueue:
    """A rate limiter's waiters on one event loop: a fair lock and how many are waiting."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        # Tasks inside acquire() that have not taken their token yet, including one
        # the lock has just woken but that has not run: lock.locked() misses that one.
        self.waiting = 0


class RateLimiter:
    """A token bucket: at most *burst* acquisitions at once and *rate* per *per* seconds.

    Use it as an async context manager (or ``await limiter.acquire()``)
    around each operation that counts against the rate:

    >>> import asyncio
    >>> from recipes.limiting import RateLimiter
    >>> loop = asyncio.get_running_loop()
    >>> async def three_calls(limiter):
    ...     start = loop.time()
    ...     for _ in range(3):
    ...         async with limiter:
    ...             print(round(loop.time() - start, 1))
    >>> await three_calls(RateLimiter(rate=2))
    0.0
    0.5
    1.0

    The bucket starts full.  Tokens are not given back when the block ends:
    the limit is on how often operations *start*.  ``per`` expresses other
    units (``RateLimiter(100, per=60)`` is 100 a minute); ``burst`` lets that
    many through back to back after a quiet period.  In any window of ``t``
    seconds at most ``burst + rate / per * t`` acquisitions succeed, measured
    with the event loop's clock (so it also works with a fake clock in tests).

    Waiters are served first come, first served, and a waiter that is
    cancelled (for example by a timeout around ``acquire()``) uses no token:

    >>> limiter = RateLimiter(rate=10)
    >>> order = []
    >>> async def call(name):
    ...     async with limiter:
    ...         order.append(name)
    >>> done = await asyncio.gather(*(call(name) for name in "abcde"))
    >>> order
    ['a', 'b', 'c', 'd', 'e']

    :meth:`try_acquire` takes a token only if one is free right now, for code
    that would rather refuse work (say, answer HTTP 429) than wait.  The
    limiter is not thread-safe; its state starts afresh in a new event loop.
    Invalid settings raise immediately:

    >>> RateLimiter(rate=0)
    Traceback (most recent call last):
    ...
    ValueError: rate must be a finite number > 0, got 0
    """

    def __init__(self, rate: float, *, per: float = 1.0, burst: int = 1) -> None:
        for name, value in (("rate", rate), ("per", per)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a number, got {value!r}")
            if not 0 < value < math.inf:
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if isinstance(burst, bool) or not isinstance(burst, int):
            raise TypeError(f"burst must be an int, got {burst!r}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        self._rate = rate / per
        self._burst = burst
        self._interval = per / rate  # seconds between two tokens
        self._slack = (burst - 1) * self._interval  # how far ahead a full bucket can be used
        # The whole bucket is one number: the loop time at which it will be full
        # again if nobody takes a token.  Each token taken moves it one interval on.
        self._full_at = -math.inf
        self._queue: Optional[_WaitQueue] = None
        self._loop: Optional[weakref.ReferenceType[asyncio.AbstractEventLoop]] = None

    @property
    def rate(self) -> float:
        """Tokens added per second."""
        return self._rate

    @property
    def burst(self) -> int:
        """Capacity of the bucket: acquisitions allowed back to back."""
        return self._burst

    def _bind(self) -> _WaitQueue:
        loop = asyncio.get_running_loop()
        if self._queue is None or self._loop is None or self._loop() is not loop:
            # First use, or a new event loop: fresh queue (bound to this loop), full bucket.
            self._queue = _WaitQueue()
            self._loop = weakref.ref(loop)
            self._full_at = -math.inf
        return self._queue

    def _delay(self, now: float) -> float:
        """Seconds to wait before a token is free at loop time *now* (<= 0: free now)."""
        return max(self._full_at, now) - self._slack - now

    def _take(self, now: float) -> None:
        self._full_at = max(self._full_at, now) + self._interval

    async def acquire(self) -> None:
        """Wait until a token is free and take it; waiters are served in arrival order."""
        queue = self._bind()
        loop = asyncio.get_running_loop()
        now = loop.time()
        if not queue.waiting and self._delay(now) <= 0:
            self._take(now)  # nobody ahead of us and a token is free: no lock needed
            return
        # The lock is fair (FIFO): the task holding it is the next to be served,
        # and it sleeps while holding it.  If it is cancelled, no token is taken.
        queue.waiting += 1
        try:
            async with queue.lock:
                while True:
                    now = loop.time()
                    delay = self._delay(now)
                    if delay <= 0:
                        break
                    # Sleep whole microseconds, rounded up: never wake before the token
                    # is due (float noise included), and a clock that ticks in
                    # microseconds (such as a test's fake clock) can always get there.
                    await asyncio.sleep(math.ceil(delay * 1_000_000) / 1_000_000)
                self._take(now)
        finally:
            queue.waiting -= 1

    def try_acquire(self) -> bool:
        """Take a token if one is free right now and nobody is waiting; never waits.

        >>> from recipes.limiting import RateLimiter
        >>> limiter = RateLimiter(rate=1, burst=2)
        >>> [limiter.try_acquire() for _ in range(3)]
        [True, True, False]
        """
        if self._bind().waiting:
            # Someone is waiting, perhaps already woken but not yet run: never overtake.
            return False
        now = asyncio.get_running_loop().time()
        if self._delay(now) > 0:
            return False
        self._take(now)
        return True

    async def __aenter__(self) -> RateLimiter:
        await self.acquire()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    def __repr__(self) -> str:
        return f"<RateLimiter rate={self._rate:g}/s burst={self._burst}>"
