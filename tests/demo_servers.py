"""The demo servers of the cookbook's I/O chapters, for your own ``python -m asyncio`` session.

The HTTP, files, crawler and API chapters talk to ``base_url``, and the PostgreSQL and job
queue chapters to ``dsn``.  In the test run both are provided for you; to follow the
examples in a REPL of your own, start the servers in another terminal, from a checkout
with the test extra installed (``pip install -e ".[test,http,files,postgres,crawler]"``)::

    python -m tests.demo_servers            # HTTP on port 8080, and a throwaway PostgreSQL
    python -m tests.demo_servers --no-postgres --port 8081

It prints the two lines to paste into your session first, for example::

    base_url = "http://127.0.0.1:8080"
    dsn = "postgresql://postgres@127.0.0.1:54321/postgres"

and serves until you press Ctrl-C, which stops PostgreSQL and removes its files.  The HTTP
server is the demo application of ``tests/http_server.py`` with the crawler's test site
(``tests/crawl_site.py``) mounted under ``/site``, as in the test run.  The PostgreSQL
server is a fresh cluster built from pip-installed binaries (``tests/pg_cluster.py``);
``COOKBOOK_POSTGRES_DSN`` names a server of your own instead.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import List, Optional

from aiohttp import web

from tests.crawl_site import make_site_app
from tests.http_server import make_demo_app


def make_app() -> web.Application:
    """The demo app with the crawler's site under ``/site``, as the doctests serve it."""
    app = make_demo_app()
    app.add_subapp("/site", make_site_app())
    return app


async def serve(host: str, port: int, with_postgres: bool) -> None:
    postgres = None
    runner = web.AppRunner(make_app())
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1]
        print(f'base_url = "http://{host}:{bound}"', flush=True)
        if with_postgres:
            from tests.pg_cluster import ThrowawayPostgres

            postgres = ThrowawayPostgres()
            # Starting a cluster takes a few seconds of blocking work: keep it off the loop.
            await asyncio.get_running_loop().run_in_executor(None, postgres.start)
            print(f'dsn = "{postgres.dsn}"', flush=True)
        print("serving; press Ctrl-C to stop", file=sys.stderr, flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
        if postgres is not None:
            postgres.stop()


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument(
        "--no-postgres", action="store_true", help="serve HTTP only (no PostgreSQL)"
    )
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port, not args.no_postgres))
    return 0


if __name__ == "__main__":
    sys.exit(main())
