# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/mastery/quests.py» book/mastery.md:294 @ff6600b7
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


# «Helpers for the checks» book/mastery.md:188 @e7344b0b
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


def word(value: int) -> bytes:
    return value.to_bytes(4, "little")


class TinyGuest:
    """A guest of a few hand-encoded instructions, in 16 MiB set up by the Launcher."""

    CODE, DATA, MESSAGE, RESULTS = 0x100000, 0x180000, 0x181000, 0x182000  # physical

    def __init__(self):
        from .. import abi
        from ..launcher import build_page_tables, make_memory, write_boot_page

        self.abi, self.memory = abi, make_memory(16)
        self.pgdir = build_page_tables(self.memory)
        write_boot_page(self.memory, self.pgdir, "")
        self.memory.write(self.MESSAGE, b"a tiny guest powers off\0")
        self.code = self.hypercall("LGUEST_INIT", self.DATA)

    def hypercall(self, name: str, *args: int) -> bytes:
        loads = b"".join(op + word(arg) for op, arg in zip((b"\xbb", b"\xb9", b"\xba"), args))
        return b"\xb8" + word(self.abi.HYPERCALLS[name]) + loads + b"\xcd\x1f"

    def pte_address(self, vaddr: int) -> int:
        """Where the Launcher's tables keep the entry for ``vaddr`` (physical)."""
        table = self.memory.read_u32(self.pgdir + (vaddr >> 22) * 4) & ~0xFFF
        return table + (vaddr >> 12 & 1023) * 4

    def store(self, vaddr: int, value: int) -> bytes:  # movl $value, vaddr
        return b"\xc7\x05" + word(vaddr) + word(value)

    def load(self, vaddr: int) -> bytes:  # mov vaddr, %eax
        return b"\xa1" + word(vaddr)

    def save(self, vaddr: int) -> bytes:  # mov %eax, vaddr
        return b"\xa3" + word(vaddr)

    def result(self, n: int) -> int:
        """The virtual address of the guest's ``n``th result word."""
        return self.abi.PAGE_OFFSET + self.RESULTS + 4 * n

    def run(self) -> Any:
        """Run the code, then power off: the Host, once the guest is done."""
        from ..host.core import Host
        from ..launcher import boot as hand_over
        from ..launcher import watching

        code = self.code + self.hypercall("SHUTDOWN", self.MESSAGE, self.abi.SHUTDOWN_POWEROFF)
        self.memory.write(self.CODE, code + b"\xeb\xfe")  # and jmp . should SHUTDOWN return
        host = Host(self.memory, console=io.BytesIO(), deterministic=True)
        with watching(host, 120):
            outcome = hand_over(host, [], self.abi.PAGE_OFFSET + self.CODE, self.pgdir)
        if outcome.kind != "poweroff":
            raise QuestNotDone(f"the tiny guest did not power off ({outcome.kind}: "
                               f"{outcome.reason})")
        return host
# «/Helpers for the checks»


# «The quests' checks» book/preparation.md:318 @c5d12050
@quest("preparation", "A part that bows out: the :until: option")
def check_preparation(root: Path) -> str:
    from ..literate.book import LiterateError

    fence = "`" * 3
    chapters = {"one": f"{fence}{{chunk}} src/lguest/demo.py\n:file: src/lguest/demo.py\n\n<<Work>>\n"
                       f"{fence}\n\n{fence}{{chunk}} Work\nwork()\n{fence}\n",
                "two": f"{fence}{{chunk}} Work\nOPTIONS\ndebug()\n{fence}\n",
                "three": f"{fence}{{chunk}} Work\n:append:\nrest()\n{fence}\n"}

    def snapshots(options: str) -> dict[str, str] | str:
        with tempfile.TemporaryDirectory() as scratch:
            book = Path(scratch)
            (book / "book").mkdir()
            (book / "book/index.md").write_text("# A small book\n")
            toc = "cover:\n  id: cover\n  title: Cover\n  file: book/index.md\nchapters:\n"
            for name, text in chapters.items():
                (book / f"book/{name}.md").write_text(f"# {name}\n\n" + text.replace("OPTIONS", options))
                toc += f"  - id: {name}\n    title: {name.title()}\n    file: book/{name}.md\n"
            (book / "chapters.yml").write_text(toc)
            try:
                web = load_web(book)
                return {name: tangle(web, name)["src/lguest/demo.py"] for name in chapters}
            except LiterateError as error:
                return str(error)

    result = snapshots(":append:\n:until: two")
    if isinstance(result, str):
        if "unknown chunk option :until:" in result:
            raise QuestNotDone("the tangler does not know the option :until: yet")
        raise QuestNotDone(f"a part with :append: and :until: two does not tangle: {result}")
    present = [name for name, text in result.items() if "debug()" in text]
    if present != ["two"]:
        raise QuestNotDone("a part of chapter two with :until: two belongs to two's snapshot alone, "
                           f"but is in: {', '.join(present) or 'none'}")
    if "rest()" not in result["three"]:
        raise QuestNotDone("the part that chapter three appends after it is lost")
    for options, mistake in ((":append:\n:until: four", "a chapter chapters.yml does not list"),
                             (":append:\n:until: one", "a chapter before the part's own"),
                             (":replace:\n:until: three", "a part that is not a continuation")):
        result = snapshots(options)
        if not isinstance(result, str) or not result.startswith("book/two.md:3: "):
            raise QuestNotDone(f":until: on {mistake} should be one error at the part's fence, "
                               f"book/two.md:3, not: {result if isinstance(result, str) else 'accepted'}")
    return ":until: retires a continuation after its chapter, and refuses three mistakes at their line"
# «/The quests' checks»
# «The quests' checks»[2] book/launcher.md:1245 @464ef5ad

@quest("launcher", "A compressed kernel: lguest run 16 kernel.gz")
def check_launcher(root: Path) -> str:
    import gzip
    import resource
    import zlib

    from ..guest import build_kernel

    with tempfile.TemporaryDirectory() as scratch:
        packed, short, bomb = (Path(scratch) / name
                               for name in ("kernel.gz", "short.gz", "bomb.gz"))
        packed.write_bytes(gzip.compress(build_kernel().read_bytes()))
        result = lguest_command(root, "run", "--deterministic", "--timeout", "120", "16",
                                str(packed), input="mem\npoweroff\n")
        if result.returncode or "memory: 16384 KiB" not in result.stdout:
            raise QuestNotDone(f"lguest run 16 kernel.gz did not boot the gzipped kernel "
                               f"(status {result.returncode}): "
                               f"{last_line(result.stderr).replace(str(packed), 'kernel.gz')}")
        short.write_bytes(packed.read_bytes()[:packed.stat().st_size // 2])
        deflate, zeros = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS), bytes(1 << 20)
        bomb.write_bytes(b"".join(deflate.compress(zeros) for _ in range(1024)) + deflate.flush())
        for case, what in ((short, "a gzip file cut in half"),
                           (bomb, "a gzip bomb (a GiB of zeros)")):
            result = lguest_command(root, "run", "--timeout", "60", "16", str(case))
            if result.returncode != 1 or len(result.stderr.strip().splitlines()) != 1:
                raise QuestNotDone(f"lguest run 16 with {what} should be refused in one line, "
                                   f"with status 1, not status {result.returncode}: "
                                   f"{last_line(result.stderr).replace(str(case), case.name)}")
    biggest = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss >> 10  # KiB to MiB
    if biggest > 512:
        raise QuestNotDone(f"one of the runs used {biggest} MiB of memory: the bomb was unpacked "
                           "past the guest's 16 MiB before anybody counted")
    return (f"a gzipped kernel boots; a GiB bomb and a truncated file are refused, and no run "
            f"used more than {biggest} MiB")
# «/The quests' checks»
# «The quests' checks»[3] book/guest-shell.md:984 @51d11cc1

@quest("guest", "A tickless sleep: no tick while nobody needs one")
def check_guest(root: Path) -> str:
    exits = {}
    for seconds in (1, 3):
        host, transcript = boot_host(f"sleep {seconds}\nuptime\npoweroff\n")
        up = re.search(r"up \d+\.\d+ s by (\d+) ticks", transcript)
        if up is None:
            raise QuestNotDone(f"uptime said nothing about ticks: {last_line(transcript)!r}")
        if not 100 * seconds <= int(up[1]) <= 100 * seconds + 5:
            raise QuestNotDone(f"after sleep {seconds}, uptime counts {up[1]} ticks, not about "
                               f"{100 * seconds}: a tick slept through is still a tick")
        exits[seconds] = host.exits
    extra = exits[3] - exits[1]
    if extra > 20:
        raise QuestNotDone(f"two more seconds of sleep cost {extra} more exits: the timer still "
                           "wakes the guest for every tick while it sleeps")
    return (f"sleep 1 took {exits[1]} exits in all and sleep 3 {exits[3]}: two more seconds "
            f"cost {extra}, and uptime still counts a hundred ticks a second")
# «/The quests' checks»
# «The quests' checks»[4] book/host-boot.md:1210 @c2f507de

@quest("host", "Three segments for one exit: LOAD_TLS, as lguest had it")
def check_host(root: Path) -> str:
    import struct

    from ..switcher import descriptor

    def guest_with(accesses: tuple[int, ...]) -> TinyGuest:
        guest = TinyGuest()
        table = guest.DATA + 0x800  # the three descriptors, guest-physical
        for n, access in enumerate(accesses):
            marker = guest.DATA + 0xC00 + 4 * n
            guest.memory.write_u32(marker, 0x715_0000 + n)
            guest.memory.write(table + 8 * n, struct.pack(
                "<Q", descriptor(guest.abi.PAGE_OFFSET + marker, 0xFFFFF, access)))
        guest.code += b"\xb8" + word(16) + b"\xbb" + word(table) + b"\xcd\x1f"  # LOAD_TLS
        for n in range(3):
            selector = (7 + n) << 3 | 1
            guest.code += (b"\x66\xb8" + selector.to_bytes(2, "little")  # mov $selector, %ax
                           + b"\x8e\xe8"  # mov %ax, %gs
                           + b"\x65\xa1" + word(0)  # mov %gs:0, %eax
                           + guest.save(guest.result(n)))
        return guest

    guest = guest_with((0xB2, 0x92, 0x92))  # a ring-1 data segment, then two asking for ring 0
    host = guest.run()
    for n in range(3):
        seen = guest.memory.read_u32(guest.RESULTS + 4 * n)
        if seen != 0x715_0000 + n:
            raise QuestNotDone(f"through GDT entry {7 + n} the guest read {seen:#x}, not the "
                               "word its descriptor's base points at")
    try:
        guest_with((0x92, 0x89, 0x92)).run()  # a task-state segment in the middle
    except QuestNotDone as death:
        if "system descriptor" not in str(death):
            raise QuestNotDone(f"a task-state segment in LOAD_TLS should kill the guest as "
                               f"LOAD_GDT_ENTRY would, not: {death}") from None
        reason = str(death)
    else:
        raise QuestNotDone("a task-state segment came in through LOAD_TLS and the guest lived")
    return (f"one LOAD_TLS filled GDT entries 7 to 9 ({host.exits} exits in all), the guest read "
            f"its three words through %gs, and a task-state segment among them ended it")
# «/The quests' checks»
# «The quests' checks»[5] book/switcher-shadows.md:1044 @b371ec49

@quest("switcher", "Page tables the short way: SET_PTE and FLUSH_TLB with no crossing")
def check_switcher(root: Path) -> str:
    from ..host.core import Host
    from ..switcher import Switcher

    guest, calls = TinyGuest(), 16
    vaddr = guest.abi.PAGE_OFFSET + 0x200000
    entry_at = guest.abi.PAGE_OFFSET + guest.pte_address(vaddr)
    guest.code += guest.load(vaddr)  # from here on the page has a shadow table
    for n in range(2 * calls):
        frame = 0x300000 + n % 8 * 0x1000
        entry = frame | 0x63  # present, writable, accessed, dirty
        guest.memory.write_u32(frame, 0x5E7_0000 + n % 8)
        guest.code += (guest.store(entry_at, entry)
                       + (guest.hypercall("SET_PTE", guest.pgdir, vaddr, entry) if n < calls
                          else guest.hypercall("FLUSH_TLB", 1))
                       + guest.load(vaddr) + guest.save(guest.result(n)))

    counts = {"long way": 0, "crossings": 0}
    stop_for, enter = Host._stop_for, Switcher.enter

    def watched_stop(self, vector: int) -> None:
        counts["long way"] += vector == 31
        stop_for(self, vector)

    def watched_enter(self, *args, **kwargs) -> None:
        counts["crossings"] += 1
        enter(self, *args, **kwargs)

    Host._stop_for, Switcher.enter = watched_stop, watched_enter
    try:
        host = guest.run()
    finally:
        Host._stop_for, Switcher.enter = stop_for, enter
    for n in range(2 * calls):
        seen = guest.memory.read_u32(guest.RESULTS + 4 * n)
        if seen != 0x5E7_0000 + n % 8:
            raise QuestNotDone(f"after {'SET_PTE' if n < calls else 'FLUSH_TLB'} number "
                               f"{n % calls + 1} the guest read {seen:#x}, from the frame it "
                               "had mapped before: a stale translation")
    long_way = counts["long way"] - 1  # SHUTDOWN always goes the long way
    if long_way > 0:
        raise QuestNotDone(f"{long_way} of {2 * calls} SET_PTE and FLUSH_TLB hypercalls "
                           "stopped the CPU and went the long way")
    return (f"{2 * calls} SET_PTE and FLUSH_TLB hypercalls, none the long way: "
            f"{counts['crossings']} crossings and {host.exits} exits in all")
# «/The quests' checks»
# «The quests' checks»[6] book/drivers-network.md:1114 @09e11bd7

@quest("drivers", "Interrupts only when asked: VIRTIO_F_EVENT_IDX")
def check_drivers(root: Path) -> str:
    from ..drivers.block import Block
    from ..drivers.mmio import INTERRUPT_USED

    counts = {"notifies": 0, "interrupts": 0, "accepted": 0}
    interrupt, notify = Block.interrupt, Block.notify

    def counted_interrupt(self, reason: int) -> None:
        counts["interrupts"] += bool(reason & INTERRUPT_USED)
        interrupt(self, reason)

    def counted_notify(self, index: int) -> None:
        counts["notifies"] += 1
        counts["accepted"] = self.driver_features
        notify(self, index)

    requests = 20
    with tempfile.TemporaryDirectory() as scratch:
        image = Path(scratch) / "quest.img"
        image.write_bytes(bytes(3 * 512) + b"event_idx quest!".ljust(61 * 512, b"\0"))
        Block.interrupt, Block.notify = counted_interrupt, counted_notify
        try:
            status, transcript = boot("blk read 3\n" * requests + "poweroff\n",
                                      block=[str(image)])
        finally:
            Block.interrupt, Block.notify = interrupt, notify
    reads = transcript.count("|event_idx quest!|")
    if reads != requests or status != 0:
        raise QuestNotDone(f"the guest read the sector {reads} times of {requests} (status "
                           f"{status}): {last_line(transcript)}")
    if not counts["accepted"] >> 29 & 1:
        raise QuestNotDone(f"the block driver did not accept VIRTIO_F_EVENT_IDX (bit 29): it "
                           f"accepted {counts['accepted']:#x}")
    if counts["notifies"] < requests:
        raise QuestNotDone(f"{counts['notifies']} notifies for {requests} requests and more")
    if counts["interrupts"] > 1:
        raise QuestNotDone(f"{requests} requests and more raised {counts['interrupts']} "
                           "interrupts: a driver that finds its answer waiting asked for none")
    return (f"{requests} reads: {counts['notifies']} notifies, {counts['interrupts']} "
            "used-buffer interrupts")
# «/The quests' checks»
# «The quests' checks»[7] book/mastery-gdb.md:1340 @6a807da7

def in_a_child(work: Callable[[], Any]) -> Any:
    """Run ``work`` in a forked child: an abort inside Unicorn ends the child, not the check."""
    import pickle

    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(reader)
        try:
            result = (True, work())
        except QuestNotDone as error:
            result = (False, str(error))
        except Exception as error:  # a bug in the reader's code is their verdict, one line
            result = (False, f"{type(error).__name__}: {error}")
        with os.fdopen(writer, "wb") as pipe:
            pickle.dump(result, pipe)
        os._exit(0)
    os.close(writer)
    with os.fdopen(reader, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        raise QuestNotDone(f"the process died of signal {os.WTERMSIG(status)}: Unicorn aborts "
                           "when a call gate finds no valid task-state segment")
    done, result = pickle.loads(data)
    if not done:
        raise QuestNotDone(result)
    return result


@quest("mastery", "Direct system calls: a call gate from ring 3 to ring 1, with no exit")
def check_mastery(root: Path) -> str:
    guest, calls = TinyGuest(), 2000
    abi, memory = guest.abi, guest.memory
    handler, user, stack_top, index = 0x110000, 0x400000, abi.PAGE_OFFSET + 0x1A0000, 7
    entry = abi.PAGE_OFFSET + handler
    low = abi.KERNEL_CS << 16 | entry & 0xFFFF
    high = entry & 0xFFFF0000 | 0x8000 | 3 << 13 | 0xC << 8  # present, DPL 3, a 32-bit call gate
    for table_entry in (guest.pgdir + 4 * (user >> 22), guest.pte_address(user)):
        memory.write_u32(table_entry, memory.read_u32(table_entry) | 4)  # a page for ring 3
    # The kernel: a stack for calls from ring 3, the gate, and an iret down to ring 3.
    guest.code += (guest.hypercall("SET_STACK", abi.KERNEL_DS, stack_top, 1)
                   + guest.hypercall("LOAD_GDT_ENTRY", index, low, high)
                   + b"".join(b"\x68" + word(value)  # push
                              for value in (abi.USER_DS, user + 0x1000, 0x202, abi.USER_CS, user))
                   + b"\xcf")  # iret
    # Ring 3: lcall through the gate (selector index * 8, asked for at ring 3), and again.
    memory.write(user, b"\x9a" + word(0) + (index << 3 | 3).to_bytes(2, "little") + b"\xeb\xf7")
    # Ring 1, through the gate: note the caller's %cs and our %esp, count, lret; at the end, stop.
    count, caller, stack = guest.result(0), guest.result(1), guest.result(2)
    memory.write(handler, b"\x8b\x44\x24\x04" + b"\xa3" + word(caller)  # mov 4(%esp), %eax; mov
                 + b"\x89\x25" + word(stack)  # mov %esp, stack
                 + b"\xff\x05" + word(count) + b"\x81\x3d" + word(count) + word(calls)  # incl; cmpl
                 + b"\x73\x01\xcb"  # jae over the lret; lret
                 + guest.hypercall("SHUTDOWN", guest.MESSAGE, abi.SHUTDOWN_POWEROFF) + b"\xeb\xfe")

    def run() -> tuple[int, list[int]]:
        try:
            host = guest.run()
        except QuestNotDone as error:
            raise QuestNotDone(f"no system call got through a call gate: {error}") from None
        return host.exits, [memory.read_u32(guest.RESULTS + 4 * n) for n in range(3)]

    exits, (done, seen_cs, seen_esp) = in_a_child(run)
    if done != calls or seen_cs != abi.USER_CS:
        raise QuestNotDone(f"the gate's handler ran {done} times, last called from {seen_cs:#x}: "
                           f"it should run {calls} times, called from ring 3's {abi.USER_CS:#x}")
    if not stack_top - abi.PAGE_SIZE <= seen_esp < stack_top:
        raise QuestNotDone(f"the handler ran on the stack at {seen_esp:#x}, not on the one "
                           f"SET_STACK named, below {stack_top:#x}")
    if exits * 10 > calls:
        raise QuestNotDone(f"{calls} system calls took {exits} exits to the Host: a call gate "
                           "should need none")
    return f"{calls} system calls from ring 3 through a call gate, and {exits} exits in all"
# «/The quests' checks»
# «/src/lguest/mastery/quests.py»
