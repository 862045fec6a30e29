"""Benchmarks for the virtio devices, driven through their MMIO registers by TestDriver.

- virtio-blk sequential read and write: 64 KiB requests through the device API
  (register writes, ring walking, os.preadv/os.pwritev into guest memory)
  against os.pread/os.pwrite of the same file, in the same run; ratio = device
  throughput / direct throughput;
- virtio-net: frames per second from one device to another through a Switch,
  each frame a transmit request on one device and a receive on the other.

No CPU is involved: these are the device side's costs alone.
Run with `make bench` or directly; results go to bench/results/drivers.json.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from lguest.drivers import Block, Net, Switch
from lguest.drivers.block import T_IN, T_OUT
from lguest.drivers.driver import TestDriver, block_request
from lguest.memory import GuestMemory

ROOT = Path(__file__).resolve().parents[1]
IMAGE_MB = 32
CHUNK = 64 * 1024
FRAMES = 20_000


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
    results = {"block": bench_block(), "net": bench_net()}
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "drivers.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
