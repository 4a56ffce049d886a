"""A child process is the one resource asyncio cannot clean up for you: a
task that is cancelled or times out leaves its child running, a pipe nobody
reads makes the child hang, and a child nobody waits for stays in the process
table as a zombie.  This chapter runs other programs from asyncio code and
always gets them back: capture their output, stream it line by line, feed
them input, stop them on a deadline (terminate, then kill, then reap, even
when the awaiting task is cancelled), run many of them under a concurrency
limit, and keep a long-running child alive with restarts and backoff.  Every
example starts its children with :data:`sys.executable`, the interpreter you
are running, so it works wherever Python does.

Running a command and capturing its output
------------------------------------------

.. index::
   single: run_process
   pair: subprocess; capture output
   pair: create_subprocess_exec; communicate
   single: error messages; returned non-zero exit status
   single: error messages; No such file or directory

You want what :func:`subprocess.run` gives you (exit status, standard output
and standard error) without blocking the event loop for as long as the
child runs.  :func:`run_process` starts the program with
:func:`asyncio.create_subprocess_exec`, reads both pipes at the same time
while it waits, and returns a :class:`subprocess.CompletedProcess` with the
output as bytes:

>>> import asyncio, sys
>>> from recipes.subprocesses import run_process
>>> done = await run_process([sys.executable, "-c", "print('hello')"])
>>> done.returncode, done.stdout, done.stderr
(0, b'hello\\n', b'')

A non-zero exit status is a result, not an error, unless you pass
``check=True``; then you get :exc:`subprocess.CalledProcessError`, which
carries the output too:

>>> failing = [sys.executable, "-c", "import sys; sys.exit('no config')"]
>>> (await run_process(failing)).returncode
1
>>> try:
...     await run_process(failing, check=True)
... except Exception as exc:
...     print(type(exc).__name__, exc.returncode, exc.stderr)
CalledProcessError 1 b'no config\\n'

A program that does not exist fails at once, with the usual
:exc:`FileNotFoundError`; and a command line given as one string is refused,
because :func:`run_process` never goes through a shell (so there is no
quoting to get wrong, and nothing to inject):

>>> try:
...     await run_process(["no-such-program-here"])
... except FileNotFoundError as exc:
...     print(exc.strerror)
No such file or directory
>>> try:
...     await run_process("ls -l")
... except TypeError as exc:
...     print(exc)
args must be a list of strings such as ... not a string; run a shell ...

.. important::

   Read every pipe you open.  :meth:`asyncio.subprocess.Process.wait` only
   waits: with ``stdout=PIPE`` and nobody reading, a child that writes more
   than the pipe holds (64 KiB on Linux, plus what asyncio buffers) blocks
   in ``write()`` for ever, and ``wait()`` with it.  :func:`run_process`,
   :func:`stream_output` and :meth:`~asyncio.subprocess.Process.communicate`
   read while they wait; a bare ``wait()`` is safe only when the pipes are
   not pipes (``DEVNULL``, a file, or inherited).

The deadlock needs nothing more than a chatty child (a timeout shows it here;
without one the program would hang):

>>> from asyncio.subprocess import PIPE
>>> chatty = [sys.executable, "-c", "print('x' * 1_000_000)"]
>>> process = await asyncio.create_subprocess_exec(*chatty, stdout=PIPE)
>>> try:
...     await asyncio.wait_for(process.wait(), 0.5)
... except asyncio.TimeoutError:
...     print("wait() is stuck: the child is blocked writing")
wait() is stuck: the child is blocked writing
>>> len((await process.communicate())[0])
1000001

Feeding a child's standard input
--------------------------------

.. index::
   pair: subprocess; standard input
   single: BrokenPipeError; child exited before reading
   single: ConnectionResetError; child exited before reading
   single: error messages; Future exception was never retrieved

Pass ``input=`` and :func:`run_process` writes it to the child's standard
input (with backpressure: it waits for the pipe to drain), then closes the
pipe so the child sees end-of-file:

>>> upper = "import sys; print(sys.stdin.read().upper(), end='')"
>>> (await run_process([sys.executable, "-c", upper], input=b"quiet")).stdout
b'QUIET'

A child may exit without reading everything, or without reading at all.
Writing to a pipe whose reader has gone raises :exc:`BrokenPipeError` or
:exc:`ConnectionResetError`; :func:`run_process` treats that as what it is,
a child that did not want the rest, and reports the exit status as usual:

>>> ignores = [sys.executable, "-c", "raise SystemExit(4)"]
>>> (await run_process(ignores, input=b"x" * 10_000_000)).returncode
4

If you write to ``process.stdin`` yourself, close it and await
:meth:`~asyncio.StreamWriter.wait_closed` (catching those two errors) when
you are done: on Python 3.8 to 3.10 a pipe that broke and was never awaited
is reported later, when the process object is garbage-collected, as
``Future exception was never retrieved`` with a :exc:`BrokenPipeError`.
Leaving an :func:`open_process` block (or calling :func:`stop_process`) does
it for you.

For a conversation (write a request, read the answer, write the next one),
open the process with :func:`open_process` and use its streams directly.
Write, then :meth:`~asyncio.StreamWriter.drain`, then read:

>>> from recipes.subprocesses import open_process
>>> echo = ("import sys\\nfor line in sys.stdin:\\n"
...         "    print(line.strip()[::-1], flush=True)")
>>> async with open_process(
...     [sys.executable, "-c", echo], stdin=PIPE, stdout=PIPE
... ) as child:
...     for word in (b"stressed", b"drawer"):
...         child.stdin.write(word + b"\\n")
...         await child.stdin.drain()
...         print((await child.stdout.readline()).decode().strip())
desserts
reward

Streaming output line by line
-----------------------------

.. index::
   single: stream_output
   pair: subprocess; streaming output
   pair: subprocess; deadlock on a full pipe
   single: error messages; Separator is not found, and chunk exceed the limit
   single: error messages; Separator is found, but chunk is longer than limit
   single: LimitOverrunError; long lines from a child

A build, a test run or a long download prints progress you want to see (or
log) while it happens, not in one piece at the end.  :func:`stream_output`
reads standard output and standard error *concurrently*, one task each, and
hands every line to your callback as it arrives, with the name of the
stream it came from; it returns the exit status.  Reading both at once is
what avoids the deadlock: a child that fills its stderr pipe while you wait
for a line on stdout blocks, and so do you.

>>> from recipes.subprocesses import stream_output
>>> steps = "for n in range(3): print('step', n, flush=True)"
>>> await stream_output([sys.executable, "-c", steps], print)
stdout step 0
stdout step 1
stdout step 2
0

The callback may also be a coroutine function (its result is awaited before
the next line of that stream is read, so a slow callback slows the child
down instead of filling memory).  Lines of stdout and of stderr arrive in
the order of each stream, but not in a fixed order *between* the two
streams; sort them by stream when that matters:

>>> both = ("import sys\\nfor n in range(2):\\n"
...         "    print('out', n, flush=True)\\n"
...         "    print('err', n, file=sys.stderr, flush=True)")
>>> lines = {"stdout": [], "stderr": []}
>>> async def collect(stream, line):
...     lines[stream].append(line)
>>> await stream_output([sys.executable, "-c", both], collect)
0
>>> lines
{'stdout': ['out 0', 'out 1'], 'stderr': ['err 0', 'err 1']}

.. important::

   "Line by line as they come" needs the child's cooperation.  A program
   whose standard output is a pipe usually buffers it in blocks of several
   kilobytes, so its lines arrive in bursts, or all at exit.  For a Python
   child pass ``-u`` or set ``PYTHONUNBUFFERED=1`` in its environment (or
   print with ``flush=True``); many other programs have a ``--line-buffered``
   option, and ``stdbuf -oL`` helps C programs that use stdio.

A line longer than ``limit`` bytes (64 KiB unless you say otherwise) would
make :meth:`asyncio.StreamReader.readline` fail with ``ValueError:
Separator is not found, and chunk exceed the limit``; :func:`stream_output`
instead passes on its first ``limit`` bytes and skips the rest of that line,
so one runaway line costs neither the stream nor unbounded memory:

>>> long_line = "print('y' * 100_000); print('short')"
>>> sizes = []
>>> async def measure(stream, line):
...     sizes.append(len(line))
>>> await stream_output([sys.executable, "-c", long_line], measure,
...                     limit=1000)
0
>>> sizes
[1000, 5]

Timing out a child process
--------------------------

.. index::
   single: stop_process
   single: open_process
   single: zombie process
   pair: subprocess; timeout
   pair: subprocess; cancellation
   pair: SIGTERM; SIGKILL
   single: error messages; timed out after
   single: warnings; unclosed transport
   single: warnings; subprocess is still running
   single: error messages; Event loop is closed

A child that hangs must not hang you.  Give :func:`run_process` a ``timeout`` and,
when it expires, it stops the child in three steps: ``terminate()``
(SIGTERM, which a well-behaved program handles by cleaning up and exiting),
then, if the child is still there after ``grace`` seconds, ``kill()``
(SIGKILL, which cannot be caught), then it *waits* for the exit, which
reaps the child so no zombie is left, and closes the pipes.  Only then does
it raise :exc:`subprocess.TimeoutExpired`, with the output the child wrote
before the deadline:

>>> import subprocess
>>> slow = ("import time; print('working', flush=True);"
...         " time.sleep(30)")
>>> try:
...     await run_process([sys.executable, "-c", slow], timeout=0.5, grace=0.2)
... except subprocess.TimeoutExpired as exc:
...     print(exc)
...     print("output so far:", exc.output)
Command '[..., '-c', ...]' timed out after 0.5 seconds
output so far: b...

(The output may be empty if the deadline comes before the child's first
line.)  The same cleanup runs when the awaiting task is *cancelled*: the
cancellation waits for the child to be stopped and reaped, then goes on:

>>> command = [sys.executable, "-c", slow]
>>> job = asyncio.create_task(run_process(command, grace=0.2))
>>> await asyncio.sleep(0.3)
>>> job.cancel()
True
>>> done, _ = await asyncio.wait([job])
>>> job.cancelled()
True

The stop gives the child ``grace`` seconds to exit after SIGTERM.  If the
task is cancelled *again* during that time (the impatient Ctrl+C), the rest
of the grace period is skipped: the child is killed at once, and still
reaped before the cancellation goes on.

For a process you drive yourself, :func:`open_process` is an
``async with`` block that does the same on the way out, however the block
is left: normally, by an exception, or by cancellation.  A child that
ignores SIGTERM is killed once ``grace`` has passed (``-9`` is
``-signal.SIGKILL``):

>>> stubborn = ("import signal, sys, time\\n"
...             "signal.signal(signal.SIGTERM, signal.SIG_IGN)\\n"
...             "print('ready', flush=True)\\n"
...             "time.sleep(30)")
>>> async with open_process(
...     [sys.executable, "-c", stubborn], stdout=PIPE, grace=0.2
... ) as child:
...     print((await child.stdout.readline()).decode().strip())
ready
>>> child.returncode
-9

To stop a process that you started some other way, call
:func:`stop_process` on it: the same three steps, and it returns the exit
status.

.. important::

   Cancelling a task does not stop the processes it started.  Code such as
   ``process = await asyncio.create_subprocess_exec(...)`` followed by
   ``await asyncio.wait_for(process.communicate(), 10)`` leaves the child
   running after the timeout or a cancellation, and its pipes open.  What
   you see depends on when the garbage collector finds the process object:
   ``ResourceWarning: unclosed transport <_UnixSubprocessTransport pid=...
   running ...>``, ``ResourceWarning: subprocess ... is still running``, and
   if the event loop is already closed (after ``asyncio.run()`` returned),
   ``Exception ignored in: <function BaseSubprocessTransport.__del__ ...>``
   with ``RuntimeError: Event loop is closed``; or nothing at all, and a
   child that runs on after your program.  Put every child you start in a
   ``try``/``finally`` (or :func:`open_process`) that stops *and awaits* it,
   and make that cleanup survive a second cancellation, as
   :func:`stop_process` does.

With Python 3.11 or newer you can put any part of a conversation under
:func:`asyncio.timeout` inside the block; leaving the block on the
:exc:`TimeoutError` stops the child:

>>> silent = [sys.executable, "-c", "import time; time.sleep(30)"]
>>> try:  # doctest: +PY311
...     async with open_process(silent, stdout=PIPE, grace=0.2) as child:
...         async with asyncio.timeout(0.5):
...             await child.stdout.readline()
... except TimeoutError:
...     print("no answer; stopped:", child.returncode is not None)
no answer; stopped: True

Before 3.11, :func:`asyncio.wait_for` does the same for one awaitable:
``await asyncio.wait_for(child.stdout.readline(), 0.5)`` raises
:exc:`asyncio.TimeoutError`.

Stopping the child does not stop *its* children.  A shell script that
started a server leaves the server running, and if that grandchild inherited
the pipes, the output does not reach end-of-file until the grandchild exits
too: :func:`run_process` without a ``timeout`` waits that long, as
:func:`subprocess.run` would.  With a ``timeout`` (or when you leave an
:func:`open_process` block), :func:`stop_process` closes the pipes on your
side once the child is gone, so nothing stays stuck reading them.  To stop
the whole tree on POSIX, start the child with ``start_new_session=True``
(every keyword argument of :func:`open_process` is passed on to
:func:`asyncio.create_subprocess_exec`) and signal its process group with
``os.killpg(process.pid, signal.SIGTERM)`` before calling
:func:`stop_process`.

Running many commands under a limit
-----------------------------------

.. index::
   single: run_many
   pair: subprocess; concurrency limit
   single: error messages; Too many open files

Converting a thousand images means a thousand processes, and starting them
all at once exhausts memory, CPU and file descriptors (three pipes per
child: ``OSError: [Errno 24] Too many open files``).  :func:`run_many` runs
them with at most ``limit`` alive at any moment (a fixed pool of ``limit``
worker tasks that each take the next command when their child exits) and
returns the results in the order of the commands:

>>> from recipes.subprocesses import run_many
>>> commands = [[sys.executable, "-c", f"raise SystemExit({n})"]
...             for n in range(5)]
>>> results = await run_many(commands, limit=2)
>>> [result.returncode for result in results]
[0, 1, 2, 3, 4]

The exit statuses are collected, not judged; with ``check=True``, or when a
command cannot be started or times out, the first such error stops the
batch: the children still running are stopped and reaped, the commands not
yet started never start, and the error propagates:

>>> try:
...     await run_many([*commands, ["no-such-program-here"]], limit=2)
... except FileNotFoundError:
...     print("the batch stopped")
the batch stopped

For CPU-bound children the useful limit is about the number of cores,
:func:`os.cpu_count`; for children that mostly wait (network tools,
``ssh``), higher.  The benchmark (``benchmarks/bench_subprocesses.py``)
runs 200 short Python children one at a time and eight at a time.

Supervising a long-running child
--------------------------------

.. index::
   single: supervise
   single: backoff; restarting a child
   pair: subprocess; restart

A worker or a local server should run as long as your program does: when
it exits or crashes, start it again, but not in a tight loop if it fails
at once every time.  :func:`supervise` restarts the child after a delay
that doubles after each quick failure (``backoff``, ``2 * backoff``, ...,
at most ``max_backoff``) and goes back to ``backoff`` after a run that
lasted ``healthy_after`` seconds.  ``on_exit`` hears about every exit and
the delay before the restart, and after ``max_restarts`` quick failures in
a row it gives up and returns the last exit status:

>>> from recipes.subprocesses import supervise
>>> def report(returncode, delay):
...     print("exit", returncode, "- restart in", delay)
>>> crashing = [sys.executable, "-c", "raise SystemExit(3)"]
>>> await supervise(crashing, max_restarts=2, backoff=0.05,
...                 on_exit=report)
exit 3 - restart in 0.05
exit 3 - restart in 0.1
exit 3 - restart in None
3

Without ``max_restarts`` it supervises until cancelled, and cancelling it
stops the child the same way as :func:`open_process` (the delay before a
restart is cancelled too):

>>> service = [sys.executable, "-c", "import time; time.sleep(30)"]
>>> supervisor = asyncio.create_task(supervise(service, grace=0.2))
>>> await asyncio.sleep(0.3)
>>> supervisor.cancel()
True
>>> done, _ = await asyncio.wait([supervisor])
>>> supervisor.cancelled()
True

When many supervisors restart children that fail for the same reason (a
database that is down), give each a slightly different ``backoff``, for
example ``backoff=random.uniform(0.8, 1.2)``, so that their restarts drift
apart instead of coming in waves.  A child that cannot be started at all
(:exc:`FileNotFoundError`, :exc:`PermissionError`) is a configuration error,
not a crash: :func:`supervise` raises it at once.

Child watchers and Python versions
----------------------------------

.. index::
   single: child watcher
   single: ThreadedChildWatcher
   single: PidfdChildWatcher
   single: warnings; 'get_child_watcher' is deprecated as of Python 3.12
   single: warnings; 'set_child_watcher' is deprecated as of Python 3.12
   single: error messages; module 'asyncio' has no attribute 'get_child_watcher'
   single: error messages; Unknown child process pid, will report returncode 255
   single: error messages; exit status already read: will report returncode 255

On Unix the event loop learns that a child has exited from a *child
watcher*.  Old tutorials install one by hand (``asyncio.SafeChildWatcher``,
``asyncio.set_child_watcher(...)``, ``watcher.attach_loop(loop)``) because
before Python 3.8 a subprocess started from a thread other than the main
one, or from a loop that was not the main loop, never saw its child exit.
None of this is needed any more, and none of the recipes here touch a
watcher:

.. versionchanged:: 3.8
   The default watcher is :class:`!ThreadedChildWatcher`: one short-lived
   thread per child waits for that child only, so subprocesses work from
   any thread and any loop.

.. versionchanged:: 3.12
   Where Linux offers ``pidfd_open()`` (kernel 5.3 and newer), asyncio
   watches each child through a process file descriptor registered with
   the loop, with no extra thread.  :func:`!asyncio.get_child_watcher`,
   :func:`!asyncio.set_child_watcher` and the watcher classes are
   deprecated: ``DeprecationWarning: 'get_child_watcher' is deprecated as
   of Python 3.12 and will be removed in Python 3.14.``

.. versionchanged:: 3.14
   The watcher classes and functions are gone (``AttributeError: module
   'asyncio' has no attribute 'get_child_watcher'``); the loop chooses the
   pidfd or the thread-per-child mechanism on its own.  Code that still
   calls them should simply stop doing so: on 3.8 and newer the default
   already does the right thing.

.. index::
   pair: Process.wait; hangs with open pipes
   single: CPython issue gh-88050
   single: CPython issue gh-119710

Two more differences between versions matter to code that stops children:

* *When* :meth:`~asyncio.subprocess.Process.wait` returns.  On 3.8 to 3.10
  and again from 3.14 it returns when the child exits.  In between (3.11 to
  3.13 here: CPython issues gh-88050 and gh-119710) it returns only once the
  child's pipes are closed too, so a child that died with unread output in
  its pipe, or left a grandchild holding it, makes ``wait()`` hang even
  after ``kill()``.  :func:`stop_process` keeps reading the pipes while the
  child exits, watches :attr:`~asyncio.subprocess.Process.returncode`
  instead of relying on ``wait()`` alone, and closes the pipes once the
  child is gone; the test suite has a child holding its pipes for each of
  these cases.
* *Who reaps the child.*  Since 3.9 :meth:`subprocess.Popen.send_signal`,
  behind ``Process.kill()`` and ``terminate()``, first checks whether the
  child has exited, and that check reaps it if it did.  When the child
  exited a moment before, asyncio's watcher finds nothing left to reap, logs
  ``Unknown child process pid 1234, will report returncode 255`` (or ``child
  process pid 1234 exit status already read: will report returncode 255``)
  and the exit status you get is 255.  :func:`stop_process` signals the pid
  with :func:`os.kill` instead, which is safe until asyncio has reaped the
  child, since the pid cannot be reused before.

Subprocesses on Windows
-----------------------

.. index::
   pair: Windows; subprocess
   single: ProactorEventLoop; subprocesses
   single: error messages; NotImplementedError (subprocess on Windows)

The recipes run unchanged on Windows, with these differences:

* Only :class:`asyncio.ProactorEventLoop` supports subprocesses.  It is the
  default since Python 3.8; a program that switched to
  :class:`asyncio.SelectorEventLoop` (often for a library that needs it, or
  via ``WindowsSelectorEventLoopPolicy``) gets :exc:`NotImplementedError`
  from :func:`asyncio.create_subprocess_exec`.
* There are no signals to ask a process to stop: ``terminate()`` is the
  same as ``kill()`` (``TerminateProcess``), so the ``grace`` period of
  :func:`stop_process` never comes into play and the child gets no chance
  to clean up.  If it must, tell it to stop another way (close its stdin, a
  message on a pipe or socket), or start it with
  ``creationflags=subprocess.CREATE_NEW_PROCESS_GROUP`` and send
  ``signal.CTRL_BREAK_EVENT``.
* Exit statuses are not negative signal numbers: a terminated child usually
  reports ``1``, not ``-15`` or ``-9``.
* :meth:`loop.add_signal_handler() <asyncio.loop.add_signal_handler>`
  raises :exc:`NotImplementedError` there, so a supervisor that restarts or
  stops children on SIGHUP/SIGTERM needs another trigger.
* Programs are found the Windows way: ``sys.executable`` works everywhere,
  a bare ``"python"`` may start a different interpreter, or the Microsoft
  Store stub.

Putting it together
-------------------

A whole program: six commands, two at a time, one of them failing, and the
failure reported with the child's own error message.

.. script:: batch.py

   import asyncio
   import sys

   from recipes.subprocesses import run_many

   CODE = "import sys; n = int(sys.argv[1]); sys.exit(n % 4 == 3 and 'bad')"


   async def main():
       commands = [[sys.executable, "-c", CODE, str(n)] for n in range(6)]
       results = await run_many(commands, limit=2, timeout=30)
       for result in results:
           status = result.returncode
           error = result.stderr.decode().strip()
           print(result.args[-1], "ok" if status == 0 else f"failed: {error}")


   asyncio.run(main())

.. script-output::

   0 ok
   1 ok
   2 ok
   3 failed: bad
   4 ok
   5 ok

A library does this
-------------------

.. index::
   single: anyio; run_process
   pair: subprocesses; libraries

`anyio <https://anyio.readthedocs.io/en/stable/subprocesses.html>`__, which
runs on asyncio too, has ``await anyio.run_process(args, input=...)``: it
reads stdout and stderr while the child runs, feeds ``input``, and returns a
:class:`subprocess.CompletedProcess`; unlike :func:`run_process` it raises
:exc:`subprocess.CalledProcessError` on a non-zero exit by default
(``check=True``).  It has no ``timeout`` argument: you wrap the call in
``anyio.fail_after()`` or ``move_on_after()``, and a cancelled call kills
the child at once, with no ``SIGTERM`` first and no grace period as in
:func:`stop_process`.  ``anyio.open_process()`` gives a process with byte
streams for the pipes.  There is nothing like :func:`supervise` or
:func:`run_many`; you build them with a task group and a
``CapacityLimiter``.  Choose anyio when your code should also run on trio;
copy the recipes when the child must get a chance to clean up, or for the
supervisor.

See also
--------

* :doc:`/recipes/cancellation` and
  :ref:`recipes/cancellation:Cleanup that must await`: why the cleanup of a
  child process has to survive a cancellation.
* :doc:`/recipes/timeouts` – deadlines for any awaitable.
* :doc:`/recipes/limiting` – the same concurrency limit for coroutines.
* :doc:`/recipes/queues` – feeding a pool of workers over time.
* Python: :doc:`python:library/asyncio-subprocess`,
  :doc:`python:library/asyncio-stream` (the streams of a process), and
  :doc:`python:library/subprocess` (the blocking module, and
  :class:`subprocess.CompletedProcess`).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import math
import os
import signal
import subprocess
import sys
from asyncio.subprocess import Process
from typing import (
    Any,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    List,
    Mapping,
    Optional,
    Sequence,
    TypeVar,
)

__all__ = [
    "run_process",
    "stream_output",
    "open_process",
    "stop_process",
    "run_many",
    "supervise",
]

T = TypeVar("T")

PIPE = asyncio.subprocess.PIPE
DEVNULL = asyncio.subprocess.DEVNULL
_CHUNK = 64 * 1024
_POLL = 0.05  # seconds between looks at returncode while a child exits
_DEFAULT_LIMIT = 64 * 1024

LineCallback = Callable[[str, str], object]
"""``on_line(stream, line)``: ``stream`` is ``"stdout"`` or ``"stderr"``."""


# --- argument checks -------------------------------------------------------


def _check_args(args: object) -> List[str]:
    if isinstance(args, (str, bytes)):
        raise TypeError(
            "args must be a list of strings such as [sys.executable, '-c', 'pass'], "
            "not a string; run a shell command line as ['/bin/sh', '-c', line]"
        )
    if not isinstance(args, Iterable):
        raise TypeError(f"args must be a list of strings, got {args!r}")
    items: List[str] = []
    for item in args:
        if not isinstance(item, str):
            raise TypeError(f"every argument must be a str, got {item!r} in {args!r}")
        items.append(item)
    if not items:
        raise ValueError("args must name a program to run, got an empty list")
    return items


def _check_seconds(
    name: str, value: object, *, optional: bool = False, zero: bool = False
) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    if math.isnan(value) or math.isinf(value) or value < 0 or (value == 0 and not zero):
        bound = ">= 0" if zero else "> 0"
        raise ValueError(f"{name} must be a finite number of seconds {bound}, got {value!r}")


# --- cleanup that survives cancellation -------------------------------------


async def _to_the_end(awaitable: Awaitable[T]) -> T:
    """Await ``awaitable`` to completion even if we are cancelled meanwhile.

    A cancellation that arrives in the meantime is delivered afterwards, so
    the caller still ends cancelled, but only once the work is done.
    """
    task = asyncio.ensure_future(awaitable)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():  # the work itself was cancelled, or we were at the end
                raise
            cancelled = True  # keep waiting: the work is bounded (kill, then reap)
            continue
        if cancelled:
            raise asyncio.CancelledError
        return result


def _close_pipes(process: Process) -> None:
    if process.stdin is not None:
        process.stdin.close()
    # Process has no close(); its transport owns the pipes.  Closing it after the
    # child is reaped drops output nobody read, which would otherwise keep the pipe
    # (and, if a grandchild holds the other end, the transport) open until the
    # garbage collector complains "unclosed transport".
    transport = getattr(process, "_transport", None)
    if transport is not None:
        transport.close()


async def _stop(process: Process, grace: float) -> int:
    # Keep reading while the child shuts down: a child that writes its last
    # words into a full pipe would block there instead of exiting.
    drains = [
        asyncio.ensure_future(_discard(stream))
        for stream in (process.stdout, process.stderr)
        if stream is not None
    ]
    try:
        if process.stdin is not None:
            process.stdin.close()  # end-of-file first: many children exit on it
        if process.returncode is None and grace > 0:
            _send_signal(process, kill=False)
            await _exited(process, grace)
        if process.returncode is None:
            _send_signal(process, kill=True)
            await _exited(process, None)
    finally:
        if process.returncode is None:  # interrupted: at least send the signal
            _send_signal(process, kill=True)
        # The child is gone (or killed): close our ends of its pipes, so that
        # neither a grandchild holding them nor unread output keeps them open.
        _close_pipes(process)
        for drain in drains:
            drain.cancel()
    if drains:
        await asyncio.wait(drains)
    returncode = await process.wait()  # returns at once: exited, pipes closed
    if process.stdin is not None:
        await _stdin_closed(process.stdin)
    return returncode


def _send_signal(process: Process, *, kill: bool) -> None:
    """SIGKILL or SIGTERM for the child, unless asyncio knows it has exited.

    Not ``process.kill()`` / ``terminate()`` on POSIX: they go through
    ``Popen.send_signal()``, which since Python 3.9 first polls the child.  If
    it exited a moment ago, that poll reaps it before asyncio's child watcher
    can, and asyncio then logs "Unknown child process pid ..., will report
    returncode 255" and reports 255.  Until asyncio has reaped the child its
    pid cannot be reused, so signalling it directly is safe.
    """
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        if sys.platform == "win32":
            if kill:
                process.kill()
            else:
                process.terminate()
        else:
            os.kill(process.pid, signal.SIGKILL if kill else signal.SIGTERM)


async def _exited(process: Process, timeout: Optional[float]) -> bool:
    """Wait until the child has exited (or ``timeout`` seconds); True if it has.

    ``Process.wait()`` alone is not enough: on some Python versions (3.11.7,
    3.12.1 and 3.13.0 among them) it returns only once the child's pipes are
    closed as well, which a grandchild holding them may never let happen.
    ``returncode`` is set as soon as the child is reaped.
    """
    waiter = asyncio.ensure_future(process.wait())
    watched: List[asyncio.Future[Any]] = [waiter]
    if timeout is not None:
        watched.append(asyncio.ensure_future(asyncio.sleep(timeout)))
    try:
        while process.returncode is None:
            if len(watched) > 1 and watched[1].done():
                return False
            await asyncio.wait(watched, timeout=_POLL, return_when=asyncio.FIRST_COMPLETED)
        return True
    finally:
        for future in watched:
            future.cancel()
        await asyncio.wait(watched)


async def _discard(stream: asyncio.StreamReader) -> None:
    with contextlib.suppress(RuntimeError):  # somebody else is reading it: fine
        while await stream.read(_CHUNK):
            pass


async def _stdin_closed(stdin: asyncio.StreamWriter) -> None:
    """Wait (briefly) for a closed stdin pipe to be gone, and take its error if any.

    If the child went first, the pipe ends with BrokenPipeError; unless somebody
    awaits ``wait_closed()``, asyncio logs "Future exception was never retrieved"
    when the process object is garbage-collected.
    """
    with contextlib.suppress(Exception):  # BrokenPipeError, ConnectionResetError, timeout
        await asyncio.wait_for(stdin.wait_closed(), 1.0)


async def stop_process(process: Process, *, grace: float = 2.0) -> int:
    """Stop ``process``: close its stdin, terminate, kill after ``grace`` seconds, reap.

    ``grace=0`` skips the terminate step and kills at once.

    Returns the exit status (on POSIX ``-signal.SIGTERM`` or ``-signal.SIGKILL``
    when a signal ended it).  A process that has already exited is just reaped
    and its pipes are closed; output that nobody read by then is dropped.  If
    the calling task is cancelled while it waits, the child is killed at once
    (the rest of the grace period is skipped) and reaped, and the cancellation is
    raised afterwards.

    >>> import asyncio, sys
    >>> from recipes.subprocesses import stop_process
    >>> code = "import time; time.sleep(30)"
    >>> child = await asyncio.create_subprocess_exec(sys.executable, "-c", code)
    >>> status = await stop_process(child, grace=0.2)
    >>> child.returncode == status and status < 0
    True

    A child that already finished is reaped, and its status returned:

    >>> done = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    >>> await done.wait()
    0
    >>> await stop_process(done)
    0

    ``grace=0`` kills at once:

    >>> child = await asyncio.create_subprocess_exec(sys.executable, "-c", code)
    >>> await stop_process(child, grace=0)
    -9
    """
    _check_seconds("grace", grace, zero=True)
    stopping = asyncio.ensure_future(_stop(process, grace))
    try:
        return await asyncio.shield(stopping)
    except asyncio.CancelledError:
        # Cancelled during the grace period: kill now instead of waiting it out,
        # but still reap the child and close its pipes before going on.
        _send_signal(process, kill=True)
        await _to_the_end(stopping)
        raise


@contextlib.asynccontextmanager
async def open_process(
    args: Sequence[str],
    *,
    grace: float = 2.0,
    stdin: Any = DEVNULL,
    stdout: Any = None,
    stderr: Any = None,
    **kwargs: Any,
) -> AsyncIterator[Process]:
    """Start ``args`` as a child process for the ``async with`` block; stop it on the way out.

    The other arguments go to :func:`asyncio.create_subprocess_exec`; stdin is
    ``DEVNULL`` unless you say otherwise (a child that reads your terminal is
    rarely wanted), stdout and stderr are inherited.  Leaving the block in any way
    runs :func:`stop_process` with ``grace``: a child still running is terminated,
    killed if need be, and reaped, even if the block is cancelled.  To let the
    child finish, ``await process.wait()`` (or read its output to the end)
    inside the block.

    >>> import asyncio, sys
    >>> from asyncio.subprocess import PIPE
    >>> from recipes.subprocesses import open_process
    >>> hello = [sys.executable, "-c", "print('hi')"]
    >>> async with open_process(hello, stdout=PIPE) as child:
    ...     print(await child.stdout.read())
    ...     print(await child.wait())
    b'hi\\n'
    0

    A child still running at the end of the block is stopped:

    >>> sleeper = [sys.executable, "-c", "import time; time.sleep(30)"]
    >>> async with open_process(sleeper, grace=0.2) as child:
    ...     pass
    >>> child.returncode < 0
    True

    The same when the block fails:

    >>> try:
    ...     async with open_process(sleeper, grace=0.2) as child:
    ...         raise KeyError("oops")
    ... except KeyError:
    ...     print("stopped:", child.returncode is not None)
    stopped: True
    """
    items = _check_args(args)
    _check_seconds("grace", grace, zero=True)
    process = await asyncio.create_subprocess_exec(
        *items, stdin=stdin, stdout=stdout, stderr=stderr, **kwargs
    )
    try:
        yield process
    finally:
        await stop_process(process, grace=grace)


# --- reading and writing the pipes ------------------------------------------


async def _collect(stream: asyncio.StreamReader, buffer: bytearray) -> None:
    while True:
        chunk = await stream.read(_CHUNK)
        if not chunk:
            return
        buffer += chunk


async def _feed(stdin: asyncio.StreamWriter, data: bytes) -> None:
    try:
        if data:
            stdin.write(data)
            await stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the child exited, or closed its stdin, without reading it all
    finally:
        stdin.close()
    await _stdin_closed(stdin)


async def _read_lines(
    stream: asyncio.StreamReader, name: str, on_line: LineCallback, limit: int
) -> None:
    while True:
        try:
            line = await stream.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:  # the last line has no newline
            line = exc.partial
            if not line:
                return
        except asyncio.LimitOverrunError as exc:
            line = (await stream.readexactly(exc.consumed))[:limit]
            await _skip_line(stream)
        text = line.decode(errors="replace")
        if text.endswith("\n"):
            text = text[:-1]
            if text.endswith("\r"):
                text = text[:-1]
        result = on_line(name, text)
        if inspect.isawaitable(result):
            await result


async def _skip_line(stream: asyncio.StreamReader) -> None:
    """Discard the rest of an over-long line, up to and including its newline."""
    while True:
        try:
            await stream.readuntil(b"\n")
            return
        except asyncio.LimitOverrunError as exc:
            await stream.readexactly(exc.consumed)
        except asyncio.IncompleteReadError:
            return


async def _run_all(
    jobs: Sequence[Awaitable[Any]], timeout: Optional[float]
) -> Optional[List[Any]]:
    """Run ``jobs`` together: their results, or None if ``timeout`` expired first.

    The first job to fail (or a timeout, or our own cancellation) cancels the
    others, which are awaited before this returns or raises.
    """
    tasks = [asyncio.ensure_future(job) for job in jobs]
    if not tasks:
        return []
    try:
        done, pending = await asyncio.wait(
            tasks, timeout=timeout, return_when=asyncio.FIRST_EXCEPTION
        )
        failed = [task for task in tasks if task in done and task.exception() is not None]
        if failed:
            error = failed[0].exception()
            assert error is not None
            raise error
        return None if pending else [task.result() for task in tasks]
    finally:
        leftover = [task for task in tasks if not task.done()]
        for task in leftover:
            task.cancel()
        if leftover:
            await asyncio.wait(leftover)
        for task in tasks:  # mark every failure as seen; the first one is raised above
            if task.done() and not task.cancelled():
                task.exception()


# --- the recipes -------------------------------------------------------------


async def run_process(
    args: Sequence[str],
    *,
    input: Optional[bytes] = None,
    timeout: Optional[float] = None,
    grace: float = 2.0,
    check: bool = False,
    cwd: Optional[str] = None,
    env: Optional[Mapping[str, str]] = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``args``, feed it ``input``, capture stdout and stderr; return a CompletedProcess.

    Both pipes are read while the child runs, so it never blocks on a full
    pipe.  ``input`` (bytes) is written with backpressure and the pipe closed;
    without it the child's stdin is ``DEVNULL``.  A child that exits without
    reading its input is not an error.  After ``timeout`` seconds (``None``:
    no limit) the child is stopped as by :func:`stop_process` with ``grace``
    and :exc:`subprocess.TimeoutExpired` is raised, carrying the output so far.
    With ``check=True`` a non-zero status raises
    :exc:`subprocess.CalledProcessError`.  If the awaiting task is cancelled,
    the child is stopped and reaped before the cancellation goes on.

    >>> import sys
    >>> from recipes.subprocesses import run_process
    >>> done = await run_process([sys.executable, "-c", "print(6 * 7)"])
    >>> done.stdout
    b'42\\n'

    Input, and the exit status:

    >>> code = "import sys; sys.exit(len(sys.stdin.read()))"
    >>> done = await run_process([sys.executable, "-c", code], input=b"12345")
    >>> done.returncode
    5

    Bad arguments fail before anything starts:

    >>> await run_process([sys.executable, "-c", "pass"], timeout=0)
    Traceback (most recent call last):
      ...
    ValueError: timeout must be a finite number of seconds > 0, got 0
    """
    items = _check_args(args)
    _check_seconds("timeout", timeout, optional=True)
    _check_seconds("grace", grace, zero=True)
    if input is not None and not isinstance(input, (bytes, bytearray, memoryview)):
        raise TypeError(f"input must be bytes, got {type(input).__name__}")
    out, err = bytearray(), bytearray()
    async with open_process(
        items,
        grace=grace,
        stdin=DEVNULL if input is None else PIPE,
        stdout=PIPE,
        stderr=PIPE,
        cwd=cwd,
        env=env,
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        jobs: List[Awaitable[Any]] = [
            _collect(process.stdout, out),
            _collect(process.stderr, err),
            process.wait(),
        ]
        if input is not None:
            assert process.stdin is not None
            jobs.append(_feed(process.stdin, bytes(input)))
        finished = await _run_all(jobs, timeout)
        if finished is None:
            assert timeout is not None
            raise subprocess.TimeoutExpired(items, timeout, bytes(out), bytes(err))
        returncode: int = finished[2]
    if check and returncode != 0:
        raise subprocess.CalledProcessError(returncode, items, bytes(out), bytes(err))
    return subprocess.CompletedProcess(items, returncode, bytes(out), bytes(err))


async def stream_output(
    args: Sequence[str],
    on_line: LineCallback,
    *,
    timeout: Optional[float] = None,
    grace: float = 2.0,
    limit: int = _DEFAULT_LIMIT,
    cwd: Optional[str] = None,
    env: Optional[Mapping[str, str]] = None,
) -> int:
    """Run ``args`` and call ``on_line(stream, line)`` for each line it prints; return its status.

    ``stream`` is ``"stdout"`` or ``"stderr"``; ``line`` is text (UTF-8, bad bytes
    replaced) without its line ending.  ``on_line`` may be a coroutine function:
    its result is awaited before that stream's next line is read.  Both streams
    are read concurrently, so neither pipe can fill up and stall the child.
    Lines longer than ``limit`` bytes are cut to ``limit`` bytes.  ``timeout``,
    ``grace`` and cancellation work as in :func:`run_process`; if ``on_line`` raises,
    the child is stopped and the exception propagates.

    >>> import sys
    >>> from recipes.subprocesses import stream_output
    >>> code = "print('a'); print('b')"
    >>> await stream_output([sys.executable, "-c", code], print)
    stdout a
    stdout b
    0

    Standard error, and the exit status:

    >>> code = "import sys; sys.exit('fatal: no disk')"
    >>> await stream_output([sys.executable, "-c", code], print)
    stderr fatal: no disk
    1

    A callback that raises stops the child:

    >>> def stop_at_first(stream, line):
    ...     raise RuntimeError(f"unexpected: {line}")
    >>> code = "import time; print('oops', flush=True); time.sleep(30)"
    >>> await stream_output([sys.executable, "-c", code], stop_at_first,
    ...                     grace=0.2)
    Traceback (most recent call last):
      ...
    RuntimeError: unexpected: oops
    """
    items = _check_args(args)
    if not callable(on_line):
        raise TypeError(f"on_line must be callable, got {on_line!r}")
    _check_seconds("timeout", timeout, optional=True)
    _check_seconds("grace", grace, zero=True)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a positive number of bytes, got {limit!r}")
    async with open_process(
        items,
        grace=grace,
        stdout=PIPE,
        stderr=PIPE,
        limit=limit,
        cwd=cwd,
        env=env,
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        finished = await _run_all(
            [
                _read_lines(process.stdout, "stdout", on_line, limit),
                _read_lines(process.stderr, "stderr", on_line, limit),
                process.wait(),
            ],
            timeout,
        )
        if finished is None:
            assert timeout is not None
            raise subprocess.TimeoutExpired(items, timeout)
        returncode: int = finished[2]
    return returncode


async def run_many(
    commands: Iterable[Sequence[str]],
    *,
    limit: int = 8,
    timeout: Optional[float] = None,
    grace: float = 2.0,
    check: bool = False,
) -> List[subprocess.CompletedProcess[bytes]]:
    """Run every command with :func:`run_process`, at most ``limit`` at a time; results in order.

    ``timeout``, ``grace`` and ``check`` apply to each command.  The first
    exception (a command that cannot start, a timeout, a failed ``check``)
    stops the batch: running children are stopped and reaped, the remaining
    commands are never started, and the exception propagates.  Every command is
    checked before the first one starts.

    >>> import sys
    >>> from recipes.subprocesses import run_many
    >>> cmds = [[sys.executable, "-c", f"print({n} ** 2)"] for n in range(4)]
    >>> [r.stdout for r in await run_many(cmds, limit=2)]
    [b'0\\n', b'1\\n', b'4\\n', b'9\\n']

    An empty batch is fine:

    >>> await run_many([])
    []

    A bad command anywhere fails before any command runs:

    >>> await run_many([*cmds, "echo hi"])
    Traceback (most recent call last):
      ...
    TypeError: args must be a list of strings such as ...
    """
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(f"limit must be an int, got {limit!r}")
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    _check_seconds("timeout", timeout, optional=True)
    _check_seconds("grace", grace, zero=True)
    checked = [_check_args(command) for command in commands]
    results: List[Optional[subprocess.CompletedProcess[bytes]]] = [None] * len(checked)
    queue = iter(enumerate(checked))  # shared: each command is taken by one worker

    async def worker() -> None:
        for index, command in queue:
            results[index] = await run_process(command, timeout=timeout, grace=grace, check=check)

    await _run_all([worker() for _ in range(min(limit, len(checked)))], None)
    return [result for result in results if result is not None]


async def supervise(
    args: Sequence[str],
    *,
    max_restarts: Optional[int] = None,
    backoff: float = 1.0,
    max_backoff: float = 60.0,
    healthy_after: float = 30.0,
    grace: float = 2.0,
    on_exit: Optional[Callable[[int, Optional[float]], object]] = None,
    **kwargs: Any,
) -> int:
    """Keep ``args`` running: restart it whenever it exits, with exponential backoff.

    The first restart waits ``backoff`` seconds, each further one twice as long,
    up to ``max_backoff``; a run that lasted at least ``healthy_after`` seconds
    resets the delay and the count of failures.  ``on_exit(returncode, delay)``
    (a function or a coroutine function) is told of every exit; ``delay`` is
    ``None`` when the supervisor gives up, which it does after ``max_restarts``
    quick failures in a row (``None``: never), returning the last exit status.
    Cancel the task to stop: the child is stopped with ``grace`` as by
    :func:`stop_process`.  Other keyword arguments go to
    :func:`asyncio.create_subprocess_exec` (stdout and stderr are inherited
    unless you pass them).

    >>> import sys
    >>> from recipes.subprocesses import supervise
    >>> once = [sys.executable, "-c", "raise SystemExit(7)"]
    >>> await supervise(once, max_restarts=0)
    7

    Each exit is reported, with the delay before the restart:

    >>> delays = []
    >>> await supervise(once, max_restarts=4, backoff=0.01, max_backoff=0.03,
    ...                 on_exit=lambda code, delay: delays.append(delay))
    7
    >>> delays
    [0.01, 0.02, 0.03, 0.03, None]

    Bad settings are refused:

    >>> await supervise(once, backoff=10, max_backoff=1)
    Traceback (most recent call last):
      ...
    ValueError: max_backoff (1) must not be less than backoff (10)
    """
    items = _check_args(args)
    if max_restarts is not None and (
        isinstance(max_restarts, bool) or not isinstance(max_restarts, int) or max_restarts < 0
    ):
        raise ValueError(f"max_restarts must be None or an int >= 0, got {max_restarts!r}")
    _check_seconds("backoff", backoff)
    _check_seconds("max_backoff", max_backoff)
    _check_seconds("healthy_after", healthy_after, zero=True)
    _check_seconds("grace", grace, zero=True)
    if max_backoff < backoff:
        raise ValueError(f"max_backoff ({max_backoff}) must not be less than backoff ({backoff})")
    loop = asyncio.get_running_loop()
    delay = backoff
    failures = 0
    while True:
        started = loop.time()
        async with open_process(items, grace=grace, **kwargs) as process:
            returncode = await process.wait()
        if loop.time() - started >= healthy_after:
            delay, failures = backoff, 0
        give_up = max_restarts is not None and failures >= max_restarts
        if on_exit is not None:
            reported = on_exit(returncode, None if give_up else delay)
            if inspect.isawaitable(reported):
                await reported
        if give_up:
            return returncode
        await asyncio.sleep(delay)
        failures += 1
        delay = min(delay * 2, max_backoff)
