"""The job queue of ``recipes/job_queue.py`` against procrastinate and pgqueuer.

    python benchmarks/bench_job_queue.py                 # 5,000 jobs per cell, 3 rounds
    python benchmarks/bench_job_queue.py --quick         # 300 jobs (fsync on: 100), 1 round
    python benchmarks/bench_job_queue.py --json out.json

Each library is used the way its documentation shows a new user, on one
throwaway PostgreSQL, with no-op jobs (the handler counts the job and yields
to the event loop once):

* enqueue one at a time: the recipe's ``enqueue`` on one connection (as its
  chapter's example; through a pool, recorded apart, each call also pays the
  pool's reset), procrastinate's ``Task.defer_async``, pgqueuer's
  ``Queries.enqueue`` with one job (on one connection too);
* enqueue in bulk: the recipe's ``enqueue_many`` if the module has it (else
  ``enqueue`` called N times inside one transaction, labelled so),
  ``Task.batch_defer_async``, ``Queries.enqueue`` with lists;
* process, 1 and 8 at a time: the recipe's ``Worker(...).run(burst=True)``
  (``concurrency=8`` if the Worker takes it, else eight Workers on one pool,
  labelled so); procrastinate's ``App.run_worker_async(concurrency=N,
  wait=False)`` on a pool of 10 connections (its docs: concurrency + 1 for
  short jobs); pgqueuer's ``PgQueuer.run(mode=drain)`` with its per-worker cap
  ``max_concurrent_tasks`` (8, batch_size 4; for "1 at a time" its smallest
  allowed cap, 2, with batch_size 1).  pgqueuer's other setting, the
  entrypoint's ``concurrency_limit`` (enforced in SQL for all workers), is
  measured apart on a few jobs: with 1 it runs about ten jobs a second here;
* wake-up latency: an idle worker waits for work; the time from the call
  that enqueues one job to the start of its handler (p50).

Each of the rounds measures a row for the libraries one after the other, in
an order that rotates, so that the cells of a row share the machine's mood;
each cell is the median of the rounds.

Exactly-once is checked in every run: each handler counts the job ids it
sees, and afterwards every enqueued id must have been handled exactly once
and the library's tables must show every job finished successfully, once.
A violation makes the script exit with status 1.  The most handlers that
ran at once is recorded too.

The whole table runs twice, each time on a new throwaway cluster: first
with the test settings (``fsync=off``, ``synchronous_commit=off``,
``full_page_writes=off``), then with all three ``on``, as a production
server runs; each table records what one small committed INSERT costs, the
price of a commit on this disk.  With ``COOKBOOK_POSTGRES_DSN`` set, the
table runs once, with that server's own settings.

procrastinate and pgqueuer need Python 3.10 or newer; where they are not
installed (the 3.8 environment) the recipe is measured alone.  Real clock;
the machine's load changes the figures, so compare within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import hashlib
import importlib.metadata
import inspect
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import (
    Any,
    Awaitable,
    Callable,
    ClassVar,
    Counter,
    Dict,
    List,
    Optional,
    Sequence,
    Tuple,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

import recipes.job_queue as jq  # noqa: E402
from tests import pg_cluster  # noqa: E402

from _common import print_ratios, write_results  # noqa: E402

try:  # benchmark-only peers; they need Python >= 3.9
    import procrastinate
except ImportError as exc:  # pragma: no cover - depends on the environment
    procrastinate = None
    PROCRASTINATE_MISSING = f"not installed ({exc})"
try:
    from pgqueuer import PgQueuer
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.queries import Queries
    from pgqueuer.types import QueueExecutionMode
except ImportError as exc:  # pragma: no cover
    PgQueuer = None
    PGQUEUER_MISSING = f"not installed ({exc})"

ROWS = ("enqueue_one", "enqueue_bulk", "process_1", "process_8")
ROW_TITLES = {
    "enqueue_one": "enqueue one at a time",
    "enqueue_bulk": "enqueue in bulk",
    "process_1": "process, 1 at a time",
    "process_8": "process, 8 at a time",
}
WAKEUP_SAMPLES = 20
DURABLE = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
# What each library does per job, from its documentation (for the Performance page).
PER_JOB: Dict[str, str] = {
    "recipe": (
        "claim: one UPDATE ... FOR UPDATE SKIP LOCKED that marks the job running, counts the "
        "attempt (the fencing token) and sets a lease; the lease is renewed every lease/3 s "
        "while the handler runs; complete stores the handler's return value (jsonb) only if "
        "the attempt still holds the lease; a failure is retried with exponential backoff up "
        "to max_attempts (3 by default); an expired lease hands a crashed worker's job to "
        "another worker; LISTEN/NOTIFY wakes idle workers, with a poll as safety net; "
        "finished jobs stay in the table (recipes/job_queue.py, the chapter)"
    ),
    "procrastinate": (
        "fetch: a PL/pgSQL function that takes the oldest 'todo' job FOR UPDATE SKIP LOCKED "
        "and marks it 'doing'; finishing sets 'succeeded' and keeps the row (delete_jobs "
        "defaults to 'never'); triggers write 'deferred', 'started' and 'succeeded' rows to "
        "procrastinate_events; no retry unless the task sets retry=; the return value is only "
        "logged; each worker (not each job) updates a heartbeat every 10 s, and the jobs of a "
        "dead worker are retried only by a periodic task of yours that calls "
        "get_stalled_jobs/retry_job; abort requests come by LISTEN/NOTIFY and polling; "
        "optional locks and queueing locks (procrastinate docs: discussions, quickstart, "
        "events, retry, retry_stalled_jobs, App.run_worker_async)"
    ),
    "pgqueuer": (
        "dequeue: batches of batch_size jobs FOR UPDATE SKIP LOCKED, marked 'picked'; while "
        "a job runs, its heartbeat is updated every heartbeat_timeout/2 (buffered), and a "
        "job whose heartbeat is older than heartbeat_timeout (30 s) can be picked again by "
        "another worker; on completion the row is deleted from pgqueuer and a row written to "
        "pgqueuer_log, these writes batched (a buffer flushed at batch_size entries or every "
        "0.1 s, per its source); no retry by default (RetryRequested or a retry executor "
        "adds them); no stored return value; a trigger NOTIFYs on insert; the log is folded "
        "into pgqueuer_statistics every 30 s (pgqueuer docs: core concepts, concurrency "
        "control, performance tuning, reliability; QueueManager.run docstring)"
    ),
}


class ExactlyOnceViolation(Exception):
    pass


def version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


class Flight:
    """How many handlers run at once: each handler yields once to the loop in the middle."""

    def __init__(self) -> None:
        self.running = 0
        self.peak = 0

    async def hop(self) -> None:
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await asyncio.sleep(0)
        finally:
            self.running -= 1


def check_handled(name: str, expected: Sequence[int], seen: Counter[int]) -> None:
    """Every id in ``expected`` handled exactly once, and nothing else handled."""
    wanted = set(expected)
    if len(wanted) != len(expected):
        raise ExactlyOnceViolation(f"{name}: enqueue returned duplicate ids")
    twice = sorted(i for i, count in seen.items() if count > 1)
    missing = sorted(wanted - set(seen))
    extra = sorted(set(seen) - wanted)
    if twice or missing or extra:
        raise ExactlyOnceViolation(
            f"{name}: handled twice {twice[:10]} ({len(twice)}), never {missing[:10]} "
            f"({len(missing)}), unexpected {extra[:10]} ({len(extra)})"
        )


def check_rows(name: str, expected: int, good: int, total: int) -> None:
    if good != expected or total != expected:
        raise ExactlyOnceViolation(
            f"{name}: the tables show {good} of {expected} jobs finished once ({total} rows)"
        )


# --- the three libraries, each used as its documentation shows ------------------------------


class Library:
    name = ""
    bulk_label = ""
    process_1_label = ""
    process_8_label = ""

    async def setup(self, dsn: str, admin: asyncpg.Connection) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        pass

    async def clear(self) -> None:
        raise NotImplementedError

    async def enqueue_one(self, n: int) -> List[int]:
        raise NotImplementedError

    async def enqueue_bulk(self, n: int) -> List[int]:
        raise NotImplementedError

    async def process(self, ids: Sequence[int], concurrency: int) -> int:
        """Run a worker until every queued job is done; check exactly-once.

        Returns the most handlers that ran at once.
        """
        raise NotImplementedError

    async def wakeup(self, samples: int) -> List[float]:
        """Seconds from enqueue to handler start, with an idle worker."""
        raise NotImplementedError


async def sample_wakeups(
    enqueue: Callable[[int], Any], started: Dict[int, float], samples: int
) -> List[float]:
    """Enqueue ``samples`` jobs one by one on an idle worker; wait for each to start."""
    latencies = []
    await asyncio.sleep(0.3)  # let the worker settle into waiting
    for k in range(samples):
        before = time.perf_counter()
        await enqueue(k)
        deadline = before + 10
        while k not in started:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"job {k} did not start within 10 s")
            await asyncio.sleep(0.0002)
        latencies.append(started[k] - before)
        await asyncio.sleep(0.05)  # it finishes and goes idle again
    return latencies


class Recipe(Library):
    name = "recipe"

    process_1_label = "Worker(pool, handler).run(burst=True)"

    def __init__(self) -> None:
        self.has_bulk = hasattr(jq, "enqueue_many")
        self.has_concurrency = "concurrency" in inspect.signature(jq.Worker).parameters
        self.bulk_label = (
            "enqueue_many"
            if self.has_bulk
            else "no bulk API: N enqueue() calls in one transaction"
        )
        self.process_8_label = (
            "Worker(concurrency=8)"
            if self.has_concurrency
            else "8 Workers on one pool: a Worker has no concurrency setting"
        )

    async def setup(self, dsn: str, admin: asyncpg.Connection) -> None:
        self.admin = admin
        # One connection per worker (eight at most) plus one for enqueueing.
        self.pool = await asyncpg.create_pool(dsn, min_size=2, max_size=10)
        await jq.uninstall(self.pool)
        await jq.install(self.pool)

    async def close(self) -> None:
        await jq.uninstall(self.pool)
        await self.pool.close()

    async def clear(self) -> None:
        await self.admin.execute("TRUNCATE jobs RESTART IDENTITY")

    async def enqueue_one(self, n: int) -> List[int]:
        """``enqueue`` on one connection, as the chapter's example (and pgqueuer's
        producer) does."""
        async with self.pool.acquire() as conn:
            return [await jq.enqueue(conn, {"n": i}) for i in range(n)]

    async def enqueue_one_through_the_pool(self, n: int) -> List[int]:
        """Not in the table: ``enqueue(pool, ...)``, which acquires and resets a pool
        connection for every job."""
        return [await jq.enqueue(self.pool, {"n": i}) for i in range(n)]

    async def enqueue_bulk(self, n: int) -> List[int]:
        payloads = [{"n": i} for i in range(n)]
        if self.has_bulk:
            return list(await jq.enqueue_many(self.pool, payloads))  # type: ignore[attr-defined]
        async with self.pool.acquire() as conn, conn.transaction():
            return [await jq.enqueue(conn, payload) for payload in payloads]

    async def process(self, ids: Sequence[int], concurrency: int) -> int:
        seen: Counter[int] = collections.Counter()
        flight = Flight()

        async def handler(job: jq.Job) -> None:
            seen[job.id] += 1
            await flight.hop()

        if concurrency == 1:
            await jq.Worker(self.pool, handler).run(burst=True)
        elif self.has_concurrency:
            worker = jq.Worker(self.pool, handler, concurrency=concurrency)  # type: ignore[call-arg]
            await worker.run(burst=True)
        else:
            workers = [jq.Worker(self.pool, handler) for _ in range(concurrency)]
            await asyncio.gather(*(w.run(burst=True) for w in workers))
        check_handled(self.name, ids, seen)
        good, total = await self.admin.fetchrow(
            "SELECT count(*) FILTER (WHERE status = 'done' AND attempts = 1), count(*) FROM jobs"
        )
        check_rows(self.name, len(ids), good, total)
        return flight.peak

    async def wakeup(self, samples: int) -> List[float]:
        started: Dict[int, float] = {}

        async def handler(job: jq.Job) -> None:
            started[job.payload["k"]] = time.perf_counter()

        async def enqueue(k: int) -> None:
            await jq.enqueue(self.pool, {"k": k})

        worker = jq.Worker(self.pool, handler)
        task = asyncio.ensure_future(worker.run())
        try:
            return await sample_wakeups(enqueue, started, samples)
        finally:
            worker.stop()
            await task


class Procrastinate(Library):
    name = "procrastinate"
    bulk_label = "Task.batch_defer_async"
    process_1_label = "run_worker_async(concurrency=1, wait=False)"
    process_8_label = "run_worker_async(concurrency=8, wait=False)"

    async def setup(self, dsn: str, admin: asyncpg.Connection) -> None:
        self.admin = admin
        self.seen: Counter[int] = collections.Counter()
        self.flight = Flight()
        self.started: Dict[int, float] = {}
        # Its docs ("Mind the size of your PostgreSQL pool"): for short jobs, a pool of
        # concurrency + 1 connections; psycopg_pool's default is 4.
        connector = procrastinate.PsycopgConnector(conninfo=dsn, max_size=10)
        self.app = procrastinate.App(connector=connector)

        @self.app.task(name="noop", pass_context=True)
        async def noop(context: Any, n: int) -> None:
            self.seen[context.job.id] += 1
            await self.flight.hop()

        @self.app.task(name="wake")
        async def wake(k: int) -> None:
            self.started[k] = time.perf_counter()

        self.noop, self.wake = noop, wake
        self.stack = contextlib.AsyncExitStack()
        await self.stack.enter_async_context(self.app.open_async())
        if await admin.fetchval("SELECT to_regclass('procrastinate_jobs')") is None:
            await self.app.schema_manager.apply_schema_async()

    async def close(self) -> None:
        await self.stack.aclose()

    async def clear(self) -> None:
        await self.admin.execute(
            "TRUNCATE procrastinate_jobs, procrastinate_workers RESTART IDENTITY CASCADE"
        )

    async def enqueue_one(self, n: int) -> List[int]:
        return [await self.noop.defer_async(n=i) for i in range(n)]

    async def enqueue_bulk(self, n: int) -> List[int]:
        return await self.noop.batch_defer_async(*({"n": i} for i in range(n)))

    async def process(self, ids: Sequence[int], concurrency: int) -> int:
        self.seen.clear()
        self.flight = Flight()
        await self.app.run_worker_async(
            concurrency=concurrency, wait=False, install_signal_handlers=False
        )
        check_handled(self.name, ids, self.seen)
        good, total = await self.admin.fetchrow(
            "SELECT count(*) FILTER (WHERE status = 'succeeded' AND attempts = 1), count(*)"
            " FROM procrastinate_jobs"
        )
        check_rows(self.name, len(ids), good, total)
        return self.flight.peak

    async def wakeup(self, samples: int) -> List[float]:
        self.started.clear()

        async def enqueue(k: int) -> None:
            await self.wake.defer_async(k=k)

        task = asyncio.ensure_future(self.app.run_worker_async(install_signal_handlers=False))
        try:
            return await sample_wakeups(enqueue, self.started, samples)
        finally:
            task.cancel()  # the documented graceful stop
            with contextlib.suppress(asyncio.CancelledError):
                await task


class Pgqueuer(Library):
    name = "pgqueuer"
    bulk_label = "Queries.enqueue with lists"
    process_1_label = "run(max_concurrent_tasks=2, batch_size=1): its smallest cap, 2 at a time"
    process_8_label = "run(max_concurrent_tasks=8, batch_size=4)"

    async def setup(self, dsn: str, admin: asyncpg.Connection) -> None:
        self.dsn, self.admin = dsn, admin
        # The documented installation: the pgq command line.
        subprocess.run(
            [sys.executable, "-m", "pgqueuer", "--pg-dsn", dsn, "install"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.producer = await asyncpg.connect(dsn)
        self.queries = Queries(AsyncpgDriver(self.producer))

    async def close(self) -> None:
        await self.producer.close()
        subprocess.run(
            [sys.executable, "-m", "pgqueuer", "--pg-dsn", self.dsn, "uninstall"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def clear(self) -> None:
        await self.admin.execute(
            "TRUNCATE pgqueuer, pgqueuer_log, pgqueuer_statistics RESTART IDENTITY"
        )

    async def enqueue_one(self, n: int) -> List[int]:
        ids = []
        for i in range(n):
            ids.extend(await self.queries.enqueue("noop", json.dumps({"n": i}).encode(), 0))
        return ids

    async def enqueue_bulk(self, n: int) -> List[int]:
        payloads = [json.dumps({"n": i}).encode() for i in range(n)]
        return list(await self.queries.enqueue(["noop"] * n, payloads, [0] * n))

    # The per-worker cap, like the others' settings: max_concurrent_tasks, which must be
    # at least twice batch_size.  Its smallest value is 2, so "1 at a time" is at most 2.
    RUN_OPTIONS: ClassVar[Dict[int, Dict[str, int]]] = {
        1: {"max_concurrent_tasks": 2, "batch_size": 1},
        8: {"max_concurrent_tasks": 8, "batch_size": 4},
    }

    async def process(
        self, ids: Sequence[int], concurrency: int, *, entrypoint_limit: bool = False
    ) -> int:
        """``entrypoint_limit``: the entrypoint's concurrency_limit instead of the worker's cap."""
        seen: Counter[int] = collections.Counter()
        flight = Flight()
        conn = await asyncpg.connect(self.dsn)
        try:
            pgq = PgQueuer.from_asyncpg_connection(conn)
            limit = concurrency if entrypoint_limit else 0

            @pgq.entrypoint("noop", concurrency_limit=limit)
            async def noop(job: Any) -> None:
                seen[job.id] += 1
                await flight.hop()

            options = {} if entrypoint_limit else self.RUN_OPTIONS[concurrency]
            await pgq.run(mode=QueueExecutionMode.drain, **options)
        finally:
            await conn.close()
        check_handled(self.name, ids, seen)
        left = await self.admin.fetchval("SELECT count(*) FROM pgqueuer")
        good, total = await self.admin.fetchrow(
            "SELECT count(DISTINCT job_id), count(*) FROM pgqueuer_log WHERE status = 'successful'"
        )
        check_rows(self.name, len(ids), good, total + left)
        return flight.peak

    async def wakeup(self, samples: int) -> List[float]:
        started: Dict[int, float] = {}
        conn = await asyncpg.connect(self.dsn)
        pgq = PgQueuer.from_asyncpg_connection(conn)

        @pgq.entrypoint("wake")
        async def wake(job: Any) -> None:
            started[json.loads(job.payload)["k"]] = time.perf_counter()

        async def enqueue(k: int) -> None:
            await self.queries.enqueue("wake", json.dumps({"k": k}).encode(), 0)

        task = asyncio.ensure_future(pgq.run())
        try:
            return await sample_wakeups(enqueue, started, samples)
        finally:
            pgq.shutdown.set()
            await task
            await conn.close()


async def commit_latency(admin: asyncpg.Connection) -> float:
    """Median ms of 200 one-row INSERTs, each its own transaction: what a commit costs."""
    await admin.execute("CREATE TABLE bench_commit_probe (n integer)")
    try:
        spent = []
        for n in range(200):
            started = time.perf_counter()
            await admin.execute("INSERT INTO bench_commit_probe VALUES ($1)", n)
            spent.append(time.perf_counter() - started)
    finally:
        await admin.execute("DROP TABLE bench_commit_probe")
    return statistics.median(spent) * 1000


async def finish(name: str, step: Awaitable[int], n_jobs: int) -> int:
    """Await ``step``, a worker run; a worker that never finishes fails the run."""
    limit = max(120.0, n_jobs / 20)
    try:
        return await asyncio.wait_for(step, limit)
    except asyncio.TimeoutError:
        raise RuntimeError(f"{name}: the worker did not finish {n_jobs} jobs in {limit:.0f} s")


# --- one table ----------------------------------------------------------------------------


async def measure_table(
    dsn: str, n_jobs: int, rounds: int, libraries: List[Library], extras: int
) -> Dict[str, Any]:
    """One table: jobs/s per row and library (median of ``rounds``), wake-up p50.

    ``extras``: jobs for pgqueuer with its entrypoint ``concurrency_limit`` (0: skip).
    """
    admin = await asyncpg.connect(dsn)
    try:
        settings = {
            name: await admin.fetchval(f"SHOW {name}")
            for name in ("fsync", "synchronous_commit", "full_page_writes", "server_version")
        }
        print(
            "  server: PostgreSQL {server_version}, fsync={fsync}, "
            "synchronous_commit={synchronous_commit}, full_page_writes={full_page_writes}".format(
                **settings
            ),
            flush=True,
        )
        commit_ms = await commit_latency(admin)
        print(f"  one-row INSERT + commit: {commit_ms:.2f} ms (median of 200)", flush=True)
        for lib in libraries:
            await lib.setup(dsn, admin)
            for concurrency in (1, 8):  # warm-up, not timed: connections, caches
                await lib.clear()
                await lib.process(await lib.enqueue_bulk(min(n_jobs, 50)), concurrency)
        seconds: Dict[str, Dict[str, List[float]]] = {
            lib.name: {row: [] for row in ROWS} for lib in libraries
        }
        in_flight: Dict[str, Dict[str, int]] = {lib.name: {} for lib in libraries}
        through_the_pool: List[float] = []
        for r in range(rounds):
            # Row by row, the libraries one after the other (each has its own tables), in
            # an order that rotates: the cells of one row are measured close together.
            order = libraries[r % len(libraries) :] + libraries[: r % len(libraries)]
            for enqueue_row, process_row, concurrency in (
                ("enqueue_one", "process_1", 1),
                ("enqueue_bulk", "process_8", 8),
            ):
                queued: Dict[str, List[int]] = {}
                for lib in order:
                    await lib.clear()
                    started = time.perf_counter()
                    ids = await getattr(lib, enqueue_row)(n_jobs)
                    seconds[lib.name][enqueue_row].append(time.perf_counter() - started)
                    if len(ids) != n_jobs:
                        raise ExactlyOnceViolation(f"{lib.name}: {len(ids)} ids for {n_jobs}")
                    queued[lib.name] = ids
                for lib in order:
                    started = time.perf_counter()
                    peak = await finish(
                        lib.name, lib.process(queued[lib.name], concurrency), n_jobs
                    )
                    seconds[lib.name][process_row].append(time.perf_counter() - started)
                    in_flight[lib.name][process_row] = max(
                        peak, in_flight[lib.name].get(process_row, 0)
                    )
            recipe = libraries[0]
            assert isinstance(recipe, Recipe)
            await recipe.clear()
            started = time.perf_counter()
            ids = await recipe.enqueue_one_through_the_pool(n_jobs)
            through_the_pool.append(time.perf_counter() - started)
            if len(set(ids)) != n_jobs:
                raise ExactlyOnceViolation(f"recipe: {len(set(ids))} ids for {n_jobs}")
            for lib in libraries:
                times = seconds[lib.name]
                print(
                    f"  round {r + 1}/{rounds} {lib.name:>13}: "
                    + "  ".join(f"{row} {n_jobs / times[row][-1]:7,.0f}/s" for row in ROWS),
                    flush=True,
                )
        wakeups: Dict[str, float] = {}
        samples = WAKEUP_SAMPLES if rounds > 1 else 5
        for lib in libraries:
            await lib.clear()
            wakeups[lib.name] = statistics.median(await lib.wakeup(samples)) * 1000
        pgqueuer_limit: Dict[str, float] = {}
        for lib in libraries:
            if isinstance(lib, Pgqueuer) and extras:
                for concurrency in (1, 8):
                    await lib.clear()
                    ids = await lib.enqueue_bulk(extras)
                    started = time.perf_counter()
                    await lib.process(ids, concurrency, entrypoint_limit=True)
                    pgqueuer_limit[f"process_{concurrency}"] = extras / (
                        time.perf_counter() - started
                    )
                print(
                    f"  pgqueuer with entrypoint concurrency_limit=1 / 8 ({extras} jobs): "
                    + " / ".join(f"{v:,.0f}/s" for v in pgqueuer_limit.values()),
                    flush=True,
                )
        for lib in libraries:
            await lib.clear()
            await lib.close()
    finally:
        await admin.close()
    jobs_per_second = {
        name: {row: n_jobs / statistics.median(values) for row, values in rows.items()}
        for name, rows in seconds.items()
    }
    table: Dict[str, Any] = {
        "jobs": n_jobs,
        "rounds": rounds,
        "settings": settings,
        "jobs_per_second": jobs_per_second,
        "wakeup_p50_ms": wakeups,
        "commit_ms": commit_ms,
        "most_handlers_at_once": in_flight,
        "recipe_enqueue_one_through_the_pool": n_jobs / statistics.median(through_the_pool),
    }
    if pgqueuer_limit:
        table["pgqueuer_entrypoint_concurrency_limit"] = {
            "jobs": extras,
            "jobs_per_second": pgqueuer_limit,
        }
    return table


# --- main ---------------------------------------------------------------------------------


def print_table(label: str, table: Dict[str, Any], libraries: List[Library]) -> None:
    names = [lib.name for lib in libraries]
    print(f"\njobs/s, {label}:")
    print(f"{'':>24}" + "".join(f"{name:>15}" for name in names))
    for row in ROWS:
        cells = "".join(f"{table['jobs_per_second'][name][row]:>15,.0f}" for name in names)
        print(f"{ROW_TITLES[row]:>24}{cells}")
    cells = "".join(f"{table['wakeup_p50_ms'][name]:>12.2f} ms" for name in names)
    print(f"{'wake-up p50':>24}{cells}")
    print(
        f"{'(recipe through a pool)':>24}{table['recipe_enqueue_one_through_the_pool']:>15,.0f}"
        "  enqueue(pool, ...) one at a time: a pool acquire and reset per job"
    )
    most = table["most_handlers_at_once"]
    cells = "".join(
        f"{'{} / {}'.format(most[name]['process_1'], most[name]['process_8']):>15}"
        for name in names
    )
    print(f"{'most at once (1 / 8)':>24}{cells}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 (durable: 100) jobs, 1 round")
    parser.add_argument("--jobs", type=int, help="jobs per cell, fsync off (default 5,000)")
    parser.add_argument("--durable-jobs", type=int, help="jobs per cell, fsync on (default 5,000)")
    parser.add_argument("--rounds", type=int, help="rounds per table (default 3)")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()
    n_jobs = args.jobs or (300 if args.quick else 5_000)
    n_durable = args.durable_jobs or (100 if args.quick else 5_000)
    rounds = args.rounds or (1 if args.quick else 3)
    extras = 10 if args.quick else 50
    if min(n_jobs, n_durable, rounds) < 1:
        parser.error("--jobs, --durable-jobs and --rounds must be >= 1")
    logging.basicConfig(level=logging.WARNING)
    # procrastinate warns that the App is created in __main__ (its CLI could not import
    # it from there); this script never uses the CLI.
    logging.getLogger("procrastinate.blueprints").setLevel(logging.ERROR)

    peers: Dict[str, str] = {}
    libraries: List[Library] = [Recipe()]
    if procrastinate is not None:
        libraries.append(Procrastinate())
        peers["procrastinate"] = version("procrastinate")
    else:
        peers["procrastinate"] = f"unavailable: {PROCRASTINATE_MISSING}"
    if PgQueuer is not None:
        libraries.append(Pgqueuer())
        peers["pgqueuer"] = version("pgqueuer")
    else:
        peers["pgqueuer"] = f"unavailable: {PGQUEUER_MISSING}"
    print(", ".join(f"{name} {v}" for name, v in peers.items()))
    for lib in libraries:
        print(
            f"{lib.name}: bulk {lib.bulk_label}; 1 at a time {lib.process_1_label}; "
            f"8 at a time {lib.process_8_label}"
        )

    tables: Dict[str, Dict[str, Any]] = {}
    violation: Optional[str] = None
    started = time.perf_counter()
    runs: List[Tuple[str, Optional[Dict[str, str]], int]] = [
        ("no_sync", None, n_jobs),
        ("durable", DURABLE, n_durable),
    ]
    if os.environ.get(pg_cluster.DSN_ENV):  # an existing server, with its own settings
        runs = [("as_configured", None, n_jobs)]
    for label, settings, n in runs:
        # A throwaway server per table: the test defaults (fsync off...) or DURABLE.
        cluster = pg_cluster.ThrowawayPostgres(settings=settings)
        cluster.start()
        try:
            print(f"\n{label}: {n:,} no-op jobs per cell, median of {rounds}", flush=True)
            try:
                tables[label] = asyncio.run(
                    measure_table(cluster.dsn, n, rounds, libraries, extras)
                )
            except ExactlyOnceViolation as exc:
                violation = str(exc)
                break
        finally:
            cluster.stop()
    elapsed = time.perf_counter() - started

    results: List[Dict[str, Any]] = []
    ratios: Dict[str, float] = {}
    peer_names = [lib.name for lib in libraries[1:]]
    for label, table in tables.items():
        print_table(f"{label}, {table['jobs']:,} jobs", table, libraries)
        speed = table["jobs_per_second"]
        for lib in libraries:
            for row in ROWS:
                results.append(
                    {
                        "name": f"{lib.name}: {ROW_TITLES[row]} ({label})",
                        "value": speed[lib.name][row],
                        "unit": "jobs per second",
                    }
                )
            results.append(
                {
                    "name": f"{lib.name}: wake-up p50 ({label})",
                    "value": table["wakeup_p50_ms"][lib.name],
                    "unit": "ms",
                }
            )
        for row in ROWS:
            for peer in peer_names:
                ratios[f"recipe_over_{peer}_{row}_{label}"] = (
                    speed["recipe"][row] / speed[peer][row]
                )
            if peer_names:
                best = max(speed[peer][row] for peer in peer_names)
                ratios[f"recipe_over_faster_peer_{row}_{label}"] = speed["recipe"][row] / best
        if "pgqueuer" in peer_names:
            ratios[f"recipe_through_the_pool_over_pgqueuer_enqueue_one_{label}"] = (
                table["recipe_enqueue_one_through_the_pool"] / speed["pgqueuer"]["enqueue_one"]
            )
        ratios[f"recipe_bulk_over_one_at_a_time_enqueue_{label}"] = (
            speed["recipe"]["enqueue_bulk"] / speed["recipe"]["enqueue_one"]
        )
        ratios[f"recipe_8_over_1_at_a_time_process_{label}"] = (
            speed["recipe"]["process_8"] / speed["recipe"]["process_1"]
        )
        for peer in peer_names:
            ratios[f"recipe_wakeup_p50_over_{peer}_{label}"] = (
                table["wakeup_p50_ms"]["recipe"] / table["wakeup_p50_ms"][peer]
            )
    if ratios:
        print("\nratios of jobs/s (above 1: the first named is faster); wake-up: the recipe's")
        print("p50 over the peer's (below 1: the recipe wakes faster)")
        print_ratios(ratios, width=48)
    for label, table in tables.items():
        most = table["most_handlers_at_once"]["recipe"]
        if most.get("process_1", 0) > 1 or most.get("process_8", 0) > 8:
            print(
                f"\nWARNING ({label}): the recipe ran {most['process_1']} handlers at once with "
                f"one at a time, {most['process_8']} with 8"
            )
    if violation is not None:
        print("\n" + "!" * 79)
        print(f"EXACTLY-ONCE VIOLATED: {violation}")
        print("!" * 79)
    else:
        print("\nexactly-once: every job id handled exactly once, and recorded so, in every run")
    print(f"total {elapsed:.0f} s")

    data = {
        "benchmark": "job queue: recipe vs procrastinate vs pgqueuer",
        "python": platform.python_version(),
        "description": (
            "Jobs per second for no-op jobs on one throwaway PostgreSQL, each library used "
            "as its documentation shows: enqueue one at a time, enqueue in bulk, process "
            "1 and 8 at a time; wake-up latency p50 (enqueue to handler start, idle "
            "worker). Enqueueing one at a time runs on one connection for the recipe "
            "(as its chapter's example) and pgqueuer, through its pool for procrastinate. "
            "Two tables: fsync/synchronous_commit/full_page_writes off, then on."
        ),
        "cpus": os.cpu_count() or 1,
        "load_average_1min": os.getloadavg()[0],
        "rounds": rounds,
        "versions": {"asyncpg": asyncpg.__version__, "psycopg": version("psycopg"), **peers},
        "recipe_sha256": hashlib.sha256(Path(jq.__file__).read_bytes()).hexdigest()[:12],
        "how": {
            lib.name: {
                "enqueue_bulk": lib.bulk_label,
                "process_1": lib.process_1_label,
                "process_8": lib.process_8_label,
            }
            for lib in libraries
        },
        "per_job": PER_JOB,
        "tables": tables,
        "exactly_once": ("violated: " + violation) if violation else "held in every run",
        "elapsed_seconds": elapsed,
        "results": results,
        "ratios": ratios,
    }
    write_results(args.json, data)
    return 1 if violation else 0


if __name__ == "__main__":
    sys.exit(main())
