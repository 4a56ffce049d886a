"""The built HTML cookbook, used the way a reader uses it, in headless Chromium.

Run through ``tox -e browser``, which builds the cookbook first.  The HTML
directory comes from ``COOKBOOK_HTML`` (default ``docs/_build/html``); the
browser from ``COOKBOOK_CHROMIUM`` (default ``/usr/bin/chromium``).
Screenshots land in ``artifacts/screenshots/``.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import threading
from pathlib import Path
from typing import Iterator, List

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


def _unavailable(reason: str) -> None:
    if REQUIRED:
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason, allow_module_level=True)


if not Path(CHROMIUM).exists():
    _unavailable(f"no Chromium at {CHROMIUM} (install Debian's chromium or set COOKBOOK_CHROMIUM)")
if not (HTML / "index.html").exists():
    _unavailable(f"no built cookbook in {HTML} (tox -e browser builds it)")
playwright_sync = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


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
def browser(site: str) -> Iterator[playwright_sync.Browser]:
    with playwright_sync.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: playwright_sync.Browser, site: str) -> Iterator[playwright_sync.Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


def recipe_pages() -> List[str]:
    return sorted(p.name for p in (HTML / "recipes").glob("*.html"))


def console_errors(page: playwright_sync.Page) -> List[str]:
    errors: List[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "response",
        lambda r: errors.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None,
    )
    return errors


def test_there_are_recipe_pages() -> None:
    assert len(recipe_pages()) >= 3, recipe_pages()


def test_landing_page_loads_without_console_errors(page, site: str) -> None:
    errors = console_errors(page)
    response = page.goto(f"{site}/index.html")
    assert response is not None and response.ok
    assert "asyncio cookbook" in page.title()
    assert page.locator("text=How to use a recipe").count() >= 1
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "landing.png"), full_page=False)
    assert errors == []


@pytest.mark.parametrize("name", recipe_pages())
def test_recipe_page_loads_without_console_errors(page, site: str, name: str) -> None:
    errors = console_errors(page)
    response = page.goto(f"{site}/recipes/{name}")
    assert response is not None and response.ok
    assert page.locator("article h1").count() == 1
    assert errors == []


def test_navigation_reaches_every_section(page, site: str) -> None:
    page.goto(f"{site}/index.html")
    captions = page.locator(".sidebar-tree p.caption").all_inner_texts()
    assert {"basics", "going further"} <= {c.strip().lower() for c in captions}, captions
    hrefs = page.locator(".sidebar-tree a.reference.internal").evaluate_all(
        "links => links.map(a => a.getAttribute('href'))"
    )
    assert hrefs, "the sidebar has no links"
    for href in hrefs:
        page.goto(f"{site}/index.html")
        page.locator(f".sidebar-tree a.reference.internal[href='{href}']").first.click()
        page.wait_for_load_state()
        assert page.url.split("#")[0].endswith(href.split("#")[0]), (href, page.url)
        assert page.locator("article h1").count() == 1


@pytest.mark.parametrize(
    ("term", "expected_page"),
    [("TaskGroup", "recipes/task_groups.html"), ("Semaphore", "recipes/limiting.html")],
)
def test_search_finds_the_right_page(page, site: str, term: str, expected_page: str) -> None:
    page.goto(f"{site}/index.html")
    page.locator("input[name='q']").first.fill(term)
    page.locator("input[name='q']").first.press("Enter")
    page.wait_for_selector("#search-results ul.search li", timeout=15000)
    links = page.locator("#search-results ul.search li a").evaluate_all(
        "links => links.map(a => a.getAttribute('href'))"
    )
    assert any(expected_page in (link or "") for link in links), links


def test_copy_button_copies_code_without_prompts_or_output(page, site: str) -> None:
    page.goto(f"{site}/recipes/tasks.html")
    block = page.locator("div.highlight-pycon, div.doctest").first
    block.scroll_into_view_if_needed()
    shown = block.inner_text()
    assert ">>> " in shown
    block.hover()
    block.locator("button.copybtn").click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.strip(), "nothing was copied"
    for line in copied.splitlines():
        assert not line.startswith((">>>", "... ")), line
    # An output line (shown without a prompt) must not be copied.
    outputs = [
        line
        for line in shown.splitlines()
        if line.strip() and not line.startswith((">>>", "...")) and line not in copied
    ]
    assert outputs, "the first example shows no output to leave out"
    compile(copied, "<copied>", "exec", flags=__import__("ast").PyCF_ALLOW_TOP_LEVEL_AWAIT)
    page.screenshot(path=str(ARTIFACTS / "recipe.png"), full_page=False)


def test_version_matrix_lists_new_python_recipes(page, site: str) -> None:
    page.goto(f"{site}/versions.html")
    text = page.locator("article").inner_text()
    assert re.search(r"3\.11\+", text), "no 3.11+ entry"
    assert re.search(r"3\.13\+", text), "no 3.13+ entry"
    assert "TaskGroup" in text
