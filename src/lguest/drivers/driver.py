# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/drivers/driver.py» book/drivers.md:1489 @3242f2b1
"""A virtio-mmio driver in Python, from the specification: for tests, benchmarks, readers."""

from __future__ import annotations

import struct

from ..memory import GuestMemory
from . import mmio
from .mmio import VirtioDevice
from .virtqueue import DESC_F_NEXT, DESC_F_WRITE, DESCRIPTOR, U16, USED_ELEMENT


class GuestKilled(Exception):
    """What the device's kill does when a test driver, not a Host, is watching."""


# «The test driver» book/drivers.md:1512 @b70f93fb
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
        self.put(mmio.STATUS, 0)
        self.put(mmio.STATUS, mmio.ACKNOWLEDGE)
        self.put(mmio.STATUS, mmio.ACKNOWLEDGE | mmio.DRIVER)
        offered = 0
        for half in (0, 1):
            self.put(mmio.DEVICE_FEATURES_SEL, half)
            offered |= self.get(mmio.DEVICE_FEATURES) << 32 * half
        chosen = offered if accept is None else accept
        for half in (0, 1):
            self.put(mmio.DRIVER_FEATURES_SEL, half)
            self.put(mmio.DRIVER_FEATURES, chosen >> 32 * half & 0xFFFFFFFF)
        self.put(mmio.STATUS, mmio.ACKNOWLEDGE | mmio.DRIVER | mmio.FEATURES_OK)
        return bool(self.get(mmio.STATUS) & mmio.FEATURES_OK)

    def queue(self, index: int, size: int | None = None) -> DriverQueue:
        return DriverQueue(self, index, size)

    def go(self) -> None:
        self.put(mmio.STATUS, self.get(mmio.STATUS) | mmio.DRIVER_OK)

    def setup(self) -> list[DriverQueue]:
        """The whole dance: features, every queue at its largest, DRIVER_OK."""
        if not self.negotiate():
            raise AssertionError("the device refused its own features")
        queues = [self.queue(index) for index in range(len(self.device.queues))]
        self.go()
        return queues

    def buffer(self, data: bytes | int) -> tuple[int, int]:
        """Some memory: filled with ``data``, or ``data`` zero bytes."""
        size = data if isinstance(data, int) else len(data)
        address = self.allocate(max(size, 1))
        self.memory.write(address, bytes(size) if isinstance(data, int) else data)
        return address, size
# «/The test driver»


# «A driver's queue» book/drivers.md:1582 @5fa5918e
class DriverQueue:
    def __init__(self, driver: TestDriver, index: int, size: int | None):
        self.driver, self.index = driver, index
        driver.put(mmio.QUEUE_SEL, index)
        self.size = size or driver.get(mmio.QUEUE_NUM_MAX)
        self.desc = driver.allocate(DESCRIPTOR.size * self.size, 16)
        self.avail = driver.allocate(6 + 2 * self.size, 2)
        self.used = driver.allocate(6 + USED_ELEMENT.size * self.size, 4)
        driver.put(mmio.QUEUE_NUM, self.size)
        for low, address in ((mmio.QUEUE_DESC_LOW, self.desc),
                             (mmio.QUEUE_DRIVER_LOW, self.avail),
                             (mmio.QUEUE_DEVICE_LOW, self.used)):
            driver.put(low, address & 0xFFFFFFFF)
            driver.put(low + 4, address >> 32)
        driver.put(mmio.QUEUE_READY, 1)
        self.free = list(range(self.size))
        self.chains: dict[int, list[int]] = {}
        self.avail_idx = self.last_used = 0

    def offer(self, buffers: list[tuple[int, int, bool]], kick: bool = True) -> int:
        view = self.driver.memory.view
        slots = [self.free.pop(0) for _ in buffers]
        for number, (slot, (address, length, writable)) in enumerate(zip(slots, buffers)):
            last = number == len(buffers) - 1
            flags = (0 if last else DESC_F_NEXT) | (DESC_F_WRITE if writable else 0)
            following = 0 if last else slots[number + 1]
            DESCRIPTOR.pack_into(view, self.desc + DESCRIPTOR.size * slot,
                                 address, length, flags, following)
        self.chains[slots[0]] = slots
        U16.pack_into(view, self.avail + 4 + 2 * (self.avail_idx % self.size), slots[0])
        self.avail_idx = (self.avail_idx + 1) & 0xFFFF
        U16.pack_into(view, self.avail + 2, self.avail_idx)
        if kick:
            self.kick()
        return slots[0]

    def kick(self) -> None:
        self.driver.put(mmio.QUEUE_NOTIFY, self.index)

    def collect(self) -> list[tuple[int, int]]:
        """The (head, bytes written) pairs the device has used since we last looked."""
        view, done = self.driver.memory.view, []
        while self.last_used != U16.unpack_from(view, self.used + 2)[0]:
            slot = self.used + 4 + USED_ELEMENT.size * (self.last_used % self.size)
            head, written = USED_ELEMENT.unpack_from(view, slot)
            self.free.extend(self.chains.pop(head, []))
            done.append((head, written))
            self.last_used = (self.last_used + 1) & 0xFFFF
        return done

    def describe(self, head: int) -> list[str]:
        """The chain from ``head``, one line per descriptor, as the device will see it."""
        lines = []
        for slot in self.chains.get(head, []):
            address, length, flags, following = DESCRIPTOR.unpack_from(
                self.driver.memory.view, self.desc + DESCRIPTOR.size * slot)
            names = [name for bit, name in ((DESC_F_NEXT, "NEXT"), (DESC_F_WRITE, "WRITE"))
                     if flags & bit]
            lines.append(f"desc[{slot}] {address:#x} len {length:<5} "
                         f"{'|'.join(names) or '-':10} next {following}")
        return lines

    def used_ring(self) -> str:
        view = self.driver.memory.view
        index = U16.unpack_from(view, self.used + 2)[0]
        ring = [USED_ELEMENT.unpack_from(view, self.used + 4 + 8 * slot)
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
