"""Loading rows into PostgreSQL: one INSERT per row vs ``executemany`` vs ``COPY``.

    python benchmarks/bench_postgres.py                 # 100,000 rows per method
    python benchmarks/bench_postgres.py --quick         # 10,000 rows
    python benchmarks/bench_postgres.py --json out.json

All three methods run in the same process against the same server, one after
the other, each into an empty ``accounts`` table (``recipes.postgres``):

* ``per-row INSERT``: ``open_account()`` in a loop, inside one transaction so
  that only the round trips are measured, not a commit per row;
* ``executemany``: ``load_accounts(method="executemany")``;
* ``copy_records_to_table``: ``load_accounts(method="copy")``.

The server is ``COOKBOOK_POSTGRES_DSN`` if set, otherwise a throwaway cluster
started from the pip-installed binaries (``tests/pg_cluster.py``; it runs with
``fsync=off``, so the figures show client and protocol costs, not disk).
Real clock; the figures depend on the machine and on its load.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from recipes.postgres import create_accounts_table, load_accounts, open_account  # noqa: E402
from tests.pg_cluster import DSN_ENV, ThrowawayPostgres  # noqa: E402

from _common import print_ratios, write_results  # noqa: E402


async def per_row(conn: asyncpg.Connection, rows: List[Any]) -> None:
    async with conn.transaction():
        for owner, balance in rows:
            await open_account(conn, owner, balance)


async def measure(dsn: str, n_rows: int) -> Dict[str, Any]:
    rows = [(f"owner {n}", n % 1000) for n in range(n_rows)]
    methods = [
        ("per-row INSERT", lambda c: per_row(c, rows)),
        ("executemany", lambda c: load_accounts(c, rows, method="executemany", timeout=600)),
        ("copy_records_to_table", lambda c: load_accounts(c, rows, method="copy", timeout=600)),
    ]
    conn = await asyncpg.connect(dsn, timeout=30, command_timeout=600)
    try:
        server = await conn.fetchval("SHOW server_version")
        await create_accounts_table(conn, temporary=True)
        seconds: Dict[str, float] = {}
        for name, run in methods:
            await conn.execute("TRUNCATE accounts")
            started = time.perf_counter()
            await run(conn)
            seconds[name] = time.perf_counter() - started
            loaded = await conn.fetchval("SELECT count(*) FROM accounts")
            if loaded != n_rows:
                raise RuntimeError(f"{name} loaded {loaded} rows, expected {n_rows}")
            print(
                f"{name:>22}: {seconds[name]:8.3f} s  {n_rows / seconds[name]:>10,.0f} rows/s",
                flush=True,
            )
    finally:
        await conn.close(timeout=30)
    results: List[Dict[str, Any]] = []
    for name, value in seconds.items():
        results.append({"name": name, "value": value, "unit": f"seconds for {n_rows:,} rows"})
    for name, value in seconds.items():
        results.append({"name": name, "value": n_rows / value, "unit": "rows per second"})
    ratios = {
        "executemany_vs_per_row": seconds["per-row INSERT"] / seconds["executemany"],
        "copy_vs_executemany": seconds["executemany"] / seconds["copy_records_to_table"],
        "copy_vs_per_row": seconds["per-row INSERT"] / seconds["copy_records_to_table"],
    }
    return {
        "benchmark": "PostgreSQL bulk load",
        "python": platform.python_version(),
        "rows": n_rows,
        "postgres": server,
        "asyncpg": asyncpg.__version__,
        "results": results,
        "ratios": ratios,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 rows instead of 100,000")
    parser.add_argument("--rows", type=int, help="number of rows (overrides --quick)")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()
    n_rows = args.rows or (10_000 if args.quick else 100_000)
    if n_rows < 1:
        parser.error("--rows must be >= 1")

    cluster = ThrowawayPostgres()
    cluster.start()
    try:
        where = "COOKBOOK_POSTGRES_DSN" if os.environ.get(DSN_ENV) else "a throwaway cluster"
        print(f"loading {n_rows:,} rows three ways into {where}", flush=True)
        data = asyncio.run(measure(cluster.dsn, n_rows))
    finally:
        cluster.stop()
    print_ratios(data["ratios"], width=22, digits=1, suffix="x faster")
    write_results(args.json, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
