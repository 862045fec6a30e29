/* pte: the guest changes its page tables in memory and tells the Host with
 * SET_PTE, FLUSH_TLB (0: user mappings, below kernel_address; 1: all) and
 * SET_PGD; each change shows through at once. */
#include "guest.h"

#define USER_VA 0x40000000u
#define KERNEL_VA 0xD0000000u
#define PGD_VA 0x40400000u

static u32 frame(u32 tag)
{
	u32 *page = alloc_page();
	page[0] = tag;
	return PHYS(page);
}

void main(void)
{
	u32 *pgdir, *table;
	volatile u32 *pte;
	u32 a = frame(0xA), b = frame(0xB), c = frame(0xC), d = frame(0xD), e = frame(0xE);
	u32 before, after;

	lguest_init();
	catch_unexpected();
	pgdir = new_pgdir();
	map_page(pgdir, USER_VA, a, PTE_P | PTE_RW);
	use_pgdir(pgdir);

	pte = pte_of(pgdir, USER_VA);
	before = PEEK(USER_VA);
	*pte = b | PTE_P | PTE_RW;
	hcall(LHCALL_SET_PTE, PHYS(pgdir), USER_VA, b | PTE_P | PTE_RW, 0);
	after = PEEK(USER_VA);
	printf("SET_PTE: %x then %x\n", before, after);

	*pte = c | PTE_P | PTE_RW;
	hcall(LHCALL_FLUSH_TLB, 0, 0, 0, 0);
	printf("FLUSH_TLB 0: %x\n", PEEK(USER_VA));

	map_page(pgdir, KERNEL_VA, d, PTE_P | PTE_RW);
	before = PEEK(KERNEL_VA);
	*pte_of(pgdir, KERNEL_VA) = e | PTE_P | PTE_RW;
	hcall(LHCALL_FLUSH_TLB, 1, 0, 0, 0);
	after = PEEK(KERNEL_VA);
	printf("FLUSH_TLB 1: %x then %x\n", before, after);

	map_page(pgdir, PGD_VA, a, PTE_P | PTE_RW);
	before = PEEK(PGD_VA);
	table = alloc_page();
	table[(PGD_VA >> 12) & 1023] = d | PTE_P | PTE_RW;
	pgdir[PGD_VA >> 22] = PHYS(table) | PTE_P | PTE_RW | PTE_US;
	hcall(LHCALL_SET_PGD, PHYS(pgdir), PGD_VA >> 22, 0, 0);
	after = PEEK(PGD_VA);
	printf("SET_PGD: %x then %x\n", before, after);
	poweroff("pte done");
}
