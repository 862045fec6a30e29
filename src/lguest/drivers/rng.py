# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/drivers/rng.py» book/drivers.md:794 @cbcd593b
"""virtio-rng: randomness from the host, one buffer at a time."""

from __future__ import annotations

import os

from .mmio import RNG, VirtioDevice
from .virtqueue import Chain, Virtqueue

MOST_PER_CHAIN = 1 << 16


class Rng(VirtioDevice):
    device_id = RNG
    name = "virtio-rng"
    queue_sizes = (64,)

    def handle(self, queue: Virtqueue, chain: Chain) -> int:
        wanted = min(chain.writable_size, MOST_PER_CHAIN)
        return chain.write(0, os.urandom(wanted))
# «/src/lguest/drivers/rng.py»
