"""Behaviour, bad-input, load and CLI tests for recipes/api_server.py.

Every API test runs twice, once per store: in memory and on the session's
PostgreSQL (a table of its own per test, dropped afterwards).  Every request
made through ``Api.call`` also checks the promise of the chapter: the answer
is never a 5xx, and every error is a JSON object with an ``"error"`` string.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Dict, List, Optional, Tuple
from urllib.parse import quote

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

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
    make_app,
)

ROOT = Path(__file__).resolve().parent.parent
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
        self, method: str, path: str, *, allow_5xx: bool = False, **kwargs: Any
    ) -> Tuple[int, Any, Any]:
        """``(status, parsed JSON body or None, headers)``, checking the error contract."""
        async with self.session.request(method, self.url + path, **kwargs) as resp:
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


async def raw_http(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(65536), 10)
    finally:
        writer.close()
        await writer.wait_closed()


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
    answer = await raw_http(api.port, request_bytes)
    status = int(answer.split(b" ", 2)[1])
    assert 400 <= status < 500, answer[:200]
    assert (await api.call("GET", "/users"))[0] == 200
    assert [r for r in caplog.records if r.name == "recipes.api_server"] == []


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


# --- server faults: logged 500 and 503 -------------------------------------------------


class FaultyStore:
    """Wraps a store; ``list_users`` raises the exception it is given."""

    def __init__(self, inner: Store, error: BaseException) -> None:
        self.inner = inner
        self.error = error

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def list_users(self) -> List[User]:
        raise self.error

    async def get_user(self, user_id: str) -> Optional[User]:
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
