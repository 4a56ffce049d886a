"""Behaviour, bad-input, load and CLI tests for recipes/api_server.py.

Every API test runs twice, once per store: in memory and on the session's
PostgreSQL (a table of its own per test, dropped afterwards).  Every request
made through ``Api.call`` also checks the promise of the chapter: the answer
is never a 5xx, and every error is a JSON object with an ``"error"`` string.
The property-based test at the end (Hypothesis) checks the whole promise
with raw requests: no 5xx, no traceback or unescaped client text in the log,
nothing stored by a refused request.  ``COOKBOOK_HYPOTHESIS_EXAMPLES`` sets
how many requests it tries per store (250 by default, always the same ones).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import gzip
import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
import zlib
from pathlib import Path
from typing import (
    Any,
    AsyncIterator,
    Awaitable,
    Callable,
    Dict,
    Iterator,
    List,
    Optional,
    Tuple,
    TypeVar,
)
from urllib.parse import quote

import aiohttp
import pytest
import pytest_asyncio
import yarl
from aiohttp import web
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from recipes.api_server import (
    DEFAULT_MAX_BODY_BYTES,
    MAX_AGE,
    MAX_ID_LENGTH,
    MAX_NAME_LENGTH,
    STORE_KEY,
    MemoryStore,
    PostgresStore,
    Store,
    User,
    error_middleware,
    make_app,
)
from tests.conftest import served

ROOT = Path(__file__).resolve().parent.parent
AIOHTTP_VERSION = tuple(int(part) for part in aiohttp.__version__.split(".")[:2])
T = TypeVar("T")
# Hypothesis keeps caches (Unicode tables, constants found in the sources) in ./.hypothesis
# unless told otherwise; its example database is off (database=None below).
if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
    set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "asyncio-cookbook-hypothesis")
JSON = {"Content-Type": "application/json"}


def unique_table() -> str:
    return f"test_users_{uuid.uuid4().hex[:12]}"


# --- fixtures ---------------------------------------------------------------------


@pytest.fixture(params=["memory", "postgres"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def new_store(store_kind: str, request: pytest.FixtureRequest) -> Callable[[], Store]:
    """Makes a fresh store object; for PostgreSQL, every one uses this test's table."""
    if store_kind == "memory":
        return MemoryStore
    dsn = request.getfixturevalue("postgres_dsn")
    return functools.partial(PostgresStore, dsn, table=unique_table())


class Api:
    """A running application and a client session pointed at it."""

    def __init__(self, runner: web.AppRunner, session: aiohttp.ClientSession) -> None:
        self.runner = runner
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        self.port: int = runner.addresses[0][1]
        self.session = session

    async def stop(self) -> None:
        """Close the client and clean the application up (which closes its store)."""
        await self.session.close()
        await self.runner.cleanup()

    async def call(
        self,
        method: str,
        path: str,
        *,
        allow_5xx: bool = False,
        encoded: bool = False,
        **kwargs: Any,
    ) -> Tuple[int, Any, Any]:
        """``(status, parsed JSON body or None, headers)``, checking the error contract.

        ``encoded=True`` sends ``path`` exactly as written, ``%2E%2E`` included (the
        client would otherwise decode it and remove the dot segment).
        """
        url = yarl.URL(self.url + path, encoded=True) if encoded else self.url + path
        async with self.session.request(method, url, **kwargs) as resp:
            raw = await resp.read()
            status, headers, content_type = resp.status, resp.headers, resp.content_type
        if not allow_5xx:
            assert status < 500, (method, path, status, raw[:300])
        if status == 204 or method == "HEAD":
            assert raw == b""
            return status, None, headers
        assert content_type == "application/json", (status, content_type, raw[:300])
        body = json.loads(raw.decode("utf-8"))
        if status >= 400:
            assert isinstance(body, dict) and isinstance(body.get("error"), str), body
            assert body["error"]
        return status, body, headers

    async def post_raw(self, body: bytes, **headers: str) -> Tuple[int, Any]:
        all_headers = dict(JSON)
        all_headers.update(headers)
        status, data, _ = await self.call("POST", "/users", data=body, headers=all_headers)
        return status, data


@pytest_asyncio.fixture
async def serve(new_store: Callable[[], Store]) -> AsyncIterator[Callable[..., Awaitable[Api]]]:
    """``await serve(store=None, **make_app_kwargs)`` starts an application on a fresh store."""
    apis: List[Api] = []
    stores: List[Store] = []

    async def start(store: Optional[Store] = None, **options: Any) -> Api:
        store = new_store() if store is None else store
        stores.append(store)
        runner = web.AppRunner(make_app(store, **options))
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        apis.append(Api(runner, aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))))
        return apis[-1]

    try:
        yield start
    finally:
        for api in reversed(apis):
            await api.stop()  # a second stop is harmless
        tables = {(s._dsn, s.table) for s in stores if isinstance(s, PostgresStore)}
        for dsn, table in tables:
            async with PostgresStore(dsn, table=table) as store:
                await store.drop_table()


@pytest_asyncio.fixture
async def api(serve: Callable[..., Awaitable[Api]]) -> Api:
    return await serve()


def user_path(user_id: str) -> str:
    return "/users/" + quote(user_id, safe="")


# --- the happy path -----------------------------------------------------------------


@pytest.mark.asyncio
async def test_create_read_replace_delete(api: Api) -> None:
    status, body, headers = await api.call(
        "POST", "/users", json={"id": 1, "name": "Ada", "age": 36}
    )
    assert (status, body) == (201, {"id": "1", "name": "Ada", "age": 36})
    assert headers["Location"] == "/users/1"
    assert (await api.call("GET", "/users/1"))[:2] == (200, body)
    status, body, _ = await api.call("PUT", "/users/1", json={"name": "Ada King"})
    assert (status, body) == (200, {"id": "1", "name": "Ada King", "age": None})
    assert (await api.call("GET", "/users"))[:2] == (200, [body])
    assert (await api.call("DELETE", "/users/1"))[:2] == (204, None)
    status, body, _ = await api.call("GET", "/users/1")
    assert (status, body) == (404, {"error": "no user with id '1'"})
    assert (await api.call("DELETE", "/users/1"))[0] == 404
    assert (await api.call("PUT", "/users/1", json={"name": "Ghost"}))[0] == 404
    assert (await api.call("GET", "/users"))[:2] == (200, [])


@pytest.mark.asyncio
async def test_list_is_sorted_by_id_in_code_point_order(api: Api) -> None:
    ids = ["b", "a", "B", "10", "9", "é", "z", "Z", "_", "~", "日本", "a b"]
    for user_id in ids:
        assert (await api.call("POST", "/users", json={"id": user_id, "name": "n"}))[0] == 201
    status, body, _ = await api.call("GET", "/users")
    assert status == 200
    assert [user["id"] for user in body] == sorted(ids)


@pytest.mark.asyncio
async def test_integer_and_string_ids_name_the_same_user(api: Api) -> None:
    assert (await api.call("POST", "/users", json={"id": 42, "name": "A"}))[0] == 201
    status, body, _ = await api.call("POST", "/users", json={"id": "42", "name": "B"})
    assert (status, body) == (409, {"error": "a user with id '42' already exists"})
    status, body, _ = await api.call("PUT", "/users/42", json={"id": 42, "name": "C"})
    assert (status, body["name"]) == (200, "C")


@pytest.mark.asyncio
async def test_head_requests_are_answered(api: Api) -> None:
    await api.call("POST", "/users", json={"id": "h", "name": "Head"})
    assert (await api.call("HEAD", "/users"))[0] == 200
    assert (await api.call("HEAD", "/users/h"))[0] == 200
    assert (await api.call("HEAD", "/users/nobody"))[0] == 404


@pytest.mark.asyncio
async def test_boundary_values_are_accepted(api: Api) -> None:
    accepted = [
        {"id": "i" * MAX_ID_LENGTH, "name": "n" * MAX_NAME_LENGTH},
        {"id": 0, "name": "zero", "age": 0},
        {"id": -5, "name": "negative id", "age": MAX_AGE},
        {"id": "null-age", "name": "x", "age": None},
        {"id": "...", "name": "three dots"},
        {"id": " padded ", "name": " padded "},
    ]
    for user in accepted:
        status, body, _ = await api.call("POST", "/users", json=user)
        assert status == 201, (user, body)
        expected = {"id": str(user["id"]), "name": user["name"], "age": user.get("age")}
        assert body == expected
        assert (await api.call("GET", user_path(expected["id"])))[1] == expected


# --- bad bodies ---------------------------------------------------------------------

MALFORMED = {
    "empty": b"",
    "whitespace": b"  \r\n\t ",
    "truncated": b'{"id": 1, "name": "Ada"',
    "single quotes": b"{'id': 1, 'name': 'Ada'}",
    "trailing comma": b'{"id": 1, "name": "Ada",}',
    "trailing garbage": b'{"id": 1, "name": "Ada"} x',
    "two objects": b'{"id": 1, "name": "Ada"}{"id": 2, "name": "B"}',
    "NaN": b'{"id": 1, "name": "Ada", "age": NaN}',
    "Infinity": b'{"id": 1, "name": "Ada", "age": Infinity}',
    "bare word": b"hello",
    "deeply nested": b"[" * 8_000 + b"]" * 8_000,
    "deeply nested objects": b'{"a":' * 2_000 + b"1" + b"}" * 2_000,
    "5000-digit integer": b'{"id": 1, "name": "Ada", "age": ' + b"9" * 5000 + b"}",
    "invalid UTF-8": b'{"id": 1, "name": "\xff\xfe"}',
    "truncated UTF-8": b'{"id": 1, "name": "\xc3"}',
    "overlong UTF-8": b'{"id": 1, "name": "\xc0\xaf"}',
    "UTF-16": '{"id": 1, "name": "Ada"}'.encode("utf-16"),
    "UTF-8 BOM": b'\xef\xbb\xbf{"id": 1, "name": "Ada"}',
    "NUL byte": b'{"id": 1, "name": "Ada"}\x00',
}


@pytest.mark.asyncio
@pytest.mark.parametrize("body", MALFORMED.values(), ids=list(MALFORMED))
async def test_malformed_bodies_are_400(api: Api, body: bytes) -> None:
    status, data = await api.post_raw(body)
    assert status == 400, data
    assert (await api.call("GET", "/users"))[1] == []


NOT_OBJECTS = {
    b"null": "null",
    b"[]": "an array",
    b'[{"id": 1, "name": "Ada"}]': "an array",
    b"5": "a number",
    b"-3.5e10": "a number",
    b'"a string"': "a string",
    b"true": "a boolean",
    b"false": "a boolean",
}


@pytest.mark.asyncio
@pytest.mark.parametrize("body", NOT_OBJECTS, ids=[b.decode() for b in NOT_OBJECTS])
async def test_bodies_that_are_not_objects_are_400(api: Api, body: bytes) -> None:
    status, data = await api.post_raw(body)
    assert (status, data) == (400, {"error": f"expected a JSON object, got {NOT_OBJECTS[body]}"})
    status, data, _ = await api.call("PUT", "/users/1", data=body, headers=JSON)
    assert status == 400


@pytest.mark.asyncio
async def test_malformed_json_message_says_where(api: Api) -> None:
    status, data = await api.post_raw(b'{"id": 1, "name": }')
    assert status == 400
    assert data["error"].startswith("malformed JSON: Expecting value: line 1 column 19")


BAD_USERS = [
    ({"name": "no id"}, "id", "is required"),
    ({"id": 1}, "name", "is required"),
    ({}, "id", "is required"),
    ({"id": True, "name": "A"}, "id", "must be a string or an integer"),
    ({"id": 1.5, "name": "A"}, "id", "must be a string or an integer"),
    ({"id": None, "name": "A"}, "id", "must be a string or an integer"),
    ({"id": [1], "name": "A"}, "id", "must be a string or an integer"),
    ({"id": {"x": 1}, "name": "A"}, "id", "must be a string or an integer"),
    ({"id": "", "name": "A"}, "id", "must not be empty"),
    ({"id": "   ", "name": "A"}, "id", "must not be empty"),
    ({"id": ".", "name": "A"}, "id", "must not be '.' or '..'"),
    ({"id": "..", "name": "A"}, "id", "must not be '.' or '..'"),
    ({"id": "i" * (MAX_ID_LENGTH + 1), "name": "A"}, "id", "at most 100 characters"),
    ({"id": 10**MAX_ID_LENGTH, "name": "A"}, "id", "at most 100 characters"),
    ({"id": "a\nb", "name": "A"}, "id", "control characters"),
    ({"id": "a\x00b", "name": "A"}, "id", "control characters"),
    ({"id": 1, "name": ""}, "name", "must not be blank"),
    ({"id": 1, "name": " \t "}, "name", "must not be blank"),
    ({"id": 1, "name": None}, "name", "must be a string"),
    ({"id": 1, "name": 5}, "name", "must be a string"),
    ({"id": 1, "name": ["Ada"]}, "name", "must be a string"),
    ({"id": 1, "name": {"first": "Ada"}}, "name", "must be a string"),
    ({"id": 1, "name": True}, "name", "must be a string"),
    ({"id": 1, "name": "n" * (MAX_NAME_LENGTH + 1)}, "name", "at most 200 characters"),
    ({"id": 1, "name": "x" * 10_000}, "name", "at most 200 characters"),
    ({"id": 1, "name": "Ada\x00"}, "name", "control characters"),
    ({"id": 1, "name": "Ada\x7f"}, "name", "control characters"),
    ({"id": 1, "name": "A", "age": True}, "age", "true and false are not integers"),
    ({"id": 1, "name": "A", "age": False}, "age", "true and false are not integers"),
    ({"id": 1, "name": "A", "age": -1}, "age", "from 0 to 150"),
    ({"id": 1, "name": "A", "age": MAX_AGE + 1}, "age", "from 0 to 150"),
    ({"id": 1, "name": "A", "age": 10**30}, "age", "from 0 to 150"),
    ({"id": 1, "name": "A", "age": -(10**30)}, "age", "from 0 to 150"),
    ({"id": 1, "name": "A", "age": 36.0}, "age", "from 0 to 150"),
    ({"id": 1, "name": "A", "age": 36.5}, "age", "from 0 to 150"),
    ({"id": 1, "name": "A", "age": "36"}, "age", "from 0 to 150"),
    ({"id": 1, "name": "A", "age": [36]}, "age", "from 0 to 150"),
    ({"id": 1, "name": "A", "email": "a@b.c"}, "email", "unknown field"),
    ({"id": 1, "name": "A", "Name": "B"}, "Name", "unknown field"),
    ({"id": 1, "name": "A", "": 1}, "", "unknown field"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("user", "field", "problem"),
    BAD_USERS,
    ids=[f"{i}-{f}" for i, (_, f, _) in enumerate(BAD_USERS)],
)
async def test_invalid_users_are_400_with_field_details(
    api: Api, user: Dict[str, Any], field: str, problem: str
) -> None:
    status, body, _ = await api.call("POST", "/users", json=user)
    assert status == 400
    assert body["error"] == "invalid user"
    assert problem in body["fields"][field], body
    assert (await api.call("GET", "/users"))[1] == []


@pytest.mark.asyncio
async def test_every_problem_is_reported_at_once(api: Api) -> None:
    user = {"id": False, "name": 3, "age": -2, "mail": "x", "extra": None}
    status, body, _ = await api.call("POST", "/users", json=user)
    assert status == 400
    assert sorted(body["fields"]) == ["age", "extra", "id", "mail", "name"]


@pytest.mark.asyncio
@pytest.mark.parametrize("escape", ["\\ud800", "\\udfff", "\\udc00x", "a\\ud83d"])
async def test_lone_surrogates_are_400(api: Api, escape: str) -> None:
    # Valid JSON that no UTF-8 text (and no PostgreSQL text column) can hold.
    for body in (
        f'{{"id": "{escape}", "name": "A"}}',
        f'{{"id": "s", "name": "{escape}"}}',
    ):
        status, data = await api.post_raw(body.encode())
        assert status == 400, data
        assert "lone surrogates" in next(iter(data["fields"].values()))
    # A proper surrogate pair is a normal character.
    status, data = await api.post_raw(b'{"id": "snake", "name": "\\ud83d\\udc0d"}')
    assert (status, data["name"]) == (201, "\U0001f40d")


@pytest.mark.asyncio
async def test_put_validates_before_looking_up(api: Api) -> None:
    status, body, _ = await api.call("PUT", "/users/nobody", json={"name": ""})
    assert (status, list(body["fields"])) == (400, ["name"])
    status, body, _ = await api.call("PUT", "/users/nobody", data=b"{", headers=JSON)
    assert status == 400


@pytest.mark.asyncio
async def test_put_body_id_must_match_the_path(api: Api) -> None:
    await api.call("POST", "/users", json={"id": "7", "name": "Ada"})
    status, body, _ = await api.call("PUT", "/users/7", json={"id": "8", "name": "Eve"})
    assert status == 400
    assert body["fields"] == {"id": "does not match the id in the URL ('7')"}
    assert (await api.call("PUT", "/users/7", json={"id": 7, "name": "Ada"}))[0] == 200
    assert (await api.call("GET", "/users/7"))[1]["name"] == "Ada"
    assert (await api.call("GET", "/users/8"))[0] == 404


# --- content type and size ------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/jsonx",
        "application/json; charset=latin-1",
        "application/json; charset=utf-16",
    ],
)
async def test_wrong_content_type_is_415(api: Api, content_type: Optional[str]) -> None:
    body = b'{"id": 1, "name": "Ada"}'
    headers = {} if content_type is None else {"Content-Type": content_type}
    for method, path in (("POST", "/users"), ("PUT", "/users/1")):
        status, data, _ = await api.call(method, path, data=body, headers=headers)
        assert status == 415, data
    assert (await api.call("GET", "/users"))[1] == []


@pytest.mark.asyncio
@pytest.mark.parametrize("content_type", [b"\x80\xc2\x80", b"\xff", b"a\xc2\x85b; charset=\xff"])
async def test_a_content_type_that_is_not_ascii_is_415(api: Api, content_type: bytes) -> None:
    # aiohttp 3.10 (the newest for Python 3.8) raises UnicodeEncodeError on the first one.
    for method, path in ((b"POST", b"/users"), (b"PUT", b"/users/1")):
        request = b"%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: 2\r\n"
        request += b"Connection: close\r\n\r\n{}"
        answer = await raw_exchange(api.port, request % (method, path, content_type))
        status, _, body = parse_answer(answer)
        assert status == 415, body
        assert json.loads(body)["error"].startswith("expected Content-Type: application/json")
    assert (await api.call("GET", "/users"))[1] == []


@pytest.mark.asyncio
@pytest.mark.parametrize("content_type", ["application/json; charset=UTF-8", "APPLICATION/JSON"])
async def test_json_content_type_variants_are_accepted(api: Api, content_type: str) -> None:
    status, _, _ = await api.call(
        "POST",
        "/users",
        data='{"id": 1, "name": "Zoë"}'.encode(),
        headers={"Content-Type": content_type},
    )
    assert status == 201


@pytest.mark.asyncio
async def test_a_form_post_is_415_not_500(api: Api) -> None:
    status, body, _ = await api.call("POST", "/users", data={"id": "1", "name": "Ada"})
    assert status == 415
    assert "application/x-www-form-urlencoded" in body["error"]


@pytest.mark.asyncio
async def test_body_over_the_limit_with_content_length_is_413(api: Api) -> None:
    body = json.dumps({"id": 1, "name": "x" * DEFAULT_MAX_BODY_BYTES}).encode()
    status, data = await api.post_raw(body)
    assert status == 413
    assert data == {
        "error": f"the body is {len(body)} bytes; the limit is {DEFAULT_MAX_BODY_BYTES} bytes"
    }
    huge = b'{"id": 1, "name": "' + b"x" * 1_000_000 + b'"}'
    status, data = await api.post_raw(huge)
    assert status == 413
    status, data, _ = await api.call("PUT", "/users/1", data=huge, headers=JSON)
    assert status == 413
    # The server is fine afterwards, and nothing was stored.
    assert (await api.call("GET", "/users"))[:2] == (200, [])


@pytest.mark.asyncio
async def test_chunked_body_over_the_limit_is_aiohttps_413_as_json(api: Api) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"id": 1, "name": "'
        for _ in range(100):
            yield b"x" * 10_000
        yield b'"}'

    status, body, _ = await api.call("POST", "/users", data=chunks(), headers=JSON)
    assert status == 413
    assert body["error"].startswith("Maximum request body size 16384 exceeded")
    assert (await api.call("GET", "/users"))[1] == []


@pytest.mark.asyncio
async def test_chunked_body_under_the_limit_is_fine(api: Api) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"id": 1,'
        yield b' "name": "Ada"}'

    status, body, _ = await api.call("POST", "/users", data=chunks(), headers=JSON)
    assert (status, body["name"]) == (201, "Ada")


@pytest.mark.asyncio
async def test_custom_body_limit(serve: Callable[..., Awaitable[Api]]) -> None:
    api = await serve(max_body_bytes=40)
    fits = b'{"id": 1, "name": "Ada"}'
    assert (await api.post_raw(fits))[0] == 201
    too_big = b'{"id": 2, "name": "' + b"x" * 40 + b'"}'
    assert (await api.post_raw(too_big))[0] == 413


def test_make_app_checks_its_arguments(new_store: Callable[[], Store]) -> None:
    store = new_store()
    with pytest.raises(ValueError, match="max_body_bytes must be a positive integer, got 0"):
        make_app(store, max_body_bytes=0)
    with pytest.raises(ValueError, match="positive"):
        make_app(store, max_body_bytes=-1)
    with pytest.raises(TypeError, match="max_body_bytes must be an int, got bool"):
        make_app(store, max_body_bytes=True)
    with pytest.raises(TypeError, match="got str"):
        make_app(store, max_body_bytes="1024")  # type: ignore[arg-type]
    app = make_app(store)
    assert app[STORE_KEY] is store


# --- routing: ids, unknown routes, methods --------------------------------------------

AWKWARD_IDS = [
    "a/b",
    "/leading",
    "trailing/",
    "a//b",
    "it's",
    'say "hi"',
    "a?b=c",
    "a#b",
    "a%2Fb",
    "%",
    "%zz",
    "100%",
    "a b",
    "a+b",
    "ü/ß",
    "日本/語",
    "\U0001f40d",
    "a\\b",
    "<script>",
    "{0}",
    "{id}",
    "}{",
    "'); DROP TABLE users; --",
    '" OR 1=1 --',
    "..a",
    "a..",
]


@pytest.mark.asyncio
@pytest.mark.parametrize("user_id", AWKWARD_IDS)
async def test_awkward_ids_work_when_percent_encoded(api: Api, user_id: str) -> None:
    status, body, headers = await api.call("POST", "/users", json={"id": user_id, "name": "N"})
    assert (status, body["id"]) == (201, user_id)
    path = user_path(user_id)
    assert headers["Location"] == path
    assert (await api.call("GET", path))[:2] == (200, {"id": user_id, "name": "N", "age": None})
    status, body, _ = await api.call("PUT", path, json={"id": user_id, "name": "M", "age": 3})
    assert (status, body) == (200, {"id": user_id, "name": "M", "age": 3})
    assert (await api.call("GET", "/users"))[1] == [body]
    assert (await api.call("DELETE", path))[0] == 204
    assert (await api.call("GET", path))[0] == 404


@pytest.mark.asyncio
async def test_an_unencoded_slash_is_a_json_404(api: Api) -> None:
    await api.call("POST", "/users", json={"id": "a/b", "name": "N"})
    status, body, _ = await api.call("GET", "/users/a/b")
    assert (status, body) == (404, {"error": "not found: /users/a/b"})
    assert (await api.call("DELETE", "/users/a/b"))[0] == 404
    assert (await api.call("GET", "/users/a%2Fb"))[0] == 200


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "path", ["/", "/nope", "/users/", "/users/1/", "/users/1/extra", "/USERS"]
)
async def test_unknown_routes_are_json_404(api: Api, path: str) -> None:
    for method in ("GET", "POST", "DELETE"):
        status, body, _ = await api.call(method, path, json={"id": 1, "name": "x"})
        assert status == 404, (method, path, body)
        assert body["error"].startswith("not found: ")


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PATCH", "/users/1", ["DELETE", "GET", "HEAD", "PUT"]),
        ("POST", "/users/1", ["DELETE", "GET", "HEAD", "PUT"]),
        ("DELETE", "/users", ["GET", "HEAD", "POST"]),
        ("PUT", "/users", ["GET", "HEAD", "POST"]),
        ("PATCH", "/users", ["GET", "HEAD", "POST"]),
    ],
)
async def test_wrong_method_is_json_405_with_allow_header(
    api: Api, method: str, path: str, allowed: List[str]
) -> None:
    status, body, headers = await api.call(method, path, json={"id": 1, "name": "x"})
    assert status == 405
    assert body == {"error": f"method {method} is not allowed", "allowed": allowed}
    assert sorted(headers["Allow"].split(",")) == allowed


# --- stored exactly as sent -------------------------------------------------------------

STRANGE_NAMES = [
    "Zoë",
    "Zoe\u0308",  # the same, decomposed: must not be normalised
    "李小龙",
    "שָׁלוֹם",
    "🐍🐍🐍 \U0001f9d1\u200d\U0001f4bb",
    "zero\u200bwidth",
    "  leading and trailing spaces  ",
    "'); DROP TABLE users; --",
    "Robert'); DROP TABLE students;--",
    '" OR ""="',
    "%s %d {0} $1 \\N \\\\",
    "<script>alert(1)</script>",
    "NULL",
    "null",
    "\\u0000",  # the six characters, not a NUL
    "x" * MAX_NAME_LENGTH,
    "ß" * MAX_NAME_LENGTH,
]


@pytest.mark.asyncio
async def test_strings_are_stored_exactly(api: Api) -> None:
    for n, name in enumerate(STRANGE_NAMES):
        user_id = f"{n:02d}-{name[:20]}"
        status, body, _ = await api.call("POST", "/users", json={"id": user_id, "name": name})
        assert (status, body) == (201, {"id": user_id, "name": name, "age": None})
        assert (await api.call("GET", user_path(user_id)))[1] == body, user_id
    status, users, _ = await api.call("GET", "/users")
    assert status == 200
    assert [user["name"] for user in users] == STRANGE_NAMES


@pytest.mark.asyncio
async def test_sql_in_ids_cannot_touch_the_table(api: Api) -> None:
    evil = ["x'); DROP TABLE users; --", "1' OR '1'='1", "'; DELETE FROM users; --"]
    await api.call("POST", "/users", json={"id": "keep", "name": "Keep me"})
    for user_id in evil:
        assert (await api.call("POST", "/users", json={"id": user_id, "name": user_id}))[0] == 201
        assert (await api.call("GET", user_path(user_id)))[1]["name"] == user_id
    assert (await api.call("GET", user_path("1' OR '1'='1")))[0] == 200
    assert (await api.call("GET", user_path("nobody' OR '1'='1")))[0] == 404
    assert (await api.call("DELETE", user_path("x' OR '1'='1")))[0] == 404
    status, users, _ = await api.call("GET", "/users")
    assert status == 200
    assert sorted(user["id"] for user in users) == sorted([*evil, "keep"])


# --- nothing a client sends gives a 5xx -----------------------------------------------


def random_json_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 1, 150, 151, 2**31, 2**63, -(2**63) - 1, 10**40])
    if kind == 3:
        return rng.choice([0.0, -0.0, 1.5, 1e308, -1e-308, 36.0])
    if kind in (4, 5):
        alphabet = "aZ09 '\"\\/%?#._-é日🐍\u200b\x00\n\x7f"
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12)))
    if kind == 6:
        return [random_json_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    keys = ["id", "name", "age", "x", ""]
    return {rng.choice(keys): random_json_value(rng, depth + 1) for _ in range(rng.randrange(4))}


@pytest.mark.asyncio
async def test_random_json_never_causes_a_5xx(api: Api) -> None:
    rng = random.Random(20261125)
    created = 0
    for _ in range(150):
        value = random_json_value(rng)
        if isinstance(value, dict) and rng.random() < 0.5:
            value.setdefault("id", rng.choice(["a", 1, "b/c", ""]))
            value.setdefault("name", rng.choice(["n", "", 5]))
        body = json.dumps(value).encode()
        method, path = rng.choice([("POST", "/users"), ("PUT", "/users/a"), ("PUT", "/users/1")])
        status, data, _ = await api.call(method, path, data=body, headers=JSON)
        assert status in (200, 201, 400, 404, 409), (value, status, data)
        created += status == 201
    status, users, _ = await api.call("GET", "/users")
    assert status == 200 and len(users) == created


@pytest.mark.asyncio
async def test_random_bytes_never_cause_a_5xx(api: Api) -> None:
    rng = random.Random(7)
    for _ in range(100):
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
        status, _ = await api.post_raw(body)
        assert status == 400


async def raw_exchange(port: int, request: bytes, *, timeout: float = 10.0) -> bytes:
    """Send raw bytes, then read the answer until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
        await writer.wait_closed()


def parse_answer(answer: bytes) -> Tuple[int, Dict[str, str], bytes]:
    """``(status, headers with lower-case names, body)`` of one raw HTTP/1.x answer."""
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split(" ", 2)[1]), headers, body


def assert_clean_log(records: List[logging.LogRecord]) -> None:
    """No record carries a traceback, and every message is one line of printable text."""
    for record in records:
        message = record.getMessage()
        where = (record.name, record.levelname, message[:300])
        assert not record.exc_info or record.exc_info[0] is None, where
        assert not record.exc_text and not record.stack_info, where
        assert all(char.isprintable() for char in message), where


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"POST /users HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST /users HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        b"GET /users HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET /users HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"POST /users HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
)
async def test_malformed_http_is_a_4xx_and_the_server_survives(
    api: Api, request_bytes: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    # aiohttp's protocol layer answers these before any handler or middleware runs.
    caplog.set_level(logging.DEBUG)
    status, _, body = parse_answer(await raw_exchange(api.port, request_bytes))
    assert 400 <= status < 500, body[:200]
    assert (await api.call("GET", "/users"))[0] == 200
    assert [r for r in caplog.records if r.name == "recipes.api_server"] == []
    # Logged as one line of the client's fault, not as a server error with a traceback
    # (aiohttp 3.10+ logs a bad method in a connection's first request at DEBUG).
    [record] = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert record.levelno <= logging.INFO, record.getMessage()
    assert record.getMessage().startswith("Error handling request"), record.getMessage()
    assert_clean_log(caplog.records)


@pytest.mark.asyncio
@pytest.mark.parametrize("path", ["/users", "/users/1", "/no/such/page"])
async def test_an_expect_header_is_answered_in_json_never_with_a_500(
    api: Api, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    # aiohttp's default handler: a plain-text 417, and a 500 for bytes that are not UTF-8.
    caplog.set_level(logging.DEBUG)
    for expect in (b"\xff\xfe", b"something-else"):
        request = b"GET %s HTTP/1.1\r\nHost: x\r\nExpect: %s\r\nConnection: close\r\n\r\n"
        answer = await raw_exchange(api.port, request % (path.encode(), expect))
        status, headers, body = parse_answer(answer)
        assert status == 417, body
        assert headers["content-type"].startswith("application/json")
        assert json.loads(body)["error"].startswith("cannot meet the expectation"), body
    assert_clean_log(caplog.records)
    # 100-continue still gets its interim answer before the real one.
    user = b'{"id": "e", "name": "Expecting"}'
    request = (
        b"POST /users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Expect: 100-continue\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
    )
    answer = await raw_exchange(api.port, request % (len(user), user))
    interim = b"HTTP/1.1 100 Continue\r\n\r\n"
    assert answer.startswith(interim), answer[:100]
    assert parse_answer(answer[len(interim) :])[0] == 201


@pytest.mark.skipif(
    AIOHTTP_VERSION < (3, 14),
    reason="aiohttp before 3.14 never answers these and logs 'Task exception was never "
    "retrieved': it fails to build the request's URL, before the application runs",
)
@pytest.mark.asyncio
@pytest.mark.parametrize(
    "line",
    [
        b"GET http://x:abc/users HTTP/1.1",
        b"GET http://x:99999999/users HTTP/1.1",
        b"CONNECT http://x/users HTTP/1.1",
    ],
)
async def test_a_bad_absolute_url_is_a_400_on_aiohttp_3_14(
    api: Api, line: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    request = line + b"\r\nHost: x\r\nConnection: close\r\n\r\n"
    status, _, _ = parse_answer(await raw_exchange(api.port, request))
    assert status == 400
    assert_clean_log(caplog.records)


@pytest.mark.asyncio
async def test_client_that_disconnects_mid_body_causes_no_error(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", api.port)
    writer.write(
        b"POST /users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 500\r\n\r\n{"id": "half", '
    )
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.close()
    await writer.wait_closed()
    await asyncio.sleep(0.2)
    assert (await api.call("GET", "/users"))[:2] == (200, [])
    errors = [r for r in caplog.records if r.name == "recipes.api_server" and r.levelno >= 30]
    assert errors == []


# --- bodies that do not decode, ids no user can have ---------------------------------


USER_JSON = b'{"id": "z", "name": "Zipped"}'
UNDECODABLE = {
    "gzip that is not gzip": ("gzip", USER_JSON),
    "deflate that is not deflate": ("deflate", b"nope"),
    "gzip with a corrupted stream": ("gzip", gzip.compress(USER_JSON)[:10] + b"\xff" * 20),
    "deflate of a gzip stream": ("deflate", b"\x1f\x8b" + b"\x00" * 20),
}


@pytest.mark.asyncio
@pytest.mark.parametrize(("encoding", "body"), UNDECODABLE.values(), ids=list(UNDECODABLE))
async def test_a_body_that_does_not_decode_is_a_json_400(
    api: Api, encoding: str, body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for method, path in (("POST", "/users"), ("PUT", "/users/z")):
        request = (
            f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Encoding: {encoding}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        # Read until the server closes: by then it has logged all it will log about it.
        status, headers, data = parse_answer(await raw_exchange(api.port, request))
        assert status == 400, data[:300]
        assert headers["content-type"].startswith("application/json")
        assert json.loads(data)["error"].startswith("the body could not be read: ")
        # The framing of what follows on this connection cannot be trusted: it is closed.
        assert headers.get("connection", "").lower() == "close"
    assert_clean_log(caplog.records)
    assert (await api.call("GET", "/users"))[:2] == (200, [])
    # Bodies that do decode are fine, on a keep-alive connection too.
    deflated = {**JSON, "Content-Encoding": "deflate"}
    status, data, _ = await api.call(
        "POST", "/users", data=zlib.compress(USER_JSON), headers=deflated
    )
    assert (status, data["name"]) == (201, "Zipped")
    gzipped = {**JSON, "Content-Encoding": "gzip"}
    body = gzip.compress(b'{"name": "Gzipped"}')
    status, data, _ = await api.call("PUT", "/users/z", data=body, headers=gzipped)
    assert (status, data) == (200, {"id": "z", "name": "Gzipped", "age": None})


@pytest.mark.asyncio
async def test_a_broken_body_that_is_not_read_leaves_no_traceback(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    # A 415 answers before the body is read; aiohttp then drains the broken body itself.
    caplog.set_level(logging.DEBUG)
    request = (
        b"POST /users HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
        b"Content-Encoding: gzip\r\nContent-Length: 4\r\n\r\nnope"
    )
    status, _, data = parse_answer(await raw_exchange(api.port, request))
    assert status == 415, data
    assert_clean_log(caplog.records)


ENCODED_BAD_IDS = {
    "%00": "must not contain control characters",
    "a%0Ab": "must not contain control characters",
    "%1B%5B2J": "must not contain control characters",
    "a%C2%85": "must not contain control characters",
    "%20%20": "must not be empty",
    "%2E": "must not be '.' or '..'",
    "%2E%2E": "must not be '.' or '..'",
    "i" * (MAX_ID_LENGTH + 1): f"must be at most {MAX_ID_LENGTH} characters long",
}


@pytest.mark.asyncio
@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE", "PUT"])
async def test_an_id_no_user_can_have_is_a_400_in_the_url(api: Api, method: str) -> None:
    # PostgreSQL cannot even compare with a NUL: "GET /users/%00" used to be its 500.
    for encoded, problem in ENCODED_BAD_IDS.items():
        kwargs: Dict[str, Any] = {"json": {"name": "N"}} if method == "PUT" else {}
        status, body, _ = await api.call(method, "/users/" + encoded, encoded=True, **kwargs)
        assert status == 400, (method, encoded, body)
        if method != "HEAD":
            assert body["error"] == "invalid user id in the URL", body
            assert problem in body["fields"]["id"], (encoded, body)
    assert (await api.call("GET", "/users"))[:2] == (200, [])


# --- server faults: logged 500 and 503 -------------------------------------------------


class FaultyStore:
    """Wraps a store; ``list_users`` (or ``get_user`` too) raises the exception it is given."""

    def __init__(self, inner: Store, error: BaseException, *, lookups_fail: bool = False) -> None:
        self.inner = inner
        self.error = error
        self.lookups_fail = lookups_fail

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def list_users(self) -> List[User]:
        raise self.error

    async def get_user(self, user_id: str) -> Optional[User]:
        if self.lookups_fail:
            raise self.error
        return await self.inner.get_user(user_id)

    async def create_user(self, user: User) -> bool:
        return await self.inner.create_user(user)

    async def replace_user(self, user: User) -> bool:
        return await self.inner.replace_user(user)

    async def delete_user(self, user_id: str) -> bool:
        return await self.inner.delete_user(user_id)


@pytest.mark.asyncio
async def test_a_server_bug_is_a_logged_json_500(
    serve: Callable[..., Awaitable[Api]],
    new_store: Callable[[], Store],
    caplog: pytest.LogCaptureFixture,
) -> None:
    api = await serve(FaultyStore(new_store(), RuntimeError("secret detail")))
    with caplog.at_level(logging.ERROR, logger="recipes.api_server"):
        status, body, _ = await api.call("GET", "/users", allow_5xx=True)
    assert (status, body) == (500, {"error": "internal server error"})
    [record] = [r for r in caplog.records if r.name == "recipes.api_server"]
    assert record.getMessage() == "unexpected error handling GET /users"
    assert record.exc_info is not None and "secret detail" in str(record.exc_info[1])
    # Other routes still work.
    assert (await api.call("POST", "/users", json={"id": 1, "name": "A"}))[0] == 201


@pytest.mark.asyncio
async def test_a_timeout_is_a_json_503(
    serve: Callable[..., Awaitable[Api]], new_store: Callable[[], Store]
) -> None:
    api = await serve(FaultyStore(new_store(), asyncio.TimeoutError()))
    status, body, headers = await api.call("GET", "/users", allow_5xx=True)
    assert (status, body) == (503, {"error": "the server is busy; try again later"})
    assert headers["Retry-After"] == "1"


@pytest.mark.asyncio
async def test_a_500_log_line_escapes_the_id_from_the_url(
    serve: Callable[..., Awaitable[Api]],
    new_store: Callable[[], Store],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A valid id, but a line separator and a right-to-left override are not for a log.
    api = await serve(FaultyStore(new_store(), RuntimeError("boom"), lookups_fail=True))
    with caplog.at_level(logging.ERROR, logger="recipes.api_server"):
        status, _, _ = await api.call("GET", user_path("a\u2028b\u202ec\\d"), allow_5xx=True)
    assert status == 500
    [record] = [r for r in caplog.records if r.name == "recipes.api_server"]
    assert record.getMessage() == "unexpected error handling GET /users/a\\u2028b\\u202ec\\\\d"


@pytest.mark.asyncio
async def test_error_middleware_escapes_what_it_logs(caplog: pytest.LogCaptureFixture) -> None:
    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("a bug")

    async def busy(request: web.Request) -> web.Response:
        raise asyncio.TimeoutError

    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/broken/{tail:[^/]+}", broken)
    app.router.add_get("/busy/{tail:[^/]+}", busy)
    forged = "x%0A2026-01-01%20ERROR%20admin%20logged%20in%1B%5B2J%C2%9B%0D"
    async with served(app) as url, aiohttp.ClientSession() as session:
        with caplog.at_level(logging.WARNING, logger="recipes.api_server"):
            for route, status in (("broken", 500), ("busy", 503)):
                target = yarl.URL(f"{url}/{route}/{forged}", encoded=True)
                async with session.get(target, timeout=aiohttp.ClientTimeout(total=10)) as resp:
                    assert resp.status == status
    messages = [r.getMessage() for r in caplog.records if r.name == "recipes.api_server"]
    escaped = "x\\n2026-01-01 ERROR admin logged in\\x1b[2J\\x9b\\r"
    assert messages == [
        f"unexpected error handling GET /broken/{escaped}",
        f"timed out handling GET /busy/{escaped}",
    ]


@pytest.mark.asyncio
async def test_aiohttps_access_log_escapes_what_clients_send(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    request = (
        b"GET /users HTTP/1.1\r\nHost: x\r\nReferer: \xe2\x80\xae\r\n"
        b"User-Agent: evil\xc2\x85\xe2\x80\xa8\xff\\\r\nConnection: close\r\n\r\n"
    )
    status, _, _ = parse_answer(await raw_exchange(api.port, request))
    assert status == 200
    [access] = [r for r in caplog.records if r.name == "aiohttp.access"]
    # NEL, LINE SEPARATOR, RIGHT-TO-LEFT OVERRIDE, and a byte that is not UTF-8 at all
    # (a lone surrogate after decoding, which a UTF-8 log file cannot even encode).
    assert '"\\u202e" "evil\\x85\\u2028\\udcff\\\\"' in access.getMessage()
    assert_clean_log(caplog.records)


@pytest.mark.asyncio
async def test_a_locked_table_times_out_as_503(
    serve: Callable[..., Awaitable[Api]], store_kind: str, postgres_dsn: str
) -> None:
    if store_kind == "memory":
        pytest.skip("needs a database: the in-memory store has no table to lock")
    import asyncpg

    table = unique_table()
    api = await serve(PostgresStore(postgres_dsn, table=table, timeout=0.5))
    conn = await asyncpg.connect(postgres_dsn, timeout=10)
    try:
        async with conn.transaction():
            await conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            status, body, _ = await api.call("GET", "/users", allow_5xx=True)
            assert (status, body["error"]) == (503, "the server is busy; try again later")
        assert (await api.call("GET", "/users"))[:2] == (200, [])
    finally:
        await conn.execute(f"DROP TABLE IF EXISTS {table}")
        await conn.close()


# --- concurrency ------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_200_concurrent_posts_are_all_stored(api: Api) -> None:
    async def create(n: int) -> int:
        user = {"id": f"user-{n:03d}", "name": f"Name {n}", "age": n % 100}
        return (await api.call("POST", "/users", json=user))[0]

    statuses = await asyncio.gather(*(create(n) for n in range(200)))
    assert statuses == [201] * 200
    status, users, _ = await api.call("GET", "/users")
    assert status == 200
    assert users == [
        {"id": f"user-{n:03d}", "name": f"Name {n}", "age": n % 100} for n in range(200)
    ]


@pytest.mark.asyncio
async def test_concurrent_posts_of_one_id_create_it_once(api: Api) -> None:
    async def create(n: int) -> Tuple[int, int]:
        user = {"id": "same", "name": f"writer {n}"}
        return n, (await api.call("POST", "/users", json=user))[0]

    results = await asyncio.gather(*(create(n) for n in range(50)))
    winners = [n for n, status in results if status == 201]
    assert len(winners) == 1
    assert sorted(status for _, status in results) == [201] + [409] * 49
    assert (await api.call("GET", "/users/same"))[1]["name"] == f"writer {winners[0]}"


@pytest.mark.asyncio
async def test_200_concurrent_puts_end_in_one_consistent_state(api: Api) -> None:
    await api.call("POST", "/users", json={"id": "hot", "name": "start"})

    async def replace(n: int) -> int:
        user = {"name": f"writer {n}", "age": n % (MAX_AGE + 1)}
        return (await api.call("PUT", "/users/hot", json=user))[0]

    assert await asyncio.gather(*(replace(n) for n in range(200))) == [200] * 200
    status, users, _ = await api.call("GET", "/users")
    assert status == 200
    assert len(users) == 1
    [user] = users
    n = int(user["name"].split()[1])
    assert user == {"id": "hot", "name": f"writer {n}", "age": n % (MAX_AGE + 1)}


@pytest.mark.asyncio
async def test_concurrent_deletes_delete_once(api: Api) -> None:
    await api.call("POST", "/users", json={"id": "doomed", "name": "D"})
    statuses = await asyncio.gather(*(api.call("DELETE", "/users/doomed") for _ in range(30)))
    assert sorted(status for status, _, _ in statuses) == [204] + [404] * 29


@pytest.mark.asyncio
async def test_mixed_concurrent_traffic_keeps_the_store_consistent(api: Api) -> None:
    async def life(n: int) -> None:
        path = f"/users/u{n}"
        assert (await api.call("POST", "/users", json={"id": f"u{n}", "name": "a"}))[0] == 201
        assert (await api.call("PUT", path, json={"name": "b", "age": 1}))[0] == 200
        assert (await api.call("GET", path))[1]["name"] == "b"
        if n % 2:
            assert (await api.call("DELETE", path))[0] == 204

    await asyncio.gather(*(life(n) for n in range(60)))
    status, users, _ = await api.call("GET", "/users")
    assert status == 200
    assert sorted(user["id"] for user in users) == sorted(f"u{n}" for n in range(0, 60, 2))


# --- state and lifetime -------------------------------------------------------------------


@pytest.mark.asyncio
async def test_data_survives_a_restart_only_in_postgres(
    serve: Callable[..., Awaitable[Api]], store_kind: str
) -> None:
    first = await serve()
    await first.call("POST", "/users", json={"id": "p", "name": "Persistent", "age": 9})
    await first.stop()  # the application is cleaned up, its pool closed
    second = await serve()  # a new application, store object and pool on the same table
    status, users, _ = await second.call("GET", "/users")
    assert status == 200
    if store_kind == "postgres":
        assert users == [{"id": "p", "name": "Persistent", "age": 9}]
    else:
        assert users == []


@pytest.mark.asyncio
async def test_cleanup_closes_the_store(new_store: Callable[[], Store], store_kind: str) -> None:
    store = new_store()
    runner = web.AppRunner(make_app(store))
    await runner.setup()
    await store.create_user(User("1", "Ada"))
    await runner.cleanup()
    if store_kind == "postgres":
        assert isinstance(store, PostgresStore)
        assert repr(store) == f"<PostgresStore table={store.table!r} closed>"
        with pytest.raises(RuntimeError, match="PostgresStore is not open"):
            await store.list_users()
        async with store:  # opening again works, and the data is still there
            assert await store.list_users() == [User("1", "Ada")]
            await store.drop_table()
    else:
        assert await store.list_users() == [User("1", "Ada")]


class CancelsCallerAsItCloses:
    """A real pool whose ``close()`` cancels the task closing it just as closing finishes."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.caller: Optional[asyncio.Task[Any]] = None

    async def close(self) -> None:
        await self.pool.close()
        assert self.caller is not None
        self.caller.cancel()

    def terminate(self) -> None:
        self.pool.terminate()


@pytest.mark.asyncio
async def test_a_cancellation_as_the_pool_finishes_closing_is_not_lost(
    postgres_dsn: str,
) -> None:
    # asyncio.wait_for on 3.8-3.11 returns the result instead (CPython gh-86296), and
    # an application cancelled during its cleanup would go on as if nothing happened.
    table = unique_table()
    store = PostgresStore(postgres_dsn, table=table)
    await store.open()
    pool = CancelsCallerAsItCloses(store._pool)
    store._pool = pool  # type: ignore[assignment]
    pool.caller = asyncio.ensure_future(store.close())
    await asyncio.wait({pool.caller})
    assert pool.caller.cancelled(), pool.caller
    assert pool.pool.is_closing()
    async with PostgresStore(postgres_dsn, table=table) as cleanup:
        await cleanup.drop_table()


@pytest.mark.asyncio
@pytest.mark.parametrize("cancel", [False, True], ids=["timeout", "cancelled"])
async def test_close_terminates_a_pool_whose_connection_never_comes_back(
    postgres_dsn: str, cancel: bool
) -> None:
    import asyncpg

    table = unique_table()
    store = PostgresStore(postgres_dsn, table=table, timeout=0.5)
    await store.open()
    pool = store._pool
    assert pool is not None
    conn = await pool.acquire()  # never released: Pool.close() alone would wait for ever
    closing = asyncio.ensure_future(store.close())
    if cancel:
        await asyncio.sleep(0.1)
        closing.cancel()
    await asyncio.wait({closing}, timeout=30)
    assert closing.done()
    assert closing.cancelled() == cancel
    assert pool.is_closing()
    with pytest.raises(asyncpg.InterfaceError):  # terminated: the connection was taken away
        await conn.fetchval("SELECT 1")
    async with PostgresStore(postgres_dsn, table=table) as cleanup:
        await cleanup.drop_table()


def test_two_applications_never_share_users(run_virtual: Callable[..., Any]) -> None:
    async def main() -> List[Any]:
        results = []
        runners = []
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            urls = []
            for _ in range(2):
                runner = web.AppRunner(make_app())
                await runner.setup()
                runners.append(runner)
                site = web.TCPSite(runner, "127.0.0.1", 0)
                await site.start()
                urls.append(f"http://127.0.0.1:{runner.addresses[0][1]}/users")
            async with session.post(urls[0], json={"id": 1, "name": "A"}) as resp:
                results.append(resp.status)
            for url in urls:
                async with session.get(url) as resp:
                    results.append(await resp.json())
        for runner in runners:
            await runner.cleanup()
        return results

    assert run_virtual(main) == [201, [{"id": "1", "name": "A", "age": None}], []]


def test_postgres_store_checks_its_arguments() -> None:
    dsn = "postgresql://nobody@127.0.0.1:1/x"  # never connected to
    for table in ["", "users; DROP TABLE users", 'we"ird', "1users", "a" * 64, "public.users"]:
        with pytest.raises(ValueError, match="table must be a plain identifier"):
            PostgresStore(dsn, table=table)
    with pytest.raises(ValueError, match="min_size"):
        PostgresStore(dsn, min_size=5, max_size=2)
    with pytest.raises(ValueError, match="max_size"):
        PostgresStore(dsn, min_size=0, max_size=0)
    with pytest.raises(ValueError, match="timeout must be positive"):
        PostgresStore(dsn, timeout=0)
    assert (
        repr(PostgresStore("postgresql://u:secret@h/db")) == "<PostgresStore table='users' closed>"
    )


def test_memory_store_refuses_duplicate_initial_users() -> None:
    with pytest.raises(ValueError, match="duplicate user id '1'"):
        MemoryStore([User("1", "A"), User("1", "B")])


# --- the command line -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http(method: str, url: str, body: Optional[Dict[str, Any]] = None) -> Tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=JSON)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


class Cli:
    """``python -m recipes.api_server`` in a subprocess, output to files."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stdout_path = tmp_path / "stdout.txt"
        self.stderr_path = tmp_path / "stderr.txt"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "recipes.api_server", "--port", str(self.port), *args],
                cwd=str(ROOT),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def wait_until_serving(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited early:\n{self.output()}")
            try:
                http("GET", self.url + "/users")
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"the server never answered:\n{self.output()}")
                time.sleep(0.05)

    def stop(self, sig: int, timeout: float = 30.0) -> int:
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"no exit within {timeout} s after signal {sig}")

    def output(self) -> str:
        return self.stdout_path.read_text() + self.stderr_path.read_text()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def cli_args(store_kind: str, request: pytest.FixtureRequest) -> List[str]:
    if store_kind == "memory":
        return []
    return ["--dsn", request.getfixturevalue("postgres_dsn"), "--table", unique_table()]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_cli_serves_and_exits_cleanly_on_a_signal(
    tmp_path: Path, store_kind: str, request: pytest.FixtureRequest, sig: int
) -> None:
    args = cli_args(store_kind, request)
    cli = Cli(tmp_path, *args)
    try:
        cli.wait_until_serving()
        assert http("POST", cli.url + "/users", {"id": 1, "name": "Ada"}) == (
            201,
            {"id": "1", "name": "Ada", "age": None},
        )
        assert http("GET", cli.url + "/users/1")[0] == 200
        assert http("POST", cli.url + "/users", {"id": 1, "name": "Ada"})[0] == 409
        assert http("GET", cli.url + "/nope") == (404, {"error": "not found: /nope"})
        assert cli.stop(sig) == 0, cli.output()
    finally:
        cli.kill()
    output = cli.output()
    assert "Running on http://127.0.0.1:" in output
    assert "closed the store" in output, output
    assert "Traceback" not in output and "Unclosed" not in output, output
    if store_kind == "postgres":

        async def check_and_drop() -> List[Any]:
            async with PostgresStore(args[1], table=args[3]) as store:
                users = await store.list_users()
                await store.drop_table()
            return users

        # A loop of our own, not asyncio.run(): that one also resets the current
        # event loop, which upsets pytest-asyncio's loop handling on Python 3.9.
        loop = asyncio.new_event_loop()
        try:
            assert loop.run_until_complete(check_and_drop()) == [User("1", "Ada")]
        finally:
            loop.close()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recipes.api_server", *args],
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_exits_with_1_when_the_port_is_taken() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = run_cli("--port", str(taken.getsockname()[1]))
    assert result.returncode == 1, result.stderr
    assert "the server stopped: OSError" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_exits_with_1_when_the_database_is_unreachable() -> None:
    unreachable = f"postgresql://nobody@127.0.0.1:{free_port()}/none"
    result = run_cli("--port", "0", "--dsn", unreachable)
    assert result.returncode == 1, result.stderr
    assert "the server stopped:" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--max-body-bytes", "0"],
        ["--port", "eighty"],
        ["--dsn", "postgresql://nobody@127.0.0.1:1/x", "--table", "bad name"],
        ["--unknown-option"],
    ],
)
def test_cli_rejects_bad_options(args: List[str]) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    assert "usage: python -m recipes.api_server" in result.stderr


# --- property-based: the whole request surface -----------------------------------------
#
# Hypothesis writes raw requests: random methods, targets (percent-encoded bytes and raw
# bytes included), Content-Type, Content-Encoding, Transfer-Encoding and Content-Length
# headers that may or may not match the body, chunked framing that may be broken, and
# bodies from valid users to random bytes.  They go over raw sockets, so nothing fixes them
# up on the way.  One server per store serves every example; the state is checked through
# the API before and after each one.

KNOWN_IDS = ["1", "ada", "a/b", "ü", "{0}", "x y"]
ID_TEXT = "aZ09 '\"\\/%?#.-_é日🐍{}\u200b\u2028\u202e\x00\n\x1b\x7f\x85"
# Percent-encoded pieces of a path segment that have tripped servers before.
NASTY_SEGMENTS = [
    b"%", b"%zz", b"%2F", b".", b"..", b"%2E", b"%2E%2E", b"%00", b"%0A", b"%0D%0A",
    b"%1B%5B2J", b"%C2%85", b"%E2%80%A8", b"%E2%80%AE", b"%ED%A0%80", b"%C0%AF", b"%FF",
    b"%20", b"%7B%7D", b"{}", b"i" * (MAX_ID_LENGTH + 1),
]  # fmt: skip
NASTY_HEADER_VALUES = [
    b"\xff\xfe", b"\xc2\x85", b"\xe2\x80\xa8", b"\xe2\x80\xae", b"\x1b[2J", b"\x00",
    b"a\tb", b"", b" ", b"\\", b"a\rb", b"a\nb",
]  # fmt: skip
BIG_BODY = b'{"id": "big", "name": "' + b"x" * (DEFAULT_MAX_BODY_BYTES + 10) + b'"}'


@dataclasses.dataclass(frozen=True)
class RawRequest:
    method: bytes
    target: bytes
    version: bytes
    headers: Tuple[Tuple[bytes, bytes], ...]
    body: bytes
    # The framing announces more body than is sent: the server may wait for the rest.
    truncated: bool = False

    def to_bytes(self) -> bytes:
        head = b"%s %s %s\r\n" % (self.method, self.target, self.version)
        for name, value in self.headers:
            head += name + b": " + value + b"\r\n"
        return head + b"\r\n" + self.body


def _percent_encode(data: bytes) -> bytes:
    return "".join(f"%{byte:02X}" for byte in data).encode()


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value).encode()


def _mostly(usual: st.SearchStrategy[T], odd: st.SearchStrategy[T]) -> st.SearchStrategy[T]:
    """``usual`` about nine times in ten: a request goes wrong in one or two places at a
    time, so that most requests get past the HTTP parser to the application.  Shrinking
    goes towards ``usual``."""
    return st.sampled_from([False] * 11 + [True]).flatmap(
        lambda odd_one: odd if odd_one else usual
    )


_text = st.lists(st.sampled_from(ID_TEXT), max_size=6).map("".join)
_segments = st.lists(
    _mostly(
        st.one_of(
            st.sampled_from([quote(user_id, safe="").encode() for user_id in KNOWN_IDS]),
            _text.filter(bool).map(lambda text: quote(text, safe="").encode()),
        ),
        st.one_of(
            st.binary(min_size=1, max_size=4).map(_percent_encode),
            st.sampled_from(NASTY_SEGMENTS),
            st.binary(min_size=1, max_size=2),  # raw bytes: for the HTTP parser to refuse
        ),
    ),
    min_size=1,
    max_size=2,
).map(b"".join)
_user_paths = _segments.map(lambda segment: b"/users/" + segment)
_paths = st.one_of(
    _user_paths,
    st.sampled_from([b"/users", b"/", b"/users/", b"/nope", b"/USERS", b"*", b"//users"]),
    st.sampled_from([b"http://x/users", b"http://x/users/1"]),
    _segments.map(lambda segment: b"/users/1/" + segment),
)
_methods = st.one_of(
    st.sampled_from([b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS"]),
    st.sampled_from([b"TRACE", b"get", b"BREW"]),
    st.binary(min_size=1, max_size=3),
)
if AIOHTTP_VERSION >= (3, 14):  # older ones never answer these: see test_a_bad_absolute_url...
    _paths |= st.sampled_from([b"http://x:abc/users", b"http://x:99999999/users"])
    _methods |= st.just(b"CONNECT")
# A method and a path: mostly one of the API's routes, else anything.
_requests_lines = st.tuples(
    _mostly(
        st.one_of(
            st.tuples(st.sampled_from([b"GET", b"HEAD", b"POST"]), st.just(b"/users")),
            st.tuples(st.sampled_from([b"GET", b"HEAD", b"PUT", b"DELETE"]), _user_paths),
        ),
        st.tuples(_methods, _paths),
    ),
    _mostly(st.just(b""), _segments.map(lambda segment: b"?q=" + segment)),
).map(lambda line: (line[0][0], line[0][1] + line[1]))
_versions = _mostly(st.just(b"HTTP/1.1"), st.sampled_from([b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1"]))
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | _text,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(["id", "name", "age", "x", ""]), children, max_size=4)
    ),
    max_leaves=8,
)
_users = st.fixed_dictionaries(
    {
        "id": st.one_of(st.sampled_from(KNOWN_IDS), _text, st.integers(-3, 9)),
        "name": _mostly(st.sampled_from(["Ada", "Zoë", "🐍 x"]), _text),
    },
    optional={"age": st.one_of(st.none(), st.integers(-1, MAX_AGE + 1))},
)
_payloads = _mostly(
    st.one_of(
        _users.map(_json_bytes),
        _users.map(lambda user: {k: v for k, v in user.items() if k != "id"}).map(_json_bytes),
    ),
    st.one_of(
        _json_values.map(_json_bytes),
        st.binary(max_size=40),
        st.sampled_from(
            [
                b"",
                b"{",
                b"null",
                b"[]",
                BIG_BODY,
                b'{"id": "\\ud800", "name": "n"}',
                b"\xef\xbb\xbf{}",
            ]
        ),
    ),
)
_header_values = st.one_of(
    st.sampled_from(NASTY_HEADER_VALUES),
    st.binary(max_size=8).filter(lambda value: b"\r" not in value and b"\n" not in value),
)
_content_types = _mostly(
    st.sampled_from(
        [b"application/json", b"application/json; charset=utf-8", b"APPLICATION/JSON"]
    ),
    st.one_of(
        st.sampled_from(
            [
                None,
                b'application/json; charset="utf-8"',
                b"application/json; charset=latin-1",
                b"application/json;",
                b"application/json; charset",
                b"text/plain",
                b"application/x-www-form-urlencoded",
                b"multipart/form-data; boundary=x",
                b";",
            ]
        ),
        _header_values,
    ),
)
# (name, whether the body really is encoded that way): a body that claims to be gzip or
# deflate and is not must be a 400, never a 500.
_content_encodings = _mostly(
    st.one_of(
        st.just((None, True)),
        st.tuples(st.sampled_from([b"gzip", b"deflate", b"identity"]), st.booleans()),
    ),
    st.tuples(
        st.one_of(
            st.sampled_from([b"x-gzip", b"GZIP", b"br", b"zstd", b"gzip, deflate", b"bogus"]),
            _header_values,
        ),
        st.booleans(),
    ),
)
_transfer_encodings = _mostly(
    st.sampled_from([None, None, b"chunked"]),
    st.sampled_from(
        [b"CHUNKED", b"gzip, chunked", b"chunked, gzip", b"identity", b"chunked, chunked",
         b"bogus", b""]
    ),
)  # fmt: skip
_lengths = _mostly(
    st.just("exact"),
    st.sampled_from(
        [None, "short", "long", "not a number", "negative", "twice", "conflicting", "huge",
         "padded"]
    ),
)  # fmt: skip
_extra_headers = _mostly(
    st.just([]),
    st.lists(
        st.tuples(
            st.sampled_from([b"User-Agent", b"Referer", b"X-Anything", b"Expect", b"Accept"]),
            st.one_of(st.sampled_from([b"100-continue", b"text/html"]), _header_values),
        ),
        min_size=1,
        max_size=2,
    ),
)


@st.composite
def _chunked(draw: st.DrawFn, payload: bytes) -> Tuple[bytes, bool]:
    """``payload`` in chunked framing, possibly broken; and whether it is cut short."""
    cut = sorted(draw(st.lists(st.integers(0, len(payload)), max_size=2)))
    pieces = [payload[a:b] for a, b in zip([0, *cut], [*cut, len(payload)]) if b > a]
    style = draw(
        _mostly(
            st.sampled_from(["proper", "extension", "trailer", "lowercase hex"]),
            st.sampled_from(["bad size", "no last chunk", "short chunk"]),
        )
    )
    size = "%x" if style == "lowercase hex" else "%X"
    framed = [(size % len(piece)).encode() + b"\r\n" + piece + b"\r\n" for piece in pieces]
    if style == "bad size":
        framed.insert(draw(st.integers(0, len(framed))), b"zz\r\n")
    if style == "extension":
        framed = [part.replace(b"\r\n", b";x=1\r\n", 1) for part in framed]
    if style == "no last chunk":
        return b"".join(framed), True
    if style == "short chunk":  # announces more than follows: the rest is read as data
        return b"".join(framed) + b"FF\r\nabc\r\n0\r\n\r\n", True
    last = b"0\r\nX-Trailer: 1\r\n\r\n" if style == "trailer" else b"0\r\n\r\n"
    return b"".join(framed) + last, False


@st.composite
def raw_requests(draw: st.DrawFn) -> RawRequest:
    method, target = draw(_requests_lines)
    version = draw(_versions)
    payload = draw(_payloads)
    headers: List[Tuple[bytes, bytes]] = [(b"Host", b"x")]
    content_type = draw(_content_types)
    if content_type is not None:
        headers.append((b"Content-Type", content_type))
    encoding, encoded = draw(_content_encodings)
    if encoding is not None:
        headers.append((b"Content-Encoding", encoding))
        if encoded and encoding.lower() in (b"gzip", b"x-gzip"):
            payload = gzip.compress(payload)
        elif encoded and encoding.lower() == b"deflate":
            payload = zlib.compress(payload)
    truncated = False
    transfer = draw(_transfer_encodings)
    if transfer is not None:
        headers.append((b"Transfer-Encoding", transfer))
        if transfer.lower().replace(b" ", b"").endswith(b"chunked"):
            payload, truncated = draw(_chunked(payload))
    length = draw(_lengths)
    size = len(payload)
    values = {
        "exact": [b"%d" % size],
        "short": [b"%d" % max(size - 3, 0)],
        "long": [b"%d" % (size + 5)],
        "not a number": [b"ten"],
        "negative": [b"-1"],
        "twice": [b"%d" % size, b"%d" % size],
        "conflicting": [b"%d" % size, b"%d" % (size + 1)],
        "huge": [b"9" * 30],
        "padded": [b" %d " % size],
        None: [],
    }[length]
    if transfer is None or length != "exact":  # "exact" goes with no Transfer-Encoding
        headers.extend((b"Content-Length", value) for value in values)
    if transfer is None and length in ("long", "huge"):
        truncated = True
    extra = draw(_extra_headers)
    if not target.startswith((b"/", b"http://")):
        # A target that is not a path (OPTIONS *) matches no route, so aiohttp handles
        # its Expect header itself: see "What a client can and cannot do".
        extra = [(name, value) for name, value in extra if name != b"Expect"]
    headers.extend(extra)
    headers.append((b"Connection", b"close"))
    return RawRequest(method, target, version, tuple(headers), payload, truncated)


class LogRecords(logging.Handler):
    """Keeps every record that reaches the root logger."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: List[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def take(self) -> List[logging.LogRecord]:
        records, self.records = self.records, []
        return records


class LiveApi:
    """One server on an event loop of its own, for a synchronous (Hypothesis) test."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.loop = asyncio.new_event_loop()
        self.log = LogRecords()
        self.users: Dict[str, Any] = {}
        self.runner = web.AppRunner(make_app(store))
        self.port = 0
        self.session: Optional[aiohttp.ClientSession] = None

    def run(self, coro: Awaitable[Any]) -> Any:
        return self.loop.run_until_complete(coro)

    async def start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        for user_id in KNOWN_IDS:
            user = {"id": user_id, "name": f"known {user_id}"}
            async with self.session.post(f"http://127.0.0.1:{self.port}/users", json=user) as r:
                assert r.status == 201
        self.users = await self.list_users()

    async def settle(self) -> None:
        """Wait until no request is being handled, so that its log lines are all written.

        aiohttp (3.9+) runs each request in a task of ``RequestHandler._handle_request``.
        A connection may live on for up to 10 s after its answer, reading the rest of
        an unread body ("lingering"), but logs nothing more.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20.0
        while True:
            busy = [
                task
                for task in asyncio.all_tasks()
                if "_handle_request" in getattr(task.get_coro(), "__qualname__", "")
            ]
            if not busy:
                return
            assert loop.time() < deadline, f"requests still being handled after 20 s: {busy!r}"
            await asyncio.sleep(0.005)

    async def list_users(self) -> Dict[str, Any]:
        assert self.session is not None
        async with self.session.get(f"http://127.0.0.1:{self.port}/users") as resp:
            assert resp.status == 200
            return {user["id"]: user for user in await resp.json()}

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.close()
        await self.runner.cleanup()

    async def exchange(self, request: RawRequest) -> Tuple[bytes, bool]:
        """Send ``request``; ``(what came back, whether it is a whole answer)``.

        The server may keep the connection open after its answer, reading the rest
        of a body it did not need ("lingering"): a whole answer is enough.
        """
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        received = b""
        complete = False
        try:
            try:
                writer.write(request.to_bytes())
                await writer.drain()
            except OSError:
                pass  # the server refused it early and closed: read its answer
            loop = asyncio.get_running_loop()
            # A truncated request gets a short while for an early answer (415, 413...).
            deadline = loop.time() + (0.2 if request.truncated else 10.0)
            while not complete and loop.time() < deadline:
                try:
                    chunk = await asyncio.wait_for(reader.read(65536), deadline - loop.time())
                except asyncio.TimeoutError:
                    break
                except ConnectionError:
                    chunk = b""
                received += chunk
                head = request.method == b"HEAD"
                complete = answer_is_whole(received, head=head, closed=not chunk)
                if not chunk:
                    break
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass
        return received, complete

    async def check(self, request: RawRequest) -> None:
        self.log.take()  # left by an example that failed before its log was checked
        answer, complete = await self.exchange(request)
        # A handler whose client has gone may still be finishing: its log lines are
        # this example's.
        await self.settle()
        if not request.truncated:
            assert complete, f"no whole answer in 10 s: {answer[:300]!r}"
        status: Optional[int] = None
        body: Any = None
        while answer:  # skip interim answers such as 100 Continue
            status, headers, rest = parse_answer(answer)
            if status >= 200:
                break
            answer = rest
        if answer and status is not None:
            assert status < 500, answer[:500]
            content_type = headers.get("content-type", "")
            if content_type.startswith("application/json"):
                if rest:  # not a HEAD
                    body = json.loads(rest)
                if status >= 400 and request.method != b"HEAD":
                    assert isinstance(body, dict) and body.get("error"), body
            elif status != 204:
                # Plain text only from aiohttp's protocol layer: HTTP it cannot parse.
                assert status == 400 and content_type.startswith("text/plain"), answer[:300]
        elif not request.truncated:
            raise AssertionError("the server closed the connection without an answer")
        await self.check_state(request.method, status, body)
        records = self.log.take()
        assert_clean_log(records)
        loud = [(r.name, r.levelname, r.getMessage()) for r in records if r.levelno >= 30]
        assert loud == [], loud

    async def check_state(self, method: bytes, status: Optional[int], body: Any) -> None:
        before, after = self.users, await self.list_users()
        self.users = after
        if status == 201 and method == b"POST":
            assert body["id"] not in before
            assert after == {**before, body["id"]: body}
        elif status == 200 and method == b"PUT":
            assert body["id"] in before
            assert after == {**before, body["id"]: body}
        elif status == 204 and method == b"DELETE":
            [gone] = set(before) - set(after)
            assert after == {k: v for k, v in before.items() if k != gone}
        else:  # read, refused, or never answered: nothing may have changed
            assert after == before, (method, status, body)


def answer_is_whole(data: bytes, *, head: bool, closed: bool) -> bool:
    """Whether ``data`` holds a whole answer (after any ``1xx``): its framing says so, or
    the server closed the connection after its headers."""
    while True:
        head_part, separator, body = data.partition(b"\r\n\r\n")
        if not separator:
            return False
        status, headers, _ = parse_answer(head_part + separator)
        if status >= 200:
            break
        data = body
    if closed or head or status in (204, 304):
        return True
    length = headers.get("content-length", "")
    return length.isdigit() and len(body) >= int(length)


async def end_lingering_connections() -> None:
    """End connections whose client left while aiohttp was still reading an unread body.

    aiohttp reads on for up to 10 s ("lingering") and such a connection outlives the
    application's cleanup.
    """
    leftover = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in leftover:
        task.cancel()
    await asyncio.gather(*leftover, return_exceptions=True)


@pytest.fixture
def live_api(new_store: Callable[[], Store]) -> Iterator[LiveApi]:
    store = new_store()
    live = LiveApi(store)
    root = logging.getLogger()
    old_level = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(live.log)
    try:
        live.run(live.start())
        live.log.take()
        yield live
    finally:
        live.run(live.stop())
        live.run(end_lingering_connections())
        root.removeHandler(live.log)
        root.setLevel(old_level)
        if isinstance(store, PostgresStore):

            async def drop() -> None:
                async with PostgresStore(store._dsn, table=store.table) as dropper:
                    await dropper.drop_table()

            live.run(drop())
        live.loop.close()


def _post(body: bytes, *headers: Tuple[bytes, bytes]) -> RawRequest:
    all_headers = (
        (b"Host", b"x"),
        (b"Content-Type", b"application/json"),
        *headers,
        (b"Connection", b"close"),
    )
    return RawRequest(b"POST", b"/users", b"HTTP/1.1", all_headers, body)


def _get(method: bytes, target: bytes, *headers: Tuple[bytes, bytes]) -> RawRequest:
    all_headers = ((b"Host", b"x"), *headers, (b"Connection", b"close"))
    return RawRequest(method, target, b"HTTP/1.1", all_headers, b"")


@settings(
    max_examples=int(os.environ.get("COOKBOOK_HYPOTHESIS_EXAMPLES", "250")),
    deadline=None,
    derandomize=True,  # the same examples on every run: CI stays reproducible
    database=None,  # nothing written next to the sources
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # one server serves every example, on purpose
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
)
@given(raw=raw_requests())
@example(raw=_post(b"not gzip", (b"Content-Encoding", b"gzip"), (b"Content-Length", b"8")))
@example(raw=_post(b"nope", (b"Content-Encoding", b"deflate"), (b"Content-Length", b"4")))
@example(raw=_post(b'9\r\n{"id": 1,\r\nzz\r\n0\r\n\r\n', (b"Transfer-Encoding", b"chunked")))
@example(raw=_get(b"GET", b"/users/%00"))
@example(raw=_get(b"DELETE", b"/users/%00"))
@example(raw=_get(b"GET", b"/users/a%0Ab"))
@example(raw=_get(b"GET", b"/users", (b"User-Agent", b"\xc2\x85\xe2\x80\xa8\xff")))
@example(raw=_get(b"GET", b"/users", (b"Content-Length", b"abc")))
@example(raw=_get(b"GET", b"/nope", (b"Expect", b"\xff\xfe")))
@example(
    raw=_get(b"PUT", b"/users/1", (b"Content-Type", b"\x80\xc2\x80"), (b"Content-Length", b"0"))
)
def test_no_request_gets_a_5xx_a_traceback_or_a_forged_log_line_or_stores_what_it_was_refused(
    live_api: LiveApi, raw: RawRequest
) -> None:
    live_api.run(live_api.check(raw))
