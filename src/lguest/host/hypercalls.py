# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/host/hypercalls.py» book/host.md:1243 @55825184
"""Hypercalls: the guest asks, the Host answers (or kills it)."""

from __future__ import annotations

import struct
import threading
from typing import BinaryIO, Callable

from ..abi import (ASYNC_DONE, ASYNC_READY, ASYNC_SLOTS, CONSOLE_EOF, CONSOLE_IRQ, HYPERCALLS,
                   LGUEST_DATA, LGUEST_DATA_SIZE, PAGE_OFFSET, SHUTDOWN_POWEROFF,
                   SHUTDOWN_RESTART, SWITCHER_ADDR)
from .segments import guest_descriptor

# «The hypercall table» book/host.md:897 @afc4197c
HANDLERS: dict[int, Callable] = {}
IN_HOOK: dict[int, Callable] = {}  # the handlers that may run inside the trap hook


def hypercall(name: str, in_hook: bool = False) -> Callable:
    """Register the decorated function as the handler of hypercall ``name``."""
    def register(function: Callable) -> Callable:
        HANDLERS[HYPERCALLS[name]] = function
        if in_hook:
            IN_HOOK[HYPERCALLS[name]] = function
        return function
    return register


class Shutdown(Exception):
    """The guest asked to power off or restart."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind, self.message = kind, message


def do_hypercall(host, number: int, a1: int, a2: int, a3: int, a4: int) -> int | None:
    """Serve one call; the result, if the call has one, goes back in %eax."""
    if host.lguest_data is None and number != HYPERCALLS["LGUEST_INIT"]:
        host.kill(f"hypercall {number} before LGUEST_INIT")
    handler = HANDLERS.get(number)
    if handler is None:
        host.kill(f"bad hypercall {number}")
    return handler(host, a1, a2, a3, a4)
# «/The hypercall table»


# «The asynchronous ring» book/host.md:947 @96d8e25e
ASYNC_CALL = struct.Struct("<5I")  # a slot: the call number and four arguments


def run_async(host) -> None:
    """Run every queued call in the guest's ring, in order."""
    view, data = host.memory.view, host.lguest_data
    status, calls = data + LGUEST_DATA["async_status"], data + LGUEST_DATA["async_calls"]
    slot, ran = host.next_async, 0
    for ran in range(ASYNC_SLOTS):
        if view[status + slot] != ASYNC_READY:
            break
        do_hypercall(host, *ASYNC_CALL.unpack_from(view, calls + 20 * slot))
        view[status + slot] = ASYNC_DONE
        slot = host.next_async = (slot + 1) % ASYNC_SLOTS
    else:
        ran = ASYNC_SLOTS
    if ran:  # status bytes written behind the CPU's back: say so once, not once a slot
        host.memory.wrote(status, ASYNC_SLOTS)


@hypercall("FLUSH_ASYNC")
def flush_async(host, *_) -> None:
    """The ring was drained on the way in; there is nothing more to do."""
# «/The asynchronous ring»


# «Init and shutdown» book/host.md:992 @0b1ebb13
@hypercall("LGUEST_INIT", in_hook=True)
def lguest_init(host, address, *_) -> None:
    if host.lguest_data is not None:
        host.kill("LGUEST_INIT called twice")
    if address % 4 or not host.memory.contains(address, LGUEST_DATA_SIZE):
        host.kill(f"bad lguest_data address {address:#x}")
    kernel_address = host.memory.read_u32(address + LGUEST_DATA["kernel_address"])
    if kernel_address > SWITCHER_ADDR:
        host.kill(f"bad kernel_address {kernel_address:#x}: the Switcher's is the top 4 MiB")
    host.lguest_data = address
    host.pages.kernel_address = kernel_address or PAGE_OFFSET
    host.brake.watch(address + LGUEST_DATA["irq_enabled"])
    host.memory.write_u32(address + LGUEST_DATA["reserve_mem"], (1 << 32) - SWITCHER_ADDR)
    status = address + LGUEST_DATA["async_status"]
    host.memory.write(status, bytes([ASYNC_DONE]) * ASYNC_SLOTS)
    host.update_time()


@hypercall("SHUTDOWN")
def shutdown(host, message, reason, *_) -> None:
    text = host.memory.read_string(message, 256) if host.memory.contains(message, 1) else ""
    if reason == SHUTDOWN_POWEROFF:
        raise Shutdown("poweroff", text)
    if reason == SHUTDOWN_RESTART:
        raise Shutdown("restart", text)
    host.kill(f"bad shutdown reason {reason}")
# «/Init and shutdown»


# «The rest of the table» book/host.md:1036 @930a2eed
# «Page-table hypercalls»[2] book/switcher-shadows.md:359 @3e6db1bf
@hypercall("NEW_PGTABLE")
def new_pgtable(host, pgdir, *_) -> None:
    host.pages.new_pgtable(pgdir)


@hypercall("FLUSH_TLB")
def flush_tlb(host, everything, *_) -> None:
    host.pages.flush_tlb(bool(everything))


@hypercall("SET_PTE")
def set_pte(host, pgdir, vaddr, pte, *_) -> None:
    host.pages.set_pte(pgdir, vaddr)


@hypercall("SET_PGD")
def set_pgd(host, pgdir, index, *_) -> None:
    if index >= 1024:
        host.kill(f"bad page directory index {index}")
    host.pages.set_pgd(pgdir, index)
# «/Page-table hypercalls»


@hypercall("LOAD_IDT_ENTRY", in_hook=True)
def load_idt_entry(host, vector, low, high, *_) -> None:
    host.interrupts.load_idt_entry(vector, low, high)


# «Load a GDT entry»[2] book/switcher.md:1033 @6f7aba91
@hypercall("LOAD_GDT_ENTRY", in_hook=True)
def load_gdt_entry(host, index, low, high, *_) -> None:
    host.switcher.gdt[index] = guest_descriptor(index, low, high, host.kill)
    host.switcher.write_gdt()
# «/Load a GDT entry»


# «Set the kernel stack» book/host.md:1114 @dc948c95
@hypercall("SET_STACK", in_hook=True)
def set_stack(host, segment, top, pages, *_) -> None:
    if segment & 3 != 1:
        host.kill(f"bad stack segment {segment:#x}")
    if not 0 < pages <= 16:
        host.kill(f"bad stack size of {pages} pages")
    host.kernel_stack = (segment, top)
# «/Set the kernel stack»


@hypercall("TS")
def task_switched(host, value, *_) -> None:
    host.ts = bool(value)


@hypercall("SET_CLOCKEVENT", in_hook=True)
def set_clockevent(host, nanoseconds, _b, _c, _d) -> None:
    if not nanoseconds:
        host.deadline = None
        return
    host.deadline = host.clock.now() + nanoseconds
    host.wake_timer()


@hypercall("HALT")
def halt(host, *_) -> None:
    host.halted = True


@hypercall("SEND_INTERRUPTS")
def send_interrupts(host, *_) -> None:
    """Pending interrupts are delivered on the way back in, which is now."""


@hypercall("CONSOLE_WRITE", in_hook=True)
def console_write(host, address, length, *_) -> None:
    if length > 1 << 16:
        host.kill(f"console write of {length} bytes is too long")
    host.console.write(host.memory.read(address, length))
    host.console.flush()


@hypercall("CONSOLE_READ")
def console_read(host, address, room, *_) -> int:
    if room > 1 << 16:
        host.kill(f"console read of {room} bytes is too long")
    host.memory.check(address, room)
    data = host.console_input.read(room) if host.console_input is not None else None
    if data is None:
        return CONSOLE_EOF
    host.memory.write(address, data)
    return len(data)


@hypercall("BEER")
def beer(host, address, room, *_) -> int:
    if room > 1 << 16:
        host.kill(f"a {room}-byte glass is too large, even for a Hero")
    host.memory.check(address, room)
    host.memory.write(address, host.voucher[:room])
    return len(host.voucher)
# «/The rest of the table»


# «The early console» book/host.md:1195 @10a13961
class EarlyConsole:
    """Input for CONSOLE_READ: bytes from a stream, announced on CONSOLE_IRQ."""

    def __init__(self, stream: BinaryIO, deterministic: bool = False):
        self.stream, self.deterministic = stream, deterministic
        self.buffer = bytearray()
        self.ended = False
        self.lock = threading.Lock()

    def start(self, host) -> None:
        if self.deterministic:
            self.buffer += self.stream.read()
            self.ended = True
            if self.buffer:
                host.interrupts.raise_irq(CONSOLE_IRQ)
        else:
            threading.Thread(target=self._reader, args=(host,), daemon=True).start()

    def _reader(self, host) -> None:
        while True:
            try:
                data = self.stream.read1(4096) if hasattr(self.stream, "read1") else self.stream.read(4096)
            except (OSError, ValueError):
                data = b""
            with self.lock:
                self.buffer += data
                self.ended = not data
            host.raise_interrupt(CONSOLE_IRQ)
            if not data:
                return

    def read(self, room: int) -> bytes | None:
        """Up to ``room`` bytes; b"" if none are waiting, None once the input has ended."""
        with self.lock:
            if not self.buffer:
                return None if self.ended else b""
            data = bytes(self.buffer[:room])
            del self.buffer[:room]
            return data

    def may_wake(self) -> bool:
        """Might input still arrive and wake a halted guest?"""
        return not self.ended and not self.deterministic
# «/The early console»
# «/src/lguest/host/hypercalls.py»
