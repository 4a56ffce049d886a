"""A chat room, a live dashboard or a model that streams its answer token by
token all keep a connection open and push messages down it as they happen.
Keeping such a connection open is the hard part.  A peer can vanish without
closing anything (a laptop lid, a mobile network, a proxy that drops idle
connections), one slow reader can stall everybody else's messages, a server
that restarts must tell its clients, and a producer can keep generating for a
client that left minutes ago.  This chapter covers both tools for the job
with :mod:`aiohttp`: WebSockets, which carry messages both ways, and
server-sent events, a plain HTTP response that streams events to the client
and that browsers read with ``EventSource``.

The examples serve their routes from the running event loop, each on a free
port, with a small helper (:ref:`recipes/api_server:Serving users over HTTP`
explains :class:`aiohttp.web.AppRunner`), and share one client session:

>>> import asyncio
>>> import contextlib
>>> import aiohttp
>>> from aiohttp import web
>>> runners = []
>>> async def serve(*routes, on_shutdown=()):
...     app = web.Application()
...     app.add_routes(routes)
...     app.on_shutdown.extend(on_shutdown)
...     runner = web.AppRunner(app)
...     await runner.setup()
...     await web.TCPSite(runner, "127.0.0.1", 0).start()
...     runners.append(runner)
...     return f"http://127.0.0.1:{runner.addresses[0][1]}"
>>> session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))

Answering messages on a WebSocket
---------------------------------

.. index::
   pair: WebSocket; server handler
   pair: WebSocket; receive loop
   single: WSMsgType.ERROR
   single: malformed WebSocket frame
   single: error messages; Received frame with non-zero reserved bits

A WebSocket handler upgrades the request, then reads messages until the
connection closes.  :func:`serve_websocket` is that receive loop: it hands
every text message to your coroutine, which may answer on the same socket,
and it returns once the connection is closed, whoever closed it:

>>> from recipes.realtime import serve_websocket
>>> async def shout(ws, text):
...     await ws.send_str(text.upper())
>>> async def echo(request):
...     return await serve_websocket(request, shout)
>>> url = await serve(web.get("/echo", echo))
>>> ws = await session.ws_connect(url + "/echo")
>>> await ws.send_str("hello")
>>> await ws.receive_str(timeout=5)
'HELLO'

The handler also sets a limit on the size of a message (64 KiB unless you
pass ``max_msg_size``) and turns on the server's heartbeat (below).  A
binary message gets the connection closed with code 1003 (unsupported
data), since the handler speaks text:

>>> await ws.send_bytes(b"\\x00\\x01")
>>> msg = await ws.receive(timeout=5)
>>> msg.type.name, msg.data, msg.extra
('CLOSE', 1003, 'text only')
>>> ws.closed
True

.. important::

   ``async for msg in ws`` ends on a close, but not on an error.  A
   malformed frame, a message over ``max_msg_size`` or text that is not
   UTF-8 arrives as a message of type ``WSMsgType.ERROR`` (aiohttp has
   already closed the connection with 1002, 1009 or 1007 by then), and
   ``msg.data`` is the exception, for instance ``WebSocketError: Received
   frame with non-zero reserved bits``.  A loop that handles only ``TEXT``
   and ``BINARY`` drops that error without a trace, and one that calls
   ``msg.json()`` on every message fails with a :exc:`TypeError` that hides
   it.  Check for ``ERROR`` explicitly, log ``ws.exception()`` and leave the
   loop, as :func:`serve_websocket` does.

Reconnecting when the peer goes quiet
-------------------------------------

.. index::
   pair: WebSocket; heartbeat
   pair: WebSocket; reconnecting
   single: dead peer
   single: exponential backoff; WebSocket
   single: error messages; No PONG received after

A peer that disappears without closing the TCP connection (a dead laptop, a
network that dropped its route) leaves the other side waiting forever:
nothing arrives, and no error either.  ``heartbeat=`` makes aiohttp send a
ping every ``heartbeat`` seconds and close the connection when the pong does
not come back within half that time.  :func:`keep_connected` connects with a
heartbeat and reconnects after every disconnection, waiting a little longer
after each failure (exponential backoff with jitter, so a thousand clients
of a restarted server do not all knock at the same instant).

This server leaves the pings of the first connection unanswered, as a dead
peer would (``autoping=False`` hands them to the handler, which ignores them),
and greets the second one:

>>> attempts = []
>>> async def hangs_once(request):
...     attempts.append(request.remote)
...     ws = web.WebSocketResponse(autoping=len(attempts) > 1)
...     await ws.prepare(request)
...     if len(attempts) > 1:
...         await ws.send_str(f"hello, attempt {len(attempts)}")
...     async for msg in ws:
...         pass
...     return ws
>>> url = await serve(web.get("/flaky", hangs_once))
>>> from recipes.realtime import keep_connected
>>> inbox = asyncio.Queue()
>>> async def connected(ws):
...     print("connected")
>>> client = asyncio.create_task(keep_connected(
...     session, url + "/flaky", inbox.put, on_connect=connected,
...     heartbeat=0.2, first_delay=0.1))
>>> await asyncio.wait_for(inbox.get(), timeout=10)
connected
connected
'hello, attempt 2'
>>> client.cancel()
True
>>> with contextlib.suppress(asyncio.CancelledError):
...     await client

``on_connect`` runs after every successful connection: it is the place to
log in or subscribe again, since the server forgets a client that
reconnects.  Cancelling the task closes the connection.

.. important::

   Without a heartbeat, a dead peer is found only by the operating system's
   TCP keep-alive, which by default waits two hours before its first probe.
   A read timeout (``receive(timeout=...)``) is no substitute: it cannot tell
   a dead peer from a quiet one.  The heartbeat also keeps idle connections
   alive through proxies and load balancers that close them after a minute
   or so without traffic.  When the pong is late, aiohttp closes the
   connection and the client's ``receive()`` returns an ``ERROR`` message
   whose data is a ``ServerTimeoutError`` (its text, in recent aiohttp
   versions: ``No PONG received after 0.1 seconds``; aiohttp 3.10 gives
   none).

Broadcasting to many clients
----------------------------

.. index::
   pair: WebSocket; broadcast
   single: slow client
   single: fan-out
   single: backpressure; WebSocket
   pair: Queue; one per client

The obvious broadcast, ``for ws in clients: await ws.send_str(text)``, is
only as fast as the slowest client.  ``send_str`` waits while the
connection's send buffer is full, and the buffer of a client on a poor
network, or one that stopped reading, stays full: every other client then
waits for it.  :class:`Broadcaster` gives each client a bounded queue and a
task of its own that sends from it.  :meth:`~Broadcaster.publish` puts the
message in every queue without waiting; a client whose queue is full has
fallen too far behind, and is disconnected with code 1008 instead of holding
up the rest:

>>> from recipes.realtime import Broadcaster
>>> hub = Broadcaster(queue_size=8)
>>> url = await serve(web.get("/news", hub.handler),
...                   on_shutdown=[hub.on_shutdown])
>>> readers = [await session.ws_connect(url + "/news") for _ in range(3)]
>>> len(hub)
3
>>> hub.publish("tea is ready")
3
>>> [await ws.receive_str(timeout=5) for ws in readers]
['tea is ready', 'tea is ready', 'tea is ready']

Now a client that never reads.  Its messages pile up in the network
buffers, then in its queue, and it is dropped; the others carry on:

>>> idle = await session.ws_connect(url + "/news")
>>> big = "x" * 256 * 1024
>>> for _ in range(200):
...     _ = hub.publish(big)
...     for ws in readers:
...         _ = await ws.receive_str(timeout=5)
...     if hub.dropped:
...         break
>>> hub.dropped, len(hub)
(1, 3)

Size the queue for the largest burst you publish without pausing: a burst
longer than the queue drops every client that has not had a chance to read
it.  ``publish()`` returns how many clients the message was queued for.

The queues are not free: each message wakes one task per client.  While
every client keeps up, the plain loop delivers more messages per second
(``benchmarks/bench_realtime.py`` measured the recipe at roughly half to
three quarters of its rate); the recipe pays that so that one stalled client
costs the others nothing, where it stops the plain loop for good.

Closing every connection at shutdown
------------------------------------

.. index::
   pair: WebSocket; graceful shutdown
   pair: aiohttp.web; on_shutdown
   single: close code 1001 (going away)

An open WebSocket keeps its handler running, so a server that stops without
closing them waits for its ``shutdown_timeout`` (60 seconds by default) and
then cancels the handlers, and the clients see the connection drop without a
reason.  Register :meth:`Broadcaster.on_shutdown` in
``app.on_shutdown``, as ``serve`` did above: when the runner is cleaned up,
it closes every connection with code 1001 (going away), which tells a client
to reconnect later, and refuses new connections:

>>> await runners.pop().cleanup()
>>> msg = await readers[0].receive(timeout=5)
>>> msg.type.name, msg.data, msg.extra
('CLOSE', 1001, 'server shutdown')
>>> for ws in readers + [idle]:
...     _ = await ws.close()

:meth:`Broadcaster.close_all` does the same at any other time, with any
close code.

Streaming server-sent events
----------------------------

.. index::
   single: server-sent events
   single: text/event-stream
   pair: aiohttp.web; StreamResponse
   pair: server-sent events; keep-alive comment

When only the server talks, server-sent events are simpler than a
WebSocket: an ordinary ``GET`` whose response is a ``text/event-stream``
that never ends, made of events separated by blank lines.  It goes through
every proxy that speaks HTTP, and a browser's ``EventSource`` reconnects by
itself.  :class:`Event` formats one event, :func:`stream_events` serves the
events of an async generator, and writes a comment line (``: keep-alive``)
whenever the generator has been quiet for ``keepalive`` seconds, so that
proxies do not close the idle connection:

>>> from recipes.realtime import Event, stream_events
>>> async def ticks(last_id):
...     for n in range(1, 4):
...         await asyncio.sleep(0.1)
...         yield Event(f"tick {n}", id=str(n))
>>> async def tick_stream(request):
...     return await stream_events(request, ticks, keepalive=0.06)
>>> url = await serve(web.get("/ticks", tick_stream))
>>> async with session.get(url + "/ticks") as resp:
...     print(resp.headers["Content-Type"])
...     print(await resp.text())
text/event-stream
: keep-alive
<BLANKLINE>
id: 1
data: tick 1
<BLANKLINE>
: keep-alive
<BLANKLINE>
id: 2
data: tick 2
<BLANKLINE>
: keep-alive
<BLANKLINE>
id: 3
data: tick 3
<BLANKLINE>
<BLANKLINE>

The response also says ``Cache-Control: no-cache`` and
``X-Accel-Buffering: no``, which stops nginx from holding events back in its
buffer.

Resuming a stream with Last-Event-ID
------------------------------------

.. index::
   pair: server-sent events; Last-Event-ID
   single: resuming an event stream

A client that reconnects sends the ``id`` of the last event it saw in the
``Last-Event-ID`` header, and ``EventSource`` does so by itself.
:func:`stream_events` passes that header (or ``None``) to your generator,
which starts after it.  Treat it as untrusted input: it is whatever the
client sent.

>>> async def resumable(last_id):
...     start = int(last_id) + 1 if last_id and last_id.isdigit() else 1
...     for n in range(start, 4):
...         yield Event(f"tick {n}", id=str(n))
>>> async def resumable_stream(request):
...     return await stream_events(request, resumable)
>>> resume_url = await serve(web.get("/resume", resumable_stream))
>>> async with session.get(resume_url + "/resume",
...                        headers={"Last-Event-ID": "2"}) as resp:
...     print(await resp.text())
id: 3
data: tick 3
<BLANKLINE>
<BLANKLINE>

Stopping the producer when the client leaves
--------------------------------------------

.. index::
   single: zombie generator
   pair: server-sent events; client disconnect
   single: token streaming
   single: error messages; Cannot write to closing transport

A handler that streams a model's answer, ``async for token in generate():
await response.write(...)``, learns that the client left only when a write
fails (``ClientConnectionResetError: Cannot write to closing transport``).
If the generator is busy for a long time between two tokens, nothing is
written, so nothing fails, and the generator keeps the GPU, the upstream
request or the database cursor busy for a client that is gone.  Even when the
write fails, the exception leaves the ``async for`` without closing the
generator: its ``finally`` blocks run whenever the garbage collector gets to
it (:ref:`recipes/async_iteration:Closing async generators`).
:func:`stream_events` closes the generator as soon as the client is gone,
and its keep-alive writes find a departed client even while the generator is
quiet:

>>> import itertools
>>> async def tokens(last_id):
...     try:
...         for n in itertools.count():
...             await asyncio.sleep(0.01)
...             yield Event(f"token {n}")
...     finally:
...         print("producer stopped")
>>> async def answer(request):
...     return await stream_events(request, tokens, keepalive=0.1)
>>> url = await serve(web.get("/answer", answer))
>>> async with session.get(url + "/answer") as resp:
...     print(await resp.content.readline())
b'data: token 0\\n'
>>> await asyncio.sleep(0.1)
producer stopped

Leaving ``async with`` before the end of the body closes the connection;
the server's next write fails and the generator is closed.  A generator that
thinks for an hour before its first token is stopped by the keep-alive:

>>> async def slow_answer(last_id):
...     try:
...         await asyncio.sleep(3600)
...         yield Event("42")
...     finally:
...         print("producer stopped")
>>> async def slow(request):
...     return await stream_events(request, slow_answer, keepalive=0.1)
>>> url = await serve(web.get("/slow", slow))
>>> async with session.get(url + "/slow") as resp:
...     print(resp.status)
200
>>> await asyncio.sleep(0.2)
producer stopped

Reading an event stream
-----------------------

.. index::
   pair: server-sent events; parser
   single: EventSource; in Python

Reading events is more than splitting on blank lines: a field's value may
span several ``data:`` lines, lines may end in ``\\r\\n``, ``\\r`` or ``\\n``,
comments start with a colon, and the last ``id`` carries over to the events
that follow.  :class:`EventStreamParser` follows the parsing rules of the
HTML standard, and takes the stream in pieces of any size:

>>> from recipes.realtime import EventStreamParser
>>> parser = EventStreamParser()
>>> parser.feed("event: greeting\\ndata: hello\\ndata: wor")
[]
>>> parser.feed("ld\\nid: 7\\n\\n: keep-alive\\n\\ndata: again\\n\\n")
... # doctest: +NORMALIZE_WHITESPACE
[Event(data='hello\\nworld', event='greeting', id='7', retry=None),
 Event(data='again', event='message', id='7', retry=None)]

:func:`read_events` reads the events of an aiohttp response.  It is an async
generator, so close it when you leave the loop early (``aclosing``):

>>> from recipes.realtime import read_events
>>> async with session.get(resume_url + "/resume") as resp:
...     async for event in read_events(resp):
...         print(event.id, event.data)
1 tick 1
2 tick 2
3 tick 3

To resume after a lost connection, send the ``id`` of the last event you
handled, the way ``EventSource`` does, and wait at least ``parser.retry``
milliseconds if the server sent a ``retry:`` field:

>>> headers = {"Last-Event-ID": "1"}
>>> async with session.get(resume_url + "/resume", headers=headers) as resp:
...     async for event in read_events(resp):
...         print(event.id, event.data)
...         break
2 tick 2

.. important::

   Leaving the ``async for`` early (``break``, an exception) leaves the
   generator suspended; here the ``async with`` around it closes the
   response, but any cleanup of your own in such a generator would run
   late.  Wrap the generator in ``contextlib.aclosing`` to close it on the
   spot (or ``try``/``finally`` with ``await events.aclose()`` before 3.10):

.. versionadded:: 3.10
   ``contextlib.aclosing``.

>>> async with session.get(resume_url + "/resume") as resp:
...     events = read_events(resp)
...     try:
...         async for event in events:
...             break
...     finally:
...         await events.aclose()
>>> event
Event(data='tick 1', event='message', id='1', retry=None)
>>> async with session.get(resume_url + "/resume") as resp:  # doctest: +PY310
...     async with contextlib.aclosing(read_events(resp)) as events:
...         async for event in events:
...             break

A response that is not an event stream (an error page, a login form) is
refused rather than parsed as one:

>>> async with session.get(resume_url + "/nowhere") as resp:
...     async for event in read_events(resp):
...         pass
Traceback (most recent call last):
...
ValueError: expected a text/event-stream response, got text/plain (status 404)

Everything the examples started, closed:

>>> await session.close()
>>> for runner in runners:
...     await runner.cleanup()

A library does this
-------------------

.. index::
   single: websockets (library)
   single: aiohttp-sse
   single: sse-starlette
   pair: WebSocket; libraries
   pair: server-sent events; libraries

* `websockets <https://websockets.readthedocs.io/>`__ is a library for
  WebSocket clients and servers only.  ``async for ws in connect(url)``
  reconnects by itself, with exponential backoff and jitter, after network
  errors and 500, 502, 503 and 504 answers, as :func:`keep_connected` does;
  pings go out every 20 seconds by default.  Its ``broadcast()`` sends one
  message to many connections without waiting, but with no backpressure: a
  slow client's messages pile up in its write buffer, where
  :class:`Broadcaster` closes a client whose queue is full.  Closing its
  server closes each connection with 1001.  Choose it when WebSockets are all
  you serve or consume; the recipes suit a program already built on aiohttp.
* `aiohttp-sse <https://github.com/aio-libs/aiohttp-sse>`__ gives aiohttp a
  ``sse_response()``: it writes events with ``send()``, pings every 15
  seconds, aborts a peer that stops reading, and exposes ``last_event_id``.
  The loop that produces events is still yours, and so is closing the
  producer when the client leaves, which :func:`stream_events` does for you.
  It needs Python 3.11+.
* `sse-starlette <https://github.com/sysid/sse-starlette>`__ does the same
  for Starlette and FastAPI (ASGI, not aiohttp): its ``EventSourceResponse``
  takes an async generator, sends pings, and cancels the generator when the
  client disconnects, or when uvicorn shuts down.

Neither SSE library reads an event stream; :func:`read_events` does.

See also
--------

* :doc:`/recipes/queues`: bounded queues and backpressure, the idea behind
  :class:`Broadcaster`.
* :doc:`/recipes/async_iteration`: async generators, and
  :ref:`recipes/async_iteration:Closing async generators`.
* :doc:`/recipes/cancellation`: :ref:`recipes/cancellation:Cleanup that
  must await`, and stopping a service on a signal.
* :doc:`/recipes/api_server`: an aiohttp server, its state and its
  :ref:`graceful stop <recipes/api_server:Running and stopping the server>`.
* :doc:`/recipes/http_client`: sessions, timeouts and retries on the client
  side.
* aiohttp: :ref:`aiohttp:aiohttp-web-websockets` (server),
  :ref:`aiohttp:aiohttp-client-websockets` (client),
  :ref:`aiohttp:aiohttp-web-graceful-shutdown` and
  :class:`aiohttp.web.StreamResponse`.
* The HTML standard's `server-sent events
  <https://html.spec.whatwg.org/multipage/server-sent-events.html>`_ and
  `RFC 6455 <https://www.rfc-editor.org/rfc/rfc6455>`_ (WebSocket close
  codes are in its section 7.4).
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import random
import re
from typing import (
    AsyncIterator,
    Awaitable,
    Callable,
    Dict,
    List,
    NamedTuple,
    Optional,
    Set,
)

import aiohttp
from aiohttp import web

__all__ = [
    "keep_connected",
    "serve_websocket",
    "Broadcaster",
    "Event",
    "stream_events",
    "EventStreamParser",
    "read_events",
]

logger = logging.getLogger(__name__)

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_KEEPALIVE = b": keep-alive\n\n"


def _backoff(attempt: int, first: float, cap: float) -> float:
    """A random delay for reconnection ``attempt`` (1, 2, ...): exponential, with jitter."""
    ceiling = min(cap, first * 2 ** min(attempt - 1, 32))
    return random.uniform(ceiling / 2, ceiling)


async def keep_connected(
    session: aiohttp.ClientSession,
    url: str,
    on_text: Callable[[str], Awaitable[None]],
    *,
    on_connect: Optional[Callable[[aiohttp.ClientWebSocketResponse], Awaitable[None]]] = None,
    heartbeat: float = 10.0,
    connect_timeout: float = 10.0,
    first_delay: float = 0.5,
    max_delay: float = 30.0,
    max_failures: Optional[int] = None,
) -> None:
    """Stay connected to the WebSocket at ``url``; pass each text message to ``on_text``.

    Connects with a ``heartbeat`` (a ping every ``heartbeat`` seconds; no
    pong within half of it counts as a dead peer), calls ``on_connect(ws)``
    after every successful connection, then ``await on_text(text)`` for each
    text message.  Binary messages are ignored.  When the connection ends,
    for whatever reason, it waits and connects again: the delay doubles from
    ``first_delay`` up to ``max_delay`` while attempts fail (connecting, or
    a connection that brought no message), with random jitter, and starts
    over after a connection that brought a message.  The handshake has
    ``connect_timeout`` seconds.

    Runs until cancelled.  Raises :exc:`ConnectionError` after
    ``max_failures`` failed attempts in a row, if given; an exception from
    ``on_text`` or ``on_connect`` closes the connection and propagates.

    >>> import asyncio
    >>> import aiohttp
    >>> from aiohttp import web
    >>> async def serve(*routes):
    ...     runner = web.AppRunner(web.Application())
    ...     runner.app.add_routes(routes)
    ...     await runner.setup()
    ...     await web.TCPSite(runner, "127.0.0.1", 0).start()
    ...     return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"
    >>> session = aiohttp.ClientSession()
    >>> from recipes.realtime import keep_connected
    >>> async def greet(request):
    ...     ws = web.WebSocketResponse()
    ...     await ws.prepare(request)
    ...     await ws.send_str("hello")
    ...     await ws.close()
    ...     return ws
    >>> runner, url = await serve(web.get("/greet", greet))
    >>> inbox = asyncio.Queue()
    >>> client = asyncio.create_task(keep_connected(
    ...     session, url + "/greet", inbox.put, first_delay=0.1, max_delay=0.1))
    >>> [await asyncio.wait_for(inbox.get(), 10) for _ in range(3)]
    ['hello', 'hello', 'hello']
    >>> client.cancel()
    True

    The server closed each connection after one message, and the client
    connected again after a tenth of a second or less each time.  Against a port where
    nothing listens, it gives up after ``max_failures`` attempts:

    >>> await runner.cleanup()
    >>> await keep_connected(session, url + "/greet", inbox.put,
    ...                      first_delay=0.1, max_failures=3)
    Traceback (most recent call last):
    ...
    ConnectionError: cannot connect to http://127.0.0.1:.../greet: 3 failed...
    >>> await keep_connected(session, url, inbox.put, heartbeat=0)
    Traceback (most recent call last):
    ...
    ValueError: heartbeat, connect_timeout, first_delay and max_delay must be > 0
    >>> await session.close()
    """
    if heartbeat <= 0 or connect_timeout <= 0 or first_delay <= 0 or max_delay <= 0:
        raise ValueError("heartbeat, connect_timeout, first_delay and max_delay must be > 0")
    if max_failures is not None and max_failures < 1:
        raise ValueError(f"max_failures must be at least 1, got {max_failures}")
    failures = 0  # attempts in a row that brought no message
    while True:
        try:
            ws = await asyncio.wait_for(
                session.ws_connect(url, heartbeat=heartbeat), connect_timeout
            )
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            failures += 1
            logger.warning("connecting to %s failed (%d in a row): %r", url, failures, exc)
            if max_failures is not None and failures >= max_failures:
                raise ConnectionError(
                    f"cannot connect to {url}: {failures} failed attempts in a row"
                ) from exc
            await asyncio.sleep(_backoff(failures, first_delay, max_delay))
            continue
        received = False
        try:
            if on_connect is not None:
                await on_connect(ws)
            async for message in ws:
                if message.type == aiohttp.WSMsgType.TEXT:
                    received = True
                    await on_text(message.data)
                elif message.type == aiohttp.WSMsgType.ERROR:
                    # A heartbeat without its pong ends up here (ServerTimeoutError).
                    logger.warning("connection to %s failed: %r", url, ws.exception())
                    break
                # BINARY: this client speaks text only; ignore it.
        finally:
            await ws.close()
        failures = 0 if received else failures + 1
        logger.info("disconnected from %s (close code %s)", url, ws.close_code)
        if max_failures is not None and failures >= max_failures:
            raise ConnectionError(f"{url}: {failures} connections in a row brought no message")
        await asyncio.sleep(_backoff(max(failures, 1), first_delay, max_delay))


async def _receive_loop(
    ws: web.WebSocketResponse,
    on_text: Callable[[web.WebSocketResponse, str], Awaitable[None]],
) -> None:
    """Hand every text message to ``on_text`` until the connection closes."""
    async for message in ws:
        if message.type == aiohttp.WSMsgType.TEXT:
            try:
                await on_text(ws, message.data)
            except Exception:
                await ws.close(code=aiohttp.WSCloseCode.INTERNAL_ERROR, message=b"server error")
                raise
        elif message.type == aiohttp.WSMsgType.BINARY:
            await ws.close(code=aiohttp.WSCloseCode.UNSUPPORTED_DATA, message=b"text only")
        elif message.type == aiohttp.WSMsgType.ERROR:
            # A malformed or oversized frame, or a heartbeat without its pong:
            # aiohttp has closed the connection (1002, 1007, 1009 or 1006).
            logger.info("websocket closed on error: %r", ws.exception())
            break


async def serve_websocket(
    request: web.Request,
    on_text: Callable[[web.WebSocketResponse, str], Awaitable[None]],
    *,
    heartbeat: float = 20.0,
    max_msg_size: int = 64 * 1024,
    close_timeout: float = 5.0,
) -> web.WebSocketResponse:
    """Upgrade ``request`` to a WebSocket and hand each text message to ``on_text``.

    Call it from a handler, ``return await serve_websocket(request, on_text)``;
    it returns once the connection is closed.  ``await on_text(ws, text)``
    runs for each text message, one at a time, and may answer with
    ``ws.send_str()``.  A binary message closes the connection with 1003; a
    malformed frame, a message over ``max_msg_size`` bytes or a ``heartbeat``
    without its pong ends the loop (aiohttp has closed the connection with
    1002, 1009 or 1006).  If ``on_text`` raises, the connection is closed
    with 1011 and the exception propagates to aiohttp, which logs it.  The
    closing handshake gets ``close_timeout`` seconds.

    >>> import asyncio
    >>> import aiohttp
    >>> from aiohttp import web
    >>> async def serve(*routes):
    ...     runner = web.AppRunner(web.Application())
    ...     runner.app.add_routes(routes)
    ...     await runner.setup()
    ...     await web.TCPSite(runner, "127.0.0.1", 0).start()
    ...     return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"
    >>> session = aiohttp.ClientSession()
    >>> from recipes.realtime import serve_websocket
    >>> import json
    >>> async def add(ws, text):
    ...     numbers = json.loads(text)
    ...     await ws.send_str(json.dumps(sum(numbers)))
    >>> async def adder(request):
    ...     return await serve_websocket(request, add, max_msg_size=1024)
    >>> runner, url = await serve(web.get("/add", adder))
    >>> ws = await session.ws_connect(url + "/add")
    >>> await ws.send_str("[1, 2, 3]")
    >>> await ws.receive_str(timeout=5)
    '6'

    A message over ``max_msg_size`` closes the connection with 1009
    (message too big):

    >>> await ws.send_str("[" + "1, " * 1000 + "1]")
    >>> msg = await ws.receive(timeout=5)
    >>> msg.type.name, msg.data
    ('CLOSE', 1009)

    An exception in ``on_text`` closes the connection with 1011 (internal
    error); aiohttp logs the traceback as ``Error handling request``:

    >>> ws = await session.ws_connect(url + "/add")
    >>> await ws.send_str("not json")
    >>> msg = await ws.receive(timeout=5)
    >>> msg.type.name, msg.data, msg.extra
    ('CLOSE', 1011, 'server error')
    >>> await session.close()
    >>> await runner.cleanup()
    """
    ws = web.WebSocketResponse(
        heartbeat=heartbeat, max_msg_size=max_msg_size, timeout=close_timeout
    )
    await ws.prepare(request)
    try:
        await _receive_loop(ws, on_text)
    finally:
        await ws.close()
    return ws


async def _ignore(ws: web.WebSocketResponse, text: str) -> None:
    """The default ``on_text`` of a :class:`Broadcaster`: listeners only listen."""


class _Client(NamedTuple):
    queue: asyncio.Queue[str]
    transport: Optional[asyncio.Transport]


class Broadcaster:
    """Send every published message to every connected WebSocket client.

    Use :meth:`handler` as the route's handler.  Each client gets a queue of
    ``queue_size`` messages and a task that sends from it, so
    :meth:`publish` never waits; a client whose queue is full is closed
    with 1008 (policy violation) and counted in :attr:`dropped`.  Messages
    that clients send go to ``await on_text(ws, text)`` (ignored by
    default).  Closing a connection gets ``close_timeout`` seconds, after
    which the connection is aborted.  ``heartbeat`` and ``max_msg_size`` are
    those of :func:`serve_websocket`.

    >>> import asyncio
    >>> import aiohttp
    >>> from aiohttp import web
    >>> async def serve(*routes):
    ...     runner = web.AppRunner(web.Application())
    ...     runner.app.add_routes(routes)
    ...     await runner.setup()
    ...     await web.TCPSite(runner, "127.0.0.1", 0).start()
    ...     return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"
    >>> session = aiohttp.ClientSession()
    >>> from recipes.realtime import Broadcaster
    >>> hub = Broadcaster()
    >>> runner, url = await serve(web.get("/ws", hub.handler))
    >>> alice = await session.ws_connect(url + "/ws")
    >>> bob = await session.ws_connect(url + "/ws")
    >>> hub.publish("hi all")
    2
    >>> await alice.receive_str(timeout=5), await bob.receive_str(timeout=5)
    ('hi all', 'hi all')

    A chat room: what one client sends goes to everybody.  A client that
    leaves is forgotten:

    >>> async def relay(ws, text):
    ...     chat.publish(text)
    >>> chat = Broadcaster(on_text=relay)
    >>> runner2, url2 = await serve(web.get("/chat", chat.handler))
    >>> ann = await session.ws_connect(url2 + "/chat")
    >>> ben = await session.ws_connect(url2 + "/chat")
    >>> await ann.send_str("anyone here?")
    >>> await ben.receive_str(timeout=5)
    'anyone here?'
    >>> await ann.close()
    True
    >>> len(chat)
    1

    :meth:`close_all` closes the remaining connections, here with 1012
    (service restart), and refuses new ones:

    >>> await hub.close_all(code=aiohttp.WSCloseCode.SERVICE_RESTART)
    >>> msg = await alice.receive(timeout=5)
    >>> msg.type.name, msg.data, msg.extra
    ('CLOSE', 1012, 'server shutdown')
    >>> await session.ws_connect(url + "/ws")
    Traceback (most recent call last):
    ...
    aiohttp...WSServerHandshakeError: 503, message='Invalid response status'...
    >>> for ws in (alice, bob, ben):
    ...     _ = await ws.close()
    >>> await chat.close_all()
    >>> await session.close()
    >>> for r in (runner, runner2):
    ...     await r.cleanup()
    """

    def __init__(
        self,
        *,
        queue_size: int = 100,
        on_text: Callable[[web.WebSocketResponse, str], Awaitable[None]] = _ignore,
        heartbeat: float = 20.0,
        max_msg_size: int = 64 * 1024,
        close_timeout: float = 5.0,
    ) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {queue_size}")
        if close_timeout <= 0:
            raise ValueError(f"close_timeout must be > 0, got {close_timeout}")
        self.queue_size = queue_size
        self.close_timeout = close_timeout
        self._on_text = on_text
        self._heartbeat = heartbeat
        self._max_msg_size = max_msg_size
        self._clients: Dict[web.WebSocketResponse, _Client] = {}
        self._closers: Set[asyncio.Task[None]] = set()
        self._closing = False
        self.dropped = 0
        """How many clients were disconnected because their queue was full."""

    def __len__(self) -> int:
        """The number of connected clients."""
        return len(self._clients)

    async def handler(self, request: web.Request) -> web.WebSocketResponse:
        """The aiohttp handler of the WebSocket route: ``add_get(path, hub.handler)``."""
        if self._closing:
            raise web.HTTPServiceUnavailable(text="shutting down")
        ws = web.WebSocketResponse(
            heartbeat=self._heartbeat, max_msg_size=self._max_msg_size, timeout=self.close_timeout
        )
        await ws.prepare(request)
        queue: asyncio.Queue[str] = asyncio.Queue(self.queue_size)
        self._clients[ws] = _Client(queue, request.transport)
        sender = asyncio.ensure_future(self._send_queued(ws, queue))
        try:
            await _receive_loop(ws, self._on_text)
        finally:
            self._clients.pop(ws, None)
            sender.cancel()
            await asyncio.wait([sender])
            if not sender.cancelled() and sender.exception() is not None:
                logger.error("websocket sender failed", exc_info=sender.exception())
            await self._close(ws, request.transport, aiohttp.WSCloseCode.OK, b"")
        return ws

    async def _send_queued(self, ws: web.WebSocketResponse, queue: asyncio.Queue[str]) -> None:
        while True:
            text = await queue.get()
            try:
                await ws.send_str(text)
            except ConnectionError:
                return  # gone: the receive loop sees it too and ends the handler

    def publish(self, text: str) -> int:
        """Queue ``text`` for every client; return how many got it.

        Never waits.  A client whose queue is full is dropped: it is closed
        with code 1008 (policy violation) and stops counting in ``len()``.
        """
        if not isinstance(text, str):
            raise TypeError(f"publish() takes a str, got {type(text).__name__}")
        queued = 0
        for ws, client in list(self._clients.items()):
            try:
                client.queue.put_nowait(text)
            except asyncio.QueueFull:
                self._drop(ws, client)
            else:
                queued += 1
        return queued

    def _drop(self, ws: web.WebSocketResponse, client: _Client) -> None:
        del self._clients[ws]
        self.dropped += 1
        logger.warning("dropping a websocket client that fell %d messages behind", self.queue_size)
        closer = asyncio.ensure_future(
            self._close(ws, client.transport, aiohttp.WSCloseCode.POLICY_VIOLATION, b"too slow")
        )
        self._closers.add(closer)
        closer.add_done_callback(self._closers.discard)

    async def _close(
        self,
        ws: web.WebSocketResponse,
        transport: Optional[asyncio.Transport],
        code: int,
        message: bytes,
    ) -> None:
        """Close ``ws`` politely; abort its connection if that takes too long."""
        try:
            await asyncio.wait_for(ws.close(code=code, message=message), self.close_timeout)
        except asyncio.TimeoutError:
            # A peer that reads nothing never takes our close frame off the
            # buffer; transport.close() would wait for that buffer to drain.
            if transport is not None:
                transport.abort()

    async def close_all(
        self,
        code: int = aiohttp.WSCloseCode.GOING_AWAY,
        message: bytes = b"server shutdown",
    ) -> None:
        """Close every connection with ``code``; refuse new ones from now on."""
        self._closing = True
        clients = list(self._clients.items())
        self._clients.clear()
        closing = [self._close(ws, client.transport, code, message) for ws, client in clients]
        await asyncio.gather(*closing, *self._closers)

    async def on_shutdown(self, app: web.Application) -> None:
        """For ``app.on_shutdown.append(hub.on_shutdown)``: :meth:`close_all` with 1001."""
        await self.close_all()


class Event(NamedTuple):
    """One server-sent event: its ``data``, ``event`` type, ``id`` and ``retry``.

    :meth:`encode` gives the bytes a server writes; :class:`EventStreamParser`
    gives events back (with ``retry`` always ``None``: the parser keeps it as
    :attr:`EventStreamParser.retry`).  ``retry`` asks the client to wait that
    many milliseconds before it reconnects.

    >>> from recipes.realtime import Event
    >>> Event("hello").encode()
    b'data: hello\\n\\n'
    >>> print(Event("two\\nlines", event="note", id="9", retry=5000).encode()
    ...       .decode(), end="")
    event: note
    id: 9
    retry: 5000
    data: two
    data: lines
    <BLANKLINE>

    A line break in the ``event`` or ``id`` would start a new field, so it
    is refused:

    >>> Event("x", id="1\\ndata: injected").encode()
    Traceback (most recent call last):
    ...
    ValueError: an event id must not contain a line break: '1\\ndata: injected'
    """

    #: The payload; each line of it becomes a ``data:`` line.
    data: str
    #: The event type a browser dispatches it as (``"message"`` unless named).
    event: str = "message"
    #: The id a reconnecting client sends back as ``Last-Event-ID``.
    id: Optional[str] = None
    #: How many milliseconds the client should wait before it reconnects.
    retry: Optional[int] = None

    def encode(self) -> bytes:
        """The event in the ``text/event-stream`` format, UTF-8, ending in a blank line."""
        lines: List[str] = []
        if self.event != "message":
            _check_field("event", self.event)
            lines.append(f"event: {self.event}")
        if self.id is not None:
            _check_field("id", self.id)
            if "\0" in self.id:
                raise ValueError("an event id must not contain NUL")
            lines.append(f"id: {self.id}")
        if self.retry is not None:
            if isinstance(self.retry, bool) or not isinstance(self.retry, int) or self.retry < 0:
                raise ValueError(f"retry must be an int of milliseconds >= 0, got {self.retry!r}")
            lines.append(f"retry: {self.retry}")
        lines.extend(f"data: {line}" for line in _LINE_BREAK.split(self.data))
        return ("\n".join(lines) + "\n\n").encode("utf-8")


def _check_field(name: str, value: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if "\r" in value or "\n" in value:
        raise ValueError(f"an event {name} must not contain a line break: {value!r}")


async def stream_events(
    request: web.Request,
    events: Callable[[Optional[str]], AsyncIterator[Event]],
    *,
    keepalive: float = 15.0,
) -> web.StreamResponse:
    """Serve the events of ``events(last_event_id)`` as a ``text/event-stream``.

    Call it from a handler: ``return await stream_events(request, gen)``.
    ``events`` gets the request's ``Last-Event-ID`` header (``None`` if
    absent) and returns an async iterator of :class:`Event`, usually an async
    generator.  Whenever it has produced nothing for ``keepalive`` seconds, a
    comment line is written, which keeps proxies from closing the connection
    and finds a client that went away.  When the client is gone (a write
    fails), or the handler is cancelled, the iterator is closed with
    ``aclose()`` at once, so its ``finally`` blocks run; an exception from
    the iterator propagates after the same cleanup.

    >>> import asyncio
    >>> import aiohttp
    >>> from aiohttp import web
    >>> async def serve(*routes):
    ...     runner = web.AppRunner(web.Application())
    ...     runner.app.add_routes(routes)
    ...     await runner.setup()
    ...     await web.TCPSite(runner, "127.0.0.1", 0).start()
    ...     return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"
    >>> session = aiohttp.ClientSession()
    >>> from recipes.realtime import Event, stream_events
    >>> async def countdown(last_id):
    ...     for n in (3, 2, 1):
    ...         yield Event(str(n), event="countdown")
    ...     yield Event("liftoff")
    >>> async def launch(request):
    ...     return await stream_events(request, countdown)
    >>> runner, url = await serve(web.get("/launch", launch))
    >>> async with session.get(url + "/launch") as resp:
    ...     body = await resp.text()
    >>> print(body.replace("\\n\\n", "\\n---\\n"), end="")
    event: countdown
    data: 3
    ---
    event: countdown
    data: 2
    ---
    event: countdown
    data: 1
    ---
    data: liftoff
    ---

    The header that a reconnecting client sends reaches the generator:

    >>> async def echo_id(last_id):
    ...     yield Event(f"you saw {last_id}")
    >>> async def resume(request):
    ...     return await stream_events(request, echo_id)
    >>> runner2, url2 = await serve(web.get("/resume", resume))
    >>> headers = {"Last-Event-ID": "41"}
    >>> async with session.get(url2 + "/resume", headers=headers) as resp:
    ...     print(await resp.text(), end="")
    data: you saw 41
    <BLANKLINE>
    >>> await session.close()
    >>> for r in (runner, runner2):
    ...     await r.cleanup()
    """
    if keepalive <= 0:
        raise ValueError(f"keepalive must be > 0, got {keepalive}")
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # nginx: pass each event on at once
        }
    )
    await response.prepare(request)
    source = events(request.headers.get("Last-Event-ID"))
    pending: Optional[asyncio.Future[Event]] = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(source.__anext__())
            done, _ = await asyncio.wait([pending], timeout=keepalive)
            if not done:
                await response.write(_KEEPALIVE)
                continue
            finished, pending = pending, None
            try:
                event = finished.result()
            except StopAsyncIteration:
                break
            await response.write(event.encode())
    except ConnectionError:
        logger.info("event stream client %s went away", request.remote)
        return response
    finally:
        if pending is not None:
            pending.cancel()
            await asyncio.wait([pending])
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()
    await response.write_eof()
    return response


class EventStreamParser:
    """Parse a ``text/event-stream`` incrementally, as ``EventSource`` does.

    :meth:`feed` takes decoded text in pieces of any size and returns the
    events completed so far.  Lines may end in ``\\r\\n``, ``\\r`` or
    ``\\n``; a leading byte order mark is skipped; ``data`` lines are joined
    with ``\\n``; lines starting with ``:`` are comments; unknown fields and
    a ``retry`` that is not all digits are ignored; an ``id`` stays in force
    (:attr:`last_event_id`) for the events that follow; an event without
    ``data`` is not dispatched; and an event without the blank line that
    ends it is dropped at the end of the stream.  A line or an event longer
    than ``max_event_size`` characters raises :exc:`ValueError`, so a server
    cannot make the client buffer without bound.

    >>> from recipes.realtime import EventStreamParser
    >>> parser = EventStreamParser()
    >>> parser.feed("retry: 3000\\r\\nid: 1\\r\\ndata:first\\r\\n\\r")
    [Event(data='first', event='message', id='1', retry=None)]
    >>> parser.feed("\\ndata: second\\n\\n")
    [Event(data='second', event='message', id='1', retry=None)]
    >>> parser.retry, parser.last_event_id
    (3000, '1')

    Comments, fields without data and unknown fields produce nothing:

    >>> parser.feed(": just a comment\\n\\nevent: empty\\n\\nfoo: bar\\n\\n")
    []

    A server that never ends its line runs into the limit:

    >>> small = EventStreamParser(max_event_size=10)
    >>> small.feed("data: " + "x" * 20)
    Traceback (most recent call last):
    ...
    ValueError: event stream line longer than 10 characters
    """

    def __init__(self, *, max_event_size: int = 1024 * 1024) -> None:
        self.max_event_size = max_event_size
        self.last_event_id = ""
        """The id of the last event, as a reconnecting client sends it in ``Last-Event-ID``."""
        self.retry: Optional[int] = None
        """The reconnection delay in milliseconds the server last asked for."""
        self._buffer = ""
        self._data: List[str] = []
        self._size = 0
        self._event = ""
        self._first = True
        self._after_cr = False

    def feed(self, text: str) -> List[Event]:
        """Parse the next piece of the stream; return the events it completed."""
        if not text:
            return []
        if self._after_cr and text.startswith("\n"):
            text = text[1:]  # the second half of a CRLF split between two pieces
        if self._first:
            self._first = False
            if text.startswith("\ufeff"):
                text = text[1:]
        self._buffer += text
        lines = _LINE_BREAK.split(self._buffer)
        self._buffer = lines.pop()
        self._after_cr = text.endswith("\r")
        if len(self._buffer) > self.max_event_size:
            raise ValueError(f"event stream line longer than {self.max_event_size} characters")
        events: List[Event] = []
        for line in lines:
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def _line(self, line: str) -> Optional[Event]:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment, such as a keep-alive
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._size += len(value) + 1
            if self._size > self.max_event_size:
                raise ValueError(f"event larger than {self.max_event_size} characters")
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif name == "retry":
            if value.isascii() and value.isdigit():
                self.retry = int(value)
        return None  # any other field is ignored, as the standard says

    def _dispatch(self) -> Optional[Event]:
        data, event = self._data, self._event
        self._data, self._event, self._size = [], "", 0
        if not data:
            return None
        return Event("\n".join(data), event or "message", self.last_event_id or None)


async def read_events(
    response: aiohttp.ClientResponse, *, max_event_size: int = 1024 * 1024
) -> AsyncIterator[Event]:
    """Yield the events of an aiohttp response, as they arrive.

    Raises :exc:`ValueError` if the response is not a ``text/event-stream``
    (an error page, say), or for an event over ``max_event_size``
    characters (see :class:`EventStreamParser`).  Invalid UTF-8 becomes
    U+FFFD, as the standard says.  It ends when the server ends the stream.
    Reconnecting is up to you: send the ``id`` of the last event you handled
    as ``Last-Event-ID``.

    >>> import asyncio
    >>> import aiohttp
    >>> from aiohttp import web
    >>> async def serve(*routes):
    ...     runner = web.AppRunner(web.Application())
    ...     runner.app.add_routes(routes)
    ...     await runner.setup()
    ...     await web.TCPSite(runner, "127.0.0.1", 0).start()
    ...     return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"
    >>> session = aiohttp.ClientSession()
    >>> from recipes.realtime import Event, read_events, stream_events
    >>> async def news(last_id):
    ...     yield Event("rain later", event="weather", id="1")
    ...     yield Event("trains on time", id="2")
    >>> async def handler(request):
    ...     return await stream_events(request, news)
    >>> runner, url = await serve(web.get("/news", handler))
    >>> async with session.get(url + "/news") as resp:
    ...     async for event in read_events(resp):
    ...         print(event)
    Event(data='rain later', event='weather', id='1', retry=None)
    Event(data='trains on time', event='message', id='2', retry=None)

    Anything but an event stream is refused:

    >>> async with session.get(url + "/elsewhere") as resp:
    ...     async for event in read_events(resp):
    ...         print(event)
    Traceback (most recent call last):
    ...
    ValueError: expected a text/event-stream response, got text/plain (status 404)
    >>> await session.close()
    >>> await runner.cleanup()
    """
    if response.content_type != "text/event-stream":
        raise ValueError(
            "expected a text/event-stream response, got "
            f"{response.content_type} (status {response.status})"
        )
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    parser = EventStreamParser(max_event_size=max_event_size)
    async for chunk in response.content.iter_any():
        for event in parser.feed(decoder.decode(chunk)):
            yield event
