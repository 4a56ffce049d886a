"""Wait for a set of tasks on your own terms: all of them, the first one, or until a deadline.

:func:`asyncio.wait` is the low-level tool under most "wait for several things"
patterns. Unlike :func:`asyncio.gather` it returns two *sets* of tasks,
``(done, pending)``, and leaves every decision to you: it never raises the
tasks' exceptions, it never cancels anything, and when its timeout expires it
simply returns with the unfinished tasks still running. That makes it the right
building block for races, progress reports and deadlines, and an easy way to
leak tasks. This chapter walks through its three modes and its timeout, then
gives four helpers: :func:`cancel_and_wait` cleans up what is left over,
:func:`first_completed` and :func:`first_success` race awaitables against each
other and stop the losers, and :func:`wait_with_progress` reports progress
while waiting under one overall deadline.

Waiting for all of them
-----------------------

.. index::
   pair: asyncio.wait; ALL_COMPLETED
   single: done and pending sets

You started a few tasks and need all of them to finish, successfully or not,
before you look at the outcome. ``await asyncio.wait(tasks)`` (the default
``return_when=asyncio.ALL_COMPLETED``) does exactly that. It does not raise
when a task fails: the exception stays inside the task, and you read it with
:meth:`asyncio.Task.exception` or get it raised by
:meth:`asyncio.Task.result`:

>>> import asyncio
>>> async def job(delay, fail=False):
...     await asyncio.sleep(delay)
...     if fail:
...         raise ValueError(f"failed after {delay} s")
...     return delay
>>> def names(tasks):
...     return sorted(task.get_name() for task in tasks)
>>> ok = asyncio.create_task(job(0.1), name="ok")
>>> bad = asyncio.create_task(job(0.2, fail=True), name="bad")
>>> done, pending = await asyncio.wait([ok, bad])
>>> names(done), names(pending)
(['bad', 'ok'], [])
>>> ok.result(), bad.exception()
(0.1, ValueError('failed after 0.2 s'))

``done`` and ``pending`` are sets, so their order means nothing: keep your own
list of tasks when order matters, and test membership (``task in done``).

Reacting to the first task to finish
------------------------------------

.. index::
   pair: asyncio.wait; FIRST_COMPLETED
   pair: asyncio.wait; FIRST_EXCEPTION

With ``return_when=asyncio.FIRST_COMPLETED`` the call returns as soon as at
least one task is done (several can finish in the same step). The others are
*still running* afterwards, so stop them with :func:`cancel_and_wait` (it
cancels them, waits until they have finished, and returns the errors they raised
meanwhile):

>>> from recipes.waiting import cancel_and_wait
>>> tasks = [asyncio.create_task(job(d), name=f"{d} s")
...          for d in (0.3, 0.1, 0.2)]
>>> done, pending = await asyncio.wait(
...     tasks, return_when=asyncio.FIRST_COMPLETED
... )
>>> names(done), names(pending)
(['0.1 s'], ['0.2 s', '0.3 s'])
>>> await cancel_and_wait(pending)  # stop the rest
[]

``return_when=asyncio.FIRST_EXCEPTION`` returns when a task *raises*; if none
raises it waits for all of them, like ``ALL_COMPLETED``. A task that is
cancelled does not count as raising here.

>>> tasks = [asyncio.create_task(job(0.1, fail=True), name="bad"),
...          asyncio.create_task(job(0.3), name="slow")]
>>> done, pending = await asyncio.wait(
...     tasks, return_when=asyncio.FIRST_EXCEPTION
... )
>>> names(done), names(pending)
(['bad'], ['slow'])
>>> await cancel_and_wait(pending)
[]

Waiting with a time limit
-------------------------

.. index::
   pair: asyncio.wait; timeout
   single: error messages; Task was destroyed but it is pending!

``timeout=`` caps the wait. When it expires, :func:`asyncio.wait` does **not**
raise :exc:`asyncio.TimeoutError`; it returns normally, and the unfinished
tasks are in ``pending``, still running (:func:`asyncio.wait_for` and the other
tools of :doc:`/recipes/timeouts` raise instead, and cancel what they waited for):

>>> tasks = [asyncio.create_task(job(d), name=f"{d} s") for d in (0.1, 5)]
>>> done, pending = await asyncio.wait(tasks, timeout=0.2)
>>> names(done), names(pending)
(['0.1 s'], ['5 s'])

.. important::

   :func:`asyncio.wait` never cancels anything. Tasks left in ``pending`` keep
   running unsupervised until they end or the program shuts down (a loop that
   is closed without cancelling them reports ``Task was destroyed but it is
   pending!``). Calling ``task.cancel()``
   is not enough either: it only *requests* cancellation, and the task's
   ``finally`` blocks run later. Cancel **and** await, which is what
   :func:`cancel_and_wait` does:

>>> await cancel_and_wait(pending)
[]
>>> [task.cancelled() for task in tasks]
[False, True]

:doc:`/recipes/cancellation` has a :func:`~recipes.cancellation.cancel_and_wait` of
its own, for shutting down: it takes the tasks as separate arguments
(``cancel_and_wait(*workers)``), can bound the wait with ``timeout=`` and pass a
cancel message with ``msg=``.  The one in this chapter takes a single iterable, so
the ``pending`` set of :func:`asyncio.wait` goes straight in; use it for that, and
the other one at shutdown.

Passing tasks, not coroutines
-----------------------------

.. index::
   single: error messages; Passing coroutines is forbidden, use tasks explicitly.
   single: warnings; The explicit passing of coroutine objects to asyncio.wait() is deprecated

:func:`asyncio.wait` works on tasks and futures. On Python 3.8 it quietly
wrapped coroutines in new tasks, and then ``coro in done`` was never true,
because ``done`` held those new tasks rather than your coroutines.

.. important::

   Passing a coroutine to :func:`asyncio.wait` raises ``TypeError: Passing
   coroutines is forbidden, use tasks explicitly.`` on Python 3.11+, and emits
   ``DeprecationWarning: The explicit passing of coroutine objects to
   asyncio.wait() is deprecated since Python 3.8`` on 3.9 and 3.10. Wrap each
   coroutine with :func:`asyncio.create_task` first, on every version. The
   helpers below that take *awaitables* do this wrapping for you.

>>> try:  # doctest: +PY311
...     coro = job(0.1)
...     await asyncio.wait([coro])
... except TypeError as exc:
...     print(exc)
... finally:
...     coro.close()  # it was never started; closing it avoids "never awaited"
Passing coroutines is forbidden, use tasks explicitly.

Racing awaitables: the first result wins
----------------------------------------

.. index::
   single: racing awaitables
   pair: first result; race

Ask several mirrors for the same file, use whichever answers first, and stop
the others. Doing this by hand means ``FIRST_COMPLETED``, then cancelling and
awaiting the losers, on every path including errors and the caller's own
cancellation. :func:`first_completed` packages it:

>>> from recipes.waiting import first_completed, first_success
>>> async def mirror(name, delay):
...     try:
...         await asyncio.sleep(delay)
...         return f"file from {name}"
...     finally:
...         print(name, "stopped")
>>> await first_completed(
...     mirror("eu", 0.3), mirror("us", 0.1), mirror("asia", 0.2)
... )
us stopped
eu stopped
asia stopped
'file from us'

The first awaitable to *finish* wins even if it finished by raising. When a
fast failure should not end the race, use :func:`first_success`, which keeps
waiting for a success and only gives up when every candidate has failed:

>>> async def down(name, delay):
...     await asyncio.sleep(delay)
...     raise ConnectionError(f"{name} is down")
>>> await first_success(down("primary", 0.1), mirror("replica", 0.2))
replica stopped
'file from replica'

:func:`recipes.task_groups.race` is :func:`first_success` built on a
:class:`asyncio.TaskGroup`: when every candidate fails it raises an
:exc:`ExceptionGroup` instead of :class:`AllFailedError`, and it has no
``timeout=``.  Take it if your code handles exception groups already; take
:func:`first_success` for a time limit, or on 3.8–3.10 without the TaskGroup
backports.

Reporting progress while waiting
--------------------------------

.. index::
   single: progress reporting
   pair: deadline; asyncio.wait

To show "3/10 finished" while a batch runs, loop over ``FIRST_COMPLETED``.
With a handful of tasks this loop is all you need:

>>> tasks = [asyncio.create_task(job(d)) for d in (0.3, 0.1, 0.2)]
>>> pending = tasks
>>> while pending:
...     done, pending = await asyncio.wait(
...         pending, return_when=asyncio.FIRST_COMPLETED
...     )
...     print(f"{len(tasks) - len(pending)}/{len(tasks)} finished")
1/3 finished
2/3 finished
3/3 finished

Two things go wrong as it grows. A ``timeout=`` passed to each
:func:`asyncio.wait` call starts afresh every round, so ten rounds with
``timeout=5`` may take fifty seconds: compute one deadline and pass what is
left of it. And every round registers a callback on every pending task again,
so the cost grows with the *square* of the number of tasks. Measured with
tasks that finish one at a time, 3,000 tasks cost about 3 s of CPU time and
10,000 about 40 s on Python 3.13 (8 s and 150 s on 3.8).
:func:`wait_with_progress` fixes both: it keeps one deadline and registers one
callback per task (10,000 tasks: about 0.2 s).

>>> from recipes.waiting import wait_with_progress
>>> def report(finished, total):
...     print(f"{finished}/{total} finished")
>>> tasks = [asyncio.create_task(job(d)) for d in (0.1, 0.2, 5)]
>>> done, pending = await wait_with_progress(tasks, report, timeout=0.3)
1/3 finished
2/3 finished
>>> len(done), len(pending)
(2, 1)
>>> await cancel_and_wait(pending)
[]

A short session
---------------

>>> fast = asyncio.create_task(job(0.1))
>>> slow = asyncio.create_task(job(1))
>>> done, pending = await asyncio.wait([fast, slow], timeout=0.5)
>>> fast in done, slow in pending
(True, True)
>>> await cancel_and_wait(pending)
[]
>>> await first_completed(job(0.2), job(0.1))
0.1

See also
--------

* :doc:`/recipes/gathering` – :func:`asyncio.gather` and
  :func:`asyncio.as_completed`, for when you want results rather than sets of tasks.
* :doc:`/recipes/task_groups` – tasks that cannot outlive a block, and
  :func:`~recipes.task_groups.race`.
* :doc:`/recipes/timeouts` – :func:`asyncio.wait_for` and timeout scopes, which
  raise when time is up.
* :doc:`/recipes/cancellation` – what cancelling a task does, and
  :func:`~recipes.cancellation.cancel_and_wait` for shutdowns.
* :doc:`/recipes/errors` – the errors that :func:`asyncio.wait` leaves in the tasks.
* Python: :func:`asyncio.wait`, :data:`asyncio.FIRST_COMPLETED` and the other
  constants, and the :doc:`python:library/asyncio-task` page.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import numbers
from typing import (
    Any,
    Awaitable,
    Callable,
    Iterable,
    List,
    Optional,
    Sequence,
    Set,
    Tuple,
    TypeVar,
)

__all__ = [
    "AllFailedError",
    "cancel_and_wait",
    "first_completed",
    "first_success",
    "wait_with_progress",
]

T = TypeVar("T")


def _check_timeout(timeout: Optional[float]) -> None:
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
        raise TypeError(f"timeout must be a number of seconds or None, got {timeout!r}")
    if math.isnan(timeout) or timeout < 0:
        raise ValueError(f"timeout must be >= 0 seconds or None, got {timeout!r}")


def _futures_only(function: str, tasks: Iterable[Any]) -> List[asyncio.Future[Any]]:
    """Return ``tasks`` as a list without duplicates; reject anything that is not a future."""
    unique: List[asyncio.Future[Any]] = list(dict.fromkeys(tasks))
    for candidate in unique:
        if not asyncio.isfuture(candidate):
            hint = ""
            if asyncio.iscoroutine(candidate):
                hint = " (wrap coroutines with asyncio.create_task())"
            raise TypeError(
                f"{function}() takes tasks or futures, not {type(candidate).__name__!r}{hint}"
            )
    return unique


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]]) -> List[BaseException]:
    """Cancel tasks and wait until every one has finished; return the errors they raised.

    :meth:`asyncio.Task.cancel` only *requests* cancellation. This waits until
    each task has actually stopped, so its ``finally`` blocks have run:

    >>> import asyncio
    >>> from recipes.waiting import cancel_and_wait
    >>> async def flusher():
    ...     try:
    ...         await asyncio.sleep(10)
    ...     finally:
    ...         await asyncio.sleep(0.1)  # e.g. flush a buffer
    ...         print("flushed")
    >>> task = asyncio.create_task(flusher())
    >>> await asyncio.sleep(0)  # let it start
    >>> await cancel_and_wait([task])
    flushed
    []
    >>> task.cancelled()
    True

    The return value lists the exceptions (other than cancellation) that the
    tasks ended with, in the order given, including tasks that had already
    failed before the call; you decide whether to log or raise them:

    >>> async def broken_cleanup():
    ...     try:
    ...         await asyncio.sleep(10)
    ...     finally:
    ...         raise OSError("disk full")
    >>> task = asyncio.create_task(broken_cleanup())
    >>> await asyncio.sleep(0)
    >>> await cancel_and_wait([task])
    [OSError('disk full')]

    Finished tasks are left as they are, and an empty iterable is fine. If the
    caller is cancelled while waiting, the wait still runs to the end and the
    :exc:`asyncio.CancelledError` is re-raised afterwards (the errors are then
    left in the tasks, where asyncio logs them). A task that swallows its
    cancellation is waited for until it returns, so put timeouts inside tasks
    whose cleanup can hang. Coroutines are rejected with :exc:`TypeError`:
    there is nothing to cancel in a coroutine that was never started.

    For shutdowns, :func:`recipes.cancellation.cancel_and_wait` takes the tasks as
    separate arguments and adds a *timeout* and a cancel message (*msg*).
    """
    futures = _futures_only("cancel_and_wait", tasks)
    for future in futures:
        future.cancel()
    pending = {future for future in futures if not future.done()}
    interrupted: Optional[asyncio.CancelledError] = None
    while pending:
        try:
            await asyncio.wait(pending)
        except asyncio.CancelledError as exc:
            interrupted = exc  # finish waiting first, then propagate
        pending = {future for future in pending if not future.done()}
    if interrupted is not None:
        raise interrupted
    errors: List[BaseException] = []
    for future in futures:
        if not future.cancelled():
            error = future.exception()
            if error is not None:
                errors.append(error)
    return errors


def _start(
    function: str, aws: Sequence[Any], timeout: Optional[float]
) -> List[asyncio.Future[Any]]:
    """Validate the arguments of a race, then wrap every awaitable in a task."""
    problem: Optional[Exception] = None
    if not aws:
        problem = ValueError(f"{function}() needs at least one awaitable")
    for position, candidate in enumerate(aws):
        if problem is None and not inspect.isawaitable(candidate):
            hint = "; did you forget to call it?" if callable(candidate) else ""
            problem = TypeError(
                f"{function}() needs awaitables (coroutines, tasks or futures), "
                f"not {type(candidate).__name__!r} (argument {position}){hint}"
            )
    if problem is None:
        try:
            _check_timeout(timeout)
        except (TypeError, ValueError) as exc:
            problem = exc
    if problem is not None:
        # The coroutines were handed to us to run; close them so a rejected
        # call does not also warn "coroutine ... was never awaited".
        for candidate in aws:
            if asyncio.iscoroutine(candidate):
                candidate.close()
        raise problem
    return [asyncio.ensure_future(aw) for aw in aws]


async def first_completed(*aws: Awaitable[T], timeout: Optional[float] = None) -> T:
    """Return the outcome of whichever awaitable finishes first; cancel and await the rest.

    >>> import asyncio
    >>> from recipes.waiting import first_completed
    >>> async def answer(value, delay):
    ...     await asyncio.sleep(delay)
    ...     return value
    >>> await first_completed(answer("slow", 0.2), answer("fast", 0.1))
    'fast'

    "Outcome" includes failure: if the first awaitable to finish raised, that
    exception is re-raised (after the others have been stopped). With
    ``timeout`` set and nothing finished in time, everything is cancelled and
    :exc:`asyncio.TimeoutError` is raised:

    >>> try:
    ...     await first_completed(answer("late", 5), timeout=0.2)
    ... except asyncio.TimeoutError as exc:
    ...     print("no winner:", exc)
    no winner: nothing finished within 0.2 s

    When several finish in the same event-loop step, the earliest argument
    wins. Results and errors of the losers are discarded. If the caller is
    cancelled, all candidates are cancelled and awaited before the
    cancellation propagates. Tasks you pass in are owned by the call: losers
    are cancelled even if you created them. Bad input is rejected before
    anything starts:

    >>> await first_completed()
    Traceback (most recent call last):
    ...
    ValueError: first_completed() needs at least one awaitable
    """
    tasks = _start("first_completed", aws, timeout)
    winner: Optional[asyncio.Future[Any]] = None
    try:
        done, _ = await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        winner = next((task for task in tasks if task in done), None)
    finally:
        await cancel_and_wait([task for task in tasks if task is not winner])
    if winner is None:
        raise asyncio.TimeoutError(f"nothing finished within {timeout} s")
    result: T = winner.result()
    return result


class AllFailedError(Exception):
    """Raised by :func:`first_success` when every awaitable failed.

    ``exceptions`` holds the individual errors in argument order (the same
    attribute name as :exc:`ExceptionGroup`, which does not exist before 3.11).
    """

    def __init__(self, message: str, exceptions: Sequence[BaseException]) -> None:
        super().__init__(message)
        self.exceptions = tuple(exceptions)


async def first_success(*aws: Awaitable[T], timeout: Optional[float] = None) -> T:
    """Return the first *successful* result; cancel and await the rest.

    Failures do not end the race; the remaining candidates keep going:

    >>> import asyncio
    >>> from recipes.waiting import AllFailedError, first_success
    >>> async def answer(value, delay):
    ...     await asyncio.sleep(delay)
    ...     return value
    >>> async def fail(message, delay):
    ...     await asyncio.sleep(delay)
    ...     raise ConnectionError(message)
    >>> await first_success(fail("refused", 0.1), answer("ok", 0.2))
    'ok'

    When every candidate fails, :class:`AllFailedError` carries all the
    errors, in argument order:

    >>> try:
    ...     await first_success(fail("a is down", 0.2),
    ...                         fail("b is down", 0.1))
    ... except AllFailedError as exc:
    ...     print(exc)
    ...     print(exc.exceptions)
    all 2 awaitables failed
    (ConnectionError('a is down'), ConnectionError('b is down'))

    With ``timeout`` set and no success in time, everything still running is
    cancelled and :exc:`asyncio.TimeoutError` is raised. A candidate cancelled
    from outside counts as failed (its entry in ``exceptions`` is an
    :exc:`asyncio.CancelledError`). If the caller is cancelled, all candidates
    are cancelled and awaited first.
    """
    tasks = _start("first_success", aws, timeout)
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    winner: Optional[asyncio.Future[Any]] = None
    try:
        pending = set(tasks)
        while pending and winner is None:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                break
            done, pending = await asyncio.wait(
                pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                break  # timed out (do not recompute: timers may fire a hair early)
            for task in tasks:
                if task in done and not task.cancelled() and task.exception() is None:
                    winner = task
                    break
    finally:
        await cancel_and_wait([task for task in tasks if task is not winner])
    if winner is not None:
        result: T = winner.result()
        return result
    if pending:
        failed = len(tasks) - len(pending)
        raise asyncio.TimeoutError(f"nothing succeeded within {timeout} s ({failed} failed)")
    errors: List[BaseException] = []
    for task in tasks:
        error = asyncio.CancelledError() if task.cancelled() else task.exception()
        assert error is not None  # no winner, so every task failed
        errors.append(error)
    raise AllFailedError(f"all {len(tasks)} awaitables failed", errors)


async def wait_with_progress(
    tasks: Iterable[asyncio.Future[T]],
    on_progress: Callable[[int, int], object],
    *,
    timeout: Optional[float] = None,
) -> Tuple[Set[asyncio.Future[T]], Set[asyncio.Future[T]]]:
    """Like :func:`asyncio.wait`, but call ``on_progress(finished, total)`` as each task ends.

    >>> import asyncio
    >>> from recipes.waiting import cancel_and_wait, wait_with_progress
    >>> async def job(delay):
    ...     await asyncio.sleep(delay)
    >>> def report(finished, total):
    ...     print(finished, "of", total)
    >>> tasks = [asyncio.create_task(job(d)) for d in (0.2, 0.1)]
    >>> done, pending = await wait_with_progress(tasks, report)
    1 of 2
    2 of 2

    ``timeout`` is one deadline for the whole wait, not per task. As with
    :func:`asyncio.wait`, nothing is raised or cancelled when it passes: the
    unfinished tasks come back in ``pending`` and stopping them is up to you
    (:func:`cancel_and_wait`):

    >>> tasks = [asyncio.create_task(job(d)) for d in (0.1, 10)]
    >>> done, pending = await wait_with_progress(
    ...     tasks, lambda finished, total: None, timeout=0.5
    ... )
    >>> len(done), len(pending)
    (1, 1)
    >>> await cancel_and_wait(pending)
    []

    Failed and cancelled tasks count as finished. Tasks already done are
    reported at once, duplicates count once, and an empty iterable returns two
    empty sets. Coroutines are rejected with :exc:`TypeError`, like
    :func:`asyncio.wait` does on 3.11+. If ``on_progress`` raises, the error
    propagates and the tasks keep running; the same holds when the caller is
    cancelled, since the tasks belong to the caller. It costs one callback per
    task, so it scales to many thousands of tasks.
    """
    futures = _futures_only("wait_with_progress", tasks)
    if not callable(on_progress):
        raise TypeError(f"on_progress must be callable, got {type(on_progress).__name__!r}")
    _check_timeout(timeout)
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    total = len(futures)
    finished: List[asyncio.Future[T]] = []  # in completion order, filled by on_done
    wakeup: asyncio.Future[None] = loop.create_future()

    def on_done(future: asyncio.Future[T]) -> None:
        finished.append(future)
        if not wakeup.done():
            wakeup.set_result(None)

    for future in futures:
        future.add_done_callback(on_done)
    reported = 0
    try:
        while reported < total:
            if reported < len(finished):
                reported += 1
                on_progress(reported, total)
                continue
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                break
            await asyncio.wait([wakeup], timeout=remaining)
            if not wakeup.done():
                break  # the deadline passed with nothing new
            wakeup = loop.create_future()
    finally:
        for future in futures:
            future.remove_done_callback(on_done)
    done = set(finished[:reported])
    # A task that ended in this very step has not run on_done yet: report it
    # too, so that (as with asyncio.wait) ``pending`` holds only unfinished tasks.
    for future in futures:
        if future.done() and future not in done:
            done.add(future)
            on_progress(len(done), total)
    pending = {future for future in futures if future not in done}
    return done, pending
