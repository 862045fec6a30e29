/* echo: the early console's input.  With a handler for the console line, the
 * guest looks for input with interrupts off and HALTs (which turns them on)
 * until some arrives, reads it with CONSOLE_READ, and writes it back in upper
 * case.  Looking with interrupts on would lose a wake-up now and then: the
 * line's interrupt taken between the look and the halt.  At the end of the input
 * it powers off, reporting how many bytes it saw and how often it woke. */
#include "guest.h"

static volatile u32 wakeups;

static void console_irq(struct trapframe *tf)
{
	(void)tf;
	wakeups++;
}

void main(void)
{
	static char buffer[64];
	u32 total = 0;

	lguest_init();
	catch_unexpected();
	on_trap(FIRST_EXTERNAL_VECTOR + CONSOLE_IRQ, console_irq, INTERRUPT_GATE);
	irq_enable();
	for (;;) {
		u32 got;
		irq_disable(); /* look with interrupts off, so none slips in before the halt */
		got = hcall(LHCALL_CONSOLE_READ, PHYS(buffer), sizeof(buffer), 0, 0);
		if (got == 0) {
			hcall(LHCALL_HALT, 0, 0, 0, 0); /* turns them on, as sti; hlt would */
			continue;
		}
		irq_enable();
		if (got == CONSOLE_EOF)
			break;
		for (u32 i = 0; i < got; i++)
			if (buffer[i] >= 'a' && buffer[i] <= 'z')
				buffer[i] -= 'a' - 'A';
		hcall(LHCALL_CONSOLE_WRITE, PHYS(buffer), got, 0, 0);
		total += got;
	}
	printf("end of input after %u bytes, woken %s\n", total, wakeups ? "by the console" : "never");
	poweroff("echoed");
}
