# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/milestone.py» book/preparation.md:239 @12eca157
"""The milestone of Preparation: no machine yet, but a tangler that tangles itself."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import lguest
from lguest.literate.tangle import tangle, write_package
from lguest.literate.web import load_web


def main() -> int:
    book = Path(sys.argv[1])  # the repository, which lguest milestone passes
    snapshot = Path(lguest.__file__).parents[2]  # the directory above this snapshot's src/
    outputs = tangle(load_web(book), "preparation")
    with tempfile.TemporaryDirectory() as scratch:
        write_package(Path(scratch), outputs)
        differ = [path for path in outputs
                  if (Path(scratch) / path).read_bytes() != (snapshot / path).read_bytes()]
    if differ:
        print(f"Preparation: this snapshot's tangler writes {differ[0]} differently", file=sys.stderr)
        return 1
    lines = sum(text.count("\n") for text in outputs.values())
    print(f"Preparation: the tangler of this snapshot tangled the book up to Preparation,"
          f" {len(outputs)} files and {lines} lines, byte for byte the files it runs from.")
    print("There is no machine yet: the Launcher switches it on.")
    return 0
# «/src/lguest/milestone.py»
