# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/literate/notebook.py» book/preparation.md:1696 @e8d642e7
"""A chapter as a Jupyter notebook, paired with its page by jupytext."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from .book import Book, Chapter, LiterateError

NOTEBOOKS = "_build/notebooks"  # where jupytext.toml pairs book/NAME.md


def find_page(book: Book, name: str) -> Chapter:
    """A page by its id (``host``), its file (``book/host.md``) or its file's stem."""
    for page in book.pages:
        if name in (page.id, page.path, Path(page.path).stem, Path(page.path).name):
            return page
    names = ", ".join(page.id for page in book.pages)
    raise LiterateError("chapters.yml", None, f"no page called {name!r}; the pages are {names}")


def pair_notebook(root: Path, page: Chapter) -> Path:
    """Write the page's paired notebook from the page, keeping the outputs it had."""
    import jupytext
    from jupytext.combine import combine_inputs_with_outputs

    text = root / page.path
    notebook = jupytext.read(text)
    paired = root / NOTEBOOKS / Path(page.path).with_suffix(".ipynb").name
    if paired.exists():
        notebook = combine_inputs_with_outputs(notebook, jupytext.read(paired), fmt="md:myst")
    language = _language_info(notebook.metadata.get("kernelspec", {}).get("name"))
    if language:
        notebook.metadata["language_info"] = language
    paired.parent.mkdir(parents=True, exist_ok=True)
    jupytext.write(notebook, paired, fmt="ipynb")
    os.utime(text)  # the chapter is the newer side of the pair, as it should be
    return paired


def _language_info(kernel: str | None) -> dict | None:
    """What ipykernel's kernel says of its language, which JupyterLab copies into the notebook."""
    if kernel != "python3":
        return None
    try:
        from ipykernel.ipkernel import IPythonKernel
    except ImportError:
        return None
    return dict(IPythonKernel.language_info)


def jupyter_command(root: Path, notebook: Path, arguments: list[str]) -> list[str]:
    """The command that starts JupyterLab at the repository, with ``notebook`` open."""
    if importlib.util.find_spec("jupyterlab") is None:
        raise LiterateError("lguest", None, "Jupyter is not installed: "
                            "pip install 'lguest[notebook]' (make setup does)")
    as_root = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    return [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root}", *as_root,
            *arguments, notebook.relative_to(root).as_posix()]
# «/src/lguest/literate/notebook.py»
