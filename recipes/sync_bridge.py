"""Most programs are not asynchronous from top to bottom.  A command-line tool,
a Django or Flask view, a GUI callback or a test written with plain functions
may need an async library (aiohttp, asyncpg, an SDK that is async only), and
an asyncio service may need a library that blocks.  This chapter builds the
bridges both ways: an event loop in a background thread (a *portal*) that
synchronous code calls into, a blocking facade over an async client, a queue
with a blocking side for threads and an awaiting side for coroutines, a
bounded pool for blocking calls, and what happens to exceptions, cancellation
and context variables on the way across.

Running an event loop in a background thread
--------------------------------------------

.. index::
   single: portal; event loop in a thread
   single: run_coroutine_threadsafe
   pair: threads; event loop
   single: calling async code from sync code

:func:`asyncio.run` starts a loop, runs one coroutine and closes the loop
again, so everything the coroutine opened (a session, a connection pool) is
gone by the time it returns.  Synchronous code that makes many calls wants
one loop that stays up: start it in a thread of its own and hand it work with
:func:`asyncio.run_coroutine_threadsafe`.  :class:`Portal` does that, with a
start and a stop you can rely on: ``call()`` runs a coroutine function there
and blocks until it returns, ``submit()`` returns a
:class:`concurrent.futures.Future` at once.  (It chains the task to that
future itself, as ``run_coroutine_threadsafe`` does, but with a future made
*before* anything is scheduled, so that a Ctrl-C landing in the middle of
``call()`` still finds the call to cancel.)  A plain program uses it like
this:

.. script:: portal_script.py

   import asyncio
   from concurrent.futures import ThreadPoolExecutor

   from recipes.sync_bridge import Portal


   async def fetch(n):
       await asyncio.sleep(0.05)  # stands for a network call
       return n * 10


   with Portal() as portal:
       print(portal.call(fetch, 1, timeout=5))
       futures = [portal.submit(fetch, n) for n in range(2, 6)]
       print([future.result(timeout=5) for future in futures])
       with ThreadPoolExecutor(8) as threads:  # any thread may call in
           results = threads.map(lambda n: portal.call(fetch, n, timeout=5), range(8))
           print(sum(results))
   print("still running:", portal.running)

.. script-output::

   10
   [20, 30, 40, 50]
   280
   still running: False

The four ``submit()`` calls ran concurrently on the portal's loop, and so did
the eight calls from the thread pool.  Leaving the ``with`` block stops the
loop and joins its thread (see
:ref:`recipes/sync_bridge:Stopping the portal with calls in flight`).

Pass the coroutine *function* and its arguments, not a coroutine: the
coroutine is then created on the portal's thread, and nothing is left
un-awaited if the portal refuses the call.  For keyword arguments, use
:func:`functools.partial`.

In the asyncio REPL, a notebook or any other coroutine, an event loop is
already running in your thread: there, await :meth:`Portal.acall`, which
does not block the thread:

>>> import asyncio
>>> from recipes.sync_bridge import Portal
>>> async def fetch(n):
...     await asyncio.sleep(0.01)
...     return n * 10
>>> with Portal() as portal:
...     print(await portal.acall(fetch, 4))
40

.. index::
   single: deadlock; run_coroutine_threadsafe on the loop's own thread
   single: error messages; Portal.call() blocks, and this thread runs an event loop
   single: error messages; Portal.call() on the portal's own event loop would wait for itself

.. important::

   ``run_coroutine_threadsafe(coro, loop).result()`` called on *loop*'s own
   thread waits for a coroutine that only that thread could run: the program
   hangs without a word.  From a coroutine on *another* loop it does not hang,
   but that loop stops dead until the result comes.  :meth:`Portal.call`
   checks for both and raises instead:

   >>> with Portal() as portal:
   ...     portal.call(fetch, 1)
   Traceback (most recent call last):
   ...
   RuntimeError: Portal.call() blocks, and this thread runs an event loop ...

Calling synchronous code that uses the portal from a coroutine is the same
mistake one level down: run that code in a worker thread
(``await asyncio.to_thread(...)``, or ``loop.run_in_executor`` on 3.8), as
the examples below do.

The :doc:`/recipes/event_loop` chapter has the one-off relative,
:func:`recipes.event_loop.run_in_new_thread`, which starts a loop in a new
thread for a single coroutine; a portal pays for its thread once and keeps
what the coroutines open.

Stopping the portal with calls in flight
----------------------------------------

.. index::
   single: portal; shutdown
   single: PortalClosed
   single: error messages; the portal has been stopped
   pair: threads; joining on shutdown

A background loop that is never stopped leaks a thread, and whatever its
tasks hold stays open.  :meth:`Portal.stop` (called when the ``with`` block
ends) shuts it down the way :func:`asyncio.run` would: it cancels every task
still running on the portal and waits for them (their ``finally`` blocks
run), shuts down async generators and the thread pool used by
``run_in_executor``, closes the loop and joins the thread.  Whoever is still
waiting for one of those calls in ``call()`` or ``acall()`` gets
:exc:`PortalClosed`, a :exc:`RuntimeError`, rather than waiting for ever (a
future from ``submit()`` is cancelled):

>>> import threading
>>> started, cleaned_up = threading.Event(), threading.Event()
>>> async def long_job():
...     started.set()
...     try:
...         await asyncio.sleep(3600)
...     finally:
...         cleaned_up.set()
>>> portal = Portal().start()
>>> job = asyncio.create_task(portal.acall(long_job))
>>> await asyncio.sleep(0)  # let the job start
>>> started.wait(timeout=5)
True
>>> portal.stop()
>>> cleaned_up.is_set()
True
>>> await job
Traceback (most recent call last):
...
recipes.sync_bridge.PortalClosed: the portal has been stopped

A thread blocked in ``portal.call()`` gets the same error.  Calls made
after ``stop()`` fail at once, and ``stop()`` is safe to repeat.  The
thread is marked as a daemon, so a portal somebody forgot to stop does
not keep the interpreter from exiting, but then nothing is cleaned up:
stop it yourself, with ``with`` or :func:`atexit.register`.

.. important::

   ``stop(timeout=...)`` raises :exc:`TimeoutError` if the thread is still
   alive after that long: a task that swallows its cancellation keeps the
   loop busy for ever, as it would keep :func:`asyncio.run` from returning.
   Calling ``stop()`` from a coroutine *on the portal* raises
   :exc:`RuntimeError`: the thread cannot wait for its own end.

Giving synchronous code a blocking client
-----------------------------------------

.. index::
   single: sync facade
   single: SyncFacade
   single: Django; calling async code
   single: Jupyter; portal
   pair: async client; from synchronous code

Your async client (an :class:`aiohttp.ClientSession`, an asyncpg pool, an
async SDK) must be created, used and closed on one event loop, and it is
worth keeping: it holds connections.  :meth:`Portal.facade` creates it on
the portal, enters its ``async with``, and gives synchronous code a
:class:`SyncFacade` whose coroutine methods are plain blocking methods, each
with a timeout.  A script or a Django app keeps one for the life of the
process:

.. script:: sync_client.py

   import asyncio
   import atexit
   import contextlib

   from recipes.sync_bridge import Portal


   class Client:  # stands for an async client library

       async def __aenter__(self):
           print("client opened")
           return self

       async def __aexit__(self, *exc_info):
           print("client closed")

       async def get(self, user):
           await asyncio.sleep(0.01)  # network I/O
           return {"user": user, "visits": len(user)}


   # Once per process (in Django: AppConfig.ready()).
   portal = Portal().start()
   resources = contextlib.ExitStack()
   client = resources.enter_context(portal.facade(Client, timeout=5))
   atexit.register(portal.stop)  # atexit runs these last in, first out
   atexit.register(resources.close)


   def profile_view(user):  # a synchronous view
       data = client.get(user)
       return f"{data['user']}: {data['visits']} visits"


   print(profile_view("ada"))
   print(profile_view("grace"))

.. script-output::

   client opened
   ada: 3 visits
   grace: 5 visits
   client closed

Views of a threaded server call the facade from many threads at once; the
portal runs their calls concurrently on its one loop.  (Django's own
``async_to_sync``, from asgiref, is the framework's answer for a single
call; outside an ASGI server it runs each call on a fresh event loop, which
a client that keeps connections cannot live on.)

In a notebook, cells already run on an event loop, so the facade's blocking
methods raise the error shown above.  Keep the portal (it outlives the cell
that created it, which ``asyncio.run`` in a cell would not) and await
``portal.acall(...)``, or run the synchronous code in a thread, as here:

>>> from recipes.sync_bridge import SyncFacade
>>> class Client:
...     async def get(self, user):
...         await asyncio.sleep(0.01)
...         return user.upper()
>>> def report(portal):  # synchronous code, e.g. a library function
...     client = SyncFacade(portal, Client(), timeout=5)
...     return [client.get("ada"), client.get("grace")]
>>> loop = asyncio.get_running_loop()
>>> with Portal() as portal:
...     print(await loop.run_in_executor(None, report, portal))
['ADA', 'GRACE']
>>> with Portal() as portal:  # doctest: +PY39
...     print(await asyncio.to_thread(report, portal))
['ADA', 'GRACE']

.. versionadded:: 3.9
   :func:`asyncio.to_thread`; ``loop.run_in_executor(None, func, *args)``
   does the same on 3.8 (without copying context variables: see
   :ref:`recipes/sync_bridge:Exceptions, cancellation and context across the bridge`).

Passing items between threads and coroutines
--------------------------------------------

.. index::
   single: BridgeQueue
   single: janus
   pair: queue; between threads and coroutines
   single: call_soon_threadsafe; feeding a queue
   single: error messages; BridgeQueue.get() blocks

:class:`asyncio.Queue` is not thread-safe and :class:`queue.Queue` blocks
the loop, so neither alone connects a thread to a coroutine.  When items
flow only from threads to the loop and need no bound, the stdlib recipe is
one line: the thread hands each item to the loop with
:meth:`~asyncio.loop.call_soon_threadsafe`, and the loop puts it into an
ordinary :class:`asyncio.Queue`:

>>> loop = asyncio.get_running_loop()
>>> inbox = asyncio.Queue()
>>> def sensor():  # runs in a thread
...     for reading in (3, 1, 4):
...         loop.call_soon_threadsafe(inbox.put_nowait, reading)
...     loop.call_soon_threadsafe(inbox.put_nowait, None)  # end marker
>>> reader = loop.run_in_executor(None, sensor)
>>> readings = []
>>> while (reading := await inbox.get()) is not None:
...     readings.append(reading)
>>> await reader
>>> readings
[3, 1, 4]

For a bound (a slow consumer should slow the producer down, not fill the
memory) or for items that flow both ways, use :class:`BridgeQueue`.  Threads
call ``put()`` and ``get()``, which block (with a timeout) like
:class:`queue.Queue`'s; coroutines on the queue's loop await ``aput()`` and
``aget()``, which wait without blocking the loop.  Here a coroutine feeds a
thread through a queue of two slots:

>>> from recipes.sync_bridge import BridgeQueue
>>> jobs = BridgeQueue(maxsize=2)
>>> def worker():  # a thread: adds up numbers until None
...     total = 0
...     while (number := jobs.get(timeout=5)) is not None:
...         total += number
...     return total
>>> total = loop.run_in_executor(None, worker)
>>> for number in range(100):
...     await jobs.aput(number)
>>> await jobs.aput(None)
>>> await total
4950

.. important::

   The blocking side belongs to threads.  ``jobs.get()`` on the loop's
   thread would wait for a producer that cannot run, so it raises
   ``RuntimeError: BridgeQueue.get() blocks, and this thread runs an event
   loop that would stall; ...``; and ``aget()``/``aput()`` work only on the
   loop the queue was created on (pass ``loop=portal.loop`` to make one for
   a portal).

The queue keeps its items in a :class:`queue.Queue`, whose locks wake the
threads, and wakes waiting coroutines through ``call_soon_threadsafe``, only
when one waits: a coroutine that is about to wait looks at the queue again
after it has registered, so a thread that found nobody waiting cannot leave
it asleep.  That is all most programs need.  Reach for the ``janus`` package instead
when code on either side expects the full standard interfaces (a
``queue.Queue`` to hand to a library, ``task_done()``/``join()`` on both
sides), or when you want a maintained queue with ``close()`` and
``wait_closed()`` rather than a recipe to own.

Running blocking calls from a coroutine
---------------------------------------

.. index::
   single: to_thread
   single: run_in_executor
   single: BlockingPool
   single: default executor; exhausted
   pair: blocking calls; limiting
   single: getaddrinfo; slow behind blocking calls

A blocking call (a synchronous database driver, ``requests``, a slow
file system) stops the loop for as long as it takes.  Run it in a worker
thread and await the result: :func:`asyncio.to_thread` on 3.9+, or
``loop.run_in_executor(None, func, *args)`` on every version:

>>> import functools
>>> import time
>>> def slow_square(n, delay=0.01):
...     time.sleep(delay)  # stands for a blocking library call
...     return n * n
>>> await asyncio.to_thread(slow_square, 7, delay=0.02)  # doctest: +PY39
49
>>> await loop.run_in_executor(None, functools.partial(slow_square, 7))
49

Both use the loop's *default executor*, a thread pool shared by everything
on the loop, including :meth:`~asyncio.loop.getaddrinfo`, which asyncio and
aiohttp use to resolve host names.  A hundred slow calls queue up there,
and DNS lookups wait behind them: connections then time out somewhere that
has nothing to do with the cause.  Give each blocking library a pool of its
own, sized for what it can take.  :class:`BlockingPool` is such a pool: at
most *max_workers* calls run at once, the rest wait their turn, context
variables are copied as with ``to_thread``, and leaving ``async with`` joins
its threads without blocking the loop:

>>> from recipes.sync_bridge import BlockingPool
>>> async with BlockingPool(3, name="legacy-db") as pool:
...     squares = await asyncio.gather(
...         *(pool.run(slow_square, n) for n in range(10))
...     )
>>> squares
[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]

.. important::

   A thread cannot be cancelled.  Cancelling ``await pool.run(...)`` or
   ``await asyncio.to_thread(...)`` (a timeout does that) only stops the
   *waiting*; a call that has started runs on to its end.  That is why
   ``async with asyncio.Semaphore(3): await asyncio.to_thread(f)`` is a
   weak limit: each timed-out call frees its permit while its thread still
   runs, and the next call starts a fourth thread.  A pool of three threads
   cannot run a fourth call, whatever happens to the awaits.  Calls that
   have not started are dropped when their await is cancelled.

For CPU-bound Python code, threads do not help (the GIL lets one of them run
at a time); use a :class:`concurrent.futures.ProcessPoolExecutor` with
``loop.run_in_executor`` instead.

Exceptions, cancellation and context across the bridge
------------------------------------------------------

.. index::
   pair: exceptions; across threads
   pair: cancellation; across threads
   pair: contextvars; across threads
   single: concurrent.futures.CancelledError
   single: Future.cancel; cancels the task

**Exceptions** cross unchanged: the exception that ends the coroutine is
raised, as the same object with its own type, by ``portal.call()``,
``future.result()`` and ``await portal.acall()``, and its traceback still
ends in the coroutine's frames, where it was raised.  (A bare
``run_coroutine_threadsafe`` future passes on a *copy* of an
:exc:`asyncio.TimeoutError` on Python 3.11 and 3.12; the type is the same.)  Below, a worker thread
calls the portal and the REPL awaits the thread, so the error crosses two
bridges:

>>> async def lookup(key):
...     raise KeyError(key)
>>> with Portal() as portal:
...     await loop.run_in_executor(None, portal.call, lookup, "nope")
Traceback (most recent call last):
...
KeyError: 'nope'

**Cancellation** crosses too.  Cancelling the
:class:`concurrent.futures.Future` that ``submit()`` returned cancels the
task on the portal (the future reports it at once; the task's cleanup runs
on the portal right after).  ``call(..., timeout=...)`` does that when the
time is up, then raises :exc:`TimeoutError`, and an interrupt (Ctrl-C)
in the waiting thread cancels the call too:

>>> def impatient(portal):  # synchronous code with a deadline
...     try:
...         portal.call(long_job, timeout=0.1)
...     except TimeoutError as exc:
...         return exc
>>> cleaned_up.clear()
>>> with Portal() as portal:
...     print(await loop.run_in_executor(None, impatient, portal))
...     print("cleaned up:", cleaned_up.wait(timeout=5))
long_job() did not finish within 0.1 s; it was cancelled
cleaned up: True

In the other direction, a coroutine on the portal that is cancelled there
(it cancels itself, or something on the portal cancels its task) ends the
caller's wait with :exc:`concurrent.futures.CancelledError`.  That is not
:exc:`asyncio.CancelledError`: in synchronous code it is an ordinary
:exc:`Exception`.

.. important::

   A :exc:`TimeoutError` raised *by* the coroutine reaches the caller as
   that same exception, so ``except TimeoutError`` cannot tell it from the
   deadline of ``call()``.  On Python 3.11+ the two also share a class with
   :exc:`concurrent.futures.TimeoutError` and :exc:`asyncio.TimeoutError`.
   Where it matters, check the message, or have the coroutine raise its own
   exception type.

**Context variables** (:mod:`contextvars`) follow the call, as a copy:
``run_coroutine_threadsafe`` (and the portal) start the task from a
callback scheduled with ``call_soon_threadsafe``, which runs in a copy of
the *calling* thread's context, and the task copies it again.  So a
request ID set by a view is visible to the coroutine it calls, and what
the coroutine sets stays on the portal:

>>> import contextvars
>>> request_id = contextvars.ContextVar("request_id", default="-")
>>> async def current_request():
...     request_id.set("changed on the portal")
...     return request_id.get()
>>> def view(portal):
...     request_id.set("req-42")
...     return portal.call(current_request), request_id.get()
>>> with Portal() as portal:
...     print(await loop.run_in_executor(
...         None, contextvars.copy_context().run, view, portal
...     ))
('changed on the portal', 'req-42')

The gap is at thread boundaries you start yourself: a new
:class:`threading.Thread` starts with an empty context (on Python 3.14,
``Thread(context=...)`` chooses), and ``loop.run_in_executor`` runs the
function in the pool thread's own context, not yours, so values set there
linger for the next call that the thread runs.  Wrap the function in
``contextvars.copy_context().run``, as above, or use ``to_thread`` or
:class:`BlockingPool`, which do it for you:

>>> user = contextvars.ContextVar("user", default="nobody")
>>> async def seen_by_threads():
...     user.set("ada")
...     copied = contextvars.copy_context()
...     return [
...         await loop.run_in_executor(None, user.get),
...         await loop.run_in_executor(None, copied.run, user.get),
...     ]
>>> await seen_by_threads()
['nobody', 'ada']
>>> async def seen_by_to_thread():
...     user.set("ada")
...     return await asyncio.to_thread(user.get)
>>> await seen_by_to_thread()  # doctest: +PY39
'ada'

A library does this
-------------------

.. index::
   single: anyio; BlockingPortal
   pair: anyio; comparison
   single: anyio; to_thread
   pair: janus; comparison

* `anyio <https://anyio.readthedocs.io/>`__'s
  ``from_thread.start_blocking_portal()`` runs a loop (asyncio or Trio) in a
  new thread and yields a ``BlockingPortal``, the counterpart of
  :class:`Portal`: ``call()`` blocks for the result and refuses the loop's
  own thread, ``start_task_soon()`` returns a
  :class:`concurrent.futures.Future`, and ``wrap_async_context_manager()``
  opens and closes an async client from a ``with`` block (its methods are
  then called through ``call()``, with no :class:`SyncFacade`).  ``call()``
  has no timeout, and leaving the block lets running tasks finish (cancelling
  them only if the block raised), where :meth:`Portal.stop` cancels them.
* anyio's ``to_thread.run_sync(func, *args, limiter=...)`` with a
  ``CapacityLimiter`` per blocking library does what :class:`BlockingPool`
  does (by default every call shares one limiter of 40 threads).  Cancelled,
  it waits for the thread to finish unless you pass
  ``abandon_on_cancel=True``; the recipe stops waiting at once.  Threads it
  starts can call back into the loop with ``from_thread.run()``.  Current
  releases need Python 3.10+.  Choose anyio when the code must also run on
  Trio or already uses anyio; copy the recipes for a timeout on every call,
  blocking facades, older Pythons or no dependency.
* `janus <https://github.com/aio-libs/janus>`__ is a queue with two faces:
  ``queue.sync_q`` has the methods of :class:`queue.Queue` (it is not a
  subclass) and ``queue.async_q`` those of :class:`asyncio.Queue`, with
  ``task_done()`` and ``join()`` on both sides, ``shutdown()`` as in Python
  3.13, ``close()`` and ``wait_closed()``, and priority and LIFO variants.
  It does not stop a blocking ``sync_q.get()`` on the loop's thread, which
  :class:`BridgeQueue` refuses with an error.  Needs Python 3.9+.  Choose it
  for the full queue interfaces on both sides; :class:`BridgeQueue` for
  Python 3.8, that guard, or no dependency.

See also
--------

* :doc:`/recipes/event_loop` – :ref:`recipes/event_loop:Crossing threads:
  run_in_executor and call_soon_threadsafe` and
  :ref:`recipes/event_loop:Calling asyncio.run from a running loop
  (notebooks, the asyncio REPL)`.
* :ref:`recipes/coroutines:Running blocking code off the loop` – the short
  version for a single blocking call, and what the GIL means for it.
* :doc:`/recipes/queues` – queues between coroutines, and stopping their
  consumers.
* :ref:`recipes/parallelism:Running one event loop per thread` – a smaller
  loop thread, :class:`recipes.parallelism.EventLoopThread`, for a component
  that only needs a loop of its own.
* :doc:`/recipes/cancellation` and :doc:`/recipes/timeouts` – what a
  cancelled coroutine must do, which the portal relies on at shutdown.
* Python: :ref:`python:asyncio-multithreading` and
  :ref:`python:asyncio-handle-blocking`,
  :func:`asyncio.run_coroutine_threadsafe`, :func:`asyncio.to_thread`,
  :meth:`asyncio.loop.call_soon_threadsafe`,
  :meth:`concurrent.futures.Future.cancel`, :doc:`python:library/contextvars`.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextvars
import functools
import inspect
import queue
import threading
from types import TracebackType
from typing import (
    Any,
    AsyncContextManager,
    Awaitable,
    Callable,
    Deque,
    Generic,
    Optional,
    Set,
    Type,
    TypeVar,
)

__all__ = [
    "Portal",
    "PortalClosed",
    "SyncFacade",
    "BridgeQueue",
    "BlockingPool",
]

T = TypeVar("T")

_NEW, _STARTING, _RUNNING, _STOPPING, _CLOSED = "new", "starting", "running", "stopping", "closed"


class PortalClosed(RuntimeError):
    """The portal is not running, or was stopped while the call was in flight.

    A call made before :meth:`Portal.start` or after :meth:`Portal.stop`
    fails at once, before anything is scheduled:

    >>> from recipes.sync_bridge import Portal, PortalClosed
    >>> async def ping():
    ...     return "pong"
    >>> portal = Portal()
    >>> portal.submit(ping)
    Traceback (most recent call last):
    ...
    recipes.sync_bridge.PortalClosed: the portal is not running; start() it ...

    It is a :exc:`RuntimeError`, so code that already treats "the loop is
    gone" as a runtime error keeps working:

    >>> with portal:
    ...     pass
    >>> try:
    ...     portal.submit(ping)
    ... except RuntimeError as exc:
    ...     print(type(exc).__name__, "-", exc)
    PortalClosed - the portal has been stopped
    """


def _running_loop() -> Optional[asyncio.AbstractEventLoop]:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class Portal:
    """An event loop running in a background thread, for synchronous code to call into.

    Synchronous code calls :meth:`call`, which runs a coroutine function on
    the portal's loop and blocks until it returns.  Coroutines on another
    event loop (the asyncio REPL, a notebook, another thread's loop) await
    :meth:`acall` instead:

    >>> import asyncio
    >>> from recipes.sync_bridge import Portal
    >>> async def add(a, b):
    ...     await asyncio.sleep(0.01)
    ...     return a + b
    >>> with Portal() as portal:
    ...     print(await portal.acall(add, 2, 3))
    5

    :meth:`submit` schedules the call and returns a
    :class:`concurrent.futures.Future` without waiting, so one thread can
    start many calls that run concurrently on the portal:

    >>> with Portal() as portal:
    ...     futures = [portal.submit(add, n, n) for n in range(4)]
    ...     print([future.result(timeout=5) for future in futures])
    [0, 2, 4, 6]

    :meth:`call` blocks its thread, so it refuses to run in a thread that
    runs an event loop (that loop would stall; on the portal's own loop it
    would wait for itself for ever):

    >>> with Portal() as portal:
    ...     portal.call(add, 1, 1)
    Traceback (most recent call last):
    ...
    RuntimeError: Portal.call() blocks, and this thread runs an event loop ...

    *name* names the thread; *loop_factory* makes the loop (default
    :func:`asyncio.new_event_loop`; ``uvloop.new_event_loop`` works too).
    A portal is started once: after :meth:`stop`, make a new one.
    """

    def __init__(
        self,
        *,
        name: str = "asyncio-portal",
        loop_factory: Optional[Callable[[], asyncio.AbstractEventLoop]] = None,
    ) -> None:
        self._name = name
        self._loop_factory = loop_factory or asyncio.new_event_loop
        self._lock = threading.Lock()
        self._state = _NEW
        self._started = threading.Event()
        self._startup_error: Optional[BaseException] = None
        self._thread: Optional[threading.Thread] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._stop_requested: Optional[asyncio.Future[None]] = None

    def __repr__(self) -> str:
        return f"<Portal {self._name!r} {self._state}>"

    # --- lifecycle -------------------------------------------------------

    def start(self) -> Portal:
        """Start the thread and its event loop; return the portal once the loop accepts calls."""
        with self._lock:
            if self._state != _NEW:
                raise RuntimeError(f"a Portal is started once; this one is {self._state}")
            self._state = _STARTING
        thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread = thread
        thread.start()
        self._started.wait()
        if self._startup_error is not None:
            thread.join()
            raise self._startup_error
        return self

    def stop(self, timeout: Optional[float] = None) -> None:
        """Cancel every task on the portal, wait for them, close the loop and join the thread.

        Callers still blocked in :meth:`call` or awaiting :meth:`acall` get
        :exc:`PortalClosed`.  Calling ``stop()`` again, or on a portal never
        started, does nothing.  With *timeout*, raise :exc:`TimeoutError` if the
        thread is still running after that many seconds (a task that ignores
        cancellation keeps it alive).
        """
        with self._lock:
            thread = self._thread
            if thread is threading.current_thread():
                raise RuntimeError(
                    "Portal.stop() called on the portal's own thread would wait for "
                    "itself; call it from the thread that started the portal"
                )
            if self._state == _NEW:
                self._state = _CLOSED
                return
            if self._state == _RUNNING:
                self._state = _STOPPING
                assert self._loop is not None and self._stop_requested is not None
                self._loop.call_soon_threadsafe(_set_result_once, self._stop_requested)
        if thread is None:
            return
        thread.join(timeout)
        if thread.is_alive():
            raise TimeoutError(
                f"the portal's thread {self._name!r} has not stopped within {timeout} s: "
                "is a task ignoring cancellation?"
            )

    def __enter__(self) -> Portal:
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.stop()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The portal's event loop (only while the portal runs)."""
        if self._state != _RUNNING or self._loop is None:
            raise self._closed_error()
        return self._loop

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._state == _RUNNING

    def _run(self) -> None:
        """The portal's thread: run the loop until stop(), then clean up like asyncio.run()."""
        try:
            loop = self._loop_factory()
        except BaseException as exc:  # handed to start(), which raises it
            self._startup_error = exc
            with self._lock:
                self._state = _CLOSED
            self._started.set()
            return
        # A default executor of our own, so that its threads are joined before the
        # loop closes on every Python (3.8 has no shutdown_default_executor()).
        executor = concurrent.futures.ThreadPoolExecutor(thread_name_prefix=f"{self._name}-worker")
        loop.set_default_executor(executor)
        self._loop = loop
        self._stop_requested = loop.create_future()
        with self._lock:
            self._state = _RUNNING
        self._started.set()
        try:
            try:
                loop.run_until_complete(self._stop_requested)
            except BaseException:
                # A task raised SystemExit or KeyboardInterrupt, which asyncio lets
                # out of the loop; the call that raised it gets it from its future.
                # Like asyncio.run(), the portal ends: the others are cancelled below.
                pass
            with self._lock:
                if self._state == _RUNNING:
                    self._state = _STOPPING
            while True:
                try:
                    loop.run_until_complete(self._cancel_everything())
                except BaseException:  # another one, raised while cancelling
                    continue
                break
        finally:
            try:
                executor.shutdown(wait=True)
            finally:
                with self._lock:
                    self._state = _CLOSED
                loop.close()

    async def _cancel_everything(self) -> None:
        me = asyncio.current_task()
        # Tasks may start new tasks while they are cancelled: repeat until none is left.
        while True:
            tasks = [task for task in asyncio.all_tasks() if task is not me]
            if not tasks:
                break
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.get_running_loop().shutdown_asyncgens()

    def _closed_error(self) -> PortalClosed:
        if self._state in (_NEW, _STARTING):
            return PortalClosed("the portal is not running; start() it or use it in a with block")
        return PortalClosed("the portal has been stopped")

    # --- calls -----------------------------------------------------------

    def submit(
        self, func: Callable[..., Awaitable[T]], *args: Any
    ) -> concurrent.futures.Future[T]:
        """Schedule ``func(*args)`` on the portal; return a :class:`concurrent.futures.Future`.

        Never blocks, so it may be called from any thread, a coroutine
        included.  ``future.result(timeout)`` waits for the outcome;
        ``future.cancel()`` cancels the task on the portal.  The coroutine is
        created on the portal's loop and runs in a copy of the caller's
        context variables.
        """
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._schedule(func, args, future)
        return future

    def _schedule(
        self,
        func: Callable[..., Awaitable[T]],
        args: Any,
        future: concurrent.futures.Future[T],
    ) -> None:
        """What asyncio.run_coroutine_threadsafe() does, with a future made by the caller.

        call() creates the future before anything is scheduled, so that an
        interrupt landing anywhere in here still finds a future to cancel.
        """
        if inspect.iscoroutine(func):
            func.close()  # it will never run: close it, or it warns "never awaited"
            raise TypeError(
                "Portal needs a coroutine function and its arguments, not a coroutine: "
                "pass call(fetch, url), not call(fetch(url))"
            )
        if not callable(func):
            raise TypeError(f"Portal needs a coroutine function, got {func!r}")
        with self._lock:
            if self._state != _RUNNING:
                raise self._closed_error()
            assert self._loop is not None
            # Scheduled under the lock: stop() cannot slip in between, so the loop
            # is still open when the task is created, and stop() will cancel it.
            # call_soon_threadsafe() runs _start() in a copy of this thread's context.
            self._loop.call_soon_threadsafe(self._start, func, args, future)

    def _start(
        self,
        func: Callable[..., Awaitable[T]],
        args: Any,
        future: concurrent.futures.Future[T],
    ) -> None:
        """On the portal's thread: run the call as a task, chained to *future* both ways."""
        if future.cancelled():  # cancelled before it could start: nothing to run
            return
        loop = asyncio.get_running_loop()
        task = loop.create_task(_invoke(func, args))

        def cancel_task(done: concurrent.futures.Future[T]) -> None:  # any thread
            if done.cancelled():
                try:
                    loop.call_soon_threadsafe(task.cancel)
                except RuntimeError:  # the loop has closed: the task is long gone
                    pass

        def report(done: asyncio.Task[T]) -> None:  # the portal's thread
            if done.cancelled():
                future.cancel()
            elif not future.set_running_or_notify_cancel():
                return  # the caller cancelled it in the meantime
            elif done.exception() is not None:
                future.set_exception(done.exception())
            else:
                future.set_result(done.result())

        future.add_done_callback(cancel_task)
        task.add_done_callback(report)

    def call(
        self,
        func: Callable[..., Awaitable[T]],
        *args: Any,
        timeout: Optional[float] = None,
    ) -> T:
        """Run ``func(*args)`` on the portal and block until it returns; return its result.

        The coroutine's exception is raised here, with its own type.  After
        *timeout* seconds the coroutine is cancelled and :exc:`TimeoutError`
        raised; an interrupt in the caller (:exc:`KeyboardInterrupt`) cancels
        it too.  If the portal is stopped meanwhile, :exc:`PortalClosed`.
        """
        self._refuse_to_block("Portal.call()")
        name = _name_of(func)
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        # One try block from before the call is scheduled: an interrupt that lands
        # anywhere in _schedule() must cancel the call too.
        try:
            self._schedule(func, args, future)
            return future.result(timeout)
        except concurrent.futures.CancelledError:
            if self._state != _RUNNING:
                raise self._closed_error() from None
            raise
        except BaseException as exc:
            if future.done():
                raise  # the coroutine's own exception (even a TimeoutError of its own)
            # We stopped waiting (the timeout, KeyboardInterrupt in this thread), or
            # _schedule() refused the call (then nothing runs, and cancel() is harmless).
            if not future.cancel():  # it finished in the meantime: use its outcome
                return future.result()
            if isinstance(exc, concurrent.futures.TimeoutError):
                raise TimeoutError(
                    f"{name}() did not finish within {timeout} s; it was cancelled"
                ) from None
            raise

    def _refuse_to_block(self, what: str) -> None:
        running = _running_loop()
        if running is None:
            return
        if running is self._loop:
            raise RuntimeError(
                f"{what} on the portal's own event loop would wait for itself for ever; "
                "await the coroutine function directly"
            )
        raise RuntimeError(
            f"{what} blocks, and this thread runs an event loop that would stall; "
            "use 'await portal.acall(...)' or call it from a worker thread"
        )

    async def acall(self, func: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``func(*args)`` on the portal and await it from another event loop.

        Cancelling the ``await`` (``asyncio.wait_for``, ``asyncio.timeout``)
        cancels the task on the portal.  If the portal is stopped meanwhile,
        :exc:`PortalClosed`.
        """
        loop = asyncio.get_running_loop()
        if loop is self._loop:
            raise RuntimeError(
                "Portal.acall() on the portal's own event loop: await the coroutine directly"
            )
        future = self.submit(func, *args)
        waiter: asyncio.Future[T] = loop.create_future()

        def relay(done: concurrent.futures.Future[T]) -> None:  # on the portal's thread
            try:
                loop.call_soon_threadsafe(self._copy_outcome, done, waiter)
            except RuntimeError:  # the caller's loop has closed: nobody is waiting
                pass

        future.add_done_callback(relay)
        try:
            return await waiter
        except asyncio.CancelledError:
            future.cancel()
            raise

    def _copy_outcome(self, done: concurrent.futures.Future[T], waiter: asyncio.Future[T]) -> None:
        if waiter.done():
            return
        if done.cancelled():
            if self._state != _RUNNING:
                waiter.set_exception(self._closed_error())
            else:
                waiter.cancel()
            return
        error = done.exception()
        if error is not None:
            waiter.set_exception(error)
        else:
            waiter.set_result(done.result())

    # --- synchronous facades --------------------------------------------

    def facade(
        self,
        factory: Callable[..., AsyncContextManager[T]],
        *args: Any,
        timeout: Optional[float] = None,
    ) -> _FacadeContext[T]:
        """Enter ``factory(*args)`` on the portal; the ``with`` block gets a :class:`SyncFacade`.

        The async context manager (an ``aiohttp.ClientSession``, a connection
        pool, your client class) is created, entered and exited on the
        portal's loop, so it belongs to that loop for its whole life.  Every
        coroutine method of what it returns becomes a blocking method, with
        *timeout* per call.  See :class:`SyncFacade` for examples.
        """
        return _FacadeContext(self, factory, args, timeout)


async def _invoke(func: Callable[..., Awaitable[T]], args: Any) -> T:
    return await func(*args)


def _set_result_once(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _name_of(func: Callable[..., Any]) -> str:
    while isinstance(func, functools.partial):
        func = func.func
    return str(getattr(func, "__qualname__", None) or repr(func))


def _is_async_callable(obj: Any) -> bool:
    while isinstance(obj, functools.partial):
        obj = obj.func
    return inspect.iscoroutinefunction(obj)


class SyncFacade(Generic[T]):
    """Blocking versions of an async object's coroutine methods, run on a :class:`Portal`.

    Synchronous code (a script, a Django view, a thread of a GUI) keeps one
    async client alive on the portal and calls its methods as plain
    functions.  :meth:`Portal.facade` creates the client there and gives the
    ``with`` block its facade; here a tiny client stands in for a real one:

    >>> import asyncio
    >>> from recipes.sync_bridge import Portal
    >>> class Client:
    ...     async def __aenter__(self):
    ...         self.calls = 0
    ...         return self
    ...     async def __aexit__(self, *exc_info):
    ...         print("client closed after", self.calls, "calls")
    ...     async def get(self, key):
    ...         await asyncio.sleep(0.01)  # stands for network I/O
    ...         self.calls += 1
    ...         return key.upper()
    >>> def sync_code(portal):  # what a script or a view does
    ...     with portal.facade(Client, timeout=5) as client:
    ...         return [client.get("a"), client.get("b")]
    >>> loop = asyncio.get_running_loop()
    >>> with Portal() as portal:
    ...     print(await loop.run_in_executor(None, sync_code, portal))
    client closed after 2 calls
    ['A', 'B']

    (The REPL runs an event loop, so the synchronous code runs in a worker
    thread here, with ``run_in_executor``; in a script it is called
    directly.)  Attributes that are not coroutine functions are returned as
    they are: read data attributes, but do not call the object's synchronous
    methods from another thread if they touch its event loop.  A facade can
    also wrap an object that already lives on the portal:

    >>> from recipes.sync_bridge import SyncFacade
    >>> async def make_client():
    ...     return await Client().__aenter__()
    >>> def count_calls(portal):
    ...     client = SyncFacade(portal, portal.call(make_client))
    ...     client.get("x")
    ...     return client.calls
    >>> with Portal() as portal:
    ...     print(await loop.run_in_executor(None, count_calls, portal))
    1
    """

    def __init__(self, portal: Portal, target: T, *, timeout: Optional[float] = None) -> None:
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds or None, got {timeout!r}")
        self._portal = portal
        self._target = target
        self._timeout = timeout

    @property
    def target(self) -> T:
        """The wrapped async object (use it only on the portal's loop)."""
        return self._target

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if not _is_async_callable(attribute):
            return attribute
        portal, timeout = self._portal, self._timeout

        @functools.wraps(attribute)
        def blocking(*args: Any, **kwargs: Any) -> Any:
            return portal.call(functools.partial(attribute, *args, **kwargs), timeout=timeout)

        return blocking

    def __repr__(self) -> str:
        return f"<SyncFacade of {self._target!r}>"


class _FacadeContext(Generic[T]):
    """What :meth:`Portal.facade` returns: enters and exits the client on the portal."""

    def __init__(
        self,
        portal: Portal,
        factory: Callable[..., AsyncContextManager[T]],
        args: Any,
        timeout: Optional[float],
    ) -> None:
        if not callable(factory):
            raise TypeError(
                f"Portal.facade() needs a factory of async context managers, got {factory!r}"
            )
        self._portal = portal
        self._factory = factory
        self._args = args
        self._timeout = timeout
        self._manager: Optional[AsyncContextManager[T]] = None

    def __enter__(self) -> SyncFacade[T]:
        async def enter() -> T:
            manager = self._factory(*self._args)
            if not hasattr(manager, "__aenter__") or not hasattr(manager, "__aexit__"):
                raise TypeError(
                    f"Portal.facade() needs an async context manager, got {manager!r} "
                    f"from {_name_of(self._factory)}()"
                )
            value = await manager.__aenter__()
            self._manager = manager
            return value

        value = self._portal.call(enter, timeout=self._timeout)
        return SyncFacade(self._portal, value, timeout=self._timeout)

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> Optional[bool]:
        manager, self._manager = self._manager, None
        assert manager is not None
        return self._portal.call(manager.__aexit__, exc_type, exc, tb, timeout=self._timeout)


class BridgeQueue(Generic[T]):
    """A FIFO queue with a blocking side for threads and an awaiting side for one event loop.

    Create it on its loop (or pass ``loop=``).  Threads call :meth:`put` and
    :meth:`get`, which block like :class:`queue.Queue`'s and take a
    *timeout*; coroutines on the loop await :meth:`aput` and :meth:`aget`.
    Here a thread produces and a coroutine consumes:

    >>> import asyncio
    >>> from recipes.sync_bridge import BridgeQueue
    >>> loop = asyncio.get_running_loop()
    >>> lines = BridgeQueue(maxsize=10)
    >>> def read_file():  # a thread doing blocking reads
    ...     for line in ["alpha", "beta", "gamma"]:
    ...         lines.put(line, timeout=5)
    ...     lines.put(None, timeout=5)
    >>> reading = loop.run_in_executor(None, read_file)
    >>> while (line := await lines.aget()) is not None:
    ...     print(line)
    alpha
    beta
    gamma
    >>> await reading

    With *maxsize*, a full queue makes :meth:`put` wait (or raise
    :exc:`queue.Full` after *timeout*) and :meth:`aput` wait without
    blocking the loop.  ``put_nowait()`` and ``get_nowait()`` never wait and
    work from either side:

    >>> small = BridgeQueue(maxsize=1)
    >>> small.put_nowait("x")
    >>> small.put_nowait("y")
    Traceback (most recent call last):
    ...
    queue.Full
    >>> small.get_nowait()
    'x'

    The blocking methods refuse to run on a thread that runs an event loop,
    where they would wait for ever:

    >>> small.get(timeout=1)
    Traceback (most recent call last):
    ...
    RuntimeError: BridgeQueue.get() blocks, and this thread runs an event ...

    There is no ``task_done()``/``join()`` and no ``close()``: send an end
    marker (``None`` above), one per consumer.  Sizes are approximate while
    other threads use the queue, as for :class:`queue.Queue`.
    """

    def __init__(self, maxsize: int = 0, *, loop: Optional[asyncio.AbstractEventLoop] = None):
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 0:
            raise ValueError(f"maxsize must be an int >= 0 (0 means unbounded), got {maxsize!r}")
        if loop is None:
            loop = _running_loop()
            if loop is None:
                raise RuntimeError(
                    "BridgeQueue() binds to an event loop: create it in a coroutine, "
                    "or pass loop= (e.g. portal.loop)"
                )
        self._loop = loop
        self._items: queue.Queue[T] = queue.Queue(maxsize)
        # Futures of coroutines waiting in aget()/aput(); touched only on the loop's thread.
        self._getters: Deque[asyncio.Future[None]] = collections.deque()
        self._putters: Deque[asyncio.Future[None]] = collections.deque()

    @property
    def maxsize(self) -> int:
        """The bound given to the constructor (0: unbounded)."""
        return self._items.maxsize

    def qsize(self) -> int:
        """Number of items waiting (approximate while other threads use the queue)."""
        return self._items.qsize()

    def empty(self) -> bool:
        """True if no item is waiting (approximate, as :meth:`qsize`)."""
        return self._items.empty()

    def full(self) -> bool:
        """True if ``maxsize`` items are waiting (approximate, as :meth:`qsize`)."""
        return self._items.full()

    # --- threads ---------------------------------------------------------

    def put(self, item: T, timeout: Optional[float] = None) -> None:
        """From a thread: put *item*, waiting for room; :exc:`queue.Full` after *timeout*."""
        self._refuse_to_block("BridgeQueue.put()", "await queue.aput(item)")
        self._items.put(item, timeout=timeout)
        self._notify(self._getters)

    def get(self, timeout: Optional[float] = None) -> T:
        """From a thread: take the next item, waiting; :exc:`queue.Empty` after *timeout*."""
        self._refuse_to_block("BridgeQueue.get()", "await queue.aget()")
        item = self._items.get(timeout=timeout)
        self._notify(self._putters)
        return item

    def put_nowait(self, item: T) -> None:
        """From any thread or coroutine: put *item* or raise :exc:`queue.Full`."""
        self._items.put_nowait(item)
        self._notify(self._getters)

    def get_nowait(self) -> T:
        """From any thread or coroutine: take an item or raise :exc:`queue.Empty`."""
        item = self._items.get_nowait()
        self._notify(self._putters)
        return item

    # --- coroutines on the queue's loop -----------------------------------

    async def aput(self, item: T) -> None:
        """On the queue's loop: put *item*, waiting (without blocking the loop) for room."""
        self._check_loop("aput")
        while True:
            try:
                self._items.put_nowait(item)
            except queue.Full:
                await self._wait(self._putters, self._items.full)
            else:
                break
        self._wake(self._getters)

    async def aget(self) -> T:
        """On the queue's loop: take the next item, waiting (without blocking the loop)."""
        self._check_loop("aget")
        while True:
            try:
                item = self._items.get_nowait()
            except queue.Empty:
                await self._wait(self._getters, self._items.empty)
            else:
                break
        self._wake(self._putters)
        return item

    # --- plumbing --------------------------------------------------------

    def _refuse_to_block(self, what: str, instead: str) -> None:
        if _running_loop() is not None:
            raise RuntimeError(
                f"{what} blocks, and this thread runs an event loop that would stall; "
                f"in a coroutine use '{instead}'"
            )

    def _check_loop(self, what: str) -> None:
        if _running_loop() is not self._loop:
            raise RuntimeError(
                f"BridgeQueue.{what}() must run on the loop the queue belongs to; "
                "other threads use put() and get()"
            )

    async def _wait(
        self, waiters: Deque[asyncio.Future[None]], blocked: Callable[[], bool]
    ) -> None:
        """Wait until a thread or coroutine wakes *waiters*, unless no longer *blocked*."""
        waiter = self._loop.create_future()
        waiters.append(waiter)
        try:
            # Look again now that the waiter is visible: a thread that changed the queue
            # before seeing it skipped the wake-up (see _notify), and we must not wait.
            if not blocked():
                return
            await waiter
        finally:
            if not waiter.done() or waiter.cancelled():
                try:
                    waiters.remove(waiter)
                except ValueError:
                    pass

    def _notify(self, waiters: Deque[asyncio.Future[None]]) -> None:
        """Wake the coroutines in *waiters*: directly on the loop, through the loop elsewhere."""
        if not waiters:
            # Nobody waits, so no call through the loop (the costly part).  A coroutine
            # about to wait looks at the queue again after adding its waiter.
            return
        if _running_loop() is self._loop:
            self._wake(waiters)
            return
        try:
            self._loop.call_soon_threadsafe(self._wake, waiters)
        except RuntimeError:  # the loop is closed: no coroutine is waiting any more
            pass

    @staticmethod
    def _wake(waiters: Deque[asyncio.Future[None]]) -> None:
        # Every waiter tries again; those that lose the race wait again.
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)


class BlockingPool:
    """A thread pool of its own for one blocking library, at most *max_workers* calls at once.

    ``await pool.run(func, *args, **kwargs)`` runs the call in one of the
    pool's threads, with a copy of the caller's context variables (as
    :func:`asyncio.to_thread`); calls beyond *max_workers* wait their turn
    without occupying a thread.  Leaving ``async with`` (or
    :meth:`aclose`) drops the calls that have not started and waits for the
    running ones without blocking the loop:

    >>> import asyncio
    >>> import threading
    >>> import time
    >>> from recipes.sync_bridge import BlockingPool
    >>> running, most = set(), [0]
    >>> def resize(n):  # a blocking call
    ...     running.add(n)
    ...     most[0] = max(most[0], len(running))
    ...     time.sleep(0.02)
    ...     running.discard(n)
    ...     return threading.current_thread().name.split("_")[0]
    >>> async with BlockingPool(2, name="images") as pool:
    ...     names = await asyncio.gather(*(pool.run(resize, n) for n in range(6)))
    >>> sorted(set(names)), most[0] <= 2
    (['images'], True)

    Cancelling an ``await pool.run(...)`` (a timeout does) stops the wait; a
    call already running finishes in its thread and still holds its worker,
    so the limit holds:

    >>> async with BlockingPool(1) as pool:
    ...     try:
    ...         await asyncio.wait_for(pool.run(time.sleep, 0.05), 0.01)
    ...     except asyncio.TimeoutError:
    ...         print("gave up waiting")
    ...     print(await pool.run(len, "the next call waits for the thread"))
    gave up waiting
    34

    Arguments are checked up front:

    >>> BlockingPool(0)
    Traceback (most recent call last):
    ...
    ValueError: max_workers must be an int >= 1, got 0
    """

    def __init__(self, max_workers: int, *, name: str = "blocking") -> None:
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise ValueError(f"max_workers must be an int >= 1, got {max_workers!r}")
        self._max_workers = max_workers
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers, thread_name_prefix=name
        )
        self._closed = False
        self._lock = threading.Lock()
        self._queued: Set[concurrent.futures.Future[Any]] = set()

    @property
    def max_workers(self) -> int:
        """How many blocking calls run at the same time, at most."""
        return self._max_workers

    async def run(self, func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run the blocking ``func(*args, **kwargs)`` in one of the pool's threads; await it.

        The call runs in a copy of the caller's context variables, as with
        :func:`asyncio.to_thread`.  Cancelling the ``await`` drops a call that
        has not started; one that has started runs to its end in its thread.
        """
        if self._closed:
            raise RuntimeError("BlockingPool.run() after aclose()")
        if not callable(func):
            raise TypeError(
                f"BlockingPool.run() needs a callable, got {func!r}; "
                "pass the function and its arguments: run(func, arg)"
            )
        context = contextvars.copy_context()
        future = self._executor.submit(context.run, func, *args, **kwargs)
        with self._lock:
            self._queued.add(future)
        future.add_done_callback(self._forget)
        # wrap_future() cancels the call if our await is cancelled before it starts.
        return await asyncio.wrap_future(future)

    def _forget(self, future: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            self._queued.discard(future)

    async def aclose(self) -> None:
        """Drop the calls not started yet, wait for the running ones, join the threads.

        The wait happens in a helper thread, so the event loop keeps running.
        """
        self._closed = True
        with self._lock:
            queued = list(self._queued)
        for future in queued:
            future.cancel()  # only calls that have not started can be cancelled
        shutdown = functools.partial(self._executor.shutdown, wait=True)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def join() -> None:
            try:
                shutdown()
            finally:
                loop.call_soon_threadsafe(_set_result_once, done)

        helper = threading.Thread(target=join, name="BlockingPool.aclose")
        helper.start()
        try:
            await asyncio.shield(done)
        finally:
            if done.done():
                helper.join()

    async def __aenter__(self) -> BlockingPool:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.aclose()
