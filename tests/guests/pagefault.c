/* pagefault: the guest handles its own page faults.  It touches addresses
 * its page tables do not map; its #PF handler (vector 14, an interrupt
 * gate) reads lguest_data.cr2 and the error code, maps the page with
 * SET_PTE and returns with iret, and the access then succeeds.  A write to
 * a read-only page faults with error 3 and is fixed by making it writable. */
#include "guest.h"

static u32 *pgdir;
static u32 faults;

static void page_fault(struct trapframe *tf)
{
	u32 cr2 = lguest_data.cr2, page = cr2 & ~0xFFFu, pte;
	volatile u32 *entry = pte_of(pgdir, page);
	faults++;
	printf("page fault at %x, error %x\n", cr2, tf->error);
	if (tf->error & 1) {
		pte = *entry | PTE_RW;
	} else {
		u32 *fresh = alloc_page();
		fresh[(cr2 & 0xFFF) / 4] = 0x1000 + faults;
		pte = PHYS(fresh) | PTE_P | PTE_RW;
	}
	*entry = pte;
	hcall(LHCALL_SET_PTE, PHYS(pgdir), page, pte, 0);
}

void main(void)
{
	u32 *readonly;
	u32 v;

	lguest_init();
	catch_unexpected();
	on_trap(14, page_fault, INTERRUPT_GATE);
	pgdir = new_pgdir();
	pte_of(pgdir, 0x40000000); /* page tables, but no pages in them yet */
	pte_of(pgdir, 0);
	readonly = alloc_page();
	readonly[0] = 0x5EAD;
	map_page(pgdir, 0x40002000, PHYS(readonly), PTE_P);
	use_pgdir(pgdir);

	v = PEEK(0x40000010);
	printf("read %x\n", v);
	POKE(0x40001008, 0x22222222);
	printf("wrote %x\n", PEEK(0x40001008));
	printf("read-only page holds %x\n", PEEK(0x40002000));
	POKE(0x40002000, 0x33333333);
	printf("wrote %x, frame holds %x\n", PEEK(0x40002000), readonly[0]);
	/* Low memory is mapped by the Launcher's tables but not by ours. */
	v = PEEK(0xABC);
	printf("read %x at abc, %u faults\n", v, faults);
	poweroff("pagefault done");
}
