/* divide: a divide error (vector 0, no error code) reaches our handler with
 * eip on the div; the handler steps over it. */
#include "guest.h"

extern char at_div[];

static void de(struct trapframe *tf)
{
	printf("divide error: vector %u, error %x, eip %s, eax %x\n", tf->vector, tf->error,
	       tf->eip == (u32)at_div ? "at the div" : "WRONG", tf->eax);
	tf->eax = 0x1234;
	tf->eip += insn_length(tf->eip);
}

void main(void)
{
	u32 result;
	lguest_init();
	catch_unexpected();
	on_trap(0, de, TRAP_GATE);
	asm volatile("xorl %%edx, %%edx\n\t"
		     "xorl %%ecx, %%ecx\n\t"
		     "movl $0x77, %%eax\n\t"
		     ".globl at_div\nat_div: divl %%ecx"
		     : "=a"(result) : : "ecx", "edx", "cc");
	printf("result %x\n", result);
	poweroff("divide done");
}
