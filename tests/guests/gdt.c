/* gdt: LOAD_GDT_ENTRY installs segments of the guest's own.  Entry 7 is a
 * flat ring-1 data segment the guest loads into ds; entry 8 has base 0x10,
 * so an access through fs lands 16 bytes further on, and it still does after
 * a hypercall and a trap (the Switcher restores fs from what it saved);
 * entry 9 is written with DPL 0, which the Host turns into DPL 1, so ring 1
 * may load it. */
#include "guest.h"

#define FLAT_DATA(dpl) (0x00CF9200u | ((dpl) << 13))

static volatile u32 target[8];

static void gp(struct trapframe *tf)
{
	printf("#GP error %x\n", tf->error);
	tf->eip += insn_length(tf->eip);
}

static void load_gdt_entry(u32 index, u32 base, u32 dpl)
{
	u32 low = (base << 16) | 0xFFFF;
	u32 high = (base & 0xFF000000) | ((base >> 16) & 0xFF) | FLAT_DATA(dpl);
	hcall(LHCALL_LOAD_GDT_ENTRY, index, low, high, 0);
}

static u32 through_fs(u32 value)
{
	/* fs has base 0x10: the offset of target[6] - 16 is linear target[6], but
	 * with base 0 the store would land in target[2]. */
	asm volatile("movl %0, %%fs:(%1)" : : "r"(value), "r"((u32)&target[6] - 0x10) : "memory");
	return target[6];
}

void main(void)
{
	u32 sel, ar = 0, ok;

	lguest_init();
	catch_unexpected();
	on_trap(13, gp, TRAP_GATE);

	load_gdt_entry(7, 0, 1);
	asm volatile("mov %1, %%ds\n\tmov %%ds, %0" : "=r"(sel) : "r"(7u << 3 | 1) : "memory");
	target[0] = 0x7777;
	printf("ds %x, a store through it reads back %x\n", sel, target[0]);
	asm volatile("mov %0, %%ds" : : "r"(KERNEL_DS) : "memory");

	load_gdt_entry(8, 0x10, 1);
	asm volatile("mov %0, %%fs" : : "r"(8u << 3 | 1) : "memory");
	printf("fs base 10: %x\n", through_fs(0x12345678));
	asm volatile("cli" ::: "memory");
	asm volatile("mov %%fs, %0" : "=r"(sel));
	printf("after a hypercall and a trap: fs %x, %x\n", sel, through_fs(0x9ABCDEF0));
	asm volatile("mov %0, %%fs" : : "r"(KERNEL_DS) : "memory");

	load_gdt_entry(9, 0, 0);
	asm volatile("lar %2, %0\n\t"
		     "setz %b1\n\t"
		     "movzbl %b1, %1"
		     : "=r"(ar), "=q"(ok) : "r"(9u << 3 | 1), "0"(0) : "cc");
	printf("lar %s, dpl %u\n", ok ? "ok" : "FAILED", (ar >> 13) & 3);
	asm volatile("mov %1, %%ds\n\tmov %%ds, %0\n\tmov %2, %%ds"
		     : "=&r"(sel) : "r"(9u << 3 | 1), "r"(KERNEL_DS) : "memory");
	printf("loaded ds %x\n", sel);
	poweroff("gdt done");
}
