/* Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'. */
/* «src/lguest/guest/kernel.h» book/guest-kernel.md:230 @57d6ed27 */
/* kernel.h: what every file of the Guest's kernel shares. */
#ifndef KERNEL_H
#define KERNEL_H

#include <stdarg.h>
#include "lguest.h"

/* «The kernel's types and structures» book/guest-kernel.md:120 @2cb6db14 */
typedef unsigned char u8;
typedef unsigned int u32;

#define PAGE_MASK (~(PAGE_SIZE - 1))
#define PTE_PRESENT 0x001
#define PTE_WRITABLE 0x002
#define INTERRUPT_GATE 0xE
#define HZ 100
#define NSEC_PER_SEC 1000000000u

/* Kernel virtual addresses and guest-physical ones differ by PAGE_OFFSET, for all of RAM. */
#define __pa(p) ((u32)(p) - PAGE_OFFSET)
#define __va(x) ((void *)((u32)(x) + PAGE_OFFSET))
#define barrier() asm volatile("" ::: "memory")

struct lguest_data {
	volatile u32 irq_enabled, blocked_interrupts, cr2, irq_pending;
	volatile u32 time_sec, time_nsec, reserve_mem, kernel_address, noirq_iret;
	u32 unused[7];
	volatile u8 async_status[ASYNC_SLOTS];
	volatile u32 async_calls[ASYNC_SLOTS][5];
};
#define CHECK_OFFSET(field, offset) \
	_Static_assert(__builtin_offsetof(struct lguest_data, field) == (offset), #field)
CHECK_OFFSET(irq_enabled, LGUEST_DATA_IRQ_ENABLED);
CHECK_OFFSET(cr2, LGUEST_DATA_CR2);
CHECK_OFFSET(irq_pending, LGUEST_DATA_IRQ_PENDING);
CHECK_OFFSET(time_sec, LGUEST_DATA_TIME_SEC);
CHECK_OFFSET(reserve_mem, LGUEST_DATA_RESERVE_MEM);
CHECK_OFFSET(noirq_iret, LGUEST_DATA_NOIRQ_IRET);
CHECK_OFFSET(async_status, LGUEST_DATA_ASYNC_STATUS);
CHECK_OFFSET(async_calls, LGUEST_DATA_ASYNC_CALLS);
_Static_assert(sizeof(struct lguest_data) == LGUEST_DATA_SIZE, "lguest_data size");

struct boot_page {
	u32 magic, version, mem_size, page_offset, pgdir, cmdline, cmdline_len, device_count;
};
_Static_assert(__builtin_offsetof(struct boot_page, cmdline_len) == BOOT_CMDLINE_LEN_OFF, "");

/* What entry.S leaves on the stack for handle_trap(): segment registers, pushal's eight, the
 * vector and error code (0 if the CPU pushes none), then the Host's frame. */
struct trapframe {
	u32 es, ds;
	u32 edi, esi, ebp, esp, ebx, edx, ecx, eax;
	u32 vector, error;
	u32 eip, cs, eflags;
};

/* The registers a C function must preserve, and where to resume: see save_context(). */
struct context {
	u32 ebx, esi, edi, ebp, esp, eip;
};
/* «/The kernel's types and structures» */

/* «Hypercalls and the virtual interrupt flag» book/guest-kernel.md:184 @125af072 */
extern struct lguest_data lguest_data;

static inline u32 hcall(u32 call, u32 a1, u32 a2, u32 a3, u32 a4)
{
	u32 ret;
	asm volatile("int $0x1f"
		     : "=a"(ret)
		     : "a"(call), "b"(a1), "c"(a2), "d"(a3), "S"(a4)
		     : "memory");
	return ret;
}

static inline void irq_disable(void)
{
	lguest_data.irq_enabled = 0;
	barrier();
}

static inline void irq_enable(void)
{
	barrier();
	lguest_data.irq_enabled = X86_EFLAGS_IF;
	barrier();
	if (lguest_data.irq_pending)
		hcall(LHCALL_SEND_INTERRUPTS, 0, 0, 0, 0);
}

static inline u32 irq_save(void)
{
	u32 flags = lguest_data.irq_enabled;
	irq_disable();
	return flags;
}

static inline void irq_restore(u32 flags)
{
	if (flags)
		irq_enable();
}
/* «/Hypercalls and the virtual interrupt flag» */

/* «What each file offers the others» book/guest-kernel.md:252 @3c3cb395 */
/* boot.c */
extern const struct boot_page *boot;
extern u32 mem_size, kernel_pages, pages_allocated, kernel_pgdir;
u32 alloc_page(void);
u32 alloc_contiguous(u32 pages);
void async_hcall(u32 call, u32 a1, u32 a2, u32 a3);

/* traps.c */
extern volatile u32 jiffies;
extern struct context *recovery;
extern volatile u32 fault_in_fault_handler;
void traps_init(void);
void timer_init(void);

/* entry.S */
extern char _end[], noirq_iret[], stack_guard[], boot_stack_top[];
int save_context(struct context *c) __attribute__((returns_twice));
void resume_context(struct context *c, int value) __attribute__((noreturn));

/* lib.c */
void *memset(void *p, int c, u32 n);
void *memcpy(void *to, const void *from, u32 n);
u32 strlen(const char *s);
int strcmp(const char *a, const char *b);
struct console {
	const char *name;
	void (*write)(const char *s, u32 len);
	int (*read)(char *buf, u32 room);	/* bytes read, 0 for none yet, -1 at the end */
	int echo;				/* keys arrive raw: the shell must echo them */
};
extern const struct console early_console, *console;
void console_write(const char *s, u32 len);
void printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
u32 vformat(char *buf, u32 size, const char *fmt, va_list ap);
void shutdown(u32 how, const char *message) __attribute__((noreturn));
void panic(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* shell.c */
void shell(void) __attribute__((noreturn));
u32 parse_number(const char *s, int *ok);
/* «/What each file offers the others» */
/* «What each file offers the others»[2] book/drivers-guest.md:1216 @359b50d4 */
/* virtio.c */
void virtio_init(void);
int device_interrupt(u32 line);
void cmd_random(int argc, char **argv);
void cmd_blk(int argc, char **argv);
void cmd_ping(int argc, char **argv);
void cmd_net(int argc, char **argv);
/* «/What each file offers the others» */

#endif
/* «/src/lguest/guest/kernel.h» */
