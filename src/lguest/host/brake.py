# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/host/brake.py» book/host-interrupts.md:789 @abe152b9
"""The brake: stop the guest between two instructions, from any thread."""

from __future__ import annotations

import ctypes
import hashlib
import subprocess
from pathlib import Path

from unicorn import UC_HOOK_BLOCK, Uc, UcError
from unicorn.unicorn_py3.unicorn import uclib
from unicorn.x86_const import UC_X86_REG_CS

from ..guest import build_once, user_cache
from ..memory import GuestMemory

# «Build the brake» book/host-interrupts.md:699 @7e59cda4
SOURCE = Path(__file__).resolve().with_name("brake.c")
CFLAGS = ("-shared", "-fPIC", "-O2", "-nostdlib", "-Wall", "-Werror")
RELEASED, AT_ONCE, WHEN_ENABLED = 0, 1, 2


class BrakeError(RuntimeError):
    """The brake could not be built: the compiler's complaint, in one message."""


def compile_brake(library: Path) -> None:
    try:
        result = subprocess.run(["gcc", *CFLAGS, "-o", str(library), str(SOURCE)],
                                capture_output=True, text=True)
    except FileNotFoundError:
        raise BrakeError("cannot build the brake: gcc is not installed") from None
    if result.returncode or result.stderr.strip():
        raise BrakeError(f"cannot build the brake: gcc says:\n{result.stderr}".rstrip())


_library: ctypes.CDLL | None = None


def brake_hook() -> int:
    """The address of ``brake_hook``, built and loaded once per process."""
    global _library
    if _library is None:
        stamp = hashlib.sha256(SOURCE.read_bytes() + " ".join(CFLAGS).encode()).hexdigest()[:16]
        built = build_once("libbrake.so", stamp, compile_brake, [SOURCE.parent, user_cache()],
                           "the brake", BrakeError)
        _library = ctypes.CDLL(str(built))
    return ctypes.cast(_library.brake_hook, ctypes.c_void_p).value
# «/Build the brake»


# «The brake's lever» book/host-interrupts.md:739 @de76038f
class Lever(ctypes.Structure):
    """``struct brake`` in brake.c, field for field."""

    _fields_ = [("for_interrupt", ctypes.c_uint32), ("for_good", ctypes.c_uint32),
                ("hold", ctypes.c_uint32), ("cs", ctypes.c_int32), ("stops", ctypes.c_uint32),
                ("irq_enabled", ctypes.c_void_p), ("emu_stop", ctypes.c_void_p),
                ("reg_read", ctypes.c_void_p)]


class Brake:
    """One CPU's brake: ``pull`` from any thread, and the CPU stops at the next guest block."""

    def __init__(self, uc: Uc, memory: GuestMemory):
        self.memory_address = ctypes.addressof(ctypes.c_char.from_buffer(memory.buffer))
        self.lever = lever = Lever(cs=UC_X86_REG_CS,
                                   emu_stop=ctypes.cast(uclib.uc_emu_stop, ctypes.c_void_p).value,
                                   reg_read=ctypes.cast(uclib.uc_reg_read, ctypes.c_void_p).value)
        handle = ctypes.c_size_t()
        status = uclib.uc_hook_add(uc._uch, ctypes.byref(handle), UC_HOOK_BLOCK, brake_hook(),
                                   ctypes.addressof(lever), 1, 0)
        if status:
            raise UcError(status)

    def pull(self, when: int = AT_ONCE) -> None:
        """Stop at the next block of guest code (WHEN_ENABLED: the next one that finds the
        guest's virtual interrupts on), unless it starts at the held address."""
        self.lever.for_interrupt = when

    def pull_for_good(self) -> None:
        """Stop at the next block of guest code, wherever it is: the guest is ending."""
        self.lever.for_good = 1

    def release(self) -> None:
        self.lever.for_interrupt = RELEASED

    def hold_at(self, address: int) -> None:
        self.lever.hold = address

    def watch(self, irq_enabled: int) -> None:
        """Where the guest keeps its virtual interrupt flag: a guest-physical address."""
        self.lever.irq_enabled = self.memory_address + irq_enabled

    @property
    def stops(self) -> int:
        return self.lever.stops
# «/The brake's lever»
# «/src/lguest/host/brake.py»
