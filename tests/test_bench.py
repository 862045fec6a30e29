"""The benchmark suite in bench/: every module's rows are well formed, in quick mode.

The figures themselves are not checked (the machine running the tests is busy with
other things); only that every row carries what `make bench` promises: a name, a
value against a baseline measured in the same run, their ratio, a target, and whether
the ratio meets it, as true or false.
"""

from __future__ import annotations

import json
import math
import re
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


TOO_FAST = "every reading was too fast for its clock"


def measured(rows):
    """The rows that have a value: a figure that the Guest timed on the Host's clock may read
    0 µs, when the clock did not move, and then has none (see the test below)."""
    for row in rows:
        if row.get("note") == TOO_FAST:
            assert "guest" in row["name"] and row["value"] is None and row["meets"] is None, row
            continue
        yield row


def test_every_row_has_a_baseline_a_ratio_and_a_verdict(rows):
    for row in measured(rows):
        assert KEYS <= row.keys(), row
        assert isinstance(row["name"], str) and row["name"], row
        for key in ("value", "baseline", "ratio", "target"):
            assert isinstance(row[key], (int, float)) and math.isfinite(row[key]), (key, row)
        assert row["baseline"] > 0, row
        assert row["ratio"] > 0 or row["target"] == 0, row  # a count whose target is none at all
        assert isinstance(row["meets"], bool), row
        assert row["runs"] == 1 and row["median"] == row["value"], row


def test_meets_compares_the_ratio_with_the_target(run, rows):
    for row in measured(rows):
        expected = (row["ratio"] >= row["target"] if row["higher_is_better"]
                    else row["ratio"] <= row["target"])
        assert run.meets(row) is expected is row["meets"], row


def test_rows_survive_json_and_make_one_table(run, rows):
    assert json.loads(json.dumps(rows)) == rows
    lines = run.table(rows).splitlines()
    assert len(lines) == len(rows) + 2
    assert lines[0].split()[:2] == ["benchmark", "value"]


def test_a_narrow_table_wraps_long_names_and_keeps_every_figure(run, rows):
    """The Mastery chapter prints the table with names of at most 40 columns, so that it fits
    the page: every name comes back whole, read down its column, and every row keeps its
    figures, on the line where its name starts."""
    def parsed(text: str) -> list[tuple[str, list[str]]]:
        found = []
        for line in text.splitlines()[2:]:
            cells = re.split(r"\s{2,}", line.strip())
            if len(cells) == 7:
                found.append((cells[0], cells[1:]))
            else:
                assert len(cells) == 1 and found, line
                found[-1] = (f"{found[-1][0]} {cells[0]}", found[-1][1])
        return found

    narrow, wide = run.table(rows, name_width=40), run.table(rows)
    assert parsed(narrow) == parsed(wide)
    assert [name for name, _ in parsed(narrow)] == [row["name"] for row in rows]
    assert max(len(line) for line in narrow.splitlines()) < max(len(line) for line in wide.splitlines())
    assert all(len(re.split(r"\s{2,}", line.strip())[0]) <= 40 for line in narrow.splitlines()[2:])


def test_a_reading_too_fast_for_its_clock_breaks_nothing(run):
    """A guest once reported a 32 MiB read "in 0 us" and the Mastery chapter's cell died of a
    ZeroDivisionError: such a reading is left out with its baseline, and a figure with no
    reading left has no value and no verdict, and still makes a table."""
    from common import row

    some = row("speed", "MB/s", [None, 4.0, 6.0], [2.0, 2.0, 3.0], target=0.5, higher_is_better=True)
    assert (some["value"], some["baseline"], some["runs"]) == (5.0, 2.5, 2)
    none = row("speed", "MB/s", [None, None], [2.0, 3.0], target=0.5, higher_is_better=True)
    assert none["value"] is none["ratio"] is None and none["note"] == TOO_FAST
    rows = [{**none, "meets": run.meets(none), "module": "bench_drivers"}]
    assert rows[0]["meets"] is None
    assert "-" in run.table(rows).splitlines()[2]
