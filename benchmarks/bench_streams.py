"""The chapter's LineServer against a bare asyncio.Protocol server: requests/s and echo throughput.

    python benchmarks/bench_streams.py                # 100,000 requests, 64 MiB echoed
    python benchmarks/bench_streams.py --quick        # 10,000 requests, 8 MiB
    python benchmarks/bench_streams.py --json out.json

Both servers speak the same line protocol (the reply to a line is the line) and
each runs in a process of its own: this script with ``--serve recipe`` or
``--serve bare``; they are measured in turn, alternating.  ``recipe`` is
:class:`recipes.streams.LineServer` with an ``async def`` echo handler and its
default limits and timeouts (a deadline per line, a timeout per request,
``drain()`` after each reply); ``bare`` is an :class:`asyncio.Protocol` that
splits each chunk into lines and writes the replies back, with no limits,
timeouts or backpressure: the fastest code a reader could write on asyncio.
The client load comes from this process, on its own event loop, through plain
protocols (so its cost is small and the same for both):

* requests/s: 50 connections, each sending a 32-byte request and waiting for
  its reply before the next one;
* echo throughput: one connection that sends 1 KiB lines as fast as flow
  control allows while it reads the replies, in MiB/s of replies received.

Each figure is the best of two rounds.  Real clock; the load average is stored.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from recipes.streams import LineServer

from _common import print_ratios, server_process, write_results

CONNECTIONS = 50
REQUEST = b"r" * 31 + b"\n"
LINE = b"e" * 1023 + b"\n"


# --- the two servers (run in the child process) ---------------------------------


class BareLineEcho(asyncio.Protocol):
    """Echo each complete line: what a hand-written Protocol server does, nothing more."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.pending = b""

    def data_received(self, data: bytes) -> None:
        *lines, self.pending = (self.pending + data).split(b"\n")
        if lines:
            self.transport.write(b"".join(line + b"\n" for line in lines))


async def echo(line: bytes) -> bytes:
    return line


async def serve(kind: str) -> None:
    loop = asyncio.get_running_loop()
    if kind == "recipe":
        recipe = LineServer(echo)
        await recipe.start("127.0.0.1", 0, backlog=1024)
        port = recipe.port
    else:
        bare = await loop.create_server(BareLineEcho, "127.0.0.1", 0, backlog=1024)
        port = bare.sockets[0].getsockname()[1]
    print(port, flush=True)
    try:
        await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes our stdin
    finally:
        if kind == "recipe":
            await recipe.shutdown(deadline=5)
        else:
            bare.close()


# --- the client load (this process) -----------------------------------------------


class RequestReply(asyncio.Protocol):
    """Send a request, wait for its reply, repeat *count* times."""

    def __init__(self, count: int, done: asyncio.Future[None]) -> None:
        self.left = count
        self.done = done
        self.received = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(REQUEST)

    def data_received(self, data: bytes) -> None:
        self.received += data
        while len(self.received) >= len(REQUEST):
            if self.received[: len(REQUEST)] != REQUEST:
                self.done.set_exception(RuntimeError(f"bad reply {self.received[:40]!r}"))
                return
            self.received = self.received[len(REQUEST) :]
            self.left -= 1
            if self.left == 0:
                self.done.set_result(None)
                return
            self.transport.write(REQUEST)

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError(f"lost with {self.left} left: {exc!r}"))


async def requests_per_second(port: int, total: int) -> float:
    loop = asyncio.get_running_loop()
    per_connection = total // CONNECTIONS
    done: List[asyncio.Future[None]] = [loop.create_future() for _ in range(CONNECTIONS)]
    transports = []
    for future in done:  # connect all, then start the clock
        transport, protocol = await loop.create_connection(
            lambda f=future: RequestReply(per_connection, f), "127.0.0.1", port
        )
        transports.append((transport, protocol))
    started = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*done), 600)
    elapsed = time.perf_counter() - started
    for transport, _ in transports:
        transport.close()
    await asyncio.sleep(0.1)
    return per_connection * CONNECTIONS / elapsed


class Flood(asyncio.Protocol):
    """Send lines as fast as flow control allows; count the reply bytes."""

    def __init__(self, expected: int, done: asyncio.Future[None]) -> None:
        self.expected = expected
        self.got = 0
        self.done = done
        self.can_write = asyncio.Event()
        self.can_write.set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def pause_writing(self) -> None:
        self.can_write.clear()

    def resume_writing(self) -> None:
        self.can_write.set()

    def data_received(self, data: bytes) -> None:
        self.got += len(data)
        if self.got >= self.expected and not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError(f"lost after {self.got} bytes: {exc!r}"))


async def echo_throughput(port: int, mebibytes: int) -> float:
    loop = asyncio.get_running_loop()
    lines = mebibytes * 1024
    done: asyncio.Future[None] = loop.create_future()
    transport, flood = await loop.create_connection(
        lambda: Flood(lines * len(LINE), done), "127.0.0.1", port
    )
    chunk = LINE * 64
    started = time.perf_counter()
    try:
        for _ in range(lines // 64):
            await flood.can_write.wait()
            transport.write(chunk)
        await asyncio.wait_for(done, 600)
        elapsed = time.perf_counter() - started
    finally:
        transport.close()
        await asyncio.sleep(0.1)
    return mebibytes / elapsed


def measure_servers(requests: int, mebibytes: int) -> Dict[str, Dict[str, float]]:
    """Best of two rounds; each round measures both servers, alternating, so that a burst of
    load from elsewhere on the machine does not fall on one of them only."""
    best: Dict[str, Dict[str, float]] = {"recipe": {}, "bare": {}}
    with server_process(__file__, "--serve", "recipe") as recipe, server_process(
        __file__, "--serve", "bare"
    ) as bare:
        ports = {
            kind: int(s.url.rsplit(":", 1)[1]) for kind, s in (("recipe", recipe), ("bare", bare))
        }
        for _ in range(2):
            for kind, port in ports.items():
                rps = asyncio.run(requests_per_second(port, requests))
                best[kind]["rps"] = max(best[kind].get("rps", 0.0), rps)
            for kind, port in ports.items():
                mibs = asyncio.run(echo_throughput(port, mebibytes))
                best[kind]["mibs"] = max(best[kind].get("mibs", 0.0), mibs)
    for kind, figures in best.items():
        print(f"{kind:>8}: {figures['rps']:10,.0f} requests/s", flush=True)
        print(f"{kind:>8}: {figures['mibs']:10,.1f} MiB/s echoed", flush=True)
    return best


def measure(requests: int, mebibytes: int) -> Dict[str, Any]:
    print(
        f"{requests:,} requests over {CONNECTIONS} connections; {mebibytes} MiB echoed "
        "in 1 KiB lines; servers in a separate process",
        flush=True,
    )
    best = measure_servers(requests, mebibytes)
    recipe, bare = best["recipe"], best["bare"]
    return {
        "benchmark": "line-protocol TCP server: LineServer vs a bare asyncio.Protocol",
        "python": platform.python_version(),
        "description": (
            "Server in a separate process, client load from this process (plain protocols). "
            f"requests/s: {CONNECTIONS} connections, one 32-byte request at a time each; "
            "echo: one connection, 1 KiB lines sent as fast as flow control allows. "
            "Best of two alternating rounds."
        ),
        "requests": requests,
        "connections": CONNECTIONS,
        "echo_mebibytes": mebibytes,
        "cpus": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "results": [
            {"name": "LineServer (recipe)", "value": recipe["rps"], "unit": "requests/s"},
            {"name": "bare asyncio.Protocol", "value": bare["rps"], "unit": "requests/s"},
            {"name": "LineServer (recipe)", "value": recipe["mibs"], "unit": "MiB/s echoed"},
            {"name": "bare asyncio.Protocol", "value": bare["mibs"], "unit": "MiB/s echoed"},
        ],
        "ratios": {
            "recipe_over_bare_requests": recipe["rps"] / bare["rps"],
            "recipe_over_bare_throughput": recipe["mibs"] / bare["mibs"],
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 requests and 8 MiB")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument("--serve", choices=["recipe", "bare"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve))
        return 0
    data = measure(10_000 if args.quick else 100_000, 8 if args.quick else 64)
    print_ratios(data["ratios"], width=28)
    write_results(args.json, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
