"""The Drivers chapter, the Guest's side: the kernel's own virtio drivers, driven from its shell.

The kernel is booted the way a user boots it, ``python -m lguest run`` with devices on the command
line and the shell's script on stdin, and the image file is checked from the outside afterwards.
"""

from __future__ import annotations

import hashlib
import io
import re
import threading
from pathlib import Path

import pytest

import hostile
from conftest import run_guest
from hostile import EAX, V, hypercall, load, mov, store
from lguest import abi
from lguest.drivers import Block, Net, Switch
from lguest.drivers import mmio as M
from lguest.guest import build_kernel
from lguest.host.core import Host
from lguest.host.hypercalls import EarlyConsole
from lguest.launcher import EXIT_POWEROFF, launch

PROMPT = "lguest$ "
SECTORS = 32


@pytest.fixture(scope="session")
def kernel(tmp_path_factory) -> Path:
    return build_kernel(tmp_path_factory.mktemp("kernel"))


@pytest.fixture
def image(tmp_path) -> Path:
    path = tmp_path / "disk.img"
    path.write_bytes(bytes(range(256)) * 2 * SECTORS)  # 16 KiB: 32 sectors
    return path


def shell(kernel: Path, script: str, *flags: str) -> list[str]:
    """Boot with ``flags``, run ``script``; the boot lines, then each command's output."""
    result = run_guest(kernel, mem=32, input=script, flags=flags)
    assert (result.returncode, result.stderr) == (EXIT_POWEROFF, ""), result.stdout
    boot, *answers, last = result.stdout.split(PROMPT)
    assert last == "\n"
    return [boot, *answers]


def test_boot_lists_the_devices_it_drives(kernel, image):
    boot, = shell(kernel, "", "--rng", f"--block={image}")
    assert boot.splitlines()[1:] == ["virtio: block at 0xd0000000, line 2: 32 sectors, read-write",
                                     "virtio: rng at 0xd0001000, line 3"]


def test_random_prints_hex_from_the_host(kernel):
    boot, first, second, one, usage, too_many = shell(
        kernel, "random 16\nrandom 16\nrandom 1\nrandom\nrandom 65\n", "--rng")
    assert re.fullmatch(r"[0-9a-f]{32}\n", first) and re.fullmatch(r"[0-9a-f]{32}\n", second)
    assert first != second
    assert re.fullmatch(r"[0-9a-f]{2}\n", one)
    assert usage == too_many == "usage: random N (1 to 64 bytes)\n"


def test_blk_write_then_read_reaches_the_image(kernel, image):
    boot, info, write, read, again = shell(
        kernel, "blk info\nblk write 3 hello\nblk read 3\nblk info\n", f"--block={image}")
    assert info == "blk: 32 sectors (16 KiB), read-write, flush; 0 interrupts so far\n"
    # Three requests (write, flush, read) each raise the device's line, but the Host delivers a
    # line raised inside a register write when the CPU next stops: two raised before that are
    # one interrupt, as with a level-triggered line (book/host.md, "Time").
    assert re.fullmatch(r"blk: 32 sectors \(16 KiB\), read-write, flush; [123] interrupts so far\n", again)
    assert write == "blk write: sector 3: 5 bytes and 507 zeros, flushed\n"
    lines = read.splitlines()
    assert lines[0] == "0000  68 65 6c 6c 6f" + " 00" * 11 + "  |hello...........|"
    assert len(lines) == 4
    sector = image.read_bytes()[3 * 512:4 * 512]
    assert sector == b"hello".ljust(512, b"\0")
    assert image.read_bytes()[:3 * 512] == (bytes(range(256)) * 6)  # its neighbours untouched


def test_blk_read_shows_what_the_image_holds(kernel, image):
    boot, read = shell(kernel, "blk read 1\n", f"--block={image}")
    first = read.splitlines()[0]
    assert first == "0000  " + " ".join(f"{b:02x}" for b in range(16)) + "  |................|"


def test_a_read_beyond_the_disk_is_an_io_error_and_the_shell_carries_on(kernel, image):
    boot, beyond, usage, still = shell(kernel, f"blk read {SECTORS}\nblk read\necho still here\n",
                                       f"--block={image}")
    assert beyond == f"blk read: sector {SECTORS}: I/O error\n"
    assert usage == ("usage: blk [N] info | blk [N] read SECTOR | blk [N] write SECTOR TEXT"
                     " | blk [N] bench read|write SECTORS\n")
    assert still == "still here\n"


def test_a_read_only_disk_refuses_writes(kernel, image):
    before = hashlib.sha256(image.read_bytes()).hexdigest()
    boot, info, write, read = shell(kernel, "blk info\nblk write 0 scribble\nblk read 0\n",
                                    f"--read-only-block={image}")
    assert "32 sectors, read-only" in boot
    assert info == "blk: 32 sectors (16 KiB), read-only, flush; 0 interrupts so far\n"
    assert write == "blk write: the disk is read-only\n"
    assert "scribble" not in read
    assert hashlib.sha256(image.read_bytes()).hexdigest() == before


def test_two_disks_each_get_their_own_writes(kernel, image, tmp_path):
    spare = tmp_path / "spare.img"
    spare.write_bytes(bytes(64 * 512))
    sealed = tmp_path / "sealed.img"
    sealed.write_bytes(b"do not touch".ljust(16 * 512, b"\0"))
    before = hashlib.sha256(sealed.read_bytes()).hexdigest()
    script = ("blk info\nblk 1 write 5 second disk\nblk 1 info\nblk 0 write 5 first disk\n"
              "blk write 6 still the first\nblk 2 write 0 scribble\nblk 2 read 0\nblk info\n")
    boot, info, write1, info1, write0, write_default, refused, read2, again = shell(
        kernel, script, f"--block={image}", f"--block={spare}", f"--block={sealed}:ro")
    assert boot.splitlines()[1:] == ["virtio: block at 0xd0000000, line 2: 32 sectors, read-write",
                                     "virtio: block at 0xd0001000, line 3: 64 sectors, read-write",
                                     "virtio: block at 0xd0002000, line 4: 16 sectors, read-only"]
    assert info.splitlines() == [
        "blk 0: 32 sectors (16 KiB), read-write, flush; 0 interrupts so far",
        "blk 1: 64 sectors (32 KiB), read-write, flush; 0 interrupts so far",
        "blk 2: 16 sectors (8 KiB), read-only, flush; 0 interrupts so far"]
    assert write1 == "blk write: sector 5: 11 bytes and 501 zeros, flushed\n"
    # Disk 1's requests rang disk 1's line, and only that one.
    assert re.fullmatch(r"blk 1: 64 sectors \(32 KiB\), read-write, flush; [12] interrupts so far\n",
                        info1)
    assert write0 == "blk write: sector 5: 10 bytes and 502 zeros, flushed\n"
    assert write_default == "blk write: sector 6: 15 bytes and 497 zeros, flushed\n"
    assert refused == "blk write: the disk is read-only\n"
    assert read2.splitlines()[0] == "0000  " + " ".join(f"{b:02x}" for b in b"do not touch") + \
        " 00" * 4 + "  |do not touch....|"
    lines = again.splitlines()
    assert [line.split(";")[0] for line in lines] == [
        "blk 0: 32 sectors (16 KiB), read-write, flush",
        "blk 1: 64 sectors (32 KiB), read-write, flush",
        "blk 2: 16 sectors (8 KiB), read-only, flush"]
    assert all(re.fullmatch(r".*; [1-9]\d* interrupts so far", line) for line in lines)

    first, second = image.read_bytes(), spare.read_bytes()
    assert first[5 * 512:6 * 512] == b"first disk".ljust(512, b"\0")
    assert first[6 * 512:7 * 512] == b"still the first".ljust(512, b"\0")
    assert second[5 * 512:6 * 512] == b"second disk".ljust(512, b"\0")
    assert second == bytes(5 * 512) + b"second disk".ljust(512, b"\0") + bytes(58 * 512)
    assert first[:5 * 512] == (bytes(range(256)) * 10)  # the first disk's neighbours untouched
    assert hashlib.sha256(sealed.read_bytes()).hexdigest() == before


def test_a_disk_that_does_not_exist_is_one_line_and_the_shell_carries_on(kernel, image):
    boot, read, write, info, usage, still, info0 = shell(
        kernel, "blk 1 read 0\nblk 7 write 0 lost\nblk 1 info\nblk 1x read 0\necho still here\n"
                "blk 0 info\n", f"--block={image}")
    assert read == info == "blk 1: no such disk; this guest has 1, numbered from 0\n"
    assert write == "blk 7: no such disk; this guest has 1, numbered from 0\n"
    assert usage.startswith("usage: blk [N] info | ") and usage.count("\n") == 1
    assert still == "still here\n"
    assert info0 == "blk 0: 32 sectors (16 KiB), read-write, flush; 0 interrupts so far\n"
    assert image.read_bytes() == bytes(range(256)) * 2 * SECTORS


def test_without_devices_the_commands_say_so(kernel):
    boot, random, info, read = shell(kernel, "random 16\nblk info\nblk read 0\n")
    assert "virtio" not in boot
    assert random == "random: no entropy device; boot with --rng\n"
    assert info == read == "blk: no block device; boot with --block=IMAGE\n"


def test_the_console_is_device_0_and_the_others_follow(kernel, tmp_path):
    result = run_guest(kernel, mem=32, input="", flags=("--console=virtio", "--rng"))
    assert result.returncode == EXIT_POWEROFF, result.stderr
    assert result.stdout.splitlines()[1:3] == ["virtio: console at 0xd0000000, line 2",
                                               "virtio: rng at 0xd0001000, line 3"]


def test_deterministic_session_in_process(kernel, image):
    def session() -> tuple[int, str]:
        console = io.BytesIO()
        status = launch(32, kernel, [], console=console, deterministic=True, block=[str(image)],
                        console_input=io.BytesIO(b"blk write 2 same\nblk read 2\nticks\n"))
        return status, console.getvalue().decode()

    first, second = session(), session()
    assert first[0] == EXIT_POWEROFF
    assert first == second
    assert "|same............|" in first[1]


def test_blk_bench_writes_then_reads_sequentially(kernel, tmp_path):
    image = tmp_path / "bench.img"
    image.write_bytes(bytes(8300 * 512))  # one full 8192-sector request and a part
    boot, write, read, mem = shell(kernel, "blk bench write 8300\nblk bench read 8300\nmem\n",
                                   f"--block={image}")
    assert re.fullmatch(r"blk bench: 8300 sectors written in \d+ us\n", write), write
    assert re.fullmatch(r"blk bench: 8300 sectors read in \d+ us\n", read), read
    assert int(re.fullmatch(r"memory: 32768 KiB, kernel image \d+ KiB, allocated (\d+) KiB, .*\n",
                            mem)[1]) >= 4096  # the buffer, taken once and kept
    data = image.read_bytes()
    assert data[:8192 * 512] == bytes(range(256)) * 16384 and data[8192 * 512:] == data[:108 * 512]


def test_blk_bench_needs_room_for_its_buffer(kernel, tmp_path):
    image = tmp_path / "bench.img"
    image.write_bytes(bytes(64 * 512))
    result = run_guest(kernel, mem=4, input="blk bench read 64\nblk info\n",
                       flags=(f"--block={image}",))
    assert (result.returncode, result.stderr) == (EXIT_POWEROFF, ""), result.stdout
    boot, bench, info, last = result.stdout.split(PROMPT)
    assert bench == "blk bench: no room for a 4096 KiB buffer\n"
    assert info.startswith("blk: 64 sectors (32 KiB), read-write")


def test_blk_bench_64_sectors(kernel, tmp_path):
    image = tmp_path / "bench.img"
    image.write_bytes(bytes(64 * 512))
    boot, write, read, usage, too_many = shell(
        kernel, "blk bench write 64\nblk bench read 64\nblk bench copy 64\nblk bench read 65\n",
        f"--block={image}")
    assert re.fullmatch(r"blk bench: 64 sectors written in \d+ us\n", write), write
    assert re.fullmatch(r"blk bench: 64 sectors read in \d+ us\n", read), read
    assert usage == "usage: blk bench read|write SECTORS\n"
    assert too_many == "blk bench: the disk has only 64 sectors\n"


# --- DMA coherence: what a device writes, the CPU runs (book/drivers.md, "DMA coherence") -----

SNIPPET = 0x190000  # guest-physical; the guest calls it at PAGE_OFFSET + SNIPPET
RESULTS = 0x3400  # each call's %eax, a word apiece
READY = RESULTS + 0x20  # the guest sets it when its network buffer waits for a frame
BLOCK_RING, NET_RING = 0x10000, 0x30000  # descriptor table; available ring +0x1000; used +0x2000
BLOCK_HEADER, BLOCK_STATUS, NET_HEADER = 0x20000, 0x20010, 0x20100


def returns(value: int) -> bytes:
    """mov $value, %eax; ret: the code the guest runs, and the Host rewrites under it."""
    return b"\xb8" + value.to_bytes(4, "little") + b"\xc3"


def dma_guest(serialize: bytes) -> bytes:
    """Call the snippet; refill it by a block read, by CONSOLE_READ and by a network frame
    that arrives from another thread (seen by polling the used ring, then ``serialize``),
    calling it again after each. Each call's result goes to RESULTS."""
    call = mov(EAX, V + SNIPPET) + b"\xff\xd0"  # call *%eax

    def result(index: int) -> bytes:
        return b"\xa3" + (V + RESULTS + 4 * index).to_bytes(4, "little")  # mov %eax, RESULTS[i]

    def queue(slot: int, ring: int, chain: list[tuple[int, int, int]], flags: int = 0) -> bytes:
        base = M.MMIO_BASE + slot * M.MMIO_SIZE
        registers = [(M.STATUS, 0), (M.STATUS, M.ACKNOWLEDGE | M.DRIVER), (M.DRIVER_FEATURES_SEL, 1),
                     (M.DRIVER_FEATURES, 1), (M.STATUS, M.ACKNOWLEDGE | M.DRIVER | M.FEATURES_OK),
                     (M.QUEUE_SEL, 0), (M.QUEUE_NUM, 8), (M.QUEUE_DESC_LOW, ring),
                     (M.QUEUE_DRIVER_LOW, ring + 0x1000), (M.QUEUE_DEVICE_LOW, ring + 0x2000),
                     (M.QUEUE_READY, 1),
                     (M.STATUS, M.ACKNOWLEDGE | M.DRIVER | M.FEATURES_OK | M.DRIVER_OK)]
        code = b"".join(store(base + register, value) for register, value in registers)
        for index, (address, length, descriptor_flags) in enumerate(chain):
            entry = V + ring + 16 * index
            code += (store(entry, address) + store(entry + 4, 0) + store(entry + 8, length)
                     + store(entry + 12, descriptor_flags, 2) + store(entry + 14, index + 1, 2))
        return code + store(V + ring + 0x1000, flags, 2) + store(V + ring + 0x1000 + 2, 1, 2)

    NEXT, WRITE = 1, 2
    code = call + result(0)
    code += queue(0, BLOCK_RING, [(BLOCK_HEADER, 16, NEXT), (SNIPPET, 512, NEXT | WRITE),
                                  (BLOCK_STATUS, 1, WRITE)])
    code += store(M.MMIO_BASE + M.QUEUE_NOTIFY, 0)  # the read happens inside this store
    code += call + result(1)
    code += hypercall(abi.HYPERCALLS["CONSOLE_READ"], SNIPPET, 16) + call + result(2)
    code += queue(1, NET_RING, [(NET_HEADER, 12, NEXT | WRITE), (SNIPPET, 64, WRITE)], flags=1)
    code += store(V + READY, 1)
    code += b"\x66\x83\x3d" + (V + NET_RING + 0x2002).to_bytes(4, "little") + b"\x00"  # cmpw $0, used.idx
    code += b"\x74\xf6"  # je back to the cmpw: poll, no exit, no interrupt (NO_INTERRUPT is set)
    code += serialize + call + result(3)
    return code


@pytest.mark.parametrize("serialize, forget", [("mmio", "range"), ("cpuid", "range"),
                                               ("mmio", "everything")])
def test_the_cpu_runs_what_devices_wrote_over_code_it_ran(tmp_path, monkeypatch, serialize, forget):
    """Each path fails without DMA coherence: the CPU runs the first snippet four times."""
    if forget == "everything":  # a Unicorn without the range function: flush every translation
        monkeypatch.setattr("lguest.memory.FORGET_RANGE", None)
    status_register = M.MMIO_BASE + M.MMIO_SIZE + M.INTERRUPT_STATUS
    step = {"mmio": load(status_register), "cpuid": b"\x0f\xa2"}[serialize]
    memory = hostile.build(hostile.Case(init=True, handlers={}, devices=True, deterministic=False,
                                        ops=[hostile.Op("raw", (dma_guest(step),))]))
    memory.write(SNIPPET, returns(1))
    image = tmp_path / "code.img"
    image.write_bytes(returns(2).ljust(512, b"\0"))
    switch = Switch()
    wire = switch.port()
    wire.connect(lambda frame: None)
    host = Host(memory, console=io.BytesIO(),
                console_input=EarlyConsole(io.BytesIO(returns(3)), deterministic=True))
    block = Block(image, base=M.MMIO_BASE, irq=M.FIRST_DEVICE_IRQ)
    net = Net(switch.port(), b"\x02\x4c\x47\x00\x00\x01", base=M.MMIO_BASE + M.MMIO_SIZE,
              irq=M.FIRST_DEVICE_IRQ + 1)
    host.add_device(block)
    host.add_device(net)

    def send_when_ready() -> None:  # the frame arrives on this thread, not the CPU's
        for _ in range(1000):
            if memory.read_u32(READY):
                wire.send(returns(4).ljust(64, b"\0"))
                return
            threading.Event().wait(0.01)

    sender = threading.Thread(target=send_when_ready)
    watchdog = threading.Timer(20, host.stop, ("watchdog",))
    sender.start()
    watchdog.start()
    try:
        outcome = host.run(entry=hostile.V + hostile.CODE, stack=hostile.V + hostile.STACK_TOP,
                           boot=abi.BOOT_PAGE, pgdir=hostile.PGDIR)
    finally:
        watchdog.cancel()
        sender.join()
        block.close()
        net.close()
    assert outcome.kind == "poweroff", outcome
    assert [memory.read_u32(RESULTS + 4 * index) for index in range(4)] == [1, 2, 3, 4]
