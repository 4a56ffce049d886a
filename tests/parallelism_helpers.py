"""Functions that tests/test_parallelism.py sends to worker processes.

They must live in an importable module (not in the test file's ``__main__``
namespace, and not as closures): the workers import them by name.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def mark_then_sleep(folder: str, name: str, seconds: float) -> int:
    """Create ``folder/name`` (proof that the call started), sleep, return the pid."""
    Path(folder, name).touch()
    time.sleep(seconds)
    Path(folder, name + ".done").touch()
    return os.getpid()


def worker_pid() -> int:
    return os.getpid()


def crash_on(value: int, bad: int) -> int:
    """Return ``value * 2``, or end the worker process abruptly when ``value == bad``."""
    if value == bad:
        os._exit(3)
    return value * 2


def fail_on(value: int, bad: int) -> int:
    if value == bad:
        raise ValueError(f"bad value {value}")
    return value * 2
