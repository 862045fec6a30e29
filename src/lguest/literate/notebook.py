# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/literate/notebook.py» book/literate-way-back.md:497 @43dd932b
"""A chapter as a Jupyter notebook, paired with its page by jupytext."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import threading
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


# «Handing over to JupyterLab» book/literate-way-back.md:605 @8af476ce
GRACE = 8.0  # seconds JupyterLab has to shut down once told to, before it is killed
STOPS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)  # kill, a hangup, a Ctrl-C


def hand_over(command: list[str], cwd: Path) -> int:
    """Run JupyterLab until it ends, passing on every request to stop; its exit status.
    Asked to stop by a signal, this process dies of it once JupyterLab is gone."""
    asked: list[int] = []  # the signals that asked us to stop
    server: list[subprocess.Popen] = []  # the server, once it is started
    alarm, bell = os.pipe()  # a byte rung down `bell` wakes hurry, which listens at `alarm`
    os.set_blocking(bell, False)

    def ring() -> None:
        try:
            os.write(bell, b"!")
        except BlockingIOError:
            pass  # the pipe is full of rings already

    def tell() -> None:
        server[0].terminate()
        ring()

    def stop(number: int, _frame: object) -> None:
        if number == signal.SIGINT and owns_terminal():
            return  # the terminal's Ctrl-C reached JupyterLab as well, and it asks what to do
        asked.append(number)
        if server:
            tell()

    previous = {number: signal.getsignal(number) for number in STOPS}
    previous = {number: signal.SIG_DFL if handler is None else handler
                for number, handler in previous.items()
                if handler != signal.SIG_IGN}  # nohup's SIGHUP stays ignored, by both of us
    for number in previous:
        signal.signal(number, stop)
    try:
        server.append(subprocess.Popen(command, cwd=cwd))
        hurrying = threading.Thread(target=hurry, args=(server[0], alarm), daemon=True)
        hurrying.start()
        if asked:
            tell()  # the request came while the server was starting
        status = server[0].wait()
        ring()  # for the end of the server too: hurry finds nothing to hurry
        hurrying.join()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        os.close(alarm)
        os.close(bell)
    if asked:
        signal.signal(asked[0], signal.SIG_DFL)
        os.kill(os.getpid(), asked[0])  # the death that was asked for, now that it is tidy
        return 128 + asked[0]  # only if the signal is blocked, and so held for later
    return status if status >= 0 else 128 - status  # killed by signal N: the shell's 128+N


def hurry(server: subprocess.Popen, alarm: int) -> None:
    """Once rung, kill the server if it is still running GRACE seconds later."""
    os.read(alarm, 1)
    try:
        server.wait(GRACE)
    except subprocess.TimeoutExpired:
        server.kill()


def owns_terminal() -> bool:
    """Whether our process group is the one in front at our terminal, where a Ctrl-C
    goes to every process of the group, JupyterLab included."""
    try:
        terminal = os.open(os.ctermid(), os.O_RDONLY | os.O_NOCTTY)
    except OSError:
        return False  # no terminal: a supervisor, a pipeline, a test
    try:
        return os.tcgetpgrp(terminal) == os.getpgrp()
    except OSError:
        return False
    finally:
        os.close(terminal)
# «/Handing over to JupyterLab»
# «/src/lguest/literate/notebook.py»
