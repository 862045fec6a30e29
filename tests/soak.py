"""The hostile-guest soak: many more cases than the test suite, a new seed each run.

    make soak                                   # LGUEST_SOAK_CASES=20000 by default
    LGUEST_SOAK_CASES=100000 LGUEST_SOAK_SEED=7 make soak

Runs the cases of tests/hostile.py in rounds of at most ROUND cases (a fresh
hypothesis run each, so that hypothesis's own memory of the cases it has
seen does not grow with the soak), prints the outcomes by kind and the
process's resident memory at the start, after every tenth of the run and at
the end, and fails if a case misbehaved or memory grew by more than
LGUEST_SOAK_GROWTH_MIB (16 by default) between the end of the warm-up (the
first tenth) and the end. Then it SIGKILLs a real Launcher in the middle of a
disk workload LGUEST_SOAK_KILLS times (100 by default; tests/durability.py)
and checks that every write the guest saw flushed survived.
"""

from __future__ import annotations

import gc
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402

import hostile  # noqa: E402

ROUND = 500


def resident_mib() -> float:
    gc.collect()
    return hostile.resident_kib() / 1024


def main() -> int:
    cases = int(os.environ.get("LGUEST_SOAK_CASES", "20000"))
    base = int(os.environ.get("LGUEST_SOAK_SEED", str(random.randrange(1 << 32))))
    allowed = float(os.environ.get("LGUEST_SOAK_GROWTH_MIB", "16"))
    tally, devices = hostile.Tally(), hostile.Devices()
    failures: list[str] = []
    print(f"soak: {cases} hostile cases, seed {base}", flush=True)
    start = resident_mib()
    samples = [(0, start)]
    print(f"resident memory at the start: {start:.1f} MiB", flush=True)
    began = time.monotonic()
    done, round_number = 0, 0
    # Rounds no longer than a tenth of the run, so that a short soak still has a
    # warm-up sample before its end to compare the end with.
    size = min(ROUND, max(1, -(-cases // 10)))
    while done < cases:
        count = min(size, cases - done)

        @seed(base + round_number)
        @settings(max_examples=count, database=None, deadline=None, derandomize=False,
                  suppress_health_check=list(HealthCheck), phases=[Phase.generate, Phase.shrink])
        @given(case=hostile.cases())
        def one(case):
            kind, _ = hostile.run_case(case, devices)
            tally.add(kind)

        try:
            one()
        except AssertionError as error:  # hypothesis has shrunk it and printed the case
            failures.append(f"round {round_number} (seed {base + round_number}): {error}")
            print(f"FAILED: {failures[-1]}", flush=True)
        done += count
        round_number += 1
        if done * 10 // cases != (done - count) * 10 // cases or done == cases:
            samples.append((done, resident_mib()))
            print(f"{done:8} cases, {time.monotonic() - began:7.1f} s, "
                  f"resident {samples[-1][1]:.1f} MiB", flush=True)
    devices.close()
    end = samples[-1][1]
    warm = samples[min(1, len(samples) - 1)][1]
    tally.report()
    print(f"resident memory: {start:.1f} MiB at the start, {warm:.1f} MiB after the warm-up, "
          f"{end:.1f} MiB at the end ({end - warm:+.1f} MiB)")
    if end - warm > allowed:
        failures.append(f"resident memory grew by {end - warm:.1f} MiB (more than {allowed} MiB)")
    kills = int(os.environ.get("LGUEST_SOAK_KILLS", "100"))
    if kills:
        import tempfile

        from durability import run_rounds

        from lguest.guest import build_kernel

        with tempfile.TemporaryDirectory(prefix="lguest-soak-") as scratch:
            began = time.monotonic()
            disk, problems = run_rounds(build_kernel(Path(scratch)), Path(scratch) / "disk.img", kills, base)
            print(f"durability: {kills} SIGKILLs of the Launcher in {time.monotonic() - began:.0f} s, "
                  f"{disk.reported} writes reported flushed, all present and intact"
                  if not problems else f"durability: {len(problems)} problems")
            failures += problems
    for failure in failures:
        print(f"soak: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
