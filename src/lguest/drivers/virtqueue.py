# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/drivers/virtqueue.py» book/drivers.md:387 @992e41a6
"""Split virtqueues, from the device's side: every number the guest gives is checked."""

from __future__ import annotations

import struct

from ..memory import GuestMemory

# «Ring layout» book/drivers.md:181 @46fb7057
DESC_F_NEXT, DESC_F_WRITE, DESC_F_INDIRECT = 1, 2, 4
AVAIL_F_NO_INTERRUPT = 1  # the driver would rather not be interrupted
MAX_QUEUE_SIZE = 32768  # the largest size the specification allows

DESCRIPTOR = struct.Struct("<QIHH")  # address, length, flags, next
USED_ELEMENT = struct.Struct("<II")  # head of the chain, bytes written
U16 = struct.Struct("<H")


class RingError(Exception):
    """The guest's ring makes no sense: one line that says how."""
# «/Ring layout»


# «A descriptor chain» book/drivers.md:221 @e3adea1b
def window(buffers: list[memoryview], start: int, length: int) -> list[memoryview]:
    """The pieces of ``buffers``, laid end to end, that hold bytes start..start+length."""
    pieces = []
    for buffer in buffers:
        if length <= 0:
            break
        if start >= len(buffer):
            start -= len(buffer)
            continue
        piece = buffer[start:start + length]
        pieces.append(piece)
        length -= len(piece)
        start = 0
    return pieces


class Chain:
    """One descriptor chain: views of guest memory, the readable ones first."""

    def __init__(self, head: int, readable: list[memoryview], writable: list[memoryview],
                 spans: list[tuple[int, int]] = ()):
        self.head = head
        self.readable = readable
        self.writable = writable
        self.spans = spans  # where the writable buffers are: (guest-physical address, length)
        self.readable_size = sum(len(view) for view in readable)
        self.writable_size = sum(len(view) for view in writable)

    def read(self, start: int, length: int) -> bytes:
        """Bytes from the readable buffers, as if they were one."""
        return b"".join(bytes(piece) for piece in window(self.readable, start, length))

    def write(self, start: int, data: bytes) -> int:
        """Scatter ``data`` into the writable buffers from ``start``; return how much fit."""
        done = 0
        for piece in window(self.writable, start, len(data)):
            piece[:] = data[done:done + len(piece)]
            done += len(piece)
        return done
# «/A descriptor chain»


# «The virtqueue» book/drivers.md:286 @6bef80a8
class Virtqueue:
    """One split virtqueue, from the device's side."""

    def __init__(self, index: int, size_max: int):
        self.index, self.size_max = index, size_max
        self.reset()

    def reset(self) -> None:
        self.size = self.size_max
        self.ready = False
        self.desc = self.driver = self.device = 0
        self.next_avail = 0  # the next available entry we have not taken
        self.used_idx = 0  # our own copy of the used ring's index
        self.view: memoryview | None = None

    def layout_problem(self, memory: GuestMemory) -> str | None:
        """Why this queue cannot be used as the driver has set it up, or None."""
        size = self.size
        if not 0 < size <= self.size_max or size & (size - 1):
            return f"size {size} is not a power of two up to {self.size_max}"
        for area, address, length, align in (
                ("descriptor table", self.desc, DESCRIPTOR.size * size, 16),
                ("available ring", self.driver, 6 + 2 * size, 2),
                ("used ring", self.device, 6 + USED_ELEMENT.size * size, 4)):
            if address % align:
                return f"the {area} at {address:#x} is not aligned to {align} bytes"
            if not memory.contains(address, length):
                return f"the {area} at {address:#x} is outside guest memory"
        return None

    def enable(self, memory: GuestMemory) -> None:
        self.memory, self.view = memory, memory.view
        self.next_avail = self.used_idx = 0
        self.ready = True

    def pop(self) -> Chain | None:
        """The next chain the driver has made available, or None."""
        view, size = self.view, self.size
        waiting = (U16.unpack_from(view, self.driver + 2)[0] - self.next_avail) & 0xFFFF
        if not waiting:
            return None
        if waiting > size:
            raise RingError(f"the available index ran {waiting} entries ahead "
                            f"of a ring of {size}")
        slot = self.driver + 4 + 2 * (self.next_avail % size)
        head = U16.unpack_from(view, slot)[0]
        self.next_avail = (self.next_avail + 1) & 0xFFFF
        return self.walk(head)

    def walk(self, head: int) -> Chain:
        readable: list[memoryview] = []
        writable: list[memoryview] = []
        spans: list[tuple[int, int]] = []
        index, seen, memory = head, 0, self.memory
        while True:
            if index >= self.size:
                raise RingError(f"descriptor {index} is beyond the table of {self.size}")
            seen += 1
            if seen > self.size:
                raise RingError(f"the chain from descriptor {head} is longer than "
                                f"the table: it loops")
            address, length, flags, following = DESCRIPTOR.unpack_from(
                self.view, self.desc + DESCRIPTOR.size * index)
            if flags & DESC_F_INDIRECT:
                raise RingError(f"descriptor {index} is indirect, which we never offered")
            if address >= memory.size:
                raise RingError(f"descriptor {index} points at {address:#x}, "
                                f"outside guest memory")
            if not memory.contains(address, length):
                raise RingError(f"descriptor {index}: {length} bytes at {address:#x} "
                                f"run past the end of guest memory")
            buffer = self.view[address:address + length]
            if flags & DESC_F_WRITE:
                writable.append(buffer)
                spans.append((address, length))
            elif writable:
                raise RingError(f"descriptor {index} is readable but follows a writable one")
            else:
                readable.append(buffer)
            if not flags & DESC_F_NEXT:
                return Chain(head, readable, writable, spans)
            index = following

    def push(self, chain: Chain, written: int) -> None:
        """Hand a chain back on the used ring, with how many bytes the device wrote."""
        memory = self.memory
        for address, length in chain.spans:  # whatever the device wrote, the CPU must not miss
            memory.wrote(address, length)
        slot = self.device + 4 + USED_ELEMENT.size * (self.used_idx % self.size)
        USED_ELEMENT.pack_into(self.view, slot, chain.head, written)
        self.used_idx = (self.used_idx + 1) & 0xFFFF
        U16.pack_into(self.view, self.device + 2, self.used_idx)
        memory.wrote(self.device, slot + USED_ELEMENT.size - self.device)

    def wants_interrupt(self) -> bool:
        return not U16.unpack_from(self.view, self.driver)[0] & AVAIL_F_NO_INTERRUPT
# «/The virtqueue»
# «/src/lguest/drivers/virtqueue.py»
