# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/literate/milestones.py» book/literate-way-back.md:768 @87b9f63a
"""lguest milestone: a chapter's snapshot, run alone in a fresh interpreter."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from .book import LiterateError
from .tangle import tangle, write_package
from .web import load_web

MODULE = "src/lguest/milestone.py"
STOPS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # a Ctrl-C, a kill, a hangup
START = """\
import sys
snapshot, sys.argv[1:2] = sys.argv[1], []
sys.path.insert(0, snapshot)
import lguest
if not (lguest.__file__ or "").startswith(snapshot + "/"):
    sys.exit(f"lguest milestone: lguest came from {lguest.__file__ or 'a namespace'}, not the snapshot")
from lguest.milestone import main
sys.exit(main())
"""


class Stopped(Exception):
    """A signal asked the command to stop."""


def milestone(root: Path, chapter: str) -> int:
    """Run the milestone of CHAPTER's snapshot, alone; its exit status."""
    web = load_web(root)
    outputs = tangle(web, chapter)
    page = next(page for page in web.book.chapters if page.id == chapter)
    module = web.roots.get(MODULE)
    if module is None or MODULE not in outputs:
        raise LiterateError(page.path, None, f"the snapshot of {page.title} has no milestone:"
                            f" no chunk is tangled to {MODULE}")
    first = web.snapshot(web.rank(chapter))[module.name][0]
    if first.chapter not in page.files:
        raise LiterateError(page.path, None, f"{page.title} has no milestone of its own yet: its"
                            f" {MODULE} is the one of {first.chapter}:{first.line}")
    return run_alone(root, outputs)


def run_alone(root: Path, outputs: dict[str, str]) -> int:
    """Write ``outputs`` to a scratch directory, run its milestone there, and remove it."""
    stopped: list[int] = []

    def stop(number: int, _frame: object) -> None:
        raise Stopped(number)

    previous = {number: signal.getsignal(number) for number in STOPS}
    scratch = Path(tempfile.mkdtemp(prefix="lguest-milestone-"))
    child: subprocess.Popen | None = None
    try:
        for number, handler in previous.items():
            if handler != signal.SIG_IGN:
                signal.signal(number, stop)
        write_package(scratch, outputs)
        command = [sys.executable, "-I", "-c", START, str(scratch / "src"), str(root)]
        child = subprocess.Popen(command, cwd=scratch)
        status = child.wait()
    except Stopped as error:
        stopped.append(error.args[0])
    except KeyboardInterrupt:
        stopped.append(signal.SIGINT)
    finally:
        if child is not None and child.poll() is None:
            child.kill()  # stopped while the milestone ran: it goes first, and is waited for
            child.wait()
        for number, handler in previous.items():
            signal.signal(number, signal.SIG_DFL if handler is None else handler)
        shutil.rmtree(scratch, ignore_errors=True)
    if stopped:
        signal.signal(stopped[0], signal.SIG_DFL)
        os.kill(os.getpid(), stopped[0])  # the death that was asked for, now that it is tidy
        return 128 + stopped[0]
    return status if status >= 0 else 128 - status  # killed by signal N: the shell's 128+N
# «/src/lguest/literate/milestones.py»
