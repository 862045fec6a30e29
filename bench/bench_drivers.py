"""Benchmarks for the virtio devices and the Guest's drivers, each against a baseline in the same run.

Rows (``rows(repeats)`` returns one dict per figure: the median of ``repeats`` runs, each run
measuring the figure and its baseline back to back):

- virtio-blk sequential read and write seen from inside the Guest: the book's kernel booted in
  this process with a 64 MiB image as its disk, running `blk bench write N` twice (the second,
  which does not refill its buffer, counts) then `blk bench read N` five times (4 MiB requests, the write ending in a FLUSH), timed by the Guest on the Host's
  clock, the median read counting; baseline: os.pwrite+fsync / os.pread (median of five passes)
  of the same file with the same 4 MiB request size, in the same run, right after the guest;
  ratio = guest MB/s / host MB/s (target 0.25);
- exits per virtio-blk request inside the Guest: the Host's exit count between the shell's
  prompts around each bench command, divided by its requests (no baseline; 1 would be the
  notify alone; target at most 2);
- network frames per second between two guests in one Launcher on its switch: `net flood N MAC`
  in guest 0, every ping answered by guest 1's interrupt handler, pings + pongs over the time the
  Guest measured on the Host's clock; baseline: the same switch driven from Python by two
  TestDrivers with no CPU at all (frames of 1 KB, one at a time); ratio = guest / device
  (target at least 0.05: two emulated CPUs, a ping protocol and an interrupt per frame are
  allowed twenty times the cost of Python alone);
- the device side alone, through TestDriver with no CPU: virtio-blk 64 KiB reads and writes
  against os.pread/os.pwrite of the same file (target at least 0.1), and the device-level
  switch frames/s (target at least 10,000).

Run with `make bench` or `python bench/bench_drivers.py [REPEATS]`: a table on stdout, and the
rows in bench/results/drivers.json.
"""

from __future__ import annotations

import io
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lguest.drivers import Block, Net, Switch, make_devices
from lguest.drivers.block import T_IN, T_OUT
from lguest.drivers.driver import TestDriver, block_request
from lguest.guest import build_kernel
from lguest.host.core import Host
from lguest.host.hypercalls import EarlyConsole
from lguest.launcher import EXIT_POWEROFF, boot, launch, make_machine
from lguest.memory import GuestMemory

ROOT = Path(__file__).resolve().parents[1]
IMAGE_MB = 32  # the device-side benchmark's image
CHUNK = 64 * 1024  # and its request size
FRAMES = 20_000  # frames for the device-level switch benchmark
GUEST_MB = 64  # the in-guest benchmark's disk: 131072 sectors, 16 requests of 4 MiB
GUEST_REQUEST = 4 << 20  # BENCH_SECTORS in the guest's virtio.c
PASSES = 5  # reads of the whole disk per guest run (and per host baseline): their median counts
FLOOD = 3000  # pings in the two guests' flood
PROMPT = b"lguest$ "


def row(name: str, unit: str, values: list[float], baselines: list[float] | None = None,
        target: float | None = None, higher_is_better: bool = True) -> dict:
    """One figure: medians of the runs, and the spread of the ratio (or of the value)."""
    value = statistics.median(values)
    baseline = ratio = None
    spread_of = values
    if baselines is not None:
        baseline = statistics.median(baselines)
        ratios = [v / b for v, b in zip(values, baselines)]
        ratio, spread_of = statistics.median(ratios), ratios
    middle = statistics.median(spread_of)
    spread = (max(spread_of) - min(spread_of)) / middle if middle else 0.0
    return {"name": name, "unit": unit, "value": value, "baseline": baseline, "ratio": ratio,
            "spread": spread, "target": target, "higher_is_better": higher_is_better}


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
    memory, entry, pgdir, devices = make_machine(32, kernel, [], block=[path])
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


def bench_blk_in_guest(repeats: int) -> list[dict]:
    kernel = build_kernel()
    size = GUEST_MB << 20
    payload = os.urandom(GUEST_REQUEST)
    runs: dict[str, dict[str, list[float]]] = {
        name: {"guest": [], "host": [], "exits": []} for name in ("read", "write")}
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "guest.img")
        with open(path, "wb") as image:
            image.write(os.urandom(size))
        fd = os.open(path, os.O_RDWR)
        try:
            for _ in range(repeats):
                figures = guest_blk_run(kernel, path, size // 512)
                start = time.perf_counter()
                for offset in range(0, size, GUEST_REQUEST):
                    os.pwrite(fd, payload, offset)
                os.fsync(fd)
                host_write = time.perf_counter() - start
                passes = []
                for _ in range(PASSES):
                    start = time.perf_counter()
                    for offset in range(0, size, GUEST_REQUEST):
                        os.pread(fd, GUEST_REQUEST, offset)
                    passes.append(time.perf_counter() - start)
                host_read = statistics.median(passes)
                for name, host_seconds in (("write", host_write), ("read", host_read)):
                    run = runs[name]
                    run["guest"].append(size / figures[name]["us"])  # bytes per µs = MB/s
                    run["host"].append(size / host_seconds / 1e6)
                    run["exits"].append(figures[name]["exits"] / figures[name]["requests"])
        finally:
            os.close(fd)
    return [
        row("virtio-blk read in the guest (4 MiB requests) vs host pread", "MB/s",
            runs["read"]["guest"], runs["read"]["host"], target=0.25),
        row("virtio-blk write+flush in the guest (4 MiB requests) vs host pwrite+fsync", "MB/s",
            runs["write"]["guest"], runs["write"]["host"], target=0.25),
        row("exits per virtio-blk read request in the guest", "exits/request",
            runs["read"]["exits"], target=2.0, higher_is_better=False),
        row("exits per virtio-blk write request in the guest (flush included)", "exits/request",
            runs["write"]["exits"], target=2.0, higher_is_better=False),
    ]


# The network: two guests, and the switch without them

def guests_flood(kernel: Path) -> float:
    """Frames per second between two guests in one Launcher, measured by guest 0."""
    console, errors = io.BytesIO(), io.StringIO()
    script = f"sleep 1\nnet flood {FLOOD} 02:4c:47:00:01:00\n".encode()
    status = launch(32, kernel, [], console=console, console_input=io.BytesIO(script),
                    stderr=errors, guests=2, net=["switch"], timeout=120)
    text = console.getvalue().decode()
    assert status == EXIT_POWEROFF and not errors.getvalue(), (errors.getvalue(), text)
    match = re.search(r"g0\| (?:lguest\$ )*net flood: (\d+) pings, (\d+) pongs in (\d+) us", text)
    assert match and int(match[1]) == int(match[2]) == FLOOD, text
    return (int(match[1]) + int(match[2])) / int(match[3]) * 1e6


def switch_frames_per_second() -> float:
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
    for _ in range(FRAMES):
        transmit.offer([(data, 12 + len(frame), False)])
        transmit.collect()
        for head, _ in receive.collect():
            got += 1
            receive.offer([(rooms[head], 2048, True)], kick=False)
        receive.kick()
    elapsed = time.perf_counter() - start
    assert got == FRAMES and receiver.dropped == 0
    return got / elapsed


def bench_net(repeats: int) -> list[dict]:
    kernel = build_kernel()
    guests, devices = [], []
    for _ in range(repeats):
        guests.append(guests_flood(kernel))
        devices.append(switch_frames_per_second())
    return [row("frames/s between two guests on one switch (net flood) vs the switch driven "
                "from Python", "frames/s", guests, devices, target=0.05),
            row("frames/s through the switch, device level (TestDriver, 1 KB frames)",
                "frames/s", devices, target=10_000)]


# The device side alone

def bench_blk_device(repeats: int) -> list[dict]:
    size = IMAGE_MB << 20
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
            for _ in range(repeats):
                for name, through_device, direct in (("read", device_read, direct_read),
                                                     ("write", device_write, direct_write)):
                    figures[name]["device"].append(mb_s(through_device))
                    figures[name]["direct"].append(mb_s(direct))
        finally:
            os.close(fd)
            device.close()
    return [row(f"virtio-blk {name}, device side (TestDriver, 64 KiB) vs os.p{name}", "MB/s",
                figures[name]["device"], figures[name]["direct"], target=0.1)
            for name in ("read", "write")]


def rows(repeats: int = 5) -> list[dict]:
    """Every figure of this benchmark, medians of ``repeats`` runs."""
    return bench_blk_in_guest(repeats) + bench_net(repeats) + bench_blk_device(repeats)


def table(results: list[dict]) -> str:
    def number(value: float | None, width: int) -> str:
        return f"{'-':>{width}}" if value is None else f"{value:{width}.{3 if abs(value) < 10 else 1}f}"

    lines = [f"{'figure':74} {'unit':>13} {'value':>10} {'baseline':>10} {'ratio':>7} "
             f"{'spread':>7} {'target':>7}"]
    for r in results:
        lines.append(f"{r['name'][:74]:74} {r['unit']:>13} {number(r['value'], 10)} "
                     f"{number(r['baseline'], 10)} {number(r['ratio'], 7)} "
                     f"{number(r['spread'], 7)} {number(r['target'], 7)}")
    return "\n".join(lines)


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    results = rows(repeats)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "drivers.json").write_text(json.dumps({"repeats": repeats, "rows": results},
                                                 indent=2) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
