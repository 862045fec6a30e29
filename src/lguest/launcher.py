# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/launcher.py» book/launcher.md:1020 @1fe4e1f2
"""The Launcher: make guest memory, load a kernel, write the boot page, run the Host."""

from __future__ import annotations

# «What the Launcher imports» book/launcher.md:1072 @607c8f72
import io
import os
import signal
import stat
import struct
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence, TextIO

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.segments import Segment

from . import abi
from .memory import GuestMemory
# «/What the Launcher imports»
# «What the Launcher imports»[2] book/host-boot.md:786 @f130e21b
import _thread
import functools
import inspect
import select
import threading
import time
from contextlib import contextmanager
from typing import BinaryIO, Iterator

from .literate.book import LiterateError
from .literate.stitch import read_tangled
# «/What the Launcher imports»

# «The Launcher says no» book/launcher.md:320 @66016553
class LaunchError(Exception):
    """Why the Launcher cannot start this guest: one line that names the culprit."""
# «/The Launcher says no»


# «The map of guest memory» book/launcher.md:368 @2b598058
ENTRIES_PER_TABLE = abi.PAGE_SIZE // 4  # 32-bit entries in a page directory or a page table
TABLE_SPAN = ENTRIES_PER_TABLE * abi.PAGE_SIZE  # the memory one page table maps: 4 MiB
BOOT_STACK = abi.BOOT_PAGE - abi.PAGE_SIZE  # the page just below the boot page


def page_table_count(size: int) -> int:
    """How many page tables it takes to map ``size`` bytes of guest memory."""
    return -(-size // TABLE_SPAN)


def initial_tables(size: int) -> tuple[int, int]:
    """Where the initial page tables begin, and where their page directory is."""
    pgdir = size - abi.PAGE_SIZE
    return pgdir - page_table_count(size) * abi.PAGE_SIZE, pgdir


def reserved_areas(size: int) -> list[tuple[int, int, str]]:
    """The guest-physical ranges [start, end) that the kernel must leave alone."""
    tables, _ = initial_tables(size)
    return [(BOOT_STACK, abi.BOOT_PAGE, "the boot stack"),
            (abi.BOOT_PAGE, abi.BOOT_PAGE + abi.PAGE_SIZE, "the boot page"),
            (tables, size, "the initial page tables")]
# «/The map of guest memory»


# «How much memory a guest may have» book/launcher.md:424 @1e83e280
MIN_MEMORY = 2 << 20  # room for the boot pages, a kernel at 1 MiB, and the tables on top


def memory_size(mem_mb: int) -> int:
    """The size in bytes of ``mem_mb`` MiB of guest memory, if a guest can have that much."""
    if mem_mb << 20 < MIN_MEMORY:
        raise LaunchError(f"{mem_mb} MiB is too little memory: "
                          f"a guest needs at least {MIN_MEMORY >> 20} MiB")
    if mem_mb << 20 > abi.MAX_MEMORY:
        raise LaunchError(f"{mem_mb} MiB is too much memory: at most "
                          f"{abi.MAX_MEMORY >> 20} MiB fit below the Switcher")
    return mem_mb << 20


def make_memory(mem_mb: int) -> GuestMemory:
    """Fresh, zeroed guest memory of ``mem_mb`` MiB."""
    size = memory_size(mem_mb)
    try:
        return GuestMemory(size)
    except OSError as error:
        raise LaunchError(f"cannot get {mem_mb} MiB for the guest: {error.strerror}") from None
# «/How much memory a guest may have»


# «Load the kernel» book/launcher.md:478 @5dd892fc
def load_kernel(memory: GuestMemory, path: str | Path) -> int:
    """Copy a kernel's PT_LOAD segments into guest memory; return its (virtual) entry point."""
    name = str(path)
    image = read_kernel_file(name, path, memory.size)
    elf = open_elf(name, image)
    try:
        segments = [(number, segment) for number, segment in enumerate(elf.iter_segments())
                    if segment["p_type"] == "PT_LOAD"]
    except ELFError as error:
        raise LaunchError(f"{name}: damaged program headers: {error}") from None
    if not segments:
        raise LaunchError(f"{name}: no loadable segment (PT_LOAD) to put in memory")
    for number, segment in segments:
        check_segment(memory, name, number, segment, len(image))
    entry = check_entry(name, elf.header["e_entry"], [segment for _, segment in segments])
    for _, segment in segments:
        start, filesz, memsz = segment["p_paddr"], segment["p_filesz"], segment["p_memsz"]
        memory.write(start, segment.data())
        memory.write(start + filesz, bytes(memsz - filesz))
    return entry


NOT_A_FILE = {stat.S_IFDIR: "a directory", stat.S_IFIFO: "a FIFO", stat.S_IFCHR:
              "a character device", stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}


def read_kernel_file(name: str, path: str | Path, limit: int) -> bytes:
    """The bytes of a kernel file: a regular file, of at most ``limit`` bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as error:
        raise LaunchError(f"{name}: cannot read it: {error.strerror or error}") from None
    try:
        kind = stat.S_IFMT(os.fstat(fd).st_mode)
        if kind != stat.S_IFREG:
            raise LaunchError(f"{name}: cannot read it: it is {NOT_A_FILE.get(kind, 'not a file')}, "
                              "not a kernel file")
        with open(fd, "rb", buffering=0, closefd=False) as file:
            image = file.read(limit + 1)  # one byte more than fits tells us it does not fit
    except OSError as error:
        raise LaunchError(f"{name}: cannot read it: {error.strerror or error}") from None
    finally:
        os.close(fd)
    if len(image) > limit:
        raise LaunchError(f"{name}: bigger than the guest's {limit >> 20} MiB of memory; "
                          "it cannot be a kernel that fits")
    return image
# «/Load the kernel»


# «Check the ELF header» book/launcher.md:558 @ed8add27
def open_elf(name: str, image: bytes) -> ELFFile:
    """Parse the ELF header, insisting on a 32-bit, little-endian i386 executable."""
    if image[:4] != b"\x7fELF":
        raise LaunchError(f"{name}: not an ELF file")
    try:
        elf = ELFFile(io.BytesIO(image))
        header = elf.header
    except ELFError as error:
        raise LaunchError(f"{name}: damaged ELF header: {error}") from None
    if elf.elfclass != 32:
        raise LaunchError(f"{name}: a {elf.elfclass}-bit ELF file; the guest must be ELFCLASS32")
    if not elf.little_endian:
        raise LaunchError(f"{name}: a big-endian ELF file; x86 is little-endian")
    if header["e_machine"] != "EM_386":
        raise LaunchError(f"{name}: built for {header['e_machine']}, not for i386 (EM_386)")
    if header["e_type"] != "ET_EXEC":
        raise LaunchError(f"{name}: an ELF file of type {header['e_type']}, "
                          "not an executable (ET_EXEC)")
    return elf
# «/Check the ELF header»


# «Check a segment» book/launcher.md:587 @78e99154
def check_segment(memory: GuestMemory, name: str, number: int, segment: Segment,
                  file_size: int) -> None:
    """Refuse a PT_LOAD segment that would not fit, or would land on something reserved."""
    start, filesz, memsz = segment["p_paddr"], segment["p_filesz"], segment["p_memsz"]
    what = f"{name}: segment {number} ({start:#x}..{start + memsz:#x})"
    if filesz > memsz:
        raise LaunchError(f"{what} has {filesz} bytes in the file but only {memsz} in memory")
    if segment["p_offset"] + filesz > file_size:
        raise LaunchError(f"{what} runs past the end of the file; is the file truncated?")
    if not memory.contains(start, memsz):
        raise LaunchError(f"{what} is outside guest memory, which ends at {memory.size:#x}")
    for low, high, area in reserved_areas(memory.size):
        if memsz and start < high and low < start + memsz:
            raise LaunchError(f"{what} overlaps {area} at {low:#x}..{high:#x}")
# «/Check a segment»


# «Check the entry point» book/launcher.md:612 @1e0fc74f
def check_entry(name: str, entry: int, segments: list[Segment]) -> int:
    """The entry point, if the initial page tables take it into the kernel's loaded bytes."""
    physical = entry - abi.PAGE_OFFSET if entry >= abi.PAGE_OFFSET else entry
    if not any(segment["p_paddr"] <= physical < segment["p_paddr"] + segment["p_filesz"]
               for segment in segments):
        raise LaunchError(f"{name}: the entry point {entry:#x} is not in any loaded segment")
    return entry
# «/Check the entry point»


# «Build the initial page tables» book/launcher.md:689 @1d872900
PTE_PRESENT = 0x001
PTE_WRITABLE = 0x002
PTE_FLAGS = PTE_PRESENT | PTE_WRITABLE  # supervisor only (no user bit), 4 KiB pages (no PSE)


def build_page_tables(memory: GuestMemory) -> int:
    """Map all guest memory at 0 and at PAGE_OFFSET; return the page directory's address."""
    if abi.PAGE_OFFSET + memory.size > abi.SWITCHER_ADDR:
        raise LaunchError(f"{memory.size >> 20} MiB of memory would run into the Switcher "
                          f"at {abi.SWITCHER_ADDR:#x}")
    tables, pgdir = initial_tables(memory.size)
    if tables < abi.BOOT_PAGE + abi.PAGE_SIZE:
        raise LaunchError(f"{memory.size} bytes is too little memory for the page tables")
    frames = range(0, memory.size, abi.PAGE_SIZE)
    memory.write(tables, bytes(memory.size - tables))
    memory.write(tables, struct.pack(f"<{len(frames)}I", *(frame | PTE_FLAGS for frame in frames)))
    linear = abi.PAGE_OFFSET // TABLE_SPAN
    for index in range(page_table_count(memory.size)):
        entry = (tables + index * abi.PAGE_SIZE) | PTE_FLAGS
        memory.write_u32(pgdir + 4 * index, entry)
        memory.write_u32(pgdir + 4 * (linear + index), entry)
    return pgdir
# «/Build the initial page tables»


# «Write the boot page» book/launcher.md:806 @fcceb509
HEADER_FORMAT = f"<{len(abi.BOOT_FIELDS)}I"
DEVICE_FORMAT = f"<{len(abi.BOOT_DEVICE_FIELDS)}I"
DEVICE_SIZE = struct.calcsize(DEVICE_FORMAT)


def write_boot_page(memory: GuestMemory, pgdir: int, cmdline: str,
                    devices: Iterable[Sequence[int]] = ()) -> None:
    """Fill in the boot page: the header, the device table and the command line."""
    text = cmdline.encode("utf-8", "surrogateescape")
    if len(text) > abi.BOOT_CMDLINE_MAX:
        raise LaunchError(f"the guest's command line is {len(text)} bytes long; "
                          f"the boot page holds at most {abi.BOOT_CMDLINE_MAX}")
    if b"\0" in text:
        raise LaunchError("the guest's command line contains a NUL byte")
    table = [tuple(device) for device in devices]
    if len(table) > abi.BOOT_MAX_DEVICES:
        raise LaunchError(f"{len(table)} devices, but the boot page has room for "
                          f"{abi.BOOT_MAX_DEVICES}")
    fields = {"magic": abi.BOOT_MAGIC, "version": abi.BOOT_VERSION,
              "mem_size": memory.size, "page_offset": abi.PAGE_OFFSET, "pgdir": pgdir,
              "cmdline": abi.BOOT_PAGE + abi.BOOT_CMDLINE, "cmdline_len": len(text),
              "device_count": len(table)}
    page = bytearray(abi.PAGE_SIZE)
    struct.pack_into(HEADER_FORMAT, page, 0, *(fields[name] for name in abi.BOOT_FIELDS))
    for number, device in enumerate(table):
        struct.pack_into(DEVICE_FORMAT, page, abi.BOOT_DEVICES + number * DEVICE_SIZE, *device)
    page[abi.BOOT_CMDLINE:abi.BOOT_CMDLINE + len(text)] = text
    memory.write(abi.BOOT_PAGE, bytes(page))
# «/Write the boot page»


# «Read the boot page back» book/launcher.md:842 @6645b634
def read_boot_page(memory: GuestMemory) -> dict[str, Any]:
    """The boot page, decoded the way a guest reads it."""
    page = memory.read(abi.BOOT_PAGE, abi.PAGE_SIZE)
    boot: dict[str, Any] = dict(zip(abi.BOOT_FIELDS, struct.unpack_from(HEADER_FORMAT, page)))
    boot["devices"] = [
        dict(zip(abi.BOOT_DEVICE_FIELDS,
                 struct.unpack_from(DEVICE_FORMAT, page, abi.BOOT_DEVICES + number * DEVICE_SIZE)))
        for number in range(min(boot["device_count"], abi.BOOT_MAX_DEVICES))]
    text = memory.read(boot["cmdline"], boot["cmdline_len"])
    boot["command_line"] = text.decode("utf-8", "surrogateescape")
    return boot
# «/Read the boot page back»


# «Make the machine» book/launcher.md:878 @3bc3a7ba
def make_machine(mem_mb: int, elf_path: str | Path, args: Sequence[str],
                 devices: Sequence[Any] = ()) -> tuple[GuestMemory, int, int]:
    """Memory, kernel, page tables and boot page: the machine, all but its CPU."""
    memory = make_memory(mem_mb)
    entry = load_kernel(memory, elf_path)
    pgdir = build_page_tables(memory)
    write_boot_page(memory, pgdir, " ".join(args), [device.boot_entry() for device in devices])
    return memory, entry, pgdir
# «/Make the machine»


# «The smallest kernel» book/launcher.md:974 @47529489
ELF_HEADER = struct.Struct("<16sHHIIIIIHHHHHH")  # e_ident, then the 32-bit header's fields
PROGRAM_HEADER = struct.Struct("<8I")  # p_type, p_offset, p_vaddr, p_paddr, sizes, flags, align
HLT_FOREVER = bytes([0xF4, 0xEB, 0xFD])  # hlt; jmp back to the hlt


def smallest_kernel(path: str | Path, code: bytes = HLT_FOREVER) -> Path:
    """Write an ELF32 kernel that is one segment of ``code``, loaded at 1 MiB; return its path."""
    where = abi.PAGE_OFFSET + abi.KERNEL_LOAD
    headers = ELF_HEADER.size + PROGRAM_HEADER.size
    ident = b"\x7fELF" + bytes([1, 1, 1])  # 32-bit, little-endian, ELF version 1
    header = ELF_HEADER.pack(ident, 2, 3, 1, where + headers, ELF_HEADER.size, 0, 0,
                             ELF_HEADER.size, PROGRAM_HEADER.size, 1, 0, 0, 0)
    size = headers + len(code)
    segment = PROGRAM_HEADER.pack(1, 0, where, abi.KERNEL_LOAD, size, size, 5, abi.PAGE_SIZE)
    path = Path(path)
    path.write_bytes(header + segment + code)
    return path
# «/The smallest kernel»


# «How a run ends» book/launcher.md:916 @07d99c07
EXIT_POWEROFF = 0  # the guest shut itself down
EXIT_ERROR = 1  # the Launcher could not start the guest; the reason is on stderr
EXIT_USAGE = 2  # the command line made no sense; click explains (its own status), or we do
EXIT_RESTART = 3  # the guest asked to be started again
EXIT_KILLED = 4  # the Host killed the guest; the reason is on stderr
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE  # standard output was closed: die of SIGPIPE, silently
OUTCOMES = {"poweroff": EXIT_POWEROFF, "restart": EXIT_RESTART, "killed": EXIT_KILLED}
# «/How a run ends»


# «Launch a guest»[4] book/mastery-gdb.md:1151 @e213990d
def launch(mem_mb: int, elf_path: str | Path, args: Sequence[str], *, verbose: bool = False,
           deterministic: bool = False, console: BinaryIO | None = None,
           timeout: float | None = None, stderr: TextIO | None = None,
           console_input: BinaryIO | None = None, virtio_console: bool = False,
           block: Sequence[str] = (), read_only_block: Sequence[str] = (),
           net: Sequence[str] = (), rng: bool = False, guests: int = 1,
           inputs: Sequence[BinaryIO] = (), voucher: bytes = b"",
           gdb: tuple[str, int] | None = None) -> int:
    """Boot ``elf_path`` with ``mem_mb`` MiB of memory, run it to the end; return the status."""
    stderr = sys.stderr if stderr is None else stderr
    if gdb is not None and (guests != 1 or inputs):
        print("lguest: --gdb follows one guest, not --guests or --input", file=stderr, flush=True)
        return EXIT_ERROR
    screen = Screen(sys.stdout.buffer if console is None else console)
    keyboard = Keyboard.standard_input() if console_input is None else console_input
    block = [*block, *(f"{image}:ro" for image in read_only_block)]
    try:
        if guests != 1 or inputs:
            status = launch_guests(guests, mem_mb, elf_path, args, verbose=verbose,
                                   deterministic=deterministic, console=screen, timeout=timeout,
                                   stderr=stderr, keyboard=keyboard, inputs=inputs,
                                   virtio_console=virtio_console, block=block, net=net, rng=rng)
        else:
            status = launch_one(mem_mb, elf_path, args, verbose=verbose,
                                deterministic=deterministic, console=screen, timeout=timeout,
                                stderr=stderr, keyboard=keyboard,
                                virtio_console=virtio_console, block=block, net=net, rng=rng,
                                voucher=voucher, gdb=gdb)
    finally:
        if isinstance(keyboard, Keyboard):
            keyboard.stop()  # ours, so ours to stop: nobody is left reading standard input
    return EXIT_BROKEN_PIPE if screen.gone else status
# «/Launch a guest»


# «Describe the machine» book/launcher.md:955 @87038288
def describe(elf_path: str | Path, mem_mb: int, entry: int, pgdir: int, stderr: TextIO) -> None:
    """The machine in one line, for --verbose."""
    print(f"lguest: {elf_path}: entry {entry:#x}, {mem_mb} MiB, "
          f"page directory at {pgdir:#x}", file=stderr, flush=True)
# «/Describe the machine»
# «/src/lguest/launcher.py»
# «src/lguest/launcher.py»[2] book/host-boot.md:802 @ebd6d767

# «Launch one guest»[3] book/mastery-gdb.md:1187 @f7de1b71
def launch_one(mem_mb: int, elf_path: str | Path, args: Sequence[str], *, verbose: bool,
               deterministic: bool, console: Screen, timeout: float | None, stderr: TextIO,
               keyboard: BinaryIO, virtio_console: bool, block: Sequence[str],
               net: Sequence[str], rng: bool, voucher: bytes,
               gdb: tuple[str, int] | None = None) -> int:
    """One guest on its own Host: ``launch`` without the streams."""
    from .drivers import DeviceError

    try:
        memory, entry, pgdir, devices = machine_and_devices(
            mem_mb, elf_path, args, block=block, net=net, rng=rng,
            console=console if virtio_console else None,
            console_input=keyboard if virtio_console else None, deterministic=deterministic)
    except (LaunchError, DeviceError) as error:
        print(f"lguest: {error}", file=stderr, flush=True)
        return EXIT_ERROR
    if verbose:
        describe(elf_path, mem_mb, entry, pgdir, stderr)
    from .host.core import Host
    from .host.hypercalls import EarlyConsole

    options = dict(console=console, deterministic=deterministic,
                   trace=ExitTracer(stderr) if verbose else None,
                   console_input=None if virtio_console else EarlyConsole(keyboard, deterministic))
    if gdb is None:
        host = Host(memory, **options)
    else:
        from .gdbstub import DebuggedHost, GdbStub

        try:
            host = DebuggedHost(memory, debugger=GdbStub(gdb, stderr), **options)
        except OSError as error:
            for device in devices:
                device.close()
            print(f"lguest: cannot listen for gdb on {gdb[0]}:{gdb[1]}: "
                  f"{error.strerror or error}", file=stderr, flush=True)
            return EXIT_ERROR
    host.voucher = voucher
    console.stopping = host
    try:
        with watching(host, timeout):
            outcome = boot(host, devices, entry, pgdir)
    finally:
        console.flush()
    return EXIT_BROKEN_PIPE if console.gone else report(outcome, stderr, verbose)
# «/Launch one guest»


# «Boot the machine on its Host» book/host-boot.md:418 @d39b4bfe
def boot(host: Any, devices: Sequence[Any], entry: int, pgdir: int) -> Any:
    """Plug the devices into the Host, run the guest from ``entry``, and unplug them."""
    try:
        for device in devices:
            host.add_device(device)
        return host.run(entry=entry, stack=abi.PAGE_OFFSET + abi.BOOT_PAGE,
                        boot=abi.BOOT_PAGE, pgdir=pgdir)
    finally:
        for device in devices:
            device.close()
# «/Boot the machine on its Host»


# «Report how the guest ended» book/host-boot.md:438 @882ba5ff
def report(outcome: Any, stderr: TextIO, verbose: bool) -> int:
    """The exit status for the Host's outcome, with the reason on stderr if the guest died."""
    reason = " ".join(str(outcome.reason).splitlines())
    status = OUTCOMES.get(outcome.kind, EXIT_KILLED)
    if status == EXIT_KILLED:
        if outcome.kind != "killed":
            reason = f"the Host ended it in an unknown way ({outcome.kind}): {reason}"
        print(f"lguest: guest killed: {reason}", file=stderr, flush=True)
    elif verbose:
        print(f"lguest: guest {outcome.kind}: {reason}", file=stderr, flush=True)
    return status
# «/Report how the guest ended»


# «Watch the clock and the keyboard» book/host-boot.md:480 @3c3a5853
TICK = 0.05  # seconds between the watcher's looks at the clock


@contextmanager
def watching(host: Any, timeout: float | None) -> Iterator[None]:
    """While the guest runs, stop it after ``timeout`` seconds, or when Ctrl-C is pressed."""
    done = threading.Event()
    keyboard = threading.current_thread() is threading.main_thread()
    deadline = None if timeout is None else time.monotonic() + timeout
    presses = 0

    def watch() -> None:
        nonlocal deadline, presses
        while not done.is_set():
            if not keyboard:
                done.wait(TICK)
            elif signal.sigtimedwait({signal.SIGINT}, TICK) is not None:
                presses += 1
                if presses == 1:
                    host.stop("interrupted by Ctrl-C")
                else:
                    _thread.interrupt_main()
            if deadline is not None and time.monotonic() >= deadline:
                host.stop(f"timed out after {timeout:g} seconds")
                deadline = None

    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if keyboard else None
    watcher = threading.Thread(target=watch, name="lguest-watcher", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()
        if previous is not None:
            while signal.sigtimedwait({signal.SIGINT}, 0) is not None:
                pass  # a Ctrl-C that came as the guest was ending: it has ended
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
# «/Watch the clock and the keyboard»


# «The two ends of the pipe» book/host-boot.md:564 @539c67a2
STOP_GRACE = 1.0  # seconds a stopped reader has to finish what it was doing


class Keyboard(io.RawIOBase):
    """Standard input, read from its file descriptor by a thread that ``stop`` can end."""

    def __init__(self, fd: int):
        self.fd = fd
        self.stopped = False
        self.reading = threading.Lock()  # held by the reader for as long as it reads
        self.reader: threading.Thread | None = None
        self.wake, self.waker = os.pipe()

    @classmethod
    def standard_input(cls) -> io.IOBase:
        """A Keyboard on sys.stdin's descriptor, or nothing to read if it has none."""
        try:
            fd = sys.stdin.fileno()
            os.fstat(fd)
        except (AttributeError, OSError, ValueError):
            return io.BytesIO()  # `lguest run 32 <&-`, or a test's stand-in: as if it were empty
        return cls(fd)

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self.fd

    def readinto(self, buffer: Any) -> int:
        with self.reading:
            self.reader = threading.current_thread()
            while not self.stopped:
                ready, _, _ = select.select([self.fd, self.wake], [], [])
                if self.wake in ready:
                    break
                try:
                    data = os.read(self.fd, len(buffer))
                except BlockingIOError:
                    continue  # somebody else's O_NONBLOCK on a shared terminal: wait again
                except OSError:
                    return 0  # a terminal that hung up: the end of the input
                buffer[:len(data)] = data
                return len(data)
            return 0

    def stop(self) -> None:
        """End any read in progress as the end of input, and wait for its thread to finish."""
        if self.stopped:
            return
        self.stopped = True
        os.write(self.waker, b"!")
        with self.reading:  # the reader has left select, and read() will not wait again
            os.close(self.wake)
            os.close(self.waker)
        reader = self.reader
        if reader is not None and reader is not threading.current_thread():
            reader.join(STOP_GRACE)


class Screen:
    """Standard output for the consoles: a reader that goes away stops the guest, quietly."""

    def __init__(self, stream: BinaryIO):
        self.stream = stream
        self.gone = False  # the reader closed the pipe: no more output, ever
        self.stopping: Any = None  # the Host (or Crowd) to stop when that happens

    def write(self, data: Any) -> int:
        if not self.gone:
            try:
                self.stream.write(data)
                self.stream.flush()
            except BrokenPipeError:
                self.went_away()
        return len(data)

    def flush(self) -> None:
        if not self.gone:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self.went_away()

    def went_away(self) -> None:
        self.gone = True
        if self.stopping is not None:
            self.stopping.stop("standard output was closed")


def die_of_a_broken_pipe() -> None:
    """End this process the way ``cat`` would: killed by SIGPIPE, with nothing to say."""
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # Python ignores it; the default kills
    os.kill(os.getpid(), signal.SIGPIPE)
# «/The two ends of the pipe»


# «Name the chunk behind each exit» book/host-boot.md:704 @0f542edf
PACKAGE = Path(__file__).resolve().parent


class ExitTracer:
    """For --verbose: a line on stderr for each exit, naming the chunk that handles it."""

    def __init__(self, stream: TextIO, prefix: str = ""):
        self.stream, self.prefix = stream, prefix
        self.origins: dict[Path, dict[int, tuple[str, int, str]] | None] = {}

    def __call__(self, event: Any) -> None:
        words = ["exit", str(event.kind)]
        if getattr(event, "name", None):
            words.append(str(event.name))
        line = f"{self.prefix}{' '.join(words)} at {event.eip:#x}"
        where = self.chunk_of(getattr(event, "handler", None))
        print(f"{line}: {where}" if where else line, file=self.stream, flush=True)

    def chunk_of(self, handler: Any) -> str | None:
        """``«chunk» book/chapter.md:line`` for a handler function, or None."""
        while isinstance(handler, functools.partial):
            handler = handler.func
        function = inspect.unwrap(getattr(handler, "__func__", handler)) if handler else None
        code = getattr(function, "__code__", None)
        if code is None:
            return None
        path = Path(code.co_filename).resolve()
        if path not in self.origins:
            self.origins[path] = self.read_origins(path)
        found = (self.origins[path] or {}).get(code.co_firstlineno)
        return f"«{found[2]}» {found[0]}:{found[1]}" if found else None

    @staticmethod
    def read_origins(path: Path) -> dict[int, tuple[str, int, str]] | None:
        try:
            relative = f"src/lguest/{path.relative_to(PACKAGE).as_posix()}"
            _, origin = read_tangled(relative, path.read_text(encoding="utf-8"))
        except (ValueError, OSError, LiterateError):
            return None
        return origin
# «/Name the chunk behind each exit»
# «/src/lguest/launcher.py»
# «src/lguest/launcher.py»[3] book/drivers-plugging.md:332 @2971b33d

# «Make the machine and its devices» book/drivers-plugging.md:155 @694806c7
def machine_and_devices(mem_mb: int, elf_path: str | Path, args: Sequence[str],
                        **device_options: Any) -> tuple[GuestMemory, int, int, list[Any]]:
    """Devices, memory, kernel, page tables and boot page: the machine, all but its Host."""
    from .drivers import make_devices

    devices: list[Any] = []
    try:
        devices = make_devices(**device_options)
        memory, entry, pgdir = make_machine(mem_mb, elf_path, args, devices)
    except BaseException:
        for device in devices:
            device.close()
        raise
    return memory, entry, pgdir, devices
# «/Make the machine and its devices»


# «Several guests, one screen» book/drivers-network.md:366 @02ef15fd
class SharedScreen:
    """One output stream that several guests' consoles write to, a line at a time."""

    def __init__(self, stream: BinaryIO):
        self.stream = stream
        self.lock = threading.Lock()
        self.speaking: GuestScreen | None = None  # whose line is unfinished


class GuestScreen(io.RawIOBase):
    """A guest's console on a SharedScreen: every line starts with the guest's name."""

    def __init__(self, screen: SharedScreen, name: str):
        self.screen, self.prefix = screen, f"{name}| ".encode()
        self.unfinished = b""  # this guest's line so far

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        screen, data = self.screen, bytes(data)
        with screen.lock:
            interrupted = None
            for line in data.splitlines(keepends=True):
                if screen.speaking is not None and screen.speaking is not self:
                    interrupted = screen.speaking
                    screen.stream.write(b"\n")  # break the other's line off
                    screen.speaking = None
                if screen.speaking is None:
                    screen.stream.write(self.prefix + self.unfinished)
                screen.stream.write(line)
                finished = line.endswith(b"\n")
                self.unfinished = b"" if finished else self.unfinished + line
                screen.speaking = None if finished else self
            if interrupted is not None and screen.speaking is None:
                screen.stream.write(interrupted.prefix + interrupted.unfinished)  # show it again
                screen.speaking = interrupted
            screen.stream.flush()
        return len(data)

    def flush(self) -> None:
        with self.screen.lock:
            self.screen.stream.flush()
# «/Several guests, one screen»


# «Launch several guests» book/drivers-network.md:425 @c486dd6b
MAX_GUESTS = 16
COMPANION_STOP = "guest g0 has ended"


class Crowd:
    """Several Hosts, stopped together by the watcher."""

    def __init__(self, hosts: Sequence[Any]):
        self.hosts = hosts

    def stop(self, reason: str) -> None:
        for host in self.hosts:
            if host.stop_request is None:  # the first reason to stop a guest is the one it dies of
                host.stop(reason)


def launch_guests(count: int, mem_mb: int, elf_path: str | Path, args: Sequence[str], *,
                  verbose: bool, deterministic: bool, console: Screen, timeout: float | None,
                  stderr: TextIO, keyboard: BinaryIO, inputs: Sequence[BinaryIO],
                  virtio_console: bool, block: Sequence[str], net: Sequence[str],
                  rng: bool) -> int:
    """Boot ``count`` guests on one switch; run until guest 0 ends; return its status."""
    from .drivers import DeviceError, Switch
    from .host.core import Host, Outcome
    from .host.hypercalls import EarlyConsole

    problem = (f"--guests must be between 1 and {MAX_GUESTS}" if not 0 < count <= MAX_GUESTS
               else f"{len(inputs)} --input scripts for {count - 1} companions"
               if len(inputs) > count - 1
               else "--deterministic cannot be kept by guests that run side by side"
               if deterministic
               else "two guests cannot share a writable disk; use IMAGE:ro"
               if any(not spec.endswith(":ro") for spec in block)
               else "two guests cannot share a UDP cable; use --net=switch"
               if any(spec != "switch" for spec in net) else None)
    if problem is not None:
        print(f"lguest: {problem}", file=stderr, flush=True)
        return EXIT_ERROR
    screen, switch = SharedScreen(console), Switch()
    silences: list[int] = []
    machines: list[tuple[Any, ...]] = []
    try:
        for number in range(count):
            name = f"g{number}"
            if number == 0:
                typed = keyboard
            elif number - 1 < len(inputs):
                typed = inputs[number - 1]
            else:
                reading, writing = os.pipe()
                silences.append(writing)
                typed = os.fdopen(reading, "rb", buffering=0)
            output = GuestScreen(screen, name)
            memory, entry, pgdir, devices = machine_and_devices(
                mem_mb, elf_path, args, block=block, net=net, rng=rng, switch=switch,
                guest=number, console=output if virtio_console else None,
                console_input=typed if virtio_console else None)
            host = Host(memory, console=output,
                        trace=ExitTracer(stderr, f"{name}: ") if verbose else None,
                        console_input=None if virtio_console else EarlyConsole(typed))
            machines.append((name, host, devices, entry, pgdir))
    except (LaunchError, DeviceError) as error:
        for *_, devices, _, _ in machines:
            for device in devices:
                device.close()
        for writing in silences:
            os.close(writing)
        print(f"lguest: {error}", file=stderr, flush=True)
        return EXIT_ERROR
    crowd = Crowd([host for _, host, *_ in machines])
    console.stopping = crowd
    outcomes: list[Any] = [None] * count

    def run(number: int) -> None:
        _, host, devices, entry, pgdir = machines[number]
        try:
            outcomes[number] = boot(host, devices, entry, pgdir)
        except Exception as error:  # a device that would not plug in, say: one line, like a death
            outcomes[number] = Outcome("killed", f"host error: {error!r}")

    companions = [threading.Thread(target=run, args=(number,), name=f"lguest-g{number}",
                                   daemon=True) for number in range(1, count)]
    try:
        with watching(crowd, timeout):
            try:
                for thread in companions:
                    thread.start()
                run(0)
            finally:
                crowd.stop(COMPANION_STOP)
                for thread in companions:
                    if thread.ident is not None:
                        thread.join()
    finally:
        for writing in silences:
            os.close(writing)
        console.flush()
    if console.gone:
        return EXIT_BROKEN_PIPE
    for number in range(1, count):
        outcome = outcomes[number]
        if outcome.kind == "killed" and COMPANION_STOP not in str(outcome.reason):
            print(f"lguest: g{number}: guest killed: {' '.join(str(outcome.reason).split())}",
                  file=stderr, flush=True)
    return report(outcomes[0], stderr, verbose)
# «/Launch several guests»
# «/src/lguest/launcher.py»
