"""Shared fixtures of the browser tests: the built cookbook served on 127.0.0.1, Chromium.

The HTML directory comes from ``COOKBOOK_HTML`` (default ``docs/_build/html``); the browser
from ``COOKBOOK_CHROMIUM`` (default ``/usr/bin/chromium``).  Without either the tests are
skipped with the reason, except under ``COOKBOOK_REQUIRE_BROWSER=1`` (CI), where they fail.
"""

from __future__ import annotations

import functools
import http.server
import os
import threading
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional

import pytest

ROOT = Path(__file__).resolve().parent.parent
HTML = Path(os.environ.get("COOKBOOK_HTML", ROOT / "docs" / "_build" / "html"))
CHROMIUM = os.environ.get("COOKBOOK_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# CI sets COOKBOOK_REQUIRE_BROWSER=1: there a missing browser is a failure, not a skip.
REQUIRED = os.environ.get("COOKBOOK_REQUIRE_BROWSER", "") not in ("", "0")


def unavailable() -> Optional[str]:
    """Why the browser tests cannot run here, or None."""
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (install Debian's chromium or set COOKBOOK_CHROMIUM)"
    if not (HTML / "index.html").exists():
        return f"no built cookbook in {HTML} (tox -e browser builds it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed"
    return None


def pytest_collection_modifyitems(items: List[pytest.Item]) -> None:
    reason = unavailable()
    if reason is None:
        return
    for item in items:
        # CI sets COOKBOOK_REQUIRE_BROWSER=1: there a missing browser fails, never skips.
        if REQUIRED:
            item.add_marker(pytest.mark.usefixtures("_browser_required"))
        else:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def _browser_required() -> None:
    reason = unavailable()
    if reason is not None:
        pytest.fail(reason, pytrace=False)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    handler = functools.partial(QuietHandler, directory=str(HTML))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def browser(site: str) -> Iterator[Any]:
    from playwright import sync_api

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Any, site: str) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def page_at(browser: Any) -> Iterator[Callable[[int], Any]]:
    """``page_at(width)``: a new page with a viewport that wide; closed after the test."""
    contexts: List[Any] = []

    def open_page(width: int) -> Any:
        contexts.append(browser.new_context(viewport={"width": width, "height": 900}))
        return contexts[-1].new_page()

    try:
        yield open_page
    finally:
        for context in contexts:
            context.close()


def console_errors(page: Any) -> List[str]:
    """Collect console errors, uncaught page errors and failed requests of ``page``."""
    errors: List[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "response",
        lambda r: errors.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None,
    )
    return errors


def all_pages() -> List[str]:
    """Every page of the built book, relative to its root (search and index included), in
    both editions: the Chinese one is in ``zh_CN/``."""
    return sorted(
        path.relative_to(HTML).as_posix()
        for path in HTML.rglob("*.html")
        if not {"_modules", "_static", "_sources"} & set(path.relative_to(HTML).parts)
    )
