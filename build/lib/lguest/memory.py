# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/memory.py» book/launcher.md:164 @bd75ba93
"""Guest memory: one mmap, seen by the CPU and by Python alike."""

from __future__ import annotations

import ctypes
import mmap

from unicorn import UC_PROT_ALL, Uc

from .abi import PAGE_SIZE

# «Guest memory» book/launcher.md:106 @cdeb357f
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

    def map_into(self, uc: Uc, address: int = 0) -> None:
        """Show this memory to the CPU at ``address``, without copying it."""
        pointer = ctypes.addressof(ctypes.c_char.from_buffer(self.buffer))
        uc.mem_map_ptr(address, self.size, UC_PROT_ALL, pointer)

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

    def read_u32(self, address: int) -> int:
        self.check(address, 4)
        return int.from_bytes(self.view[address:address + 4], "little")

    def write_u32(self, address: int, value: int) -> None:
        self.check(address, 4)
        self.view[address:address + 4] = (value & 0xFFFFFFFF).to_bytes(4, "little")

    def read_string(self, address: int, limit: int) -> str:
        """A NUL-terminated string of at most ``limit`` bytes, decoded leniently."""
        self.check(address, 1)
        end = min(address + limit, self.size)
        data = bytes(self.view[address:end])
        return data.split(b"\0", 1)[0].decode("utf-8", "replace")
# «/Guest memory»
# «/src/lguest/memory.py»
