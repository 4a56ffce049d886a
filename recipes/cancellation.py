"""Cancelling is how asyncio stops work nobody wants any more: a timeout expired, a sibling
task failed, the user pressed Ctrl+C, the service is shutting down.  It is cooperative.
``task.cancel()`` only files a request; the request arrives as an
:exc:`asyncio.CancelledError` raised inside the task at the ``await`` where it is
suspended, and from there it travels up the stack like any other exception, running
``finally`` blocks and ``__aexit__`` methods on its way.  This chapter follows that
journey, shows how to clean up on the way without stopping it, and gives three copyable
helpers: :func:`cancel_and_wait` to stop a set of tasks and be sure they are gone,
:func:`shielded_cleanup` for cleanup that must itself await, and :func:`stop_on_signals`
for a graceful exit on SIGINT and SIGTERM.

How a cancellation travels
--------------------------

.. index::
   single: cancellation
   pair: Task; cancel
   pair: CancelledError; propagation

``task.cancel()`` returns at once and changes nothing yet.  The next time the task gets
to run, the event loop throws :exc:`asyncio.CancelledError` into it at the ``await``
where it is suspended.  The exception propagates up through every coroutine that
awaited its way down to that point, exactly like an exception in synchronous code.
When it leaves the task's outermost coroutine, the task is marked cancelled, and
whoever awaits the task receives a :exc:`asyncio.CancelledError` of its own:

>>> import asyncio
>>> async def fetch_page():
...     print("fetch_page: waiting for the server")
...     await asyncio.sleep(10)  # suspended here when cancel() arrives
...     print("fetch_page: never printed")
>>> async def crawl():
...     try:
...         await fetch_page()
...     finally:
...         print("crawl: the CancelledError passed through here")
>>> async def main():
...     task = asyncio.create_task(crawl())
...     await asyncio.sleep(0.1)
...     task.cancel()
...     try:
...         await task
...     except asyncio.CancelledError:
...         print("main: awaiting the task raised CancelledError")
...     print("main: task.cancelled() is", task.cancelled())
>>> await main()
fetch_page: waiting for the server
crawl: the CancelledError passed through here
main: awaiting the task raised CancelledError
main: task.cancelled() is True

Awaiting a cancelled task again raises again; the task stays cancelled for good:

>>> task = asyncio.create_task(asyncio.sleep(10))
>>> await asyncio.sleep(0)
>>> task.cancel()
True
>>> await task
Traceback (most recent call last):
...
asyncio.exceptions.CancelledError

Two things follow.  A cancelled coroutine stops at an ``await``, never in the middle of
synchronous code, so state changed between two awaits is never half-updated by a
cancellation.  And a coroutine that never awaits cannot be cancelled until it does.

Cleaning up when cancelled
--------------------------

.. index::
   pair: cancellation; cleanup
   pair: finally; cancellation

Because cancellation is an exception, the tools for cleanup are the ordinary ones:
``try``/``finally`` and context managers.  ``async with`` runs ``__aexit__`` with the
:exc:`asyncio.CancelledError`, which is what closes connections, releases locks and
returns pooled resources when a task is cancelled halfway through:

>>> import contextlib
>>> @contextlib.asynccontextmanager
... async def connection(name):
...     try:
...         yield name
...     finally:
...         print("close", name)
>>> async def handle_request():
...     async with connection("db"):
...         await asyncio.sleep(10)  # a slow query
>>> task = asyncio.create_task(handle_request())
>>> await asyncio.sleep(0.1)
>>> task.cancel()  # the task's cleanup runs right after this line
True
close db
>>> task.cancelled()
True

A ``finally`` block may itself ``await`` (close a connection gracefully, flush a
buffer): by the time it runs, the cancellation has been delivered and the task runs
normally again.  What can still interrupt such an await is a *second* ``cancel()`` –
see :ref:`recipes/cancellation:Cleanup that must await`.

Never swallowing CancelledError
-------------------------------

.. index::
   single: swallowing CancelledError
   pair: except BaseException; CancelledError

The caller of ``task.cancel()`` relies on the task actually stopping: a timeout relies
on it, :class:`asyncio.TaskGroup` relies on it, and so does :func:`asyncio.run` when it
shuts down.  Catching :exc:`asyncio.CancelledError` and carrying on breaks all of them
without any error message.

.. important::

   Since Python 3.8, :exc:`asyncio.CancelledError` derives from :exc:`BaseException`,
   not :exc:`Exception`, so ``except Exception:`` lets it pass – that is on purpose.
   But a bare ``except:`` or ``except BaseException:`` catches it, and the task then
   silently keeps going or returns as if nothing happened.  Catch it only to log or
   clean up, and re-raise it with a bare ``raise``.  The same holds for
   ``__aexit__`` methods: :doc:`/recipes/context_managers` shows one that suppresses
   errors but never a cancellation.

>>> async def swallowing():
...     try:
...         await asyncio.sleep(10)
...     except BaseException:  # WRONG: also catches the cancellation
...         return "carried on"
>>> task = asyncio.create_task(swallowing())
>>> await asyncio.sleep(0)
>>> task.cancel()
True
>>> await task  # the canceller believes the task stopped; it did not
'carried on'
>>> task.cancelled()
False

The correct shape: ``except Exception`` for errors you handle, and if you need to react
to cancellation, a separate clause that ends in ``raise``:

>>> async def polite():
...     try:
...         await asyncio.sleep(10)
...     except Exception as exc:  # real errors: handle them
...         print("failed:", exc)
...     except asyncio.CancelledError:
...         print("cancelled: logging it, then letting it go on")
...         raise
>>> task = asyncio.create_task(polite())
>>> await asyncio.sleep(0)
>>> task.cancel()
True
cancelled: logging it, then letting it go on
>>> task.cancelled()
True

Saying why: cancel messages
---------------------------

.. index::
   pair: cancel; message

``task.cancel(msg)`` attaches a message to the :exc:`asyncio.CancelledError` raised
inside the task, which helps when a log shows a task that stopped unexpectedly:

>>> async def job():
...     try:
...         await asyncio.sleep(10)
...     except asyncio.CancelledError as exc:
...         print("job cancelled:", exc.args)
...         raise
>>> task = asyncio.create_task(job())
>>> await asyncio.sleep(0)
>>> task.cancel("server shutting down")  # doctest: +PY39
True
job cancelled: ('server shutting down',)

.. versionadded:: 3.9
   The *msg* argument of :meth:`asyncio.Task.cancel`.  On 3.8 there is nowhere to put
   the reason; log it before calling ``cancel()``.

.. versionchanged:: 3.11
   The message also reaches whoever awaits the cancelled task.  On 3.9 and 3.10 the
   awaiter gets a bare :exc:`asyncio.CancelledError` whose ``__context__`` holds the
   one with the message.

Counting cancellations: cancelling() and uncancel()
---------------------------------------------------

.. index::
   pair: Task; cancelling
   pair: Task; uncancel

Structured-concurrency tools cancel tasks *themselves*: :func:`asyncio.timeout`
cancels the current task when the deadline passes, and :class:`asyncio.TaskGroup`
cancels its parent task when a child fails.  Each must then turn its own
:exc:`asyncio.CancelledError` back into a normal exit (``TimeoutError``, an
``ExceptionGroup``) – but only if nobody *else* asked for the task to be cancelled
meanwhile.  Since Python 3.11 a task counts the requests: :meth:`asyncio.Task.cancel`
increments the count, :meth:`asyncio.Task.cancelling` reads it, and
:meth:`asyncio.Task.uncancel` takes one request back and returns what is left:

>>> task = asyncio.create_task(asyncio.sleep(10))
>>> await asyncio.sleep(0)
>>> task.cancel(), task.cancel()
(True, True)
>>> task.cancelling()  # doctest: +PY311
2
>>> task.uncancel()  # doctest: +PY311
1

A hand-made deadline shows the protocol: absorb the cancellation only if it was your
own and the count drops to zero; otherwise somebody else wants the task gone too, so
re-raise.  (This is what :func:`asyncio.timeout` does; use that, this is for reading.)

>>> async def with_deadline(seconds, coro):
...     task = asyncio.current_task()
...     expired = False
...     def expire():
...         nonlocal expired
...         expired = True
...         task.cancel()
...     handle = asyncio.get_running_loop().call_later(seconds, expire)
...     try:
...         return await coro
...     except asyncio.CancelledError:
...         if expired and task.uncancel() == 0:
...             return "deadline passed"  # our own request, and nobody else's
...         raise  # an outside cancel(): never swallow it
...     finally:
...         handle.cancel()
>>> await with_deadline(0.2, asyncio.sleep(10))  # doctest: +PY311
'deadline passed'
>>> slow = asyncio.create_task(with_deadline(5, asyncio.sleep(10)))
>>> await asyncio.sleep(0.1)
>>> slow.cancel()  # from outside, before the deadline
True
>>> await asyncio.wait([slow])
(...)
>>> slow.cancelled()
True

.. versionadded:: 3.11
   :meth:`asyncio.Task.cancelling` and :meth:`asyncio.Task.uncancel`.  Code that
   swallows cancellation on purpose (rarely right) must call ``uncancel()`` on 3.11+, or
   a surrounding :func:`asyncio.timeout` or :class:`asyncio.TaskGroup` misreads the
   count.  On 3.8–3.10 the ``taskgroup`` backport (see
   :ref:`recipes/task_groups:Using TaskGroup on Python 3.8 to 3.10`) supplies its own
   Task subclass with these methods, and
   :func:`recipes.timeouts.portable_timeout` tells its own cancellations apart
   without them (:ref:`recipes/timeouts:Nested timeouts`).

Cancelling a set of tasks at shutdown
-------------------------------------

.. index::
   single: error messages; Task was destroyed but it is pending!
   pair: shutdown; cancelling tasks

Cancelling is half of a shutdown; the other half is waiting until the tasks have
actually finished, so their ``finally`` blocks run while the loop is still alive.
Skipping the wait leaves tasks pending when the loop closes, and Python reports
``Task was destroyed but it is pending!``.  :func:`cancel_and_wait` does both halves,
and keeps waiting even if the task that calls it is itself cancelled meanwhile (a
shutdown that is interrupted half-way is exactly when leaks happen):

>>> async def worker(name):
...     try:
...         await asyncio.sleep(3600)
...     finally:
...         print(name, "stopped")
>>> from recipes.cancellation import cancel_and_wait
>>> workers = [asyncio.create_task(worker(f"worker-{n}")) for n in range(3)]
>>> await asyncio.sleep(0.1)
>>> await cancel_and_wait(*workers)
worker-0 stopped
worker-1 stopped
worker-2 stopped
[]

The list it returns holds the errors that tasks raised instead of ending cancelled
(empty here).  :doc:`/recipes/waiting` has a :func:`~recipes.waiting.cancel_and_wait`
of its own, which takes one iterable, such as the ``pending`` set that
:func:`asyncio.wait` returns, and waits as long as the tasks take.  Use that one right
after an :func:`asyncio.wait`, and this one at shutdown: it takes the tasks as
arguments, can bound the wait with ``timeout=`` and pass a cancel message with
``msg=``.

Cleanup that must await
-----------------------

.. index::
   single: second cancellation
   pair: shield; cleanup

A ``finally`` block that awaits can be interrupted by a second ``cancel()`` – a user
who presses Ctrl+C twice, a supervisor that cancels again because the first attempt
seemed slow.  The goodbye to the server is then cut off half-way:

>>> async def close_connection(name):
...     await asyncio.sleep(0.5)  # tell the server goodbye, flush buffers
...     print(name, "closed cleanly")
>>> async def handler(name):
...     try:
...         await asyncio.sleep(3600)  # serve the client
...     finally:
...         await close_connection(name)  # a second cancel() lands here
>>> task = asyncio.create_task(handler("conn-1"))
>>> await asyncio.sleep(0.1)
>>> task.cancel()
True
>>> await asyncio.sleep(0.1)
>>> task.cancel()
True
>>> await asyncio.wait([task])  # "conn-1 closed cleanly" is never printed
(...)

:func:`asyncio.shield` alone does not fix this: ``await asyncio.shield(cleanup())``
protects the inner coroutine, but the *outer* await still raises at once, so the task
finishes while the cleanup runs on unobserved – its errors are lost, and if the loop
closes first it is destroyed pending.  :func:`shielded_cleanup` shields the cleanup
*and* waits for it to finish (within a time limit) before letting the cancellation go
on.  If the cleanup outlives that limit, it is cancelled and awaited, and the task
still ends *cancelled*: the time-out is logged and chained to the
:exc:`asyncio.CancelledError`, never raised in its place:

>>> from recipes.cancellation import shielded_cleanup
>>> async def handler(name):
...     try:
...         await asyncio.sleep(3600)
...     finally:
...         await shielded_cleanup(close_connection(name), timeout=2)
>>> task = asyncio.create_task(handler("conn-2"))
>>> await asyncio.sleep(0.1)
>>> task.cancel()
True
>>> await asyncio.sleep(0.1)
>>> task.cancel()
True
>>> await asyncio.wait([task])
conn-2 closed cleanly
(...)
>>> task.cancelled()
True

.. important::

   An exception raised in a ``finally`` block *replaces* the one on its way up.  A
   goodbye that raises ``TimeoutError`` or ``ConnectionError`` while the task is
   being cancelled therefore turns the cancellation into an ordinary error: the task
   ends failed instead of cancelled, and an ``except Exception:`` reconnect loop
   further up catches it and serves on, as if nobody had asked it to stop.  A cleanup
   helper must let the cancellation win; :func:`shielded_cleanup` does, and its
   reference below says exactly when it counts a task as being cancelled.

:doc:`/recipes/context_managers` carries a copy of the same helper,
:func:`recipes.context_managers.shielded_cleanup`, because its
:func:`~recipes.context_managers.async_closing` needs one: take that copy when you
use that chapter's helpers, and this one otherwise (it also accepts
``timeout=None``).  Both protect the *cleanup* of a task that is being cancelled.
To protect the work itself – a write the caller must not abandon half-way – use
:func:`recipes.timeouts.shield_until_done` (see
:ref:`recipes/timeouts:Protecting work from cancellation`).

Shutting down on SIGINT and SIGTERM
-----------------------------------

.. index::
   pair: SIGTERM; graceful shutdown
   pair: SIGINT; graceful shutdown
   pair: signal handler; add_signal_handler

A service should stop in an orderly way when it is told to: Ctrl+C sends SIGINT,
``kill`` and container managers send SIGTERM.  Python's default for SIGINT raises
:exc:`KeyboardInterrupt` at whatever line happens to be running, and SIGTERM kills
the process outright, so no ``finally`` block runs.  On Unix,
:meth:`asyncio.loop.add_signal_handler` runs a callback inside the event loop instead.
:func:`stop_on_signals` uses it to set an :class:`asyncio.Event`; ``main()`` waits for
the event and then shuts down with :func:`cancel_and_wait`.  A whole service, as a
script (here it sends itself the SIGTERM that ``kill <pid>`` would send from another
terminal):

.. script:: service.py

   import asyncio
   import os
   import signal

   from recipes.cancellation import cancel_and_wait, stop_on_signals


   async def worker(n: int) -> None:
       try:
           while True:
               await asyncio.sleep(0.01)  # one unit of work
       finally:
           print(f"worker {n} stopped")


   async def main() -> None:
       workers = [asyncio.create_task(worker(n)) for n in range(2)]
       try:
           with stop_on_signals() as stop:  # SIGINT and SIGTERM
               # Stands in for `kill <pid>`; remove it in a real service.
               loop = asyncio.get_running_loop()
               loop.call_later(0.05, os.kill, os.getpid(), signal.SIGTERM)
               await stop.wait()
           print("signal received, stopping")
       finally:
           errors = await cancel_and_wait(*workers, timeout=10)
       print("stopped; errors:", errors)


   asyncio.run(main())

.. script-output::

   signal received, stopping
   worker 0 stopped
   worker 1 stopped
   stopped; errors: []

.. versionchanged:: 3.11
   :func:`asyncio.run` and :class:`asyncio.Runner` handle SIGINT themselves: the first
   Ctrl+C cancels the main task (so its ``finally`` blocks run) and
   :exc:`KeyboardInterrupt` is raised once it has finished.  SIGTERM still needs a
   handler, and on 3.8–3.10 so does SIGINT.  When its block exits,
   :func:`stop_on_signals` puts back what handled each signal before: the SIGINT
   handler of :func:`asyncio.run`, a plain :func:`signal.signal` handler, or a
   callback a framework (aiohttp's ``run_app``, uvicorn) or an outer
   :func:`stop_on_signals` added with ``loop.add_signal_handler`` – see its
   reference for the one limit.

.. important::

   Windows event loops have no ``add_signal_handler()`` (it raises
   ``NotImplementedError``).  There, Ctrl+C raises :exc:`KeyboardInterrupt` out of
   :func:`asyncio.run`, which cancels the remaining tasks on its way out; keep the
   shutdown logic in ``finally`` blocks so it runs on both systems.

Putting it together
-------------------

The same service in the REPL, with all three helpers: two workers that say goodbye
to their peer through :func:`shielded_cleanup`, a SIGTERM, and an orderly stop with
:func:`cancel_and_wait`.  (``python -m asyncio`` runs its event loop in the main
thread, so :func:`stop_on_signals` works there as in a script.)

>>> import os, signal
>>> from recipes.cancellation import stop_on_signals
>>> async def goodbye(n):
...     await asyncio.sleep(0.1)  # tell the peer, flush buffers
...     print(f"worker {n} said goodbye")
>>> async def worker(n):
...     try:
...         while True:
...             await asyncio.sleep(0.2)  # one unit of work
...     finally:
...         await shielded_cleanup(goodbye(n), timeout=1)
>>> async def main():
...     workers = [asyncio.create_task(worker(n)) for n in range(2)]
...     try:
...         with stop_on_signals() as stop:
...             loop = asyncio.get_running_loop()
...             # as `kill <pid>` from another terminal would:
...             loop.call_later(0.5, os.kill, os.getpid(), signal.SIGTERM)
...             await stop.wait()
...         print("SIGTERM received, stopping")
...     finally:
...         errors = await cancel_and_wait(*workers, timeout=5)
...     print("stopped; errors:", errors)
>>> await main()
SIGTERM received, stopping
worker 0 said goodbye
worker 1 said goodbye
stopped; errors: []

A library does this
-------------------

.. index::
   single: anyio; cancel scopes
   pair: anyio; comparison

* `anyio <https://anyio.readthedocs.io/>`__ replaces task-by-task
  cancellation with *cancel scopes*, following Trio: ``with
  anyio.move_on_after(5):`` or ``fail_after()`` puts a deadline on a block,
  ``scope.cancel()`` cancels everything inside it, and a task group's
  ``cancel_scope.cancel()`` stops its tasks and waits for them, as
  :func:`cancel_and_wait` does.  Cancellation is level-triggered: code that
  catches the cancellation inside a cancelled scope gets it again at its
  next ``await``, so swallowing it cannot keep the block running.
  ``move_on_after(t, shield=True)`` lets cleanup await through a
  cancellation, within a time limit, like :func:`shielded_cleanup`, and
  ``anyio.open_signal_receiver(SIGINT, SIGTERM)`` yields signals to an
  ``async for``, like :func:`stop_on_signals`, though on asyncio it
  replaces earlier ``add_signal_handler`` callbacks for good, where the
  recipe puts them back.  Current releases need Python 3.10+.  Choose it
  when the whole program is written against anyio; in plain asyncio code
  the recipes work with :meth:`asyncio.Task.cancel` as it is.

See also
--------

* :doc:`/recipes/tasks` – starting, naming and cancelling single tasks.
* :doc:`/recipes/timeouts` – deadlines, which work by cancelling, and
  :func:`~recipes.timeouts.shield_until_done` for work that must not be cut off.
* :doc:`/recipes/task_groups` – groups that cancel their tasks when one fails.
* :doc:`/recipes/waiting` – :func:`asyncio.wait`, and the other
  :func:`~recipes.waiting.cancel_and_wait`.
* :doc:`/recipes/context_managers` – ``__aexit__`` under cancellation, and
  :func:`~recipes.context_managers.async_closing`.
* :doc:`/recipes/event_loop` – how :func:`asyncio.run` cancels what is left when
  ``main()`` returns.
* Python: :meth:`asyncio.Task.cancel`, :func:`asyncio.shield`,
  :exc:`asyncio.CancelledError`, :ref:`Task object <python:asyncio-task-obj>`, and
  :ref:`Set signal handlers for SIGINT and SIGTERM
  <python:asyncio_example_unix_signals>` in the event loop documentation.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import signal
import sys
from typing import Any, Awaitable, Dict, Iterator, List, Optional, Tuple, TypeVar

__all__ = ["cancel_and_wait", "shielded_cleanup", "stop_on_signals"]

T = TypeVar("T")
_logger = logging.getLogger(__name__)


async def cancel_and_wait(
    *tasks: asyncio.Future[Any],
    msg: Optional[str] = None,
    timeout: Optional[float] = None,
) -> List[BaseException]:
    """Cancel *tasks* and wait until every one of them has finished.

    >>> import asyncio
    >>> from recipes.cancellation import cancel_and_wait
    >>> async def sleeper():
    ...     await asyncio.sleep(3600)
    >>> tasks = [asyncio.create_task(sleeper()) for _ in range(3)]
    >>> await cancel_and_wait(*tasks)
    []
    >>> [task.cancelled() for task in tasks]
    [True, True, True]

    Tasks are cancelled in argument order; tasks that are already done are left alone.
    The return value lists the exceptions of tasks that *failed* instead of being
    cancelled – typically an error raised by a ``finally`` block – in argument order.
    Retrieving them here stops asyncio from reporting ``Task exception was never
    retrieved`` later, so log them:

    .. index::
       single: error messages; Task exception was never retrieved

    >>> async def bad_cleanup():
    ...     try:
    ...         await asyncio.sleep(3600)
    ...     finally:
    ...         raise ConnectionResetError("peer vanished during goodbye")
    >>> task = asyncio.create_task(bad_cleanup())
    >>> await asyncio.sleep(0)
    >>> await cancel_and_wait(task)
    [ConnectionResetError('peer vanished during goodbye')]

    If the calling task is cancelled while waiting, the wait goes on until every task
    has finished, and *then* :exc:`asyncio.CancelledError` is raised.  A timeout around
    the call therefore cannot cut the shutdown short; it is reported once the tasks are
    gone:

    >>> async def slow_to_stop():
    ...     try:
    ...         await asyncio.sleep(3600)
    ...     finally:
    ...         await asyncio.sleep(0.5)  # flushing a buffer
    >>> task = asyncio.create_task(slow_to_stop())
    >>> await asyncio.sleep(0)
    >>> loop = asyncio.get_running_loop()
    >>> start = loop.time()
    >>> try:
    ...     await asyncio.wait_for(cancel_and_wait(task), timeout=0.1)
    ... except asyncio.TimeoutError:
    ...     elapsed = round(loop.time() - start, 1)
    ...     print("timed out after", elapsed, "s; done:", task.done())
    timed out after 0.5 s; done: True

    To bound the wait, pass *timeout*: after that many seconds
    :exc:`asyncio.TimeoutError` is raised – or :exc:`asyncio.CancelledError`, if the
    caller was cancelled meanwhile – and tasks that ignored their cancellation are
    still running (you hold the references; log them).  *msg* is passed to
    :meth:`asyncio.Task.cancel` on Python 3.9+ and ignored on 3.8.

    Arguments are checked before anything is cancelled: a coroutine instead of a task
    raises :exc:`TypeError` (and is closed, so no "never awaited" warning follows), and
    the calling task itself raises :exc:`ValueError`, because it would wait for itself
    forever.

    :func:`recipes.waiting.cancel_and_wait` is the variant for the ``pending`` set of
    :func:`asyncio.wait`: it takes one iterable and has no *timeout* or *msg*.
    """
    _check_tasks(tasks)
    if timeout is not None and timeout < 0:
        raise ValueError(f"timeout must be >= 0 or None, got {timeout!r}")
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    # dict.fromkeys: drop duplicates but keep argument order (cancel order = cleanup order)
    pending = [task for task in dict.fromkeys(tasks) if not task.done()]
    for task in pending:
        if msg is None or sys.version_info < (3, 9):
            task.cancel()
        else:
            task.cancel(msg)
    interrupted: Optional[asyncio.CancelledError] = None
    while pending:
        remaining = None if deadline is None else deadline - loop.time()
        if remaining is not None and remaining <= 0:
            break
        try:
            await asyncio.wait(pending, timeout=remaining)
        except asyncio.CancelledError as exc:
            # We are being cancelled ourselves.  The tasks already have their
            # cancellation; wait for them anyway, then pass ours on.
            interrupted = exc
        pending = [task for task in pending if not task.done()]
    if interrupted is not None:
        raise interrupted
    if pending:
        raise asyncio.TimeoutError(
            f"{len(pending)} task(s) still running {timeout} s after cancel(): {pending!r}"
        )
    return [
        error
        for task in dict.fromkeys(tasks)
        if not task.cancelled() and (error := task.exception()) is not None
    ]


def _check_tasks(tasks: Any) -> None:
    current = asyncio.current_task()
    for task in tasks:
        if not isinstance(task, asyncio.Future):
            if inspect.iscoroutine(task):
                task.close()
                raise TypeError(
                    "cancel_and_wait() takes tasks, got a coroutine object; "
                    "wrap it with asyncio.create_task() when you start it"
                )
            raise TypeError(f"cancel_and_wait() takes tasks, got {type(task).__name__}")
        if task is current:
            raise ValueError("cancel_and_wait() cannot wait for the task that calls it")


async def shielded_cleanup(cleanup: Awaitable[T], *, timeout: Optional[float]) -> T:
    """Run *cleanup* to the end even if the calling task is cancelled meanwhile.

    >>> import asyncio
    >>> from recipes.cancellation import shielded_cleanup
    >>> async def flush():
    ...     await asyncio.sleep(0.2)
    ...     print("buffer flushed")
    ...     return 42
    >>> await shielded_cleanup(flush(), timeout=1)
    buffer flushed
    42

    *cleanup* is an awaitable (``conn.close()``, not ``conn.close``) and runs in a task
    of its own.  A ``cancel()`` that arrives while it runs does not interrupt it: the
    cleanup carries on, and once it has finished :exc:`asyncio.CancelledError` is
    raised, so the cancellation is delayed, never lost (the rest of the ``finally``
    block is skipped, as with any exception):

    >>> async def caller():
    ...     try:
    ...         await asyncio.sleep(3600)
    ...     finally:
    ...         await shielded_cleanup(flush(), timeout=1)
    >>> task = asyncio.create_task(caller())
    >>> await asyncio.sleep(0)
    >>> task.cancel()
    True
    >>> await asyncio.sleep(0.1)
    >>> task.cancel()  # interrupts nothing
    True
    >>> await asyncio.wait([task])
    buffer flushed
    (...)
    >>> task.cancelled()
    True

    *timeout* (seconds, or ``None`` for no limit – a deliberate choice, so it is
    required) bounds the cleanup, so a hung peer cannot hang the shutdown.  When it
    expires, the cleanup is cancelled and *awaited* – it is never left running, and
    more ``cancel()`` calls meanwhile do not cut that wait short either.  What is
    raised then depends on why the cleanup ran.  Without a cancellation the caller
    gets :exc:`asyncio.TimeoutError` (or the cleanup's own error, if it failed):

    >>> async def hung_goodbye():
    ...     await asyncio.sleep(3600)
    >>> try:
    ...     await shielded_cleanup(hung_goodbye(), timeout=0.3)
    ... except asyncio.TimeoutError as exc:
    ...     print(exc)
    cleanup did not finish within 0.3 s

    In a ``finally`` block that error replaces the exception that was on its way up,
    as any error raised in ``finally`` does (that one becomes its ``__context__``).

    If the task is being cancelled, the cancellation wins: a cleanup that times out
    or fails does not turn the cancelled task into a failed one – which an ``except
    Exception:`` retry loop further up would catch and carry on.  The
    :exc:`asyncio.CancelledError` that started the cleanup is re-raised, the
    cleanup's error as its ``__cause__``, and the error is logged (with its traceback)
    to the ``recipes.cancellation`` logger, because whoever awaits a cancelled task
    never sees it:

    >>> async def serve_forever():
    ...     while True:
    ...         try:
    ...             try:
    ...                 await asyncio.sleep(3600)  # serve one connection
    ...             finally:
    ...                 await shielded_cleanup(hung_goodbye(), timeout=0.3)
    ...         except Exception:
    ...             print("reconnecting")  # never reached by a cancellation
    >>> task = asyncio.create_task(serve_forever())
    >>> await asyncio.sleep(0.1)
    >>> task.cancel()
    True
    >>> await asyncio.wait([task])
    (...)
    >>> task.cancelled()
    True

    "Being cancelled" means: a :exc:`asyncio.CancelledError` is being handled where
    :func:`shielded_cleanup` is called (the ``finally`` block or ``__aexit__`` that
    the cancellation is running), a ``cancel()`` arrived while it waited, or – on
    3.11+ – :meth:`asyncio.Task.cancelling` of the calling task is not zero.  On
    3.8–3.10 a call from an ``except`` block for *another* error, nested in such a
    ``finally``, cannot tell, and its timeout goes on as :exc:`asyncio.TimeoutError`.
    :func:`shielded_cleanup` never calls :meth:`asyncio.Task.uncancel`, so on 3.11+
    the count of cancellation requests stays what the callers made it, and an
    enclosing :func:`asyncio.timeout` still recognises its own cancellation.

    :func:`recipes.context_managers.shielded_cleanup` is a copy of this helper that
    travels with :func:`~recipes.context_managers.async_closing`; it takes a positive
    *timeout* only.
    """
    if not inspect.isawaitable(cleanup):
        hint = " (call it: conn.close(), not conn.close)" if callable(cleanup) else ""
        raise TypeError(
            f"shielded_cleanup() needs an awaitable, got {type(cleanup).__name__}{hint}"
        )
    if timeout is not None and timeout <= 0:
        if inspect.iscoroutine(cleanup):
            cleanup.close()
        raise ValueError(f"timeout must be > 0 or None, got {timeout!r}")
    # The cancellation this cleanup may be running for: the CancelledError being handled
    # by the finally block or __aexit__ that called us (read before the first await).
    handling = sys.exc_info()[1]
    original = handling if isinstance(handling, asyncio.CancelledError) else None
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    task = asyncio.ensure_future(cleanup)
    interrupted: Optional[asyncio.CancelledError] = None
    timed_out = False
    while not task.done():
        remaining = None if deadline is None or timed_out else deadline - loop.time()
        if remaining is not None and remaining <= 0:
            timed_out = True
            task.cancel()  # then wait, without a limit, until it has unwound
            continue
        try:
            await asyncio.wait([task], timeout=remaining)
        except asyncio.CancelledError as exc:
            interrupted = interrupted or exc  # keep waiting; pass it on afterwards
    error: Optional[BaseException] = None
    if timed_out and task.cancelled():
        error = asyncio.TimeoutError(f"cleanup did not finish within {timeout} s")
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
    return task.result()  # the cancellation in progress goes on when the caller's block ends


def _cancelling() -> bool:
    """Whether the current task has cancellation requests pending (3.11+; else False)."""
    if sys.version_info < (3, 11):
        return False
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


@contextlib.contextmanager
def stop_on_signals(*signals: int) -> Iterator[asyncio.Event]:
    """Within the block, SIGINT and SIGTERM (or *signals*) set the yielded event.

    >>> import asyncio, os, signal
    >>> from recipes.cancellation import stop_on_signals
    >>> with stop_on_signals(signal.SIGUSR1) as stop:
    ...     os.kill(os.getpid(), signal.SIGUSR1)
    ...     await asyncio.wait_for(stop.wait(), timeout=1)
    True

    The handlers run inside the event loop (through
    :meth:`asyncio.loop.add_signal_handler`), so the code waiting on the event decides
    how to stop – typically :func:`cancel_and_wait` on its workers.  When the block
    exits, what handled each signal before is put back: a plain handler installed with
    :func:`signal.signal` (including the SIGINT handler of :func:`asyncio.run` on
    3.11+), the default, or a callback added earlier with ``add_signal_handler`` – by
    an outer :func:`stop_on_signals`, or by a framework such as aiohttp's ``run_app``
    or uvicorn:

    >>> loop = asyncio.get_running_loop()
    >>> loop.add_signal_handler(signal.SIGUSR2, print, "framework handler")
    >>> with stop_on_signals(signal.SIGUSR2) as stop:
    ...     os.kill(os.getpid(), signal.SIGUSR2)  # the innermost handler runs
    ...     await asyncio.wait_for(stop.wait(), timeout=1)
    True
    >>> os.kill(os.getpid(), signal.SIGUSR2); await asyncio.sleep(0.1)
    framework handler
    >>> loop.remove_signal_handler(signal.SIGUSR2)
    True

    A plain handler is back in :func:`signal.getsignal` too:

    >>> before = signal.getsignal(signal.SIGUSR1)
    >>> with stop_on_signals(signal.SIGUSR1):
    ...     signal.getsignal(signal.SIGUSR1) is before
    False
    >>> signal.getsignal(signal.SIGUSR1) is before
    True

    Blocks nest: inside both, the inner one gets the signal; after it exits, the outer
    one does.  What is put back is what was there when the block was *entered*; a
    handler that code inside the block installs for the same signal is replaced.

    Limits.  asyncio has no public way to ask a loop which callback it runs for a
    signal, so the callback added earlier is read from the loop's private
    ``_signal_handlers`` dictionary (unchanged from 3.8 to 3.15).  A loop without it –
    uvloop keeps that table out of Python's reach – cannot show that callback: there,
    only a plain :func:`signal.signal` handler is put back, and a callback the loop
    ran before the block is lost.  Unix only, main thread only, and inside a running
    event loop: Windows loops raise :exc:`NotImplementedError`, other threads
    :exc:`RuntimeError`.  A signal that cannot be caught (``SIGKILL``) raises
    :exc:`RuntimeError` before the block is entered, with the handlers installed so
    far removed again.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    # signal -> (the Python-level handler, the loop's callback handle or None) before us
    previous: Dict[int, Tuple[Any, Optional[asyncio.Handle]]] = {}
    try:
        for signum in dict.fromkeys(signals or (signal.SIGINT, signal.SIGTERM)):
            before = (signal.getsignal(signum), _loop_signal_handlers(loop).get(signum))
            loop.add_signal_handler(signum, stop.set)
            previous[signum] = before
        yield stop
    finally:
        for signum, (before, handle) in previous.items():
            if handle is not None:
                # The loop ran a callback for this signal before us.  Registering again
                # redoes the OS-level setup (in case the block removed it); then the
                # earlier callback's handle goes back in place of ours, as it was.
                loop.add_signal_handler(signum, stop.set)
                _loop_signal_handlers(loop)[signum] = handle
                continue
            loop.remove_signal_handler(signum)
            if before is not None:
                signal.signal(signum, before)


def _loop_signal_handlers(loop: asyncio.AbstractEventLoop) -> Dict[int, asyncio.Handle]:
    """The loop's own table of signal callbacks (private; an empty dict if it has none)."""
    handlers = getattr(loop, "_signal_handlers", None)
    return handlers if isinstance(handlers, dict) else {}
