"""Profile the hottest path with pyinstrument: the guest's CPU loop making hypercalls.

    make profile                        (all three workloads below)
    python bench/profiling.py [WORKLOAD ...] [--calls N] [--interval SECONDS] [--html PATH]

WORKLOAD is one or more of:

- ``hypercall`` (the default): the guest of bench_host's synchronous-hypercall row, a loop
  of ``int $0x1f`` (SET_CLOCKEVENT(0)) run under the Host, every call served in the trap
  hook without leaving ``emu_start``: the round trip from Unicorn into the hook, the
  registers read from the live CPU, the checks and the handler, and back;
- ``bare``: the same loop under bare Unicorn with an empty hook registered through ctypes,
  the way the Host registers its own: the floor the first profile is measured against;
- ``exit``: bench_host's full exit, ``cli`` at ring 1 taking #GP over and over, each
  reflected to the guest's handler the long way, through the run loop and the Switcher.

For each, pyinstrument samples the thread running the guest (every 0.1 ms by default;
the ``Host.run`` or ``emu_start`` call of the timed part only, the guest's assembly and
the Host's construction happen before the profiler starts) and this prints its call tree,
then the frames with the most time of their own, as a percentage of the whole. Time spent
inside Unicorn's C code is charged to the Python frame that called into it: ``emu_start``
for the guest's own instructions and Unicorn's crossings into the hook, the hook's Python
frames for the rest. Sampling costs time of its own, and more the finer the interval, so
read the shares, not the absolute times; bench/run.py has the clean figures.

With ``--html PATH`` the profile of the last workload is also written as pyinstrument's
interactive HTML page.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pyinstrument import Profiler

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_host import (GP_SETUP, MEMORY, START, Host, Marks, assemble, bare,  # noqa: E402
                        gp_loop, guest, hosted, hypercall_loop)

from lguest import abi  # noqa: E402

WORKLOADS = ("hypercall", "bare", "exit")


def profiled(function) -> Profiler:
    profiler = Profiler(interval=ARGS.interval)
    profiler.start()
    function()
    profiler.stop()
    return profiler


def host_run(body: str, setup: str = "", count: int = 1) -> Profiler:
    """Profile one run of a bench_host guest under the Host, construction excluded.

    First the same guest runs once unprofiled, timed by its own marks, for scale: the
    profiler's hooks on every Python call and return slow the Python side down.
    """
    print(f"unprofiled: {hosted(body, setup, count) * 1e6:.3g} us per call")
    memory = guest(body, setup)
    host = Host(memory, console=Marks())

    def run() -> None:
        outcome = host.run(entry=START, stack=abi.PAGE_OFFSET + abi.BOOT_PAGE,
                           boot=abi.BOOT_PAGE, pgdir=MEMORY - abi.PAGE_SIZE)
        assert outcome.kind == "poweroff", outcome

    profiler = profiled(run)
    seconds = profiler.last_session.duration
    print(f"profiled:   {seconds / count * 1e6:.3g} us per call (the whole run)")
    return profiler


def bare_run(body: str, count: int) -> Profiler:
    """Profile bare Unicorn running ``body`` with an empty ctypes trap hook."""
    assemble(body, START)  # warm the assembler's page cache; bare() assembles again
    print(f"unprofiled: {bare(body, count, paged=False, hook='ctypes') * 1e6:.3g} us per call")
    profiler = profiled(lambda: bare(body, paged=False, hook="ctypes"))
    print(f"profiled:   {profiler.last_session.duration / count * 1e6:.3g} us per call "
          "(assembling included)")
    return profiler


def own_times(frame, out: dict, parent=None) -> dict:
    """Seconds of each function's own time, summed over every place it appears in the tree.

    pyinstrument keeps a frame's own time in a synthetic ``[self]`` child, and the time of
    a leaf as the leaf's; both are charged to the function they belong to.
    """
    if not frame.children:
        owner = parent if frame.is_synthetic_leaf and parent is not None else frame
        key = (owner.function or "?", f"{owner.file_path_short or ''}:{owner.line_no}")
        out[key] = out.get(key, 0.0) + frame.time
    for child in frame.children:
        own_times(child, out, frame)
    return out


def report(profiler: Profiler, top: int) -> None:
    root = profiler.last_session.root_frame()
    print(profiler.output_text(unicode=True, color=False, show_all=False))
    total = root.time if root is not None else 0.0
    if not total:
        return
    print(f"Top {top} frames by their own time (% of {total:.2f} s):")
    own = sorted(own_times(root, {}).items(), key=lambda item: -item[1])
    for (function, where), seconds in own[:top]:
        print(f"  {seconds / total * 100:5.1f}%  {function:28}  {where}")
    print()


def main(argv: list[str] | None = None) -> None:
    global ARGS
    parser = argparse.ArgumentParser(description="Profile the hypercall fast path.")
    parser.add_argument("workloads", nargs="*", default=["hypercall"], metavar="WORKLOAD")
    parser.add_argument("--calls", type=int, default=300_000,
                        help="hypercalls (or #GP exits, a tenth as many) per run")
    parser.add_argument("--interval", type=float, default=0.0001, help="sampling interval, s")
    parser.add_argument("--top", type=int, default=12, help="frames in the self-time list")
    parser.add_argument("--html", type=Path, default=None, help="also write this HTML page")
    ARGS = parser.parse_args(argv)
    unknown = [name for name in ARGS.workloads if name not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload {unknown[0]}; choose from {', '.join(WORKLOADS)}")
    last = None
    calls, exits = ARGS.calls, max(1, ARGS.calls // 10)
    for name in ARGS.workloads:
        print(f"=== {name} ({exits if name == 'exit' else calls} calls) ===")
        if name == "hypercall":
            last = host_run(hypercall_loop(calls), count=calls)
        elif name == "bare":
            last = bare_run(hypercall_loop(calls), calls)
        else:
            last = host_run(gp_loop(exits), GP_SETUP, count=exits)
        report(last, ARGS.top)
    if ARGS.html and last is not None:
        ARGS.html.write_text(last.output_html())
        print(f"written to {ARGS.html}")


ARGS: argparse.Namespace

if __name__ == "__main__":
    main()
