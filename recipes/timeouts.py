"""Put a time limit on awaits, on blocks of code and on multi-step operations.

Anything that waits on the outside world (a socket, a database, a lock held by
someone else) can wait forever. A timeout turns "forever" into an exception you
can handle. asyncio implements every timeout the same way: when time is up, it
*cancels* the waiting task and turns the resulting
:exc:`asyncio.CancelledError` into a timeout error. This chapter covers
:func:`asyncio.wait_for`, the :func:`asyncio.timeout` context manager of 3.11+
and a portable equivalent for 3.8–3.10 (:func:`portable_timeout`), the
exception class you must catch, deadlines that span several steps
(:class:`Budget`), and :func:`asyncio.shield` for work that must not be
interrupted half-way (:func:`shield_until_done`).

Timing out a single await
-------------------------

.. index::
   pair: wait_for; timeout
   single: timeout

:func:`asyncio.wait_for` awaits one awaitable with a time limit. When the limit
passes it cancels the awaitable, *waits until the cancellation has finished*
(so the awaitable's ``finally`` blocks have run), and raises
:exc:`asyncio.TimeoutError`:

>>> import asyncio
>>> async def slow_query():
...     try:
...         await asyncio.sleep(10)
...         return "rows"
...     finally:
...         print("query cleaned up")
>>> try:
...     await asyncio.wait_for(slow_query(), timeout=0.1)
... except asyncio.TimeoutError:
...     print("timed out")
query cleaned up
timed out

When the awaitable finishes in time you simply get its result, and
``timeout=None`` waits without limit. Because the inner awaitable is cancelled,
a slow cleanup makes ``wait_for`` take longer than ``timeout``; and an
awaitable that swallows its cancellation makes ``wait_for`` return whatever it
returns instead of raising.  (:func:`asyncio.wait` with ``timeout=`` is different
again: it raises nothing and cancels nothing, see
:ref:`recipes/waiting:Waiting with a time limit`.)

.. versionchanged:: 3.12

   :func:`asyncio.wait_for` is implemented with :func:`asyncio.timeout`. A
   coroutine passed to it now runs in the calling task instead of a new task,
   so context variables it sets are still set when ``wait_for`` returns.
   Before 3.12, if the *caller*
   was cancelled at the moment the inner awaitable finished, ``wait_for``
   could return the result and lose the cancellation (`CPython issue 86296
   <https://github.com/python/cpython/issues/86296>`_);
   on 3.8–3.11, prefer a timeout scope such as :func:`portable_timeout` (or
   :func:`asyncio.timeout` on 3.11) in code that must shut down reliably.

Catching the right TimeoutError
-------------------------------

.. index::
   pair: TimeoutError; asyncio.TimeoutError
   single: error messages; asyncio.exceptions.TimeoutError

A handler written as ``except TimeoutError:`` works on 3.11 and lets the very
same timeout crash the program on 3.10. The reason is a change of classes:

.. important::

   On Python 3.8–3.10, :exc:`asyncio.TimeoutError` is a class of its own,
   *not* the builtin :exc:`TimeoutError`. Code that catches ``TimeoutError``
   misses every :func:`asyncio.wait_for` timeout there, and the exception
   escapes, printed as ``asyncio.exceptions.TimeoutError``. Since 3.11 the two
   names refer to the same class. Write ``except asyncio.TimeoutError:``,
   which is right on every version.

>>> try:
...     await asyncio.wait_for(asyncio.sleep(1), timeout=0.1)
... except asyncio.TimeoutError:  # catches it on 3.8 as well as on 3.13
...     print("caught")
caught
>>> asyncio.TimeoutError is TimeoutError  # doctest: +PY311
True

Timing out a block of code
--------------------------

.. index::
   pair: timeout; scope
   single: asyncio.timeout
   single: idle timeout

``wait_for`` limits *one* await. To limit a block containing several awaits,
use a timeout scope: the block runs in the current task, and when time is up
the await in progress is cancelled and the scope raises the timeout error on
exit.

.. versionadded:: 3.11

   :func:`asyncio.timeout` and :func:`asyncio.timeout_at`. The object they
   return has :meth:`~asyncio.Timeout.expired` and
   :meth:`~asyncio.Timeout.reschedule`.

>>> try:  # doctest: +PY311
...     async with asyncio.timeout(0.1) as scope:
...         await slow_query()
... except TimeoutError:
...     print("expired:", scope.expired())
query cleaned up
expired: True

:meth:`~asyncio.Timeout.reschedule` moves the deadline while the block runs.
Pushing it forward after every chunk of data turns a total timeout into an
*idle* timeout: the transfer may take as long as it needs, as long as it
never stalls for more than 0.25 s:

>>> loop = asyncio.get_running_loop()
>>> async def chunks(count):
...     for number in range(count):
...         await asyncio.sleep(0.1)
...         yield number
>>> async with asyncio.timeout(0.25) as scope:  # doctest: +PY311
...     async for chunk in chunks(3):
...         scope.reschedule(loop.time() + 0.25)
>>> scope.expired()  # doctest: +PY311
False

On Python 3.8–3.10
~~~~~~~~~~~~~~~~~~

.. index::
   single: portable_timeout
   single: async-timeout (package)

:func:`portable_timeout` and :func:`portable_timeout_at` give the same scope on
every version from 3.8 to 3.15, with the same methods, and raise
:exc:`asyncio.TimeoutError`. Copy this module (or just the
:class:`PortableTimeout` class and its two functions) and the examples above
work unchanged on older interpreters:

>>> from recipes.timeouts import portable_timeout
>>> try:
...     async with portable_timeout(0.1) as scope:
...         await slow_query()
... except asyncio.TimeoutError:
...     print("expired:", scope.expired())
query cleaned up
expired: True
>>> async with portable_timeout(0.25) as scope:
...     async for chunk in chunks(3):
...         scope.reschedule(loop.time() + 0.25)
>>> scope.expired()
False

This cookbook ships its own implementation rather than depending on the
``async-timeout`` package from PyPI, which offered the same thing for older
Pythons: that project is deprecated now that :func:`asyncio.timeout` exists,
and the recipe is one class with no dependency. On 3.11+ you can keep using
:func:`portable_timeout` or switch to :func:`asyncio.timeout`; they behave the
same way, down to nested scopes.

.. important::

   A timeout scope works by cancelling the task, so code inside it must let
   :exc:`asyncio.CancelledError` propagate. A block that catches the
   cancellation and carries on cannot be stopped by any timeout: the scope
   then exits normally, late, with ``expired()`` true.

Nested timeouts
~~~~~~~~~~~~~~~

.. index::
   pair: nested; timeouts

Scopes nest: a generous limit for the whole operation, tighter ones for its
steps. When the *outer* deadline passes inside an inner scope, the inner scope
does not claim the timeout; the cancellation travels out to the scope that
owns it, so an ``except`` around the inner step cannot swallow the end of the
whole operation:

>>> try:
...     async with portable_timeout(0.2):  # the whole operation
...         try:
...             async with portable_timeout(5):  # one step
...                 await asyncio.sleep(1)
...         except asyncio.TimeoutError:
...             print("step timed out")  # not reached: the step had time left
... except asyncio.TimeoutError:
...     print("operation timed out")
operation timed out

On 3.11+ this relies on :meth:`asyncio.Task.cancelling` and
:meth:`asyncio.Task.uncancel`, which count the cancellation requests a task
has received, exactly as :func:`asyncio.timeout` does. On 3.8–3.10 there is no
counter; the scopes keep track of each other through a context variable
instead. One race remains there: if something else cancels the task in the
very loop step in which a scope expires, the scope cannot tell the two
cancellations apart and raises :exc:`asyncio.TimeoutError`.
:ref:`recipes/cancellation:Counting cancellations: cancelling() and uncancel()`
shows the counting protocol step by step.

Sharing one deadline across several steps
-----------------------------------------

.. index::
   single: deadline
   pair: time budget; Budget

"The whole login must finish within 2 s" is one deadline for several awaits.
Giving every step its own ``timeout=2`` allows 2 s *per step*. When the steps
sit next to each other, put them all in one scope. When they are spread over
several functions, or you want a per-step cap as well, pass an absolute
deadline around:

>>> deadline = loop.time() + 0.3
>>> try:  # doctest: +PY311
...     async with asyncio.timeout_at(deadline):
...         await asyncio.sleep(0.2)  # step 1
...     async with asyncio.timeout_at(deadline):
...         await asyncio.sleep(0.2)  # step 2 only has 0.1 s left
... except TimeoutError:
...     print("out of time in step 2")
out of time in step 2

:class:`Budget` wraps that pattern and runs on every version: it knows what is
left, can cap a single step, and refuses to start a step once the time is
used up:

>>> from recipes.timeouts import Budget
>>> budget = Budget(0.3)
>>> await budget.run(asyncio.sleep(0.1, result="step 1"))
'step 1'
>>> round(budget.remaining(), 1)
0.2
>>> try:
...     await budget.run(asyncio.sleep(1, result="step 2"))
... except asyncio.TimeoutError:
...     print("budget used up in step 2")
budget used up in step 2

Protecting work from cancellation
---------------------------------

.. index::
   pair: shield; cancellation
   single: shield_until_done

A request handler writes an order to the database; the client disconnects and
the handler is cancelled half-way through the write. :func:`asyncio.shield`
lets the *caller* be cancelled while the shielded task carries on:

>>> async def save(record):
...     await asyncio.sleep(0.2)
...     print("saved", record)
>>> async def handle_request(writes):
...     write = asyncio.create_task(save("order-1"))
...     writes.add(write)  # a strong reference that outlives this handler
...     write.add_done_callback(writes.discard)
...     await asyncio.shield(write)
>>> writes = set()
>>> request = asyncio.create_task(handle_request(writes))
>>> await asyncio.sleep(0.1)
>>> request.cancel()  # the client went away
True
>>> await asyncio.sleep(0.2)
saved order-1
>>> request.cancelled(), len(writes)
(True, 0)

.. important::

   The event loop keeps only weak references to tasks. A shielded task that
   nothing else refers to can be garbage-collected in the middle of its work,
   so keep a reference until it is done, as ``writes`` does above.
   :func:`asyncio.shield` also protects only against cancelling the *caller*:
   cancelling the shielded task itself still stops it, and when ``main()``
   returns, :func:`asyncio.run` cancels every task that is still running,
   shielded or not.

:func:`shield_until_done` is the version to reach for in most handlers: the
caller waits for the protected work to finish (for at most ``grace`` seconds)
before its cancellation takes effect, so the work cannot be orphaned:

>>> from recipes.timeouts import shield_until_done
>>> async def handler():
...     await shield_until_done(save("order-2"), grace=5)
>>> request = asyncio.create_task(handler())
>>> await asyncio.sleep(0.1)
>>> request.cancel()
True
>>> try:
...     await request
... except asyncio.CancelledError:
...     print("handler cancelled after the write")
saved order-2
handler cancelled after the write

:func:`shield_until_done` protects work in the main path of a task.  For the
cleanup in a ``finally`` block of a task that is being cancelled (a second
``cancel()`` would cut it off), use :func:`recipes.cancellation.shielded_cleanup`
instead (see :ref:`recipes/cancellation:Cleanup that must await`): its time limit
bounds the whole cleanup, and a cleanup that fails leaves the task *cancelled*,
where an error out of :func:`shield_until_done` would replace the cancellation on
its way up.

Stop waiting, but let the work finish
-------------------------------------

.. index::
   pair: shield; wait_for

Combine :func:`asyncio.wait_for` with :func:`asyncio.shield` to give up
*waiting* after a while without stopping the work, for example to answer
"still processing" and let the job complete in the background:

>>> job = asyncio.create_task(asyncio.sleep(0.2, result="report ready"))
>>> try:
...     await asyncio.wait_for(asyncio.shield(job), timeout=0.1)
... except asyncio.TimeoutError:
...     print("still processing")
still processing
>>> await job
'report ready'

On 3.8–3.11 a caller cancelled just as the job finishes would get the report
from ``wait_for`` and lose its cancellation (see the note on CPython issue
86296 above). A timeout scope around the shielded await does not:

>>> job = asyncio.create_task(asyncio.sleep(0.2, result="report ready"))
>>> try:
...     async with portable_timeout(0.1):
...         await asyncio.shield(job)
... except asyncio.TimeoutError:
...     print("still processing")
still processing
>>> await job
'report ready'

A short session
---------------

>>> async def fetch(delay):
...     await asyncio.sleep(delay)
...     return f"answer after {delay} s"
>>> await asyncio.wait_for(fetch(0.1), timeout=1)
'answer after 0.1 s'
>>> try:
...     async with portable_timeout(0.1):
...         await fetch(1)
... except asyncio.TimeoutError:
...     print("too slow")
too slow

A library does this
-------------------

.. index::
   pair: async-timeout (package); comparison
   single: taskgroup (backport); timeout
   pair: taskgroup (backport); comparison

* `async-timeout <https://github.com/aio-libs/async-timeout>`__ is where
  :func:`asyncio.timeout` came from, and its own README now calls it
  deprecated and no longer actively supported.  ``async_timeout.timeout()``
  is a timeout scope on every version; on 3.11+ its ``Timeout`` subclasses
  :class:`asyncio.Timeout` and keeps the package's older interface
  (``expired`` also as a property, ``shift()``, ``update()``, ``reject()``)
  for code written against it.  Keep it where a project already depends on
  it; for new code use :func:`asyncio.timeout` on 3.11+ and this recipe (or
  the backport below) before.
* The `taskgroup <https://github.com/graingert/taskgroup>`__ backport also
  carries ``taskgroup.timeout()`` and ``timeout_at()``, the standard
  library's code from 3.12 for 3.8–3.11.  Like its TaskGroup it moves the
  current coroutine into a task of its own Task subclass while the block
  runs (:ref:`recipes/task_groups:Using TaskGroup on Python 3.8 to 3.10`).
  Take it when you install the backport for TaskGroup anyway;
  :func:`portable_timeout` needs no dependency and no task swap.

See also
--------

* :doc:`/recipes/cancellation` – what the cancellation behind every timeout does,
  and cleanup that must finish anyway.
* :doc:`/recipes/waiting` – :func:`asyncio.wait`, whose ``timeout=`` raises nothing.
* :doc:`/recipes/task_groups` – a time limit around a group of tasks.
* :doc:`/recipes/http_client` and :doc:`/recipes/postgres` – the timeouts that
  aiohttp and asyncpg take themselves.
* Python: :func:`asyncio.timeout`, :func:`asyncio.wait_for`, :func:`asyncio.shield`,
  :exc:`asyncio.TimeoutError`, and the :doc:`python:library/asyncio-task` page.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import math
import numbers
import sys
from types import TracebackType
from typing import Any, Awaitable, Optional, Type, TypeVar

__all__ = [
    "Budget",
    "PortableTimeout",
    "portable_timeout",
    "portable_timeout_at",
    "shield_until_done",
]

T = TypeVar("T")

_CREATED = "created"
_ACTIVE = "active"
_EXPIRING = "expiring"
_EXPIRED = "expired"
_FINISHED = "finished"

# The innermost PortableTimeout entered in the current context (every task
# runs in its own copy of the context). Only 3.8-3.10 need it, to tell nested
# scopes apart; a child task inherits it, hence the task check when reading it.
_innermost: contextvars.ContextVar[Optional[PortableTimeout]] = contextvars.ContextVar(
    "recipes_timeouts_innermost", default=None
)


def _check_number(name: str, value: Optional[float], *, allow_negative: bool) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number of seconds or None, got {value!r}")
    if math.isnan(value):
        raise ValueError(f"{name} must not be NaN")
    if not allow_negative and value < 0:
        raise ValueError(f"{name} must be >= 0 seconds or None, got {value!r}")


class PortableTimeout:
    """A timeout scope like :class:`asyncio.Timeout`, for Python 3.8 to 3.15.

    Create it with :func:`portable_timeout` or :func:`portable_timeout_at`
    and use it with ``async with``:

    >>> import asyncio
    >>> from recipes.timeouts import portable_timeout
    >>> async with portable_timeout(1) as scope:
    ...     await asyncio.sleep(0.1)
    >>> scope.expired()
    False

    When the deadline passes inside the block, the task is cancelled and the
    scope raises :exc:`asyncio.TimeoutError` (chained to the
    :exc:`asyncio.CancelledError`) as the block exits. Only cancellations that
    the scope caused are converted: a cancellation from outside, or from an
    enclosing scope, propagates unchanged (see the chapter's note on the one
    race that remains on 3.8–3.10). A scope can be entered once.
    """

    def __init__(self, when: Optional[float]) -> None:
        _check_number("when", when, allow_negative=True)
        self._when = when
        self._state = _CREATED
        self._task: Optional[asyncio.Task[Any]] = None
        self._handle: Optional[asyncio.Handle] = None
        self._cancelling = 0
        self._parent: Optional[PortableTimeout] = None

    def when(self) -> Optional[float]:
        """Return the deadline in :meth:`asyncio.loop.time` units, or None for no deadline."""
        return self._when

    def expired(self) -> bool:
        """Return True if the deadline passed while the block was running."""
        return self._state in (_EXPIRING, _EXPIRED)

    def reschedule(self, when: Optional[float]) -> None:
        """Move the deadline to ``when`` (loop time; None removes it) while the block runs.

        A deadline in the past expires on the next loop iteration. Calling it
        before ``async with`` has entered the scope, or after it has expired or
        exited, raises :exc:`RuntimeError`.
        """
        if self._state != _ACTIVE:
            raise RuntimeError(f"cannot reschedule a timeout that is {self._state}")
        _check_number("when", when, allow_negative=True)
        self._when = when
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if when is not None:
            loop = asyncio.get_running_loop()
            if when <= loop.time():
                self._handle = loop.call_soon(self._expire)
            else:
                self._handle = loop.call_at(when, self._expire)

    def __repr__(self) -> str:
        when = "" if self._when is None else f" when={self._when:.3f}"
        return f"<PortableTimeout [{self._state}]{when}>"

    async def __aenter__(self) -> PortableTimeout:
        if self._state != _CREATED:
            raise RuntimeError("a timeout scope can be entered only once; create a new one")
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a timeout scope must be used inside a task")
        self._task = task
        if sys.version_info >= (3, 11):
            self._cancelling = task.cancelling()
        self._parent = _innermost.get()
        _innermost.set(self)
        self._state = _ACTIVE
        self.reschedule(self._when)
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        _innermost.set(self._parent)
        if self._state != _EXPIRING:
            self._state = _FINISHED
            return
        self._state = _EXPIRED
        assert self._task is not None
        if sys.version_info >= (3, 11):
            # Withdraw our cancel request. If the count is back where it was
            # on entry, nobody else (outer scope or caller) asked for one.
            ours = self._task.uncancel() <= self._cancelling
        else:
            ours = not self._enclosing_scope_expired()
        if ours and exc_type is not None and issubclass(exc_type, asyncio.CancelledError):
            raise asyncio.TimeoutError from exc

    def _enclosing_scope_expired(self) -> bool:
        parent = self._parent
        while parent is not None:
            if parent._task is self._task and parent._state == _EXPIRING:
                return True
            parent = parent._parent
        return False

    def _expire(self) -> None:
        self._handle = None
        self._state = _EXPIRING
        assert self._task is not None
        self._task.cancel()


def portable_timeout(delay: Optional[float]) -> PortableTimeout:
    """Return a scope that times out ``delay`` seconds from now; None means never.

    The portable counterpart of :func:`asyncio.timeout`:

    >>> import asyncio
    >>> from recipes.timeouts import portable_timeout
    >>> try:
    ...     async with portable_timeout(0.1):
    ...         await asyncio.sleep(1)
    ... except asyncio.TimeoutError:
    ...     print("timed out")
    timed out

    A delay of zero or less expires at the first await inside the block, as
    with :func:`asyncio.timeout`: computed delays such as ``deadline -
    loop.time()`` may legitimately be negative. NaN and non-numbers are
    rejected:

    >>> portable_timeout(float("nan"))
    Traceback (most recent call last):
    ...
    ValueError: delay must not be NaN

    Must be called with a running event loop.
    """
    _check_number("delay", delay, allow_negative=True)
    if delay is None:
        return PortableTimeout(None)
    return PortableTimeout(asyncio.get_running_loop().time() + delay)


def portable_timeout_at(when: Optional[float]) -> PortableTimeout:
    """Return a scope that times out at loop time ``when``; None means never.

    The portable counterpart of :func:`asyncio.timeout_at`. ``when`` is on the
    clock of :meth:`asyncio.loop.time`, not :func:`time.time`:

    >>> import asyncio
    >>> from recipes.timeouts import portable_timeout_at
    >>> loop = asyncio.get_running_loop()
    >>> deadline = loop.time() + 0.3
    >>> async with portable_timeout_at(deadline):
    ...     await asyncio.sleep(0.1)
    >>> try:
    ...     async with portable_timeout_at(deadline):
    ...         await asyncio.sleep(0.5)
    ... except asyncio.TimeoutError:
    ...     print("deadline passed")
    deadline passed
    """
    return PortableTimeout(when)


class Budget:
    """A time budget shared by several steps: each step gets what the earlier ones left.

    >>> import asyncio
    >>> from recipes.timeouts import Budget
    >>> budget = Budget(1.0)
    >>> await budget.run(asyncio.sleep(0.4, result="connected"))
    'connected'
    >>> round(budget.remaining(), 1)
    0.6

    ``cap`` limits one step further, without giving it more than the budget
    has left. Here the budget still has 0.6 s but the step may use 0.2 s:

    >>> try:
    ...     await budget.run(asyncio.sleep(0.5), cap=0.2)
    ... except asyncio.TimeoutError:
    ...     print("step over its cap")
    step over its cap

    :meth:`step` is the same limit as an ``async with`` scope, for steps made
    of several awaits. Once the budget is used up, :meth:`run` raises
    :exc:`asyncio.TimeoutError` without starting the awaitable (a coroutine is
    closed, a task or future is cancelled, as :func:`asyncio.wait_for` would).
    Create the budget inside the running event loop it is used with; a
    negative, infinite or NaN number of seconds is a :exc:`ValueError`.
    """

    def __init__(self, seconds: float) -> None:
        _check_number("seconds", seconds, allow_negative=False)
        if seconds is None or math.isinf(seconds):
            raise ValueError(f"seconds must be a finite number, got {seconds!r}")
        self._loop = asyncio.get_running_loop()
        self._seconds = seconds
        self._deadline = self._loop.time() + seconds

    @property
    def deadline(self) -> float:
        """The end of the budget, in :meth:`asyncio.loop.time` units."""
        return self._deadline

    def remaining(self) -> float:
        """Seconds left, never below zero."""
        return max(0.0, self._deadline - self._loop.time())

    def expired(self) -> bool:
        """True once the budget is used up."""
        return self._loop.time() >= self._deadline

    def step(self, cap: Optional[float] = None) -> PortableTimeout:
        """Return a timeout scope for one step: the rest of the budget, or ``cap`` if sooner."""
        _check_number("cap", cap, allow_negative=False)
        when = self._deadline
        if cap is not None:
            when = min(when, self._loop.time() + cap)
        return PortableTimeout(when)

    async def run(self, aw: Awaitable[T], *, cap: Optional[float] = None) -> T:
        """Await ``aw`` within the rest of the budget (and within ``cap`` seconds, if given)."""
        if not inspect.isawaitable(aw):
            raise TypeError(f"run() needs an awaitable, not {type(aw).__name__!r}")
        try:
            _check_number("cap", cap, allow_negative=False)
            if self.expired():
                raise asyncio.TimeoutError(f"the {self._seconds} s budget is used up")
        except (TypeError, ValueError, asyncio.TimeoutError):
            _discard(aw)
            raise
        async with self.step(cap):
            return await aw


def _discard(aw: Awaitable[Any]) -> None:
    """Drop an awaitable that will not be awaited, without "never awaited" warnings."""
    if asyncio.iscoroutine(aw):
        aw.close()
    elif asyncio.isfuture(aw):
        aw.cancel()


async def shield_until_done(aw: Awaitable[T], *, grace: Optional[float] = None) -> T:
    """Await ``aw`` so that cancelling the caller lets it finish first (for up to ``grace`` s).

    Without cancellation it is a plain await:

    >>> import asyncio
    >>> from recipes.timeouts import shield_until_done
    >>> async def write(record):
    ...     await asyncio.sleep(0.2)
    ...     print("wrote", record)
    ...     return record
    >>> await shield_until_done(write("a"))
    wrote a
    'a'

    When the caller is cancelled, the protected work carries on; the caller
    waits for it and then re-raises :exc:`asyncio.CancelledError`. With
    ``grace`` set, work that takes longer than ``grace`` seconds after the
    cancellation is cancelled after all, so a hung write cannot block shutdown
    forever:

    >>> task = asyncio.create_task(shield_until_done(write("b"), grace=0.1))
    >>> await asyncio.sleep(0)  # let it start
    >>> task.cancel()
    True
    >>> try:
    ...     await task
    ... except asyncio.CancelledError:
    ...     print("cancelled; the write did not finish within the grace period")
    cancelled; the write did not finish within the grace period

    Further cancellations during the grace period are absorbed, since the
    first one is already being honoured. If the work fails after the caller
    was cancelled, the caller still sees :exc:`asyncio.CancelledError` and the
    failure goes to the event loop's exception handler (logged by default), so
    it is not lost. Cancelling the work itself (when you pass a task) cancels
    it; the caller then gets :exc:`asyncio.CancelledError` as from any
    cancelled task.

    For cleanup in a ``finally`` block, :func:`recipes.cancellation.shielded_cleanup`
    is the better fit: a cleanup that fails there leaves the task cancelled.
    """
    if not inspect.isawaitable(aw):
        raise TypeError(f"shield_until_done() needs an awaitable, not {type(aw).__name__!r}")
    try:
        _check_number("grace", grace, allow_negative=False)
    except (TypeError, ValueError):
        _discard(aw)
        raise
    task = asyncio.ensure_future(aw)  # our local reference keeps it alive
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if not task.done():  # the caller was cancelled, not the work
            await _let_finish(task, grace)
        raise


async def _let_finish(task: asyncio.Future[Any], grace: Optional[float]) -> None:
    """Wait for ``task`` despite further cancellations; cancel it after ``grace`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = None if grace is None else loop.time() + grace
    while not task.done():
        remaining = None if deadline is None else deadline - loop.time()
        if remaining is not None and remaining <= 0:
            task.cancel()
            deadline = None  # now wait for it to wind down
            continue
        try:
            await asyncio.wait([task], timeout=remaining)
        except asyncio.CancelledError:
            continue  # already being cancelled; the grace period still bounds the wait
        if not task.done() and deadline is not None:
            # The wait timed out. Do not recompute the time left: timers may
            # fire a hair early, and a tiny positive remainder would spin.
            task.cancel()
            deadline = None
    if not task.cancelled() and task.exception() is not None:
        loop.call_exception_handler(
            {
                "message": "shield_until_done(): the protected work failed "
                "after its caller was cancelled",
                "exception": task.exception(),
                "future": task,
            }
        )
