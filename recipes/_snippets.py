"""Take one recipe instead of a whole chapter: ``python -m recipes list`` and ``copy``.

A chapter module is long (most of it is the chapter's text), and a function cut out
of it by hand misses the private helpers, constants, type variables and imports it
needs.  :func:`build_snippet` reads a chapter's source (it never imports it) and
keeps, in source order, exactly what the named recipes need: the recipes, every
module-level definition they use (transitively), the version guards around those,
and only the imported names that are used.  A short header says where the code
comes from, which Pythons run it and what it needs from PyPI.

This module is tooling, not a recipe: the chapters never import it.  The docs build
uses it for the "Copy recipe" buttons, and ``tests/test_snippets.py`` checks every
public recipe's snippet alone in an empty folder.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import functools
import os
import re
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Dict, FrozenSet, Iterator, List, NamedTuple, Optional, Sequence, Set, Tuple

__all__ = [
    "SnippetError",
    "Snippet",
    "build_snippet",
    "chapters",
    "public_recipes",
    "main",
]

PACKAGE_DIR = Path(__file__).resolve().parent
OLDEST_PYTHON = (3, 8)
NEWEST_PYTHON = (3, 15)

# The chapter titles of the cookbook (docs/recipes/<chapter>.rst; a test keeps them equal).
CHAPTER_TITLES = {
    "api_server": "A JSON API server",
    "async_iteration": "Async iterators and generators",
    "cancellation": "Cancellation",
    "coalescing": "Coalescing calls: single-flight and caching",
    "context_managers": "Async context managers",
    "coroutines": "Coroutines and awaitables",
    "crawler": "A production-grade web crawler",
    "debugging": "Debugging asyncio",
    "errors": "Error handling and retries",
    "event_loop": "The event loop",
    "files": "Files with aiofiles",
    "gathering": "Running coroutines concurrently",
    "http_client": "HTTP clients with aiohttp",
    "job_queue": "A durable job queue on PostgreSQL",
    "limiting": "Limiting concurrency and rate",
    "logging_context": "Context variables, logging and tracing",
    "parallelism": "CPU-bound work and many cores",
    "periodic": "Periodic tasks",
    "postgres": "PostgreSQL with asyncpg",
    "queues": "Producer/consumer queues",
    "realtime": "WebSockets and server-sent events",
    "resilience": "Resilience: breakers, deadlines, hedging and bulkheads",
    "streams": "TCP servers and clients with streams",
    "subprocesses": "Running subprocesses",
    "sync_bridge": "Calling async code from sync code, and back",
    "synchronization": "Synchronization primitives",
    "task_groups": "Structured concurrency with TaskGroup",
    "tasks": "Tasks",
    "testing": "Testing asyncio code",
    "timeouts": "Timeouts",
    "waiting": "Waiting for tasks",
}

# The package's extras (setup.cfg, which an installed package does not ship; a test keeps
# them equal), and the distribution behind each third-party import name.
EXTRAS: Dict[str, List[str]] = {
    "http": ["aiohttp>=3.9"],
    "files": ["aiofiles>=23.1"],
    "postgres": ["asyncpg>=0.29"],
    "crawler": ["aiohttp>=3.9", "beautifulsoup4>=4.13", "lxml>=5.3", "yarl>=1.9"],
    "backports": [
        'taskgroup>=0.2.2; python_version < "3.11"',
        'exceptiongroup>=1.2; python_version < "3.11"',
    ],
}
DISTRIBUTIONS = {
    "aiohttp": "aiohttp",
    "aiofiles": "aiofiles",
    "asyncpg": "asyncpg",
    "bs4": "beautifulsoup4",
    "lxml": "lxml",
    "yarl": "yarl",
    "taskgroup": "taskgroup",
    "exceptiongroup": "exceptiongroup",
}


class SnippetError(Exception):
    """Bad input to ``list`` or ``copy``: the message says what is wrong."""


# --- reading a chapter ------------------------------------------------------------------


def chapters() -> List[str]:
    """Every chapter module of the package, by name."""
    return sorted(p.stem for p in PACKAGE_DIR.glob("*.py") if not p.stem.startswith("_"))


def _source(chapter: str) -> str:
    if chapter not in chapters():
        hint = _did_you_mean(chapter, chapters())
        raise SnippetError(f"no chapter named {chapter!r}{hint}")
    return (PACKAGE_DIR / f"{chapter}.py").read_text(encoding="utf-8")


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(close)}?" if close else ""


@functools.lru_cache(maxsize=None)
def _parsed(chapter: str, source: str) -> _Chapter:
    return _Chapter(chapter, source)


def _public(chapter: str) -> List[str]:
    return _parsed(chapter, _source(chapter)).public


def _dunder_all(tree: ast.Module) -> List[str]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return [str(name) for name in ast.literal_eval(node.value)]
    return []


def _plain(text: str) -> str:
    """reStructuredText markup of a summary as plain text."""
    text = re.sub(r":\w+:`~?([^`<]*?)\s*<[^`>]*>`", r"\1", text)  # :role:`title <target>`
    text = re.sub(r":\w+:`~([^`]*)`", lambda m: m.group(1).split(".")[-1], text)
    text = re.sub(r":\w+:`([^`]*)`", r"\1", text)
    text = re.sub(r"``([^`]*)``", r"\1", text)
    text = re.sub(r"(?<![\w*])\*(\w[^*]*?)\*(?![\w*])", r"\1", text)  # *emphasis*
    return re.sub(r"\s+", " ", text).strip()


def _first_sentence(doc: str) -> str:
    paragraph = _plain(doc.strip().split("\n\n")[0])
    end = re.search(r"\.(\s|$)", paragraph)
    sentence = paragraph[: end.start() + 1] if end else paragraph
    return sentence[:-1] + "." if sentence.endswith((":", ";")) else sentence


def public_recipes(chapter: str) -> List[Tuple[str, str]]:
    """``(name, one-line summary)`` for each name in the chapter's ``__all__``."""
    source = _source(chapter)
    tree = ast.parse(source)
    lines = source.splitlines()
    summaries: Dict[str, str] = {}
    for index, node in enumerate(tree.body):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            doc = ast.get_docstring(node)
            if doc:  # not an @overload stub's
                summaries.setdefault(node.name, _first_sentence(doc))
            continue
        for name in _defined_names(node):
            after = tree.body[index + 1] if index + 1 < len(tree.body) else None
            if _is_string(after):
                assert isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                summaries.setdefault(name, _first_sentence(str(after.value.value)))
                continue
            comment: List[str] = []
            row = node.lineno - 2
            while row >= 0 and lines[row].startswith("#:"):
                comment.insert(0, lines[row][2:].strip())
                row -= 1
            summaries.setdefault(name, _first_sentence(" ".join(comment)))
    return [(name, summaries.get(name, "")) for name in _dunder_all(tree)]


def _is_string(node: Optional[ast.stmt]) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


# --- which names a statement binds and reads ----------------------------------------------


def _import_binding(alias: ast.alias) -> str:
    return alias.asname or alias.name.split(".")[0]


def _target_names(target: ast.expr) -> Iterator[str]:
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, (ast.Tuple, ast.List)):
        for element in target.elts:
            yield from _target_names(element)
    elif isinstance(target, ast.Starred):
        yield from _target_names(target.value)


def _defined_names(node: ast.stmt) -> List[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, ast.Assign):
        return [name for target in node.targets for name in _target_names(target)]
    if isinstance(node, (ast.AnnAssign, ast.AugAssign)):
        return list(_target_names(node.target))
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return [_import_binding(alias) for alias in node.names]
    return []


class _Reads(ast.NodeVisitor):
    """The names one scope reads and binds; nested scopes report what they need from outside.

    Annotations count as reads even where they are never evaluated: the names they use
    must be defined for a type checker, and for a reader.
    """

    def __init__(self) -> None:
        self.loads: Set[str] = set()
        self.stores: Set[str] = set()
        self.declared_global: Set[str] = set()
        self.from_nested: Set[str] = set()

    def free(self, bound: Optional[Set[str]] = None) -> Set[str]:
        local = (self.stores | (bound or set())) - self.declared_global
        return (self.loads | self.from_nested) - local

    def visit_Name(self, node: ast.Name) -> None:
        (self.loads if isinstance(node.ctx, ast.Load) else self.stores).add(node.id)

    def visit_Global(self, node: ast.Global) -> None:
        self.declared_global.update(node.names)

    def visit_Import(self, node: ast.Import) -> None:
        self.stores.update(_import_binding(alias) for alias in node.names)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self.stores.update(_import_binding(alias) for alias in node.names)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self.stores.add(node.name)
        self.generic_visit(node)

    def annotation(self, node: Optional[ast.expr]) -> None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            try:
                node = ast.parse(node.value, mode="eval").body
            except SyntaxError:
                return
        if node is not None:
            self.visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self.visit(node.target)
        self.annotation(node.annotation)
        if node.value is not None:
            self.visit(node.value)

    def _signature(self, args: ast.arguments) -> Set[str]:
        """Visit what a ``def`` evaluates where it stands; return its parameters."""
        every = [*getattr(args, "posonlyargs", []), *args.args, *args.kwonlyargs]
        every += [arg for arg in (args.vararg, args.kwarg) if arg is not None]
        for default in [*args.defaults, *args.kw_defaults]:
            if default is not None:
                self.visit(default)
        for arg in every:
            self.annotation(arg.annotation)
        return {arg.arg for arg in every}

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._function(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._function(node)

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.stores.add(node.name)
        for decorator in node.decorator_list:
            self.visit(decorator)
        params = self._signature(node.args)
        self.annotation(node.returns)
        body = _Reads()
        for statement in node.body:
            body.visit(statement)
        self.from_nested |= body.free(params)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        params = self._signature(node.args)
        body = _Reads()
        body.visit(node.body)
        self.from_nested |= body.free(params)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.stores.add(node.name)
        for expression in [*node.decorator_list, *node.bases, *node.keywords]:
            self.visit(expression)
        body = _Reads()
        for statement in node.body:
            body.visit(statement)
        # Methods do not see the class body's names: what they read comes from outside.
        self.from_nested |= (body.loads - body.stores) | body.from_nested

    def _comprehension(
        self,
        node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp,
        *results: Optional[ast.expr],
    ) -> None:
        generators = node.generators
        self.visit(generators[0].iter)  # evaluated in the enclosing scope
        inner = _Reads()
        for index, generator in enumerate(generators):
            inner.visit(generator.target)
            if index:
                inner.visit(generator.iter)
            for condition in generator.ifs:
                inner.visit(condition)
        for result in results:
            if result is not None:
                inner.visit(result)
        self.from_nested |= inner.free()

    def visit_ListComp(self, node: ast.ListComp) -> None:
        self._comprehension(node, node.elt)

    def visit_SetComp(self, node: ast.SetComp) -> None:
        self._comprehension(node, node.elt)

    def visit_GeneratorExp(self, node: ast.GeneratorExp) -> None:
        self._comprehension(node, node.elt)

    def visit_DictComp(self, node: ast.DictComp) -> None:
        self._comprehension(node, node.key, node.value)


def _reads(*nodes: ast.AST) -> Set[str]:
    visitor = _Reads()
    for node in nodes:
        visitor.visit(node)
    return visitor.loads | visitor.from_nested


# --- the pieces of a chapter --------------------------------------------------------------


class _Piece(NamedTuple):
    """One module-level binding: a statement, or one name of an import statement."""

    node: ast.stmt
    alias: Optional[ast.alias]
    binds: Tuple[str, ...]
    reads: FrozenSet[str]


def _skipped(node: ast.stmt, first: bool) -> bool:
    """Module-level statements that belong to the chapter, not to any recipe."""
    if first and _is_string(node):
        return True  # the chapter's text
    if isinstance(node, ast.Assign) and _defined_names(node) in (
        ["__all__"],
        ["__requires_python__"],
    ):
        return True
    if isinstance(node, ast.If):  # if __name__ == "__main__":
        test = node.test
        return (
            isinstance(test, ast.Compare)
            and isinstance(test.left, ast.Name)
            and test.left.id == "__name__"
            and isinstance(test.comparators[0], ast.Constant)
            and test.comparators[0].value == "__main__"
        )
    return False


class _Chapter:
    """A chapter's source, cut into pieces with what each binds and reads."""

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.lines = source.splitlines()
        self.tree = ast.parse(source)
        self.pieces: List[_Piece] = []
        # Guards (if statements) around each piece, to read their tests too.
        self.guards: Dict[int, List[ast.If]] = {}
        # An attribute docstring belongs to the statement before it.
        self.docstring_of: Dict[int, ast.stmt] = {}
        self.public = _dunder_all(self.tree)
        self._cut(self.tree.body, [], top=True)
        self.binders: Dict[str, List[_Piece]] = {}
        for piece in self.pieces:
            for name in piece.binds:
                self.binders.setdefault(name, []).append(piece)

    def _cut(self, body: List[ast.stmt], guards: List[ast.If], top: bool = False) -> None:
        for index, node in enumerate(body):
            if top and _skipped(node, first=index == 0):
                continue
            if isinstance(node, ast.If):
                self._cut(node.body, [*guards, node])
                self._cut(node.orelse, [*guards, node])
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    if alias.name == "*":
                        raise SnippetError(f"{self.name}: 'import *' cannot be copied in part")
                    self._add(_Piece(node, alias, (_import_binding(alias),), frozenset()), guards)
            elif _is_string(node) and index and _defined_names(body[index - 1]):
                self.docstring_of[id(body[index - 1])] = node
            elif _defined_names(node) or isinstance(node, ast.Try):
                binds = _defined_names(node) or [
                    name
                    for inner in ast.walk(node)
                    if isinstance(inner, ast.stmt)
                    for name in _defined_names(inner)
                ]
                self._add(_Piece(node, None, tuple(binds), frozenset(_reads(node))), guards)
            else:
                line = node.lineno
                raise SnippetError(
                    f"{self.name}.py line {line}: a module-level statement that binds no name "
                    "cannot be assigned to a recipe"
                )

    def _add(self, piece: _Piece, guards: List[ast.If]) -> None:
        self.pieces.append(piece)
        self.guards[id(piece)] = guards

    def needs(self, names: Sequence[str]) -> List[_Piece]:
        """Every piece the named recipes need, transitively."""
        chosen: Dict[int, _Piece] = {}
        todo = list(names)
        # Future imports change how the whole module compiles: always kept.
        for piece in self.pieces:
            if isinstance(piece.node, ast.ImportFrom) and piece.node.module == "__future__":
                todo.extend(piece.binds)
        while todo:
            for piece in self.binders.get(todo.pop(), []):
                if id(piece) in chosen:
                    continue
                chosen[id(piece)] = piece
                todo.extend(piece.reads)
                for guard in self.guards[id(piece)]:
                    todo.extend(_reads(guard.test))
        return list(chosen.values())

    # --- writing the chosen pieces back out, in source order ---

    def start(self, node: ast.stmt) -> int:
        """The first line (0-based) of ``node``, with its decorators and comments above it."""
        decorators: List[ast.expr] = getattr(node, "decorator_list", [])
        first = min([node.lineno, *(d.lineno for d in decorators)]) - 1
        indent = self.lines[node.lineno - 1][: node.col_offset]
        while first > 0 and self.lines[first - 1].startswith(indent + "#"):
            first -= 1
        return first

    def text(self, node: ast.stmt) -> str:
        end = node.end_lineno or node.lineno
        docstring = self.docstring_of.get(id(node))
        if docstring is not None:
            end = docstring.end_lineno or end
        return "\n".join(self.lines[self.start(node) : end])

    def render(self, body: List[ast.stmt], chosen: Set[int], imports: Set[int]) -> List[ast.stmt]:
        """The statements of ``body`` to write, as (node, text) chunks."""
        return [node for node in body if self._wanted(node, chosen, imports)]

    def _wanted(self, node: ast.stmt, chosen: Set[int], imports: Set[int]) -> bool:
        if isinstance(node, ast.If):
            return any(
                self._wanted(inner, chosen, imports) for inner in [*node.body, *node.orelse]
            )
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            return id(node) in imports
        return id(node) in chosen

    def write(self, node: ast.stmt, chosen: Set[int], aliases: Set[int]) -> str:
        imports = {id(p.node) for p in self.pieces if id(p.alias) in aliases}
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            kept = [alias for alias in node.names if id(alias) in aliases]
            if len(kept) == len(node.names):
                return self.text(node)
            return _import_text(node, kept)
        if not isinstance(node, ast.If):
            return self.text(node)
        return self._write_if(node, chosen, aliases, imports)

    def _write_if(
        self, node: ast.If, chosen: Set[int], aliases: Set[int], imports: Set[int]
    ) -> str:
        indent = " " * node.col_offset
        out = self.lines[node.lineno - 1 : self.start(node.body[0])]
        out += self._block(node.body, chosen, aliases, imports, indent + "    ")
        if node.orelse and any(self._wanted(n, chosen, imports) for n in node.orelse):
            first = node.orelse[0]
            if isinstance(first, ast.If) and self.lines[first.lineno - 1].lstrip().startswith(
                "elif"
            ):
                out.append(self._write_if(first, chosen, aliases, imports))
            else:
                header = self.lines[(node.body[-1].end_lineno or 0) : self.start(first)]
                out += [line for line in header if line.strip()]
                out += self._block(node.orelse, chosen, aliases, imports, indent + "    ")
        return "\n".join(out)

    def _block(
        self,
        body: List[ast.stmt],
        chosen: Set[int],
        aliases: Set[int],
        imports: Set[int],
        indent: str,
    ) -> List[str]:
        kept = [n for n in body if self._wanted(n, chosen, imports)]
        if not kept:
            return [indent + "pass"]
        out: List[str] = []
        for previous, node in zip([None, *kept], kept):
            if previous is not None and (_is_block(previous) or _is_block(node)):
                out.append("")
            out.append(self.write(node, chosen, aliases))
        return out


def _is_block(node: ast.stmt) -> bool:
    """Statements that stand between two blank lines: a def or class, or a guard around one."""
    definitions = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    if isinstance(node, (ast.If, ast.Try)):
        return any(isinstance(inner, definitions) for inner in ast.walk(node))
    return isinstance(node, definitions)


def _alias_text(alias: ast.alias) -> str:
    return alias.name + (f" as {alias.asname}" if alias.asname else "")


def _import_text(node: ast.Import | ast.ImportFrom, kept: Sequence[ast.alias]) -> str:
    """The import statement ``node`` with only the names in ``kept`` (all if empty)."""
    indent = " " * getattr(node, "col_offset", 0)
    names = [_alias_text(alias) for alias in (kept or node.names)]
    if isinstance(node, ast.Import):
        return "\n".join(f"{indent}import {name}" for name in names)
    head = f"{indent}from {'.' * node.level}{node.module or ''} import "
    line = head + ", ".join(names)
    if len(line) <= 99:
        return line
    inner = "".join(f"{indent}    {name},\n" for name in names)
    return f"{head}(\n{inner}{indent})"


# --- snippets -----------------------------------------------------------------------------


class Requirement(NamedTuple):
    distribution: str
    specifier: str  # as in setup.cfg: "aiohttp>=3.9"
    condition: str  # "" or 'python_version < "3.11"'


class Snippet(NamedTuple):
    """The code of one or more recipes, ready to paste into a module of your own."""

    text: str
    targets: Tuple[str, ...]  # "chapter.name"
    module_name: str  # what the examples import from
    requirements: Tuple[Requirement, ...]
    extras: Tuple[str, ...]

    @property
    def lines(self) -> int:
        return self.text.count("\n")


def _resolve(target: str) -> Tuple[str, str]:
    """``"limiting.bounded_gather"`` (or a bare name that only one chapter has) -> parts."""
    if "." not in target:
        owners = [c for c in chapters() if target in _public(c)]
        if len(owners) == 1:
            return owners[0], target
        if owners:
            choices = " or ".join(f"{c}.{target}" for c in owners)
            raise SnippetError(f"{target!r} is in several chapters: say {choices}")
        every = [f"{c}.{n}" for c in chapters() for n in _public(c)]
        bare = {full.split(".")[1]: full for full in every}
        hint = _did_you_mean(target, list(bare))
        if hint:
            close = difflib.get_close_matches(target, list(bare), n=3, cutoff=0.6)
            hint = f"; did you mean {' or '.join(bare[c] for c in close)}?"
        raise SnippetError(f"no recipe named {target!r}{hint} (python -m recipes list shows all)")
    chapter, _, name = target.partition(".")
    public = _public(chapter)
    if name in public:
        return chapter, name
    if name.startswith("_"):
        raise SnippetError(
            f"{target} is private: copy the public recipe that uses it, and the snippet "
            "brings the helpers it needs"
        )
    hint = _did_you_mean(name, public)
    hint = hint.replace("did you mean ", f"did you mean {chapter}.").replace(
        " or ", f" or {chapter}."
    )
    raise SnippetError(f"chapter {chapter} has no public recipe named {name!r}{hint}")


def _requirements(text: str) -> List[Requirement]:
    """What the code needs from PyPI: its imports, and the parser BeautifulSoup loads by name."""
    found: Dict[str, str] = {}

    def visit(body: List[ast.stmt], condition: str) -> None:
        for node in body:
            if isinstance(node, ast.If):
                test = ast.get_source_segment(text, node.test) or ""
                if test.endswith("TYPE_CHECKING"):
                    continue  # for the type checker only
                version = re.fullmatch(r"sys\.version_info >= \((\d+), (\d+)\)", test)
                older = f'python_version < "{version[1]}.{version[2]}"' if version else condition
                visit(node.body, condition)
                visit(node.orelse, older)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                modules = (
                    [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
                )
                for module in modules:
                    top = (module or "").split(".")[0]
                    if top in DISTRIBUTIONS:
                        found.setdefault(DISTRIBUTIONS[top], condition)
            else:  # imports inside a function or block count too
                inner: List[ast.stmt] = []
                for child in ast.iter_child_nodes(node):
                    if isinstance(child, ast.stmt):
                        inner.append(child)
                    elif isinstance(child, ast.ExceptHandler):
                        inner += child.body
                visit(inner, condition)

    visit(ast.parse(text).body, "")
    if "beautifulsoup4" in found and re.search(r"BeautifulSoup\([^)]*[\"']lxml[\"']", text):
        found.setdefault("lxml", "")
    requirements = []
    for distribution, condition in found.items():
        specifier = next(
            line.split(";")[0]
            for lines in EXTRAS.values()
            for line in lines
            if re.match(rf"{distribution}\b", line)
        )
        requirements.append(Requirement(distribution, specifier, condition))
    return sorted(requirements)


def _extras_for(requirements: Sequence[Requirement]) -> List[str]:
    """The fewest extras that install every requirement."""
    names = {r.distribution for r in requirements}
    chosen: List[str] = []

    def dists(extra: str) -> Set[str]:
        return {re.split(r"[<>=;\s]", line)[0] for line in EXTRAS[extra]}

    while names:
        best = max(EXTRAS, key=lambda e: (len(names & dists(e)), -len(dists(e))))
        if not names & dists(best):
            break
        chosen.append(best)
        names -= dists(best)
    return sorted(chosen, key=list(EXTRAS).index)


def _merge_imports(imports: List[Tuple[str, List[str]]]) -> List[str]:
    """One import block for snippets from several chapters: each name imported once.

    ``imports`` holds ``(module, names)`` for ``from module import names`` and
    ``("", names)`` for ``import names``.
    """
    merged: Dict[str, List[str]] = {}
    for module, names in imports:
        kept = merged.setdefault(module, [])
        kept += [name for name in names if name not in kept]
    return [
        "\n".join(f"import {name}" for name in names)
        if not module
        else _import_text(ast.ImportFrom(module, [ast.alias(n, None) for n in names], 0), [])
        for module, names in merged.items()
    ]


def _check_identifier(module_name: str) -> None:
    if not module_name.isidentifier():
        raise SnippetError(
            f"{module_name!r} cannot be imported as a module: pass --module NAME "
            "to say what the examples should import from"
        )


def build_snippet(targets: Sequence[str], module_name: Optional[str] = None) -> Snippet:
    """The self-contained code of the recipes named ``chapter.name``, in source order.

    The examples in the docstrings import from ``module_name`` (by default the chapter's
    own name, so saving the snippet as ``limiting.py`` makes them run as written).
    """
    if not targets:
        raise SnippetError("name at least one recipe, such as limiting.bounded_gather")
    resolved: List[Tuple[str, str]] = []
    for target in targets:
        part = _resolve(target)
        if part not in resolved:
            resolved.append(part)
    order = [c for c in dict.fromkeys(chapter for chapter, _ in resolved)]
    if module_name is None:
        module_name = order[0] if len(order) == 1 else "snippet"
    _check_identifier(module_name)
    merged_imports: List[Tuple[str, List[str]]] = []
    future: List[str] = []
    body: List[Tuple[str, ast.stmt, str]] = []
    for chapter_name in order:
        chapter = _parsed(chapter_name, _source(chapter_name))
        names = [name for c, name in resolved if c == chapter_name]
        pieces = chapter.needs(names)
        chosen = {id(p.node) for p in pieces}
        aliases = {id(p.alias) for p in pieces if p.alias is not None}
        imports = {id(p.node) for p in pieces if p.alias is not None}
        for node in chapter.render(chapter.tree.body, chosen, imports):
            text = chapter.write(node, chosen, aliases)
            text = re.sub(rf"\brecipes\.{chapter_name}\b", module_name, text)
            if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                future += [line for line in text.splitlines() if line not in future]
            elif isinstance(node, (ast.Import, ast.ImportFrom)) and len(order) > 1:
                kept = [_alias_text(a) for a in node.names if id(a) in aliases]
                merged_imports.append((getattr(node, "module", None) or "", kept))
            else:
                body.append((chapter_name, node, text))
    if len(order) > 1:
        _refuse_clashes(body)
        import_lines = [
            ("", ast.Import(names=[]), text) for text in _merge_imports(merged_imports)
        ]
        body = import_lines + body  # type: ignore[operator]
    code = _join(future, body)
    requirements = _requirements(code)
    extras = _extras_for(requirements)
    header = _header(resolved, order, module_name, requirements, extras)
    return Snippet(
        text=header + "\n" + code,
        targets=tuple(f"{c}.{n}" for c, n in resolved),
        module_name=module_name,
        requirements=tuple(requirements),
        extras=tuple(extras),
    )


def _refuse_clashes(body: List[Tuple[str, ast.stmt, str]]) -> None:
    seen: Dict[str, Tuple[str, str]] = {}
    keep: List[Tuple[str, ast.stmt, str]] = []
    for chapter, node, text in body:
        names = _defined_names(node) or [
            n
            for inner in ast.walk(node)
            if isinstance(inner, ast.stmt)
            for n in _defined_names(inner)
        ]
        duplicate = False
        for name in names:
            if name in seen and seen[name][0] != chapter and seen[name][1] != text:
                raise SnippetError(
                    f"{seen[name][0]} and {chapter} both define {name}, differently: "
                    "copy them into two files"
                )
            duplicate = duplicate or (name in seen and seen[name][0] != chapter)
            seen.setdefault(name, (chapter, text))
        if not duplicate:
            keep.append((chapter, node, text))
    body[:] = keep


def _join(future: List[str], body: List[Tuple[str, ast.stmt, str]]) -> str:
    out: List[str] = list(future)
    previous: Optional[ast.stmt] = None
    for _chapter, node, text in body:
        if previous is None:
            gap = 1 if out else 0
        elif _is_block(previous) or _is_block(node):
            gap = 2
        elif isinstance(previous, (ast.Import, ast.ImportFrom)) and isinstance(
            node, (ast.Import, ast.ImportFrom)
        ):
            gap = 0
        else:
            gap = 1
        out += [""] * gap + [text]
        previous = node
    return "\n".join(out) + "\n"


def _header(
    resolved: List[Tuple[str, str]],
    order: List[str],
    module_name: str,
    requirements: Sequence[Requirement],
    extras: Sequence[str],
) -> str:
    from recipes import __version__

    names = ", ".join(name for _, name in resolved)
    where = "; ".join(f'"{CHAPTER_TITLES.get(c, c)}" (recipes/{c}.py)' for c in order)
    oldest = ".".join(map(str, OLDEST_PYTHON))
    newest = ".".join(map(str, NEWEST_PYTHON))
    origin = f"{names}: from asyncio-cookbook {__version__}, {where}."
    lines = textwrap.wrap(origin, 77, initial_indent="# ", subsequent_indent="# ")
    lines.append(
        f"# Copied with: python -m recipes copy {' '.join(f'{c}.{n}' for c, n in resolved)}"
    )
    if requirements:
        specs = " ".join(
            f"'{r.specifier}; {r.condition}'" if r.condition else f"'{r.specifier}'"
            for r in requirements
        )
        lines.append(f"# Runs on Python {oldest} to {newest}. Needs: pip install {specs}")
        plural = "s" if len(extras) > 1 else ""
        lines.append(f"# (the cookbook's [{','.join(extras)}] extra{plural}).")
    else:
        lines.append(f"# Runs on Python {oldest} to {newest}, with only the standard library.")
    lines.append(f"# Its examples import from {module_name}: save it as {module_name}.py.")
    return "\n".join(lines) + "\n"


# --- the command line ---------------------------------------------------------------------


def _list(selected: Sequence[str], out: List[str]) -> None:
    for chapter in selected or chapters():
        recipes = public_recipes(chapter)
        out.append(f"{CHAPTER_TITLES.get(chapter, chapter)} ({chapter})")
        width = max((len(chapter) + 1 + len(name) for name, _ in recipes), default=0)
        for name, summary in recipes:
            out.append(f"  {chapter + '.' + name:<{width}}  {summary}".rstrip())
        out.append("")


def _write(path: Path, text: str, force: bool) -> None:
    if path.is_dir():
        raise SnippetError(f"{path} is a folder: name the file to write")
    if path.exists() and not force:
        raise SnippetError(f"{path} exists: pass --force to overwrite it")
    if not path.parent.is_dir():
        raise SnippetError(f"{path.parent} is not a folder")
    # Write next to the target and rename: an interrupted copy leaves no half-written file.
    handle, temporary = tempfile.mkstemp(dir=str(path.parent), prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m recipes``: list the recipes, or copy some of them as one snippet."""
    parser = argparse.ArgumentParser(
        prog="python -m recipes",
        description="Take one recipe from asyncio-cookbook instead of a whole chapter.",
    )
    commands = parser.add_subparsers(dest="command", metavar="{list,copy}")
    commands.required = True
    listing = commands.add_parser("list", help="every public recipe, by chapter")
    listing.add_argument("chapter", nargs="*", help="only these chapters")
    copying = commands.add_parser(
        "copy", help="print (or write) the self-contained code of some recipes"
    )
    copying.add_argument("recipe", nargs="+", help="chapter.name, such as limiting.bounded_gather")
    copying.add_argument("--to", metavar="FILE", type=Path, help="write the snippet to FILE")
    copying.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    copying.add_argument("--module", help="what the examples import from (default: FILE's name)")
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            for chapter in args.chapter:
                _source(chapter)  # an unknown chapter fails before anything is printed
            out: List[str] = []
            _list(args.chapter, out)
            sys.stdout.write("\n".join(out).rstrip("\n") + "\n")
            return 0
        module_name = args.module or (args.to.stem if args.to else None)
        snippet = build_snippet(args.recipe, module_name)
        if args.to is None:
            sys.stdout.write(snippet.text)
        else:
            _write(args.to, snippet.text, args.force)
            print(f"wrote {snippet.lines} lines to {args.to}", file=sys.stderr)
        return 0
    except SnippetError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
