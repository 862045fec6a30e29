/* The test guests' little runtime (runtime/crt0.S, runtime/lib.c).
 *
 * Every guest is linked with the runtime.  _start records the registers the
 * Host started it with (entry_state), switches to a 16 KiB stack in .bss and
 * calls main(); the runtime does NOT register the shared page, so a guest
 * can misbehave before LGUEST_INIT.  main() returning powers the guest off.
 *
 * Addresses: the kernel is linked at PAGE_OFFSET + 1 MiB and everything it
 * owns (code, data, .bss, stacks, page-table pages) lives in its image, so
 * the guest-physical address of anything of ours is PHYS(pointer).
 */
#ifndef GUEST_H
#define GUEST_H

#include "lguest.h"

/* x86 facts, not lguest ones */
#define PTE_P 0x001
#define PTE_RW 0x002
#define PTE_US 0x004
#define PTE_A 0x020
#define PTE_D 0x040
#define INTERRUPT_GATE 0xE
#define TRAP_GATE 0xF
#define KERNEL_PGD_INDEX (PAGE_OFFSET >> 22)

#ifdef __ASSEMBLER__

/* PRINT "text": CONSOLE_WRITE a string; clobbers eax, ecx, edx (cdecl). */
.macro PRINT text
	.pushsection .rodata
.Lprint_text\@:
	.asciz "\text"
	.popsection
	pushl $.Lprint_text\@
	call print
	addl $4, %esp
.endm

/* HCALL n: a hypercall with whatever is in ebx, ecx, edx, esi. */
.macro HCALL n
	movl $\n, %eax
	int $HYPERCALL_VECTOR
.endm

#else /* C */

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

#define PHYS(p) ((u32)(p) - PAGE_OFFSET)
#define PEEK(va) peek(va)
#define POKE(va, v) poke(va, v)
#define ALIGNED_PAGE __attribute__((aligned(PAGE_SIZE)))

struct lguest_data {
	volatile u32 irq_enabled;
	volatile u32 blocked_interrupts;
	volatile u32 cr2;
	volatile u32 irq_pending;
	volatile u32 time_sec;
	volatile u32 time_nsec;
	volatile u32 reserve_mem;
	volatile u32 kernel_address;
	volatile u32 noirq_iret;
	u32 unused[7];
	volatile u8 async_status[ASYNC_SLOTS];
	volatile u32 async_calls[ASYNC_SLOTS][5];
};
_Static_assert(__builtin_offsetof(struct lguest_data, irq_enabled) == LGUEST_DATA_IRQ_ENABLED, "");
_Static_assert(__builtin_offsetof(struct lguest_data, blocked_interrupts) == LGUEST_DATA_BLOCKED_INTERRUPTS, "");
_Static_assert(__builtin_offsetof(struct lguest_data, cr2) == LGUEST_DATA_CR2, "");
_Static_assert(__builtin_offsetof(struct lguest_data, irq_pending) == LGUEST_DATA_IRQ_PENDING, "");
_Static_assert(__builtin_offsetof(struct lguest_data, time_sec) == LGUEST_DATA_TIME_SEC, "");
_Static_assert(__builtin_offsetof(struct lguest_data, time_nsec) == LGUEST_DATA_TIME_NSEC, "");
_Static_assert(__builtin_offsetof(struct lguest_data, reserve_mem) == LGUEST_DATA_RESERVE_MEM, "");
_Static_assert(__builtin_offsetof(struct lguest_data, kernel_address) == LGUEST_DATA_KERNEL_ADDRESS, "");
_Static_assert(__builtin_offsetof(struct lguest_data, noirq_iret) == LGUEST_DATA_NOIRQ_IRET, "");
_Static_assert(__builtin_offsetof(struct lguest_data, async_status) == LGUEST_DATA_ASYNC_STATUS, "");
_Static_assert(__builtin_offsetof(struct lguest_data, async_calls) == LGUEST_DATA_ASYNC_CALLS, "");
_Static_assert(sizeof(struct lguest_data) == LGUEST_DATA_SIZE, "");

/* What the stubs in crt0.S push: the Host's frame (eip, cs, eflags, and
 * esp, ss from ring 3), the error code (0 for vectors without one), the
 * vector, pushal, then ds and es. */
struct trapframe {
	u32 es, ds;
	u32 edi, esi, ebp, esp0, ebx, edx, ecx, eax;
	u32 vector, error;
	u32 eip, cs, eflags;
	u32 esp, ss; /* only when the trap came from ring 3 */
};

struct entry_state {
	u32 eax, ebx, ecx, edx, esi, edi, ebp, esp, eflags;
	u32 cs, ds, es, fs, gs, ss;
};

typedef void (*trap_fn)(struct trapframe *);

extern struct lguest_data lguest_data; /* a page of our .bss */
extern struct entry_state entry_state;
extern u32 boot_phys;
extern char noirq_iret[];

/* Loads and stores at addresses made up by the guest.  The empty asm keeps
 * the compiler from reasoning about the address (0xABC is not NULL here). */
static inline u32 peek(u32 va)
{
	asm("" : "+r"(va));
	return *(volatile u32 *)va;
}

static inline void poke(u32 va, u32 value)
{
	asm("" : "+r"(va));
	*(volatile u32 *)va = value;
}

static inline u32 hcall(u32 call, u32 a1, u32 a2, u32 a3, u32 a4)
{
	u32 ret;
	asm volatile("int $0x1f"
		     : "=a"(ret)
		     : "a"(call), "b"(a1), "c"(a2), "d"(a3), "S"(a4)
		     : "memory");
	return ret;
}

void main(void);
void lguest_init(void);
void print(const char *s);
void printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void poweroff(const char *msg) __attribute__((noreturn));
void restart(const char *msg) __attribute__((noreturn));
void *memset(void *p, int c, u32 n);
void *memcpy(void *d, const void *s, u32 n);
u32 strlen(const char *s);

/* Interrupts and traps */
void set_gate(u32 vector, void *handler, u32 type, u32 dpl);
void on_trap(u32 vector, trap_fn fn, u32 type); /* through the runtime's stubs */
void catch_unexpected(void); /* every exception vector: report and restart */
u32 insn_length(u32 eip); /* of the few faulting instructions we use */
static inline void irq_enable(void) { lguest_data.irq_enabled = X86_EFLAGS_IF; }
static inline void irq_disable(void) { lguest_data.irq_enabled = 0; }

/* Page tables, all in our own memory */
void *alloc_page(void); /* a zeroed page of .bss */
u32 *new_pgdir(void); /* a page directory mapping the kernel's first 4 MiB */
volatile u32 *pte_of(u32 *pgdir, u32 va); /* allocating the page table */
void map_page(u32 *pgdir, u32 va, u32 phys, u32 flags); /* memory only */
void use_pgdir(u32 *pgdir); /* NEW_PGTABLE */
/* Map code (position-independent) at code_va and a fresh stack page at stack_va for ring 3,
 * give SET_STACK a two-page kernel stack ending at kernel_stack_top, say "to ring 3", and
 * iret to code_va with %esp = esp; prints "iret returned" if it ever comes back. */
void to_ring3(u32 *pgdir, const void *code, u32 code_va, u32 stack_va, u32 esp,
	      void *kernel_stack_top);

#endif /* __ASSEMBLER__ */
#endif
