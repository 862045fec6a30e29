# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/literate/book.py» book/literate.md:321 @ac660e77
"""The book's table of contents, and the error that points into the book."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

# «The error that points at a line» book/literate.md:130 @bc313a8c
class LiterateError(Exception):
    """A mistake in the book, reported as ``path:line: message``."""

    def __init__(self, path: str, line: int | None, message: str):
        where = path if line is None else f"{path}:{line}"
        super().__init__(f"{where}: {message}")
        self.path, self.line, self.message = path, line, message
# «/The error that points at a line»


# «Chapters and the book» book/literate.md:157 @959600e9
@dataclass(frozen=True)
class Chapter:
    """One page of the book, as chapters.yml lists it, and the pages that continue it."""

    id: str
    title: str
    path: str  # relative to the repository, e.g. "book/host.md"
    line: int  # the line of chapters.yml that names it
    kind: str  # "cover", "front", "chapter" or "appendix"
    more: tuple[Chapter, ...] = ()  # the chapter's further pages, in reading order

    @property
    def files(self) -> list[str]:
        """Every page of this chapter, the first one first."""
        return [self.path, *(page.path for page in self.more)]


@dataclass
class Book:
    """The pages of the book, in reading order."""

    root: Path
    cover: Chapter
    chapters: list[Chapter]
    appendix: list[Chapter]
    front: list[Chapter] = field(default_factory=list)

    @property
    def pages(self) -> list[Chapter]:
        heads = [self.cover, *self.front, *self.chapters, *self.appendix]
        return [page for head in heads for page in (head, *head.more)]

    def chapter_of(self, path: str) -> Chapter | None:
        """The chapter (or front or appendix page) that a page's file belongs to."""
        return next((head for head in [self.cover, *self.front, *self.chapters, *self.appendix]
                     if path in head.files), None)
# «/Chapters and the book»


# «Read chapters.yml» book/literate.md:207 @1ef1430d
TOC = "chapters.yml"


def read_book(root: Path) -> Book:
    """Read chapters.yml under ``root``, checking every entry against the disk."""
    try:
        text = (root / TOC).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise LiterateError(TOC, None, f"cannot read it: {error}") from None
    try:
        document = yaml.compose(text)
    except RecursionError:
        raise LiterateError(TOC, None, "nested too deep for PyYAML to read it") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise LiterateError(TOC, mark.line + 1 if mark else 1,
                            f"not valid YAML: {getattr(error, 'problem', error)}") from None
    top = _mapping(document, "the file")
    for key in ("cover", "chapters"):
        if key not in top:
            raise LiterateError(TOC, 1, f"missing the '{key}' section")
    cover = _chapter(root, top["cover"], "cover")
    sections = {}
    for kind, key in (("front", "front"), ("chapter", "chapters"), ("appendix", "appendix")):
        node = top.get(key)
        if node is None:
            sections[kind] = []
            continue
        if not isinstance(node, yaml.SequenceNode):
            raise LiterateError(TOC, _line(node), f"'{key}' should be a list of pages")
        sections[kind] = [_chapter(root, entry, kind) for entry in node.value]
    book = Book(root, cover, sections["chapter"], sections["appendix"], sections["front"])
    _check_pages(book)
    return book
# «/Read chapters.yml»
# «Read chapters.yml»[2] book/literate.md:249 @a47d7ec8

def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _mapping(node: yaml.Node | None, what: str) -> dict[str, yaml.Node]:
    if not isinstance(node, yaml.MappingNode):
        line = _line(node) if node is not None else 1
        raise LiterateError(TOC, line, f"{what} should be a mapping")
    return {key.value: value for key, value in node.value}


def _chapter(root: Path, node: yaml.Node, kind: str) -> Chapter:
    fields = _mapping(node, f"each {kind} entry")
    values = {}
    for key in ("id", "title", "file"):
        value = fields.get(key)
        if not isinstance(value, yaml.ScalarNode) or not str(value.value).strip():
            raise LiterateError(TOC, _line(node), f"this {kind} entry needs a '{key}'")
        values[key] = str(value.value).strip()
    path, line = values["file"], _line(fields["file"])
    if any(char.isspace() for char in path):
        raise LiterateError(TOC, line, f"{path!r}: page file names may not contain white space")
    if not (root / path).is_file():
        raise LiterateError(TOC, line, f"{path} does not exist")
    more = fields.get("pages")
    if more is None:
        return Chapter(values["id"], values["title"], path, line, kind)
    if not isinstance(more, yaml.SequenceNode) or not more.value:
        raise LiterateError(TOC, _line(more), "'pages' should be a list of pages")
    pages = tuple(_chapter(root, entry, kind) for entry in more.value)
    nested = next((page for page in pages if page.more), None)
    if nested is not None:
        raise LiterateError(TOC, nested.line, f"{nested.path}: a page of a chapter cannot have "
                            "pages of its own")
    return Chapter(values["id"], values["title"], path, line, kind, pages)


def _check_pages(book: Book) -> None:
    seen: dict[str, Chapter] = {}
    for page in book.pages:
        for key in (page.id, page.path):
            if key in seen:
                raise LiterateError(TOC, page.line,
                                    f"'{key}' is listed twice (also at line {seen[key].line})")
            seen[key] = page
    for path in sorted((book.root / "book").glob("*.md")):
        relative = path.relative_to(book.root).as_posix()
        if relative not in seen:
            raise LiterateError(relative, 1, f"this page is not listed in {TOC}")
# «/Read chapters.yml»


# «Find the repository» book/literate.md:307 @dcec8525
def find_root(start: Path | None = None) -> Path:
    """The nearest directory at or above ``start`` that holds chapters.yml."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        if (directory / TOC).is_file():
            return directory
    raise LiterateError(TOC, None, f"not found in {here} or any directory above it")
# «/Find the repository»
# «/src/lguest/literate/book.py»
