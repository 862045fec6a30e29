# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/host/interrupts.py»[2] book/switcher.md:833 @ece7d7d3
"""Interrupts and traps: the frames the Host pushes on the guest's behalf."""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass
from typing import Callable

from ..abi import (FIRST_EXTERNAL_VECTOR, HYPERCALL_VECTOR, IRQ_LINES, KERNEL_CS, LGUEST_DATA,
                   X86_EFLAGS_IF)
from ..switcher import FRAME
from .brake import WHEN_ENABLED

EIP, CS, EFLAGS, ESP, SS = (FRAME.index(name) for name in ("eip", "cs", "eflags", "esp", "ss"))
EFLAGS_TF, EFLAGS_NT = 0x100, 0x4000
WORDS = [struct.Struct(f"<{count}I") for count in range(7)]  # a frame is at most six words

# «Gates» book/host-interrupts.md:158 @702a0fd6
INTERRUPT_GATE, TRAP_GATE = 0xE, 0xF
GENERAL_PROTECTION = 13
HYPERCALL_DPL = 1  # as in lguest: the kernel at ring 1 may make hypercalls, its programs may not
ONE_BYTE_INTS = {3: 0xCC, 4: 0xCE}  # int3 and into; every other int is two bytes, CD and the vector
ERROR_CODE_VECTORS = frozenset({8, 10, 11, 12, 13, 14, 17})
RESERVED_VECTORS = frozenset({2, 8, 15, HYPERCALL_VECTOR})
TRAP_NAMES = {0: "divide error", 1: "debug", 3: "breakpoint", 4: "overflow", 5: "bound range",
              6: "invalid opcode", 7: "device not available", 8: "double fault",
              10: "invalid TSS", 11: "segment not present", 12: "stack fault",
              13: "general protection", 14: "page fault", 16: "x87 error",
              17: "alignment check", 18: "machine check", 19: "SIMD error",
              HYPERCALL_VECTOR: "hypercall"}


@dataclass(frozen=True)
class Gate:
    offset: int  # the handler, always in KERNEL_CS: the guest's selector is not kept
    kind: int  # INTERRUPT_GATE or TRAP_GATE
    dpl: int  # the outermost ring whose int instructions may come through


def decode_gate(vector: int, low: int, high: int, kill: Callable) -> Gate | None:
    """The gate in an IDT entry's two words, or None if it is not present."""
    if not high & 0x8000:
        return None
    kind = high >> 8 & 0xF
    if kind not in (INTERRUPT_GATE, TRAP_GATE):
        kill(f"bad IDT type {kind} for vector {vector}")
    return Gate(high & 0xFFFF0000 | low & 0xFFFF, kind, high >> 13 & 3)
# «/Gates»


# «The interrupt controller» book/host-interrupts.md:465 @0b0b8ff7
class Interrupts:
    """The guest's interrupt table, its pending lines, and delivery."""

    def __init__(self, host):
        self.host = host
        self.idt: dict[int, Gate] = {}
        self.pending = 0
        self.handled = 0  # a bit for each line whose vector has a handler
        self.lock = threading.Lock()  # lines are raised from other threads too
        self.last_vector: int | None = None

    def load_idt_entry(self, vector: int, low: int, high: int) -> None:
        if not 0 <= vector < 256:
            self.host.kill(f"bad IDT vector {vector}")
        if vector in RESERVED_VECTORS:
            return
        gate = decode_gate(vector, low, high, self.host.kill)
        if gate is None:
            self.idt.pop(vector, None)
        else:
            self.idt[vector] = gate
        self.handled = sum(1 << vector - FIRST_EXTERNAL_VECTOR for vector in self.idt
                           if FIRST_EXTERNAL_VECTOR <= vector < FIRST_EXTERNAL_VECTOR + IRQ_LINES)

    def raise_irq(self, line: int) -> None:
        with self.lock:
            self.pending |= 1 << line

    # «Which interrupt, if any» book/host-interrupts.md:206 @0131aca9
    def deliverable(self) -> int | None:
        """The lowest pending, unblocked line, if the guest can take it now."""
        data, memory = self.host.lguest_data, self.host.memory
        if not self.pending or data is None:
            return None
        lines = self.pending & self.handled & ~memory.read_u32(data + LGUEST_DATA["blocked_interrupts"])
        if not lines:
            return None
        if not memory.read_u32(data + LGUEST_DATA["irq_enabled"]) & X86_EFLAGS_IF:
            memory.write_u32(data + LGUEST_DATA["irq_pending"], 1)
            self.host.brake.pull(WHEN_ENABLED)  # and stop the guest as soon as it turns them on
            return None
        noirq_iret = memory.read_u32(data + LGUEST_DATA["noirq_iret"])
        if self.host.regs[EIP] == noirq_iret:  # not now: stop again just after that iret
            self.host.brake.hold_at(noirq_iret)
            self.host.brake.pull()
            return None
        return (lines & -lines).bit_length() - 1
    # «/Which interrupt, if any»

    # «Deliver interrupts and traps» book/host-interrupts.md:438 @77d42a80
    def deliver_pending(self) -> bool:
        line = self.deliverable()
        if line is None:
            return False
        vector = FIRST_EXTERNAL_VECTOR + line
        gate = self.idt[vector]
        with self.lock:
            self.pending &= ~(1 << line)
        data = self.host.lguest_data
        self.host.memory.write_u32(data + LGUEST_DATA["irq_pending"], 1 if self.pending else 0)
        self.push_frame(vector, gate, None)
        return True


    def deliver_trap(self, vector: int, error_code: int | None) -> None:
        gate = self.idt.get(vector)
        if gate is None:
            name = TRAP_NAMES.get(vector, f"vector {vector}")
            self.host.kill(f"unhandled trap {vector} ({name}) at {self.host.regs[EIP]:#x}")
        self.push_frame(vector, gate, error_code)
    # «/Deliver interrupts and traps»

    # «Push a frame» book/host-interrupts.md:380 @e2a85fc3
    def push_frame(self, vector: int, gate: Gate, error_code: int | None) -> None:
        host = self.host
        regs, data = host.regs, host.lguest_data
        virtual_if = host.memory.read_u32(data + LGUEST_DATA["irq_enabled"]) & X86_EFLAGS_IF if data else 0
        eflags = regs[EFLAGS] & ~X86_EFLAGS_IF | virtual_if
        frame = [regs[EIP], regs[CS], eflags]  # as it will lie in memory, lowest address first
        if regs[CS] & 3 == 3:  # from user mode: onto the kernel stack
            ss, esp = host.kernel_stack
            frame += [regs[ESP], regs[SS]]
        else:
            ss, esp = regs[SS], regs[ESP]
        if error_code is not None:
            frame.insert(0, error_code)
        memory, translate = host.memory, host.pages.translate
        while frame:  # a page at a time, from the top, as the CPU pushes
            top = esp - 4 & 0xFFFFFFFF  # where the next word goes
            address = translate(top, write=True)
            if address is None:
                host.kill(f"fault while delivering trap {vector}: the stack at {top:#x} is not writable")
            if top & 0xFFF > 0xFFC:  # a misaligned word astride a page boundary
                self._push_astride(vector, top, address, frame.pop())
                esp = top
                continue
            count = min(len(frame), (top & 0xFFF) // 4 + 1)  # the words that fit in top's page
            esp = top - 4 * (count - 1)
            WORDS[count].pack_into(memory.view, address - 4 * (count - 1), *frame[-count:])
            memory.wrote(address - 4 * (count - 1), 4 * count)
            del frame[-count:]
        regs[SS], regs[ESP], regs[CS], regs[EIP] = ss, esp, KERNEL_CS, gate.offset  # lguest's rule
        regs[EFLAGS] = eflags & ~(EFLAGS_TF | EFLAGS_NT) | X86_EFLAGS_IF
        if gate.kind == INTERRUPT_GATE and data is not None:
            host.memory.write_u32(data + LGUEST_DATA["irq_enabled"], 0)
        self.last_vector = vector


    def _push_astride(self, vector: int, top: int, address: int, word: int) -> None:
        """Write a word whose first bytes end one page and whose last bytes begin the next."""
        cut = 0x1000 - (top & 0xFFF)  # how many bytes fit below the boundary
        above = self.host.pages.translate(top + cut & 0xFFFFFFFF, write=True)
        if above is None:
            self.host.kill(f"fault while delivering trap {vector}: "
                           f"the stack at {top + cut & 0xFFFFFFFF:#x} is not writable")
        data, view = word.to_bytes(4, "little"), self.host.memory.view
        view[address:address + cut] = data[:cut]
        view[above:above + 4 - cut] = data[cut:]
    # «/Push a frame»
# «/The interrupt controller»
# «The interrupt controller»[2] book/switcher-shadows.md:691 @7d22b976
    # «Software interrupts» book/switcher-shadows.md:639 @7f21333e
    def deliver_software(self, vector: int) -> None:
        """An int $n, int3 or into: through the gate if its DPL lets the caller in, else a #GP."""
        regs = self.host.regs
        gate = self.idt.get(vector)
        dpl = HYPERCALL_DPL if vector == HYPERCALL_VECTOR else gate.dpl if gate else 0
        if regs[CS] & 3 <= dpl:
            self.deliver_trap(vector, None)  # never an error code, whatever the vector
            return
        regs[EIP] = regs[EIP] - self._int_length(vector) & 0xFFFFFFFF  # back onto the int
        self.deliver_trap(GENERAL_PROTECTION, vector << 3 | 2)  # the IDT bit, and the vector


    def _int_length(self, vector: int) -> int:
        """How far back from %eip the int instruction that raised ``vector`` begins."""
        eip = self.host.regs[EIP]
        if vector in ONE_BYTE_INTS:
            address = self.host.pages.translate(eip - 1 & 0xFFFFFFFF, write=False)
            if address is not None and self.host.memory.view[address] == ONE_BYTE_INTS[vector]:
                return 1
        return 2
    # «/Software interrupts»
# «/The interrupt controller»
# «/src/lguest/host/interrupts.py»
