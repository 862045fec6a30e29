/* spin: arm the timer, keep virtual interrupts off, and spin forever.  Only
 * the Launcher's --timeout or host.stop() ends it. */
#include "guest.h"

	.text
	.globl main
main:
	call lguest_init
	PRINT "spinning\n"
	movl $1000000, %ebx			/* 1 ms: a tick that can never be delivered */
	HCALL LHCALL_SET_CLOCKEVENT
1:	jmp 1b
