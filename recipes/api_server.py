"""A JSON API is where asyncio earns its keep on a server: hundreds of clients
connected at once, each request spending most of its life waiting for the
network or the database.  :mod:`aiohttp.web` makes the happy path short, a
route and a handler.  A server that faces real clients has to do more.  It must
answer every malformed, oversized or mistyped request with a clear ``4xx``
error instead of crashing into a ``500``.  It must keep its state where tests
and a second instance cannot trip over it.  It must survive concurrent writes
to the same record, and stop without dropping connections to its database.
This chapter builds a small users API that does all of that, storing the users
in memory or in PostgreSQL.

Serving users over HTTP
-----------------------

.. index::
   single: JSON API
   pair: aiohttp.web; AppRunner
   pair: aiohttp.web; serving from a running event loop

The API has five routes.  Every answer is JSON, errors included:

==========================  =========================================  ====================
request                     success                                    client errors
==========================  =========================================  ====================
``GET /users``              ``200``, every user, sorted by id          --
``GET /users/{id}``         ``200``, the user                          ``400`` ``404``
``POST /users``             ``201``, the stored user                   ``400`` ``409``
                                                                       ``413`` ``415``
``PUT /users/{id}``         ``200``, the stored user (a replacement)   ``400`` ``404``
                                                                       ``413`` ``415``
``DELETE /users/{id}``      ``204``, no body                           ``400`` ``404``
==========================  =========================================  ====================

:func:`make_app` builds the :class:`aiohttp.web.Application`.  To serve it
from a program that already runs an event loop (a test, a notebook, the
``python -m asyncio`` REPL), start it with :class:`aiohttp.web.AppRunner` and
:class:`aiohttp.web.TCPSite`; port ``0`` lets the system pick a free port:

>>> import aiohttp
>>> from aiohttp import web
>>> from recipes.api_server import make_app
>>> runner = web.AppRunner(make_app())
>>> await runner.setup()
>>> site = web.TCPSite(runner, "127.0.0.1", 0)
>>> await site.start()
>>> url = f"http://127.0.0.1:{runner.addresses[0][1]}"

A client with a time limit on every request, and a helper that prints the
status and the body of an answer, exactly as the server sent them:

>>> session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
>>> async def show(method, path, **kwargs):
...     async with session.request(method, url + path, **kwargs) as resp:
...         text = await resp.text()
...     if text:
...         print(resp.status, text)
...     else:
...         print(resp.status)
>>> ada = {"id": 1, "name": "Ada Lovelace", "age": 36}
>>> await show("POST", "/users", json=ada)
201 {"id": "1", "name": "Ada Lovelace", "age": 36}
>>> grace = {"id": "grace", "name": "Grace Hopper"}
>>> await show("POST", "/users", json=grace)
201 {"id": "grace", "name": "Grace Hopper", "age": null}
>>> await show("GET", "/users")  # doctest: +NORMALIZE_WHITESPACE
200 [{"id": "1", "name": "Ada Lovelace", "age": 36},
     {"id": "grace", "name": "Grace Hopper", "age": null}]
>>> await show("PUT", "/users/1", json={"name": "Augusta Ada King", "age": 36})
200 {"id": "1", "name": "Augusta Ada King", "age": 36}
>>> await show("DELETE", "/users/grace")
204
>>> await show("GET", "/users/grace")
404 {"error": "no user with id 'grace'"}

An id may be a string or an integer in the request; it is always a string in
the answer, so ``1`` and ``"1"`` name the same user.  ``PUT`` replaces the
whole user: a field it leaves out is gone afterwards (``age`` becomes
``null``).

Keeping state on the application
--------------------------------

.. index::
   pair: aiohttp.web; AppKey
   single: global state in a web application
   single: warnings; NotAppKeyWarning: It is recommended to use web.AppKey instances for keys

A module-level ``USERS = {}`` looks harmless until a test suite starts two
applications, or one test's users show up in the next.  Everything the
handlers share belongs to the application, under a typed key:
:func:`make_app` puts the store at ``app[STORE_KEY]`` and every handler reads
``request.app[STORE_KEY]``.  Two applications never share users:

>>> from recipes.api_server import STORE_KEY
>>> first, second = make_app(), make_app()
>>> first[STORE_KEY] is second[STORE_KEY]
False

.. note::

   ``web.AppKey`` needs aiohttp 3.9 or newer.  With plain string keys
   (``app["store"]``) aiohttp 3.9+ warns ``NotAppKeyWarning: It is recommended
   to use web.AppKey instances for keys``, and type checkers cannot tell what
   the key holds.

Validating what clients send
----------------------------

.. index::
   single: validating JSON input
   pair: bool; is an int

A user has an ``id`` (a non-empty string of at most :data:`MAX_ID_LENGTH`
characters, or an integer), a ``name`` (a string that is not blank, at most
:data:`MAX_NAME_LENGTH` characters) and an optional ``age`` (an integer from
0 to :data:`MAX_AGE`).  Any other field is an error rather than something
silently dropped, so a client that misspells ``age`` as ``agee`` finds out.
:func:`parse_user` checks all of it and reports every problem at once, one
message per field:

>>> bad = {"id": 2, "name": " ", "age": True, "agee": 3}
>>> async with session.post(url + "/users", json=bad) as resp:
...     print(resp.status)
...     for field, problem in (await resp.json())["fields"].items():
...         print(f"{field}: {problem}")
400
name: must not be blank
age: must be an integer from 0 to 150 (true and false are not integers)
agee: unknown field (a user has id, name and age)

.. important::

   In Python ``True`` *is* an integer: ``isinstance(True, int)`` is ``True``
   and ``True + True == 2``.  An ``isinstance(age, int)`` check alone accepts
   ``{"age": true}`` and stores a boolean.  Check for ``bool`` first, as
   :func:`parse_user` does.  Floats (``36.0``), numbers in strings (``"36"``)
   and ``NaN`` are refused as well: the client must send what it means.

Both stores refuse the same few strings: control characters (``"\\u0000"``,
which PostgreSQL cannot store, as well as newlines and terminal escape codes)
and lone surrogates such as ``"\\ud800"``, which JSON can spell but UTF-8
cannot encode.  Every other string is kept exactly as sent, quotes, emoji and
SQL included.

Answering every error with JSON
-------------------------------

.. index::
   pair: aiohttp.web; middleware
   single: error messages; json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)
   single: error messages; Error handling request
   single: error messages; Exceeds the limit (4300 digits) for integer string conversion
   pair: aiohttp.web; Expect header

A request that the client got wrong is answered with a JSON object that
has an ``"error"`` message, and a ``4xx`` status (*What a client can and
cannot do*, below, says exactly what is promised).  The body is read by one
function that checks, in order, the ``Content-Type`` (``415`` unless it is
``application/json`` in UTF-8), the size (``413``), that the body can be read
at all (``400``, see *Reading compressed and chunked bodies*), the encoding,
the JSON syntax and the shape (``400`` for each).  A common client mistake
is to send JSON text as ``data=``, which aiohttp labels ``text/plain``:
``json=`` sends the right header.

>>> as_json = {"Content-Type": "application/json"}
>>> await show("POST", "/users", data="{'id': 3}", headers=as_json)
400 {"error": "malformed JSON: Expecting property name enclosed in ..."}
>>> await show("POST", "/users", json=[{"id": 3, "name": "Alan"}])
400 {"error": "expected a JSON object, got an array"}
>>> import json
>>> await show("POST", "/users", data=json.dumps({"id": 3, "name": "Alan"}))
415 {"error": "expected Content-Type: application/json, got text/plain"}
>>> await show("POST", "/users", json={"id": 1, "name": "Ada again"})
409 {"error": "a user with id '1' already exists"}

Unknown paths and methods are answered the same way.  Every request for a
path has a route here: each resource has a ``*`` route that raises
``web.HTTPMethodNotAllowed`` with the resource's methods, and a
last route matches every other path and raises
``web.HTTPNotFound``.  :func:`error_middleware` turns every
:class:`aiohttp.web.HTTPException` into JSON and keeps its headers (the
``Allow`` header of a ``405``):

>>> await show("GET", "/no/such/page")
404 {"error": "not found: /no/such/page"}
>>> await show("PATCH", "/users/1")  # doctest: +NORMALIZE_WHITESPACE
405 {"error": "method PATCH is not allowed",
     "allowed": ["DELETE", "GET", "HEAD", "PUT"]}

Anything else that escapes a handler is a bug in the server, not the client's
fault: the middleware logs it with its traceback and answers ``500`` with
``{"error": "internal server error"}``, giving nothing away.  Only a request
that is not valid HTTP at all (a garbled request line, a ``Content-Length``
that is not a number, a chunk size that is not hexadecimal) escapes the JSON
treatment: aiohttp's protocol layer answers it with a plain-text ``400``
before any middleware runs.

.. important::

   aiohttp answers an ``Expect`` header before the middleware runs, with the
   expect handler of the matched route.  The default handler answers anything
   but ``100-continue`` with a plain-text ``417``, and a header that is not
   UTF-8 (``Expect: \\xff``) with ``500 Internal Server Error``: it quotes the
   header in its error text, which then cannot be encoded.  The ``404`` and
   ``405`` of a request that matches no route use that default too, whatever
   ``expect_handler`` the routes have.  So every route here gets this
   module's expect handler (a JSON ``417``), and every request for a path has
   a route.

.. important::

   ``data = await request.json()`` alone turns client mistakes into server
   errors.  A body that is not JSON raises ``json.decoder.JSONDecodeError:
   Expecting value: line 1 column 1 (char 0)``; a body that is JSON but not an
   object (``5``, ``[]``, ``null``) makes the next line fail with
   ``TypeError: argument of type 'int' is not iterable`` or similar.  Either
   way aiohttp logs ``Error handling request`` and the client gets ``500
   Internal Server Error``.  ``json.loads`` can also raise :exc:`RecursionError`
   (deeply nested arrays) and :exc:`ValueError` for an integer of more than
   4300 digits, and it accepts ``NaN`` and ``Infinity``, which are not JSON at
   all.  Catch all of them and answer ``400``.

.. versionchanged:: 3.11
   ``int()`` and ``json.loads`` refuse integers of more than 4300 digits:
   ``ValueError: Exceeds the limit (4300 digits) for integer string
   conversion``.  The security releases 3.8.14, 3.9.14 and 3.10.7 have the
   same limit.

Limiting the size of a request
------------------------------

.. index::
   single: request size limit
   pair: aiohttp.web; client_max_size

Without a limit, one client can make the server read and parse a gigabyte.
``web.Application(client_max_size=...)`` makes ``request.read()`` stop with
``413`` once the body grows past the limit, which also covers chunked bodies
that announce no length.  The body reader also checks the ``Content-Length``
header before reading anything.  Both come out as JSON; the limit is
:data:`DEFAULT_MAX_BODY_BYTES` unless you pass ``max_body_bytes``:

>>> big = {"id": "big", "name": "x" * 20_000}
>>> await show("POST", "/users", json=big)
413 {"error": "the body is 20025 bytes; the limit is 16384 bytes"}

Reading compressed and chunked bodies
-------------------------------------

.. index::
   pair: gzip; request body
   single: error messages; RequestPayloadError
   single: error messages; Unhandled exception

aiohttp undoes ``Content-Encoding: gzip`` and ``deflate`` (and ``br`` when
the Brotli package is installed) and the chunks of ``Transfer-Encoding:
chunked`` before the handler sees the body, and the size limit applies to
the decoded body:

>>> import gzip
>>> gzipped = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
>>> body = gzip.compress(b'{"id": "z", "name": "Zip"}')
>>> await show("POST", "/users", data=body, headers=gzipped)
201 {"id": "z", "name": "Zip", "age": null}
>>> await show("POST", "/users", data=b"not gzip at all", headers=gzipped)
400 {"error": "the body could not be read: Can not decode ..."}

.. important::

   A body that does not decode, or whose chunks break off, makes
   ``request.read()`` raise ``aiohttp.web.RequestPayloadError``.  It is
   neither a :exc:`ConnectionError` nor an
   :class:`aiohttp.web.HTTPException`, so a handler that does not catch it
   answers ``500``.  After such a body, nothing else on the connection can
   be read reliably: :func:`error_middleware` answers with ``Connection:
   close``.  It also marks the body finished, otherwise aiohttp reads on after
   the answer (to keep the connection), meets the same error and logs it as
   ``Unhandled exception`` with a traceback.

Addressing ids that contain slashes
-----------------------------------

.. index::
   pair: percent-encoding; URL path
   single: error messages; invalid byte sequence for encoding "UTF8": 0x00

The route ``/users/{id}`` matches one path segment, so ``GET /users/team/7``
is a ``404``.  A client must percent-encode the id, slashes included:
``urllib.parse.quote(user_id, safe="")`` turns ``team/7`` into
``team%2F7``.  aiohttp matches the route on the encoded path and hands the
handler the decoded id, so quotes, spaces, ``?``, ``#`` and non-ASCII
characters work the same way:

>>> from urllib.parse import quote
>>> await show("POST", "/users", json={"id": "team/7", "name": "O'Brien"})
201 {"id": "team/7", "name": "O'Brien", "age": null}
>>> await show("GET", "/users/" + quote("team/7", safe=""))
200 {"id": "team/7", "name": "O'Brien", "age": null}
>>> await show("GET", "/users/team/7")
404 {"error": "not found: /users/team/7"}

aiohttp's default pattern for a variable such as ``{id}`` is ``[^{}/]+``: it
refuses braces, so an id such as ``{0}`` would be unreachable.  The routes
here spell the pattern out as ``{id:[^/]+}``.  The ids ``.`` and ``..`` are
refused: HTTP clients normalise ``/users/..`` to ``/`` before sending it.  A
``201`` answer carries the user's address, already encoded, in its
``Location`` header.

An id in the URL that no user can have is a ``400`` before the store is
asked: one with control characters, a blank one, one that is too long, and
``.`` or ``..``, which a raw client can still send as ``%2E%2E``.  PostgreSQL
cannot even compare a text with a NUL in it: ``GET /users/%00`` would be a
``500`` from ``asyncpg.exceptions.CharacterNotInRepertoireError: invalid byte
sequence for encoding "UTF8": 0x00``.

>>> async with session.get(url + "/users/%00") as resp:
...     print(resp.status, (await resp.json())["fields"])
400 {'id': 'must not contain control characters'}

Logging what clients send
-------------------------

.. index::
   single: log injection
   pair: logging; escaping client text
   single: error messages; --- Logging error ---

A log line that quotes a client hands the client a pen.  A path with ``%0A``
in it, once decoded, writes a second, forged line into the log; ``\\x1b[``
sequences recolour or clear the terminal of whoever reads it; a header byte
that is not UTF-8 arrives as a lone surrogate, which a UTF-8 log file cannot
encode (``--- Logging error ---``, and the line is lost).  The server logs
client text in three places, and escapes it in all of them: backslashes and
every unprintable character (control characters, line and paragraph
separators, direction overrides, surrogates) become ``\\n``, ``\\x1b``,
``\\u2028``, ``\\udcff``:

* :func:`error_middleware`'s own lines (a ``500``, a ``503``) quote the
  method and the decoded path;
* aiohttp's access log quotes the request line and, in its default format,
  the ``Referer`` and ``User-Agent`` headers as they came;
* aiohttp logs every request it cannot parse, quoting the bad bytes.

The last two come from aiohttp itself: :func:`make_app` gives it a logger and
an access log class of its own (``handler_args``) that escape each line.
They also log a malformed request as one ``INFO`` line with aiohttp's reason
(``Error handling request from 127.0.0.1: Invalid method encountered: ...``),
where aiohttp logs it with a full traceback, most of the time as an
``ERROR``: a client must not be able to fill the log with tracebacks, and a
``400`` it has earned is not the server's error.  Tracebacks are kept for
the server's own bugs.

What a client can and cannot do
-------------------------------

.. index::
   pair: property-based testing; Hypothesis
   single: error messages; Task exception was never retrieved

No request can crash this server or leave it broken for the requests that
follow.  More exactly: whatever the method, the path (any bytes,
percent-encoded or not), the ``Content-Type``, ``Content-Encoding``,
``Transfer-Encoding`` and ``Content-Length`` headers (matching the body or
not), other headers (``Expect``, ``User-Agent``) and the body (chunked,
broken off, compressed or not, from a valid user to random bytes), with
either store:

* the answer is never a ``5xx``;
* the answer to a request that aiohttp can parse is JSON (``204`` and
  ``HEAD`` answers have no body), and when the request is refused it is an
  object with an ``"error"`` message and a ``4xx`` status; a request that
  aiohttp cannot parse gets its plain-text ``400``;
* a refused request changes nothing in the store;
* the log gets no traceback and no unescaped character from the client.

A property-based test (Hypothesis, in the test suite) checks all four on
every run against both stores, with raw requests written to a socket, so
that no HTTP client tidies them up on the way.  What is not promised:

* A ``5xx`` is still the answer to a fault of the server: ``503`` when the
  database does not answer in time, ``500`` for a bug.
* A client that announces more body than it sends gets no answer: the
  handler waits for the rest until the client closes the connection.
  aiohttp's ``keepalive_timeout`` only closes connections that are idle
  between requests; put a reverse proxy with its own timeouts in front to
  hold off slow and silent clients.
* A request whose target is not a path (``OPTIONS *``, ``CONNECT
  host:443``; on aiohttp before 3.14 any method with ``*``) matches no route,
  so aiohttp answers its ``Expect`` header itself: a plain-text ``417``, and
  a ``500`` with a traceback in the log when the header is not UTF-8.  It
  never reaches a handler or the store.
* aiohttp before 3.14 (the newest for Python 3.8 is 3.10, for 3.9 it is
  3.13) never answers a request line with an absolute URL whose port is not
  a number (``GET http://host:abc/users HTTP/1.1``), and asyncio logs
  ``Task exception was never retrieved`` with a traceback: aiohttp fails to
  build the URL before any code of the application runs.  aiohttp 3.14
  answers ``400``.

Writing concurrently without losing updates
-------------------------------------------

.. index::
   pair: race condition; check then insert
   pair: PostgreSQL; ON CONFLICT DO NOTHING

Handlers run concurrently, interleaving at every ``await``.  The classic bug
is *check, then insert*: two requests for the same new id both check, both
find nothing, both insert, and the second silently overwrites the first.
Each store does the check and the write as one step:
:class:`MemoryStore` under an :class:`asyncio.Lock` (see
:ref:`recipes/synchronization:Protecting a read-modify-write with a Lock`),
:class:`PostgresStore` with ``INSERT ... ON CONFLICT DO NOTHING`` against
the primary key.  Twenty simultaneous requests for one new id produce one
``201`` and nineteen ``409``:

>>> import asyncio
>>> import collections
>>> async def create(n):
...     user = {"id": "race", "name": f"writer {n}"}
...     async with session.post(url + "/users", json=user) as resp:
...         return resp.status
>>> statuses = await asyncio.gather(*(create(n) for n in range(20)))
>>> sorted(collections.Counter(statuses).items())
[(201, 1), (409, 19)]

.. important::

   With a database, *check, then insert* is wrong even inside a transaction:
   at the default isolation level (``READ COMMITTED``) both transactions see
   no row.  Let a ``PRIMARY KEY`` or ``UNIQUE`` constraint decide, and read
   the outcome from ``ON CONFLICT ... RETURNING`` or from
   ``asyncpg.UniqueViolationError``.

Storing users in PostgreSQL
---------------------------

.. index::
   pair: asyncpg; connection pool
   pair: PostgreSQL; JSON API

:func:`make_app` accepts any object with the methods of the :class:`Store`
protocol.  :class:`PostgresStore` keeps the users in a table (created if
missing) and talks to the database through an asyncpg pool with a time limit
on every wait (:doc:`/recipes/postgres` explains pools and their timeouts).
The application opens the store when it starts and closes it when it stops,
so the pool never outlives the server.  The same requests get the same
answers from either store; only the data survives a restart.

Here a second application, next to the first, keeps its users in
PostgreSQL.  ``dsn`` is the address of a PostgreSQL server: in your own
session start a throwaway one with ``python -m tests.demo_servers`` from a
checkout of the cookbook and paste the ``dsn = ...`` line it prints.

>>> from recipes.api_server import PostgresStore
>>> store = PostgresStore(dsn, table="chapter_users")
>>> pg_runner = web.AppRunner(make_app(store))
>>> await pg_runner.setup()  # opens the pool, creates the table if missing
>>> pg_site = web.TCPSite(pg_runner, "127.0.0.1", 0)
>>> await pg_site.start()
>>> pg_url = f"http://127.0.0.1:{pg_runner.addresses[0][1]}"

The same three requests, sent to each application, get the same answers:

>>> codd = {"id": "codd", "name": "Edgar F. Codd", "age": 79}
>>> async def answers(base):
...     texts = []
...     for method, path, user in [("POST", "/users", codd),
...                                ("POST", "/users", codd),
...                                ("GET", "/users/codd", None)]:
...         async with session.request(method, base + path, json=user) as resp:
...             texts.append(f"{resp.status} {await resp.text()}")
...     return texts
>>> from_memory = await answers(url)
>>> from_postgres = await answers(pg_url)
>>> from_memory == from_postgres
True
>>> for answer in from_postgres:
...     print(answer)
201 {"id": "codd", "name": "Edgar F. Codd", "age": 79}
409 {"error": "a user with id 'codd' already exists"}
200 {"id": "codd", "name": "Edgar F. Codd", "age": 79}
>>> await store.drop_table()  # the example's table, and its users
>>> await pg_runner.cleanup()  # closes the pool

Use :class:`MemoryStore` for tests, demos and data you can lose.  Use
:class:`PostgresStore` when the users must outlive the process, or when more
than one process serves the API: several workers behind a load balancer share
one table, while several memory stores would each hold different users.  One
limit of this small API: ``GET /users`` returns every user at once.  With
thousands of users, add paging (``?after=<id>&limit=100``, answered with
``WHERE id > $1 ORDER BY id LIMIT $2``) to the store and the route.

Running and stopping the server
-------------------------------

.. index::
   pair: graceful shutdown; aiohttp.web
   pair: SIGTERM; aiohttp.web.run_app

``python -m recipes.api_server`` serves the API on ``127.0.0.1:8080`` from
memory; give it the address of a PostgreSQL database to use
:class:`PostgresStore` instead (:func:`main` lists the options).  It runs the
application with :func:`aiohttp.web.run_app`, which turns ``SIGINT``
(Ctrl-C) and ``SIGTERM`` (what ``kill``, systemd and Docker send) into a
graceful stop: it stops accepting connections, waits for requests in flight,
runs the cleanup that closes the store's pool, and exits with status 0.
(A program that is not an aiohttp application can do the same with
:func:`recipes.cancellation.stop_on_signals`: see
:ref:`recipes/cancellation:Shutting down on SIGINT and SIGTERM`.)

In a program that already runs a loop, stop it as it was started:

>>> await session.close()
>>> await runner.cleanup()

A short session
---------------

>>> runner = web.AppRunner(make_app())
>>> await runner.setup()
>>> site = web.TCPSite(runner, "127.0.0.1", 0)
>>> await site.start()
>>> users = f"http://127.0.0.1:{runner.addresses[0][1]}/users"
>>> timeout = aiohttp.ClientTimeout(total=10)
>>> async with aiohttp.ClientSession(timeout=timeout) as session:
...     for body in [{"id": 7, "name": "Zoë"}, ["Zoë"]]:
...         async with session.post(users, json=body) as resp:
...             print(resp.status, await resp.json())
201 {'id': '7', 'name': 'Zoë', 'age': None}
400 {'error': 'expected a JSON object, got an array'}
>>> await runner.cleanup()

A library does this
-------------------

.. index::
   single: pydantic
   pair: validating JSON input; libraries

Of this chapter, only :func:`parse_user` has a library equivalent beyond
aiohttp: `pydantic <https://docs.pydantic.dev/>`__.  A model declares the
same rules (``Field(ge=0, le=150)``, ``max_length``, ``extra="forbid"``),
and its ``ValidationError`` lists every problem with its field, as
:func:`parse_user` does.  By default it converts, though: an integer field
takes ``true`` as 1, and ``36.0`` and ``"36"`` as 36; ``strict=True``
refuses all three.  A blank name and control characters still need
validators of your own.  Choose it when you have many models, or want JSON
Schema or OpenAPI documents from them; for one resource, :func:`parse_user`
is one function and no dependency.

See also
--------

* :doc:`/recipes/http_client`: the other side of this API, a client with
  timeouts, error statuses and retries.
* :doc:`/recipes/postgres`: asyncpg connections, pools, transactions and
  timeouts; :doc:`/recipes/job_queue` builds on the same database.
* :doc:`/recipes/synchronization`: the lock that keeps the memory store's
  writes whole.
* :doc:`/recipes/cancellation`: stopping on ``SIGINT`` and ``SIGTERM`` in a
  program that is not an aiohttp application.
* aiohttp: :doc:`aiohttp:web_quickstart`, :doc:`aiohttp:web_advanced`
  (:ref:`middlewares <aiohttp:aiohttp-web-middlewares>`,
  :ref:`application runners <aiohttp:aiohttp-web-app-runners>`,
  :ref:`graceful shutdown <aiohttp:aiohttp-web-graceful-shutdown>`) and
  :doc:`aiohttp:testing`.
* asyncpg: `usage and connection pools
  <https://magicstack.github.io/asyncpg/current/usage.html>`_ and the
  `API reference <https://magicstack.github.io/asyncpg/current/api/index.html>`_.
* Python: :doc:`python:library/asyncio-sync` (:class:`asyncio.Lock`),
  :mod:`json` and :doc:`python:howto/logging`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import re
import sys
import unicodedata
from typing import (
    TYPE_CHECKING,
    Any,
    AsyncIterator,
    Awaitable,
    Callable,
    Dict,
    Iterable,
    List,
    Mapping,
    Optional,
    Protocol,
    Sequence,
    cast,
)
from urllib.parse import quote

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_log import AccessLogger

if TYPE_CHECKING:
    import asyncpg  # type: ignore[import-untyped]

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "MAX_ID_LENGTH",
    "MAX_NAME_LENGTH",
    "MAX_AGE",
    "make_app",
    "User",
    "parse_user",
    "ApiError",
    "error_middleware",
    "Store",
    "STORE_KEY",
    "MemoryStore",
    "PostgresStore",
    "main",
]

logger = logging.getLogger(__name__)

#: The largest request body, in bytes, that :func:`make_app` accepts by default.
DEFAULT_MAX_BODY_BYTES = 16 * 1024
#: The longest id, in characters.
MAX_ID_LENGTH = 100
#: The longest name, in characters.
MAX_NAME_LENGTH = 200
#: The largest age accepted.
MAX_AGE = 150

_FIELDS = ("id", "name", "age")
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_app(
    store: Optional[Store] = None, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
) -> web.Application:
    """Build the users API, keeping its users in ``store`` (a new :class:`MemoryStore` by default).

    >>> import aiohttp
    >>> from aiohttp import web
    >>> from recipes.api_server import make_app
    >>> runner = web.AppRunner(make_app())
    >>> await runner.setup()
    >>> site = web.TCPSite(runner, "127.0.0.1", 0)
    >>> await site.start()
    >>> url = f"http://127.0.0.1:{runner.addresses[0][1]}/users"
    >>> timeout = aiohttp.ClientTimeout(total=10)
    >>> async with aiohttp.ClientSession(timeout=timeout) as session:
    ...     async with session.get(url) as resp:
    ...         print(resp.status, await resp.text())
    200 []
    >>> await runner.cleanup()

    The application owns the store: it calls ``await store.open()`` when it
    starts and ``await store.close()`` when it is cleaned up, so give each
    application a store of its own.  ``max_body_bytes`` limits request bodies
    (``413`` beyond it); it must be at least 1:

    >>> make_app(max_body_bytes=0)
    Traceback (most recent call last):
    ...
    ValueError: max_body_bytes must be a positive integer, got 0

    The application sets aiohttp's ``logger`` and ``access_log_class`` itself
    (``handler_args``), to escape what clients send (see *Logging what clients
    send*): the same arguments given to :class:`aiohttp.web.AppRunner` or
    :func:`aiohttp.web.run_app` are ignored.  ``access_log`` (a logger, or
    ``None`` for no access log) and ``access_log_format`` work as usual.
    """
    if isinstance(max_body_bytes, bool) or not isinstance(max_body_bytes, int):
        raise TypeError(f"max_body_bytes must be an int, got {type(max_body_bytes).__name__}")
    if max_body_bytes < 1:
        raise ValueError(f"max_body_bytes must be a positive integer, got {max_body_bytes}")
    app = web.Application(
        client_max_size=max_body_bytes,
        middlewares=[error_middleware],
        # aiohttp's own log lines about requests: client text escaped, no tracebacks
        # for the client's malformed HTTP.  These override AppRunner's arguments.
        handler_args={
            "logger": _ClientTextLog(logging.getLogger("aiohttp.server")),
            "access_log_class": _EscapedAccessLog,
        },
    )
    app[STORE_KEY] = MemoryStore() if store is None else store
    app[_MAX_BODY_KEY] = max_body_bytes
    app.cleanup_ctx.append(_store_lifetime)
    # Every route has the Expect handler of this module, and every request for a path
    # has a route: the other methods of a resource get a 405, any other path a 404.
    one_user = "/users/{id:[^/]+}"  # one path segment, braces included (not so by default)
    for method, path, handler in [
        ("GET", "/users", _list_users),
        ("POST", "/users", _create_user),
        ("*", "/users", _method_not_allowed),
        ("GET", one_user, _get_user),
        ("PUT", one_user, _replace_user),
        ("DELETE", one_user, _delete_user),
        ("*", one_user, _method_not_allowed),
        ("*", "/{path:[\\s\\S]*}", _not_found),  # any path, newlines included
    ]:
        if method == "GET":
            app.router.add_get(path, handler, expect_handler=_expect)  # and HEAD
        else:
            app.router.add_route(method, path, handler, expect_handler=_expect)
    return app


@dataclasses.dataclass(frozen=True)
class User:
    """One user, as stored and as sent to clients.

    >>> from recipes.api_server import User
    >>> User("7", "Ada Lovelace", 36).to_json()
    {'id': '7', 'name': 'Ada Lovelace', 'age': 36}

    Build users from client data with :func:`parse_user`, which checks every
    field; the class itself checks nothing.  It is frozen, so a stored user
    cannot be changed behind the store's back:

    >>> User("7", "Ada").name = "Eve"
    Traceback (most recent call last):
    ...
    dataclasses.FrozenInstanceError: cannot assign to field 'name'
    """

    id: str
    name: str
    age: Optional[int] = None

    def to_json(self) -> Dict[str, Any]:
        """The user as a JSON-ready dict; a missing age is ``None`` (``null``)."""
        return {"id": self.id, "name": self.name, "age": self.age}


class ApiError(Exception):
    """A client error: :func:`error_middleware` sends it as ``{"error": ...}`` with its status.

    >>> from recipes.api_server import ApiError
    >>> raise ApiError(404, "no user with id '42'")
    Traceback (most recent call last):
    ...
    recipes.api_server.ApiError: 404 no user with id '42'

    ``fields`` maps field names to what is wrong with each; the JSON body
    carries them so a client can show each message next to its input:

    >>> error = ApiError(400, "invalid user", fields={"age": "must be an integer"})
    >>> error.to_json()
    {'error': 'invalid user', 'fields': {'age': 'must be an integer'}}

    Only error statuses make sense:

    >>> ApiError(200, "fine")
    Traceback (most recent call last):
    ...
    ValueError: an ApiError needs a 4xx or 5xx status, got 200
    """

    def __init__(
        self, status: int, message: str, *, fields: Optional[Mapping[str, str]] = None
    ) -> None:
        if not 400 <= status <= 599:
            raise ValueError(f"an ApiError needs a 4xx or 5xx status, got {status}")
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = message
        self.fields: Dict[str, str] = dict(fields or {})

    def to_json(self) -> Dict[str, Any]:
        """The JSON body of the error response."""
        body: Dict[str, Any] = {"error": self.message}
        if self.fields:
            body["fields"] = dict(self.fields)
        return body


def parse_user(data: object, *, path_id: Optional[str] = None) -> User:
    """Check decoded JSON ``data`` and return the :class:`User` it describes.

    >>> from recipes.api_server import ApiError, parse_user
    >>> parse_user({"id": 7, "name": "Ada Lovelace", "age": 36})
    User(id='7', name='Ada Lovelace', age=36)

    Every problem is reported at once in the error's ``fields``, with status
    400.  Unknown fields are errors too:

    >>> try:
    ...     parse_user({"id": "", "name": 42, "age": -1, "email": "ada@x.org"})
    ... except ApiError as exc:
    ...     print(exc.status, exc.message)
    ...     for field, problem in exc.fields.items():
    ...         print(f"  {field}: {problem}")
    400 invalid user
      id: must not be empty
      name: must be a string
      age: must be an integer from 0 to 150
      email: unknown field (a user has id, name and age)

    ``path_id`` is the id from the URL of a ``PUT``: the body may leave the id
    out, but if it names one, it must be the same:

    >>> parse_user({"name": "Ada"}, path_id="7")
    User(id='7', name='Ada', age=None)
    >>> parse_user({"id": 8, "name": "Ada"}, path_id="7")
    Traceback (most recent call last):
    ...
    recipes.api_server.ApiError: 400 invalid user

    Anything but a JSON object is refused before its fields are looked at:

    >>> parse_user(None)
    Traceback (most recent call last):
    ...
    recipes.api_server.ApiError: 400 expected a JSON object, got null
    """
    if not isinstance(data, dict):
        raise ApiError(400, f"expected a JSON object, got {_json_kind(data)}")
    problems: Dict[str, str] = {}

    user_id: Optional[str] = None
    raw_id = data.get("id", path_id)
    if "id" not in data and path_id is None:
        problems["id"] = "is required"
    elif isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)):
        problems["id"] = "must be a string or an integer"
    else:
        user_id = str(raw_id)
        problem = _id_problem(user_id)
        if problem is None and path_id is not None and user_id != path_id:
            problem = f"does not match the id in the URL ({path_id!r})"
        if problem is not None:
            problems["id"] = problem

    name = data.get("name")
    if "name" not in data:
        problems["name"] = "is required"
    elif not isinstance(name, str):
        problems["name"] = "must be a string"
    else:
        problem = _string_problem(name, MAX_NAME_LENGTH, empty="must not be blank")
        if problem is not None:
            problems["name"] = problem

    age = data.get("age")
    if isinstance(age, bool):
        problems["age"] = (
            f"must be an integer from 0 to {MAX_AGE} (true and false are not integers)"
        )
    elif age is not None and (not isinstance(age, int) or not 0 <= age <= MAX_AGE):
        problems["age"] = f"must be an integer from 0 to {MAX_AGE}"

    for field in data:
        if field not in _FIELDS:
            problems[field] = "unknown field (a user has id, name and age)"

    if problems:
        raise ApiError(400, "invalid user", fields=problems)
    assert user_id is not None and isinstance(name, str)
    return User(user_id, name, age)


def _id_problem(user_id: str) -> Optional[str]:
    """What is wrong with an id, or ``None``."""
    problem = _string_problem(user_id, MAX_ID_LENGTH, empty="must not be empty")
    if problem is None and user_id in (".", ".."):
        problem = "must not be '.' or '..' (HTTP clients remove them from URLs)"
    return problem


def _string_problem(value: str, max_length: int, *, empty: str) -> Optional[str]:
    """What is wrong with an id or a name, or ``None``."""
    if not value.strip():
        return empty
    if len(value) > max_length:
        return f"must be at most {max_length} characters long"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode (no lone surrogates such as \\ud800)"
    if any(unicodedata.category(char) == "Cc" for char in value):
        return "must not contain control characters"
    return None


def _json_kind(value: object) -> str:
    """The JSON name of a decoded value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


@web.middleware
async def error_middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Answer every error with a JSON body ``{"error": ...}`` and the right status.

    >>> import aiohttp
    >>> from aiohttp import web
    >>> from recipes.api_server import error_middleware
    >>> async def forbidden(request):
    ...     raise web.HTTPForbidden()
    >>> async def broken(request):
    ...     return 1 / 0
    >>> app = web.Application(middlewares=[error_middleware])
    >>> _ = app.router.add_get("/secret", forbidden)
    >>> _ = app.router.add_get("/broken", broken)
    >>> runner = web.AppRunner(app)
    >>> await runner.setup()
    >>> site = web.TCPSite(runner, "127.0.0.1", 0)
    >>> await site.start()
    >>> url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    >>> timeout = aiohttp.ClientTimeout(total=10)
    >>> async with aiohttp.ClientSession(timeout=timeout) as session:
    ...     for path in ("/secret", "/broken"):
    ...         async with session.get(url + path) as resp:
    ...             print(resp.status, resp.content_type, await resp.text())
    403 application/json {"error": "Forbidden"}
    500 application/json {"error": "internal server error"}
    >>> await runner.cleanup()

    * :class:`ApiError` becomes its status and :meth:`ApiError.to_json`.
    * An :class:`aiohttp.web.HTTPException` with an error status (aiohttp's own
      ``404``, ``405`` and ``413`` included) becomes JSON with the same status
      and headers.  Redirects and other non-error statuses pass through.
    * :exc:`asyncio.TimeoutError` (an exhausted database pool, a slow query)
      becomes ``503`` with ``Retry-After``.
    * Any other exception is logged with its traceback to the
      ``recipes.api_server`` logger and becomes ``500``, with no details for
      the client.  :exc:`asyncio.CancelledError` is never caught.
    * The method and path in those log lines are escaped: a path with
      ``%0A`` or ``%1B`` in it cannot add a line to the log or reach a
      terminal as a control code.
    * When the request body broke off (it did not decode, a chunk was
      malformed), the answer closes the connection.
    """
    response: web.StreamResponse
    try:
        response = await handler(request)
    except ApiError as exc:
        response = web.json_response(exc.to_json(), status=exc.status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _json_for_http_exception(request, exc)
    except asyncio.TimeoutError:
        method, path = _printable(request.method), _printable(request.path)
        logger.warning("timed out handling %s %s", method, path)
        response = web.json_response(
            {"error": "the server is busy; try again later"},
            status=503,
            headers={"Retry-After": "1"},
        )
    except Exception:
        method, path = _printable(request.method), _printable(request.path)
        logger.exception("unexpected error handling %s %s", method, path)
        response = web.json_response({"error": "internal server error"}, status=500)
    if request.content.exception() is not None:
        # The body broke off (a "gzip" body that is not gzip, a bad chunk): nothing
        # that follows on this connection can be trusted, so close it after the
        # answer.  Marking the body finished stops aiohttp from reading on after the
        # answer, meeting the same error and logging it as "Unhandled exception".
        request.content.feed_eof()
        response.force_close()
    return response


def _json_for_http_exception(request: web.Request, exc: web.HTTPException) -> web.Response:
    """aiohttp's text error response, as JSON, with the original headers."""
    default_text = f"{exc.status}: {exc.reason}"
    body: Dict[str, Any]
    if isinstance(exc, web.HTTPMethodNotAllowed):
        body = {
            "error": f"method {request.method} is not allowed",
            "allowed": sorted(exc.allowed_methods),
        }
    elif isinstance(exc, web.HTTPNotFound) and exc.text in (None, default_text):
        body = {"error": f"not found: {request.path}"}
    else:
        body = {"error": exc.text if exc.text and exc.text != default_text else exc.reason}
    headers = {
        name: value
        for name, value in exc.headers.items()
        if name.lower() not in ("content-type", "content-length")
    }
    return web.json_response(body, status=exc.status, headers=headers)


def _printable(text: str) -> str:
    """``text`` from a client, safe for a log line: backslashes and unprintable characters escaped.

    Newlines and carriage returns (forged log lines), terminal escape codes,
    Unicode line separators, direction overrides and lone surrogates (which a
    UTF-8 log file cannot even encode) come out as ``\\n``, ``\\x1b``,
    ``\\u2028``, ``\\u202e``, ``\\udcff``; everything else is left as it is.
    """
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(
        char if char.isprintable() and char != "\\" else char.encode("unicode_escape").decode()
        for char in text
    )


def _client_fault(exc: object) -> Optional[str]:
    """aiohttp's reason, on one line, if ``exc`` means a malformed request; else ``None``."""
    if isinstance(exc, web.RequestPayloadError):
        # It wraps the parser's error (ContentEncodingError, TransferEncodingError...).
        cause = exc.__cause__
        reason = cause.message if isinstance(cause, HttpProcessingError) else str(exc)
    elif isinstance(exc, HttpProcessingError) and 400 <= exc.code < 500:
        reason = exc.message
    else:
        return None
    return " ".join(str(reason).split())


if TYPE_CHECKING:
    _LoggerAdapter = logging.LoggerAdapter[logging.Logger]
else:
    _LoggerAdapter = logging.LoggerAdapter


class _ClientTextLog(_LoggerAdapter):
    """A logger for aiohttp's lines about requests, which quote what clients sent.

    aiohttp logs every request it cannot parse at ``ERROR`` with a traceback,
    and its access log copies header values (``User-Agent``, ``Referer``) as
    they came.  Through this adapter, every message is escaped with
    ``_printable()``, and a malformed request (aiohttp has already answered it
    with a ``400``) becomes one ``INFO`` line with aiohttp's reason.
    """

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__(logger, None)

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        reason = _client_fault(kwargs.get("exc_info"))
        if reason is not None:  # the client's fault, already answered: no traceback
            level = min(level, logging.INFO)
            kwargs["exc_info"] = None
        if not self.isEnabledFor(level):
            return
        text = str(msg) % args if args else str(msg)
        if reason is not None:
            text = f"{text}: {reason}"
        self.logger.log(level, _printable(text), **kwargs)  # no args: logged as it is


class _EscapedAccessLog(AccessLogger):
    """aiohttp's access log, written through ``_ClientTextLog``."""

    def __init__(self, logger: logging.Logger, log_format: str = AccessLogger.LOG_FORMAT) -> None:
        # AccessLogger only calls info(), exception() and isEnabledFor() on it.
        super().__init__(cast(logging.Logger, _ClientTextLog(logger)), log_format)


class Store(Protocol):
    """What :func:`make_app` needs from a store: open, close, and five queries.

    >>> from recipes.api_server import MemoryStore, Store, User
    >>> async def count(store: Store) -> int:
    ...     return len(await store.list_users())
    >>> await count(MemoryStore([User("1", "Ada"), User("2", "Grace")]))
    2

    The write methods report a missing or duplicate id with their result
    (``False``) instead of an exception, and must decide it atomically: a
    store that checks first and writes afterwards loses updates under
    concurrent requests.
    """

    async def open(self) -> None:
        """Acquire resources (connections, tables); called when the application starts."""

    async def close(self) -> None:
        """Release them; called when the application is cleaned up."""

    async def list_users(self) -> List[User]:
        """Every user, sorted by id (code point order)."""
        ...

    async def get_user(self, user_id: str) -> Optional[User]:
        """The user with this id, or ``None``."""
        ...

    async def create_user(self, user: User) -> bool:
        """Store a new user; ``False`` (and no change) if the id is taken."""
        ...

    async def replace_user(self, user: User) -> bool:
        """Replace the user with ``user.id``; ``False`` if there is none."""
        ...

    async def delete_user(self, user_id: str) -> bool:
        """Delete the user with this id; ``False`` if there is none."""
        ...


#: The application key under which :func:`make_app` keeps the :class:`Store`:
#: handlers read it with ``request.app[STORE_KEY]``.
#:
#: :meta hide-value:
STORE_KEY = web.AppKey("store", Store)  # type: ignore[type-abstract]
_MAX_BODY_KEY = web.AppKey("max_body_bytes", int)


class MemoryStore:
    """Users in a dict, for tests, demos and single-process servers.

    >>> from recipes.api_server import MemoryStore, User
    >>> store = MemoryStore()
    >>> await store.create_user(User("1", "Ada"))
    True
    >>> await store.create_user(User("1", "Someone else"))
    False
    >>> await store.list_users()
    [User(id='1', name='Ada', age=None)]

    Start it with some users by passing them in:

    >>> store = MemoryStore([User("b", "Grace"), User("a", "Ada")])
    >>> [user.id for user in await store.list_users()]
    ['a', 'b']

    Each write checks and changes the dict with no ``await`` in between, so on
    one event loop two writes cannot interleave even without a lock.  The
    :class:`asyncio.Lock` keeps it that way when a method grows an ``await``
    (writing through to a file, say).  The data lives as long as the object:
    a restart forgets every user.
    """

    def __init__(self, users: Iterable[User] = ()) -> None:
        self._users: Dict[str, User] = {}
        for user in users:
            if user.id in self._users:
                raise ValueError(f"duplicate user id {user.id!r}")
            self._users[user.id] = user
        # Created on first use, inside the running loop: on Python 3.8 and 3.9
        # a Lock binds to the event loop that is current when it is created.
        self._lock: Optional[asyncio.Lock] = None

    def __repr__(self) -> str:
        return f"<MemoryStore with {len(self._users)} users>"

    def _write_lock(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def open(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Nothing to close; the users stay, should the store be opened again."""

    async def list_users(self) -> List[User]:
        """Every user, sorted by id."""
        return sorted(self._users.values(), key=lambda user: user.id)

    async def get_user(self, user_id: str) -> Optional[User]:
        """The user with this id, or ``None``."""
        return self._users.get(user_id)

    async def create_user(self, user: User) -> bool:
        """Store a new user; ``False`` if the id is taken."""
        async with self._write_lock():
            if user.id in self._users:
                return False
            self._users[user.id] = user
            return True

    async def replace_user(self, user: User) -> bool:
        """Replace an existing user; ``False`` if there is none."""
        async with self._write_lock():
            if user.id not in self._users:
                return False
            self._users[user.id] = user
            return True

    async def delete_user(self, user_id: str) -> bool:
        """Delete a user; ``False`` if there is none."""
        async with self._write_lock():
            return self._users.pop(user_id, None) is not None


_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


class PostgresStore:
    """Users in a PostgreSQL table, through an asyncpg pool.

    >>> import aiohttp
    >>> from aiohttp import web
    >>> from recipes.api_server import PostgresStore, make_app
    >>> store = PostgresStore(dsn, table="doctest_users")
    >>> runner = web.AppRunner(make_app(store))
    >>> await runner.setup()  # opens the pool, creates the table if missing
    >>> site = web.TCPSite(runner, "127.0.0.1", 0)
    >>> await site.start()
    >>> url = f"http://127.0.0.1:{runner.addresses[0][1]}/users"
    >>> bobby = "x'); DROP TABLE doctest_users; --"
    >>> users = [{"id": bobby, "name": "Bobby"},
    ...          {"id": 1, "name": "Ada"}, {"id": 1, "name": "Ada, again"}]
    >>> timeout = aiohttp.ClientTimeout(total=10)
    >>> async with aiohttp.ClientSession(timeout=timeout) as session:
    ...     for user in users:
    ...         async with session.post(url, json=user) as resp:
    ...             print(resp.status, await resp.json())
    201 {'id': "x'); DROP TABLE doctest_users; --", 'name': 'Bobby', 'age': None}
    201 {'id': '1', 'name': 'Ada', 'age': None}
    409 {'error': "a user with id '1' already exists"}
    >>> await runner.cleanup()  # closes the pool

    Values travel as query parameters, so the SQL-looking id above is stored
    as plain text.  The users outlive the application; a new store on the same
    table finds them.  Used on its own, the store is an async context manager
    that opens and closes the pool:

    >>> async with PostgresStore(dsn, table="doctest_users") as store:
    ...     print([user.id for user in await store.list_users()])
    ...     await store.drop_table()
    ['1', "x'); DROP TABLE doctest_users; --"]

    ``dsn`` is a connection string such as
    ``postgresql://user@host:5432/database``.  ``table`` must be a plain SQL
    identifier (letters, digits, underscores); it cannot be a query parameter,
    so it is checked here instead:

    >>> PostgresStore(dsn, table="users; DROP")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    ValueError: table must be a plain identifier (letters, digits, _),
    got 'users; DROP'

    ``timeout`` limits connecting, waiting for a free connection in the pool
    (so an exhausted pool fails with :exc:`asyncio.TimeoutError`, a ``503``,
    instead of hanging), every query, and closing.  ``max_size`` is the most
    connections the pool opens.  ``id`` is the primary key and the table has
    ``CHECK`` constraints that repeat the main rules of :func:`parse_user`.
    Users are listed in code point order (``COLLATE "C"``), the order of
    :class:`MemoryStore`, whatever the database's locale.
    """

    def __init__(
        self,
        dsn: str,
        *,
        table: str = "users",
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 10.0,
    ) -> None:
        if not isinstance(table, str) or not _TABLE_NAME.fullmatch(table):
            raise ValueError(
                f"table must be a plain identifier (letters, digits, _), got {table!r}"
            )
        if not 0 <= min_size <= max_size or max_size < 1:
            raise ValueError(
                f"need 0 <= min_size <= max_size and max_size >= 1, got "
                f"min_size={min_size}, max_size={max_size}"
            )
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self._dsn = dsn
        self.table = table
        self._min_size = min_size
        self._max_size = max_size
        self._timeout = timeout
        self._pool: Optional[asyncpg.Pool] = None
        quoted = f'"{table}"'
        self._create_sql = f"""
            CREATE TABLE IF NOT EXISTS {quoted} (
                id text PRIMARY KEY CHECK (id <> ''),
                name text NOT NULL CHECK (name <> ''),
                age integer CHECK (age >= 0)
            )
        """
        self._list_sql = f'SELECT id, name, age FROM {quoted} ORDER BY id COLLATE "C"'
        self._get_sql = f"SELECT id, name, age FROM {quoted} WHERE id = $1"
        self._insert_sql = (
            f"INSERT INTO {quoted} (id, name, age) VALUES ($1, $2, $3) "
            "ON CONFLICT (id) DO NOTHING RETURNING id"
        )
        self._update_sql = f"UPDATE {quoted} SET name = $2, age = $3 WHERE id = $1 RETURNING id"
        self._delete_sql = f"DELETE FROM {quoted} WHERE id = $1 RETURNING id"
        self._drop_sql = f"DROP TABLE IF EXISTS {quoted}"

    def __repr__(self) -> str:
        # Never the DSN: it may hold a password.
        state = "open" if self._pool is not None else "closed"
        return f"<PostgresStore table={self.table!r} {state}>"

    async def __aenter__(self) -> PostgresStore:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Create the pool and the table (if missing); a no-op if already open."""
        if self._pool is not None:
            return
        import asyncpg  # type: ignore[import-untyped]  # only this store needs it

        pool = await asyncpg.create_pool(
            self._dsn,
            min_size=self._min_size,
            max_size=self._max_size,
            timeout=self._timeout,
            command_timeout=self._timeout,
        )
        try:
            async with pool.acquire(timeout=self._timeout) as conn:
                async with conn.transaction():
                    # Two processes running CREATE TABLE IF NOT EXISTS at the
                    # same moment can still collide; a lock makes them take turns.
                    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", self.table)
                    await conn.execute(self._create_sql)
        except BaseException:
            pool.terminate()
            raise
        self._pool = pool

    async def close(self) -> None:
        """Close the pool, waiting at most ``timeout`` seconds for connections in use.

        After the timeout, or when closing fails, the pool is terminated (its
        connections dropped).  Cancelled while closing, it terminates the pool
        and raises :exc:`asyncio.CancelledError`, even when the cancellation
        arrives just as the pool finishes closing.
        """
        pool, self._pool = self._pool, None
        if pool is None:
            return
        # asyncio.wait, not asyncio.wait_for: on 3.8-3.11, wait_for returns normally
        # when this task is cancelled just as closing finishes (CPython gh-86296),
        # and an application cancelled during its cleanup would carry on.
        closing = asyncio.ensure_future(pool.close())
        try:
            await asyncio.wait({closing}, timeout=self._timeout)
        finally:  # timed out or cancelled: stop closing politely
            if not closing.done():
                closing.cancel()  # Pool.close() terminates the pool when cancelled
                await asyncio.wait({closing})
            if closing.cancelled() or closing.exception() is not None:
                pool.terminate()  # closing failed or was cut short: drop the connections

    def _require_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError(
                "PostgresStore is not open: await store.open() first "
                "(an application from make_app() opens it when it starts)"
            )
        return self._pool

    async def _fetch(self, sql: str, *args: object) -> List[Any]:
        async with self._require_pool().acquire(timeout=self._timeout) as conn:
            return list(await conn.fetch(sql, *args, timeout=self._timeout))

    async def list_users(self) -> List[User]:
        """Every user, sorted by id."""
        rows = await self._fetch(self._list_sql)
        return [User(row["id"], row["name"], row["age"]) for row in rows]

    async def get_user(self, user_id: str) -> Optional[User]:
        """The user with this id, or ``None``."""
        rows = await self._fetch(self._get_sql, user_id)
        return User(rows[0]["id"], rows[0]["name"], rows[0]["age"]) if rows else None

    async def create_user(self, user: User) -> bool:
        """Insert a new user; ``False`` if the id is taken (decided by the primary key)."""
        return bool(await self._fetch(self._insert_sql, user.id, user.name, user.age))

    async def replace_user(self, user: User) -> bool:
        """Update an existing user; ``False`` if there is none."""
        return bool(await self._fetch(self._update_sql, user.id, user.name, user.age))

    async def delete_user(self, user_id: str) -> bool:
        """Delete a user; ``False`` if there is none."""
        return bool(await self._fetch(self._delete_sql, user_id))

    async def drop_table(self) -> None:
        """Drop the table and every user in it (for tests and teardown)."""
        await self._fetch(self._drop_sql)


# --- the application's plumbing -------------------------------------------------


async def _store_lifetime(app: web.Application) -> AsyncIterator[None]:
    """Open the store when the application starts; close it when it is cleaned up."""
    store = app[STORE_KEY]
    await store.open()
    try:
        yield
    finally:
        await store.close()
        logger.info("closed the store %r", store)


async def _read_json(request: web.Request) -> object:
    """The decoded JSON body, or an :class:`ApiError` that says what is wrong with it."""
    try:
        content_type, charset = request.content_type, request.charset
    except ValueError:  # aiohttp 3.10 raises UnicodeEncodeError on some bytes past ASCII
        raise ApiError(415, "expected Content-Type: application/json, got an unreadable one")
    if content_type != "application/json":
        raise ApiError(415, f"expected Content-Type: application/json, got {content_type}")
    if charset is not None and charset.lower() not in ("utf-8", "utf8"):
        raise ApiError(415, f"JSON must be sent as UTF-8, got charset={charset}")
    limit = request.app[_MAX_BODY_KEY]
    length = request.content_length
    if length is not None and length > limit:
        raise ApiError(413, f"the body is {length} bytes; the limit is {limit} bytes")
    try:
        raw = await request.read()  # raises HTTPRequestEntityTooLarge past client_max_size
    except ConnectionError:
        raise ApiError(400, "the connection closed before the whole body arrived")
    except web.RequestPayloadError as exc:  # bad gzip or deflate data, a broken chunk
        raise ApiError(400, f"the body could not be read: {_client_fault(exc)}")
    if not raw.strip():
        raise ApiError(400, "the body is empty; expected a JSON object")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"the body is not valid UTF-8 (byte {exc.start}: {exc.reason})")
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise ApiError(400, "malformed JSON: nested too deeply")
    except ValueError as exc:  # JSONDecodeError, NaN, integers of more than 4300 digits
        raise ApiError(400, f"malformed JSON: {exc}")


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


async def _expect(request: web.Request) -> Optional[web.StreamResponse]:
    """The routes' ``Expect`` handler: ``100 Continue`` when asked for, else a JSON ``417``.

    aiohttp's default handler answers an unknown expectation with a plain-text
    ``417``, and a header that is not UTF-8 with a ``500`` (it cannot encode
    the bytes it quotes); both bypass the middleware.
    """
    expect = request.headers.get("Expect", "")
    if expect.lower() != "100-continue":
        message = f"cannot meet the expectation {expect!r}; only 100-continue is supported"
        return web.json_response({"error": message}, status=417)
    if request.version >= (1, 1):
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # as aiohttp's own handler: the answer is yet to come
    return None


async def _method_not_allowed(request: web.Request) -> web.StreamResponse:
    """The ``*`` route of a resource: a ``405`` that lists the resource's other methods."""
    resource = request.match_info.route.resource
    allowed = {route.method for route in resource or ()} - {"*"}
    raise web.HTTPMethodNotAllowed(request.method, allowed)


async def _not_found(request: web.Request) -> web.StreamResponse:
    """The route of every path that no other route matches."""
    raise web.HTTPNotFound()


def _user_response(user: User, *, status: int = 200) -> web.Response:
    response = web.json_response(user.to_json(), status=status)
    if status == 201:
        response.headers["Location"] = "/users/" + quote(user.id, safe="")
    return response


async def _list_users(request: web.Request) -> web.Response:
    users = await request.app[STORE_KEY].list_users()
    return web.json_response([user.to_json() for user in users])


def _path_id(request: web.Request) -> str:
    """The id in the URL, or a ``400`` if no user can have it (PostgreSQL cannot compare a NUL)."""
    user_id = request.match_info["id"]
    problem = _id_problem(user_id)
    if problem is not None:
        raise ApiError(400, "invalid user id in the URL", fields={"id": problem})
    return user_id


async def _get_user(request: web.Request) -> web.Response:
    user_id = _path_id(request)
    user = await request.app[STORE_KEY].get_user(user_id)
    if user is None:
        raise ApiError(404, f"no user with id {user_id!r}")
    return _user_response(user)


async def _create_user(request: web.Request) -> web.Response:
    user = parse_user(await _read_json(request))
    if not await request.app[STORE_KEY].create_user(user):
        raise ApiError(409, f"a user with id {user.id!r} already exists")
    return _user_response(user, status=201)


async def _replace_user(request: web.Request) -> web.Response:
    user_id = _path_id(request)
    user = parse_user(await _read_json(request), path_id=user_id)
    if not await request.app[STORE_KEY].replace_user(user):
        raise ApiError(404, f"no user with id {user_id!r}")
    return _user_response(user)


async def _delete_user(request: web.Request) -> web.Response:
    user_id = _path_id(request)
    if not await request.app[STORE_KEY].delete_user(user_id):
        raise ApiError(404, f"no user with id {user_id!r}")
    return web.Response(status=204)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the API server until ``SIGINT`` or ``SIGTERM``: ``python -m recipes.api_server``.

    .. code-block:: console

       $ python -m recipes.api_server --port 8080
       ======== Running on http://127.0.0.1:8080 ========
       (Press CTRL+C to quit)
       $ curl -s -X POST localhost:8080/users -H 'Content-Type: application/json' \\
              -d '{"id": 1, "name": "Ada"}'
       {"id": "1", "name": "Ada", "age": null}

    Options: ``--host`` (``127.0.0.1``; ``0.0.0.0`` listens on every
    interface), ``--port`` (``8080``), ``--dsn`` (a PostgreSQL connection
    string; users are kept in memory without it), ``--table`` (``users``) and
    ``--max-body-bytes``.  The process exits with status 0 after a graceful
    stop, and 1 if the server cannot start (the port is taken, the database
    cannot be reached).

    A password in ``--dsn`` is visible to every user of the machine in the
    process list.  Leave it out of the DSN and let asyncpg find it in the
    ``PGPASSWORD`` environment variable or a ``~/.pgpass`` file.
    """
    parser = argparse.ArgumentParser(
        prog="python -m recipes.api_server", description="Serve the users JSON API."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on")
    parser.add_argument("--dsn", help="PostgreSQL DSN; without it, users are kept in memory")
    parser.add_argument("--table", default="users", help="PostgreSQL table (default: users)")
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=DEFAULT_MAX_BODY_BYTES,
        help=f"largest request body (default: {DEFAULT_MAX_BODY_BYTES})",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        store: Store = PostgresStore(args.dsn, table=args.table) if args.dsn else MemoryStore()
        app = make_app(store, max_body_bytes=args.max_body_bytes)
    except (TypeError, ValueError) as exc:
        parser.error(str(exc))
    try:
        # run_app turns SIGINT and SIGTERM into a graceful stop and runs the
        # application's cleanup (which closes the store) before returning.
        web.run_app(
            app,
            host=args.host,
            port=args.port,
            shutdown_timeout=10.0,
            access_log_format='%a "%r" %s %b bytes %Tf s',
        )
    except Exception as exc:
        logger.error("the server stopped: %s: %s", type(exc).__name__, exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
