"""A task started with :func:`asyncio.create_task` lives on its own: if nobody keeps a
reference, awaits it and cancels it when things go wrong, it leaks, and its error is
lost.  *Structured concurrency* ties tasks to a block of code instead: the block does
not exit until every task started in it has finished, and if one of them fails, the
others are cancelled and every error is reported together as an ``ExceptionGroup``.
:class:`asyncio.TaskGroup` is asyncio's tool for this, built in from Python 3.11 and
available on 3.8–3.10 through a backport.  This chapter shows how to use it, how to
catch and take apart the exception groups it raises, how to stop a group early on
purpose, when :func:`asyncio.gather` is still the better choice, and three helpers
built on it: :func:`run_all`, :class:`StoppableTaskGroup` and :func:`race`, plus
:func:`flatten_exceptions` for logging.

Running tasks as a group
------------------------

.. index::
   single: structured concurrency
   pair: TaskGroup; create_task

Start tasks with ``tg.create_task()`` inside ``async with TaskGroup() as tg:``.  The
block waits for all of them at its end, so when it exits every task is done and
``task.result()`` is safe to call.

:class:`~asyncio.TaskGroup` is part of asyncio from Python 3.11 on.  On 3.8–3.10 it
comes from the ``taskgroup`` backport on PyPI, and the exception groups it raises
from ``exceptiongroup`` (``pip install taskgroup exceptiongroup``).  This import
works on every version, and the examples of this chapter need nothing else;
:ref:`recipes/task_groups:Using TaskGroup on Python 3.8 to 3.10` below tells the rest of the story:

>>> import asyncio
>>> try:
...     from asyncio import TaskGroup  # Python 3.11 and newer
... except ImportError:  # 3.8-3.10: pip install taskgroup exceptiongroup
...     from taskgroup import TaskGroup
...     from exceptiongroup import BaseExceptionGroup, ExceptionGroup

>>> async def fetch(name, seconds):
...     await asyncio.sleep(seconds)  # the network round trip
...     return f"{name}: {seconds}s"
>>> async with TaskGroup() as tg:
...     a = tg.create_task(fetch("a", 0.2))
...     b = tg.create_task(fetch("b", 0.1))
...     print("both started")
both started
>>> a.result(), b.result()
('a: 0.2s', 'b: 0.1s')

Tasks may add more tasks to the group while it runs (pass ``tg`` along): the block
keeps waiting until the last one is done.  :func:`run_all` wraps the common case of
"run these, give me the results in order".

When a task fails
-----------------

.. index::
   single: ExceptionGroup
   single: error messages; unhandled errors in a TaskGroup
   pair: TaskGroup; error handling

The first exception from a task (anything but :exc:`asyncio.CancelledError`) cancels
every other task in the group *and* the body of the ``async with`` block.  When they
have all finished, the group raises an :exc:`ExceptionGroup` holding every error that
occurred – usually one, but two tasks can fail before the cancellation reaches them:

>>> async def step(name, seconds, fail=False):
...     try:
...         await asyncio.sleep(seconds)
...     except asyncio.CancelledError:
...         print(name, "cancelled")
...         raise
...     if fail:
...         raise ValueError(f"{name} failed")
...     return name
>>> try:
...     async with TaskGroup() as tg:
...         a = tg.create_task(step("a", 0.1, fail=True))
...         b = tg.create_task(step("b", 0.5))
... except ExceptionGroup as group:
...     print(repr(group))
b cancelled
ExceptionGroup('unhandled errors in a TaskGroup', [ValueError('a failed')])

An exception raised in the body of the block itself does the same: the tasks are
cancelled and the exception joins the group.  :exc:`KeyboardInterrupt` and
:exc:`SystemExit` are the exceptions to the rule: they cancel the tasks too, but are
re-raised as they are, not wrapped.

.. versionchanged:: 3.15
   So is :exc:`GeneratorExit` from the body, when no task failed: an async generator
   that is closed (``aclose()``) while suspended at a ``yield`` inside the block now
   closes cleanly.  Before, ``aclose()`` raised
   ``BaseExceptionGroup('unhandled errors in a TaskGroup', [GeneratorExit()])``.

Catching errors from a group
----------------------------

.. index::
   single: except*
   pair: ExceptionGroup; catching

``except*`` matches the exceptions *inside* a group by type; each clause receives a
group of just the matching ones, and anything unmatched is re-raised as a (smaller)
group:

>>> try:  # doctest: +PY311
...     async with TaskGroup() as tg:
...         a = tg.create_task(step("a", 0, fail=True))
...         b = tg.create_task(step("b", 0, fail=True))
... except* ValueError as group:
...     print("ValueErrors:", sorted(str(exc) for exc in group.exceptions))
ValueErrors: ['a failed', 'b failed']

The same without ``except*``, for 3.8–3.10: catch :exc:`BaseExceptionGroup` and split
it.  Re-raise what you do not handle:

>>> try:
...     async with TaskGroup() as tg:
...         a = tg.create_task(step("a", 0, fail=True))
...         b = tg.create_task(step("b", 0, fail=True))
... except BaseExceptionGroup as group:
...     matched, rest = group.split(ValueError)
...     if matched is not None:
...         errors = sorted(str(exc) for exc in matched.exceptions)
...         print("ValueErrors:", errors)
...     if rest is not None:
...         raise rest
ValueErrors: ['a failed', 'b failed']

.. important::

   ``except ExceptionGroup`` does not catch a plain ``ValueError``, and
   ``except ValueError`` does not catch a group that contains one.  Code that switches
   from :func:`asyncio.gather` to a TaskGroup must update its ``except`` clauses, or
   the errors it used to handle fly straight past them.

Picking exceptions out of a group: split and subgroup
-----------------------------------------------------

.. index::
   pair: ExceptionGroup; split
   pair: ExceptionGroup; subgroup
   single: nested exception groups

Groups nest (a TaskGroup inside a task of another TaskGroup gives a group inside a
group), so looping over ``group.exceptions`` is not enough.  Two methods walk the
whole tree and keep its shape: :meth:`BaseExceptionGroup.subgroup` returns the
matching part (or ``None``), :meth:`BaseExceptionGroup.split` returns
``(matching, rest)``.  Both take an exception type, a tuple of types, or a predicate
(which is called on the nested groups as well, and takes a group it accepts whole):

>>> group = ExceptionGroup("outer", [
...     ValueError("bad input"),
...     ExceptionGroup("inner", [
...         TimeoutError("slow"), ValueError("bad header"),
...     ]),
... ])
>>> group.subgroup(ValueError).exceptions
(ValueError('bad input'), ExceptionGroup('inner', [ValueError('bad header')]))
>>> matched, rest = group.split(lambda exc: "header" in str(exc))
>>> matched
ExceptionGroup('outer', [ExceptionGroup('inner', [ValueError('bad header')])])
>>> rest.exceptions
(ValueError('bad input'), ExceptionGroup('inner', [TimeoutError('slow')]))

For a log, you usually want the leaves: :func:`flatten_exceptions` lists them.

Using TaskGroup on Python 3.8 to 3.10
-------------------------------------

.. index::
   single: taskgroup (backport)
   single: exceptiongroup (backport)
   single: error messages; cannot import name 'TaskGroup' from 'asyncio'
   single: error messages; name 'ExceptionGroup' is not defined

:class:`asyncio.TaskGroup`, :exc:`ExceptionGroup` and ``except*`` arrived in Python
3.11.  Before, ``from asyncio import TaskGroup`` fails with ``ImportError: cannot
import name 'TaskGroup' from 'asyncio'``, and ``except ExceptionGroup:`` with
``NameError: name 'ExceptionGroup' is not defined``.  Two backports from PyPI bring
the first two to 3.8–3.10: ``taskgroup`` (the 3.12 TaskGroup, also ``timeout()`` and
``Runner``) and ``exceptiongroup`` (:exc:`BaseExceptionGroup` and
:exc:`ExceptionGroup` with the same methods).  Install them only where needed, for
example in a requirements file::

    taskgroup; python_version < '3.11'
    exceptiongroup; python_version < '3.11'

The ``try``/``except ImportError`` at the start of this chapter binds the names in an
interactive session.  In a module, test the version instead, as this one does: type
checkers such as mypy understand the test and check only the branch for the Python
they target::

    import sys

    if sys.version_info >= (3, 11):
        from asyncio import TaskGroup
    else:
        from exceptiongroup import BaseExceptionGroup, ExceptionGroup
        from taskgroup import TaskGroup

Code that uses those three names runs unchanged from 3.8 on.  ``except*`` is syntax,
and a backport cannot add syntax: on 3.8–3.10 catch :exc:`BaseExceptionGroup` and
take it apart with ``split()``, as in :ref:`recipes/task_groups:Catching errors from a group`
above, or use the backport's ``exceptiongroup.catch()`` context manager.

.. important::

   A module that contains ``except*`` anywhere is a :exc:`SyntaxError` on 3.8–3.10 –
   the whole module fails to import, not just the function.  Code that must run there
   uses ``split()`` instead.

The ``taskgroup`` backport needs :meth:`asyncio.Task.uncancel`, which older tasks lack,
so on entering the block it moves the current coroutine into a task of its own Task
subclass and moves it back on exit.  Inside the block, :func:`asyncio.current_task`
therefore returns a different object than outside it.

.. important::

   On Python 3.8 (not 3.9 or 3.10), ``taskgroup`` 0.2.2 hangs, spinning at full CPU,
   when the task running ``async with TaskGroup()`` is cancelled from outside – by
   ``task.cancel()`` or a timeout – while the body of the block is suspended at an
   ``await`` of its own.  A cancellation that arrives while the block waits for its
   tasks at the end works.  On 3.8, keep the body free of awaits: start the tasks and
   let the block end, as :func:`run_all` and :func:`race` do.

.. versionadded:: 3.11
   :class:`asyncio.TaskGroup`, :exc:`ExceptionGroup` and ``except*``.

Stopping a group early
----------------------

.. index::
   pair: TaskGroup; cancel
   pair: TaskGroup; stopping early
   single: StoppableTaskGroup

Sometimes a group's job is done before all its tasks are: one mirror answered, a
searcher found the item, a watchdog says stop.  On Python 3.15, call ``tg.cancel()``.
It cancels every unfinished task of the group and the body of the block, and the
``async with`` statement then exits quietly – no :exc:`asyncio.CancelledError`, no
exception group.  The body is not stopped on the spot: it runs on until its next
``await``, which raises the cancellation:

>>> async with TaskGroup() as tg:  # doctest: +PY315
...     crawler = tg.create_task(step("crawler", 10))
...     await asyncio.sleep(0.1)
...     tg.cancel()  # the job is done: stop everything
...     print("the body runs on until its next await")
...     await asyncio.sleep(10)
...     print("never printed")
the body runs on until its next await
crawler cancelled

A task can stop its own group when it is given ``tg``, and so can anything else
that holds it: a watchdog task, or a timer such as ``loop.call_later(60, tg.cancel)``.
The task that calls ``tg.cancel()`` is one of the group's unfinished tasks, so it is
cancelled too: whatever it found must be stored before the call, not returned.

>>> async def search(tg, name, seconds, found):
...     await asyncio.sleep(seconds)
...     found.append(name)  # tg.cancel() cancels this task too: store first
...     tg.cancel()
>>> found = []
>>> async with TaskGroup() as tg:  # doctest: +PY315
...     for name, seconds in [("a", 0.3), ("b", 0.1), ("c", 0.2)]:
...         _ = tg.create_task(search(tg, name, seconds, found))
>>> found  # doctest: +PY315
['b']

The fine print, checked on 3.15:

* ``cancel()`` may be called any number of times; after the group has exited it does
  nothing.  Called before ``async with`` enters the group, it cancels the group as
  soon as it is entered.
* Once it has been called (before entering too), the group is shutting down:
  ``tg.create_task()`` raises :exc:`RuntimeError` and closes the coroutine, in the
  body as in the tasks.
* If a task has already failed, ``cancel()`` changes nothing: the group raises its
  :exc:`ExceptionGroup` as usual.  So it does for errors that tasks raise *while*
  being cancelled (in their cleanup, say).
* A cancellation from outside – ``task.cancel()`` on the task running the block, a
  timeout around it – still comes out of the ``async with`` statement as
  :exc:`asyncio.CancelledError`, also when it arrives while the group is stopping.

.. versionadded:: 3.15
   :meth:`asyncio.TaskGroup.cancel`.

.. important::

   ``tg.cancel()`` acts at once.  A task of the group that was due to finish in the
   same step of the event loop – its sleep is over, its answer has arrived – is
   cancelled before it gets there: its result is lost, and an error it was about to
   raise is never reported.  :class:`StoppableTaskGroup` lets the loop run what is
   already scheduled first (see below).

Up to Python 3.14 the group has no method for this.  The documented way is to raise
a private exception from a task – which cancels everything like any failure – and
to catch exactly that exception outside:

>>> class _Done(Exception):
...     "Raised to stop the group; never escapes it."
>>> async def finish():
...     raise _Done
>>> try:  # doctest: +PY311
...     async with TaskGroup() as tg:
...         crawler = tg.create_task(step("crawler", 10))
...         await asyncio.sleep(0.1)
...         stopper = tg.create_task(finish())  # done: stop everything
... except* _Done:
...     pass
crawler cancelled

:class:`StoppableTaskGroup` packages that pattern, so ``stop()`` works on every
version from 3.8 on, and any *other* error still comes out as usual:

>>> from recipes.task_groups import StoppableTaskGroup
>>> async with StoppableTaskGroup() as group:
...     crawler = group.create_task(step("crawler", 10))
...     await asyncio.sleep(0.1)
...     group.stop()
crawler cancelled

On 3.15 ``stop()`` calls ``tg.cancel()`` instead of starting a task that raises –
but not at once: first the loop runs what it has already scheduled, just as it does
before that task gets to raise.  So ``stop()`` behaves the same on every version: a
task that calls ``stop()`` and returns keeps its result, a task whose sleep ended at
the same moment still finishes, and a failure that comes at the same moment as
``stop()`` is still reported.  :func:`race` relies on that.

.. versionchanged:: 3.13
   A TaskGroup whose parent task is cancelled from outside while the group is already
   shutting down (because a task failed, or :class:`StoppableTaskGroup` was stopped) now
   passes that cancellation on.  On 3.8–3.12 it is lost: the task carries on as if
   ``cancel()`` had never been called.

.. versionchanged:: 3.15
   A group stopped by ``tg.cancel()`` – and so a stopped :class:`StoppableTaskGroup` –
   raises such a cancellation from the ``async with`` statement itself.  On 3.13 and
   3.14 a stopped StoppableTaskGroup exits quietly and the :exc:`asyncio.CancelledError`
   arrives at the task's next ``await``.

TaskGroup or gather?
--------------------

.. index::
   pair: gather; TaskGroup

:func:`asyncio.gather` also runs awaitables concurrently and returns their results in
order, and it exists on every version.  But when one of them fails, ``gather`` raises
that first error and *leaves the others running*, unobserved:

>>> async def slow_step():
...     await asyncio.sleep(0.3)
...     print("slow_step finished anyway; its result is lost")
>>> try:
...     await asyncio.gather(step("a", 0.1, fail=True), slow_step())
... except ValueError as exc:
...     print("gather raised:", exc)
gather raised: a failed
>>> await asyncio.sleep(0.3)  # meanwhile the other one is still running
slow_step finished anyway; its result is lost

With a TaskGroup, ``slow_step()`` would have been cancelled before the ``except``
clause ran.  Prefer a TaskGroup when one failure makes the others pointless, when
tasks are started dynamically, or when no task may outlive the block.  ``gather``
remains right for "run all of them, then tell me what happened to each" –
``gather(..., return_exceptions=True)``, which never cancels anything – and on
3.8–3.10 without the backports, where :func:`recipes.gathering.gather_or_cancel`
gives gather's plain exceptions with the cancellation of a TaskGroup.
:doc:`/recipes/gathering` covers all the ways of gathering, and
:doc:`/recipes/errors` how the errors of each look.

Putting it together
-------------------

The helpers together: three mirrors race, and the winner's answer feeds a group of
downloads.  :func:`race` returns the first *success*, like
:func:`recipes.waiting.first_success`: use :func:`race` in code that already handles
exception groups, and :func:`~recipes.waiting.first_success` when you want a
``timeout=`` or no backports on 3.8–3.10 (it reports its failures as an
:class:`~recipes.waiting.AllFailedError`).

>>> from recipes.task_groups import race, run_all
>>> async def mirror(name, delay):
...     await asyncio.sleep(delay)
...     return name
>>> best = await race(
...     mirror("eu", 0.3), mirror("us", 0.1), mirror("asia", 0.2)
... )
>>> best
'us'
>>> await run_all(*(fetch(f"{best}/part-{n}", 0.1) for n in range(3)))
['us/part-0: 0.1s', 'us/part-1: 0.1s', 'us/part-2: 0.1s']

A library does this
-------------------

.. index::
   single: anyio; task groups
   pair: anyio; comparison

The ``taskgroup`` backport is the library for :class:`asyncio.TaskGroup` on
3.8–3.10 (see :ref:`recipes/task_groups:Using TaskGroup on Python 3.8 to 3.10`).  For the helpers
built on top:

* `anyio <https://anyio.readthedocs.io/>`__ has its own task groups,
  ``async with anyio.create_task_group() as tg:``, loosely following Trio's
  nurseries, on asyncio and Trio alike.  ``tg.start_soon(func, *args)``
  starts a task, ``await tg.start(func)`` waits until the task reports that
  it is ready, and ``tg.cancel_scope.cancel()`` stops the group early and
  leaves the block quietly, as :class:`StoppableTaskGroup` and
  :meth:`asyncio.TaskGroup.cancel` do; the failures of its tasks come out
  as an :exc:`ExceptionGroup`.  It has no ready-made :func:`race` or
  :func:`run_all`; they take a few lines.  Current releases need Python
  3.10+.  Choose it when the program already runs on anyio (or must run on
  Trio); with plain asyncio the standard TaskGroup and these helpers are
  enough.

See also
--------

* :doc:`/recipes/errors` – handling an :exc:`ExceptionGroup`, and retrying.
* :doc:`/recipes/gathering` – :func:`asyncio.gather` and its variants, which report
  one error at a time.
* :doc:`/recipes/waiting` – :func:`asyncio.wait` and races that need no exception
  groups.
* :doc:`/recipes/cancellation` – how the group cancels its tasks, and
  :meth:`asyncio.Task.uncancel`, which it relies on.
* :doc:`/recipes/timeouts` – a time limit around a whole group.
* Python: :ref:`python:taskgroups`, :ref:`python:lib-exception-groups`, the
  :ref:`except* clause <python:except_star>` and :pep:`654`.
* The backports: `taskgroup <https://pypi.org/project/taskgroup/>`_ and
  `exceptiongroup <https://pypi.org/project/exceptiongroup/>`_ on PyPI.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
from types import TracebackType
from typing import Any, Awaitable, Coroutine, List, Optional, Tuple, Type, TypeVar

if sys.version_info >= (3, 11):
    from asyncio import TaskGroup
else:  # Python 3.8-3.10: pip install taskgroup exceptiongroup
    from exceptiongroup import BaseExceptionGroup, ExceptionGroup
    from taskgroup import TaskGroup

__all__ = ["StoppableTaskGroup", "flatten_exceptions", "race", "run_all"]

T = TypeVar("T")


async def run_all(*aws: Awaitable[T]) -> List[T]:
    """Run *aws* concurrently in a TaskGroup and return their results in order.

    >>> import asyncio
    >>> from recipes.task_groups import run_all
    >>> async def square(n):
    ...     await asyncio.sleep(0.1 * (3 - n))  # the last one finishes first
    ...     return n * n
    >>> await run_all(square(1), square(2), square(3))
    [1, 4, 9]

    Unlike :func:`asyncio.gather`, the first failure cancels the others, and the
    errors come out as an :exc:`ExceptionGroup` (from ``exceptiongroup`` before
    Python 3.11):

    >>> import sys
    >>> if sys.version_info < (3, 11):
    ...     from exceptiongroup import ExceptionGroup
    >>> async def fail(message):
    ...     await asyncio.sleep(0.1)
    ...     raise ConnectionError(message)
    >>> try:
    ...     await run_all(square(1), fail("mirror down"))
    ... except ExceptionGroup as group:
    ...     print(repr(group.exceptions))
    (ConnectionError('mirror down'),)

    *aws* are any awaitables (coroutines, tasks, futures).  They are checked before
    anything starts: a non-awaitable raises :exc:`TypeError`, and the coroutines among
    the arguments are closed, so no "never awaited" warning follows.  No arguments give
    ``[]``.
    """
    items = _awaitables("run_all", aws)
    async with TaskGroup() as tg:
        tasks = [tg.create_task(_await(aw)) for aw in items]
    return [task.result() for task in tasks]


async def _await(aw: Awaitable[T]) -> T:
    return await aw


def _awaitables(caller: str, aws: Tuple[Awaitable[T], ...]) -> List[Awaitable[T]]:
    items = list(aws)
    bad = [item for item in items if not inspect.isawaitable(item)]
    if bad:
        for item in items:
            _close(item)
        raise TypeError(f"{caller}() takes awaitables, got {type(bad[0]).__name__}")
    return items


def _close(item: object) -> None:
    if inspect.iscoroutine(item):
        item.close()


class _StopGroup(Exception):
    """Raised inside a :class:`StoppableTaskGroup` by ``stop()``; never escapes it."""


async def _raise_stop() -> None:
    raise _StopGroup


# TaskGroup.cancel() arrived in Python 3.15; before, stop() raises _StopGroup in a task.
_NATIVE_CANCEL = sys.version_info >= (3, 15)


class StoppableTaskGroup:
    """A TaskGroup that ``stop()`` ends early and quietly, on Python 3.8 and up.

    >>> import asyncio
    >>> from recipes.task_groups import StoppableTaskGroup
    >>> async def tick(name):
    ...     for n in range(100):
    ...         await asyncio.sleep(0.1)
    ...         print(name, n)
    >>> async with StoppableTaskGroup() as group:
    ...     ticker = group.create_task(tick("tick"))
    ...     await asyncio.sleep(0.25)
    ...     group.stop()
    tick 0
    tick 1

    ``stop()`` may be called from the body, from any task in the group, or from
    anything else running on the loop.  It cancels every task and the rest of the body,
    and the ``async with`` block then exits without an exception.  It does not act at
    once: what the loop has already scheduled runs first, so a task that calls
    ``stop()`` and returns keeps its result, and any other error raised meanwhile still
    comes out as an :exc:`ExceptionGroup` – without the internal stop signal in it:

    >>> import sys
    >>> if sys.version_info < (3, 11):
    ...     from exceptiongroup import ExceptionGroup
    >>> async def crash():
    ...     await asyncio.sleep(0.1)
    ...     raise RuntimeError("disk full")
    >>> try:
    ...     async with StoppableTaskGroup() as group:
    ...         crasher = group.create_task(crash())
    ...         await asyncio.sleep(0.1)
    ...         group.stop()
    ... except ExceptionGroup as group:
    ...     print(repr(group))
    ExceptionGroup('unhandled errors in a TaskGroup', [RuntimeError('disk full')])

    Calling ``stop()`` again, after the group has exited, or after it has started
    shutting down because of an error, does nothing.  Calling it before the block is
    entered raises :exc:`RuntimeError`.  A cancellation from outside the group
    propagates as usual (but see the 3.13 and 3.15 notes in the chapter about one that
    arrives while the group is stopping).

    .. versionchanged:: 3.15
       ``stop()`` uses :meth:`asyncio.TaskGroup.cancel`, scheduled to run when the
       task that 3.8–3.14 start instead would raise its private exception (which
       ``__aexit__`` filters out).  Both behave as described above.
    """

    def __init__(self) -> None:
        self._group = TaskGroup()
        self._native = _NATIVE_CANCEL
        self._entered = False
        self._exited = False
        self._stopping = False

    async def __aenter__(self) -> StoppableTaskGroup:
        await self._group.__aenter__()
        self._entered = True
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> Optional[bool]:
        try:
            # On 3.15+ it returns True after TaskGroup.cancel(): the body's CancelledError
            # was the group's own doing and is swallowed.
            # (typeshed still says it returns None.)
            return await self._group.__aexit__(exc_type, exc, tb)  # type: ignore[func-returns-value]
        except BaseExceptionGroup as group:
            if not self._stopping or self._native:
                raise
            _, rest = group.split(_StopGroup)
            if rest is not None:
                raise rest from None
            return True  # only our own stop signal was in the group
        finally:
            self._exited = True

    def create_task(
        self, coro: Coroutine[Any, Any, T], *, name: Optional[str] = None
    ) -> asyncio.Task[T]:
        """Start *coro* as a task of the group, like ``TaskGroup.create_task()``."""
        return self._group.create_task(coro, name=name)

    def stop(self) -> None:
        """Cancel every task of the group and the rest of its body; exit quietly."""
        if not self._entered:
            raise RuntimeError("StoppableTaskGroup.stop() called before the group was entered")
        if self._stopping or self._exited:
            return
        if self._native:
            # TaskGroup.cancel() acts at once: it would cancel the tasks that are already
            # due to finish or fail, the caller included.  The fallback acts two hops
            # later (the signal task runs, then the group's done callback sees it fail);
            # cancelling through the same two hops keeps the behaviour identical.
            loop = asyncio.get_running_loop()
            loop.call_soon(loop.call_soon, self._group.cancel)
            self._stopping = True
            return
        signal = _raise_stop()
        try:
            self._group.create_task(signal)
        except RuntimeError:  # already shutting down because a task failed
            signal.close()
            return
        self._stopping = True


async def race(*aws: Awaitable[T]) -> T:
    """Return the result of the first of *aws* to succeed, and cancel the others.

    >>> import asyncio
    >>> from recipes.task_groups import race
    >>> async def mirror(name, delay):
    ...     await asyncio.sleep(delay)
    ...     return name
    >>> await race(mirror("slow", 0.5), mirror("fast", 0.1))
    'fast'

    A failure does not end the race; the others keep going.  Only if every one of them
    fails is an :exc:`ExceptionGroup` of all the errors raised, in argument order:

    >>> import sys
    >>> if sys.version_info < (3, 11):
    ...     from exceptiongroup import BaseExceptionGroup, ExceptionGroup
    >>> async def broken(name):
    ...     await asyncio.sleep(0.1)
    ...     raise ConnectionRefusedError(name)
    >>> await race(broken("eu"), mirror("us", 0.3))
    'us'
    >>> try:
    ...     await race(broken("eu"), broken("us"))
    ... except ExceptionGroup as group:
    ...     print(group)
    ...     print(repr(group.exceptions))
    race(): all 2 awaitables failed (2 sub-exceptions)
    (ConnectionRefusedError('eu'), ConnectionRefusedError('us'))

    A contender that ends cancelled – a task or future that its owner cancelled, a
    coroutine that raises :exc:`asyncio.CancelledError` – has lost too, and the others
    keep going.  If none succeeds, its :exc:`asyncio.CancelledError` joins the group,
    which is then a :exc:`BaseExceptionGroup`: catch that to handle every way of
    losing.  The caller itself was not cancelled, so it gets the group rather than a
    bare :exc:`asyncio.CancelledError`:

    >>> loop = asyncio.get_running_loop()
    >>> reply = loop.create_future()
    >>> _ = loop.call_later(0.2, reply.cancel)
    >>> try:
    ...     await race(broken("eu"), reply)
    ... except BaseExceptionGroup as group:
    ...     print(group.message)
    ...     print([type(exc).__name__ for exc in group.exceptions])
    race(): none of 2 awaitables succeeded: 1 failed, 1 cancelled
    ['ConnectionRefusedError', 'CancelledError']

    If two succeed in the same step of the event loop, the earlier argument wins.  No
    arguments raise :exc:`ValueError`; a non-awaitable raises :exc:`TypeError`.  A
    cancellation of the caller cancels every contender and propagates as usual.

    :func:`recipes.waiting.first_success` is the same race built on
    :func:`asyncio.wait`: it takes a ``timeout=`` and needs no backport on 3.8–3.10,
    and reports a race that nobody won as its own
    :class:`~recipes.waiting.AllFailedError` rather than an exception group.
    """
    items = _awaitables("race", aws)
    if not items:
        raise ValueError("race() needs at least one awaitable")
    results: List[Any] = [_NOTHING] * len(items)
    errors: List[Optional[BaseException]] = [None] * len(items)

    async def contender(index: int, aw: Awaitable[T]) -> None:
        try:
            results[index] = await aw
        except Exception as exc:
            errors[index] = exc
            return
        except asyncio.CancelledError as exc:
            # Either the group cancelled us (a winner exists, or the caller was
            # cancelled and the group raises) or the awaitable itself ended
            # cancelled: a loss like a failure.  Never swallow it.
            errors[index] = exc
            raise
        group.stop()

    async with StoppableTaskGroup() as group:
        for index, aw in enumerate(items):
            group.create_task(contender(index, aw))
    for result in results:
        if result is not _NOTHING:
            return result  # type: ignore[no-any-return]
    # No winner, so the group never cancelled a contender: every one of them has
    # its own exception here, a failure or a cancellation of its own.
    lost = [error for error in errors if error is not None]
    failed = [error for error in lost if isinstance(error, Exception)]
    if len(failed) == len(lost):
        raise ExceptionGroup(f"race(): all {len(items)} awaitables failed", failed)
    raise BaseExceptionGroup(
        f"race(): none of {len(items)} awaitables succeeded: "
        f"{len(failed)} failed, {len(lost) - len(failed)} cancelled",
        lost,
    )


_NOTHING: Any = object()


def flatten_exceptions(error: BaseException) -> List[BaseException]:
    """List the leaf exceptions of a (possibly nested) exception group, depth first.

    >>> import sys
    >>> from recipes.task_groups import flatten_exceptions
    >>> if sys.version_info < (3, 11):
    ...     from exceptiongroup import ExceptionGroup
    >>> flatten_exceptions(ExceptionGroup("outer", [
    ...     KeyError("a"),
    ...     ExceptionGroup("inner", [ValueError("b")]),
    ...     OSError("c"),
    ... ]))
    [KeyError('a'), ValueError('b'), OSError('c')]

    Each leaf keeps its own ``__traceback__``, which is what a log wants:
    ``for exc in flatten_exceptions(group): logger.error("task failed", exc_info=exc)``.
    Anything that is not a group comes back as a list of itself:

    >>> flatten_exceptions(KeyError("a"))
    [KeyError('a')]
    """
    if isinstance(error, BaseExceptionGroup):
        return [leaf for child in error.exceptions for leaf in flatten_exceptions(child)]
    if not isinstance(error, BaseException):
        raise TypeError(f"flatten_exceptions() takes an exception, got {type(error).__name__}")
    return [error]
