# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/literate/web.py» book/literate.md:986 @61e601e3
"""Chunks: finding them in the chapters, and checking that they fit together."""

from __future__ import annotations

import hashlib
import re
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterator

from .book import TOC, Book, LiterateError, read_book

# «Recognise fences» book/literate.md:365 @8a6da4ec
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
DIRECTIVE = re.compile(r"^\{(?P<name>[^{}\s]+)\}(?:\s+(?P<argument>.*))?$")
LITERAL_DIRECTIVES = frozenset({
    "chunk", "code-cell", "raw-cell", "code-block", "code", "sourcecode",
    "literalinclude", "math", "raw", "eval-rst", "csv-table",
})


@dataclass
class Fence:
    line: int  # where it opens, counting from one
    indent: int
    marker: str  # the backticks or tildes
    info: str

    def closes(self, text: str) -> bool:
        stripped = text.rstrip()
        bare = stripped.lstrip(" ")
        return (len(stripped) - len(bare) <= 3 and len(bare) >= len(self.marker)
                and bare == self.marker[0] * len(bare))


def open_fence(text: str, number: int) -> Fence | None:
    match = FENCE.match(text)
    if not match:
        return None
    marker, info = match["fence"], match["info"].strip()
    if marker[0] == "`" and "`" in info:
        return None
    return Fence(number, len(match["indent"]), marker, info)
# «/Recognise fences»


# «Scan a chapter for chunks» book/literate.md:404 @c1c25a6c
def parse_chapter(path: str, text: str) -> list[Part]:
    """Every chunk part in one chapter's text, in order."""
    lines = text.split("\n")
    parts: list[Part] = []
    containers: list[Fence] = []
    number = 0
    while number < len(lines):
        line = lines[number]
        if containers and containers[-1].closes(line):
            containers.pop()
            number += 1
            continue
        fence = open_fence(line, number + 1)
        if fence is None:
            number += 1
            continue
        directive = DIRECTIVE.match(fence.info)
        if directive and directive["name"] not in LITERAL_DIRECTIVES:
            containers.append(fence)
            number += 1
            continue
        end = number + 1
        while end < len(lines) and not fence.closes(lines[end]):
            end += 1
        if end == len(lines):
            raise _unterminated(path, fence)
        if directive and directive["name"] == "chunk":
            body = [_dedent(text, fence.indent) for text in lines[number + 1:end]]
            parts.append(_part(path, fence, directive["argument"] or "", body))
        number = end + 1
    if containers:
        raise _unterminated(path, containers[-1])
    return parts


def _unterminated(path: str, fence: Fence) -> LiterateError:
    return LiterateError(path, fence.line,
                         f"unterminated fence {fence.marker}: nothing closes it before the end of the file")


def _dedent(text: str, indent: int) -> str:
    """Remove up to ``indent`` leading spaces, as CommonMark does inside an indented fence."""
    spaces = len(text) - len(text.lstrip(" "))
    return text[min(spaces, indent):]
# «/Scan a chapter for chunks»


# «Parts of chunks» book/literate.md:465 @1036358b
@dataclass
class Part:
    """One fenced block of a chunk: its definition, or a continuation."""

    name: str
    chapter: str  # the chapter's path, e.g. "book/host.md"
    line: int  # the line of the opening fence
    first: int  # the line of the first line of code
    lines: list[str]
    indent: int = 0  # spaces before the fence, restored when stitching
    separated: bool = False  # a blank line stands between the options and the code
    append: bool = False
    replace: bool = False  # supersedes the parts of earlier chapters
    file: str | None = None
    lang: str | None = None
    number: int = 1  # 1 for the definition, 2, 3... for continuations and replacements
    rank: int = 0  # the snapshot it first belongs to: 0 for every one, n for the n-th chapter's

    @property
    def digest(self) -> str:
        return fingerprint(self.lines)

    def references(self) -> Iterator[tuple[int, str, str]]:
        """(line in the chapter, indentation, chunk name) for each reference."""
        for offset, text in enumerate(self.lines):
            match = REFERENCE.match(text)
            if match:
                yield self.first + offset, match["indent"], normalize(match["name"])


def fingerprint(lines: list[str]) -> str:
    text = f"{len(lines)}\n" + "\n".join(lines)  # the count tells [] from [""]
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def normalize(name: str) -> str:
    """Chunk names compare with runs of white space folded to one space."""
    return " ".join(name.split())
# «/Parts of chunks»


# «Read a chunk's options and code» book/literate.md:533 @027359f8
REFERENCE = re.compile(r"^(?P<indent>[ \t]*)<<(?P<name>\s*[^<>\s][^<>]*)>>\s*$")
OPTION = re.compile(r"^:(?P<key>[\w-]+):(?P<value>(?:\s.*)?)$")
OPTIONS = ("append", "replace", "file", "lang")
PACKAGE = "src/lguest/"


def _part(path: str, fence: Fence, argument: str, body: list[str]) -> Part:
    name = normalize(argument)
    if not name:
        raise LiterateError(path, fence.line, "a chunk needs a name after {chunk}")
    if any(bad in name for bad in ("<<", ">>", "«", "»", "*/")):
        raise LiterateError(path, fence.line, "a chunk name cannot contain <<, >>, «, » or */")
    options: dict[str, tuple[str, int]] = {}
    count = 0
    while count < len(body) and (option := OPTION.match(body[count])):
        key, line = option["key"], fence.line + 1 + count
        if key not in OPTIONS:
            known = ", ".join(f":{known}:" for known in OPTIONS)
            raise LiterateError(path, line, f"unknown chunk option :{key}: (known: {known})")
        if key in options:
            raise LiterateError(path, line, f"option :{key}: given twice")
        options[key] = (option["value"].strip(), line)
        count += 1
    separated = bool(count and count < len(body) and not body[count].strip())
    count += separated
    part = Part(name, path, fence.line, fence.line + 1 + count,
                [_canonical(text) for text in body[count:]], indent=fence.indent, separated=separated)
    for flag in ("append", "replace"):
        if flag in options:
            if options[flag][0]:
                raise LiterateError(path, options[flag][1], f":{flag}: takes no value")
            setattr(part, flag, True)
    if part.append and part.replace:
        raise LiterateError(path, options["replace"][1], "a part either continues a chunk (:append:)"
                            " or replaces it (:replace:), not both")
    if "lang" in options:
        part.lang = options["lang"][0] or None
    if "file" in options:
        value, line = options["file"]
        if part.append:
            raise LiterateError(path, line, "only the first part of a chunk names its :file:")
        part.file = _target(path, line, value)
    return part


def _canonical(text: str) -> str:
    if not text.strip():
        return ""
    match = REFERENCE.match(text)
    return f"{match['indent']}<<{normalize(match['name'])}>>" if match else text


def _target(path: str, line: int, value: str) -> str:
    target = PurePosixPath(value)
    if any(char.isspace() or not char.isprintable() for char in value):
        raise LiterateError(path, line, f":file: {value!r} may not contain white space or control characters")
    if (not value.startswith(PACKAGE) or target.is_absolute() or ".." in target.parts
            or value.endswith("/") or len(target.parts) < 3):
        raise LiterateError(path, line, f":file: {value!r} must name a file inside {PACKAGE}")
    return target.as_posix()
# «/Read a chunk's options and code»


# «The web of chunks» book/literate.md:612 @bfbd3a6e
@dataclass
class Chunk:
    """All the parts that share one name, in reading order."""

    name: str
    parts: list[Part]
    lang: str = "text"
    users: list[Part] = field(default_factory=list)  # parts that reference it

    @property
    def file(self) -> str | None:
        return self.parts[0].file


class Web:
    """Every chunk of the book, checked and cross-referenced."""

    def __init__(self, book: Book | None = None):
        self.book = book
        self.chunks: dict[str, Chunk] = {}
        self.roots: dict[str, Chunk] = {}
        self.folders: dict[str, str] = {}  # every directory a root needs, and that root's file
        self.parts: list[Part] = []  # in snapshot order: every snapshot's pages, then each chapter
        self.ranks: dict[str, int] = {}  # each page of a chapter, and the number of its snapshot
        if book is not None:
            self.ranks = {path: number for number, chapter in enumerate(book.chapters, start=1)
                          for path in chapter.files}

    def add(self, part: Part) -> None:
        part.rank = self._rank(part)
        chunk = self.chunks.get(part.name)
        if part.append or part.replace:
            if chunk is None:
                raise LiterateError(part.chapter, part.line, f"«{part.name}» is"
                                    f" {'continued' if part.append else 'replaced'} here, but no chunk"
                                    f" of that name comes before it{self._everywhere(part)}")
            if part.replace:
                self._check_replacement(chunk, part)
            part.number = len(chunk.parts) + 1
            chunk.parts.append(part)
        elif chunk is not None:
            first = chunk.parts[0]
            raise LiterateError(part.chapter, part.line,
                                f"«{part.name}» is already defined at {first.chapter}:{first.line};"
                                " mark this part :append: to continue it")
        else:
            self.chunks[part.name] = Chunk(part.name, [part])
            if part.file in self.roots:
                other = self.roots[part.file].parts[0]
                raise LiterateError(part.chapter, part.line,
                                    f"two roots for {part.file}: this one and {other.chapter}:{other.line}")
            if part.file:
                self._check_place(part)
                self.roots[part.file] = self.chunks[part.name]
        self.parts.append(part)

    def _check_place(self, part: Part) -> None:
        """A file cannot also be a directory of another root's file."""
        folders = [folder.as_posix() for folder in PurePosixPath(part.file).parents]
        other = self.folders.get(part.file) or next((top for top in folders if top in self.roots), None)
        if other is not None:
            first = self.roots[other].parts[0]
            raise LiterateError(part.chapter, part.line, f"{part.file} and {other}"
                                f" ({first.chapter}:{first.line}) cannot both exist")
        for folder in folders:
            self.folders.setdefault(folder, part.file)

    # «Chapters and their snapshots» book/literate.md:727 @c6605218
    @property
    def last(self) -> int:
        """The rank of the last snapshot, the book as it stands at its end."""
        return max(self.ranks.values(), default=0)

    def rank(self, chapter: str) -> int:
        """The rank of the snapshot at the end of the chapter with this id."""
        for page in self.book.pages if self.book else []:
            if page.id == chapter and page.path in self.ranks:
                return self.ranks[page.path]
        ids = ", ".join(page.id for page in self.book.chapters) if self.book else "none"
        raise LiterateError(TOC, None, f"no chapter '{chapter}'; the chapters are {ids}")

    def _rank(self, part: Part) -> int:
        if self.book is None:  # a web made by hand: each new page is the next chapter
            rank = self.ranks.setdefault(part.chapter, len(self.ranks) + 1)
        else:
            rank = self.ranks.get(part.chapter, 0)
        if self.parts and rank < self.parts[-1].rank:
            raise LiterateError(part.chapter, part.line, "parts come in snapshot order: every"
                                " snapshot's pages first, then each chapter in turn")
        return rank

    def _everywhere(self, part: Part) -> str:
        if self.book is not None and part.rank == 0:
            return " (this page is in every snapshot, so it comes before every chapter)"
        return ""

    def _check_replacement(self, chunk: Chunk, part: Part) -> None:
        same = next((other for other in chunk.parts if other.rank == part.rank), None)
        if same is not None:
            raise LiterateError(part.chapter, part.line, f"«{part.name}» is replaced here, but"
                                f" {same.chapter}:{same.line} is in the same snapshot: :replace:"
                                " supersedes only what an earlier chapter wrote; edit that part instead")
        if part.file is not None and part.file != chunk.file:
            what = f"is tangled to {chunk.file}" if chunk.file else "is not a root"
            raise LiterateError(part.chapter, part.line, f"«{part.name}» {what}: a part that"
                                f" replaces it cannot make it {part.file}")

    def snapshot(self, rank: int | None = None) -> dict[str, list[Part]]:
        """Each chunk's parts as they stand at the end of the rank-th chapter (by default, the last)."""
        rank = self.last if rank is None else rank
        view: dict[str, list[Part]] = {}
        for part in self.parts:
            if part.rank > rank:
                break  # the parts are in snapshot order
            if part.append:
                view[part.name].append(part)
            else:
                view[part.name] = [part]
        return view

    def check_snapshot(self, rank: int | None = None) -> dict[str, list[Part]]:
        """The snapshot, once no part in it uses a chunk it lacks and none contains itself."""
        view = self.snapshot(rank)
        for parts in view.values():
            for part in parts:
                for line, _, name in part.references():
                    if name not in view:
                        if name not in self.chunks:
                            raise LiterateError(part.chapter, line, f"reference to undefined chunk «{name}»")
                        first = self.chunks[name].parts[0]
                        raise LiterateError(part.chapter, line, f"«{part.name}» uses «{name}», which"
                                            f" {first.chapter}:{first.line} defines later")
        self._check_cycles(view)
        return view
    # «/Chapters and their snapshots»

    # «Check the web» book/literate.md:812 @0b1879d7
    def check(self) -> Web:
        for part in self.parts:
            for line, _, name in part.references():
                target = self.chunks.get(name)
                if target is None:
                    raise LiterateError(part.chapter, line, f"reference to undefined chunk «{name}»")
                if not target.users or target.users[-1] is not part:
                    target.users.append(part)
        for chunk in self.chunks.values():
            if chunk.file is None and not chunk.users:
                first = chunk.parts[0]
                raise LiterateError(first.chapter, first.line,
                                    f"chunk «{chunk.name}» is never used: reference it, or give it a :file:")
        self._check_cycles(self.snapshot())
        self._assign_languages()
        return self
    # «/Check the web»
    # «Check the web»[2] book/literate.md:841 @d2f9c2e8
    def _check_cycles(self, view: dict[str, list[Part]]) -> None:
        colour: dict[str, str] = {}
        for start in view:
            if start in colour:
                continue
            colour[start] = "grey"
            path = [start]
            stack = [self._edges(view[start])]
            while stack:
                for part, line, name in stack[-1]:
                    if colour.get(name) == "grey":
                        loop = path[path.index(name):] + [name]
                        raise LiterateError(part.chapter, line, "reference cycle: "
                                            + " → ".join(f"«{step}»" for step in loop))
                    if name not in colour:
                        colour[name] = "grey"
                        path.append(name)
                        stack.append(self._edges(view[name]))
                        break
                else:
                    colour[path.pop()] = "black"
                    stack.pop()

    @staticmethod
    def _edges(parts: list[Part]) -> Iterator[tuple[Part, int, str]]:
        for part in parts:
            for line, _, target in part.references():
                yield part, line, target
    # «/Check the web»
    # «Check the web»[3] book/literate.md:879 @b64e1c51
    def _assign_languages(self) -> None:
        done = {root.name for root in self.roots.values()}
        for root in self.roots.values():
            root.lang = language_of(root.file)
        for root in self.roots.values():
            queue = deque(target for _, _, target in self._edges(root.parts))
            while queue:
                name = queue.popleft()
                if name not in done:
                    done.add(name)
                    self.chunks[name].lang = root.lang
                    queue.extend(target for _, _, target in self._edges(self.chunks[name].parts))
    # «/Check the web»

    # «Questions the web answers» book/literate.md:911 @2823cb85
    def parts_of(self, chapter: str) -> list[Part]:
        return [part for part in self.parts if part.chapter == chapter]

    def shape(self) -> str:
        lines = [f"{part.name}|{part.chapter}|{part.number}|{part.file}|{part.replace}|"
                 + ",".join(name for _, _, name in part.references()) for part in self.parts]
        return fingerprint(lines)
    # «/Questions the web answers»
# «/The web of chunks»


# «Languages by file name» book/literate.md:894 @66629f1e
LANGUAGES = {
    ".py": "python", ".c": "c", ".h": "c", ".S": "gas", ".s": "gas",
    ".ld": "text", ".toml": "toml", ".yml": "yaml", ".yaml": "yaml",
    ".json": "json", ".sh": "bash", ".css": "css",
}


def language_of(path: str) -> str:
    return LANGUAGES.get(PurePosixPath(path).suffix, "text")
# «/Languages by file name»


# «Load the whole book» book/literate.md:951 @81dbc966
WIDE_BOMS = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")  # UTF-16 and UTF-32


def read_chapter(root: Path, path: str) -> str:
    try:
        data = (root / path).read_bytes()
    except OSError as error:
        raise LiterateError(path, None, f"cannot read it: {error.strerror}") from None
    if data.startswith(WIDE_BOMS):
        raise LiterateError(path, 1, "saved as UTF-16 or UTF-32; save it as UTF-8")
    if b"\0" in data:
        line = data[:data.index(b"\0")].count(b"\n") + 1
        raise LiterateError(path, line, "holds a NUL byte; is it UTF-16 without a byte-order mark?")
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise LiterateError(path, line, "not valid UTF-8") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def load_web(root: Path, texts: dict[str, str] | None = None) -> Web:
    """Read, parse and check every page of the book under ``root``."""
    book = read_book(root)
    web = Web(book)
    for page in sorted(book.pages, key=lambda page: page.kind == "chapter"):  # every snapshot's pages first
        text = (texts or {}).get(page.path)
        for part in parse_chapter(page.path, read_chapter(root, page.path) if text is None else text):
            web.add(part)
    return web.check()
# «/Load the whole book»
# «/src/lguest/literate/web.py»
