"""Sphinx extension: what the Chinese edition needs beyond the catalogs.

- Search: Sphinx's Chinese indexer segments words with jieba; the glossary's Chinese terms
  (``locales/zh_CN/glossary.tsv``) become jieba's user dictionary, so that 令牌桶 or 任务组 are
  indexed as words and not only as their parts.  jieba's DEBUG lines are silenced.
- furo's labels: most come through ``{% trans %}`` and ``locales/zh_CN/LC_MESSAGES/sphinx.po``;
  the few furo writes without it (icon titles, toggle labels, the "Made with" line) are put
  through the same catalog after the page is rendered.
- Each page's link to the same page in the other edition is in ``_templates/page.html``; the
  English edition is at the root, the Chinese one in ``zh_CN/`` under it.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Dict, List

from sphinx.application import Sphinx
from sphinx.locale import get_translation

_ = get_translation("sphinx")

# Written by furo without a translation call (furo 2024-2025): translated through sphinx.po.
FURO_FIXED_LABELS = [
    "Contents",
    "Menu",
    "Expand",
    "Light mode",
    "Dark mode",
    "Auto light/dark, in light mode",
    "Auto light/dark, in dark mode",
    "Toggle site navigation sidebar",
    "Toggle table of contents sidebar",
    "Toggle Light / Dark / Auto color theme",
]
_MADE_WITH = re.compile(
    r"Made with\s*(<a href=\"https://www.sphinx-doc.org/\">Sphinx</a>)\s*and\s*"
    r"(<a class=\"muted-link\" href=\"https://pradyunsg.me\">@pradyunsg</a>)'s\s*"
    r"(<a href=\"https://github.com/pradyunsg/furo\">Furo</a>)"
)


def is_chinese(app: Sphinx) -> bool:
    return (app.config.language or "").startswith("zh")


def glossary_terms(path: Path) -> List[str]:
    """The Chinese column of the glossary, one term per line."""
    terms = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            terms.append(line.split("\t")[1])
    return terms


def write_user_dictionary(glossary: Path, target: Path) -> Path:
    """A jieba user dictionary (``word frequency``) of the glossary's Chinese terms."""
    target.parent.mkdir(parents=True, exist_ok=True)
    # A high frequency makes jieba keep the whole term as one word.
    lines = [f"{term} 100000" for term in sorted(set(glossary_terms(glossary)))]
    text = "\n".join(lines) + "\n"
    if not target.exists() or target.read_text(encoding="utf-8") != text:
        target.write_text(text, encoding="utf-8")
    return target


def translate_chrome(html: str) -> str:
    for label in FURO_FIXED_LABELS:
        translated = _(label)
        if translated != label:
            html = html.replace(f"<title>{label}</title>", f"<title>{translated}</title>")
            html = html.replace(f'aria-label="{label}"', f'aria-label="{translated}"')
    made_with = _("Made with %(sphinx)s and %(author)s's %(furo)s")
    return _MADE_WITH.sub(
        lambda m: made_with % {"sphinx": m.group(1), "author": m.group(2), "furo": m.group(3)},
        html,
    )


def on_builder_inited(app: Sphinx) -> None:
    if not is_chinese(app) or app.builder.format != "html":
        return
    import jieba  # the Chinese search needs it; a missing jieba indexes no Chinese at all

    jieba.setLogLevel(logging.WARNING)
    confdir = Path(app.confdir)
    dictionary = write_user_dictionary(
        confdir / "locales" / "zh_CN" / "glossary.tsv",
        Path(app.doctreedir) / "jieba_user_dictionary.txt",
    )
    app.config.html_search_options = {"dict": str(dictionary)}
    app.config.html_title = _(app.config.html_title)
    templates: Any = app.builder.templates  # type: ignore[attr-defined]
    render = templates.render

    def render_translated(template: str, context: Dict[str, Any]) -> str:
        return translate_chrome(render(template, context))

    templates.render = render_translated


def setup(app: Sphinx) -> Dict[str, Any]:
    app.connect("builder-inited", on_builder_inited)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
