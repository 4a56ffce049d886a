"""Refresh the vendored intersphinx inventories in docs/_inventories/.

The docs build must work offline, so the ``objects.inv`` files that let the
cookbook link into the Python and aiohttp documentation are kept in the
repository.  Run this script now and then to bring them up to date:

    python tools/refresh_inventories.py

Each inventory is downloaded from its project's site when the network allows;
otherwise it is copied from the Debian documentation packages: the newest
``python3.X-doc`` found (``/usr/share/doc/python3.X/html/objects.inv``, or an
extracted copy under ``--debian-docs DIR``) and ``python-aiohttp-doc``.  On
Debian 12, the 3.15 one comes from the unstable suite, downloaded and extracted
without installing it, as ``.ci/provision-pythons`` does for interpreters::

    apt-get download python3.15-doc   # with a private apt configuration for sid
    dpkg-deb -x python3.15-doc_*.deb /tmp/pydoc
    python tools/refresh_inventories.py --debian-docs /tmp/pydoc

An inventory that can be found nowhere is left as it is, and the script says so.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import urllib.request
import zlib
from pathlib import Path
from typing import List, Optional, Tuple

TARGET = Path(__file__).resolve().parent.parent / "docs" / "_inventories"
SOURCES = {
    "python.inv": ("https://docs.python.org/3/objects.inv", "python3.*/html/objects.inv"),
    "aiohttp.inv": (
        "https://docs.aiohttp.org/en/stable/objects.inv",
        "python-aiohttp-doc/html/objects.inv",
    ),
}


def newest_local(pattern: str, roots: List[Path]) -> Optional[Path]:
    """The inventory matching ``pattern`` under ``roots``' usr/share/doc, newest version first."""
    found = [
        path
        for root in roots
        for path in (root / "usr" / "share" / "doc").glob(pattern)
        if path.is_file() and looks_like_inventory(path.read_bytes())
    ]

    def version(path: Path) -> Tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", path.parts[-3]))

    return max(found, key=version, default=None)


def looks_like_inventory(data: bytes) -> bool:
    """True if ``data`` is a Sphinx version-2 inventory whose body decompresses."""
    header, _, body = data.partition(b"# The remainder of this file is compressed using zlib.\n")
    if not header.startswith(b"# Sphinx inventory version 2") or not body:
        return False
    try:
        zlib.decompress(body)
    except zlib.error:
        return False
    return True


def fetch(url: str, timeout: float = 10.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return bytes(response.read())


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--debian-docs",
        type=Path,
        action="append",
        default=[],
        help="a folder where Debian doc packages were extracted (dpkg-deb -x)",
    )
    args = parser.parse_args(argv)
    roots = [*args.debian_docs, Path("/")]
    TARGET.mkdir(parents=True, exist_ok=True)
    missing = 0
    for name, (url, pattern) in SOURCES.items():
        try:
            data = fetch(url)
            if not looks_like_inventory(data):
                raise ValueError("not a Sphinx inventory")
            (TARGET / name).write_bytes(data)
            print(f"{name}: downloaded from {url}")
            continue
        except Exception as exc:  # offline, DNS failure, HTTP error, bad body
            print(f"{name}: download failed ({exc.__class__.__name__}: {exc})")
        local = newest_local(pattern, roots)
        if local is not None:
            shutil.copyfile(local, TARGET / name)
            print(f"{name}: copied from {local}")
        elif (TARGET / name).is_file():
            print(f"{name}: kept the vendored copy")
        else:
            print(f"{name}: no source found", file=sys.stderr)
            missing += 1
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
