/* Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'. */
/* «src/lguest/guest/boot.c» book/guest-kernel.md:724 @2c781227 */
/* boot.c: from the Launcher's hand-off to a kernel on its own page tables. */
#include "kernel.h"

/* «Allocate a page» book/guest-kernel.md:647 @02ad7a4c */
const struct boot_page *boot;
u32 mem_size, kernel_pages, pages_allocated, kernel_pgdir;
static u32 next_free;

u32 alloc_page(void)
{
	u32 page = next_free;
	if (page + PAGE_SIZE > mem_size)
		panic("out of memory");
	next_free += PAGE_SIZE;
	pages_allocated++;
	memset(__va(page), 0, PAGE_SIZE);
	return page;
}

u32 alloc_contiguous(u32 pages)
{
	u32 first = next_free;
	if (pages > (mem_size - next_free) / PAGE_SIZE)
		return 0;
	while (pages--)
		alloc_page();
	return first;
}

static void memory_init(void)
{
	u32 limit = (u32)-lguest_data.reserve_mem - PAGE_OFFSET;
	mem_size = boot->mem_size < limit ? boot->mem_size : limit;
	next_free = __pa(_end);
	kernel_pages = (next_free - KERNEL_LOAD) / PAGE_SIZE;
}
/* «/Allocate a page» */

/* «Register the shared page» book/guest-kernel.md:576 @729b59f6 */
static void lguest_init(void)
{
	memset((void *)lguest_data.async_status, ASYNC_DONE, ASYNC_SLOTS);
	lguest_data.irq_enabled = 0;
	lguest_data.kernel_address = PAGE_OFFSET;
	lguest_data.noirq_iret = (u32)noirq_iret;
	hcall(LHCALL_LGUEST_INIT, __pa(&lguest_data), 0, 0, 0);
}
/* «/Register the shared page» */

/* «Queue a hypercall» book/guest-kernel.md:596 @30de460b */
static u32 next_call;

void async_hcall(u32 call, u32 a1, u32 a2, u32 a3)
{
	u32 flags = irq_save();
	volatile u32 *slot = lguest_data.async_calls[next_call];
	if (lguest_data.async_status[next_call] != ASYNC_DONE)
		hcall(LHCALL_FLUSH_ASYNC, 0, 0, 0, 0);
	slot[0] = call;
	slot[1] = a1;
	slot[2] = a2;
	slot[3] = a3;
	slot[4] = 0;
	barrier();
	lguest_data.async_status[next_call] = ASYNC_READY;
	next_call = (next_call + 1) % ASYNC_SLOTS;
	irq_restore(flags);
}
/* «/Queue a hypercall» */

/* «Build our own page tables» book/guest-kernel.md:696 @d61c4824 */
static void paging_init(void)
{
	u32 pgdir = kernel_pgdir = alloc_page(), phys, index, *pde, *table;

	for (phys = 0; phys < mem_size; phys += PAGE_SIZE) {
		pde = (u32 *)__va(pgdir) + ((PAGE_OFFSET + phys) >> 22);
		if (!(*pde & PTE_PRESENT))
			*pde = alloc_page() | PTE_PRESENT | PTE_WRITABLE;
		table = __va(*pde & PAGE_MASK);
		table[(phys >> 12) & 1023] = phys | PTE_PRESENT | PTE_WRITABLE;
	}
	for (index = PAGE_OFFSET >> 22; index < 1024; index++)
		if (((u32 *)__va(pgdir))[index] & PTE_PRESENT)
			async_hcall(LHCALL_SET_PGD, pgdir, index, 0);

	pde = (u32 *)__va(pgdir) + ((u32)stack_guard >> 22);
	table = __va(*pde & PAGE_MASK);
	table[((u32)stack_guard >> 12) & 1023] = 0;
	async_hcall(LHCALL_SET_PTE, pgdir, (u32)stack_guard, 0);

	hcall(LHCALL_NEW_PGTABLE, pgdir, 0, 0, 0);
}
/* «/Build our own page tables» */

/* «Start the kernel»[2] book/drivers-guest.md:1246 @f7e0b849 */
void start_kernel(u32 boot_phys) __attribute__((noreturn));
void start_kernel(u32 boot_phys)
{
	boot = __va(boot_phys);
	lguest_init();
	if (boot->magic != BOOT_MAGIC)
		panic("bad boot page magic 0x%x: was this kernel started by lguest.py?", boot->magic);
	memory_init();
	paging_init();
	hcall(LHCALL_SET_STACK, KERNEL_DS, (u32)boot_stack_top, 4, 0);
	traps_init();
	timer_init();
	irq_enable();
	printf("lguest.py guest kernel: %u MiB of memory, %u ticks a second\n",
	       mem_size >> 20, HZ);
	virtio_init();
	shell();
}
/* «/Start the kernel» */
/* «/src/lguest/guest/boot.c» */
