"""Shared helpers for the test suite, which is grouped by chapter."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def lguest(cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the lguest command as a reader would, from ``cwd``."""
    return subprocess.run([sys.executable, "-m", "lguest", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under book/ and src/, with its bytes."""
    return {path.relative_to(root).as_posix(): path.read_bytes()
            for top in ("book", "src") if (root / top).exists()
            for path in sorted((root / top).rglob("*"))
            if path.is_file() and "__pycache__" not in path.parts}


def write_repo(root: Path, chapters: dict[str, str], toc: str | None = None) -> Path:
    """A minimal book: a cover and the given chapters, listed in chapters.yml."""
    (root / "book").mkdir(parents=True, exist_ok=True)
    (root / "book" / "index.md").write_text("# Cover\n")
    for name, text in chapters.items():
        (root / "book" / name).write_text(text)
    if toc is None:
        entries = "".join(f"  - id: {Path(name).stem}\n    title: {Path(name).stem.title()}\n"
                          f"    file: book/{name}\n" for name in chapters)
        toc = f"cover:\n  id: cover\n  title: Cover\n  file: book/index.md\nchapters:\n{entries}"
    (root / "chapters.yml").write_text(toc)
    return root


@pytest.fixture
def book_copy(tmp_path: Path) -> Path:
    """A copy of this repository's book, chapters.yml, conf.py and package."""
    for name in ("book", "src"):
        shutil.copytree(ROOT / name, tmp_path / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("chapters.yml", "conf.py"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path



JUPYTER_BOOK = Path(sys.executable).parent / "jupyter-book"


def build_book(root: Path) -> str:
    """Render the book under ``root`` as make book does, with Jupyter Book and warnings as
    errors, into root/_build/html; the build's log."""
    result = subprocess.run([str(JUPYTER_BOOK), "build", str(root / "book"), "-W", "--keep-going"],
                            capture_output=True, text=True, timeout=1800, cwd=root)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


@pytest.fixture(scope="session")
def rendered_book(tmp_path_factory) -> tuple[Path, str]:
    """One rendered copy of the book for the whole session: (its root, the first build's log)."""
    root = tmp_path_factory.mktemp("book")
    # bench: the Mastery chapter runs the quick suite; tools/quests: the quests' solutions
    for name in ("book", "src", "bench", "tools/quests"):
        shutil.copytree(ROOT / name, root / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "results"))
    for name in ("chapters.yml", "conf.py", "_config.yml"):
        shutil.copy(ROOT / name, root / name)
    return root, build_book(root)

# --- Test guests: tiny kernels in tests/guests, built with gcc and GNU ld -----

GUESTS = ROOT / "tests" / "guests"
GUEST_RUNTIME = ("runtime/crt0.S", "runtime/lib.c")
GUEST_CFLAGS = ("-m32", "-std=gnu11", "-ffreestanding", "-fno-pic", "-fno-pie", "-nostdlib",
                "-fno-stack-protector", "-fno-asynchronous-unwind-tables", "-fno-builtin",
                "-fcf-protection=none", "-mgeneral-regs-only", "-O2", "-Wall", "-Wextra", "-Werror")
GUEST_LDFLAGS = ("-m", "elf_i386", "-nostdlib", "-static", "--build-id=none", "-z", "noexecstack",
                 "-z", "max-page-size=4096")


def guest_names() -> list[str]:
    """Every guest kept in tests/guests, by name (the file name without .c or .S)."""
    return sorted(path.stem for path in GUESTS.iterdir() if path.suffix in (".c", ".S"))


def build_guest(name_or_source: str, out_dir: Path, lang: str | None = None,
                **defines: str | int) -> Path:
    """Build a guest ELF from tests/guests/NAME.c or NAME.S, or from source text
    (C, or assembler when ``lang="S"`` or the text defines ``main:``), linked with
    the runtime. ``defines`` become -D options. Built once per content and options."""
    import hashlib

    path = next((GUESTS / f"{name_or_source}{ext}" for ext in (".c", ".S")
                 if "\n" not in name_or_source and (GUESTS / f"{name_or_source}{ext}").exists()), None)
    if path is not None:
        stem, suffix, text = path.stem, path.suffix, path.read_text()
    else:
        if lang is None:
            lang = "S" if "main:" in name_or_source else "c"
        stem, suffix, text = "inline", "." + lang, name_or_source
    flags = [f"-D{key}={value}" for key, value in sorted(defines.items())]
    digest = hashlib.sha256()
    for part in (text, suffix, *flags, *GUEST_CFLAGS, *GUEST_LDFLAGS):
        digest.update(part.encode() + b"\0")
    for support in (*GUEST_RUNTIME, "guest.h", "lguest.h", "guest.ld"):
        digest.update((GUESTS / support).read_bytes() + b"\0")
    out_dir.mkdir(parents=True, exist_ok=True)
    elf = out_dir / f"{stem}-{digest.hexdigest()[:16]}.elf"
    if elf.exists():
        return elf
    work = out_dir / f"{elf.stem}.build"
    work.mkdir(exist_ok=True)
    source = work / f"{stem}{suffix}"
    source.write_text(text)
    objects = []
    for unit in (*(GUESTS / part for part in GUEST_RUNTIME), source):
        obj = work / f"{unit.stem}.o"
        compile_ = subprocess.run(["gcc", *GUEST_CFLAGS, *flags, f"-I{GUESTS}", "-c", str(unit),
                                   "-o", str(obj)], check=False, capture_output=True, text=True)
        if compile_.returncode:
            raise RuntimeError(f"gcc failed on {unit.name}:\n{compile_.stdout}{compile_.stderr}")
        objects.append(str(obj))
    partial = work / elf.name
    link = subprocess.run(["ld", *GUEST_LDFLAGS, "-T", str(GUESTS / "guest.ld"), "-o", str(partial),
                           *objects], check=False, capture_output=True, text=True)
    if link.returncode or link.stderr.strip():
        raise RuntimeError(f"ld failed or warned for {stem}:\n{link.stderr}")
    partial.replace(elf)  # atomically: a half-written ELF is never found in the cache
    return elf


@pytest.fixture(scope="session")
def guest_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("guests")


@pytest.fixture
def guest(guest_cache: Path):
    """``guest(name_or_source, lang=None, **defines) -> Path`` of a built ELF."""
    def build(name_or_source: str, lang: str | None = None, **defines: str | int) -> Path:
        return build_guest(name_or_source, guest_cache, lang, **defines)
    return build


def run_guest(elf: Path, *args: str, mem: int = 16, timeout: float = 60,
              flags: tuple[str, ...] | list[str] = (), input: str = "") -> subprocess.CompletedProcess:
    """``python -m lguest run [flags] MEM elf args...`` from the repository root."""
    import os

    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.run([sys.executable, "-m", "lguest", "run", *flags, str(mem), str(elf), *args],
                          check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
                          input=input)


def free_ports(n: int) -> list[int]:
    """``n`` UDP ports on 127.0.0.1 that nobody was using a moment ago."""
    import socket

    sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


KILLED = "lguest: guest killed: "


def assert_killed(result: subprocess.CompletedProcess, stdout: str = "") -> str:
    """Exit status 4, ``stdout`` exactly, and one line on stderr naming the reason."""
    assert (result.returncode, result.stdout) == (4, stdout), result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(KILLED), result.stderr
    return lines[0][len(KILLED):]


class ConsoleCapture:
    """A console stream for the Host that takes text or bytes."""

    def __init__(self):
        self.data = bytearray()

    def write(self, data) -> int:
        self.data += data.encode() if isinstance(data, str) else bytes(data)
        return len(data)

    def flush(self) -> None:
        pass

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


def load_guest(elf: Path, mem_mb: int = 16):
    """Do the Launcher's job by hand, for driving the Host directly: guest memory
    with the ELF's segments at their physical addresses, page tables mapping all
    of it at 0 and at PAGE_OFFSET (at the top of memory), and the boot page.
    Returns the GuestMemory and the keyword arguments for ``Host.run``."""
    from elftools.elf.elffile import ELFFile

    from lguest import abi
    from lguest.memory import GuestMemory

    size = mem_mb << 20
    memory = GuestMemory(size)
    with open(elf, "rb") as stream:
        image = ELFFile(stream)
        entry = image.header.e_entry
        for segment in image.iter_segments():
            if segment["p_type"] == "PT_LOAD":
                memory.write(segment["p_paddr"], segment.data())
    tables = (size + (4 << 20) - 1) >> 22
    pgdir = size - (tables + 1) * abi.PAGE_SIZE
    for t in range(tables):
        table = pgdir + (t + 1) * abi.PAGE_SIZE
        for i in range(1024):
            frame = (t * 1024 + i) * abi.PAGE_SIZE
            if frame < size:
                memory.write_u32(table + 4 * i, frame | 0x3)
        memory.write_u32(pgdir + 4 * t, table | 0x3)
        memory.write_u32(pgdir + 4 * ((abi.PAGE_OFFSET >> 22) + t), table | 0x3)
    fields = {"magic": abi.BOOT_MAGIC, "version": abi.BOOT_VERSION, "mem_size": size,
              "page_offset": abi.PAGE_OFFSET, "pgdir": pgdir,
              "cmdline": abi.BOOT_PAGE + abi.BOOT_CMDLINE, "cmdline_len": 0, "device_count": 0}
    for index, name in enumerate(abi.BOOT_FIELDS):
        memory.write_u32(abi.BOOT_PAGE + 4 * index, fields[name])
    return memory, {"entry": entry, "stack": abi.PAGE_OFFSET + abi.BOOT_PAGE,
                    "boot": abi.BOOT_PAGE, "pgdir": pgdir}


HOST_SCRIPT = r"""
import json, sys, threading, time
sys.path[:0] = [sys.argv[1], sys.argv[2]]
from conftest import ConsoleCapture, Doorbell, load_guest
from lguest import abi
from lguest.host.core import Host

elf, options = sys.argv[3], json.loads(sys.argv[4])
stop_after, deterministic = options["stop_after"], options["deterministic"]
memory, run = load_guest(elf)
console = ConsoleCapture()
host = Host(memory, console=console, deterministic=deterministic)
if options["doorbell"] is not None:
    Doorbell(options["doorbell"]).plug_into(host, memory)
stopped = []

def started():
    deadline = time.monotonic() + 30
    while not console.text and time.monotonic() < deadline:
        time.sleep(0.01)

def stopper():
    started()
    time.sleep(stop_after)
    stopped.append(time.monotonic())
    host.stop("stopped by the test")

def raiser(line, period):
    started()
    while host.dead is None and "done" not in console.text:
        host.raise_interrupt(line)
        time.sleep(period)

if stop_after >= 0:
    threading.Thread(target=stopper, daemon=True).start()
if options["raise_every"] is not None:
    threading.Thread(target=raiser, args=options["raise_every"], daemon=True).start()
outcome = host.run(**run)
print(json.dumps({"kind": outcome.kind, "reason": outcome.reason, "console": console.text,
                  "after_stop": time.monotonic() - stopped[0] if stopped else None,
                  "brake_stops": host.brake.stops}))
"""


class Doorbell:
    """A device of one register for test guests: a store to it raises its line on the
    CPU's own thread, as a QueueNotify that finishes its request at once would."""

    base = 0xD0000000

    def __init__(self, line: int):
        self.line = line

    def plug_into(self, host, memory) -> None:
        """Plug into ``host`` and list the device in the boot page, as the Launcher would."""
        from lguest import abi

        host.add_device(self)
        memory.write_u32(abi.BOOT_PAGE + 4 * abi.BOOT_FIELDS.index("device_count"), 1)
        for index, value in enumerate(self.boot_entry()):
            memory.write_u32(abi.BOOT_PAGE + abi.BOOT_DEVICES + 4 * index, value)

    def attach(self, uc, memory, raise_interrupt, kill) -> None:
        self.raise_interrupt = raise_interrupt
        uc.mmio_map(self.base, 0x1000, lambda *_: 0, None, self._on_write, None)

    def _on_write(self, uc, offset, size, value, _) -> None:
        self.raise_interrupt(self.line)

    def boot_entry(self) -> tuple[int, int, int, int]:
        return (0, self.base, 0x1000, self.line)

    def may_wake(self) -> bool:
        return False


def run_host(elf: Path, stop_after: float | None = None, deterministic: bool = False,
             timeout: float = 60, doorbell: int | None = None,
             raise_every: tuple[int, float] | None = None) -> dict:
    """Drive ``lguest.host.core.Host`` directly (in a child process, so that a
    hung guest cannot hang the tests), on memory prepared by ``load_guest``.
    With ``stop_after``, another thread calls ``host.stop("stopped by the test")``
    that many seconds after the guest's first console output. ``doorbell``: plug in
    a ``Doorbell`` on that line. ``raise_every=(line, seconds)``: another thread raises
    the line that often, from the guest's first output until it prints "done".
    Returns the outcome's kind and reason, the console text, the seconds from the
    stop to the end of the run, and how many stops the brake made."""
    import json

    options = {"stop_after": -1 if stop_after is None else stop_after, "deterministic": deterministic,
               "doorbell": doorbell, "raise_every": raise_every}
    result = subprocess.run([sys.executable, "-c", HOST_SCRIPT, str(ROOT / "src"), str(ROOT / "tests"),
                             str(elf), json.dumps(options)],
                            check=False, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def header_defines(path: Path) -> dict[str, int]:
    """The numeric #defines of a C header, by name."""
    import re

    return {name: int(value, 0) for name, value in
            re.findall(r"^#define\s+(\w+)\s+(0x[0-9A-Fa-f]+|\d+)\s*$", path.read_text(), re.MULTILINE)}


def abi_numbers() -> dict[str, int]:
    """Every number of lguest.abi, under the names a C header gives them."""
    from lguest import abi

    numbers = {name: value for name, value in vars(abi).items() if name.isupper() and type(value) is int}
    numbers |= {f"LHCALL_{name}": number for name, number in abi.HYPERCALLS.items()}
    numbers |= {f"LGUEST_DATA_{field.upper()}": offset for field, offset in abi.LGUEST_DATA.items()}
    numbers |= {f"BOOT_{field.upper()}_OFF": 4 * index for index, field in enumerate(abi.BOOT_FIELDS)}
    return numbers


def pytest_terminal_summary(terminalreporter):
    """The hostile guests' outcomes, by kind, when this run had any (tests/test_hostile.py)."""
    hostile = sys.modules.get("hostile")
    if hostile is not None and hostile.TALLY.total():
        import io

        text = io.StringIO()
        hostile.TALLY.report(text)
        terminalreporter.write_sep("-", "hostile guests")
        terminalreporter.write(text.getvalue())


# --- Progress: no test reads or writes the real reader's record (see Mastery) -------

def _private_state() -> None:
    import atexit
    import os
    import tempfile

    state = tempfile.mkdtemp(prefix="lguest-test-state-")
    atexit.register(shutil.rmtree, state, True)
    os.environ["LGUEST_STATE_DIR"] = state  # inherited by every command, guest and kernel we start
    os.environ.pop("LGUEST_BOOK_BUILD", None)


_private_state()


# --- No process outlives the run: a check at its end (issue 18) ---------------------

RUN_MARK = f"LGUEST_TEST_RUN={os.getpid()}-{os.urandom(6).hex()}"
os.environ["LGUEST_TEST_RUN"] = RUN_MARK.partition("=")[2]  # inherited by all we start, however far it strays
LEAVE_ALONE = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")  # end with pytest itself
TESTS_STARTED: list[tuple[float, str]] = []  # (seconds since boot, test id), one per test, in order


@dataclass(frozen=True)
class Process:
    pid: int
    ppid: int
    pgid: int
    sid: int
    state: str  # Z for a zombie: dead, only not yet waited for
    started: float  # seconds since boot
    command: str

    @property
    def alive(self) -> bool:
        return self.state not in "ZXx"


def processes() -> dict[int, Process]:
    """Every process in /proc (Linux), by pid. One that ends while we look is left out."""
    ticks = os.sysconf("SC_CLK_TCK")
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"{entry.path}/stat", "rb") as stat, open(f"{entry.path}/cmdline", "rb") as cmdline:
                status, command = stat.read().decode(errors="replace"), cmdline.read()
        except OSError:
            continue
        fields = status[status.rindex(")") + 2:].split()  # after the name, which may hold anything
        table[int(entry.name)] = Process(
            int(entry.name), int(fields[1]), int(fields[2]), int(fields[3]), fields[0],
            int(fields[19]) / ticks, command.replace(b"\0", b" ").decode(errors="replace").strip())
    return table


def of_this_run(process: Process, table: dict[int, Process]) -> bool:
    """Started by this run: it carries the run's mark in its environment (which an orphan
    keeps, and a new session too), or it descends from pytest by its parents."""
    try:
        with open(f"/proc/{process.pid}/environ", "rb") as environ:
            if RUN_MARK.encode() in environ.read().split(b"\0"):
                return True
    except OSError:
        pass  # somebody else's process, or gone already
    seen, pid = set(), process.ppid
    while pid in table and pid not in seen:
        if pid == os.getpid():
            return True
        seen.add(pid)
        pid = table[pid].ppid
    return False


def leftovers(grace: float = 5.0) -> list[Process]:
    """The live processes of this run other than pytest and its helpers, after giving
    them ``grace`` seconds to finish ending."""
    deadline = time.monotonic() + grace
    while True:
        table = processes()
        left = [process for process in table.values()
                if process.pid != os.getpid() and process.alive
                and not any(helper in process.command for helper in LEAVE_ALONE)
                and of_this_run(process, table)]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.2)


def started_during(process: Process) -> str:
    """The test, or the tests, running when ``process`` started. /proc counts in ticks
    (10 ms), so a process started near one test's end names the next test as well."""
    earliest, latest = process.started, process.started + 1 / os.sysconf("SC_CLK_TCK")
    during = [test for (began, test), (ended, _) in zip(TESTS_STARTED, [*TESTS_STARTED[1:], (float("inf"), "")])
              if began < latest and ended > earliest]
    return " or ".join(during) or "before the first test"


def pytest_runtest_logstart(nodeid, location):
    TESTS_STARTED.append((time.clock_gettime(time.CLOCK_BOOTTIME), nodeid))


@pytest.fixture(scope="session", autouse=True)
def no_process_left_behind():
    """Fail the run, naming them, if processes it started are still alive at its end; and kill them."""
    yield
    if not Path("/proc/self/stat").exists():
        return  # no /proc to look in (not Linux)
    left = leftovers()
    for process in left:
        try:
            os.kill(process.pid, signal.SIGKILL)
        except OSError:
            pass
    if left:
        pytest.fail(f"{len(left)} process(es) of this test run outlived it (now killed):\n" + "\n".join(
            f"  pid {process.pid}, started during {started_during(process)}: {process.command[:300]}"
            for process in left), pytrace=False)
