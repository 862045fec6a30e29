# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/drivers/net.py» book/drivers-network.md:55 @0cf5783f
"""virtio-net: Ethernet frames, to a switch in this process or to another over UDP."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections import OrderedDict
from typing import Callable

from ..memory import GuestMemoryError
from .mmio import INTERRUPT_USED, NET, VirtioDevice
from .virtqueue import Chain, RingError, Virtqueue

RECEIVE, TRANSMIT = 0, 1
F_MAC = 1 << 5
HEADER_SIZE = 12  # flags, gso type, header length, gso size, checksum start and offset, buffers
RECEIVED_HEADER = struct.pack("<BBHHHHH", 0, 0, 0, 0, 0, 0, 1)
LARGEST_FRAME = 65536
LISTEN_TICK = 0.1  # how often a cable's listener looks up to see if it should stop
TABLE_SIZE = 1024  # addresses a switch remembers at most
TABLE_AGE = 300.0  # seconds a switch remembers an address it has not heard from since
SWEEP = 1.0  # seconds between a switch's looks for addresses that have grown too old


# «The network device» book/drivers-network.md:91 @df6a3c85
class Net(VirtioDevice):
    device_id = NET
    name = "virtio-net"
    queue_sizes = (256, 256)

    def __init__(self, backend, mac: bytes, **placement):
        self.backend, self.mac = backend, bytes(mac)
        self.outbox: list[bytes] = []
        self.dropped = 0
        super().__init__(**placement)

    def device_features(self) -> int:
        return F_MAC

    def config(self) -> bytes:
        return self.mac

    def start(self) -> None:
        self.backend.connect(self.receive)

    def close(self) -> None:
        self.backend.close()

    def may_wake(self) -> bool:
        return True  # a frame may arrive from the wire at any moment

    def service(self, queue: Virtqueue) -> None:
        if queue.index == TRANSMIT:
            super().service(queue)

    def handle(self, queue: Virtqueue, chain: Chain) -> int:
        if chain.readable_size < HEADER_SIZE:
            raise RingError("a frame without its virtio-net header")
        self.outbox.append(chain.read(HEADER_SIZE, LARGEST_FRAME))
        return 0

    def after_write(self) -> None:
        with self.lock:
            frames, self.outbox = self.outbox, []
        for frame in frames:
            self.backend.send(frame)

    def receive(self, frame: bytes) -> None:
        """A frame from the wire: into the next receive buffer, or dropped."""
        with self.lock:
            queue, chain = self.usable(RECEIVE), None
            try:
                chain = queue.pop() if queue is not None else None
            except (RingError, GuestMemoryError) as error:
                self.fail(queue, str(error))
            if chain is None:
                self.dropped += 1
                return
            written = chain.write(0, RECEIVED_HEADER + frame)
            queue.push(chain, written)
            if queue.wants_interrupt():
                self.interrupt(INTERRUPT_USED)
# «/The network device»


# «The switch» book/drivers-network.md:181 @c704d51d
class Port:
    """One socket on a Switch."""

    def __init__(self, switch: Switch):
        self.switch = switch
        self.receive: Callable[[bytes], None] | None = None

    def connect(self, receive: Callable[[bytes], None]) -> None:
        self.receive = receive

    def send(self, frame: bytes) -> None:
        self.switch.forward(self, frame)

    def close(self) -> None:
        self.receive = None


class Switch:
    """A learning Ethernet switch for guests in one process, with a table of bounded size."""

    def __init__(self, *, size: int = TABLE_SIZE, age: float = TABLE_AGE,
                 clock: Callable[[], float] = time.monotonic):
        self.ports: list[Port] = []
        self.where: OrderedDict[bytes, tuple[Port, float]] = OrderedDict()  # stalest first
        self.size, self.age, self.clock = size, age, clock
        self.next_sweep = 0.0  # when to look for stale addresses again
        self.lock = threading.Lock()

    def port(self) -> Port:
        port = Port(self)
        self.ports.append(port)
        return port

    def learn(self, sender: bytes, port: Port, now: float) -> None:
        table = self.where
        if sender in table:
            table.move_to_end(sender)
        table[sender] = (port, now)
        if len(table) > self.size:
            table.popitem(last=False)  # the stalest address makes room

    def forget_old(self, now: float) -> None:
        """Drop the addresses not heard from for ``age`` seconds; look again in a second."""
        table = self.where
        while table and now - table[next(iter(table))][1] >= self.age:
            table.popitem(last=False)
        self.next_sweep = now + SWEEP

    def forward(self, source: Port, frame: bytes) -> None:
        if len(frame) < 14:
            return  # not even an Ethernet header: nobody wants it
        destination, sender = frame[:6], frame[6:12]
        with self.lock:
            now = self.clock()
            if now >= self.next_sweep:
                self.forget_old(now)
            if not sender[0] & 1:
                self.learn(sender, source, now)
            entry = None if destination[0] & 1 else self.where.get(destination)
            targets = [entry[0]] if entry else [port for port in self.ports if port is not source]
        for port in targets:
            if port is not source and port.receive is not None:
                port.receive(frame)
# «/The switch»


# «The UDP cable» book/drivers-network.md:271 @52349258
class UdpCable:
    """Frames as UDP datagrams between two ports on 127.0.0.1."""

    def __init__(self, local_port: int, remote_port: int):
        self.remote = ("127.0.0.1", remote_port)
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.socket.bind(("127.0.0.1", local_port))
            self.socket.connect(self.remote)  # datagrams from anybody else are dropped
        except OSError:
            self.socket.close()
            raise
        self.socket.settimeout(LISTEN_TICK)
        self.closed = False
        self.listener: threading.Thread | None = None

    def connect(self, receive: Callable[[bytes], None]) -> None:
        self.listener = threading.Thread(target=self._listen, args=(receive,),
                                         name="lguest-net", daemon=True)
        self.listener.start()

    def _listen(self, receive: Callable[[bytes], None]) -> None:
        while not self.closed:
            try:
                frame = self.socket.recv(LARGEST_FRAME)
            except (socket.timeout, ConnectionRefusedError):
                continue  # nothing yet; or an old frame that found nobody at the other end
            except OSError:
                return  # the socket is closed
            try:
                receive(frame)
            except Exception:  # the guest was killed while we delivered
                return

    def send(self, frame: bytes) -> None:
        try:
            self.socket.send(frame)
        except OSError:
            pass  # nobody at the other end: a frame into the void, as on a real wire

    def close(self) -> None:
        self.closed = True
        if self.listener is not None:
            self.listener.join()
        self.socket.close()
# «/The UDP cable»
# «/src/lguest/drivers/net.py»
