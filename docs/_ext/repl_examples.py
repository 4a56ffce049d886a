"""Sphinx extension: examples that paste into ``python -m asyncio``, and visible version gates.

Two things happen to every ``>>>`` block of the cookbook before Sphinx trims the
``# doctest:`` comments from it:

* A block whose examples need different Pythons is split where the gate changes, so each
  gated example stands in a block of its own, headed by a visible note ("Python 3.11 or
  newer"), and carries the class ``requires-py311``.  A reader on an older Python sees
  which blocks to skip, and the paste test of the book skips them on such interpreters.
* Nothing else changes in the text.  What the copy button gives is decided in the
  browser, by ``_static/repl_paste.js``: the source lines without prompts or output, with
  a blank line after every compound statement, as the interactive interpreter needs.

Whole programs (the ones that end in ``asyncio.run(main())``, which cannot run inside the
asyncio REPL) are written as scripts instead, with what they print::

    .. script:: shutdown.py

       import asyncio
       ...
       asyncio.run(main())

    .. script-output::

       worker stopped

``tests/test_chapter_scripts.py`` runs every such script and compares its output;
``:requires-python: 3.11`` on the script gates it like ``+PY311`` gates an example.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Dict, List, Optional, Tuple

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.directives.code import container_wrapper
from sphinx.transforms import SphinxTransform
from sphinx.transforms.post_transforms.code import TrimDoctestFlagsTransform
from sphinx.util.docutils import SphinxDirective

GATE = re.compile(r"#\s*doctest:.*?\+PY3(\d+)")


def _examples(source: str) -> List[Tuple[Optional[int], List[str]]]:
    """Split a doctest block into examples: (needed minor version or None, lines)."""
    examples: List[Tuple[Optional[int], List[str]]] = []
    for line in source.splitlines():
        if line.startswith(">>>") or not examples:
            examples.append((None, []))
        gate, lines = examples[-1]
        lines.append(line)
        if line.startswith((">>>", "...")):
            found = [int(minor) for minor in GATE.findall(line)]
            if found:
                gate = max(found + ([gate] if gate is not None else []))
        examples[-1] = (gate, lines)
    return examples


def gate_note(minor: int) -> nodes.paragraph:
    note = nodes.paragraph(classes=["version-gate"])
    note += nodes.Text(f"Python 3.{minor} or newer")
    return note


class SplitGatedExamples(SphinxTransform):
    """Give every version-gated example a block of its own, with a visible note."""

    # Before TrimDoctestFlagsTransform removes the "# doctest: +PY311" comments.
    default_priority = TrimDoctestFlagsTransform.default_priority - 1

    def apply(self, **kwargs: Any) -> None:
        for block in list(self.document.findall(nodes.doctest_block)):
            groups: List[Tuple[Optional[int], List[str]]] = []
            for gate, lines in _examples(block.rawsource):
                if groups and groups[-1][0] == gate:
                    groups[-1][1].extend(lines)
                else:
                    groups.append((gate, list(lines)))
            if all(gate is None for gate, _ in groups):
                continue
            replacement: List[nodes.Node] = []
            for gate, lines in groups:
                text = "\n".join(lines)
                new = nodes.doctest_block(text, text, **_copy_attributes(block))
                if gate is not None:
                    new["classes"] = [*new["classes"], "requires-python", f"requires-py3{gate}"]
                    replacement.append(gate_note(gate))
                replacement.append(new)
            block.replace_self(replacement)


def _copy_attributes(block: nodes.doctest_block) -> Dict[str, Any]:
    return {key: value for key, value in block.attributes.items() if key != "ids"}


class ScriptDirective(SphinxDirective):
    """``.. script:: name.py``: a whole program, shown with its file name as caption."""

    required_arguments = 1
    has_content = True
    option_spec: ClassVar[Dict[str, Any]] = {"requires-python": directives.unchanged}

    def run(self) -> List[nodes.Node]:
        code = "\n".join(self.content)
        block = nodes.literal_block(code, code, language="python", classes=["script"])
        self.set_source_info(block)
        result: List[nodes.Node] = []
        needs = self.options.get("requires-python")
        if needs:
            minor = int(str(needs).split(".")[1])
            block["classes"] += ["requires-python", f"requires-py3{minor}"]
            result.append(gate_note(minor))
        result.append(container_wrapper(self, block, self.arguments[0]))
        return result


class ScriptOutputDirective(SphinxDirective):
    """``.. script-output::``: what the script above prints."""

    has_content = True

    def run(self) -> List[nodes.Node]:
        text = "\n".join(self.content)
        block = nodes.literal_block(text, text, language="text", classes=["script-output"])
        self.set_source_info(block)
        return [container_wrapper(self, block, "Output")]


def setup(app: Sphinx) -> Dict[str, Any]:
    app.add_directive("script", ScriptDirective)
    app.add_directive("script-output", ScriptOutputDirective)
    app.add_post_transform(SplitGatedExamples)
    app.add_js_file("repl_paste.js")
    app.add_css_file("cookbook.css")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
