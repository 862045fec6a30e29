"""The README's two commands on a fresh machine: `make test` checks for the Debian packages
the tests need, installs the missing ones when it can (root, with apt-get), and otherwise
stops with one line that says what to install. Run against a PATH that has none of them."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from conftest import ROOT


def bare_path(tmp_path: Path, uid: int) -> Path:
    """A PATH with a shell, make and test, an `id` that answers ``uid``, and a fake apt-get
    that logs what it is asked; no compiler, no binutils, no Chromium, no gdb."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "make", "test"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    (bin_dir / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    (bin_dir / "apt-get").write_text(f'#!/bin/sh\necho "$*" >> {tmp_path}/apt.log\n')
    for tool in ("id", "apt-get"):
        (bin_dir / tool).chmod(0o755)
    return bin_dir


def system_check(bin_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(bin_dir / "make"), "-s", "-f", str(ROOT / "Makefile"), "system-check"],
                          cwd=bin_dir.parent, env={"PATH": str(bin_dir)}, capture_output=True,
                          text=True, timeout=60)


def missing_here() -> list[str]:
    names = ["gcc", "binutils", "chromium"]
    return names + ([] if os.access("/usr/lib/chromium/chromedriver", os.X_OK)
                    else ["chromium-driver"]) + ["gdb"]


def test_as_root_make_test_installs_what_is_missing(tmp_path):
    result = system_check(bare_path(tmp_path, 0))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "apt.log").read_text().splitlines() == [
        "update -qq", "install -y -qq --no-install-recommends " + " ".join(missing_here())]


def test_otherwise_it_stops_with_one_line_saying_what_to_install(tmp_path):
    result = system_check(bare_path(tmp_path, 1000))
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and not (tmp_path / "apt.log").exists()
    assert f"make test needs {' '.join(missing_here())}: on Debian, as root, apt-get install" in lines[0]


def test_with_everything_there_it_does_nothing(tmp_path):
    if any(shutil.which(tool) is None for tool in ("gcc", "ld", "as", "chromium", "gdb")):
        return  # this machine lacks them: the two tests above cover it
    bin_dir = bare_path(tmp_path, 0)
    env_path = f"{bin_dir}:{os.environ['PATH']}"
    result = subprocess.run(["make", "-s", "-f", str(ROOT / "Makefile"), "system-check"], cwd=tmp_path,
                            env={"PATH": env_path}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stdout and not result.stderr
    assert not (tmp_path / "apt.log").exists()


def test_ci_runs_the_readmes_test_command():
    assert (ROOT / ".ci/run").read_text().rstrip().splitlines()[-1] == "make test"
    assert "make test" in (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "\ntest: $(STAMP) system-check\n" in makefile


def test_an_author_at_work_runs_cells_that_record_no_progress():
    """make notebooks WRITING=1 starts JupyterLab with the variable a book build sets, so that
    an author's runs of a chapter's last cell claim no reading; without it, a reader's do."""
    def command(*extra: str) -> str:
        outside = {key: value for key, value in os.environ.items()  # not a make within make test
                   if key not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
        result = subprocess.run(["make", "-n", "--no-print-directory", "-f", str(ROOT / "Makefile"),
                                 "notebooks", "CHAPTER=host", *extra], cwd=ROOT, env=outside,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip().splitlines()[-1]

    assert command("WRITING=1") == "LGUEST_BOOK_BUILD=1 .venv/bin/lguest notebook host"
    assert command() == ".venv/bin/lguest notebook host"
