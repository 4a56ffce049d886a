"""Keep the event loop free while pure-Python computation uses every core.

An event loop runs one callback at a time.  A coroutine that spends 200 ms
computing holds every other task up for those 200 ms: no response is read,
no heartbeat fires, and timeouts elsewhere expire because of your own code.
Moving the computation to a thread keeps the loop responsive, but with the
global interpreter lock (GIL) only one thread runs Python code at a time, so
the work is no faster.  Other *processes* run on other cores.  This chapter
shows how to hand CPU-bound work to a
:class:`~concurrent.futures.ProcessPoolExecutor` from async code, in chunks
big enough to be worth the trip; what cancellation can and cannot stop; how
to survive a worker that crashes; when threads, processes or both are the
right choice (with measurements); how to run one event loop per thread; and
what the free-threaded builds of Python 3.13 and 3.14 change.

Running CPU-bound code in a process pool
----------------------------------------

.. index::
   pair: CPU-bound work; ProcessPoolExecutor
   pair: ProcessPoolExecutor; run_in_executor
   single: start method; spawn
   single: start method; forkserver
   single: mp_context
   single: error messages; Can't pickle <function ...>: attribute lookup ... on __main__ failed
   single: error messages; Can't pickle <function ...>: it's not found as __main__....

``await loop.run_in_executor(pool, func, *args)`` sends ``func`` and its
arguments to a worker process, and the awaiting task sleeps until the result
comes back; meanwhile the loop runs everything else.  :func:`process_pool`
makes the pool, with the start method named explicitly, and
:func:`count_primes` stands in for your CPU-heavy function:

>>> import asyncio
>>> from recipes.parallelism import count_primes, process_pool
>>> loop = asyncio.get_running_loop()
>>> with process_pool(2) as pool:
...     below_10k = await loop.run_in_executor(pool, count_primes, 10_000)
...     both = await asyncio.gather(
...         loop.run_in_executor(pool, count_primes, 0, 5_000),
...         loop.run_in_executor(pool, count_primes, 5_000, 10_000),
...     )
>>> below_10k, both, sum(both)
(1229, [669, 560], 1229)

The function travels to the worker *by name*: :mod:`pickle` records
``recipes.parallelism.count_primes``, and the worker imports
:mod:`recipes.parallelism` to find it.  So the function must live in a
module that the worker can import.  A function you type at the ``>>>``
prompt lives in ``__main__``, and the REPL's ``__main__`` cannot be imported
by anyone, so it fails before any worker sees it:

>>> def square(x):
...     return x * x
>>> with process_pool(1) as pool:  # doctest: +IGNORE_EXCEPTION_DETAIL
...     await loop.run_in_executor(pool, square, 3)
Traceback (most recent call last):
...
_pickle.PicklingError: Can't pickle <function square at 0x...>: ...

The message ends in ``attribute lookup square on __main__ failed`` up to
Python 3.13 and in ``it's not found as __main__.square`` from 3.14.  Lambdas
and functions defined inside other functions fail the same way (``Can't
pickle local object``).  Put the function in a module of your own and import
it, as the examples here import :func:`count_primes`.

.. important::

   How worker processes start matters.  ``fork`` copies the parent process,
   threads' locks included, which is unsafe once the parent runs threads (an
   asyncio program has the loop's default thread pool), and Python 3.12
   warns about it: ``DeprecationWarning: This process ... is multi-threaded,
   use of fork() may lead to deadlocks in the child``.  ``spawn`` and
   ``forkserver`` start a fresh interpreter that imports what it needs, and
   from Python 3.14, ``forkserver`` is the default on Linux (``spawn`` has
   long been the default on Windows and macOS).  A pool made without
   ``mp_context`` therefore behaves differently on 3.13 and on 3.14.
   :func:`process_pool` always passes one (``spawn`` unless told otherwise),
   so the pool behaves the same on every version and platform.  In a script,
   start the pool under ``if __name__ == "__main__":``: with ``spawn`` and
   ``forkserver`` each worker imports the main script again, and without
   the guard it would run the script's top-level code too.

.. versionchanged:: 3.14
   On Linux, the default start method of :mod:`multiprocessing` (and so of a
   :class:`~concurrent.futures.ProcessPoolExecutor` made without
   ``mp_context``) is ``forkserver``; it was ``fork`` before.

Splitting a big batch into chunks
---------------------------------

.. index::
   single: chunking
   pair: ProcessPoolExecutor; chunksize
   pair: overhead; per task

Every call sent to a process costs pickling the function and its arguments,
a trip through a pipe, and the same for the result: tens of microseconds at
best.  For ten thousand small items that overhead can exceed the work
itself.  :func:`map_in_chunks` sends the items in lists of ``chunksize``,
runs ``func`` on each item of a list inside the worker, and returns the
results in the order of the items:

>>> from recipes.parallelism import map_in_chunks
>>> limits = [10, 100, 1_000, 10_000, 20, 200]
>>> with process_pool(2) as pool:
...     counts = await map_in_chunks(pool, count_primes, limits, chunksize=2)
>>> counts
[4, 25, 168, 1229, 8, 46]
>>> counts == [count_primes(limit) for limit in limits]
True

:func:`chunked` is the splitting step on its own; the last chunk may be
shorter:

>>> from recipes.parallelism import chunked
>>> list(chunked(range(7), 3))
[[0, 1, 2], [3, 4, 5], [6]]

On the benchmark of this chapter, 20,000 calls of ``count_primes(200)``
(40 µs each) took 2.09 s sent one by one to a pool of two processes, and
0.22 s through :func:`map_in_chunks`: 9.4x faster, for a change of one line.

Without ``chunksize``, :func:`map_in_chunks` makes about four chunks per CPU,
enough to keep every worker busy when some chunks take longer than others,
and few enough that the overhead stays small.  Choose a larger chunk when the
items are tiny, a smaller one when each takes long or when you want results
to arrive early.  :meth:`Executor.map() <concurrent.futures.Executor.map>`
has a ``chunksize`` too, but its iterator blocks the thread that reads it,
so it does not belong in a coroutine.

.. important::

   All chunks are handed to the pool at once, and the pool keeps all of
   them (and later all results) in memory.  For a stream of unknown length,
   feed it in slices, or bound the chunks in flight with a semaphore (see
   :doc:`/recipes/limiting`).

Cancelling work you no longer need
----------------------------------

.. index::
   pair: cancellation; ProcessPoolExecutor
   pair: shutdown; cancel_futures
   single: terminate_workers
   single: orphan process

Cancelling the task that awaits ``run_in_executor`` ends the *wait*.  What
happens to the call depends on where it is: one still waiting in the pool's
queue is cancelled and never runs, but one that a worker has started runs to
the end, and its result is thrown away.  A process pool cannot interrupt a
function halfway.  Here one worker and two calls: the first is running when
both waits are cancelled, the second is still queued:

>>> import time
>>> with process_pool(1) as pool:
...     first = loop.run_in_executor(pool, time.sleep, 0.3)
...     second = loop.run_in_executor(pool, count_primes, 100)
...     await asyncio.sleep(0.1)
...     first.cancel(), second.cancel()
(True, True)
>>> first.cancelled(), second.cancelled()
(True, True)

Both awaitables report cancelled, yet the worker slept its 0.3 s all the
same: the ``with`` block (which calls ``pool.shutdown(wait=True)``) waited
for it.  The pool hands a call to a worker early (it keeps one more call
queued than it has workers, already "running" as far as cancelling is
concerned), so even a call that has not started may be past the point of
cancelling.

To drop everything that has not started when you close the pool, pass
``cancel_futures=True`` to :meth:`~concurrent.futures.Executor.shutdown`:

>>> pool = process_pool(1)
>>> calls = [loop.run_in_executor(pool, time.sleep, 0.2) for _ in range(5)]
>>> await asyncio.sleep(0.05)
>>> pool.shutdown(cancel_futures=True)  # doctest: +PY39
>>> sorted(call.cancelled() for call in calls)  # doctest: +PY39
[False, False, True, True, True]

.. versionadded:: 3.9
   The ``cancel_futures`` argument.  On 3.8, cancel the futures you hold
   before calling ``shutdown()``: each cancel reaches the pool and removes
   the call if it has not started.  :class:`ProcessRunner` keeps its calls
   and does that on every version.

>>> for call in calls:
...     _ = call.cancel()
>>> pool.shutdown()

.. important::

   ``asyncio.wait_for(loop.run_in_executor(pool, f), 5)`` gives up after
   five seconds, but ``f`` keeps a worker busy until it returns, and a
   pool whose workers all run abandoned calls serves nobody.  Give long
   computations a budget of their own (an iteration limit, a deadline they
   check), or run them in a process of their own that you can kill (see
   :doc:`/recipes/subprocesses`).  Python 3.14 adds
   :meth:`~concurrent.futures.ProcessPoolExecutor.terminate_workers` and
   :meth:`~concurrent.futures.ProcessPoolExecutor.kill_workers`, which stop
   every worker of a pool at once and leave the pool broken (see the next
   section); before 3.14 there is no public way to stop a worker that is
   running a call.

.. versionadded:: 3.14
   :meth:`~concurrent.futures.ProcessPoolExecutor.terminate_workers` and
   :meth:`~concurrent.futures.ProcessPoolExecutor.kill_workers`.

Recovering from a crashed worker
--------------------------------

.. index::
   single: BrokenProcessPool
   single: error messages; A process in the process pool was terminated abruptly while the future was running or pending.
   single: error messages; A child process terminated abruptly, the process pool is not usable anymore
   pair: ProcessPoolExecutor; recreating
   single: SIGKILL; worker process

A worker that dies without answering (a segfault in a C extension, the
out-of-memory killer, ``os._exit()``) breaks the whole pool: the call it ran
and every other pending call fail with
:exc:`~concurrent.futures.process.BrokenProcessPool`, the other workers are
stopped, and the pool refuses new calls for good.  Here the crash is
``os._exit(1)`` run in the worker:

>>> import os
>>> from concurrent.futures.process import BrokenProcessPool
>>> with process_pool(1) as pool:
...     try:
...         await loop.run_in_executor(pool, os._exit, 1)
...     except BrokenProcessPool as error:
...         print("crashed:", error)
...     try:
...         await loop.run_in_executor(pool, count_primes, 100)
...     except BrokenProcessPool as error:
...         print("afterwards:", error)
crashed: A process in the process pool was terminated abruptly ...
afterwards: A child process terminated abruptly, the process pool ...

A long-running service needs a pool that comes back.  :class:`ProcessRunner`
wraps one: when a call finds the pool broken, it replaces the pool with a
new one and raises the error to that caller, and the next call runs on the
new pool.  It does not retry the call itself: the same input may crash the
next worker too, so retrying is the caller's decision.  It is an async
context manager, and closes the pool without blocking the loop:

>>> from recipes.parallelism import ProcessRunner
>>> async with ProcessRunner(workers=2) as runner:
...     try:
...         await runner.run(os._exit, 1)
...     except BrokenProcessPool:
...         print("lost a worker")
...     print(await runner.run(count_primes, 1_000), runner.restarts)
lost a worker
168 1

.. important::

   A crash fails every call in flight on the pool, not only the one that
   crashed: the pool cannot tell which call killed its worker.  Calls that
   may crash deserve a pool of their own, so that they do not take other
   work down with them.

Threads, processes, or both
---------------------------

.. index::
   single: GIL; threads vs processes
   pair: ThreadPoolExecutor; CPU-bound work
   single: responsiveness; event loop

The benchmark of this chapter (``benchmarks/bench_parallelism.py``) counts
the primes in sixteen ranges of 30,000 numbers, about 60 ms of pure Python
each, while a task asks to wake every 10 ms and records how late the loop
lets it run.  On 2 CPUs with Python 3.15 (best of five runs, with little
other work on the machine):

* **In the loop**: 0.95 s, and the heartbeat up to 178 ms late.  Each call
  holds the loop for its whole duration, and the ``await asyncio.sleep(0)``
  between calls does less than it seems: a task whose timer fell due
  meanwhile runs only after the next *two* calls, so it waits for up to
  three of them.
* **In a thread pool of two**: 1.11 s, a little *slower* than the loop
  (0.85x): the GIL lets one thread run Python code at a time, and the
  threads spend time handing it over.  The loop stays usable but not
  prompt, with the heartbeat up to 22 ms late: the loop's thread must win
  the GIL back from the computing ones, which let go of it every 5 ms at
  best (:func:`sys.setswitchinterval`).
* **In a process pool of two**: 0.55 s, 1.74x faster (the ideal on two
  cores is 2x), and the heartbeat at most 3 ms late: the computation runs
  on other cores, and the loop is free.

Figures from one machine, which move with the load: on runs made while
other programs competed for the two cores, the process pool was only 1.1x
to 1.6x faster than the loop, while threads stayed at about 1x.

Threads remain the right tool for blocking *I/O* and for C code that
releases the GIL while it works (:mod:`hashlib` on large inputs,
:mod:`zlib`, most of NumPy): such code runs in parallel in threads, with no
pickling.  Use processes for pure-Python computation.  Programs often need
both, each for its own kind of work.  With forty blocking calls of 20 ms
(``time.sleep``, standing in for blocking I/O) added to the batch above,
the benchmark took 1.06 s with everything in ten threads, 0.95 s with
everything in the two processes (the blocking calls occupy them), and
0.52 s with the computation in the processes and the blocking calls in the
threads: 2x faster than either alone.  In code:

>>> async def handle(limit):
...     pause = loop.run_in_executor(None, time.sleep, 0.05)  # I/O-like
...     count = loop.run_in_executor(pool, count_primes, limit)
...     await pause
...     return await count
>>> with process_pool(2) as pool:
...     await asyncio.gather(handle(100), handle(1_000))
[25, 168]

``None`` as the executor is the loop's default thread pool; a process pool
is passed explicitly.  What each costs: a thread starts in microseconds and
shares the program's memory; a process pool of two took 0.2 s to start
with ``spawn`` on the benchmark's machine (make it once, keep it for the
life of the program), and every call copies its arguments and result
through pickle (send small inputs, return small results).

Running one event loop per thread
---------------------------------

.. index::
   pair: event loop; per thread
   single: run_coroutine_threadsafe
   pair: thread; event loop

One loop belongs to one thread.  A second loop in another thread is useful
when a component must keep its own loop (a client library whose objects
belong to one loop, a server you want isolated from the rest) and, on a
free-threaded build, to run Python code on several cores at once.
:class:`EventLoopThread` starts a thread that runs :func:`asyncio.run`
with a coroutine that waits to be told to stop; ``submit()`` hands it a
coroutine with :func:`asyncio.run_coroutine_threadsafe`, and ``stop()``
lets :func:`asyncio.run` cancel what is left, close the loop and end the
thread.  (:class:`recipes.sync_bridge.Portal` is the same idea grown for
synchronous callers: timeouts per call, callers released at shutdown, a
facade over an async client; use it when sync code drives the loop, and this
small class when one component only needs a loop of its own.)

>>> import threading
>>> from recipes.parallelism import EventLoopThread
>>> async def where():
...     await asyncio.sleep(0.01)
...     return threading.current_thread().name
>>> with EventLoopThread(name="loop-a") as a, EventLoopThread(
...     name="loop-b"
... ) as b:
...     answers = await asyncio.gather(
...         asyncio.wrap_future(a.submit(where())),
...         asyncio.wrap_future(b.submit(where())),
...     )
>>> answers
['loop-a', 'loop-b']
>>> a.running, b.running, [t.name for t in threading.enumerate()
...                        if t.name.startswith("loop-")]
(False, False, [])

``submit()`` returns a :class:`concurrent.futures.Future`:
:func:`asyncio.wrap_future` awaits it from another loop, as above, and
plain synchronous code calls ``run(coro, timeout=...)``, which waits for the
result.  Each loop's objects stay on that loop: a task, future, lock or
queue made on ``loop-a`` must not be awaited from ``loop-b``.  Hand values
between loops through ``submit()``, :meth:`loop.call_soon_threadsafe
<asyncio.loop.call_soon_threadsafe>`, or a :class:`queue.Queue`.

.. important::

   ``run()`` called *from inside the same loop thread* would wait for a
   coroutine that can only run once it returns: a deadlock.
   :class:`EventLoopThread` refuses that with ``RuntimeError``.  Calling
   ``run()`` from a coroutine on another loop does not deadlock, but blocks
   that loop while it waits: there, ``await asyncio.wrap_future(...)``.

What free-threaded Python changes
---------------------------------

.. index::
   single: free-threaded Python
   single: GIL; free-threaded build
   single: python3.13t
   single: sys._is_gil_enabled

CPython 3.13 added an optional *free-threaded* build (:pep:`703`; the
interpreter is usually installed as ``python3.13t``) in which the GIL is
disabled.  In 3.13 it is experimental, with a substantial single-threaded
slowdown; from 3.14 it is supported (:pep:`779`), with a smaller overhead.
No such build is available on the machine that tests this cookbook, so
this section reports what the CPython documentation says; none of it has
been run here:

* Threads run Python code on several cores at once, so a
  ``ThreadPoolExecutor`` speeds up pure-Python computation the way a
  process pool does, without pickling or process start-up.
* asyncio itself is safe to use from several threads in the free-threaded
  build from Python 3.14 (:doc:`python:library/asyncio-threading`), and
  running one event loop per thread, as :class:`EventLoopThread` does, lets
  the loops' Python code run in parallel.
* The rules do not change: a loop, and the tasks, futures, locks and
  queues made on it, belong to one thread.  Cross over with
  :func:`asyncio.run_coroutine_threadsafe` and
  :meth:`loop.call_soon_threadsafe <asyncio.loop.call_soon_threadsafe>`,
  and synchronize threads with :mod:`threading`, not asyncio, primitives.
* Code that was thread-safe "because of the GIL" (a check-then-set on a
  shared dict from several threads) now races for real.
* An extension module that does not declare itself free-threading safe
  turns the GIL back on when it is imported, with a warning; so can
  ``PYTHON_GIL=1`` or ``-X gil=1``.  Check the libraries you depend on.
* Processes keep their place: they isolate crashes (a segfault takes one
  worker down, not the program), and they work on every build.

:func:`gil_enabled` tells which case a program runs in (``False`` only on a
free-threaded build with the GIL off).  Whether the interpreter is a
free-threaded build at all, ``python -VV`` says, and so does
``sysconfig.get_config_var("Py_GIL_DISABLED")`` (``1`` on such a build):

>>> from recipes.parallelism import gil_enabled
>>> gil_enabled()
True

.. versionadded:: 3.13
   :func:`sys._is_gil_enabled`; :func:`gil_enabled` answers ``True`` on older
   versions, which always have the GIL.

Putting it together
-------------------

A program that counts primes in twelve ranges on two processes while its
event loop keeps a heartbeat; the worker processes import this module, so
the pool is made under the ``__main__`` guard:

.. script:: primes.py

   import asyncio

   from recipes.parallelism import ProcessRunner, count_primes


   async def heartbeat(beats):
       while True:
           await asyncio.sleep(0.01)
           beats.append(1)


   async def main():
       ranges = [(start, start + 5_000) for start in range(0, 60_000, 5_000)]
       beats = []
       beating = asyncio.create_task(heartbeat(beats))
       async with ProcessRunner(workers=2) as runner:
           counts = await asyncio.gather(
               *(runner.run(count_primes, start, stop) for start, stop in ranges)
           )
       beating.cancel()
       print("primes below 60,000:", sum(counts))
       print("per range:", counts[:4], "...")
       print("the loop stayed free:", len(beats) > 0)


   if __name__ == "__main__":
       asyncio.run(main())

.. script-output::

   primes below 60,000: 6057
   per range: [669, 560, 525, 508] ...
   the loop stayed free: True

A library does this
-------------------

.. index::
   single: anyio; to_process
   single: anyio; blocking portal
   pair: process pool; libraries

`anyio <https://anyio.readthedocs.io/en/stable/subprocesses.html>`__ has
``await anyio.to_process.run_sync(func, *args)``, which runs in asyncio
programs too.  Its workers are child processes running ``sys.executable``
that receive pickled calls on a pipe, at most one call each, by default as
many at once as there are CPUs; idle ones are reused for five minutes.  A
worker that dies fails only its own call (``BrokenWorkerProcess``), not
every pending call as in a broken pool, and the next call starts a new
worker.  Cancelling the caller waits for the call to finish, unless you pass
``cancellable=True``, and then that worker is killed: one running call can
be stopped without ending a whole pool.  It has no ``map`` and no chunking:
each item is a round trip.  Choose it for a few long calls you may need to
abandon, or in code already written for anyio; the recipes keep the standard
:class:`~concurrent.futures.ProcessPoolExecutor` and chunk big batches.

For :class:`EventLoopThread`, anyio has a *blocking portal*: ``with
anyio.from_thread.start_blocking_portal() as portal`` runs an event loop in
a new thread, ``portal.call(async_fn, *args)`` waits for a result, and
``portal.start_task_soon()`` returns a :class:`concurrent.futures.Future`.
Leaving the block normally waits for the tasks still running there, where
:meth:`EventLoopThread.stop` cancels them; leaving it with an exception
cancels them too.

See also
--------

* :ref:`recipes/coroutines:Running blocking code off the loop` – one blocking
  call in a thread, and why threads do not speed up CPU-bound code.
* :ref:`recipes/crawler:Parsing off the event loop` – a process pool in a real
  program: batches of pages parsed on other cores.
* :doc:`/recipes/limiting` – bounding how much work is in flight.
* :doc:`/recipes/event_loop` – what a loop owns, and crossing threads with
  ``call_soon_threadsafe``.
* :doc:`/recipes/subprocesses` – a process of its own, which you can kill.
* Python: :ref:`Executing code in thread or process pools
  <python:asyncio-pass-keywords>`, :mod:`concurrent.futures`,
  :ref:`multiprocessing start methods <python:multiprocessing-start-methods>`,
  :doc:`python:library/asyncio-threading` and
  :doc:`python:howto/free-threading-python`.
"""  # noqa: E501

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import math
import multiprocessing
import os
import sys
import threading
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from types import TracebackType
from typing import (
    Any,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    List,
    Optional,
    Sequence,
    Set,
    Type,
    TypeVar,
)

__all__ = [
    "count_primes",
    "process_pool",
    "map_in_chunks",
    "chunked",
    "ProcessRunner",
    "EventLoopThread",
    "gil_enabled",
]

T = TypeVar("T")
R = TypeVar("R")

_START_METHODS = ("spawn", "forkserver", "fork")


# --- the CPU-bound example ----------------------------------------------------


def count_primes(start: int, stop: Optional[int] = None) -> int:
    """How many primes ``n`` satisfy ``start <= n < stop``, by trial division.

    With one argument, like :class:`range`: the primes below ``start``.  It is
    deliberately plain Python, so that it holds the GIL the whole time: a
    stand-in for your own CPU-bound function.  It lives in this module (not
    in ``__main__``) so that worker processes can import it.

    >>> from recipes.parallelism import count_primes
    >>> count_primes(100)
    25
    >>> count_primes(100, 200)
    21
    >>> count_primes(10, 5), count_primes(-50, 3)
    (0, 1)
    """
    if stop is None:
        start, stop = 0, start
    for name, value in (("start", start), ("stop", stop)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    count = 0
    for number in range(max(start, 2), stop):
        if number % 2 == 0:
            count += number == 2
            continue
        divisor = 3
        while divisor * divisor <= number:
            if number % divisor == 0:
                break
            divisor += 2
        else:
            count += 1
    return count


# --- the pool -------------------------------------------------------------------


def process_pool(workers: Optional[int] = None, *, start_method: str = "spawn") -> Executor:
    """A :class:`~concurrent.futures.ProcessPoolExecutor` with an explicit start method.

    ``workers`` defaults to the number of CPUs.  ``start_method`` is
    ``"spawn"`` (the default here, available everywhere), ``"forkserver"``
    (Unix) or ``"fork"`` (Unix; unsafe once the program runs threads).  Use
    the pool as a context manager, or call ``shutdown()``, so its processes
    end with it.  The return type is annotated as
    :class:`~concurrent.futures.Executor`; for methods only a process pool
    has (``terminate_workers()``, 3.14+), ``typing.cast`` it to
    ``ProcessPoolExecutor``.

    >>> import asyncio
    >>> from recipes.parallelism import count_primes, process_pool
    >>> loop = asyncio.get_running_loop()
    >>> with process_pool(1) as pool:
    ...     await loop.run_in_executor(pool, count_primes, 50)
    15

    Bad arguments fail at once, not in a worker:

    >>> process_pool(0)
    Traceback (most recent call last):
    ...
    ValueError: workers must be at least 1, got 0
    >>> process_pool(1, start_method="thread")
    Traceback (most recent call last):
    ...
    ValueError: start_method must be one of 'spawn', 'forkserver', 'fork'; ...
    """
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if start_method not in _START_METHODS:
        names = ", ".join(repr(name) for name in _START_METHODS)
        raise ValueError(f"start_method must be one of {names}; got {start_method!r}")
    if start_method not in multiprocessing.get_all_start_methods():
        raise ValueError(f"start method {start_method!r} is not available on {sys.platform}")
    context = multiprocessing.get_context(start_method)
    return ProcessPoolExecutor(workers, mp_context=context)


# --- chunking -------------------------------------------------------------------


def chunked(items: Iterable[T], size: int) -> Iterator[List[T]]:
    """Yield lists of ``size`` consecutive items; the last one may be shorter.

    >>> from recipes.parallelism import chunked
    >>> list(chunked("abcdefg", 3))
    [['a', 'b', 'c'], ['d', 'e', 'f'], ['g']]
    >>> list(chunked([], 3))
    []
    >>> list(chunked([1, 2], 0))
    Traceback (most recent call last):
    ...
    ValueError: size must be at least 1, got 0
    """
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    chunk: List[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _apply_to_chunk(func: Callable[[T], R], chunk: Sequence[T]) -> List[R]:
    """Runs in the worker: one round trip for a whole chunk."""
    return [func(item) for item in chunk]


def _default_chunksize(count: int) -> int:
    return max(1, math.ceil(count / (4 * (os.cpu_count() or 1))))


async def map_in_chunks(
    executor: concurrent.futures.Executor,
    func: Callable[[T], R],
    items: Iterable[T],
    *,
    chunksize: Optional[int] = None,
) -> List[R]:
    """``[func(item) for item in items]``, computed in ``executor``, chunk by chunk.

    The results come back in the order of ``items``.  ``chunksize`` defaults
    to about four chunks per CPU.  If a call raises, the first exception is
    raised here and the chunks that have not started are cancelled.  ``func``
    must be importable by the workers (a module-level function).

    >>> import asyncio
    >>> from recipes.parallelism import count_primes, map_in_chunks
    >>> from recipes.parallelism import process_pool
    >>> with process_pool(2) as pool:
    ...     await map_in_chunks(pool, count_primes, [10, 20, 30, 40, 50])
    [4, 8, 10, 12, 15]

    Any executor works, a thread pool included:

    >>> from concurrent.futures import ThreadPoolExecutor
    >>> with ThreadPoolExecutor(2) as threads:
    ...     await map_in_chunks(threads, abs, [-3, 2, -1], chunksize=2)
    [3, 2, 1]
    >>> with ThreadPoolExecutor(2) as threads:
    ...     await map_in_chunks(threads, abs, [-3, "x"], chunksize=1)
    Traceback (most recent call last):
    ...
    TypeError: bad operand type for abs(): 'str'
    """
    items = list(items)
    if chunksize is None:
        chunksize = _default_chunksize(len(items))
    chunks = list(chunked(items, chunksize))
    loop = asyncio.get_running_loop()
    futures = [loop.run_in_executor(executor, _apply_to_chunk, func, chunk) for chunk in chunks]
    return await _gather_chunks(futures)


async def _gather_chunks(futures: Sequence[asyncio.Future[List[R]]]) -> List[R]:
    try:
        parts = await asyncio.gather(*futures)
    except BaseException:
        for future in futures:
            future.cancel()  # queued chunks never start; running ones finish unheard
        raise
    return [result for part in parts for result in part]


# --- a pool that survives crashes -------------------------------------------------


class ProcessRunner:
    """A process pool for async code that replaces itself when a worker crashes.

    ``await run(func, *args)`` runs ``func(*args)`` in a worker process.  If
    the pool turns out to be broken (a worker died), the runner swaps in a
    new pool, counts it in :attr:`restarts`, and raises the
    :exc:`~concurrent.futures.process.BrokenProcessPool` to the caller; the
    next call runs on the new pool.  ``aclose()`` (or leaving ``async with``)
    cancels calls that have not started, waits in a thread for the workers
    to finish what they run, so the loop stays free, and leaves no process
    behind.

    >>> import asyncio
    >>> from recipes.parallelism import ProcessRunner, count_primes
    >>> async with ProcessRunner(workers=2) as runner:
    ...     await asyncio.gather(
    ...         runner.run(count_primes, 100), runner.run(count_primes, 200)
    ...     )
    [25, 46]

    ``map()`` is :func:`map_in_chunks` on the runner's pool:

    >>> async with ProcessRunner(workers=2) as runner:
    ...     await runner.map(count_primes, [10, 100, 1000], chunksize=2)
    [4, 25, 168]

    A closed runner says so:

    >>> await runner.run(count_primes, 10)
    Traceback (most recent call last):
    ...
    RuntimeError: ProcessRunner is closed
    """

    def __init__(self, workers: Optional[int] = None, *, start_method: str = "spawn") -> None:
        self._workers = workers
        self._start_method = start_method
        self._pool = process_pool(workers, start_method=start_method)
        self._retiring: Set[asyncio.Future[None]] = set()
        self._calls: Set[asyncio.Future[Any]] = set()
        self._closed = False
        self.restarts = 0
        """How many times a broken pool was replaced."""

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` has been called."""
        return self._closed

    async def run(self, func: Callable[..., R], *args: Any) -> R:
        """Run ``func(*args)`` in a worker process and return its result."""
        if self._closed:
            raise RuntimeError("ProcessRunner is closed")
        pool = self._pool
        loop = asyncio.get_running_loop()
        try:
            call = loop.run_in_executor(pool, func, *args)
        except BrokenProcessPool:  # the pool broke before this call: submit() refuses
            self._replace(pool)
            raise
        self._calls.add(call)
        call.add_done_callback(self._calls.discard)
        try:
            return await call
        except BrokenProcessPool:
            self._replace(pool)
            raise

    async def map(
        self, func: Callable[[T], R], items: Iterable[T], *, chunksize: Optional[int] = None
    ) -> List[R]:
        """``[func(item) for item in items]`` in chunks, in order (see :func:`map_in_chunks`)."""
        items = list(items)
        if chunksize is None:
            chunksize = _default_chunksize(len(items))
        calls = [
            asyncio.ensure_future(self.run(_apply_to_chunk, func, chunk))
            for chunk in chunked(items, chunksize)
        ]
        return await _gather_chunks(calls)

    def _replace(self, broken: Executor) -> None:
        if broken is not self._pool or self._closed:
            return  # another caller replaced it already (or we are closing)
        # Shut the broken pool down in a thread: it has ended its workers, and its
        # queues are joined there.  (shutdown(wait=False) here races with the
        # pool's own manager thread on Python 3.8.)  Its surviving workers are
        # killed first: their work is lost anyway, and on 3.11 the pool's manager
        # thread was seen joining a survivor that waited for work for ever.
        _kill_workers(broken)
        loop = asyncio.get_running_loop()
        retiring = loop.run_in_executor(None, _shut_down, [broken], True)
        self._retiring.add(retiring)
        retiring.add_done_callback(self._retiring.discard)
        self._pool = process_pool(self._workers, start_method=self._start_method)
        self.restarts += 1

    async def aclose(self, *, cancel_pending: bool = True) -> None:
        """Shut the pool down; with ``cancel_pending``, calls not yet started are dropped.

        Waits (in a thread) until every worker process has ended.  Safe to
        call twice.  If the wait is cancelled, the shutdown still completes
        in its thread.
        """
        if self._closed:
            return
        self._closed = True
        if cancel_pending:
            for call in list(self._calls):
                call.cancel()  # reaches the pool: works on 3.8, where there is no cancel_futures
        loop = asyncio.get_running_loop()
        done = loop.run_in_executor(None, _shut_down, [self._pool], cancel_pending)
        await asyncio.shield(asyncio.gather(done, *self._retiring))

    async def __aenter__(self) -> ProcessRunner:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.aclose()


def _kill_workers(pool: Executor) -> None:
    """Kill the worker processes of a broken process pool (3.14+: its own method)."""
    if hasattr(pool, "kill_workers"):
        pool.kill_workers()
        return
    # Before 3.14 the processes are only reachable through a private attribute.
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        try:
            process.kill()
        except (OSError, ValueError):
            pass  # already gone, or already closed by the pool


def _shut_down(pools: Sequence[Executor], cancel_futures: bool) -> None:
    for pool in pools:
        if sys.version_info >= (3, 9):
            pool.shutdown(wait=True, cancel_futures=cancel_futures)
        else:
            pool.shutdown(wait=True)


# --- one event loop per thread ---------------------------------------------------


class EventLoopThread:
    """An event loop running in a thread of its own, with a clean start and stop.

    ``start()`` (or ``with``) starts the thread and returns once its loop
    runs.  ``submit(coro)`` schedules a coroutine on that loop and returns a
    :class:`concurrent.futures.Future`; ``run(coro, timeout=...)`` waits for
    its result.  ``stop()`` cancels whatever still runs there, lets
    :func:`asyncio.run` close the loop, and joins the thread.

    >>> import asyncio
    >>> from recipes.parallelism import EventLoopThread
    >>> async def add(a, b):
    ...     await asyncio.sleep(0.01)
    ...     return a + b
    >>> with EventLoopThread() as other:
    ...     future = other.submit(add(2, 3))
    ...     await asyncio.wrap_future(future)
    5

    Tasks still running at ``stop()`` are cancelled, and their ``finally``
    blocks run in the loop thread before ``stop()`` returns:

    >>> async def forever():
    ...     try:
    ...         await asyncio.sleep(3600)
    ...     finally:
    ...         print("cleaned up")
    >>> other = EventLoopThread().start()
    >>> pending = other.submit(forever())
    >>> other.stop()
    cleaned up
    >>> pending.cancelled(), other.running
    (True, False)

    A stopped thread takes nothing more:

    >>> other.submit(add(1, 1))
    Traceback (most recent call last):
    ...
    RuntimeError: EventLoopThread is not running
    """

    def __init__(self, name: Optional[str] = None, *, start_timeout: float = 10.0) -> None:
        self.name = name
        self._start_timeout = start_timeout
        self._thread: Optional[threading.Thread] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._stop_requested: Optional[asyncio.Event] = None
        self._ready = threading.Event()
        self._error: Optional[BaseException] = None

    @property
    def running(self) -> bool:
        """True between a successful ``start()`` and ``stop()``."""
        return self._thread is not None and self._thread.is_alive() and self._loop is not None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The thread's loop (only to pass to thread-safe functions)."""
        if self._loop is None:
            raise RuntimeError("EventLoopThread is not running")
        return self._loop

    def start(self) -> EventLoopThread:
        """Start the thread; return once its loop runs (``self``, for chaining)."""
        if self._thread is not None:
            raise RuntimeError("EventLoopThread can only be started once")
        self._thread = threading.Thread(target=self._main, name=self.name, daemon=True)
        self._thread.start()
        if not self._ready.wait(self._start_timeout):
            raise RuntimeError("the event loop thread did not start in time")
        if self._error is not None:
            raise RuntimeError("the event loop thread failed to start") from self._error
        return self

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # reported to start()
            self._error = error
            self._ready.set()

    async def _serve(self) -> None:
        self._stop_requested = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._ready.set()
        await self._stop_requested.wait()
        # asyncio.run() now cancels the tasks left, shuts down async generators
        # and the default executor, and closes the loop.

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on this thread's loop; return a thread-safe future."""
        loop = self._loop
        if loop is None or not self.running or loop.is_closed():
            if asyncio.iscoroutine(coro):
                coro.close()  # never awaited, but not a warning either
            raise RuntimeError("EventLoopThread is not running")
        return asyncio.run_coroutine_threadsafe(coro, loop)

    def run(self, coro: Coroutine[Any, Any, T], *, timeout: Optional[float] = None) -> T:
        """Run ``coro`` on this thread's loop and wait for its result (blocking)."""
        if self._thread is threading.current_thread():
            if asyncio.iscoroutine(coro):
                coro.close()
            raise RuntimeError("run() called from the loop's own thread would deadlock")
        future = self.submit(coro)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def stop(self, timeout: Optional[float] = 10.0) -> None:
        """Cancel what still runs on the loop, close it and join the thread.  Idempotent."""
        thread, loop, stop = self._thread, self._loop, self._stop_requested
        if thread is None:
            return
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed already
                loop.call_soon_threadsafe(stop.set)
        if thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                raise TimeoutError(f"event loop thread {thread.name!r} did not stop in time")
        self._loop = None

    def __enter__(self) -> EventLoopThread:
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.stop()


# --- free-threaded builds ----------------------------------------------------------


def gil_enabled() -> bool:
    """Whether the GIL is on in this process (always True before Python 3.13).

    On a free-threaded build (``python3.13t``, ``python3.14t``) it is False,
    unless ``PYTHON_GIL=1``, ``-X gil=1`` or an extension module that is not
    marked as free-threading safe turned it on.

    >>> from recipes.parallelism import gil_enabled
    >>> gil_enabled()
    True
    >>> import sysconfig
    >>> sysconfig.get_config_var("Py_GIL_DISABLED") in (None, 0)  # default build
    True
    """
    is_gil_enabled: Optional[Callable[[], bool]] = getattr(sys, "_is_gil_enabled", None)
    return True if is_gil_enabled is None else bool(is_gil_enabled())
