/* Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'. */
/* «src/lguest/guest/lib.c» book/guest-shell.md:221 @e332fcc0 */
/* lib.c: the few C library functions the kernel needs, console output, shutdown and panic. */
#include "kernel.h"

/* «Strings and memory» book/guest-shell.md:31 @af98b6e8 */
void *memset(void *p, int c, u32 n)
{
	u8 *b = p;
	while (n--)
		*b++ = (u8)c;
	return p;
}

void *memcpy(void *to, const void *from, u32 n)
{
	u8 *t = to;
	const u8 *f = from;
	while (n--)
		*t++ = *f++;
	return to;
}

u32 strlen(const char *s)
{
	u32 n = 0;
	while (s[n])
		n++;
	return n;
}

int strcmp(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return (u8)*a - (u8)*b;
}
/* «/Strings and memory» */

/* «The console» book/guest-shell.md:83 @cb9560a3 */
static void early_write(const char *s, u32 len)
{
	if (len)
		hcall(LHCALL_CONSOLE_WRITE, __pa(s), len, 0, 0);
}

static int early_read(char *buf, u32 room)
{
	u32 n = hcall(LHCALL_CONSOLE_READ, __pa(buf), room, 0, 0);
	return n == CONSOLE_EOF ? -1 : (int)n;
}

const struct console early_console = { "early", early_write, early_read, 0 };
const struct console *console = &early_console;
/* «/The console» */

/* «Formatted output» book/guest-shell.md:100 @92131f56 */
struct out {
	char *buf;
	u32 size, len;
};

static void put(struct out *o, char c)
{
	if (o->len + 1 < o->size)
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
	for (; width > n; width--)
		put(o, pad);
	while (n)
		put(o, digits[--n]);
}

u32 vformat(char *buf, u32 size, const char *fmt, va_list ap)
{
	struct out o = { buf, size, 0 };
	for (; *fmt; fmt++) {
		u32 width = 0;
		char pad = ' ';
		const char *s;
		int v;
		if (*fmt != '%') {
			put(&o, *fmt);
			continue;
		}
		if (*++fmt == '0')
			pad = '0';
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (u32)(*fmt++ - '0');
		switch (*fmt) {
		case 's':
			for (s = va_arg(ap, const char *); *s; s++)
				put(&o, *s);
			break;
		case 'c':
			put(&o, (char)va_arg(ap, int));
			break;
		case 'd':
			v = va_arg(ap, int);
			if (v < 0)
				put(&o, '-');
			put_number(&o, v < 0 ? -(u32)v : (u32)v, 10, width, pad);
			break;
		case 'u':
			put_number(&o, va_arg(ap, u32), 10, width, pad);
			break;
		case 'x':
			put_number(&o, va_arg(ap, u32), 16, width, pad);
			break;
		case '\0':
			fmt--;
			break;
		default:
			put(&o, *fmt);
			break;
		}
	}
	if (o.size)
		o.buf[o.len] = '\0';
	return o.len;
}

void console_write(const char *s, u32 len)
{
	console->write(s, len);
}

void printf(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	console_write(buf, vformat(buf, sizeof(buf), fmt, ap));
	va_end(ap);
}
/* «/Formatted output» */

/* «Shutdown and panic» book/guest-shell.md:200 @4ba041d0 */
void shutdown(u32 how, const char *message)
{
	for (;;)
		hcall(LHCALL_SHUTDOWN, __pa(message), how, 0, 0);
}

void panic(const char *fmt, ...)
{
	static char message[200];
	va_list ap;
	irq_disable();
	va_start(ap, fmt);
	vformat(message, sizeof(message), fmt, ap);
	va_end(ap);
	printf("Kernel panic: %s\n", message);
	shutdown(SHUTDOWN_POWEROFF, message);
}
/* «/Shutdown and panic» */
/* «/src/lguest/guest/lib.c» */
