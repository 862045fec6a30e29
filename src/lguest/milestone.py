# Tangled from the book by 'lguest tangle'. Edit the chapter a marker names, or edit here and run 'lguest stitch'.
# «src/lguest/milestone.py»[7] book/mastery.md:1234 @d0283c87
"""Mastery's milestone: the whole machine at once, and what stands between the Hero and the Beer."""

import io
import sys
import tempfile
from pathlib import Path

from .guest import build_kernel
from .launcher import EXIT_POWEROFF, launch
from .mastery.progress import progress_table
from .mastery.quests import QUESTS

SCRIPT = b"random 4\nblk read 0\nnet\nmem\npoweroff\n"


def main() -> int:
    root = Path(sys.argv[1])  # the repository, which lguest milestone passes
    console = io.BytesIO()
    with tempfile.TemporaryDirectory() as scratch:
        disk = Path(scratch) / "disk.img"
        disk.write_bytes(b"The whole machine, Hero.".ljust(16 * 512, b"\0"))
        status = launch(32, build_kernel(), [], console=console, stderr=io.StringIO(),
                        console_input=io.BytesIO(SCRIPT), virtio_console=True, rng=True,
                        block=[str(disk)], net=["switch"], timeout=60)
    print("The whole machine, every device at once:")
    for line in console.getvalue().decode(errors="replace").splitlines():
        print(f"  {line}")
    print("And the road to the Beer:")
    table = progress_table(root, {quest.chapter: quest.title for quest in QUESTS.values()})
    print("\n".join(f"  {line}" for line in table.splitlines()))
    return 0 if status == EXIT_POWEROFF else 1
# «/src/lguest/milestone.py»
