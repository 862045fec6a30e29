# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/literate/jupyterbook.py» book/literate-weaving.md:478 @f4189e83
"""Jupyter Book's two files, _config.yml and book/_toc.yml, written from conf.py and chapters.yml."""

from __future__ import annotations

import os
import runpy
from pathlib import Path

import yaml

from .book import Book, Chapter, LiterateError, read_book

SOURCE = "book"  # the folder that `jupyter-book build` is given
CONFIG = "_config.yml"  # found by Jupyter Book in the folder above the book's
TABLE = "book/_toc.yml"
GENERATED = "# Written by 'lguest book-config' from {0}. Edit {0}, not this file.\n"
# Jupyter Book's own extensions that this book needs: its settings, the reader of _toc.yml,
# and the one for comments, whose setting Jupyter Book always passes (comments stay off).
ENGINE = ("jupyter_book", "sphinx_external_toc", "sphinx_comments")


# «Jupyter Book's table of contents» book/literate-weaving.md:506 @29fea196
def toc_parts(book: Book) -> list[tuple[str, list[Chapter], dict[str, object]]]:
    """The book's tables of contents: (caption, pages, toctree options), in reading order."""
    parts = [("Before you set out", book.front, {"maxdepth": 1}),
             ("The journey", book.chapters, {"numbered": True, "maxdepth": 2}),
             ("Appendix", book.appendix, {"maxdepth": 1})]
    return [part for part in parts if part[1]]


def _docname(page: Chapter) -> str:
    path = Path(page.path)
    if path.parts[0] != SOURCE:
        raise LiterateError("chapters.yml", page.line, f"{page.path} is not in {SOURCE}/")
    return path.relative_to(SOURCE).with_suffix("").as_posix()


def _entry(page: Chapter) -> dict[str, object]:
    """A page of _toc.yml, and the further pages of its chapter as its sections."""
    if not page.more:
        return {"file": _docname(page)}
    return {"file": _docname(page), "sections": [{"file": _docname(more)} for more in page.more]}


def table_of_contents(book: Book) -> str:
    """book/_toc.yml: the pages of chapters.yml, as sphinx-external-toc reads them."""
    parts = [{"caption": caption, **options, "hidden": False, "titlesonly": False,
              "chapters": [_entry(page) for page in pages]}
             for caption, pages, options in toc_parts(book)]
    document = {"format": "jb-book", "root": _docname(book.cover), "parts": parts}
    return GENERATED.format("chapters.yml") + yaml.safe_dump(document, sort_keys=False,
                                                             allow_unicode=True)
# «/Jupyter Book's table of contents»


# «Jupyter Book's configuration» book/literate-weaving.md:539 @b156b28d
def _plain(value: object) -> bool:
    if value is None or isinstance(value, (str, bool, int, float)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and _plain(item) for key, item in value.items())
    return False


def _relative(value: object, root: Path) -> object:
    """Plain data, with each absolute path inside the repository made relative to book/."""
    if isinstance(value, str) and os.path.isabs(value) and Path(value).is_relative_to(root):
        return Path(os.path.relpath(value, root / SOURCE)).as_posix()
    if isinstance(value, (list, tuple)):
        return [_relative(item, root) for item in value]
    if isinstance(value, dict):
        return {key: _relative(item, root) for key, item in value.items()}
    return value


def configuration(root: Path) -> str:
    """_config.yml: every plain setting of conf.py, run as Sphinx would run it."""
    try:
        namespace = runpy.run_path(str(root / "conf.py"), run_name="conf")
    except LiterateError:
        raise
    except Exception as error:  # conf.py is Python: anything it raises is a mistake in it
        raise LiterateError("conf.py", None, f"cannot run it: {type(error).__name__}: {error}") from None
    settings = {name: _relative(value, root) for name, value in namespace.items()
                if not name.startswith("_") and _plain(value)}
    settings["extensions"] = [*ENGINE, *settings.get("extensions", [])]
    document = {"sphinx": {"config": settings}}
    return GENERATED.format("conf.py") + yaml.safe_dump(document, sort_keys=False,
                                                        allow_unicode=True, width=100)


def book_files(root: Path) -> dict[str, str]:
    """Each file Jupyter Book needs, by its path in the repository, as it should read."""
    return {CONFIG: configuration(root), TABLE: table_of_contents(read_book(root))}


def stale_files(root: Path, files: dict[str, str]) -> list[str]:
    """The paths among ``files`` whose text on disk differs, or which are missing."""
    def current(path: str) -> str | None:
        try:
            return (root / path).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
    return [path for path, text in files.items() if current(path) != text]
# «/Jupyter Book's configuration»
# «/src/lguest/literate/jupyterbook.py»
