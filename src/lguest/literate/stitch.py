# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/literate/stitch.py» book/literate-way-back.md:245 @8c88f64c
"""The way back: from a tangled line to its chapter, and from edits to the book."""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .book import LiterateError, read_book
from .markers import HEADER, Marker, comment_style
from .tangle import refuse_links, tangle, write_package
from .web import Part, Web, fingerprint, load_web, read_chapter

# «Read a tangled file back» book/literate-way-back.md:40 @8a613500
@dataclass
class Occurrence:
    """One part as it appears in a tangled file."""

    marker: Marker
    line: int  # where its begin marker is in the tangled file
    lines: list[str] = field(default_factory=list)


def read_tangled(path: str, text: str) -> tuple[list[Occurrence], dict[int, tuple[str, int, str]]]:
    """The parts in a tangled file, and for each line its (chapter, line, chunk)."""
    style = comment_style(path)
    if style is None:
        raise LiterateError(path, None, "this kind of file is tangled without markers")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    found: list[Occurrence] = []
    origin: dict[int, tuple[str, int, str]] = {}
    stack: list[Occurrence] = []
    closed: Marker | None = None  # the part that the line before closed, if it closed one
    for number, line in enumerate(lines, start=1):
        marker, previous, closed = style.read(line), closed, None
        if marker and not marker.end:
            if stack:
                parent = stack[-1]
                if not marker.indent.startswith(parent.marker.indent):
                    raise LiterateError(path, number, f"marker indented less than its chunk «{parent.marker.name}»")
                if not (previous and previous.name == marker.name and previous.number < marker.number):
                    parent.lines.append(f"{marker.indent[len(parent.marker.indent):]}<<{marker.name}>>")
            stack.append(Occurrence(marker, number))
            found.append(stack[-1])
            origin[number] = (marker.chapter, marker.first, marker.name)
        elif marker:
            if not stack or stack[-1].marker.name != marker.name:
                raise LiterateError(path, number, f"end marker «/{marker.name}» closes nothing that is open")
            done = stack.pop()
            origin[number] = (done.marker.chapter, done.marker.first + len(done.lines), done.marker.name)
            closed = done.marker
        elif not stack:
            if not (number == 1 and line == style.comment(HEADER)):
                raise LiterateError(path, number, "this line is outside every chunk marker")
        else:
            current = stack[-1]
            if not line.strip():
                current.lines.append("")
            elif line.startswith(current.marker.indent):
                current.lines.append(line[len(current.marker.indent):])
            else:
                raise LiterateError(path, number, f"line indented less than its chunk «{current.marker.name}»")
            origin[number] = (current.marker.chapter, current.marker.first + len(current.lines) - 1,
                              current.marker.name)
    if stack:
        raise LiterateError(path, stack[-1].line, f"marker «{stack[-1].marker.name}» is never closed")
    return found, origin
# «/Read a tangled file back»


# «Where a line comes from» book/literate-way-back.md:104 @343b1f08
def where(root: Path, location: str) -> str:
    """``chapter:line: «chunk»`` for ``src/lguest/file.py:line``."""
    path, _, line = location.rpartition(":")
    if not path or not line.isdigit():
        raise LiterateError(location, None, "expected FILE:LINE, like src/lguest/cli.py:12")
    relative = _relative(root, path)
    refuse_links(root)
    try:
        text = (root / relative).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise LiterateError(relative, None, f"cannot read it: {error}") from None
    _, origin = read_tangled(relative, text)
    if int(line) not in origin:
        raise LiterateError(relative, int(line), "no chunk covers this line (it is the header, or past the end)")
    chapter, book_line, name = origin[int(line)]
    titles = {page.path: page.title for page in read_book(root).pages}
    return f"{chapter}:{book_line}: «{name}»" + (f" ({titles[chapter]})" if chapter in titles else "")


def _relative(root: Path, path: str) -> str:
    candidate = Path(path)
    if candidate.is_absolute() or (Path.cwd() / candidate).exists():
        try:
            return (Path.cwd() / candidate).resolve().relative_to(root).as_posix()
        except ValueError:
            pass
    return candidate.as_posix()
# «/Where a line comes from»


# «Stitch edits back into the book» book/literate-way-back.md:158 @59099675
def stitch(root: Path) -> list[str]:
    """Carry edits in src/lguest back into the chapters; return the chapters changed."""
    refuse_links(root)
    web = load_web(root)
    edits: dict[tuple[str, int], tuple[Part, list[str]]] = {}
    for path in web.roots:
        if comment_style(path) is None or not (root / path).is_file():
            continue
        occurrences, _ = read_tangled(path, (root / path).read_text(encoding="utf-8"))
        for occurrence in occurrences:
            _collect(web, path, occurrence, edits)
    if not edits:
        return []
    texts = {}
    for chapter in sorted({part.chapter for part, _ in edits.values()}):
        lines = read_chapter(root, chapter).split("\n")
        for part, new in sorted((edit for edit in edits.values() if edit[0].chapter == chapter),
                                key=lambda edit: edit[0].first, reverse=True):
            pad = " " * part.indent
            separator = [""] if new and not new[0] and part.first > part.line + 1 and not part.separated else []
            lines[part.first - 1:part.first - 1 + len(part.lines)] = separator + [pad + line if line else ""
                                                                                  for line in new]
        texts[chapter] = "\n".join(lines)
    outputs = tangle(load_web(root, texts))  # checks the edited book before writing anything
    _write_chapters(root, texts)
    write_package(root, outputs)
    return sorted(texts)


def _collect(web: Web, path: str, occurrence: Occurrence, edits: dict) -> None:
    marker = occurrence.marker
    chunk = web.chunks.get(marker.name)
    if chunk is None or marker.number > len(chunk.parts):
        raise LiterateError(path, occurrence.line,
                            f"the book has no part {marker.number} of «{marker.name}»; run 'lguest tangle' first")
    if fingerprint(occurrence.lines) == marker.digest:
        return
    part = chunk.parts[marker.number - 1]
    if part.lines == occurrence.lines:
        return
    if part.digest != marker.digest:
        raise LiterateError(path, occurrence.line,
                            f"«{marker.name}» changed both here and in {part.chapter}:{part.line}"
                            " since the last tangle; keep one version and try again")
    key = (marker.name, marker.number)
    if key in edits and edits[key][1] != occurrence.lines:
        raise LiterateError(path, occurrence.line, f"«{marker.name}» was edited differently in two places")
    edits[key] = (part, occurrence.lines)


def _write_chapters(root: Path, texts: dict[str, str]) -> None:
    staged: list[tuple[str, str]] = []
    chapter = ""
    try:
        for chapter, text in texts.items():
            handle, name = tempfile.mkstemp(prefix=".stitch-", dir=(root / chapter).parent)
            staged.append((name, chapter))
            with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as stream:
                stream.write(text)
        for name, chapter in staged:
            os.replace(name, root / chapter)
    except OSError as error:
        raise LiterateError(chapter, None, f"cannot write it: {error.strerror}; the edits are"
                            " still in src/lguest, so run 'lguest stitch' again") from None
    finally:
        for name, _ in staged:  # those already renamed are gone
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)
# «/Stitch edits back into the book»
# «/src/lguest/literate/stitch.py»
