# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/mastery/quests.py» book/mastery.md:226 @ff6600b7
"""Quests: the exercise at the end of each chapter, and the checks that test the reader's code."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..literate.tangle import drift, tangle
from ..literate.web import load_web

# «Quests and their registry» book/mastery.md:75 @e3aef037
class QuestNotDone(Exception):
    """The quest is not done yet; the message says what is missing, in one line."""


@dataclass(frozen=True)
class Quest:
    chapter: str  # the chapter's id in chapters.yml
    title: str
    check: Callable[[Path], str]


QUESTS: dict[str, Quest] = {}


def quest(chapter: str, title: str) -> Callable:
    """Register the decorated function as the check of ``chapter``'s quest."""
    def register(check: Callable[[Path], str]) -> Callable[[Path], str]:
        QUESTS[chapter] = Quest(chapter, title, check)
        return check
    return register
# «/Quests and their registry»


# «Run a check in a fresh process» book/mastery.md:114 @d512ef73
RESULT_MARK = "lguest-quest-result: "
CHECK_TIMEOUT = 600  # seconds: a check boots a few kernels, and may have to build one
CHILD = "from lguest.mastery.quests import check_here; check_here()"


@dataclass(frozen=True)
class Result:
    chapter: str
    passed: bool
    message: str  # what the check saw if it passed; what is missing if not


def check_quest(root: Path, chapter: str) -> Result:
    """Check ``chapter``'s quest against the book in ``root``, tangled."""
    report = drift(root, tangle(load_web(root)))
    if report:
        return Result(chapter, False, f"src/lguest does not match the book ({report[0]}, "
                                      f"and {len(report) - 1} more): run lguest tangle first"
                      if len(report) > 1 else f"src/lguest does not match the book ({report[0]}): "
                                              "run lguest tangle first")
    return run_check(root, chapter)


def run_check(root: Path, chapter: str) -> Result:
    """Run one check in a fresh Python that imports the package from ``root``/src."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root / "src"), env.get("PYTHONPATH")]))
    try:
        child = subprocess.run([sys.executable, "-c", CHILD, chapter], cwd=root, env=env,
                               capture_output=True, text=True, timeout=CHECK_TIMEOUT)
    except subprocess.TimeoutExpired:
        return Result(chapter, False, f"the check took longer than {CHECK_TIMEOUT} seconds")
    for line in reversed(child.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            verdict = json.loads(line[len(RESULT_MARK):])
            return Result(chapter, bool(verdict["passed"]), str(verdict["message"]))
    return Result(chapter, False, f"the check could not run: {last_line(child.stderr)}")


def check_here() -> None:
    """In the child: run the check named on the command line, print the verdict."""
    chapter = sys.argv[1]
    try:
        if chapter not in QUESTS:
            raise QuestNotDone(f"this book has no quest for the chapter {chapter!r}")
        verdict = {"passed": True, "message": QUESTS[chapter].check(Path.cwd())}
    except QuestNotDone as missing:
        verdict = {"passed": False, "message": str(missing)}
    except Exception as error:  # the reader's code, or the check, broke: say so in one line
        verdict = {"passed": False, "message": f"the check broke: {error!r}"}
    print(RESULT_MARK + json.dumps(verdict), flush=True)
# «/Run a check in a fresh process»


# «Helpers for the checks» book/mastery.md:178 @940f4041
def last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1].strip() if lines else "(nothing said)"


def lguest_command(root: Path, *args: str, input: str = "") -> subprocess.CompletedProcess:
    """Run the reader's own ``lguest`` command in ``root``."""
    return subprocess.run([sys.executable, "-m", "lguest", *args], cwd=root, input=input,
                          capture_output=True, text=True, timeout=CHECK_TIMEOUT)


def boot(script: str, *, mem_mb: int = 16, **devices) -> tuple[int, str]:
    """Boot the reader's kernel, deterministically, typing ``script``: (status, transcript)."""
    from ..guest import build_kernel
    from ..launcher import launch

    console, errors = io.BytesIO(), io.StringIO()
    status = launch(mem_mb, build_kernel(), [], console=console, stderr=errors, deterministic=True,
                    timeout=120, console_input=io.BytesIO(script.encode()), **devices)
    return status, console.getvalue().decode("utf-8", "replace") + errors.getvalue()


def boot_host(script: str, *, mem_mb: int = 16) -> tuple[Any, str]:
    """Like ``boot``, step by step, and hand back the Host to be looked at afterwards."""
    from ..guest import build_kernel
    from ..host.core import Host
    from ..host.hypercalls import EarlyConsole
    from ..launcher import boot as hand_over
    from ..launcher import build_page_tables, load_kernel, make_memory, watching, write_boot_page

    memory = make_memory(mem_mb)
    entry = load_kernel(memory, build_kernel())
    pgdir = build_page_tables(memory)
    write_boot_page(memory, pgdir, "")
    console = io.BytesIO()
    host = Host(memory, console=console, deterministic=True,
                console_input=EarlyConsole(io.BytesIO(script.encode()), deterministic=True))
    with watching(host, 120):
        outcome = hand_over(host, [], entry, pgdir)
    transcript = console.getvalue().decode("utf-8", "replace")
    if outcome.kind != "poweroff":
        raise QuestNotDone(f"the guest did not power off ({outcome.kind}: {outcome.reason})")
    return host, transcript
# «/Helpers for the checks»


# «The quests' checks» book/preparation.md:2607 @803e4e0b
@quest("preparation", "A table of contents for the chunks: lguest chunks")
def check_preparation(root: Path) -> str:
    web = load_web(root)
    titles = {page.path: page.title for page in web.book.pages}
    result = lguest_command(root, "chunks")
    if result.returncode == 2 and "No such command" in result.stderr:
        raise QuestNotDone("there is no lguest chunks command yet")
    if result.returncode:
        raise QuestNotDone(f"lguest chunks failed: {last_line(result.stderr)}")
    listed = [" ".join(line.split()) for line in result.stdout.splitlines() if line.strip()]
    expected = [" ".join(f"{sum(len(part.lines) for part in chunk.parts)} "
                         f"{titles[chunk.parts[0].chapter]} «{chunk.name}»".split())
                for chunk in sorted(web.chunks.values(), key=lambda chunk: chunk.name.casefold())]
    missing = [line for line in expected if line not in listed]
    if missing:
        raise QuestNotDone(f"lguest chunks has no line '{missing[0]}' (and {len(missing) - 1} "
                           f"more of the {len(expected)} chunks are missing or wrong)")
    if listed != expected:
        raise QuestNotDone("lguest chunks lists every chunk, but not one per line in "
                           "alphabetical order, ignoring case")
    return f"lguest chunks lists all {len(expected)} chunks"
# «/The quests' checks»
# «The quests' checks»[2] book/launcher.md:1864 @e42d421b

@quest("launcher", "Memory by the kilo, the mega and the giga: lguest run 8192K")
def check_launcher(root: Path) -> str:
    for size, kib in (("8192K", 8192), ("24m", 24 * 1024), ("16", 16 * 1024)):
        result = lguest_command(root, "run", "--deterministic", "--timeout", "120", size,
                                input="mem\npoweroff\n")
        if result.returncode:
            raise QuestNotDone(f"lguest run {size} failed with status {result.returncode}: "
                               f"{last_line(result.stderr)}")
        if f"memory: {kib} KiB" not in result.stdout:
            said = re.search(r"memory: \d+ KiB", result.stdout)
            raise QuestNotDone(f"lguest run {size} should give the guest {kib} KiB; the guest "
                               f"says {said[0] if said else 'nothing about its memory'}")
    for size, status in (("12X", 2), ("M", 2), ("1500K", 2), ("1G", 1), ("1K", 2)):
        result = lguest_command(root, "run", size)
        if result.returncode != status:
            raise QuestNotDone(f"lguest run {size} should end with status {status}, "
                               f"not {result.returncode}: {last_line(result.stderr)}")
    return "lguest run takes 8192K, 24m and 16, and refuses 12X, M, 1500K, 1K and 1G"
# «/The quests' checks»
# «The quests' checks»[3] book/guest.md:2183 @c7af7cd4

@quest("guest", "Time a command: time COMMAND in the shell")
def check_guest(root: Path) -> str:
    status, transcript = boot("time sleep 1\ntime nosuch\ntime echo hello\npoweroff\n")
    if "time: no such command" in transcript:
        raise QuestNotDone("the shell has no time command yet")
    ticks = [int(number) for number in re.findall(r"time: (\d+) ticks", transcript)]
    if len(ticks) != 2:
        raise QuestNotDone(f"time should print 'time: N ticks' after each command that exists; "
                           f"it did so {len(ticks)} times for two")
    if not 100 <= ticks[0] <= 110:
        raise QuestNotDone(f"time sleep 1 took {ticks[0]} ticks by your count; it should be "
                           "about 100")
    if "nosuch: no such command" not in transcript or "hello" not in transcript:
        raise QuestNotDone("time should run its command with its arguments, and complain about "
                           "a command that does not exist as the shell does")
    if status != 0:
        raise QuestNotDone(f"the guest did not power off cleanly (status {status})")
    return f"time sleep 1 took {ticks[0]} ticks"
# «/The quests' checks»
# «The quests' checks»[4] book/host.md:2575 @6332c8b2

@quest("host", "Count exits by kind: Host.exit_kinds")
def check_host(root: Path) -> str:
    from ..host import core

    slice_, core.SLICE = core.SLICE, 5_000  # short slices: more stops with no vector
    try:
        host, _ = boot_host("sleep 1\npeek 0xdead0000\npoweroff\n")
    finally:
        core.SLICE = slice_
    kinds = getattr(host, "exit_kinds", None)
    if kinds is None:
        raise QuestNotDone("the Host has no exit_kinds yet")
    if not hasattr(kinds, "items") or set(kinds) - {"hypercall", "trap", "timer"}:
        raise QuestNotDone(f"exit_kinds should map 'hypercall', 'trap' and 'timer' to counts, "
                           f"not {dict(kinds) if hasattr(kinds, 'items') else kinds!r}")
    if sum(kinds.values()) != host.exits:
        raise QuestNotDone(f"exit_kinds adds up to {sum(kinds.values())}, but the Host counted "
                           f"{host.exits} exits")
    missing = [kind for kind in ("hypercall", "trap", "timer") if not kinds.get(kind)]
    if missing:
        raise QuestNotDone(f"a boot, a second's sleep and a bad peek should make every kind of "
                           f"exit, but exit_kinds has none of: {', '.join(missing)}")
    return ", ".join(f"{kinds[kind]} {kind}" for kind in ("hypercall", "trap", "timer")) + " exits"
# «/The quests' checks»
# «The quests' checks»[5] book/switcher.md:846 @6382a098

@quest("switcher", "Count the crossings: Switcher.crossings and Switcher.tlb_flushes")
def check_switcher(root: Path) -> str:
    from ..switcher import Switcher

    calls = 0
    enter = Switcher.enter

    def counted(self, *args, **kwargs):
        nonlocal calls
        calls += 1
        return enter(self, *args, **kwargs)

    Switcher.enter = counted
    try:
        host, _ = boot_host("sleep 1\npoweroff\n")
    finally:
        Switcher.enter = enter
    crossings = getattr(host.switcher, "crossings", None)
    flushes = getattr(host.switcher, "tlb_flushes", None)
    if crossings is None or flushes is None:
        raise QuestNotDone("the Switcher has no crossings and tlb_flushes counters yet")
    if crossings != calls:
        raise QuestNotDone(f"Switcher.crossings says {crossings}, but enter was called {calls} times")
    if not 0 < flushes < crossings:
        raise QuestNotDone(f"{flushes} TLB flushes in {crossings} crossings: there should be some, "
                           "and fewer than crossings, since most crossings change no page table")
    return f"{crossings} crossings, {flushes} of them flushed the TLB"
# «/The quests' checks»
# «The quests' checks»[6] book/drivers.md:3987 @4622cd34

@quest("drivers", "Tell the driver the block size: VIRTIO_BLK_F_BLK_SIZE")
def check_drivers(root: Path) -> str:
    from ..drivers.block import Block
    from ..drivers.mmio import CONFIG, DEVICE_FEATURES, DEVICE_FEATURES_SEL

    with tempfile.TemporaryDirectory() as scratch:
        image = Path(scratch) / "quest.img"
        image.write_bytes(b"blk_size quest".ljust(64 * 1024, b"\0"))
        device = Block(image)
        try:
            device.write(DEVICE_FEATURES_SEL, 4, 0)
            features = device.read(DEVICE_FEATURES, 4)
            capacity = device.read(CONFIG, 4)
            blk_size = device.read(CONFIG + 20, 4)
        finally:
            device.close()
        if not features >> 6 & 1:
            raise QuestNotDone("the block device does not offer VIRTIO_BLK_F_BLK_SIZE (bit 6) yet")
        if blk_size != 512:
            raise QuestNotDone(f"blk_size, at byte 20 of the configuration, reads {blk_size}, "
                               "not 512")
        if capacity != 128:
            raise QuestNotDone(f"the capacity now reads {capacity} sectors for a 64 KiB image, not 128")
        status, transcript = boot("blk read 0\npoweroff\n", block=[str(image)])
    if status != 0 or "blk_size quest" not in transcript:
        raise QuestNotDone(f"the guest no longer reads the disk (status {status}): "
                           f"{last_line(transcript)}")
    return "virtio-blk offers bit 6 with a blk_size of 512, and the guest still reads its disk"
# «/The quests' checks»
# «The quests' checks»[7] book/mastery.md:1126 @ac22ee47

@quest("mastery", "Count the exits from inside: an EXITS hypercall and an exits command")
def check_mastery(root: Path) -> str:
    from .. import abi

    if "EXITS" not in abi.HYPERCALLS:
        raise QuestNotDone("lguest.abi has no EXITS hypercall yet")
    host, transcript = boot_host("exits\nexits\npoweroff\n")
    if "exits: no such command" in transcript:
        raise QuestNotDone("the guest's shell has no exits command yet")
    counts = [int(number) for number in re.findall(r"(\d+) exits so far", transcript)]
    if len(counts) != 2:
        raise QuestNotDone(f"exits should print 'N exits so far'; the guest said: "
                           f"{last_line(transcript)!r}")
    if not 0 < counts[0] < counts[1] < host.exits:
        raise QuestNotDone(f"the guest counted {counts[0]} and then {counts[1]} exits, but the "
                           f"Host counted {host.exits} by the end: those should rise, and stay below")
    return f"the guest saw {counts[0]}, then {counts[1]} exits; the Host counted {host.exits}"
# «/The quests' checks»
# «/src/lguest/mastery/quests.py»
