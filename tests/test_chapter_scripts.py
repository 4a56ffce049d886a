"""Every whole program in a chapter (a ``.. script::`` block) runs and prints what it shows.

Programs that end in ``asyncio.run(main())`` cannot run inside ``python -m asyncio`` (it
already runs a loop), so the chapters show them as scripts, followed by a
``.. script-output::`` block (see ``docs/_ext/repl_examples.py``).  Each is written to a
file of its own in an empty folder and run with this interpreter, as a reader would run
it; its standard output must match, with ``...`` matching anything as in the doctests.
"""

from __future__ import annotations

import ast
import doctest
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import List, NamedTuple, Optional, Tuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
DIRECTIVE = re.compile(r"^(?P<indent>[ ]*)\.\. (?P<kind>script|script-output)::[ ]*(?P<arg>\S*)")


class Script(NamedTuple):
    module: str
    name: str
    code: str
    output: str
    requires: Optional[Tuple[int, int]]


def _block(lines: List[str], start: int, indent: int) -> Tuple[List[str], List[str], int]:
    """Options, content and the next line's index of the directive at lines[start]."""
    index = start + 1
    options: List[str] = []
    while index < len(lines) and lines[index].strip().startswith(":"):
        options.append(lines[index].strip())
        index += 1
    content: List[str] = []
    while index < len(lines):
        line = lines[index]
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            break
        content.append(line)
        index += 1
    return options, textwrap.dedent("\n".join(content)).strip("\n").splitlines(), index


def chapter_scripts() -> List[Script]:
    scripts: List[Script] = []
    for path in sorted((ROOT / "recipes").glob("[!_]*.py")):
        docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        lines = docstring.splitlines()
        pending: Optional[Tuple[str, List[str], Optional[Tuple[int, int]]]] = None
        index = 0
        while index < len(lines):
            match = DIRECTIVE.match(lines[index])
            if not match:
                index += 1
                continue
            options, content, index = _block(lines, index, len(match.group("indent")))
            if match.group("kind") == "script":
                requires = None
                for option in options:
                    found = re.match(r":requires-python:\s*3\.(\d+)", option)
                    if found:
                        requires = (3, int(found.group(1)))
                pending = (match.group("arg"), content, requires)
            else:
                assert pending is not None, f"{path.name}: script-output without a script"
                name, code, requires = pending
                scripts.append(
                    Script(path.stem, name, "\n".join(code) + "\n", "\n".join(content), requires)
                )
                pending = None
        assert pending is None, f"{path.name}: script {pending[0]} has no script-output"
    return scripts


SCRIPTS = chapter_scripts()


def test_the_chapters_have_scripts() -> None:
    assert SCRIPTS, "no .. script:: blocks found: the extractor is broken"


@pytest.mark.parametrize("script", SCRIPTS, ids=[f"{s.module}:{s.name}" for s in SCRIPTS])
def test_script_runs_and_prints_what_the_chapter_shows(script: Script, tmp_path: Path) -> None:
    if script.requires and sys.version_info < script.requires:
        pytest.skip(f"requires Python >= {script.requires[0]}.{script.requires[1]}")
    (tmp_path / script.name).write_text(script.code, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "error"}
    done = subprocess.run(
        [sys.executable, script.name],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    checker = doctest.OutputChecker()
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    want = script.output + "\n"
    assert checker.check_output(want, done.stdout, flags), (
        f"{script.name} printed:\n{done.stdout}\nthe chapter shows:\n{want}"
    )
