/* irqtiming: how soon a raised line reaches its handler.
 *
 * The first device in the boot page is a one-register doorbell that the test
 * plugs in: a store to it raises the device's line on the CPU's own thread, as
 * a virtio QueueNotify that finishes its request at once does.  The guest
 * counts loop turns in %esi after its store until the handler runs: with
 * interrupts on, the line must arrive within a turn or two.  With interrupts
 * off it must wait, and say so in irq_pending; the guest then turns them on,
 * and the handler must run before a single turn, through SEND_INTERRUPTS. */
#include "guest.h"

#define DEVICE_VA 0x50000000u

static volatile u32 handled, turns_seen;

static void doorbell(struct trapframe *tf)
{
	turns_seen = tf->esi;
	handled = 1;
}

/* Ring the doorbell, then count turns until the handler has run. */
static u32 count_turns(void)
{
	u32 turns = 0;

	handled = 0;
	asm volatile("	movl $1, %[bell]\n"
		     "1:	incl %[turns]\n\t"
		     "	cmpl $0, %[handled]\n\t"
		     "	je 1b"
		     : [turns] "+S"(turns), [bell] "=m"(*(volatile u32 *)DEVICE_VA)
		     : [handled] "m"(handled));
	return turns_seen;
}

void main(void)
{
	const u32 *boot = (const u32 *)(boot_phys + PAGE_OFFSET);
	u32 *pgdir, line, pending, now;
	volatile u32 i;

	lguest_init();
	catch_unexpected();
	if (boot[7] == 0)
		poweroff("no devices");
	line = boot[BOOT_DEVICES / 4 + 3];
	pgdir = new_pgdir();
	map_page(pgdir, DEVICE_VA, boot[BOOT_DEVICES / 4 + 1], PTE_P | PTE_RW);
	use_pgdir(pgdir);
	on_trap(FIRST_EXTERNAL_VECTOR + line, doorbell, INTERRUPT_GATE);

	irq_enable();
	printf("interrupts on: handler after %u turn(s)\n", count_turns());

	irq_disable();
	handled = 0;
	*(volatile u32 *)DEVICE_VA = 1;
	for (i = 0; i < 100000 && !lguest_data.irq_pending; i++)
		;
	pending = lguest_data.irq_pending;
	printf("interrupts off: pending %u, handled %u\n", pending, handled);
	asm volatile("" ::: "memory");
	irq_enable();
	if (lguest_data.irq_pending)
		hcall(LHCALL_SEND_INTERRUPTS, 0, 0, 0, 0);
	now = handled;
	printf("turned on: handled %u before the next instruction\n", now);
	poweroff("timing done");
}
