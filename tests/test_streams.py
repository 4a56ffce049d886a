"""Behaviour, fault, bad-input and load tests for recipes/streams.py.

Every test talks over real sockets on 127.0.0.1 (or a socket pair); nothing is
mocked.  Timing tests run on the virtual clock (``run_virtual``), the load tests
on the real clock (``@pytest.mark.asyncio``).  Waits are bounded with timeouts,
so a hang fails instead of stalling the run, and each test checks that it left
no socket open (``/proc/self/fd``) and no task running.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
import sys
from typing import Any, AsyncIterator, Iterator, List, Optional, Tuple

import pytest

from recipes.streams import (
    LineClient,
    LineServer,
    LineTooLong,
    ProtocolError,
    close_writer,
    read_frame,
    read_line,
    send_line,
    write_frame,
)

HANG = 60.0  # bound for waits that should end much sooner
HIGH_WATER = 64 * 1024  # asyncio's default high-water mark for socket transports


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def no_leaked_fds() -> Iterator[None]:
    """Fail if the test leaves a file descriptor (socket) open."""
    gc.collect()
    before = open_fds()
    yield
    gc.collect()
    assert open_fds() <= before, "the test left sockets open"


@contextlib.asynccontextmanager
async def running(server: LineServer) -> AsyncIterator[LineServer]:
    await server.start("127.0.0.1", 0, backlog=2048)
    try:
        yield server
    finally:
        await asyncio.wait_for(server.shutdown(deadline=1), HANG)


async def echo(line: bytes) -> bytes:
    return line


async def connect(port: int) -> Tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), HANG)


async def read_all(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.read(), HANG)


def own_tasks() -> List[asyncio.Task[Any]]:
    current = asyncio.current_task()
    return [t for t in asyncio.all_tasks() if t is not current and not t.done()]


# --- framing ------------------------------------------------------------------


def test_read_line_accepts_a_line_of_exactly_the_limit(run_virtual: Any) -> None:
    async def main() -> Any:
        reader = asyncio.StreamReader(limit=8)
        reader.feed_data(b"12345678\n123456789\n")
        first = await read_line(reader)
        with pytest.raises(LineTooLong) as caught:
            await read_line(reader)
        return first, caught.value.limit

    assert run_virtual(main) == (b"12345678", 8)


def test_read_line_rejects_an_endless_line_without_a_newline(run_virtual: Any) -> None:
    async def main() -> None:
        reader = asyncio.StreamReader(limit=16)
        reader.feed_data(b"x" * 17)  # no separator yet, but already over the limit
        with pytest.raises(LineTooLong):
            await asyncio.wait_for(read_line(reader), 1)

    run_virtual(main)


def test_read_line_deadline_covers_the_whole_line(run_virtual: Any) -> None:
    async def main() -> Optional[BaseException]:
        reader = asyncio.StreamReader()

        async def trickle() -> None:
            for _ in range(1000):  # one byte a second: 1,000 s for the whole line
                await asyncio.sleep(1)
                reader.feed_data(b"x")

        feeder = asyncio.create_task(trickle())
        reading = asyncio.create_task(read_line(reader, timeout=5))
        try:
            await asyncio.wait([reading], timeout=60)  # bound: far less than 1,000 s
        finally:
            feeder.cancel()
            reading.cancel()
            await asyncio.gather(feeder, reading, return_exceptions=True)
        return None if reading.cancelled() else reading.exception()

    assert isinstance(run_virtual(main), asyncio.TimeoutError)


def test_read_frame_round_trip_over_a_socket_pair(run_virtual: Any, no_leaked_fds: None) -> None:
    async def main() -> List[Optional[bytes]]:
        ours, theirs = socket.socketpair()
        _a_reader, a_writer = await asyncio.open_connection(sock=ours)
        b_reader, b_writer = await asyncio.open_connection(sock=theirs)
        try:
            payloads = [b"", b"\n\n", bytes(range(256)) * 1000]
            for payload in payloads:
                await write_frame(a_writer, payload, timeout=HANG)
            a_writer.write_eof()
            return [await read_frame(b_reader, max_size=10**6, timeout=HANG) for _ in range(4)]
        finally:
            await close_writer(a_writer)
            await close_writer(b_writer)

    assert run_virtual(main) == [b"", b"\n\n", bytes(range(256)) * 1000, None]


def test_read_frame_refuses_oversized_and_truncated_frames(run_virtual: Any) -> None:
    async def main() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(b"\x00\x00\x04\x01")
        with pytest.raises(ProtocolError, match="1025 bytes exceeds max_size 1024"):
            await read_frame(reader, max_size=1024)
        reader = asyncio.StreamReader()
        reader.feed_data(b"\x00\x00")
        reader.feed_eof()
        with pytest.raises(ProtocolError, match="frame header"):
            await read_frame(reader, max_size=1024)

    run_virtual(main)


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda w: send_line(w, b"a\nb"), ValueError),
        (lambda w: send_line(w, "text"), TypeError),
        (lambda w: send_line(w, b"ok", timeout=0), ValueError),
        (lambda w: write_frame(w, "text"), TypeError),
        (lambda w: close_writer(w, timeout=-1), ValueError),
    ],
)
def test_bad_arguments_raise_clear_errors(run_virtual: Any, call: Any, error: type) -> None:
    async def main() -> None:
        ours, theirs = socket.socketpair()
        _reader, writer = await asyncio.open_connection(sock=ours)
        try:
            with pytest.raises(error):
                await call(writer)
        finally:
            await close_writer(writer)
            theirs.close()

    run_virtual(main)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_connections": 0}, "max_connections must be >= 1"),
        ({"idle_timeout": 0}, "idle_timeout must be > 0"),
        ({"request_timeout": -1}, "request_timeout must be > 0"),
        ({"max_line": 0}, "max_line must be >= 1"),
    ],
)
def test_line_server_refuses_bad_settings(kwargs: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LineServer(echo, **kwargs)


def test_line_server_refuses_a_handler_that_is_not_callable() -> None:
    with pytest.raises(TypeError, match="handler must be an async callable"):
        LineServer(b"echo")  # type: ignore[arg-type]


# --- the server: faults ---------------------------------------------------------


def test_slowloris_client_is_cut_off_at_the_idle_deadline(
    run_virtual: Any, no_leaked_fds: None
) -> None:
    async def main() -> Tuple[bytes, float, int]:
        async with running(LineServer(echo, idle_timeout=5)) as server:
            reader, writer = await connect(server.port)
            written = 0

            async def trickle() -> None:
                nonlocal written
                with contextlib.suppress(ConnectionError):
                    for _ in range(1000):  # one byte a second, never a newline
                        writer.write(b"x")
                        written += 1
                        await asyncio.sleep(1)

            feeder = asyncio.create_task(trickle())
            # Bounded far below the 1,000 s of trickling: the deadline must end it.
            reply = await asyncio.wait_for(reader.read(), 60)
            trickled = written
            feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feeder
            await close_writer(writer)
            await asyncio.sleep(2)  # the server's lingering close ends
            return reply, trickled, server.connections

    reply, trickled, connections = run_virtual(main)
    assert reply == b"ERR idle timeout\n"
    assert 1 <= trickled < 1000
    assert connections == 0


def test_oversized_line_gets_an_error_and_other_clients_carry_on(
    run_virtual: Any, no_leaked_fds: None
) -> None:
    async def main() -> Tuple[bytes, bytes, bytes]:
        async with running(LineServer(echo, max_line=1024)) as server:
            async with await LineClient.connect("127.0.0.1", server.port) as other:
                reader, writer = await connect(server.port)
                writer.write(b"y" * 100_000 + b"\n")
                reply = await read_all(reader)
                await close_writer(writer)
                exact = await other.request(b"z" * 1024)
                return reply, exact, await other.request(b"still here")

    reply, exact, still = run_virtual(main)
    assert reply == b"ERR line too long\n"
    assert exact == b"z" * 1024
    assert still == b"still here"


def test_half_closed_connection_gets_every_reply_then_eof(
    run_virtual: Any, no_leaked_fds: None
) -> None:
    async def main() -> Tuple[bytes, bytes]:
        async def slow_upper(line: bytes) -> bytes:
            await asyncio.sleep(0.5)
            return line.upper()

        async with running(LineServer(slow_upper)) as server:
            reader, writer = await connect(server.port)
            writer.write(b"one\ntwo\r\nthree\n")
            writer.write_eof()  # no more requests, but we still read
            replies = await read_all(reader)
            await close_writer(writer)
            # A last line cut short by the end of file is not answered.
            reader, writer = await connect(server.port)
            writer.write(b"four\nfiv")
            writer.write_eof()
            partial = await read_all(reader)
            await close_writer(writer)
            return replies, partial

    replies, partial = run_virtual(main)
    assert replies == b"ONE\nTWO\nTHREE\n"
    assert partial == b"FOUR\n"


def test_client_that_never_reads_cannot_grow_the_servers_buffer(
    run_virtual: Any, no_leaked_fds: None
) -> None:
    reply_size = 16 * 1024

    async def main() -> Tuple[int, int, int, bool]:
        async def big(line: bytes) -> bytes:
            return b"r" * reply_size

        sizes: List[int] = []
        async with running(LineServer(big, write_timeout=5)) as server:
            _reader, writer = await connect(server.port)

            async def flood() -> None:  # 4,000 requests = 64 MB of replies, none read
                with contextlib.suppress(ConnectionError):
                    for _ in range(4000):
                        writer.write(b"give\n")
                        await writer.drain()

            flooder = asyncio.create_task(flood())
            for _ in range(200):  # sample the server's side while it writes
                await asyncio.sleep(0.05)
                for connection in list(server._connections):
                    sizes.append(connection.writer.transport.get_write_buffer_size())
                if server.connections == 0 and sizes:
                    break
            await asyncio.wait_for(flooder, HANG)
            aborted = server.connections == 0
            transport = writer.transport
            transport.abort()  # our own buffer may hold unsent requests
            await close_writer(writer)
            return max(sizes), len(sizes), transport.get_write_buffer_size(), aborted

    biggest, samples, _, aborted = run_virtual(main)
    assert samples > 0
    assert biggest <= HIGH_WATER + reply_size + len(b"\n")
    assert aborted, "the server must give up on a client that stopped reading"


def test_request_timeout_and_handler_errors_keep_the_connection(
    run_virtual: Any, no_leaked_fds: None, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> List[bytes]:
        async def handler(line: bytes) -> bytes:
            if line == b"slow":
                await asyncio.sleep(3600)
            if line == b"boom":
                raise RuntimeError("boom")
            if line == b"two lines":
                return b"a\nb"
            return line

        async with running(LineServer(handler, request_timeout=2)) as server:
            async with await LineClient.connect("127.0.0.1", server.port) as client:
                return [
                    await client.request(request)
                    for request in (b"slow", b"boom", b"two lines", b"ok")
                ]

    with caplog.at_level(logging.ERROR, logger="recipes.streams"):
        replies = run_virtual(main)
    assert replies == [
        b"ERR request timeout",
        b"ERR internal error",
        b"ERR internal error",
        b"ok",
    ]
    assert len(caplog.records) == 2


def test_connection_limit_rejects_the_extra_clients(run_virtual: Any, no_leaked_fds: None) -> None:
    async def main() -> Tuple[List[bytes], int]:
        async with running(LineServer(echo, max_connections=10)) as server:
            held = [await LineClient.connect("127.0.0.1", server.port) for _ in range(10)]
            for client in held:
                assert await client.request(b"hi") == b"hi"
            peak = server.connections
            rejected = []
            for _ in range(5):
                reader, writer = await connect(server.port)
                rejected.append(await read_all(reader))
                await close_writer(writer)
            await held[0].close()
            await asyncio.sleep(0.1)  # the server notices the end of file
            async with await LineClient.connect("127.0.0.1", server.port) as late:
                rejected.append(await late.request(b"room now"))
            for client in held:
                await client.close()
            return rejected, peak

    rejected, peak = run_virtual(main)
    assert peak == 10
    assert rejected == [b"ERR busy\n"] * 5 + [b"room now"]


# --- graceful shutdown --------------------------------------------------------------


def test_shutdown_finishes_requests_in_flight_and_cuts_off_the_rest(
    run_virtual: Any, no_leaked_fds: None
) -> None:
    async def main() -> Any:
        async def work(line: bytes) -> bytes:
            await asyncio.sleep(float(line))
            return b"done " + line

        server = LineServer(work)
        await server.start("127.0.0.1", 0)
        port = server.port
        clients = [await LineClient.connect("127.0.0.1", port) for _ in range(3)]
        requests = [
            asyncio.create_task(clients[0].request(b"3")),
            asyncio.create_task(clients[1].request(b"100")),
        ]
        await asyncio.sleep(1)
        # Bounded below the 100 s request: the deadline must cut it off.
        await asyncio.wait_for(server.shutdown(deadline=5), HANG)
        outcomes = await asyncio.gather(*requests, return_exceptions=True)
        idle = await asyncio.gather(clients[2].request(b"0"), return_exceptions=True)
        for client in clients:
            await client.close()
        with pytest.raises(OSError):
            await LineClient.connect("127.0.0.1", port, timeout=5)
        leftover = own_tasks()
        return outcomes, idle, leftover

    outcomes, idle, leftover = run_virtual(main)
    assert outcomes[0] == b"done 3"
    assert isinstance(outcomes[1], ConnectionError)
    assert isinstance(idle[0], ConnectionError)  # closed when the shutdown began
    assert leftover == []


def test_shutdown_does_not_hang_on_a_client_that_never_reads(
    run_virtual: Any, no_leaked_fds: None
) -> None:
    async def main() -> int:
        async def big(line: bytes) -> bytes:
            return b"r" * 100_000

        server = LineServer(big, write_timeout=3600)
        await server.start("127.0.0.1", 0)
        _reader, writer = await connect(server.port)
        for _ in range(200):
            writer.write(b"more\n")
        await asyncio.sleep(1)  # the server is stuck in drain() on this client
        # write_timeout is an hour: only the shutdown's deadline can end this in time.
        await asyncio.wait_for(server.shutdown(deadline=2), HANG)
        writer.transport.abort()
        await close_writer(writer)
        return server.connections

    assert run_virtual(main) == 0


def test_shutdown_closes_connections_even_when_its_caller_is_cancelled(
    run_virtual: Any, no_leaked_fds: None
) -> None:
    async def main() -> Tuple[bool, int]:
        async def forever(line: bytes) -> bytes:
            await asyncio.sleep(3600)
            return line

        server = LineServer(forever)
        await server.start("127.0.0.1", 0)
        client = await LineClient.connect("127.0.0.1", server.port)
        request = asyncio.create_task(client.request(b"x"))
        await asyncio.sleep(0.5)
        stopper = asyncio.create_task(server.shutdown(deadline=60))
        await asyncio.sleep(1)
        stopper.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(stopper, HANG)
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(request, HANG)
        await client.close()
        return stopper.cancelled(), server.connections

    assert run_virtual(main) == (True, 0)


@pytest.mark.skipif(sys.version_info < (3, 12, 1), reason="wait_closed() waits since 3.12.1")
def test_bare_async_with_server_waits_for_idle_clients(run_virtual: Any) -> None:
    """The pitfall the chapter warns about, so that the warning stays true."""

    async def main() -> bool:
        async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await reader.read()
            finally:
                await close_writer(writer)

        server = await asyncio.start_server(hold, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        _reader, writer = await connect(port)
        await asyncio.sleep(0.1)
        server.close()
        hung = False
        try:
            await asyncio.wait_for(server.wait_closed(), 10)
        except asyncio.TimeoutError:
            hung = True
        await close_writer(writer)
        await asyncio.wait_for(server.wait_closed(), HANG)
        return hung

    assert run_virtual(main)


# --- the client ---------------------------------------------------------------------


def test_client_closes_the_connection_after_a_timeout_or_cancellation(
    run_virtual: Any, no_leaked_fds: None
) -> None:
    async def main() -> None:
        async def slow(line: bytes) -> bytes:
            await asyncio.sleep(10)
            return line

        async with running(LineServer(slow)) as server:
            client = await LineClient.connect("127.0.0.1", server.port, timeout=1)
            with pytest.raises(asyncio.TimeoutError, match="no reply within 1 s"):
                await client.request(b"a")
            with pytest.raises(ConnectionError, match="the connection is closed"):
                await client.request(b"b")
            await client.close()

            client = await LineClient.connect("127.0.0.1", server.port)
            task = asyncio.create_task(client.request(b"c"))
            await asyncio.sleep(1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            with pytest.raises(ConnectionError):
                await client.request(b"d")  # the late reply to "c" must never be read
            await client.close()

    run_virtual(main)


def test_client_reports_a_reply_that_is_too_long(run_virtual: Any, no_leaked_fds: None) -> None:
    async def main() -> None:
        async def huge(line: bytes) -> bytes:
            return b"h" * 5000

        async with running(LineServer(huge)) as server:
            client = await LineClient.connect("127.0.0.1", server.port, limit=1000)
            with pytest.raises(LineTooLong):
                await client.request(b"x")
            with pytest.raises(ConnectionError):
                await client.request(b"y")
            await client.close()

    run_virtual(main)


# --- load (real clock) ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_thousand_concurrent_clients() -> None:
    gc.collect()
    fds_before = open_fds()  # measured here: the test's event loop holds fds of its own

    async def handler(line: bytes) -> bytes:
        await asyncio.sleep(0.001)
        return b"re:" + line

    async def one(port: int, number: int) -> List[bytes]:
        async with await LineClient.connect("127.0.0.1", port, timeout=HANG) as client:
            return [await client.request(b"%d-%d" % (number, i)) for i in range(5)]

    peak = 0
    async with running(LineServer(handler, max_connections=1000)) as server:

        async def watch() -> None:
            nonlocal peak
            while True:
                peak = max(peak, server.connections)
                await asyncio.sleep(0.005)

        watcher = asyncio.create_task(watch())
        try:
            results = await asyncio.wait_for(
                asyncio.gather(*(one(server.port, n) for n in range(1000))), HANG
            )
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        for _ in range(100):
            if server.connections == 0:
                break
            await asyncio.sleep(0.01)
        assert server.connections == 0
    assert results == [[b"re:%d-%d" % (n, i) for i in range(5)] for n in range(1000)]
    assert peak > 100  # they really overlapped
    assert own_tasks() == []
    gc.collect()
    assert open_fds() <= fds_before, "the test left sockets open"
