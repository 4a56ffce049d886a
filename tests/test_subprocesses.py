"""Behaviour, fault, bad-input and load tests for recipes/subprocesses.py.

Every test runs real children of ``sys.executable`` on the real clock (a virtual
clock would jump past their answers) and ends with the leak check of the
``no_leaks`` fixture: no new file descriptor in ``/proc/self/fd`` and no new child
of this process in ``/proc``, running or zombie.  Waits are bounded with
``asyncio.wait_for``, so a hang fails the test instead of stalling the run.
"""

from __future__ import annotations

import asyncio
import gc
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, Iterator, List, Optional, Set, Tuple, TypeVar

import pytest

from recipes.subprocesses import (
    open_process,
    run_many,
    run_process,
    stop_process,
    stream_output,
    supervise,
)

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/fd").is_dir(), reason="the leak checks read /proc (Linux)"
)

T = TypeVar("T")
PY = sys.executable
BOUND = 20.0  # seconds: the longest any single wait in these tests may take

FLOOD = (
    "import sys\n"
    "line = 'x' * 999 + '\\n'\n"
    "for _ in range({n}):\n"
    "    sys.stdout.write(line)\n"
    "    sys.stderr.write(line)\n"
)
IGNORES_SIGTERM = (
    "import signal, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)
SLEEPER = "import time; print('ready', flush=True); time.sleep(60)"


# --- leak checks -----------------------------------------------------------------


def children() -> Dict[int, str]:
    """pid -> state letter of every child of this process (zombies included)."""
    me = os.getpid()
    found: Dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may contain spaces and parentheses.
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        if int(ppid) == me:
            found[int(entry)] = state
    return found


def running_children_with(token: str) -> int:
    """How many children of this process are alive (not zombies) with ``token`` in their
    command line: the processes of one batch, whatever else the machine is doing."""
    count = 0
    for pid, state in children().items():
        if state == "Z":
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        count += token.encode() in cmdline
    return count


def open_fds() -> Set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture
def no_leaks() -> Iterator[None]:
    fds, kids = open_fds(), set(children())
    yield
    gc.collect()
    leaked_kids = {pid: state for pid, state in children().items() if pid not in kids}
    assert not leaked_kids, f"children left behind (pid: state): {leaked_kids}"
    if not kids:  # nothing of anyone else's to steal: no child at all, not even a zombie
        with pytest.raises(ChildProcessError):
            os.waitpid(-1, os.WNOHANG)
    leaked_fds = {fd: _target(fd) for fd in open_fds() - fds}
    assert not leaked_fds, f"file descriptors left open: {leaked_fds}"


def _target(fd: str) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "?"


def arun(main: Callable[[], Awaitable[T]]) -> T:
    """Run ``main()`` on a new real-clock loop; fail if it leaves tasks behind."""
    loop = asyncio.new_event_loop()
    errors: List[Dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    try:
        result = loop.run_until_complete(main())
        leftover = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in leftover:
            task.cancel()
        if leftover:
            loop.run_until_complete(asyncio.gather(*leftover, return_exceptions=True))
        assert not leftover, f"left {len(leftover)} task(s) running: {leftover!r}"
        loop.run_until_complete(loop.shutdown_asyncgens())
        return result
    finally:
        loop.close()
        gc.collect()  # "Future exception was never retrieved" is reported on collection
        messages = [str(context.get("message")) for context in errors]
        assert not messages, f"the event loop reported errors: {messages}"


async def bounded(awaitable: Awaitable[T]) -> T:
    return await asyncio.wait_for(awaitable, BOUND)


async def settle(task: asyncio.Future[Any]) -> None:
    """Wait (bounded) for ``task`` to finish, whatever its outcome."""
    done, _ = await asyncio.wait([task], timeout=BOUND)
    assert done, "the task did not finish after its cancellation"


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# --- running and capturing -----------------------------------------------------------


def test_run_process_captures_status_stdout_and_stderr(no_leaks: None) -> None:
    code = "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"
    done = arun(lambda: bounded(run_process([PY, "-c", code])))
    assert (done.args, done.returncode, done.stdout, done.stderr) == (
        [PY, "-c", code],
        3,
        b"out\n",
        b"err\n",
    )


def test_run_process_check_raises_with_the_output(no_leaks: None) -> None:
    code = "import sys; print('partial'); sys.exit('broken')"
    with pytest.raises(subprocess.CalledProcessError) as caught:
        arun(lambda: bounded(run_process([PY, "-c", code], check=True)))
    assert caught.value.returncode == 1
    assert caught.value.output == b"partial\n"
    assert caught.value.stderr == b"broken\n"


def test_a_flood_on_both_pipes_is_read_in_full(no_leaks: None) -> None:
    # 5 MB on each pipe, written alternately: a reader of one pipe only would
    # deadlock within the first 64 KiB of the other.
    code = FLOOD.format(n=5000)
    done = arun(lambda: bounded(run_process([PY, "-c", code])))
    assert done.returncode == 0
    assert len(done.stdout) == len(done.stderr) == 5000 * 1000


def test_stream_output_delivers_every_line_of_a_flood(no_leaks: None) -> None:
    counts = {"stdout": 0, "stderr": 0}

    def count(stream: str, line: str) -> None:
        assert line == "x" * 999
        counts[stream] += 1

    status = arun(lambda: bounded(stream_output([PY, "-c", FLOOD.format(n=5000)], count)))
    assert status == 0
    assert counts == {"stdout": 5000, "stderr": 5000}


def test_a_slow_async_callback_slows_the_child_instead_of_buffering(no_leaks: None) -> None:
    seen: List[str] = []

    async def slow(stream: str, line: str) -> None:
        await asyncio.sleep(0.001)
        seen.append(line)

    code = "for n in range(300): print(n)"
    assert arun(lambda: bounded(stream_output([PY, "-c", code], slow))) == 0
    assert seen == [str(n) for n in range(300)]


def test_stream_output_cuts_over_long_lines_and_keeps_going(no_leaks: None) -> None:
    code = (
        "import sys\n"
        "sys.stdout.write('a' * 1_000_000 + '\\n')\n"
        "sys.stdout.write('b\\r\\n')\n"
        "sys.stdout.write('c' * 5000)\n"  # the last line, cut, and without a newline
    )
    lines: List[Tuple[str, int]] = []
    status = arun(
        lambda: bounded(
            stream_output(
                [PY, "-c", code], lambda s, line: lines.append((line[:1], len(line))), limit=4096
            )
        )
    )
    assert status == 0
    assert lines == [("a", 4096), ("b", 1), ("c", 4096)]


def test_stream_output_callback_error_stops_the_child(no_leaks: None) -> None:
    def explode(stream: str, line: str) -> None:
        raise LookupError(line)

    with pytest.raises(LookupError, match="ready"):
        arun(lambda: bounded(stream_output([PY, "-c", SLEEPER], explode, grace=0.2)))


# --- standard input ------------------------------------------------------------------


def test_input_larger_than_the_pipe_is_written_in_full(no_leaks: None) -> None:
    code = "import sys; print(len(sys.stdin.buffer.read()))"
    data = os.urandom(3_000_000)
    done = arun(lambda: bounded(run_process([PY, "-c", code], input=data)))
    assert done.stdout == b"3000000\n"


@pytest.mark.parametrize(
    "code",
    [
        "raise SystemExit(4)",  # never reads stdin
        "import os, time; os.close(0); time.sleep(0.2); raise SystemExit(4)",  # closes it
        "import sys; sys.stdin.buffer.read(10); raise SystemExit(4)",  # reads a little
    ],
    ids=["never-reads", "closes-stdin", "reads-a-little"],
)
def test_a_child_that_does_not_read_its_input_is_no_error(no_leaks: None, code: str) -> None:
    done = arun(lambda: bounded(run_process([PY, "-c", code], input=b"z" * 10_000_000)))
    assert done.returncode == 4


def test_a_conversation_through_open_process(no_leaks: None) -> None:
    code = "import sys\nfor line in sys.stdin:\n    print(int(line) * 2, flush=True)\n"

    async def main() -> List[bytes]:
        answers = []
        async with open_process(
            [PY, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        ) as p:
            assert p.stdin is not None and p.stdout is not None
            for n in range(5):
                p.stdin.write(b"%d\n" % n)
                await p.stdin.drain()
                answers.append(await bounded(p.stdout.readline()))
            p.stdin.close()
            assert await bounded(p.wait()) == 0  # it exits on end-of-file
        return answers

    assert arun(main) == [b"0\n", b"2\n", b"4\n", b"6\n", b"8\n"]


# --- timeouts: terminate, kill, reap ---------------------------------------------------


def test_timeout_kills_a_child_that_ignores_sigterm(no_leaks: None) -> None:
    with pytest.raises(subprocess.TimeoutExpired) as caught:
        arun(lambda: bounded(run_process([PY, "-c", IGNORES_SIGTERM], timeout=1.0, grace=0.2)))
    assert caught.value.timeout == 1.0
    assert caught.value.output == b"ready\n"


def test_stop_process_terminates_first_and_kills_only_after_the_grace(no_leaks: None) -> None:
    async def stop(code: str, grace: float) -> int:
        async with open_process([PY, "-c", code], stdout=subprocess.PIPE) as p:
            assert p.stdout is not None
            assert await bounded(p.stdout.readline()) == b"ready\n"
            return await bounded(stop_process(p, grace=grace))

    # A child that honours SIGTERM gets the chance to (a generous grace: no race).
    assert arun(lambda: stop(SLEEPER, 10.0)) == -signal.SIGTERM
    # One that ignores it is killed once the grace period is over.
    assert arun(lambda: stop(IGNORES_SIGTERM, 0.2)) == -signal.SIGKILL
    # grace=0 kills at once.
    assert arun(lambda: stop(SLEEPER, 0)) == -signal.SIGKILL


def test_stop_process_cancelled_in_the_grace_period_kills_at_once(no_leaks: None) -> None:
    async def main() -> Tuple[Optional[int], bool]:
        async with open_process([PY, "-c", IGNORES_SIGTERM], stdout=subprocess.PIPE) as p:
            assert p.stdout is not None
            await bounded(p.stdout.readline())
            # A grace period far longer than BOUND: only an early kill ends this in time.
            stopping = asyncio.ensure_future(stop_process(p, grace=3600))
            await asyncio.sleep(0.2)
            stopping.cancel()
            await settle(stopping)
            return p.returncode, stopping.cancelled()

    assert arun(main) == (-signal.SIGKILL, True)


def test_stop_process_on_a_finished_child_just_reaps_it(no_leaks: None) -> None:
    async def main() -> Tuple[int, int]:
        p = await asyncio.create_subprocess_exec(PY, "-c", "raise SystemExit(5)")
        first = await bounded(p.wait())
        return first, await stop_process(p)

    assert arun(main) == (5, 5)


def test_stopping_a_child_that_just_exited_keeps_its_exit_status(no_leaks: None) -> None:
    # The child exits while the loop is blocked, so asyncio has not reaped it yet
    # (with the pidfd watcher of 3.12+; the thread of older versions reaps at
    # once).  Signalling it through Popen would reap it first, and asyncio would
    # report 255 ("Unknown child process pid ..." / "exit status already read").
    async def main() -> Tuple[int, int]:
        statuses = []
        for _ in range(3):
            p = await asyncio.create_subprocess_exec(PY, "-c", "raise SystemExit(6)")
            time.sleep(0.5)  # blocks the loop on purpose: the child is a zombie now
            statuses.append(await bounded(stop_process(p, grace=0.2)))
        return statuses[0], len(set(statuses))

    assert arun(main) == (6, 1)


def test_a_child_can_write_its_last_words_while_it_stops(no_leaks: None) -> None:
    # On SIGTERM the child writes 1 MB more to a pipe nobody reads any more: the
    # stop must keep reading, or the child blocks and is killed after the grace.
    # The handler writes with os.write: SIGTERM may arrive while print() is still inside
    # sys.stdout, and writing there again is a "reentrant call" RuntimeError.
    code = (
        "import os, signal, time\n"
        "def bye(*_):\n"
        "    data = b'z' * 1_000_000\n"
        "    while data:\n"
        "        data = data[os.write(1, data):]\n"
        "    os._exit(0)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        "os.write(1, b'ready\\n')\n"
        "time.sleep(60)\n"
    )

    async def main() -> Optional[int]:
        async with open_process([PY, "-c", code], stdout=subprocess.PIPE, grace=10) as p:
            assert p.stdout is not None
            assert await bounded(p.stdout.readline()) == b"ready\n"
        return p.returncode

    assert arun(main) == 0


def test_unread_output_does_not_keep_pipes_open(no_leaks: None) -> None:
    # The child fills both pipes and blocks; nobody reads; leaving the block must
    # still kill it, reap it and close both pipes (the no_leaks fixture checks).
    async def main() -> Optional[int]:
        command = [PY, "-c", FLOOD.format(n=100_000)]
        async with open_process(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, grace=0.2
        ) as p:
            await asyncio.sleep(0.5)
        return p.returncode

    assert arun(main) == -signal.SIGTERM


@pytest.mark.parametrize("child_stays", [False, True], ids=["child-exits", "child-stays"])
def test_a_grandchild_holding_the_pipes_cannot_hang_run_process(
    no_leaks: None, child_stays: bool
) -> None:
    # The child starts a grandchild that inherits stdout and prints its pid; then it
    # exits, or stays until it is stopped.  Either way stdout never reaches
    # end-of-file while the grandchild lives (and on 3.11-3.13, Process.wait()
    # does not return before it does).
    code = (
        "import subprocess, sys, time\n"
        "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(g.pid, flush=True)\n"
    ) + ("time.sleep(60)\n" if child_stays else "")
    with pytest.raises(subprocess.TimeoutExpired) as caught:
        arun(lambda: bounded(run_process([PY, "-c", code], timeout=1.0, grace=3600)))
    grandchild = int(caught.value.output)
    try:
        assert pid_exists(grandchild)  # still running: not ours to stop
    finally:
        os.kill(grandchild, signal.SIGKILL)


# --- cancellation at each stage -----------------------------------------------------


@pytest.mark.parametrize("spins", [0, 1, 2, 3, 5, 8, 13, 50])
def test_cancelling_run_process_after_n_loop_iterations_leaks_nothing(
    no_leaks: None, spins: int
) -> None:
    # From before the child exists, through pipe setup, to the child running.
    async def main() -> bool:
        job = asyncio.ensure_future(
            run_process([PY, "-c", IGNORES_SIGTERM], input=b"data", grace=0.2)
        )
        for _ in range(spins):
            await asyncio.sleep(0)
        job.cancel()
        await settle(job)
        return job.cancelled()

    assert arun(main)


@pytest.mark.parametrize(
    "stage", ["starting", "running", "reading-stdout", "writing-stdin", "stopping"]
)
def test_cancelling_run_process_at_each_stage_leaks_nothing(no_leaks: None, stage: str) -> None:
    ready_code = {
        "starting": SLEEPER,
        "running": SLEEPER,
        "reading-stdout": "print('ready', flush=True)\n" + FLOOD.format(n=10**6),
        "writing-stdin": "print('ready', flush=True); import time; time.sleep(60)",
        "stopping": IGNORES_SIGTERM,
    }[stage]
    delay = {"starting": 0.0, "running": 0.3}.get(stage, 0.3)

    async def main() -> bool:
        data = b"w" * 5_000_000 if stage == "writing-stdin" else None
        timeout = 0.5 if stage == "stopping" else None
        job = asyncio.ensure_future(
            run_process([PY, "-c", ready_code], input=data, timeout=timeout, grace=3600)
        )
        await asyncio.sleep(delay)
        if stage == "stopping":
            await asyncio.sleep(0.5)  # past the timeout: now in the (long) grace period
        job.cancel()
        await settle(job)
        return job.cancelled()

    assert arun(main)


def test_cancelling_stream_output_mid_stream_leaks_nothing(no_leaks: None) -> None:
    async def main() -> Tuple[bool, int]:
        lines: List[str] = []
        first = asyncio.Event()

        def on_line(stream: str, line: str) -> None:
            lines.append(line)
            first.set()

        code = "import time\nwhile True:\n    print('tick', flush=True)\n    time.sleep(0.01)\n"
        job = asyncio.ensure_future(stream_output([PY, "-c", code], on_line, grace=0.2))
        await bounded(first.wait())
        job.cancel()
        await settle(job)
        return job.cancelled(), len(lines)

    cancelled, count = arun(main)
    assert cancelled and count >= 1


def test_cancelling_inside_open_process_stops_the_child(no_leaks: None) -> None:
    pids: List[int] = []

    async def body() -> None:
        async with open_process(
            [PY, "-c", IGNORES_SIGTERM], stdout=subprocess.PIPE, grace=0.2
        ) as p:
            pids.append(p.pid)
            assert p.stdout is not None
            await p.stdout.readline()
            await asyncio.sleep(3600)

    async def main() -> bool:
        job = asyncio.ensure_future(body())
        while not pids:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
        job.cancel()
        await settle(job)
        return job.cancelled()

    assert arun(main)
    with pytest.raises(ChildProcessError):
        os.waitpid(pids[0], os.WNOHANG)  # reaped by asyncio, not left for us


def test_a_second_cancellation_during_cleanup_still_reaps(no_leaks: None) -> None:
    async def main() -> bool:
        job = asyncio.ensure_future(run_process([PY, "-c", IGNORES_SIGTERM], grace=3600))
        await asyncio.sleep(0.3)
        job.cancel()
        await asyncio.sleep(0.1)  # now in stop_process's grace period
        job.cancel()
        await settle(job)
        return job.cancelled()

    assert arun(main)


# --- many commands under a limit ------------------------------------------------------


def test_run_many_never_exceeds_the_limit_and_reaches_it(no_leaks: None) -> None:
    async def main() -> Tuple[List[int], int]:
        peak = 0
        stop = asyncio.Event()

        async def watch() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, running_children_with("run-many-limit-test"))
                await asyncio.sleep(0.005)

        watcher = asyncio.ensure_future(watch())
        # The token tells this batch's children from any other process of the test run.
        code = (
            "import sys, time; time.sleep(0.3); sys.exit(int(sys.argv[1]))  # run-many-limit-test"
        )
        try:
            results = await bounded(
                run_many([[PY, "-c", code, str(n)] for n in range(12)], limit=3)
            )
        finally:
            stop.set()
            await watcher
        return [r.returncode for r in results], peak

    codes, peak = arun(main)
    assert codes == list(range(12))
    assert peak == 3


def test_run_many_stops_the_batch_at_the_first_error(no_leaks: None, tmp_path: Path) -> None:
    # Each child leaves a marker file when it starts, then sleeps.
    code = "import pathlib, sys, time; pathlib.Path(sys.argv[1]).touch(); time.sleep(60)"
    commands = [[PY, "-c", code, str(tmp_path / str(n))] for n in range(2)]
    commands.append(["/nonexistent/program"])
    commands += [[PY, "-c", code, str(tmp_path / str(n))] for n in range(3, 6)]

    async def main() -> None:
        await bounded(run_many(commands, limit=3, grace=0.2))

    with pytest.raises(FileNotFoundError):
        arun(main)
    assert not {"3", "4", "5"} & {p.name for p in tmp_path.iterdir()}


def test_run_many_timeout_applies_to_each_command(no_leaks: None) -> None:
    commands = [[PY, "-c", "pass"], [PY, "-c", IGNORES_SIGTERM]]
    with pytest.raises(subprocess.TimeoutExpired):
        arun(lambda: bounded(run_many(commands, limit=2, timeout=1.0, grace=0.2)))


def test_run_many_with_check_raises_for_a_failure(no_leaks: None) -> None:
    commands = [[PY, "-c", "pass"], [PY, "-c", "raise SystemExit(2)"]]
    with pytest.raises(subprocess.CalledProcessError):
        arun(lambda: bounded(run_many(commands, check=True)))


def test_run_many_under_load(no_leaks: None) -> None:
    commands = [[PY, "-c", f"print({n})"] for n in range(60)]
    results = arun(lambda: bounded(run_many(commands, limit=8)))
    assert [int(r.stdout) for r in results] == list(range(60))


# --- supervision ------------------------------------------------------------------------


def test_supervise_backs_off_exponentially_and_gives_up(no_leaks: None) -> None:
    reports: List[Tuple[int, Optional[float]]] = []

    async def on_exit(code: int, delay: Optional[float]) -> None:  # async callbacks work
        reports.append((code, delay))

    async def main() -> int:
        command = [PY, "-c", "raise SystemExit(9)"]
        return await bounded(
            supervise(command, max_restarts=4, backoff=0.02, max_backoff=0.1, on_exit=on_exit)
        )

    assert arun(main) == 9
    assert reports == [(9, 0.02), (9, 0.04), (9, 0.08), (9, 0.1), (9, None)]


def test_a_healthy_run_resets_the_backoff(no_leaks: None) -> None:
    delays: List[Optional[float]] = []

    async def main() -> int:
        command = [PY, "-c", "import time; time.sleep(0.3); raise SystemExit(1)"]
        return await bounded(
            supervise(
                command,
                max_restarts=2,
                backoff=0.05,
                healthy_after=0.25,
                on_exit=lambda code, delay: delays.append(delay),
            )
        )

    # Every run is healthy, so the delay never grows and the failures never count:
    # it would run for ever; stop it after a few runs instead.
    async def stop_after_three() -> int:
        job = asyncio.ensure_future(main())
        while len(delays) < 3:
            await asyncio.sleep(0.05)
        job.cancel()
        await settle(job)
        return len(delays)

    assert arun(stop_after_three) >= 3
    assert set(delays[:3]) == {0.05}


@pytest.mark.parametrize("when", ["child-running", "backing-off"])
def test_cancelling_supervise_stops_the_child(no_leaks: None, when: str) -> None:
    async def main() -> bool:
        exits: List[int] = []
        code = SLEEPER if when == "child-running" else "raise SystemExit(1)"
        job = asyncio.ensure_future(
            supervise(
                [PY, "-c", code],
                backoff=3600,
                max_backoff=3600,
                grace=0.2,
                stdout=subprocess.DEVNULL,
                on_exit=lambda c, d: exits.append(c),
            )
        )
        if when == "backing-off":
            while not exits:
                await asyncio.sleep(0.01)
        else:
            await asyncio.sleep(0.5)
        job.cancel()
        await settle(job)
        return job.cancelled()

    assert arun(main)


def test_supervise_raises_at_once_when_the_program_cannot_start(no_leaks: None) -> None:
    with pytest.raises(FileNotFoundError):
        arun(lambda: bounded(supervise(["/nonexistent/program"], backoff=3600, max_backoff=3600)))


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: run_process("echo hi"), TypeError, "not a string"),
        (lambda: run_process(b"echo"), TypeError, "not a string"),
        (lambda: run_process([]), ValueError, "empty list"),
        (lambda: run_process([PY, 3]), TypeError, "must be a str"),
        (lambda: run_process(None), TypeError, "list of strings"),
        (lambda: run_process([PY], timeout=-1), ValueError, "timeout"),
        (lambda: run_process([PY], timeout=math.nan), ValueError, "timeout"),
        (lambda: run_process([PY], timeout="5"), TypeError, "timeout"),
        (lambda: run_process([PY], grace=-0.1), ValueError, "grace"),
        (lambda: run_process([PY], input="text"), TypeError, "input must be bytes"),
        (lambda: stream_output([PY], "print"), TypeError, "on_line"),
        (lambda: stream_output([PY], print, limit=0), ValueError, "limit"),
        (lambda: run_many([[PY]], limit=0), ValueError, "limit"),
        (lambda: run_many([[PY]], limit=2.5), TypeError, "limit"),
        (lambda: run_many([[PY], "ls"]), TypeError, "not a string"),
        (lambda: supervise([PY], backoff=0), ValueError, "backoff"),
        (lambda: supervise([PY], backoff=5, max_backoff=1), ValueError, "max_backoff"),
        (lambda: supervise([PY], max_restarts=-1), ValueError, "max_restarts"),
        (lambda: supervise([PY], healthy_after=math.inf), ValueError, "healthy_after"),
    ],
)
def test_bad_arguments_fail_before_anything_starts(
    no_leaks: None, call: Callable[[], Awaitable[Any]], error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        arun(call)


def test_open_process_rejects_bad_arguments(no_leaks: None) -> None:
    async def main() -> None:
        async with open_process("python"):
            pass  # pragma: no cover

    with pytest.raises(TypeError, match="not a string"):
        arun(main)
    with pytest.raises(ValueError, match="grace"):
        arun(lambda: stop_process(None, grace=-1))  # type: ignore[arg-type]
