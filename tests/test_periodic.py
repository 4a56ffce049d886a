"""Behaviour, fault, bad-input and load tests for recipes/periodic.py."""

from __future__ import annotations

import asyncio
import logging
import math
import random
import sys
from typing import Any, List, Tuple

import pytest

from recipes.periodic import PeriodicTask
from tests.conftest import asyncio_run_returns

HANG = 3600.0  # generous timeout on the virtual clock: turns a hang into a failure


def _ms(rng: random.Random, most: float) -> float:
    # Whole milliseconds: the fake clock of looptime < 0.9 (Python 3.8-3.10)
    # never reaches a deadline that is not a whole number of microseconds.
    return round(rng.uniform(0.0, most), 3)


async def _run_until_ticks(periodic: PeriodicTask, ticks: int) -> None:
    periodic.start()
    while periodic.ticks < ticks:
        await asyncio.sleep(periodic.interval / 2)
    await periodic.stop()


@pytest.mark.parametrize("interval", [0.1, 0.25, 1 / 3, 7.0])
def test_thousand_ticks_start_exactly_on_schedule(run_virtual: Any, interval: float) -> None:
    async def main() -> Tuple[float, List[float]]:
        loop = asyncio.get_running_loop()
        rng = random.Random(1)
        starts: List[float] = []

        async def work() -> None:
            starts.append(loop.time())
            await asyncio.sleep(_ms(rng, interval * 0.9))  # varying work, never an overrun

        periodic = PeriodicTask(work, interval)
        await asyncio.wait_for(_run_until_ticks(periodic, 1000), HANG * 10)
        assert periodic.started_at is not None
        return periodic.started_at, starts

    started_at, starts = run_virtual(main)
    assert len(starts) >= 1000
    for n, started in enumerate(starts):
        assert abs(started - (started_at + n * interval)) <= 1e-6, f"tick {n} drifted"


def test_failing_ticks_do_not_break_the_schedule(run_virtual: Any) -> None:
    async def main() -> Any:
        loop = asyncio.get_running_loop()
        starts: List[float] = []
        errors: List[BaseException] = []

        async def work() -> None:
            n = len(starts)
            starts.append(loop.time())
            await asyncio.sleep(0.05)
            if n % 7 == 3:
                raise ConnectionError(f"tick {n}")

        periodic = PeriodicTask(work, 0.2, on_error=errors.append)
        await asyncio.wait_for(_run_until_ticks(periodic, 1000), HANG)
        return periodic.started_at, starts, errors, periodic.errors

    started_at, starts, errors, count = run_virtual(main)
    for n, started in enumerate(starts):
        assert abs(started - (started_at + n * 0.2)) <= 1e-6
    failing = [n for n in range(len(starts)) if n % 7 == 3]
    assert [str(exc) for exc in errors] == [f"tick {n}" for n in failing]
    assert count == len(failing)


def test_failing_ticks_are_logged_without_on_error(
    run_virtual: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> int:
        async def broken() -> None:
            raise ValueError("boom")

        periodic = PeriodicTask(broken, 1.0, name="cache-refresh")
        await _run_until_ticks(periodic, 3)
        return periodic.ticks

    with caplog.at_level(logging.ERROR, logger="recipes.periodic"):
        ticks = run_virtual(main)
    assert len(caplog.records) == ticks >= 3
    assert all("cache-refresh" in record.getMessage() for record in caplog.records)
    assert all(record.exc_info and record.exc_info[0] is ValueError for record in caplog.records)


def test_skip_policy_drops_missed_ticks_and_stays_on_the_grid(run_virtual: Any) -> None:
    async def main() -> Any:
        loop = asyncio.get_running_loop()
        starts: List[float] = []

        async def work() -> None:
            starts.append(loop.time())
            if len(starts) in (2, 5):
                await asyncio.sleep(0.35)  # misses the next three deadlines
            elif len(starts) == 8:
                await asyncio.sleep(0.3)  # misses two; ends exactly on the third, which runs

        periodic = PeriodicTask(work, 0.1)
        await asyncio.wait_for(_run_until_ticks(periodic, 12), HANG)
        return periodic.started_at, starts, periodic.skipped

    started_at, starts, skipped = run_virtual(main)
    offsets = [round((t - started_at) / 0.1, 6) for t in starts]
    # tick 1 runs 0.35 s: deadlines 2, 3, 4 pass, 5 is next; likewise after 7;
    # tick 13 ends at 1.6 sharp: 14 and 15 are skipped, 16 is due and runs at once
    assert offsets[:12] == [0, 1, 5, 6, 7, 11, 12, 13, 16, 17, 18, 19]
    assert skipped == 3 + 3 + 2
    assert all(offset == int(offset) for offset in offsets)  # never off the grid


def test_catch_up_policy_runs_missed_ticks_back_to_back(run_virtual: Any) -> None:
    async def main() -> Any:
        loop = asyncio.get_running_loop()
        starts: List[float] = []

        async def work() -> None:
            starts.append(loop.time())
            if len(starts) == 2:
                await asyncio.sleep(0.35)

        periodic = PeriodicTask(work, 0.1, overrun="catch_up")
        await asyncio.wait_for(_run_until_ticks(periodic, 8), HANG)
        return periodic.started_at, starts, periodic.skipped

    started_at, starts, skipped = run_virtual(main)
    offsets = [round(t - started_at, 6) for t in starts[:8]]
    # tick 1 ends at 0.45: ticks 2, 3, 4 (due 0.2, 0.3, 0.4) run at once; 5 is on time
    assert offsets == [0.0, 0.1, 0.45, 0.45, 0.45, 0.5, 0.6, 0.7]
    assert skipped == 0


def test_timeout_turns_a_hanging_tick_into_an_error(run_virtual: Any) -> None:
    async def main() -> Any:
        loop = asyncio.get_running_loop()
        starts: List[float] = []
        errors: List[BaseException] = []
        cleaned: List[int] = []

        async def work() -> None:
            n = len(starts)
            starts.append(loop.time())
            try:
                if n == 1:
                    await asyncio.sleep(HANG)
            finally:
                cleaned.append(n)

        periodic = PeriodicTask(work, 1.0, timeout=0.5, on_error=errors.append)
        await asyncio.wait_for(_run_until_ticks(periodic, 4), HANG)
        return periodic.started_at, starts, errors, cleaned

    started_at, starts, errors, cleaned = run_virtual(main)
    assert [round(t - started_at, 6) for t in starts[:4]] == [0.0, 1.0, 2.0, 3.0]
    assert len(errors) == 1 and isinstance(errors[0], asyncio.TimeoutError)
    assert cleaned[:4] == [0, 1, 2, 3]


def test_stop_cancels_the_running_tick_and_awaits_its_cleanup(run_virtual: Any) -> None:
    async def main() -> List[str]:
        events: List[str] = []

        async def work() -> None:
            events.append("tick")
            try:
                await asyncio.sleep(5)
                events.append("finished")
            finally:
                await asyncio.sleep(0.1)  # asynchronous cleanup
                events.append("cleaned up")

        periodic = PeriodicTask(work, 10)
        periodic.start()
        await asyncio.sleep(1)
        assert periodic.running
        await periodic.stop()
        events.append("stopped")
        assert not periodic.running
        return events

    assert run_virtual(main) == ["tick", "cleaned up", "stopped"]


def test_stop_with_grace_lets_the_tick_finish(run_virtual: Any) -> None:
    async def main() -> List[Any]:
        loop = asyncio.get_running_loop()
        outcomes: List[Any] = []
        for duration, grace in ((2.0, 5.0), (8.0, 5.0)):
            events: List[str] = []

            async def work(duration: float = duration, events: List[str] = events) -> None:
                try:
                    await asyncio.sleep(duration)
                    events.append("finished")
                finally:
                    events.append("cleaned up")

            periodic = PeriodicTask(work, 60)
            periodic.start()
            await asyncio.sleep(1)
            before = loop.time()
            await periodic.stop(grace=grace)
            outcomes.append((events, round(loop.time() - before, 6)))
        return outcomes

    assert run_virtual(main) == [
        (["finished", "cleaned up"], 1.0),  # finished within the grace period
        (["cleaned up"], 5.0),  # cancelled when the grace period ran out
    ]


def test_stop_between_ticks_returns_at_once(run_virtual: Any) -> None:
    async def main() -> Tuple[float, int]:
        loop = asyncio.get_running_loop()

        async def work() -> None:
            pass

        periodic = PeriodicTask(work, 100)
        periodic.start()
        await asyncio.sleep(1)
        before = loop.time()
        await periodic.stop(grace=50)
        return loop.time() - before, periodic.ticks

    elapsed, ticks = run_virtual(main)
    assert elapsed == 0
    assert ticks == 1


def test_stop_from_inside_a_tick_ends_the_task_after_that_tick(run_virtual: Any) -> None:
    async def main() -> int:
        async def work() -> None:
            if periodic.ticks == 3:
                await periodic.stop()

        periodic = PeriodicTask(work, 0.5)
        periodic.start()
        await asyncio.sleep(10)
        assert not periodic.running
        await periodic.stop()  # harmless afterwards
        return periodic.ticks

    assert run_virtual(main) == 3


def test_tick_that_swallows_cancellation_cannot_keep_the_task_alive(run_virtual: Any) -> None:
    async def main() -> int:
        async def stubborn() -> None:
            try:
                await asyncio.sleep(5)
            except asyncio.CancelledError:
                pass  # bad practice, but stop() must still end the task

        periodic = PeriodicTask(stubborn, 1)
        periodic.start()
        await asyncio.sleep(0.5)
        await asyncio.wait_for(periodic.stop(), HANG)
        assert not periodic.running
        return periodic.ticks

    assert run_virtual(main) == 1


def test_a_cancel_landing_as_a_timed_tick_ends_stops_the_task(run_virtual: Any) -> None:
    """CPython gh-86296: before 3.12, wait_for() dropped a cancel that arrived as the
    tick finished, and the task ticked on.  asyncio.run() cancels leftover tasks
    once at exit, so a lost cancel there hangs the program."""

    async def main() -> Tuple[bool, int]:
        async def tick() -> None:
            await asyncio.sleep(0.1)
            if periodic.ticks == 2:
                (runner,) = [t for t in asyncio.all_tasks() if t.get_name() == "periodic-tick"]
                runner.cancel()  # lands in the step in which this tick ends

        periodic = PeriodicTask(tick, 1, timeout=5)
        periodic.start()
        await asyncio.sleep(5)
        outcome = periodic.running, periodic.ticks
        await periodic.stop()
        return outcome

    assert run_virtual(main) == (False, 2)


@pytest.mark.parametrize("grace", [0.0, 10.0])
def test_a_cancel_while_stop_waits_still_ends_the_tick_and_awaits_its_cleanup(
    run_virtual: Any, grace: float
) -> None:
    """stop() cancelled in turn (say, by a shutdown timeout) while it waits."""

    async def main() -> Any:
        events: List[str] = []

        async def work() -> None:
            try:
                await asyncio.sleep(5)
                events.append("finished")
            finally:
                await asyncio.sleep(1)  # a slow asynchronous cleanup
                events.append("cleaned up")

        periodic = PeriodicTask(work, 60)
        periodic.start()
        await asyncio.sleep(1)
        stopper = asyncio.create_task(periodic.stop(grace=grace))
        await asyncio.sleep(0.5)  # in the grace period, or in the tick's cleanup
        stopper.cancel()
        stopper.add_done_callback(lambda _: events.append("stop() ended"))
        await asyncio.wait([stopper], timeout=HANG)
        await asyncio.sleep(10)  # a task left running would tick or finish meanwhile
        return stopper.cancelled(), events, periodic.running

    assert run_virtual(main) == (True, ["cleaned up", "stop() ended"], False)


def test_on_error_that_raises_surfaces_in_stop(run_virtual: Any) -> None:
    async def main() -> None:
        async def broken() -> None:
            raise ValueError("tick failed")

        def strict(exc: Exception) -> None:
            raise RuntimeError("error handler failed") from exc

        periodic = PeriodicTask(broken, 1, on_error=strict)
        periodic.start()
        await asyncio.sleep(0.5)
        assert not periodic.running  # the handler's exception ended the task
        with pytest.raises(RuntimeError, match="error handler failed"):
            await periodic.stop()

    run_virtual(main)


def test_restart_begins_a_new_schedule(run_virtual: Any) -> None:
    async def main() -> Any:
        loop = asyncio.get_running_loop()
        starts: List[float] = []

        async def work() -> None:
            starts.append(loop.time())

        async with PeriodicTask(work, 1.0) as periodic:
            with pytest.raises(RuntimeError, match="already running"):
                periodic.start()
            await asyncio.sleep(2.5)
        await asyncio.sleep(0.3)
        async with periodic:
            second_start = periodic.started_at
            await asyncio.sleep(1.5)
        return starts, second_start, periodic.ticks

    starts, second_start, ticks = run_virtual(main)
    assert [round(t, 6) for t in starts] == [0.0, 1.0, 2.0, 2.8, 3.8]
    assert second_start == pytest.approx(2.8)
    assert ticks == 5  # counted since the object was created


def test_jitter_delays_ticks_within_bounds_without_drift(run_virtual: Any) -> None:
    async def main() -> Any:
        loop = asyncio.get_running_loop()
        starts: List[float] = []

        async def work() -> None:
            starts.append(loop.time())

        periodic = PeriodicTask(work, 1.0, jitter=0.2)
        await asyncio.wait_for(_run_until_ticks(periodic, 300), HANG)
        return periodic.started_at, starts

    started_at, starts = run_virtual(main)
    lateness = [t - (started_at + n * 1.0) for n, t in enumerate(starts)]
    assert all(-1e-6 <= late < 0.2 + 1e-6 for late in lateness)
    assert len({round(late, 3) for late in lateness}) > 100  # really random
    assert max(lateness) > 0.15  # and spread over the whole range


def test_start_needs_a_running_loop() -> None:
    async def work() -> None:
        pass

    with pytest.raises(RuntimeError, match="no running event loop"):
        PeriodicTask(work, 1).start()


def test_repr_shows_the_state(run_virtual: Any) -> None:
    async def main() -> List[str]:
        async def work() -> None:
            pass

        periodic = PeriodicTask(work, 2.5)
        texts = [repr(periodic)]
        periodic.start()
        await asyncio.sleep(0)
        texts.append(repr(periodic))
        await periodic.stop()
        return texts

    assert run_virtual(main) == [
        "<PeriodicTask 'work' every 2.5s stopped ticks=0 skipped=0 errors=0>",
        "<PeriodicTask 'work' every 2.5s running ticks=1 skipped=0 errors=0>",
    ]


async def _noop() -> None:
    pass


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        ((_noop, 0), {}, ValueError, "interval must be a finite number of seconds > 0, got 0"),
        ((_noop, -1.5), {}, ValueError, "interval must be .* > 0, got -1.5"),
        ((_noop, math.nan), {}, ValueError, "interval must be"),
        ((_noop, math.inf), {}, ValueError, "interval must be"),
        ((_noop, "5"), {}, TypeError, "interval must be a number"),
        ((_noop, True), {}, TypeError, "interval must be a number"),
        (("not callable", 1), {}, TypeError, "func must be an async callable"),
        ((_noop, 1), {"overrun": "burst"}, ValueError, "overrun must be 'skip' or 'catch_up'"),
        ((_noop, 1), {"timeout": 0}, ValueError, "timeout must be"),
        ((_noop, 1), {"timeout": -2}, ValueError, "timeout must be"),
        ((_noop, 1), {"jitter": -0.1}, ValueError, "jitter must be >= 0"),
        ((_noop, 1), {"jitter": 1}, ValueError, r"jitter must be >= 0 and < interval \(1\)"),
    ],
)
def test_bad_settings_raise_at_construction(
    args: Any, kwargs: Any, error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        PeriodicTask(*args, **kwargs)


def test_bad_grace_raises(run_virtual: Any) -> None:
    async def main() -> None:
        periodic = PeriodicTask(_noop, 1)
        periodic.start()
        with pytest.raises(ValueError, match="grace must be"):
            await periodic.stop(grace=-1)
        await periodic.stop()

    run_virtual(main)


# --- a cancellation that the tick turns into an error ------------------------------

# What a tick may make of the CancelledError that stops its task: a cleanup that
# raises in ``finally``, an ``except CancelledError`` that raises something else,
# or one that swallows it and returns.
TURNS = ["raises in finally", "converts", "swallows"]
NO_CANCELLING = (
    "Task.cancelling() is 3.11+: on 3.8-3.10 only stop() is recognised (see the chapter)"
)


async def _turning_tick(behaviour: str, cleaned: List[str]) -> None:
    try:
        await asyncio.sleep(HANG)
    except asyncio.CancelledError:
        cleaned.append("cleanup")
        if behaviour == "converts":
            raise OSError("goodbye failed") from None
        if behaviour == "swallows":
            return
        raise
    finally:
        if behaviour == "raises in finally":
            raise OSError("goodbye failed")


@pytest.mark.parametrize("timeout", [None, 60.0])
@pytest.mark.parametrize("behaviour", TURNS)
def test_a_cancel_from_outside_ends_the_task_whatever_the_tick_makes_of_it(
    run_virtual: Any, behaviour: str, timeout: Any
) -> None:
    """As asyncio.run() cancels a task left running at exit."""
    if timeout is None and sys.version_info < (3, 11):
        pytest.skip(NO_CANCELLING)

    async def main() -> Any:
        cleaned: List[str] = []
        errors: List[str] = []

        async def tick() -> None:
            await _turning_tick(behaviour, cleaned)

        periodic = PeriodicTask(
            tick, 1, timeout=timeout, on_error=lambda e: errors.append(repr(e))
        )
        periodic.start()
        await asyncio.sleep(0.5)
        (runner,) = [t for t in asyncio.all_tasks() if t.get_name() == "periodic-tick"]
        runner.cancel()
        await asyncio.wait([runner], timeout=HANG)
        outcome = (
            "cancelled" if runner.cancelled() else "running" if not runner.done() else "ended"
        )
        await periodic.stop()  # ends a task that ticked on, so that the assertion reports
        return outcome, periodic.ticks, cleaned, errors

    expected_errors = [] if behaviour == "swallows" else ["OSError('goodbye failed')"]
    assert run_virtual(main) == ("cancelled", 1, ["cleanup"], expected_errors)


@pytest.mark.parametrize("behaviour", TURNS)
def test_stop_ends_the_task_whatever_the_tick_makes_of_the_cancellation(
    run_virtual: Any, behaviour: str
) -> None:
    """Every version: the loop also checks the stop flag that stop() sets."""

    async def main() -> Any:
        cleaned: List[str] = []
        errors: List[str] = []

        async def tick() -> None:
            await _turning_tick(behaviour, cleaned)

        periodic = PeriodicTask(tick, 1, on_error=lambda e: errors.append(repr(e)))
        periodic.start()
        await asyncio.sleep(0.5)
        await asyncio.wait_for(periodic.stop(), HANG)
        await asyncio.sleep(3)  # no tick after stop()
        return periodic.running, periodic.ticks, cleaned, errors

    expected_errors = [] if behaviour == "swallows" else ["OSError('goodbye failed')"]
    assert run_virtual(main) == (False, 1, ["cleanup"], expected_errors)


@pytest.mark.parametrize("timeout", [None, 60.0])
def test_asyncio_run_ends_a_forgotten_periodic_task_whose_tick_cleanup_raises(
    timeout: Any,
) -> None:
    if timeout is None and sys.version_info < (3, 11):
        pytest.skip(NO_CANCELLING)
    periodics: List[PeriodicTask] = []
    errors: List[Exception] = []

    async def tick() -> None:
        try:
            await asyncio.sleep(HANG)
        finally:
            raise ConnectionResetError("goodbye failed")

    async def main() -> None:
        periodic = PeriodicTask(tick, 0.01, timeout=timeout, on_error=errors.append)
        periodics.append(periodic)
        periodic.start()  # never stopped: asyncio.run() cancels its task at exit
        await asyncio.sleep(0.05)

    assert asyncio_run_returns(main), "asyncio.run() hung in its shutdown"
    assert not periodics[0].running
    assert periodics[0].ticks == 1
    assert [type(error) for error in errors] == [ConnectionResetError]
