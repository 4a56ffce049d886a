"""Behaviour, fault and load tests for recipes/files.py."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import json
import os
import stat
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, List, Tuple

import aiofiles
import pytest

from recipes.files import (
    TextDecodeError,
    append_lines,
    atomic_write_text,
    atomic_writer,
    cancel_safe,
    iter_lines,
    read_json,
    read_text,
    run_in_thread,
    write_json,
)

HANG = 3600.0  # generous timeout on the virtual clock: turns a hang into a failure


@contextmanager
def resource_warnings() -> Iterator[List[str]]:
    """Record the ResourceWarnings (leaked files) raised in the block or by a gc after it."""
    found: List[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield found
        gc.collect()
    found.extend(str(w.message) for w in caught if issubclass(w.category, ResourceWarning))


def leftovers(directory: Path) -> List[str]:
    """Files in ``directory`` other than the ones the test made on purpose."""
    return sorted(name for name in os.listdir(directory) if name.startswith("."))


class GatedOpener:
    """An ``opener=`` for open() that blocks its worker thread until released.

    It makes "cancelled while the file is being opened" deterministic: the test
    waits until the thread is inside the open, cancels, then lets it finish.
    """

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, path: str, flags: int) -> int:
        self.started.set()
        self.release.wait(10)
        return os.open(path, flags, 0o666)


# --- atomic writes -----------------------------------------------------------


def test_atomic_write_replaces_the_file(run_virtual: Any, tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old\n", encoding="utf-8")

    async def main() -> None:
        await atomic_write_text(target, "new\n" * 10_000)

    run_virtual(main)
    assert target.read_text(encoding="utf-8") == "new\n" * 10_000
    assert os.listdir(tmp_path) == ["out.txt"]


def test_atomic_write_creates_a_missing_file(run_virtual: Any, tmp_path: Path) -> None:
    async def main() -> None:
        await atomic_write_text(str(tmp_path / "fresh.txt"), "x", durable=False)

    run_virtual(main)
    assert (tmp_path / "fresh.txt").read_text(encoding="utf-8") == "x"


def test_exception_in_the_block_keeps_the_old_file(run_virtual: Any, tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old\n", encoding="utf-8")

    async def main() -> None:
        with pytest.raises(RuntimeError, match="boom"):
            async with atomic_writer(target) as f:
                await f.write("half of the new con")
                raise RuntimeError("boom")

    run_virtual(main)
    assert target.read_text(encoding="utf-8") == "old\n"
    assert leftovers(tmp_path) == []


def test_exception_inside_the_write_keeps_the_old_file(run_virtual: Any, tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old\n", encoding="utf-8")

    async def main() -> None:
        async with atomic_writer(target, encoding="ascii") as f:
            await f.write("plain ascii\n")
            # The encoding error happens inside the write, in the worker thread.
            with pytest.raises(UnicodeEncodeError):
                await f.write("naïve\n")
            raise KeyboardInterrupt  # even a BaseException cleans up

    with pytest.raises(KeyboardInterrupt):
        run_virtual(main)
    assert target.read_text(encoding="utf-8") == "old\n"
    assert leftovers(tmp_path) == []


def test_disk_error_while_syncing_keeps_the_old_file(
    run_virtual: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old\n", encoding="utf-8")

    def failing_fsync(descriptor: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)

    async def main() -> None:
        with pytest.raises(OSError, match="Input/output error"):
            await atomic_write_text(target, "new\n")

    run_virtual(main)
    assert target.read_text(encoding="utf-8") == "old\n"
    assert leftovers(tmp_path) == []


def test_failed_rename_leaves_no_temporary_file(run_virtual: Any, tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()  # os.replace cannot put a file over a directory
    (tmp_path / "taken" / "inside").write_text("keep", encoding="utf-8")

    async def main() -> None:
        with pytest.raises(OSError):
            await atomic_write_text(tmp_path / "taken", "new\n")

    run_virtual(main)
    assert (tmp_path / "taken" / "inside").read_text(encoding="utf-8") == "keep"
    assert leftovers(tmp_path) == []


def test_cancelled_writer_keeps_the_old_file(run_virtual: Any, tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old\n", encoding="utf-8")

    async def main() -> List[str]:
        halfway = asyncio.Event()

        async def writer() -> None:
            async with atomic_writer(target) as f:
                await f.write("the first half, ")
                halfway.set()
                await asyncio.sleep(3600)
                await f.write("the second half\n")

        task = asyncio.ensure_future(writer())
        await halfway.wait()
        during = leftovers(tmp_path)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return during

    with resource_warnings() as leaked:
        during = run_virtual(main)
    assert leaked == []
    assert len(during) == 1 and during[0].startswith(".out.txt.")  # the temporary file
    assert target.read_text(encoding="utf-8") == "old\n"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("steps", range(0, 40, 3))
def test_cancelling_at_any_point_gives_old_or_new_never_torn(
    run_virtual: Any, tmp_path: Path, steps: int
) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old\n", encoding="utf-8")
    new = "new line\n" * 50_000

    async def main() -> bool:
        task = asyncio.ensure_future(atomic_write_text(target, new))
        for _ in range(steps):
            await asyncio.sleep(0)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return True
        return False

    with resource_warnings() as leaked:
        run_virtual(main)
    assert leaked == []
    assert target.read_text(encoding="utf-8") in ("old\n", new)
    assert leftovers(tmp_path) == []


@pytest.mark.skipif(os.name != "posix", reason="permission bits are a POSIX feature")
def test_atomic_write_keeps_the_permission_bits(run_virtual: Any, tmp_path: Path) -> None:
    target = tmp_path / "secret.txt"
    target.write_text("old\n", encoding="utf-8")
    target.chmod(0o640)
    plain = tmp_path / "plain.txt"
    plain.write_text("", encoding="utf-8")  # gets the default mode for new files

    async def main() -> None:
        await atomic_write_text(target, "new\n")
        await atomic_write_text(tmp_path / "made.txt", "new\n")

    run_virtual(main)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "made.txt").stat().st_mode) == stat.S_IMODE(
        plain.stat().st_mode
    )


def test_atomic_write_refuses_bad_input_before_touching_disk(
    run_virtual: Any, tmp_path: Path
) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old\n", encoding="utf-8")

    async def main() -> None:
        with pytest.raises(TypeError, match="text must be a str"):
            await atomic_write_text(target, b"bytes")  # type: ignore[arg-type]
        with pytest.raises(LookupError):
            await atomic_write_text(target, "x", encoding="no-such-codec")
        with pytest.raises(ValueError, match="must name a file"):
            await atomic_write_text(str(tmp_path) + os.sep, "x")
        with pytest.raises(FileNotFoundError) as info:
            await atomic_write_text(tmp_path / "missing" / "out.txt", "x")
        assert info.value.filename == str(tmp_path / "missing")
        assert "No such directory" in str(info.value)

    run_virtual(main)
    assert target.read_text(encoding="utf-8") == "old\n"
    assert sorted(os.listdir(tmp_path)) == ["out.txt"]


# --- cancel_safe ---------------------------------------------------------------


def test_plain_aiofiles_open_leaks_a_file_when_cancelled(run_virtual: Any, tmp_path: Path) -> None:
    """The problem cancel_safe solves (if this fails, aiofiles fixed it upstream)."""
    path = tmp_path / "data.txt"
    path.write_text("data", encoding="utf-8")
    opener = GatedOpener()
    pool = ThreadPoolExecutor(1)

    async def main() -> None:
        async def read() -> str:
            opening = aiofiles.open(path, encoding="utf-8", opener=opener, executor=pool)
            async with opening as f:
                return await f.read()

        task = asyncio.ensure_future(read())
        await run_in_thread(opener.started.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        opener.release.set()

    with resource_warnings() as leaked:  # also keeps the leak out of the test run
        run_virtual(main)
        pool.shutdown(wait=True)  # the open has finished in its thread
    assert any("unclosed file" in message for message in leaked)


def test_cancel_safe_closes_a_file_opened_after_cancellation(
    run_virtual: Any, tmp_path: Path
) -> None:
    path = tmp_path / "data.txt"
    path.write_text("data", encoding="utf-8")
    opener = GatedOpener()

    async def main() -> bool:
        async def read() -> str:
            async with cancel_safe(aiofiles.open(path, encoding="utf-8", opener=opener)) as f:
                return await f.read()

        task = asyncio.ensure_future(read())
        await run_in_thread(opener.started.wait, 10)
        task.cancel()
        await asyncio.sleep(0.1)
        still_waiting = not task.done()  # it waits for the open before giving up
        opener.release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        return still_waiting

    with resource_warnings() as leaked:
        assert run_virtual(main) is True
    assert leaked == []


def test_cancel_safe_passes_on_open_errors_and_closes_on_exit(
    run_virtual: Any, tmp_path: Path
) -> None:
    async def main() -> bool:
        with pytest.raises(FileNotFoundError):
            async with cancel_safe(aiofiles.open(tmp_path / "missing.txt")):
                pass  # pragma: no cover - never reached
        async with cancel_safe(aiofiles.open(tmp_path / "x.txt", "w")) as f:
            await f.write("x")
        return bool(f.closed)

    assert run_virtual(main) is True


def test_cancel_safe_cancelled_while_a_failing_open_runs(run_virtual: Any, tmp_path: Path) -> None:
    opener = GatedOpener()

    async def main() -> None:
        async def read() -> None:
            opening = aiofiles.open(tmp_path / "missing.txt", opener=opener)
            async with cancel_safe(opening):
                pass  # pragma: no cover - never reached

        task = asyncio.ensure_future(read())
        await run_in_thread(opener.started.wait, 10)
        task.cancel()
        opener.release.set()
        # The open fails, but the cancellation is what the caller sees.
        with pytest.raises(asyncio.CancelledError):
            await task

    run_virtual(main)


def test_cancel_safe_survives_a_second_cancel_while_the_open_finishes(
    run_virtual: Any, tmp_path: Path
) -> None:
    path = tmp_path / "data.txt"
    path.write_text("data", encoding="utf-8")
    opener = GatedOpener()
    pool = ThreadPoolExecutor(1)

    async def main() -> bool:
        async def read() -> str:
            opening = aiofiles.open(path, encoding="utf-8", opener=opener, executor=pool)
            async with cancel_safe(opening) as f:
                return await f.read()

        task = asyncio.ensure_future(read())
        await run_in_thread(opener.started.wait, 10)
        task.cancel()
        await asyncio.sleep(0.1)
        task.cancel()  # a second cancel while cancel_safe waits for the open
        await asyncio.sleep(0.1)
        still_waiting = not task.done()
        opener.release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Before the fix the open was left running, unowned: let it finish, so
        # that what it leaks is reported below.
        others = asyncio.all_tasks() - {asyncio.current_task()}
        if others:
            await asyncio.wait(others)
        return still_waiting

    with resource_warnings() as leaked:
        still_waiting = run_virtual(main)
        pool.shutdown(wait=True)  # the open has finished in its thread
    assert leaked == []
    assert still_waiting is True  # it waited for the open before giving up


def test_cancel_safe_closes_the_file_despite_a_cancel_during_the_close(
    run_virtual: Any, tmp_path: Path
) -> None:
    """The close is queued behind a busy thread when a second cancel arrives.

    Cancelling the await of a queued executor job withdraws the job, so the
    file would never be closed.
    """
    path = tmp_path / "data.txt"
    path.write_text("data", encoding="utf-8")
    pool = ThreadPoolExecutor(1)
    busy = GatedOpener()  # used here only for its two events

    async def main() -> bool:
        loop = asyncio.get_running_loop()
        inside = asyncio.Event()
        blocker: List[Any] = []

        async def read() -> None:
            opening = aiofiles.open(path, encoding="utf-8", executor=pool)
            async with cancel_safe(opening):
                blocker.append(loop.run_in_executor(pool, busy.release.wait, 10))
                inside.set()
                await asyncio.sleep(HANG)

        task = asyncio.ensure_future(read())
        await inside.wait()
        task.cancel()  # the block ends: the close is queued behind the busy thread
        await asyncio.sleep(0.1)
        task.cancel()  # a second cancel while cancel_safe waits for the close
        await asyncio.sleep(0.1)
        still_waiting = not task.done()
        busy.release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        await blocker[0]
        return still_waiting

    with resource_warnings() as leaked:
        still_waiting = run_virtual(main)
        pool.shutdown(wait=True)
    assert leaked == []
    assert still_waiting is True  # it waited for the close before giving up


# --- reading, encodings and clear errors ---------------------------------------


def test_read_text_missing_file_names_it(run_virtual: Any, tmp_path: Path) -> None:
    missing = tmp_path / "missing.txt"

    async def main() -> None:
        with pytest.raises(FileNotFoundError) as info:
            await read_text(missing)
        assert info.value.filename == str(missing)

    run_virtual(main)


def test_read_text_bad_encoding_names_file_and_line(run_virtual: Any, tmp_path: Path) -> None:
    path = tmp_path / "names.txt"
    path.write_bytes("ada\r\ngrace\r\nrené\r\n".encode("latin-1"))

    async def main() -> TextDecodeError:
        with pytest.raises(TextDecodeError) as info:
            await read_text(path)
        return info.value

    error = run_virtual(main)
    assert error.path == str(path)
    assert error.line == 3
    assert error.encoding == "utf-8"
    assert error.object[error.start : error.end] == b"\xe9"
    assert isinstance(error, UnicodeDecodeError) and isinstance(error, ValueError)
    assert f"{path}, line 3: b'\\xe9' is not valid utf-8" in str(error)
    assert "errors='replace'" in str(error)


@pytest.mark.parametrize(
    ("encoding", "errors", "expected"),
    [
        ("latin-1", "strict", "ada\nrené\n"),
        ("utf-8", "replace", "ada\nren\ufffd\n"),
        ("utf-8", "ignore", "ada\nren\n"),
    ],
)
def test_read_text_encodings(
    run_virtual: Any, tmp_path: Path, encoding: str, errors: str, expected: str
) -> None:
    path = tmp_path / "names.txt"
    path.write_bytes("ada\rrené\r\n".encode("latin-1"))

    async def main() -> str:
        return await read_text(path, encoding=encoding, errors=errors)

    assert run_virtual(main) == expected


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "cp1252", "shift_jis"])
def test_read_text_matches_open(run_virtual: Any, tmp_path: Path, encoding: str) -> None:
    text = "первая\r\nzweite Zeile\rthird\n" if encoding != "shift_jis" else "一行目\r\n二行目\n"
    if encoding == "cp1252":
        text = "première\r\nzweite\rthird € \n"
    path = tmp_path / "t.txt"
    path.write_bytes(text.encode(encoding))

    async def main() -> str:
        return await read_text(path, encoding=encoding)

    with open(path, encoding=encoding) as f:
        assert run_virtual(main) == f.read()


def test_unknown_codec_is_refused_before_any_io(run_virtual: Any, tmp_path: Path) -> None:
    missing = tmp_path / "missing.txt"

    async def main() -> None:
        # LookupError, not FileNotFoundError: the file is never opened.
        with pytest.raises(LookupError, match="no-such-codec"):
            await read_text(missing, encoding="no-such-codec")
        with pytest.raises(LookupError, match="no-such-handler"):
            await read_text(missing, errors="no-such-handler")
        with pytest.raises(LookupError):
            await iter_lines(missing, encoding="no-such-codec").__anext__()

    run_virtual(main)


# --- iterating over lines --------------------------------------------------------


def make_lines(count: int) -> str:
    endings = ["\n", "\r\n", "\r"]
    return "".join(f"línea {n} — ünïcödé {'x' * (n % 50)}{endings[n % 3]}" for n in range(count))


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 100, 4096])
def test_iter_lines_matches_file_iteration(
    run_virtual: Any, tmp_path: Path, chunk_size: int
) -> None:
    path = tmp_path / "lines.txt"
    path.write_bytes(make_lines(300).encode("utf-8") + b"tail without newline")

    async def main() -> List[str]:
        return [line async for line in iter_lines(path, chunk_size=chunk_size)]

    with open(path, encoding="utf-8") as f:
        assert run_virtual(main) == list(f)


def test_iter_lines_of_a_large_file(run_virtual: Any, tmp_path: Path) -> None:
    path = tmp_path / "large.txt"
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(make_lines(300_000))
    assert path.stat().st_size > 10_000_000

    async def main() -> Tuple[int, int, str, str]:
        count = total = 0
        first = last = ""
        async for line in iter_lines(path):
            if not count:
                first = line
            count += 1
            total += len(line)
            last = line
        return count, total, first, last

    with open(path, encoding="utf-8") as f:
        expected = list(f)
    count, total, first, last = run_virtual(main)
    assert count == len(expected) == 300_000
    assert total == sum(map(len, expected))
    assert (first, last) == (expected[0], expected[-1])


@pytest.mark.parametrize("content", [b"", b"\n", b"\n\n", b"one", b"one\r", b"\r\n\r\n"])
def test_iter_lines_edge_cases(run_virtual: Any, tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "edge.txt"
    path.write_bytes(content)

    async def main() -> List[str]:
        return [line async for line in iter_lines(path, chunk_size=1)]

    with open(path, encoding="utf-8") as f:
        assert run_virtual(main) == list(f)


@pytest.mark.parametrize("chunk_size", [1, 5, 64 * 1024])
def test_iter_lines_reports_the_bad_line_after_the_good_ones(
    run_virtual: Any, tmp_path: Path, chunk_size: int
) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(b"a\r\nb\nc\rd is \xff bad\ne\n")

    async def main() -> Tuple[List[str], TextDecodeError]:
        seen: List[str] = []
        with pytest.raises(TextDecodeError) as info:
            async for line in iter_lines(path, chunk_size=chunk_size):
                seen.append(line)
        return seen, info.value

    seen, error = run_virtual(main)
    assert seen == ["a\n", "b\n", "c\n"]
    assert error.line == 4
    assert error.path == str(path)


def test_iter_lines_closed_early_leaks_nothing(run_virtual: Any, tmp_path: Path) -> None:
    path = tmp_path / "lines.txt"
    path.write_text("".join(f"{n}\n" for n in range(10_000)), encoding="utf-8")

    async def main() -> str:
        lines = iter_lines(path, chunk_size=100)
        try:
            async for line in lines:
                if line == "42\n":
                    break
        finally:
            await lines.aclose()
        return line

    with resource_warnings() as leaked:
        assert run_virtual(main) == "42\n"
    assert leaked == []


def test_iter_lines_refuses_bad_chunk_sizes(run_virtual: Any, tmp_path: Path) -> None:
    async def main() -> None:
        for size in (0, -1, 1.5, True):
            with pytest.raises(ValueError, match="chunk_size"):
                await iter_lines(tmp_path / "x", chunk_size=size).__anext__()  # type: ignore[arg-type]

    run_virtual(main)


# --- appending -----------------------------------------------------------------


def test_concurrent_appends_keep_lines_whole(run_virtual: Any, tmp_path: Path) -> None:
    log = tmp_path / "app.log"

    async def main() -> List[int]:
        async def writer(name: str) -> int:
            total = 0
            for batch in range(20):
                lines = [f"{name} batch {batch} line {n} " + "x" * 200 for n in range(25)]
                total += await append_lines(log, lines)
            return total

        return list(await asyncio.gather(*(writer(f"w{i}") for i in range(8))))

    assert run_virtual(main) == [500] * 8
    lines = log.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 4000
    assert len(set(lines)) == 4000
    assert all(line.endswith("x" * 200) and line.startswith("w") for line in lines)


@pytest.mark.parametrize(
    ("lines", "error", "match"),
    [
        ("one line", TypeError, "not a str"),
        (b"bytes", TypeError, "not a bytes"),
        (["ok", "two\nlines"], ValueError, "line 2 contains a line break"),
        (["ok", "carriage\rreturn"], ValueError, "line 2 contains a line break"),
        (["ok", 3], TypeError, "line 2 is a int"),
    ],
)
def test_append_lines_refuses_bad_input_before_writing(
    run_virtual: Any, tmp_path: Path, lines: Any, error: type[Exception], match: str
) -> None:
    log = tmp_path / "app.log"

    async def main() -> None:
        with pytest.raises(error, match=match):
            await append_lines(log, lines)

    run_virtual(main)
    assert not log.exists()


def test_append_nothing_creates_nothing(run_virtual: Any, tmp_path: Path) -> None:
    async def main() -> int:
        return await append_lines(tmp_path / "app.log", iter([]))

    assert run_virtual(main) == 0
    assert os.listdir(tmp_path) == []


# --- threads and JSON ------------------------------------------------------------


def test_run_in_thread_runs_elsewhere_with_the_context(run_virtual: Any) -> None:
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")

    def where(prefix: str, *, suffix: str) -> Tuple[str, bool]:
        return prefix + request_id.get() + suffix, threading.current_thread() is main_thread

    main_thread = threading.current_thread()

    async def main() -> Tuple[str, bool]:
        request_id.set("42")
        return await run_in_thread(where, "<", suffix=">")

    assert run_virtual(main) == ("<42>", False)


def test_run_in_thread_passes_exceptions_back(run_virtual: Any) -> None:
    def fail() -> None:
        raise KeyError("inside the thread")

    async def main() -> None:
        with pytest.raises(KeyError, match="inside the thread"):
            await run_in_thread(fail)

    run_virtual(main)


def test_json_round_trip_and_clear_errors(run_virtual: Any, tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    data = {"name": "Zoë", "nested": {"list": [1, 2.5, None, True]}}

    async def main() -> Any:
        await write_json(path, data)
        loaded = await read_json(path)
        with pytest.raises(TypeError, match="not JSON serializable"):
            await write_json(path, {"bad": {1, 2}})
        assert await read_json(path) == loaded  # the failed write changed nothing
        path.write_text('{"name": ', encoding="utf-8")
        with pytest.raises(json.JSONDecodeError, match=f"^{path}: Expecting value"):
            await read_json(path)
        with pytest.raises(FileNotFoundError):
            await read_json(tmp_path / "missing.json")
        return loaded

    assert run_virtual(main) == data
    assert leftovers(tmp_path) == []


@pytest.mark.asyncio
async def test_files_on_the_real_clock(tmp_path: Path) -> None:
    target = tmp_path / "real.txt"
    await atomic_write_text(target, "a\nb\n")
    assert [line async for line in iter_lines(target)] == ["a\n", "b\n"]
    assert await append_lines(target, ["c"]) == 1
    assert await read_text(target) == "a\nb\nc\n"
