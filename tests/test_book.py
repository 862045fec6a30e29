"""The rendered book: built with warnings as errors, chunks drawn and linked,
cells executed and cached, and the cache keyed on the package."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from conftest import build_book
from lguest.literate.web import load_web

pytestmark = pytest.mark.book


class Page(HTMLParser):
    def __init__(self, text: str):
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[tuple[str, str]] = []  # (class, href)
        self.chunks = 0
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "div" and attrs.get("class") == "lguest-chunk":
            self.chunks += 1
        if tag == "a" and attrs.get("href"):
            self.links.append((attrs.get("class") or "", attrs["href"]))


@pytest.fixture(scope="module")
def built(rendered_book):
    return rendered_book


def test_book_builds_and_executes_cells(built):
    root, log = built
    assert "Running Jupyter-Book" in log  # make book's engine
    assert "preparation.md: Executing notebook" in log
    # A clean log: no warning at all, no kernel for a page without cells (which used to be
    # interrupted as it started), and kernels that do not talk in plain text.
    assert "WARNING" not in log and "KeyboardInterrupt" not in log, log[-3000:]
    for quiet in ("index.md", "chunks.md", "bibliography.md"):
        assert f"{quiet}: Executing notebook" not in log
    assert "literate.md: Executing notebook" in log
    page = (root / "_build/html/literate.html").read_text()
    assert "files tangled from" in page and "book/demo.md:6: reference to undefined chunk" in page
    assert not re.search(r"lguest package digest [0-9a-f]{8}", page)  # the cache-key cell is removed
    # The build's kernels knew a build was running (conf.py does not run under Jupyter Book),
    # so the last cell recorded no reading in anyone's progress file.
    page = (root / "_build/html/preparation.html").read_text()
    assert "This page was run to build or write the book, so nothing was recorded" in page


def test_every_chunk_is_drawn_and_every_link_resolves(built):
    root, _ = built
    web = load_web(root)
    html = root / "_build/html"
    pages = {path.relative_to(html).as_posix(): Page(path.read_text())
             for path in html.glob("*.html")}
    drawn = sum(pages[Path(page.path).with_suffix(".html").name].chunks for page in web.book.pages)
    assert drawn == len(web.parts)
    checked = 0
    for name, page in pages.items():
        for css, href in page.links:
            if not (css.startswith("lguest-chunk") or "#chunk-" in href):
                continue
            target = urlsplit(href)
            document = target.path or name
            assert document in pages, f"{name}: {href}"
            assert target.fragment in pages[document].ids, f"{name}: {href}"
            checked += 1
    references = sum(1 for part in web.parts for _ in part.references())
    assert checked >= references + len(web.chunks)


def test_cover_toc_follows_chapters_yml(built):
    root, _ = built
    cover = (root / "_build/html/index.html").read_text()
    web = load_web(root)
    positions = [cover.find(f'href="{Path(page.path).stem}.html"') for page in web.book.chapters]
    assert all(position > 0 for position in positions)
    assert positions == sorted(positions)


def test_chunk_index_lists_every_chunk(built):
    root, _ = built
    index = (root / "_build/html/chunks.html").read_text()
    for name in load_web(root).chunks:
        assert f"«{name}»".replace("'", "&#x27;") in index


def test_rebuild_without_change_executes_nothing_and_a_chunk_change_reruns(built):
    root, _ = built
    log = build_book(root)
    assert "Executing notebook" not in log
    assert re.search(r"0 source files out of date|no targets are out of date", log)
    chapter = root / "book/literate.md"
    chapter.write_text(chapter.read_text().replace('print(f"{len(web.roots)} files tangled from',
                                                   'print(f"{len(web.roots)} files are tangled from'))
    log = build_book(root)
    assert "literate.md: Executing notebook" in log
    assert "files are tangled from" in (root / "_build/html/literate.html").read_text()


def test_code_is_coloured_as_conf_py_asks_in_both_themes(built):
    root, _ = built
    css = (root / "_build/html/_static/pygments.css").read_text()
    assert 'html[data-theme="light"] .highlight { background: #f0f0f0' in css  # friendly
    assert 'html[data-theme="dark"] .highlight { background: #272822' in css  # monokai
