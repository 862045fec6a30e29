"""Hostile guests, generated: machine code written byte by byte, run in-process.

A case is a short program of operations (random hypercalls, wild page-table
entries, touches of the Switcher and of addresses beyond guest memory,
interrupt storms, faults inside fault handlers, pokes at device registers,
corrupted virtqueues, raw random bytes), a set of trap handlers, and
whether devices are plugged in. ``assemble`` turns it into 32-bit x86 code
with a tiny encoder (no compiler: a case costs milliseconds), ``run_case``
runs it under a fresh Host with a watchdog, and ``check_host`` checks what
must hold after any run: the Switcher untouched, no shadow entry pointing
outside guest memory, no Host thread left behind.

Both the test suite (tests/test_hostile.py, fixed seed) and the soak
(tests/soak.py, ``make soak``) draw cases from ``cases()``.
"""

from __future__ import annotations

import faulthandler
import io
import os
import re
import struct
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass

from hypothesis import strategies as st

from lguest import abi
from lguest.drivers import Block, Console, Net, Rng, Switch
from lguest.drivers import mmio as M
from lguest.host.core import Host
from lguest.host.page_tables import ACCESSED, POOL_ADDRESS, PRESENT, SWITCHER_PDE, USER, WRITABLE
from lguest.memory import GuestMemory
from lguest.switcher import SWITCHER_PAGES, switcher_code

# --- The machine every case starts from ---------------------------------------------------

MEM = 4 << 20
V = abi.PAGE_OFFSET  # the kernel sees physical memory here, and at 0
DATA = 0x2000  # lguest_data
COUNTERS = 0x3000  # one word per handler, and messages
MESSAGE = COUNTERS + 0x800
RING = 0x10000  # a virtqueue's three parts, for the ring cases
BUFFERS = 0x20000
STACK_TOP = 0x80000
CODE = abi.KERNEL_LOAD
STUBS = 0x180000  # trap handlers, 64 bytes each
STUB_SIZE = 64
ALT_PGDIR = 0x3FC000
DEVTABLE = 0x3FD000
TABLE = 0x3FE000
PGDIR = 0x3FF000
DEVICE_PDE = M.MMIO_BASE >> 22
DEVICE_SLOTS = 4  # block, rng, console and net, when a case has devices
WATCHDOG = 0.25  # seconds a case may run before the watchdog stops it
HANG = 60  # seconds after which a case that ignored its watchdog is a hang

EAX, ECX, EDX, EBX, ESP, EBP, ESI, EDI = range(8)
H = abi.HYPERCALLS


def u32(value: int) -> bytes:
    return struct.pack("<I", value & 0xFFFFFFFF)


# --- A tiny encoder: just the instructions the cases need ----------------------------------

def mov(register: int, value: int) -> bytes:
    return bytes([0xB8 + register]) + u32(value)


def hypercall(number: int, a1: int = 0, a2: int = 0, a3: int = 0, a4: int = 0) -> bytes:
    return (mov(EAX, number) + mov(EBX, a1) + mov(ECX, a2) + mov(EDX, a3) + mov(ESI, a4)
            + b"\xcd\x1f")


def store(address: int, value: int, size: int = 4) -> bytes:
    """mov size ptr [address], value"""
    if size == 1:
        return b"\xc6\x05" + u32(address) + bytes([value & 0xFF])
    if size == 2:
        return b"\x66\xc7\x05" + u32(address) + struct.pack("<H", value & 0xFFFF)
    return b"\xc7\x05" + u32(address) + u32(value)


def load(address: int, size: int = 4) -> bytes:
    """mov al/ax/eax, [address]"""
    return {1: b"\xa0", 2: b"\x66\xa1", 4: b"\xa1"}[size] + u32(address)


def shutdown(message: int = MESSAGE, reason: int = abi.SHUTDOWN_POWEROFF) -> bytes:
    return hypercall(H["SHUTDOWN"], message, reason)


def spin(count: int) -> bytes:
    """mov ecx, count; loop $"""
    return mov(ECX, count) + b"\xe2\xfe"


# --- What a case is made of ------------------------------------------------------------------

@dataclass(frozen=True)
class Op:
    kind: str
    args: tuple = ()


@dataclass
class Case:
    init: bool
    handlers: dict[int, str]  # vector -> handler kind
    devices: bool
    deterministic: bool
    ops: list[Op]
    ring: bytes = b""  # written over the ring area before the run


def words(kind: str) -> st.SearchStrategy[int]:
    """32-bit values a hostile guest likes: boundaries, Host addresses, and noise."""
    interesting = [0, 1, 2, 3, 4, 0x1F, 0xFFF, 0x1000, DATA, PGDIR, ALT_PGDIR, TABLE,
                   MEM - 4, MEM - 1, MEM, MEM + 0x1000, abi.SWITCHER_ADDR,
                   abi.SWITCHER_ADDR + 0x1000, 0xFFFFF000, 0xFFFFFFFF, POOL_ADDRESS,
                   M.MMIO_BASE, M.MMIO_BASE + M.MMIO_SIZE, 0x80000000, 0x7FFFFFFF, V, V + CODE,
                   V + MEM, V + STACK_TOP]
    if kind == "pte":
        interesting = [value | flags for value in (0, DATA, CODE, TABLE, PGDIR, MEM, MEM - 0x1000,
                                                   abi.SWITCHER_ADDR, POOL_ADDRESS, M.MMIO_BASE,
                                                   0xFFFFF000)
                       for flags in (0, 1, 3, 7, 0x83, 0x67)]
    return st.one_of(st.sampled_from(interesting), st.integers(0, 0xFFFFFFFF),
                     st.integers(0, 64))


ADDRESSES = st.one_of(
    st.sampled_from([abi.SWITCHER_ADDR, abi.SWITCHER_ADDR + 0x1000, abi.SWITCHER_ADDR + 0x2000,
                     0xFFFFFFFC, POOL_ADDRESS, POOL_ADDRESS + 0x1000, V + MEM, V + MEM - 4,
                     V + MEM - 2, MEM, MEM - 4, 0, V, V + PGDIR, V + TABLE, V + CODE,
                     M.MMIO_BASE, M.MMIO_BASE + M.MMIO_SIZE, M.MMIO_BASE + 2 * M.MMIO_SIZE]),
    st.integers(0, 0xFFFFFFFF),
    st.integers(abi.SWITCHER_ADDR, 0xFFFFFFFF),
    st.integers(M.MMIO_BASE, M.MMIO_BASE + 3 * M.MMIO_SIZE))
NUMBERS = st.one_of(st.sampled_from(sorted(H.values())), st.integers(0, 40),
                    st.integers(0, 0xFFFFFFFF))
REGISTERS = [0x000, 0x004, 0x008, 0x00C, 0x010, 0x014, 0x020, 0x024, 0x030, 0x034, 0x038, 0x044,
             0x050, 0x060, 0x064, 0x070, 0x080, 0x084, 0x090, 0x094, 0x0A0, 0x0A4, 0x0FC, 0x100,
             0x108]
VECTORS = st.one_of(st.integers(0, 40), st.sampled_from([0x1F, 0x80, 0xFF]), st.integers(0, 300))
HANDLER_KINDS = ["count", "count", "count", "fault", "shutdown", "ud2", "rearm", "stack"]

OP_LIST = (
    st.builds(lambda n, a: Op("hypercall", (n, *a)), NUMBERS, st.tuples(*[words("arg")] * 4)),
    st.builds(lambda d, i, v, s, t, w: Op("pte", (d, i, v, s, t, w)),
              st.sampled_from([0, V >> 22, DEVICE_PDE]), st.integers(0, 1023), words("pte"),
              st.booleans(), ADDRESSES | st.none(), st.booleans()),
    st.builds(lambda i, v, s, w: Op("pde", (i, v, s, w)),
              st.one_of(st.integers(0, 1023), st.sampled_from([0, V >> 22, SWITCHER_PDE,
                                                                POOL_ADDRESS >> 22, DEVICE_PDE])),
              words("pte"), st.booleans(), st.booleans()),
    st.builds(lambda a: Op("new_pgtable", (a,)),
              st.one_of(st.sampled_from([PGDIR, ALT_PGDIR, TABLE, 0, MEM - 0x1000, MEM]),
                        words("arg"))),
    st.builds(lambda a, w, s: Op("touch", (a, w, s)), ADDRESSES, st.booleans(),
              st.sampled_from([1, 2, 4])),
    st.builds(lambda v, o, sel, kind, present: Op("idt", (v, o, sel, kind, present)),
              VECTORS, st.one_of(st.just(None), words("arg")),
              st.one_of(st.sampled_from([abi.KERNEL_CS, 0x8, 0, abi.USER_CS, abi.KERNEL_DS]),
                        st.integers(0, 0xFFFF)),
              st.integers(0, 15), st.booleans()),
    st.builds(lambda i, lo, hi, seg: Op("gdt", (i, lo, hi, seg)),
              st.one_of(st.integers(0, 40), st.sampled_from([3, 4, 5, 6])),
              words("arg"), st.one_of(st.sampled_from([0x00CFBA00, 0x00CFB200, 0x00CF9A00,
                                                        0x00CF8C00, 0x00CFFA00, 0x00409200]),
                                      words("arg")),
              st.sampled_from([None, "ds", "es", "fs", "gs", "ss"])),
    st.builds(lambda b: Op("raw", (b,)), st.binary(min_size=1, max_size=24)),
    st.builds(lambda slot, reg, size, value, write: Op("mmio", (slot, reg, size, value, write)),
              st.integers(0, DEVICE_SLOTS), st.one_of(st.sampled_from(REGISTERS),
                                                      st.integers(0, 0xFFF)),
              st.sampled_from([4, 4, 4, 1, 2]), words("arg"), st.booleans()),
    st.builds(lambda slot, queue, size, avail, descriptors, heads:
              Op("ring", (slot, queue, size, avail, descriptors, heads)),
              # queue 1 is the console's and the network card's transmit queue, which the
              # device reads on the notify itself; a receive queue waits for input to come
              st.integers(0, DEVICE_SLOTS - 1), st.sampled_from([0, 0, 1]),
              st.sampled_from([1, 2, 4, 8, 8, 8, 3, 0, 256]),
              st.one_of(st.integers(1, 3), st.integers(0, 0xFFFF)),
              st.lists(st.tuples(st.one_of(st.sampled_from([BUFFERS, BUFFERS + 0x1000, MEM - 16, MEM,
                                                            RING, 0]), st.integers(0, 0xFFFFFFFF)),
                                 st.one_of(st.sampled_from([0, 1, 15, 16, 17, 512, 528, 4096]),
                                           st.integers(0, 0xFFFFFFFF)),
                                 st.integers(0, 7), st.one_of(st.integers(0, 9), st.integers(0, 0xFFFF))),
                       min_size=1, max_size=8),
              st.lists(st.one_of(st.integers(0, 3), st.integers(0, 0xFFFF)), min_size=1, max_size=8)),
    st.builds(lambda ns, on, n: Op("storm", (ns, on, n)),
              st.sampled_from([1, 10, 1000, 100_000, 0]), st.booleans(), st.integers(1, 20_000)),
    st.builds(lambda esp, how: Op("stack", (esp, how)), words("arg"),
              st.sampled_from(["int3", "ud2", "int80", "touch"])),
    st.builds(lambda frame: Op("iret", (frame,)),
              st.tuples(words("arg"),
                        st.sampled_from([abi.KERNEL_CS, abi.USER_CS, 0x8, 0x10, 0, abi.KERNEL_DS,
                                         abi.USER_CS & ~3, 0xFFFF]),
                        st.sampled_from([0x202, 0x2, 0x3202, 0x20202, 0xFFFFFFFF]),
                        words("arg"), st.sampled_from([abi.KERNEL_DS, abi.USER_DS, 0x10, 0, 0xFFFF]))),
    st.builds(lambda calls: Op("async", (calls,)),
              st.lists(st.tuples(NUMBERS, *[words("arg")] * 4), min_size=1, max_size=70)),
    st.builds(lambda what: Op("privileged", (what,)),
              st.sampled_from(["cli", "sti", "hlt", "cr3", "lgdt", "lidt", "in", "out", "popf",
                               "int", "int3", "into", "div0", "ud2", "halt", "halt_timer",
                               "int80", "clts", "wbinvd", "sysenter"])),
)
OP_KINDS = ("hypercall", "pte", "pde", "new_pgtable", "touch", "idt", "gdt", "raw", "mmio", "ring",
            "storm", "stack", "iret", "async", "privileged")
KIND_OPS = dict(zip(OP_KINDS, OP_LIST))  # a strategy for each kind of operation
OPS = st.one_of(*OP_LIST)


def ops_of(*kinds: str) -> st.SearchStrategy[Op]:
    return st.one_of(*(KIND_OPS[kind] for kind in kinds))


@st.composite
def cases(draw, max_ops: int = 12) -> Case:
    handled = draw(st.lists(st.integers(0, 40), max_size=12, unique=True))
    handlers = {vector: draw(st.sampled_from(HANDLER_KINDS)) for vector in handled}
    return Case(init=draw(st.integers(0, 9)) != 5,
                handlers=handlers, devices=draw(st.booleans()), deterministic=draw(st.booleans()),
                ops=draw(st.lists(OPS, min_size=1, max_size=max_ops)),
                ring=draw(st.binary(max_size=512)))


# --- From a case to machine code -------------------------------------------------------------

def gate_words(vector: int, offset: int, selector: int, kind: int, present: bool) -> tuple[int, int]:
    low = (selector & 0xFFFF) << 16 | offset & 0xFFFF
    high = offset & 0xFFFF0000 | (0x8000 if present else 0) | (kind & 0xF) << 8 | 1 << 13
    return low, high


def stub(vector: int, kind: int | str) -> bytes:
    """A trap handler of the given kind, for ``vector``."""
    counter = V + COUNTERS + 4 * vector
    error = vector in (8, 10, 11, 12, 13, 14, 17)
    back = (b"\x83\xc4\x04" if error else b"") + b"\xcf"  # pop the error code; iret
    if kind == "fault":  # a fault inside the fault handler
        return load(V + MEM + 0x10000)
    if kind == "shutdown":
        return shutdown()
    if kind == "ud2":
        return b"\x0f\x0b"
    if kind == "stack":  # wreck the stack, then return through it
        return mov(ESP, abi.SWITCHER_ADDR + 0x100) + back
    rearm = hypercall(H["SET_CLOCKEVENT"], 1000) if kind == "rearm" else b""
    # inc dword [counter]; cmp dword [counter], 40; jb .back; shutdown; .back:
    tail = rearm + back
    bail = shutdown()
    return (b"\xff\x05" + u32(counter) + b"\x83\x3d" + u32(counter) + b"\x28"
            + b"\x72" + bytes([len(bail)]) + bail + tail)


def encode(op: Op) -> bytes:
    k, a = op.kind, op.args
    if k == "hypercall":
        return hypercall(*a)
    if k == "pte":
        directory, index, value, set_pte, touch, write = a
        table = DEVTABLE if directory == DEVICE_PDE else TABLE
        vaddr = directory << 22 | index << 12
        code = store(V + table + 4 * index, value)
        code += hypercall(H["SET_PTE"], PGDIR, vaddr, value) if set_pte else hypercall(H["FLUSH_TLB"], 1)
        target = vaddr if touch is None else touch
        return code + (store(target, 0x5A5A5A5A) if write else load(target))
    if k == "pde":
        index, value, set_pgd, write = a
        code = store(V + PGDIR + 4 * index, value)
        code += hypercall(H["SET_PGD"], PGDIR, index) if set_pgd else hypercall(H["FLUSH_TLB"], 1)
        target = index << 22 | 0x123 << 2
        return code + (store(target, 0xA5) if write else load(target))
    if k == "new_pgtable":
        return hypercall(H["NEW_PGTABLE"], a[0])
    if k == "touch":
        address, write, size = a
        return store(address, 0xDEADBEEF, size) if write else load(address, size)
    if k == "idt":
        vector, offset, selector, kind, present = a
        offset = V + STUBS + STUB_SIZE * (vector % 41) if offset is None else offset
        return hypercall(H["LOAD_IDT_ENTRY"], vector, *gate_words(vector, offset, selector, kind, present))
    if k == "gdt":
        index, low, high, segment = a
        code = hypercall(H["LOAD_GDT_ENTRY"], index, low, high)
        if segment is not None:
            selector = (index & 0x1FFF) << 3 | 1
            number = {"es": 0, "ss": 2, "ds": 3, "fs": 4, "gs": 5}[segment]
            code += mov(EAX, selector) + bytes([0x8E, 0xC0 | number << 3])  # mov seg, ax
            if segment == "ss":
                code += mov(ESP, V + STACK_TOP)
        return code
    if k == "raw":
        return a[0]
    if k == "mmio":
        slot, register, size, value, write = a
        address = M.MMIO_BASE + slot * M.MMIO_SIZE + (register & ~(size - 1) if size > 1 else register)
        return store(address, value, size) if write else load(address, size)
    if k == "ring":
        slot, queue, size, avail, descriptors, heads = a
        base = M.MMIO_BASE + slot * M.MMIO_SIZE
        desc, driver, device = RING, RING + 0x1000, RING + 0x2000
        regs = [(M.STATUS, 0), (M.STATUS, M.ACKNOWLEDGE | M.DRIVER), (M.DRIVER_FEATURES_SEL, 1),
                (M.DRIVER_FEATURES, 1), (M.STATUS, M.ACKNOWLEDGE | M.DRIVER | M.FEATURES_OK),
                (M.QUEUE_SEL, queue), (M.QUEUE_NUM, size), (M.QUEUE_DESC_LOW, desc),
                (M.QUEUE_DRIVER_LOW, driver), (M.QUEUE_DEVICE_LOW, device), (M.QUEUE_READY, 1),
                (M.STATUS, M.ACKNOWLEDGE | M.DRIVER | M.FEATURES_OK | M.DRIVER_OK)]
        code = b"".join(store(base + register, value) for register, value in regs)
        for index, (address, length, flags, following) in enumerate(descriptors):
            entry = V + desc + 16 * index
            code += (store(entry, address) + store(entry + 4, 0) + store(entry + 8, length)
                     + store(entry + 12, flags, 2) + store(entry + 14, following, 2))
        for index, head in enumerate(heads):
            code += store(V + driver + 4 + 2 * index, head, 2)
        code += store(V + driver + 2, avail, 2)  # the available index, ahead by who knows
        return code + store(base + M.QUEUE_NOTIFY, queue) + store(base + M.INTERRUPT_ACK, 3)
    if k == "storm":
        nanoseconds, interrupts_on, count = a
        code = hypercall(H["SET_CLOCKEVENT"], nanoseconds)
        if interrupts_on:
            code += store(V + DATA + abi.LGUEST_DATA["irq_enabled"], abi.X86_EFLAGS_IF)
        return code + spin(count)
    if k == "stack":
        esp, how = a
        code = mov(ESP, esp)
        return code + {"int3": b"\xcc", "ud2": b"\x0f\x0b", "int80": b"\xcd\x80",
                       "touch": load(V + MEM + 4)}[how]
    if k == "iret":
        eip, cs, eflags, esp, ss = a[0]
        code = b"".join(b"\x68" + u32(word) for word in (ss, esp, eflags, cs, eip))  # push imm32
        return code + b"\xcf"
    if k == "async":
        code = b""
        for slot, (number, *arguments) in enumerate(a[0][:abi.ASYNC_SLOTS]):
            base = V + DATA + abi.LGUEST_DATA["async_calls"] + 20 * slot
            code += b"".join(store(base + 4 * word, value) for word, value in enumerate((number, *arguments)))
            code += store(V + DATA + abi.LGUEST_DATA["async_status"] + slot, abi.ASYNC_READY, 1)
        return code + hypercall(H["FLUSH_ASYNC"])
    if k == "privileged":
        return {"cli": b"\xfa", "sti": b"\xfb", "hlt": b"\xf4", "cr3": b"\x0f\x22\xd8",
                "lgdt": b"\x0f\x01\x15" + u32(V + DATA), "lidt": b"\x0f\x01\x1d" + u32(V + DATA),
                "in": b"\xec", "out": b"\xee", "popf": b"\x68\x00\x00\x00\x00\x9d",
                "int": b"\xcd\x30", "int3": b"\xcc", "into": b"\x6a\x7f\x58\x04\x7f\xce",
                "div0": b"\x31\xd2\x31\xc9\xf7\xf1", "ud2": b"\x0f\x0b",
                "halt": hypercall(H["HALT"]),
                "halt_timer": hypercall(H["SET_CLOCKEVENT"], 1000)
                + store(V + DATA, abi.X86_EFLAGS_IF) + hypercall(H["HALT"]),
                "int80": b"\xcd\x80", "clts": b"\x0f\x06", "wbinvd": b"\x0f\x09",
                "sysenter": b"\x0f\x34"}[a[0]]
    raise ValueError(f"unknown operation {k}")


def build(case: Case) -> GuestMemory:
    """Guest memory holding the case's code, its handlers and its page tables."""
    memory = GuestMemory(MEM)
    memory.write_u32(PGDIR, TABLE | 7)
    memory.write_u32(PGDIR + 4 * (V >> 22), TABLE | 7)
    memory.write_u32(PGDIR + 4 * DEVICE_PDE, DEVTABLE | 7)
    for page in range(1024):
        memory.write_u32(TABLE + 4 * page, page << 12 | 7)
    for slot in range(DEVICE_SLOTS + 1):
        memory.write_u32(DEVTABLE + 4 * slot, M.MMIO_BASE + slot * M.MMIO_SIZE | 7)
    memory.write(ALT_PGDIR, memory.read(PGDIR, abi.PAGE_SIZE))
    memory.write(MESSAGE, b"the hostile guest ends\0")
    memory.write(RING, case.ring)
    for vector, kind in case.handlers.items():
        memory.write(STUBS + STUB_SIZE * vector, stub(vector, kind))
    code = b""
    if case.init:
        code += hypercall(H["LGUEST_INIT"], DATA)
    for vector in case.handlers:
        code += hypercall(H["LOAD_IDT_ENTRY"], vector,
                          *gate_words(vector, V + STUBS + STUB_SIZE * vector, abi.KERNEL_CS, 0xE, True))
    for op in case.ops:
        code += encode(op)
    code += shutdown()
    memory.write(CODE, code[:STUBS - CODE])
    return memory


def elf_of(case: Case) -> bytes:
    """The case as an ELF32 kernel for the Launcher: one segment, its code and handlers,
    linked at PAGE_OFFSET + 1 MiB and loaded at 1 MiB, like the book's own kernel."""
    memory = build(case)
    image = memory.read(CODE, STUBS + STUB_SIZE * 41 - CODE)
    header = struct.pack("<4s5B7xHHIIIIIHHHHHH", b"\x7fELF", 1, 1, 1, 0, 0, 2, 3, 1, V + CODE, 52, 0, 0,
                         52, 32, 1, 40, 0, 0)
    program = struct.pack("<8I", 1, abi.PAGE_SIZE, V + CODE, CODE, len(image), len(image), 7, abi.PAGE_SIZE)
    return (header + program).ljust(abi.PAGE_SIZE, b"\0") + image


# --- Running a case, and what must hold afterwards -----------------------------------------

SWITCHER_CODE = switcher_code()
HEX = re.compile(r"0x[0-9a-f]+|\b\d+\b")


def kind_of(outcome) -> str:
    """An outcome's kind, with a kill's reason boiled down to its words."""
    if outcome.kind != "killed":
        return outcome.kind
    if outcome.reason == "stopped by the host: watchdog":
        return "watchdog"
    return "killed: " + HEX.sub("N", outcome.reason)


FRAME = b"\xff" * 6 + b"\x02\x4c\x47\x00\x00\x09" + b"\x88\xb5" + bytes(46)  # broadcast


class Devices:
    """The devices a case may have, fresh for each case: a block device on a scratch
    image, an rng, a virtio console whose keyboard types from its own thread, and a
    network card on an in-process switch, flooded with frames from another thread
    (interrupts from outside the CPU, and a sender the guest's death must not touch)."""

    def __init__(self):
        self.scratch = tempfile.NamedTemporaryFile(prefix="lguest-hostile-", suffix=".img")
        self.scratch.truncate(64 * 512)
        self.sender_errors: list[str] = []
        self._flooding = threading.Event()
        self._flood: threading.Thread | None = None

    def make(self) -> list:
        keys, typist = os.pipe()
        os.write(typist, bytes(range(32, 127)) * 8)
        os.close(typist)
        switch = Switch()
        self.wire = switch.port()
        self.wire.connect(lambda frame: None)
        slot = lambda index: {"base": M.MMIO_BASE + index * M.MMIO_SIZE, "irq": M.FIRST_DEVICE_IRQ + index}
        self.keyboard = os.fdopen(keys, "rb", buffering=0)
        return [Block(self.scratch.name, **slot(0)), Rng(**slot(1)),
                Console(io.BytesIO(), self.keyboard, **slot(2)),
                Net(switch.port(), b"\x02\x4c\x47\x00\x00\x01", **slot(3))]

    def start(self) -> None:
        """Flood the network card until ``stop``."""
        self._flooding.set()
        self._flood = threading.Thread(target=self._send, daemon=True)
        self._flood.start()

    def _send(self) -> None:
        while self._flooding.is_set():
            try:
                self.wire.send(FRAME)
            except BaseException as error:  # noqa: BLE001 - a death that reached the sender
                self.sender_errors.append(repr(error))
                return
            time.sleep(0.0005)

    def stop(self, plugged: list) -> None:
        self._flooding.clear()
        if self._flood is not None:
            self._flood.join()
            self._flood = None
        for device in plugged:
            device.close()
        self.keyboard.close()

    def close(self) -> None:
        self.scratch.close()


def run_case(case: Case, devices: Devices | None = None, memory: GuestMemory | None = None) -> tuple[str, str]:
    """Run a case under a fresh Host (on ``memory``, built if not given); return its
    outcome's kind and reason, or raise AssertionError if the Host misbehaved."""
    memory = build(case) if memory is None else memory
    host = Host(memory, console=io.BytesIO(), deterministic=case.deterministic)
    plugged = devices.make() if case.devices and devices is not None else []
    for device in plugged:
        host.add_device(device)
    threads = threading.active_count()
    watchdog = threading.Timer(WATCHDOG, host.stop, ("watchdog",))
    faulthandler.dump_traceback_later(HANG, exit=True)  # a hang ends the run, loudly
    watchdog.start()
    if plugged:
        devices.start()
    try:
        outcome = host.run(entry=V + CODE, stack=V + STACK_TOP, boot=abi.BOOT_PAGE, pgdir=PGDIR)
    except BaseException as error:  # noqa: BLE001 - this is exactly what must never happen
        raise AssertionError(f"an exception escaped the Host: {error!r}") from error
    finally:
        watchdog.cancel()
        watchdog.join()
        faulthandler.cancel_dump_traceback_later()
        if plugged:
            devices.stop(plugged)
    check_host(host, outcome, threads)
    if devices is not None and devices.sender_errors:
        raise AssertionError(f"the guest's death reached a frame's sender: {devices.sender_errors.pop()}")
    return kind_of(outcome), outcome.reason


def check_host(host: Host, outcome, threads: int) -> None:
    """What must hold after any run, however hostile the guest."""
    assert outcome.kind in ("poweroff", "restart", "killed"), outcome
    reason = outcome.reason
    assert "\n" not in reason and "\r" not in reason, f"a reason of more than one line: {reason!r}"
    if outcome.kind == "killed":
        assert reason.strip(), "killed without a reason"
        assert not reason.startswith("host error"), f"a Host bug: {reason}"
        assert "Traceback" not in reason, reason
    # The Switcher's code and the Host's own descriptors are as they were.
    assert bytes(host.switcher.pages[:len(SWITCHER_CODE)]) == SWITCHER_CODE, "the Switcher's code changed"
    for index, value in enumerate(host.switcher.gdt):
        if index >= abi.FIRST_GUEST_GDT_ENTRY and value:
            assert value >> 44 & 1, f"GDT entry {index} is a system descriptor: {value:#x}"
            assert value >> 45 & 3, f"GDT entry {index} has DPL 0: {value:#x}"
    # The shadow tables map nothing but guest memory, device windows and the Switcher.
    pages, size = host.pages, host.memory.size
    words = pages.words
    for index in range(SWITCHER_PAGES):
        assert words[index] & ~ACCESSED == abi.SWITCHER_ADDR + index * abi.PAGE_SIZE | PRESENT, \
            f"the Switcher's shadow entry {index} is {words[index]:#x}"
    for pgdir, directory in pages.shadows.items():
        assert words[directory * 1024 + SWITCHER_PDE] & ~ACCESSED == POOL_ADDRESS | PRESENT | WRITABLE
        for index in range(SWITCHER_PDE):
            entry = words[directory * 1024 + index]
            if not entry & PRESENT:
                continue
            table = pages.tables[pgdir].get(index)
            assert table is not None and entry & ~ACCESSED == POOL_ADDRESS + table * abi.PAGE_SIZE | PRESENT | WRITABLE | USER, \
                f"shadow directory entry {index} is {entry:#x}"
            for slot in range(1024):
                pte = words[table * 1024 + slot]
                if pte & PRESENT:
                    frame = pte & 0xFFFFF000
                    assert frame + abi.PAGE_SIZE <= size or any(
                        base <= frame < base + length for base, length in pages.windows), \
                        f"a shadow entry maps {frame:#x}, outside guest memory"
    # No thread of the Host's outlives its run.
    deadline = threading.Event()
    for _ in range(100):
        if threading.active_count() <= threads:
            break
        deadline.wait(0.01)
    assert threading.active_count() <= threads, "a Host thread outlived the run"


def resident_kib() -> int:
    """This process's resident memory, in KiB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


class Tally:
    """Outcomes by kind, for the suite's summary and the soak's report."""

    def __init__(self):
        self.kinds: Counter[str] = Counter()

    def add(self, kind: str) -> None:
        self.kinds[kind] += 1

    def total(self) -> int:
        return sum(self.kinds.values())

    def report(self, stream=sys.stdout, top: int = 40) -> None:
        print(f"{self.total()} hostile cases", file=stream)
        for kind, count in self.kinds.most_common(top):
            print(f"{count:8}  {kind}", file=stream)
        rest = len(self.kinds) - top
        if rest > 0:
            print(f"{'':8}  ... and {rest} rarer kinds", file=stream)


TALLY = Tally()  # every case this process ran, for the test run's summary


__all__ = ["TALLY", "elf_of", "KIND_OPS", "OPS", "ops_of", "Case", "Devices", "Op", "Tally", "build", "cases", "check_host",
           "encode", "kind_of", "resident_kib", "run_case"]
