"""Every chapter's examples, copied with the page's copy button, paste into ``python -m asyncio``.

A reader opens a chapter, presses the copy button of each ``>>>`` block in page order and
pastes the text into the asyncio REPL.  This test does the same: Chromium gives the text
exactly as the copy button produces it, and ``browser_tests/repl.py`` pastes it into a
real REPL, below 3.13 through standard input and from 3.13 through a pseudo-terminal.  A
block fails on ``SyntaxError``, ``NameError`` or a second event loop started inside the
REPL's, unless its own expected output on the page shows that very error.

The interpreters come from ``COOKBOOK_PASTE_PYTHONS`` (paths separated by spaces; tox
passes the oldest and the newest of the matrix), else the one running the tests.  Blocks
gated to a newer Python (their ``requires-py3N`` class) are left out on older ones, as a
reader of that version would.  Chapters that use ``base_url`` or ``dsn`` first get the two
lines that ``python -m tests.demo_servers`` prints, with those servers running.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Tuple

import pytest

from browser_tests.conftest import REQUIRED, ROOT, unavailable
from browser_tests.repl import ReplError, run_session

CHAPTERS = sorted(path.stem for path in (ROOT / "docs" / "recipes").glob("*.rst"))
# COOKBOOK_PASTE_CHAPTERS="queues tasks" pastes only those chapters (while writing one).
CHAPTERS = os.environ.get("COOKBOOK_PASTE_CHAPTERS", "").split() or CHAPTERS
PYTHONS = os.environ.get("COOKBOOK_PASTE_PYTHONS", "").split() or [sys.executable]
# Each session's transcript lands here, for reading what a reader would have seen.
TRANSCRIPTS = ROOT / "artifacts" / "paste"
# Sessions mostly wait on the examples' real sleeps: several run at once.
WORKERS = int(os.environ.get("COOKBOOK_PASTE_WORKERS", "6"))

# In page order, each `>>>` block: what its copy button puts on the clipboard, its whole
# text as shown (expected output included) and the Python it needs, from its class.
COPY_EVERY_EXAMPLE = """
async () => {
  const found = [];
  for (const button of document.querySelectorAll("article button.copybtn")) {
    const target = document.querySelector(button.dataset.clipboardTarget);
    if (!/^>>> /m.test(target.innerText)) continue;
    await navigator.clipboard.writeText("");
    button.click();
    let copy = "";
    for (let tries = 0; tries < 100 && !copy; tries++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      copy = await navigator.clipboard.readText();
    }
    const gated = target.closest("[class*=requires-py3]");
    const minor = gated ? Number(/requires-py3(\\d+)/.exec(gated.className)[1]) : 8;
    found.push({copy: copy, shown: target.innerText, minor: minor});
  }
  return found;
}
"""


class Block(NamedTuple):
    copy: str
    shown: str
    minor: int


def _version(python: str) -> Tuple[int, int]:
    out = subprocess.run(
        [python, "-c", "import sys; print(*sys.version_info[:2])"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    return int(out[0]), int(out[1])


@pytest.fixture(scope="module")
def chapter_blocks(browser: Any, site: str) -> Dict[str, List[Block]]:
    blocks: Dict[str, List[Block]] = {}
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site)
    try:
        page = context.new_page()
        for chapter in CHAPTERS:
            page.goto(f"{site}/recipes/{chapter}.html")
            page.wait_for_selector("button.copybtn", state="attached")
            found = [Block(**block) for block in page.evaluate(COPY_EVERY_EXAMPLE)]
            blocks[chapter] = found
    finally:
        context.close()
    return blocks


@pytest.fixture(scope="module")
def demo_servers() -> Iterator[str]:
    """Start ``python -m tests.demo_servers`` and yield the lines it prints for the REPL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.demo_servers", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    lines: List[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(process.stdout.readline() for _ in range(2)),  # type: ignore[union-attr]
        daemon=True,
    )
    reader.start()
    reader.join(timeout=180)
    try:
        if len(lines) < 2 or not all(re.match(r"(base_url|dsn) = ", line) for line in lines):
            process.kill()
            pytest.fail(
                f"the demo servers did not start: {lines!r}\n{process.stderr.read()[-3000:]}"
            )
        yield "".join(lines)
    finally:
        process.terminate()  # SIGTERM: the servers stop and PostgreSQL removes its files
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()


def _paste_chapter(
    python: str, version: Tuple[int, int], chapter: str, blocks: List[Block], setup: str
) -> str:
    runnable = [block for block in blocks if version >= (3, block.minor)]
    TRANSCRIPTS.mkdir(parents=True, exist_ok=True)
    transcript = TRANSCRIPTS / f"{chapter}-py{version[0]}{version[1]}.txt"
    with tempfile.TemporaryDirectory(prefix="paste-") as cwd:
        try:
            problems = run_session(
                python,
                Path(cwd),
                [block.copy for block in runnable],
                terminal=version >= (3, 13),
                setup=setup,
                transcript=transcript,
            )
        except ReplError as error:
            return f"the REPL session broke off: {error}"
    # A block whose expected output on the page shows the error is teaching it.
    unexpected = [
        str(problem)
        for problem in problems
        if problem.line.strip() not in runnable[problem.number - 1].shown
    ]
    return "\n\n".join(unexpected)


@pytest.fixture(scope="module")
def paste_results(
    chapter_blocks: Dict[str, List[Block]], request: pytest.FixtureRequest
) -> Dict[Tuple[str, str], str]:
    needs_servers = any(
        re.search(r"\b(base_url|dsn)\b", block.copy)
        for blocks in chapter_blocks.values()
        for block in blocks
    )
    setup = request.getfixturevalue("demo_servers") if needs_servers else ""
    versions = {python: _version(python) for python in PYTHONS}
    jobs = {}
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        for python in PYTHONS:
            for chapter, blocks in chapter_blocks.items():
                uses_servers = any(
                    re.search(r"\b(base_url|dsn)\b", block.copy) for block in blocks
                )
                jobs[(python, chapter)] = pool.submit(
                    _paste_chapter,
                    python,
                    versions[python],
                    chapter,
                    blocks,
                    setup if uses_servers else "",
                )
    return {key: job.result() for key, job in jobs.items()}


def _missing_pythons() -> Optional[str]:
    missing = [python for python in PYTHONS if not Path(python).exists()]
    return f"no interpreter at {', '.join(missing)}" if missing else None


@pytest.mark.parametrize("python", PYTHONS)
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_examples_paste_into_the_asyncio_repl(
    chapter: str, python: str, paste_results: Dict[Tuple[str, str], str]
) -> None:
    assert paste_results[(python, chapter)] == ""


def test_every_chapter_has_examples_to_paste(chapter_blocks: Dict[str, List[Block]]) -> None:
    # If the copy button or the page markup changed, the test above would paste nothing.
    assert sorted(chapter_blocks) == sorted(CHAPTERS)
    empty = [chapter for chapter, blocks in chapter_blocks.items() if not blocks]
    assert empty == []
    for blocks in chapter_blocks.values():
        for block in blocks:
            assert block.copy.endswith("\n") and ">>> " not in block.copy


def test_the_paste_test_catches_what_a_reader_would_hit() -> None:
    """A block with each kind of failure is caught, and the good one is not."""
    blocks = [
        "import asyncio\nasync def main():\n    return 42\n\nprint(await main())\n",
        "print(name_nobody_defined)\n",
        "asyncio.run(main())\n",
    ]
    for python in PYTHONS:
        version = _version(python)
        with tempfile.TemporaryDirectory() as cwd:
            problems = run_session(python, Path(cwd), blocks, terminal=version >= (3, 13))
        assert [problem.number for problem in problems] == [2, 3]
        assert "NameError: name 'name_nobody_defined'" in problems[0].line
        assert "cannot be called from a running event loop" in problems[1].line


if unavailable() is None and _missing_pythons() is not None:
    # A configured interpreter that is missing fails under CI and skips elsewhere.
    reason = _missing_pythons()
    pytestmark = (
        pytest.mark.usefixtures("_no_python") if REQUIRED else pytest.mark.skip(reason=reason)
    )


@pytest.fixture
def _no_python() -> None:
    pytest.fail(_missing_pythons() or "", pytrace=False)
