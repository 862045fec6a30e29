/* Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'. */
/* «src/lguest/guest/virtio.c» book/drivers-guest.md:1294 @0b22eaae */
/* virtio.c: the Guest's virtio-mmio drivers: discovery, a split virtqueue, rng, block, net, console. */
#include "kernel.h"

/* «The virtio numbers, in C» book/drivers-guest.md:45 @8bea3a61 */
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
#define NET_F_MAC 5
#define HAS(features, bit) ((features) >> (bit) & 1)
/* «/The virtio numbers, in C» */

/* «The split virtqueue, in C» book/drivers-guest.md:96 @974b3d21 */
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

/* «A driver's view of a device» book/drivers-guest.md:138 @55125f59 */
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

/* «Map a device's registers» book/drivers-guest.md:181 @5de907d1 */
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

/* «A device's interrupt» book/drivers-guest.md:241 @f499d70a */
extern void *const device_stubs[BOOT_MAX_DEVICES];
static void net_receive(void);	/* the network driver's, on the network's page */

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
		if (devices[i].type == VIRTIO_ID_NET && devices[i].ready)
			net_receive();
		return 1;
	}
	return 0;
}
/* «/A device's interrupt» */

/* «The status dance, from the driver's side» book/drivers-guest.md:287 @dbc6d307 */
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

/* «Set up a virtqueue» book/drivers-guest.md:332 @fd5b4fdb */
static volatile struct vring *setup_queue(struct virtio_dev *d, u32 index, u16 *size)
{
	u32 max, page;

	d->regs[QUEUE_SEL] = index;
	max = d->regs[QUEUE_NUM_MAX];
	if (d->regs[QUEUE_READY] || !max) {
		give_up(d, index ? "has no usable queue 1" : "has no usable queue 0");
		return 0;
	}
	for (*size = QUEUE_SIZE; *size > max; *size /= 2)
		;
	page = alloc_page();
	d->regs[QUEUE_NUM] = *size;
	d->regs[QUEUE_DESC_LOW] = page + __builtin_offsetof(struct vring, desc);
	d->regs[QUEUE_DESC_HIGH] = 0;
	d->regs[QUEUE_DRIVER_LOW] = page + __builtin_offsetof(struct vring, avail);
	d->regs[QUEUE_DRIVER_HIGH] = 0;
	d->regs[QUEUE_DEVICE_LOW] = page + __builtin_offsetof(struct vring, used);
	d->regs[QUEUE_DEVICE_HIGH] = 0;
	d->regs[QUEUE_READY] = 1;
	if (!d->regs[QUEUE_READY]) {
		give_up(d, "refused our queue");
		return 0;
	}
	return __va(page);
}
/* «/Set up a virtqueue» */

/* «Read a disk's capacity» book/drivers-guest.md:371 @8e8c24db */
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

/* «A queue kept stocked» book/drivers-guest.md:995 @5d8c1680 */
#define AVAIL_F_NO_INTERRUPT 1	/* the available ring's flag: no interrupts for this queue, please */

struct queue {
	volatile struct vring *ring;
	u16 size, last_used;
};

/* Offer descriptor id, one buffer, on q's available ring (the caller notifies). */
static void offer(struct queue *q, u16 id, volatile void *buffer, u32 len, u16 flags)
{
	u16 avail = q->ring->avail.idx;

	q->ring->desc[id].addr = __pa(buffer);
	q->ring->desc[id].len = len;
	q->ring->desc[id].flags = flags;
	q->ring->avail.ring[avail % q->size] = id;
	barrier();
	q->ring->avail.idx = (u16)(avail + 1);
}
/* «/A queue kept stocked» */

/* «The network card, as the driver keeps it» book/drivers-network.md:563 @8953a9c9 */
#define NET_RX 0
#define NET_TX 1
#define NET_HEADER 12	/* flags, gso type, header length, gso size, csum start, offset, buffers */
#define ETH_ALEN 6
#define ETH_HLEN 14
#define ETH_ZLEN 60	/* the shortest frame Ethernet allows, without its checksum */
#define FRAME_MAX 1514

static struct {
	struct virtio_dev *dev;
	struct queue rx, tx;
	u8 mac[ETH_ALEN];
	u32 sent, received, dropped, answered;
	/* «What a ping waits for» book/drivers-network.md:747 @4d21aa91 */
	u32 seq;			/* the last ping we sent */
	volatile u32 ponged, rtt_us;	/* its pong arrived; and how long it took */
	volatile u8 ponger[ETH_ALEN];
	volatile u32 flood_pongs, flood_sec, flood_nsec;	/* a flood's pongs, and when the last came */
	/* «/What a ping waits for» */
} net;

static volatile u8 rx_buffers[QUEUE_SIZE][NET_HEADER + FRAME_MAX];
static volatile u8 tx_buffers[QUEUE_SIZE][NET_HEADER + FRAME_MAX];

static const char *net_mac_text(void)
{
	static char text[3 * ETH_ALEN];
	u32 i;
	for (i = 0; i < ETH_ALEN; i++) {
		text[3 * i] = "0123456789abcdef"[net.mac[i] >> 4];
		text[3 * i + 1] = "0123456789abcdef"[net.mac[i] & 15];
		text[3 * i + 2] = i + 1 < ETH_ALEN ? ':' : '\0';
	}
	return text;
}
/* «/The network card, as the driver keeps it» */

/* «Bring up the network card» book/drivers-network.md:609 @f4173ff4 */
static int net_queues(struct virtio_dev *d)
{
	u32 generation, i;
	volatile u8 *config = (volatile u8 *)(d->regs + CONFIG);

	if (net.dev)
		return give_up(d, "is a second network card; one is plenty");
	if (!(net.rx.ring = setup_queue(d, NET_RX, &net.rx.size))
	    || !(net.tx.ring = setup_queue(d, NET_TX, &net.tx.size)))
		return 0;
	net.tx.ring->avail.flags = AVAIL_F_NO_INTERRUPT;
	do {
		generation = d->regs[CONFIG_GENERATION];
		for (i = 0; i < ETH_ALEN; i++)
			net.mac[i] = HAS(d->features, NET_F_MAC) ? config[i] : i == 0 ? 2 : i == 5;
	} while (generation != d->regs[CONFIG_GENERATION]);
	return 1;
}

static void give_back(u16 id)
{
	offer(&net.rx, id, rx_buffers[id], sizeof(rx_buffers[id]), DESC_F_WRITE);
}

static void net_start(struct virtio_dev *d)
{
	u16 id;
	net.dev = d;
	for (id = 0; id < net.rx.size; id++)
		give_back(id);
	barrier();
	d->regs[QUEUE_NOTIFY] = NET_RX;
}
/* «/Bring up the network card» */

/* «Receive frames» book/drivers-network.md:657 @0baa390f */
static void net_frame(volatile u8 *frame, u32 len);

static void net_receive(void)
{
	volatile struct vring *ring = net.rx.ring;
	u32 len;
	u16 id, got = 0;

	while (ring->used.idx != net.rx.last_used) {
		barrier();
		id = (u16)ring->used.ring[net.rx.last_used % net.rx.size].id;
		len = ring->used.ring[net.rx.last_used % net.rx.size].len;
		net.rx.last_used++;
		if (id >= net.rx.size) {
			net.dropped++;
			continue;
		}
		if (len >= NET_HEADER + ETH_HLEN && len <= sizeof(rx_buffers[id])) {
			net.received++;
			net_frame(rx_buffers[id] + NET_HEADER, len - NET_HEADER);
		} else {
			net.dropped++;
		}
		give_back(id);
		got++;
	}
	barrier();
	if (got)
		net.dev->regs[QUEUE_NOTIFY] = NET_RX;
}
/* «/Receive frames» */

/* «Send a frame» book/drivers-network.md:698 @afa634c7 */
static int net_send(const u8 *to, u16 type, const void *payload, u32 len)
{
	volatile struct vring *ring = net.tx.ring;
	u16 avail = ring->avail.idx, id = avail % net.tx.size;
	u8 *frame = (u8 *)tx_buffers[id];
	u32 total = ETH_HLEN + len < ETH_ZLEN ? ETH_ZLEN : ETH_HLEN + len;

	if ((u16)(avail - ring->used.idx) >= net.tx.size || total > FRAME_MAX) {
		net.dropped++;
		return 0;
	}
	memset(frame, 0, NET_HEADER + total);
	frame += NET_HEADER;
	memcpy(frame, to, ETH_ALEN);
	memcpy(frame + ETH_ALEN, net.mac, ETH_ALEN);
	frame[12] = (u8)(type >> 8), frame[13] = (u8)type;
	memcpy(frame + ETH_HLEN, payload, len);
	ring->desc[id].addr = __pa(tx_buffers[id]);
	ring->desc[id].len = NET_HEADER + total;
	ring->desc[id].flags = 0;
	ring->avail.ring[id] = id;
	barrier();
	ring->avail.idx = (u16)(avail + 1);
	barrier();
	net.dev->regs[QUEUE_NOTIFY] = NET_TX;
	net.sent++;
	return 1;
}
/* «/Send a frame» */

/* «The console's driver» book/drivers-guest.md:1056 @febef957 */
#define CONSOLE_RX 0
#define CONSOLE_TX 1
#define CONSOLE_RX_BUFFER 64
#define CONSOLE_TX_BUFFER 256	/* a whole printf */

static struct {
	struct virtio_dev *dev;
	struct queue rx, tx;
	u32 taken;		/* bytes already read from the oldest used receive buffer */
	int ended;		/* the device sent the end of the input */
} vcon;

static volatile char con_rx[QUEUE_SIZE][CONSOLE_RX_BUFFER];
static volatile char con_tx[QUEUE_SIZE][CONSOLE_TX_BUFFER];
static const struct console virtio_console;

static int console_queues(struct virtio_dev *d)
{
	if (!(vcon.rx.ring = setup_queue(d, CONSOLE_RX, &vcon.rx.size))
	    || !(vcon.tx.ring = setup_queue(d, CONSOLE_TX, &vcon.tx.size)))
		return 0;
	vcon.tx.ring->avail.flags = AVAIL_F_NO_INTERRUPT;
	return 1;
}

static void post_rx(u16 id)
{
	offer(&vcon.rx, id, con_rx[id], CONSOLE_RX_BUFFER, DESC_F_WRITE);
}

static void console_start(struct virtio_dev *d)
{
	u16 id;
	vcon.dev = d;
	for (id = 0; id < vcon.rx.size; id++)
		post_rx(id);
	barrier();
	d->regs[QUEUE_NOTIFY] = CONSOLE_RX;
	console = &virtio_console;
}

/* The device has given up on us: back to the Host's early console, for good. */
static int console_lost(void)
{
	if (!(vcon.dev->regs[STATUS] & DEVICE_NEEDS_RESET))
		return 0;
	vcon.dev->ready = 0;
	console = &early_console;
	return 1;
}
/* «/The console's driver» */
/* «The console's driver»[2] book/drivers-guest.md:1115 @9e7a3c3c */
static void vcon_write(const char *s, u32 len)
{
	volatile struct vring *ring = vcon.tx.ring;
	u32 flags = irq_save(), n;
	u16 avail, id;

	while (len) {
		avail = ring->avail.idx;
		if ((u16)(avail - ring->used.idx) >= vcon.tx.size) {	/* every buffer is out */
			if (!flags || console_lost()) {
				early_console.write(s, len);
				break;
			}
			irq_restore(flags);
			hcall(LHCALL_HALT, 0, 0, 0, 0);
			flags = irq_save();
			continue;
		}
		id = avail % vcon.tx.size;
		n = len < CONSOLE_TX_BUFFER ? len : CONSOLE_TX_BUFFER;
		memcpy((void *)con_tx[id], s, n);
		ring->desc[id].addr = __pa(con_tx[id]);
		ring->desc[id].len = n;
		ring->desc[id].flags = 0;
		ring->avail.ring[id] = id;
		barrier();
		ring->avail.idx = (u16)(avail + 1);
		barrier();
		vcon.dev->regs[QUEUE_NOTIFY] = CONSOLE_TX;
		s += n, len -= n;
	}
	irq_restore(flags);
}
/* «/The console's driver» */
/* «The console's driver»[3] book/drivers-guest.md:1164 @382ccd92 */
static int vcon_read(char *buf, u32 room)
{
	volatile struct vring *ring = vcon.rx.ring;
	u32 flags = irq_save(), got = 0, len, n;
	u16 id, given = 0;

	while (got < room && !vcon.ended && ring->used.idx != vcon.rx.last_used) {
		barrier();
		id = (u16)ring->used.ring[vcon.rx.last_used % vcon.rx.size].id;
		len = ring->used.ring[vcon.rx.last_used % vcon.rx.size].len;
		if (id >= vcon.rx.size) {
			vcon.rx.last_used++;
			continue;
		}
		if (len == 0) {
			vcon.ended = 1;	/* a zero-length read: the end of the input */
			break;
		}
		len = len < CONSOLE_RX_BUFFER ? len : CONSOLE_RX_BUFFER;
		n = len - vcon.taken < room - got ? len - vcon.taken : room - got;
		memcpy(buf + got, (const void *)(con_rx[id] + vcon.taken), n);
		got += n;
		vcon.taken += n;
		if (vcon.taken == len) {
			vcon.taken = 0;
			vcon.rx.last_used++;
			post_rx(id);
			given++;
		}
	}
	barrier();
	if (given)
		vcon.dev->regs[QUEUE_NOTIFY] = CONSOLE_RX;
	irq_restore(flags);
	if (!got && console_lost())
		return early_console.read(buf, room);
	return got ? (int)got : vcon.ended ? -1 : 0;
}

static const struct console virtio_console = { "virtio", vcon_write, vcon_read, 1 };
/* «/The console's driver» */

/* «Find the devices» book/drivers-guest.md:407 @9f439f1a */
static u64 wanted_features(u32 type)
{
	if (type == VIRTIO_ID_BLOCK)
		return 1ull << BLK_F_RO | 1ull << BLK_F_FLUSH;
	if (type == VIRTIO_ID_NET)
		return 1ull << NET_F_MAC;
	return 0;
}

static void probe(struct virtio_dev *d)
{
	if (d->type != VIRTIO_ID_RNG && d->type != VIRTIO_ID_BLOCK && d->type != VIRTIO_ID_NET
	    && d->type != VIRTIO_ID_CONSOLE) {
		d->regs[STATUS] = 0;
		d->regs[STATUS] = ACKNOWLEDGE;
		printf("virtio: %s at 0x%x, line %u: no driver\n", device_name(d->type), d->phys,
		       d->irq);
		return;
	}
	if (!negotiate(d, wanted_features(d->type)))
		return;
	if (d->type == VIRTIO_ID_NET ? !net_queues(d)
	    : d->type == VIRTIO_ID_CONSOLE ? !console_queues(d)
	    : !(d->ring = setup_queue(d, 0, &d->size)))
		return;
	if (d->type == VIRTIO_ID_BLOCK)
		d->sectors = read_capacity(d);
	d->regs[STATUS] = ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK;
	d->ready = !(d->regs[STATUS] & DEVICE_NEEDS_RESET);
	if (d->ready && d->type == VIRTIO_ID_NET)
		net_start(d);
	if (d->ready && d->type == VIRTIO_ID_CONSOLE)
		console_start(d);
	printf("virtio: %s at 0x%x, line %u", device_name(d->type), d->phys, d->irq);
	if (d->type == VIRTIO_ID_BLOCK)
		printf(": %u sectors, %s", d->sectors,
		       HAS(d->features, BLK_F_RO) ? "read-only" : "read-write");
	if (d->type == VIRTIO_ID_NET)
		printf(": %s", net_mac_text());
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

/* «Send a chain and wait for it» book/drivers-guest.md:515 @f11e5262 */
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

/* «The entropy driver» book/drivers-guest.md:576 @6ceea3a8 */
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

/* «Block requests» book/drivers-guest.md:625 @18a6c1b5 */
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
static int blk_request(struct virtio_dev *d, u32 type, u32 sector, volatile u8 *data, u32 len)
{
	volatile struct blk_header header = { type, 0, sector };
	volatile u8 status = 0xFF;
	struct buffer chain[3] = {
		{ &header, sizeof(header), 0 },
		{ data, len, type == BLK_T_IN },
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

/* «The block driver» book/drivers-guest.md:696 @3b6c835d */
static void blk_read(struct virtio_dev *d, u32 sector)
{
	static volatile u8 data[SECTOR_SIZE];
	char text[17];
	u32 row, i;

	if (!blk_ok("read", sector, blk_request(d, BLK_T_IN, sector, data, SECTOR_SIZE)))
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
	if (!blk_ok("write", sector, blk_request(d, BLK_T_OUT, sector, data, SECTOR_SIZE)))
		return;
	if (HAS(d->features, BLK_F_FLUSH)
	    && !blk_ok("flush", sector, blk_request(d, BLK_T_FLUSH, 0, 0, 0)))
		return;
	printf("blk write: sector %u: %u bytes and %u zeros%s\n", sector, len, SECTOR_SIZE - len,
	       HAS(d->features, BLK_F_FLUSH) ? ", flushed" : "");
}

/* «Time the disk» book/drivers-guest.md:840 @23d770aa */
#define BENCH_SECTORS 8192	/* the largest request we make: 4 MiB */

static u32 host_time_us(u32 *sec)
{
	u32 flags = irq_save(), nsec;
	*sec = lguest_data.time_sec;
	nsec = lguest_data.time_nsec;
	irq_restore(flags);
	return nsec / 1000;
}

static void blk_bench(struct virtio_dev *d, const char *how, const char *count)
{
	static volatile u8 *data;
	static int patterned;	/* the buffer holds the write pattern */
	int ok = 1, write = !strcmp(how, "write");
	u32 sectors = parse_number(count, &ok), done = 0, n, i, sec0, us0, sec1, us1;
	u32 type = write ? BLK_T_OUT : BLK_T_IN;

	if (!ok || sectors == 0 || (!write && strcmp(how, "read"))) {
		printf("usage: blk bench read|write SECTORS\n");
		return;
	}
	if (sectors > d->sectors) {
		printf("blk bench: the disk has only %u sectors\n", d->sectors);
		return;
	}
	if (write && HAS(d->features, BLK_F_RO)) {
		printf("blk bench: the disk is read-only\n");
		return;
	}
	if (!data) {
		u32 phys = alloc_contiguous(BENCH_SECTORS * SECTOR_SIZE / PAGE_SIZE);
		if (!phys) {
			printf("blk bench: no room for a %u KiB buffer\n", BENCH_SECTORS / 2);
			return;
		}
		data = __va(phys);
	}
	for (i = 0; write && !patterned && i < BENCH_SECTORS * SECTOR_SIZE; i++)
		data[i] = (u8)i;
	patterned = write;
	hcall(LHCALL_HALT, 0, 0, 0, 0);	/* wake on an interrupt: the Host's clock is fresh */
	us0 = host_time_us(&sec0);
	while (done < sectors) {
		n = sectors - done < BENCH_SECTORS ? sectors - done : BENCH_SECTORS;
		if (!blk_ok(how, done, blk_request(d, type, done, data, n * SECTOR_SIZE)))
			return;
		done += n;
	}
	if (write && HAS(d->features, BLK_F_FLUSH)
	    && !blk_ok("flush", done, blk_request(d, BLK_T_FLUSH, 0, 0, 0)))
		return;
	us1 = host_time_us(&sec1);
	printf("blk bench: %u sectors %s in %u us\n", done, write ? "written" : "read",
	       (sec1 - sec0) * 1000000 + us1 - us0);
}
/* «/Time the disk» */

/* «Choose a disk» book/drivers-guest.md:941 @e724ce9f */
/* Disk index, counting the block devices in boot-page order; and how many disks there are. */
static struct virtio_dev *find_disk(u32 index, u32 *disks)
{
	struct virtio_dev *found = 0;
	u32 i;

	for (*disks = 0, i = 0; i < device_count; i++)
		if (devices[i].type == VIRTIO_ID_BLOCK && (*disks)++ == index)
			found = &devices[i];
	return found;
}

static void blk_info(struct virtio_dev *d, u32 index, int named)
{
	if (named)
		printf("blk %u: ", index);
	else
		printf("blk: ");
	if (!d->ready)
		printf("out of service\n");
	else
		printf("%u sectors (%u KiB), %s%s; %u interrupts so far\n", d->sectors,
		       d->sectors / 2, HAS(d->features, BLK_F_RO) ? "read-only" : "read-write",
		       HAS(d->features, BLK_F_FLUSH) ? ", flush" : "", d->interrupts);
}

static void blk_usage(void)
{
	printf("usage: blk [N] info | blk [N] read SECTOR | blk [N] write SECTOR TEXT"
	       " | blk [N] bench read|write SECTORS\n");
}
/* «/Choose a disk» */

void cmd_blk(int argc, char **argv)
{
	int named = argc >= 2 && argv[1][0] >= '0' && argv[1][0] <= '9', ok = 1, sector_ok = 0;
	u32 index = named ? parse_number(argv[1], &ok) : 0, disks, sector = 0, i;
	struct virtio_dev *d = find_disk(index, &disks);

	argc -= named, argv += named;	/* from here on, the command as a lone disk hears it */
	if (argc >= 3)
		sector = parse_number(argv[2], &sector_ok);
	if (!disks)
		printf("blk: no block device; boot with --block=IMAGE\n");
	else if (!ok)
		blk_usage();
	else if (!d)
		printf("blk %u: no such disk; this guest has %u, numbered from 0\n", index, disks);
	else if (argc == 2 && !strcmp(argv[1], "info") && (named || disks == 1))
		blk_info(d, index, named);
	else if (argc == 2 && !strcmp(argv[1], "info"))
		for (i = 0; i < disks; i++)
			blk_info(find_disk(i, &disks), i, 1);
	else if (sector_ok && argc == 3 && !strcmp(argv[1], "read"))
		blk_read(d, sector);
	else if (sector_ok && argc >= 4 && !strcmp(argv[1], "write"))
		blk_write(d, sector, argc - 3, argv + 3);
	else if (argc == 4 && !strcmp(argv[1], "bench"))
		blk_bench(d, argv[2], argv[3]);
	else
		blk_usage();
}
/* «/The block driver» */

/* «Ping and pong» book/drivers-network.md:754 @602f9c21 */
#define ETHERTYPE_PING 0x88B5	/* IEEE 802 "local experimental" */
#define PING 1
#define PONG 2
#define FLOOD 0x80000000u	/* in a sequence number: one of a flood's pings */

struct ping {
	u32 kind, seq, sec, nsec;
};

static const u8 broadcast[ETH_ALEN] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

static int same_mac(volatile const u8 *a, const u8 *b)
{
	u32 i;
	for (i = 0; i < ETH_ALEN; i++)
		if (a[i] != b[i])
			return 0;
	return 1;
}

/* Called from the interrupt handler, interrupts off, for every frame that arrives. */
static void net_frame(volatile u8 *frame, u32 len)
{
	struct ping p;
	u32 sec = lguest_data.time_sec, nsec = lguest_data.time_nsec;

	if (len < ETH_HLEN + sizeof(p) || frame[12] != ETHERTYPE_PING >> 8
	    || frame[13] != (ETHERTYPE_PING & 0xFF))
		return;
	if (!same_mac(frame, net.mac) && !same_mac(frame, broadcast))
		return;
	memcpy(&p, (const void *)(frame + ETH_HLEN), sizeof(p));
	if (p.kind == PING) {
		u8 to[ETH_ALEN];
		memcpy(to, (const void *)(frame + ETH_ALEN), ETH_ALEN);
		p.kind = PONG;
		net.answered += net_send(to, ETHERTYPE_PING, &p, sizeof(p));
	} else if (p.kind == PONG && p.seq & FLOOD) {
		net.flood_pongs++;
		net.flood_sec = sec, net.flood_nsec = nsec;
	} else if (p.kind == PONG && p.seq == net.seq && !net.ponged) {
		net.rtt_us = (sec - p.sec) * 1000000 + nsec / 1000 - p.nsec / 1000;
		memcpy((void *)net.ponger, (const void *)(frame + ETH_ALEN), ETH_ALEN);
		net.ponged = 1;
	}
}
/* «/Ping and pong» */
/* «Ping and pong»[2] book/drivers-network.md:812 @c0168f9b */
static int parse_mac(const char *text, u8 *mac)
{
	u32 i, j, digit;
	for (i = 0; i < ETH_ALEN; i++) {
		mac[i] = 0;
		for (j = 0; j < 2; j++, text++) {
			digit = *text >= '0' && *text <= '9' ? (u32)(*text - '0')
				: (*text | 0x20) >= 'a' && (*text | 0x20) <= 'f'
				? (u32)((*text | 0x20) - 'a' + 10) : 16;
			if (digit > 15)
				return 0;
			mac[i] = (u8)(mac[i] << 4 | digit);
		}
		if (*text != (i + 1 < ETH_ALEN ? ':' : '\0'))
			return 0;
		text++;
	}
	return 1;
}

void cmd_ping(int argc, char **argv)
{
	struct ping p = { PING, 0, 0, 0 };
	u8 to[ETH_ALEN];
	u32 flags, deadline;
	int sent;

	if (!net.dev) {
		printf("ping: no network card; boot with --net=udp:LOCAL:REMOTE or --net=switch\n");
		return;
	}
	if (argc > 2 || (argc == 2 && !parse_mac(argv[1], to))) {
		printf("usage: ping [MAC], as in ping 02:4c:47:13:88:00\n");
		return;
	}
	if (argc == 1)
		memcpy(to, broadcast, ETH_ALEN);
	hcall(LHCALL_HALT, 0, 0, 0, 0);	/* wake on an interrupt: the Host's clock is fresh */
	flags = irq_save();
	p.seq = ++net.seq;
	p.sec = lguest_data.time_sec, p.nsec = lguest_data.time_nsec;
	net.ponged = 0;
	sent = net_send(to, ETHERTYPE_PING, &p, sizeof(p));
	irq_restore(flags);
	if (!sent) {
		printf("ping: the transmit queue is full\n");
		return;
	}
	deadline = jiffies + HZ;
	while (!net.ponged && (int)(deadline - jiffies) > 0)
		hcall(LHCALL_HALT, 0, 0, 0, 0);
	if (!net.ponged) {
		printf("ping %u: no answer within a second\n", p.seq);
		return;
	}
	memcpy(to, (const void *)net.ponger, ETH_ALEN);
	printf("pong %u from %02x:%02x:%02x:%02x:%02x:%02x: %u us\n", p.seq, to[0], to[1], to[2],
	       to[3], to[4], to[5], net.rtt_us);
}

/* «Flood the wire» book/drivers-network.md:915 @ccd1b799 */
#define FLOOD_WINDOW (QUEUE_SIZE - 1)	/* the other side holds one buffer while it answers */

static void net_flood(const char *count, const char *mac)
{
	struct ping p = { PING, 0, 0, 0 };
	u8 to[ETH_ALEN];
	int ok = 1;
	u32 n = parse_number(count, &ok), sent = 0, seen = 0, flags, sec0, us0, deadline;

	if (!ok || n == 0 || (mac && !parse_mac(mac, to))) {
		printf("usage: net flood N [MAC]\n");
		return;
	}
	if (!mac)
		memcpy(to, broadcast, ETH_ALEN);
	net.flood_pongs = 0;
	hcall(LHCALL_HALT, 0, 0, 0, 0);	/* wake on an interrupt: the Host's clock is fresh */
	us0 = host_time_us(&sec0);
	net.flood_sec = sec0, net.flood_nsec = us0 * 1000;
	deadline = jiffies + HZ;
	while (net.flood_pongs < n && (int)(deadline - jiffies) > 0) {
		flags = irq_save();
		while (sent < n && sent - net.flood_pongs < FLOOD_WINDOW) {
			p.seq = FLOOD | sent;
			if (!net_send(to, ETHERTYPE_PING, &p, sizeof(p)))
				break;
			sent++;
		}
		irq_restore(flags);
		if (net.flood_pongs != seen)
			seen = net.flood_pongs, deadline = jiffies + HZ;
		if (net.flood_pongs < n)
			hcall(LHCALL_HALT, 0, 0, 0, 0);
	}
	printf("net flood: %u pings, %u pongs in %u us\n", sent, net.flood_pongs,
	       (net.flood_sec - sec0) * 1000000 + net.flood_nsec / 1000 - us0);
}
/* «/Flood the wire» */

void cmd_net(int argc, char **argv)
{
	if (!net.dev)
		printf("net: no network card; boot with --net=udp:LOCAL:REMOTE or --net=switch\n");
	else if (argc == 1)
		printf("net: %s, %u frames sent, %u received, %u dropped; %u pings answered\n",
		       net_mac_text(), net.sent, net.received, net.dropped, net.answered);
	else if ((argc == 3 || argc == 4) && !strcmp(argv[1], "flood"))
		net_flood(argv[2], argc == 4 ? argv[3] : 0);
	else
		printf("usage: net | net flood N [MAC]\n");
}
/* «/Ping and pong» */
/* «/src/lguest/guest/virtio.c» */
