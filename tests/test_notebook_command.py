"""Preparation: `lguest notebook CHAPTER` pairs a chapter with a notebook and opens it
in JupyterLab; saving the notebook there writes the chapter."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import jupytext
import nbformat
import pytest

from conftest import ROOT, lguest


@pytest.fixture
def repo(book_copy: Path) -> Path:
    shutil.copy(ROOT / "jupytext.toml", book_copy / "jupytext.toml")
    return book_copy


def env_for(root: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(root / "src")}


def test_print_pairs_the_chapter_and_names_the_command(repo):
    before = (repo / "book/host.md").read_bytes()
    result = lguest(repo, "notebook", "host", "--print", "--no-browser", env=env_for(repo))
    assert result.returncode == 0, result.stderr
    command = result.stdout.split()
    assert command[1:3] == ["-m", "jupyterlab"] and "--no-browser" in command
    assert command[-1] == "_build/notebooks/host.ipynb"
    notebook = nbformat.read(repo / "_build/notebooks/host.ipynb", as_version=4)
    nbformat.validate(notebook)
    chapter = jupytext.read(repo / "book/host.md")
    assert [cell.source for cell in notebook.cells] == [cell.source for cell in chapter.cells]
    assert (repo / "book/host.md").read_bytes() == before  # touched, never changed
    assert (repo / "book/host.md").stat().st_mtime >= (repo / "_build/notebooks/host.ipynb").stat().st_mtime


def test_pairing_again_keeps_the_outputs_of_unchanged_cells(repo):
    assert lguest(repo, "notebook", "drivers", "--print", env=env_for(repo)).returncode == 0
    path = repo / "_build/notebooks/drivers.ipynb"
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    code[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text="kept, Hero\n")]
    nbformat.write(notebook, path)
    result = lguest(repo, "notebook", "book/drivers.md", "--print", env=env_for(repo))
    assert result.returncode == 0, result.stderr
    again = [cell for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"]
    assert again[0].outputs[0]["text"] == "kept, Hero\n"


def test_an_unknown_chapter_is_one_line(repo):
    result = lguest(repo, "notebook", "dragons", "--print", env=env_for(repo))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "'dragons'" in result.stderr and "host" in result.stderr


def test_without_jupyter_the_command_says_how_to_get_it(repo):
    script = "import sys; sys.modules['jupyterlab'] = None; from lguest.cli import main; main()"
    result = subprocess.run([sys.executable, "-c", script, "notebook", "host"], cwd=repo,
                            env=env_for(repo), capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Jupyter is not installed" in result.stderr
    assert "lguest[notebook]" in result.stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def api(port: int, path: str, token: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/contents/{path}", method="PUT" if body else "GET",
        data=json.dumps(body).encode() if body else None,
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def test_saving_in_jupyter_writes_the_chapter(repo, tmp_path):
    pytest.importorskip("jupyterlab", reason="the notebook extra is not installed")
    port, token = free_port(), "hero-token"
    env = {**env_for(repo), **{f"JUPYTER_{name}_DIR": str(tmp_path / name.lower())
                               for name in ("CONFIG", "DATA", "RUNTIME")}}
    server = subprocess.Popen(
        [sys.executable, "-m", "lguest", "notebook", "guest", "--no-browser",
         f"--ServerApp.port={port}", f"--IdentityProvider.token={token}",
         "--ServerApp.ip=127.0.0.1", "--LabApp.news_url=", "--ServerApp.port_retries=0"],
        cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                model = api(port, "_build/notebooks/guest.ipynb", token)
                break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, server.stderr.read()
                assert time.monotonic() < deadline, "JupyterLab did not answer within a minute"
                time.sleep(0.3)
        assert model["type"] == "notebook"
        content = model["content"]
        content["cells"].append({"cell_type": "markdown", "metadata": {}, "source": "Hero was here."})
        api(port, "_build/notebooks/guest.ipynb", token, {"type": "notebook", "content": content})
        chapter = (repo / "book/guest.md").read_text()
        assert chapter.rstrip().endswith("Hero was here.")
        assert chapter.startswith((ROOT / "book/guest.md").read_text().split("\n# ")[0])  # same header
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
