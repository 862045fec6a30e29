"""Benchmarks for the Host and the Switcher, against bare Unicorn in the same run.

- guest CPU loop: the same loop at the same addresses run by bare Unicorn
  (ring 0, no hooks, with the guest's page tables; and, for information,
  with no paging at all, which Unicorn runs about 13% faster) and by a guest
  under the Host (ring 1, shadow paging, the timer thread looking in every
  100 ms); ratio = bare time / guest time (target >= 0.9);
- hypercall round trip: a loop of `int $0x1f` under bare Unicorn with an
  empty UC_HOOK_INTR callback, and the same loop in a guest making an
  in-hook hypercall; ratio = guest cost / bare cost (target <= 3);
- full exits per second: a guest taking #GP on `cli` and handling it, each a
  full exit, Switcher and frame delivery (reported, no baseline).

Run with `make bench`; results go to bench/results/host.json.
"""

from __future__ import annotations

import ctypes
import io
import json
import mmap
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from unicorn import UC_ARCH_X86, UC_HOOK_INTR, UC_MODE_32, UC_PROT_ALL, Uc
from unicorn.x86_const import UC_X86_REG_CR0, UC_X86_REG_CR3

from lguest import abi
from lguest.host.core import Host
from lguest.memory import GuestMemory

ROOT = Path(__file__).resolve().parents[1]
LOOP_ITERATIONS = 30_000_000
HYPERCALLS = 200_000
FAULTS = 20_000
REPEAT = 7


def assemble(source: str, address: int) -> bytes:
    with tempfile.TemporaryDirectory() as scratch:
        Path(scratch, "g.s").write_text(".intel_syntax noprefix\n.globl _start\n_start:\n" + source)
        subprocess.run(["as", "--32", "-o", f"{scratch}/g.o", f"{scratch}/g.s"], check=True)
        subprocess.run(["ld", "-m", "elf_i386", f"-Ttext={address:#x}", "--oformat=binary",
                        "-o", f"{scratch}/g.bin", f"{scratch}/g.o"], check=True)
        return Path(scratch, "g.bin").read_bytes()


LOOP = f"""
    mov ecx, {LOOP_ITERATIONS}
    mov esi, 0xC0300000
1:  add dword ptr [esi], ecx
    dec ecx
    jnz 1b
"""
HYPERCALL_LOOP = f"""
    mov edi, {HYPERCALLS}
1:  mov eax, 9
    xor ebx, ebx
    int 0x1f
    dec edi
    jnz 1b
"""


def guest(body: str, setup: str = "") -> tuple[GuestMemory, int]:
    source = f"""
    mov eax, 1
    mov ebx, offset shared - 0xC0000000
    int 0x1f
    {setup}
    {body}
    mov eax, 2
    mov ebx, 0
    mov ecx, 1
    int 0x1f
    {HANDLERS}
.align 4096
shared: .space 4096
"""
    memory = GuestMemory(16 << 20)
    pgdir = memory.size - abi.PAGE_SIZE
    for table in range(4):
        address = pgdir - (table + 1) * abi.PAGE_SIZE
        memory.write_u32(pgdir + 4 * (abi.PAGE_OFFSET >> 22) + 4 * table, address | 3)
        for page in range(1024):
            memory.write_u32(address + 4 * page, (table * 1024 + page) * abi.PAGE_SIZE | 3)
    memory.write(abi.KERNEL_LOAD, assemble(source, abi.PAGE_OFFSET + abi.KERNEL_LOAD))
    return memory, pgdir


HANDLERS = """
gp: add dword ptr [esp + 4], 1
    add esp, 4
    iretd
"""
GP_SETUP = """
    mov eax, 6
    mov ebx, 13
    mov ecx, offset gp
    and ecx, 0xffff
    or ecx, 0x190000
    mov edx, offset gp
    and edx, 0xffff0000
    or edx, 0x8f00
    int 0x1f
    mov esp, 0xC0090000
"""
GP_LOOP = f"""
    mov edi, {FAULTS}
1:  cli
    dec edi
    jnz 1b
"""


def run_guest(body: str, setup: str = "") -> tuple[float, Host]:
    memory, pgdir = guest(body, setup)
    host = Host(memory, console=io.BytesIO())
    start = time.perf_counter()
    outcome = host.run(entry=abi.PAGE_OFFSET + abi.KERNEL_LOAD, stack=abi.PAGE_OFFSET + abi.BOOT_PAGE,
                       boot=abi.BOOT_PAGE, pgdir=pgdir)
    elapsed = time.perf_counter() - start
    assert outcome.kind == "poweroff", outcome
    return elapsed, host


def run_bare(body: str, hook: bool = False, paged: bool = False) -> float:
    """The same code under bare Unicorn at ring 0: flat, or paged with the guest's mapping."""
    uc = Uc(UC_ARCH_X86, UC_MODE_32)
    buffer = mmap.mmap(-1, 16 << 20)
    pointer = ctypes.addressof(ctypes.c_char.from_buffer(buffer))
    uc.mem_map_ptr(0, 16 << 20, UC_PROT_ALL, pointer)
    if paged:  # the guest's view: physical memory at 0xC0000000 through page tables
        words, pgdir = memoryview(buffer).cast("I"), 0xF00000
        for table in range(4):
            address = pgdir + (table + 1) * abi.PAGE_SIZE
            words[pgdir // 4 + (abi.PAGE_OFFSET >> 22) + table] = address | 3
            for page in range(1024):
                words[address // 4 + page] = (table * 1024 + page) * abi.PAGE_SIZE | 3
        uc.reg_write(UC_X86_REG_CR3, pgdir)
        uc.reg_write(UC_X86_REG_CR0, uc.reg_read(UC_X86_REG_CR0) | 0x80010000)
    else:  # the same addresses without paging: a second mapping of the same memory
        uc.mem_map_ptr(0xC0000000, 16 << 20, UC_PROT_ALL, pointer)
    start_address = abi.PAGE_OFFSET + abi.KERNEL_LOAD
    code = assemble(body + "\n    hlt\n", start_address)
    buffer[abi.KERNEL_LOAD:abi.KERNEL_LOAD + len(code)] = code
    if hook:
        uc.hook_add(UC_HOOK_INTR, lambda uc, number, _: None)
    start = time.perf_counter()
    uc.emu_start(start_address, start_address + len(code) - 1)
    return time.perf_counter() - start


def median(samples: list[float]) -> tuple[float, float, float]:
    return statistics.median(samples), min(samples), max(samples)


def main() -> None:
    rows = []
    paged_runs, flat_runs, hosted_runs = [], [], []
    for _ in range(REPEAT):  # interleaved, so that drift in the machine hits all alike
        paged_runs.append(run_bare(LOOP, paged=True))
        flat_runs.append(run_bare(LOOP))
        hosted_runs.append(run_guest(LOOP)[0])
    paged, flat, hosted = median(paged_runs), median(flat_runs), median(hosted_runs)
    rows.append({"name": "guest CPU loop vs bare Unicorn, same page tables", "value": hosted[0],
                 "baseline": paged[0], "ratio": paged[0] / hosted[0], "target": ">= 0.9",
                 "meets": paged[0] / hosted[0] >= 0.9, "spread": [hosted[1], hosted[2]]})
    rows.append({"name": "guest CPU loop vs bare Unicorn, no paging", "value": hosted[0],
                 "baseline": flat[0], "ratio": flat[0] / hosted[0], "target": None, "meets": None,
                 "spread": [hosted[1], hosted[2]]})
    bare_call = median([run_bare(HYPERCALL_LOOP, hook=True) / HYPERCALLS
                        for _ in range(REPEAT)])
    hosted_call = median([run_guest(HYPERCALL_LOOP)[0] / HYPERCALLS for _ in range(REPEAT)])
    rows.append({"name": "hypercall round trip vs bare UC_HOOK_INTR", "value": hosted_call[0],
                 "baseline": bare_call[0], "ratio": hosted_call[0] / bare_call[0], "target": "<= 3",
                 "meets": hosted_call[0] / bare_call[0] <= 3, "spread": [hosted_call[1], hosted_call[2]]})
    faults = []
    for _ in range(REPEAT):
        elapsed, host = run_guest(GP_LOOP, GP_SETUP)
        faults.append(host.exits / elapsed)
    rate = median(faults)
    rows.append({"name": "full exits per second (#GP reflected)", "value": rate[0], "baseline": None,
                 "ratio": None, "target": None, "meets": None, "spread": [rate[1], rate[2]]})
    print(f"{'benchmark':50} {'value':>12} {'baseline':>12} {'ratio':>7}  target")
    for row in rows:
        ratio = "" if row["ratio"] is None else f"{row['ratio']:7.2f}"
        baseline = "" if row["baseline"] is None else f"{row['baseline']:.3g}"
        print(f"{row['name']:50} {row['value']:12.3g} {baseline:>12} {ratio:>7}  {row['target'] or ''}")
    out = ROOT / "bench/results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "host.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
