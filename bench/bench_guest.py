"""Benchmark: how long the book's own kernel takes to boot to its shell prompt.

For each mode (wall clock and --deterministic), the kernel is booted REPEAT times in this
process, the way the Launcher boots it, with "poweroff" waiting on its console. Reported:

- boot: wall-clock seconds from the start of the Launcher's work (guest memory, ELF, page
  tables, boot page, Host) to the first "lguest$ " on the console (median, min);
- exits: the Host's exit count at the prompt (hypercalls, traps, interrupts, timer stops);
- instructions: guest instructions executed up to the prompt, counted in one extra run with a
  Unicorn code hook on the guest's addresses (slow, so kept out of the timings);
- total: seconds from start to the guest's poweroff.

Each boot row has a baseline measured in the same run: bare Unicorn (ring 0, no hooks,
paging on through page tables of its own) executing as many instructions as the boot
does, counted once per mode in an extra, untimed run with the code hook above, as a
three-instruction loop (``add``, ``dec``, ``jnz``, bench_host's CPU loop); timed like the
boot, from creating the emulator and mapping its memory to the end of the loop, so that
Unicorn's own start-up (its first ``emu_start`` sets up the translator, about 2 ms here,
more than the loop itself) is on both sides. It is the speed of light for that much
guest work: the boot adds the Launcher's setup (ELF, page tables, boot page, Host), some
fifty exits (shadow page faults, hypercalls the long way, timer stops), the first
translation of every block of kernel code (the loop translates one block), and the
console. The ratio is boot / bare (lower is better); target at most 4, about twice what
we measure, so that a new exit in every page or a slower Host start-up shows. The
deterministic mode counts every instruction and is allowed the same. (Before it had a
baseline, this row's target was the prompt within 50 ms, before a reader who typed
`lguest run 32` notices a wait; the boot is about a fifth of that.)

bench/run.py takes the boot times through ``rows()``; ``python bench/bench_guest.py`` prints
the long report, exits and instruction counts included, into bench/results/guest.json.
"""

from __future__ import annotations

import io
import json
import statistics
import sys
import time
from pathlib import Path

from unicorn import UC_HOOK_CODE

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_host import START, assemble, cpu_loop, paged_unicorn  # noqa: E402
from common import interleaved, row  # noqa: E402

from lguest import abi
from lguest.guest import build_kernel
from lguest.host.core import Host
from lguest.host.hypercalls import EarlyConsole
from lguest.launcher import build_page_tables, load_kernel, make_memory, write_boot_page

ROOT = Path(__file__).resolve().parents[1]
PROMPT = b"lguest$ "
REPEAT = 7
MEM_MB = 32


class PromptWatcher(io.RawIOBase):
    """A console that notes the time and the Host's exit count at the first prompt."""

    def __init__(self):
        self.data = bytearray()
        self.host = None
        self.at_prompt: tuple[float, int] | None = None

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.data += data
        if self.at_prompt is None and PROMPT in self.data:
            self.at_prompt = (time.perf_counter(), self.host.exits)
        return len(data)


def boot_once(kernel: Path, deterministic: bool, count_instructions: bool = False) -> dict:
    start = time.perf_counter()
    memory = make_memory(MEM_MB)
    entry = load_kernel(memory, kernel)
    pgdir = build_page_tables(memory)
    write_boot_page(memory, pgdir, "")
    console = PromptWatcher()
    host = Host(memory, console=console, deterministic=deterministic,
                console_input=EarlyConsole(io.BytesIO(b"poweroff\n"), deterministic))
    console.host = host
    counted = {"guest": 0, "at_prompt": None}
    if count_instructions:
        def count(uc, address, size, _):
            if address < abi.SWITCHER_ADDR:
                counted["guest"] += 1
                if console.at_prompt is not None and counted["at_prompt"] is None:
                    counted["at_prompt"] = counted["guest"]
        host.uc.hook_add(UC_HOOK_CODE, count)
    outcome = host.run(entry=entry, stack=abi.PAGE_OFFSET + abi.BOOT_PAGE, boot=abi.BOOT_PAGE,
                       pgdir=pgdir)
    end = time.perf_counter()
    assert outcome.kind == "poweroff", outcome
    assert console.at_prompt is not None, console.data
    return {"boot": console.at_prompt[0] - start, "exits": console.at_prompt[1],
            "total": end - start, "instructions": counted["at_prompt"]}


def bare_loop(code: bytes) -> float:
    """Seconds bare Unicorn takes, from its creation, to run ``code`` with paging on."""
    start = time.perf_counter()
    uc = paged_unicorn(code)
    uc.emu_start(START, START + len(code) - 1)
    return time.perf_counter() - start


def rows(repeats: int = 5, quick: bool = False) -> list[dict]:
    """Boot to the prompt, by the wall clock and by the virtual clock's rules, in turns,
    each against bare Unicorn running as many instructions."""
    kernel = build_kernel()
    boot_once(kernel, False)  # warm up: imports, Switcher, page cache
    loops = {}
    for mode, deterministic in (("wall", False), ("deterministic", True)):
        counted = boot_once(kernel, deterministic, count_instructions=True)["instructions"]
        loops[mode] = assemble(cpu_loop(max(1, counted // 3)) + "\n    hlt\n", START)
    runs = interleaved({"wall": lambda: boot_once(kernel, False)["boot"] * 1e3,
                        "wall bare": lambda: bare_loop(loops["wall"]) * 1e3,
                        "deterministic": lambda: boot_once(kernel, True)["boot"] * 1e3,
                        "deterministic bare": lambda: bare_loop(loops["deterministic"]) * 1e3},
                       repeats)
    return [row("boot to shell prompt vs bare Unicorn running as many instructions", "ms",
                runs["wall"], runs["wall bare"], target=4.0),
            row("boot to shell prompt, --deterministic, vs bare Unicorn, as many instructions",
                "ms", runs["deterministic"], runs["deterministic bare"], target=4.0)]


def main() -> None:
    """The long report: exits and guest instructions to the prompt as well."""
    kernel = build_kernel()
    results = {}
    for name, deterministic in (("wall clock", False), ("deterministic", True)):
        boot_once(kernel, deterministic)  # warm up: imports, Switcher, page cache
        runs = [boot_once(kernel, deterministic) for _ in range(REPEAT)]
        counted = boot_once(kernel, deterministic, count_instructions=True)
        boots = [run["boot"] for run in runs]
        results[name] = {"boot_median_s": statistics.median(boots), "boot_min_s": min(boots),
                         "exits_at_prompt": sorted({run["exits"] for run in runs}),
                         "total_median_s": statistics.median(run["total"] for run in runs),
                         "instructions_at_prompt": counted["instructions"]}
        r = results[name]
        print(f"{name:13}: boot to prompt {r['boot_median_s'] * 1e3:6.1f} ms median "
              f"({r['boot_min_s'] * 1e3:.1f} min), exits {r['exits_at_prompt']}, "
              f"~{r['instructions_at_prompt']} guest instructions, "
              f"boot+poweroff {r['total_median_s'] * 1e3:.1f} ms")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "guest.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
