"""Every chapter is a jupytext MyST notebook whose cells run in a fresh kernel."""

from __future__ import annotations

import subprocess
import sys

import jupytext
import nbformat
import pytest
from jupytext.config import load_jupytext_configuration_file
from nbclient import NotebookClient

from conftest import ROOT
from lguest.literate.book import read_book

PAGES = [page.path for page in read_book(ROOT).pages]


@pytest.mark.parametrize("path", PAGES)
def test_chapter_is_a_valid_notebook(path, tmp_path):
    notebook = jupytext.read(ROOT / path)
    nbformat.validate(notebook)
    assert notebook.metadata["jupytext"]["text_representation"]["format_name"] == "myst"
    result = subprocess.run([sys.executable, "-m", "jupytext", "--to", "ipynb", "-o",
                             str(tmp_path / "out.ipynb"), str(ROOT / path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    nbformat.validate(nbformat.read(tmp_path / "out.ipynb", as_version=4))


@pytest.mark.parametrize("path", PAGES)
def test_chapter_survives_a_save_from_jupyter(path):
    """Saving a paired notebook in Jupyter rewrites its page: it must come back byte for byte."""
    config = load_jupytext_configuration_file(str(ROOT / "jupytext.toml"))
    text = (ROOT / path).read_text(encoding="utf-8")
    assert jupytext.writes(jupytext.reads(text, fmt="md:myst"), fmt="md:myst", config=config) == text


@pytest.mark.parametrize("path", [page.path for page in [*read_book(ROOT).front, *read_book(ROOT).chapters,
                                                           *read_book(ROOT).appendix]])
def test_chapter_cells_run_in_a_fresh_kernel(path):
    notebook = jupytext.read(ROOT / path)
    client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT / "book")}})
    client.execute()
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert not [output for output in cell.outputs if output.output_type == "error"]


# Pages whose header this change could not touch (other work was under way in them); they
# still name the kernel "Python 3", so JupyterLab marks them modified on opening until their
# kernelspec's display_name reads "Python 3 (ipykernel)" like the others.
def test_a_paired_notebook_says_what_its_kernel_will_say(book_copy):
    """JupyterLab copies the kernel's spec and language into the notebook when it connects, and a
    notebook that differs opens modified: pair every page, then ask a real kernel."""
    from jupyter_client.manager import start_new_kernel

    from lguest.literate.notebook import pair_notebook

    km, kc = start_new_kernel(kernel_name="python3")
    try:
        reply = kc.kernel_info(reply=True, timeout=60)["content"]
        spec = km.kernel_spec
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    mismatched = set()
    for page in read_book(book_copy).pages:
        metadata = nbformat.read(pair_notebook(book_copy, page), as_version=4).metadata
        assert metadata["language_info"] == reply["language_info"], page.path
        kernelspec = {"name": km.kernel_name, "display_name": spec.display_name, "language": spec.language}
        if dict(metadata["kernelspec"]) != kernelspec:
            mismatched.add(page.path)
    assert not mismatched, mismatched
