# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/mastery/solutions.py» book/mastery.md:506 @f10e8779
"""The quests' reference solutions: edits kept beside the book, applied to it, drawn as diffs."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# «Reading the edits of a solution» book/mastery.md:379 @e70b36dd
SOLUTIONS = Path("tools/quests/solutions")


class StaleSolution(Exception):
    """A solution no longer fits the book: its old text is missing, or not unique."""


@dataclass(frozen=True)
class Edit:
    path: str  # relative to the root, such as book/host.md
    old: str
    new: str
    line: int  # where the edit starts in its .edits file


def solution_file(root: Path, chapter: str) -> Path:
    return root / SOLUTIONS / f"{chapter}.edits"


def read_edits(path: Path) -> list[Edit]:
    """The edits in ``path``, in order."""
    edits, lines = [], path.read_text().split("\n")
    number = 0
    while number < len(lines):
        if not lines[number].startswith("<<<< "):
            number += 1
            continue
        start, target = number + 1, lines[number][5:].strip()
        try:
            middle = lines.index("====", number + 1)
            end = lines.index(">>>>", middle + 1)
        except ValueError:
            raise StaleSolution(f"{path.name}:{start}: an edit without its ==== or >>>> line")
        if not target.startswith("book/") or ".." in Path(target).parts:
            raise StaleSolution(f"{path.name}:{start}: {target!r} is not a chapter of the book")
        edits.append(Edit(target, "\n".join(lines[number + 1:middle]),
                          "\n".join(lines[middle + 1:end]), start))
        number = end + 1
    if not edits:
        raise StaleSolution(f"{path.name} has no edits")
    return edits
# «/Reading the edits of a solution»


# «Applying a solution, and drawing it» book/mastery.md:428 @6622e3ef
def solved_texts(root: Path, chapter: str) -> dict[str, tuple[str, str]]:
    """For every file ``chapter``'s solution edits: (its text now, its text solved)."""
    texts: dict[str, tuple[str, str]] = {}
    path = solution_file(root, chapter)
    for edit in read_edits(path):
        if edit.path not in texts:
            before = (root / edit.path).read_text()
            texts[edit.path] = (before, before)
        before, after = texts[edit.path]
        count = after.count(edit.old)
        if count != 1:
            first = edit.old.strip().splitlines()[0] if edit.old.strip() else "(nothing)"
            raise StaleSolution(f"{path.name}:{edit.line}: the text starting {first.strip()!r} "
                                f"occurs {count} times in {edit.path}, not once")
        texts[edit.path] = (before, after.replace(edit.old, edit.new))
    return texts


def solution_diff(root: Path, chapter: str) -> str:
    """``chapter``'s solution as a unified diff against the book in ``root``."""
    return "".join("".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True),
                                                f"a/{name}", f"b/{name}"))
                   for name, (before, after) in solved_texts(root, chapter).items())


def apply_solution(root: Path, chapter: str) -> None:
    """Write ``chapter``'s solution into the book in ``root`` (a scratch copy, please)."""
    for name, (_, after) in solved_texts(root, chapter).items():
        (root / name).write_text(after)
# «/Applying a solution, and drawing it»


# «The quest-solution directive» book/mastery.md:475 @755bb975
def setup(app: Any) -> dict:
    from docutils import nodes
    from sphinx.util.docutils import SphinxDirective

    class QuestSolution(SphinxDirective):
        required_arguments = 1

        def run(self) -> list:
            root = Path(self.env.srcdir, self.config.lguest_root).resolve()  # as the weaver's
            chapter = self.arguments[0]
            try:
                diff = solution_diff(root, chapter)
            except (StaleSolution, OSError) as error:
                raise self.error(f"the solution of {chapter!r} does not fit the book: {error}")
            self.env.note_dependency(str(solution_file(root, chapter)))
            for edited in {line[6:].strip() for line in diff.splitlines()
                           if line.startswith("+++ b/")}:
                self.env.note_dependency(str(root / edited))
            block = nodes.literal_block(diff, diff, language="diff")
            self.set_source_info(block)
            return [block]

    if "lguest_root" not in app.config:
        app.add_config_value("lguest_root", ".", "env")  # the repository, from the book's folder
    app.add_directive("quest-solution", QuestSolution)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
# «/The quest-solution directive»
# «/src/lguest/mastery/solutions.py»
