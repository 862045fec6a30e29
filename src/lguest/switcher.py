# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/switcher.py» book/switcher-shadows.md:817 @46b4fed9
"""The Switcher: its pages at the top of every address space, and the way into the guest."""

from __future__ import annotations

import ctypes
import functools
import mmap
import os
import struct
from typing import Callable

from unicorn import UC_ARCH_X86, UC_HOOK_INTR, UC_MODE_32, UC_PROT_ALL, Uc
from unicorn.unicorn_py3.unicorn import uclib
from unicorn.x86_const import (UC_X86_REG_CR0, UC_X86_REG_CR3, UC_X86_REG_CS, UC_X86_REG_DS,
                               UC_X86_REG_EAX, UC_X86_REG_EBP, UC_X86_REG_EBX, UC_X86_REG_ECX,
                               UC_X86_REG_EDI, UC_X86_REG_EDX, UC_X86_REG_EFLAGS, UC_X86_REG_ES,
                               UC_X86_REG_EIP, UC_X86_REG_ESI, UC_X86_REG_ESP, UC_X86_REG_FS,
                               UC_X86_REG_GDTR, UC_X86_REG_GS, UC_X86_REG_SS)

from .abi import GDT_ENTRIES, KERNEL_CS, KERNEL_DS, PAGE_SIZE, SWITCHER_ADDR, USER_CS, USER_DS

from .switcher_build import (CODE_ADDRESS, GDT_ADDRESS, REGS_ADDRESS, SWITCHER_PAGES,
                             SwitcherError, switcher_code)

# «The Switcher's pages» book/switcher.md:147 @f9717287
# «Ring 0's segments and the guest's control bits» book/host.md:328 @98994177
HOST_CS, HOST_DS = 1 << 3, 2 << 3  # the Host's own ring-0 segments, GDT entries 1 and 2
CR0_PE, CR0_MP, CR0_TS, CR0_ET, CR0_NE, CR0_WP, CR0_PG = (
    1 << 0, 1 << 1, 1 << 3, 1 << 4, 1 << 5, 1 << 16, 1 << 31)
CR0_GUEST = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG


def descriptor(base: int, limit: int, access: int, flags: int = 0xC) -> int:
    """A segment descriptor, with its Accessed bit already set."""
    return ((limit & 0xFFFF) | (base & 0xFFFFFF) << 16 | (access | 1) << 40
            | (limit >> 16 & 0xF) << 48 | flags << 52 | (base >> 24 & 0xFF) << 56)
# «/Ring 0's segments and the guest's control bits»


FRAME = ("gs", "fs", "es", "ds", "edi", "esi", "ebp", "unused", "ebx", "edx", "ecx", "eax",
         "eip", "cs", "eflags", "esp", "ss")
# «/The Switcher's pages»


# «The way in» book/switcher.md:316 @d44f1321
class Switcher:
    """The Switcher's pages, the GDT that lives in them, and the way into the guest."""

    def __init__(self, uc: Uc):
        self.uc = uc
        self.pages = mmap.mmap(-1, SWITCHER_PAGES * PAGE_SIZE)
        pointer = ctypes.addressof(ctypes.c_char.from_buffer(self.pages))
        uc.mem_map_ptr(SWITCHER_ADDR, SWITCHER_PAGES * PAGE_SIZE, UC_PROT_ALL, pointer)
        code = switcher_code()
        self.pages[0:len(code)] = code
        self.stop_address = CODE_ADDRESS + len(code) - 2  # the ud2
        self.gdt = [0] * GDT_ENTRIES
        self.gdt[HOST_CS >> 3] = descriptor(0, 0xFFFFF, 0x9A)
        self.gdt[HOST_DS >> 3] = descriptor(0, 0xFFFFF, 0x92)
        self.gdt[KERNEL_CS >> 3] = descriptor(0, 0xFFFFF, 0xBA)
        self.gdt[KERNEL_DS >> 3] = descriptor(0, 0xFFFFF, 0xB2)
        self.gdt[USER_CS >> 3] = descriptor(0, 0xFFFFF, 0xFA)
        self.gdt[USER_DS >> 3] = descriptor(0, 0xFFFFF, 0xF2)
        self.write_gdt()
        self.contexts: dict[tuple[int, bool], object] = {}  # saved Unicorn contexts
        self.loaded_cr3: int | None = None

    def write_gdt(self) -> None:
        struct.pack_into(f"<{GDT_ENTRIES}Q", self.pages, GDT_ADDRESS - SWITCHER_ADDR, *self.gdt)

    def enter(self, frame: list[int], cr3: int, ts: bool, flush: bool) -> None:
        """Leave the CPU at the Switcher's entry, clean, with ``frame`` ready to pop."""
        context = self.contexts.get((cr3, ts))
        if context is None:
            context = self.contexts[(cr3, ts)] = self._clean_context(cr3, ts)
        self.uc.context_restore(context)
        if flush or cr3 != self.loaded_cr3:
            self.uc.reg_write(UC_X86_REG_CR3, cr3)
            self.loaded_cr3 = cr3
        struct.pack_into(f"<{len(FRAME)}I", self.pages, REGS_ADDRESS - SWITCHER_ADDR, *frame)

    def _clean_context(self, cr3: int, ts: bool) -> object:
        uc = self.uc
        if self.contexts:  # start from a clean ring-0 state: the guest's would refuse HOST_CS
            uc.context_restore(next(iter(self.contexts.values())))
        else:
            uc.reg_write(UC_X86_REG_GDTR, (0, GDT_ADDRESS, GDT_ENTRIES * 8 - 1, 0))
            uc.reg_write(UC_X86_REG_CS, HOST_CS)
            for register in (UC_X86_REG_SS, UC_X86_REG_DS, UC_X86_REG_ES):
                uc.reg_write(register, HOST_DS)
        uc.reg_write(UC_X86_REG_CR3, cr3)
        uc.reg_write(UC_X86_REG_CR0, CR0_GUEST | (CR0_TS if ts else 0))
        uc.reg_write(UC_X86_REG_EFLAGS, 0x2)
        self.loaded_cr3 = cr3
        return uc.context_save()
# «/The way in»


# «The register file» book/switcher.md:466 @90ca5c65
GPRS = ("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi")
GPR_IDS = (UC_X86_REG_EAX, UC_X86_REG_ECX, UC_X86_REG_EDX, UC_X86_REG_EBX,
           UC_X86_REG_ESP, UC_X86_REG_EBP, UC_X86_REG_ESI, UC_X86_REG_EDI)
HYPERCALL_ORDER = ("eax", "ecx", "edx", "ebx", "esi", "cs")  # the call, its arguments, its ring
PROBES = (  # (instruction, %cs to run it with, the error code it raises, whether it is an int)
    ("8e1d00300000", HOST_CS, 0x78, 0),  # mov ds, [0x3000] holding 0x78: #GP(0x78)
    ("8e1d00300000", 3 << 3, 0x80, 0),  # the same through another code segment: #GP(0x80)
    ("cd30", HOST_CS, 0, 1),  # int $0x30: no error code, and %eip after the instruction
)


def probe_context_layout() -> dict[str, int]:
    """Where Unicorn's saved context keeps each register, found by experiment."""
    found: dict[str, set[int]] = {}
    for trial, (instruction, cs, selector, is_int) in enumerate(PROBES):
        uc = Uc(UC_ARCH_X86, UC_MODE_32)
        uc.mem_map(0, 0x10000)
        uc.mem_write(0x1000, struct.pack("<4Q", 0, descriptor(0, 0xFFFFF, 0x9A),
                                         descriptor(0, 0xFFFFF, 0x92), descriptor(0, 0xFFFFF, 0x9A)))
        uc.reg_write(UC_X86_REG_GDTR, (0, 0x1000, 31, 0))
        uc.reg_write(UC_X86_REG_CS, cs)
        uc.reg_write(UC_X86_REG_SS, HOST_DS)
        uc.mem_write(0x3000, struct.pack("<H", selector))
        code, length = 0x2137 + 0x301 * trial, len(instruction) // 2
        uc.mem_write(code, bytes.fromhex(instruction))
        values = {name: 0x5EED0000 + 0x1111 * (index + 1) + trial for index, name in enumerate(GPRS)}
        for name, register in zip(GPRS, GPR_IDS):
            uc.reg_write(register, values[name])
        values.update(eip=code + length * is_int, error_code=selector, cs=cs, is_int=is_int)
        saved = {}

        def trap(uc: Uc, vector: int, _) -> None:
            context = uc.context_save()
            saved["raw"] = ctypes.string_at(ctypes.cast(context.context, ctypes.c_void_p).value,
                                            context.size)
            uc.emu_stop()

        uc.hook_add(UC_HOOK_INTR, trap)
        uc.emu_start(code, code + length)
        for name, value in values.items():
            offsets = {offset for offset in range(0, len(saved["raw"]) - 3, 4)
                       if struct.unpack_from("<I", saved["raw"], offset)[0] == value}
            found[name] = found[name] & offsets if name in found else offsets
    missing = [name for name, offsets in found.items() if not offsets]
    if missing:
        raise SwitcherError(f"cannot find {', '.join(missing)} in Unicorn's saved context")
    return {name: min(offsets) for name, offsets in found.items()}


LAYOUT = probe_context_layout()


READ_BATCH = ctypes.PyDLL(uclib._name).uc_reg_read_batch  # no argtypes: see below
FRAME_REGISTERS = tuple({"gs": UC_X86_REG_GS, "fs": UC_X86_REG_FS, "es": UC_X86_REG_ES,
                         "ds": UC_X86_REG_DS, "eip": UC_X86_REG_EIP, "cs": UC_X86_REG_CS,
                         "eflags": UC_X86_REG_EFLAGS, "ss": UC_X86_REG_SS, "unused": UC_X86_REG_ESP,
                         **dict(zip(GPRS, GPR_IDS))}[name] for name in FRAME)


HYPERCALL_REGISTERS = {**dict(zip(GPRS, GPR_IDS)), "cs": UC_X86_REG_CS}


class RegisterBatch:
    """Several registers in one trip into Unicorn: ``read()`` fetches, ``unpack()`` hands out."""

    def __init__(self, uc: Uc, registers: tuple[int, ...]):
        count = len(registers)
        self._ids = (ctypes.c_int * count)(*registers)
        self._words = (ctypes.c_uint64 * count)()
        self._pointers = (ctypes.c_void_p * count)(
            *(ctypes.addressof(self._words) + 8 * index for index in range(count)))
        self.read = functools.partial(READ_BATCH, uc._uch, self._ids, self._pointers, count)
        self.unpack = functools.partial(struct.Struct(f"<{count}Q").unpack_from, self._words)

    def __call__(self) -> tuple[int, ...]:
        self.read()
        return self.unpack()


def find_live_cpu(uc: Uc, reach: int = 1 << 16, span: int = 1 << 12) -> int | None:
    """Where ``uc`` keeps the CPU it is running, found by experiment; None if not found."""
    saved = [uc.reg_read(register) for register in GPR_IDS]

    def plant(trial: int) -> list[int]:
        values = [0x5EED0000 + 0x1111 * (index + 1) + trial for index in range(len(GPRS))]
        for register, value in zip(GPR_IDS, values):
            uc.reg_write(register, value)
        return values

    def holds(window: bytes, base: int, values: list[int]) -> bool:
        return all(base + LAYOUT[name] + 4 <= len(window) and
                   struct.unpack_from("<I", window, base + LAYOUT[name])[0] == value
                   for name, value in zip(GPRS, values))

    try:
        memory = os.open("/proc/self/mem", os.O_RDONLY)  # reads that fail, not crash
    except OSError:
        return None
    try:
        values = plant(0)
        first = struct.pack("<I", values[0])
        for (pointer,) in struct.iter_unpack("<Q", os.pread(memory, span, uc._uch.value)):
            if pointer < 0x10000 or pointer % 8 or pointer >= 1 << 47:
                continue  # not a pointer into user space
            try:
                window = os.pread(memory, reach, pointer)
            except OSError:
                continue
            at = window.find(first)
            while at >= 0:
                base = at - LAYOUT["eax"]
                if base >= 0 and base % 8 == 0 and holds(window, base, values):
                    moved = plant(1)
                    if holds(os.pread(memory, reach, pointer), base, moved):
                        return pointer + base  # it changed when the CPU did: the live one
                    values = plant(0)  # a copy that stood still; look further
                at = window.find(first, at + 1)
        return None
    finally:
        os.close(memory)
        for register, value in zip(GPR_IDS, saved):
            uc.reg_write(register, value)


def hypercall_reader(uc: Uc) -> Callable[[], tuple[int, ...]]:
    """``read()`` hands out the registers of HYPERCALL_ORDER, straight from the live CPU if we can."""
    offsets = [LAYOUT[name] for name in HYPERCALL_ORDER]
    cpu = find_live_cpu(uc) if offsets == sorted(offsets) else None
    if cpu is None:  # an unfamiliar Unicorn, or no /proc: the batch call, which always works
        return RegisterBatch(uc, tuple(HYPERCALL_REGISTERS[name] for name in HYPERCALL_ORDER))
    layout, position = "<", 0
    for offset in offsets:
        layout, position = layout + f"{offset - position}xI", offset + 4
    return functools.partial(struct.Struct(layout).unpack_from,
                             (ctypes.c_char * position).from_address(cpu))


class RegisterFile:
    """The guest's registers, read in bulk: by batch, or through one reused saved context."""

    def __init__(self, uc: Uc):
        self.uc = uc
        self.context = uc.context_save()
        base = ctypes.cast(self.context.context, ctypes.c_void_p).value
        self.words = {name: ctypes.c_uint32.from_address(base + offset) for name, offset in LAYOUT.items()}
        self.hypercall = hypercall_reader(uc)  # the call number, four arguments and %cs: HYPERCALL_ORDER
        self.frame = RegisterBatch(uc, FRAME_REGISTERS)  # the guest's frame, in the Switcher's order

    def load(self) -> None:
        """Copy the CPU's state into the reused context, in one call into C."""
        self.uc.context_update(self.context)

    def __getitem__(self, name: str) -> int:
        return self.words[name].value
# «/The register file»
# «/src/lguest/switcher.py»
