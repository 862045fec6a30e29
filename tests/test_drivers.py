"""The devices, checked against the virtio specification by a driver written in Python."""

from __future__ import annotations

import hashlib
import os
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

from lguest.drivers import Block, Console, Net, Rng, Switch, UdpCable, make_devices
from lguest.drivers import mmio
from lguest.drivers.block import F_FLUSH, F_RO, S_IOERR, S_OK, S_UNSUPP, T_FLUSH, T_GET_ID
from lguest.drivers.block import T_IN, T_OUT
from lguest.drivers.driver import GuestKilled, TestDriver, block_request
from lguest.drivers.virtqueue import DESC_F_NEXT, DESC_F_WRITE, DESCRIPTOR, U16
from lguest.launcher import read_boot_page, write_boot_page
from lguest.memory import GuestMemory

from conftest import ROOT, free_ports

MEMORY = 1 << 20


def within(seconds, function, *args):
    """Run ``function`` in a thread; fail if it has not finished in time (never hang)."""
    result: dict = {}

    def body():
        try:
            result["value"] = function(*args)
        except BaseException as error:  # noqa: BLE001 - handed back to the test
            result["error"] = error

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{function.__name__} still running after {seconds} s"
    if "error" in result:
        raise result["error"]
    return result.get("value")


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "disk.img"
    path.write_bytes(bytes(range(256)) * 64)  # 16 KiB: 32 sectors
    return path


def driven(device):
    driver = TestDriver(device, GuestMemory(MEMORY))
    return driver, driver.setup()


# The transport

def test_registers_identify_a_version_2_device():
    driver = TestDriver(Rng(), GuestMemory(MEMORY))
    assert driver.get(mmio.MAGIC_VALUE) == 0x74726976
    assert driver.get(mmio.VERSION_REG) == 2
    assert driver.get(mmio.DEVICE_ID) == 4
    assert driver.get(mmio.VENDOR_ID) == mmio.VENDOR


def test_the_device_answers_at_the_specifications_offsets(image):
    """Every number here is typed from the virtio 1.x register table, not imported from mmio.py."""
    device = Block(image)
    device.connect(GuestMemory(MEMORY), lambda line: None, lambda reason: None)
    get = lambda offset: device.read(offset, 4)  # noqa: E731
    put = lambda offset, value: device.write(offset, 4, value)  # noqa: E731
    assert [get(0x000), get(0x004), get(0x008)] == [0x74726976, 2, 2]  # "virt", version 2, blk
    assert get(0x00C) != 0  # somebody's vendor ID
    put(0x014, 1)  # DeviceFeaturesSel: the high half
    assert get(0x010) & 1  # VIRTIO_F_VERSION_1 is bit 32
    put(0x014, 0)
    assert get(0x010) & 1 << 9  # VIRTIO_BLK_F_FLUSH
    put(0x070, 1 | 2)  # Status: ACKNOWLEDGE | DRIVER
    assert get(0x070) == 3
    put(0x024, 1)  # DriverFeaturesSel, DriverFeatures: accept VERSION_1 only
    put(0x020, 1)
    put(0x070, 1 | 2 | 8)
    assert get(0x070) == 1 | 2 | 8  # FEATURES_OK stuck
    put(0x030, 1)  # QueueSel: there is no queue 1
    assert get(0x034) == 0
    put(0x030, 0)
    assert get(0x034) == 128 and get(0x044) == 0  # QueueNumMax, QueueReady
    put(0x038, 8)  # QueueNum, then the three rings' addresses, low and high halves
    for low, address in ((0x080, 0x1000), (0x090, 0x2000), (0x0A0, 0x3000)):
        put(low, address)
        put(low + 4, 0)
    put(0x044, 1)
    assert get(0x044) == 1
    put(0x070, 1 | 2 | 8 | 4)  # DRIVER_OK
    assert get(0x070) == 15
    # One GET_ID request, laid out by hand as the specification draws the split ring.
    memory = device.memory
    memory.write(0x4000, struct.pack("<IIQ", 8, 0, 0))
    memory.write(0x1000, struct.pack("<QIHH", 0x4000, 16, 1, 1) + struct.pack("<QIHH", 0x5000, 20, 3, 2)
                 + struct.pack("<QIHH", 0x6000, 1, 2, 0))
    memory.write(0x2000 + 4, struct.pack("<H", 0))  # avail ring[0] = head 0
    memory.write(0x2000 + 2, struct.pack("<H", 1))  # avail idx = 1
    put(0x050, 0)  # QueueNotify
    assert struct.unpack("<HH", memory.read(0x3000, 4))[1] == 1  # used idx
    assert struct.unpack("<II", memory.read(0x3004, 8)) == (0, 21)  # {id, len}
    assert memory.read(0x5000, 8) == b"disk.img" and memory.read(0x6000, 1) == bytes([0])
    assert get(0x060) & 1  # InterruptStatus: the used buffer notification
    put(0x064, 1)  # InterruptACK
    assert get(0x060) == 0
    generation = get(0x0FC)
    assert struct.unpack("<Q", bytes(device.read(0x100 + i, 1) for i in range(8)))[0] == 32
    assert get(0x0FC) == generation  # nothing changed the configuration
    device.close()


def test_status_handshake_and_reset():
    driver = TestDriver(Rng(), GuestMemory(MEMORY))
    assert driver.negotiate()
    driver.queue(0)
    driver.go()
    status = driver.get(mmio.STATUS)
    assert status == mmio.ACKNOWLEDGE | mmio.DRIVER | mmio.FEATURES_OK | mmio.DRIVER_OK
    driver.put(mmio.STATUS, 0)
    assert driver.get(mmio.STATUS) == 0
    driver.put(mmio.QUEUE_SEL, 0)
    assert driver.get(mmio.QUEUE_READY) == 0


def test_version_1_is_offered_and_required():
    driver = TestDriver(Rng(), GuestMemory(MEMORY))
    driver.put(mmio.DEVICE_FEATURES_SEL, 1)
    assert driver.get(mmio.DEVICE_FEATURES) & 1  # bit 32
    assert not driver.negotiate(accept=0)  # a legacy driver: FEATURES_OK does not stick
    assert not driver.negotiate(accept=mmio.F_VERSION_1 | 1 << 20)  # a feature never offered
    assert driver.negotiate(accept=mmio.F_VERSION_1)


def test_driver_ok_without_features_ok_needs_reset():
    driver = TestDriver(Rng(), GuestMemory(MEMORY))
    driver.put(mmio.STATUS, mmio.ACKNOWLEDGE | mmio.DRIVER | mmio.DRIVER_OK)
    assert driver.get(mmio.STATUS) & mmio.DEVICE_NEEDS_RESET
    assert driver.get(mmio.INTERRUPT_STATUS) & mmio.INTERRUPT_CONFIG
    assert driver.interrupts


def test_queue_setup_registers():
    driver = TestDriver(Rng(), GuestMemory(MEMORY))
    driver.negotiate()
    driver.put(mmio.QUEUE_SEL, 0)
    assert driver.get(mmio.QUEUE_NUM_MAX) == 64
    driver.put(mmio.QUEUE_SEL, 5)
    assert driver.get(mmio.QUEUE_NUM_MAX) == 0  # no such queue
    queue = driver.queue(0, 16)
    assert driver.device.queues[0].size == 16 and driver.device.queues[0].ready
    assert driver.device.queues[0].desc == queue.desc


def test_bad_queue_layout_needs_reset():
    driver = TestDriver(Rng(), GuestMemory(MEMORY))
    driver.negotiate()
    driver.put(mmio.QUEUE_SEL, 0)
    driver.put(mmio.QUEUE_NUM, 12)  # not a power of two
    driver.put(mmio.QUEUE_READY, 1)
    assert not driver.get(mmio.QUEUE_READY)
    assert driver.get(mmio.STATUS) & mmio.DEVICE_NEEDS_RESET
    driver.put(mmio.STATUS, 0)
    driver.negotiate()
    driver.put(mmio.QUEUE_NUM, 16)
    driver.put(mmio.QUEUE_DESC_LOW, MEMORY - 16)  # the table runs off the end
    driver.put(mmio.QUEUE_READY, 1)
    assert driver.get(mmio.STATUS) & mmio.DEVICE_NEEDS_RESET
    assert "outside guest memory" in driver.device.problem


def test_a_second_ready_on_a_queue_in_service_changes_nothing():
    """Writing 1 to QueueReady again, mid-flight, once re-enabled the queue: the device forgot
    how far it had read the available ring, and served the driver's old requests again."""
    driver, (queue,) = driven(Rng())
    (one, _), (two, _) = driver.buffer(32), driver.buffer(32)
    first = queue.offer([(one, 32, True)])
    assert queue.collect() == [(first, 32)]
    drawn = driver.memory.read(one, 32)
    driver.put(mmio.QUEUE_SEL, 0)
    driver.put(mmio.QUEUE_READY, 1)
    second = queue.offer([(two, 32, True)])
    assert queue.collect() == [(second, 32)]
    assert driver.memory.read(one, 32) == drawn  # the first request was not served twice
    assert driver.device.queues[0].ready and not driver.get(mmio.STATUS) & mmio.DEVICE_NEEDS_RESET


def test_wrong_size_register_access_needs_reset():
    driver = TestDriver(Rng(), GuestMemory(MEMORY))
    assert driver.device.read(mmio.STATUS, 2) == 0
    assert driver.get(mmio.STATUS) & mmio.DEVICE_NEEDS_RESET


def test_config_generation_and_interrupt_ack(image):
    driver, (queue,) = driven(Block(image))
    assert driver.get(mmio.CONFIG_GENERATION) == 0
    block_request(queue, T_FLUSH, 0)
    assert driver.get(mmio.INTERRUPT_STATUS) == mmio.INTERRUPT_USED
    driver.put(mmio.INTERRUPT_ACK, mmio.INTERRUPT_USED)
    assert driver.get(mmio.INTERRUPT_STATUS) == 0
    driver.device.close()


def test_no_interrupt_when_the_driver_asks_for_quiet():
    driver, (queue,) = driven(Rng())
    U16.pack_into(driver.memory.view, queue.avail, 1)  # VIRTQ_AVAIL_F_NO_INTERRUPT
    address, _ = driver.buffer(8)
    queue.offer([(address, 8, True)])
    assert queue.collect() and not driver.interrupts


# Entropy

def test_rng_returns_the_requested_bytes():
    driver, (queue,) = driven(Rng())
    address, _ = driver.buffer(100)
    head = queue.offer([(address, 60, True), (address + 60, 40, True)])
    assert queue.collect() == [(head, 100)]
    assert driver.memory.read(address, 100) != bytes(100)
    assert driver.interrupts == [mmio.FIRST_DEVICE_IRQ]


# Block

def test_block_config_and_features(image):
    driver = TestDriver(Block(image), GuestMemory(MEMORY))
    assert struct.unpack("<Q", bytes(driver.device.read(0x100 + i, 1) for i in range(8)))[0] == 32
    driver.put(mmio.DEVICE_FEATURES_SEL, 0)
    assert driver.get(mmio.DEVICE_FEATURES) & F_FLUSH
    assert not driver.get(mmio.DEVICE_FEATURES) & F_RO
    driver.device.close()


def test_block_read_write_flush_get_id(image):
    device = Block(image)
    driver, (queue,) = driven(device)
    assert block_request(queue, T_IN, 1, 512) == (S_OK, (bytes(range(256)) * 2))
    assert block_request(queue, T_OUT, 2, b"x" * 1024)[0] == S_OK
    assert block_request(queue, T_FLUSH, 0)[0] == S_OK
    assert image.read_bytes()[1024:2048] == b"x" * 1024
    assert block_request(queue, T_IN, 2, 1024) == (S_OK, b"x" * 1024)
    status, name = block_request(queue, T_GET_ID, 0, 20)
    assert status == S_OK and name.rstrip(b"\0") == b"disk.img"
    assert block_request(queue, 99, 0)[0] == S_UNSUPP
    device.close()


def test_push_notes_every_writable_buffer_and_the_used_ring(image):
    """What a device hands back is noted for the CPU: whole writable buffers, even where a
    short read left some bytes unwritten, and the used ring; readable buffers are not."""
    from unicorn import UC_ARCH_X86, UC_MODE_32, Uc

    memory = GuestMemory(MEMORY)
    memory.map_into(Uc(UC_ARCH_X86, UC_MODE_32))
    device = Block(image)
    driver = TestDriver(device, memory)
    (queue,) = driver.setup()
    header, _ = driver.buffer(struct.pack("<IIQ", T_IN, 0, 31))
    data, _ = driver.buffer(1024)  # the image has 32 sectors: this read of two comes up short
    status, _ = driver.buffer(1)
    memory.settle()
    queue.offer([(header, 16, False), (data, 1024, True), (status, 1, True)])
    assert queue.collect() == [(0, 1)] and memory.read(status, 1) == bytes([S_IOERR])
    used = device.queues[0].device
    noted = lambda address: any(start <= address < end for start, end in memory.stale)
    assert all(noted(address) for address in [*range(data, data + 1024), status,
                                               *range(used + 2, used + 12)])
    assert not any(noted(address) for address in range(header, header + 16))
    device.close()


def test_block_out_of_range_is_ioerr(image):
    device = Block(image)
    driver, (queue,) = driven(device)
    assert block_request(queue, T_IN, 31, 1024)[0] == S_IOERR
    assert block_request(queue, T_OUT, 32, b"y" * 512)[0] == S_IOERR
    assert block_request(queue, T_IN, 1 << 40, 512)[0] == S_IOERR
    assert block_request(queue, T_IN, 31, 512)[0] == S_OK
    device.close()


def test_block_header_split_across_descriptors(image):
    device = Block(image)
    driver, (queue,) = driven(device)
    header, _ = driver.buffer(struct.pack("<IIQ", T_IN, 0, 3))
    data, _ = driver.buffer(513)  # data and status in one buffer
    queue.offer([(header, 4, False), (header + 4, 12, False), (data, 513, True)])
    assert queue.collect()[0][1] == 513
    assert driver.memory.read(data + 512, 1) == bytes([S_OK])
    assert driver.memory.read(data, 512) == bytes(range(256)) * 2
    device.close()


def test_read_only_image_keeps_its_hash(image):
    before = hashlib.sha256(image.read_bytes()).hexdigest()
    os.chmod(image, 0o444)  # would make an O_RDWR open fail: we never try one
    device = Block(image, read_only=True)
    driver = TestDriver(device, GuestMemory(MEMORY))
    driver.put(mmio.DEVICE_FEATURES_SEL, 0)
    assert driver.get(mmio.DEVICE_FEATURES) & F_RO
    (queue,) = driver.setup()
    assert block_request(queue, T_OUT, 0, b"z" * 512)[0] == S_IOERR
    assert block_request(queue, T_FLUSH, 0)[0] == S_OK
    assert block_request(queue, T_IN, 0, 512)[0] == S_OK
    device.close()
    assert hashlib.sha256(image.read_bytes()).hexdigest() == before


def flush_request(driver, queue) -> tuple[int, int]:
    """A FLUSH with its status byte primed to 0xEE, which no status is: (header, status) addresses."""
    header, _ = driver.buffer(struct.pack("<IIQ", T_FLUSH, 0, 0))
    status, _ = driver.buffer(b"\xee")
    queue.offer([(header, 16, False), (status, 1, True)], kick=False)
    return header, status


def test_flush_calls_fsync_on_the_image_and_answers_after_it(image, monkeypatch):
    device = Block(image)
    driver, (queue,) = driven(device)
    assert block_request(queue, T_OUT, 5, b"sync me!" * 64)[0] == S_OK
    used_before = U16.unpack_from(driver.memory.view, queue.used + 2)[0]
    _, status = flush_request(driver, queue)
    seen = []
    real_fsync = os.fsync

    def fsync(fd):
        # At the moment of the sync, the guest must not yet have been told anything.
        seen.append((os.fstat(fd).st_ino, driver.memory.read(status, 1),
                     U16.unpack_from(driver.memory.view, queue.used + 2)[0],
                     list(driver.interrupts)))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    interrupts_before = list(driver.interrupts)
    queue.kick()
    assert seen == [(image.stat().st_ino, b"\xee", used_before, interrupts_before)]
    assert [written for _, written in queue.collect()] == [1]
    assert driver.memory.read(status, 1) == bytes([S_OK])
    assert len(driver.interrupts) > len(interrupts_before)  # and told once it was done
    device.close()


def test_a_failing_fsync_answers_ioerr_not_ok(image, monkeypatch):
    device = Block(image)
    driver, (queue,) = driven(device)
    assert block_request(queue, T_OUT, 5, b"lost?..." * 64)[0] == S_OK
    calls = []

    def fsync(fd):
        calls.append(fd)
        raise OSError(5, "Input/output error")  # the disk under the image has gone bad

    monkeypatch.setattr(os, "fsync", fsync)
    _, status = flush_request(driver, queue)
    queue.kick()
    assert calls == [device.fd]
    assert queue.collect()[0][1] == 1
    assert driver.memory.read(status, 1) == bytes([S_IOERR])
    monkeypatch.undo()  # the disk recovers, and the guest carries on: an IOERR is not a death
    assert block_request(queue, T_FLUSH, 0)[0] == S_OK
    device.close()


def test_flushed_writes_survive_sigkill(image):
    script = f"""
import os, signal
from lguest.drivers import Block
from lguest.drivers.block import T_FLUSH, T_OUT
from lguest.drivers.driver import TestDriver, block_request
from lguest.memory import GuestMemory
driver = TestDriver(Block({str(image)!r}), GuestMemory(1 << 20))
(queue,) = driver.setup()
assert block_request(queue, T_OUT, 4, b"durable!" * 128)[0] == 0
assert block_request(queue, T_FLUSH, 0)[0] == 0
os.kill(os.getpid(), signal.SIGKILL)
"""
    result = subprocess.run([sys.executable, "-c", script], timeout=60,
                            env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert result.returncode == -9
    assert image.read_bytes()[2048:3072] == b"durable!" * 128


# Console

def test_console_output_and_input():
    import io
    output = io.BytesIO()
    device = Console(output)
    driver, (receive, transmit) = driven(device)
    address, _ = driver.buffer(b"Hello from the guest\n")
    transmit.offer([(address, 21, False)])
    assert output.getvalue() == b"Hello from the guest\n"
    device.feed(b"ls\n")  # nobody is listening yet: the bytes wait
    room, _ = driver.buffer(2)
    head = receive.offer([(room, 2, True)])
    assert receive.collect() == [(head, 2)]
    assert driver.memory.read(room, 2) == b"ls"
    more, _ = driver.buffer(16)
    head = receive.offer([(more, 16, True)])
    assert receive.collect() == [(head, 1)] and driver.memory.read(more, 1) == b"\n"


def test_console_deterministic_input_arrives_at_driver_ok():
    import io
    device = Console(io.BytesIO(), io.BytesIO(b"typed ahead"), deterministic=True)
    driver = TestDriver(device, GuestMemory(MEMORY))
    device.start()
    driver.negotiate()
    receive = driver.queue(0)
    driver.queue(1)
    room, _ = driver.buffer(32)
    receive.offer([(room, 32, True)], kick=False)
    driver.go()
    assert receive.collect()[0][1] == 11 and not device.may_wake()


def test_console_end_of_input_is_one_zero_length_read_after_the_bytes():
    import io
    device = Console(io.BytesIO(), io.BytesIO(b"last words"), deterministic=True)
    driver = TestDriver(device, GuestMemory(MEMORY))
    device.start()
    driver.negotiate()
    receive, _ = driver.queue(0), driver.queue(1)
    rooms = [driver.buffer(4)[0] for _ in range(5)]
    for room in rooms:
        receive.offer([(room, 4, True)], kick=False)
    driver.go()
    assert [written for _, written in receive.collect()] == [4, 4, 2, 0]  # and one still posted
    assert driver.memory.read(rooms[2], 2) == b"ds"
    device.feed(b"too late")  # nothing after the end is ever delivered as an end again
    assert [written for _, written in receive.collect()] == [4]
    driver.put(0x070, 0)  # a reset: the next driver hears of the end again
    driver.negotiate()
    receive, _ = driver.queue(0), driver.queue(1)
    room, _ = driver.buffer(16)
    receive.offer([(room, 16, True)], kick=False)
    driver.go()
    assert [written for _, written in receive.collect()] == [4]  # the rest of "too late"
    receive.offer([(room, 16, True)])
    assert [written for _, written in receive.collect()] == [0]


def test_console_without_input_ends_at_once_and_with_input_waits():
    import io
    silent = Console(io.BytesIO())
    driver, (receive, _) = driven(silent)
    room, _ = driver.buffer(8)
    head = receive.offer([(room, 8, True)])
    assert receive.collect() == [(head, 0)] and not silent.may_wake()
    reading, writer = os.pipe()
    with os.fdopen(reading, "rb", buffering=0) as keyboard:
        device = Console(io.BytesIO(), keyboard)
        driver, (receive, _) = driven(device)
        device.start()
        room, _ = driver.buffer(8)
        head = receive.offer([(room, 8, True)])
        assert receive.collect() == [] and device.may_wake()  # nobody has typed yet
        os.write(writer, b"hi")
        os.close(writer)
        deadline = time.monotonic() + 5
        done = []
        while len(done) < 1 and time.monotonic() < deadline:
            done += receive.collect()
            time.sleep(0.01)
        assert done == [(head, 2)] and driver.memory.read(room, 2) == b"hi"
        again = receive.offer([(room, 8, True)])
        while device.may_wake() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert receive.collect() == [(again, 0)] and not device.may_wake()
        device.close()


# Network

def frame(destination: bytes, source: bytes, payload: bytes) -> bytes:
    return destination + source + b"\x88\xb5" + payload


def test_two_net_devices_on_a_switch_exchange_frames():
    switch = Switch()
    macs = [b"\x02LGP\x00\x01", b"\x02LGP\x00\x02"]
    devices = [Net(switch.port(), mac) for mac in macs]
    drivers = [driven(device) for device in devices]
    for device in devices:
        device.start()
    (da, (rxa, txa)), (db, (rxb, txb)) = drivers
    assert bytes(da.device.read(0x100 + i, 1) for i in range(6)) == macs[0]
    room, _ = db.buffer(2048)
    head = rxb.offer([(room, 2048, True)])
    sent = frame(b"\xff" * 6, macs[0], b"Hello, sibling")
    data, _ = da.buffer(bytes(12) + sent)
    txa.offer([(data, 12, False), (data + 12, len(sent), False)])
    assert txa.collect()
    assert rxb.collect() == [(head, 12 + len(sent))]
    assert db.memory.read(room + 12, len(sent)) == sent
    assert struct.unpack_from("<H", db.memory.read(room + 10, 2))[0] == 1  # num_buffers
    reply = frame(macs[0], macs[1], b"Hello back")
    data, _ = db.buffer(bytes(12) + reply)
    txb.offer([(data, 12 + len(reply), False)])
    assert devices[0].dropped == 1  # A had offered no receive buffers
    assert devices[1].dropped == 0


def test_udp_cable_between_two_devices():
    a, b = free_ports(2)
    cables = [UdpCable(a, b), UdpCable(b, a)]
    devices = [Net(cable, bytes([2, 0, 0, 0, 0, n])) for n, cable in enumerate(cables)]
    (da, (rxa, txa)), (db, (rxb, txb)) = [driven(device) for device in devices]
    for device in devices:
        device.start()
    room, _ = db.buffer(2048)
    rxb.offer([(room, 2048, True)])
    sent = frame(bytes([2, 0, 0, 0, 0, 1]), bytes([2, 0, 0, 0, 0, 0]), b"over the wire")
    data, _ = da.buffer(bytes(12) + sent)
    txa.offer([(data, 12 + len(sent), False)])
    deadline = time.monotonic() + 5
    while not (used := rxb.collect()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert used and db.memory.read(room + 12, len(sent)) == sent
    for device in devices:
        device.close()


def heard(cable: UdpCable, seconds: float) -> list[bytes]:
    """The datagrams a cable's listener hands on within ``seconds``."""
    got: list[bytes] = []
    cable.connect(got.append)
    time.sleep(seconds)
    return got


def test_a_udp_cable_hears_only_its_peer():
    a, b, stranger_port = free_ports(3)
    cable = UdpCable(a, b)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        stranger.bind(("127.0.0.1", stranger_port))
        peer.bind(("127.0.0.1", b))
        got: list[bytes] = []
        cable.connect(got.append)
        stranger.sendto(b"forged frame from another local port", ("127.0.0.1", a))
        peer.sendto(b"a frame from the peer", ("127.0.0.1", a))
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # room for the forged one to arrive too, if it were going to
        assert got == [b"a frame from the peer"]
    finally:
        cable.close()
        peer.close()
        stranger.close()


def test_a_peer_that_starts_late_is_still_heard():
    a, b = free_ports(2)
    cable = UdpCable(a, b)
    got: list[bytes] = []
    cable.connect(got.append)
    try:
        for _ in range(3):
            cable.send(b"into the void")  # nobody at b yet: refused, quietly
            time.sleep(0.05)
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.1", b))
        with peer:
            peer.sendto(b"hello, late", ("127.0.0.1", a))
            deadline = time.monotonic() + 5
            while not got and time.monotonic() < deadline:
                time.sleep(0.01)
            assert got == [b"hello, late"]
            assert cable.listener is not None and cable.listener.is_alive()
            cable.send(b"and back")
            assert peer.recv(100) == b"and back"
    finally:
        cable.close()


def resident() -> int:
    """This process's resident set, in bytes."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_a_flood_of_made_up_addresses_leaves_the_switch_table_and_memory_bounded():
    switch = Switch()
    heard = [0, 0]
    flooder, *others = [switch.port() for _ in range(3)]
    for number, port in enumerate(others):
        port.connect(lambda frame, n=number: heard.__setitem__(n, heard[n] + 1))
    frames = 0

    def flood(seconds: float) -> None:
        nonlocal frames
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for _ in range(1000):
                frames += 1
                sender = b"\x02" + frames.to_bytes(5, "big")  # a new unicast address every time
                flooder.send(b"\x02\xff\xff\xff\xff\xff" + sender + b"\x88\xb5" + bytes(46))

    flood(1.0)  # warm up: the table fills to its size
    before = resident()
    flood(8.0)
    growth = resident() - before
    assert growth < 16 << 20, f"{growth >> 20} MiB more after {frames} frames"
    from lguest.drivers.net import TABLE_SIZE

    assert frames > 100 * TABLE_SIZE  # the flood was a flood
    assert len(switch.where) == TABLE_SIZE
    assert heard == [frames, frames]  # a destination it never heard of goes to every other port


def test_the_switch_forgets_an_address_it_has_not_heard_from():
    now = [0.0]
    switch = Switch(size=2, age=300.0, clock=lambda: now[0])
    heard: dict[str, list[bytes]] = {"a": [], "b": [], "c": []}
    ports = {}
    for name in heard:
        ports[name] = switch.port()
        ports[name].connect(heard[name].append)
    mac = {name: bytes([2, 0, 0, 0, 0, n]) for n, name in enumerate(heard)}
    ports["b"].send(mac["a"] + mac["b"] + b"\x88\xb5hi")  # the switch learns b
    ports["a"].send(mac["b"] + mac["a"] + b"\x88\xb5to b")
    assert heard["c"] == [mac["a"] + mac["b"] + b"\x88\xb5hi"]  # only the first, flooded
    assert heard["b"] == [mac["b"] + mac["a"] + b"\x88\xb5to b"]
    now[0] = 299.0
    ports["a"].send(mac["b"] + mac["a"] + b"\x88\xb5still b")
    assert len(heard["c"]) == 1  # b is still known
    now[0] = 300.0
    ports["a"].send(mac["b"] + mac["a"] + b"\x88\xb5who?")
    assert heard["c"][-1].endswith(b"who?")  # b has aged out: flooded
    assert list(switch.where) == [mac["a"]]
    ports["c"].send(mac["a"] + mac["c"] + b"\x88\xb5c")
    ports["b"].send(mac["a"] + mac["b"] + b"\x88\xb5b")
    assert list(switch.where) == [mac["c"], mac["b"]]  # full: a, the stalest, made room


# Malformed rings: each ends in NEEDS_RESET or a kill with a reason, never a hang

def put_descriptor(driver, queue, slot, address, length, flags, following):
    DESCRIPTOR.pack_into(driver.memory.view, queue.desc + 16 * slot, address, length, flags,
                         following)


def publish(driver, queue, head, count=1):
    U16.pack_into(driver.memory.view, queue.avail + 4, head)
    queue.avail_idx = (queue.avail_idx + count) & 0xFFFF
    U16.pack_into(driver.memory.view, queue.avail + 2, queue.avail_idx)


def killed(driver, queue) -> str:
    with pytest.raises(GuestKilled) as death:
        within(10, queue.kick)
    reason = str(death.value)
    assert "\n" not in reason and "queue 0" in reason
    return reason


@pytest.mark.parametrize("case, words", [
    ("loop", "loops"),
    ("endless", "loops"),
    ("outside", "outside guest memory"),
    ("too long", "past the end"),
    ("index", "beyond the table"),
    ("jump", "ran 200 entries ahead"),
    ("indirect", "indirect"),
])
def test_malformed_rings_kill_with_a_reason(case, words):
    driver, (queue,) = driven(Rng())
    buffer, _ = driver.buffer(16)
    if case == "loop":
        put_descriptor(driver, queue, 0, buffer, 8, DESC_F_NEXT | DESC_F_WRITE, 1)
        put_descriptor(driver, queue, 1, buffer, 8, DESC_F_NEXT | DESC_F_WRITE, 0)
    elif case == "endless":
        for slot in range(queue.size):
            put_descriptor(driver, queue, slot, buffer, 1, DESC_F_NEXT | DESC_F_WRITE,
                           (slot + 1) % queue.size)
    elif case == "outside":
        put_descriptor(driver, queue, 0, MEMORY + 4096, 8, DESC_F_WRITE, 0)
    elif case == "too long":
        put_descriptor(driver, queue, 0, buffer, MEMORY, DESC_F_WRITE, 0)
    elif case == "index":
        put_descriptor(driver, queue, 0, buffer, 8, DESC_F_NEXT | DESC_F_WRITE, 500)
    elif case == "indirect":
        put_descriptor(driver, queue, 0, buffer, 16, 4, 0)
    else:
        put_descriptor(driver, queue, 0, buffer, 8, DESC_F_WRITE, 0)
    publish(driver, queue, 0, 200 if case == "jump" else 1)
    assert words in killed(driver, queue)


def test_block_request_too_short_kills(tmp_path):
    (tmp_path / "empty.img").write_bytes(b"")
    driver, (queue,) = driven(Block(tmp_path / "empty.img"))
    status, _ = driver.buffer(1)
    put_descriptor(driver, queue, 0, status, 1, DESC_F_WRITE, 0)
    publish(driver, queue, 0)
    assert "header" in killed(driver, queue)


def test_notify_before_ready_needs_reset():
    driver = TestDriver(Rng(), GuestMemory(MEMORY))
    driver.negotiate()
    within(10, driver.put, mmio.QUEUE_NOTIFY, 0)
    assert driver.get(mmio.STATUS) & mmio.DEVICE_NEEDS_RESET
    assert "not ready" in driver.device.problem
    driver.put(mmio.STATUS, 0)  # and a reset recovers
    assert driver.get(mmio.STATUS) == 0
    assert driver.setup()


def test_notify_of_a_queue_that_does_not_exist_needs_reset():
    driver, _ = driven(Rng())
    within(10, driver.put, mmio.QUEUE_NOTIFY, 7)
    assert driver.get(mmio.STATUS) & mmio.DEVICE_NEEDS_RESET


def test_queue_cannot_move_once_ready():
    driver, (queue,) = driven(Rng())
    driver.put(mmio.QUEUE_DESC_LOW, MEMORY - 8)
    assert driver.device.queues[0].desc == queue.desc


# The Launcher's side

def test_make_devices_places_each_device(image, tmp_path):
    import io
    other = tmp_path / "other.img"
    other.write_bytes(image.read_bytes())
    devices = make_devices(block=[str(image), f"{other}:ro"], rng=True, console=io.BytesIO())
    assert [d.boot_entry() for d in devices] == [
        (3, 0xD0000000, 0x1000, 2), (2, 0xD0001000, 0x1000, 3),
        (2, 0xD0002000, 0x1000, 4), (4, 0xD0003000, 0x1000, 5)]
    assert devices[2].read_only
    memory = GuestMemory(4 << 20)
    write_boot_page(memory, 0, "", [d.boot_entry() for d in devices])
    assert read_boot_page(memory)["devices"][1] == {
        "type": 2, "mmio_base": 0xD0001000, "mmio_size": 0x1000, "irq": 3}
    for device in devices:
        device.close()


def test_launch_reports_a_missing_disk_image(tmp_path, guest):
    from conftest import run_guest

    result = run_guest(guest("echo"), flags=[f"--block={tmp_path / 'nope.img'}"])
    assert result.returncode == 1
    assert result.stderr == f"lguest: {tmp_path / 'nope.img'}: cannot open the disk image: " \
                            "No such file or directory\n"


def test_devices_leave_the_early_console_alone(image, guest, tmp_path):
    from conftest import run_guest

    elf = guest("echo")
    other = tmp_path / "other.img"
    other.write_bytes(image.read_bytes())
    plain = run_guest(elf, input="hello\n")
    with_devices = run_guest(elf, input="hello\n",
                             flags=[f"--block={image}", f"--read-only-block={other}", "--rng"])
    assert plain.returncode == 0
    assert (with_devices.returncode, with_devices.stdout) == (plain.returncode, plain.stdout)


def test_host_maps_devices_and_kills_from_a_device():
    from unicorn.x86_const import UC_X86_REG_EAX
    from lguest.host.core import Host, Killed

    memory = GuestMemory(4 << 20)
    host = Host(memory)
    device = Rng(base=0xD0001000, irq=3)
    host.add_device(device)
    code = bytes.fromhex("a1081000d0")  # mov eax, [0xd0001008]: the DeviceID register
    memory.write(0x2000, code)
    host.uc.emu_start(0x2000, 0x2000 + len(code))
    assert host.uc.reg_read(UC_X86_REG_EAX) == 4
    device.kill("virtio-rng: from a backend's thread")  # noted, not raised: not the CPU's thread
    assert host.dead == "virtio-rng: from a backend's thread" and host._may_wake() is False
    host._cpu_thread = threading.get_ident()  # as if inside the guest's own MMIO callback
    with pytest.raises(Killed):
        device.kill("virtio-rng: a second reason")
    assert host.dead == "virtio-rng: from a backend's thread"  # the first reason stands


def test_a_guest_maps_device_registers_but_nothing_else_beyond_its_memory(guest):
    from conftest import assert_killed, run_guest

    result = run_guest(guest("mmio"), flags=["--rng"])
    reason = assert_killed(result, "device at d0000000: magic 74726976 version 2 id 4\n")
    assert reason.startswith("bad page table entry 0xe0000003 for 0x50400000")
