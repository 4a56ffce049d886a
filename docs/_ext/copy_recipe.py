"""Sphinx extension: a "Copy recipe" button and a download link on every public recipe.

Each reference entry of a name in a chapter's ``__all__`` gets, under its signature, a
button that copies the same self-contained snippet that ``python -m recipes copy
chapter.name`` prints (made by the same code, ``recipes/_snippets.py``, at build time),
a link to download it as a file, and its size.  The snippet travels in the page inside a
``<script type="text/x-python">`` element: the browser neither runs nor shows it, and
Sphinx's search index leaves script elements out, so the code is not indexed twice.
``_static/repl_paste.js`` does the copying.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Dict

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.locale import get_translation

from recipes._snippets import SnippetError, build_snippet, public_recipes

SNIPPETS = "_snippets"
# The labels are translated through locales/<language>/LC_MESSAGES/sphinx.po.
_ = get_translation("sphinx")


def _entry_html(chapter: str, name: str, relative: str, outdir: Path) -> str:
    snippet = build_snippet([f"{chapter}.{name}"])
    text = snippet.text
    if "</script" in text.lower() or "<!--" in text:
        raise SnippetError(f"{chapter}.{name}: the snippet cannot travel in a script element")
    folder = outdir / SNIPPETS
    folder.mkdir(parents=True, exist_ok=True)
    filename = f"{chapter}.{name}.py"
    (folder / filename).write_text(text, encoding="utf-8")
    distributions = ", ".join(r.distribution for r in snippet.requirements)
    if not snippet.requirements:
        needs = _("standard library only")
    elif all(r.condition for r in snippet.requirements):
        needs = _("needs %s on older Pythons") % distributions
    else:
        needs = _("needs %s") % distributions
    title = _("Copy %(name)s with every helper and import it needs (%(command)s)") % {
        "name": name,
        "command": f"python -m recipes copy {chapter}.{name}",
    }
    module = f"{snippet.module_name}.py"
    copied, failed = html.escape(_("Copied!")), html.escape(_("Copy failed"))
    size = _("%(lines)d lines, %(needs)s") % {"lines": snippet.lines, "needs": needs}
    return (
        '<div class="copy-recipe">'
        f'<button type="button" class="copy-recipe-button" title="{html.escape(title)}" '
        f'data-copied="{copied}" data-failed="{failed}">'
        f"{html.escape(_('Copy recipe'))}</button> "
        f'<a class="copy-recipe-download" href="{relative}{SNIPPETS}/{filename}" '
        f'download="{module}">{html.escape(_("Download %s") % module)}</a> '
        f'<span class="copy-recipe-size">{html.escape(size)}</span>'
        f'<script type="text/x-python" class="copy-recipe-text">{text}</script>'
        "</div>"
    )


def add_copy_buttons(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    if app.builder.format != "html":
        return
    relative = "../" * docname.count("/")
    public: Dict[str, set] = {}  # type: ignore[type-arg]
    for desc in list(doctree.findall(addnodes.desc)):
        if desc.get("domain") != "py":
            continue
        signature = next(iter(desc.findall(addnodes.desc_signature)), None)
        if signature is None:
            continue
        module = signature.get("module") or ""
        name = signature.get("fullname") or ""
        if not module.startswith("recipes.") or "." in name:
            continue  # not a chapter, or a method or attribute of a class
        chapter = module.split(".", 1)[1]
        if chapter not in public:
            public[chapter] = {n for n, _ in public_recipes(chapter)}
        if name not in public[chapter]:
            continue
        content = next(iter(desc.findall(addnodes.desc_content)))
        markup = _entry_html(chapter, name, relative, Path(app.outdir))
        content.insert(0, nodes.raw("", markup, format="html"))


def setup(app: Sphinx) -> Dict[str, Any]:
    app.connect("doctree-resolved", add_copy_buttons)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
