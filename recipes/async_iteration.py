"""Data that arrives over time – pages of an API, rows of a query, messages on a socket –
is consumed most naturally with ``async for``.  This chapter shows the two ways to
produce such a stream (a class with ``__aiter__``/``__anext__``, and an ``async def``
with ``yield`` in it), the one thing that makes async generators harder than ordinary
ones (closing them), async comprehensions, the :func:`aiter` and :func:`anext`
builtins with fallbacks for Python 3.8 and 3.9, and a handful of stream helpers –
:func:`batched`, :func:`amerge`, :func:`timeout_per_item`, :func:`ticker` – that
clean up after themselves when the consumer stops early or is cancelled.

Writing an async iterator class
-------------------------------

.. index::
   single: async iterator
   single: __aiter__
   single: __anext__
   single: StopAsyncIteration
   single: pagination; cursor
   single: error messages; coroutine raised StopIteration

``async for x in obj`` calls ``obj.__aiter__()`` once (a plain method that returns
the iterator, usually ``self``) and then awaits ``iterator.__anext__()`` for every
item.  ``__anext__`` is a coroutine; it ends the loop by raising
:exc:`StopAsyncIteration` – not ``StopIteration``, which inside a coroutine is turned
into ``RuntimeError: coroutine raised StopIteration``.

A class is the right shape when the iterator has state worth looking at from
outside, or methods besides iteration.  It also has no suspended frame, so there is
nothing to close when the consumer stops early.  :class:`Paginator` walks a
cursor-paginated API and counts the pages it fetched:

>>> import asyncio
>>> from recipes.async_iteration import Paginator
>>> async def fetch_page(cursor):
...     pages = {None: ([1, 2], "b"), "b": ([3], "c"), "c": ([], None)}
...     await asyncio.sleep(0.1)  # the network round trip
...     return pages[cursor]
>>> pages = Paginator(fetch_page)
>>> [item async for item in pages]
[1, 2, 3]
>>> pages.pages_fetched
3

Writing an async generator
--------------------------

.. index::
   single: async generator
   pair: ticker; without drift

An ``async def`` that contains ``yield`` is an async generator: it may ``await``
between items, and it is far shorter than the class.  It cannot ``return`` a value
and cannot use ``yield from``.  :func:`ticker` is one – it yields a tick number at a
steady rate, without drift:

>>> from recipes.async_iteration import ticker
>>> loop = asyncio.get_running_loop()
>>> start = loop.time()
>>> async for tick in ticker(0.2, count=3):
...     print(tick, round(loop.time() - start, 1))
0 0.0
1 0.2
2 0.4

:func:`ticker` is only the stream of ticks.  To run a job on a schedule – with a
policy for a tick that overruns, a tick that fails, and a clean stop – use the
recipes of :doc:`/recipes/periodic`.

Closing async generators
------------------------

.. index::
   pair: async generator; closing
   single: aclosing
   single: shutdown_asyncgens
   single: finally block that never runs

A generator that is left half-way (``break``, an exception in the loop body, a
cancelled consumer) is suspended at its ``yield`` with its ``finally`` blocks and
``async with`` exits still pending.  A synchronous generator in that state is closed
when it is garbage collected.  An async generator cannot be closed there: its cleanup
may need to ``await``, and the garbage collector cannot.  Instead, asyncio schedules
``aclose()`` in a *new task* when the generator is collected, and
:func:`asyncio.run` closes the ones still alive in ``loop.shutdown_asyncgens()``
before it closes the loop.  So the cleanup runs *late* – after the code that follows
the loop, in another task, outside any timeout or lock the consumer held – or
*never*, if the loop is closed before the generator is collected and nobody called
``shutdown_asyncgens()`` (a hand-made loop, some test set-ups).

>>> async def numbers():
...     try:
...         yield 1
...         yield 2
...     finally:
...         print("cleanup")
>>> gen = numbers()
>>> async for n in gen:
...     break
>>> print("after the loop")  # the finally block has not run
after the loop
>>> await gen.aclose()
cleanup

The fix is to close the generator deterministically: wrap it in
``contextlib.aclosing`` and iterate inside the ``async with``.

.. versionadded:: 3.10
   ``contextlib.aclosing``.  This module's :class:`aclosing` does the same on 3.8
   and 3.9.

>>> from recipes.async_iteration import aclosing
>>> async with aclosing(numbers()) as gen:
...     async for n in gen:
...         break
cleanup
>>> import contextlib
>>> async with contextlib.aclosing(numbers()) as gen:  # doctest: +PY310
...     async for n in gen:
...         break
cleanup

A generator that holds a context manager across its ``yield`` – a transaction, a
connection – keeps it open for as long as the generator stays suspended:
:ref:`recipes/context_managers:Decorating a generator, and a context manager that
is not async` shows that case, and why the decorator form of such a context
manager misbehaves before Python 3.15.

.. index::
   single: error messages; aclose(): asynchronous generator is already running
   single: error messages; async generator ignored GeneratorExit

.. important::

   Three symptoms of async generators closed the wrong way.
   ``RuntimeError: aclose(): asynchronous generator is already running`` means
   ``aclose()`` was called while another task was inside the generator's
   ``__anext__`` – cancel that task and wait for it first (:func:`amerge` shows how).
   ``RuntimeError: async generator ignored GeneratorExit`` means a ``finally`` block
   yielded.  And a ``finally`` block that never ran prints nothing at all: the only
   symptom is a connection, lock or temporary file that was not released.

Every helper below that takes async iterables *takes ownership* of them: when the
helper finishes, fails or is closed, it closes its sources too (if they have an
``aclose`` method).  So closing the outermost generator is enough.

Async comprehensions
--------------------

.. index::
   single: async comprehension
   pair: await; in a comprehension

``[x async for x in aiterable]`` collects a stream into a list (set, dict and
generator-expression forms exist too), and ``await`` is allowed inside any
comprehension in an ``async def``:

>>> async def double(x):
...     await asyncio.sleep(0.1)
...     return 2 * x
>>> [n async for n in ticker(0.1, count=4) if n % 2]
[1, 3]
>>> [await double(x) for x in range(3)]
[0, 2, 4]

The second comprehension awaits its items *one after another* (0.3 s here).  To run
them concurrently, create the coroutines in the comprehension and pass them to
:func:`asyncio.gather` (:doc:`/recipes/gathering` shows the variants, with a limit
on how many run at once).  A comprehension does not close an async generator it
stops consuming early – but it can only stop early by raising, and then the
guidance above applies.

Using aiter() and anext()
-------------------------

.. index::
   single: aiter()
   single: anext()
   pair: Python 3.8; aiter() and anext()

The builtins :func:`aiter` and :func:`anext` are the async versions of :func:`iter`
and :func:`next`.  ``anext(iterator, default)`` returns ``default``
instead of raising :exc:`StopAsyncIteration` – handy for "the first item, if any":

>>> async def letters():
...     yield "a"
...     yield "b"
>>> it = aiter(letters())  # doctest: +PY310
>>> await anext(it)  # doctest: +PY310
'a'

.. versionadded:: 3.10
   The :func:`aiter` and :func:`anext` builtins.

On 3.8 and 3.9 call the special methods through the type, exactly as the builtins
do – or copy :func:`compat_aiter` and :func:`compat_anext`:

>>> from recipes.async_iteration import compat_anext
>>> it = letters()
>>> await type(it).__anext__(it)
'a'
>>> await compat_anext(it), await compat_anext(it, "done")
('b', 'done')

Grouping, merging and timing out streams
----------------------------------------

.. index::
   single: batching a stream
   single: merging async iterators
   pair: timeout; per item of a stream

:func:`batched` groups a stream into lists, for bulk inserts or batched API calls.
:func:`amerge` iterates several streams at once and yields whichever item is ready
first.  :func:`timeout_per_item` gives up when a stream goes quiet for too long.
Each one closes its sources when it stops.

>>> from recipes.async_iteration import amerge, batched
>>> async def slow(name, n, delay):
...     for i in range(n):
...         await asyncio.sleep(delay)
...         yield f"{name}{i}"
>>> streams = amerge(slow("a", 3, 0.3), slow("b", 2, 0.2))
>>> async with aclosing(streams) as merged:
...     async for batch in batched(merged, 2):
...         print(batch)
['b0', 'a0']
['b1', 'a1']
['a2']

A stream whose items come from several producers at their own pace is often
simpler as a queue that the producers fill (:doc:`/recipes/queues`); a time limit
on a whole block rather than on each item is in :doc:`/recipes/timeouts`.

A library does this
-------------------

.. index::
   single: aiostream
   pair: aiostream; comparison
   single: asyncstdlib
   pair: asyncstdlib; comparison

* `aiostream <https://aiostream.readthedocs.io/>`__ is a set of stream
  operators that chain with ``|``: ``stream.merge`` interleaves sources as
  their items arrive (:func:`amerge`), ``stream.chunks`` groups by count
  (:func:`batched`), ``stream.timeout`` limits the wait for each item
  (:func:`timeout_per_item`), and ``stream.count(interval=...)`` or
  ``spaceout`` pace a stream, next to ``map`` with a concurrency limit,
  ``zip``, ``switchmap``, ``take`` and more.  ``async with
  xs.stream() as streamer:`` closes everything upstream when the block
  ends.  It is built on asyncio and needs Python 3.10+.  Choose it when a
  program combines many streams; copy the one or two helpers you need
  otherwise, and for Python 3.8 and 3.9.
* `asyncstdlib <https://asyncstdlib.readthedocs.io/>`__ gives the builtins,
  :mod:`itertools`, :mod:`functools` and :mod:`contextlib` an async twin
  (``anext``, ``zip``, ``enumerate``, ``batched``, ``islice``, ``tee``,
  ``closing`` and others) that accept sync and async iterables, plus
  ``scoped_iter()`` and ``borrow()`` for closing an iterator at the right
  moment.  It imports no event loop, so it works under Trio too, and it
  supports Python 3.8+.  It has nothing that runs sources concurrently: its
  ``merge`` merges sorted inputs, unlike :func:`amerge`, and there is no
  timeout per item.  Choose it for the one-line async versions of standard
  tools; the recipes for merging and timeouts.

See also
--------

* :doc:`/recipes/context_managers` – ``async with``, and context managers held by
  a generator.
* :doc:`/recipes/periodic` – jobs on a schedule, built on a drift-free clock like
  :func:`ticker`'s.
* :doc:`/recipes/queues` and :doc:`/recipes/timeouts`.
* Python reference: :ref:`python:async-iterators`,
  :ref:`python:asynchronous-generator-functions`, the
  :ref:`methods of an async generator <python:asynchronous-generator-methods>`,
  :ref:`the async for statement <python:async for>`, and
  :func:`contextlib.aclosing`.
* :meth:`asyncio.loop.shutdown_asyncgens`, which :func:`asyncio.run` calls at the
  end; :pep:`525` (asynchronous generators) and :pep:`530` (asynchronous
  comprehensions).
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from typing import (
    Any,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Deque,
    Dict,
    Generic,
    Iterable,
    List,
    Optional,
    Protocol,
    Tuple,
    TypeVar,
    Union,
    overload,
)

__all__ = [
    "Paginator",
    "aclosing",
    "amerge",
    "batched",
    "compat_aiter",
    "compat_anext",
    "ticker",
    "timeout_per_item",
]

T = TypeVar("T")
C = TypeVar("C")
D = TypeVar("D")


class _SupportsAclose(Protocol):
    def aclose(self) -> Awaitable[object]: ...


A = TypeVar("A", bound=_SupportsAclose)


class Paginator(Generic[T, C]):
    """Iterate over the items of a cursor-paginated API, fetching one page at a time.

    ``fetch_page(cursor)`` is awaited with ``None`` first, then with each cursor it
    returned; it returns ``(items, next_cursor)`` and ``next_cursor is None`` marks the
    last page.  Pages are fetched only when the previous page's items are used up:

    >>> import asyncio
    >>> from recipes.async_iteration import Paginator
    >>> async def fetch_page(cursor):
    ...     return {None: (["a", "b"], 2), 2: (["c"], None)}[cursor]
    >>> paginator = Paginator(fetch_page)
    >>> [item async for item in paginator], paginator.pages_fetched
    (['a', 'b', 'c'], 2)

    An empty page that still has a next cursor is skipped, and ``timeout`` bounds each
    fetch (``asyncio.TimeoutError`` after that many seconds; the iterator can be
    iterated again to retry the same page):

    >>> async def stuck(cursor):
    ...     await asyncio.sleep(3600)
    >>> try:
    ...     [item async for item in Paginator(stuck, timeout=0.5)]
    ... except asyncio.TimeoutError:
    ...     print("no page within 0.5 s")
    no page within 0.5 s

    A cancellation of the consumer always propagates, also one that arrives in the
    loop step in which a page does (``asyncio.wait_for`` drops it then on 3.8–3.11:
    CPython gh-86296); a page whose fetch it interrupts is fetched again when
    iteration resumes.  Iterate it from one task at a time; two concurrent consumers
    would race for the same page.
    """

    def __init__(
        self,
        fetch_page: Callable[[Optional[C]], Awaitable[Tuple[Iterable[T], Optional[C]]]],
        *,
        timeout: Optional[float] = None,
    ) -> None:
        if not callable(fetch_page):
            raise TypeError(f"fetch_page must be callable, not {type(fetch_page).__name__}")
        if timeout is not None and not timeout > 0:
            raise ValueError(
                f"timeout must be a positive number of seconds or None, not {timeout!r}"
            )
        self._fetch_page = fetch_page
        self._timeout = timeout
        self._cursor: Optional[C] = None
        self._buffer: Deque[T] = deque()
        self._finished = False
        self.pages_fetched = 0
        """How many pages have been fetched so far."""

    def __aiter__(self) -> Paginator[T, C]:
        return self

    async def __anext__(self) -> T:
        while not self._buffer:
            if self._finished:
                raise StopAsyncIteration
            items, next_cursor = await _wait_for(self._fetch_page(self._cursor), self._timeout)
            self.pages_fetched += 1
            self._buffer.extend(items)
            self._cursor = next_cursor
            self._finished = next_cursor is None
        return self._buffer.popleft()


def ticker(interval: float, *, count: Optional[int] = None) -> AsyncIterator[int]:
    """Yield tick numbers ``0, 1, 2, ...`` every ``interval`` seconds, without drift.

    Tick ``n`` is due ``n * interval`` seconds after the first, measured on the loop's
    clock, so time spent in the loop body does not push later ticks back:

    >>> import asyncio
    >>> from recipes.async_iteration import ticker
    >>> loop = asyncio.get_running_loop()
    >>> start = loop.time()
    >>> async for tick in ticker(0.2, count=3):
    ...     await asyncio.sleep(0.1)  # work shorter than the interval
    ...     print(tick, round(loop.time() - start, 1))
    0 0.1
    1 0.3
    2 0.5

    A consumer that falls more than a whole interval behind skips the ticks it
    missed, so the numbers jump (iteration still ends when the number reaches
    ``count``; without ``count`` it never ends – stop with ``break`` and close it):

    >>> async for tick in ticker(0.2, count=4):
    ...     print(tick)
    ...     await asyncio.sleep(0.5 if tick == 0 else 0)
    0
    2
    3

    Bad arguments raise at once, before any ticking:

    >>> ticker(0)
    Traceback (most recent call last):
      ...
    ValueError: interval must be a positive number of seconds, not 0
    """
    if isinstance(interval, bool) or not isinstance(interval, (int, float)):
        raise TypeError(f"interval must be a number, not {type(interval).__name__}")
    if not interval > 0:
        raise ValueError(f"interval must be a positive number of seconds, not {interval!r}")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int)):
        raise TypeError(f"count must be an int or None, not {type(count).__name__}")
    if count is not None and count < 0:
        raise ValueError(f"count must not be negative, not {count!r}")
    return _ticker(interval, count)


async def _ticker(interval: float, count: Optional[int]) -> AsyncIterator[int]:
    loop = asyncio.get_running_loop()
    start = loop.time()
    tick = 0
    while count is None or tick < count:
        delay = start + tick * interval - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        yield tick
        tick += 1
        late = loop.time() - (start + tick * interval)
        if late >= interval:
            tick += int(late // interval)


class aclosing(Generic[A]):
    """Close an async generator (anything with ``aclose()``) when the block exits.

    ``contextlib.aclosing`` on Python 3.10+; this copy also works on 3.8 and 3.9.
    Iterate inside the block, so that ``break``, an exception or a cancellation closes
    the generator at once and its ``finally`` blocks run in this task:

    >>> from recipes.async_iteration import aclosing
    >>> async def rows():
    ...     try:
    ...         yield "row 1"
    ...         yield "row 2"
    ...     finally:
    ...         print("cursor closed")
    >>> async with aclosing(rows()) as it:
    ...     async for row in it:
    ...         print(row)
    ...         break
    row 1
    cursor closed

    Closing an exhausted or never-started generator does nothing, so the wrapper is
    always safe:

    >>> async with aclosing(rows()) as it:
    ...     pass
    """

    def __init__(self, thing: A) -> None:
        self.thing = thing

    async def __aenter__(self) -> A:
        return self.thing

    async def __aexit__(self, *exc_info: object) -> None:
        await self.thing.aclose()


def compat_aiter(aiterable: AsyncIterable[T]) -> AsyncIterator[T]:
    """Return an async iterator for ``aiterable`` – the builtin :func:`aiter` for 3.8+.

    >>> from recipes.async_iteration import compat_aiter, ticker
    >>> it = compat_aiter(ticker(0.1, count=2))
    >>> [tick async for tick in it]
    [0, 1]

    Objects that are not async iterable raise :exc:`TypeError`, as the builtin does:

    >>> compat_aiter([1, 2])
    Traceback (most recent call last):
      ...
    TypeError: 'list' object is not an async iterable
    """
    aiter_method = getattr(type(aiterable), "__aiter__", None)
    if aiter_method is None:
        raise TypeError(f"{type(aiterable).__name__!r} object is not an async iterable")
    iterator = aiter_method(aiterable)
    if not hasattr(type(iterator), "__anext__"):
        raise TypeError(
            f"__aiter__ returned {type(iterator).__name__!r}, which is not an async iterator"
        )
    return iterator  # type: ignore[no-any-return]


_NO_DEFAULT: Any = object()


@overload
def compat_anext(iterator: AsyncIterator[T]) -> Awaitable[T]: ...
@overload
def compat_anext(iterator: AsyncIterator[T], default: D) -> Awaitable[Union[T, D]]: ...
def compat_anext(iterator: AsyncIterator[Any], default: Any = _NO_DEFAULT) -> Awaitable[Any]:
    """Return an awaitable for the next item – the builtin :func:`anext` for 3.8+.

    >>> from recipes.async_iteration import compat_anext
    >>> async def two():
    ...     yield 1
    ...     yield 2
    >>> it = two()
    >>> await compat_anext(it)
    1

    With a ``default``, an exhausted iterator gives the default instead of raising
    :exc:`StopAsyncIteration`:

    >>> await compat_anext(it, None), await compat_anext(it, None)
    (2, None)
    >>> await compat_anext(it)
    Traceback (most recent call last):
      ...
    StopAsyncIteration

    As with the builtin, a wrong type fails before anything is awaited:

    >>> compat_anext([1])
    Traceback (most recent call last):
      ...
    TypeError: 'list' object is not an async iterator
    """
    anext_method = getattr(type(iterator), "__anext__", None)
    if anext_method is None:
        raise TypeError(f"{type(iterator).__name__!r} object is not an async iterator")
    if default is _NO_DEFAULT:
        return anext_method(iterator)  # type: ignore[no-any-return]
    return _anext_or_default(anext_method(iterator), default)


async def _anext_or_default(step: Awaitable[T], default: D) -> Union[T, D]:
    try:
        return await step
    except StopAsyncIteration:
        return default


async def _aclose_all(iterators: Iterable[object]) -> None:
    """Close every iterator that has ``aclose``; re-raise the first failure afterwards."""
    error: Optional[BaseException] = None
    for iterator in iterators:
        aclose = getattr(iterator, "aclose", None)
        if aclose is None:
            continue
        try:
            await aclose()
        except BaseException as exc:  # close the others before reporting it
            if error is None:
                error = exc
    if error is not None:
        raise error


def batched(aiterable: AsyncIterable[T], n: int) -> AsyncIterator[List[T]]:
    """Group the items of ``aiterable`` into lists of ``n`` (the last may be shorter).

    The async cousin of ``itertools.batched`` (3.12), yielding lists:

    >>> from recipes.async_iteration import batched
    >>> async def numbers(count):
    ...     for i in range(count):
    ...         yield i
    >>> [batch async for batch in batched(numbers(5), 2)]
    [[0, 1], [2, 3], [4]]

    An empty stream gives no batches at all, not one empty batch:

    >>> [batch async for batch in batched(numbers(0), 3)]
    []

    ``n`` is checked before the stream is touched:

    >>> batched(numbers(5), 0)
    Traceback (most recent call last):
      ...
    ValueError: n must be at least 1, not 0

    A batch is yielded only when it is full or the stream ends; if the source is slow
    and you need partial batches after a delay, combine it with
    :func:`timeout_per_item` or a queue.  The source is closed when the batches stop.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, not {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n must be at least 1, not {n!r}")
    return _batched(compat_aiter(aiterable), n)


async def _batched(iterator: AsyncIterator[T], n: int) -> AsyncIterator[List[T]]:
    try:
        batch: List[T] = []
        async for item in iterator:
            batch.append(item)
            if len(batch) == n:
                yield batch
                batch = []
        if batch:
            yield batch
    finally:
        await _aclose_all([iterator])


_DONE: Any = object()


async def _next_or_done(iterator: AsyncIterator[T]) -> T:
    try:
        return await type(iterator).__anext__(iterator)
    except StopAsyncIteration:
        return _DONE  # type: ignore[no-any-return]


async def _cancel_and_wait(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel ``tasks`` and wait until they have finished, even if we are cancelled meanwhile.

    Results and errors of tasks that had already finished are discarded (the caller no
    longer wants them).  An error raised by a task *while it was being cancelled* – a
    source whose cleanup failed – is re-raised once all tasks are done; so is a
    cancellation of the caller that arrived during the wait, so the caller never
    closes a generator that a half-cancelled task is still running.
    """
    tasks = list(tasks)
    running = [task for task in tasks if not task.done()]
    for task in tasks:
        if task.done():
            if not task.cancelled():
                task.exception()  # mark it retrieved: no "exception was never retrieved"
        else:
            task.cancel()
    interrupted = False
    remaining = set(running)
    while remaining:
        try:
            await asyncio.wait(remaining)
        except asyncio.CancelledError:
            interrupted = True
        remaining = {task for task in remaining if not task.done()}
    errors = [task.exception() for task in running if not task.cancelled()]
    error = next((exc for exc in errors if exc is not None), None)
    if interrupted:
        raise asyncio.CancelledError from error
    if error is not None:
        raise error


def amerge(*aiterables: AsyncIterable[T]) -> AsyncIterator[T]:
    """Iterate several async iterables at once, yielding each item as soon as it is ready.

    Every source is asked for its next item concurrently (one task per source); a
    source is asked again only after its previous item has been consumed, so nothing
    runs ahead of the consumer.  Items that become ready at the same moment come in
    argument order:

    >>> import asyncio
    >>> from recipes.async_iteration import aclosing, amerge
    >>> async def every(delay, name, n):
    ...     for i in range(n):
    ...         await asyncio.sleep(delay)
    ...         yield f"{name}{i}"
    >>> streams = amerge(every(0.25, "slow", 2), every(0.2, "fast", 3))
    >>> async with aclosing(streams) as merged:
    ...     print([item async for item in merged])
    ['fast0', 'slow0', 'fast1', 'slow1', 'fast2']

    Leaving early inside :class:`aclosing` – ``break``, an exception, a cancellation –
    cancels the pending ``__anext__`` calls, waits for them, and closes every source,
    so their ``finally`` blocks run before the ``async with`` ends:

    >>> async def forever(name):
    ...     try:
    ...         while True:
    ...             await asyncio.sleep(0.1)
    ...             yield name
    ...     finally:
    ...         print(f"{name} closed")
    >>> async with aclosing(amerge(forever("x"), forever("y"))) as merged:
    ...     async for item in merged:
    ...         break
    x closed
    y closed

    Without ``aclosing``, a consumer that stops early leaves those tasks running until
    the merged generator is garbage collected.  If a source raises, the others are
    cancelled and closed and the exception propagates to the consumer.  With no
    arguments the result is simply empty.
    """
    iterators = [compat_aiter(aiterable) for aiterable in aiterables]
    return _amerge(iterators)


async def _amerge(iterators: List[AsyncIterator[T]]) -> AsyncIterator[T]:
    # Maps each in-flight __anext__ task to the index of its source.
    pending: Dict[asyncio.Future[T], int] = {}
    try:
        for index, iterator in enumerate(iterators):
            pending[asyncio.ensure_future(_next_or_done(iterator))] = index
        while pending:
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in sorted(done, key=pending.__getitem__):
                index = pending.pop(task)
                item = task.result()  # a failing source ends the merge here
                if item is _DONE:
                    continue
                yield item
                pending[asyncio.ensure_future(_next_or_done(iterators[index]))] = index
    finally:
        try:
            await _cancel_and_wait(pending)
        finally:
            await _aclose_all(iterators)


def timeout_per_item(aiterable: AsyncIterable[T], timeout: float) -> AsyncIterator[T]:
    """Re-yield the items of ``aiterable``, raising ``asyncio.TimeoutError`` on a long gap.

    Each item must arrive within ``timeout`` seconds of asking for it (time the
    consumer spends on an item does not count):

    >>> import asyncio
    >>> from recipes.async_iteration import aclosing, timeout_per_item
    >>> async def feed(*delays):
    ...     for delay in delays:
    ...         await asyncio.sleep(delay)
    ...         yield delay
    >>> [x async for x in timeout_per_item(feed(0.1, 0.2), timeout=0.5)]
    [0.1, 0.2]

    On a timeout the pending ``__anext__`` is cancelled – a generator receives
    :exc:`asyncio.CancelledError` at its ``await`` and runs its cleanup – and the
    source is closed; the stream cannot be resumed after that:

    >>> async with aclosing(timeout_per_item(feed(0.1, 5), timeout=0.5)) as items:
    ...     try:
    ...         async for x in items:
    ...             print(x)
    ...     except asyncio.TimeoutError as exc:
    ...         print("gave up:", exc)
    0.1
    gave up: no item within 0.5 seconds

    On Python 3.11+ ``async with asyncio.timeout(t): item = await anext(it)`` does
    the same inside the consumer's own task; this helper runs each ``__anext__`` in a
    short-lived task instead, which works on 3.8 too.
    """
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number, not {type(timeout).__name__}")
    if not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
    return _timeout_per_item(compat_aiter(aiterable), timeout)


async def _timeout_per_item(iterator: AsyncIterator[T], timeout: float) -> AsyncIterator[T]:
    try:
        while True:
            task = asyncio.ensure_future(_next_or_done(iterator))
            done: object = ()
            try:
                done, _ = await asyncio.wait({task}, timeout=timeout)
            finally:
                if not task.done():  # timed out, or we were cancelled
                    await _cancel_and_wait([task])
            if not done and task.cancelled():
                raise asyncio.TimeoutError(f"no item within {timeout} seconds")
            item = task.result()
            if item is _DONE:
                return
            yield item
    finally:
        await _aclose_all([iterator])


async def _wait_for(aw: Awaitable[T], timeout: Optional[float]) -> T:
    """``asyncio.wait_for(aw, timeout)``, minus its lost cancellation on 3.8–3.11.

    There, a caller that is cancelled in the loop step in which ``aw`` finishes
    gets the result, and the cancellation is gone (CPython gh-86296).  Here it
    always raises :exc:`asyncio.CancelledError`.
    """
    if sys.version_info >= (3, 11):
        # The scope cancels this very task and counts cancel requests: it never
        # takes someone else's cancellation for its timeout, nor drops one.
        async with asyncio.timeout(timeout):
            return await aw
    task = asyncio.ensure_future(aw)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    except asyncio.CancelledError:  # even if the task has just finished
        await _cancel_and_wait([task])
        raise
    if not done:
        await _cancel_and_wait([task])
        if task.cancelled():
            raise asyncio.TimeoutError
    return task.result()
