"""Behaviour, fault, bad-input and load tests for recipes/postgres.py (real server, real clock)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, AsyncIterator, Awaitable, Callable, List, Tuple, Type

import asyncpg
import pytest
import pytest_asyncio

from recipes.postgres import (
    Account,
    InsufficientFunds,
    create_accounts_table,
    fetch_from_pool,
    get_account,
    list_accounts,
    listen,
    load_accounts,
    notify,
    open_account,
    open_connection,
    open_pool,
    transfer,
)
from tests.pg_cluster import DSN_ENV, ThrowawayPostgres, find_server_install

INJECTIONS = [
    "x'); DROP TABLE accounts; --",
    "Robert'); DELETE FROM accounts WHERE ('1'='1",
    "' OR '1'='1",
    "nobody' OR ''='",
    '"; DROP TABLE accounts; --',
    "$1",
    "\\'; SELECT pg_sleep(5); --",
    "🐘 ünïcödé; --",
    "a\nmulti\nline'\"value",
]


@pytest_asyncio.fixture
async def conn(postgres_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection with a fresh TEMPORARY accounts table (gone when it closes)."""
    async with open_connection(postgres_dsn) as connection:
        await create_accounts_table(connection, temporary=True)
        yield connection


async def balances(conn: asyncpg.Connection) -> List[int]:
    return [account.balance for account in await list_accounts(conn)]


# --- transactions: nothing half-written -------------------------------------


@pytest.mark.asyncio
async def test_error_inside_transaction_leaves_no_rows(conn: asyncpg.Connection) -> None:
    with pytest.raises(RuntimeError):
        async with conn.transaction():
            for n in range(5):
                await open_account(conn, f"owner {n}", n)
            assert await conn.fetchval("SELECT count(*) FROM accounts") == 5
            raise RuntimeError("boom")
    assert await conn.fetchval("SELECT count(*) FROM accounts") == 0
    assert not conn.is_in_transaction()


@pytest.mark.asyncio
async def test_cancellation_inside_transaction_rolls_back(conn: asyncpg.Connection) -> None:
    started = asyncio.Event()

    async def slow_writer() -> None:
        async with conn.transaction():
            await open_account(conn, "half", 1)
            started.set()
            await conn.execute("SELECT pg_sleep(10)")

    task = asyncio.ensure_future(slow_writer())
    await asyncio.wait_for(started.wait(), 10)
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await conn.fetchval("SELECT count(*) FROM accounts") == 0
    assert not conn.is_in_transaction()


@pytest.mark.asyncio
async def test_transfer_moves_money_atomically(conn: asyncpg.Connection) -> None:
    alice = await open_account(conn, "alice", 100)
    bob = await open_account(conn, "bob", 10)
    await transfer(conn, alice, bob, 60)
    assert await balances(conn) == [40, 70]
    with pytest.raises(InsufficientFunds, match="account 1 cannot pay 41"):
        await transfer(conn, alice, bob, 41)
    assert await balances(conn) == [40, 70]  # the credit to bob was rolled back
    with pytest.raises(LookupError, match="no account with id 77"):
        await transfer(conn, alice, 77, 1)
    assert await balances(conn) == [40, 70]
    assert not conn.is_in_transaction()


@pytest.mark.asyncio
async def test_failed_transfer_inside_callers_transaction_undoes_only_itself(
    conn: asyncpg.Connection,
) -> None:
    alice = await open_account(conn, "alice", 100)
    bob = await open_account(conn, "bob", 0)
    async with conn.transaction():
        await transfer(conn, alice, bob, 30)
        with pytest.raises(InsufficientFunds):
            await transfer(conn, bob, alice, 31)  # a savepoint: rolled back alone
        await transfer(conn, bob, alice, 5)
    assert await balances(conn) == [75, 25]


@pytest.mark.asyncio
async def test_opposite_transfers_do_not_deadlock(postgres_dsn: str) -> None:
    owner = f"owner-{uuid.uuid4().hex}"
    async with open_pool(postgres_dsn, max_size=4) as pool:
        async with pool.acquire() as setup:
            created = await setup.fetchval("SELECT to_regclass('public.accounts') IS NULL")
            await create_accounts_table(setup)  # a real table: pool connections share it
            a = await open_account(setup, owner, 1000)
            b = await open_account(setup, owner, 1000)
        try:

            async def shuttle(source: int, target: int) -> None:
                for _ in range(20):
                    async with pool.acquire(timeout=10) as c:
                        await transfer(c, source, target, 1)

            # Without the ordered row locks, these would deadlock (DeadlockDetectedError).
            await asyncio.gather(shuttle(a, b), shuttle(b, a), shuttle(a, b), shuttle(b, a))
            async with pool.acquire() as check:
                accounts = await list_accounts(check, owner=owner)
            assert sorted(x.balance for x in accounts) == [1000, 1000]
        finally:
            async with pool.acquire() as cleanup:
                if created:
                    await cleanup.execute("DROP TABLE accounts")
                else:
                    await cleanup.execute("DELETE FROM accounts WHERE owner = $1", owner)


@pytest.mark.parametrize("method", ["copy", "executemany"])
@pytest.mark.asyncio
async def test_bulk_load_is_all_or_nothing(conn: asyncpg.Connection, method: str) -> None:
    # A NUL character passes the Python checks but PostgreSQL text refuses it,
    # so the server fails in the middle of the batch.
    rows = [(f"owner {n}", n) for n in range(500)]
    rows[250] = ("bad\x00owner", 1)
    with pytest.raises(asyncpg.CharacterNotInRepertoireError):
        await load_accounts(conn, rows, method=method)
    assert await conn.fetchval("SELECT count(*) FROM accounts") == 0
    del rows[250]
    assert await load_accounts(conn, rows, method=method) == 499
    assert await conn.fetchval("SELECT count(*) FROM accounts") == 499


@pytest.mark.asyncio
async def test_bulk_load_methods_agree(conn: asyncpg.Connection) -> None:
    rows = [(f"owner {n}", n) for n in range(1000)]
    assert await load_accounts(conn, iter(rows), method="copy") == 1000
    assert await load_accounts(conn, rows, method="executemany") == 1000
    stored = await conn.fetch("SELECT owner, balance FROM accounts ORDER BY id")
    assert [tuple(r) for r in stored] == rows + rows


# --- parameters: injection attempts are plain text --------------------------


@pytest.mark.parametrize("evil", INJECTIONS)
@pytest.mark.asyncio
async def test_injection_attempts_are_stored_verbatim(conn: asyncpg.Connection, evil: str) -> None:
    innocent = await open_account(conn, "innocent", 5)
    account_id = await open_account(conn, evil, 7)
    stored = await get_account(conn, account_id)
    assert stored == Account(account_id, evil, 7)
    assert await list_accounts(conn, owner=evil) == [stored]
    assert await get_account(conn, innocent) == Account(innocent, "innocent", 5)
    assert await conn.fetchval("SELECT count(*) FROM accounts") == 2
    assert await conn.fetchval("SELECT to_regclass('pg_temp.accounts') IS NOT NULL")


@pytest.mark.asyncio
async def test_injection_through_bulk_load_and_notify(
    postgres_dsn: str, conn: asyncpg.Connection
) -> None:
    await load_accounts(conn, [(evil, 1) for evil in INJECTIONS])
    assert [a.owner for a in await list_accounts(conn)] == INJECTIONS
    await load_accounts(conn, [(evil, 1) for evil in INJECTIONS], method="executemany")
    assert await conn.fetchval("SELECT count(DISTINCT owner) FROM accounts") == len(INJECTIONS)
    async with open_connection(postgres_dsn) as sender, listen(conn, "inj'; --") as inbox:
        for evil in INJECTIONS:
            await notify(sender, "inj'; --", evil)
        received = [await asyncio.wait_for(inbox.get(), 5) for _ in INJECTIONS]
    assert received == INJECTIONS


# --- bad input: clear errors before any work --------------------------------


@pytest.mark.asyncio
async def test_bad_input_is_refused_before_anything_is_written(conn: asyncpg.Connection) -> None:
    alice = await open_account(conn, "alice", 10)
    bob = await open_account(conn, "bob", 10)
    bad_calls: List[Tuple[Callable[[], Awaitable[object]], Type[Exception], str]] = [
        (lambda: open_account(conn, "", 1), ValueError, "owner must not be empty"),
        (lambda: open_account(conn, None, 1), TypeError, "owner must be a str"),
        (lambda: open_account(conn, "x", True), TypeError, "balance must be an int, not bool"),
        (lambda: open_account(conn, "x", 1.5), TypeError, "must be an int, not float"),
        (lambda: open_account(conn, "x", -1), ValueError, "balance must be >= 0"),
        (lambda: get_account(conn, "1"), TypeError, "account_id must be an int"),
        (lambda: list_accounts(conn, owner=""), ValueError, "owner must not be empty"),
        (lambda: transfer(conn, alice, bob, 0), ValueError, "amount must be >= 1"),
        (lambda: transfer(conn, alice, bob, 2.5), TypeError, "amount must be an int"),
        (lambda: transfer(conn, alice, alice, 1), ValueError, "same account"),
        (lambda: transfer(conn, 0, bob, 1), ValueError, "source must be >= 1"),
        (lambda: load_accounts(conn, [("a", 1)], method="insert"), ValueError, "method must be"),
        (
            lambda: load_accounts(conn, [("a", 1), ("b",)]),
            TypeError,
            r"row 1: expected an \(owner",
        ),
        (
            lambda: load_accounts(conn, [("a", 1), ("b", "2")]),
            TypeError,
            "row 1: balance must be an int",
        ),
        (
            lambda: load_accounts(conn, [("a", 1), ("", 2)]),
            ValueError,
            "row 1: owner must not be empty",
        ),
        (lambda: load_accounts(conn, ["ab"]), TypeError, "row 0: expected an"),
        (lambda: notify(conn, "", "x"), ValueError, "channel must be a non-empty str"),
        (lambda: notify(conn, "c", ""), ValueError, "payload must be a non-empty str"),
    ]
    for call, exc_type, message in bad_calls:
        with pytest.raises(exc_type, match=message):
            await call()
    assert await balances(conn) == [10, 10]
    assert await conn.fetchval("SELECT count(*) FROM accounts") == 2


@pytest.mark.asyncio
async def test_wrong_parameter_type_is_a_clear_driver_error(conn: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.DataError, match=r"invalid input for query argument \$1"):
        await conn.fetchval("SELECT $1::int", "5")


@pytest.mark.asyncio
async def test_open_pool_rejects_bad_sizes(postgres_dsn: str) -> None:
    for min_size, max_size in [(5, 2), (-1, 2), (0, 0)]:
        with pytest.raises(ValueError, match="min_size"):
            async with open_pool(postgres_dsn, min_size=min_size, max_size=max_size):
                pass


# --- connections close on every way out ------------------------------------


@pytest.mark.asyncio
async def test_open_connection_closes_on_error_and_on_cancel(postgres_dsn: str) -> None:
    seen: List[asyncpg.Connection] = []
    with pytest.raises(ZeroDivisionError):
        async with open_connection(postgres_dsn) as c:
            seen.append(c)
            1 / 0  # noqa: B018
    assert seen[0].is_closed()

    inside = asyncio.Event()

    async def cancelled_user() -> None:
        async with open_connection(postgres_dsn) as c:
            seen.append(c)
            inside.set()
            await c.execute("SELECT pg_sleep(10)")

    task = asyncio.ensure_future(cancelled_user())
    await asyncio.wait_for(inside.wait(), 10)
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen[1].is_closed()


@pytest.mark.asyncio
async def test_query_timeout_cancels_on_server_and_keeps_connection(postgres_dsn: str) -> None:
    async with open_connection(postgres_dsn, command_timeout=0.2) as c:
        with pytest.raises(asyncio.TimeoutError):
            await c.execute("SELECT pg_sleep(10)")  # the connection's command_timeout
        with pytest.raises(asyncio.TimeoutError):
            await c.execute("SELECT pg_sleep(10)", timeout=0.1)
        assert await c.fetchval("SELECT 1") == 1
        # Nothing of ours is still running on the server.
        running = await c.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(10)%'"
            " AND state = 'active' AND pid <> pg_backend_pid()"
        )
        assert running == 0


# --- pools -------------------------------------------------------------------


@pytest.mark.asyncio
async def test_shared_connection_collides_pool_does_not(postgres_dsn: str) -> None:
    async with open_connection(postgres_dsn) as c:
        results = await asyncio.gather(
            c.fetchval("SELECT 1 FROM pg_sleep(0.05)"),
            c.fetchval("SELECT 2"),
            return_exceptions=True,
        )
        assert results[0] == 1
        assert isinstance(results[1], asyncpg.InterfaceError)
        assert "another operation is in progress" in str(results[1])


@pytest.mark.asyncio
async def test_pool_serves_200_concurrent_requests_with_10_connections(postgres_dsn: str) -> None:
    in_use: List[int] = []
    async with open_pool(postgres_dsn, min_size=2, max_size=10) as pool:
        stop = asyncio.Event()

        async def sample() -> None:
            while not stop.is_set():
                in_use.append(pool.get_size() - pool.get_idle_size())
                await asyncio.sleep(0.002)

        sampler = asyncio.ensure_future(sample())
        try:
            results = await asyncio.gather(
                *(
                    fetch_from_pool(
                        pool,
                        "SELECT $1::int AS n, pg_backend_pid() AS pid FROM pg_sleep(0.01)",
                        n,
                        acquire_timeout=30,
                    )
                    for n in range(200)
                )
            )
        finally:
            stop.set()
            await sampler
        assert pool.get_size() <= 10
    numbers = [rows[0]["n"] for rows in results]
    backends = {rows[0]["pid"] for rows in results}
    assert numbers == list(range(200))
    assert len(backends) <= 10
    assert max(in_use) <= 10
    assert max(in_use) > 1  # the requests really ran side by side


@pytest.mark.asyncio
async def test_exhausted_pool_times_out_instead_of_hanging(postgres_dsn: str) -> None:
    async with open_pool(postgres_dsn, max_size=1) as pool:
        async with pool.acquire():
            with pytest.raises(asyncio.TimeoutError):
                await fetch_from_pool(pool, "SELECT 1", acquire_timeout=0.1)
        assert (await fetch_from_pool(pool, "SELECT 1 AS one"))[0]["one"] == 1


@pytest.mark.asyncio
async def test_pool_close_does_not_hang_on_a_connection_never_returned(postgres_dsn: str) -> None:
    hold = asyncio.Event()

    async def hog(pool: asyncpg.Pool) -> None:
        async with pool.acquire():
            hold.set()
            await asyncio.sleep(3600)

    async with open_pool(postgres_dsn, max_size=1, close_timeout=0.2) as pool:
        hogger = asyncio.ensure_future(hog(pool))
        await asyncio.wait_for(hold.wait(), 10)
    assert pool.is_closing()
    hogger.cancel()
    await asyncio.gather(hogger, return_exceptions=True)


@pytest.mark.asyncio
async def test_open_pool_never_loses_a_cancellation_that_comes_as_the_pool_closes(
    postgres_dsn: str,
) -> None:
    # asyncio.wait_for(pool.close()) on 3.8-3.11 returned normally when the task was
    # cancelled in the step in which close() finished (CPython gh-86296): the cancelled
    # task carried on.  The poller cancels it exactly then, as soon as the pool says closed.
    pools: List[asyncpg.Pool] = []
    log: List[str] = []

    async def user() -> None:
        async with open_pool(postgres_dsn, max_size=1) as pool:
            pools.append(pool)
            await fetch_from_pool(pool, "SELECT 1")
        log.append("carried on")
        await asyncio.sleep(1)
        log.append("finished")

    task = asyncio.ensure_future(user())
    while not pools:
        await asyncio.sleep(0)
    assert pools[0]._closed is False  # asyncpg sets it in the step in which close() returns
    while not pools[0]._closed:
        assert not task.done()
        await asyncio.sleep(0)
    assert task.cancel()
    await asyncio.wait({task})
    assert task.cancelled()
    assert "finished" not in log


# --- LISTEN/NOTIFY -----------------------------------------------------------


def _connection_that_cancels(method: str, victim: List[asyncio.Task[Any]]) -> Type[Any]:
    """A connection class that cancels ``victim[0]`` in the step in which ``method`` returns."""

    class CancelsWhenDone(asyncpg.Connection):
        async def add_listener(self, channel: str, callback: Any) -> None:
            await super().add_listener(channel, callback)
            if method == "add_listener":
                assert victim[0].cancel()

        async def remove_listener(self, channel: str, callback: Any) -> None:
            await super().remove_listener(channel, callback)
            if method == "remove_listener":
                assert victim[0].cancel()

    return CancelsWhenDone


@pytest.mark.parametrize("method", ["add_listener", "remove_listener"])
@pytest.mark.asyncio
async def test_listen_never_loses_a_cancellation_that_comes_as_it_subscribes_or_leaves(
    postgres_dsn: str, method: str
) -> None:
    # asyncio.wait_for on 3.8-3.11 returned normally when the task was cancelled in the
    # step in which (UN)LISTEN finished (CPython gh-86296): the cancelled task carried on.
    victim: List[asyncio.Task[Any]] = []
    log: List[str] = []
    listener = await asyncpg.connect(
        postgres_dsn, timeout=10, connection_class=_connection_that_cancels(method, victim)
    )
    try:

        async def subscriber() -> None:
            async with listen(listener, "events"):
                log.append("subscribed")
                await asyncio.sleep(0.5)
            log.append("carried on")
            await asyncio.sleep(0.5)
            log.append("finished")

        victim.append(asyncio.ensure_future(subscriber()))
        await asyncio.wait(victim)
        assert victim[0].cancelled()
        assert "finished" not in log
        # Subscribed or not, the connection is left listening on nothing.
        assert await listener.fetchval("SELECT count(*) FROM pg_listening_channels()") == 0
    finally:
        await listener.close(timeout=10)


@pytest.mark.asyncio
async def test_listen_delivers_in_order_and_unsubscribes(postgres_dsn: str) -> None:
    async with open_connection(postgres_dsn) as listener, open_connection(postgres_dsn) as sender:
        async with listen(listener, "events") as inbox:
            assert await listener.fetchval(
                "SELECT array_agg(c) FROM pg_listening_channels() c"
            ) == ["events"]
            for n in range(20):
                await notify(sender, "events", f"event {n}")
            got = [await asyncio.wait_for(inbox.get(), 5) for _ in range(20)]
        assert got == [f"event {n}" for n in range(20)]
        assert await listener.fetchval("SELECT count(*) FROM pg_listening_channels()") == 0
        await notify(sender, "events", "too late")
        await asyncio.sleep(0.1)
        assert inbox.empty()


@pytest.mark.asyncio
async def test_notification_inside_rolled_back_transaction_is_never_sent(
    postgres_dsn: str,
) -> None:
    async with open_connection(postgres_dsn) as listener, open_connection(postgres_dsn) as sender:
        async with listen(listener, "events") as inbox:
            with pytest.raises(RuntimeError):
                async with sender.transaction():
                    await notify(sender, "events", "rolled back")
                    raise RuntimeError
            async with sender.transaction():
                await notify(sender, "events", "committed")
            assert await asyncio.wait_for(inbox.get(), 5) == "committed"
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(inbox.get(), 0.2)


# --- the throwaway cluster the tests run on ------------------------------------


def test_dsn_from_environment_starts_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DSN_ENV, "postgresql://someone@db.example:5433/app")
    cluster = ThrowawayPostgres()
    cluster.start()
    assert cluster.dsn == "postgresql://someone@db.example:5433/app"
    assert cluster._process is None and cluster._root is None
    cluster.stop()
    assert cluster.dsn == ""


@pytest.mark.asyncio
async def test_throwaway_cluster_starts_and_leaves_nothing_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(DSN_ENV, raising=False)
    try:
        find_server_install()
    except RuntimeError as exc:
        pytest.skip(f"no PostgreSQL server binaries installed: {exc}")

    # Starting blocks the loop for a moment; that is fine in a test.
    with ThrowawayPostgres() as cluster:
        root, process = cluster._root, cluster._process
        assert cluster.dsn.startswith("postgresql://postgres@127.0.0.1:")
        async with open_connection(cluster.dsn) as c:
            assert await c.fetchval("SELECT current_user") == "postgres"
    assert root is not None and not root.exists()
    assert process is not None and process.poll() is not None
    assert cluster.dsn == ""
