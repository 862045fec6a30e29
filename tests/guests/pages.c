/* pages: the guest builds page tables of its own (the kernel's first 4 MiB
 * at PAGE_OFFSET, 32 pages at 0x40000000, an alias of the first of them at
 * 0x40100000), switches to them with NEW_PGTABLE and uses them.  The Host
 * builds its shadows on demand; the guest sees no page fault at all (any
 * trap is reported and restarts the guest).  Then two page directories
 * that map 0x40000000 differently take turns. */
#include "guest.h"

#define PAGES 32
#define BASE 0x40000000u
#define ALIAS 0x40100000u

void main(void)
{
	u32 *pgdir, *other, *frames[PAGES], *elsewhere;
	u32 i, good = 0, a, b, c;

	lguest_init();
	catch_unexpected();
	pgdir = new_pgdir();
	for (i = 0; i < PAGES; i++) {
		frames[i] = alloc_page();
		map_page(pgdir, BASE + i * PAGE_SIZE, PHYS(frames[i]), PTE_P | PTE_RW);
	}
	map_page(pgdir, ALIAS, PHYS(frames[0]), PTE_P | PTE_RW);
	use_pgdir(pgdir);
	print("running on my own page tables\n");

	for (i = 0; i < PAGES; i++)
		POKE(BASE + i * PAGE_SIZE + 4 * i, 0x1000 + i);
	for (i = 0; i < PAGES; i++)
		good += ((volatile u32 *)frames[i])[i] == 0x1000 + i;
	printf("%u of %u pages written at %x read back through PAGE_OFFSET\n", good, PAGES, BASE);

	POKE(ALIAS + 8, 0xCAFEF00D);
	printf("written at %x, read at %x: %x\n", ALIAS + 8, BASE + 8, PEEK(BASE + 8));

	other = new_pgdir();
	elsewhere = alloc_page();
	elsewhere[0] = 0xBBBB;
	map_page(other, BASE, PHYS(elsewhere), PTE_P | PTE_RW);
	use_pgdir(other);
	a = PEEK(BASE);
	use_pgdir(pgdir);
	b = PEEK(BASE);
	use_pgdir(other);
	c = PEEK(BASE);
	printf("other %x, mine %x, other %x\n", a, b, c);
	poweroff("pages done");
}
