/* regs: every crossing between guest and Host keeps the guest's registers.
 * A hypercall keeps all but eax; a trap the guest handles keeps all of them,
 * its arithmetic flags, its direction flag and its (null) fs and gs; and a
 * loop that checks all of them goes on checking while twenty timer
 * interrupts come and go. */
#include "guest.h"

.macro LOAD_MAGIC
	movl $0xB0B0B0B0, %ebx
	movl $0xC0C0C0C0, %ecx
	movl $0xD0D0D0D0, %edx
	movl $0x51515151, %esi
	movl $0xD1D1D1D1, %edi
	movl $0xBBBBBBBB, %ebp
.endm

/* CHECK reg, value, code: on a mismatch, report the code and the value. */
.macro CHECK reg, value, code
	cmpl $\value, %\reg
	je .Lok\@
	movl %\reg, bad_value
	movl $\code, bad_reg
	jmp fail
.Lok\@:
.endm

.macro CHECK_MAGIC
	CHECK ebx, 0xB0B0B0B0, 'b'
	CHECK ecx, 0xC0C0C0C0, 'c'
	CHECK edx, 0xD0D0D0D0, 'd'
	CHECK esi, 0x51515151, 'S'
	CHECK edi, 0xD1D1D1D1, 'D'
	CHECK ebp, 0xBBBBBBBB, 'B'
	cmpl saved_esp, %esp
	je .Lesp_ok\@
	movl %esp, bad_value
	movl $'s', bad_reg
	jmp fail
.Lesp_ok\@:
.endm

.macro CHECK_SEGMENT sreg, value, code
	xorl %eax, %eax
	movw %\sreg, %ax
	CHECK eax, \value, \code
.endm

	.text
	.globl main
main:
	call lguest_init
	pushl $0
	pushl $TRAP_GATE
	pushl $gp_skip
	pushl $13
	call set_gate
	addl $16, %esp
	pushl $0
	pushl $INTERRUPT_GATE
	pushl $tick
	pushl $(FIRST_EXTERNAL_VECTOR + TIMER_IRQ)
	call set_gate
	addl $16, %esp

	/* A hypercall. */
	LOAD_MAGIC
	movl %esp, saved_esp
	movl $LHCALL_SEND_INTERRUPTS, %eax
	int $HYPERCALL_VECTOR
	CHECK_MAGIC
	PRINT "a hypercall kept every register but eax\n"

	/* A trap, with CF and DF set and null fs and gs. */
	xorl %eax, %eax
	movl %eax, %fs
	movl %eax, %gs
	LOAD_MAGIC
	movl $0xAAAAAAAA, %eax
	movl %esp, saved_esp
	stc
	std
	cli				/* #GP: gp_skip steps over it */
	pushfl
	popl saved_flags
	cld
	CHECK eax, 0xAAAAAAAA, 'a'
	CHECK_MAGIC
	movl saved_flags, %eax
	andl $0x401, %eax
	CHECK eax, 0x401, 'f'
	CHECK_SEGMENT fs, 0, 'F'
	CHECK_SEGMENT gs, 0, 'G'
	CHECK_SEGMENT ds, KERNEL_DS, 'x'
	CHECK_SEGMENT es, KERNEL_DS, 'e'
	CHECK_SEGMENT ss, KERNEL_DS, 'y'
	CHECK_SEGMENT cs, KERNEL_CS, 'z'
	movl $KERNEL_DS, %eax
	movl %eax, %fs
	movl %eax, %gs
	PRINT "a trap kept every register, CF, DF, and null fs and gs\n"

	/* Timer interrupts every 100 us, arriving anywhere in this loop. */
	movl $100000, %ebx
	HCALL LHCALL_SET_CLOCKEVENT
	movl $X86_EFLAGS_IF, lguest_data+LGUEST_DATA_IRQ_ENABLED
	LOAD_MAGIC
	movl $0xAAAAAAAA, %eax
	movl %esp, saved_esp
	movl $50000000, budget
1:	CHECK eax, 0xAAAAAAAA, 'a'
	CHECK_MAGIC
	cmpl $20, ticks
	jae 2f
	decl budget
	jnz 1b
	movl $0, lguest_data+LGUEST_DATA_IRQ_ENABLED
	PRINT "too few timer interrupts\n"
	pushl $0
	call restart
2:	movl $0, lguest_data+LGUEST_DATA_IRQ_ENABLED
	PRINT "20 timer interrupts kept every register\n"
	pushl $0
	call poweroff

fail:
	movl $fail_stack_top, %esp
	movl $KERNEL_DS, %eax
	movl %eax, %ds
	movl %eax, %es
	cld
	movl $0, lguest_data+LGUEST_DATA_IRQ_ENABLED
	pushl bad_value
	pushl bad_reg
	pushl $fail_format
	call printf
	pushl $0
	call restart

/* #GP: step over the one-byte cli (error code at 0, eip at 4). */
gp_skip:
	addl $1, 4(%esp)
	addl $4, %esp
	jmp irq_return

/* The timer: count, and re-arm. */
tick:
	incl ticks
	pushl %eax
	pushl %ebx
	movl $LHCALL_SET_CLOCKEVENT, %eax
	movl $100000, %ebx
	int $HYPERCALL_VECTOR
	popl %ebx
	popl %eax
	jmp irq_return

	.section .rodata
fail_format:
	.asciz "register %c changed: %x\n"

	.bss
	.balign 4
ticks:	.skip 4
budget:	.skip 4
saved_esp: .skip 4
saved_flags: .skip 4
bad_value: .skip 4
bad_reg: .skip 4
	.balign 16
	.skip 4096
fail_stack_top:
