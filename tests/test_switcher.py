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
