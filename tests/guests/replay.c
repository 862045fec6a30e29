/* replay: no stop the Host makes runs a guest instruction twice.
 *
 * Interrupts arrive at line LINE (the timer, re-armed by the handler every
 * PERIOD nanoseconds, or a line the test raises from another thread) while the
 * guest runs two loops.  The first adds one to a word in memory and one to a
 * register: an add that ran twice leaves the word ahead.  The second passes a token back
 * and forth with pairs of xchg: one that ran twice leaves the token on the
 * wrong side.  Each loop runs until ROUNDS interrupts have been taken. */
#include "guest.h"

#ifndef LINE
#define LINE TIMER_IRQ
#endif
#ifndef ROUNDS
#define ROUNDS 2000
#endif
#ifndef PERIOD
#define PERIOD 1000000u /* nanoseconds between ticks: 1 kHz */
#endif

static volatile u32 taken, word, slot;

static void interrupt(struct trapframe *tf)
{
	(void)tf;
	taken++;
	if (LINE == TIMER_IRQ)
		hcall(LHCALL_SET_CLOCKEVENT, PERIOD, 0, 0, 0);
}

void main(void)
{
	u32 reg = 0, token = 1, lost = 0;

	lguest_init();
	catch_unexpected();
	on_trap(FIRST_EXTERNAL_VECTOR + LINE, interrupt, INTERRUPT_GATE);
	irq_enable();
	if (LINE == TIMER_IRQ)
		hcall(LHCALL_SET_CLOCKEVENT, PERIOD, 0, 0, 0);
	print("running\n");

	taken = 0;
	asm volatile("1:	addl $1, %[word]\n\t"
		     "	addl $1, %[reg]\n\t"
		     "	cmpl %[rounds], %[taken]\n\t"
		     "	jb 1b"
		     : [word] "+m"(word), [reg] "+r"(reg)
		     : [taken] "m"(taken), [rounds] "i"(ROUNDS));
	printf("add: %u replayed\n", word - reg);

	taken = 0;
	asm volatile("1:	xchgl %[token], %[slot]\n\t"
		     "	xchgl %[token], %[slot]\n\t"
		     "	cmpl $1, %[token]\n\t"
		     "	je 2f\n\t"
		     "	incl %[lost]\n\t"
		     "	movl $1, %[token]\n\t"
		     "	movl $0, %[slot]\n"
		     "2:	cmpl %[rounds], %[taken]\n\t"
		     "	jb 1b"
		     : [slot] "+m"(slot), [token] "+r"(token), [lost] "+r"(lost)
		     : [taken] "m"(taken), [rounds] "i"(ROUNDS));
	printf("xchg: %u tokens lost\n", lost);
	poweroff("replay done");
}
