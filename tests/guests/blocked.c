/* blocked: a line whose bit is set in lguest_data.blocked_interrupts is not
 * delivered even with interrupts on; clearing the bit lets it through. */
#include "guest.h"

#define LONG_WAIT 500000000u

static volatile u32 ticks;

static void tick(struct trapframe *tf)
{
	(void)tf;
	ticks++;
}

void main(void)
{
	volatile u32 i;
	lguest_init();
	catch_unexpected();
	on_trap(FIRST_EXTERNAL_VECTOR + TIMER_IRQ, tick, INTERRUPT_GATE);

	lguest_data.blocked_interrupts = 1u << TIMER_IRQ;
	irq_enable();
	hcall(LHCALL_SET_CLOCKEVENT, 1000000, 0, 0, 0); /* 1 ms */
	for (i = 0; i < 30000000; i++)
		;
	printf("blocked: %u ticks\n", ticks);

	lguest_data.blocked_interrupts = 0;
	hcall(LHCALL_SEND_INTERRUPTS, 0, 0, 0, 0);
	for (i = 0; i < LONG_WAIT && !ticks; i++)
		;
	printf("unblocked: %u ticks\n", ticks);
	poweroff("blocked done");
}
