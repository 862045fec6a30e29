/* timer: SET_CLOCKEVENT arms a one-shot tick (IRQ 0, vector 32).  While the
 * virtual interrupt flag is off the tick is only noted in irq_pending; once
 * the guest turns it on and asks with SEND_INTERRUPTS, the handler runs.
 * Then HALT, called with interrupts off, turns them on and sleeps until the
 * next tick. */
#include "guest.h"

#define MS 1000000u
#define LONG_WAIT 500000000u

static volatile u32 ticks, saved_if, enabled_in_handler;

static void tick(struct trapframe *tf)
{
	ticks++;
	saved_if = tf->eflags & X86_EFLAGS_IF;
	enabled_in_handler = lguest_data.irq_enabled;
}

/* Spin until *what is nonzero, at most LONG_WAIT turns; the turns taken. */
static u32 wait_for(volatile u32 *what)
{
	volatile u32 turns;
	for (turns = 0; turns < LONG_WAIT && !*what; turns++)
		;
	return turns;
}

static void spin(u32 turns)
{
	volatile u32 i;
	for (i = 0; i < turns; i++)
		;
}

void main(void)
{
	lguest_init();
	catch_unexpected();
	on_trap(FIRST_EXTERNAL_VECTOR + TIMER_IRQ, tick, INTERRUPT_GATE);

	irq_disable();
	hcall(LHCALL_SET_CLOCKEVENT, 1 * MS, 0, 0, 0);
	if (wait_for(&lguest_data.irq_pending) == LONG_WAIT)
		poweroff("the tick never became pending");
	spin(1000000);
	printf("interrupts off: pending %s, %u ticks\n",
	       lguest_data.irq_pending ? "yes" : "no", ticks);

	irq_enable();
	if (lguest_data.irq_pending)
		hcall(LHCALL_SEND_INTERRUPTS, 0, 0, 0, 0);
	wait_for(&ticks);
	printf("interrupts on: %u ticks, saved IF %x, irq_enabled in handler %x, now %x\n",
	       ticks, saved_if, enabled_in_handler, lguest_data.irq_enabled);

	spin(1000000);
	printf("one-shot: still %u ticks\n", ticks);

	irq_disable(); /* so that the tick cannot come before the halt and leave it nothing */
	hcall(LHCALL_SET_CLOCKEVENT, 2 * MS, 0, 0, 0);
	hcall(LHCALL_HALT, 0, 0, 0, 0); /* which turns them on again, as sti; hlt would */
	while (ticks < 2 && wait_for(&ticks) < LONG_WAIT)
		;
	printf("halted until tick %u\n", ticks);
	poweroff("timer done");
}
