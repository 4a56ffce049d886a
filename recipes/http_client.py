"""An HTTP call is the most common thing an asyncio program waits for, and
:mod:`aiohttp` makes the first request easy: open a
:class:`aiohttp.ClientSession`, ``await session.get(url)``, done.  The
trouble starts in production.  A session per request throws away the
connection pool, a forgotten ``close()`` ends in warnings at exit, a server
that stops answering hangs the program, a burst of a thousand requests opens a
thousand sockets, one failed URL loses the other results, and a 503 during a
deploy becomes an outage.  This chapter answers each of these with a small
recipe you can copy.  It needs ``aiohttp`` (3.9 or newer), and the download
recipe also ``aiofiles``: ``pip install aiohttp aiofiles`` (or
``pip install asyncio-cookbook[http,files]``).

Every example talks to a small local demo server, never to the internet.
``base_url`` is the address of the demo HTTP server (``dsn`` of a PostgreSQL
server): in your own session start them with ``python -m tests.demo_servers``
from a checkout and paste the two lines it prints.  This chapter needs only
the first line; ``python -m tests.demo_servers --no-postgres`` starts the HTTP
server alone.  (When the examples run as tests, each docstring gets a fresh
copy of the server and ``base_url`` is set for it.)

Sharing one session across the application
------------------------------------------

.. index::
   single: aiohttp; ClientSession
   pair: connection pool; aiohttp
   single: warnings; Unclosed client session
   single: warnings; Unclosed connector
   single: error messages; Event loop is closed

A :class:`aiohttp.ClientSession` is not a single request: it owns a connection
pool, cookies and default headers, and it is meant to live as long as your
application.  Create one at start-up (inside a coroutine, because it binds to
the running loop), pass it to whatever makes requests, and close it at the
end.  :func:`make_session` builds one with sensible limits and timeouts:

>>> import asyncio
>>> import aiohttp
>>> from recipes.http_client import fetch_json, make_session
>>> session = make_session()
>>> await fetch_json(session, f"{base_url}/json")
{'message': 'hello', 'items': [1, 2, 3]}

The second request reuses the connection the first one opened; the demo server
sees the same client port both times, so no new TCP handshake (and, over HTTPS,
no new TLS handshake) was needed:

>>> first = await fetch_json(session, f"{base_url}/whoami")
>>> second = await fetch_json(session, f"{base_url}/whoami")
>>> first == second
True
>>> await session.close()

In a program, prefer ``async with make_session() as session:`` around the
code that uses it, so the session is closed even when that code fails.

.. important::

   A session per request (``async with ClientSession() as s: await s.get(url)``
   inside the function that fetches one URL) works but throws the pool away
   every time: each call pays for a new connection.  A session that is never
   closed prints ``Unclosed client session`` and ``Unclosed connector`` when it
   is garbage collected, and on Windows a program that lets the loop close
   first can end with ``RuntimeError: Event loop is closed``.  Close the session
   (``async with`` or ``await session.close()``) before the loop ends.

Setting timeouts
----------------

.. index::
   single: aiohttp; ClientTimeout
   pair: timeouts; HTTP requests
   single: error messages; timeout parameter cannot be of <class 'int'> type
   pair: TimeoutError; asyncio.TimeoutError

Without limits, a request to a server that accepted the connection and then
went quiet waits five minutes (aiohttp's default total timeout is 300 seconds).
Give every session an :class:`aiohttp.ClientTimeout`: ``total`` bounds the
whole request, ``connect`` the wait for a connection (including the wait for
a free slot in the pool), ``sock_connect`` the TCP connect itself and
``sock_read`` the longest silence between two pieces of the answer.  When a
limit passes, aiohttp raises :exc:`asyncio.TimeoutError` (or a subclass):

>>> quick = aiohttp.ClientTimeout(total=0.5)
>>> async with make_session(timeout=quick) as session:
...     try:
...         await fetch_json(session, f"{base_url}/slow?delay=2")
...     except asyncio.TimeoutError:
...         print("no answer within 0.5 s")
no answer within 0.5 s

A single request can override the session's limits with its own
:class:`aiohttp.ClientTimeout`:

>>> strict = aiohttp.ClientTimeout(total=0.2)
>>> patient = aiohttp.ClientTimeout(total=2)
>>> async with make_session(timeout=strict) as session:
...     url = f"{base_url}/slow?delay=0.3"
...     await fetch_json(session, url, timeout=patient)
{'delay': 0.3}

.. important::

   Pass an :class:`aiohttp.ClientTimeout`, never a bare number.
   ``ClientSession(timeout=5)`` raises ``ValueError: timeout parameter cannot
   be of <class 'int'> type, please use 'timeout=ClientTimeout(...)'``, and
   ``session.get(url, timeout=None)`` does not mean "use the session's
   timeout": it switches the total timeout *off* for that request.

.. versionchanged:: 3.11

   :exc:`asyncio.TimeoutError` became an alias of the built-in
   :exc:`TimeoutError`.  On Python 3.8–3.10 they are different classes and
   ``except TimeoutError`` does not catch aiohttp's timeouts; write ``except
   asyncio.TimeoutError``, which works on every version.  The
   :doc:`/recipes/timeouts` chapter has the whole story, and timeouts for
   code other than requests.

Treating error statuses as errors
---------------------------------

.. index::
   single: aiohttp; raise_for_status
   single: aiohttp; ClientResponseError
   single: HTTP status; 4xx and 5xx as errors

A 404 or a 500 is, for aiohttp, a perfectly good response: ``session.get``
returns it and your code carries on with an error page in hand.  Call
``response.raise_for_status()``, or create the session with
``raise_for_status=True`` (as :func:`make_session` does), to turn every 4xx and
5xx status into :exc:`aiohttp.ClientResponseError`, which carries the status:

>>> async with make_session() as session:
...     try:
...         await fetch_json(session, f"{base_url}/status/404")
...     except aiohttp.ClientResponseError as exc:
...         print(exc.status, exc.message)
404 Not Found

Decoding JSON with a clear error
--------------------------------

.. index::
   single: JSON; invalid HTTP response
   single: aiohttp; ContentTypeError
   single: error messages; Attempt to decode JSON with unexpected mimetype
   single: error messages; Expecting value: line 1 column 1 (char 0)

``await response.json()`` fails with a :class:`json.JSONDecodeError` that
names neither the URL nor what came back (``Expecting value: line 1 column 1
(char 0)``), or with :exc:`aiohttp.ContentTypeError` (``Attempt to decode JSON
with unexpected mimetype: text/html``) when the server sent an HTML error
page.  :func:`fetch_json` raises :class:`InvalidJSONResponse` instead, with
the URL, the reason and the start of the body in its message:

>>> from recipes.http_client import InvalidJSONResponse
>>> async with make_session() as session:
...     try:
...         await fetch_json(session, f"{base_url}/html")
...     except InvalidJSONResponse as exc:
...         print(f"{exc.status}, but not JSON: {exc.body_start[:15]!r}")
200, but not JSON: '<!doctype html>'

Fetching many URLs under a concurrency limit
--------------------------------------------

.. index::
   pair: concurrency limit; HTTP requests
   single: aiohttp; TCPConnector limit

``await asyncio.gather(*(fetch(url) for url in urls))`` starts every request at
once and, without ``return_exceptions=True``, the first failure hides the other
results.  :func:`fetch_all` keeps at most ``limit`` requests in flight and
returns one :class:`FetchResult` per URL, in order, holding either the value or
the error:

>>> from recipes.http_client import fetch_all
>>> urls = [f"{base_url}/users/{n}" for n in (1, 0, 2)]
>>> async with make_session() as session:
...     results = await fetch_all(session, urls, limit=2)
>>> [result.value if result.ok else result.error.status for result in results]
[{'id': 1, 'name': 'user-1'}, 404, {'id': 2, 'name': 'user-2'}]

It is the HTTP form of the general recipes of the :doc:`/recipes/limiting`
chapter (:func:`recipes.limiting.bounded_gather`) and of
:func:`recipes.gathering.map_concurrently`, with one result per URL instead
of an exception that ends the batch.

.. important::

   :class:`aiohttp.TCPConnector`'s ``limit`` (100 by default) caps the open
   connections of a whole session, and requests beyond it wait for a free
   connection *inside* their timeout: a burst of requests through a small pool
   ends in :exc:`asyncio.TimeoutError` for requests that were never sent.
   Limit the batch itself (as :func:`fetch_all` does) and keep the connector's
   limit as the ceiling for the whole application.

Retrying with exponential backoff
---------------------------------

.. index::
   single: retry; HTTP requests
   single: exponential backoff
   single: Retry-After header
   single: jitter

Deploys, overloaded servers and dropped connections produce errors that are
gone a second later.  :func:`with_retries` calls a request function again after
a 5xx status, a dropped connection or a timeout, waiting longer each time;
it never retries a 4xx status, which will fail the same way next time:

>>> from recipes.http_client import with_retries
>>> async with make_session() as session:
...     url = f"{base_url}/flaky?key=intro&failures=2"
...     await with_retries(lambda: fetch_json(session, url), base_delay=0.1)
{'key': 'intro', 'attempts': 3}

The :doc:`/recipes/errors` chapter has a general-purpose
:func:`recipes.errors.retry`: use it for anything that is not an aiohttp
request (a database call, a message broker), where you name the exceptions
worth retrying yourself; use :func:`with_retries` for HTTP, because it knows
which statuses and errors are transient and honours ``Retry-After``.

Streaming a large download to a file
------------------------------------

.. index::
   single: download; streaming to a file
   pair: atomic rename; download
   single: error messages; Response payload is not completed

``await response.read()`` holds the whole body in memory.  :func:`download`
streams it in chunks to a temporary file next to the target and renames it
into place only when everything arrived, so an interrupted download never
leaves a torn file behind.  The :doc:`/recipes/files` chapter explains the
atomic replacement (:func:`recipes.files.atomic_writer`) and the other file
operations that aiofiles moves off the event loop.

Putting it together
-------------------

One session, a limit on concurrency, retries for the transient errors and a
result per URL:

>>> async def fetch_user(session, url):
...     return await with_retries(
...         lambda: fetch_json(session, url), base_delay=0.1
...     )
>>> async def user_names(base_url, ids):
...     async with make_session() as session:
...         urls = [f"{base_url}/users/{i}" for i in ids]
...         results = await fetch_all(session, urls, limit=2, fetch=fetch_user)
...     return [
...         r.value["name"] if r.ok else f"failed: {r.error.status}"
...         for r in results
...     ]
>>> await user_names(base_url, [1, 2, 0, 3])
['user-1', 'user-2', 'failed: 404', 'user-3']

A library does this
-------------------

.. index::
   single: aiohttp-retry
   single: httpx
   pair: HTTP client; libraries

* `aiohttp-retry <https://github.com/inyutin/aiohttp_retry>`__ wraps a
  :class:`aiohttp.ClientSession` in a ``RetryClient`` whose requests retry by
  themselves, with exponential, random, listed, Fibonacci or jittered waits.
  Out of the box it retries every 5xx status and every method, POST included;
  it retries an exception only if you list its class in ``exceptions``, so a
  refused connection fails at once; and its waits ignore ``Retry-After``.
  Choose it to add retries to existing aiohttp code with one wrapper, set up
  for your API; :func:`with_retries` already retries dropped connections and
  timeouts as well as 5xx statuses, and honours ``Retry-After``.
* `httpx <https://www.python-httpx.org/>`__ is another client, with the same
  API for sync and async code, HTTP/2 as an option, and a 5-second timeout
  and connection limits by default.  It retries only failed connection
  attempts (``AsyncHTTPTransport(retries=...)``), never a response, so
  :func:`with_retries`, which takes any ``send`` function, still applies.
  Choose it when you want one client for sync and async code or HTTP/2; the
  recipes here are for aiohttp.

See also
--------

* :doc:`/recipes/limiting` and :doc:`/recipes/gathering`: running many
  coroutines under a limit, and collecting their results and errors.
* :doc:`/recipes/errors`: :func:`recipes.errors.retry` for anything that is
  not an HTTP request.
* :doc:`/recipes/timeouts`: deadlines for whole operations, and the two
  ``TimeoutError`` classes.
* :doc:`/recipes/files`: aiofiles, and replacing a file atomically.
* :doc:`/recipes/crawler`: a whole program that shares one session among
  a pool of workers.
* aiohttp: :doc:`aiohttp:client_quickstart`, :doc:`aiohttp:client_advanced`
  (sessions, connectors, timeouts) and :doc:`aiohttp:client_reference`.
* Python: :doc:`python:library/asyncio-task` (tasks, ``gather``,
  ``asyncio.timeout``) and :ref:`python:asyncio-exceptions`.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import random
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import (
    Any,
    Awaitable,
    Callable,
    Collection,
    Dict,
    Iterable,
    List,
    Optional,
    Tuple,
    TypeVar,
    Union,
)

import aiofiles
import aiohttp
from aiofiles.threadpool.binary import AsyncBufferedIOBase

__all__ = [
    "DEFAULT_TIMEOUT",
    "DOWNLOAD_TIMEOUT",
    "RETRY_STATUSES",
    "FetchResult",
    "InvalidJSONResponse",
    "download",
    "fetch_all",
    "fetch_json",
    "make_session",
    "with_retries",
]

T = TypeVar("T")

#: Limits for API calls: 30 s for the whole request, 10 s to get a connection,
#: 15 s of silence while reading the answer.
DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=30, connect=10, sock_read=15)

#: Limits for large downloads: no total limit (a big file may take long), but
#: 10 s to connect and 30 s of silence at most.
DOWNLOAD_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=10, sock_read=30)

#: Statuses worth retrying: the server failed or is briefly unavailable.
RETRY_STATUSES = frozenset({500, 502, 503, 504})


def make_session(
    *,
    timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
    limit: int = 100,
    limit_per_host: int = 0,
    raise_for_status: bool = True,
    headers: Optional[Mapping[str, str]] = None,
) -> aiohttp.ClientSession:
    """Create the one :class:`aiohttp.ClientSession` an application shares.

    Call it inside a coroutine (the session binds to the running loop) and
    close the session when the application stops; ``async with`` does both:

    >>> from recipes.http_client import fetch_json, make_session
    >>> async with make_session() as session:
    ...     await fetch_json(session, f"{base_url}/users/1")
    {'id': 1, 'name': 'user-1'}

    ``limit`` caps the open connections of the whole session and
    ``limit_per_host`` those to one host (0 means no limit); ``timeout``
    applies to every request unless the request passes its own.  The session
    raises :exc:`aiohttp.ClientResponseError` for 4xx and 5xx answers unless
    ``raise_for_status=False``.  A timeout given as a number is refused before
    anything is created:

    >>> make_session(timeout=5)  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    TypeError: timeout must be an aiohttp.ClientTimeout,
    e.g. aiohttp.ClientTimeout(total=5), not 5
    """
    if not isinstance(timeout, aiohttp.ClientTimeout):
        raise TypeError(
            "timeout must be an aiohttp.ClientTimeout, "
            f"e.g. aiohttp.ClientTimeout(total={timeout!r}), not {timeout!r}"
        )
    for name, value in (("limit", limit), ("limit_per_host", limit_per_host)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an int >= 0 (0 means no limit), got {value!r}")
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit_per_host)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        raise_for_status=raise_for_status,
        headers=headers,
    )


class InvalidJSONResponse(ValueError):
    """The server answered, but not with the JSON that was expected.

    ``url`` and ``status`` describe the response; ``body_start`` holds its
    first characters, enough to recognise an HTML error page or a truncated
    document.
    """

    def __init__(self, message: str, *, url: str, status: int, body_start: str) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        self.body_start = body_start


def _preview(body: bytes, size: int = 60) -> str:
    text = body[:size].decode("utf-8", errors="replace")
    return repr(text) + ("..." if len(body) > size else "")


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or content_type.endswith("+json")


async def fetch_json(
    session: aiohttp.ClientSession,
    url: str,
    *,
    timeout: Optional[aiohttp.ClientTimeout] = None,
    check_content_type: bool = True,
) -> Any:
    """GET ``url`` and decode its JSON body, with a clear error when it is not JSON.

    >>> from recipes.http_client import (
    ...     InvalidJSONResponse, fetch_json, make_session,
    ... )
    >>> async with make_session() as session:
    ...     await fetch_json(session, f"{base_url}/users/42")
    {'id': 42, 'name': 'user-42'}

    A malformed body raises :class:`InvalidJSONResponse` (a :exc:`ValueError`)
    naming the URL, what is wrong and how the body starts:

    >>> async with make_session() as session:
    ...     try:
    ...         await fetch_json(session, f"{base_url}/malformed")
    ...     except InvalidJSONResponse as exc:
    ...         print(exc)  # doctest: +NORMALIZE_WHITESPACE
    GET http://127.0.0.1:.../malformed: invalid JSON
    (Expecting value: line 1 column 12 (char 11));
    the body starts with '{"broken": '

    So does a body of another content type, typically an HTML error page from
    a proxy; pass ``check_content_type=False`` for a server that sends JSON
    labelled as something else:

    >>> async with make_session() as session:
    ...     try:
    ...         await fetch_json(session, f"{base_url}/html")
    ...     except InvalidJSONResponse as exc:
    ...         print(exc)  # doctest: +NORMALIZE_WHITESPACE
    GET http://127.0.0.1:.../html: expected JSON, got text/html;
    the body starts with
    '<!doctype html><title>Not JSON</title><p>Hello</p>\\n'

    A 4xx or 5xx status raises :exc:`aiohttp.ClientResponseError` before the
    body is read.  ``timeout`` replaces the session's limits for this request;
    leaving it out keeps them.
    """
    options: Dict[str, Any] = {}
    if timeout is not None:  # passing timeout=None to aiohttp would disable the limits
        options["timeout"] = timeout
    async with session.get(url, **options) as response:
        response.raise_for_status()
        body = await response.read()
        content_type = response.content_type
        status = response.status
    if check_content_type and not _is_json(content_type):
        raise InvalidJSONResponse(
            f"GET {url}: expected JSON, got {content_type}; the body starts with {_preview(body)}",
            url=url,
            status=status,
            body_start=body[:60].decode("utf-8", errors="replace"),
        )
    try:
        return json.loads(body)
    except ValueError as exc:  # JSONDecodeError, or UnicodeDecodeError for non-UTF bytes
        raise InvalidJSONResponse(
            f"GET {url}: invalid JSON ({exc}); the body starts with {_preview(body)}",
            url=url,
            status=status,
            body_start=body[:60].decode("utf-8", errors="replace"),
        ) from exc


@dataclass(frozen=True)
class FetchResult:
    """The outcome for one URL of :func:`fetch_all`: a value or an error."""

    url: str
    value: Any = None
    error: Optional[Exception] = None

    @property
    def ok(self) -> bool:
        """True when the fetch succeeded (``error`` is None)."""
        return self.error is None


async def fetch_all(
    session: aiohttp.ClientSession,
    urls: Iterable[str],
    *,
    limit: int = 10,
    fetch: Optional[Callable[[aiohttp.ClientSession, str], Awaitable[Any]]] = None,
) -> List[FetchResult]:
    """Fetch many URLs, at most ``limit`` at a time, and return a result per URL.

    The results come back in the order of ``urls``; a failed URL holds its
    exception and the others are unaffected:

    >>> from recipes.http_client import fetch_all, fetch_json, make_session
    >>> paths = ["/users/1", "/status/500", "/malformed"]
    >>> async with make_session() as session:
    ...     results = await fetch_all(session, [base_url + p for p in paths])
    >>> for result in results:
    ...     print(result.ok, result.value or type(result.error).__name__)
    True {'id': 1, 'name': 'user-1'}
    False ClientResponseError
    False InvalidJSONResponse

    ``limit`` is the number of requests in flight at once.  Here six slow
    requests run two at a time, as the server's own count shows:

    >>> slow = [f"{base_url}/slow?delay=0.2"] * 6
    >>> async with make_session() as session:
    ...     results = await fetch_all(session, slow, limit=2)
    ...     stats = await fetch_json(session, f"{base_url}/stats")
    >>> [r.value for r in results] == [{"delay": 0.2}] * 6
    True
    >>> stats["peak_in_flight"]
    2

    ``fetch(session, url)`` does the work for one URL; it defaults to
    :func:`fetch_json`.  Only :exc:`Exception` is caught and recorded: if the
    caller is cancelled, the requests in flight are cancelled too and
    :exc:`asyncio.CancelledError` propagates.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be an int >= 1, got {limit!r}")
    fetch_one = fetch_json if fetch is None else fetch
    jobs: List[Tuple[int, str]] = list(enumerate(urls))
    results: List[Optional[FetchResult]] = [None] * len(jobs)
    pending = iter(jobs)

    async def worker() -> None:
        # Workers share one iterator: taking the next job never awaits, so no
        # two workers can take the same URL.
        for index, url in pending:
            try:
                results[index] = FetchResult(url, value=await fetch_one(session, url))
            except Exception as exc:
                results[index] = FetchResult(url, error=exc)

    workers = [asyncio.ensure_future(worker()) for _ in range(min(limit, len(jobs)))]
    try:
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    return [result for result in results if result is not None]


def _retry_after(error: BaseException) -> Optional[float]:
    """Seconds asked for by a ``Retry-After`` header, if the error carries one."""
    headers = getattr(error, "headers", None)
    if not isinstance(headers, Mapping):
        return None
    value = headers.get("Retry-After")
    if not isinstance(value, str) or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):  # 3.8/3.9 raise TypeError for a malformed date
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _is_transient(error: BaseException, retry_statuses: Collection[int]) -> bool:
    if isinstance(error, aiohttp.ClientResponseError):
        # Includes ContentTypeError (status 200), which is not transient.
        return error.status in retry_statuses
    return isinstance(
        error, (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, asyncio.TimeoutError)
    )


async def with_retries(
    send: Callable[[], Awaitable[T]],
    *,
    attempts: int = 4,
    base_delay: float = 0.5,
    max_delay: float = 10.0,
    jitter: bool = True,
    retry_statuses: Collection[int] = RETRY_STATUSES,
    on_retry: Optional[Callable[[int, Exception, float], None]] = None,
) -> T:
    """Call ``send()`` until it succeeds, backing off after transient HTTP errors.

    ``send`` is a function that makes a *new* request each time it is called,
    typically a ``lambda``:

    >>> import aiohttp
    >>> from recipes.http_client import fetch_json, make_session, with_retries
    >>> async with make_session() as session:
    ...     url = f"{base_url}/flaky?key=a&failures=2"
    ...     await with_retries(lambda: fetch_json(session, url))
    {'key': 'a', 'attempts': 3}

    A status in ``retry_statuses`` (500, 502, 503, 504), a dropped connection
    (:exc:`aiohttp.ClientConnectionError`, :exc:`aiohttp.ClientPayloadError`)
    and a timeout are retried.  The waits double from ``base_delay`` up to
    ``max_delay``; with ``jitter`` (the default) each wait is drawn at random
    below that bound, so that many clients do not retry in lockstep.  A
    ``Retry-After`` header is honoured, up to ``max_delay``.  ``on_retry`` is
    called before each wait; here without jitter, to show the doubling:

    >>> def report(attempt, error, delay):
    ...     print(f"attempt {attempt} failed ({error.status}),"
    ...           f" next in {delay:.1f} s")
    >>> async with make_session() as session:
    ...     url = f"{base_url}/flaky?key=b&failures=3"
    ...     await with_retries(lambda: fetch_json(session, url),
    ...                        base_delay=0.1, jitter=False, on_retry=report)
    attempt 1 failed (503), next in 0.1 s
    attempt 2 failed (503), next in 0.2 s
    attempt 3 failed (503), next in 0.4 s
    {'key': 'b', 'attempts': 4}

    When the attempts run out, the last error is raised as it is.  Any other
    error, a 4xx status in particular, is raised at once: the server saw
    exactly one request.

    >>> async def hits(session, path):
    ...     stats = await fetch_json(session, f"{base_url}/stats")
    ...     return stats["hits"].get(path, 0)
    >>> async with make_session() as session:
    ...     before = await hits(session, "/status/404")
    ...     url = f"{base_url}/status/404"
    ...     try:
    ...         await with_retries(lambda: fetch_json(session, url))
    ...     except aiohttp.ClientResponseError as exc:
    ...         print("gave up:", exc.status)
    ...     after = await hits(session, "/status/404")
    gave up: 404
    >>> after - before
    1

    Only retry requests that are safe to repeat (GET, PUT, DELETE, or a POST
    with an idempotency key the server understands).  To bound the total time
    including the waits, wrap the call in a timeout scope: ``async with
    asyncio.timeout(...)`` on 3.11+.  :func:`asyncio.wait_for` works too, but
    on 3.8–3.11 a caller cancelled just as the call finishes gets the response
    and loses the cancellation (CPython gh-86296; see :doc:`/recipes/timeouts`).

    A cancellation is never retried.  On 3.11+ that holds even when the
    attempt's cleanup turns it into a transient error (a connection that
    fails to close, say): ``with_retries`` raises
    :exc:`asyncio.CancelledError` instead of trying again.  Before 3.11 a
    task cannot tell such an error from a real one.

    For errors other than HTTP ones, :func:`recipes.errors.retry` does the
    same with exceptions you choose, and can time out each attempt.
    """
    if asyncio.iscoroutine(send):
        send.close()  # avoid a "coroutine ... was never awaited" warning
        raise TypeError(
            "send must be a function returning a new awaitable each call, e.g. "
            "lambda: fetch_json(session, url); a coroutine object can only be awaited once"
        )
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise ValueError(f"attempts must be an int >= 1, got {attempts!r}")
    if base_delay < 0 or max_delay < 0:
        raise ValueError(f"delays must be >= 0, got {base_delay=!r}, {max_delay=!r}")
    attempt = 1
    while True:
        before = _cancel_requests()
        try:
            result = await send()
        except Exception as exc:
            if _cancel_requests() > before:
                # The attempt turned our cancellation into an error (closing its
                # connection failed, say): never retry it, never lose the cancellation.
                raise asyncio.CancelledError from exc
            if attempt >= attempts or not _is_transient(exc, retry_statuses):
                raise
            delay = min(max_delay, base_delay * 2 ** (attempt - 1))
            if jitter:
                delay = random.uniform(0, delay)
            asked = _retry_after(exc)
            if asked is not None:
                delay = max(delay, min(asked, max_delay))
            delay = round(delay, 3)  # millisecond precision is plenty for a timer
            if on_retry is not None:
                on_retry(attempt, exc, delay)
        else:
            if _cancel_requests() > before:
                raise asyncio.CancelledError  # the attempt swallowed our cancellation
            return result
        await asyncio.sleep(delay)
        attempt += 1


def _cancel_requests() -> int:
    """Cancellation requests pending for the current task (3.11+; always 0 before)."""
    if sys.version_info < (3, 11):
        return 0
    task = asyncio.current_task()
    return 0 if task is None else task.cancelling()


async def _create_file(path: str) -> AsyncBufferedIOBase:
    """Create ``path`` for writing; a cancellation cannot leak the open file."""

    async def create() -> AsyncBufferedIOBase:
        return await aiofiles.open(path, "xb")

    # aiofiles opens the file in a worker thread, which carries on when the
    # awaiting task is cancelled: the file would then stay open, unreachable,
    # until garbage collection ("ResourceWarning: unclosed file").  So the open
    # is shielded, and on cancellation it is waited for and the file closed.
    opening = asyncio.ensure_future(create())
    try:
        return await asyncio.shield(opening)
    except asyncio.CancelledError:
        try:
            file = await asyncio.shield(opening)
        except Exception:
            pass  # the open failed: nothing to close
        else:
            await file.close()
        raise


async def _fsync(fileno: int) -> None:
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, os.fsync, fileno)


async def download(
    session: aiohttp.ClientSession,
    url: str,
    path: Union[str, os.PathLike[str]],
    *,
    chunk_size: int = 64 * 1024,
    timeout: aiohttp.ClientTimeout = DOWNLOAD_TIMEOUT,
    max_bytes: Optional[int] = None,
) -> int:
    """Stream ``url`` into the file ``path`` and return the number of bytes written.

    The body is written in chunks of ``chunk_size`` bytes with :mod:`aiofiles`,
    so memory use stays flat however large the file:

    >>> import os, tempfile
    >>> from recipes.http_client import download, make_session
    >>> tmp = tempfile.TemporaryDirectory()
    >>> target = os.path.join(tmp.name, "data.bin")
    >>> async with make_session() as session:
    ...     url = f"{base_url}/stream?size=1000000"
    ...     await download(session, url, target)
    1000000
    >>> os.path.getsize(target)
    1000000

    The bytes go to a hidden temporary file in the same directory, which is
    flushed, synced to disk and renamed over ``path`` only once the body is
    complete.  If the download fails or is cancelled, the temporary file is
    removed and an existing ``path`` is left as it was; here the server drops
    the connection half-way:

    >>> async with make_session() as session:
    ...     url = f"{base_url}/stream?size=200000&fail_after=100000"
    ...     await download(session, url, target)
    Traceback (most recent call last):
    ...
    aiohttp.client_exceptions.ClientPayloadError: Response payload is not ...
    >>> os.path.getsize(target), os.listdir(tmp.name)
    (1000000, ['data.bin'])
    >>> tmp.cleanup()

    ``timeout`` defaults to :data:`DOWNLOAD_TIMEOUT`, which has no total limit
    but gives up after 30 s without data.  ``max_bytes`` refuses bodies that
    are larger, before or while they arrive, with :exc:`ValueError`.
    """
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be an int >= 1, got {chunk_size!r}")
    if max_bytes is not None and max_bytes < 0:
        raise ValueError(f"max_bytes must be >= 0 or None, got {max_bytes!r}")
    target = os.fspath(path)
    directory, name = os.path.split(target)
    if not name:
        raise ValueError(f"path must name a file, got {target!r}")
    # Same directory as the target: os.replace is atomic only within one file system.
    partial = os.path.join(directory, f".{name}.{secrets.token_hex(6)}.part")
    written = 0
    try:
        async with session.get(url, timeout=timeout) as response:
            response.raise_for_status()
            length = response.content_length
            if max_bytes is not None and length is not None and length > max_bytes:
                raise ValueError(f"{url} is {length} bytes, more than max_bytes={max_bytes}")
            out = await _create_file(partial)
            try:
                async for chunk in response.content.iter_chunked(chunk_size):
                    written += len(chunk)
                    if max_bytes is not None and written > max_bytes:
                        raise ValueError(f"{url} sent more than max_bytes={max_bytes} bytes")
                    await out.write(chunk)
                await out.flush()
                await _fsync(out.fileno())
            finally:
                await out.close()
        # One quick metadata call, made directly: a cancellation arrives before
        # it (old file kept) or after it (new file in place), never during it.
        os.replace(partial, target)
    except BaseException:
        # Deliberately synchronous: an await here could be cancelled in turn
        # and leave the partial file behind.
        try:
            os.unlink(partial)
        except OSError:
            pass
        raise
    return written
