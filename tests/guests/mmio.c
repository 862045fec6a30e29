/* mmio: a guest maps the first device's registers (from the boot page's
 * device table) into its address space and reads them through the CPU: the
 * virtio-mmio magic, version and device id.  Then it maps a page beyond both
 * its memory and the device windows, and touching that gets it killed. */
#include "guest.h"

#define DEVICE_VA 0x50000000u
#define BEYOND_VA 0x50400000u

void main(void)
{
	const u32 *boot = (const u32 *)(boot_phys + PAGE_OFFSET);
	u32 *pgdir, base;

	lguest_init();
	catch_unexpected();
	if (boot[7] == 0)
		poweroff("no devices");
	base = boot[BOOT_DEVICES / 4 + 1];
	pgdir = new_pgdir();
	map_page(pgdir, DEVICE_VA, base, PTE_P | PTE_RW);
	map_page(pgdir, BEYOND_VA, 0xE0000000u, PTE_P | PTE_RW);
	use_pgdir(pgdir);
	printf("device at %x: magic %x version %u id %u\n", base, PEEK(DEVICE_VA),
	       PEEK(DEVICE_VA + 4), PEEK(DEVICE_VA + 8));
	PEEK(BEYOND_VA);
	poweroff("read memory that is neither RAM nor a device");
}
