"""Everything asyncio does happens on an event loop: one thread that runs ready callbacks one
after another, asks the operating system which sockets are ready for I/O, and fires timers when
they fall due. A task is a callback that resumes its coroutine until the next ``await`` that has
to wait; the coroutine then hands the thread back to the loop. Nothing runs in parallel, so
anything that blocks the thread (``time.sleep``, a CPU-bound loop, a synchronous HTTP call)
stops every other task. This chapter is about starting and stopping that loop correctly on
Python 3.8 to 3.15: one entry point for a program, one loop for several top-level calls, the
legacy ``get_event_loop()`` style and why it now warns or fails, choosing the loop
implementation now that event loop policies are deprecated, the error notebooks raise, the
low-level scheduling calls that libraries still use, and the switches for debug mode.

Starting and stopping a loop is what a whole program does, and ``python -m asyncio`` already
runs a loop of its own, in which :func:`asyncio.run` fails (see
:ref:`recipes/event_loop:Calling asyncio.run from a running loop (notebooks, the asyncio REPL)`).
So most examples of this chapter are scripts: save one as a file, run it with ``python``, and it
prints what is shown under it. The ``>>>`` examples run in the asyncio REPL as usual.

Starting a program with asyncio.run
-----------------------------------

.. index::
   single: asyncio.run
   single: shutdown; what asyncio.run cleans up
   single: error messages; Task <Task pending ...> got Future <Future pending> attached to a different loop
   single: error messages; Event loop is closed

A program needs exactly one place where synchronous code hands over to asynchronous code.
:func:`asyncio.run` is that place: it creates a new loop, runs one coroutine to completion and
returns its result or raises its exception.

.. script:: first_program.py

   import asyncio


   async def main():
       await asyncio.sleep(0.01)
       return "done"


   print(asyncio.run(main()))

.. script-output::

   done

On the way out it tidies up whatever the coroutine left behind, in this order: it cancels the
tasks that are still running and waits for them, so their ``finally`` blocks run; it finishes
async generators that were not exhausted (``loop.shutdown_asyncgens()``); it joins the threads
of the default executor used by ``run_in_executor`` and ``asyncio.to_thread``
(``loop.shutdown_default_executor()``, 3.9+); and it closes the loop.

.. script:: shutdown_demo.py

   import asyncio


   async def heartbeat():
       try:
           await asyncio.sleep(3600)
       finally:
           print("heartbeat cancelled, its cleanup ran")


   async def main():
       asyncio.create_task(heartbeat())  # left running on purpose
       await asyncio.sleep(0)  # let it start
       return "main returned"


   print(asyncio.run(main()))

.. script-output::

   heartbeat cancelled, its cleanup ran
   main returned

That safety net is for mistakes; a program should still stop its own tasks in order (the
:doc:`/recipes/cancellation` chapter shows how, down to
:ref:`recipes/cancellation:Shutting down on SIGINT and SIGTERM`).

.. important::

   Call :func:`asyncio.run` once, at the top of the program, not once per request or per
   function. Each call makes a new loop and closes it at the end, and objects that belong to a
   loop cannot move to the next one: futures, and everything built on them (locks, queues,
   an aiohttp ``ClientSession``, an asyncpg pool). The second loop fails with ``RuntimeError:
   Task ... got Future ... attached to a different loop`` or ``RuntimeError: Event loop is
   closed``.

   .. script:: two_loops.py

      import asyncio


      async def start_job():
          loop = asyncio.get_running_loop()
          job = loop.create_future()
          loop.call_later(0.01, job.set_result, "job finished")
          return job


      async def finish(job):
          return await job


      job = asyncio.run(start_job())
      try:
          asyncio.run(finish(job))  # BUG: a second loop
      except RuntimeError as exc:
          print(exc)

   .. script-output::

      Task <...> got Future <Future pending...> attached to a different loop

.. versionchanged:: 3.9
   :func:`asyncio.run` also shuts down the default executor. On 3.8 its threads are left to
   finish on their own after the loop has closed.

.. versionchanged:: 3.12
   :func:`asyncio.run` takes ``loop_factory=`` to run on another loop implementation.

Running several top-level calls on one loop
-------------------------------------------

.. index::
   single: asyncio.Runner
   single: LoopRunner
   pair: event loop; several top-level calls

Synchronous code that calls asynchronous code more than once (a command-line tool, a GUI
callback, a worker of a job queue, a test) needs the loop, and everything bound to it, to
survive between the calls. :class:`asyncio.Runner` keeps one loop open for several
``run()`` calls and cleans up like :func:`asyncio.run` when the ``with`` block ends.

On 3.8–3.10 use :class:`LoopRunner` from this module, which has the same interface and the same
shutdown sequence (the ``taskgroup`` backport on PyPI also ships a ``Runner``). This program
takes :class:`asyncio.Runner` where it exists and :class:`LoopRunner` elsewhere, so it runs
everywhere. The future made in the first call is still good in the second, an exception leaves
the runner usable, and a task left running is cancelled, its cleanup awaited, when the ``with``
block ends:

.. script:: one_loop_many_calls.py

   import asyncio
   import sys

   if sys.version_info >= (3, 11):
       from asyncio import Runner
   else:  # Python 3.8 to 3.10
       from recipes.event_loop import LoopRunner as Runner


   async def start_job():
       loop = asyncio.get_running_loop()
       job = loop.create_future()
       loop.call_later(0.01, job.set_result, "job finished")
       return job


   async def finish(job):
       return await job


   async def fail():
       raise ValueError("bad input")


   async def poll_forever():
       try:
           await asyncio.sleep(3600)
       finally:
           print("poller stopped")


   async def start_poller():
       return asyncio.create_task(poll_forever())


   with Runner() as runner:
       job = runner.run(start_job())
       print(runner.run(finish(job)))  # the same loop, so the future works
       try:
           runner.run(fail())
       except ValueError as exc:
           print("caught:", exc)
       poller = runner.run(start_poller())
       runner.run(asyncio.sleep(0))  # let the poller start
       print("leaving the with block")
   print("poller cancelled:", poller.cancelled())

.. script-output::

   job finished
   caught: bad input
   leaving the with block
   poller stopped
   poller cancelled: True

After the ``with`` block the runner is closed, and another ``run()`` raises
``RuntimeError: Runner is closed`` (``LoopRunner is closed``).

.. versionadded:: 3.11
   :class:`asyncio.Runner`. Prefer it where 3.11 is the oldest Python you support.

Getting the loop from inside a coroutine
----------------------------------------

.. index::
   single: get_running_loop
   single: error messages; no running event loop

Code that needs the loop itself (to schedule a callback, create a future or hand work to a
thread) asks for it with :func:`asyncio.get_running_loop` at the point of use, instead of
keeping a loop in a global or passing ``loop=`` around:

>>> import asyncio
>>> loop = asyncio.get_running_loop()
>>> loop.is_running()
True

It works only on the loop's own thread, while the loop runs. Anywhere else (module level, a
worker thread, synchronous code after the loop has stopped) there is no running loop:

>>> await loop.run_in_executor(None, asyncio.get_running_loop)
Traceback (most recent call last):
...
RuntimeError: no running event loop

Migrating from get_event_loop() and run_until_complete()
--------------------------------------------------------

.. index::
   single: get_event_loop; deprecated without a loop
   single: run_until_complete
   single: warnings; There is no current event loop
   single: error messages; There is no current event loop in thread 'MainThread'.
   single: warnings; unclosed event loop

Code written before :func:`asyncio.run` existed starts its loop like this::

    loop = asyncio.get_event_loop()
    loop.run_until_complete(main())

Outside a coroutine, ``asyncio.get_event_loop()`` returns the loop set with
``asyncio.set_event_loop()``. If none was set, what happens depends on the Python version:

* 3.8–3.11: in the main thread it silently creates a loop and sets it, which nobody closes.
* 3.12–3.13: the same, but with ``DeprecationWarning: There is no current event loop``.
* 3.14 and later: it raises ``RuntimeError: There is no current event loop in thread
  'MainThread'.``
* Every version raises that ``RuntimeError`` in other threads, and also in the main thread
  once ``asyncio.set_event_loop(None)`` has run, which :func:`asyncio.run` does on its way out.
  Legacy code placed after an :func:`asyncio.run` call therefore fails everywhere.

Inside a coroutine or a callback it returns the running loop on every version, without a
warning, exactly like :func:`asyncio.get_running_loop`.

Here is a one-line legacy script run with warnings turned into errors, as a test suite runs
it. On 3.12 and later it fails; the last line of its error output names the
``DeprecationWarning`` (3.12–3.13) or the ``RuntimeError`` (3.14+):

>>> import subprocess, sys
>>> script = "import asyncio; asyncio.get_event_loop().close()"
>>> done = subprocess.run(
...     [sys.executable, "-W", "error", "-c", script],
...     capture_output=True, text=True, timeout=60,
... )
>>> print(done.returncode, done.stderr.splitlines()[-1])  # doctest: +PY312
1 ...: There is no current event loop...

.. important::

   ``loop = asyncio.get_event_loop()`` at module level does not prepare the loop that
   :func:`asyncio.run` will use: :func:`asyncio.run` always makes a new one. Settings applied
   to the old loop (``set_debug``, an exception handler) are lost, and the old loop is never
   closed, so ``-X dev`` reports ``ResourceWarning: unclosed event loop``.

The replacement is :func:`asyncio.run` (or :class:`LoopRunner` for several calls). Where the
loop object itself is needed, create it explicitly and close it in ``finally``; this runs the
same on every version:

.. script:: explicit_loop.py

   import asyncio


   async def answer():
       await asyncio.sleep(0)
       return 42


   loop = asyncio.new_event_loop()
   try:
       print(loop.run_until_complete(answer()))
   finally:
       loop.close()

.. script-output::

   42

A legacy library that calls ``asyncio.get_event_loop()`` from synchronous code keeps working,
without warnings, if the loop is set as the current one while it runs:

.. script:: legacy_library.py

   import asyncio


   def legacy_library_call():
       # old synchronous code that asks for "the" event loop
       return asyncio.get_event_loop()


   loop = asyncio.new_event_loop()
   asyncio.set_event_loop(loop)
   try:
       print(legacy_library_call() is loop)
   finally:
       asyncio.set_event_loop(None)
       loop.close()

.. script-output::

   True

.. versionchanged:: 3.12
   ``asyncio.get_event_loop()`` emits :exc:`DeprecationWarning` when it would create a loop.
   The early bug-fix releases 3.10.0–3.10.9 and 3.11.0–3.11.1 also warned (3.10.0–3.10.8 and
   3.11.0 even when a loop had been set); later 3.10 and 3.11 releases do not warn.

.. versionchanged:: 3.14
   It raises :exc:`RuntimeError` instead of creating a loop, and the event loop policy system
   (``set_event_loop_policy``) is deprecated: see the next section.

Choosing the loop implementation without policies
-------------------------------------------------

.. index::
   single: event loop policy; deprecated
   single: loop_factory
   single: uvloop
   single: SelectorEventLoop; on Windows
   single: warnings; 'asyncio.get_event_loop_policy' is deprecated
   single: iscoroutinefunction; deprecated in asyncio

Some programs need another loop than the default one: ``uvloop`` for speed, or on Windows a
:class:`asyncio.SelectorEventLoop` for a library that calls ``loop.add_reader()``, which the
default ``ProactorEventLoop`` does not implement. For years the way to get one was an *event
loop policy*, installed before the program started::

    # uvloop for every loop of the program (uvloop.install() does the same,
    # and uvloop itself deprecates install() on 3.12+)
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(main())

    # a selector loop on Windows, for a library that needs add_reader()
    if sys.platform == "win32":
        asyncio.set_event_loop_policy(asyncio.WindowsSelectorEventLoopPolicy())
    asyncio.run(main())

A policy is global to the process. It decides the loop of every later :func:`asyncio.run`, in
every thread, for every library and every test, until something resets it. Python 3.14
deprecates the whole system, and 3.16 is to remove it: ``asyncio.get_event_loop_policy()``,
``asyncio.set_event_loop_policy()``, ``AbstractEventLoopPolicy``, ``DefaultEventLoopPolicy``,
``WindowsSelectorEventLoopPolicy`` and ``WindowsProactorEventLoopPolicy``. Calling the two
functions, or merely reading one of the class names from the ``asyncio`` module, emits
:exc:`DeprecationWarning`, so the setup above fails under ``-W error`` or pytest's
``filterwarnings = error`` on 3.14 and later:

>>> import warnings
>>> with warnings.catch_warnings(record=True) as caught:  # doctest: +PY314
...     warnings.simplefilter("always")
...     policy = asyncio.get_event_loop_policy()
...     policy_class = asyncio.DefaultEventLoopPolicy
>>> for warning in caught:  # doctest: +PY314
...     print(warning.category.__name__, "-", warning.message)
DeprecationWarning - 'asyncio.get_event_loop_policy' is deprecated and ...
DeprecationWarning - 'asyncio.DefaultEventLoopPolicy' is deprecated and ...

The replacement names the loop where it is started. ``loop_factory`` is any callable that
takes no arguments and returns a new event loop: a loop class, ``uvloop.new_event_loop``, or a
function of your own. It applies to that one run and nothing else. With a factory asyncio does
not consult the policy at all, so a policy that some library still installs cannot change the
loop either. :func:`asyncio.run` takes it from 3.12 on, :class:`asyncio.Runner` already on
3.11:

.. script:: loop_factory.py
   :requires-python: 3.12

   import asyncio


   class TracingLoop(asyncio.SelectorEventLoop):
       pass  # stands in for another implementation, such as uvloop's


   async def loop_name():
       return type(asyncio.get_running_loop()).__name__


   print(asyncio.run(loop_name(), loop_factory=TracingLoop))
   with asyncio.Runner(loop_factory=TracingLoop) as runner:  # 3.11+
       print(runner.run(loop_name()))

.. script-output::

   TracingLoop
   TracingLoop

So the two setups above become ``asyncio.run(main(), loop_factory=uvloop.new_event_loop)``
(or ``uvloop.run(main())``, which uvloop 0.18 and later provide) and
``asyncio.run(main(), loop_factory=asyncio.SelectorEventLoop)``. :class:`asyncio.EventLoop`
(3.13+) names the platform's default implementation, for a program that wants the default loop
with no policy involved.

Code that must also run on 3.8–3.11 uses :func:`run_with_loop_factory`: it calls
``asyncio.run(..., loop_factory=...)`` on 3.12+, :class:`asyncio.Runner` on 3.11 and
:class:`LoopRunner` on 3.8–3.10, and emits no warning on any of them. This replaces the old
``try: import uvloop; uvloop.install()`` idiom, taking uvloop's loop where it is installed and
asyncio's own loop elsewhere (uvloop is not installed where this cookbook is tested). For
several top-level calls on one loop, pass the factory to :class:`asyncio.Runner` (3.11+) or
:class:`LoopRunner`, which runs everywhere:

.. script:: uvloop_where_installed.py

   import asyncio

   from recipes.event_loop import LoopRunner, run_with_loop_factory

   try:
       from uvloop import new_event_loop
   except ImportError:  # not installed, or on Windows
       from asyncio import new_event_loop


   async def main():
       await asyncio.sleep(0.01)
       return "done"


   print(run_with_loop_factory(main(), loop_factory=new_event_loop))
   with LoopRunner(loop_factory=new_event_loop) as runner:
       print(runner.run(main()), runner.run(main()))

.. script-output::

   done
   done done

What replaces what:

* ``asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())`` and ``uvloop.install()``:
  ``loop_factory=uvloop.new_event_loop``, or ``uvloop.run(main())``.
* ``asyncio.set_event_loop_policy(asyncio.WindowsSelectorEventLoopPolicy())``:
  ``loop_factory=asyncio.SelectorEventLoop``. On Unix that is the default implementation
  anyway, so the program can pass it on every platform. (A selector loop on Windows cannot run
  subprocesses.)
* A policy subclass whose ``new_event_loop()`` configures each loop (a debug threshold, an
  exception handler): a function that creates and configures the loop, passed as
  ``loop_factory`` (the script below).
* ``asyncio.get_event_loop_policy().new_event_loop()``: :func:`asyncio.new_event_loop`, or a
  call of the factory the program already passes around.
* ``asyncio.get_event_loop_policy().get_event_loop()``: :func:`asyncio.get_running_loop`
  inside coroutines and callbacks (see the previous section for synchronous code).
* ``asyncio.set_event_loop_policy(None)`` in a test's teardown: nothing to undo, since a
  factory affects only its own run. :class:`unittest.IsolatedAsyncioTestCase` takes the
  factory as its class attribute ``loop_factory`` (3.13+). pytest-asyncio 1.4 deprecated
  overriding its ``event_loop_policy`` fixture; instead, a hook
  ``pytest_asyncio_loop_factories(config, item)`` in ``conftest.py`` returns a mapping of
  names to loop factories, and ``@pytest.mark.asyncio(loop_factories=[...])`` picks some of
  them for one test.
* ``asyncio.iscoroutinefunction(f)``, deprecated in 3.14 as well:
  :func:`inspect.iscoroutinefunction`.

A factory that configures its loop, in place of a policy's ``new_event_loop()``:

.. script:: configured_loop.py

   import asyncio

   from recipes.event_loop import run_with_loop_factory


   def new_event_loop():
       loop = asyncio.new_event_loop()
       loop.slow_callback_duration = 0.5  # log callbacks slower than this
       return loop


   async def main():
       loop = asyncio.get_running_loop()
       return loop.slow_callback_duration, loop.get_debug()


   print(run_with_loop_factory(main(), loop_factory=new_event_loop, debug=True))

.. script-output::

   (0.5, True)

The :mod:`inspect` function gives the same answer on every version, without a warning:

>>> import inspect
>>> async def main():
...     pass
>>> inspect.iscoroutinefunction(main), inspect.iscoroutinefunction(print)
(True, False)

:func:`asyncio.set_event_loop`, :func:`asyncio.new_event_loop`,
:func:`asyncio.get_running_loop` and :func:`asyncio.get_event_loop` are not deprecated; only
the last changed behaviour (see the previous section).

.. versionchanged:: 3.12
   :func:`asyncio.run` takes ``loop_factory=``; :class:`asyncio.Runner` has taken it since
   3.11.

.. deprecated:: 3.14
   The event loop policy system and ``asyncio.iscoroutinefunction()``, both to be removed in
   3.16. Using either emits :exc:`DeprecationWarning`.

Calling asyncio.run from a running loop (notebooks, the asyncio REPL)
---------------------------------------------------------------------

.. index::
   single: error messages; asyncio.run() cannot be called from a running event loop
   single: asyncio REPL; asyncio.run
   single: Jupyter; asyncio.run
   single: nest_asyncio
   single: run_in_new_thread

Jupyter, IPython and ``python -m asyncio`` already run an event loop, and so does any code
inside a coroutine. Calling :func:`asyncio.run` there fails, because one thread cannot run two
loops at once:

>>> async def answer():
...     await asyncio.sleep(0)
...     return 42
>>> async def notebook_cell():
...     coro = answer()
...     try:
...         asyncio.run(coro)
...     except RuntimeError as exc:
...         coro.close()  # it never started: close it, or it warns
...         print(exc)
>>> await notebook_cell()
asyncio.run() cannot be called from a running event loop

In a notebook cell or the asyncio REPL, await the coroutine directly: top-level ``await``
works there.

>>> await answer()
42

When synchronous code that must return a value (a library function, a callback of a framework
you do not control) is reached from a running loop, :func:`run_in_new_thread` runs the
coroutine on a fresh loop in a new thread and waits for it:

>>> from recipes.event_loop import run_in_new_thread
>>> run_in_new_thread(answer())
42

.. important::

   :func:`run_in_new_thread` blocks the calling thread, and therefore the caller's event loop,
   until the coroutine finishes. Use it at the edge between synchronous and asynchronous code,
   never inside a coroutine that could simply ``await``. Patching asyncio to allow nested
   loops (the ``nest_asyncio`` package) is a global change with its own failure modes; a
   thread keeps the two loops independent.

Scheduling callbacks: call_soon, call_later and call_at
-------------------------------------------------------

.. index::
   single: call_soon
   single: call_later
   single: call_at
   single: loop.time
   single: error messages; coroutines cannot be used with call_soon()

Under tasks and futures the loop runs plain callbacks. ``loop.call_soon`` queues one for the
next iteration, ``loop.call_later`` after a delay in seconds, and ``loop.call_at`` at an
absolute time on the loop's own clock (``loop.time()``, not ``time.time()``):

>>> async def schedule_three():
...     loop = asyncio.get_running_loop()
...     fired = []
...     loop.call_later(0.2, fired.append, "call_later(0.2)")
...     loop.call_at(loop.time() + 0.1, fired.append, "call_at(now + 0.1)")
...     loop.call_soon(fired.append, "call_soon")
...     await asyncio.sleep(0.3)
...     return fired
>>> await schedule_three()
['call_soon', 'call_at(now + 0.1)', 'call_later(0.2)']

Each returns a handle whose ``cancel()`` unschedules the callback:

>>> loop = asyncio.get_running_loop()
>>> handle = loop.call_later(10, print, "never printed")
>>> handle.cancel()
>>> handle.cancelled()
True

.. important::

   Callbacks are plain functions, and their return value is thrown away. Passing a coroutine
   function makes the loop call it and drop the coroutine, which surfaces much later as
   ``RuntimeWarning: coroutine '...' was never awaited``; only debug mode turns the mistake
   into ``TypeError: coroutines cannot be used with call_soon()`` at the call. To run a
   coroutine, create a task (and keep a reference to it: see
   :ref:`recipes/tasks:Keeping fire-and-forget tasks alive`).

Crossing threads: run_in_executor and call_soon_threadsafe
----------------------------------------------------------

.. index::
   single: call_soon_threadsafe
   single: run_in_executor
   single: run_coroutine_threadsafe
   pair: threads; event loop

Blocking work goes to a thread pool with ``loop.run_in_executor(None, func, *args)``, which
returns an awaitable; use ``functools.partial`` for keyword arguments. (3.9+ has the shorter
``asyncio.to_thread(func, *args, **kwargs)``, and the coroutines chapter's
:func:`recipes.coroutines.run_in_thread` gives it to 3.8 as well: see
:ref:`recipes/coroutines:Running blocking code off the loop`.)

>>> import hashlib
>>> def checksum(data):
...     return hashlib.sha256(data).hexdigest()[:12]
>>> await loop.run_in_executor(None, checksum, b"cookbook")
'ec134bf7bda5'

The other direction, a thread handing a result to the loop, must go through
``loop.call_soon_threadsafe``: it is the only loop method that is safe to call from another
thread, and it wakes the loop up. Here a worker thread fills in a future that a coroutine
awaits:

>>> import threading
>>> result = loop.create_future()
>>> def worker():
...     total = sum(range(1000))  # stands for blocking work
...     loop.call_soon_threadsafe(result.set_result, total)
>>> thread = threading.Thread(target=worker)
>>> thread.start()
>>> await asyncio.wait_for(result, timeout=5)
499500
>>> thread.join()

To run a whole coroutine from another thread and get its result back, use
:func:`asyncio.run_coroutine_threadsafe`, which returns a :class:`concurrent.futures.Future`.

Turning on debug mode
---------------------

.. index::
   single: debug mode; turning on
   single: PYTHONASYNCIODEBUG
   single: python -X dev

Debug mode makes the loop check for common mistakes: callbacks that hold the thread for more
than 100 ms are logged, never-awaited coroutines report where they were created, and loop
methods called from the wrong thread raise. It is off by default because the checks cost
time. Four ways to turn it on, from the most local to the most global:

* ``loop.set_debug(True)`` on a loop you hold (for example the running one);
* ``asyncio.run(main(), debug=True)``, or ``asyncio.Runner(debug=True)`` /
  ``LoopRunner(debug=True)``;
* the environment variable ``PYTHONASYNCIODEBUG=1``;
* Python's development mode, ``python -X dev`` (it also shows ``ResourceWarning``).

In the REPL, switch it on for the running loop, and off again:

>>> async def debug_enabled():
...     return asyncio.get_running_loop().get_debug()
>>> loop = asyncio.get_running_loop()
>>> loop.set_debug(True)
>>> await debug_enabled()
True
>>> loop.set_debug(False)

In a program, ask :func:`asyncio.run` for it:

.. script:: debug_run.py

   import asyncio


   async def debug_enabled():
       return asyncio.get_running_loop().get_debug()


   print(asyncio.run(debug_enabled(), debug=True))

.. script-output::

   True

The :doc:`/recipes/debugging` chapter shows what debug mode reports and how to read it.

Putting it together
-------------------

A command-line tool that keeps one loop for its whole life and blocks on each call, on every
Python from 3.8 on:

.. script:: settings_tool.py

   import asyncio

   from recipes.event_loop import LoopRunner


   async def fetch_setting(name):
       await asyncio.sleep(0.01)  # stands for a network call
       return {"retries": 3, "timeout": 5.0}[name]


   def main():  # synchronous, like the rest of the tool
       with LoopRunner() as runner:
           retries = runner.run(fetch_setting("retries"))
           timeout = runner.run(fetch_setting("timeout"))
       print(retries, timeout)
       try:
           runner.run(fetch_setting("retries"))
       except RuntimeError as exc:
           print(exc)


   main()

.. script-output::

   3 5.0
   LoopRunner is closed

A library does this
-------------------

.. index::
   single: anyio; blocking portal
   pair: event loop in a thread; libraries

For :func:`run_in_new_thread`, anyio has a *blocking portal*: ``with
anyio.from_thread.start_blocking_portal() as portal:`` runs an asyncio loop
in a new thread, and ``portal.call(async_fn, *args)`` blocks until the
result is there, even when the calling thread runs a loop of its own (a
notebook cell, say).  The loop stays up until the block ends, so several
calls can share objects bound to it; leaving the block normally waits for
tasks still running there.  It takes a function and its arguments, not a
coroutine object, and has no ``timeout``.  Choose it to keep one loop for
many calls from synchronous code (see also
:class:`recipes.parallelism.EventLoopThread`); for one call,
:func:`run_in_new_thread` needs nothing but asyncio.

See also
--------

* :doc:`/recipes/coroutines`: what the loop runs, and how blocking code stalls it.
* :doc:`/recipes/tasks`: starting work on the loop, and eager tasks, which change when it
  runs.
* :doc:`/recipes/cancellation`: stopping a program's tasks in order, on a signal or at
  shutdown.
* :doc:`/recipes/debugging`: what debug mode reports, and tools to inspect a running loop.
* Python documentation: :doc:`python:library/asyncio-runner`,
  :doc:`python:library/asyncio-eventloop`, :doc:`python:library/asyncio-policy`,
  :ref:`python:asyncio-debug-mode`, :ref:`python:asyncio-multithreading` and
  :ref:`python:asyncio-cli`.
"""  # noqa: E501

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
import sys
import threading
from typing import Any, Awaitable, Callable, Coroutine, List, Optional, Tuple, Type, TypeVar

__all__ = ["LoopRunner", "run_with_loop_factory", "run_in_new_thread"]

T = TypeVar("T")

# How long close() waits for the default executor's threads on 3.12+ (asyncio.Runner's value);
# 3.9-3.11 and loops that do not derive from asyncio.BaseEventLoop wait without a limit.
_EXECUTOR_SHUTDOWN_TIMEOUT = 300.0


def _has_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class LoopRunner:
    """Run several coroutines, one after another, on one event loop that closes cleanly.

    A copy of :class:`asyncio.Runner` (3.11+) that also runs on 3.8–3.10. Use it as a context
    manager in synchronous code; every :meth:`run` call uses the same loop, so objects bound to
    the loop (futures, sessions, pools, scheduled callbacks) survive from one call to the next.
    :ref:`recipes/event_loop:Running several top-level calls on one loop` shows it in a whole
    program, and :ref:`recipes/event_loop:Putting it together` in a command-line tool.

    Leaving the ``with`` block (or calling :meth:`close`) shuts down like :func:`asyncio.run`:
    tasks still running are cancelled and awaited, so their cleanup runs, then async
    generators and the default executor are shut down and the loop is closed.

    ``debug=True`` turns on the loop's debug mode (``None`` leaves the default, which honours
    ``PYTHONASYNCIODEBUG`` and ``-X dev``). ``loop_factory`` makes the loop, for example an
    ``uvloop`` loop; without it a new default loop is created and set as the current loop while
    the runner is open, as :class:`asyncio.Runner` does.

    It drives a loop of its own, so it cannot be used where a loop already runs (in a
    coroutine, a notebook cell or ``python -m asyncio``): :meth:`run` and :meth:`close` raise
    :exc:`RuntimeError` there. Await the coroutine instead, or hand it to
    :func:`run_in_new_thread`.

    Differences from :class:`asyncio.Runner`: Ctrl-C is not turned into cancellation of the
    running coroutine (``KeyboardInterrupt`` propagates out of :meth:`run`, as it did from
    :func:`asyncio.run` before 3.11, and closing still cancels and awaits leftover tasks), and
    on 3.8–3.10 each :meth:`run` starts from a copy of the runner's ``contextvars`` context, so
    a context variable set in one call is not seen by the next (on 3.11+ it is, as with
    :class:`asyncio.Runner`).
    """

    def __init__(
        self,
        *,
        debug: Optional[bool] = None,
        loop_factory: Optional[Callable[[], asyncio.AbstractEventLoop]] = None,
    ) -> None:
        if loop_factory is not None and not callable(loop_factory):
            raise TypeError(f"loop_factory must be callable, got {loop_factory!r}")
        self._debug = debug
        self._loop_factory = loop_factory
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._context: Optional[contextvars.Context] = None
        self._closed = False
        self._set_event_loop = False

    def __enter__(self) -> LoopRunner:
        self._lazy_init()
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        traceback: object,
    ) -> None:
        self.close()

    def _lazy_init(self) -> asyncio.AbstractEventLoop:
        if self._closed:
            raise RuntimeError("LoopRunner is closed")
        if self._loop is not None:
            return self._loop
        if self._loop_factory is None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._set_event_loop = True
        else:
            loop = self._loop_factory()
        if self._debug is not None:
            loop.set_debug(self._debug)
        self._loop = loop
        self._context = contextvars.copy_context()
        return loop

    def get_loop(self) -> asyncio.AbstractEventLoop:
        """Return the runner's loop, creating it on first use.

        It is the loop that every :meth:`run` call uses. After :meth:`close` the loop is gone,
        and this raises ``RuntimeError: LoopRunner is closed``.
        """
        return self._lazy_init()

    def run(self, coro: Awaitable[T]) -> T:
        """Run ``coro`` to completion on the runner's loop and return its result.

        An exception raised by the coroutine propagates, and the runner stays usable for the
        next call (:ref:`recipes/event_loop:Running several top-level calls on one loop` shows
        both).

        Like :class:`asyncio.Runner` on 3.14+, it takes any awaitable: a coroutine, a future
        or task of the runner's loop, or an object with ``__await__``. Anything else, such as
        the coroutine function instead of a call of it, is rejected with ``TypeError: an
        awaitable is required, got <function ...>``. Calling it from a running loop raises
        :exc:`RuntimeError`, and so does calling it after :meth:`close`. In these error cases
        a coroutine passed in is closed, so it does not also warn that it was never awaited.

        .. versionchanged:: 3.14
           :func:`asyncio.run` and :meth:`asyncio.Runner.run` accept any awaitable; on
           3.11–3.13 :meth:`asyncio.Runner.run` raises :exc:`ValueError` for anything but a
           coroutine. :class:`LoopRunner` behaves as 3.14 does on every version.
        """
        if not inspect.isawaitable(coro):
            raise TypeError(f"an awaitable is required, got {coro!r}")
        main: Coroutine[Any, Any, T] = coro if asyncio.iscoroutine(coro) else _await(coro)
        if _has_running_loop():
            main.close()
            raise RuntimeError("LoopRunner.run() cannot be called from a running event loop")
        try:
            loop = self._lazy_init()
        except BaseException:
            main.close()
            raise
        context = self._context
        assert context is not None  # set together with the loop
        if sys.version_info >= (3, 11):
            task = loop.create_task(main, context=context)
        else:
            task = context.run(loop.create_task, main)
        return loop.run_until_complete(task)

    def close(self) -> None:
        """Cancel leftover tasks, shut down async generators and the executor, close the loop.

        Use it in ``finally`` when a ``with`` block does not fit::

            runner = LoopRunner()
            try:
                runner.run(main())
            finally:
                runner.close()

        Calling it again does nothing, and a runner that never made its loop just becomes
        closed. It needs to run the loop, so it raises :exc:`RuntimeError` when called from a
        coroutine, and leaves the runner open for a later call from synchronous code.
        """
        if self._closed:
            return
        loop = self._loop
        if loop is None:
            self._closed = True
            return
        if loop.is_running() or _has_running_loop():
            raise RuntimeError("LoopRunner.close() cannot be called from a running event loop")
        try:
            _cancel_leftover_tasks(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            if sys.version_info >= (3, 12) and isinstance(loop, asyncio.BaseEventLoop):
                timeout = _EXECUTOR_SHUTDOWN_TIMEOUT
                loop.run_until_complete(loop.shutdown_default_executor(timeout))
            elif sys.version_info >= (3, 9):
                loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            if self._set_event_loop:
                asyncio.set_event_loop(None)
            loop.close()
            self._loop = None
            self._closed = True


async def _await(awaitable: Awaitable[T]) -> T:
    return await awaitable


def _cancel_leftover_tasks(loop: asyncio.AbstractEventLoop) -> None:
    leftovers = [task for task in asyncio.all_tasks(loop) if not task.done()]
    if not leftovers:
        return
    for task in leftovers:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
    for task in leftovers:
        if task.cancelled():
            continue
        exc = task.exception()
        if exc is not None:
            loop.call_exception_handler(
                {
                    "message": "unhandled exception during LoopRunner shutdown",
                    "exception": exc,
                    "task": task,
                }
            )


def run_with_loop_factory(
    main: Coroutine[Any, Any, T],
    *,
    loop_factory: Optional[Callable[[], asyncio.AbstractEventLoop]] = None,
    debug: Optional[bool] = None,
) -> T:
    """Run the coroutine ``main`` on a loop made by ``loop_factory`` and return its result.

    ``asyncio.run(main, loop_factory=...)`` for every Python from 3.8 on, without the event
    loop policies that 3.14 deprecates. It calls :func:`asyncio.run` on 3.12+,
    :class:`asyncio.Runner` on 3.11 and :class:`LoopRunner` on 3.8–3.10, so it cleans up the
    same way on all of them: leftover tasks are cancelled and awaited, async generators and the
    default executor are shut down, and the loop is closed.

    ``loop_factory`` is a callable that takes no arguments and returns a new event loop: a loop
    class such as :class:`asyncio.SelectorEventLoop`, ``uvloop.new_event_loop``, or a function
    that also configures the loop, which is what a custom policy's ``new_event_loop()`` used to
    do. :ref:`recipes/event_loop:Choosing the loop implementation without policies` shows both
    in whole programs.

    With ``loop_factory=None`` it makes a default loop with :func:`asyncio.new_event_loop`
    and sets it as the current loop while it runs, as :func:`asyncio.run` does. ``debug``
    turns the loop's debug mode on (``True``) or off (``False``); ``None`` leaves it to
    ``PYTHONASYNCIODEBUG`` and ``-X dev``.

    Mistakes are reported before ``main`` starts, and a coroutine that is refused is closed, so
    it does not also warn that it was never awaited. ``main`` must be a coroutine object (as
    :func:`asyncio.run` requires before 3.14; since then it also takes other awaitables), so
    passing the function raises ``TypeError: run_with_loop_factory() needs a coroutine object,
    got <function ...> (call the function to get one)``. ``loop_factory`` must be a callable,
    and what it returns an :class:`asyncio.AbstractEventLoop`, which is how passing a policy
    class such as ``uvloop.EventLoopPolicy`` instead of ``uvloop.new_event_loop`` is caught:
    ``TypeError: loop_factory must return a new event loop, but <class ...> returned <...>``.

    Like :func:`asyncio.run`, it refuses to run inside a running event loop (a coroutine, a
    notebook cell, the asyncio REPL) with :exc:`RuntimeError`; :func:`run_in_new_thread` is
    the way out there. On 3.11+ Ctrl-C cancels ``main`` and then raises
    :exc:`KeyboardInterrupt`, as :class:`asyncio.Runner` does; on 3.8–3.10 the
    :exc:`KeyboardInterrupt` propagates at once, and the leftover tasks, ``main`` among them,
    are still cancelled and awaited before the loop closes.
    """
    if not asyncio.iscoroutine(main):
        hint = " (call the function to get one)" if inspect.iscoroutinefunction(main) else ""
        raise TypeError(f"run_with_loop_factory() needs a coroutine object, got {main!r}{hint}")
    if loop_factory is not None and not callable(loop_factory):
        main.close()
        raise TypeError(
            f"loop_factory must be a callable that returns a new event loop, got {loop_factory!r}"
        )
    if _has_running_loop():
        main.close()
        raise RuntimeError("run_with_loop_factory() cannot be called from a running event loop")
    factory = None if loop_factory is None else _checked_loop_factory(loop_factory)
    try:
        if sys.version_info >= (3, 12):
            return asyncio.run(main, debug=debug, loop_factory=factory)
        if sys.version_info >= (3, 11):
            with asyncio.Runner(debug=debug, loop_factory=factory) as runner:
                return runner.run(main)
        with LoopRunner(debug=debug, loop_factory=factory) as loop_runner:
            return loop_runner.run(main)
    except BaseException:
        _close_if_not_started(main)
        raise


def _checked_loop_factory(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
) -> Callable[[], asyncio.AbstractEventLoop]:
    def new_event_loop() -> asyncio.AbstractEventLoop:
        loop = loop_factory()
        if not isinstance(loop, asyncio.AbstractEventLoop):
            raise TypeError(
                f"loop_factory must return a new event loop, but {loop_factory!r} "
                f"returned {loop!r}"
            )
        return loop

    return new_event_loop


def _close_if_not_started(coro: Coroutine[Any, Any, Any]) -> None:
    """Close a native coroutine that never ran, so it does not warn "never awaited"."""
    if inspect.iscoroutine(coro) and inspect.getcoroutinestate(coro) == inspect.CORO_CREATED:
        coro.close()


def run_in_new_thread(
    coro: Coroutine[Any, Any, T],
    *,
    timeout: Optional[float] = None,
    debug: Optional[bool] = None,
) -> T:
    """Run ``coro`` on a fresh event loop in a new thread and block until it returns.

    For synchronous code that must produce a value but may be reached from a running loop,
    where :func:`asyncio.run` raises ``RuntimeError: asyncio.run() cannot be called from a
    running event loop`` (a Jupyter cell, the asyncio REPL, a framework callback):

    >>> import asyncio
    >>> from recipes.event_loop import run_in_new_thread
    >>> async def add(a, b):
    ...     await asyncio.sleep(0.01)
    ...     return a + b
    >>> run_in_new_thread(add(2, 3))
    5

    The coroutine's exception is re-raised in the caller. ``timeout`` (seconds) cancels the
    coroutine, lets its cleanup run and raises :exc:`asyncio.TimeoutError` (the built-in
    :exc:`TimeoutError` on 3.11+):

    >>> async def nap():
    ...     await asyncio.sleep(10)
    >>> run_in_new_thread(nap(), timeout=0.01)  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ...
    TimeoutError

    The thread's loop is closed like :func:`asyncio.run` closes its loop, ``debug`` sets its
    debug mode, and the caller's ``contextvars`` are visible to the coroutine. If the caller
    is interrupted while waiting (Ctrl-C), the coroutine is cancelled before the exception
    propagates. The caller's thread, and any loop running on it, is blocked until the
    coroutine finishes, so keep this at the boundary between synchronous and asynchronous
    code.
    """
    if not asyncio.iscoroutine(coro):
        raise TypeError(f"run_in_new_thread() expects a coroutine object, got {coro!r}")
    if timeout is not None and not timeout > 0:
        coro.close()
        raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout!r}")

    outcome: concurrent.futures.Future[T] = concurrent.futures.Future()
    running: List[Tuple[asyncio.AbstractEventLoop, asyncio.Task[Any]]] = []
    abandoned = threading.Event()

    async def supervised() -> T:
        task = asyncio.current_task()
        if task is not None:
            running.append((asyncio.get_running_loop(), task))
        if abandoned.is_set():  # the caller gave up before the loop started
            coro.close()
            raise asyncio.CancelledError
        if timeout is None:
            return await coro
        return await asyncio.wait_for(coro, timeout)

    def target() -> None:
        try:
            with LoopRunner(debug=debug) as runner:
                value = runner.run(supervised())
        except BaseException as exc:  # handed over to the caller, which re-raises it
            outcome.set_exception(exc)
        else:
            outcome.set_result(value)

    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(target,), name="run_in_new_thread")
    thread.start()
    try:
        thread.join()
    except BaseException:  # e.g. KeyboardInterrupt in the caller: stop the coroutine too
        abandoned.set()
        for loop, task in running:
            try:
                loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:  # that loop has already closed
                pass
        raise
    return outcome.result()
