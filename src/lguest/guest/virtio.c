/* Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'. */
/* «src/lguest/guest/virtio.c» book/drivers.md:2386 @2bb317df */
/* virtio.c: the Guest's virtio-mmio drivers: discovery, a split virtqueue, rng and block. */
#include "kernel.h"

/* «The virtio numbers, in C» book/drivers.md:1691 @5f6f0bbc */
typedef unsigned short u16;
typedef unsigned long long u64;

#define VIRTIO_MAGIC 0x74726976	/* "virt" */
#define VIRTIO_ID_NET 1
#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_ID_RNG 4
#define FIRST_DEVICE_IRQ 2	/* device i raises line 2 + i: after the timer and the console */

#define REG(offset) ((offset) / 4)
enum {
	MAGIC_VALUE = REG(0x000), VERSION = REG(0x004), DEVICE_ID = REG(0x008),
	DEVICE_FEATURES = REG(0x010), DEVICE_FEATURES_SEL = REG(0x014),
	DRIVER_FEATURES = REG(0x020), DRIVER_FEATURES_SEL = REG(0x024),
	QUEUE_SEL = REG(0x030), QUEUE_NUM_MAX = REG(0x034), QUEUE_NUM = REG(0x038),
	QUEUE_READY = REG(0x044), QUEUE_NOTIFY = REG(0x050),
	INTERRUPT_STATUS = REG(0x060), INTERRUPT_ACK = REG(0x064), STATUS = REG(0x070),
	QUEUE_DESC_LOW = REG(0x080), QUEUE_DESC_HIGH = REG(0x084),
	QUEUE_DRIVER_LOW = REG(0x090), QUEUE_DRIVER_HIGH = REG(0x094),
	QUEUE_DEVICE_LOW = REG(0x0A0), QUEUE_DEVICE_HIGH = REG(0x0A4),
	CONFIG_GENERATION = REG(0x0FC), CONFIG = REG(0x100),
};

#define ACKNOWLEDGE 1
#define DRIVER 2
#define DRIVER_OK 4
#define FEATURES_OK 8
#define DEVICE_NEEDS_RESET 64
#define FAILED 128

#define F_VERSION_1 32		/* feature bits: numbers within the 64-bit set */
#define BLK_F_RO 5
#define BLK_F_FLUSH 9
#define HAS(features, bit) ((features) >> (bit) & 1)
/* «/The virtio numbers, in C» */

/* «The split virtqueue, in C» book/drivers.md:1741 @974b3d21 */
#define QUEUE_SIZE 8
#define DESC_F_NEXT 1
#define DESC_F_WRITE 2

struct virtq_desc {
	u64 addr;		/* guest-physical */
	u32 len;
	u16 flags, next;
};

struct virtq_avail {
	u16 flags, idx, ring[QUEUE_SIZE], used_event;
};

struct virtq_used {
	u16 flags, idx;
	struct {
		u32 id, len;
	} ring[QUEUE_SIZE];
	u16 avail_event;
};

struct vring {
	struct virtq_desc desc[QUEUE_SIZE];
	struct virtq_avail avail;
	struct virtq_used used __attribute__((aligned(4)));
};
_Static_assert(sizeof(struct virtq_desc) == 16, "a descriptor is 16 bytes");
_Static_assert(__builtin_offsetof(struct vring, used) % 4 == 0, "the used ring is 4-aligned");
_Static_assert(sizeof(struct vring) <= PAGE_SIZE, "a queue fits in a page");
/* «/The split virtqueue, in C» */

/* «A driver's view of a device» book/drivers.md:1782 @55125f59 */
struct virtio_dev {
	u32 type, phys, irq;		/* from the boot page */
	volatile u32 *regs;		/* the registers, mapped */
	u64 features;			/* what the device offered and we accepted */
	volatile struct vring *ring;	/* queue 0 */
	u16 size, last_used;
	u32 ready, sectors;		/* usable; and for a disk, its size */
	volatile u32 interrupts;
};

static struct virtio_dev devices[BOOT_MAX_DEVICES];
static u32 device_count;

static const char *device_name(u32 type)
{
	static const char *const names[] = { "device 0", "net", "block", "console", "rng" };
	return type < 5 ? names[type] : "unknown device";
}
/* «/A driver's view of a device» */

/* «Map a device's registers» book/drivers.md:1825 @5de907d1 */
#define DEVICE_WINDOWS (SWITCHER_ADDR - 0x400000)	/* a page per device, below the Switcher */

static volatile u32 *map_window(u32 slot, u32 phys)
{
	u32 virt = DEVICE_WINDOWS + slot * PAGE_SIZE, index = (virt >> 12) & 1023, *pde, *table;

	pde = (u32 *)__va(kernel_pgdir) + (virt >> 22);
	if (!(*pde & PTE_PRESENT)) {
		*pde = alloc_page() | PTE_PRESENT | PTE_WRITABLE;
		async_hcall(LHCALL_SET_PGD, kernel_pgdir, virt >> 22, 0);
	}
	table = __va(*pde & PAGE_MASK);
	table[index] = phys | PTE_PRESENT | PTE_WRITABLE;
	async_hcall(LHCALL_SET_PTE, kernel_pgdir, virt, table[index]);
	hcall(LHCALL_FLUSH_ASYNC, 0, 0, 0, 0);
	return (volatile u32 *)virt;
}
/* «/Map a device's registers» */

/* «A device's interrupt» book/drivers.md:1883 @9bff4ce2 */
extern void *const device_stubs[BOOT_MAX_DEVICES];

static void install_gate(u32 irq)
{
	u32 offset = (u32)device_stubs[irq - FIRST_DEVICE_IRQ];
	u32 low = KERNEL_CS << 16 | (offset & 0xFFFF);
	u32 high = (offset & 0xFFFF0000) | 0x8000 | INTERRUPT_GATE << 8;
	hcall(LHCALL_LOAD_IDT_ENTRY, FIRST_EXTERNAL_VECTOR + irq, low, high, 0);
}

int device_interrupt(u32 line)
{
	u32 i, why;
	for (i = 0; i < device_count; i++) {
		if (devices[i].irq != line)
			continue;
		why = devices[i].regs[INTERRUPT_STATUS];
		devices[i].regs[INTERRUPT_ACK] = why;
		devices[i].interrupts++;
		return 1;
	}
	return 0;
}
/* «/A device's interrupt» */

/* «The status dance, from the driver's side» book/drivers.md:1926 @dbc6d307 */
static int give_up(struct virtio_dev *d, const char *why)
{
	d->regs[STATUS] = d->regs[STATUS] | FAILED;
	printf("virtio: %s at 0x%x: %s\n", device_name(d->type), d->phys, why);
	return 0;
}

static int negotiate(struct virtio_dev *d, u64 wanted)
{
	u64 offered;

	d->regs[STATUS] = 0;
	d->regs[STATUS] = ACKNOWLEDGE;
	d->regs[STATUS] = ACKNOWLEDGE | DRIVER;
	d->regs[DEVICE_FEATURES_SEL] = 1;
	offered = (u64)d->regs[DEVICE_FEATURES] << 32;
	d->regs[DEVICE_FEATURES_SEL] = 0;
	offered |= d->regs[DEVICE_FEATURES];
	if (!HAS(offered, F_VERSION_1))
		return give_up(d, "does not speak virtio 1.x");
	d->features = offered & (wanted | 1ull << F_VERSION_1);
	d->regs[DRIVER_FEATURES_SEL] = 1;
	d->regs[DRIVER_FEATURES] = (u32)(d->features >> 32);
	d->regs[DRIVER_FEATURES_SEL] = 0;
	d->regs[DRIVER_FEATURES] = (u32)d->features;
	d->regs[STATUS] = ACKNOWLEDGE | DRIVER | FEATURES_OK;
	if (!(d->regs[STATUS] & FEATURES_OK))
		return give_up(d, "refused our features");
	return 1;
}
/* «/The status dance, from the driver's side» */

/* «Set up a virtqueue» book/drivers.md:1970 @7e1a16a3 */
static int setup_queue(struct virtio_dev *d)
{
	u32 max, page;

	d->regs[QUEUE_SEL] = 0;
	max = d->regs[QUEUE_NUM_MAX];
	if (d->regs[QUEUE_READY] || !max)
		return give_up(d, "has no usable queue 0");
	for (d->size = QUEUE_SIZE; d->size > max; d->size /= 2)
		;
	page = alloc_page();
	d->ring = __va(page);
	d->last_used = 0;
	d->regs[QUEUE_NUM] = d->size;
	d->regs[QUEUE_DESC_LOW] = page + __builtin_offsetof(struct vring, desc);
	d->regs[QUEUE_DESC_HIGH] = 0;
	d->regs[QUEUE_DRIVER_LOW] = page + __builtin_offsetof(struct vring, avail);
	d->regs[QUEUE_DRIVER_HIGH] = 0;
	d->regs[QUEUE_DEVICE_LOW] = page + __builtin_offsetof(struct vring, used);
	d->regs[QUEUE_DEVICE_HIGH] = 0;
	d->regs[QUEUE_READY] = 1;
	if (!d->regs[QUEUE_READY])
		return give_up(d, "refused our queue");
	return 1;
}
/* «/Set up a virtqueue» */

/* «Read a disk's capacity» book/drivers.md:2007 @8e8c24db */
static u32 read_capacity(struct virtio_dev *d)
{
	u32 generation, low, high;
	do {
		generation = d->regs[CONFIG_GENERATION];
		low = d->regs[CONFIG];
		high = d->regs[CONFIG + 1];
	} while (generation != d->regs[CONFIG_GENERATION]);
	return high ? 0xFFFFFFFF : low;
}
/* «/Read a disk's capacity» */

/* «Find the devices» book/drivers.md:2037 @8bd73e79 */
static u64 wanted_features(u32 type)
{
	if (type == VIRTIO_ID_BLOCK)
		return 1ull << BLK_F_RO | 1ull << BLK_F_FLUSH;
	return 0;
}

static void probe(struct virtio_dev *d)
{
	if (d->type != VIRTIO_ID_RNG && d->type != VIRTIO_ID_BLOCK) {
		d->regs[STATUS] = 0;
		d->regs[STATUS] = ACKNOWLEDGE;
		printf("virtio: %s at 0x%x, line %u: no driver\n", device_name(d->type), d->phys,
		       d->irq);
		return;
	}
	if (!negotiate(d, wanted_features(d->type)) || !setup_queue(d))
		return;
	if (d->type == VIRTIO_ID_BLOCK)
		d->sectors = read_capacity(d);
	d->regs[STATUS] = ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK;
	d->ready = !(d->regs[STATUS] & DEVICE_NEEDS_RESET);
	printf("virtio: %s at 0x%x, line %u", device_name(d->type), d->phys, d->irq);
	if (d->type == VIRTIO_ID_BLOCK)
		printf(": %u sectors, %s", d->sectors,
		       HAS(d->features, BLK_F_RO) ? "read-only" : "read-write");
	printf("%s\n", d->ready ? "" : ", but it needs a reset");
}

void virtio_init(void)
{
	const u32 *entry = (const u32 *)((const u8 *)boot + BOOT_DEVICES);
	u32 i, count = boot->device_count < BOOT_MAX_DEVICES ? boot->device_count
							       : BOOT_MAX_DEVICES;
	if (count && mem_size > DEVICE_WINDOWS - PAGE_OFFSET) {
		printf("virtio: %u MiB of memory leaves no room to map devices\n", mem_size >> 20);
		return;
	}
	for (i = 0; i < count; i++, entry += 4) {
		struct virtio_dev *d = &devices[device_count];
		d->type = entry[0], d->phys = entry[1], d->irq = entry[3];
		if (d->irq < FIRST_DEVICE_IRQ || d->irq >= FIRST_DEVICE_IRQ + BOOT_MAX_DEVICES
		    || entry[2] < PAGE_SIZE || d->phys & ~PAGE_MASK) {
			printf("virtio: entry %u of the boot page makes no sense\n", i);
			continue;
		}
		d->regs = map_window(device_count, d->phys);
		if (d->regs[MAGIC_VALUE] != VIRTIO_MAGIC || d->regs[VERSION] != 2
		    || d->regs[DEVICE_ID] != d->type) {
			printf("virtio: no version 2 %s at 0x%x\n", device_name(d->type), d->phys);
			continue;
		}
		device_count++;
		install_gate(d->irq);
		probe(d);
	}
}
/* «/Find the devices» */

/* «Send a chain and wait for it» book/drivers.md:2130 @f11e5262 */
struct buffer {
	volatile void *data;
	u32 len, device_writes;
};

/* Offer one chain on queue 0 and sleep until it comes back: the bytes the device wrote,
 * or -1 if the device has given up on us. */
static int transfer(struct virtio_dev *d, const struct buffer *chain, u32 n)
{
	volatile struct vring *ring = d->ring;
	u32 i, written;
	u16 avail = ring->avail.idx;

	if (!d->ready || n > d->size)
		return -1;
	for (i = 0; i < n; i++) {
		ring->desc[i].addr = __pa(chain[i].data);
		ring->desc[i].len = chain[i].len;
		ring->desc[i].flags = (i + 1 < n ? DESC_F_NEXT : 0)
				      | (chain[i].device_writes ? DESC_F_WRITE : 0);
		ring->desc[i].next = (u16)(i + 1);
	}
	ring->avail.ring[avail % d->size] = 0;
	barrier();
	ring->avail.idx = (u16)(avail + 1);
	barrier();
	d->regs[QUEUE_NOTIFY] = 0;
	while (ring->used.idx == d->last_used) {
		if (d->regs[STATUS] & DEVICE_NEEDS_RESET) {
			d->ready = 0;
			return -1;
		}
		hcall(LHCALL_HALT, 0, 0, 0, 0);
	}
	barrier();
	written = ring->used.ring[d->last_used % d->size].len;
	d->last_used++;
	return (int)written;
}

static struct virtio_dev *find_device(u32 type)
{
	u32 i;
	for (i = 0; i < device_count; i++)
		if (devices[i].type == type && devices[i].ready)
			return &devices[i];
	return 0;
}
/* «/Send a chain and wait for it» */

/* «The entropy driver» book/drivers.md:2191 @6ceea3a8 */
void cmd_random(int argc, char **argv)
{
	struct virtio_dev *d = find_device(VIRTIO_ID_RNG);
	u8 bytes[64];
	char hex[2 * sizeof(bytes) + 1];
	int ok = argc == 2, got, tries = 16;
	u32 n = ok ? parse_number(argv[1], &ok) : 0, have = 0, i;

	if (!d) {
		printf("random: no entropy device; boot with --rng\n");
		return;
	}
	if (!ok || n == 0 || n > sizeof(bytes)) {
		printf("usage: random N (1 to %u bytes)\n", (u32)sizeof(bytes));
		return;
	}
	while (have < n && tries--) {
		struct buffer chain = { bytes + have, n - have, 1 };
		got = transfer(d, &chain, 1);
		if (got < 0) {
			printf("random: the device needs a reset\n");
			return;
		}
		have += (u32)got < n - have ? (u32)got : n - have;
	}
	for (i = 0; i < have; i++) {
		hex[2 * i] = "0123456789abcdef"[bytes[i] >> 4];
		hex[2 * i + 1] = "0123456789abcdef"[bytes[i] & 15];
	}
	hex[2 * have] = '\0';
	printf("%s\n", hex);
}
/* «/The entropy driver» */

/* «Block requests» book/drivers.md:2237 @de9b40bb */
#define SECTOR_SIZE 512
#define BLK_T_IN 0
#define BLK_T_OUT 1
#define BLK_T_FLUSH 4
#define BLK_S_OK 0
#define BLK_S_IOERR 1
#define BLK_S_UNSUPP 2

struct blk_header {
	u32 type, reserved;
	u64 sector;
};

/* One request: the status byte the device wrote, or -1 if it will not talk to us. */
static int blk_request(struct virtio_dev *d, u32 type, u32 sector, volatile u8 *data)
{
	volatile struct blk_header header = { type, 0, sector };
	volatile u8 status = 0xFF;
	struct buffer chain[3] = {
		{ &header, sizeof(header), 0 },
		{ data, SECTOR_SIZE, type == BLK_T_IN },
		{ &status, 1, 1 },
	};
	if (type == BLK_T_FLUSH)
		chain[1] = chain[2];
	if (transfer(d, chain, type == BLK_T_FLUSH ? 2 : 3) < 0)
		return -1;
	return status;
}

static int blk_ok(const char *what, u32 sector, int status)
{
	const char *why = status < 0 ? "the device needs a reset"
			  : status == BLK_S_IOERR ? "I/O error"
			  : status == BLK_S_UNSUPP ? "request not supported" : "no status";
	if (status == BLK_S_OK)
		return 1;
	printf("blk %s: sector %u: %s\n", what, sector, why);
	return 0;
}
/* «/Block requests» */

/* «The block driver» book/drivers.md:2297 @fa608e09 */
static void blk_read(struct virtio_dev *d, u32 sector)
{
	static volatile u8 data[SECTOR_SIZE];
	char text[17];
	u32 row, i;

	if (!blk_ok("read", sector, blk_request(d, BLK_T_IN, sector, data)))
		return;
	for (row = 0; row < 64; row += 16) {
		printf("%04x ", row);
		for (i = 0; i < 16; i++) {
			u8 c = data[row + i];
			printf(" %02x", c);
			text[i] = c >= ' ' && c < 0x7f ? (char)c : '.';
		}
		text[16] = '\0';
		printf("  |%s|\n", text);
	}
}

static void blk_write(struct virtio_dev *d, u32 sector, int words, char **word)
{
	static volatile u8 data[SECTOR_SIZE];
	u32 len = 0, n;
	int i;

	if (HAS(d->features, BLK_F_RO)) {
		printf("blk write: the disk is read-only\n");
		return;
	}
	memset((void *)data, 0, SECTOR_SIZE);
	for (i = 0; i < words; i++) {
		n = strlen(word[i]);
		if (i && len < SECTOR_SIZE)
			data[len++] = ' ';
		n = n < SECTOR_SIZE - len ? n : SECTOR_SIZE - len;
		memcpy((void *)(data + len), word[i], n);
		len += n;
	}
	if (!blk_ok("write", sector, blk_request(d, BLK_T_OUT, sector, data)))
		return;
	if (HAS(d->features, BLK_F_FLUSH)
	    && !blk_ok("flush", sector, blk_request(d, BLK_T_FLUSH, 0, 0)))
		return;
	printf("blk write: sector %u: %u bytes and %u zeros%s\n", sector, len, SECTOR_SIZE - len,
	       HAS(d->features, BLK_F_FLUSH) ? ", flushed" : "");
}

void cmd_blk(int argc, char **argv)
{
	struct virtio_dev *d = find_device(VIRTIO_ID_BLOCK);
	int ok = argc >= 3;
	u32 sector = ok ? parse_number(argv[2], &ok) : 0;

	if (!d)
		printf("blk: no block device; boot with --block=IMAGE\n");
	else if (argc == 2 && !strcmp(argv[1], "info"))
		printf("blk: %u sectors (%u KiB), %s%s; %u interrupts so far\n", d->sectors,
		       d->sectors / 2, HAS(d->features, BLK_F_RO) ? "read-only" : "read-write",
		       HAS(d->features, BLK_F_FLUSH) ? ", flush" : "", d->interrupts);
	else if (ok && argc == 3 && !strcmp(argv[1], "read"))
		blk_read(d, sector);
	else if (ok && argc >= 4 && !strcmp(argv[1], "write"))
		blk_write(d, sector, argc - 3, argv + 3);
	else
		printf("usage: blk info | blk read SECTOR | blk write SECTOR TEXT\n");
}
/* «/The block driver» */
/* «/src/lguest/guest/virtio.c» */
