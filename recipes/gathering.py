"""You have a few independent awaitables and want every one of their results.
:func:`asyncio.gather` is the everyday tool for this: hand it the coroutines,
await it once, and get a list of results back. It is also easy to misuse. Its
results come back in argument order, which is usually what you want, but its
failure handling is surprising: when one awaitable fails, the others are
*not* stopped, and a cancelled child shows up in ``return_exceptions=True``
results as an object that ``isinstance(r, Exception)`` does not catch. This
chapter shows the behaviour of :func:`asyncio.gather` and
:func:`asyncio.as_completed` and adds three small helpers:
:func:`split_results` sorts the output of ``return_exceptions=True``,
:func:`gather_or_cancel` stops the others as soon as one fails, and
:func:`map_concurrently` applies a coroutine function to many items with a
concurrency limit while keeping the results in input order.

Collecting results in argument order
------------------------------------

.. index::
   single: gather; results in argument order
   single: concurrency; running coroutines at the same time

You have three independent requests and want all three answers. Awaiting them
one after another takes the sum of their durations; :func:`asyncio.gather`
runs them concurrently, so the whole thing takes as long as the slowest one.
The results arrive in the order the awaitables were *passed*, not the order in
which they *finished*:

>>> import asyncio
>>> from recipes.gathering import (
...     gather_or_cancel, map_concurrently, split_results
... )
>>> async def fetch(name, delay, fail=False):
...     await asyncio.sleep(delay)
...     if fail:
...         raise ValueError(f"{name} failed")
...     print(f"{name} done")
...     return name.upper()
>>> await asyncio.gather(
...     fetch("slow", 0.3), fetch("fast", 0.1), fetch("mid", 0.2)
... )
fast done
mid done
slow done
['SLOW', 'FAST', 'MID']

So ``results[i]`` always belongs to the ``i``-th argument, and you can ``zip``
the results with the inputs safely. Coroutines passed to
:func:`asyncio.gather` are wrapped in tasks for you; tasks you created yourself
can be passed too (the :doc:`/recipes/tasks` chapter shows how to start and
name them).

Keeping going when some fail
----------------------------

.. index::
   pair: gather; return_exceptions
   single: CancelledError; in gather results

By default the first exception propagates out of :func:`asyncio.gather`. With
``return_exceptions=True`` every awaitable runs to the end and exceptions are
returned *in place of* results, in the same positions:

>>> results = await asyncio.gather(
...     fetch("a", 0.1), fetch("b", 0.1, fail=True), return_exceptions=True
... )
a done
>>> results
['A', ValueError('b failed')]

.. important::

   Since Python 3.8 :exc:`asyncio.CancelledError` derives from
   :exc:`BaseException`, not :exc:`Exception`. A child that was cancelled
   appears in the results as a ``CancelledError`` instance, and a filter written
   as ``isinstance(r, Exception)`` treats it as a successful *value*. Filter
   with ``isinstance(r, BaseException)``, as :func:`split_results` does.

>>> doomed = asyncio.create_task(fetch("doomed", 1))
>>> doomed.cancel()
True
>>> results = await asyncio.gather(
...     fetch("c", 0.1), doomed, return_exceptions=True
... )
c done
>>> values = [r for r in results if not isinstance(r, Exception)]
>>> values  # wrong: the cancellation passed as a value
['C', CancelledError(...)]
>>> split_results(results)
(['C'], [CancelledError(...)])

The :doc:`/recipes/errors` chapter goes on from here: how exceptions travel
through ``await``, :func:`asyncio.wait` and task groups.

Stopping the others when one fails
----------------------------------

.. index::
   single: gather; the others keep running after a failure
   single: fail fast; gather_or_cancel
   single: error messages; Task was destroyed but it is pending!

Without ``return_exceptions``, :func:`asyncio.gather` raises the first
exception as soon as it happens, and that is all it does.

.. important::

   When one awaitable passed to :func:`asyncio.gather` fails, the others **keep
   running**. Nothing cancels them: their work and side effects continue after
   your ``except`` block has already moved on, and if you passed bare
   coroutines you hold no handle that could stop them. At shutdown
   :func:`asyncio.run` cancels whatever is still running; a loop closed any
   other way destroys them with ``Task was destroyed but it is pending!``.

>>> slow = asyncio.create_task(fetch("slow", 0.3))
>>> try:
...     await asyncio.gather(fetch("bad", 0.1, fail=True), slow)
... except ValueError as exc:
...     print("gather raised:", exc)
gather raised: bad failed
>>> slow.done()  # still running after gather has raised
False
>>> await slow
slow done
'SLOW'

:func:`gather_or_cancel` is the fix: at the first failure it cancels the
others, waits until they have actually finished (so their ``finally`` blocks
have run), and only then raises the original exception:

>>> slow = asyncio.create_task(fetch("slow", 0.3))
>>> try:
...     await gather_or_cancel(fetch("bad", 0.1, fail=True), slow)
... except ValueError as exc:
...     print("raised:", exc)
raised: bad failed
>>> slow.cancelled()
True

.. versionadded:: 3.11

   :class:`asyncio.TaskGroup` gives the same guarantee built in: the first
   failure cancels the other tasks of the group, and ``async with`` does not
   exit before all of them are finished. It raises an :exc:`ExceptionGroup`
   holding *every* failure, which you handle with ``except*``. On 3.8–3.10
   use :func:`gather_or_cancel` (or the ``taskgroup`` backport from PyPI).
   The :doc:`/recipes/task_groups` chapter covers groups in depth.

>>> try:  # doctest: +PY311
...     async with asyncio.TaskGroup() as group:
...         bad = group.create_task(fetch("bad", 0.1, fail=True))
...         slow = group.create_task(fetch("slow", 0.3))
... except* ValueError as failures:
...     print("raised:", failures.exceptions)
raised: (ValueError('bad failed'),)

Cancelling a whole gather
-------------------------

.. index::
   pair: gather; cancellation

:func:`asyncio.gather` returns a future. Cancelling *that* future cancels every
child that has not finished yet, and awaiting it then raises
:exc:`asyncio.CancelledError` once the children have wound down. This is what
happens to a gather inside a task that gets cancelled, for example by a
timeout:

>>> async def worker(name):
...     try:
...         await asyncio.sleep(10)
...     finally:
...         print(name, "cleaned up")
>>> both = asyncio.gather(worker("x"), worker("y"))
>>> try:
...     await asyncio.sleep(0.1)  # let both start
...     print("cancel:", both.cancel())
...     await both
... except asyncio.CancelledError:
...     print("the gather was cancelled")
cancel: True
x cleaned up
y cleaned up
the gather was cancelled

The reverse is different: if one *child* is cancelled from outside, the gather
is not cancelled. Without ``return_exceptions`` it raises
:exc:`asyncio.CancelledError` to the caller (the others keep running, as with
any failure); with it, the ``CancelledError`` lands in the results as shown
above. The :doc:`/recipes/cancellation` chapter follows a cancellation from
the task that receives it to the code that awaits it.

Handling results as they finish
-------------------------------

.. index::
   single: as_completed; results in completion order
   single: TimeoutError; as_completed

Sometimes you want to act on each result as soon as it is ready, say to show
progress or to start follow-up work early. :func:`asyncio.as_completed` yields
awaitables in *completion* order; awaiting each one gives the next result:

>>> coros = [fetch("slow", 0.3), fetch("fast", 0.1)]
>>> for next_done in asyncio.as_completed(coros):
...     print("got", await next_done)
fast done
got FAST
slow done
got SLOW

The values it yields are new coroutines, not your tasks, so you cannot tell
*which* input finished except from the result itself: make the result carry
what you need (as ``fetch`` returns its name here).

Its ``timeout=`` is a deadline for the whole loop: once it passes, awaiting the
next item raises :exc:`asyncio.TimeoutError`. The unfinished awaitables are not
cancelled; that is your job, which is one more reason to pass tasks you hold:

>>> quick = asyncio.create_task(fetch("quick", 0.1))
>>> stuck = asyncio.create_task(fetch("stuck", 10))
>>> try:
...     for next_done in asyncio.as_completed([quick, stuck], timeout=0.3):
...         print("got", await next_done)
... except asyncio.TimeoutError:
...     print("gave up; stuck is still running:", not stuck.done())
quick done
got QUICK
gave up; stuck is still running: True
>>> stuck.cancel()
True
>>> _ = await asyncio.gather(quick, stuck, return_exceptions=True)

The last line waits until ``stuck`` has stopped.

.. versionadded:: 3.13

   :func:`asyncio.as_completed` also supports ``async for``. That form yields
   the original tasks (and wraps coroutines in tasks it yields), so you can
   tell which input finished. On older versions use the plain ``for`` loop
   above, or the :func:`asyncio.wait` loop of
   :ref:`recipes/waiting:Reporting progress while waiting`.

>>> named = [  # doctest: +PY313
...     asyncio.create_task(asyncio.sleep(d, result=d), name=n)
...     for n, d in [("second", 0.2), ("first", 0.1)]
... ]
>>> async for task in asyncio.as_completed(named):  # doctest: +PY313
...     print(task.get_name(), task.result())
first 0.1
second 0.2

Applying one coroutine function to many items
---------------------------------------------

.. index::
   single: concurrency limit; map_concurrently
   pair: bounded concurrency; results in input order

``await asyncio.gather(*(download(url) for url in urls))`` starts *every*
download at once. With ten URLs that is fine; with ten thousand it opens ten
thousand connections, and the first failure leaves the rest running.
:func:`map_concurrently` keeps at most ``limit`` calls in flight, returns
results in input order, and cancels the remaining work at the first failure:

>>> async def square(n):
...     await asyncio.sleep(0.1)
...     return n * n
>>> loop = asyncio.get_running_loop()
>>> start = loop.time()
>>> await map_concurrently(square, range(8), limit=4)
[0, 1, 4, 9, 16, 25, 36, 49]
>>> round(loop.time() - start, 1)  # two rounds of four
0.2

The limiting chapter's :func:`recipes.limiting.bounded_gather` does the same
job with a different call: use :func:`map_concurrently` when one coroutine
function is applied to every item of an iterable (a generator of a million
items is consumed as the workers go), and
:func:`~recipes.limiting.bounded_gather` when the jobs are different
awaitables or factories, or when failures should come back in place of
results (``return_exceptions=True``). The :doc:`/recipes/limiting` chapter
also bounds the *rate* of calls, which a concurrency limit does not.

Which one to use
----------------

* All results, fail fast, on 3.11+: :class:`asyncio.TaskGroup`.
* All results, fail fast, on 3.8–3.10 or when you want a plain list back:
  :func:`gather_or_cancel`.
* Every outcome, failures included: ``gather(..., return_exceptions=True)``
  plus :func:`split_results`.
* Many items, bounded concurrency: :func:`map_concurrently`, or
  :func:`recipes.limiting.bounded_gather` for a mix of jobs.
* Results as they arrive: :func:`asyncio.as_completed`.
* The first result only, the others cancelled:
  :doc:`/recipes/waiting`.
* Plain :func:`asyncio.gather` without ``return_exceptions`` is fine only when
  a failure may leave the others running (short, side-effect-free work).

A short session
---------------

>>> import asyncio
>>> from recipes.gathering import gather_or_cancel, split_results
>>> async def price(item):
...     await asyncio.sleep(0.1)
...     return {"tea": 3, "cake": 5}[item]
>>> await gather_or_cancel(price("tea"), price("cake"))
[3, 5]
>>> results = await asyncio.gather(
...     price("tea"), price("pie"), return_exceptions=True
... )
>>> split_results(results)
([3], [KeyError('pie')])

A library does this
-------------------

.. index::
   single: aiometer
   pair: bounded concurrency; libraries

`aiometer <https://github.com/florimondmanca/aiometer>`__ does what
:func:`map_concurrently` does, on anyio (so on asyncio too): ``await
aiometer.run_all(fns, max_at_once=10)`` calls zero-argument async functions
and returns their results in input order, and the first exception cancels
the rest and is raised.  ``amap()`` yields results as they finish,
``run_any()`` returns the first to finish, and every function takes
``max_per_second`` as well, a rate limit the recipe does not have.  It
refuses lambdas (pass :func:`functools.partial` objects instead), and starts
one task per item when its turn comes rather than keeping ``limit`` worker
tasks.  Choose it when you also need the rate limit; otherwise
:func:`map_concurrently` is one function on plain asyncio.

See also
--------

* :doc:`/recipes/task_groups`: :class:`asyncio.TaskGroup`, the structured
  way to run a set of tasks that fail together, and its backport.
* :doc:`/recipes/waiting`: :func:`asyncio.wait`, the first result wins,
  progress while waiting.
* :doc:`/recipes/limiting`: semaphores, :func:`~recipes.limiting.bounded_gather`
  and rate limits.
* :doc:`/recipes/errors`: exceptions from many tasks, ``ExceptionGroup`` and
  ``except*``.
* :doc:`/recipes/cancellation`: what cancelling a gather does to its
  children, and how they clean up.
* Python documentation: :func:`asyncio.gather`, :func:`asyncio.as_completed`
  and :ref:`python:taskgroups` in :doc:`python:library/asyncio-task`.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import (
    Any,
    Awaitable,
    Callable,
    Dict,
    Iterable,
    List,
    Optional,
    Sequence,
    Sized,
    Tuple,
    TypeVar,
    Union,
)

__all__ = ["gather_or_cancel", "map_concurrently", "split_results"]

T = TypeVar("T")
R = TypeVar("R")


def split_results(
    results: Iterable[Union[T, BaseException]],
) -> Tuple[List[T], List[BaseException]]:
    """Split the output of ``gather(..., return_exceptions=True)`` into values and errors.

    Both lists keep the original order:

    >>> from recipes.gathering import split_results
    >>> split_results([1, ValueError("bad"), 3])
    ([1, 3], [ValueError('bad')])

    A cancelled child is reported as an :exc:`asyncio.CancelledError`
    instance, which is a :exc:`BaseException` but not an :exc:`Exception`
    (since Python 3.8). It counts as an error here:

    >>> import asyncio
    >>> split_results(["ok", asyncio.CancelledError()])
    (['ok'], [CancelledError()])

    If you need to know *which* input failed, keep the positions instead:
    ``[i for i, r in enumerate(results) if isinstance(r, BaseException)]``.
    A coroutine that legitimately *returns* an exception object is
    indistinguishable from one that raised it; avoid
    ``return_exceptions=True`` for such coroutines.
    """
    values: List[T] = []
    errors: List[BaseException] = []
    for result in results:
        if isinstance(result, BaseException):
            errors.append(result)
        else:
            values.append(result)
    return values, errors


def _check_awaitables(function: str, aws: Tuple[Any, ...]) -> None:
    """Raise TypeError for a non-awaitable argument, before any task is started."""
    for position, candidate in enumerate(aws):
        if inspect.isawaitable(candidate):
            continue
        # We were handed these coroutines to run; close them so that the
        # rejected call does not also warn "coroutine ... was never awaited".
        for other in aws:
            if asyncio.iscoroutine(other):
                other.close()
        hint = "; did you forget to call it?" if callable(candidate) else ""
        raise TypeError(
            f"{function}() needs awaitables (coroutines, tasks or futures), "
            f"not {type(candidate).__name__!r} (argument {position}){hint}"
        )


async def _cancel_and_wait(tasks: Sequence[asyncio.Future[Any]]) -> None:
    """Cancel ``tasks`` and wait until every one has finished.

    If the caller is cancelled meanwhile, keep waiting and re-raise the
    cancellation afterwards, so no task outlives the call.
    """
    for task in tasks:  # in argument order, so cleanup order is predictable
        task.cancel()
    pending = {task for task in tasks if not task.done()}
    interrupted: Optional[asyncio.CancelledError] = None
    while pending:
        try:
            await asyncio.wait(pending)
        except asyncio.CancelledError as exc:
            interrupted = exc
        pending = {task for task in pending if not task.done()}
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved: no "exception was never retrieved" log
    if interrupted is not None:
        raise interrupted


async def gather_or_cancel(*aws: Awaitable[T]) -> List[T]:
    """Run awaitables concurrently; at the first failure cancel the rest and re-raise.

    On success it behaves like :func:`asyncio.gather`: results come back in
    argument order.

    >>> import asyncio
    >>> from recipes.gathering import gather_or_cancel
    >>> async def answer(value, delay):
    ...     await asyncio.sleep(delay)
    ...     return value
    >>> await gather_or_cancel(answer("a", 0.2), answer("b", 0.1))
    ['a', 'b']

    When one awaitable raises, the others are cancelled and *awaited*: their
    ``finally`` blocks have run before the exception reaches you.

    >>> async def patient():
    ...     try:
    ...         await asyncio.sleep(10)
    ...     finally:
    ...         print("patient cleaned up")
    >>> async def broken():
    ...     await asyncio.sleep(0.1)
    ...     raise ValueError("broken")
    >>> try:
    ...     await gather_or_cancel(patient(), broken())
    ... except ValueError as exc:
    ...     print("caught:", exc)
    patient cleaned up
    caught: broken

    If the caller is cancelled, every child is cancelled and awaited before the
    :exc:`asyncio.CancelledError` propagates, so nothing keeps running in the
    background. Tasks you pass in are owned by the call from then on: they are
    cancelled too. If several awaitables fail in the same step, the first one
    in argument order wins; later failures are dropped (use
    :class:`asyncio.TaskGroup` when you need all of them). A child cancelled
    from outside counts as a failure and surfaces as
    :exc:`asyncio.CancelledError`, as with :func:`asyncio.gather`.

    Non-awaitable arguments are rejected before anything starts:

    >>> await gather_or_cancel(answer("a", 0.1), answer)
    Traceback (most recent call last):
    ...
    TypeError: gather_or_cancel() needs awaitables ... did you forget to call it?
    """
    _check_awaitables("gather_or_cancel", aws)
    if not aws:
        return []
    tasks = [asyncio.ensure_future(aw) for aw in aws]
    failed: Optional[asyncio.Future[T]] = None
    try:
        pending = set(tasks)
        while pending and failed is None:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                if task in done and (task.cancelled() or task.exception() is not None):
                    failed = task
                    break
    finally:
        # Runs on success (nothing left to cancel), on failure and when the
        # caller is cancelled: no child outlives this call.
        await _cancel_and_wait(tasks)
    if failed is not None:
        failed.result()  # re-raises the failure (CancelledError if it was cancelled)
    return [task.result() for task in tasks]


async def map_concurrently(
    func: Callable[[T], Awaitable[R]],
    items: Iterable[T],
    *,
    limit: int = 10,
) -> List[R]:
    """Await ``func(item)`` for every item, at most ``limit`` at a time; results in input order.

    >>> import asyncio
    >>> from recipes.gathering import map_concurrently
    >>> async def double(n):
    ...     await asyncio.sleep(0.1)
    ...     return 2 * n
    >>> await map_concurrently(double, [3, 1, 2], limit=2)
    [6, 2, 4]

    Only ``limit`` worker tasks exist at any moment, whatever the number of
    items, and ``items`` is consumed lazily, so a generator of a million items
    is fine. The first exception cancels the calls in flight, starts no new
    ones, and is re-raised:

    >>> async def parse(text):
    ...     await asyncio.sleep(0.1)
    ...     return int(text)
    >>> try:
    ...     await map_concurrently(parse, ["1", "x", "3"])
    ... except ValueError as exc:
    ...     print(exc)
    invalid literal for int() with base 10: 'x'

    A bad ``limit`` is rejected before any call is made:

    >>> await map_concurrently(parse, ["1"], limit=0)
    Traceback (most recent call last):
    ...
    ValueError: limit must be a positive integer, got 0

    :func:`recipes.limiting.bounded_gather` is the choice for a mix of
    different jobs, or to get failures back in place of results; see
    :ref:`recipes/gathering:Applying one coroutine function to many items`.
    """
    if not callable(func):
        raise TypeError(f"func must be a coroutine function, got {type(func).__name__!r}")
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(f"limit must be a positive integer, got {limit!r}")
    if limit < 1:
        raise ValueError(f"limit must be a positive integer, got {limit!r}")
    workers = min(limit, len(items)) if isinstance(items, Sized) else limit
    numbered = iter(enumerate(items))  # shared by the workers; raises TypeError early
    results: Dict[int, R] = {}

    async def worker() -> None:
        # No await between taking an item and starting its call, so two
        # workers never take the same item.
        for index, item in numbered:
            results[index] = await func(item)

    await gather_or_cancel(*(worker() for _ in range(workers)))
    return [results[index] for index in range(len(results))]
