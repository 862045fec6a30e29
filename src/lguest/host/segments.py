# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/host/segments.py» book/host-boot.md:205 @a383d4c2
"""Segments: the guest's GDT entries, fixed up to ring 1."""

from __future__ import annotations

from typing import Callable

from ..abi import FIRST_GUEST_GDT_ENTRY, GDT_ENTRIES

# «Fix up a descriptor» book/host-boot.md:183 @ad8af4d6
ACCESSED = 1 << 40
CODE_OR_DATA = 1 << 44  # the S bit: clear for system descriptors
DPL_SHIFT = 45


def guest_descriptor(index: int, low: int, high: int, kill: Callable) -> int:
    """The descriptor the guest asked for, made safe, or the guest's death."""
    if not FIRST_GUEST_GDT_ENTRY <= index < GDT_ENTRIES:
        kill(f"bad GDT entry index {index}")
    value = high << 32 | low
    if not value:
        return 0
    if not value & CODE_OR_DATA:
        kill(f"GDT entry {index} is a system descriptor, which a guest may not load")
    if value >> DPL_SHIFT & 3 == 0:
        value |= 1 << DPL_SHIFT
    return value | ACCESSED
# «/Fix up a descriptor»
# «/src/lguest/host/segments.py»
