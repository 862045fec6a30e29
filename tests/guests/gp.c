/* gp: cli and hlt are privileged, so at ring 1 they raise #GP (vector 13),
 * which the Host reflects to our handler with an error code.  The handler
 * steps over the instruction and returns with iret. */
#include "guest.h"

extern char at_cli[], at_hlt[];
static volatile u32 faults;

static void gp(struct trapframe *tf)
{
	const char *where = tf->eip == (u32)at_cli ? "cli"
			  : tf->eip == (u32)at_hlt ? "hlt" : "somewhere else";
	faults++;
	printf("#GP error %x at %s, cs %x\n", tf->error, where, tf->cs);
	tf->eip += insn_length(tf->eip);
}

void main(void)
{
	lguest_init();
	catch_unexpected();
	on_trap(13, gp, TRAP_GATE);
	asm volatile(".globl at_cli\nat_cli: cli" ::: "memory");
	print("after cli\n");
	asm volatile(".globl at_hlt\nat_hlt: hlt" ::: "memory");
	printf("after hlt: %u faults\n", faults);
	poweroff("gp done");
}
