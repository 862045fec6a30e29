# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/host/core.py»[2] book/switcher.md:864 @aeb8e87d
"""The Host's core: the run-guest loop and the traps that end each trip."""

from __future__ import annotations

import ctypes
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable

from unicorn.unicorn_py3.unicorn import uclib
from unicorn import (UC_ARCH_X86, UC_HOOK_INSN, UC_HOOK_INSN_INVALID, UC_HOOK_INTR, UC_MODE_32,
                     Uc, UcError)
from unicorn.x86_const import (UC_X86_INS_CPUID, UC_X86_INS_IN, UC_X86_INS_OUT, UC_X86_REG_CR2,
                               UC_X86_REG_CS, UC_X86_REG_EIP)

from ..abi import (ASYNC_READY, HYPERCALL_NAMES, HYPERCALL_VECTOR, HYPERCALLS, KERNEL_CS,
                   KERNEL_DS, LGUEST_DATA, TIMER_IRQ, X86_EFLAGS_IF)
from ..memory import GuestMemory, GuestMemoryError
from ..switcher import CODE_ADDRESS, FRAME, RegisterFile, Switcher
from .brake import Brake
from .hypercalls import HANDLERS, IN_HOOK, Shutdown, do_hypercall, run_async
from .interrupts import ERROR_CODE_VECTORS, HYPERCALL_DPL, TRAP_NAMES, Interrupts
from .page_tables import POOL_PAGES, ShadowPages

PAGE_FAULT, DOUBLE_FAULT, INVALID_OPCODE = 14, 8, 6
TICK = 0.1  # the timer thread looks in at least this often, in seconds
SLICE = 200_000  # instructions per slice in deterministic mode
EXIT_COST_NS = 1_000  # virtual nanoseconds charged for each exit in deterministic mode

# «Outcomes and exits» book/host.md:68 @08306ab1
class Killed(Exception):
    """Raised anywhere in the Host to end the guest, with a one-line reason."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Outcome:
    """How a guest's run ended."""

    kind: str  # "poweroff", "restart" or "killed"
    reason: str  # the guest's message, or why it was killed


@dataclass(frozen=True)
class Exit:
    """One exit from the guest, for whoever watches with --verbose."""

    kind: str  # "hypercall", "trap", "interrupt" or "timer"
    eip: int
    vector: int | None = None
    name: str = ""
    handler: Callable | None = None
# «/Outcomes and exits»


# «Register the trap hook» book/host.md:773 @ee2467ac
TRAP_HOOK = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p)


def hook_traps(uc: Uc, callback: Callable[[int, int, int], None]):
    """Call ``callback(engine, vector, data)`` on every trap; keep the result alive."""
    function = TRAP_HOOK(callback)
    handle = ctypes.c_size_t()
    status = uclib.uc_hook_add(uc._uch, ctypes.byref(handle), UC_HOOK_INTR,
                               ctypes.cast(function, ctypes.c_void_p), None, 1, 0)
    if status:
        raise UcError(status)
    return function
# «/Register the trap hook»


# «Clocks» book/host-interrupts.md:984 @8c2bf6d9
class WallClock:
    """Real time, in nanoseconds since the guest started."""

    def __init__(self):
        self.start = time.monotonic_ns()

    def now(self) -> int:
        return time.monotonic_ns() - self.start

    def advance(self, nanoseconds: int) -> None:
        """Real time needs no help."""

    def sleep_until(self, deadline: int | None, doorbell: threading.Event) -> None:
        """Sleep until the deadline, an interrupt from another thread, or a tick."""
        wait = TICK if deadline is None else max(0.0, min(TICK, (deadline - self.now()) / 1e9))
        if doorbell.wait(wait):
            doorbell.clear()


class VirtualClock:
    """Deterministic time: advanced by the Host, by instructions and exits."""

    def __init__(self):
        self.nanoseconds = 0

    def now(self) -> int:
        return self.nanoseconds

    def advance(self, nanoseconds: int) -> None:
        self.nanoseconds += nanoseconds

    def sleep_until(self, deadline: int | None, doorbell: threading.Event) -> None:
        """Jump to the deadline; with none, only the world outside can wake us: wait for it."""
        if deadline is not None:
            self.nanoseconds = max(self.nanoseconds, deadline)
        elif doorbell.wait(TICK):
            doorbell.clear()
# «/Clocks»


# «The Host's state»[2] book/switcher.md:916 @18947680
REGISTER = {name: index for index, name in enumerate(FRAME)}  # where each one is kept
EIP, CS, EFLAGS, ESP, SS = (REGISTER[name] for name in ("eip", "cs", "eflags", "esp", "ss"))
ASYNC_STATUS = LGUEST_DATA["async_status"]
LGUEST_INIT = HYPERCALLS["LGUEST_INIT"]


class Host:
    """One guest, its CPU, and everything the hypervisor knows about it."""

    def __init__(self, memory: GuestMemory, *, console=None, deterministic: bool = False,
                 trace: Callable[[Exit], None] | None = None, console_input=None,
                 shadow_pool_pages: int = POOL_PAGES):
        self.memory = memory
        self.uc = uc = Uc(UC_ARCH_X86, UC_MODE_32)
        memory.map_into(uc)
        self.switcher = Switcher(uc)
        self.pages = ShadowPages(uc, memory, self.kill, shadow_pool_pages)
        self.interrupts = Interrupts(self)
        self.cpu = RegisterFile(uc)
        self.console = console if console is not None else sys.stdout.buffer
        self.console_input = console_input  # an EarlyConsole, or None for no input at all
        self.deterministic = deterministic
        self.clock = VirtualClock() if deterministic else WallClock()
        self.trace = trace
        self.regs = [0] * len(FRAME)
        self.lguest_data: int | None = None  # guest-physical, after LGUEST_INIT
        self.next_async = 0  # the next slot of the asynchronous ring
        self.kernel_stack = (KERNEL_DS, 0)  # from SET_STACK
        self.ts = False  # the guest's task-switched bit, from TS
        self.halted = False
        self.deadline: int | None = None  # the clock event, in clock nanoseconds
        self.trap: int | None = None  # the vector of the exit being handled
        self.error_code = 0  # and, for a fault, its error code
        self.software = False  # and whether an int instruction raised it, rather than a fault
        self.fault_address = 0  # and, for a page fault, the address
        self.dead: str | None = None
        self.stop_request: str | None = None
        self.running = False
        self.exits = 0
        self.devices: list = []  # virtio devices, from add_device
        self.voucher = b""  # the Beer, for the BEER hypercall: the Launcher's to give (Mastery)
        self._wake = threading.Event()
        self._doorbell = threading.Event()  # rung when a line is raised, to wake a sleeping HALT
        self._wakes_at = 0  # when the timer thread next looks in, clock nanoseconds
        self._cpu_thread: int | None = None  # the thread that runs the guest
        self._trap_hook = hook_traps(uc, self._fast_path())
        self.brake = Brake(uc, memory)
        uc.hook_add(UC_HOOK_INSN, self._on_in, aux1=UC_X86_INS_IN)
        uc.hook_add(UC_HOOK_INSN, self._on_out, aux1=UC_X86_INS_OUT)
        uc.hook_add(UC_HOOK_INSN, self._on_cpuid, aux1=UC_X86_INS_CPUID)
        uc.hook_add(UC_HOOK_INSN_INVALID, self._on_invalid)

    # «Killing and stopping» book/host-boot.md:239 @a6ab1af0
    def kill(self, reason: str):
        """End the guest with a one-line reason. Never returns."""
        raise Killed(reason)

    def stop(self, reason: str) -> None:
        """Ask, from any thread, for the guest to be killed with ``reason``."""
        self.stop_request = reason
        self.brake.pull_for_good()
        self._wake.set()
        self._doorbell.set()

    def _check_stop(self) -> None:
        if self.dead is not None:
            raise Killed(self.dead)
        if self.stop_request is not None:
            raise Killed(f"stopped by the host: {self.stop_request}")
    # «/Killing and stopping»

    # «Run the guest» book/host.md:205 @86c50699
    def run(self, *, entry: int, stack: int, boot: int, pgdir: int) -> Outcome:
        """Run the guest from ``entry`` until it shuts down or dies."""
        self._cpu_thread = threading.get_ident()
        self.regs = [0] * len(REGISTER)
        for name, value in (("ds", KERNEL_DS), ("es", KERNEL_DS), ("fs", KERNEL_DS), ("gs", KERNEL_DS),
                            ("esi", boot), ("eip", entry), ("cs", KERNEL_CS), ("eflags", 0x202),
                            ("esp", stack), ("ss", KERNEL_DS)):
            self.regs[REGISTER[name]] = value  # the ABI's promises; every other register is 0
        timer = None if self.deterministic else threading.Thread(target=self._timer, daemon=True)
        try:
            self.pages.new_pgtable(pgdir)
            if self.console_input is not None:
                self.console_input.start(self)
            if timer:
                timer.start()
            while True:
                self.brake.release()  # whatever it was pulled for, we look at everything now
                self._check_stop()
                self._tick()
                if self.halted:
                    self._sleep()
                interrupted = self.regs[EIP]
                if self.interrupts.deliver_pending():
                    self.halted = False
                    self.update_time()
                    self._trace("interrupt", self.interrupts.last_vector, eip=interrupted)
                if not self.halted:
                    self._run_once()
                    self._handle(self.trap)
        except Killed as death:
            self.dead = death.reason
            return Outcome("killed", death.reason)
        except GuestMemoryError as error:
            self.dead = str(error)
            return Outcome("killed", str(error))
        except Shutdown as request:
            return Outcome(request.kind, request.message)
        except KeyboardInterrupt:
            return Outcome("killed", "interrupted from the keyboard")
        except Exception as error:  # a bug in the Host: report it in one line, like any death
            self.dead = f"host error: {error!r}"
            return Outcome("killed", self.dead)
        finally:
            self.stop_request = self.stop_request or "the guest has stopped"
            self._wake.set()
            if timer:
                timer.join()
    # «/Run the guest»

    # «One trip into the Guest»[2] book/switcher.md:996 @2c20c80a
    def _run_once(self) -> None:
        self.trap = None
        self.switcher.enter(self.regs, self.pages.cr3, self.ts, self.pages.flush)
        self.pages.flush = False
        self.running = True
        try:
            if self.stop_request is None:
                self.memory.settle()  # what the Host wrote since the last trip, the CPU now sees
                self.uc.emu_start(CODE_ADDRESS, self.switcher.stop_address,
                                  count=SLICE if self.deterministic else 0)
        except UcError as error:
            if self.uc.reg_read(UC_X86_REG_CS) & 3 == 0:
                self.kill(f"the Switcher failed: {error}")
            self._save()
            self.kill(f"{error} at {self.regs[EIP]:#x}")
        finally:
            self.running = False
        if self.dead is not None:
            raise Killed(self.dead)
        frame = self.cpu.frame()
        if frame[CS] & 3 == 0:
            return  # stopped inside the Switcher: the guest never ran
        self.regs[:] = frame
        self.exits += 1
        self.clock.advance(EXIT_COST_NS if self.trap is not None else SLICE)


    def _save(self) -> None:
        """Copy the guest's registers out of the CPU into ``self.regs``."""
        self.regs[:] = self.cpu.frame()
    # «/One trip into the Guest»

    # «The trap hook» book/host.md:684 @016c9724
    def _fast_path(self) -> Callable[[int, int, int], None]:
        """The trap hook: serve a hypercall in place if we may, else stop for the loop."""
        host, in_hook, view = self, IN_HOOK, self.memory.view
        registers = self.cpu.hypercall  # eax, ecx, edx, ebx, esi, cs: the CPU's own order
        accounting = self.deterministic or self.trace is not None  # both fixed at birth
        ring = HYPERCALL_DPL  # the outermost ring a hypercall may come from

        def on_trap(_engine: int, vector: int, _data: int) -> None:
            try:
                if vector == HYPERCALL_VECTOR:
                    number, a2, a3, a1, a4, cs = registers()
                    handler = in_hook.get(number) if cs & 3 <= ring else None  # the kernel's alone
                    data = host.lguest_data
                    # Not before LGUEST_INIT (but INIT itself), nor with calls queued in the ring.
                    if handler is not None and (number == LGUEST_INIT if data is None else
                                                view[data + ASYNC_STATUS + host.next_async]
                                                != ASYNC_READY):
                        host.exits += 1
                        if accounting:
                            host._account_in_hook(number)
                        handler(host, a1, a2, a3, a4)
                        return
                host._stop_for(vector)
            except Exception as error:  # never let a Host bug vanish inside Unicorn
                host._die_in_hook(error)

        return on_trap


    def _stop_for(self, vector: int) -> None:
        """The long way: note the trap and its details, and stop the CPU for the loop."""
        self.trap, self.software = vector, True  # only int $0x1f raises vector 31
        if vector != HYPERCALL_VECTOR:  # the fault's details, before anything can disturb them
            self.cpu.load()
            self.software = bool(self.cpu["is_int"])
            self.error_code = self.cpu["error_code"]
            self.fault_address = self.uc.reg_read(UC_X86_REG_CR2) if vector == PAGE_FAULT else 0
        self.uc.emu_stop()


    def _account_in_hook(self, number: int) -> None:
        """What a served hypercall owes the virtual clock and the watcher."""
        if self.deterministic:
            self.clock.advance(EXIT_COST_NS)
        if self.trace is not None:
            self._trace("hypercall", HYPERCALL_VECTOR, number, eip=self.uc.reg_read(UC_X86_REG_EIP))


    def _die_in_hook(self, error: Exception) -> None:
        """Turn anything raised in the hook into a death sentence, and stop the CPU."""
        if isinstance(error, Killed):
            self.dead = error.reason
        elif isinstance(error, GuestMemoryError):
            self.dead = str(error)
        else:
            self.dead = f"host error in the trap hook: {error!r}"
        self.uc.emu_stop()


    def _on_in(self, uc: Uc, port: int, size: int, _) -> int:
        return (1 << 8 * size) - 1  # nothing answers, so the bus floats high


    def _on_out(self, uc: Uc, port: int, size: int, value: int, _) -> None:
        """Nothing listens on any port; the write goes nowhere."""


    def _on_cpuid(self, uc: Uc, _) -> int:
        """CPUID serializes: after it, the guest may run code the Host or a device wrote."""
        self.memory.settle()
        return 0  # and Unicorn answers the question itself


    def _on_invalid(self, uc: Uc, _) -> bool:
        self.trap, self.software = INVALID_OPCODE, False
        uc.emu_stop()
        return True
    # «/The trap hook»

    # «Handle an exit» book/host.md:818 @39c727da
    def _handle(self, vector: int | None) -> None:
        regs = self.regs
        if vector is None:
            self._trace("timer", None)
            return
        if vector == HYPERCALL_VECTOR and regs[CS] & 3 <= HYPERCALL_DPL:
            number = regs[REGISTER["eax"]]
            self._trace("hypercall", vector, number)
            if self.lguest_data is not None:
                run_async(self)
            result = do_hypercall(self, number, *(regs[REGISTER[name]] for name in ("ebx", "ecx", "edx", "esi")))
            if result is not None:
                regs[REGISTER["eax"]] = result & 0xFFFFFFFF
            return
        # «An int instruction»[2] book/switcher-shadows.md:669 @2ba2a1fc
        if self.software:  # int $n, int3 or into: the gate decides who may come in
            self._trace("trap", vector, handler=self.interrupts.deliver_software)
            self.interrupts.deliver_software(vector)
            return
        # «/An int instruction»
        if vector == DOUBLE_FAULT:
            self._trace("trap", vector)
            self.kill(f"double fault at {regs[EIP]:#x}")
        # «A page fault»[2] book/switcher-shadows.md:215 @a74f6062
        if vector == PAGE_FAULT:
            address, error = self.fault_address, self.error_code
            if self.pages.demand_page(address, write=bool(error & 2), user=bool(error & 4)):
                self._trace("trap", vector, handler=self.pages.demand_page)
                return
            if self.lguest_data is not None:
                self.memory.write_u32(self.lguest_data + LGUEST_DATA["cr2"], address)
        # «/A page fault»
        self._trace("trap", vector)
        self.interrupts.deliver_trap(vector, self.error_code if vector in ERROR_CODE_VECTORS else None)


    def _trace(self, kind: str, vector: int | None, number: int | None = None,
               eip: int | None = None, handler: Callable | None = None) -> None:
        if self.trace is None:
            return
        if number is not None:
            name, handler = HYPERCALL_NAMES.get(number, f"#{number}"), HANDLERS.get(number)
        else:
            name = TRAP_NAMES.get(vector, "" if vector is None else f"vector {vector}")
            handler = handler or {"timer": self._tick, "interrupt": self.interrupts.deliver_pending}.get(
                kind, self.interrupts.deliver_trap)
        self.trace(Exit(kind, self.regs[EIP] if eip is None else eip, vector, name, handler))
    # «/Handle an exit»

    # «Time passes» book/host-interrupts.md:844 @cbb53860
    def _timer(self) -> None:
        """The timer thread: pull the brake when the deadline comes, and look in every TICK."""
        pulled_for = None  # the deadline the brake was last pulled for
        while self.stop_request is None:
            deadline, wait = self.deadline, TICK
            if deadline is not None and deadline != pulled_for:
                wait = max(0.0, min(wait, (deadline - self.clock.now()) / 1e9))
            self._wakes_at = self.clock.now() + int(wait * 1e9)
            if self.deadline != deadline:
                continue  # a new deadline arrived while we planned: plan again
            if self._wake.wait(wait):
                self._wake.clear()  # woken early to look at a new deadline: plan again
                continue
            if deadline is not None and deadline != pulled_for and self.clock.now() >= deadline:
                self.brake.pull()
                pulled_for = deadline


    def wake_timer(self) -> None:
        """A new deadline: wake the timer thread, if it would otherwise sleep past it."""
        if self.deadline is not None and self.deadline < self._wakes_at:
            self._wake.set()


    def _tick(self) -> None:
        if self.deadline is not None and self.clock.now() >= self.deadline:
            self.deadline = None
            self.interrupts.raise_irq(TIMER_IRQ)


    def raise_interrupt(self, line: int) -> None:
        """Raise an interrupt line from any thread: the CPU stops at its next block."""
        self.interrupts.raise_irq(line)
        self._doorbell.set()
        self.brake.pull()


    def update_time(self) -> None:
        if self.lguest_data is not None:
            now = self.clock.now()
            self.memory.write_u32(self.lguest_data + LGUEST_DATA["time_sec"], now // 1_000_000_000)
            self.memory.write_u32(self.lguest_data + LGUEST_DATA["time_nsec"], now % 1_000_000_000)
    # «/Time passes»

    # «Sleep until something happens» book/host-interrupts.md:939 @f1c8ba3f
    def _sleep(self) -> None:
        """HALT: turn interrupts on, as sti; hlt would, and sleep until one can be delivered."""
        self.memory.write_u32(self.lguest_data + LGUEST_DATA["irq_enabled"], X86_EFLAGS_IF)
        while self.interrupts.deliverable() is None:
            if self.deadline is None and not self._may_wake():
                waiting = self.interrupts.pending
                self.kill(f"halted with no timer armed and nothing else to wake it"
                          + (f" (lines {waiting:#x} wait, blocked or without a handler)" if waiting else ""))
            self.clock.sleep_until(self.deadline, self._doorbell)
            self._check_stop()
            self._tick()
    # «/Sleep until something happens»

    # «Plugging in devices» book/host.md:1302 @931341f9
    def add_device(self, device) -> None:
        """Map a virtio device's registers and lend it an interrupt line."""
        self.devices.append(device)
        device.attach(self.uc, self.memory, self.raise_interrupt, self.device_kill)
        _, base, size, _ = device.boot_entry()
        self.pages.windows.append((base, size))


    def device_kill(self, reason: str):
        """Kill the guest from any thread: note why and stop the CPU; raise on the CPU's thread."""
        if self.dead is None:
            self.dead = reason
        self.brake.pull_for_good()
        self._doorbell.set()
        if threading.get_ident() == self._cpu_thread:
            raise Killed(reason)


    def _may_wake(self) -> bool:
        """Might something other than the timer still raise an interrupt?"""
        if self.console_input is not None and self.console_input.may_wake():
            return True
        return any(device.may_wake() for device in self.devices)
    # «/Plugging in devices»
# «/The Host's state»
# «/src/lguest/host/core.py»
