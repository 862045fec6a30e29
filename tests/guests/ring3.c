/* ring3: what a program at ring 3 may not do.  The kernel maps a page of
 * user code and drops to ring 3; the program tries, one after another, to
 * print a kernel secret with CONSOLE_WRITE, to install its own gate with
 * LOAD_IDT_ENTRY and go through it, to power the machine off with SHUTDOWN,
 * and to int into gates the kernel keeps for itself (the timer's, the page
 * fault's, and the breakpoint's and overflow's once the kernel makes them
 * DPL 0, by int3, into and int $n alike).  Each must
 * end as a #GP in the kernel's own handler, with the error code a CPU gives
 * (vector * 8 + 2) and eip at the int, and change nothing.  What ring 3 may
 * still do is checked too: int3 and int $3 through a DPL-3 gate, and an
 * exception (a cli dressed up as int $13 by the bytes before it, a divide
 * error) or the timer's interrupt reaching a DPL-0 gate.  And a program that
 * touches the Switcher's pages, which only the kernel may read, is its kernel's
 * page fault, not the end of the machine. */
#include "guest.h"

#define USER_CODE 0x08048000 /* no u suffixes: the assembler below reads these too */
#define USER_STACK 0x0804A000
#define USER_FLAG (USER_STACK + PAGE_SIZE - 4) /* the timer handler sets it */
#define U(label) (USER_CODE + (u32)(label) - (u32)user_code)

struct stub {
	u32 vector;
	void *stub;
};
extern const struct stub trap_stubs[];
extern char user_code[], u_console[], u_idt[], u_81[], u_shutdown[], u_timer[], u_pf[], u_bp[],
	u_bp2[], u_bp3[], u_bp4[], u_into[], u_of[], u_cli[], u_div[], u_peek[], u_poke[], u_evil[],
	u_end[];
const char secret[] = "the kernel's secret\n";
const char pwned[] = "ring 3 turned the machine off";
static u8 kernel_stack[2 * PAGE_SIZE] ALIGNED_PAGE;

/* Position-independent: it runs at USER_CODE, not where it was linked. */
#define GATE_LOW ((KERNEL_CS << 16) | ((USER_CODE + u_evil - user_code) & 0xFFFF))
#define GATE_HIGH (((USER_CODE + u_evil - user_code) & 0xFFFF0000) | 0xEE00)
#define STR_(x) #x
#define STR(x) STR_(x)
asm(".section .text.user, \"ax\"\n"
    ".balign 4096\n"
    "user_code:\n"
    "	movl $" STR(LHCALL_CONSOLE_WRITE) ", %eax\n"
    "	movl $secret - " STR(PAGE_OFFSET) ", %ebx\n"
    "	movl $20, %ecx\n"
    "u_console: int $0x1f\n"
    "	movl $" STR(LHCALL_LOAD_IDT_ENTRY) ", %eax\n"
    "	movl $0x81, %ebx\n"
    "	movl $" STR(GATE_LOW) ", %ecx\n"
    "	movl $" STR(GATE_HIGH) ", %edx\n"
    "u_idt: int $0x1f\n"
    "u_81: int $0x81\n"
    "	movl $" STR(LHCALL_SHUTDOWN) ", %eax\n"
    "	movl $pwned - " STR(PAGE_OFFSET) ", %ebx\n"
    "	movl $" STR(SHUTDOWN_POWEROFF) ", %ecx\n"
    "u_shutdown: int $0x1f\n"
    "u_timer: int $0x20\n"
    "u_pf: int $0x0e\n"
    "u_bp: int3\n"
    "u_bp2: int $3\n"
    "	movl $1, %eax\n"
    "	int $0x80\n" /* please make the breakpoint gate DPL 0 */
    "u_bp3: int3\n"
    "u_bp4: int $3\n"
    "	movl $0x7fffffff, %eax\n"
    "	incl %eax\n" /* overflow: into traps */
    "u_into: into\n"
    "u_of: int $4\n"
    "	jmp u_cli\n"
    "	.byte 0xcd, 0x0d\n" /* int $13, never run: only the cli after it is */
    "u_cli: cli\n"
    "	xorl %ecx, %ecx\n"
    "u_div: divl %ecx\n"
    "u_peek: movl 0xffc00000, %eax\n" /* the Switcher's pages: the kernel's to see, not ours */
    "u_poke: movl %eax, 0xffc00000\n"
    "	movl $2, %eax\n"
    "	int $0x80\n" /* please arm the timer, interrupts on */
    "1:	cmpl $0, " STR(USER_FLAG) "\n"
    "	je 1b\n"
    "	movl $0, %eax\n"
    "	int $0x80\n" /* that is all */
    "u_end: jmp u_end\n"
    "u_evil:\n" /* what the program's own gate would run, at ring 1 */
    "	movl $" STR(LHCALL_SHUTDOWN) ", %eax\n"
    "	movl $pwned - " STR(PAGE_OFFSET) ", %ebx\n"
    "	movl $" STR(SHUTDOWN_POWEROFF) ", %ecx\n"
    "	int $0x1f\n"
    ".text\n");

static const char *where(u32 eip)
{
	static const struct {
		const char *label, *name;
	} places[] = {
		{u_console, "the CONSOLE_WRITE"}, {u_idt, "the LOAD_IDT_ENTRY"}, {u_81, "int $0x81"},
		{u_shutdown, "the SHUTDOWN"}, {u_timer, "int $0x20"}, {u_pf, "int $0x0e"},
		{u_bp, "the first int3"}, {u_bp2, "the first int $3"}, {u_bp3, "the second int3"},
		{u_bp4, "the second int $3"}, {u_into, "the into"}, {u_of, "int $4"},
		{u_cli, "the cli"}, {u_div, "the div"}, {u_peek, "the read of the Switcher"},
		{u_poke, "the write to the Switcher"},
	};
	u32 i;
	for (i = 0; i < sizeof(places) / sizeof(places[0]); i++)
		if (eip == U(places[i].label))
			return places[i].name;
	printf("eip %x is nowhere we know\n", eip);
	restart("lost");
}

static void gp(struct trapframe *tf)
{
	u8 first = *(const u8 *)tf->eip;
	printf("#GP error %x at %s from cs %x\n", tf->error, where(tf->eip), tf->cs);
	tf->eip += first == 0xCD ? 2 : 1; /* int $n; int3, into, cli */
}

static void divide(struct trapframe *tf)
{
	printf("divide error at %s from cs %x\n", where(tf->eip), tf->cs);
	tf->eip += 2;
}

static void pagefault(struct trapframe *tf)
{
	printf("page fault at %s from cs %x, cr2 %x, error %x\n", where(tf->eip), tf->cs,
	       lguest_data.cr2, tf->error);
	tf->eip += 5; /* both are a one-byte opcode and a 32-bit address */
}

static void breakpoint(struct trapframe *tf)
{
	u32 length = *(const u8 *)(tf->eip - 1) == 0xCC ? 1 : 2; /* int3, or int $3 */
	printf("breakpoint from cs %x, eip after %s\n", tf->cs, where(tf->eip - length));
}

static void int81(struct trapframe *tf)
{
	printf("int $0x81 reached the kernel's handler from cs %x\n", tf->cs);
}

static void tick(struct trapframe *tf)
{
	printf("timer interrupt from cs %x\n", tf->cs);
	POKE(USER_FLAG, 1);
}

static void syscall(struct trapframe *tf)
{
	const struct stub *s;
	switch (tf->eax) {
	case 1:
		for (s = trap_stubs; s->vector != 5; s++)
			if (s->vector == 3 || s->vector == 4)
				set_gate(s->vector, s->stub, TRAP_GATE, 0);
		print("the breakpoint and overflow gates are DPL 0 now\n");
		break;
	case 2:
		irq_enable();
		tf->eflags |= X86_EFLAGS_IF;
		hcall(LHCALL_SET_CLOCKEVENT, 1000000, 0, 0, 0);
		break;
	default:
		print("the machine is still on\n");
		poweroff("ring3 done");
	}
}

void main(void)
{
	u32 *pgdir;

	lguest_init();
	catch_unexpected();
	on_trap(0, divide, TRAP_GATE);
	on_trap(13, gp, TRAP_GATE);
	on_trap(14, pagefault, INTERRUPT_GATE);
	on_trap(3, breakpoint, TRAP_GATE); /* on_trap gives 3 and 0x80 up DPL 3 */
	on_trap(0x81, int81, TRAP_GATE);
	on_trap(SYSCALL_VECTOR, syscall, TRAP_GATE);
	on_trap(FIRST_EXTERNAL_VECTOR + TIMER_IRQ, tick, INTERRUPT_GATE); /* DPL 0 */
	pgdir = new_pgdir();
	to_ring3(pgdir, user_code, USER_CODE, USER_STACK, USER_STACK + PAGE_SIZE - 4,
		 kernel_stack + sizeof(kernel_stack));
}
