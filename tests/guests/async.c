/* async: SET_PTE calls queued in the shared page's ring (status
 * ASYNC_READY) are run by FLUSH_ASYNC, in order, and marked ASYNC_DONE; a
 * call queued later is run before the next synchronous hypercall. */
#include "guest.h"

#define VA(i) (0x40000000u + (i) * PAGE_SIZE)

static u32 *pgdir;
static u32 slot; /* the ring's next slot: the Host works through it in order */

static u32 frame(u32 tag)
{
	u32 *page = alloc_page();
	page[0] = tag;
	return PHYS(page);
}

/* Change a mapping in memory and queue the SET_PTE that tells the Host. */
static u32 queue_remap(u32 va, u32 phys)
{
	u32 pte = phys | PTE_P | PTE_RW;
	u32 n = slot++ % ASYNC_SLOTS;
	*pte_of(pgdir, va) = pte;
	lguest_data.async_calls[n][0] = LHCALL_SET_PTE;
	lguest_data.async_calls[n][1] = PHYS(pgdir);
	lguest_data.async_calls[n][2] = va;
	lguest_data.async_calls[n][3] = pte;
	lguest_data.async_calls[n][4] = 0;
	asm volatile("" ::: "memory");
	lguest_data.async_status[n] = ASYNC_READY;
	return n;
}

void main(void)
{
	u32 a = frame(0xA), b = frame(0xB), c = frame(0xC), d = frame(0xD), e = frame(0xE);
	u32 s0, s1, s2, s3;

	lguest_init();
	catch_unexpected();
	pgdir = new_pgdir();
	map_page(pgdir, VA(0), a, PTE_P | PTE_RW);
	map_page(pgdir, VA(1), b, PTE_P | PTE_RW);
	map_page(pgdir, VA(2), c, PTE_P | PTE_RW);
	use_pgdir(pgdir);
	printf("before: %x %x %x\n", PEEK(VA(0)), PEEK(VA(1)), PEEK(VA(2)));

	s0 = queue_remap(VA(0), d);
	s1 = queue_remap(VA(1), e);
	s2 = queue_remap(VA(2), a);
	s3 = queue_remap(VA(2), b); /* the same page again: the later call wins */
	hcall(LHCALL_FLUSH_ASYNC, 0, 0, 0, 0);
	printf("status %x %x %x %x\n", lguest_data.async_status[s0], lguest_data.async_status[s1],
	       lguest_data.async_status[s2], lguest_data.async_status[s3]);
	printf("after FLUSH_ASYNC: %x %x %x\n", PEEK(VA(0)), PEEK(VA(1)), PEEK(VA(2)));

	s0 = queue_remap(VA(0), c);
	print("a synchronous hypercall runs the queue first\n");
	printf("status %x, %x\n", lguest_data.async_status[s0], PEEK(VA(0)));
	poweroff("async done");
}
