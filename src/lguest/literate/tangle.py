# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/literate/tangle.py» book/literate.md:1405 @027f1976
"""Tangling: from the chapters to the files of the package."""

from __future__ import annotations

import ctypes
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Iterator, NoReturn

from .book import LiterateError
from .markers import HEADER, STYLES, CommentStyle, comment_style
from .web import REFERENCE, Chunk, Part, Web, normalize

# «Expand a chunk» book/literate.md:1162 @c6064095
MAX_DEPTH = 100
MAX_LINES = 1_000_000  # in one tangled file


class TooLong(Exception):
    """The file being rendered has grown past MAX_LINES."""


def render(web: Web, root: Chunk, view: dict[str, list[Part]] | None = None) -> str:
    """The text of the file that ``root`` becomes in a snapshot (by default, the last)."""
    style = comment_style(root.file or "")
    out = [style.comment(HEADER)] if style else []
    try:
        _expand(web.snapshot() if view is None else view, root.name, "", style, out, 0)
    except TooLong:
        first = root.parts[0]
        raise LiterateError(first.chapter, first.line,
                            f"«{root.name}» expands to more than {MAX_LINES} lines") from None
    return "\n".join(out) + "\n"


def _expand(view: dict[str, list[Part]], name: str, indent: str, style: CommentStyle | None,
            out: list[str], depth: int) -> None:
    if depth > MAX_DEPTH:
        first = view[name][0]
        raise LiterateError(first.chapter, first.line, f"chunks nest more than {MAX_DEPTH} deep here")
    if len(out) > MAX_LINES:
        raise TooLong
    for part in view[name]:
        if style:
            out.append(indent + style.begin(part))
        for offset, line in enumerate(part.lines):
            reference = REFERENCE.match(line)
            if reference:
                _expand(view, normalize(reference["name"]), indent + reference["indent"],
                        style, out, depth + 1)
                continue
            if style and "«" in line and style.read(line):
                raise LiterateError(part.chapter, part.first + offset,
                                    "this line of code reads as a chunk marker in the tangled file;"
                                    " reword it, or 'lguest where' and 'lguest stitch' lose their way")
            out.append(indent + line if line else "")
        if style:
            out.append(indent + style.end(part))


def tangle(web: Web, upto: str | None = None) -> dict[str, str]:
    """Every file of the snapshot at the end of chapter ``upto`` (by default, of the whole book),
    by its path in the repository."""
    view = web.check_snapshot(None if upto is None else web.rank(upto))
    return {path: render(web, root, view) for path, root in sorted(web.roots.items()) if root.name in view}


def tangle_every_snapshot(web: Web) -> int:
    """Tangle, in memory, the snapshot of every chapter that has parts; how many there are."""
    ranks = sorted({part.rank for part in web.parts if part.rank} | {web.last})
    for rank in ranks:
        view = web.check_snapshot(rank)
        for root in web.roots.values():
            if root.name in view:
                render(web, root, view)
    return len(ranks)
# «/Expand a chunk»


# «Write the package in one step» book/literate.md:1265 @6dcb1dec
PACKAGE_DIR = "src/lguest"


def refuse_links(root: Path, package: Path | None = None) -> None:
    """Refuse a symbolic link at src, or at or below src/lguest (or ``package``, its staged copy)."""
    package = package or root / PACKAGE_DIR
    if (root / "src").is_symlink():
        _refuse(root / "src", "src")
    for link in links(package):
        _refuse(link, (PurePosixPath(PACKAGE_DIR) / link.relative_to(package).as_posix()).as_posix())


def links(top: Path) -> Iterator[Path]:
    """Every symbolic link at or below ``top``, in order, following none of them."""
    if top.is_symlink():
        yield top
        return
    for folder, folders, files in os.walk(top):
        folders.sort()
        for name in sorted(folders + files):
            if os.path.islink(os.path.join(folder, name)):
                yield Path(folder, name)


def _refuse(link: Path, name: str) -> NoReturn:
    raise LiterateError(name, None, f"a symbolic link (to {os.readlink(link)}); the tangler follows"
                        " none, and writes nothing while one is in src/lguest: remove it")


def changes(root: Path, outputs: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """The outputs that differ from the disk, and the stale files to remove."""
    refuse_links(root)
    changed = {}
    for path, text in outputs.items():
        target = root / path
        if not target.is_file() or target.read_bytes() != text.encode("utf-8"):
            changed[path] = text
    return changed, stale_files(root, outputs)


def stale_files(root: Path, outputs: dict[str, str]) -> list[str]:
    headers = {style.comment(HEADER) for style in STYLES.values()}
    stale = []
    for path in sorted((root / PACKAGE_DIR).rglob("*")):
        relative = path.relative_to(root).as_posix()
        if path.is_file() and "__pycache__" not in path.parts and relative not in outputs:
            with open(path, "rb") as handle:
                first = handle.readline().decode("utf-8", "replace").rstrip("\n")
            if first in headers:
                stale.append(relative)
    return stale


def write_package(root: Path, outputs: dict[str, str]) -> list[str]:
    """Bring src/lguest in line with ``outputs``, all at once; return what changed."""
    changed, stale = changes(root, outputs)
    if not changed and not stale:
        return []
    package = root / PACKAGE_DIR
    try:
        package.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=".tangle-", dir=package.parent))
    except OSError as error:
        raise LiterateError(PACKAGE_DIR, None, f"cannot make room to stage it: {error.strerror}") from None
    try:
        fresh = stage / package.name
        if package.exists():
            shutil.copytree(package, fresh, symlinks=True)
        else:
            fresh.mkdir()
        refuse_links(root, fresh)  # the staged copy is ours alone: what we checked is what we write
        for path in stale:
            (fresh / Path(path).relative_to(PACKAGE_DIR)).unlink()
        for path, text in changed.items():
            _write(fresh / Path(path).relative_to(PACKAGE_DIR), path, text)
        _swap(fresh, package, stage / "previous")
    except OSError as error:
        reason = error.strerror or "copying it failed"
        raise LiterateError(PACKAGE_DIR, None, f"cannot stage or swap it: {reason}") from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return sorted([*changed, *stale])


def _write(target: Path, path: str, text: str) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8", newline="\n")
    except OSError as error:
        raise LiterateError(path, None, f"cannot write it: {error.strerror}") from None


def _swap(fresh: Path, package: Path, spare: Path) -> None:
    if not package.exists():
        os.rename(fresh, package)
        return
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    at_fdcwd, rename_exchange = -100, 2
    if renameat2 is not None and renameat2(at_fdcwd, os.fsencode(fresh), at_fdcwd,
                                           os.fsencode(package), rename_exchange) == 0:
        return
    os.rename(package, spare)
    try:
        os.rename(fresh, package)
    except OSError:
        os.rename(spare, package)
        raise
# «/Write the package in one step»


# «Check for drift» book/literate.md:1384 @73a2c821
def drift(root: Path, outputs: dict[str, str]) -> list[str]:
    """One line for each file where the package and the book disagree."""
    changed, stale = changes(root, outputs)
    report = [f"{path}: {'differs from' if (root / path).exists() else 'missing, but defined in'} the book"
              for path in changed]
    return report + [f"{path}: stale: no chunk in the book produces it" for path in stale]


def destination(root: Path, into: Path | None, last: bool) -> Path:
    """The directory whose src/lguest receives a snapshot: the repository's holds the last one only."""
    if into is not None and into.exists() and not into.is_dir():
        raise LiterateError(str(into), None, "not a directory: --into writes DIR/src/lguest")
    if not last and (into is None or into.resolve() == root.resolve()):
        raise LiterateError(PACKAGE_DIR, None, "holds the last chapter's snapshot only;"
                            " write an earlier one elsewhere, with --into DIR")
    return root if into is None else into
# «/Check for drift»
# «/src/lguest/literate/tangle.py»
