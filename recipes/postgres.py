"""asyncpg talks to PostgreSQL from asyncio without threads: every query is a
coroutine, so one process can keep hundreds of queries in flight.  The price is
that the usual database chores become asyncio chores.  A connection has to be
closed even when the code using it is cancelled.  One connection serves one
query at a time, however many tasks hold it.  Every network wait needs a
timeout.  This chapter builds a small bank (an ``accounts`` table with owners
and balances) and uses it to show each of those chores done right: opening and
closing connections, parameters instead of string formatting, the four ways to
run a query, transactions, pools, bulk loads and LISTEN/NOTIFY.

The examples need a running server, whose address they take from ``dsn``, a
string such as ``postgresql://postgres@127.0.0.1:5432/postgres``.
``base_url`` is the address of the demo HTTP server (``dsn`` of a PostgreSQL
server): in your own session start them with ``python -m tests.demo_servers``
from a checkout and paste the two lines it prints.  This chapter needs only
``dsn``.  The server is a throwaway one, removed when you stop the command;
to use a server of your own, set ``dsn`` to its address instead, and run the
examples in a scratch database, since they create tables.  (When the examples
run as tests, ``dsn`` is set for them.)

Opening and closing a connection
--------------------------------

.. index::
   pair: asyncpg; connection
   single: error messages; sorry, too many clients already

A connection is a socket plus a server process dedicated to it.  If your code
forgets to close it, or is cancelled before it gets the chance, both live on
until the garbage collector or the end of the program, and a busy program soon
meets ``FATAL: sorry, too many clients already``.  :func:`open_connection`
wraps ``asyncpg.connect`` in an ``async with`` block that closes the
connection on every way out, with a timeout on connecting, on every query and
on closing:

>>> import asyncio
>>> import asyncpg
>>> from recipes.postgres import open_connection
>>> async with open_connection(dsn) as conn:
...     print(await conn.fetchval("SELECT 2 + 2"))
4

Creating tables
---------------

.. index::
   single: CHECK constraint
   single: TEMPORARY table

DDL statements such as ``CREATE TABLE`` go through ``execute``.
:func:`create_accounts_table` creates the table the rest of the chapter uses.
Its ``CHECK (balance >= 0)`` puts the rule "no overdrafts" into the database,
where no concurrent code path can skip it.  A ``TEMPORARY`` table belongs to
one connection and disappears when that connection closes, which makes it handy
for scratch work and for examples.

Passing values as $1 parameters
-------------------------------

.. index::
   single: SQL injection
   pair: query parameters; asyncpg
   single: error messages; invalid input for query argument $1

PostgreSQL placeholders are numbered: ``$1``, ``$2``...  The values travel
separately from the SQL text, so the server never parses them as SQL.  A query
built with an f-string or ``%`` does the opposite, and a value that contains a
quote rewrites the query:

>>> from recipes.postgres import (
...     create_accounts_table, get_account, list_accounts, open_account,
... )
>>> conn = await asyncpg.connect(dsn, timeout=10, command_timeout=30)
>>> await create_accounts_table(conn, temporary=True)
>>> for owner in ("alice", "bob", "carol"):
...     _ = await open_account(conn, owner, 100)
>>> name = "nobody' OR ''='"
>>> formatted = f"SELECT count(*) FROM accounts WHERE owner = '{name}'"
>>> await conn.fetchval(formatted)
3
>>> await conn.fetchval("SELECT count(*) FROM accounts WHERE owner = $1", name)
0

The formatted query matched every account; the parameterised one looked for an
owner literally called ``nobody' OR ''='`` and found none.  Stored through a
parameter, such a string is plain text like any other:

>>> evil = "x'); DROP TABLE accounts; --"
>>> account = await open_account(conn, evil, 0)
>>> (await get_account(conn, account)).owner == evil
True

.. important::

   Never build SQL with f-strings, ``%`` or ``str.format`` from values you did
   not write yourself.  Parameters only take *values*; table and column names
   cannot be parameters (``SELECT * FROM $1`` is a syntax error), so pick them
   from a fixed set in your code.  Passing a value of the wrong type fails on
   the client with ``asyncpg.exceptions.DataError: invalid input for query
   argument $1``; asyncpg does not convert ``"5"`` to ``5`` for you.

Choosing ``fetch``, ``fetchrow``, ``fetchval`` or ``execute``
-------------------------------------------------------------

.. index::
   single: asyncpg; fetch, fetchrow, fetchval, execute
   single: asyncpg; Record

=============  =============================================  ==================================
method         returns                                        use it for
=============  =============================================  ==================================
``fetch``      a list of ``Record`` objects (maybe empty)     queries that return rows
``fetchrow``   the first ``Record``, or ``None``              a lookup by key
``fetchval``   one value of the first row, or ``None``        ``count(*)``, ``RETURNING id``
``execute``    the status string, e.g. ``'UPDATE 1'``         DDL, writes whose rows you ignore
=============  =============================================  ==================================

A ``Record`` works like a tuple and like a read-only mapping: ``row[0]`` and
``row["owner"]`` are both fine.  :func:`list_accounts`, :func:`get_account`,
:func:`open_account` and :func:`transfer` use one method each.

Keeping changes all-or-nothing with transactions
------------------------------------------------

.. index::
   pair: transactions; asyncpg
   single: rollback; on exception or cancellation

Outside a transaction every statement commits on its own, so an exception
between two related writes leaves the first one in the database.  ``async with
conn.transaction():`` commits when the block ends normally and rolls back when
anything escapes from it, an exception or a cancellation alike:

>>> bob = (await list_accounts(conn, owner="bob"))[0].id
>>> async with conn.transaction():
...     await conn.execute("UPDATE accounts SET balance = 0 WHERE id = $1",
...                        bob)
...     raise RuntimeError("crash between two writes")
Traceback (most recent call last):
...
RuntimeError: crash between two writes
>>> (await get_account(conn, bob)).balance
100
>>> await conn.close()

:func:`transfer` uses this to move money between two accounts.

Sharing connections between tasks with a pool
---------------------------------------------

.. index::
   pair: connection pool; asyncpg
   single: error messages; cannot perform operation: another operation is in progress

One connection runs one query at a time.  Tasks that share a connection
collide as soon as one of them starts a query while another is still waiting
for its answer.  The second one then fails at once:

.. code-block:: text

   InterfaceError: cannot perform operation: another operation is in progress

A pool hands each task a connection of its own, opening up to ``max_size`` of
them and making the other tasks wait.  :func:`open_pool` opens one and closes
it within a time limit; :func:`fetch_from_pool` borrows a connection with a
limit on the wait.

.. important::

   ``pool.fetch(...)`` and friends take a ``timeout=`` for the query, but wait
   for a free connection *without a limit*.  When every connection is stuck,
   callers hang instead of failing.  Use ``pool.acquire(timeout=...)`` (as
   :func:`fetch_from_pool` does) so an exhausted pool raises
   :exc:`asyncio.TimeoutError`.  A connection from ``acquire`` must never be
   used after its ``async with`` block: by then it belongs to another task.

Loading many rows
-----------------

.. index::
   single: COPY; copy_records_to_table
   single: executemany
   single: bulk insert

One ``INSERT`` per row pays a network round trip per row.  ``executemany``
sends one prepared statement and all the argument rows in a pipeline, and it is
all-or-nothing: asyncpg wraps it in a transaction.  ``copy_records_to_table``
uses PostgreSQL's ``COPY`` protocol, which streams the rows in the binary
format and skips the per-statement work altogether.  :func:`load_accounts`
offers both.  ``benchmarks/bench_postgres.py`` loads 100,000 rows each way in
one run.  On a small two-core test machine, executemany was about 20 times
faster than one ``INSERT`` per row (even inside a single transaction), and
COPY about 4 times faster again: some 80 times faster than the loop.  Run the
script to see the figures for your own machine and network; the farther away
the server, the more the round trips cost and the larger the gap.

Waiting for notifications with LISTEN/NOTIFY
--------------------------------------------

.. index::
   single: LISTEN/NOTIFY
   single: pg_notify

``NOTIFY channel, 'payload'`` (or ``SELECT pg_notify($1, $2)``, which takes
parameters) wakes every connection that has run ``LISTEN channel``.  It is a
doorbell, not a queue: a notification sent while nobody listens is gone, and
one sent inside a transaction is delivered only when the transaction commits.
:func:`listen` subscribes a connection and collects the payloads in an
:class:`asyncio.Queue`, which you read with a timeout.

.. important::

   PostgreSQL delivers notifications to a connection only between its
   transactions, and a connection returned to a pool is reset, which ends its
   ``LISTEN``.  Give the listener a connection of its own that stays idle, and
   never rely on a notification alone: the :doc:`/recipes/job_queue` chapter
   pairs it with a polling fallback
   (:ref:`recipes/job_queue:Waking idle workers with LISTEN/NOTIFY`).

Timeouts on every call
----------------------

.. index::
   pair: timeouts; asyncpg
   single: command_timeout
   single: asyncio.wait_for; lost cancellation (gh-86296)

``asyncpg.connect(timeout=...)`` limits connecting, ``command_timeout=...`` sets
the default limit for every query on the connection, and each method takes
its own ``timeout=``.  When a query times out, asyncpg asks the server to
cancel it and raises :exc:`asyncio.TimeoutError`.  The connection stays usable:

>>> async with open_connection(dsn, command_timeout=5) as conn:
...     try:
...         await conn.execute("SELECT pg_sleep(10)", timeout=0.2)
...     except asyncio.TimeoutError:
...         print("cancelled on the server")
...     print(await conn.fetchval("SELECT 'still usable'"))
cancelled on the server
still usable

Calls that take no ``timeout=`` – ``pool.close()``, ``add_listener()``, reading
a queue of notifications – need one around them: ``async with
asyncio.timeout(...)`` on 3.11+.  :func:`asyncio.wait_for` works on every
version, but on 3.8–3.11 a task that is cancelled in the loop step in which the
call finishes gets the result, and the cancellation is lost (CPython gh-86296):
the task carries on as if nobody had cancelled it.  The
:doc:`/recipes/timeouts` chapter shows the timeout tools of every version.  :func:`open_pool` and
:func:`listen` use a private ``_wait_for`` that never drops one (a timeout
scope on 3.11+, a helper task before); copy it for code that must stop when
cancelled.

.. versionchanged:: 3.11
   :exc:`asyncio.TimeoutError` became an alias of the built-in
   :exc:`TimeoutError`.  ``except asyncio.TimeoutError`` works on every
   version; ``except TimeoutError`` alone misses asyncpg's timeouts on 3.8–3.10.

.. note::

   asyncpg 0.30 is the last release for Python 3.8.  Everything here works
   with it and with 0.32.  PostgreSQL 10 or newer is needed (identity
   columns); the examples are tested against PostgreSQL 15 and 18.

A short session
---------------

>>> from recipes.postgres import transfer
>>> async with open_connection(dsn) as conn:
...     await create_accounts_table(conn, temporary=True)
...     alice = await open_account(conn, "alice", 100)
...     bob = await open_account(conn, "bob")
...     await transfer(conn, alice, bob, 25)
...     for account in await list_accounts(conn):
...         print(account)
Account(id=1, owner='alice', balance=75)
Account(id=2, owner='bob', balance=25)

A library does this
-------------------

.. index::
   single: psycopg
   pair: PostgreSQL driver; libraries

`psycopg 3 <https://www.psycopg.org/psycopg3/docs/>`__ is the other asyncio
driver for PostgreSQL, with its own spelling for what this chapter does:
``await psycopg.AsyncConnection.connect(dsn)``, cursors with ``execute()``
and ``fetchone()`` or ``fetchall()``, ``async with conn.transaction()``,
``cursor.copy()`` for COPY, ``conn.notifies()`` (an async generator) for
LISTEN, and a pool in the separate ``psycopg_pool`` package.  Placeholders
are ``%s`` or ``%(name)s`` rather than ``$1``, rows are tuples unless you
pick a row factory, and the same package has a synchronous API of the same
shape.  A task cancelled during a query makes it ask the server to cancel the
query, so the connection stays usable.  Choose it when sync and async code
share one driver, or your project already uses psycopg (Django supports
it); the recipes are written for asyncpg.  SQLAlchemy's asyncio extension
runs on top of a driver such as asyncpg or psycopg: it adds a query builder
and an ORM, not a different way to do these chores.

See also
--------

* :doc:`/recipes/job_queue`: a durable work queue built on these pieces
  (``FOR UPDATE SKIP LOCKED``, leases, LISTEN/NOTIFY with a polling
  fallback).
* :doc:`/recipes/api_server`: a JSON API whose store is PostgreSQL.
* :doc:`/recipes/timeouts` and :doc:`/recipes/cancellation`: deadlines, and
  code that must finish its cleanup when cancelled.
* :doc:`/recipes/context_managers`: writing ``async with`` helpers such as
  :func:`open_connection`.
* asyncpg: the `usage guide
  <https://magicstack.github.io/asyncpg/current/usage.html>`_ (type
  conversion, transactions, pools), the `API reference
  <https://magicstack.github.io/asyncpg/current/api/index.html>`_ and the
  `FAQ <https://magicstack.github.io/asyncpg/current/faq.html>`_.
* PostgreSQL: `NOTIFY <https://www.postgresql.org/docs/current/sql-notify.html>`_
  and `COPY <https://www.postgresql.org/docs/current/sql-copy.html>`_.
* Python: :doc:`python:library/asyncio-task` (``asyncio.timeout``,
  ``wait_for``, cancellation).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import (
    Any,
    AsyncIterator,
    Awaitable,
    Iterable,
    List,
    Literal,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
    Union,
)

import asyncpg
import asyncpg.pool

__all__ = [
    "Account",
    "InsufficientFunds",
    "create_accounts_table",
    "fetch_from_pool",
    "get_account",
    "list_accounts",
    "listen",
    "load_accounts",
    "notify",
    "open_account",
    "open_connection",
    "open_pool",
    "transfer",
]

T = TypeVar("T")

# A connection of your own, or one borrowed from a pool: both run queries alike.
_Connection = Union[asyncpg.Connection, asyncpg.pool.PoolConnectionProxy]


@contextlib.asynccontextmanager
async def open_connection(
    dsn: str,
    *,
    timeout: float = 10.0,
    command_timeout: float = 30.0,
    close_timeout: float = 10.0,
) -> AsyncIterator[asyncpg.Connection]:
    """Connect to PostgreSQL for the duration of an ``async with`` block.

    >>> from recipes.postgres import open_connection
    >>> async with open_connection(dsn) as conn:
    ...     print(await conn.fetchval("SELECT $1::int * 2", 21))
    42

    ``timeout`` limits connecting, ``command_timeout`` is the default limit of
    every query, and ``close_timeout`` limits the polite goodbye on the way out.
    If closing times out, or the block is cancelled while closing, the socket is
    dropped at once (``terminate()``), so the connection never outlives the
    block.  A server that cannot be reached fails the ``async with`` itself:

    >>> async with open_connection("postgresql://nobody@127.0.0.1:1/x") as conn:
    ...     pass
    Traceback (most recent call last):
    ...
    ConnectionRefusedError: [Errno 111] Connect call failed ('127.0.0.1', 1)
    """
    conn = await asyncpg.connect(dsn, timeout=timeout, command_timeout=command_timeout)
    try:
        yield conn
    finally:
        try:
            await conn.close(timeout=close_timeout)
        except Exception:
            conn.terminate()  # closing failed or timed out: drop the socket
        except BaseException:
            conn.terminate()  # cancelled while closing: drop it, keep cancelling
            raise


async def create_accounts_table(
    conn: _Connection, *, temporary: bool = False, timeout: float = 10.0
) -> None:
    """Create the ``accounts`` table (a no-op if it exists).

    >>> import asyncpg
    >>> from recipes.postgres import create_accounts_table
    >>> conn = await asyncpg.connect(dsn, timeout=10)
    >>> await create_accounts_table(conn, temporary=True)
    >>> await conn.fetch("SELECT * FROM accounts")
    []

    The constraints make the database refuse what the code must never do, even
    a buggy caller that skips this module's checks:

    >>> overdrawn = "INSERT INTO accounts (owner, balance) VALUES ('eve', -5)"
    >>> try:
    ...     await conn.execute(overdrawn)
    ... except asyncpg.CheckViolationError as exc:
    ...     print(type(exc).__name__, exc.constraint_name)
    CheckViolationError accounts_balance_check
    >>> await conn.close()
    """
    scope = "TEMPORARY " if temporary else ""
    await conn.execute(
        f"""
        CREATE {scope}TABLE IF NOT EXISTS accounts (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            owner text NOT NULL CHECK (owner <> ''),
            balance bigint NOT NULL DEFAULT 0 CHECK (balance >= 0),
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """,
        timeout=timeout,
    )


class Account(NamedTuple):
    """One row of ``accounts``."""

    #: The row's identity, assigned by PostgreSQL.
    id: int
    #: Who owns the account: a non-empty string.
    owner: str
    #: The balance, a whole number that the table keeps at zero or above.
    balance: int


def _check_owner(owner: object) -> str:
    if not isinstance(owner, str):
        raise TypeError(f"owner must be a str, not {type(owner).__name__}")
    if not owner:
        raise ValueError("owner must not be empty")
    return owner


def _check_amount(name: str, value: object, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


async def open_account(
    conn: _Connection, owner: str, balance: int = 0, *, timeout: float = 10.0
) -> int:
    """Insert an account and return its new id (``fetchval`` of ``RETURNING id``).

    >>> import asyncpg
    >>> from recipes.postgres import create_accounts_table, open_account
    >>> conn = await asyncpg.connect(dsn, timeout=10)
    >>> await create_accounts_table(conn, temporary=True)
    >>> await open_account(conn, "alice", 100)
    1

    The owner travels as a parameter, so any text is stored exactly as given.
    Bad input fails before anything is sent:

    >>> await open_account(conn, "bob", -1)
    Traceback (most recent call last):
    ...
    ValueError: balance must be >= 0, got -1
    >>> await open_account(conn, "bob", "100")
    Traceback (most recent call last):
    ...
    TypeError: balance must be an int, not str
    >>> await conn.close()
    """
    _check_owner(owner)
    _check_amount("balance", balance, minimum=0)
    account_id = await conn.fetchval(
        "INSERT INTO accounts (owner, balance) VALUES ($1, $2) RETURNING id",
        owner,
        balance,
        timeout=timeout,
    )
    return int(account_id)


async def get_account(
    conn: _Connection, account_id: int, *, timeout: float = 10.0
) -> Optional[Account]:
    """Return one account by id (``fetchrow``), or ``None`` if there is none.

    >>> import asyncpg
    >>> from recipes.postgres import (
    ...     create_accounts_table, get_account, open_account,
    ... )
    >>> conn = await asyncpg.connect(dsn, timeout=10)
    >>> await create_accounts_table(conn, temporary=True)
    >>> alice = await open_account(conn, "alice", 100)
    >>> await get_account(conn, alice)
    Account(id=1, owner='alice', balance=100)
    >>> print(await get_account(conn, 999))
    None
    >>> await conn.close()
    """
    _check_amount("account_id", account_id, minimum=1)
    row = await conn.fetchrow(
        "SELECT id, owner, balance FROM accounts WHERE id = $1", account_id, timeout=timeout
    )
    return None if row is None else Account(row["id"], row["owner"], row["balance"])


async def list_accounts(
    conn: _Connection, *, owner: Optional[str] = None, timeout: float = 10.0
) -> List[Account]:
    """Return all accounts, or those of one ``owner``, oldest first (``fetch``).

    >>> import asyncpg
    >>> from recipes.postgres import (
    ...     create_accounts_table, list_accounts, open_account,
    ... )
    >>> conn = await asyncpg.connect(dsn, timeout=10)
    >>> await create_accounts_table(conn, temporary=True)
    >>> for owner in ("alice", "bob", "alice"):
    ...     _ = await open_account(conn, owner)
    >>> [account.id for account in await list_accounts(conn, owner="alice")]
    [1, 3]
    >>> await list_accounts(conn, owner="nobody' OR ''='")
    []
    >>> await conn.close()

    ``$1::text IS NULL OR owner = $1`` makes the filter optional without
    building different SQL strings; the ``::text`` tells the server the type
    of a parameter that may be ``NULL``.
    """
    if owner is not None:
        _check_owner(owner)
    rows = await conn.fetch(
        "SELECT id, owner, balance FROM accounts WHERE $1::text IS NULL OR owner = $1 ORDER BY id",
        owner,
        timeout=timeout,
    )
    return [Account(row["id"], row["owner"], row["balance"]) for row in rows]


class InsufficientFunds(ValueError):
    """The paying account's balance is lower than the amount."""


async def transfer(
    conn: _Connection, source: int, target: int, amount: int, *, timeout: float = 10.0
) -> None:
    """Move ``amount`` from account ``source`` to ``target``: both writes or neither.

    >>> import asyncpg
    >>> from recipes.postgres import (
    ...     create_accounts_table, list_accounts, open_account, transfer,
    ... )
    >>> conn = await asyncpg.connect(dsn, timeout=10)
    >>> await create_accounts_table(conn, temporary=True)
    >>> alice = await open_account(conn, "alice", 100)
    >>> bob = await open_account(conn, "bob")
    >>> await transfer(conn, alice, bob, 30)
    >>> [account.balance for account in await list_accounts(conn)]
    [70, 30]

    The credit is written first; when the debit then breaks the table's
    ``CHECK (balance >= 0)``, the transaction rolls the credit back, so no
    money is created out of nothing:

    >>> await transfer(conn, bob, alice, 50)
    Traceback (most recent call last):
    ...
    recipes.postgres.InsufficientFunds: account 2 cannot pay 50
    >>> [account.balance for account in await list_accounts(conn)]
    [70, 30]

    Unknown accounts raise :exc:`LookupError`, and nonsense amounts
    :exc:`ValueError`, before anything is written:

    >>> await transfer(conn, alice, 99, 10)
    Traceback (most recent call last):
    ...
    LookupError: no account with id 99
    >>> await transfer(conn, alice, alice, 10)
    Traceback (most recent call last):
    ...
    ValueError: source and target are the same account (1)
    >>> await conn.close()

    Both rows are locked in id order first (``SELECT ... FOR UPDATE``), so two
    opposite transfers running at the same time wait for each other instead of
    deadlocking.  Inside a transaction of the caller's, ``conn.transaction()``
    becomes a savepoint: a failed transfer then undoes only its own writes.
    """
    _check_amount("source", source, minimum=1)
    _check_amount("target", target, minimum=1)
    _check_amount("amount", amount, minimum=1)
    if source == target:
        raise ValueError(f"source and target are the same account ({source})")
    try:
        async with conn.transaction():
            locked = await conn.fetch(
                "SELECT id FROM accounts WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE",
                [source, target],
                timeout=timeout,
            )
            missing = {source, target} - {row["id"] for row in locked}
            if missing:
                raise LookupError(f"no account with id {min(missing)}")
            await conn.execute(
                "UPDATE accounts SET balance = balance + $2 WHERE id = $1",
                target,
                amount,
                timeout=timeout,
            )
            await conn.execute(
                "UPDATE accounts SET balance = balance - $2 WHERE id = $1",
                source,
                amount,
                timeout=timeout,
            )
    except asyncpg.CheckViolationError:
        raise InsufficientFunds(f"account {source} cannot pay {amount}") from None


async def load_accounts(
    conn: _Connection,
    rows: Iterable[Tuple[str, int]],
    *,
    method: Literal["copy", "executemany"] = "copy",
    timeout: float = 60.0,
) -> int:
    """Insert many ``(owner, balance)`` rows at once; return how many were loaded.

    >>> import asyncpg
    >>> from recipes.postgres import create_accounts_table, load_accounts
    >>> conn = await asyncpg.connect(dsn, timeout=10)
    >>> await create_accounts_table(conn, temporary=True)
    >>> await load_accounts(conn, [(f"owner {n}", n) for n in range(1000)])
    1000
    >>> await load_accounts(conn, [("zoe", 5)], method="executemany")
    1
    >>> await conn.fetchval("SELECT count(*) FROM accounts")
    1001

    ``method="copy"`` (the default) uses ``copy_records_to_table``, the fastest
    way in; ``"executemany"`` runs one prepared ``INSERT`` per row in a
    pipeline.  Both load everything or nothing.  Rows are checked in Python
    first, so a bad one is reported with its position before anything is sent:

    >>> await load_accounts(conn, [("ann", 1), ("bea", -2)])
    Traceback (most recent call last):
    ...
    ValueError: row 1: balance must be >= 0, got -2
    >>> await conn.fetchval("SELECT count(*) FROM accounts")
    1001
    >>> await conn.close()
    """
    if method not in ("copy", "executemany"):
        raise ValueError(f"method must be 'copy' or 'executemany', not {method!r}")
    records: List[Tuple[str, int]] = []
    for number, row in enumerate(rows):
        try:
            if isinstance(row, (str, bytes)) or not isinstance(row, Sequence) or len(row) != 2:
                raise TypeError(f"expected an (owner, balance) pair, got {row!r}")
            owner, balance = row
            records.append((_check_owner(owner), _check_amount("balance", balance, minimum=0)))
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"row {number}: {exc}") from None
    if method == "copy":
        await conn.copy_records_to_table(
            "accounts", records=records, columns=["owner", "balance"], timeout=timeout
        )
    else:
        await conn.executemany(
            "INSERT INTO accounts (owner, balance) VALUES ($1, $2)", records, timeout=timeout
        )
    return len(records)


@contextlib.asynccontextmanager
async def open_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    timeout: float = 10.0,
    command_timeout: float = 30.0,
    close_timeout: float = 10.0,
) -> AsyncIterator[asyncpg.Pool]:
    """Open a pool of up to ``max_size`` connections for an ``async with`` block.

    Tasks that share one connection collide; tasks that borrow from a pool
    don't:

    >>> import asyncio
    >>> import asyncpg
    >>> from recipes.postgres import fetch_from_pool, open_pool
    >>> conn = await asyncpg.connect(dsn, timeout=10)
    >>> slow, fast = await asyncio.gather(
    ...     conn.fetchval("SELECT 'slow' FROM pg_sleep(0.1)"),
    ...     conn.fetchval("SELECT 'fast'"),
    ...     return_exceptions=True,
    ... )
    >>> slow
    'slow'
    >>> fast
    InterfaceError('cannot perform operation: another operation is in progress')
    >>> await conn.close()
    >>> async with open_pool(dsn, max_size=2) as pool:
    ...     await asyncio.gather(
    ...         fetch_from_pool(pool, "SELECT 'slow' FROM pg_sleep(0.1)"),
    ...         fetch_from_pool(pool, "SELECT 'fast'"),
    ...     )
    [[<Record ?column?='slow'>], [<Record ?column?='fast'>]]

    Leaving the block closes the pool.  ``Pool.close()`` waits for every
    borrowed connection to come back, so a task that never returns one would
    hang it forever; after ``close_timeout`` seconds the pool is terminated
    instead (connections dropped).  A cancellation during the close terminates
    the pool too, and is passed on – also one that arrives just as the close
    completes.  Size the pool below the server's
    ``max_connections`` divided by the number of processes that share it.
    """
    if not 0 <= min_size <= max_size or max_size < 1:
        raise ValueError(
            f"need 0 <= min_size <= max_size and max_size >= 1, got {min_size}, {max_size}"
        )
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        timeout=timeout,
        command_timeout=command_timeout,
    )
    try:
        yield pool
    finally:
        try:
            await _wait_for(pool.close(), close_timeout)
        except asyncio.TimeoutError:
            pool.terminate()
        except BaseException:
            pool.terminate()
            raise


async def fetch_from_pool(
    pool: asyncpg.Pool,
    query: str,
    *args: object,
    acquire_timeout: float = 5.0,
    timeout: float = 30.0,
) -> List[asyncpg.Record]:
    """Run ``query`` on a borrowed connection, waiting at most ``acquire_timeout`` for one.

    >>> import asyncio
    >>> from recipes.postgres import fetch_from_pool, open_pool
    >>> async with open_pool(dsn, max_size=1) as pool:
    ...     rows = await fetch_from_pool(pool, "SELECT $1::int AS n", 7)
    ...     print(rows[0]["n"])
    7

    When every connection is busy for longer than ``acquire_timeout``, the
    caller gets :exc:`asyncio.TimeoutError` instead of waiting forever:

    >>> async with open_pool(dsn, max_size=1) as pool:
    ...     sleeper = fetch_from_pool(pool, "SELECT pg_sleep(0.5)")
    ...     busy = asyncio.create_task(sleeper)
    ...     await asyncio.sleep(0.1)
    ...     try:
    ...         await fetch_from_pool(pool, "SELECT 1", acquire_timeout=0.2)
    ...     except asyncio.TimeoutError:
    ...         print("pool exhausted")
    ...     _ = await busy
    pool exhausted

    ``timeout`` limits the query itself, once a connection is in hand.
    """
    async with pool.acquire(timeout=acquire_timeout) as conn:
        rows: List[asyncpg.Record] = await conn.fetch(query, *args, timeout=timeout)
    return rows


async def notify(conn: _Connection, channel: str, payload: str, *, timeout: float = 10.0) -> None:
    """Send ``payload`` to every connection listening on ``channel``.

    >>> import asyncpg
    >>> from recipes.postgres import notify
    >>> conn = await asyncpg.connect(dsn, timeout=10)
    >>> await notify(conn, "accounts", "account 7 changed")

    ``pg_notify`` takes parameters, where the ``NOTIFY`` statement takes only
    literals.  Payloads are limited to 8000 bytes by default; an empty one is
    refused here because it would carry no information:

    >>> await notify(conn, "accounts", "")
    Traceback (most recent call last):
    ...
    ValueError: payload must be a non-empty str
    >>> await conn.close()
    """
    if not isinstance(channel, str) or not channel:
        raise ValueError("channel must be a non-empty str")
    if not isinstance(payload, str) or not payload:
        raise ValueError("payload must be a non-empty str")
    await conn.execute("SELECT pg_notify($1, $2)", channel, payload, timeout=timeout)


@contextlib.asynccontextmanager
async def listen(
    conn: asyncpg.Connection, channel: str, *, timeout: float = 10.0
) -> AsyncIterator[asyncio.Queue[str]]:
    """Subscribe ``conn`` to ``channel``; yield a queue that receives the payloads.

    >>> import asyncio
    >>> import asyncpg
    >>> from recipes.postgres import listen, notify
    >>> listener = await asyncpg.connect(dsn, timeout=10)
    >>> sender = await asyncpg.connect(dsn, timeout=10)
    >>> async with listen(listener, "accounts") as inbox:
    ...     await notify(sender, "accounts", "account 7 changed")
    ...     print(await asyncio.wait_for(inbox.get(), timeout=5))
    account 7 changed

    Subscribing *before* the event you wait for matters: nothing sent earlier
    is delivered.  Read the queue with a timeout, because a notification can
    be lost (the listener reconnected, the sender's transaction rolled back);
    in a task that can be cancelled, mind what *Timeouts on every call* says
    about :func:`asyncio.wait_for` on 3.8–3.11:

    >>> async with listen(listener, "accounts") as inbox:
    ...     try:
    ...         await asyncio.wait_for(inbox.get(), timeout=0.2)
    ...     except asyncio.TimeoutError:
    ...         print("nothing within 0.2 s")
    nothing within 0.2 s
    >>> await listener.close()
    >>> await sender.close()

    Leaving the block unsubscribes (``UNLISTEN``) even when it is cancelled,
    and a cancellation that arrives just as ``LISTEN`` or ``UNLISTEN``
    completes is passed on, never lost.  The queue is unbounded; read it
    steadily.
    """
    if not isinstance(channel, str) or not channel:
        raise ValueError("channel must be a non-empty str")
    inbox: asyncio.Queue[str] = asyncio.Queue()

    def on_notification(connection: object, pid: int, name: str, payload: object) -> None:
        inbox.put_nowait(str(payload))

    try:
        # Inside the try: a cancellation that arrives as LISTEN completes must
        # not leave the listener behind.  remove_listener() skips one never added.
        await _wait_for(conn.add_listener(channel, on_notification), timeout)
        yield inbox
    finally:
        if not conn.is_closed():
            await _wait_for(conn.remove_listener(channel, on_notification), timeout)


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
        await _cancel_and_wait(task)
        raise
    if not done:
        await _cancel_and_wait(task)
        if task.cancelled():
            raise asyncio.TimeoutError
    return task.result()


async def _cancel_and_wait(task: asyncio.Future[Any]) -> None:
    """Cancel ``task`` and wait for its cleanup, also if the caller is cancelled meanwhile."""
    task.cancel()
    cancelled = False
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
