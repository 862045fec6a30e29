"""Benchmarks for the Host and the Switcher, each against bare Unicorn in the same run.

Every guest here is a few lines of assembler loaded where a kernel would be, with
physical memory mapped at 0xC0000000 by its own page tables. It marks the start and
the end of the part being timed with a one-byte CONSOLE_WRITE, and the console notes
the time of each mark, so Host start-up and shutdown stay out of the figures. The bare
Unicorn runs are timed around ``emu_start`` alone.

- guest CPU loop: the same loop at the same addresses under bare Unicorn (ring 0, no
  hooks, the guest's page tables) and under the Host (ring 1, shadow paging, the timer
  thread looking in every 100 ms, the brake's block hook called at every block);
  ratio = bare time / guest time (target >= 0.95).
  For information, bare Unicorn without paging, which runs the loop faster still.
- guest CPU loop with a debugger: the same loop under a DebuggedHost (Mastery's
  ``lguest run --gdb``) with a client attached that set no breakpoint and said ``c``,
  against the plain Host; ratio = plain time / debugged time (target >= 0.95).
- synchronous hypercall: ``int $0x1f`` in a loop, under bare Unicorn with an empty
  UC_HOOK_INTR callback registered through the binding, and in the guest as an in-hook
  SET_CLOCKEVENT; ratio = guest / bare (target <= 2). For information, the same bare loop
  with an empty callback registered through ctypes, the way the Host registers its own.
- batched hypercalls: SET_PTE queued 64 at a time in the asynchronous ring and flushed
  with one FLUSH_ASYNC, per call, against SET_PTE made synchronously (a full exit each);
  ratio = batched / synchronous (target < 0.5). For information, against the in-hook
  synchronous hypercall above.
- full exit: a guest taking #GP on ``cli`` in a loop, each reflected to its own handler
  through the Switcher; against the in-hook hypercall, for the cost of the long way.
- shadow page fault: the first write to each of 128 pages, each a page fault the Host
  serves by filling a shadow entry (a full exit each); against bare Unicorn mapping the
  same pages one by one from a UC_HOOK_MEM_WRITE_UNMAPPED callback. Only 128, because
  each page mapped that way is a memory region of its own in Unicorn, and with
  thousands of them every further map gets slower: at 1024 pages the bare fault costs
  ten times what it costs at 64, which would flatter us.
- timer interrupt: the guest arms a 1 ns clock event and spins until its handler has
  counted the tick, over and over; the time from arming to the handler (the timer
  thread's stop, an exit, the frame pushed, the handler) per tick. Baseline: the bare
  mechanism the Host's timer is built on, armed to stopped: under bare Unicorn a spin
  loop arms with ``int $0x1f``, whose empty-but-one-line ctypes hook sets an Event; a
  host thread waiting on that Event calls ``emu_stop``, and Python starts the loop
  again, which arms again. (A persistent thread rather than a ``threading.Timer`` per
  tick, as the Host has one: starting a thread per tick would cost more than the tick
  and flatter us.) What the guest pays on top is a full exit (about one bare stop by
  itself), the timer thread planning its deadline, the interrupt's frame, the way back
  through the Switcher and the handler; target: within 5 times the bare stop.

- replayed instructions: a loop of ``add [word], 1`` and ``add edx, 1`` taking a tick
  every millisecond, its handler re-arming the clock; at the end the word and the
  register should agree, and what the word is ahead by is how many adds ran twice, per
  10,000 stops. Baseline: the same loop under bare Unicorn, stopped a thousand times a
  second by a host thread calling ``emu_stop``, the way the Host's timer once did. Target:
  no replay at all.

The rows the issue sets no target for carry one of ours, so that every row says yes or
no: bare Unicorn without paging at most 25% ahead of the guest (Unicorn's own paging
costs about 13%); the in-hook hypercall within 5 times a ctypes-registered empty
callback; a queued call within 4 in-hook hypercalls (it saves an exit, not a
callback); a full exit within 50 in-hook hypercalls; a shadow page fault within 1.5
times bare Unicorn's map-on-fault.

Run with ``python bench/bench_host.py`` or through bench/run.py.
"""

from __future__ import annotations

import ctypes
import io
import mmap
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from unicorn import (UC_ARCH_X86, UC_HOOK_INTR, UC_HOOK_MEM_WRITE_UNMAPPED, UC_MODE_32,
                     UC_PROT_ALL, Uc)
from unicorn.x86_const import UC_X86_REG_CR0, UC_X86_REG_CR3, UC_X86_REG_EDX, UC_X86_REG_EIP

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved, row  # noqa: E402

from lguest import abi  # noqa: E402
from lguest.gdbstub import DebuggedHost, GdbStub  # noqa: E402
from lguest.host.core import Host, hook_traps  # noqa: E402
from lguest.memory import GuestMemory  # noqa: E402

MEMORY = 16 << 20
PGDIR = MEMORY - abi.PAGE_SIZE  # the guest's page directory, tables just below it
START = abi.PAGE_OFFSET + abi.KERNEL_LOAD
FAULT_BASE, FAULT_PAGES = 0xC0200000, 128  # fresh pages, written once each
SIZES = {False: {"loop": 30_000_000, "calls": 200_000, "batches": 1_000, "exits": 20_000,
                 "ticks": 2_000},
         True: {"loop": 1_000_000, "calls": 20_000, "batches": 50, "exits": 1_000, "ticks": 200}}
REPLAY_STOPS = {False: 3_000, True: 300}  # 1 kHz ticks: seconds of run, in thousands
WORD, TICKS, REGISTER = 2052, 2048, 2056  # offsets in the guest's shared page


def assemble(source: str, address: int) -> bytes:
    with tempfile.TemporaryDirectory() as scratch:
        Path(scratch, "g.s").write_text(".intel_syntax noprefix\n.globl _start\n_start:\n" + source)
        subprocess.run(["as", "--32", "-o", f"{scratch}/g.o", f"{scratch}/g.s"], check=True)
        subprocess.run(["ld", "-m", "elf_i386", f"-Ttext={address:#x}", "--oformat=binary",
                        "-o", f"{scratch}/g.bin", f"{scratch}/g.o"], check=True)
        return Path(scratch, "g.bin").read_bytes()


# The programs. Each is the timed part only; registers are free for them to use.
def cpu_loop(n: int) -> str:
    return f"""
    mov ecx, {n}
    mov esi, 0xC0300000
1:  add dword ptr [esi], ecx
    dec ecx
    jnz 1b
"""


def hypercall_loop(n: int) -> str:  # SET_CLOCKEVENT(0): served in the hook
    return f"""
    mov edi, {n}
1:  mov eax, 9
    xor ebx, ebx
    int 0x1f
    dec edi
    jnz 1b
"""


def sync_pte_loop(n: int) -> str:  # SET_PTE: a full exit each
    return f"""
    mov edi, {n}
1:  mov eax, 14
    mov ebx, {PGDIR}
    mov ecx, 0xC0300000
    xor edx, edx
    int 0x1f
    dec edi
    jnz 1b
"""


def async_pte_loop(batches: int) -> str:  # 64 SET_PTEs in the ring, then FLUSH_ASYNC
    return f"""
    mov edi, {batches}
2:  xor ecx, ecx
    mov ebx, offset shared + 128
1:  mov dword ptr [ebx], 14
    mov dword ptr [ebx + 4], {PGDIR}
    mov dword ptr [ebx + 8], 0xC0300000
    mov dword ptr [ebx + 12], 0
    mov dword ptr [ebx + 16], 0
    mov byte ptr [shared + 64 + ecx], 0
    add ebx, 20
    inc ecx
    cmp ecx, 64
    jne 1b
    xor eax, eax
    int 0x1f
    dec edi
    jnz 2b
"""


def gp_loop(n: int) -> str:  # cli at ring 1: #GP, a full exit, reflected to the handler
    return f"""
    mov edi, {n}
1:  cli
    dec edi
    jnz 1b
"""


def fault_loop(pages: int) -> str:  # the first write to each page
    return f"""
    mov ecx, {pages}
    mov esi, {FAULT_BASE}
1:  mov dword ptr [esi], ecx
    add esi, 4096
    dec ecx
    jnz 1b
"""


def timer_loop(ticks: int) -> str:  # arm a 1 ns clock event, spin until the tick, again
    return f"""
    xor edi, edi
2:  mov eax, 9
    mov ebx, 1
    int 0x1f
    inc edi
1:  cmp dword ptr [shared + 2048], edi
    jb 1b
    cmp edi, {ticks}
    jb 2b
"""


def replay_loop(ticks: int) -> str:  # an add to memory, an add to edx, until the ticks
    return f"""
    mov eax, 9
    mov ebx, 1000000
    int 0x1f
    xor edx, edx
1:  add dword ptr [shared + {WORD}], 1
    add edx, 1
    cmp dword ptr [shared + {TICKS}], {ticks}
    jb 1b
    mov dword ptr [shared + {REGISTER}], edx
"""


def gate(handler: str, kind: int) -> str:
    """Load ecx and edx with an IDT gate for ``handler`` (0x8E00 interrupt, 0x8F00 trap)."""
    return f"""
    mov ecx, offset {handler}
    and ecx, 0xffff
    or ecx, {abi.KERNEL_CS << 16:#x}
    mov edx, offset {handler}
    and edx, 0xffff0000
    or edx, {kind:#x}
"""


GP_SETUP = f"""
    mov eax, 6
    mov ebx, 13
    {gate("gp", 0x8F00)}
    int 0x1f
    mov esp, 0xC0090000
"""
def timer_setup(handler: str) -> str:
    """Install ``handler`` as the timer's interrupt gate, its iret as noirq_iret, and
    turn interrupts on."""
    return f"""
    mov eax, 6
    mov ebx, {abi.FIRST_EXTERNAL_VECTOR + abi.TIMER_IRQ}
    {gate(handler, 0x8E00)}
    int 0x1f
    mov esp, 0xC0090000
    mov dword ptr [shared + {abi.LGUEST_DATA["noirq_iret"]}], offset {handler}_iret
    mov dword ptr [shared + {abi.LGUEST_DATA["irq_enabled"]}], {abi.X86_EFLAGS_IF}
"""


TIMER_SETUP = timer_setup("tick")  # a handler that counts the tick
REPLAY_SETUP = timer_setup("tock")  # and one that also re-arms the clock
HANDLERS = f"""
gp: add dword ptr [esp + 4], 1
    add esp, 4
    iretd
tick:
    inc dword ptr [shared + 2048]
    mov dword ptr [shared + {abi.LGUEST_DATA["irq_enabled"]}], {abi.X86_EFLAGS_IF}
tick_iret:
    iretd
tock:
    push eax
    push ebx
    mov eax, 9
    mov ebx, 1000000
    int 0x1f
    pop ebx
    pop eax
    inc dword ptr [shared + {TICKS}]
    mov dword ptr [shared + {abi.LGUEST_DATA["irq_enabled"]}], {abi.X86_EFLAGS_IF}
tock_iret:
    iretd
"""
MARK = """
    mov eax, 20
    mov ebx, offset shared - 0xC0000000
    mov ecx, 1
    int 0x1f
"""


def guest(body: str, setup: str = "") -> GuestMemory:
    """A guest: LGUEST_INIT, ``setup``, a mark, ``body``, a mark, and power off."""
    source = f"""
    mov eax, 1
    mov ebx, offset shared - 0xC0000000
    int 0x1f
    {setup}
    {MARK}
    {body}
    {MARK}
    mov eax, 2
    mov ebx, 0
    mov ecx, 1
    int 0x1f
    {HANDLERS}
.align 4096
shared: .space 4096
"""
    memory = GuestMemory(MEMORY)
    map_kernel(memory.view.cast("I"))
    memory.write(abi.KERNEL_LOAD, assemble(source, START))
    return memory


def map_kernel(words: memoryview) -> None:
    """Page tables mapping all 16 MiB at PAGE_OFFSET, in the top pages of memory."""
    for table in range(4):
        address = PGDIR - (table + 1) * abi.PAGE_SIZE
        words[PGDIR // 4 + (abi.PAGE_OFFSET >> 22) + table] = address | 3
        for page in range(1024):
            words[address // 4 + page] = (table * 1024 + page) * abi.PAGE_SIZE | 3


class Marks(io.RawIOBase):
    """A console that notes the time of every write: the guest's marks."""

    def __init__(self):
        self.times: list[float] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.times.append(time.perf_counter())
        return len(data)


def attach_and_continue(port: int) -> None:
    """A debugger that connects, sets no breakpoint, continues, and waits for the end."""
    with socket.create_connection(("127.0.0.1", port), timeout=600) as client:
        heard = b""
        for packet, answer in ((b"$?#3f", b"$T"), (b"$c#63", b"$W")):  # stopped? then go on
            client.sendall(packet)
            while answer not in heard:
                more = client.recv(4096)
                if not more:
                    return
                heard += more


def hosted(body: str, setup: str = "", count: int = 1, debugged: bool = False) -> float:
    """Seconds per ``count`` of the guest's timed part, under the Host (or a debugged one)."""
    memory = guest(body, setup)
    marks = Marks()
    if debugged:
        stub = GdbStub(("127.0.0.1", 0), io.StringIO())
        host = DebuggedHost(memory, console=marks, debugger=stub)
        threading.Thread(target=attach_and_continue, args=(stub.address[1],), daemon=True).start()
    else:
        host = Host(memory, console=marks)
    outcome = host.run(entry=START, stack=abi.PAGE_OFFSET + abi.BOOT_PAGE, boot=abi.BOOT_PAGE,
                       pgdir=PGDIR)
    if outcome.kind != "poweroff" or len(marks.times) != 2:
        raise RuntimeError(f"the benchmark guest failed: {outcome}")
    return (marks.times[1] - marks.times[0]) / count


def unicorn_with_memory() -> tuple[Uc, mmap.mmap, int]:
    """Bare Unicorn with MEMORY bytes of host memory at physical 0: engine, buffer, address.

    The engine keeps the buffer: Unicorn reads it through a raw pointer, so it must live
    as long as the engine does."""
    uc = Uc(UC_ARCH_X86, UC_MODE_32)
    buffer = mmap.mmap(-1, MEMORY)
    pointer = ctypes.addressof(ctypes.c_char.from_buffer(buffer))
    uc.mem_map_ptr(0, MEMORY, UC_PROT_ALL, pointer)
    uc.memory_buffer = buffer
    return uc, buffer, pointer


def paged_unicorn(code: bytes) -> Uc:
    """Bare Unicorn at ring 0, paging on through the guest's page tables, ``code`` at START."""
    uc, buffer, _ = unicorn_with_memory()
    map_kernel(memoryview(buffer).cast("I"))
    uc.reg_write(UC_X86_REG_CR3, PGDIR)
    uc.reg_write(UC_X86_REG_CR0, uc.reg_read(UC_X86_REG_CR0) | 0x80010000)
    buffer[abi.KERNEL_LOAD:abi.KERNEL_LOAD + len(code)] = code
    return uc


def flat_unicorn(code: bytes, fault_map: bool = False) -> Uc:
    """Bare Unicorn at ring 0 without paging: memory mapped a second time at PAGE_OFFSET
    (with ``fault_map``, all but the fault loop's pages, each mapped on its first write)."""
    uc, buffer, pointer = unicorn_with_memory()
    if fault_map:
        uc.mem_map_ptr(abi.PAGE_OFFSET, FAULT_BASE - abi.PAGE_OFFSET, UC_PROT_ALL, pointer)

        def on_unmapped(uc, access, address, size, value, _):
            page = address & ~0xFFF
            uc.mem_map_ptr(page, abi.PAGE_SIZE, UC_PROT_ALL, pointer + page - abi.PAGE_OFFSET)
            return True

        uc.hook_add(UC_HOOK_MEM_WRITE_UNMAPPED, on_unmapped)
    else:
        uc.mem_map_ptr(abi.PAGE_OFFSET, MEMORY, UC_PROT_ALL, pointer)
    buffer[abi.KERNEL_LOAD:abi.KERNEL_LOAD + len(code)] = code
    return uc


def bare(body: str, count: int = 1, *, paged: bool = True, hook: str | None = None,
         fault_map: bool = False) -> float:
    """Seconds per ``count`` of the same code under bare Unicorn at ring 0.

    ``paged``: through the guest's page tables, else a second flat mapping of memory at
    0xC0000000. ``hook``: None, "binding" (an empty UC_HOOK_INTR through the binding) or
    "ctypes" (the same, registered the way the Host does). ``fault_map``: leave the fault
    loop's pages unmapped and map each from an unmapped-write callback (flat only).
    """
    code = assemble(body + "\n    hlt\n", START)
    uc = paged_unicorn(code) if paged else flat_unicorn(code, fault_map)
    keep = None
    if hook == "binding":
        uc.hook_add(UC_HOOK_INTR, lambda uc, number, _: None)
    elif hook == "ctypes":
        keep = hook_traps(uc, lambda engine, number, _: None)
    start = time.perf_counter()
    uc.emu_start(START, START + len(code) - 1)
    elapsed = time.perf_counter() - start
    del keep
    return elapsed / count


def hosted_replays(stops: int) -> float:
    """Adds run twice per 10,000 stops, under the Host with 1 kHz ticks."""
    memory = guest(replay_loop(stops), REPLAY_SETUP)
    host = Host(memory, console=Marks())
    outcome = host.run(entry=START, stack=abi.PAGE_OFFSET + abi.BOOT_PAGE, boot=abi.BOOT_PAGE,
                       pgdir=PGDIR)
    if outcome.kind != "poweroff":
        raise RuntimeError(f"the benchmark guest failed: {outcome}")
    shared = host.lguest_data
    replays = memory.read_u32(shared + WORD) - memory.read_u32(shared + REGISTER)
    return replays * 10_000 / host.brake.stops


def bare_replays(stops: int) -> float:
    """Adds run twice per 10,000 stops, under bare Unicorn stopped by a host thread at 1 kHz."""
    code = assemble("1:  add dword ptr [0xC0300000], 1\n    add edx, 1\n    jmp 1b\n", START)
    uc = paged_unicorn(code)
    done = threading.Event()

    def timer() -> None:
        while not done.wait(0.001):
            uc.emu_stop()

    thread = threading.Thread(target=timer, daemon=True)
    thread.start()
    address = START
    for _ in range(stops):
        uc.emu_start(address, START + len(code))
        address = uc.reg_read(UC_X86_REG_EIP)
    done.set()
    thread.join()
    word = int.from_bytes(uc.mem_read(0x300000, 4), "little")  # physical: PAGE_OFFSET + 3 MiB
    return (word - uc.reg_read(UC_X86_REG_EDX)) * 10_000 / stops


def bare_ticks(ticks: int) -> float:
    """Seconds per tick of the bare timer: armed by ``int $0x1f``, stopped by a host thread."""
    code = assemble("    int 0x1f\n1:  jmp 1b\n    hlt\n", START)
    uc = paged_unicorn(code)
    armed, done = threading.Event(), False
    keep = hook_traps(uc, lambda engine, number, _: armed.set())

    def timer() -> None:
        while True:
            armed.wait()
            armed.clear()
            if done:
                return
            uc.emu_stop()

    thread = threading.Thread(target=timer, daemon=True)
    thread.start()
    start = time.perf_counter()
    for _ in range(ticks):
        uc.emu_start(START, START + len(code) - 1)
    elapsed = time.perf_counter() - start
    done = True
    armed.set()
    thread.join()
    del keep
    return elapsed / ticks


def rows(repeats: int = 5, quick: bool = False) -> list[dict]:
    size = SIZES[quick]
    loop, calls, batches = size["loop"], size["calls"], size["batches"]
    s = interleaved({
        "loop bare": lambda: bare(cpu_loop(loop)),
        "loop flat": lambda: bare(cpu_loop(loop), paged=False),
        "loop guest": lambda: hosted(cpu_loop(loop)),
        "loop debugged": lambda: hosted(cpu_loop(loop), debugged=True),
        "call binding": lambda: bare(hypercall_loop(calls), calls, paged=False, hook="binding"),
        "call ctypes": lambda: bare(hypercall_loop(calls), calls, paged=False, hook="ctypes"),
        "call guest": lambda: hosted(hypercall_loop(calls), count=calls),
        "pte sync": lambda: hosted(sync_pte_loop(batches * 4), count=batches * 4),
        "pte async": lambda: hosted(async_pte_loop(batches), count=batches * 64),
        "full exit": lambda: hosted(gp_loop(size["exits"]), GP_SETUP, count=size["exits"]),
        "fault bare": lambda: bare(fault_loop(FAULT_PAGES), FAULT_PAGES, paged=False,
                                   fault_map=True),
        "fault guest": lambda: hosted(fault_loop(FAULT_PAGES), count=FAULT_PAGES),
        "tick": lambda: hosted(timer_loop(size["ticks"]), TIMER_SETUP, count=size["ticks"]),
        "tick bare": lambda: bare_ticks(size["ticks"]),
        "replays": lambda: hosted_replays(REPLAY_STOPS[quick]),
        "replays bare": lambda: bare_replays(REPLAY_STOPS[quick]),
    }, repeats)
    us = {name: [value * 1e6 for value in values] for name, values in s.items()}
    return [
        row("guest CPU loop vs bare Unicorn, same page tables", "s", s["loop guest"],
            s["loop bare"], target=0.95, higher_is_better=True, ratio="baseline/value"),
        row("guest CPU loop vs bare Unicorn, no paging", "s", s["loop guest"], s["loop flat"],
            target=0.8, higher_is_better=True, ratio="baseline/value"),
        row("guest CPU loop, gdb attached and no breakpoint, vs no gdb", "s", s["loop debugged"],
            s["loop guest"], target=0.95, higher_is_better=True, ratio="baseline/value"),
        row("sync hypercall vs bare UC_HOOK_INTR (binding)", "us", us["call guest"],
            us["call binding"], target=2.0),
        row("sync hypercall vs bare UC_HOOK_INTR (ctypes)", "us", us["call guest"],
            us["call ctypes"], target=5.0),
        row("batched SET_PTE per call vs sync SET_PTE", "us", us["pte async"], us["pte sync"],
            target=0.5),
        row("batched SET_PTE per call vs in-hook hypercall", "us", us["pte async"],
            us["call guest"], target=4.0),
        row("full exit (#GP reflected) vs in-hook hypercall", "us", us["full exit"],
            us["call guest"], target=50.0),
        row("shadow page fault vs bare Unicorn map-on-fault", "us", us["fault guest"],
            us["fault bare"], target=1.5),
        row("timer tick, armed to delivered vs bare Unicorn stopped by a host thread", "us",
            us["tick"], us["tick bare"], target=5.0),
        row("replayed instructions per 10,000 stops, 1 kHz ticks, vs bare Unicorn stopped by a "
            "host thread", "", s["replays"], s["replays bare"], target=0.0),
    ]


if __name__ == "__main__":
    from run import main
    main(["bench_host", *sys.argv[1:]])
