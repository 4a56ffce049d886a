"""Tests of recipes/job_queue.py against a real PostgreSQL, on the real clock.

The multi-process tests start worker processes (``sys.executable`` running a
small script) that share one jobs table, and check through an ``executions``
table that every job is started once and finished once; when a worker is killed
with SIGKILL in the middle of a job, that job is started once more, by another
worker, and still finished once.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Dict, Iterator, List, Optional, Type

import asyncpg
import pytest
import pytest_asyncio

from recipes.job_queue import (
    Job,
    Worker,
    claim,
    complete,
    counts,
    enqueue,
    enqueue_many,
    extend_lease,
    fail,
    get_job,
    install,
    release,
    uninstall,
)

ROOT = Path(__file__).resolve().parent.parent

WORKER_SCRIPT = textwrap.dedent(
    """
    import asyncio, signal, sys

    sys.path.insert(0, sys.argv[1])
    import asyncpg
    from recipes.job_queue import Worker

    dsn, table, name, mode = sys.argv[2:6]
    lease = float(sys.argv[6])
    record = f"INSERT INTO {table}_executions (job_id, worker, event) VALUES ($1, $2, $3)"


    async def main():
        async with asyncpg.create_pool(dsn, min_size=1, max_size=4) as pool:

            async def handler(job):
                async with pool.acquire(timeout=10) as conn:
                    await conn.execute(record, job.id, name, "started")
                    if job.payload.get("block") and job.attempts == 1:
                        await asyncio.sleep(3600)  # this worker will be killed here
                    if mode == "serve":
                        await conn.execute(record, job.id, name, "finished")
                return {"worker": name, "n": job.payload.get("n")}

            worker = Worker(
                pool, handler, table=table, worker_id=name, lease=lease, poll_interval=0.5
            )
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, worker.stop)
            done = await worker.run(burst=(mode == "burst"))
            print("done", done, flush=True)


    asyncio.run(main())
    """
)


@pytest.fixture
def table() -> str:
    return f"jobs_{uuid.uuid4().hex[:12]}"


@pytest_asyncio.fixture
async def pool(postgres_dsn: str, table: str) -> AsyncIterator[asyncpg.Pool]:
    async with asyncpg.create_pool(postgres_dsn, min_size=1, max_size=6) as p:
        await install(p, table=table)
        await p.execute(
            f"CREATE TABLE {table}_executions (job_id bigint, worker text, event text,"
            " at timestamptz DEFAULT clock_timestamp())"
        )
        try:
            yield p
        finally:
            await p.execute(f"DROP TABLE IF EXISTS {table}_executions")
            await uninstall(p, table=table)


class WorkerProcesses:
    """Start worker scripts as subprocesses; kill leftovers at the end."""

    def __init__(self, tmp_path: Path, dsn: str, table: str) -> None:
        self.script = tmp_path / "worker.py"
        self.script.write_text(WORKER_SCRIPT, encoding="utf-8")
        self.tmp_path = tmp_path
        self.dsn = dsn
        self.table = table
        self.processes: Dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, mode: str, lease: float = 30.0) -> subprocess.Popen[bytes]:
        with open(self.tmp_path / f"{name}.log", "wb") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    str(self.script),
                    str(ROOT),
                    self.dsn,
                    self.table,
                    name,
                    mode,
                    str(lease),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.processes[name] = process
        return process

    def log(self, name: str) -> str:
        return (self.tmp_path / f"{name}.log").read_text(encoding="utf-8", errors="replace")

    def logs(self) -> str:
        return "\n".join(f"--- {name} ---\n{self.log(name)}" for name in self.processes)

    async def wait(self, name: str, timeout: float) -> int:
        process = self.processes[name]
        deadline = asyncio.get_running_loop().time() + timeout
        while process.poll() is None:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"worker {name} did not exit in {timeout} s\n{self.logs()}")
            await asyncio.sleep(0.05)
        return process.returncode

    def kill_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
            process.wait()


@pytest.fixture
def workers(tmp_path: Path, postgres_dsn: str, table: str) -> Iterator[WorkerProcesses]:
    manager = WorkerProcesses(tmp_path, postgres_dsn, table)
    try:
        yield manager
    finally:
        manager.kill_all()


def hooked_connection_class(
    fragment: str, hook: Callable[[], Awaitable[None]], *, before: bool = False
) -> Type[asyncpg.Connection]:
    """A real asyncpg connection that awaits ``hook()`` around each query containing
    ``fragment``: after it has returned, before the caller sees the answer (or, with
    ``before``, before the query is sent).

    "After" is the moment a reply is still on the wire: the server has executed (and
    committed) the statement, the caller has not received the result yet.  A test can
    cancel the caller there, deterministically.
    """

    class Hooked(asyncpg.Connection):  # type: ignore[misc]
        async def fetch(self, query: str, *args: Any, **kwargs: Any) -> Any:
            if before and fragment in query:
                await hook()
            rows = await super().fetch(query, *args, **kwargs)
            if not before and fragment in query:
                await hook()
            return rows

        async def fetchrow(self, query: str, *args: Any, **kwargs: Any) -> Any:
            if before and fragment in query:
                await hook()
            row = await super().fetchrow(query, *args, **kwargs)
            if not before and fragment in query:
                await hook()
            return row

        async def fetchval(self, query: str, *args: Any, **kwargs: Any) -> Any:
            if before and fragment in query:
                await hook()
            value = await super().fetchval(query, *args, **kwargs)
            if not before and fragment in query:
                await hook()
            return value

    return Hooked


async def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> None:
    """Poll the async ``predicate`` until it is true; fail with ``what`` after ``timeout`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


# --- several processes ---------------------------------------------------------


@pytest.mark.asyncio
async def test_worker_processes_run_1000_jobs_exactly_once(
    pool: asyncpg.Pool, table: str, workers: WorkerProcesses
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        ids = [await enqueue(conn, {"n": n}, table=table) for n in range(1000)]
    for name in ("w1", "w2", "w3"):
        workers.start(name, "burst")
    for name in ("w1", "w2", "w3"):
        assert await workers.wait(name, timeout=60) == 0, workers.logs()

    assert await counts(pool, table=table) == {
        "queued": 0,
        "running": 0,
        "done": 1000,
        "failed": 0,
    }
    # Every start of a handler left a row: a job run twice would show up here.
    runs = await pool.fetch(
        f"SELECT job_id, count(*) AS n, min(worker) AS worker FROM {table}_executions"
        " GROUP BY job_id"
    )
    assert sorted(r["job_id"] for r in runs) == sorted(ids)
    assert [r["job_id"] for r in runs if r["n"] != 1] == []  # nobody ran a job twice
    # Each job's stored result names the worker that ran it, and its payload came through.
    by_job = {r["job_id"]: r["worker"] for r in runs}
    rows = await pool.fetch(f"SELECT id, attempts, result::text AS result FROM {table}")
    results = {r["id"]: (r["attempts"], json.loads(r["result"])) for r in rows}
    assert {job_id: results[job_id][1]["worker"] for job_id in ids} == by_job
    assert [results[job_id][1]["n"] for job_id in ids] == list(range(1000))
    assert {attempts for attempts, _ in results.values()} == {1}
    info = await get_job(pool, ids[500], table=table)
    assert info is not None and info.result == {"worker": by_job[ids[500]], "n": 500}
    assert len(set(by_job.values())) >= 2, "the work was not shared between processes"


@pytest.mark.asyncio
async def test_job_of_a_killed_worker_is_finished_by_another(
    pool: asyncpg.Pool, table: str, workers: WorkerProcesses
) -> None:
    stuck = await enqueue(pool, {"block": True}, table=table)
    others = [await enqueue(pool, {"n": n}, table=table) for n in range(20)]
    victim = workers.start("victim", "serve", lease=1.0)

    async def victim_started() -> bool:
        return bool(
            await pool.fetchval(
                f"SELECT count(*) FROM {table}_executions WHERE job_id = $1 AND worker = 'victim'",
                stuck,
            )
        )

    await wait_until(victim_started, 30, "the victim to start the blocking job")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    info = await get_job(pool, stuck, table=table)
    assert info is not None and info.status == "running" and info.attempts == 1

    rescuer = workers.start("rescuer", "serve", lease=1.0)

    async def all_done() -> bool:
        return (await counts(pool, table=table))["done"] == 21

    await wait_until(all_done, 30, "every job to be done\n" + workers.logs())
    rescuer.send_signal(signal.SIGTERM)  # graceful stop
    assert await workers.wait("rescuer", timeout=10) == 0, workers.logs()
    assert "done 21" in workers.log("rescuer")

    info = await get_job(pool, stuck, table=table)
    assert info is not None
    assert (info.status, info.attempts, info.result["worker"]) == ("done", 2, "rescuer")
    events = await pool.fetch(
        f"SELECT job_id, worker, event FROM {table}_executions ORDER BY at, job_id"
    )
    stuck_events = [(r["worker"], r["event"]) for r in events if r["job_id"] == stuck]
    assert stuck_events == [("victim", "started"), ("rescuer", "started"), ("rescuer", "finished")]
    finished = [r["job_id"] for r in events if r["event"] == "finished"]
    assert sorted(finished) == sorted([stuck, *others])  # nothing lost, nothing twice


# --- one process: claims, leases, retries, stops ----------------------------------


@pytest.mark.asyncio
async def test_concurrent_claims_never_share_a_job(pool: asyncpg.Pool, table: str) -> None:
    for n in range(10):
        await enqueue(pool, {"n": n}, table=table)
    claimed = await asyncio.gather(
        *(claim(pool, worker_id=f"w{i}", table=table) for i in range(30))
    )
    jobs = [job for job in claimed if job is not None]
    assert sorted(job.id for job in jobs) == list(range(1, 11))
    assert await counts(pool, table=table) == {"queued": 0, "running": 10, "done": 0, "failed": 0}


@pytest.mark.asyncio
async def test_queues_are_separate(pool: asyncpg.Pool, table: str) -> None:
    await enqueue(pool, {"n": 1}, queue="email", table=table)
    assert await claim(pool, worker_id="w", queue="thumbnails", table=table) is None
    job = await claim(pool, worker_id="w", queue="email", table=table)
    assert job is not None and job.queue == "email"


@pytest.mark.asyncio
async def test_delayed_job_waits(pool: asyncpg.Pool, table: str) -> None:
    await enqueue(pool, {"n": 1}, delay=0.5, table=table)
    assert await claim(pool, worker_id="w", table=table) is None
    await asyncio.sleep(0.6)
    assert await claim(pool, worker_id="w", table=table) is not None


@pytest.mark.asyncio
async def test_stale_worker_cannot_touch_a_reclaimed_job(pool: asyncpg.Pool, table: str) -> None:
    await enqueue(pool, {"n": 1}, table=table)
    old = await claim(pool, worker_id="old", lease=0.2, table=table)
    assert old is not None
    await asyncio.sleep(0.3)
    new = await claim(pool, worker_id="new", table=table)
    assert new is not None and new.attempts == 2
    assert await extend_lease(pool, old, table=table) is False
    assert await complete(pool, old, "stale", table=table) is False
    assert await fail(pool, old, "stale", table=table) is None
    assert await release(pool, old, table=table) is False
    assert await complete(pool, new, "fresh", table=table) is True
    info = await get_job(pool, new.id, table=table)
    assert info is not None and (info.status, info.result) == ("done", "fresh")


@pytest.mark.asyncio
async def test_worker_that_dies_on_the_last_attempt_fails_the_job(
    pool: asyncpg.Pool, table: str
) -> None:
    job_id = await enqueue(pool, {"n": 1}, max_attempts=1, table=table)
    assert await claim(pool, worker_id="doomed", lease=0.2, table=table) is not None
    await asyncio.sleep(0.3)
    assert await claim(pool, worker_id="next", table=table) is None
    info = await get_job(pool, job_id, table=table)
    assert info is not None and info.status == "failed"
    assert info.last_error is not None and "doomed" in info.last_error


@pytest.mark.asyncio
async def test_failing_handler_is_retried_then_failed(pool: asyncpg.Pool, table: str) -> None:
    calls: List[int] = []

    async def always_broken(job: Job) -> None:
        calls.append(job.attempts)
        raise KeyError(f"missing {job.payload['key']}")

    job_id = await enqueue(pool, {"key": "x"}, max_attempts=3, table=table)
    worker = Worker(pool, always_broken, table=table, retry_delay=0.05, poll_interval=0.5)
    task = asyncio.ensure_future(worker.run())

    async def failed() -> bool:
        info = await get_job(pool, job_id, table=table)
        return info is not None and info.status == "failed"

    await wait_until(failed, 15, "the job to fail for good")
    worker.stop()
    assert await asyncio.wait_for(task, 10) == 1
    assert calls == [1, 2, 3]
    info = await get_job(pool, job_id, table=table)
    assert info is not None and info.last_error == "KeyError: 'missing x'"


@pytest.mark.asyncio
async def test_result_that_is_not_json_fails_the_attempt(pool: asyncpg.Pool, table: str) -> None:
    async def returns_a_set(job: Job) -> Any:
        return {1, 2}

    job_id = await enqueue(pool, None, max_attempts=1, table=table)
    assert await Worker(pool, returns_a_set, table=table).run(burst=True) == 1
    info = await get_job(pool, job_id, table=table)
    assert info is not None and info.status == "failed"
    assert info.last_error is not None and info.last_error.startswith(
        "TypeError: result is not JSON"
    )


@pytest.mark.asyncio
async def test_plain_function_handler_fails_the_attempt(pool: asyncpg.Pool, table: str) -> None:
    def not_async(job: Job) -> str:
        return "oops"

    job_id = await enqueue(pool, None, max_attempts=1, table=table)
    assert await Worker(pool, not_async, table=table).run(burst=True) == 1  # type: ignore[arg-type]
    info = await get_job(pool, job_id, table=table)
    assert info is not None and info.status == "failed"
    assert info.last_error is not None and info.last_error.startswith("TypeError")


@pytest.mark.asyncio
async def test_stop_lets_the_current_job_finish(pool: asyncpg.Pool, table: str) -> None:
    started = asyncio.Event()

    async def slow(job: Job) -> str:
        started.set()
        await asyncio.sleep(0.3)
        return "finished"

    job_id = await enqueue(pool, None, table=table)
    await enqueue(pool, None, table=table)  # must stay queued
    worker = Worker(pool, slow, table=table)
    task = asyncio.ensure_future(worker.run())
    await asyncio.wait_for(started.wait(), 10)
    worker.stop()
    assert await asyncio.wait_for(task, 10) == 1
    info = await get_job(pool, job_id, table=table)
    assert info is not None and info.result == "finished"
    assert await counts(pool, table=table) == {"queued": 1, "running": 0, "done": 1, "failed": 0}


@pytest.mark.asyncio
async def test_cancelling_the_worker_releases_its_job(pool: asyncpg.Pool, table: str) -> None:
    started = asyncio.Event()
    outcome: List[str] = []

    async def endless(job: Job) -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            outcome.append("handler cancelled")
            raise

    job_id = await enqueue(pool, None, table=table)
    task = asyncio.ensure_future(Worker(pool, endless, table=table).run())
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert outcome == ["handler cancelled"]
    info = await get_job(pool, job_id, table=table)
    assert info is not None and (info.status, info.attempts) == ("queued", 0)
    assert (
        await pool.fetchval(f"SELECT lease_expires_at FROM {table} WHERE id = $1", job_id) is None
    )


@pytest.mark.asyncio
async def test_stop_then_grace_deadline_releases_a_long_job(
    pool: asyncpg.Pool, table: str
) -> None:
    started = asyncio.Event()

    async def endless(job: Job) -> None:
        started.set()
        await asyncio.sleep(3600)

    job_id = await enqueue(pool, None, table=table)
    worker = Worker(pool, endless, table=table)
    task = asyncio.ensure_future(worker.run())
    await asyncio.wait_for(started.wait(), 10)
    worker.stop()
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(task, 0.2)
    info = await get_job(pool, job_id, table=table)
    assert info is not None and info.status == "queued"


@pytest.mark.asyncio
async def test_long_job_keeps_its_lease(pool: asyncpg.Pool, table: str) -> None:
    async def long(job: Job) -> str:
        await asyncio.sleep(1.2)  # far longer than the lease: renewals keep it
        return "kept"

    job_id = await enqueue(pool, None, table=table)
    worker = Worker(pool, long, table=table, lease=0.5)
    task = asyncio.ensure_future(worker.run(burst=True))
    await asyncio.sleep(0.8)  # past the first lease
    assert await claim(pool, worker_id="thief", table=table) is None  # lease still valid
    assert await asyncio.wait_for(task, 10) == 1
    info = await get_job(pool, job_id, table=table)
    assert info is not None and (info.status, info.attempts, info.result) == ("done", 1, "kept")


@pytest.mark.asyncio
async def test_handler_is_cancelled_when_its_lease_is_lost(pool: asyncpg.Pool, table: str) -> None:
    started = asyncio.Event()
    outcome: List[str] = []

    async def endless(job: Job) -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise

    job_id = await enqueue(pool, None, table=table)
    worker = Worker(pool, endless, table=table, lease=0.6, poll_interval=0.5)
    task = asyncio.ensure_future(worker.run())
    await asyncio.wait_for(started.wait(), 10)
    # Another worker steals the job (as if this one had been paused past its lease).
    await pool.execute(f"UPDATE {table} SET lease_expires_at = now() WHERE id = $1", job_id)
    thief = await claim(pool, worker_id="thief", table=table)
    assert thief is not None and thief.attempts == 2

    async def handler_cancelled() -> bool:
        return outcome == ["cancelled"]

    await wait_until(handler_cancelled, 10, "the handler to be cancelled")
    assert await complete(pool, thief, "thief's", table=table)
    worker.stop()
    assert await asyncio.wait_for(task, 10) == 0
    info = await get_job(pool, job_id, table=table)
    assert info is not None and info.result == "thief's"


@pytest.mark.asyncio
async def test_notification_wakes_an_idle_worker(pool: asyncpg.Pool, table: str) -> None:
    async def echo(job: Job) -> Any:
        return job.payload

    worker = Worker(pool, echo, table=table, poll_interval=60)
    task = asyncio.ensure_future(worker.run())
    try:
        await asyncio.sleep(0.3)  # the worker found nothing and sleeps for up to 60 s
        job_id = await enqueue(pool, {"wake": "up"}, table=table)

        async def done() -> bool:
            info = await get_job(pool, job_id, table=table)
            return info is not None and info.status == "done"

        await wait_until(done, 10, "the notification to wake the worker")
    finally:
        worker.stop()
        await asyncio.wait_for(task, 10)


@pytest.mark.asyncio
async def test_worker_listens_again_after_losing_its_connection(
    postgres_dsn: str, pool: asyncpg.Pool, table: str
) -> None:
    async def echo(job: Job) -> Any:
        return job.payload

    pids: List[int] = []  # the server processes of the worker's pool, in order of connection

    async def record_pid(conn: asyncpg.Connection) -> None:
        pids.append(conn.get_server_pid())

    async def waiting_on(pid: int) -> bool:
        # The worker's connection rests idle after its last query, which asks when the next
        # job is due; it sent LISTEN on that connection before.
        return bool(
            await pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE pid = $1 AND state = 'idle' AND query LIKE '%EXTRACT(EPOCH FROM least(%'",
                pid,
            )
        )

    async with asyncpg.create_pool(postgres_dsn, min_size=1, max_size=2, init=record_pid) as own:
        worker = Worker(own, echo, table=table, poll_interval=60)
        task = asyncio.ensure_future(worker.run())
        try:
            await wait_until(lambda: waiting_on(pids[0]), 10, "the worker to listen")
            first = pids[0]
            assert await pool.fetchval("SELECT pg_terminate_backend($1)", first)

            async def listening_again() -> bool:
                for pid in pids[1:]:  # the pool connects again, maybe more than once
                    if await waiting_on(pid):
                        return True
                return False

            await wait_until(listening_again, 10, "the worker to listen on a new connection")
            job_id = await enqueue(pool, {"after": "reconnect"}, table=table)

            async def done() -> bool:
                info = await get_job(pool, job_id, table=table)
                return info is not None and info.status == "done"

            await wait_until(done, 10, "the notification on the new connection")
        finally:
            worker.stop()
            await asyncio.wait_for(task, 10)


@pytest.mark.asyncio
async def test_polling_finds_jobs_that_sent_no_notification(
    pool: asyncpg.Pool, table: str
) -> None:
    async def echo(job: Job) -> Any:
        return job.payload

    worker = Worker(pool, echo, table=table, poll_interval=0.3)
    task = asyncio.ensure_future(worker.run())
    try:
        await asyncio.sleep(0.1)
        job_id = await pool.fetchval(
            f'INSERT INTO {table} (payload) VALUES (\'{{"by": "hand"}}\') RETURNING id'
        )

        async def done() -> bool:
            info = await get_job(pool, job_id, table=table)
            return info is not None and info.status == "done"

        await wait_until(done, 10, "the poll to find the job")
    finally:
        worker.stop()
        await asyncio.wait_for(task, 10)


@pytest.mark.asyncio
async def test_worker_survives_a_missing_table(postgres_dsn: str) -> None:
    table = f"jobs_{uuid.uuid4().hex[:12]}"

    async def echo(job: Job) -> Any:
        return job.payload

    async with asyncpg.create_pool(postgres_dsn, min_size=1, max_size=4) as p:
        worker = Worker(p, echo, table=table, poll_interval=0.2)
        task = asyncio.ensure_future(worker.run())
        try:
            await asyncio.sleep(0.3)  # claims fail with UndefinedTableError: logged, retried
            assert not task.done()
            await install(p, table=table)
            job_id = await enqueue(p, {"late": True}, table=table)

            async def done() -> bool:
                info = await get_job(p, job_id, table=table)
                return info is not None and info.status == "done"

            await wait_until(done, 10, "the worker to recover")
        finally:
            worker.stop()
            await asyncio.wait_for(task, 10)
            await uninstall(p, table=table)


# --- bad input ----------------------------------------------------------------


@pytest.mark.asyncio
async def test_bad_input_is_refused_before_anything_is_written(
    pool: asyncpg.Pool, table: str
) -> None:
    async def noop(job: Job) -> None:
        return None

    bad_calls: List[Any] = [
        (lambda: enqueue(pool, {"x": object()}, table=table), TypeError, "not JSON serialisable"),
        (lambda: enqueue(pool, float("nan"), table=table), ValueError, "not JSON serialisable"),
        (lambda: enqueue(pool, {}, queue="", table=table), ValueError, "queue must be"),
        (lambda: enqueue(pool, {}, max_attempts=0, table=table), ValueError, "max_attempts"),
        (lambda: enqueue(pool, {}, max_attempts=True, table=table), ValueError, "max_attempts"),
        (lambda: enqueue(pool, {}, delay=-1, table=table), ValueError, "delay must be"),
        (lambda: enqueue(pool, {}, table="Jobs"), ValueError, "lowercase SQL name"),
        (lambda: enqueue(pool, {}, table="x; DROP TABLE y"), ValueError, "lowercase SQL name"),
        (lambda: install(pool, table=""), ValueError, "lowercase SQL name"),
        (lambda: claim(pool, worker_id="", table=table), ValueError, "worker_id"),
        (lambda: claim(pool, worker_id="w", lease=0, table=table), ValueError, "lease must be"),
    ]
    for call, exc_type, message in bad_calls:
        with pytest.raises(exc_type, match=message):
            await call()
    assert await counts(pool, table=table) == {"queued": 0, "running": 0, "done": 0, "failed": 0}

    fake = Job(id=1, queue="default", payload=None, attempts=1, max_attempts=3)
    with pytest.raises(TypeError, match="result is not JSON"):
        await complete(pool, fake, {1, 2}, table=table)
    with pytest.raises(TypeError, match="error must be a str"):
        await fail(pool, fake, ValueError("x"), table=table)  # type: ignore[arg-type]

    with pytest.raises(TypeError, match=r"pool must be an asyncpg\.Pool"):
        Worker(object(), noop)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lease must be a positive number"):
        Worker(pool, noop, lease=-1)
    with pytest.raises(ValueError, match="poll_interval"):
        Worker(pool, noop, poll_interval=0)
    with pytest.raises(ValueError, match="lowercase SQL name"):
        Worker(pool, noop, table="my-jobs")
    with pytest.raises(TypeError, match="handler must be"):
        Worker(pool, "not callable")  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_worker_needs_two_connections(postgres_dsn: str) -> None:
    async def noop(job: Job) -> None:
        return None

    async with asyncpg.create_pool(postgres_dsn, min_size=1, max_size=1) as p:
        with pytest.raises(ValueError, match="max_size >= 2"):
            Worker(p, noop)


@pytest.mark.asyncio
async def test_worker_cannot_run_twice_at_once(pool: asyncpg.Pool, table: str) -> None:
    async def noop(job: Job) -> None:
        return None

    worker = Worker(pool, noop, table=table, poll_interval=0.2)
    task = asyncio.ensure_future(worker.run())
    try:
        await asyncio.sleep(0.05)
        with pytest.raises(RuntimeError, match="already running"):
            await worker.run()
    finally:
        worker.stop()
        await asyncio.wait_for(task, 10)


@pytest.mark.asyncio
async def test_stop_before_run_returns_at_once(pool: asyncpg.Pool, table: str) -> None:
    async def noop(job: Job) -> None:
        return None

    await enqueue(pool, None, table=table)
    worker = Worker(pool, noop, table=table)
    worker.stop()
    assert await asyncio.wait_for(worker.run(), 10) == 0
    assert (await counts(pool, table=table))["queued"] == 1
    assert await asyncio.wait_for(worker.run(burst=True), 10) == 1  # the stop was used up


# --- regressions: pool sharing, back-off arithmetic, hard stops ---------------------


@pytest.mark.asyncio
async def test_lease_is_renewed_while_the_handler_holds_the_pools_last_connection(
    postgres_dsn: str, pool: asyncpg.Pool, table: str
) -> None:
    # The smallest pool a worker accepts: the worker listens on one connection, and the
    # handler takes the other for three leases.  The renewals must still get through.
    holding = asyncio.Event()
    async with asyncpg.create_pool(postgres_dsn, min_size=1, max_size=2) as small:

        async def hog(job: Job) -> str:
            async with small.acquire(timeout=10) as conn:
                holding.set()
                await conn.execute("SELECT pg_sleep(1.5)")
            return "kept"

        job_id = await enqueue(pool, None, table=table)
        worker = Worker(small, hog, table=table, lease=0.5, poll_interval=0.2)
        task = asyncio.ensure_future(worker.run())
        try:
            await asyncio.wait_for(holding.wait(), 10)
            stolen = []
            for _ in range(10):  # one second: two leases after the first renewal was due
                await asyncio.sleep(0.1)
                thief = await claim(pool, worker_id="thief", table=table)
                if thief is not None:
                    stolen.append(thief.attempts)
            assert stolen == [], "another worker took the job while its handler was running"

            async def done() -> bool:
                info = await get_job(pool, job_id, table=table)
                return info is not None and info.status == "done"

            await wait_until(done, 10, "the job to be done")
        finally:
            worker.stop()
            assert await asyncio.wait_for(task, 10) == 1
    info = await get_job(pool, job_id, table=table)
    assert info is not None and (info.status, info.attempts, info.result) == ("done", 1, "kept")


@pytest.mark.asyncio
async def test_backoff_does_not_overflow_after_a_thousand_attempts(
    pool: asyncpg.Pool, table: str
) -> None:
    calls: List[Any] = []

    async def always_broken(job: Job) -> None:
        calls.append((job.id, job.attempts))
        raise RuntimeError("still broken")

    # retry_delay * 2 ** (attempts - 1) no longer fits a float from attempt 1,025 on.
    many = await enqueue(pool, None, max_attempts=1030, table=table)
    top = await enqueue(pool, None, max_attempts=2**31 - 1, table=table)  # the column's limit
    await pool.execute(f"UPDATE {table} SET attempts = 1027 WHERE id = $1", many)
    await pool.execute(f"UPDATE {table} SET attempts = max_attempts - 1 WHERE id = $1", top)
    worker = Worker(
        pool, always_broken, table=table, retry_delay=0.01, max_retry_delay=0.05, poll_interval=0.2
    )
    task = asyncio.ensure_future(worker.run())

    async def both_failed() -> bool:
        if task.done():  # a worker that died shows its error here
            raise AssertionError(f"the worker died: {task.result()!r}")
        return (await counts(pool, table=table))["failed"] == 2

    try:
        await wait_until(both_failed, 15, "both jobs to fail for good")
    finally:
        worker.stop()
        finished = await asyncio.wait_for(task, 10)
    assert finished == 2
    assert sorted(calls) == [(many, 1028), (many, 1029), (many, 1030), (top, 2**31 - 1)]
    for job_id in (many, top):
        info = await get_job(pool, job_id, table=table)
        assert info is not None and (info.status, info.last_error) == (
            "failed",
            "RuntimeError: still broken",
        )


@pytest.mark.asyncio
async def test_numbers_the_database_cannot_hold_are_refused(
    pool: asyncpg.Pool, table: str
) -> None:
    async def noop(job: Job) -> None:
        return None

    too_big: List[Any] = [
        (lambda: enqueue(pool, {}, max_attempts=2**31, table=table), "max_attempts"),
        (lambda: enqueue(pool, {}, max_attempts=None, table=table), "max_attempts"),
        (lambda: enqueue(pool, {}, delay=float("inf"), table=table), "delay must be"),
        (lambda: enqueue(pool, {}, delay=1e12, table=table), "delay must be"),
        (lambda: claim(pool, worker_id="w", lease=float("inf"), table=table), "lease must be"),
        (lambda: claim(pool, worker_id="w", lease=1e12, table=table), "lease must be"),
    ]
    for call, message in too_big:
        with pytest.raises(ValueError, match=message):
            await call()
    assert await counts(pool, table=table) == {"queued": 0, "running": 0, "done": 0, "failed": 0}
    fake = Job(id=1, queue="default", payload=None, attempts=1, max_attempts=3)
    for delay in (float("inf"), float("nan"), 1e12):
        with pytest.raises(ValueError, match="retry_delay must be"):
            await fail(pool, fake, "x", retry_delay=delay, table=table)
    for name in ("lease", "poll_interval", "retry_delay", "max_retry_delay", "timeout"):
        for value in (float("inf"), float("nan"), 1e12):
            with pytest.raises(ValueError, match=f"{name} must be a positive number"):
                Worker(pool, noop, table=table, **{name: value})


@pytest.mark.asyncio
async def test_hard_stop_while_the_claim_is_on_the_wire_releases_the_job(
    postgres_dsn: str, pool: asyncpg.Pool, table: str
) -> None:
    claimed = asyncio.Event()
    reply = asyncio.Event()

    async def hold_the_reply() -> None:
        claimed.set()
        await reply.wait()

    calls: List[int] = []

    async def record(job: Job) -> str:
        calls.append(job.attempts)
        return "ran"

    job_id = await enqueue(pool, None, max_attempts=1, table=table)
    hooked = hooked_connection_class("FOR UPDATE SKIP LOCKED", hold_the_reply)
    async with asyncpg.create_pool(
        postgres_dsn, min_size=1, max_size=3, connection_class=hooked
    ) as slow:
        task = asyncio.ensure_future(Worker(slow, record, table=table).run())
        await asyncio.wait_for(claimed.wait(), 10)
        # The claim has committed: the job is running, its only attempt taken.
        info = await get_job(pool, job_id, table=table)
        assert info is not None and (info.status, info.attempts) == ("running", 1)
        task.cancel()  # the hard stop lands before the worker has seen the reply
        reply.set()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
    assert calls == []
    info = await get_job(pool, job_id, table=table)
    assert info is not None and (info.status, info.attempts) == ("queued", 0)
    # The job was put back whole: its one attempt is still there to be used.
    assert await Worker(pool, record, table=table).run(burst=True) == 1
    info = await get_job(pool, job_id, table=table)
    assert info is not None and (info.status, info.attempts, info.result) == ("done", 1, "ran")
    assert calls == [1]


@pytest.mark.asyncio
async def test_second_cancel_does_not_cut_the_release_short(
    postgres_dsn: str, pool: asyncpg.Pool, table: str
) -> None:
    started = asyncio.Event()
    releasing = asyncio.Event()
    proceed = asyncio.Event()

    async def hold_the_release() -> None:
        releasing.set()
        await proceed.wait()

    async def endless(job: Job) -> None:
        started.set()
        await asyncio.sleep(3600)

    job_id = await enqueue(pool, None, table=table)
    hooked = hooked_connection_class("attempts = attempts - 1", hold_the_release)
    async with asyncpg.create_pool(
        postgres_dsn, min_size=1, max_size=3, connection_class=hooked
    ) as slow:
        task = asyncio.ensure_future(Worker(slow, endless, table=table).run())
        await asyncio.wait_for(started.wait(), 10)
        task.cancel()
        await asyncio.wait_for(releasing.wait(), 10)  # the release has committed...
        task.cancel()  # ...and an impatient caller cancels again
        await asyncio.sleep(0.2)
        still_releasing = not task.done()
        proceed.set()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
        assert still_releasing, "the worker task ended before its release did"
        assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
    info = await get_job(pool, job_id, table=table)
    assert info is not None and (info.status, info.attempts) == ("queued", 0)


@pytest.mark.asyncio
async def test_cancel_as_listen_completes_is_not_lost(
    postgres_dsn: str, pool: asyncpg.Pool, table: str
) -> None:
    # asyncio.wait_for on 3.8-3.11 returns the result and drops a cancellation that
    # arrives as the awaited operation finishes (CPython gh-86296).
    victim: List[asyncio.Task[Any]] = []

    class CancelledAsListenCompletes(asyncpg.Connection):  # type: ignore[misc]
        async def add_listener(self, channel: str, callback: Any) -> None:
            await super().add_listener(channel, callback)
            victim[0].cancel()

    calls: List[int] = []

    async def record(job: Job) -> None:
        calls.append(job.id)

    await enqueue(pool, None, table=table)
    async with asyncpg.create_pool(
        postgres_dsn, min_size=1, max_size=3, connection_class=CancelledAsListenCompletes
    ) as p:
        worker = Worker(p, record, table=table, poll_interval=0.2)
        task = asyncio.ensure_future(worker.run())
        victim.append(task)
        done, _ = await asyncio.wait({task}, timeout=5)
        if not done:
            worker.stop()
            await asyncio.wait_for(task, 10)
        assert task.cancelled(), "the cancelled worker carried on"
    assert calls == []
    assert await counts(pool, table=table) == {"queued": 1, "running": 0, "done": 0, "failed": 0}


@pytest.mark.asyncio
async def test_cancel_with_stop_while_idle_ends_the_worker_cancelled(
    pool: asyncpg.Pool, table: str
) -> None:
    async def noop(job: Job) -> None:
        return None

    worker = Worker(pool, noop, table=table, poll_interval=60)
    task = asyncio.ensure_future(worker.run())
    await asyncio.sleep(0.5)  # it finds nothing to do and waits for a wake-up
    assert not task.done()
    worker.stop()  # wakes the worker...
    task.cancel()  # ...and a hard stop lands in the same loop iteration
    done, _ = await asyncio.wait({task}, timeout=10)
    assert done and task.cancelled(), f"the cancellation was lost: {task!r}"


@pytest.mark.asyncio
async def test_hard_stop_after_the_handler_returned_records_the_result(
    postgres_dsn: str, pool: asyncpg.Pool, table: str
) -> None:
    completing = asyncio.Event()
    proceed = asyncio.Event()

    returned = asyncio.Event()

    async def hold_the_completion() -> None:
        if returned.is_set():  # not the first claim, which carries no result yet
            completing.set()
            await proceed.wait()

    async def quick(job: Job) -> str:
        returned.set()
        return "finished"

    job_id = await enqueue(pool, None, table=table)
    hooked = hooked_connection_class("status = 'done'", hold_the_completion, before=True)
    async with asyncpg.create_pool(
        postgres_dsn, min_size=1, max_size=3, connection_class=hooked
    ) as slow:
        task = asyncio.ensure_future(Worker(slow, quick, table=table).run())
        await asyncio.wait_for(completing.wait(), 10)  # the handler has returned
        task.cancel()
        proceed.set()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
    info = await get_job(pool, job_id, table=table)
    assert info is not None and (info.status, info.attempts, info.result) == (
        "done",
        1,
        "finished",
    )


@pytest.mark.asyncio
async def test_handler_that_ignores_cancellation_keeps_its_job_leased(
    pool: asyncpg.Pool, table: str, caplog: pytest.LogCaptureFixture
) -> None:
    started = asyncio.Event()
    finish = asyncio.Event()
    ended = asyncio.Event()

    async def stubborn(job: Job) -> str:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await finish.wait()  # refuses to stop when told
        finally:
            ended.set()
        return "too late"

    job_id = await enqueue(pool, None, table=table)
    task = asyncio.ensure_future(Worker(pool, stubborn, table=table, timeout=0.3).run())
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()
    try:
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
        assert not ended.is_set()
        assert "ignores cancellation" in caplog.text
        # Not released while its handler may still be working on it: the lease decides.
        info = await get_job(pool, job_id, table=table)
        assert info is not None and (info.status, info.attempts) == ("running", 1)
    finally:
        finish.set()
        await asyncio.wait_for(ended.wait(), 10)
    await asyncio.sleep(0.05)
    info = await get_job(pool, job_id, table=table)
    assert info is not None and (info.status, info.attempts, info.result) == ("running", 1, None)


# --- enqueue_many ----------------------------------------------------------------


class QueryCounter:
    """Collect the statements a real connection sends that name ``table``, through
    asyncpg's query logger (which leaves out nothing, but also logs asyncpg's own
    look-ups of data types, made once per connection)."""

    def __init__(self, conn: asyncpg.Connection, table: str) -> None:
        self.conn = conn
        self.table = table
        self.queries: List[str] = []

    def __call__(self, record: Any) -> None:
        if self.table in record.query:
            self.queries.append(record.query)

    def __enter__(self) -> QueryCounter:
        self.conn.add_query_logger(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.conn.remove_query_logger(self)


@pytest.mark.asyncio
async def test_enqueue_many_adds_10000_jobs_in_one_statement_in_order(
    pool: asyncpg.Pool, table: str
) -> None:
    notified: List[str] = []

    def on_notify(connection: object, pid: int, channel: str, payload: str) -> None:
        notified.append(payload)

    async with pool.acquire() as listener, pool.acquire() as conn:
        await listener.add_listener(f"{table}_wakeup", on_notify)
        try:
            with QueryCounter(conn, table) as counter:
                ids = await enqueue_many(
                    conn, ({"n": n} for n in range(10_000)), queue="bulk", table=table
                )
                assert await enqueue_many(conn, iter([]), table=table) == []
                await asyncio.sleep(0.2)  # the logger is called soon after; notifications
            # One round trip for all of them, and none when there is nothing to add.
            assert len(counter.queries) == 1, f"{len(counter.queries)} statements"
        finally:
            await listener.remove_listener(f"{table}_wakeup", on_notify)
    assert notified == ["bulk"]  # one notification for the whole call
    assert len(ids) == 10_000 and ids == sorted(ids) and len(set(ids)) == 10_000
    rows = await pool.fetch(f"SELECT id, payload::text AS payload, queue FROM {table}")
    payloads = {r["id"]: json.loads(r["payload"]) for r in rows}
    in_order = [payloads[job_id]["n"] for job_id in ids] == list(range(10_000))
    assert in_order, "the ids do not follow the order of the payloads"
    assert {r["queue"] for r in rows} == {"bulk"}
    # Workers take them in that order too.
    first = await claim(pool, worker_id="w", queue="bulk", table=table)
    assert first is not None and (first.id, first.payload) == (ids[0], {"n": 0})
    assert await counts(pool, table=table) == {
        "queued": 9_999,
        "running": 1,
        "done": 0,
        "failed": 0,
    }


@pytest.mark.asyncio
async def test_enqueue_many_options_apply_to_every_job(pool: asyncpg.Pool, table: str) -> None:
    ids = await enqueue_many(pool, [1, "two", None], max_attempts=7, delay=0.5, table=table)
    rows = await pool.fetch(
        f"SELECT id, max_attempts, run_after > now() + interval '0.3 s' AS later FROM {table}"
        " ORDER BY id"
    )
    assert [(r["id"], r["max_attempts"], r["later"]) for r in rows] == [
        (job_id, 7, True) for job_id in ids
    ]
    assert await claim(pool, worker_id="w", table=table) is None  # delayed
    await asyncio.sleep(0.6)
    job = await claim(pool, worker_id="w", table=table)
    assert job is not None and (job.id, job.payload) == (ids[0], 1)


@pytest.mark.asyncio
async def test_enqueue_many_bad_input_adds_nothing(pool: asyncpg.Pool, table: str) -> None:
    consumed: List[int] = []

    def payloads() -> Iterator[Any]:
        for n in range(5):
            consumed.append(n)
            yield {"n": n}
        yield {"n": {5}}  # a set: not JSON
        consumed.append(6)

    bad_calls: List[Any] = [
        (lambda: enqueue_many(pool, payloads(), table=table), TypeError, "payload 5 is not JSON"),
        (lambda: enqueue_many(pool, [1, float("inf")], table=table), ValueError, "payload 1"),
        (lambda: enqueue_many(pool, [1], queue="", table=table), ValueError, "queue must be"),
        (lambda: enqueue_many(pool, [1], max_attempts=0, table=table), ValueError, "max_att"),
        (lambda: enqueue_many(pool, [1], max_attempts=2.0, table=table), ValueError, "max_att"),
        (lambda: enqueue_many(pool, [1], delay=-1, table=table), ValueError, "delay must be"),
        (lambda: enqueue_many(pool, [1], delay=float("nan"), table=table), ValueError, "delay"),
        (lambda: enqueue_many(pool, [1], table="Jobs"), ValueError, "lowercase SQL name"),
        (lambda: enqueue_many(pool, "abc", table=table), TypeError, "not a str"),
        (lambda: enqueue_many(pool, {"n": 1}, table=table), TypeError, "not a dict"),
        (lambda: enqueue_many(pool, 42, table=table), TypeError, "not iterable"),
    ]
    for call, exc_type, message in bad_calls:
        with pytest.raises(exc_type, match=message):
            await call()
    assert consumed == [0, 1, 2, 3, 4]  # it stopped at the bad one
    assert await counts(pool, table=table) == {"queued": 0, "running": 0, "done": 0, "failed": 0}
    # A payload JSON can hold but jsonb cannot (a NUL character) fails in the database:
    # the one statement fails whole, so the good payloads before it are not added either.
    with pytest.raises(asyncpg.PostgresError):
        await enqueue_many(pool, [{"ok": 1}, {"bad": "\x00"}], table=table)
    assert await counts(pool, table=table) == {"queued": 0, "running": 0, "done": 0, "failed": 0}


@pytest.mark.asyncio
async def test_enqueue_many_rolls_back_with_the_callers_transaction(
    pool: asyncpg.Pool, table: str
) -> None:
    async def echo(job: Job) -> Any:
        return job.payload

    worker = Worker(pool, echo, table=table, poll_interval=60)
    task = asyncio.ensure_future(worker.run())
    try:
        async with pool.acquire() as conn:
            with pytest.raises(RuntimeError, match="order failed"):
                async with conn.transaction():
                    await enqueue_many(conn, [{"n": 1}, {"n": 2}], table=table)
                    raise RuntimeError("the order failed")
            assert await counts(pool, table=table) == {
                "queued": 0,
                "running": 0,
                "done": 0,
                "failed": 0,
            }
            async with conn.transaction():
                ids = await enqueue_many(conn, [{"n": 3}, {"n": 4}], table=table)
                await asyncio.sleep(0.3)  # not committed yet: the worker sees nothing
                assert await counts(pool, table=table) == {
                    "queued": 0,
                    "running": 0,
                    "done": 0,
                    "failed": 0,
                }

        async def done() -> bool:  # the commit's notification woke the idle worker
            return (await counts(pool, table=table))["done"] == 2

        await wait_until(done, 10, "the committed jobs to be done")
    finally:
        worker.stop()
        assert await asyncio.wait_for(task, 10) == 2
    results = [await get_job(pool, job_id, table=table) for job_id in ids]
    assert [info.result for info in results if info is not None] == [{"n": 3}, {"n": 4}]


# --- one Worker, several jobs at once -------------------------------------------


@pytest.mark.asyncio
async def test_concurrency_is_validated(pool: asyncpg.Pool, table: str) -> None:
    async def noop(job: Job) -> None:
        return None

    for value in (0, -1, True, 2.0, "2", None):
        with pytest.raises(ValueError, match="concurrency must be an int >= 1"):
            Worker(pool, noop, table=table, concurrency=value)  # type: ignore[arg-type]
    assert Worker(pool, noop, table=table, concurrency=50).concurrency == 50


@pytest.mark.asyncio
async def test_never_more_handlers_at_once_than_concurrency(
    pool: asyncpg.Pool, table: str
) -> None:
    running = 0
    most = 0
    seen: List[int] = []

    async def busy(job: Job) -> int:
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            await asyncio.sleep(0.02 if job.payload % 3 else 0.05)
            seen.append(job.payload)
            return int(job.payload)
        finally:
            running -= 1

    await enqueue_many(pool, range(60), table=table)
    worker = Worker(pool, busy, table=table, concurrency=4, poll_interval=0.2)
    assert await asyncio.wait_for(worker.run(burst=True), 30) == 60
    assert most == 4  # all four slots were used, and never a fifth
    assert sorted(seen) == list(range(60))
    assert await counts(pool, table=table) == {"queued": 0, "running": 0, "done": 60, "failed": 0}


@pytest.mark.asyncio
async def test_two_workers_of_eight_run_every_job_exactly_once(
    postgres_dsn: str, pool: asyncpg.Pool, table: str
) -> None:
    record = f"INSERT INTO {table}_executions (job_id, worker, event) VALUES ($1, $2, $3)"
    ids = await enqueue_many(pool, ({"n": n} for n in range(600)), table=table)
    async with asyncpg.create_pool(postgres_dsn, min_size=2, max_size=20) as shared:

        def handler_for(name: str) -> Callable[[Job], Awaitable[Any]]:
            async def handler(job: Job) -> Any:
                async with shared.acquire(timeout=10) as conn:
                    await conn.execute(record, job.id, name, "started")
                if job.id % 7 == 0:
                    await asyncio.sleep(0.01)
                return {"worker": name, "n": job.payload["n"]}

            return handler

        workers = [
            Worker(shared, handler_for(name), table=table, worker_id=name, concurrency=8)
            for name in ("a", "b")
        ]
        done = await asyncio.wait_for(
            asyncio.gather(*(worker.run(burst=True) for worker in workers)), 60
        )
    assert sum(done) == 600 and min(done) > 0  # both took part
    runs = await pool.fetch(
        f"SELECT job_id, count(*) AS n, min(worker) AS worker FROM {table}_executions"
        " GROUP BY job_id"
    )
    assert sorted(r["job_id"] for r in runs) == ids
    assert [r["job_id"] for r in runs if r["n"] != 1] == []  # no job ran twice
    by_job = {r["job_id"]: r["worker"] for r in runs}
    rows = await pool.fetch(f"SELECT id, status, attempts, result::text AS result FROM {table}")
    assert {(r["status"], r["attempts"]) for r in rows} == {("done", 1)}
    results = {r["id"]: json.loads(r["result"]) for r in rows}
    assert [results[job_id]["n"] for job_id in ids] == list(range(600))
    assert {job_id: results[job_id]["worker"] for job_id in ids} == by_job


@pytest.mark.asyncio
async def test_stop_lets_every_job_in_progress_finish(pool: asyncpg.Pool, table: str) -> None:
    started: List[int] = []
    go_on = asyncio.Event()

    async def slow(job: Job) -> str:
        started.append(job.id)
        await go_on.wait()
        return f"finished {job.id}"

    ids = await enqueue_many(pool, range(7), table=table)
    worker = Worker(pool, slow, table=table, concurrency=5, poll_interval=0.2)
    task = asyncio.ensure_future(worker.run())

    async def five_started() -> bool:
        return len(started) == 5

    await wait_until(five_started, 10, "five handlers to start")
    worker.stop()
    await asyncio.sleep(0.3)
    assert not task.done(), "run() returned while jobs were still in progress"
    go_on.set()
    assert await asyncio.wait_for(task, 10) == 5
    assert sorted(started) == ids[:5]
    for job_id in ids[:5]:
        info = await get_job(pool, job_id, table=table)
        assert info is not None and (info.status, info.result) == ("done", f"finished {job_id}")
    assert await counts(pool, table=table) == {"queued": 2, "running": 0, "done": 5, "failed": 0}


@pytest.mark.asyncio
async def test_cancelling_a_worker_releases_every_job_in_progress(
    postgres_dsn: str, pool: asyncpg.Pool, table: str
) -> None:
    started: List[int] = []
    cancelled: List[int] = []

    async def endless(job: Job) -> None:
        started.append(job.id)
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(job.id)
            raise

    ids = await enqueue_many(pool, range(6), table=table)
    own = await asyncpg.create_pool(postgres_dsn, min_size=1, max_size=2)
    try:
        task = asyncio.ensure_future(Worker(own, endless, table=table, concurrency=4).run())

        async def four_started() -> bool:
            return len(started) == 4

        await wait_until(four_started, 10, "four handlers to start")
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=10)
        assert done and task.cancelled(), "the worker did not end"
        await own.close()
    finally:
        own.terminate()  # a worker that did not end would keep its connection
    assert sorted(cancelled) == sorted(started) == ids[:4]
    rows = await pool.fetch(f"SELECT status, attempts, lease_expires_at FROM {table} ORDER BY id")
    # Every job is back in the queue, none has used up an attempt.
    assert [(r["status"], r["attempts"], r["lease_expires_at"]) for r in rows] == [
        ("queued", 0, None)
    ] * 6
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


# Lease renewals (extend_lease) contain this, claims do not.
RENEWAL = "SET lease_expires_at = now() + make_interval"


class Outage:
    """A hook for :func:`hooked_connection_class`: while ``on``, the hooked statements
    fail as if the network had swallowed them."""

    def __init__(self) -> None:
        self.on = True

    async def __call__(self) -> None:
        if self.on:
            raise asyncio.TimeoutError  # a lease renewal that never got an answer


@pytest.mark.asyncio
async def test_hung_handler_is_taken_over_and_its_late_result_is_fenced(
    postgres_dsn: str, pool: asyncpg.Pool, table: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Worker "a" (two slots) hangs on one job while its lease renewals fail, as over a
    # broken network; its other slot goes on with the other jobs.  Once "a" is asked to
    # stop it claims nothing more, and worker "b" takes the job over when the lease has
    # run out.  While "b" works on it, "a"'s handler returns, too late: its result must
    # change nothing, and "b"'s must be the one kept.
    let_a_go = asyncio.Event()
    let_b_go = asyncio.Event()
    b_started = asyncio.Event()
    hung: List[int] = []

    async def handler_a(job: Job) -> Any:
        if job.payload == "hang":
            hung.append(job.attempts)
            await let_a_go.wait()
        return {"by": "a", "payload": job.payload}

    async def handler_b(job: Job) -> Any:
        b_started.set()
        await let_b_go.wait()
        return {"by": "b", "payload": job.payload}

    stuck = await enqueue(pool, "hang", table=table)
    others = await enqueue_many(pool, range(20), table=table)
    hooked = hooked_connection_class(RENEWAL, Outage(), before=True)
    async with asyncpg.create_pool(
        postgres_dsn, min_size=1, max_size=4, connection_class=hooked
    ) as frozen:
        worker_a = Worker(frozen, handler_a, table=table, worker_id="a", lease=0.6, concurrency=2)
        task_a = asyncio.ensure_future(worker_a.run())
        task_b: Optional[asyncio.Future[int]] = None
        try:

            async def others_done() -> bool:
                return (await counts(pool, table=table))["done"] == 20

            await wait_until(others_done, 15, "the other jobs to be done by a")
            worker_a.stop()  # a waits for its hung job now, and claims nothing more
            await asyncio.sleep(0.7)  # the hung job's lease runs out
            worker_b = Worker(pool, handler_b, table=table, worker_id="b")
            task_b = asyncio.ensure_future(worker_b.run(burst=True))
            await asyncio.wait_for(b_started.wait(), 10)
            let_a_go.set()  # a's handler returns now, long after losing the job
            finished_by_a = await asyncio.wait_for(task_a, 10)
            info = await get_job(pool, stuck, table=table)
            assert info is not None
            assert (info.status, info.attempts, info.result) == ("running", 2, None)
            let_b_go.set()
            assert await asyncio.wait_for(task_b, 10) == 1
        finally:
            let_a_go.set()
            let_b_go.set()
            worker_a.stop()
            await asyncio.wait({task_a} if task_b is None else {task_a, task_b}, timeout=10)
    assert hung == [1]
    assert finished_by_a == 20  # its late answer did not count
    info = await get_job(pool, stuck, table=table)
    assert info is not None and (info.status, info.attempts, info.result) == (
        "done",
        2,
        {"by": "b", "payload": "hang"},
    )
    rows = await pool.fetch(
        f"SELECT result::text AS result FROM {table} WHERE id = ANY($1)", others
    )
    assert {json.loads(r["result"])["by"] for r in rows} == {"a"}
    assert "cannot renew lease" in caplog.text
    assert "lease on job" in caplog.text and "result dropped" in caplog.text


@pytest.mark.asyncio
async def test_late_result_is_fenced_when_the_same_worker_took_the_job_over(
    postgres_dsn: str, pool: asyncpg.Pool, table: str, caplog: pytest.LogCaptureFixture
) -> None:
    # As above, but the worker keeps running: when the lease runs out its own free slot
    # takes the job over as attempt 2.  The late result of attempt 1 then goes out with a
    # claim of the running worker, while attempt 2 is still at work, and is fenced there.
    let_go = {1: asyncio.Event(), 2: asyncio.Event()}
    attempts: List[int] = []
    outage = Outage()

    async def handler(job: Job) -> Any:
        attempts.append(job.attempts)
        await let_go[job.attempts].wait()
        return f"attempt {job.attempts}"

    stuck = await enqueue(pool, None, table=table)
    hooked = hooked_connection_class(RENEWAL, outage, before=True)
    async with asyncpg.create_pool(
        postgres_dsn, min_size=1, max_size=4, connection_class=hooked
    ) as frozen:
        worker = Worker(frozen, handler, table=table, lease=1.5, poll_interval=0.2, concurrency=2)
        task = asyncio.ensure_future(worker.run())
        try:

            async def taken_over() -> bool:
                return attempts == [1, 2]

            await wait_until(taken_over, 15, "the job's second attempt")
            let_go[1].set()  # attempt 1 returns late; its slot claims, sending its result

            async def dropped() -> bool:
                return "result dropped" in caplog.text

            await wait_until(dropped, 10, "the late result to be refused")
            outage.on = False  # attempt 2 renews its lease from now on
            info = await get_job(pool, stuck, table=table)
            assert info is not None
            assert (info.status, info.attempts, info.result) == ("running", 2, None)
            let_go[2].set()

            async def done() -> bool:
                info = await get_job(pool, stuck, table=table)
                return info is not None and info.status == "done"

            await wait_until(done, 10, "attempt 2 to finish")
        finally:
            for event in let_go.values():
                event.set()
            worker.stop()
            finished = await asyncio.wait_for(task, 10)
    assert attempts == [1, 2]
    assert finished == 1  # attempt 2; not the late attempt 1
    info = await get_job(pool, stuck, table=table)
    assert info is not None and (info.status, info.attempts, info.result) == (
        "done",
        2,
        "attempt 2",
    )


@pytest.mark.asyncio
async def test_worker_writes_each_result_with_the_next_claim(
    postgres_dsn: str, pool: asyncpg.Pool, table: str
) -> None:
    # One statement per job, not two: the result of a job goes out with the claim of
    # the next one.  The worker's statements all name the table.
    statements: List[str] = []

    def log(record: Any) -> None:
        statements.append(record.query)

    async def log_queries(conn: asyncpg.Connection) -> None:
        conn.add_query_logger(log)

    async def noop(job: Job) -> None:
        return None

    await enqueue_many(pool, range(200), table=table)
    async with asyncpg.create_pool(postgres_dsn, min_size=1, max_size=2, init=log_queries) as p:
        assert await Worker(p, noop, table=table).run(burst=True) == 200
        await asyncio.sleep(0.1)  # the logger is called soon after each statement
    ours = [query for query in statements if table in query]
    assert len(ours) <= 203, f"{len(ours)} statements for 200 jobs"
    assert await counts(pool, table=table) == {"queued": 0, "running": 0, "done": 200, "failed": 0}


@pytest.mark.asyncio
@pytest.mark.parametrize("plan_cache_mode", ["force_custom_plan", "force_generic_plan"])
async def test_a_claim_reads_no_finished_jobs_whatever_the_statistics_say(
    pool: asyncpg.Pool, table: str, plan_cache_mode: str
) -> None:
    """Statistics gathered while every job was queued make the primary key look as good as
    the partial index; then 2,900 jobs finish.  The claim must still read only a few
    pages, not walk the primary key past the finished jobs (a plan seen with ORDER BY id)."""
    await enqueue_many(pool, ({"n": n} for n in range(3000)), table=table)
    await pool.execute(f"ANALYZE {table}")
    await pool.execute(f"UPDATE {table} SET status = 'done' WHERE id <= 2900")
    async with pool.acquire() as conn:
        await conn.execute(f"SET plan_cache_mode = {plan_cache_mode}")
        logged: List[Any] = []
        conn.add_query_logger(logged.append)
        try:
            job = await claim(conn, worker_id="w", table=table)
            await asyncio.sleep(0.01)  # the logger is called soon after the query
        finally:
            conn.remove_query_logger(logged.append)
        assert job is not None and job.id == 2901
        claims = [r for r in logged if "SKIP LOCKED" in r.query]
        assert claims, [r.query[:80] for r in logged]
        query = claims[0]
        transaction = conn.transaction()
        await transaction.start()
        try:  # EXPLAIN ANALYZE runs the claim again: undone by the rollback
            explained = await conn.fetchval(
                "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + query.query, *query.args
            )
        finally:
            await transaction.rollback()
        plan = json.loads(explained)[0]["Plan"]
    pages = plan["Shared Hit Blocks"] + plan.get("Shared Read Blocks", 0)
    assert pages < 200, f"the claim read {pages} pages"
