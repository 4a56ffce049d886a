"""The built HTML cookbook, used the way a reader uses it, in headless Chromium.

Run through ``tox -e browser``, which builds the cookbook first.  The HTML
directory comes from ``COOKBOOK_HTML`` (default ``docs/_build/html``); the
browser from ``COOKBOOK_CHROMIUM`` (default ``/usr/bin/chromium``).
Screenshots land in ``artifacts/screenshots/``.
"""

from __future__ import annotations

import re
from typing import List

import pytest

from browser_tests.conftest import ARTIFACTS, HTML, console_errors


def recipe_pages() -> List[str]:
    return sorted(p.name for p in (HTML / "recipes").glob("*.html"))


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


def test_copy_button_closes_compound_statements_for_the_repl(page, site: str) -> None:
    """A real click on a block with an ``async def``: the REPL needs the empty line after
    the body, and a final newline; the button still says it copied."""
    page.goto(f"{site}/recipes/tasks.html")
    block = page.locator("div.doctest", has_text=">>> async def").first
    block.scroll_into_view_if_needed()
    block.hover()
    button = block.locator("button.copybtn")
    button.click()
    copied = page.evaluate("navigator.clipboard.readText()")
    lines = copied.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith("async def "))
    end = next(i for i in range(start + 1, len(lines)) if not lines[i].startswith(" "))
    assert lines[end] == "", copied  # the body is closed by an empty line
    assert copied.endswith("\n"), copied
    assert button.get_attribute("data-tooltip") == "Copied!"


def test_version_matrix_lists_new_python_recipes(page, site: str) -> None:
    page.goto(f"{site}/versions.html")
    text = page.locator("article").inner_text()
    assert re.search(r"3\.11\+", text), "no 3.11+ entry"
    assert re.search(r"3\.13\+", text), "no 3.13+ entry"
    assert "TaskGroup" in text


def test_copy_recipe_button_copies_the_snippet(page, site: str) -> None:
    """The "Copy recipe" button of one public recipe gives exactly what
    ``python -m recipes copy limiting.bounded_gather`` prints, and so does its download."""
    from recipes._snippets import build_snippet

    expected = build_snippet(["limiting.bounded_gather"]).text
    page.goto(f"{site}/recipes/limiting.html")
    entry = page.locator("dl.py:has(> dt[id='recipes.limiting.bounded_gather'])")
    button = entry.locator("button.copy-recipe-button").first
    button.scroll_into_view_if_needed()
    assert button.inner_text() == "Copy recipe"
    button.click()
    assert page.evaluate("navigator.clipboard.readText()") == expected
    assert button.inner_text() == "Copied!"
    link = entry.locator("a.copy-recipe-download").first
    assert link.get_attribute("download") == "limiting.py"
    downloaded = page.evaluate(
        "(url) => fetch(url).then((r) => r.text())", link.get_attribute("href")
    )
    assert downloaded == expected
    assert (
        f"{expected.count(chr(10))} lines"
        in entry.locator("span.copy-recipe-size").first.inner_text()
    )


def test_every_public_recipe_has_a_copy_recipe_button(page, site: str) -> None:
    from recipes._snippets import chapters, public_recipes

    for chapter in chapters():
        page.goto(f"{site}/recipes/{chapter}.html")
        have = set(
            page.eval_on_selector_all(
                "dl.py:has(> dd > div.copy-recipe) > dt[id]", "(dts) => dts.map((dt) => dt.id)"
            )
        )
        wanted = {f"recipes.{chapter}.{name}" for name, _ in public_recipes(chapter)}
        assert have == wanted, chapter
