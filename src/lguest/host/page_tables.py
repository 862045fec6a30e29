# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/host/page_tables.py»[2] book/switcher-shadows.md:385 @c19497ed
"""Shadow page tables: what the CPU really uses, built from the guest's own."""

from __future__ import annotations

import ctypes
import mmap
from collections import OrderedDict
from typing import Callable

from unicorn import UC_PROT_ALL, Uc

from ..abi import PAGE_OFFSET, PAGE_SIZE, SWITCHER_ADDR
from ..memory import GuestMemory
from ..switcher import SWITCHER_PAGES

# «The shadow pool» book/switcher-shadows.md:48 @fc1a3ca0
# «Page-table bits» book/host-boot.md:39 @5bf5c5cf
PRESENT, WRITABLE, USER, ACCESSED, DIRTY, LARGE = 0x1, 0x2, 0x4, 0x20, 0x40, 0x80
FRAME_MASK = 0xFFFFF000
# «/Page-table bits»
POOL_ADDRESS = 0xF0000000
POOL_PAGES = 1024
MAX_SHADOWS = 4
SWITCHER_PDE = SWITCHER_ADDR >> 22


class ShadowPages:
    """The page tables the CPU really uses, built from the guest's on demand."""

    def __init__(self, uc: Uc, memory: GuestMemory, kill: Callable, pool_pages: int = POOL_PAGES):
        self.memory, self.kill = memory, kill
        self.pool = mmap.mmap(-1, pool_pages * PAGE_SIZE)
        pointer = ctypes.addressof(ctypes.c_char.from_buffer(self.pool))
        uc.mem_map_ptr(POOL_ADDRESS, pool_pages * PAGE_SIZE, UC_PROT_ALL, pointer)
        self.words = memoryview(self.pool).cast("I")
        self.guest_words = memory.view.cast("I")  # guest memory, a 32-bit word at a time
        for index in range(SWITCHER_PAGES):
            self.words[index] = SWITCHER_ADDR + index * PAGE_SIZE | PRESENT
        self.free = list(range(pool_pages - 1, 0, -1))
        self.shadows: OrderedDict[int, int] = OrderedDict()  # guest pgdir -> pool page
        self.tables: dict[int, dict[int, int]] = {}  # guest pgdir -> {pde index: pool page}
        self.current: int | None = None
        self.windows: list[tuple[int, int]] = []  # device registers a guest may map
        self.kernel_address = PAGE_OFFSET
        self.flush = True

    @property
    def cr3(self) -> int:
        return POOL_ADDRESS + self.shadows[self.current] * PAGE_SIZE

    # «Shadow directories» book/switcher-shadows.md:101 @6e0ec2b0
    def _allocate(self) -> int:
        if not self.free:
            for pgdir in [pgdir for pgdir in self.shadows if pgdir != self.current]:
                self._drop(pgdir)
        if not self.free and self.current is not None:
            self._clear(self.current, range(SWITCHER_PDE))
        if not self.free:
            self.kill("out of shadow page-table pages")
        page = self.free.pop()
        self.pool[page * PAGE_SIZE:(page + 1) * PAGE_SIZE] = bytes(PAGE_SIZE)
        return page

    def new_pgtable(self, pgdir: int) -> None:
        if pgdir % PAGE_SIZE or not self.memory.contains(pgdir, PAGE_SIZE):
            self.kill(f"bad page directory {pgdir:#x}")
        if pgdir in self.shadows:
            self.shadows.move_to_end(pgdir)
        else:
            if len(self.shadows) >= MAX_SHADOWS:
                self._drop(next(iter(self.shadows)))
            page = self._allocate()
            self.words[page * 1024 + SWITCHER_PDE] = POOL_ADDRESS | PRESENT | WRITABLE
            self.shadows[pgdir], self.tables[pgdir] = page, {}
        self.current = pgdir
        self.flush = True

    def _drop(self, pgdir: int) -> None:
        self._clear(pgdir, range(SWITCHER_PDE))
        self.free.append(self.shadows.pop(pgdir))
        del self.tables[pgdir]

    def _clear(self, pgdir: int, indices) -> None:
        """Forget the shadow page tables behind some directory entries."""
        tables, base = self.tables[pgdir], self.shadows[pgdir] * 1024
        for index in [index for index in tables if index in indices]:
            self.free.append(tables.pop(index))
            self.words[base + index] = 0
        self.flush = True
    # «/Shadow directories»

    # «Walk the guest's tables» book/host-boot.md:68 @b81682d8
    def walk(self, vaddr: int) -> tuple[int, int, int] | None:
        """The guest's (directory entry, table entry, table entry's address), or None."""
        memory, guest = self.memory, self.guest_words
        pde = guest[self.current // 4 + (vaddr >> 22)]  # the directory: checked by new_pgtable
        if not pde & PRESENT:
            return None
        if pde & LARGE:
            self.kill(f"large pages are not supported (directory entry {pde:#x})")
        if not memory.contains(pde & FRAME_MASK, PAGE_SIZE):
            self.kill(f"bad page directory entry {pde:#x}")
        where = (pde & FRAME_MASK) + (vaddr >> 12 & 1023) * 4
        pte = guest[where // 4]
        if not pte & PRESENT:
            return None
        frame = pte & FRAME_MASK
        if not memory.contains(frame, PAGE_SIZE) and not any(
                base <= frame < base + size for base, size in self.windows):
            self.kill(f"bad page table entry {pte:#x} for {vaddr:#x}")
        return pde, pte, where

    def translate(self, vaddr: int, write: bool) -> int | None:
        """The address in guest memory behind ``vaddr``, if the guest's tables allow."""
        found = None if vaddr >= SWITCHER_ADDR else self.walk(vaddr)
        if found is None or write and not found[0] & found[1] & WRITABLE:
            return None
        if not self.memory.contains(found[1] & FRAME_MASK, PAGE_SIZE):
            return None  # a device's registers: no place for an interrupt frame
        return (found[1] & FRAME_MASK) + (vaddr & 0xFFF)
    # «/Walk the guest's tables»

    # «Demand paging» book/switcher-shadows.md:171 @ceba99d3
    def demand_page(self, vaddr: int, write: bool, user: bool) -> bool:
        """Fill the shadow entry for a faulting access; False if the guest must see the fault."""
        if vaddr >= SWITCHER_ADDR:  # always present: the fault is the guest's to hear, or its end
            if write and not user:
                self.kill(f"attempt to write to the Switcher's pages at {vaddr:#x}")
            return False
        found = self.walk(vaddr)
        if found is None:
            return False
        pde, pte, where = found
        if write and not pde & pte & WRITABLE or user and not pde & pte & USER:
            return False
        pte |= ACCESSED | (DIRTY if write else 0)
        self.memory.write_u32(where, pte)
        index, tables = vaddr >> 22, self.tables[self.current]
        if index not in tables:
            tables[index] = self._allocate()
            self.words[self.shadows[self.current] * 1024 + index] = (
                POOL_ADDRESS + tables[index] * PAGE_SIZE | PRESENT | WRITABLE | USER)
        flags = PRESENT | pde & pte & USER | (pde & pte & WRITABLE if pte & DIRTY else 0)
        self.words[tables[index] * 1024 + (vaddr >> 12 & 1023)] = pte & FRAME_MASK | flags
        return True
    # «/Demand paging»

    # «When the guest changes its tables» book/switcher-shadows.md:328 @55c29003
    def set_pte(self, pgdir: int, vaddr: int) -> None:
        for shadow in self._affected(pgdir, vaddr >> 22):
            page = self.tables[shadow].get(vaddr >> 22)
            if page is not None:
                self.words[page * 1024 + (vaddr >> 12 & 1023)] = 0
        self.flush = True

    def set_pgd(self, pgdir: int, index: int) -> None:
        if index < SWITCHER_PDE:
            for shadow in self._affected(pgdir, index):
                self._clear(shadow, (index,))

    def _affected(self, pgdir: int, index: int) -> list[int]:
        if index << 22 >= self.kernel_address:
            return list(self.shadows)
        return [pgdir] if pgdir in self.shadows else []

    def flush_tlb(self, everything: bool) -> None:
        self._clear(self.current, range(SWITCHER_PDE if everything else self.kernel_address >> 22))
    # «/When the guest changes its tables»
# «/The shadow pool»
# «/src/lguest/host/page_tables.py»
