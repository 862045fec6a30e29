"""The Drivers chapter, the Guest's side: the virtio console driver and the terminal it runs on.

The shell is driven over ``lguest run --console=virtio`` with a script on a pipe, in process with a
device the kernel has no driver for, and on a pseudo-terminal, whose settings must be the same after
the run as before it, however the run ended.
"""

from __future__ import annotations

import io
import os
import select
import signal
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from conftest import ROOT, run_guest
from lguest.drivers import VirtioDevice
from lguest.drivers.mmio import MMIO_BASE
from lguest.guest import build_kernel
from lguest.host.core import Host
from lguest.launcher import (EXIT_KILLED, EXIT_POWEROFF, boot, build_page_tables, launch,
                             load_kernel, make_memory, write_boot_page)

PROMPT = "lguest$ "


@pytest.fixture(scope="session")
def kernel(tmp_path_factory) -> Path:
    return build_kernel(tmp_path_factory.mktemp("kernel"))


def virtio_shell(kernel: Path, script: str, *flags: str) -> tuple[list[str], str]:
    result = run_guest(kernel, mem=32, input=script, flags=("--console=virtio", *flags))
    assert (result.returncode, result.stderr) == (EXIT_POWEROFF, ""), result.stdout
    boot, *answers = result.stdout.split(PROMPT)
    return [boot, *answers], result.stdout


def test_a_scripted_session_over_the_virtio_console(kernel):
    (boot, echo, random, fixed, bad, last), _ = virtio_shell(
        kernel, "echo over virtio\nrandom 4\necho typo\bs\x7f!\nnosuch\n", "--rng")
    assert boot.splitlines()[1:] == ["virtio: console at 0xd0000000, line 2",
                                     "virtio: rng at 0xd0001000, line 3"]
    assert echo == "echo over virtio\nover virtio\n"  # the shell echoes the keys, then answers
    assert random.startswith("random 4\n") and len(random.split("\n")[1]) == 8
    assert fixed == "echo typo\b \bs\b \b!\ntyp!\n"
    assert bad == "nosuch\nnosuch: no such command; try help\n"
    assert last == "\n"  # the end of the script: a zero-length read, and goodbye


def test_the_end_of_the_input_ends_the_shell(kernel):
    (boot, last), _ = virtio_shell(kernel, "")
    assert boot.endswith("virtio: console at 0xd0000000, line 2\n") and last == "\n"
    (boot, unfinished, last), _ = virtio_shell(kernel, "echo no newline")
    assert unfinished == "echo no newline\nno newline\n" and last == "\n"
    (boot, last), _ = virtio_shell(kernel, "\x04echo never\n")  # Ctrl-D on an empty line
    assert last == "\n"


def test_a_long_script_arrives_whole(kernel):
    script = "".join(f"echo line {number} {'x' * 90}\n" for number in range(120))
    answers, _ = virtio_shell(kernel, script)
    said = [answer.split("\n")[1] for answer in answers[1:-1]]
    assert said == [f"line {number} {'x' * 90}" for number in range(120)]


def test_deterministic_virtio_console_repeats_exactly(kernel):
    def session() -> tuple[int, str]:
        console = io.BytesIO()
        status = launch(32, kernel, [], console=console, deterministic=True, virtio_console=True,
                        console_input=io.BytesIO(b"echo same\nticks\n"))
        return status, console.getvalue().decode()

    first, second = session(), session()
    assert first[0] == EXIT_POWEROFF and first == second
    assert "lguest$ echo same\nsame\n" in first[1]


class Gadget(VirtioDevice):
    """A device the kernel has no driver for: a virtio GPU, ID 16, that never gets a request."""

    device_id = 16
    name = "virtio-gpu"
    queue_sizes = (8,)

    def handle(self, queue, chain) -> int:
        raise AssertionError("nobody drives this device")


def test_a_device_without_a_driver_is_acknowledged_and_left_alone(kernel):
    memory = make_memory(32)
    entry = load_kernel(memory, kernel)
    pgdir = build_page_tables(memory)
    gadget = Gadget(base=MMIO_BASE, irq=2)
    write_boot_page(memory, pgdir, "", [gadget.boot_entry()])
    console = io.BytesIO()
    host = Host(memory, console=console, deterministic=True)
    outcome = boot(host, [gadget], entry, pgdir)
    assert outcome.kind == "poweroff", outcome
    assert console.getvalue().decode().splitlines()[1] == (
        "virtio: unknown device at 0xd0000000, line 2: no driver")
    assert gadget.status == 1  # ACKNOWLEDGE, and nothing more


# The terminal: a pseudo-terminal stands in for the Hero's.

class Terminal:
    """``lguest run --console=virtio`` on a pty: keys in through the master, the screen out."""

    def __init__(self, kernel: Path, *flags: str, preexec_fn=None):
        self.master, self.slave = os.openpty()
        self.before = termios.tcgetattr(self.slave)
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lguest", "run", "--console=virtio", *flags, "32", str(kernel)],
            stdin=self.slave, stdout=self.slave, stderr=subprocess.PIPE, cwd=ROOT, env=env,
            preexec_fn=preexec_fn)
        self.screen = b""

    def wait_for(self, text: bytes, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while text not in self.screen and time.monotonic() < deadline:
            if select.select([self.master], [], [], 0.2)[0]:
                self.screen += os.read(self.master, 4096)
        assert text in self.screen, self.screen

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def finish(self) -> tuple[int, str]:
        try:
            status = self.process.wait(timeout=60)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        error = self.process.stderr.read().decode()
        self.process.stderr.close()
        return status, error

    def settings(self) -> list:
        return termios.tcgetattr(self.slave)

    def close(self) -> None:
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def terminal(kernel):
    made = []

    def start(*flags: str, preexec_fn=None) -> Terminal:
        made.append(Terminal(kernel, *flags, preexec_fn=preexec_fn))
        return made[-1]

    yield start
    for term in made:
        if term.process.poll() is None:
            term.process.kill()
            term.process.wait()
        term.close()


def test_the_terminal_is_quiet_while_the_guest_runs_and_restored_after(terminal):
    term = terminal()
    term.wait_for(b"lguest$ ")
    during = term.settings()
    assert not during[3] & (termios.ICANON | termios.ECHO)  # each key at once, echoed by the guest
    assert not during[3] & termios.IEXTEN and not during[0] & termios.IXON  # Ctrl-V, Ctrl-S: keys
    assert during[3] & termios.ISIG and during[6][termios.VINTR] == b"\x03"  # Ctrl-C stops us
    assert during[6][termios.VSUSP] == during[6][termios.VQUIT] == b"\0"  # but Ctrl-Z, Ctrl-\ don't
    term.type(b"echo hi\x7fo\r")  # Enter sends a carriage return; the terminal makes it a newline
    term.wait_for(b"echo hi\x08 \x08o\r\nho\r\n")
    term.type(b"poweroff\r")
    assert term.finish() == (EXIT_POWEROFF, "")
    assert term.settings() == term.before


def test_ctrl_d_ends_the_session_and_restores_the_terminal(terminal):
    term = terminal()
    term.wait_for(b"lguest$ ")
    term.type(b"\x04")
    assert term.finish() == (EXIT_POWEROFF, "")
    assert term.settings() == term.before


def test_a_panicking_guest_restores_the_terminal(terminal):
    term = terminal()
    term.wait_for(b"lguest$ ")
    term.type(b"crash\r")
    assert term.finish() == (EXIT_POWEROFF, "")
    term.wait_for(b"Kernel panic: page fault")  # its last words went out through the device
    assert term.settings() == term.before


def test_ctrl_c_and_a_timeout_restore_the_terminal(terminal):
    term = terminal()
    term.wait_for(b"lguest$ ")
    term.process.send_signal(signal.SIGINT)
    status, error = term.finish()
    assert (status, error) == (EXIT_KILLED, "lguest: guest killed: stopped by the host: "
                                            "interrupted by Ctrl-C\n")
    assert term.settings() == term.before
    late = terminal("--timeout=3")
    late.wait_for(b"lguest$ ")
    status, error = late.finish()
    assert status == EXIT_KILLED and "timed out after 3 seconds" in error
    assert late.settings() == late.before


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_killing_signal_restores_the_terminal_and_still_kills(terminal, number):
    term = terminal()
    term.wait_for(b"lguest$ ")
    assert term.settings() != term.before  # raw while the guest runs
    term.process.send_signal(number)
    status, _ = term.finish()
    assert status == -number  # died of the signal it was sent, as its parent expects
    assert term.settings() == term.before


def test_an_ignored_hangup_stays_ignored(terminal):
    # nohup's arrangement: SIGHUP ignored before the Launcher starts (exec keeps it ignored).
    term = terminal(preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    term.wait_for(b"lguest$ ")
    term.process.send_signal(signal.SIGHUP)
    term.type(b"echo still here\r")
    term.wait_for(b"still here\r\n")
    assert term.settings() != term.before  # the hangup did not even tidy up: it never happened
    term.type(b"poweroff\r")
    assert term.finish() == (EXIT_POWEROFF, "")
    assert term.settings() == term.before
