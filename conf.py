"""Sphinx configuration for the book: the one place for its settings.

`make book` builds with Jupyter Book (`jupyter-book build book`), which reads
no conf.py: `lguest book-config` writes _config.yml from the plain settings
below and book/_toc.yml from chapters.yml, and `make test` checks that both
are up to date. Sphinx alone reads this file too: `sphinx-build -c . book
_build/html` builds the same book. Paths are absolute here (inside the
repository) and written relative to book/ in _config.yml, so that both
builds find them.
"""

from pathlib import Path

from lguest.literate.book import read_book

ROOT = Path(__file__).resolve().parent
BOOK = read_book(ROOT)

project = "lguest.py"
author = "the lguest.py authors"
copyright = "2026, the lguest.py authors"

extensions = ["myst_nb", "sphinx_copybutton", "sphinx_design", "sphinxcontrib.bibtex",
              "lguest.literate.weave", "lguest.mastery.solutions"]
# The repository, for the weave extension; it also makes the cover's table of
# contents from chapters.yml when Sphinx runs without Jupyter Book's _toc.yml.
lguest_root = str(ROOT)

root_doc = Path(BOOK.cover.path).relative_to("book").with_suffix("").as_posix()
exclude_patterns = ["_build", "**.ipynb_checkpoints"]

# Code cells run when the book is built, cached by jupyter-cache in
# _build/.jupyter_cache; the weave extension keys that cache on the tangled
# package as well as on the cells, tells the kernels that a build is running
# (a build records no reader's progress: see the Mastery chapter), and runs no
# kernel for a page without code cells.
nb_execution_mode = "cache"
nb_execution_raise_on_error = True
nb_execution_timeout = 600
nb_merge_streams = True
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# Figures are numbered by chapter, and the works the book cites are in
# book/references.bib, listed in full on the Bibliography page.
numfig = True
bibtex_bibfiles = [str(ROOT / "book" / "references.bib")]
bibtex_reference_style = "author_year"

html_theme = "sphinx_book_theme"
html_title = "lguest.py"
html_static_path = [str(ROOT / "book" / "_static")]
html_css_files = ["lguest.css"]
html_js_files = ["lguest.js"]  # the "On this page" button that the theme leaves unwired
html_favicon = str(ROOT / "book" / "_static" / "favicon.svg")
# The theme switcher starts from "auto" (follow the system) rather than from
# an empty mode, which the theme's script reports as an error in the console.
html_context = {"default_mode": "auto"}
html_theme_options = {
    "show_toc_level": 2,
    "use_download_button": True,
    "home_page_in_toc": True,
    # Code colours, light and dark: the theme reads these two, not Sphinx's
    # pygments_style, and the chunks drawn by the weave extension use the same
    # classes as every other code block.
    "pygments_light_style": "friendly",
    "pygments_dark_style": "monokai",
}
