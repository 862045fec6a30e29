# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/guest/__init__.py» book/guest.md:1974 @123a1ec6
"""The Guest's kernel: its C and assembler sources live here; this builds them."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

# «Build the kernel» book/guest.md:1899 @50b1b11d
SOURCES = ("entry.S", "boot.c", "traps.c", "lib.c", "shell.c", "virtio.c")
HEADERS = ("lguest.h", "kernel.h", "kernel.ld")
CFLAGS = ("-m32", "-std=gnu11", "-ffreestanding", "-fno-pic", "-fno-pie", "-fno-stack-protector",
          "-nostdlib", "-fno-asynchronous-unwind-tables", "-fcf-protection=none",
          "-mgeneral-regs-only", "-O2", "-Wall", "-Werror")
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
    stamp = fingerprint()
    places = [Path(out_dir)] if out_dir is not None else [SOURCE_DIR, user_cache()]
    for place in places:
        if (place / "kernel.stamp").is_file() and (place / "kernel.elf").is_file():
            if (place / "kernel.stamp").read_text() == stamp:
                return place / "kernel.elf"
    for place in places:
        try:
            place.mkdir(parents=True, exist_ok=True)
            scratch = Path(tempfile.mkdtemp(dir=place, prefix=".kernel-"))
        except OSError:
            continue
        try:
            compile_kernel(SOURCE_DIR, scratch / "kernel.elf")
            (scratch / "kernel.stamp").write_text(stamp)
            os.replace(scratch / "kernel.elf", place / "kernel.elf")
            os.replace(scratch / "kernel.stamp", place / "kernel.stamp")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return place / "kernel.elf"
    raise KernelBuildError(f"cannot build the kernel: no writable directory among {places}")


def user_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lguest"
# «/Build the kernel»
# «/src/lguest/guest/__init__.py»
