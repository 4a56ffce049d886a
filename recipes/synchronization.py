"""asyncio runs one task at a time, so code between two ``await`` expressions never
interleaves with other tasks – but every ``await`` is a point where any other task may
run and change shared state.  The primitives in :mod:`asyncio` (``Lock``, ``Event``,
``Condition``, ``Semaphore``, ``Barrier``) coordinate tasks across those points.  This
chapter shows the race each one prevents, a copyable barrier for Python 3.8–3.10, a
per-key lock, a closable bounded buffer, a table for choosing between them, and the
pitfall of creating them before the event loop runs.  They coordinate *tasks on one
event loop*; they are not thread-safe (use :mod:`threading` or
``loop.call_soon_threadsafe`` across threads, as :doc:`/recipes/event_loop` shows).

Protecting a read-modify-write with a Lock
------------------------------------------

.. index::
   single: race condition
   pair: Lock; read-modify-write

A task that reads shared state, awaits, and writes back a value computed from what it
read loses every update made by other tasks during the ``await``.  No threads are
needed for this race; one ``await`` between the read and the write is enough:

>>> import asyncio
>>> from recipes.synchronization import BoundedBuffer, KeyedLock
>>> from recipes.synchronization import SimpleBarrier, wait_event
>>> account = {"balance": 0}
>>> async def deposit(amount):
...     balance = account["balance"]
...     await asyncio.sleep(0)  # e.g. write an audit record
...     account["balance"] = balance + amount
>>> _ = await asyncio.gather(*(deposit(1) for _ in range(100)))
>>> account["balance"]  # 99 deposits were lost
1

An :class:`asyncio.Lock` makes the read, the ``await`` and the write one step that
only one task at a time can be inside:

>>> account = {"balance": 0}
>>> lock = asyncio.Lock()
>>> async def deposit(amount):
...     async with lock:
...         balance = account["balance"]
...         await asyncio.sleep(0)
...         account["balance"] = balance + amount
>>> _ = await asyncio.gather(*(deposit(1) for _ in range(100)))
>>> account["balance"]
100

Hold a lock only around the shared state, never around slow I/O that does not
touch it, and always with ``async with`` (a bare ``acquire()`` whose ``release()`` is
skipped by an exception or a cancellation locks everyone out for good).  Code with
no ``await`` between read and write needs no lock at all.  When each *key* (a user, a
URL) needs its own lock, :class:`KeyedLock` creates them on demand and forgets them
when unused.

.. index::
   pair: Lock; reentrancy
   pair: deadlock; Lock

.. important::

   :class:`asyncio.Lock` is not reentrant.  A task that holds it and calls code that
   does ``async with lock`` again waits for itself for ever – no error, no message,
   just a task that never finishes.  Keep the locked region in one function, or pass
   "already locked" down explicitly.

Signalling with an Event
------------------------

.. index::
   pair: Event; signalling

An :class:`asyncio.Event` is a flag that tasks wait for: ``set()`` wakes every
current waiter, and later ``wait()`` calls return at once until ``clear()``.  It is
the tool for "something happened once" – startup finished, shutdown requested:

>>> ready = asyncio.Event()
>>> async def worker(name):
...     await ready.wait()
...     print(name, "starts")
>>> workers = [asyncio.create_task(worker(n)) for n in ("a", "b")]
>>> await asyncio.sleep(0.1)  # both are waiting
>>> ready.set()
a starts
b starts
>>> await asyncio.gather(*workers)
[None, None]
>>> ready.clear()
>>> await wait_event(ready, timeout=0.2)  # not set again within 0.2 s
False

An event carries no data and does not count: ``set()`` twice is one signal.  To hand
over values use a queue (:doc:`/recipes/queues`); to wait for "the state is now X"
use a condition.

Waiting for a condition
-----------------------

.. index::
   single: Condition
   pair: bounded buffer; producer/consumer

A :class:`asyncio.Condition` lets tasks sleep until shared state satisfies a
predicate.  ``await cond.wait_for(predicate)`` (with the condition's lock held)
releases the lock while sleeping and re-checks the predicate each time another task
calls ``cond.notify_all()`` after changing the state.  :class:`BoundedBuffer` is the
classic example – producers wait for room, consumers wait for items:

>>> buffer = BoundedBuffer(2)
>>> async def produce():
...     for i in range(4):
...         await buffer.put(i)
...         print("put", i, "size", len(buffer))
...     await buffer.close()
>>> async def consume():
...     async for item in buffer:
...         await asyncio.sleep(0.1)
...         print("got", item)
>>> _ = await asyncio.gather(produce(), consume())
put 0 size 1
put 1 size 2
put 2 size 2
got 0
put 3 size 2
got 1
got 2
got 3

For a plain producer/consumer hand-off :class:`asyncio.Queue` is simpler and
faster (:doc:`/recipes/queues` covers closing, priorities and pipelines); reach for a
condition when the predicate is about *your* state (a balance that must cover a
withdrawal, a set of workers that must be idle).

Limiting concurrency with a Semaphore
-------------------------------------

.. index::
   pair: Semaphore; concurrency limit
   single: BoundedSemaphore

A :class:`asyncio.Semaphore` holds a number of permits: ``async with sem`` takes one,
waiting while none is left.  Use it to cap how many tasks do something at once.  A
``release()`` without a matching ``acquire()`` – a classic bug in code that does not
use ``async with`` – silently adds a permit, and the cap is gone:

>>> async def peak_concurrency(sem, jobs):
...     active = peak = 0
...     async def job():
...         nonlocal active, peak
...         async with sem:
...             active += 1
...             peak = max(peak, active)
...             await asyncio.sleep(0.1)
...             active -= 1
...     await asyncio.gather(*(job() for _ in range(jobs)))
...     return peak
>>> sem = asyncio.Semaphore(2)
>>> await peak_concurrency(sem, 5)
2
>>> sem.release()  # no matching acquire
>>> await peak_concurrency(sem, 5)
3

.. index::
   single: error messages; BoundedSemaphore released too many times

:class:`asyncio.BoundedSemaphore` refuses to grow beyond its initial value, so the
bug fails loudly where it happens.  Prefer it whenever the count is a limit:

>>> bounded = asyncio.BoundedSemaphore(2)
>>> bounded.release()
Traceback (most recent call last):
  ...
ValueError: BoundedSemaphore released too many times

This section is about the primitive.  To limit a real workload, see
:ref:`recipes/limiting:Limiting concurrency with a semaphore`:
:func:`recipes.limiting.limit_concurrency` puts one limit on every call of a
function (one semaphore per event loop), and
:func:`recipes.limiting.bounded_gather` runs a batch of jobs with a fixed pool
of workers instead of one waiting task per job.  Use a semaphore of your own
to guard a section of your code; use those when the limit belongs to a
function or a batch.

Meeting at a Barrier
--------------------

.. index::
   single: Barrier
   pair: Barrier; Python 3.8–3.10

A barrier makes a fixed number of tasks (the *parties*) wait until all of them have
arrived, then releases them together; it then resets for the next round.  Use it for
phases: "every worker has loaded its shard – now all start computing".

.. versionadded:: 3.11
   :class:`asyncio.Barrier`.  Its ``wait()`` returns each party's arrival index (the
   last to arrive gets ``parties - 1``); it also has ``abort()``, ``reset()`` and
   ``asyncio.BrokenBarrierError``.

Three tasks arrive after 0.1, 0.2 and 0.3 s; each gets its arrival index, and all
leave at 0.3 s, when the last one arrives:

>>> loop = asyncio.get_running_loop()
>>> async def meet(barrier):
...     start = loop.time()
...     async def arrive(delay):
...         await asyncio.sleep(delay)
...         index = await barrier.wait()
...         return index, round(loop.time() - start, 1)
...     return await asyncio.gather(*(arrive(d) for d in (0.1, 0.2, 0.3)))
>>> await meet(asyncio.Barrier(3))  # doctest: +PY311
[(0, 0.3), (1, 0.3), (2, 0.3)]

On 3.8–3.10, :class:`SimpleBarrier` – a dozen lines on top of a condition – does the
same for the common case:

>>> await meet(SimpleBarrier(3))
[(0, 0.3), (1, 0.3), (2, 0.3)]

Creating primitives inside the running loop
-------------------------------------------

.. index::
   single: error messages; <asyncio.locks.Lock object at ...> is bound to a different event loop
   single: error messages; Task <Task pending ...> got Future <Future pending> \
attached to a different loop
   pair: Lock; event loop binding

Create locks, events, conditions, semaphores and queues inside the code that the
event loop runs – in ``main()``, or in the ``__init__`` of an object that ``main()``
creates – and never at module level.  Such a program can run :func:`asyncio.run` as
often as it likes, each time with a new event loop, as a test suite does:

.. script:: lock_per_run.py

   import asyncio


   class Service:
       def __init__(self):
           self.lock = asyncio.Lock()  # created inside the running loop

       async def handle(self, n):
           async with self.lock:
               await asyncio.sleep(0)
               return n


   async def main():
       service = Service()
       return await asyncio.gather(service.handle(1), service.handle(2))


   print(asyncio.run(main()))
   print(asyncio.run(main()))  # a second event loop

.. script-output::

   [1, 2]
   [1, 2]

.. versionchanged:: 3.10
   Primitives no longer take the loop when they are created (the ``loop`` parameter
   was removed); they bind to the loop that first needs them.

Created at import time instead, the lock works in the first event loop and fails
in the second one, as soon as a task has to wait for it:

.. script:: module_level_lock.py
   :requires-python: 3.10

   import asyncio

   lock = asyncio.Lock()  # the bug: created at import time


   async def handle(n):
       async with lock:
           await asyncio.sleep(0)
           return n


   async def main():
       return await asyncio.gather(handle(1), handle(2))


   print(asyncio.run(main()))
   try:
       print(asyncio.run(main()))
   except RuntimeError as exc:
       print("RuntimeError:", exc)

.. script-output::

   [1, 2]
   RuntimeError: <asyncio.locks.Lock object at 0x... [locked]> is bound to a different event loop

.. important::

   On Python 3.8 and 3.9 a primitive binds to the loop that
   ``asyncio.get_event_loop()`` returns *when it is created*.  Created at import time,
   that is not the loop :func:`asyncio.run` starts later, and the first time a task has
   to wait for it fails with ``RuntimeError: Task <Task pending ...> got Future
   <Future pending> attached to a different loop``.  From 3.10 on a primitive binds to
   the loop that first waits on it; reusing it from a second loop – a second
   ``asyncio.run()``, or the next test under pytest-asyncio with its fresh loop per
   test – fails with the error above.  Uncontended use never waits, so the error shows
   up only under load.

Choosing a primitive
--------------------

================================================  ======================================
You need to…                                      Use
================================================  ======================================
one task at a time through a read-await-write     :class:`asyncio.Lock`
the same, per user, URL or file                   :class:`KeyedLock`
tell many tasks that something happened, once     :class:`asyncio.Event`
wait until shared state satisfies a predicate     :class:`asyncio.Condition`
pass items from producers to consumers            :class:`asyncio.Queue`
… and close it, waking everyone (before 3.13)     :class:`BoundedBuffer`
at most *N* tasks in a section at once            :class:`asyncio.BoundedSemaphore`
… for every call of a function                    :func:`~recipes.limiting.limit_concurrency`
… for a batch of jobs, with a pool of workers     :func:`~recipes.limiting.bounded_gather`
*N* tasks wait for each other, round after round  ``asyncio.Barrier`` (Python 3.11+)
… on Python 3.8–3.10                              :class:`SimpleBarrier`
coordinate with threads                           :mod:`threading`, ``call_soon_threadsafe``
================================================  ======================================

Putting it together
-------------------

Three workers take turns on one counter per key and meet at a barrier between
phases:

>>> async def phase_worker(locks, barrier, counts, name):
...     for phase in range(2):
...         async with locks(phase):
...             value = counts.get(phase, 0)
...             await asyncio.sleep(0.1)
...             counts[phase] = value + 1
...         await barrier.wait()
>>> locks, barrier, counts = KeyedLock(), SimpleBarrier(3), {}
>>> workers = [phase_worker(locks, barrier, counts, n) for n in "abc"]
>>> _ = await asyncio.gather(*workers)
>>> counts, len(locks)
({0: 3, 1: 3}, 0)

A library does this
-------------------

.. index::
   single: aiorwlock
   pair: aiorwlock; comparison
   single: anyio; synchronization primitives
   pair: anyio; comparison

* `anyio <https://anyio.readthedocs.io/>`__ has its own ``Lock``,
  ``Event``, ``Condition`` and ``Semaphore`` for code that must also run on
  Trio, plus a ``CapacityLimiter`` whose size can be changed while it is in
  use.  A memory object stream
  (:ref:`recipes/queues:A library does this`) does the work of
  :class:`BoundedBuffer`: bounded, and closing the sending end ends the
  receivers' ``async for``.  It has no barrier and no per-key lock, so
  :class:`SimpleBarrier` and :class:`KeyedLock` have no counterpart there.
  Current releases need Python 3.10+.
* `aiorwlock <https://github.com/aio-libs/aiorwlock>`__ adds what this
  chapter does not build, a read-write lock: ``async with rwlock.reader:``
  may be held by many tasks at once, ``async with rwlock.writer:`` by one,
  and a waiting writer goes before readers that arrive after it, so a
  stream of readers cannot starve it.  It pays off when reads far
  outnumber writes and a read awaits while it holds the lock.  Needs Python
  3.9+.

See also
--------

* :doc:`/recipes/limiting`: semaphores applied to calls, batches and rates.
* :doc:`/recipes/queues`: handing items from producers to consumers.
* :doc:`/recipes/timeouts`: waiting for an event or a lock with a deadline.
* :doc:`/recipes/event_loop`: crossing from threads into the event loop.
* :doc:`/recipes/cancellation`: what a cancellation does to a task that holds or
  waits for a lock.
* Python: :doc:`python:library/asyncio-sync` (every primitive of this chapter),
  :doc:`python:library/asyncio-queue`, and :ref:`python:asyncio-multithreading`
  for threads.
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from contextlib import asynccontextmanager
from typing import (
    Any,
    AsyncContextManager,
    AsyncIterator,
    Awaitable,
    Deque,
    Dict,
    Generic,
    Hashable,
    List,
    Optional,
    TypeVar,
)

__all__ = [
    "BoundedBuffer",
    "BufferClosed",
    "KeyedLock",
    "SimpleBarrier",
    "wait_event",
]

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


class KeyedLock(Generic[K]):
    """One :class:`asyncio.Lock` per key, created on first use and dropped when unused.

    Tasks that use the same key run one at a time; different keys do not wait for
    each other:

    >>> import asyncio
    >>> from recipes.synchronization import KeyedLock
    >>> locks = KeyedLock()
    >>> async def fetch_once(url, cache):
    ...     async with locks(url):
    ...         if url not in cache:
    ...             await asyncio.sleep(0.1)  # the download
    ...             cache[url] = f"body of {url}"
    ...             print("downloaded", url)
    ...         return cache[url]
    >>> cache = {}
    >>> _ = await asyncio.gather(fetch_once("/a", cache), fetch_once("/a", cache),
    ...                          fetch_once("/b", cache))
    downloaded /a
    downloaded /b

    A key's lock exists only while a task holds or waits for it, so the number of
    keys seen does not grow memory without bound:

    >>> len(locks), locks.locked("/a")
    (0, False)

    Keys must be hashable; checking and filling the cache under the key's lock is what
    prevents the duplicate download above.
    """

    def __init__(self) -> None:
        self._locks: Dict[K, asyncio.Lock] = {}
        self._users: Dict[K, int] = {}

    def __call__(self, key: K) -> AsyncContextManager[None]:
        """Return an async context manager that holds the lock for ``key``."""
        hash(key)  # an unhashable key fails here, not inside ``async with``
        return self._hold(key)

    @asynccontextmanager
    async def _hold(self, key: K) -> AsyncIterator[None]:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key]
                del self._locks[key]

    def locked(self, key: K) -> bool:
        """Whether a task currently holds the lock for ``key``."""
        lock = self._locks.get(key)
        return lock is not None and lock.locked()

    def __len__(self) -> int:
        """The number of keys whose lock is held or awaited right now."""
        return len(self._locks)


async def wait_event(event: asyncio.Event, timeout: Optional[float]) -> bool:
    """Wait until ``event`` is set or ``timeout`` seconds pass; return whether it is set.

    The asyncio counterpart of ``threading.Event.wait(timeout)``: a timeout is a
    normal outcome here, not an exception.

    >>> import asyncio
    >>> from recipes.synchronization import wait_event
    >>> done = asyncio.Event()
    >>> await wait_event(done, timeout=0.2)
    False
    >>> asyncio.get_running_loop().call_later(0.1, done.set)  # doctest: +ELLIPSIS
    <TimerHandle ...>
    >>> await wait_event(done, timeout=5)
    True

    ``timeout=None`` waits for ever, like ``await event.wait()``.  A cancellation of
    the waiting task still propagates as :exc:`asyncio.CancelledError`, also one that
    arrives in the very loop step in which the event is set.  On 3.8–3.11,
    ``asyncio.wait_for(event.wait(), timeout)`` returns normally in that case and the
    cancellation is lost (CPython gh-86296), so this recipe does not use it.
    """
    if timeout is not None and (isinstance(timeout, bool) or not timeout >= 0):
        raise ValueError(
            f"timeout must be a non-negative number of seconds or None, not {timeout!r}"
        )
    if event.is_set():
        return True
    try:
        await _wait_for(event.wait(), timeout)
    except asyncio.TimeoutError:
        return event.is_set()
    return True


class BufferClosed(Exception):
    """Raised by :meth:`BoundedBuffer.put` after ``close()``, and by ``get()`` once drained."""


class BoundedBuffer(Generic[T]):
    """A first-in, first-out buffer of at most ``capacity`` items that can be closed.

    ``put()`` waits while the buffer is full; ``get()`` waits while it is empty.
    ``close()`` wakes everyone: producers then fail with :exc:`BufferClosed`, and
    consumers drain the remaining items before they do (``async for`` simply ends):

    >>> import asyncio
    >>> from recipes.synchronization import BoundedBuffer
    >>> buffer = BoundedBuffer(3)
    >>> for word in ("to", "be", "or"):
    ...     await buffer.put(word)
    >>> await buffer.close()
    >>> [word async for word in buffer]
    ['to', 'be', 'or']
    >>> await buffer.put("not")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
      ...
    BufferClosed: put() on a closed BoundedBuffer

    A producer blocked on a full buffer is released by ``close()`` too, so shutdown
    never hangs on a stuck ``put()``:

    >>> buffer = BoundedBuffer(1)
    >>> await buffer.put("first")
    >>> blocked = asyncio.create_task(buffer.put("second"))
    >>> await asyncio.sleep(0.1)
    >>> await buffer.close()
    >>> await asyncio.gather(blocked, return_exceptions=True)
    [BufferClosed('put() on a closed BoundedBuffer')]

    It is built on two :class:`asyncio.Condition` objects sharing one lock ("not
    full" and "not empty"), and notifies *all* waiters of a kind after each change:
    before Python 3.13 (CPython issue 112202), a waiter woken by ``notify(1)`` and
    cancelled at the same moment swallowed the wake-up, and an item could sit in the
    buffer while a consumer slept.  Python 3.13's ``asyncio.Queue.shutdown()`` covers
    the same need as ``close()``.
    """

    def __init__(self, capacity: int) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int):
            raise TypeError(f"capacity must be an int, not {type(capacity).__name__}")
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity!r}")
        self._capacity = capacity
        self._items: Deque[T] = deque()
        self._closed = False
        lock = asyncio.Lock()
        self._not_full = asyncio.Condition(lock)
        self._not_empty = asyncio.Condition(lock)

    @property
    def capacity(self) -> int:
        """The most items the buffer holds at once."""
        return self._capacity

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._closed

    def __len__(self) -> int:
        return len(self._items)

    async def put(self, item: T) -> None:
        """Append ``item``, waiting while the buffer is full; :exc:`BufferClosed` if closed."""
        async with self._not_full:
            await self._not_full.wait_for(
                lambda: self._closed or len(self._items) < self._capacity
            )
            if self._closed:
                raise BufferClosed("put() on a closed BoundedBuffer")
            self._items.append(item)
            self._not_empty.notify_all()

    async def get(self) -> T:
        """Remove and return the oldest item, waiting while the buffer is empty.

        Raises :exc:`BufferClosed` when the buffer is closed and empty.
        """
        async with self._not_empty:
            await self._not_empty.wait_for(lambda: self._closed or bool(self._items))
            if not self._items:
                raise BufferClosed("get() on a closed, empty BoundedBuffer")
            item = self._items.popleft()
            self._not_full.notify_all()
            return item

    async def close(self) -> None:
        """Refuse new items and wake every waiting producer and consumer."""
        async with self._not_full:
            self._closed = True
            self._not_full.notify_all()
            self._not_empty.notify_all()

    async def __aiter__(self) -> AsyncIterator[T]:
        """Yield items until the buffer is closed and drained."""
        while True:
            try:
                item = await self.get()
            except BufferClosed:
                return
            yield item


class _Round:
    """The parties that have arrived at a barrier in one round."""

    def __init__(self) -> None:
        self.arrived: List[object] = []
        self.complete = False


class SimpleBarrier:
    """Make ``parties`` tasks wait for each other; reusable round after round.

    A copyable stand-in for :class:`asyncio.Barrier` (3.11+) on Python 3.8–3.10.
    ``wait()`` returns the party's arrival index in its round, ``0`` to
    ``parties - 1``:

    >>> import asyncio
    >>> from recipes.synchronization import SimpleBarrier
    >>> barrier = SimpleBarrier(2)
    >>> async def step(name, delay):
    ...     for round_no in range(2):
    ...         await asyncio.sleep(delay)
    ...         index = await barrier.wait()
    ...         print(f"round {round_no}: {name} arrived #{index}")
    >>> _ = await asyncio.gather(step("slow", 0.2), step("fast", 0.1))
    round 0: slow arrived #1
    round 0: fast arrived #0
    round 1: slow arrived #1
    round 1: fast arrived #0

    A task that is cancelled while waiting (for example by :func:`asyncio.wait_for`)
    leaves the round, and the round then needs another party:

    >>> barrier = SimpleBarrier(2)
    >>> try:
    ...     await asyncio.wait_for(barrier.wait(), 0.1)
    ... except asyncio.TimeoutError:
    ...     print("nobody else came")
    nobody else came
    >>> barrier.n_waiting
    0

    There is no ``abort()``/``reset()`` and no broken state: a round completes only
    when ``parties`` tasks are waiting at the same time.  (``asyncio.Barrier`` also
    lets a cancelled party leave, but it may then hand out an index twice in that
    round; this one keeps them unique.)
    """

    def __init__(self, parties: int) -> None:
        if isinstance(parties, bool) or not isinstance(parties, int):
            raise TypeError(f"parties must be an int, not {type(parties).__name__}")
        if parties < 1:
            raise ValueError(f"parties must be at least 1, not {parties!r}")
        self._parties = parties
        self._cond = asyncio.Condition()
        self._round = _Round()

    @property
    def parties(self) -> int:
        """How many tasks each round waits for."""
        return self._parties

    @property
    def n_waiting(self) -> int:
        """How many tasks are waiting in the current round."""
        return len(self._round.arrived)

    async def wait(self) -> int:
        """Wait until ``parties`` tasks are waiting; return this task's arrival index."""
        async with self._cond:
            current = self._round
            me = object()
            current.arrived.append(me)
            if len(current.arrived) == self._parties:
                current.complete = True
                self._round = _Round()
                self._cond.notify_all()
            else:
                try:
                    await self._cond.wait_for(lambda: current.complete)
                except asyncio.CancelledError:
                    if not current.complete:
                        current.arrived.remove(me)
                    raise
            return current.arrived.index(me)


async def _wait_for(aw: Awaitable[T], timeout: Optional[float]) -> T:
    """``asyncio.wait_for(aw, timeout)``, minus its lost cancellation on 3.8–3.11.

    There, a caller that is cancelled in the loop step in which ``aw`` finishes
    gets the result, and the cancellation is gone (CPython gh-86296).  Here it
    always raises :exc:`asyncio.CancelledError`.
    """
    if sys.version_info >= (3, 11):
        # The scope cancels this very task and counts cancel requests: it never
        # takes someone else's cancellation for its timeout, nor drops one.
        async with asyncio.timeout(timeout):
            return await aw
    task = asyncio.ensure_future(aw)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    except asyncio.CancelledError:  # even if the task has just finished
        await _cancel_and_wait(task)
        raise
    if not done:
        await _cancel_and_wait(task)
        if task.cancelled():
            raise asyncio.TimeoutError
    return task.result()


async def _cancel_and_wait(task: asyncio.Future[Any]) -> None:
    """Cancel ``task`` and wait for its cleanup, also if the caller is cancelled meanwhile."""
    task.cancel()
    cancelled = False
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
