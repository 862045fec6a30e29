/* faults: fifty rounds of a #GP (cli), a divide error and a page fault,
 * every one handled by the guest.  Unicorn remembers the last fault it
 * raised, so a Host that resumed the guest from a faulted CPU would turn
 * the next fault into a double fault (vector 8): that must never reach us. */
#include "guest.h"

#define ROUNDS 50
#define VA 0x40000000u

static u32 *pgdir, *page;
static volatile u32 gp, de, pf;

static void on_gp(struct trapframe *tf)
{
	gp++;
	tf->eip += insn_length(tf->eip);
}

static void on_de(struct trapframe *tf)
{
	de++;
	tf->eip += insn_length(tf->eip);
}

static void on_pf(struct trapframe *tf)
{
	u32 pte = PHYS(page) | PTE_P | PTE_RW;
	(void)tf;
	pf++;
	*pte_of(pgdir, VA) = pte;
	hcall(LHCALL_SET_PTE, PHYS(pgdir), VA, pte, 0);
}

static void double_fault(struct trapframe *tf)
{
	printf("DOUBLE FAULT at %x after %u #GP, %u #DE, %u #PF\n", tf->eip, gp, de, pf);
	restart("double fault");
}

void main(void)
{
	u32 i;
	lguest_init();
	catch_unexpected();
	on_trap(8, double_fault, TRAP_GATE);
	on_trap(13, on_gp, TRAP_GATE);
	on_trap(0, on_de, TRAP_GATE);
	on_trap(14, on_pf, INTERRUPT_GATE);
	pgdir = new_pgdir();
	page = alloc_page();
	pte_of(pgdir, VA);
	use_pgdir(pgdir);
	for (i = 0; i < ROUNDS; i++) {
		asm volatile("cli" ::: "memory");
		asm volatile("xorl %%edx, %%edx\n\t"
			     "movl $5, %%eax\n\t"
			     "xorl %%ecx, %%ecx\n\t"
			     "divl %%ecx"
			     : : : "eax", "ecx", "edx", "cc");
		POKE(VA + 4 * i, i);
		/* Unmap the page again, so that the next round faults. */
		*pte_of(pgdir, VA) = 0;
		hcall(LHCALL_SET_PTE, PHYS(pgdir), VA, 0, 0);
	}
	printf("%u #GP, %u #DE, %u #PF, page holds %u\n", gp, de, pf, page[ROUNDS - 1]);
	/* And two in a row, with no hypercall between them. */
	asm volatile("cli\n\tcli\n\tsti" ::: "memory");
	printf("%u #GP\n", gp);
	poweroff("faults done");
}
