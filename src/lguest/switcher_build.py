# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/switcher_build.py» book/switcher.md:268 @a16db063
"""Assembling the Switcher: plain standard library, usable while the package builds."""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
from pathlib import Path

from .abi import PAGE_SIZE, SWITCHER_ADDR

# «Where the Switcher's pages are» book/switcher.md:140 @220501c9
CODE_ADDRESS = SWITCHER_ADDR
GDT_ADDRESS = SWITCHER_ADDR + PAGE_SIZE
REGS_ADDRESS = SWITCHER_ADDR + 2 * PAGE_SIZE
SWITCHER_PAGES = 3
# «/Where the Switcher's pages are»


# «Assemble the Switcher» book/switcher.md:222 @04b23461
class SwitcherError(RuntimeError):
    """The Switcher could not be built, or Unicorn is not the one we know."""


def assemble(source: Path) -> bytes:
    with tempfile.TemporaryDirectory() as scratch:
        obj, binary = Path(scratch, "switcher.o"), Path(scratch, "switcher.bin")
        for command in (["as", "--32", f"--defsym=REGS_ADDRESS={REGS_ADDRESS:#x}", "-o", obj, source],
                        ["ld", "-m", "elf_i386", f"-Ttext={CODE_ADDRESS:#x}", "-e", "switcher_entry",
                         "--oformat=binary", "-o", binary, obj]):
            try:
                result = subprocess.run([str(part) for part in command], capture_output=True, text=True)
            except FileNotFoundError as error:
                raise SwitcherError(f"cannot assemble the Switcher: {error.filename} is not installed") from None
            if result.returncode:
                raise SwitcherError(f"cannot assemble the Switcher: {result.stderr.strip()}")
        return binary.read_bytes()


def stamp_of(source: Path) -> bytes:
    """A fingerprint of the source and the addresses it was assembled for."""
    return hashlib.sha256(source.read_bytes() + f"{REGS_ADDRESS}".encode()).hexdigest()[:16].encode()


def switcher_code() -> bytes:
    """The Switcher's machine code, assembled once per change of its source."""
    source = Path(__file__).with_name("switcher.S")
    stamp = stamp_of(source)
    built = Path(__file__).with_name("switcher.bin")
    if built.is_file() and built.read_bytes()[:len(stamp)] == stamp:
        return built.read_bytes()[len(stamp):]
    code = assemble(source)
    try:
        built.write_bytes(stamp + code)
    except OSError:
        pass
    return code
# «/Assemble the Switcher»
# «/src/lguest/switcher_build.py»
