"""The rendered book: built with warnings as errors, chunks drawn and linked,
cells executed and cached, and the cache keyed on the package."""

from __future__ import annotations

import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from lguest.literate.web import load_web

pytestmark = pytest.mark.book


def build(root: Path) -> str:
    result = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html",
                             "-c", str(root), str(root / "book"), str(root / "_build/html")],
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


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
def built(tmp_path_factory):
    import shutil

    from conftest import ROOT
    root = tmp_path_factory.mktemp("book")
    for name in ("book", "src", "bench"):  # bench: the Mastery chapter runs the quick suite
        shutil.copytree(ROOT / name, root / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "results"))
    for name in ("chapters.yml", "conf.py"):
        shutil.copy(ROOT / name, root / name)
    return root, build(root)


def test_book_builds_and_executes_cells(built):
    root, log = built
    assert "preparation.md: Executing notebook" in log
    page = (root / "_build/html/preparation.html").read_text()
    assert "files tangled from" in page and "book/demo.md:6: reference to undefined chunk" in page
    assert not re.search(r"lguest package digest [0-9a-f]{8}", page)  # the cache-key cell is removed


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
    log = build(root)
    assert "Executing notebook" not in log
    assert re.search(r"0 source files out of date|no targets are out of date", log)
    chapter = root / "book/preparation.md"
    chapter.write_text(chapter.read_text().replace('print(f"{len(web.roots)} files tangled from',
                                                   'print(f"{len(web.roots)} files are tangled from'))
    log = build(root)
    assert "preparation.md: Executing notebook" in log
    assert "files are tangled from" in (root / "_build/html/preparation.html").read_text()
