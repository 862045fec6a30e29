# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/drivers/mmio.py» book/drivers.md:749 @c9a1cd2b
"""The virtio-mmio transport: registers, the status dance, and serving queues."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from typing import Callable

from unicorn import Uc

from ..memory import GuestMemory, GuestMemoryError
from .virtqueue import Chain, RingError, Virtqueue

# «Where devices live» book/drivers.md:111 @3cc24d74
MMIO_BASE = 0xD0000000  # device i's registers are at MMIO_BASE + i * MMIO_SIZE
MMIO_SIZE = 0x1000
FIRST_DEVICE_IRQ = 2  # after the timer (0) and the early console (1)

NET, BLOCK, CONSOLE, RNG = 1, 2, 3, 4  # virtio device IDs
# «/Where devices live»

# «The transport's numbers» book/drivers.md:128 @02da24fb
MAGIC = 0x74726976  # "virt"
VERSION = 2  # the virtio 1.x register layout
VENDOR = 0x5950474C  # "LGPY"

MAGIC_VALUE, VERSION_REG, DEVICE_ID, VENDOR_ID = 0x000, 0x004, 0x008, 0x00C
DEVICE_FEATURES, DEVICE_FEATURES_SEL = 0x010, 0x014
DRIVER_FEATURES, DRIVER_FEATURES_SEL = 0x020, 0x024
QUEUE_SEL, QUEUE_NUM_MAX, QUEUE_NUM, QUEUE_READY = 0x030, 0x034, 0x038, 0x044
QUEUE_NOTIFY = 0x050
INTERRUPT_STATUS, INTERRUPT_ACK = 0x060, 0x064
STATUS = 0x070
QUEUE_DESC_LOW, QUEUE_DESC_HIGH = 0x080, 0x084
QUEUE_DRIVER_LOW, QUEUE_DRIVER_HIGH = 0x090, 0x094
QUEUE_DEVICE_LOW, QUEUE_DEVICE_HIGH = 0x0A0, 0x0A4
CONFIG_GENERATION = 0x0FC
CONFIG = 0x100

ACKNOWLEDGE, DRIVER, DRIVER_OK, FEATURES_OK = 1, 2, 4, 8
DEVICE_NEEDS_RESET, FAILED = 64, 128

INTERRUPT_USED, INTERRUPT_CONFIG = 1, 2

F_VERSION_1 = 1 << 32
# «/The transport's numbers»


# «A virtio device» book/drivers.md:427 @8a8a0bf9
class VirtioDevice(ABC):
    """A virtio-mmio device: registers, queues and feature bits; subclasses do the work."""

    device_id = 0
    name = "virtio"
    queue_sizes: tuple[int, ...] = ()

    def __init__(self, *, base: int = MMIO_BASE, irq: int = FIRST_DEVICE_IRQ):
        self.base, self.irq = base, irq
        self.features = F_VERSION_1 | self.device_features()
        self.queues = [Virtqueue(index, size) for index, size in enumerate(self.queue_sizes)]
        self.lock = threading.RLock()
        self.memory: GuestMemory | None = None
        self.generation = 0
        self.problem: str | None = None  # why we last asked for a reset
        self.reset()

    def connect(self, memory: GuestMemory, raise_interrupt: Callable[[int], None],
                kill: Callable[[str], None]) -> None:
        """Give the device guest memory, its interrupt line and the power to kill."""
        self.memory, self.raise_interrupt, self.kill = memory, raise_interrupt, kill

    def attach(self, uc: Uc, memory: GuestMemory, raise_interrupt: Callable[[int], None],
               kill: Callable[[str], None]) -> None:
        """Connect, show the registers to the CPU, and start any backend threads."""
        self.connect(memory, raise_interrupt, kill)
        uc.mmio_map(self.base, MMIO_SIZE, self._on_read, None, self._on_write, None)
        self.start()

    def _on_read(self, uc: Uc, offset: int, size: int, _) -> int:
        value = self.read(offset, size)
        self.memory.settle()  # a register access: a moment the guest may see what was written
        return value

    def _on_write(self, uc: Uc, offset: int, size: int, value: int, _) -> None:
        self.write(offset, size, value)
        self.memory.settle()

    def boot_entry(self) -> tuple[int, int, int, int]:
        """This device's row in the boot page's device table."""
        return (self.device_id, self.base, MMIO_SIZE, self.irq)

    # «What a device type may change» book/drivers.md:488 @56468279
    def device_features(self) -> int:
        return 0

    def config(self) -> bytes:
        return b""

    def start(self) -> None:
        """Start backend threads, if any; the Host is about to run the guest."""

    def close(self) -> None:
        """Stop backend threads and let go of files; the guest has ended."""

    def may_wake(self) -> bool:
        """Might this device raise its line some time from now, by itself?"""
        return False

    def on_reset(self) -> None:
        """Forget everything the driver set up."""

    def on_driver_ok(self) -> None:
        """The driver is ready: the device may start using its queues."""

    @abstractmethod
    def handle(self, queue: Virtqueue, chain: Chain) -> int:
        """Serve one chain; return how many bytes were written into it."""
    # «/What a device type may change»

    # «Reading a register» book/drivers.md:526 @3741dbde
    def read(self, offset: int, size: int) -> int:
        with self.lock:
            if offset >= CONFIG:
                data = self.config()[offset - CONFIG:offset - CONFIG + size]
                return int.from_bytes(data.ljust(size, b"\0"), "little")
            if size != 4 or offset % 4:
                self.needs_reset(f"a {size}-byte read of register {offset:#x}")
                return 0
            queue = self.selected()
            if offset == MAGIC_VALUE:
                return MAGIC
            if offset == VERSION_REG:
                return VERSION
            if offset == DEVICE_ID:
                return self.device_id
            if offset == VENDOR_ID:
                return VENDOR
            if offset == DEVICE_FEATURES:
                half = self.device_sel
                return self.features >> 32 * half & 0xFFFFFFFF if half < 2 else 0
            if offset == QUEUE_NUM_MAX:
                return queue.size_max if queue else 0
            if offset == QUEUE_READY:
                return int(bool(queue and queue.ready))
            if offset == INTERRUPT_STATUS:
                return self.interrupt_status
            if offset == STATUS:
                return self.status
            if offset == CONFIG_GENERATION:
                return self.generation
            return 0

    def selected(self) -> Virtqueue | None:
        return self.queues[self.queue_sel] if self.queue_sel < len(self.queues) else None
    # «/Reading a register»

    # «Writing a register» book/drivers.md:574 @466d70ac
    def write(self, offset: int, size: int, value: int) -> None:
        with self.lock:
            if offset >= CONFIG:
                return  # our configuration spaces are all read-only
            if size != 4 or offset % 4:
                self.needs_reset(f"a {size}-byte write to register {offset:#x}")
                return
            queue = self.selected()
            if offset == DEVICE_FEATURES_SEL:
                self.device_sel = value
            elif offset == DRIVER_FEATURES_SEL:
                self.driver_sel = value
            elif offset == DRIVER_FEATURES:
                if self.driver_sel < 2 and not self.status & FEATURES_OK:
                    shift = 32 * self.driver_sel
                    self.driver_features = (self.driver_features & ~(0xFFFFFFFF << shift)
                                            | value << shift)
            elif offset == QUEUE_SEL:
                self.queue_sel = value
            elif offset == QUEUE_NOTIFY:
                self.notify(value)
            elif offset == INTERRUPT_ACK:
                self.interrupt_status &= ~value
            elif offset == STATUS:
                self.set_status(value)
            elif queue is not None and offset == QUEUE_READY:
                self.set_ready(queue, value & 1)
            elif queue is not None and not queue.ready:
                self.set_queue_field(queue, offset, value)
        self.after_write()

    def set_queue_field(self, queue: Virtqueue, offset: int, value: int) -> None:
        if offset == QUEUE_NUM:
            queue.size = value
        for low, field in ((QUEUE_DESC_LOW, "desc"), (QUEUE_DRIVER_LOW, "driver"),
                           (QUEUE_DEVICE_LOW, "device")):
            if offset in (low, low + 4):
                shift = 32 if offset == low + 4 else 0
                old = getattr(queue, field)
                setattr(queue, field, old & ~(0xFFFFFFFF << shift) | value << shift)

    def set_ready(self, queue: Virtqueue, ready: int) -> None:
        if not ready:
            queue.ready = False
            return
        if queue.ready:
            return  # in service already: a second 1 must not start it over
        problem = queue.layout_problem(self.memory)
        if problem is not None:
            self.needs_reset(f"queue {queue.index}: {problem}")
        else:
            queue.enable(self.memory)

    def after_write(self) -> None:
        """Work to do once the lock is released: sending frames to other devices, say."""
    # «/Writing a register»

    # «The status dance» book/drivers.md:664 @0f6cc600
    def reset(self) -> None:
        self.status = 0
        self.driver_features = 0
        self.device_sel = self.driver_sel = self.queue_sel = 0
        self.interrupt_status = 0
        for queue in self.queues:
            queue.reset()
        self.on_reset()

    def set_status(self, value: int) -> None:
        if value == 0:
            self.reset()
            return
        value &= 0xFF & ~DEVICE_NEEDS_RESET  # that bit is the device's to set
        if value & FEATURES_OK and not self.status & FEATURES_OK and not self.features_acceptable():
            value &= ~FEATURES_OK
        if value & DRIVER_OK and not self.status & DRIVER_OK:
            if not value & FEATURES_OK:
                self.needs_reset("DRIVER_OK before FEATURES_OK")
                return
            self.status = value | self.status & DEVICE_NEEDS_RESET
            self.on_driver_ok()
            return
        self.status = value | self.status & DEVICE_NEEDS_RESET

    def features_acceptable(self) -> bool:
        chosen = self.driver_features
        return bool(chosen & F_VERSION_1) and not chosen & ~self.features

    def needs_reset(self, problem: str) -> None:
        """The driver has confused us: say so, and wait to be reset."""
        self.problem = problem
        self.status |= DEVICE_NEEDS_RESET
        self.interrupt(INTERRUPT_CONFIG)

    def interrupt(self, reason: int) -> None:
        self.interrupt_status |= reason
        if self.memory is not None:
            self.raise_interrupt(self.irq)

    def fail(self, queue: Virtqueue, problem: str) -> None:
        """The guest's memory lies: kill it, with one line that says where and how."""
        self.kill(f"{self.name} at {self.base:#x}, queue {queue.index}: {problem}")
    # «/The status dance»

    # «Serving a queue» book/drivers.md:719 @32d6fe1c
    def usable(self, index: int) -> Virtqueue | None:
        """The queue ``index``, if the device is running and the queue is ready."""
        if index >= len(self.queues) or not self.queues[index].ready:
            return None
        if self.status & (DRIVER_OK | DEVICE_NEEDS_RESET) != DRIVER_OK:
            return None
        return self.queues[index]

    def notify(self, index: int) -> None:
        queue = self.usable(index)
        if queue is None:
            self.needs_reset(f"notify on queue {index}, which is not ready")
            return
        try:
            self.service(queue)
        except (RingError, GuestMemoryError) as error:
            self.fail(queue, str(error))

    def service(self, queue: Virtqueue) -> None:
        used = 0
        while (chain := queue.pop()) is not None:
            queue.push(chain, self.handle(queue, chain))
            used += 1
        if used and queue.wants_interrupt():
            self.interrupt(INTERRUPT_USED)
    # «/Serving a queue»
# «/A virtio device»
# «/src/lguest/drivers/mmio.py»
