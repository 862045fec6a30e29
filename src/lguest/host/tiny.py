# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/host/tiny.py» book/host-boot.md:951 @3594ec6e
"""Tiny kernels: a few lines of assembler, on a Host of their own, for milestones and cells."""

from __future__ import annotations

import io
import subprocess
import tempfile
from pathlib import Path

from .. import abi
from ..memory import GuestMemory
from .core import Host, Outcome


# «A tiny kernel in assembler» book/host-boot.md:921 @0ff05994
def tiny_kernel(source: str, bits: int) -> tuple[GuestMemory, int]:
    """4 MiB of guest memory running ``source`` (Intel syntax), every page mapped with ``bits``."""
    memory = GuestMemory(4 << 20)
    pgdir, table = memory.size - abi.PAGE_SIZE, memory.size - 2 * abi.PAGE_SIZE
    memory.write_u32(pgdir + 4 * (abi.PAGE_OFFSET >> 22), table | bits)
    for page in range(1024):
        memory.write_u32(table + 4 * page, page * abi.PAGE_SIZE | bits)
    with tempfile.TemporaryDirectory() as scratch:
        Path(scratch, "g.s").write_text(".intel_syntax noprefix\n.globl _start\n_start:\n" + source)
        subprocess.run(["as", "--32", "-o", f"{scratch}/g.o", f"{scratch}/g.s"], check=True)
        subprocess.run(["ld", "-m", "elf_i386", f"-Ttext={abi.PAGE_OFFSET + abi.KERNEL_LOAD:#x}",
                        "--oformat=binary", "-o", f"{scratch}/g.bin", f"{scratch}/g.o"], check=True)
        memory.write(abi.KERNEL_LOAD, Path(scratch, "g.bin").read_bytes())
    return memory, pgdir


def run_tiny(memory: GuestMemory, pgdir: int) -> tuple[Outcome, str]:
    """Run a tiny kernel to its end: how it ended, and what it printed."""
    console = io.BytesIO()
    outcome = Host(memory, console=console, deterministic=True).run(
        entry=abi.PAGE_OFFSET + abi.KERNEL_LOAD, stack=abi.PAGE_OFFSET + abi.BOOT_PAGE,
        boot=abi.BOOT_PAGE, pgdir=pgdir)
    return outcome, console.getvalue().decode(errors="replace")
# «/A tiny kernel in assembler»
# «/src/lguest/host/tiny.py»
