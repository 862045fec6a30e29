/* kill: one misdeed per build, chosen with -DCASE_<name>.  The Host must
 * kill the guest (exit status 4, one line on stderr) and never run it again,
 * so nothing after the misdeed may be printed.  Every case but the first
 * two prints "start\n" once the shared page is registered. */
#include "guest.h"

__attribute__((unused)) static void start(void)
{
	lguest_init();
	print("start\n");
}

__attribute__((unused)) static void divide_by_zero(void)
{
	asm volatile("xorl %%edx, %%edx\n\t"
		     "movl $1, %%eax\n\t"
		     "xorl %%ecx, %%ecx\n\t"
		     "divl %%ecx"
		     : : : "eax", "ecx", "edx", "cc");
}

__attribute__((unused)) static void printed_after(struct trapframe *tf)
{
	printf("handler ran for vector %u\n", tf->vector);
	poweroff("the handler should not have run");
}

void main(void)
{
#if defined(CASE_before_init)
	/* A hypercall before LGUEST_INIT. */
	hcall(LHCALL_FLUSH_TLB, 1, 0, 0, 0);
#elif defined(CASE_init_outside_memory)
	/* A shared page the guest does not have. */
	hcall(LHCALL_LGUEST_INIT, 0x7FFFF000, 0, 0, 0);
#elif defined(CASE_bad_hypercall)
	start();
	hcall(99, 0, 0, 0, 0);
#elif defined(CASE_console_outside_memory)
	start();
	hcall(LHCALL_CONSOLE_WRITE, 0x7FFFF000, 16, 0, 0);
#elif defined(CASE_no_handler)
	/* A divide error, and nothing registered for vector 0. */
	start();
	divide_by_zero();
#elif defined(CASE_unmapped_stack)
	/* A divide error with a handler, but the stack to push its frame on
	 * is not mapped (0x50000000 is not RAM at 0 nor at PAGE_OFFSET). */
	start();
	on_trap(0, printed_after, TRAP_GATE);
	on_trap(8, printed_after, TRAP_GATE);
	on_trap(14, printed_after, INTERRUPT_GATE);
	asm volatile("movl $0x50000000, %%esp\n\t"
		     "xorl %%edx, %%edx\n\t"
		     "movl $1, %%eax\n\t"
		     "xorl %%ecx, %%ecx\n\t"
		     "divl %%ecx"
		     : : : "eax", "ecx", "edx", "cc");
#elif defined(CASE_split_stack_unmapped) || defined(CASE_split_stack_read_only) \
	|| defined(CASE_split_stack_outside_memory)
	/* A #GP whose frame straddles 0x40001000: its flags and cs fit in the
	 * writable page above the boundary, its eip finds below it no page,
	 * a read-only page, or a page beyond guest memory. */
	u32 *pgdir;
	start();
	on_trap(13, printed_after, TRAP_GATE);
	pgdir = new_pgdir();
	map_page(pgdir, 0x40001000, PHYS(alloc_page()), PTE_P | PTE_RW);
#if defined(CASE_split_stack_read_only)
	map_page(pgdir, 0x40000000, PHYS(alloc_page()), PTE_P);
#elif defined(CASE_split_stack_outside_memory)
	map_page(pgdir, 0x40000000, 0x7F000000, PTE_P | PTE_RW);
#endif
	use_pgdir(pgdir);
	asm volatile("movl $0x40001008, %%esp\n\tcli" : : : "memory");
#elif defined(CASE_word_astride_read_only)
	/* A #GP with the stack pointer 2 bytes above 0x40001000: the flags,
	 * pushed first, straddle the boundary, and the page above it is
	 * read-only, though the page below is writable. */
	u32 *pgdir;
	start();
	on_trap(13, printed_after, TRAP_GATE);
	pgdir = new_pgdir();
	map_page(pgdir, 0x40000000, PHYS(alloc_page()), PTE_P | PTE_RW);
	map_page(pgdir, 0x40001000, PHYS(alloc_page()), PTE_P);
	use_pgdir(pgdir);
	asm volatile("movl $0x40001002, %%esp\n\tcli" : : : "memory");
#elif defined(CASE_stack_wraps_into_switcher)
	/* A divide error with the stack pointer at 4: the flags fit at 0, and
	 * cs would go at 0xfffffffc, in the Switcher's pages. */
	start();
	on_trap(0, printed_after, TRAP_GATE);
	asm volatile("movl $4, %%esp\n\t"
		     "xorl %%edx, %%edx\n\t"
		     "movl $1, %%eax\n\t"
		     "xorl %%ecx, %%ecx\n\t"
		     "divl %%ecx"
		     : : : "eax", "ecx", "edx", "cc", "memory");
#elif defined(CASE_pte_outside_memory) || defined(CASE_pte_outside_memory_no_set_pte)
	/* A page-table entry for a frame far beyond the guest's memory. */
	u32 *pgdir;
	start();
	pgdir = new_pgdir();
	use_pgdir(pgdir);
	map_page(pgdir, 0x40000000, 0x7F000000, PTE_P | PTE_RW);
#if defined(CASE_pte_outside_memory)
	hcall(LHCALL_SET_PTE, PHYS(pgdir), 0x40000000, 0x7F000000 | PTE_P | PTE_RW, 0);
#endif
	POKE(0x40000000, 0xDEADBEEF);
	printf("read back %x\n", PEEK(0x40000000));
#elif defined(CASE_switcher_write)
	/* A write to the Switcher's pages, with the Launcher's page tables. */
	start();
	POKE(SWITCHER_ADDR, 0);
	POKE(SWITCHER_ADDR + 0x1000, 0);
#elif defined(CASE_switcher_map)
	/* Map a page of our own over the Switcher, and write to it. */
	u32 *pgdir;
	void *page;
	start();
	pgdir = new_pgdir();
	page = alloc_page();
	use_pgdir(pgdir);
	map_page(pgdir, SWITCHER_ADDR, PHYS(page), PTE_P | PTE_RW);
	hcall(LHCALL_SET_PGD, PHYS(pgdir), SWITCHER_ADDR >> 22, 0, 0);
	hcall(LHCALL_SET_PTE, PHYS(pgdir), SWITCHER_ADDR, PHYS(page) | PTE_P | PTE_RW, 0);
	POKE(SWITCHER_ADDR, 0);
#elif defined(CASE_gdt_bad_index)
	/* There are 32 GDT entries. */
	start();
	hcall(LHCALL_LOAD_GDT_ENTRY, 99, 0x0000FFFF, 0x00CFB200, 0);
#elif defined(CASE_idt_bad_vector)
	/* There are 256 vectors. */
	start();
	hcall(LHCALL_LOAD_IDT_ENTRY, 300, (KERNEL_CS << 16), 0x8E00 | 0xC0100000, 0);
#else
#error "build kill.c with -DCASE_<name>"
#endif
	print("still alive\n");
	poweroff("the misdeed went unpunished");
}
