/* hello: register the shared page, print, power off with a message.
 * Written in assembler to show the runtime serves .S guests too. */
#include "guest.h"

	.text
	.globl main
main:
	call lguest_init
	PRINT "hello from ring 1\n"
	movl $goodbye - PAGE_OFFSET, %ebx	/* SHUTDOWN takes physical addresses */
	movl $SHUTDOWN_POWEROFF, %ecx
	HCALL LHCALL_SHUTDOWN
	PRINT "SHUTDOWN returned\n"
1:	jmp 1b

	.section .rodata
goodbye:
	.asciz "hello says goodbye"
