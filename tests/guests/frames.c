/* frames: a trap frame that straddles a page boundary.  The stack pointer
 * sits 8 bytes above 0x40001000, so the #GP from cli pushes its flags and cs
 * above the boundary and its eip and error code below it.  The two pages are
 * mapped back to front: the lower one onto the frame that follows the upper
 * one's in guest-physical memory.  A Host that translated only one page and
 * wrote the whole frame through it would put half the frame in the wrong
 * place; ours must put every word where the guest's tables say.  Marks
 * around the frame show nothing else was written.
 *
 * Then again with the stack pointer 2 bytes above the boundary, so that the
 * first word pushed, the flags, itself straddles it: its low half must end
 * the lower page and its high half begin the upper one, not spill into the
 * frame that follows the lower page's in guest-physical memory. */
#include "guest.h"

#define LOW 0x40000000u
#define HIGH (LOW + PAGE_SIZE)
#define MARK 0x5A5A5A5Au

extern char at_cli[];
u32 saved_esp;
static volatile u32 seen_eip, seen_cs, seen_eflags, seen_error, seen_at;

static void gp(struct trapframe *tf)
{
	seen_eip = tf->eip;
	seen_cs = tf->cs;
	seen_eflags = tf->eflags;
	seen_error = tf->error;
	seen_at = (u32)&tf->eip;
	tf->eip += insn_length(tf->eip);
}

void main(void)
{
	u32 *pgdir, *high, *low, *beyond, i;

	lguest_init();
	catch_unexpected();
	on_trap(13, gp, TRAP_GATE);
	pgdir = new_pgdir();
	high = alloc_page();
	low = alloc_page(); /* the frame right after high's */
	beyond = alloc_page(); /* and the one after low's */
	for (i = 0; i < 1024; i++)
		high[i] = low[i] = beyond[i] = MARK;
	map_page(pgdir, LOW, PHYS(low), PTE_P | PTE_RW);
	map_page(pgdir, HIGH, PHYS(high), PTE_P | PTE_RW);
	use_pgdir(pgdir);
	printf("low's frame is high's + %x\n", PHYS(low) - PHYS(high));

	asm volatile("movl %%esp, saved_esp\n\t"
		     "movl %0, %%esp\n\t"
		     ".globl at_cli\nat_cli: cli\n\t"
		     "movl saved_esp, %%esp"
		     : : "i"(HIGH + 8) : "memory");

	printf("the handler saw eip %s, cs %x, error %x, the frame's eip at %x\n",
	       seen_eip == (u32)at_cli ? "at cli" : "elsewhere", seen_cs, seen_error, seen_at);
	printf("above the boundary: cs %x, eflags %s, then %x\n",
	       high[0], high[1] == seen_eflags ? "as seen" : "wrong", high[2]);
	printf("below it: eip %s, error %x\n", /* the handler stepped over the cli */
	       low[1023] == (u32)at_cli + 1 ? "just past cli" : "wrong", low[1022]);
	printf("the next frame up from low: %x, the last word of high: %x\n", beyond[0], high[1023]);

	for (i = 0; i < 1024; i++)
		high[i] = low[i] = beyond[i] = MARK;
	asm volatile("movl %%esp, saved_esp\n\t"
		     "movl %0, %%esp\n\t"
		     "cli\n\t"
		     "movl saved_esp, %%esp"
		     : : "i"(HIGH + 2) : "memory");
	printf("misaligned: the handler saw error %x, the frame's eip at %x\n", seen_error, seen_at);
	printf("the flags astride the boundary read back %s; ",
	       PEEK(HIGH - 2) == seen_eflags ? "as seen" : "wrong");
	printf("low half ends low: %s, high half starts high: %s\n",
	       low[1023] >> 16 == (seen_eflags & 0xFFFF) ? "yes" : "no",
	       (high[0] & 0xFFFF) == seen_eflags >> 16 ? "yes" : "no");
	printf("the next frame up from low: %x, the rest of high's first word: %x\n",
	       beyond[0], high[0] >> 16);
	poweroff("frames done");
}
