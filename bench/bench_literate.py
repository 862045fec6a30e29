"""Benchmarks for the literate engine: tangling the whole book, and
rebuilding the rendered book when nothing changed.

Each figure is reported as a median with its spread over repeated runs, next
to a baseline measured in the same run on the same machine:
- tangling is compared with merely reading every chapter from disk, the
  floor any tangler must pay;
- a no-change rebuild is compared with a full build from an empty output
  directory and an empty execution cache.

Run with `make bench`; results go to bench/results/literate.json.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lguest.literate.book import read_book
from lguest.literate.tangle import tangle
from lguest.literate.web import load_web

ROOT = Path(__file__).resolve().parents[1]


def timed(function, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


def summary(times: list[float]) -> dict:
    return {"median": statistics.median(times), "min": min(times), "max": max(times), "runs": len(times)}


def read_everything() -> None:
    book = read_book(ROOT)
    for page in book.pages:
        (ROOT / page.path).read_bytes()


def tangle_everything() -> None:
    tangle(load_web(ROOT))


def sphinx(root: Path) -> None:
    subprocess.run([sys.executable, "-m", "sphinx", "-q", "-W", "-b", "html", "-c", str(root),
                    str(root / "book"), str(root / "_build/html")], check=True, capture_output=True)


def main() -> None:
    rows = []
    baseline = summary(timed(read_everything, 50))
    value = summary(timed(tangle_everything, 50))
    rows.append({"name": "tangle the whole book", "value": value["median"], "baseline": baseline["median"],
                 "ratio": value["median"] / baseline["median"], "spread": [value["min"], value["max"]],
                 "baseline_name": "read every chapter"})
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        for name in ("book", "src"):
            shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        for name in ("chapters.yml", "conf.py"):
            shutil.copy(ROOT / name, root / name)

        def full() -> None:
            shutil.rmtree(root / "_build", ignore_errors=True)
            sphinx(root)

        baseline = summary(timed(full, 3))
        value = summary(timed(lambda: sphinx(root), 5))
    rows.append({"name": "rebuild the book, nothing changed", "value": value["median"],
                 "baseline": baseline["median"], "ratio": value["median"] / baseline["median"],
                 "spread": [value["min"], value["max"]], "baseline_name": "full build, empty cache"})
    print(f"{'benchmark':36} {'median':>10} {'baseline':>10} {'ratio':>7}  baseline is")
    for row in rows:
        print(f"{row['name']:36} {row['value'] * 1000:8.1f}ms {row['baseline'] * 1000:8.1f}ms "
              f"{row['ratio']:7.2f}  {row['baseline_name']}")
    out = ROOT / "bench/results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "literate.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
