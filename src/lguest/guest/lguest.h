/* Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'. */
/* «src/lguest/guest/lguest.h» book/guest-kernel.md:40 @92bde2a6 */
/* lguest.h: the contract between Host and Guest, in numbers (lguest.abi, for C and assembler).
 * Only plain "#define NAME NUMBER" lines: a test checks each one against lguest/abi.py. */
#ifndef LGUEST_H
#define LGUEST_H

#define PAGE_SIZE 4096
#define PAGE_OFFSET 0xC0000000
#define SWITCHER_ADDR 0xFFC00000
#define BOOT_PAGE 0x1000
#define KERNEL_LOAD 0x100000

#define KERNEL_CS 0x19
#define KERNEL_DS 0x21

#define BOOT_MAGIC 0x5950474C
#define BOOT_VERSION 1
#define BOOT_MAGIC_OFF 0
#define BOOT_MEM_SIZE_OFF 8
#define BOOT_CMDLINE_OFF 20
#define BOOT_CMDLINE_LEN_OFF 24
#define BOOT_DEVICE_COUNT_OFF 28
#define BOOT_DEVICES 32
#define BOOT_MAX_DEVICES 8

#define HYPERCALL_VECTOR 0x1F
#define LHCALL_FLUSH_ASYNC 0
#define LHCALL_LGUEST_INIT 1
#define LHCALL_SHUTDOWN 2
#define LHCALL_NEW_PGTABLE 4
#define LHCALL_LOAD_IDT_ENTRY 6
#define LHCALL_SET_STACK 7
#define LHCALL_SET_CLOCKEVENT 9
#define LHCALL_HALT 10
#define LHCALL_SET_PTE 14
#define LHCALL_SET_PGD 15
#define LHCALL_SEND_INTERRUPTS 19
#define LHCALL_CONSOLE_WRITE 20
#define LHCALL_CONSOLE_READ 21
#define LHCALL_BEER 22
#define CONSOLE_EOF 0xFFFFFFFF
#define SHUTDOWN_POWEROFF 1
#define SHUTDOWN_RESTART 2

#define LGUEST_DATA_IRQ_ENABLED 0
#define LGUEST_DATA_BLOCKED_INTERRUPTS 4
#define LGUEST_DATA_CR2 8
#define LGUEST_DATA_IRQ_PENDING 12
#define LGUEST_DATA_TIME_SEC 16
#define LGUEST_DATA_TIME_NSEC 20
#define LGUEST_DATA_RESERVE_MEM 24
#define LGUEST_DATA_KERNEL_ADDRESS 28
#define LGUEST_DATA_NOIRQ_IRET 32
#define LGUEST_DATA_ASYNC_STATUS 64
#define LGUEST_DATA_ASYNC_CALLS 128
#define LGUEST_DATA_SIZE 1408
#define ASYNC_SLOTS 64
#define ASYNC_READY 0
#define ASYNC_DONE 0xFF
#define X86_EFLAGS_IF 0x200

#define FIRST_EXTERNAL_VECTOR 32
#define TIMER_IRQ 0
#define CONSOLE_IRQ 1

#endif
/* «/src/lguest/guest/lguest.h» */
