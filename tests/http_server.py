"""The local demo HTTP server that the HTTP examples and tests talk to.

Nothing in the cookbook touches the internet: every HTTP example runs against
this small :mod:`aiohttp.web` application, served on 127.0.0.1 on the same
event loop as the example (see the root ``conftest.py``).  To follow along in
your own ``python -m asyncio`` session, start it in another terminal::

    python -m tests.http_server --port 8080

and use ``base_url = "http://127.0.0.1:8080"``.

Routes (all ``GET`` unless noted):

``/``                        a short plain-text index of these routes
``/json``                    ``{"message": "hello", "items": [1, 2, 3]}``
``/users/{id}``              ``{"id": id, "name": "user-<id>"}``; 404 JSON for id 0
``/whoami``                  ``{"client_port": port}``: shows whether a connection was reused
``/stream?size=N``           N bytes (``0123456789`` repeated) written in chunks;
                             ``chunk=C`` sets the chunk size, ``fail_after=M``
                             drops the connection after M bytes
``/slow?delay=S``            answers ``{"delay": S}`` after ``asyncio.sleep(S)``
``/flaky?key=K&failures=N``  503 for the first N requests of each key, then 200
                             JSON; ``retry_after=S`` adds a ``Retry-After`` header
``/status/{code}``           an empty-ish answer with that status code
``/reset``                   closes the connection without answering
``/malformed``               ``{"broken": `` served as ``application/json``
``/html``                    an HTML page (wrong content type for JSON)
``POST /echo``               echoes a JSON body as ``{"received": body}``
``/stats``                   what the server saw: hits per path, peak concurrency

Per-application state lives on the app under :class:`aiohttp.web.AppKey` keys,
never in module globals, so every served copy starts from zero.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Awaitable, Callable, List, Optional

from aiohttp import web

__all__ = ["DemoStats", "make_demo_app", "main"]

PATTERN = b"0123456789"


@dataclass
class DemoStats:
    """What one served copy of the demo app has seen."""

    hits: Counter[str] = field(default_factory=Counter)  # requests per path
    flaky: Counter[str] = field(default_factory=Counter)  # /flaky requests per key
    in_flight: int = 0
    peak_in_flight: int = 0


STATS = web.AppKey("stats", DemoStats)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count hits per path and track how many requests are in flight at once."""
    if request.path == "/stats":
        return await handler(request)
    stats = request.config_dict[STATS]
    stats.hits[request.path] += 1
    stats.in_flight += 1
    stats.peak_in_flight = max(stats.peak_in_flight, stats.in_flight)
    try:
        return await handler(request)
    finally:
        stats.in_flight -= 1


def _number(request: web.Request, name: str, default: float) -> float:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be a number, got {raw!r}") from None
    if value < 0:
        raise web.HTTPBadRequest(text=f"{name} must be >= 0, got {raw!r}")
    return value


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def index(request: web.Request) -> web.Response:
    routes = sorted({str(r.resource.canonical) for r in request.app.router.routes() if r.resource})
    return web.Response(text="demo server routes:\n" + "\n".join(routes) + "\n")


async def hello_json(request: web.Request) -> web.Response:
    return web.json_response({"message": "hello", "items": [1, 2, 3]})


async def user(request: web.Request) -> web.Response:
    user_id = int(request.match_info["id"])
    if user_id == 0:
        return web.json_response({"error": "no such user", "id": 0}, status=404)
    return web.json_response({"id": user_id, "name": f"user-{user_id}"})


async def whoami(request: web.Request) -> web.Response:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return web.json_response({"client_port": peer[1] if peer else None})


async def stream(request: web.Request) -> web.StreamResponse:
    size = int(_number(request, "size", 1_000_000))
    chunk = max(1, int(_number(request, "chunk", 64 * 1024)))
    fail_after: Optional[int] = None
    if "fail_after" in request.query:
        fail_after = int(_number(request, "fail_after", 0))
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    response.content_length = size
    await response.prepare(request)
    # Byte i of the body is PATTERN[i % 10], so a client can check what it got.
    body = PATTERN * (chunk // len(PATTERN) + 2)
    sent = 0
    while sent < size:
        n = min(chunk, size - sent)
        if fail_after is not None and sent + n > fail_after:
            n = fail_after - sent
        offset = sent % len(PATTERN)
        if n:
            try:
                await response.write(body[offset : offset + n])
            except ConnectionResetError:  # the client went away: nothing left to do
                return response
            sent += n
        await asyncio.sleep(0)  # let each chunk reach the client before the next
        if fail_after is not None and sent >= fail_after:
            if request.transport is not None:
                request.transport.abort()
            return response
    await response.write_eof()
    return response


async def slow(request: web.Request) -> web.Response:
    delay = _number(request, "delay", 1.0)
    # Sleep in short steps and stop once the client has gone, so that a client
    # which timed out does not keep the server (and its shutdown) waiting.
    # Counting steps, not comparing clock readings, keeps float rounding from
    # turning the last step into an endless run of zero-length sleeps.
    steps = max(1, math.ceil(delay / 0.05))
    for _ in range(steps):
        if _client_gone(request):
            break
        await asyncio.sleep(round(delay / steps, 6))
    return web.json_response({"delay": delay})


async def flaky(request: web.Request) -> web.Response:
    key = request.query.get("key", "default")
    failures = int(_number(request, "failures", 2))
    stats = request.config_dict[STATS]
    stats.flaky[key] += 1
    attempt = stats.flaky[key]
    if attempt <= failures:
        headers = {}
        if "retry_after" in request.query:
            headers["Retry-After"] = request.query["retry_after"]
        return web.json_response(
            {"error": "try again", "attempt": attempt}, status=503, headers=headers
        )
    return web.json_response({"key": key, "attempts": attempt})


async def status(request: web.Request) -> web.Response:
    code = int(request.match_info["code"])
    if not 200 <= code <= 599:
        raise web.HTTPBadRequest(text=f"status must be between 200 and 599, got {code}")
    return web.Response(status=code, text=f"status {code}\n")


async def reset(request: web.Request) -> web.Response:
    # Close the connection before any byte of an answer: the client sees
    # ServerDisconnectedError.  The response returned below is discarded.
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=500)


async def malformed(request: web.Request) -> web.Response:
    return web.Response(body=b'{"broken": ', content_type="application/json")


async def html(request: web.Request) -> web.Response:
    return web.Response(
        text="<!doctype html><title>Not JSON</title><p>Hello</p>\n", content_type="text/html"
    )


async def echo(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except json.JSONDecodeError as exc:
        return web.json_response({"error": f"invalid JSON: {exc}"}, status=400)
    return web.json_response({"received": body})


async def stats(request: web.Request) -> web.Response:
    seen = request.config_dict[STATS]
    return web.json_response(
        {
            "hits": dict(sorted(seen.hits.items())),
            "flaky": dict(sorted(seen.flaky.items())),
            "in_flight": seen.in_flight,
            "peak_in_flight": seen.peak_in_flight,
        }
    )


def make_demo_app() -> web.Application:
    """Build a fresh copy of the demo application, with its own counters."""
    app = web.Application(middlewares=[count_requests])
    app[STATS] = DemoStats()
    app.router.add_get("/", index)
    app.router.add_get("/json", hello_json)
    app.router.add_get(r"/users/{id:\d+}", user)
    app.router.add_get("/whoami", whoami)
    app.router.add_get("/stream", stream)
    app.router.add_get("/slow", slow)
    app.router.add_get("/flaky", flaky)
    app.router.add_get(r"/status/{code:\d+}", status)
    app.router.add_get("/reset", reset)
    app.router.add_get("/malformed", malformed)
    app.router.add_get("/html", html)
    app.router.add_post("/echo", echo)
    app.router.add_get("/stats", stats)
    return app


def serve_from_command_line(
    make_app: Callable[[], web.Application],
    *,
    port: int,
    doc: Optional[str],
    argv: Optional[List[str]] = None,
) -> None:
    """Parse ``--host``/``--port`` (default ``port``) and serve ``make_app()`` until interrupted.

    ``doc`` is the serving module's docstring; its first line is the ``--help`` description.
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=port)
    args = parser.parse_args(argv)
    web.run_app(make_app(), host=args.host, port=args.port)


def main(argv: Optional[List[str]] = None) -> None:
    """Serve the demo app until interrupted: ``python -m tests.http_server``."""
    serve_from_command_line(make_demo_app, port=8080, doc=__doc__, argv=argv)


if __name__ == "__main__":
    main()
