# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/mastery/voucher.py» book/mastery.md:935 @7f674d9a
"""The Beer: what remains to be done, and the voucher when nothing does."""

from __future__ import annotations

import getpass
import hashlib
import json
import re
import subprocess
from datetime import date
from pathlib import Path
from typing import Any

from ..literate.book import LiterateError, find_root, read_book
from ..literate.tangle import drift, tangle
from ..literate.web import load_web
from .progress import ProgressError, chapter_digest, load_progress, progress_path, save_progress
from .quests import run_check

# «What remains» book/mastery.md:726 @01e161db
class NoProgress(Exception):
    """There is no record at all."""


def what_remains(root: Path) -> list[str]:
    """Everything between the reader and the Beer, one line each; empty when nothing is."""
    state = load_progress()
    if not any(entry.get("quest") or entry.get("read") for entry in state["chapters"].values()):
        raise NoProgress(f"no progress recorded yet in {progress_path()}. The journey starts "
                         "at Preparation: do its quest, then run lguest quest check preparation")
    remaining, current = [], []
    for chapter in read_book(root).chapters:
        quest = state["chapters"].get(chapter.id, {}).get("quest")
        if quest is None:
            remaining.append(f"{chapter.title}: its quest is not done yet "
                             f"(then: lguest quest check {chapter.id})")
        elif quest.get("digest") != chapter_digest(root, chapter):
            remaining.append(f"{chapter.title}: {chapter.path} has changed since its quest passed "
                             f"(lguest quest check {chapter.id} again)")
        else:
            current.append(chapter)
    report = drift(root, tangle(load_web(root)))
    remaining += [f"drift: {line} (lguest tangle)" for line in report]
    if not report:
        for chapter in current:
            result = run_check(root, chapter.id)
            if not result.passed:
                remaining.append(f"{chapter.title}: its check fails now: {result.message}")
    return remaining
# «/What remains»


# «The code on the voucher» book/mastery.md:766 @2b0fa2af
def chapter_digests(root: Path) -> dict[str, str]:
    return {chapter.id: chapter_digest(root, chapter) for chapter in read_book(root).chapters}


def voucher_code(name: str, day: str, digests: dict[str, str], state: dict[str, Any]) -> str:
    """Twenty hex digits that depend on the name, the day, the chapters and the record."""
    chapters = [[chapter, digest, state["chapters"].get(chapter, {}).get("quest")]
                for chapter, digest in digests.items()]
    payload = json.dumps({"name": name, "date": day, "chapters": chapters},
                         sort_keys=True, ensure_ascii=False)
    digest = hashlib.sha256(payload.encode()).hexdigest()[:20].upper()
    return "-".join(digest[start:start + 4] for start in range(0, 20, 4))


def normal_code(code: str) -> str:
    digits = re.sub(r"[^0-9A-F]", "", code.upper())
    return "-".join(digits[start:start + 4] for start in range(0, len(digits), 4))
# «/The code on the voucher»


# «Verify a code» book/mastery.md:804 @4faa6708
def verify(root: Path, code: str) -> tuple[bool, str]:
    """Is ``code`` the code of the voucher issued here, for the book and record as they are?"""
    state = load_progress()
    voucher = state.get("voucher")
    if not isinstance(voucher, dict):
        return False, f"no voucher has been issued from the record in {progress_path()}"
    wanted, issued = normal_code(code), voucher.get("code")
    digests = chapter_digests(root)
    now = voucher_code(str(voucher.get("name")), str(voucher.get("date")), digests, state)
    if wanted != issued and wanted != now:
        return False, f"{code} is not the code of the voucher issued here"
    changed = [chapter.path for chapter in read_book(root).chapters
               if (state["chapters"].get(chapter.id, {}).get("quest") or {}).get("digest")
               != digests[chapter.id]]
    if changed:
        return False, f"{', '.join(changed)} changed since the voucher was issued"
    report = drift(root, tangle(load_web(root)))
    if report:
        return False, f"src/lguest no longer matches the book: {report[0]}"
    if now != issued:
        return False, ("the progress record is not the one the voucher was issued for: it was "
                       "edited, or a quest was checked again since (lguest beer issues a new one)")
    return True, f"valid: a Beer for {voucher['name']}, issued {voucher['date']}"
# «/Verify a code»


# «Draw the voucher» book/mastery.md:833 @d164db75
GLASS = r"""
   .~~~~~~~~~~~~.
  (  .  o   .  o )
  |~~~~~~~~~~~~~~|__
  |  o   .   o   |  \
  |    .    o    |   |
  |  .   o    .  |   |
  |     .   o    |__/
  |  o    .    . |
  `--------------'
""".strip("\n").split("\n")


def draw_voucher(name: str, day: str, code: str) -> str:
    """The voucher: a glass on the left, the words on the right, a border round both."""
    name = name if len(name) <= 34 else name[:33] + "…"
    words = ["THE BEER", "", "This voucher entitles", name, "to one Beer, or equivalent,",
             "for mastering lguest.py.", "", f"{day}  {code}"]
    glass = max(len(line) for line in GLASS)
    rows = [f"{left:{glass}}   {right}" for left, right in zip(GLASS, ["", *words, ""])]
    width = max(len(row) for row in rows)
    border = "+" + "-" * (width + 2) + "+"
    return "\n".join([border, *(f"| {row:{width}} |" for row in rows), border]) + "\n"
# «/Draw the voucher»


# «Pour» book/mastery.md:863 @3199d7f0
def default_name(root: Path) -> str:
    """Your name as git knows it, or your login name."""
    try:
        result = subprocess.run(["git", "config", "user.name"], cwd=root, capture_output=True,
                                text=True, timeout=10)
        if result.returncode == 0 and result.stdout.strip():
            return result.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "Hero"


def pour(root: Path, name: str) -> str:
    """Issue the voucher: keep it in the record, and draw it."""
    state = load_progress()
    day = date.today().isoformat()
    code = voucher_code(name, day, chapter_digests(root), state)
    state["voucher"] = {"name": name, "date": day, "code": code}
    save_progress(state)
    return draw_voucher(name, day, code)
# «/Pour»


# «The voucher for the guest» book/mastery.md:917 @cc4d5fd2
def poured() -> bytes:
    """The voucher issued here, if it still verifies; b"" otherwise."""
    try:
        voucher = load_progress().get("voucher")
        if not isinstance(voucher, dict):
            return b""
        root = find_root()
        ok, _ = verify(root, str(voucher.get("code")))
        if not ok:
            return b""
        return draw_voucher(str(voucher["name"]), str(voucher["date"]), str(voucher["code"])).encode()
    except (LiterateError, ProgressError, OSError, ValueError, KeyError):
        return b""
# «/The voucher for the guest»
# «/src/lguest/mastery/voucher.py»
