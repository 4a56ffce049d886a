"""A work queue shared by workers in several processes, or on several machines,
needs somewhere durable to keep the jobs, a way to hand each job to one worker
at a time, and a plan for the worker that dies halfway through one.  If you
already run PostgreSQL, a single table does all three: ``SELECT ... FOR UPDATE
SKIP LOCKED`` lets many workers pick different rows at once, a *lease* (a
deadline on each running job) hands the job of a crashed worker to another
one, and ``LISTEN/NOTIFY`` wakes idle workers as soon as there is work.  This
chapter builds that queue: :func:`install` creates the table, :func:`enqueue`
and :func:`enqueue_many` add jobs, and :class:`Worker` runs them, several at
once if you like, with retries, lease renewal and a graceful stop.  The
:doc:`/recipes/postgres` chapter covers the asyncpg basics it builds on; for
work that lives and dies with one process, an :class:`asyncio.Queue`
(:doc:`/recipes/queues`) is all you need.

.. index::
   single: job queue; on PostgreSQL
   pair: work queue; durable

The examples need a running server, whose address they take from ``dsn``.
``base_url`` is the address of the demo HTTP server (``dsn`` of a PostgreSQL
server): in your own session start them with ``python -m tests.demo_servers``
from a checkout and paste the two lines it prints.  This chapter needs only
``dsn``.  The examples create a table called ``jobs`` and drop it again, so
run them against the throwaway server or a scratch database.  (When the
examples run as tests, ``dsn`` is set for them.)

The jobs table
--------------

.. index::
   single: job queue; jobs table

One row per job.  :func:`install` creates it (and is safe to run from every
worker at start-up):

==================== =================================================================
column               meaning
==================== =================================================================
``id``               identity, also the order jobs are taken in
``queue``            lets one table serve several kinds of work
``payload``          the job's arguments, ``jsonb``
``status``           ``queued`` → ``running`` → ``done`` or ``failed``
``attempts``         how many times a worker took the job; also the lease's *fence*
``max_attempts``     after this many attempts a failing job becomes ``failed``
``run_after``        not before this time: delayed jobs and retry back-off
``locked_by``        the worker that took the job last
``lease_expires_at`` a running job whose lease has passed is up for grabs again
``result``           what the handler returned, ``jsonb``
``last_error``       why the last attempt failed
==================== =================================================================

Adding jobs
-----------

.. index::
   pair: enqueue; transaction

:func:`enqueue` inserts a row and sends a notification in the same statement.
Called inside a transaction of yours, the job appears (and the workers wake)
only if that transaction commits: "create the order *and* queue its e-mail"
can never half happen.  That guarantee is the main reason to keep the queue in
the database you already have rather than in a separate broker.

.. index::
   single: job queue; adding jobs in bulk
   pair: unnest; bulk insert

To add many jobs, :func:`enqueue_many` sends them all in one statement: the
payloads travel as one array parameter, an ``INSERT ... SELECT FROM unnest``
turns it into rows, and a single notification wakes the workers.  That is one
round trip and one commit however many jobs there are, instead of one each,
so thousands of jobs take milliseconds rather than seconds.  It checks every
payload before it sends anything, returns the ids in the order of the
payloads, and, like :func:`enqueue`, commits or rolls back with the
transaction it runs in.

Taking a job with FOR UPDATE SKIP LOCKED
----------------------------------------

.. index::
   single: FOR UPDATE SKIP LOCKED
   pair: row lock; SKIP LOCKED
   single: lease

:func:`claim` picks the oldest ready job and marks it ``running`` in one
statement, one round trip.  This is that statement for the table ``jobs``
(the one in :func:`claim` also starts with a step that marks as ``failed`` a
job whose worker vanished during its last attempt; see below):

.. code-block:: postgresql

   WITH queued AS (
       SELECT id FROM jobs
       WHERE queue = $1 AND status = 'queued' AND run_after <= now()
       ORDER BY id + 0
       LIMIT 1
       FOR UPDATE SKIP LOCKED
   ), expired AS (
       SELECT id FROM jobs
       WHERE queue = $1 AND status = 'running' AND lease_expires_at <= now()
         AND attempts < max_attempts
       ORDER BY lease_expires_at
       LIMIT 1
       FOR UPDATE SKIP LOCKED
   ), next AS (
       SELECT id FROM queued UNION ALL SELECT id FROM expired
       ORDER BY id
       LIMIT 1
   )
   UPDATE jobs AS job
   SET status = 'running', attempts = job.attempts + 1, locked_by = $2,
       lease_expires_at = now() + make_interval(secs => $3),
       updated_at = now()
   FROM next
   WHERE job.id = next.id
   RETURNING job.id, job.queue, job.payload::text AS payload,
       job.attempts, job.max_attempts

The subqueries ``queued`` and ``expired`` find the oldest queued job that is
ready and the job whose lease expired first, ``next`` keeps the older of the
two, and ``FOR UPDATE`` locks
the rows they read; ``SKIP LOCKED`` makes a competing worker pass over rows
that another claim has locked instead of waiting for them.  (Two subqueries
rather than one with ``OR``: each can then read its rows in the order of an
index, ``(queue, (id + 0)) WHERE status = 'queued'`` and
``(queue, lease_expires_at) WHERE status = 'running'``, where a single one
would walk the primary key past every finished job, making each claim
slower as the table fills.  ``id + 0`` orders like ``id``, but only that
partial index provides it: ordered by plain ``id``, the planner may choose
the primary key, when its statistics were gathered while most jobs were
queued, and then each claim reads every finished job again.  With 4,000
finished jobs that took 2 ms per claim instead of 0.02 ms.)  The ``UPDATE`` then marks the
row ``running``, counts the attempt and sets the lease, and ``RETURNING``
hands the job to the worker, all in one round trip.  So workers claiming at
once get different jobs and none of them blocks.  Without ``SKIP LOCKED``
they would queue up behind the first lock and then find that row taken:
``claim`` would return ``None`` although other jobs are ready.  Three claims
at the same moment, each on a connection of its own:

>>> import asyncio
>>> import asyncpg
>>> from recipes.job_queue import claim, enqueue, install, uninstall
>>> pool = await asyncpg.create_pool(dsn, min_size=3, max_size=3)
>>> await install(pool)
>>> for n in range(3):
...     _ = await enqueue(pool, {"n": n})
>>> jobs = await asyncio.gather(
...     *(claim(pool, worker_id=f"w{i}") for i in range(3))
... )
>>> sorted(job.id for job in jobs)
[1, 2, 3]
>>> print(await claim(pool, worker_id="w4"))
None
>>> await uninstall(pool)
>>> await pool.close()

The row lock lasts only for the claiming statement; from then on the
*lease* keeps other workers away: ``lease_expires_at`` is set ``lease``
seconds ahead, and the worker renews it (:func:`extend_lease`) while the
handler runs.

Surviving a crashed worker
--------------------------

.. index::
   single: lease; expired
   single: fencing token
   single: at-least-once delivery
   single: idempotent handler

A worker that is killed, loses its network or freezes stops renewing its
lease.  Once ``lease_expires_at`` has passed, :func:`claim` treats the job as
ready again and another worker takes it, ``attempts`` going up by one.  The
old worker may still be alive (a long pause, a network split); its later
:func:`complete` or :func:`fail` carries the attempt number it was given and
changes nothing, because the row's ``attempts`` has moved on.  That check is
the fence that keeps two workers from both finishing one job.

.. important::

   The queue runs every job *at least* once, not exactly once: a worker that
   dies after the handler's side effect but before :func:`complete` leaves the
   job to be run again.  Make handlers idempotent, for example with a unique
   key and ``INSERT ... ON CONFLICT DO NOTHING`` for the writes they make.
   Pick ``lease`` well above the longest pause you expect (a garbage-collector
   stall, a slow network), since renewals happen every ``lease / 3`` seconds.

Retries and permanent failure
-----------------------------

.. index::
   pair: exponential backoff; job queue

When the handler raises, :func:`fail` records the error and puts the job back
with ``run_after`` pushed into the future (``retry_delay`` seconds, doubling on
each attempt, capped by ``max_retry_delay``), or marks it ``failed`` once it
has used ``max_attempts`` attempts.  The doubling stops at the cap, so
``max_attempts`` may be anything up to 2,147,483,647 (``attempts`` is a
PostgreSQL ``integer``): a job whose handler fails every time ends ``failed``
after its last attempt, and no amount of failures breaks the arithmetic of the
worker.  A job whose worker crashed on its last attempt is marked ``failed`` by
the next :func:`claim` instead of being run once more.  Failed jobs stay in the
table with their ``last_error`` until you delete or re-queue them.  (The
retries live in the table, so they survive the worker; for a retry within
one call, see :func:`recipes.errors.retry`.)

Waking idle workers with LISTEN/NOTIFY
--------------------------------------

.. index::
   single: LISTEN/NOTIFY; waking workers
   single: polling fallback

An idle :class:`Worker` sleeps until a notification says a job was queued, a
delayed job or an expired lease comes due, or ``poll_interval`` seconds pass.
The last one is the safety net: a notification is lost if it is sent while
the listening connection is down (the worker opens a new one when it notices),
and a job inserted by hand sends none.  The
queue never stalls; at worst a job waits ``poll_interval`` seconds.  The
:doc:`/recipes/postgres` chapter shows LISTEN/NOTIFY on its own
(:ref:`recipes/postgres:Waiting for notifications with LISTEN/NOTIFY`).

Stopping workers gracefully
---------------------------

.. index::
   pair: graceful shutdown; SIGTERM
   single: hard stop; releasing a job

:meth:`Worker.stop` lets the jobs in progress finish and then makes
:meth:`Worker.run` return; call it from a signal handler so that a deploy's
``SIGTERM`` does not interrupt a job.  Cancelling the task that runs the worker
is the hard stop.  Each handler in progress is cancelled and, once it has
ended, its job is *released*: put back as ``queued``, without using up an
attempt, so another worker can start it at once.  A cancellation that lands while the worker is
claiming, even after the database has committed the claim, lets the claim
finish and releases the jobs it took; one that lands after a handler has
returned lets the worker record that result first.  Then the task ends
cancelled.  Each of these steps waits at most ``timeout`` seconds, and a second
cancellation does not cut them short.  A handler that ignores its cancellation
for longer than ``timeout`` is left running and its job is not released: the
job stays ``running`` until its lease, no longer renewed, runs out, and is then
retried like the job of a crashed worker.

To give the current job a deadline, combine the two.  Here the handler
would take a minute, the grace period is 0.2 seconds, and the job ends up
back in the queue:

>>> async def stop_worker(worker, task, grace):
...     worker.stop()  # finish the current job, then return
...     done, _ = await asyncio.wait({task}, timeout=grace)
...     if not done:
...         task.cancel()  # the hard stop: the job goes back to the queue
...         await asyncio.wait({task})
>>> from recipes.job_queue import Worker, get_job
>>> async def slow(job):
...     await asyncio.sleep(60)
>>> async with asyncpg.create_pool(dsn, min_size=1, max_size=2) as pool:
...     await install(pool)
...     job_id = await enqueue(pool, {"report": "yearly"})
...     worker = Worker(pool, slow)
...     task = asyncio.create_task(worker.run())
...     while (await get_job(pool, job_id)).status != "running":
...         await asyncio.sleep(0.01)
...     await stop_worker(worker, task, grace=0.2)
...     print(task.cancelled(), (await get_job(pool, job_id)).status)
...     await uninstall(pool)
True queued

``asyncio.wait`` rather than ``asyncio.wait_for(task, grace)``: on Python
3.8–3.11 the latter can return normally, and drop a cancellation of its caller,
when that cancellation arrives just as the task finishes (CPython gh-86296,
see :doc:`/recipes/timeouts`).  The worker avoids ``wait_for`` for the same
reason.

A worker is a program of its own, started by your process manager; save it
as a file and run it (``python worker.py``) rather than pasting it into
``python -m asyncio``, which already runs an event loop.  It could look like
this, with the address of the database in the environment variable
``DATABASE_URL``:

.. code-block:: python
   :caption: worker.py

   import asyncio
   import os
   import signal

   import asyncpg

   from recipes.job_queue import Worker, install


   async def send_email(job):
       print("sending", job.payload)  # your code: the payload has the arguments


   async def main():
       dsn = os.environ["DATABASE_URL"]
       async with asyncpg.create_pool(dsn, min_size=2, max_size=4) as pool:
           await install(pool)
           worker = Worker(pool, send_email, queue="email")
           loop = asyncio.get_running_loop()
           loop.add_signal_handler(signal.SIGTERM, worker.stop)  # Unix only
           await worker.run()


   asyncio.run(main())

:func:`recipes.cancellation.stop_on_signals` in the
:doc:`/recipes/cancellation` chapter does the signal handling for programs
that stop by cancelling their tasks instead.

Run as many such processes, on as many machines, as the work needs.

Running several jobs at once
----------------------------

.. index::
   single: job queue; concurrency
   single: group commit
   pair: connection pool; size

A :class:`Worker` runs one job at a time unless you pass ``concurrency``:
``Worker(pool, handler, concurrency=8)`` runs up to eight handlers at once,
each with its own lease, renewed and fenced exactly as for one.  Whenever
slots are free the worker claims up to that many jobs with a single claim
(``LIMIT`` the number of free slots), so a backlog is taken eight at a time.
A job's slot is free again as soon as its handler has returned, and its
result goes out with the claim that fills the slot: the claiming statement
starts with a step that marks those jobs ``done``, checking each row's
``attempts`` as :func:`complete` does, and the worker's answer says which of
them were still its own.  So a job costs one round trip and one commit, not
two, and under load the results of several jobs share one.  When the worker
stops claiming (:meth:`Worker.stop`, a hard stop, the end of a burst) each
job writes its own result instead, together with any that wait at the same
moment.

The worker keeps one connection of the pool for itself: it listens for
notifications there and makes all its own queries on it, claims, results and
lease renewals, one at a time (they are short, and each is bounded by
``timeout``).  A handler never uses that connection, so one that borrows
connections from the same pool, even the last one and for longer than the
lease, cannot hold up the renewals.  Hence the pool needs ``max_size >= 2``
whatever the concurrency, and beyond that one connection for each handler
that holds one at the same time: ``concurrency + 1`` if every handler uses
the database, since handlers that find the pool empty wait for one another
(but never for the renewals).  Several workers on one pool need one
connection each, plus what their handlers borrow.  One worker with
``concurrency=8`` does the work of eight workers with fewer connections and
fewer queries.  Here five handlers run at once, and never a sixth:

>>> from recipes.job_queue import Worker, enqueue_many, install, uninstall
>>> running = most = 0
>>> async def nap(job):
...     global running, most
...     running += 1
...     most = max(most, running)
...     await asyncio.sleep(0.1)
...     running -= 1
>>> async with asyncpg.create_pool(dsn, min_size=1, max_size=2) as pool:
...     await install(pool)
...     _ = await enqueue_many(pool, range(20))
...     print(await Worker(pool, nap, concurrency=5).run(burst=True))
...     await uninstall(pool)
20
>>> most
5

.. note::

   Everything here works on Python 3.8–3.15 with asyncpg 0.30 or newer, and
   needs PostgreSQL 10 or newer (identity columns; ``SKIP LOCKED`` appeared in
   9.5); the examples are tested against PostgreSQL 15 and 18.  Each job costs
   one short statement and one commit (the claim, which also records the
   result of the job before it), or less when the worker claims several at
   once, and a lease renewal every ``lease / 3`` seconds while it runs; at
   rates where that load matters, a dedicated message broker fits better.

A short session
---------------

>>> from recipes.job_queue import Worker, enqueue, get_job, install, uninstall
>>> async def square(job):
...     return job.payload["n"] ** 2
>>> async with asyncpg.create_pool(dsn, min_size=1, max_size=4) as pool:
...     await install(pool)
...     for n in range(1, 4):
...         _ = await enqueue(pool, {"n": n})
...     print(await Worker(pool, square).run(burst=True), "jobs done")
...     for job_id in (1, 2, 3):
...         print((await get_job(pool, job_id)).result)
...     await uninstall(pool)
3 jobs done
1
4
9

A library does this
-------------------

.. index::
   single: procrastinate
   single: pgqueuer
   pair: job queue; libraries

Two maintained libraries keep jobs in PostgreSQL the same way, claiming with
``FOR UPDATE SKIP LOCKED`` and waking workers with ``LISTEN/NOTIFY``:

* `procrastinate <https://procrastinate.readthedocs.io/>`__ turns decorated
  functions into tasks, run by a worker with a ``concurrency`` setting.  It
  adds what this chapter leaves out: periodic (cron) tasks, priorities, locks
  that keep two jobs with the same key from running at once, aborting a
  running job, a command line and Django integration; retries are set per
  task (``RetryStrategy``).  It connects through psycopg 3, not asyncpg, and
  installs its own schema.  It does not keep what a task returns, and a job
  whose worker died is not retried on its own: workers send heartbeats, and
  you find such jobs with ``get_stalled_jobs`` and retry them yourself, for
  example from a periodic task.
* `pgqueuer <https://janbjorge.github.io/pgqueuer/>`__ runs ``async``
  entrypoints over asyncpg or psycopg, with a concurrency limit per
  entrypoint, cron-style schedules, enqueueing a list of jobs in one call,
  and jobs whose worker stopped sending heartbeats picked again by another
  worker.  Retries with exponential backoff come from an executor you choose
  (``DatabaseRetryEntrypointExecutor``).  Payloads are ``bytes`` you
  serialize yourself, and a job's return value is not kept; you can wait for
  a job's final status instead.

Choose one of them for schedules, locks or a command line, or to have a
queue someone else maintains.  Copy the recipe for code you can read and
change, results kept in the jobs table, a lease fenced against a worker that
lost it, and the schema in your hands.  arq and saq are
asyncio job queues too, but they keep their jobs in Redis.

See also
--------

* :doc:`/recipes/postgres`: connections, pools, transactions, timeouts and
  LISTEN/NOTIFY with asyncpg.
* :doc:`/recipes/queues`: producer/consumer queues inside one process.
* :doc:`/recipes/cancellation`: graceful shutdown on ``SIGTERM`` and cleanup
  that survives a cancellation.
* :doc:`/recipes/timeouts`: why the worker waits with ``asyncio.wait`` rather
  than ``asyncio.wait_for``.
* PostgreSQL: `the locking clause (FOR UPDATE ... SKIP LOCKED)
  <https://www.postgresql.org/docs/current/sql-select.html#SQL-FOR-UPDATE-SHARE>`_,
  `NOTIFY <https://www.postgresql.org/docs/current/sql-notify.html>`_ and
  `advisory locks
  <https://www.postgresql.org/docs/current/explicit-locking.html#ADVISORY-LOCKS>`_.
* asyncpg: `connection pools
  <https://magicstack.github.io/asyncpg/current/api/index.html#connection-pools>`_
  and `Connection.add_listener
  <https://magicstack.github.io/asyncpg/current/api/index.html#asyncpg.connection.Connection.add_listener>`_.
* Python: :func:`asyncio.wait`, :meth:`asyncio.loop.add_signal_handler` and
  :doc:`python:library/asyncio-task`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import re
import socket
import uuid
from dataclasses import dataclass
from typing import (
    Any,
    AsyncIterator,
    Awaitable,
    Callable,
    Dict,
    Iterable,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Sequence,
    Set,
    Tuple,
    TypeVar,
    Union,
)

import asyncpg
import asyncpg.pool

__all__ = [
    "Handler",
    "Job",
    "JobInfo",
    "Worker",
    "claim",
    "complete",
    "counts",
    "enqueue",
    "enqueue_many",
    "extend_lease",
    "fail",
    "get_job",
    "install",
    "release",
    "uninstall",
]

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

# A connection, one borrowed from a pool, or the pool itself.
_Database = Union[asyncpg.Connection, asyncpg.pool.PoolConnectionProxy, asyncpg.Pool]
_TABLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,50}\Z")
_STATUSES = ("queued", "running", "done", "failed")
# Durations go into timestamps (now() + seconds): PostgreSQL's end in 294276 AD, Python's
# datetime in 9999.  10**9 seconds (about 31 years) is far below both.
_MAX_SECONDS = 10**9
_MAX_ATTEMPTS = 2**31 - 1  # attempts and max_attempts are PostgreSQL integers


def _table(name: str) -> str:
    """Check a table name; it is pasted into SQL, since names cannot be parameters."""
    if not isinstance(name, str) or not _TABLE_NAME.match(name):
        raise ValueError(f"table must be a lowercase SQL name, not {name!r}")
    return name


def _positive(name: str, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0 < value <= _MAX_SECONDS
    ):
        raise ValueError(
            f"{name} must be a positive number of seconds, at most {_MAX_SECONDS:,}, not {value!r}"
        )
    return float(value)


def _check_job_options(queue: object, max_attempts: object, delay: object) -> None:
    """Refuse options of :func:`enqueue` and :func:`enqueue_many` the table cannot hold."""
    if not isinstance(queue, str) or not queue:
        raise ValueError(f"queue must be a non-empty str, not {queue!r}")
    if (
        isinstance(max_attempts, bool)
        or not isinstance(max_attempts, int)
        or not 1 <= max_attempts <= _MAX_ATTEMPTS
    ):
        raise ValueError(
            f"max_attempts must be an int from 1 to {_MAX_ATTEMPTS:,}, not {max_attempts!r}"
        )
    if (
        isinstance(delay, bool)
        or not isinstance(delay, (int, float))
        or not 0 <= delay <= _MAX_SECONDS
    ):
        raise ValueError(
            f"delay must be a number of seconds from 0 to {_MAX_SECONDS:,}, not {delay!r}"
        )


@contextlib.asynccontextmanager
async def _connection(db: _Database, timeout: float) -> AsyncIterator[Any]:
    if isinstance(db, asyncpg.Pool):
        async with db.acquire(timeout=timeout) as conn:
            yield conn
    else:
        yield db


async def install(db: _Database, *, table: str = "jobs", timeout: float = 10.0) -> None:
    """Create the jobs table and its indexes, unless they exist.

    >>> import asyncpg
    >>> from recipes.job_queue import counts, install, uninstall
    >>> conn = await asyncpg.connect(dsn, timeout=10)
    >>> await install(conn)
    >>> await counts(conn)
    {'queued': 0, 'running': 0, 'done': 0, 'failed': 0}

    Every worker may call it at start-up: an advisory lock makes concurrent
    calls take turns, so two processes never race to create the same table.
    ``table`` names the table (and, with a ``_wakeup`` suffix, the
    notification channel), so one database can hold several queues' tables;
    it must be a plain lowercase name, because names cannot be query
    parameters:

    >>> await install(conn, table="jobs; DROP TABLE users")
    Traceback (most recent call last):
    ...
    ValueError: table must be a lowercase SQL name, not 'jobs; DROP TABLE users'
    >>> await uninstall(conn)
    >>> await conn.close()
    """
    t = _table(table)
    async with _connection(db, timeout) as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", t, timeout=timeout)
        await conn.execute(
            f"""
            CREATE TABLE IF NOT EXISTS {t} (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                queue text NOT NULL DEFAULT 'default',
                payload jsonb NOT NULL,
                status text NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'running', 'done', 'failed')),
                attempts integer NOT NULL DEFAULT 0,
                max_attempts integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
                run_after timestamptz NOT NULL DEFAULT now(),
                locked_by text,
                lease_expires_at timestamptz,
                result jsonb,
                last_error text,
                created_at timestamptz NOT NULL DEFAULT now(),
                updated_at timestamptz NOT NULL DEFAULT now()
            );
            -- (id + 0): the claim orders by it, so only this index can serve it and
            -- the planner never walks the primary key past the finished jobs.
            CREATE INDEX IF NOT EXISTS {t}_queued_idx
                ON {t} (queue, (id + 0), run_after) WHERE status = 'queued';
            CREATE INDEX IF NOT EXISTS {t}_lease_idx
                ON {t} (queue, lease_expires_at) WHERE status = 'running';
            """,
            timeout=timeout,
        )


async def uninstall(db: _Database, *, table: str = "jobs", timeout: float = 10.0) -> None:
    """Drop the jobs table with every job in it (for tests and clean-ups).

    >>> import asyncpg
    >>> from recipes.job_queue import install, uninstall
    >>> conn = await asyncpg.connect(dsn, timeout=10)
    >>> await install(conn, table="scratch_jobs")
    >>> await uninstall(conn, table="scratch_jobs")
    >>> await conn.fetchval("SELECT to_regclass('scratch_jobs')") is None
    True
    >>> await conn.close()
    """
    t = _table(table)
    async with _connection(db, timeout) as conn:
        await conn.execute(f"DROP TABLE IF EXISTS {t}", timeout=timeout)


async def enqueue(
    db: _Database,
    payload: Any,
    *,
    queue: str = "default",
    max_attempts: int = 3,
    delay: float = 0.0,
    table: str = "jobs",
    timeout: float = 10.0,
) -> int:
    """Add a job whose arguments are the JSON value ``payload``; return its id.

    >>> import asyncpg
    >>> from recipes.job_queue import counts, enqueue, install, uninstall
    >>> conn = await asyncpg.connect(dsn, timeout=10)
    >>> await install(conn)
    >>> await enqueue(conn, {"to": "ann@example.com", "template": "welcome"})
    1

    The same statement notifies the channel ``<table>_wakeup`` with the queue
    name as payload, which wakes idle workers.  Inside a transaction, both the
    job and the notification happen only if it commits:

    >>> async with conn.transaction():
    ...     _ = await enqueue(conn, {"to": "bob@example.com"}, queue="email")
    ...     raise RuntimeError("the order failed")
    Traceback (most recent call last):
    ...
    RuntimeError: the order failed
    >>> await counts(conn)
    {'queued': 1, 'running': 0, 'done': 0, 'failed': 0}

    ``delay`` postpones the job by that many seconds (at most ``10**9``);
    ``max_attempts`` may be up to 2,147,483,647.  A payload that JSON cannot
    hold is refused before anything is written:

    >>> await enqueue(conn, {"when": object()})  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    TypeError: payload is not JSON serialisable:
    Object of type object is not JSON serializable
    >>> await uninstall(conn)
    >>> await conn.close()
    """
    t = _table(table)
    _check_job_options(queue, max_attempts, delay)
    try:
        document = json.dumps(payload, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"payload is not JSON serialisable: {exc}") from None
    async with _connection(db, timeout) as conn:
        job_id = await conn.fetchval(
            f"""
            WITH job AS (
                INSERT INTO {t} (queue, payload, max_attempts, run_after)
                VALUES ($1, $2::text::jsonb, $3, now() + make_interval(secs => $4))
                RETURNING id
            )
            SELECT id FROM job, pg_notify($5, $1)
            """,
            queue,
            document,
            max_attempts,
            float(delay),
            f"{t}_wakeup",
            timeout=timeout,
        )
    return int(job_id)


async def enqueue_many(
    db: _Database,
    payloads: Iterable[Any],
    *,
    queue: str = "default",
    max_attempts: int = 3,
    delay: float = 0.0,
    table: str = "jobs",
    timeout: float = 10.0,
) -> List[int]:
    """Add one job per JSON value in ``payloads``, in one statement; return their ids.

    >>> import asyncpg
    >>> from recipes.job_queue import counts, enqueue_many, install, uninstall
    >>> conn = await asyncpg.connect(dsn, timeout=10)
    >>> await install(conn)
    >>> await enqueue_many(conn, ({"n": n} for n in range(5)))
    [1, 2, 3, 4, 5]
    >>> await enqueue_many(conn, [])
    []

    The ids come back in the order of ``payloads``, and the jobs are taken in
    that order too.  Every job gets the same ``queue``, ``max_attempts`` and
    ``delay``; one notification wakes the workers however many jobs there
    are.  Inside a transaction, the jobs are added only if it commits:

    >>> async with conn.transaction():
    ...     _ = await enqueue_many(conn, [{"n": 5}, {"n": 6}], queue="email")
    ...     raise RuntimeError("the order failed")
    Traceback (most recent call last):
    ...
    RuntimeError: the order failed
    >>> await counts(conn)
    {'queued': 5, 'running': 0, 'done': 0, 'failed': 0}

    Every payload is checked before the statement is sent, so one that JSON
    cannot hold leaves the table as it was, and the error says which one it
    is:

    >>> bad = [{"n": 7}, {"n": {8}}]
    >>> await enqueue_many(conn, bad)  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    TypeError: payload 1 is not JSON serialisable:
    Object of type set is not JSON serializable
    >>> await counts(conn)
    {'queued': 5, 'running': 0, 'done': 0, 'failed': 0}
    >>> await uninstall(conn)
    >>> await conn.close()
    """
    t = _table(table)
    _check_job_options(queue, max_attempts, delay)
    if isinstance(payloads, (str, bytes, bytearray, Mapping)):
        raise TypeError(
            f"payloads must be an iterable of payloads, not a {type(payloads).__name__}:"
            " wrap a single payload in a list, or call enqueue()"
        )
    documents: List[str] = []
    for index, payload in enumerate(payloads):
        try:
            documents.append(json.dumps(payload, allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"payload {index} is not JSON serialisable: {exc}") from None
    if not documents:
        return []
    async with _connection(db, timeout) as conn:
        # The rows are inserted, and their identities drawn, in the order of the array; the
        # function in FROM runs once, so one notification goes out for the whole batch.
        ids = await conn.fetchval(
            f"""
            WITH job AS (
                INSERT INTO {t} (queue, payload, max_attempts, run_after)
                SELECT $1, document::jsonb, $2, now() + make_interval(secs => $3)
                FROM unnest($4::text[]) WITH ORDINALITY AS given (document, position)
                ORDER BY position
                RETURNING id
            )
            SELECT array_agg(id ORDER BY id) FROM job, pg_notify($5, $1)
            """,
            queue,
            max_attempts,
            float(delay),
            documents,
            f"{t}_wakeup",
            timeout=timeout,
        )
    return [int(job_id) for job_id in ids]


@dataclass(frozen=True)
class Job:
    """A job taken by a worker: what the handler receives.

    ``attempts`` counts this attempt too (1 the first time).  Together with
    ``id`` it identifies the lease: :func:`complete`, :func:`fail`,
    :func:`extend_lease` and :func:`release` act only while the row still
    carries this attempt number.
    """

    id: int
    queue: str
    payload: Any
    attempts: int
    max_attempts: int


async def claim(
    db: _Database,
    *,
    worker_id: str,
    lease: float = 30.0,
    queue: str = "default",
    table: str = "jobs",
    timeout: float = 10.0,
) -> Optional[Job]:
    """Take the oldest ready job of ``queue`` for ``lease`` seconds, or return ``None``.

    >>> import asyncio
    >>> import asyncpg
    >>> from recipes.job_queue import claim, complete, enqueue, install, uninstall
    >>> conn = await asyncpg.connect(dsn, timeout=10)
    >>> await install(conn)
    >>> await enqueue(conn, {"n": 1})
    1
    >>> job = await claim(conn, worker_id="w1", lease=0.5)
    >>> job
    Job(id=1, queue='default', payload={'n': 1}, attempts=1, max_attempts=3)
    >>> print(await claim(conn, worker_id="w2"))
    None

    "Ready" means queued and due, or running with an expired lease.  Here the
    first worker stops renewing its lease (it crashed), the lease runs out and
    the job goes to the second worker as attempt 2.  The first worker's late
    answer is then ignored:

    >>> await asyncio.sleep(0.6)
    >>> again = await claim(conn, worker_id="w2")
    >>> again.id, again.attempts
    (1, 2)
    >>> await complete(conn, job, {"by": "w1"})
    False
    >>> await complete(conn, again, {"by": "w2"})
    True
    >>> await uninstall(conn)
    >>> await conn.close()
    """
    lease = _positive("lease", lease)
    if not isinstance(worker_id, str) or not worker_id:
        raise ValueError(f"worker_id must be a non-empty str, not {worker_id!r}")
    async with _connection(db, timeout) as conn:
        jobs, _ = await _claim_jobs(conn, worker_id, lease, queue, _table(table), 1, timeout)
    return jobs[0] if jobs else None


# The results a worker writes in the statement that claims its next jobs: (job, JSON, waiter).
_Finished = Sequence[Tuple["Job", str, object]]


async def _claim_jobs(
    conn: Any,
    worker_id: str,
    lease: float,
    queue: str,
    t: str,
    limit: int,
    timeout: float,
    finished: Optional[_Finished] = None,
) -> Tuple[List[Job], Set[Tuple[int, int]]]:
    """Take up to ``limit`` ready jobs, oldest first, in one statement (the one the chapter
    shows).  With ``finished``, the same statement first marks those jobs done, as
    :func:`complete` would, and also returns the ``(id, attempts)`` of those it could: a
    job missing there had lost its lease.  One round trip, and one commit, for both."""
    if finished is None:
        done_step = ""
        not_done = ""
        results: Tuple[object, ...] = ()
    else:
        # A row must not be changed twice in one statement: the jobs being completed are
        # kept out of the other steps (they are ours, so no other step wants them anyway).
        done_step = f"""done AS (
            UPDATE {t} AS job
            SET status = 'done', result = given.result::jsonb, lease_expires_at = NULL,
                updated_at = now()
            FROM unnest($5::bigint[], $6::integer[], $7::text[])
                AS given (id, attempts, result)
            WHERE job.id = given.id AND job.status = 'running'
              AND job.attempts = given.attempts
            RETURNING job.id, job.attempts
        ), """
        not_done = "AND id <> ALL($5::bigint[])"
        results = (
            [job.id for job, _, _ in finished],
            [job.attempts for job, _, _ in finished],
            [document for _, document, _ in finished],
        )
    claim_step = f"""UPDATE {t} AS job
        SET status = 'running', attempts = job.attempts + 1, locked_by = $2,
            lease_expires_at = now() + make_interval(secs => $3), updated_at = now()
        FROM next
        WHERE job.id = next.id
        RETURNING job.id, job.queue, job.payload::text AS payload, job.attempts,
            job.max_attempts"""
    if finished is None:
        last_step = claim_step
    else:
        last_step = """SELECT * FROM (
            SELECT true AS claimed, * FROM claimed
            UNION ALL
            SELECT false, id, NULL, NULL, attempts, NULL FROM done
        ) AS answer"""
        claim_step = f"claimed AS ({claim_step})"
    rows = await conn.fetch(
        f"""
        WITH {done_step}exhausted AS (
            -- A job whose worker vanished during its last attempt is not run again.
            UPDATE {t} SET status = 'failed', lease_expires_at = NULL, updated_at = now(),
                last_error = 'lease expired during the last attempt (worker '
                             || coalesce(locked_by, '?') || ' stopped renewing it)'
            WHERE id IN (
                SELECT id FROM {t}
                WHERE queue = $1 AND status = 'running'
                  AND lease_expires_at <= now() AND attempts >= max_attempts {not_done}
                FOR UPDATE SKIP LOCKED
            )
        ), queued AS (
            -- Two halves, each read in the order of an index, rather than one OR that
            -- would walk the primary key past every finished job.
            SELECT id FROM {t}
            WHERE queue = $1 AND status = 'queued' AND run_after <= now() {not_done}
            ORDER BY id + 0  -- served by {t}_queued_idx only (see install())
            LIMIT $4
            FOR UPDATE SKIP LOCKED
        ), expired AS (
            SELECT id FROM {t}
            WHERE queue = $1 AND status = 'running' AND lease_expires_at <= now()
              AND attempts < max_attempts {not_done}
            ORDER BY lease_expires_at
            LIMIT $4
            FOR UPDATE SKIP LOCKED
        ), next AS (
            SELECT id FROM queued UNION ALL SELECT id FROM expired
            ORDER BY id
            LIMIT $4
        ){", " + claim_step if finished is not None else ""}
        {last_step}
        """,
        queue,
        worker_id,
        lease,
        limit,
        *results,
        timeout=timeout,
    )
    jobs: List[Job] = []
    done: Set[Tuple[int, int]] = set()
    for row in rows:
        if finished is not None and not row["claimed"]:
            done.add((row["id"], row["attempts"]))
            continue
        jobs.append(
            Job(
                id=row["id"],
                queue=row["queue"],
                payload=json.loads(row["payload"]),
                attempts=row["attempts"],
                max_attempts=row["max_attempts"],
            )
        )
    jobs.sort(key=lambda job: job.id)  # RETURNING promises no order
    return jobs, done


async def _update_running(
    db: _Database, job: Job, table: str, assignments: str, *args: object, timeout: float
) -> Optional[str]:
    """Apply ``assignments`` if the row is still this attempt's; return the new status."""
    t = _table(table)
    async with _connection(db, timeout) as conn:
        status = await conn.fetchval(
            f"""
            UPDATE {t} SET {assignments}, updated_at = now()
            WHERE id = $1 AND status = 'running' AND attempts = $2
            RETURNING status
            """,
            job.id,
            job.attempts,
            *args,
            timeout=timeout,
        )
    return None if status is None else str(status)


async def extend_lease(
    db: _Database, job: Job, *, lease: float = 30.0, table: str = "jobs", timeout: float = 10.0
) -> bool:
    """Push the lease of ``job`` to ``lease`` seconds from now; False if the job is no longer ours.

    >>> import asyncpg
    >>> from recipes.job_queue import (
    ...     claim, complete, enqueue, extend_lease, install, uninstall,
    ... )
    >>> conn = await asyncpg.connect(dsn, timeout=10)
    >>> await install(conn)
    >>> _ = await enqueue(conn, {"n": 1})
    >>> job = await claim(conn, worker_id="w1", lease=5)
    >>> await extend_lease(conn, job, lease=60)
    True
    >>> await complete(conn, job, None)
    True
    >>> await extend_lease(conn, job, lease=60)
    False
    >>> await uninstall(conn)
    >>> await conn.close()

    :class:`Worker` does this every ``lease / 3`` seconds while a handler
    runs, and cancels the handler if the answer is False.
    """
    lease = _positive("lease", lease)
    status = await _update_running(
        db,
        job,
        table,
        "lease_expires_at = now() + make_interval(secs => $3)",
        lease,
        timeout=timeout,
    )
    return status is not None


async def complete(
    db: _Database, job: Job, result: Any = None, *, table: str = "jobs", timeout: float = 10.0
) -> bool:
    """Mark ``job`` done and store the JSON value ``result``; False if the lease was lost.

    >>> import asyncpg
    >>> from recipes.job_queue import (
    ...     claim, complete, enqueue, get_job, install, uninstall,
    ... )
    >>> conn = await asyncpg.connect(dsn, timeout=10)
    >>> await install(conn)
    >>> _ = await enqueue(conn, {"n": 3})
    >>> job = await claim(conn, worker_id="w1")
    >>> await complete(conn, job, {"square": 9})
    True
    >>> (await get_job(conn, job.id)).result
    {'square': 9}
    >>> await uninstall(conn)
    >>> await conn.close()
    """
    try:
        document = json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"result is not JSON serialisable: {exc}") from None
    status = await _update_running(
        db,
        job,
        table,
        "status = 'done', result = $3::text::jsonb, lease_expires_at = NULL",
        document,
        timeout=timeout,
    )
    return status is not None


async def fail(
    db: _Database,
    job: Job,
    error: str,
    *,
    retry_delay: float = 0.0,
    table: str = "jobs",
    timeout: float = 10.0,
) -> Optional[str]:
    """Record a failed attempt; return ``'queued'`` (will retry), ``'failed'``, or ``None``.

    >>> import asyncpg
    >>> from recipes.job_queue import (
    ...     claim, enqueue, fail, get_job, install, uninstall,
    ... )
    >>> conn = await asyncpg.connect(dsn, timeout=10)
    >>> await install(conn)
    >>> _ = await enqueue(conn, {"n": 1}, max_attempts=2)
    >>> job = await claim(conn, worker_id="w1")
    >>> await fail(conn, job, "ValueError: bad input")
    'queued'
    >>> job = await claim(conn, worker_id="w1")
    >>> await fail(conn, job, "ValueError: bad input")
    'failed'
    >>> info = await get_job(conn, job.id)
    >>> info.status, info.attempts, info.last_error
    ('failed', 2, 'ValueError: bad input')
    >>> await uninstall(conn)
    >>> await conn.close()

    A retried job becomes ready again after ``retry_delay`` seconds (at most
    ``10**9``).  ``None`` means the lease had already passed to another
    worker, and nothing changed.
    """
    if not isinstance(error, str):
        raise TypeError(f"error must be a str, not {type(error).__name__}")
    if isinstance(retry_delay, bool) or not isinstance(retry_delay, (int, float)):
        raise TypeError(f"retry_delay must be a number, not {type(retry_delay).__name__}")
    if not retry_delay <= _MAX_SECONDS:  # also refuses NaN
        raise ValueError(
            f"retry_delay must be at most {_MAX_SECONDS:,} seconds, not {retry_delay!r}"
        )
    return await _update_running(
        db,
        job,
        table,
        """status = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END,
           last_error = $3, lease_expires_at = NULL,
           run_after = now() + make_interval(secs => $4)""",
        error,
        max(0.0, float(retry_delay)),
        timeout=timeout,
    )


async def release(db: _Database, job: Job, *, table: str = "jobs", timeout: float = 10.0) -> bool:
    """Put ``job`` back in the queue untouched, without using up an attempt.

    >>> import asyncpg
    >>> from recipes.job_queue import (
    ...     claim, enqueue, get_job, install, release, uninstall,
    ... )
    >>> conn = await asyncpg.connect(dsn, timeout=10)
    >>> await install(conn)
    >>> _ = await enqueue(conn, {"n": 1})
    >>> job = await claim(conn, worker_id="w1")
    >>> await release(conn, job)
    True
    >>> (await get_job(conn, job.id)).status
    'queued'
    >>> (await claim(conn, worker_id="w2")).attempts
    1
    >>> await uninstall(conn)
    >>> await conn.close()

    :class:`Worker` releases its job when it is cancelled (once the handler
    has ended), so a shutdown does not make the job wait for its lease to
    expire.
    """
    status = await _update_running(
        db,
        job,
        table,
        "status = 'queued', attempts = attempts - 1, lease_expires_at = NULL, run_after = now()",
        timeout=timeout,
    )
    return status is not None


class JobInfo(NamedTuple):
    """The state of one job, as :func:`get_job` reports it."""

    #: The job's id, as :func:`enqueue` returned it.
    id: int
    #: The name of the queue the job was put on.
    queue: str
    #: ``'queued'``, ``'running'``, ``'done'`` or ``'failed'`` (out of attempts).
    status: str
    #: How many times a worker has taken the job so far.
    attempts: int
    #: What the handler returned (decoded from JSON), or ``None`` until it is done.
    result: Any
    #: Why the last attempt failed, or ``None`` if none has.
    last_error: Optional[str]


async def get_job(
    db: _Database, job_id: int, *, table: str = "jobs", timeout: float = 10.0
) -> Optional[JobInfo]:
    """Look up a job by id; ``None`` if there is no such job.

    >>> import asyncpg
    >>> from recipes.job_queue import enqueue, get_job, install, uninstall
    >>> conn = await asyncpg.connect(dsn, timeout=10)
    >>> await install(conn)
    >>> job_id = await enqueue(conn, {"n": 1}, queue="email")
    >>> await get_job(conn, job_id)  # doctest: +NORMALIZE_WHITESPACE
    JobInfo(id=1, queue='email', status='queued', attempts=0, result=None,
            last_error=None)
    >>> print(await get_job(conn, 42))
    None
    >>> await uninstall(conn)
    >>> await conn.close()
    """
    t = _table(table)
    async with _connection(db, timeout) as conn:
        row = await conn.fetchrow(
            f"""
            SELECT id, queue, status, attempts, result::text AS result, last_error
            FROM {t} WHERE id = $1
            """,
            job_id,
            timeout=timeout,
        )
    if row is None:
        return None
    result = None if row["result"] is None else json.loads(row["result"])
    return JobInfo(
        row["id"], row["queue"], row["status"], row["attempts"], result, row["last_error"]
    )


async def counts(
    db: _Database, *, queue: Optional[str] = None, table: str = "jobs", timeout: float = 10.0
) -> Dict[str, int]:
    """Count the jobs in each status, for one ``queue`` or all of them.

    >>> import asyncpg
    >>> from recipes.job_queue import counts, enqueue, install, uninstall
    >>> conn = await asyncpg.connect(dsn, timeout=10)
    >>> await install(conn)
    >>> for queue in ("email", "email", "thumbnails"):
    ...     _ = await enqueue(conn, {}, queue=queue)
    >>> await counts(conn, queue="email")
    {'queued': 2, 'running': 0, 'done': 0, 'failed': 0}
    >>> await uninstall(conn)
    >>> await conn.close()
    """
    t = _table(table)
    async with _connection(db, timeout) as conn:
        rows = await conn.fetch(
            f"""
            SELECT status, count(*) AS n FROM {t}
            WHERE $1::text IS NULL OR queue = $1
            GROUP BY status
            """,
            queue,
            timeout=timeout,
        )
    found = {row["status"]: int(row["n"]) for row in rows}
    return {status: found.get(status, 0) for status in _STATUSES}


Handler = Callable[[Job], Awaitable[Any]]
"""An ``async def`` that takes a :class:`Job` and returns a JSON value (the result)."""


def _is_lost(conn: asyncpg.pool.PoolConnectionProxy) -> bool:
    """True if a borrowed connection has closed (asyncpg then takes it back from us)."""
    try:
        return conn.is_closed()
    except asyncpg.InterfaceError:  # "connection has been released back to the pool"
        return True


# Errors of the database or the network that a worker rides out by waiting and trying again.
_TRANSIENT = (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


def _backoff(first: float, cap: float, attempts: int) -> float:
    """``first * 2 ** (attempts - 1)`` seconds, at most ``cap``, for any number of attempts.

    The doubling stops once it reaches the cap: from 1,025 attempts on, ``2 ** (attempts - 1)``
    no longer fits a float, and ``attempts`` may go up to 2**31 - 1.
    """
    doublings = max(0, attempts - 1)
    if doublings >= math.log2(cap) - math.log2(first):
        return cap
    return min(cap, math.ldexp(first, doublings))


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark the outcome of a finished task as seen (no "exception never retrieved")."""
    if not task.cancelled():
        task.exception()


async def _wait_done(task: asyncio.Future[Any]) -> None:
    """Wait until ``task`` has ended, even if we are cancelled meanwhile; then re-raise that."""
    interrupted: Optional[BaseException] = None
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError as exc:
            interrupted = exc
    if interrupted is not None:
        _retrieve(task)
        raise interrupted


async def _wait_all(tasks: Set[asyncio.Future[Any]]) -> None:
    """Wait until every task has ended, even if we are cancelled meanwhile; then re-raise
    that."""
    interrupted: Optional[BaseException] = None
    pending = {task for task in tasks if not task.done()}
    while pending:
        try:
            await asyncio.wait(pending)
        except asyncio.CancelledError as exc:
            interrupted = exc
        pending = {task for task in pending if not task.done()}
    if interrupted is not None:
        raise interrupted


async def _to_the_end(aw: Awaitable[_T]) -> _T:
    """Run ``aw`` to its end in a task of its own; a cancellation meanwhile is raised after.

    For clean-ups that must not be cut short (each is bounded by the worker's ``timeout``):
    a second cancellation, from an impatient caller, then waits for them instead of
    leaving them half done or running on unwatched.
    """
    task = asyncio.ensure_future(aw)
    await _wait_done(task)
    return task.result()


async def _within(aw: Awaitable[_T], timeout: float) -> _T:
    """Await ``aw`` for at most ``timeout`` seconds, then raise :exc:`asyncio.TimeoutError`.

    Unlike :func:`asyncio.wait_for` on 3.8-3.11 (CPython gh-86296), a cancellation of the
    caller is never lost, even when it arrives as ``aw`` finishes: ``aw`` runs in a task of
    its own, and the caller only waits for it with :func:`asyncio.wait`.
    """
    task = asyncio.ensure_future(aw)
    try:
        await asyncio.wait({task}, timeout=timeout)
    except asyncio.CancelledError:
        task.cancel()
        await _wait_done(task)
        _retrieve(task)
        raise
    if not task.done():
        task.cancel()
        await _wait_done(task)
        if task.cancelled():
            raise asyncio.TimeoutError
    return task.result()


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class _Alarm:
    """A wake-up call for one waiting task, without the races of ``wait_for(event.wait())``.

    :meth:`set` wakes :meth:`wait`, which otherwise returns after its timeout.  No task is
    created, and a cancellation of the waiting task always propagates: on 3.8-3.11
    ``asyncio.wait_for(event.wait(), timeout)`` returns normally if the cancellation lands
    just as the event is set, and the cancelled worker would carry on.
    """

    def __init__(self) -> None:
        self._set = False
        self._waiter: Optional[asyncio.Future[None]] = None

    def set(self) -> None:
        self._set = True
        if self._waiter is not None:
            _resolve(self._waiter)

    def clear(self) -> None:
        self._set = False

    async def wait(self, timeout: float) -> bool:
        """Return once set, or after ``timeout`` seconds; True if set."""
        if not self._set:
            loop = asyncio.get_running_loop()
            self._waiter = waiter = loop.create_future()
            timer = loop.call_later(timeout, _resolve, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        return self._set


_Listeners = Tuple[Callable[[object, int, str, object], None], Callable[[object], None]]


class _LeaseKeeper:
    """Renews the lease of one job every lease/3 seconds while its handler runs.

    Most jobs end well before their first renewal is due, so the task that renews is only
    started then, by a timer: a job that ends sooner costs no task at all.
    """

    def __init__(self, worker: Worker, job: Job, handler_task: asyncio.Future[Any]) -> None:
        self._worker = worker
        self._job = job
        self._handler_task = handler_task
        self._stopping = _Alarm()
        self._task: Optional[asyncio.Task[bool]] = None
        self._timer = asyncio.get_running_loop().call_later(worker.lease / 3, self._start)

    def _start(self) -> None:
        self._task = asyncio.ensure_future(
            self._worker._renew(self._job, self._handler_task, self._stopping)
        )

    async def stop(self) -> bool:
        """Stop renewing, once a renewal in flight has ended; True if the lease was lost."""
        self._timer.cancel()
        self._stopping.set()
        task = self._task
        if task is None:
            return False
        await asyncio.wait({task})
        return not task.cancelled() and task.exception() is None and task.result()


class Worker:
    """Run ``handler`` on the jobs of one queue, ``concurrency`` at a time, until stopped.

    >>> import asyncio
    >>> import asyncpg
    >>> from recipes.job_queue import (
    ...     Worker, counts, enqueue, get_job, install, uninstall,
    ... )
    >>> async def shout(job):
    ...     return job.payload["text"].upper()
    >>> async with asyncpg.create_pool(dsn, min_size=1, max_size=4) as pool:
    ...     await install(pool)
    ...     _ = await enqueue(pool, {"text": "hello"})
    ...     worker = Worker(pool, shout, poll_interval=1)
    ...     task = asyncio.create_task(worker.run())
    ...     _ = await enqueue(pool, {"text": "bye"})  # the notification wakes it
    ...     while (await counts(pool))["done"] < 2:
    ...         await asyncio.sleep(0.05)
    ...     worker.stop()
    ...     print(await task, "jobs done;", (await get_job(pool, 2)).result)
    ...     await uninstall(pool)
    2 jobs done; BYE

    While it runs, the worker keeps one connection of ``pool`` for itself: it
    listens for notifications on it and makes all its own queries there
    (claims, lease renewals, results), one at a time.  A handler may borrow
    the others, even all of them for longer than the lease: the renewals never
    wait for the pool.  Hence ``pool`` must allow at least two connections
    (and ``concurrency + 1`` if every handler holds one, see
    :ref:`recipes/job_queue:Running several jobs at once`):

    >>> async with asyncpg.create_pool(dsn, min_size=1, max_size=1) as pool:
    ...     Worker(pool, shout)  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    ValueError: the pool needs max_size >= 2: the worker keeps one
    connection, handlers get the others

    .. index:: single: error messages; the pool needs max_size >= 2

    A handler that
    raises makes the attempt fail; the job is retried after ``retry_delay``
    seconds (doubling each time, at most ``max_retry_delay``) until it has
    had ``max_attempts`` attempts:

    >>> async def flaky(job):
    ...     if job.attempts < 3:
    ...         raise ConnectionError(f"attempt {job.attempts} failed")
    ...     return "third time lucky"
    >>> async with asyncpg.create_pool(dsn, min_size=1, max_size=4) as pool:
    ...     await install(pool)
    ...     job_id = await enqueue(pool, None, max_attempts=3)
    ...     worker = Worker(pool, flaky, retry_delay=0.1, poll_interval=1)
    ...     task = asyncio.create_task(worker.run())
    ...     while (await get_job(pool, job_id)).status != "done":
    ...         await asyncio.sleep(0.05)
    ...     worker.stop()
    ...     _ = await task
    ...     info = await get_job(pool, job_id)
    ...     await uninstall(pool)
    >>> info.attempts, info.result, info.last_error
    (3, 'third time lucky', 'ConnectionError: attempt 2 failed')

    ``run(burst=True)`` returns as soon as no job is ready and none is in
    progress, which suits batch scripts and tests.  :meth:`stop` lets the jobs
    in progress finish; cancelling the task that runs :meth:`run` cancels
    their handlers and releases their jobs
    (:ref:`recipes/job_queue:Stopping workers gracefully` says what exactly
    happens).  The durations are in seconds, each at most ``10**9``.
    ``concurrency``, the number of jobs run at once, must be an int of at
    least 1:

    >>> Worker(pool, shout, concurrency=0)
    Traceback (most recent call last):
    ...
    ValueError: concurrency must be an int >= 1, not 0
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        handler: Handler,
        *,
        queue: str = "default",
        table: str = "jobs",
        worker_id: Optional[str] = None,
        lease: float = 30.0,
        poll_interval: float = 5.0,
        retry_delay: float = 1.0,
        max_retry_delay: float = 300.0,
        timeout: float = 10.0,
        concurrency: int = 1,
    ) -> None:
        if not isinstance(pool, asyncpg.Pool):
            raise TypeError(f"pool must be an asyncpg.Pool, not {type(pool).__name__}")
        if pool.get_max_size() < 2:
            raise ValueError(
                "the pool needs max_size >= 2: the worker keeps one connection,"
                " handlers get the others"
            )
        if not callable(handler):
            raise TypeError("handler must be an async function taking a Job")
        if not isinstance(queue, str) or not queue:
            raise ValueError(f"queue must be a non-empty str, not {queue!r}")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be an int >= 1, not {concurrency!r}")
        self.pool = pool
        self.handler = handler
        self.queue = queue
        self.table = _table(table)
        self.worker_id = (
            worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        )
        self.lease = _positive("lease", lease)
        self.poll_interval = _positive("poll_interval", poll_interval)
        self.retry_delay = _positive("retry_delay", retry_delay)
        self.max_retry_delay = _positive("max_retry_delay", max_retry_delay)
        self.timeout = _positive("timeout", timeout)
        self.concurrency = concurrency
        self._stopping = False
        self._running = False
        self._wakeup: Optional[_Alarm] = None
        # While run() runs: the worker's own connection, the lock that gives its queries
        # turns on it, and the completions waiting to be written together.
        self._conn: Optional[asyncpg.pool.PoolConnectionProxy] = None
        self._lock: Optional[asyncio.Lock] = None
        self._completions: List[Tuple[Job, str, asyncio.Future[bool]]] = []
        self._loop_writes = False  # True while run() writes the results with its claims

    def stop(self) -> None:
        """Ask :meth:`run` to return once the jobs in progress have finished (safe from a
        signal handler)."""
        self._stopping = True
        if self._wakeup is not None:
            self._wakeup.set()

    async def run(self, *, burst: bool = False) -> int:
        """Process jobs until :meth:`stop` (or, with ``burst``, until none is ready).

        Returns the number of jobs this call finished (done or failed).  If
        :meth:`stop` was called before, it returns at once.
        """
        if self._running:
            raise RuntimeError("this worker is already running")
        self._running = True
        self._wakeup = wakeup = _Alarm()
        self._lock = asyncio.Lock()  # made here: on 3.8 a lock belongs to the loop it sees

        def on_notify(connection: object, pid: int, channel: str, payload: object) -> None:
            if payload == self.queue:
                wakeup.set()

        def on_lost(connection: object) -> None:
            wakeup.set()  # our connection closed: wake up and take another

        def on_job_end(task: object) -> None:
            wakeup.set()  # a slot is free

        listeners: _Listeners = (on_notify, on_lost)
        in_progress: Set[asyncio.Future[int]] = set()
        finished = 0
        try:
            self._loop_writes = True  # results go out with the next claim
            try:
                while not self._stopping:
                    wakeup.clear()  # before claiming: a notification during the claim counts
                    finished += self._reap(in_progress)
                    # A job whose handler has returned frees its slot: its result is
                    # written with the claim that fills it.
                    free = max(0, self.concurrency - len(in_progress) + len(self._completions))
                    delay = self.poll_interval  # while every slot is busy, a job's end wakes us
                    try:
                        conn = self._conn
                        if conn is None or _is_lost(conn):
                            if conn is not None:  # the connection broke: give it back
                                self._conn = None
                                await self._give_back(conn, listeners)
                            self._conn = await self._take(listeners, listen=not burst)
                        if free:
                            jobs = await self._claim(free)
                            for job in jobs:
                                task = asyncio.ensure_future(self._process(job))
                                task.add_done_callback(on_job_end)
                                in_progress.add(task)
                            if len(jobs) == free:
                                continue  # maybe more are ready
                            if burst:
                                if not in_progress:
                                    break
                            else:
                                delay = await self._seconds_until_due()
                    except _TRANSIENT as exc:
                        logger.warning("worker %s: database error: %r", self.worker_id, exc)
                        delay = self.poll_interval
                    await wakeup.wait(delay)
            finally:
                # From here on each job writes its own result; write those waiting now.
                self._loop_writes = False
                if self._completions:
                    try:
                        await _to_the_end(self._write_and_claim(0))
                    except _TRANSIENT as exc:
                        logger.warning("worker %s: database error: %r", self.worker_id, exc)
            # stop() or an empty queue in burst mode: let every job in progress finish.
            while in_progress:
                wakeup.clear()
                finished += self._reap(in_progress)
                if in_progress:
                    await wakeup.wait(self.poll_interval)
        except BaseException:
            for running in in_progress:  # the hard stop: each job releases itself once ended
                running.cancel()
            raise
        finally:
            try:
                await _wait_all(in_progress)  # a second cancellation does not cut this short
                for running in in_progress:
                    _retrieve(running)
            finally:
                try:
                    conn, self._conn = self._conn, None
                    if conn is not None:
                        await _to_the_end(self._give_back(conn, listeners))
                finally:
                    self._running = False
                    self._stopping = False
                    self._wakeup = None
                    self._lock = None
        return finished

    def _reap(self, in_progress: Set[asyncio.Future[int]]) -> int:
        """Forget the jobs that have ended; return how many finished.  A job whose
        outcome could not be written is logged (its lease will run out); a bug is raised."""
        finished = 0
        for task in [task for task in in_progress if task.done()]:
            in_progress.discard(task)
            if task.cancelled():
                continue
            error = task.exception()
            if error is None:
                finished += task.result()
            elif isinstance(error, _TRANSIENT):
                logger.warning("worker %s: database error: %r", self.worker_id, error)
            else:
                raise error
        return finished

    @contextlib.asynccontextmanager
    async def _db(self) -> AsyncIterator[_Database]:
        """The worker's own connection, one query at a time, or the pool while that one
        is broken.  Only the worker's short queries take turns here, never a handler."""
        conn = self._conn
        if conn is None or _is_lost(conn) or self._lock is None:
            yield self.pool
            return
        async with self._lock:
            yield conn

    async def _take(self, listeners: _Listeners, *, listen: bool) -> Any:
        """Borrow the worker's own connection for good; LISTEN on it unless ``listen`` is False."""
        on_notify, on_lost = listeners
        conn = await self.pool.acquire(timeout=self.timeout)
        try:
            conn.add_termination_listener(on_lost)
            if listen:
                await _within(conn.add_listener(f"{self.table}_wakeup", on_notify), self.timeout)
        except BaseException:
            await _to_the_end(self._give_back(conn, listeners))
            raise
        return conn

    async def _give_back(
        self, conn: asyncpg.pool.PoolConnectionProxy, listeners: _Listeners
    ) -> None:
        """UNLISTEN (if the connection still works) and give the connection back."""
        on_notify, on_lost = listeners
        with contextlib.suppress(*_TRANSIENT):
            try:
                if not _is_lost(conn):
                    conn.remove_termination_listener(on_lost)
                    await _within(
                        conn.remove_listener(f"{self.table}_wakeup", on_notify), self.timeout
                    )
            finally:
                await self.pool.release(conn, timeout=self.timeout)

    async def _write_and_claim(self, limit: int) -> List[Job]:
        """Write the results waiting in ``_completions`` and take up to ``limit`` jobs, in
        one statement; tell each result's waiter whether it was written."""
        async with self._db() as db, _connection(db, self.timeout) as conn:
            batch, self._completions = self._completions, []  # all that waited for our turn
            if not batch and not limit:
                return []
            try:
                jobs, done = await _claim_jobs(
                    conn,
                    self.worker_id,
                    self.lease,
                    self.queue,
                    self.table,
                    limit,
                    self.timeout,
                    batch,
                )
            except BaseException as exc:
                for _, _, waiter in batch:
                    if not waiter.done():
                        waiter.set_exception(
                            ConnectionError(f"writing the result failed: {exc!r}")
                        )
                raise
            for job, _, waiter in batch:
                if not waiter.done():
                    waiter.set_result((job.id, job.attempts) in done)
        return jobs

    async def _claim(self, limit: int) -> List[Job]:
        """Take up to ``limit`` jobs, with nothing lost to a hard stop that lands meanwhile."""
        claiming = asyncio.ensure_future(self._write_and_claim(limit))
        try:
            await asyncio.wait({claiming})
        except asyncio.CancelledError:
            # The database may have handed us jobs already (the claim committed, its reply
            # still on the wire): let the claim finish and put back what it took.
            await _to_the_end(self._put_back_claimed(claiming))
            raise
        return claiming.result()

    async def _put_back_claimed(self, claiming: asyncio.Future[List[Job]]) -> None:
        await asyncio.wait({claiming})
        if claiming.cancelled() or claiming.exception() is not None:
            return  # nothing claimed, or we cannot know what: the leases will run out
        for job in claiming.result():
            await self._release_quietly(job)

    async def _seconds_until_due(self) -> float:
        """Seconds until a delayed job or a lease comes due, at most ``poll_interval``."""
        async with self._db() as db:
            due = await db.fetchval(
                f"""
                SELECT EXTRACT(EPOCH FROM least(
                    (SELECT min(run_after) FROM {self.table}
                     WHERE queue = $1 AND status = 'queued'),
                    (SELECT min(lease_expires_at) FROM {self.table}
                     WHERE queue = $1 AND status = 'running')
                ) - now())::float8
                """,
                self.queue,
                timeout=self.timeout,
            )
        if due is None:
            return self.poll_interval
        return min(self.poll_interval, max(0.0, float(due)) + 0.01)

    async def _process(self, job: Job) -> int:
        """Run the handler with a renewed lease; record the outcome.  Returns 1 if finished."""
        try:
            handler_task = asyncio.ensure_future(self.handler(job))
        except Exception as exc:  # a plain function that raised or returned no awaitable
            error = f"{type(exc).__name__}: {exc}"
            return await _to_the_end(self._record_failure(job, error))
        keeper = _LeaseKeeper(self, job, handler_task)
        try:
            await asyncio.wait({handler_task})
        except asyncio.CancelledError:
            # Hard stop: cancel the handler and, once it has ended, hand the job back.
            handler_task.cancel()
            await _to_the_end(self._settle(job, handler_task, keeper, hard_stop=True))
            raise
        # The handler has ended: record its outcome even if a hard stop lands meanwhile.
        return await _to_the_end(self._settle(job, handler_task, keeper, hard_stop=False))

    async def _settle(
        self,
        job: Job,
        handler_task: asyncio.Future[Any],
        keeper: _LeaseKeeper,
        *,
        hard_stop: bool,
    ) -> int:
        """Stop renewing the lease and record what became of the attempt.  1 if finished."""
        if hard_stop:
            await asyncio.wait({handler_task}, timeout=self.timeout)
        lease_lost = await keeper.stop()  # a renewal in flight ends first
        if not handler_task.done():  # it ignores its cancellation
            handler_task.add_done_callback(_retrieve)
            logger.warning(
                "worker %s: the handler of job %s ignores cancellation; its lease will run out",
                self.worker_id,
                job.id,
            )
            return 0
        if lease_lost:
            _retrieve(handler_task)
            logger.warning("worker %s: lease on job %s lost", self.worker_id, job.id)
            return 0  # the job belongs to another worker now
        if hard_stop and (handler_task.cancelled() or handler_task.exception() is not None):
            await self._release_quietly(job)
            return 0
        if handler_task.cancelled():
            return await self._record_failure(job, "CancelledError: the handler was cancelled")
        error = handler_task.exception()
        if error is not None:
            return await self._record_failure(job, f"{type(error).__name__}: {error}")
        try:
            document = json.dumps(handler_task.result(), allow_nan=False)
        except (TypeError, ValueError) as bad_result:  # not JSON
            return await self._record_failure(
                job, f"{type(bad_result).__name__}: result is not JSON serialisable: {bad_result}"
            )
        if await self._complete(job, document):
            return 1
        logger.warning(
            "worker %s: lease on job %s lost before its result was written; result dropped",
            self.worker_id,
            job.id,
        )
        return 0

    async def _complete(self, job: Job, document: str) -> bool:
        """:func:`complete`, in the statement that claims the next jobs if the worker is
        claiming, otherwise together with the other results waiting meanwhile."""
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._completions.append((job, document, waiter))
        if self._loop_writes and self._wakeup is not None:
            self._wakeup.set()  # run() writes it with its next claim, or when it stops
        else:
            await self._write_and_claim(0)  # or another job's call writes it meanwhile
        if not waiter.done():
            await asyncio.wait({waiter})
        return waiter.result()

    async def _record_failure(self, job: Job, error: str) -> int:
        """Fail the attempt, to be retried after an exponential back-off.  1 if final."""
        logger.info("worker %s: job %s failed: %s", self.worker_id, job.id, error)
        delay = _backoff(self.retry_delay, self.max_retry_delay, job.attempts)
        async with self._db() as db:
            status = await fail(
                db, job, error, retry_delay=delay, table=self.table, timeout=self.timeout
            )
        return 1 if status == "failed" else 0

    async def _renew(self, job: Job, handler_task: asyncio.Future[Any], stop: _Alarm) -> bool:
        """Renew the lease now and then every lease/3 seconds until ``stop``; if it is lost,
        cancel the handler and return True."""
        while True:
            try:
                async with self._db() as db:
                    ours = await extend_lease(
                        db, job, lease=self.lease, table=self.table, timeout=self.timeout
                    )
            except _TRANSIENT as exc:
                logger.warning("worker %s: cannot renew lease: %r", self.worker_id, exc)
            else:
                if not ours:
                    handler_task.cancel()
                    return True
            if await stop.wait(self.lease / 3):
                return False

    async def _release_quietly(self, job: Job) -> None:
        try:
            async with self._db() as db:
                await release(db, job, table=self.table, timeout=self.timeout)
        except _TRANSIENT as exc:  # the lease will expire and the job be retried anyway
            logger.warning("worker %s: cannot release job %s: %r", self.worker_id, job.id, exc)
