"""``python -m recipes copy``: every public recipe's snippet stands alone.

For every name in every chapter's ``__all__``:

* the snippet, written alone into an empty folder, imports with warnings as errors in
  an interpreter that sees only the standard library and the snippet's own third-party
  requirements (``-I -S`` and a folder holding just those distributions and what they
  depend on), defines the name, and never imports the cookbook;
* every module-level name the snippet binds, other than the recipe, is used by it;
* the recipe's own doctest examples pass against the snippet instead of the package,
  with the package made unimportable.  Examples that also use a companion from the
  same chapter (``from recipes.files import read_text``) run against the snippet of
  the recipe and those companions, which is what ``copy`` gives a reader who names
  them all.

And the command line: ``list``, ``copy`` to stdout and to a file, and every bad input.
"""

from __future__ import annotations

import ast
import configparser
import doctest
import importlib
import importlib.metadata
import io
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import pytest
from packaging.requirements import Requirement

from conftest import async_doctest, gate_examples
from recipes import _snippets
from recipes._snippets import SnippetError, build_snippet, chapters, public_recipes

ROOT = Path(__file__).resolve().parent.parent
EVERY_RECIPE = [f"{c}.{name}" for c in chapters() for name, _ in public_recipes(c)]


# --- the tables _snippets keeps for an installed package ----------------------------------


def test_chapter_titles_are_the_books() -> None:
    titles = {
        path.stem: path.read_text(encoding="utf-8").splitlines()[1]
        for path in (ROOT / "docs" / "recipes").glob("*.rst")
    }
    assert _snippets.CHAPTER_TITLES == titles
    assert sorted(titles) == chapters()


def test_extras_are_setup_cfgs() -> None:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg", encoding="utf-8")
    extras = {
        extra: [line.strip() for line in text.splitlines() if line.strip()]
        for extra, text in parser["options.extras_require"].items()
        if extra not in ("test", "docs")
    }
    assert _snippets.EXTRAS == extras


@pytest.mark.skipif(sys.version_info < (3, 10), reason="needs sys.stdlib_module_names (3.10+)")
def test_every_third_party_import_has_its_distribution() -> None:
    imported: Set[str] = set()
    for chapter in chapters():
        tree = ast.parse((ROOT / "recipes" / f"{chapter}.py").read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add((node.module or "").split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"__future__"}
    assert third_party <= set(_snippets.DISTRIBUTIONS)
    in_extras = {
        re.split(r"[<>=;\s]", line)[0] for lines in _snippets.EXTRAS.values() for line in lines
    }
    assert set(_snippets.DISTRIBUTIONS.values()) <= in_extras


# --- each snippet alone, with only its requirements ----------------------------------------


def _closure(names: List[str]) -> Set[str]:
    """Those distributions and everything they need on this interpreter (no extras)."""
    todo = list(names)
    found: Set[str] = set()
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in found:
            continue
        found.add(name)
        for line in importlib.metadata.distribution(name).requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return found


def _install_by_links(distributions: Set[str], folder: Path) -> None:
    """A site folder holding only ``distributions``: links to their top-level files."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in distributions:
        dist = importlib.metadata.distribution(name)
        tops = {Path(str(file)).parts[0] for file in dist.files or []}
        for top in tops - {"..", "__pycache__", "bin"}:
            source = Path(str(dist.locate_file(top)))
            if source.exists() and not (folder / top).exists():
                (folder / top).symlink_to(source)


IMPORT_ALONE = textwrap.dedent(
    """
    import importlib, json, sys, traceback, warnings
    warnings.simplefilter("error")
    base = list(sys.path)
    results = {}
    for target, folder, module in json.loads(sys.argv[1]):
        sys.path[:] = [folder, sys.argv[2]] + base
        try:
            snippet = importlib.import_module(module)
            name = target.split(".", 1)[1]
            assert hasattr(snippet, name), f"the snippet does not define {name}"
            assert "recipes" not in sys.modules, "the snippet imported the cookbook"
            results[target] = "ok"
        except BaseException:
            results[target] = traceback.format_exc()
        finally:
            sys.modules.pop(module, None)
    print(json.dumps(results))
    """
)


@pytest.fixture(scope="module")
def alone(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, str]:
    """Import every snippet alone, one interpreter per set of requirements."""
    root = tmp_path_factory.mktemp("snippets")
    groups: Dict[Tuple[str, ...], List[Tuple[str, str, str]]] = {}
    for target in EVERY_RECIPE:
        snippet = build_snippet([target])
        folder = root / target
        folder.mkdir()
        (folder / f"{snippet.module_name}.py").write_text(snippet.text, encoding="utf-8")
        needed = tuple(
            sorted(
                r.distribution
                for r in snippet.requirements
                if not r.condition or Requirement(f"x; {r.condition}").marker.evaluate()  # type: ignore[union-attr]
            )
        )
        groups.setdefault(needed, []).append((target, str(folder), snippet.module_name))
    results: Dict[str, str] = {}
    for index, (needed, batch) in enumerate(sorted(groups.items())):
        site = root / f"site-{index}"
        _install_by_links(_closure(list(needed)), site)
        completed = subprocess.run(
            [
                sys.executable,
                "-I",
                "-S",
                "-W",
                "error",
                "-c",
                IMPORT_ALONE,
                json.dumps(batch),
                str(site),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert completed.returncode == 0, completed.stderr
        results.update(json.loads(completed.stdout))
    return results


@pytest.mark.parametrize("target", EVERY_RECIPE)
def test_snippet_imports_alone(target: str, alone: Dict[str, str]) -> None:
    assert alone[target] == "ok", alone[target]


def _bound_and_read(code: str) -> Tuple[Dict[str, int], Set[str]]:
    """Module-level names the code binds (with their line) and every name it reads."""
    tree = ast.parse(code)
    bound: Dict[str, int] = {}
    for node in _module_level(tree):
        for name in _snippets._defined_names(node):
            bound.setdefault(name, node.lineno)
    read = {
        n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
    }
    for node in ast.walk(tree):  # names in quoted annotations
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            with_names = re.fullmatch(r"[\w\[\], .]+", node.value)
            if with_names:
                read.update(re.findall(r"\w+", node.value))
    return bound, read


def _module_level(tree: ast.Module) -> List[ast.stmt]:
    level: List[ast.stmt] = []
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        level.append(node)
        if isinstance(node, ast.If):
            todo += node.body + node.orelse
    return level


@pytest.mark.parametrize("target", EVERY_RECIPE)
def test_snippet_holds_nothing_else(target: str) -> None:
    snippet = build_snippet([target])
    bound, read = _bound_and_read(snippet.text)
    name = target.split(".", 1)[1]
    unused = sorted(n for n in bound if n not in read and n not in (name, "annotations"))
    assert not unused, f"bound but never used: {unused}"


# --- the recipe's own examples, against the snippet ------------------------------------------


def _companions(target: str) -> List[str]:
    """The recipe and the names from its chapter that its examples import."""
    chapter, name = target.split(".", 1)
    source = (ROOT / "recipes" / f"{chapter}.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    docs = [
        ast.get_docstring(inner) or ""
        for node in tree.body
        if getattr(node, "name", None) == name
        for inner in ast.walk(node)
        if isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    ]
    names = [name]
    for doc in docs:
        for example in doctest.DocTestParser().get_examples(doc):
            try:
                tree = ast.parse(example.source)
            except SyntaxError:
                continue  # top-level await: never an import
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module == f"recipes.{chapter}":
                    names += [a.name for a in node.names if a.name not in names]
    return [f"{chapter}.{n}" for n in names]


def _with_examples() -> Iterator[str]:
    for target in EVERY_RECIPE:
        chapter, name = target.split(".", 1)
        tree = ast.parse((ROOT / "recipes" / f"{chapter}.py").read_text(encoding="utf-8"))
        for node in tree.body:
            if getattr(node, "name", None) == name and ">>>" in ast.get_source_segment(
                (ROOT / "recipes" / f"{chapter}.py").read_text(encoding="utf-8"), node
            ):
                yield target
                break


WITH_EXAMPLES = list(_with_examples())


@pytest.mark.parametrize("target", WITH_EXAMPLES)
def test_examples_pass_against_the_snippet(
    target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chapter, name = target.split(".", 1)
    snippet = build_snippet(_companions(target))
    assert snippet.module_name == chapter
    (tmp_path / f"{chapter}.py").write_text(snippet.text, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    # The package is out of reach: an example that still imports it fails.
    for module in [m for m in sys.modules if m == "recipes" or m.startswith("recipes.")]:
        monkeypatch.setitem(sys.modules, module, None)  # type: ignore[arg-type]
    monkeypatch.delitem(sys.modules, chapter, raising=False)
    try:
        module = importlib.import_module(chapter)
        assert Path(str(module.__file__)).parent == tmp_path
        finder = doctest.DocTestFinder()
        tests = [
            t for t in finder.find(getattr(module, name), name, module, globs={}) if t.examples
        ]
        assert tests, "the recipe's examples were not found in the snippet"
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
        report = io.StringIO()
        ran = 0
        for test in tests:
            if gate_examples(test) is not None:
                continue  # every example needs a newer Python (listed in the summary)
            with async_doctest(test, runner):
                runner.run(test, out=report.write)
            ran += 1
        if not ran:
            pytest.skip(f"every example of {target} needs a newer Python")
        assert runner.failures == 0, report.getvalue()
    finally:
        sys.modules.pop(chapter, None)


# --- the command line -----------------------------------------------------------------------


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    environment = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "recipes", *args],
        capture_output=True,
        text=True,
        cwd=str(cwd),
        env=environment,
        timeout=60,
    )


def test_list_shows_every_recipe_by_chapter() -> None:
    completed = run_cli("list")
    assert completed.returncode == 0, completed.stderr
    out = completed.stdout
    for chapter in chapters():
        assert f"{_snippets.CHAPTER_TITLES[chapter]} ({chapter})\n" in out
    listed = re.findall(r"^  (\w+\.\w+)", out, re.M)
    assert listed == EVERY_RECIPE
    assert re.search(
        r"^  limiting\.bounded_gather +Await every argument with at most limit", out, re.M
    )


def test_list_one_chapter() -> None:
    completed = run_cli("list", "limiting")
    assert completed.returncode == 0
    assert re.findall(r"^  (\w+\.\w+)", completed.stdout, re.M) == [
        f"limiting.{name}" for name, _ in public_recipes("limiting")
    ]


def test_copy_prints_the_snippet() -> None:
    completed = run_cli("copy", "limiting.bounded_gather")
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == build_snippet(["limiting.bounded_gather"]).text


def test_header_says_where_from_which_pythons_and_what_to_install() -> None:
    text = build_snippet(["limiting.bounded_gather"]).text
    header = text[: text.index("\n\n")]
    assert all(line.startswith("# ") for line in header.splitlines())
    plain = " ".join(line[2:] for line in header.splitlines())
    assert '"Limiting concurrency and rate" (recipes/limiting.py)' in plain
    assert "asyncio-cookbook 0.1.0" in plain
    assert "Python 3.8 to 3.15, with only the standard library" in plain
    http = build_snippet(["http_client.fetch_json"])
    assert "pip install 'aiohttp>=3.9'" in http.text and "[http] extra" in http.text
    assert http.extras == ("http",)
    groups = build_snippet(["task_groups.run_all"])
    assert [(r.distribution, r.condition) for r in groups.requirements] == [
        ("taskgroup", 'python_version < "3.11"'),
    ]
    assert groups.extras == ("backports",)
    assert "'taskgroup>=0.2.2; python_version < \"3.11\"'" in groups.text
    crawler = build_snippet(["crawler.crawl"])
    assert {r.distribution for r in crawler.requirements} >= {"aiohttp", "beautifulsoup4", "lxml"}


def test_copy_to_a_file_refuses_to_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "limits.py"
    completed = run_cli("copy", "limiting.RateLimiter", "--to", str(target))
    assert completed.returncode == 0, completed.stderr
    text = target.read_text(encoding="utf-8")
    assert text == build_snippet(["limiting.RateLimiter"], "limits").text
    assert ">>> from limits import RateLimiter" in text
    assert "recipes.limiting" not in text
    target.write_text("mine\n", encoding="utf-8")
    refused = run_cli("copy", "limiting.RateLimiter", "--to", str(target))
    assert refused.returncode == 2
    assert "exists: pass --force" in refused.stderr
    assert target.read_text(encoding="utf-8") == "mine\n"  # nothing lost
    forced = run_cli("copy", "limiting.RateLimiter", "--to", str(target), "--force")
    assert forced.returncode == 0
    assert target.read_text(encoding="utf-8") == text
    assert [p.name for p in tmp_path.iterdir()] == ["limits.py"]  # no temporary file left


@pytest.mark.parametrize(
    "args, message",
    [
        (["copy", "limitng.bounded_gather"], "no chapter named 'limitng'; did you mean limiting?"),
        (
            ["copy", "limiting.bounded_gathr"],
            "no public recipe named 'bounded_gathr'; did you mean limiting.bounded_gather?",
        ),
        (["copy", "limiting._check_limit"], "limiting._check_limit is private"),
        (["copy", "limiting.T"], "chapter limiting has no public recipe named 'T'"),
        (["copy", "bounded_gathr"], "did you mean limiting.bounded_gather?"),
        (["copy", "main"], "'main' is in several chapters: say api_server.main or crawler.main"),
        (["list", "nope"], "no chapter named 'nope'"),
        (["copy", "limiting.RateLimiter", "--module", "my-limits"], "cannot be imported"),
    ],
)
def test_bad_input_gets_a_clear_message_and_status_2(args: List[str], message: str) -> None:
    completed = run_cli(*args)
    assert completed.returncode == 2
    assert message in completed.stderr
    assert completed.stdout == ""


def test_copy_to_a_folder_or_a_missing_folder(tmp_path: Path) -> None:
    into_folder = run_cli("copy", "limiting.RateLimiter", "--to", str(tmp_path))
    assert into_folder.returncode == 2 and "is a folder" in into_folder.stderr
    missing = run_cli("copy", "limiting.RateLimiter", "--to", str(tmp_path / "no" / "x.py"))
    assert missing.returncode == 2 and "is not a folder" in missing.stderr
    assert list(tmp_path.iterdir()) == []


def test_usage_errors_exit_2() -> None:
    assert run_cli().returncode == 2
    assert run_cli("copy").returncode == 2


def test_a_bare_name_that_one_chapter_has() -> None:
    assert (
        build_snippet(["bounded_gather"]).text == build_snippet(["limiting.bounded_gather"]).text
    )


def test_several_names_give_one_snippet_without_duplicates() -> None:
    both = build_snippet(["limiting.RateLimiter", "limiting.bounded_gather"])
    tree = ast.parse(both.text)
    names = [
        n.name
        for n in tree.body
        if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
    ]
    assert "RateLimiter" in names and "bounded_gather" in names
    overloads = names.count("bounded_gather")
    assert overloads == build_snippet(["limiting.bounded_gather"]).text.count(
        "def bounded_gather("
    )
    others = [n for n in names if n != "bounded_gather"]  # overloads aside, each def once
    assert len(others) == len(set(others))
    assert both.text.count("\nT = TypeVar") == 1
    # the same name twice, and in either order: source order
    again = build_snippet(
        ["limiting.bounded_gather", "limiting.RateLimiter", "limiting.RateLimiter"]
    )
    assert again.text.split("\n# Runs")[1] == both.text.split("\n# Runs")[1]


def test_names_from_two_chapters(tmp_path: Path) -> None:
    snippet = build_snippet(["limiting.bounded_gather", "waiting.cancel_and_wait"])
    assert snippet.module_name == "snippet"
    compile(snippet.text, "snippet.py", "exec")
    assert snippet.text.splitlines().count("import asyncio") == 1
    assert "from limiting import" not in snippet.text and ">>> from snippet import" in snippet.text
    (tmp_path / "snippet.py").write_text(snippet.text, encoding="utf-8")
    completed = subprocess.run(
        [
            sys.executable,
            "-I",
            "-W",
            "error",
            "-c",
            "import sys; sys.path.insert(0, sys.argv[1]); import snippet; "
            "print(snippet.bounded_gather.__name__, snippet.cancel_and_wait.__name__)",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.stdout.split() == ["bounded_gather", "cancel_and_wait"], completed.stderr


# --- the cutting, on small made-up chapters -------------------------------------------------


@pytest.fixture
def chapter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setattr(_snippets, "PACKAGE_DIR", tmp_path)
    yield tmp_path / "made_up.py"


def _cut(path: Path, source: str, *names: str) -> str:
    path.write_text(textwrap.dedent(source).lstrip(), encoding="utf-8")
    text = build_snippet([f"made_up.{n}" for n in names]).text
    return text.split("\n\n", 1)[1]  # without the header


def test_cut_keeps_what_is_used_transitively_and_nothing_else(chapter: Path) -> None:
    code = _cut(
        chapter,
        '''
        """The chapter."""
        from __future__ import annotations

        import asyncio
        import os
        from typing import Dict, List, Optional

        __all__ = ["public", "other"]

        LIMIT = 3
        UNUSED = 4


        def _helper(x: int) -> List[int]:
            return [x] * LIMIT


        # why public is written this way
        def public(x: Optional[int] = None) -> List[int]:
            UNUSED = 5  # a local: not the module's UNUSED
            return _helper(x or UNUSED)


        def other() -> Dict[str, str]:
            return dict(os.environ)


        if __name__ == "__main__":
            print(public())
        ''',
        "public",
    )
    assert code == textwrap.dedent(
        """\
        from __future__ import annotations

        from typing import List, Optional

        LIMIT = 3


        def _helper(x: int) -> List[int]:
            return [x] * LIMIT


        # why public is written this way
        def public(x: Optional[int] = None) -> List[int]:
            UNUSED = 5  # a local: not the module's UNUSED
            return _helper(x or UNUSED)
        """
    )


def test_cut_keeps_version_guards_and_type_checking_imports(chapter: Path) -> None:
    code = _cut(
        chapter,
        """
        import sys
        from typing import TYPE_CHECKING

        if TYPE_CHECKING:
            import decimal
            import fractions

        if sys.version_info >= (3, 11):
            from asyncio import timeout
            EXTRA = 1
        elif sys.version_info >= (3, 9):
            timeout = None
        else:
            # the fallback
            timeout = None
            EXTRA = 2

        __all__ = ["uses"]


        def uses(x: "decimal.Decimal") -> object:
            return timeout
        """,
        "uses",
    )
    assert code == textwrap.dedent(
        """\
        import sys
        from typing import TYPE_CHECKING

        if TYPE_CHECKING:
            import decimal

        if sys.version_info >= (3, 11):
            from asyncio import timeout
        elif sys.version_info >= (3, 9):
            timeout = None
        else:
            # the fallback
            timeout = None


        def uses(x: "decimal.Decimal") -> object:
            return timeout
        """
    )


def test_cut_class_scopes_and_attribute_docstrings(chapter: Path) -> None:
    code = _cut(
        chapter,
        '''
        import dataclasses

        __all__ = ["Box", "MARK"]

        size = 1
        name = "module"

        #: What marks a box.
        MARK = object()
        """The mark."""


        @dataclasses.dataclass
        class Box:
            size: int = 2

            def area(self) -> int:
                return size * self.size  # the module's size: methods skip the class body
        ''',
        "Box",
        "MARK",
    )
    assert "size = 1" in code and 'name = "module"' not in code
    assert '#: What marks a box.\nMARK = object()\n"""The mark."""' in code
    assert code.index("size = 1") < code.index("MARK = object()") < code.index("class Box")


def test_cut_refuses_statements_that_bind_nothing(chapter: Path) -> None:
    chapter.write_text('__all__ = ["f"]\nprint("side effect")\ndef f(): pass\n', encoding="utf-8")
    with pytest.raises(SnippetError, match="binds no name"):
        build_snippet(["made_up.f"])


def test_snippet_sizes_are_a_fraction_of_their_chapters() -> None:
    for chapter in chapters():
        module_lines = (ROOT / "recipes" / f"{chapter}.py").read_text(encoding="utf-8").count("\n")
        for name, _ in public_recipes(chapter):
            assert build_snippet([f"{chapter}.{name}"]).lines < module_lines
