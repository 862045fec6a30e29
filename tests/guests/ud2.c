/* ud2: an invalid opcode is a trap (vector 6) the Host reflects to us. */
#include "guest.h"

extern char at_ud2[];

static void ud(struct trapframe *tf)
{
	printf("invalid opcode: vector %u at %s\n", tf->vector,
	       tf->eip == (u32)at_ud2 ? "the ud2" : "the WRONG place");
	tf->eip += insn_length(tf->eip);
}

void main(void)
{
	lguest_init();
	catch_unexpected();
	on_trap(6, ud, TRAP_GATE);
	asm volatile(".globl at_ud2\nat_ud2: ud2" ::: "memory");
	print("after ud2\n");
	poweroff("ud2 done");
}
