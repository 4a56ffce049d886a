"""Refresh the vendored intersphinx inventories in docs/_inventories/.

The docs build must work offline, so the ``objects.inv`` files that let the
cookbook link into the Python and aiohttp documentation are kept in the
repository.  Run this script now and then to bring them up to date:

    python tools/refresh_inventories.py

Each inventory is downloaded from its project's site when the network allows;
otherwise it is copied from the Debian documentation packages
(``apt-get install python3.11-doc python-aiohttp-doc``).  An inventory that can
be found nowhere is left as it is, and the script says so.
"""

from __future__ import annotations

import shutil
import sys
import urllib.request
import zlib
from pathlib import Path

TARGET = Path(__file__).resolve().parent.parent / "docs" / "_inventories"
SOURCES = {
    "python.inv": (
        "https://docs.python.org/3/objects.inv",
        "/usr/share/doc/python3.11/html/objects.inv",
    ),
    "aiohttp.inv": (
        "https://docs.aiohttp.org/en/stable/objects.inv",
        "/usr/share/doc/python-aiohttp-doc/html/objects.inv",
    ),
}


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


def main() -> int:
    TARGET.mkdir(parents=True, exist_ok=True)
    missing = 0
    for name, (url, local) in SOURCES.items():
        try:
            data = fetch(url)
            if not looks_like_inventory(data):
                raise ValueError("not a Sphinx inventory")
            (TARGET / name).write_bytes(data)
            print(f"{name}: downloaded from {url}")
            continue
        except Exception as exc:  # offline, DNS failure, HTTP error, bad body
            print(f"{name}: download failed ({exc.__class__.__name__}: {exc})")
        if Path(local).is_file() and looks_like_inventory(Path(local).read_bytes()):
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
