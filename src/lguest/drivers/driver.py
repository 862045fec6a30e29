# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/drivers/driver.py» book/drivers-plugging.md:403 @0d639c98
"""A virtio-mmio driver in Python, from the specification: for tests, benchmarks, readers."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from ..memory import GuestMemory

if TYPE_CHECKING:  # for the annotations only: the driver learns nothing else from the device
    from .mmio import VirtioDevice

# «The specification's numbers» book/drivers-plugging.md:373 @6db7c701
# virtio-mmio registers, version 2 (virtio 1.x, section 4.2.2): byte offsets.
MAGIC_VALUE, VERSION, DEVICE_ID, VENDOR_ID = 0x000, 0x004, 0x008, 0x00C
DEVICE_FEATURES, DEVICE_FEATURES_SEL = 0x010, 0x014
DRIVER_FEATURES, DRIVER_FEATURES_SEL = 0x020, 0x024
QUEUE_SEL, QUEUE_NUM_MAX, QUEUE_NUM = 0x030, 0x034, 0x038
QUEUE_READY, QUEUE_NOTIFY = 0x044, 0x050
INTERRUPT_STATUS, INTERRUPT_ACK = 0x060, 0x064
STATUS = 0x070
QUEUE_DESC_LOW, QUEUE_DESC_HIGH = 0x080, 0x084
QUEUE_DRIVER_LOW, QUEUE_DRIVER_HIGH = 0x090, 0x094
QUEUE_DEVICE_LOW, QUEUE_DEVICE_HIGH = 0x0A0, 0x0A4
CONFIG_GENERATION, CONFIG = 0x0FC, 0x100

MAGIC = 0x74726976  # "virt", little-endian
MAX_QUEUES = 0x10000  # a queue index is a 16-bit number in every transport

# Device status bits (section 2.1).
ACKNOWLEDGE, DRIVER, DRIVER_OK, FEATURES_OK = 1, 2, 4, 8

# The split virtqueue (section 2.7), everything little-endian.
DESC = struct.Struct("<QIHH")  # struct virtq_desc: le64 addr, le32 len, le16 flags, le16 next
F_NEXT, F_WRITE = 1, 2  # VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE
LE16 = struct.Struct("<H")  # virtq_avail: flags, idx, ring[]; virtq_used: flags, idx, ...
USED_ELEM = struct.Struct("<II")  # struct virtq_used_elem: le32 id, le32 len
RING_HEADER = 4  # flags and idx, before either ring's array
# «/The specification's numbers»


class GuestKilled(Exception):
    """What the device's kill does when a test driver, not a Host, is watching."""


# «The test driver» book/drivers-plugging.md:429 @91220180
class TestDriver:
    """Drive one device through its registers, with rings in ``memory``."""

    __test__ = False  # a helper, not a test, whatever pytest thinks of its name

    def __init__(self, device: VirtioDevice, memory: GuestMemory, arena: int = 0x10000):
        self.device, self.memory, self.next_free = device, memory, arena
        self.interrupts: list[int] = []
        device.connect(memory, self.interrupts.append, self.kill)

    @staticmethod
    def kill(reason: str):
        raise GuestKilled(reason)

    def get(self, offset: int) -> int:
        return self.device.read(offset, 4)

    def put(self, offset: int, value: int) -> None:
        self.device.write(offset, 4, value)

    def allocate(self, size: int, align: int = 16) -> int:
        address = -(-self.next_free // align) * align
        self.next_free = address + size
        self.memory.check(address, size)
        return address

    def negotiate(self, accept: int | None = None) -> bool:
        """Reset, acknowledge, and accept the offered features (or only ``accept``)."""
        if (self.get(MAGIC_VALUE), self.get(VERSION)) != (MAGIC, 2):
            raise AssertionError("no virtio-mmio version 2 device at these registers")
        self.put(STATUS, 0)
        self.put(STATUS, ACKNOWLEDGE)
        self.put(STATUS, ACKNOWLEDGE | DRIVER)
        offered = 0
        for half in (0, 1):
            self.put(DEVICE_FEATURES_SEL, half)
            offered |= self.get(DEVICE_FEATURES) << 32 * half
        chosen = offered if accept is None else accept
        for half in (0, 1):
            self.put(DRIVER_FEATURES_SEL, half)
            self.put(DRIVER_FEATURES, chosen >> 32 * half & 0xFFFFFFFF)
        self.put(STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK)
        return bool(self.get(STATUS) & FEATURES_OK)

    def queue(self, index: int, size: int | None = None) -> DriverQueue:
        return DriverQueue(self, index, size)

    def go(self) -> None:
        self.put(STATUS, self.get(STATUS) | DRIVER_OK)

    def queue_count(self) -> int:
        """How many queues the device has: select each in turn until one has no size."""
        for index in range(MAX_QUEUES):
            self.put(QUEUE_SEL, index)
            if self.get(QUEUE_NUM_MAX) == 0:
                return index
        raise AssertionError(f"a device that claims all {MAX_QUEUES} queues")

    def setup(self) -> list[DriverQueue]:
        """The whole dance: features, every queue at its largest, DRIVER_OK."""
        if not self.negotiate():
            raise AssertionError("the device refused its own features")
        queues = [self.queue(index) for index in range(self.queue_count())]
        self.go()
        return queues

    def buffer(self, data: bytes | int) -> tuple[int, int]:
        """Some memory: filled with ``data``, or ``data`` zero bytes."""
        size = data if isinstance(data, int) else len(data)
        address = self.allocate(max(size, 1))
        self.memory.write(address, bytes(size) if isinstance(data, int) else data)
        return address, size
# «/The test driver»


# «A driver's queue» book/drivers-plugging.md:523 @60b8e819
class DriverQueue:
    def __init__(self, driver: TestDriver, index: int, size: int | None):
        self.driver, self.index = driver, index
        driver.put(QUEUE_SEL, index)
        if driver.get(QUEUE_READY) != 0:
            raise AssertionError(f"queue {index} is already in use")
        self.size = size or driver.get(QUEUE_NUM_MAX)
        self.desc = driver.allocate(DESC.size * self.size, 16)
        self.avail = driver.allocate(RING_HEADER + LE16.size * self.size + 2, 2)
        self.used = driver.allocate(RING_HEADER + USED_ELEM.size * self.size + 2, 4)
        driver.put(QUEUE_NUM, self.size)
        for low, high, address in ((QUEUE_DESC_LOW, QUEUE_DESC_HIGH, self.desc),
                                   (QUEUE_DRIVER_LOW, QUEUE_DRIVER_HIGH, self.avail),
                                   (QUEUE_DEVICE_LOW, QUEUE_DEVICE_HIGH, self.used)):
            driver.put(low, address & 0xFFFFFFFF)
            driver.put(high, address >> 32)
        driver.put(QUEUE_READY, 1)
        self.free = list(range(self.size))
        self.chains: dict[int, list[int]] = {}
        self.avail_idx = self.last_used = 0

    def offer(self, buffers: list[tuple[int, int, bool]], kick: bool = True) -> int:
        view = self.driver.memory.view
        slots = [self.free.pop(0) for _ in buffers]
        for number, (slot, (address, length, writable)) in enumerate(zip(slots, buffers)):
            last = number == len(buffers) - 1
            flags = (0 if last else F_NEXT) | (F_WRITE if writable else 0)
            following = 0 if last else slots[number + 1]
            DESC.pack_into(view, self.desc + DESC.size * slot, address, length, flags, following)
        self.chains[slots[0]] = slots
        ring = self.avail + RING_HEADER
        LE16.pack_into(view, ring + LE16.size * (self.avail_idx % self.size), slots[0])
        self.avail_idx = (self.avail_idx + 1) & 0xFFFF
        LE16.pack_into(view, self.avail + 2, self.avail_idx)  # idx, after the ring entry
        if kick:
            self.kick()
        return slots[0]

    def kick(self) -> None:
        self.driver.put(QUEUE_NOTIFY, self.index)

    def collect(self) -> list[tuple[int, int]]:
        """The (head, bytes written) pairs the device has used since we last looked."""
        view, done = self.driver.memory.view, []
        while self.last_used != LE16.unpack_from(view, self.used + 2)[0]:
            slot = self.used + RING_HEADER + USED_ELEM.size * (self.last_used % self.size)
            head, written = USED_ELEM.unpack_from(view, slot)
            self.free.extend(self.chains.pop(head, []))
            done.append((head, written))
            self.last_used = (self.last_used + 1) & 0xFFFF
        return done

    def describe(self, head: int) -> list[str]:
        """The chain from ``head``, one line per descriptor, as the device will see it."""
        lines = []
        for slot in self.chains.get(head, []):
            address, length, flags, following = DESC.unpack_from(
                self.driver.memory.view, self.desc + DESC.size * slot)
            names = [name for bit, name in ((F_NEXT, "NEXT"), (F_WRITE, "WRITE"))
                     if flags & bit]
            lines.append(f"desc[{slot}] {address:#x} len {length:<5} "
                         f"{'|'.join(names) or '-':10} next {following}")
        return lines

    def used_ring(self) -> str:
        view = self.driver.memory.view
        index = LE16.unpack_from(view, self.used + 2)[0]
        ring = [USED_ELEM.unpack_from(view, self.used + RING_HEADER + USED_ELEM.size * slot)
                for slot in range(min(index, self.size))]
        return f"used idx {index}: {ring}"


def block_request(queue: DriverQueue, kind: int, sector: int, data: bytes | int = b"",
                  ) -> tuple[int, bytes]:
    """One virtio-blk request: ``data`` bytes to write, or a number of bytes to read."""
    driver = queue.driver
    mark = driver.next_free  # everything allocated here is given back at the end
    header, _ = driver.buffer(struct.pack("<IIQ", kind, 0, sector))
    status, _ = driver.buffer(1)
    chain = [(header, 16, False)]
    address, length = driver.buffer(data) if data else (0, 0)
    if length:
        chain.append((address, length, isinstance(data, int)))
    chain.append((status, 1, True))
    queue.offer(chain)
    queue.collect()
    reply = driver.memory.read(address, length) if isinstance(data, int) and length else b""
    driver.next_free = mark
    return driver.memory.read(status, 1)[0], reply
# «/A driver's queue»
# «/src/lguest/drivers/driver.py»
