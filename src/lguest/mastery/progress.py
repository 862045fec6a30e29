# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/mastery/progress.py» book/mastery.md:686 @b81b6999
"""The reader's progress: one JSON file in the XDG state directory."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

from ..literate.book import Chapter, LiterateError, find_root, read_book

# «The progress file» book/mastery.md:550 @dbb1edbc
STATE_VARIABLE = "LGUEST_STATE_DIR"
BOOK_BUILD_VARIABLE = "LGUEST_BOOK_BUILD"  # set by the weave extension: a book build records nothing
VERSION = 1


class ProgressError(Exception):
    """The progress file cannot be read or written: one line that says why."""


def state_dir() -> Path:
    """$LGUEST_STATE_DIR, or the XDG state directory's lguest/."""
    override = os.environ.get(STATE_VARIABLE)
    if override:
        return Path(override)
    xdg = os.environ.get("XDG_STATE_HOME", "")
    return (Path(xdg) if os.path.isabs(xdg) else Path.home() / ".local" / "state") / "lguest"


def progress_path() -> Path:
    return state_dir() / "progress.json"


def load_progress() -> dict[str, Any]:
    """The record, or an empty one if there is none yet."""
    path = progress_path()
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"version": VERSION, "chapters": {}}
    except OSError as error:
        raise ProgressError(f"cannot read {path}: {error.strerror}") from None
    except ValueError as error:
        raise ProgressError(f"{path} is not JSON ({error}); move it away to start afresh") from None
    if (not isinstance(state, dict) or state.get("version") != VERSION
            or not isinstance(state.get("chapters"), dict)):
        raise ProgressError(f"{path} is not a progress file of this lguest; move it away to start afresh")
    return state


def save_progress(state: dict[str, Any]) -> Path:
    """Write the record whole, then rename it into place."""
    path = progress_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, scratch = tempfile.mkstemp(dir=path.parent, prefix=".progress-")
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(state, stream, indent=2, sort_keys=True, ensure_ascii=False)
            stream.write("\n")
        os.replace(scratch, path)
    except OSError as error:
        raise ProgressError(f"cannot write {path}: {error.strerror}") from None
    return path


def chapter_digest(root: Path, chapter: Chapter) -> str:
    """A hash of every page of the chapter, in order (of its one file, for most)."""
    digest = hashlib.sha256()
    for path in chapter.files:
        digest.update((root / path).read_bytes())
    return digest.hexdigest()


def record_quest(root: Path, chapter: Chapter, detail: str) -> Path:
    """Note that ``chapter``'s quest passed today, against its source as it is now."""
    state = load_progress()
    entry = state["chapters"].setdefault(chapter.id, {})
    entry["quest"] = {"passed": date.today().isoformat(), "digest": chapter_digest(root, chapter),
                      "detail": detail}
    return save_progress(state)


def record_reading(chapter_id: str) -> Path:
    state = load_progress()
    state["chapters"].setdefault(chapter_id, {})["read"] = date.today().isoformat()
    return save_progress(state)
# «/The progress file»


# «The end of a chapter» book/mastery.md:638 @6356452e
def reached_the_end(chapter_id: str) -> None:
    """The last cell of each chapter: note that the reader got this far."""
    try:
        titles = {chapter.id: chapter.title for chapter in read_book(find_root()).chapters}
    except LiterateError:
        titles = {}
    title = titles.get(chapter_id, chapter_id)
    if os.environ.get(BOOK_BUILD_VARIABLE):
        print(f"The end of {title}.\nThis page was run to build or write the book, so nothing "
              "was recorded;\nrun this cell yourself and lguest progress will show the chapter as read.")
        return
    path = record_reading(chapter_id)
    print(f"The end of {title}: recorded as read in {path}.\n"
          f"Its quest is next: lguest quest check {chapter_id}")
# «/The end of a chapter»


# «The progress table» book/mastery.md:659 @34c64087
def progress_table(root: Path, titles: dict[str, str]) -> str:
    """One row per chapter: read, and the state of its quest."""
    state = load_progress()
    rows = [("Chapter", "Read", "Quest")]
    done = 0
    chapters = read_book(root).chapters
    for chapter in chapters:
        entry = state["chapters"].get(chapter.id, {})
        quest = entry.get("quest")
        if quest is None:
            status = f"to do: {titles.get(chapter.id, '(no quest in this book)')}"
        elif quest.get("digest") != chapter_digest(root, chapter):
            status = (f"passed {quest.get('passed')}, but {chapter.path} has changed since: "
                      f"lguest quest check {chapter.id}")
        else:
            status = f"done {quest.get('passed')}: {quest.get('detail')}"
            done += 1
        rows.append((chapter.title, entry.get("read", "-"), status))
    width = [max(len(row[column]) for row in rows) for column in range(2)]
    lines = [f"{row[0]:{width[0]}}  {row[1]:{width[1]}}  {row[2]}" for row in rows]
    lines.append(f"{done} of {len(chapters)} quests done; the record is {progress_path()}")
    return "\n".join(lines)
# «/The progress table»
# «/src/lguest/mastery/progress.py»
