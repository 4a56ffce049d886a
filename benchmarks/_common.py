"""Scaffolding shared by the benchmark scripts (not a recipe, and not part of the cookbook).

* :func:`server_process`: run a local server in a process of its own, usually
  the benchmark script itself with ``--serve``, and yield its URL and pid;
* :func:`serve_until_stdin_closes`: the other end, in that process: serve an
  aiohttp application, print its port, stop when the parent closes our stdin;
* :func:`print_ratios` and :func:`write_results`: the end of every ``main()``.

The scripts import it as ``from _common import ...``: run as
``python benchmarks/<script>.py``, their directory is first on ``sys.path``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator, Mapping, NamedTuple, Optional

from aiohttp import web


class LocalServer(NamedTuple):
    """A server started by :func:`server_process`."""

    url: str
    """``http://127.0.0.1:<port>``, without a trailing slash."""
    pid: int


@contextlib.contextmanager
def server_process(script: str, *args: str) -> Iterator[LocalServer]:
    """Run ``python script *args``; yield its URL (``http://127.0.0.1:<port>``) and pid.

    The child prints its port on the first line of its stdout (see
    :func:`serve_until_stdin_closes`).  On exit its stdin is closed, which
    stops it; it is killed if it has not stopped within 30 seconds.
    """
    server = subprocess.Popen(
        [sys.executable, script, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"{script} {' '.join(args)}: expected a port, got {line!r}")
        yield LocalServer(f"http://127.0.0.1:{int(line)}", server.pid)
    finally:
        if server.stdin is not None:
            server.stdin.close()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        if server.stdout is not None:
            server.stdout.close()


async def serve_until_stdin_closes(app: web.Application) -> None:
    """Serve ``app`` on 127.0.0.1, print the port, return once stdin is closed.

    The access log is off and the listen backlog is 1,024, so that a burst of
    connections from the benchmark's client is not refused.
    """
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        print(runner.addresses[0][1], flush=True)
        # Until the parent closes our stdin (or kills us).
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    finally:
        await runner.cleanup()


def print_ratios(
    ratios: Mapping[str, float], *, width: int, digits: int = 2, suffix: str = "x"
) -> None:
    """One line per ratio: its name right-aligned in ``width`` columns, then the value."""
    for name, ratio in ratios.items():
        print(f"{name:>{width}}: {ratio:6.{digits}f}{suffix}")


def write_results(path: Optional[Path], data: Mapping[str, Any]) -> None:
    """Write ``data`` as indented JSON to ``path`` (if given), creating its directory."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path}")
