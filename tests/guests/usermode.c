/* usermode: SET_STACK names the ring-1 stack the Host switches to when a
 * trap or interrupt arrives from ring 3.  The guest maps a page of user code
 * at 0x08048000 and a user stack, drops to ring 3 with iret, and the user
 * code makes a system call with int $0x80; the handler runs at ring 1 on
 * the SET_STACK stack with the five-word frame (eip, cs, eflags, esp, ss). */
#include "guest.h"

#define USER_CODE 0x08048000u
#define USER_STACK 0x0804A000u

extern char user_code[];
static u8 kernel_stack[2 * PAGE_SIZE] ALIGNED_PAGE;

/* Position-independent: it runs at USER_CODE, not where it was linked. */
asm(".section .text.user, \"ax\"\n"
    ".balign 4096\n"
    "user_code:\n"
    "	movl $7, %eax\n"
    "	int $0x80\n"
    "1:	jmp 1b\n"
    ".text\n");

static void syscall(struct trapframe *tf)
{
	u32 frame = (u32)&tf->eip;
	int on_stack = frame >= (u32)kernel_stack && frame + 20 == (u32)kernel_stack + sizeof(kernel_stack);
	printf("system call %u from cs %x eip %x, user esp %x ss %x\n",
	       tf->eax, tf->cs, tf->eip - USER_CODE, tf->esp, tf->ss);
	printf("frame %s the SET_STACK stack\n", on_stack ? "at the top of" : "NOT at the top of");
	poweroff("usermode done");
}

void main(void)
{
	u32 *pgdir;

	lguest_init();
	catch_unexpected();
	on_trap(SYSCALL_VECTOR, syscall, TRAP_GATE);
	pgdir = new_pgdir();
	to_ring3(pgdir, user_code, USER_CODE, USER_STACK, USER_STACK + PAGE_SIZE,
		 kernel_stack + sizeof(kernel_stack));
}
