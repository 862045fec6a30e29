/* ticks: a timer-driven guest whose output depends on how far it got
 * between ticks, so it repeats exactly only in deterministic mode.  The
 * handler re-arms the timer every 200 microseconds. */
#include "guest.h"

#define TICKS 5

static volatile u32 ticks;

static void tick(struct trapframe *tf)
{
	(void)tf;
	ticks++;
	if (ticks < TICKS)
		hcall(LHCALL_SET_CLOCKEVENT, 200000, 0, 0, 0);
}

void main(void)
{
	u32 counts[TICKS];
	volatile u32 n = 0;
	u32 seen = 0, i;
	lguest_init();
	catch_unexpected();
	on_trap(FIRST_EXTERNAL_VECTOR + TIMER_IRQ, tick, INTERRUPT_GATE);
	hcall(LHCALL_SET_CLOCKEVENT, 200000, 0, 0, 0);
	irq_enable();
	while (seen < TICKS) {
		n++;
		if (ticks != seen) {
			counts[seen++] = n;
			n = 0;
		}
	}
	irq_disable();
	for (i = 0; i < TICKS; i++)
		printf("tick %u after %u turns\n", i + 1, counts[i]);
	poweroff("ticks done");
}
