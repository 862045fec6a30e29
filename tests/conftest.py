"""Shared helpers for the test suite, which is grouped by chapter."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def lguest(cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the lguest command as a reader would, from ``cwd``."""
    return subprocess.run([sys.executable, "-m", "lguest", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under book/ and src/, with its bytes."""
    return {path.relative_to(root).as_posix(): path.read_bytes()
            for top in ("book", "src") if (root / top).exists()
            for path in sorted((root / top).rglob("*"))
            if path.is_file() and "__pycache__" not in path.parts}


def write_repo(root: Path, chapters: dict[str, str], toc: str | None = None) -> Path:
    """A minimal book: a cover and the given chapters, listed in chapters.yml."""
    (root / "book").mkdir(parents=True, exist_ok=True)
    (root / "book" / "index.md").write_text("# Cover\n")
    for name, text in chapters.items():
        (root / "book" / name).write_text(text)
    if toc is None:
        entries = "".join(f"  - id: {Path(name).stem}\n    title: {Path(name).stem.title()}\n"
                          f"    file: book/{name}\n" for name in chapters)
        toc = f"cover:\n  id: cover\n  title: Cover\n  file: book/index.md\nchapters:\n{entries}"
    (root / "chapters.yml").write_text(toc)
    return root


@pytest.fixture
def book_copy(tmp_path: Path) -> Path:
    """A copy of this repository's book, chapters.yml, conf.py and package."""
    for name in ("book", "src"):
        shutil.copytree(ROOT / name, tmp_path / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("chapters.yml", "conf.py"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path
