"""Mastery, a debugger at the door: Debian's gdb, in batch mode, against `lguest run --gdb`."""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from conftest import ROOT

GDB = shutil.which("gdb")
WAITING = re.compile(r"lguest: waiting for gdb on (\S+):(\d+)")


def gdb_path() -> str:
    if GDB is None:
        pytest.fail("gdb not found: `make system` (as root) installs Debian's gdb, which these "
                    "tests drive; make test installs it when it is missing")
    return GDB


@pytest.fixture(scope="module")
def kernel() -> Path:
    from lguest.guest import build_kernel

    return build_kernel()


LAUNCHED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def nothing_left_running():
    """A test that fails halfway leaves no guest behind it."""
    yield
    while LAUNCHED:
        process = LAUNCHED.pop()
        if process.poll() is None:
            process.kill()
            process.wait()


class Guest:
    """``lguest run --gdb 127.0.0.1:0`` in the background, with its port once it listens."""

    def __init__(self, elf: Path, script: bytes = b"", *flags: str, timeout: float = 60):
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lguest", "run", "--timeout", str(timeout), *flags,
             "--gdb", "127.0.0.1:0", "16", str(elf)],
            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        LAUNCHED.append(self.process)
        self.process.stdin.write(script)
        self.process.stdin.close()
        self.process.stdin = None  # all typed: communicate() has nothing to send
        ready, _, _ = select.select([self.process.stderr], [], [], 30)
        line = self.process.stderr.readline().decode() if ready else ""
        found = WAITING.search(line)
        if found is None:
            self.process.kill()
            raise AssertionError(f"lguest did not say where it waits: {line!r}")
        self.port = int(found.group(2))

    def gdb(self, *commands: str, elf: Path | None = None, timeout: float = 60) -> str:
        """Run gdb in batch mode with ``commands`` after connecting; everything it printed."""
        return subprocess.run(self.gdb_command(*commands, elf=elf), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=timeout).stdout

    def gdb_command(self, *commands: str, elf: Path | None = None) -> list[str]:
        every = ["set trace-commands on", f"target remote 127.0.0.1:{self.port}", *commands]
        return [gdb_path(), "-batch", "-nx", *(part for command in every for part in ("-ex", command)),
                *([str(elf)] if elf else [])]

    def finish(self, timeout: float = 90) -> tuple[int, str, str]:
        try:
            out, err = self.process.communicate(timeout=timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        return self.process.returncode, out.decode(), err.decode()


def after(output: str, command: str) -> str:
    """What gdb printed after ``command`` and before the next command."""
    return output.split(f"+{command}\n", 1)[1].split("\n+", 1)[0]


def test_a_breakpoint_by_symbol_is_hit_and_variables_read_back(kernel):
    guest = Guest(kernel, b"echo hello, Hero\npoweroff\n")
    output = guest.gdb("break cmd_echo", "continue", "print argc", "print argv[2]",
                       "print/x $eip", "info address cmd_echo", "continue", elf=kernel)
    status, out, err = guest.finish()
    assert "Breakpoint 1, cmd_echo (argc=3" in output, output
    assert after(output, "print argc").strip() == "$1 = 3", output
    assert after(output, "print argv[2]").strip().endswith('"Hero"'), output
    address = re.search(r"address (0x[0-9a-f]+)", after(output, "info address cmd_echo")).group(1)
    assert after(output, "print/x $eip").strip() == f"$3 = {address}", output
    assert "exited normally" in output, output
    assert status == 0 and "hello, Hero" in out, err


def test_a_step_advances_eip_by_one_instruction(kernel):
    guest = Guest(kernel, b"echo one\npoweroff\n")
    output = guest.gdb("break cmd_echo", "continue", "x/3i $pc", "stepi", "print/x $pc",
                       "stepi", "print/x $pc", "detach", elf=kernel)
    guest.finish()
    listing = after(output, "x/3i $pc")
    addresses = re.findall(r"(0x[0-9a-f]+) <cmd_echo(?:\+\d+)?>:", listing)
    assert len(addresses) == 3, listing
    steps = [part.split("\n+", 1)[0].strip() for part in output.split("+print/x $pc\n")[1:]]
    assert steps == [f"$1 = {addresses[1]}", f"$2 = {addresses[2]}"], output


def test_registers_write_but_the_hosts_bits_stay_the_hosts(kernel):
    guest = Guest(kernel, b"echo hi\npoweroff\n")
    output = guest.gdb("break cmd_echo", "continue", "set var $ecx = 0x1234",
                       "set var $cs = 0x8", "set var $eflags = $eflags | 0x3001",
                       "maintenance flush register-cache", "print/x $ecx", "print/x $cs",
                       "print/x $eflags & 0x3001", "print $st0", "detach", elf=kernel)
    status, out, err = guest.finish()
    assert after(output, "print/x $ecx").strip() == "$1 = 0x1234", output  # read back from the Host
    assert "Could not write register \"cs\"" in output, output
    assert after(output, "print/x $cs").strip() == "$2 = 0x19", output  # still ring 1
    assert after(output, "print/x $eflags & 0x3001").strip() == "$3 = 0x1", output  # CF, no IOPL
    assert after(output, "print $st0").strip() == "$4 = <unavailable>", output
    assert status == 0 and "hi" in out, err


def test_memory_writes_show_up_in_the_guest_and_unmapped_memory_is_an_error(kernel):
    guest = Guest(kernel, b"echo hello, Hero\npoweroff\n")
    output = guest.gdb("break cmd_echo", "continue", "set var argv[1][0] = 'J'",
                       "print argv[1]", "x/wx 0xdead0000", "print *(int *)0xffc00000",
                       "detach", elf=kernel)
    status, out, err = guest.finish()
    assert after(output, "print argv[1]").strip().endswith('"Jello,"'), output
    assert "Cannot access memory at address 0xdead0000" in output, output
    assert "Cannot access memory at address 0xffc00000" in output, output  # the Switcher's
    assert status == 0 and "Jello, Hero" in out, (out, err)


def test_ctrl_c_stops_a_spinning_guest_named_by_its_own_symbols(guest):
    spin = guest("spin")
    running = Guest(spin)
    gdb = subprocess.Popen(running.gdb_command("continue", "info symbol $pc", "x/i $pc", "kill",
                                               elf=spin),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(3)  # long enough to be spinning, whatever the machine
        gdb.send_signal(signal.SIGINT)
        output, _ = gdb.communicate(timeout=60)
    finally:
        if gdb.poll() is None:
            gdb.kill()
            gdb.wait()
    status, out, err = running.finish()
    assert "received signal SIGINT" in output, output
    assert after(output, "info symbol $pc").startswith("main + "), output
    assert "jmp" in after(output, "x/i $pc"), output
    assert "spinning" in out
    assert status == 4 and "killed from the debugger" in err, err


def test_detach_lets_the_guest_run_on_to_poweroff(kernel):
    guest = Guest(kernel, b"echo one\necho two\npoweroff\n")
    output = guest.gdb("break cmd_echo", "continue", "detach", elf=kernel)
    status, out, err = guest.finish()
    assert "Breakpoint 1, cmd_echo" in output and "(Remote target) detached" in output, output
    assert status == 0, err
    assert "one\n" in out and "two\n" in out, out


def test_detach_lets_the_guest_go_while_the_debugger_stays_connected(kernel):
    guest = Guest(kernel, b"echo free\npoweroff\n")
    raw = Raw(guest.port)
    assert raw.packet(b"?").startswith(b"T05")
    assert raw.packet(b"D") == b"OK"
    try:
        status, out, err = guest.finish(timeout=30)  # the socket is still open
    finally:
        raw.close()
    assert status == 0 and "free" in out, err


def test_the_guest_clock_stands_still_while_it_is_stopped(kernel):
    guest = Guest(kernel, b"uptime\nuptime\npoweroff\n")
    guest.gdb("break cmd_uptime", "continue", "continue", "shell sleep 2", "detach", elf=kernel)
    status, out, err = guest.finish()
    clocks = [float(seconds) for seconds in re.findall(r"([\d.]+) s by the Host's clock", out)]
    assert status == 0 and len(clocks) == 2, (out, err)
    assert clocks[1] - clocks[0] < 1.0, out  # two seconds at the breakpoint did not count


class Raw:
    """A hand-driven client of the remote protocol, for what gdb itself would never send."""

    def __init__(self, port: int):
        self.socket = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.socket.sendall(data)

    def packet(self, body: bytes) -> bytes:
        self.send(b"$" + body + b"#%02x" % (sum(body) & 0xFF))
        return self.reply()

    def reply(self) -> bytes:
        while True:
            match = re.search(rb"\$([^#]*)#[0-9a-f]{2}", self.buffer)
            if match:
                self.buffer = self.buffer[match.end():]
                return match.group(1)
            data = self.socket.recv(4096)
            if not data:
                raise ConnectionError(f"closed, after {self.buffer!r}")
            self.buffer += data

    def close(self) -> None:
        self.socket.close()


def elf_bytes(elf: Path, address: int, length: int) -> bytes:
    with open(elf, "rb") as file:
        for segment in ELFFile(file).iter_segments():
            start = segment["p_vaddr"]
            if segment["p_type"] == "PT_LOAD" and start <= address < start + segment["p_filesz"]:
                return segment.data()[address - start:address - start + length]
    raise AssertionError(f"{address:#x} is not in {elf}")


def test_malformed_packets_and_a_second_client_never_kill_the_guest(kernel):
    guest = Guest(kernel, b"echo still here\npoweroff\n")
    raw = Raw(guest.port)
    raw.send(b"$g#00")  # a wrong checksum
    assert raw.socket.recv(1) == b"-"
    raw.send(b"\x00garbage+++")  # noise between packets is dropped
    assert raw.packet(b"?").startswith(b"T05")
    assert raw.packet(b"mzz,4") == b"E16"  # hex that is not hex
    assert raw.packet(b"m0,") == b"E16"
    assert raw.packet(b"mc0100000,0") == b"E16"  # an empty reply would mean "unsupported"
    assert raw.packet(b"P99=00000000") == b"E16"
    assert raw.packet(b"G00") == b"E16"
    assert raw.packet(b"Pa=00000000") == b"E16"  # %cs may not change
    assert raw.packet(b"M0,4:00") == b"E16"  # the length and the bytes disagree
    assert raw.packet(b"mdead0000,4") == b"E0e"
    assert raw.packet(b"Z2,c0100000,4") == b""  # watchpoints: not offered
    assert raw.packet(b"Z0,-1,1") == b"E16"  # a sign is not hex: never a hook at -1
    assert raw.packet(b"Z0,ffc00000,1") == b"E16"  # the Switcher's
    assert raw.packet(b"Z0,100000000,1") == b"E16"
    assert raw.packet(b"p-1") == b"E16"
    assert raw.packet(b"m 0x10,4") == b"E16"
    assert raw.packet(b"vSomethingNew") == b""
    raw.send(b"$" + b"A" * 20000)  # a packet that never ends is thrown away
    assert raw.socket.recv(1) == b"-" or raw.buffer.startswith(b"-")
    raw.buffer = b""
    echo = int(subprocess.run(["nm", str(kernel)], capture_output=True, text=True, check=True)
               .stdout.split(" t cmd_echo")[0].rsplit("\n", 1)[-1], 16)
    assert raw.packet(b"Z0,%x,1" % echo) == b"OK"
    original = elf_bytes(kernel, echo, 4)
    assert raw.packet(b"m%x,4" % echo) == original.hex().encode()  # no 0xCC to be seen
    second = socket.create_connection(("127.0.0.1", guest.port), timeout=10)
    turned_away = second.recv(64)
    assert turned_away == b"+$E10#a6", turned_away
    assert second.recv(64) == b""  # and the door closes
    second.close()
    third = subprocess.run(guest.gdb_command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=60).stdout
    assert "Remote failure reply: E10" in third and "Remote connection closed" in third, third
    raw.send(b"$c#63")
    assert raw.reply().startswith(b"T05swbreak")
    assert raw.packet(b"p8") == b"%08x" % int.from_bytes(echo.to_bytes(4, "little"), "big")
    assert raw.packet(b"z0,%x,1" % echo) == b"OK"
    assert raw.packet(b"D") == b"OK"
    raw.close()
    status, out, err = guest.finish()
    assert status == 0 and "still here" in out, (out, err)
    assert "a second debugger" in err and "turned away" in err, err


def test_a_debugger_that_never_comes_does_not_outlast_the_timeout(kernel):
    started = time.monotonic()
    guest = Guest(kernel, b"", timeout=2)
    status, out, err = guest.finish()
    assert status == 4 and "timed out after 2 seconds" in err, err
    assert time.monotonic() - started < 30


def test_a_connection_that_says_nothing_does_not_stop_a_running_guest(kernel):
    """The guest stops for a debugger that speaks, not for any process that connects: a
    silent one used to park it until --timeout."""
    guest = Guest(kernel, b"sleep 2\necho woke\npoweroff\n", timeout=30)
    raw = Raw(guest.port)
    assert raw.packet(b"?").startswith(b"T05")
    assert raw.packet(b"D") == b"OK"
    raw.close()
    silent = socket.create_connection(("127.0.0.1", guest.port), timeout=10)
    try:
        status, out, err = guest.finish()
    finally:
        silent.close()
    assert status == 0 and "woke" in out, (out, err)


def test_the_tail_of_a_packet_too_long_to_take_is_never_read_as_commands(kernel):
    """A packet that overflows is thrown away to its end: a '-' or a Ctrl-C inside it is
    neither a request to resend nor an interrupt."""
    guest = Guest(kernel, b"echo after\npoweroff\n")
    raw = Raw(guest.port)
    assert raw.packet(b"?").startswith(b"T05")
    raw.send(b"$" + b"A" * 20000)
    assert raw.socket.recv(1) == b"-"
    raw.send(b"---\x03AAAA#00")  # the rest of it: three resend requests and a Ctrl-C, if read
    assert raw.packet(b"qC") == b"QC1"  # the very next reply is this one's
    raw.socket.settimeout(0.5)
    try:
        extra = raw.socket.recv(4096)
    except socket.timeout:
        extra = b""
    assert extra in (b"", b"+"), extra
    raw.socket.settimeout(10)
    assert raw.packet(b"D") == b"OK"
    raw.close()
    status, out, err = guest.finish()
    assert status == 0 and "after" in out, (out, err)


def test_a_debugger_that_vanishes_is_a_detach(kernel):
    guest = Guest(kernel, b"echo after\npoweroff\n")
    raw = Raw(guest.port)
    assert raw.packet(b"?").startswith(b"T05")
    raw.close()  # no D, no k: gone
    status, out, err = guest.finish()
    assert status == 0 and "after" in out, err


def test_bad_ports_are_refused_before_anything_runs(kernel):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    wrong = subprocess.run([sys.executable, "-m", "lguest", "run", "--gdb", "99999", "16",
                            str(kernel)], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=60)
    assert wrong.returncode == 2 and "--gdb wants [HOST:]PORT" in wrong.stderr, wrong.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        busy = subprocess.run([sys.executable, "-m", "lguest", "run", "--gdb",
                               str(taken.getsockname()[1]), "16", str(kernel)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60)
    assert busy.returncode == 1 and "cannot listen for gdb" in busy.stderr, busy.stderr
    several = subprocess.run([sys.executable, "-m", "lguest", "run", "--gdb", "0", "--guests", "2",
                              "16", str(kernel)], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=60)
    assert several.returncode == 1 and "one guest" in several.stderr, several.stderr
