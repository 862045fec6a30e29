/* crt0.S: the entry point, the shared page, the stack, and the trap stubs
 * of every test guest (see guest.h). */
#include "guest.h"

	.section .text.entry, "ax"
	.globl _start
_start:
	/* Write down what the Host gave us before touching anything. */
	movl %esp, entry_state+28
	movl %eax, entry_state+0
	movl %ebx, entry_state+4
	movl %ecx, entry_state+8
	movl %edx, entry_state+12
	movl %esi, entry_state+16
	movl %edi, entry_state+20
	movl %ebp, entry_state+24
	pushfl				/* the boot stack works, too */
	popl entry_state+32
	xorl %eax, %eax
	movw %cs, %ax
	movl %eax, entry_state+36
	movw %ds, %ax
	movl %eax, entry_state+40
	movw %es, %ax
	movl %eax, entry_state+44
	movw %fs, %ax
	movl %eax, entry_state+48
	movw %gs, %ax
	movl %eax, entry_state+52
	movw %ss, %ax
	movl %eax, entry_state+56
	movl %esi, boot_phys

	movl $stack_top, %esp
	cld
	call main
	pushl $0
	call poweroff

/* The end of every handler reached through a gate (ours are all entered
 * with the CPU frame on top of the stack): copy the saved virtual IF back
 * into lguest_data.irq_enabled, then iret.  The iret right after the store
 * is the one the Host must not interrupt (lguest_data.noirq_iret).  Flags
 * are ours to clobber here: iret reloads them.  %ss: because ds may not be
 * ours. */
	.text
	.globl irq_return, noirq_iret
irq_return:
	testl $X86_EFLAGS_IF, 8(%esp)
	jz 1f
	movl $X86_EFLAGS_IF, %ss:lguest_data+LGUEST_DATA_IRQ_ENABLED
noirq_iret:
	iret
1:	movl $0, %ss:lguest_data+LGUEST_DATA_IRQ_ENABLED
	iret

/* One stub per vector we may catch: push 0 for vectors without an error
 * code, then the vector, and go to trap_common. */
.macro STUB vec
stub_\vec:
	.if ((\vec == 8) || ((\vec >= 10) && (\vec <= 14)) || (\vec == 17))
	.else
	pushl $0
	.endif
	pushl $\vec
	jmp trap_common
.endm

#define STUB_VECTORS 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19, \
	32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,128,129

	.irp v, STUB_VECTORS
	STUB \v
	.endr

trap_common:
	pushal
	pushl %ds
	pushl %es
	movl $KERNEL_DS, %eax		/* we may have come from ring 3 */
	movl %eax, %ds
	movl %eax, %es
	cld
	pushl %esp			/* struct trapframe * */
	call trap_dispatch
	addl $4, %esp
	popl %es
	popl %ds
	popal
	addl $8, %esp			/* vector and error code */
	jmp irq_return

/* (vector, stub) pairs, ended by (-1, 0), for on_trap() */
	.section .rodata
	.globl trap_stubs
	.balign 4
trap_stubs:
	.irp v, STUB_VECTORS
	.long \v, stub_\v
	.endr
	.long -1, 0

	.bss
	.globl lguest_data, entry_state, boot_phys
	.balign PAGE_SIZE
lguest_data:
	.skip PAGE_SIZE
entry_state:
	.skip 64
boot_phys:
	.skip 4
	.balign 16
stack:
	.skip 16384
stack_top:
