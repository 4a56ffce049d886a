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
    "copy_recipe",  # docs/_ext: a "Copy recipe" button on every public recipe
    "zh_edition",  # docs/_ext: Chinese search words, furo's fixed labels
]
exclude_patterns = ["_build", "_inventories", "_generated", "Thumbs.db", ".DS_Store"]
templates_path = ["_templates"]
html_static_path = ["_static"]
html_theme = "furo"
html_title = "asyncio cookbook"
html_copy_source = False
html_favicon = "_static/favicon.svg"

# --- translations: one catalog per document in docs/locales/<lang>/LC_MESSAGES (docs/i18n.py)
locale_dirs = ["locales"]
gettext_compact = False  # the HTML build must use the same setting, or nothing is translated
gettext_location = False  # no "#: file:line" comments: they churn with every English edit
gettext_uuid = False
# Index entries are translated too (the Chinese index page lists Chinese terms); code is not.
gettext_additional_targets = ["index"]

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


# One row per recipe that needs a newer Python than 3.8: the feature, the Python that has
# it, what the chapter shows for older ones, and the section (or function) where it is.
# The build checks this list against the gates in the code (``# doctest: +PY311`` flags,
# ``:requires-python:`` scripts, ``__requires_python__``), both ways.
FEATURES = [
    (
        9,
        "cancellation",
        "Saying why: cancel messages",
        "``task.cancel(msg)``: a reason in the CancelledError",
        "Log the reason before calling ``cancel()``.",
    ),
    (
        9,
        "tasks",
        "Cancelling a task",
        "``task.cancel(msg)``",
        "Cancel without a message; log the reason first.",
    ),
    (
        9,
        "coroutines",
        "Running blocking code off the loop",
        ":func:`asyncio.to_thread`",
        ":func:`~recipes.coroutines.run_in_thread`, on ``loop.run_in_executor``.",
    ),
    (
        10,
        "async_iteration",
        "Closing async generators",
        ":func:`contextlib.aclosing`",
        "The chapter's :class:`~recipes.async_iteration.aclosing`.",
    ),
    (
        10,
        "async_iteration",
        "Using aiter() and anext()",
        "The :func:`aiter` and :func:`anext` builtins",
        ":func:`~recipes.async_iteration.compat_aiter` and "
        ":func:`~recipes.async_iteration.compat_anext`.",
    ),
    (
        10,
        "context_managers",
        "Optional context managers and decorators",
        "``async with contextlib.nullcontext()``; ``AsyncContextDecorator``",
        ":class:`~recipes.context_managers.anullcontext`, and a few-line decorator.",
    ),
    (
        10,
        "files",
        "recipes.files.iter_lines",
        ":func:`contextlib.aclosing` around :func:`~recipes.files.iter_lines`",
        "``try``/``finally`` with ``await lines.aclose()``.",
    ),
    (
        10,
        "limiting",
        "Limiting concurrency with a semaphore",
        "A semaphore made outside any loop works in each later loop",
        "Create the semaphore inside the running loop.",
    ),
    (
        10,
        "synchronization",
        "Creating primitives inside the running loop",
        "Primitives made at import time work under :func:`asyncio.run`",
        "Create them inside the running loop.",
    ),
    (
        10,
        "realtime",
        "Reading an event stream",
        ":func:`contextlib.aclosing` around :func:`~recipes.realtime.read_events`",
        "``try``/``finally`` with ``await events.aclose()``.",
    ),
    (
        13,
        "streams",
        "Shutting down gracefully",
        ":meth:`asyncio.Server.close_clients` and :meth:`~asyncio.Server.abort_clients`",
        "Keep the writers in a set and close them yourself; "
        ":meth:`~recipes.streams.LineServer.shutdown` does it on every version.",
    ),
    (
        9,
        "logging_context",
        "What callbacks, executors and threads see",
        ":func:`asyncio.to_thread` runs the function in a copy of the context",
        ":func:`~recipes.logging_context.run_in_executor_with_context`.",
    ),
    (
        11,
        "logging_context",
        "Running a task in a context you choose",
        "``create_task(..., context=ctx)``",
        ":func:`~recipes.logging_context.create_task_in_context` (a copy of the context).",
    ),
    (
        12,
        "logging_context",
        "Logging a failed task with its request id",
        ":meth:`asyncio.Task.get_context`",
        "Pass ``context=`` to :func:`~recipes.logging_context.log_when_failed`.",
    ),
    (
        12,
        "logging_context",
        "Naming tasks for the logs",
        "``%(taskName)s`` in log formats",
        ":class:`~recipes.logging_context.TaskNameFilter`.",
    ),
    (
        12,
        "logging_context",
        "Logging from many tasks without blocking the loop",
        "``dictConfig`` builds a ``QueueHandler`` with its listener",
        ":func:`~recipes.logging_context.queue_logging`.",
    ),
    (
        11,
        "subprocesses",
        "Timing out a child process",
        ":func:`asyncio.timeout` around a conversation with a child",
        ":func:`asyncio.wait_for` around the same steps.",
    ),
    (
        9,
        "parallelism",
        "Cancelling work you no longer need",
        "``Executor.shutdown(cancel_futures=True)``",
        "Cancel the futures you hold before ``shutdown()``, as "
        ":class:`~recipes.parallelism.ProcessRunner` does.",
    ),
    (
        9,
        "sync_bridge",
        "Giving synchronous code a blocking client",
        "Calling sync code that uses the portal with :func:`asyncio.to_thread`",
        "``loop.run_in_executor(None, func, portal)``.",
    ),
    (
        9,
        "sync_bridge",
        "Running blocking calls from a coroutine",
        ":func:`asyncio.to_thread` (keyword arguments, context copied)",
        "``loop.run_in_executor`` with :func:`functools.partial`, or "
        ":class:`~recipes.sync_bridge.BlockingPool`.",
    ),
    (
        9,
        "sync_bridge",
        "Exceptions, cancellation and context across the bridge",
        ":func:`asyncio.to_thread` copies context variables",
        "``run_in_executor(None, copy_context().run, func)``, or "
        ":class:`~recipes.sync_bridge.BlockingPool`.",
    ),
    (
        11,
        "cancellation",
        "Counting cancellations: cancelling() and uncancel()",
        ":meth:`asyncio.Task.cancelling` and :meth:`~asyncio.Task.uncancel`",
        "No count before 3.11: never swallow a cancellation you did not ask for.",
    ),
    (
        11,
        "errors",
        "Errors in a TaskGroup",
        ":class:`asyncio.TaskGroup` raising an :exc:`ExceptionGroup`",
        "The ``taskgroup`` and ``exceptiongroup`` backports.",
    ),
    (
        11,
        "errors",
        "Handling an ExceptionGroup",
        "``except*``",
        ":meth:`~BaseExceptionGroup.split` and :meth:`~BaseExceptionGroup.subgroup`, "
        "also in the ``exceptiongroup`` backport.",
    ),
    (
        11,
        "gathering",
        "Stopping the others when one fails",
        ":class:`asyncio.TaskGroup` as fail-fast gather",
        ":func:`~recipes.gathering.gather_or_cancel`.",
    ),
    (
        11,
        "synchronization",
        "Meeting at a Barrier",
        ":class:`asyncio.Barrier`",
        ":class:`~recipes.synchronization.SimpleBarrier`.",
    ),
    (
        11,
        "task_groups",
        "Catching errors from a group",
        "``except*`` around a task group",
        "Catch :exc:`BaseExceptionGroup` (backport) and split it.",
    ),
    (
        11,
        "task_groups",
        "Stopping a group early",
        "Stopping a :class:`asyncio.TaskGroup` without an error",
        ":class:`~recipes.task_groups.StoppableTaskGroup` on the backport.",
    ),
    (
        11,
        "tasks",
        "Running a task in a given context",
        "``create_task(..., context=ctx)``",
        "Start the task from inside ``ctx.run()``.",
    ),
    (
        11,
        "timeouts",
        "Catching the right TimeoutError",
        ":exc:`asyncio.TimeoutError` is the builtin :exc:`TimeoutError`",
        "Catch ``asyncio.TimeoutError``: right on every version.",
    ),
    (
        11,
        "timeouts",
        "Timing out a block of code",
        ":func:`asyncio.timeout`",
        ":func:`~recipes.timeouts.portable_timeout`.",
    ),
    (
        11,
        "timeouts",
        "Sharing one deadline across several steps",
        ":func:`asyncio.timeout_at` and ``reschedule()``",
        ":func:`~recipes.timeouts.portable_timeout_at` and :class:`~recipes.timeouts.Budget`.",
    ),
    (
        11,
        "waiting",
        "Passing tasks, not coroutines",
        ":func:`asyncio.wait` rejects coroutines",
        "Wrap each coroutine with :func:`asyncio.create_task`: right on every version.",
    ),
    (
        12,
        "debugging",
        "Setting up logging for asyncio",
        "Logging configured for a program that runs on a newer loop",
        "The same configuration without the 3.12 script.",
    ),
    (
        12,
        "event_loop",
        "Migrating from get_event_loop() and run_until_complete()",
        "``get_event_loop()`` warns (3.12) or raises (3.14) without a loop",
        ":func:`asyncio.run` or :class:`~recipes.event_loop.LoopRunner`.",
    ),
    (
        12,
        "event_loop",
        "Choosing the loop implementation without policies",
        "``asyncio.run(main(), loop_factory=...)``",
        ":func:`~recipes.event_loop.run_with_loop_factory`.",
    ),
    (
        12,
        "tasks",
        "Starting tasks eagerly",
        ":func:`asyncio.eager_task_factory`",
        "None: tasks start lazily, as they always did.",
    ),
    (
        12,
        "tasks",
        "What eager tasks change",
        "Eager tasks finish before ``create_task()`` returns",
        "None needed: lazy tasks are the default.",
    ),
    (
        12,
        "tasks",
        "recipes.tasks.create_eager_task",
        "One eager task: :func:`~recipes.tasks.create_eager_task`",
        "It starts a lazy task on 3.8–3.11.",
    ),
    (
        13,
        "gathering",
        "Handling results as they finish",
        "``async for`` over :func:`asyncio.as_completed`, giving the original tasks",
        "A plain ``for`` over ``as_completed``.",
    ),
    (
        13,
        "queues",
        "Shutting a queue down",
        ":meth:`asyncio.Queue.shutdown`",
        "One :data:`~recipes.queues.STOP` per consumer, or "
        ":class:`~recipes.queues.ClosableQueue`.",
    ),
    (
        13,
        "testing",
        "Writing tests with unittest",
        "``IsolatedAsyncioTestCase.loop_factory``: a test's own event loop, such as a "
        "virtual clock",
        "Build the loop with ``looptime.new_event_loop()`` and drive it yourself, or "
        "use pytest with ``@pytest.mark.looptime``.",
    ),
    (
        14,
        "debugging",
        "Printing the await chain of a task (3.14+)",
        ":func:`asyncio.capture_call_graph` and :func:`asyncio.print_call_graph`",
        ":func:`~recipes.debugging.dump_tasks` (one stack per task).",
    ),
    (
        14,
        "event_loop",
        "Choosing the loop implementation without policies",
        "Event loop policies deprecated",
        "``loop_factory=`` on 3.12+, a policy before.",
    ),
    (
        14,
        "tasks",
        "Starting tasks eagerly",
        "``create_task(..., eager_start=True)``",
        ":func:`~recipes.tasks.create_eager_task`.",
    ),
    (
        14,
        "tasks",
        "What eager tasks change",
        "``eager_start=True`` per task",
        ":func:`~recipes.tasks.create_eager_task`.",
    ),
    (
        15,
        "context_managers",
        "Decorating a generator, and a context manager that is not async",
        "``@asynccontextmanager`` on an async generator function keeps it open while it iterates",
        "Enter the context manager inside the generator.",
    ),
    (
        15,
        "task_groups",
        "Stopping a group early",
        ":meth:`asyncio.TaskGroup.cancel`",
        ":class:`~recipes.task_groups.StoppableTaskGroup`.",
    ),
]


def _gates_in_code() -> set:
    """(minor, module, section) of every gate in the recipes: sections by title, functions
    as ``recipes.module.name``."""
    flag = re.compile(r"#\s*doctest:.*\+PY3(\d+)")
    script_gate = re.compile(r"^\s*:requires-python:\s*3\.(\d+)")
    underline = re.compile(r"^\s*([-~^])\1{3,}\s*$")
    definition = re.compile(r"^(?:async\s+def|def|class)\s+([A-Za-z_]\w*)")
    gates = set()
    for path in sorted((ROOT / "recipes").glob("[!_]*.py")):
        if path.name == "__init__.py":
            continue
        text = path.read_text(encoding="utf-8")
        module = path.stem
        whole = re.search(r"^__requires_python__\s*=\s*\(\s*3\s*,\s*(\d+)\s*\)", text, re.M)
        if whole:
            gates.add((int(whole.group(1)), module, "the whole chapter"))
        lines = text.splitlines()
        section = "introduction"
        for number, line in enumerate(lines, start=1):
            named = definition.match(line)
            if named:
                section = f"recipes.{module}.{named.group(1)}"
            elif underline.match(line) and number >= 2 and lines[number - 2].strip():
                section = lines[number - 2].strip().replace("``", "")
            match = flag.search(line) if ">>>" in line else script_gate.match(line)
            if match:
                gates.add((int(match.group(1)), module, section))
    return gates


def _version_gates() -> str:
    """The reST table of the version page, checked against the gates in the code."""
    from sphinx.util import logging

    logger = logging.getLogger(__name__)
    listed = {(minor, module, section) for minor, module, section, _, _ in FEATURES}
    in_code = _gates_in_code()
    for minor, module, section in sorted(in_code - listed):
        logger.warning(
            "version page: recipes/%s.py gates %r to Python 3.%d; add it to FEATURES in "
            "docs/conf.py",
            module,
            section,
            minor,
        )
    for minor, module, section in sorted(listed - in_code):
        logger.warning(
            "version page: FEATURES lists %r of recipes/%s.py for 3.%d, which no gate has",
            section,
            module,
            minor,
        )
    out = [
        ".. list-table::",
        "   :class: version-table",
        "   :header-rows: 1",
        "   :widths: 34 10 34 22",
        "",
        "   * - Feature",
        "     - Needs",
        "     - On older Pythons",
        "     - Where",
    ]
    for minor, module, section, feature, fallback in sorted(FEATURES, key=lambda r: r[0]):
        if section.startswith("recipes."):
            where = f":func:`~{section}`"
        else:
            where = f":ref:`{section} <recipes/{module}:{section}>`"
        out += [
            f"   * - {feature}",
            f"     - 3.{minor}+",
            f"     - {fallback}",
            f"     - {where}",
        ]
    return "\n".join(out) + "\n"


def _figure(value: float) -> str:
    """A measurement as people read it: 14,220 and 6.9, never 1.422e+04."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


# What each benchmark shows a reader: a title, the section it measures, one sentence of
# takeaway (filled in with the newest interpreter's ratios) and a label for each ratio.
BENCHMARKS = {
    "bench_http": {
        "title": "Fetching many URLs under a limit",
        "section": ("http_client", "Fetching many URLs under a concurrency limit"),
        "takeaway": "With a limit of 50, ``fetch_all`` fetched 1,000 URLs that each take "
        "20 ms in {limited_over_ideal:.2f}× the ideal time (the sum of the waits divided "
        "by the limit), {sequential_over_limited:.0f}× faster than one at a time.",
        "ratios": {
            "sequential_over_limited": "One at a time ÷ limit 50 (time): the speed-up",
            "limited_over_ideal": "Limit 50 ÷ the ideal 0.4 s (time)",
        },
    },
    "bench_crawler": {
        "title": "Crawling 1,000 pages with a worker pool",
        "section": ("crawler", "Running a fixed pool of workers"),
        "takeaway": "50 workers crawled 1,000 pages in {pool_vs_network_floor:.2f}× the "
        "time the network alone needs ({pool_every_page_parsed_vs_network_floor:.2f}× "
        "when every page is parsed), {speedup_pool_vs_sequential:.0f}× faster than one "
        "page at a time; parsing in a thread per page instead took "
        "{threads_vs_network_floor:.2f}×.",
        "ratios": {
            "pool_vs_network_floor": "Parsing in 1 other process ÷ network floor (time)",
            "pool_every_page_parsed_vs_network_floor": "The same, every page parsed",
            "speedup_pool_vs_sequential": "One page at a time ÷ parsing in 1 other "
            "process (time): the speed-up",
            "in_process_vs_network_floor": "Parsing in a thread, in batches ÷ network "
            "floor (time)",
            "in_process_every_page_parsed_vs_network_floor": "The same, every page parsed",
            "in_process_vs_its_floor": "Parsing in a thread ÷ its own floor (network and "
            "parsing CPU)",
            "speedup_in_process_vs_sequential": "One page at a time ÷ parsing in a thread "
            "(time): the speed-up",
            "sequential_vs_its_floor": "One page at a time ÷ its floor (time)",
            "no_parsing_vs_network_floor": "No parsing (links known) ÷ network floor (time)",
            "threads_vs_network_floor": "A thread per page (the old way) ÷ network floor (time)",
        },
    },
    "bench_concurrency": {
        "title": "Queues, bounded gathering and the memory of a task",
        "section": ("limiting", "Running many coroutines, a few at a time"),
        "takeaway": "``run_pipeline`` kept {pipeline_1_worker_over_bare_queue_throughput:.0%} "
        "of a bare queue's throughput while handling errors and shutdown; ``bounded_gather`` "
        "ran 10,000 trivial coroutines in {bounded_gather_over_gather_time:.2f}× the time "
        "of ``asyncio.gather``; a sleeping thread used {thread_over_task_rss:.0f}× the memory "
        "of a sleeping task.",
        "ratios": {
            "pipeline_1_worker_over_bare_queue_throughput": "run_pipeline, 1 worker ÷ bare "
            "Queue (items/s)",
            "pipeline_4_workers_over_bare_queue_throughput": "run_pipeline, 4 workers ÷ "
            "bare Queue (items/s)",
            "bounded_gather_over_gather_time": "bounded_gather ÷ asyncio.gather (time)",
            "thread_over_task_rss": "Sleeping thread ÷ sleeping task (resident memory)",
        },
    },
    "bench_postgres": {
        "title": "Loading 100,000 rows into PostgreSQL",
        "section": ("postgres", "Loading many rows"),
        "takeaway": "``executemany`` loaded 100,000 rows {executemany_vs_per_row:.0f}× faster "
        "than one ``INSERT`` per row, and ``copy_records_to_table`` {copy_vs_executemany:.1f}× "
        "faster again.",
        "ratios": {
            "executemany_vs_per_row": "Per-row INSERT ÷ executemany (time): the speed-up",
            "copy_vs_executemany": "executemany ÷ copy_records_to_table (time)",
            "copy_vs_per_row": "Per-row INSERT ÷ copy_records_to_table (time)",
        },
    },
    "bench_subprocesses": {
        "title": "Running 200 short commands",
        "section": ("subprocesses", "Running many commands under a limit"),
        "takeaway": "Eight at a time, ``run_many`` ran 200 short Python commands "
        "{sequential_over_limited:.2f}× faster than one at a time, at "
        "{limited_over_ideal:.1f}× the ideal of an eighth of the sequential time: "
        "starting an interpreter is CPU work, and this machine has 2 cores, not 8.",
        "ratios": {
            "sequential_over_limited": "One at a time ÷ limit 8 (time): the speed-up",
            "limited_over_ideal": "Limit 8 ÷ an eighth of one at a time (time)",
        },
    },
    "bench_parallelism": {
        "title": "CPU-bound work: in the loop, in threads, in processes",
        "section": ("parallelism", "Threads, processes, or both"),
        "takeaway": "On 2 cores a pool of 2 processes ran a CPU-bound batch "
        "{processes_speedup_vs_loop:.2f}× faster than the event loop itself, 2 threads "
        "at {threads_speedup_vs_loop:.2f}× its speed (the GIL lets one run at a time), "
        "and with the "
        "work in processes a 10 ms heartbeat was {heartbeat_delay_loop_over_processes:.0f}× "
        "less late than with the work in the loop.",
        "ratios": {
            "processes_speedup_vs_loop": "In the loop ÷ 2 processes (time): the speed-up",
            "threads_speedup_vs_loop": "In the loop ÷ 2 threads (time)",
            "processes_speedup_vs_threads": "2 threads ÷ 2 processes (time)",
            "processes_over_ideal": "2 processes ÷ half the time in the loop",
            "heartbeat_delay_loop_over_processes": "Heartbeat delay: work in the loop ÷ "
            "work in processes",
            "mixed_both_speedup_vs_all_threads": "Mixed batch: all in threads ÷ CPU in "
            "processes and blocking calls in threads (time)",
            "mixed_both_speedup_vs_all_processes": "Mixed batch: all in processes ÷ the "
            "same split (time)",
            "chunked_speedup_vs_one_call_per_item": "20,000 tiny items: one call each ÷ "
            "map_in_chunks (time)",
        },
    },
    "bench_sync_bridge": {
        "title": "Crossing between threads and an event loop",
        "section": ("sync_bridge", "Running an event loop in a background thread"),
        "takeaway": "Starting ``asyncio.run()`` for each call took "
        "{asyncio_run_per_call_over_portal_call:.2f}× the time of a ``Portal.call()`` "
        "from one thread: handing a call to another thread costs about as much as a "
        "fresh loop, so the portal's gain is the loop and the connections it keeps "
        "between calls; a blocking ``queue.Queue.get`` in an executor took "
        "{executor_get_over_bridge_queue:.1f}× the time of ``BridgeQueue`` per item.",
        "ratios": {
            "asyncio_run_per_call_over_portal_call": "asyncio.run() per call ÷ "
            "Portal.call() (time per call)",
            "portal_call_over_bare_run_coroutine_threadsafe": "Portal.call() ÷ bare "
            "run_coroutine_threadsafe (time per call)",
            "portal_1_thread_over_16_threads": "Portal.call() from 1 thread ÷ from 16 "
            "threads (time per call)",
            "executor_get_over_bridge_queue": "queue.Queue + run_in_executor(get) ÷ "
            "BridgeQueue (time per item)",
            "bridge_queue_over_call_soon_threadsafe": "BridgeQueue ÷ call_soon_threadsafe "
            "into an unbounded asyncio.Queue (time per item)",
        },
    },
    "bench_logging_context": {
        "title": "Logging from 1,000 tasks: on the loop or through a queue",
        "section": ("logging_context", "Logging from many tasks without blocking the loop"),
        "takeaway": "With a handler that sometimes stalls, logging through "
        "``queue_logging`` kept the loop {slow_sink_direct_over_queued_loop_time:.1f}× "
        "faster than logging on the loop; with a plain file the two cost about the same "
        "({file_direct_over_queued_loop_time:.2f}×): a queue removes waiting, not work.",
        "ratios": {
            "slow_sink_direct_over_queued_loop_time": "Slow handler: on the loop ÷ "
            "queue_logging (loop time)",
            "slow_sink_direct_over_queued_longest_call": "Slow handler: on the loop ÷ "
            "queue_logging (longest log call)",
            "file_direct_over_queued_loop_time": "File: on the loop ÷ queue_logging (loop time)",
            "file_direct_over_logging_off_loop_time": "File on the loop ÷ logging switched "
            "off (loop time)",
            "file_queued_over_logging_off_loop_time": "queue_logging ÷ logging switched "
            "off (loop time)",
            "context_filter_cost_file_direct": "With ContextFilter ÷ without (loop time)",
        },
    },
    "bench_resilience": {
        "title": "Breakers, deadlines, hedging and bulkheads: cost and effect",
        "section": ("resilience", "Combining them with retries"),
        "takeaway": "Against a dead dependency the circuit breaker cut the calls "
        "{dead_dependency_calls_without_over_with_breaker:.0f}× and the time "
        "{dead_dependency_time_without_over_with_breaker:.1f}×; hedging cut the 99th "
        "percentile latency {hedging_p99_plain_over_hedged:.1f}× for "
        "{hedging_extra_calls:.2f} calls per request; each guard costs a few "
        "microseconds per call.",
        "ratios": {
            "dead_dependency_calls_without_over_with_breaker": "Dead dependency: calls "
            "without ÷ with the breaker",
            "dead_dependency_time_without_over_with_breaker": "Dead dependency: time "
            "without ÷ with the breaker",
            "hedging_p99_plain_over_hedged": "99th percentile latency: plain ÷ hedged",
            "hedging_extra_calls": "Hedged: calls per request",
            "bulkhead_over_semaphore": "Bulkhead.call ÷ asyncio.Semaphore (time per call)",
            "within_deadline_over_wait_for": "within_deadline ÷ asyncio.wait_for (time per call)",
            "breaker_over_bare_await": "CircuitBreaker.call ÷ a bare await (time per call)",
            "whole_stack_over_bare_await": "The whole stack ÷ a bare await (time per call)",
        },
    },
    "bench_coalescing": {
        "title": "Coalescing 20,000 concurrent calls",
        "section": ("coalescing", "Sharing one call between concurrent callers"),
        "takeaway": "20,000 callers asking for 100 keys made "
        "{naive_calls_over_single_flight_calls:.0f}× fewer backend calls through "
        "``SingleFlight`` and finished {naive_over_single_flight:.0f}× sooner than "
        "calling the backend each; a second wave served from ``TTLCache`` took "
        "{cache_hits_over_single_flight:.2f}× the time of the first.",
        "ratios": {
            "naive_calls_over_single_flight_calls": "Backend calls: each caller ÷ SingleFlight",
            "naive_over_single_flight": "Time: each caller calls ÷ SingleFlight",
            "single_flight_over_ideal": "SingleFlight ÷ the ideal (100 calls, 10 at a time)",
            "single_flight_over_ideal_plus_floor": "SingleFlight ÷ the ideal plus "
            "answering 20,000 callers",
            "cache_hits_over_single_flight": "A wave of cache hits ÷ the SingleFlight wave (time)",
            "single_flight_call_over_task_per_call": "SingleFlight.call with nothing to "
            "share ÷ a task per call",
            "cache_hit_over_direct": "TTLCache hit ÷ a direct await",
            "decorator_hit_over_direct": "@coalesce hit ÷ a direct await",
        },
    },
    "bench_testing": {
        "title": "Test suites: virtual time, loops per test and leak checks",
        "section": ("testing", "Skipping the waiting with virtual time"),
        "takeaway": "100 tests of retries ran {real_over_virtual:.0f}× faster on a virtual "
        "clock than on the real one; a fresh event loop per test cost "
        "{fresh_loop_over_shared:.0f}× a shared one for tiny tests; checking for leaked "
        "tasks cost {task_check_over_bare:.2f}× a bare test, while a garbage collection "
        "per test to find unawaited coroutines is what makes that check expensive "
        "({both_checks_over_bare:.0f}× with it, {both_checks_no_gc_over_bare:.1f}× "
        "with ``collect=False``).",
        "ratios": {
            "real_over_virtual": "Retry tests: real clock ÷ virtual clock (time)",
            "real_over_ideal": "Retry tests, real clock ÷ the sum of their delays",
            "fresh_loop_over_shared": "Tiny tests: a fresh loop each ÷ one shared loop",
            "task_check_over_bare": "With no_leaked_tasks ÷ bare (time)",
            "both_checks_over_bare": "With both leak checks ÷ bare (time)",
            "both_checks_no_gc_over_bare": "Both checks, collect=False ÷ bare (time)",
        },
    },
    "bench_streams": {
        "title": "A line-protocol TCP server against a bare protocol",
        "section": ("streams", "Serving a line protocol"),
        "takeaway": "The recipe's ``LineServer``, with its timeouts, line limit and "
        "backpressure, answered {recipe_over_bare_requests:.2f}× the requests per second "
        "of a bare :class:`asyncio.Protocol` echo server and echoed "
        "{recipe_over_bare_throughput:.2f}× its bytes per second: the price of safety "
        "per line, worth paying for requests, not for bulk data.",
        "ratios": {
            "recipe_over_bare_requests": "LineServer ÷ bare protocol (requests per second)",
            "recipe_over_bare_throughput": "LineServer ÷ bare protocol (bytes echoed per second)",
        },
    },
    "bench_realtime": {
        "title": "Broadcasting to WebSocket clients",
        "section": ("realtime", "Broadcasting to many clients"),
        "takeaway": "With every client keeping up, the ``Broadcaster`` delivered "
        "{recipe_over_naive_100_clients:.2f}× the messages per second of a loop that "
        "awaits each send in turn (100 clients); with one client stalled it went on at "
        "{recipe_100_with_a_stalled_client_over_without:.2f}× its rate and dropped that "
        "client, while the naive loop stopped for good after "
        "{naive_share_delivered_with_a_stalled_client:.0%} of the messages.",
        "ratios": {
            "recipe_over_naive_1_clients": "Broadcaster ÷ naive loop, 1 client "
            "(messages per second)",
            "recipe_over_naive_100_clients": "The same, 100 clients",
            "recipe_over_naive_1000_clients": "The same, 1,000 clients",
            "recipe_100_per_client_over_single_client": "Broadcaster: per-client rate "
            "with 100 clients ÷ with 1",
            "naive_100_per_client_over_single_client": "Naive loop: the same",
            "recipe_1000_per_client_over_single_client": "Broadcaster: per-client rate "
            "with 1,000 clients ÷ with 1",
            "naive_1000_per_client_over_single_client": "Naive loop: the same",
            "recipe_100_with_a_stalled_client_over_without": "Broadcaster: 100 clients "
            "and 1 stalled ÷ 100 clients (messages per second)",
            "naive_share_delivered_with_a_stalled_client": "Naive loop: share of the "
            "messages sent before the stalled client stopped it",
        },
    },
    "bench_api_server": {
        "title": "The JSON API server against a bare handler",
        "section": ("api_server", "Serving users over HTTP"),
        "takeaway": "With 100 concurrent clients the recipe's users API, with its "
        "validation, JSON errors and logging, served {throughput_ours_vs_bare:.2f}× the "
        "requests per second of a bare aiohttp handler, at {server_cpu_ours_vs_bare:.2f}× "
        "its server CPU per request.",
        "ratios": {
            "throughput_ours_vs_bare": "Recipe ÷ bare handler (requests per second)",
            "p50_ours_vs_bare": "Recipe ÷ bare handler (median latency)",
            "p99_ours_vs_bare": "Recipe ÷ bare handler (99th-percentile latency)",
            "server_cpu_ours_vs_bare": "Recipe ÷ bare handler (server CPU per request)",
        },
    },
    # Against the libraries a reader would pick instead of copying a recipe.
    "bench_rate_limiting": {
        "title": "RateLimiter against aiolimiter",
        "section": ("limiting", "Limiting the rate of requests"),
        "takeaway": "Under bursts both kept the promise of at most burst + rate × t starts "
        "in any window of t seconds (the fullest 1 s window held "
        "{recipe_max_window_over_promise:.3f} and {aiolimiter_max_window_over_promise:.3f} "
        "of it).  When a token is free, ``RateLimiter`` costs "
        "{recipe_over_aiolimiter_overhead:.2f}× what aiolimiter costs per acquire; with "
        "200 waiters it uses {recipe_over_aiolimiter_contended_cpu:.2f}× the CPU per "
        "admission.  Under steady overload {aiolimiter_out_of_order_fraction:.1%} of "
        "aiolimiter's admissions came out of arrival order, "
        "{recipe_out_of_order_fraction:.1%} of the recipe's.",
        "ratios": {
            "recipe_over_aiolimiter_overhead": "RateLimiter ÷ aiolimiter (CPU per "
            "uncontended acquire)",
            "recipe_over_semaphore_overhead": "RateLimiter ÷ asyncio.Semaphore (CPU per "
            "uncontended acquire)",
            "recipe_over_aiolimiter_contended_cpu": "RateLimiter ÷ aiolimiter (CPU per "
            "admission, 200 waiters)",
            "recipe_contended_rate_reached": "RateLimiter: share of 5,000 per second "
            "reached with 200 waiters",
            "aiolimiter_contended_rate_reached": "aiolimiter: the same",
            "recipe_max_window_over_promise": "RateLimiter: fullest 1 s window ÷ promise",
            "aiolimiter_max_window_over_promise": "aiolimiter: the same",
            "recipe_admitted_over_ideal": "RateLimiter: admitted ÷ a perfect bucket's",
            "aiolimiter_admitted_over_ideal": "aiolimiter: the same",
            "recipe_out_of_order_fraction": "RateLimiter: share admitted out of arrival order",
            "aiolimiter_out_of_order_fraction": "aiolimiter: the same",
            "recipe_after_cancel_admitted_over_tokens": "RateLimiter: after 100 waiters "
            "are cancelled, admitted ÷ tokens in the next period",
            "aiolimiter_after_cancel_admitted_over_tokens": "aiolimiter: the same",
        },
    },
    "bench_retry": {
        "title": "retry() against tenacity",
        "section": ("errors", "Retrying with exponential backoff"),
        "takeaway": "On the success path :func:`~recipes.errors.retry` adds "
        "{recipe_over_tenacity_success_overhead:.2f}× the time tenacity's "
        "``AsyncRetrying`` adds to a call, and {recipe_over_tenacity_one_retry_overhead:.2f}× "
        "with one failed attempt; both draw full jitter and stop within a millisecond when "
        "cancelled during the backoff.  When an attempt's cleanup turned the "
        "cancellation into an ordinary error, tenacity made "
        "{tenacity_attempts_after_cancel_with_failing_cleanup:.0f} more attempt and "
        "returned its value; ``retry`` made "
        "{recipe_attempts_after_cancel_with_failing_cleanup:.0f} and raised the "
        "cancellation (on 3.8–3.10 only with ``timeout=``).",
        "ratios": {
            "recipe_over_tenacity_success_overhead": "retry ÷ tenacity (overhead per "
            "call, no retry)",
            "recipe_decorator_over_tenacity_decorator_success_overhead": "@retrying ÷ "
            "@tenacity.retry (the same)",
            "recipe_over_tenacity_one_retry_overhead": "retry ÷ tenacity (overhead per "
            "call, one failed attempt)",
            "recipe_cancel_latency_ms": "retry: cancelled in the backoff, ms to CancelledError",
            "tenacity_cancel_latency_ms": "tenacity: the same",
            "recipe_attempts_after_cancel_with_failing_cleanup": "retry: attempts after "
            "a cancellation the cleanup turned into an error",
            "with_retries_attempts_after_cancel_with_failing_cleanup": "with_retries: the same",
            "tenacity_attempts_after_cancel_with_failing_cleanup": "tenacity: the same",
            "recipe_jitter_slept_mean_over_nominal": "retry: mean sleep ÷ nominal delay",
            "tenacity_jitter_slept_mean_over_nominal": "tenacity: the same",
            "with_retries_over_tenacity_http_success": "with_retries ÷ tenacity around "
            "one aiohttp request (time)",
        },
    },
    "bench_job_queue": {
        "title": "The job queue against procrastinate and pgqueuer",
        "section": ("job_queue", "Running several jobs at once"),
        "takeaway": "Against the faster of procrastinate and pgqueuer, with fsync off, the "
        "recipe enqueued one job at a time at {recipe_over_faster_peer_enqueue_one_no_sync:.2f}"
        "× its speed and in bulk at {recipe_over_faster_peer_enqueue_bulk_no_sync:.2f}×, and "
        "processed no-op jobs at {recipe_over_faster_peer_process_1_no_sync:.2f}× one at a "
        "time and {recipe_over_faster_peer_process_8_no_sync:.2f}× eight at a time; with "
        "fsync and synchronous_commit on, {recipe_over_faster_peer_enqueue_one_durable:.2f}×, "
        "{recipe_over_faster_peer_enqueue_bulk_durable:.2f}×, "
        "{recipe_over_faster_peer_process_1_durable:.2f}× and "
        "{recipe_over_faster_peer_process_8_durable:.2f}×.  Every job ran exactly once in "
        "every run, and the recipe does more per job (see the last table).  This machine's "
        "disk acknowledges a flush in a fraction of a millisecond: on a slower disk the "
        "commits per job weigh more.",
        "ratios": {
            "recipe_over_faster_peer_enqueue_one_no_sync": "Recipe ÷ faster peer, enqueue one "
            "at a time (fsync off)",
            "recipe_over_faster_peer_enqueue_bulk_no_sync": "Recipe ÷ faster peer, enqueue in "
            "bulk (fsync off)",
            "recipe_over_faster_peer_process_1_no_sync": "Recipe ÷ faster peer, process 1 at "
            "a time (fsync off)",
            "recipe_over_faster_peer_process_8_no_sync": "Recipe ÷ faster peer, process 8 at "
            "a time (fsync off)",
            "recipe_over_faster_peer_enqueue_one_durable": "Recipe ÷ faster peer, enqueue one "
            "at a time (fsync on)",
            "recipe_over_faster_peer_enqueue_bulk_durable": "Recipe ÷ faster peer, enqueue in "
            "bulk (fsync on)",
            "recipe_over_faster_peer_process_1_durable": "Recipe ÷ faster peer, process 1 at "
            "a time (fsync on)",
            "recipe_over_faster_peer_process_8_durable": "Recipe ÷ faster peer, process 8 at "
            "a time (fsync on)",
            "recipe_bulk_over_one_at_a_time_enqueue_no_sync": "Recipe: enqueue_many ÷ enqueue "
            "in a loop (fsync off)",
            "recipe_8_over_1_at_a_time_process_no_sync": "Recipe: concurrency=8 ÷ 1 (fsync off)",
            "recipe_wakeup_p50_over_pgqueuer_no_sync": "Recipe ÷ pgqueuer, median wake-up "
            "(fsync off)",
            "recipe_wakeup_p50_over_procrastinate_no_sync": "Recipe ÷ procrastinate, median "
            "wake-up (fsync off)",
        },
    },
    "bench_bridge_queue": {
        "title": "BridgeQueue against janus",
        "section": ("sync_bridge", "Passing items between threads and coroutines"),
        "takeaway": "With a bound of 100, ``BridgeQueue`` moved "
        "{recipe_over_janus_thread_to_loop_throughput:.2f}× janus's items per second from "
        "a thread to a coroutine and {recipe_over_janus_loop_to_thread_throughput:.2f}× "
        "the other way; unbounded, {recipe_over_janus_thread_to_loop_throughput_unbounded"
        ":.2f}× and {recipe_over_janus_loop_to_thread_throughput_unbounded:.2f}×; a "
        "waiting coroutine woke after {recipe_over_janus_thread_to_loop_latency_p50:.2f}× "
        "janus's median time.  Python 3.8 gets janus 1.0, which hands every wake-up to a "
        "thread pool: there the recipe is several times faster.",
        "ratios": {
            "recipe_over_janus_thread_to_loop_throughput": "BridgeQueue ÷ janus, thread "
            "→ coroutine, bound 100 (items per second)",
            "recipe_over_janus_loop_to_thread_throughput": "BridgeQueue ÷ janus, "
            "coroutine → thread, bound 100",
            "recipe_over_janus_both_ways_throughput": "BridgeQueue ÷ janus, both ways, bound 100",
            "recipe_over_janus_thread_to_loop_throughput_unbounded": "BridgeQueue ÷ "
            "janus, thread → coroutine, unbounded",
            "recipe_over_janus_loop_to_thread_throughput_unbounded": "BridgeQueue ÷ "
            "janus, coroutine → thread, unbounded",
            "recipe_over_janus_thread_to_loop_latency_p50": "BridgeQueue ÷ janus, "
            "median wake-up, thread → coroutine",
            "recipe_over_janus_loop_to_thread_latency_p50": "BridgeQueue ÷ janus, "
            "median wake-up, coroutine → thread",
        },
    },
}


def _python_of(path: Path) -> tuple:
    found = re.search(r"\.py3(\d+)$", path.stem)
    return (3, int(found.group(1))) if found else (0, 0)


def _benchmark_figures() -> str:
    """reST for the results in _static/benchmarks/ (from benchmarks/run_all.py): for each
    benchmark, the oldest and the newest interpreter measured, side by side."""
    import json

    out: list = []
    for name, about in BENCHMARKS.items():
        runs = sorted((DOCS / "_static" / "benchmarks").glob(f"{name}.py3*.json"), key=_python_of)
        if not runs:
            continue
        shown = [runs[0], runs[-1]] if len(runs) > 1 else runs
        data = [json.loads(path.read_text(encoding="utf-8")) for path in shown]
        newest = data[-1]
        module, section = about["section"]
        title = str(about["title"])
        takeaway = str(about["takeaway"]).format(**newest["ratios"])
        out += [title, "-" * len(title), "", takeaway, ""]
        out += [
            f"It measures :ref:`recipes/{module}:{section}`, with "
            f"``benchmarks/{name}.py``."
            + (f"  {newest['description']}" if newest.get("description") else ""),
            "",
        ]
        if newest.get("tables"):
            out += _library_tables(newest)
        pythons = [f"Python {run['python']}" for run in data]
        widths = " ".join(["40"] + [str(40 // len(data))] * len(data))
        out += [
            ".. list-table:: Ratios, each within one run",
            "   :header-rows: 1",
            f"   :widths: {widths}",
            "",
            "   * - Ratio",
        ] + [f"     - {python}" for python in pythons]
        for key, label in about["ratios"].items():
            if not all(key in run["ratios"] for run in data):
                continue
            out.append(f"   * - {label}")
            out += [f"     - **{_figure(run['ratios'][key])}×**" for run in data]
        out.append("")
        rows: dict = {}
        for index, run in enumerate(data):
            for row in run["results"]:
                unit = str(row["unit"])
                rows.setdefault((row["name"], unit), [None] * len(data))[index] = row["value"]
        out += [
            ".. list-table:: Measurements",
            "   :header-rows: 1",
            f"   :widths: {' '.join(['34', '22'] + [str(44 // len(data))] * len(data))}",
            "",
            "   * - Measurement",
            "     - Unit",
        ] + [f"     - {python}" for python in pythons]
        for (measurement, unit), values in rows.items():
            out += [f"   * - {measurement}", f"     - {unit}"]
            out += [f"     - {'—' if v is None else _figure(v)}" for v in values]
        out.append("")
        image = shown[-1].with_suffix(".png")
        if image.exists():
            out += [
                f".. figure:: /_static/benchmarks/{image.name}",
                f"   :alt: {title}, Python {newest['python']}",
                "",
                f"   The measurements on Python {newest['python']}.",
                "",
            ]
    if not out:
        out = ["No benchmark results are stored yet: run ``tox -e bench``.", ""]
    return "\n".join(out) + "\n"


JOB_QUEUE_ROWS = {
    "enqueue_one": "Enqueue one at a time",
    "enqueue_bulk": "Enqueue in bulk",
    "process_1": "Process, 1 at a time",
    "process_8": "Process, 8 at a time",
}
SERVER_SETTINGS = {
    "no_sync": "fsync, synchronous_commit and full_page_writes off",
    "durable": "fsync, synchronous_commit and full_page_writes on",
    "as_configured": "the server's own settings",
}


def _library_tables(run: dict) -> list:
    """A benchmark of libraries side by side: jobs per second, one table per server
    setting, then what each library does per job (bench_job_queue.py)."""
    out: list = []
    for setting, table in run["tables"].items():
        speed = table["jobs_per_second"]
        names = list(speed)
        caption = (
            f"Jobs per second, {SERVER_SETTINGS.get(setting, setting)} "
            f"({table['jobs']:,} jobs, median of {table['rounds']}, Python {run['python']}, "
            f"PostgreSQL {table['settings'].get('server_version', '?')})"
        )
        out += [
            f".. list-table:: {caption}",
            "   :header-rows: 1",
            "",
            "   * - ",
        ] + [f"     - {name} {run['versions'].get(name, '')}".rstrip() for name in names]
        for row, title in JOB_QUEUE_ROWS.items():
            out.append(f"   * - {title}")
            best = max(speed[name][row] for name in names)
            for name in names:
                value = _figure(speed[name][row])
                out.append(
                    f"     - **{value}**" if speed[name][row] == best else f"     - {value}"
                )
        out.append("   * - Wake-up, median (ms)")
        out += [f"     - {_figure(table['wakeup_p50_ms'][name])}" for name in names]
        out.append("")
    how = run.get("how", {})
    out += [
        ".. list-table:: What each library does per job, and the calls measured",
        "   :header-rows: 1",
        "   :widths: 14 56 30",
        "",
        "   * - Library",
        "     - Per job",
        "     - Calls",
    ]
    for name, text in run["per_job"].items():
        calls = "; ".join(
            f"{JOB_QUEUE_ROWS.get(k, k).lower()}: ``{v}``" for k, v in how.get(name, {}).items()
        )
        out += [f"   * - {name}", f"     - {text}", f"     - {calls}"]
    out.append("")
    return out


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
