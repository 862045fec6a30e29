/* Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'. */
/* «src/lguest/guest/shell.c» book/guest-shell.md:613 @b3f89a7a */
/* shell.c: a small shell on the console. */
#include "kernel.h"

#define BOOT_CMDLINE_MAX_SHOWN 255

/* «Read a character» book/guest-shell.md:254 @c8a98ef9 */
static char input[64];
static u32 input_len, input_pos;

static int read_char(void)
{
	while (input_pos == input_len) {
		int n = console->read(input, sizeof(input));
		if (n < 0)
			return -1;
		if (n == 0)
			hcall(LHCALL_HALT, 0, 0, 0, 0);
		input_len = (u32)n;
		input_pos = 0;
	}
	return (u8)input[input_pos++];
}
/* «/Read a character» */

/* «Read a line» book/guest-shell.md:288 @121f0a11 */
#define LINE_MAX 128
#define CTRL_D 4

static void echo(const char *s, u32 len)
{
	if (console->echo)
		console_write(s, len);
}

static int read_line(char *line)
{
	u32 len = 0;
	int c;
	char key;
	for (;;) {
		c = read_char();
		if ((c < 0 || c == CTRL_D) && !len)
			return -1;
		if (c < 0 || c == '\n' || c == '\r') {
			echo("\n", 1);
			break;
		}
		if (c == '\b' || c == 0x7f) {
			if (len) {
				len--;
				echo("\b \b", 3);
			}
		} else if (c != CTRL_D && len + 1 < LINE_MAX) {
			key = (char)c;
			line[len++] = key;
			echo(&key, 1);
		}
	}
	line[len] = '\0';
	return (int)len;
}
/* «/Read a line» */

/* «Split a line into words» book/guest-shell.md:330 @9e28e1bb */
#define MAX_ARGS 16

static int split(char *line, char **argv)
{
	int argc = 0;
	while (*line) {
		while (*line == ' ' || *line == '\t')
			*line++ = '\0';
		if (!*line)
			break;
		if (argc < MAX_ARGS)
			argv[argc++] = line;
		while (*line && *line != ' ' && *line != '\t')
			line++;
	}
	return argc;
}
/* «/Split a line into words» */

/* «Parse a number» book/guest-shell.md:355 @20b0e9a4 */
u32 parse_number(const char *s, int *ok)
{
	u32 value = 0, base = 10, digit;
	*ok = *s != '\0';
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		base = 16, s += 2, *ok = *s != '\0';
	for (; *s; s++) {
		if (*s >= '0' && *s <= '9')
			digit = (u32)(*s - '0');
		else if (*s >= 'a' && *s <= 'f')
			digit = (u32)(*s - 'a' + 10);
		else if (*s >= 'A' && *s <= 'F')
			digit = (u32)(*s - 'A' + 10);
		else
			digit = 99;
		if (digit >= base)
			*ok = 0;
		value = value * base + digit;
	}
	return value;
}
/* «/Parse a number» */

/* «The commands» book/guest-shell.md:394 @37eac52c */
static void cmd_help(int argc, char **argv);

static void cmd_echo(int argc, char **argv)
{
	int i;
	for (i = 1; i < argc; i++)
		printf(i > 1 ? " %s" : "%s", argv[i]);
	printf("\n");
}

static void cmd_uptime(int argc, char **argv)
{
	u32 ticks = jiffies, sec = lguest_data.time_sec, nsec = lguest_data.time_nsec;
	printf("up %u.%02u s by %u ticks, %u.%03u s by the Host's clock\n",
	       ticks / HZ, ticks % HZ, ticks, sec, nsec / 1000000);
}

static void cmd_ticks(int argc, char **argv)
{
	printf("%u\n", jiffies);
}

static void cmd_sleep(int argc, char **argv)
{
	int ok = argc == 2;
	u32 seconds = ok ? parse_number(argv[1], &ok) : 0, until;
	if (!ok || seconds > 1000) {
		printf("usage: sleep SECONDS (at most 1000)\n");
		return;
	}
	until = jiffies + seconds * HZ;
	while ((int)(until - jiffies) > 0)
		hcall(LHCALL_HALT, 0, 0, 0, 0);
}

static void cmd_mem(int argc, char **argv)
{
	u32 used = kernel_pages + pages_allocated;
	printf("memory: %u KiB, kernel image %u KiB, allocated %u KiB, free %u KiB\n",
	       mem_size >> 10, kernel_pages * 4, pages_allocated * 4,
	       ((mem_size - KERNEL_LOAD) >> 10) - used * 4);
}

static void cmd_cmdline(int argc, char **argv)
{
	char line[BOOT_CMDLINE_MAX_SHOWN + 1];
	u32 len = boot->cmdline_len < BOOT_CMDLINE_MAX_SHOWN ? boot->cmdline_len
							      : BOOT_CMDLINE_MAX_SHOWN;
	memcpy(line, __va(boot->cmdline), len);
	line[len] = '\0';
	printf("%s\n", line);
}

static void cmd_beer(int argc, char **argv)
{
	static char voucher[4096];
	u32 n = hcall(LHCALL_BEER, __pa(voucher), sizeof(voucher), 0, 0);
	if (!n) {
		printf("No Beer yet: the Host has no voucher to hand over.\n"
		       "Do every chapter's quest, run lguest beer, then boot me again.\n");
		return;
	}
	console_write(voucher, n < sizeof(voucher) ? n : sizeof(voucher));
}

static void cmd_poweroff(int argc, char **argv)
{
	shutdown(SHUTDOWN_POWEROFF, "poweroff from the shell");
}

static void cmd_reboot(int argc, char **argv)
{
	shutdown(SHUTDOWN_RESTART, "reboot from the shell");
}
/* «/The commands» */

/* «Commands that break things» book/guest-shell.md:479 @e2339db8 */
static void cmd_peek(int argc, char **argv)
{
	int ok = argc == 2;
	u32 address = ok ? parse_number(argv[1], &ok) : 0;
	if (!ok) {
		printf("usage: peek ADDRESS\n");
		return;
	}
	if (address >= (u32)-lguest_data.reserve_mem - 3) {
		printf("peek: 0x%x is the Switcher's; the Host would kill us\n", address);
		return;
	}
	printf("0x%x: 0x%08x\n", address, *(volatile u32 *)address);
}

static void cmd_cli(int argc, char **argv)
{
	asm volatile("cli");
	printf("interrupts are off, or so we think\n");
}

static void cmd_crash(int argc, char **argv)
{
	fault_in_fault_handler = 1;
	*(volatile u32 *)0xdead0000 = 0;
}
/* «/Commands that break things» */

/* «The command table» book/guest-shell.md:513 @d9d0123f */
struct command {
	const char *name, *args, *help;
	void (*run)(int argc, char **argv);
};

static const struct command commands[] = {
	/* «The shell's commands» book/guest-shell.md:526 @33b9bc38 */
	{ "help", "", "this list", cmd_help },
	{ "echo", "WORDS...", "print the words", cmd_echo },
	{ "uptime", "", "time since boot, by ticks and by the Host's clock", cmd_uptime },
	{ "ticks", "", "timer interrupts since boot", cmd_ticks },
	{ "sleep", "SECONDS", "sleep in HALT while the timer ticks", cmd_sleep },
	{ "mem", "", "memory size and use", cmd_mem },
	{ "cmdline", "", "the kernel's command line", cmd_cmdline },
	{ "peek", "ADDRESS", "read a word of memory (try 0xdead0000)", cmd_peek },
	{ "cli", "", "disable interrupts the bare-metal way", cmd_cli },
	{ "crash", "", "fault inside the fault handler", cmd_crash },
	/* «/The shell's commands» */
	/* «The shell's commands»[2] book/drivers-guest.md:1233 @90d512c5 */
	{ "random", "N", "N random bytes from the Host, in hex", cmd_random },
	{ "blk", "[N] SUBCOMMAND", "disk N, or 0: info, read SECTOR, write SECTOR TEXT, bench", cmd_blk },
	{ "ping", "[MAC]", "ping a guest on the wire, or all of them", cmd_ping },
	{ "net", "[SUBCOMMAND]", "the network card: counters, or flood N [MAC]", cmd_net },
	/* «/The shell's commands» */
	/* «The shell's last words» book/guest-shell.md:542 @bae73e0a */
	{ "beer", "", "the Beer voucher, if the Host has one for you", cmd_beer },
	{ "reboot", "", "restart the machine", cmd_reboot },
	{ "poweroff", "", "turn the machine off", cmd_poweroff },
	/* «/The shell's last words» */
};
#define COMMANDS (sizeof(commands) / sizeof(commands[0]))
/* «/The command table» */
/* «The command table»[2] book/guest-shell.md:552 @ae37f55a */
static void cmd_help(int argc, char **argv)
{
	char pad[20];
	u32 i, n;
	for (i = 0; i < COMMANDS; i++) {
		n = strlen(commands[i].name) + 1 + strlen(commands[i].args);
		n = n < sizeof(pad) - 2 ? sizeof(pad) - 1 - n : 1;
		memset(pad, ' ', n);
		pad[n] = '\0';
		printf("  %s %s%s%s\n", commands[i].name, commands[i].args, pad, commands[i].help);
	}
}
/* «/The command table» */

/* «The shell's loop» book/guest-shell.md:579 @3c578076 */
void shell(void)
{
	static struct context saved;
	char line[LINE_MAX], *argv[MAX_ARGS];
	const struct command *command;
	int argc;

	for (;;) {
		printf("lguest$ ");
		if (read_line(line) < 0)
			break;
		argc = split(line, argv);
		if (!argc)
			continue;
		for (command = commands; command < commands + COMMANDS; command++)
			if (!strcmp(argv[0], command->name))
				break;
		if (command == commands + COMMANDS) {
			printf("%s: no such command; try help\n", argv[0]);
		} else if (save_context(&saved) == 0) {
			recovery = &saved;
			command->run(argc, argv);
			recovery = 0;
		} else {
			irq_enable();
		}
	}
	printf("\n");
	shutdown(SHUTDOWN_POWEROFF, "end of input");
}
/* «/The shell's loop» */
/* «/src/lguest/guest/shell.c» */
