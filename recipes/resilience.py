"""When a service you depend on slows down or fails, the damage spreads
through your own program: callers pile up waiting for answers that do not
come, retries multiply the load on a server that is already struggling, and
one slow dependency ends up holding every connection, task and socket you
have.  This chapter gives four small, independent tools for containing that:
a :class:`CircuitBreaker` that stops calling a dependency that keeps
failing, a :func:`deadline` that every nested call can see and respect,
:func:`hedge` to send a second request when the first one is slow, and a
:class:`Bulkhead` per dependency so one of them cannot take all the slots.
The last section puts them together with the retry helper of
:doc:`/recipes/errors` in an order that cannot turn into a retry storm.
All the clocks are the event loop's (:meth:`asyncio.loop.time`), so the
examples and the tests run on a virtual clock.

Stopping calls to a failing dependency
--------------------------------------

.. index::
   single: circuit breaker
   single: CircuitBreaker
   single: CircuitOpenError
   pair: circuit breaker; failure threshold
   single: error messages; circuit 'prices' is open; retry in 30 s

A dependency that is down answers every call with an error, often only
after a long timeout.  Calling it again and again wastes your time and
adds load to the thing that is trying to recover.  A circuit breaker
counts consecutive failures; after ``failure_threshold`` of them it
*opens*, and for the next ``reset_timeout`` seconds every call fails at
once with :exc:`CircuitOpenError`, without reaching the dependency:

>>> import asyncio
>>> from recipes.resilience import CircuitBreaker, CircuitOpenError
>>> async def fetch_price(item):
...     await asyncio.sleep(0.1)
...     raise ConnectionRefusedError("prices.internal:443")
>>> breaker = CircuitBreaker(
...     failure_threshold=3, reset_timeout=30, name="prices")
>>> for attempt in range(5):
...     try:
...         await breaker.call(fetch_price, "apples")
...     except Exception as exc:
...         print(attempt, breaker.state, type(exc).__name__, exc)
0 closed ConnectionRefusedError prices.internal:443
1 closed ConnectionRefusedError prices.internal:443
2 open ConnectionRefusedError prices.internal:443
3 open CircuitOpenError circuit 'prices' is open; retry in 30 s
4 open CircuitOpenError circuit 'prices' is open; retry in 30 s

The third failure opened the circuit; the last two calls took no time at
all.  ``CircuitOpenError.retry_after`` holds the seconds until the
breaker lets a call through again, for a caller that wants to say
"try again in 30 s" (an HTTP server would put it in ``Retry-After``).
A success while the circuit is closed resets the count: the threshold is
on *consecutive* failures.

Which exceptions count is up to you: ``failure_on`` (by default every
:exc:`Exception`) lists the ones that say "the dependency is unwell".
Anything else that the call raises, a ``ValueError`` from bad input for
instance, passes through and counts neither as a failure nor as a success.

.. index::
   pair: CancelledError; circuit breaker

.. important::

   :exc:`asyncio.CancelledError` never counts as a failure: a caller that
   gives up (a timeout around it, a client that disconnected) says nothing
   about the health of the dependency.  ``failure_on`` refuses it, and
   everything else that is not an :exc:`Exception`, with a
   :exc:`TypeError`.  A timeout *inside* the call, which raises
   :exc:`asyncio.TimeoutError`, does count: a dependency that hangs is
   exactly what the breaker is for.

Letting a dependency recover: the half-open state
-------------------------------------------------

.. index::
   single: half-open circuit
   pair: circuit breaker; half-open
   pair: circuit breaker; trial calls
   single: error messages; circuit 'circuit' is half-open; its 1 trial call is running

When ``reset_timeout`` has passed, the breaker does not simply close
again, which would let every waiting caller rush at a service that may
still be down.  It becomes *half-open*: ``half_open_max_calls`` trial calls
(one by default) go through, the others still fail fast.  A failed trial
opens the circuit for another ``reset_timeout``; when all the trials have
succeeded, it closes:

>>> healthy = False
>>> async def flaky():
...     await asyncio.sleep(0.5)
...     if not healthy:
...         raise ConnectionResetError("reset by peer")
...     return "fresh price"
>>> breaker = CircuitBreaker(failure_threshold=1, reset_timeout=2)
>>> async def show():
...     try:
...         print(await breaker.call(flaky))
...     except Exception as exc:
...         print(type(exc).__name__, exc)
>>> await show()
ConnectionResetError reset by peer
>>> await asyncio.sleep(2)
>>> breaker.state
'half-open'
>>> await show()  # the trial fails: open again for 2 s
ConnectionResetError reset by peer
>>> await asyncio.sleep(2)
>>> healthy = True
>>> await asyncio.gather(show(), show())  # one trial, one refused
CircuitOpenError circuit 'circuit' is half-open; its 1 trial call is running
fresh price
[None, None]
>>> breaker.state
'closed'

The refused caller got its :exc:`CircuitOpenError` at once, while the trial
was still running; its ``retry_after`` is ``None`` because nobody knows yet
when the circuit will close.

.. important::

   A trial call that never ends keeps the circuit half-open, and every
   other call refused, for as long as it hangs.  Give the calls behind a
   breaker a timeout (:func:`within_deadline`, or the client's own): a
   timed-out trial counts as a failure and reopens the circuit.  A trial
   that is *cancelled* or fails with an exception outside ``failure_on``
   gives its place back to the next caller.

The breaker reads the running loop's clock, so it keeps its state within
one event loop; used from a new loop (a second ``asyncio.run()``) it starts
closed again.  It is not thread-safe: use one per loop.

Passing a deadline down through nested calls
--------------------------------------------

.. index::
   single: deadline
   single: deadline propagation
   pair: ContextVar; deadline
   single: DeadlineExceeded
   single: error messages; deadline of 2 s exceeded

A request handler has two seconds to answer.  It calls a service, which
queries a database and then a cache; each has its own timeout, and none
of them knows how much of the two seconds is left.  ``async with
deadline(2):`` stores the deadline in a :class:`contextvars.ContextVar`,
where every function below can read it with :func:`remaining`, and cancels
the block when the time is up, raising :exc:`DeadlineExceeded`.
:func:`within_deadline` wraps one call: its timeout is the call's own or
the time left, whichever is shorter.

>>> from recipes.resilience import deadline, remaining, within_deadline
>>> loop = asyncio.get_running_loop()
>>> async def query_db():
...     print(f"db: {remaining():.1f} s left")
...     await within_deadline(asyncio.sleep(0.5), timeout=1.0)
>>> async def service():
...     print(f"service: {remaining():.1f} s left")
...     await asyncio.sleep(0.3)
...     await query_db()
>>> async def handler():
...     async with deadline(2):
...         await service()
...         print(f"handler: {remaining():.1f} s left")
>>> await handler()
service: 2.0 s left
db: 1.7 s left
handler: 1.2 s left
>>> remaining()  # outside any deadline
inf

A nested ``deadline()`` can shorten the time but never extend it: the inner
block ends at the earlier of the two.  Tasks started inside the block
inherit the deadline (tasks copy the context when they are created), so
:func:`within_deadline` bounds their calls as well; only the block's own
task is cancelled at the deadline, though, so keep such tasks inside it
(:func:`asyncio.gather`, a task group) or they outlive it.

When the time is up, the block is cancelled wherever it is waiting, and
:exc:`DeadlineExceeded` comes out of the ``async with``.  It is a subclass
of :exc:`asyncio.TimeoutError`, so ``except asyncio.TimeoutError`` catches
it too:

>>> async def slow_handler():
...     async with deadline(2):
...         await service()
...         await asyncio.sleep(5)  # the cache is slow today
>>> await slow_handler()
Traceback (most recent call last):
...
recipes.resilience.DeadlineExceeded: deadline of 2 s exceeded

.. index::
   single: error messages; deadline exceeded before the call started

A call made when the time is already up is not started at all: there is no
point in sending a request whose answer nobody will wait for.
:func:`within_deadline` closes the coroutine (so there is no "never
awaited" warning) and raises at once:

>>> async def report_later():
...     await asyncio.sleep(2)  # the handler's deadline passes meanwhile
...     return await within_deadline(query_db())
>>> async def handler_with_report():
...     async with deadline(1):
...         return asyncio.create_task(report_later())
>>> report = await handler_with_report()
>>> await report
Traceback (most recent call last):
...
recipes.resilience.DeadlineExceeded: deadline exceeded before the call started

``query_db()`` printed nothing: it never ran.  The task inherited the
handler's deadline along with the rest of its context, and a
``deadline()`` of its own could only shorten it.  Work that should outlive
the request needs a context without the deadline: start it from outside
the block, or pass ``context=contextvars.Context()`` to
:func:`asyncio.create_task` (3.11+; or run it with
``contextvars.Context().run(asyncio.create_task, coro)`` before).

.. important::

   The same refusal meets cleanup code that runs *inside* the block after
   the time is up (an ``except`` or ``finally`` clause that calls the
   dependency to release something): the deadline is over there too.  Put
   such cleanup outside the ``async with``, or await it directly, with a
   timeout of its own, instead of through :func:`within_deadline`.

.. index::
   pair: deadline; Python 3.8-3.10

.. versionchanged:: 3.11

   On Python 3.11 and later the block is an :func:`asyncio.timeout_at`, which
   counts cancellation requests and never mistakes a cancellation from
   outside for its own.  On 3.8–3.10 it cancels the task with a timer of its
   own; a cancellation from outside that arrives in the very loop step in
   which the deadline expires is then reported as :exc:`DeadlineExceeded`
   (the same limitation as the ``async-timeout`` package has there).

Hedging a slow request
----------------------

.. index::
   single: hedged requests
   single: tail latency
   single: hedge

Most answers from a replicated service come quickly, but now and then one
takes ten times as long (a garbage collection, a busy replica).  Waiting
for it is the *tail latency* your users feel.  :func:`hedge` starts the
call; if there is no answer after ``delay`` seconds it starts a second
one, takes whichever succeeds first and cancels the other:

>>> from recipes.resilience import hedge
>>> latencies = iter([5.0, 0.2])  # the first replica is having a bad day
>>> async def lookup():
...     latency = next(latencies)
...     await asyncio.sleep(latency)
...     return f"answer after {latency} s"
>>> start = loop.time()
>>> await hedge(lookup, delay=0.5)
'answer after 0.2 s'
>>> round(loop.time() - start, 1)  # 0.5 s of patience + 0.2 s
0.7

Pick ``delay`` near the 95th percentile of the call's latency: then about
one call in twenty is sent twice, which is cheap, and the slowest
twentieth no longer sets your response time.  Hedge only calls that are
safe to make twice (reads, idempotent writes).

The cancelled attempt is awaited before :func:`hedge` returns, so its
cleanup has run and no task is left behind.  An attempt that *fails*
before the delay starts the next one at once, since waiting would only
add latency.  If every attempt fails, the last error is raised; if the
caller is cancelled, every attempt is cancelled and awaited first.

>>> outcomes = iter([ConnectionResetError("replica 1"), "replica 2 ok"])
>>> async def shaky():
...     await asyncio.sleep(0.1)
...     outcome = next(outcomes)
...     if isinstance(outcome, Exception):
...         raise outcome
...     return outcome
>>> start = loop.time()
>>> await hedge(shaky, delay=1.0)
'replica 2 ok'
>>> round(loop.time() - start, 1)  # no 1 s wait after the failure
0.2

Keeping one slow dependency from taking every slot
--------------------------------------------------

.. index::
   single: bulkhead
   single: Bulkhead
   single: BulkheadFullError
   pair: concurrency limit; per dependency
   single: error messages; bulkhead 'search' is full: 2 calls running, 0 waiting
   single: error messages; bulkhead 'db' is full: no slot free after 0.5 s

A single concurrency limit for everything you call has a failure mode:
when one dependency becomes slow, calls to it pile up and hold all the
permits, and the calls to the healthy dependencies queue behind them.  A
ship's bulkheads stop one leak from flooding the whole hull; a
:class:`Bulkhead` per dependency does the same for concurrency.  Each has
its own ``limit``; when it is full, up to ``max_waiting`` callers wait
(in arrival order, for at most ``wait_timeout`` seconds) and the rest are
refused at once with :exc:`BulkheadFullError`:

>>> from recipes.resilience import Bulkhead, BulkheadFullError
>>> search = Bulkhead(2, name="search")
>>> profiles = Bulkhead(2, name="profiles")
>>> async def slow_search(query):
...     await asyncio.sleep(60)  # search is down and hangs
>>> async def get_profile(user):
...     await asyncio.sleep(0.1)
...     return {"user": user}
>>> stuck = [asyncio.create_task(search.call(slow_search, q))
...          for q in ("a", "b")]
>>> await asyncio.sleep(0)
>>> search.running, search.waiting
(2, 0)
>>> try:
...     await search.call(slow_search, "c")
... except BulkheadFullError as exc:
...     print(exc)
bulkhead 'search' is full: 2 calls running, 0 waiting
>>> await profiles.call(get_profile, "ada")  # unaffected
{'user': 'ada'}
>>> for task in stuck:
...     _ = task.cancel()
>>> _ = await asyncio.gather(*stuck, return_exceptions=True)

Refusing at once is often the right answer for an overloaded server (it
can answer "503, try later" in microseconds instead of holding the client);
a short queue with a timeout smooths out bursts.  A bulkhead also works as
an ``async with`` block:

>>> db = Bulkhead(1, max_waiting=5, wait_timeout=0.5, name="db")
>>> async def query(n):
...     async with db:
...         await asyncio.sleep(0.3)
...         return n
>>> await asyncio.gather(*(query(n) for n in range(3)),
...                      return_exceptions=True)
[0, 1, BulkheadFullError("bulkhead 'db' is full: no slot free after 0.5 s")]

The first two calls ran one after the other; the third waited its 0.5 s
while they held the slot, and gave up.  A caller cancelled while it waits leaves
the queue; a slot freed just as it was cancelled goes to the next caller.

Combining them with retries
---------------------------

.. index::
   single: retry storm
   pair: retry storm; circuit breaker
   pair: retry; circuit breaker
   single: retries; order of resilience layers

Each of these tools is useful alone, and they compose as plain function
calls.  The order matters.  From the outside in:

1. **Deadline**: the caller's whole time budget, around everything, so it
   also cuts short the retries' backoff sleeps.
2. **Retry with backoff** (:func:`recipes.errors.retry`): each attempt goes
   through the layers below it.
3. **Circuit breaker**: every *attempt* is one call of the breaker and
   counts once.  That is the decision that prevents retry storms: with the
   breaker inside the retry, ``N`` callers with ``A`` attempts each do not
   make ``N * A`` calls to a dead dependency.  After ``failure_threshold``
   failed attempts (from any callers) the circuit opens, the remaining
   attempts get :exc:`CircuitOpenError`, and :func:`~recipes.errors.retry`
   does not retry that (it is neither an :exc:`OSError` nor a timeout), so
   they stop at once.  A breaker *outside* the retry would count a whole
   retried call as one failure and see the dependency only after all its
   attempts, much later.
4. **Bulkhead**: the dependency's own concurrency limit, right around the
   call, so the time spent waiting for a slot is never a breaker failure
   and an open circuit refuses callers without making them queue.
5. The call itself, with its own timeout capped by the deadline
   (:func:`within_deadline`).

Give the breaker ``failure_on=(OSError, asyncio.TimeoutError)``, the same
errors the retry retries: then a :exc:`BulkheadFullError` (the bulkhead
refused *you*, the dependency did nothing wrong) does not count, and is
not retried either.  Twenty callers with four attempts each against a
dead backend:

>>> from collections import Counter
>>> from recipes.errors import retry
>>> calls = []
>>> async def backend(item):
...     calls.append(item)
...     await asyncio.sleep(0.1)
...     raise ConnectionRefusedError("backend:8080")
>>> breaker = CircuitBreaker(failure_threshold=3, reset_timeout=10,
...                          failure_on=(OSError, asyncio.TimeoutError))
>>> bulkhead = Bulkhead(4, max_waiting=8, wait_timeout=1.0)
>>> async def attempt(item):
...     return await within_deadline(backend(item), timeout=0.5)
>>> async def get_price(item):
...     async with deadline(2.0):
...         return await retry(
...             lambda: breaker.call(bulkhead.call, attempt, item),
...             attempts=4, base_delay=0.2)
>>> outcomes = await asyncio.gather(
...     *(get_price(n) for n in range(20)), return_exceptions=True)
>>> sorted(Counter(type(o).__name__ for o in outcomes).items())
[('BulkheadFullError', 8), ('CircuitOpenError', 12)]
>>> len(calls), breaker.state
(12, 'open')

Twelve calls instead of eighty.  Four ran at once; the first three
failures opened the circuit; every retry then stopped with
:exc:`CircuitOpenError`.  Why twelve and not four: the eight callers that
were already waiting for a bulkhead slot had passed the breaker while it
was closed, so they still made their calls.  In general, a dependency that
fails sees at most ``failure_threshold + limit + max_waiting - 1`` calls
before the breaker opens, and then ``half_open_max_calls`` per
``reset_timeout`` (the test suite checks that bound).  Keep the bulkhead's
queue short for a dependency that may fail.

The same stack as a whole program, with three waves of callers half a
second apart: after the first wave, each wave costs the dead backend one
trial call, however many callers and retries it has.

.. script:: price_service.py

   import asyncio

   from recipes.errors import retry
   from recipes.resilience import (
       Bulkhead,
       CircuitBreaker,
       deadline,
       within_deadline,
   )

   calls = 0


   async def backend(item):
       global calls
       calls += 1
       await asyncio.sleep(0.01)
       raise ConnectionRefusedError("backend:8080")


   async def main():
       breaker = CircuitBreaker(
           failure_threshold=3,
           reset_timeout=0.5,
           failure_on=(OSError, asyncio.TimeoutError),
       )
       prices = Bulkhead(4, max_waiting=4, wait_timeout=0.5, name="prices")

       async def attempt(item):
           return await within_deadline(backend(item), timeout=0.05)

       async def get_price(item):
           async with deadline(1.0):
               return await retry(
                   lambda: breaker.call(prices.call, attempt, item),
                   attempts=4,
                   base_delay=0.02,
               )

       for wave in range(3):
           outcomes = await asyncio.gather(
               *(get_price(n) for n in range(8)), return_exceptions=True
           )
           kinds = sorted({type(o).__name__ for o in outcomes})
           print(f"wave {wave}: {calls} calls so far, {kinds}, {breaker.state}")
           await asyncio.sleep(0.6)


   asyncio.run(main())

.. script-output::

   wave 0: 8 calls so far, ['CircuitOpenError'], open
   wave 1: 9 calls so far, ['CircuitOpenError'], open
   wave 2: 10 calls so far, ['CircuitOpenError'], open

A library does this
-------------------

.. index::
   single: circuitbreaker (library)
   pair: circuitbreaker (library); comparison
   single: purgatory
   pair: purgatory; comparison

Only the circuit breaker has maintained libraries that work with asyncio;
for :func:`deadline`, :func:`hedge` and :class:`Bulkhead` we found none
among the widely used packages.

* `circuitbreaker <https://github.com/fabfuel/circuitbreaker>`__ is a
  decorator, ``@circuit(failure_threshold=5, recovery_timeout=30)``, for
  sync and async functions and generators, with ``expected_exception`` (a
  type, a tuple or a predicate), a ``fallback_function`` called instead of
  raising while open, and a registry of every breaker
  (``CircuitBreakerMonitor``).  When half-open it lets every call through,
  not a limited number of trial calls; a cancelled call counts as a
  *success* and resets the failure count; and it times with
  :func:`time.monotonic`, so a virtual clock does not move it.  Choose it
  for the fallback function and sync code; the recipe for trial calls,
  ``retry_after`` and tests on the loop's clock.
* `purgatory <https://mardiros.github.io/purgatory/>`__ keeps named breakers
  in a factory (``@factory("prices")`` or ``async with await
  factory.get_breaker("prices"):``) and can keep their state in Redis, so
  several processes share one circuit, which the recipe cannot do; event
  hooks report state changes.  Half-open, it lets every call through; any
  exception not listed in ``exclude``, a cancellation included, counts as a
  failure; and its clock is :func:`time.time`.  Needs Python 3.9+.
  Choose it for a circuit shared between processes.

See also
--------

* :ref:`recipes/errors:Retrying with exponential backoff` – the
  :func:`~recipes.errors.retry` helper used above, with jitter.
* :doc:`/recipes/timeouts` – :ref:`recipes/timeouts:Sharing one deadline
  across several steps` with :func:`asyncio.timeout` alone, and
  :ref:`recipes/timeouts:Catching the right TimeoutError`.
* :doc:`/recipes/limiting` – one concurrency limit, and rate limits.
* :ref:`recipes/waiting:Racing awaitables: the first result wins` – the
  race at the heart of :func:`hedge`, without the delay.
* :doc:`/recipes/cancellation` – why a cancelled call is awaited before
  going on (:ref:`recipes/cancellation:Cleanup that must await`).
* :doc:`/recipes/http_client` – timeouts and retries for HTTP requests.
* Python: :func:`asyncio.timeout_at` and :func:`asyncio.wait` in
  :doc:`python:library/asyncio-task`; :mod:`contextvars`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import math
import sys
import weakref
from contextvars import ContextVar
from types import TracebackType
from typing import (
    Any,
    Awaitable,
    Callable,
    Deque,
    List,
    Optional,
    Sequence,
    Tuple,
    Type,
    TypeVar,
    Union,
)

__all__ = [
    "CircuitBreaker",
    "CircuitOpenError",
    "deadline",
    "remaining",
    "within_deadline",
    "DeadlineExceeded",
    "Deadline",
    "current_deadline",
    "hedge",
    "Bulkhead",
    "BulkheadFullError",
]

T = TypeVar("T")

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half-open"

_ExceptionTypes = Union[Type[Exception], Tuple[Type[Exception], ...]]


def _check_int(name: str, value: object, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < least:
        raise ValueError(f"{name} must be >= {least}, got {value}")
    return value


def _check_seconds(name: str, value: object, *, zero_ok: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    if not (0 <= value < math.inf if zero_ok else 0 < value < math.inf):
        bound = ">= 0" if zero_ok else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)


def _close(aw: object) -> None:
    if inspect.iscoroutine(aw):
        aw.close()  # no "coroutine ... was never awaited" warning


def _refuse_awaitable(func: object, what: str) -> None:
    if inspect.isawaitable(func):
        _close(func)
        raise TypeError(
            f"{what} takes a function and its arguments (fetch, url), "
            f"not a {type(func).__name__} object (fetch(url))"
        )
    if not callable(func):
        raise TypeError(f"{what} takes a callable, got {func!r}")


def _seconds(value: float) -> str:
    return f"{round(value, 3):g}"


# --- circuit breaker ----------------------------------------------------------


class CircuitOpenError(Exception):
    """Raised by :meth:`CircuitBreaker.call` instead of calling a dependency.

    ``retry_after`` is the number of seconds until the breaker lets a trial
    call through (``None`` when the circuit is half-open and its trial calls
    are running: the answer depends on them); ``name`` is the breaker's name.

    >>> from recipes.resilience import CircuitOpenError
    >>> error = CircuitOpenError("circuit 'db' is open; retry in 5 s", "db", 5.0)
    >>> error.retry_after, error.name
    (5.0, 'db')

    A server can turn it into a polite refusal instead of an error page:

    >>> import math
    >>> def http_answer(error):
    ...     if error.retry_after is None:
    ...         return 503, {}
    ...     return 503, {"Retry-After": str(math.ceil(error.retry_after))}
    >>> http_answer(error)
    (503, {'Retry-After': '5'})
    """

    def __init__(self, message: str, name: str, retry_after: Optional[float]) -> None:
        super().__init__(message)
        self.name = name
        self.retry_after = retry_after


class CircuitBreaker:
    """Fail fast while a dependency keeps failing; let a trial call through now and then.

    States: ``"closed"`` (calls go through; consecutive failures are
    counted), ``"open"`` (calls raise :exc:`CircuitOpenError` at once, for
    ``reset_timeout`` seconds after the failure that opened it) and
    ``"half-open"`` (up to ``half_open_max_calls`` trial calls go through;
    one failure reopens the circuit, all of them succeeding closes it).

    >>> import asyncio
    >>> from recipes.resilience import CircuitBreaker
    >>> breaker = CircuitBreaker(failure_threshold=2, reset_timeout=5)
    >>> async def down():
    ...     raise OSError("no route to host")
    >>> for _ in range(2):
    ...     try:
    ...         await breaker.call(down)
    ...     except OSError:
    ...         pass
    >>> breaker.state, round(breaker.retry_after(), 1)
    ('open', 5.0)
    >>> await asyncio.sleep(5)
    >>> breaker.state
    'half-open'

    :meth:`call` takes the function and its arguments, not a coroutine, so
    that nothing is created when the circuit refuses the call.  Only
    exceptions in ``failure_on`` are failures; a return is a success;
    anything else (another exception, :exc:`asyncio.CancelledError`) counts
    as neither.  Outcomes of calls that started before the last change of
    state are ignored, so the stragglers of a burst cannot close a circuit
    that has just opened, or count twice.

    >>> async def ok(x):
    ...     return x * 2
    >>> breaker = CircuitBreaker(failure_on=(OSError,))
    >>> await breaker.call(ok, 21)
    42
    >>> breaker
    <CircuitBreaker 'circuit' closed, 0/5 failures>

    Bad settings are refused when the breaker is made:

    >>> CircuitBreaker(failure_on=asyncio.CancelledError)
    Traceback (most recent call last):
    ...
    TypeError: failure_on takes Exception subclasses, got <class '...Cancel...
    """

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        half_open_max_calls: int = 1,
        failure_on: _ExceptionTypes = Exception,
        name: str = "circuit",
    ) -> None:
        self._threshold = _check_int("failure_threshold", failure_threshold, 1)
        self._reset_timeout = _check_seconds("reset_timeout", reset_timeout)
        self._trial_limit = _check_int("half_open_max_calls", half_open_max_calls, 1)
        kinds = failure_on if isinstance(failure_on, tuple) else (failure_on,)
        for kind in kinds:
            if not (isinstance(kind, type) and issubclass(kind, Exception)):
                raise TypeError(
                    f"failure_on takes Exception subclasses, got {kind!r}; "
                    "a cancellation never counts as a failure"
                )
        self._failure_on: Tuple[Type[Exception], ...] = kinds
        self.name = str(name)
        self._loop: Optional[weakref.ReferenceType[asyncio.AbstractEventLoop]] = None
        self._state = CLOSED
        self._generation = 0  # bumped on every change of state
        self._failures = 0
        self._opened_at = 0.0
        self._trials = 0  # trial calls running (half-open)
        self._successes = 0  # trial calls that succeeded (half-open)

    def _now(self) -> Optional[float]:
        """The running loop's time (None outside a loop); a new loop starts closed."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        if self._loop is None or self._loop() is not loop:
            self._loop = weakref.ref(loop)
            self._enter(CLOSED, 0.0)
        now = loop.time()
        if self._state == OPEN and now >= self._opened_at + self._reset_timeout:
            self._enter(HALF_OPEN, now)
        return now

    def _enter(self, state: str, now: float) -> None:
        self._state = state
        self._generation += 1
        self._failures = self._trials = self._successes = 0
        if state == OPEN:
            self._opened_at = now

    @property
    def state(self) -> str:
        """``"closed"``, ``"open"`` or ``"half-open"``, as of the loop's current time."""
        self._now()
        return self._state

    @property
    def failures(self) -> int:
        """Consecutive failures counted while closed."""
        return self._failures

    def retry_after(self) -> Optional[float]:
        """Seconds until a call may go through: 0.0 if one may now, None if unknown."""
        now = self._now()
        if self._state == OPEN and now is not None:
            return max(0.0, self._opened_at + self._reset_timeout - now)
        if self._state == HALF_OPEN and self._trials + self._successes >= self._trial_limit:
            return None
        return 0.0

    def _admit(self) -> Tuple[int, bool]:
        now = self._now()
        if now is None:
            raise RuntimeError("CircuitBreaker.call() must be awaited in a running event loop")
        if self._state == OPEN:
            wait = self._opened_at + self._reset_timeout - now
            shown = math.ceil(round(wait * 10, 6)) / 10  # 29.9997 -> "30"
            raise CircuitOpenError(
                f"circuit {self.name!r} is open; retry in {shown:g} s", self.name, wait
            )
        if self._state == HALF_OPEN:
            if self._trials + self._successes >= self._trial_limit:
                running = self._trials
                raise CircuitOpenError(
                    f"circuit {self.name!r} is half-open; its {running} trial "
                    f"call{'' if running == 1 else 's'} {'is' if running == 1 else 'are'} running",
                    self.name,
                    None,
                )
            self._trials += 1
            return self._generation, True
        return self._generation, False

    def _record(self, generation: int, failed: Optional[bool]) -> None:
        """failed: True for a failure, False for a success, None for neither."""
        if generation != self._generation:
            return  # the state changed while the call ran: its outcome is stale
        now = self._now()
        if generation != self._generation or now is None:
            return  # used from a new event loop meanwhile: it started afresh
        if self._state == HALF_OPEN:
            self._trials -= 1
            if failed:
                self._enter(OPEN, now)
            elif failed is False:
                self._successes += 1
                if self._successes >= self._trial_limit:
                    self._enter(CLOSED, now)
        elif self._state == CLOSED:
            if failed:
                self._failures += 1
                if self._failures >= self._threshold:
                    self._enter(OPEN, now)
            elif failed is False:
                self._failures = 0

    async def call(self, func: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Await ``func(*args, **kwargs)`` if the circuit allows it, and record the outcome.

        Raises :exc:`CircuitOpenError` without calling *func* when the
        circuit is open, or half-open with all its trial calls taken.

        >>> import asyncio
        >>> from recipes.resilience import CircuitBreaker
        >>> breaker = CircuitBreaker(failure_threshold=1, name="geo")
        >>> async def locate(ip):
        ...     raise asyncio.TimeoutError()
        >>> try:
        ...     await breaker.call(locate, "192.0.2.1")
        ... except asyncio.TimeoutError:
        ...     print("timed out")
        timed out
        >>> await breaker.call(locate, "192.0.2.1")
        Traceback (most recent call last):
        ...
        recipes.resilience.CircuitOpenError: circuit 'geo' is open; retry in 30 s

        A coroutine object instead of the function is refused (and closed):

        >>> await breaker.call(locate("192.0.2.1"))
        Traceback (most recent call last):
        ...
        TypeError: CircuitBreaker.call() takes a function ...
        """
        _refuse_awaitable(func, "CircuitBreaker.call()")
        generation, _ = self._admit()
        try:
            result = await func(*args, **kwargs)
        except self._failure_on:
            self._record(generation, True)
            raise
        except BaseException:
            self._record(generation, None)
            raise
        self._record(generation, False)
        return result

    def __repr__(self) -> str:
        state = self.state
        detail = f", {self._failures}/{self._threshold} failures" if state == CLOSED else ""
        return f"<CircuitBreaker {self.name!r} {state}{detail}>"


# --- deadlines ----------------------------------------------------------------


class DeadlineExceeded(asyncio.TimeoutError):
    """The time of the current :func:`deadline` is up.

    A subclass of :exc:`asyncio.TimeoutError` (the built-in
    :exc:`TimeoutError` on Python 3.11+), so existing ``except`` clauses for
    timeouts catch it:

    >>> import asyncio
    >>> from recipes.resilience import DeadlineExceeded
    >>> issubclass(DeadlineExceeded, asyncio.TimeoutError)
    True

    It comes out of the ``async with deadline(...)`` block whose time ran
    out:

    >>> from recipes.resilience import deadline
    >>> async def handler():
    ...     try:
    ...         async with deadline(0.5):
    ...             await asyncio.sleep(2)
    ...     except asyncio.TimeoutError as exc:
    ...         return f"504 Gateway Timeout ({exc})"
    >>> await handler()
    '504 Gateway Timeout (deadline of 0.5 s exceeded)'
    """


class Deadline:
    """A point in time on the event loop's clock (:meth:`asyncio.loop.time`).

    :func:`deadline` makes one and hands it to the block; :func:`current_deadline`
    returns the one in force.

    >>> import asyncio
    >>> from recipes.resilience import Deadline
    >>> loop = asyncio.get_running_loop()
    >>> limit = Deadline(loop.time() + 3)
    >>> round(limit.remaining(), 1), limit.expired
    (3.0, False)
    >>> await asyncio.sleep(4)
    >>> limit.remaining(), limit.expired
    (0.0, True)
    """

    __slots__ = ("when",)

    def __init__(self, when: float) -> None:
        self.when = float(when)

    def remaining(self) -> float:
        """Seconds left, never below 0."""
        return max(0.0, self.when - asyncio.get_running_loop().time())

    @property
    def expired(self) -> bool:
        """True once the loop's clock has reached ``when``."""
        return self.remaining() <= 0

    def __repr__(self) -> str:
        return f"<Deadline when={self.when:.3f}>"


_current: ContextVar[Optional[Deadline]] = ContextVar("recipes.resilience.deadline", default=None)


def current_deadline() -> Optional[Deadline]:
    """The :class:`Deadline` in force in this context, or ``None``.

    >>> import asyncio
    >>> from recipes.resilience import current_deadline, deadline
    >>> print(current_deadline())
    None
    >>> async def show():
    ...     async with deadline(5) as outer:
    ...         async with deadline(60) as inner:  # cannot extend: still 5 s
    ...             return current_deadline() is inner, inner.when == outer.when
    >>> await show()
    (True, True)
    """
    return _current.get()


def remaining() -> float:
    """Seconds left before the current deadline (0.0 once expired; ``inf`` without one).

    >>> import asyncio
    >>> from recipes.resilience import deadline, remaining
    >>> async def budget():
    ...     async with deadline(1.5):
    ...         await asyncio.sleep(1)
    ...         return round(remaining(), 1)
    >>> await budget()
    0.5
    >>> remaining()
    inf
    """
    current = _current.get()
    return math.inf if current is None else current.remaining()


class _DeadlineScope:
    """What :func:`deadline` returns: an async context manager."""

    def __init__(self, seconds: float) -> None:
        self._seconds = _check_seconds("seconds", seconds, zero_ok=True)
        self._deadline: Optional[Deadline] = None
        self._token: Any = None
        self._expired = False
        self._handle: Optional[asyncio.TimerHandle] = None
        self._timeout: Any = None  # asyncio.Timeout on 3.11+

    async def __aenter__(self) -> Deadline:
        if self._deadline is not None:
            raise RuntimeError("a deadline() block cannot be entered twice")
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("deadline() must be used inside a task")
        when = loop.time() + self._seconds
        outer = _current.get()
        if outer is not None and outer.when < when:
            when = outer.when  # a nested deadline can shorten, never extend
        self._deadline = Deadline(when)
        self._token = _current.set(self._deadline)
        if sys.version_info >= (3, 11):
            self._timeout = asyncio.timeout_at(when)
            await self._timeout.__aenter__()
        else:
            self._handle = loop.call_at(when, self._expire, task)
        return self._deadline

    def _expire(self, task: asyncio.Task[Any]) -> None:
        self._expired = True
        task.cancel()

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        _current.reset(self._token)
        message = f"deadline of {_seconds(self._seconds)} s exceeded"
        if sys.version_info >= (3, 11):
            try:
                await self._timeout.__aexit__(exc_type, exc, tb)
            except TimeoutError:  # raised only when it expired, never for the body's own
                raise DeadlineExceeded(message) from None
            return
        assert self._handle is not None
        self._handle.cancel()
        if self._expired and exc_type is not None and issubclass(exc_type, asyncio.CancelledError):
            raise DeadlineExceeded(message) from None


def deadline(seconds: float) -> _DeadlineScope:
    """``async with deadline(seconds) as d:`` – a time budget for the block and all below it.

    The block is cancelled when the time is up and :exc:`DeadlineExceeded`
    is raised from the ``async with``.  Inside, :func:`remaining` and
    :func:`current_deadline` tell any function how much time is left, and
    :func:`within_deadline` caps a call's timeout with it.  Nested
    deadlines keep the earlier end.

    >>> import asyncio
    >>> from recipes.resilience import deadline
    >>> async def fast():
    ...     async with deadline(1) as limit:
    ...         await asyncio.sleep(0.25)
    ...         return round(limit.remaining(), 2)
    >>> await fast()
    0.75

    Zero seconds is allowed (the block is cancelled at its first ``await``);
    a negative or infinite budget is an error:

    >>> deadline(-1)
    Traceback (most recent call last):
    ...
    ValueError: seconds must be a finite number >= 0, got -1
    """
    return _DeadlineScope(seconds)


async def within_deadline(aw: Awaitable[T], timeout: Optional[float] = None) -> T:
    """Await *aw* for at most *timeout* seconds and never past the current deadline.

    Raises :exc:`asyncio.TimeoutError` when *timeout* runs out first, and
    :exc:`DeadlineExceeded` when the deadline does, or has already passed
    (then *aw* is not started; a coroutine is closed).  Either way *aw* is
    cancelled and its cleanup awaited.  Without a deadline and a timeout it
    simply awaits *aw*.

    >>> import asyncio
    >>> from recipes.resilience import deadline, within_deadline
    >>> async def step(seconds):
    ...     await within_deadline(asyncio.sleep(seconds), timeout=1)
    ...     return "done"
    >>> await step(0.5)
    'done'
    >>> try:
    ...     await step(3)
    ... except asyncio.TimeoutError:
    ...     print("timed out after 1 s")
    timed out after 1 s
    >>> async def tight():
    ...     async with deadline(0.3):
    ...         await step(3)  # 1 s timeout, but only 0.3 s left
    >>> await tight()
    Traceback (most recent call last):
    ...
    recipes.resilience.DeadlineExceeded: deadline of 0.3 s exceeded

    When the deadline is the shorter, both timers are due together and the
    ``deadline()`` block reports it (its timer was set first).  In a task
    that only inherited the deadline, no block cancels it, so
    :func:`within_deadline` raises ``DeadlineExceeded('deadline exceeded
    during the call')`` itself.
    """
    try:
        if timeout is not None:
            _check_seconds("timeout", timeout)
        current = _current.get()
        left = math.inf if current is None else current.remaining()
        if left <= 0:
            raise DeadlineExceeded("deadline exceeded before the call started")
        if not inspect.isawaitable(aw):
            raise TypeError(f"within_deadline() takes an awaitable, got {aw!r}")
    except BaseException:
        _close(aw)
        raise
    if timeout is None and current is None:
        return await aw
    if timeout is not None and timeout < left:
        limit, by_deadline = timeout, False
    else:
        limit, by_deadline = left, True
    try:
        return await _bounded(aw, limit)
    except _Expired:
        if by_deadline:
            raise DeadlineExceeded("deadline exceeded during the call") from None
        raise asyncio.TimeoutError() from None


class _Expired(Exception):
    """_bounded()'s own time ran out (never escapes this module)."""


if sys.version_info >= (3, 11):

    async def _bounded(aw: Awaitable[T], seconds: float) -> T:
        scope = asyncio.timeout(seconds)
        try:
            async with scope:
                return await aw
        except TimeoutError:
            if scope.expired():
                raise _Expired from None
            raise

else:

    async def _bounded(aw: Awaitable[T], seconds: float) -> T:
        # Not asyncio.wait_for(), which before 3.12 may drop a cancellation of the
        # caller that arrives as the awaitable finishes (CPython gh-86296).
        task = asyncio.ensure_future(aw)
        try:
            await asyncio.wait([task], timeout=seconds)
        except asyncio.CancelledError:
            task.cancel()
            await _until_done([task])
            raise
        if not task.done():
            task.cancel()
            if await _until_done([task]):
                raise asyncio.CancelledError
            if task.cancelled():
                raise _Expired
        return task.result()


async def _until_done(tasks: Sequence[asyncio.Future[Any]]) -> bool:
    """Wait until every task has ended, whatever cancels us; True if something did."""
    cancelled = False
    pending = [task for task in tasks if not task.done()]
    while pending:
        try:
            await asyncio.wait(pending)
        except asyncio.CancelledError:
            cancelled = True
        pending = [task for task in pending if not task.done()]
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved: no "exception was never retrieved"
    return cancelled


# --- hedging ------------------------------------------------------------------


async def hedge(factory: Callable[[], Awaitable[T]], *, delay: float, attempts: int = 2) -> T:
    """Call ``factory()``; start another attempt every *delay* seconds without an answer.

    The first attempt to succeed wins; the others are cancelled and awaited
    before :func:`hedge` returns.  An attempt that fails starts the next one
    at once.  At most *attempts* are made; when all of them fail, the error
    of the last one to fail is raised.

    >>> import asyncio
    >>> from recipes.resilience import hedge
    >>> async def quick():
    ...     await asyncio.sleep(0.1)
    ...     return "quick"
    >>> await hedge(quick, delay=0.5)  # answered before the delay: one call
    'quick'

    Both attempts failing:

    >>> errors = iter([ConnectionResetError("first"), TimeoutError("second")])
    >>> async def failing():
    ...     await asyncio.sleep(0.1)
    ...     raise next(errors)
    >>> await hedge(failing, delay=0.5)
    Traceback (most recent call last):
    ...
    TimeoutError: second

    *factory* is called once per attempt and must return a new awaitable
    each time; the attempts run as tasks, so they see the caller's context
    (and its :func:`deadline`).  A coroutine instead of a factory is refused:

    >>> await hedge(quick(), delay=0.5)
    Traceback (most recent call last):
    ...
    TypeError: hedge() takes a function ...
    """
    _refuse_awaitable(factory, "hedge()")
    _check_seconds("delay", delay, zero_ok=True)
    _check_int("attempts", attempts, 1)
    loop = asyncio.get_running_loop()

    async def attempt() -> T:
        return await factory()

    tasks: List[asyncio.Task[T]] = []
    last_start = loop.time()
    last_error: Optional[BaseException] = None
    try:
        while True:
            running = [task for task in tasks if not task.done()]
            if len(tasks) < attempts and (not running or loop.time() >= last_start + delay):
                tasks.append(asyncio.create_task(attempt()))
                last_start = loop.time()
                running.append(tasks[-1])
            if not running:
                assert last_error is not None
                raise last_error
            wait: Optional[float] = None
            if len(tasks) < attempts:
                wait = max(0.0, last_start + delay - loop.time())
            done, _ = await asyncio.wait(
                running, timeout=wait, return_when=asyncio.FIRST_COMPLETED
            )
            for task in tasks:  # in the order they were started
                if task in done:
                    if task.cancelled():
                        raise asyncio.CancelledError  # cancelled from outside
                    error = task.exception()
                    if error is None:
                        return task.result()
                    last_error = error
    finally:
        losers = [task for task in tasks if not task.done()]
        for task in losers:
            task.cancel()
        if await _until_done(list(tasks)):
            raise asyncio.CancelledError  # cancelled again while cleaning up: that wins


# --- bulkhead -----------------------------------------------------------------


class BulkheadFullError(Exception):
    """Raised by :class:`Bulkhead` when it refuses a call (full, or waited too long).

    >>> from recipes.resilience import BulkheadFullError
    >>> issubclass(BulkheadFullError, OSError)  # not retried by default
    False

    Refusing is the point: answer at once rather than queue without end.

    >>> import asyncio
    >>> from recipes.resilience import Bulkhead
    >>> reports = Bulkhead(1, name="reports")
    >>> async def build_report():
    ...     await asyncio.sleep(1)
    ...     return 200
    >>> async def handle():
    ...     try:
    ...         return await reports.call(build_report)
    ...     except BulkheadFullError:
    ...         return 503
    >>> await asyncio.gather(handle(), handle())
    [200, 503]
    """


class Bulkhead:
    """A concurrency limit for one dependency, with a bounded, timed waiting line.

    At most *limit* calls run at once.  A call that finds them all busy
    waits, first come first served, if fewer than *max_waiting* are already
    waiting (``None``: no bound), for at most *wait_timeout* seconds
    (``None``: as long as it takes); otherwise it raises
    :exc:`BulkheadFullError`.

    >>> import asyncio
    >>> from recipes.resilience import Bulkhead
    >>> pool = Bulkhead(3, max_waiting=None)
    >>> peak = 0
    >>> async def job(n):
    ...     global peak
    ...     async with pool:
    ...         peak = max(peak, pool.running)
    ...         await asyncio.sleep(0.1)
    ...     return n
    >>> await asyncio.gather(*(job(n) for n in range(10)))
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    >>> peak
    3

    :meth:`call` is the same as a function call: ``await
    pool.call(fetch, url)``.  Settings are checked at once:

    >>> Bulkhead(0)
    Traceback (most recent call last):
    ...
    ValueError: limit must be >= 1, got 0
    >>> Bulkhead(2, wait_timeout=0)
    Traceback (most recent call last):
    ...
    ValueError: wait_timeout must be a finite number > 0, got 0
    """

    def __init__(
        self,
        limit: int,
        *,
        max_waiting: Optional[int] = 0,
        wait_timeout: Optional[float] = None,
        name: str = "bulkhead",
    ) -> None:
        self._limit = _check_int("limit", limit, 1)
        self._max_waiting = (
            None if max_waiting is None else _check_int("max_waiting", max_waiting, 0)
        )
        self._wait_timeout = (
            None if wait_timeout is None else _check_seconds("wait_timeout", wait_timeout)
        )
        self.name = str(name)
        self._free = self._limit
        self._waiters: Deque[asyncio.Future[None]] = collections.deque()

    @property
    def limit(self) -> int:
        """Calls allowed to run at once."""
        return self._limit

    @property
    def running(self) -> int:
        """Calls holding a slot now."""
        return self._limit - self._free

    @property
    def waiting(self) -> int:
        """Calls waiting for a slot now."""
        return sum(1 for waiter in self._waiters if not waiter.done())

    async def acquire(self) -> None:
        """Take a slot, waiting as configured; raise :exc:`BulkheadFullError` if refused."""
        waiting = self.waiting
        if self._free > 0 and not waiting:
            self._free -= 1
            return
        if self._max_waiting is not None and waiting >= self._max_waiting:
            raise BulkheadFullError(
                f"bulkhead {self.name!r} is full: {self.running} "
                f"call{'' if self.running == 1 else 's'} running, {waiting} waiting"
            )
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        timer = None
        if self._wait_timeout is not None:
            timer = loop.call_later(self._wait_timeout, self._give_up, waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.release()  # a slot was handed to us just as we were cancelled
            raise
        finally:
            if timer is not None:
                timer.cancel()
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    def _give_up(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            assert self._wait_timeout is not None
            waiter.set_exception(
                BulkheadFullError(
                    f"bulkhead {self.name!r} is full: no slot free after "
                    f"{_seconds(self._wait_timeout)} s"
                )
            )

    def release(self) -> None:
        """Give a slot back; the longest waiter gets it."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        if self._free >= self._limit:
            raise RuntimeError(f"bulkhead {self.name!r} released more often than acquired")
        self._free += 1

    async def call(self, func: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Await ``func(*args, **kwargs)`` in a slot of this bulkhead.

        >>> import asyncio
        >>> from recipes.resilience import Bulkhead
        >>> async def echo(x):
        ...     await asyncio.sleep(0.1)
        ...     return x
        >>> await Bulkhead(1).call(echo, "hi")
        'hi'
        """
        _refuse_awaitable(func, "Bulkhead.call()")
        await self.acquire()
        try:
            return await func(*args, **kwargs)
        finally:
            self.release()

    async def __aenter__(self) -> Bulkhead:
        await self.acquire()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return (
            f"<Bulkhead {self.name!r} {self.running}/{self._limit} running, "
            f"{self.waiting} waiting>"
        )
