"""A task wraps a coroutine and schedules it on the event loop, so that it runs
while the code that started it goes on with something else.  Starting one is
a single call to :func:`asyncio.create_task`; the work is in what follows:
naming tasks so that you can tell them apart, reacting when they finish,
reading their results and errors, cancelling them cleanly, and keeping them
alive, because the event loop holds only weak references to the tasks it
runs.  The chapter ends with a helper worth copying, :class:`BackgroundTasks`:
a home for fire-and-forget tasks that keeps them alive, reports their errors
and shuts them down cleanly.  A second helper, :func:`create_eager_task`,
starts a task that runs its first step at once, on every Python that can.

Starting a task
---------------

.. index::
   single: create_task
   pair: task; starting

Awaiting a coroutine runs it to the end before the next line starts.  To do
two things at once, wrap each coroutine in a task: it starts as soon as the
current task next waits, and ``await task`` later collects its result.

>>> import asyncio
>>> async def brew(drink: str, seconds: float) -> str:
...     await asyncio.sleep(seconds)
...     return f"{drink} ready"
>>> loop = asyncio.get_running_loop()
>>> start = loop.time()
>>> tea = asyncio.create_task(brew("tea", 0.3))
>>> coffee = asyncio.create_task(brew("coffee", 0.2))
>>> await tea, await coffee
('tea ready', 'coffee ready')
>>> round(loop.time() - start, 1)  # both brewed at the same time
0.3

:func:`asyncio.create_task` needs a running event loop: call it from a
coroutine (or from a callback the loop runs), not at import time.  What a
coroutine is, and what ``await`` does with it, is the subject of
:doc:`/recipes/coroutines`.

Naming tasks and finding them
-----------------------------

.. index::
   pair: task; name
   single: current_task
   single: all_tasks

Every task has a name, ``Task-<n>`` unless you choose one.  Names show up in
reprs, in debug-mode warnings and in logs, so name the long-lived tasks:

>>> worker = asyncio.create_task(asyncio.sleep(0.1), name="worker-1")
>>> worker.get_name()
'worker-1'
>>> worker.set_name("worker-a")
>>> anonymous = asyncio.create_task(asyncio.sleep(0.1))
>>> anonymous.get_name()
'Task-...'

:func:`asyncio.current_task` returns the task that is running the current
code, and :func:`asyncio.all_tasks` the loop's unfinished tasks:

>>> async def whoami() -> str:
...     return asyncio.current_task().get_name()
>>> await asyncio.create_task(whoami(), name="inspector")
'inspector'
>>> sorted(
...     task.get_name() for task in asyncio.all_tasks()
...     if task is not asyncio.current_task()
... )
['Task-...', 'worker-a']
>>> await worker, await anonymous
(None, None)

:ref:`recipes/debugging:Seeing where a task is waiting` shows what else a
task can tell you about itself while it runs.

Reacting when a task finishes
-----------------------------

.. index::
   single: add_done_callback
   single: error messages; Exception in callback ...
   pair: exception handler; set_exception_handler

:meth:`asyncio.Task.add_done_callback` registers a plain function that the
loop calls, with the task as its only argument, once the task is done
(finished, failed or cancelled).  The loop schedules the call; it never runs
inside ``add_done_callback`` itself, even for a task that is already done.
Callbacks run in the order they were added, so one added before an ``await``
runs before the awaiting code resumes:

>>> def report(task: asyncio.Task) -> None:
...     print(f"{task.get_name()} finished with {task.result()!r}")
>>> nap = asyncio.create_task(asyncio.sleep(0.1, result="rested"), name="nap")
>>> nap.add_done_callback(report)
>>> await nap
nap finished with 'rested'
'rested'

An exception raised by a callback does not reach the task or whoever awaits
it: the loop passes it to its exception handler, which by default logs
``Exception in callback ...``.  Here a handler collects it instead:

>>> errors = []
>>> loop.set_exception_handler(lambda loop, context: errors.append(context))
>>> def broken(task: asyncio.Task) -> None:
...     raise RuntimeError("bug in a callback")
>>> job = asyncio.create_task(asyncio.sleep(0.1, result="fine"))
>>> job.add_done_callback(broken)
>>> await job  # the task itself is unaffected
'fine'
>>> errors[0]["message"].split("(")[0], errors[0]["exception"]
('Exception in callback broken', RuntimeError('bug in a callback'))
>>> loop.set_exception_handler(None)

Keep callbacks short and let them catch their own errors; anything slow or
asynchronous belongs in a task of its own.

Reading results and exceptions
------------------------------

.. index::
   pair: task; result
   pair: task; exception
   single: error messages; Result is not set.
   single: InvalidStateError

``await task`` returns the result or raises the task's exception.  Without
awaiting, :meth:`asyncio.Task.result` and :meth:`asyncio.Task.exception`
read the outcome of a task that is done; on a task that is still running they
raise :exc:`asyncio.InvalidStateError`:

>>> async def load_user(user_id: int) -> str:
...     await asyncio.sleep(0.1)
...     raise LookupError(f"no user {user_id}")
>>> lookup = asyncio.create_task(load_user(7))
>>> lookup.result()  # doctest: +IGNORE_EXCEPTION_DETAIL
Traceback (most recent call last):
...
asyncio.InvalidStateError: Result is not set.

:func:`asyncio.wait` waits for tasks without raising their errors, and
:meth:`asyncio.Task.exception` then returns the error (or ``None``):

>>> done, pending = await asyncio.wait([lookup])
>>> lookup.done(), lookup.exception()
(True, LookupError('no user 7'))
>>> lookup.result()
Traceback (most recent call last):
...
LookupError: no user 7

On a cancelled task both methods raise :exc:`asyncio.CancelledError`; check
:meth:`asyncio.Task.cancelled` first.  Waiting for many tasks at once, and
what becomes of their errors, is covered in :doc:`/recipes/gathering`,
:doc:`/recipes/waiting` and :doc:`/recipes/errors`.

Cancelling a task
-----------------

.. index::
   pair: task; cancel
   single: cancel message
   single: CancelledError; never swallow

:meth:`asyncio.Task.cancel` asks a task to stop: the next time the task
waits, :exc:`asyncio.CancelledError` is raised at that ``await``, so its
``except`` and ``finally`` blocks get to clean up.  ``cancel()`` only makes
the request; the task is not done until it has finished cleaning up, so await
it afterwards:

>>> async def download(log: list) -> None:
...     try:
...         await asyncio.sleep(10)
...     except asyncio.CancelledError:
...         log.append("cancelled")
...         raise  # always let the cancellation go on
...     finally:
...         log.append("connection closed")
>>> log = []
>>> transfer = asyncio.create_task(download(log))
>>> await asyncio.sleep(0.1)
>>> transfer.cancel()
True
>>> await transfer  # doctest: +IGNORE_EXCEPTION_DETAIL
Traceback (most recent call last):
...
asyncio.CancelledError
>>> transfer.cancelled(), log
(True, ['cancelled', 'connection closed'])

A message passed to ``cancel()`` travels with the exception, which helps to
tell who cancelled a task:

>>> async def note_reason(reasons: list) -> None:
...     try:
...         await asyncio.sleep(10)
...     except asyncio.CancelledError as exc:
...         reasons.append(exc.args)
...         raise
>>> reasons = []
>>> noted = asyncio.create_task(note_reason(reasons))
>>> await asyncio.sleep(0.1)
>>> noted.cancel("shutting down")  # doctest: +PY39
True
>>> await asyncio.sleep(0)  # let the task see its cancellation
>>> noted.cancelled(), reasons  # doctest: +PY39
(True, [('shutting down',)])

.. versionadded:: 3.9
   The *msg* argument of :meth:`asyncio.Task.cancel`.

.. versionchanged:: 3.11
   The message also reaches the code that awaits the cancelled task; on 3.9
   and 3.10 only the cancelled task itself sees it.  3.11 also added
   :meth:`asyncio.Task.cancelling` and :meth:`asyncio.Task.uncancel`, which
   :func:`asyncio.timeout` and :class:`asyncio.TaskGroup` use to tell their own
   cancellations from others.

.. important::

   Never swallow :exc:`asyncio.CancelledError`.  A task that catches it and
   carries on cannot be stopped, and :func:`asyncio.wait_for`,
   :func:`asyncio.timeout` and :class:`asyncio.TaskGroup`, which all work by
   cancelling, stop working around it.  Catch it only to clean up, then
   re-raise.  Since Python 3.8 it derives from :exc:`BaseException`, so
   ``except Exception`` no longer catches it by accident.

The same rule applies to the code that cancels: a bare
``try: await task / except CancelledError: pass`` after ``task.cancel()`` also
swallows a cancellation aimed at the *caller*.  The cancellation chapter's
:func:`recipes.cancellation.cancel_and_wait` stops tasks without that flaw;
:meth:`BackgroundTasks.close` does the same for the tasks it holds.
:doc:`/recipes/cancellation` follows a cancellation all the way, from the
request to the cleanup it triggers.

Keeping fire-and-forget tasks alive
-----------------------------------

.. index::
   single: fire-and-forget tasks
   single: tasks; weak references
   single: error messages; Task was destroyed but it is pending!
   single: error messages; Task exception was never retrieved
   single: error messages; cannot reuse already awaited coroutine

Starting a task and never looking at it again is tempting for side jobs such
as sending a notification.  But the event loop holds only *weak* references
to its tasks: a task that nothing else refers to can be garbage collected in
the middle of its work, and a task whose error nobody reads loses that error.
Both show up only as log lines, here caught by an exception handler:

>>> import gc
>>> messages = []
>>> def keep_message(loop, context):
...     messages.append(context["message"])
>>> loop.set_exception_handler(keep_message)
>>> async def wait_for_reply() -> None:
...     await loop.create_future()  # a reply that nothing else refers to
>>> async def crash() -> None:
...     raise ValueError("nobody will see this")
>>> def fire_and_forget() -> None:
...     asyncio.create_task(wait_for_reply())  # BUG: no reference is kept
...     asyncio.create_task(crash())  # BUG: nobody reads the exception
>>> fire_and_forget()
>>> await asyncio.sleep(0.1)
>>> collected = gc.collect()
>>> sorted(messages)
['Task exception was never retrieved', 'Task was destroyed but it is pending!']
>>> loop.set_exception_handler(None)

.. important::

   ``Task was destroyed but it is pending!`` means a task was garbage
   collected before it finished: keep a strong reference to every task until
   it is done.  ``Task exception was never retrieved`` means a task failed and
   nothing awaited it or called ``exception()``: its error was lost.
   :class:`BackgroundTasks` prevents both, and
   :ref:`recipes/debugging:Logging exceptions that nobody retrieved` shows
   how to find the task that was lost.

.. versionchanged:: 3.14
   Tasks are listed in a per-thread list instead of a weak set.  An exception
   handler that keeps the whole ``context`` dictionary (rather than its
   ``message``) also keeps the destroyed task, which then stays in
   :func:`asyncio.all_tasks` as a pending task whose coroutine is already
   closed; cancelling it at shutdown raises ``RuntimeError: cannot reuse
   already awaited coroutine``.  Store what you need from the context, not
   the context itself.

:class:`BackgroundTasks` keeps every task in a set until it finishes, reports
each error through a callback (or the log), and cancels and awaits whatever is
left when it closes:

>>> from recipes.tasks import BackgroundTasks
>>> async def send_email(to: str) -> None:
...     await asyncio.sleep(0.1)
...     if "@" not in to:
...         raise ValueError(f"bad address: {to!r}")
>>> async def sign_up(users: list, background: BackgroundTasks) -> None:
...     for user in users:
...         background.spawn(send_email(user), name=f"welcome {user}")
>>> def report_failure(task, exc):
...     print("failed:", exc)
>>> async with BackgroundTasks(on_error=report_failure) as background:
...     await sign_up(["ann@example.com", "bob"], background)
...     finished = await background.join()
failed: bad address: 'bob'

When the side jobs belong to one piece of work that should not finish before
they do, an :class:`asyncio.TaskGroup` is the better home: see
:doc:`/recipes/task_groups`.  :class:`BackgroundTasks` is for tasks that
outlive the code that starts them, such as a request handler's follow-up
work.

Running a task in a given context
---------------------------------

.. index::
   pair: contextvars; task
   single: create_task; context argument

A new task runs in a *copy* of the current :mod:`contextvars` context, so it
sees the context variables of the code that started it.  To run it in a
context of your choosing instead, pass ``context=``:

>>> import contextvars
>>> request_id = contextvars.ContextVar("request_id", default="-")
>>> async def log_line(message: str) -> str:
...     return f"[{request_id.get()}] {message}"
>>> context = contextvars.copy_context()
>>> token = context.run(request_id.set, "r-17")
>>> await asyncio.create_task(  # doctest: +PY311
...     log_line("hello"), context=context
... )
'[r-17] hello'

On older versions, start the task from inside the context; it then runs in a
copy of that context, which is the same for reading:

>>> await context.run(asyncio.create_task, log_line("hello"))
'[r-17] hello'
>>> request_id.get()  # the caller's own context is untouched
'-'

.. versionadded:: 3.11
   The *context* argument of :func:`asyncio.create_task` and
   ``loop.create_task``.  :meth:`BackgroundTasks.spawn` accepts it on every
   version.

Starting tasks eagerly
----------------------

.. index::
   single: eager tasks
   single: eager_task_factory
   pair: create_task; eager_start
   single: task factory

A new task waits for its first turn on the loop, even when its coroutine
could finish at once: a cache hit, say.  Every such task costs a trip through
the loop's queue, and the caller always runs on before it.  An *eager* task runs
its coroutine right away, inside the call that creates it, up to the
coroutine's first real wait; the loop takes over only from there.  A
coroutine that never waits finishes inside that call, and the caller gets
back a task that is already done.

Which code runs when is easiest to see in a log.  ``lookup()`` records its two
steps, and ``demo()`` records its own next line after starting the task:

>>> async def lookup(key: str, log: list) -> str:
...     log.append(f"{key}: step 1")
...     await asyncio.sleep(0)  # its first wait
...     log.append(f"{key}: step 2")
...     return key
>>> async def demo(start) -> list:
...     log = []
...     task = start(lookup("task", log))
...     log.append("caller: next line")
...     await task
...     return log
>>> await demo(asyncio.create_task)  # an ordinary, lazy task
['caller: next line', 'task: step 1', 'task: step 2']

Since Python 3.14, ``create_task()`` takes ``eager_start=True``.  The
task's first step then runs before ``create_task()`` returns, and so before
the caller's next line:

>>> def start_eagerly(coro):
...     return asyncio.create_task(coro, eager_start=True)
>>> await demo(start_eagerly)  # doctest: +PY314
['task: step 1', 'caller: next line', 'task: step 2']

``loop.create_task()`` and :meth:`asyncio.TaskGroup.create_task` take the same
keyword.  Both tasks below have run their first step by the time the body of
the group reaches its next line:

>>> log = []
>>> async with asyncio.TaskGroup() as group:  # doctest: +PY314
...     for key in ("a", "b"):
...         task = group.create_task(lookup(key, log), eager_start=True)
...     log.append("caller: next line")
>>> log  # doctest: +PY314
['a: step 1', 'b: step 1', 'caller: next line', 'a: step 2', 'b: step 2']

On 3.12 and 3.13, ``create_task()`` knows no such keyword, but the
:class:`asyncio.Task` constructor does (it has since 3.12):

>>> def start_eagerly_312(coro):
...     loop = asyncio.get_running_loop()
...     return asyncio.Task(coro, loop=loop, eager_start=True)
>>> await demo(start_eagerly_312)  # doctest: +PY312
['task: step 1', 'caller: next line', 'task: step 2']

The asyncio documentation discourages making tasks by hand, and doing so goes
around the loop's task factory, if one is installed.  The other tool of 3.12,
:func:`asyncio.eager_task_factory`, makes *every* task of the loop eager.
Install it once, where the program starts (the first line of ``main()``, say)
with ``asyncio.get_running_loop().set_task_factory(asyncio.eager_task_factory)``.
From 3.14 on, ``eager_start=False`` exempts a single task from it; without
*eager_start*, the factory decides.

.. important::

   Do not install the factory for just one ``create_task()`` call and remove
   it afterwards.  The task's eager step runs while the factory is still in
   place, so every task that the coroutine starts before its first wait turns
   eager as well, and a task factory that the program had installed is
   replaced for that moment.

:func:`create_eager_task` picks the right spelling for the running Python:
``eager_start=True`` on 3.14 and later, the Task constructor on 3.12 and
3.13, and an ordinary task on 3.8 to 3.11, which have no eager tasks.
Because of that last fallback, and because eager start is a speed-up, write
the coroutine so that it is correct either way:

>>> from recipes.tasks import create_eager_task
>>> await demo(create_eager_task)  # doctest: +PY312
['task: step 1', 'caller: next line', 'task: step 2']
>>> async def cached_lookup(key: str) -> str:
...     return key.upper()  # no await: finishes in its first step
>>> async def done_at_once(start) -> tuple:
...     task = start(cached_lookup("a"))
...     done = task.done()  # before this coroutine has waited even once
...     return done, await task
>>> await done_at_once(asyncio.create_task)
(False, 'A')
>>> await done_at_once(create_eager_task)  # doctest: +PY312
(True, 'A')
>>> await create_eager_task(cached_lookup("b"), name="cache hit")
'B'

.. versionadded:: 3.12
   :func:`asyncio.eager_task_factory`, ``asyncio.create_eager_task_factory``
   and the *eager_start* argument of the :class:`asyncio.Task` constructor.

.. versionchanged:: 3.14
   :func:`asyncio.create_task`, ``loop.create_task`` and
   :meth:`asyncio.TaskGroup.create_task` pass every keyword argument on to
   the Task constructor or the loop's task factory, which gives a task of
   its own ``eager_start=True``.  A task factory must accept and pass on
   keyword arguments it does not know; one with a fixed signature raises
   :exc:`TypeError` for *eager_start*.

What eager tasks change
-----------------------

.. index::
   single: eager tasks; order of side effects

Eager start changes the order in which things happen, and code that quietly
relied on the old order breaks.  Four things to know:

*The order of side effects changes.*  An eager task runs its first step
before tasks that were started earlier but lazily, and before the rest of the
caller:

>>> async def mixed() -> list:
...     log = []
...     first = asyncio.create_task(lookup("lazy", log))
...     second = asyncio.create_task(lookup("eager", log), eager_start=True)
...     log.append("caller: next line")
...     await asyncio.gather(first, second)
...     return log
>>> for event in await mixed():  # doctest: +PY314
...     print(event)
eager: step 1
caller: next line
lazy: step 1
eager: step 2
lazy: step 2

*Code that counts on* ``create_task()`` *running nothing yet breaks.*  A common
shape starts a task first and sets up the state that the task needs on the
following lines.  With a lazy task this works, but only because nothing runs
before the caller next waits; an eager task runs into the missing state:

>>> class Counter:
...     def __init__(self, start) -> None:
...         self.task = start(self.count())
...         self.ticks = 0  # BUG: count() may have run already
...     async def count(self) -> None:
...         self.ticks += 1
>>> lazy_counter = Counter(asyncio.create_task)
>>> await lazy_counter.task
>>> lazy_counter.ticks
1
>>> eager_counter = Counter(create_eager_task)
>>> eager_counter.task.exception()  # doctest: +PY312
AttributeError("'Counter' object has no attribute 'ticks'")

Set up the state first, then start the task.

*Exceptions in the eager step stay in the task.*  ``create_task()`` does not
raise what the eager step raises: the exception goes into the task, which is
done already, as ``eager_counter.task`` shows.  Read it as you would for any
task (await it, or call ``exception()``), or it ends up as ``Task exception
was never retrieved``.  Only :exc:`KeyboardInterrupt` and :exc:`SystemExit`
escape from ``create_task()`` itself.  In a task group, an eager failure
cancels the other tasks only when the loop next runs, so the body of the
group carries on until its next ``await``.

*A task that finishes eagerly is never scheduled.*  It is not listed by
:func:`asyncio.all_tasks`, its ``get_coro()`` returns ``None`` (early 3.12
releases crash there instead: CPython issue gh-122332), and awaiting it returns
at once *without* giving the loop a turn: a loop that awaits one cache hit
after another starves every other task until it reaches a real wait.
Callbacks added to it with ``add_done_callback()`` still run later, from the
loop, as for any task that is done.

.. important::

   Switch eager tasks on where you have measured that the loop's scheduling
   matters, and test the code with them switched on.  Ordering between tasks
   that is not enforced by an ``await``, a lock, an event or a queue was never
   guaranteed; eager tasks are where that shows.

Putting it together
-------------------

A program that sends welcome emails in the background, reports the one that
fails, and shuts down cleanly.  Save it as a file and run it:

.. script:: welcome_emails.py

   import asyncio

   from recipes.tasks import BackgroundTasks


   async def send_email(to: str) -> None:
       await asyncio.sleep(0.05)  # stands in for talking to a mail server
       if "@" not in to:
           raise ValueError(f"bad address: {to!r}")


   def report(task: asyncio.Task, exc: BaseException) -> None:
       print(f"{task.get_name()} failed: {exc}")


   async def main() -> None:
       async with BackgroundTasks(on_error=report) as background:
           for user in ["ann@example.com", "bob", "eve@example.com"]:
               background.spawn(send_email(user), name=f"welcome {user}")
           print("running:", len(background))
           await background.join(timeout=1)
       print("running:", len(background), "errors:", background.errors)


   asyncio.run(main())

.. script-output::

   running: 3
   welcome bob failed: bad address: 'bob'
   running: 0 errors: [ValueError("bad address: 'bob'")]

A library does this
-------------------

.. index::
   single: aiojobs
   pair: aiojobs; comparison

* `aiojobs <https://aiojobs.readthedocs.io/>`__ has a ``Scheduler`` for
  fire-and-forget work: ``job = await scheduler.spawn(coro)`` keeps the task
  alive and returns a ``Job`` to ``wait()`` for or ``close()``.  It adds a
  limit on running jobs (``limit=100`` by default; the rest wait in a
  pending queue, and ``spawn()`` waits when that is full too), ``shield()``
  for a coroutine that a cancelled caller must not stop, and helpers for
  spawning from aiohttp handlers.  Errors go to an ``exception_handler`` or
  the loop's, not to a list like :attr:`BackgroundTasks.errors`.  Leaving
  ``async with`` waits for the jobs (60 s by default, ``wait_timeout``) and
  then closes; ``close()`` cancels them and gives each one
  ``close_timeout`` (0.1 s by default) to finish its cleanup before it is
  reported and left behind, where
  :meth:`BackgroundTasks.close` waits for every cleanup.  Needs Python
  3.9+.  Choose it for aiohttp applications or a bound on running jobs; the
  recipe for a complete shutdown, collected errors, or Python 3.8.

See also
--------

* :doc:`/recipes/coroutines`: what a task wraps, and the other awaitables.
* :doc:`/recipes/gathering` and :doc:`/recipes/waiting`: waiting for many
  tasks, all of them or the first one.
* :doc:`/recipes/task_groups`: tasks that start and end with a block of
  code.
* :doc:`/recipes/cancellation`: stopping tasks and cleaning up after them.
* :doc:`/recipes/debugging`: finding tasks that were lost, blocked or never
  awaited.
* Python documentation: :ref:`python:asyncio-task-obj`,
  :func:`asyncio.create_task`, :ref:`python:eager-task-factory` and
  :doc:`python:library/contextvars`.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import logging
import math
import sys
from types import TracebackType
from typing import (
    Any,
    Callable,
    Coroutine,
    Deque,
    List,
    Optional,
    Set,
    Type,
    TypeVar,
)

__all__ = ["BackgroundTasks", "create_eager_task"]

T = TypeVar("T")

logger = logging.getLogger(__name__)


def _check_seconds(name: str, value: Optional[float]) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds or None, not {value!r}")
    if math.isnan(value) or value < 0:
        raise ValueError(f"{name} must be >= 0 seconds, got {value!r}")


class BackgroundTasks:
    """A home for fire-and-forget tasks: keeps them alive, reports errors, stops them cleanly.

    >>> import asyncio
    >>> from recipes.tasks import BackgroundTasks
    >>> async def notify(user: str) -> None:
    ...     await asyncio.sleep(0.1)
    ...     if user == "bob":
    ...         raise ConnectionError("mail server down")
    >>> background = BackgroundTasks(name="notifications")
    >>> for user in ("ann", "bob"):
    ...     task = background.spawn(notify(user), name=f"notify {user}")
    >>> background
    <BackgroundTasks 'notifications' running=2 errors=0>
    >>> await background.join()
    True
    >>> background.errors
    [ConnectionError('mail server down')]

    :meth:`spawn` keeps a strong reference to each task until it is done, so
    the garbage collector cannot destroy it mid-flight.  When a task fails,
    its exception is retrieved (no ``Task exception was never retrieved``),
    kept in :attr:`errors` (the latest *max_errors* of them) and passed to
    ``on_error(task, exc)``; without *on_error* it is logged with its
    traceback to the ``recipes.tasks`` logger.  Cancelled tasks are not
    errors.

    :meth:`close`, also called when an ``async with`` block ends, refuses new
    tasks, cancels the running ones and waits until every one of them has
    finished its cleanup.  *grace* first gives them that many seconds to
    finish on their own:

    >>> async def slow_notify() -> None:
    ...     await asyncio.sleep(0.2)
    ...     print("sent")
    >>> async with BackgroundTasks() as background:
    ...     task = background.spawn(slow_notify())
    ...     await background.close(grace=0.5)
    sent
    >>> len(background)
    0

    A closed instance refuses new work.  The coroutine it was given is closed,
    so it does not add a "never awaited" warning to the error:

    >>> background.spawn(slow_notify())
    Traceback (most recent call last):
    ...
    RuntimeError: BackgroundTasks 'background' is closed; it accepts no new tasks
    """

    def __init__(
        self,
        *,
        name: str = "background",
        on_error: Optional[Callable[[asyncio.Task[Any], BaseException], object]] = None,
        max_errors: int = 100,
    ) -> None:
        if on_error is not None and not callable(on_error):
            raise TypeError(f"on_error must be a callable or None, not {on_error!r}")
        if isinstance(max_errors, bool) or not isinstance(max_errors, int) or max_errors < 0:
            raise ValueError(f"max_errors must be an int >= 0, got {max_errors!r}")
        self.name = name
        self._on_error = on_error
        self._tasks: Set[asyncio.Task[Any]] = set()
        self._errors: Deque[BaseException] = collections.deque(maxlen=max_errors)
        self._closed = False

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return (
            f"<BackgroundTasks {self.name!r}{state} running={len(self)} "
            f"errors={len(self._errors)}>"
        )

    def __len__(self) -> int:
        """The number of tasks that have not finished yet."""
        return sum(1 for task in self._tasks if not task.done())

    @property
    def errors(self) -> List[BaseException]:
        """The exceptions of failed tasks, oldest first (at most *max_errors* of them)."""
        return list(self._errors)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has started; no new tasks are accepted then."""
        return self._closed

    def spawn(
        self,
        coro: Coroutine[Any, Any, T],
        *,
        name: Optional[str] = None,
        context: Optional[contextvars.Context] = None,
    ) -> asyncio.Task[T]:
        """Start *coro* as a task, keep it until it is done, and return it.

        >>> import asyncio
        >>> from recipes.tasks import BackgroundTasks
        >>> async with BackgroundTasks() as background:
        ...     nap = asyncio.sleep(0.1, result="done")
        ...     task = background.spawn(nap, name="nap")
        ...     await task
        'done'

        *context* runs the task in that :mod:`contextvars` context.  Python
        3.11 and later use the very object; older versions run the task in a
        copy of it, which reads the same but keeps its changes to itself.

        Pass a coroutine object, the result of calling an ``async def``
        function:

        >>> background = BackgroundTasks()
        >>> background.spawn(asyncio.sleep)
        Traceback (most recent call last):
        ...
        TypeError: spawn() expects a coroutine object ... forget the parentheses?
        """
        if not asyncio.iscoroutine(coro):
            hint = "; did you forget the parentheses?" if callable(coro) else ""
            raise TypeError(
                f"spawn() expects a coroutine object such as work(), got {coro!r}{hint}"
            )
        if self._closed:
            coro.close()
            raise RuntimeError(f"BackgroundTasks {self.name!r} is closed; it accepts no new tasks")
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            coro.close()
            raise
        task: asyncio.Task[T]
        if context is None:
            task = loop.create_task(coro, name=name)
        elif sys.version_info >= (3, 11):
            task = loop.create_task(coro, name=name, context=context)
        else:  # pragma: no cover - Python 3.8 to 3.10
            task = context.run(loop.create_task, coro, name=name)
        self._tasks.add(task)
        if task.done():  # an eager task factory (3.12+) may have run it to the end already
            self._on_done(task)
        else:
            task.add_done_callback(self._on_done)
        return task

    def _on_done(self, task: asyncio.Task[Any]) -> None:
        if task not in self._tasks:  # already handled by _reap()
            return
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()  # marks the error as retrieved
        if error is None:
            return
        self._errors.append(error)
        if self._on_error is None:
            logger.error(
                "background task %r of %r failed", task.get_name(), self.name, exc_info=error
            )
            return
        try:
            self._on_error(task, error)
        except Exception:
            logger.exception("on_error handler of %r failed", self.name)

    def _reap(self) -> None:
        """Handle finished tasks whose done callback has not run yet."""
        for task in [task for task in self._tasks if task.done()]:
            self._on_done(task)

    def _others(self) -> List[asyncio.Task[Any]]:
        """The unfinished tasks, leaving out the one that is asking."""
        current = asyncio.current_task()
        return [task for task in self._tasks if not task.done() and task is not current]

    async def join(self, timeout: Optional[float] = None) -> bool:
        """Wait until every task has finished, including ones spawned meanwhile.

        Return True when none is left, or False if *timeout* seconds passed
        first.  Nothing is cancelled either way:

        >>> import asyncio
        >>> from recipes.tasks import BackgroundTasks
        >>> async with BackgroundTasks() as background:
        ...     task = background.spawn(asyncio.sleep(1))
        ...     await background.join(timeout=0.1), len(background)
        (False, 1)

        Called from inside one of its own tasks, it waits for the others.
        """
        _check_seconds("timeout", timeout)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            pending = self._others()
            if not pending:
                self._reap()
                return True
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return False
            await asyncio.wait(pending, timeout=remaining)

    async def close(self, *, grace: float = 0.0) -> None:
        """Refuse new tasks, cancel the running ones and wait until all have finished.

        With *grace* > 0 the tasks first get that many seconds to finish on
        their own.  Each task is cancelled once and then awaited for as long
        as its cleanup takes.  If :meth:`close` is itself cancelled, it still
        waits for every task to finish before it lets the cancellation
        propagate, so nothing is ever left running; a task that ignores
        cancellation therefore keeps :meth:`close` waiting, as it would keep
        an :class:`asyncio.TaskGroup` waiting.  A task whose cleanup raises
        while it is being cancelled ends failed, not cancelled: its error is
        reported like any other (``on_error``, or the log) and kept in
        :attr:`errors`, and :meth:`close` returns once that task has ended,
        as for any other.  Closing twice is harmless.
        """
        _check_seconds("grace", grace)
        self._closed = True
        interrupted: Optional[BaseException] = None
        if grace:
            try:
                await self.join(grace)
            except asyncio.CancelledError as exc:  # skip the grace period, still clean up
                interrupted = exc
        pending = self._others()
        for task in pending:
            task.cancel()
        while pending:
            try:
                await asyncio.wait(pending)
            except asyncio.CancelledError as exc:  # finish waiting first, re-raise below
                interrupted = exc
            pending = [task for task in pending if not task.done()]
        self._reap()
        if interrupted is not None:
            raise interrupted

    async def __aenter__(self) -> BackgroundTasks:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.close()


def create_eager_task(
    coro: Coroutine[Any, Any, T],
    *,
    name: Optional[str] = None,
    context: Optional[contextvars.Context] = None,
) -> asyncio.Task[T]:
    """Start *coro* as a task that runs its first step now, where Python can.

    The coroutine runs at once, inside this call, until it first waits; one
    that never waits is finished by the time the task is returned:

    >>> import asyncio
    >>> from recipes.tasks import create_eager_task
    >>> async def cached(key: str) -> str:
    ...     return key.upper()
    >>> task = create_eager_task(cached("a"), name="cache hit")
    >>> task.done()  # doctest: +PY312
    True
    >>> await task
    'A'

    How, by version:

    * 3.14 and later: ``loop.create_task(coro, eager_start=True)``, so the
      loop's task factory, if any, makes the task.  It must pass on keyword
      arguments it does not know, as :meth:`asyncio.loop.set_task_factory`
      requires; a factory that does not, like an event loop whose
      ``create_task()`` has no *eager_start*, raises :exc:`TypeError`.
    * 3.12 and 3.13: the :class:`asyncio.Task` constructor with
      ``eager_start=True``.  If the loop has a task factory, the factory
      makes the task instead, eager only if the factory says so.
    * 3.8 to 3.11: an ordinary task, which first runs when the caller next
      waits.  These versions have no eager tasks.

    What the eager step raises is kept in the task (read it with ``await`` or
    :meth:`asyncio.Task.exception`), except :exc:`KeyboardInterrupt` and
    :exc:`SystemExit`, which propagate from this call.  *context* runs the
    task in that :mod:`contextvars` context; 3.8 to 3.10 run it in a copy of
    it.  When the task cannot be made (no running loop, a bad argument), the
    coroutine is closed, so no "never awaited" warning follows the error:

    >>> create_eager_task(cached)  # the function, not a coroutine
    Traceback (most recent call last):
    ...
    TypeError: create_eager_task() expects a coroutine object, got <function...
    """
    if not asyncio.iscoroutine(coro):
        hint = "; did you forget the parentheses?" if callable(coro) else ""
        raise TypeError(f"create_eager_task() expects a coroutine object, got {coro!r}{hint}")
    try:
        if context is not None and not isinstance(context, contextvars.Context):
            # Checked here: on 3.12-3.14, an eager Task given a bad context raises
            # after it has entered itself, which breaks the loop for every later task.
            raise TypeError(f"context must be a contextvars.Context or None, not {context!r}")
        loop = asyncio.get_running_loop()
        if sys.version_info >= (3, 14):
            return loop.create_task(coro, name=name, context=context, eager_start=True)
        if sys.version_info >= (3, 12):  # pragma: no cover - Python 3.12 and 3.13
            if loop.get_task_factory() is None:
                return asyncio.Task(coro, loop=loop, name=name, context=context, eager_start=True)
            return loop.create_task(coro, name=name, context=context)
        if sys.version_info >= (3, 11):  # pragma: no cover - Python 3.11
            return loop.create_task(coro, name=name, context=context)
        if context is None:  # pragma: no cover - Python 3.8 to 3.10
            return loop.create_task(coro, name=name)
        return context.run(loop.create_task, coro, name=name)  # pragma: no cover
    except BaseException:
        coro.close()  # a coroutine that ran and failed is closed already: harmless
        raise
