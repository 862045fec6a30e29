"""The benchmark suite in bench/: every module's rows are well formed, in quick mode.

The figures themselves are not checked (the machine running the tests is busy with
other things); only that every row carries what `make bench` promises: a name, a
value against a baseline measured in the same run, their ratio, a target, and whether
the ratio meets it, as true or false.
"""

from __future__ import annotations

import json
import math
import sys

import pytest

from conftest import ROOT

BENCH = str(ROOT / "bench")
KEYS = {"name", "unit", "value", "baseline", "ratio", "spread", "target", "higher_is_better",
        "median", "min", "max", "runs", "meets", "module"}


@pytest.fixture(scope="module")
def run():
    """bench/run.py, imported the way the Mastery chapter imports it; sys.path left as found."""
    path = list(sys.path)
    sys.path.insert(0, BENCH)
    try:
        import run as module
        yield module
    finally:
        sys.path[:] = path


@pytest.fixture(scope="module")
def rows(run):
    return run.collect(run.MODULES, repeats=1, quick=True, say=lambda text: None)


def test_every_module_gives_rows(run, rows):
    assert {row["module"] for row in rows} == set(run.MODULES)


def test_every_row_has_a_baseline_a_ratio_and_a_verdict(rows):
    for row in rows:
        assert KEYS <= row.keys(), row
        assert isinstance(row["name"], str) and row["name"], row
        for key in ("value", "baseline", "ratio", "target"):
            assert isinstance(row[key], (int, float)) and math.isfinite(row[key]), (key, row)
        assert row["baseline"] > 0, row
        assert row["ratio"] > 0 or row["target"] == 0, row  # a count whose target is none at all
        assert isinstance(row["meets"], bool), row
        assert row["runs"] == 1 and row["median"] == row["value"], row


def test_meets_compares_the_ratio_with_the_target(run, rows):
    for row in rows:
        expected = (row["ratio"] >= row["target"] if row["higher_is_better"]
                    else row["ratio"] <= row["target"])
        assert run.meets(row) is expected is row["meets"], row


def test_rows_survive_json_and_make_one_table(run, rows):
    assert json.loads(json.dumps(rows)) == rows
    lines = run.table(rows).splitlines()
    assert len(lines) == len(rows) + 2
    assert lines[0].split()[:2] == ["benchmark", "value"]
