"""Behaviour, fault, bad-input and load tests for recipes/realtime.py.

Everything runs against aiohttp servers started on 127.0.0.1 in the test, on
the test's own loop (real clock).  The misbehaving peers are real: raw sockets
that send malformed WebSocket frames or never read, aiohttp clients that
never answer a ping, connections aborted without a closing handshake.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import socket
import struct
from typing import Any, AsyncIterator, List, Optional, Tuple

import aiohttp
import pytest
from aiohttp import web

from recipes.realtime import (
    Broadcaster,
    Event,
    EventStreamParser,
    keep_connected,
    read_events,
    serve_websocket,
    stream_events,
)
from tests.conftest import loop_errors, served

WAIT = 10.0  # every wait in these tests is bounded by this many seconds


def app_with(*routes: web.RouteDef, on_shutdown: Any = ()) -> web.Application:
    app = web.Application()
    app.add_routes(routes)
    app.on_shutdown.extend(on_shutdown)
    return app


async def until(condition: Any, timeout: float = WAIT) -> None:
    """Poll ``condition()`` until it is true; fail after ``timeout`` seconds."""

    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


class RawClient:
    """A WebSocket client on a bare socket: it sends whatever bytes it is told to."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, url: str, path: str, *, rcvbuf: Optional[int] = None) -> RawClient:
        host, port = url.replace("http://", "").split(":")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:  # a small window: the server's sends back up quickly
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(
                asyncio.get_running_loop().sock_connect(sock, (host, int(port))), WAIT
            )
            reader, writer = await asyncio.open_connection(sock=sock)
        except BaseException:
            sock.close()
            raise
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        client = cls(reader, writer)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
        if not head.startswith(b"HTTP/1.1 101"):
            await client.abort()
            raise AssertionError(f"handshake refused: {head!r}")
        return client

    def send_frame(self, opcode: int, payload: bytes, *, rsv: int = 0, mask: bool = True) -> None:
        first = 0x80 | (rsv << 4) | opcode
        length = len(payload)
        if length < 126:
            header = struct.pack("!BB", first, (0x80 if mask else 0) | length)
        elif length < 65536:
            header = struct.pack("!BBH", first, (0x80 if mask else 0) | 126, length)
        else:
            header = struct.pack("!BBQ", first, (0x80 if mask else 0) | 127, length)
        if mask:
            key = os.urandom(4)
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
            header += key
        self.writer.write(header + payload)

    async def read_frame(self) -> Tuple[int, bytes]:
        """The next frame from the server (servers do not mask)."""
        first, second = await asyncio.wait_for(self.reader.readexactly(2), WAIT)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return first & 0x0F, await asyncio.wait_for(self.reader.readexactly(length), WAIT)

    async def close_code(self) -> int:
        """Skip data frames until the server's close frame; return its code."""
        while True:
            opcode, payload = await self.read_frame()
            if opcode == 0x8:
                return int(struct.unpack("!H", payload[:2])[0])

    async def abort(self) -> None:
        self.writer.transport.abort()
        await asyncio.sleep(0)


def thin_link(handler: Any) -> Any:
    """Wrap ``handler`` so that the server's send buffer for this client is tiny.

    Linux grows a socket's send buffer up to 4 MiB on its own; a fixed small
    ``SO_SNDBUF`` stands for a client on a slow link, whose backlog then
    reaches the recipe's queue after a few dozen messages instead of thousands.
    """

    async def wrapped(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        sock = request.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        return await handler(request)  # type: ignore[no-any-return]

    return wrapped


# --- the receive loop ---------------------------------------------------------


async def upper(ws: web.WebSocketResponse, text: str) -> None:
    await ws.send_str(text.upper())


@pytest.mark.asyncio
async def test_serve_websocket_answers_and_returns_when_the_client_closes() -> None:
    ended = asyncio.Event()

    async def handler(request: web.Request) -> web.WebSocketResponse:
        try:
            return await serve_websocket(request, upper)
        finally:
            ended.set()

    async with served(app_with(web.get("/ws", handler))) as url:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url + "/ws") as ws:
                for word in ("one", "two", "three"):
                    await ws.send_str(word)
                    assert await ws.receive_str(timeout=WAIT) == word.upper()
        await asyncio.wait_for(ended.wait(), WAIT)


@pytest.mark.parametrize(
    "frame, code",
    [
        pytest.param({"opcode": 0x1, "payload": b"x", "rsv": 0b100}, 1002, id="reserved-bits"),
        pytest.param({"opcode": 0x3, "payload": b"x"}, 1002, id="unknown-opcode"),
        pytest.param({"opcode": 0x1, "payload": b"\xff\xfe"}, 1007, id="invalid-utf8"),
        pytest.param({"opcode": 0x1, "payload": b"a" * 2000}, 1009, id="too-big"),
        pytest.param({"opcode": 0x9, "payload": b"p" * 200}, 1002, id="control-frame-too-long"),
    ],
)
@pytest.mark.asyncio
async def test_malformed_frames_close_the_connection_and_reach_no_handler(
    frame: Any, code: int
) -> None:
    received: List[Any] = []
    ended = asyncio.Event()

    async def record(ws: web.WebSocketResponse, text: str) -> None:
        received.append(text)
        await ws.send_str("ok")

    async def handler(request: web.Request) -> web.WebSocketResponse:
        try:
            return await serve_websocket(request, record, max_msg_size=1024)
        finally:
            ended.set()

    async with served(app_with(web.get("/ws", handler))) as url:
        client = await RawClient.connect(url, "/ws")
        try:
            client.send_frame(0x1, b"fine")
            assert await client.read_frame() == (0x1, b"ok")
            client.send_frame(**frame)
            assert await client.close_code() == code
            await asyncio.wait_for(ended.wait(), WAIT)
        finally:
            await client.abort()
        # The server still serves the next client.
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url + "/ws") as ws:
                await ws.send_str("again")
                assert await ws.receive_str(timeout=WAIT) == "ok"
    assert received == ["fine", "again"]


@pytest.mark.asyncio
async def test_binary_message_closes_with_1003() -> None:
    async def handler(request: web.Request) -> web.WebSocketResponse:
        return await serve_websocket(request, upper)

    async with served(app_with(web.get("/ws", handler))) as url:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url + "/ws") as ws:
                await ws.send_bytes(b"\x00")
                msg = await ws.receive(timeout=WAIT)
                assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 1003)


@pytest.mark.asyncio
async def test_plain_http_request_to_a_websocket_route_is_a_400() -> None:
    async def handler(request: web.Request) -> web.WebSocketResponse:
        return await serve_websocket(request, upper)

    async with served(app_with(web.get("/ws", handler))) as url:
        async with aiohttp.ClientSession() as session:
            async with session.get(url + "/ws") as resp:
                assert resp.status == 400


# --- dead peers and reconnection ---------------------------------------------


@pytest.mark.asyncio
async def test_server_heartbeat_drops_a_client_that_never_answers_pings() -> None:
    hub = Broadcaster(heartbeat=0.2)
    async with served(app_with(web.get("/ws", hub.handler))) as url:
        async with aiohttp.ClientSession() as session:
            # autoping=False and never reading: the pings are never answered.
            ws = await session.ws_connect(url + "/ws", autoping=False)
            try:
                await until(lambda: len(hub) == 1)
                await until(lambda: len(hub) == 0)
            finally:
                await ws.close()


@pytest.mark.asyncio
async def test_serve_websocket_heartbeat_ends_the_handler_of_a_silent_client() -> None:
    ended = asyncio.Event()

    async def handler(request: web.Request) -> web.WebSocketResponse:
        try:
            return await serve_websocket(request, upper, heartbeat=0.2)
        finally:
            ended.set()

    async with served(app_with(web.get("/ws", handler))) as url:
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(url + "/ws", autoping=False)
            try:
                await asyncio.wait_for(ended.wait(), WAIT)
            finally:
                await ws.close()


@pytest.mark.asyncio
async def test_keep_connected_reconnects_after_a_peer_stops_answering_pings() -> None:
    connections: List[str] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        connections.append("hung" if not connections else "ok")
        ws = web.WebSocketResponse(autoping=connections[-1] == "ok")
        await ws.prepare(request)
        if connections[-1] == "ok":
            await ws.send_str("welcome")
        async for _ in ws:
            pass  # the first connection leaves every ping unanswered
        return ws

    inbox: asyncio.Queue[str] = asyncio.Queue()
    async with served(app_with(web.get("/ws", handler))) as url:
        async with aiohttp.ClientSession() as session:
            client = asyncio.ensure_future(
                keep_connected(session, url + "/ws", inbox.put, heartbeat=0.2, first_delay=0.05)
            )
            try:
                assert await asyncio.wait_for(inbox.get(), WAIT) == "welcome"
            finally:
                client.cancel()
                await asyncio.wait([client])
    assert connections == ["hung", "ok"]


@pytest.mark.asyncio
async def test_keep_connected_resubscribes_after_the_server_drops_it() -> None:
    subscriptions: List[str] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        subscriptions.append(await ws.receive_str(timeout=WAIT))
        await ws.send_str(f"update {len(subscriptions)}")
        request.transport.abort()  # type: ignore[union-attr]  # an abrupt drop
        return ws

    async def subscribe(ws: aiohttp.ClientWebSocketResponse) -> None:
        await ws.send_str("subscribe prices")

    inbox: asyncio.Queue[str] = asyncio.Queue()
    async with served(app_with(web.get("/ws", handler))) as url:
        async with aiohttp.ClientSession() as session:
            client = asyncio.ensure_future(
                keep_connected(
                    session, url + "/ws", inbox.put, on_connect=subscribe, first_delay=0.01
                )
            )
            try:
                got = [await asyncio.wait_for(inbox.get(), WAIT) for _ in range(3)]
            finally:
                client.cancel()
                await asyncio.wait([client])
    assert got == ["update 1", "update 2", "update 3"]
    assert subscriptions[:3] == ["subscribe prices"] * 3


@pytest.mark.asyncio
async def test_keep_connected_backs_off_and_gives_up() -> None:
    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ConnectionError, match="4 failed attempts in a row"):
            await keep_connected(
                session,
                f"http://127.0.0.1:{port}/ws",
                asyncio.Queue().put,
                first_delay=0.01,
                max_failures=4,
            )


@pytest.mark.asyncio
async def test_keep_connected_gives_up_on_a_server_that_accepts_and_hangs_up() -> None:
    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.close()
        return ws

    async with served(app_with(web.get("/ws", handler))) as url:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(ConnectionError, match="3 connections in a row"):
                await keep_connected(
                    session, url + "/ws", asyncio.Queue().put, first_delay=0.01, max_failures=3
                )


@pytest.mark.parametrize(
    "kwargs",
    [{"heartbeat": 0}, {"connect_timeout": -1}, {"first_delay": 0}, {"max_failures": 0}],
)
@pytest.mark.asyncio
async def test_keep_connected_refuses_bad_arguments(kwargs: Any) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ValueError):
            await keep_connected(session, "http://127.0.0.1:1/", asyncio.Queue().put, **kwargs)


# --- broadcasting ----------------------------------------------------------------


@pytest.mark.asyncio
async def test_500_clients_one_slow_client_is_dropped_and_the_rest_get_everything() -> None:
    clients, messages = 500, 150
    hub = Broadcaster(queue_size=16, close_timeout=1)
    payload = "m" * 4000
    counts: List[int] = []
    progress = asyncio.Condition()

    async def read_all(ws: aiohttp.ClientWebSocketResponse, index: int) -> None:
        for n in range(messages):
            text = await ws.receive_str(timeout=WAIT)
            assert text == f"{n} {payload}"
            async with progress:
                counts[index] += 1
                progress.notify_all()

    connector = aiohttp.TCPConnector(limit=0)
    routes = (web.get("/ws", hub.handler), web.get("/thin", thin_link(hub.handler)))
    async with served(app_with(*routes)) as url:
        async with aiohttp.ClientSession(connector=connector) as session:
            sockets = [await session.ws_connect(url + "/ws") for _ in range(clients - 1)]
            slow = await RawClient.connect(url, "/thin", rcvbuf=4096)  # never reads
            try:
                await until(lambda: len(hub) == clients)
                counts.extend([0] * len(sockets))
                readers = [asyncio.ensure_future(read_all(ws, i)) for i, ws in enumerate(sockets)]
                for n in range(messages):
                    hub.publish(f"{n} {payload}")
                    async with progress:  # the fast clients keep up: wait for them
                        caught_up = progress.wait_for(lambda n=n: min(counts) > n)
                        await asyncio.wait_for(caught_up, WAIT)
                await asyncio.wait_for(asyncio.gather(*readers), WAIT)
                assert hub.dropped == 1
                assert len(hub) == clients - 1
                assert counts == [messages] * (clients - 1)
            finally:
                await slow.abort()
                for ws in sockets:
                    await ws.close()
        await until(lambda: len(hub) == 0)


@pytest.mark.asyncio
async def test_a_burst_longer_than_the_queue_drops_a_client_that_did_not_read() -> None:
    hub = Broadcaster(queue_size=3)
    async with served(app_with(web.get("/ws", hub.handler))) as url:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url + "/ws") as ws:
                await until(lambda: len(hub) == 1)
                assert [hub.publish(str(n)) for n in range(5)] == [1, 1, 1, 0, 0]
                assert (hub.dropped, len(hub)) == (1, 0)
                got = []
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        got.append(msg.data)
                assert ws.close_code == aiohttp.WSCloseCode.POLICY_VIOLATION
                # What was queued before the drop may or may not have been sent.
                assert got == ["0", "1", "2"][: len(got)]


@pytest.mark.asyncio
async def test_abrupt_disconnects_during_a_broadcast_leave_no_errors_or_clients() -> None:
    hub = Broadcaster(queue_size=1000)
    async with served(app_with(web.get("/ws", hub.handler))) as url:
        with loop_errors() as errors:
            raw = [await RawClient.connect(url, "/ws") for _ in range(50)]
            await until(lambda: len(hub) == 50)
            random.seed(12)
            for n in range(200):
                hub.publish(f"message {n}")
                if n % 4 == 0 and raw:
                    await raw.pop(random.randrange(len(raw))).abort()
                await asyncio.sleep(0)
            for client in raw:
                await client.abort()
            await until(lambda: len(hub) == 0)
            await asyncio.sleep(0.05)
        assert errors == []
        assert hub.dropped == 0


@pytest.mark.asyncio
async def test_on_shutdown_closes_every_connection_with_1001_even_one_that_never_reads() -> None:
    hub = Broadcaster(close_timeout=0.5)
    app = app_with(web.get("/ws", hub.handler), on_shutdown=[hub.on_shutdown])
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        async with aiohttp.ClientSession() as session:
            sockets = [await session.ws_connect(url + "/ws") for _ in range(20)]
            idle = await RawClient.connect(url, "/ws", rcvbuf=4096)
            await until(lambda: len(hub) == 21)
            hub.publish("x" * 200_000)  # fills the idle client's window
            for ws in sockets:
                assert len(await ws.receive_str(timeout=WAIT)) == 200_000
            # Without on_shutdown, cleanup() would wait 60 s for the handlers.
            await asyncio.wait_for(runner.cleanup(), WAIT)
            for ws in sockets:
                msg = await ws.receive(timeout=WAIT)
                assert (msg.type, msg.data, msg.extra) == (
                    aiohttp.WSMsgType.CLOSE,
                    1001,
                    "server shutdown",
                )
                await ws.close()
            await idle.abort()
    finally:
        await runner.cleanup()
    assert len(hub) == 0


@pytest.mark.asyncio
async def test_close_aborts_a_client_that_never_reads_instead_of_waiting_on_it() -> None:
    hub = Broadcaster(close_timeout=0.2)
    async with served(app_with(web.get("/thin", thin_link(hub.handler)))) as url:
        idle = await RawClient.connect(url, "/thin", rcvbuf=4096)
        try:
            await until(lambda: len(hub) == 1)
            hub.publish("x" * 1_000_000)  # far more than the buffers hold
            await asyncio.sleep(0.1)
            await asyncio.wait_for(hub.close_all(), WAIT)
            # Aborted: the unsent data (and the close frame behind it) is thrown
            # away.  transport.close() alone would keep the socket open until
            # this client read it all, then deliver the close frame.
            with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
                while True:
                    opcode, _ = await idle.read_frame()
                    assert opcode != 0x8, "the close frame arrived: the connection was not aborted"
        finally:
            await idle.abort()


@pytest.mark.asyncio
async def test_broadcaster_refuses_connections_after_close_all_and_bad_input() -> None:
    hub = Broadcaster()
    await hub.close_all()
    async with served(app_with(web.get("/ws", hub.handler))) as url:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await session.ws_connect(url + "/ws")
            assert info.value.status == 503
    with pytest.raises(TypeError, match="publish\\(\\) takes a str, got bytes"):
        hub.publish(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="queue_size"):
        Broadcaster(queue_size=0)


@pytest.mark.asyncio
async def test_client_messages_reach_on_text_and_its_errors_close_with_1011() -> None:
    async def relay(ws: web.WebSocketResponse, text: str) -> None:
        if text == "boom":
            raise RuntimeError("boom")
        hub.publish(text)

    hub = Broadcaster(on_text=relay)
    async with served(app_with(web.get("/ws", hub.handler))) as url:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url + "/ws") as a, session.ws_connect(url + "/ws") as b:
                await a.send_str("hello")
                assert await b.receive_str(timeout=WAIT) == "hello"
                assert await a.receive_str(timeout=WAIT) == "hello"
                await a.send_str("boom")
                msg = await a.receive(timeout=WAIT)
                assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 1011)
                await until(lambda: len(hub) == 1)


# --- server-sent events -----------------------------------------------------------


async def numbered(last_id: Optional[str]) -> AsyncIterator[Event]:
    start = int(last_id) + 1 if last_id and last_id.isdigit() else 1
    for n in range(start, 6):
        yield Event(f"event {n}", id=str(n))


@pytest.mark.asyncio
async def test_sse_resumes_after_the_last_event_id() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await stream_events(request, numbered)

    async with served(app_with(web.get("/events", handler))) as url:
        async with aiohttp.ClientSession() as session:
            seen: List[Event] = []
            async with session.get(url + "/events") as resp:
                assert resp.headers["Cache-Control"] == "no-cache"
                async for event in read_events(resp):
                    seen.append(event)
                    if len(seen) == 2:
                        break  # the connection is lost here
            headers = {"Last-Event-ID": seen[-1].id or ""}
            async with session.get(url + "/events", headers=headers) as resp:
                seen.extend([event async for event in read_events(resp)])
            async with session.get(url + "/events", headers={"Last-Event-ID": "junk"}) as resp:
                again = [event.id async for event in read_events(resp)]
    assert [event.data for event in seen] == [f"event {n}" for n in range(1, 6)]
    assert again == ["1", "2", "3", "4", "5"]


@pytest.mark.parametrize("idle", [False, True], ids=["while-producing", "while-idle"])
@pytest.mark.asyncio
async def test_sse_producer_stops_when_the_client_disconnects(idle: bool) -> None:
    stopped = asyncio.Event()
    produced: List[int] = []

    async def tokens(last_id: Optional[str]) -> AsyncIterator[Event]:
        try:
            n = 0
            while True:
                await asyncio.sleep(3600 if idle and n == 1 else 0.01)
                produced.append(n)
                yield Event(f"token {n}")
                n += 1
        finally:
            stopped.set()

    at_return: List[bool] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            return await stream_events(request, tokens, keepalive=0.1)
        finally:
            at_return.append(stopped.is_set())

    async with served(app_with(web.get("/stream", handler))) as url:
        async with aiohttp.ClientSession() as session:
            async with session.get(url + "/stream") as resp:
                assert await resp.content.readline() == b"data: token 0\n"
        await asyncio.wait_for(stopped.wait(), WAIT)
        await until(lambda: bool(at_return))
        # Closed by stream_events itself, not later by the garbage collector.
        assert at_return == [True]
        count = len(produced)
        await asyncio.sleep(0.1)
        assert len(produced) == count  # and it stays stopped


@pytest.mark.asyncio
async def test_sse_keepalive_comments_while_the_producer_is_quiet() -> None:
    async def slow(last_id: Optional[str]) -> AsyncIterator[Event]:
        await asyncio.sleep(0.35)
        yield Event("done")

    async def handler(request: web.Request) -> web.StreamResponse:
        return await stream_events(request, slow, keepalive=0.1)

    async with served(app_with(web.get("/slow", handler))) as url:
        async with aiohttp.ClientSession() as session:
            async with session.get(url + "/slow") as resp:
                body = await asyncio.wait_for(resp.text(), WAIT)
    assert body.endswith("data: done\n\n")
    assert body.count(": keep-alive\n\n") >= 2
    parser = EventStreamParser()
    assert parser.feed(body) == [Event("done")]


@pytest.mark.asyncio
async def test_sse_producer_error_closes_the_stream_and_the_generator() -> None:
    closed = asyncio.Event()

    async def broken(last_id: Optional[str]) -> AsyncIterator[Event]:
        try:
            yield Event("first")
            raise RuntimeError("upstream failed")
        finally:
            closed.set()

    async def handler(request: web.Request) -> web.StreamResponse:
        return await stream_events(request, broken)

    async with served(app_with(web.get("/broken", handler))) as url:
        async with aiohttp.ClientSession() as session:
            async with session.get(url + "/broken") as resp:
                got = []
                with pytest.raises(aiohttp.ClientPayloadError):
                    async for event in read_events(resp):
                        got.append(event.data)
    assert got == ["first"]
    assert closed.is_set()


# --- the parser ---------------------------------------------------------------------


def feed_in_pieces(text: str, sizes: List[int]) -> Tuple[EventStreamParser, List[Event]]:
    parser = EventStreamParser()
    events: List[Event] = []
    position = 0
    for size in sizes:
        events += parser.feed(text[position : position + size])
        position += size
    events += parser.feed(text[position:])
    return parser, events


@pytest.mark.parametrize("seed", range(20))
def test_encode_then_parse_in_random_pieces_round_trips(seed: int) -> None:
    rng = random.Random(seed)
    alphabet = ["a", "b", " ", ":", "\n", "\r", "\r\n", "é", "\u2028", "\x0b", "data:", "id"]
    originals = [
        Event(
            "".join(rng.choice(alphabet) for _ in range(rng.randrange(12))),
            event=rng.choice(["message", "update", "x y"]),
            id=rng.choice([None, "1", "abc", " spaced"]),
        )
        for _ in range(8)
    ]
    text = "\ufeff" + b"".join(event.encode() for event in originals).decode()
    sizes = [rng.randrange(1, 6) for _ in range(len(text))]
    _, events = feed_in_pieces(text, sizes)
    expected = []
    last_id: Optional[str] = None
    for event in originals:
        last_id = event.id if event.id is not None else last_id
        data = event.data.replace("\r\n", "\n").replace("\r", "\n")
        expected.append(Event(data, event.event, last_id))
    assert events == expected


@pytest.mark.parametrize(
    "stream, expected",
    [
        ("data\n\n", [Event("")]),
        ("data:\n\n", [Event("")]),
        ("data:  two spaces\n\n", [Event(" two spaces")]),
        ("data:a\ndata:\ndata:b\n\n", [Event("a\n\nb")]),
        ("event: x\n\n", []),
        ("id: 5\n\nid\ndata: reset\n\n", [Event("reset")]),
        ("id: a\0b\ndata: nul\n\n", [Event("nul")]),
        ("data: no end", []),
        ("data: 1\r\rdata: 2\r\n\r\n", [Event("1"), Event("2")]),
        ("data: a\r\ndata: b\r\n\r\n", [Event("a\nb")]),
        (":comment\nDATA: case\nData: x\n\n", []),
        ("\ufeffdata: bom\n\n", [Event("bom")]),
    ],
)
def test_parser_follows_the_standard(stream: str, expected: List[Event]) -> None:
    for size in (1, 2, len(stream) or 1):
        _, events = feed_in_pieces(stream, [size] * len(stream))
        assert events == expected


def test_parser_retry_is_kept_only_when_it_is_all_digits() -> None:
    parser = EventStreamParser()
    parser.feed("retry: 1500\n\nretry: 1.5\n\nretry: ١٢\n\nretry: -1\n\n")
    assert parser.retry == 1500


def test_parser_limits_lines_and_events() -> None:
    with pytest.raises(ValueError, match="line longer than 100"):
        EventStreamParser(max_event_size=100).feed("data: " + "x" * 200)
    parser = EventStreamParser(max_event_size=100)
    with pytest.raises(ValueError, match="event larger than 100"):
        for _ in range(20):
            parser.feed("data: " + "x" * 10 + "\n")


@pytest.mark.parametrize(
    "event, message",
    [
        (Event("x", event="a\nb"), "line break"),
        (Event("x", id="a\rb"), "line break"),
        (Event("x", id="a\0b"), "NUL"),
        (Event("x", retry=-1), "retry"),
        (Event("x", retry=True), "retry"),
    ],
)
def test_event_encode_refuses_what_would_corrupt_the_stream(event: Event, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        event.encode()


@pytest.mark.asyncio
async def test_read_events_replaces_invalid_utf8_split_across_chunks() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for piece in (b"data: caf\xc3", b"\xa9 \xff\n", b"\n"):
            await response.write(piece)
            await asyncio.sleep(0.01)
        await response.write_eof()
        return response

    async with served(app_with(web.get("/e", handler))) as url:
        async with aiohttp.ClientSession() as session:
            async with session.get(url + "/e") as resp:
                events = [event async for event in read_events(resp)]
    assert events == [Event("café \ufffd")]
