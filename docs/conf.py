"""Sphinx configuration for the asyncio cookbook."""

from __future__ import annotations

import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(DOCS / "_ext"))

import recipes  # noqa: E402

project = "asyncio cookbook"
author = "The asyncio-cookbook authors"
copyright = "2026, The asyncio-cookbook authors"
release = version = recipes.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "sphinx.ext.intersphinx",
    "sphinx.ext.autosectionlabel",
    "sphinx_copybutton",
    "repl_examples",  # docs/_ext: visible version gates; copies that paste into the REPL
]
exclude_patterns = ["_build", "_inventories", "_generated", "Thumbs.db", ".DS_Store"]
templates_path = ["_templates"]
html_static_path = ["_static"]
html_theme = "furo"
html_title = "asyncio cookbook"
html_copy_source = False
html_favicon = "_static/favicon.svg"

# --- every section has a label "<document>:<title>", e.g. recipes/tasks:Starting a task
autosectionlabel_prefix_document = True

# --- autodoc: the module docstring is the chapter, members follow in source order
autodoc_default_options = {
    "members": True,
    "member-order": "bysource",
    "show-inheritance": True,
}
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
python_use_unqualified_type_names = True
# Sphinx strips "# doctest: ..." comments (the version gates) from examples.
trim_doctest_flags = True

# --- every reference must resolve (the docs env builds with -n -W)
nitpicky = True
nitpick_ignore_regex = [
    # Type variables and private aliases in signatures have no page of their own.
    (r"py:(class|obj|data)", r"(recipes\.[a-z_]+\.)?_?[A-Z][A-Za-z]?(_co|_contra)?"),
    (r"py:(class|obj|data)", r"(recipes\.[a-z_]+\.)?_[A-Za-z]+"),
    # ParamSpec components (P.args, P.kwargs) are not documented objects.
    (r"py:(class|obj|data)", r"(recipes\.[a-z_]+\.)?P\.(args|kwargs)"),
]

# --- intersphinx, offline: the inventories are vendored (tools/refresh_inventories.py);
# python.inv is the newest Python's (3.15), so names added up to 3.15 resolve.
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", str(DOCS / "_inventories" / "python.inv")),
    "aiohttp": ("https://docs.aiohttp.org/en/stable", str(DOCS / "_inventories" / "aiohttp.inv")),
}
intersphinx_timeout = 5

# --- copy buttons yield only the code: no prompts, no output lines
copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True
copybutton_only_copy_prompt_lines = True
copybutton_remove_prompts = True
copybutton_copy_empty_lines = False


# --- references the vendored inventories cannot resolve on their own
# Type hints name classes by where they are defined; the docs know them by their public name.
PRIVATE_PREFIXES = (
    (re.compile(r"^_asyncio\."), "asyncio."),
    (re.compile(r"^concurrent\.futures\._base\."), "concurrent.futures."),
    (re.compile(r"^asyncio\.[a-z_]+\.(?=[A-Z])"), "asyncio."),
    (re.compile(r"^aiohttp\.[a-z_]+\.(?=[A-Z])"), "aiohttp."),
    (re.compile(r"^aiohttp\.web_[a-z_]+\.(?=[A-Z])"), "aiohttp.web."),
)
# asyncpg publishes no inventory we can vendor; its API page anchors are the dotted names.
ASYNCPG_API = "https://magicstack.github.io/asyncpg/current/api/index.html"
OTHER_PROJECTS = {
    "aiofiles": "https://pypi.org/project/aiofiles/",
}


def _external(url: str, contnode: object) -> object:
    from docutils import nodes

    node = nodes.reference("", "", internal=False, refuri=url, reftitle="(external)")
    node.append(contnode)
    return node


def _resolve_missing(app: object, env: object, node: object, contnode: object) -> object:
    from sphinx.ext import intersphinx

    target = node.get("reftarget", "")  # type: ignore[attr-defined]
    if node.get("refdomain") != "py":  # type: ignore[attr-defined]
        return None
    for pattern, public in PRIVATE_PREFIXES:
        if pattern.search(target):
            node["reftarget"] = pattern.sub(public, target)  # type: ignore[index]
            resolved = intersphinx.missing_reference(app, env, node, contnode)  # type: ignore[arg-type]
            if resolved is not None:
                return resolved
            node["reftarget"] = target  # type: ignore[index]
    if target.startswith("asyncpg"):
        return _external(f"{ASYNCPG_API}#{target}", contnode)
    project = target.split(".")[0]
    if project in OTHER_PROJECTS:
        return _external(OTHER_PROJECTS[project], contnode)
    return None


def _version_gates() -> str:
    """A reST table of which recipe or example needs which Python, read from the gates.

    Gated examples are grouped by the section (or function) they belong to,
    so one row names one recipe; the row shows its first gated line.
    """
    flag = re.compile(r"#\s*doctest:.*\+PY3(\d+)")
    underline = re.compile(r"^\s*([-~^])\1{3,}\s*$")
    definition = re.compile(r"^(?:async\s+def|def|class)\s+([A-Za-z_]\w*)")
    rows = []
    for path in sorted((ROOT / "recipes").glob("*.py")):
        if path.name == "__init__.py":
            continue
        text = path.read_text(encoding="utf-8")
        module = f"recipes.{path.stem}"
        whole = re.search(r"^__requires_python__\s*=\s*\(\s*3\s*,\s*(\d+)\s*\)", text, re.M)
        if whole:
            rows.append((int(whole.group(1)), module, "the whole chapter", "", 0))
        lines = text.splitlines()
        section = "introduction"
        groups: dict = {}
        for number, line in enumerate(lines, start=1):
            named = definition.match(line)
            if named:
                section = f":func:`~{module}.{named.group(1)}`"
            elif underline.match(line) and number >= 2 and lines[number - 2].strip():
                section = lines[number - 2].strip()
            match = flag.search(line)
            if match and ">>>" in line:
                key = (int(match.group(1)), section)
                code = line.split(">>>", 1)[1].split("#", 1)[0].strip()
                following = lines[number].strip() if number < len(lines) else ""
                if code.endswith(":") and following.startswith("..."):
                    # "try:" alone says nothing; show what the block does.
                    code = f"{code} {following[3:].split('#', 1)[0].strip()}"
                groups.setdefault(key, [code, 0])[1] += 1
        for (minor, where), (code, count) in groups.items():
            rows.append((minor, module, where, f"``{code}``", count))
    rows.sort(key=lambda row: (row[0], row[1]))
    out = [
        ".. list-table::",
        "   :header-rows: 1",
        "   :widths: 8 22 30 40",
        "",
        "   * - Needs",
        "     - Chapter",
        "     - Recipe (section or function)",
        "     - First gated example",
    ]
    for minor, module, where, code, count in rows:
        more = f" (and {count - 1} more)" if count > 1 else ""
        out += [
            f"   * - 3.{minor}+",
            f"     - :mod:`{module}`",
            f"     - {where}",
            f"     - {code}{more}" if code else "     - —",
        ]
    return "\n".join(out) + "\n"


def _figure(value: float) -> str:
    """A measurement as people read it: 14,220 and 6.9, never 1.422e+04."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def _benchmark_figures() -> str:
    """reST for every benchmark result file in _static/benchmarks/ (from benchmarks/run_all.py)."""
    import json

    out = []
    for path in sorted((DOCS / "_static" / "benchmarks").glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        title = str(data.get("title") or data["benchmark"])
        out += [title, "-" * len(title), ""]
        if data.get("description"):
            out += [str(data["description"]), ""]
        out += [
            f"Measured with ``benchmarks/{path.stem}.py`` on Python {data['python']}"
            + (f", {data['measured']}" if data.get("measured") else "")
            + ".",
            "",
            ".. list-table::",
            "   :header-rows: 1",
            "   :widths: 60 20 20",
            "",
            "   * - Measurement",
            "     - Value",
            "     - Unit",
        ]
        for row in data["results"]:
            out += [
                f"   * - {row['name']}",
                f"     - {_figure(row['value'])}",
                f"     - {row['unit']}",
            ]
        out.append("")
        if data.get("ratios"):
            out += ["**Ratios** (measured in the same run):", ""]
            out += [f"- {name}: **{_figure(value)}**" for name, value in data["ratios"].items()]
            out.append("")
        image = path.with_suffix(".png")
        if image.exists():
            out += [f".. image:: /_static/benchmarks/{image.name}", f"   :alt: {title}", ""]
    if not out:
        out = ["No benchmark results are stored yet: run ``tox -e bench``.", ""]
    return "\n".join(out) + "\n"


def _write_generated(app: object) -> None:
    generated = DOCS / "_generated"
    generated.mkdir(exist_ok=True)
    for name, content in (
        ("version_gates.rst", _version_gates()),
        ("benchmarks.rst", _benchmark_figures()),
    ):
        target = generated / name
        if not target.exists() or target.read_text(encoding="utf-8") != content:
            target.write_text(content, encoding="utf-8")


def setup(app: object) -> None:
    app.connect("builder-inited", _write_generated)  # type: ignore[attr-defined]
    # After intersphinx (priority 500) has had its turn.
    app.connect("missing-reference", _resolve_missing, priority=900)  # type: ignore[attr-defined]
