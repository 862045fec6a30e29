/* fpu: the TS hypercall sets the task-switched bit, so the next FPU
 * instruction raises #NM (vector 7, no error code) at that instruction; the
 * handler clears TS and returns, and the instruction then runs. */
#include "guest.h"

extern char at_fld1[];
static volatile u32 nm;

static void device_not_available(struct trapframe *tf)
{
	nm++;
	printf("#NM at %s\n", tf->eip == (u32)at_fld1 ? "fld1" : "the WRONG place");
	hcall(LHCALL_TS, 0, 0, 0, 0);
}

static __attribute__((noinline)) u32 one(void)
{
	u32 value;
	asm volatile(".globl at_fld1\nat_fld1: fld1\n\t"
		     "subl $4, %%esp\n\t"
		     "fistpl (%%esp)\n\t"
		     "popl %0"
		     : "=r"(value) : : "memory");
	return value;
}

static u32 plain_one(void)
{
	u32 value;
	asm volatile("fld1\n\t"
		     "subl $4, %%esp\n\t"
		     "fistpl (%%esp)\n\t"
		     "popl %0"
		     : "=r"(value) : : "memory");
	return value;
}

void main(void)
{
	u32 v;
	lguest_init();
	catch_unexpected();
	on_trap(7, device_not_available, TRAP_GATE);
	asm volatile("fninit");
	v = plain_one();
	printf("TS clear: fld1 gives %u, %u #NM\n", v, nm);
	hcall(LHCALL_TS, 1, 0, 0, 0);
	v = one();
	printf("TS set: fld1 gives %u after %u #NM\n", v, nm);
	v = plain_one();
	printf("TS cleared by the handler: fld1 gives %u, %u #NM\n", v, nm);
	poweroff("fpu done");
}
