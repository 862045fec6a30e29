/* Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'. */
/* «src/lguest/switcher.S» book/switcher.md:171 @ee08bcfd */
/* The Switcher: from a clean ring-0 state into the Guest at ring 1.
   Assembled with GNU as; REGS_ADDRESS is passed in with --defsym. */
	.text
	.code32
	.globl	switcher_entry
switcher_entry:
	movl	$REGS_ADDRESS, %esp	/* the guest's frame is our stack */
	popl	%gs
	popl	%fs
	popl	%es
	popl	%ds
	popal				/* edi esi ebp (esp skipped) ebx edx ecx eax */
	iretl				/* eip cs eflags esp ss: and we are in ring 1 */
	nop				/* never run: a fence for the translation above */
	.globl	switcher_stop
switcher_stop:
	ud2				/* never reached: emu_start's end address */
/* «/src/lguest/switcher.S» */
