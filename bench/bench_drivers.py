"""Benchmarks for the virtio devices and the Guest's drivers, each against a baseline in the same run.

Rows (``rows(repeats, quick)`` returns one dict per figure, made by common.py's ``row()``:
the median of ``repeats`` rounds, each round running the figure and its baseline once,
interleaved as in the other modules):

- virtio-blk sequential read and write seen from inside the Guest: the book's kernel booted in
  this process with a 64 MiB image as its disk (32 MiB in quick mode), running `blk bench
  write N` twice (the second, which does not refill its buffer, counts) then `blk bench read N`
  five times (4 MiB requests, the write ending in a FLUSH), timed by the Guest on the Host's
  clock, the median read counting; baseline: os.pwrite+fsync / os.pread (median of five passes)
  of the same file with the same 4 MiB request size, in the same round; ratio = guest MB/s /
  host MB/s (target 0.25);
- exits per virtio-blk request inside the Guest: value = the Host's exits between the shell's
  prompts around the counted bench command, baseline = the requests that command completed
  (the write's FLUSH included), ratio = exits per request, lower is better. A request costs
  about one exit, for its notify and the interrupt that answers it; on top come timer
  stops and the few exits of the shell reading the command and printing its answer,
  which the requests amortize (16 of them, 8 in quick mode). The count is taken when a
  prompt's bytes reach the Host's console, so an exit can land on either side of a
  command's boundary, and a run has shown 15 exits for 16 reads. Target at most 2;
- network frames per second between two guests in one Launcher on its switch: `net flood N MAC`
  in guest 0 (3000 pings, 300 in quick mode), every ping answered by guest 1's interrupt
  handler, pings + pongs over the time the Guest measured on the Host's clock; baseline: the
  same switch driven from Python by two TestDrivers with no CPU at all (frames of 1 KB, one at
  a time); ratio = guest / device (target at least 0.05: two emulated CPUs, a ping protocol and
  an interrupt per frame are allowed twenty times the cost of Python alone);
- the device side alone, through TestDriver with no CPU: virtio-blk 64 KiB reads and writes
  against os.pread/os.pwrite of the same file (32 MiB, 4 MiB in quick mode; target at least
  0.1), and the device-level switch's frames/s (20,000 frames, 2,000 in quick mode) against
  the same 1 KB frames sent and received one at a time through an AF_UNIX datagram socket
  pair, the operating system's own way of handing a frame from one place to another (target
  at least 0.02: per frame the switch pays for both ends in Python, the TestDriver offering
  and collecting buffers as well as the two devices, where the kernel pays two system calls).

Run with `make bench`, `python bench/run.py [--quick] bench_drivers` or
`python bench/bench_drivers.py [--quick] [--repeats N]`.
"""

from __future__ import annotations

import io
import os
import re
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved, row  # noqa: E402

from lguest.drivers import Block, Net, Switch
from lguest.drivers.block import T_IN, T_OUT
from lguest.drivers.driver import TestDriver, block_request
from lguest.guest import build_kernel
from lguest.host.core import Host
from lguest.host.hypercalls import EarlyConsole
from lguest.launcher import EXIT_POWEROFF, boot, launch, machine_and_devices
from lguest.memory import GuestMemory

ROOT = Path(__file__).resolve().parents[1]
CHUNK = 64 * 1024  # the device-side benchmark's request size
GUEST_REQUEST = 4 << 20  # BENCH_SECTORS in the guest's virtio.c
PASSES = 5  # reads of the whole disk per guest run (and per host baseline): their median counts
PROMPT = b"lguest$ "
# image_mb: the device-side image; frames: through the device-level switch; guest_mb: the
# in-guest disk (64 MiB: 16 requests of 4 MiB); flood: pings between the two guests.
SIZES = {False: {"image_mb": 32, "frames": 20_000, "guest_mb": 64, "flood": 3000},
         True: {"image_mb": 4, "frames": 2_000, "guest_mb": 32, "flood": 300}}


# virtio-blk inside the Guest

class PromptExits(io.RawIOBase):
    """A console that notes the Host's exit count each time the shell prompts."""

    def __init__(self):
        self.data = bytearray()
        self.host = None
        self.exits_at_prompt: list[int] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.data += data
        while self.data.count(PROMPT) > len(self.exits_at_prompt):
            self.exits_at_prompt.append(self.host.exits)
        return len(data)


def guest_blk_run(kernel: Path, path: str, sectors: int) -> dict:
    """Boot the kernel with ``path`` as its disk; bench write, then read PASSES times."""
    memory, entry, pgdir, devices = machine_and_devices(32, kernel, [], block=[path])
    script = (f"blk bench write {sectors}\n" * 2 + f"blk bench read {sectors}\n" * PASSES
              + "poweroff\n").encode()
    console = PromptExits()
    host = Host(memory, console=console, console_input=EarlyConsole(io.BytesIO(script), False))
    console.host = host
    outcome = boot(host, devices, entry, pgdir)
    assert outcome.kind == "poweroff", (outcome, console.data)
    text = console.data.decode()
    figures = {}
    prompts = console.exits_at_prompt
    # The first write also fills the buffer with its pattern: the second is the one that counts.
    for name, done, counted, command in (("write", "written", slice(1, 2), 1),
                                         ("read", "read", slice(0, PASSES), 2)):
        found = re.findall(rf"blk bench: (\d+) sectors {done} in (\d+) us", text)
        assert len(found) == (2 if name == "write" else PASSES), text
        assert all(int(count) == sectors for count, _ in found), text
        requests = -(-sectors * 512 // GUEST_REQUEST) + (name == "write")  # and the FLUSH
        figures[name] = {"us": statistics.median(int(us) for _, us in found[counted]),
                         "requests": requests, "exits": prompts[command + 1] - prompts[command]}
    return figures


def host_blk_run(fd: int, size: int, payload: bytes) -> dict:
    """MB/s of os.pwrite+fsync and of os.pread (median of PASSES) of the guest's disk."""
    start = time.perf_counter()
    for offset in range(0, size, GUEST_REQUEST):
        os.pwrite(fd, payload, offset)
    os.fsync(fd)
    write = time.perf_counter() - start
    passes = []
    for _ in range(PASSES):
        start = time.perf_counter()
        for offset in range(0, size, GUEST_REQUEST):
            os.pread(fd, GUEST_REQUEST, offset)
        passes.append(time.perf_counter() - start)
    return {"write": size / write / 1e6, "read": size / statistics.median(passes) / 1e6}


def bench_blk_in_guest(repeats: int, guest_mb: int) -> list[dict]:
    kernel = build_kernel()
    size = guest_mb << 20
    payload = os.urandom(GUEST_REQUEST)
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "guest.img")
        with open(path, "wb") as image:
            image.write(os.urandom(size))
        fd = os.open(path, os.O_RDWR)
        try:
            runs = interleaved({"guest": lambda: guest_blk_run(kernel, path, size // 512),
                                "host": lambda: host_blk_run(fd, size, payload)}, repeats)
        finally:
            os.close(fd)
    # bytes per µs = MB/s; a reading of 0 µs (the Host's clock did not move) measures nothing
    guest = {name: [size / run[name]["us"] if run[name]["us"] else None for run in runs["guest"]]
             for name in ("read", "write")}
    host = {name: [run[name] for run in runs["host"]] for name in ("read", "write")}
    exits = {name: [run[name]["exits"] for run in runs["guest"]] for name in ("read", "write")}
    requests = {name: [run[name]["requests"] for run in runs["guest"]]
                for name in ("read", "write")}
    return [
        row("virtio-blk read in the guest (4 MiB requests) vs host pread", "MB/s",
            guest["read"], host["read"], target=0.25, higher_is_better=True,
            ratio="value/baseline"),
        row("virtio-blk write+flush in the guest (4 MiB requests) vs host pwrite+fsync", "MB/s",
            guest["write"], host["write"], target=0.25, higher_is_better=True,
            ratio="value/baseline"),
        row("exits per virtio-blk read request in the guest (exits vs requests)", "",
            exits["read"], requests["read"], target=2.0),
        row("exits per virtio-blk write request in the guest, flush included (exits vs requests)",
            "", exits["write"], requests["write"], target=2.0),
    ]


# The network: two guests, and the switch without them

def guests_flood(kernel: Path, flood: int) -> float | None:
    """Frames per second between two guests in one Launcher, measured by guest 0."""
    console, errors = io.BytesIO(), io.StringIO()
    script = f"sleep 1\nnet flood {flood} 02:4c:47:00:01:00\n".encode()
    status = launch(32, kernel, [], console=console, console_input=io.BytesIO(script),
                    stderr=errors, guests=2, net=["switch"], timeout=120)
    text = console.getvalue().decode()
    assert status == EXIT_POWEROFF and not errors.getvalue(), (errors.getvalue(), text)
    match = re.search(r"g0\| (?:lguest\$ )*net flood: (\d+) pings, (\d+) pongs in (\d+) us", text)
    assert match and int(match[1]) == int(match[2]) == flood, text
    elapsed = int(match[3])  # 0 µs: the Host's clock did not move, and the flood measured nothing
    return (int(match[1]) + int(match[2])) / elapsed * 1e6 if elapsed else None


def switch_frames_per_second(frames: int) -> float:
    """Frames per second from one device to another through a Switch, driven from Python."""
    switch = Switch()
    macs = [b"\x02LGP\x00\x01", b"\x02LGP\x00\x02"]
    sender, receiver = (Net(switch.port(), mac) for mac in macs)
    tx_driver = TestDriver(sender, GuestMemory(4 << 20))
    rx_driver = TestDriver(receiver, GuestMemory(4 << 20))
    (_, transmit), (receive, _) = tx_driver.setup(), rx_driver.setup()
    sender.start()
    receiver.start()
    frame = macs[1] + macs[0] + b"\x88\xb5" + bytes(1000)
    data, _ = tx_driver.buffer(bytes(12) + frame)
    rooms = [rx_driver.buffer(2048)[0] for _ in range(receive.size)]
    for room in rooms:
        receive.offer([(room, 2048, True)], kick=False)
    receive.kick()
    got = 0
    start = time.perf_counter()
    for _ in range(frames):
        transmit.offer([(data, 12 + len(frame), False)])
        transmit.collect()
        for head, _ in receive.collect():
            got += 1
            receive.offer([(rooms[head], 2048, True)], kick=False)
        receive.kick()
    elapsed = time.perf_counter() - start
    assert got == frames and receiver.dropped == 0
    return got / elapsed


def socket_frames_per_second(frames: int) -> float:
    """Frames per second sent and received one at a time through an AF_UNIX datagram pair."""
    sender, receiver = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    frame = bytes(12 + 6 + 6 + 2 + 1000)
    with sender, receiver:
        start = time.perf_counter()
        for _ in range(frames):
            sender.send(frame)
            receiver.recv(2048)
        return frames / (time.perf_counter() - start)


def bench_net(repeats: int, flood: int, frames: int) -> list[dict]:
    kernel = build_kernel()
    runs = interleaved({"guests": lambda: guests_flood(kernel, flood),
                        "devices": lambda: switch_frames_per_second(frames),
                        "socket": lambda: socket_frames_per_second(frames)}, repeats)
    return [row("frames/s between two guests on one switch (net flood) vs the switch driven "
                "from Python", "frames/s", runs["guests"], runs["devices"], target=0.05,
                higher_is_better=True, ratio="value/baseline"),
            row("frames/s through the switch, device level (TestDriver, 1 KB frames) vs an "
                "AF_UNIX socket pair", "frames/s", runs["devices"], runs["socket"], target=0.02,
                higher_is_better=True, ratio="value/baseline")]


# The device side alone

def bench_blk_device(repeats: int, image_mb: int) -> list[dict]:
    size = image_mb << 20
    chunks = size // CHUNK
    payload = os.urandom(CHUNK)
    figures: dict[str, dict[str, list[float]]] = {
        name: {"device": [], "direct": []} for name in ("read", "write")}
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "bench.img")
        with open(path, "wb") as image:
            image.write(os.urandom(size))
        device = Block(path)
        driver = TestDriver(device, GuestMemory(8 << 20))
        (queue,) = driver.setup()
        fd = os.open(path, os.O_RDWR)

        def device_read():
            for number in range(chunks):
                assert block_request(queue, T_IN, number * CHUNK // 512, CHUNK)[0] == 0

        def device_write():
            for number in range(chunks):
                assert block_request(queue, T_OUT, number * CHUNK // 512, payload)[0] == 0

        def direct_read():
            for number in range(chunks):
                os.pread(fd, CHUNK, number * CHUNK)

        def direct_write():
            for number in range(chunks):
                os.pwrite(fd, payload, number * CHUNK)

        def mb_s(function) -> float:
            start = time.perf_counter()
            function()
            return size / (time.perf_counter() - start) / 1e6

        try:
            figures = interleaved({"device read": lambda: mb_s(device_read),
                                   "direct read": lambda: mb_s(direct_read),
                                   "device write": lambda: mb_s(device_write),
                                   "direct write": lambda: mb_s(direct_write)}, repeats)
        finally:
            os.close(fd)
            device.close()
    return [row(f"virtio-blk {name}, device side (TestDriver, 64 KiB) vs os.p{name}", "MB/s",
                figures[f"device {name}"], figures[f"direct {name}"], target=0.1,
                higher_is_better=True, ratio="value/baseline")
            for name in ("read", "write")]


def rows(repeats: int = 5, quick: bool = False) -> list[dict]:
    """Every figure of this benchmark, medians of ``repeats`` rounds; small sizes if ``quick``."""
    size = SIZES[quick]
    return (bench_blk_in_guest(repeats, size["guest_mb"])
            + bench_net(repeats, size["flood"], size["frames"])
            + bench_blk_device(repeats, size["image_mb"]))


if __name__ == "__main__":
    from run import main
    main(["bench_drivers", *sys.argv[1:]])
