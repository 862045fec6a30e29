"""Preparation: `lguest notebook CHAPTER` pairs a chapter with a notebook and opens it
in JupyterLab; saving the notebook there writes the chapter."""

from __future__ import annotations

import json
import os
import shutil
import signal
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

from conftest import ROOT, Process, lguest, processes


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
    assert lguest(repo, "notebook", "drivers-plugging", "--print", env=env_for(repo)).returncode == 0
    path = repo / "_build/notebooks/drivers-plugging.ipynb"
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    code[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text="kept, Hero\n")]
    nbformat.write(notebook, path)
    result = lguest(repo, "notebook", "book/drivers-plugging.md", "--print", env=env_for(repo))
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


class Lab:
    """``lguest notebook guest`` in a session of its own, as a reader would start it, with
    JupyterLab answering on a free port."""

    def __init__(self, repo: Path, tmp_path: Path, **streams):
        self.port, self.token = free_port(), "hero-token"
        env = {**env_for(repo), **{f"JUPYTER_{name}_DIR": str(tmp_path / name.lower())
                                   for name in ("CONFIG", "DATA", "RUNTIME")}}
        streams = streams or {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE}
        streams.setdefault("start_new_session", True)
        self.command = subprocess.Popen(
            [sys.executable, "-m", "lguest", "notebook", "guest", "--no-browser",
             f"--ServerApp.port={self.port}", f"--IdentityProvider.token={self.token}",
             "--ServerApp.ip=127.0.0.1", "--LabApp.news_url=", "--ServerApp.port_retries=0"],
            cwd=repo, env=env, **streams)

    def api(self, path: str, body: dict | None = None) -> dict:
        return api(self.port, path, self.token, body)

    def wait_until_it_answers(self) -> dict:
        """The paired notebook's model, once JupyterLab serves it."""
        deadline = time.monotonic() + 60
        while True:
            try:
                return self.api("_build/notebooks/guest.ipynb")
            except (urllib.error.URLError, ConnectionError):
                assert self.command.poll() is None, self.command.stderr and self.command.stderr.read()
                assert time.monotonic() < deadline, "JupyterLab did not answer within a minute"
                time.sleep(0.3)

    def server(self) -> Process:
        """The JupyterLab process the command started."""
        servers = [process for process in processes().values()
                   if process.ppid == self.command.pid and "jupyterlab" in process.command]
        assert len(servers) == 1, servers
        return servers[0]

    def survivors(self) -> list[Process]:
        """Live processes of the command's session: itself, JupyterLab and their children."""
        return [process for process in processes().values()
                if process.sid == self.command.pid and process.alive]

    def close(self) -> None:
        """Stop whatever is left of what the test started."""
        if self.survivors():
            os.killpg(self.command.pid, signal.SIGKILL)
        self.command.wait(timeout=20)
        if self.command.stderr:
            self.command.stderr.close()


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGHUP", "SIGINT"])
def test_saving_in_jupyter_writes_the_chapter_and_a_signal_stops_jupyter_too(repo, tmp_path, stop):
    pytest.importorskip("jupyterlab", reason="the notebook extra is not installed")
    lab = Lab(repo, tmp_path)
    try:
        model = lab.wait_until_it_answers()
        assert model["type"] == "notebook"
        content = model["content"]
        content["cells"].append({"cell_type": "markdown", "metadata": {}, "source": "Hero was here."})
        lab.api("_build/notebooks/guest.ipynb", {"type": "notebook", "content": content})
        server = lab.server()
        os.kill(lab.command.pid, getattr(signal, stop))  # the command alone, as `kill` does
        assert lab.command.wait(timeout=30) == -getattr(signal, stop)  # dead of what it was sent
        assert server.pid not in {process.pid for process in lab.survivors()}
        assert lab.survivors() == []
        chapter = (repo / "book/guest.md").read_text()
        assert chapter.rstrip().endswith("Hero was here.")
        assert chapter.startswith((ROOT / "book/guest.md").read_text().split("\n# ")[0])  # same header
    finally:
        lab.close()


def test_ctrl_c_at_the_terminal_is_jupyterlabs_to_answer(repo, tmp_path):
    """A Ctrl-C reaches JupyterLab from the terminal: the command passes on no second one,
    so JupyterLab asks, and stops when told yes."""
    pytest.importorskip("jupyterlab", reason="the notebook extra is not installed")
    import fcntl
    import termios
    import threading

    master, slave = os.openpty()

    def take_the_terminal() -> None:  # a session of its own, the pty its terminal
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    lab = Lab(repo, tmp_path, stdin=slave, stdout=slave, stderr=slave, start_new_session=False,
              preexec_fn=take_the_terminal)
    os.close(slave)
    seen = bytearray()

    def drain() -> None:  # the terminal's screen: JupyterLab's log must not fill the pty
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                return
            if not chunk:
                return
            seen.extend(chunk)

    threading.Thread(target=drain, daemon=True).start()
    try:
        lab.wait_until_it_answers()
        os.write(master, b"\x03")  # the terminal's own Ctrl-C: SIGINT to the whole job
        deadline = time.monotonic() + 30
        while b"Shut down this Jupyter server" not in seen:
            assert lab.command.poll() is None, bytes(seen).decode(errors="replace")[-2000:]
            assert time.monotonic() < deadline, bytes(seen).decode(errors="replace")[-2000:]
            time.sleep(0.1)
        os.write(master, b"y\n")
        assert lab.command.wait(timeout=30) == 0, bytes(seen).decode(errors="replace")[-2000:]
        assert lab.survivors() == []
    finally:
        lab.close()
        os.close(master)


HAND_OVER = """
import sys
from pathlib import Path
from lguest.literate import notebook
notebook.GRACE = float(sys.argv[1])
sys.exit(notebook.hand_over([sys.executable, "-c", sys.argv[2]], Path(".")))
"""
STUBBORN = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(60)")


def test_a_server_that_will_not_stop_is_killed_after_the_grace(tmp_path):
    """What hand_over does for JupyterLab, with a stand-in that ignores SIGTERM."""
    command = subprocess.Popen([sys.executable, "-c", HAND_OVER, "1.5", STUBBORN], cwd=tmp_path,
                               env=env_for(ROOT), stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert command.stdout.readline() == b"ready\n"
        told = time.monotonic()
        command.send_signal(signal.SIGTERM)
        assert command.wait(timeout=30) == -signal.SIGTERM
        assert 1.5 <= time.monotonic() - told < 20
        time.sleep(0.2)
        assert [process for process in processes().values()
                if process.sid == command.pid and process.alive] == []
    finally:
        if command.poll() is None or any(process.sid == command.pid for process in processes().values()):
            os.killpg(command.pid, signal.SIGKILL)
        command.wait()
        command.stdout.close()


def test_the_servers_exit_status_is_the_commands(tmp_path):
    result = subprocess.run([sys.executable, "-c", HAND_OVER, "1", "raise SystemExit(3)"], cwd=tmp_path,
                            env=env_for(ROOT), capture_output=True, timeout=60)
    assert result.returncode == 3, result.stderr
    result = subprocess.run([sys.executable, "-c", HAND_OVER, "1",
                             "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"], cwd=tmp_path,
                            env=env_for(ROOT), capture_output=True, timeout=60)
    assert result.returncode == 128 + signal.SIGKILL, result.stderr
