"""A test of asynchronous code has to run a coroutine somewhere, and it fails in
ways a synchronous test never does: it passes without awaiting anything, it
waits out real timeouts and backoff delays, it depends on which task happens to
run first, or it leaves a task running that breaks the next test.  This
chapter runs coroutines under pytest (with pytest-asyncio) and under
:mod:`unittest`, replaces async dependencies with
:class:`~unittest.mock.AsyncMock`, skips the waiting with a virtual clock,
tests cancellation and timeouts without races, and gives four helpers that work
with any test framework: :func:`no_leaked_tasks`,
:func:`no_unawaited_coroutines`, :func:`assert_cancels` and
:class:`AwaitRecorder`.  The helpers need only the standard library; the example
test files need pytest, pytest-asyncio and looptime, and are run as real
pytest sessions by this project's own tests, on every Python it supports.

Running async tests with pytest-asyncio
---------------------------------------

.. index::
   single: pytest-asyncio
   pair: pytest; asyncio marker
   pair: pytest-asyncio; strict mode
   pair: pytest-asyncio; async fixtures
   single: error messages; async def functions are not natively supported.
   single: warnings; PytestUnhandledCoroutineWarning

pytest calls test functions; it does not run coroutines.  The pytest-asyncio
plugin does: a test marked ``@pytest.mark.asyncio`` runs as a task on an event
loop that the plugin creates for it, and a fixture declared with
``@pytest_asyncio.fixture`` may be an ``async def``, with setup before its
``yield`` and teardown after it, on that same loop.  Configure the plugin
explicitly, in ``pytest.ini`` (or the ``[pytest]`` section of ``tox.ini``, or
``[tool.pytest.ini_options]`` of ``pyproject.toml``):

.. code-block:: ini
   :caption: pytest.ini

   [pytest]
   asyncio_mode = strict
   asyncio_default_fixture_loop_scope = function
   filterwarnings =
       error

*Strict* mode (the default) touches only what is marked, so pytest-asyncio can
share a test suite with anyio or trio tests; ``asyncio_mode = auto`` marks every
``async def`` test and fixture for you.  Leaving
``asyncio_default_fixture_loop_scope`` unset makes pytest-asyncio 0.24 and later
warn at every run (``The configuration option
"asyncio_default_fixture_loop_scope" is unset.``).  With warnings turned into
errors, as they should be in a test suite, pytest 9 then stops the run with
an ``INTERNALERROR`` before the first test; under pytest 8 (Python 3.8 and
3.9 here) the run carries on.

A test file that uses the marker, an async fixture with teardown, and a
timeout, plus one test that forgot its marker:

.. code-block:: python
   :caption: test_greeter.py

   import asyncio

   import pytest
   import pytest_asyncio


   async def greet(name, delay=0.01):
       await asyncio.sleep(delay)
       return f"hello, {name}"


   @pytest.mark.asyncio
   async def test_greet():
       assert await greet("ada") == "hello, ada"


   @pytest_asyncio.fixture
   async def inbox():
       queue = asyncio.Queue()
       yield queue
       # teardown, on the test's loop: fail a test that left work behind
       assert queue.empty(), "the test left messages in the inbox"


   @pytest.mark.asyncio
   async def test_greeting_goes_to_the_inbox(inbox):
       await inbox.put(await greet("bob"))
       assert inbox.get_nowait() == "hello, bob"


   @pytest.mark.asyncio
   async def test_slow_greeting_times_out():
       with pytest.raises(asyncio.TimeoutError):
           await asyncio.wait_for(greet("eve", delay=10), timeout=0.01)


   async def test_forgot_the_marker():  # fails: nothing runs it
       assert await greet("mallory") == "hello, mallory"

Three tests pass and the last one fails.  In strict mode pytest sees an
``async def`` test that no plugin claimed; pytest 8.4 and later fail it with
``async def functions are not natively supported.``; pytest 8.3 (the last for
Python 3.8) skips it with a ``PytestUnhandledCoroutineWarning``, which
``filterwarnings = error`` turns into a failure.  Without that setting it would
be reported as *skipped*, which is easy to overlook.

.. important::

   An ``async def`` fixture decorated with plain ``@pytest.fixture`` is not run
   in strict mode: the test receives the *coroutine object* instead of its
   value, and the coroutine is never awaited.  pytest 9 reports it as an error
   (``requested an async fixture ... with no plugin or hook that handled
   it``); pytest 8.4 only warns (``PytestRemovedIn9Warning``, an error under
   ``filterwarnings = error``), and 8.3 hands over the coroutine without a
   word, so the test fails on whatever it does with it.  Use
   ``@pytest_asyncio.fixture``.

Which pytest-asyncio your Python gets
-------------------------------------

.. index::
   pair: pytest-asyncio; versions
   pair: pytest-asyncio; event_loop fixture
   single: looptime; versions

pip installs the newest release that supports the running Python, and
pytest-asyncio 1.0 dropped Python 3.8 while later releases dropped 3.9, so
``pip install pytest pytest-asyncio looptime`` gives the Pythons of this
book's matrix different sets.  These are the versions this chapter's example
files were run with (``pip list`` in each test environment):

=============  ========  ==============  ========
Python         pytest    pytest-asyncio  looptime
=============  ========  ==============  ========
3.8            8.3.5     0.24.0          0.2
3.9            8.4.2     1.2.0           0.3
3.10           9.2.0     1.5.0           0.7
3.11 to 3.15   9.2.0     1.5.0           0.9
=============  ========  ==============  ========

What differs between them, as far as this chapter is concerned:

* **0.24** (the last for 3.8) introduced ``loop_scope=`` on the marker and on
  ``pytest_asyncio.fixture`` and deprecated the marker's ``scope=`` argument
  (``The "scope" keyword argument to the asyncio marker has been
  deprecated.``).  It still has the ``event_loop`` fixture, but overriding it
  is deprecated.
* **1.0** removed the ``event_loop`` fixture.  Code that requests
  ``event_loop`` or overrides it fails with ``fixture 'event_loop' not
  found``; get the loop with :func:`asyncio.get_running_loop` inside the test,
  and choose its lifetime with ``loop_scope``.  1.x also reads two ini options
  0.24 does not know, ``asyncio_default_test_loop_scope`` and
  ``asyncio_debug``.  pytest warns about an option no plugin declared
  (``Unknown config option: asyncio_debug``), and under ``filterwarnings =
  error`` that stops the run: keep them out of a configuration that must
  work on 3.8.
* **1.5** (but not 1.2) has a ``pytest_asyncio_loop_factories`` hook and a
  ``loop_factories`` argument to the marker, to run tests on loops other than
  the default one.

A test file written against the common subset (the marker, with or without
``loop_scope``, and ``pytest_asyncio.fixture``) runs unchanged on all of them.

Sharing one event loop across tests
-----------------------------------

.. index::
   pair: pytest-asyncio; loop_scope
   pair: fixture; module-scoped async
   single: error messages; attached to a different loop

By default each test gets a fresh loop, which is what you want: nothing one test
leaves on its loop can reach the next.  An expensive async fixture, say a server
started once per module, has to live on a loop that lives at least as long as
the fixture, and every test that uses it has to run on that same loop.
``loop_scope`` says which loop: give the fixture and its tests the same one.

.. code-block:: python
   :caption: test_shared_loop.py

   import asyncio

   import pytest
   import pytest_asyncio

   pytestmark = pytest.mark.asyncio(loop_scope="module")
   loops = set()


   @pytest_asyncio.fixture(scope="module", loop_scope="module")
   async def echo_port():
       async def echo(reader, writer):
           writer.write(await reader.readline())
           await writer.drain()
           writer.close()
           await writer.wait_closed()

       server = await asyncio.start_server(echo, "127.0.0.1", 0)
       yield server.sockets[0].getsockname()[1]
       server.close()
       await asyncio.wait_for(server.wait_closed(), 5)


   async def ask(port, text):
       reader, writer = await asyncio.open_connection("127.0.0.1", port)
       try:
           writer.write(text.encode() + b"\\n")
           return (await asyncio.wait_for(reader.readline(), 5)).decode()
       finally:
           writer.close()
           await writer.wait_closed()


   async def test_echo(echo_port):
       loops.add(asyncio.get_running_loop())
       assert await ask(echo_port, "ping") == "ping\\n"


   async def test_echo_again(echo_port):
       loops.add(asyncio.get_running_loop())
       assert await ask(echo_port, "pong") == "pong\\n"


   async def test_one_loop_for_the_module():
       loops.add(asyncio.get_running_loop())
       assert len(loops) == 1

.. important::

   A module-scoped async fixture used by tests that run on per-test loops
   fails in ways that depend on the fixture: objects bound to the loop that
   created them raise ``RuntimeError: ... attached to a different loop`` or
   ``got Future ... attached to a different loop``, and a server simply stops
   answering.  When you raise a fixture's ``scope``, raise its ``loop_scope``
   and its tests' ``loop_scope`` with it.

Writing tests with unittest
---------------------------

.. index::
   single: IsolatedAsyncioTestCase
   pair: unittest; asyncio
   pair: IsolatedAsyncioTestCase; addAsyncCleanup

Without pytest, :class:`unittest.IsolatedAsyncioTestCase` runs each test
method, ``async def`` or not, on a new event loop of its own, in debug mode.
``asyncSetUp()`` and ``asyncTearDown()`` run on that loop, and so do
cleanups registered with ``addAsyncCleanup()``; they run *after*
``asyncTearDown()``, in reverse order of registration.  pytest runs these
classes too, without pytest-asyncio.

.. script:: test_unittest_style.py

   import asyncio
   import io
   import unittest

   events = []


   class TestWorker(unittest.IsolatedAsyncioTestCase):
       async def asyncSetUp(self):
           events.append("asyncSetUp")
           self.queue = asyncio.Queue()
           self.worker = asyncio.create_task(self.work())
           self.addAsyncCleanup(self.stop_worker)

       async def work(self):
           while True:
               item = await self.queue.get()
               events.append(f"worked on {item}")
               self.queue.task_done()

       async def stop_worker(self):
           self.worker.cancel()
           try:
               await self.worker
           except asyncio.CancelledError:
               events.append("worker stopped")

       async def asyncTearDown(self):
           events.append("asyncTearDown")

       async def test_work_gets_done(self):
           await self.queue.put("job")
           await asyncio.wait_for(self.queue.join(), 5)
           events.append("test done")


   if __name__ == "__main__":
       suite = unittest.defaultTestLoader.loadTestsFromTestCase(TestWorker)
       result = unittest.TextTestRunner(stream=io.StringIO()).run(suite)
       print("ran", result.testsRun, "test, ok:", result.wasSuccessful())
       print(*events, sep="\\n")

.. script-output::

   ran 1 test, ok: True
   asyncSetUp
   worked on job
   test done
   asyncTearDown
   worker stopped

.. versionadded:: 3.11
   ``enterAsyncContext(cm)`` enters an async context manager and registers
   its exit as a cleanup.  On 3.8 to 3.10, enter it in ``asyncSetUp()`` and
   ``self.addAsyncCleanup(cm.__aexit__, None, None, None)``.

.. versionadded:: 3.13
   The ``loop_factory`` class attribute chooses how the test's loop is made,
   for example the virtual clock of :ref:`recipes/testing:Skipping the
   waiting with virtual time`.  A plain function stored in a class attribute
   becomes a method, so wrap it in :func:`staticmethod`:

.. script:: test_unittest_virtual_time.py
   :requires-python: 3.13

   import asyncio
   import io
   import unittest

   import looptime


   class TestSchedule(unittest.IsolatedAsyncioTestCase):
       loop_factory = staticmethod(looptime.new_event_loop)

       async def test_an_hour_passes_at_once(self):
           loop = asyncio.get_running_loop()
           start = loop.time()
           await asyncio.sleep(3600)
           self.assertEqual(loop.time() - start, 3600)


   if __name__ == "__main__":
       suite = unittest.defaultTestLoader.loadTestsFromTestCase(TestSchedule)
       result = unittest.TextTestRunner(stream=io.StringIO()).run(suite)
       print("ran", result.testsRun, "test, ok:", result.wasSuccessful())

.. script-output::

   ran 1 test, ok: True

Mocking coroutines with AsyncMock
---------------------------------

.. index::
   single: AsyncMock
   pair: AsyncMock; side_effect
   pair: AsyncMock; assert_awaited_once_with
   single: error messages; Expected mock to have been awaited once. Awaited 0 times.
   single: warnings; coroutine 'AsyncMockMixin._execute_mock_call' was never awaited

A :class:`unittest.mock.AsyncMock` is an async function that records how it
was called and how it was *awaited*: calling it returns a coroutine, and
awaiting the coroutine returns ``return_value``.  The ``assert_awaited_*``
methods check the awaits:

>>> import asyncio
>>> from unittest.mock import AsyncMock, call
>>> fetch = AsyncMock(return_value={"id": 1, "name": "ada"})
>>> async def user_name(fetch, user_id):
...     return (await fetch(f"/users/{user_id}"))["name"]
>>> await user_name(fetch, 1)
'ada'
>>> fetch.assert_awaited_once_with("/users/1")

``side_effect`` makes each await do something else: an exception is raised,
an iterable hands out one item per await (an exception in it is raised when
its turn comes), and a function, plain or ``async def``, is called with the
same arguments and its result returned.  That is all a test of a retry needs:

>>> fetch = AsyncMock(
...     side_effect=[ConnectionError("reset"), {"id": 2, "name": "bob"}]
... )
>>> async def with_one_retry(fetch, path):
...     try:
...         return await fetch(path)
...     except ConnectionError:
...         await asyncio.sleep(0.1)
...         return await fetch(path)
>>> await with_one_retry(fetch, "/users/2")
{'id': 2, 'name': 'bob'}
>>> fetch.await_args_list
[call('/users/2'), call('/users/2')]

:func:`unittest.mock.patch` and :func:`unittest.mock.create_autospec` pick an
``AsyncMock`` by themselves when the thing they replace is an ``async def``
(a function or a method), so ``with patch("app.client.fetch") as fetch:``
needs no extra argument.

.. important::

   ``assert_called_*`` only says the mock was *called*.  Code that forgets an
   ``await`` calls it, gets a coroutine and drops it: ``assert_called_once()``
   still passes, ``assert_awaited_once()`` fails with ``Expected mock to have
   been awaited once. Awaited 0 times.``, and Python warns ``coroutine
   'AsyncMockMixin._execute_mock_call' was never awaited``, often in a later
   test, when the coroutine is garbage-collected.  Assert awaits.
   :func:`no_unawaited_coroutines` turns the warning into a failure of the
   right test:

>>> from recipes.testing import no_unawaited_coroutines
>>> notify = AsyncMock()
>>> async def alert(message):
...     notify(message)  # the bug: no await
>>> with no_unawaited_coroutines():
...     await alert("disk full")
Traceback (most recent call last):
...
AssertionError: 1 coroutine(s) never awaited: AsyncMockMixin._execute_mock_call
>>> notify.assert_called_once_with("disk full")
>>> notify.assert_awaited_once()
Traceback (most recent call last):
...
AssertionError: Expected mock to have been awaited once. Awaited 0 times.

Mocking async context managers and iterators
--------------------------------------------

.. index::
   pair: MagicMock; __aenter__
   pair: MagicMock; __aiter__
   pair: mock; async context manager
   pair: mock; async iterator

:class:`~unittest.mock.MagicMock` (and ``AsyncMock``) support ``async with``
and ``async for``: ``__aenter__`` and ``__aexit__`` are ``AsyncMock``\\ s, and
``__aiter__.return_value`` takes any iterable to hand out.  A client used as
``async with session.get(url) as response:`` is a plain call that returns an
async context manager, so the response goes into the ``return_value`` of its
``__aenter__``:

>>> from unittest.mock import MagicMock
>>> response = MagicMock(status=200)
>>> response.json = AsyncMock(return_value={"ok": True})
>>> session = MagicMock()
>>> session.get.return_value.__aenter__.return_value = response
>>> async def check(session, url):
...     async with session.get(url) as response:
...         return response.status, await response.json()
>>> await check(session, "http://example.invalid/health")
(200, {'ok': True})
>>> session.get.assert_called_once_with("http://example.invalid/health")
>>> session.get.return_value.__aexit__.assert_awaited_once()

The last line checks that the context was left, which is where a real client
releases its connection.  An async iterator, such as a stream of messages:

>>> messages = MagicMock()
>>> messages.__aiter__.return_value = ["hello", "world"]
>>> [message.upper() async for message in messages]
['HELLO', 'WORLD']

.. important::

   A mock is only as good as its shape.  ``MagicMock()`` accepts any
   attribute and any call, so a test keeps passing after the real API has
   changed.  Give mocks a ``spec`` (``create_autospec(RealClient)``), and keep
   some tests against a real local component, such as a server on 127.0.0.1
   (:doc:`/recipes/http_client` and :doc:`/recipes/api_server` test that way).

Checking the order of awaits
----------------------------

.. index::
   single: AwaitRecorder
   pair: AsyncMock; call order
   pair: testing; concurrency

``mock_calls`` records the order of *calls*, but two calls made one after the
other may run one after the other or overlap; what a concurrency test needs
is when each await started and when it ended.  :class:`AwaitRecorder` hands out
``AsyncMock``\\ s that write both into one shared list:

>>> from recipes.testing import AwaitRecorder
>>> recorder = AwaitRecorder()
>>> load = recorder.mock("load", result="data", delay=0.1)
>>> save = recorder.mock("save", delay=0.1)
>>> async def copy(name):
...     await save(name, await load(name))
>>> await asyncio.gather(copy("a"), copy("b"))
[None, None]
>>> for event in recorder.events:
...     print(event)
load('a') awaited
load('b') awaited
load('a') returned
save('a', 'data') awaited
load('b') returned
save('b', 'data') awaited
save('a', 'data') returned
save('b', 'data') returned

The load of ``'b'`` started before the load of ``'a'`` returned: the copies
overlap.  A version that copied the items one by one would log all four
events of ``'a'`` before the first of ``'b'``.  The order within one task is
fixed, and the one across tasks here follows from the timers, so the list
is the same on every run.

Skipping the waiting with virtual time
--------------------------------------

.. index::
   single: virtual time
   single: looptime
   pair: testing; retries
   pair: testing; timeouts
   pair: pytest; looptime marker

Code that retries after 1, 2 and 4 seconds, times out after 30 seconds or runs
every hour should be tested with those numbers, not with delays shrunk to make
the suite fast.  An event loop decides when a timer is due by asking its
``time()`` method, so a loop whose clock jumps straight to the next timer when
nothing else is ready runs the same code in no time.  The `looptime
<https://pypi.org/project/looptime/>`_ library provides such a loop, and its
pytest plugin switches a test to it with ``@pytest.mark.looptime``.  Asserting
on ``loop.time()`` is then exact, because the clock only moves when every task
is waiting:

.. code-block:: python
   :caption: test_virtual_time.py

   import asyncio

   import looptime
   import pytest


   async def retry(operation, delays):
       for delay in delays:
           try:
               return await operation()
           except ConnectionError:
               await asyncio.sleep(delay)
       return await operation()


   def flaky(failures):
       calls = []

       async def operation():
           calls.append(asyncio.get_running_loop().time())
           if len(calls) <= failures:
               raise ConnectionError("refused")
           return "connected"

       return operation, calls


   @pytest.mark.asyncio
   @pytest.mark.looptime
   async def test_backoff_schedule():
       operation, calls = flaky(failures=3)
       assert await retry(operation, [1, 2, 4]) == "connected"
       start = calls[0]
       assert [t - start for t in calls] == [0, 1, 3, 7]


   def run_on_virtual_clock(coro):
       loop = looptime.new_event_loop(start=0)
       try:
           return loop.run_until_complete(coro)
       finally:
           loop.close()


   def test_timeout_after_a_minute():
       async def main():
           loop = asyncio.get_running_loop()
           with pytest.raises(asyncio.TimeoutError):
               await asyncio.wait_for(asyncio.sleep(3600), timeout=60)
           return loop.time()

       assert run_on_virtual_clock(main()) == 60

The first test takes the plugin's way; the second builds the virtual loop
itself and drives it with ``run_until_complete()``, which needs neither the
marker nor pytest-asyncio and works with every looptime version.  That is how
this project runs its own doctests: the ``conftest.py`` at the root of the
repository gives every docstring a ``looptime.new_event_loop(start=0)``, so
this chapter's ``await asyncio.sleep(0.1)`` costs no wall time in the test run
(``COOKBOOK_REAL_CLOCK=1`` switches back to the real clock).

.. important::

   With the versions pip installs for Python 3.9 (looptime 0.3 with
   pytest-asyncio 1.2), ``@pytest.mark.looptime`` is accepted but does
   nothing: the test above then sleeps for 7 real seconds and fails, because
   the real clock is not exact.  On 3.8 and on 3.10 and later the marker
   works.  Building the loop yourself, as in the second test, works on all of
   them.  looptime releases before 0.9 have one more trap: their clock moves
   in whole microseconds and never reaches a timer set between two of them,
   so ``await asyncio.sleep(1 / 3)`` never returns; keep delays round in
   tests on those versions.

Virtual time is for code whose waiting is on the event loop's timers.  Waiting
on another process, a socket or a thread still takes real time, and meanwhile
the virtual clock can jump past the timeouts that guard it (this project's
doctests that talk to PostgreSQL run on the real clock for that reason):
keep such tests on the real clock.

Testing timeouts and cancellation deterministically
---------------------------------------------------

.. index::
   single: assert_cancels
   pair: testing; cancellation
   pair: testing; race conditions
   pair: Event; synchronizing tests

A test that does ``create_task(...)``, ``sleep(0.1)`` and then ``cancel()``
hopes that the task has reached the interesting ``await`` within 0.1 seconds.
On a loaded CI machine it sometimes has not, and the test checks something else.
Make the code under test say where it is: an :class:`asyncio.Event` that it
sets when it reaches the point, and that the test waits for, with a timeout
so a bug cannot hang the suite.  :func:`assert_cancels` takes either an event
or a delay, cancels the awaitable at that moment, and checks the three
things a well-behaved coroutine must do: still be running at that point, end
*cancelled* (not return, not raise something else) and end promptly:

>>> from recipes.testing import assert_cancels
>>> async def download(ready, cleaned):
...     try:
...         ready.set()
...         await asyncio.sleep(3600)
...     finally:
...         await asyncio.sleep(0.1)  # close the connection politely
...         cleaned.append(True)
>>> ready, cleaned = asyncio.Event(), []
>>> await assert_cancels(download(ready, cleaned), after=ready)
>>> cleaned
[True]

A coroutine that swallows the cancellation fails the check, with the reason:

>>> async def stubborn():
...     try:
...         await asyncio.sleep(3600)
...     except asyncio.CancelledError:
...         return "no"
>>> await assert_cancels(stubborn(), after=0.1)
Traceback (most recent call last):
...
AssertionError: ...(stubborn()) swallowed the cancellation and returned 'no'

For timeouts the same idea applies in reverse: the dependency that is too slow
is a mock that never answers, an ``AsyncMock`` whose ``side_effect`` waits on
an event nobody sets, so the test does not depend on how slow "slow" is.
On the virtual clock the timeout itself is exact as well:

>>> never = asyncio.Event()
>>> hang = AsyncMock(side_effect=never.wait)
>>> loop = asyncio.get_running_loop()
>>> start = loop.time()
>>> try:
...     await asyncio.wait_for(hang(), timeout=0.2)
... except asyncio.TimeoutError:
...     print("timed out")
timed out
>>> hang.assert_awaited_once()

Failing tests that leak tasks or coroutines
-------------------------------------------

.. index::
   single: no_leaked_tasks
   single: no_unawaited_coroutines
   pair: testing; leaked tasks
   pair: pytest; leak-detecting fixture
   single: error messages; Task was destroyed but it is pending!

A test that starts a task and never stops it passes; the task keeps running
on a loop that is about to be closed, and its complaint (``Task was destroyed
but it is pending!``, or an error from its cleanup) turns up later, in
another test's output.  :func:`no_leaked_tasks` checks at the end of a block
that every task started inside it has finished; the ones still running are
cancelled, awaited, and named in the failure:

>>> from recipes.testing import no_leaked_tasks
>>> async def heartbeat():
...     while True:
...         await asyncio.sleep(1)
>>> async with no_leaked_tasks():
...     beat = asyncio.create_task(heartbeat(), name="heartbeat")
Traceback (most recent call last):
...
AssertionError: 1 task(s) left running: heartbeat (heartbeat())

Wrapped around every test as a fixture, the two checks of this chapter fail
the test that leaks, not a later one.  The fixture is async, so it runs on the
test's own loop and sees the tasks the test started:

.. code-block:: python
   :caption: conftest.py

   import pytest_asyncio

   from recipes.testing import no_leaked_tasks, no_unawaited_coroutines


   @pytest_asyncio.fixture
   async def no_leaks():
       with no_unawaited_coroutines():
           async with no_leaked_tasks():
               yield

.. code-block:: python
   :caption: test_leaks.py

   import asyncio

   import pytest

   pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("no_leaks")]


   async def tick():
       while True:
           await asyncio.sleep(1)


   async def test_stops_its_task():
       task = asyncio.create_task(tick())
       await asyncio.sleep(0)
       task.cancel()
       with pytest.raises(asyncio.CancelledError):
           await task


   async def test_leaves_its_task_running():
       asyncio.create_task(tick(), name="ticker")


   async def test_forgets_an_await():
       tick()

All three tests pass; the last two are then reported as *errors* in the
fixture's teardown, ``1 task(s) left running: ticker (tick())`` and ``1
coroutine(s) never awaited: tick``, so the run fails and names the culprits.
Make the fixture ``autouse=True`` to apply it to every async test of a
directory.

A library does this
-------------------

.. index::
   single: anyio; pytest plugin
   single: freezegun
   single: time-machine
   pair: testing; libraries

* `AnyIO's pytest plugin
  <https://anyio.readthedocs.io/en/stable/testing.html>`__ is the other
  common runner for ``async def`` tests.  It comes with anyio, runs the tests
  marked ``@pytest.mark.anyio`` (or all of them with ``anyio_mode = auto``),
  and in current versions runs each test once per backend installed:
  asyncio, and trio if it is there.  An ``anyio_backend`` fixture chooses the
  backends and their options, such as a ``loop_factory`` (a looptime loop,
  say) or ``use_uvloop``.  Choose it for code that runs on anyio or trio too;
  for asyncio-only code, pytest-asyncio as used here is enough.  Both plugins
  can be installed together; anyio warns when both are in auto mode.
* `time-machine <https://time-machine.readthedocs.io/>`__ and `freezegun
  <https://github.com/spulec/freezegun>`__ move the wall clock
  (:func:`time.time`, ``datetime.now()``), for code that compares dates.
  Neither makes timers fire early: that is what looptime does.  time-machine
  leaves :func:`time.monotonic`, the loop's clock, alone; freezegun freezes
  it too, so ``asyncio.sleep()`` never returns unless you pass
  ``real_asyncio=True``.

See also
--------

* :doc:`/recipes/cancellation` – what a coroutine must do when cancelled, the
  behaviour :func:`assert_cancels` checks, and
  :ref:`recipes/cancellation:Cleanup that must await`.
* :doc:`/recipes/timeouts` and :ref:`recipes/errors:Retrying with exponential
  backoff` – the code that virtual time makes cheap to test.
* :doc:`/recipes/debugging` – debug mode, and
  :ref:`recipes/debugging:Finding a coroutine that was never awaited` in a
  running program.
* :doc:`/recipes/tasks` – keeping references to tasks so they are not lost.
* Python: :class:`unittest.IsolatedAsyncioTestCase`,
  :class:`unittest.mock.AsyncMock`, :ref:`python:magic-methods`, and
  :doc:`python:library/asyncio-dev`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import re
import warnings
from typing import (
    Any,
    AsyncIterator,
    Awaitable,
    Iterator,
    List,
    Optional,
    Set,
    Union,
)
from unittest.mock import AsyncMock

__all__ = [
    "no_unawaited_coroutines",
    "AwaitRecorder",
    "assert_cancels",
    "no_leaked_tasks",
]

_NEVER_AWAITED = re.compile(r"^coroutine '(?P<name>.+)' was never awaited")


@contextlib.contextmanager
def no_unawaited_coroutines(*, collect: bool = True) -> Iterator[List[str]]:
    """Fail if a coroutine created inside the block is dropped without being awaited.

    Python notices a forgotten ``await`` only when the coroutine object is
    destroyed, and reports it as a :exc:`RuntimeWarning` that usually ends up
    far from its cause.  Inside this block the warning is recorded instead;
    at the end, after a garbage collection, the block raises
    :exc:`AssertionError` naming each coroutine:

    >>> import asyncio
    >>> from recipes.testing import no_unawaited_coroutines
    >>> async def save(record):
    ...     await asyncio.sleep(0)
    >>> async def handler():
    ...     save({"id": 1})  # the bug
    >>> with no_unawaited_coroutines():
    ...     await handler()
    Traceback (most recent call last):
    ...
    AssertionError: 1 coroutine(s) never awaited: save

    The context manager yields the list of names found so far, and a block
    that awaits everything passes silently:

    >>> async def fixed_handler():
    ...     await save({"id": 1})
    >>> with no_unawaited_coroutines() as found:
    ...     await fixed_handler()
    >>> found
    []

    A coroutine that is dropped is destroyed, and reported, at once, unless
    it is part of a reference cycle; the garbage collection at the end of
    the block finds the others.  That collection is the expensive part: it
    visits every object of the process, which took about 9 ms per block on
    Python 3.15 in ``benchmarks/bench_testing.py`` and grows with the
    number of objects; over thousands of tests that adds up to minutes.
    ``collect=False`` skips it and still catches the usual case:

    >>> with no_unawaited_coroutines(collect=False):
    ...     await handler()
    Traceback (most recent call last):
    ...
    AssertionError: 1 coroutine(s) never awaited: save

    Other warnings raised inside the block are not swallowed: they are
    emitted again at its end, where the test's warning filters apply.  The
    block changes the process-wide warning filters while it runs, as
    :class:`warnings.catch_warnings` does, so do not use it from several
    threads at once.  If the block raises, that exception wins and
    unawaited coroutines are not reported.
    """
    found: List[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.filterwarnings("always", message=_NEVER_AWAITED.pattern, category=RuntimeWarning)
        yield found
        if collect:
            gc.collect()
    for warning in caught:
        match = _NEVER_AWAITED.match(str(warning.message))
        if match and issubclass(warning.category, RuntimeWarning):
            found.append(match.group("name"))
        else:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    if found:
        raise AssertionError(f"{len(found)} coroutine(s) never awaited: {', '.join(found)}")


def _describe_call(name: str, args: Any, kwargs: Any) -> str:
    parts = [repr(arg) for arg in args]
    parts += [f"{key}={value!r}" for key, value in kwargs.items()]
    return f"{name}({', '.join(parts)})"


class AwaitRecorder:
    """Hand out AsyncMocks that log, in one list, when each await starts and ends.

    Each event is a string: ``"<call> awaited"`` when the await starts, then
    ``"<call> returned"``, ``"<call> raised <Exception>"`` or
    ``"<call> cancelled"``, where ``<call>`` is the mock's name with the
    arguments, as in ``load('a')``:

    >>> import asyncio
    >>> from recipes.testing import AwaitRecorder
    >>> recorder = AwaitRecorder()
    >>> fetch = recorder.mock("fetch", result=200, delay=0.1)
    >>> await fetch("/a")
    200
    >>> recorder.events
    ["fetch('/a') awaited", "fetch('/a') returned"]

    ``error`` makes every await raise it (after ``delay``); the mocks are
    ordinary ``AsyncMock`` objects, so the ``assert_awaited_*`` methods work
    as usual:

    >>> broken = recorder.mock("store", error=OSError("disk full"))
    >>> try:
    ...     await broken(b"x", sync=True)
    ... except OSError as exc:
    ...     print("caught", exc)
    caught disk full
    >>> recorder.events[-1]
    "store(b'x', sync=True) raised OSError"
    >>> broken.assert_awaited_once_with(b"x", sync=True)

    A cancelled await is logged too, which shows what a timeout interrupted:

    >>> recorder.events.clear()
    >>> slow = recorder.mock("slow", delay=60)
    >>> try:
    ...     await asyncio.wait_for(slow(), timeout=0.1)
    ... except asyncio.TimeoutError:
    ...     pass
    >>> recorder.events
    ['slow() awaited', 'slow() cancelled']
    """

    def __init__(self) -> None:
        self.events: List[str] = []
        """The log, oldest first; clear it with ``events.clear()``."""

    def mock(
        self,
        name: str,
        *,
        result: Any = None,
        delay: float = 0.0,
        error: Optional[BaseException] = None,
    ) -> AsyncMock:
        """An :class:`~unittest.mock.AsyncMock` named *name* that logs its awaits here.

        Each await sleeps *delay* seconds (``0`` still yields to the loop
        once), then raises *error* if given, else returns *result*.
        """
        if delay < 0:
            raise ValueError(f"delay must be >= 0, got {delay!r}")
        events = self.events

        async def effect(*args: Any, **kwargs: Any) -> Any:
            call = _describe_call(name, args, kwargs)
            events.append(f"{call} awaited")
            try:
                await asyncio.sleep(delay)
                if error is not None:
                    raise error
            except asyncio.CancelledError:
                events.append(f"{call} cancelled")
                raise
            except BaseException as exc:
                events.append(f"{call} raised {type(exc).__name__}")
                raise
            events.append(f"{call} returned")
            return result

        return AsyncMock(side_effect=effect, name=name)


def _task_description(task: asyncio.Future[Any]) -> str:
    name = task.get_name() if isinstance(task, asyncio.Task) else repr(task)
    coro = task.get_coro() if isinstance(task, asyncio.Task) else None
    qualname = getattr(coro, "__qualname__", None) or type(coro).__name__
    return f"{name} ({qualname}())"


async def assert_cancels(
    awaitable: Awaitable[Any],
    *,
    after: Union[float, asyncio.Event] = 0.0,
    within: float = 1.0,
) -> None:
    """Run *awaitable* as a task, cancel it, and check that it ends cancelled, promptly.

    *after* says when to cancel: a number of seconds, or an
    :class:`asyncio.Event` that the code under test sets when it has reached
    the point of interest (deterministic: no guessing how long that takes).
    Raises :exc:`AssertionError` if the task finished before the cancellation,
    returned or raised something else instead of ending cancelled, or was
    still running *within* seconds after ``cancel()``:

    >>> import asyncio
    >>> from recipes.testing import assert_cancels
    >>> async def poll():
    ...     while True:
    ...         await asyncio.sleep(0.1)
    >>> await assert_cancels(poll(), after=0.15)

    >>> async def quick():
    ...     return "done"
    >>> await assert_cancels(quick(), after=0.1)
    Traceback (most recent call last):
    ...
    AssertionError: ...(quick()) finished before it was cancelled

    A coroutine that keeps waiting after it was cancelled (a cleanup step
    that hangs, a swallowed :exc:`asyncio.CancelledError` followed by more
    work) fails after *within* seconds.  It is then cancelled once more and
    given *within* seconds again, so the check does not leave it running
    unless it ignores that cancellation too:

    >>> async def slow_cleanup():
    ...     try:
    ...         await asyncio.sleep(3600)
    ...     finally:
    ...         await asyncio.sleep(5)
    >>> await assert_cancels(slow_cleanup(), within=0.2)
    Traceback (most recent call last):
    ...
    AssertionError: ...(slow_cleanup()) still running 0.2 s after cancel()

    If the caller itself is cancelled while waiting, the task is cancelled
    as well and the caller's cancellation propagates.
    """
    if within <= 0:
        raise ValueError(f"within must be > 0, got {within!r}")
    if not isinstance(after, asyncio.Event) and after < 0:
        raise ValueError(f"after must be >= 0 or an asyncio.Event, got {after!r}")
    task = asyncio.ensure_future(awaitable)
    what = _task_description(task)
    try:
        if isinstance(after, asyncio.Event):
            waiter = asyncio.ensure_future(after.wait())
            try:
                await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
                await asyncio.wait({waiter})
        else:
            await asyncio.wait({task}, timeout=after)
            await asyncio.sleep(0)  # after=0: let the task start first
        if task.done():
            if not task.cancelled():
                task.exception()  # retrieved: the failure below reports it
            raise AssertionError(f"{what} finished before it was cancelled")
        task.cancel()
        await asyncio.wait({task}, timeout=within)
        if not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=within)
            left = "" if task.done() else "; it is still running"
            raise AssertionError(f"{what} still running {within:g} s after cancel(){left}")
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            raise AssertionError(
                f"{what} swallowed the cancellation and returned {task.result()!r}"
            )
        raise AssertionError(f"{what} raised {exc!r} instead of CancelledError") from exc
    except asyncio.CancelledError:
        task.cancel()
        raise


@contextlib.asynccontextmanager
async def no_leaked_tasks(*, grace: float = 0.0, reap: float = 1.0) -> AsyncIterator[None]:
    """Fail if a task started inside the block is still running at its end.

    Tasks that are still running when the block ends (after waiting up to
    *grace* seconds for them to finish) are cancelled, awaited for up to
    *reap* seconds, and reported in an :exc:`AssertionError`, sorted by name:

    >>> import asyncio
    >>> from recipes.testing import no_leaked_tasks
    >>> async def pinger(every):
    ...     while True:
    ...         await asyncio.sleep(every)
    >>> async with no_leaked_tasks():
    ...     first = asyncio.create_task(pinger(1), name="ping-1")
    ...     second = asyncio.create_task(pinger(2), name="ping-2")
    Traceback (most recent call last):
    ...
    AssertionError: 2 task(s) left running: ping-1 (pinger()), ping-2 (pinger())
    >>> first.cancelled(), second.cancelled()
    (True, True)

    Tasks that finish within the block, or within *grace* seconds after it,
    pass; so do tasks that were already running when it began:

    >>> async def brief():
    ...     await asyncio.sleep(0.1)
    >>> async with no_leaked_tasks(grace=0.5):
    ...     task = asyncio.create_task(brief())
    >>> task.done()
    True

    The check needs a running loop and looks at that loop's tasks only.
    Entered in an async fixture before the test and left after it, it sees the
    test's tasks as long as the fixture runs on the test's loop.  The task
    that leaves the block is never counted, even if it is not the one that
    entered it.  If the block raises, leftover tasks are still cancelled,
    and the block's exception propagates instead of the report.
    """
    if grace < 0 or reap <= 0:
        raise ValueError(f"need grace >= 0 and reap > 0, got {grace!r} and {reap!r}")
    before: Set[asyncio.Task[Any]] = asyncio.all_tasks()
    failed = True
    try:
        yield
        failed = False
    finally:
        current = asyncio.current_task()
        leftover = [
            task
            for task in asyncio.all_tasks()
            if task not in before and task is not current and not task.done()
        ]
        if leftover and grace > 0 and not failed:
            await asyncio.wait(leftover, timeout=grace)
            leftover = [task for task in leftover if not task.done()]
        for task in leftover:
            task.cancel()
        if leftover:
            await asyncio.wait(leftover, timeout=reap)
        if leftover and not failed:
            names = ", ".join(sorted(_task_description(task) for task in leftover))
            raise AssertionError(f"{len(leftover)} task(s) left running: {names}")
