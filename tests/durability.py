"""SIGKILL the Launcher in the middle of a disk workload; check what survived.

Each round boots the book's kernel with ``lguest run --block IMG`` (a real
subprocess, as a user would), feeds its shell a script of ``blk write SECTOR
TEXT`` commands, reads the console until a random number of writes, fewer than half
of them, have been reported (the shell prints ``..., flushed`` only after the device answered the
FLUSH that follows the write), waits a random moment more, and sends SIGKILL.
Then every write the guest reported flushed, in this round or any before it,
must be in the image, intact: the sector holds its text and zeros, unless a
later write to the same sector, issued but perhaps not reported before the
kill, replaced it. The image is shared by all rounds, so each round also
checks that the previous Launcher's death left the image usable (and its lock
released).

Used by tests/test_durability.py (a fixed seed, a few rounds) and by the soak
(``make soak``, more rounds).
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTOR = 512
SECTORS = 64
FLUSHED = re.compile(r"blk write: sector (\d+): \d+ bytes and \d+ zeros, flushed")


def sector_text(text: str) -> bytes:
    return text.encode().ljust(SECTOR, b"\0")


class Disk:
    """The image, and what each of its sectors may hold by now."""

    def __init__(self, path: Path):
        self.path = path
        path.write_bytes(bytes(SECTOR * SECTORS))
        self.possible: dict[int, set[bytes]] = {sector: {bytes(SECTOR)} for sector in range(SECTORS)}
        self.reported = 0
        self.interrupted = 0  # rounds whose SIGKILL came while writes were still unreported

    def check(self) -> list[str]:
        image = self.path.read_bytes()
        problems = []
        if len(image) != SECTOR * SECTORS:
            problems.append(f"the image is {len(image)} bytes, not {SECTOR * SECTORS}")
        for sector, allowed in self.possible.items():
            held = image[sector * SECTOR:(sector + 1) * SECTOR]
            if held not in allowed:
                problems.append(f"sector {sector} holds {held[:40]!r}..., not one of "
                                f"{sorted(a[:40] for a in allowed)}")
        return problems


def kill_round(kernel: Path, disk: Disk, rng: random.Random, number: int,
               writes: int = 48, timeout: float = 60) -> tuple[int, list[str]]:
    """One boot, one workload, one SIGKILL; the writes reported flushed, and any problems."""
    sectors = rng.sample(range(SECTORS), writes)
    texts = {sector: f"round{number}-sector{sector}-{rng.getrandbits(48):012x}" for sector in sectors}
    script = "".join(f"blk write {sector} {texts[sector]}\n" for sector in sectors)
    kill_after = rng.randrange(writes // 2)  # reported writes to wait for before the kill
    linger = rng.choice([0, 0, 0.0005, 0.002, 0.01])
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    process = subprocess.Popen([sys.executable, "-m", "lguest", "run", f"--block={disk.path}", "32",
                                str(kernel)], cwd=ROOT, env=env, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for sector in sectors:  # issued from now on: any of them may land
        disk.possible[sector].add(sector_text(texts[sector]))
    process.stdin.write(script.encode())
    process.stdin.close()
    reported: list[int] = []
    deadline = time.monotonic() + timeout
    problems: list[str] = []
    while len(reported) < kill_after:
        line = process.stdout.readline()
        if not line or time.monotonic() > deadline:
            break
        found = FLUSHED.search(line.decode("utf-8", "replace"))
        if found:
            reported.append(int(found.group(1)))
    time.sleep(linger)
    process.send_signal(signal.SIGKILL)
    rest, errors = process.stdout.read(), process.stderr.read()
    process.wait(timeout=timeout)
    reported += [int(found.group(1)) for found in FLUSHED.finditer(rest.decode("utf-8", "replace"))]
    if process.returncode != -signal.SIGKILL:  # it finished (poweroff at end of input) first
        if process.returncode != 0:
            problems.append(f"round {number}: exit status {process.returncode}: {errors.decode()[-300:]}")
    if len(reported) < min(kill_after, writes) and process.returncode == -signal.SIGKILL:
        problems.append(f"round {number}: only {len(reported)} of {kill_after} writes reported before "
                        f"the kill: {errors.decode()[-300:]}")
    for sector in reported:  # reported flushed: nothing older may be found there any more
        disk.possible[sector] = {sector_text(texts[sector])}
    disk.reported += len(reported)
    disk.interrupted += process.returncode == -signal.SIGKILL and len(reported) < writes
    problems += [f"round {number}: {problem}" for problem in disk.check()]
    return len(reported), problems


def run_rounds(kernel: Path, image: Path, rounds: int, seed: int) -> tuple[Disk, list[str]]:
    rng = random.Random(seed)
    disk = Disk(image)
    problems: list[str] = []
    for number in range(rounds):
        problems += kill_round(kernel, disk, rng, number)[1]
        if problems:
            break
    return disk, problems
