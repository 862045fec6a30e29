"""What every benchmark in bench/ shares: interleaved timing, and the row each figure becomes.

A benchmark module exposes ``rows(repeats: int = 5) -> list[dict]`` (and may accept
``quick=True`` for small sizes). Each row is a dict with the keys of ``row()`` below; the
runner, bench/run.py, decides whether a row meets its target and prints the table.

Figures are taken round by round: in each round every variant (the figure and its
baseline) runs once, so that a noisy neighbour on the machine slows all of them alike.
A row's value and baseline are medians over the rounds; its ratio is the median of the
rounds' own ratios, which cancels drift that hits both sides of a round; its spread is
half the range of the values over their median.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

Sample = Callable[[], float]


def timed(function: Callable[[], object]) -> float:
    """Seconds of wall clock one call of ``function`` takes."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def interleaved(variants: dict[str, Sample], repeats: int) -> dict[str, list[float]]:
    """Run each variant once per round for ``repeats`` rounds; what each returned, by name."""
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, variant in variants.items():
            samples[name].append(variant())
    return samples


def row(name: str, unit: str, values: list[float], baselines: list[float] | None = None, *,
        target: float | None = None, higher_is_better: bool = False,
        ratio: str = "value/baseline", note: str = "") -> dict:
    """One figure: the median of ``values`` against the median of ``baselines``.

    ``ratio`` is "value/baseline" for costs (lower is better) or "baseline/value" when
    the figure is a speed relative to its baseline (higher is better). A value of None is
    a reading too fast for the clock that took it (a guest timing itself on the Host's
    clock, which had not moved): it is left out, with its round's baseline, and a figure
    with no reading left has no value, no ratio and no verdict, rather than a division
    by zero.
    """
    if baselines:
        kept = [(value, baseline) for value, baseline in zip(values, baselines) if value is not None]
        values, baselines = [value for value, _ in kept], [baseline for _, baseline in kept]
    else:
        values = [value for value in values if value is not None]
    if not values:
        return {"name": name, "unit": unit, "value": None, "baseline": None, "ratio": None,
                "spread": None, "target": target, "higher_is_better": higher_is_better,
                "median": None, "min": None, "max": None, "runs": 0,
                "note": "every reading was too fast for its clock"}
    value = statistics.median(values)
    result = {"name": name, "unit": unit, "value": value, "baseline": None, "ratio": None,
              "spread": (max(values) - min(values)) / 2 / value if value else 0.0,
              "target": target, "higher_is_better": higher_is_better,
              "median": value, "min": min(values), "max": max(values), "runs": len(values)}
    if baselines:
        result["baseline"] = statistics.median(baselines)
        pairs = list(zip(values, baselines))
        if ratio == "value/baseline" and all(b for _, b in pairs):
            result["ratio"] = statistics.median(v / b for v, b in pairs)
        elif ratio == "baseline/value" and all(v for v, _ in pairs):
            result["ratio"] = statistics.median(b / v for v, b in pairs)
    if note:
        result["note"] = note
    return result
