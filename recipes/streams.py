"""The ``asyncio`` streams API makes a TCP server look like ten lines of code,
and those ten lines hold a slow client's data in memory without a bound, wait
for ever on a peer that stopped talking, accept connections until the process
runs out of file descriptors, and hang (or end too early) when you stop them.
This chapter builds a line-protocol server and client on
:func:`asyncio.start_server` and :func:`asyncio.open_connection` that handle
all of that: framing that rejects oversized input, backpressure with
:meth:`~asyncio.StreamWriter.drain`, idle and per-request timeouts, a
connection limit, and a graceful shutdown with a deadline.

Framing messages with readuntil() and readexactly()
---------------------------------------------------

.. index::
   single: framing
   pair: StreamReader; readuntil
   pair: StreamReader; readexactly
   single: LimitOverrunError
   single: IncompleteReadError
   single: error messages; Separator is not found, and chunk exceed the limit
   single: error messages; Separator is found, but chunk is longer than limit
   single: error messages; bytes read on a total of undefined expected bytes

TCP delivers a stream of bytes, not messages: one ``read()`` may return half
a request or three of them.  A protocol needs *framing*, and the two common
ones map onto two :class:`asyncio.StreamReader` methods: a terminator
(``readuntil(b"\\n")``) or a length prefix (``readexactly(n)``).  A
:class:`~asyncio.StreamReader` fed by hand behaves exactly like one fed by a
socket, which makes the failure cases easy to see:

>>> import asyncio
>>> reader = asyncio.StreamReader(limit=8)
>>> reader.feed_data(b"PING\\nTOO-LONG-LINE\\n")
>>> await reader.readuntil(b"\\n")
b'PING\\n'
>>> await reader.readuntil(b"\\n")
Traceback (most recent call last):
...
asyncio.exceptions.LimitOverrunError: Separator is found, but chunk is ...

:exc:`asyncio.LimitOverrunError` means "no terminator within *limit* bytes"
(the reader's ``limit``, 64 KiB unless you pass ``limit=`` to
``start_server``/``open_connection``).  It is raised both when the terminator
comes too late and when none has arrived yet while the buffer already holds
more than *limit* bytes, so a client cannot make the server buffer an
endless line.  The bytes stay in the buffer; the exception's ``consumed``
attribute counts them (up to the terminator, when one was found).
:meth:`~asyncio.StreamReader.readline` raises :exc:`ValueError` with the same
message instead and drops the buffered bytes, so the caller cannot tell
whether what it reads next is a new line or the rest of the long one.

At end of stream, both methods raise :exc:`asyncio.IncompleteReadError`
(a subclass of :exc:`EOFError`), with what did arrive in ``partial``:

>>> reader = asyncio.StreamReader()
>>> reader.feed_data(b"half a li")
>>> reader.feed_eof()
>>> try:
...     await reader.readuntil(b"\\n")
... except asyncio.IncompleteReadError as exc:
...     print(exc)
...     print(exc.partial, exc.expected)
9 bytes read on a total of undefined expected bytes
b'half a li' None

An empty ``partial`` is the normal end of a conversation (the peer closed
between two messages); a non-empty one is a truncated message.
:func:`read_line` and :func:`read_frame` make that distinction for you and
turn the stream errors into :exc:`ProtocolError`:

>>> from recipes.streams import ProtocolError, read_line
>>> reader = asyncio.StreamReader(limit=8)
>>> reader.feed_data(b"PING\\r\\nTOO-LONG-LINE\\n")
>>> await read_line(reader)
b'PING'
>>> await read_line(reader)
Traceback (most recent call last):
...
recipes.streams.LineTooLong: line longer than 8 bytes

For binary payloads, which may contain any byte, put the length in front
instead: :func:`write_frame` sends a 4-byte size and then the payload,
:func:`read_frame` reads the size with ``readexactly(4)`` and then exactly
that many bytes, refusing sizes above *max_size* before it reads any.  Here
both ends of a socket pair:

>>> import socket
>>> from recipes.streams import close_writer, read_frame, write_frame
>>> left, right = socket.socketpair()
>>> _, out = await asyncio.open_connection(sock=left)
>>> into, back = await asyncio.open_connection(sock=right)
>>> await write_frame(out, b"two\\nlines", timeout=5)
>>> await read_frame(into, max_size=1024, timeout=5)
b'two\\nlines'
>>> await close_writer(out)
>>> await read_frame(into, max_size=1024, timeout=5) is None
True
>>> await close_writer(back)

.. important::

   After a :exc:`LineTooLong` (or any :exc:`ProtocolError`) the stream is
   out of step: nobody knows where the next message starts.  Answer with an
   error if you like, then close the connection; do not read on.

Writing with backpressure
-------------------------

.. index::
   single: backpressure; streams
   pair: StreamWriter; drain
   pair: write buffer; high-water mark
   single: get_write_buffer_size
   single: set_write_buffer_limits
   single: slow reader

:meth:`~asyncio.StreamWriter.write` never blocks: it hands the bytes to the
transport, which keeps whatever the socket does not take *in memory*.  A
client that never reads makes that buffer grow with every ``write()``.
``await writer.drain()`` is the brake: it returns at once while the buffer is
below the transport's high-water mark (64 KiB by default) and otherwise
waits until it has fallen below the low-water mark (a quarter of that).
:func:`send_line` writes one line and drains, with a timeout, so a peer that
stops reading costs at most one high-water mark of memory and then an
error.  Here the peer is the other end of a socket pair, which nobody reads:

>>> import socket
>>> from recipes.streams import send_line
>>> ours, theirs = socket.socketpair()
>>> reader, writer = await asyncio.open_connection(sock=ours)
>>> line = b"x" * 1023
>>> sent = 0
>>> try:
...     while True:
...         await send_line(writer, line, timeout=0.2)
...         sent += 1024
... except asyncio.TimeoutError:
...     print("peer stopped reading")
peer stopped reading
>>> buffered = writer.transport.get_write_buffer_size()
>>> buffered <= 64 * 1024 + 1024 < sent
True

The kernel's socket buffers took the first part, then the transport's
buffer filled up to the high-water mark, and ``drain()`` waited until the
timeout ended it.  Without the ``drain()``, the loop would have run until
the process ran out of memory.  Closing such a connection has the same
problem (``close()`` waits to send the buffer first), so
:func:`close_writer` gives up after its timeout and aborts:

>>> from recipes.streams import close_writer
>>> await close_writer(writer, timeout=0.2)
>>> theirs.close()

``writer.transport.set_write_buffer_limits(high=...)`` changes the mark.  A
smaller one bounds memory more tightly per connection (multiply by the
number of connections); a larger one lets a fast peer receive in bigger
bursts.

.. important::

   On Python 3.8 and 3.9, two tasks that call ``drain()`` on the same writer
   while it waits fail with a bare :exc:`AssertionError`; 3.10 lets several
   wait.  Either way, have one task write to a connection, or take an
   :class:`asyncio.Lock` around each write-and-drain, so that two messages
   cannot interleave.

Serving a line protocol
-----------------------

.. index::
   single: start_server
   single: LineServer
   single: slowloris
   pair: timeout; idle connection
   pair: timeout; per request
   single: connection limit

A handler that reads lines until end of file is the textbook server, and it
has a hole in each line: a client that sends nothing (or one byte a minute,
the *slowloris* attack) holds a connection and a task for ever, a slow
request holds them too, and nothing bounds the number of connections.
:class:`LineServer` wraps :func:`asyncio.start_server` and your request
handler, an ``async def handle(line: bytes) -> bytes`` that answers one
line with one line:

>>> from recipes.streams import LineClient, LineServer
>>> async def shout(line):
...     return line.upper()
>>> server = LineServer(shout, idle_timeout=0.5, request_timeout=5)
>>> await server.start("127.0.0.1", 0)
>>> async with await LineClient.connect("127.0.0.1", server.port) as client:
...     print(await client.request(b"hello"))
...     print(await client.request(b"again"))
b'HELLO'
b'AGAIN'

The idle timeout (half a second here, so that the example runs quickly) is
a deadline for a *whole* line, so trickling bytes does not keep a
connection alive; when it expires the server says so and closes:

>>> reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
>>> for byte in b"slow":
...     writer.write(bytes([byte]))
...     await asyncio.sleep(0.2)
>>> await reader.read()
b'ERR idle timeout\\n'
>>> await close_writer(writer)

A handler that takes longer than *request_timeout* is cancelled and the
client gets ``ERR request timeout``; a handler that raises gets ``ERR
internal error`` (and a log record on the ``recipes.streams`` logger); in both
cases the connection stays usable.  A line longer than *max_line* gets
``ERR line too long`` and the connection is closed, as the framing section
explains.  Beyond *max_connections*, a new connection is answered with
``ERR busy`` and closed at once:

>>> await server.shutdown()
>>> server = LineServer(shout, max_connections=1)
>>> await server.start("127.0.0.1", 0)
>>> first = await LineClient.connect("127.0.0.1", server.port)
>>> await first.request(b"in")
b'IN'
>>> reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
>>> await reader.read()
b'ERR busy\\n'
>>> await close_writer(writer)
>>> await first.close()
>>> await server.shutdown()

Rejecting is deliberate: an accepted connection already costs a socket, and
a client that waits without an answer only retries later, holding it.

.. important::

   Closing a socket while the peer's data is still unread makes the kernel
   reset the connection, and the peer may then lose the error line you
   just wrote.  Before it closes after an error, :class:`LineServer`
   half-closes (``write_eof()``) and reads and drops what the client still
   sends, for at most a second: a *lingering close*.

Calling a line-protocol server
------------------------------

.. index::
   single: open_connection
   single: LineClient
   single: half-close
   pair: StreamWriter; write_eof
   pair: StreamWriter; wait_closed
   single: warnings; unclosed <StreamWriter
   single: warnings; unclosed transport
   single: error messages; Event loop is closed

:class:`LineClient` connects with a timeout, sends one request at a time and
reads its reply.  A request that times out leaves the connection out of step
(its reply may still arrive and would be read as the next reply), so the
client closes the connection then, and every later request fails fast:

>>> async def slow(line):
...     await asyncio.sleep(10)
...     return line
>>> server = LineServer(slow)
>>> await server.start("127.0.0.1", 0)
>>> client = await LineClient.connect("127.0.0.1", server.port)
>>> try:
...     await client.request(b"one", timeout=0.2)
... except asyncio.TimeoutError as exc:
...     print("timed out:", exc)
timed out: no reply within 0.2 s; the connection is closed
>>> await client.request(b"two")
Traceback (most recent call last):
...
ConnectionError: the connection is closed
>>> await server.shutdown(deadline=0.2)

Catch :exc:`asyncio.TimeoutError`: it is the builtin :exc:`TimeoutError`
since Python 3.11 and a class of its own before, so it is right on every
version.

A client may also *half-close* a connection: ``writer.write_eof()`` says
"no more requests" while it keeps reading the replies.  :class:`LineServer`
answers every complete line it received before the end of file, then closes:

>>> server = LineServer(shout)
>>> await server.start("127.0.0.1", 0)
>>> reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
>>> writer.write(b"one\\ntwo\\n")
>>> writer.write_eof()
>>> await reader.read()
b'ONE\\nTWO\\n'
>>> await close_writer(writer)
>>> await server.shutdown()

.. important::

   Close every writer, and wait for it: :func:`close_writer` calls
   ``close()``, then waits (with a timeout) in ``wait_closed()``, and aborts
   the connection if the peer does not let it finish.  Since Python 3.11.5
   a writer that is garbage-collected while still open emits
   ``ResourceWarning: unclosed <StreamWriter ...>`` (and on every version
   its socket, ``ResourceWarning: unclosed transport <...>``).  Left to the
   garbage collector after the event loop has closed, an open writer logs
   ``RuntimeError: Event loop is closed`` instead on Python 3.11.5, 3.11.6
   and 3.12.0, and so do transports on Windows.

Shutting down gracefully
------------------------

.. index::
   single: graceful shutdown
   pair: Server; close_clients
   pair: Server; abort_clients
   pair: Server; wait_closed
   single: draining connections

Stopping a server well takes four steps: stop accepting, let the requests
in flight finish (but not for ever), close the connections that are left,
and wait until everything is closed.  :meth:`LineServer.shutdown` does them
in that order.  Connections waiting for their next request are closed at
once; a request that has been read completely is answered if it finishes
within *deadline*, and cancelled (its connection aborted) after that:

>>> async def work(line):
...     await asyncio.sleep(float(line))
...     return b"done after " + line
>>> server = LineServer(work)
>>> await server.start("127.0.0.1", 0)
>>> quick = await LineClient.connect("127.0.0.1", server.port)
>>> slow = await LineClient.connect("127.0.0.1", server.port)
>>> idle = await LineClient.connect("127.0.0.1", server.port)
>>> requests = [
...     asyncio.create_task(quick.request(b"0.2")),
...     asyncio.create_task(slow.request(b"60")),
... ]
>>> await asyncio.sleep(0.1)
>>> await server.shutdown(deadline=0.5)
>>> outcomes = await asyncio.gather(*requests, return_exceptions=True)
>>> for outcome in outcomes:
...     print(repr(outcome))
b'done after 0.2'
ConnectionError('the server closed the connection')
>>> for client in (quick, slow, idle):
...     await client.close()

The first request finished within the deadline and got its answer; the
second was cut off.  The idle client's connection was closed when the
shutdown began.

.. versionadded:: 3.13
   :meth:`asyncio.Server.close_clients` closes every connection the server
   accepted (each transport sends what it still buffers first), and
   :meth:`asyncio.Server.abort_clients` drops them at once.  Call
   ``close()`` first, so that no new client slips in:

>>> async def hold(reader, writer):
...     try:
...         await reader.read()  # until the client goes away
...     finally:
...         await close_writer(writer)
>>> server = await asyncio.start_server(hold, "127.0.0.1", 0)
>>> port = server.sockets[0].getsockname()[1]
>>> reader, writer = await asyncio.open_connection("127.0.0.1", port)
>>> await asyncio.sleep(0.1)  # let the server start the handler
>>> server.close()
>>> server.close_clients()  # doctest: +PY313
>>> await reader.read()  # doctest: +PY313
b''
>>> await close_writer(writer)
>>> await server.wait_closed()

Before 3.13, keep the writers yourself: add each one to a set when its
handler starts, remove it when the handler ends, and close what is left
(the code is the same on every version):

>>> writers = set()
>>> async def tracked(reader, writer):
...     writers.add(writer)
...     try:
...         await reader.read()
...     finally:
...         writers.discard(writer)
...         await close_writer(writer)
>>> server = await asyncio.start_server(tracked, "127.0.0.1", 0)
>>> port = server.sockets[0].getsockname()[1]
>>> reader, writer = await asyncio.open_connection("127.0.0.1", port)
>>> await asyncio.sleep(0.1)  # let the server start the handler
>>> server.close()
>>> for server_side in list(writers):
...     server_side.close()
>>> await reader.read()
b''
>>> await close_writer(writer)
>>> await server.wait_closed()

.. versionchanged:: 3.12.1
   :meth:`asyncio.Server.wait_closed` waits until the server is closed *and*
   every connection it accepted has been closed.  Up to 3.11 it returned at
   once when called after ``close()``, with connections still open; 3.12.0
   tried to change that and returned at once in another case (an open
   server with no connections yet).  The CPython docs record the change as
   3.12.

.. important::

   ``async with server:`` calls ``close()`` and then ``wait_closed()`` on
   the way out.  On 3.12 and later that waits for every client, so one
   idle client that keeps its connection open makes the block (and your
   program's shutdown) hang for ever; on 3.11 and before the block ends at
   once and the handlers are left running, to be cancelled by
   ``asyncio.run()`` at exit.  Close the clients yourself (with a deadline)
   before ``wait_closed()``, as :meth:`LineServer.shutdown` does.

Putting it together
-------------------

A server, twenty clients with three requests each, and a shutdown, in one
program:

.. script:: line_server.py

   import asyncio

   from recipes.streams import LineClient, LineServer


   async def handle(line):
       await asyncio.sleep(0.01)  # some I/O
       return b"echo " + line


   async def one_client(port, number):
       async with await LineClient.connect("127.0.0.1", port) as client:
           replies = []
           for request in range(3):
               replies.append(await client.request(b"%d.%d" % (number, request)))
           return replies


   async def main():
       server = LineServer(handle, idle_timeout=30, max_connections=100)
       await server.start("127.0.0.1", 0)
       try:
           results = await asyncio.gather(
               *(one_client(server.port, n) for n in range(20))
           )
       finally:
           await server.shutdown(deadline=5)
       print(len(results), "clients,", sum(map(len, results)), "replies")
       print(results[7])


   asyncio.run(main())

.. script-output::

   20 clients, 60 replies
   [b'echo 7.0', b'echo 7.1', b'echo 7.2']

A library does this
-------------------

.. index::
   single: anyio; streams
   pair: streams; libraries

`anyio <https://anyio.readthedocs.io/en/stable/networking.html>`__ has its
own streams, which run on asyncio too.  ``anyio.connect_tcp()`` (with Happy
Eyeballs and an option for TLS) and ``create_tcp_listener()`` give socket
streams whose ``send()`` waits while the peer is not reading, so
backpressure needs no ``drain()``.  A ``BufferedByteReceiveStream`` adds
``receive_until(delimiter, max_bytes)`` and ``receive_exactly(n)``, which
raise ``DelimiterNotFound`` past the limit and ``IncompleteRead`` at an
early end, much as :func:`read_line` and :func:`read_frame` do.  A
listener's ``serve(handler)`` runs each connection's handler in a task
group: a handler that raises ends the server and cancels every other
connection, so handlers must catch their own errors.  There are no
per-request timeouts, connection limit or graceful shutdown like those of
:class:`LineServer`; you build them with cancel scopes.  Choose anyio when
your code should also run on trio, or for its cancel scopes; the recipes use
asyncio's own streams and nothing else.

See also
--------

* :doc:`/recipes/timeouts` – :func:`asyncio.wait_for` and deadlines that
  span several steps.
* :doc:`/recipes/limiting` – concurrency limits for work that is not a
  connection.
* :doc:`/recipes/queues` – :ref:`recipes/queues:Applying backpressure with
  a bounded queue` between tasks, as ``drain()`` applies it to a socket.
* :doc:`/recipes/cancellation` – cleanup that survives cancellation, as in
  :func:`close_writer`.
* Python: :doc:`python:library/asyncio-stream` (:func:`asyncio.start_server`,
  :class:`asyncio.StreamReader`, :class:`asyncio.StreamWriter`),
  :class:`asyncio.Server` in :doc:`python:library/asyncio-eventloop`, and
  :ref:`python:asyncio-tcp-echo-server-streams`.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import sys
from typing import Any, Awaitable, Callable, Optional, Set, TypeVar

__all__ = [
    "ProtocolError",
    "LineTooLong",
    "read_line",
    "read_frame",
    "write_frame",
    "send_line",
    "close_writer",
    "LineServer",
    "LineClient",
]

logger = logging.getLogger(__name__)

DEFAULT_LIMIT = 64 * 1024
_HEADER = struct.Struct("!I")

Handler = Callable[[bytes], Awaitable[bytes]]
T = TypeVar("T")


class ProtocolError(Exception):
    """The peer broke the framing rules; the stream cannot be read on.

    >>> from recipes.streams import LineTooLong, ProtocolError
    >>> issubclass(LineTooLong, ProtocolError)
    True
    >>> str(ProtocolError("connection closed in the middle of a line"))
    'connection closed in the middle of a line'
    """


class LineTooLong(ProtocolError):
    """A line exceeded the reader's limit (``limit`` holds that number).

    >>> from recipes.streams import LineTooLong
    >>> error = LineTooLong(8)
    >>> error.limit
    8
    >>> raise error
    Traceback (most recent call last):
    ...
    recipes.streams.LineTooLong: line longer than 8 bytes
    """

    def __init__(self, limit: int) -> None:
        super().__init__(f"line longer than {limit} bytes")
        self.limit = limit


async def read_line(
    reader: asyncio.StreamReader, *, timeout: Optional[float] = None
) -> Optional[bytes]:
    """Read one ``\\n``-terminated line; return it without ``\\n`` or ``\\r\\n``.

    Returns ``None`` when the peer closed the stream between two lines:

    >>> import asyncio
    >>> from recipes.streams import read_line
    >>> reader = asyncio.StreamReader()
    >>> reader.feed_data(b"first\\nsecond\\r\\n")
    >>> reader.feed_eof()
    >>> [await read_line(reader) for _ in range(3)]
    [b'first', b'second', None]

    The longest line accepted is the reader's ``limit`` (the ``limit=``
    argument of ``start_server``/``open_connection``, 64 KiB by default); a
    longer one raises :exc:`LineTooLong`, and the end of the stream in the
    middle of a line raises :exc:`ProtocolError`:

    >>> reader = asyncio.StreamReader()
    >>> reader.feed_data(b"cut sh")
    >>> reader.feed_eof()
    >>> await read_line(reader)
    Traceback (most recent call last):
    ...
    recipes.streams.ProtocolError: connection closed in the middle of a line

    *timeout* is a deadline for the whole line, not for each byte, so a
    peer that trickles bytes cannot stretch it; it raises
    :exc:`asyncio.TimeoutError`, and the bytes already received stay in the
    reader:

    >>> reader = asyncio.StreamReader()
    >>> reader.feed_data(b"no newline yet")
    >>> try:
    ...     await read_line(reader, timeout=0.5)
    ... except asyncio.TimeoutError:
    ...     print("no complete line within 0.5 s")
    no complete line within 0.5 s
    """
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds or None, got {timeout!r}")
    try:
        if timeout is None:
            line = await reader.readuntil(b"\n")
        else:
            line = await _within(reader.readuntil(b"\n"), timeout)
    except asyncio.LimitOverrunError:
        raise LineTooLong(_limit_of(reader)) from None
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise ProtocolError("connection closed in the middle of a line") from None
    if line.endswith(b"\r\n"):
        return line[:-2]
    return line[:-1]


def _limit_of(reader: asyncio.StreamReader) -> int:
    limit = getattr(reader, "_limit", None)
    return limit if isinstance(limit, int) else DEFAULT_LIMIT


async def read_frame(
    reader: asyncio.StreamReader, *, max_size: int, timeout: Optional[float] = None
) -> Optional[bytes]:
    """Read one length-prefixed frame: a 4-byte big-endian size, then the payload.

    Returns ``None`` at a clean end of stream (before a header):

    >>> import asyncio
    >>> from recipes.streams import read_frame
    >>> reader = asyncio.StreamReader()
    >>> reader.feed_data(b"\\x00\\x00\\x00\\x05hello\\x00\\x00\\x00\\x00")
    >>> reader.feed_eof()
    >>> [await read_frame(reader, max_size=100) for _ in range(3)]
    [b'hello', b'', None]

    A size above *max_size* is refused before any payload is read (a
    corrupt or hostile header must not make you allocate 4 GiB), and a
    frame cut short by the end of the stream is an error too:

    >>> reader = asyncio.StreamReader()
    >>> reader.feed_data(b"\\xff\\xff\\xff\\xff")
    >>> await read_frame(reader, max_size=1024)
    Traceback (most recent call last):
    ...
    recipes.streams.ProtocolError: frame of 4294967295 bytes exceeds max_size 1024
    >>> reader = asyncio.StreamReader()
    >>> reader.feed_data(b"\\x00\\x00\\x00\\x09partial")
    >>> reader.feed_eof()
    >>> await read_frame(reader, max_size=1024)
    Traceback (most recent call last):
    ...
    recipes.streams.ProtocolError: connection closed after 7 of 9 bytes

    *timeout* bounds the whole frame, header and payload, and raises
    :exc:`asyncio.TimeoutError`.
    """
    if max_size < 0:
        raise ValueError(f"max_size must be >= 0, got {max_size}")
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds or None, got {timeout!r}")
    if timeout is None:
        return await _read_frame(reader, max_size)
    return await asyncio.wait_for(_read_frame(reader, max_size), timeout)


async def _read_frame(reader: asyncio.StreamReader, max_size: int) -> Optional[bytes]:
    try:
        header = await reader.readexactly(_HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise ProtocolError("connection closed in the middle of a frame header") from None
    (size,) = _HEADER.unpack(header)
    if size > max_size:
        raise ProtocolError(f"frame of {size} bytes exceeds max_size {max_size}")
    try:
        return await reader.readexactly(size)
    except asyncio.IncompleteReadError as exc:
        raise ProtocolError(
            f"connection closed after {len(exc.partial)} of {size} bytes"
        ) from None


async def write_frame(
    writer: asyncio.StreamWriter, payload: bytes, *, timeout: Optional[float] = None
) -> None:
    """Write *payload* with its 4-byte size in front, then drain (see :func:`send_line`).

    The counterpart of :func:`read_frame`; a payload may hold any bytes,
    newlines included.  Here both ends of a real connection:

    >>> import asyncio
    >>> from recipes.streams import close_writer, read_frame, write_frame
    >>> async def echo_frames(reader, writer):
    ...     while (frame := await read_frame(reader, max_size=1024)) is not None:
    ...         await write_frame(writer, frame[::-1], timeout=5)
    ...     await close_writer(writer)
    >>> server = await asyncio.start_server(echo_frames, "127.0.0.1", 0)
    >>> port = server.sockets[0].getsockname()[1]
    >>> reader, writer = await asyncio.open_connection("127.0.0.1", port)
    >>> await write_frame(writer, b"two\\nlines", timeout=5)
    >>> await read_frame(reader, max_size=1024, timeout=5)
    b'senil\\nowt'

    Closing our end makes the server's ``read_frame`` return ``None``, so
    its handler ends and closes its side:

    >>> await close_writer(writer)
    >>> server.close()
    >>> await server.wait_closed()

    The payload must be bytes (a payload of 4 GiB or more, too big for the
    header, raises :exc:`ValueError`):

    >>> await write_frame(writer, "text")
    Traceback (most recent call last):
    ...
    TypeError: payload must be bytes, got str
    """
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise TypeError(f"payload must be bytes, got {type(payload).__name__}")
    if len(payload) > 0xFFFFFFFF:
        raise ValueError(f"payload of {len(payload)} bytes does not fit a 4-byte size")
    writer.write(_HEADER.pack(len(payload)) + bytes(payload))
    await _drain(writer, timeout)


async def send_line(
    writer: asyncio.StreamWriter, line: bytes, *, timeout: Optional[float] = None
) -> None:
    """Write *line* and ``\\n``, then wait (at most *timeout* s) until the buffer drains.

    ``drain()`` returns at once while the transport's buffer is below its
    high-water mark, so on a healthy connection this costs no waiting.
    When the peer stops reading it raises :exc:`asyncio.TimeoutError`; when
    the connection is gone, :exc:`ConnectionError`.  Here the server
    answers ``bye`` and closes:

    >>> import asyncio
    >>> from recipes.streams import close_writer, send_line
    >>> async def bye(reader, writer):
    ...     await send_line(writer, b"bye", timeout=5)
    ...     await close_writer(writer)
    >>> server = await asyncio.start_server(bye, "127.0.0.1", 0)
    >>> port = server.sockets[0].getsockname()[1]
    >>> reader, writer = await asyncio.open_connection("127.0.0.1", port)
    >>> await reader.read()
    b'bye\\n'
    >>> await close_writer(writer)
    >>> server.close()
    >>> await server.wait_closed()

    A line that contains a newline would be two messages to the peer, so it
    is refused (and so is :class:`str`: encode it first):

    >>> await send_line(writer, b"two\\nlines")
    Traceback (most recent call last):
    ...
    ValueError: a line must not contain b'\\n': b'two\\nlines'
    >>> await send_line(writer, "text")
    Traceback (most recent call last):
    ...
    TypeError: line must be bytes, got str
    """
    if not isinstance(line, (bytes, bytearray)):
        raise TypeError(f"line must be bytes, got {type(line).__name__}")
    if b"\n" in line:
        raise ValueError(f"a line must not contain b'\\n': {bytes(line)!r}")
    writer.write(bytes(line) + b"\n")
    await _drain(writer, timeout)


async def _drain(writer: asyncio.StreamWriter, timeout: Optional[float]) -> None:
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds or None, got {timeout!r}")
    transport = writer.transport
    if timeout is None or transport.get_write_buffer_size() <= _low_water(transport):
        await writer.drain()  # cannot wait: returns at once (or raises if the connection is lost)
    else:
        await _within(writer.drain(), timeout)


def _low_water(transport: asyncio.WriteTransport) -> int:
    low, _ = transport.get_write_buffer_limits()
    return low


if sys.version_info >= (3, 11):

    async def _within(aw: Awaitable[T], timeout: float) -> T:
        """``await aw`` for at most *timeout* s: asyncio.timeout(), no task of its own."""
        async with asyncio.timeout(timeout):
            return await aw

else:

    async def _within(aw: Awaitable[T], timeout: float) -> T:
        """The same before 3.11: asyncio.wait_for() (it runs *aw* in a task of its own)."""
        return await asyncio.wait_for(aw, timeout)


async def close_writer(writer: asyncio.StreamWriter, *, timeout: float = 5.0) -> None:
    """Close *writer* and wait until it is closed; abort it after *timeout* s.

    ``close()`` lets the transport send what it still buffers before it
    closes the socket; ``wait_closed()`` waits for that.  A peer that does
    not read could make that wait last for ever, so after *timeout* the
    connection is aborted (buffered data dropped).  If the task is
    cancelled while it waits, the connection is aborted too, before the
    cancellation goes on.  Errors of a connection that is already broken
    are not raised: there is nothing left to close.  Calling it twice is
    harmless:

    >>> import asyncio
    >>> from recipes.streams import close_writer
    >>> async def done(reader, writer):
    ...     await close_writer(writer)
    >>> server = await asyncio.start_server(done, "127.0.0.1", 0)
    >>> port = server.sockets[0].getsockname()[1]
    >>> reader, writer = await asyncio.open_connection("127.0.0.1", port)
    >>> await close_writer(writer)
    >>> writer.is_closing()
    True
    >>> await close_writer(writer)
    >>> server.close()
    >>> await server.wait_closed()

    The timeout must be positive:

    >>> await close_writer(writer, timeout=0)
    Traceback (most recent call last):
    ...
    ValueError: timeout must be > 0 seconds, got 0
    """
    if not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), timeout)
    except asyncio.TimeoutError:
        writer.transport.abort()
    except asyncio.CancelledError:
        writer.transport.abort()
        raise
    except (ConnectionError, OSError):
        pass  # the connection broke: closed all the same


class _Connection:
    """What the server keeps about one accepted connection."""

    __slots__ = ("busy", "task", "writer")

    def __init__(self, writer: asyncio.StreamWriter, task: asyncio.Task[Any]) -> None:
        self.writer = writer
        self.task = task
        self.busy = False  # True from a complete request line until its reply is written


class LineServer:
    """A TCP server for a request/reply line protocol, with limits and a clean shutdown.

    *handler* is ``async def handler(line: bytes) -> bytes``: it gets one
    request line (without ``\\n``) and returns the reply line.  Per
    connection the server reads a line, awaits the handler, writes the
    reply (with backpressure), and repeats until the client closes:

    >>> import asyncio
    >>> from recipes.streams import LineClient, LineServer
    >>> async def add(line):
    ...     return str(sum(map(int, line.split()))).encode()
    >>> server = LineServer(add)
    >>> await server.start("127.0.0.1", 0)
    >>> async with await LineClient.connect("127.0.0.1", server.port) as c:
    ...     print(await c.request(b"1 2 3"), await c.request(b"x"))
    b'6' b'ERR internal error'
    >>> await server.shutdown()

    The limits, each with an error line for the client:

    * *idle_timeout*: seconds a client may take to send a complete line
      (``ERR idle timeout``, then the connection is closed);
    * *request_timeout*: seconds the handler may take (``ERR request
      timeout``; the handler is cancelled, the connection stays);
    * *write_timeout*: seconds a reply may wait for the client to read
      (then the connection is aborted: there is nobody to tell);
    * *max_line*: longest request line, in bytes (``ERR line too long``,
      then closed);
    * *max_connections*: connections served at once; one more gets
      ``ERR busy`` and is closed.

    Use it as an async context manager to have :meth:`shutdown` called on
    the way out:

    >>> async with LineServer(add, max_connections=10) as server:
    ...     await server.start("127.0.0.1", 0)
    ...     client = await LineClient.connect("127.0.0.1", server.port)
    ...     print(await client.request(b"40 2"))
    ...     await client.close()
    b'42'

    Bad settings are refused at once:

    >>> LineServer(add, max_connections=0)
    Traceback (most recent call last):
    ...
    ValueError: max_connections must be >= 1, got 0
    """

    def __init__(
        self,
        handler: Handler,
        *,
        idle_timeout: float = 60.0,
        request_timeout: float = 30.0,
        write_timeout: float = 30.0,
        max_line: int = DEFAULT_LIMIT,
        max_connections: int = 1000,
    ) -> None:
        if not callable(handler):
            raise TypeError(f"handler must be an async callable, got {handler!r}")
        for name, value in (
            ("idle_timeout", idle_timeout),
            ("request_timeout", request_timeout),
            ("write_timeout", write_timeout),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be > 0 seconds, got {value!r}")
        if max_line < 1:
            raise ValueError(f"max_line must be >= 1, got {max_line}")
        if max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, got {max_connections}")
        self.handler = handler
        self.idle_timeout = idle_timeout
        self.request_timeout = request_timeout
        self.write_timeout = write_timeout
        self.max_line = max_line
        self.max_connections = max_connections
        self._server: Optional[asyncio.Server] = None
        self._connections: Set[_Connection] = set()
        self._tasks: Set[asyncio.Task[Any]] = set()  # every handler task, rejected ones too
        self._closing = False

    async def start(self, host: str = "127.0.0.1", port: int = 0, *, backlog: int = 100) -> None:
        """Listen on *host*:*port* (0: any free port, see :attr:`port`).

        *backlog* is how many connections the kernel queues before the server
        accepts them; raise it when clients arrive in bursts of hundreds.
        """
        if self._server is not None:
            raise RuntimeError("the server has already been started")
        self._server = await asyncio.start_server(
            self._serve, host, port, limit=self.max_line, backlog=backlog
        )

    @property
    def port(self) -> int:
        """The port the server listens on."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the server is not listening")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def connections(self) -> int:
        """How many connections are being served now."""
        return len(self._connections)

    async def __aenter__(self) -> LineServer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            await self._serve_connection(reader, writer, task)
        except asyncio.CancelledError:
            # Cancelled by shutdown(): end normally.  asyncio's own callback on this
            # task calls task.exception() on 3.8-3.12, which logs a spurious error
            # ("Exception in callback ...") for a handler task that ends cancelled.
            if not self._closing:
                raise

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, task: asyncio.Task[Any]
    ) -> None:
        if self._closing or len(self._connections) >= self.max_connections:
            try:
                writer.write(b"ERR busy\n")  # small: fits the buffer, no drain needed
                await _linger(reader, writer)
            finally:
                await close_writer(writer, timeout=self.write_timeout)
            return
        connection = _Connection(writer, task)
        self._connections.add(connection)
        try:
            await self._converse(reader, writer, connection)
        except (ConnectionError, asyncio.TimeoutError):
            writer.transport.abort()  # the client is gone or does not read: nobody to tell
        finally:
            self._connections.discard(connection)
            await close_writer(writer, timeout=self.write_timeout)

    async def _converse(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, connection: _Connection
    ) -> None:
        while not self._closing:
            try:
                line = await read_line(reader, timeout=self.idle_timeout)
            except asyncio.TimeoutError:
                await send_line(writer, b"ERR idle timeout", timeout=self.write_timeout)
                await _linger(reader, writer)
                return
            except LineTooLong:
                await send_line(writer, b"ERR line too long", timeout=self.write_timeout)
                await _linger(reader, writer)
                return
            except ProtocolError:
                return  # a truncated last line: the client is gone, there is no one to answer
            if line is None:
                return
            connection.busy = True
            reply = await self._answer(line)
            await send_line(writer, reply, timeout=self.write_timeout)
            connection.busy = False

    async def _answer(self, line: bytes) -> bytes:
        try:
            reply = await _within(self.handler(line), self.request_timeout)
        except asyncio.TimeoutError:
            return b"ERR request timeout"
        except Exception:
            logger.exception("handler failed on request %r", line[:80])
            return b"ERR internal error"
        if not isinstance(reply, (bytes, bytearray)) or b"\n" in reply:
            logger.error("handler returned %r for %r: not one line of bytes", reply, line[:80])
            return b"ERR internal error"
        return bytes(reply)

    async def shutdown(self, deadline: float = 10.0) -> None:
        """Stop accepting, finish requests in flight within *deadline* s, close the rest.

        Connections waiting for a request are closed at once.  A connection
        whose request is being handled gets its reply if the handler and the
        write finish within *deadline*; after that its task is cancelled and
        the connection aborted.  Returns when every connection is closed and
        its task has ended; calling it again (or on a server never started)
        does nothing more.  If the task calling it is cancelled, the
        connections are still closed before the cancellation goes on.

        >>> import asyncio
        >>> from recipes.streams import LineServer
        >>> async def echo(line):
        ...     return line
        >>> server = LineServer(echo)
        >>> await server.start("127.0.0.1", 0)
        >>> port = server.port
        >>> reader, writer = await asyncio.open_connection("127.0.0.1", port)
        >>> await server.shutdown(deadline=5)
        >>> await reader.read()  # the idle connection was closed
        b''
        >>> writer.close()
        >>> server.connections
        0

        New connections are refused from the start of the shutdown:

        >>> await asyncio.open_connection("127.0.0.1", port)
        Traceback (most recent call last):
        ...
        ConnectionRefusedError: [Errno 111] Connect call failed ...
        """
        if not deadline >= 0:
            raise ValueError(f"deadline must be >= 0 seconds, got {deadline!r}")
        self._closing = True
        server = self._server
        if server is None:
            return
        server.close()  # stop accepting
        for connection in list(self._connections):
            if not connection.busy:
                connection.task.cancel()  # waiting for a request: nothing in flight
        cancelled = False
        tasks = list(self._tasks)
        if tasks:
            try:
                await asyncio.wait(tasks, timeout=deadline)
            except asyncio.CancelledError:
                cancelled = True
        self._close_clients()
        for task in self._tasks:
            task.cancel()
        if await _until_done(list(self._tasks)):
            cancelled = True
        await server.wait_closed()  # 3.12.1+ waits for the connections: all closed by now
        if cancelled:
            raise asyncio.CancelledError

    def _close_clients(self) -> None:
        """Abort the connections that outlived the deadline."""
        if sys.version_info >= (3, 13) and self._server is not None:
            self._server.abort_clients()  # also connections whose task has not started yet
        else:
            for connection in self._connections:
                connection.writer.transport.abort()


LINGER_SECONDS = 1.0


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Half-close, then drop what the peer still sends until it closes (at most 1 s).

    Closing a socket whose receive buffer holds unread data makes the kernel
    reset the connection, and a reset can destroy our last reply before the
    peer has read it.  Reading (and dropping) until the peer's end of file
    avoids that; the time limit keeps a peer that goes on sending from
    holding the connection.
    """
    try:
        if writer.can_write_eof():
            writer.write_eof()
        await asyncio.wait_for(_discard(reader), LINGER_SECONDS)
    except (asyncio.TimeoutError, ConnectionError, OSError):
        pass


async def _discard(reader: asyncio.StreamReader) -> None:
    while await reader.read(DEFAULT_LIMIT):
        pass


async def _until_done(tasks: list[asyncio.Task[Any]]) -> bool:
    """Wait until every one of *tasks* has ended; return True if we were cancelled meanwhile."""
    cancelled = False
    pending = [task for task in tasks if not task.done()]
    while pending:
        try:
            await asyncio.wait(pending)
        except asyncio.CancelledError:
            cancelled = True
        pending = [task for task in pending if not task.done()]
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved: no "exception was never retrieved"
    return cancelled


class LineClient:
    """A client connection for a request/reply line protocol (see :class:`LineServer`).

    Open it with :meth:`connect` and close it with :meth:`close` or
    ``async with``.  :meth:`request` sends one line and returns the reply
    line; concurrent requests on one client are sent one after another,
    since replies carry no request id:

    >>> import asyncio
    >>> from recipes.streams import LineClient, LineServer
    >>> async def echo(line):
    ...     await asyncio.sleep(0.1)
    ...     return line
    >>> server = LineServer(echo)
    >>> await server.start("127.0.0.1", 0)
    >>> async with await LineClient.connect("127.0.0.1", server.port) as c:
    ...     print(await asyncio.gather(c.request(b"a"), c.request(b"b")))
    [b'a', b'b']

    A connection that cannot be made raises :exc:`OSError` (such as
    :exc:`ConnectionRefusedError`), one that takes longer than *timeout*
    raises :exc:`asyncio.TimeoutError`:

    >>> port = server.port
    >>> await server.shutdown()
    >>> await LineClient.connect("127.0.0.1", port)
    Traceback (most recent call last):
    ...
    ConnectionRefusedError: [Errno 111] Connect call failed ...

    A reply longer than *limit* bytes raises :exc:`LineTooLong` and closes the
    connection, like a timeout does.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        timeout: float = 30.0,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.timeout = timeout
        self._lock = asyncio.Lock()
        self._broken = False

    @classmethod
    async def connect(
        cls, host: str, port: int, *, timeout: float = 30.0, limit: int = DEFAULT_LIMIT
    ) -> LineClient:
        """Connect to *host*:*port*; *timeout* bounds the connection and each request."""
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, limit=limit), timeout
        )
        return cls(reader, writer, timeout=timeout)

    async def request(self, line: bytes, *, timeout: Optional[float] = None) -> bytes:
        """Send *line*, return the reply line; *timeout* defaults to the client's."""
        timeout = self.timeout if timeout is None else timeout
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        async with self._lock:
            if self._broken or self._writer.is_closing():
                raise ConnectionError("the connection is closed")
            try:
                reply = await asyncio.wait_for(self._exchange(line), timeout)
            except asyncio.TimeoutError:
                await self._break()
                raise asyncio.TimeoutError(
                    f"no reply within {timeout:g} s; the connection is closed"
                ) from None
            except (ProtocolError, ConnectionError):
                await self._break()
                raise
            except asyncio.CancelledError:
                await self._break()  # the reply may still come: out of step
                raise
            if reply is None:
                await self._break()
                raise ConnectionError("the server closed the connection")
            return reply

    async def _exchange(self, line: bytes) -> Optional[bytes]:
        await send_line(self._writer, line)
        return await read_line(self._reader)

    async def _break(self) -> None:
        self._broken = True
        await close_writer(self._writer, timeout=min(self.timeout, 5.0))

    async def close(self) -> None:
        """Close the connection (waits at most 5 s, then aborts it)."""
        self._broken = True
        await close_writer(self._writer)

    async def __aenter__(self) -> LineClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
