# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/gdbstub.py» book/mastery-gdb.md:1047 @d0da5513
"""A GDB remote stub: the guest, stopped and examined by a debugger on a socket."""

from __future__ import annotations

import os
import select
import socket
import threading
from typing import Any, TextIO

from unicorn import UC_HOOK_CODE

from .abi import PAGE_SIZE, SWITCHER_ADDR
from .host.core import EIP, ESP, REGISTER, Host, Killed, Outcome
from .host.interrupts import Interrupts
from .memory import GuestMemoryError

PACKET_SIZE = 0x4000  # the longest packet we take or send, checksum and all
MAX_READ = (PACKET_SIZE - 8) // 2  # bytes of memory in one reply, two hex digits each
MAX_BREAKPOINTS = 64
TICK = 0.05  # how often the stub and a parked CPU look up from waiting, in seconds
SEND_TIMEOUT = 5.0  # a debugger that stops reading is dropped after this long
TURN_AWAY = 0.2  # seconds a second debugger gets to say its first words, and to hear ours
MAX_TURNING_AWAY = 4  # second debuggers being answered at once; more are simply closed
KEEPALIVE = 10  # seconds of silence before TCP asks whether the debugger is still there
SIGINT, SIGTRAP, SIGKILL = 2, 5, 9
EFAULT, EBUSY, EINVAL = 14, 16, 22
HEX_DIGITS = "0123456789abcdefABCDEF"
THREAD_ANSWERS = {"qAttached": "1", "qC": "QC1", "qfThreadInfo": "m1", "qsThreadInfo": "l"}

# «Where gdb listens» book/mastery-gdb.md:1106 @16800f68
def parse_address(text: str) -> tuple[str, int]:
    """``[HOST:]PORT`` as a (host, port) pair; loopback unless a host is named."""
    host, _, port = text.rpartition(":")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--gdb wants [HOST:]PORT with a port from 0 to 65535, not {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)
# «/Where gdb listens»


# «The registers gdb knows» book/mastery-gdb.md:89 @10988f52
GDB_REGISTERS = ("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi",
                 "eip", "eflags", "cs", "ss", "ds", "es", "fs", "gs")
X87_REGISTERS = (*(f"st{n}" for n in range(8)),
                 "fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg", "fooff", "fop")
TYPES = {"esp": "data_ptr", "ebp": "data_ptr", "eip": "code_ptr", "eflags": "i386_eflags"}
FLAG_BITS = ((0, "CF"), (2, "PF"), (4, "AF"), (6, "ZF"), (7, "SF"), (8, "TF"), (9, "IF"),
             (10, "DF"), (11, "OF"), (14, "NT"), (16, "RF"), (17, "VM"), (18, "AC"),
             (19, "VIF"), (20, "VIP"), (21, "ID"))
TARGET_XML = ('<?xml version="1.0"?><!DOCTYPE target SYSTEM "gdb-target.dtd">'
              '<target version="1.0"><architecture>i386</architecture>'
              '<feature name="org.gnu.gdb.i386.core"><flags id="i386_eflags" size="4">'
              + "".join(f'<field name="{name}" start="{bit}" end="{bit}"/>'
                        for bit, name in FLAG_BITS)
              + "</flags>"
              + "".join(f'<reg name="{name}" bitsize="32" type="{TYPES.get(name, "int32")}"/>'
                        for name in GDB_REGISTERS)
              + "".join(f'<reg name="{name}" bitsize="80" type="i387_ext" group="float"/>'
                        if name.startswith("st") else
                        f'<reg name="{name}" bitsize="32" type="int" group="float"/>'
                        for name in X87_REGISTERS)
              + "</feature></target>")
NO_X87 = "".join("x" * (20 if name.startswith("st") else 8) for name in X87_REGISTERS)
SEGMENTS = frozenset({"cs", "ss", "ds", "es", "fs", "gs"})
GUEST_FLAGS = 0x0CD5  # CF PF AF ZF SF DF OF: the flags a debugger may change
# «/The registers gdb knows»


# «A clock that stands still» book/mastery-gdb.md:232 @5306e238
class StoppableClock:
    """A Host's clock that stands still while the debugger holds the guest."""

    def __init__(self, clock: Any):
        self.clock = clock
        self.state: tuple[int | None, int] = (None, 0)  # (stopped at, nanoseconds lost)

    def now(self) -> int:
        stopped_at, lost = self.state  # one read: the timer thread asks too
        return (self.clock.now() if stopped_at is None else stopped_at) - lost

    def stop(self) -> None:
        self.state = (self.clock.now(), self.state[1])

    def start(self) -> None:
        stopped_at, lost = self.state
        if stopped_at is not None:
            self.state = (None, lost + self.clock.now() - stopped_at)

    def advance(self, nanoseconds: int) -> None:
        self.clock.advance(nanoseconds)

    def sleep_until(self, deadline: int | None, doorbell: threading.Event) -> None:
        lost = self.state[1]
        self.clock.sleep_until(None if deadline is None else deadline + lost, doorbell)
# «/A clock that stands still»


# «Interrupts wait while a step runs» book/mastery-gdb.md:326 @f2254747
class SteppingInterrupts(Interrupts):
    """Interrupts that wait while the debugger steps, as QEMU's stub makes them wait."""

    def deliver_pending(self) -> bool:
        debugger = self.host.debugger
        if debugger.halt is not None:
            return False  # a stop is due: deciding on an interrupt could weaken the brake's pull
        if debugger.stepping and not self.host.halted:
            return False
        if not super().deliver_pending():
            return False
        if debugger.stepping:  # a step that woke from HALT ends at the handler's first instruction
            debugger.halt = SIGTRAP
            self.host.break_in()
        return True
# «/Interrupts wait while a step runs»


# «The debugged Host» book/mastery-gdb.md:160 @427cdfcd
class DebuggedHost(Host):
    """A Host with a debugger at the door: it parks the CPU whenever the debugger says."""

    def __init__(self, memory: Any, *, debugger: GdbStub, **options: Any):
        super().__init__(memory, **options)
        self.debugger = debugger
        self.clock = StoppableClock(self.clock)
        self.interrupts = SteppingInterrupts(self)

    def run(self, **where: int) -> Outcome:
        self.debugger.start(self)
        outcome = Outcome("killed", "host error: the run ended without an outcome")
        try:
            outcome = super().run(**where)
        finally:
            self.debugger.finish(outcome)
        return outcome

    def stop(self, reason: str) -> None:
        super().stop(reason)
        self.debugger.wake()

    def break_in(self) -> None:
        """Stop the CPU at its next block, or wake it from HALT: the debugger wants it."""
        self.brake.pull()
        self._doorbell.set()

    def _check_stop(self) -> None:
        super()._check_stop()
        self.debugger.at_a_boundary()
        super()._check_stop()  # a death sentence passed while it was parked
# «/The debugged Host»


# «The stub» book/mastery-gdb.md:964 @ca2d4383
class GdbError(Exception):
    """A request we refuse: the error number goes back as ``E`` and two hex digits."""

    def __init__(self, number: int):
        super().__init__(number)
        self.number = number


def checksum(body: bytes) -> bytes:
    return b"%02x" % (sum(body) & 0xFF)


def hex_number(text: str) -> int:
    """A number in the protocol's hex, and nothing else: no sign, no 0x, no spaces."""
    if not text or len(text) > 16 or text.strip(HEX_DIGITS):
        raise ValueError(f"not a hex number: {text[:20]!r}")
    return int(text, 16)


class GdbStub:
    """The GDB remote serial protocol on one socket, for one guest and one debugger at a time."""

    def __init__(self, address: tuple[str, int], stderr: TextIO):
        self.stderr = stderr
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.listener.bind(address)
            self.listener.listen(2)
        except OSError:
            self.listener.close()
            raise
        self.address = self.listener.getsockname()[:2]
        self.host: DebuggedHost | None = None
        self.lock = threading.Condition(threading.RLock())
        self.wake_reader, self.wake_writer = os.pipe()
        os.set_blocking(self.wake_writer, False)
        self.thread: threading.Thread | None = None
        self.closed = False  # finished: the socket and the pipe are gone
        # What the CPU's thread reads between trips
        self.halt: int | None = SIGTRAP  # why the CPU should stop at its next boundary
        self.first = True  # before the first instruction: wait for a debugger to come
        self.parked = False
        self.resume: str | None = None  # "continue" or "step", from the debugger
        self.stepping = False
        self.step_from: tuple[int, int] = (0, 0)  # where the step began: %eip and %esp
        self.step_seen = False
        self.breakpoints: set[int] = set()
        self.hooks: dict[int, int] = {}  # breakpoint address -> Unicorn hook handle
        self.step_hook: int | None = None
        self.last_stop = SIGTRAP
        self.breakpoint_hit = False
        # What the stub's thread keeps about its debugger
        self.client: socket.socket | None = None
        self.inbox = bytearray()
        self.acks = True
        self.owed = False  # the debugger waits for a stop reply
        self.last_packet = b""
        self.greeted = False  # the debugger has sent a packet: the guest was stopped for it
        self.discard = 0  # bytes of an over-long packet still to throw away (3: up to its '#')
        self.turning_away = 0  # second debuggers being answered, each on a thread of its own
        self.outcome: Outcome | None = None

    # «The CPU's side of the stub» book/mastery-gdb.md:407 @0831c62b
    def start(self, host: DebuggedHost) -> None:
        self.host = host
        self.thread = threading.Thread(target=self.serve, name="lguest-gdb", daemon=True)
        self.thread.start()
        host_name, port = self.address
        host_name = f"[{host_name}]" if ":" in host_name else host_name  # an IPv6 address
        print(f"lguest: waiting for gdb on {host_name}:{port}", file=self.stderr, flush=True)

    def at_a_boundary(self) -> None:
        """Between two trips into the guest: stop here if the debugger wants the guest."""
        host = self.host
        if self.stepping and self.halt is None and (host.regs[EIP], host.regs[ESP]) != self.step_from:
            self.halt = SIGTRAP  # the Host sent the guest elsewhere: a trap, a hypercall served
        if self.halt is None:
            if self.hooks.keys() != self.breakpoints or (self.step_hook is not None) != self.stepping:
                with self.lock:
                    self.arm()  # a debugger that left while the guest ran: its hooks go too
            return
        with self.lock:
            if self.client is not None or self.first:
                self.park()
            else:  # nobody to report to: a departed debugger's last request
                self.halt, self.stepping, self.breakpoint_hit = None, False, False
            self.arm()

    def park(self) -> None:
        host = self.host
        host.clock.stop()
        self.last_stop, self.halt, self.parked = self.halt, None, True
        self.stepping = self.first = False
        self.poke()
        while self.parked and host.stop_request is None:
            self.lock.wait(TICK)
        self.parked, action, self.resume = False, self.resume, None
        self.stepping = action == "step"
        self.step_from = (host.regs[EIP], host.regs[ESP])
        self.step_seen = self.breakpoint_hit = False
        host.clock.start()

    # «Breakpoints and steps as code hooks» book/mastery-gdb.md:351 @4544bfe4
    def arm(self) -> None:
        """Make the CPU's code hooks match the breakpoints and the step asked for."""
        uc, changed = self.host.uc, False
        for address in [address for address in self.hooks if address not in self.breakpoints]:
            uc.hook_del(self.hooks.pop(address))
            changed = True
        for address in self.breakpoints - self.hooks.keys():
            self.hooks[address] = uc.hook_add(UC_HOOK_CODE, self.on_breakpoint,
                                              begin=address, end=address)
            changed = True
        if self.stepping and self.step_hook is None:
            self.step_hook = uc.hook_add(UC_HOOK_CODE, self.on_step, begin=1, end=0)
            changed = True
        elif not self.stepping and self.step_hook is not None:
            uc.hook_del(self.step_hook)
            self.step_hook = None
            changed = True
        if changed:
            uc.ctl_flush_tb()  # nothing translated before keeps a call to a hook that is gone

    def on_breakpoint(self, uc: Any, address: int, size: int, _: Any) -> None:
        if address in self.breakpoints and self.halt is None:
            self.halt, self.breakpoint_hit = SIGTRAP, True
            uc.emu_stop()

    def on_step(self, uc: Any, address: int, size: int, _: Any) -> None:
        if address >= SWITCHER_ADDR:
            self.step_seen = False  # the Switcher, on its way into the guest
        elif not self.step_seen:
            self.step_seen = True  # the one instruction the step runs
        elif self.halt is None:
            self.halt = SIGTRAP
            uc.emu_stop()
    # «/Breakpoints and steps as code hooks»
    # «/The CPU's side of the stub»

    # «The stub's thread» book/mastery-gdb.md:474 @65b7cc48
    def serve(self) -> None:
        try:
            while self.outcome is None:
                waiting = [self.listener, self.wake_reader] + ([self.client] if self.client else [])
                ready, _, _ = select.select(waiting, [], [], TICK)
                if self.wake_reader in ready:
                    os.read(self.wake_reader, 512)
                if self.listener in ready:
                    self.accept()
                if self.client is not None and self.client in ready:
                    self.receive()
                self.report()
            self.report()
        except Exception as error:  # a bug in the stub must not take the guest with it
            print(f"lguest: gdb: the stub failed: {error!r}", file=self.stderr, flush=True)
            with self.lock:
                self.first, self.halt, self.stepping = False, None, False  # nobody will come now
                self.listener.close()
        finally:
            self.hang_up()

    def report(self) -> None:
        """Send the stop reply the debugger waits for, once there is one."""
        with self.lock:
            if not self.owed or self.client is None:
                return
            if self.outcome is not None:
                reply = (b"W%02x" % {"poweroff": 0, "restart": 3}[self.outcome.kind]
                         if self.outcome.kind in ("poweroff", "restart") else b"X%02x" % SIGKILL)
            elif self.parked:
                reply = self.stop_reply()
            else:
                return
            self.owed = False
        self.send(reply)

    def stop_reply(self) -> bytes:
        return b"T%02x" % self.last_stop + (b"swbreak:;" if self.breakpoint_hit else b"")
    # «/The stub's thread»

    # «One debugger at a time» book/mastery-gdb.md:543 @3db3e88b
    def accept(self) -> None:
        connection, peer = self.listener.accept()
        if self.client is not None:
            print(f"lguest: gdb: a second debugger, from {peer[0]}:{peer[1]}, was turned away",
                  file=self.stderr, flush=True)
            with self.lock:
                if self.turning_away >= MAX_TURNING_AWAY:
                    connection.close()  # too many at once: no manners for a crowd
                    return
                self.turning_away += 1
            threading.Thread(target=self.turn_away, args=(connection,), daemon=True).start()
            return
        connection.settimeout(SEND_TIMEOUT)
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if hasattr(socket, "TCP_KEEPIDLE"):  # notice a peer that vanished without a word
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE)
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPALIVE)
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
        self.client, self.inbox, self.acks, self.owed = connection, bytearray(), True, False
        self.greeted, self.discard = False, 0

    def turn_away(self, connection: socket.socket) -> None:
        """Answer a second debugger's first words with EBUSY, and close, politely."""
        try:
            self._turn_away(connection)
        finally:
            with self.lock:
                self.turning_away -= 1

    def _turn_away(self, connection: socket.socket) -> None:
        connection.settimeout(TURN_AWAY)
        try:
            connection.recv(4096)  # its opening packet, if it says one soon: GDB's qSupported
        except OSError:
            pass
        try:
            connection.sendall(b"+$E%02x#" % EBUSY + checksum(b"E%02x" % EBUSY))
            connection.shutdown(socket.SHUT_WR)
            connection.recv(4096)  # closing on bytes it sent and we never read would reset it
        except OSError:
            pass
        connection.close()

    def hang_up(self) -> None:
        """The debugger has gone: as if it had detached."""
        if self.client is not None:
            self.client.close()
            self.client = None
        with self.lock:
            self.breakpoints.clear()
            self.owed = False
            if self.parked:
                self.resume, self.parked = "continue", False
            self.lock.notify_all()

    def interrupt(self) -> None:
        """Stop the running guest at its next block, with the Host's brake."""
        with self.lock:
            if not self.parked and self.halt is None:
                self.halt = SIGINT
                self.host.break_in()

    def wake(self) -> None:
        with self.lock:
            self.lock.notify_all()
        self.poke()

    def poke(self) -> None:
        with self.lock:
            if self.closed:
                return  # the pipe's numbers may belong to somebody else's files by now
            try:
                os.write(self.wake_writer, b"!")
            except OSError:
                pass  # the pipe is full, so a wake-up is waiting already

    def finish(self, outcome: Outcome) -> None:
        with self.lock:
            self.outcome = outcome
        self.poke()
        if self.thread is not None:
            self.thread.join(1.0)  # time to tell the debugger how the guest ended
            client = self.client
            if self.thread.is_alive() and client is not None:
                try:
                    client.shutdown(socket.SHUT_RDWR)  # a debugger that stopped reading: let go
                except OSError:
                    pass
            self.thread.join(SEND_TIMEOUT + 1)
        with self.lock:
            self.closed = True
            self.listener.close()
            os.close(self.wake_reader)
            os.close(self.wake_writer)
    # «/One debugger at a time»

    # «Packets» book/mastery-gdb.md:661 @f1c68256
    def send(self, body: bytes) -> None:
        packet = b"$" + body + b"#" + checksum(body)
        self.last_packet = packet
        self.transmit(packet)

    def transmit(self, data: bytes) -> None:
        if self.client is None:
            return
        try:
            self.client.sendall(data)
        except OSError:
            self.hang_up()

    def receive(self) -> None:
        try:
            data = self.client.recv(4096)
        except OSError:
            data = b""
        if not data:
            self.hang_up()
            return
        self.inbox += data
        while self.client is not None and self.inbox:
            if self.discard:  # the tail of a packet too long to take, up to its checksum, unread
                if self.discard > 2:
                    end, fresh = self.inbox.find(b"#"), self.inbox.find(b"$")
                    if 0 <= fresh and (end < 0 or fresh < end):  # it never ended: a new one begins
                        del self.inbox[:fresh]
                        self.discard = 0
                        continue
                    if end < 0:
                        self.inbox.clear()
                        return
                    del self.inbox[:end + 1]
                    self.discard = 2
                taken = min(self.discard, len(self.inbox))
                del self.inbox[:taken]
                self.discard -= taken
                continue
            first = self.inbox[0]
            if first == 0x03:
                del self.inbox[0]
                self.interrupt()
                with self.lock:
                    self.owed = self.owed or not self.parked
            elif first == ord("-"):
                del self.inbox[0]
                self.transmit(self.last_packet)
            elif first == ord("$"):
                end = self.inbox.find(b"#")
                if end < 0 or len(self.inbox) < end + 3:
                    if len(self.inbox) > PACKET_SIZE:
                        self.inbox.clear()  # no end in sight: throw it away, to its end, and ask again
                        self.discard = 3
                        self.transmit(b"-")
                    return
                body, sum_ = bytes(self.inbox[1:end]), bytes(self.inbox[end + 1:end + 3])
                del self.inbox[:end + 3]
                if self.acks and sum_.lower() != checksum(body):
                    self.transmit(b"-")
                    continue
                if self.acks:
                    self.transmit(b"+")
                self.dispatch(body)
            else:
                del self.inbox[0]  # an ack, or noise between packets

    def dispatch(self, body: bytes) -> None:
        if not self.greeted:  # a debugger that has spoken finds the guest stopped, as GDB expects
            self.greeted = True
            self.interrupt()
        try:
            with self.lock:
                reply = self.answer(body.decode("latin-1"))
        except GdbError as error:
            reply = "E%02x" % error.number
        except (ValueError, IndexError):
            reply = "E%02x" % EINVAL
        if reply is not None:
            self.send(reply.encode("latin-1"))
        if body == b"QStartNoAckMode" and reply == "OK":
            self.acks = False
        if body in (b"D", b"k") or body.startswith((b"D;", b"vKill")):
            self.hang_up()
    # «/Packets»

    # «Answering gdb» book/mastery-gdb.md:765 @2cb0a896
    def answer(self, packet: str) -> str | None:
        """The reply to one packet, or None when it has none (yet)."""
        kind, rest = packet[:1], packet[1:]
        if packet == "?":
            if self.parked:
                return self.stop_reply().decode()
            self.owed = True
            return None
        if packet.startswith("qSupported"):
            return f"PacketSize={PACKET_SIZE:x};qXfer:features:read+;swbreak+;QStartNoAckMode+"
        if packet == "QStartNoAckMode":
            return "OK"
        if packet.startswith("qXfer:features:read:target.xml:"):
            offset, length = (hex_number(part) for part in packet.split(":")[4].split(","))
            piece = TARGET_XML[offset:offset + min(length, MAX_READ)]
            return ("m" if offset + len(piece) < len(TARGET_XML) else "l") + piece
        if packet in THREAD_ANSWERS:
            return THREAD_ANSWERS[packet]
        if kind and kind in "HT":
            return "OK"
        if packet == "k" or packet.startswith("vKill"):
            self.host.stop("killed from the debugger")
            return "OK" if packet.startswith("vKill") else None
        if kind == "D":
            return "OK"  # and dispatch hangs up, which lets the guest go
        if not kind or kind not in "gGpPmMZzcs":
            return ""  # not something we do: GDB takes the empty reply as "unsupported"
        if not self.parked:
            raise GdbError(EBUSY)
        # «Answers about the guest» book/mastery-gdb.md:798 @7f9d7b93
        if kind == "g":
            return "".join(self.register(name).to_bytes(4, "little").hex()
                           for name in GDB_REGISTERS) + NO_X87
        if kind == "G":
            values = bytes.fromhex(rest[:8 * len(GDB_REGISTERS)])
            if len(values) != 4 * len(GDB_REGISTERS):
                raise GdbError(EINVAL)
            new = {name: int.from_bytes(values[4 * index:4 * index + 4], "little")
                   for index, name in enumerate(GDB_REGISTERS)}
            for name, value in new.items():
                self.check_register(name, value)
            for name, value in new.items():
                self.set_register(name, value)
            return "OK"
        if kind == "p":
            number = hex_number(rest)
            if number < len(GDB_REGISTERS):
                return self.register(GDB_REGISTERS[number]).to_bytes(4, "little").hex()
            if number - len(GDB_REGISTERS) < len(X87_REGISTERS):
                return "x" * (20 if number < len(GDB_REGISTERS) + 8 else 8)  # unavailable
            raise GdbError(EINVAL)
        if kind == "P":
            number, value = rest.split("=")
            number = hex_number(number)
            if number >= len(GDB_REGISTERS) or len(value) != 8:
                raise GdbError(EINVAL)
            name, value = GDB_REGISTERS[number], int.from_bytes(bytes.fromhex(value), "little")
            self.check_register(name, value)
            self.set_register(name, value)
            return "OK"
        if kind == "m":
            address, length = (hex_number(part) for part in rest.split(","))
            if not length:
                raise GdbError(EINVAL)  # an empty reply would say "not supported", not "no bytes"
            return self.read(address, min(length, MAX_READ)).hex()
        if kind == "M":
            where, data = rest.split(":")
            address, length = (hex_number(part) for part in where.split(","))
            data = bytes.fromhex(data)
            if len(data) != length:
                raise GdbError(EINVAL)
            self.write(address, data)
            return "OK"
        if kind in "Zz":
            type_, address, _ = rest.split(",")
            if type_ not in ("0", "1"):
                return ""  # watchpoints: not offered
            address = hex_number(address)
            if address >= SWITCHER_ADDR:
                raise GdbError(EINVAL)  # beyond 32 bits, or in the Switcher: no guest code runs there
            if kind == "Z":
                if address not in self.breakpoints and len(self.breakpoints) >= MAX_BREAKPOINTS:
                    raise GdbError(EBUSY)
                self.breakpoints.add(address)
            else:
                self.breakpoints.discard(address)
            return "OK"
        if rest:  # c or s from an address
            self.set_register("eip", hex_number(rest) & 0xFFFFFFFF)
        self.resume = "continue" if kind == "c" else "step"
        self.parked, self.owed = False, True
        self.lock.notify_all()
        return None
        # «/Answers about the guest»
    # «/Answering gdb»

    # «Registers and memory for gdb» book/mastery-gdb.md:903 @c99f3deb
    def register(self, name: str) -> int:
        return self.host.regs[REGISTER[name]]

    def check_register(self, name: str, value: int) -> None:
        if name in SEGMENTS and value != self.register(name):
            raise GdbError(EINVAL)  # segments are the Host's to check, not ours to change

    def set_register(self, name: str, value: int) -> None:
        if name == "eflags":
            value = self.register(name) & ~GUEST_FLAGS | value & GUEST_FLAGS
        self.host.regs[REGISTER[name]] = value

    def physical(self, address: int) -> int:
        """The guest-physical address behind a guest-virtual one, or EFAULT."""
        try:
            found = self.host.pages.translate(address, write=False)
        except (Killed, GuestMemoryError, IndexError):
            found = None
        if found is None:
            raise GdbError(EFAULT)
        return found

    def read(self, address: int, length: int) -> bytes:
        data = bytearray()
        while len(data) < length:
            try:
                where = self.physical(address + len(data) & 0xFFFFFFFF)
            except GdbError:
                if data:
                    break  # a short read: what was mapped, up to the first hole
                raise
            take = min(length - len(data), PAGE_SIZE - (where & 0xFFF))
            data += self.host.memory.read(where, take)
        return bytes(data)

    def write(self, address: int, data: bytes) -> None:
        pieces, done = [], 0
        while done < len(data):
            where = self.physical(address + done & 0xFFFFFFFF)
            take = min(len(data) - done, PAGE_SIZE - (where & 0xFFF))
            pieces.append((where, data[done:done + take]))
            done += take
        for where, piece in pieces:  # every page checked first: all or nothing
            self.host.memory.write(where, piece)
    # «/Registers and memory for gdb»
# «/The stub»
# «/src/lguest/gdbstub.py»
