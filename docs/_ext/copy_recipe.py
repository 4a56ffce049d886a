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

from recipes._snippets import SnippetError, build_snippet, public_recipes

SNIPPETS = "_snippets"


def _entry_html(chapter: str, name: str, relative: str, outdir: Path) -> str:
    snippet = build_snippet([f"{chapter}.{name}"])
    text = snippet.text
    if "</script" in text.lower() or "<!--" in text:
        raise SnippetError(f"{chapter}.{name}: the snippet cannot travel in a script element")
    folder = outdir / SNIPPETS
    folder.mkdir(parents=True, exist_ok=True)
    filename = f"{chapter}.{name}.py"
    (folder / filename).write_text(text, encoding="utf-8")
    if snippet.requirements:
        needs = "needs " + ", ".join(r.distribution for r in snippet.requirements)
        if all(r.condition for r in snippet.requirements):
            needs += " on older Pythons"
    else:
        needs = "standard library only"
    title = (
        f"Copy {name} with every helper and import it needs "
        f"(python -m recipes copy {chapter}.{name})"
    )
    return (
        '<div class="copy-recipe">'
        f'<button type="button" class="copy-recipe-button" title="{html.escape(title)}">'
        "Copy recipe</button> "
        f'<a class="copy-recipe-download" href="{relative}{SNIPPETS}/{filename}" '
        f'download="{snippet.module_name}.py">Download {snippet.module_name}.py</a> '
        f'<span class="copy-recipe-size">{snippet.lines} lines, {needs}</span>'
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
