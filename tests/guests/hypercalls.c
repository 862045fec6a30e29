/* hypercalls: the calls with nothing to show for themselves are accepted
 * and return: FLUSH_TLB, SET_STACK, TS, SET_CLOCKEVENT (0: none),
 * SEND_INTERRUPTS with nothing pending, FLUSH_ASYNC with an empty ring, and
 * LOAD_IDT_ENTRY; a CONSOLE_WRITE of part of a string writes just that. */
#include "guest.h"

static void nothing(struct trapframe *tf)
{
	(void)tf;
}

void main(void)
{
	static const char text[] = "partial write ignored";
	lguest_init();
	hcall(LHCALL_CONSOLE_WRITE, PHYS(text), 7, 0, 0);
	print("\n");
	hcall(LHCALL_FLUSH_TLB, 0, 0, 0, 0);
	hcall(LHCALL_FLUSH_TLB, 1, 0, 0, 0);
	print("FLUSH_TLB\n");
	hcall(LHCALL_SET_STACK, KERNEL_DS, 0xC0080000, 1, 0);
	print("SET_STACK\n");
	hcall(LHCALL_TS, 1, 0, 0, 0);
	hcall(LHCALL_TS, 0, 0, 0, 0);
	print("TS\n");
	hcall(LHCALL_SET_CLOCKEVENT, 0, 0, 0, 0);
	print("SET_CLOCKEVENT\n");
	irq_enable();
	hcall(LHCALL_SEND_INTERRUPTS, 0, 0, 0, 0);
	irq_disable();
	print("SEND_INTERRUPTS\n");
	hcall(LHCALL_FLUSH_ASYNC, 0, 0, 0, 0);
	print("FLUSH_ASYNC\n");
	on_trap(0, nothing, TRAP_GATE);
	on_trap(32, nothing, INTERRUPT_GATE);
	print("LOAD_IDT_ENTRY\n");
	poweroff("hypercalls done");
}
