"""What every chapter's examples must look like to paste into ``python -m asyncio``.

The doctests check that the examples are right; these tests check that a reader can
use them as shown: lines that fit a phone screen, and no example that starts an event
loop of its own, which the asyncio REPL refuses ("asyncio.run() cannot be called from a
running event loop").  Such a program belongs in a ``.. script::`` block
(``tests/test_chapter_scripts.py`` runs those).
"""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted(p for p in (ROOT / "recipes").glob("*.py") if not p.name.startswith("_"))
MAX_LINE = 79
# Calls that start (or drive) an event loop: they fail inside the asyncio REPL's loop.
OWN_LOOP = re.compile(
    r"\b(asyncio\.run|asyncio\.Runner|LoopRunner|run_with_loop_factory|run_until_complete"
    r"|run_forever)\s*\("
)


def docstrings(path: Path) -> Iterator[Tuple[str, str]]:
    """(where, docstring) for the module and every function and class in it."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    module = ast.get_docstring(tree, clean=True)
    if module:
        yield path.stem, module
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            text = ast.get_docstring(node, clean=True)
            if text:
                yield f"{path.stem}.{node.name}", text


def example_lines(text: str) -> Iterator[Tuple[int, str, bool]]:
    """(line number, line, is source) for every line of every >>> block, output included."""
    in_block = False
    for number, line in enumerate(textwrap.dedent(text).splitlines(), start=1):
        stripped = line.lstrip()
        if stripped.startswith(">>>"):
            in_block = True
        elif not stripped:
            in_block = False
        if in_block:
            yield number, stripped, stripped.startswith((">>>", "..."))


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_example_lines_fit_79_columns(path: Path) -> None:
    long: List[str] = []
    for where, text in docstrings(path):
        for number, line, _ in example_lines(text):
            if len(line) > MAX_LINE:
                long.append(f"{where}, line {number} ({len(line)} columns): {line}")
    assert not long, "\n".join(long)


def _in_a_string(code: str, position: int) -> bool:
    before = code[:position]
    return before.count('"') % 2 == 1 or before.count("'") % 2 == 1


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_no_example_starts_an_event_loop_of_its_own(path: Path) -> None:
    found: List[str] = []
    for where, text in docstrings(path):
        in_coroutine = False  # the body of an "async def": it runs inside a loop anyway
        for number, line, source in example_lines(text):
            if not source:
                continue
            code = line[4:]
            if line.startswith(">>>"):
                in_coroutine = code.startswith("async def ")
            match = OWN_LOOP.search(code.split("#", 1)[0])
            if match and not in_coroutine and not _in_a_string(code, match.start()):
                found.append(f"{where}, line {number}: {line}")
    assert not found, (
        "these examples start an event loop, which fails in python -m asyncio; "
        "show the program as a .. script:: block instead:\n" + "\n".join(found)
    )


def _section_titles(docstring: str) -> List[str]:
    lines = docstring.splitlines()
    return [
        lines[i - 1].strip()
        for i in range(1, len(lines))
        if re.fullmatch(r"-{3,}", lines[i].strip())
        and len(lines[i].strip()) >= len(lines[i - 1].strip())
    ]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_a_library_note_comes_last_before_see_also(path: Path) -> None:
    """Where a chapter compares itself with a library, that note closes the chapter (just
    before "See also"), and its links are anonymous (two chapters may link one library)."""
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    titles = _section_titles(docstring)
    assert titles[-1] == "See also", titles
    if "A library does this" not in titles:
        pytest.skip("no maintained library does what this chapter's recipes do")
    assert titles[-2:] == ["A library does this", "See also"]
    note = docstring[docstring.index("A library does this") : docstring.rindex("See also")]
    assert not re.search(r">`_(?!_)", note), "a named link: use an anonymous one (`...`__)"
