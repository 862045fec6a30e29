/* A guest written from the Guest chapter's section "Everything else a guest needs to know" and
 * the numbers above it, and nothing else: no runtime, no headers, no C.
 *
 * It checks the boot page, registers its shared page, says hello, takes one timer tick while
 * sleeping in HALT, and powers off.  It is linked at its physical address, 1 MiB, and runs on the
 * Launcher's page tables, which map memory at 0 as well as at PAGE_OFFSET: so here virtual and
 * physical addresses are the same, and hypercalls can be given our own addresses.
 *
 *   gcc -m32 -c hello.S && ld -m elf_i386 -N -Ttext=0x100000 -e _start -o hello.elf hello.o
 */
#define HCALL(n) movl $n, %eax; int $0x1f

	.text
	.globl _start
_start:
	cmpl $0x5950474C, (%esi)		/* BOOT_MAGIC: is this lguest.py? */
	jne .				/* no: nobody to tell, so spin until killed */

	movl $noirq_iret, lguest_data + 32	/* noirq_iret */
	movl $64, %ecx
1:	movb $0xFF, lguest_data + 63(%ecx)	/* every async slot ASYNC_DONE */
	loop 1b
	movl $lguest_data, %ebx
	HCALL(1)				/* LGUEST_INIT */

	movl $hello, %ebx
	movl $hello_len, %ecx
	HCALL(20)				/* CONSOLE_WRITE */

	movl $tick, %ecx			/* an interrupt gate for vector 32 (timer, line 0) */
	movl %ecx, %edx
	andl $0xFFFF, %ecx
	orl $(0x19 << 16), %ecx			/* KERNEL_CS, offset 15..0 */
	andl $0xFFFF0000, %edx
	orl $0x8E00, %edx			/* offset 31..16, present, DPL 0, type 0xE */
	movl $32, %ebx
	HCALL(6)				/* LOAD_IDT_ENTRY */

	movl $1000000, %ebx
	HCALL(9)				/* SET_CLOCKEVENT: 1 ms from now */
	movl $0x200, lguest_data		/* irq_enabled = X86_EFLAGS_IF */
2:	cmpl $0, ticks
	jne 3f
	HCALL(10)				/* HALT until the tick */
	jmp 2b

3:	movl $ticked, %ebx
	movl $ticked_len, %ecx
	HCALL(20)				/* CONSOLE_WRITE */
	movl $goodbye, %ebx
	movl $1, %ecx				/* SHUTDOWN_POWEROFF */
	HCALL(2)				/* SHUTDOWN */
	jmp .

/* The timer: count, re-arm (so that a HALT always has something to wake it), and return the way
 * the contract says: IF from the saved EFLAGS into irq_enabled, then the iret at noirq_iret. */
tick:
	incl ticks
	pushl %eax
	pushl %ebx
	movl $1000000, %ebx
	HCALL(9)
	popl %ebx
	popl %eax
	testl $0x200, 8(%esp)			/* EFLAGS, above EIP and CS */
	jz 4f
	movl $0x200, lguest_data
noirq_iret:
	iret
4:	movl $0, lguest_data
	iret

	.data
hello:	.ascii "hello from a guest written from the contract alone\n"
	hello_len = . - hello
ticked:	.ascii "and the timer ticked\n"
	ticked_len = . - ticked
goodbye: .asciz "goodbye"
ticks:	.long 0
	.balign 4096
lguest_data:
	.skip 1408				/* LGUEST_DATA_SIZE */
