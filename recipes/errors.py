"""An exception raised in a coroutine travels up through ``await`` exactly as it would
through ordinary calls.  Concurrency is what makes error handling in asyncio
different: when several tasks run at once, *where* does an exception go, who sees it,
and what happens to the others?  The answer depends on the tool that started them –
:func:`asyncio.gather`, :func:`asyncio.wait` and :class:`asyncio.TaskGroup` each behave
differently.  This chapter goes through the three, shows how to take an
``ExceptionGroup`` apart, and ends with a copyable retry helper, :func:`retry` (and
its decorator form :func:`retrying`), with exponential backoff and full jitter that
builds a fresh coroutine for every attempt.

Exceptions across await
-----------------------

.. index::
   pair: exceptions; await
   pair: exceptions; tasks

Within one task nothing is new: an exception propagates from the coroutine that
raised it through every ``await`` above it, and ``try``/``except`` catches it at any
level.  Awaiting a task re-raises the exception that ended it, so an error crosses from
one task to another at the point where the result is collected:

>>> import asyncio
>>> from recipes.errors import retry, retrying
>>> async def parse(text):
...     await asyncio.sleep(0.1)  # pretend to do I/O
...     return int(text)
>>> async def load(text):
...     return await parse(text) * 2
>>> try:
...     await load("forty-two")
... except ValueError as exc:
...     print("caught in the caller:", exc)
caught in the caller: invalid literal for int() with base 10: 'forty-two'
>>> task = asyncio.create_task(load("x"))
>>> await asyncio.wait([task])  # the task has failed; nothing is raised yet
(...)
>>> await task  # the error surfaces where the task is awaited
Traceback (most recent call last):
...
ValueError: invalid literal for int() with base 10: 'x'

Errors in gather
----------------

.. index::
   pair: gather; exceptions
   pair: gather; return_exceptions

:func:`asyncio.gather` returns the results in argument order.  When one awaitable
raises, ``gather`` raises that first exception to its caller at once – but it does
*not* cancel the others.  They keep running in the background, and whatever they
raise later is never seen by anyone:

>>> async def step(name, seconds, error=None):
...     await asyncio.sleep(seconds)
...     if error is not None:
...         raise error
...     print(name, "finished")
...     return name
>>> try:
...     await asyncio.gather(step("a", 0.1, KeyError("a")), step("b", 0.3))
... except KeyError as exc:
...     print("gather raised", repr(exc))
gather raised KeyError('a')
>>> await asyncio.sleep(0.3)  # "b" is still running
b finished

With ``return_exceptions=True`` nothing is raised: exceptions are returned in place of
results, so every outcome can be inspected.  :doc:`/recipes/gathering` shows how to
cancel the others when one fails, and how to split the outcomes into results and
errors.

.. index::
   pair: CancelledError; return_exceptions

.. important::

   The outcomes of ``gather(..., return_exceptions=True)`` can include
   :exc:`asyncio.CancelledError`, which is a :exc:`BaseException`, not an
   :exc:`Exception`.  Filter with ``isinstance(result, BaseException)``, or a cancelled
   task's "result" passes for a value.

>>> victim = asyncio.create_task(asyncio.sleep(10))
>>> victim.cancel()
True
>>> outcomes = await asyncio.gather(
...     step("a", 0.1), step("b", 0.1, KeyError("b")), victim,
...     return_exceptions=True,
... )
a finished
>>> outcomes
['a', KeyError('b'), CancelledError(...)]
>>> [o for o in outcomes if not isinstance(o, Exception)]  # WRONG
['a', CancelledError(...)]
>>> [o for o in outcomes if not isinstance(o, BaseException)]
['a']

Errors in wait
--------------

.. index::
   pair: wait; exceptions

:func:`asyncio.wait` never raises the tasks' exceptions: it returns ``(done,
pending)`` and leaves each exception stored on its task.  Call ``task.result()``
(re-raises) or ``task.exception()`` (returns it) for every task in ``done``:

>>> tasks = [asyncio.create_task(step(n, 0.1, error)) for n, error in
...          [("a", None), ("b", ConnectionError("b")), ("c", None)]]
>>> done, pending = await asyncio.wait(tasks)
a finished
c finished
>>> [repr(task.exception()) for task in tasks]
['None', "ConnectionError('b')", 'None']

.. index::
   single: error messages; Task exception was never retrieved

.. important::

   An exception that nobody retrieves is reported only when the task is garbage
   collected – possibly much later, somewhere unrelated – as ``Task exception was
   never retrieved``, through the loop's exception handler (which logs it).  Keep the
   tasks, and look at each one.  :ref:`recipes/debugging:Logging exceptions that
   nobody retrieved` makes these reports name the task that lost its error.

>>> loop = asyncio.get_running_loop()
>>> def report(loop, context):
...     print("asyncio:", context["message"])
>>> loop.set_exception_handler(report)
>>> import gc
>>> forgotten = asyncio.create_task(step("d", 0.1, ValueError("d")))
>>> _ = await asyncio.wait([forgotten])
>>> del forgotten, _; _ = gc.collect()  # the last reference goes away
asyncio: Task exception was never retrieved
>>> loop.set_exception_handler(None)

.. index::
   pair: wait; FIRST_EXCEPTION

``wait(return_when=asyncio.FIRST_EXCEPTION)`` returns as soon as one task fails, which
is how to get TaskGroup-like behaviour with only the standard library of 3.8–3.10:
wait for the first failure, cancel the rest, wait for them, then look at each task:

>>> tasks = [asyncio.create_task(step("a", 0.1, KeyError("a"))),
...          asyncio.create_task(step("b", 5))]
>>> done, pending = await asyncio.wait(
...     tasks, return_when=asyncio.FIRST_EXCEPTION
... )
>>> for task in pending:
...     _ = task.cancel()
>>> _ = await asyncio.wait(pending)
>>> [repr(task.exception()) for task in tasks if not task.cancelled()]
["KeyError('a')"]
>>> [task.cancelled() for task in tasks]
[False, True]

Errors in a TaskGroup
---------------------

.. index::
   pair: TaskGroup; exceptions
   single: error messages; unhandled errors in a TaskGroup

:class:`asyncio.TaskGroup` (Python 3.11+) does what the example above does by hand:
the first failure cancels the other tasks, and when all have finished, *every* error
is raised together in an :exc:`ExceptionGroup`:

>>> try:  # doctest: +PY311
...     async with asyncio.TaskGroup() as tg:
...         a = tg.create_task(step("a", 0, KeyError("a")))
...         b = tg.create_task(step("b", 0, OSError("b")))
...         c = tg.create_task(step("c", 5))
... except ExceptionGroup as group:
...     print(group.message, group.exceptions)
unhandled errors in a TaskGroup (KeyError('a'), OSError('b'))

On 3.8–3.10 the ``taskgroup`` and ``exceptiongroup`` backports from PyPI provide the
same class and the same groups; :doc:`/recipes/task_groups` shows how to use them on
every version.

Handling an ExceptionGroup
--------------------------

.. index::
   single: except*
   pair: ExceptionGroup; split
   pair: ExceptionGroup; subgroup

``except*`` catches the matching exceptions *inside* a group; every clause that
matches runs, and unmatched exceptions are re-raised in a smaller group:

>>> try:  # doctest: +PY311
...     leaves = [KeyError("a"), OSError("b"), OSError("c")]
...     raise ExceptionGroup("batch", leaves)
... except* OSError as group:
...     print("I/O errors:", group.exceptions)
... except* KeyError as group:
...     print("lookup errors:", group.exceptions)
I/O errors: (OSError('b'), OSError('c'))
lookup errors: (KeyError('a'),)

Without the new syntax, :meth:`BaseExceptionGroup.split` divides a group into the
matching and the non-matching part (either may be ``None``), keeping nested groups
and tracebacks; :meth:`BaseExceptionGroup.subgroup` keeps only the matching part.
The ``exceptiongroup`` backport's classes have the same two methods on 3.8–3.10:

>>> leaves = [KeyError("a"), OSError("b")]
>>> group = ExceptionGroup("batch", leaves)  # doctest: +PY311
>>> io_errors, rest = group.split(OSError)  # doctest: +PY311
>>> io_errors.exceptions, rest.exceptions  # doctest: +PY311
((OSError('b'),), (KeyError('a'),))

Both also take a predicate instead of a type.  It is called on the groups too,
outermost first, and a group it accepts is taken whole – here ``"batch"`` contains an
"a":

>>> group.subgroup(lambda exc: "a" in str(exc)).exceptions  # doctest: +PY311
(KeyError('a'), OSError('b'))
>>> def leaf_mentions_a(exc):
...     return not isinstance(exc, BaseExceptionGroup) and "a" in str(exc)
>>> group.subgroup(leaf_mentions_a).exceptions  # doctest: +PY311
(KeyError('a'),)

.. versionadded:: 3.11
   :exc:`ExceptionGroup`, :exc:`BaseExceptionGroup`, ``except*`` and
   :class:`asyncio.TaskGroup`.

Retrying with exponential backoff
---------------------------------

.. index::
   single: retry
   pair: exponential backoff; jitter

Networks fail briefly all the time: a connection is reset, a server restarts, a
request times out.  Trying again after a pause often works; trying again *at once*, or
with every client retrying on the same schedule, makes an overloaded server worse.
The standard remedy is exponential backoff with full jitter: before attempt *n* + 1,
sleep a random time between 0 and ``min(max_delay, base_delay * 2 ** (n - 1))``.

.. index::
   single: error messages; cannot reuse already awaited coroutine

.. important::

   A retry must build a *new* coroutine for every attempt.  A coroutine object runs
   once; awaiting it a second time raises ``RuntimeError: cannot reuse already awaited
   coroutine``.  That is why :func:`retry` takes a *factory* – a function such as
   ``lambda: fetch(url)`` – and not ``fetch(url)``.

>>> async def fetch(url):
...     await asyncio.sleep(0.1)
...     raise ConnectionResetError(f"{url}: connection reset")
>>> coro = fetch("/quote")
>>> try:
...     await coro
... except ConnectionResetError as exc:
...     print("first attempt failed:", exc)
first attempt failed: /quote: connection reset
>>> await coro  # "try again" with the same object
Traceback (most recent call last):
...
RuntimeError: cannot reuse already awaited coroutine

:func:`retry` calls the factory for every attempt, retries only the exceptions you
name (by default ``OSError`` – which covers ``ConnectionError`` – and
``asyncio.TimeoutError``), sleeps with backoff in between, never retries a
cancellation, and after the last attempt raises the last error:

>>> calls = []
>>> async def flaky_quote():
...     calls.append(loop.time())
...     if len(calls) < 3:
...         raise ConnectionResetError("try again")
...     return 42.0
>>> start = loop.time()
>>> await retry(flaky_quote, attempts=5, base_delay=0.2, jitter=False)
42.0
>>> [round(t - start, 1) for t in calls]  # slept 0.2, then 0.4
[0.0, 0.2, 0.6]

Retries in your code are invisible unless you log them; pass ``on_retry`` (called
with the attempt number, its error and the coming delay).  With ``jitter=True`` (the
default) the delays are random; pass a seeded :class:`random.Random` as ``rng`` to make
them repeatable in tests:

>>> import random
>>> def log(attempt, error, delay):
...     print(f"attempt {attempt}: {error!r}, next in {delay:.3f} s")
>>> calls.clear()
>>> rng = random.Random(3)
>>> await retry(flaky_quote, base_delay=0.2, rng=rng, on_retry=log)
attempt 1: ConnectionResetError('try again'), next in 0.048 s
attempt 2: ConnectionResetError('try again'), next in 0.218 s
42.0

The rest of the options – a timeout per attempt, giving up, errors that must not be
retried, collecting every attempt's error – are shown with :func:`retry` below.
:func:`retrying` applies the same policy to every call of a coroutine function.

For HTTP requests made with aiohttp, :func:`recipes.http_client.with_retries`
(:ref:`recipes/http_client:Retrying with exponential backoff`) is the specialised
form: it decides by the response, retrying 5xx statuses, dropped connections and
timeouts but never a 4xx, and honours ``Retry-After``.  Use it for aiohttp calls,
and :func:`retry` for everything else (a database, a socket, a library of your
own), where you name the exceptions worth another attempt.

A short session to end with: a service that fails twice, retried by a decorated
function, with the clock showing the backoff.

>>> attempts_seen = []
>>> @retrying(attempts=4, base_delay=0.1, jitter=False)
... async def get_price(symbol):
...     attempts_seen.append(round(loop.time() - start, 1))
...     if len(attempts_seen) < 3:
...         raise ConnectionRefusedError(symbol)
...     return {"symbol": symbol, "price": 42.0}
>>> start = loop.time()
>>> await get_price("ACME")
{'symbol': 'ACME', 'price': 42.0}
>>> attempts_seen  # slept 0.1, then 0.2
[0.0, 0.1, 0.3]

A library does this
-------------------

.. index::
   single: tenacity
   pair: tenacity; comparison
   single: stamina
   pair: stamina; comparison

* `tenacity <https://tenacity.readthedocs.io/>`__ retries sync and async
  functions with its ``@retry`` decorator, and a block of code with
  ``async for attempt in AsyncRetrying(...): with attempt: ...``.  Each
  attempt calls the function again, so every attempt gets a fresh coroutine.
  Policies are composed from parts: stop conditions (attempts, elapsed time),
  waits (``wait_random_exponential`` is the full jitter used here), retrying
  on a returned value as well as on exceptions, and hooks such as
  ``before_sleep``.  Left at its defaults it retries every ``Exception``
  forever without waiting, and when it gives up it raises tenacity's
  ``RetryError``, which wraps the last attempt, unless you pass
  ``reraise=True``.  A cancellation during the sleep is not retried, but one
  that an attempt's cleanup turns into an ordinary exception is, and the
  caller gets the next attempt's value (:func:`retry` raises the
  cancellation instead, on 3.11+ or with ``timeout``).  It has no timeout per
  attempt and does not keep every attempt's error (:func:`retry` has
  ``timeout`` and ``collect_errors``).  It also runs under Trio.  Its
  current release needs Python 3.10+.  :ref:`performance:retry() against
  tenacity` measures both.
* `stamina <https://stamina.hynek.me/>`__ is a thin layer over tenacity with
  fixed, safe choices: ``@stamina.retry(on=...)`` must name what to retry,
  backs off exponentially with jitter, stops after 10 attempts or 45 seconds
  by default and re-raises the last error.  It adds ``retry_context()`` for
  a block, a test mode that turns backoff off and caps attempts
  (``stamina.set_testing()``), hooks for logging, structlog and Prometheus,
  and an ``on`` callable that may return the delay to wait (for a
  ``Retry-After`` header).  Needs Python 3.10+.

Choose tenacity for unusual policies (retrying on a result, composed
waits), stamina for good defaults, metrics and the test switch, and copy
:func:`retry` for Python 3.8 and 3.9, a timeout per attempt or every
attempt's error (:class:`RetryError`), or to add no dependency.

See also
--------

* :doc:`/recipes/gathering` and :doc:`/recipes/waiting`: collecting the results
  and the errors of many tasks.
* :doc:`/recipes/task_groups`: TaskGroup on every Python version, and stopping a
  group early.
* :doc:`/recipes/cancellation`: why :exc:`asyncio.CancelledError` is never caught
  with the other errors.
* :doc:`/recipes/timeouts`: a time limit per attempt or for the whole retry.
* :doc:`/recipes/http_client`: :func:`recipes.http_client.with_retries`, retries
  decided by the HTTP status.
* :doc:`/recipes/debugging`: logging the exceptions that nobody retrieved.
* Python: :ref:`python:asyncio-exceptions`, :func:`asyncio.gather`,
  :class:`asyncio.TaskGroup` (in :doc:`python:library/asyncio-task`), and
  :ref:`python:tut-exception-groups` in the tutorial.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import random
import sys
from typing import (
    Any,
    Awaitable,
    Callable,
    List,
    Optional,
    Sequence,
    Tuple,
    Type,
    TypeVar,
    Union,
    cast,
)

__all__ = ["DEFAULT_RETRY_ON", "RetryError", "retry", "retrying"]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

_RetryOn = Union[Type[Exception], Tuple[Type[Exception], ...]]
_OnRetry = Callable[[int, Exception, float], None]

#: What :func:`retry` retries unless told otherwise: network and timeout errors.
DEFAULT_RETRY_ON: Tuple[Type[Exception], ...] = (OSError, asyncio.TimeoutError)


class RetryError(Exception):
    """Raised by ``retry(..., collect_errors=True)`` when every attempt has failed.

    ``errors`` holds each attempt's exception in order; the last one is also the
    ``__cause__``, so a traceback shows it.
    """

    def __init__(self, message: str, errors: Sequence[Exception]) -> None:
        super().__init__(message)
        self.errors: List[Exception] = list(errors)


async def retry(
    factory: Callable[[], Awaitable[T]],
    *,
    attempts: int = 3,
    base_delay: float = 0.1,
    max_delay: float = 10.0,
    retry_on: _RetryOn = DEFAULT_RETRY_ON,
    timeout: Optional[float] = None,
    jitter: bool = True,
    rng: Optional[random.Random] = None,
    on_retry: Optional[_OnRetry] = None,
    collect_errors: bool = False,
) -> T:
    """Await ``factory()`` until it succeeds, at most *attempts* times, with backoff.

    >>> import asyncio
    >>> from recipes.errors import RetryError, retry
    >>> outcomes = iter([ConnectionResetError("reset"), "pong"])
    >>> async def ping():
    ...     await asyncio.sleep(0.1)
    ...     outcome = next(outcomes)
    ...     if isinstance(outcome, Exception):
    ...         raise outcome
    ...     return outcome
    >>> await retry(ping)
    'pong'

    *factory* is called afresh for every attempt and must return a new awaitable each
    time (``lambda: fetch(url)``, ``functools.partial(fetch, url)``, or a coroutine
    function that takes no arguments).  Before attempt *n* + 1 it sleeps
    ``min(max_delay, base_delay * 2 ** (n - 1))`` seconds – or, with *jitter* (the
    default), a random time between 0 and that, drawn from *rng*.  Only exceptions
    that are instances of *retry_on* (by default :data:`DEFAULT_RETRY_ON`) are
    retried; anything else propagates at once, and so does
    :exc:`asyncio.CancelledError`, always.

    After the last attempt the last error is raised, as itself, so ``except
    ConnectionError`` still works around the call.  With ``collect_errors=True`` a
    :class:`RetryError` is raised instead, holding every attempt's error:

    >>> async def down():
    ...     await asyncio.sleep(0.1)
    ...     raise ConnectionRefusedError("db:5432")
    >>> await retry(down, attempts=2, base_delay=0.1)
    Traceback (most recent call last):
    ...
    ConnectionRefusedError: db:5432
    >>> try:
    ...     await retry(down, attempts=2, base_delay=0.1, collect_errors=True)
    ... except RetryError as exc:
    ...     print(exc)
    ...     print(exc.errors)
    gave up after 2 attempts (ConnectionRefusedError('db:5432'))
    [ConnectionRefusedError('db:5432'), ConnectionRefusedError('db:5432')]

    *timeout* bounds each attempt: an attempt that overruns is cancelled, its
    cleanup is awaited, and it counts as an :exc:`asyncio.TimeoutError`, which the
    default *retry_on* retries:

    >>> loop = asyncio.get_running_loop()
    >>> durations = iter([10, 0.1])  # the first attempt hangs
    >>> async def sometimes_hangs():
    ...     await asyncio.sleep(next(durations))
    ...     return "answered"
    >>> start = loop.time()
    >>> await retry(sometimes_hangs, timeout=0.5, base_delay=0.1, jitter=False)
    'answered'
    >>> round(loop.time() - start, 1)  # 0.5 timed out + 0.1 backoff + 0.1 answer
    0.7

    Cancelling the caller always stops the loop, even when the cancellation
    lands in the very loop step in which an attempt ends: ``retry`` raises
    :exc:`asyncio.CancelledError` and makes no further attempt.  That is why
    the timeout is not :func:`asyncio.wait_for`, which before Python 3.12 can
    return the attempt's outcome and drop such a cancellation (CPython issue
    86296); on 3.11+ it is :func:`asyncio.timeout`, and on 3.8–3.10 the
    attempt runs in a task of its own, awaited with :func:`asyncio.wait`.

    The same holds when the attempt makes something else of the
    cancellation: a cleanup in its ``finally`` block that raises
    ``ConnectionResetError`` (which would be retried), an ``except
    CancelledError`` that raises another error, or one that swallows it and
    returns a value.  ``retry`` raises :exc:`asyncio.CancelledError`, with
    the attempt's error as its ``__cause__``, neither retrying nor returning.
    That is guaranteed on 3.11+, where :meth:`asyncio.Task.cancelling`
    counts the cancellation requests (an attempt that cancels its own task
    and absorbs that cancellation must call :meth:`asyncio.Task.uncancel`,
    as :func:`asyncio.timeout` does, or it is taken for a cancellation of the
    caller), and with *timeout* on every version.  On 3.8–3.10 without
    *timeout* the attempt runs in the caller's task, and nothing tells such
    an error from an ordinary one, or from a timeout
    inside the attempt that cancels the task itself and raises
    :exc:`asyncio.TimeoutError` (async-timeout, which aiohttp uses there,
    does): it is retried or raised like any other.  There, pass *timeout*
    if the caller may be cancelled during an attempt whose cleanup can fail.

    Errors outside *retry_on* are not retried – a ``ValueError`` from bad input will
    not go away by asking again:

    >>> async def bad_request():
    ...     raise ValueError("symbol must be upper case")
    >>> await retry(bad_request, attempts=5)
    Traceback (most recent call last):
    ...
    ValueError: symbol must be upper case

    Arguments are checked before the first attempt.  Passing a coroutine object
    instead of a factory is the classic mistake and raises :exc:`TypeError` (the
    coroutine is closed, so no "never awaited" warning follows); so do a factory that
    returns something that is not awaitable and a *retry_on* that is not made of
    :exc:`Exception` subclasses.  *attempts* < 1, negative delays, ``max_delay <
    base_delay`` and ``timeout <= 0`` raise :exc:`ValueError`:

    >>> await retry(ping())
    Traceback (most recent call last):
    ...
    TypeError: retry() needs a factory that returns a new awaitable ...
    >>> await retry(ping, attempts=0)
    Traceback (most recent call last):
    ...
    ValueError: attempts must be >= 1, got 0
    """
    _check_policy(attempts, base_delay, max_delay, retry_on, timeout, on_retry)
    if inspect.isawaitable(factory):
        if inspect.iscoroutine(factory):
            factory.close()
        raise TypeError(
            "retry() needs a factory that returns a new awaitable on each call, "
            f"such as lambda: fetch(url); got {type(factory).__name__} object, "
            "which can be awaited only once"
        )
    if not callable(factory):
        raise TypeError(f"retry() needs a callable factory, got {type(factory).__name__}")
    # The module's generator unless one is given: a new Random() per call would cost
    # an os.urandom() seed on every call, even when nothing fails.
    uniform = random.uniform if rng is None else rng.uniform
    errors: List[Exception] = []
    for attempt in range(1, attempts + 1):
        before = _cancel_requests()
        try:
            awaitable = factory()
            if inspect.isawaitable(awaitable):
                if timeout is None:
                    result = await awaitable
                else:
                    result = await _within(timeout, awaitable)
                if _cancel_requests() > before:
                    raise asyncio.CancelledError  # the attempt swallowed our cancellation
                return result
        except Exception as exc:
            if _cancel_requests() > before:
                # The attempt turned our cancellation into an error (its cleanup
                # raised): never retry it, never raise it in the cancellation's place.
                raise asyncio.CancelledError from exc
            if not isinstance(exc, retry_on):
                raise
            error = exc
        else:
            raise TypeError(
                f"retry(): the factory must return an awaitable, it returned "
                f"{type(awaitable).__name__}"
            )
        if collect_errors or attempt == attempts:
            errors.append(error)
        if attempt == attempts:
            break
        delay = min(max_delay, base_delay * 2.0 ** min(attempt - 1, 64))
        if jitter:
            # Rounded to the microsecond: finer is meaningless for a sleep, and virtual
            # test clocks (looptime before 0.9) stall on sub-microsecond timers.
            delay = round(uniform(0, delay), 6)
        if on_retry is not None:
            on_retry(attempt, error, delay)
        await asyncio.sleep(delay)
    last = errors[-1]
    if collect_errors:
        raise RetryError(f"gave up after {attempts} attempts ({last!r})", errors) from last
    raise last


def _cancel_requests() -> int:
    """Cancellation requests pending for the current task (3.11+; always 0 before)."""
    if sys.version_info < (3, 11):
        return 0
    task = asyncio.current_task()
    return 0 if task is None else task.cancelling()


if sys.version_info >= (3, 11):

    async def _within(timeout: float, aw: Awaitable[T]) -> T:
        """Await *aw* for at most *timeout* seconds, else cancel it and raise TimeoutError.

        asyncio.timeout() runs *aw* in the calling task and counts cancel
        requests, so a cancellation from outside is never taken for the timeout.
        """
        async with asyncio.timeout(timeout):
            return await aw

else:

    async def _within(timeout: float, aw: Awaitable[T]) -> T:
        """The same on 3.8-3.10, without asyncio.wait_for (CPython gh-86296).

        wait() never raises on the task's behalf: a CancelledError here is always
        ours, even when the task ends in the same loop step.
        """
        task = asyncio.ensure_future(aw)
        try:
            await asyncio.wait([task], timeout=timeout)
        except asyncio.CancelledError as exc:
            # Ours, however the attempt ends: its error, if any, becomes the cause.
            task.cancel()
            await _until_done(task)
            error = None if task.cancelled() else task.exception()
            if isinstance(error, Exception):
                raise exc from error
            raise
        if not task.done():  # timed out
            task.cancel()
            if await _until_done(task):
                raise asyncio.CancelledError from None  # cancelled meanwhile: that wins
            if task.cancelled():
                raise asyncio.TimeoutError from None
        return task.result()  # also what an attempt that ignored the cancel returned

    async def _until_done(task: asyncio.Future[Any]) -> bool:
        """Wait until *task* has ended, whatever cancels us; return True if something did."""
        cancelled = False
        while not task.done():
            try:
                await asyncio.wait([task])
            except asyncio.CancelledError:
                cancelled = True
        if not task.cancelled():
            task.exception()  # retrieved: no "Task exception was never retrieved"
        return cancelled


def retrying(
    *,
    attempts: int = 3,
    base_delay: float = 0.1,
    max_delay: float = 10.0,
    retry_on: _RetryOn = DEFAULT_RETRY_ON,
    timeout: Optional[float] = None,
    jitter: bool = True,
    rng: Optional[random.Random] = None,
    on_retry: Optional[_OnRetry] = None,
    collect_errors: bool = False,
) -> Callable[[F], F]:
    """Decorate a coroutine function so that every call is retried like :func:`retry`.

    >>> import asyncio
    >>> from recipes.errors import retrying
    >>> results = iter([ConnectionResetError("reset"), "ok"])
    >>> @retrying(attempts=3, base_delay=0.1)
    ... async def send(message):
    ...     await asyncio.sleep(0.1)
    ...     result = next(results)
    ...     if isinstance(result, Exception):
    ...         raise result
    ...     return f"{message}: {result}"
    >>> await send("hello")
    'hello: ok'

    Each call retries with the same arguments, building a new coroutine per attempt.
    The options are those of :func:`retry` and are checked when the decorator is
    applied, so a bad policy fails at import time rather than on the first error:

    >>> @retrying(base_delay=-1)
    ... async def never_defined():
    ...     pass
    Traceback (most recent call last):
    ...
    ValueError: base_delay must be >= 0, got -1

    Only idempotent operations should be retried blindly: a request that timed out may
    still have been carried out by the server.
    """
    _check_policy(attempts, base_delay, max_delay, retry_on, timeout, on_retry)

    def decorate(func: F) -> F:
        if not callable(func):
            raise TypeError(f"@retrying() decorates a callable, got {type(func).__name__}")

        @functools.wraps(func)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            return await retry(
                lambda: func(*args, **kwargs),
                attempts=attempts,
                base_delay=base_delay,
                max_delay=max_delay,
                retry_on=retry_on,
                timeout=timeout,
                jitter=jitter,
                rng=rng,
                on_retry=on_retry,
                collect_errors=collect_errors,
            )

        return cast(F, wrapper)

    return decorate


def _check_policy(
    attempts: int,
    base_delay: float,
    max_delay: float,
    retry_on: _RetryOn,
    timeout: Optional[float],
    on_retry: Optional[_OnRetry],
) -> None:
    if isinstance(attempts, bool) or not isinstance(attempts, int):
        raise TypeError(f"attempts must be an int, got {type(attempts).__name__}")
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts}")
    for name, value in (("base_delay", base_delay), ("max_delay", max_delay)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number, got {type(value).__name__}")
        if not value >= 0:  # also rejects NaN
            raise ValueError(f"{name} must be >= 0, got {value}")
    if max_delay < base_delay:
        raise ValueError(f"max_delay ({max_delay}) must be >= base_delay ({base_delay})")
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be > 0 or None, got {timeout}")
    types = retry_on if isinstance(retry_on, tuple) else (retry_on,)
    for kind in types:
        if not (isinstance(kind, type) and issubclass(kind, Exception)):
            raise TypeError(
                f"retry_on takes Exception subclasses, got {kind!r}; CancelledError, "
                "KeyboardInterrupt and SystemExit are never retried"
            )
    if on_retry is not None and not callable(on_retry):
        raise TypeError(f"on_retry must be callable, got {type(on_retry).__name__}")
