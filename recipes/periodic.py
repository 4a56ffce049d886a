"""Refreshing a cache every minute, sending a heartbeat every five seconds,
polling a queue twice a second: the obvious loop, work then
``await asyncio.sleep(interval)``, gets three things wrong.  It drifts (every
tick starts later by the time the work took), it dies for good at the first
exception, and it leaves a task running that nobody stops.  This chapter
schedules ticks against absolute deadlines, decides explicitly what happens
when a tick overruns, survives failing ticks, and stops cleanly:
:class:`PeriodicTask` packages all of it, so that a coroutine runs every N
seconds without drift, overlap or leaks.

Running a coroutine every few seconds without drift
---------------------------------------------------

.. index::
   single: periodic tasks
   pair: periodic tasks; drift

Here is the obvious loop, with a job that takes 0.1 s and an interval of
0.2 s:

>>> import asyncio
>>> from recipes.periodic import PeriodicTask
>>> loop = asyncio.get_running_loop()
>>> async def naive_every(interval, count, job):
...     for _ in range(count):
...         await job()
...         await asyncio.sleep(interval)
>>> starts = []
>>> async def job():
...     starts.append(loop.time())
...     await asyncio.sleep(0.1)
>>> def offsets(times):
...     return [round(t - times[0], 1) for t in times]
>>> await naive_every(0.2, 3, job)
>>> offsets(starts)
[0.0, 0.3, 0.6]

The ticks are 0.3 s apart, not 0.2 s: the sleep starts only after the job has
finished, and every tick adds its own duration (plus scheduling latency) to
the schedule.  After an hour of one-second ticks that need 50 ms of work, the
loop has run about 170 ticks fewer than intended.

Scheduling against deadlines
----------------------------

.. index::
   pair: periodic tasks; deadlines
   single: loop.time(); monotonic clock

Fix the start time once, compute tick ``n``'s deadline as
``start + n * interval`` and sleep *until* it.  Errors cannot accumulate,
because no deadline is computed from a previous one:

>>> async def every(interval, count, job):
...     first = loop.time()
...     for n in range(count):
...         await asyncio.sleep(max(0.0, first + n * interval - loop.time()))
...         await job()
>>> starts = []
>>> await every(0.2, 3, job)
>>> offsets(starts)
[0.0, 0.2, 0.4]

Take the times from the event loop's clock, :meth:`asyncio.loop.time`, which
is monotonic: ``time.time()`` follows the wall clock, and a clock adjustment
(NTP, a suspended laptop, a manual change) would then skip or repeat ticks.
:class:`PeriodicTask` does the same with a task of its own; as an async
context manager it starts on entry and stops on exit:

>>> starts = []
>>> async with PeriodicTask(job, interval=0.2):
...     await asyncio.sleep(0.5)
>>> offsets(starts)
[0.0, 0.2, 0.4]

Deciding what happens when a tick overruns
------------------------------------------

.. index::
   pair: periodic tasks; overrun

Sometimes a tick takes longer than the interval, and the next deadlines pass
while it runs.  Ticks never overlap, so :class:`PeriodicTask` can either
*skip* the missed ticks and carry on at the next deadline still ahead
(``overrun="skip"``, the default: right for polling and heartbeats, where only
the current state matters), or *catch up* by running the missed ticks back to
back (``overrun="catch_up"``: right when every tick counts, such as one sample
per period).  Either way the schedule itself never shifts.  Here the first
tick takes 0.47 s of a 0.2 s interval (start times rounded to 0.1 s):

>>> async def slow_first():
...     starts.append(round(loop.time() - start, 1))
...     if len(starts) == 1:
...         await asyncio.sleep(0.47)
>>> for overrun in ("skip", "catch_up"):
...     starts = []
...     start = loop.time()
...     async with PeriodicTask(slow_first, 0.2, overrun=overrun) as periodic:
...         await asyncio.sleep(0.7)
...     print(f"{overrun}: {starts}, skipped {periodic.skipped}")
skip: [0.0, 0.6], skipped 2
catch_up: [0.0, 0.5, 0.5, 0.6], skipped 0

Surviving a failing tick
------------------------

.. index::
   pair: periodic tasks; error handling

In the naive loop, one exception (a timeout, a refused connection) ends the
loop for good, silently if nobody awaits the task.  :class:`PeriodicTask`
catches :exc:`Exception` per tick, hands it to ``on_error`` (or logs it), and
keeps the schedule:

>>> calls = []
>>> async def flaky():
...     calls.append(len(calls))
...     if len(calls) == 2:
...         raise ConnectionError("server went away")
>>> errors = []
>>> async with PeriodicTask(flaky, 0.2, on_error=errors.append) as periodic:
...     await asyncio.sleep(0.5)
>>> calls, errors, periodic.errors
([0, 1, 2], [ConnectionError('server went away')], 1)

``timeout=`` turns a hanging tick into such an error instead of stalling
every later tick.  The limit is not :func:`asyncio.wait_for`, which before
Python 3.12 can swallow a cancellation that arrives just as the tick ends
(CPython issue 86296): the task would tick on, even through the shutdown of
``asyncio.run()``, which cancels leftover tasks once and then waits for them.
:doc:`/recipes/timeouts` has the whole story.

A tick that should try again *within* its period rather than wait for the
next one can wrap its work in :func:`recipes.errors.retry`; keep the
attempts and their backoff well inside the interval, or bound them with
``timeout=``.

.. versionchanged:: 3.8
   :exc:`asyncio.CancelledError` is a subclass of :exc:`BaseException`, so
   ``except Exception`` in a tick does not swallow the cancellation that
   stops the task.  A bare ``except:`` or ``except BaseException:`` still
   would; let it propagate.

.. important::

   A tick can still turn the cancellation into an ordinary error: a
   ``finally`` block whose cleanup raises while the task is being cancelled
   replaces the :exc:`asyncio.CancelledError` with that error, and the
   ``except Exception`` that keeps the schedule alive would count it and
   tick on.  :class:`PeriodicTask` reports such an error like any other
   (``on_error`` or the log) and then ends.  ``stop()`` ends it on every
   Python version (the loop also checks the flag that ``stop()`` sets).  A
   cancellation from elsewhere, such as ``asyncio.run()`` cancelling a task
   that nobody stopped, ends it on 3.11+, where
   :meth:`asyncio.Task.cancelling` counts the cancellation requests (a tick
   that cancels its own task and absorbs that cancellation must call
   :meth:`asyncio.Task.uncancel`, as :func:`asyncio.timeout` does, or it is
   taken for one of them), and on 3.8–3.10 only with ``timeout=``, which
   runs the tick in a task of its own.  On 3.8–3.10 without it, such a
   tick (or one that swallows the cancellation) lets the schedule go on,
   and ``asyncio.run()`` then waits forever: stop the task yourself, as the
   next section says anyway.

Stopping cleanly
----------------

.. index::
   pair: periodic tasks; stopping
   single: error messages; Task was destroyed but it is pending!

A periodic loop runs forever, so its owner has to end it: cancel the task
*and await it*, so that the running tick's ``finally`` blocks (closing a
connection, releasing a lock) have run before the program moves on.
``await periodic.stop()`` does both; ``stop(grace=...)`` first gives a
running tick that many seconds to finish normally:

>>> async def upload():
...     try:
...         await asyncio.sleep(0.3)
...         print("upload finished")
...     finally:
...         print("connection closed")
>>> periodic = PeriodicTask(upload, interval=1)
>>> periodic.start()
>>> await asyncio.sleep(0.1)
>>> await periodic.stop()
connection closed
>>> periodic.start()
>>> await asyncio.sleep(0.1)
>>> await periodic.stop(grace=0.5)
upload finished
connection closed

.. important::

   A periodic task started with a bare ``asyncio.create_task(loop())`` and
   then forgotten is a leak: it keeps running until the event loop closes.
   If only the loop holds it, it can even be garbage-collected mid-way,
   which asyncio reports as ``Task was destroyed but it is pending!``.  Keep
   a reference (a :class:`PeriodicTask` object, or the task), and stop it
   (``await periodic.stop()``, or cancel and await the task) before the
   application shuts down.  :ref:`recipes/tasks:Keeping fire-and-forget
   tasks alive` explains the garbage collection, and
   :func:`recipes.cancellation.cancel_and_wait` is the cancel-and-await step
   for a task of your own.

Putting it together
-------------------

A heartbeat every 0.2 s while the main work runs, stopped with it:

>>> async def main():
...     beats = []
...     async def heartbeat():
...         beats.append("beat")
...     async with PeriodicTask(heartbeat, interval=0.2):
...         await asyncio.sleep(0.5)  # the application's real work
...     return len(beats)
>>> await main()
3

In a program, ``asyncio.run(main())`` runs the same ``main()``; leaving the
``async with`` block has stopped the heartbeat before ``main()`` returns, so
:func:`asyncio.run` finds no task left to cancel.

A library does this
-------------------

.. index::
   single: APScheduler
   pair: APScheduler; comparison
   single: aiocron
   pair: aiocron; comparison

* `APScheduler <https://apscheduler.readthedocs.io/en/3.x/>`__ (its 3.x
  series) runs coroutine functions on the loop through its
  ``AsyncIOScheduler``: ``scheduler.add_job(refresh, "interval",
  seconds=60)``, or ``"cron"`` and ``"date"`` triggers for calendar times.
  By default a run that finds the previous one still going is skipped with
  a warning (``max_instances=1``, like ``overrun="skip"``), missed runs are
  collapsed into one (``coalesce=True``), and an error is logged while the
  job keeps its schedule; listeners receive job events, and job stores
  (SQLAlchemy, Redis, MongoDB and others) keep jobs across restarts.  Times
  are wall-clock datetimes, not the loop's clock, and ``shutdown()``
  cancels running coroutine jobs without waiting for them.  Choose it for
  cron-like schedules, many jobs or persistence; :class:`PeriodicTask` for
  one loop that stops cleanly and runs on a virtual clock in tests.
* `aiocron <https://github.com/gawel/aiocron>`__ is a decorator,
  ``@aiocron.crontab("*/5 * * * *")``, that calls a function on a cron
  schedule (local time zone by default); ``await job.next()`` waits for the
  next run.  Every run starts on time whether the previous one has
  finished or not, so runs can overlap; an error goes to the loop's
  exception handler, and ``stop()`` ends the schedule but not a run in
  progress.  Needs Python 3.9+.  Choose it for a few cron expressions in a
  small program; the recipe for intervals with overrun, error and
  shutdown policies.

See also
--------

* :doc:`/recipes/tasks`: starting tasks and keeping a reference to them.
* :doc:`/recipes/cancellation`: what ``stop()`` does to a running tick, and
  cleanup that must await.
* :doc:`/recipes/timeouts`: per-tick limits and the ``wait_for`` pitfall.
* :doc:`/recipes/errors`: :func:`recipes.errors.retry`, for a tick that
  should try again before the next period.
* :doc:`/recipes/async_iteration`: :func:`recipes.async_iteration.ticker`,
  a drift-free ``async for`` loop, when the loop body is the periodic work.
* Python: :meth:`asyncio.loop.time` and :meth:`asyncio.loop.call_at` in
  :doc:`python:library/asyncio-eventloop`; :func:`asyncio.sleep` and
  :meth:`asyncio.Task.cancelling` in :doc:`python:library/asyncio-task`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import sys
from typing import Any, Awaitable, Callable, Optional, TypeVar

__all__ = ["PeriodicTask"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_OVERRUN_POLICIES = ("skip", "catch_up")
# Float noise allowed when comparing loop times: a tick that ends this close to
# the next deadline has not missed it.
_NOISE = 1e-9


def _whole_microseconds(delay: float) -> float:
    """*delay* rounded up to whole microseconds, ignoring float noise far below that.

    Waking a little late is harmless; waking early would start a tick before
    its deadline.  Whole microseconds also keep every deadline reachable for a
    clock that ticks in microseconds, such as a test's fake clock.
    """
    return math.ceil(delay * 1_000_000 - 1e-3) / 1_000_000


async def _until_done(task: asyncio.Future[Any]) -> bool:
    """Wait until *task* has ended, whatever cancels us; return True if something did."""
    cancelled = False
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            cancelled = True
    return cancelled


def _report_quietly(report: Callable[[Exception], object], error: Exception) -> None:
    """Call ``report(error)``; an error of its own is logged, not raised over a cancellation."""
    try:
        report(error)
    except Exception:
        logger.exception("on_error failed while the periodic task was being cancelled")


if sys.version_info >= (3, 11):

    async def _call(
        aw: Awaitable[T], timeout: Optional[float], report: Callable[[Exception], object]
    ) -> T:
        """Await one tick (for at most *timeout* seconds) so that a cancellation wins.

        The loop catches a tick's exceptions so that one bad tick does not end
        it.  But a tick may turn the CancelledError that stops the task into
        another exception (a cleanup that raises) or swallow it, and the loop
        would then tick on, so that whoever cancelled the task (asyncio.run()
        at exit) waits forever.  So if the task was asked to stop while *aw*
        ran, as Task.cancelling() tells, CancelledError is raised however *aw*
        ended, after passing its error, if any, to *report*.
        asyncio.timeout() takes back (uncancel()) its own request, so the
        timeout is never taken for a cancellation, nor is a timeout inside *aw*.
        """
        task = asyncio.current_task()
        before = 0 if task is None else task.cancelling()
        try:
            if timeout is None:
                result = await aw
            else:
                async with asyncio.timeout(timeout):
                    result = await aw
        except Exception as exc:
            if task is None or task.cancelling() <= before:
                raise
            _report_quietly(report, exc)
            raise asyncio.CancelledError from exc
        if task is not None and task.cancelling() > before:
            raise asyncio.CancelledError
        return result

else:

    async def _call(
        aw: Awaitable[T], timeout: Optional[float], report: Callable[[Exception], object]
    ) -> T:
        """The same on 3.8-3.10, where a task does not count cancellation requests.

        Without a timeout the tick runs in this task and its outcome is taken
        as it is: only stop() is recognised, by the flag the loop checks.  With
        one, the tick runs in a task of its own, awaited with asyncio.wait()
        (not wait_for(): CPython gh-86296): wait() never raises on that task's
        behalf, so a CancelledError here is always a cancellation of this task,
        even when the tick ends in the same loop step or makes something else
        of its own cancellation.
        """
        if timeout is None:
            return await aw
        tick = asyncio.ensure_future(aw)
        interrupted: Optional[asyncio.CancelledError] = None
        try:
            await asyncio.wait({tick}, timeout=timeout)
        except asyncio.CancelledError as exc:
            interrupted = exc
        timed_out = interrupted is None and not tick.done()
        if not tick.done():  # timed out, or this task was cancelled: stop the tick
            tick.cancel()
            if await _until_done(tick) and interrupted is None:
                interrupted = asyncio.CancelledError()  # cancelled while the tick unwound
        error = None if tick.cancelled() else tick.exception()  # retrieved, in any case
        if interrupted is not None:  # the cancellation wins, however the tick ended
            if isinstance(error, Exception):
                _report_quietly(report, error)
                raise interrupted from error
            raise interrupted
        if timed_out and tick.cancelled():
            raise asyncio.TimeoutError from None
        return tick.result()  # also what a tick that ignored the cancel returned


class PeriodicTask:
    """Call ``await func()`` every *interval* seconds on a fixed schedule, in a task of its own.

    Tick ``n`` is due at ``started_at + n * interval`` (tick 0 at once), with
    ``started_at`` taken from the event loop's clock when :meth:`start` runs,
    so the schedule never drifts:

    >>> import asyncio
    >>> from recipes.periodic import PeriodicTask
    >>> loop = asyncio.get_running_loop()
    >>> starts = []
    >>> async def sample():
    ...     starts.append(round(loop.time() - periodic.started_at, 1))
    ...     await asyncio.sleep(0.1)
    >>> periodic = PeriodicTask(sample, interval=0.3)
    >>> periodic.start()
    >>> await asyncio.sleep(1.0)
    >>> await periodic.stop()
    >>> starts, periodic.ticks
    ([0.0, 0.3, 0.6, 0.9], 4)

    Ticks never overlap.  *overrun* chooses what happens when a tick ends
    after the next deadline: ``"skip"`` (default) drops the missed ticks and
    waits for the next deadline still ahead, counting them in
    :attr:`skipped`; ``"catch_up"`` runs them immediately, one after
    another.  An :exc:`Exception` raised by a tick, or a tick that exceeds
    *timeout* seconds, is passed to ``on_error(exc)`` (logged if no
    ``on_error`` is given), counted in :attr:`errors`, and the schedule goes
    on, unless the task is being cancelled meanwhile: a tick that turns that
    cancellation into an error (or swallows it) does not keep the task alive
    (see the chapter for what counts as a cancellation on 3.8–3.10).
    *jitter* delays each tick by a random amount in ``[0, jitter)``
    seconds without moving the deadlines of later ticks, so that many
    processes started together do not hit a server in the same instant:

    >>> offsets = []
    >>> async def ping():
    ...     offsets.append(loop.time() - periodic.started_at)
    >>> async with PeriodicTask(ping, interval=0.5, jitter=0.02) as periodic:
    ...     await asyncio.sleep(1.2)
    >>> [round(offset, 1) for offset in offsets]
    [0.0, 0.5, 1.0]

    Use it as an async context manager (started on entry, stopped on exit)
    or call :meth:`start` and :meth:`stop` yourself.  A stopped task can be
    started again; its new schedule begins at the new start.  Invalid
    settings raise at once:

    >>> PeriodicTask(sample, interval=0)
    Traceback (most recent call last):
    ...
    ValueError: interval must be a finite number of seconds > 0, got 0
    """

    def __init__(
        self,
        func: Callable[[], Awaitable[object]],
        interval: float,
        *,
        overrun: str = "skip",
        on_error: Optional[Callable[[Exception], object]] = None,
        timeout: Optional[float] = None,
        jitter: float = 0.0,
        name: Optional[str] = None,
    ) -> None:
        if not callable(func):
            raise TypeError(f"func must be an async callable, got {func!r}")
        if isinstance(interval, bool) or not isinstance(interval, (int, float)):
            raise TypeError(f"interval must be a number of seconds, got {interval!r}")
        if not 0 < interval < math.inf:
            raise ValueError(f"interval must be a finite number of seconds > 0, got {interval!r}")
        if overrun not in _OVERRUN_POLICIES:
            raise ValueError(f"overrun must be 'skip' or 'catch_up', got {overrun!r}")
        if timeout is not None and not 0 < timeout < math.inf:
            raise ValueError(f"timeout must be a finite number of seconds > 0, got {timeout!r}")
        if not 0 <= jitter < interval:
            raise ValueError(f"jitter must be >= 0 and < interval ({interval!r}), got {jitter!r}")
        self._func = func
        self._interval = interval
        self._overrun = overrun
        self._on_error = on_error
        self._timeout = timeout
        self._jitter = jitter
        self.name: str = name or str(getattr(func, "__name__", None) or repr(func))
        self._task: Optional[asyncio.Task[None]] = None
        self._started_at: Optional[float] = None
        self._stopping = False
        self._in_tick = False
        self._ticks = 0
        self._skipped = 0
        self._errors = 0

    @property
    def interval(self) -> float:
        """Seconds between two deadlines."""
        return self._interval

    @property
    def started_at(self) -> Optional[float]:
        """Loop time of the latest :meth:`start` (tick 0's deadline), or None before it."""
        return self._started_at

    @property
    def running(self) -> bool:
        """True between :meth:`start` and the end of :meth:`stop`."""
        return self._task is not None and not self._task.done()

    @property
    def ticks(self) -> int:
        """Number of ticks started so far."""
        return self._ticks

    @property
    def skipped(self) -> int:
        """Number of deadlines dropped because a tick overran (``overrun="skip"``)."""
        return self._skipped

    @property
    def errors(self) -> int:
        """Number of ticks that raised or timed out."""
        return self._errors

    def start(self) -> None:
        """Start ticking now, in a new task; tick 0 is due immediately.

        Must be called with the event loop running; raises
        :exc:`RuntimeError` if the task is already running.
        """
        if self.running:
            raise RuntimeError(f"periodic task {self.name!r} is already running")
        loop = asyncio.get_running_loop()
        self._stopping = False
        self._started_at = loop.time()
        self._task = loop.create_task(
            self._run(loop, self._started_at), name=f"periodic-{self.name}"
        )

    async def stop(self, *, grace: float = 0.0) -> None:
        """Stop ticking and wait until the task has finished, cleanup included.

        Between ticks the task ends at once.  During a tick, the tick gets up
        to *grace* seconds to finish normally, and is then cancelled;
        ``stop()`` returns only after the tick's ``finally`` blocks have run.
        If ``stop()`` is itself cancelled meanwhile (a shutdown timeout, say),
        the grace period ends there, but the wait for the tick's cleanup does
        not: the tick is cancelled, and :exc:`asyncio.CancelledError` is
        raised once it has finished.  Calling it when the task is not running
        does nothing.  Called from inside a tick, it only prevents further
        ticks (a task cannot wait for itself).  If ``on_error`` itself raised
        and so ended the task, that exception is raised here.
        """
        if not 0 <= grace < math.inf:
            raise ValueError(f"grace must be a finite number of seconds >= 0, got {grace!r}")
        task = self._task
        if task is None:
            return
        self._stopping = True
        if task is asyncio.current_task():
            return
        cancelled = False
        if not task.done():
            if self._in_tick and grace > 0:
                try:
                    await asyncio.wait({task}, timeout=grace)
                except asyncio.CancelledError:
                    # wait() never raises the task's outcome: stop() itself was
                    # cancelled.  No more grace, but the cleanup is still awaited.
                    cancelled = True
            task.cancel()
            cancelled = await _until_done(task) or cancelled
        self._task = None
        if cancelled:
            if not task.cancelled():
                task.exception()  # retrieved; our own cancellation takes precedence
            raise asyncio.CancelledError
        if not task.cancelled():
            task.result()

    async def __aenter__(self) -> PeriodicTask:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return (
            f"<PeriodicTask {self.name!r} every {self._interval:g}s {state}"
            f" ticks={self._ticks} skipped={self._skipped} errors={self._errors}>"
        )

    async def _run(self, loop: asyncio.AbstractEventLoop, started_at: float) -> None:
        tick = 0
        while not self._stopping:
            wake_at = started_at + tick * self._interval
            if self._jitter:
                # Whole microseconds: see _whole_microseconds().
                wake_at += round(random.uniform(0, self._jitter), 6)
            delay = wake_at - loop.time()
            if delay > 0:
                await asyncio.sleep(_whole_microseconds(delay))
            self._in_tick = True
            try:
                self._ticks += 1
                await self._run_tick()
            finally:
                self._in_tick = False
            tick = self._next_tick(tick, loop.time(), started_at)

    async def _run_tick(self) -> None:
        try:
            await _call(self._func(), self._timeout, self._report)
        except Exception as exc:  # CancelledError is a BaseException: it propagates
            self._report(exc)

    def _report(self, exc: Exception) -> None:
        self._errors += 1
        if self._on_error is None:
            logger.error("periodic task %r: tick failed", self.name, exc_info=exc)
        else:
            self._on_error(exc)

    def _next_tick(self, tick: int, now: float, started_at: float) -> int:
        following = tick + 1
        if self._overrun == "skip":
            # The first tick whose deadline is not already behind us.
            ahead = math.ceil((now - started_at - _NOISE) / self._interval)
            if ahead > following:
                self._skipped += ahead - following
                following = ahead
        return following
