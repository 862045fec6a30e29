"""The Drivers chapter's promise that a flushed write is on the disk, kept
through SIGKILL of a real Launcher at random moments (tests/durability.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from durability import run_rounds
from lguest.guest import build_kernel

ROUNDS = 20


@pytest.fixture(scope="module")
def kernel(tmp_path_factory) -> Path:
    return build_kernel(tmp_path_factory.mktemp("kernel"))


def test_every_write_reported_flushed_survives_sigkill(kernel, tmp_path):
    disk, problems = run_rounds(kernel, tmp_path / "disk.img", ROUNDS, seed=20261125)
    assert problems == []
    assert disk.reported >= ROUNDS  # the kills were not all before the first write
    assert disk.interrupted >= ROUNDS // 2  # nor all after the last one
