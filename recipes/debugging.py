"""Most asyncio bugs are quiet. A coroutine called without ``await`` never runs; a blocking call
inside a coroutine freezes every other task without an error; a task that fails while nobody
awaits it loses its exception until the garbage collector mentions it; a program that hangs
shows nothing at all. This chapter turns each of those into something you can see: asyncio's
debug mode and how to switch it on, the slow-callback log, the origin of a never-awaited
coroutine, the stack of a waiting task, a readable dump of every task in the program
(:func:`dump_tasks`), an exception handler that logs what the loop could not deliver
(:func:`make_exception_handler`), and logging set up so that all of it reaches you.

Turning on debug mode
---------------------

Debug mode makes the event loop check its own use: it logs callbacks and task steps that hold
the thread too long, records where every coroutine, task and future was created, raises when a
loop method is called from the wrong thread, and rejects coroutines passed where a plain
callback is expected. The checks cost time, so it is off by default. Switch it on for the one
run you are investigating:

>>> import asyncio
>>> async def debug_enabled():
...     return asyncio.get_running_loop().get_debug()
>>> asyncio.run(debug_enabled(), debug=True)
True

Without touching the code, the environment variable ``PYTHONASYNCIODEBUG=1`` or Python's
development mode ``python -X dev`` (which also shows ``ResourceWarning`` for unclosed files,
sockets and loops) does the same for every loop the program creates:

>>> import os, subprocess, sys
>>> script = "\\n".join([
...     "import asyncio",
...     "async def debug_enabled(): return asyncio.get_running_loop().get_debug()",
...     "print(asyncio.run(debug_enabled()))",
... ])
>>> dev_mode = subprocess.run(
...     [sys.executable, "-X", "dev", "-c", script], capture_output=True, text=True, timeout=60
... )
>>> env = dict(os.environ, PYTHONASYNCIODEBUG="1")
>>> variable = subprocess.run(
...     [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
... )
>>> print(dev_mode.stdout.strip(), variable.stdout.strip())
True True

A loop that is already running can be switched with ``loop.set_debug(True)``. From then on it
catches, for instance, a loop method called from another thread (only
``call_soon_threadsafe`` is safe there), and a coroutine function scheduled as a callback:

>>> loop = asyncio.get_running_loop()
>>> loop.set_debug(True)
>>> await loop.run_in_executor(None, loop.call_soon, print, "from a worker thread")
Traceback (most recent call last):
...
RuntimeError: Non-thread-safe operation invoked on an event loop other than the current one
>>> async def refresh_cache():
...     await asyncio.sleep(0)
>>> loop.call_soon(refresh_cache)
Traceback (most recent call last):
...
TypeError: coroutines cannot be used with call_soon()
>>> loop.set_debug(False)

Without debug mode both mistakes pass silently. The first schedules a callback that a sleeping
loop may not notice until something else wakes it, racing with the loop's own bookkeeping; the
second only produces a ``coroutine ... was never awaited`` warning, later and elsewhere.

.. important::

   Do not switch debug mode on with ``asyncio.get_event_loop().set_debug(True)`` at module
   level. :func:`asyncio.run` never uses that loop (it always creates a new one), so the
   setting has no effect; on 3.12 and 3.13 the call itself warns ``DeprecationWarning: There
   is no current event loop``, on 3.14 it raises ``RuntimeError``, and the loop it creates is
   never closed (``ResourceWarning: unclosed event loop``). Use ``asyncio.run(main(),
   debug=True)``, ``PYTHONASYNCIODEBUG=1`` or ``-X dev``.

Finding callbacks that block the loop
-------------------------------------

In debug mode the loop times every callback and every step of a task (the code between two
``await`` points). One that takes longer than ``loop.slow_callback_duration`` (0.1 s by
default) is logged at WARNING level by the ``asyncio`` logger as ``Executing <Task ...> took
0.123 seconds``. The task's name and coroutine identify the culprit. Here the blocking call is
a ``time.sleep`` that should have been ``await asyncio.sleep``; a handler on the ``asyncio``
logger captures the message:

>>> import io, logging, time
>>> async def resize_images():
...     time.sleep(0.2)  # the bug: a blocking call inside a coroutine
>>> async def main():
...     asyncio.get_running_loop().slow_callback_duration = 0.05
...     await asyncio.create_task(resize_images(), name="resize")
>>> captured = io.StringIO()
>>> handler = logging.StreamHandler(captured)
>>> logging.getLogger("asyncio").addHandler(handler)
>>> try:
...     asyncio.run(main(), debug=True)
... finally:
...     logging.getLogger("asyncio").removeHandler(handler)
>>> print(captured.getvalue().strip())
Executing <Task finished name='resize' coro=<resize_images() done, ...> took ... seconds

The fix is to make the slow step asynchronous, or to move it to a thread
(``await asyncio.to_thread(...)`` on 3.9+, ``loop.run_in_executor(None, ...)`` before).

.. important::

   The duration is measured with ``loop.time()``. A loop on a virtual clock (``looptime``, or
   a test tool that fakes time) does not advance while a callback blocks, so it never reports
   a slow callback; look for them on a real-clock loop, as the :func:`asyncio.run` above is.

Finding a coroutine that was never awaited
------------------------------------------

Calling a coroutine function only creates a coroutine object; without ``await`` its body never
runs. When the object is garbage-collected, Python warns ``RuntimeWarning: coroutine 'save'
was never awaited``. The warning's own location is where the object happened to be freed. In
debug mode the message also says where the coroutine was created:

>>> import warnings
>>> async def save(record):
...     await asyncio.sleep(0)
>>> async def handle_request():
...     save({"id": 1})  # the bug: no await
...     return "saved?"
>>> with warnings.catch_warnings(record=True) as caught:
...     warnings.simplefilter("always")
...     print(asyncio.run(handle_request(), debug=True))
saved?
>>> print(caught[0].category.__name__, caught[0].message)
RuntimeWarning coroutine 'save' was never awaited
Coroutine created at (most recent call last)
...
  File "<doctest ...>", line 2, in handle_request
    save({"id": 1})  # the bug: no await

Run the test suite with ``-W error::RuntimeWarning`` (or pytest's ``filterwarnings = error``)
so that this warning fails the test that caused it; under ``-X dev`` add ``-X tracemalloc`` to
see where other leaked objects were allocated.

Seeing where a task is waiting
------------------------------

A program that hangs is usually a task waiting for something that will never happen.
``Task.print_stack()`` prints where one task's coroutine is suspended (pass ``file=`` to print
somewhere other than standard error), and ``Task.get_stack()`` returns those frames:

>>> async def download(url):
...     await asyncio.sleep(3600)  # stands for a response that never comes
>>> stuck = asyncio.create_task(download("https://example.com"), name="download")
>>> await asyncio.sleep(0)
>>> stuck.print_stack(file=sys.stdout)
Stack for <Task pending name='download' ...> (most recent call last):
  File "<doctest ...>", line 2, in download
    await asyncio.sleep(3600)  # stands for a response that never comes
>>> [frame.f_code.co_name for frame in stuck.get_stack()]
['download']

Both show only the task's own coroutine frame, not the coroutines it awaits, and one task at
a time. :func:`dump_tasks` describes every task of the loop, one line each, with the whole
chain of awaits down to the future it is blocked on:

>>> queue = asyncio.Queue()
>>> async def consume():
...     while True:
...         await queue.get()
...         queue.task_done()
>>> consumer = asyncio.create_task(consume(), name="consumer")
>>> await asyncio.sleep(0)
>>> print(dump_tasks())
'consumer' waiting: consume() at <doctest ...>:3 -> Queue.get() at queues.py:... -> Future
'download' waiting: download() at <doctest ...>:2 -> sleep() at tasks.py:... -> Future
'Task-...' running: ...

The last line is the task that called :func:`dump_tasks` (here, the REPL's). Log the dump from
a debug endpoint or a signal handler of a long-running service, or from a watchdog task that
notices a deadline has passed.

>>> for task in (stuck, consumer):
...     _ = task.cancel()
>>> _ = await asyncio.gather(stuck, consumer, return_exceptions=True)

.. versionadded:: 3.14
   ``python -m asyncio ps PID`` and ``python -m asyncio pstree PID`` list the tasks of another
   running Python process, and ``asyncio.print_call_graph()`` prints the await chain of a
   task from inside the program. On 3.8–3.13, :func:`dump_tasks` covers the second need.

Logging exceptions that nobody retrieved
----------------------------------------

When a task fails and nobody awaits it, its exception has nowhere to go. The loop hands it to
its exception handler when the task is garbage-collected, with the message ``Task exception
was never retrieved``; it does the same for a callback that raises (``Exception in callback
...``) and a pending task that is destroyed (``Task was destroyed but it is pending!``). The
default handler logs these to the ``asyncio`` logger. :func:`make_exception_handler` builds a
handler for ``loop.set_exception_handler`` that logs them to your application's logger
instead, one summary line naming the task plus the traceback:

>>> log = logging.getLogger("cookbook.debugging")
>>> to_stdout = logging.StreamHandler(sys.stdout)
>>> to_stdout.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
>>> log.addHandler(to_stdout)
>>> loop.set_exception_handler(make_exception_handler(log))
>>> async def fetch_user(user_id):
...     raise LookupError(f"user {user_id} not found")
>>> lost = asyncio.create_task(fetch_user(42), name="fetch-user")
>>> await asyncio.sleep(0)
>>> del lost  # the last reference: the exception is now lost for good
ERROR Task exception was never retrieved; task 'fetch-user' running fetch_user()
Traceback (most recent call last):
...
LookupError: user 42 not found
>>> log.removeHandler(to_stdout)

The real fix is to await the task, or add a done callback that reads its result; the handler
is the safety net that tells you which one you forgot.

Setting up logging for asyncio
------------------------------

asyncio reports through the standard :mod:`logging` module, on the logger named ``asyncio``:
slow callbacks at WARNING, unhandled exceptions at ERROR, and some internal details at DEBUG.
Nothing is shown unless logging is configured, so configure it early in the entry point,
before :func:`asyncio.run`::

    import logging

    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s [%(taskName)s] %(message)s",
    )
    logging.getLogger("asyncio").setLevel(logging.WARNING)  # DEBUG is very chatty
    asyncio.run(main(), debug=True)

.. versionadded:: 3.12
   Log records have a ``taskName`` attribute with the name of the current task, so the format
   above tags every line with the task that logged it; on older versions drop
   ``[%(taskName)s]`` or add the name with a :class:`logging.Filter` that reads
   :func:`asyncio.current_task`.

A short session
---------------

A debug run that logs lost exceptions through :func:`make_exception_handler` and prints what
every task is doing:

>>> async def session():
...     loop = asyncio.get_running_loop()
...     loop.set_exception_handler(make_exception_handler(log))
...     waiter = asyncio.create_task(asyncio.Event().wait(), name="waiter")
...     await asyncio.sleep(0)
...     print(dump_tasks())
...     waiter.cancel()
...     await asyncio.gather(waiter, return_exceptions=True)
>>> asyncio.run(session(), debug=True)
'Task-...' running: session() at <doctest ...>:6
'waiter' waiting: Event.wait() at locks.py:... -> Future
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import sys
import types
from typing import Any, Callable, Dict, List, Optional

__all__ = ["dump_tasks", "make_exception_handler"]

ExceptionHandler = Callable[[asyncio.AbstractEventLoop, Dict[str, Any]], None]

_ASYNCIO_DIR = os.path.dirname(os.path.abspath(asyncio.__file__))


def _frame_of(awaitable: object) -> Optional[types.FrameType]:
    for attribute in ("cr_frame", "gi_frame", "ag_frame"):
        frame = getattr(awaitable, attribute, None)
        if isinstance(frame, types.FrameType):
            return frame
    return None


def _awaited_by(awaitable: object) -> object:
    for attribute in ("cr_await", "gi_yieldfrom", "ag_await"):
        inner = getattr(awaitable, attribute, None)
        if inner is not None:
            return inner
    return None


def _where(frame: types.FrameType) -> str:
    return f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"


def _await_chain(task: asyncio.Task[Any]) -> List[str]:
    """Describe the task's coroutine and everything it awaits, outermost first."""
    chain: List[str] = []
    current: object = task.get_coro()
    while current is not None:
        frame = _frame_of(current)
        if frame is None:  # not a coroutine: an iterator over the future being awaited
            break
        name = getattr(current, "__qualname__", type(current).__name__)
        chain.append(f"{name}() at {_where(frame)}")
        current = _awaited_by(current)
    # What the task is blocked on. ``_fut_waiter`` is private but present in both the C and
    # the pure-Python Task of every version; the awaited iterator does not expose it.
    waiter = getattr(task, "_fut_waiter", None)
    if isinstance(waiter, asyncio.Task):
        chain.append(f"Task {waiter.get_name()!r}")
    elif waiter is not None:
        chain.append(type(waiter).__name__)
    return chain


def _state(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    if inspect.iscoroutine(coro):
        state = inspect.getcoroutinestate(coro)
        if state == inspect.CORO_CREATED:
            return "not started"
        if state == inspect.CORO_RUNNING:
            return "running"
    return "waiting"


def dump_tasks(loop: Optional[asyncio.AbstractEventLoop] = None) -> str:
    """Describe every unfinished task of the loop, one line each, sorted by task name.

    Each line gives the task's name, its state (``waiting``, ``running`` or ``not started``)
    and the chain of awaits from its coroutine down to what it is blocked on, each coroutine
    with the file and line where it is suspended:

    >>> async def sleeper():
    ...     await asyncio.sleep(3600)
    >>> napping = asyncio.create_task(sleeper(), name="sleeper")
    >>> await asyncio.sleep(0)
    >>> print(dump_tasks())
    'sleeper' waiting: sleeper() at <doctest ...>:2 -> sleep() at tasks.py:... -> Future
    'Task-...' running: ...

    A task waiting for another task names it instead of repeating its chain, and a task that
    has not had its first turn yet is marked ``not started``:

    >>> async def supervise(child):
    ...     await child
    >>> def start_supervisor():
    ...     task = asyncio.create_task(supervise(napping), name="supervisor")
    ...     print(dump_tasks())  # before the new task's first turn
    ...     return task
    >>> supervisor = start_supervisor()
    'sleeper' waiting: sleeper() at <doctest ...>:2 -> sleep() at tasks.py:... -> Future
    'supervisor' not started: supervise() at <doctest ...>:1
    'Task-...' running: ...
    >>> await asyncio.sleep(0)
    >>> print(dump_tasks().splitlines()[1])
    'supervisor' waiting: supervise() at <doctest ...>:2 -> Task 'sleeper'

    Without ``loop`` it describes the running loop, so call it from a coroutine or a callback;
    outside a loop pass the loop explicitly. From another thread, schedule it on the loop's
    thread (``loop.call_soon_threadsafe``) rather than calling it directly, since tasks change
    while it reads them. A loop with no unfinished tasks gives an empty string.
    """
    if loop is None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "dump_tasks() needs a running event loop; pass loop= to inspect another one"
            ) from None
    elif not isinstance(loop, asyncio.AbstractEventLoop):
        raise TypeError(f"loop must be an asyncio event loop, got {loop!r}")
    lines = []
    for task in asyncio.all_tasks(loop):
        if task.done():
            continue
        state = _state(task)
        if sys.version_info >= (3, 11) and task.cancelling():
            state += ", cancelling"
        chain = " -> ".join(_await_chain(task))
        name = task.get_name()
        lines.append((name.casefold(), f"{name!r} {state}: {chain}"))
    return "\n".join(line for _, line in sorted(lines))


def _creation_site(context: Dict[str, Any]) -> Optional[str]:
    """The last frame outside asyncio in a debug-mode creation traceback, as ``file:line``."""
    frames = context.get("source_traceback") or context.get("handle_traceback") or []
    for frame in reversed(frames):
        filename = getattr(frame, "filename", "")
        if filename and not os.path.abspath(filename).startswith(_ASYNCIO_DIR + os.sep):
            return f"{os.path.basename(filename)}:{frame.lineno}"
    return None


_DESCRIBED_KEYS = frozenset(
    {"message", "exception", "task", "future", "handle", "source_traceback", "handle_traceback"}
)


def _describe_context(context: Dict[str, Any]) -> str:
    parts = [str(context.get("message") or "Unhandled exception in event loop")]
    future = context.get("task", context.get("future"))
    if isinstance(future, asyncio.Task):
        coro = future.get_coro()
        coro_name = getattr(coro, "__qualname__", type(coro).__name__)
        parts.append(f"task {future.get_name()!r} running {coro_name}()")
    elif future is not None:
        parts.append(f"future {future!r}")
    site = _creation_site(context)
    if site is not None:
        parts.append(f"created at {site}")
    for key in sorted(set(context) - _DESCRIBED_KEYS):
        parts.append(f"{key}={context[key]!r}")
    return "; ".join(parts)


def make_exception_handler(logger: Optional[logging.Logger] = None) -> ExceptionHandler:
    """Build a handler for ``loop.set_exception_handler`` that logs errors to ``logger``.

    Each error is logged at ERROR level as one line (the loop's message, the task's name and
    coroutine, and in debug mode where the task or callback was created) with the traceback
    attached. ``logger`` defaults to the ``asyncio`` logger.

    >>> import logging, sys
    >>> log = logging.getLogger("cookbook.handler")
    >>> to_stdout = logging.StreamHandler(sys.stdout)
    >>> log.addHandler(to_stdout)
    >>> loop = asyncio.get_running_loop()
    >>> loop.set_exception_handler(make_exception_handler(log))
    >>> def broken_callback():
    ...     raise ZeroDivisionError("division by zero")
    >>> _ = loop.call_soon(broken_callback)
    Exception in callback broken_callback()...
    Traceback (most recent call last):
    ...
    ZeroDivisionError: division by zero

    In debug mode the loop records where each task was created, and the line says so:

    >>> loop.set_debug(True)
    >>> async def crash():
    ...     raise RuntimeError("crashed")
    >>> doomed = asyncio.create_task(crash(), name="doomed")
    >>> await asyncio.sleep(0)
    >>> del doomed
    Task exception was never retrieved; task 'doomed' running crash(); created at <doctest ...>:1
    Traceback (most recent call last):
    ...
    RuntimeError: crashed
    >>> loop.set_debug(False)
    >>> log.removeHandler(to_stdout)

    The handler never raises; a context without an exception (such as ``Task was destroyed
    but it is pending!``) is logged without a traceback.
    """
    if logger is not None and not isinstance(logger, logging.Logger):
        raise TypeError(f"logger must be a logging.Logger, got {logger!r}")
    log = logger if logger is not None else logging.getLogger("asyncio")

    def handle(loop: asyncio.AbstractEventLoop, context: Dict[str, Any]) -> None:
        try:
            summary = _describe_context(context)
        except Exception as exc:  # a broken repr must not hide the original error
            summary = f"{context.get('message')!s} (context not describable: {exc!r})"
        exception = context.get("exception")
        if isinstance(exception, BaseException):
            log.error("%s", summary, exc_info=exception)
        else:
            log.error("%s", summary)

    return handle
