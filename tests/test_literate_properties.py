"""Property-based tests of the literate tangler (book/literate.md).

Every test builds a small throw-away repository: a ``chapters.yml`` with a
cover and one to three chapters, the ``book/*.md`` pages, and sometimes a
``src/lguest`` tree that was there before. It then drives the public API
(``load_web``, ``tangle``, ``write_package``, ``drift``, ``stitch`` and
``where``) and checks it against a *model* of the book that the test builds
itself and expands with its own few lines of code, without the tangler's help.

The well-formed books come from one Hypothesis strategy, :func:`books`: a
random directed acyclic graph of chunks with one to three roots (``.py`` and
``.c`` files, so both marker styles ``# `` and ``/* */`` are used), chunks
split into ``:append:`` continuations, references indented with spaces and
tabs, names spelt with odd white space, fences of backticks or tildes
indented by up to three spaces, some chunks inside ``{note}`` containers,
Markdown around them that looks like chunks but is not, and LF or CRLF line
endings. Code lines never look like fences, references, options or markers.

The tests at the end pin bugs that writing these properties found, each as
a minimal reproducer: a blank first line lost by stitch, a digest blind to a
deleted blank line, chapter and file names the markers could not carry, two
roots that cannot both exist, and a reference pattern that backtracked
quadratically. Each was fixed in the book, and each test keeps it fixed.
"""

from __future__ import annotations

import copy
import hashlib
import re
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest
from hypothesis import HealthCheck, assume, event, given, note, settings
from hypothesis import strategies as st

from lguest.literate.book import LiterateError
from lguest.literate.markers import HEADER
from lguest.literate.stitch import stitch, where
from lguest.literate.tangle import drift, tangle, write_package
from lguest.literate.web import load_web, parse_chapter

# Reproducible in CI: the same examples every run, no example database, and no
# deadline (the first example pays for imports and a cold disk cache).
BASE = settings(
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


# ---------------------------------------------------------------------------
# The model of a well-formed book
# ---------------------------------------------------------------------------

STYLES = {".py": ("# ", ""), ".c": ("/* ", " */")}
ROOT_FILES = ["src/lguest/alpha.py", "src/lguest/beta.c", "src/lguest/sub/gamma.py",
              "src/lguest/sub/delta.c", "src/lguest/eps.py"]
# Words for chunk names: punctuation that markers and references must survive
# ("[2]" looks like a part number, ":" like a location), and non-ASCII letters.
WORDS = ["alpha", "beta", "Greet", "the", "reader", "λ", "naïve", "x1", "set-up", "a.b",
         "(c)", "it's", "[2]", "a:1", "#", "*"]
# Code never holds < > (references), ` ~ (fences) or « » (markers), and never
# starts with ":" (options); it may be blank, or hold tabs, NBSP and unicode.
CODE_CHARS = "abcxyzABXYZ0129_ ()[]{}=+-*/%,.;:'\"#!?&|^$@\\éλ日ß\u00a0\t"
# Markdown between chunks: prose, literal blocks that contain chunk syntax, a
# fence indented four spaces (code, not a fence), containers without chunks.
DECORATIONS = [
    ["Some prose about <<alpha>> and `code`."],
    ["<<alpha beta>>"],
    [""],
    ["    ```{chunk} indented four spaces: an indented code block, not a fence"],
    ["````markdown", "```{chunk} Fake", ":append:", "<<nothing at all>>", "```", "````"],
    ["```{code-cell} ipython3", "print('<<alpha>>')", "```"],
    ["```{note}", "Just a note, with `code`.", "```"],
    ["~~~python", "a = 1", "~~~~"],
    ["```{math}", "x^2", "```"],
]


@dataclass
class Item:
    """One line of a part: code (``text`` normalised) or a reference."""

    kind: str  # "code" or "ref"
    text: str = ""  # code: what the tangler should keep ("" when blank)
    written: str = ""  # code: as written in the chapter, before the fence indent
    indent: str = ""  # ref: the reference's indentation
    target: str = ""  # ref: the normalised name it refers to
    spelled: str = ""  # ref: the whole line as written, before the fence indent

    @property
    def canonical(self) -> str:
        return self.text if self.kind == "code" else f"{self.indent}<<{self.target}>>"


@dataclass
class MPart:
    """One fenced block of a chunk in the model, with its layout on the page."""

    name: str
    number: int
    items: list[Item]
    options: list[str]
    separator: bool  # a blank line between the options and the code
    spelled: str  # the fence's info string after "{chunk}"
    fence: str
    fence_indent: int
    close: str
    close_indent: int
    in_note: bool
    before: list[str]  # Markdown written before the block
    chapter: str = ""
    fence_line: int = 0
    first: int = 0  # the line of the first line of code

    @property
    def key(self) -> tuple[str, int]:
        return self.name, self.number

    def lines(self) -> list[str]:
        return [item.canonical for item in self.items]

    def digest(self) -> str:
        lines = self.lines()
        return hashlib.sha256((f"{len(lines)}\n" + "\n".join(lines)).encode()).hexdigest()[:8]


@dataclass
class MBook:
    """A whole book: its pages in reading order and its chunks."""

    pages: list[str]
    endings: dict[str, str]
    layout: dict[str, list[MPart]]  # page -> parts in reading order
    chunks: dict[str, list[MPart]]  # name -> parts
    roots: dict[str, str]  # file -> chunk name
    texts: dict[str, list[str]] = field(default_factory=dict)  # page -> lines


@dataclass
class Line:
    """One line of a tangled file, as the model expects it."""

    kind: str  # "begin", "end" or "code"
    text: str
    part: MPart
    index: int = 0  # code: index in part.lines()
    prefix: str = ""  # the indentation the part is expanded under


def render_pages(book: MBook) -> None:
    """Lay the parts out on their pages, recording each part's line numbers."""
    for page in book.pages:
        lines = [f"# Page {page}", ""]
        for part in book.layout[page]:
            lines.extend(part.before)
            pad = " " * part.fence_indent
            if part.in_note:
                lines.extend(["````{note}", "A chunk inside a container:", ""])
            lines.append(f"{pad}{part.fence}{{chunk}} {part.spelled}")
            part.chapter, part.fence_line = page, len(lines)
            lines.extend(pad + option for option in part.options)
            if part.separator:
                lines.append("")
            part.first = len(lines) + 1
            for item in part.items:
                lines.append(pad + (item.written if item.kind == "code" else item.spelled))
            lines.append(" " * part.close_indent + part.close)
            if part.in_note:
                lines.append("````")
            lines.append("")
        lines.append("The end.")
        book.texts[page] = lines


def expand(book: MBook, path: str) -> list[Line]:
    """The model's own expansion of the root for ``path``, markers included."""
    opening, closing = STYLES[Path(path).suffix]
    out: list[Line] = []

    def walk(name: str, indent: str) -> None:
        for part in book.chunks[name]:
            number = f"[{part.number}]" if part.number > 1 else ""
            out.append(Line("begin", f"{indent}{opening}«{part.name}»{number} {part.chapter}:"
                                      f"{part.first} @{part.digest()}{closing}", part, prefix=indent))
            for index, item in enumerate(part.items):
                if item.kind == "ref":
                    walk(item.target, indent + item.indent)
                else:
                    out.append(Line("code", indent + item.text if item.text else "", part, index, indent))
            out.append(Line("end", f"{indent}{opening}«/{part.name}»{closing}", part, prefix=indent))

    walk(book.roots[path], "")
    return out


def expansion_size(book: MBook, name: str) -> int:
    return sum(expansion_size(book, item.target) if item.kind == "ref" else 1
               for part in book.chunks[name] for item in part.items) + 2 * len(book.chunks[name])


@st.composite
def code_items(draw) -> Item:
    indent = draw(st.sampled_from(["", "", "    ", "\t", "  \t", "        "]))
    body = draw(st.text(alphabet=CODE_CHARS, max_size=20))
    written = indent + body
    assume(not written.startswith(":"))
    return Item("code", text=written if written.strip() else "", written=written)


nonblank_code_items = st.builds(
    lambda indent, head, tail: Item("code", text=indent + head + tail, written=indent + head + tail),
    st.sampled_from(["", "    ", "\t"]), st.sampled_from("abcxyzXYZ_(#é"), st.text(alphabet=CODE_CHARS, max_size=16))


@st.composite
def spellings(draw, name: str) -> str:
    """``name`` as a person might type it: any run of white space will do."""
    words = name.split(" ")
    spaced = words[0]
    for word in words[1:]:
        spaced += draw(st.sampled_from([" ", "  ", "\t", " \t "])) + word
    return spaced


@st.composite
def books(draw) -> MBook:
    """A random well-formed book (see the module docstring)."""
    files = draw(st.lists(st.sampled_from(ROOT_FILES), min_size=1, max_size=3, unique=True))
    extra = draw(st.integers(0, 6))
    names = draw(st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=3).map(" ".join),
                          min_size=len(files) + extra, max_size=len(files) + extra, unique=True))
    for index, path in enumerate(files):
        if draw(st.booleans()):
            names[index] = path  # the book's habit: a root is named after its file
    total = len(names)
    items: list[list[Item]] = [draw(st.lists(code_items(), max_size=4)) for _ in range(total)]
    # Chunk j may be used only by chunks listed before it (roots first), so the
    # graph has no cycle; every non-root chunk is used once or twice, so none is
    # dead, and a root now and then. Where the parts land in the book is
    # decided later, independently of this order.
    for target in range(1, total):
        # A root may be used too (then it is also expanded inside another file).
        least = 1 if target >= len(files) else 0
        for user in draw(st.lists(st.integers(0, target - 1), min_size=least, max_size=2 if least else 1)):
            indent = draw(st.text(alphabet=" \t", max_size=6))
            spelled = draw(spellings(names[target]))
            inner = draw(st.sampled_from(["", " "]))
            trailing = draw(st.sampled_from(["", " ", "\t "]))
            items[user].append(Item("ref", indent=indent, target=names[target],
                                    spelled=f"{indent}<<{inner}{spelled}{inner}>>{trailing}"))
    chunks: dict[str, list[MPart]] = {}
    for index, name in enumerate(names):
        order = draw(st.permutations(items[index]))
        count = draw(st.integers(1, 3))
        cuts = sorted(draw(st.lists(st.integers(0, len(order)), min_size=count - 1, max_size=count - 1)))
        pieces = [order[a:b] for a, b in zip([0, *cuts], [*cuts, len(order)])]
        parts = []
        for number, piece in enumerate(pieces, start=1):
            options = []
            if number == 1 and index < len(files):
                options.append(f":file: {files[index]}" + draw(st.sampled_from(["", "  "])))
            if number > 1:
                options.append(":append:")
            if draw(st.sampled_from([True, False, False, False])):
                options.append(":lang: " + draw(st.sampled_from(["python", "c", "text"])))
            options = list(draw(st.permutations(options)))
            separator = bool(options) and draw(st.booleans())
            if options and piece and piece[0].kind == "code" and not piece[0].text:
                separator = True  # otherwise the blank line would be read as the separator
            char = draw(st.sampled_from("`~"))
            length = draw(st.integers(3, 5))
            parts.append(MPart(
                name=name, number=number, items=list(piece), options=options, separator=separator,
                spelled=draw(spellings(name)) + draw(st.sampled_from(["", "  "])),
                fence=char * length, fence_indent=draw(st.integers(0, 3)),
                close=char * (length + draw(st.integers(0, 2))), close_indent=draw(st.integers(0, 3)),
                in_note=draw(st.sampled_from([True, False, False, False])),
                before=[line for block in draw(st.lists(st.sampled_from(DECORATIONS), max_size=2))
                        for line in block]))
        chunks[name] = parts
    book_roots = {path: names[index] for index, path in enumerate(files)}
    # Reading order: a random shuffle of all parts, then each chunk's parts put
    # back in their own order on the places the shuffle gave them, so every
    # continuation comes after its definition.
    every = [part for parts in chunks.values() for part in parts]
    shuffled = list(draw(st.permutations(every)))
    slots: dict[str, list[int]] = {}
    for position, part in enumerate(shuffled):
        slots.setdefault(part.name, []).append(position)
    for name, positions in slots.items():
        for position, part in zip(positions, chunks[name]):
            shuffled[position] = part
    chapters = draw(st.integers(1, 3))
    pages = ["book/index.md"] + [f"book/chapter-{n}.md" for n in range(1, chapters + 1)]
    cuts = sorted(draw(st.lists(st.integers(0, len(shuffled)), min_size=chapters, max_size=chapters)))
    layout = {page: shuffled[a:b] for page, a, b in zip(pages, [0, *cuts], [*cuts, len(shuffled)])}
    endings = {page: draw(st.sampled_from(["\n", "\n", "\r\n"])) for page in pages}
    book = MBook(pages, endings, layout, chunks, book_roots)
    assume(sum(expansion_size(book, name) for name in book_roots.values()) <= 400)
    render_pages(book)
    return book


# ---------------------------------------------------------------------------
# Repositories on disk
# ---------------------------------------------------------------------------

def write_toc(root: Path, pages: list[str]) -> None:
    toc = ["cover:", "  id: cover", "  title: Cover", f"  file: {pages[0]}", "chapters:"]
    for number, page in enumerate(pages[1:], start=1):
        toc += [f"  - id: chapter-{number}", f"    title: Chapter {number}", f"    file: {page}"]
    if len(pages) == 1:
        toc[-1] = "chapters: []"
    (root / "chapters.yml").write_text("\n".join(toc) + "\n", encoding="utf-8")


def page_title(book, page: str) -> str:
    """The title write_toc gives a page."""
    number = book.pages.index(page)
    return f"Chapter {number}" if number else "Cover"


def write_book(root: Path, book: MBook) -> None:
    (root / "book").mkdir(parents=True, exist_ok=True)
    write_toc(root, book.pages)
    for page in book.pages:
        write_page(root, book, page)


def write_page(root: Path, book: MBook, page: str) -> None:
    text = book.endings[page].join(book.texts[page]) + book.endings[page]
    (root / page).write_bytes(text.encode("utf-8"))


def chapter_lines(root: Path, page: str) -> list[str]:
    return (root / page).read_bytes().decode("utf-8").replace("\r\n", "\n").split("\n")


def file_lines(root: Path, path: str) -> list[str]:
    text = (root / path).read_bytes().decode("utf-8")
    assert text.endswith("\n")
    return text[:-1].split("\n")


def rewrite(root: Path, path: str, lines: list[str]) -> None:
    """Write a tangled file back, as an editor that keeps LF endings would."""
    (root / path).write_bytes(("\n".join(lines) + "\n").encode("utf-8"))


def snapshot(root: Path, *tops: str) -> dict[str, bytes | None]:
    """Every file and directory under ``tops``: bytes for files, None for directories."""
    found: dict[str, bytes | None] = {}
    for top in tops:
        for path in sorted((root / top).rglob("*")):
            found[path.relative_to(root).as_posix()] = None if path.is_dir() else path.read_bytes()
    return found


@contextmanager
def repository(tmp_path: Path) -> Iterator[Path]:
    """A fresh directory for one Hypothesis example (tmp_path is shared by all)."""
    with tempfile.TemporaryDirectory(dir=tmp_path) as name:
        yield Path(name)


def tangled(root: Path, book: MBook) -> dict[str, str]:
    """Write the book, tangle it, write the package; return the outputs."""
    write_book(root, book)
    outputs = tangle(load_web(root))
    assert sorted(outputs) == sorted(book.roots)
    write_package(root, outputs)
    return outputs


MARKER = re.compile(r"^[ \t]*(# |/\* )«.*»")


def code_of(lines: list[str]) -> list[str]:
    """A tangled file's lines without the header and the marker lines."""
    return [line for line in lines[1:] if not MARKER.match(line)]


def occurrences(book: MBook) -> Counter:
    """How many times each part is expanded, over all tangled files."""
    return Counter(line.part.key for path in book.roots for line in expand(book, path)
                   if line.kind == "begin")


def code_records(book: MBook) -> list[tuple[str, int, Line]]:
    """(file, line number in the tangled file, model line) for every code line."""
    return [(path, number, line) for path in sorted(book.roots)
            for number, line in enumerate(expand(book, path), start=2) if line.kind == "code"]


# ---------------------------------------------------------------------------
# 1. Random well-formed chunk graphs tangle to the model's expansion
# ---------------------------------------------------------------------------

@settings(BASE, max_examples=150)
@given(book=books())
def test_random_webs_tangle_to_their_expansion(tmp_path, book):
    """Tangling a random well-formed web gives exactly the model's expansion.

    With the header and marker lines removed, each tangled file equals the
    model's recursive expansion (indentation of references accumulated, blank
    lines left empty); with them, it equals the model's file including every
    marker's name, part number, chapter, first line and digest. And ``where``
    on each code line names the chapter line it came from, whose text, less
    the fence's indentation and under the reference's indentation, is the
    tangled line; on each marker line it names the part's first line (begin)
    or its closing fence (end).
    """
    with repository(tmp_path) as root:
        outputs = tangled(root, book)
        pages = {page: chapter_lines(root, page) for page in book.pages}
        for path in sorted(book.roots):
            expected = expand(book, path)
            lines = file_lines(root, path)
            assert lines == outputs[path].split("\n")[:-1]
            opening, closing = STYLES[Path(path).suffix]
            assert lines[0] == f"{opening}{HEADER}{closing}"
            assert code_of(lines) == [line.text for line in expected if line.kind == "code"]
            assert lines[1:] == [line.text for line in expected]
            for number, line in enumerate(expected, start=2):
                part = line.part
                answer = where(root, f"{path}:{number}")
                title = f" ({page_title(book, part.chapter)})"  # where names the page, as chapters.yml does
                if line.kind == "begin":
                    assert answer == f"{part.chapter}:{part.first}: «{part.name}»{title}"
                elif line.kind == "end":
                    close = part.first + len(part.items)
                    assert answer == f"{part.chapter}:{close}: «{part.name}»{title}"
                    assert pages[part.chapter][close - 1] == " " * part.close_indent + part.close
                else:
                    source = part.first + line.index
                    assert answer == f"{part.chapter}:{source}: «{part.name}»{title}"
                    text = pages[part.chapter][source - 1]
                    if lines[number - 1]:
                        assert lines[number - 1] == line.prefix + text[part.fence_indent:]
                        assert lines[number - 1].lstrip() == text.lstrip()
                    else:
                        assert not text.strip()
            for outside in (1, len(lines) + 1):  # the header, and past the end
                with pytest.raises(LiterateError, match=rf"^{re.escape(path)}:{outside}: no chunk covers"):
                    where(root, f"{path}:{outside}")


# ---------------------------------------------------------------------------
# 2. Stitching files nobody edited is the identity
# ---------------------------------------------------------------------------

@settings(BASE, max_examples=80)
@given(book=books())
def test_stitch_without_edits_changes_nothing(tmp_path, book):
    """After a tangle, ``stitch`` finds nothing to carry and touches no byte."""
    with repository(tmp_path) as root:
        tangled(root, book)
        before = snapshot(root, "book", "src")
        assert stitch(root) == []
        assert snapshot(root, "book", "src") == before


# ---------------------------------------------------------------------------
# 3. Stitch round trip
# ---------------------------------------------------------------------------

@settings(BASE, max_examples=150)
@given(book=books(), data=st.data())
def test_stitch_carries_edits_back(tmp_path, book, data):
    """Edits to lines of tangled files land in their chapters.

    Each edit (one to three of them, in different parts, maybe in one chapter
    or one file) touches a line of a part that is expanded exactly once in the
    whole package: it replaces the line, deletes it, or inserts a new line
    before it (new text may be blank). After ``stitch``: it returns the
    chapters that hold the edited parts; those parts now have exactly the
    edited lines and every other part is as before; the other chapters are
    byte for byte unchanged; ``drift`` is empty; tangling again writes
    nothing; and every tangled file's code equals the model's expansion with
    the edits applied.

    This includes the two cases behind the bugs pinned below: an edit that
    leaves a blank first line in a part whose options have no blank line
    after them, and one that turns a part of one blank line into an empty
    part or back.
    """
    with repository(tmp_path) as root:
        tangled(root, book)
        once = {key for key, count in occurrences(book).items() if count == 1}
        candidates = [record for record in code_records(book) if record[2].part.key in once]
        assume(candidates)
        chosen = data.draw(st.lists(st.sampled_from(candidates), min_size=1, max_size=3,
                                    unique_by=lambda record: record[2].part.key), label="lines")
        edited = copy.deepcopy(book)
        files = {path: file_lines(root, path) for path in book.roots}
        # Bottom up in each file, so that an edit never moves the next one's line.
        for path, number, line in sorted(chosen, key=lambda record: (record[0], -record[1])):
            operation = data.draw(st.sampled_from(["replace", "delete", "insert"]), label="operation")
            new = data.draw(code_items(), label="new code")
            part = line.part
            target = next(p for p in edited.chunks[part.name] if p.number == part.number)
            lines = files[path]
            new_line = line.prefix + new.written if new.text else new.written
            if operation == "replace":
                assume(new.text != part.items[line.index].text)
                target.items[line.index] = new
                lines[number - 1] = new_line
            elif operation == "delete":
                del target.items[line.index]
                del lines[number - 1]
            else:
                target.items.insert(line.index, new)
                lines.insert(number - 1, new_line)
            note(f"{operation} {path}:{number} -> {new_line!r}")
        for path, lines in files.items():
            rewrite(root, path, lines)
        chapters = {record[2].part.chapter for record in chosen}
        before = snapshot(root, "book")

        assert stitch(root) == sorted(chapters)

        web = load_web(root)
        assert sorted(web.chunks) == sorted(edited.chunks)
        for name, parts in edited.chunks.items():
            assert [p.lines for p in web.chunks[name].parts] == [p.lines() for p in parts]
        after = snapshot(root, "book")
        assert {page for page in before if before[page] != after[page]} == chapters
        outputs = tangle(web)
        assert drift(root, outputs) == []
        assert write_package(root, outputs) == []
        for file in sorted(book.roots):
            expected = [record.text for record in expand(edited, file) if record.kind == "code"]
            assert code_of(file_lines(root, file)) == expected


# ---------------------------------------------------------------------------
# 4. Refused stitches: conflicting or broken edits, and nothing is written
# ---------------------------------------------------------------------------

def begin_of(expanded: list[Line], number: int) -> int:
    """The line number of the begin marker of the part that holds line ``number``."""
    depth = 0
    for index in range(number - 3, -1, -1):  # line 1 is the header, expanded[0] line 2
        kind = expanded[index].kind
        if kind == "end":
            depth += 1
        elif kind == "begin":
            if depth == 0:
                return index + 2
            depth -= 1
    raise AssertionError("no begin marker")


@settings(BASE, max_examples=120)
@given(book=books(), data=st.data())
def test_conflicting_edits_change_nothing(tmp_path, book, data):
    """``stitch`` refuses, and leaves every byte of book/ and src/ as it was.

    Three ways to make it refuse, each with its one-line ``LiterateError``:

    * the same line of a part edited differently in the book and in the file
      ("changed both here and in", at the part's begin marker in the file);
    * a part expanded twice in the package, edited differently in each place
      ("edited differently in two places");
    * an edit that breaks the book: a line of a once-expanded part replaced by
      a reference to a chunk nobody defined (the error names the chapter line
      the edit would have landed on).
    """
    with repository(tmp_path) as root:
        tangled(root, book)
        records = code_records(book)
        counts = occurrences(book)
        mode = data.draw(st.sampled_from(["book and file", "two places", "broken"]), label="mode")
        if mode == "two places":
            twice = [record for record in records if counts[record[2].part.key] >= 2]
            assume(twice)
            first = data.draw(st.sampled_from(twice), label="line")
            same = [record for record in twice if record[2].part is first[2].part
                    and record[2].index == first[2].index and record[:2] != first[:2]]
            assume(same)
            records_chosen = [first, data.draw(st.sampled_from(same), label="other line")]
        else:
            pool = records if mode == "book and file" else [r for r in records if counts[r[2].part.key] == 1]
            assume(pool)
            records_chosen = [data.draw(st.sampled_from(pool), label="line")]
        path, number, line = records_chosen[0]
        part = line.part
        old = part.items[line.index].text
        event(mode)
        one = data.draw(nonblank_code_items.filter(lambda item: item.text != old), label="one")
        two = data.draw(nonblank_code_items.filter(lambda item: item.text not in (old, one.text)), label="two")
        if mode == "book and file":
            page = book.texts[part.chapter][:]
            page[part.first + line.index - 1] = " " * part.fence_indent + one.written
            ending = book.endings[part.chapter]
            (root / part.chapter).write_bytes((ending.join(page) + ending).encode("utf-8"))
            edits = [(path, number, line.prefix + two.written)]
        elif mode == "two places":
            edits = [(records_chosen[0][0], records_chosen[0][1], records_chosen[0][2].prefix + one.written),
                     (records_chosen[1][0], records_chosen[1][1], records_chosen[1][2].prefix + two.written)]
        else:
            edits = [(path, number, line.prefix + "<<No such chunk>>")]
        for edit_path, edit_number, text in edits:
            lines = file_lines(root, edit_path)
            lines[edit_number - 1] = text
            rewrite(root, edit_path, lines)
        before = snapshot(root, "book", "src")

        with pytest.raises(LiterateError) as caught:
            stitch(root)

        message = str(caught.value)
        note(message)
        assert len(message.splitlines()) == 1
        if mode == "book and file":
            marker = begin_of(expand(book, path), number)
            assert message.startswith(f"{path}:{marker}: «{part.name}» changed both here and in "
                                      f"{part.chapter}:{part.fence_line}")
        elif mode == "two places":
            assert re.match(r"src/lguest/\S+:\d+: «" + re.escape(part.name) + "» was edited differently "
                            "in two places$", message)
        else:
            assert message == (f"{part.chapter}:{part.first + line.index}: "
                               "reference to undefined chunk «No such chunk»")
        assert snapshot(root, "book", "src") == before


# ---------------------------------------------------------------------------
# 5. Tangling is deterministic and idempotent
# ---------------------------------------------------------------------------

@settings(BASE, max_examples=60)
@given(book=books())
def test_tangle_is_deterministic_and_idempotent(tmp_path, book):
    """Tangling twice writes nothing the second time.

    Two tangles of one book agree, and agree with the same book saved with LF
    line endings. The first ``write_package`` writes every output and removes
    a stale file that carries the tangler's header, keeping a hand-written
    one; the second writes nothing, changes no byte, and ``drift`` is empty.
    """
    with repository(tmp_path) as root:
        write_book(root, book)
        package = root / "src/lguest"
        package.mkdir(parents=True)
        (package / "kept.py").write_text("# written by hand\n", encoding="utf-8")
        (package / "stale.py").write_text(f"# {HEADER}\nold = 1\n", encoding="utf-8")
        outputs = tangle(load_web(root))
        assert tangle(load_web(root)) == outputs
        assert drift(root, outputs)  # everything missing, one file stale

        assert write_package(root, outputs) == sorted([*outputs, "src/lguest/stale.py"])
        for path, text in outputs.items():
            assert (root / path).read_bytes() == text.encode("utf-8")
        assert not (package / "stale.py").exists()
        assert (package / "kept.py").read_text(encoding="utf-8") == "# written by hand\n"
        before = snapshot(root, "book", "src")
        assert write_package(root, tangle(load_web(root))) == []
        assert drift(root, outputs) == []
        assert snapshot(root, "book", "src") == before
        assert sorted(p.name for p in (root / "src").iterdir()) == ["lguest"]  # no staging left

        unix = copy.copy(book)
        unix.endings = dict.fromkeys(book.pages, "\n")
        for page in book.pages:
            write_page(root, unix, page)
        assert tangle(load_web(root)) == outputs


# ---------------------------------------------------------------------------
# 6. Garbage in: one LiterateError line out, and nothing written
# ---------------------------------------------------------------------------

GARBAGE_NAMES = ["A", "B", "a  b", "A\tB", "src/lguest/a.py", "x<<y", "q»", "c */ d", "λ é", "", " "]
GARBAGE_FILES = ["src/lguest/a.py", "src/lguest/b.c", "src/lguest/n.txt", "src/lguest/sub/old.py",
                 "src/other/x.py", "../x.py", "src/lguest/", "src/lguest/sub/../a.py", "src/lguest",
                 "/src/lguest/a.py", ""]
garbage_name = st.sampled_from(GARBAGE_NAMES)
fence_info = st.one_of(
    st.sampled_from(["", "python", "{chunk}", "{note}", "{admonition} Title", "{code-cell} ipython3",
                     "{chunk}x", "{eval-rst}", "`", "{note} `x`"]),
    garbage_name.map(lambda name: "{chunk} " + name),
    garbage_name.map(lambda name: " {chunk}\t" + name + " "),
    st.text(max_size=12),
)
garbage_fence = st.builds(lambda indent, char, length, info: " " * indent + char * length + info,
                          st.integers(0, 4), st.sampled_from("`~"), st.integers(2, 6), fence_info)
garbage_option = st.one_of(
    st.sampled_from([":append:", ":append: yes", ":lang: c", ":lang:", ":bogus: 1", ":file:", ":apend:"]),
    st.sampled_from(GARBAGE_FILES).map(lambda path: ":file: " + path),
)
garbage_reference = st.builds(lambda indent, name, tail: f"{indent}<<{name}>>{tail}",
                              st.text(alphabet=" \t", max_size=3), garbage_name,
                              st.sampled_from(["", " ", ">", "x"]))
garbage_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)
long_line = st.builds(lambda piece, count: piece * count,
                      st.sampled_from(["a", "<", " ", "`", "é", "x<<", "~", "\t"]), st.integers(200, 3000))
long_reference = st.integers(200, 3000).map(lambda count: "<<" + "a" * count)
garbage_line = st.one_of(garbage_fence, garbage_option, garbage_reference, garbage_text,
                         long_line, long_reference)
# Whole blocks that are well-formed on their own, so that some garbage books
# load and tangle, and the rest of the pipeline is exercised too.
blocks = st.sampled_from([
    ["```{chunk} src/lguest/a.py", ":file: src/lguest/a.py", "", "<<A>>", "```"],
    ["```{chunk} A", "x = 1", "```"],
    ["~~~{chunk} A", ":append:", "\t<<B>>", "~~~"],
    ["```{chunk} B", "y = 2", "```"],
    ["```{chunk} src/lguest/b.c", ":file: src/lguest/b.c", "<<A>>", "```"],
    ["````{note}", "```{chunk} B", ":append:", "z = 3", "```", "````"],
    ["```{chunk} src/lguest/n.txt", ":file: src/lguest/n.txt", ":lang: text", "plain", "```"],
])


@st.composite
def garbage_blocks(draw) -> list[str]:
    """A fenced block, mostly chunk-like, whose body and closing line may be wrong."""
    char, length = draw(st.sampled_from("`~")), draw(st.integers(3, 5))
    indent = " " * draw(st.integers(0, 3))
    info = draw(st.one_of(garbage_name.map(lambda name: "{chunk} " + name), fence_info))
    body = draw(st.lists(st.one_of(garbage_option, garbage_reference, garbage_text, garbage_fence),
                         max_size=5))
    closing = draw(st.one_of(st.just(indent + char * length), st.just(char * (length + 1)),
                             st.just(char * length), garbage_fence))
    return [indent + char * length + info, *body, closing]


atoms = st.one_of(garbage_line.map(lambda line: [line]), garbage_blocks(), blocks, blocks, blocks)


SKELETON = [
    ["```{chunk} src/lguest/a.py", ":file: src/lguest/a.py", "", "def f():", "    <<A>>", "```"],
    ["```{chunk} A", "x = 1", "```"],
    ["```{chunk} src/lguest/b.c", ":file: src/lguest/b.c", "<<B>>", "```"],
    ["~~~{chunk} A", ":append:", "\t<<B>>", "~~~"],
    ["```{chunk} B", "y = 2;", "```"],
]


@st.composite
def garbage_pages(draw, skeleton: bool = False) -> bytes:
    """A page of random atoms, or a well-formed page with random atoms between its chunks."""
    drawn = draw(st.lists(atoms, max_size=12))
    if skeleton:  # the skeleton's blocks keep their order, the atoms fall between them
        slots = [draw(st.integers(0, len(SKELETON))) for _ in drawn]
        drawn = [atom for slot in range(len(SKELETON) + 1)
                 for atom in [a for a, s in zip(drawn, slots) if s == slot]
                 + ([SKELETON[slot]] if slot < len(SKELETON) else [])]
    lines = [line for atom in drawn for line in atom]
    text = ""
    for line in lines:
        text += line + draw(st.sampled_from(["\n", "\n", "\r\n", "\r"]))
    data = text.encode("utf-8")
    if draw(st.integers(0, 29)) == 13:  # now and then, bytes that are not UTF-8
        cut = draw(st.integers(0, len(data)))
        data = data[:cut] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80"])) + data[cut:]
    return data


ERROR = re.compile(r"(book/[^:]+\.md|chapters\.yml)(:\d+)?: .+")


@settings(BASE, max_examples=600)
@given(pages=st.tuples(st.booleans().flatmap(garbage_pages))
       .flatmap(lambda first: st.lists(garbage_pages(), max_size=2).map(lambda rest: [*first, *rest])))
def test_garbage_books_fail_with_one_line_or_tangle(tmp_path, pages):
    """Random chapter texts: fences of every length, options, references,
    CRLF and CR line endings, tabs, unicode, invalid UTF-8, very long lines.

    ``load_web`` and ``tangle`` either succeed or raise ``LiterateError``
    whose message is one line, ``book/PAGE.md:LINE: message`` (or names
    chapters.yml); never another exception. When they raise, nothing was
    written: the ``src/lguest`` that was there before is byte for byte the
    same. When they succeed, ``write_package`` brings the package in line
    (``drift`` is empty) and ``stitch`` finds nothing to carry.
    """
    with repository(tmp_path) as root:
        names = ["book/index.md"] + [f"book/page-{n}.md" for n in range(1, len(pages))]
        (root / "book").mkdir()
        write_toc(root, names)
        for name, data in zip(names, pages):
            (root / name).write_bytes(data)
        package = root / "src/lguest"
        (package / "sub").mkdir(parents=True)
        (package / "__init__.py").write_text("# written by hand\n", encoding="utf-8")
        (package / "sub/old.py").write_text(f"# {HEADER}\nold = 1\n", encoding="utf-8")
        (package / "data.bin").write_bytes(bytes(range(256)))
        before = snapshot(root, "book", "src")
        try:
            outputs = tangle(load_web(root))
        except LiterateError as error:
            message = str(error)
            note(message)
            event("refused: " + re.sub(r"«[^»]*»|'[^']*'|:\S*|[`~]+|\d+", "", error.message)[:40])
            assert len(message.splitlines()) == 1
            assert ERROR.fullmatch(message)
            assert snapshot(root, "book", "src") == before
            return
        event(f"tangled {len(outputs)} file(s)")
        write_package(root, outputs)
        assert drift(root, outputs) == []
        assert stitch(root) == []
        assert (package / "__init__.py").read_text(encoding="utf-8") == "# written by hand\n"


# ---------------------------------------------------------------------------
# Bugs found by the properties above, as minimal reproducers
# ---------------------------------------------------------------------------

def small_repository(root: Path, pages: dict[str, str]) -> None:
    """A repository whose pages are ``pages`` (the first one is the cover)."""
    (root / "book").mkdir(parents=True)
    write_toc(root, list(pages))
    for name, text in pages.items():
        (root / name).write_text(text, encoding="utf-8")


def test_stitch_keeps_a_blank_first_line_after_options(tmp_path):
    """Insert a blank line at the top of a root whose ``:file:`` has no blank line after it."""
    small_repository(tmp_path, {"book/index.md": "# One\n\n```{chunk} src/lguest/x.py\n"
                                                 ":file: src/lguest/x.py\nprint(1)\n```\n"})
    write_package(tmp_path, tangle(load_web(tmp_path)))
    target = tmp_path / "src/lguest/x.py"
    lines = target.read_text(encoding="utf-8").split("\n")
    assert lines[2] == "print(1)"
    lines.insert(2, "")
    target.write_text("\n".join(lines), encoding="utf-8")

    assert stitch(tmp_path) == ["book/index.md"]
    # Expected: the part is now ["", "print(1)"]; actual: ["print(1)"].
    assert load_web(tmp_path).chunks["src/lguest/x.py"].parts[0].lines == ["", "print(1)"]


def test_stitch_sees_a_blank_line_deleted_from_a_part(tmp_path):
    """Chunk «A» is one blank line; the reader deletes that line in the tangled file."""
    small_repository(tmp_path, {"book/index.md": (
        "```{chunk} src/lguest/x.py\n:file: src/lguest/x.py\n\nx = 1\n<<A>>\n```\n\n"
        "```{chunk} A\n\n```\n")})
    write_package(tmp_path, tangle(load_web(tmp_path)))
    target = tmp_path / "src/lguest/x.py"
    lines = target.read_text(encoding="utf-8").split("\n")
    assert lines[3].startswith("# «A»") and lines[4] == "" and lines[5] == "# «/A»"
    del lines[4]
    target.write_text("\n".join(lines), encoding="utf-8")

    # Expected: ["book/index.md"], and «A» becomes empty; actual: [] and «A» keeps its line.
    assert stitch(tmp_path) == ["book/index.md"]
    assert load_web(tmp_path).chunks["A"].parts[0].lines == []


def test_a_chapter_file_name_with_a_space_is_refused(tmp_path):
    """Markers carry the chapter's path as one word, so chapters.yml refuses spaces."""
    small_repository(tmp_path, {
        "book/index.md": "# C\n\n```{chunk} src/lguest/x.py\n:file: src/lguest/x.py\n\n<<A>>\n```\n",
        "book/my chapter.md": "# T\n\n```{chunk} A\nprint(1)\n```\n",
    })
    with pytest.raises(LiterateError, match=r"^chapters\.yml:\d+: 'book/my chapter\.md': page file names"):
        load_web(tmp_path)


def test_a_file_name_with_nul_is_refused_by_the_book(tmp_path):
    small_repository(tmp_path, {"book/index.md": "```{chunk} R\n:file: src/lguest/x\x00.py\nx = 1\n```\n"})
    with pytest.raises(LiterateError, match=r"^book/index\.md:2: "):
        write_package(tmp_path, tangle(load_web(tmp_path)))


def test_roots_that_clash_as_file_and_directory_are_refused_by_the_book(tmp_path):
    small_repository(tmp_path, {"book/index.md": (
        "```{chunk} A\n:file: src/lguest/a.py\nx = 1\n```\n\n"
        "```{chunk} B\n:file: src/lguest/a.py/b.py\ny = 2\n```\n")})
    with pytest.raises(LiterateError, match=r"^book/index\.md:\d+: "):
        write_package(tmp_path, tangle(load_web(tmp_path)))
    assert not (tmp_path / "src/lguest").exists()


def test_a_long_unclosed_reference_line_parses_in_linear_time():
    chapter = "```{chunk} A\n<<" + "a" * 20_000 + "\n```\n"
    start = time.perf_counter()
    parts = parse_chapter("book/index.md", chapter)
    elapsed = time.perf_counter() - start
    assert parts[0].lines == ["<<" + "a" * 20_000]
    assert elapsed < 0.25, f"{elapsed:.2f} s"


# ---------------------------------------------------------------------------
# Snapshots: random chapters that continue and replace chunks
# ---------------------------------------------------------------------------

@st.composite
def histories(draw) -> list[list[tuple[str, str]]]:
    """For each chapter, its parts in order: (chunk, "define" | "append" | "replace")."""
    names = [f"C{index}" for index in range(draw(st.integers(1, 4)))]
    chapters = [[(name, "define") for name in names]]
    for _ in range(draw(st.integers(0, 3))):
        chapters.append(draw(st.lists(st.tuples(st.sampled_from(names), st.sampled_from(["append", "replace"])),
                                      max_size=5)))
    return chapters


@settings(BASE, max_examples=120)
@given(history=histories())
def test_each_snapshot_is_the_latest_version_of_each_chunk(tmp_path, history):
    """Each chapter's snapshot holds, for each chunk, its last replacement up to that chapter (or its
    definition) and the continuations after it; a replacement in the chapter of an earlier part of
    its chunk is refused at its line, and nothing else is."""
    with repository(tmp_path) as root:
        names = [name for name, _ in history[0]]
        texts, model, error, seen = [], [], None, {}
        for number, parts in enumerate(history, start=1):
            lines = [f"# Chapter {number}", ""]
            if number == 1:
                lines += ["```{chunk} src/lguest/r.py", ":file: src/lguest/r.py", *(f"<<{name}>>" for name in names),
                          "```", ""]
            for index, (name, how) in enumerate(parts):
                if how == "replace" and error is None and any(rank == number for rank in seen.get(name, [])):
                    error = f"book/chapter-{number}.md:{len(lines) + 1}: «{name}» is replaced here"
                seen.setdefault(name, []).append(number)
                lines += [f"```{{chunk}} {name}", *([f":{how}:"] if how != "define" else []),
                          f"x = '{name} {number}.{index}'", "```", ""]
            texts.append("\n".join(lines))
            state = dict(model[-1]) if model else {}
            for index, (name, how) in enumerate(parts):
                code = f"x = '{name} {number}.{index}'"
                state[name] = [*state.get(name, []), code] if how == "append" else [code]
            model.append(state)
        pages = ["book/index.md", *(f"book/chapter-{number}.md" for number in range(1, len(history) + 1))]
        (root / "book").mkdir()
        (root / "book/index.md").write_text("# Cover\n")
        for page, text in zip(pages[1:], texts):
            (root / page).write_text(text)
        write_toc(root, pages)
        note("\n---\n".join(texts))
        try:
            web = load_web(root)
        except LiterateError as refused:
            assert error is not None and str(refused).startswith(error), (str(refused), error)
            return
        assert error is None, error
        for number, state in enumerate(model, start=1):
            text = tangle(web, f"chapter-{number}")["src/lguest/r.py"]
            code = [line for line in text.split("\n") if line and not line.startswith("#")]
            assert code == [line for name in names for line in state[name]]
