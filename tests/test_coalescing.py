"""Behaviour, fault, bad-input and load tests for recipes/coalescing.py.

Every test runs its own event loop on the virtual clock (``run_virtual``; real clock
with COOKBOOK_REAL_CLOCK=1), which also fails the test if it leaves a task running.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from conftest import real_clock
from recipes.coalescing import SingleFlight, TTLCache, coalesce
from tests.conftest import loop_errors, run_on_test_clock

HANG = 3600.0  # generous timeout on the virtual clock: turns a hang into a failure
A_LONG_TIME = 1.5 if real_clock() else 10.0**7  # 16 weeks, on the virtual clock
if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
    set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "asyncio-cookbook-hypothesis")


class Backend:
    """A slow service that records what happened to every call made to it."""

    def __init__(self, delay: float = 0.5, cleanup: float = 0.0) -> None:
        self.delay = delay
        self.cleanup = cleanup
        self.started: List[Any] = []
        self.finished: List[Any] = []
        self.cancelled: List[Any] = []
        self.cleaned_up: List[Any] = []
        self.fail_next: Optional[BaseException] = None

    async def fetch(self, key: Any) -> str:
        self.started.append(key)
        fail, self.fail_next = self.fail_next, None
        try:
            await asyncio.sleep(self.delay)
            if fail is not None:
                raise fail
            self.finished.append(key)
            return f"value of {key} #{len(self.started)}"
        except asyncio.CancelledError:
            self.cancelled.append(key)
            raise
        finally:
            if self.cleanup:
                await asyncio.sleep(self.cleanup)  # cleanup that awaits
            self.cleaned_up.append(key)

    def factory(self, key: Any) -> Callable[[], Any]:
        return functools.partial(self.fetch, key)


def other_tasks() -> List[asyncio.Task[Any]]:
    current = asyncio.current_task()
    return [t for t in asyncio.all_tasks() if t is not current and not t.done()]


# --- SingleFlight: sharing ----------------------------------------------------------


def test_a_thousand_concurrent_callers_make_exactly_one_call(run_virtual: Any) -> None:
    backend = Backend()
    flight = SingleFlight()

    async def main() -> List[str]:
        results = await asyncio.wait_for(
            asyncio.gather(*(flight.call("k", backend.factory("k")) for _ in range(1000))),
            HANG,
        )
        assert len(flight) == 0 and "k" not in flight
        assert other_tasks() == []
        return results

    results = run_virtual(main)
    assert backend.started == ["k"]
    assert results == ["value of k #1"] * 1000
    assert all(r is results[0] for r in results)


def test_keys_are_independent_and_finished_calls_are_not_remembered(run_virtual: Any) -> None:
    backend = Backend()
    flight = SingleFlight()

    async def main() -> None:
        keys = [n % 10 for n in range(500)]
        results = await asyncio.gather(*(flight.call(k, backend.factory(k)) for k in keys))
        assert {r.split(" #")[0] for r in results} == {f"value of {k}" for k in range(10)}
        assert sorted(backend.started) == list(range(10))
        await flight.call(3, backend.factory(3))
        assert backend.started.count(3) == 2

    run_virtual(main)


def test_callers_that_arrive_later_join_the_call_in_progress(run_virtual: Any) -> None:
    backend = Backend(delay=1.0)
    flight = SingleFlight()

    async def main() -> None:
        first = asyncio.ensure_future(flight.call("k", backend.factory("k")))
        await asyncio.sleep(0.9)  # the call is nearly done
        late = await flight.call("k", backend.factory("k"))
        assert late == await first
        assert backend.started == ["k"]

    run_virtual(main)


def test_a_factory_that_raises_at_once_leaves_nothing_behind(run_virtual: Any) -> None:
    flight = SingleFlight()

    def bad_factory() -> Any:
        raise ValueError("bad arguments")

    async def main() -> None:
        with pytest.raises(ValueError, match="bad arguments"):
            await flight.call("k", bad_factory)
        assert len(flight) == 0
        assert await flight.call("k", Backend(delay=0.1).factory("k")) == "value of k #1"

    run_virtual(main)


# --- SingleFlight: cancellation ----------------------------------------------------


def test_first_caller_cancelled_others_still_get_the_value(run_virtual: Any) -> None:
    backend = Backend()
    flight = SingleFlight()

    async def main() -> None:
        with loop_errors() as errors:
            callers = [
                asyncio.ensure_future(flight.call("k", backend.factory("k"))) for _ in range(5)
            ]
            await asyncio.sleep(0.1)
            callers[0].cancel()  # the one whose factory started the call
            outcomes = await asyncio.wait_for(
                asyncio.gather(*callers, return_exceptions=True), HANG
            )
        assert isinstance(outcomes[0], asyncio.CancelledError)
        assert outcomes[1:] == ["value of k #1"] * 4
        assert errors == []

    run_virtual(main)
    assert backend.started == ["k"]
    assert backend.finished == ["k"]
    assert backend.cancelled == []


def test_caller_timeouts_do_not_cancel_the_call(run_virtual: Any) -> None:
    backend = Backend(delay=1.0)
    flight = SingleFlight()

    async def main() -> List[Any]:
        impatient = [
            asyncio.wait_for(flight.call("k", backend.factory("k")), timeout=0.1 * n)
            for n in range(1, 6)
        ]
        patient = flight.call("k", backend.factory("k"))
        return await asyncio.wait_for(
            asyncio.gather(*impatient, patient, return_exceptions=True), HANG
        )

    outcomes = run_virtual(main)
    assert [type(o).__name__ for o in outcomes[:5]] == ["TimeoutError"] * 5
    assert outcomes[5] == "value of k #1"
    assert backend.cancelled == [] and backend.finished == ["k"]


def test_all_callers_cancelled_cancels_the_call_and_leaks_nothing(run_virtual: Any) -> None:
    backend = Backend(cleanup=0.2)
    flight = SingleFlight()

    async def main() -> None:
        with loop_errors() as errors:
            callers = [
                asyncio.ensure_future(flight.call("k", backend.factory("k"))) for _ in range(50)
            ]
            await asyncio.sleep(0.1)
            for n, caller in enumerate(callers):
                caller.cancel()
                if n % 10 == 0:
                    await asyncio.sleep(0)  # some leave one by one, some together
            outcomes = await asyncio.wait_for(
                asyncio.gather(*callers, return_exceptions=True), HANG
            )
            assert all(isinstance(o, asyncio.CancelledError) for o in outcomes)
            # By the time the last caller's cancellation reached it, the call had
            # been cancelled and had finished its (awaiting) cleanup.
            assert backend.cancelled == ["k"] and backend.cleaned_up == ["k"]
            assert other_tasks() == []
            assert len(flight) == 0
        assert errors == []

    run_virtual(main)
    assert backend.finished == []


def test_a_caller_arriving_during_the_cleanup_starts_a_new_call(run_virtual: Any) -> None:
    backend = Backend(cleanup=0.5)
    flight = SingleFlight()

    async def main() -> None:
        leaving = asyncio.ensure_future(flight.call("k", backend.factory("k")))
        await asyncio.sleep(0.1)
        leaving.cancel()
        await asyncio.sleep(0.1)  # the abandoned call is still cleaning up
        assert backend.cancelled == ["k"] and backend.cleaned_up == []
        fresh = await asyncio.wait_for(flight.call("k", backend.factory("k")), HANG)
        assert fresh == "value of k #2"
        with pytest.raises(asyncio.CancelledError):
            await leaving

    run_virtual(main)
    assert backend.started == ["k", "k"] and backend.finished == ["k"]


def test_a_call_that_ignores_cancellation_is_awaited_and_its_error_retrieved(
    run_virtual: Any,
) -> None:
    ignored: List[str] = []

    async def stubborn() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            ignored.append("cancel")
        await asyncio.sleep(0.3)
        raise RuntimeError("failed after ignoring the cancellation")

    flight = SingleFlight()

    async def main() -> None:
        with loop_errors() as errors:
            caller = asyncio.ensure_future(flight.call("k", stubborn))
            await asyncio.sleep(0.1)
            caller.cancel()
            await asyncio.wait({caller}, timeout=HANG)
            assert caller.cancelled()
            assert other_tasks() == []
            del caller  # its traceback holds the call's task: let the gc see it go
        assert errors == []  # no "Task exception was never retrieved"

    run_virtual(main)
    assert ignored == ["cancel"]


# --- SingleFlight and TTLCache: failures ------------------------------------------------


def test_failure_reaches_every_waiter_and_the_next_call_tries_again(run_virtual: Any) -> None:
    backend = Backend()
    flight = SingleFlight()

    async def main() -> None:
        with loop_errors() as errors:
            backend.fail_next = ConnectionError("down")
            outcomes = await asyncio.gather(
                *(flight.call("k", backend.factory("k")) for _ in range(100)),
                return_exceptions=True,
            )
            assert all(isinstance(o, ConnectionError) for o in outcomes)
            assert len(flight) == 0
            assert await flight.call("k", backend.factory("k")) == "value of k #2"
        assert errors == []

    run_virtual(main)
    assert backend.started == ["k", "k"]


def test_cache_never_stores_a_failure(run_virtual: Any) -> None:
    backend = Backend()
    cache = TTLCache(ttl=60)

    async def main() -> None:
        with loop_errors() as errors:
            backend.fail_next = ConnectionError("down")
            outcomes = await asyncio.gather(
                *(cache.get("k", backend.factory("k")) for _ in range(100)),
                return_exceptions=True,
            )
            assert all(isinstance(o, ConnectionError) for o in outcomes)
            assert len(cache) == 0
            value = await cache.get("k", backend.factory("k"))
            assert value == "value of k #2"
            assert await cache.get("k", backend.factory("k")) == value
            assert len(cache) == 1
        assert errors == []

    run_virtual(main)
    assert backend.started == ["k", "k"]


def test_cancelled_load_is_not_stored(run_virtual: Any) -> None:
    backend = Backend()
    cache = TTLCache(ttl=60)

    async def main() -> None:
        caller = asyncio.ensure_future(cache.get("k", backend.factory("k")))
        await asyncio.sleep(0.1)
        caller.cancel()
        await asyncio.gather(caller, return_exceptions=True)
        assert len(cache) == 0
        assert await cache.get("k", backend.factory("k")) == "value of k #2"

    run_virtual(main)


# --- TTLCache: expiry on the loop's clock ----------------------------------------------------


def test_entry_is_fresh_for_ttl_seconds_after_the_load_finished(run_virtual: Any) -> None:
    backend = Backend(delay=0.5)
    cache = TTLCache(ttl=2)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        await cache.get("k", backend.factory("k"))
        loaded_at = loop.time()
        await asyncio.sleep(1.5)
        assert await cache.get("k", backend.factory("k")) == "value of k #1"
        await asyncio.sleep(0.6)
        assert loop.time() >= loaded_at + 2
        assert await cache.get("k", backend.factory("k")) == "value of k #2"

    run_virtual(main)
    assert backend.started == ["k", "k"]


def test_an_expired_entry_is_reloaded_once_however_many_callers_ask(run_virtual: Any) -> None:
    backend = Backend(delay=0.5)
    cache = TTLCache(ttl=1)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for expected in (1, 2, 3):
            start = loop.time()
            values = await asyncio.wait_for(
                asyncio.gather(*(cache.get("k", backend.factory("k")) for _ in range(1000))),
                HANG,
            )
            # every caller waited for the (re)load: none got a stale value
            assert set(values) == {f"value of k #{expected}"}
            assert loop.time() - start >= 0.5
            await asyncio.sleep(1.1)

    run_virtual(main)
    assert backend.started == ["k"] * 3


def test_infinite_ttl_never_expires(run_virtual: Any) -> None:
    backend = Backend()
    cache = TTLCache(ttl=math.inf)

    async def main() -> None:
        await cache.get("k", backend.factory("k"))
        await asyncio.sleep(A_LONG_TIME)
        await cache.get("k", backend.factory("k"))

    run_virtual(main)
    assert backend.started == ["k"]


def test_invalidate_during_a_load_keeps_the_old_value_out(run_virtual: Any) -> None:
    backend = Backend(delay=1.0)
    cache = TTLCache(ttl=60)

    async def main() -> None:
        old = asyncio.ensure_future(cache.get("k", backend.factory("k")))
        await asyncio.sleep(0.5)
        cache.invalidate("k")  # the data changed while the load was reading it
        assert await old == "value of k #1"  # its callers still get an answer
        assert len(cache) == 0  # ...but it is not stored
        assert await cache.get("k", backend.factory("k")) == "value of k #2"
        assert len(cache) == 1
        cache.clear()
        assert len(cache) == 0

    run_virtual(main)


# --- TTLCache: bounded memory --------------------------------------------------------


@settings(max_examples=150, deadline=None, database=None)
@given(
    maxsize=st.integers(min_value=1, max_value=8),
    keys=st.lists(st.integers(min_value=0, max_value=15), max_size=80),
)
def test_lru_bound_holds_for_any_key_sequence(maxsize: int, keys: List[int]) -> None:
    loads: List[int] = []

    async def load(key: int) -> int:
        loads.append(key)
        await asyncio.sleep(0)
        return key * 2

    async def main() -> None:
        cache = TTLCache(ttl=math.inf, maxsize=maxsize)
        model: collections.OrderedDict[int, None] = collections.OrderedDict()
        for key in keys:
            expect_load = key not in model
            before = len(loads)
            assert await cache.get(key, functools.partial(load, key)) == key * 2
            assert (len(loads) == before + 1) == expect_load, (key, list(model))
            model[key] = None
            model.move_to_end(key)
            if len(model) > maxsize:
                model.popitem(last=False)
            assert len(cache) == len(model) <= maxsize

    run_on_test_clock(main)


def test_concurrent_loads_of_many_keys_respect_the_bound(run_virtual: Any) -> None:
    backend = Backend(delay=0.1)
    cache = TTLCache(ttl=60, maxsize=10)

    async def main() -> None:
        await asyncio.gather(*(cache.get(k % 100, backend.factory(k % 100)) for k in range(1000)))
        assert len(cache) == 10
        assert len(cache._loads) == 0  # loads in progress are gone once they finish

    run_virtual(main)
    assert len(backend.started) == 100


# --- coalesce ----------------------------------------------------------------------


def test_decorator_key_is_the_arguments(run_virtual: Any) -> None:
    calls: List[Any] = []

    @coalesce(ttl=30)
    async def lookup(host: str, port: int = 443, *, tls: bool = True) -> str:
        calls.append((host, port, tls))
        await asyncio.sleep(0.1)
        return f"{host}:{port}:{tls}"

    async def main() -> None:
        results = await asyncio.gather(
            *(lookup("a") for _ in range(100)),
            *(lookup("a", tls=False, port=80) for _ in range(100)),
            *(lookup("a", port=80, tls=False) for _ in range(100)),
            lookup("b"),
        )
        assert results == ["a:443:True"] * 100 + ["a:80:False"] * 200 + ["b:443:True"]
        assert calls == [("a", 443, True), ("a", 80, False), ("b", 443, True)]
        await lookup("a")  # cached
        lookup.invalidate("a")  # type: ignore[attr-defined]
        await lookup("a")
        assert calls.count(("a", 443, True)) == 2

    run_virtual(main)


def test_decorator_without_ttl_shares_only_calls_in_progress(run_virtual: Any) -> None:
    calls: List[int] = []

    @coalesce()
    async def work(n: int) -> int:
        calls.append(n)
        await asyncio.sleep(0.1)
        return n

    async def main() -> None:
        assert await asyncio.gather(*(work(1) for _ in range(10))) == [1] * 10
        assert await work(1) == 1
        assert calls == [1, 1]

    run_virtual(main)


def test_decorator_keeps_state_per_event_loop(run_virtual: Any) -> None:
    calls: List[int] = []

    @coalesce(ttl=3600)  # decorated outside any loop, as at import time
    async def work(n: int) -> int:
        calls.append(n)
        await asyncio.sleep(0.1)
        return n

    async def main() -> None:
        assert await asyncio.gather(*(work(7) for _ in range(10))) == [7] * 10

    for _ in range(3):
        run_virtual(main)
    assert calls == [7, 7, 7]  # one per loop: a loop's cache is not used by another


def test_decorator_refuses_unhashable_arguments_clearly(run_virtual: Any) -> None:
    calls: List[Any] = []

    @coalesce(ttl=10)
    async def search(terms: Any, *, filters: Any = None) -> int:
        calls.append(terms)
        return 0

    async def main() -> None:
        with pytest.raises(TypeError, match=r"^search\(\) argument 1 is an unhashable list"):
            await search(["a", "b"])
        with pytest.raises(TypeError, match=r"argument 'filters' is an unhashable dict"):
            await search("a", filters={"lang": "en"})
        with pytest.raises(TypeError, match=r"argument 1 is an unhashable set"):
            await search({"a"})
        assert await search(("a", "b"), filters=frozenset({"en"})) == 0
        assert calls == [("a", "b")]  # the refused calls never ran

    run_virtual(main)


def test_lru_cache_on_a_coroutine_function_fails_as_the_chapter_says(run_virtual: Any) -> None:
    @functools.lru_cache(maxsize=None)
    async def get(n: int) -> int:
        await asyncio.sleep(0)
        return n

    async def main() -> None:
        assert await get(1) == 1
        with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
            await get(1)

    run_virtual(main)


# --- bad input ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "ttl, error, message",
    [
        (0, ValueError, "ttl must be > 0 seconds, got 0"),
        (-1, ValueError, "ttl must be > 0"),
        (float("nan"), ValueError, "ttl must be > 0"),
        ("60", TypeError, "ttl must be a number of seconds, got '60'"),
        (True, TypeError, "ttl must be a number"),
        (None, TypeError, "ttl must be a number"),
    ],
)
def test_ttl_cache_refuses_a_bad_ttl(ttl: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(")):
        TTLCache(ttl=ttl)


@pytest.mark.parametrize(
    "maxsize, error",
    [(0, ValueError), (-5, ValueError), (1.5, TypeError), (True, TypeError), (None, TypeError)],
)
def test_bad_maxsize_is_refused(maxsize: Any, error: type) -> None:
    with pytest.raises(error, match="maxsize must be"):
        TTLCache(ttl=1, maxsize=maxsize)
    with pytest.raises(error, match="maxsize must be"):
        coalesce(ttl=1, maxsize=maxsize)


def test_coalesce_refuses_a_negative_ttl_but_accepts_zero() -> None:
    with pytest.raises(ValueError, match="ttl must be >= 0 seconds"):
        coalesce(ttl=-1)
    coalesce(ttl=0)


def test_unhashable_keys_are_refused(run_virtual: Any) -> None:
    async def main() -> None:
        flight, cache = SingleFlight(), TTLCache(ttl=1)
        with pytest.raises(TypeError, match="key must be hashable, got list"):
            await flight.call([1], Backend().factory(1))
        with pytest.raises(TypeError, match="key must be hashable, got dict"):
            await cache.get({}, Backend().factory(1))
        with pytest.raises(TypeError, match="key must be hashable"):
            cache.invalidate([1])
        assert len(flight) == 0 and len(cache) == 0

    run_virtual(main)


@pytest.mark.parametrize("kind", ["flight", "cache"])
def test_use_from_a_second_event_loop_is_refused(run_virtual: Any, kind: str) -> None:
    shared: Dict[str, Any] = {"flight": SingleFlight(), "cache": TTLCache(ttl=60)}
    obj = shared[kind]

    async def main() -> None:
        call = obj.call if kind == "flight" else obj.get
        await call("k", Backend(delay=0.1).factory("k"))

    run_virtual(main)
    with pytest.raises(RuntimeError, match="is bound to a different event loop"):
        run_virtual(main)
