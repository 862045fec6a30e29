"""Sphinx configuration for the book.

The table of contents comes from chapters.yml alone: the lguest.literate.weave
extension writes it into the cover page from the same list the tangler reads.
Build with `make book` (sphinx-build -c . book _build/html).
"""

import os
from pathlib import Path

from lguest.literate.book import read_book

ROOT = Path(__file__).resolve().parent
BOOK = read_book(ROOT)

project = "lguest.py"
author = "the lguest.py authors"
copyright = "2026, the lguest.py authors"

extensions = ["myst_nb", "sphinx_copybutton", "sphinx_design", "sphinxcontrib.bibtex",
              "lguest.literate.weave", "lguest.mastery.solutions"]
lguest_root = str(ROOT)

root_doc = Path(BOOK.cover.path).relative_to("book").with_suffix("").as_posix()
exclude_patterns = ["_build", "**.ipynb_checkpoints"]

# Code cells run when the book is built, cached by jupyter-cache; the weave
# extension keys that cache on the tangled package as well as on the cells.
nb_execution_mode = "cache"
# The last cell of each chapter records the reader's progress, but not when the book is built:
# the kernels that run the cells inherit this variable (see the Mastery chapter).
os.environ["LGUEST_BOOK_BUILD"] = "1"
nb_execution_cache_path = str(ROOT / "_build" / ".jupyter_cache")
nb_execution_raise_on_error = True
nb_execution_timeout = 600
nb_merge_streams = True
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# Figures are numbered by chapter, and the works the book cites are in
# book/references.bib, listed in full on the Bibliography page.
numfig = True
bibtex_bibfiles = ["book/references.bib"]
bibtex_reference_style = "author_year"

html_theme = "sphinx_book_theme"
html_title = "lguest.py"
html_static_path = ["book/_static"]
html_css_files = ["lguest.css"]
html_favicon = "book/_static/favicon.svg"
# The theme switcher starts from "auto" (follow the system) rather than from
# an empty mode, which the theme's script reports as an error in the console.
html_context = {"default_mode": "auto"}
html_theme_options = {
    "show_toc_level": 2,
    "use_download_button": True,
    "home_page_in_toc": True,
}
pygments_style = "friendly"
pygments_dark_style = "monokai"
