/* entry: the machine state a guest starts in, as crt0.S wrote it down before
 * touching anything, and the boot page the Launcher filled in. */
#include "guest.h"

void main(void)
{
	const struct entry_state *e = &entry_state;
	const volatile u32 *boot = (const volatile u32 *)(boot_phys + PAGE_OFFSET);
	const volatile u32 *pgdir;

	lguest_init();
	printf("cs %x ds %x es %x fs %x gs %x ss %x cpl %u\n",
	       e->cs, e->ds, e->es, e->fs, e->gs, e->ss, e->cs & 3);
	printf("esi %x esp %x\n", e->esi, e->esp);
	printf("boot magic %s version %u mem %x page_offset %x\n",
	       boot[BOOT_MAGIC_OFF / 4] == BOOT_MAGIC ? "ok" : "BAD",
	       boot[BOOT_VERSION_OFF / 4], boot[BOOT_MEM_SIZE_OFF / 4],
	       boot[BOOT_PAGE_OFFSET_OFF / 4]);
	pgdir = (const volatile u32 *)(boot[BOOT_PGDIR_OFF / 4] + PAGE_OFFSET);
	printf("boot pgdir maps 0 %s and PAGE_OFFSET %s\n",
	       pgdir[0] & PTE_P ? "yes" : "no",
	       pgdir[KERNEL_PGD_INDEX] & PTE_P ? "yes" : "no");
	/* All of RAM at 0 as well as at PAGE_OFFSET: the same bytes twice. */
	printf("low alias %s\n", PEEK(boot_phys) == BOOT_MAGIC ? "ok" : "BAD");
	poweroff("entry checked");
}
