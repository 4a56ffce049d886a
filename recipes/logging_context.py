"""Tell which request every log line belongs to, even with a thousand in flight.

When one process serves many requests at once, their log lines interleave,
and ``"payment declined"`` is useless without knowing *which* request said
it.  Passing a request id down through every call is noisy and breaks at the
first library you do not own.  A :class:`contextvars.ContextVar` carries the
id for you: each asyncio task runs in a context of its own, and a
:class:`logging.Filter` copies the id onto every record.  This chapter shows
that set-up, exactly where asyncio copies the context and where it does not
(tasks, callbacks, executors, threads), how to name tasks so the logs say
who is talking, a small tracer that times nested work, and how to log from
many tasks without letting a slow handler stall the event loop.

Tagging every log line with a request id
----------------------------------------

.. index::
   single: request id; in log lines
   pair: contextvars; logging
   pair: logging; Filter
   single: ContextFilter
   single: error messages; Formatting field not found in record: 'request_id'

Set the id once, where the request enters your program, with
:func:`request_scope`; it stores the id in the :data:`request_id` context
variable and puts the old value back on exit.  A :class:`ContextFilter` on
the handler copies the variable onto each record, where the format string
can use it as ``%(request_id)s``.  Two requests that overlap keep their ids
apart, because :func:`asyncio.gather` runs each one in a task of its own:

>>> import asyncio
>>> import logging
>>> import sys
>>> from recipes.logging_context import (
...     ContextFilter, request_id, request_scope)
>>> log = logging.getLogger("demo.requests")
>>> log.setLevel(logging.INFO)
>>> log.propagate = False
>>> to_stdout = logging.StreamHandler(sys.stdout)
>>> to_stdout.setFormatter(
...     logging.Formatter("[%(request_id)s] %(message)s"))
>>> to_stdout.addFilter(ContextFilter())
>>> log.addHandler(to_stdout)
>>> async def handle(rid, delay):
...     with request_scope(rid):
...         log.info("start")
...         await asyncio.sleep(delay)
...         log.info("done")
>>> await asyncio.gather(handle("r-1", 0.2), handle("r-2", 0.1))
[r-1] start
[r-2] start
[r-2] done
[r-1] done
[None, None]
>>> log.info("between requests")
[-] between requests

Outside any request the filter writes ``-`` (the ``default`` argument), so
the format never fails.  A record that already has the attribute keeps it,
which lets a caller override the id with ``extra=``:

>>> log.info("replayed", extra={"request_id": "r-9"})
[r-9] replayed

Nothing else is needed in the code that logs: it calls ``log.info()`` as
usual, and a library's logger gets the id too, as long as its records pass
through a handler that has the filter.

.. important::

   Put the filter on the *handler*, not on a logger.  A filter added with
   ``logger.addFilter()`` runs only for records logged on that very logger;
   records of its children (``demo.requests.db``) propagate to the
   handlers without passing it.  A handler whose format names the field
   then cannot format them, and :mod:`logging` prints
   ``--- Logging error ---`` and ``ValueError: Formatting field not found
   in record: 'request_id'`` on standard error instead of your line:

>>> bare = logging.makeLogRecord({"msg": "no filter ran"})
>>> to_stdout.format(bare)
Traceback (most recent call last):
...
ValueError: Formatting field not found in record: 'request_id'

What a new task inherits
------------------------

.. index::
   pair: contextvars; create_task
   pair: request id; background task

:func:`asyncio.create_task` gives the new task a *copy* of the context at
the moment it is created.  A task started inside a request keeps that id
even after the request has moved on, and nothing the task sets leaks back
into the code that started it:

>>> async def background():
...     log.info("background work")
>>> async def request_with_a_background_job():
...     with request_scope("r-3"):
...         job = asyncio.create_task(background())
...     log.info("request finished")
...     await job
>>> await request_with_a_background_job()
[-] request finished
[r-3] background work
>>> async def child_sets():
...     request_id.set("r-child")
...     log.info("inside the child")
>>> await asyncio.create_task(child_sets())
[r-child] inside the child
>>> log.info("the parent is unchanged")
[-] the parent is unchanged

A task started *outside* a request gets no id, whatever requests are
running at the time: the copy is taken from the code that calls
``create_task``, not from some global "current request".

.. important::

   Awaiting a coroutine directly does not make a task, so it shares the
   caller's context: a ``set()`` in the callee changes the caller's value.
   Change a context variable only in a ``with request_scope(...)`` block (or
   with ``set()`` and ``reset(token)`` in ``try``/``finally``), so the old
   value comes back whichever way the code is called:

>>> async def caller():
...     await child_sets()  # the same task, so the same context
...     return request_id.get()
>>> await asyncio.create_task(caller())
[r-child] inside the child
'r-child'

What callbacks, executors and threads see
-----------------------------------------

.. index::
   pair: contextvars; call_soon
   pair: contextvars; call_later
   pair: contextvars; add_done_callback
   pair: contextvars; run_in_executor
   pair: contextvars; to_thread
   single: run_in_executor_with_context

Callbacks copy the context when they are *scheduled*.
:meth:`~asyncio.loop.call_soon`, :meth:`~asyncio.loop.call_later` and
:meth:`~asyncio.Future.add_done_callback` take a copy at the moment you call
them (or use the ``context=`` you pass), so a callback registered inside a
request logs with its id even when it runs after the request has ended:

>>> loop = asyncio.get_running_loop()
>>> def show(where):
...     log.info("from %s", where)
>>> async def schedule():
...     with request_scope("r-4"):
...         loop.call_soon(show, "call_soon")
...         loop.call_later(0.1, show, "call_later")
...         done = loop.create_future()
...         done.add_done_callback(lambda _: show("a done callback"))
...     done.set_result(None)  # completed after the request ended
...     await asyncio.sleep(0.2)
>>> await schedule()
[r-4] from call_soon
[r-4] from a done callback
[r-4] from call_later
>>> await loop.run_in_executor(None, show, "run_in_executor")
[-] from run_in_executor

:meth:`~asyncio.loop.run_in_executor` copies nothing: the function runs in
the worker thread's own context, and :func:`run_in_executor_with_context`
fixes that by running it in a copy of the caller's context:

>>> from recipes.logging_context import run_in_executor_with_context
>>> async def in_a_thread():
...     with request_scope("r-5"):
...         await loop.run_in_executor(None, show, "run_in_executor")
...         await run_in_executor_with_context(None, show, "a copy")
>>> await in_a_thread()
[-] from run_in_executor
[r-5] from a copy

.. important::

   Each thread of an executor keeps *one* context for all the jobs it
   runs.  A job that sets a context variable through plain
   ``run_in_executor`` leaves the value behind for the next job that lands
   on the same thread, which then logs with a stranger's request id:

>>> from concurrent.futures import ThreadPoolExecutor
>>> def set_id():
...     request_id.set("r-stale")
>>> pool = ThreadPoolExecutor(max_workers=1)
>>> await loop.run_in_executor(pool, set_id)
>>> await loop.run_in_executor(pool, show, "the next job")
[r-stale] from the next job
>>> await run_in_executor_with_context(pool, show, "a copy")
[-] from a copy
>>> pool.shutdown()

:func:`asyncio.to_thread` copies the context, as
:func:`run_in_executor_with_context` does:

>>> async def via_to_thread():  # doctest: +PY39
...     with request_scope("r-6"):
...         await asyncio.to_thread(show, "to_thread")
>>> await via_to_thread()  # doctest: +PY39
[r-6] from to_thread

.. versionadded:: 3.9
   :func:`asyncio.to_thread`.  On 3.8 use :func:`run_in_executor_with_context`
   with ``None`` for the default executor, which is what ``to_thread`` does.

A :class:`threading.Thread` you start yourself begins with an empty context,
like an executor's thread; wrap its target with
``contextvars.copy_context().run`` to hand it the caller's values.

.. versionadded:: 3.14
   :class:`threading.Thread` takes a ``context=`` argument.  Without it, a
   new thread starts with an empty context unless
   :data:`sys.flags.thread_inherit_context <sys.flags>` is set, which is
   the default only on the free-threaded build; then it gets a copy of the
   caller's context.

Running a task in a context you choose
--------------------------------------

.. index::
   single: create_task; context argument
   single: create_task_in_context
   pair: contextvars; Context.run

Sometimes the task should not inherit the current context: a server starts
a handler task for a request it has not "entered" itself, or a scheduler
runs jobs that belong to different tenants.  Build a
:class:`contextvars.Context`, set the variables in it, and start the task
there with :func:`create_task_in_context`:

>>> import contextvars
>>> from recipes.logging_context import create_task_in_context
>>> ctx = contextvars.copy_context()
>>> token = ctx.run(request_id.set, "r-7")
>>> await create_task_in_context(background(), ctx)
[r-7] background work
>>> request_id.get()  # the caller's own context is untouched
'-'

.. versionadded:: 3.11
   The ``context=`` argument of :func:`asyncio.create_task`.  The task then
   runs in *that* context object, so what it sets can be read from the
   object afterwards:

>>> await asyncio.create_task(  # doctest: +PY311
...     child_sets(), context=ctx)
[r-child] inside the child
>>> ctx[request_id]  # doctest: +PY311
'r-child'

On 3.8 to 3.10, :func:`create_task_in_context` starts the task with
``ctx.run(asyncio.create_task, coro)``, so the task runs in a *copy* of
``ctx``.  It reads the same values, but what it sets stays in the copy and
``ctx[request_id]`` would still be ``'r-7'``.  Code that must work on every
version should only read from the context it passes.

Logging a failed task with its request id
-----------------------------------------

.. index::
   single: Task.get_context
   single: log_when_failed
   pair: done callback; context
   single: error messages; Task exception was never retrieved

A fire-and-forget task that fails is easy to lose, and its error should be
logged with the id of the request that started it.  A done callback runs
in the context that was current when it was *added*, which is the wrong one
when a supervisor outside the request adds it.  :func:`log_when_failed`
adds a callback that logs the task's exception (and so retrieves it: no
``Task exception was never retrieved`` at exit) in the task's own context:

>>> from recipes.logging_context import log_when_failed
>>> async def lookup():
...     raise LookupError("no such order")
>>> async def serve():  # doctest: +PY312
...     with request_scope("r-8"):
...         task = asyncio.create_task(lookup(), name="lookup")
...     log_when_failed(task, log)  # outside the request
...     await asyncio.wait([task])
...     return task
>>> task = await serve()  # doctest: +PY312
[r-8] task lookup failed
Traceback (most recent call last):
...
LookupError: no such order
>>> task.get_context()[request_id]  # doctest: +PY312
'r-8'

.. versionadded:: 3.12
   :meth:`asyncio.Task.get_context` returns the context a task runs in,
   which is how :func:`log_when_failed` finds the request id above.

On 3.8 to 3.11 a task does not expose its context, so
:func:`log_when_failed` uses the context that is current when it is
called, and the line above would read ``[-]``.  There, call it inside the
request, or keep the context you started the task in (see
:func:`create_task_in_context`) and pass it; this works on every version:

>>> async def serve():
...     ctx = contextvars.copy_context()
...     ctx.run(request_id.set, "r-9")
...     task = create_task_in_context(lookup(), ctx, name="lookup")
...     log_when_failed(task, log, context=ctx)
...     await asyncio.wait([task])
>>> await serve()
[r-9] task lookup failed
Traceback (most recent call last):
...
LookupError: no such order
>>> log.removeHandler(to_stdout)

Naming tasks for the logs
-------------------------

.. index::
   single: taskName (log record attribute)
   single: TaskNameFilter
   pair: task; name
   single: logAsyncioTasks

A request id says which request; the task's name says which part of it.
Name the tasks you start (``create_task(coro, name=...)``) and show the name
in the format as ``%(taskName)s``; :class:`TaskNameFilter` fills it in on
every Python version:

>>> from recipes.logging_context import TaskNameFilter
>>> named = logging.getLogger("demo.names")
>>> named.setLevel(logging.INFO)
>>> named.propagate = False
>>> by_task = logging.StreamHandler(sys.stdout)
>>> by_task.setFormatter(logging.Formatter("%(taskName)s: %(message)s"))
>>> by_task.addFilter(TaskNameFilter())
>>> named.addHandler(by_task)
>>> async def poll(feed):
...     named.info("polling %s", feed)
>>> await asyncio.gather(
...     asyncio.create_task(poll("prices"), name="poll-prices"),
...     asyncio.create_task(poll("news"), name="poll-news"))
poll-prices: polling prices
poll-news: polling news
[None, None]
>>> await run_in_executor_with_context(None, named.info, "from a thread")
None: from a thread

Code that runs outside any task (a callback, a thread) logs ``None``, as
3.12's own attribute does.  Unnamed tasks are called ``Task-1``,
``Task-2``... in creation order across the whole program, which tells you
little in a log: name the long-lived ones.

.. versionadded:: 3.12
   :class:`logging.LogRecord` has a ``taskName`` attribute of its own, so
   ``%(taskName)s`` works without the filter (which then changes nothing).
   Setting ``logging.logAsyncioTasks = False`` turns it off.

>>> by_task.removeFilter(by_task.filters[0])  # doctest: +PY312
>>> await asyncio.create_task(  # doctest: +PY312
...     poll("weather"), name="poll-weather")
poll-weather: polling weather
>>> named.removeHandler(by_task)

Timing nested work with spans
-----------------------------

.. index::
   single: tracing; spans
   single: Tracer
   pair: span; parent id
   single: timing; nested calls

Where did the 400 milliseconds of a request go?  A *span* records the name,
start and end of one piece of work, and the id of the span it ran inside.
:class:`Tracer` keeps the innermost open span in a context variable, so
spans nest by themselves across ``await``, and tasks started inside a span
(by :func:`asyncio.gather` or a task group) become its children.  It times
spans on the event loop's clock:

>>> from recipes.logging_context import Tracer
>>> tracer = Tracer()
>>> async def fetch(what, seconds):
...     async with tracer.span(f"fetch {what}"):
...         await asyncio.sleep(seconds)
>>> async def handle_order():
...     async with tracer.span("handle order"):
...         await fetch("user", 0.1)
...         await asyncio.gather(fetch("stock", 0.2), fetch("price", 0.3))
>>> await handle_order()
>>> print(tracer.render(digits=1))
handle order 0.4 s
  fetch user 0.1 s
  fetch stock 0.2 s
  fetch price 0.3 s

The two fetches under ``gather`` overlap, so the order took 0.4 s, not 0.6.
Each finished :class:`Span` holds its ids, so you can ship them to a
tracing system or log them:

>>> [(s.name, s.span_id, s.parent_id) for s in tracer.spans]
... # doctest: +NORMALIZE_WHITESPACE
[('fetch user', 2, 1), ('fetch stock', 3, 1), ('fetch price', 4, 1),
 ('handle order', 1, None)]

:meth:`Tracer.traced` does the same as a decorator, and a span that ends
with an exception records its type and lets it through:

>>> tracer = Tracer()
>>> @tracer.traced()
... async def charge(amount):
...     await asyncio.sleep(0.1)
...     raise ValueError(f"card declined for {amount}")
>>> await charge(30)
Traceback (most recent call last):
...
ValueError: card declined for 30
>>> tracer.spans[0].name, tracer.spans[0].error
('charge', 'ValueError')

.. important::

   A span must end in the task that started it, like any ``with`` block
   built on a context variable: resetting the variable from another
   context raises ``ValueError: <Token ...> was created in a different
   Context``.  Do not open a span in one task and close it in a callback
   or another task; start a new span there instead.

Logging from many tasks without blocking the loop
-------------------------------------------------

.. index::
   single: QueueHandler
   single: QueueListener
   pair: logging; blocking the event loop
   single: queue_logging
   single: error messages; --- Logging error ---

Every :mod:`logging` handler writes synchronously: a file handler on a slow
disk, a socket handler to a busy log server or a console piped into a slow
reader holds up the thread that logs, and in an asyncio program that thread
runs every task.  :class:`logging.handlers.QueueHandler` only puts the
record on a queue; a :class:`logging.handlers.QueueListener` thread takes it
from there and calls the real handlers.  :func:`queue_logging` sets up the
pair on a logger and, on exit, stops the listener only after it has handled
every record:

>>> from recipes.logging_context import queue_logging
>>> queued = logging.getLogger("demo.queued")
>>> queued.setLevel(logging.INFO)
>>> queued.propagate = False
>>> console = logging.StreamHandler(sys.stdout)
>>> console.setFormatter(logging.Formatter("[%(request_id)s] %(message)s"))
>>> async def work(n):
...     with request_scope(f"r-{n}"):
...         await asyncio.sleep(0.1 * n)
...         queued.info("step %d", n)
>>> with queue_logging(queued, console, filters=[ContextFilter()]):
...     _ = await asyncio.gather(*(work(n) for n in range(3)))
[r-0] step 0
[r-1] step 1
[r-2] step 2

The ``filters`` go on the queue handler, which runs in the thread and the
context of the code that logs; the queue handler also merges the message
with its arguments right away, so later changes to a mutable argument do
not show up in the line.

The queue does not make logging free.  The loop's thread still merges and
copies each record, and the listener thread formats and writes it while
sharing the interpreter lock with the loop, so for a fast local file the
total cost is about the same.  What the queue removes is the *waiting*: a
handler stuck on a disk, a socket or a full pipe holds up the listener,
not your tasks (``benchmarks/bench_logging_context.py`` measures both
cases).

.. important::

   Filters on the handlers *behind* the listener run in the listener's
   thread, where no request is current: a :class:`ContextFilter` there
   tags every line with ``-``.  Give context filters to the queue handler
   (``filters=`` here), never to the handlers it feeds:

>>> console.addFilter(ContextFilter())
>>> with queue_logging(queued, console):
...     await work(0)
[-] step 0
>>> console.removeFilter(console.filters[0])

The queue is unbounded, so logging never waits.  With a bounded
:class:`queue.Queue` a full queue does not wait either: the queue handler
raises :exc:`queue.Full` inside logging, which prints
``--- Logging error ---`` on standard error and drops the record.  If memory is the concern,
lower the log level instead.

.. versionadded:: 3.12
   :func:`logging.config.dictConfig` can set up a queue handler with its
   listener (``"handlers"`` under a ``QueueHandler`` entry, see
   :ref:`python:configure-queue`); the listener is then the handler's
   ``listener`` attribute.  It is not started for you:

.. script:: dict_config_queue.py
   :requires-python: 3.12

   import asyncio
   import logging
   import logging.config

   from recipes.logging_context import ContextFilter, request_scope

   logging.config.dictConfig({
       "version": 1,
       "filters": {"context": {"()": ContextFilter}},
       "formatters": {"plain": {"format": "[%(request_id)s] %(message)s"}},
       "handlers": {
           "console": {
               "class": "logging.StreamHandler",
               "stream": "ext://sys.stdout",
               "formatter": "plain",
           },
           "queue": {
               "class": "logging.handlers.QueueHandler",
               "handlers": ["console"],
               "filters": ["context"],
           },
       },
       "root": {"level": "INFO", "handlers": ["queue"]},
   })
   listener = logging.getHandlerByName("queue").listener
   listener.start()


   async def main():
       with request_scope("r-42"):
           logging.getLogger("app").info("configured from a dict")


   try:
       asyncio.run(main())
   finally:
       listener.stop()

.. script-output::

   [r-42] configured from a dict

.. versionadded:: 3.14
   A :class:`~logging.handlers.QueueListener` is a context manager that
   starts and stops itself; :func:`queue_logging` does that on every
   version and also adds and removes the queue handler.

Putting it together
-------------------

A small service: logging goes through a queue, every line carries the
request id and the task's name, and each request's spans are logged as
they finish.  Configure logging around :func:`asyncio.run`, so the listener
stops after the loop has closed and every line is written:

.. script:: service.py

   import asyncio
   import logging
   import sys

   from recipes.logging_context import (
       ContextFilter,
       TaskNameFilter,
       Tracer,
       queue_logging,
       request_scope,
   )

   log = logging.getLogger("service")
   log.setLevel(logging.INFO)


   def log_span(span):
       log.info("%s took %.0f ms", span.name, span.duration * 1000)


   tracer = Tracer(on_finish=log_span)


   @tracer.traced("load user")
   async def load_user(user):
       await asyncio.sleep(0.01 * user)
       return f"user {user}"


   async def handle(number):
       with request_scope(f"req-{number}"):
           async with tracer.span("handle"):
               log.info("loaded %s", await load_user(number))


   async def main():
       handlers = [
           asyncio.create_task(handle(n), name=f"handler-{n}") for n in (1, 3)
       ]
       await asyncio.wait_for(asyncio.gather(*handlers), timeout=10)


   console = logging.StreamHandler(sys.stdout)
   console.setFormatter(
       logging.Formatter("%(request_id)s %(taskName)s %(message)s")
   )
   with queue_logging(log, console, filters=[ContextFilter(), TaskNameFilter()]):
       asyncio.run(main())

.. script-output::

   req-1 handler-1 load user took ... ms
   req-1 handler-1 loaded user 1
   req-1 handler-1 handle took ... ms
   req-3 handler-3 load user took ... ms
   req-3 handler-3 loaded user 3
   req-3 handler-3 handle took ... ms

A library does this
-------------------

.. index::
   single: structlog
   single: OpenTelemetry
   pair: logging; libraries

* `structlog <https://www.structlog.org/>`__ does what :func:`request_scope`
  and :class:`ContextFilter` do, in its own ``structlog.contextvars``
  module: ``bind_contextvars()`` or the ``bound_contextvars()`` context
  manager stores key-value pairs in context variables, and the
  ``merge_contextvars`` processor adds them to every event.  Its loggers also
  have ``await log.ainfo(...)`` methods that log from the default thread
  pool, in a copy of the caller's context.  Choose it for structured (JSON,
  key-value) logs across a whole program; it is a new logging API to adopt,
  whereas the recipes keep plain :mod:`logging` calls and format strings.
* `OpenTelemetry <https://opentelemetry.io/docs/languages/python/>`__ does
  what :class:`Tracer` does, and exports the spans: its API keeps the current
  span in a context variable, ``start_as_current_span()`` opens a child of
  it, and the SDK hands finished spans to exporters, which send them to a
  collector or tracing backend that joins spans across services.  The
  opentelemetry-instrumentation-logging package adds the trace and span ids
  to log records.  The SDK times spans with the wall clock
  (:func:`time.time_ns`), not the loop's.  Choose it when spans must leave
  the process; :class:`Tracer` is enough to see where the time went inside
  one program or one test.

See also
--------

* :doc:`/recipes/tasks` – :ref:`recipes/tasks:Running a task in a given
  context`, and keeping fire-and-forget tasks alive.
* :doc:`/recipes/debugging` – :ref:`recipes/debugging:Setting up logging
  for asyncio`, and the loop's exception handler.
* :doc:`/recipes/coroutines` – :ref:`recipes/coroutines:Running blocking
  code off the loop`, with threads and executors.
* :doc:`/recipes/task_groups` – the tasks that become child spans.
* Python: :doc:`python:library/contextvars`,
  :ref:`python:logrecord-attributes`, :ref:`python:queue-handler` and
  :ref:`python:queue-listener`, :ref:`python:configure-queue` (3.12+), and
  in the logging cookbook :ref:`python:blocking-handlers` and
  :ref:`python:context-info`.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import contextvars
import functools
import inspect
import itertools
import logging
import logging.handlers
import queue
import sys
import time
import uuid
from dataclasses import dataclass
from typing import (
    Any,
    Callable,
    Coroutine,
    Deque,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Tuple,
    Type,
    TypeVar,
    Union,
    cast,
)

__all__ = [
    "request_id",
    "request_scope",
    "ContextFilter",
    "run_in_executor_with_context",
    "create_task_in_context",
    "log_when_failed",
    "TaskNameFilter",
    "Tracer",
    "Span",
    "queue_logging",
]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

_logger = logging.getLogger(__name__)

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
"""The id of the request the running code works for; ``"-"`` outside any request.

Set it with :func:`request_scope`; :class:`ContextFilter` copies it onto log
records as ``record.request_id``.
"""

_MAX_ID_LENGTH = 128


def _check_request_id(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"request id must be a str, not {type(value).__name__}")
    if not value or len(value) > _MAX_ID_LENGTH:
        raise ValueError(f"request id must be 1 to {_MAX_ID_LENGTH} characters, got {value!r}")
    if not value.isprintable() or any(char.isspace() for char in value):
        raise ValueError(f"request id must be printable, without spaces: {value!r}")
    return value


@contextlib.contextmanager
def request_scope(value: Optional[str] = None) -> Iterator[str]:
    """Make *value* the :data:`request_id` inside the ``with`` block; yield it.

    Without a value, a new random id (12 hex digits) is made up.  The
    previous id comes back when the block ends, however it ends:

    >>> from recipes.logging_context import request_id, request_scope
    >>> with request_scope("r-1") as rid:
    ...     print(rid, request_id.get())
    r-1 r-1
    >>> request_id.get()
    '-'
    >>> with request_scope() as rid:
    ...     len(rid)
    12

    Ids often come from a request header (``X-Request-ID``), which anyone
    can send.  An id with spaces or control characters would let a client
    forge log lines, so it is refused, as is an empty or very long one:

    >>> with request_scope("abc\\nFAKE LOG LINE"):
    ...     pass
    Traceback (most recent call last):
    ...
    ValueError: request id must be printable, without spaces: 'abc\\nFAKE LOG LINE'

    Scopes nest; the inner id wins until its block ends.  Use the scope in
    one task from start to end: it resets the variable with a token, which
    fails in another context (see :meth:`Tracer.span`).
    """
    rid = uuid.uuid4().hex[:12] if value is None else _check_request_id(value)
    token = request_id.set(rid)
    try:
        yield rid
    finally:
        request_id.reset(token)


# Attributes every LogRecord has (plus those Formatter adds): a context field
# of the same name would silently replace them.
_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class ContextFilter(logging.Filter):
    """A logging filter that copies context variables onto every record.

    *fields* maps record attribute names to context variables; the default
    is ``{"request_id": request_id}``.  A variable without a value (and
    without a default of its own) gives *default*.  An attribute the record
    already has, from ``extra=`` or an earlier filter, is left alone.  The
    filter never drops a record.

    >>> import contextvars
    >>> import logging
    >>> from recipes.logging_context import (
    ...     ContextFilter, request_id, request_scope)
    >>> user = contextvars.ContextVar("user")
    >>> tags = ContextFilter({"request_id": request_id, "user": user})
    >>> record = logging.makeLogRecord({"msg": "hello"})
    >>> with request_scope("r-5"):
    ...     tags.filter(record)
    True
    >>> record.request_id, record.user
    ('r-5', '-')

    A record that already carries the field keeps its value:

    >>> record = logging.makeLogRecord({"msg": "hi", "request_id": "r-0"})
    >>> _ = tags.filter(record)
    >>> record.request_id
    'r-0'

    Names that :class:`logging.LogRecord` uses itself are refused, since the
    filter would overwrite them:

    >>> ContextFilter({"message": user})
    Traceback (most recent call last):
    ...
    ValueError: 'message' is a LogRecord attribute; choose another field name
    """

    def __init__(
        self,
        fields: Optional[Mapping[str, contextvars.ContextVar[Any]]] = None,
        *,
        default: object = "-",
    ) -> None:
        super().__init__()
        chosen = {"request_id": request_id} if fields is None else dict(fields)
        for name, var in chosen.items():
            if not isinstance(name, str) or not name.isidentifier():
                raise ValueError(f"field names must be identifiers, not {name!r}")
            if name in _RESERVED:
                raise ValueError(f"{name!r} is a LogRecord attribute; choose another field name")
            if not isinstance(var, contextvars.ContextVar):
                raise TypeError(f"field {name!r} must be a ContextVar, not {type(var).__name__}")
        self.fields: Tuple[Tuple[str, contextvars.ContextVar[Any]], ...] = tuple(chosen.items())
        self.default = default

    def filter(self, record: logging.LogRecord) -> bool:
        """Add the missing fields to *record*; always True (keep the record)."""
        attributes = record.__dict__
        for name, var in self.fields:
            if name not in attributes:
                try:
                    attributes[name] = var.get()
                except LookupError:
                    attributes[name] = self.default
        return True


async def run_in_executor_with_context(
    executor: Optional[concurrent.futures.Executor],
    func: Callable[..., T],
    /,
    *args: Any,
    **kwargs: Any,
) -> T:
    """``await func(*args, **kwargs)`` in *executor*, in a copy of the caller's context.

    ``loop.run_in_executor()`` runs the function in the worker thread's own
    context, so it sees none of the caller's context variables.  This copies
    them, as :func:`asyncio.to_thread` (3.9+) does, but for any thread pool
    (``None`` means the loop's default executor), and it passes keyword
    arguments too:

    >>> import asyncio
    >>> from recipes.logging_context import (
    ...     request_id, request_scope, run_in_executor_with_context)
    >>> loop = asyncio.get_running_loop()
    >>> with request_scope("r-2"):
    ...     await loop.run_in_executor(None, request_id.get)
    '-'
    >>> with request_scope("r-2"):
    ...     await run_in_executor_with_context(None, request_id.get)
    'r-2'
    >>> await run_in_executor_with_context(None, sorted, [3, 1], reverse=True)
    [3, 1]

    What the function sets stays in its copy: neither the caller nor the
    next job on the same worker thread sees it.  A process pool cannot share
    the context at all; pass the values as arguments instead:

    >>> from concurrent.futures import ProcessPoolExecutor
    >>> pool = ProcessPoolExecutor(max_workers=1)
    >>> await run_in_executor_with_context(pool, print, "hi")
    Traceback (most recent call last):
    ...
    TypeError: context variables cannot cross to a process; pass them as arguments
    >>> pool.shutdown()
    """
    if isinstance(executor, concurrent.futures.ProcessPoolExecutor):
        raise TypeError("context variables cannot cross to a process; pass them as arguments")
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, func, *args, **kwargs)
    return await loop.run_in_executor(executor, call)


def create_task_in_context(
    coro: Coroutine[Any, Any, T],
    context: contextvars.Context,
    *,
    name: Optional[str] = None,
) -> asyncio.Task[T]:
    """Start *coro* as a task that runs in *context* instead of a copy of the current one.

    On Python 3.11+ this is ``asyncio.create_task(coro, context=context)``
    and the task runs in *context* itself; on 3.8–3.10 it is
    ``context.run(asyncio.create_task, coro)``, and the task runs in a copy
    of *context* taken at that moment.  Either way it reads the values set in
    *context*:

    >>> import asyncio
    >>> import contextvars
    >>> from recipes.logging_context import create_task_in_context, request_id
    >>> ctx = contextvars.Context()  # an empty one: no request
    >>> token = ctx.run(request_id.set, "r-3")
    >>> async def which():
    ...     return request_id.get()
    >>> await create_task_in_context(which(), ctx, name="in-r-3")
    'r-3'
    >>> await create_task_in_context(which(), contextvars.Context())
    '-'

    Anything but a :class:`contextvars.Context` is refused, and the
    coroutine is closed so it does not warn that it was never awaited:

    >>> create_task_in_context(which(), {"request_id": "r-4"})
    Traceback (most recent call last):
    ...
    TypeError: context must be a contextvars.Context, not dict
    """
    if not isinstance(context, contextvars.Context):
        if inspect.iscoroutine(coro):
            coro.close()
        raise TypeError(f"context must be a contextvars.Context, not {type(context).__name__}")
    if sys.version_info >= (3, 11):
        return asyncio.create_task(coro, name=name, context=context)
    return context.run(asyncio.create_task, coro, name=name)


def log_when_failed(
    task: asyncio.Task[Any],
    logger: logging.Logger,
    *,
    context: Optional[contextvars.Context] = None,
    level: int = logging.ERROR,
) -> None:
    """Log *task*'s exception with its traceback when it fails, in the task's context.

    The record reads ``task <name> failed``, at *level*.  A cancelled task or
    one that returns is not logged.  The callback runs in *context*; by default in
    the task's own context on Python 3.12+ (:meth:`asyncio.Task.get_context`)
    and in a copy of the current context on older versions, so there call it
    where the task is started or pass the context you started it in.

    >>> import asyncio
    >>> import logging
    >>> import sys
    >>> from recipes.logging_context import log_when_failed
    >>> log = logging.getLogger("demo.failures")
    >>> log.propagate = False
    >>> handler = logging.StreamHandler(sys.stdout)
    >>> handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    >>> log.addHandler(handler)
    >>> async def fails():
    ...     raise KeyError("sku-17")
    >>> async def restock():
    ...     task = asyncio.create_task(fails(), name="restock")
    ...     log_when_failed(task, log, level=logging.WARNING)
    ...     await asyncio.wait([task])
    >>> await restock()
    WARNING task restock failed
    Traceback (most recent call last):
    ...
    KeyError: 'sku-17'

    The exception counts as retrieved, so asyncio does not report it again
    when the task is garbage-collected; awaiting the task still raises it.
    Tasks that succeed or are cancelled log nothing:

    >>> async def nap():
    ...     task = asyncio.create_task(asyncio.sleep(1), name="nap")
    ...     log_when_failed(task, log)
    ...     task.cancel()
    ...     await asyncio.wait([task])
    ...     return task.cancelled()
    >>> await nap()
    True
    >>> log.removeHandler(handler)
    """
    if not isinstance(task, asyncio.Future):
        raise TypeError(f"expected an asyncio.Task, not {type(task).__name__}")

    def report(done: asyncio.Task[Any]) -> None:
        if done.cancelled():
            return
        exc = done.exception()
        if exc is not None:
            logger.log(level, "task %s failed", done.get_name(), exc_info=exc)

    if context is None and sys.version_info >= (3, 12):
        context = task.get_context()
    task.add_done_callback(report, context=context)


class TaskNameFilter(logging.Filter):
    """A logging filter that sets ``record.taskName`` to the current task's name.

    Python 3.12+ sets the attribute itself; this filter gives older versions
    the same ``%(taskName)s`` field, and leaves a name that is already there
    alone.  Outside a task (a callback, another thread) the name is None, as
    on 3.12.

    >>> import asyncio
    >>> import logging
    >>> from recipes.logging_context import TaskNameFilter
    >>> names = TaskNameFilter()
    >>> async def record_from_task():
    ...     record = logging.makeLogRecord({"msg": "hi"})
    ...     names.filter(record)
    ...     return record.taskName
    >>> await asyncio.create_task(record_from_task(), name="mailer")
    'mailer'

    A plain function called by the loop runs in no task:

    >>> loop = asyncio.get_running_loop()
    >>> done = loop.create_future()
    >>> def from_callback():
    ...     record = logging.makeLogRecord({"msg": "hi"})
    ...     names.filter(record)
    ...     done.set_result(record.taskName)
    >>> _ = loop.call_soon(from_callback)
    >>> print(await done)
    None
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Fill in ``record.taskName`` if it is missing or None; always True."""
        if getattr(record, "taskName", None) is None:
            try:
                task = asyncio.current_task()
            except RuntimeError:  # no event loop in this thread
                task = None
            record.__dict__["taskName"] = None if task is None else task.get_name()
        return True


@dataclass(frozen=True)
class Span:
    """One finished piece of timed work, as recorded by :class:`Tracer`.

    Times are in seconds on the tracer's clock (the event loop's by default);
    ``parent_id`` is the ``span_id`` of the span this one ran inside, or None.
    ``error`` is the name of the exception type the span ended with, if any.

    >>> from recipes.logging_context import Span
    >>> span = Span("query", span_id=2, parent_id=1, start=10.0, end=10.25)
    >>> span.duration
    0.25
    >>> span.error is None
    True

    Spans are immutable values: compare them, hash them, keep them in sets.

    >>> span == Span("query", 2, 1, 10.0, 10.25)
    True
    """

    name: str
    span_id: int
    parent_id: Optional[int]
    start: float
    end: float
    error: Optional[str] = None

    @property
    def duration(self) -> float:
        """``end - start``, in seconds."""
        return self.end - self.start


# The open spans of the running code, innermost last, as (tracer, span id):
# one variable for every tracer, so that two tracers can nest without
# mixing up each other's parents.
_open_spans: contextvars.ContextVar[Tuple[Tuple[Tracer, int], ...]] = contextvars.ContextVar(
    "open_spans", default=()
)


class _SpanScope:
    """What :meth:`Tracer.span` returns: a context manager for ``with`` and ``async with``."""

    __slots__ = ("_name", "_parent_id", "_span_id", "_start", "_token", "_tracer")

    def __init__(self, tracer: Tracer, name: str) -> None:
        self._tracer = tracer
        self._name = name
        self._span_id = 0
        self._parent_id: Optional[int] = None
        self._start = 0.0
        self._token: Optional[contextvars.Token[Tuple[Tuple[Tracer, int], ...]]] = None

    def __enter__(self) -> int:
        if self._token is not None:
            raise RuntimeError(f"span {self._name!r} is already open; make a new one")
        tracer = self._tracer
        stack = _open_spans.get()
        self._parent_id = next((sid for owner, sid in reversed(stack) if owner is tracer), None)
        self._span_id = tracer._new_id()
        self._start = tracer.now()
        self._token = _open_spans.set((*stack, (tracer, self._span_id)))
        return self._span_id

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Any,
    ) -> None:
        end = self._tracer.now()
        token, self._token = self._token, None
        assert token is not None, "span exited without being entered"
        _open_spans.reset(token)
        error = None if exc_type is None else exc_type.__name__
        span = Span(self._name, self._span_id, self._parent_id, self._start, end, error)
        self._tracer._finish(span)

    async def __aenter__(self) -> int:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Any,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


class Tracer:
    """Record nested, timed spans; the parent of each span comes from the context.

    Open a span with ``async with tracer.span(name):`` (a plain ``with``
    works too) or decorate a function with :meth:`traced`.  Spans opened
    inside it, in the same task or in tasks started inside it, get its id
    as their ``parent_id``.  Finished spans are kept in :attr:`spans`, the
    newest *max_spans* of them, and passed to ``on_finish(span)`` if given,
    which runs in the span's own context (so its log lines carry the
    request id).

    >>> import asyncio
    >>> from recipes.logging_context import Tracer
    >>> tracer = Tracer()
    >>> async def step(n):
    ...     async with tracer.span(f"step {n}"):
    ...         await asyncio.sleep(0.1 * n)
    >>> async with tracer.span("job"):
    ...     await step(1)
    ...     await step(2)
    >>> print(tracer.render(digits=1))
    job 0.3 s
      step 1 0.1 s
      step 2 0.2 s

    The clock is the running loop's (:meth:`asyncio.loop.time`), or
    :func:`time.monotonic` where no loop runs; pass ``clock=`` to choose.
    ``on_finish`` sees each span as it ends, innermost first:

    >>> ticks = iter(range(100))
    >>> finished = []
    >>> tracer = Tracer(clock=lambda: next(ticks), on_finish=finished.append)
    >>> with tracer.span("outer"):
    ...     with tracer.span("inner"):
    ...         pass
    >>> [(s.name, s.start, s.end, s.parent_id) for s in finished]
    [('inner', 1, 2, 1), ('outer', 0, 3, None)]

    Memory is bounded: only the newest *max_spans* finished spans are kept.

    >>> tracer = Tracer(max_spans=2)
    >>> for n in range(5):
    ...     with tracer.span(f"s{n}"):
    ...         pass
    >>> [s.name for s in tracer.spans]
    ['s3', 's4']
    """

    def __init__(
        self,
        *,
        clock: Optional[Callable[[], float]] = None,
        max_spans: int = 10_000,
        on_finish: Optional[Callable[[Span], object]] = None,
    ) -> None:
        if max_spans < 1:
            raise ValueError(f"max_spans must be at least 1, got {max_spans!r}")
        self._clock = clock
        self._spans: Deque[Span] = collections.deque(maxlen=max_spans)
        self._ids = itertools.count(1)
        self._on_finish = on_finish

    def now(self) -> float:
        """The current time on this tracer's clock, in seconds."""
        if self._clock is not None:
            return self._clock()
        try:
            return asyncio.get_running_loop().time()
        except RuntimeError:
            return time.monotonic()

    def _new_id(self) -> int:
        return next(self._ids)

    def _finish(self, span: Span) -> None:
        self._spans.append(span)
        if self._on_finish is not None:
            try:
                self._on_finish(span)
            except Exception:
                # A broken exporter must not break the traced code.
                _logger.exception("on_finish failed for span %r", span.name)

    def span(self, name: str) -> _SpanScope:
        """A context manager that records the span *name*; entering it gives the span id.

        >>> from recipes.logging_context import Tracer
        >>> tracer = Tracer()
        >>> async with tracer.span("load") as load_id:
        ...     with tracer.span("parse"):
        ...         tracer.current_span_id() == load_id
        False
        >>> [(s.name, s.parent_id) for s in tracer.spans]
        [('parse', 1), ('load', None)]

        End a span in the task (and context) that opened it: the open span
        lives in a context variable, and a variable set in one context cannot
        be reset from another.  The same object cannot be open twice:

        >>> scope = tracer.span("once")
        >>> with scope:
        ...     with scope:
        ...         pass
        Traceback (most recent call last):
        ...
        RuntimeError: span 'once' is already open; make a new one
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"a span needs a non-empty name, got {name!r}")
        return _SpanScope(self, name)

    def traced(self, name: Optional[str] = None) -> Callable[[F], F]:
        """Decorator: run each call of the function in a span (named after it by default).

        Works for coroutine functions and plain functions:

        >>> import asyncio
        >>> from recipes.logging_context import Tracer
        >>> tracer = Tracer()
        >>> @tracer.traced("db query")
        ... async def query(sql):
        ...     await asyncio.sleep(0.2)
        ...     return [("row",)]
        >>> @tracer.traced()
        ... def render(rows):
        ...     return f"{len(rows)} row(s)"
        >>> async with tracer.span("page"):
        ...     render(await query("SELECT 1"))
        '1 row(s)'
        >>> print(tracer.render(digits=1))
        page 0.2 s
          db query 0.2 s
          render 0.0 s

        Write it with parentheses; ``@tracer.traced`` alone is refused:

        >>> @tracer.traced
        ... async def oops():
        ...     pass
        Traceback (most recent call last):
        ...
        TypeError: use @tracer.traced() or @tracer.traced("name"), with parentheses
        """
        if name is not None and not isinstance(name, str):
            raise TypeError('use @tracer.traced() or @tracer.traced("name"), with parentheses')

        def decorate(func: F) -> F:
            span_name: str = name or getattr(func, "__qualname__", None) or repr(func)
            if inspect.iscoroutinefunction(func):

                @functools.wraps(func)
                async def traced_coroutine(*args: Any, **kwargs: Any) -> Any:
                    async with self.span(span_name):
                        return await func(*args, **kwargs)

                return cast(F, traced_coroutine)

            @functools.wraps(func)
            def traced_function(*args: Any, **kwargs: Any) -> Any:
                with self.span(span_name):
                    return func(*args, **kwargs)

            return cast(F, traced_function)

        return decorate

    def current_span_id(self) -> Optional[int]:
        """The id of this tracer's innermost open span in the running code, or None."""
        for owner, span_id in reversed(_open_spans.get()):
            if owner is self:
                return span_id
        return None

    @property
    def spans(self) -> List[Span]:
        """The finished spans that are kept, in the order they finished."""
        return list(self._spans)

    def clear(self) -> None:
        """Forget the finished spans (ids keep counting up)."""
        self._spans.clear()

    def render(self, digits: int = 3) -> str:
        """The finished spans as an indented tree, children in start order.

        Each line reads ``name duration s``, plus ``[ErrorType]`` for a span
        that failed.  A span whose parent is not finished (or was dropped by
        *max_spans*) is shown at the top level.
        """
        kept = {span.span_id for span in self._spans}
        children: Dict[Optional[int], List[Span]] = collections.defaultdict(list)
        for span in self._spans:
            parent = span.parent_id if span.parent_id in kept else None
            children[parent].append(span)
        lines: List[str] = []

        def walk(parent: Optional[int], depth: int) -> None:
            for span in sorted(children.get(parent, ()), key=lambda s: (s.start, s.span_id)):
                error = f" [{span.error}]" if span.error else ""
                lines.append(f"{'  ' * depth}{span.name} {span.duration:.{digits}f} s{error}")
                walk(span.span_id, depth + 1)

        walk(None, 0)
        return "\n".join(lines)


@contextlib.contextmanager
def queue_logging(
    logger: Union[logging.Logger, str],
    *handlers: logging.Handler,
    filters: Iterable[logging.Filter] = (),
    respect_handler_level: bool = True,
) -> Iterator[logging.handlers.QueueHandler]:
    """Send *logger*'s records through a queue to *handlers*, handled in a thread of their own.

    Inside the ``with`` block, the logger (a :class:`logging.Logger` or its
    name) has one more handler, a :class:`~logging.handlers.QueueHandler`
    that only enqueues; a :class:`~logging.handlers.QueueListener` thread
    passes each record on to *handlers*.  *filters* are added to the queue
    handler, so they run where the record is logged: put
    :class:`ContextFilter` and :class:`TaskNameFilter` there.  On exit the
    queue handler is removed and the listener stops after handling every
    record already queued; the handlers themselves are not closed.

    >>> import logging
    >>> import sys
    >>> from recipes.logging_context import queue_logging
    >>> log = logging.getLogger("demo.queue")
    >>> log.propagate = False
    >>> out = logging.StreamHandler(sys.stdout)
    >>> with queue_logging(log, out) as queue_handler:
    ...     for n in range(3):
    ...         log.warning("record %d", n)
    record 0
    record 1
    record 2
    >>> log.handlers
    []

    With ``respect_handler_level=True`` (the default) each handler's own
    level applies, as it would without the queue:

    >>> out.setLevel(logging.ERROR)
    >>> with queue_logging("demo.queue", out):
    ...     log.warning("dropped by the handler's level")
    ...     log.error("passed on")
    passed on

    At least one handler is needed:

    >>> with queue_logging(log):
    ...     pass
    Traceback (most recent call last):
    ...
    ValueError: queue_logging() needs at least one handler to pass the records to

    Stopping waits for the listener thread, which blocks the caller while
    the handlers catch up.  Wrap :func:`asyncio.run` in the ``with`` block
    so that happens after the event loop has finished.
    """
    if isinstance(logger, str):
        logger = logging.getLogger(logger)
    if not isinstance(logger, logging.Logger):
        raise TypeError(f"logger must be a logging.Logger or a name, not {type(logger).__name__}")
    if not handlers:
        raise ValueError("queue_logging() needs at least one handler to pass the records to")
    for handler in handlers:
        if not isinstance(handler, logging.Handler):
            raise TypeError(f"handlers must be logging.Handler objects, not {handler!r}")
    records: queue.SimpleQueue[Any] = queue.SimpleQueue()
    queue_handler = logging.handlers.QueueHandler(records)
    for record_filter in filters:
        queue_handler.addFilter(record_filter)
    listener = logging.handlers.QueueListener(
        records, *handlers, respect_handler_level=respect_handler_level
    )
    listener.start()
    try:
        logger.addHandler(queue_handler)
        try:
            yield queue_handler
        finally:
            logger.removeHandler(queue_handler)
    finally:
        listener.stop()  # enqueues a sentinel; returns once everything before it is handled
        queue_handler.close()
