"""The Guest chapter: the book's own kernel, built, booted and driven through its shell.

The kernel is booted the way a user boots it, ``python -m lguest run 32`` with the shell's input
on stdin (the early console reads stdin), and the console output is compared exactly, except
for addresses and times, which are matched by pattern where they depend on the build or the
clock. Deterministic mode pins those down too: the same script gives the same transcript.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from conftest import ROOT, ConsoleCapture, abi_numbers, header_defines, load_guest, run_guest
from lguest import abi
from lguest.guest import HEADERS, SOURCES, SOURCE_DIR, build_kernel, fingerprint
from lguest.launcher import EXIT_POWEROFF, EXIT_RESTART, launch

BANNER = "lguest.py guest kernel: 32 MiB of memory, 100 ticks a second\n"
PROMPT = "lguest$ "
HELP = """\
  help               this list
  echo WORDS...      print the words
  uptime             time since boot, by ticks and by the Host's clock
  ticks              timer interrupts since boot
  sleep SECONDS      sleep in HALT while the timer ticks
  mem                memory size and use
  cmdline            the kernel's command line
  peek ADDRESS       read a word of memory (try 0xdead0000)
  cli                disable interrupts the bare-metal way
  crash              fault inside the fault handler
  random N           N random bytes from the Host, in hex
  blk [N] SUBCOMMAND disk N, or 0: info, read SECTOR, write SECTOR TEXT, bench
  ping [MAC]         ping a guest on the wire, or all of them
  net [SUBCOMMAND]   the network card: counters, or flood N [MAC]
  beer               the Beer voucher, if the Host has one for you
  reboot             restart the machine
  poweroff           turn the machine off
"""


@pytest.fixture(scope="session")
def kernel(tmp_path_factory) -> Path:
    return build_kernel(tmp_path_factory.mktemp("kernel"))


def shell(kernel: Path, script: str, *args: str, flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return run_guest(kernel, *args, mem=32, input=script, flags=flags)


def outputs(stdout: str) -> list[str]:
    """The console split at the prompts: the banner, then each command's output."""
    return stdout.split(PROMPT)


# --- The header and the build ------------------------------------------------------------------


def test_header_agrees_with_abi():
    """Every #define in the kernel's lguest.h is a number of lguest.abi, with the same value."""
    expected = abi_numbers()
    defines = header_defines(SOURCE_DIR / "lguest.h")
    text = (SOURCE_DIR / "lguest.h").read_text()
    assert len(defines) == len(re.findall(r"^#define\s+\w+\s+\S", text, re.MULTILINE))
    assert len(defines) > 40
    assert sorted(set(defines) - set(expected)) == []
    assert {name: value for name, value in defines.items() if value != expected[name]} == {}


def test_kernel_sources_are_tangled_from_the_book():
    for name in (*SOURCES, *HEADERS):
        first = (SOURCE_DIR / name).read_text().splitlines()[0]
        assert first.startswith("/* Tangled from the book"), name


def test_kernel_is_an_elf_the_launcher_takes(kernel):
    with open(kernel, "rb") as stream:
        elf = ELFFile(stream)
        assert (elf.elfclass, elf.little_endian) == (32, True)
        assert (elf["e_machine"], elf["e_type"]) == ("EM_386", "ET_EXEC")
        loads = [segment.header for segment in elf.iter_segments() if segment["p_type"] == "PT_LOAD"]
        entry = elf["e_entry"]
    assert len(loads) == 2
    for segment in loads:
        assert segment.p_paddr >= abi.KERNEL_LOAD
        assert segment.p_vaddr - segment.p_paddr == abi.PAGE_OFFSET
    assert loads[0].p_vaddr == entry == abi.PAGE_OFFSET + abi.KERNEL_LOAD
    assert loads[0].p_flags == 5 and loads[1].p_flags == 6


def test_build_is_cached_by_the_sources(kernel, tmp_path):
    stamp = kernel.with_name("kernel.stamp")
    assert stamp.read_text() == fingerprint()
    before = kernel.stat().st_mtime_ns
    assert build_kernel(kernel.parent) == kernel
    assert kernel.stat().st_mtime_ns == before
    stamp.write_text("stale")
    assert build_kernel(kernel.parent) == kernel
    assert stamp.read_text() == fingerprint()
    assert [path.name for path in kernel.parent.iterdir() if path.name.startswith(".")] == []


def test_python_m_lguest_guest_prints_the_kernel(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    result = subprocess.run([sys.executable, "-m", "lguest.guest", str(tmp_path)], env=env,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{tmp_path / 'kernel.elf'}\n"
    assert (tmp_path / "kernel.elf").read_bytes()[:4] == b"\x7fELF"


# --- Booting and the shell ---------------------------------------------------------------------

def test_lguest_run_without_a_kernel_boots_the_books_own():
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    result = subprocess.run([sys.executable, "-m", "lguest", "run", "32"], input="echo hi\n",
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stderr) == (EXIT_POWEROFF, "")
    assert result.stdout == f"{BANNER}{PROMPT}hi\n{PROMPT}\n"


def test_every_shell_command(kernel):
    script = ("help\necho  hello,   world \necho\ncmdline\nmem\nticks\nuptime\n"
              "peek 0xc0100000\npeek 0x10\npeek nonsense\npeek 0xffffffff\nfrobnicate now\n\n")
    result = shell(kernel, script, "console=early", "quiet")
    assert (result.returncode, result.stderr) == (EXIT_POWEROFF, "")
    banner, *answers, last = outputs(result.stdout)
    assert banner == BANNER
    first_word = int.from_bytes(kernel.read_bytes()[0x1000:0x1004], "little")
    assert answers[:4] == [HELP, "hello, world\n", "\n", "console=early quiet\n"]
    image = int(re.fullmatch(r"memory: 32768 KiB, kernel image (\d+) KiB, allocated 36 KiB, "
                             r"free (\d+) KiB\n", answers[4]).group(1))  # 9 pages: 8 tables, 1 pgdir
    assert answers[4].endswith(f"free {32768 - 1024 - image - 36} KiB\n")  # above the first MiB
    assert re.fullmatch(r"\d+\n", answers[5])
    assert re.fullmatch(r"up \d+\.\d\d s by \d+ ticks, \d+\.\d\d\d s by the Host's clock\n", answers[6])
    assert answers[7] == f"0xc0100000: 0x{first_word:08x}\n"
    assert re.fullmatch(r"oops: page fault \(vector 14\) at eip 0xc01[0-9a-f]{5}, cr2 0x10, error 0\n",
                        answers[8])
    assert answers[9:] == ["usage: peek ADDRESS\n",
                           "peek: 0xffffffff is the Switcher's; the Host would kill us\n",
                           "frobnicate: no such command; try help\n", ""]
    assert last == "\n"


def test_a_bad_pointer_is_an_oops_and_the_shell_carries_on(kernel):
    result = shell(kernel, "peek 0xdead0000\ncli\necho still here\npeek 0xdead0000\n")
    assert result.returncode == EXIT_POWEROFF, result.stderr
    _, oops, gp, echo, again, last = outputs(result.stdout)
    pattern = r"oops: page fault \(vector 14\) at eip 0x(c01[0-9a-f]{5}), cr2 0xdead0000, error 0\n"
    assert re.fullmatch(pattern, oops) and again == oops
    assert re.fullmatch(r"oops: general protection fault \(vector 13\) at eip 0xc01[0-9a-f]{5}, "
                        r"error 0\n", gp)
    assert (echo, last) == ("still here\n", "\n")


def test_a_fault_in_the_fault_handler_panics_and_powers_off(kernel):
    result = shell(kernel, "crash\necho never\n", flags=("--verbose",))
    assert result.returncode == EXIT_POWEROFF
    _, crash = outputs(result.stdout)
    lines = crash.splitlines()
    assert re.fullmatch(r"oops: page fault \(vector 14\) at eip 0xc01[0-9a-f]{5}, cr2 0xdead0000, "
                        r"error 2", lines[0])
    message = r"page fault \(vector 14\) at eip 0xc01[0-9a-f]{5} inside the fault handler"
    assert re.fullmatch(f"Kernel panic: {message}", lines[1]) and len(lines) == 2
    assert re.search(f"lguest: guest poweroff: {message}$", result.stderr)


@pytest.mark.parametrize("command, status, reason", [
    ("poweroff", EXIT_POWEROFF, "poweroff from the shell"),
    ("reboot", EXIT_RESTART, "reboot from the shell"),
    (None, EXIT_POWEROFF, "end of input"),
])
def test_the_ways_out(kernel, command, status, reason):
    script = "echo bye\n" + (f"{command}\necho not reached\n" if command else "")
    result = shell(kernel, script, flags=("--verbose",))
    assert result.returncode == status
    assert result.stdout == f"{BANNER}{PROMPT}bye\n{PROMPT}" + ("" if command else "\n")
    assert result.stderr.splitlines()[-1] == f"lguest: guest {'restart' if status else 'poweroff'}: {reason}"


def test_backspace_edits_the_line_and_the_last_line_needs_no_newline(kernel):
    result = shell(kernel, "echo hx\bellp\x7fo\r" + "x" * 300 + "\necho end")
    assert result.returncode == EXIT_POWEROFF
    _, hello, long_line, end, last = outputs(result.stdout)
    assert (hello, end, last) == ("hello\n", "end\n", "\n")
    assert long_line == f"{'x' * 127}: no such command; try help\n"


def test_idle_kernel_halts_and_the_timer_keeps_ticking(kernel):
    """Input that arrives late: the kernel sleeps in HALT, wakes for each line, and counts
    ticks meanwhile (100 a second, give or take a slow machine)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    child = subprocess.Popen([sys.executable, "-m", "lguest", "run", "32", str(kernel)], cwd=ROOT,
                             env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    time.sleep(1.0)
    child.stdin.write("uptime\n")
    child.stdin.flush()
    time.sleep(0.5)
    child.stdin.write("ticks\n")
    child.stdin.close()
    assert child.wait(timeout=60) == EXIT_POWEROFF
    _, uptime, ticks, _ = outputs(child.stdout.read())
    up_ticks, host_seconds = re.fullmatch(r"up \d+\.\d\d s by (\d+) ticks, (\d+\.\d+) s by the "
                                          r"Host's clock\n", uptime).groups()
    assert float(host_seconds) >= 0.5  # the input was written a second after the start
    assert 20 <= int(up_ticks) <= 120
    assert int(ticks) >= int(up_ticks) + 10


def test_deterministic_transcripts_repeat_exactly(kernel):
    script = "uptime\nticks\nmem\npeek 0xdead0000\nsleep 2\necho done\nticks\nuptime\n"
    first, second = (shell(kernel, script, flags=("--deterministic",)) for _ in range(2))
    assert first.returncode == second.returncode == EXIT_POWEROFF
    assert first.stdout == second.stdout
    assert "oops: page fault" in first.stdout
    assert re.search(r"^2\d\d\nlguest\$ up 2\.\d\d s by 2\d\d ticks, 2\.\d{3} s by the Host's clock\n",
                     first.stdout.split("done\n")[1].split(PROMPT, 1)[1], re.MULTILINE)


def test_launch_in_process_with_scripted_input(kernel):
    console = io.BytesIO()
    status = launch(32, kernel, ["a"], console=console, deterministic=True,
                    console_input=io.BytesIO(b"cmdline\npoweroff\n"))
    assert status == EXIT_POWEROFF
    assert console.getvalue().decode() == f"{BANNER}{PROMPT}a\n{PROMPT}"


def test_a_bad_boot_magic_is_a_panic_with_a_message(kernel):
    from lguest.host.core import Host

    memory, run = load_guest(kernel, mem_mb=32)
    memory.write_u32(abi.BOOT_PAGE, 0x12345678)
    console = ConsoleCapture()
    outcome = Host(memory, console=console, deterministic=True).run(**run)
    message = "bad boot page magic 0x12345678: was this kernel started by lguest.py?"
    assert (outcome.kind, outcome.reason) == ("poweroff", message)
    assert console.text == f"Kernel panic: {message}\n"


# --- A second guest, written from the ABI section alone ----------------------------------------

ABI_GUEST = ROOT / "tests" / "abi_guest" / "hello.S"


def build_abi_guest(out_dir: Path) -> Path:
    obj, elf = out_dir / "hello.o", out_dir / "hello.elf"
    for step in (["gcc", "-m32", "-c", str(ABI_GUEST), "-o", str(obj)],
                 ["ld", "-m", "elf_i386", "-N", "--no-warn-rwx-segments", "-Ttext=0x100000",
                  "-e", "_start", "-o", str(elf), str(obj)]):
        result = subprocess.run(step, capture_output=True, text=True, check=False)
        assert result.returncode == 0 and not result.stderr, result.stderr
    return elf


@pytest.mark.parametrize("flags", [(), ("--deterministic",)], ids=["wall-clock", "deterministic"])
def test_a_guest_written_from_the_abi_section_alone_runs(tmp_path, flags):
    elf = build_abi_guest(tmp_path)
    result = run_guest(elf, flags=("--verbose", *flags))
    assert result.returncode == EXIT_POWEROFF, result.stderr
    assert result.stdout == ("hello from a guest written from the contract alone\n"
                             "and the timer ticked\n")
    assert result.stderr.splitlines()[-1] == "lguest: guest poweroff: goodbye"
    assert re.search(r"^exit interrupt vector 32 at ", result.stderr, re.MULTILINE)
