"""A popular page's cache entry expires and, in the same millisecond, a
thousand requests ask the database for the same row; a dashboard fires the
same slow query from five widgets at once; a token endpoint gets a refresh
request from every worker that noticed the token ran out.  Each caller is
right to want the value, and wrong to fetch it on its own.  This chapter
makes concurrent callers *share* one call: :class:`SingleFlight` runs at most
one call per key at a time and hands its outcome to everyone who asked,
:class:`TTLCache` adds a time-limited, size-bounded cache on top without
letting an expiry start a stampede, and the :func:`coalesce` decorator puts
either on an async function.  Along the way: what happens when callers are
cancelled or the call fails, and why :func:`functools.lru_cache` must not be
put on a coroutine function.

Sharing one call between concurrent callers
-------------------------------------------

.. index::
   single: single-flight
   single: request coalescing
   single: deduplicating concurrent calls
   single: SingleFlight

Callers that arrive while a call for their key is in progress should wait
for that call instead of starting another.  :meth:`SingleFlight.call` takes
the key and a zero-argument *factory* (a :func:`functools.partial` or a
``lambda``) that starts the call; the first caller's factory is used, the
others only wait.  A thousand concurrent callers, one query:

>>> import asyncio
>>> import functools
>>> from recipes.coalescing import SingleFlight
>>> queries = []
>>> async def load_user(user_id):
...     queries.append(user_id)
...     await asyncio.sleep(0.1)  # a slow database query
...     return {"id": user_id, "name": f"user {user_id}"}
>>> flight = SingleFlight()
>>> load_42 = functools.partial(load_user, 42)
>>> users = await asyncio.gather(
...     *(flight.call(42, load_42) for _ in range(1000))
... )
>>> len(users), queries
(1000, [42])
>>> users[0] is users[999]
True

Different keys run side by side, and a caller that comes *after* a call has
finished starts a new one: single-flight removes duplicate work in progress,
it does not remember results (that is :class:`TTLCache`'s job, in the next
section).  A finished call leaves nothing behind in the :class:`SingleFlight`:

>>> await asyncio.gather(
...     flight.call(1, functools.partial(load_user, 1)),
...     flight.call(2, functools.partial(load_user, 2)),
... )
[{'id': 1, 'name': 'user 1'}, {'id': 2, 'name': 'user 2'}]
>>> await flight.call(42, load_42)
{'id': 42, 'name': 'user 42'}
>>> queries, len(flight)
([42, 1, 2, 42], 0)

.. index::
   pair: single-flight; shared result object
   pair: single-flight; context variables

.. important::

   Every caller gets the *same* object, as ``users[0] is users[999]`` shows.
   A caller that changes it (``user["name"] = ...``) changes it for all the
   others.  Return immutable values (tuples, frozen dataclasses, strings),
   or copy before you modify.  And the key must name the call completely:
   two calls with the same key but different arguments get one answer,
   whichever call started first.

The call runs in a task of its own, created by the first caller, so it sees
that caller's context variables (a request ID in a log line names the
first request only) and none of the other callers' timeouts: each caller's
timeout limits how long *it* waits, which the section
:ref:`recipes/coalescing:When a caller is cancelled or times out` relies on.

Caching results for a while, without a stampede
-----------------------------------------------

.. index::
   single: TTL cache
   single: cache stampede
   single: thundering herd
   single: TTLCache
   pair: cache; expiry on the loop clock
   single: error messages; is bound to a different event loop

A plain cache still lets a stampede through: when a popular entry expires,
every request that arrives before the new value is stored sees a miss and
loads it again.  :class:`TTLCache` sends misses through a
:class:`SingleFlight`, so there is one load per key however many callers
miss at once.  An entry is fresh for ``ttl`` seconds after its load
*finished*, measured on the event loop's clock (:meth:`loop.time()
<asyncio.loop.time>`), so a test that runs its loop on a virtual clock
(the ``looptime`` package) can let an entry expire without waiting for it:

>>> from recipes.coalescing import TTLCache
>>> loop = asyncio.get_running_loop()
>>> fetches = []
>>> async def fetch_rate(currency):
...     fetches.append(currency)
...     await asyncio.sleep(0.5)  # a slow HTTP API
...     return {"EUR": 1.08, "GBP": 1.27}[currency]
>>> rates = TTLCache(ttl=5)
>>> eur = functools.partial(fetch_rate, "EUR")
>>> async def ask(count):
...     start = loop.time()
...     got = await asyncio.gather(
...         *(rates.get("EUR", eur) for _ in range(count))
...     )
...     return sorted(set(got)), round(loop.time() - start, 1)
>>> await ask(100)
([1.08], 0.5)
>>> await asyncio.sleep(4)
>>> await ask(100), fetches
(([1.08], 0.0), ['EUR'])

A hundred callers, one fetch; four seconds later, answers from the cache
with no wait at all.  When the entry has expired, the next callers again share one
load:

>>> await asyncio.sleep(2)
>>> await ask(100), fetches
(([1.08], 0.5), ['EUR', 'EUR'])

.. index::
   single: stale-while-revalidate

Which policy for an expired entry?  :class:`TTLCache` makes the callers that
find it expired *wait for the refresh*, as above: nobody ever gets a value
older than ``ttl``, and a value that stopped being fetchable is not served
for ever.  The price is latency: every ``ttl`` seconds, one round of callers
waits for a load.  The alternative, "stale-while-revalidate", answers at
once with the old value while one refresh runs in the background; it hides
the latency but serves values up to ``ttl`` plus one load old, and the
background refresh is a task that something must own, log the errors of and
cancel at shutdown.  If you need it, build it from the same parts: keep the
expired entry, start the refresh with :meth:`SingleFlight.call` inside a task
you keep a reference to, and return the old value.

.. important::

   The clock is the event loop's, not the wall clock, so a :class:`TTLCache`
   belongs to one event loop: its expiry times mean nothing in another
   loop, and its loads are tasks of the loop they started in.  It binds to
   the loop of its first use and raises ``RuntimeError: <TTLCache ...> is
   bound to a different event loop`` in any other.  Create it inside the
   running loop (in ``main()``), or use :func:`coalesce`, which keeps one
   cache per loop.

When a caller is cancelled or times out
---------------------------------------

.. index::
   pair: single-flight; cancellation
   pair: shield; single-flight
   pair: wait_for; single-flight

A caller that gives up must not take the call away from the others.  This
is what the separate task is for: each caller awaits the shared task through
:func:`asyncio.shield`, so cancelling a caller (directly, or with a timeout)
ends *its* wait and nothing else.  Here the impatient caller times out after
0.1 s and the patient one still gets the report, from the one call that was
made:

>>> flight = SingleFlight()
>>> reports = []
>>> async def build_report(name):
...     reports.append(name)
...     await asyncio.sleep(1)
...     return f"report {name}"
>>> q3 = functools.partial(build_report, "Q3")
>>> impatient = asyncio.wait_for(flight.call("Q3", q3), timeout=0.1)
>>> patient = flight.call("Q3", q3)
>>> await asyncio.gather(impatient, patient, return_exceptions=True)
[TimeoutError(), 'report Q3']
>>> reports
['Q3']

When the *last* caller leaves, nobody wants the result any more, so the call
is cancelled; that caller waits until the call has finished its cleanup
(like :func:`asyncio.wait_for` does), so no task is left behind and the
cleanup has run by the time the cancellation reaches it:

>>> closed = []
>>> async def query(sql):
...     try:
...         await asyncio.sleep(10)
...         return "rows"
...     finally:
...         closed.append(sql)  # the cursor is closed here
>>> select = functools.partial(query, "SELECT 1")
>>> callers = [
...     asyncio.create_task(flight.call("SELECT 1", select))
...     for _ in range(3)
... ]
>>> await asyncio.sleep(0.1)
>>> for caller in callers:
...     caller.cancel()
...
True
True
True
>>> outcomes = await asyncio.gather(*callers, return_exceptions=True)
>>> [type(outcome).__name__ for outcome in outcomes]
['CancelledError', 'CancelledError', 'CancelledError']
>>> closed, len(flight)
(['SELECT 1'], 0)

A caller that arrives while the abandoned call is still cleaning up starts
a fresh call; it never joins one that is being cancelled.

.. index::
   single: error messages; CancelledError in a caller that was not cancelled

.. important::

   The obvious hand-written version lets the first caller run the call
   itself and makes the others wait on a future it will fill in.  Cancel
   that first caller (a client disconnects, a timeout fires) and the call
   dies with it: every other caller gets a ``CancelledError`` although
   nobody cancelled *them*.  A ``CancelledError`` must be re-raised, not
   swallowed (:ref:`recipes/cancellation:Never swallowing
   CancelledError`), so it then stops those callers as if they had been
   cancelled: one client that disconnects aborts every request that
   shared its call.  Wrapping the first caller's call in :func:`asyncio.shield` alone
   is no better: the call then survives, but nothing cancels it when every
   caller has gone.  The call needs its own task *and* a count of the
   callers still waiting for it, which is what :class:`SingleFlight` keeps.

When the call fails
-------------------

.. index::
   pair: single-flight; exceptions
   pair: cache; errors are not cached
   single: negative caching

If the call raises, every caller waiting for it gets the exception, and
nothing is remembered: the next call tries again.  A cache that stored the
failure would keep answering "database restarting" long after the database
is back:

>>> attempts = []
>>> async def flaky_total(account):
...     attempts.append(account)
...     await asyncio.sleep(0.1)
...     if len(attempts) == 1:
...         raise ConnectionError("database restarting")
...     return 1200
>>> totals = TTLCache(ttl=60)
>>> total = functools.partial(flaky_total, "ACME")
>>> results = await asyncio.gather(
...     *(totals.get("ACME", total) for _ in range(3)),
...     return_exceptions=True,
... )
>>> [type(result).__name__ for result in results]
['ConnectionError', 'ConnectionError', 'ConnectionError']
>>> await totals.get("ACME", total), attempts
(1200, ['ACME', 'ACME'])

The three callers shared one failed attempt; the next caller made the
second attempt and its result is cached.  To retry *inside* the shared call,
so that the waiting callers see only the final outcome, put the retry loop
in the factory (the retry recipe of :ref:`recipes/errors:Retrying with
exponential backoff`); retrying in each caller instead multiplies the
attempts by the number of callers.

An answer that is "not found" is still an answer: to cache it, return a
value for it (``None``, an empty list) rather than raising.  Caching
failures on purpose ("negative caching"), for a shorter time than
successes, is a policy of its own; store the failure as a value if you
want it.

Bounding the memory a cache uses
--------------------------------

.. index::
   pair: cache; LRU eviction
   pair: cache; maxsize
   single: memory; bounded cache

A cache keyed by user input (URLs, search terms, user IDs) grows without
limit unless something removes entries; expiry alone does not, because an
expired entry is only dropped when someone asks for its key again.
``maxsize`` bounds the number of entries: storing one more evicts the *least
recently used* entry, where a cache hit counts as a use:

>>> computed = []
>>> async def square(n):
...     computed.append(n)
...     return n * n
>>> small = TTLCache(ttl=3600, maxsize=2)
>>> for n in (1, 2, 1, 3):
...     await small.get(n, functools.partial(square, n))
...
1
4
1
9
>>> len(small), computed
(2, [1, 2, 3])
>>> await small.get(2, functools.partial(square, 2)), computed
(4, [1, 2, 3, 2])

Key 1 was used again before 3 arrived, so 2 was the least recently used and
made room for 3; asking for 2 again computes it again.  Loads in progress are
not entries: they live in the cache's :class:`SingleFlight` only while they
run (one per key being loaded, so at most one per waiting caller) and are
removed when they finish, successfully or not.  ``maxsize`` therefore
bounds the stored values; the number of loads is bounded by your
concurrency, which :doc:`/recipes/limiting` limits.

To drop an entry before it expires (the row was updated), call
:meth:`TTLCache.invalidate`; a load already in progress for that key is then
not stored, so an update that happens during a load cannot be overwritten
by the older value the load read:

>>> small.invalidate(2)
>>> len(small)
1

Coalescing calls with a decorator
---------------------------------

.. index::
   single: coalesce
   pair: decorator; cache for async functions
   single: error messages; is an unhashable list: no cache key

:func:`coalesce` puts both recipes on an async function.  The key is built
from the arguments; ``ttl=0`` (the default) only shares calls in progress,
a positive ``ttl`` also caches results for that many seconds:

>>> from recipes.coalescing import coalesce
>>> resolved = []
>>> @coalesce(ttl=30)
... async def resolve(host, port=443):
...     resolved.append(host)
...     address = f"192.0.2.{len(resolved)}"
...     await asyncio.sleep(0.2)  # a DNS query
...     return address, port
>>> await asyncio.gather(
...     resolve("example.org"),
...     resolve("example.org"),
...     resolve("example.net"),
... )
[('192.0.2.1', 443), ('192.0.2.1', 443), ('192.0.2.2', 443)]
>>> await resolve("example.org"), resolved
(('192.0.2.1', 443), ['example.org', 'example.net'])

As with :func:`functools.lru_cache`, the key is the arguments *as passed*:
``resolve("a")``, ``resolve("a", 443)`` and ``resolve("a", port=443)`` are
three different keys with the same answer (keyword arguments are sorted, so
their order does not matter).  Every argument must be hashable; a list or
a dict is refused with an error that names it, before any call is made:

>>> await resolve(["example.org"])
Traceback (most recent call last):
...
TypeError: resolve() argument 1 is an unhashable list: no cache key

Pass a tuple or a :class:`frozenset` instead.  On a method, ``self`` is part
of the key: instances must be hashable (a ``@dataclass`` with ``eq=True``
that is not ``frozen`` is not), and a cached result keeps its instance alive
until it is evicted or expires.

The decorated function keeps one :class:`SingleFlight` or :class:`TTLCache`
*per event loop*, created on first use in that loop, so decorating at import
time is safe and the function works across several ``asyncio.run()`` calls;
``resolve.invalidate("example.org")`` drops one key in the running loop's
cache.

Why functools.lru_cache breaks on async functions
-------------------------------------------------

.. index::
   pair: lru_cache; coroutine function
   single: error messages; cannot reuse already awaited coroutine
   single: async-lru (package)

Putting :func:`functools.lru_cache` (or :func:`functools.cache`) on an
``async def`` function looks like it works, and fails on the second call.
Calling a coroutine function does not run it: it returns a coroutine
object, and that is what ``lru_cache`` stores.  The second call returns the
*same* coroutine object, which has already been awaited:

>>> @functools.lru_cache(maxsize=None)
... async def get_settings(name):
...     await asyncio.sleep(0.1)
...     return {"name": name}
>>> await get_settings("db")
{'name': 'db'}
>>> await get_settings("db")
Traceback (most recent call last):
...
RuntimeError: cannot reuse already awaited coroutine

.. important::

   Caching a *task* instead (``lru_cache`` on a plain function that returns
   ``asyncio.ensure_future(load(name))``) avoids that error and brings three
   others: a failed task is cached for ever, so the error comes back on
   every call; the task belongs to the loop that created it, so the next
   ``asyncio.run()`` gets a task of a closed loop; and a caller that
   cancels its wait cancels the cached task for everybody.  Use
   :func:`coalesce`, or the ``alru_cache`` decorator of the third-party
   ``async-lru`` package.

Putting it together
-------------------

A whole program: a configuration loader decorated at import time, used by
many concurrent requests in two separate ``asyncio.run()`` calls (each run
has its own loop, so each gets its own cache and loads once).

.. script:: config_cache.py

   import asyncio

   from recipes.coalescing import coalesce

   loads = []


   @coalesce(ttl=60)
   async def load_config(name):
       loads.append(name)
       await asyncio.sleep(0.05)  # read a file, ask a server...
       return {"name": name, "workers": 4}


   async def handle_request(n):
       config = await asyncio.wait_for(load_config("app"), timeout=5)
       return config["workers"]


   async def main():
       answers = await asyncio.gather(*(handle_request(n) for n in range(500)))
       print(len(answers), "requests, workers =", set(answers))


   for run in (1, 2):
       asyncio.run(main())
       print("run", run, "loads so far:", len(loads))

.. script-output::

   500 requests, workers = {4}
   run 1 loads so far: 1
   500 requests, workers = {4}
   run 2 loads so far: 2

A library does this
-------------------

.. index::
   single: async-lru
   pair: async-lru; comparison
   single: aiocache
   pair: aiocache; comparison

* `async-lru <https://github.com/aio-libs/async-lru>`__ is the closest:
  ``@alru_cache(maxsize=..., ttl=...)`` does what ``@coalesce(ttl=...)``
  does.  Concurrent calls with equal arguments share one task (awaited
  through :func:`asyncio.shield`), errors and cancellations are not cached,
  and when the last waiting caller is cancelled the call is cancelled too,
  though that caller does not wait for its cleanup as here.  It adds ``jitter`` on
  the expiry, a ``key`` function, ``cache_info()``, ``cache_invalidate()``
  and ``cache_close()``; in a new event loop it warns and starts empty, where
  :class:`TTLCache` raises.  It has no object for calls you make by key
  without decorating a function (:class:`SingleFlight`).  Needs Python
  3.10+.  Choose it to decorate functions; the recipes for Python 3.8 and
  3.9 or keyed calls.
* `aiocache <https://aiocache.readthedocs.io/>`__ caches in memory, Redis or
  Memcached with serializers.  Its plain ``@cached`` does not share a load
  between concurrent callers; ``@cached_stampede`` does it with a lock held
  for a lease (two seconds by default), and with Redis that lock works
  across processes, which no recipe here does.  A cached ``None`` counts as
  a miss.  Choose it for a cache shared between processes; the recipes for
  one process.

See also
--------

* :doc:`/recipes/cancellation` – how a cancellation travels, and
  :ref:`recipes/cancellation:Cleanup that must await`.
* :doc:`/recipes/timeouts` – :ref:`recipes/timeouts:Protecting work from
  cancellation` and :ref:`recipes/timeouts:Stop waiting, but let the work
  finish`, the two halves of what :class:`SingleFlight` does for each caller.
* :doc:`/recipes/limiting` – bounding the number of distinct calls in
  flight, which a cache does not do.
* :doc:`/recipes/errors` – retrying inside the shared call.
* Python: :func:`asyncio.shield` and :func:`asyncio.wait_for` in
  :doc:`python:library/asyncio-task`; :func:`functools.lru_cache` and
  :func:`functools.partial` in :doc:`python:library/functools`.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import math
import sys
import weakref
from typing import (
    TYPE_CHECKING,
    Any,
    Awaitable,
    Callable,
    Coroutine,
    Dict,
    Hashable,
    Optional,
    Tuple,
    TypeVar,
    Union,
)

if TYPE_CHECKING or sys.version_info >= (3, 10):
    from typing import ParamSpec

    P = ParamSpec("P")

__all__ = ["SingleFlight", "TTLCache", "coalesce"]

T = TypeVar("T")
R = TypeVar("R")


def _check_hashable(key: object, what: str) -> None:
    try:
        hash(key)
    except TypeError as exc:
        raise TypeError(f"{what} must be hashable, got {type(key).__name__}: {exc}") from None


def _check_loop(
    owner: object, bound: Optional[asyncio.AbstractEventLoop]
) -> asyncio.AbstractEventLoop:
    """The running loop, which must be *bound* (the loop of first use) unless that is None."""
    loop = asyncio.get_running_loop()
    if bound is not None and bound is not loop:
        raise RuntimeError(f"{owner!r} is bound to a different event loop; create one per loop")
    return loop


class _Flight:
    """One call in progress and the number of callers waiting for it."""

    __slots__ = ("task", "waiters")

    def __init__(self, task: asyncio.Future[Any]) -> None:
        self.task = task
        self.waiters = 0


class SingleFlight:
    """Run at most one call per key at a time; everyone who asks shares its outcome.

    The first caller for a key starts the call, in a task of its own; callers
    that arrive while it runs wait for the same result (or exception).  The
    task is forgotten as soon as it finishes, so a later caller starts a new
    call:

    >>> import asyncio
    >>> from recipes.coalescing import SingleFlight
    >>> started = []
    >>> async def ping(host):
    ...     started.append(host)
    ...     await asyncio.sleep(0.1)
    ...     return f"{host} is up"
    >>> flight = SingleFlight()
    >>> await asyncio.gather(
    ...     flight.call("db", lambda: ping("db")),
    ...     flight.call("db", lambda: ping("db")),
    ...     flight.call("cache", lambda: ping("cache")),
    ... )
    ['db is up', 'db is up', 'cache is up']
    >>> started, len(flight)
    (['db', 'cache'], 0)

    A caller that is cancelled stops waiting; the call goes on for the
    others.  When the last waiting caller is cancelled, the call is
    cancelled too, and that caller waits for it to finish cancelling:

    >>> task = asyncio.create_task(flight.call("db", lambda: ping("db")))
    >>> await asyncio.sleep(0.05)
    >>> "db" in flight
    True
    >>> task.cancel()
    True
    >>> try:
    ...     await task
    ... except asyncio.CancelledError:
    ...     print("cancelled")
    cancelled
    >>> "db" in flight, len(flight)
    (False, 0)

    Keys must be hashable, as for a :class:`dict`:

    >>> await flight.call(["db"], lambda: ping("db"))
    Traceback (most recent call last):
    ...
    TypeError: key must be hashable, got list: unhashable type: 'list'

    A :class:`SingleFlight` belongs to the event loop it is first used in.
    """

    def __init__(self) -> None:
        self._flights: Dict[Hashable, _Flight] = {}
        self._loop: Optional[asyncio.AbstractEventLoop] = None

    def __repr__(self) -> str:
        return f"<SingleFlight in_flight={len(self._flights)}>"

    def __len__(self) -> int:
        """The number of calls in progress (one per key)."""
        return len(self._flights)

    def __contains__(self, key: object) -> bool:
        """Whether a call for *key* is in progress."""
        return key in self._flights

    async def call(self, key: Hashable, factory: Callable[[], Awaitable[T]]) -> T:
        """Return ``await factory()``, sharing one call with concurrent callers of *key*.

        *factory* is a zero-argument callable returning an awaitable (usually
        a coroutine); it is called only when no call for *key* is in
        progress.  The exception of a failed call is raised in every caller
        waiting for it, and nothing is remembered:

        >>> import asyncio
        >>> from recipes.coalescing import SingleFlight
        >>> flight = SingleFlight()
        >>> async def broken():
        ...     await asyncio.sleep(0.1)
        ...     raise LookupError("no such user")
        >>> results = await asyncio.gather(
        ...     flight.call("u1", broken),
        ...     flight.call("u1", broken),
        ...     return_exceptions=True,
        ... )
        >>> results
        [LookupError('no such user'), LookupError('no such user')]
        >>> results[0] is results[1], len(flight)
        (True, 0)

        Raises :exc:`TypeError` for an unhashable key and
        :exc:`RuntimeError` when used from an event loop other than the
        first one.
        """
        _check_hashable(key, "key")
        loop = self._loop = _check_loop(self, self._loop)
        flight = self._flights.get(key)
        if flight is None:
            # The call runs in a task of its own, not in the first caller's task:
            # cancelling any one caller must not cancel everybody's call.
            task = asyncio.ensure_future(factory(), loop=loop)
            flight = self._flights[key] = _Flight(task)
            task.add_done_callback(functools.partial(self._finished, key, flight))
        flight.waiters += 1
        try:
            return await asyncio.shield(flight.task)  # type: ignore[no-any-return]
        finally:
            flight.waiters -= 1
            if flight.waiters == 0 and not flight.task.done():
                # The last caller has gone (cancelled): nobody wants the result.
                await self._abandon(key, flight)

    def forget(self, key: Hashable) -> None:
        """Let the next call for *key* start a new call.

        Callers already waiting keep waiting for the call in progress.
        """
        _check_hashable(key, "key")
        self._flights.pop(key, None)

    def _current(self, key: Hashable) -> Optional[asyncio.Future[Any]]:
        flight = self._flights.get(key)
        return None if flight is None else flight.task

    def _finished(self, key: Hashable, flight: _Flight, _task: object) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]

    async def _abandon(self, key: Hashable, flight: _Flight) -> None:
        """Cancel a call nobody waits for, and wait until it has cleaned up."""
        self._finished(key, flight, None)  # a new caller starts afresh
        flight.task.cancel()
        await asyncio.wait({flight.task})
        if not flight.task.cancelled():
            flight.task.exception()  # it ignored the cancellation: mark as retrieved


class _Entry:
    __slots__ = ("expires", "value")

    def __init__(self, value: Any, expires: float) -> None:
        self.value = value
        self.expires = expires


class TTLCache:
    """A cache of awaited results: fresh for *ttl* seconds, at most *maxsize* entries.

    :meth:`get` returns the cached value of a key while it is fresh, and
    otherwise loads it once however many callers ask at the same time
    (through a :class:`SingleFlight`); callers that find an entry expired
    wait for its reload.  Only successful results are stored, to expire
    ``ttl`` seconds of the loop's clock after their load finished; the least
    recently used entry is evicted to keep at most *maxsize*:

    >>> import asyncio
    >>> from recipes.coalescing import TTLCache
    >>> loads = []
    >>> async def price(item):
    ...     loads.append(item)
    ...     await asyncio.sleep(0.1)
    ...     return len(item) * 100
    >>> prices = TTLCache(ttl=2, maxsize=100)
    >>> await prices.get("tea", lambda: price("tea"))
    300
    >>> await asyncio.sleep(1.5)
    >>> await prices.get("tea", lambda: price("tea")), loads
    (300, ['tea'])
    >>> await asyncio.sleep(1)
    >>> await prices.get("tea", lambda: price("tea")), loads
    (300, ['tea', 'tea'])

    *ttl* may be :data:`math.inf` (entries never expire and only *maxsize*
    removes them); a ttl or maxsize that makes no sense is refused:

    >>> TTLCache(ttl=0)
    Traceback (most recent call last):
    ...
    ValueError: ttl must be > 0 seconds, got 0
    >>> TTLCache(ttl=60, maxsize=0)
    Traceback (most recent call last):
    ...
    ValueError: maxsize must be >= 1, got 0

    A :class:`TTLCache` belongs to the event loop it is first used in: its
    clock is that loop's clock.
    """

    def __init__(self, ttl: float, *, maxsize: int = 1024) -> None:
        self.ttl = _check_ttl(ttl, allow_zero=False)
        self.maxsize = _check_maxsize(maxsize)
        self._entries: collections.OrderedDict[Hashable, _Entry] = collections.OrderedDict()
        self._loads = SingleFlight()
        self._loop: Optional[asyncio.AbstractEventLoop] = None

    def __repr__(self) -> str:
        return (
            f"<TTLCache ttl={self.ttl} maxsize={self.maxsize} entries={len(self._entries)}"
            f" loading={len(self._loads)}>"
        )

    def __len__(self) -> int:
        """The number of entries stored, fresh or expired (loads in progress not counted)."""
        return len(self._entries)

    async def get(self, key: Hashable, factory: Callable[[], Awaitable[T]]) -> T:
        """Return the fresh cached value of *key*, or ``await factory()`` once and cache it.

        >>> import asyncio
        >>> from recipes.coalescing import TTLCache
        >>> cache = TTLCache(ttl=60)
        >>> calls = []
        >>> async def answer():
        ...     calls.append(1)
        ...     await asyncio.sleep(0.1)
        ...     return 42
        >>> await asyncio.gather(*(cache.get("q", answer) for _ in range(5)))
        [42, 42, 42, 42, 42]
        >>> await cache.get("q", answer), len(calls)
        (42, 1)

        If the load fails, every caller waiting for it gets the exception and
        nothing is cached.  Cancelling a caller does not cancel the load
        unless no other caller is waiting for it.
        """
        _check_hashable(key, "key")
        loop = self._loop = _check_loop(self, self._loop)
        entry = self._entries.get(key)
        if entry is not None:
            if loop.time() < entry.expires:
                self._entries.move_to_end(key)
                return entry.value  # type: ignore[no-any-return]
            del self._entries[key]
        return await self._loads.call(key, functools.partial(self._load, key, factory))

    def invalidate(self, key: Hashable) -> None:
        """Drop *key*; a load in progress for it will not be stored."""
        _check_hashable(key, "key")
        self._entries.pop(key, None)
        self._loads.forget(key)

    def clear(self) -> None:
        """Drop every entry; loads in progress will not be stored."""
        self._entries.clear()
        self._loads._flights.clear()

    async def _load(self, key: Hashable, factory: Callable[[], Awaitable[T]]) -> T:
        value = await factory()
        # Stored only if it succeeded, and only if nobody invalidated the key meanwhile.
        if self._loads._current(key) is asyncio.current_task():
            loop = asyncio.get_running_loop()
            self._entries[key] = _Entry(value, loop.time() + self.ttl)
            self._entries.move_to_end(key)
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)  # least recently used
        return value


def _check_ttl(ttl: object, *, allow_zero: bool) -> float:
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
        raise TypeError(f"ttl must be a number of seconds, got {ttl!r}")
    if math.isnan(ttl) or ttl < 0 or (ttl == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"ttl must be {bound} seconds, got {ttl!r}")
    return float(ttl)


def _check_maxsize(maxsize: object) -> int:
    if isinstance(maxsize, bool) or not isinstance(maxsize, int):
        raise TypeError(f"maxsize must be an int, got {maxsize!r}")
    if maxsize < 1:
        raise ValueError(f"maxsize must be >= 1, got {maxsize}")
    return maxsize


_KWARGS_MARK = object()


def _make_key(name: str, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Hashable:
    key: Tuple[Any, ...] = args
    if kwargs:
        key += (_KWARGS_MARK, *sorted(kwargs.items()))
    try:
        hash(key)
    except TypeError:
        for position, arg in enumerate(args):
            _explain_unhashable(name, str(position + 1), arg)
        for keyword, arg in kwargs.items():
            _explain_unhashable(name, repr(keyword), arg)
        raise
    return key


def _explain_unhashable(name: str, where: str, arg: object) -> None:
    try:
        hash(arg)
    except TypeError:
        raise TypeError(
            f"{name}() argument {where} is an unhashable {type(arg).__name__}: no cache key"
        ) from None


def coalesce(
    *, ttl: float = 0, maxsize: int = 1024
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Coroutine[Any, Any, R]]]:
    """Decorate an async function so that concurrent calls with equal arguments share one call.

    With ``ttl=0`` (the default) only calls in progress are shared
    (:class:`SingleFlight`); with a positive *ttl* the results are also
    cached for *ttl* seconds of the loop's clock, at most *maxsize* of them
    (:class:`TTLCache`):

    >>> import asyncio
    >>> from recipes.coalescing import coalesce
    >>> hits = []
    >>> @coalesce()
    ... async def count_rows(table):
    ...     hits.append(table)
    ...     await asyncio.sleep(0.1)
    ...     return 1000
    >>> await asyncio.gather(count_rows("users"), count_rows("users"))
    [1000, 1000]
    >>> await count_rows("users"), hits
    (1000, ['users', 'users'])

    The key is made of the positional arguments and the sorted keyword
    arguments; all must be hashable:

    >>> await count_rows({"name": "users"})
    Traceback (most recent call last):
    ...
    TypeError: count_rows() argument 1 is an unhashable dict: no cache key

    ``func.invalidate(*args, **kwargs)`` forgets the entry (or the call in
    progress) for those arguments, in the running loop:

    >>> @coalesce(ttl=60)
    ... async def version(component):
    ...     hits.append(component)
    ...     return "1.2"
    >>> await version("api"), await version("api"), hits.count("api")
    ('1.2', '1.2', 1)
    >>> version.invalidate("api")
    >>> await version("api"), hits.count("api")
    ('1.2', 2)

    The shared state is kept per event loop (created on first use in it),
    so the decorator can be applied at import time.
    """
    ttl = _check_ttl(ttl, allow_zero=True)
    maxsize = _check_maxsize(maxsize)

    def decorate(func: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
        # "Client.fetch" for a method; no "<locals>" for a function defined in one.
        name = getattr(func, "__qualname__", repr(func)).rpartition("<locals>.")[2]
        states: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, Union[SingleFlight, TTLCache]
        ] = weakref.WeakKeyDictionary()

        def state() -> Union[SingleFlight, TTLCache]:
            loop = asyncio.get_running_loop()
            found = states.get(loop)
            if found is None:
                # One per loop: tasks and the TTL clock belong to the loop.
                found = states[loop] = TTLCache(ttl, maxsize=maxsize) if ttl else SingleFlight()
            return found

        @functools.wraps(func)
        async def coalesced(*args: P.args, **kwargs: P.kwargs) -> R:
            key = _make_key(name, args, kwargs)
            call = functools.partial(func, *args, **kwargs)
            shared = state()
            if isinstance(shared, TTLCache):
                return await shared.get(key, call)
            return await shared.call(key, call)

        def invalidate(*args: Any, **kwargs: Any) -> None:
            shared = state()
            key = _make_key(name, args, kwargs)
            if isinstance(shared, TTLCache):
                shared.invalidate(key)
            else:
                shared.forget(key)

        coalesced.invalidate = invalidate  # type: ignore[attr-defined]
        return coalesced

    return decorate
