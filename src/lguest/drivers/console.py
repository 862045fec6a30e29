# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/drivers/console.py» book/drivers.md:1105 @4f35ef3e
"""virtio-console: text out to a stream, keys in from another."""

from __future__ import annotations

import atexit
import os
import signal
import termios
import threading
from typing import Any, BinaryIO

from ..memory import GuestMemoryError
from .mmio import CONSOLE, INTERRUPT_USED, VirtioDevice
from .virtqueue import Chain, RingError, Virtqueue

RECEIVE, TRANSMIT = 0, 1
HANGUPS = (signal.SIGHUP, signal.SIGTERM)  # signals that end us politely: restore, then die


class Console(VirtioDevice):
    device_id = CONSOLE
    name = "virtio-console"
    queue_sizes = (64, 64)

    def __init__(self, output: BinaryIO, input: BinaryIO | None = None, *,
                 deterministic: bool = False, **placement):
        self.output, self.input, self.deterministic = output, input, deterministic
        self.pending = bytearray()
        self.ended = input is None  # no more bytes will come
        self.told_end = False  # and the guest has had its zero-length read
        self.saved_terminal: list | None = None
        self.saved_handlers: dict[int, Any] = {}
        super().__init__(**placement)

    def config(self) -> bytes:
        return bytes(12)  # columns, rows, ports, emergency write: none offered

    def handle(self, queue: Virtqueue, chain: Chain) -> int:
        for view in chain.readable:
            self.output.write(view)
        self.output.flush()
        return 0

    def service(self, queue: Virtqueue) -> None:
        if queue.index == TRANSMIT:
            super().service(queue)
        else:
            self.deliver()

    # «Console input» book/drivers.md:1166 @11a24847
    def feed(self, data: bytes) -> None:
        """Bytes typed for the guest: deliver what fits now, keep the rest."""
        with self.lock:
            self.pending += data
            self.deliver()

    def end(self) -> None:
        """No more bytes will come: tell the guest, once the ones before have been delivered."""
        with self.lock:
            self.ended = True
            self.deliver()

    def deliver(self) -> None:
        queue = self.usable(RECEIVE)
        if queue is None:
            return  # the guest is not listening yet; the bytes wait
        used = 0
        try:
            while self.pending and (chain := queue.pop()) is not None:
                count = chain.write(0, bytes(self.pending[:chain.writable_size]))
                del self.pending[:count]
                queue.push(chain, count)
                used += 1
            if self.ended and not self.pending and not self.told_end:
                if (chain := queue.pop()) is not None:
                    queue.push(chain, 0)  # a zero-length read: the end of the input
                    self.told_end = True
                    used += 1
        except (RingError, GuestMemoryError) as error:
            self.fail(queue, str(error))
        if used and queue.wants_interrupt():
            self.interrupt(INTERRUPT_USED)

    def on_driver_ok(self) -> None:
        self.deliver()

    def on_reset(self) -> None:
        self.told_end = False  # a driver that starts again must hear of the end again

    def start(self) -> None:
        if self.input is None:
            return
        if self.deterministic:
            self.pending += self.input.read()
            self.ended = True
            return
        self.quiet_terminal()
        threading.Thread(target=self._reader, name="lguest-console", daemon=True).start()

    def _reader(self) -> None:
        read = getattr(self.input, "read1", None) or self.input.read
        while not self.ended:
            try:
                data = read(4096)
            except (OSError, ValueError):
                data = b""
            try:
                if not data:
                    self.end()
                    return
                self.feed(data)
            except Exception:  # the guest was killed while we delivered: stop reading
                self.ended = True
                return

    def may_wake(self) -> bool:
        return not self.ended

    def quiet_terminal(self) -> None:
        """Raw but for Ctrl-C: every key to the guest as it comes, nothing echoed."""
        try:
            fd = self.input.fileno()
            if not os.isatty(fd):
                return
            self.saved_terminal = termios.tcgetattr(fd)
            disabled = bytes([os.fpathconf(fd, "PC_VDISABLE")])  # "no key": 0 on Linux
        except (OSError, ValueError, AttributeError, termios.error):
            self.saved_terminal = None
            return
        raw = termios.tcgetattr(fd)
        raw[0] &= ~termios.IXON  # Ctrl-S and Ctrl-Q go to the guest
        raw[3] &= ~(termios.ICANON | termios.ECHO | termios.IEXTEN)
        raw[6][termios.VQUIT] = raw[6][termios.VSUSP] = disabled  # Ctrl-\ and Ctrl-Z: keys too
        raw[6][termios.VMIN], raw[6][termios.VTIME] = 1, 0  # every key, as soon as it comes
        self.catch_hangups()
        termios.tcsetattr(fd, termios.TCSANOW, raw)
        atexit.register(self.close)

    def catch_hangups(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal.signal would refuse; close and atexit are all we have
        for number in HANGUPS:
            previous = signal.getsignal(number)
            if previous == signal.SIG_IGN:
                continue  # nohup: whoever ignored it meant it
            self.saved_handlers[number] = signal.SIG_DFL if previous is None else previous
            signal.signal(number, self.hung_up)

    def hung_up(self, number: int, frame: Any) -> None:
        """SIGTERM or SIGHUP: the terminal back first, then the death that was asked for."""
        previous = self.saved_handlers.get(number, signal.SIG_DFL)
        self.restore_terminal()
        signal.signal(number, previous)  # the handler runs in the main thread, so this is allowed
        os.kill(os.getpid(), number)

    def close(self) -> None:
        self.ended = True
        self.restore_terminal()

    def restore_terminal(self) -> None:
        if self.saved_terminal is not None:
            try:
                termios.tcsetattr(self.input.fileno(), termios.TCSANOW, self.saved_terminal)
            except (OSError, ValueError, termios.error):
                pass
            self.saved_terminal = None
        if threading.current_thread() is threading.main_thread():
            for number, previous in list(self.saved_handlers.items()):
                if signal.getsignal(number) == self.hung_up:  # unless somebody has since taken over
                    signal.signal(number, previous)
                del self.saved_handlers[number]
    # «/Console input»
# «/src/lguest/drivers/console.py»
