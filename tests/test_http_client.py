"""Behaviour, fault and load tests for recipes/http_client.py, against the local demo server."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any, AsyncContextManager, Callable, List, Tuple

import aiohttp
import pytest

from recipes.http_client import (
    DEFAULT_TIMEOUT,
    FetchResult,
    InvalidJSONResponse,
    download,
    fetch_all,
    fetch_json,
    make_session,
    with_retries,
)
from tests.conftest import served
from tests.http_server import PATTERN, make_demo_app


def serve() -> AsyncContextManager[str]:
    """Serve a fresh demo app on the running loop (virtual clock under run_virtual)."""
    return served(make_demo_app())


async def server_stats(session: aiohttp.ClientSession, base_url: str) -> Any:
    return await fetch_json(session, f"{base_url}/stats")


async def stats_when(
    session: aiohttp.ClientSession, base_url: str, ready: Callable[[Any], bool]
) -> Any:
    """The server's stats once ``ready(stats)`` holds (polled; gives up after 10 s)."""
    for _ in range(200):
        stats = await server_stats(session, base_url)
        if ready(stats):
            break
        await asyncio.sleep(0.05)
    return stats


def expected_body(size: int) -> bytes:
    return (PATTERN * (size // len(PATTERN) + 1))[:size]


# --- sessions and timeouts -------------------------------------------------


def test_make_session_closes_its_connector(run_virtual: Any) -> None:
    async def main() -> Tuple[bool, bool]:
        async with serve() as base_url:
            async with make_session() as session:
                await fetch_json(session, f"{base_url}/json")
                connector = session.connector
                assert connector is not None
            return session.closed, connector.closed

    assert run_virtual(main) == (True, True)


def test_make_session_refuses_bad_arguments(run_virtual: Any) -> None:
    async def main() -> None:
        with pytest.raises(TypeError, match=r"ClientTimeout\(total=5\)"):
            make_session(timeout=5)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="limit must be"):
            make_session(limit=-1)
        with pytest.raises(ValueError, match="limit_per_host must be"):
            make_session(limit_per_host=1.5)  # type: ignore[arg-type]

    run_virtual(main)


def test_default_timeout_bounds_every_phase() -> None:
    assert DEFAULT_TIMEOUT.total is not None
    assert DEFAULT_TIMEOUT.connect is not None
    assert DEFAULT_TIMEOUT.sock_read is not None


def test_slow_server_hits_the_session_timeout(run_virtual: Any) -> None:
    async def main() -> Any:
        async with serve() as base_url:
            timeout = aiohttp.ClientTimeout(total=0.5)
            async with make_session(timeout=timeout) as session:
                with pytest.raises(asyncio.TimeoutError):
                    await fetch_json(session, f"{base_url}/slow?delay=60")
                # The server notices that the client has gone.
                return await stats_when(session, base_url, lambda s: s["in_flight"] == 0)

    stats = run_virtual(main)
    assert stats["hits"]["/slow"] == 1
    assert stats["in_flight"] == 0


def test_sock_read_timeout_catches_a_silent_server(run_virtual: Any) -> None:
    async def main() -> None:
        async with serve() as base_url:
            timeout = aiohttp.ClientTimeout(total=None, sock_read=0.5)
            async with make_session(timeout=timeout) as session:
                with pytest.raises(asyncio.TimeoutError):
                    await fetch_json(session, f"{base_url}/slow?delay=30")

    run_virtual(main)


def test_request_timeout_overrides_the_session_timeout(run_virtual: Any) -> None:
    async def main() -> Any:
        async with serve() as base_url:
            async with make_session(timeout=aiohttp.ClientTimeout(total=0.1)) as session:
                url = f"{base_url}/slow?delay=0.3"
                return await fetch_json(session, url, timeout=aiohttp.ClientTimeout(total=5))

    assert run_virtual(main) == {"delay": 0.3}


# --- clear errors ----------------------------------------------------------


def test_error_status_raises_client_response_error(run_virtual: Any) -> None:
    async def main() -> List[int]:
        statuses = []
        async with serve() as base_url:
            # Even a session without raise_for_status: fetch_json checks the status itself.
            async with make_session(raise_for_status=False) as session:
                for code in (404, 500):
                    with pytest.raises(aiohttp.ClientResponseError) as info:
                        await fetch_json(session, f"{base_url}/status/{code}")
                    statuses.append(info.value.status)
        return statuses

    assert run_virtual(main) == [404, 500]


def test_malformed_json_names_the_url_and_shows_the_body(run_virtual: Any) -> None:
    async def main() -> Tuple[str, InvalidJSONResponse]:
        async with serve() as base_url:
            async with make_session() as session:
                with pytest.raises(InvalidJSONResponse) as info:
                    await fetch_json(session, f"{base_url}/malformed")
        return base_url, info.value

    base_url, error = run_virtual(main)
    assert error.url == f"{base_url}/malformed"
    assert error.status == 200
    assert error.body_start == '{"broken": '
    assert f"GET {base_url}/malformed: invalid JSON" in str(error)
    assert """'{"broken": '""" in str(error)
    assert isinstance(error.__cause__, json.JSONDecodeError)
    assert isinstance(error, ValueError)


def test_wrong_content_type_is_a_clear_error_unless_unchecked(run_virtual: Any) -> None:
    async def main() -> Tuple[str, str]:
        async with serve() as base_url:
            async with make_session() as session:
                with pytest.raises(InvalidJSONResponse) as checked:
                    await fetch_json(session, f"{base_url}/html")
                with pytest.raises(InvalidJSONResponse) as unchecked:
                    await fetch_json(session, f"{base_url}/html", check_content_type=False)
        return str(checked.value), str(unchecked.value)

    checked, unchecked = run_virtual(main)
    assert "expected JSON, got text/html" in checked
    assert "<!doctype html>" in checked
    assert "invalid JSON" in unchecked


def test_reset_connection_is_a_server_disconnected_error(run_virtual: Any) -> None:
    async def main() -> None:
        async with serve() as base_url:
            async with make_session() as session:
                with pytest.raises(aiohttp.ServerDisconnectedError):
                    await fetch_json(session, f"{base_url}/reset")
                # The session is still usable afterwards.
                assert await fetch_json(session, f"{base_url}/users/5") == {
                    "id": 5,
                    "name": "user-5",
                }

    run_virtual(main)


# --- retries ---------------------------------------------------------------


def test_5xx_is_retried_then_reported(run_virtual: Any) -> None:
    async def main() -> Tuple[int, List[float], Any]:
        delays: List[float] = []
        async with serve() as base_url:
            async with make_session() as session:
                url = f"{base_url}/flaky?key=k&failures=10"
                with pytest.raises(aiohttp.ClientResponseError) as info:
                    await with_retries(
                        lambda: fetch_json(session, url),
                        attempts=3,
                        base_delay=0.1,
                        jitter=False,
                        on_retry=lambda attempt, error, delay: delays.append(delay),
                    )
                stats = await server_stats(session, base_url)
        return info.value.status, delays, stats

    status, delays, stats = run_virtual(main)
    assert status == 503
    assert delays == [0.1, 0.2]
    assert stats["flaky"] == {"k": 3}


def test_5xx_is_retried_until_success(run_virtual: Any) -> None:
    async def main() -> Tuple[Any, Any]:
        async with serve() as base_url:
            async with make_session() as session:
                url = f"{base_url}/flaky?key=ok&failures=2"
                value = await with_retries(lambda: fetch_json(session, url), base_delay=0.1)
                return value, await server_stats(session, base_url)

    value, stats = run_virtual(main)
    assert value == {"key": "ok", "attempts": 3}
    assert stats["flaky"] == {"ok": 3}


async def retry_delays(url: str, **kwargs: Any) -> List[float]:
    """The delays with_retries chose while fetching ``url`` (from the on_retry hook)."""
    delays: List[float] = []
    async with make_session() as session:
        await with_retries(
            lambda: fetch_json(session, url),
            on_retry=lambda attempt, error, delay: delays.append(delay),
            **kwargs,
        )
    return delays


def test_backoff_is_capped_and_jitter_stays_below_the_cap(run_virtual: Any) -> None:
    async def main() -> Tuple[List[float], List[float]]:
        async with serve() as base_url:
            options = {"attempts": 6, "base_delay": 0.1, "max_delay": 0.4}
            plain = await retry_delays(
                f"{base_url}/flaky?key=a&failures=5", jitter=False, **options
            )
            jittered = await retry_delays(
                f"{base_url}/flaky?key=b&failures=5", jitter=True, **options
            )
        return plain, jittered

    plain, jittered = run_virtual(main)
    assert plain == [0.1, 0.2, 0.4, 0.4, 0.4]
    assert len(jittered) == 5
    assert all(0 <= d <= bound for d, bound in zip(jittered, plain))


@pytest.mark.parametrize("code", [400, 401, 403, 404, 409, 422, 429])
def test_4xx_is_never_retried(run_virtual: Any, code: int) -> None:
    async def main() -> Tuple[int, Any]:
        async with serve() as base_url:
            async with make_session() as session:
                url = f"{base_url}/status/{code}"
                with pytest.raises(aiohttp.ClientResponseError) as info:
                    await with_retries(lambda: fetch_json(session, url), base_delay=0.1)
                return info.value.status, await server_stats(session, base_url)

    status, stats = run_virtual(main)
    assert status == code
    assert stats["hits"][f"/status/{code}"] == 1


def test_429_is_retried_when_asked_for(run_virtual: Any) -> None:
    async def main() -> Any:
        async with serve() as base_url:
            async with make_session() as session:
                url = f"{base_url}/status/429"
                with pytest.raises(aiohttp.ClientResponseError):
                    await with_retries(
                        lambda: fetch_json(session, url),
                        attempts=3,
                        base_delay=0.1,
                        retry_statuses={429, 503},
                    )
                return await server_stats(session, base_url)

    assert run_virtual(main)["hits"]["/status/429"] == 3


@pytest.mark.parametrize(
    ("retry_after", "max_delay", "expected"),
    [
        ("1", 10.0, [1.0]),  # honoured when larger than the backoff
        ("100", 0.5, [0.5]),  # but never beyond max_delay
        ("Wed, 21 Oct 2015 07:28:00 GMT", 10.0, [0.1]),  # a date in the past: plain backoff
        ("soon", 10.0, [0.1]),  # unparseable: plain backoff
    ],
)
def test_retry_after_header(
    run_virtual: Any, retry_after: str, max_delay: float, expected: List[float]
) -> None:
    async def main() -> List[float]:
        delays: List[float] = []
        async with serve() as base_url:
            async with make_session() as session:
                url = f"{base_url}/flaky?key=r&failures=1&retry_after={retry_after}"
                await with_retries(
                    lambda: fetch_json(session, url),
                    base_delay=0.1,
                    max_delay=max_delay,
                    jitter=False,
                    on_retry=lambda attempt, error, delay: delays.append(delay),
                )
        return delays

    assert run_virtual(main) == expected


async def retried_attempts(
    session: aiohttp.ClientSession, url: str, error: type[BaseException]
) -> List[int]:
    """Fetch ``url`` with three attempts, expect ``error``; return the failed attempts."""
    failed: List[int] = []

    async def read_body() -> bytes:
        async with session.get(url) as response:
            return await response.read()

    with pytest.raises(error):
        await with_retries(
            read_body,
            attempts=3,
            base_delay=0.1,
            on_retry=lambda attempt, error, delay: failed.append(attempt),
        )
    return failed


def test_timeouts_and_dropped_connections_are_retried(run_virtual: Any) -> None:
    async def main() -> Tuple[List[List[int]], Any]:
        async with serve() as base_url:
            async with make_session(timeout=aiohttp.ClientTimeout(total=0.2)) as session:
                failed = [
                    await retried_attempts(session, f"{base_url}{path}", error)
                    for path, error in (
                        ("/slow?delay=30", asyncio.TimeoutError),
                        ("/reset", aiohttp.ServerDisconnectedError),
                        ("/stream?size=1000&fail_after=500", aiohttp.ClientPayloadError),
                    )
                ]
                await asyncio.sleep(0.1)
                return failed, await server_stats(session, base_url)

    failed, stats = run_virtual(main)
    # Each one failed, was retried after attempts 1 and 2, and failed a third time.
    assert failed == [[1, 2], [1, 2], [1, 2]]
    assert stats["hits"]["/slow"] == 3
    assert stats["hits"]["/stream"] == 3


def test_with_retries_refuses_a_coroutine_object(run_virtual: Any) -> None:
    async def main() -> None:
        async def work() -> int:
            return 1

        coroutine = work()
        with pytest.raises(TypeError, match="a coroutine object can only be awaited once"):
            await with_retries(coroutine)  # type: ignore[arg-type]
        # It was closed, so no "coroutine ... was never awaited" warning follows.
        assert coroutine.cr_frame is None

    run_virtual(main)


@pytest.mark.parametrize(
    "kwargs",
    [{"attempts": 0}, {"attempts": 1.5}, {"base_delay": -1}, {"max_delay": -0.1}],
)
def test_with_retries_refuses_bad_arguments(run_virtual: Any, kwargs: Any) -> None:
    async def main() -> None:
        calls = []

        async def send() -> None:
            calls.append(1)

        with pytest.raises(ValueError):
            await with_retries(send, **kwargs)
        assert calls == []

    run_virtual(main)


def test_with_retries_does_not_swallow_cancellation(run_virtual: Any) -> None:
    async def main() -> Any:
        async with serve() as base_url:
            async with make_session() as session:
                url = f"{base_url}/flaky?key=c&failures=100"
                task = asyncio.ensure_future(
                    with_retries(lambda: fetch_json(session, url), attempts=100, base_delay=0.1)
                )
                await asyncio.sleep(0.5)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                hits_at_cancel = (await server_stats(session, base_url))["flaky"]["c"]
                await asyncio.sleep(2)  # no retry keeps going in the background
                return hits_at_cancel, (await server_stats(session, base_url))["flaky"]["c"]

    before, after = run_virtual(main)
    assert before == after >= 2


@pytest.mark.skipif(
    sys.version_info < (3, 11), reason="needs Task.cancelling() (3.11+) to tell the errors apart"
)
@pytest.mark.parametrize("cleanup", ["raises", "swallows"])
def test_with_retries_keeps_a_cancellation_the_attempt_turned_into_an_error(
    run_virtual: Any, cleanup: str
) -> None:
    """The attempt's cleanup turns the cancellation into a transient error (or swallows it):
    with_retries must raise CancelledError, not try again and return a value."""
    calls: List[int] = []

    async def send() -> str:
        calls.append(1)
        if len(calls) > 1:
            return "a later attempt's value"
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            if cleanup == "raises":
                raise aiohttp.ServerDisconnectedError() from None  # closing the connection failed
            return "a value after the cancellation"  # swallowed
        return "unreachable"

    async def main() -> None:
        task = asyncio.ensure_future(with_retries(send, base_delay=0))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run_virtual(main)
    assert calls == [1]


# --- many URLs under a limit -----------------------------------------------


@pytest.mark.parametrize(("count", "limit"), [(20, 5), (7, 3), (4, 10), (1, 1)])
def test_concurrency_limit_is_respected_and_reached(
    run_virtual: Any, count: int, limit: int
) -> None:
    async def main() -> Tuple[List[FetchResult], Any]:
        async with serve() as base_url:
            async with make_session() as session:
                urls = [f"{base_url}/slow?delay=0.2" for _ in range(count)]
                results = await fetch_all(session, urls, limit=limit)
                return results, await server_stats(session, base_url)

    results, stats = run_virtual(main)
    assert [r.value for r in results] == [{"delay": 0.2}] * count
    assert stats["hits"]["/slow"] == count
    assert stats["peak_in_flight"] == min(count, limit)


def test_connections_are_reused_within_the_limit(run_virtual: Any) -> None:
    async def main() -> List[FetchResult]:
        async with serve() as base_url:
            async with make_session() as session:
                return await fetch_all(session, [f"{base_url}/whoami"] * 30, limit=3)

    results = run_virtual(main)
    ports = {r.value["client_port"] for r in results}
    assert 1 <= len(ports) <= 3


def test_one_failure_loses_nothing(run_virtual: Any) -> None:
    async def main() -> Tuple[str, List[FetchResult]]:
        async with serve() as base_url:
            async with make_session(timeout=aiohttp.ClientTimeout(total=0.5)) as session:
                paths = ["/users/1", "/status/500", "/reset", "/malformed", "/slow?delay=9"]
                paths += ["/users/2"]
                urls = [f"{base_url}{p}" for p in paths]
                return base_url, await fetch_all(session, urls, limit=2)

    base_url, results = run_virtual(main)
    assert [r.url[len(base_url) :] for r in results] == [
        "/users/1",
        "/status/500",
        "/reset",
        "/malformed",
        "/slow?delay=9",
        "/users/2",
    ]
    assert [r.ok for r in results] == [True, False, False, False, False, True]
    assert results[0].value == {"id": 1, "name": "user-1"}
    assert results[-1].value == {"id": 2, "name": "user-2"}
    assert isinstance(results[1].error, aiohttp.ClientResponseError)
    assert isinstance(results[2].error, aiohttp.ServerDisconnectedError)
    assert isinstance(results[3].error, InvalidJSONResponse)
    assert isinstance(results[4].error, asyncio.TimeoutError)


def test_fetch_all_of_nothing_and_bad_limits(run_virtual: Any) -> None:
    async def main() -> List[FetchResult]:
        async with make_session() as session:
            for limit in (0, -1, 2.0, True):
                with pytest.raises(ValueError, match="limit must be"):
                    await fetch_all(session, ["http://127.0.0.1:1/"], limit=limit)  # type: ignore[arg-type]
            return await fetch_all(session, [])

    assert run_virtual(main) == []


def test_cancelling_fetch_all_cancels_the_requests(run_virtual: Any) -> None:
    async def main() -> Any:
        async with serve() as base_url:
            async with make_session() as session:
                urls = [f"{base_url}/slow?delay=10"] * 8
                task = asyncio.ensure_future(fetch_all(session, urls, limit=4))
                busy = await stats_when(session, base_url, lambda s: s["in_flight"] == 4)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                # The server sees the clients leave.
                idle = await stats_when(session, base_url, lambda s: s["in_flight"] == 0)
                return busy["in_flight"], idle

    in_flight, stats = run_virtual(main)
    assert in_flight == 4
    assert stats["in_flight"] == 0
    assert stats["hits"]["/slow"] == 4  # nothing was started after the cancellation


def test_fetch_all_with_a_custom_fetch(run_virtual: Any) -> None:
    async def main() -> List[FetchResult]:
        async def status_of(session: aiohttp.ClientSession, url: str) -> int:
            async with session.get(url, raise_for_status=False) as response:
                return response.status

        async with serve() as base_url:
            async with make_session() as session:
                urls = [f"{base_url}/status/{code}" for code in (200, 404, 503)]
                return await fetch_all(session, urls, fetch=status_of)

    assert [r.value for r in run_virtual(main)] == [200, 404, 503]


# --- downloads -------------------------------------------------------------


def test_download_streams_the_whole_body(run_virtual: Any, tmp_path: Path) -> None:
    target = tmp_path / "big.bin"

    async def main() -> int:
        async with serve() as base_url:
            async with make_session() as session:
                url = f"{base_url}/stream?size=3000001&chunk=65536"
                return await download(session, url, target, chunk_size=10_000)

    assert run_virtual(main) == 3_000_001
    assert target.read_bytes() == expected_body(3_000_001)
    assert os.listdir(tmp_path) == ["big.bin"]


def test_interrupted_download_keeps_the_old_file(run_virtual: Any, tmp_path: Path) -> None:
    target = tmp_path / "data.bin"
    target.write_bytes(b"old contents")

    async def main() -> None:
        async with serve() as base_url:
            async with make_session() as session:
                url = f"{base_url}/stream?size=500000&chunk=1000&fail_after=250000"
                with pytest.raises(aiohttp.ClientPayloadError):
                    await download(session, url, target)

    run_virtual(main)
    assert target.read_bytes() == b"old contents"
    assert os.listdir(tmp_path) == ["data.bin"]


def test_cancelled_download_leaves_no_partial_file(run_virtual: Any, tmp_path: Path) -> None:
    target = tmp_path / "data.bin"
    target.write_bytes(b"old contents")

    async def main() -> List[str]:
        async with serve() as base_url:
            async with make_session() as session:
                url = f"{base_url}/stream?size=20000000&chunk=1000"
                task = asyncio.ensure_future(download(session, url, target, chunk_size=1000))
                # Wait until the partial file exists and has data in it.
                while not any(n.endswith(".part") for n in os.listdir(tmp_path)):
                    await asyncio.sleep(0)
                seen = sorted(os.listdir(tmp_path))
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                return seen

    seen = run_virtual(main)
    assert len(seen) == 2 and seen[0].startswith(".data.bin.")
    assert target.read_bytes() == b"old contents"
    assert os.listdir(tmp_path) == ["data.bin"]


def test_download_error_status_creates_nothing(run_virtual: Any, tmp_path: Path) -> None:
    async def main() -> None:
        async with serve() as base_url:
            async with make_session() as session:
                with pytest.raises(aiohttp.ClientResponseError):
                    await download(session, f"{base_url}/status/404", tmp_path / "x")

    run_virtual(main)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("chunk", [100_000, 1000])
def test_download_refuses_bodies_over_max_bytes(
    run_virtual: Any, tmp_path: Path, chunk: int
) -> None:
    async def main() -> None:
        async with serve() as base_url:
            async with make_session() as session:
                url = f"{base_url}/stream?size=100000&chunk={chunk}"
                with pytest.raises(ValueError, match="max_bytes=50000"):
                    await download(session, url, tmp_path / "x", max_bytes=50_000)
                assert await download(session, url, tmp_path / "y", max_bytes=100_000) == 100_000

    run_virtual(main)
    assert os.listdir(tmp_path) == ["y"]


def test_download_refuses_bad_arguments(run_virtual: Any, tmp_path: Path) -> None:
    async def main() -> None:
        async with make_session() as session:
            with pytest.raises(ValueError, match="chunk_size"):
                await download(session, "http://127.0.0.1:1/", tmp_path / "x", chunk_size=0)
            with pytest.raises(ValueError, match="max_bytes"):
                await download(session, "http://127.0.0.1:1/", tmp_path / "x", max_bytes=-1)
            with pytest.raises(ValueError, match="must name a file"):
                await download(session, "http://127.0.0.1:1/", str(tmp_path) + os.sep)

    run_virtual(main)
    assert os.listdir(tmp_path) == []


# --- the same recipes on the real clock, through the shared fixture --------


@pytest.mark.asyncio
async def test_real_clock_timeout_and_clear_errors(demo_server: str) -> None:
    async with make_session(timeout=aiohttp.ClientTimeout(total=0.2)) as session:
        with pytest.raises(asyncio.TimeoutError):
            await fetch_json(session, f"{demo_server}/slow?delay=5")
        with pytest.raises(InvalidJSONResponse, match="invalid JSON"):
            await fetch_json(session, f"{demo_server}/malformed")
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await fetch_json(session, f"{demo_server}/reset")


@pytest.mark.asyncio
async def test_real_clock_retries_and_limit(demo_server: str) -> None:
    async with make_session() as session:
        url = f"{demo_server}/flaky?key=real&failures=2"
        value = await with_retries(lambda: fetch_json(session, url), base_delay=0.01)
        assert value == {"key": "real", "attempts": 3}
        results = await fetch_all(session, [f"{demo_server}/slow?delay=0.1"] * 6, limit=2)
        assert all(r.ok for r in results)
        stats = await server_stats(session, demo_server)
        assert stats["peak_in_flight"] == 2
