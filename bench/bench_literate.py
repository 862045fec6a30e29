"""Benchmarks for the literate engine: tangling the whole book, and
rebuilding the rendered book when nothing changed.

Each figure is measured against a baseline in the same rounds:
- tangling is compared with merely reading every chapter from disk, the floor any
  tangler must pay (each round's figure is the best of ten runs, both sides);
- a no-change rebuild is compared with a full build from an empty output directory
  and an empty execution cache, in a scratch copy of the project (at most three
  rounds: a full build executes every cell of the book, this suite's own quick run
  in the Mastery chapter included). Not in quick mode.

Targets: tangling within 25 times the cost of reading (parsing, expanding and
marking every line is allowed to cost that much more than reading it), and a
no-change rebuild in at most half the time of a full one (the execution cache
and Sphinx's own environment, under Jupyter Book, must be doing their jobs).

Run with ``python bench/bench_literate.py`` or through bench/run.py.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved, row  # noqa: E402

from lguest.literate.book import read_book  # noqa: E402
from lguest.literate.tangle import tangle  # noqa: E402
from lguest.literate.web import load_web  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FULL_BUILD_ROUNDS = 3


def best_of(function, runs: int = 10) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def read_everything() -> None:
    book = read_book(ROOT)
    for page in book.pages:
        (ROOT / page.path).read_bytes()


def tangle_everything() -> None:
    tangle(load_web(ROOT))


def build(root: Path) -> float:
    """Seconds for make book's build: jupyter-book build, warnings as errors."""
    start = time.perf_counter()
    result = subprocess.run([str(Path(sys.executable).parent / "jupyter-book"), "build", "-q", "-W",
                             str(root / "book")], capture_output=True, text=True, cwd=root)
    if result.returncode:
        raise RuntimeError(f"the book did not build:\n{result.stderr[-2000:]}")
    return time.perf_counter() - start


def rows(repeats: int = 5, quick: bool = False) -> list[dict]:
    s = interleaved({"read": lambda: best_of(read_everything),
                     "tangle": lambda: best_of(tangle_everything)}, repeats)
    ms = {name: [value * 1e3 for value in values] for name, values in s.items()}
    result = [row("tangle the whole book vs reading every chapter", "ms", ms["tangle"], ms["read"],
                  target=25.0)]
    if quick:
        return result
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        for name in ("book", "src", "bench"):
            shutil.copytree(ROOT / name, root / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "results"))
        for name in ("chapters.yml", "conf.py", "_config.yml"):
            shutil.copy(ROOT / name, root / name)

        def full() -> float:
            shutil.rmtree(root / "_build", ignore_errors=True)
            return build(root)

        builds = interleaved({"full": full, "again": lambda: build(root)},
                             min(repeats, FULL_BUILD_ROUNDS))
    result.append(row("rebuild the book, nothing changed, vs a full build", "s", builds["again"],
                      builds["full"], target=0.5))
    return result


if __name__ == "__main__":
    from run import main
    main(["bench_literate", *sys.argv[1:]])
