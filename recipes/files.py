"""Reading or writing a file blocks: the operating system offers no portable way
to wait for a disk the way asyncio waits for a socket, so a plain ``open()``
and ``read()`` inside a coroutine stops the whole event loop until the disk
answers.  :mod:`aiofiles` moves each file operation to a worker thread and lets
you ``await`` it, so the loop keeps serving other tasks meanwhile.  That is
the right tool for files read or written a piece at a time while other work
goes on.  This chapter covers reading, writing, appending and iterating over
lines, choosing encodings and getting clear errors when they are wrong,
replacing a file atomically, opening files in code that may be cancelled, and
when a single :func:`asyncio.to_thread` call is simpler than aiofiles.  It
needs ``aiofiles`` (``pip install aiofiles``).

Every example works in a temporary directory, removed at the end:

>>> import os, tempfile
>>> import aiofiles
>>> tmp = tempfile.TemporaryDirectory()

Reading and writing text files
------------------------------

.. index::
   single: aiofiles
   pair: files; encoding
   single: error messages; 'charmap' codec can't decode byte

``aiofiles.open`` takes the arguments of the built-in :func:`open`, and the
file it returns has the usual methods, each of which must be awaited:

>>> notes = os.path.join(tmp.name, "notes.txt")
>>> async with aiofiles.open(notes, "w", encoding="utf-8") as f:
...     await f.write("first line\\nsecond line\\n")
23
>>> async with aiofiles.open(notes, encoding="utf-8") as f:
...     print(await f.read())
first line
second line
<BLANKLINE>

Each awaited call is a round trip to a worker thread, which costs far more
than the call itself on a small file.  Read and write in large pieces rather
than a character or a line at a time.

.. important::

   Always pass ``encoding=``.  Without it Python uses the locale's encoding,
   which is UTF-8 on most Linux and macOS systems but often ``cp1252`` on
   Windows, so a file written on one machine fails on another with
   ``UnicodeDecodeError: 'charmap' codec can't decode byte ...`` or, worse,
   reads as garbage without an error.  (Python 3.15 makes UTF-8 the
   default, :pep:`686`; code that must run on older versions still needs the
   argument.)

Reading a whole file with a clear decoding error
------------------------------------------------

.. index::
   single: UnicodeDecodeError; naming the file and line
   single: error messages; 'utf-8' codec can't decode byte

When a file is not in the encoding you expected, Python reports
``UnicodeDecodeError: 'utf-8' codec can't decode byte 0xe9 in position 8083:
invalid continuation byte``: no file name, no line number, and, when the file
is read line by line, a position counted from the start of an internal 8 KB
buffer rather than of the file.  :func:`read_text` and :func:`iter_lines`
raise :class:`TextDecodeError` instead, which names the file and the line:

>>> from recipes.files import read_text
>>> menu = os.path.join(tmp.name, "menu.txt")
>>> with open(menu, "w", encoding="latin-1") as f:
...     _ = f.write("soup\\ncafé\\n")
>>> try:
...     await read_text(menu)
... except UnicodeDecodeError as exc:  # TextDecodeError is one
...     print(f"line {exc.line}: {exc.reason}")
line 2: invalid continuation byte
>>> await read_text(menu, encoding="latin-1")
'soup\\ncafé\\n'

Iterating over the lines of a large file
----------------------------------------

.. index::
   pair: files; reading line by line

``async for line in f`` works on an aiofiles file, but it fetches every line
with its own trip to a worker thread.  :func:`iter_lines` reads large chunks
and splits them into lines itself, so a file of a million lines costs a few
hundred thread round trips instead of a million; memory stays bounded by the
chunk size and the longest line.  On a 9 MB file of 200,000 lines, on the
machine this chapter was written on, ``async for line in f`` took about 25
seconds and :func:`iter_lines` 0.15 seconds.

Appending to a file
-------------------

.. index::
   pair: files; appending
   single: log file; appending from several tasks

Mode ``"a"`` writes at the end of the file, whatever else has been written
to it meanwhile.  :func:`append_lines` adds complete lines with a single write,
so that two tasks appending to the same log do not interleave halves of their
records.

Replacing a file atomically
---------------------------

.. index::
   pair: atomic write; files
   single: os.replace
   single: fsync

Writing a file in place is not safe: a crash, an exception or a cancellation
half-way leaves it truncated, and a reader may see it half-written.
:func:`atomic_write_text` and :func:`atomic_writer` write to a temporary file in
the same directory and rename it over the target only when all the text is on
disk, so readers see the old file or the new one, never a mixture.
:func:`recipes.http_client.download` in the :doc:`/recipes/http_client`
chapter does the same for downloads.

Opening files in code that may be cancelled
-------------------------------------------

.. index::
   pair: cancellation; open files
   single: warnings; ResourceWarning: unclosed file

aiofiles opens a file in a worker thread.  If the task is cancelled while it
waits for that thread (a timeout firing, a server shutting down), the thread
still opens the file, but nobody receives it, so nobody closes it.

.. important::

   The symptom is a warning some time later, when the file object is garbage
   collected: ``ResourceWarning: unclosed file <_io.TextIOWrapper
   name='...' mode='r' encoding='utf-8'>``.  In a busy server that is cancelled
   often, these leaked descriptors add up.  :func:`cancel_safe` waits for the
   open to finish and closes the file before the cancellation goes on; every
   function in this chapter opens files through it.

The close has the same problem in reverse: aiofiles queues it for a worker
thread, and a cancellation that arrives while it waits in that queue (a
second cancellation during the cleanup of the first, say) withdraws it, so
the file is never closed.  :func:`cancel_safe` therefore finishes both waits,
for the open and for the close, whatever cancellations arrive meanwhile, and
lets the cancellation continue afterwards.  The :doc:`/recipes/cancellation`
chapter explains the general pattern: cleanup that must finish even when the
task that runs it is cancelled again.

When a thread is simpler than aiofiles
--------------------------------------

.. index::
   single: asyncio.to_thread
   pair: blocking code; threads
   single: run_in_executor

aiofiles pays a thread round trip per call.  For work that is one blocking
step anyway (read a whole small file, parse it, write it back, walk a
directory), a single :func:`asyncio.to_thread` call does all of it in one
trip and lets you use the ordinary synchronous APIs, :mod:`pathlib` and
:mod:`json` included.  :func:`run_in_thread` is :func:`asyncio.to_thread` with
a fallback for Python 3.8, and :func:`read_json` and :func:`write_json` are
built on it and on :func:`atomic_write_text`.

The :doc:`/recipes/coroutines` chapter has the same helper,
:func:`recipes.coroutines.run_in_thread`, and shows why blocking calls stall
the loop in the first place.  The two do the same job: use the one in the
module you copied (this one is here so that ``files.py`` needs nothing else
from the cookbook).

.. versionadded:: 3.9

   :func:`asyncio.to_thread`.  On Python 3.8, use
   ``loop.run_in_executor(None, func, *args)`` as :func:`run_in_thread` does.

Putting it together
-------------------

A settings file is read with a clear error if it is broken, updated, and
written back atomically; a log gets one line per change:

>>> from recipes.files import append_lines, read_json, write_json
>>> settings = os.path.join(tmp.name, "settings.json")
>>> log = os.path.join(tmp.name, "changes.log")
>>> await write_json(settings, {"theme": "dark", "size": 12})
>>> config = await read_json(settings)
>>> config["size"] += 2
>>> await write_json(settings, config)
>>> await append_lines(log, ["size: 12 -> 14"])
1
>>> await read_json(settings), await read_text(log)
({'theme': 'dark', 'size': 14}, 'size: 12 -> 14\\n')
>>> sorted(os.listdir(tmp.name))
['changes.log', 'menu.txt', 'notes.txt', 'settings.json']
>>> tmp.cleanup()

A library does this
-------------------

.. index::
   single: anyio; open_file
   single: anyio; Path
   pair: files; libraries

`anyio <https://anyio.readthedocs.io/en/stable/fileio.html>`__, which runs
on asyncio too, has ``anyio.open_file()`` and an async ``anyio.Path``
(``await path.read_text()``, ``write_text()``, ``iterdir()`` and the rest of
:mod:`pathlib`).  Like aiofiles, each call goes to a worker thread (at most
40 at once by default).  Unlike aiofiles, a cancelled task waits for the
thread to finish the open, and closing is shielded from cancellation, so in
``async with await anyio.open_file(...)`` the file is closed even when the
task is cancelled during the open, without :func:`cancel_safe`.  It has no
atomic replace: :func:`atomic_writer` is still yours to copy.  Choose it in
code that already uses anyio or should run on trio; otherwise aiofiles and
the recipes, or one :func:`asyncio.to_thread` call, do the same.

See also
--------

* :doc:`/recipes/coroutines`: why a blocking call stalls the event loop, and
  :func:`recipes.coroutines.run_in_thread`.
* :doc:`/recipes/cancellation`: cleanup that survives a cancellation.
* :doc:`/recipes/http_client`: streaming a download into a file.
* aiofiles: its `README <https://github.com/Tinche/aiofiles#readme>`_ lists
  the file operations it wraps.
* Python: :func:`asyncio.to_thread` and :ref:`python:asyncio-handle-blocking`,
  :func:`os.replace` and :func:`os.fsync`, :ref:`python:utf8-mode`.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import contextvars
import functools
import io
import json
import os
import secrets
import stat
import sys
from typing import (
    Any,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    List,
    Optional,
    Protocol,
    TypeVar,
    Union,
)

import aiofiles
from aiofiles.threadpool.text import AsyncTextIOWrapper

__all__ = [
    "TextDecodeError",
    "append_lines",
    "atomic_write_text",
    "atomic_writer",
    "cancel_safe",
    "iter_lines",
    "read_json",
    "read_text",
    "run_in_thread",
    "write_json",
]

T = TypeVar("T")


class _AsyncFile(Protocol):
    async def close(self) -> None: ...


F = TypeVar("F", bound=_AsyncFile)


def _check_codec(encoding: str, errors: str) -> None:
    """Fail with LookupError before touching the disk if the names are unknown."""
    codecs.lookup(encoding)
    codecs.lookup_error(errors)


def _count_lines(data: bytes, encoding: str) -> int:
    """Number of line breaks in ``data``, which decodes cleanly as ``encoding``."""
    text = data.decode(encoding, "replace")
    return text.replace("\r\n", "\n").replace("\r", "\n").count("\n")


class TextDecodeError(UnicodeDecodeError):
    """A file's bytes are not valid in the encoding it was read with.

    It names the file and the line, and says what to do about it.  As a
    subclass of :exc:`UnicodeDecodeError` (and so of :exc:`ValueError`), it is
    caught by existing handlers for either.
    """

    def __init__(self, path: str, line: int, error: UnicodeDecodeError) -> None:
        super().__init__(error.encoding, error.object, error.start, error.end, error.reason)
        self.path = path
        self.line = line

    def __str__(self) -> str:
        bad = bytes(self.object[self.start : self.end])
        return (
            f"{self.path}, line {self.line}: {bad!r} is not valid {self.encoding} "
            f"({self.reason}); pass the file's real encoding, or errors='replace'"
        )


async def read_text(
    path: Union[str, os.PathLike[str]], *, encoding: str = "utf-8", errors: str = "strict"
) -> str:
    """Read a whole text file, with an error naming the file and line if it does not decode.

    >>> import os, tempfile
    >>> from recipes.files import read_text
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = os.path.join(tmp.name, "menu.txt")
    >>> with open(path, "wb") as f:
    ...     _ = f.write("soup\\r\\ncafé\\r\\n".encode("latin-1"))
    >>> await read_text(path, encoding="latin-1")
    'soup\\ncafé\\n'

    Line endings are translated to ``"\\n"`` as by :func:`open`.  Read with
    the wrong encoding, the file gives a :class:`TextDecodeError`:

    >>> await read_text(path)  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    recipes.files.TextDecodeError: .../menu.txt, line 2: b'\\xe9' is not
    valid utf-8 (invalid continuation byte); pass the file's real encoding,
    or errors='replace'

    ``errors="replace"`` puts U+FFFD in place of each undecodable byte; a
    missing file raises :exc:`FileNotFoundError`, which names the file too:

    >>> await read_text(path, errors="replace")
    'soup\\ncaf\\ufffd\\n'
    >>> await read_text(os.path.join(tmp.name, "missing.txt"))
    Traceback (most recent call last):
    ...
    FileNotFoundError: [Errno 2] No such file or directory: '.../missing.txt'
    >>> tmp.cleanup()

    An unknown ``encoding`` or ``errors`` name raises :exc:`LookupError`
    before the file is opened.
    """
    _check_codec(encoding, errors)
    async with cancel_safe(aiofiles.open(path, "rb")) as file:
        data = await file.read()
    try:
        text = data.decode(encoding, errors)
    except UnicodeDecodeError as exc:
        line = _count_lines(data[: exc.start], encoding) + 1
        raise TextDecodeError(os.fspath(path), line, exc) from None
    # The universal newlines of open(): \r\n and \r become \n.
    return text.replace("\r\n", "\n").replace("\r", "\n")


async def iter_lines(
    path: Union[str, os.PathLike[str]],
    *,
    encoding: str = "utf-8",
    errors: str = "strict",
    chunk_size: int = 64 * 1024,
) -> AsyncIterator[str]:
    """Yield the lines of a text file, reading it in large chunks.

    Each line ends with ``"\\n"`` except perhaps the last, as when iterating
    over a file opened with :func:`open`:

    >>> import os, tempfile
    >>> from recipes.files import iter_lines
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = os.path.join(tmp.name, "numbers.txt")
    >>> with open(path, "w", encoding="utf-8") as f:
    ...     _ = f.write("".join(f"{n}\\n" for n in range(100_000)) + "end")
    >>> count = 0
    >>> async for line in iter_lines(path):
    ...     count += 1
    >>> count, repr(line)
    (100001, "'end'")

    To stop early, close the iterator explicitly so the file is closed at once
    rather than when the iterator is garbage collected.
    :func:`contextlib.aclosing` (Python 3.10+) does it for you:

    >>> from contextlib import aclosing  # doctest: +PY310
    >>> async with aclosing(iter_lines(path)) as lines:  # doctest: +PY310
    ...     async for line in lines:
    ...         if line.startswith("41"):
    ...             break
    >>> line  # doctest: +PY310
    '41\\n'

    On older versions, call ``aclose()`` in a ``finally`` block:

    >>> lines = iter_lines(path)
    >>> try:
    ...     first = await lines.__anext__()
    ... finally:
    ...     await lines.aclose()
    >>> first
    '0\\n'

    Bytes that do not decode raise :class:`TextDecodeError` with the line
    number, after the lines before it have been yielded:

    >>> with open(path, "wb") as f:
    ...     _ = f.write(b"ok\\nalso ok\\nbad \\xff here\\n")
    >>> seen = []
    >>> async for line in iter_lines(path):  # doctest: +NORMALIZE_WHITESPACE
    ...     seen.append(line)
    Traceback (most recent call last):
    ...
    recipes.files.TextDecodeError: .../numbers.txt, line 3: b'\\xff' is not
    valid utf-8 (invalid start byte); pass the file's real encoding, or
    errors='replace'
    >>> seen
    ['ok\\n', 'also ok\\n']
    >>> tmp.cleanup()
    """
    _check_codec(encoding, errors)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be an int >= 1, got {chunk_size!r}")
    # The decoder that open() uses: multi-byte characters and \r\n pairs split
    # between two chunks come out whole.
    decoder = io.IncrementalNewlineDecoder(
        codecs.getincrementaldecoder(encoding)(errors), translate=True
    )
    head: List[str] = []  # pieces of the line being assembled

    def complete_lines(text: str) -> List[str]:
        """Add decoded text; return the lines it completes, each ending in "\\n"."""
        parts = text.split("\n")
        if len(parts) == 1:
            if text:
                head.append(text)
            return []
        head.append(parts[0])
        lines = ["".join(head), *parts[1:-1]]
        head[:] = [parts[-1]] if parts[-1] else []
        return [line + "\n" for line in lines]

    done = 0  # lines yielded so far
    async with cancel_safe(aiofiles.open(path, "rb")) as file:
        while True:
            chunk = await file.read(chunk_size)
            try:
                text = decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                # Yield the lines before the bad bytes, then report its line.
                valid = bytes(exc.object[: exc.start]).decode(encoding, errors)
                for line in complete_lines(valid.replace("\r\n", "\n").replace("\r", "\n")):
                    done += 1
                    yield line
                raise TextDecodeError(os.fspath(path), done + 1, exc) from None
            for line in complete_lines(text):
                done += 1
                yield line
            if not chunk:
                break
    if head:
        yield "".join(head)


async def append_lines(
    path: Union[str, os.PathLike[str]], lines: Iterable[str], *, encoding: str = "utf-8"
) -> int:
    """Append whole lines to a text file in one write; return how many were written.

    >>> import os, tempfile
    >>> from recipes.files import append_lines, read_text
    >>> tmp = tempfile.TemporaryDirectory()
    >>> log = os.path.join(tmp.name, "app.log")
    >>> await append_lines(log, ["started", "listening on 8080"])
    2
    >>> await append_lines(log, ["stopped"])
    1
    >>> print(await read_text(log), end="")
    started
    listening on 8080
    stopped

    The file is created if needed.  The lines are checked before anything is
    written: a line that contains a line break, or a single string passed
    where a list of lines belongs, is refused with :exc:`ValueError` or
    :exc:`TypeError`, and the file is left untouched:

    >>> await append_lines(log, ["ok", "two\\nlines"])
    Traceback (most recent call last):
    ...
    ValueError: line 2 contains a line break: 'two\\nlines'
    >>> await append_lines(log, "stopped")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    TypeError: lines must be an iterable of str, not a str;
    wrap a single line in a list
    >>> tmp.cleanup()

    Each call hands all its lines to the operating system in one write, at
    the end of the file, so tasks appending to the same file do not split
    each other's lines.  That holds on local file systems; network file
    systems such as NFS do not promise it, so give each process its own file
    there, or funnel the writes through one task.
    """
    if isinstance(lines, (str, bytes)):
        raise TypeError(
            f"lines must be an iterable of str, not a {type(lines).__name__}; "
            "wrap a single line in a list"
        )
    records = list(lines)
    for number, line in enumerate(records, 1):
        if not isinstance(line, str):
            raise TypeError(f"line {number} is a {type(line).__name__}, not a str: {line!r}")
        if "\n" in line or "\r" in line:
            raise ValueError(f"line {number} contains a line break: {line!r}")
    if not records:
        return 0
    _check_codec(encoding, "strict")
    data = "".join(line + "\n" for line in records)
    async with cancel_safe(aiofiles.open(path, "a", encoding=encoding)) as file:
        await file.write(data)
    return len(records)


async def _sync_file(file: AsyncTextIOWrapper) -> None:
    await file.flush()
    await run_in_thread(os.fsync, file.fileno())


def _copy_mode(source: str, destination: str) -> None:
    """Give ``destination`` the permission bits of ``source``, if it exists."""
    try:
        mode = os.stat(source).st_mode
    except FileNotFoundError:
        return
    os.chmod(destination, stat.S_IMODE(mode))


def _sync_directory(directory: str) -> None:
    """Make a rename in ``directory`` durable (POSIX; Windows needs no step)."""
    if os.name != "posix":
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some file systems cannot sync a directory; the rename is done anyway
    finally:
        os.close(descriptor)


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


@contextlib.asynccontextmanager
async def atomic_writer(
    path: Union[str, os.PathLike[str]],
    *,
    encoding: str = "utf-8",
    errors: str = "strict",
    newline: Optional[str] = None,
    durable: bool = True,
) -> AsyncIterator[AsyncTextIOWrapper]:
    """Write a text file through a temporary file that replaces ``path`` on success.

    Use it like ``aiofiles.open(path, "w")``; the new contents appear all at
    once when the ``async with`` block ends without an error:

    >>> import os, tempfile
    >>> from recipes.files import atomic_writer, read_text
    >>> tmp = tempfile.TemporaryDirectory()
    >>> report = os.path.join(tmp.name, "report.csv")
    >>> async with atomic_writer(report) as f:
    ...     for row in [("name", "score"), ("ada", "36"), ("grace", "85")]:
    ...         _ = await f.write(",".join(row) + "\\n")
    >>> print(await read_text(report), end="")
    name,score
    ada,36
    grace,85

    If the block raises or is cancelled, the temporary file is removed and
    ``path`` keeps its old contents:

    >>> async with atomic_writer(report) as f:
    ...     _ = await f.write("name,score\\n")
    ...     raise RuntimeError("the database went away")
    Traceback (most recent call last):
    ...
    RuntimeError: the database went away
    >>> print(await read_text(report), end="")
    name,score
    ada,36
    grace,85
    >>> os.listdir(tmp.name)
    ['report.csv']
    >>> tmp.cleanup()

    The temporary file takes the permission bits of the file it replaces.
    With ``durable=True`` (the default) the data is flushed to the disk
    (:func:`os.fsync`) before the rename, and on POSIX the directory is synced
    after it, so the new file also survives a power cut; pass
    ``durable=False`` for scratch files, where speed matters more.
    """
    _check_codec(encoding, errors)
    target = os.fspath(path)
    directory, name = os.path.split(target)
    if not name:
        raise ValueError(f"path must name a file, got {target!r}")
    # Same directory as the target: os.replace is atomic only within one file system.
    temporary = os.path.join(directory, f".{name}.{secrets.token_hex(6)}.tmp")
    opening = aiofiles.open(temporary, "x", encoding=encoding, errors=errors, newline=newline)
    try:
        async with cancel_safe(opening) as file:
            yield file
            if durable:
                await _sync_file(file)
            else:
                await file.flush()
        await run_in_thread(_copy_mode, target, temporary)
        # One quick metadata call, made directly: a cancellation arrives before
        # it (old file kept) or after it (new file in place), never during it.
        os.replace(temporary, target)
    except FileNotFoundError as exc:
        _remove_quietly(temporary)
        if exc.filename == temporary:  # name the directory, not our temporary file
            raise FileNotFoundError(exc.errno, "No such directory", directory or ".") from None
        raise
    except BaseException:
        # Synchronous for the same reason: an await here could be cancelled in
        # turn and leave the temporary file behind.
        _remove_quietly(temporary)
        raise
    if durable:
        await run_in_thread(_sync_directory, directory or os.curdir)


async def atomic_write_text(
    path: Union[str, os.PathLike[str]],
    text: str,
    *,
    encoding: str = "utf-8",
    durable: bool = True,
) -> None:
    """Replace the contents of ``path`` with ``text``, all at once or not at all.

    >>> import os, tempfile
    >>> from recipes.files import atomic_write_text, read_text
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = os.path.join(tmp.name, "greeting.txt")
    >>> await atomic_write_text(path, "hello\\n")
    >>> await read_text(path)
    'hello\\n'

    Text that the encoding cannot represent fails while writing, and the old
    file stays as it was:

    >>> await atomic_write_text(path, "naïve\\n", encoding="ascii")
    Traceback (most recent call last):
    ...
    UnicodeEncodeError: 'ascii' codec can't encode character '\\xef' in ...
    >>> await read_text(path), os.listdir(tmp.name)
    ('hello\\n', ['greeting.txt'])
    >>> tmp.cleanup()

    It is :func:`atomic_writer` with a single write; see there for
    ``durable`` and what happens on failure.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, not {type(text).__name__}")
    async with atomic_writer(path, encoding=encoding, durable=durable) as file:
        await file.write(text)


@contextlib.asynccontextmanager
async def cancel_safe(opening: Awaitable[F]) -> AsyncIterator[F]:
    """Open a file with aiofiles so that a cancellation cannot leak it; close it on exit.

    Wrap the ``aiofiles.open(...)`` call you would have written:

    >>> import asyncio, os, tempfile
    >>> import aiofiles
    >>> from recipes.files import cancel_safe
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = os.path.join(tmp.name, "data.txt")
    >>> async with cancel_safe(aiofiles.open(path, "w", encoding="utf-8")) as f:
    ...     await f.write("some data")
    9

    While the file is being opened, a cancellation waits until the open has
    finished, closes the file and then goes on; after that, the file is
    closed when the block ends, as with ``async with aiofiles.open(...)``.
    Further cancellations during either wait do not cut it short (the first
    one is already being honoured): they are raised once the file is closed.
    Here a reader is cancelled while it opens the file, and no
    ``ResourceWarning`` follows (the test run treats warnings as errors):

    >>> async def first_line(path):
    ...     async with cancel_safe(aiofiles.open(path, encoding="utf-8")) as f:
    ...         return await f.readline()
    >>> task = asyncio.create_task(first_line(path))
    >>> await asyncio.sleep(0)  # the task starts opening the file
    >>> task.cancel()
    True
    >>> try:
    ...     await task
    ... except asyncio.CancelledError:
    ...     print("cancelled; the file it opened is closed")
    cancelled; the file it opened is closed
    >>> tmp.cleanup()
    """
    pending = asyncio.ensure_future(opening)
    try:
        file = await asyncio.shield(pending)
    except asyncio.CancelledError:
        # The worker thread opens the file regardless: wait for it (even if
        # cancelled again meanwhile), close the file, then let the
        # cancellation continue.
        await _until_done(pending)
        if not pending.cancelled() and pending.exception() is None:
            # Nothing was done with the file: the cancellation is what matters.
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await _close(pending.result())
        raise
    try:
        yield file
    finally:
        await _close(file)


async def _until_done(future: asyncio.Future[Any]) -> bool:
    """Wait until *future* is done, whatever cancels us meanwhile; True if something did."""
    cancelled = False
    while not future.done():
        try:
            await asyncio.wait({future})
        except asyncio.CancelledError:
            cancelled = True
    return cancelled


async def _close(file: _AsyncFile) -> None:
    """Close *file* even if we are cancelled meanwhile; then raise that cancellation.

    Cancelling the await of a close that still waits for a worker thread would
    withdraw it, and the file would stay open.
    """
    closing = asyncio.ensure_future(file.close())
    if await _until_done(closing):
        if not closing.cancelled():
            closing.exception()  # retrieved; the cancellation takes precedence
        raise asyncio.CancelledError
    closing.result()


async def run_in_thread(func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run a blocking ``func(*args, **kwargs)`` in a worker thread and await its result.

    It is :func:`asyncio.to_thread` on Python 3.9+, and the equivalent
    ``run_in_executor`` call on 3.8.  One call can do a whole piece of
    blocking work with the ordinary synchronous APIs:

    >>> import tempfile
    >>> from pathlib import Path
    >>> from recipes.files import run_in_thread
    >>> tmp = tempfile.TemporaryDirectory()
    >>> folder = Path(tmp.name)
    >>> for name in ["b.txt", "a.txt", "c.log"]:
    ...     path = folder / name
    ...     _ = await run_in_thread(path.write_text, name, encoding="utf-8")
    >>> await run_in_thread(lambda: sorted(p.name for p in folder.glob("*.txt")))
    ['a.txt', 'b.txt']

    Exceptions come back to the awaiting task:

    >>> await run_in_thread((folder / "nope.txt").read_text, encoding="utf-8")
    Traceback (most recent call last):
    ...
    FileNotFoundError: [Errno 2] No such file or directory: '.../nope.txt'
    >>> tmp.cleanup()

    Context variables are copied into the thread, as :func:`asyncio.to_thread`
    does.  Cancelling the awaiting task does not stop the thread: the
    function runs to the end and its result is dropped, so keep the work
    short or make it check a flag.

    :func:`recipes.coroutines.run_in_thread` is the same helper in the
    :doc:`/recipes/coroutines` chapter; either one will do.
    """
    if sys.version_info >= (3, 9):
        return await asyncio.to_thread(func, *args, **kwargs)
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, func, *args, **kwargs)
    return await loop.run_in_executor(None, call)


def _load_json(path: Union[str, os.PathLike[str]], encoding: str) -> Any:
    with open(path, encoding=encoding) as file:
        text = file.read()
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        # Same exception type, with the file name in front of the message.
        raise json.JSONDecodeError(f"{os.fspath(path)}: {exc.msg}", exc.doc, exc.pos) from None


async def read_json(path: Union[str, os.PathLike[str]], *, encoding: str = "utf-8") -> Any:
    """Load a JSON file in a worker thread; a syntax error names the file.

    >>> import os, tempfile
    >>> from recipes.files import read_json, write_json
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = os.path.join(tmp.name, "config.json")
    >>> await write_json(path, {"debug": False, "workers": 4})
    >>> await read_json(path)
    {'debug': False, 'workers': 4}

    A broken file raises :exc:`json.JSONDecodeError`, with the file name added
    to the message:

    >>> with open(path, "w", encoding="utf-8") as f:
    ...     _ = f.write('{"debug": false,\\n "workers": }')
    >>> await read_json(path)  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    json.decoder.JSONDecodeError: .../config.json: Expecting value:
    line 2 column 13 (char 29)
    >>> tmp.cleanup()

    Reading and parsing happen in one thread round trip; for a file of
    megabytes that is much cheaper than ``aiofiles`` reads followed by
    parsing on the event loop.
    """
    return await run_in_thread(_load_json, path, encoding)


async def write_json(
    path: Union[str, os.PathLike[str]],
    data: Any,
    *,
    indent: Optional[int] = 2,
    encoding: str = "utf-8",
) -> None:
    """Write ``data`` as JSON, replacing the file atomically.

    >>> import os, tempfile
    >>> from recipes.files import read_json, read_text, write_json
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = os.path.join(tmp.name, "state.json")
    >>> await write_json(path, {"name": "Zoë", "tags": ["a", "b"]}, indent=None)
    >>> await read_text(path)
    '{"name": "Zoë", "tags": ["a", "b"]}\\n'

    Data that JSON cannot represent is refused before the file is touched, with
    the file's name in the message:

    >>> await write_json(path, {"when": object()})
    Traceback (most recent call last):
    ...
    TypeError: .../state.json: Object of type object is not JSON serializable...
    >>> await read_json(path)
    {'name': 'Zoë', 'tags': ['a', 'b']}

    .. versionchanged:: 3.14
       :mod:`json` also says where in the data the bad value sits, in a note
       on the exception (``when serializing dict item 'when'``); the message
       then ends with it:

    >>> try:
    ...     await write_json(path, {"user": {"when": object()}})
    ... except TypeError as exc:
    ...     print(str(exc).partition(" when ")[2])  # doctest: +PY314
    serializing dict item 'when' when serializing dict item 'user'
    >>> tmp.cleanup()

    .. index:: single: error messages; dictionary changed size during iteration

    The data is serialised on the event loop, not in a thread: another task
    could change a dict while a thread is walking it (``RuntimeError:
    dictionary changed size during iteration``).  Writing goes through
    :func:`atomic_write_text`.
    """
    try:
        text = json.dumps(data, indent=indent, ensure_ascii=False) + "\n"
    except (TypeError, ValueError) as exc:  # not serializable, circular, NaN with allow_nan...
        # Name the file; 3.14+ also notes where the value sits ("when serializing ...").
        where = " ".join(getattr(exc, "__notes__", ()))
        detail = f"{exc} {where}" if where else str(exc)
        raise type(exc)(f"{os.fspath(path)}: {detail}") from None
    await atomic_write_text(path, text, encoding=encoding)
