"""Broadcast fan-out over WebSockets: one queue per client vs sending to each in turn.

    python benchmarks/bench_realtime.py                # 100 and 1,000 clients
    python benchmarks/bench_realtime.py --quick        # fewer messages
    python benchmarks/bench_realtime.py --json out.json

The server runs in this process: ``recipes.realtime.Broadcaster`` (a bounded
queue and a sender task per client; ``publish()`` never waits), or the naive
broadcast a reader would write first, ``for ws in clients: await
ws.send_str(text)``.  The clients run in a child process (this script with
``--clients``), all on one aiohttp session, and count what they receive.
Each run publishes M short text messages as fast as the broadcast allows and
times until every client has received all M.  Figures: deliveries per second
(messages x clients / seconds) for 1, 100 and 1,000 clients, for both
broadcasts in the same run, and each client's share against the rate a single
client gets.  A last run adds one client that stops reading, on a link with a
small send buffer: the naive broadcast stalls behind it, the recipe drops it.
Real clock; the load average is printed and stored.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import socket
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from recipes.realtime import Broadcaster

from _common import print_ratios, write_results

MESSAGE = "x" * 100
STALL_LIMIT = 5.0  # seconds the naive broadcast gets when a client stalls


# --- the client process -------------------------------------------------------


async def run_clients(url: str, clients: int, messages: int, stalled: bool) -> None:
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        sockets = await asyncio.gather(
            *(session.ws_connect(url + "/ws", max_msg_size=0) for _ in range(clients))
        )
        idle: Optional[socket.socket] = None
        if stalled:  # connects, then never reads a byte
            idle = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])))
            idle.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            idle.sendall(
                b"GET /thin HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\n\r\n"
            )
        print("ready", flush=True)

        async def read(ws: aiohttp.ClientWebSocketResponse) -> None:
            for _ in range(messages):
                msg = await ws.receive()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    raise SystemExit(f"client got {msg.type!r} instead of a message")

        try:
            await asyncio.gather(*(read(ws) for ws in sockets))
            print("done", flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        finally:
            for ws in sockets:
                await ws.close()
            if idle is not None:
                idle.close()


# --- the server, in this process ----------------------------------------------------


class NaiveHub:
    """What a reader writes first: one list, and await each send in turn."""

    def __init__(self) -> None:
        self.clients: List[web.WebSocketResponse] = []
        self.sent = 0

    async def handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.clients.append(ws)
        try:
            async for _ in ws:
                pass
        finally:
            self.clients.remove(ws)
        return ws

    async def broadcast(self, text: str) -> None:
        for ws in list(self.clients):
            await ws.send_str(text)
        self.sent += 1


def thin_link(handler: Any) -> Any:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        sock = request.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        return await handler(request)  # type: ignore[no-any-return]

    return wrapped


async def one_run(
    kind: str, clients: int, messages: int, stalled: bool = False, queue_size: int = 0
) -> Dict[str, Any]:
    """Deliveries per second to ``clients`` readers for ``messages`` messages."""
    queue_size = queue_size or messages + 1  # by default, no client can be dropped
    hub: Any = (
        Broadcaster(queue_size=queue_size, close_timeout=1) if kind == "recipe" else NaiveHub()
    )
    app = web.Application()
    app.router.add_get("/ws", hub.handler)
    app.router.add_get("/thin", thin_link(hub.handler))
    if kind == "recipe":
        app.on_shutdown.append(hub.on_shutdown)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    child: Optional[asyncio.subprocess.Process] = None
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=2048)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        args = ["--clients", str(clients), "--messages", str(messages), "--url", url]
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            *args,
            *(["--stalled"] if stalled else []),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert child.stdout is not None and child.stdin is not None
        line = await asyncio.wait_for(child.stdout.readline(), 120)
        if line.strip() != b"ready":
            raise SystemExit(f"client process: expected 'ready', got {line!r}")
        connected = clients + (1 if stalled else 0)
        count = (lambda: len(hub)) if kind == "recipe" else (lambda: len(hub.clients))
        while count() < connected:
            await asyncio.sleep(0.01)
        started = time.perf_counter()
        if kind == "recipe":
            for _ in range(messages):
                hub.publish(MESSAGE)
                await asyncio.sleep(0)  # a real publisher awaits something between messages
            done = await asyncio.wait_for(child.stdout.readline(), 300)
            elapsed = time.perf_counter() - started
            delivered = messages
        else:

            async def publish_all() -> None:
                for _ in range(messages):
                    await hub.broadcast(MESSAGE)

            try:
                await asyncio.wait_for(publish_all(), STALL_LIMIT if stalled else 300)
                done = await asyncio.wait_for(child.stdout.readline(), 300)
                delivered = messages
            except asyncio.TimeoutError:
                if not stalled:
                    raise
                done, delivered = b"stalled", hub.sent  # stuck behind the idle client
            elapsed = time.perf_counter() - started
        if done.strip() == b"done":
            child.stdin.close()
            await asyncio.wait_for(child.wait(), 60)
        elif done != b"stalled":
            raise SystemExit(f"client process: expected 'done', got {done!r}")
        return {
            "rate": delivered * clients / elapsed,
            "per_client": delivered / elapsed,
            "seconds": elapsed,
            "delivered": delivered,
            "dropped": getattr(hub, "dropped", 0),
        }
    finally:
        if child is not None and child.returncode is None:
            child.kill()
            await child.wait()
        await runner.cleanup()  # the naive hub's handlers are cancelled after 1 s


def measure(quick: bool) -> Dict[str, Any]:
    plan = [(1, 200 if quick else 5000), (100, 100 if quick else 2000)]
    plan.append((1000, 20 if quick else 300))
    results: List[Dict[str, Any]] = []
    ratios: Dict[str, float] = {}
    single: Dict[str, float] = {}
    for clients, messages in plan:
        for kind in ("recipe", "naive"):
            best = max(
                (asyncio.run(one_run(kind, clients, messages)) for _ in range(2)),
                key=lambda r: r["rate"],
            )
            name = "Broadcaster" if kind == "recipe" else "naive (await each send)"
            print(
                f"{clients:>5,} clients x {messages:,} messages, {name:>24}: "
                f"{best['rate']:>10,.0f} deliveries/s ({best['per_client']:,.0f}/s per client)",
                flush=True,
            )
            results.append(
                {
                    "name": f"{name}, {clients:,} clients",
                    "value": best["rate"],
                    "unit": "messages delivered/s",
                }
            )
            if clients == 1:
                single[kind] = best["per_client"]
            else:
                key = f"{kind}_{clients}_per_client_over_single_client"
                ratios[key] = best["per_client"] / single[kind]
            if kind == "naive":
                recipe_rate = results[-2]["value"]
                ratios[f"recipe_over_naive_{clients}_clients"] = recipe_rate / best["rate"]
    # One more client, which stops reading: 4,000 messages of 100 bytes are more
    # than its buffers hold.  The recipe runs with queue_size=500, so it drops it.
    messages = 4000
    recipe = asyncio.run(one_run("recipe", 100, messages, stalled=True, queue_size=500))
    naive = asyncio.run(one_run("naive", 100, messages, stalled=True))
    print(
        f"  100 clients + 1 stalled, {'Broadcaster':>24}: {recipe['rate']:>10,.0f} "
        f"deliveries/s; all {messages:,} messages; stalled client dropped: {recipe['dropped']}",
        flush=True,
    )
    print(
        f"  100 clients + 1 stalled, {'naive (await each send)':>24}: stuck after "
        f"{naive['delivered']:,} of {messages:,} messages (waited {STALL_LIMIT:g} s)",
        flush=True,
    )
    results.append(
        {
            "name": "Broadcaster, 100 clients + 1 stalled",
            "value": recipe["rate"],
            "unit": "messages delivered/s",
        }
    )
    results.append(
        {
            "name": "naive, 100 clients + 1 stalled: messages sent before it stalled",
            "value": naive["delivered"],
            "unit": f"messages of {messages:,}",
        }
    )
    no_stall = next(r for r in results if r["name"] == "Broadcaster, 100 clients")["value"]
    ratios["recipe_100_with_a_stalled_client_over_without"] = recipe["rate"] / no_stall
    ratios["naive_share_delivered_with_a_stalled_client"] = naive["delivered"] / messages
    return {
        "benchmark": "WebSocket broadcast fan-out with aiohttp",
        "python": platform.python_version(),
        "description": (
            "Deliveries per second (messages x clients / s) of a 100-byte text message, "
            "recipes.realtime.Broadcaster vs awaiting ws.send_str for each client in turn; "
            "clients in a separate process on the same machine"
        ),
        "cpus": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "aiohttp": aiohttp.__version__,
        "results": results,
        "ratios": ratios,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages per run")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument("--clients", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--messages", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--stalled", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.clients:
        asyncio.run(run_clients(args.url, args.clients, args.messages, args.stalled))
        return 0
    # The recipe logs each client it drops; the summary below counts them.
    logging.getLogger("recipes.realtime").setLevel(logging.ERROR)
    data = measure(args.quick)
    print_ratios(data["ratios"], width=44, digits=4)
    write_results(args.json, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
