"""The Host, checked by running small guests (tests/guests) through the
launcher's command and, for the outcome and host.stop(), through
lguest.host.core.Host itself. Each guest prints what it saw; each test
asserts the exact console output and exit status."""

from __future__ import annotations

import re
import time

import pytest
from conftest import GUESTS, abi_numbers, assert_killed, guest_names, header_defines, run_guest, run_host
from elftools.elf.elffile import ELFFile

from lguest import abi

# Misdeeds of tests/guests/kill.c (-DCASE_<name>), with what the guest prints first.
KILL_CASES = {
    "before_init": "",
    "init_outside_memory": "",
    "bad_hypercall": "start\n",
    "console_outside_memory": "start\n",
    "no_handler": "start\n",
    "unmapped_stack": "start\n",
    "split_stack_unmapped": "start\n",
    "split_stack_read_only": "start\n",
    "split_stack_outside_memory": "start\n",
    "word_astride_read_only": "start\n",
    "stack_wraps_into_switcher": "start\n",
    "pte_outside_memory": "start\n",
    "pte_outside_memory_no_set_pte": "start\n",
    "switcher_write": "start\n",
    "switcher_map": "start\n",
    "gdt_bad_index": "start\n",
    "idt_bad_vector": "start\n",
}
SWITCHER_CASES = ("switcher_write", "switcher_map")  # in test_switcher.py


# --- The guests themselves -------------------------------------------------------------


def test_abi_header_agrees_with_abi_py():
    """tests/guests/lguest.h carries abi.py's numbers, under the same names, or
    LHCALL_<call>, LGUEST_DATA_<FIELD> and BOOT_<FIELD>_OFF; it invents none."""
    expected = abi_numbers()
    defines = header_defines(GUESTS / "lguest.h")
    assert len(defines) > 60
    assert sorted(set(defines) - set(expected)) == []
    assert {name: value for name, value in defines.items() if value != expected[name]} == {}


BUILDS = [(name, None) for name in guest_names() if name != "kill"] + [("kill", case) for case in KILL_CASES]


@pytest.mark.parametrize("name, case", BUILDS, ids=[f"{n}-{c}" if c else n for n, c in BUILDS])
def test_guest_builds_into_a_kernel_the_launcher_takes(guest, name, case):
    elf = guest(name, **({f"CASE_{case}": 1} if case else {}))
    with open(elf, "rb") as stream:
        image = ELFFile(stream)
        assert (image.elfclass, image.little_endian) == (32, True)
        assert (image["e_machine"], image["e_type"]) == ("EM_386", "ET_EXEC")
        entry = image["e_entry"]
        assert entry >= abi.PAGE_OFFSET + abi.KERNEL_LOAD
        loads = [s.header for s in image.iter_segments() if s["p_type"] == "PT_LOAD"]
    assert loads
    for segment in loads:
        assert segment.p_paddr >= abi.KERNEL_LOAD
        assert segment.p_vaddr - segment.p_paddr == abi.PAGE_OFFSET
        assert segment.p_paddr + segment.p_memsz <= 4 << 20  # the guests map only 4 MiB
    assert any(s.p_vaddr <= entry < s.p_vaddr + s.p_filesz and s.p_flags & 1 for s in loads)


def test_guest_fixture_builds_source_text_once(guest):
    c = '#include "guest.h"\nvoid main(void) { lguest_init(); print("inline\\n"); }\n'
    assembler = '#include "guest.h"\n\t.globl main\nmain:\tcall lguest_init\n\tret\n'
    first, again = guest(c), guest(c)
    assert first == again and first.stat().st_size > 0
    assert guest(assembler) != first
    assert guest("hello") != guest("hello", EXTRA=1)


# --- Hypercalls --------------------------------------------------------------------------

def test_console_write_then_poweroff(guest):
    result = run_guest(guest("hello"))
    assert (result.returncode, result.stdout) == (0, "hello from ring 1\n"), result.stderr


def test_restart_exits_3(guest):
    result = run_guest(guest("restart"))
    assert (result.returncode, result.stdout) == (3, "restarting\n"), result.stderr


def test_hypercalls_without_visible_effects_return(guest):
    result = run_guest(guest("hypercalls"))
    assert (result.returncode, result.stdout) == (0, (
        "partial\nFLUSH_TLB\nSET_STACK\nTS\nSET_CLOCKEVENT\nSEND_INTERRUPTS\nFLUSH_ASYNC\n"
        "LOAD_IDT_ENTRY\n")), result.stderr


def test_host_reports_poweroff_and_restart_with_the_message(guest):
    outcome = run_host(guest("hello"))
    assert (outcome["kind"], outcome["console"]) == ("poweroff", "hello from ring 1\n")
    assert "hello says goodbye" in outcome["reason"]
    outcome = run_host(guest("restart"))
    assert (outcome["kind"], outcome["console"]) == ("restart", "restarting\n")
    assert "restart requested by the guest" in outcome["reason"]


def test_load_gdt_entry_segments_and_dpl_fixup(guest):
    result = run_guest(guest("gdt"))
    assert (result.returncode, result.stdout) == (0, (
        "ds 39, a store through it reads back 7777\n"
        "fs base 10: 12345678\n"
        "#GP error 0\n"
        "after a hypercall and a trap: fs 41, 9abcdef0\n"
        "lar ok, dpl 1\n"
        "loaded ds 49\n")), result.stderr


def test_ts_makes_the_fpu_raise_nm(guest):
    result = run_guest(guest("fpu"))
    assert (result.returncode, result.stdout) == (0, (
        "TS clear: fld1 gives 1, 0 #NM\n"
        "#NM at fld1\n"
        "TS set: fld1 gives 1 after 1 #NM\n"
        "TS cleared by the handler: fld1 gives 1, 1 #NM\n")), result.stderr


# --- Page tables -------------------------------------------------------------------------

def test_shadow_pages_are_built_on_demand_and_follow_new_pgtable(guest):
    result = run_guest(guest("pages"))
    assert (result.returncode, result.stdout) == (0, (
        "running on my own page tables\n"
        "32 of 32 pages written at 40000000 read back through PAGE_OFFSET\n"
        "written at 40100008, read at 40000008: cafef00d\n"
        "other bbbb, mine 1000, other bbbb\n")), result.stderr


def test_set_pte_flush_tlb_and_set_pgd_take_effect(guest):
    result = run_guest(guest("pte"))
    assert (result.returncode, result.stdout) == (0, (
        "SET_PTE: a then b\n"
        "FLUSH_TLB 0: c\n"
        "FLUSH_TLB 1: d then e\n"
        "SET_PGD: a then d\n")), result.stderr


def test_flush_async_runs_the_queued_calls_in_order(guest):
    result = run_guest(guest("async"))
    assert (result.returncode, result.stdout) == (0, (
        "before: a b c\n"
        "status ff ff ff ff\n"
        "after FLUSH_ASYNC: d e b\n"
        "a synchronous hypercall runs the queue first\n"
        "status ff, c\n")), result.stderr


def test_guest_handles_its_own_page_faults(guest):
    result = run_guest(guest("pagefault"))
    assert (result.returncode, result.stdout) == (0, (
        "page fault at 40000010, error 0\n"
        "read 1001\n"
        "page fault at 40001008, error 2\n"
        "wrote 22222222\n"
        "read-only page holds 5ead\n"
        "page fault at 40002000, error 3\n"
        "wrote 33333333, frame holds 33333333\n"
        "page fault at abc, error 0\n"
        "read 1004 at abc, 4 faults\n")), result.stderr


# --- Traps -------------------------------------------------------------------------------

def test_gp_from_cli_and_hlt_is_reflected(guest):
    result = run_guest(guest("gp"))
    assert (result.returncode, result.stdout) == (0, (
        "#GP error 0 at cli, cs 19\n"
        "after cli\n"
        "#GP error 0 at hlt, cs 19\n"
        "after hlt: 2 faults\n")), result.stderr


def test_gp_carries_the_selector_as_error_code(guest):
    result = run_guest(guest("gp_selector"))
    assert (result.returncode, result.stdout) == (0, (
        "#GP error 1f8 at the load\n"
        "ds still 21\n"
        "#GP error 10 at the load\n"
        "ds still 21\n")), result.stderr


def test_divide_error_is_delivered_without_error_code(guest):
    result = run_guest(guest("divide"))
    assert (result.returncode, result.stdout) == (0, (
        "divide error: vector 0, error 0, eip at the div, eax 77\n"
        "result 1234\n")), result.stderr


def test_invalid_opcode_is_delivered(guest):
    result = run_guest(guest("ud2"))
    assert (result.returncode, result.stdout) == (0, (
        "invalid opcode: vector 6 at the ud2\n"
        "after ud2\n")), result.stderr


def test_software_interrupts_and_gate_types(guest):
    result = run_guest(guest("swint"))
    assert (result.returncode, result.stdout) == (0, (
        "int3: vector 3, eip after the int3\n"
        "int 80: eax 2a, saved IF 200, irq_enabled 200\n"
        "returned 2b, irq_enabled 200\n"
        "int 81: eax 63, saved IF 200, irq_enabled 0\n"
        "returned 64, irq_enabled 200\n"
        "int 81: eax 7, saved IF 0, irq_enabled 0\n"
        "returned 8, irq_enabled 0\n")), result.stderr


def test_ring_3_makes_no_hypercalls_and_ints_only_through_gates_that_let_it(guest):
    """Each forbidden int from ring 3 is a #GP in the kernel's handler, at the int, with error
    vector * 8 + 2, and changes nothing: the secret is not printed, the kernel's gate for 0x81
    is still its own, the machine stays on. DPL-3 gates, exceptions and interrupts still work,
    and touching the Switcher's pages from ring 3 is the kernel's page fault, not a death."""
    result = run_guest(guest("ring3"))
    assert (result.returncode, result.stdout) == (0, (
        "to ring 3\n"
        "#GP error fa at the CONSOLE_WRITE from cs 2b\n"
        "#GP error fa at the LOAD_IDT_ENTRY from cs 2b\n"
        "int $0x81 reached the kernel's handler from cs 2b\n"
        "#GP error fa at the SHUTDOWN from cs 2b\n"
        "#GP error 102 at int $0x20 from cs 2b\n"
        "#GP error 72 at int $0x0e from cs 2b\n"
        "breakpoint from cs 2b, eip after the first int3\n"
        "breakpoint from cs 2b, eip after the first int $3\n"
        "the breakpoint and overflow gates are DPL 0 now\n"
        "#GP error 1a at the second int3 from cs 2b\n"
        "#GP error 1a at the second int $3 from cs 2b\n"
        "#GP error 22 at the into from cs 2b\n"
        "#GP error 22 at int $4 from cs 2b\n"
        "#GP error 0 at the cli from cs 2b\n"
        "divide error at the div from cs 2b\n"
        "page fault at the read of the Switcher from cs 2b, cr2 ffc00000, error 5\n"
        "page fault at the write to the Switcher from cs 2b, cr2 ffc00000, error 7\n"
        "timer interrupt from cs 2b\n"
        "the machine is still on\n")), result.stderr


# --- Time ----------------------------------------------------------------------------------

def test_timer_ticks_only_with_virtual_interrupts_on(guest):
    result = run_guest(guest("timer"))
    assert (result.returncode, result.stdout) == (0, (
        "interrupts off: pending yes, 0 ticks\n"
        "interrupts on: 1 ticks, saved IF 200, irq_enabled in handler 0, now 200\n"
        "one-shot: still 1 ticks\n"
        "halted until tick 2\n")), result.stderr


def test_blocked_interrupt_lines_wait(guest):
    result = run_guest(guest("blocked"))
    assert (result.returncode, result.stdout) == (0, "blocked: 0 ticks\nunblocked: 1 ticks\n"), \
        result.stderr


def test_timeout_stops_a_guest_spinning_with_interrupts_off(guest):
    started = time.monotonic()
    result = run_guest(guest("spin"), flags=["--timeout", "1"], timeout=60)
    elapsed = time.monotonic() - started
    reason = assert_killed(result, "spinning\n")
    assert re.search(r"time|stop", reason, re.IGNORECASE), reason
    assert elapsed < 15, elapsed


def test_host_stop_from_another_thread_ends_a_spinning_guest(guest):
    outcome = run_host(guest("spin"), stop_after=0.3)
    assert (outcome["kind"], outcome["console"]) == ("killed", "spinning\n")
    assert "stopped by the test" in outcome["reason"]
    assert outcome["after_stop"] < 3, outcome


def test_deterministic_runs_print_the_same_twice(guest):
    elf = guest("ticks")
    first = run_guest(elf, flags=["--deterministic"])
    second = run_guest(elf, flags=["--deterministic"])
    assert first.returncode == 0, first.stderr
    assert re.fullmatch(r"(tick \d after [1-9]\d* turns\n){5}", first.stdout), first.stdout
    assert (second.returncode, second.stdout) == (0, first.stdout), second.stderr


def test_deterministic_host_repeats_too(guest):
    elf = guest("ticks")
    first, second = (run_host(elf, deterministic=True) for _ in range(2))
    assert first["kind"] == "poweroff" and first["console"].count("\n") == 5, first
    assert second["console"] == first["console"]


# --- Killing a guest -------------------------------------------------------------------

@pytest.mark.parametrize("case", [c for c in KILL_CASES if c not in SWITCHER_CASES])
def test_misbehaving_guest_is_killed_with_one_line(guest, case):
    result = run_guest(guest("kill", **{f"CASE_{case}": 1}))
    assert_killed(result, KILL_CASES[case])


# Where a frame could not be pushed, the reason names the first word that found no
# writable page in guest memory, even when the words above it found one.
STACK_DEATHS = {
    "unmapped_stack": "fault while delivering trap 0: the stack at 0x4ffffffc is not writable",
    "split_stack_unmapped": "fault while delivering trap 13: the stack at 0x40000ffc is not writable",
    "split_stack_read_only": "fault while delivering trap 13: the stack at 0x40000ffc is not writable",
    "split_stack_outside_memory": "bad page table entry 0x7f000003 for 0x40000ffc",
    "word_astride_read_only": "fault while delivering trap 13: the stack at 0x40001000 is not writable",
    "stack_wraps_into_switcher": "fault while delivering trap 0: the stack at 0xfffffffc is not writable",
}


@pytest.mark.parametrize("case", STACK_DEATHS)
def test_a_frame_that_cannot_be_pushed_names_the_word_that_failed(guest, case):
    result = run_guest(guest("kill", **{f"CASE_{case}": 1}))
    assert assert_killed(result, KILL_CASES[case]) == STACK_DEATHS[case]


def test_a_frame_across_a_page_boundary_lands_on_both_pages(guest):
    """Whole words on either side of the boundary, then, from a misaligned stack, a word
    astride it, with the two pages mapped to frames that are not neighbours that way round."""
    result = run_guest(guest("frames"))
    assert (result.returncode, result.stdout) == (0, (
        "low's frame is high's + 1000\n"
        "the handler saw eip at cli, cs 19, error 0, the frame's eip at 40000ffc\n"
        "above the boundary: cs 19, eflags as seen, then 5a5a5a5a\n"
        "below it: eip just past cli, error 0\n"
        "the next frame up from low: 5a5a5a5a, the last word of high: 5a5a5a5a\n"
        "misaligned: the handler saw error 0, the frame's eip at 40000ff6\n"
        "the flags astride the boundary read back as seen; low half ends low: yes, "
        "high half starts high: yes\n"
        "the next frame up from low: 5a5a5a5a, the rest of high's first word: 5a5a\n")), result.stderr


def test_trap_without_handler_kills_through_the_host_too(guest):
    outcome = run_host(guest("kill", CASE_no_handler=1))
    assert (outcome["kind"], outcome["console"]) == ("killed", "start\n")
    assert outcome["reason"] and "\n" not in outcome["reason"]


def test_early_console_echoes_input_and_ends_at_eof(guest):
    result = run_guest(guest("echo"), input="hello, host\nbye\n")
    assert (result.returncode, result.stdout) == (0, (
        "HELLO, HOST\nBYE\nend of input after 16 bytes, woken by the console\n")), result.stderr


def test_early_console_is_deterministic(guest):
    runs = [run_guest(guest("echo"), flags=["--deterministic"], input="one\ntwo\n") for _ in range(2)]
    assert runs[0].stdout == runs[1].stdout == "ONE\nTWO\nend of input after 8 bytes, woken by the console\n"
    assert [run.returncode for run in runs] == [0, 0]


def test_an_exhausted_shadow_pool_kills_the_guest_with_a_reason(guest):
    """Two pool pages hold the Switcher's table and one directory: no room for any table."""
    import io

    from lguest import abi
    from lguest.host.core import Host
    from lguest.launcher import build_page_tables, load_kernel, make_memory, write_boot_page

    memory = make_memory(16)
    entry = load_kernel(memory, guest("hello"))
    pgdir = build_page_tables(memory)
    write_boot_page(memory, pgdir, "")
    host = Host(memory, console=io.BytesIO(), shadow_pool_pages=2)
    outcome = host.run(entry=entry, stack=abi.PAGE_OFFSET + abi.BOOT_PAGE, boot=abi.BOOT_PAGE, pgdir=pgdir)
    assert (outcome.kind, outcome.reason) == ("killed", "out of shadow page-table pages")


def test_a_tick_with_nothing_to_deliver_leaves_a_running_guest_alone(guest):
    """Every stop costs the guest an exit, so the timer thread pulls the brake only for
    a deadline that has come. The spinning guest arms one tick it can never take
    (interrupts off, no handler): a stop for that deadline (two, if the first comes a hair
    early), one for --timeout, and nothing more; a timer that stopped the guest on every
    look, as ours once did, made 543 stops in the same 0.7 seconds."""
    result = run_guest(guest("spin"), flags=["--verbose", "--timeout", "0.7"], timeout=60)
    stops = [line for line in result.stderr.splitlines() if line.startswith("exit timer")]
    assert (result.returncode, result.stdout) == (4, "spinning\n"), result.stderr
    assert "timed out" in result.stderr.splitlines()[-1]
    assert 1 <= len(stops) <= 4, stops


# --- Stops land between instructions, and raised lines arrive at once ("Time passes") --------

REPLAY_CLEAN = "running\nadd: 0 replayed\nxchg: 0 tokens lost\n"
CLOCKS = pytest.mark.parametrize("deterministic", [False, True], ids=["wall-clock", "deterministic"])


@CLOCKS
def test_timer_stops_never_run_a_guest_instruction_twice(guest, deterministic):
    """A 1 kHz tick (every 20,000 instructions on the deterministic clock) against an add
    to memory and an xchg: when the timer thread stopped the CPU itself, 1,962 of 2,000
    stops ran the add a second time."""
    elf = guest("replay", PERIOD=20_000) if deterministic else guest("replay")
    result = run_guest(elf, flags=("--deterministic",) if deterministic else (), timeout=120)
    assert (result.returncode, result.stdout, result.stderr) == (0, REPLAY_CLEAN, "")


@CLOCKS
def test_lines_raised_from_another_thread_never_run_an_instruction_twice(guest, deterministic):
    """A device thread raising a line a thousand times a second, as a flood of frames
    at a network card would: every raise stops the CPU, none replays."""
    outcome = run_host(guest("replay", LINE=5), raise_every=(5, 0.001),
                       deterministic=deterministic, timeout=120)
    assert (outcome["kind"], outcome["reason"], outcome["console"]) == (
        "poweroff", "replay done", REPLAY_CLEAN)
    # Each of the 4,000 interrupts the guest counts arrived by a stop, except one whose
    # raise landed while the CPU was already out of emu_start (in a hypercall, or
    # delivering the interrupt before it): that one needs no stop and waits for the
    # next entry. A few of those in a run are right; most arriving that way would not be.
    assert outcome["brake_stops"] >= 3600, outcome


@CLOCKS
def test_a_raised_line_reaches_its_handler_at_once_or_waits_in_irq_pending(guest, deterministic):
    """A store to a device register raises a line on the CPU's own thread: with interrupts
    on, the handler runs within a loop turn or two of the store; with them off, the line
    shows in irq_pending, and turning them on with SEND_INTERRUPTS runs the handler
    before the next instruction."""
    outcome = run_host(guest("irqtiming"), doorbell=5, deterministic=deterministic)
    assert (outcome["kind"], outcome["console"]) == ("poweroff", (
        "interrupts on: handler after 1 turn(s)\n"
        "interrupts off: pending 1, handled 0\n"
        "turned on: handled 1 before the next instruction\n")), outcome


GATES_WITH_ANY_SELECTOR = r"""
#include "guest.h"
struct stub {
	u32 vector;
	void *stub;
};
extern const struct stub trap_stubs[];

static void handler(struct trapframe *tf)
{
	u32 cs;
	asm volatile("mov %%cs, %0" : "=r"(cs));
	printf("int $0x80 from cs %x, handled in cs %x\n", tf->cs, cs);
}

void main(void)
{
	static const u32 selectors[] = {USER_CS, 0, 1 << 3, 0xFFFF};
	const struct stub *s;
	u32 i, offset;

	lguest_init();
	catch_unexpected();
	on_trap(SYSCALL_VECTOR, handler, TRAP_GATE);
	for (s = trap_stubs; s->vector != SYSCALL_VECTOR; s++)
		;
	offset = (u32)s->stub;
	for (i = 0; i < sizeof(selectors) / sizeof(selectors[0]); i++) {
		hcall(LHCALL_LOAD_IDT_ENTRY, SYSCALL_VECTOR, selectors[i] << 16 | (offset & 0xFFFF),
		      (offset & 0xFFFF0000) | 0x8000 | 3 << 13 | TRAP_GATE << 8, 0);
		asm volatile("int $0x80");
	}
	poweroff("gates done");
}
"""


def test_a_gate_always_leads_into_the_kernels_own_code_segment(guest):
    """Whatever selector a guest writes into a gate (a ring-3 one, the null one, the Host's
    own, one past the GDT), the Host replaces it with KERNEL_CS, as lguest did: a gate that
    kept its own once made the Switcher's iretd fault at ring 0."""
    result = run_guest(guest(GATES_WITH_ANY_SELECTOR))
    assert (result.returncode, result.stdout) == (0, "int $0x80 from cs 19, handled in cs 19\n" * 4), \
        result.stderr


HALT_WITH_INTERRUPTS_OFF = r"""
#include "guest.h"
static volatile u32 ticks;
static void tick(struct trapframe *tf)
{
	(void)tf;
	ticks++;
}
void main(void)
{
	lguest_init();
	on_trap(FIRST_EXTERNAL_VECTOR + TIMER_IRQ, tick, INTERRUPT_GATE);
	irq_disable();
	hcall(LHCALL_SET_CLOCKEVENT, 1000000, 0, 0, 0);
	hcall(LHCALL_HALT, 0, 0, 0, 0);
	printf("woken after %u tick(s), interrupts %s\n", ticks,
	       lguest_data.irq_enabled & X86_EFLAGS_IF ? "on" : "off");
	poweroff("woken");
}
"""


@pytest.mark.parametrize("deterministic", [False, True], ids=["wall-clock", "deterministic"])
def test_halt_with_interrupts_off_turns_them_on_and_sleeps_until_one_comes(guest, deterministic):
    """HALT is sti; hlt in one hypercall, as lguest's was: the only way a kernel can look for
    work with interrupts off and then sleep without losing the interrupt that comes between."""
    result = run_guest(guest(HALT_WITH_INTERRUPTS_OFF),
                       flags=("--deterministic",) if deterministic else ())
    assert (result.returncode, result.stdout) == (0, "woken after 1 tick(s), interrupts on\n"), \
        result.stderr


def test_a_deterministic_halt_waiting_on_a_device_sleeps(guest, tmp_path):
    """--deterministic, a network card that might one day deliver a frame, and a guest that
    halts with no timer: the Host must wait for the card without burning a CPU."""
    import resource

    from conftest import free_ports

    ports = free_ports(2)
    elf = guest('#include "guest.h"\nvoid main(void)\n{\n\tlguest_init();\n\tirq_enable();\n'
                '\tprint("halting\\n");\n\thcall(LHCALL_HALT, 0, 0, 0, 0);\n\tpoweroff("woken");\n}\n')
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = run_guest(elf, flags=("--deterministic", "--net", f"udp:{ports[0]}:{ports[1]}",
                                   "--timeout", "3"))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert assert_killed(result, "halting\n") == "stopped by the host: timed out after 3 seconds"
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    assert cpu < 1.5, f"{cpu:.2f} s of CPU in 3 s of sleep"


def test_verbose_names_the_interrupted_eip_and_who_handled_each_page_fault(guest):
    """An interrupt's line names where the guest was, not where its handler is; a page
    fault the Host mends is «Demand paging»'s, one it reflects is the guest's to handle."""
    result = run_guest(guest("pagefault"), flags=("--verbose",))
    assert result.returncode == 0, result.stderr
    faults = [line for line in result.stderr.splitlines() if line.startswith("exit trap page fault")]
    assert any("«Demand paging»" in line for line in faults), faults
    assert any("«Deliver interrupts and traps»" in line for line in faults), faults
    elf = guest("timer")
    with open(elf, "rb") as stream:
        stub = ELFFile(stream).get_section_by_name(".symtab").get_symbol_by_name("stub_32")[0]
    result = run_guest(elf, flags=("--verbose",))
    interrupted = re.findall(r"^exit interrupt vector 32 at (0x[0-9a-f]+)", result.stderr, re.M)
    assert interrupted, result.stderr
    assert stub["st_value"] not in {int(eip, 16) for eip in interrupted}, interrupted


KERNEL_ADDRESS = r"""
#include "guest.h"
void main(void)
{
	memset((void *)lguest_data.async_status, ASYNC_DONE, ASYNC_SLOTS);
	lguest_data.kernel_address = KERNEL_ADDRESS;
	lguest_data.noirq_iret = (u32)noirq_iret;
	hcall(LHCALL_LGUEST_INIT, PHYS(&lguest_data), 0, 0, 0);
	poweroff("registered");
}
"""


@pytest.mark.parametrize("given, used", [(0x80000000, 0x80000000), (0, abi.PAGE_OFFSET)])
def test_lguest_init_reads_where_the_kernel_mappings_begin(guest, given, used):
    """The shared page's kernel_address, read once at LGUEST_INIT (0 means PAGE_OFFSET),
    tells the shadow pager which directory entries every address space shares."""
    from conftest import ConsoleCapture, load_guest

    from lguest.host.core import Host

    memory, run = load_guest(guest(KERNEL_ADDRESS, KERNEL_ADDRESS=f"{given:#x}u"))
    host = Host(memory, console=ConsoleCapture())
    assert host.run(**run).kind == "poweroff"
    assert host.pages.kernel_address == used


def test_a_kernel_address_above_the_switcher_is_killed(guest):
    result = run_guest(guest(KERNEL_ADDRESS, KERNEL_ADDRESS="0xFFC01000u"))
    assert assert_killed(result) == "bad kernel_address 0xffc01000: the Switcher's is the top 4 MiB"


PARKED_ON_NOIRQ_IRET = r"""
#include "guest.h"
static void tick(struct trapframe *tf) { (void)tf; }
void main(void)
{
	lguest_init();
	on_trap(FIRST_EXTERNAL_VECTOR + TIMER_IRQ, tick, INTERRUPT_GATE);
	irq_enable();
	hcall(LHCALL_SET_CLOCKEVENT, 1000, 0, 0, 0);
	print("parked\n");
	asm volatile("movl $1f, %0\n\t"
		     "1: jmp 1b"
		     : "=m"(lguest_data.noirq_iret));
}
"""


@CLOCKS
def test_a_guest_parked_on_its_noirq_iret_is_still_stopped(guest, deterministic):
    """No interrupt may stop a guest at its noirq_iret, so a guest that points it at a
    tight loop never takes its tick; a stop for good must not honour that."""
    flags = ("--timeout", "1", *(("--deterministic",) if deterministic else ()))
    result = run_guest(guest(PARKED_ON_NOIRQ_IRET), flags=flags)
    assert assert_killed(result, "parked\n") == "stopped by the host: timed out after 1 seconds"
