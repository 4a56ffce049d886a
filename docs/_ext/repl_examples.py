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

import ast
import configparser
import importlib
import importlib.metadata
import re
import sys
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Optional, Set, Tuple

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
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


# --- the line that opens each chapter, and its reference section ------------------------

ROOT = Path(__file__).resolve().parents[2]
# Import names whose distribution is not installed where the docs are built.
KNOWN_DISTRIBUTIONS = {"taskgroup": "taskgroup", "exceptiongroup": "exceptiongroup"}


def _extras() -> Dict[str, List[str]]:
    """setup.cfg's extras: name -> distribution names (lower case), test and docs left out."""
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg", encoding="utf-8")
    extras: Dict[str, List[str]] = {}
    for extra, requirements in parser["options.extras_require"].items():
        if extra in ("test", "docs"):
            continue
        names = [
            re.split(r"[<>=!~;\[\s]", line.strip(), maxsplit=1)[0].lower()
            for line in requirements.splitlines()
            if line.strip() and not line.strip().startswith("#")
        ]
        extras[extra] = names
    return extras


def _version_condition(test: ast.expr) -> Optional[str]:
    """ "Python < 3.11" for ``if sys.version_info >= (3, 11):`` (the else branch)."""
    if (
        isinstance(test, ast.Compare)
        and ast.unparse(test.left) == "sys.version_info"
        and isinstance(test.comparators[0], ast.Tuple)
    ):
        version = ".".join(ast.unparse(e) for e in test.comparators[0].elts)
        return f"Python {version}" if isinstance(test.ops[0], ast.GtE) else None
    return None


def third_party_imports(path: Path) -> Dict[str, Optional[str]]:
    """Top-level imports outside the standard library: name -> condition (or None)."""
    found: Dict[str, Optional[str]] = {}

    def visit(body: List[ast.stmt], condition: Optional[str]) -> None:
        for node in body:
            if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
                continue  # for the type checker only
            if isinstance(node, ast.If):
                newer = _version_condition(node.test)
                visit(node.body, condition)
                older = f"on Python older than {newer[7:]}" if newer else condition
                visit(node.orelse, older)
            elif isinstance(node, ast.Try):
                visit(node.body, condition)
                for handler in node.handlers:
                    visit(handler.body, condition)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names = (
                    [alias.name for alias in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                )
                for name in names:
                    top = name.split(".")[0]
                    if top and top not in sys.stdlib_module_names and top != "recipes":
                        found.setdefault(top, condition)

    tree = ast.parse(path.read_text(encoding="utf-8"))
    visit(tree.body, None)
    # Imported inside a function: needed only by the part of the recipe that uses it.
    for function in ast.walk(tree):
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            visit(function.body, "optional")
    return found


def _cover(wanted: Set[str], extras: Dict[str, List[str]]) -> List[str]:
    """The fewest extras that install every distribution in ``wanted`` (greedy)."""
    chosen: List[str] = []
    missing = set(wanted)
    while missing:
        best = max(extras, key=lambda e: (len(missing & set(extras[e])), -len(extras[e])))
        if not missing & set(extras[best]):
            break  # not in any extra
        chosen.append(best)
        missing -= set(extras[best])
    return sorted(chosen, key=list(extras).index)


class ChapterInfo(SphinxDirective):
    """``.. chapter-info:: recipes.tasks``: Pythons, requirements and the download link."""

    required_arguments = 1

    def run(self) -> List[nodes.Node]:
        module = self.arguments[0]
        path = ROOT / Path(*module.split(".")).with_suffix(".py")
        text = path.read_text(encoding="utf-8")
        self.env.note_dependency(str(path))
        self.env.note_dependency(str(ROOT / "setup.cfg"))
        gate = re.search(r"^__requires_python__\s*=\s*\(\s*3\s*,\s*(\d+)", text, re.M)
        oldest = f"3.{gate.group(1)}" if gate else "3.8"
        distributions = importlib.metadata.packages_distributions()
        needs: List[str] = []
        wanted: List[str] = []
        imports = third_party_imports(path)
        # BeautifulSoup loads its parser by name: "lxml" is a requirement too.
        for parser in ("lxml", "html5lib"):
            if "bs4" in imports and re.search(rf"BeautifulSoup\([^)]*[\"']{parser}[\"']", text):
                imports.setdefault(parser, None)
        for name, condition in imports.items():
            dist = KNOWN_DISTRIBUTIONS.get(name) or (distributions.get(name) or [name])[0]
            needs.append(f"``{dist}``" + (f" ({condition})" if condition else ""))
            wanted.append(dist.lower())
        if needs:
            extras = _cover(set(wanted), _extras())
            plural = "s" if len(extras) > 1 else ""
            install = ",".join(extras)
            requirement = "Needs " + ", ".join(needs) + f" (the ``[{install}]`` extra{plural})"
        else:
            requirement = "Needs only the standard library"
        stem = path.stem
        rst = (
            f"**Python {oldest} to 3.15** · {requirement} · "
            f":download:`Download {stem}.py </../recipes/{stem}.py>` · "
            f"`source <../_modules/{module.replace('.', '/')}.html>`__"
        )
        container = nodes.container(classes=["chapter-info"])
        self.state.nested_parse(StringList([rst], source=str(path)), 0, container)
        return [container]


def teaching_order(chapter: str, names: List[str]) -> List[str]:
    """``names`` sorted by where ``chapter`` first uses each: a cross-reference, an import
    in an example, or a call; then any word mention; then the rest in their order."""

    # The introduction often lists the recipes to come: rank by the sections that teach.
    heading = re.search(r"^\S.*\n[-=~^]{3,}\s*$", chapter, re.M)
    if heading:
        chapter = chapter[heading.start() :] + "\n" + chapter[: heading.start()]

    def first_use(name: str) -> Tuple[int, int]:
        word = re.escape(name)
        used = re.search(
            rf"`~?(?:recipes\.\w+\.)?{word}`|import [^\n]*\b{word}\b|\b{word}\(", chapter
        )
        if used:
            return (0, used.start())
        mentioned = re.search(rf"(?<![\w.]){word}(?!\w)", chapter)
        return (1, mentioned.start()) if mentioned else (2, names.index(name))

    return sorted(names, key=first_use)


class ChapterReference(SphinxDirective):
    """``.. chapter-reference:: recipes.tasks``: every public name, in the order the chapter
    (the module docstring) first mentions it; names it never mentions follow, in
    ``__all__`` order."""

    required_arguments = 1

    def run(self) -> List[nodes.Node]:
        module = importlib.import_module(self.arguments[0])
        lines: List[str] = []
        for name in teaching_order(module.__doc__ or "", list(getattr(module, "__all__", []))):
            obj = getattr(module, name)
            target = f"{module.__name__}.{name}"
            if isinstance(obj, type):
                lines += [f".. autoclass:: {target}", "   :members:", ""]
            elif callable(obj):
                lines += [f".. autofunction:: {target}", ""]
            else:
                lines += [f".. autodata:: {target}", "   :no-value:", ""]
        section = nodes.container(classes=["chapter-reference"])
        self.state.nested_parse(StringList(lines, source=module.__name__), 0, section)
        return [section]


def drop_object_base(app: Sphinx, name: str, obj: object, options: Any, bases: List[Any]) -> None:
    """No "Bases: object" line: every class has it, and it says nothing."""
    bases[:] = [base for base in bases if base is not object]


def setup(app: Sphinx) -> Dict[str, Any]:
    app.add_directive("chapter-info", ChapterInfo)
    app.add_directive("chapter-reference", ChapterReference)
    app.connect("autodoc-process-bases", drop_object_base)
    app.add_directive("script", ScriptDirective)
    app.add_directive("script-output", ScriptOutputDirective)
    app.add_post_transform(SplitGatedExamples)
    app.add_js_file("repl_paste.js")
    app.add_css_file("cookbook.css")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
