"""The Switcher: how a guest enters ring 1, what survives each crossing, that
handled faults never pile up into a double fault, the way up from ring 3, and
that the Switcher's own pages stay out of the guest's reach."""

from __future__ import annotations

import pytest
from conftest import assert_killed, run_guest
from test_host import KILL_CASES, SWITCHER_CASES


def test_guest_starts_at_ring_1_as_the_abi_says(guest):
    result = run_guest(guest("entry"), mem=16)
    assert (result.returncode, result.stdout) == (0, (
        "cs 19 ds 21 es 21 fs 21 gs 21 ss 21 cpl 1\n"
        "esi 1000 esp c0001000\n"
        "boot magic ok version 1 mem 1000000 page_offset c0000000\n"
        "boot pgdir maps 0 yes and PAGE_OFFSET yes\n"
        "low alias ok\n")), result.stderr


def test_crossings_keep_every_register(guest):
    result = run_guest(guest("regs"))
    assert (result.returncode, result.stdout) == (0, (
        "a hypercall kept every register but eax\n"
        "a trap kept every register, CF, DF, and null fs and gs\n"
        "20 timer interrupts kept every register\n")), result.stderr


def test_a_run_of_faults_never_becomes_a_double_fault(guest):
    result = run_guest(guest("faults"))
    assert (result.returncode, result.stdout) == (0, (
        "50 #GP, 50 #DE, 50 #PF, page holds 49\n"
        "53 #GP\n")), result.stderr


def test_trap_from_ring_3_lands_on_the_set_stack_stack(guest):
    result = run_guest(guest("usermode"))
    assert (result.returncode, result.stdout) == (0, (
        "to ring 3\n"
        "system call 7 from cs 2b eip 7, user esp 804b000 ss 33\n"
        "frame at the top of the SET_STACK stack\n")), result.stderr


@pytest.mark.parametrize("case", SWITCHER_CASES)
def test_the_switcher_pages_are_out_of_reach(guest, case):
    result = run_guest(guest("kill", **{f"CASE_{case}": 1}))
    assert_killed(result, KILL_CASES[case])


def test_the_hypercall_registers_come_straight_from_the_live_cpu():
    from unicorn import UC_ARCH_X86, UC_MODE_32, Uc

    from unicorn.x86_const import UC_X86_REG_CS, UC_X86_REG_GDTR

    from lguest.switcher import (GPR_IDS, GPRS, HYPERCALL_ORDER, HYPERCALL_REGISTERS, RegisterBatch,
                                 descriptor, find_live_cpu, hypercall_reader)
    uc = Uc(UC_ARCH_X86, UC_MODE_32)
    before = {name: 0x1000 * index + 7 for index, name in enumerate(GPRS)}
    for name, register in zip(GPRS, GPR_IDS):
        uc.reg_write(register, before[name])
    assert find_live_cpu(uc) is not None
    assert [uc.reg_read(register) for register in GPR_IDS] == list(before.values())  # put back
    read = hypercall_reader(uc)
    assert not isinstance(read, RegisterBatch)  # this Unicorn's CPU was found
    batch = RegisterBatch(uc, tuple(HYPERCALL_REGISTERS[name] for name in HYPERCALL_ORDER))
    uc.mem_map(0, 0x1000)  # code segments at 0x08, 0x10 and 0x18, so that %cs can change
    uc.mem_write(0, b"".join(descriptor(0, 0xFFFFF, 0x9A).to_bytes(8, "little") for _ in range(4)))
    uc.reg_write(UC_X86_REG_GDTR, (0, 0, 31, 0))
    for trial in range(3):
        for index, register in enumerate(GPR_IDS):
            uc.reg_write(register, 0xC0DE0000 + 0x100 * trial + index)
        uc.reg_write(UC_X86_REG_CS, 8 * (trial + 1))
        expected = tuple(0xC0DE0000 + 0x100 * trial + GPRS.index(name) for name in HYPERCALL_ORDER[:-1])
        assert read() == batch() == expected + (8 * (trial + 1),)


def test_without_the_live_cpu_the_hypercall_registers_come_by_batch(monkeypatch):
    from unicorn import UC_ARCH_X86, UC_MODE_32, Uc
    from unicorn.x86_const import UC_X86_REG_EAX, UC_X86_REG_EBX, UC_X86_REG_ESI

    from lguest import switcher
    monkeypatch.setattr(switcher, "find_live_cpu", lambda uc: None)
    uc = Uc(UC_ARCH_X86, UC_MODE_32)
    read = switcher.hypercall_reader(uc)
    assert isinstance(read, switcher.RegisterBatch)
    uc.reg_write(UC_X86_REG_EAX, 9)
    uc.reg_write(UC_X86_REG_EBX, 0x1234)
    uc.reg_write(UC_X86_REG_ESI, 0x5678)
    assert read() == (9, 0, 0, 0x1234, 0x5678, 0)  # and %cs, still 0 in a fresh CPU


def test_the_host_snapshot_crosses_without_the_switcher(tmp_path):
    """The Host chapter's machine has no Switcher, no frame, no register file and no shadow
    pages: it comes in by the simple way, and its snapshot never names what the Switcher
    chapter explains (the book's plot, kept by a test rather than by hand)."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-m", "lguest", "tangle", "--upto", "host", "--into", str(tmp_path)],
                   cwd=root, check=True, capture_output=True)
    package = tmp_path / "src" / "lguest"
    assert not (package / "switcher.py").exists() and not (package / "switcher.S").exists()
    code = "\n".join(line for path in sorted(package.rglob("*.py")) if "literate" not in path.parts
                     for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))
    named = r"\b(?:FRAME|RegisterFile|ShadowPages)\b|\bSwitcher\(|\.switcher\b"  # words in messages may stay
    assert not re.findall(named, code)
    assert "TopPages" in code and "GuestTables" in code
