"""Most asyncio bugs are quiet. A coroutine called without ``await`` never runs; a blocking call
inside a coroutine freezes every other task without an error; a task that fails while nobody
awaits it loses its exception until the garbage collector mentions it; a program that hangs
shows nothing at all. This chapter turns each of those into something you can see: asyncio's
debug mode and how to switch it on, the slow-callback log, the origin of a never-awaited
coroutine, the stack of a waiting task, a readable dump of every task in the program
(:func:`dump_tasks`), the chain of tasks awaiting one another (3.14+), the tasks of another
running process (``python -m asyncio ps`` and ``pstree``, 3.14+, and :func:`dump_process_tasks`
to run them from code), an exception handler that logs what the loop could not deliver
(:func:`make_exception_handler`), and logging set up so that all of it reaches you.

Turning on debug mode
---------------------

.. index::
   single: debug mode
   pair: debug mode; PYTHONASYNCIODEBUG
   pair: debug mode; -X dev

Debug mode makes the event loop check its own use: it logs callbacks and task steps that hold
the thread too long, records where every coroutine, task and future was created, raises when a
loop method is called from the wrong thread, and rejects coroutines passed where a plain
callback is expected. The checks cost time, so it is off by default. Switch it on for the one
run you are investigating, with ``debug=True``:

.. script:: debug_run.py

   import asyncio


   async def main():
       print("debug mode:", asyncio.get_running_loop().get_debug())


   asyncio.run(main(), debug=True)

.. script-output::

   debug mode: True

Without touching the code, the environment variable ``PYTHONASYNCIODEBUG=1`` or Python's
development mode ``python -X dev`` (which also shows ``ResourceWarning`` for unclosed files,
sockets and loops) does the same for every loop the program creates.  Here both run a small
program in a child process:

>>> import asyncio
>>> import os, subprocess, sys
>>> script = (
...     "import asyncio\\n"
...     "async def main(): print(asyncio.get_running_loop().get_debug())\\n"
...     "asyncio.run(main())\\n"
... )
>>> def run_python(*options, **env):
...     command = [sys.executable, *options, "-c", script]
...     env = dict(os.environ, **env)
...     done = subprocess.run(command, env=env, capture_output=True, text=True)
...     return done.stdout.strip()
>>> run_python("-X", "dev"), run_python(PYTHONASYNCIODEBUG="1")
('True', 'True')

A loop that is already running, such as the one of the ``python -m asyncio`` REPL, is
switched with ``loop.set_debug(True)``; :ref:`recipes/event_loop:Turning on debug mode` sums
up all four ways. From then on the loop catches, for instance, a loop method called from
another thread (only ``call_soon_threadsafe`` is safe there), and a coroutine function
scheduled as a callback:

.. index::
   single: error messages; Non-thread-safe operation invoked on an event loop \
other than the current one
   single: error messages; coroutines cannot be used with call_soon()

>>> loop = asyncio.get_running_loop()
>>> loop.set_debug(True)
>>> await loop.run_in_executor(None, loop.call_soon, print, "from a thread")
Traceback (most recent call last):
...
RuntimeError: Non-thread-safe operation invoked on an event loop other ...
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

.. index::
   single: warnings; There is no current event loop

.. important::

   Do not switch debug mode on with ``asyncio.get_event_loop().set_debug(True)`` at module
   level. :func:`asyncio.run` never uses that loop (it always creates a new one), so the
   setting has no effect; on 3.12 and 3.13 the call itself warns ``DeprecationWarning: There
   is no current event loop``, on 3.14 it raises ``RuntimeError``, and the loop it creates is
   never closed (``ResourceWarning: unclosed event loop``). Use ``asyncio.run(main(),
   debug=True)``, ``PYTHONASYNCIODEBUG=1`` or ``-X dev``.

Finding callbacks that block the loop
-------------------------------------

.. index::
   single: slow callback
   pair: blocking call; debug mode
   single: warnings; Executing <Task ...> took ... seconds

In debug mode the loop times every callback and every step of a task (the code between two
``await`` points). One that takes longer than ``loop.slow_callback_duration`` (0.1 s by
default) is logged at WARNING level by the ``asyncio`` logger as ``Executing <Task ...> took
0.123 seconds``. The task's name and coroutine identify the culprit. Here the blocking call is
a ``time.sleep`` that should have been ``await asyncio.sleep``, and the program lowers the
threshold to 20 ms:

.. script:: slow_step.py

   import asyncio
   import logging
   import sys
   import time

   # Standard output, to show it here; logging writes to standard error by default.
   logging.basicConfig(stream=sys.stdout, format="%(levelname)s %(message)s")


   async def resize_images():
       time.sleep(0.05)  # the bug: a blocking call inside a coroutine


   async def main():
       asyncio.get_running_loop().slow_callback_duration = 0.02
       await asyncio.create_task(resize_images(), name="resize")


   asyncio.run(main(), debug=True)

.. script-output::

   WARNING Executing <Task finished name='resize' coro=<resize_images() ...> took 0.05... seconds

The fix is to make the slow step asynchronous, or to move it to a thread
(``await asyncio.to_thread(...)`` on 3.9+, ``loop.run_in_executor(None, ...)`` before;
:func:`recipes.coroutines.run_in_thread` works on every version, and
:ref:`recipes/coroutines:Seeing that a blocking call stalls the loop` measures the damage).

.. important::

   The duration is measured with ``loop.time()``. A loop on a virtual clock (``looptime``, or
   a test tool that fakes time) does not advance while a callback blocks, so it never reports
   a slow callback; look for them on a real-clock loop, as the script above does. In the
   ``python -m asyncio`` REPL, ``loop.set_debug(True)`` and a lower
   ``loop.slow_callback_duration`` show the same warning on standard error.

Finding a coroutine that was never awaited
------------------------------------------

.. index::
   single: warnings; coroutine ... was never awaited
   pair: coroutine; never awaited

Calling a coroutine function only creates a coroutine object; without ``await`` its body never
runs (:doc:`/recipes/coroutines` has the details). When the object is garbage-collected,
Python warns ``RuntimeWarning: coroutine 'save' was never awaited``. The warning's own
location is where the object happened to be freed. In debug mode the message also says where
the coroutine was created:

>>> import warnings
>>> async def save(record):
...     await asyncio.sleep(0)
>>> async def handle_request():
...     save({"id": 1})  # the bug: no await
...     return "saved?"
>>> loop.set_debug(True)
>>> with warnings.catch_warnings(record=True) as caught:
...     warnings.simplefilter("always")
...     print(await handle_request())
saved?
>>> loop.set_debug(False)
>>> print(caught[0].category.__name__, caught[0].message)
RuntimeWarning coroutine 'save' was never awaited
Coroutine created at (most recent call last)
...
  File "...", line 2, in handle_request
    save({"id": 1})  # the bug: no await

Run the test suite with ``-W error::RuntimeWarning`` (or pytest's ``filterwarnings = error``)
so that this warning fails the test that caused it; under ``-X dev`` add ``-X tracemalloc`` to
see where other leaked objects were allocated.

Seeing where a task is waiting
------------------------------

.. index::
   pair: hanging program; task stack
   single: dump_tasks

A program that hangs is usually a task waiting for something that will never happen.
``Task.print_stack()`` prints where one task's coroutine is suspended (pass ``file=`` to print
somewhere other than standard error), and ``Task.get_stack()`` returns those frames:

>>> async def download(url):
...     await asyncio.sleep(3600)  # stands for a response that never comes
>>> stuck = asyncio.create_task(download("/big.iso"), name="download")
>>> await asyncio.sleep(0)
>>> stuck.print_stack(file=sys.stdout)
Stack for <Task pending name='download' ...> (most recent call last):
  File "...", line 2, in download
    await asyncio.sleep(3600)  # stands for a response that never comes
>>> [frame.f_code.co_name for frame in stuck.get_stack()]
['download']

Both show only the task's own coroutine frame, not the coroutines it awaits, and one task at
a time. :func:`dump_tasks` describes every task of the loop, one line each, with the whole
chain of awaits down to the future it is blocked on. Here it is called from a coroutine, as a
watchdog task would call it:

>>> from recipes.debugging import dump_tasks
>>> queue = asyncio.Queue()
>>> async def consume():
...     while True:
...         await queue.get()
...         queue.task_done()
>>> worker = asyncio.create_task(consume(), name="worker")
>>> async def report():
...     print(dump_tasks())
>>> await report()
'download' waiting: download() at ...:2 -> sleep() at tasks.py:... -> Future
'Task-...' running: <module>() at ...:1
'worker' waiting: consume() at ...:3 -> Queue.get() at queues.py:... -> Future

The lines are sorted by task name. The ``running`` one is the task that called
:func:`dump_tasks`: the one running the REPL's line ``await report()`` (a running coroutine
does not show what it awaits). In a long-running service, log the dump from a debug endpoint
or a signal handler, or from a watchdog task that notices a deadline has passed.

>>> for task in (stuck, worker):
...     _ = task.cancel()
>>> _ = await asyncio.gather(stuck, worker, return_exceptions=True)

Printing the await chain of a task (3.14+)
------------------------------------------

.. index::
   single: call graph
   pair: capture_call_graph; Python 3.14

:func:`dump_tasks` and ``Task.get_stack()`` look at one task at a time. When tasks wait for
each other, through :func:`asyncio.gather`, a :class:`asyncio.TaskGroup` or a plain ``await
task``, the link between them does not show: a crawler waiting for its page fetches ends in
``_GatheringFuture``, and nothing on the fetches' lines says who is waiting for them. Python
3.14 records, for every task and future, which tasks await it, and three functions read that
record:

* ``asyncio.capture_call_graph(future=None, /, *, depth=1, limit=None)`` returns a
  ``FutureCallGraph`` with three attributes: ``future`` (the task or future described),
  ``call_stack`` (a tuple of ``FrameCallGraphEntry`` objects, each holding a ``frame``, the
  innermost first) and ``awaited_by`` (a tuple of ``FutureCallGraph``, one per task waiting
  for it);
* ``asyncio.format_call_graph(future=None, /, *, depth=1, limit=None)`` returns the same as
  text;
* ``asyncio.print_call_graph(future=None, /, *, file=None, depth=1, limit=None)`` prints that
  text to ``file`` (standard output by default).

Here a crawler waits for two page fetches through :func:`asyncio.gather`; asking about one
fetch shows where it is suspended and, under "Awaited by", the task waiting for it with that
task's own stack:

>>> async def fetch(url):
...     await asyncio.sleep(3600)  # stands for a server that never answers
>>> async def crawl(urls):
...     pages = [asyncio.create_task(fetch(url), name=url) for url in urls]
...     return await asyncio.gather(*pages)
>>> crawler = asyncio.create_task(crawl(["/a", "/b"]), name="crawler")
>>> await asyncio.sleep(1)
>>> page = next(t for t in asyncio.all_tasks() if t.get_name() == "/a")
>>> print(asyncio.format_call_graph(page))  # doctest: +PY314
* Task(name='/a', id=0x...)
  + Call stack:
  |   File '...tasks.py', line ..., in async sleep()
  |   File '...', line 2, in async fetch()
  + Awaited by:
    * Task(name='crawler', id=0x...)
      + Call stack:
      |   File '...', line 3, in async crawl()

:func:`asyncio.capture_call_graph` gives the same facts as objects, for a log line or a
check of your own; a frame's ``f_code.co_qualname`` is the name shown above:

>>> graph = asyncio.capture_call_graph(page)  # doctest: +PY314
>>> frames = [entry.frame for entry in graph.call_stack]  # doctest: +PY314
>>> [frame.f_code.co_qualname for frame in frames]  # doctest: +PY314
['sleep', 'fetch']
>>> [g.future.get_name() for g in graph.awaited_by]  # doctest: +PY314
['crawler']

Drop such objects when done (``del graph, frames``): frames keep their local variables alive.

``limit=`` trims every stack in the graph to ``abs(limit)`` entries. A positive limit keeps
the outermost ones, starting with the task's own coroutine, a negative one keeps the innermost
ones, where the task is suspended, and ``limit=0`` leaves only the tasks and who awaits them:

>>> asyncio.print_call_graph(page, limit=1)  # doctest: +PY314
* Task(name='/a', id=0x...)
  + Call stack:
  |   File '...', line 2, in async fetch()
  + Awaited by:
    * Task(name='crawler', id=0x...)
      + Call stack:
      |   File '...', line 3, in async crawl()

Without a task the functions describe the current one, from the line that calls them
outwards. ``depth=`` applies only then: it is how many frames to skip from the top, and the
default, 1, skips only the function itself. A helper that logs the chain passes ``depth=2``,
so that its own frame stays out of the log:

>>> def log_await_chain(message):
...     print(message)
...     print(asyncio.format_call_graph(depth=2))
>>> async def handle(request):
...     log_await_chain(f"handling {request}")
>>> async def serve():
...     await asyncio.create_task(handle("GET /"), name="handler")
>>> await serve()  # doctest: +PY314
handling GET /
* Task(name='handler', id=0x...)
  + Call stack:
  |   File '...', line 2, in async handle()
  + Awaited by:
    * Task(name='Task-...', id=0x...)
      + Call stack:
      |   File '...', line 2, in async serve()
      |   File '...', line 1, in async <module>()

The task awaiting the handler is the one running the REPL's line: it is in ``serve()``,
called from that line (``<module>``). Called with no task from a plain
callback, where no task is running, :func:`asyncio.capture_call_graph` returns ``None`` and
:func:`asyncio.format_call_graph` an empty string; outside a running event loop they raise
``RuntimeError``.

On 3.8–3.13 the fallback is :func:`dump_tasks` (here through ``report()`` from
:ref:`recipes/debugging:Seeing where a task is waiting`). It shows every task's own chain,
and a task waiting for another task names it, but the crawler's line ends in the future that
:func:`asyncio.gather` returns:

>>> await report()
'/a' waiting: fetch() at ...:2 -> sleep() at tasks.py:... -> Future
'/b' waiting: fetch() at ...:2 -> sleep() at tasks.py:... -> Future
'crawler' waiting: crawl() at ...:3 -> _GatheringFuture
'Task-...' running: <module>() at ...:1
>>> _ = crawler.cancel()
>>> _ = await asyncio.gather(crawler, return_exceptions=True)

.. versionadded:: 3.14
   :func:`asyncio.capture_call_graph`, :func:`asyncio.format_call_graph` and
   :func:`asyncio.print_call_graph`, with the ``FutureCallGraph`` and ``FrameCallGraphEntry``
   classes. The "awaited by" links are recorded by ``await`` on a task or future,
   :func:`asyncio.gather`, :func:`asyncio.shield`, :func:`asyncio.wait_for`,
   :func:`asyncio.wait` and :class:`asyncio.TaskGroup`. Code that
   connects futures through low-level callbacks (``add_done_callback``) declares the link
   with :func:`asyncio.future_add_to_awaited_by` and
   :func:`asyncio.future_discard_from_awaited_by`.

.. important::

   Called with no task, ``asyncio.print_call_graph()`` lists its own frame (``graph.py, in
   print_call_graph()``) at the top of the stack on 3.14.10 and 3.15.2, the releases this
   chapter was checked with; the bug is CPython issue gh-156327, fixed upstream. For the
   current task, ``print(asyncio.format_call_graph())`` shows the same graph without it, on
   every 3.14+ release; with an explicit task, ``print_call_graph(task)`` is not affected.

Inspecting a running program from outside: python -m asyncio ps and pstree
--------------------------------------------------------------------------

.. index::
   single: python -m asyncio ps
   single: python -m asyncio pstree
   pair: remote inspection; Python 3.14

When a program is stuck and you cannot add code to it, Python 3.14 can list its tasks from
another process. ``python -m asyncio ps PID`` prints a table of the pending tasks of the
process ``PID``, and ``python -m asyncio pstree PID`` prints them as a tree of who awaits
whom. They read the target's memory: nothing runs in the target, it needs no restart, no
debug mode and no code of yours. Save this program as ``watch.py``::

    import asyncio
    import os


    async def poll(source):
        while True:
            await asyncio.sleep(60)  # stands for fetching from the source


    async def watch(sources):
        async with asyncio.TaskGroup() as tg:
            for source in sources:
                tg.create_task(poll(source), name=f"poll-{source}")


    async def main():
        print(f"PID {os.getpid()}", flush=True)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(watch(["feeds", "mail"]), name="watcher")
            tg.create_task(watch(["backups"]), name="archiver")


    asyncio.run(main())

and run it in one terminal; it prints its process ID and waits for ever:

.. code-block:: console

   $ python3.14 watch.py
   PID 14925

From a second terminal, ``pstree`` shows the tree. ``(T)`` marks a task; under each task
are the coroutines it is suspended in, outermost first, each with its file and line; a task
hangs under the coroutine of the task that awaits it. Here ``main`` waits in its task group
for ``watcher`` and ``archiver``, and each of those waits in its own group for its
``poll-...`` tasks, which sleep (paths to the standard library shortened):

.. code-block:: console

   $ python3.14 -m asyncio pstree 14925
   └── (T) Task-1
       └──  main /tmp/demo/watch.py:18
           └──  TaskGroup.__aexit__ .../asyncio/taskgroups.py:72
               └──  TaskGroup._aexit .../asyncio/taskgroups.py:121
                   ├── (T) watcher
                   │   └──  watch /tmp/demo/watch.py:11
                   │       └──  TaskGroup.__aexit__ .../asyncio/taskgroups.py:72
                   │           └──  TaskGroup._aexit .../asyncio/taskgroups.py:121
                   │               ├── (T) poll-feeds
                   │               │   └──  poll /tmp/demo/watch.py:7
                   │               │       └──  sleep .../asyncio/tasks.py:716
                   │               └── (T) poll-mail
                   │                   └──  poll /tmp/demo/watch.py:7
                   │                       └──  sleep .../asyncio/tasks.py:716
                   └── (T) archiver
                       └──  watch /tmp/demo/watch.py:11
                           └──  TaskGroup.__aexit__ .../asyncio/taskgroups.py:72
                               └──  TaskGroup._aexit .../asyncio/taskgroups.py:121
                                   └── (T) poll-backups
                                       └──  poll /tmp/demo/watch.py:7
                                           └──  sleep .../asyncio/tasks.py:716

A tree needs the await graph to be free of cycles (task A awaiting B while B awaits A);
if it is not, ``pstree`` prints the cycle instead, and ``ps`` still works. ``ps`` prints
one row per task (one per awaiting task, if several await it) in a table 180 columns wide,
shown here in two slices (``cut`` only narrows it for this page). The columns are ``tid``,
the ID of the thread running the task's event loop; ``task id``, the address of the task
object; ``task name``; ``coroutine stack``, where the task is suspended, innermost first;
and for the task awaiting it, if any: ``awaiter chain`` (that task's coroutine stack, also
innermost first), ``awaiter name`` and ``awaiter id`` (``0x0`` when nothing awaits the
task):

.. code-block:: console

   $ python3.14 -m asyncio ps 14925 | cut -c 12-103
   task id              task name            coroutine stack
   --------------------------------------------------------------------------------------------
   0x7f89975d4b90       Task-1               TaskGroup._aexit -> TaskGroup.__aexit__ -> main
   0x7f89975d4d70       watcher              TaskGroup._aexit -> TaskGroup.__aexit__ -> watch
   0x7f89980abc20       archiver             TaskGroup._aexit -> TaskGroup.__aexit__ -> watch
   0x7f89980aba50       poll-feeds           sleep -> poll
   0x7f899753a6d0       poll-mail            sleep -> poll
   0x7f899753aa50       poll-backups         sleep -> poll
   $ python3.14 -m asyncio ps 14925 | cut -c 33-52,105-170
   task name           awaiter chain                                      awaiter name
   --------------------------------------------------------------------------------------
   Task-1
   watcher             TaskGroup._aexit -> TaskGroup.__aexit__ -> main    Task-1
   archiver            TaskGroup._aexit -> TaskGroup.__aexit__ -> main    Task-1
   poll-feeds          TaskGroup._aexit -> TaskGroup.__aexit__ -> watch   watcher
   poll-mail           TaskGroup._aexit -> TaskGroup.__aexit__ -> watch   watcher
   poll-backups        TaskGroup._aexit -> TaskGroup.__aexit__ -> watch   archiver

Name your tasks (``name=`` of ``create_task``): ``Task-1`` tells you nothing in a table of
three hundred.

.. index::
   single: error messages; Can't attach from a Python 3.15 process to a Python 3.14 process
   single: error messages; The specified process cannot be attached to \
due to insufficient permissions.
   single: error messages; AsyncioDebug section not available
   pair: ptrace_scope; python -m asyncio ps

What the commands need:

* **The same Python minor version on both sides.** The tools read the target's internal
  structures, whose layout changes between minor versions, so inspect a 3.14 program with a
  3.14 interpreter. Anything else fails, with the exit status 1:

  .. code-block:: console

     $ python3.15 -m asyncio pstree 14925
     Error retrieving tasks: Can't attach from a Python 3.15 process to a Python 3.14 process

* **Permission to read the other process's memory**, the permission a debugger needs
  (Python's :ref:`python:permission-requirements` page has the details). On Linux that
  means the same user, and then the Yama setting ``kernel.yama.ptrace_scope``
  (``/proc/sys/kernel/yama/ptrace_scope``) decides: at 0 a process may inspect any other of
  its user; at 1 (Ubuntu's default, for instance) only its own descendants, so a command
  typed in a second terminal is refused unless it runs with ``sudo`` or the target was
  started under ``setpriv --ptracer any`` (util-linux 2.41+); at 2 only root may, and at 3
  nobody. In a container the ``ptrace`` system call must be allowed as well (Docker 19.03+
  and containerd 1.6.7+ allow it on Linux 4.8+). On macOS it needs ``sudo``, or a Python
  binary signed with the ``com.apple.security.get-task-allow`` entitlement; on Windows, an
  administrator prompt. Without the permission the command exits with status 1 after
  ``Error: The specified process cannot be attached to due to insufficient permissions.``
  and a link to that page. ``PYTHON_DISABLE_REMOTE_DEBUG=1`` and ``-X disable-remote-debug``
  do not hide a process from these commands: they stop other processes from running code in
  it (:func:`sys.remote_exec`), not from reading it.

* **A target that has imported asyncio.** On 3.14 a Python process without it gives
  ``Error retrieving tasks: AsyncioDebug section not available``; 3.15 prints an empty
  table.

:func:`dump_process_tasks` runs ``python -m asyncio pstree PID`` (or ``ps`` with
``tree=False``) with the running interpreter and returns the text. It raises ``RuntimeError``
with the tool's message when the tool fails (and on Pythons older than 3.14), and
``TimeoutError`` when the tool does not finish in time; the tool's process is killed and
reaped then, and when the caller is cancelled. Use it where a supervisor or a test harness
gives up on a child process: log what the child's tasks were waiting for, then kill it.

.. versionadded:: 3.14
   ``python -m asyncio ps PID`` and ``python -m asyncio pstree PID``. On 3.8–3.13 the
   standard library has no way in from outside: the program has to report on itself, for
   instance by logging :func:`dump_tasks` from a signal handler or a debug endpoint (see
   :ref:`recipes/debugging:Seeing where a task is waiting`).

.. versionchanged:: 3.15
   Both commands take ``--retries N`` (``python -m asyncio pstree --retries 5 PID``): a read
   that fails because the target changed while it was being read is tried again, up to
   ``N`` more times (3 by default). Error messages go to standard error; 3.14 prints the
   message of a failed attach on standard output.

Logging exceptions that nobody retrieved
----------------------------------------

.. index::
   single: exception handler
   single: error messages; Task exception was never retrieved
   single: error messages; Task was destroyed but it is pending!
   single: error messages; Exception in callback ...

When a task fails and nobody awaits it, its exception has nowhere to go. The loop hands it to
its exception handler when the task is garbage-collected, with the message ``Task exception
was never retrieved``; it does the same for a callback that raises (``Exception in callback
...``) and a pending task that is destroyed (``Task was destroyed but it is pending!``). The
default handler logs these to the ``asyncio`` logger. :func:`make_exception_handler` builds a
handler for ``loop.set_exception_handler`` that logs them to your application's logger
instead, one summary line naming the task plus the traceback:

>>> import logging
>>> from recipes.debugging import make_exception_handler
>>> log = logging.getLogger("cookbook.debugging")
>>> to_stdout = logging.StreamHandler(sys.stdout)
>>> to_stdout.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
>>> log.addHandler(to_stdout)
>>> loop.set_exception_handler(make_exception_handler(log))
>>> async def fetch_user(user_id):
...     raise LookupError(f"user {user_id} not found")
>>> lost = asyncio.create_task(fetch_user(42), name="user-42")
>>> await asyncio.sleep(0)
>>> del lost  # the last reference: the exception is now lost for good
ERROR Task exception was never retrieved; task 'user-42' running fetch_user()
Traceback (most recent call last):
...
LookupError: user 42 not found
>>> log.removeHandler(to_stdout)
>>> loop.set_exception_handler(None)  # back to the default handler

The real fix is to await the task, or add a done callback that reads its result; the handler
is the safety net that tells you which one you forgot. :ref:`recipes/errors:Errors in wait`
shows how the error gets lost, and :ref:`recipes/tasks:Keeping fire-and-forget tasks alive`
how to keep such tasks and read their results.

Setting up logging for asyncio
------------------------------

.. index::
   pair: logging; asyncio logger
   single: taskName (log record attribute)

asyncio reports through the standard :mod:`logging` module, on the logger named ``asyncio``:
slow callbacks at WARNING, unhandled exceptions at ERROR, and some internal details at DEBUG.
Only warnings and errors are shown (on standard error) unless logging is configured, so
configure it early in the entry point, before :func:`asyncio.run`:

.. script:: logging_setup.py
   :requires-python: 3.12

   import asyncio
   import logging
   import sys

   logging.basicConfig(
       stream=sys.stdout,  # standard error if left out
       level=logging.INFO,
       format="%(asctime)s %(levelname)s %(name)s [%(taskName)s] %(message)s",
   )
   logging.getLogger("asyncio").setLevel(logging.WARNING)  # DEBUG is very chatty
   log = logging.getLogger("app")


   async def refresh(source):
       log.info("refreshing %s", source)


   async def main():
       log.info("starting")
       await asyncio.create_task(refresh("prices"), name="refresher")


   asyncio.run(main(), debug=True)

.. script-output::

   ... INFO app [Task-1] starting
   ... INFO app [refresher] refreshing prices

.. versionadded:: 3.12
   Log records have a ``taskName`` attribute with the name of the current task, so the format
   above tags every line with the task that logged it; on older versions drop
   ``[%(taskName)s]`` or add the name with a :class:`logging.Filter` that reads
   :func:`asyncio.current_task`.

A short session
---------------

A debug run, as a whole program: logging configured, lost exceptions logged through
:func:`make_exception_handler` with the place where the task was created, and a dump of what
every task is doing:

.. script:: app.py

   import asyncio
   import logging
   import sys

   from recipes.debugging import dump_tasks, make_exception_handler

   logging.basicConfig(stream=sys.stdout, format="%(levelname)s %(message)s")
   log = logging.getLogger("service")


   async def lookup(user_id):
       raise LookupError(f"user {user_id} not found")


   async def main():
       loop = asyncio.get_running_loop()
       loop.set_exception_handler(make_exception_handler(log))
       waiter = asyncio.create_task(asyncio.Event().wait(), name="waiter")
       lost = asyncio.create_task(lookup(42), name="lookup")
       await asyncio.sleep(0)
       print(dump_tasks())
       del lost  # nobody looks at its exception
       waiter.cancel()
       await asyncio.gather(waiter, return_exceptions=True)


   asyncio.run(main(), debug=True)

.. script-output::

   'Task-1' running: main() at app.py:21
   'waiter' waiting: Event.wait() at locks.py:... -> Future
   ERROR Task exception was never retrieved; task 'lookup' running lookup(); created at app.py:19
   Traceback (most recent call last):
   ...
   LookupError: user 42 not found

A library does this
-------------------

.. index::
   single: aiomonitor
   pair: debugging; libraries

`aiomonitor <https://aiomonitor.readthedocs.io/>`__ (from aio-libs) serves
a running program's loop to a terminal or a browser: you start it in the
program (``aiomonitor.start_monitor(loop)``), and it runs in a thread of its
own and listens on ``127.0.0.1`` (ports 20101 to 20103: telnet, web UI, and
a Python console running in the loop), with no password.  Its ``ps`` and
``where`` commands do what :func:`dump_tasks` and ``python -m asyncio ps``
do; it can also cancel a task, and with ``hook_task_factory=True`` keeps a
history of tasks that have finished.  Choose it for a long-running service
you want to inspect and poke while it runs.  It needs code in the program
and eleven direct dependencies, aiohttp among them; :func:`dump_tasks` is
one function you call where you need it, and ``python -m asyncio ps``
(3.14+) needs nothing in the program at all.  (aiodebug, which logs slow
callbacks, has had no release since early 2022.)

See also
--------

* :doc:`/recipes/event_loop`: the ways to turn on debug mode, and crossing threads safely.
* :doc:`/recipes/coroutines`: coroutines that never run, and blocking calls off the loop.
* :doc:`/recipes/tasks`: naming tasks, and keeping the ones you start.
* :doc:`/recipes/errors`: where exceptions go when several tasks run.
* :doc:`/recipes/cancellation`: what to do about a task that waits for ever.
* Python: :doc:`python:library/asyncio-dev` (:ref:`python:asyncio-debug-mode`,
  :ref:`python:asyncio-logger`, :ref:`python:asyncio-coroutine-not-scheduled`),
  :ref:`python:devmode`, :doc:`python:library/asyncio-graph` and
  :ref:`python:asyncio-introspection-tools` (3.14+), and :ref:`python:remote-debugging`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import sys
import types
from typing import Any, Callable, Dict, List, Optional

__all__ = ["dump_tasks", "dump_process_tasks", "make_exception_handler"]

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

    >>> import asyncio
    >>> from recipes.debugging import dump_tasks
    >>> async def sleeper():
    ...     await asyncio.sleep(3600)
    >>> async def report():
    ...     print(dump_tasks())
    >>> napping = asyncio.create_task(sleeper(), name="sleeper")
    >>> await report()
    'sleeper' waiting: sleeper() at ...:2 -> sleep() at tasks.py:... -> Future
    'Task-...' running: <module>() at ...:1

    The ``running`` task is the one that called it.  A task waiting for another
    task names it instead of repeating its chain, and a task that has not had its first turn
    yet is marked ``not started``:

    >>> async def supervise(child):
    ...     await child
    >>> async def start_supervisor():
    ...     task = asyncio.create_task(supervise(napping), name="supervisor")
    ...     print(dump_tasks().splitlines()[1])  # before the task's first turn
    ...     return task
    >>> supervisor = await start_supervisor()
    'supervisor' not started: supervise() at ...:1
    >>> await report()
    'sleeper' waiting: sleeper() at ...:2 -> sleep() at tasks.py:... -> Future
    'supervisor' waiting: supervise() at ...:2 -> Task 'sleeper'
    'Task-...' running: <module>() at ...:1

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


async def dump_process_tasks(pid: int, *, tree: bool = True, timeout: float = 30.0) -> str:
    """Describe the asyncio tasks of another running Python process (Python 3.14+).

    Runs ``python -m asyncio pstree PID`` (``ps PID`` with ``tree=False``) with the running
    interpreter and returns what it printed, without the final newline. The target must run
    the same Python minor version, and the tool needs the permission to read its memory (see
    the chapter). Typical use is a supervisor or a test harness giving up on a child::

        worker = await asyncio.create_subprocess_exec(
            sys.executable, "worker.py", stdout=asyncio.subprocess.PIPE
        )
        try:
            async with asyncio.timeout(10):
                await worker.stdout.readline()  # the worker says it is ready
        except TimeoutError:
            try:
                tasks = await dump_process_tasks(worker.pid, timeout=5)
            except (RuntimeError, TimeoutError) as error:
                tasks = f"(not available: {error})"
            log.error("worker %d is not ready; its tasks:\\n%s", worker.pid, tasks)
            worker.kill()
            await worker.wait()

    The tool is a child of this process, so it is a sibling of such a worker: where Linux's
    ``kernel.yama.ptrace_scope`` is 1 it may not read it unless the worker was started under
    ``setpriv --ptracer any`` (or this process runs as root).

    Raises ``RuntimeError`` on Pythons older than 3.14 and when the tool fails (no such
    process, another Python version, no permission), with the tool's message, and
    ``TimeoutError`` if it does not finish within ``timeout`` seconds. The tool runs in
    isolated mode (``-I``), so a module named ``asyncio.py`` in the current directory cannot
    stand in for it, and in UTF-8 mode, so the tree's lines survive any locale. It is killed
    and reaped on timeout or cancellation.
    """
    if isinstance(pid, bool) or not isinstance(pid, int):
        raise TypeError(f"pid must be an int, got {pid!r}")
    if pid <= 0:
        raise ValueError(f"pid must be a positive process ID, got {pid}")
    if not timeout > 0:  # also rejects NaN
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if sys.version_info < (3, 14):
        raise RuntimeError(
            "dump_process_tasks() runs python -m asyncio ps/pstree, which needs Python 3.14 "
            f"or newer; this is Python {sys.version_info[0]}.{sys.version_info[1]}"
        )
    if not sys.executable:
        raise RuntimeError("sys.executable is unknown, so python -m asyncio cannot be started")
    command = "pstree" if tree else "ps"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-I", "-X", "utf8", "-m", "asyncio", command, str(pid)),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        try:
            async with asyncio.timeout(timeout):
                out, err = await process.communicate()
        except TimeoutError:
            raise TimeoutError(
                f"python -m asyncio {command} {pid} did not finish within {timeout} s"
            ) from None
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    text = out.decode("utf-8", "replace")
    if process.returncode != 0:
        # 3.14 prints its errors on stdout, 3.15 on stderr.
        message = err.decode("utf-8", "replace").strip() or text.strip()
        raise RuntimeError(
            f"python -m asyncio {command} {pid} failed (exit status {process.returncode}): "
            f"{message or 'no message'}"
        )
    return text.rstrip("\n")


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

    >>> import asyncio, logging, sys
    >>> from recipes.debugging import make_exception_handler
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
    >>> async def fail():
    ...     raise RuntimeError("failed")
    >>> job = asyncio.create_task(fail(), name="job")
    >>> await asyncio.sleep(0)
    >>> del job
    Task exception was never retrieved; task 'job' running fail(); created at ...:1
    Traceback (most recent call last):
    ...
    RuntimeError: failed
    >>> loop.set_debug(False)
    >>> log.removeHandler(to_stdout)
    >>> loop.set_exception_handler(None)

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
