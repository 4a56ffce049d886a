"""Run every benchmark script, store its figures for the docs, and plot them.

    python benchmarks/run_all.py            # full runs
    python benchmarks/run_all.py --quick    # smaller inputs, for a smoke test
    python benchmarks/run_all.py --python .tox/py38/bin/python   # on another Python

Each ``benchmarks/bench_*.py`` is run in its own process, on this interpreter or the
one ``--python`` names, with ``--json docs/_static/benchmarks/<name>.py3N.json``
(``py38``, ``py315``...); the docs' Performance page reads those files when the
cookbook is built, and shows the oldest and the newest interpreter side by side.
With matplotlib installed, a bar chart of each script's results is saved next to its
JSON file.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "docs" / "_static" / "benchmarks"


def figure(value: float) -> str:
    """A measurement as people read it: 14,220 and 6.9, never 1.422e+04."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def plot(name: str, data: dict) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter
    except ImportError:
        print("matplotlib is not installed: no plot for", name)
        return
    groups: dict = {}
    for row in data["results"]:
        groups.setdefault(row["unit"], []).append(row)
    heights = [0.9 + 0.45 * len(rows) for rows in groups.values()]
    fig, axes = plt.subplots(
        len(groups),
        1,
        figsize=(9, sum(heights) + 0.6),
        squeeze=False,
        gridspec_kw={"height_ratios": heights},
    )
    for ax, (unit, rows) in zip(axes[:, 0], groups.items()):
        labels = [row["name"] for row in rows]
        values = [row["value"] for row in rows]
        bars = ax.barh(labels, values, color="#2b5b84")
        ax.bar_label(bars, labels=[figure(v) for v in values], padding=3, fontsize=8)
        # The same figures as the tables: 0.08 and 1,500, never "80m" or "1.5k".
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: figure(value)))
        ax.xaxis.set_major_locator(plt.MaxNLocator(5))
        ax.set_xlabel(unit)
        ax.invert_yaxis()
        ax.margins(x=0.25)
        ax.tick_params(axis="y", labelsize=8)
    fig.suptitle(f"{data['benchmark']} (Python {data['python']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(OUT / f"{name}.png", dpi=110)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller inputs")
    parser.add_argument(
        "--plot-only", action="store_true", help="redraw the charts from the stored results"
    )
    parser.add_argument(
        "--python", default=sys.executable, help="the interpreter that runs the scripts"
    )
    parser.add_argument("names", nargs="*", help="only these scripts (e.g. bench_concurrency)")
    args = parser.parse_args()
    version = subprocess.run(
        [args.python, "-c", "import sys; print('py%d%d' % sys.version_info[:2])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    OUT.mkdir(parents=True, exist_ok=True)
    scripts = sorted(HERE.glob("bench_*.py"))
    if args.names:
        scripts = [s for s in scripts if s.stem in args.names]
    failed = 0
    for script in scripts:
        target = OUT / f"{script.stem}.{version}.json"
        if args.plot_only:
            if target.exists():
                plot(target.stem, json.loads(target.read_text(encoding="utf-8")))
            continue
        command = [args.python, str(script), "--json", str(target)]
        if args.quick:
            command.append("--quick")
        print(f"== {script.name}", flush=True)
        if subprocess.run(command, check=False).returncode != 0:
            print(f"!! {script.name} failed", flush=True)
            failed += 1
            continue
        plot(target.stem, json.loads(target.read_text(encoding="utf-8")))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
