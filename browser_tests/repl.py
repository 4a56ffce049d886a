"""Drive a real ``python -m asyncio`` the way a reader does: paste one block, read, repeat.

Below 3.13 the REPL is the classic one, which reads a paste from standard input line by
line, as it reads a terminal.  From 3.13 the REPL a reader meets is the new one, at a
terminal: it gets the text as a bracketed paste through a pseudo-terminal (piped input
would get a fallback console that takes one line at a time and rejects every multi-line
statement).  After each block a marker is printed, so what a block printed is known.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time
from pathlib import Path
from typing import List, NamedTuple, Optional, Sequence

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]|\r")
# What a paste must never produce: the code did not parse, used a name nobody defined or
# imported, or started a second event loop inside the REPL's.
FAILURES = re.compile(
    r"^\s*(?P<line>(SyntaxError|IndentationError|TabError|NameError|UnboundLocalError): .*"
    r"|(ImportError|ModuleNotFoundError): .*"
    r"|RuntimeError: .*(cannot be called from a running event loop|is already running).*)$",
    re.MULTILINE,
)


class ReplError(AssertionError):
    pass


def _marker(number: int) -> str:
    return f"@@block-{number}-done@@"


def _print_marker(number: int) -> str:
    # Built at run time, so that the REPL's echo of this line never contains the marker.
    return f'print("@@block-" + "{number}" + "-done@@")\n'


class Repl:
    """One ``python -m asyncio`` session; ``paste(text)`` returns what the block printed."""

    def __init__(self, python: str, cwd: Path, *, terminal: bool) -> None:
        self.terminal = terminal
        self.count = 0
        self.transcript = ""
        env = {
            **os.environ,
            "PYTHON_COLORS": "0",
            "NO_COLOR": "1",
            "TERM": "xterm",
            "PYTHONDONTWRITEBYTECODE": "1",
            # The recipes of this checkout, whatever the interpreter has installed.
            "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
        }
        env.pop("PYTHON_BASIC_REPL", None)
        env.pop("PYTHONSTARTUP", None)
        if terminal:
            # No fork of this (threaded) process: the REPL starts on a pty's slave end.
            self.fd, slave = pty.openpty()
            self.process = subprocess.Popen(
                [python, "-m", "asyncio"],
                cwd=cwd,
                env=env,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                start_new_session=True,
            )
            os.close(slave)
        else:
            self.process = subprocess.Popen(
                [python, "-m", "asyncio"],
                cwd=cwd,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            assert self.process.stdout is not None
            self.fd = self.process.stdout.fileno()
        self._buffer = ""
        # The asyncio REPL shows ">>> import asyncio" itself, then its first real prompt.
        self._read_until(">>> import asyncio", timeout=60)
        self._read_until(">>> ", timeout=60)

    def _write(self, data: bytes) -> None:
        if self.terminal:
            for start in range(0, len(data), 512):  # a terminal takes a paste in pieces
                os.write(self.fd, data[start : start + 512])
        else:
            assert self.process.stdin is not None
            self.process.stdin.write(data)
            self.process.stdin.flush()

    def _read_until(self, needle: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while needle not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ReplError(
                    f"no {needle!r} after {timeout} s; output:\n{self._buffer[-3000:]}"
                )
            ready, _, _ = select.select([self.fd], [], [], min(left, 0.5))
            if ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:  # the REPL exited
                    chunk = b""
                if not chunk:
                    raise ReplError(f"the REPL exited; output:\n{self._buffer[-3000:]}")
                self._buffer += ANSI.sub("", chunk.decode("utf-8", "replace"))
        before, _, after = self._buffer.partition(needle)
        self._buffer = after
        self.transcript += before + needle
        return before

    def _settle(self, quiet: float = 0.2, limit: float = 10.0) -> None:
        """Read output until none has come for ``quiet`` seconds."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.fd], [], [], quiet)
            if not ready:
                return
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return
            self._buffer += ANSI.sub("", chunk.decode("utf-8", "replace"))

    def paste(self, text: str, timeout: float = 120) -> str:
        """Paste ``text`` (what the copy button gave) and return what it printed."""
        self.count += 1
        marker = _print_marker(self.count)
        if self.terminal:
            # One paste, Enter, and the REPL's next prompt before anything else is typed.
            body = text.replace("\n", "\r").encode()
            self._write(b"\x1b[200~" + body + b"\x1b[201~")
            # The REPL of 3.14 and later ignores an Enter that arrives with the end of the
            # paste: press it once the paste has been echoed, as a person would.
            self._settle()
            self._write(b"\r")
            printed = self._read_until(">>> ", timeout)
            self._write(b"\x1b[200~" + marker.rstrip("\n").encode() + b"\x1b[201~")
            self._settle()
            self._write(b"\r")
            printed += self._read_until(_marker(self.count), timeout)
        else:
            self._write(text.encode() + b"\n" + marker.encode())
            printed = self._read_until(_marker(self.count), timeout)
        self._read_until(">>> ", timeout)  # the next prompt: the REPL is ready for more
        return printed

    def close(self) -> None:
        self.process.kill()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()
        if self.terminal:
            os.close(self.fd)


def failures(output: str) -> List[str]:
    """The lines of ``output`` that show a paste went wrong."""
    return [match.group("line") for match in FAILURES.finditer(output)]


class Problem(NamedTuple):
    number: int  # 1 for the first block
    block: str
    line: str  # the error line the REPL printed

    def __str__(self) -> str:
        return f"block {self.number}:\n{self.block}-> {self.line}"


def run_session(
    python: str,
    cwd: Path,
    blocks: Sequence[str],
    *,
    terminal: bool,
    setup: str = "",
    transcript: Optional[Path] = None,
) -> List[Problem]:
    """Paste ``blocks`` in order; return each failure line, with its block.

    ``transcript`` names a file that gets everything the session showed.
    """
    repl = Repl(python, cwd, terminal=terminal)
    problems: List[Problem] = []
    try:
        if setup:
            repl.paste(setup)
        for number, block in enumerate(blocks, start=1):
            output = repl.paste(block)
            problems.extend(Problem(number, block, line) for line in failures(output))
    finally:
        repl.close()
        if transcript is not None:
            transcript.write_text(repl.transcript)
    return problems
