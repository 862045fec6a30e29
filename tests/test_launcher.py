"""The Launcher chapter: ELF loading, page tables, the boot page, launch and `lguest run`.

Kernels are built here with GNU as and ld, linked high at 0xC0100000 and loaded at 1 MiB, the way
the book's own guest is; bad ones are built or patched by hand. The Host is replaced by a fake
module, so everything up to the hand-over is tested without a CPU.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import stat
import struct
import subprocess
import sys
import threading
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ROOT
from lguest import abi, launcher
from lguest.cli import main
from lguest.launcher import (EXIT_ERROR, EXIT_KILLED, EXIT_POWEROFF, EXIT_RESTART, EXIT_USAGE,
                             ExitTracer, LaunchError, build_page_tables, initial_tables, launch,
                             load_kernel, memory_size, page_table_count, read_boot_page,
                             write_boot_page)
from lguest.memory import GuestMemory

MiB = 1 << 20
TOOLCHAIN = all(shutil.which(tool) for tool in ("as", "ld"))
needs_toolchain = pytest.mark.skipif(not TOOLCHAIN,
                                     reason="GNU as and ld are needed to build kernels")

KERNEL = """\
.section .text
.globl _start
_start:
    movl $2, %eax
    int $0x1f
    jmp _start
.section .data
greeting: .ascii "Hello, Hero"
.section .bss
scratch: .space BSS
"""

SCRIPT = """\
ENTRY(_start)
PHDRS {{ kernel PT_LOAD; }}
SECTIONS {{
  . = {vma:#x};
  .text : AT({lma:#x}) {{ *(.text) }} :kernel
  .data : {{ *(.data) }} :kernel
  .bss : {{ *(.bss) }} :kernel
}}
"""


def build_kernel(directory: Path, name: str = "kernel.elf", *, vma: int = 0xC0100000,
                 lma: int = abi.KERNEL_LOAD, bss: int = 8192) -> Path:
    """Assemble and link a tiny 32-bit kernel with one PT_LOAD segment."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "kernel.S").write_text(KERNEL)
    (directory / "kernel.ld").write_text(SCRIPT.format(vma=vma, lma=lma))
    obj, out = directory / "kernel.o", directory / name
    subprocess.run(["as", "--32", f"--defsym=BSS={bss}", "-o", obj, directory / "kernel.S"],
                   check=True, capture_output=True)
    subprocess.run(["ld", "-m", "elf_i386", "-T", directory / "kernel.ld", "-o", out, obj],
                   check=True, capture_output=True)
    return out


def patched(source: Path, target: Path, edits: dict[int, tuple[str, int]]) -> Path:
    """A copy of ``source`` with little-endian fields replaced: {offset: (format, value)}."""
    data = bytearray(source.read_bytes())
    for offset, (form, value) in edits.items():
        struct.pack_into(form, data, offset, value)
    target.write_bytes(bytes(data))
    return target


def phdr(path: Path) -> int:
    """File offset of the first program header of an ELF32 file."""
    return struct.unpack_from("<I", path.read_bytes(), 28)[0]


def run_cli(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([*prefix, sys.executable, "-m", "lguest", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


# Root reads a file of mode 0 through two capabilities; setpriv (util-linux) starts the
# Launcher without them, so that root, too, meets an image it may not read.
MORTAL = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search",
          "--inh-caps", "-dac_override,-dac_read_search")


@pytest.fixture(scope="module")
def kernel(tmp_path_factory) -> Path:
    if not TOOLCHAIN:
        pytest.skip("GNU as and ld are needed to build kernels")
    return build_kernel(tmp_path_factory.mktemp("kernel"))


# --- Loading ---------------------------------------------------------------------------------

@needs_toolchain
def test_load_kernel_copies_the_segment_at_its_physical_address_and_zeroes_bss(kernel):
    from elftools.elf.elffile import ELFFile

    memory = GuestMemory(4 * MiB)
    memory.write(abi.KERNEL_LOAD, b"\xAA" * 0x4000)  # the loader must not trust fresh memory
    entry = load_kernel(memory, kernel)
    with open(kernel, "rb") as stream:
        elf = ELFFile(stream)
        (segment,) = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
        data, memsz = segment.data(), segment["p_memsz"]
        symbol = elf.get_section_by_name(".symtab").get_symbol_by_name("_start")[0]
    assert segment["p_paddr"] == abi.KERNEL_LOAD and segment["p_vaddr"] == 0xC0100000
    assert entry == symbol["st_value"] == 0xC0100000
    assert memory.read(abi.KERNEL_LOAD, len(data)) == data
    assert b"Hello, Hero" in data
    assert memory.read(abi.KERNEL_LOAD + len(data), memsz - len(data)) == bytes(memsz - len(data))
    assert memory.read(abi.KERNEL_LOAD + memsz, 16) == b"\xAA" * 16


@needs_toolchain
def test_a_kernel_linked_at_its_physical_address_loads_too(tmp_path):
    path = build_kernel(tmp_path, vma=abi.KERNEL_LOAD, lma=abi.KERNEL_LOAD)
    assert load_kernel(GuestMemory(4 * MiB), path) == abi.KERNEL_LOAD


def bad_kernels(directory: Path, good: Path) -> dict[str, tuple[Path, str, int]]:
    """Every way a kernel can be refused: {case: (file, expected words, MiB of memory)}."""
    cases: dict[str, tuple[Path, str, int]] = {}
    cases["missing"] = (directory / "no-such-kernel.elf", "cannot read it: No such file", 4)
    cases["directory"] = (directory, "cannot read it", 4)
    text = directory / "notes.txt"
    text.write_text("Dear Host, please run me.\n")
    cases["text file"] = (text, "not an ELF file", 4)
    empty = directory / "empty.elf"
    empty.write_bytes(b"")
    cases["empty file"] = (empty, "not an ELF file", 4)
    if shutil.which("gcc"):
        (directory / "x.c").write_text("int answer(void) { return 42; }\n")
        subprocess.run(["gcc", "-c", "-o", directory / "x86_64.o", directory / "x.c"], check=True)
        cases["x86-64 object"] = (directory / "x86_64.o", "64-bit", 4)
    cases["ELFCLASS64 header"] = (patched(good, directory / "class64.elf", {4: ("<B", 2)}),
                                  "64-bit", 4)
    cases["big-endian"] = (patched(good, directory / "big.elf", {5: ("<B", 2)}), "big-endian", 4)
    cases["bad class byte"] = (patched(good, directory / "class7.elf", {4: ("<B", 7)}),
                               "damaged ELF header", 4)
    cases["ARM"] = (patched(good, directory / "arm.elf", {18: ("<H", 40)}), "not for i386", 4)
    obj = directory / "kernel-obj" / "kernel.o"
    build_kernel(directory / "kernel-obj")
    cases["relocatable"] = (obj, "not an executable (ET_EXEC)", 4)
    cases["shared object"] = (patched(good, directory / "dyn.elf", {16: ("<H", 3)}),
                              "not an executable (ET_EXEC)", 4)
    at = phdr(good)
    cases["no PT_LOAD"] = (patched(good, directory / "noload.elf", {at: ("<I", 4)}),
                           "no loadable segment", 4)
    filesz = struct.unpack_from("<I", good.read_bytes(), at + 16)[0]
    cases["filesz > memsz"] = (patched(good, directory / "negbss.elf",
                                       {at + 20: ("<I", filesz - 1)}), "bytes in the file", 4)
    cases["truncated"] = (directory / "truncated.elf", "truncated", 4)
    (directory / "truncated.elf").write_bytes(good.read_bytes()[:0x1004])
    cases["beyond memory"] = (build_kernel(directory / "high", lma=0x800000),
                              "outside guest memory", 4)
    cases["bss beyond memory"] = (build_kernel(directory / "fat", bss=8 * MiB),
                                  "outside guest memory", 4)
    cases["boot stack"] = (build_kernel(directory / "stack", vma=0x800, lma=0x800),
                           "overlaps the boot stack", 4)
    cases["boot page"] = (build_kernel(directory / "boot", vma=0xC0001800, lma=0x1800),
                          "overlaps the boot page", 4)
    cases["page tables"] = (build_kernel(directory / "tables", bss=0xFF000),
                            "overlaps the initial page tables", 2)
    cases["entry point"] = (patched(good, directory / "entry.elf", {24: ("<I", 0xC0200000)}),
                            "entry point 0xc0200000 is not in any loaded segment", 4)
    cases["entry in bss"] = (patched(good, directory / "entrybss.elf",
                                     {24: ("<I", 0xC0100000 + filesz)}), "entry point", 4)
    return cases


BAD = ["missing", "directory", "text file", "empty file", "x86-64 object", "ELFCLASS64 header",
       "big-endian", "bad class byte", "ARM", "relocatable", "shared object", "no PT_LOAD",
       "filesz > memsz", "truncated", "beyond memory", "bss beyond memory", "boot stack",
       "boot page", "page tables", "entry point", "entry in bss"]


@pytest.fixture(scope="module")
def bad(tmp_path_factory, kernel):
    return bad_kernels(tmp_path_factory.mktemp("bad"), kernel)


@needs_toolchain
@pytest.mark.parametrize("case", BAD)
def test_bad_kernels_are_refused_with_one_line_naming_the_file(bad, case):
    if case not in bad:
        pytest.skip("gcc is needed for this case")
    path, words, mem_mb = bad[case]
    memory = GuestMemory(mem_mb * MiB)
    with pytest.raises(LaunchError) as caught:
        load_kernel(memory, path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{path}: ") and words in message
    assert memory.read(0, memory.size) == bytes(memory.size)  # nothing was copied


@needs_toolchain
@pytest.mark.parametrize("case", BAD)
def test_bad_kernels_exit_1_through_the_cli(bad, case):
    if case not in bad:
        pytest.skip("gcc is needed for this case")
    path, words, mem_mb = bad[case]
    result = run_cli("run", str(mem_mb), str(path), "quiet")
    assert result.returncode == EXIT_ERROR
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"lguest: {path}: ") and words in lines[0]


@needs_toolchain
@pytest.mark.parametrize("mem_mb, words", [("1", "too little memory"), ("0", "too little memory"),
                                           ("-5", "too little memory"),
                                           ("1021", "too much memory"),
                                           ("4096", "too much memory")])
def test_memory_sizes_out_of_range_exit_1(kernel, mem_mb, words):
    result = run_cli("run", mem_mb, str(kernel))
    assert result.returncode == EXIT_ERROR
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"lguest: {mem_mb} MiB is {words}")


@needs_toolchain
def test_a_command_line_too_long_for_the_boot_page_exits_1(kernel):
    result = run_cli("run", "4", str(kernel), "x" * 3000, "y" * (abi.BOOT_CMDLINE_MAX - 3000))
    assert result.returncode == EXIT_ERROR
    assert result.stderr.splitlines() == [
        f"lguest: the guest's command line is {abi.BOOT_CMDLINE_MAX + 1} bytes long; "
        f"the boot page holds at most {abi.BOOT_CMDLINE_MAX}"]


def test_usage_errors_are_clicks_exit_2():
    for args in (["run"], ["run", "lots", "kernel.elf"], ["run", "--timeout", "0", "4", "k.elf"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == EXIT_USAGE, args


def test_memory_size_limits():
    assert memory_size(2) == 2 * MiB
    assert memory_size(1020) == abi.MAX_MEMORY
    for mem_mb in (1, 1021):
        with pytest.raises(LaunchError):
            memory_size(mem_mb)


# --- Page tables -----------------------------------------------------------------------------

def words(memory: GuestMemory, address: int, count: int) -> tuple[int, ...]:
    return struct.unpack_from(f"<{count}I", memory.read(address, 4 * count))


def walk(memory: GuestMemory, pgdir: int, virtual: int) -> int | None:
    """The physical address for ``virtual``, as the CPU's walker would find it, or None."""
    pde = memory.read_u32(pgdir + 4 * (virtual >> 22))
    if not pde & 1:
        return None
    pte = memory.read_u32((pde & ~0xFFF) + 4 * (virtual >> 12 & 0x3FF))
    return (pte & ~0xFFF) | (virtual & 0xFFF) if pte & 1 else None


@pytest.mark.parametrize("mem_mb", [2, 3, 4, 5, 64, 1020])
def test_page_tables_map_every_page_twice_and_nothing_else(mem_mb):
    size = mem_mb * MiB
    memory = GuestMemory(size)
    memory.write(size - 64 * 1024, b"\xFF" * 64 * 1024)  # stale bytes where the tables go
    pgdir = build_page_tables(memory)
    tables, expected_pgdir = initial_tables(size)
    count = page_table_count(size)
    assert pgdir == expected_pgdir == size - abi.PAGE_SIZE and count == -(-mem_mb // 4)
    assert tables == pgdir - count * abi.PAGE_SIZE
    directory = words(memory, pgdir, 1024)
    linear = abi.PAGE_OFFSET >> 22
    for index, entry in enumerate(directory):
        if index < count or linear <= index < linear + count:
            table = tables + (index % linear) * abi.PAGE_SIZE
            assert entry == table | 0x3, index  # present, writable, supervisor, no PSE
        else:
            assert entry == 0, index
    assert all(entry == 0 for entry in directory[abi.SWITCHER_ADDR >> 22:])
    pages = size // abi.PAGE_SIZE
    entries = words(memory, tables, count * 1024)
    assert entries[:pages] == tuple(frame * abi.PAGE_SIZE | 0x3 for frame in range(pages))
    assert not any(entries[pages:])  # a partial last table maps nothing past memory


@settings(max_examples=40, deadline=None)
@given(mem_mb=st.integers(min_value=2, max_value=40), data=st.data())
def test_page_table_walks_agree_with_the_map(mem_mb, data):
    size = mem_mb * MiB
    memory = GuestMemory(size)
    pgdir = build_page_tables(memory)
    physical = data.draw(st.integers(min_value=0, max_value=size - 1))
    assert walk(memory, pgdir, physical) == physical
    assert walk(memory, pgdir, abi.PAGE_OFFSET + physical) == physical
    beyond = data.draw(st.integers(min_value=size, max_value=abi.PAGE_OFFSET - 1)
                       | st.integers(min_value=abi.PAGE_OFFSET + size, max_value=0xFFFFFFFF))
    assert walk(memory, pgdir, beyond) is None


def test_the_largest_guest_stops_just_below_the_switcher():
    memory = GuestMemory(abi.MAX_MEMORY)
    pgdir = build_page_tables(memory)
    assert walk(memory, pgdir, abi.SWITCHER_ADDR - 4) == abi.MAX_MEMORY - 4
    assert walk(memory, pgdir, abi.SWITCHER_ADDR) is None
    assert walk(memory, pgdir, 0xFFFFFFFC) is None


def test_page_tables_refuse_memory_that_would_reach_the_switcher():
    with pytest.raises(LaunchError, match="Switcher"):
        build_page_tables(GuestMemory(abi.MAX_MEMORY + 4 * MiB))


# --- The boot page ---------------------------------------------------------------------------

def test_boot_page_round_trip():
    memory = GuestMemory(8 * MiB)
    memory.write(abi.BOOT_PAGE, b"\xEE" * abi.PAGE_SIZE)  # whatever was there is replaced
    devices = [(1, 0xFEB00000, 0x200, 1), (2, 0xFEB00200, 0x200, 2)]
    write_boot_page(memory, 0x7FF000, "console=hvc0 quiet", devices)
    header = struct.unpack_from(f"<{len(abi.BOOT_FIELDS)}I", memory.read(abi.BOOT_PAGE, 32))
    assert dict(zip(abi.BOOT_FIELDS, header)) == {
        "magic": abi.BOOT_MAGIC, "version": abi.BOOT_VERSION, "mem_size": 8 * MiB,
        "page_offset": abi.PAGE_OFFSET, "pgdir": 0x7FF000,
        "cmdline": abi.BOOT_PAGE + abi.BOOT_CMDLINE, "cmdline_len": 18, "device_count": 2}
    assert memory.read(abi.BOOT_PAGE, 4) == b"LGPY"
    assert memory.read(abi.BOOT_PAGE + abi.BOOT_CMDLINE, 19) == b"console=hvc0 quiet\0"
    boot = read_boot_page(memory)
    assert boot["command_line"] == "console=hvc0 quiet"
    assert [tuple(device.values()) for device in boot["devices"]] == devices
    assert list(boot["devices"][0]) == list(abi.BOOT_DEVICE_FIELDS)
    unused = memory.read(abi.BOOT_PAGE + abi.BOOT_DEVICES + 32, abi.BOOT_CMDLINE - 64)
    assert unused == bytes(len(unused))


@given(st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)),
               max_size=300))
def test_any_command_line_that_fits_round_trips(text):
    memory = GuestMemory(2 * MiB)
    encoded = text.encode()
    if len(encoded) > abi.BOOT_CMDLINE_MAX:
        with pytest.raises(LaunchError):
            write_boot_page(memory, 0, text)
        return
    write_boot_page(memory, 0, text)
    assert read_boot_page(memory)["command_line"] == text
    assert memory.read(abi.BOOT_PAGE + abi.BOOT_CMDLINE + len(encoded), 1) == b"\0"


def test_command_line_limits():
    memory = GuestMemory(2 * MiB)
    longest = "y" * abi.BOOT_CMDLINE_MAX
    write_boot_page(memory, 0, longest)
    assert read_boot_page(memory)["command_line"] == longest
    assert memory.read(abi.BOOT_PAGE + abi.PAGE_SIZE - 1, 1) == b"\0"  # the NUL still fits
    for bad, words in ((longest + "y", "bytes long"), ("a\0b", "NUL")):
        with pytest.raises(LaunchError, match=words):
            write_boot_page(memory, 0, bad)
    with pytest.raises(LaunchError, match="room for 8"):
        write_boot_page(memory, 0, "", [(1, 0, 0, 0)] * (abi.BOOT_MAX_DEVICES + 1))


# --- Launch, with a stand-in for the Host ----------------------------------------------------

@dataclass
class Outcome:
    kind: str
    reason: str


@dataclass
class Exit:
    kind: str
    eip: int
    vector: int | None = None
    name: str = ""
    handler: Callable | None = None


class FakeHost:
    """The Host's interface, as the Launcher uses it; ``behave`` decides what a run does."""

    made: list["FakeHost"] = []
    behave: Callable[["FakeHost"], Outcome] = staticmethod(lambda host: Outcome("poweroff", ""))

    def __init__(self, memory, console, deterministic=False, trace=None, console_input=None):
        self.memory, self.console, self.deterministic, self.trace = (memory, console,
                                                                     deterministic, trace)
        self.console_input = console_input
        self.stopped: str | None = None
        self.run_args: dict[str, Any] = {}
        FakeHost.made.append(self)

    def run(self, *, entry, stack, boot, pgdir) -> Outcome:
        self.run_args = {"entry": entry, "stack": stack, "boot": boot, "pgdir": pgdir}
        return type(self).behave(self)

    def stop(self, reason: str) -> None:
        if self.stopped is None:
            self.stopped = reason

    def wait_for_stop(self, limit: float = 10) -> Outcome:
        deadline = time.monotonic() + limit
        while self.stopped is None and time.monotonic() < deadline:
            time.sleep(0.005)
        return Outcome("killed", self.stopped or "never stopped")


@pytest.fixture
def host(monkeypatch):
    module = types.ModuleType("lguest.host.core")
    module.Host, module.Outcome, module.Exit = FakeHost, Outcome, Exit
    monkeypatch.setitem(sys.modules, "lguest.host.core", module)
    FakeHost.made = []
    monkeypatch.setattr(FakeHost, "behave", staticmethod(lambda host: Outcome("poweroff", "")))
    return FakeHost


class Stderr:
    def __init__(self):
        self.text = ""

    def write(self, text):
        self.text += text

    def flush(self):
        pass


@needs_toolchain
def test_launch_prepares_the_machine_and_hands_it_over(host, kernel):
    import io

    console, stderr = io.BytesIO(), Stderr()
    status = launch(16, kernel, ["console=hvc0", "greeting=hi"], console=console, stderr=stderr,
                    deterministic=True)
    assert status == EXIT_POWEROFF and stderr.text == ""
    (made,) = host.made
    assert made.console.stream is console and made.deterministic and made.trace is None
    pgdir = 16 * MiB - abi.PAGE_SIZE
    assert made.run_args == {"entry": 0xC0100000, "stack": abi.PAGE_OFFSET + abi.BOOT_PAGE,
                             "boot": abi.BOOT_PAGE, "pgdir": pgdir}
    boot = read_boot_page(made.memory)
    assert boot["command_line"] == "console=hvc0 greeting=hi" and boot["pgdir"] == pgdir
    assert boot["mem_size"] == 16 * MiB and boot["device_count"] == 0
    assert walk(made.memory, pgdir, 0xC0100000) == abi.KERNEL_LOAD
    assert made.memory.read(abi.KERNEL_LOAD, 5) == b"\xb8\x02\x00\x00\x00"  # movl $2, %eax


@needs_toolchain
@pytest.mark.parametrize("kind, reason, status, line", [
    ("poweroff", "bye", EXIT_POWEROFF, None),
    ("restart", "again", EXIT_RESTART, None),
    ("killed", "attempt to access switcher pages", EXIT_KILLED,
     "lguest: guest killed: attempt to access switcher pages"),
    ("killed", "two\nlines", EXIT_KILLED, "lguest: guest killed: two lines"),
    ("exploded", "oops", EXIT_KILLED,
     "lguest: guest killed: the Host ended it in an unknown way (exploded): oops"),
])
def test_outcomes_become_exit_statuses(host, kernel, monkeypatch, kind, reason, status, line):
    import io

    monkeypatch.setattr(host, "behave", staticmethod(lambda _: Outcome(kind, reason)))
    stderr = Stderr()
    assert launch(4, kernel, [], console=io.BytesIO(), stderr=stderr) == status
    assert stderr.text.splitlines() == ([line] if line else [])


@needs_toolchain
def test_a_launch_error_never_makes_a_host(host, tmp_path):
    stderr = Stderr()
    assert launch(4, tmp_path / "missing.elf", [], stderr=stderr) == EXIT_ERROR
    assert host.made == []
    missing = tmp_path / "missing.elf"
    assert stderr.text == f"lguest: {missing}: cannot read it: No such file or directory\n"


@needs_toolchain
def test_timeout_stops_the_guest(host, kernel, monkeypatch):
    import io

    monkeypatch.setattr(host, "behave", staticmethod(lambda h: h.wait_for_stop()))
    stderr = Stderr()
    started = time.monotonic()
    assert launch(4, kernel, [], console=io.BytesIO(), stderr=stderr, timeout=0.2) == EXIT_KILLED
    assert 0.15 < time.monotonic() - started < 5
    assert stderr.text == "lguest: guest killed: timed out after 0.2 seconds\n"


@needs_toolchain
@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                    reason="signals belong to the main thread")
def test_ctrl_c_stops_the_guest_and_the_signal_mask_is_restored(host, kernel, monkeypatch):
    import io

    def interrupted(fake):
        os.kill(os.getpid(), signal.SIGINT)
        return fake.wait_for_stop()

    monkeypatch.setattr(host, "behave", staticmethod(interrupted))
    before = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    stderr = Stderr()
    assert launch(4, kernel, [], console=io.BytesIO(), stderr=stderr) == EXIT_KILLED
    assert stderr.text == "lguest: guest killed: interrupted by Ctrl-C\n"
    assert signal.pthread_sigmask(signal.SIG_BLOCK, set()) == before


@needs_toolchain
def test_off_the_main_thread_only_the_deadline_is_watched(host, kernel, monkeypatch):
    import io

    monkeypatch.setattr(host, "behave", staticmethod(lambda h: h.wait_for_stop()))
    statuses = []
    worker = threading.Thread(target=lambda: statuses.append(
        launch(4, kernel, [], console=io.BytesIO(), stderr=Stderr(), timeout=0.1)))
    worker.start()
    worker.join(10)
    assert statuses == [EXIT_KILLED] and host.made[0].stopped == "timed out after 0.1 seconds"


# --- --verbose -------------------------------------------------------------------------------

def book_line(chapter: str, line: int) -> str:
    return (ROOT / chapter).read_text(encoding="utf-8").split("\n")[line - 1]


def test_the_tracer_names_the_chunk_behind_a_handler():
    stderr = Stderr()
    tracer = ExitTracer(stderr)
    tracer(Exit("hypercall", 0xC0100012, 31, "CONSOLE_WRITE", load_kernel))
    tracer(Exit("trap", 0xC0100020, 14, "page fault", ExitTracer.chunk_of))
    tracer(Exit("timer", 0xC0100030, 32, "", None))
    tracer(Exit("hypercall", 0xC0100040, 31, "HALT", lambda: None))  # not from the book
    first, second, third, fourth = stderr.text.splitlines()
    match = re.fullmatch(r"exit hypercall CONSOLE_WRITE at 0xc0100012: «Load the kernel» "
                         r"(book/launcher\.md):(\d+)", first)
    assert match and book_line(match[1], int(match[2])).startswith("def load_kernel(")
    match = re.fullmatch(r"exit trap page fault at 0xc0100020: «Name the chunk behind each exit» "
                         r"(book/host[\w-]*\.md):(\d+)", second)
    assert match and "def chunk_of(" in book_line(match[1], int(match[2]))
    assert third == "exit timer at 0xc0100030"
    assert fourth == "exit hypercall HALT at 0xc0100040"
    assert len(tracer.origins) == 2  # launcher.py read once, this test file found wanting once


@needs_toolchain
def test_verbose_launch_traces_every_exit(host, kernel, monkeypatch):
    import io

    def two_exits(fake):
        fake.trace(Exit("hypercall", 0xC0100005, 31, "SHUTDOWN", write_boot_page))
        fake.trace(Exit("halt", 0xC0100007))
        return Outcome("poweroff", "goodbye")

    monkeypatch.setattr(host, "behave", staticmethod(two_exits))
    stderr = Stderr()
    assert launch(4, kernel, [], console=io.BytesIO(), stderr=stderr, verbose=True) == 0
    lines = stderr.text.splitlines()
    assert lines[0].startswith(f"lguest: {kernel}: entry 0xc0100000, 4 MiB")
    assert re.fullmatch(r"exit hypercall SHUTDOWN at 0xc0100005: «Write the boot page» "
                        r"book/launcher\.md:\d+", lines[1])
    assert lines[2:] == ["exit halt at 0xc0100007", "lguest: guest poweroff: goodbye"]


# --- The command -----------------------------------------------------------------------------

def test_run_help_lists_the_exit_statuses():
    result = run_cli("run", "--help")
    assert result.returncode == 0
    statuses = dict(re.findall(r"^\s+(\d)\s+(.+)$", result.stdout, re.M))
    assert statuses == {str(EXIT_POWEROFF): "the guest powered off",
                        str(EXIT_ERROR):
                            "the Launcher could not start the guest (the reason is on stderr)",
                        str(EXIT_USAGE): "the command line was wrong",
                        str(EXIT_RESTART): "the guest asked to be restarted",
                        str(EXIT_KILLED): "the Host killed the guest (the reason is on stderr)"}
    for option in ("--verbose", "--deterministic", "--timeout SECONDS"):
        assert option in result.stdout
    assert "MEM_MB [GUEST.elf] [GUEST_ARGS]..." in result.stdout


@needs_toolchain
def test_everything_after_the_kernel_belongs_to_the_guest(host, kernel):
    result = CliRunner().invoke(main, ["run", "--deterministic", "--timeout", "30", "8",
                                       str(kernel), "--verbose", "-x", "--timeout", "1"])
    assert result.exit_code == EXIT_POWEROFF, result.output
    (made,) = host.made
    assert made.deterministic and made.trace is None
    assert read_boot_page(made.memory)["command_line"] == "--verbose -x --timeout 1"


@needs_toolchain
def test_cli_run_passes_verbose_and_exits_with_the_status(host, kernel, monkeypatch):
    monkeypatch.setattr(host, "behave", staticmethod(lambda _: Outcome("restart", "")))
    result = CliRunner().invoke(main, ["run", "--verbose", "4", str(kernel)])
    assert result.exit_code == EXIT_RESTART
    assert isinstance(host.made[0].trace, ExitTracer)


def test_the_chapter_tangles_into_launcher_py():
    text = (ROOT / "src/lguest/launcher.py").read_text()
    assert "# «src/lguest/launcher.py» book/launcher.md:" in text
    assert launcher.__file__.endswith("launcher.py")


# --- Disk images: every problem is one line and status 1 ------------------------------------

IMAGE_CASES = {
    "missing": ("nope.img", "", "No such file or directory"),
    "a directory": ("dir", "", "Is a directory"),
    "a directory, read-only": ("dir", ":ro", "it is a directory"),
    "locked by a writer": ("disk.img", "", "another Launcher is using it"),
    "locked by a writer, read-only wanted": ("disk.img", ":ro", "another Launcher is using it"),
    "locked by a reader, writing wanted": ("disk.img", "", "another Launcher is using it"),
    "twice in one Launcher": ("disk.img", "", "another Launcher is using it"),
    "unreadable": ("secret.img", "", "Permission denied"),
}


@needs_toolchain
@pytest.mark.parametrize("case", IMAGE_CASES)
def test_disk_image_problems_exit_1_with_one_line(kernel, tmp_path, case):
    import fcntl

    name, suffix, words = IMAGE_CASES[case]
    (tmp_path / "dir").mkdir()
    (tmp_path / "disk.img").write_bytes(bytes(4096))
    (tmp_path / "secret.img").write_bytes(bytes(4096))
    (tmp_path / "secret.img").chmod(0)
    prefix = ()
    if case == "unreadable" and os.access(tmp_path / "secret.img", os.R_OK):
        assert shutil.which("setpriv"), "root needs util-linux's setpriv to meet an unreadable file"
        prefix = MORTAL
    holder = None
    if case.startswith("locked"):  # another Launcher, as far as flock can tell
        holder = os.open(tmp_path / "disk.img", os.O_RDONLY)
        fcntl.flock(holder, fcntl.LOCK_SH if "by a reader" in case else fcntl.LOCK_EX)
    path = tmp_path / name
    flags = [f"--block={path}{suffix}"] * (2 if case.startswith("twice") else 1)
    try:
        result = run_cli("run", *flags, "4", str(kernel), prefix=prefix)
    finally:
        if holder is not None:
            os.close(holder)
    assert (result.returncode, result.stdout) == (EXIT_ERROR, "")
    assert result.stderr == f"lguest: {path}: cannot open the disk image: {words}\n"


@needs_toolchain
def test_readers_share_an_image_and_a_finished_launcher_lets_go(kernel, tmp_path):
    import fcntl

    image = tmp_path / "disk.img"
    image.write_bytes(bytes(4096))
    reader = os.open(image, os.O_RDONLY)
    fcntl.flock(reader, fcntl.LOCK_SH)
    try:
        shared = run_cli("run", f"--read-only-block={image}", "4", str(kernel))
    finally:
        os.close(reader)
    after = [run_cli("run", f"--block={image}", "4", str(kernel)) for _ in range(2)]
    for result in (shared, *after):  # the guest ran (and was killed for its manners)
        assert result.returncode == EXIT_KILLED, result.stderr
        assert "disk image" not in result.stderr


# --- The two ends of the pipe ----------------------------------------------------------------
# Standard input at a terminal and on a pipe that stays open, and standard output closed early:
# each session ends with its documented status and nothing on stderr but the one outcome line.

@pytest.fixture(scope="module")
def shell(tmp_path_factory) -> Path:
    if not TOOLCHAIN or not shutil.which("gcc"):
        pytest.skip("gcc, GNU as and ld are needed to build the book's kernel")
    from lguest.guest import build_kernel as build_book_kernel

    return build_book_kernel(tmp_path_factory.mktemp("shell"))


def lguest_process(*args: str, **streams: Any) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen([sys.executable, "-m", "lguest", *args], cwd=ROOT, env=env, **streams)


def finished(process: subprocess.Popen, seconds: float = 60) -> tuple[int, str]:
    """The exit status and the whole of stderr, killing the process if it overstays."""
    try:
        process.wait(timeout=seconds)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    error = process.stderr.read().decode()
    process.stderr.close()
    return process.returncode, error


def read_until(fd: int, text: bytes, seconds: float = 60) -> bytes:
    import select

    seen, deadline = b"", time.monotonic() + seconds
    while text not in seen and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.2)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the pty's other side has gone
                break
            if not chunk:
                break
            seen += chunk
    assert text in seen, seen
    return seen


def at_a_terminal(shell: Path) -> tuple[subprocess.Popen, int]:
    """``lguest run 32`` with a pty as its controlling terminal, stdin and stdout: the Hero's."""
    import fcntl
    import termios

    master, slave = os.openpty()

    def take_the_terminal() -> None:  # a session of its own, this pty its terminal: Ctrl-C works
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    process = lguest_process("run", "32", str(shell), stdin=slave, stdout=slave,
                             stderr=subprocess.PIPE, preexec_fn=take_the_terminal)
    os.close(slave)
    return process, master


@needs_toolchain
def test_poweroff_typed_at_a_terminal_exits_0_with_nothing_on_stderr(shell):
    process, master = at_a_terminal(shell)
    try:
        read_until(master, b"lguest$ ")
        os.write(master, b"poweroff\r")
        assert finished(process) == (EXIT_POWEROFF, "")
    finally:
        os.close(master)


@needs_toolchain
def test_ctrl_c_typed_at_a_terminal_exits_4_with_one_line(shell):
    process, master = at_a_terminal(shell)
    try:
        read_until(master, b"lguest$ ")
        os.write(master, b"\x03")  # the terminal's own Ctrl-C: SIGINT to the Launcher
        assert finished(process) == (EXIT_KILLED, "lguest: guest killed: stopped by the host: "
                                                  "interrupted by Ctrl-C\n")
    finally:
        os.close(master)


@needs_toolchain
def test_poweroff_on_a_pipe_that_stays_open_exits_0_with_nothing_on_stderr(shell):
    process = lguest_process("run", "32", str(shell), stdin=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    process.stdin.write(b"poweroff\n")
    process.stdin.flush()  # and the pipe stays open, as `(echo poweroff; sleep 5) |` keeps it
    try:
        assert finished(process) == (EXIT_POWEROFF, "")
    finally:
        process.stdin.close()


@needs_toolchain
@pytest.mark.parametrize("console", ["early", "virtio"])
def test_standard_output_closed_early_ends_quietly_by_sigpipe(shell, console):
    reading, writing = os.pipe()
    process = lguest_process("run", f"--console={console}", "32", str(shell),
                             stdin=subprocess.PIPE, stdout=writing, stderr=subprocess.PIPE)
    os.close(writing)
    try:
        read_until(reading, b"lguest$ ")
    finally:
        os.close(reading)  # `| head -c 20`: the reader has read enough and gone
    process.stdin.write(b"help\n")  # the answer has nowhere to go
    process.stdin.flush()
    try:
        assert finished(process) == (-signal.SIGPIPE, "")
    finally:
        process.stdin.close()


def test_a_stopped_keyboard_ends_a_waiting_read_and_its_thread():
    reading, writing = os.pipe()
    keyboard = launcher.Keyboard(reading)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.extend([keyboard.read(10), keyboard.read(10)]))
    try:
        reader.start()
        os.write(writing, b"key")
        time.sleep(0.2)  # the second read is waiting now, for a key that will never come
        started = time.monotonic()
        keyboard.stop()
        assert time.monotonic() - started < 1 and not reader.is_alive()
        assert got == [b"key", b""]  # a stopped keyboard reads as the end of the input
        assert keyboard.read(10) == b""
    finally:
        os.close(reading)
        os.close(writing)


@pytest.mark.parametrize("spec, line", [
    ("udp:99999:1", "lguest: --net=udp:99999:1: 99999 is not a UDP port (1 to 65535)\n"),
    ("udp:5000:70000", "lguest: --net=udp:5000:70000: 70000 is not a UDP port (1 to 65535)\n"),
    ("udp:0:5000", "lguest: --net=udp:0:5000: 0 is not a UDP port (1 to 65535)\n"),
    ("udp:5000", "lguest: --net=udp:5000: expected udp:LOCAL_PORT:REMOTE_PORT or switch\n"),
    ("udp:٥:1", "lguest: --net=udp:٥:1: expected udp:LOCAL_PORT:REMOTE_PORT or switch\n"),
])
def test_a_cable_that_is_not_one_is_a_usage_error_of_one_line(spec, line):
    result = run_cli("run", f"--net={spec}", "32", "/no/such/kernel.elf")
    assert (result.returncode, result.stdout, result.stderr) == (EXIT_USAGE, "", line)


@pytest.mark.parametrize("what", ["missing", "directory"])
def test_a_script_for_a_companion_that_cannot_be_read_is_a_usage_error(tmp_path, what):
    script = tmp_path / "missing.txt" if what == "missing" else tmp_path
    result = run_cli("run", "--guests=2", f"--input={script}", "32", "/no/such/kernel.elf")
    assert result.returncode == EXIT_USAGE and result.stdout == ""
    assert f"Invalid value for '--input': '{script}'" in result.stderr


def test_the_launcher_alone_builds_the_machine_and_says_there_is_no_host(tmp_path):
    """The Launcher chapter's snapshot: a machine around the smallest kernel, and no Host."""
    result = subprocess.run([sys.executable, "-m", "lguest", "milestone", "launcher"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "0x00100000  the kernel" in result.stdout
    assert "no Host to hand the guest to yet" in result.stdout


@needs_toolchain
@pytest.mark.parametrize("what", ["FIFO", "character device", "block device", "directory",
                                  "bigger than memory"])
def test_a_kernel_that_is_not_a_kernel_file_exits_1_and_never_hangs(kernel, tmp_path, what):
    path = {"FIFO": tmp_path / "fifo", "character device": Path("/dev/zero"),
            "block device": next((Path("/dev") / name for name in sorted(os.listdir("/dev"))
                                  if os.path.exists(f"/dev/{name}")
                                  and stat.S_ISBLK(os.stat(f"/dev/{name}").st_mode)), None),
            "directory": tmp_path, "bigger than memory": tmp_path / "huge.elf"}[what]
    if path is None:
        pytest.skip("no block device in /dev")
    if what == "FIFO":
        os.mkfifo(path)
    if what == "bigger than memory":
        path.write_bytes(kernel.read_bytes())
        os.truncate(path, 4 * MiB + 1)  # an ELF file with a sparse tail: one byte too big
    result = run_cli("run", "--timeout=5", "4", str(path))
    words = (f"cannot read it: it is a {what}, not a kernel file" if what != "bigger than memory"
             else "bigger than the guest's 4 MiB of memory; it cannot be a kernel that fits")
    assert (result.returncode, result.stdout, result.stderr) == (EXIT_ERROR, "",
                                                                 f"lguest: {path}: {words}\n")


@needs_toolchain
@pytest.mark.parametrize("option, what", [  # a real disk is not a thing to open for writing
    ("--read-only-block", "FIFO"), ("--read-only-block", "character device"),
    ("--read-only-block", "block device"), ("--block", "FIFO"), ("--block", "character device")])
def test_a_disk_image_that_is_not_a_file_exits_1_and_never_hangs(kernel, tmp_path, option, what):
    path = {"FIFO": tmp_path / "fifo", "character device": Path("/dev/zero"),
            "block device": next((Path("/dev") / name for name in sorted(os.listdir("/dev"))
                                  if os.path.exists(f"/dev/{name}")
                                  and stat.S_ISBLK(os.stat(f"/dev/{name}").st_mode)), None)}[what]
    if path is None:
        pytest.skip("no block device in /dev")
    if what == "FIFO":
        os.mkfifo(path)
    result = run_cli("run", "--timeout=5", f"{option}={path}", "4", str(kernel))
    assert (result.returncode, result.stdout, result.stderr) == (
        EXIT_ERROR, "", f"lguest: {path}: cannot open the disk image: it is a {what}, "
                        "not a disk image\n")


# --- What the Host writes, the CPU must not have translated already ------------------------------

def test_guest_memory_remembers_written_ranges_within_bounds():
    from unicorn import UC_ARCH_X86, UC_MODE_32, Uc

    from lguest.memory import STALE_RANGES, GuestMemory

    memory = GuestMemory(1 << 20)
    memory.write(0, b"before the CPU")  # no CPU yet: nothing to tell
    assert memory.stale == []
    uc = Uc(UC_ARCH_X86, UC_MODE_32)
    memory.map_into(uc)
    memory.write(0x100, b"x" * 16)
    memory.write(0x110, b"y" * 16)  # touching the last range: merged into it
    memory.write_u32(0x108, 7)  # inside it: nothing new
    assert memory.stale == [[0x100, 0x120]]
    memory.settle()
    assert memory.stale == [] and not memory.stale_everywhere
    for page in range(STALE_RANGES + 1):  # one range too many: forget everything instead
        memory.wrote(page * 0x1000, 8)
    assert memory.stale == [] and memory.stale_everywhere
    memory.settle()
    assert not memory.stale_everywhere
    with pytest.raises(ValueError, match="first memory"):
        GuestMemory(1 << 20).map_into(uc)


def test_settle_forgets_code_by_physical_page_whatever_maps_it():
    """Code run at two virtual addresses of one physical page, rewritten by the Host while
    the current page tables do not map that page at all, runs anew at both addresses.
    (Unicorn's public ctl_remove_cache names pages by virtual address, and could not.)"""
    from unicorn import UC_ARCH_X86, UC_MODE_32, Uc
    from unicorn.x86_const import UC_X86_REG_CR0, UC_X86_REG_CR3, UC_X86_REG_EAX, UC_X86_REG_ESP

    from lguest.memory import GuestMemory

    memory = GuestMemory(8 << 20)
    uc = Uc(UC_ARCH_X86, UC_MODE_32)
    memory.map_into(uc)
    code, caller, first, second, empty = 0x500000, 0x3000, 0x800000, 0x801000, 0x5000
    mapping, other = 0x1000, 0x6000  # page directories: one maps the code twice, one not at all
    memory.write_u32(mapping, 0x2000 | 3)
    memory.write_u32(other, 0x2000 | 3)
    for page in range(1024):  # the first 4 MiB, as they are, in both
        memory.write_u32(0x2000 + 4 * page, page << 12 | 3)
    memory.write_u32(mapping + 4 * (first >> 22), 0x4000 | 3)
    memory.write_u32(0x4000, code | 3)
    memory.write_u32(0x4004, code | 3)
    memory.write_u32(other + 4 * (first >> 22), empty | 3)  # a table with nothing in it
    uc.reg_write(UC_X86_REG_CR3, mapping)
    uc.reg_write(UC_X86_REG_CR0, uc.reg_read(UC_X86_REG_CR0) | 0x80000001)

    def call(address: int) -> int:
        memory.write(caller, b"\xe8" + struct.pack("<i", address - caller - 5))
        memory.settle()
        uc.reg_write(UC_X86_REG_ESP, 0x3FF000)
        uc.emu_start(caller, caller + 5)
        return uc.reg_read(UC_X86_REG_EAX)

    memory.write(code, b"\xb8\x01\x00\x00\x00\xc3")  # mov $1, %eax; ret
    assert (call(first), call(second)) == (1, 1)
    uc.reg_write(UC_X86_REG_CR3, other)
    memory.write(code, b"\xb8\x02\x00\x00\x00\xc3")
    memory.settle()
    uc.reg_write(UC_X86_REG_CR3, mapping)
    assert (call(first), call(second)) == (2, 2)
