/* lib.c: printing, shutting down, gates and page tables for the test guests. */
#include <stdarg.h>
#include "guest.h"

struct trap_stub {
	u32 vector;
	void *stub;
};
extern const struct trap_stub trap_stubs[];

static trap_fn trap_handlers[256];

void *memset(void *p, int c, u32 n)
{
	u8 *b = p;
	while (n--)
		*b++ = (u8)c;
	return p;
}

void *memcpy(void *d, const void *s, u32 n)
{
	u8 *to = d;
	const u8 *from = s;
	while (n--)
		*to++ = *from++;
	return d;
}

u32 strlen(const char *s)
{
	u32 n = 0;
	while (s[n])
		n++;
	return n;
}

void lguest_init(void)
{
	memset((void *)lguest_data.async_status, ASYNC_DONE, ASYNC_SLOTS);
	lguest_data.irq_enabled = 0;
	lguest_data.kernel_address = PAGE_OFFSET;
	lguest_data.noirq_iret = (u32)noirq_iret;
	hcall(LHCALL_LGUEST_INIT, PHYS(&lguest_data), 0, 0, 0);
}

static void console_write(const char *s, u32 len)
{
	if (len)
		hcall(LHCALL_CONSOLE_WRITE, PHYS(s), len, 0, 0);
}

void print(const char *s)
{
	console_write(s, strlen(s));
}

/* A buffer on the stack, so that printing is reentrant. */
struct out {
	char buf[120];
	u32 len;
};

static void put(struct out *o, char c)
{
	if (o->len == sizeof(o->buf)) {
		console_write(o->buf, o->len);
		o->len = 0;
	}
	o->buf[o->len++] = c;
}

static void put_number(struct out *o, u32 value, u32 base, u32 width, char pad)
{
	char digits[12];
	u32 n = 0;
	do {
		digits[n++] = "0123456789abcdef"[value % base];
		value /= base;
	} while (value);
	while (width > n) {
		put(o, pad);
		width--;
	}
	while (n)
		put(o, digits[--n]);
}

/* %s %c %d %u %x, with an optional zero-padded width: %08x. */
void printf(const char *fmt, ...)
{
	struct out o;
	va_list ap;
	o.len = 0;
	va_start(ap, fmt);
	for (; *fmt; fmt++) {
		u32 width = 0;
		char pad = ' ';
		if (*fmt != '%') {
			put(&o, *fmt);
			continue;
		}
		fmt++;
		if (*fmt == '0')
			pad = '0';
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (u32)(*fmt++ - '0');
		switch (*fmt) {
		case 's': {
			const char *s = va_arg(ap, const char *);
			while (*s)
				put(&o, *s++);
			break;
		}
		case 'c':
			put(&o, (char)va_arg(ap, int));
			break;
		case 'd': {
			int v = va_arg(ap, int);
			if (v < 0) {
				put(&o, '-');
				v = -v;
			}
			put_number(&o, (u32)v, 10, width, pad);
			break;
		}
		case 'u':
			put_number(&o, va_arg(ap, u32), 10, width, pad);
			break;
		case 'x':
			put_number(&o, va_arg(ap, u32), 16, width, pad);
			break;
		case '%':
			put(&o, '%');
			break;
		default:
			put(&o, '?');
			break;
		}
	}
	va_end(ap);
	console_write(o.buf, o.len);
}

static void shutdown(u32 how, const char *msg) __attribute__((noreturn));
static void shutdown(u32 how, const char *msg)
{
	if (!msg)
		msg = "";
	hcall(LHCALL_SHUTDOWN, PHYS(msg), how, 0, 0);
	/* Still here?  The Host did not listen.  Say so and hang: the test's
	 * timeout turns this into a failure with this line in the output. */
	print("SHUTDOWN returned\n");
	for (;;)
		;
}

void poweroff(const char *msg)
{
	shutdown(SHUTDOWN_POWEROFF, msg);
}

void restart(const char *msg)
{
	shutdown(SHUTDOWN_RESTART, msg);
}

void set_gate(u32 vector, void *handler, u32 type, u32 dpl)
{
	u32 offset = (u32)handler;
	u32 low = (KERNEL_CS << 16) | (offset & 0xFFFF);
	u32 high = (offset & 0xFFFF0000) | 0x8000 | (dpl << 13) | (type << 8);
	hcall(LHCALL_LOAD_IDT_ENTRY, vector, low, high, 0);
}

/* Software interrupts we raise ourselves get DPL 3 gates, the others DPL 0,
 * as Linux has them. */
void on_trap(u32 vector, trap_fn fn, u32 type)
{
	const struct trap_stub *s;
	for (s = trap_stubs; s->vector != 0xFFFFFFFF; s++) {
		if (s->vector == vector) {
			u32 dpl = (vector == 3 || vector == 4 || vector >= SYSCALL_VECTOR) ? 3 : 0;
			trap_handlers[vector] = fn;
			set_gate(vector, s->stub, type, dpl);
			return;
		}
	}
	printf("no stub for vector %u\n", vector);
	restart("no stub");
}

static void unexpected(struct trapframe *tf)
{
	printf("unexpected trap %u error %x at eip %x, cr2 %x\n",
	       tf->vector, tf->error, tf->eip, lguest_data.cr2);
	restart("unexpected trap");
}

void catch_unexpected(void)
{
	u32 v;
	for (v = 0; v < 20; v++)
		if (v != 2 && v != 9 && v != 15)
			on_trap(v, unexpected, TRAP_GATE);
}

void trap_dispatch(struct trapframe *tf)
{
	trap_fn fn = trap_handlers[tf->vector & 0xFF];
	if (!fn)
		fn = unexpected;
	fn(tf);
}

/* The length of the few instructions our guests fault on deliberately. */
u32 insn_length(u32 eip)
{
	const u8 *p = (const u8 *)eip;
	switch (p[0]) {
	case 0xFA: /* cli */
	case 0xFB: /* sti */
	case 0xF4: /* hlt */
		return 1;
	case 0xF7: /* div/idiv reg */
	case 0x8E: /* mov sreg, reg */
		if ((p[1] & 0xC0) == 0xC0)
			return 2;
		break;
	case 0x0F:
		if (p[1] == 0x0B) /* ud2 */
			return 2;
		break;
	}
	printf("insn_length: unknown instruction %x %x at %x\n", p[0], p[1], eip);
	restart("insn_length");
}

/* Page tables: pages come from a pool in .bss, so they are in the kernel's
 * first 4 MiB and zeroed by the Launcher. */
#define POOL_PAGES 96
static u8 pool[POOL_PAGES][PAGE_SIZE] ALIGNED_PAGE;
static u32 pool_used;
static u32 kernel_pt[1024] ALIGNED_PAGE;

void *alloc_page(void)
{
	if (pool_used == POOL_PAGES)
		restart("out of pages");
	return pool[pool_used++];
}

u32 *new_pgdir(void)
{
	u32 *pgdir = alloc_page();
	u32 i;
	if (!kernel_pt[0])
		for (i = 0; i < 1024; i++)
			kernel_pt[i] = (i << 12) | PTE_P | PTE_RW;
	pgdir[KERNEL_PGD_INDEX] = PHYS(kernel_pt) | PTE_P | PTE_RW;
	return pgdir;
}

volatile u32 *pte_of(u32 *pgdir, u32 va)
{
	volatile u32 *pde = &pgdir[va >> 22];
	u32 *table;
	if (!(*pde & PTE_P)) {
		table = alloc_page();
		*pde = PHYS(table) | PTE_P | PTE_RW | PTE_US;
	}
	table = (u32 *)((*pde & ~0xFFFu) + PAGE_OFFSET);
	return &table[(va >> 12) & 1023];
}

void map_page(u32 *pgdir, u32 va, u32 phys, u32 flags)
{
	*pte_of(pgdir, va) = (phys & ~0xFFFu) | flags;
}

void use_pgdir(u32 *pgdir)
{
	hcall(LHCALL_NEW_PGTABLE, PHYS(pgdir), 0, 0, 0);
}

void to_ring3(u32 *pgdir, const void *code, u32 code_va, u32 stack_va, u32 esp,
	      void *kernel_stack_top)
{
	map_page(pgdir, code_va, PHYS(code), PTE_P | PTE_US);
	map_page(pgdir, stack_va, PHYS(alloc_page()), PTE_P | PTE_RW | PTE_US);
	use_pgdir(pgdir);
	hcall(LHCALL_SET_STACK, KERNEL_DS, (u32)kernel_stack_top, 2, 0);
	print("to ring 3\n");
	asm volatile("pushl %0\n\t"
		     "pushl %1\n\t"
		     "pushfl\n\t"
		     "pushl %2\n\t"
		     "pushl %3\n\t"
		     "iret"
		     : : "i"(USER_DS), "r"(esp), "i"(USER_CS), "r"(code_va)
		     : "memory");
	print("iret returned\n");
}
