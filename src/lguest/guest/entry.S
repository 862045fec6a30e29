/* Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'. */
/* «src/lguest/guest/entry.S» book/guest-kernel.md:467 @9fe8bf04 */
/* entry.S: the kernel's first instructions, its trap stubs and the way back out of a trap. */
#include "lguest.h"

/* «The entry point» book/guest-kernel.md:309 @9f75cd72 */
	.section .text.entry, "ax"
	.globl _start
_start:
	movl $boot_stack_top, %esp	/* a stack of our own, in our own .bss */
	xorl %ebp, %ebp
	cld
	pushl %esi			/* the boot page's physical address */
	call start_kernel
	ud2				/* start_kernel never returns */
/* «/The entry point» */

/* «One stub per vector» book/guest-kernel.md:350 @acb1e736 */
.macro TRAP_STUB vector
trap_\vector:
	.if (\vector == 8) || ((\vector >= 10) && (\vector <= 14)) || (\vector == 17)
	.else
	pushl $0
	.endif
	pushl $\vector
	jmp trap_common
.endm

/* The CPU's exceptions, then the timer and the console's input line. */
#define VECTORS 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,32,33

	.text
	.irp vector, VECTORS
	TRAP_STUB \vector
	.endr

/* (vector, stub) pairs for traps_init(), ended by a vector of -1. */
	.section .rodata
	.balign 4
	.globl trap_stubs
trap_stubs:
	.irp vector, VECTORS
	.long \vector, trap_\vector
	.endr
	.long -1, 0
/* «/One stub per vector» */
/* «One stub per vector»[2] book/drivers-guest.md:224 @10c8118a */
/* Stubs for the devices' lines, 2 to 9; virtio.c installs a gate for each device it finds. */
#define DEVICE_VECTORS 34,35,36,37,38,39,40,41
	.text
	.irp vector, DEVICE_VECTORS
	TRAP_STUB \vector
	.endr

	.section .rodata
	.balign 4
	.globl device_stubs
device_stubs:
	.irp vector, DEVICE_VECTORS
	.long trap_\vector
	.endr
/* «/One stub per vector» */

/* «The way back from a trap» book/guest-kernel.md:397 @f99d55c0 */
	.text
trap_common:
	pushal
	pushl %ds
	pushl %es
	movl $KERNEL_DS, %eax
	movl %eax, %ds
	movl %eax, %es
	pushl %esp			/* the struct trapframe */
	call handle_trap
	addl $4, %esp
	popl %es
	popl %ds
	popal
	addl $8, %esp			/* the vector and the error code */

	.globl noirq_iret
	testl $X86_EFLAGS_IF, 8(%esp)	/* the saved EFLAGS, above eip and cs */
	jz 1f
	movl $X86_EFLAGS_IF, lguest_data + LGUEST_DATA_IRQ_ENABLED
noirq_iret:
	iret				/* the Host never interrupts us here */
1:	movl $0, lguest_data + LGUEST_DATA_IRQ_ENABLED
	iret
/* «/The way back from a trap» */

/* «Saving and resuming a context» book/guest-kernel.md:439 @66579636 */
	.text
	.globl save_context, resume_context
save_context:
	movl 4(%esp), %eax
	movl %ebx, 0(%eax)
	movl %esi, 4(%eax)
	movl %edi, 8(%eax)
	movl %ebp, 12(%eax)
	leal 4(%esp), %ecx		/* the stack pointer after our ret */
	movl %ecx, 16(%eax)
	movl (%esp), %ecx		/* where our ret would go */
	movl %ecx, 20(%eax)
	xorl %eax, %eax
	ret

resume_context:
	movl 4(%esp), %edx
	movl 8(%esp), %eax		/* what save_context returns, this time */
	movl 0(%edx), %ebx
	movl 4(%edx), %esi
	movl 8(%edx), %edi
	movl 12(%edx), %ebp
	movl 16(%edx), %esp
	jmp *20(%edx)
/* «/Saving and resuming a context» */

/* «The stack and the shared page» book/guest-kernel.md:327 @cc757cef */
	.bss
	.balign PAGE_SIZE
	.globl lguest_data, stack_guard, boot_stack_top
lguest_data:
	.skip PAGE_SIZE
stack_guard:
	.skip PAGE_SIZE
	.skip 4 * PAGE_SIZE
boot_stack_top:
/* «/The stack and the shared page» */
/* «/src/lguest/guest/entry.S» */
