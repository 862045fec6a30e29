"""The suite's own machinery: a run that leaves a process behind fails, naming it (issue 18)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import ROOT, processes

LEAKS = '''
import subprocess, sys
from pathlib import Path

SLEEP = "import time; time.sleep({seconds})  # {name}"


def note(process):
    with open(Path(__file__).with_name("pids"), "a") as pids:
        pids.write(f"{process.pid}\\n")


def test_leaves_a_child():
    note(subprocess.Popen([sys.executable, "-c", SLEEP.format(seconds=120, name="hero-child")]))


def test_leaves_an_orphan_in_a_session_of_its_own():
    starter = ("import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', sys.argv[1]], "
               "start_new_session=True, stdout=subprocess.DEVNULL, "
               "stderr=subprocess.DEVNULL); print(p.pid)")
    started = subprocess.run([sys.executable, "-c", starter, SLEEP.format(seconds=120, name="hero-orphan")],
                             capture_output=True, text=True, check=True)
    with open(Path(__file__).with_name("pids"), "a") as pids:
        pids.write(started.stdout)


def test_leaves_a_child_that_is_about_to_end():
    note(subprocess.Popen([sys.executable, "-c", SLEEP.format(seconds=1, name="hero-brief")]))
'''


def left_by(run: Path) -> list[int]:
    """The processes the leaky tests started, by pid."""
    pids = run / "pids"
    return [int(line) for line in pids.read_text().split()] if pids.exists() else []


def test_a_run_that_leaves_processes_behind_fails_and_names_them(tmp_path):
    (tmp_path / "conftest.py").write_text((ROOT / "tests/conftest.py").read_text())
    (tmp_path / "test_leaks.py").write_text(LEAKS)
    try:
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                 "test_leaks.py"], cwd=tmp_path, capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 1, result.stdout + result.stderr
        assert "3 passed, 1 error" in result.stdout, result.stdout
        assert "2 process(es) of this test run outlived it (now killed)" in result.stdout
        named = {line.rpartition("# ")[2]: line.partition("started during ")[2].partition(": ")[0].split(" or ")
                 for line in result.stdout.splitlines() if "started during" in line}
        assert named.keys() == {"hero-child", "hero-orphan"}, result.stdout
        assert "test_leaks.py::test_leaves_a_child" in named["hero-child"]
        assert "test_leaks.py::test_leaves_an_orphan_in_a_session_of_its_own" in named["hero-orphan"]
        assert "hero-brief" not in result.stdout  # it ended within the grace period
        time.sleep(0.5)
        table = processes()
        assert [pid for pid in left_by(tmp_path) if pid in table and table[pid].alive] == []  # killed
    finally:
        for pid in left_by(tmp_path):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def test_a_run_that_stops_what_it_starts_passes(tmp_path):
    (tmp_path / "conftest.py").write_text((ROOT / "tests/conftest.py").read_text())
    (tmp_path / "test_tidy.py").write_text(
        "import subprocess, sys\n\n\ndef test_waits_for_its_child():\n"
        "    assert subprocess.run([sys.executable, '-c', 'pass']).returncode == 0\n")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "test_tidy.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "1 passed" in result.stdout, result.stdout + result.stderr
    assert "outlived" not in result.stdout
