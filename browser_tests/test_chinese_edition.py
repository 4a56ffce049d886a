"""The Chinese edition (``zh_CN/`` under the English one), as a Chinese-speaking reader meets it.

- the landing page and a chapter load without errors, in Chinese, with furo's labels in
  Chinese too;
- their Chinese text is drawn with a font that has Chinese glyphs (no boxes): Chromium says
  which fonts drew a text node, and each must be one fontconfig lists for Chinese;
- every page of both editions links to the same page in the other edition, and following the
  link there and back returns to where the reader started;
- the search finds chapters by their Chinese terms.

Screenshots of the Chinese landing page and a chapter at 1400 and 420 px land in
``artifacts/screenshots/``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable, List, Set, Tuple
from urllib.parse import urljoin

import pytest

from browser_tests.conftest import ARTIFACTS, HTML, all_pages, console_errors

ZH = "zh_CN"
CHAPTER = "recipes/limiting.html"
CJK = re.compile(r"[\u3400-\u9fff]")

# Chinese ideographs, including the rare ones outside the basic block (the canary uses them).
IDEOGRAPH = re.compile("[\u3400-\u9fff\U00020000-\U0003134f]")

# The first element whose own text is all Chinese, marked for the font query below.
MARK_CHINESE_TEXT = """
(selector) => {
  const only = /^[\\u3400-\\u9fff\\uff0c\\u3002\\u3001\\uff1a\\uff08\\uff09]{2,}$/u;
  for (const el of document.querySelectorAll(selector)) {
    const own = Array.from(el.childNodes)
      .filter(n => n.nodeType === Node.TEXT_NODE).map(n => n.textContent).join("").trim();
    if (el.id === "cjk-canary" || only.test(own)) {
      el.setAttribute("data-cjk-probe", "1");
      return own;
    }
  }
  return null;
}
"""


def chinese_fonts() -> Set[str]:
    """Font families that fontconfig says can draw Chinese (every name of each family)."""
    fc_list = shutil.which("fc-list")
    assert fc_list, "fc-list (fontconfig) is missing: Chromium draws text through it"
    output = subprocess.run(
        [fc_list, ":lang=zh", "family"], capture_output=True, text=True, check=True
    ).stdout
    return {name.strip() for line in output.splitlines() for name in line.split(",") if name}


def missing_glyphs(page: Any, selector: str) -> Tuple[str, int, List[str]]:
    """For the first all-Chinese element: its text, how many of its ideographs no Chinese font
    drew (each one a box on the screen), and the fonts Chromium used for it."""
    text = page.evaluate(MARK_CHINESE_TEXT, selector)
    assert text, f"no all-Chinese text in {selector}"
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument")["root"]["nodeId"]
    node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": "[data-cjk-probe]"})
    fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node["nodeId"]})["fonts"]
    chinese = chinese_fonts()
    drawn = sum(f["glyphCount"] for f in fonts if f["familyName"] in chinese)
    ideographs = len(IDEOGRAPH.findall(text))
    return text, max(0, ideographs - drawn), [f["familyName"] for f in fonts]


def zh_pages() -> List[str]:
    return [name for name in all_pages() if name.startswith(ZH + "/")]


def en_pages() -> List[str]:
    return [name for name in all_pages() if not name.startswith(ZH + "/")]


def test_both_editions_have_the_same_pages() -> None:
    assert zh_pages(), f"no Chinese edition in {HTML / ZH}"
    assert sorted(n[len(ZH) + 1 :] for n in zh_pages()) == en_pages()


@pytest.mark.parametrize("name", ["index.html", CHAPTER])
@pytest.mark.parametrize("width", [1400, 420])
def test_chinese_page_loads_in_chinese_with_chinese_glyphs(
    page_at: Callable[[int], Any], site: str, name: str, width: int
) -> None:
    page = page_at(width)
    errors = console_errors(page)
    response = page.goto(f"{site}/{ZH}/{name}")
    assert response is not None and response.ok
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert CJK.search(page.locator("article h1").inner_text())
    assert "中文版" in page.title()
    # furo's labels: "Back to top" (in the DOM at every width), the links to the next and
    # previous pages, and the footer furo writes without a translation call
    labels = (
        page.locator(".back-to-top").inner_text() + page.locator(".related-pages").inner_text()
    )
    assert "返回顶部" in labels and "Back to top" not in labels
    assert "下一章" in labels and "Next" not in labels
    footer = page.locator(".bottom-of-page").inner_text()
    assert "构建" in footer and "Made with" not in footer, footer
    text, boxes, fonts = missing_glyphs(page, "article h1, article h2, article h3, article p")
    assert boxes == 0, (text, fonts)
    assert set(fonts) & chinese_fonts(), fonts
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = f"zh-{Path(name).stem}-{width}.png"
    page.screenshot(path=str(ARTIFACTS / shot), full_page=False)
    assert errors == []


def test_glyph_check_sees_boxes(page_at: Callable[[int], Any], site: str) -> None:
    """The glyph check counts boxes (a canary): ideographs from CJK Extension G, which the
    small font lacks, are drawn as boxes, and the check must say so."""
    page = page_at(1400)
    page.goto(f"{site}/{ZH}/index.html")
    page.evaluate(
        """() => {
          const p = document.createElement("p");
          p.id = "cjk-canary";
          p.textContent = "\\u{30000}\\u{30001}\\u{30002}";
          document.querySelector("article").prepend(p);
        }"""
    )
    text, boxes, fonts = missing_glyphs(page, "#cjk-canary")
    assert len(IDEOGRAPH.findall(text)) == 3, text
    assert boxes == 3, fonts


LINK = re.compile(r'<p class="language-switch"><a href="([^"]+)"')


@pytest.mark.parametrize("name", all_pages())
def test_every_page_links_to_itself_in_the_other_edition(name: str) -> None:
    links = LINK.findall((HTML / name).read_text(encoding="utf-8"))
    assert len(links) == 1, f"{name}: {len(links)} language links"
    other = urljoin(f"http://site/{name}", links[0])[len("http://site/") :]
    expected = name[len(ZH) + 1 :] if name.startswith(ZH + "/") else f"{ZH}/{name}"
    assert other == expected
    assert (HTML / other).exists(), other


@pytest.mark.parametrize(
    "name", ["index.html", CHAPTER, "pitfalls.html", "recipes/task_groups.html"]
)
def test_language_links_round_trip(page, site: str, name: str) -> None:
    errors = console_errors(page)
    page.goto(f"{site}/{name}")
    english_title = page.locator("article h1").inner_text()
    page.locator("p.language-switch a").click()
    page.wait_for_load_state()
    assert page.url == f"{site}/{ZH}/{name}"
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    page.locator("p.language-switch a").click()
    page.wait_for_load_state()
    assert page.url == f"{site}/{name}"
    assert page.locator("article h1").inner_text() == english_title
    assert errors == []


@pytest.mark.parametrize(
    ("term", "expected_page"),
    [
        ("信号量", "recipes/limiting.html"),
        ("令牌桶", "recipes/limiting.html"),
        ("任务组", "recipes/task_groups.html"),
        ("取消", "recipes/cancellation.html"),
    ],
)
def test_chinese_search_finds_the_chapter(page, site: str, term: str, expected_page: str) -> None:
    page.goto(f"{site}/{ZH}/index.html")
    page.locator("input[name='q']").first.fill(term)
    page.locator("input[name='q']").first.press("Enter")
    page.wait_for_selector("#search-results ul.search li", timeout=15000)
    page.wait_for_function(
        "() => !document.querySelector('#search-results .search-summary')"
        "  || document.querySelector('#search-results .search-summary').textContent.trim()"
    )
    links = page.locator("#search-results ul.search li a").evaluate_all(
        "links => links.map(a => a.getAttribute('href'))"
    )
    # Among the first five results, as a reader scanning the list would find it.
    top = [link.split("#")[0] for link in links[:5]]
    assert any(link.endswith(expected_page) for link in top), links[:10]
