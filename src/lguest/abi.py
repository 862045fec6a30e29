# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/abi.py» book/launcher.md:783 @d5f6072c
"""The numbers Host and Guest agree on: the Launcher and Guest chapters explain each one."""

# «Where things live» book/launcher.md:338 @1d2fabce
PAGE_SIZE = 4096
PAGE_OFFSET = 0xC0000000  # where the Guest's kernel sees physical memory
SWITCHER_ADDR = 0xFFC00000  # the top 4 MiB of every address space: hands off
BOOT_PAGE = 0x1000  # guest-physical address of the boot page
KERNEL_LOAD = 0x100000  # a kernel is loaded 1 MiB up
MAX_MEMORY = 1020 << 20  # what fits below the Switcher at PAGE_OFFSET
# «/Where things live»

# «The boot page» book/launcher.md:765 @05ed6c13
BOOT_MAGIC = 0x5950474C  # "LGPY" in memory
BOOT_VERSION = 1
BOOT_FIELDS = ("magic", "version", "mem_size", "page_offset", "pgdir",
               "cmdline", "cmdline_len", "device_count")
BOOT_DEVICES = 32  # offset of the device table: 8 entries of 4 words
BOOT_DEVICE_FIELDS = ("type", "mmio_base", "mmio_size", "irq")
BOOT_MAX_DEVICES = 8
BOOT_CMDLINE = 256  # offset of the command line within the page
BOOT_CMDLINE_MAX = PAGE_SIZE - BOOT_CMDLINE - 1
# «/The boot page»
# «/src/lguest/abi.py»
# «src/lguest/abi.py»[2] book/guest.md:427 @7a85147d
# «Segments the Guest starts with» book/guest.md:331 @975922cb
GDT_ENTRIES = 32
FIRST_GUEST_GDT_ENTRY = 3  # entries 0 to 2 belong to the Host
KERNEL_CS = 3 << 3 | 1
KERNEL_DS = 4 << 3 | 1
USER_CS = 5 << 3 | 3
USER_DS = 6 << 3 | 3
# «/Segments the Guest starts with»

# «Hypercall numbers» book/guest.md:356 @8feea513
HYPERCALL_VECTOR = 0x1F
HYPERCALLS = {
    "FLUSH_ASYNC": 0,  # drain the asynchronous ring
    "LGUEST_INIT": 1,  # ebx: physical address of lguest_data
    "SHUTDOWN": 2,  # ebx: physical address of a message, ecx: POWEROFF or RESTART
    "NEW_PGTABLE": 4,  # ebx: physical address of the new page directory
    "FLUSH_TLB": 5,  # ebx: 0 for user mappings, 1 for everything
    "LOAD_IDT_ENTRY": 6,  # ebx: vector, ecx and edx: the two words of the gate
    "SET_STACK": 7,  # ebx: stack segment, ecx: stack top, edx: pages
    "TS": 8,  # ebx: 1 to set the task-switched bit, 0 to clear it
    "SET_CLOCKEVENT": 9,  # ebx: nanoseconds until the next tick, 0 for none
    "HALT": 10,  # sleep until an interrupt
    "SET_PTE": 14,  # ebx: page directory, ecx: virtual address, edx: new entry
    "SET_PGD": 15,  # ebx: page directory, ecx: index of the changed entry
    "LOAD_GDT_ENTRY": 18,  # ebx: index, ecx and edx: the two words of the descriptor
    "SEND_INTERRUPTS": 19,  # deliver whatever is pending
    "CONSOLE_WRITE": 20,  # ebx: physical address, ecx: length
    "CONSOLE_READ": 21,  # ebx: physical address, ecx: room; eax: bytes read, or CONSOLE_EOF
    "BEER": 22,  # ebx: physical address, ecx: room; eax: the voucher's length, 0 if none
}
CONSOLE_EOF = 0xFFFFFFFF  # CONSOLE_READ's answer once the input has ended
HYPERCALL_NAMES = {number: name for name, number in HYPERCALLS.items()}
SHUTDOWN_POWEROFF = 1
SHUTDOWN_RESTART = 2
# «/Hypercall numbers»

# «The shared page» book/guest.md:388 @4e890483
LGUEST_DATA = {
    "irq_enabled": 0,  # guest: X86_EFLAGS_IF when interrupts are on
    "blocked_interrupts": 4,  # guest: a bit for each masked interrupt line
    "cr2": 8,  # host: the address of the last page fault
    "irq_pending": 12,  # host: nonzero when an interrupt is waiting
    "time_sec": 16,  # host: the time, seconds
    "time_nsec": 20,  # host: and nanoseconds
    "reserve_mem": 24,  # host: bytes at the top of memory the Guest must not use
    "kernel_address": 28,  # guest: lowest kernel virtual address
    "noirq_iret": 32,  # guest: address of the iret that must not be interrupted
    "async_status": 64,  # 64 status bytes
    "async_calls": 128,  # 64 slots of 5 words
}
ASYNC_SLOTS = 64
ASYNC_READY = 0
ASYNC_DONE = 0xFF
LGUEST_DATA_SIZE = 128 + ASYNC_SLOTS * 20
X86_EFLAGS_IF = 0x200
# «/The shared page»

# «Interrupt vectors» book/guest.md:415 @692ae744
FIRST_EXTERNAL_VECTOR = 32
TIMER_IRQ = 0
CONSOLE_IRQ = 1
IRQ_LINES = 32
SYSCALL_VECTOR = 0x80
# «/Interrupt vectors»
# «/src/lguest/abi.py»
