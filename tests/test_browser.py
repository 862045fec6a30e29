"""The rendered book, opened the way a reader meets it: every page in headless
Chromium, served over HTTP. Each page loads with no console errors, every link
inside the book reaches a page and an element that exist, every code cell that
produced output shows it, and the theme switcher turns the lights off.

Screenshots of every page, light and dark, are left in tests/artifacts/ (not
committed) for a human to look at."""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import tempfile
import threading
from pathlib import Path
from urllib.parse import urlsplit

import nbformat
import pytest

from conftest import ROOT
from lguest.literate.book import read_book

pytestmark = [pytest.mark.book, pytest.mark.browser]

CHROMIUM = ("chromium", "chromium-browser")
CHROMEDRIVER = "chromedriver"
ARTIFACTS = ROOT / "tests" / "artifacts"
PAGES = [Path(page.path).stem for page in read_book(ROOT).pages]


def find_browser() -> tuple[str, str]:
    browser = next((path for name in CHROMIUM if (path := shutil.which(name))), None)
    driver = shutil.which(CHROMEDRIVER) or next(
        (str(path) for path in (Path("/usr/lib/chromium/chromedriver"),) if path.exists()), None)
    if browser is None or driver is None:
        missing = " and ".join(name for name, found in (("chromium", browser), ("chromedriver", driver))
                               if found is None)
        pytest.fail(f"{missing} not found: `make system` (as root) installs Debian's chromium and "
                    "chromium-driver, which this test drives; CI runs it before the tests")
    return browser, driver


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the name is the library's
        pass


@pytest.fixture(scope="module")
def site(rendered_book):
    """The rendered book on http://127.0.0.1:PORT/, served from a thread."""
    root, _ = rendered_book
    html = root / "_build" / "html"
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(html)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, html, f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = find_browser()
    profile = tempfile.mkdtemp(prefix="lguest-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                     "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                     f"--user-data-dir={profile}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    chrome.set_page_load_timeout(60)
    try:
        yield chrome
    finally:
        chrome.quit()
        shutil.rmtree(profile, ignore_errors=True)


def open_page(chrome, url: str) -> list[dict]:
    """Load ``url``, wait for the theme's script to settle; the console messages it caused."""
    from selenium.webdriver.support.ui import WebDriverWait

    chrome.get_log("browser")  # forget what earlier pages said
    chrome.get(url)
    WebDriverWait(chrome, 30).until(lambda c: c.execute_script(
        "return document.readyState === 'complete' && "
        "['light', 'dark'].includes(document.documentElement.dataset.theme)"))
    return chrome.get_log("browser")


def expected_outputs(root: Path, stem: str) -> list[bool]:
    """For each code cell the page shows, in order: did it print or draw anything?"""
    executed = root / "_build" / "jupyter_execute" / f"{stem}.ipynb"
    if not executed.exists():
        return []
    shown = []
    for cell in nbformat.read(executed, as_version=4).cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.cell_type != "code" or "remove-cell" in tags:
            continue
        shown.append(bool(cell.get("outputs")) and "remove-output" not in tags)
    return shown


@pytest.fixture(scope="module")
def visits(site, browser):
    """Open every page once: its console, its links, its element ids and its cells."""
    root, html, base = site
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pages = {}
    for stem in PAGES:
        log = open_page(browser, f"{base}{stem}.html")
        browser.save_screenshot(str(ARTIFACTS / f"{stem}.png"))
        pages[stem] = {
            "log": log,
            "title": browser.title,
            "links": browser.execute_script(
                "return Array.from(document.querySelectorAll('a[href]'), a => a.href)"),
            "ids": set(browser.execute_script(
                "return Array.from(document.querySelectorAll('[id]'), e => e.id)")),
            "cells": browser.execute_script(
                "return Array.from(document.querySelectorAll('div.cell'), cell => {"
                "  const out = cell.querySelector('.cell_output');"
                "  return {output: out ? (out.innerText.trim().length > 0"
                "                         || out.querySelector('img, svg') !== null) : false,"
                "          error: cell.querySelector('.output.traceback, .output.error') !== null};"
                "})"),
        }
    return root, html, base, pages


def test_every_page_loads_with_a_title(visits):
    _, _, _, pages = visits
    for stem, page in pages.items():
        assert page["title"] and "404" not in page["title"], stem
        assert (ARTIFACTS / f"{stem}.png").stat().st_size > 10_000, f"{stem}: a blank screenshot"


def test_no_console_errors(visits):
    _, _, _, pages = visits
    errors = [f"{stem}: {entry['message']}" for stem, page in pages.items()
              for entry in page["log"] if entry["level"] == "SEVERE"]
    assert not errors, "\n".join(errors)


def static_ids(path: Path) -> set[str]:
    return set(re.findall(r'\bid="([^"]+)"', path.read_text(encoding="utf-8", errors="replace")))


def test_every_internal_link_reaches_a_page_and_an_element(visits):
    _, html, base, pages = visits
    checked, broken, chunk_links = 0, [], 0
    for stem, page in pages.items():
        for href in page["links"]:
            if not href.startswith(base):
                continue  # the web outside the book is not ours to check offline
            target = urlsplit(href)
            relative = target.path[len(urlsplit(base).path):] or "index.html"
            path = html / relative
            if relative.endswith("/"):
                path = path / "index.html"
            if not path.is_file():
                broken.append(f"{stem}: {href} (no such file)")
                continue
            if target.fragment and path.suffix == ".html":
                name = path.stem
                ids = pages[name]["ids"] if name in pages and path.parent == html else static_ids(path)
                if target.fragment not in ids:
                    broken.append(f"{stem}: {href} (no element with that id)")
                    continue
                chunk_links += target.fragment.startswith("chunk-")
            checked += 1
    assert not broken, "\n".join(broken)
    assert checked > 1000 and chunk_links > 300, (checked, chunk_links)


def test_every_code_cell_shows_its_output(visits):
    root, _, _, pages = visits
    cells_with_output = 0
    for stem, page in pages.items():
        expected = expected_outputs(root, stem)
        shown = page["cells"]
        assert len(shown) == len(expected), f"{stem}: {len(shown)} cells drawn, {len(expected)} expected"
        for number, (cell, has_output) in enumerate(zip(shown, expected), start=1):
            assert not cell["error"], f"{stem}: cell {number} shows an error"
            if has_output:
                assert cell["output"], f"{stem}: cell {number} printed something the page does not show"
                cells_with_output += 1
    assert cells_with_output > 20


def test_figures_are_drawn_and_captioned(visits):
    _, _, _, pages = visits
    for stem, name in (("preparation", "fig-machine"), ("launcher", "fig-address-spaces"),
                       ("switcher", "fig-world-switch"),
                       ("host", "fig-shadow-walk"), ("drivers", "fig-virtqueue")):
        assert name in pages[stem]["ids"], f"{stem}: figure {name} is missing"


def test_search_finds_the_switcher_offline(site, browser):
    _, _, base = site
    open_page(browser, f"{base}search.html?q=Switcher")
    from selenium.webdriver.support.ui import WebDriverWait
    results = WebDriverWait(browser, 30).until(lambda c: c.execute_script(
        "const items = document.querySelectorAll('#search-results li a');"
        "return items.length ? Array.from(items, a => a.getAttribute('href')) : null"))
    assert any(href.startswith("switcher.html") for href in results)


def test_numbered_chapters_and_sections(site, browser):
    _, _, base = site
    open_page(browser, f"{base}host.html")
    heading = browser.execute_script("return document.querySelector('article h1').innerText")
    sections = browser.execute_script("return Array.from(document.querySelectorAll('article h2'), h => h.innerText)")
    number = PAGES.index("host") - PAGES.index("preparation") + 1
    assert heading.startswith(f"{number}. Host")
    assert sections and all(re.match(rf"{number}\.\d+\. ", text) for text in sections), sections
    open_page(browser, f"{base}reading.html")  # front matter stands before the numbering
    assert browser.execute_script("return document.querySelector('article h1').innerText") \
        .startswith("How to read this book")


def test_theme_switcher_turns_the_lights_off(site, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _, _, base = site
    open_page(browser, f"{base}literate.html#the-command-line")
    colours = {}
    for mode in ("light", "dark"):
        # The reader's way: sphinx-book-theme 1.3's switch is one button that steps through
        # light, dark and the system's choice; click it until the page is in this mode.
        for _ in range(3):
            if browser.execute_script("return document.documentElement.dataset.theme") == mode:
                break
            switch = next(button for button in browser.find_elements(By.CSS_SELECTOR, ".theme-switch-button")
                          if button.is_displayed())
            switch.click()
        WebDriverWait(browser, 10).until(
            lambda c: c.execute_script("return document.documentElement.dataset.theme") == mode)
        colours[mode] = browser.execute_script(
            "const chunk = document.querySelector('.lguest-chunk');"
            "chunk.scrollIntoView();"
            "return [getComputedStyle(document.body).backgroundColor,"
            "        getComputedStyle(chunk.querySelector('.lguest-chunk-notes')).color,"
            "        getComputedStyle(chunk.querySelector('pre')).backgroundColor]")
        browser.save_screenshot(str(ARTIFACTS / f"theme-{mode}.png"))
    assert all(colours["light"][index] != colours["dark"][index] for index in range(3)), colours


def test_copy_buttons_on_code(site, browser):
    _, _, base = site
    open_page(browser, f"{base}literate.html")
    blocks, buttons = browser.execute_script(
        "return [document.querySelectorAll('div.highlight').length,"
        "        document.querySelectorAll('button.copybtn').length]")
    assert blocks > 10 and buttons == blocks
