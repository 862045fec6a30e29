/* Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'. */
/* «src/lguest/guest/traps.c» book/guest-kernel.md:871 @d65e0faa */
/* traps.c: the interrupt table, the timer, and what to do when something goes wrong. */
#include "kernel.h"

/* «Install the gates» book/guest-kernel.md:752 @3af39d65 */
struct trap_stub {
	u32 vector;
	void *stub;
};
extern const struct trap_stub trap_stubs[];

void traps_init(void)
{
	const struct trap_stub *s;
	for (s = trap_stubs; s->vector != (u32)-1; s++) {
		u32 offset = (u32)s->stub;
		u32 low = KERNEL_CS << 16 | (offset & 0xFFFF);
		u32 high = (offset & 0xFFFF0000) | 0x8000 | INTERRUPT_GATE << 8;
		hcall(LHCALL_LOAD_IDT_ENTRY, s->vector, low, high, 0);
	}
}
/* «/Install the gates» */

/* «The timer» book/guest-kernel.md:781 @e859191a */
volatile u32 jiffies;

void timer_init(void)
{
	hcall(LHCALL_SET_CLOCKEVENT, NSEC_PER_SEC / HZ, 0, 0, 0);
}

static void timer_tick(void)
{
	jiffies++;
	hcall(LHCALL_SET_CLOCKEVENT, NSEC_PER_SEC / HZ, 0, 0, 0);
}
/* «/The timer» */

/* «Oops, or panic» book/guest-kernel.md:834 @04455a23 */
struct context *recovery;
volatile u32 fault_in_fault_handler;
static volatile u32 in_fault;

static const char *const trap_names[20] = {
	"divide error", "debug", "NMI", "breakpoint", "overflow", "bound range",
	"invalid opcode", "device not available", "double fault", "coprocessor overrun",
	"invalid TSS", "segment not present", "stack fault", "general protection fault",
	"page fault", "reserved", "x87 error", "alignment check", "machine check", "SIMD error",
};

static void fault(struct trapframe *tf)
{
	const char *name = tf->vector < 20 ? trap_names[tf->vector] : "unexpected interrupt";
	struct context *resume = recovery;

	if (in_fault)
		panic("%s (vector %u) at eip 0x%x inside the fault handler", name, tf->vector, tf->eip);
	in_fault = 1;
	if (tf->vector == 14)
		printf("oops: %s (vector 14) at eip 0x%x, cr2 0x%x, error %x\n",
		       name, tf->eip, lguest_data.cr2, tf->error);
	else
		printf("oops: %s (vector %u) at eip 0x%x, error %x\n",
		       name, tf->vector, tf->eip, tf->error);
	if (fault_in_fault_handler)
		*(volatile u32 *)0xdead0000 = 0;
	if (!resume)
		panic("%s outside any shell command", name);
	recovery = 0;
	in_fault = 0;
	resume_context(resume, 1);
}
/* «/Oops, or panic» */

/* «Dispatch a trap»[2] book/drivers-guest.md:1272 @4a2b1a15 */
void handle_trap(struct trapframe *tf)
{
	if (tf->vector == FIRST_EXTERNAL_VECTOR + TIMER_IRQ)
		timer_tick();
	else if (tf->vector == FIRST_EXTERNAL_VECTOR + CONSOLE_IRQ)
		return;
	else if (tf->vector < FIRST_EXTERNAL_VECTOR
		 || !device_interrupt(tf->vector - FIRST_EXTERNAL_VECTOR))
		fault(tf);
}
/* «/Dispatch a trap» */
/* «/src/lguest/guest/traps.c» */
