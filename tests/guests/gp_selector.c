/* gp_selector: loading a data segment register with a selector the guest may
 * not use raises #GP with the selector as its error code.  0x1F9 is entry 63,
 * beyond the 32-entry GDT; 0x11 is entry 2, the Host's ring-0 data. */
#include "guest.h"

extern char at_load[];

static void gp(struct trapframe *tf)
{
	printf("#GP error %x%s\n", tf->error, tf->eip == (u32)at_load ? " at the load" : " ELSEWHERE");
	tf->eip += insn_length(tf->eip);
}

static __attribute__((noinline)) u32 load_ds(u32 selector)
{
	u32 ds;
	asm volatile(".globl at_load\nat_load: mov %1, %%ds\n\t"
		     "mov %%ds, %0\n\t"
		     "movl %2, %%ecx\n\t"
		     "mov %%ecx, %%ds"
		     : "=&r"(ds) : "r"(selector), "i"(KERNEL_DS) : "ecx", "memory");
	return ds;
}

void main(void)
{
	u32 ds;
	lguest_init();
	catch_unexpected();
	on_trap(13, gp, TRAP_GATE);
	ds = load_ds(0x1F9);
	printf("ds still %x\n", ds);
	ds = load_ds(0x11);
	printf("ds still %x\n", ds);
	poweroff("gp_selector done");
}
