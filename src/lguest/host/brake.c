/* Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'. */
/* «src/lguest/host/brake.c» book/host-interrupts.md:643 @d4e6610e */
/* The brake: a block hook that stops the CPU between two instructions.
   Any thread pulls the lever; Unicorn's own thread, here, stops the CPU. */
#include <stdint.h>

typedef struct uc_struct uc_engine;

#define X86_EFLAGS_IF 0x200
enum { RELEASED, AT_ONCE, WHEN_ENABLED };

struct brake {
	volatile uint32_t for_interrupt;	/* RELEASED, AT_ONCE or WHEN_ENABLED */
	volatile uint32_t for_good;		/* nonzero: stop, whatever it is doing */
	volatile uint32_t hold;			/* an interrupt never stops the guest here */
	int32_t cs;				/* Unicorn's number for the %cs register */
	volatile uint32_t stops;		/* how many stops the brake has made */
	const volatile uint32_t *irq_enabled;	/* the guest's virtual IF, in guest memory */
	int (*emu_stop)(uc_engine *uc);		/* Unicorn's own functions */
	int (*reg_read)(uc_engine *uc, int regid, void *value);
};

void brake_hook(uc_engine *uc, uint64_t address, uint32_t size, void *user)
{
	struct brake *brake = user;
	uint32_t why = brake->for_interrupt;
	uint64_t cs = 0;

	(void)size;
	if (why == RELEASED && !brake->for_good)
		return;
	brake->reg_read(uc, brake->cs, &cs);
	if ((cs & 3) == 0)
		return;		/* the way into the guest, still at ring 0 */
	if (!brake->for_good) {
		if (address == brake->hold)
			return;	/* the iret that must not be interrupted */
		if (why == WHEN_ENABLED && brake->irq_enabled &&
		    !(*brake->irq_enabled & X86_EFLAGS_IF))
			return;	/* interrupts still off: not yet */
	}
	brake->for_interrupt = RELEASED;
	brake->stops++;
	brake->emu_stop(uc);
}
/* «/src/lguest/host/brake.c» */
