/* swint: software interrupts.  int3 (vector 3) arrives with eip after the
 * instruction; int $0x80 through a trap gate leaves the virtual interrupt
 * flag alone, int $0x81 through an interrupt gate clears it, and iret (our
 * irq_return) restores it from the saved flags. */
#include "guest.h"

extern char after_int3[];

static void breakpoint(struct trapframe *tf)
{
	printf("int3: vector %u, eip %s\n", tf->vector,
	       tf->eip == (u32)after_int3 ? "after the int3" : "WRONG");
}

static void syscall(struct trapframe *tf)
{
	printf("int %x: eax %x, saved IF %x, irq_enabled %x\n", tf->vector, tf->eax,
	       tf->eflags & X86_EFLAGS_IF, lguest_data.irq_enabled);
	tf->eax += 1;
}

static u32 trap_with(u32 value)
{
	u32 eax;
	asm volatile("int $0x80" : "=a"(eax) : "a"(value) : "memory");
	return eax;
}

static u32 interrupt_with(u32 value)
{
	u32 eax;
	asm volatile("int $0x81" : "=a"(eax) : "a"(value) : "memory");
	return eax;
}

void main(void)
{
	u32 r;
	lguest_init();
	catch_unexpected();
	on_trap(3, breakpoint, TRAP_GATE);
	on_trap(0x80, syscall, TRAP_GATE);
	on_trap(0x81, syscall, INTERRUPT_GATE);
	asm volatile("int3\n.globl after_int3\nafter_int3:" ::: "memory");
	irq_enable(); /* no timer is armed: nothing will interrupt us */
	r = trap_with(42);
	printf("returned %x, irq_enabled %x\n", r, lguest_data.irq_enabled);
	r = interrupt_with(99);
	printf("returned %x, irq_enabled %x\n", r, lguest_data.irq_enabled);
	irq_disable();
	r = interrupt_with(7);
	printf("returned %x, irq_enabled %x\n", r, lguest_data.irq_enabled);
	poweroff("swint done");
}
