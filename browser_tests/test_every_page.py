"""Every page of the built cookbook, at a desktop width and a phone width, shows no error.

Sphinx marks what it could not render (``.system-message``, ``.problematic``); furo draws
some of its complaints with CSS (``content: "ERROR: ..."`` on a ``::before``), which no
HTML check sees: the computed style of every element is read here.  The page must also
load without console errors and, at 420 px, not scroll sideways: only code blocks and
tables may be wider than the screen (they scroll inside themselves).
"""

from __future__ import annotations

from typing import Any, Callable, List

import pytest

from browser_tests.conftest import all_pages, console_errors

WIDTHS = (1400, 420)

FIND_RENDERED_ERRORS = """
() => {
  const found = [];
  for (const el of document.querySelectorAll(".system-message, .problematic")) {
    found.push("Sphinx: " + el.textContent.trim().slice(0, 120));
  }
  const complaint = /error|warning|unnecessary|not supported|deprecated/i;
  for (const el of document.querySelectorAll("body, body *")) {
    for (const pseudo of ["::before", "::after"]) {
      const content = getComputedStyle(el, pseudo).content;
      if (content && content !== "none" && content !== "normal" && complaint.test(content)) {
        found.push(`CSS ${el.tagName.toLowerCase()}.${el.className}${pseudo}: ${content}`);
      }
    }
  }
  return found;
}
"""

# Elements that stick out on the right, outside the boxes that may scroll on their own.
FIND_OVERFLOW = """
() => {
  const width = document.documentElement.clientWidth;
  const scrolling = "pre, table, .highlight, .table-wrapper, .sig, .MathJax";
  const found = [];
  for (const el of document.querySelectorAll("article *")) {
    if (el.closest(scrolling)) continue;
    const box = el.getBoundingClientRect();
    if (box.width > 0 && box.right > width + 1) {
      found.push(`${el.tagName.toLowerCase()} ${Math.round(box.right)}px: `
                 + (el.textContent || "").trim().slice(0, 60));
    }
  }
  const page = document.documentElement.scrollWidth;
  if (page > width + 1) found.unshift(`the page is ${page}px wide on a ${width}px screen`);
  return found.slice(0, 10);
}
"""


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", all_pages())
def test_page_shows_no_error_and_fits_the_screen(
    page_at: Callable[[int], Any], site: str, name: str, width: int
) -> None:
    page = page_at(width)
    errors = console_errors(page)
    response = page.goto(f"{site}/{name}")
    assert response is not None and response.ok, name
    page.wait_for_load_state("load")
    rendered: List[str] = page.evaluate(FIND_RENDERED_ERRORS)
    assert rendered == [], f"{name} at {width}px shows: {rendered}"
    if width <= 420:
        overflow: List[str] = page.evaluate(FIND_OVERFLOW)
        assert overflow == [], f"{name} scrolls sideways at {width}px: {overflow}"
    assert errors == [], f"{name} at {width}px: {errors}"


def test_the_checks_see_a_furo_css_error(page_at: Callable[[int], Any], site: str) -> None:
    """The CSS check finds what furo draws for a ``.. contents::`` directive (a canary)."""
    page = page_at(1400)
    page.goto(f"{site}/index.html")
    page.evaluate(
        """() => {
          const nav = document.createElement("nav");
          nav.className = "contents";
          document.querySelector("article").appendChild(nav);
        }"""
    )
    rendered = page.evaluate(FIND_RENDERED_ERRORS)
    assert any("CSS" in line and "ERROR" in line for line in rendered), rendered
