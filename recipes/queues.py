"""Hand work between tasks, lose nothing, never hang.

A queue lets the tasks that *find* work run at their own pace while a fixed
number of tasks *do* the work.  :class:`asyncio.Queue` gives you the buffer;
this chapter supplies the bookkeeping around it that is easy to get wrong: a
consumer loop that always calls :meth:`~asyncio.Queue.task_done` (so
:meth:`~asyncio.Queue.join` returns), a way to stop any number of consumers,
bounded queues for backpressure, a priority queue that never compares your
payloads, closing a queue on every Python version, and a multi-stage pipeline
that delivers each item exactly once even when a stage raises.

Handing work to several consumers
---------------------------------

.. index::
   single: producer/consumer
   single: worker pool; with a queue
   single: sentinel; stopping consumers
   pair: Queue; join
   pair: Queue; task_done
   single: error messages; task_done() called too many times
   single: error messages; Task exception was never retrieved

You have items to process and want three of them in progress at any time.
Start three consumer tasks that share one queue, put the items in, then put
one :data:`STOP` sentinel *per consumer*: each consumer leaves its loop when it
takes a sentinel, so one sentinel would stop only one of them.
:func:`consume` runs the loop for you:

>>> import asyncio
>>> from recipes.queues import STOP, consume
>>> handled = []
>>> async def handle(item):
...     await asyncio.sleep(0.1)
...     handled.append(item)
>>> queue = asyncio.Queue()
>>> consumers = [asyncio.create_task(consume(queue, handle)) for _ in range(3)]
>>> for item in range(6):
...     await queue.put(item)
>>> for _ in consumers:
...     await queue.put(STOP)
>>> await queue.join()
>>> sorted(handled)
[0, 1, 2, 3, 4, 5]
>>> await asyncio.gather(*consumers)
[None, None, None]

:meth:`~asyncio.Queue.join` waits until every item that was put has been
marked done, so it is the producer's way of asking "is everything processed?".

.. important::

   ``join()`` counts *calls*: it returns only after one ``task_done()`` per
   ``put()``, and the sentinel is an item like any other.  A consumer that
   breaks out of its loop on the sentinel without calling ``task_done()``
   leaves the count at one, and ``await queue.join()`` then waits forever
   without any error message.  The same happens when a consumer dies of an
   exception in the middle of an item.  Call ``task_done()`` in a
   ``finally:`` block, right after a successful ``get()``, and catch the
   handler's exceptions so one bad item does not kill the consumer (asyncio
   would only mention it at exit as ``Task exception was never retrieved``).
   Calling it twice for one item raises
   ``ValueError: task_done() called too many times``.

.. important::

   That ``except Exception`` has a trap.  A handler whose cleanup raises
   while the consumer is being cancelled (a ``finally`` block whose
   ``await conn.close()`` fails) turns the :exc:`asyncio.CancelledError`
   into that error; the consumer catches it as one more failed item and
   loops on, and whoever cancelled it (a shutdown, ``asyncio.run()``) waits
   forever.  :func:`consume` and :func:`run_pipeline` end cancelled in that
   case.  Their references say on which Python versions, and for which
   cancellations, that holds.

When the items are all known up front and you only need "at most N at a
time", you do not need a queue: :func:`recipes.limiting.bounded_gather` (see
:doc:`/recipes/limiting`) runs them through a fixed pool of workers in one call.
A queue is for work that arrives over time, from one or more producers.

Applying backpressure with a bounded queue
------------------------------------------

.. index::
   single: backpressure
   pair: Queue; maxsize
   single: QueueFull

An unbounded queue lets a fast producer pile up items in memory while the
consumers fall behind.  Give the queue a ``maxsize``: once it is full,
``await queue.put()`` waits until a consumer takes an item, so the producer
runs at the consumers' pace.

>>> loop = asyncio.get_running_loop()
>>> async def slow(item):
...     await asyncio.sleep(0.2)
>>> async def produce(queue, count):
...     start = loop.time()
...     for item in range(count):
...         await queue.put(item)
...         print(item, "queued after", round(loop.time() - start, 1), "s")
>>> queue = asyncio.Queue(maxsize=2)
>>> worker = asyncio.create_task(consume(queue, slow))
>>> await produce(queue, 5)
0 queued after 0.0 s
1 queued after 0.0 s
2 queued after 0.0 s
3 queued after 0.2 s
4 queued after 0.4 s
>>> await queue.put(STOP)
>>> await worker

Item 2 went in at once because the consumer had already taken item 0; from
then on the producer waited for the consumer.  ``put_nowait()`` never waits:
it raises :exc:`asyncio.QueueFull` instead, which suits code that would rather
drop or reject work than wait.

Serving urgent items first
--------------------------

.. index::
   single: PriorityQueue
   pair: priority queue; ties
   single: error messages; '<' not supported between instances of 'dict' and 'dict'

:class:`asyncio.PriorityQueue` returns the smallest entry first, so the usual
entry is a ``(priority, payload)`` tuple.  When two priorities are equal,
Python compares the payloads, which fails for dicts and most objects:

>>> queue = asyncio.PriorityQueue()
>>> queue.put_nowait((1, {"job": "resize"}))
>>> queue.put_nowait((1, {"job": "upload"}))
Traceback (most recent call last):
...
TypeError: '<' not supported between instances of 'dict' and 'dict'

A counter between the priority and the payload settles every tie before the
payload is reached, and also keeps equal priorities in arrival order.
:class:`StablePriorityQueue` does that for you; its ``get()`` returns only the
payload, so :func:`consume` works with it unchanged.

.. important::

   A bounded :class:`asyncio.Queue` does not serve blocked producers in
   order.  When a ``get()`` frees a slot, it wakes the producer that has
   waited longest, but a ``put()`` (or ``put_nowait()``) that comes in before
   that producer has run takes the slot, and the woken producer goes back
   to the *end* of the line.  :class:`StablePriorityQueue` and
   :class:`ClosableQueue` hand a freed slot straight to the producer that
   has waited longest, so with a bound, items still enter in the order in
   which ``put()`` was called.

Shutting a queue down
---------------------

.. index::
   single: Queue.shutdown
   single: QueueShutDown
   single: ClosableQueue
   pair: queue; closing

.. versionadded:: 3.13
   :meth:`asyncio.Queue.shutdown`: afterwards ``put()`` raises
   :exc:`asyncio.QueueShutDown`, ``get()`` raises it once the queue is empty,
   and every task blocked in either is woken up.  No sentinel counting needed:

>>> queue = asyncio.Queue()  # doctest: +PY313
>>> handled = []  # doctest: +PY313
>>> workers = [  # doctest: +PY313
...     asyncio.create_task(consume(queue, handle)) for _ in range(2)
... ]
>>> for item in "abc":  # doctest: +PY313
...     await queue.put(item)
>>> queue.shutdown()  # doctest: +PY313
>>> await asyncio.gather(*workers)  # doctest: +PY313
[None, None]
>>> sorted(handled)  # doctest: +PY313
['a', 'b', 'c']
>>> await queue.put("d")  # doctest: +PY313, +IGNORE_EXCEPTION_DETAIL
Traceback (most recent call last):
...
asyncio.QueueShutDown

On Python 3.8 to 3.12, either put one :data:`STOP` per consumer as above, or
use :class:`ClosableQueue`, which behaves like a shut-down queue on every
version.  ``shutdown(immediate=True)`` (and ``ClosableQueue.close(immediate=True)``)
also discards the items still waiting and marks them done.

Running a multi-stage pipeline
------------------------------

.. index::
   single: pipeline
   pair: pipeline; stages
   single: StageFailure

Real work often has stages: download, then parse, then store.  Each stage gets
its own queue and its own workers, and the bounded queues between the stages
keep a fast stage from flooding a slow one.  :func:`run_pipeline` builds that
arrangement, feeds it, and returns once every item has left the last stage.
An item whose stage raises is recorded with the stage name and the exception;
the other items keep flowing:

>>> from recipes.queues import run_pipeline
>>> async def parse(text):
...     return int(text)
>>> async def double(number):
...     await asyncio.sleep(0.1)
...     return 2 * number
>>> items = ["1", "2", "oops", "4"]
>>> result = await run_pipeline(items, parse, double, workers=2)
>>> result.results
[2, 4, 8]
>>> [(failure.index, failure.stage) for failure in result.failures]
[(2, 'parse')]

The source may also be an async iterable, such as the streams of
:doc:`/recipes/async_iteration`; it is read only as fast as the first stage
takes items.

Stopping workers cleanly
------------------------

.. index::
   pair: workers; stopping
   pair: asyncio.run; leftover tasks
   single: error messages; Task was destroyed but it is pending!

Consumers loop forever, so something has to end them.  After ``join()`` has
returned, the queue is empty and every worker is idle in ``get()``: that is
the safe moment to cancel them, and then *await* them so their ``finally``
blocks have run before you carry on.

>>> queue = asyncio.Queue()
>>> handled = []
>>> workers = [asyncio.create_task(consume(queue, handle)) for _ in range(2)]
>>> for item in range(4):
...     await queue.put(item)
>>> await queue.join()
>>> for worker in workers:
...     worker.cancel()
True
True
>>> outcomes = await asyncio.gather(*workers, return_exceptions=True)
>>> [type(outcome).__name__ for outcome in outcomes]
['CancelledError', 'CancelledError']

``cancel()`` returns True because each task was still running; the
gathered outcomes confirm that both ended by cancellation.
:func:`run_pipeline` ends its workers this way, stage by stage.
:func:`recipes.cancellation.cancel_and_wait` does the same cancel-then-await in
one call, and keeps waiting if a second cancellation arrives meanwhile
(:doc:`/recipes/cancellation`).

.. important::

   A worker that nobody cancels is still running when ``main()`` returns.
   ``asyncio.run()`` then cancels every task that is left and waits for
   them, so the worker's ``finally`` blocks do run, but only then: after
   ``main()`` has already closed what the worker may still need (a session,
   a connection pool), and an exception raised in that cleanup is only
   logged.  A worker that swallows the cancellation, or whose handler turns
   it into an error that the worker catches, makes ``asyncio.run()`` wait
   for it forever (:func:`consume` ends cancelled then, on Python 3.11+),
   and a worker whose task object is dropped and
   garbage-collected produces ``Task was destroyed but it is pending!``
   (:doc:`/recipes/tasks` shows how to keep a reference).
   Keep the task objects, cancel them at the end, and await them.

Here the worker is left running; its cleanup happens after ``main()`` has
returned, while ``asyncio.run()`` shuts down.  This is about how a whole
program ends, so it is a script to run, not an example to paste:

.. script:: leftover_worker.py

   import asyncio

   background = set()  # the loop keeps only weak references to tasks


   async def worker(queue):
       try:
           while True:
               await queue.get()
       finally:
           await asyncio.sleep(0)  # an asynchronous cleanup step
           print("worker cleaned up")


   async def main():
       queue = asyncio.Queue()
       background.add(asyncio.create_task(worker(queue)))  # never cancelled
       await asyncio.sleep(0)
       print("main returns")


   asyncio.run(main())
   print("asyncio.run() returned")

.. script-output::

   main returns
   worker cleaned up
   asyncio.run() returned

Putting it together
-------------------

A complete program: two stages, three workers each, a result for every input.

.. script:: pipeline.py

   import asyncio

   from recipes.queues import run_pipeline


   async def parse(text):
       return int(text)


   async def double(number):
       await asyncio.sleep(0.01)  # some I/O
       return 2 * number


   async def main():
       result = await run_pipeline(["10", "x", "30"], parse, double, workers=3)
       print("results:", result.results)
       for failure in result.failures:
           print("failed:", failure.index, failure.stage, repr(failure.error))


   asyncio.run(main())

.. script-output::

   results: [20, 60]
   failed: 1 parse ValueError("invalid literal for int() with base 10: 'x'")

For a queue that survives a restart of the process – jobs in a database table,
claimed by workers on several machines – see :doc:`/recipes/job_queue`; the
crawler of :doc:`/recipes/crawler` runs its fetches through a worker pool much
like :func:`consume`'s.

A library does this
-------------------

.. index::
   single: anyio; memory object streams
   pair: anyio; comparison
   single: janus
   pair: janus; comparison

* `anyio <https://anyio.readthedocs.io/>`__'s memory object streams replace
  the queue and the stopping logic in one: ``send, receive =
  anyio.create_memory_object_stream[int](max_buffer_size)`` gives a bounded
  channel (unbuffered by default), ``clone()`` gives each producer and
  consumer its own end, and once every sending end is closed the consumers'
  ``async for`` loops end by themselves, with no :data:`STOP` or shutdown;
  a send after every receiver has gone raises ``BrokenResourceError``.
  There is no ``task_done()``/``join()``, no priority order and no
  pipeline with per-item failures like :func:`run_pipeline`.  It runs on
  asyncio and Trio and current releases need Python 3.10+.  Choose it in
  code that already uses anyio task groups; the recipes for plain asyncio,
  :meth:`asyncio.Queue.join`-based shutdown or Python 3.8 and 3.9.
* `janus <https://github.com/aio-libs/janus>`__ is a queue shared by threads
  and coroutines (see :doc:`/recipes/sync_bridge`); its ``async_q`` also has
  ``shutdown()`` with the meaning of Python 3.13's on Python 3.9 to 3.12,
  which is what :class:`ClosableQueue` gives you.  Take it when threads are
  involved anyway, not only for the shutdown.

See also
--------

* :doc:`/recipes/limiting` – :func:`~recipes.limiting.bounded_gather` when all
  the work is known up front, and rate limits.
* :doc:`/recipes/cancellation` and :doc:`/recipes/tasks` – stopping workers, and
  keeping their tasks alive.
* :doc:`/recipes/job_queue` – a durable queue on PostgreSQL.
* Python: :doc:`python:library/asyncio-queue` (:class:`asyncio.Queue`,
  :class:`asyncio.PriorityQueue`, :class:`asyncio.LifoQueue`,
  :meth:`asyncio.Queue.shutdown`), and its
  :ref:`example of workers sharing a queue <python:asyncio_example_queue_dist>`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import itertools
import logging
import sys
from collections.abc import AsyncIterable as _AsyncIterableABC
from collections.abc import Iterable as _IterableABC
from collections.abc import Sequence as _SequenceABC
from dataclasses import dataclass
from typing import (
    Any,
    AsyncIterable,
    Awaitable,
    Callable,
    Deque,
    Dict,
    Generic,
    Iterable,
    List,
    Optional,
    Protocol,
    Sequence,
    Set,
    Tuple,
    Type,
    TypeVar,
    Union,
)

__all__ = [
    "STOP",
    "ClosableQueue",
    "PipelineResult",
    "QueueClosed",
    "StablePriorityQueue",
    "StageFailure",
    "consume",
    "run_pipeline",
]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

logger = logging.getLogger(__name__)


class _WorkQueue(Protocol[T_co]):
    """Anything :func:`consume` can read from: a queue with get() and task_done()."""

    def get(self) -> Awaitable[T_co]: ...

    def task_done(self) -> None: ...


class _Stop:
    """Type of the :data:`STOP` sentinel."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "STOP"


STOP = _Stop()
"""Sentinel that tells one :func:`consume` loop to return; put one per consumer."""


async def consume(
    queue: _WorkQueue[Any],
    handle: Callable[[Any], Awaitable[object]],
    *,
    on_error: Optional[Callable[[Any, Exception], object]] = None,
) -> None:
    """Take items from *queue* and ``await handle(item)`` for each, until told to stop.

    Run several of these as tasks on one queue to process items concurrently:

    >>> import asyncio
    >>> from recipes.queues import STOP, consume
    >>> seen = []
    >>> async def record(item):
    ...     seen.append(item)
    >>> queue = asyncio.Queue()
    >>> for item in ["a", "b", STOP]:
    ...     queue.put_nowait(item)
    >>> await consume(queue, record)
    >>> seen
    ['a', 'b']

    The loop returns when it takes :data:`STOP`, when the queue is shut down
    (:meth:`asyncio.Queue.shutdown` on 3.13+) or when a :class:`ClosableQueue`
    is closed and drained.  It calls ``queue.task_done()`` exactly once for
    every item it takes, the sentinel included, even when ``handle`` raises
    or the consumer is cancelled, so ``queue.join()`` never hangs on it.

    An exception from ``handle`` does not end the loop: it is passed to
    ``on_error(item, exc)``, or logged with the item when no ``on_error`` is
    given, and the consumer moves on to the next item.
    :exc:`asyncio.CancelledError` is never caught.

    Nor is a cancellation that ``handle`` turns into something else.  If the
    consumer is cancelled while ``handle`` runs, and ``handle`` raises another
    exception instead (a ``finally`` block whose cleanup raises, an ``except
    CancelledError`` that raises an error of its own) or swallows the
    cancellation and returns, the exception (if any) is reported as above
    and the consumer then ends cancelled, without taking another item.

    That holds on Python 3.11+, where :meth:`asyncio.Task.cancelling` counts
    the cancellation requests.  (Code in ``handle`` that cancels its own
    task and absorbs that cancellation must call
    :meth:`asyncio.Task.uncancel`, as :func:`asyncio.timeout` and
    :class:`asyncio.TaskGroup` do, or it is taken for a cancellation of the
    consumer.)  On 3.8–3.10 nothing tells such an error from a timeout
    inside ``handle`` that cancels the task itself and raises
    :exc:`asyncio.TimeoutError` (async-timeout, which aiohttp uses there,
    does), so the consumer takes it for a failed item and carries on, as it
    does when ``handle`` swallows the cancellation.  There, keep
    ``handle``'s cleanup from raising while it is cancelled
    (:func:`recipes.cancellation.shielded_cleanup` lets the cancellation
    win), or stop consumers between items with :data:`STOP` or
    :meth:`ClosableQueue.close`.

    >>> failed = []
    >>> async def picky(item):
    ...     if item == "bad":
    ...         raise ValueError(f"cannot handle {item!r}")
    >>> def note(item, exc):
    ...     failed.append((item, str(exc)))
    >>> for item in ["good", "bad", "good", STOP]:
    ...     queue.put_nowait(item)
    >>> await consume(queue, picky, on_error=note)
    >>> failed
    [('bad', "cannot handle 'bad'")]
    >>> await queue.join()
    """

    def report(item: Any, exc: Exception) -> None:
        if on_error is None:
            logger.error("consumer failed on item %r", item, exc_info=exc)
        else:
            on_error(item, exc)

    while True:
        try:
            item = await queue.get()
        except _END_OF_QUEUE:
            return
        try:
            if item is STOP:
                return
            try:
                await _call(handle(item), None, None, functools.partial(report, item))
            except Exception as exc:
                report(item, exc)
        finally:
            queue.task_done()


class _FifoSlots:
    """A semaphore that serves its waiters strictly in arrival order.

    release() hands the slot straight to the longest waiter instead of making
    it free for whoever asks first: with asyncio.Semaphore (on 3.8) or
    asyncio.Queue.put() (on every version), a newcomer can take a slot before
    the waiter that was woken for it runs, and that waiter queues up again at
    the end.  Futures are created on first wait, in the running loop.
    """

    def __init__(self, value: int) -> None:
        self._free = value
        self._waiters: Deque[asyncio.Future[None]] = collections.deque()

    def available(self) -> bool:
        """True if try_acquire() would succeed."""
        return self._free > 0 and not any(not w.done() for w in self._waiters)

    def try_acquire(self) -> bool:
        """Take a free slot if there is one and nobody is waiting for it."""
        if self.available():
            self._free -= 1
            return True
        return False

    async def acquire(self) -> None:
        """Take a slot, waiting behind everyone who asked earlier."""
        if self.try_acquire():
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
        """Give a slot back: to the longest waiter if there is one, else to the pool."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():  # skip waiters cancelled in the meantime
                waiter.set_result(None)
                return
        self._free += 1


class StablePriorityQueue(Generic[T]):
    """A priority queue that never compares payloads and keeps ties in arrival order.

    Lower priorities come out first, as with :class:`asyncio.PriorityQueue`;
    ``get()`` returns the payload alone:

    >>> from recipes.queues import STOP, StablePriorityQueue, consume
    >>> jobs = StablePriorityQueue()
    >>> jobs.put_nowait({"job": "report"}, priority=5)
    >>> jobs.put_nowait({"job": "alert"}, priority=1)
    >>> jobs.put_nowait({"job": "cleanup"}, priority=5)
    >>> [(await jobs.get())["job"] for _ in range(3)]
    ['alert', 'report', 'cleanup']

    Each entry is stored as ``(priority, sequence_number, payload)``; the
    sequence number is unique, so the comparison is always decided before the
    payload is reached.  ``maxsize`` bounds the queue as for
    :class:`asyncio.Queue`, except that producers waiting for room are served
    in the order they called ``put()``: a freed slot goes to the producer that
    has waited longest, and a ``put_nowait()`` meanwhile raises
    :exc:`asyncio.QueueFull`.  ``task_done()``/``join()`` work as for
    :class:`asyncio.Queue`, so :func:`consume` accepts this queue:

    >>> handled = []
    >>> async def run(job):
    ...     handled.append(job["job"])
    >>> jobs = StablePriorityQueue(maxsize=10)
    >>> jobs.put_nowait({"job": "tidy"}, priority=9)
    >>> jobs.put_nowait({"job": "pay"}, priority=0)
    >>> jobs.put_nowait(STOP, priority=float("inf"))
    >>> await consume(jobs, run)
    >>> handled
    ['pay', 'tidy']

    Give the sentinel the largest priority, as above, or it overtakes the
    work.  Create the queue inside a coroutine: on Python 3.8 and 3.9 an
    asyncio queue binds to the event loop that is current when it is created.
    """

    def __init__(self, maxsize: int = 0) -> None:
        # The entries live in an unbounded queue; maxsize is enforced by a
        # first-come-first-served count of free slots.
        self._queue: asyncio.PriorityQueue[Tuple[float, int, T]] = asyncio.PriorityQueue()
        self._slots = _FifoSlots(maxsize) if maxsize > 0 else None
        self._sequence = itertools.count()

    async def put(self, item: T, priority: float = 0) -> None:
        """Put *item* with *priority*, waiting (first come, first served) while full."""
        entry = (priority, next(self._sequence), item)
        if self._slots is not None:
            await self._slots.acquire()
        self._queue.put_nowait(entry)

    def put_nowait(self, item: T, priority: float = 0) -> None:
        """Put *item* with *priority*; raise :exc:`asyncio.QueueFull` if there is no room."""
        if self._slots is not None and not self._slots.try_acquire():
            raise asyncio.QueueFull
        self._queue.put_nowait((priority, next(self._sequence), item))

    async def get(self) -> T:
        """Remove and return the payload with the lowest priority."""
        _, _, item = await self._queue.get()
        if self._slots is not None:
            self._slots.release()
        return item

    def get_nowait(self) -> T:
        """Like :meth:`get`; raise :exc:`asyncio.QueueEmpty` if empty."""
        _, _, item = self._queue.get_nowait()
        if self._slots is not None:
            self._slots.release()
        return item

    def task_done(self) -> None:
        """Mark one item taken by :meth:`get` as processed."""
        self._queue.task_done()

    async def join(self) -> None:
        """Wait until every item put has been marked done."""
        await self._queue.join()

    def qsize(self) -> int:
        """Number of items waiting in the queue."""
        return self._queue.qsize()

    def empty(self) -> bool:
        """True if no item is waiting."""
        return self._queue.empty()

    def full(self) -> bool:
        """True if there is no room: ``maxsize`` items are in or promised to waiting producers."""
        return self._slots is not None and not self._slots.available()


class QueueClosed(Exception):
    """Raised by :class:`ClosableQueue` for a put after close, or a get once closed and empty."""


# What get() raises once a closed (or, on 3.13+, shut-down) queue is empty.
if sys.version_info >= (3, 13):
    _END_OF_QUEUE: Tuple[Type[Exception], ...] = (QueueClosed, asyncio.QueueShutDown)
else:
    _END_OF_QUEUE = (QueueClosed,)


class _Closed:
    """Type of the marker a closed :class:`ClosableQueue` keeps at its end."""

    __slots__ = ()


_CLOSED = _Closed()


class ClosableQueue(Generic[T]):
    """A FIFO queue with ``close()``, the equivalent of 3.13's ``Queue.shutdown()`` on 3.8+.

    After ``close()``, ``put()`` raises :exc:`QueueClosed`; ``get()`` still
    returns the items already queued and raises :exc:`QueueClosed` once the
    queue is empty.  Tasks blocked in ``get()`` or ``put()`` are woken up, so
    any number of consumers stop without sentinels:

    >>> import asyncio
    >>> from recipes.queues import ClosableQueue, consume
    >>> queue = ClosableQueue()
    >>> handled = []
    >>> async def handle(item):
    ...     await asyncio.sleep(0.1)
    ...     handled.append(item)
    >>> workers = [asyncio.create_task(consume(queue, handle)) for _ in range(3)]
    >>> for item in range(5):
    ...     await queue.put(item)
    >>> queue.close()
    >>> await asyncio.gather(*workers)
    [None, None, None]
    >>> sorted(handled)
    [0, 1, 2, 3, 4]
    >>> await queue.put(5)
    Traceback (most recent call last):
    ...
    recipes.queues.QueueClosed: put() on a closed queue

    With ``maxsize``, ``put()`` waits for room as in :class:`asyncio.Queue`,
    but first come, first served (a freed slot goes to the producer that has
    waited longest); a producer waiting there when the queue is closed gets
    :exc:`QueueClosed` rather than waiting forever.
    ``close(immediate=True)`` also throws away the items not yet taken (they
    count as done for ``join()``), for an emergency stop:

    >>> queue = ClosableQueue(maxsize=3)
    >>> for item in "abc":
    ...     await queue.put(item)
    >>> queue.close(immediate=True)
    >>> queue.qsize()
    0
    >>> await queue.join()

    Create the queue inside a coroutine (on Python 3.8 and 3.9 its parts bind
    to the event loop that is current when they are created).
    """

    def __init__(self, maxsize: int = 0) -> None:
        if maxsize < 0:
            raise ValueError(f"maxsize must be >= 0 (0 means unbounded), got {maxsize!r}")
        # The items live in an unbounded queue so that close() can always append
        # the closing marker; maxsize is enforced by a first-come-first-served
        # count of free slots.
        self._items: asyncio.Queue[Union[T, _Closed]] = asyncio.Queue()
        self._slots = _FifoSlots(maxsize) if maxsize else None
        self._maxsize = maxsize
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called."""
        return self._closed

    @property
    def maxsize(self) -> int:
        """The bound given to the constructor (0: unbounded)."""
        return self._maxsize

    def qsize(self) -> int:
        """Number of items waiting to be taken."""
        return self._items.qsize() - (1 if self._closed else 0)

    def empty(self) -> bool:
        """True if no item is waiting."""
        return self.qsize() == 0

    async def put(self, item: T) -> None:
        """Append *item*, waiting while the queue is full; raise :exc:`QueueClosed` if closed."""
        if self._closed:
            raise QueueClosed("put() on a closed queue")
        if self._slots is not None:
            await self._slots.acquire()
            if self._closed:
                # Woken by close(): pass the wake-up on to the next blocked producer.
                self._slots.release()
                raise QueueClosed("put() on a closed queue")
        self._items.put_nowait(item)

    async def get(self) -> T:
        """Remove and return the first item; raise :exc:`QueueClosed` once closed and empty."""
        item = await self._items.get()
        if isinstance(item, _Closed):
            # Leave the marker for the next consumer; the put/task_done pair
            # keeps join()'s count unchanged.
            self._items.put_nowait(item)
            self._items.task_done()
            raise QueueClosed("get() on a closed and empty queue")
        if self._slots is not None:
            self._slots.release()
        return item

    def task_done(self) -> None:
        """Mark one item taken by :meth:`get` as processed."""
        self._items.task_done()

    async def join(self) -> None:
        """Wait until every item put has been marked done (or discarded by an immediate close)."""
        await self._items.join()

    def close(self, *, immediate: bool = False) -> None:
        """Refuse new items and wake every waiting task; with *immediate*, drop queued items too.

        Calling it again is harmless (a later ``immediate=True`` still drops
        what is queued).
        """
        if immediate:
            while True:
                try:
                    dropped = self._items.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if not isinstance(dropped, _Closed):
                    self._items.task_done()
        elif self._closed:
            return
        self._closed = True
        self._items.put_nowait(_CLOSED)
        self._items.task_done()  # the marker is not work: keep join()'s count unchanged
        if self._slots is not None:
            # Wake one producer blocked in put(); each one passes the wake-up on.
            self._slots.release()


@dataclass(frozen=True)
class StageFailure:
    """One item that a :func:`run_pipeline` stage raised on.

    ``index`` is the item's position in the source, ``stage`` the stage
    function's name, ``item`` the value that stage received and ``error`` the
    exception it raised:

    >>> from recipes.queues import StageFailure
    >>> failure = StageFailure(
    ...     index=3, stage="parse", item="x", error=ValueError("bad")
    ... )
    >>> f"item {failure.index} failed in {failure.stage}: {failure.error!r}"
    "item 3 failed in parse: ValueError('bad')"
    """

    index: int
    stage: str
    item: Any
    error: Exception


@dataclass(frozen=True)
class PipelineResult:
    """What :func:`run_pipeline` returns: outputs and failures, both in source order.

    Every source item appears exactly once: its final output in ``results``,
    or a :class:`StageFailure` in ``failures``.

    >>> from recipes.queues import PipelineResult
    >>> PipelineResult(results=[2, 4], failures=[]).results
    [2, 4]
    """

    results: List[Any]
    failures: List[StageFailure]


def _stage_name(stage: Callable[..., Any]) -> str:
    return str(getattr(stage, "__name__", None) or repr(stage))


async def _feed(
    source: Union[Iterable[Any], AsyncIterable[Any]],
    inbox: asyncio.Queue[Tuple[int, Any]],
) -> None:
    if isinstance(source, _AsyncIterableABC):
        index = 0
        async for item in source:
            await inbox.put((index, item))
            index += 1
    else:
        for index, item in enumerate(source):
            await inbox.put((index, item))


async def _stage_worker(
    stage: Callable[[Any], Awaitable[Any]],
    name: str,
    inbox: asyncio.Queue[Tuple[int, Any]],
    outbox: Optional[asyncio.Queue[Tuple[int, Any]]],
    results: Dict[int, Any],
    failures: List[StageFailure],
    timeout: Optional[float],
    stopping: Set[asyncio.Task[Any]],
) -> None:
    me = asyncio.current_task()

    def stopped() -> bool:
        return me in stopping

    def report(index: int, exc: Exception) -> None:
        logger.error(
            "pipeline stage %r failed on item %d while being cancelled; the cancellation goes on",
            name,
            index,
            exc_info=exc,
        )

    while True:
        index, item = await inbox.get()
        try:
            try:
                output = await _call(
                    stage(item), timeout, stopped, functools.partial(report, index)
                )
            except Exception as exc:
                failures.append(StageFailure(index, name, item, exc))
            else:
                if outbox is None:
                    results[index] = output
                else:
                    # Forward before task_done(): join() on this stage's queue must
                    # not return while an item is between two queues.
                    await outbox.put((index, output))
        finally:
            inbox.task_done()


async def _unless_workers_die(task: asyncio.Task[None], workers: List[asyncio.Task[None]]) -> None:
    """Await *task*, but fail instead of hanging if a worker ends first."""
    done, _ = await asyncio.wait([task, *workers], return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()  # re-raise the source's exception, if any
        return
    dead = next(worker for worker in workers if worker in done)
    cause = None if dead.cancelled() else dead.exception()
    raise RuntimeError(
        f"pipeline worker {dead.get_name()} stopped unexpectedly "
        "(did a stage raise CancelledError or BaseException?)"
    ) from cause


async def _cancel_and_wait(
    tasks: Sequence[asyncio.Task[Any]], stopping: Set[asyncio.Task[Any]]
) -> None:
    """Cancel *tasks* and wait until all have ended, even if we are cancelled meanwhile.

    Each task is added to *stopping* first: a worker that finds itself there
    ends even if its stage turned the cancellation into an error.  A
    cancellation that arrives during the wait is raised afterwards, so no task
    is left running behind our back.
    """
    stopping.update(tasks)
    for task in tasks:
        task.cancel()
    if await _until_done(tasks):
        raise asyncio.CancelledError


async def _until_done(tasks: Sequence[asyncio.Future[Any]]) -> bool:
    """Wait until every one of *tasks* has ended; return True if we were cancelled meanwhile."""
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
            task.exception()  # mark as retrieved: no "exception was never retrieved"
    return cancelled


def _report_quietly(report: Callable[[Exception], object], error: Exception) -> None:
    """Call ``report(error)``; an error of its own is logged, not raised over a cancellation."""
    try:
        report(error)
    except Exception:
        logger.exception("error handler failed while its worker was being cancelled")


if sys.version_info >= (3, 11):

    async def _call(
        aw: Awaitable[T],
        timeout: Optional[float],
        stopped: Optional[Callable[[], bool]],
        report: Callable[[Exception], object],
    ) -> T:
        """Await *aw* (for at most *timeout* seconds) on behalf of a worker loop.

        The loop catches the handler's exceptions so that one bad item does not
        end it.  But a handler may turn the CancelledError that stops the worker
        into another exception (a cleanup that raises) or swallow it, and the
        loop would then go on, so that whoever cancelled the worker waits
        forever.  So if this task was asked to stop while *aw* ran, as
        Task.cancelling() or *stopped* tells, CancelledError is raised however
        *aw* ended, after passing its error, if any, to *report*.
        asyncio.timeout() takes back (uncancel()) its own request, so the
        timeout is never taken for a cancellation, nor is a timeout inside *aw*.
        """
        task = asyncio.current_task()
        before = 0 if task is None else task.cancelling()

        def asked_to_stop() -> bool:
            if stopped is not None and stopped():
                return True
            return task is not None and task.cancelling() > before

        try:
            if timeout is None:
                result = await aw
            else:
                async with asyncio.timeout(timeout):
                    result = await aw
        except Exception as exc:
            if not asked_to_stop():
                raise
            _report_quietly(report, exc)
            raise asyncio.CancelledError from exc
        if asked_to_stop():
            raise asyncio.CancelledError
        return result

else:

    async def _call(
        aw: Awaitable[T],
        timeout: Optional[float],
        stopped: Optional[Callable[[], bool]],
        report: Callable[[Exception], object],
    ) -> T:
        """The same on 3.8-3.10, where a task does not count cancellation requests.

        Without a timeout, *aw* runs in this task and only *stopped* can tell
        that the worker was asked to stop.  With one, *aw* runs in a task of its
        own, awaited with asyncio.wait() (not wait_for(): CPython gh-86296):
        wait() never raises on that task's behalf, so a CancelledError here is
        always a cancellation of this task, even when *aw* ends in the same
        loop step or makes something else of its own cancellation.
        """
        if timeout is None:
            try:
                result = await aw
            except Exception as exc:
                if stopped is None or not stopped():
                    raise
                _report_quietly(report, exc)
                raise asyncio.CancelledError from exc
            if stopped is not None and stopped():
                raise asyncio.CancelledError
            return result
        call = asyncio.ensure_future(aw)
        interrupted: Optional[asyncio.CancelledError] = None
        try:
            await asyncio.wait([call], timeout=timeout)
        except asyncio.CancelledError as exc:
            interrupted = exc
        timed_out = interrupted is None and not call.done()
        if not call.done():  # timed out, or this task was cancelled: stop the call
            call.cancel()
            if await _until_done([call]) and interrupted is None:
                interrupted = asyncio.CancelledError()  # cancelled while the call unwound
        if interrupted is None and stopped is not None and stopped():
            interrupted = asyncio.CancelledError()
        if interrupted is not None:  # the cancellation wins, however the call ended
            error = None if call.cancelled() else call.exception()
            if isinstance(error, Exception):
                _report_quietly(report, error)
                raise interrupted from error
            raise interrupted
        if timed_out and call.cancelled():
            raise asyncio.TimeoutError from None
        return call.result()  # also what a call that ignored the cancel returned


async def run_pipeline(
    source: Union[Iterable[Any], AsyncIterable[Any]],
    *stages: Callable[[Any], Awaitable[Any]],
    workers: Union[int, Sequence[int]] = 4,
    maxsize: int = 100,
    timeout: Optional[float] = None,
) -> PipelineResult:
    """Push every item of *source* through the async *stages*, several workers per stage.

    Each stage is an ``async def stage(item) -> output``; the output of one
    stage is the input of the next.  The result lists the last stage's
    outputs in source order:

    >>> import asyncio
    >>> from recipes.queues import run_pipeline
    >>> async def square(n):
    ...     await asyncio.sleep(0.1)
    ...     return n * n
    >>> async def label(n):
    ...     return f"#{n}"
    >>> (await run_pipeline(range(5), square, label, workers=3)).results
    ['#0', '#1', '#4', '#9', '#16']

    **Failures.** When a stage raises an :exc:`Exception` for an item, that
    item leaves the pipeline as a :class:`StageFailure` (index, stage name,
    input, exception) and the other items carry on, so every item is
    accounted for exactly once.  *timeout* (seconds per stage call) turns a
    call that takes too long into such a failure:

    >>> async def fragile(n):
    ...     if n == 2:
    ...         raise ConnectionError("reset by peer")
    ...     if n == 3:
    ...         await asyncio.sleep(60)
    ...     return n
    >>> result = await run_pipeline(range(5), fragile, timeout=0.5)
    >>> result.results
    [0, 1, 4]
    >>> [(f.index, type(f.error).__name__) for f in result.failures]
    [(2, 'ConnectionError'), (3, 'TimeoutError')]

    **Sizing.** *workers* is the number of concurrent workers per stage, or a
    sequence with one count per stage (give the slow stage more).  *maxsize*
    bounds each stage's input queue, so a fast source or stage waits for a
    slow one instead of filling memory.  *source* may be a normal or an
    asynchronous iterable; it is read lazily.

    **Ending.** Once the source is exhausted, each stage's queue is joined in
    turn and that stage's idle workers are cancelled and awaited; no task is
    left behind.  An exception raised by *source* itself is re-raised, and if
    ``run_pipeline`` is cancelled every worker is cancelled and awaited before
    :exc:`asyncio.CancelledError` propagates; a further cancellation during
    that wait does not cut it short.  A stage that turns its cancellation
    into another exception (its cleanup raises) or swallows it does not keep
    its worker going: ``run_pipeline`` marks the workers it cancels, so on
    every Python version such a worker ends once the stage call has ended,
    and the stage's error is logged (``recipes.queues`` logger) with the
    stage name and the item's index.  On 3.11+ a worker ends the same way
    whoever cancels it.  On 3.8–3.10 without *timeout*, a cancellation that
    reaches a worker directly (``asyncio.run()`` cancels every task at exit)
    counts only once ``run_pipeline``, cancelled in the same sweep, has
    marked the worker, which may start one more item first.  The per-call
    timeout never hides a
    cancellation, even one that lands as a stage call ends (it is not
    :func:`asyncio.wait_for`, which can before Python 3.12: CPython issue
    86296).  A worker that ends for another
    reason (a stage raising :exc:`asyncio.CancelledError` or another
    ``BaseException``) makes ``run_pipeline`` raise :exc:`RuntimeError` rather
    than wait forever.

    Bad arguments raise before any item is read:

    >>> await run_pipeline([1, 2], square, workers=0)
    Traceback (most recent call last):
    ...
    ValueError: workers must be >= 1, got 0 for stage 'square'
    """
    if not stages:
        raise TypeError("run_pipeline() needs at least one stage")
    for stage in stages:
        if not callable(stage):
            raise TypeError(f"every stage must be an async callable, got {stage!r}")
    if not isinstance(source, (_IterableABC, _AsyncIterableABC)):
        raise TypeError(f"source must be an iterable or async iterable, got {source!r}")
    counts = list(workers) if isinstance(workers, _SequenceABC) else [workers] * len(stages)
    if len(counts) != len(stages):
        raise ValueError(f"got {len(counts)} worker counts for {len(stages)} stages")
    names = [_stage_name(stage) for stage in stages]
    for count, name in zip(counts, names):
        if isinstance(count, bool) or not isinstance(count, int):
            raise TypeError(f"workers must be an int, got {count!r} for stage {name!r}")
        if count < 1:
            raise ValueError(f"workers must be >= 1, got {count} for stage {name!r}")
    if maxsize < 1:
        raise ValueError(
            f"maxsize must be >= 1 (a bound is what gives backpressure), got {maxsize}"
        )
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds or None, got {timeout!r}")

    queues: List[asyncio.Queue[Tuple[int, Any]]] = [asyncio.Queue(maxsize) for _ in stages]
    results: Dict[int, Any] = {}
    failures: List[StageFailure] = []
    groups: List[List[asyncio.Task[None]]] = []
    stopping: Set[asyncio.Task[Any]] = set()  # the workers we cancel: see _call()
    for number, (stage, name, count) in enumerate(zip(stages, names, counts)):
        outbox = queues[number + 1] if number + 1 < len(stages) else None
        groups.append(
            [
                asyncio.create_task(
                    _stage_worker(
                        stage, name, queues[number], outbox, results, failures, timeout, stopping
                    ),
                    name=f"pipeline-{name}-{worker}",
                )
                for worker in range(count)
            ]
        )
    everything: List[asyncio.Task[Any]] = [task for group in groups for task in group]
    feeder = asyncio.create_task(_feed(source, queues[0]), name="pipeline-source")
    everything.append(feeder)
    try:
        alive = [task for group in groups for task in group]
        await _unless_workers_die(feeder, alive)
        for queue, group in zip(queues, groups):
            joiner = asyncio.create_task(queue.join(), name="pipeline-join")
            everything.append(joiner)
            await _unless_workers_die(joiner, alive)
            # Everything this stage will ever see is done: its workers sit idle in get().
            await _cancel_and_wait(group, stopping)
            alive = alive[len(group) :]
    finally:
        await _cancel_and_wait(everything, stopping)
    return PipelineResult(
        results=[results[index] for index in sorted(results)],
        failures=sorted(failures, key=lambda failure: failure.index),
    )
