# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/memory.py» book/launcher.md:289 @20c7ef46
"""Guest memory: one mmap, seen by the CPU and by Python alike."""

from __future__ import annotations

import ctypes
import mmap
import threading

from unicorn import UC_PROT_ALL, Uc
from unicorn.unicorn_py3.unicorn import uclib

from .abi import PAGE_SIZE

# «Forgetting translations» book/launcher.md:271 @21fbe2e4
STALE_RANGES = 64  # written ranges remembered before the CPU forgets everything instead


def forget_range_function():
    """Unicorn's own function that forgets the code translated from a physical range, or None."""
    function = getattr(uclib, "tb_invalidate_phys_range_x86_64", None)
    if function is not None:
        function.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint64]
        function.restype = None
    return function


FORGET_RANGE = forget_range_function()
# «/Forgetting translations»


# «Guest memory» book/launcher.md:112 @4b396300
class GuestMemoryError(ValueError):
    """An access that does not fit inside guest memory."""


class GuestMemory:
    """Guest-physical memory: an anonymous mmap, shared with Unicorn without copies."""

    def __init__(self, size: int):
        if size <= 0 or size % PAGE_SIZE:
            raise ValueError(f"guest memory must be a positive number of pages, not {size} bytes")
        self.size = size
        self.buffer = mmap.mmap(-1, size)
        self.view = memoryview(self.buffer)
        self.cpu: Uc | None = None  # the CPU that translates code out of this memory, once mapped
        self.stale: list[list[int]] = []  # [start, end) ranges written since the CPU last heard
        self.stale_everywhere = False  # too many ranges: the CPU forgets every translation
        self.stale_lock = threading.Lock()

    def map_into(self, uc: Uc, address: int = 0) -> None:
        """Show this memory to the CPU at ``address``, without copying it."""
        if next(iter(uc.mem_regions()), None) is not None:
            raise ValueError("guest memory must be the first memory its CPU maps")
        pointer = ctypes.addressof(ctypes.c_char.from_buffer(self.buffer))
        uc.mem_map_ptr(address, self.size, UC_PROT_ALL, pointer)
        self.cpu = uc

    def contains(self, address: int, length: int) -> bool:
        return 0 <= address and 0 <= length and address + length <= self.size

    def check(self, address: int, length: int) -> None:
        if not self.contains(address, length):
            raise GuestMemoryError(f"{length} bytes at {address:#x} are outside guest memory")

    def read(self, address: int, length: int) -> bytes:
        self.check(address, length)
        return bytes(self.view[address:address + length])

    def write(self, address: int, data: bytes) -> None:
        self.check(address, len(data))
        self.view[address:address + len(data)] = data
        self.wrote(address, len(data))

    def read_u32(self, address: int) -> int:
        self.check(address, 4)
        return int.from_bytes(self.view[address:address + 4], "little")

    def write_u32(self, address: int, value: int) -> None:
        self.check(address, 4)
        self.view[address:address + 4] = (value & 0xFFFFFFFF).to_bytes(4, "little")
        self.wrote(address, 4)

    def read_string(self, address: int, limit: int) -> str:
        """A NUL-terminated string of at most ``limit`` bytes, decoded leniently."""
        self.check(address, 1)
        end = min(address + limit, self.size)
        data = bytes(self.view[address:end])
        return data.split(b"\0", 1)[0].decode("utf-8", "replace")


    # «What the CPU has not been told» book/launcher.md:215 @23785e29
    def wrote(self, address: int, length: int) -> None:
        """The Host wrote these bytes behind the CPU's back; any thread may say so."""
        if self.cpu is None or length <= 0 or self.stale_everywhere:
            return
        end = address + length
        with self.stale_lock:
            last = self.stale[-1] if self.stale else None
            if last is not None and address <= last[1] and last[0] <= end:
                last[0], last[1] = min(last[0], address), max(last[1], end)
            elif len(self.stale) < STALE_RANGES:
                self.stale.append([address, end])
            else:
                self.stale_everywhere = True
                self.stale.clear()

    def settle(self) -> None:
        """On the CPU's own thread: make the CPU forget what it translated from written bytes."""
        if not self.stale and not self.stale_everywhere:
            return
        with self.stale_lock:
            ranges, self.stale = self.stale, []
            everywhere, self.stale_everywhere = self.stale_everywhere, False
        if everywhere or FORGET_RANGE is None:
            self.cpu.ctl_flush_tb()
            return
        engine = self.cpu._uch
        for start, end in ranges:
            FORGET_RANGE(engine, start, end)
    # «/What the CPU has not been told»
# «/Guest memory»
# «/src/lguest/memory.py»
