"""Run the benchmark suite: one table, one JSON file.

    python bench/run.py [--quick] [--repeats N] [MODULE ...]

MODULE is any of the bench_*.py modules here (default: all of them, in MODULES order).
Each exposes ``rows(repeats: int = 5) -> list[dict]``, optionally with ``quick``; a
module without ``rows`` is skipped with a note. The runner decides ``meets`` for each
row: a row with a target compares its ratio (or its value, if it has no baseline) with
the target, upwards if higher is better, downwards otherwise; a row with no target, or
with no value (every reading too fast for its clock), has ``meets`` null. The table goes to stdout; the rows go to bench/results/latest.json
(bench/results/quick.json with --quick).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import platform
import sys
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
MODULES = ("bench_host", "bench_guest", "bench_drivers", "bench_literate")


def meets(row: dict) -> bool | None:
    if row.get("target") is None:
        return None
    measured = row["ratio"] if row.get("ratio") is not None else row["value"]
    if measured is None:  # nothing could be measured (see common.row)
        return None
    return measured >= row["target"] if row.get("higher_is_better") else measured <= row["target"]


def collect(modules=MODULES, repeats: int = 5, quick: bool = False, say=print) -> list[dict]:
    """Every module's rows, each with ``meets`` and the module it came from."""
    rows = []
    for name in modules:
        module = importlib.import_module(name)
        if not hasattr(module, "rows"):
            say(f"note: {name} has no rows(); skipped")
            continue
        kwargs = {"repeats": repeats}
        if "quick" in inspect.signature(module.rows).parameters:
            kwargs["quick"] = quick
        start = time.perf_counter()
        for row in module.rows(**kwargs):
            rows.append({**row, "meets": meets(row), "module": name})
        say(f"{name}: {time.perf_counter() - start:.1f} s")
    return rows


def number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "s" and value < 1:
        return f"{value * 1e3:.3g} ms"
    return f"{value:.3g}" + (f" {unit}" if unit else "")


def table(rows: list[dict], name_width: int | None = None) -> str:
    """The rows as a plain-text table; names longer than ``name_width`` go on to more lines."""
    header = ("benchmark", "value", "baseline", "ratio", "spread", "target", "meets")
    lines = []
    for row in rows:
        target = "-" if row.get("target") is None else (
            (">= " if row.get("higher_is_better") else "<= ") + f"{row['target']:g}")
        verdict = {True: "yes", False: "NO", None: "-"}[row["meets"]]
        name = textwrap.wrap(row["name"], name_width, break_on_hyphens=False) if name_width else [row["name"]]
        lines.append((name[0], number(row["value"], row.get("unit", "")),
                      number(row.get("baseline"), row.get("unit", "")), number(row.get("ratio")),
                      f"±{row['spread'] * 100:.0f}%" if row.get("spread") is not None else "-",
                      target, verdict))
        lines += [(more, *[""] * 6) for more in name[1:]]
    widths = [max(len(str(line[column])) for line in [header, *lines]) for column in range(7)]
    out = []
    for line in [header, *lines]:
        out.append("  ".join(str(cell).ljust(width) if column == 0 else str(cell).rjust(width)
                             for column, (cell, width) in enumerate(zip(line, widths))).rstrip())
    out.insert(1, "-" * max(map(len, out)))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description="Run the benchmark suite.")
    parser.add_argument("modules", nargs="*", default=list(MODULES), metavar="MODULE")
    parser.add_argument("--quick", action="store_true", help="small sizes, two repeats")
    parser.add_argument("--repeats", type=int, default=None, help="rounds per figure (default 5)")
    args = parser.parse_args(argv)
    unknown = [name for name in args.modules if name not in MODULES]
    if unknown:
        parser.error(f"unknown module {unknown[0]}; choose from {', '.join(MODULES)}")
    repeats = args.repeats or (2 if args.quick else 5)
    if repeats < 1:
        parser.error("--repeats must be at least 1")
    rows = collect(args.modules, repeats, args.quick, say=lambda text: print(text, file=sys.stderr))
    print(table(rows))
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    path = out / ("quick.json" if args.quick else "latest.json")
    path.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"\n{len(rows)} rows, {repeats} rounds each, on {platform.node()} "
          f"({platform.processor() or platform.machine()}); written to {path.relative_to(HERE.parent)}")
    return rows


if __name__ == "__main__":
    main()
