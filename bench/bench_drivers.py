"""Benchmarks for the virtio devices, driven through their MMIO registers by TestDriver.

- virtio-blk sequential read and write: 64 KiB requests through the device API
  (register writes, ring walking, os.preadv/os.pwritev into guest memory)
  against os.pread/os.pwrite of the same file, in the same run; ratio = device
  throughput / direct throughput;
- virtio-blk seen from inside the Guest: the book's kernel booted in this process
  with the image as its disk, running `blk bench write N` then `blk bench read N`
  (64 KiB requests, the write ending in a FLUSH), timed by the Guest on the Host's
  clock; MB/s against os.pwrite+fsync / os.pread of the same file in the same run
  (ratio; the target is 0.25), and the Host's exits per request, counted between
  the shell's prompts;
- virtio-net: frames per second from one device to another through a Switch,
  each frame a transmit request on one device and a receive on the other.

Apart from the in-guest rows, no CPU is involved: those are the device side's costs alone.
Run with `make bench` or directly; results go to bench/results/drivers.json.
"""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
import time
from pathlib import Path

from lguest.drivers import Block, Net, Switch, make_devices
from lguest.drivers.block import T_IN, T_OUT
from lguest.drivers.driver import TestDriver, block_request
from lguest.guest import build_kernel
from lguest.host.core import Host
from lguest.host.hypercalls import EarlyConsole
from lguest.launcher import boot, build_page_tables, load_kernel, make_memory, write_boot_page
from lguest.memory import GuestMemory

ROOT = Path(__file__).resolve().parents[1]
IMAGE_MB = 32
CHUNK = 64 * 1024
FRAMES = 20_000
GUEST_MB = 64  # the in-guest benchmark's disk: 131072 sectors, 64 requests of 1 MiB
GUEST_REQUEST = 1 << 20  # BENCH_SECTORS in the guest's virtio.c
PROMPT = b"lguest$ "


def best(function, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_block() -> dict:
    directory = tempfile.mkdtemp()
    path = os.path.join(directory, "bench.img")
    with open(path, "wb") as image:
        image.write(os.urandom(IMAGE_MB << 20))
    device = Block(path)
    driver = TestDriver(device, GuestMemory(8 << 20))
    (queue,) = driver.setup()
    payload = os.urandom(CHUNK)
    chunks = (IMAGE_MB << 20) // CHUNK
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

    size = IMAGE_MB << 20
    figures = {}
    for name, through_device, direct in (("read", device_read, direct_read),
                                         ("write", device_write, direct_write)):
        device_mb_s = size / best(through_device) / 1e6
        direct_mb_s = size / best(direct) / 1e6
        figures[name] = {"device_MB_s": round(device_mb_s, 1),
                         "direct_MB_s": round(direct_mb_s, 1),
                         "ratio": round(device_mb_s / direct_mb_s, 3)}
    os.close(fd)
    device.close()
    os.unlink(path)
    return figures


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


def guest_run(kernel: Path, path: str, sectors: int) -> dict:
    """Boot the kernel with ``path`` as its disk; bench write then read; its figures."""
    memory = make_memory(32)
    entry = load_kernel(memory, kernel)
    pgdir = build_page_tables(memory)
    devices = make_devices(block=[path])
    write_boot_page(memory, pgdir, "", [device.boot_entry() for device in devices])
    script = f"blk bench write {sectors}\nblk bench read {sectors}\npoweroff\n".encode()
    console = PromptExits()
    host = Host(memory, console=console, console_input=EarlyConsole(io.BytesIO(script), False))
    console.host = host
    outcome = boot(host, devices, entry, pgdir)
    assert outcome.kind == "poweroff", (outcome, console.data)
    text = console.data.decode()
    figures = {}
    prompts = console.exits_at_prompt
    for index, name in enumerate(("write", "read")):
        done = "written" if name == "write" else "read"
        match = re.search(rf"blk bench: (\d+) sectors {done} in (\d+) us", text)
        assert match and int(match[1]) == sectors, text
        requests = -(-sectors * 512 // GUEST_REQUEST) + (name == "write")  # and the FLUSH
        figures[name] = {"us": int(match[2]), "requests": requests,
                         "exits": prompts[index + 1] - prompts[index]}
    return figures


def bench_block_in_guest(repeat: int = 3) -> dict:
    kernel = build_kernel()
    directory = tempfile.mkdtemp()
    path = os.path.join(directory, "guest.img")
    size = GUEST_MB << 20
    with open(path, "wb") as image:
        image.write(os.urandom(size))
    runs = [guest_run(kernel, path, size // 512) for _ in range(repeat)]
    payload = os.urandom(GUEST_REQUEST)
    fd = os.open(path, os.O_RDWR)

    def direct_read():
        for offset in range(0, size, GUEST_REQUEST):
            os.pread(fd, GUEST_REQUEST, offset)

    def direct_write():
        for offset in range(0, size, GUEST_REQUEST):
            os.pwrite(fd, payload, offset)
        os.fsync(fd)

    figures = {"image_MB": GUEST_MB, "request_KiB": GUEST_REQUEST // 1024}
    for name, direct in (("read", direct_read), ("write", direct_write)):
        best_run = min(runs, key=lambda run: run[name]["us"])[name]
        guest_mb_s = size / best_run["us"] / 1.0  # bytes per microsecond = MB/s
        direct_mb_s = size / best(direct) / 1e6
        figures[name] = {"guest_MB_s": round(guest_mb_s, 1),
                         "direct_MB_s": round(direct_mb_s, 1),
                         "ratio": round(guest_mb_s / direct_mb_s, 3),
                         "requests": best_run["requests"],
                         "exits_per_request": round(best_run["exits"] / best_run["requests"], 2)}
    os.close(fd)
    os.unlink(path)
    return figures


def table(results: dict) -> str:
    rows = [f"{'virtio-blk':22} {'MB/s':>9} {'direct MB/s':>12} {'ratio':>7} {'exits/req':>10}"]
    for name in ("read", "write"):
        row = results["block"][name]
        rows.append(f"{'device ' + name:22} {row['device_MB_s']:9.1f} {row['direct_MB_s']:12.1f} "
                    f"{row['ratio']:7.3f} {'':>10}")
    for name in ("read", "write"):
        row = results["block_in_guest"][name]
        rows.append(f"{'in-guest ' + name:22} {row['guest_MB_s']:9.1f} {row['direct_MB_s']:12.1f} "
                    f"{row['ratio']:7.3f} {row['exits_per_request']:10.2f}")
    return "\n".join(rows)


def bench_net() -> dict:
    switch = Switch()
    macs = [b"\x02LGP\x00\x01", b"\x02LGP\x00\x02"]
    sender, receiver = (Net(switch.port(), mac) for mac in macs)
    tx_driver, rx_driver = TestDriver(sender, GuestMemory(4 << 20)), TestDriver(
        receiver, GuestMemory(4 << 20))
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
    for number in range(FRAMES):
        transmit.offer([(data, 12 + len(frame), False)])
        transmit.collect()
        for head, _ in receive.collect():
            got += 1
            receive.offer([(rooms[head], 2048, True)], kick=False)
        receive.kick()
    elapsed = time.perf_counter() - start
    return {"frames": FRAMES, "received": got, "dropped": receiver.dropped,
            "frames_per_second": round(got / elapsed)}


def main() -> None:
    results = {"block": bench_block(), "block_in_guest": bench_block_in_guest(),
               "net": bench_net()}
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "drivers.json").write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
