# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/guest/__init__.py» book/guest-shell.md:758 @e88207d5
"""The Guest's kernel: its C and assembler sources live here; this builds them."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable

# «Build the kernel» book/guest-shell.md:673 @dc7bd8a8
SOURCES = (
    # «The kernel's source files» book/guest-shell.md:660 @76538c6e
    "entry.S", "boot.c", "traps.c", "lib.c", "shell.c",
    # «/The kernel's source files»
    # «The kernel's source files»[2] book/drivers-guest.md:1289 @c632a10a
    "virtio.c",
    # «/The kernel's source files»
)
HEADERS = ("lguest.h", "kernel.h", "kernel.ld")
CFLAGS = ("-m32", "-std=gnu11", "-ffreestanding", "-fno-pic", "-fno-pie", "-fno-stack-protector",
          "-nostdlib", "-fno-asynchronous-unwind-tables", "-fcf-protection=none",
          "-mgeneral-regs-only", "-O2", "-g", "-Wall", "-Werror")
LDFLAGS = ("-m", "elf_i386", "-nostdlib", "-static", "--build-id=none", "-z", "noexecstack",
           "-z", "max-page-size=4096")
SOURCE_DIR = Path(__file__).resolve().parent


class KernelBuildError(RuntimeError):
    """The kernel could not be built: the compiler's complaint, in one message."""


def fingerprint(source_dir: Path = SOURCE_DIR) -> str:
    """A hash of everything that goes into the kernel."""
    digest = hashlib.sha256()
    for name in (*SOURCES, *HEADERS):
        digest.update(name.encode() + b"\0" + (source_dir / name).read_bytes() + b"\0")
    digest.update(" ".join((*CFLAGS, *LDFLAGS)).encode())
    return digest.hexdigest()[:16]


def compile_kernel(source_dir: Path, elf: Path) -> None:
    """Compile and link the kernel's sources into ``elf``."""
    with tempfile.TemporaryDirectory() as scratch:
        objects = [str(Path(scratch, name).with_suffix(".o")) for name in SOURCES]
        steps = [["gcc", *CFLAGS, f"-I{source_dir}", "-c", str(source_dir / name), "-o", obj]
                 for name, obj in zip(SOURCES, objects)]
        steps.append(["ld", *LDFLAGS, "-T", str(source_dir / "kernel.ld"), "-o", str(elf), *objects])
        for step in steps:
            try:
                result = subprocess.run(step, capture_output=True, text=True)
            except FileNotFoundError as error:
                raise KernelBuildError(f"cannot build the kernel: {error.filename} is not installed")
            if result.returncode or result.stderr.strip():
                raise KernelBuildError(f"cannot build the kernel: {step[0]} says:\n"
                                       f"{result.stdout}{result.stderr}".rstrip())


def build_kernel(out_dir: str | Path | None = None) -> Path:
    """The path of the built kernel, building it first if its sources changed."""
    places = [Path(out_dir)] if out_dir is not None else [SOURCE_DIR, user_cache()]
    return build_once("kernel.elf", fingerprint(), lambda elf: compile_kernel(SOURCE_DIR, elf),
                      places, "the kernel", KernelBuildError)


def build_once(name: str, stamp: str, make: Callable[[Path], None], places: list[Path],
               what: str, error: type[Exception]) -> Path:
    """``name`` from the first of ``places`` that has it built from ``stamp``; else ``make``
    it in the first writable one, in a scratch directory, and rename it into place."""
    stamp_name = Path(name).with_suffix(".stamp").name
    for place in places:
        if (place / stamp_name).is_file() and (place / name).is_file():
            if (place / stamp_name).read_text() == stamp:
                return place / name
    for place in places:
        try:
            place.mkdir(parents=True, exist_ok=True)
            scratch = Path(tempfile.mkdtemp(dir=place, prefix=f".{Path(name).stem}-"))
        except OSError:
            continue
        try:
            make(scratch / name)
            (scratch / stamp_name).write_text(stamp)
            os.replace(scratch / name, place / name)
            os.replace(scratch / stamp_name, place / stamp_name)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return place / name
    raise error(f"cannot build {what}: no writable directory among {places}")


def user_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lguest"
# «/Build the kernel»
# «/src/lguest/guest/__init__.py»
