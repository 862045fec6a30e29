"""Apply each quest's solution to a copy of the book by string replacement (tools/quests/regen.sh)."""
import sys
from pathlib import Path

root = Path(sys.argv[1])
which = sys.argv[2:]

def edit(name, old, new):
    p = root / "book" / name
    t = p.read_text()
    assert t.count(old) == 1, (name, old[:60], t.count(old))
    p.write_text(t.replace(old, new))

if "preparation" in which:
    edit("preparation.md", '''    with reporting():
        click.echo(where(find_root(), location))
```''', '''    with reporting():
        click.echo(where(find_root(), location))


@main.command("chunks")
def chunks_command() -> None:
    """List every chunk: its lines of code, the chapter that defines it, its name."""
    with reporting():
        web = load_web(find_root())
        titles = {page.path: page.title for page in web.book.pages}
        for chunk in sorted(web.chunks.values(), key=lambda chunk: chunk.name.casefold()):
            lines = sum(len(part.lines) for part in chunk.parts)
            click.echo(f"{lines:5} {titles[chunk.parts[0].chapter]:12} «{chunk.name}»")
```''')

if "launcher" in which:
    edit("launcher.md", '''@click.argument("mem_mb", metavar="MEM_MB", type=int)''',
         '''@click.argument("mem_mb", metavar="MEM", type=MemorySize())''')
    edit("launcher.md", '''```{chunk} Commands of the lguest tool
:append:


@main.command("run",''', '''```{chunk} Commands of the lguest tool
:append:


class MemorySize(click.ParamType):
    """A memory size: MiB, or a number with a K, M or G suffix; converted to MiB."""

    name = "size"
    KIB = {"K": 1, "M": 1 << 10, "G": 1 << 20}

    def convert(self, value, param, ctx) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip().upper()
        unit = text[-1] if text[-1:] in self.KIB else "M"
        number = text[:-1] if text[-1:] in self.KIB else text
        if not number.isdigit():
            self.fail(f"{value!r} is not a size such as 32, 8192K, 64M or 1G", param, ctx)
        kib = int(number) * self.KIB[unit]
        if kib % 1024:
            self.fail(f"{value!r} is not a whole number of MiB", param, ctx)
        return kib >> 10


@main.command("run",''')
    edit("launcher.md", '''    """Boot GUEST.elf (or the book's own kernel) with MEM_MB MiB of memory; GUEST_ARGS become
    its command line.''', '''    """Boot GUEST.elf (or the book's own kernel) with MEM of memory (MiB, or 8192K, 64M, 1G);
    GUEST_ARGS become its command line.''')

if "guest" in which:
    edit("guest.md", '''```{chunk} The commands
static void cmd_help(int argc, char **argv);
''', '''```{chunk} The commands
static void cmd_help(int argc, char **argv);
static void cmd_time(int argc, char **argv);
''')
    edit("guest.md", '''	{ "echo", "WORDS...", "print the words", cmd_echo },
''', '''	{ "echo", "WORDS...", "print the words", cmd_echo },
	{ "time", "COMMAND...", "run a command and count the ticks it took", cmd_time },
''')
    edit("guest.md", '''		printf("  %s %s%s%s\\n", commands[i].name, commands[i].args, pad, commands[i].help);
	}
}
''', '''		printf("  %s %s%s%s\\n", commands[i].name, commands[i].args, pad, commands[i].help);
	}
}

static void cmd_time(int argc, char **argv)
{
	u32 i, start = jiffies;
	if (argc < 2) {
		printf("usage: time COMMAND [ARGS...]\\n");
		return;
	}
	for (i = 0; i < COMMANDS; i++)
		if (!strcmp(argv[1], commands[i].name))
			break;
	if (i == COMMANDS) {
		printf("%s: no such command; try help\\n", argv[1]);
		return;
	}
	commands[i].run(argc - 1, argv + 1);
	printf("time: %u ticks\\n", jiffies - start);
}
''')

if "host" in which:
    edit("host.md", '''import time
from dataclasses import dataclass
from typing import Callable

from unicorn.unicorn_py3.unicorn import uclib''', '''import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from unicorn.unicorn_py3.unicorn import uclib''')
    edit("host.md", '''        self.exits = 0
''', '''        self.exits = 0
        self.exit_kinds: Counter[str] = Counter()  # "hypercall", "trap" or "timer"
''')
    edit("host.md", '''                    host.exits += 1
                    if accounting:''', '''                    host.exits += 1
                    host.exit_kinds["hypercall"] += 1
                    if accounting:''')
    edit("host.md", '''    self.regs[:] = frame
    self.exits += 1
''', '''    self.regs[:] = frame
    self.exits += 1
    self.exit_kinds["timer" if self.trap is None else
                    "hypercall" if self.trap == HYPERCALL_VECTOR else "trap"] += 1
''')

if "switcher" in which:
    edit("switcher.md", '''        self.loaded_cr3: int | None = None
''', '''        self.loaded_cr3: int | None = None
        self.crossings = 0  # calls of enter
        self.tlb_flushes = 0  # of which wrote %cr3
''')
    edit("switcher.md", '''        self.uc.context_restore(context)
        if flush or cr3 != self.loaded_cr3:
            self.uc.reg_write(UC_X86_REG_CR3, cr3)
            self.loaded_cr3 = cr3
''', '''        self.uc.context_restore(context)
        self.crossings += 1
        if flush or cr3 != self.loaded_cr3:
            self.uc.reg_write(UC_X86_REG_CR3, cr3)
            self.loaded_cr3 = cr3
            self.tlb_flushes += 1
''')

if "drivers" in which:
    edit("drivers.md", '''F_RO = 1 << 5
F_FLUSH = 1 << 9
HEADER = struct.Struct("<IIQ")  # type, reserved, sector''', '''F_RO = 1 << 5
F_BLK_SIZE = 1 << 6
F_FLUSH = 1 << 9
HEADER = struct.Struct("<IIQ")  # type, reserved, sector
CONFIG_LAYOUT = struct.Struct("<QIIHBBI")  # capacity, size_max, seg_max, geometry, blk_size''')
    edit("drivers.md", '''        return F_FLUSH | (F_RO if self.read_only else 0)

    def config(self) -> bytes:
        return struct.pack("<Q", self.capacity)''', '''        return F_FLUSH | F_BLK_SIZE | (F_RO if self.read_only else 0)

    def config(self) -> bytes:
        return CONFIG_LAYOUT.pack(self.capacity, 0, 0, 0, 0, 0, SECTOR)''')

if "mastery" in which:
    edit("guest.md", '''    "BEER": 22,  # ebx: physical address, ecx: room; eax: the voucher's length, 0 if none
}''', '''    "BEER": 22,  # ebx: physical address, ecx: room; eax: the voucher's length, 0 if none
    "EXITS": 23,  # eax: how many times the guest has exited to the Host so far
}''')
    edit("guest.md", '''#define LHCALL_BEER 22
''', '''#define LHCALL_BEER 22
#define LHCALL_EXITS 23
''')
    edit("guest.md", '''static void cmd_ticks(int argc, char **argv)
{
	printf("%u\\n", jiffies);
}
''', '''static void cmd_ticks(int argc, char **argv)
{
	printf("%u\\n", jiffies);
}

static void cmd_exits(int argc, char **argv)
{
	printf("%u exits so far\\n", hcall(LHCALL_EXITS, 0, 0, 0, 0));
}
''')
    edit("guest.md", '''	{ "cmdline", "", "the kernel's command line", cmd_cmdline },
''', '''	{ "cmdline", "", "the kernel's command line", cmd_cmdline },
	{ "exits", "", "how many times we have left for the Host", cmd_exits },
''')
    edit("host.md", '''    host.memory.write(address, data)
    return len(data)
```''', '''    host.memory.write(address, data)
    return len(data)


@hypercall("EXITS")
def exits(host, *_) -> int:
    return host.exits
```''')
