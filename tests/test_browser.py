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
    for stem, name in (("preparation", "fig-machine"), ("guest", "fig-lguest-data"),
                       ("host-interrupts", "fig-descriptor-bits"), ("host-interrupts", "fig-trap-frames"),
                       ("switcher", "fig-world-switch"), ("switcher-shadows", "fig-shadow-walk"),
                       ("switcher-shadows", "fig-address-spaces"), ("drivers-plugging", "fig-virtqueue")):
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
    number = [chapter.id for chapter in read_book(ROOT).chapters].index("host") + 1
    assert heading.startswith(f"{number}. Host")
    assert sections and all(re.match(rf"{number}\.\d+\. ", text) for text in sections), sections
    open_page(browser, f"{base}host-boot.html")  # a further page of the chapter is one of its sections
    heading = browser.execute_script("return document.querySelector('article h1').innerText")
    assert re.match(rf"{number}\.\d+\. The guest boots", heading), heading
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


# --- Widths: code fits a desktop page, and no page scrolls sideways on a phone -----
#
# Both sizes are set through Chrome's device emulation (CDP Emulation.setDeviceMetricsOverride),
# so the viewport is exactly the size asked for, whatever the window around it: the desktop is a
# 1400×900 window with ordinary scrollbars; the phone is a 390×844 CSS-pixel touch screen (an
# iPhone 12 to 15) at device scale 3, which honours the page's viewport meta tag and draws
# overlay scrollbars as a phone does. A phone browser zooms out to show a page that is too wide
# (window.innerWidth then grows past 390), so the phone test measures against the layout
# viewport, documentElement.clientWidth, and checks that it really is 390.

DESKTOP = {"width": 1400, "height": 900, "deviceScaleFactor": 1, "mobile": False}
PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 3, "mobile": True}

# Every chunk and every code cell (its input and its output), with each element inside it that
# scrolls sideways (pre blocks, the theme's output areas) and the box itself, whose scrollWidth
# grows if something pokes out of it without a scrollbar. Asides are opened first, so the code
# folded inside them is measured too.
CODE_THAT_SCROLLS = r"""
document.querySelectorAll('details').forEach(aside => { aside.open = true; });
const scrolls = el => ['auto', 'scroll'].includes(getComputedStyle(el).overflowX);
const found = [];
const measure = (what, box) => {
  for (const el of [box, ...box.querySelectorAll('*')]) {
    if ((el === box || scrolls(el)) && el.scrollWidth > el.clientWidth) {
      const longest = Math.max(0, ...el.innerText.split('\n')
        .map(line => line.replace(/\t/g, '        ').length));  // in columns
      found.push({what, over: el.scrollWidth - el.clientWidth, width: el.clientWidth, longest,
                  element: el.tagName.toLowerCase() + Array.from(el.classList, c => '.' + c).join('')});
    }
  }
};
const chunks = document.querySelectorAll('div.lguest-chunk');
chunks.forEach(chunk => {
  const title = chunk.querySelector('.lguest-chunk-name');
  measure(`chunk ${title ? title.innerText : chunk.id} (#${chunk.id})`, chunk);
});
const cells = document.querySelectorAll('div.cell');
cells.forEach((cell, index) => {
  const input = cell.querySelector('.cell_input'), output = cell.querySelector('.cell_output');
  if (input) measure(`cell ${index + 1} input`, input);
  if (output) measure(`cell ${index + 1} output`, output);
});
return {found, chunks: chunks.length, cells: cells.length, width: window.innerWidth};
"""

# The page's own sideways scroll on a phone, and the element that reaches furthest right without
# a scrolling or clipping box around it: the one to blame (the deepest, when several end together).
PAGE_THAT_SCROLLS = r"""
document.querySelectorAll('details').forEach(aside => { aside.open = true; });
const root = document.documentElement, width = root.clientWidth;
const contained = el => {
  for (let up = el.parentElement; up && up !== document.body; up = up.parentElement)
    if (getComputedStyle(up).overflowX !== 'visible') return true;
  return false;
};
const describe = el => {
  const name = el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
             + Array.from(el.classList, c => '.' + c).join('');
  const text = (el.innerText || el.textContent || '').trim().replace(/\s+/g, ' ').slice(0, 70);
  return text ? `${name} "${text}"` : name;
};
const out = [];
for (const el of document.body.querySelectorAll('*')) {
  const box = el.getBoundingClientRect();
  if (box.width === 0 || box.right <= width + 0.5 || getComputedStyle(el).position === 'fixed'
      || contained(el)) continue;
  let depth = 0;
  for (let up = el; up; up = up.parentElement) depth++;
  out.push({right: Math.round(box.right), depth, what: describe(el)});
}
out.sort((a, b) => b.right - a.right || b.depth - a.depth);
return {width, inner: window.innerWidth, scroll: root.scrollWidth, widest: out.slice(0, 3)};
"""


@pytest.fixture
def emulate(browser):
    """Give the page a viewport of exactly these metrics, and the browser back as it was after."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)  # for the screenshots taken at these sizes
    def set_metrics(metrics: dict) -> None:
        browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    try:
        yield set_metrics
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_code_fits_a_desktop_page(site, browser, emulate):
    _, _, base = site
    emulate(DESKTOP)
    offenders, chunks, cells = [], 0, 0
    for stem in PAGES:
        open_page(browser, f"{base}{stem}.html")
        seen = browser.execute_script(CODE_THAT_SCROLLS)
        assert seen["width"] == DESKTOP["width"], f"{stem}: the window is {seen['width']} px wide"
        chunks, cells = chunks + seen["chunks"], cells + seen["cells"]
        offenders += [f"{stem}: {item['what']}: {item['over']} px too wide for its "
                      f"{item['width']} px {item['element']} (longest line {item['longest']} characters)"
                      for item in seen["found"]]
        if stem == "host":
            browser.save_screenshot(str(ARTIFACTS / f"{stem}-{DESKTOP['width']}.png"))
    assert chunks > 200 and cells > 30, (chunks, cells)  # the selectors still find the code
    assert not offenders, (f"{len(offenders)} code blocks need a sideways scrollbar at "
                           f"{DESKTOP['width']}×{DESKTOP['height']}:\n" + "\n".join(offenders))


def test_no_page_scrolls_sideways_on_a_phone(site, browser, emulate):
    _, _, base = site
    emulate(PHONE)
    wide = []
    for stem in PAGES:
        open_page(browser, f"{base}{stem}.html")
        seen = browser.execute_script(PAGE_THAT_SCROLLS)
        browser.save_screenshot(str(ARTIFACTS / f"{stem}-{PHONE['width']}.png"))
        assert seen["width"] == PHONE["width"], f"{stem}: the layout viewport is {seen['width']} px wide"
        if seen["scroll"] > seen["width"] or seen["inner"] > seen["width"]:
            blame = "; ".join(f"{item['what']} reaches {item['right']} px" for item in seen["widest"])
            wide.append(f"{stem}: {seen['scroll']} px wide on a {seen['width']} px screen: "
                        f"{blame or 'no one element to blame'}")
    assert not wide, "pages that scroll sideways on a phone:\n" + "\n".join(wide)


@pytest.mark.parametrize("metrics", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_contents_button_opens_the_page_contents(site, browser, emulate, metrics):
    """Where the page's contents are not beside the article (a phone, and a desktop whose room
    went to the code), the button in the article's header opens them in a drawer."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _, _, base = site
    emulate(metrics)
    open_page(browser, f"{base}host.html")
    beside = browser.execute_script(
        "const side = document.getElementById('pst-secondary-sidebar');"
        "return side.getBoundingClientRect().width > 0 && getComputedStyle(side).visibility === 'visible'")
    assert not beside, "the contents are beside the article"
    buttons = [button for button in browser.find_elements(By.CSS_SELECTOR, "button.secondary-toggle")
               if button.is_displayed()]
    assert len(buttons) == 1, f"{len(buttons)} contents buttons on show"
    buttons[0].click()
    links = WebDriverWait(browser, 10).until(lambda c: c.execute_script(
        "const drawer = document.getElementById('pst-secondary-sidebar-modal');"
        "return drawer.open && drawer.getBoundingClientRect().width > 0"
        "       && Array.from(drawer.querySelectorAll('a'), a => a.getAttribute('href'))"))
    sections = browser.execute_script("return Array.from(document.querySelectorAll('article h2'), h => h.id"
                                      " || h.closest('section').id)")
    assert sections and all(f"#{section}" in links for section in sections), (sections, links)
    browser.save_screenshot(str(ARTIFACTS / f"contents-{metrics['width']}.png"))
